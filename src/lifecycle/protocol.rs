//! Reads the approval annotations and decides which stages have passed.
//!
//! The admission policies make the API server verify who wrote each annotation; this module
//! double-checks what it can on its own (a value is present, the approver is neither the requester
//! nor a subject) before an approval counts, and keeps the order of the stages.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::common::{
    ApprovalRecord, ApprovalStage, Approver, Decision, StageCondition, Subject, SubjectKind,
};
use crate::api::conditions::{ConditionUpdate, reason, stage_condition};
use crate::api::{
    APPROVE_PREFIX, CHANGES_PREFIX, DENY_PREFIX, ORG_CHART, REASON_PREFIX, REVOKE_ANNOTATION,
};

use super::eligible::Manager;

/// Who revoked the object (`gatehouse.dev/revoke=<username>`), if anyone: admission verified the
/// author, so any value ends it.
pub fn revoked_by(annotations: &BTreeMap<String, String>) -> Option<&str> {
    annotations
        .get(REVOKE_ANNOTATION)
        .map(|user| user.trim())
        .filter(|user| !user.is_empty())
}

/// The state of the approvals of one request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ApprovalState {
    /// Roles that must approve, in stage order.
    pub required: Vec<String>,
    /// Every valid decision, in stage order then role name; times kept from earlier observations.
    pub records: Vec<ApprovalRecord>,
    /// Required roles whose approval counts (all earlier stages approved too).
    pub passed: Vec<String>,
    /// The first denial or request for changes by a required role, if any: it ends the object.
    pub denial: Option<ApprovalRecord>,
    /// Annotations that do not count, with why.
    pub ignored: Vec<String>,
}

impl ApprovalState {
    /// Every required stage approved, in order.
    pub fn complete(&self) -> bool {
        self.passed.len() == self.required.len()
    }

    /// Required roles still to approve, in order.
    pub fn waiting_for(&self) -> Vec<&str> {
        self.required
            .iter()
            .filter(|r| !self.passed.contains(r))
            .map(String::as_str)
            .collect()
    }

    /// The people whose approvals passed a stage.
    fn approvers_of_passed(&self) -> Vec<&str> {
        self.passed
            .iter()
            .filter_map(|role| {
                self.records
                    .iter()
                    .find(|r| &r.role == role && r.decision == Decision::Approved)
                    .map(|r| r.user.as_str())
            })
            .collect()
    }

    /// Whether `role` approved but waits for an earlier stage before it counts.
    pub fn approved_out_of_order(&self, role: &str) -> bool {
        !self.passed.iter().any(|r| r == role)
            && self
                .records
                .iter()
                .any(|r| r.role == role && r.decision == Decision::Approved)
    }
}

/// Whether `user` (a username as the API server authenticates it) is `subject`: a user by name, a
/// ServiceAccount by its `system:serviceaccount:<namespace>:<name>` username.
fn is_subject(subject: &Subject, user: &str) -> bool {
    match subject.kind {
        SubjectKind::User => subject.name == user,
        SubjectKind::ServiceAccount => {
            format!(
                "system:serviceaccount:{}:{}",
                subject.namespace.as_deref().unwrap_or_default(),
                subject.name
            ) == user
        }
        SubjectKind::Group => false,
    }
}

/// The roles that must approve: every stage that applies, in order, each role once.
pub fn required_roles(stages: &[ApprovalStage], high_risk: bool) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for stage in stages {
        let applies = match stage.when.unwrap_or_default() {
            StageCondition::Always => true,
            StageCondition::HighRisk => high_risk,
        };
        if applies && !roles.contains(&stage.role) {
            roles.push(stage.role.clone());
        }
    }
    roles
}

/// The roles of `stages` only the requester's manager decides (`approver: RequesterManager`).
pub fn manager_roles(stages: &[ApprovalStage]) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    for stage in stages {
        if stage.approver == Some(Approver::RequesterManager) && !roles.contains(&stage.role) {
            roles.push(stage.role.clone());
        }
    }
    roles
}

/// The people an object concerns, none of whom may decide on it: who asked, who filed it on
/// their behalf, and who would receive the access or the data.
pub struct Parties<'a> {
    pub requester: &'a str,
    pub filed_by: Option<&'a str>,
    pub subjects: &'a [Subject],
}

