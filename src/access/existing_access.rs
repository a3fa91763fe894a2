//! ExistingAccess: whether a request subject already holds the requested role where the request
//! asks for it. Approvers may not need to grant anything, and the grant's expiry would not end
//! that access.

use super::rbac_view::{ExistingBinding, Reach, describe_groups, memberships, unchecked};
use super::{AcceptedRequest, describe_subject};
use crate::api::common::{RoleKind, Subject};
use crate::api::{Finding, FindingType};

/// Up to this many bindings of one subject are listed one finding each; beyond, they are one
/// finding with a count, so that a person holding a role through 1,000 bindings does not fill the
/// status (and its Events) with 1,000 findings.
const LISTED_BINDINGS: usize = 3;

/// One ExistingAccess finding per (subject, binding) that already grants the requested role in a
/// target namespace: approvers may not need to grant anything, and the grant's expiry would not
/// end that access. A binding counts when it names the subject or a group the subject is known to
/// be in; one naming a group a user may be in is reported as not checked, because Gatehouse cannot
/// see a user's groups. A subject with more than [`LISTED_BINDINGS`] such bindings gets one finding
/// that counts them.
pub(super) fn existing_access(
    request: &AcceptedRequest,
    bindings: &[ExistingBinding],
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for subject in &request.subjects {
        let held = held_through(request, subject, bindings);
        if held.len() <= LISTED_BINDINGS {
            findings.extend(held.into_iter().map(|(_, message)| Finding {
                type_: FindingType::ExistingAccess,
                message,
            }));
            continue;
        }
        let named: Vec<&str> = held
            .iter()
            .take(LISTED_BINDINGS)
            .map(|(source, _)| source.as_str())
            .collect();
        findings.push(Finding {
            type_: FindingType::ExistingAccess,
            message: format!(
                "{} already holds {} where this request asks for it (or may, through groups) through {} bindings: {} and {} more",
                describe_subject(subject),
                request.role,
                held.len(),
                named.join(", "),
                held.len() - LISTED_BINDINGS
            ),
        });
    }
    findings
}

/// The bindings through which `subject` already holds the requested role where the request asks
/// for it: each binding's source, and the finding it alone would be.
fn held_through(
    request: &AcceptedRequest,
    subject: &Subject,
    bindings: &[ExistingBinding],
) -> Vec<(String, String)> {
    let mut held = Vec::new();
    let groups = memberships(subject);
    for binding in bindings {
        let Some(reach) = binding.reach(subject, &groups) else {
            continue;
        };
        let Some(covered) = covered_targets(request, binding) else {
            continue;
        };
        let who = describe_subject(subject);
        let role = &request.role;
        let source = &binding.source;
        let message = match reach {
            Reach::Direct => format!("{who} already holds {role} {covered} through {source}"),
            Reach::Member(group) => format!(
                "{who} already holds {role} {covered} through {source} (as a member of Group {group})"
            ),
            Reach::Unknown(groups) => format!(
                "{} hold{} {role} {covered} through {source}; {}",
                describe_groups(&groups),
                if groups.len() == 1 { "s" } else { "" },
                unchecked(subject, &groups)
            ),
        };
        held.push((source.to_string(), message));
    }
    held
}

