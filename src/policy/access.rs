//! Whether an AccessRequest may proceed: which AccessPolicy governs it and whether it asks for
//! something that policy allows. Fails closed: anything unclear refuses.

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use super::{Refusal, duration, selector};
use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};
use crate::api::conditions::reason;
use crate::api::{AccessPolicy, AccessPolicySpec, AccessRequestSpec};

/// Labels of the namespaces that exist, by name.
pub type NamespaceLabels = BTreeMap<String, BTreeMap<String, String>>;

/// A request that passed every check against its policy, with every default filled in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedRequest {
    /// Name of the governing AccessPolicy.
    pub policy: String,
    pub subjects: Vec<Subject>,
    pub role: RoleRef,
    /// Target namespaces; empty for a cluster-wide grant.
    pub namespaces: Vec<String>,
    pub cluster_wide: bool,
    pub duration: Duration,
}

/// Checks `spec` (of a request in `request_namespace`) against the policies and namespaces that
/// exist, and returns it with defaults applied, or why it cannot proceed.
pub fn accept(
    spec: &AccessRequestSpec,
    request_namespace: &str,
    policies: &[&AccessPolicy],
    namespaces: &NamespaceLabels,
) -> Result<AcceptedRequest, Refusal> {
    let targets = target_namespaces(spec, request_namespace);
    check_shape(spec, &targets, namespaces)?;
    let policy = resolve(spec, &targets, policies, namespaces)?;
    let name = policy.metadata.name.clone().unwrap_or_default();
    check_scope(&name, &policy.spec, spec, &targets, namespaces)?;
    let duration = check_duration(&name, &policy.spec, spec)?;
    check_justification(&name, &policy.spec, &spec.justification)?;
    Ok(AcceptedRequest {
        policy: name,
        subjects: subjects(spec),
        role: spec.role.clone(),
        namespaces: targets,
        cluster_wide: spec.cluster_wide,
        duration,
    })
}

/// The subjects that receive access: as written, or the requester as a user.
pub fn subjects(spec: &AccessRequestSpec) -> Vec<Subject> {
    if spec.subjects.is_empty() {
        vec![Subject {
            kind: SubjectKind::User,
            name: spec.requester.clone(),
            namespace: None,
        }]
    } else {
        spec.subjects.clone()
    }
}

fn target_namespaces(spec: &AccessRequestSpec, request_namespace: &str) -> Vec<String> {
    if spec.cluster_wide {
        Vec::new()
    } else if spec.namespaces.is_empty() {
        vec![request_namespace.to_string()]
    } else {
        let mut targets = spec.namespaces.clone();
        targets.sort();
        targets.dedup();
        targets
    }
}

fn check_shape(
    spec: &AccessRequestSpec,
    targets: &[String],
    namespaces: &NamespaceLabels,
) -> Result<(), Refusal> {
    if spec.cluster_wide {
        if !spec.namespaces.is_empty() {
            return Err(Refusal::new(
                reason::INVALID_SPEC,
                "spec.namespaces must be empty when spec.clusterWide is true: a cluster-wide grant covers every namespace",
            ));
        }
        if spec.role.kind == RoleKind::Role {
            return Err(Refusal::new(
                reason::INVALID_SPEC,
                "spec.role: a Role is namespaced and cannot be granted cluster-wide; request a ClusterRole or drop spec.clusterWide",
            ));
        }
    }
    let missing: Vec<&str> = targets
        .iter()
        .filter(|ns| !namespaces.contains_key(*ns))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Refusal::new(
            reason::INVALID_SPEC,
            format!(
                "spec.namespaces: namespace(s) {} do not exist; list existing namespaces",
                missing.join(", ")
            ),
        ));
    }
    Ok(())
}

fn resolve<'a>(
    spec: &AccessRequestSpec,
    targets: &[String],
    policies: &[&'a AccessPolicy],
    namespaces: &NamespaceLabels,
) -> Result<&'a AccessPolicy, Refusal> {
    super::governing(
        spec.policy.as_deref(),
        policies,
        |p| check_scope("", &p.spec, spec, targets, namespaces).is_ok(),
        "AccessPolicy",
        || {
            format!(
                "no AccessPolicy allows {} {}; nothing will be granted. Ask a cluster admin for a policy, or name one in spec.policy",
                describe_role(&spec.role),
                describe_scope(spec.cluster_wide, targets),
            )
        },
    )
}

