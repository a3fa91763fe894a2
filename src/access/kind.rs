//! The AccessRequest as a kind of the lifecycle core ([`crate::lifecycle::decide`]): how its
//! status holds the lifecycle, how it words it, and what its policy check adds (stages, high risk,
//! separation of duties, findings, the bindings that carry the grant).
//!
//! Pending → (all stages approved) → Approved → Active → Expired | Revoked; or Pending → Denied |
//! TimedOut; or Failed while the request does not fit a policy.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;

use super::AcceptedRequest;
use crate::api::Phase;
use crate::api::common::ApprovalStage;
use crate::api::conditions::{GRANTED, reason};
use crate::api::{AccessPhase, AccessRequestStatus, BindingRef, Finding, Grant};
use crate::lifecycle::Refusal;
use crate::lifecycle::activation::Sealer;
use crate::lifecycle::decide::{self, Decision, Governed};
use crate::lifecycle::duration;
use crate::lifecycle::eligible::Approvers;
use crate::lifecycle::kind::{Kind, Record, RecordedWindow, Wording};
use crate::lifecycle::lineage::{self, Extension, Lineage};
use crate::lifecycle::narrowing::Narrowed;
use crate::lifecycle::protocol::{self as approvals, Parties};

/// Default `pendingTimeout` when the policy names none.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(72 * 3600);

/// Everything the decision needs, gathered by the controller.
pub struct Observation<'a> {
    pub requester: &'a str,
    /// Who filed the request on the requester's behalf (admitted `gatehouse.dev/filed-by`).
    pub filed_by: Option<&'a str>,
    /// Seals and checks the activation window of this request.
    pub sealer: Sealer<'a>,
    pub annotations: &'a BTreeMap<String, String>,
    pub created: Option<Timestamp>,
    pub generation: Option<i64>,
    /// When what is asked for may start at the earliest (`spec.startAt`).
    pub start_at: Option<Timestamp>,
    pub current: Option<&'a AccessRequestStatus>,
    /// Decision annotations whose author lacks the approver right in a namespace the grant
    /// reaches (admission checks the request's own namespace only), with why: they do not count.
    pub unauthorized_decisions: &'a [(String, String)],
    /// Who holds each approver role's right, and the requester's manager per the org chart.
    pub approvers: &'a Approvers,
    /// Why approvals cannot be trusted right now (the admission policies are missing or
    /// changed); `None` when they are verified.
    pub approvals_unverified: Option<&'a str>,
    /// The policy check, with the governing policy's stages and timeout when accepted.
    pub accepted: Result<Accepted<'a>, Refusal>,
    /// What `spec.extends` continues, when it names one, or why it may not.
    pub extension: Option<Result<Extension, Refusal>>,
    /// The requests that extend (once granted) and supersede this one.
    pub extended_by: Option<String>,
    pub superseded_by: Option<String>,
    pub now: Timestamp,
}

/// An accepted request with what its policy and the automated checks add.
pub struct Accepted<'a> {
    /// The request as asked for.
    pub request: &'a AcceptedRequest,
    /// How its approvals narrowed it.
    pub narrowed: &'a Narrowed,
    pub stages: &'a [ApprovalStage],
    pub pending_timeout: Option<&'a str>,
    pub findings: Vec<Finding>,
    pub high_risk: bool,
    /// Set when a separation-of-duties rule denies the grant.
    pub sod_denial: Option<String>,
    /// The bindings that carry the grant, for the status.
    pub bindings: Vec<BindingRef>,
}

/// What the decision of a request is.
pub type Plan = Decision<AccessRequestStatus>;

/// The AccessRequest kind of the lifecycle core.
pub struct AccessKind;

/// What a request's own status fields come from.
#[derive(Default)]
pub struct Facts {
    pub subjects_summary: Option<String>,
    pub grant_scope: Option<String>,
    pub findings: Option<Vec<Finding>>,
    pub bindings: Vec<BindingRef>,
}

/// The status fields of a request beside the lifecycle's.
pub struct Details {
    findings: Vec<Finding>,
    findings_summary: Option<String>,
    subjects_summary: Option<String>,
    grant_scope: Option<String>,
    bindings: Vec<BindingRef>,
}

impl Kind for AccessKind {
    type Status = AccessRequestStatus;
    type Details = Details;
    type Facts = Facts;