/// Evaluates the approval annotations of an object concerning `parties`.
/// `previous` is the last recorded list, whose times are kept; `now` stamps new decisions.
/// A denial counts only for a role that is one of the `required` stages: any other role has no
/// say in this object (admission refuses such a denial; this is the check in depth).
pub fn evaluate(
    required: Vec<String>,
    annotations: &BTreeMap<String, String>,
    parties: &Parties,
    previous: &[ApprovalRecord],
    now: &Time,
) -> ApprovalState {
    let requester = parties.requester;
    let mut records = Vec::new();
    let mut ignored = Vec::new();
    for (key, value) in annotations {
        let (decision, role) = if let Some(role) = key.strip_prefix(APPROVE_PREFIX) {
            (Decision::Approved, role)
        } else if let Some(role) = key.strip_prefix(DENY_PREFIX) {
            (Decision::Denied, role)
        } else if let Some(role) = key.strip_prefix(CHANGES_PREFIX) {
            (Decision::ChangesRequested, role)
        } else {
            continue;
        };
        let user = value.trim();
        let problem = if role.is_empty() {
            Some("names no role".to_string())
        } else if user.is_empty() {
            Some("has no approver username".to_string())
        } else if user == requester {
            Some(format!(
                "is by the requester {user:?}, who may not decide on their own request"
            ))
        } else if parties.filed_by == Some(user) {
            Some(format!(
                "is by {user:?}, who filed this on the requester's behalf and may not decide on it"
            ))
        } else if parties.subjects.iter().any(|s| is_subject(s, user)) {
            Some(format!("is by {user:?}, who would receive the access"))
        } else if decision != Decision::Approved && !required.iter().any(|r| r == role) {
            Some(format!(
                "is for role {role:?}, which is no stage of this object (stages: {})",
                required.join(", ")
            ))
        } else {
            None
        };
        if let Some(problem) = problem {
            ignored.push(format!("{key} {problem}; it does not count"));
            continue;
        }
        let time = previous
            .iter()
            .find(|r| r.role == role && r.user == user && r.decision == decision)
            .and_then(|r| r.time.clone())
            .unwrap_or_else(|| now.clone());
        records.push(ApprovalRecord {
            role: role.to_string(),
            user: user.to_string(),
            decision,
            reason: annotations
                .get(&format!("{REASON_PREFIX}{role}"))
                .map(|r| r.trim().to_string()),
            time: Some(time),
        });
    }
    let stage_index = |role: &str| {
        required
            .iter()
            .position(|r| r == role)
            .unwrap_or(usize::MAX)
    };
    records.sort_by(|a, b| (stage_index(&a.role), &a.role).cmp(&(stage_index(&b.role), &b.role)));

    // A denial or a request for changes, whichever stage comes first: either ends the object.
    let denial = records
        .iter()
        .find(|r| r.decision != Decision::Approved)
        .cloned();
    // Stages pass in order, each by a different person: one approver holding several roles
    // (a namespace admin holds them all) never stands in for the people a policy asks for.
    let mut passed: Vec<String> = Vec::new();
    let mut approvers: Vec<&str> = Vec::new();
    for role in &required {
        let approval = records
            .iter()
            .find(|r| &r.role == role && r.decision == Decision::Approved);
        let Some(approval) = approval else { break };
        if let Some(earlier) = approvers
            .iter()
            .position(|user| *user == approval.user)
            .map(|i| passed[i].clone())
        {
            ignored.push(format!(
                "{APPROVE_PREFIX}{role} by {:?} does not count: {:?} already approved as {earlier}, and every stage needs a different person",
                approval.user, approval.user
            ));
            break;
        }
        approvers.push(&approval.user);
        passed.push(role.clone());
    }
    ApprovalState {
        required,
        records,
        passed,
        denial,
        ignored,
    }
}

/// What is known of an object's decision annotations besides their text.
pub struct Decisions<'a> {
    pub annotations: &'a BTreeMap<String, String>,
    /// Decisions whose author lacks the right where it counts (SubjectAccessReview), with why.
    pub unauthorized: &'a [(String, String)],
    /// Whether the approval admission policies are unverified right now: new approvals seen
    /// meanwhile are marked untrusted for good.
    pub unverified: bool,
    /// The roles only the requester's manager decides (`approver: RequesterManager`), and who
    /// that is per the org chart.
    pub manager_stages: &'a [String],
    pub manager: &'a Manager,
}

