//! SubjectAccessReview answers about approver rights, kept while RBAC stays as it was for the
//! user asked about: every reconcile of a pending or active object re-checks each decision's
//! author, and without this each check is a round trip (the largest share of the operator's API
//! calls). Proofs of access granted or removed are never taken from here: they must be fresh.
//!
//! The questions name a user and no groups, so RBAC answers them from the bindings whose subjects
//! name that user (a User, or the ServiceAccount the user is) and the roles those bindings refer
//! to. A change to a RoleBinding or ClusterRoleBinding forgets the answers about the users it
//! names and named before; a change to a Role or ClusterRole forgets those about the users bound
//! to it. Anything that could reach further (a Group subject, a subject of an unknown kind, a
//! relist that may hide changes) forgets every answer. So the operator's own grants, which bind
//! requesters, keep the approvers' answers. None is kept longer than [`MAX_AGE`] (rights from
//! other authorizers than RBAC).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use super::existing_bindings::ExistingBindings;
use crate::api::common::{RoleKind, RoleRef, SubjectKind};

/// The longest an answer is used.
pub const MAX_AGE: Duration = Duration::from_secs(60);

/// How many answers (or users forgotten one by one) are kept at most; beyond, all are forgotten
/// (a bound on memory, not a policy).
const CAPACITY: usize = 100_000;

/// Answers by user and question.
#[derive(Default)]
pub struct Verdicts {
    answers: Mutex<Answers>,
}

#[derive(Default)]
struct Answers {
    /// Bumped on every change that forgets answers; an answer asked before a change that
    /// concerns its user is never kept.
    generation: u64,
    /// The generation of the last change that forgot every answer.
    all_forgotten: u64,
    /// The generation of the last change that forgot each user's answers, since then.
    user_forgotten: HashMap<String, u64>,
    by_user: HashMap<String, HashMap<String, (Instant, bool)>>,
    count: usize,
}

impl Verdicts {
    /// Forgets every answer.
    pub fn forget_all(&self) {
        let mut answers = self.lock();
        answers.generation += 1;
        answers.all_forgotten = answers.generation;
        answers.user_forgotten.clear();
        answers.by_user.clear();
        answers.count = 0;
    }

