//! Asking for changes (`changes.gatehouse.dev/<role>` with `reason.gatehouse.dev/<role>`) as real
//! users: it ends the request or agreement without access, in phase `ChangesRequested`, under
//! the same admission rules as a denial.

use gatehouse::api::SharingPhase;
use gatehouse::api::conditions::{READY, find, reason};
use gatehouse::api::{AccessPhase, AccessRecord, AccessRequest, DataSharingAgreement, Outcome};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-changes-reader";

/// Adds `annotations` as `api`'s user; the API server's answer (code and message) when refused.
async fn try_annotate<K>(
    api: &Api<K>,
    name: &str,
    annotations: &[(&str, &str)],
) -> Option<(u16, String)>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let annotations: serde_json::Map<String, serde_json::Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let patch = json!({ "metadata": { "annotations": annotations } });
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => None,
        Err(err) => Some(support::rejection::<()>(Err(err))),
    }
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_approver_asking_for_changes_ends_the_request_without_access() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "changes", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let uid = support::file_request(&alice, &ns, "too-long", ROLE, "1h", "CHG-12").await;
    support::wait_for_stages(&alice, "too-long").await;

    // The requester never asks for changes on her own request, and nobody signs as someone else.
    let (code, message) = try_annotate(
        &alice,
        "too-long",
        &[("changes.gatehouse.dev/manager", "alice")],
    )
    .await
    .expect("refused");
    eprintln!("e2e: alice asking for changes on her own request: ({code}) {message}");
    assert!(
        message.contains("you may not request changes on your own request"),
        "{message}"
    );
    let (_, message) = try_annotate(
        &bob,
        "too-long",
        &[("changes.gatehouse.dev/manager", "carol")],
    )
    .await
    .expect("refused");
    assert!(
        message.contains("must be set to your own username 'bob'"),
        "{message}"
    );
    let (_, message) = try_annotate(
        &bob,
        "too-long",
        &[("changes.gatehouse.dev/security", "bob")],
    )
    .await
    .expect("refused");
    eprintln!("e2e: bob asking for changes as a role he does not hold: {message}");
    assert!(message.contains("for role 'security'"), "{message}");

    support::annotate(
        &bob,
        "too-long",
        &[
            ("changes.gatehouse.dev/manager", "bob"),
            (
                "reason.gatehouse.dev/manager",
                "ask for 1h in payments-ro only",
            ),
        ],
    )
    .await;
    let ended = support::wait_until(&alice, "too-long", "ChangesRequested", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::ChangesRequested)
    })
    .await;
    let ready = ended
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, READY))
        .expect("Ready");
    eprintln!("e2e: {}", ready.message);
    assert_eq!(ready.reason, reason::CHANGES_REQUESTED);
    assert_eq!(
        ready.message,
        "changes requested by bob as manager: ask for 1h in payments-ro only; file a new request with the changes"
    );
    assert!(
        Api::<RoleBinding>::namespaced(admin.clone(), &ns)
            .get_opt(&format!("gatehouse.{ns}.too-long"))
            .await
            .expect("get")
            .is_none(),
        "nothing is bound"
    );

    // It ended: a late approval is refused.
    let (_, message) = try_annotate(
        &bob,
        "too-long",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await
    .expect("refused");
    assert!(
        message.contains("already ended (phase ChangesRequested)"),
        "{message}"
    );

    let records = Api::<AccessRecord>::all(admin.clone());
    let record = support::wait_until(
        &records,
        &format!("accessrequest.{ns}.too-long.{uid}"),
        "complete",
        |r| r.spec.complete,
    )
    .await;
    assert_eq!(record.spec.outcome, Outcome::ChangesRequested);
    assert_eq!(record.spec.end.and_then(|e| e.by).as_deref(), Some("bob"));
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_reviewer_asking_for_changes_ends_the_agreement_with_nothing_shared() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "changes-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    support::source_secret(&admin, &ns, "orders-db", json!({ "password": "s3cret" })).await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    support::file_agreement(
        &alice,
        &ns,
        "too-much",
        json!({ "data": [{ "secret": "orders-db", "keys": ["password"] }],
                "recipient": { "namespace": recipient }, "purpose": "CHG-13",
                "transfer": { "method": "Copy" }, "retention": "30m" }),
    )
    .await;
    support::wait_for_stages(&alice, "too-much").await;
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::annotate(
        &carol,
        "too-much",
        &[
            ("changes.gatehouse.dev/data-owner", "carol"),
            (
                "reason.gatehouse.dev/data-owner",
                "share a Reference instead of a Copy",
            ),
        ],
    )
    .await;
    let ended = support::wait_until(&alice, "too-much", "ChangesRequested", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::ChangesRequested)
    })
    .await;
    let ready = ended
        .status
        .as_ref()
        .and_then(|s| find(&s.conditions, READY))
        .expect("Ready");
    assert_eq!(
        ready.message,
        "changes requested by carol as data-owner: share a Reference instead of a Copy; file a new agreement with the changes"
    );
    assert!(
        ended.status.and_then(|s| s.share).is_none(),
        "nothing was shared"
    );
}
