//! Who already holds what, as far as the checks can see: RoleBindings, ClusterRoleBindings and
//! other requests' grants in one shape, and whether one reaches a request subject directly,
//! through a group the subject is known to be in, or through groups Gatehouse cannot see.
//!
//! Kubernetes puts every subject in some groups itself (`system:authenticated`,
//! `system:serviceaccounts:<ns>`, ...); those count. A user's other groups come from the
//! authenticator, which Gatehouse cannot see, so a binding to such a group is reported as not
//! checked rather than guessed either way.

use k8s_openapi::api::rbac::v1 as rbac;

use super::{AcceptedRequest, describe_subject};
use crate::api::OWNER_LABEL;
use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};

/// API group of every RBAC role reference.
const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// Prefix of the username a ServiceAccount authenticates as: `system:serviceaccount:<ns>:<name>`.
const SERVICE_ACCOUNT_USER_PREFIX: &str = "system:serviceaccount:";

/// The group of every authenticated user and ServiceAccount.
const AUTHENTICATED: &str = "system:authenticated";
/// The group of every anonymous request.
const UNAUTHENTICATED: &str = "system:unauthenticated";
/// The username of anonymous requests.
const ANONYMOUS: &str = "system:anonymous";
/// The group of every ServiceAccount; `system:serviceaccounts:<ns>` holds those of one namespace.
const SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// An RBAC binding as the checks see it: a RoleBinding (`namespace` is `Some`) or a
/// ClusterRoleBinding (`None`), or an active Gatehouse grant of another request.
///
/// The checks compare roles by reference, so a RoleBinding's `Role` reference means the Role of
/// that name in the binding's own namespace, exactly as the RBAC authorizer resolves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingBinding {
    /// Human-readable origin shown in findings, e.g. `RoleBinding payments/db-readers` or
    /// `AccessRequest payments/bob-db (active grant)`.
    pub source: String,
    /// Namespace of a RoleBinding; `None` for a ClusterRoleBinding, which applies everywhere.
    pub namespace: Option<String>,
    /// The role the binding grants.
    pub role: RoleRef,
    /// Who the binding grants it to.
    pub subjects: Vec<Subject>,
}

impl ExistingBinding {
    /// Converts a RoleBinding. `None` when the binding cannot grant anything the checks can
    /// reason about: it has no namespace or its roleRef is not an RBAC Role or ClusterRole.
    ///
    /// A ServiceAccount subject without a namespace is read as one in the binding's namespace,
    /// as the RBAC authorizer does; subjects of unknown kinds are dropped because no request can
    /// name them.
    pub fn from_role_binding(rb: &rbac::RoleBinding) -> Option<Self> {
        let namespace = rb.metadata.namespace.clone()?;
        let role = role_ref(&rb.role_ref)?;
        let name = rb.metadata.name.as_deref().unwrap_or("(unnamed)");
        Some(Self {
            source: format!("RoleBinding {namespace}/{name}{}", managed_by(&rb.metadata)),
            subjects: subjects(rb.subjects.as_deref(), Some(&namespace)),
            namespace: Some(namespace),
            role,
        })
    }

    /// Converts a ClusterRoleBinding. `None` when its roleRef is not an RBAC ClusterRole: a
    /// ClusterRoleBinding cannot refer to a namespaced Role, so such an object grants nothing.
    pub fn from_cluster_role_binding(crb: &rbac::ClusterRoleBinding) -> Option<Self> {
        let role = role_ref(&crb.role_ref)?;
        if role.kind != RoleKind::ClusterRole {
            return None;
        }
        let name = crb.metadata.name.as_deref().unwrap_or("(unnamed)");
        Some(Self {
            source: format!("ClusterRoleBinding {name}{}", managed_by(&crb.metadata)),
            namespace: None,
            role,
            subjects: subjects(crb.subjects.as_deref(), None),
        })
    }

    /// The bindings an active (or about to be provisioned) grant of another AccessRequest
    /// amounts to: one per target namespace, or one cluster-wide. Lets the checks see grants
    /// whose RBAC objects are not (yet) in the controller's view.
    pub fn from_grant(
        request_namespace: &str,
        request_name: &str,
        grant: &AcceptedRequest,
    ) -> Vec<Self> {
        let source = format!("AccessRequest {request_namespace}/{request_name} (active grant)");
        let binding = |namespace: Option<String>| Self {
            source: source.clone(),
            namespace,
            role: grant.role.clone(),
            subjects: grant.subjects.clone(),
        };
        if grant.cluster_wide {
            vec![binding(None)]
        } else {
            grant
                .namespaces
                .iter()
                .map(|ns| binding(Some(ns.clone())))
                .collect()
        }
    }

