//! The automated checks an AccessRequest gets before anyone approves: does a subject already hold
//! the role there (ExistingAccess), would the grant break a separation-of-duties rule
//! (SeparationOfDutiesConflict), and does the role carry powerful permissions (HighRisk).
//!
//! Approvers see the results as `status.findings`; the controller uses `high_risk` to decide
//! whether `when: HighRisk` approval stages apply and `denied_by_sod` to end a request that a
//! `Deny` rule forbids. Everything here is pure: the controller lists the bindings and reads the
//! role, and this module only decides. Where the input is unclear the checks fail closed: a role
//! whose rules cannot be read counts as high risk.

use k8s_openapi::api::rbac::v1 as rbac;
use k8s_openapi::api::rbac::v1::PolicyRule;

use super::{AcceptedRequest, describe_subject};
use crate::api::common::{RoleKind, RoleRef, Subject, SubjectKind};
use crate::api::{AccessPolicySpec, ConflictAction, Finding, FindingType, OWNER_LABEL};

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

/// The reason given when the requested role's rules are unknown; the grant is then treated as high
/// risk, because approvers must not wave through permissions nobody has seen.
pub const UNREADABLE_ROLE_REASON: &str = "role rules could not be read";

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
    fn scope(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "cluster-wide".to_string(),
        }
    }

    /// How the binding reaches `subject` (whose groups are `groups`), if it may at all.
    fn reach(&self, subject: &Subject, groups: &Memberships) -> Option<Reach> {
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
enum Reach {
    /// The binding names the subject itself.
    Direct,
    /// The binding names a group the subject is known to be in.
    Member(String),
    /// The binding names groups the subject may be in: Gatehouse cannot see a user's groups.
    Unknown(Vec<String>),
}

/// The groups a subject is in, as far as Gatehouse can know without seeing the authenticator.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Memberships {
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
fn memberships(subject: &Subject) -> Memberships {
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
fn unchecked(subject: &Subject, groups: &[String]) -> String {
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
fn describe_groups(groups: &[String]) -> String {
    if groups.len() == 1 {
        format!("Group {}", groups[0])
    } else {
        format!("Groups {}", groups.join(", "))
    }
}

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
    let mut findings = existing_access(request, bindings);

    let (conflicts, mut denials) = separation_of_duties(request, policy, bindings);
    findings.extend(conflicts);

    let reasons = match role_rules {
        Some(rules) => high_risk_reasons(rules, request.cluster_wide),
        None => vec![UNREADABLE_ROLE_REASON.to_string()],
    };
    let high_risk = !reasons.is_empty();
    if high_risk {
        findings.push(Finding {
            type_: FindingType::HighRisk,
            message: format!(
                "{} granted {} is high-risk: {}",
                &request.role,
                describe_targets(request),
                reasons.join("; ")
            ),
        });
    }

    findings.sort();
    findings.dedup();
    // The smallest message, not the first found: binding order comes from the API server's list
    // and must not change which conflict the denial names.
    denials.sort();
    Checks {
        findings,
        high_risk,
        denied_by_sod: denials.into_iter().next(),
    }
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

/// One ExistingAccess finding per (subject, binding) that already grants the requested role in a
/// target namespace: approvers may not need to grant anything, and the grant's expiry would not
/// end that access. A binding counts when it names the subject or a group the subject is known to
/// be in; one naming a group a user may be in is reported as not checked, because Gatehouse cannot
/// see a user's groups.
fn existing_access(request: &AcceptedRequest, bindings: &[ExistingBinding]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for subject in &request.subjects {
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
            findings.push(Finding {
                type_: FindingType::ExistingAccess,
                message,
            });
        }
    }
    findings
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

/// SeparationOfDutiesConflict findings, and the messages of those that deny the request.
///
/// A role held anywhere counts, namespace-scoped or cluster-wide: the rule is about one person
/// holding both duties, wherever they were granted.
fn separation_of_duties(
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

/// Whether a request subject is the same identity as a binding subject: same kind and name, and
/// for a ServiceAccount the same namespace. A user named `system:serviceaccount:<ns>:<name>` is
/// that ServiceAccount, as the API server authenticates it, so writing a ServiceAccount either
/// way cannot hide a conflict.
fn same_subject(a: &Subject, b: &Subject) -> bool {
    let (a, b) = (canonical(a), canonical(b));
    a.kind == b.kind
        && a.name == b.name
        && (a.kind != SubjectKind::ServiceAccount || a.namespace == b.namespace)
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
    let kind = match role_ref.kind.as_str() {
        "Role" => RoleKind::Role,
        "ClusterRole" => RoleKind::ClusterRole,
        _ => return None,
    };
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
            let kind = match s.kind.as_str() {
                "User" => SubjectKind::User,
                "Group" => SubjectKind::Group,
                "ServiceAccount" => SubjectKind::ServiceAccount,
                _ => return None,
            };
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
    use std::collections::BTreeMap;

    use kube::api::ObjectMeta;

    use super::*;
    use crate::access::accept;
    use crate::api::SeparationOfDutiesRule;
    use crate::api::fixtures::{access_policy, access_request, namespaces};

    // ---- fixtures ----

    fn user(name: &str) -> Subject {
        Subject {
            kind: SubjectKind::User,
            name: name.into(),
            namespace: None,
        }
    }

    fn service_account(namespace: &str, name: &str) -> Subject {
        Subject {
            kind: SubjectKind::ServiceAccount,
            name: name.into(),
            namespace: Some(namespace.into()),
        }
    }

    fn cluster_role(name: &str) -> RoleRef {
        RoleRef {
            kind: RoleKind::ClusterRole,
            name: name.into(),
        }
    }

    fn role(name: &str) -> RoleRef {
        RoleRef {
            kind: RoleKind::Role,
            name: name.into(),
        }
    }

    fn binding(
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
    fn accepted() -> AcceptedRequest {
        accept(
            &access_request().spec,
            "payments",
            &[&access_policy("payments-db")],
            &namespaces(),
        )
        .expect("the fixture request is accepted")
    }

    fn accepted_cluster_wide() -> AcceptedRequest {
        let mut policy = access_policy("payments-db");
        policy.spec.allow_cluster_wide = true;
        let mut request = access_request();
        request.spec.cluster_wide = true;
        accept(&request.spec, "payments", &[&policy], &namespaces())
            .expect("cluster-wide request is accepted")
    }

    fn policy() -> AccessPolicySpec {
        access_policy("payments-db").spec
    }

    fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        PolicyRule {
            api_groups: Some(strings(groups)),
            resources: Some(strings(resources)),
            verbs: strings(verbs),
            ..Default::default()
        }
    }

    /// What db-reader plausibly grants: nothing high-risk.
    fn benign_rules() -> Vec<PolicyRule> {
        vec![
            rule(
                &[""],
                &["configmaps", "services"],
                &["get", "list", "watch"],
            ),
            rule(&["apps"], &["deployments"], &["get", "list"]),
        ]
    }

    fn of_type(checks: &Checks, type_: FindingType) -> Vec<&str> {
        checks
            .findings
            .iter()
            .filter(|f| f.type_ == type_)
            .map(|f| f.message.as_str())
            .collect()
    }

    fn sod(
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

    // ---- separation of duties ----

    fn maker_checker(on_conflict: Option<ConflictAction>) -> (AcceptedRequest, AccessPolicySpec) {
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

    // ---- HighRisk ----

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

    // ---- access held through groups ----

    fn group(name: &str) -> Subject {
        Subject {
            kind: SubjectKind::Group,
            name: name.into(),
            namespace: None,
        }
    }

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
