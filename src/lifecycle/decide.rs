//! The lifecycle of every approvable, time-bound, provisioned thing as one pure function: from what
//! was observed to the status it should have, whether what it grants should be provided, and when
//! to look again.
//!
//! Pending | Held → (every required stage approved, nothing holding it) → Approved (window
//! recorded) → Active ⇄ Suspended → Expired | Revoked; or Denied | TimedOut before; or Failed while
//! it does not fit a policy. Terminal phases never change again and always mean "nothing
//! provided". A feature written here (a deadline, a reminder, a way to end) serves every kind.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::Refusal;
use super::activation::Sealer;
use super::duration::{self, after};
use super::eligible::{self, Approvers};
use super::kind::{Kind, Record, RecordedWindow};
use super::lineage::Extension;
use super::protocol::{self, ApprovalState, Parties};
use crate::api::Phase;
use crate::api::common::ApprovedScope;
use crate::api::conditions::{
    self, ACCEPTED, APPROVAL_INTEGRITY, ConditionUpdate, READY, STATUS_TAMPERED, reason,
};

/// Everything the decision needs, gathered by the controller and the kind.
pub struct Observation<'a, K: Kind> {
    /// Seals and checks the activation window of this object.
    pub sealer: Sealer<'a>,
    pub annotations: &'a BTreeMap<String, String>,
    /// Who may not decide on it: the requester, the filer, who receives what it grants.
    pub parties: Parties<'a>,
    /// Decision annotations whose author lacks the right where it counts, with why.
    pub unauthorized_decisions: &'a [(String, String)],
    /// Who holds each role's right, and the requester's manager per the org chart.
    pub approvers: &'a Approvers,
    /// Why approvals cannot be trusted right now (the admission policies are missing or
    /// changed); `None` when they are verified.
    pub approvals_unverified: Option<&'a str>,
    pub created: Option<Timestamp>,
    pub generation: Option<i64>,
    pub current: Option<&'a K::Status>,
    /// The objects that extend (once granted) and supersede this one.
    pub extended_by: Option<String>,
    pub superseded_by: Option<String>,
    /// The governing policy's verdict, with what it requires when it accepts.
    pub governed: Result<Governed, Refusal>,
    /// Why what was approved does not hold right now although the policy still allows it (a
    /// share's sources changed): an executed object is suspended, not ended.
    pub suspension: Option<Refusal>,
    /// What the kind derives its own status fields from.
    pub facts: &'a K::Facts,
    pub now: Timestamp,
}

/// What the governing policy requires of an accepted object.
pub struct Governed {
    pub policy: String,
    /// The message of `Accepted=True`.
    pub accepted: String,
    /// The roles that must approve, in stage order.
    pub required: Vec<String>,
    /// Those of them only the requester's manager decides (`approver: RequesterManager`).
    pub manager_stages: Vec<String>,
    /// Those whose right also counts when held through a group: the operator proves no right of
    /// theirs again with a SubjectAccessReview of the username alone.
    pub group_approvers: Vec<String>,
    /// Why nothing can ever be provided when `required` is empty.
    pub no_stage: String,
    /// How long the window lasts once it opens: the narrowest the approvals allow.
    pub duration: Duration,
    /// What was asked for against what the approvals allow, for the status.
    pub scope: Option<ApprovedScope>,
    /// When the window may open at the earliest (`spec.startAt`).
    pub start_at: Option<Timestamp>,
    /// What it extends (`spec.extends`), accepted.
    pub extension: Option<Extension>,
    pub pending_timeout: Duration,
    /// Whether a reminder Event goes out when half the pending timeout has passed.
    pub remind: bool,
    /// A denial the automated checks decided (e.g. separation of duties): ends it as Denied.
    pub denial: Option<Refusal>,
    /// What must exist besides the approvals before anything is provided.
    pub hold: Option<Hold>,
}

/// Something besides approvals that keeps an object from being provided.
pub struct Hold {
    pub reason: &'static str,
    pub message: String,
    /// How the timeout message names what is missing.
    pub missing: String,
}

/// Whether what the object grants should exist.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provision {
    /// It must exist exactly as approved.
    Provide,
    /// Nothing of it may exist.
    Remove,
}

/// What the controller should do.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<S> {
    pub status: S,
    pub provision: Provision,
    /// When to reconcile again at the latest (expiry, timeout, reminder).
    pub wake_at: Option<Timestamp>,
    /// A reminder to publish now: the roles still to approve.
    pub reminder: Option<String>,
}