/// The role a decision annotation (approve, deny, changes) is for.
fn decision_role(key: &str) -> Option<&str> {
    key.strip_prefix(APPROVE_PREFIX)
        .or_else(|| key.strip_prefix(DENY_PREFIX))
        .or_else(|| key.strip_prefix(CHANGES_PREFIX))
}

/// Why a decision for a manager stage does not count: it is not by the requester's manager per
/// the org chart (or the org chart names none). `None` for other roles and for the manager.
fn not_the_manager(key: &str, user: &str, decisions: &Decisions) -> Option<String> {
    let role = decision_role(key)?;
    if !decisions.manager_stages.iter().any(|m| m == role) {
        return None;
    }
    match decisions.manager {
        Manager::Named(manager) if manager == user.trim() => None,
        Manager::Named(manager) => Some(format!(
            "{key} by {user:?} does not count: only the requester's manager {manager:?} (org chart) decides stage {role}"
        )),
        Manager::Unmapped(why) => Some(format!("{key} by {user:?} does not count: {why}")),
    }
}

/// The approval state from the decisions that count: not unauthorized, not untrusted (approvals
/// first seen while admission was not enforced, recorded in `untrusted`), evaluated as in
/// [`evaluate`]; why the others do not count is in `ignored`. One place for both kinds.
pub fn counted(
    required: Vec<String>,
    decisions: &Decisions,
    parties: &Parties,
    untrusted: &mut Vec<String>,
    previous: &[ApprovalRecord],
    now: &Time,
) -> ApprovalState {
    if decisions.unverified {
        mark_untrusted(untrusted, previous, decisions.annotations);
    }
    let not_managers: Vec<String> = decisions
        .annotations
        .iter()
        .filter_map(|(key, user)| not_the_manager(key, user, decisions))
        .collect();
    let trusted: BTreeMap<String, String> = decisions
        .annotations
        .iter()
        .filter(|(key, user)| not_the_manager(key, user, decisions).is_none())
        .filter(|(key, _)| !decisions.unauthorized.iter().any(|(k, _)| k == *key))
        .filter(|(key, value)| !untrusted.contains(&format!("{key}={value}")))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut state = evaluate(required, &trusted, parties, previous, now);
    state.ignored.extend(not_managers);
    state
        .ignored
        .extend(decisions.unauthorized.iter().map(|(_, why)| why.clone()));
    state.ignored.extend(untrusted_notes(untrusted));
    state
}

/// Records in `untrusted` (as `<annotation>=<value>`) every approval annotation not already
/// counted in `counted`: while the admission policies are not enforced anyone who may patch the
/// object could have written it, so it never counts, even after they are restored.
pub fn mark_untrusted(
    untrusted: &mut Vec<String>,
    counted: &[ApprovalRecord],
    annotations: &BTreeMap<String, String>,
) {
    for (key, value) in annotations {
        let Some(role) = key.strip_prefix(APPROVE_PREFIX) else {
            continue;
        };
        let already_counted = counted
            .iter()
            .any(|a| a.role == role && a.user == value.trim() && a.decision == Decision::Approved);
        let decision = format!("{key}={value}");
        if !already_counted && !untrusted.contains(&decision) {
            untrusted.push(decision);
        }
    }
    untrusted.sort();
}

/// Why each untrusted approval does not count, for `ignoredAnnotations`.
pub fn untrusted_notes(untrusted: &[String]) -> impl Iterator<Item = String> + '_ {
    untrusted.iter().map(|decision| {
        format!("{decision} was added while the approval admission policies were not enforced, so nothing verified its author; it never counts (file a new request)")
    })
}

