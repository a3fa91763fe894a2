//! Whether the requested role is high-risk: permissions that let its holder take over more than
//! the role names. A high-risk grant gets a HighRisk finding and the policy's `when: HighRisk`
//! approval stages. A role whose rules cannot be read counts as high-risk: approvers must not
//! wave through permissions nobody has seen.

use k8s_openapi::api::rbac::v1::PolicyRule;

use super::AcceptedRequest;
use crate::api::{Finding, FindingType};

/// The reason given when the requested role's rules are unknown; the grant is then treated as high
/// risk, because approvers must not wave through permissions nobody has seen.
pub const UNREADABLE_ROLE_REASON: &str = "role rules could not be read";

/// The HighRisk finding for granting `request`'s role, whose rules are `role_rules` (`None` when
/// they cannot be read); `None` when the grant is not high-risk.
pub(super) fn finding(
    request: &AcceptedRequest,
    role_rules: Option<&[PolicyRule]>,
) -> Option<Finding> {
    let reasons = match role_rules {
        Some(rules) => high_risk_reasons(rules, request.cluster_wide),
        None => vec![UNREADABLE_ROLE_REASON.to_string()],
    };
    (!reasons.is_empty()).then(|| Finding {
        type_: FindingType::HighRisk,
        message: format!(
            "{} granted {} is high-risk: {}",
            &request.role,
            describe_targets(request),
            reasons.join("; ")
        ),
    })
}

/// Why `rules` are high-risk when granted (cluster-wide if `cluster_wide`), sorted and without
/// duplicates; empty when they are not.
///
/// Flags what lets a holder take over more than the role names: wildcards (which also cover
/// permissions added to the cluster later), privilege escalation verbs, cluster-wide secret
/// reads, and shells into containers or nodes.
pub fn high_risk_reasons(rules: &[PolicyRule], cluster_wide: bool) -> Vec<String> {
    let mut reasons = Vec::new();
    for rule in rules {
        let groups = rule.api_groups.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        let verbs = rule.verbs.as_slice();

        if has(groups, "*") {
            reasons.push("\"*\" in apiGroups (every API group)".to_string());
        }
        if has(resources, "*") {
            reasons.push("\"*\" in resources (every resource)".to_string());
        }
        if has(verbs, "*") {
            reasons.push("\"*\" in verbs (every verb)".to_string());
        }
        for (verb, why) in [
            (
                "escalate",
                "create or widen roles beyond the holder's own permissions",
            ),
            ("bind", "bind any role, to anyone"),
            (
                "impersonate",
                "act as other users, groups or service accounts",
            ),
        ] {
            if has(verbs, verb) {
                reasons.push(format!("verb {verb} ({why})"));
            }
        }

        // Subresource rules also match through RBAC's `*/<subresource>` form.
        let core = has(groups, "") || has(groups, "*");
        if core && cluster_wide && has(resources, "secrets") {
            let reads: Vec<&str> = ["get", "list", "watch"]
                .into_iter()
                .filter(|verb| has(verbs, verb))
                .collect();
            if !reads.is_empty() {
                reasons.push(format!(
                    "{} of secrets cluster-wide (every credential in every namespace)",
                    reads.join("/")
                ));
            }
        }
        if core && (has(resources, "pods/exec") || has(resources, "*/exec")) {
            reasons.push("pods/exec (run commands inside any selected pod)".to_string());
        }
        if core && (has(resources, "nodes/proxy") || has(resources, "*/proxy")) {
            reasons.push("nodes/proxy (direct access to the kubelet API)".to_string());
        }
    }
    reasons.sort();
    reasons.dedup();
    reasons
}

fn has(values: &[String], wanted: &str) -> bool {
    values.iter().any(|v| v == wanted)
}