/// The decision being built: the record, the kind's own fields, and what to do.
struct Draft<'a, 'o, K: Kind> {
    record: Record,
    details: K::Details,
    provision: Provision,
    wake_at: Option<Timestamp>,
    reminder: Option<String>,
    observed: &'o Observation<'a, K>,
}

/// Decides the next state of an object.
pub fn decide<K: Kind>(observed: &Observation<K>) -> Decision<K::Status> {
    let (mut record, details) = K::split(observed.current.cloned().unwrap_or_default());
    record.observed_generation = observed.generation;
    // Links are history: recorded whatever the phase, and kept once recorded.
    if observed.extended_by.is_some() {
        record.lineage.extended_by = observed.extended_by.clone();
    }
    if observed.superseded_by.is_some() {
        record.lineage.superseded_by = observed.superseded_by.clone();
    }
    let phase = record.phase;
    let mut draft = Draft {
        record,
        details,
        provision: Provision::Remove,
        wake_at: None,
        reminder: None,
        observed,
    };
    if phase.is_some_and(Phase::is_terminal) {
        return draft.finish();
    }
    if let Err(problem) = recorded_window(&draft.record, observed) {
        draft.tampered(&problem);
        return draft.finish();
    }
    let executed = phase.is_some_and(Phase::is_running);
    K::describe(&mut draft.details, observed.facts, executed);
    if let Ok(governed) = &observed.governed {
        draft.record.policy = Some(governed.policy.clone());
        // Once provided, the scope and the chain stay as they were approved.
        if !executed {
            draft.record.scope = governed.scope.clone();
            draft.record.lineage.chain = governed
                .extension
                .as_ref()
                .map(|e| e.chain.clone())
                .unwrap_or_default();
        }
        draft.set(&[ACCEPTED], true, reason::VALID, &governed.accepted);
    }
    if let Some(user) = protocol::revoked_by(observed.annotations) {
        let message = (K::WORDING.revoked)(user, executed);
        draft.end(Phase::Revoked, reason::REVOKED, &message);
        return draft.finish();
    }
    if executed {
        draft.executing();
        return draft.finish();
    }
    match &observed.governed {
        Ok(governed) => draft.pending(governed),
        Err(refusal) => {
            draft.record.phase = Some(Phase::Failed);
            draft.record.policy = None;
            draft.decided();
            draft.set(&[ACCEPTED, READY], false, refusal.reason, &refusal.message);
        }
    }
    draft.finish()
}

/// The recorded activation window, checked against its seal: `Err` when the status claims a window
/// (or an executed phase) the operator never opened.
fn recorded_window<K: Kind>(record: &Record, observed: &Observation<K>) -> Result<(), String> {
    let executed = match record.phase {
        Some(Phase::Active) => Some("Active"),
        Some(Phase::Suspended) => Some("Suspended"),
        _ => None,
    };
    observed.sealer.check_status(
        record
            .window
            .as_ref()
            .map(|w| (&w.activated_at, &w.expires_at, w.seal.as_deref())),
        executed,
        observed.now,
    )
}

impl<K: Kind> Draft<'_, '_, K> {
    fn finish(self) -> Decision<K::Status> {
        Decision {
            status: K::join(self.record, self.details),
            provision: self.provision,
            wake_at: self.wake_at,
            reminder: self.reminder,
        }
    }

    /// The approvals as the admitted annotations say now; approvals first seen while the admission
    /// policies were not enforced are marked and never count.
    fn count(&mut self, governed: &Governed) -> ApprovalState {
        let previous = self.record.approvals.clone();
        self.record.manager_approvals = governed.manager_stages.clone();
        protocol::counted(
            governed.required.clone(),
            &protocol::Decisions {
                annotations: self.observed.annotations,
                unauthorized: self.observed.unauthorized_decisions,
                unverified: self.observed.approvals_unverified.is_some(),
                manager_stages: &governed.manager_stages,
                manager: &self.observed.approvers.manager,
            },
            &self.observed.parties,
            &mut self.record.untrusted_approvals,
            &previous,
            &Time(self.observed.now),
        )
    }

    fn record_approvals(&mut self, state: &ApprovalState, governed: &Governed) {
        self.record.required_approvals = state.required.clone();
        self.record.approvals = state.records.clone();
        self.record.ignored_annotations = state.ignored.clone();
        let waiting = state.waiting_for();
        self.record.waiting_for = (!waiting.is_empty()).then(|| waiting.join(","));
        self.record.approvers = eligible::listed(
            &waiting,
            &governed.manager_stages,
            self.observed.approvers,
            &self.observed.parties,
            |role| governed.group_approvers.iter().any(|r| r == role),
        );
        let manager = &self.observed.approvers.manager;
        for update in protocol::stage_conditions(state, &governed.manager_stages, manager) {
            self.apply(update);
        }
    }

