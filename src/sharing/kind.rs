//! The DataSharingAgreement lifecycle as one pure function, the counterpart of
//! [`crate::access::kind`] for access: from what was observed to the status the agreement should
//! have, whether its share should exist, and when to look again.
//!
//! Pending | AwaitingAgreement → (every review approved, agreement filed) → Active ⇄ Suspended →
//! Expired | Revoked; or Denied | TimedOut before; or Failed while the agreement does not fit a
//! policy or its sources. Terminal phases never change again and always mean "nothing shared".

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::combination::AgreementGate;
use crate::api::common::{Subject, SubjectKind};
use crate::api::conditions::{
    self, ACCEPTED, APPROVAL_INTEGRITY, ConditionUpdate, READY, SHARED, STATUS_TAMPERED, reason,
};
use crate::api::{
    ClassificationResult, DataSharingAgreementStatus, REVOKE_ANNOTATION, ShareRecord, SharingPhase,
    SyncRecord,
};
use crate::lifecycle::Refusal;
use crate::lifecycle::activation::{Sealer, Window};
use crate::lifecycle::duration::{self, after, second_floor};
use crate::lifecycle::protocol::{self as approvals, ApprovalState};

/// Default `pendingTimeout` of a SharingPolicy that names none: a week, as reviews by privacy and
/// legal take longer than an access approval.
pub const DEFAULT_SHARING_PENDING_TIMEOUT: Duration = Duration::from_secs(168 * 3600);

/// How many syncs the sharing record keeps; older ones remain in the Events and audit log.
pub const SYNC_HISTORY: usize = 10;

/// What the policy, the sources and the reviews say, computed by the controller from the
/// governing SharingPolicy ([`super::accept`]), the sources
/// ([`super::classify::classify`]) and both together
/// ([`super::reviews::required_reviews`], [`super::combination::check_combination`]).
pub struct Checked {
    pub policy: String,
    pub retention: Duration,
    pub pending_timeout: Option<String>,
    pub required: Vec<String>,
    pub gate: AgreementGate,
}

/// Everything the decision needs, gathered by the controller.
pub struct Observation<'a> {
    pub requester: &'a str,
    /// Who filed the agreement on the requester's behalf (admitted `gatehouse.dev/filed-by`).
    pub filed_by: Option<&'a str>,
    /// Seals and checks the activation window of this agreement.
    pub sealer: Sealer<'a>,
    /// The recipient ServiceAccount: it receives the data, so it may not review the share.
    pub recipient: Option<Subject>,
    pub annotations: &'a BTreeMap<String, String>,
    /// Decision annotations whose author lacks the right where the policy requires it (roles in
    /// `clusterWideApprovers` count only from cluster-wide holders), with why: they do not count.
    pub unauthorized_decisions: &'a [(String, String)],
    pub agreement_reference: Option<&'a str>,
    pub created: Option<Timestamp>,
    pub generation: Option<i64>,
    pub current: Option<&'a DataSharingAgreementStatus>,
    /// Why approvals cannot be trusted right now; `None` when the admission policies are verified.
    pub approvals_unverified: Option<&'a str>,
    /// The governing policy's verdict on the spec alone (recipient, method, retention).
    pub accepted: Result<(), Refusal>,
    /// What the sources are now, or why they cannot be shared as listed.
    pub classification: Result<ClassificationResult, Refusal>,
    /// Reviews and the agreement gate, when both the policy and the sources passed.
    pub checked: Result<Checked, Refusal>,
    pub now: Timestamp,
}

/// Whether the share's objects should exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Share {
    /// The shared objects must exist exactly as approved, in sync with the sources.
    Execute,
    /// Nothing of this agreement may exist.
    Remove,
}

/// What the controller should do.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub status: DataSharingAgreementStatus,
    pub share: Share,
    /// When to reconcile again at the latest (retention end, pending timeout).
    pub wake_at: Option<Timestamp>,
}

