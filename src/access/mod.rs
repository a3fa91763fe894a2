//! Whether an AccessRequest may proceed: which AccessPolicy governs it and whether it asks for
//! something that policy allows. Fails closed: anything unclear refuses.

pub mod bindings;
pub mod existing_access;
pub mod findings;
#[cfg(test)]
pub mod fixtures;
pub mod high_risk;
pub mod kind;
pub mod rbac_view;
pub mod separation_of_duties;
pub mod verification;

use std::collections::BTreeMap;
use std::time::Duration;

use regex::Regex;

use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};
use crate::api::conditions::reason;
use crate::api::{AccessPolicy, AccessPolicySpec, AccessRequestSpec, SubjectRules};
use crate::lifecycle::{Refusal, duration, narrowing, selector};

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

/// What an accepted request asks for, as its approvers may narrow it.
pub fn asked(request: &AcceptedRequest) -> narrowing::Asked<'_> {
    narrowing::Asked {
        duration: request.duration,
        namespaces: if request.cluster_wide {
            Err(
                "this request is cluster-wide (one ClusterRoleBinding, no namespaces); deny it or ask for changes instead",
            )
        } else {
            Ok(&request.namespaces)
        },
    }
}

/// The request as its approvals narrowed it: what is granted.
pub fn narrow(request: &AcceptedRequest, narrowed: &narrowing::Narrowed) -> AcceptedRequest {
    AcceptedRequest {
        namespaces: narrowed.namespaces(&request.namespaces),
        duration: narrowed.duration(request.duration),
        ..request.clone()
    }
}

/// Whether `extension` (of `namespace`) asks for nothing beyond what `original` was granted: the
/// same role and subjects, and no namespace or cluster-wide reach the original did not have
/// (`granted_namespaces`: the namespaces its approvals allowed, when they narrowed them).
pub fn covers(
    extension: &AccessRequestSpec,
    original: &AccessRequestSpec,
    namespace: &str,
    granted_namespaces: Option<&[String]>,
) -> Result<(), String> {
    if extension.role != original.role {
        return Err(format!(
            "it asks for {}, not {}",
            extension.role, original.role
        ));
    }
    let subjects = |spec: &AccessRequestSpec| {
        let mut subjects: Vec<String> = spec
            .subjects
            .iter()
            .map(|s| {
                format!(
                    "{}/{}/{}",
                    s.kind,
                    s.namespace.as_deref().unwrap_or(""),
                    s.name
                )
            })
            .collect();
        subjects.sort();
        subjects.dedup();
        subjects
    };
    if subjects(extension) != subjects(original) {
        return Err("its spec.subjects differ".into());
    }
    if extension.cluster_wide && !original.cluster_wide {
        return Err("it asks for a cluster-wide grant".into());
    }
    if original.cluster_wide {
        return Ok(());
    }
    let allowed = granted_namespaces
        .map(<[String]>::to_vec)
        .unwrap_or_else(|| target_namespaces(original, namespace));
    let beyond: Vec<String> = target_namespaces(extension, namespace)
        .into_iter()
        .filter(|ns| !allowed.contains(ns))
        .collect();
    match beyond.is_empty() {
        true => Ok(()),
        false => Err(format!("it asks for namespaces {}", beyond.join(", "))),
    }
}