    /// Nothing waits for a decision any more.
    fn decided(&mut self) {
        self.record.waiting_for = None;
        self.record.approvers.clear();
    }

    /// Not provided yet: waits for approvals and holds, ends by denial or timeout, or activates.
    fn pending(&mut self, governed: &Governed) {
        let wording = &K::WORDING;
        let observed = self.observed;
        let state = self.count(governed);
        self.record_approvals(&state, governed);
        if state.required.is_empty() {
            self.record.phase = Some(Phase::Failed);
            self.set(
                &[ACCEPTED, READY],
                false,
                reason::POLICY_VIOLATION,
                &governed.no_stage,
            );
            return;
        }
        if let Some(denial) = &governed.denial {
            self.end(Phase::Denied, denial.reason, &denial.message);
            return;
        }
        if let Some(denial) = &state.denial {
            let why = denial
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            if denial.decision == crate::api::common::Decision::ChangesRequested {
                let message = format!(
                    "changes requested by {} as {}{why}; file a new {} with the changes",
                    denial.user, denial.role, wording.noun
                );
                self.end(Phase::ChangesRequested, reason::CHANGES_REQUESTED, &message);
                return;
            }
            let message = format!("denied by {} as {}{why}", denial.user, denial.role);
            self.end(Phase::Denied, reason::DENIED, &message);
            return;
        }
        let created = observed.created.unwrap_or(observed.now);
        let deadline = after(created, governed.pending_timeout);
        match observed.approvals_unverified {
            None => self.set(
                &[APPROVAL_INTEGRITY],
                true,
                reason::VERIFIED,
                "the approval admission policies are installed as shipped",
            ),
            Some(problem) => {
                let message = format!(
                    "approvals cannot be trusted, so nothing will be {}: {problem}; a cluster admin must run `kubectl apply -k deploy/admission/`",
                    wording.provisioned
                );
                self.set(
                    &[APPROVAL_INTEGRITY],
                    false,
                    reason::APPROVAL_INTEGRITY_UNVERIFIED,
                    &message,
                );
            }
        }
        // The deadline comes first: approvals that arrive (or are first seen) after it do not
        // count. One approved in time (its provisioning is being retried, within the window
        // recorded then) ends by expiry instead.
        let approved_in_time = self.record.window.is_some()
            || matches!(self.record.phase, Some(Phase::Approved | Phase::Scheduled));
        if observed.now >= deadline && !approved_in_time {
            let mut missing = state.waiting_for();
            if let Some(hold) = &governed.hold {
                missing.push(&hold.missing);
            }
            let message = format!(
                "not fully {} within {}; still waiting for {}",
                wording.decided,
                duration::format(governed.pending_timeout),
                missing.join(", ")
            );
            self.end(Phase::TimedOut, reason::TIMED_OUT, &message);
            return;
        }
        let waiting = state.waiting_for().join(", ");
        let waiting_message = format!("waiting for {} by {waiting}", wording.decision);
        let provided = wording.provided_condition;
        if let Some(hold) = &governed.hold {
            self.record.phase = Some(Phase::Held);
            let message = if state.complete() {
                format!("every {} approved; {}", wording.stage, hold.message)
            } else {
                format!("{}; meanwhile {waiting_message}", hold.message)
            };
            self.set(&[provided, READY], false, hold.reason, &message);
            self.wake_at = Some(deadline);
            return;
        }
        if state.complete() && observed.approvals_unverified.is_none() {
            match governed.start_at.filter(|start| observed.now < *start) {
                Some(start) => self.schedule(start),
                None => self.activate(governed),
            }
            return;
        }
        self.record.phase = Some(Phase::Pending);
        if state.complete() {
            let message = format!(
                "every {} approved, but approvals cannot be trusted until the admission policies are restored",
                wording.stage
            );
            self.set(
                &[provided, READY],
                false,
                reason::APPROVAL_INTEGRITY_UNVERIFIED,
                &message,
            );
            self.wake_at = Some(deadline);
            return;
        }
        self.set(&[provided], false, wording.waiting_reason, &waiting_message);
        self.set(&[READY], false, reason::WAITING, &waiting_message);
        self.wake_at = Some(deadline);
        if governed.remind {
            let remind_at = after(created, governed.pending_timeout / 2);
            if self.record.reminded_at.is_none() && observed.now >= remind_at {
                self.record.reminded_at = Some(Time(observed.now));
                self.reminder = Some(format!(
                    "still waiting for {} by {waiting}; the {} times out at {}",
                    wording.decision,
                    wording.noun,
                    Time(deadline).0
                ));
            }
            if self.record.reminded_at.is_none() {
                self.wake_at = Some(remind_at);
            }
        }
    }