    /// Where the binding applies, for messages.
    pub(super) fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".to_string(),
        }
    }

    /// How the binding reaches `subject` (whose groups are `groups`), if it may at all.
    pub(super) fn reach(&self, subject: &Subject, groups: &Memberships) -> Option<Reach> {
        if self.subjects.iter().any(|held| same_subject(subject, held)) {
            return Some(Reach::Direct);
        }
        let mut bound_groups: Vec<&str> = self
            .subjects
            .iter()
            .filter(|held| held.kind == SubjectKind::Group)
            .map(|held| held.name.as_str())
            .collect();
        bound_groups.sort_unstable();
        bound_groups.dedup();
        if let Some(group) = bound_groups
            .iter()
            .find(|g| groups.known.iter().any(|k| k == *g))
        {
            return Some(Reach::Member(group.to_string()));
        }
        if groups.complete {
            return None;
        }
        let possible: Vec<String> = bound_groups
            .into_iter()
            .filter(|g| !groups.excluded.contains(g))
            .map(str::to_string)
            .collect();
        (!possible.is_empty()).then_some(Reach::Unknown(possible))
    }
}

/// How a binding reaches a request subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Reach {
    /// The binding names the subject itself.
    Direct,
    /// The binding names a group the subject is known to be in.
    Member(String),
    /// The binding names groups the subject may be in: Gatehouse cannot see a user's groups.
    Unknown(Vec<String>),
}

/// The groups a subject is in, as far as Gatehouse can know without seeing the authenticator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Memberships {
    /// Groups the subject is certainly in.
    known: Vec<String>,
    /// Whether `known` is all of them (true for ServiceAccounts, groups and anonymous).
    complete: bool,
    /// Groups the subject is certainly not in, though `known` is incomplete.
    excluded: &'static [&'static str],
}

/// What Kubernetes itself puts every subject in: a ServiceAccount `ns/name` is in
/// `system:serviceaccounts`, `system:serviceaccounts:<ns>` and `system:authenticated` and nothing
/// else; a user in `system:authenticated` and in whatever groups the authenticator adds, which
/// Gatehouse cannot see; a group is only itself.
pub(super) fn memberships(subject: &Subject) -> Memberships {
    let subject = canonical(subject);
    match subject.kind {
        SubjectKind::ServiceAccount => Memberships {
            known: vec![
                AUTHENTICATED.to_string(),
                SERVICE_ACCOUNTS.to_string(),
                format!(
                    "{SERVICE_ACCOUNTS}:{}",
                    subject.namespace.unwrap_or_default()
                ),
            ],
            complete: true,
            excluded: &[],
        },
        SubjectKind::User if subject.name == ANONYMOUS => Memberships {
            known: vec![UNAUTHENTICATED.to_string()],
            complete: true,
            excluded: &[],
        },
        SubjectKind::User => Memberships {
            known: vec![AUTHENTICATED.to_string()],
            complete: false,
            excluded: &[UNAUTHENTICATED],
        },
        SubjectKind::Group => Memberships {
            known: Vec::new(),
            complete: true,
            excluded: &[],
        },
    }
}

/// What the checks could not see about `subject` holding something through `groups`.
pub(super) fn unchecked(subject: &Subject, groups: &[String]) -> String {
    let that = if groups.len() == 1 {
        "that group"
    } else {
        "those groups"
    };
    format!(
        "group memberships of {} are not visible to Gatehouse, so whether {} holds it through {that} was not checked",
        describe_subject(subject),
        subject.name
    )
}

/// `Group a` or `Groups a, b`, for messages.
pub(super) fn describe_groups(groups: &[String]) -> String {
    if groups.len() == 1 {
        format!("Group {}", groups[0])
    } else {
        format!("Groups {}", groups.join(", "))
    }
}

/// Whether a request subject is the same identity as a binding subject: same kind and name, and
/// for a ServiceAccount the same namespace. A user named `system:serviceaccount:<ns>:<name>` is
/// that ServiceAccount, as the API server authenticates it, so writing a ServiceAccount either
/// way cannot hide a conflict.
fn same_subject(a: &Subject, b: &Subject) -> bool {
    subject_identity(a) == subject_identity(b)
}

