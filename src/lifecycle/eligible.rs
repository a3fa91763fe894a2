//! Who may decide a waiting stage, for requesters to know whom to ask (`status.approvers`): the
//! holders of verb `approve` on `approvals.gatehouse.dev` for the stage's role, read from the RBAC
//! objects the operator caches, or for a `RequesterManager` stage the requester's manager per the
//! org chart. A listing only: admission and the operator's own checks stay the authority.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, Role};

use super::protocol::Parties;
use crate::access::rbac_view::ExistingBinding;
use crate::api::common::{RoleKind, RoleRef, StageApprovers, Subject, SubjectKind};
use crate::api::{GROUP, ORG_CHART};

/// How many names of each kind (users, groups, ServiceAccounts) a stage lists; `more` counts the
/// rest, so a status stays small however many hold a right.
pub const LISTED: usize = 20;

/// The subjects holding one approver right where it counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holders {
    pub users: BTreeSet<String>,
    pub groups: BTreeSet<String>,
    /// `(namespace, name)`.
    pub service_accounts: BTreeSet<(String, String)>,
}

impl Holders {
    /// Those who hold the right in both `self` and `other`.
    fn intersect(&self, other: &Holders) -> Holders {
        Holders {
            users: self.users.intersection(&other.users).cloned().collect(),
            groups: self.groups.intersection(&other.groups).cloned().collect(),
            service_accounts: self
                .service_accounts
                .intersection(&other.service_accounts)
                .cloned()
                .collect(),
        }
    }
}

/// The requester's manager per the org chart, or why there is none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Manager {
    Named(String),
    /// Nobody can decide a manager stage; the message says which key to add where.
    Unmapped(String),
}

impl Manager {
    /// Looks `requester` up in the org chart's `spec.managers` (`None`: OrgChart [`ORG_CHART`]
    /// does not exist). Its schema keeps every value a non-empty username.
    pub fn of(requester: &str, managers: Option<&BTreeMap<String, String>>) -> Self {
        let entry = serde_json::json!({ "spec": { "managers": { requester: "<manager>" } } });
        let fix = format!(
            "add key '{requester}' to spec.managers with the manager's username (kubectl patch orgchart {ORG_CHART} --type merge -p '{entry}')"
        );
        match managers {
            None => Manager::Unmapped(format!(
                "OrgChart {ORG_CHART} does not exist, so the requester '{requester}' has no manager; create it (kubectl apply -f deploy/base/org-chart.yaml, or install the Helm chart) and {fix}"
            )),
            Some(managers) => match managers.get(requester) {
                Some(manager) => Manager::Named(manager.clone()),
                None => Manager::Unmapped(format!(
                    "OrgChart {ORG_CHART} has no entry for the requester '{requester}' in spec.managers, so nobody can decide this stage; {fix}"
                )),
            },
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Manager::Named(name) => Some(name),
            Manager::Unmapped(_) => None,
        }
    }
}

/// Who may decide, as the controller observed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approvers {
    /// The holders of each role's right where it counts, for the roles the policy names.
    pub holders: BTreeMap<String, Holders>,
    pub manager: Manager,
}

impl Approvers {
    /// Nobody holds a right and the org chart names no manager: for tests of other parts.
    #[cfg(test)]
    pub fn nobody() -> Approvers {
        Approvers {
            holders: BTreeMap::new(),
            manager: Manager::Unmapped("no org chart in this test".into()),
        }
    }
}

/// The bindings of a cluster, as the holders of a right are read from them.
pub trait Bound {
    /// The subjects of each binding granting `role` in `namespace` (`None`: each
    /// ClusterRoleBinding); a ServiceAccount's namespace filled in from its binding's.
    fn subjects_bound(&self, namespace: Option<&str>, role: &RoleRef) -> Vec<Vec<Subject>>;
}

/// A scan: what the operator's index answers by lookup, for the bindings as converted.
impl Bound for Vec<ExistingBinding> {
    fn subjects_bound(&self, namespace: Option<&str>, role: &RoleRef) -> Vec<Vec<Subject>> {
        self.iter()
            .filter(|binding| binding.namespace.as_deref() == namespace && binding.role == *role)
            .map(|binding| binding.subjects.clone())
            .collect()
    }
}

