//! The AccessRequest lifecycle as one pure function: from what was observed to the status the
//! request should have, whether its access should exist, and when to look again.
//!
//! Pending → (all stages approved) → Active → Expired | Revoked; or Pending → Denied | TimedOut;
//! or Failed while the request does not fit a policy. Terminal phases never change again and
//! always mean "no access".

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::AcceptedRequest;
use crate::api::common::ApprovalStage;
use crate::api::conditions::{
    self, ACCEPTED, APPROVAL_INTEGRITY, GRANTED, READY, STATUS_TAMPERED, reason,
};
use crate::api::{AccessPhase, AccessRequestStatus, BindingRef, Finding, Grant, REVOKE_ANNOTATION};
use crate::lifecycle::Refusal;
use crate::lifecycle::activation::{self, Sealer};
use crate::lifecycle::duration::{self, after};
use crate::lifecycle::protocol::{self as approvals, ApprovalState};

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
    pub current: Option<&'a AccessRequestStatus>,
    /// Decision annotations whose author lacks the approver right in a namespace the grant
    /// reaches (admission checks the request's own namespace only), with why: they do not count.
    pub unauthorized_decisions: &'a [(String, String)],
    /// Why approvals cannot be trusted right now (the admission policies are missing or
    /// changed); `None` when they are verified.
    pub approvals_unverified: Option<&'a str>,
    /// The policy check, with the governing policy's stages and timeout when accepted.
    pub accepted: Result<Accepted<'a>, Refusal>,
    pub now: Timestamp,
}

/// An accepted request with what its policy and the automated checks add.
pub struct Accepted<'a> {
    pub request: &'a AcceptedRequest,
    pub stages: &'a [ApprovalStage],
    pub pending_timeout: Option<&'a str>,
    pub findings: Vec<Finding>,
    pub high_risk: bool,
    /// Set when a separation-of-duties rule denies the grant.
    pub sod_denial: Option<String>,
    /// The bindings that carry the grant, for the status.
    pub bindings: Vec<BindingRef>,
}

/// Whether the request's bindings should exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The bindings must exist exactly as approved.
    Provide,
    /// No binding of this request may exist.
    Remove,
}

/// What the controller should do.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: AccessRequestStatus,
    pub access: Access,
    /// When to reconcile again at the latest (expiry, timeout, reminder).
    pub wake_at: Option<Timestamp>,
    /// A reminder to publish now: the roles still to approve.
    pub reminder: Option<String>,
}

