//! Tests that need the operator process, or the cluster's admission policies, to themselves: an
//! expiry that falls due while the operator is down, and an operator that finds the approval
//! admission policies missing. A test binary of its own (cargo runs test binaries one after
//! another), and its tests take turns.

use std::path::Path;
use std::time::Duration;

use gatehouse::api::conditions::{READY, find};
use gatehouse::api::{AccessPhase, AccessRequest};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

// Shared with the e2e suite; these tests use only some of the helpers.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

const ROLE: &str = "gatehouse-e2e-operator-reader";

/// One test at a time: each runs its own operator or changes cluster-wide admission policies.
static TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    ns: String,
    admin: kube::Client,
    alice: Api<AccessRequest>,
    bob: Api<AccessRequest>,
}

/// A namespace whose policy lets bob (manager) approve alice's request for `ROLE`.
async fn setup(kubeconfig: &Path, test: &str) -> Setup {
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, test, ROLE).await;
    Setup {
        alice: Api::namespaced(support::client(kubeconfig, "alice").await, &ns),
        bob: Api::namespaced(support::client(kubeconfig, "bob").await, &ns),
        ns,
        admin,
    }
}

impl Setup {
    /// alice asks for `ROLE` for `duration` and bob approves.
    async fn approved_request(&self, duration: &str) {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": { "name": "alice-read", "namespace": self.ns },
            "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                      "duration": duration, "justification": "OPS-7 operator drill" }
        }))
        .expect("valid request");
        self.alice
            .create(&PostParams::default(), &request)
            .await
            .expect("request");
        support::annotate(
            &self.bob,
            "alice-read",
            &[("approve.gatehouse.dev/manager", "bob")],
        )
        .await;
    }

    async fn phase(&self, phase: AccessPhase) -> AccessRequest {
        support::wait_until(&self.alice, "alice-read", &format!("{phase:?}"), |ar| {
            ar.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }
}

#[tokio::test]
async fn an_expiry_that_fell_due_while_the_operator_was_down_is_enforced_at_start() {
    let _turn = TURN.lock().await;
    let Some(kubeconfig) = support::control_plane() else {
        return;
    };
    let first = support::spawn_operator(kubeconfig, "restart-operator-1");
    let s = setup(kubeconfig, "restart").await;
    s.approved_request("4s").await;
    let grant = s
        .phase(AccessPhase::Active)
        .await
        .status
        .and_then(|st| st.grant)
        .expect("grant");
    let binding = grant.bindings[0].name.clone();

    first.stop();
    let overdue = grant.expires_at.0.as_millisecond() + 2000 - Timestamp::now().as_millisecond();
    tokio::time::sleep(Duration::from_millis(u64::try_from(overdue).unwrap_or(0))).await;
    let bindings = Api::<RoleBinding>::namespaced(s.admin.clone(), &s.ns);
    assert!(
        bindings.get_opt(&binding).await.expect("get").is_some(),
        "with the operator down nothing removes the binding: the expiry is overdue"
    );
    let still = s.alice.get("alice-read").await.expect("get");
    assert_eq!(
        still.status.and_then(|st| st.phase),
        Some(AccessPhase::Active)
    );

    let second = support::spawn_operator(kubeconfig, "restart-operator-2");
    let expired = s.phase(AccessPhase::Expired).await;
    assert!(
        bindings.get_opt(&binding).await.expect("get").is_none(),
        "the overdue binding is deleted at start"
    );
    let ready = expired
        .status
        .as_ref()
        .and_then(|st| find(&st.conditions, READY))
        .expect("Ready");
    eprintln!("e2e: after restart: {}", ready.message);
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &s.ns
    ));
    second.stop();
}

/// Restores the shipped admission policies when dropped, even if the test failed half-way.
struct RestorePolicies(&'static Path);

impl Drop for RestorePolicies {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .env("KUBECONFIG", self.0)
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "-k",
                concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/admission/"),
            ])
            .output();
    }
}

#[tokio::test]
async fn nothing_is_provisioned_while_the_approval_policies_are_missing() {
    let _turn = TURN.lock().await;
    let Some(kubeconfig) = support::control_plane() else {
        return;
    };
    let operator = support::spawn_operator(kubeconfig, "integrity-operator");
    let s = setup(kubeconfig, "integrity").await;
    let restore = RestorePolicies(kubeconfig);
    Api::<ValidatingAdmissionPolicyBinding>::all(s.admin.clone())
        .delete("gatehouse-approvals", &Default::default())
        .await
        .expect("delete the binding");

    s.approved_request("10m").await;
    let held = support::wait_until(&s.alice, "alice-read", "ApprovalIntegrity=False", |ar| {
        ar.status
            .as_ref()
            .and_then(|st| find(&st.conditions, "ApprovalIntegrity"))
            .is_some_and(|c| c.status == "False")
    })
    .await;
    let status = held.status.expect("status");
    let integrity = find(&status.conditions, "ApprovalIntegrity").expect("condition");
    eprintln!("e2e: {}: {}", integrity.reason, integrity.message);
    assert_eq!(integrity.reason, "ApprovalIntegrityUnverified");
    assert!(
        integrity
            .message
            .contains("ValidatingAdmissionPolicyBinding gatehouse-approvals is missing"),
        "{}",
        integrity.message
    );
    assert_eq!(
        status.phase,
        Some(AccessPhase::Pending),
        "fully approved, but held"
    );
    assert!(
        !support::can_i(kubeconfig, "alice", "get", "configmaps", &s.ns),
        "nothing provisioned"
    );

    drop(restore);
    let set_aside = support::wait_until(
        &s.alice,
        "alice-read",
        "the forged-era approval set aside",
        |ar| {
            ar.status
                .as_ref()
                .and_then(|st| find(&st.conditions, "ApprovalIntegrity"))
                .is_some_and(|c| c.status == "True")
        },
    )
    .await;
    let status = set_aside.status.expect("status");
    assert_eq!(
        status.phase,
        Some(AccessPhase::Pending),
        "an approval nobody verified never counts"
    );
    assert!(
        status
            .ignored_annotations
            .iter()
            .any(|m| m.contains("nothing verified its author")),
        "{:?}",
        status.ignored_annotations
    );

    // With the policies back, a new request is approved and granted as usual.
    let requests = Api::<AccessRequest>::namespaced(s.admin.clone(), &s.ns);
    requests
        .delete("alice-read", &Default::default())
        .await
        .expect("the admin removes it");
    support::wait_gone(&requests, "alice-read").await;
    s.approved_request("10m").await;
    let active = s.phase(AccessPhase::Active).await;
    assert!(
        active.status.and_then(|st| st.grant).is_some(),
        "provisioned once the policies are back"
    );
    operator.stop();
}