fn check_scope(
    policy_name: &str,
    policy: &AccessPolicySpec,
    spec: &AccessRequestSpec,
    targets: &[String],
    namespaces: &NamespaceLabels,
) -> Result<(), Refusal> {
    if !policy.roles.contains(&spec.role) {
        let allowed: Vec<String> = policy.roles.iter().map(describe_role).collect();
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.role: {} is not grantable under AccessPolicy {policy_name}; it allows {}",
                describe_role(&spec.role),
                allowed.join(", ")
            ),
        ));
    }
    if spec.cluster_wide && !policy.allow_cluster_wide {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.clusterWide: AccessPolicy {policy_name} does not allow cluster-wide grants; list namespaces in spec.namespaces instead"
            ),
        ));
    }
    let outside: Vec<&str> = targets
        .iter()
        .filter(|ns| {
            !namespaces
                .get(*ns)
                .is_some_and(|labels| selector::selects(policy.namespace_selector.as_ref(), labels))
        })
        .map(String::as_str)
        .collect();
    if !outside.is_empty() {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.namespaces: {} not selected by the namespaceSelector of AccessPolicy {policy_name}; request namespaces it selects",
                outside.join(", ")
            ),
        ));
    }
    Ok(())
}

fn check_duration(
    policy_name: &str,
    policy: &AccessPolicySpec,
    spec: &AccessRequestSpec,
) -> Result<Duration, Refusal> {
    let policy_field = |field: &str, err: String| {
        Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "AccessPolicy {policy_name} has an invalid {field}: {err}; a cluster admin must fix the policy"
            ),
        )
    };
    let max = duration::parse(&policy.max_duration).map_err(|e| policy_field("maxDuration", e))?;
    let requested = match (&spec.duration, &policy.default_duration) {
        (Some(requested), _) => duration::parse(requested)
            .map_err(|e| Refusal::new(reason::INVALID_SPEC, format!("spec.duration: {e}")))?,
        (None, Some(default)) => duration::parse(default)
            .map_err(|e| policy_field("defaultDuration", e))?
            .min(max),
        (None, None) => max,
    };
    if requested > max {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.duration: {} is longer than the {} AccessPolicy {policy_name} allows; request {} or less",
                duration::format(requested),
                duration::format(max),
                duration::format(max)
            ),
        ));
    }
    Ok(requested)
}

fn check_justification(
    policy_name: &str,
    policy: &AccessPolicySpec,
    justification: &str,
) -> Result<(), Refusal> {
    let Some(rule) = &policy.justification else {
        return Ok(());
    };
    let length = justification.trim().chars().count();
    if let Some(min) = rule.min_length
        && length < usize::try_from(min).unwrap_or_default()
    {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.justification: {length} characters is too short; AccessPolicy {policy_name} requires at least {min}"
            ),
        ));
    }
    if let Some(pattern) = &rule.pattern {
        let regex = Regex::new(pattern).map_err(|err| {
            Refusal::new(
                reason::POLICY_VIOLATION,
                format!("AccessPolicy {policy_name} has an invalid justification.pattern ({err}); a cluster admin must fix the policy"),
            )
        })?;
        if !regex.is_match(justification) {
            return Err(Refusal::new(
                reason::POLICY_VIOLATION,
                format!(
                    "spec.justification must contain a match of {pattern:?} (AccessPolicy {policy_name}), e.g. a ticket reference"
                ),
            ));
        }
    }
    Ok(())
}

fn describe_role(role: &RoleRef) -> String {
    format!("{:?}/{}", role.kind, role.name)
}