    /// Forgets the answers about `users`: RBAC changed for them.
    pub fn forget_users<'u>(&self, users: impl IntoIterator<Item = &'u str>) {
        let mut answers = self.lock();
        answers.generation += 1;
        let generation = answers.generation;
        for user in users {
            if let Some(forgotten) = answers.by_user.remove(user) {
                answers.count -= forgotten.len();
            }
            answers.user_forgotten.insert(user.to_string(), generation);
        }
        if answers.user_forgotten.len() > CAPACITY {
            drop(answers);
            self.forget_all();
        }
    }

    /// The answer to `question` about `user` while it is current, as of `now`.
    pub fn get(&self, user: &str, question: &str, now: Instant) -> Option<bool> {
        let answers = self.lock();
        let (at, allowed) = answers.by_user.get(user)?.get(question)?;
        (now.duration_since(*at) < MAX_AGE).then_some(*allowed)
    }

    /// Keeps the answer to `question` about `user`, asked in generation `generation` (see
    /// [`Verdicts::generation`]) at `now`: an answer asked before a change that concerns `user`
    /// is not kept.
    pub fn put(&self, user: &str, question: String, generation: u64, allowed: bool, now: Instant) {
        let mut answers = self.lock();
        let forgotten = answers
            .user_forgotten
            .get(user)
            .copied()
            .unwrap_or_default()
            .max(answers.all_forgotten);
        if generation < forgotten {
            return;
        }
        if answers.count >= CAPACITY {
            answers.by_user.clear();
            answers.count = 0;
        }
        let previous = answers
            .by_user
            .entry(user.to_string())
            .or_default()
            .insert(question, (now, allowed));
        if previous.is_none() {
            answers.count += 1;
        }
    }

    /// The current generation, to read before asking.
    pub fn generation(&self) -> u64 {
        self.lock().generation
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Answers> {
        self.answers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Who a binding's subjects are, as the users the questions name; `None` when one of them could
/// be anyone (a Group, or a kind RBAC may learn later).
fn users_of(subjects: Option<&[Subject]>, binding_namespace: Option<&str>) -> Option<Vec<String>> {
    subjects
        .unwrap_or_default()
        .iter()
        .map(|subject| match subject.kind.as_str() {
            "User" => Some(subject.name.clone()),
            "ServiceAccount" => {
                let namespace = subject.namespace.as_deref().or(binding_namespace)?;
                Some(format!(
                    "system:serviceaccount:{namespace}:{}",
                    subject.name
                ))
            }
            _ => None,
        })
        .collect()
}

/// The users `subjects` (as converted, their ServiceAccounts' namespaces filled in) name; `None`
/// when one of them could be anyone (a Group).
fn users_named(subjects: &[crate::api::common::Subject]) -> Option<Vec<String>> {
    subjects
        .iter()
        .map(|subject| match subject.kind {
            SubjectKind::User => Some(subject.name.clone()),
            SubjectKind::ServiceAccount => Some(format!(
                "system:serviceaccount:{}:{}",
                subject.namespace.as_deref()?,
                subject.name
            )),
            SubjectKind::Group => None,
        })
        .collect()
}

/// What a binding names: its users, or that it could name anyone.
type Named = Option<Vec<String>>;

/// Follows the watches of RBAC and forgets the answers each change may alter.
pub struct RbacChanges {
    verdicts: Arc<Verdicts>,
    /// The users each binding (by uid) named when last seen: an edit that removes a subject
    /// must forget that subject's answers too, and the watch shows only the new binding.
    named: HashMap<String, Named>,
    /// The bindings a relist has shown so far.
    relisted: Option<HashSet<String>>,
}

impl RbacChanges {
    pub fn new(verdicts: Arc<Verdicts>) -> RbacChanges {
        RbacChanges {
            verdicts,
            named: HashMap::new(),
            relisted: None,
        }
    }

    pub fn role_binding(&mut self, event: &watcher::Event<RoleBinding>) {
        self.binding(event, |b| {
            (
                b.uid().unwrap_or_default(),
                users_of(b.subjects.as_deref(), b.metadata.namespace.as_deref()),
            )
        });
    }

    pub fn cluster_role_binding(&mut self, event: &watcher::Event<ClusterRoleBinding>) {
        self.binding(event, |b| {
            (
                b.uid().unwrap_or_default(),
                users_of(b.subjects.as_deref(), None),
            )
        });
    }

    fn binding<K>(&mut self, event: &watcher::Event<K>, read: impl Fn(&K) -> (String, Named)) {
        match event {
            watcher::Event::Apply(binding) | watcher::Event::Delete(binding) => {
                let (uid, now) = read(binding);
                let before = if matches!(event, watcher::Event::Delete(_)) {
                    self.named.remove(&uid)
                } else {
                    self.named.insert(uid, now.clone())
                };
                match (before.unwrap_or(Some(Vec::new())), now) {
                    (Some(before), Some(now)) => self
                        .verdicts
                        .forget_users(before.iter().chain(&now).map(String::as_str)),
                    _ => self.verdicts.forget_all(),
                }
            }
            watcher::Event::InitApply(binding) => {
                let (uid, now) = read(binding);
                self.relisted.get_or_insert_default().insert(uid.clone());
                self.named.insert(uid, now);
            }
            // A relist may hide any change made while the watch was away.
            watcher::Event::InitDone => {
                let relisted = self.relisted.take().unwrap_or_default();
                self.named.retain(|uid, _| relisted.contains(uid));
                self.verdicts.forget_all();
            }
            watcher::Event::Init => {}
        }
    }

    /// A Role changed: forgets the answers about the users bound to it in its namespace.
    pub fn role(&self, event: &watcher::Event<Role>, bindings: &ExistingBindings) {
        self.role_changed(event, RoleKind::Role, bindings);
    }

    /// A ClusterRole changed: forgets the answers about the users bound to it anywhere (an
    /// aggregated role's change arrives as its own event, once the aggregation is written).
    pub fn cluster_role(&self, event: &watcher::Event<ClusterRole>, bindings: &ExistingBindings) {
        self.role_changed(event, RoleKind::ClusterRole, bindings);
    }

    fn role_changed<K: Resource>(
        &self,
        event: &watcher::Event<K>,
        kind: RoleKind,
        bindings: &ExistingBindings,
    ) {
        match event {
            watcher::Event::Apply(role) | watcher::Event::Delete(role) => {
                let role_ref = RoleRef {
                    kind,
                    name: role.name_any(),
                };
                let bound = bindings.granting_anywhere(&role_ref, role.namespace().as_deref());
                self.forget_bound(bound.iter().map(|binding| users_named(&binding.subjects)));
            }
            watcher::Event::InitDone => self.verdicts.forget_all(),
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    fn forget_bound(&self, bound: impl Iterator<Item = Named>) {
        let mut users = Vec::new();
        for named in bound {
            match named {
                Some(named) => users.extend(named),
                None => return self.verdicts.forget_all(),
            }
        }
        self.verdicts.forget_users(users.iter().map(String::as_str));
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::rbac::v1::RoleRef;
    use kube::api::ObjectMeta;

    use super::*;

    const QUESTION: &str = "approve manager";

    fn subject(kind: &str, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(Into::into),
            api_group: None,
        }
    }

    fn binding(uid: &str, role: (&str, &str), subjects: Vec<Subject>) -> RoleBinding {
        RoleBinding {
            metadata: ObjectMeta {
                name: Some(uid.into()),
                namespace: Some("payments".into()),
                uid: Some(uid.into()),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: role.0.into(),
                name: role.1.into(),
            },
            subjects: Some(subjects),
        }
    }

    /// bob and carol have answers, asked at `now`.
    fn answered(verdicts: &Verdicts, now: Instant) {
        for user in ["bob", "carol", "system:serviceaccount:payments:ci"] {
            verdicts.put(user, QUESTION.into(), verdicts.generation(), true, now);
        }
    }

    fn kept(verdicts: &Verdicts, now: Instant) -> Vec<&'static str> {
        ["bob", "carol", "system:serviceaccount:payments:ci"]
            .into_iter()
            .filter(|user| verdicts.get(user, QUESTION, now).is_some())
            .collect()
    }

    #[test]
    fn an_answer_is_used_until_its_user_is_rebound_or_it_is_old() {
        let verdicts = Verdicts::default();
        let now = Instant::now();
        answered(&verdicts, now);
        assert_eq!(verdicts.get("bob", QUESTION, now), Some(true));
        assert_eq!(verdicts.get("bob", "another question", now), None);
        assert_eq!(
            verdicts.get("bob", QUESTION, now + MAX_AGE),
            None,
            "too old"
        );
        verdicts.forget_users(["bob"]);
        assert_eq!(
            kept(&verdicts, now),
            ["carol", "system:serviceaccount:payments:ci"]
        );
        verdicts.forget_all();
        assert!(kept(&verdicts, now).is_empty());
    }

    #[test]
    fn an_answer_asked_before_a_change_of_its_user_is_not_kept() {
        let verdicts = Verdicts::default();
        let now = Instant::now();
        let asked_in = verdicts.generation();
        verdicts.forget_users(["bob"]);
        verdicts.put("bob", QUESTION.into(), asked_in, true, now);
        verdicts.put("carol", QUESTION.into(), asked_in, true, now);
        assert_eq!(kept(&verdicts, now), ["carol"]);
        verdicts.forget_all();
        verdicts.put("carol", QUESTION.into(), asked_in, true, now);
        assert!(kept(&verdicts, now).is_empty());
    }

    #[test]
    fn a_binding_forgets_the_users_it_names_and_named_before() {
        let verdicts = Arc::new(Verdicts::default());
        let now = Instant::now();
        let mut changes = RbacChanges::new(verdicts.clone());
        let grant = |subjects| binding("b1", ("ClusterRole", "db-reader"), subjects);

        // A grant to alice (the operator's own, say) keeps the approvers' answers.
        answered(&verdicts, now);
        changes.role_binding(&watcher::Event::Apply(grant(vec![subject(
            "User", "alice", None,
        )])));
        assert_eq!(kept(&verdicts, now).len(), 3);

        // Edited to name bob instead: bob's answers go; then to carol: bob's go too (he was
        // named before), and carol's.
        changes.role_binding(&watcher::Event::Apply(grant(vec![subject(
            "User", "bob", None,
        )])));
        assert_eq!(
            kept(&verdicts, now),
            ["carol", "system:serviceaccount:payments:ci"]
        );
        answered(&verdicts, now);
        changes.role_binding(&watcher::Event::Apply(grant(vec![subject(
            "User", "carol", None,
        )])));
        assert_eq!(kept(&verdicts, now), ["system:serviceaccount:payments:ci"]);

        // A ServiceAccount subject is the user system:serviceaccount:<namespace>:<name>, its
        // namespace defaulting to the binding's.
        answered(&verdicts, now);
        changes.role_binding(&watcher::Event::Delete(grant(vec![subject(
            "ServiceAccount",
            "ci",
            None,
        )])));
        assert_eq!(kept(&verdicts, now), ["bob"]);

        // A Group could hold anyone: every answer goes.
        answered(&verdicts, now);
        changes.role_binding(&watcher::Event::Apply(binding(
            "b2",
            ("ClusterRole", "admin"),
            vec![subject("Group", "payments-oncall", None)],
        )));
        assert!(kept(&verdicts, now).is_empty());

        // So does a relist, and it forgets what bindings it no longer shows named.
        answered(&verdicts, now);
        changes.role_binding(&watcher::Event::InitApply(grant(vec![subject(
            "User", "alice", None,
        )])));
        changes.role_binding(&watcher::Event::InitDone);
        assert!(kept(&verdicts, now).is_empty());
        assert_eq!(changes.named.keys().collect::<Vec<_>>(), ["b1"]);
    }

    #[test]
    fn a_role_forgets_the_users_bound_to_it() {
        let verdicts = Arc::new(Verdicts::default());
        let now = Instant::now();
        let bindings = ExistingBindings::default();
        for b in [
            binding(
                "b1",
                ("Role", "approver"),
                vec![subject("User", "bob", None)],
            ),
            binding(
                "b2",
                ("ClusterRole", "approver"),
                vec![subject("User", "carol", None)],
            ),
        ] {
            bindings.role_binding(&watcher::Event::Apply(b));
        }
        let changes = RbacChanges::new(verdicts.clone());
        let role = Role {
            metadata: ObjectMeta {
                name: Some("approver".into()),
                namespace: Some("payments".into()),
                ..Default::default()
            },
            rules: None,
        };
        answered(&verdicts, now);
        changes.role(&watcher::Event::Apply(role), &bindings);
        assert_eq!(
            kept(&verdicts, now),
            ["carol", "system:serviceaccount:payments:ci"]
        );

        let cluster_role = ClusterRole {
            metadata: ObjectMeta {
                name: Some("approver".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        answered(&verdicts, now);
        changes.cluster_role(&watcher::Event::Delete(cluster_role), &bindings);
        assert_eq!(
            kept(&verdicts, now),
            ["bob", "system:serviceaccount:payments:ci"]
        );
    }
}
