//! AccessRecords as real users see them: the evidence a grant and a share leave behind, kept after
//! the request or agreement is deleted, and written by nobody but the operator.

use std::time::Duration;

use gatehouse::api::common::Decision;
use gatehouse::api::{AccessRecord, AccessRequest, DataSharingAgreement, Outcome, SharingPhase};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-records-reader";

/// The record of the object of `kind` named `name` in `ns`, with UID `uid`, once `done` holds.
async fn record_when(
    records: &Api<AccessRecord>,
    kind: &str,
    ns: &str,
    name: &str,
    uid: &str,
    what: &str,
    done: impl Fn(&AccessRecord) -> bool,
) -> AccessRecord {
    let record_name = format!("{}.{ns}.{name}.{uid}", kind.to_lowercase());
    support::wait_until(records, &record_name, what, done).await
}

async fn wait_deleted<K>(api: &Api<K>, name: &str)
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    for _ in 0..100 {
        if api.get_opt(name).await.expect("get").is_none() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{name} was not deleted");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_expired_grant_leaves_a_complete_record_after_its_request_is_deleted() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "record-grant", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let request: AccessRequest = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": "alice-read", "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                  "duration": "3s", "justification": "AUD-1 quarterly reconciliation" }
    }))
    .expect("valid request");
    let created = alice
        .create(&PostParams::default(), &request)
        .await
        .expect("alice files her request");
    let uid = created.metadata.uid.clone().expect("uid");
    support::annotate(
        &bob,
        "alice-read",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await;
    let expired = support::wait_until(&alice, "alice-read", "Expired", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(gatehouse::api::AccessPhase::Expired)
    })
    .await;
    let grant = expired
        .status
        .as_ref()
        .and_then(|s| s.grant.clone())
        .expect("grant");
    // Deleted by whoever administers the namespace (requesters may not delete).
    let requests = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    requests
        .delete("alice-read", &DeleteParams::default())
        .await
        .expect("the request is deleted");
    wait_deleted(&requests, "alice-read").await;

    let records = Api::<AccessRecord>::all(admin.clone());
    let record = record_when(
        &records,
        "AccessRequest",
        &ns,
        "alice-read",
        &uid,
        "complete",
        |r| r.spec.complete,
    )
    .await;
    eprintln!("e2e: record {:#?}", record.spec);
    let spec = &record.spec;
    assert_eq!(
        (
            spec.object.kind.as_str(),
            spec.object.namespace.as_str(),
            spec.object.name.as_str()
        ),
        ("AccessRequest", ns.as_str(), "alice-read")
    );
    assert_eq!(spec.requester, "alice");
    assert_eq!(spec.subjects.len(), 1);
    assert_eq!(spec.subjects[0].name, "alice");
    assert_eq!(spec.what, format!("ClusterRole/{ROLE} in {ns}"));
    assert_eq!(spec.why, "AUD-1 quarterly reconciliation");
    let policy = spec.policy.as_ref().expect("the governing policy");
    assert_eq!(policy.name, ns);
    assert!(policy.generation.is_some(), "{policy:?}");
    assert_eq!(spec.decisions.len(), 1);
    assert_eq!(
        (
            spec.decisions[0].role.as_str(),
            spec.decisions[0].user.as_str(),
            spec.decisions[0].decision
        ),
        ("manager", "bob", Decision::Approved)
    );
    assert!(spec.decisions[0].time.is_some());
    assert_eq!(spec.activated_at.as_ref(), Some(&grant.activated_at));
    assert_eq!(spec.expires_at.as_ref(), Some(&grant.expires_at));
    assert_eq!(spec.outcome, Outcome::Expired);
    let end = spec.end.as_ref().expect("end");
    assert_eq!(end.reason, "Expired");
    assert!(end.at.0 >= grant.expires_at.0, "never early: {end:?}");
    let removal = spec.removal.as_ref().expect("removal");
    assert!(
        removal.verified.contains("can no longer"),
        "the API server's proof: {removal:?}"
    );
    let retain_until = spec.retain_until.as_ref().expect("retention");
    assert_eq!(
        retain_until.0.as_second() - end.at.0.as_second(),
        400 * 24 * 3600,
        "kept 400 days by default"
    );
    let labels = record.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("gatehouse.dev/outcome").map(String::as_str),
        Some("Expired")
    );
    assert_eq!(
        labels.get("gatehouse.dev/requester").map(String::as_str),
        Some("alice")
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_share_synced_twice_revoked_and_deleted_is_recorded_with_every_sync_and_no_value() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "record-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    let sources = Api::<Secret>::namespaced(admin.clone(), &ns);
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "orders-db" },
        "stringData": { "host": "db.orders", "password": "first-value", "unshared": "x" }
    }))
    .expect("valid Secret");
    sources
        .create(&PostParams::default(), &secret)
        .await
        .expect("source");
    let agreement: DataSharingAgreement = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": "orders-out", "namespace": ns },
        "spec": { "requester": "alice", "data": [{ "secret": "orders-db", "keys": ["host", "password"] }],
                  "recipient": { "namespace": recipient }, "purpose": "AUD-2 revenue reporting",
                  "transfer": { "method": "Copy" }, "retention": "30m", "policy": ns }
    }))
    .expect("valid DataSharingAgreement");
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let uid = alice
        .create(&PostParams::default(), &agreement)
        .await
        .expect("filed")
        .metadata
        .uid
        .expect("uid");
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::annotate(
        &carol,
        "orders-out",
        &[("approve.gatehouse.dev/data-owner", "carol")],
    )
    .await;
    let syncs = |n: usize| {
        move |a: &DataSharingAgreement| {
            a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
                && a.status
                    .as_ref()
                    .and_then(|s| s.share.as_ref())
                    .is_some_and(|s| s.syncs.len() == n)
        }
    };
    support::wait_until(&alice, "orders-out", "one sync", syncs(1)).await;
    sources
        .patch(
            "orders-db",
            &PatchParams::default(),
            &Patch::Merge(json!({ "stringData": { "password": "second-value" } })),
        )
        .await
        .expect("rotated");
    support::wait_until(&alice, "orders-out", "two syncs", syncs(2)).await;
    support::annotate(
        &alice,
        "orders-out",
        &[("revoke.gatehouse.dev/by", "alice")],
    )
    .await;
    support::wait_until(&alice, "orders-out", "Revoked", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Revoked)
    })
    .await;
    let agreements = Api::<DataSharingAgreement>::namespaced(admin.clone(), &ns);
    agreements
        .delete("orders-out", &DeleteParams::default())
        .await
        .expect("deleted");
    wait_deleted(&agreements, "orders-out").await;

    let records = Api::<AccessRecord>::all(admin.clone());
    let record = record_when(
        &records,
        "DataSharingAgreement",
        &ns,
        "orders-out",
        &uid,
        "complete",
        |r| r.spec.complete,
    )
    .await;
    eprintln!("e2e: share record {:#?}", record.spec);
    let spec = &record.spec;
    assert_eq!(spec.outcome, Outcome::Revoked);
    let end = spec.end.as_ref().expect("end");
    assert_eq!(
        (end.reason.as_str(), end.by.as_deref()),
        ("Revoked", Some("alice"))
    );
    assert_eq!(spec.why, "AUD-2 revenue reporting");
    let share = spec.share.as_ref().expect("what was shared");
    assert_eq!(share.recipient, recipient);
    assert_eq!(share.data.len(), 1);
    assert_eq!(share.data[0].source, "Secret/orders-db");
    assert_eq!(share.data[0].keys, vec!["host", "password"]);
    assert_eq!(share.syncs.len(), 2, "both syncs: {:?}", share.syncs);
    assert_ne!(share.syncs[0].sources, share.syncs[1].sources);
    assert_eq!(share.objects.len(), 1);
    assert_eq!(share.objects[0].keys, vec!["host", "password"]);
    assert_eq!(share.objects[0].namespace, recipient);
    assert!(spec.removal.is_some());
    let text = serde_json::to_string(&record).expect("serialises");
    for value in ["first-value", "second-value", "db.orders", "unshared"] {
        assert!(!text.contains(value), "no value or unshared key: {text}");
    }
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn nobody_but_the_operator_creates_changes_or_deletes_a_record() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "record-guard", ROLE).await;
    let alice_client = support::client(kubeconfig, "alice").await;
    let alice = Api::<AccessRequest>::namespaced(alice_client.clone(), &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let uid = support::file_request(&alice, &ns, "denied", ROLE, "1h", "AUD-3").await;
    // A denial counts only once the operator listed the stages it may deny.
    support::wait_for_stages(&alice, "denied").await;
    support::annotate(
        &bob,
        "denied",
        &[
            ("deny.gatehouse.dev/manager", "bob"),
            ("reason.gatehouse.dev/manager", "no ticket"),
        ],
    )
    .await;
    let records = Api::<AccessRecord>::all(admin.clone());
    let record = record_when(
        &records,
        "AccessRequest",
        &ns,
        "denied",
        &uid,
        "Denied",
        |r| r.spec.outcome == Outcome::Denied && r.spec.complete,
    )
    .await;
    let name = record.metadata.name.clone().expect("name");
    let end = record.spec.end.clone().expect("end");
    assert_eq!(
        (end.reason.as_str(), end.by.as_deref()),
        ("Denied", Some("bob"))
    );
    assert_eq!(
        record.spec.decisions[0].reason.as_deref(),
        Some("no ticket")
    );

    // A cluster admin (system:masters) may do anything RBAC allows, and still not this.
    let (code, message) = support::rejection(records.delete(&name, &DeleteParams::default()).await);
    eprintln!("e2e: admin deleting a record: ({code}) {message}");
    assert_eq!(code, 403);
    assert!(
        message.contains("AccessRecords are written only by the Gatehouse operator"),
        "{message}"
    );
    let (code, message) = support::rejection(
        records
            .patch(
                &name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": { "outcome": "Expired" } })),
            )
            .await,
    );
    eprintln!("e2e: admin rewriting a record: ({code}) {message}");
    assert_eq!(code, 403);
    let mut forged = record.clone();
    forged.metadata = kube::api::ObjectMeta {
        name: Some(format!("forged.{name}")),
        ..Default::default()
    };
    let (code, _) = support::rejection(records.create(&PostParams::default(), &forged).await);
    assert_eq!(code, 403, "nobody forges a record either");
    // The requester has no RBAC on records at all.
    let as_alice = Api::<AccessRecord>::all(alice_client);
    let (code, message) =
        support::rejection(as_alice.delete(&name, &DeleteParams::default()).await);
    eprintln!("e2e: alice deleting her record: ({code}) {message}");
    assert_eq!(code, 403);
    let kept = records.get(&name).await.expect("the record is still there");
    assert_eq!(kept.spec, record.spec, "nothing was lost or changed");
}