/// Decides the next state of an agreement.
pub fn plan(observed: &Observation) -> Plan {
    let mut status = observed.current.cloned().unwrap_or_default();
    status.observed_generation = observed.generation;
    let phase = status.phase;
    let mut plan = Plan {
        status,
        share: Share::Remove,
        wake_at: None,
    };
    if phase.is_some_and(SharingPhase::is_terminal) {
        return plan;
    }
    if let Err(problem) = recorded_window(&plan.status, observed) {
        tampered(&mut plan, &problem, observed);
        return plan;
    }
    let executed = matches!(phase, Some(SharingPhase::Active | SharingPhase::Suspended));
    let revoked_by = observed
        .annotations
        .get(REVOKE_ANNOTATION)
        .map(|u| u.trim())
        .filter(|u| !u.is_empty());
    if let Some(user) = revoked_by {
        let message = if executed {
            format!("share revoked by {user}; everything shared was removed")
        } else {
            format!("withdrawn by {user} before anything was shared")
        };
        end(
            &mut plan,
            SharingPhase::Revoked,
            reason::REVOKED,
            &message,
            observed,
        );
        return plan;
    }
    if executed {
        return executing(plan, observed);
    }

    if let Ok(classification) = &observed.classification {
        plan.status.classification = Some(classification.clone());
    }
    let checked = match &observed.checked {
        Ok(checked) => checked,
        Err(refusal) => {
            plan.status.phase = Some(SharingPhase::Failed);
            plan.status.waiting_for = None;
            set(
                &mut plan,
                &[ACCEPTED, READY],
                false,
                refusal.reason,
                &refusal.message,
                observed,
            );
            return plan;
        }
    };
    plan.status.policy = Some(checked.policy.clone());
    let level = plan
        .status
        .classification
        .as_ref()
        .map(|c| c.level.to_string())
        .unwrap_or_default();
    let accepted = format!(
        "SharingPolicy {} governs this agreement; the data is {level}; reviews required: {}",
        checked.policy,
        if checked.required.is_empty() {
            "none".to_string()
        } else {
            checked.required.join(", ")
        }
    );
    set(
        &mut plan,
        &[ACCEPTED],
        true,
        reason::VALID,
        &accepted,
        observed,
    );

    let state = review_state(&mut plan, checked, observed);
    plan.status.required_approvals = state.required.clone();
    plan.status.approvals = state.records.clone();
    plan.status.ignored_annotations = state.ignored.clone();
    let waiting = state.waiting_for();
    plan.status.waiting_for = (!waiting.is_empty()).then(|| waiting.join(","));
    for update in approvals::stage_conditions(&state) {
        apply(&mut plan, update, observed);
    }

    if state.required.is_empty() {
        let message = format!(
            "SharingPolicy {} requires no review for this share; nothing is shared unreviewed, so the policy needs `reviews.always` (e.g. [data-owner])",
            checked.policy
        );
        plan.status.phase = Some(SharingPhase::Failed);
        set(
            &mut plan,
            &[ACCEPTED, READY],
            false,
            reason::POLICY_VIOLATION,
            &message,
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
            SharingPhase::Denied,
            reason::DENIED,
            &message,
            observed,
        );
        return plan;
    }
    let timeout = checked
        .pending_timeout
        .as_deref()
        .and_then(|t| duration::parse(t).ok())
        .unwrap_or(DEFAULT_SHARING_PENDING_TIMEOUT);
    let deadline = after(observed.created.unwrap_or(observed.now), timeout);
    // An agreement fully reviewed in time whose execution failed (`Approved`) is retried, not
    // timed out.
    if observed.now >= deadline
        && phase != Some(SharingPhase::Approved)
        && plan.status.share.is_none()
    {
        let mut missing: Vec<&str> = state.waiting_for();
        if checked.gate.blocks_execution() {
            missing.push("a signed agreement (spec.agreement.reference)");
        }
        let message = format!(
            "not fully reviewed within {}; still waiting for {}",
            duration::format(timeout),
            missing.join(", ")
        );
        end(
            &mut plan,
            SharingPhase::TimedOut,
            reason::TIMED_OUT,
            &message,
            observed,
        );
        return plan;
    }
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
                "approvals cannot be trusted, so nothing will be shared: {problem}; a cluster admin must run `kubectl apply -k deploy/admission/`"
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
    plan.wake_at = Some(deadline);

    let waiting_message = format!("waiting for review by {}", waiting.join(", "));
    if let AgreementGate::AwaitingAgreement { message } = &checked.gate {
        plan.status.phase = Some(SharingPhase::AwaitingAgreement);
        let message = if state.complete() {
            format!("every review approved; {message}")
        } else {
            format!("{message}; meanwhile {waiting_message}")
        };
        set(
            &mut plan,
            &[SHARED, READY],
            false,
            reason::AWAITING_AGREEMENT,
            &message,
            observed,
        );
        return plan;
    }
    if !state.complete() {
        plan.status.phase = Some(SharingPhase::Pending);
        set(
            &mut plan,
            &[SHARED, READY],
            false,
            reason::WAITING,
            &waiting_message,
            observed,
        );
        return plan;
    }
    if observed.approvals_unverified.is_some() {
        plan.status.phase = Some(SharingPhase::Pending);
        let message = "every review approved, but approvals cannot be trusted until the admission policies are restored";
        set(
            &mut plan,
            &[SHARED, READY],
            false,
            reason::APPROVAL_INTEGRITY_UNVERIFIED,
            message,
            observed,
        );
        return plan;
    }
    activate(plan, checked, observed)
}