/// Decides the next state of a request.
pub fn plan(observed: &Observation) -> Plan {
    let now_time = Time(observed.now);
    let mut status = observed.current.cloned().unwrap_or_default();
    status.observed_generation = observed.generation;
    let phase = status.phase;
    let mut plan = Plan {
        status,
        access: Access::Remove,
        wake_at: None,
        reminder: None,
    };

    if phase.is_some_and(AccessPhase::is_terminal) {
        return plan;
    }
    if let Err(problem) = recorded_window(&plan.status, observed) {
        tampered(&mut plan, &problem, observed);
        return plan;
    }
    let revoked_by = observed
        .annotations
        .get(REVOKE_ANNOTATION)
        .map(|u| u.trim())
        .filter(|u| !u.is_empty());
    let accepted = match &observed.accepted {
        Ok(accepted) => accepted,
        Err(refusal) => {
            if phase == Some(AccessPhase::Active) {
                let message = format!(
                    "access removed: the policy no longer allows this grant: {}",
                    refusal.message
                );
                end(
                    &mut plan,
                    AccessPhase::Revoked,
                    reason::POLICY_WITHDRAWN,
                    &message,
                    observed,
                );
            } else {
                plan.status.phase = Some(AccessPhase::Failed);
                plan.status.policy = None;
                set(
                    &mut plan,
                    &[ACCEPTED, READY],
                    false,
                    refusal.reason,
                    &refusal.message,
                    observed,
                );
            }
            return plan;
        }
    };
    plan.status.policy = Some(accepted.request.policy.clone());
    plan.status.subjects_summary = Some(super::subjects_summary(accepted.request));
    plan.status.grant_scope = Some(super::grant_scope(accepted.request));
    let accepted_message = format!(
        "AccessPolicy {} governs this request",
        accepted.request.policy
    );
    set(
        &mut plan,
        &[ACCEPTED],
        true,
        reason::VALID,
        &accepted_message,
        observed,
    );

    if let Some(user) = revoked_by {
        let message = if phase == Some(AccessPhase::Active) {
            format!("access revoked by {user}")
        } else {
            format!("withdrawn by {user} before access was granted")
        };
        end(
            &mut plan,
            AccessPhase::Revoked,
            reason::REVOKED,
            &message,
            observed,
        );
        return plan;
    }
    let active_now = phase == Some(AccessPhase::Active);
    if !active_now {
        plan.status.findings = accepted.findings.clone();
        plan.status.findings_summary = summary(&accepted.findings);
    }
    let required = approvals::required_roles(accepted.stages, accepted.high_risk);
    let previous = plan.status.approvals.clone();
    let state = approvals::counted(
        required,
        &approvals::Decisions {
            annotations: observed.annotations,
            unauthorized: observed.unauthorized_decisions,
            unverified: observed.approvals_unverified.is_some(),
        },
        &approvals::Parties {
            requester: observed.requester,
            filed_by: observed.filed_by,
            subjects: &accepted.request.subjects,
        },
        &mut plan.status.untrusted_approvals,
        &previous,
        &now_time,
    );
    // Access that exists is re-derived from the admitted annotations and the current policy on
    // every reconcile: the recorded phase alone never keeps (or creates) a binding.
    if active_now {
        return active(plan, &state, accepted, observed);
    }
    record_approvals(&mut plan, &state, observed);
    if state.required.is_empty() {
        let message = format!(
            "no approval stage of AccessPolicy {} applies to this request (every stage is `when: HighRisk` and it is not high-risk); nothing is granted without an approval, so the policy needs a stage that always applies",
            accepted.request.policy
        );
        plan.status.phase = Some(AccessPhase::Failed);
        set(
            &mut plan,
            &[ACCEPTED, READY],
            false,
            reason::POLICY_VIOLATION,
            &message,
            observed,
        );
        plan.access = Access::Remove;
        return plan;
    }

    if let Some(message) = &accepted.sod_denial {
        end(
            &mut plan,
            AccessPhase::Denied,
            reason::SEPARATION_OF_DUTIES,
            message,
            observed,
        );
        return plan;
    }
    if let Some(denial) = &state.denial {
        let why = denial
            .reason
            .as_deref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let message = format!("denied by {} as {}{why}", denial.user, denial.role);
        end(
            &mut plan,
            AccessPhase::Denied,
            reason::DENIED,
            &message,
            observed,
        );
        return plan;
    }
    let timeout = accepted
        .pending_timeout
        .and_then(|t| duration::parse(t).ok())
        .unwrap_or(DEFAULT_PENDING_TIMEOUT);
    let created = observed.created.unwrap_or(observed.now);
    let deadline = after(created, timeout);
    match observed.approvals_unverified {
        None => set(
            &mut plan,
            &[APPROVAL_INTEGRITY],
            true,
            reason::VERIFIED,
            "the approval admission policies are installed as shipped",
            observed,
        ),
        Some(problem) => {
            let message = format!(
                "approvals cannot be trusted, so nothing will be provisioned: {problem}; a cluster admin must run `kubectl apply -k deploy/admission/`"
            );
            set(
                &mut plan,
                &[APPROVAL_INTEGRITY],
                false,
                reason::APPROVAL_INTEGRITY_UNVERIFIED,
                &message,
                observed,
            );
        }
    }
    // The deadline comes first: approvals that arrive (or are first seen) after it do not count.
    // A request whose window opened already (its provisioning is being retried) ends by expiry.
    if observed.now >= deadline && plan.status.grant.is_none() {
        let message = format!(
            "not fully approved within {}; still waiting for {}",
            duration::format(timeout),
            state.waiting_for().join(", ")
        );
        end(
            &mut plan,
            AccessPhase::TimedOut,
            reason::TIMED_OUT,
            &message,
            observed,
        );
        return plan;
    }
    if state.complete() && observed.approvals_unverified.is_none() {
        return activate(plan, accepted, observed);
    }

    plan.status.phase = Some(AccessPhase::Pending);
    if state.complete() {
        let message = "every stage approved, but approvals cannot be trusted until the admission policies are restored";
        set(
            &mut plan,
            &[GRANTED, READY],
            false,
            reason::APPROVAL_INTEGRITY_UNVERIFIED,
            message,
            observed,
        );
        plan.wake_at = Some(deadline);
        return plan;
    }
    let waiting = state.waiting_for().join(", ");
    set(
        &mut plan,
        &[GRANTED],
        false,
        reason::NOT_GRANTED,
        &format!("waiting for approval by {waiting}"),
        observed,
    );
    set(
        &mut plan,
        &[READY],
        false,
        reason::WAITING,
        &format!("waiting for approval by {waiting}"),
        observed,
    );
    let remind_at = after(created, timeout / 2);
    if plan.status.reminded_at.is_none() && observed.now >= remind_at {
        plan.status.reminded_at = Some(now_time);
        plan.reminder = Some(format!(
            "still waiting for approval by {waiting}; the request times out at {}",
            Time(deadline).0
        ));
    }
    plan.wake_at = Some(if plan.status.reminded_at.is_none() {
        remind_at
    } else {
        deadline
    });
    plan
}