    const WORDING: Wording = Wording {
        kind: "AccessRequest",
        noun: "request",
        policy_kind: "AccessPolicy",
        provided_condition: GRANTED,
        waiting_reason: reason::NOT_GRANTED,
        decision: "approval",
        decided: "approved",
        stage: "stage",
        provisioned: "provisioned",
        provided: "granted",
        removed: "access removed",
        withdrawn: "access removed: the policy no longer allows this grant",
        failed: "approved, but provisioning failed",
        revoked: |user, executed| {
            if executed {
                format!("access revoked by {user}")
            } else {
                format!("withdrawn by {user} before access was granted")
            }
        },
        expired: |at| format!("access expired at {at}"),
        phase_name: |phase| AccessPhase::from(phase).name(),
    };

    fn split(status: AccessRequestStatus) -> (Record, Details) {
        let (window, bindings) = match status.grant {
            Some(grant) => (
                Some(RecordedWindow {
                    activated_at: grant.activated_at,
                    expires_at: grant.expires_at,
                    seal: grant.seal,
                }),
                grant.bindings,
            ),
            None => (None, Vec::new()),
        };
        let record = Record {
            phase: status.phase.map(AccessPhase::into),
            observed_generation: status.observed_generation,
            notifications: status.notifications,
            policy: status.policy,
            required_approvals: status.required_approvals,
            waiting_for: status.waiting_for,
            scope: status.scope,
            lineage: Lineage {
                chain: status.chain,
                chain_started_at: status.chain_started_at,
                extended_by: status.extended_by,
                superseded_by: status.superseded_by,
            },
            manager_approvals: status.manager_approvals,
            approvers: status.approvers,
            approvals: status.approvals,
            untrusted_approvals: status.untrusted_approvals,
            ignored_annotations: status.ignored_annotations,
            reminded_at: status.reminded_at,
            window,
            conditions: status.conditions,
        };
        let details = Details {
            findings: status.findings,
            findings_summary: status.findings_summary,
            subjects_summary: status.subjects_summary,
            grant_scope: status.grant_scope,
            bindings,
        };
        (record, details)
    }

    fn join(record: Record, details: Details) -> AccessRequestStatus {
        AccessRequestStatus {
            phase: record.phase.map(AccessPhase::from),
            policy: record.policy,
            required_approvals: record.required_approvals,
            waiting_for: record.waiting_for,
            scope: record.scope,
            chain: record.lineage.chain,
            chain_started_at: record.lineage.chain_started_at,
            extended_by: record.lineage.extended_by,
            superseded_by: record.lineage.superseded_by,
            manager_approvals: record.manager_approvals,
            approvers: record.approvers,
            approvals: record.approvals,
            findings: details.findings,
            findings_summary: details.findings_summary,
            subjects_summary: details.subjects_summary,
            grant_scope: details.grant_scope,
            grant: record.window.map(|window| Grant {
                bindings: details.bindings,
                activated_at: window.activated_at,
                expires_at: window.expires_at,
                seal: window.seal,
            }),
            reminded_at: record.reminded_at,
            untrusted_approvals: record.untrusted_approvals,
            ignored_annotations: record.ignored_annotations,
            conditions: record.conditions,
            observed_generation: record.observed_generation,
            notifications: record.notifications,
        }
    }

    fn conditions(status: &mut AccessRequestStatus) -> &mut Vec<Condition> {
        &mut status.conditions
    }

    fn phase(status: &AccessRequestStatus) -> Option<Phase> {
        status.phase.map(AccessPhase::into)
    }

    fn recorded_conditions(status: &AccessRequestStatus) -> &[Condition] {
        &status.conditions
    }

    fn describe(details: &mut Details, facts: &Facts, executed: bool) {
        if facts.subjects_summary.is_some() {
            details.subjects_summary = facts.subjects_summary.clone();
            details.grant_scope = facts.grant_scope.clone();
        }
        // The findings of an active grant are those it was approved with.
        if let (false, Some(findings)) = (executed, &facts.findings) {
            details.findings_summary = summary(findings);
            details.findings = findings.iter().take(LISTED_FINDINGS).cloned().collect();
        }
    }

    fn activated(details: &mut Details, facts: &Facts) {
        details.bindings = facts.bindings.clone();
    }

    fn provided(_: &mut Details, _: &Facts, _: Timestamp) {}

    fn ended(_: &mut Details, _: Timestamp) {}
}

