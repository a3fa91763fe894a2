//! Notifications as real users see them: a receiver started here on 127.0.0.1 gets every step of
//! a request, signed, in order, at least once (its first answer is a 500, so the operator must
//! retry), as CloudEvents and as Slack messages; a share's steps too; and a dead endpoint or a
//! missing HMAC key delays nothing: access still expires on time, and status says why the
//! notifications failed.

use std::time::Duration;

use gatehouse::api::{
    AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement, DeliveryState,
    NotificationRecord, SharingPhase,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::receiver::{Receiver, events_about, expected_signature, hmac_secret, types};
use crate::support;

const ROLE: &str = "gatehouse-e2e-notify-reader";

/// Sets the notification fields of the AccessPolicy `name`, as its cluster admin would.
async fn notify_from_policy(admin: &Client, name: &str, notifications: Value, lead: &str) {
    Api::<AccessPolicy>::all(admin.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": {
                "notifications": notifications, "notifyExpiringBefore": lead } })),
        )
        .await
        .expect("the policy takes notifications");
}

fn notifications(request: &AccessRequest) -> Vec<NotificationRecord> {
    request
        .status
        .as_ref()
        .map(|s| s.notifications.clone())
        .unwrap_or_default()
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_request_notifies_every_step_signed_in_order_and_retries_a_failed_delivery() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "notify", ROLE).await;
    let key = "e2e-hmac-key-request";
    let secret = hmac_secret(&admin, key).await;
    let receiver = Receiver::start(&["/events"]).await;
    notify_from_policy(
        &admin,
        &ns,
        json!([
            { "name": "audit-events", "url": receiver.url("/events"), "format": "CloudEvents",
              "secretRef": { "name": secret } },
            { "url": receiver.url("/slack"), "format": "Slack", "secretRef": { "name": secret } }
        ]),
        "10s",
    )
    .await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    support::file_request(&alice, &ns, "short", ROLE, "20s", "INC-7 check a queue").await;
    support::wait_for_stages(&alice, "short").await;
    support::annotate(&bob, "short", &[("approve.gatehouse.dev/manager", "bob")]).await;
    let active = support::wait_until(&alice, "short", "Active", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    let expires_at = active
        .status
        .and_then(|s| s.grant)
        .expect("a grant")
        .expires_at
        .0;
    support::wait_until(&alice, "short", "Expired", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Expired)
    })
    .await;

    let received = receiver
        .wait("/events", "the ended event", |got| {
            types(&events_about(got, "short")).contains(&"dev.gatehouse.accessrequest.ended".into())
        })
        .await;
    for post in receiver.at("/events").iter().chain(&receiver.at("/slack")) {
        assert_eq!(
            post.signature.as_deref(),
            Some(expected_signature(key.as_bytes(), &post.body).as_str()),
            "every body is signed with the key: {post:?}"
        );
    }
    let events = events_about(&received, "short");
    eprintln!("e2e: CloudEvents received: {events:#?}");
    assert_eq!(
        types(&events),
        ["waiting", "decided", "active", "expiring-soon", "ended"]
            .map(|t| format!("dev.gatehouse.accessrequest.{t}")),
        "each step once, in order"
    );
    assert_eq!(
        received[0].json()["id"],
        received[1].json()["id"],
        "the first answer was a 500: the same event (same id) was sent again"
    );
    assert!(
        received
            .iter()
            .all(|r| r.content_type.as_deref()
                == Some("application/cloudevents+json; charset=utf-8"))
    );
    for event in &events {
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(
            event["source"],
            format!("/apis/gatehouse.dev/v1alpha1/namespaces/{ns}/accessrequests")
        );
        assert_eq!(event["datacontenttype"], "application/json");
        assert!(
            event["time"]
                .as_str()
                .is_some_and(|t| t.parse::<Timestamp>().is_ok()),
            "{event}"
        );
        assert_eq!(event["data"]["requester"], "alice");
        assert_eq!(event["data"]["namespace"], ns.as_str());
    }
    assert_eq!(events[0]["data"]["stage"], "manager");
    assert_eq!(events[1]["data"]["approvers"], json!(["bob (manager)"]));
    assert_eq!(events[2]["data"]["phase"], "Active");
    assert_eq!(events[3]["data"]["expiresAt"], expires_at.to_string());
    assert_eq!(events[4]["data"]["phase"], "Expired");
    let expiring_at: Timestamp = events[3]["time"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .expect("time");
    assert!(
        expiring_at
            >= expires_at
                .checked_sub(Duration::from_secs(11))
                .expect("valid")
            && expiring_at < expires_at,
        "expiring soon went out within the lead time: {expiring_at} for {expires_at}"
    );

    let slack = receiver
        .wait("/slack", "five messages", |got| got.len() >= 5)
        .await;
    let text = slack[0].json()["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        text.starts_with(&format!("AccessRequest {ns}/short (requested by alice)")),
        "{text}"
    );
    assert!(text.contains("manager"), "{text}");

    // Every delivery ends up recorded in status; the retried one with its two attempts.
    let settled = support::wait_until(&alice, "short", "every notification delivered", |ar| {
        let n = notifications(ar);
        n.len() == 5
            && n.iter()
                .flat_map(|n| &n.deliveries)
                .all(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    let recorded = notifications(&settled);
    eprintln!("e2e: status.notifications: {recorded:#?}");
    let first = &recorded[0].deliveries;
    assert_eq!(first[0].destination, "audit-events");
    assert_eq!(first[0].attempts, 2, "{first:?}");
    assert_eq!(
        first[1].destination,
        format!("Slack http://{}", receiver.address)
    );
    assert_eq!(recorded[0].id, events[0]["id"].as_str().unwrap_or_default());
    let metrics = support::shared_operator_metrics();
    assert!(
        support::sample(
            &metrics,
            r#"gatehouse_notifications_total{format="CloudEvents",outcome="retried"}"#
        )
        .is_some_and(|n| n >= 1.0),
        "the retry is counted"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_dead_notification_endpoint_does_not_delay_expiry_and_an_unsigned_one_is_never_sent() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "notify-dead", ROLE).await;
    let secret = hmac_secret(&admin, "e2e-hmac-key-dead").await;
    // A port nobody listens on: every connection is refused.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    // An endpoint that takes the connection and never answers: every attempt waits out the
    // notifier's 10 s timeout, so an expiry that waited for a delivery would be 10 s late.
    let hanging = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a listener");
    let hanging_address = hanging.local_addr().expect("its address");
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = hanging.accept().await {
            held.push(connection);
        }
    });
    let receiver = Receiver::start(&[]).await;
    notify_from_policy(
        &admin,
        &ns,
        json!([
            { "name": "dead", "url": format!("http://{dead}/hook"), "format": "CloudEvents",
              "secretRef": { "name": secret } },
            { "name": "unsigned", "url": receiver.url("/unsigned"), "format": "Slack",
              "secretRef": { "name": "gatehouse-e2e-no-such-secret" } },
            { "name": "hanging", "url": format!("http://{hanging_address}/hook"),
              "format": "CloudEvents", "secretRef": { "name": secret } }
        ]),
        "1h",
    )
    .await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    support::file_request(&alice, &ns, "dead", ROLE, "10s", "INC-8 check a queue").await;
    support::wait_for_stages(&alice, "dead").await;
    support::annotate(&bob, "dead", &[("approve.gatehouse.dev/manager", "bob")]).await;
    let active = support::wait_until(&alice, "dead", "Active", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
    let expires_at = active
        .status
        .and_then(|s| s.grant)
        .expect("a grant")
        .expires_at
        .0;
    let expired = support::wait_until(&alice, "dead", "Expired", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Expired)
    })
    .await;
    let lag = Timestamp::now().duration_since(expires_at);
    eprintln!("e2e: expired {lag:?} after expiresAt, with a dead notification endpoint");
    // Not a speed check: a reconcile that waited for the hanging endpoint would be at least 10 s
    // late; this leaves room for a loaded machine below that.
    assert!(
        lag < k8s_openapi::jiff::SignedDuration::from_secs(8),
        "expiry was delayed by the notification endpoints: {lag:?}"
    );
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
    let pending = notifications(&expired);
    assert!(
        pending.iter().any(|n| n
            .deliveries
            .iter()
            .any(|d| d.state == DeliveryState::Pending)),
        "expired while notifications were still being retried: {pending:#?}"
    );

    let failed = support::wait_until(&alice, "dead", "the first notification failed", |ar| {
        // The hanging endpoint's attempts take longer; it is the reason expiry must not wait.
        notifications(ar).first().is_some_and(|n| {
            n.deliveries
                .iter()
                .filter(|d| d.destination != "hanging")
                .all(|d| d.state == DeliveryState::Failed)
        })
    })
    .await;
    let first = &notifications(&failed)[0];
    eprintln!("e2e: failed deliveries: {:#?}", first.deliveries);
    let dead_delivery = &first.deliveries[0];
    assert_eq!(dead_delivery.destination, "dead");
    assert_eq!(dead_delivery.attempts, 4, "--notification-attempts=4");
    let error = dead_delivery.last_error.as_deref().unwrap_or_default();
    assert!(error.starts_with("cannot send"), "{error}");
    assert!(
        !error.contains(&dead.port().to_string()),
        "no URL in status: {error}"
    );
    let unsigned = &first.deliveries[1];
    assert!(
        unsigned
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("gatehouse-e2e-no-such-secret does not exist"),
        "{unsigned:?}"
    );
    assert!(
        receiver.at("/unsigned").is_empty(),
        "nothing is sent unsigned"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_agreement_notifies_its_stage_decision_and_share() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let key = "e2e-hmac-key-share";
    let secret = hmac_secret(&admin, key).await;
    let receiver = Receiver::start(&[]).await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "notify-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "720h",
                "notifications": [{ "url": receiver.url("/share"), "format": "CloudEvents",
                                    "secretRef": { "name": secret } }] }),
    )
    .await;
    support::source_secret(&admin, &ns, "orders-db", json!({ "host": "db.orders" })).await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::file_agreement(
        &alice,
        &ns,
        "orders",
        json!({ "data": [{ "secret": "orders-db", "keys": ["host"] }],
                "recipient": { "namespace": recipient }, "purpose": "Monthly reporting",
                "transfer": { "method": "Copy" }, "retention": "720h" }),
    )
    .await;
    support::wait_for_stages(&alice, "orders").await;
    support::annotate(
        &carol,
        "orders",
        &[("approve.gatehouse.dev/data-owner", "carol")],
    )
    .await;
    support::wait_until(&alice, "orders", "Active", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let received = receiver
        .wait("/share", "the active event", |got| {
            types(&events_about(got, "orders"))
                .contains(&"dev.gatehouse.datasharingagreement.active".into())
        })
        .await;
    let events = events_about(&received, "orders");
    eprintln!("e2e: share CloudEvents: {events:#?}");
    assert_eq!(
        types(&events),
        ["waiting", "decided", "active"].map(|t| format!("dev.gatehouse.datasharingagreement.{t}"))
    );
    assert_eq!(events[0]["data"]["stage"], "data-owner");
    assert_eq!(events[2]["data"]["kind"], "DataSharingAgreement");
    assert_eq!(
        events[2]["source"],
        format!("/apis/gatehouse.dev/v1alpha1/namespaces/{ns}/datasharingagreements")
    );
    for post in &received {
        assert_eq!(
            post.signature.as_deref(),
            Some(expected_signature(key.as_bytes(), &post.body).as_str())
        );
    }
}
