//! SeparationOfDutiesConflict: whether a request subject already holds a role that one of the
//! policy's separation-of-duties rules forbids together with the requested one. Under
//! `onConflict: Deny` (the default) a certain conflict denies the request; otherwise, and when
//! the conflict runs through groups Gatehouse cannot see, approvers decide.

use super::rbac_view::{ExistingBinding, Reach, describe_groups, memberships, unchecked};
use super::{AcceptedRequest, describe_subject};
use crate::api::{AccessPolicySpec, ConflictAction, Finding, FindingType};

/// SeparationOfDutiesConflict findings, and the messages of those that deny the request.
///
/// A role held anywhere counts, namespace-scoped or cluster-wide: the rule is about one person
/// holding both duties, wherever they were granted.
pub(super) fn separation_of_duties(
    request: &AcceptedRequest,
    policy: &AccessPolicySpec,
    bindings: &[ExistingBinding],
) -> (Vec<Finding>, Vec<String>) {
    let requested = request.role.name.as_str();
    let mut findings = Vec::new();
    let mut denials = Vec::new();
    for rule in &policy.separation_of_duties {
        if !rule.roles.iter().any(|r| r == requested) {
            continue;
        }
        let deny = matches!(rule.on_conflict, None | Some(ConflictAction::Deny));
        let outcome = if deny {
            "the request is denied (onConflict: Deny)"
        } else {
            "approvers decide (onConflict: RequireApproval)"
        };
        for subject in &request.subjects {
            let groups = memberships(subject);
            for binding in bindings {
                let Some(reach) = binding.reach(subject, &groups) else {
                    continue;
                };
                let held = binding.role.name.as_str();
                if held == requested || !rule.roles.iter().any(|r| r == held) {
                    continue;
                }
                let holding = format!(
                    "{held} ({} {} through {}",
                    &binding.role,
                    binding.scope(),
                    binding.source
                );
                let (message, certain) = match &reach {
                    Reach::Direct | Reach::Member(_) => {
                        let member = match &reach {
                            Reach::Member(group) => format!(" as a member of Group {group}"),
                            _ => String::new(),
                        };
                        (
                            format!(
                                "separation-of-duties rule {}: {} already holds {holding}{member}), which may not be held together with the requested {requested}; {outcome}",
                                rule.name,
                                describe_subject(subject),
                            ),
                            true,
                        )
                    }
                    // Not known to be a conflict, so it cannot deny; the approvers must judge it.
                    Reach::Unknown(groups) => (
                        format!(
                            "separation-of-duties rule {}: {} hold{} {holding}), which may not be held together with the requested {requested}; {}; approvers decide",
                            rule.name,
                            describe_groups(groups),
                            if groups.len() == 1 { "s" } else { "" },
                            unchecked(subject, groups)
                        ),
                        false,
                    ),
                };
                if deny && certain {
                    denials.push(message.clone());
                }
                findings.push(Finding {
                    type_: FindingType::SeparationOfDutiesConflict,
                    message,
                });
            }
        }
    }
    (findings, denials)
}

#[cfg(test)]
mod tests {
    use crate::access::findings::check;
    use crate::access::fixtures::*;
    use crate::api::{ConflictAction, FindingType};

    #[test]
    fn sod_conflict_denies_by_default_whatever_the_scope_of_the_held_role() {
        let (request, policy) = maker_checker(None);
        let held = binding(
            "RoleBinding orders/approvers",
            Some("orders"),
            role("payments-approver"),
            user("alice"),
        );
        let checks = check(&request, &policy, &[held], Some(&benign_rules()));
        let expected = "separation-of-duties rule maker-checker: User alice already holds payments-approver (Role/payments-approver in namespace orders through RoleBinding orders/approvers), which may not be held together with the requested payments-initiator; the request is denied (onConflict: Deny)";
        assert_eq!(
            of_type(&checks, FindingType::SeparationOfDutiesConflict),
            vec![expected]
        );
        assert_eq!(checks.denied_by_sod.as_deref(), Some(expected));

        let (request, policy) = maker_checker(Some(ConflictAction::Deny));
        let wide = binding(
            "ClusterRoleBinding approvers",
            None,
            cluster_role("payments-approver"),
            user("alice"),
        );
        let checks = check(&request, &policy, &[wide], Some(&benign_rules()));
        assert!(
            checks
                .denied_by_sod
                .as_deref()
                .is_some_and(|m| m.contains("cluster-wide through ClusterRoleBinding approvers")),
            "{:?}",
            checks.denied_by_sod
        );
    }

    #[test]
    fn sod_conflict_with_require_approval_is_only_recorded() {
        let (request, policy) = maker_checker(Some(ConflictAction::RequireApproval));
        let held = binding(
            "crb",
            None,
            cluster_role("payments-approver"),
            user("alice"),
        );
        let checks = check(&request, &policy, &[held], Some(&benign_rules()));
        let conflicts = of_type(&checks, FindingType::SeparationOfDutiesConflict);
        assert_eq!(conflicts.len(), 1);
        assert!(
            conflicts[0].ends_with("approvers decide (onConflict: RequireApproval)"),
            "{}",
            conflicts[0]
        );
        assert_eq!(checks.denied_by_sod, None);
    }

    #[test]
    fn no_sod_conflict_for_unrelated_rules_roles_or_subjects() {
        let (request, mut policy) = maker_checker(None);
        policy
            .separation_of_duties
            .push(sod("audit", &["auditor", "payments-approver"], None));
        let bindings = [
            // Holding the requested role itself is existing access, not a conflict.
            binding(
                "same",
                None,
                cluster_role("payments-initiator"),
                user("alice"),
            ),
            // A role outside the rule.
            binding("other role", None, cluster_role("db-reader"), user("alice")),
            // The conflicting role, but held by someone else.
            binding("bob", None, cluster_role("payments-approver"), user("bob")),
        ];
        let checks = check(&request, &policy, &bindings, Some(&benign_rules()));
        assert_eq!(
            of_type(&checks, FindingType::SeparationOfDutiesConflict),
            Vec::<&str>::new()
        );
        assert_eq!(checks.denied_by_sod, None);

        // A rule that does not name the requested role does not apply, even if a held pair matches it.
        let mut request = request;
        request.role = cluster_role("db-reader");
        let held = binding("a", None, cluster_role("auditor"), user("alice"));
        let checks = check(&request, &policy, &[held], Some(&benign_rules()));
        assert_eq!(checks.denied_by_sod, None);
        assert!(checks.findings.is_empty(), "{:?}", checks.findings);
    }

    #[test]
    fn sod_denial_names_the_same_conflict_whatever_the_binding_order() {
        let (request, policy) = maker_checker(None);
        let a = binding(
            "ClusterRoleBinding a",
            None,
            cluster_role("payments-approver"),
            user("alice"),
        );
        let b = binding(
            "ClusterRoleBinding b",
            None,
            cluster_role("payments-approver"),
            user("alice"),
        );
        let forward = check(
            &request,
            &policy,
            &[a.clone(), b.clone()],
            Some(&benign_rules()),
        );
        let backward = check(&request, &policy, &[b, a], Some(&benign_rules()));
        assert_eq!(forward, backward);
        assert!(
            forward
                .denied_by_sod
                .as_deref()
                .is_some_and(|m| m.contains("ClusterRoleBinding a")),
            "{:?}",
            forward.denied_by_sod
        );
        assert_eq!(
            of_type(&forward, FindingType::SeparationOfDutiesConflict).len(),
            2
        );
    }
}
