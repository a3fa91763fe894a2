//! Which notifications a reconcile sends, decided from the status before and after it, the same
//! for both kinds: an outbox in `status.notifications`, written with the status it tells of, so
//! that what was decided is sent at least once even across restarts. Delivery itself is the
//! controller's ([`crate::controller`]'s notifier); this module only appends and merges.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::duration;

pub mod payload;
use super::kind::{Record, Wording};
use crate::api::conditions::{self, READY, reason};
use crate::api::{
    Delivery, DeliveryState, NotificationEvent, NotificationRecord, NotificationTarget, Phase,
};

/// The most notifications a status keeps; the oldest settled ones go first.
pub const KEPT: usize = 32;

/// How long before a window ends `ExpiringSoon` goes out when the policy does not say.
pub const DEFAULT_EXPIRING_BEFORE: Duration = Duration::from_secs(3600);

/// What a policy says about notifications.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    pub targets: Vec<NotificationTarget>,
    /// `spec.notifyExpiringBefore`, or [`DEFAULT_EXPIRING_BEFORE`].
    pub expiring_before: Duration,
}

impl Settings {
    /// From a policy's `spec.notifications` and `spec.notifyExpiringBefore`; a lead time that
    /// does not parse (the schema refuses it) falls back to the default.
    pub fn new(targets: &[NotificationTarget], expiring_before: Option<&str>) -> Self {
        Self {
            targets: targets.to_vec(),
            expiring_before: expiring_before
                .and_then(|d| duration::parse(d).ok())
                .unwrap_or(DEFAULT_EXPIRING_BEFORE),
        }
    }
}

/// Whether approvers have decided by `phase`: approved (held, scheduled or provided), denied, or
/// changes requested.
fn decided(phase: Phase) -> bool {
    matches!(
        phase,
        Phase::Held
            | Phase::Scheduled
            | Phase::Approved
            | Phase::Active
            | Phase::Suspended
            | Phase::Denied
            | Phase::ChangesRequested
    )
}

/// Whether an `ExpiringSoon` was already sent for the window ending at `expires_at` (a window
/// whose end moves gets its own).
fn warned(record: &Record, expires_at: &Time) -> bool {
    record.notifications.iter().any(|n| {
        n.event == NotificationEvent::ExpiringSoon && n.expires_at.as_ref() == Some(expires_at)
    })
}