/// The reviews of an agreement as the admitted annotations say now; approvals first seen while the
/// admission policies were not enforced are marked and never count.
fn review_state(plan: &mut Plan, checked: &Checked, observed: &Observation) -> ApprovalState {
    let recipients: Vec<Subject> = observed.recipient.iter().cloned().collect();
    let previous = plan.status.approvals.clone();
    approvals::counted(
        checked.required.clone(),
        &approvals::Decisions {
            annotations: observed.annotations,
            unauthorized: observed.unauthorized_decisions,
            unverified: observed.approvals_unverified.is_some(),
        },
        &approvals::Parties {
            requester: observed.requester,
            filed_by: observed.filed_by,
            subjects: &recipients,
        },
        &mut plan.status.untrusted_approvals,
        &previous,
        &Time(observed.now),
    )
}

/// Activates: opens the sealed window, or keeps the one opened before (an execution retry), so that
/// the retention end never moves once recorded. The controller records it before anything is shared.
fn activate(mut plan: Plan, checked: &Checked, observed: &Observation) -> Plan {
    let previous = plan.status.share.take();
    let window = match &previous {
        Some(share) => Window {
            activated_at: share.activated_at.clone(),
            expires_at: share.expires_at.clone(),
            seal: share.seal.clone().unwrap_or_default(),
        },
        None => observed.sealer.open(observed.now, checked.retention),
    };
    let expires_at = window.expires_at.0;
    plan.status.phase = Some(SharingPhase::Active);
    plan.status.waiting_for = None;
    let (objects, syncs) = previous.map(|p| (p.objects, p.syncs)).unwrap_or_default();
    plan.status.share = Some(ShareRecord {
        objects,
        activated_at: window.activated_at,
        expires_at: window.expires_at,
        seal: Some(window.seal),
        agreement: observed.agreement_reference.map(str::to_string),
        syncs,
        removed_at: None,
    });
    if observed.now >= expires_at {
        return executing(plan, observed);
    }
    let message = format!("shared until {expires_at}");
    set(
        &mut plan,
        &[SHARED, READY],
        true,
        reason::PROVISIONED,
        &message,
        observed,
    );
    plan.share = Share::Execute;
    plan.wake_at = Some(expires_at);
    plan
}

