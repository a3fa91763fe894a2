//! What acting on a decision changes about the status written for it, decided purely from the
//! decision and what acting found: a window that what is provided carries before the status
//! records it, and a provisioning that failed. One rule for every kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::activation::Sealer;
use super::kind::{Kind, Record, RecordedWindow};
use crate::api::Phase;
use crate::api::conditions::{self, READY, reason};

/// The status to decide from when what an object provides carries a window its status does not
/// record: the operator opened that window and provided under it, then stopped before the status
/// said so (a restart, or a status write that lost a race). Deciding from it keeps the end where
/// it was; a new window would move it. Only a window sealed for this very object counts, and only
/// while its status records none and claims nothing was provided yet; should objects disagree, the earliest end
/// wins. `None`: decide from the status as it is.
pub fn adopt_carried<K: Kind>(
    current: Option<&K::Status>,
    carried: impl IntoIterator<Item = RecordedWindow>,
    sealer: &Sealer,
    now: Timestamp,
) -> Option<K::Status> {
    let (mut record, details) = K::split(current.cloned().unwrap_or_default());
    // A running phase without a window is a status someone else wrote: decided as tampering.
    if record.window.is_some()
        || record
            .phase
            .is_some_and(|phase| phase.is_terminal() || phase.is_running())
    {
        return None;
    }
    let window = carried
        .into_iter()
        .filter(|w| {
            sealer
                .check(&w.activated_at, &w.expires_at, w.seal.as_deref(), now)
                .is_ok()
        })
        .min_by_key(|w| w.expires_at.0)?;
    record.window = Some(window);
    record.phase = Some(Phase::Approved);
    Some(K::join(record, details))
}

/// Approved, but what it grants could not be provided: the conditions name the error and its fix.
/// One never provided goes back to `Approved`, keeping its recorded window (the retry provides
/// within it, and the end never moves); one provided before keeps its phase and record. Condition
/// times are those of the last written status, so that retries failing the same way write nothing.
pub fn provisioning_failed<K: Kind>(
    decided: K::Status,
    previous: Option<&K::Status>,
    error: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> K::Status {
    let (mut record, mut details) = K::split(decided);
    let previous = previous.map(|status| K::split(status.clone()));
    match previous {
        Some((before, before_details))
            if before.phase.is_some_and(Phase::is_running) && before.window.is_some() =>
        {
            record.phase = before.phase;
            record.window = before.window;
            details = before_details;
            restore_provided::<K>(&mut record, &before.conditions);
        }
        before => {
            record.phase = Some(Phase::Approved);
            let conditions = before.map(|(b, _)| b.conditions).unwrap_or_default();
            restore_provided::<K>(&mut record, &conditions);
        }
    }
    conditions::set_conditions(
        &mut record.conditions,
        &[K::WORDING.provided_condition, READY],
        false,
        reason::PROVISIONING_FAILED,
        &format!("{}: {error}", K::WORDING.failed),
        generation,
        Time(now),
    );
    K::join(record, details)
}

fn restore_provided<K: Kind>(
    record: &mut Record,
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) {
    conditions::restore(
        &mut record.conditions,
        previous,
        &[K::WORDING.provided_condition, READY],
    );
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::access::kind::AccessKind;
    use crate::api::EXPIRES_AT_ANNOTATION;
    use crate::api::{AccessPhase, AccessRequestStatus};
    use crate::lifecycle::activation::SealKey;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).expect("valid")
    }

    fn status(phase: AccessPhase) -> AccessRequestStatus {
        AccessRequestStatus {
            phase: Some(phase),
            ..Default::default()
        }
    }

    /// The window `sealer` opens at `start` for an hour, as a provided object carries it.
    fn carried(sealer: &Sealer, start: i64) -> RecordedWindow {
        let opened = sealer.open(at(start), Duration::from_secs(3600));
        let window = RecordedWindow {
            activated_at: opened.activated_at,
            expires_at: opened.expires_at,
            seal: Some(opened.seal),
        };
        let annotations = window
            .annotations()
            .into_iter()
            .map(|(key, value)| (key.to_string(), value))
            .collect();
        RecordedWindow::carried(&annotations).expect("the annotations carry the window back")
    }

    #[test]
    fn a_carried_window_is_decided_from_as_if_the_status_recorded_it() {
        let key = SealKey::from_bytes(&[5; 32]).expect("32 bytes");
        let sealer = Sealer {
            key: &key,
            kind: "AccessRequest",
            uid: "u-1",
        };
        let window = carried(&sealer, 0);
        let adopted = adopt_carried::<AccessKind>(
            Some(&status(AccessPhase::Pending)),
            [carried(&sealer, 30), window.clone()],
            &sealer,
            at(40),
        )
        .expect("a window the operator sealed for this request");
        let (record, _) = AccessKind::split(adopted);
        assert_eq!(record.phase, Some(Phase::Approved));
        assert_eq!(record.window, Some(window), "the earliest end wins");
        assert!(
            adopt_carried::<AccessKind>(None, [carried(&sealer, 0)], &sealer, at(40)).is_some(),
            "a request whose status was never written"
        );
    }

    #[test]
    fn only_a_window_sealed_for_this_object_is_adopted_and_only_before_it_is_recorded() {
        let key = SealKey::from_bytes(&[5; 32]).expect("32 bytes");
        let sealer = Sealer {
            key: &key,
            kind: "AccessRequest",
            uid: "u-1",
        };
        let other_object = Sealer {
            uid: "u-2",
            ..sealer
        };
        let pending = status(AccessPhase::Pending);
        for (case, carried_window) in [
            ("sealed for another object", carried(&other_object, 0)),
            ("moved by someone", {
                let mut moved = carried(&sealer, 0);
                moved.expires_at = Time(at(7 * 24 * 3600));
                moved
            }),
            ("without a seal", {
                let mut unsealed = carried(&sealer, 0);
                unsealed.seal = None;
                unsealed
            }),
        ] {
            assert_eq!(
                adopt_carried::<AccessKind>(Some(&pending), [carried_window], &sealer, at(40)),
                None,
                "{case}"
            );
        }
        let mut recorded = pending.clone();
        let (mut record, details) = AccessKind::split(recorded);
        record.window = Some(carried(&sealer, 0));
        recorded = AccessKind::join(record, details);
        for (case, current) in [
            ("a window recorded already", recorded),
            ("an ended request", status(AccessPhase::Expired)),
            (
                "an Active status without a window",
                status(AccessPhase::Active),
            ),
        ] {
            assert_eq!(
                adopt_carried::<AccessKind>(
                    Some(&current),
                    [carried(&sealer, 30)],
                    &sealer,
                    at(40)
                ),
                None,
                "{case}"
            );
        }
        let mut partial = BTreeMap::new();
        partial.insert(EXPIRES_AT_ANNOTATION.to_string(), at(3600).to_string());
        assert_eq!(
            RecordedWindow::carried(&partial),
            None,
            "no start, no window"
        );
    }
}
