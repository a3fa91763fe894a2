//! What acting on a decision changes about the status written for it, decided purely from the
//! decision and what acting found: the window recorded before anything is provided, and a
//! provisioning that failed. One rule for every kind.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::kind::{Kind, Record};
use crate::api::Phase;
use crate::api::conditions::{self, READY, reason};

/// The status to record before anything is provided when the decision opens a window: the
/// decided status as phase `Approved`, its `provided` and `Ready` conditions as they were (they say
/// Active only once what is provided exists). `None` when the window was recorded already, so
/// that access never exists without its end on record.
pub fn opening<K: Kind>(decided: &K::Status, current: Option<&K::Status>) -> Option<K::Status> {
    let (mut record, details) = K::split(decided.clone());
    let before = current.map(|status| K::split(status.clone()).0);
    let window = |record: &Record| {
        record
            .window
            .as_ref()
            .map(|w| (w.activated_at.clone(), w.expires_at.clone()))
    };
    if record.window.is_none() || before.as_ref().and_then(window) == window(&record) {
        return None;
    }
    record.phase = Some(Phase::Approved);
    conditions::restore(
        &mut record.conditions,
        before
            .as_ref()
            .map(|b| b.conditions.as_slice())
            .unwrap_or_default(),
        &[K::WORDING.provided_condition, READY],
    );
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
