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
    /// How long the governing policy asks the record to be kept, if it asks.
    pub policy_retention: Option<Duration>,
    /// Who revoked it (`revoke.gatehouse.dev/by`), if anyone.
    pub revoked_by: Option<String>,
    /// When it was deleted, if it is being deleted: an end of its own.
    pub deleted_at: Option<Timestamp>,
}

/// The record of an object in `status`, or `None` while it reached no decision (nobody decided
/// and it never provided anything: it leaves no evidence to keep). `retention` counts from the end,
/// or the policy's retention when that is longer.
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
        Some(Phase::Scheduled) if facts.deleted_at.is_none() => Outcome::Scheduled,
        Some(Phase::Approved) if facts.deleted_at.is_none() => Outcome::Approved,
        Some(Phase::Active) if facts.deleted_at.is_none() => Outcome::Active,
        Some(Phase::Suspended) if facts.deleted_at.is_none() => Outcome::Suspended,
        Some(Phase::Expired) => Outcome::Expired,
        Some(Phase::Revoked) => Outcome::Revoked,
        Some(Phase::Denied) => Outcome::Denied,
        Some(Phase::ChangesRequested) => Outcome::ChangesRequested,
        Some(Phase::TimedOut) => Outcome::TimedOut,
        _ if facts.deleted_at.is_some() => Outcome::Deleted,
        // Decided by someone, but not (or no longer) fitting a policy: still waiting.
        _ => Outcome::Approved,
    };
    let denied_by = record
        .approvals
        .iter()
        .find(|a| a.decision != Decision::Approved)
        .map(|a| a.user.clone());
    let end = if terminal {
        ready.map(|ready| RecordedEnd {
            at: ready.last_transition_time.clone(),
            reason: ready.reason.clone(),
            by: match ready.reason.as_str() {
                reason::REVOKED => facts.revoked_by.clone(),
                reason::DENIED | reason::CHANGES_REQUESTED => denied_by,
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
    let retention = facts
        .policy_retention
        .map_or(retention, |asked| asked.max(retention));
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;
    use crate::access::kind::AccessKind;
    use crate::api::common::{ApprovalRecord, SubjectKind};
    use crate::api::{AccessPhase, AccessRequestStatus, BindingRef, Grant};

    const DAY: u64 = 24 * 3600;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000 + second).expect("valid"))
    }

    fn facts() -> Facts {
        Facts {
            object: RecordedObject {
                kind: "AccessRequest".into(),
                namespace: "payments".into(),
                name: "alice-read".into(),
                uid: "uid-1".into(),
            },
            requester: "alice".into(),
            filed_by: None,
            subjects: vec![Subject {
                kind: SubjectKind::User,
                name: "alice".into(),
                namespace: None,
            }],
            what: "ClusterRole/db-reader in payments".into(),
            why: "OPS-1".into(),
            share: None,
            findings: vec![],
            policy_generation: Some(3),
            policy_retention: None,
            revoked_by: None,
            deleted_at: None,
        }
    }

    fn decision(user: &str, decision: Decision) -> ApprovalRecord {
        ApprovalRecord {
            role: "manager".into(),
            user: user.into(),
            decision,
            reason: None,
            time: Some(at(5)),
        }
    }

    fn ready(reason: &str, message: &str, since: i64) -> Condition {
        Condition {
            type_: READY.into(),
            status: "False".into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: at(since),
        }
    }

    fn status(phase: AccessPhase) -> AccessRequestStatus {
        AccessRequestStatus {
            phase: Some(phase),
            policy: Some("payments-db".into()),
            approvals: vec![decision("bob", Decision::Approved)],
            grant: Some(Grant {
                bindings: vec![BindingRef {
                    kind: "RoleBinding".into(),
                    namespace: Some("payments".into()),
                    name: "gatehouse.payments.alice-read".into(),
                }],
                activated_at: at(10),
                expires_at: at(3610),
                seal: Some("hmac-sha256:00".into()),
            }),
            ..Default::default()
        }
    }

    fn recorded(status: Option<&AccessRequestStatus>, facts: Facts) -> Option<AccessRecordSpec> {
        record::<AccessKind>(status, facts, Duration::from_secs(400 * DAY))
    }

    #[test]
    fn nothing_is_recorded_before_a_decision() {
        let pending = AccessRequestStatus {
            phase: Some(AccessPhase::Pending),
            ..Default::default()
        };
        assert_eq!(recorded(Some(&pending), facts()), None);
        assert_eq!(recorded(None, facts()), None);
        let deleted_undecided = Facts {
            deleted_at: Some(at(50).0),
            ..facts()
        };
        assert_eq!(recorded(Some(&pending), deleted_undecided), None);
    }

    #[test]
    fn an_active_grant_is_recorded_open_then_complete_once_expired() {
        let active = recorded(Some(&status(AccessPhase::Active)), facts()).expect("recorded");
        assert_eq!(active.outcome, Outcome::Active);
        assert_eq!((active.end, active.complete), (None, false));
        assert_eq!(active.activated_at, Some(at(10)));
        assert_eq!(
            active.policy,
            Some(RecordedPolicy {
                name: "payments-db".into(),
                generation: Some(3)
            })
        );

        let mut expired = status(AccessPhase::Expired);
        expired.conditions = vec![ready(reason::EXPIRED, "access expired", 3610)];
        let done = recorded(Some(&expired), facts()).expect("recorded");
        assert_eq!(done.outcome, Outcome::Expired);
        assert!(done.complete);
        assert_eq!(done.end.as_ref().map(|e| e.at.clone()), Some(at(3610)));
        assert_eq!(
            done.retain_until.map(|t| t.0.as_second()),
            Some(at(3610).0.as_second() + (400 * DAY) as i64)
        );
    }

    #[test]
    fn who_ended_it_is_named_and_a_failed_removal_keeps_it_open() {
        let mut denied = status(AccessPhase::Denied);
        denied.grant = None;
        denied.approvals = vec![decision("carol", Decision::Denied)];
        denied.conditions = vec![ready(reason::DENIED, "denied by carol as manager", 20)];
        let record = recorded(Some(&denied), facts()).expect("recorded");
        assert_eq!(record.end.and_then(|e| e.by).as_deref(), Some("carol"));

        let mut revoked = status(AccessPhase::Revoked);
        revoked.conditions = vec![
            ready(reason::REVOKED, "access revoked by dave", 30),
            Condition {
                type_: REMOVED.into(),
                status: "False".into(),
                reason: reason::REMOVAL_FAILED.into(),
                message: "held by finalizers".into(),
                observed_generation: Some(1),
                last_transition_time: at(30),
            },
        ];
        let record = recorded(
            Some(&revoked),
            Facts {
                revoked_by: Some("dave".into()),
                ..facts()
            },
        )
        .expect("recorded");
        assert_eq!(
            record.end.as_ref().and_then(|e| e.by.as_deref()),
            Some("dave")
        );
        assert_eq!(record.removal, None, "not proven gone yet");
        assert!(!record.complete);
    }

    #[test]
    fn a_deleted_open_object_ends_as_deleted_and_a_policy_may_keep_it_longer() {
        let facts = Facts {
            deleted_at: Some(at(100).0),
            policy_retention: Some(Duration::from_secs(3650 * DAY)),
            ..facts()
        };
        let record = recorded(Some(&status(AccessPhase::Active)), facts).expect("recorded");
        assert_eq!(record.outcome, Outcome::Deleted);
        assert!(record.complete);
        assert_eq!(
            record.retain_until.map(|t| t.0.as_second()),
            Some(at(100).0.as_second() + (3650 * DAY) as i64),
            "the policy's longer retention wins"
        );
    }
}
