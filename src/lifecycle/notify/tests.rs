//! Which notifications each change of a status sends, and how delivery results are recorded.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::payload::{self, About};
use super::*;
use crate::api::common::{ApprovalRecord, Decision};
use crate::api::conditions::{ConditionUpdate, set_condition};
use crate::api::{NotificationFormat, NotificationSecretRef};
use crate::lifecycle::kind::RecordedWindow;

const WORDING: Wording = Wording {
    kind: "Thing",
    noun: "thing",
    policy_kind: "ThingPolicy",
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
    phase_name: |phase| match phase {
        Phase::Active => "Active",
        _ => "Other",
    },
};

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000 + second).expect("valid time")
}

fn target(name: &str, roles: &[&str]) -> NotificationTarget {
    NotificationTarget {
        name: Some(name.into()),
        url: format!("https://{name}.example/hook"),
        format: NotificationFormat::CloudEvents,
        secret_ref: NotificationSecretRef {
            name: "hmac".into(),
            key: None,
        },
        roles: roles.iter().map(|r| r.to_string()).collect(),
    }
}

fn settings() -> Settings {
    Settings {
        targets: vec![target("all", &[]), target("security", &["security"])],
        expiring_before: Duration::from_secs(600),
    }
}

fn pending(waiting: &str) -> Record {
    Record {
        phase: Some(Phase::Pending),
        waiting_for: Some(waiting.into()),
        ..Record::default()
    }
}

/// Active from second 0 to 3600.
fn active() -> Record {
    Record {
        phase: Some(Phase::Active),
        approvals: vec![ApprovalRecord {
            role: "manager".into(),
            user: "bob".into(),
            decision: Decision::Approved,
            reason: None,
            time: None,
        }],
        window: Some(RecordedWindow {
            activated_at: Time(at(0)),
            expires_at: Time(at(3600)),
            seal: None,
        }),
        ..Record::default()
    }
}

fn with_phase(mut record: Record, phase: Phase) -> Record {
    record.phase = Some(phase);
    record
}

/// The events appended by the change `before` → `after` at `now`.
fn events(before: Option<&Record>, mut after: Record, now: Timestamp) -> Vec<NotificationEvent> {
    append(&WORDING, "uid-1", before, &mut after, &settings(), now);
    after.notifications.iter().map(|n| n.event).collect()
}

use NotificationEvent::*;

#[test]
fn each_change_of_phase_tells_its_event_once() {
    let cases: Vec<(&str, Option<Record>, Record, Vec<NotificationEvent>)> = vec![
        ("filed", None, pending("manager"), vec![Waiting]),
        (
            "unchanged",
            Some(pending("manager")),
            pending("manager"),
            vec![],
        ),
        (
            "next stage",
            Some(pending("manager")),
            pending("security"),
            vec![Waiting],
        ),
        (
            "approved and provided at once",
            Some(pending("manager")),
            active(),
            vec![Decided, Active],
        ),
        (
            "approved, not provided yet",
            Some(pending("manager")),
            with_phase(active(), Phase::Approved),
            vec![Decided],
        ),
        (
            "provided after a retry",
            Some(with_phase(active(), Phase::Approved)),
            active(),
            vec![Active],
        ),
        (
            "denied: decided, not also ended",
            Some(pending("manager")),
            with_phase(Record::default(), Phase::Denied),
            vec![Decided],
        ),
        (
            "changes requested",
            Some(pending("manager")),
            with_phase(Record::default(), Phase::ChangesRequested),
            vec![Decided],
        ),
        (
            "timed out",
            Some(pending("manager")),
            with_phase(Record::default(), Phase::TimedOut),
            vec![Ended],
        ),
        (
            "expired",
            Some(active()),
            with_phase(active(), Phase::Expired),
            vec![Ended],
        ),
        (
            "revoked",
            Some(active()),
            with_phase(active(), Phase::Revoked),
            vec![Ended],
        ),
        (
            "ended stays ended",
            Some(with_phase(active(), Phase::Expired)),
            with_phase(active(), Phase::Expired),
            vec![],
        ),
        ("still active", Some(active()), active(), vec![]),
    ];
    for (case, before, after, expected) in cases {
        assert_eq!(events(before.as_ref(), after, at(10)), expected, "{case}");
    }
}

