//! The record an object leaves behind ([`AccessRecordSpec`]), derived purely from its status and
//! what its kind says about it, so that it can be written again at any time (after a restart, or
//! when the object is deleted) and always says the same. One derivation for both kinds.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::duration::after;
use super::kind::Kind;
use crate::api::common::{Decision, Subject};
use crate::api::conditions::{self, ACCESS_REMOVED, READY, REMOVED, bounded, reason};
use crate::api::{
    AccessRecordSpec, Finding, Outcome, Phase, RecordedEnd, RecordedObject, RecordedPolicy,
    RecordedRemoval, RecordedShare,
};

/// The longest message a record keeps of a condition; the object's Events and the exported audit
/// line carry the rest.
pub const MESSAGE_LIMIT: usize = 1024;

/// What a kind says about its object for the record.
pub struct Facts {
    pub object: RecordedObject,
    pub requester: String,
    pub filed_by: Option<String>,
    pub subjects: Vec<Subject>,
    pub what: String,
    pub why: String,
    pub share: Option<RecordedShare>,
    pub findings: Vec<Finding>,
    /// The governing policy's generation now, if it still exists.
    pub policy_generation: Option<i64>,
    /// Who revoked it (`revoke.gatehouse.dev/by`), if anyone.
    pub revoked_by: Option<String>,
    /// When it was deleted, if it is being deleted: an end of its own.
    pub deleted_at: Option<Timestamp>,
}

/// The record of an object in `status`, or `None` while it reached no decision (nobody decided
/// and it never provided anything: it leaves no evidence to keep). `retention` counts from the end.
pub fn record<K: Kind>(
    status: Option<&K::Status>,
    facts: Facts,
    retention: Duration,
) -> Option<AccessRecordSpec> {
    let record = status.map(|s| K::split(s.clone()).0).unwrap_or_default();
    let phase = record.phase;
    let decided = !record.approvals.is_empty()
        || phase.is_some_and(|p| !matches!(p, Phase::Pending | Phase::Held | Phase::Failed));
    if !decided {
        return None;
    }
    let ready = conditions::find(&record.conditions, READY);
    let terminal = phase.is_some_and(Phase::is_terminal);
    let outcome = match phase {
        Some(Phase::Approved) if facts.deleted_at.is_none() => Outcome::Approved,
        Some(Phase::Active) if facts.deleted_at.is_none() => Outcome::Active,
        Some(Phase::Suspended) if facts.deleted_at.is_none() => Outcome::Suspended,
        Some(Phase::Expired) => Outcome::Expired,
        Some(Phase::Revoked) => Outcome::Revoked,
        Some(Phase::Denied) => Outcome::Denied,
        Some(Phase::TimedOut) => Outcome::TimedOut,
        _ if facts.deleted_at.is_some() => Outcome::Deleted,
        // Decided by someone, but not (or no longer) fitting a policy: still waiting.
        _ => Outcome::Approved,
    };
    let denied_by = record
        .approvals
        .iter()
        .find(|a| a.decision == Decision::Denied)
        .map(|a| a.user.clone());
    let end = if terminal {
        ready.map(|ready| RecordedEnd {
            at: ready.last_transition_time.clone(),
            reason: ready.reason.clone(),
            by: match ready.reason.as_str() {
                reason::REVOKED => facts.revoked_by.clone(),
                reason::DENIED => denied_by,
                _ => None,
            },
            message: bounded(&ready.message, MESSAGE_LIMIT),
        })
    } else {
        facts.deleted_at.map(|at| RecordedEnd {
            at: Time(at),
            reason: "Deleted".into(),
            by: None,
            message: format!(
                "the {} was deleted; what it provided was removed first",
                K::WORDING.noun
            ),
        })
    };
    let removal_failed =
        conditions::find(&record.conditions, REMOVED).is_some_and(|c| c.status == "False");
    let removal = match &end {
        Some(end) if !removal_failed => Some(RecordedRemoval {
            at: end.at.clone(),
            verified: conditions::find(&record.conditions, ACCESS_REMOVED)
                .map(|c| bounded(&c.message, MESSAGE_LIMIT))
                .unwrap_or_else(|| {
                    "every object it created was deleted and read back as gone".to_string()
                }),
        }),
        _ => None,
    };
    let retain_until = end.as_ref().map(|end| Time(after(end.at.0, retention)));
    Some(AccessRecordSpec {
        object: facts.object,
        requester: facts.requester,
        filed_by: facts.filed_by,
        subjects: facts.subjects,
        what: facts.what,
        why: bounded(&facts.why, MESSAGE_LIMIT),
        share: facts.share,
        policy: record.policy.map(|name| RecordedPolicy {
            name,
            generation: facts.policy_generation,
        }),
        decisions: record.approvals,
        findings: facts.findings,
        activated_at: record.window.as_ref().map(|w| w.activated_at.clone()),
        expires_at: record.window.as_ref().map(|w| w.expires_at.clone()),
        outcome,
        complete: end.is_some() && removal.is_some(),
        end,
        removal,
        retain_until,
    })
}
