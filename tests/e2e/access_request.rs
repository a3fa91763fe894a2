use gatehouse::api::conditions::{ACCEPTED, find, reason};
use gatehouse::api::{AccessPhase, AccessPolicy, AccessRequest};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;

/// A namespace labelled for its own policy, so parallel tests never match each other's policies.
async fn setup(admin: &kube::Client, test: &str) -> String {
    let ns = support::unique(test);
    support::namespace(admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::allow_requests(admin, &ns, "alice").await;
    ns
}

fn policy(ns: &str) -> AccessPolicy {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": ns },
        "spec": {
            "roles": [{ "kind": "ClusterRole", "name": "db-reader" }],
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
            "maxDuration": "8h",
            "defaultDuration": "1h",
            "justification": { "minLength": 10, "pattern": "[A-Z]+-[0-9]+" },
            "approvals": [{ "role": "manager" }, { "role": "data-owner" }]
        }
    }))
    .expect("valid AccessPolicy")
}

fn request(ns: &str, duration: &str) -> AccessRequest {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": { "name": "alice-db-read", "namespace": ns },
        "spec": {
            "requester": "alice",
            "role": { "kind": "ClusterRole", "name": "db-reader" },
            "duration": duration,
            "justification": "PAY-1234 investigate failed settlement batch"
        }
    }))
    .expect("valid AccessRequest")
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn alice_request_is_accepted_under_its_policy() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "accepted").await;
    Api::<AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy(&ns))
        .await
        .expect("policy");

    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "4h"))
        .await
        .expect("alice creates her request");

    let seen = support::wait_until(&alice, "alice-db-read", "Accepted=True", |ar| {
        ar.status
            .as_ref()
            .and_then(|s| find(&s.conditions, ACCEPTED))
            .is_some_and(|c| c.status == "True")
    })
    .await;
    let status = seen.status.expect("status");
    assert_eq!(status.phase, Some(AccessPhase::Pending));
    assert_eq!(status.policy.as_deref(), Some(ns.as_str()));
    assert_eq!(status.observed_generation, Some(1));
    let accepted = find(&status.conditions, ACCEPTED).expect("Accepted");
    assert_eq!(
        (accepted.reason.as_str(), accepted.observed_generation),
        (reason::VALID, Some(1))
    );
    let status_manager = seen
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .find(|f| {
            f.manager.as_deref() == Some("gatehouse") && f.subresource.as_deref() == Some("status")
        });
    assert_eq!(
        status_manager.and_then(|f| f.operation).as_deref(),
        Some("Apply"),
        "status is written by server-side apply under field manager gatehouse"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_request_no_policy_allows_fails_with_the_reason() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "nopolicy").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "1h"))
        .await
        .expect("alice creates her request");

    let seen = support::wait_until(&alice, "alice-db-read", "Accepted=False", |ar| {
        ar.status
            .as_ref()
            .and_then(|s| find(&s.conditions, ACCEPTED))
            .is_some_and(|c| c.status == "False")
    })
    .await;
    let status = seen.status.expect("status");
    let accepted = find(&status.conditions, ACCEPTED).expect("Accepted");
    eprintln!(
        "e2e: Accepted=False {}: {}",
        accepted.reason, accepted.message
    );
    assert_eq!(status.phase, Some(AccessPhase::Failed));
    assert_eq!(accepted.reason, reason::NO_MATCHING_POLICY);
    assert!(
        accepted.message.contains("ClusterRole/db-reader"),
        "{}",
        accepted.message
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_api_server_refuses_a_spec_change() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "immutable").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "1h"))
        .await
        .expect("alice creates her request");

    let change = json!({ "spec": { "duration": "8h" } });
    let (code, message) = support::rejection(
        alice
            .patch(
                "alice-db-read",
                &PatchParams::default(),
                &Patch::Merge(&change),
            )
            .await,
    );
    eprintln!("e2e: spec change refused ({code}): {message}");
    assert_eq!(code, 422);
    assert!(
        message.contains("spec is immutable after creation"),
        "{message}"
    );
    let unchanged = alice
        .get("alice-db-read")
        .await
        .expect("request still there");
    assert_eq!(
        unchanged.spec.duration.as_deref(),
        Some("1h"),
        "nothing was lost or changed"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_api_server_refuses_an_invalid_duration() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "duration").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);

    for bad in ["4 hours", "0s", "1d"] {
        let (code, message) = support::rejection(
            alice
                .create(&PostParams::default(), &request(&ns, bad))
                .await,
        );
        eprintln!("e2e: duration {bad:?} refused ({code}): {message}");
        assert_eq!(code, 422);
        assert!(message.contains("spec.duration"), "{message}");
        assert!(
            message.contains("must be a positive duration such as 30m, 8h or 1h30m"),
            "{message}"
        );
    }
}