#[test]
fn expiring_soon_goes_out_once_when_the_lead_time_starts() {
    assert_eq!(
        events(Some(&active()), active(), at(2999)),
        vec![],
        "before the lead time"
    );
    let mut after = active();
    append(
        &WORDING,
        "uid-1",
        Some(&active()),
        &mut after,
        &settings(),
        at(3000),
    );
    assert_eq!(after.notifications.len(), 1);
    assert_eq!(after.notifications[0].event, ExpiringSoon);
    assert_eq!(after.notifications[0].expires_at, Some(Time(at(3600))));
    let sent = after.clone();
    append(
        &WORDING,
        "uid-1",
        Some(&sent),
        &mut after,
        &settings(),
        at(3100),
    );
    assert_eq!(after.notifications.len(), 1, "sent once per window");
    assert_eq!(
        wake_at(&sent, &settings(), at(3100)),
        None,
        "nothing to wake for once sent"
    );
    assert_eq!(
        wake_at(&active(), &settings(), at(10)),
        Some(at(3000)),
        "the reconcile wakes when the lead time starts"
    );
    let mut extended = sent.clone();
    if let Some(window) = &mut extended.window {
        window.expires_at = Time(at(7200));
    }
    assert_eq!(
        wake_at(&extended, &settings(), at(3100)),
        Some(at(6600)),
        "a window whose end moved is warned of again"
    );
    assert_eq!(
        events(Some(&active()), active(), at(3600)),
        vec![],
        "not once the window is over"
    );
}

#[test]
fn a_stage_is_told_only_to_its_destinations_and_every_other_event_to_all() {
    let mut after = pending("manager,security");
    append(&WORDING, "uid-1", None, &mut after, &settings(), at(1));
    let destinations: Vec<(Option<&str>, Vec<&str>)> = after
        .notifications
        .iter()
        .map(|n| {
            (
                n.stage.as_deref(),
                n.deliveries
                    .iter()
                    .map(|d| d.destination.as_str())
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        destinations,
        vec![
            (Some("manager"), vec!["all"]),
            (Some("security"), vec!["all", "security"])
        ]
    );
    let mut ended = with_phase(active(), Phase::Expired);
    append(
        &WORDING,
        "uid-1",
        Some(&active()),
        &mut ended,
        &settings(),
        at(3600),
    );
    assert_eq!(ended.notifications[0].deliveries.len(), 2);
    assert!(
        ended.notifications[0]
            .deliveries
            .iter()
            .all(|d| d.state == DeliveryState::Pending && d.attempts == 0)
    );
}

#[test]
fn ids_are_unique_per_object_event_and_time() {
    let mut a = active();
    append(
        &WORDING,
        "uid-1",
        Some(&pending("manager")),
        &mut a,
        &settings(),
        at(1),
    );
    let ids: Vec<&str> = a.notifications.iter().map(|n| n.id.as_str()).collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| id.starts_with("uid-1.")), "{ids:?}");
    let mut b = active();
    append(
        &WORDING,
        "uid-2",
        Some(&pending("manager")),
        &mut b,
        &settings(),
        at(1),
    );
    assert_ne!(a.notifications[0].id, b.notifications[0].id);
}

#[test]
fn a_policy_without_destinations_sends_nothing() {
    let mut after = active();
    append(
        &WORDING,
        "uid-1",
        None,
        &mut after,
        &Settings::default(),
        at(3500),
    );
    assert!(after.notifications.is_empty());
    assert_eq!(wake_at(&active(), &Settings::default(), at(10)), None);
}

#[test]
fn a_provisioning_failure_is_told_when_it_starts() {
    let mut failed = with_phase(active(), Phase::Approved);
    set_condition(
        &mut failed.conditions,
        ConditionUpdate::new(
            "Provided",
            false,
            reason::PROVISIONING_FAILED,
            "failed: no rights",
        ),
        None,
        Time(at(5)),
    );
    assert_eq!(
        events(
            Some(&with_phase(active(), Phase::Approved)),
            failed.clone(),
            at(5)
        ),
        vec![ProvisioningFailed]
    );
    assert_eq!(
        events(Some(&failed), failed.clone(), at(6)),
        vec![],
        "not again while retried"
    );
}

#[test]
fn the_list_keeps_pending_ones_and_drops_the_oldest_settled() {
    let mut record = active();
    for second in 0..40 {
        let mut next = with_phase(active(), Phase::Approved);
        next.notifications = std::mem::take(&mut record.notifications);
        append(
            &WORDING,
            "uid",
            Some(&next.clone()),
            &mut next,
            &settings(),
            at(second),
        );
        let mut after = active();
        after.notifications = next.notifications;
        append(
            &WORDING,
            "uid",
            Some(&with_phase(active(), Phase::Approved)),
            &mut after,
            &settings(),
            at(second),
        );
        if second == 0 {
            for d in &mut after.notifications[0].deliveries {
                d.state = DeliveryState::Delivered;
            }
        }
        record = after;
    }
    assert_eq!(record.notifications.len(), KEPT);
    assert!(
        record.notifications.iter().all(|n| !n.settled()),
        "the settled one went first"
    );
}