    /// Approved before its start: nothing is provided until `start`, when it activates.
    fn schedule(&mut self, start: Timestamp) {
        let wording = &K::WORDING;
        self.record.phase = Some(Phase::Scheduled);
        self.decided();
        let message = format!(
            "every {} approved; {} from {start}",
            wording.stage, wording.provided
        );
        self.set(
            &[wording.provided_condition, READY],
            false,
            reason::SCHEDULED,
            &message,
        );
        self.wake_at = Some(start);
    }

    /// Activates: opens the sealed window, or keeps the one opened before (a provisioning retry),
    /// so that the expiry never moves once recorded. The controller records it before anything is
    /// provided. Scheduled (approved before its start), the window opens at the start, however
    /// late the operator gets to it; approved later, it opens now.
    fn activate(&mut self, governed: &Governed) {
        let window = match self.record.window.take() {
            Some(recorded) => recorded,
            None => {
                let opens = match (self.record.phase, governed.start_at) {
                    (Some(Phase::Scheduled), Some(start)) => start.min(self.observed.now),
                    _ => self.observed.now,
                };
                let length = match &governed.extension {
                    Some(extension) => {
                        self.record.lineage.chain_started_at =
                            Some(Time(duration::second_floor(extension.chain_start(opens))));
                        extension.window_length(opens, governed.duration)
                    }
                    None => governed.duration,
                };
                let opened = self.observed.sealer.open(opens, length);
                RecordedWindow {
                    activated_at: opened.activated_at,
                    expires_at: opened.expires_at,
                    seal: Some(opened.seal),
                }
            }
        };
        let expires_at = window.expires_at.0;
        self.record.window = Some(window);
        self.record.phase = Some(Phase::Active);
        self.decided();
        K::activated(&mut self.details, self.observed.facts);
        if self.observed.now >= expires_at {
            self.expire(expires_at);
            return;
        }
        self.provide(expires_at);
    }

    fn provide(&mut self, expires_at: Timestamp) {
        let message = format!("{} until {expires_at}", K::WORDING.provided);
        self.record.phase = Some(Phase::Active);
        self.set(
            &[K::WORDING.provided_condition, READY],
            true,
            reason::PROVISIONED,
            &message,
        );
        self.provision = Provision::Provide;
        self.wake_at = Some(expires_at);
        K::provided(&mut self.details, self.observed.facts, self.observed.now);
    }

    /// Something is provided: it expires, ends because the current policy or the approvals that
    /// count no longer back it, is suspended while what was approved does not hold, or goes on.
    /// What is provided is re-derived on every reconcile: the recorded phase alone never keeps
    /// (or creates) anything.
    fn executing(&mut self) {
        let wording = &K::WORDING;
        let observed = self.observed;
        // An executed phase without a window was refused as tampering before this point.
        let Some(expires_at) = self.record.window.as_ref().map(|w| w.expires_at.0) else {
            return;
        };
        if observed.now >= expires_at {
            self.expire(expires_at);
            return;
        }
        // Its extension was granted and provides it from now on (a share's objects are taken over
        // in place): one chain, one live grant.
        if let Some(extension) = &observed.extended_by {
            let message = format!(
                "continued by {extension}, its extension, which was approved and now provides it until its own expiry"
            );
            self.end(Phase::Expired, reason::EXTENDED, &message);
            return;
        }
        if let Some(suspension) = &observed.suspension {
            self.record.phase = Some(Phase::Suspended);
            self.set(
                &[wording.provided_condition, READY],
                false,
                suspension.reason,
                &suspension.message,
            );
            self.wake_at = Some(expires_at);
            return;
        }
        let governed = match &observed.governed {
            Ok(governed) => governed,
            Err(refusal) => {
                let message = format!("{}: {}", wording.withdrawn, refusal.message);
                self.end(Phase::Revoked, reason::POLICY_WITHDRAWN, &message);
                return;
            }
        };
        let state = self.count(governed);
        if !state.complete() {
            let message = format!(
                "{}: the approvals that count no longer cover what {} {} requires (missing: {})",
                wording.removed,
                wording.policy_kind,
                governed.policy,
                state.waiting_for().join(", ")
            );
            self.end(Phase::Revoked, reason::POLICY_WITHDRAWN, &message);
            return;
        }
        self.provide(expires_at);
    }