/// The condition of every required stage (`<Role>Approved`): approved, approved but waiting for
/// an earlier stage, or waiting for an approver (for a manager stage: the requester's manager, or
/// nobody while the org chart names none).
pub fn stage_conditions(
    state: &ApprovalState,
    manager_stages: &[String],
    manager: &Manager,
) -> Vec<ConditionUpdate> {
    state
        .required
        .iter()
        .map(|role| {
            let approver = state
                .records
                .iter()
                .find(|r| &r.role == role && r.decision == Decision::Approved);
            let (ok, why, message) = match approver {
                Some(record) if state.passed.contains(role) => (
                    true,
                    reason::APPROVED,
                    format!("approved by {}", record.user),
                ),
                Some(record) if state.approvers_of_passed().contains(&record.user.as_str()) => (
                    false,
                    reason::WAITING,
                    format!(
                        "approved by {}, who already passed an earlier stage; waiting for a different approver with role {role}",
                        record.user
                    ),
                ),
                Some(record) => (
                    false,
                    reason::WAITING_FOR_EARLIER_STAGE,
                    format!(
                        "approved by {}; counts once the earlier stages approve",
                        record.user
                    ),
                ),
                None if manager_stages.contains(role) => match manager {
                    Manager::Named(manager) => (
                        false,
                        reason::WAITING,
                        format!(
                            "waiting for the requester's manager {manager} (OrgChart {ORG_CHART}) to decide as {role}"
                        ),
                    ),
                    Manager::Unmapped(why) => (false, reason::NO_MANAGER, why.clone()),
                },
                None => (
                    false,
                    reason::WAITING,
                    format!("waiting for an approver with role {role}"),
                ),
            };
            ConditionUpdate::new(stage_condition(role), ok, why, message)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn stages() -> Vec<ApprovalStage> {
        vec![
            ApprovalStage {
                role: "manager".into(),
                when: None,
                approver: None,
            },
            ApprovalStage {
                role: "data-owner".into(),
                when: Some(StageCondition::Always),
                approver: None,
            },
            ApprovalStage {
                role: "security".into(),
                when: Some(StageCondition::HighRisk),
                approver: None,
            },
        ]
    }

    fn alice() -> Vec<Subject> {
        vec![Subject {
            kind: SubjectKind::User,
            name: "alice".into(),
            namespace: None,
        }]
    }

    #[test]
    fn high_risk_stages_apply_only_to_high_risk_grants() {
        assert_eq!(
            required_roles(&stages(), false),
            vec!["manager", "data-owner"]
        );
        assert_eq!(
            required_roles(&stages(), true),
            vec!["manager", "data-owner", "security"]
        );
    }

    fn parties(subjects: &[Subject]) -> Parties<'_> {
        Parties {
            requester: "alice",
            filed_by: None,
            subjects,
        }
    }

    #[test]
    fn all_stages_approved_in_order_completes() {
        let a = annotations(&[
            ("approve.gatehouse.dev/manager", "bob"),
            ("approve.gatehouse.dev/data-owner", "carol"),
            ("reason.gatehouse.dev/data-owner", "ok for PAY-1"),
        ]);
        let state = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        assert!(state.complete());
        assert_eq!(state.records.len(), 2);
        assert_eq!(
            state.records[0].role, "manager",
            "records follow stage order"
        );
        assert_eq!(state.records[1].reason.as_deref(), Some("ok for PAY-1"));
    }

    #[test]
    fn a_later_stage_waits_for_the_earlier_ones() {
        let a = annotations(&[("approve.gatehouse.dev/data-owner", "carol")]);
        let state = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        assert!(!state.complete());
        assert!(state.passed.is_empty());
        assert!(state.approved_out_of_order("data-owner"));
        assert_eq!(state.waiting_for(), vec!["manager", "data-owner"]);
        let a = annotations(&[
            ("approve.gatehouse.dev/data-owner", "carol"),
            ("approve.gatehouse.dev/manager", "bob"),
        ]);
        assert!(
            evaluate(
                required_roles(&stages(), false),
                &a,
                &parties(&alice()),
                &[],
                &at(5)
            )
            .complete()
        );
    }

    #[test]
    fn a_denial_counts_only_for_a_stage_of_the_object() {
        let a = annotations(&[
            ("approve.gatehouse.dev/manager", "bob"),
            ("deny.gatehouse.dev/security", "dave"),
        ]);
        let high_risk = evaluate(
            required_roles(&stages(), true),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        assert_eq!(
            high_risk.denial.map(|d| (d.role, d.user)),
            Some(("security".into(), "dave".into()))
        );
        let low_risk = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        assert_eq!(
            low_risk.denial, None,
            "security is no stage of a low-risk request"
        );
        assert!(
            low_risk
                .ignored
                .iter()
                .any(|m| m.contains("no stage of this object")),
            "{:?}",
            low_risk.ignored
        );
    }

    #[test]
    fn one_person_passes_one_stage() {
        let a = annotations(&[
            ("approve.gatehouse.dev/manager", "bob"),
            ("approve.gatehouse.dev/data-owner", "bob"),
        ]);
        let state = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        assert!(!state.complete());
        assert_eq!(state.passed, vec!["manager"]);
        assert_eq!(state.waiting_for(), vec!["data-owner"]);
        assert!(
            state
                .ignored
                .iter()
                .any(|m| m.contains("every stage needs a different person")),
            "{:?}",
            state.ignored
        );
        let data_owner = stage_conditions(&state, &[], &Manager::Unmapped(String::new()))
            .into_iter()
            .find(|c| c.type_ == "DataOwnerApproved")
            .expect("stage condition");
        assert!(!data_owner.status);
        assert!(
            data_owner
                .message
                .contains("already passed an earlier stage"),
            "{}",
            data_owner.message
        );
    }

    #[test]
    fn the_filer_on_behalf_cannot_decide() {
        let a = annotations(&[("approve.gatehouse.dev/manager", "gitops")]);
        let state = evaluate(
            required_roles(&stages(), false),
            &a,
            &Parties {
                requester: "alice",
                filed_by: Some("gitops"),
                subjects: &alice(),
            },
            &[],
            &at(5),
        );
        assert!(state.records.is_empty(), "{:?}", state.records);
        assert!(state.ignored[0].contains("filed this on the requester's behalf"));
    }

    #[test]
    fn self_approval_and_subject_approval_do_not_count() {
        let subjects = vec![
            Subject {
                kind: SubjectKind::User,
                name: "alice".into(),
                namespace: None,
            },
            Subject {
                kind: SubjectKind::User,
                name: "erin".into(),
                namespace: None,
            },
        ];
        let a = annotations(&[
            ("approve.gatehouse.dev/manager", "alice"),
            ("approve.gatehouse.dev/data-owner", "erin"),
            ("approve.gatehouse.dev/security", " "),
        ]);
        let state = evaluate(
            required_roles(&stages(), true),
            &a,
            &parties(&subjects),
            &[],
            &at(5),
        );
        assert!(state.records.is_empty());
        assert_eq!(state.ignored.len(), 3, "{:?}", state.ignored);
        assert!(
            state
                .ignored
                .iter()
                .any(|m| m.contains("may not decide on their own request"))
        );
    }

    #[test]
    fn a_service_account_subject_cannot_approve_its_own_grant() {
        let subjects = vec![Subject {
            kind: SubjectKind::ServiceAccount,
            name: "ci".into(),
            namespace: Some("payments".into()),
        }];
        let a = annotations(&[(
            "approve.gatehouse.dev/manager",
            "system:serviceaccount:payments:ci",
        )]);
        let state = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&subjects),
            &[],
            &at(5),
        );
        assert!(state.records.is_empty(), "{:?}", state.records);
        assert_eq!(state.ignored.len(), 1);
    }

    #[test]
    fn decision_times_are_kept_from_the_first_observation() {
        let a = annotations(&[("approve.gatehouse.dev/manager", "bob")]);
        let first = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &[],
            &at(5),
        );
        let second = evaluate(
            required_roles(&stages(), false),
            &a,
            &parties(&alice()),
            &first.records,
            &at(99),
        );
        assert_eq!(second.records[0].time, Some(at(5)));
    }

    fn counted_with(annotations: &BTreeMap<String, String>, manager: &Manager) -> ApprovalState {
        let managed = ["manager".to_string()];
        counted(
            vec!["manager".into(), "data-owner".into()],
            &Decisions {
                annotations,
                unauthorized: &[],
                unverified: false,
                manager_stages: &managed,
                manager,
            },
            &parties(&alice()),
            &mut Vec::new(),
            &[],
            &at(5),
        )
    }

    #[test]
    fn a_manager_stage_counts_only_the_requesters_manager() {
        let bob = Manager::Named("bob".into());
        for key in [
            "approve.gatehouse.dev/manager",
            "deny.gatehouse.dev/manager",
            "changes.gatehouse.dev/manager",
        ] {
            let by_mallory = counted_with(&annotations(&[(key, "mallory")]), &bob);
            assert!(by_mallory.records.is_empty(), "{key} by mallory counted");
            assert!(
                by_mallory.ignored.iter().any(|i| i.contains(
                    "only the requester's manager \"bob\" (org chart) decides stage manager"
                )),
                "{:?}",
                by_mallory.ignored
            );
        }
        let by_bob = counted_with(
            &annotations(&[
                ("approve.gatehouse.dev/manager", "bob"),
                ("approve.gatehouse.dev/data-owner", "carol"),
            ]),
            &bob,
        );
        assert!(by_bob.complete(), "{by_bob:?}");
        // Another role than the manager stage is not the org chart's business.
        let data_owner = counted_with(
            &annotations(&[("approve.gatehouse.dev/data-owner", "mallory")]),
            &bob,
        );
        assert_eq!(data_owner.records.len(), 1);
    }

    #[test]
    fn without_an_org_chart_entry_nobody_decides_a_manager_stage_and_its_condition_says_why() {
        let unmapped = Manager::Unmapped("add key 'alice'".into());
        let state = counted_with(
            &annotations(&[("approve.gatehouse.dev/manager", "bob")]),
            &unmapped,
        );
        assert!(state.records.is_empty());
        let conditions = stage_conditions(&state, &["manager".to_string()], &unmapped);
        let manager = &conditions[0];
        assert_eq!(manager.reason, reason::NO_MANAGER);
        assert_eq!(manager.message, "add key 'alice'");
    }

    #[test]
    fn a_requester_mapped_as_their_own_manager_never_decides() {
        let herself = Manager::Named("alice".into());
        let state = counted_with(
            &annotations(&[("approve.gatehouse.dev/manager", "alice")]),
            &herself,
        );
        assert!(state.records.is_empty());
        assert!(
            state
                .ignored
                .iter()
                .any(|i| i.contains("is by the requester")),
            "{:?}",
            state.ignored
        );
    }
}