/// Activates: opens the sealed window, or keeps the one opened before (a provisioning retry), so
/// that the expiry never moves once recorded. The controller records it before any binding exists.
fn activate(mut plan: Plan, accepted: &Accepted, observed: &Observation) -> Plan {
    let window = match plan.status.grant.take() {
        Some(grant) => activation::Window {
            activated_at: grant.activated_at,
            expires_at: grant.expires_at,
            seal: grant.seal.unwrap_or_default(),
        },
        None => observed
            .sealer
            .open(observed.now, accepted.request.duration),
    };
    let expires_at = window.expires_at.0;
    plan.status.phase = Some(AccessPhase::Active);
    plan.status.waiting_for = None;
    plan.status.grant = Some(Grant {
        bindings: accepted.bindings.clone(),
        activated_at: window.activated_at,
        expires_at: window.expires_at,
        seal: Some(window.seal),
    });
    if observed.now >= expires_at {
        expire(&mut plan, expires_at, observed);
        return plan;
    }
    let message = format!("granted until {expires_at}");
    set(
        &mut plan,
        &[GRANTED, READY],
        true,
        reason::PROVISIONED,
        &message,
        observed,
    );
    plan.access = Access::Provide;
    plan.wake_at = Some(expires_at);
    plan
}

/// An active grant: expired, no longer backed by every approval the current policy requires, or
/// still provided.
fn active(
    mut plan: Plan,
    state: &ApprovalState,
    accepted: &Accepted,
    observed: &Observation,
) -> Plan {
    let expires_at = plan.status.grant.as_ref().map(|g| g.expires_at.0);
    match expires_at {
        Some(expires_at) if observed.now < expires_at && !state.complete() => {
            let message = format!(
                "access removed: the approvals that count no longer cover what AccessPolicy {} requires (missing: {})",
                accepted.request.policy,
                state.waiting_for().join(", ")
            );
            end(
                &mut plan,
                AccessPhase::Revoked,
                reason::POLICY_WITHDRAWN,
                &message,
                observed,
            );
        }
        Some(expires_at) if observed.now < expires_at => {
            plan.access = Access::Provide;
            plan.wake_at = Some(expires_at);
        }
        Some(expires_at) => expire(&mut plan, expires_at, observed),
        // recorded_window refused an Active phase without a grant before this point.
        None => {}
    }
    plan
}

/// Ends a grant whose window is over.
fn expire(plan: &mut Plan, expires_at: Timestamp, observed: &Observation) {
    let message = format!("access expired at {expires_at}");
    end(
        plan,
        AccessPhase::Expired,
        reason::EXPIRED,
        &message,
        observed,
    );
}

/// The recorded activation window, checked against its seal: `Err` when the status claims a grant
/// (or an active phase) the operator never opened.
fn recorded_window(status: &AccessRequestStatus, observed: &Observation) -> Result<(), String> {
    observed.sealer.check_status(
        status
            .grant
            .as_ref()
            .map(|g| (&g.activated_at, &g.expires_at, g.seal.as_deref())),
        (status.phase == Some(AccessPhase::Active)).then_some(AccessPhase::Active.name()),
        observed.now,
    )
}

/// Ends a request whose status the operator did not write: its access is removed at once, and it
/// never grants again (a new request goes through approval again).
fn tampered(plan: &mut Plan, problem: &str, observed: &Observation) {
    let message = format!(
        "access removed and the request ended: {problem}. Only the operator writes status (admission policy gatehouse-status); file a new request"
    );
    end(
        plan,
        AccessPhase::Revoked,
        reason::STATUS_TAMPERED,
        &message,
        observed,
    );
    set(
        plan,
        &[STATUS_TAMPERED],
        true,
        reason::STATUS_TAMPERED,
        &message,
        observed,
    );
}