/// A request filed on someone's behalf (`filed_by`) for a `system:` identity is refused: that
/// requester would receive access as a `User` no AccessPolicy lists (admission refuses it too).
pub fn check_on_behalf(spec: &AccessRequestSpec, filed_by: Option<&str>) -> Result<(), Refusal> {
    match filed_by {
        Some(filer) if filer != spec.requester && spec.requester.starts_with(SYSTEM_PREFIX) => {
            Err(Refusal::new(
                reason::POLICY_VIOLATION,
                format!(
                    "spec.requester: {filer} filed this on behalf of {}, a system: identity; system: identities file for themselves. To grant a ServiceAccount, name it in spec.subjects as kind ServiceAccount (the AccessPolicy must list it in spec.subjects.serviceAccounts)",
                    spec.requester
                ),
            ))
        }
        _ => Ok(()),
    }
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
    let scope = Scope {
        spec,
        request_namespace,
        targets: &targets,
        namespaces,
    };
    let policy = resolve(&scope, policies)?;
    let name = policy.metadata.name.clone().unwrap_or_default();
    // The very check unnamed matching filters by: a policy named in spec.policy governs only
    // where it would have matched unnamed.
    check_scope(&name, &policy.spec, &scope)?;
    check_subjects(&name, &policy.spec, spec)?;
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

/// Who receives the access, for approvers: `User alice, Group oncall, ServiceAccount ci/deployer`.
pub fn subjects_summary(accepted: &AcceptedRequest) -> String {
    describe_subjects(&accepted.subjects)
}

/// Where the access applies, for approvers: the namespaces (`orders, payments`) or `cluster-wide`.
pub fn grant_scope(accepted: &AcceptedRequest) -> String {
    describe_grant_scope(accepted.cluster_wide, &accepted.namespaces)
}

/// Subjects as [`subjects_summary`] shows them, comma-separated.
pub fn describe_subjects(subjects: &[Subject]) -> String {
    subjects
        .iter()
        .map(describe_subject)
        .collect::<Vec<_>>()
        .join(", ")
}

/// One subject: `User alice`, `Group oncall`, `ServiceAccount ci/deployer`.
pub fn describe_subject(subject: &Subject) -> String {
    match (&subject.kind, &subject.namespace) {
        (SubjectKind::ServiceAccount, Some(ns)) => format!("ServiceAccount {ns}/{}", subject.name),
        (kind, _) => format!("{kind} {}", subject.name),
    }
}

/// A grant's scope as [`grant_scope`] shows it.
pub fn describe_grant_scope(cluster_wide: bool, namespaces: &[String]) -> String {
    if cluster_wide {
        "cluster-wide".to_string()
    } else {
        namespaces.join(", ")
    }
}

/// The namespaces a request asks for, sorted and without duplicates: as written, or the request's
/// own namespace; none for a cluster-wide request.
pub fn target_namespaces(spec: &AccessRequestSpec, request_namespace: &str) -> Vec<String> {
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

/// What decides whether a policy governs a request: what it asks for and where.
struct Scope<'a> {
    spec: &'a AccessRequestSpec,
    /// Where the request is filed; its approvers are found there.
    request_namespace: &'a str,
    targets: &'a [String],
    namespaces: &'a NamespaceLabels,
}

fn resolve<'a>(
    scope: &Scope<'_>,
    policies: &[&'a AccessPolicy],
) -> Result<&'a AccessPolicy, Refusal> {
    let spec = scope.spec;
    crate::lifecycle::governing(
        spec.policy.as_deref(),
        policies,
        |p| check_scope("", &p.spec, scope).is_ok(),
        "AccessPolicy",
        || {
            format!(
                "no AccessPolicy allows {} {} for a request filed in namespace {}; nothing will be granted. Ask a cluster admin for a policy, or name one in spec.policy",
                spec.role,
                describe_scope(spec.cluster_wide, scope.targets),
                scope.request_namespace,
            )
        },
    )
}