/// An executed share: expired, withdrawn by its policy, suspended because its sources no longer
/// hold what was approved, or active.
fn executing(mut plan: Plan, observed: &Observation) -> Plan {
    let expires_at = plan.status.share.as_ref().map(|s| s.expires_at.0);
    let Some(expires_at) = expires_at.filter(|at| observed.now < *at) else {
        let message = format!(
            "retention ended at {}; everything shared was removed",
            expires_at.map(|t| t.to_string()).unwrap_or_default()
        );
        end(
            &mut plan,
            SharingPhase::Expired,
            reason::EXPIRED,
            &message,
            observed,
        );
        return plan;
    };
    if let Err(refusal) = &observed.accepted {
        let message = format!(
            "share removed: the policy no longer allows it: {}",
            refusal.message
        );
        end(
            &mut plan,
            SharingPhase::Revoked,
            reason::POLICY_WITHDRAWN,
            &message,
            observed,
        );
        return plan;
    }
    plan.wake_at = Some(expires_at);
    let approved = plan.status.classification.clone();
    let problem = match (&observed.classification, approved) {
        (Err(refusal), _) => Some(refusal.message.clone()),
        (Ok(now), Some(approved)) => raised(&approved, now),
        (Ok(_), None) => None,
    };
    // The sources as approved, but a policy that now forbids this combination (method, external
    // classification): withdrawn, as when the policy no longer accepts the recipient.
    if problem.is_none()
        && let Err(refusal) = &observed.checked
        && refusal.reason == reason::POLICY_VIOLATION
    {
        let message = format!(
            "share removed: the policy no longer allows it: {}",
            refusal.message
        );
        end(
            &mut plan,
            SharingPhase::Revoked,
            reason::POLICY_WITHDRAWN,
            &message,
            observed,
        );
        return plan;
    }
    match problem {
        Some(problem) => {
            plan.status.phase = Some(SharingPhase::Suspended);
            let message = format!(
                "suspended, nothing is shared until the sources hold what was approved again: {problem}"
            );
            set(
                &mut plan,
                &[SHARED, READY],
                false,
                reason::SOURCE_CHANGED,
                &message,
                observed,
            );
        }
        None => {
            // What is shared is re-derived from the admitted reviews and the current policy on
            // every reconcile: the recorded phase alone never keeps (or creates) a share.
            let missing = match &observed.checked {
                Ok(checked) => {
                    let state = review_state(&mut plan, checked, observed);
                    (!state.complete()).then(|| {
                        format!(
                            "SharingPolicy {} now requires review by {}, which this share does not have",
                            checked.policy,
                            state.waiting_for().join(", ")
                        )
                    })
                }
                Err(refusal) => Some(refusal.message.clone()),
            };
            if let Some(missing) = missing {
                let message = format!("share removed: {missing}");
                end(
                    &mut plan,
                    SharingPhase::Revoked,
                    reason::POLICY_WITHDRAWN,
                    &message,
                    observed,
                );
                return plan;
            }
            plan.status.phase = Some(SharingPhase::Active);
            let message = format!("shared until {expires_at}");
            set(
                &mut plan,
                &[SHARED, READY],
                true,
                reason::PROVISIONED,
                &message,
                observed,
            );
            plan.share = Share::Execute;
        }
    }
    plan
}

/// How the sources became more sensitive than when the share was reviewed, if they did: the
/// reviews covered the data as it was classified then.
fn raised(approved: &ClassificationResult, now: &ClassificationResult) -> Option<String> {
    let mut changes = Vec::new();
    if now.level > approved.level {
        changes.push(format!(
            "the data is now {} (reviewed as {})",
            now.level, approved.level
        ));
    }
    if now.personal_data && !approved.personal_data {
        changes.push("a source is now labelled personal data".to_string());
    }
    let new_regions: Vec<&str> = now
        .residency
        .iter()
        .filter(|r| !approved.residency.contains(r))
        .map(String::as_str)
        .collect();
    if !new_regions.is_empty() {
        changes.push(format!("new residency {}", new_regions.join(", ")));
    }
    (!changes.is_empty()).then(|| {
        format!(
            "{}; file a new DataSharingAgreement to share it as it is now",
            changes.join("; ")
        )
    })
}

/// Records a sync in `share` when the shared source versions differ from the last one recorded:
/// the sharing record lists what was shared when, never the values.
pub fn record_sync(share: &mut ShareRecord, sources: Vec<String>, now: Timestamp) -> bool {
    if share
        .syncs
        .last()
        .is_some_and(|last| last.sources == sources)
    {
        return false;
    }
    share.syncs.push(SyncRecord {
        time: Time(second_floor(now)),
        sources,
    });
    let excess = share.syncs.len().saturating_sub(SYNC_HISTORY);
    share.syncs.drain(..excess);
    true
}