    fn expire(&mut self, expires_at: Timestamp) {
        let message = (K::WORDING.expired)(expires_at);
        self.end(Phase::Expired, reason::EXPIRED, &message);
    }

    /// Ends an object whose status the operator did not write: what it provided is removed at
    /// once, and it never provides again (a new one goes through approval again).
    fn tampered(&mut self, problem: &str) {
        let wording = &K::WORDING;
        let message = format!(
            "{} and the {noun} ended: {problem}. Only the operator writes status (admission policy gatehouse-status); file a new {noun}",
            wording.removed,
            noun = wording.noun
        );
        self.end(Phase::Revoked, reason::STATUS_TAMPERED, &message);
        self.set(&[STATUS_TAMPERED], true, reason::STATUS_TAMPERED, &message);
    }

    /// Ends in a terminal phase: nothing provided, and conditions that say why.
    fn end(&mut self, phase: Phase, why: &'static str, message: &str) {
        self.record.phase = Some(phase);
        self.decided();
        self.provision = Provision::Remove;
        self.wake_at = None;
        K::ended(&mut self.details, self.observed.now);
        self.set(&[K::WORDING.provided_condition, READY], false, why, message);
    }

    fn set(&mut self, types: &[&str], ok: bool, why: &'static str, message: &str) {
        conditions::set_conditions(
            &mut self.record.conditions,
            types,
            ok,
            why,
            message,
            self.observed.generation,
            Time(self.observed.now),
        );
    }

    fn apply(&mut self, update: ConditionUpdate) {
        conditions::set_condition(
            &mut self.record.conditions,
            update,
            self.observed.generation,
            Time(self.observed.now),
        );
    }
}

#[cfg(test)]
mod tests {
    //! The core's table: every phase an object can be in × every event that can happen to it,
    //! with the phase it ends up in and whether anything is provided. The kinds' own tests
    //! ([`crate::access::kind`], [`crate::sharing::kind`]) check their wording and fields.

    use super::*;
    use crate::lifecycle::activation::SealKey;
    use crate::lifecycle::kind::Wording;

    /// A kind with nothing of its own: its status is the record.
    struct Bare;