#[test]
fn merging_records_what_the_notifier_reached_and_never_reopens_a_settled_delivery() {
    let mut after = pending("manager");
    append(&WORDING, "uid-1", None, &mut after, &settings(), at(1));
    let id = after.notifications[0].id.clone();
    let reached = |i: &str, destination: &str| {
        (i == id && destination == "all").then_some(Reached {
            state: DeliveryState::Delivered,
            attempts: 2,
            last_error: None,
        })
    };
    merge(&mut after.notifications, &settings().targets, reached);
    let delivery = &after.notifications[0].deliveries[0];
    assert_eq!(
        (delivery.state, delivery.attempts),
        (DeliveryState::Delivered, 2)
    );
    merge(&mut after.notifications, &settings().targets, |_, _| {
        Some(Reached {
            state: DeliveryState::Pending,
            attempts: 9,
            last_error: None,
        })
    });
    assert_eq!(
        after.notifications[0].deliveries[0].state,
        DeliveryState::Delivered
    );

    let mut orphaned = pending("manager");
    append(&WORDING, "uid-1", None, &mut orphaned, &settings(), at(1));
    merge(&mut orphaned.notifications, &[], |_, _| None);
    let delivery = &orphaned.notifications[0].deliveries[0];
    assert_eq!(delivery.state, DeliveryState::Failed);
    assert!(
        delivery
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("no longer"),
        "{delivery:?}"
    );
}

#[test]
fn a_cloud_event_carries_the_contract_fields_and_a_slack_message_its_text() {
    let mut after = active();
    append(
        &WORDING,
        "uid-1",
        Some(&pending("manager")),
        &mut after,
        &settings(),
        at(1),
    );
    let about = About {
        kind: "AccessRequest".into(),
        plural: "accessrequests".into(),
        version: "v1alpha1".into(),
        namespace: "payments".into(),
        name: "alice-db".into(),
        requester: "alice".into(),
    };
    let active_event = &after.notifications[1];
    let event: serde_json::Value = serde_json::from_slice(&payload::body(
        NotificationFormat::CloudEvents,
        &about,
        active_event,
    ))
    .expect("JSON");
    assert_eq!(event["specversion"], "1.0");
    assert_eq!(event["type"], "dev.gatehouse.accessrequest.active");
    assert_eq!(event["id"], active_event.id.as_str());
    assert_eq!(
        event["source"],
        "/apis/gatehouse.dev/v1alpha1/namespaces/payments/accessrequests"
    );
    assert_eq!(event["subject"], "alice-db");
    assert_eq!(event["datacontenttype"], "application/json");
    assert_eq!(event["time"], at(1).to_string());
    let mut late = active();
    let fraction = at(1)
        .checked_add(Duration::from_millis(250))
        .expect("valid");
    append(
        &WORDING,
        "uid-1",
        Some(&pending("manager")),
        &mut late,
        &settings(),
        fraction,
    );
    assert_eq!(
        late.notifications[0].at,
        Time(at(1)),
        "whole seconds, as status stores them"
    );
    assert_eq!(event["data"]["requester"], "alice");
    assert_eq!(event["data"]["phase"], "Active");
    assert_eq!(event["data"]["approvers"][0], "bob (manager)");
    assert_eq!(event["data"]["expiresAt"], at(3600).to_string());
    assert_eq!(
        after.notifications[0].message,
        "every stage approved: bob (manager)"
    );
    let slack: serde_json::Value = serde_json::from_slice(&payload::body(
        NotificationFormat::Slack,
        &about,
        active_event,
    ))
    .expect("JSON");
    let text = slack["text"].as_str().expect("text");
    assert_eq!(
        text,
        format!(
            "AccessRequest payments/alice-db (requested by alice): provided until {}",
            at(3600)
        )
    );
}

#[test]
fn the_signature_is_hmac_sha256_of_the_body() {
    // RFC 4231, test case 2.
    assert_eq!(
        payload::signature(b"Jefe", b"what do ya want for nothing?"),
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn a_destination_is_shown_by_name_or_without_its_path_and_credentials() {
    let mut slack = target("x", &[]);
    slack.name = None;
    slack.format = NotificationFormat::Slack;
    slack.url = "https://user:secret@hooks.slack.com/services/T000/B000/XXXX?x=1".into();
    assert_eq!(slack.label(), "Slack https://hooks.slack.com");
    assert_eq!(target("ops", &[]).label(), "ops");
}