/// The recorded activation window, checked against its seal: `Err` when the status claims a share
/// (or an executed phase) the operator never opened.
fn recorded_window(
    status: &DataSharingAgreementStatus,
    observed: &Observation,
) -> Result<(), String> {
    let executed = match status.phase {
        Some(SharingPhase::Active) => Some("Active"),
        Some(SharingPhase::Suspended) => Some("Suspended"),
        _ => None,
    };
    observed.sealer.check_status(
        status
            .share
            .as_ref()
            .map(|s| (&s.activated_at, &s.expires_at, s.seal.as_deref())),
        executed,
        observed.now,
    )
}

/// Ends an agreement whose status the operator did not write: everything shared is removed at
/// once, and it never shares again (a new agreement goes through review again).
fn tampered(plan: &mut Plan, problem: &str, observed: &Observation) {
    let message = format!(
        "share removed and the agreement ended: {problem}. Only the operator writes status (admission policy gatehouse-status); file a new agreement"
    );
    end(
        plan,
        SharingPhase::Revoked,
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

/// The recipient ServiceAccount as an approvals subject: it may not review its own share.
pub fn recipient_subject(
    namespace: Option<&str>,
    service_account: Option<&str>,
) -> Option<Subject> {
    Some(Subject {
        kind: SubjectKind::ServiceAccount,
        name: service_account?.to_string(),
        namespace: Some(namespace?.to_string()),
    })
}

/// Ends the agreement in a terminal phase: nothing shared, and conditions that say why.
fn end(
    plan: &mut Plan,
    phase: SharingPhase,
    why: &'static str,
    message: &str,
    observed: &Observation,
) {
    plan.status.phase = Some(phase);
    plan.status.waiting_for = None;
    plan.share = Share::Remove;
    plan.wake_at = None;
    if let Some(share) = &mut plan.status.share
        && share.removed_at.is_none()
    {
        share.removed_at = Some(Time(second_floor(observed.now)));
    }
    set(plan, &[SHARED, READY], false, why, message, observed);
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

fn apply(plan: &mut Plan, update: ConditionUpdate, observed: &Observation) {
    conditions::set_condition(
        &mut plan.status.conditions,
        update,
        observed.generation,
        Time(observed.now),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Classification;
    use crate::api::conditions::find;

    const HOUR: i64 = 3600;

    fn test_key() -> crate::lifecycle::activation::SealKey {
        crate::lifecycle::activation::SealKey::from_bytes(&[3; 32]).expect("32 bytes")
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid test time")
    }

    fn internal() -> ClassificationResult {
        ClassificationResult {
            level: Classification::Internal,
            personal_data: false,
            residency: vec![],
            reasons: vec![],
        }
    }

    fn checked(required: &[&str], gate: AgreementGate) -> Checked {
        Checked {
            policy: "default-sharing".into(),
            retention: Duration::from_secs(2 * HOUR as u64),
            pending_timeout: Some("24h".into()),
            required: required.iter().map(|r| r.to_string()).collect(),
            gate,
        }
    }

    struct Case {
        annotations: BTreeMap<String, String>,
        status: Option<DataSharingAgreementStatus>,
        classification: Result<ClassificationResult, Refusal>,
        checked: Result<Checked, Refusal>,
        accepted: Result<(), Refusal>,
        unverified: Option<&'static str>,
        unauthorized: Vec<(String, String)>,
        now: i64,
    }

    impl Case {
        fn new(required: &[&str]) -> Self {
            Self {
                annotations: BTreeMap::new(),
                status: None,
                classification: Ok(internal()),
                checked: Ok(checked(required, AgreementGate::Open)),
                accepted: Ok(()),
                unverified: None,
                unauthorized: vec![],
                now: 60,
            }
        }

        fn annotate(mut self, key: &str, value: &str) -> Self {
            self.annotations.insert(key.into(), value.into());
            self
        }

        fn run(&self) -> Plan {
            let key = test_key();
            plan(&Observation {
                requester: "erin",
                filed_by: None,
                sealer: Sealer {
                    key: &key,
                    kind: "DataSharingAgreement",
                    uid: "uid-1",
                },
                recipient: recipient_subject(Some("analytics"), Some("reporting")),
                annotations: &self.annotations,
                unauthorized_decisions: &self.unauthorized,
                agreement_reference: Some("DPA-1"),
                created: Some(at(0)),
                generation: Some(1),
                current: self.status.as_ref(),
                approvals_unverified: self.unverified,
                accepted: self.accepted.clone(),
                classification: self.classification.clone(),
                checked: match &self.checked {
                    Ok(c) => Ok(Checked {
                        policy: c.policy.clone(),
                        retention: c.retention,
                        pending_timeout: c.pending_timeout.clone(),
                        required: c.required.clone(),
                        gate: c.gate.clone(),
                    }),
                    Err(r) => Err(r.clone()),
                },
                now: at(self.now),
            })
        }

        /// This case, continued from the status `plan` produced, at `now`.
        fn then(mut self, plan: &Plan, now: i64) -> Self {
            self.status = Some(plan.status.clone());
            self.now = now;
            self
        }
    }

    fn reason_of(plan: &Plan, type_: &str) -> String {
        find(&plan.status.conditions, type_)
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn waits_for_every_review_then_shares_until_retention_end() {
        let pending = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run();
        assert_eq!(pending.status.phase, Some(SharingPhase::Pending));
        assert_eq!(pending.share, Share::Remove);
        assert_eq!(pending.status.waiting_for.as_deref(), Some("security"));
        assert_eq!(reason_of(&pending, "DataOwnerApproved"), reason::APPROVED);
        assert_eq!(
            pending.wake_at,
            Some(at(24 * HOUR)),
            "wakes at the pending timeout"
        );

        let case = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate("approve.gatehouse.dev/security", "dave");
        let active = case.run();
        assert_eq!(active.status.phase, Some(SharingPhase::Active));
        assert_eq!(active.share, Share::Execute);
        let share = active.status.share.clone().expect("share record");
        assert_eq!(share.expires_at.0, at(60 + 2 * HOUR));
        assert_eq!(share.agreement.as_deref(), Some("DPA-1"));
        assert_eq!(active.wake_at, Some(at(60 + 2 * HOUR)));
        assert_eq!(reason_of(&active, READY), reason::PROVISIONED);

        let expired = Case::new(&["data-owner", "security"])
            .then(&active, 60 + 2 * HOUR)
            .run();
        assert_eq!(expired.status.phase, Some(SharingPhase::Expired));
        assert_eq!(expired.share, Share::Remove);
        assert_eq!(
            expired.status.share.and_then(|s| s.removed_at).map(|t| t.0),
            Some(at(60 + 2 * HOUR))
        );
    }

    #[test]
    fn the_requester_and_the_recipient_cannot_review() {
        let plan = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "erin")
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        let plan = Case::new(&["data-owner"])
            .annotate(
                "approve.gatehouse.dev/data-owner",
                "system:serviceaccount:analytics:reporting",
            )
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        assert_eq!(plan.status.ignored_annotations.len(), 1, "{plan:?}");
    }

    #[test]
    fn a_denial_by_any_reviewer_ends_it() {
        let plan = Case::new(&["data-owner", "legal"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate("deny.gatehouse.dev/legal", "lena")
            .annotate("reason.gatehouse.dev/legal", "no DPA")
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Denied));
        let ready = find(&plan.status.conditions, READY).expect("Ready");
        assert_eq!(ready.message, "denied by lena as legal: no DPA");
    }

    #[test]
    fn without_an_agreement_reviews_proceed_but_nothing_executes() {
        let mut case =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        case.checked = Ok(checked(
            &["data-owner"],
            AgreementGate::AwaitingAgreement {
                message: "file spec.agreement.reference".into(),
            },
        ));
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::AwaitingAgreement));
        assert_eq!(plan.share, Share::Remove);
        assert_eq!(reason_of(&plan, SHARED), reason::AWAITING_AGREEMENT);
        assert_eq!(reason_of(&plan, "DataOwnerApproved"), reason::APPROVED);

        case.checked = Ok(checked(&["data-owner"], AgreementGate::Open));
        let filed = case.then(&plan, 120).run();
        assert_eq!(filed.status.phase, Some(SharingPhase::Active));
    }

    #[test]
    fn pending_timeout_names_what_is_missing() {
        let mut case = Case::new(&["data-owner", "legal"]);
        case.now = 24 * HOUR;
        case.checked = Ok(checked(
            &["data-owner", "legal"],
            AgreementGate::AwaitingAgreement {
                message: "file one".into(),
            },
        ));
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::TimedOut));
        let ready = find(&plan.status.conditions, READY).expect("Ready");
        assert!(
            ready
                .message
                .contains("data-owner, legal, a signed agreement"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn refusals_fail_and_record_the_classification() {
        let mut case = Case::new(&["data-owner"]);
        case.checked = Err(Refusal::new(
            reason::POLICY_VIOLATION,
            "Copy of restricted data",
        ));
        case.classification = Ok(ClassificationResult {
            level: Classification::Restricted,
            ..internal()
        });
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Failed));
        assert_eq!(reason_of(&plan, ACCEPTED), reason::POLICY_VIOLATION);
        assert_eq!(
            plan.status.classification.map(|c| c.level),
            Some(Classification::Restricted)
        );
    }

    #[test]
    fn a_policy_without_reviews_shares_nothing() {
        let plan = Case::new(&[]).run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Failed));
        assert_eq!(plan.share, Share::Remove);
    }

    #[test]
    fn missing_keys_or_raised_classification_suspend_until_restored() {
        let case =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = case().run();
        assert_eq!(active.status.phase, Some(SharingPhase::Active));

        let mut gone = case().then(&active, 120);
        gone.classification = Err(Refusal::new(
            reason::INVALID_SPEC,
            "spec.data[0]: Secret db has no key password",
        ));
        let suspended = gone.run();
        assert_eq!(suspended.status.phase, Some(SharingPhase::Suspended));
        assert_eq!(suspended.share, Share::Remove);
        assert_eq!(reason_of(&suspended, SHARED), reason::SOURCE_CHANGED);

        let restored = case().then(&suspended, 180).run();
        assert_eq!(restored.status.phase, Some(SharingPhase::Active));
        assert_eq!(restored.share, Share::Execute);
        assert_eq!(
            restored.status.share.as_ref().map(|s| s.expires_at.clone()),
            active.status.share.as_ref().map(|s| s.expires_at.clone()),
            "retention keeps counting from activation"
        );

        let mut raised = case().then(&active, 120);
        raised.classification = Ok(ClassificationResult {
            level: Classification::Restricted,
            personal_data: true,
            ..internal()
        });
        let plan = raised.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Suspended));
        let shared = find(&plan.status.conditions, SHARED).expect("Shared");
        assert!(
            shared
                .message
                .contains("now restricted (reviewed as internal)"),
            "{}",
            shared.message
        );
        assert!(
            shared.message.contains("personal data"),
            "{}",
            shared.message
        );
    }

    #[test]
    fn revocation_and_policy_withdrawal_remove_the_share() {
        let case = Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = case.run();
        let revoked = Case::new(&["data-owner"])
            .then(&active, 120)
            .annotate("revoke.gatehouse.dev/by", "erin")
            .run();
        assert_eq!(revoked.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(revoked.share, Share::Remove);
        assert!(revoked.status.share.and_then(|s| s.removed_at).is_some());

        let mut withdrawn = Case::new(&["data-owner"]).then(&active, 120);
        withdrawn.accepted = Err(Refusal::new(reason::NO_MATCHING_POLICY, "no SharingPolicy"));
        let plan = withdrawn.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(reason_of(&plan, READY), reason::POLICY_WITHDRAWN);

        let after = Case::new(&["data-owner"]).then(&plan, 180).run();
        assert_eq!(after.status, plan.status, "terminal phases never change");
    }

    #[test]
    fn a_policy_that_now_forbids_an_active_share_withdraws_it() {
        let active = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run();
        let mut tightened = Case::new(&["data-owner"]).then(&active, 120);
        tightened.checked = Err(Refusal::new(
            reason::POLICY_VIOLATION,
            "spec.transfer.method: Copy is not allowed for internal data",
        ));
        let plan = tightened.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(plan.share, Share::Remove);
        assert_eq!(reason_of(&plan, READY), reason::POLICY_WITHDRAWN);
    }

    #[test]
    fn an_approved_share_whose_execution_failed_is_retried_past_the_deadline() {
        let mut status = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run()
            .status;
        status.phase = Some(SharingPhase::Approved);
        status.share = None;
        let mut late =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        late.status = Some(status);
        late.now = 25 * HOUR;
        let plan = late.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Active));
    }

    #[test]
    fn untrusted_approvals_never_count() {
        let mut case =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        case.unverified = Some("policy gatehouse-approvals is missing");
        let held = case.run();
        assert_eq!(held.status.phase, Some(SharingPhase::Pending));
        assert_eq!(held.share, Share::Remove);
        let mut restored = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .then(&held, 120);
        restored.unverified = None;
        let plan = restored.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending), "{plan:?}");
    }

    #[test]
    fn syncs_are_recorded_once_per_source_version_and_bounded() {
        let mut share = ShareRecord {
            objects: vec![],
            activated_at: Time(at(0)),
            expires_at: Time(at(HOUR)),
            seal: None,
            agreement: None,
            syncs: vec![],
            removed_at: None,
        };
        assert!(record_sync(&mut share, vec!["Secret/db@1".into()], at(1)));
        assert!(!record_sync(&mut share, vec!["Secret/db@1".into()], at(2)));
        for version in 2..20 {
            assert!(record_sync(
                &mut share,
                vec![format!("Secret/db@{version}")],
                at(version)
            ));
        }
        assert_eq!(share.syncs.len(), SYNC_HISTORY);
        assert_eq!(
            share.syncs.last().map(|s| s.sources.clone()),
            Some(vec!["Secret/db@19".to_string()])
        );
    }
    #[test]
    fn a_forged_executed_status_shares_nothing_and_ends_the_agreement() {
        let approved =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = approved().run();
        for forge in [
            |s: &mut DataSharingAgreementStatus| s.share = None,
            |s: &mut DataSharingAgreementStatus| {
                if let Some(share) = s.share.as_mut() {
                    share.expires_at = Time(Timestamp::from_second(4_070_908_800).expect("valid"));
                }
            },
            |s: &mut DataSharingAgreementStatus| {
                if let Some(share) = s.share.as_mut() {
                    share.seal = None;
                }
            },
        ] {
            let mut status = active.status.clone();
            forge(&mut status);
            let plan = approved()
                .then(
                    &Plan {
                        status,
                        ..active.clone()
                    },
                    120,
                )
                .run();
            assert_eq!(plan.share, Share::Remove);
            assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
            assert_eq!(reason_of(&plan, STATUS_TAMPERED), reason::STATUS_TAMPERED);
        }
        let kept = approved().then(&active, 120).run();
        assert_eq!(
            kept.share,
            Share::Execute,
            "the genuine window keeps sharing"
        );
    }

    #[test]
    fn a_review_by_someone_without_the_right_where_required_does_not_count() {
        let mut case = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate(
                "approve.gatehouse.dev/security",
                "system:serviceaccount:orders:me",
            );
        case.unauthorized = vec![(
            "approve.gatehouse.dev/security".into(),
            "approve.gatehouse.dev/security by system:serviceaccount:orders:me does not count"
                .into(),
        )];
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        assert_eq!(plan.share, Share::Remove);
        assert_eq!(plan.status.waiting_for.as_deref(), Some("security"));
        assert!(
            plan.status
                .ignored_annotations
                .iter()
                .any(|m| m.contains("does not count")),
            "{:?}",
            plan.status.ignored_annotations
        );
    }

    #[test]
    fn an_execution_retry_keeps_the_recorded_window() {
        let approved =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = approved().run();
        let mut failed = active.status.clone();
        failed.phase = Some(SharingPhase::Approved);
        let retried = approved()
            .then(
                &Plan {
                    status: failed,
                    ..active.clone()
                },
                900,
            )
            .run();
        assert_eq!(retried.status.phase, Some(SharingPhase::Active));
        assert_eq!(
            retried
                .status
                .share
                .as_ref()
                .map(|s| (&s.activated_at, &s.expires_at)),
            active
                .status
                .share
                .as_ref()
                .map(|s| (&s.activated_at, &s.expires_at)),
            "retention never moves"
        );
    }
}