/// The RBAC objects the holders are read from, as the operator caches them.
pub struct Rbac<'a> {
    pub bindings: &'a dyn Bound,
    pub roles: &'a [std::sync::Arc<Role>],
    pub cluster_roles: &'a [std::sync::Arc<ClusterRole>],
}

impl Rbac<'_> {
    /// Who holds verb `approve` on `approvals.gatehouse.dev` for `role` in every one of `scopes`
    /// (a namespace, or `None`: cluster-wide, through a ClusterRoleBinding only), as the RBAC
    /// authorizer would answer: a RoleBinding of the namespace or any ClusterRoleBinding, whose
    /// role has a rule naming the role as resourceName (or no resourceNames), with `*` matching.
    pub fn holders(&self, role: &str, scopes: &[Option<&str>]) -> Holders {
        let granting = Granting::of(self, role);
        let mut held: Option<Holders> = None;
        for scope in scopes {
            let here = self.holders_in(&granting, *scope);
            held = Some(match held {
                None => here,
                Some(before) => before.intersect(&here),
            });
        }
        held.unwrap_or_default()
    }

    /// The subjects of the bindings of the granting roles that count in `scope`: only the few
    /// bindings of those roles are looked at, however many other bindings exist.
    fn holders_in(&self, granting: &Granting, scope: Option<&str>) -> Holders {
        let mut holders = Holders::default();
        let cluster_role = |name: &str| RoleRef {
            kind: RoleKind::ClusterRole,
            name: name.to_string(),
        };
        let mut bound = Vec::new();
        for name in &granting.cluster_roles {
            bound.extend(self.bindings.subjects_bound(None, &cluster_role(name)));
        }
        if let Some(namespace) = scope {
            for name in &granting.cluster_roles {
                bound.extend(
                    self.bindings
                        .subjects_bound(Some(namespace), &cluster_role(name)),
                );
            }
            for (_, name) in granting.roles.iter().filter(|(ns, _)| *ns == namespace) {
                let role = RoleRef {
                    kind: RoleKind::Role,
                    name: name.to_string(),
                };
                bound.extend(self.bindings.subjects_bound(Some(namespace), &role));
            }
        }
        for subjects in &bound {
            add_subjects(&mut holders, subjects);
        }
        holders
    }
}

/// The roles whose rules grant one approver role's right: ClusterRoles by name, Roles by
/// namespace and name. Found once per role, so that a binding is one lookup, not a scan of every
/// role (bindings outnumber roles by far once every grant is one).
struct Granting<'a> {
    cluster_roles: HashSet<&'a str>,
    roles: HashSet<(&'a str, &'a str)>,
}