/// Whether `policy` governs the request: it lists the role, allows the scope, and its
/// namespaceSelector selects the request's own namespace and every target namespace. Unnamed
/// matching keeps the policies this accepts; a named policy must pass it too.
fn check_scope(
    policy_name: &str,
    policy: &AccessPolicySpec,
    scope: &Scope<'_>,
) -> Result<(), Refusal> {
    let Scope {
        spec,
        request_namespace,
        targets,
        namespaces,
    } = *scope;
    let selected = |ns: &str| {
        namespaces
            .get(ns)
            .is_some_and(|labels| selector::selects(policy.namespace_selector.as_ref(), labels))
    };
    let selector_text = selector::describe(policy.namespace_selector.as_ref());
    // The request's namespace decides who approves it (approver rights are checked there), so a
    // policy governs only requests filed where it says: otherwise anyone who can file a request
    // in some other namespace, next to approvers of their choosing, could use it.
    if !selected(request_namespace) {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.policy: AccessPolicy {policy_name} does not govern namespace {request_namespace}, where this request is filed: its namespaceSelector ({selector_text}) does not select {request_namespace}. File the request in a namespace the policy selects, name a policy that selects {request_namespace}, or ask a cluster admin to label namespace {request_namespace} so that the selector selects it"
            ),
        ));
    }
    if !policy.roles.contains(&spec.role) {
        let allowed: Vec<String> = policy.roles.iter().map(RoleRef::to_string).collect();
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.role: {} is not grantable under AccessPolicy {policy_name}; it allows {}",
                spec.role,
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
        .map(String::as_str)
        .filter(|ns| !selected(ns))
        .collect();
    if !outside.is_empty() {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.namespaces: {} not selected by the namespaceSelector ({selector_text}) of AccessPolicy {policy_name}; request namespaces it selects, or ask a cluster admin to label them so that it does",
                outside.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Every subject must be one the policy allows: the requester as a `User` always; anything else
/// only where `spec.subjects` of the policy lists it. `system:` groups never, `system:` users only
/// as their own requester.
fn check_subjects(
    policy_name: &str,
    policy: &AccessPolicySpec,
    spec: &AccessRequestSpec,
) -> Result<(), Refusal> {
    let default_rules = SubjectRules::default();
    let rules = policy.subjects.as_ref().unwrap_or(&default_rules);
    for (i, subject) in spec.subjects.iter().enumerate() {
        if let Some((reason, problem)) =
            subject_problem(policy_name, rules, &spec.requester, subject)
        {
            return Err(Refusal::new(
                reason,
                format!("spec.subjects[{i}]: {problem}"),
            ));
        }
    }
    Ok(())
}

/// Prefix of every identity and group Kubernetes itself defines.
const SYSTEM_PREFIX: &str = "system:";

/// Why `subject` may not receive access under the policy, or `None` when it may.
fn subject_problem(
    policy_name: &str,
    rules: &SubjectRules,
    requester: &str,
    subject: &Subject,
) -> Option<(&'static str, String)> {
    let listed = |patterns: &[String], value: &str| {
        patterns
            .iter()
            .any(|pattern| selector::pattern_matches(pattern, value))
    };
    let who = describe_subject(subject);
    let not_listed = |field: &str| {
        Some((
            reason::POLICY_VIOLATION,
            format!(
                "{who} may not receive access: AccessPolicy {policy_name} allows {}. To grant {who}, a cluster admin must list it in spec.subjects.{field} of AccessPolicy {policy_name}; otherwise remove it from the request",
                describe_allowed(rules)
            ),
        ))
    };
    match subject.kind {
        SubjectKind::User if subject.name == requester => None,
        SubjectKind::User if subject.name.starts_with(SYSTEM_PREFIX) => Some((
            reason::POLICY_VIOLATION,
            format!(
                "{who} is refused: names starting with system: are Kubernetes identities (ServiceAccounts, control-plane components, system:anonymous) that a request may name only as its own requester, whatever AccessPolicy {policy_name} lists. To grant a ServiceAccount, name it with kind ServiceAccount and its namespace; AccessPolicy {policy_name} must list it in spec.subjects.serviceAccounts"
            ),
        )),
        SubjectKind::User if listed(&rules.users, &subject.name) => None,
        SubjectKind::User => not_listed("users"),
        SubjectKind::Group if subject.name.starts_with(SYSTEM_PREFIX) => Some((
            reason::POLICY_VIOLATION,
            format!(
                "{who} is never grantable: system: groups are defined by Kubernetes (system:authenticated is every signed-in user, system:serviceaccounts every ServiceAccount, system:masters the cluster admins), whatever AccessPolicy {policy_name} lists; name the users, or a group of your organisation that the policy lists in spec.subjects.groups"
            ),
        )),
        SubjectKind::Group if listed(&rules.groups, &subject.name) => None,
        SubjectKind::Group => not_listed("groups"),
        SubjectKind::ServiceAccount => {
            let Some(namespace) = subject.namespace.as_deref().filter(|ns| !ns.is_empty()) else {
                return Some((
                    reason::INVALID_SPEC,
                    format!("ServiceAccount {} needs its namespace", subject.name),
                ));
            };
            let allowed = rules.service_accounts.iter().any(|entry| {
                entry.split_once('/').is_some_and(|(ns, name)| {
                    selector::pattern_matches(ns, namespace)
                        && selector::pattern_matches(name, &subject.name)
                })
            });
            if allowed {
                None
            } else {
                not_listed("serviceAccounts")
            }
        }
    }
}

/// The subjects a policy allows, for refusal messages.
fn describe_allowed(rules: &SubjectRules) -> String {
    let mut allowed = vec!["the requester as a User".to_string()];
    for (kind, patterns) in [
        ("Users", &rules.users),
        ("Groups", &rules.groups),
        ("ServiceAccounts", &rules.service_accounts),
    ] {
        if !patterns.is_empty() {
            allowed.push(format!("{kind} matching {}", patterns.join(", ")));
        }
    }
    if allowed.len() == 1 {
        "only the requester as a User".to_string()
    } else {
        allowed.join("; ")
    }
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

    // ---- subjects ----

    fn subject(kind: SubjectKind, name: &str, namespace: Option<&str>) -> Subject {
        Subject {
            kind,
            name: name.into(),
            namespace: namespace.map(str::to_string),
        }
    }

    fn group(name: &str) -> Subject {
        subject(SubjectKind::Group, name, None)
    }

    fn user(name: &str) -> Subject {
        subject(SubjectKind::User, name, None)
    }

    fn service_account(namespace: &str, name: &str) -> Subject {
        subject(SubjectKind::ServiceAccount, name, Some(namespace))
    }

    fn policy_with(rules: SubjectRules) -> AccessPolicy {
        let mut policy = access_policy("payments-db");
        policy.spec.subjects = Some(rules);
        policy
    }

    fn rules(users: &[&str], groups: &[&str], service_accounts: &[&str]) -> SubjectRules {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        SubjectRules {
            users: strings(users),
            groups: strings(groups),
            service_accounts: strings(service_accounts),
        }
    }

    fn accept_subjects(policy: &AccessPolicy, subjects: Vec<Subject>) -> Result<(), Refusal> {
        let mut request = access_request();
        request.spec.subjects = subjects;
        accept(&request.spec, "payments", &[policy], &namespaces()).map(|_| ())
    }

    #[test]
    fn by_default_only_the_requester_as_a_user_receives_access() {
        let policy = access_policy("payments-db");
        assert_eq!(accept_subjects(&policy, vec![]), Ok(()));
        assert_eq!(accept_subjects(&policy, vec![user("alice")]), Ok(()));
        let refusal =
            accept_subjects(&policy, vec![user("alice"), group("oncall")]).expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert_eq!(
            refusal.message,
            "spec.subjects[1]: Group oncall may not receive access: AccessPolicy payments-db allows only the requester as a User. To grant Group oncall, a cluster admin must list it in spec.subjects.groups of AccessPolicy payments-db; otherwise remove it from the request"
        );
        let refusal = accept_subjects(&policy, vec![user("bob")]).expect_err("refused");
        assert!(
            refusal.message.starts_with("spec.subjects[0]: User bob")
                && refusal.message.contains("spec.subjects.users"),
            "{}",
            refusal.message
        );
        let refusal = accept_subjects(&policy, vec![service_account("payments", "batch")])
            .expect_err("refused");
        assert!(
            refusal.message.starts_with(
                "spec.subjects[0]: ServiceAccount payments/batch may not receive access"
            ) && refusal.message.contains("spec.subjects.serviceAccounts"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn listed_subjects_and_patterns_are_grantable() {
        let policy = policy_with(rules(
            &["bob", "*@example.com"],
            &["payments-oncall", "team-*"],
            &["ci/deployer", "payments/*", "*/reporter"],
        ));
        for allowed in [
            user("bob"),
            user("carol@example.com"),
            group("payments-oncall"),
            group("team-a"),
            service_account("ci", "deployer"),
            service_account("payments", "batch"),
            service_account("analytics", "reporter"),
        ] {
            assert_eq!(
                accept_subjects(&policy, vec![allowed.clone()]),
                Ok(()),
                "{allowed:?}"
            );
        }
        for refused in [
            user("bobby"),
            user("carol@example.com.evil"),
            group("payments-oncall-2"),
            group("oncall"),
            service_account("ci", "builder"),
            service_account("orders", "batch"),
        ] {
            let refusal = accept_subjects(&policy, vec![refused.clone()]).expect_err("refused");
            assert!(
                refusal.message.contains(
                    "AccessPolicy payments-db allows the requester as a User; Users matching bob, *@example.com; Groups matching payments-oncall, team-*; ServiceAccounts matching ci/deployer, payments/*, */reporter"
                ),
                "{refused:?}: {}",
                refusal.message
            );
        }
    }

    #[test]
    fn system_groups_are_never_grantable_even_by_a_wildcard() {
        let policy = policy_with(rules(&["*"], &["*"], &["*/*"]));
        assert_eq!(accept_subjects(&policy, vec![group("oncall")]), Ok(()));
        for system in [
            "system:authenticated",
            "system:unauthenticated",
            "system:serviceaccounts",
            "system:serviceaccounts:payments",
            "system:masters",
            "system:nodes",
        ] {
            let refusal =
                accept_subjects(&policy, vec![user("alice"), group(system)]).expect_err("refused");
            assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
            assert!(
                refusal.message.starts_with(&format!(
                    "spec.subjects[1]: Group {system} is never grantable"
                )),
                "{}",
                refusal.message
            );
        }
    }

    #[test]
    fn system_users_receive_access_only_as_their_own_requester() {
        let policy = policy_with(rules(&["*"], &[], &["*/*"]));
        for system in [
            "system:serviceaccount:payments:batch",
            "system:kube-controller-manager",
            "system:anonymous",
            "system:admin",
        ] {
            let refusal = accept_subjects(&policy, vec![user(system)]).expect_err("refused");
            assert!(
                refusal
                    .message
                    .starts_with(&format!("spec.subjects[0]: User {system} is refused")),
                "{}",
                refusal.message
            );
            assert!(
                refusal.message.contains("kind ServiceAccount"),
                "{}",
                refusal.message
            );
        }
        // The same ServiceAccount, named as one, is what the policy lists.
        assert_eq!(
            accept_subjects(&policy, vec![service_account("payments", "batch")]),
            Ok(())
        );
        // A ServiceAccount filing for itself names itself, under the default rules too.
        let mut request = access_request();
        request.spec.requester = "system:serviceaccount:payments:batch".into();
        request.spec.subjects = vec![user("system:serviceaccount:payments:batch")];
        let policy = access_policy("payments-db");
        assert!(accept(&request.spec, "payments", &[&policy], &namespaces()).is_ok());
    }

    #[test]
    fn a_named_policy_governs_only_requests_filed_where_it_selects() {
        let policy = access_policy("payments-db");
        // Filed in orders, for payments: the policy selects payments only.
        let mut request = access_request();
        request.spec.namespaces = vec!["payments".into()];
        let unnamed =
            accept(&request.spec, "orders", &[&policy], &namespaces()).expect_err("refused");
        assert_eq!(unnamed.reason, reason::NO_MATCHING_POLICY);
        assert!(
            unnamed.message.contains("filed in namespace orders"),
            "{}",
            unnamed.message
        );
        request.spec.policy = Some("payments-db".into());
        let named =
            accept(&request.spec, "orders", &[&policy], &namespaces()).expect_err("refused");
        assert_eq!(named.reason, reason::POLICY_VIOLATION);
        assert!(
            named.message.starts_with(
                "spec.policy: AccessPolicy payments-db does not govern namespace orders, where this request is filed: its namespaceSelector (matchLabels team=payments) does not select orders."
            ),
            "{}",
            named.message
        );
        assert!(
            named.message.contains("label namespace orders"),
            "{}",
            named.message
        );
        // Cluster-wide too: the request's namespace decides who approves.
        let mut wide = policy.clone();
        wide.spec.allow_cluster_wide = true;
        request.spec.namespaces = vec![];
        request.spec.cluster_wide = true;
        let named = accept(&request.spec, "orders", &[&wide], &namespaces()).expect_err("refused");
        assert!(
            named.message.starts_with(
                "spec.policy: AccessPolicy payments-db does not govern namespace orders"
            ),
            "{}",
            named.message
        );
        assert!(accept(&request.spec, "payments", &[&wide], &namespaces()).is_ok());
    }

    #[test]
    fn a_named_policy_prints_its_selector_for_targets_it_does_not_select() {
        let mut request = access_request();
        request.spec.policy = Some("payments-db".into());
        request.spec.namespaces = vec!["analytics".into()];
        let refusal = accept(
            &request.spec,
            "payments",
            &[&access_policy("payments-db")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.namespaces: analytics not selected by the namespaceSelector (matchLabels team=payments) of AccessPolicy payments-db; request namespaces it selects, or ask a cluster admin to label them so that it does"
        );
    }

    #[test]
    fn approvers_see_subjects_and_scope_in_words() {
        let policy = policy_with(rules(&[], &["oncall"], &["ci/deployer"]));
        let mut request = access_request();
        request.spec.subjects = vec![
            user("alice"),
            group("oncall"),
            service_account("ci", "deployer"),
        ];
        request.spec.namespaces = vec!["payments".into()];
        let accepted =
            accept(&request.spec, "payments", &[&policy], &namespaces()).expect("accepted");
        assert_eq!(
            subjects_summary(&accepted),
            "User alice, Group oncall, ServiceAccount ci/deployer"
        );
        assert_eq!(grant_scope(&accepted), "payments");
        let mut two = accepted.clone();
        two.namespaces = vec!["orders".into(), "payments".into()];
        assert_eq!(grant_scope(&two), "orders, payments");
        two.cluster_wide = true;
        two.namespaces = vec![];
        assert_eq!(grant_scope(&two), "cluster-wide");
        let default = accept(
            &access_request().spec,
            "payments",
            &[&policy],
            &namespaces(),
        )
        .expect("accepted");
        assert_eq!(subjects_summary(&default), "User alice");
    }

    #[test]
    fn nobody_files_on_behalf_of_a_system_identity() {
        let mut request = access_request();
        request.spec.requester = "system:serviceaccount:payments:bot".into();
        let refusal = check_on_behalf(&request.spec, Some("gitops")).expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert!(
            refusal.message.contains("spec.requester"),
            "{}",
            refusal.message
        );
        assert_eq!(
            check_on_behalf(&request.spec, Some("system:serviceaccount:payments:bot")),
            Ok(()),
            "a ServiceAccount may file for itself"
        );
        assert_eq!(check_on_behalf(&request.spec, None), Ok(()));
        assert_eq!(
            check_on_behalf(&access_request().spec, Some("gitops")),
            Ok(())
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::api::fixtures::{access_policy, access_request};
    use crate::properties::{config, tricky_text};

    /// Durations the CRD rule could see: in its grammar (some beyond any duration), or not.
    fn duration_text() -> impl Strategy<Value = String> {
        prop_oneof!["([0-9]{1,20}[hms]){1,3}", tricky_text()]
    }

    proptest! {
        #![proptest_config(config())]

        /// Any spec.duration against any policy durations: the length granted, never more than
        /// maxDuration, or a refusal naming the field to fix; never a panic.
        #[test]
        fn durations_are_granted_or_refused_by_field(
            requested in prop::option::of(duration_text()),
            max in duration_text(),
            default in prop::option::of(duration_text()),
        ) {
            let mut policy = access_policy("p").spec;
            policy.max_duration = max.clone();
            policy.default_duration = default;
            let mut request = access_request().spec;
            request.duration = requested;
            match check_duration("p", &policy, &request) {
                Ok(granted) => prop_assert!(Ok(granted) <= duration::parse(&max).map_err(|_| ())),
                Err(refusal) => prop_assert!(
                    ["spec.duration", "maxDuration", "defaultDuration"]
                        .iter()
                        .any(|field| refusal.message.contains(field)),
                    "{}", refusal.message
                ),
            }
        }
    }
}