/// Appends to `after.notifications` what the change from `before` to `after` tells, at `now`,
/// one delivery per destination, and trims the list to [`KEPT`]. `uid` makes the ids unique.
pub fn append(
    wording: &Wording,
    uid: &str,
    before: Option<&Record>,
    after: &mut Record,
    settings: &Settings,
    now: Timestamp,
) {
    if settings.targets.is_empty() {
        return;
    }
    let phase_before = before.and_then(|b| b.phase);
    let Some(phase) = after.phase else { return };
    let mut events: Vec<(NotificationEvent, Option<String>)> = Vec::new();

    if phase == Phase::Pending {
        let waited_before: Vec<&str> = match before {
            Some(b) if b.phase == Some(Phase::Pending) => b
                .waiting_for
                .as_deref()
                .map(|w| w.split(',').collect())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        for stage in after.waiting_for.iter().flat_map(|w| w.split(',')) {
            if !waited_before.contains(&stage) {
                events.push((NotificationEvent::Waiting, Some(stage.to_string())));
            }
        }
    }
    let newly_decided =
        decided(phase) && !phase_before.is_some_and(|p| decided(p) || p.is_terminal());
    if newly_decided {
        events.push((NotificationEvent::Decided, None));
    }
    if phase == Phase::Active && phase_before != Some(Phase::Active) {
        events.push((NotificationEvent::Active, None));
    }
    if let Some(window) = &after.window
        && phase.is_running()
        && now >= duration::before(window.expires_at.0, settings.expiring_before)
        && now < window.expires_at.0
        && !warned(after, &window.expires_at)
    {
        events.push((NotificationEvent::ExpiringSoon, None));
    }
    if phase.is_terminal() && !phase_before.is_some_and(Phase::is_terminal) && !newly_decided {
        events.push((NotificationEvent::Ended, None));
    }
    let failed = |record: &Record| {
        conditions::find(&record.conditions, wording.provided_condition)
            .is_some_and(|c| c.reason == reason::PROVISIONING_FAILED)
    };
    if failed(after) && !before.is_some_and(failed) {
        events.push((NotificationEvent::ProvisioningFailed, None));
    }

    for (event, stage) in events {
        let record = notification(wording, uid, after, settings, event, stage, now);
        if !record.deliveries.is_empty() {
            after.notifications.push(record);
        }
    }
    trim(&mut after.notifications);
}

/// One notification of `event` about `after`, pending at every destination it goes to.
fn notification(
    wording: &Wording,
    uid: &str,
    after: &Record,
    settings: &Settings,
    event: NotificationEvent,
    stage: Option<String>,
    now: Timestamp,
) -> NotificationRecord {
    let expires_at = after.window.as_ref().map(|w| w.expires_at.clone());
    let ready = conditions::find(&after.conditions, READY).map(|c| c.message.clone());
    let message = match (event, &stage, &expires_at) {
        (NotificationEvent::Waiting, Some(stage), _) => {
            format!("waits for the {stage} {}", wording.decision)
        }
        (NotificationEvent::Active, _, Some(at)) => format!("{} until {}", wording.provided, at.0),
        (NotificationEvent::ExpiringSoon, _, Some(at)) => {
            format!("{} until {}; it ends then", wording.provided, at.0)
        }
        (NotificationEvent::ProvisioningFailed, _, _) => {
            conditions::find(&after.conditions, wording.provided_condition)
                .map(|c| c.message.clone())
                .unwrap_or_else(|| wording.failed.to_string())
        }
        // Approved: who approved; a denial or a request for changes says who and why in Ready.
        (NotificationEvent::Decided, _, _) if !after.phase.is_some_and(Phase::is_terminal) => {
            format!(
                "every stage {}: {}",
                wording.decided,
                decisions(after).join(", ")
            )
        }
        // How it ended (or was denied) and why, as its Ready condition says.
        _ => ready.unwrap_or_else(|| {
            after
                .phase
                .map(wording.phase_name)
                .unwrap_or_default()
                .to_string()
        }),
    };
    let deliveries = settings
        .targets
        .iter()
        .filter(|t| match (&event, &stage) {
            (NotificationEvent::Waiting, Some(stage)) => {
                t.roles.is_empty() || t.roles.contains(stage)
            }
            _ => true,
        })
        .map(|t| Delivery {
            destination: t.label(),
            state: DeliveryState::Pending,
            attempts: 0,
            last_error: None,
        })
        .collect();
    // `<uid>.`: the notifier forgets a deleted object's deliveries by that prefix.
    let id_stage = stage
        .as_deref()
        .map(|s| format!(".{s}"))
        .unwrap_or_default();
    NotificationRecord {
        id: format!("{uid}.{event}{id_stage}.{}", now.as_millisecond()),
        event,
        // Whole seconds, as the API server stores times: a body rendered from the status read
        // back (after a restart) is then the same as the first one.
        at: Time(Timestamp::from_second(now.as_second()).unwrap_or(now)),
        phase: after
            .phase
            .map(wording.phase_name)
            .unwrap_or_default()
            .to_string(),
        stage,
        approvers: decisions(after),
        expires_at,
        message,
        deliveries,
    }
}

/// Who decided so far, as `<user> (<role>)`.
fn decisions(record: &Record) -> Vec<String> {
    record
        .approvals
        .iter()
        .map(|a| format!("{} ({})", a.user, a.role))
        .collect()
}

/// Keeps at most [`KEPT`] notifications, dropping the oldest settled ones first; pending ones go
/// only when more than [`KEPT`] are pending.
fn trim(notifications: &mut Vec<NotificationRecord>) {
    while notifications.len() > KEPT {
        let oldest = notifications
            .iter()
            .position(NotificationRecord::settled)
            .unwrap_or(0);
        notifications.remove(oldest);
    }
}

/// When to look again so that `ExpiringSoon` goes out on time: the moment the lead time starts,
/// while it is still ahead and not yet sent.
pub fn wake_at(record: &Record, settings: &Settings, now: Timestamp) -> Option<Timestamp> {
    let window = record.window.as_ref()?;
    if settings.targets.is_empty()
        || !record.phase.is_some_and(Phase::is_running)
        || warned(record, &window.expires_at)
    {
        return None;
    }
    let at = duration::before(window.expires_at.0, settings.expiring_before);
    (at > now).then_some(at)
}

/// What a delivery reached, as the notifier reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Reached {
    pub state: DeliveryState,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Records in `notifications` what the notifier reports: `reached(id, destination)` is its
/// latest word on a delivery, if any. Only pending deliveries change: a settled one is final.
pub fn merge(
    notifications: &mut [NotificationRecord],
    targets: &[NotificationTarget],
    reached: impl Fn(&str, &str) -> Option<Reached>,
) {
    for notification in notifications {
        for delivery in &mut notification.deliveries {
            if delivery.state != DeliveryState::Pending {
                continue;
            }
            if !targets.iter().any(|t| t.label() == delivery.destination) {
                delivery.state = DeliveryState::Failed;
                delivery.last_error = Some(
                    "the destination is no longer in the policy's spec.notifications; not sent"
                        .into(),
                );
                continue;
            }
            if let Some(reached) = reached(&notification.id, &delivery.destination) {
                delivery.state = reached.state;
                delivery.attempts = reached.attempts;
                delivery.last_error = reached.last_error;
            }
        }
    }
}

#[cfg(test)]
mod tests;