/// Who `subject` is, as one string: equal for two subjects exactly when they are the same
/// (a ServiceAccount's username form included); a namespace counts for ServiceAccounts only.
pub fn subject_identity(subject: &Subject) -> String {
    let subject = canonical(subject);
    match subject.kind {
        SubjectKind::ServiceAccount => format!(
            "ServiceAccount:{}:{}",
            subject.namespace.unwrap_or_default(),
            subject.name
        ),
        SubjectKind::User => format!("User:{}", subject.name),
        SubjectKind::Group => format!("Group:{}", subject.name),
    }
}

/// `subject` with a ServiceAccount's username form turned into a ServiceAccount subject.
fn canonical(subject: &Subject) -> Subject {
    if subject.kind == SubjectKind::User
        && let Some(rest) = subject.name.strip_prefix(SERVICE_ACCOUNT_USER_PREFIX)
        && let Some((namespace, name)) = rest.split_once(':')
        && !namespace.is_empty()
        && !name.is_empty()
    {
        return Subject {
            kind: SubjectKind::ServiceAccount,
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
        };
    }
    subject.clone()
}

/// An RBAC roleRef as a Gatehouse RoleRef; `None` for anything but an RBAC Role or ClusterRole.
fn role_ref(role_ref: &rbac::RoleRef) -> Option<RoleRef> {
    if role_ref.api_group != RBAC_GROUP {
        return None;
    }
    // RBAC names its kinds exactly as the Gatehouse API does.
    let kind = RoleKind::from_name(&role_ref.kind)?;
    Some(RoleRef {
        kind,
        name: role_ref.name.clone(),
    })
}

/// RBAC subjects of the kinds a request can name; `default_namespace` completes ServiceAccount
/// subjects of a RoleBinding.
fn subjects(subjects: Option<&[rbac::Subject]>, default_namespace: Option<&str>) -> Vec<Subject> {
    subjects
        .unwrap_or_default()
        .iter()
        .filter_map(|s| {
            let kind = SubjectKind::from_name(&s.kind)?;
            let namespace = match kind {
                SubjectKind::ServiceAccount => s
                    .namespace
                    .clone()
                    .filter(|ns| !ns.is_empty())
                    .or_else(|| default_namespace.map(str::to_string)),
                SubjectKind::User | SubjectKind::Group => None,
            };
            Some(Subject {
                kind,
                name: s.name.clone(),
                namespace,
            })
        })
        .collect()
}