impl<'a> Granting<'a> {
    fn of(rbac: &Rbac<'a>, role: &str) -> Granting<'a> {
        Granting {
            cluster_roles: rbac
                .cluster_roles
                .iter()
                .filter(|r| grants_approve(r.rules.as_deref(), role))
                .filter_map(|r| r.metadata.name.as_deref())
                .collect(),
            roles: rbac
                .roles
                .iter()
                .filter(|r| grants_approve(r.rules.as_deref(), role))
                .filter_map(|r| {
                    Some((
                        r.metadata.namespace.as_deref()?,
                        r.metadata.name.as_deref()?,
                    ))
                })
                .collect(),
        }
    }
}

/// Whether `rules` allow verb `approve` on `approvals.gatehouse.dev` named `role`.
fn grants_approve(rules: Option<&[PolicyRule]>, role: &str) -> bool {
    let has = |list: Option<&Vec<String>>, want: &str| {
        list.is_some_and(|l| l.iter().any(|v| v == want || v == "*"))
    };
    rules.unwrap_or_default().iter().any(|rule| {
        has(rule.api_groups.as_ref(), GROUP)
            && has(rule.resources.as_ref(), "approvals")
            && has(Some(&rule.verbs), "approve")
            && rule
                .resource_names
                .as_ref()
                .is_none_or(|names| names.is_empty() || names.iter().any(|n| n == role))
    })
}

/// Adds a binding's subjects.
fn add_subjects(holders: &mut Holders, subjects: &[Subject]) {
    for subject in subjects {
        match subject.kind {
            SubjectKind::User => {
                holders.users.insert(subject.name.clone());
            }
            // Groups the control plane puts identities in (system:masters, system:authenticated,
            // system:serviceaccounts:…) name nobody to ask.
            SubjectKind::Group if !subject.name.starts_with("system:") => {
                holders.groups.insert(subject.name.clone());
            }
            SubjectKind::Group => {}
            SubjectKind::ServiceAccount => {
                if let Some(ns) = subject.namespace.as_deref() {
                    holders
                        .service_accounts
                        .insert((ns.to_string(), subject.name.clone()));
                }
            }
        }
    }
}

/// Who may decide each of the `waiting` stages: the manager for `manager_stages`, otherwise the
/// holders of the role's right, less those who may not decide on the object (`parties`).
/// Groups are listed only when `groups_count`: where the operator proves a right with a
/// SubjectAccessReview of the username alone, a right held through a group does not count.
pub fn listed(
    waiting: &[&str],
    manager_stages: &[String],
    approvers: &Approvers,
    parties: &Parties,
    groups_count: impl Fn(&str) -> bool,
) -> Vec<StageApprovers> {
    waiting
        .iter()
        .map(|role| {
            if manager_stages.iter().any(|m| m == role) {
                return StageApprovers {
                    role: role.to_string(),
                    manager: approvers
                        .manager
                        .name()
                        .filter(|m| !excluded_user(parties, m))
                        .map(str::to_string),
                    ..Default::default()
                };
            }
            let none = Holders::default();
            let holders = approvers.holders.get(*role).unwrap_or(&none);
            let users: Vec<String> = holders
                .users
                .iter()
                .filter(|u| !excluded_user(parties, u))
                .cloned()
                .collect();
            let groups: Vec<String> = if groups_count(role) {
                holders
                    .groups
                    .iter()
                    .filter(|g| !is_subject(parties, SubjectKind::Group, g, None))
                    .cloned()
                    .collect()
            } else {
                Vec::new()
            };
            let service_accounts: Vec<String> = holders
                .service_accounts
                .iter()
                .filter(|(ns, name)| {
                    !is_subject(parties, SubjectKind::ServiceAccount, name, Some(ns))
                        && !excluded_user(parties, &format!("system:serviceaccount:{ns}:{name}"))
                })
                .map(|(ns, name)| format!("{ns}/{name}"))
                .collect();
            let beyond = |list: &Vec<String>| list.len().saturating_sub(LISTED);
            let more = beyond(&users) + beyond(&groups) + beyond(&service_accounts);
            let first = |list: Vec<String>| list.into_iter().take(LISTED).collect();
            StageApprovers {
                role: role.to_string(),
                users: first(users),
                groups: first(groups),
                service_accounts: first(service_accounts),
                manager: None,
                more: (more > 0).then(|| u32::try_from(more).unwrap_or(u32::MAX)),
            }
        })
        .collect()
}

/// The requester, the filer, and a User subject never decide.
fn excluded_user(parties: &Parties, user: &str) -> bool {
    user == parties.requester
        || parties.filed_by == Some(user)
        || is_subject(parties, SubjectKind::User, user, None)
}

fn is_subject(parties: &Parties, kind: SubjectKind, name: &str, namespace: Option<&str>) -> bool {
    parties.subjects.iter().any(|s| {
        s.kind == kind
            && s.name == name
            && (kind != SubjectKind::ServiceAccount || s.namespace.as_deref() == namespace)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::{
        ClusterRoleBinding, RoleBinding, RoleRef as RbacRoleRef, Subject as RbacSubject,
    };
    use kube::api::ObjectMeta;
    use std::sync::Arc;

    fn rule(names: &[&str], verbs: &[&str]) -> PolicyRule {
        PolicyRule {
            api_groups: Some(vec![GROUP.into()]),
            resources: Some(vec!["approvals".into()]),
            resource_names: Some(names.iter().map(|n| n.to_string()).collect()),
            verbs: verbs.iter().map(|v| v.to_string()).collect(),
            ..Default::default()
        }
    }

    fn meta(namespace: Option<&str>, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(str::to_string),
            ..Default::default()
        }
    }

    fn subject(kind: &str, name: &str) -> RbacSubject {
        RbacSubject {
            kind: kind.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    fn role_ref(kind: &str, name: &str) -> RbacRoleRef {
        RbacRoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    struct Fixture {
        bindings: Vec<ExistingBinding>,
        roles: Vec<Arc<Role>>,
        cluster_roles: Vec<Arc<ClusterRole>>,
    }

    impl Fixture {
        fn rbac(&self) -> Rbac<'_> {
            Rbac {
                bindings: &self.bindings,
                roles: &self.roles,
                cluster_roles: &self.cluster_roles,
            }
        }
    }

    /// The bindings as the operator's index holds them.
    fn converted(
        role_bindings: Vec<RoleBinding>,
        cluster_role_bindings: Vec<ClusterRoleBinding>,
    ) -> Vec<ExistingBinding> {
        let namespaced = role_bindings
            .iter()
            .filter_map(ExistingBinding::from_role_binding);
        let cluster_wide = cluster_role_bindings
            .iter()
            .filter_map(ExistingBinding::from_cluster_role_binding);
        namespaced.chain(cluster_wide).collect()
    }

    /// In `payments`: bob through a Role naming data-owner, the group `owners` and
    /// ServiceAccount `payments/bot` through the ClusterRole `approve-any` (no resourceNames);
    /// cluster-wide: carol for security (`*` verbs), and `system:masters` for everything.
    fn fixture() -> Fixture {
        Fixture {
            roles: vec![Arc::new(Role {
                metadata: meta(Some("payments"), "owner"),
                rules: Some(vec![rule(&["data-owner"], &["approve"])]),
            })],
            cluster_roles: vec![
                Arc::new(ClusterRole {
                    metadata: meta(None, "approve-any"),
                    rules: Some(vec![rule(&[], &["approve"])]),
                    ..Default::default()
                }),
                Arc::new(ClusterRole {
                    metadata: meta(None, "security"),
                    rules: Some(vec![rule(&["security"], &["*"])]),
                    ..Default::default()
                }),
                Arc::new(ClusterRole {
                    metadata: meta(None, "viewer"),
                    rules: Some(vec![rule(&["security"], &["get"])]),
                    ..Default::default()
                }),
                Arc::new(ClusterRole {
                    metadata: meta(None, "cluster-admin"),
                    rules: Some(vec![PolicyRule {
                        api_groups: Some(vec!["*".into()]),
                        resources: Some(vec!["*".into()]),
                        verbs: vec!["*".into()],
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
            ],
            bindings: converted(
                vec![
                    RoleBinding {
                        metadata: meta(Some("payments"), "bob"),
                        role_ref: role_ref("Role", "owner"),
                        subjects: Some(vec![subject("User", "bob"), subject("User", "alice")]),
                    },
                    RoleBinding {
                        metadata: meta(Some("payments"), "any"),
                        role_ref: role_ref("ClusterRole", "approve-any"),
                        subjects: Some(vec![
                            subject("Group", "owners"),
                            subject("ServiceAccount", "bot"),
                        ]),
                    },
                    RoleBinding {
                        metadata: meta(Some("orders"), "dave"),
                        role_ref: role_ref("Role", "owner"),
                        subjects: Some(vec![subject("User", "dave")]),
                    },
                ],
                vec![
                    ClusterRoleBinding {
                        metadata: meta(None, "carol"),
                        role_ref: role_ref("ClusterRole", "security"),
                        subjects: Some(vec![subject("User", "carol")]),
                    },
                    ClusterRoleBinding {
                        metadata: meta(None, "viewers"),
                        role_ref: role_ref("ClusterRole", "viewer"),
                        subjects: Some(vec![subject("User", "erin")]),
                    },
                    ClusterRoleBinding {
                        metadata: meta(None, "cluster-admin"),
                        role_ref: role_ref("ClusterRole", "cluster-admin"),
                        subjects: Some(vec![subject("Group", "system:masters")]),
                    },
                ],
            ),
        }
    }

    fn users(holders: &Holders) -> Vec<&str> {
        holders.users.iter().map(String::as_str).collect()
    }

    #[test]
    fn holders_are_read_from_the_bindings_where_the_right_counts() {
        let fixture = fixture();
        let rbac = fixture.rbac();
        let owners = rbac.holders("data-owner", &[Some("payments")]);
        assert_eq!(users(&owners), ["alice", "bob"]);
        assert_eq!(owners.groups, BTreeSet::from(["owners".to_string()]));
        assert_eq!(
            owners.service_accounts,
            BTreeSet::from([("payments".to_string(), "bot".to_string())])
        );
        // dave holds it in orders only: not where the grant reaches payments as well.
        assert!(
            rbac.holders("data-owner", &[Some("payments"), Some("orders")])
                .users
                .is_empty()
        );
        // A verb other than approve grants nothing; `*` does; cluster-wide only sees
        // ClusterRoleBindings.
        assert_eq!(
            users(&rbac.holders("security", &[Some("payments")])),
            ["carol"]
        );
        assert_eq!(
            users(&rbac.holders("data-owner", &[None])),
            Vec::<&str>::new()
        );
    }

    #[test]
    fn listed_leaves_out_who_may_not_decide_and_names_the_manager_for_manager_stages() {
        let fixture = fixture();
        let rbac = fixture.rbac();
        let approvers = Approvers {
            holders: BTreeMap::from([(
                "data-owner".to_string(),
                rbac.holders("data-owner", &[Some("payments")]),
            )]),
            manager: Manager::Named("bob".into()),
        };
        let subjects = [Subject {
            kind: SubjectKind::ServiceAccount,
            name: "bot".into(),
            namespace: Some("payments".into()),
        }];
        let parties = Parties {
            requester: "alice",
            filed_by: None,
            subjects: &subjects,
        };
        let stages = listed(
            &["manager", "data-owner"],
            &["manager".to_string()],
            &approvers,
            &parties,
            |_| false,
        );
        assert_eq!(stages[0].manager.as_deref(), Some("bob"));
        assert!(stages[0].users.is_empty());
        assert_eq!(stages[1].users, ["bob"], "the requester alice is left out");
        assert!(stages[1].groups.is_empty(), "groups do not count here");
        assert!(
            stages[1].service_accounts.is_empty(),
            "the subject is left out"
        );

        let self_managed = Approvers {
            manager: Manager::Named("alice".into()),
            ..approvers
        };
        let again = listed(
            &["manager"],
            &["manager".to_string()],
            &self_managed,
            &parties,
            |_| true,
        );
        assert_eq!(
            again[0].manager, None,
            "the requester never decides, even as manager"
        );
    }

    #[test]
    fn a_long_list_is_bounded_and_counts_the_rest() {
        let holders = Holders {
            users: (0..25).map(|i| format!("user-{i:02}")).collect(),
            ..Default::default()
        };
        let approvers = Approvers {
            holders: BTreeMap::from([("data-owner".to_string(), holders)]),
            manager: Manager::Unmapped("none".into()),
        };
        let parties = Parties {
            requester: "alice",
            filed_by: None,
            subjects: &[],
        };
        let listed = listed(&["data-owner"], &[], &approvers, &parties, |_| true);
        assert_eq!(listed[0].users.len(), LISTED);
        assert_eq!(listed[0].more, Some(5));
    }

    #[test]
    fn a_missing_entry_names_the_key_and_the_org_chart() {
        let chart = BTreeMap::from([("erin".to_string(), "frank".to_string())]);
        assert_eq!(
            Manager::of("erin", Some(&chart)),
            Manager::Named("frank".into())
        );
        let Manager::Unmapped(why) = Manager::of("alice", Some(&chart)) else {
            panic!("alice has no entry");
        };
        assert!(
            why.contains("OrgChart gatehouse has no entry for the requester 'alice' in spec.managers")
                && why.contains("add key 'alice'")
                && why.contains(r#"kubectl patch orgchart gatehouse --type merge -p '{"spec":{"managers":{"alice":"<manager>"}}}'"#),
            "{why}"
        );
        let Manager::Unmapped(why) = Manager::of("alice", None) else {
            panic!("no org chart");
        };
        assert!(
            why.contains("OrgChart gatehouse does not exist")
                && why.contains("kubectl apply -f deploy/base/org-chart.yaml"),
            "{why}"
        );
    }
}