/// Decides the next state of a request.
pub fn plan(observed: &Observation) -> Plan {
    let facts = match &observed.accepted {
        Ok(accepted) => Facts {
            subjects_summary: Some(super::subjects_summary(accepted.request)),
            grant_scope: Some(super::grant_scope(accepted.request)),
            findings: Some(accepted.findings.clone()),
            bindings: accepted.bindings.clone(),
        },
        Err(_) => Facts::default(),
    };
    let subjects = observed
        .accepted
        .as_ref()
        .map(|a| a.request.subjects.as_slice())
        .unwrap_or_default();
    let unauthorized: Vec<(String, String)> = observed
        .unauthorized_decisions
        .iter()
        .chain(
            observed
                .accepted
                .iter()
                .flat_map(|a| a.narrowed.invalid.iter()),
        )
        .cloned()
        .collect();
    decide::decide::<AccessKind>(&decide::Observation {
        sealer: observed.sealer,
        annotations: observed.annotations,
        parties: Parties {
            requester: observed.requester,
            filed_by: observed.filed_by,
            subjects,
        },
        unauthorized_decisions: &unauthorized,
        approvers: observed.approvers,
        approvals_unverified: observed.approvals_unverified,
        created: observed.created,
        generation: observed.generation,
        current: observed.current,
        governed: lineage::governed(
            observed
                .accepted
                .as_ref()
                .map(|accepted| governed(accepted, observed.start_at))
                .map_err(Clone::clone),
            observed.extension.clone(),
            observed.current.and_then(AccessKind::phase),
        ),
        extended_by: observed.extended_by.clone(),
        superseded_by: observed.superseded_by.clone(),
        suspension: None,
        facts: &facts,
        now: observed.now,
    })
}

/// What the governing AccessPolicy requires of an accepted request.
fn governed(accepted: &Accepted, start_at: Option<Timestamp>) -> Governed {
    let policy = &accepted.request.policy;
    Governed {
        policy: policy.clone(),
        accepted: format!("AccessPolicy {policy} governs this request"),
        required: approvals::required_roles(accepted.stages, accepted.high_risk),
        manager_stages: approvals::manager_roles(accepted.stages),
        // Every approver right of a request is proven again by username in the namespaces it
        // reaches: a right held only through a group does not count there.
        group_approvers: Vec::new(),
        no_stage: format!(
            "no approval stage of AccessPolicy {policy} applies to this request (every stage is `when: HighRisk` and it is not high-risk); nothing is granted without an approval, so the policy needs a stage that always applies"
        ),
        duration: accepted.narrowed.duration(accepted.request.duration),
        scope: Some(accepted.narrowed.scope(&super::asked(accepted.request))),
        start_at,
        extension: None,
        pending_timeout: accepted
            .pending_timeout
            .and_then(|t| duration::parse(t).ok())
            .unwrap_or(DEFAULT_PENDING_TIMEOUT),
        remind: true,
        denial: accepted
            .sod_denial
            .as_ref()
            .map(|message| Refusal::new(reason::SEPARATION_OF_DUTIES, message.clone()))
            .or_else(|| {
                let who = accepted.narrowed.nothing_left(&accepted.request.namespaces)?;
                Some(Refusal::new(
                    reason::NARROWED_TO_NOTHING,
                    format!(
                        "the approvals narrowed spec.namespaces to none in common ({who}); nothing is left to grant, so file a new request for what each approver approved"
                    ),
                ))
            }),
        hold: None,
    }
}

/// How many findings the status lists; the summary counts the rest. One person holding many
/// grants would otherwise make the status, and its Events, grow without bound.
pub const LISTED_FINDINGS: usize = 20;

