//! The RoleBindings and ClusterRoleBindings that exist, in the shape the existing-access and
//! separation-of-duties checks read, found by the subjects they name.
//!
//! The checks only ever look at bindings that may reach a request's subjects: one that names a
//! subject, or one that names a group (a subject may be in it). Scanning and converting every
//! binding of the cluster for each request made each decision cost O(bindings), and filing N
//! requests O(N²) once the grants themselves are N bindings. This index converts each binding
//! once per change, from the same watch events that fill the binding caches.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::ResourceExt;
use kube::runtime::watcher;

use crate::access::rbac_view::{ExistingBinding, subject_identity};
use crate::api::common::{Subject, SubjectKind};

/// The kinds of binding the index holds; each has its own watch, and so its own relists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    ClusterRoleBinding,
    RoleBinding,
}

/// A binding's identity: its kind, namespace (empty for a ClusterRoleBinding) and name. The
/// order is the order [`ExistingBindings::reaching`] returns bindings in.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    kind: Kind,
    namespace: String,
    name: String,
}

#[derive(Default)]
pub struct ExistingBindings {
    shelf: Mutex<Shelf>,
}

#[derive(Default)]
struct Shelf {
    bindings: HashMap<Key, ExistingBinding>,
    /// The bindings naming each subject (by [`subject_identity`]).
    by_subject: HashMap<String, BTreeSet<Key>>,
    /// The bindings naming at least one group: they may reach anyone.
    naming_groups: BTreeSet<Key>,
    /// The bindings of each kind its running relist has shown so far.
    relisted: HashMap<Kind, HashSet<Key>>,
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

    fn observe<K: kube::Resource>(
        &self,
        event: &watcher::Event<K>,
        kind: Kind,
        convert: impl Fn(&K) -> Option<ExistingBinding>,
    ) {
        let key = |binding: &K| Key {
            kind,
            namespace: binding.namespace().unwrap_or_default(),
            name: binding.name_any(),
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
            for subject in &before.subjects {
                let identity = subject_identity(subject);
                if let Some(keys) = self.by_subject.get_mut(&identity) {
                    keys.remove(&key);
                    if keys.is_empty() {
                        self.by_subject.remove(&identity);
                    }
                }
            }
            self.naming_groups.remove(&key);
        }
        let Some(binding) = binding else {
            return;
        };
        for subject in &binding.subjects {
            self.by_subject
                .entry(subject_identity(subject))
                .or_default()
                .insert(key.clone());
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::{RoleRef, Subject as RbacSubject};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn role_binding(namespace: &str, name: &str, subjects: &[(&str, &str)]) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
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
}