/// ` (Gatehouse grant of <owner>)` for a binding the operator created, so approvers can tell a
/// temporary grant from standing access.
fn managed_by(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(OWNER_LABEL))
        .map(|owner| format!(" (Gatehouse grant of {owner})"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::access::findings::check;
    use crate::access::fixtures::*;
    use crate::api::FindingType;

    fn rbac_subject(kind: &str, name: &str, namespace: Option<&str>) -> rbac::Subject {
        rbac::Subject {
            api_group: None,
            kind: kind.into(),
            name: name.into(),
            namespace: namespace.map(str::to_string),
        }
    }

    fn rbac_role_ref(kind: &str, name: &str) -> rbac::RoleRef {
        rbac::RoleRef {
            api_group: RBAC_GROUP.into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    // ---- conversions ----

    #[test]
    fn role_binding_converts_subjects_and_completes_service_account_namespace() {
        let rb = rbac::RoleBinding {
            metadata: ObjectMeta {
                name: Some("db-readers".into()),
                namespace: Some("payments".into()),
                ..Default::default()
            },
            role_ref: rbac_role_ref("Role", "db-reader"),
            subjects: Some(vec![
                rbac_subject("User", "alice", None),
                rbac_subject("Group", "payments-team", None),
                rbac_subject("ServiceAccount", "batch", None),
                rbac_subject("ServiceAccount", "report", Some("analytics")),
                rbac_subject("Robot", "r2", None),
            ]),
        };
        let converted = ExistingBinding::from_role_binding(&rb).expect("converted");
        assert_eq!(converted.source, "RoleBinding payments/db-readers");
        assert_eq!(converted.namespace.as_deref(), Some("payments"));
        assert_eq!(converted.role, role("db-reader"));
        assert_eq!(
            converted.subjects,
            vec![
                user("alice"),
                Subject {
                    kind: SubjectKind::Group,
                    name: "payments-team".into(),
                    namespace: None
                },
                service_account("payments", "batch"),
                service_account("analytics", "report"),
            ]
        );
    }

    #[test]
    fn role_binding_without_namespace_or_with_unknown_role_ref_is_skipped() {
        let mut rb = rbac::RoleBinding {
            metadata: ObjectMeta {
                name: Some("x".into()),
                namespace: Some("payments".into()),
                ..Default::default()
            },
            role_ref: rbac_role_ref("ClusterRole", "db-reader"),
            subjects: None,
        };
        assert!(ExistingBinding::from_role_binding(&rb).is_some());
        rb.role_ref.kind = "Something".into();
        assert!(ExistingBinding::from_role_binding(&rb).is_none());
        rb.role_ref = rbac_role_ref("ClusterRole", "db-reader");
        rb.role_ref.api_group = "example.com".into();
        assert!(ExistingBinding::from_role_binding(&rb).is_none());
        rb.role_ref = rbac_role_ref("ClusterRole", "db-reader");
        rb.metadata.namespace = None;
        assert!(ExistingBinding::from_role_binding(&rb).is_none());
    }

    #[test]
    fn cluster_role_binding_converts_and_names_gatehouse_grants() {
        let mut crb = rbac::ClusterRoleBinding {
            metadata: ObjectMeta {
                name: Some("db-readers".into()),
                labels: Some(BTreeMap::from([(
                    OWNER_LABEL.to_string(),
                    "accessrequest.payments.bob-db".to_string(),
                )])),
                ..Default::default()
            },
            role_ref: rbac_role_ref("ClusterRole", "db-reader"),
            subjects: Some(vec![rbac_subject("User", "alice", None)]),
        };
        let converted = ExistingBinding::from_cluster_role_binding(&crb).expect("converted");
        assert_eq!(
            converted.source,
            "ClusterRoleBinding db-readers (Gatehouse grant of accessrequest.payments.bob-db)"
        );
        assert_eq!(converted.namespace, None);
        assert_eq!(converted.role, cluster_role("db-reader"));
        assert_eq!(converted.subjects, vec![user("alice")]);
        crb.role_ref.kind = "Role".into();
        assert!(
            ExistingBinding::from_cluster_role_binding(&crb).is_none(),
            "a ClusterRoleBinding cannot refer to a Role"
        );
    }

    #[test]
    fn grant_of_another_request_becomes_one_binding_per_namespace_or_one_cluster_wide() {
        let mut grant = accepted();
        grant.namespaces = vec!["orders".into(), "payments".into()];
        let bindings = ExistingBinding::from_grant("payments", "bob-db", &grant);
        assert_eq!(bindings.len(), 2);
        assert_eq!(
            bindings[0].source,
            "AccessRequest payments/bob-db (active grant)"
        );
        assert_eq!(bindings[1].namespace.as_deref(), Some("payments"));
        assert_eq!(bindings[1].subjects, vec![user("alice")]);
        let wide = ExistingBinding::from_grant("payments", "bob-db", &accepted_cluster_wide());
        assert_eq!(wide.len(), 1);
        assert_eq!(wide[0].namespace, None);
    }

    // ---- access held through groups ----

    #[test]
    fn every_user_holds_what_system_authenticated_holds() {
        let everyone = binding(
            "RoleBinding payments/everyone",
            Some("payments"),
            cluster_role("db-reader"),
            group("system:authenticated"),
        );
        let checks = check(&accepted(), &policy(), &[everyone], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds ClusterRole/db-reader in namespace(s) payments through RoleBinding payments/everyone (as a member of Group system:authenticated)"
            ]
        );
    }

    #[test]
    fn service_accounts_hold_what_their_system_groups_hold() {
        let mut request = accepted();
        request.subjects = vec![service_account("payments", "batch")];
        for (group_name, holds) in [
            ("system:serviceaccounts", true),
            ("system:serviceaccounts:payments", true),
            ("system:authenticated", true),
            ("system:serviceaccounts:orders", false),
            // A ServiceAccount's groups are all known: it is in no other group.
            ("payments-oncall", false),
            ("system:masters", false),
        ] {
            let held = binding(
                "ClusterRoleBinding g",
                None,
                cluster_role("db-reader"),
                group(group_name),
            );
            let checks = check(&request, &policy(), &[held], Some(&benign_rules()));
            let expected: Vec<String> = if holds {
                vec![format!(
                    "ServiceAccount payments/batch already holds ClusterRole/db-reader in namespace(s) payments (cluster-wide, every namespace) through ClusterRoleBinding g (as a member of Group {group_name})"
                )]
            } else {
                vec![]
            };
            assert_eq!(
                of_type(&checks, FindingType::ExistingAccess),
                expected,
                "{group_name}"
            );
        }
        // Written as its username, it is the same ServiceAccount with the same groups.
        request.subjects = vec![user("system:serviceaccount:payments:batch")];
        let held = binding(
            "ClusterRoleBinding sas",
            None,
            cluster_role("db-reader"),
            group("system:serviceaccounts:payments"),
        );
        let checks = check(&request, &policy(), &[held], Some(&benign_rules()));
        assert_eq!(of_type(&checks, FindingType::ExistingAccess).len(), 1);
    }

    #[test]
    fn a_group_subject_holds_only_what_is_bound_to_it() {
        let mut request = accepted();
        request.subjects = vec![group("oncall")];
        let bindings = [
            binding(
                "everyone",
                None,
                cluster_role("db-reader"),
                group("system:authenticated"),
            ),
            binding("other", None, cluster_role("db-reader"), group("oncall-2")),
        ];
        let checks = check(&request, &policy(), &bindings, Some(&benign_rules()));
        assert!(checks.findings.is_empty(), "{:?}", checks.findings);
        let own = binding(
            "RoleBinding payments/oncall",
            Some("payments"),
            cluster_role("db-reader"),
            group("oncall"),
        );
        let checks = check(&request, &policy(), &[own], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "Group oncall already holds ClusterRole/db-reader in namespace(s) payments through RoleBinding payments/oncall"
            ]
        );
    }

    #[test]
    fn sod_counts_roles_held_through_known_groups() {
        let (request, policy) = maker_checker(None);
        let held = binding(
            "ClusterRoleBinding approvers",
            None,
            cluster_role("payments-approver"),
            group("system:authenticated"),
        );
        let checks = check(&request, &policy, &[held], Some(&benign_rules()));
        let expected = "separation-of-duties rule maker-checker: User alice already holds payments-approver (ClusterRole/payments-approver cluster-wide through ClusterRoleBinding approvers as a member of Group system:authenticated), which may not be held together with the requested payments-initiator; the request is denied (onConflict: Deny)";
        assert_eq!(checks.denied_by_sod.as_deref(), Some(expected));
        assert_eq!(
            of_type(&checks, FindingType::SeparationOfDutiesConflict),
            vec![expected]
        );
    }

    #[test]
    fn access_through_groups_gatehouse_cannot_see_is_reported_as_not_checked() {
        let oncall = binding(
            "RoleBinding payments/oncall",
            Some("payments"),
            cluster_role("db-reader"),
            group("payments-oncall"),
        );
        let checks = check(&accepted(), &policy(), &[oncall], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "Group payments-oncall holds ClusterRole/db-reader in namespace(s) payments through RoleBinding payments/oncall; group memberships of User alice are not visible to Gatehouse, so whether alice holds it through that group was not checked"
            ]
        );

        // A conflicting role held by a group alice may be in: recorded, but it cannot deny.
        let (request, sod_policy) = maker_checker(None);
        let approvers = binding(
            "ClusterRoleBinding approvers",
            None,
            cluster_role("payments-approver"),
            group("finance"),
        );
        let checks = check(&request, &sod_policy, &[approvers], Some(&benign_rules()));
        assert_eq!(checks.denied_by_sod, None);
        assert_eq!(
            of_type(&checks, FindingType::SeparationOfDutiesConflict),
            vec![
                "separation-of-duties rule maker-checker: Group finance holds payments-approver (ClusterRole/payments-approver cluster-wide through ClusterRoleBinding approvers), which may not be held together with the requested payments-initiator; group memberships of User alice are not visible to Gatehouse, so whether alice holds it through that group was not checked; approvers decide"
            ]
        );

        // An authenticated user is never in system:unauthenticated.
        let anonymous = binding(
            "anon",
            None,
            cluster_role("db-reader"),
            group("system:unauthenticated"),
        );
        let checks = check(&accepted(), &policy(), &[anonymous], Some(&benign_rules()));
        assert!(checks.findings.is_empty(), "{:?}", checks.findings);
    }
}