fn summary(findings: &[Finding]) -> Option<String> {
    let mut types: Vec<String> = Vec::new();
    for finding in findings {
        let name = finding.type_.to_string();
        if !types.contains(&name) {
            types.push(name);
        }
    }
    let listed = if findings.len() > LISTED_FINDINGS {
        format!(
            " ({} findings, the first {LISTED_FINDINGS} listed)",
            findings.len()
        )
    } else {
        String::new()
    };
    (!types.is_empty()).then(|| types.join(",") + &listed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::accept;
    use crate::api::FindingType;
    use crate::api::REVOKE_ANNOTATION;
    use crate::api::conditions::{self, ACCEPTED, APPROVAL_INTEGRITY, READY, STATUS_TAMPERED};
    use crate::api::fixtures::{access_policy, access_request, namespaces};
    use crate::lifecycle::decide::Provision;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    const HOUR: i64 = 3600;

    fn test_key() -> crate::lifecycle::activation::SealKey {
        crate::lifecycle::activation::SealKey::from_bytes(&[3; 32]).expect("32 bytes")
    }

    struct Case {
        annotations: BTreeMap<String, String>,
        status: Option<AccessRequestStatus>,
        high_risk: bool,
        sod_denial: Option<String>,
        accepted: bool,
        unverified: Option<&'static str>,
        stages: Option<Vec<ApprovalStage>>,
        unauthorized: Vec<(String, String)>,
        extension: Option<Result<Extension, Refusal>>,
    }

    impl Case {
        fn new() -> Self {
            Case {
                annotations: BTreeMap::new(),
                status: None,
                high_risk: false,
                sod_denial: None,
                accepted: true,
                unverified: None,
                stages: None,
                unauthorized: vec![],
                extension: None,
            }
        }
        fn annotate(mut self, key: &str, value: &str) -> Self {
            self.annotations.insert(key.into(), value.into());
            self
        }
        fn approved(self) -> Self {
            self.annotate("approve.gatehouse.dev/manager", "bob")
                .annotate("approve.gatehouse.dev/data-owner", "carol")
        }
        /// Plans at `now` seconds after creation (created at 1000).
        fn at(&self, now: i64) -> Plan {
            let request = access_request();
            let policy = access_policy("payments-db");
            let accepted_request =
                accept(&request.spec, "payments", &[&policy], &namespaces()).expect("accepted");
            let narrowed = crate::lifecycle::narrowing::read(
                &self.annotations,
                &crate::access::asked(&accepted_request),
            );
            let accepted = if self.accepted {
                Ok(Accepted {
                    request: &accepted_request,
                    narrowed: &narrowed,
                    stages: self.stages.as_deref().unwrap_or(&policy.spec.approvals),
                    pending_timeout: policy.spec.pending_timeout.as_deref(),
                    findings: vec![],
                    high_risk: self.high_risk,
                    sod_denial: self.sod_denial.clone(),
                    bindings: vec![BindingRef {
                        kind: "RoleBinding".into(),
                        namespace: Some("payments".into()),
                        name: "b".into(),
                    }],
                })
            } else {
                Err(Refusal::new(reason::NO_MATCHING_POLICY, "no policy"))
            };
            let key = test_key();
            plan(&Observation {
                extension: self.extension.clone(),
                extended_by: None,
                superseded_by: None,
                requester: "alice",
                filed_by: None,
                sealer: Sealer {
                    key: &key,
                    kind: "AccessRequest",
                    uid: "uid-1",
                },
                annotations: &self.annotations,
                created: Some(Timestamp::from_second(1000).expect("valid")),
                generation: Some(1),
                start_at: None,
                current: self.status.as_ref(),
                approvals_unverified: self.unverified,
                unauthorized_decisions: &self.unauthorized,
                approvers: &crate::lifecycle::eligible::Approvers::nobody(),
                accepted,
                now: Timestamp::from_second(1000 + now).expect("valid"),
            })
        }
        fn then(mut self, plan: &Plan) -> Self {
            self.status = Some(plan.status.clone());
            self
        }
    }

    fn condition<'a>(plan: &'a Plan, type_: &str) -> (&'a str, &'a str) {
        let c = conditions::find(&plan.status.conditions, type_)
            .unwrap_or_else(|| panic!("no {type_} condition"));
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn pending_until_every_stage_approves_then_active_with_expiry() {
        let pending = Case::new()
            .annotate("approve.gatehouse.dev/manager", "bob")
            .at(10);
        assert_eq!(pending.status.phase, Some(AccessPhase::Pending));
        assert_eq!(pending.provision, Provision::Remove);
        assert_eq!(pending.status.waiting_for.as_deref(), Some("data-owner"));
        assert_eq!(
            condition(&pending, "ManagerApproved"),
            ("True", reason::APPROVED)
        );
        assert_eq!(
            condition(&pending, "DataOwnerApproved"),
            ("False", reason::WAITING)
        );

        let active = Case::new().approved().at(10);
        assert_eq!(active.status.phase, Some(AccessPhase::Active));
        assert_eq!(active.provision, Provision::Provide);
        let grant = active.status.grant.clone().expect("grant");
        assert_eq!(grant.activated_at.0.as_second(), 1010);
        assert_eq!(
            grant.expires_at.0.as_second(),
            1010 + HOUR,
            "defaultDuration 1h counts from activation"
        );
        assert_eq!(active.wake_at, Some(grant.expires_at.0));
        assert_eq!(condition(&active, READY), ("True", reason::PROVISIONED));
    }

    #[test]
    fn an_extension_of_an_active_grant_runs_on_from_its_expiry_within_the_chain_cap() {
        let mut case = Case::new().approved();
        case.extension = Some(Ok(Extension {
            chain: vec!["first".into()],
            continues_until: Some(Timestamp::from_second(1000 + 2 * HOUR).expect("valid")),
            chain_started_at: Some(Timestamp::from_second(1000 - HOUR).expect("valid")),
            max_total: None,
        }));
        let active = case.at(10);
        let grant = active.status.grant.clone().expect("grant");
        assert_eq!(grant.activated_at.0.as_second(), 1010, "at once: no gap");
        assert_eq!(grant.expires_at.0.as_second(), 1000 + 3 * HOUR);
        assert_eq!(active.status.chain, vec!["first".to_string()]);
        assert_eq!(
            active.status.chain_started_at.map(|t| t.0.as_second()),
            Some(1000 - HOUR)
        );

        let mut capped = Case::new().approved();
        capped.extension = Some(Ok(Extension {
            max_total: Some(std::time::Duration::from_secs(3 * HOUR as u64 - 1800)),
            ..case
                .extension
                .clone()
                .and_then(Result::ok)
                .expect("extension")
        }));
        let grant = capped.at(10).status.grant.expect("grant");
        assert_eq!(
            grant.expires_at.0.as_second(),
            1000 - HOUR + 3 * HOUR - 1800
        );

        let mut refused = Case::new().approved();
        refused.extension = Some(Err(Refusal::new(
            reason::INVALID_EXTENSION,
            "spec.extends: first was revoked",
        )));
        let failed = refused.at(10);
        assert_eq!(failed.status.phase, Some(AccessPhase::Failed));
        assert_eq!(failed.provision, Provision::Remove);
        assert_eq!(
            condition(&failed, READY),
            ("False", reason::INVALID_EXTENSION)
        );
    }

    #[test]
    fn an_approver_narrows_the_duration_and_the_status_shows_both() {
        let active = Case::new()
            .approved()
            .annotate("duration.gatehouse.dev/data-owner", "20m")
            .at(10);
        assert_eq!(active.status.phase, Some(AccessPhase::Active));
        let grant = active.status.grant.clone().expect("grant");
        assert_eq!(grant.expires_at.0.as_second(), 1010 + 20 * 60);
        let scope = active.status.scope.clone().expect("scope");
        assert_eq!(scope.requested.duration, "1h");
        assert_eq!(scope.approved.duration, "20m");
        assert_eq!(scope.narrowed_by[0].user, "carol");
    }

    #[test]
    fn a_narrowing_that_leaves_no_namespace_denies_and_an_unreadable_one_does_not_count() {
        let denied = Case::new()
            .approved()
            .annotate("namespaces.gatehouse.dev/manager", "billing")
            .at(10);
        assert_eq!(denied.status.phase, Some(AccessPhase::Denied));
        assert_eq!(denied.provision, Provision::Remove);
        assert_eq!(
            condition(&denied, READY),
            ("False", reason::NARROWED_TO_NOTHING)
        );

        let waiting = Case::new()
            .approved()
            .annotate("duration.gatehouse.dev/manager", "forever")
            .at(10);
        assert_eq!(waiting.status.phase, Some(AccessPhase::Pending));
        assert!(
            waiting
                .status
                .ignored_annotations
                .iter()
                .any(|why| why.contains("duration.gatehouse.dev/manager")),
            "{:?}",
            waiting.status.ignored_annotations
        );
    }

    #[test]
    fn out_of_order_approval_is_recorded_but_does_not_count() {
        let plan = Case::new()
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .at(10);
        assert_eq!(plan.status.phase, Some(AccessPhase::Pending));
        assert_eq!(
            condition(&plan, "DataOwnerApproved"),
            ("False", reason::WAITING_FOR_EARLIER_STAGE)
        );
        assert_eq!(plan.status.approvals.len(), 1);
    }

    #[test]
    fn high_risk_needs_security_too() {
        let mut case = Case::new().approved();
        case.high_risk = true;
        assert_eq!(case.at(10).status.phase, Some(AccessPhase::Pending));
        let case = case.annotate("approve.gatehouse.dev/security", "dave");
        assert_eq!(case.at(10).status.phase, Some(AccessPhase::Active));
    }

    #[test]
    fn a_denial_ends_the_request_for_good() {
        let case = Case::new()
            .annotate("approve.gatehouse.dev/manager", "bob")
            .annotate("deny.gatehouse.dev/data-owner", "carol")
            .annotate("reason.gatehouse.dev/data-owner", "no ticket");
        let denied = case.at(10);
        assert_eq!(denied.status.phase, Some(AccessPhase::Denied));
        assert_eq!(denied.provision, Provision::Remove);
        let ready = conditions::find(&denied.status.conditions, READY).expect("Ready");
        assert_eq!(ready.message, "denied by carol as data-owner: no ticket");
        let later = case.then(&denied).approved().at(20);
        assert_eq!(
            later.status.phase,
            Some(AccessPhase::Denied),
            "terminal phases never change"
        );
    }

    #[test]
    fn separation_of_duties_denies_before_any_approval() {
        let mut case = Case::new().approved();
        case.sod_denial = Some("alice holds payments-approver".into());
        let plan = case.at(10);
        assert_eq!(plan.status.phase, Some(AccessPhase::Denied));
        assert_eq!(
            condition(&plan, READY),
            ("False", reason::SEPARATION_OF_DUTIES)
        );
    }

    #[test]
    fn times_out_after_the_pending_timeout_with_a_reminder_at_half() {
        let case = Case::new();
        let early = case.at(10);
        assert_eq!(
            early.wake_at.map(|t| t.as_second()),
            Some(1000 + 36 * HOUR),
            "wakes for the reminder"
        );
        assert!(early.reminder.is_none());
        let half = case.at(36 * HOUR);
        assert!(
            half.reminder
                .as_deref()
                .is_some_and(|r| r.contains("manager, data-owner")),
            "{:?}",
            half.reminder
        );
        assert_eq!(
            half.wake_at.map(|t| t.as_second()),
            Some(1000 + 72 * HOUR),
            "then for the timeout"
        );
        let case = case.then(&half);
        assert!(
            case.at(36 * HOUR + 5).reminder.is_none(),
            "one reminder only"
        );
        let out = case.at(72 * HOUR);
        assert_eq!(out.status.phase, Some(AccessPhase::TimedOut));
    }

    #[test]
    fn expires_at_expiry_and_never_before() {
        let case = Case::new().approved();
        let active = case.at(10);
        let case = case.then(&active);
        let just_before = case.at(10 + HOUR - 1);
        assert_eq!(
            (just_before.status.phase, just_before.provision),
            (Some(AccessPhase::Active), Provision::Provide)
        );
        let at_expiry = case.at(10 + HOUR);
        assert_eq!(
            (at_expiry.status.phase, at_expiry.provision),
            (Some(AccessPhase::Expired), Provision::Remove)
        );
        assert_eq!(
            at_expiry.status.grant, active.status.grant,
            "the grant stays as the record"
        );
    }

    #[test]
    fn revoking_ends_active_access_at_once() {
        let case = Case::new().approved();
        let active = case.at(10);
        let revoked = case
            .then(&active)
            .annotate(REVOKE_ANNOTATION, "dave")
            .at(20);
        assert_eq!(
            (revoked.status.phase, revoked.provision),
            (Some(AccessPhase::Revoked), Provision::Remove)
        );
        assert_eq!(
            conditions::find(&revoked.status.conditions, READY).map(|c| c.message.as_str()),
            Some("access revoked by dave")
        );
    }

    #[test]
    fn a_withdrawn_policy_revokes_active_access_and_fails_pending_requests() {
        let case = Case::new().approved();
        let active = case.at(10);
        let mut case = case.then(&active);
        case.accepted = false;
        let plan = case.at(20);
        assert_eq!(
            (plan.status.phase, plan.provision),
            (Some(AccessPhase::Revoked), Provision::Remove)
        );
        let mut pending = Case::new();
        pending.accepted = false;
        assert_eq!(pending.at(10).status.phase, Some(AccessPhase::Failed));
    }

    #[test]
    fn a_converged_plan_is_identical_on_the_next_pass() {
        let case = Case::new().annotate("approve.gatehouse.dev/manager", "bob");
        let first = case.at(10);
        let second = case.then(&first).at(11);
        assert_eq!(first.status, second.status);
        let active = Case::new().approved();
        let first = active.at(10);
        assert_eq!(active.then(&first).at(500).status, first.status);
    }

    #[test]
    fn nothing_is_provisioned_while_approvals_cannot_be_trusted() {
        let mut case = Case::new().approved();
        case.unverified = Some("ValidatingAdmissionPolicy gatehouse-approvals is missing");
        let held = case.at(10);
        assert_eq!(
            (held.status.phase, held.provision),
            (Some(AccessPhase::Pending), Provision::Remove)
        );
        assert_eq!(
            condition(&held, APPROVAL_INTEGRITY),
            ("False", reason::APPROVAL_INTEGRITY_UNVERIFIED)
        );
        assert_eq!(held.status.untrusted_approvals.len(), 2);
        let mut case = case.then(&held);
        case.unverified = None;
        let restored = case.at(20);
        assert_eq!(
            condition(&restored, APPROVAL_INTEGRITY),
            ("True", reason::VERIFIED)
        );
        assert_eq!(
            (restored.status.phase, restored.provision),
            (Some(AccessPhase::Pending), Provision::Remove),
            "approvals written while nothing verified them never count"
        );
        let fresh = Case::new().approved().at(30);
        assert_eq!(
            (fresh.status.phase, fresh.provision),
            (Some(AccessPhase::Active), Provision::Provide)
        );
    }

    #[test]
    fn a_request_no_stage_applies_to_is_never_granted() {
        let mut case = Case::new().approved();
        case.stages = Some(vec![ApprovalStage {
            role: "security".into(),
            when: Some(crate::api::common::StageCondition::HighRisk),
            approver: None,
        }]);
        let plan = case.at(10);
        assert_eq!(
            (plan.status.phase, plan.provision),
            (Some(AccessPhase::Failed), Provision::Remove)
        );
        assert_eq!(
            condition(&plan, ACCEPTED),
            ("False", reason::POLICY_VIOLATION)
        );
    }

    #[test]
    fn approvals_first_seen_after_the_deadline_do_not_count() {
        let late = Case::new().approved().at(72 * HOUR + 1);
        assert_eq!(
            (late.status.phase, late.provision),
            (Some(AccessPhase::TimedOut), Provision::Remove)
        );
    }

    #[test]
    fn an_approver_without_the_right_where_access_goes_does_not_count() {
        let mut case = Case::new().approved();
        case.unauthorized = vec![(
            "approve.gatehouse.dev/data-owner".into(),
            "carol may not approve as data-owner in namespace payments".into(),
        )];
        let plan = case.at(10);
        assert_eq!(
            (plan.status.phase, plan.provision),
            (Some(AccessPhase::Pending), Provision::Remove)
        );
        assert_eq!(plan.status.waiting_for.as_deref(), Some("data-owner"));
        assert!(
            plan.status
                .ignored_annotations
                .iter()
                .any(|m| m.contains("carol may not approve"))
        );
    }

    #[test]
    fn approvals_added_while_unverified_never_count() {
        let mut case = Case::new().annotate("approve.gatehouse.dev/manager", "bob");
        let before = case.at(5);
        case = case
            .then(&before)
            .annotate("approve.gatehouse.dev/data-owner", "carol");
        case.unverified = Some("ValidatingAdmissionPolicy gatehouse-approvals is missing");
        let held = case.at(10);
        assert_eq!(
            held.status.untrusted_approvals,
            vec!["approve.gatehouse.dev/data-owner=carol".to_string()]
        );
        let mut case = case.then(&held);
        case.unverified = None;
        let restored = case.at(20);
        assert_eq!(
            restored.status.phase,
            Some(AccessPhase::Pending),
            "the forged approval never counts"
        );
        assert_eq!(restored.status.waiting_for.as_deref(), Some("data-owner"));
        assert!(
            restored
                .status
                .ignored_annotations
                .iter()
                .any(|m| m.contains("nothing verified its author"))
        );
    }

    #[test]
    fn a_long_list_of_findings_is_capped_with_a_count() {
        let many: Vec<Finding> = (0..57)
            .map(|i| Finding {
                type_: FindingType::ExistingAccess,
                message: format!("binding {i}"),
            })
            .collect();
        assert_eq!(
            summary(&many).as_deref(),
            Some("ExistingAccess (57 findings, the first 20 listed)")
        );
    }

    #[test]
    fn findings_are_summarised_for_kubectl_get() {
        assert_eq!(
            summary(&[
                Finding {
                    type_: FindingType::ExistingAccess,
                    message: "a".into()
                },
                Finding {
                    type_: FindingType::HighRisk,
                    message: "b".into()
                },
            ])
            .as_deref(),
            Some("ExistingAccess,HighRisk")
        );
    }
    fn tamper_reason(plan: &Plan) -> (&str, &str) {
        condition(plan, STATUS_TAMPERED)
    }

    #[test]
    fn a_forged_active_status_grants_nothing_and_ends_the_request() {
        let forged = AccessRequestStatus {
            phase: Some(AccessPhase::Active),
            ..Default::default()
        };
        let case = Case {
            status: Some(forged),
            ..Case::new()
        };
        let plan = case.at(10);
        assert_eq!(plan.provision, Provision::Remove);
        assert_eq!(plan.status.phase, Some(AccessPhase::Revoked));
        assert_eq!(tamper_reason(&plan), ("True", reason::STATUS_TAMPERED));

        // With a grant that names a far expiry, whether or not every stage approved.
        for case in [Case::new(), Case::new().approved()] {
            let mut status = AccessRequestStatus {
                phase: Some(AccessPhase::Active),
                ..Default::default()
            };
            status.grant = Some(Grant {
                bindings: vec![],
                activated_at: Time(Timestamp::from_second(1000).expect("valid")),
                expires_at: Time(Timestamp::from_second(4_070_908_800).expect("valid")),
                seal: Some("v1:00".into()),
            });
            let plan = Case {
                status: Some(status),
                ..case
            }
            .at(10);
            assert_eq!(plan.provision, Provision::Remove);
            assert_eq!(plan.status.phase, Some(AccessPhase::Revoked));
            assert_eq!(tamper_reason(&plan), ("True", reason::STATUS_TAMPERED));
        }
    }

    #[test]
    fn a_stretched_or_restarted_window_is_tampering() {
        let active = Case::new().approved().at(10);
        let grant = active.status.grant.clone().expect("grant");
        for (activated, expires) in [
            (
                grant.activated_at.0,
                Timestamp::from_second(4_070_908_800).expect("valid"),
            ),
            (
                Timestamp::from_second(1000 + 500).expect("valid"),
                Timestamp::from_second(1000 + 500 + 4 * HOUR).expect("valid"),
            ),
        ] {
            let mut status = active.status.clone();
            let g = status.grant.as_mut().expect("grant");
            g.activated_at = Time(activated);
            g.expires_at = Time(expires);
            let plan = Case {
                status: Some(status),
                ..Case::new().approved()
            }
            .at(600);
            assert_eq!(plan.provision, Provision::Remove, "{activated} - {expires}");
            assert_eq!(tamper_reason(&plan), ("True", reason::STATUS_TAMPERED));
        }
        // The genuine window keeps granting.
        let plan = Case::new().approved().then(&active).at(600);
        assert_eq!(plan.provision, Provision::Provide);
        assert_eq!(plan.status, {
            let mut same = active.status.clone();
            same.observed_generation = plan.status.observed_generation;
            same
        });
    }

    #[test]
    fn a_provisioning_retry_keeps_the_recorded_window() {
        let active = Case::new().approved().at(10);
        let mut failed = active.status.clone();
        failed.phase = Some(AccessPhase::Approved);
        let retried = Case {
            status: Some(failed),
            ..Case::new().approved()
        }
        .at(900);
        assert_eq!(retried.status.phase, Some(AccessPhase::Active));
        assert_eq!(
            retried.status.grant, active.status.grant,
            "the expiry never moves"
        );
        assert_eq!(retried.provision, Provision::Provide);
    }

    #[test]
    fn an_active_grant_the_current_policy_no_longer_backs_is_removed() {
        let active = Case::new().approved().at(10);
        let stricter = vec![
            ApprovalStage {
                role: "manager".into(),
                when: None,
                approver: None,
            },
            ApprovalStage {
                role: "data-owner".into(),
                when: None,
                approver: None,
            },
            ApprovalStage {
                role: "security".into(),
                when: None,
                approver: None,
            },
        ];
        let plan = Case {
            stages: Some(stricter),
            ..Case::new().approved().then(&active)
        }
        .at(60);
        assert_eq!(plan.provision, Provision::Remove);
        assert_eq!(plan.status.phase, Some(AccessPhase::Revoked));
        assert_eq!(
            condition(&plan, GRANTED),
            ("False", reason::POLICY_WITHDRAWN)
        );
        let (_, _) = condition(&plan, READY);
        let message = &conditions::find(&plan.status.conditions, GRANTED)
            .expect("Granted")
            .message;
        assert!(message.contains("security"), "{message}");
    }
}
