//! A GitOps pipeline (Argo CD, Flux) applies requests from Git and re-applies them on every sync:
//! the same YAML twice must change nothing, and approvals written with kubectl must survive.

use std::path::Path;
use std::process::Command;

use gatehouse::api::{AccessPhase, AccessRequest};
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-gitops-reader";

fn request(ns: &str, name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                  "duration": "30m", "justification": "OPS-42 quarterly reconciliation" }
    })
}

/// `kubectl apply -f -` as `user` (client-side apply, Argo CD's default): its stdout.
fn kubectl_apply(kubeconfig: &Path, user: &str, object: &serde_json::Value) -> String {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", user, "apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(object.to_string().as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("kubectl finishes");
    assert!(
        output.status.success(),
        "kubectl apply failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn server_side_reapplies_change_nothing_and_keep_approvals() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "gitops-ssa", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    // Flux applies server-side, with force, under its own field manager.
    let flux = PatchParams::apply("kustomize-controller").force();
    let desired = request(&ns, "alice-read");
    alice
        .patch("alice-read", &flux, &Patch::Apply(&desired))
        .await
        .expect("first apply creates");
    let pending = support::wait_until(&alice, "alice-read", "Pending", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Pending)
    })
    .await;

    let again = alice
        .patch("alice-read", &flux, &Patch::Apply(&desired))
        .await
        .expect("second apply");
    assert_eq!(
        again.metadata.resource_version, pending.metadata.resource_version,
        "the same YAML again is a no-op: nothing is written"
    );

    support::annotate(
        &bob,
        "alice-read",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await;
    let active = support::wait_until(&alice, "alice-read", "Active", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    let resynced = alice
        .patch("alice-read", &flux, &Patch::Apply(&desired))
        .await
        .expect("re-apply after the approval");
    assert_eq!(
        resynced
            .metadata
            .annotations
            .unwrap_or_default()
            .get("approve.gatehouse.dev/manager")
            .map(String::as_str),
        Some("bob"),
        "the approval survives the pipeline's re-apply"
    );
    assert_eq!(
        resynced.metadata.resource_version,
        active.metadata.resource_version
    );
    assert_eq!(resynced.metadata.generation, Some(1));
    assert_eq!(
        resynced.status.and_then(|s| s.phase),
        Some(AccessPhase::Active)
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn client_side_reapplies_change_nothing_and_keep_approvals() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "gitops-csa", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let desired = request(&ns, "alice-read");
    assert!(kubectl_apply(kubeconfig, "alice", &desired).ends_with("created"));
    support::wait_until(&alice, "alice-read", "Pending", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Pending)
    })
    .await;
    let second = kubectl_apply(kubeconfig, "alice", &desired);
    assert!(second.ends_with("unchanged"), "{second}");

    support::annotate(
        &bob,
        "alice-read",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await;
    support::wait_until(&alice, "alice-read", "Active", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    let third = kubectl_apply(kubeconfig, "alice", &desired);
    assert!(third.ends_with("unchanged"), "{third}");
    let after = alice.get("alice-read").await.expect("get");
    assert_eq!(
        after
            .metadata
            .annotations
            .unwrap_or_default()
            .get("approve.gatehouse.dev/manager")
            .map(String::as_str),
        Some("bob")
    );
    assert_eq!(
        after.status.and_then(|s| s.phase),
        Some(AccessPhase::Active)
    );
}
