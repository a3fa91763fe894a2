//! Subjects, roles, bindings and requests for the unit tests of the automated checks: the
//! contract's request (alice asks for ClusterRole db-reader in payments) and small builders
//! that each test changes where it matters.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::findings::Checks;
use super::rbac_view::ExistingBinding;
use super::{AcceptedRequest, accept};
use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};
use crate::api::fixtures::{access_policy, access_request, namespaces};
use crate::api::{AccessPolicySpec, ConflictAction, FindingType, SeparationOfDutiesRule};

pub fn user(name: &str) -> Subject {
    Subject {
        kind: SubjectKind::User,
        name: name.into(),
        namespace: None,
    }
}

pub fn service_account(namespace: &str, name: &str) -> Subject {
    Subject {
        kind: SubjectKind::ServiceAccount,
        name: name.into(),
        namespace: Some(namespace.into()),
    }
}

pub fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        kind: RoleKind::ClusterRole,
        name: name.into(),
    }
}

pub fn role(name: &str) -> RoleRef {
    RoleRef {
        kind: RoleKind::Role,
        name: name.into(),
    }
}

pub fn binding(
    source: &str,
    namespace: Option<&str>,
    role: RoleRef,
    who: Subject,
) -> ExistingBinding {
    ExistingBinding {
        source: source.into(),
        namespace: namespace.map(str::to_string),
        role,
        subjects: vec![who],
    }
}

/// The contract's example, accepted: alice asks for ClusterRole db-reader in payments.
pub fn accepted() -> AcceptedRequest {
    accept(
        &access_request().spec,
        "payments",
        &[&access_policy("payments-db")],
        &namespaces(),
    )
    .expect("the fixture request is accepted")
}

pub fn accepted_cluster_wide() -> AcceptedRequest {
    let mut policy = access_policy("payments-db");
    policy.spec.allow_cluster_wide = true;
    let mut request = access_request();
    request.spec.cluster_wide = true;
    accept(&request.spec, "payments", &[&policy], &namespaces())
        .expect("cluster-wide request is accepted")
}

pub fn policy() -> AccessPolicySpec {
    access_policy("payments-db").spec
}

pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// What db-reader plausibly grants: nothing high-risk.
pub fn benign_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &["configmaps", "services"],
            &["get", "list", "watch"],
        ),
        rule(&["apps"], &["deployments"], &["get", "list"]),
    ]
}

pub fn of_type(checks: &Checks, type_: FindingType) -> Vec<&str> {
    checks
        .findings
        .iter()
        .filter(|f| f.type_ == type_)
        .map(|f| f.message.as_str())
        .collect()
}

pub fn sod(
    name: &str,
    roles: &[&str],
    on_conflict: Option<ConflictAction>,
) -> SeparationOfDutiesRule {
    SeparationOfDutiesRule {
        name: name.into(),
        roles: roles.iter().map(|r| r.to_string()).collect(),
        on_conflict,
    }
}

pub fn maker_checker(on_conflict: Option<ConflictAction>) -> (AcceptedRequest, AccessPolicySpec) {
    let mut request = accepted();
    request.role = cluster_role("payments-initiator");
    let mut policy = policy();
    policy.separation_of_duties = vec![sod(
        "maker-checker",
        &["payments-initiator", "payments-approver"],
        on_conflict,
    )];
    (request, policy)
}

pub fn group(name: &str) -> Subject {
    Subject {
        kind: SubjectKind::Group,
        name: name.into(),
        namespace: None,
    }
}