    impl Kind for Bare {
        type Status = Record;
        type Details = ();
        type Facts = ();
        const WORDING: Wording = Wording {
            kind: "Bare",
            noun: "bare",
            policy_kind: "BarePolicy",
            provided_condition: "Provided",
            waiting_reason: reason::WAITING,
            decision: "approval",
            decided: "approved",
            stage: "stage",
            provisioned: "provided",
            provided: "provided",
            removed: "removed",
            withdrawn: "withdrawn",
            failed: "failed",
            revoked: |user, _| format!("revoked by {user}"),
            expired: |at| format!("expired at {at}"),
            phase_name: |_| "Bare",
        };
        fn split(status: Record) -> (Record, ()) {
            (status, ())
        }
        fn join(record: Record, (): ()) -> Record {
            record
        }
        fn conditions(
            status: &mut Record,
        ) -> &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
            &mut status.conditions
        }
        fn phase(status: &Record) -> Option<Phase> {
            status.phase
        }
        fn recorded_conditions(
            status: &Record,
        ) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
            &status.conditions
        }
        fn describe((): &mut (), (): &(), _: bool) {}
        fn activated((): &mut (), (): &()) {}
        fn provided((): &mut (), (): &(), _: Timestamp) {}
        fn ended((): &mut (), _: Timestamp) {}
    }

    const HOUR: i64 = 3600;
    const CREATED: i64 = 1_800_000_000;

    fn at(offset: i64) -> Timestamp {
        Timestamp::from_second(CREATED + offset).expect("valid time")
    }

    fn key() -> SealKey {
        SealKey::from_bytes(&[7; 32]).expect("32 bytes")
    }

    /// What happens to the object in one row.
    #[derive(Clone, Copy, Debug)]
    enum Event {
        Nothing,
        Approved,
        DeniedByStage,
        Revoked,
        PolicyRefuses,
        Suspended,
        Held,
        PastDeadline,
        PastExpiry,
        Unverified,
        SealBroken,
    }

    fn governed(hold: bool) -> Governed {
        Governed {
            policy: "p".into(),
            accepted: "p governs".into(),
            required: vec!["manager".into()],
            manager_stages: Vec::new(),
            group_approvers: Vec::new(),
            no_stage: "no stage".into(),
            duration: std::time::Duration::from_secs(HOUR as u64),
            scope: None,
            start_at: None,
            extension: None,
            pending_timeout: std::time::Duration::from_secs(24 * HOUR as u64),
            remind: false,
            denial: None,
            hold: hold.then(|| Hold {
                reason: reason::AWAITING_AGREEMENT,
                message: "needs a signed agreement".into(),
                missing: "an agreement".into(),
            }),
        }
    }

    /// An object in `phase`, as the operator would have recorded it (a sealed window once
    /// approved), observed at `offset` seconds after creation with `event`.
    fn run(phase: Option<Phase>, event: Event) -> Decision<Record> {
        let key = key();
        let sealer = Sealer {
            key: &key,
            kind: "Bare",
            uid: "uid",
        };
        let mut current = Record {
            phase,
            ..Record::default()
        };
        let opened = sealer.open(at(60), std::time::Duration::from_secs(HOUR as u64));
        if phase.is_some_and(|p| p == Phase::Approved || p.is_running() || p.is_terminal()) {
            current.window = Some(RecordedWindow {
                activated_at: opened.activated_at,
                expires_at: opened.expires_at,
                seal: Some(match event {
                    Event::SealBroken => "hmac-sha256:00".into(),
                    _ => opened.seal,
                }),
            });
        }
        let mut annotations = BTreeMap::new();
        let approved = !matches!(event, Event::Nothing | Event::Held | Event::PastDeadline);
        if approved || phase.is_some_and(Phase::is_running) {
            annotations.insert("approve.gatehouse.dev/manager".into(), "bob".into());
        }
        if let Event::DeniedByStage = event {
            annotations.clear();
            annotations.insert("deny.gatehouse.dev/manager".into(), "bob".into());
        }
        if let Event::Revoked = event {
            annotations.insert(crate::api::REVOKE_ANNOTATION.into(), "dave".into());
        }
        let now = match event {
            Event::PastDeadline => at(25 * HOUR),
            Event::PastExpiry => at(2 * HOUR),
            _ => at(120),
        };
        decide::<Bare>(&Observation {
            extended_by: None,
            superseded_by: None,
            sealer,
            annotations: &annotations,
            parties: Parties {
                requester: "alice",
                filed_by: None,
                subjects: &[],
            },
            unauthorized_decisions: &[],
            approvers: &crate::lifecycle::eligible::Approvers::nobody(),
            approvals_unverified: matches!(event, Event::Unverified).then_some("missing"),
            created: Some(at(0)),
            generation: Some(1),
            current: Some(&current),
            governed: match event {
                Event::PolicyRefuses => Err(Refusal::new(reason::NO_MATCHING_POLICY, "no policy")),
                _ => Ok(governed(matches!(event, Event::Held))),
            },
            suspension: matches!(event, Event::Suspended)
                .then(|| Refusal::new(reason::SOURCE_CHANGED, "sources changed")),
            facts: &(),
            now,
        })
    }

    #[test]
    fn every_phase_under_every_event() {
        use Event as E;
        use Phase::*;
        use Provision::{Provide, Remove};
        let new = None;
        #[rustfmt::skip]
        let table: &[(Option<Phase>, Event, Phase, Provision)] = &[
            (new, E::Nothing, Pending, Remove),
            (new, E::Approved, Active, Provide),
            (new, E::DeniedByStage, Denied, Remove),
            (new, E::Revoked, Revoked, Remove),
            (new, E::PolicyRefuses, Failed, Remove),
            (new, E::Held, Held, Remove),
            (new, E::PastDeadline, TimedOut, Remove),
            (new, E::Unverified, Pending, Remove),
            (Some(Pending), E::Approved, Active, Provide),
            (Some(Pending), E::PastDeadline, TimedOut, Remove),
            (Some(Failed), E::Approved, Active, Provide),
            (Some(Failed), E::PolicyRefuses, Failed, Remove),
            // Scheduled: approved before its start, no window yet.
            (Some(Scheduled), E::Approved, Active, Provide),
            (Some(Scheduled), E::Revoked, Revoked, Remove),
            // Its approvals no longer count: waiting again (and timed out on the next look).
            (Some(Scheduled), E::PastDeadline, Pending, Remove),
            // Approved: the window is recorded, provisioning is retried within it.
            (Some(Approved), E::Approved, Active, Provide),
            (Some(Approved), E::PastExpiry, Expired, Remove),
            (Some(Approved), E::Revoked, Revoked, Remove),
            (Some(Approved), E::SealBroken, Revoked, Remove),
            // Executed: re-derived on every reconcile.
            (Some(Active), E::Nothing, Active, Provide),
            (Some(Active), E::PastExpiry, Expired, Remove),
            (Some(Active), E::Revoked, Revoked, Remove),
            (Some(Active), E::PolicyRefuses, Revoked, Remove),
            (Some(Active), E::DeniedByStage, Revoked, Remove),
            (Some(Active), E::Suspended, Suspended, Remove),
            (Some(Active), E::SealBroken, Revoked, Remove),
            (Some(Suspended), E::Nothing, Active, Provide),
            (Some(Suspended), E::Suspended, Suspended, Remove),
            (Some(Suspended), E::PastExpiry, Expired, Remove),
            // Terminal phases never change.
            (Some(Expired), E::Approved, Expired, Remove),
            (Some(Revoked), E::Approved, Revoked, Remove),
            (Some(Denied), E::Approved, Denied, Remove),
            (Some(TimedOut), E::Approved, TimedOut, Remove),
            (Some(Expired), E::SealBroken, Expired, Remove),
        ];
        for (phase, event, expected, provision) in table {
            let decision = run(*phase, *event);
            assert_eq!(
                (decision.status.phase, decision.provision),
                (Some(*expected), *provision),
                "{phase:?} × {event:?}"
            );
            if *provision == Provide {
                let expires = decision.status.window.as_ref().map(|w| w.expires_at.0);
                assert_eq!(
                    decision.wake_at, expires,
                    "{phase:?} × {event:?} wakes at expiry"
                );
            }
            if expected.is_terminal() && phase != &Some(*expected) {
                assert_eq!(
                    decision.wake_at, None,
                    "{phase:?} × {event:?}: nothing to wait for"
                );
            }
        }
    }

    #[test]
    fn a_converged_decision_is_identical_on_the_next_pass() {
        for event in [
            Event::Nothing,
            Event::Approved,
            Event::Held,
            Event::Unverified,
        ] {
            let first = run(None, event);
            let key = key();
            let again = decide::<Bare>(&Observation {
                extended_by: None,
                superseded_by: None,
                sealer: Sealer {
                    key: &key,
                    kind: "Bare",
                    uid: "uid",
                },
                annotations: &BTreeMap::from([(
                    "approve.gatehouse.dev/manager".to_string(),
                    "bob".to_string(),
                )])
                .into_iter()
                .filter(|_| !matches!(event, Event::Nothing | Event::Held))
                .collect(),
                parties: Parties {
                    requester: "alice",
                    filed_by: None,
                    subjects: &[],
                },
                unauthorized_decisions: &[],
                approvers: &crate::lifecycle::eligible::Approvers::nobody(),
                approvals_unverified: matches!(event, Event::Unverified).then_some("missing"),
                created: Some(at(0)),
                generation: Some(1),
                current: Some(&first.status),
                governed: Ok(governed(matches!(event, Event::Held))),
                suspension: None,
                facts: &(),
                now: at(180),
            });
            assert_eq!(again.status, first.status, "{event:?}");
        }
    }

    #[test]
    fn the_requester_never_approves_their_own() {
        let key = key();
        let annotations = BTreeMap::from([(
            "approve.gatehouse.dev/manager".to_string(),
            "alice".to_string(),
        )]);
        let decision = decide::<Bare>(&Observation {
            extended_by: None,
            superseded_by: None,
            sealer: Sealer {
                key: &key,
                kind: "Bare",
                uid: "uid",
            },
            annotations: &annotations,
            parties: Parties {
                requester: "alice",
                filed_by: None,
                subjects: &[],
            },
            unauthorized_decisions: &[],
            approvers: &crate::lifecycle::eligible::Approvers::nobody(),
            approvals_unverified: None,
            created: Some(at(0)),
            generation: Some(1),
            current: None,
            governed: Ok(governed(false)),
            suspension: None,
            facts: &(),
            now: at(10),
        });
        assert_eq!(decision.status.phase, Some(Phase::Pending));
        assert_eq!(decision.provision, Provision::Remove);
    }

    /// A manager stage, observed with `annotations`: whom to ask while it waits, nobody once it
    /// ended; the stage listed for admission either way.
    fn manager_stage(annotations: &[(&str, &str)]) -> Decision<Record> {
        let key = key();
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut governed = governed(false);
        governed.manager_stages = vec!["manager".into()];
        let approvers = Approvers {
            manager: eligible::Manager::Named("bob".into()),
            ..Approvers::nobody()
        };
        decide::<Bare>(&Observation {
            extended_by: None,
            superseded_by: None,
            sealer: Sealer {
                key: &key,
                kind: "Bare",
                uid: "uid",
            },
            annotations: &annotations,
            parties: Parties {
                requester: "alice",
                filed_by: None,
                subjects: &[],
            },
            unauthorized_decisions: &[],
            approvers: &approvers,
            approvals_unverified: None,
            created: Some(at(0)),
            generation: Some(1),
            current: None,
            governed: Ok(governed),
            suspension: None,
            facts: &(),
            now: at(10),
        })
    }

    #[test]
    fn a_waiting_stage_lists_whom_to_ask_and_an_ended_one_nobody() {
        let waiting = manager_stage(&[("approve.gatehouse.dev/manager", "mallory")]);
        assert_eq!(waiting.status.phase, Some(Phase::Pending));
        assert_eq!(waiting.status.manager_approvals, ["manager"]);
        assert_eq!(waiting.status.approvers.len(), 1);
        assert_eq!(waiting.status.approvers[0].manager.as_deref(), Some("bob"));
        assert!(
            waiting.status.approvals.is_empty(),
            "mallory is not the manager"
        );

        let denied = manager_stage(&[("deny.gatehouse.dev/manager", "bob")]);
        assert_eq!(denied.status.phase, Some(Phase::Denied));
        assert!(denied.status.approvers.is_empty());
        assert_eq!(denied.status.manager_approvals, ["manager"]);

        let approved = manager_stage(&[("approve.gatehouse.dev/manager", "bob")]);
        assert_eq!(approved.status.phase, Some(Phase::Active));
        assert!(approved.status.approvers.is_empty());
    }

    /// The bare kind approved by bob, observed at `now` with `current`, starting at `start`.
    fn scheduled(current: Option<&Record>, now: i64, start: Option<i64>) -> Decision<Record> {
        let key = key();
        let annotations = BTreeMap::from([(
            "approve.gatehouse.dev/manager".to_string(),
            "bob".to_string(),
        )]);
        let mut governed = governed(false);
        governed.start_at = start.map(at);
        decide::<Bare>(&Observation {
            extended_by: None,
            superseded_by: None,
            sealer: Sealer {
                key: &key,
                kind: "Bare",
                uid: "uid",
            },
            annotations: &annotations,
            parties: Parties {
                requester: "alice",
                filed_by: None,
                subjects: &[],
            },
            unauthorized_decisions: &[],
            approvers: &crate::lifecycle::eligible::Approvers::nobody(),
            approvals_unverified: None,
            created: Some(at(0)),
            generation: Some(1),
            current,
            governed: Ok(governed),
            suspension: None,
            facts: &(),
            now: at(now),
        })
    }

    #[test]
    fn approved_before_its_start_it_waits_then_runs_from_the_start_for_its_duration() {
        let waiting = scheduled(None, 10, Some(600));
        assert_eq!(
            (waiting.status.phase, waiting.provision, waiting.wake_at),
            (Some(Phase::Scheduled), Provision::Remove, Some(at(600)))
        );
        assert_eq!(waiting.status.window, None, "no window before the start");
        // The operator gets to it late: the window still starts at the start.
        let started = scheduled(Some(&waiting.status), 603, Some(600));
        let window = started.status.window.clone().expect("window");
        assert_eq!(
            (started.status.phase, started.provision),
            (Some(Phase::Active), Provision::Provide)
        );
        assert_eq!(window.activated_at, Time(at(600)));
        assert_eq!(window.expires_at, Time(at(600 + HOUR)));
        // Scheduled past the pending timeout: approved in time, so it still starts.
        let late = scheduled(Some(&waiting.status), 25 * HOUR, Some(25 * HOUR - 1));
        assert_eq!(late.status.phase, Some(Phase::Active));
    }

    #[test]
    fn approved_after_its_start_the_clock_starts_at_activation_never_earlier() {
        let decision = scheduled(None, 900, Some(600));
        let window = decision.status.window.expect("window");
        assert_eq!(decision.status.phase, Some(Phase::Active));
        assert_eq!(window.activated_at, Time(at(900)));
        assert_eq!(window.expires_at, Time(at(900 + HOUR)));
    }
}