fn describe_scope(cluster_wide: bool, targets: &[String]) -> String {
    if cluster_wide {
        "cluster-wide".to_string()
    } else {
        format!("in namespace(s) {}", targets.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::{access_policy, access_request, namespaces};

    #[test]
    fn accepts_a_request_its_policy_allows_and_fills_defaults() {
        let policy = access_policy("payments-db");
        let accepted = accept(
            &access_request().spec,
            "payments",
            &[&policy],
            &namespaces(),
        )
        .expect("accepted");
        assert_eq!(accepted.policy, "payments-db");
        assert_eq!(accepted.namespaces, vec!["payments".to_string()]);
        assert_eq!(
            accepted.subjects,
            vec![Subject {
                kind: SubjectKind::User,
                name: "alice".into(),
                namespace: None
            }]
        );
        assert_eq!(
            accepted.duration,
            Duration::from_secs(3600),
            "defaultDuration applies"
        );
    }

    #[test]
    fn refuses_when_no_policy_matches() {
        let refusal =
            accept(&access_request().spec, "payments", &[], &namespaces()).expect_err("refused");
        assert_eq!(refusal.reason, reason::NO_MATCHING_POLICY);
        assert!(
            refusal
                .message
                .contains("ClusterRole/db-reader in namespace(s) payments"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn refuses_when_several_policies_match_and_none_is_named() {
        let (a, b) = (access_policy("a"), access_policy("b"));
        let refusal = accept(&access_request().spec, "payments", &[&b, &a], &namespaces())
            .expect_err("refused");
        assert_eq!(refusal.reason, reason::AMBIGUOUS_POLICY);
        assert!(refusal.message.contains("(a, b)"), "{}", refusal.message);
        let mut named = access_request();
        named.spec.policy = Some("b".into());
        assert_eq!(
            accept(&named.spec, "payments", &[&a, &b], &namespaces()).map(|r| r.policy),
            Ok("b".into())
        );
    }

    #[test]
    fn refuses_a_named_policy_that_does_not_exist() {
        let mut request = access_request();
        request.spec.policy = Some("nope".into());
        let refusal = accept(
            &request.spec,
            "payments",
            &[&access_policy("payments-db")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_NOT_FOUND);
    }

    #[test]
    fn refuses_a_role_the_named_policy_does_not_list() {
        let mut request = access_request();
        request.spec.policy = Some("payments-db".into());
        request.spec.role.name = "db-admin".into();
        let refusal = accept(
            &request.spec,
            "payments",
            &[&access_policy("payments-db")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert!(
            refusal
                .message
                .starts_with("spec.role: ClusterRole/db-admin is not grantable"),
            "{}",
            refusal.message
        );
        assert!(
            refusal.message.contains("it allows ClusterRole/db-reader"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn refuses_namespaces_outside_the_selector_or_missing() {
        let policy = access_policy("payments-db");
        let mut request = access_request();
        request.spec.policy = Some("payments-db".into());
        request.spec.namespaces = vec!["payments".into(), "orders".into()];
        let refusal =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal
                .message
                .starts_with("spec.namespaces: orders not selected"),
            "{}",
            refusal.message
        );
        request.spec.namespaces = vec!["ghost".into()];
        let refusal =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect_err("refused");
        assert_eq!(refusal.reason, reason::INVALID_SPEC);
        assert!(
            refusal.message.contains("ghost do not exist"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn refuses_cluster_wide_unless_allowed_and_never_for_a_role() {
        let mut policy = access_policy("payments-db");
        let mut request = access_request();
        request.spec.policy = Some("payments-db".into());
        request.spec.cluster_wide = true;
        let refusal =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal.message.starts_with("spec.clusterWide"),
            "{}",
            refusal.message
        );
        policy.spec.allow_cluster_wide = true;
        assert_eq!(
            accept(&request.spec, "payments", &[&policy], &namespaces()).map(|r| r.namespaces),
            Ok(vec![])
        );
        request.spec.role.kind = RoleKind::Role;
        assert_eq!(
            accept(&request.spec, "payments", &[&policy], &namespaces()).map_err(|r| r.reason),
            Err(reason::INVALID_SPEC)
        );
    }

    #[test]
    fn refuses_a_duration_over_the_maximum() {
        let mut request = access_request();
        request.spec.duration = Some("9h".into());
        let refusal = accept(
            &request.spec,
            "payments",
            &[&access_policy("payments-db")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.duration: 9h is longer than the 8h AccessPolicy payments-db allows; request 8h or less"
        );
        request.spec.duration = Some("8h".into());
        assert!(
            accept(
                &request.spec,
                "payments",
                &[&access_policy("payments-db")],
                &namespaces()
            )
            .is_ok()
        );
    }

    #[test]
    fn refuses_a_justification_without_ticket_or_too_short() {
        let policy = access_policy("payments-db");
        let mut request = access_request();
        request.spec.justification = "investigate the failed settlement batch".into();
        let refusal =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal
                .message
                .contains("must contain a match of \"[A-Z]+-[0-9]+\""),
            "{}",
            refusal.message
        );
        request.spec.justification = "PAY-1 fix".into();
        let refusal =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal.message.contains("9 characters is too short"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_broken_policy_fails_closed_with_a_message_for_the_admin() {
        let mut policy = access_policy("payments-db");
        policy
            .spec
            .justification
            .as_mut()
            .expect("fixture has a rule")
            .pattern = Some("(".into());
        let refusal = accept(
            &access_request().spec,
            "payments",
            &[&policy],
            &namespaces(),
        )
        .expect_err("refused");
        assert!(
            refusal.message.contains("invalid justification.pattern"),
            "{}",
            refusal.message
        );
    }
}