/// Where `binding` already grants the requested role among the request's targets, for messages;
/// `None` where it grants it nowhere the request asks for.
fn covered_targets(request: &AcceptedRequest, binding: &ExistingBinding) -> Option<String> {
    let cluster_role_binding_to_same = binding.namespace.is_none()
        && binding.role.kind == RoleKind::ClusterRole
        && binding.role == request.role;
    if request.cluster_wide {
        // Only a ClusterRoleBinding grants the role everywhere, as a cluster-wide grant would.
        return cluster_role_binding_to_same.then(|| "cluster-wide".to_string());
    }
    let namespaces: Vec<&str> = request
        .namespaces
        .iter()
        .filter(|ns| {
            cluster_role_binding_to_same
                || (binding.namespace.as_deref() == Some(ns.as_str())
                    && binding.role == request.role)
        })
        .map(String::as_str)
        .collect();
    if namespaces.is_empty() {
        None
    } else if cluster_role_binding_to_same {
        Some(format!(
            "in namespace(s) {} (cluster-wide, every namespace)",
            namespaces.join(", ")
        ))
    } else {
        Some(format!("in namespace(s) {}", namespaces.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use crate::access::findings::check;
    use crate::access::fixtures::*;
    use crate::api::FindingType;

    // ---- ExistingAccess ----

    #[test]
    fn existing_access_from_a_role_binding_in_the_target_namespace() {
        let held = binding(
            "RoleBinding payments/db-readers",
            Some("payments"),
            cluster_role("db-reader"),
            user("alice"),
        );
        let checks = check(&accepted(), &policy(), &[held], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds ClusterRole/db-reader in namespace(s) payments through RoleBinding payments/db-readers"
            ]
        );
        assert!(!checks.high_risk);
        assert_eq!(checks.denied_by_sod, None);
    }

    #[test]
    fn a_subject_holding_the_role_through_many_bindings_is_one_finding_with_a_count() {
        let held: Vec<_> = (0..1000)
            .map(|i| {
                binding(
                    &format!("RoleBinding payments/db-readers-{i}"),
                    Some("payments"),
                    cluster_role("db-reader"),
                    user("alice"),
                )
            })
            .collect();
        let checks = check(&accepted(), &policy(), &held, Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds ClusterRole/db-reader where this request asks for it (or may, through groups) through 1000 bindings: RoleBinding payments/db-readers-0, RoleBinding payments/db-readers-1, RoleBinding payments/db-readers-2 and 997 more"
            ]
        );
    }

    #[test]
    fn no_existing_access_from_another_namespace_role_or_subject() {
        let bindings = [
            binding(
                "other ns",
                Some("orders"),
                cluster_role("db-reader"),
                user("alice"),
            ),
            binding(
                "other role",
                Some("payments"),
                cluster_role("db-admin"),
                user("alice"),
            ),
            binding(
                "role not clusterrole",
                Some("payments"),
                role("db-reader"),
                user("alice"),
            ),
            binding(
                "other user",
                Some("payments"),
                cluster_role("db-reader"),
                user("bob"),
            ),
            binding(
                "crb other role",
                None,
                cluster_role("db-admin"),
                user("alice"),
            ),
        ];
        let checks = check(&accepted(), &policy(), &bindings, Some(&benign_rules()));
        assert_eq!(checks.findings, vec![]);
    }

    #[test]
    fn existing_access_from_a_cluster_role_binding_covers_every_namespace() {
        let mut request = accepted();
        request.namespaces = vec!["orders".into(), "payments".into()];
        let held = binding(
            "ClusterRoleBinding db-readers",
            None,
            cluster_role("db-reader"),
            user("alice"),
        );
        let checks = check(&request, &policy(), &[held], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds ClusterRole/db-reader in namespace(s) orders, payments (cluster-wide, every namespace) through ClusterRoleBinding db-readers"
            ],
            "one finding per (subject, binding), not per namespace"
        );
    }

    #[test]
    fn cluster_wide_request_counts_only_cluster_role_bindings() {
        let request = accepted_cluster_wide();
        let namespaced = binding(
            "RoleBinding payments/db-readers",
            Some("payments"),
            cluster_role("db-reader"),
            user("alice"),
        );
        let checks = check(
            &request,
            &policy(),
            std::slice::from_ref(&namespaced),
            Some(&benign_rules()),
        );
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            Vec::<&str>::new()
        );

        let wide = binding(
            "ClusterRoleBinding db-readers",
            None,
            cluster_role("db-reader"),
            user("alice"),
        );
        let checks = check(
            &request,
            &policy(),
            &[namespaced, wide],
            Some(&benign_rules()),
        );
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds ClusterRole/db-reader cluster-wide through ClusterRoleBinding db-readers"
            ]
        );
    }

    #[test]
    fn existing_access_for_a_namespaced_role_needs_a_role_binding_in_that_namespace() {
        let mut request = accepted();
        request.role = role("db-reader");
        request.namespaces = vec!["orders".into(), "payments".into()];
        let bindings = [
            binding(
                "RoleBinding orders/r",
                Some("orders"),
                role("db-reader"),
                user("alice"),
            ),
            binding("crb", None, cluster_role("db-reader"), user("alice")),
        ];
        let checks = check(&request, &policy(), &bindings, Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "User alice already holds Role/db-reader in namespace(s) orders through RoleBinding orders/r"
            ]
        );
    }

    #[test]
    fn service_accounts_match_by_namespace_and_by_username() {
        let mut request = accepted();
        request.subjects = vec![service_account("payments", "batch")];
        let other_namespace = binding(
            "RoleBinding payments/a",
            Some("payments"),
            cluster_role("db-reader"),
            service_account("orders", "batch"),
        );
        let checks = check(
            &request,
            &policy(),
            &[other_namespace],
            Some(&benign_rules()),
        );
        assert!(checks.findings.is_empty(), "{:?}", checks.findings);

        let as_user = binding(
            "RoleBinding payments/b",
            Some("payments"),
            cluster_role("db-reader"),
            user("system:serviceaccount:payments:batch"),
        );
        let checks = check(&request, &policy(), &[as_user], Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::ExistingAccess),
            vec![
                "ServiceAccount payments/batch already holds ClusterRole/db-reader in namespace(s) payments through RoleBinding payments/b"
            ]
        );
    }
}
