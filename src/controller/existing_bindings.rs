//! The RoleBindings and ClusterRoleBindings that exist: the operator's one cache of them, in the
//! shape its decisions read, found by the subjects they name and by the role they grant.
//!
//! The existing-access and separation-of-duties checks only ever look at bindings that may reach
//! a request's subjects: one that names a subject, or one that names a group (a subject may be in
//! it). Who holds an approver right (`status.approvers`) is read from the bindings of the few
//! roles that grant it, and a changed role forgets the answers about the subjects bound to it.
//! Scanning every binding of the cluster for each of these made each decision cost O(bindings),
//! and filing N requests O(N²) once the grants themselves are N bindings. Each binding is
//! converted once per change, and only its role, subjects and origin are kept: a full RoleBinding
//! (labels, annotations, the window a grant carries) cost several times as much memory, N times.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound::{Included, Unbounded};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::access::rbac_view::{ExistingBinding, subject_identity};
use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};
use crate::lifecycle::eligible::Bound;

/// The kinds of binding the index holds; each has its own watch, and so its own relists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    ClusterRoleBinding,
    RoleBinding,
}

/// A binding's identity: its kind, namespace (empty for a ClusterRoleBinding) and name. The
/// order is the order [`ExistingBindings::reaching`] returns bindings in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Identity {
    kind: Kind,
    namespace: String,
    name: String,
}

/// An [`Identity`], shared by the map of bindings and every index that lists the binding: a
/// pointer each, instead of a copy of both strings each (at 10,000 bindings, megabytes).
type Key = Arc<Identity>;

pub struct ExistingBindings {
    shelf: Mutex<Shelf>,
    /// Whether both kinds have had their first full list.
    listed: tokio::sync::watch::Sender<bool>,
}

impl Default for ExistingBindings {
    fn default() -> Self {
        ExistingBindings {
            shelf: Mutex::default(),
            listed: tokio::sync::watch::Sender::new(false),
        }
    }
}

#[derive(Default)]
struct Shelf {
    bindings: HashMap<Key, ExistingBinding>,
    /// The bindings naming each subject (by [`subject_identity`]), in no order: most subjects
    /// are named by one or a few, which a set's node of eleven slots would hold at several times
    /// the size.
    by_subject: HashMap<String, Vec<Key>>,
    /// The bindings naming at least one group: they may reach anyone.
    naming_groups: BTreeSet<Key>,
    /// The bindings granting each role, in [`Key`] order: ClusterRoleBindings, then
    /// RoleBindings by namespace.
    by_role: HashMap<RoleRef, BTreeSet<Key>>,
    /// The bindings of each kind its running relist has shown so far.
    relisted: HashMap<Kind, HashSet<Key>>,
    /// The kinds whose first list is complete.
    listed: HashSet<Kind>,
}

impl ExistingBindings {
    pub fn role_binding(&self, event: &watcher::Event<RoleBinding>) {
        self.observe(event, Kind::RoleBinding, ExistingBinding::from_role_binding);
    }

    pub fn cluster_role_binding(&self, event: &watcher::Event<ClusterRoleBinding>) {
        self.observe(
            event,
            Kind::ClusterRoleBinding,
            ExistingBinding::from_cluster_role_binding,
        );
    }

    /// Every binding that may reach one of `subjects`, in a stable order: those naming one of
    /// them, and those naming any group. Any other binding reaches none of them.
    pub fn reaching(&self, subjects: &[Subject]) -> Vec<ExistingBinding> {
        let shelf = self.lock();
        let mut keys: BTreeSet<&Key> = shelf.naming_groups.iter().collect();
        for subject in subjects {
            if let Some(naming) = shelf.by_subject.get(&subject_identity(subject)) {
                keys.extend(naming);
            }
        }
        keys.into_iter()
            .filter_map(|key| shelf.bindings.get(key).cloned())
            .collect()
    }

    /// The bindings granting `role` in `namespace` (`None`: the ClusterRoleBindings), in a
    /// stable order.
    pub fn granting(&self, namespace: Option<&str>, role: &RoleRef) -> Vec<ExistingBinding> {
        let shelf = self.lock();
        let Some(keys) = shelf.by_role.get(role) else {
            return Vec::new();
        };
        let (kind, namespace) = match namespace {
            Some(namespace) => (Kind::RoleBinding, namespace),
            None => (Kind::ClusterRoleBinding, ""),
        };
        let first = Identity {
            kind,
            namespace: namespace.to_string(),
            name: String::new(),
        };
        keys.range::<Identity, _>((Included(&first), Unbounded))
            .take_while(|key| key.kind == kind && key.namespace == namespace)
            .filter_map(|key| shelf.bindings.get(key).cloned())
            .collect()
    }

    /// The bindings granting `role` anywhere: every binding of a ClusterRole, those of a Role
    /// in `namespace` (its own).
    pub fn granting_anywhere(
        &self,
        role: &RoleRef,
        namespace: Option<&str>,
    ) -> Vec<ExistingBinding> {
        let shelf = self.lock();
        shelf
            .by_role
            .get(role)
            .into_iter()
            .flatten()
            .filter(|key| match role.kind {
                RoleKind::ClusterRole => true,
                RoleKind::Role => {
                    key.kind == Kind::RoleBinding && Some(key.namespace.as_str()) == namespace
                }
            })
            .filter_map(|key| shelf.bindings.get(key).cloned())
            .collect()
    }