fn record_approvals(plan: &mut Plan, state: &ApprovalState, observed: &Observation) {
    plan.status.required_approvals = state.required.clone();
    plan.status.approvals = state.records.clone();
    plan.status.ignored_annotations = state.ignored.clone();
    let waiting = state.waiting_for();
    plan.status.waiting_for = (!waiting.is_empty()).then(|| waiting.join(","));
    for update in approvals::stage_conditions(state) {
        conditions::set_condition(
            &mut plan.status.conditions,
            update,
            observed.generation,
            Time(observed.now),
        );
    }
}

/// Ends the request in a terminal phase: no access, and conditions that say why.
fn end(
    plan: &mut Plan,
    phase: AccessPhase,
    why: &'static str,
    message: &str,
    observed: &Observation,
) {
    plan.status.phase = Some(phase);
    plan.status.waiting_for = None;
    plan.access = Access::Remove;
    plan.wake_at = None;
    set(plan, &[GRANTED, READY], false, why, message, observed);
}

fn set(
    plan: &mut Plan,
    types: &[&str],
    ok: bool,
    why: &'static str,
    message: &str,
    observed: &Observation,
) {
    conditions::set_conditions(
        &mut plan.status.conditions,
        types,
        ok,
        why,
        message,
        observed.generation,
        Time(observed.now),
    );
}

fn summary(findings: &[Finding]) -> Option<String> {
    let mut types: Vec<String> = findings.iter().map(|f| f.type_.to_string()).collect();
    types.dedup();
    (!types.is_empty()).then(|| types.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::accept;
    use crate::api::FindingType;
    use crate::api::fixtures::{access_policy, access_request, namespaces};

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
            let accepted = if self.accepted {
                Ok(Accepted {
                    request: &accepted_request,
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
                current: self.status.as_ref(),
                approvals_unverified: self.unverified,
                unauthorized_decisions: &self.unauthorized,
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
        assert_eq!(pending.access, Access::Remove);
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
        assert_eq!(active.access, Access::Provide);
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
        assert_eq!(denied.access, Access::Remove);
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
            (just_before.status.phase, just_before.access),
            (Some(AccessPhase::Active), Access::Provide)
        );
        let at_expiry = case.at(10 + HOUR);
        assert_eq!(
            (at_expiry.status.phase, at_expiry.access),
            (Some(AccessPhase::Expired), Access::Remove)
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
            (revoked.status.phase, revoked.access),
            (Some(AccessPhase::Revoked), Access::Remove)
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
            (plan.status.phase, plan.access),
            (Some(AccessPhase::Revoked), Access::Remove)
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
            (held.status.phase, held.access),
            (Some(AccessPhase::Pending), Access::Remove)
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
            (restored.status.phase, restored.access),
            (Some(AccessPhase::Pending), Access::Remove),
            "approvals written while nothing verified them never count"
        );
        let fresh = Case::new().approved().at(30);
        assert_eq!(
            (fresh.status.phase, fresh.access),
            (Some(AccessPhase::Active), Access::Provide)
        );
    }

    #[test]
    fn a_request_no_stage_applies_to_is_never_granted() {
        let mut case = Case::new().approved();
        case.stages = Some(vec![ApprovalStage {
            role: "security".into(),
            when: Some(crate::api::common::StageCondition::HighRisk),
        }]);
        let plan = case.at(10);
        assert_eq!(
            (plan.status.phase, plan.access),
            (Some(AccessPhase::Failed), Access::Remove)
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
            (late.status.phase, late.access),
            (Some(AccessPhase::TimedOut), Access::Remove)
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
            (plan.status.phase, plan.access),
            (Some(AccessPhase::Pending), Access::Remove)
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
        assert_eq!(plan.access, Access::Remove);
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
            assert_eq!(plan.access, Access::Remove);
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
            assert_eq!(plan.access, Access::Remove, "{activated} - {expires}");
            assert_eq!(tamper_reason(&plan), ("True", reason::STATUS_TAMPERED));
        }
        // The genuine window keeps granting.
        let plan = Case::new().approved().then(&active).at(600);
        assert_eq!(plan.access, Access::Provide);
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
        assert_eq!(retried.access, Access::Provide);
    }

    #[test]
    fn an_active_grant_the_current_policy_no_longer_backs_is_removed() {
        let active = Case::new().approved().at(10);
        let stricter = vec![
            ApprovalStage {
                role: "manager".into(),
                when: None,
            },
            ApprovalStage {
                role: "data-owner".into(),
                when: None,
            },
            ApprovalStage {
                role: "security".into(),
                when: None,
            },
        ];
        let plan = Case {
            stages: Some(stricter),
            ..Case::new().approved().then(&active)
        }
        .at(60);
        assert_eq!(plan.access, Access::Remove);
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
