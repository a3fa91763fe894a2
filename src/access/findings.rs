//! The automated checks an AccessRequest gets before anyone approves: does a subject already hold
//! the role there (ExistingAccess), would the grant break a separation-of-duties rule
//! (SeparationOfDutiesConflict), and does the role carry powerful permissions (HighRisk).
//!
//! Approvers see the results as `status.findings`; the controller uses `high_risk` to decide
//! whether `when: HighRisk` approval stages apply and `denied_by_sod` to end a request that a
//! `Deny` rule forbids. Everything here is pure: the controller lists the bindings and reads the
//! role, and this module only decides. Where the input is unclear the checks fail closed: a role
//! whose rules cannot be read counts as high risk.
//!
//! Each check has its file: [`super::existing_access`], [`super::separation_of_duties`] and
//! [`super::high_risk`], all reading bindings through [`super::rbac_view`]. [`check`] runs them
//! and puts the results in a stable order.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::rbac_view::ExistingBinding;
use super::{AcceptedRequest, existing_access, high_risk, separation_of_duties};
use crate::api::{AccessPolicySpec, Finding};

/// The outcome of the checks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Checks {
    /// Every finding, sorted and without duplicates, so that status stays stable between
    /// reconciles whatever order the bindings were listed in.
    pub findings: Vec<Finding>,
    /// The role's permissions (or their absence from view) make the grant high-risk; the
    /// `when: HighRisk` approval stages apply.
    pub high_risk: bool,
    /// Set when a separation-of-duties rule with `onConflict: Deny` (the default) is violated:
    /// the message naming the rule, subject, held role and where; the request is to be denied.
    pub denied_by_sod: Option<String>,
}

/// Runs every check for `request` under `policy`, given the bindings that exist and the rules of
/// the requested role (`None` when the role does not exist or cannot be read).
pub fn check(
    request: &AcceptedRequest,
    policy: &AccessPolicySpec,
    bindings: &[ExistingBinding],
    role_rules: Option<&[PolicyRule]>,
) -> Checks {
    let mut findings = existing_access::existing_access(request, bindings);

    let (conflicts, mut denials) =
        separation_of_duties::separation_of_duties(request, policy, bindings);
    findings.extend(conflicts);

    let high_risk = high_risk::finding(request, role_rules);
    let is_high_risk = high_risk.is_some();
    findings.extend(high_risk);

    findings.sort();
    findings.dedup();
    // The smallest message, not the first found: binding order comes from the API server's list
    // and must not change which conflict the denial names.
    denials.sort();
    Checks {
        findings,
        high_risk: is_high_risk,
        denied_by_sod: denials.into_iter().next(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::fixtures::*;
    use crate::api::{ConflictAction, FindingType};

    // ---- output ----

    #[test]
    fn findings_are_sorted_and_deduplicated() {
        let (mut request, policy) = maker_checker(Some(ConflictAction::RequireApproval));
        // bob is checked first, yet his messages sort after alice's.
        request.subjects = vec![user("bob"), user("alice")];
        let init = |who: &str| {
            binding(
                "RoleBinding payments/init",
                Some("payments"),
                cluster_role("payments-initiator"),
                user(who),
            )
        };
        let bindings = vec![
            init("alice"),
            binding("crb", None, cluster_role("payments-approver"), user("bob")),
            init("bob"),
            // An exact duplicate, as a grant and its RoleBinding can both be listed.
            init("alice"),
        ];
        let checks = check(&request, &policy, &bindings, None);
        let expected = |type_: FindingType, message: &str| Finding {
            type_,
            message: message.to_string(),
        };
        assert_eq!(
            checks.findings,
            vec![
                expected(
                    FindingType::ExistingAccess,
                    "User alice already holds ClusterRole/payments-initiator in namespace(s) payments through RoleBinding payments/init"
                ),
                expected(
                    FindingType::ExistingAccess,
                    "User bob already holds ClusterRole/payments-initiator in namespace(s) payments through RoleBinding payments/init"
                ),
                expected(
                    FindingType::SeparationOfDutiesConflict,
                    "separation-of-duties rule maker-checker: User bob already holds payments-approver (ClusterRole/payments-approver cluster-wide through crb), which may not be held together with the requested payments-initiator; approvers decide (onConflict: RequireApproval)"
                ),
                expected(
                    FindingType::HighRisk,
                    "ClusterRole/payments-initiator granted in namespace(s) payments is high-risk: role rules could not be read"
                ),
            ]
        );
        let mut reversed = bindings;
        reversed.reverse();
        assert_eq!(check(&request, &policy, &reversed, None), checks);
    }
}