#[cfg(test)]
mod properties {
    use k8s_openapi::jiff::Timestamp;
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{annotations, config};

    proptest! {
        #![proptest_config(config())]

        /// Whatever annotations an object carries: no panic; a decision counts only as written
        /// (its key, a trimmed username that is not the requester's), and stages pass in order,
        /// each by a different person.
        #[test]
        fn decisions_count_only_as_written(annotations in annotations(), high_risk: bool) {
            let stages: Vec<ApprovalStage> = ["manager", "security"]
                .map(|role| ApprovalStage { role: role.into(), when: None, approver: None })
                .into();
            let required = required_roles(&stages, high_risk);
            let parties = Parties { requester: "alice", filed_by: None, subjects: &[] };
            let now = Time(Timestamp::from_second(1_700_000_000).unwrap());
            let state = evaluate(required.clone(), &annotations, &parties, &[], &now);
            for record in &state.records {
                let prefix = match record.decision {
                    Decision::Approved => APPROVE_PREFIX,
                    Decision::Denied => DENY_PREFIX,
                    Decision::ChangesRequested => CHANGES_PREFIX,
                };
                let written = annotations.get(&format!("{prefix}{}", record.role));
                prop_assert_eq!(written.map(|u| u.trim()), Some(record.user.as_str()));
                prop_assert!(!record.role.is_empty() && !record.user.is_empty());
                prop_assert_ne!(record.user.as_str(), "alice");
            }
            prop_assert_eq!(&state.passed[..], &required[..state.passed.len()]);
            let mut approvers: Vec<&str> = state
                .passed
                .iter()
                .map(|role| {
                    state
                        .records
                        .iter()
                        .find(|r| &r.role == role && r.decision == Decision::Approved)
                        .map(|r| r.user.as_str())
                        .unwrap()
                })
                .collect();
            approvers.sort();
            approvers.dedup();
            prop_assert_eq!(approvers.len(), state.passed.len());
        }
    }
}
