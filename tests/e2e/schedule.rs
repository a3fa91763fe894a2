//! Scheduled start (`spec.startAt`) as real users see it: approved before its start, access waits
//! and then runs from the start for its duration; approved after it, the clock starts at
//! activation, never earlier. The same for a share.

use std::time::Duration;

use gatehouse::api::conditions::{READY, find, reason};
use gatehouse::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-schedule-reader";

/// Whole seconds from now, as the API server stores times.
fn in_seconds(seconds: i64) -> Timestamp {
    let now = Timestamp::now().as_second() + seconds;
    Timestamp::from_second(now).expect("valid time")
}

fn request(ns: &str, name: &str, start_at: Option<String>) -> AccessRequest {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                  "duration": "10m", "justification": "CHG-9 weekend maintenance",
                  "startAt": start_at }
    }))
    .expect("valid request")
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approved_before_its_start_a_grant_waits_then_runs_from_the_start() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "schedule", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let start = in_seconds(6);
    alice
        .create(
            &PostParams::default(),
            &request(&ns, "later", Some(start.to_string())),
        )
        .await
        .expect("alice files a scheduled request");
    support::annotate(&bob, "later", &[("approve.gatehouse.dev/manager", "bob")]).await;

    let scheduled = support::wait_until(&alice, "later", "Scheduled", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Scheduled)
    })
    .await;
    let ready = scheduled
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, READY))
        .expect("Ready");
    eprintln!("e2e: scheduled: {}", ready.message);
    assert_eq!(ready.reason, reason::SCHEDULED);
    assert!(
        ready.message.contains(&start.to_string()),
        "{}",
        ready.message
    );
    assert!(
        Api::<RoleBinding>::namespaced(admin.clone(), &ns)
            .get_opt(&format!("gatehouse.{ns}.later"))
            .await
            .expect("get")
            .is_none(),
        "nothing is bound before the start"
    );
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));

    let active = support::wait_until(&alice, "later", "Active", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    assert!(Timestamp::now() >= start, "never before the start");
    let grant = active.status.and_then(|s| s.grant).expect("grant");
    assert_eq!(grant.activated_at.0, start, "the window starts at startAt");
    assert_eq!(
        grant.expires_at.0,
        start
            .checked_add(SignedDuration::from_mins(10))
            .expect("valid"),
        "and lasts the approved duration from there"
    );
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approved_after_its_start_the_clock_starts_at_activation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "schedule-late", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let past = in_seconds(-120);
    alice
        .create(
            &PostParams::default(),
            &request(&ns, "past", Some(past.to_string())),
        )
        .await
        .expect("filed");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let approved_at = Timestamp::from_second(Timestamp::now().as_second()).expect("valid");
    support::annotate(&bob, "past", &[("approve.gatehouse.dev/manager", "bob")]).await;
    let active = support::wait_until(&alice, "past", "Active", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    let grant = active.status.and_then(|s| s.grant).expect("grant");
    assert!(
        grant.activated_at.0 >= approved_at,
        "never earlier than activation: {} < {approved_at}",
        grant.activated_at.0
    );
    // Activated within a second: the start is that second, the end rounded up, never short.
    let length = grant.expires_at.0.as_second() - grant.activated_at.0.as_second();
    assert!((600..=601).contains(&length), "{length}");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_api_server_refuses_a_start_that_is_not_a_time() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "schedule-bad", ROLE).await;
    // Untyped: the Rust type could not even hold this value.
    let resource = kube::core::ApiResource::erase::<AccessRequest>(&());
    let alice = Api::<kube::core::DynamicObject>::namespaced_with(
        support::client(kubeconfig, "alice").await,
        &ns,
        &resource,
    );
    let mut bad = serde_json::to_value(request(&ns, "bad", None)).expect("serialises");
    bad["spec"]["startAt"] = json!("tomorrow at 9");
    let bad: kube::core::DynamicObject = serde_json::from_value(bad).expect("an object");
    let (code, message) = support::rejection(alice.create(&PostParams::default(), &bad).await);
    eprintln!("e2e: startAt refused ({code}): {message}");
    assert_eq!(code, 422);
    assert!(message.contains("spec.startAt"), "{message}");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_share_reviewed_before_its_start_waits_then_counts_its_retention_from_the_start() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "schedule-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    support::source_secret(&admin, &ns, "orders-db", json!({ "password": "s3cret" })).await;
    let start = in_seconds(6);
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    support::file_agreement(
        &alice,
        &ns,
        "later-share",
        json!({ "data": [{ "secret": "orders-db", "keys": ["password"] }],
                "recipient": { "namespace": recipient }, "purpose": "CHG-9",
                "transfer": { "method": "Copy" }, "retention": "30m",
                "startAt": start.to_string() }),
    )
    .await;
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::annotate(
        &carol,
        "later-share",
        &[("approve.gatehouse.dev/data-owner", "carol")],
    )
    .await;
    support::wait_until(&alice, "later-share", "Scheduled", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Scheduled)
    })
    .await;
    let copies = Api::<Secret>::namespaced(admin.clone(), &recipient);
    assert!(
        copies
            .list(&Default::default())
            .await
            .expect("list")
            .items
            .iter()
            .all(|s| !s
                .metadata
                .name
                .as_deref()
                .unwrap_or_default()
                .contains("later-share")),
        "nothing is shared before the start"
    );
    let active = support::wait_until(&alice, "later-share", "Active", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let share = active.status.and_then(|s| s.share).expect("share");
    assert_eq!(share.activated_at.0, start);
    assert_eq!(
        share.expires_at.0.as_second() - start.as_second(),
        30 * 60,
        "retention counts from the start"
    );
    assert!(
        copies
            .get_opt(&share.objects[0].name)
            .await
            .expect("get")
            .is_some()
    );
}