fn describe_targets(request: &AcceptedRequest) -> String {
    if request.cluster_wide {
        "cluster-wide".to_string()
    } else {
        format!("in namespace(s) {}", request.namespaces.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::findings::{Checks, check};
    use crate::access::fixtures::*;

    #[test]
    fn wildcards_are_high_risk() {
        for (rules, expected) in [
            (
                rule(&["*"], &["deployments"], &["get"]),
                "\"*\" in apiGroups (every API group)",
            ),
            (
                rule(&["apps"], &["*"], &["get"]),
                "\"*\" in resources (every resource)",
            ),
            (
                rule(&["apps"], &["deployments"], &["*"]),
                "\"*\" in verbs (every verb)",
            ),
        ] {
            assert_eq!(high_risk_reasons(&[rules], false), vec![expected]);
        }
    }

    #[test]
    fn escalation_verbs_are_high_risk() {
        let rules = [
            rule(
                &["rbac.authorization.k8s.io"],
                &["clusterroles"],
                &["escalate", "bind"],
            ),
            rule(&[""], &["users"], &["impersonate"]),
        ];
        assert_eq!(
            high_risk_reasons(&rules, false),
            vec![
                "verb bind (bind any role, to anyone)",
                "verb escalate (create or widen roles beyond the holder's own permissions)",
                "verb impersonate (act as other users, groups or service accounts)",
            ]
        );
    }

    #[test]
    fn reading_secrets_is_high_risk_only_cluster_wide() {
        let rules = [rule(&[""], &["secrets"], &["get", "list"])];
        assert_eq!(high_risk_reasons(&rules, false), Vec::<String>::new());
        assert_eq!(
            high_risk_reasons(&rules, true),
            vec!["get/list of secrets cluster-wide (every credential in every namespace)"]
        );
        // Writing without reading, or a same-named resource of another group, is not a read.
        let not_reads = [
            rule(&[""], &["secrets"], &["create"]),
            rule(&["example.com"], &["secrets"], &["get"]),
        ];
        assert_eq!(high_risk_reasons(&not_reads, true), Vec::<String>::new());
    }

    #[test]
    fn pod_exec_and_node_proxy_are_high_risk() {
        assert_eq!(
            high_risk_reasons(&[rule(&[""], &["pods/exec"], &["create"])], false),
            vec!["pods/exec (run commands inside any selected pod)"]
        );
        assert_eq!(
            high_risk_reasons(&[rule(&[""], &["*/exec"], &["get"])], false),
            vec!["pods/exec (run commands inside any selected pod)"],
            "RBAC's */<subresource> form matches pods/exec"
        );
        assert_eq!(
            high_risk_reasons(&[rule(&[""], &["nodes/proxy"], &["get"])], false),
            vec!["nodes/proxy (direct access to the kubelet API)"]
        );
        assert_eq!(
            high_risk_reasons(
                &[rule(&[""], &["pods", "pods/log", "nodes"], &["get"])],
                true
            ),
            Vec::<String>::new()
        );
    }

    #[test]
    fn benign_rules_are_not_high_risk() {
        assert_eq!(
            high_risk_reasons(&benign_rules(), true),
            Vec::<String>::new()
        );
        assert_eq!(high_risk_reasons(&[], true), Vec::<String>::new());
        let checks = check(&accepted(), &policy(), &[], Some(&benign_rules()));
        assert!(!checks.high_risk);
        assert_eq!(checks, Checks::default());
    }

    #[test]
    fn high_risk_role_gets_one_finding_listing_every_reason() {
        let rules = [
            rule(&[""], &["pods/exec"], &["create"]),
            rule(&[""], &["secrets"], &["get", "list", "watch"]),
        ];
        let checks = check(&accepted_cluster_wide(), &policy(), &[], Some(&rules));
        assert!(checks.high_risk);
        assert_eq!(
            of_type(&checks, FindingType::HighRisk),
            vec![
                "ClusterRole/db-reader granted cluster-wide is high-risk: get/list/watch of secrets cluster-wide (every credential in every namespace); pods/exec (run commands inside any selected pod)"
            ]
        );
        // The same role granted in one namespace reads only that namespace's secrets.
        let checks = check(&accepted(), &policy(), &[], Some(&rules));
        assert_eq!(
            of_type(&checks, FindingType::HighRisk),
            vec![
                "ClusterRole/db-reader granted in namespace(s) payments is high-risk: pods/exec (run commands inside any selected pod)"
            ]
        );
    }

    #[test]
    fn unreadable_role_is_high_risk() {
        let checks = check(&accepted(), &policy(), &[], None);
        assert!(checks.high_risk);
        assert_eq!(
            of_type(&checks, FindingType::HighRisk),
            vec![
                "ClusterRole/db-reader granted in namespace(s) payments is high-risk: role rules could not be read"
            ]
        );
    }
}