    /// Waits until both kinds have had their first full list: until then a binding that exists
    /// may be missing.
    pub async fn listed(&self) {
        let mut listed = self.listed.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = listed.wait_for(|listed| *listed).await;
    }

    fn observe<K: kube::Resource>(
        &self,
        event: &watcher::Event<K>,
        kind: Kind,
        convert: impl Fn(&K) -> Option<ExistingBinding>,
    ) {
        let key = |binding: &K| {
            Key::new(Identity {
                kind,
                namespace: binding.namespace().unwrap_or_default(),
                name: binding.name_any(),
            })
        };
        let mut shelf = self.lock();
        match event {
            watcher::Event::Apply(binding) => shelf.put(key(binding), convert(binding)),
            watcher::Event::Delete(binding) => shelf.put(key(binding), None),
            watcher::Event::Init => {
                shelf.relisted.insert(kind, HashSet::new());
            }
            watcher::Event::InitApply(binding) => {
                let key = key(binding);
                shelf.relisted.entry(kind).or_default().insert(key.clone());
                shelf.put(key, convert(binding));
            }
            watcher::Event::InitDone => {
                let listed = shelf.relisted.remove(&kind).unwrap_or_default();
                let gone: Vec<Key> = shelf
                    .bindings
                    .keys()
                    .filter(|key| key.kind == kind && !listed.contains(*key))
                    .cloned()
                    .collect();
                for key in gone {
                    shelf.put(key, None);
                }
                shelf.listed.insert(kind);
                if shelf.listed.len() == 2 {
                    self.listed
                        .send_if_modified(|listed| !std::mem::replace(listed, true));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shelf {
    /// Makes `key` hold `binding`, or nothing (deleted, or a binding the checks cannot read).
    fn put(&mut self, key: Key, binding: Option<ExistingBinding>) {
        if let Some(before) = self.bindings.remove(&key) {
            let identities: BTreeSet<String> =
                before.subjects.iter().map(subject_identity).collect();
            for identity in identities {
                if let Some(keys) = self.by_subject.get_mut(&identity) {
                    if let Some(at) = keys.iter().position(|held| *held == key) {
                        keys.swap_remove(at);
                    }
                    if keys.is_empty() {
                        self.by_subject.remove(&identity);
                    }
                }
            }
            self.naming_groups.remove(&key);
            if let Some(keys) = self.by_role.get_mut(&before.role) {
                keys.remove(&key);
                if keys.is_empty() {
                    self.by_role.remove(&before.role);
                }
            }
        }
        let Some(binding) = binding else {
            return;
        };
        self.by_role
            .entry(binding.role.clone())
            .or_default()
            .insert(key.clone());
        // Once per identity, however often the binding names it.
        let identities: BTreeSet<String> = binding.subjects.iter().map(subject_identity).collect();
        for identity in identities {
            self.by_subject
                .entry(identity)
                .or_default()
                .push(key.clone());
        }
        if binding
            .subjects
            .iter()
            .any(|subject| subject.kind == SubjectKind::Group)
        {
            self.naming_groups.insert(key.clone());
        }
        self.bindings.insert(key, binding);
    }
}

impl Bound for ExistingBindings {
    fn subjects_bound(&self, namespace: Option<&str>, role: &RoleRef) -> Vec<Vec<Subject>> {
        self.granting(namespace, role)
            .into_iter()
            .map(|binding| binding.subjects)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{RoleRef as RbacRoleRef, Subject as RbacSubject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn role_binding(namespace: &str, name: &str, subjects: &[(&str, &str)]) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            role_ref: RbacRoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "db-reader".into(),
            },
            subjects: Some(
                subjects
                    .iter()
                    .map(|(kind, name)| RbacSubject {
                        kind: kind.to_string(),
                        name: name.to_string(),
                        api_group: (*kind != "ServiceAccount")
                            .then(|| "rbac.authorization.k8s.io".into()),
                        ..Default::default()
                    })
                    .collect(),
            ),
        }
    }

    fn subject(kind: SubjectKind, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind,
            name: name.into(),
            namespace: namespace.map(str::to_string),
        }
    }

    fn sources(bindings: &[ExistingBinding]) -> Vec<&str> {
        bindings.iter().map(|b| b.source.as_str()).collect()
    }

    #[test]
    fn a_subject_finds_the_bindings_naming_it_and_every_group_binding_in_a_stable_order() {
        let index = ExistingBindings::default();
        for binding in [
            role_binding("payments", "bob", &[("User", "bob")]),
            role_binding("payments", "alice-2", &[("User", "alice")]),
            role_binding("payments", "team", &[("Group", "payments-team")]),
            role_binding("payments", "alice-1", &[("User", "alice"), ("User", "bob")]),
            role_binding("payments", "ci", &[("ServiceAccount", "ci")]),
        ] {
            index.role_binding(&watcher::Event::Apply(binding));
        }
        let alice = subject(SubjectKind::User, "alice", None);
        assert_eq!(
            sources(&index.reaching(std::slice::from_ref(&alice))),
            [
                "RoleBinding payments/alice-1",
                "RoleBinding payments/alice-2",
                "RoleBinding payments/team"
            ]
        );
        // A ServiceAccount is found by its username too, its namespace the binding's.
        let ci = subject(SubjectKind::User, "system:serviceaccount:payments:ci", None);
        assert_eq!(
            sources(&index.reaching(&[ci])),
            ["RoleBinding payments/ci", "RoleBinding payments/team"]
        );
        let elsewhere = subject(SubjectKind::ServiceAccount, "ci", Some("orders"));
        assert_eq!(
            sources(&index.reaching(&[elsewhere])),
            ["RoleBinding payments/team"]
        );

        // An edit that drops alice, and a deletion, are gone from what she is found in.
        index.role_binding(&watcher::Event::Apply(role_binding(
            "payments",
            "alice-1",
            &[("User", "bob")],
        )));
        index.role_binding(&watcher::Event::Delete(role_binding(
            "payments",
            "team",
            &[("Group", "payments-team")],
        )));
        assert_eq!(
            sources(&index.reaching(&[alice])),
            ["RoleBinding payments/alice-2"]
        );
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_lists_of_its_own_kind_only() {
        let index = ExistingBindings::default();
        let alice = [subject(SubjectKind::User, "alice", None)];
        index.role_binding(&watcher::Event::Apply(role_binding(
            "payments",
            "old",
            &[("User", "alice")],
        )));
        index.cluster_role_binding(&watcher::Event::Apply(ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some("everywhere".into()),
                ..Default::default()
            },
            role_ref: role_binding("", "", &[]).role_ref,
            subjects: role_binding("", "", &[("User", "alice")]).subjects,
        }));
        index.role_binding(&watcher::Event::Init);
        index.role_binding(&watcher::Event::InitApply(role_binding(
            "payments",
            "new",
            &[("User", "alice")],
        )));
        assert_eq!(
            index.reaching(&alice).len(),
            3,
            "nothing is dropped before the relist is done"
        );
        index.role_binding(&watcher::Event::InitDone);
        assert_eq!(
            sources(&index.reaching(&alice)),
            ["ClusterRoleBinding everywhere", "RoleBinding payments/new"]
        );
    }

    #[test]
    fn a_role_finds_the_bindings_granting_it_where_they_count() {
        let index = ExistingBindings::default();
        let mut other_role = role_binding("payments", "viewer", &[("User", "erin")]);
        other_role.role_ref.name = "view".into();
        for binding in [
            role_binding("payments", "bob", &[("User", "bob")]),
            role_binding("orders", "dave", &[("User", "dave")]),
            other_role,
        ] {
            index.role_binding(&watcher::Event::Apply(binding));
        }
        index.cluster_role_binding(&watcher::Event::Apply(ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some("carol".into()),
                ..Default::default()
            },
            role_ref: role_binding("", "", &[]).role_ref,
            subjects: role_binding("", "", &[("User", "carol")]).subjects,
        }));
        let db_reader = RoleRef {
            kind: RoleKind::ClusterRole,
            name: "db-reader".into(),
        };
        assert_eq!(
            sources(&index.granting(Some("payments"), &db_reader)),
            ["RoleBinding payments/bob"]
        );
        assert_eq!(
            sources(&index.granting(None, &db_reader)),
            ["ClusterRoleBinding carol"]
        );
        assert_eq!(
            sources(&index.granting_anywhere(&db_reader, None)),
            [
                "ClusterRoleBinding carol",
                "RoleBinding orders/dave",
                "RoleBinding payments/bob"
            ]
        );
        let role = RoleRef {
            kind: RoleKind::Role,
            name: "db-reader".into(),
        };
        assert!(index.granting(Some("payments"), &role).is_empty());

        // A binding moved to another role is found under that role only.
        let mut moved = role_binding("payments", "bob", &[("User", "bob")]);
        moved.role_ref.name = "view".into();
        index.role_binding(&watcher::Event::Apply(moved));
        assert!(index.granting(Some("payments"), &db_reader).is_empty());
        let view = RoleRef {
            kind: RoleKind::ClusterRole,
            name: "view".into(),
        };
        assert_eq!(
            sources(&index.granting(Some("payments"), &view)),
            ["RoleBinding payments/bob", "RoleBinding payments/viewer"]
        );
    }

    #[tokio::test]
    async fn it_is_listed_once_both_kinds_are() {
        let index = ExistingBindings::default();
        index.role_binding(&watcher::Event::Init);
        index.role_binding(&watcher::Event::InitDone);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), index.listed());
        assert!(
            waiting.await.is_err(),
            "the ClusterRoleBindings are not listed yet"
        );
        index.cluster_role_binding(&watcher::Event::Init);
        index.cluster_role_binding(&watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(1), index.listed())
            .await
            .expect("listed");
    }
}
