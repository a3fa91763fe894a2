//! Tests that need the operator process, or the cluster's admission policies, to themselves: an
//! expiry or a retention end that falls due while the operator is down, an operator that finds the
//! approval admission policies missing, the manager policy reinstalled, leader election between
//! two operators, and the metrics. A test binary of its own (cargo runs test binaries one after
//! another), and its tests take turns.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::api::conditions::{READY, find};
use gatehouse::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

// Shared with the e2e suite; these tests use only some of the helpers.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;
// Shared with the e2e suite's notification tests.
#[allow(dead_code)]
#[path = "e2e/receiver.rs"]
mod receiver;

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
        self.approved_request_named("alice-read", duration).await;
    }

    async fn approved_request_named(&self, name: &str, duration: &str) {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": { "name": name, "namespace": self.ns },
            "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                      "duration": duration, "justification": "OPS-7 operator drill" }
        }))
        .expect("valid request");
        self.alice
            .create(&PostParams::default(), &request)
            .await
            .expect("request");
        support::annotate(&self.bob, name, &[("approve.gatehouse.dev/manager", "bob")]).await;
    }

    async fn phase(&self, phase: AccessPhase) -> AccessRequest {
        self.phase_of("alice-read", phase).await
    }

    async fn phase_of(&self, name: &str, phase: AccessPhase) -> AccessRequest {
        support::wait_until(&self.alice, name, &format!("{phase:?}"), |ar| {
            ar.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_expiry_that_fell_due_while_the_operator_was_down_is_enforced_at_start() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
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

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_retention_end_that_fell_due_while_the_operator_was_down_is_enforced_at_start() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let first = support::spawn_operator(kubeconfig, "retention-operator-1");
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "retention",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "orders-db" }, "stringData": { "password": "s3cret" }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("source");
    let agreement: DataSharingAgreement = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": "short-share", "namespace": ns },
        "spec": { "requester": "alice", "data": [{ "secret": "orders-db", "keys": ["password"] }],
                  "recipient": { "namespace": recipient }, "purpose": "drill",
                  "transfer": { "method": "Copy" }, "retention": "4s", "policy": ns }
    }))
    .expect("valid DataSharingAgreement");
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    alice
        .create(&PostParams::default(), &agreement)
        .await
        .expect("filed");
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    let phase = |phase: SharingPhase| {
        let alice = alice.clone();
        async move {
            support::wait_until(&alice, "short-share", &format!("{phase:?}"), |a| {
                a.status.as_ref().and_then(|st| st.phase) == Some(phase)
            })
            .await
        }
    };
    phase(SharingPhase::Pending).await;
    support::annotate(
        &carol,
        "short-share",
        &[("approve.gatehouse.dev/data-owner", "carol")],
    )
    .await;
    let share = phase(SharingPhase::Active)
        .await
        .status
        .and_then(|st| st.share)
        .expect("share");
    let copies = Api::<Secret>::namespaced(admin.clone(), &recipient);
    let copy = share.objects[0].name.clone();

    first.stop();
    let overdue = share.expires_at.0.as_millisecond() + 2000 - Timestamp::now().as_millisecond();
    tokio::time::sleep(Duration::from_millis(u64::try_from(overdue).unwrap_or(0))).await;
    assert!(
        copies.get_opt(&copy).await.expect("get").is_some(),
        "with the operator down nothing removes the copy: the retention end is overdue"
    );

    let second = support::spawn_operator(kubeconfig, "retention-operator-2");
    phase(SharingPhase::Expired).await;
    assert!(
        copies.get_opt(&copy).await.expect("get").is_none(),
        "removed at start"
    );
    second.stop();
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_operator_deletes_a_record_once_its_retention_ended_and_not_before() {
    use gatehouse::api::AccessRecord;
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let operator = support::spawn_operator_with(
        kubeconfig,
        "record-retention",
        &["--record-retention=6s", "--sweep-interval=1s"],
    );
    let s = setup(kubeconfig, "record-retention").await;
    s.approved_request("2s").await;
    let expired = s.phase(AccessPhase::Expired).await;
    let uid = expired.metadata.uid.clone().expect("uid");
    let records = Api::<AccessRecord>::all(s.admin.clone());
    let name = format!("accessrequest.{}.alice-read.{uid}", s.ns);
    let complete = support::wait_until(&records, &name, "complete", |r| r.spec.complete).await;
    let until = complete.spec.retain_until.clone().expect("retainUntil").0;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = records.get_opt(&name).await.expect("get");
        let now = Timestamp::now();
        match found {
            Some(_) => assert!(Instant::now() < deadline, "still kept long after {until}"),
            None => {
                assert!(
                    now >= until,
                    "deleted at {now}, before its retention ended at {until}"
                );
                eprintln!("e2e: record deleted at {now}, retention ended at {until}");
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The request is still there: a change to it reconciles it, and the record stays gone.
    support::annotate(&s.alice, "alice-read", &[("e2e.gatehouse.dev/touch", "1")]).await;
    // Watched rather than looked at once: the sweep would delete a rewritten record again.
    let mut records_watch = std::pin::pin!(kube::runtime::watcher(
        records.clone(),
        kube::runtime::watcher::Config::default().fields(&format!("metadata.name={name}")),
    ));
    let rewritten = tokio::time::timeout(Duration::from_secs(4), async {
        use futures::StreamExt;
        while let Some(event) = records_watch.next().await {
            if let Ok(
                kube::runtime::watcher::Event::Apply(_)
                | kube::runtime::watcher::Event::InitApply(_),
            ) = event
            {
                return true;
            }
        }
        false
    })
    .await
    .unwrap_or(false);
    assert!(
        !rewritten,
        "a record whose retention ended is never written again"
    );
    operator.stop();
}

/// Removes the test's record-blocking admission policy when dropped, even if the test failed.
struct UnblockRecords(&'static Path);

impl Drop for UnblockRecords {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kubectl")
            .env("KUBECONFIG", self.0)
            .args([
                "delete",
                "--ignore-not-found",
                "validatingadmissionpolicybinding/e2e-block-records",
                "validatingadmissionpolicy/e2e-block-records",
            ])
            .output();
    }
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_record_not_written_before_the_operator_was_killed_is_complete_after_restart() {
    use gatehouse::api::{AccessRecord, Outcome};
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let first = support::spawn_operator(kubeconfig, "record-operator-1");
    let s = setup(kubeconfig, "record-restart").await;
    s.approved_request("4s").await;
    let active = s.phase(AccessPhase::Active).await;
    let uid = active.metadata.uid.clone().expect("uid");
    let records = Api::<AccessRecord>::all(s.admin.clone());
    let name = format!("accessrequest.{}.alice-read.{uid}", s.ns);
    support::wait_until(&records, &name, "the record of the active grant", |r| {
        r.spec.outcome == Outcome::Active
    })
    .await;

    // From now on the API server refuses every record write: the operator ends the grant and
    // writes its status, but not its record.
    let _unblock = UnblockRecords(kubeconfig);
    let block = json!({ "apiVersion": "v1", "kind": "List", "items": [
        { "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
          "metadata": { "name": "e2e-block-records" },
          "spec": { "failurePolicy": "Fail",
                    "matchConstraints": { "resourceRules": [{ "apiGroups": ["gatehouse.dev"],
                        "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
                        "resources": ["accessrecords"] }] },
                    "validations": [{ "expression": "false",
                                      "message": "e2e: record writes are blocked" }] } },
        { "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
          "metadata": { "name": "e2e-block-records" },
          "spec": { "policyName": "e2e-block-records", "validationActions": ["Deny"] } }
    ]});
    let mut apply = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["apply", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("kubectl");
    {
        use std::io::Write;
        apply
            .stdin
            .take()
            .expect("stdin")
            .write_all(block.to_string().as_bytes())
            .expect("manifest written");
    }
    assert!(apply.wait().expect("kubectl ran").success());

    s.phase(AccessPhase::Expired).await;
    let log = concat!(env!("CARGO_MANIFEST_DIR"), "/target/record-operator-1.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("record writes are blocked")
    {
        assert!(
            Instant::now() < deadline,
            "the operator never tried to write the record of the ended grant"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    first.kill();
    let stale = records.get(&name).await.expect("record");
    assert_eq!(
        (stale.spec.outcome, stale.spec.complete),
        (Outcome::Active, false),
        "killed between the end and the record write"
    );

    drop(_unblock);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = support::spawn_operator(kubeconfig, "record-operator-2");
    let complete =
        support::wait_until(&records, &name, "the complete record", |r| r.spec.complete).await;
    assert_eq!(complete.spec.outcome, Outcome::Expired);
    assert_eq!(
        complete.spec.end.as_ref().map(|e| e.reason.as_str()),
        Some("Expired")
    );
    assert!(complete.spec.removal.is_some());
    second.stop();
}

/// Restores the shipped admission policies and the org chart they read when dropped, even if the
/// test failed half-way.
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
        let _ = std::process::Command::new("kubectl")
            .env("KUBECONFIG", self.0)
            .args([
                "apply",
                "--server-side",
                "--force-conflicts",
                "-f",
                concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/org-chart.yaml"),
            ])
            .output();
    }
}

/// Writes `status` as `api`'s user once the deleted `gatehouse-status` binding is no longer
/// enforced (the API server drops it a moment after the delete).
async fn forge_status<K>(api: &Api<K>, name: &str, status: &serde_json::Value)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
        {
            Ok(_) => return,
            Err(kube::Error::Api(refused)) if refused.code == 403 && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!(
                "with the status policy gone, the forged status write of {name} is admitted: {err}"
            ),
        }
    }
}

/// Defence in depth: with the `gatehouse-status` policy gone (a cluster admin removed it, or it
/// was never installed), a namespace admin can write status. Forging an activation must still
/// grant nothing: the operator only trusts a window it sealed.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_forged_status_grants_nothing_even_without_the_status_policy() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let operator = support::spawn_operator(kubeconfig, "forgery-operator");
    let s = setup(kubeconfig, "forgery").await;
    // mallory administers a namespace of her own (`*` on `*`: she may write status there once
    // nothing stops her) and files a request there for access in the team's namespace.
    let own = support::unique("forgery-own");
    support::namespace(&s.admin, &own, &[]).await;
    support::namespace_admin(&s.admin, &own, "mallory").await;
    let mallory =
        Api::<AccessRequest>::namespaced(support::client(kubeconfig, "mallory").await, &own);
    wait_for_readyz(&operator, 200).await;
    let restore = RestorePolicies(kubeconfig);
    Api::<ValidatingAdmissionPolicyBinding>::all(s.admin.clone())
        .delete("gatehouse-status", &Default::default())
        .await
        .expect("delete the binding");
    let unready = wait_for_readyz(&operator, 503).await;
    assert!(
        unready.contains("ValidatingAdmissionPolicyBinding gatehouse-status is missing"),
        "/readyz says why: {unready}"
    );

    let request: AccessRequest = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": "forged", "namespace": own },
        "spec": { "requester": "mallory", "role": { "kind": "ClusterRole", "name": ROLE },
                  "namespaces": [s.ns],
                  "duration": "10m", "justification": "OPS-7 forgery drill" }
    }))
    .expect("valid request");
    mallory
        .create(&PostParams::default(), &request)
        .await
        .expect("request");
    support::wait_until(&mallory, "forged", "a first status", |ar| {
        ar.status.is_some()
    })
    .await;
    let binding = format!("gatehouse.{}.forged", s.ns);
    let forged = json!({ "status": {
        "phase": "Active",
        "grant": {
            "bindings": [{ "kind": "RoleBinding", "namespace": s.ns, "name": binding }],
            "activatedAt": Timestamp::now().to_string(),
            "expiresAt": "2099-01-01T00:00:00Z",
            "seal": "hmac-sha256:0000000000000000000000000000000000000000000000000000000000000000"
        }
    }});
    forge_status(&mallory, "forged", &forged).await;
    let ended = support::wait_until(&mallory, "forged", "StatusTampered", |ar| {
        ar.status
            .as_ref()
            .and_then(|st| find(&st.conditions, "StatusTampered"))
            .is_some_and(|c| c.status == "True")
    })
    .await;
    let status = ended.status.expect("status");
    eprintln!(
        "e2e: forged status: {}",
        find(&status.conditions, "StatusTampered")
            .map(|c| c.message.as_str())
            .unwrap_or_default()
    );
    assert_eq!(status.phase, Some(AccessPhase::Revoked));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !support::can_i(kubeconfig, "mallory", "get", "configmaps", &s.ns),
        "no access from a forged status"
    );
    let bindings = Api::<RoleBinding>::namespaced(s.admin.clone(), &s.ns);
    assert!(
        bindings.get_opt(&binding).await.expect("get").is_none(),
        "no binding was ever created"
    );

    // The same forgery on a DataSharingAgreement puts no data in the recipient namespace.
    let (owner_ns, recipient) = support::sharing_namespaces(
        &s.admin,
        "forgery-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "2160h" }),
    )
    .await;
    support::namespace_admin(&s.admin, &owner_ns, "mallory").await;
    let source: Secret = serde_json::from_value(json!({
        "metadata": { "name": "orders-db" }, "stringData": { "password": "p" }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(s.admin.clone(), &owner_ns)
        .create(&PostParams::default(), &source)
        .await
        .expect("source");
    let agreement: DataSharingAgreement = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": "forged-share", "namespace": owner_ns },
        "spec": { "requester": "mallory",
                  "data": [{ "secret": "orders-db", "keys": ["password"] }],
                  "recipient": { "namespace": recipient },
                  "purpose": "forgery drill", "transfer": { "method": "Copy" },
                  "retention": "1h", "policy": owner_ns }
    }))
    .expect("valid agreement");
    let agreements = Api::<DataSharingAgreement>::namespaced(
        support::client(kubeconfig, "mallory").await,
        &owner_ns,
    );
    agreements
        .create(&PostParams::default(), &agreement)
        .await
        .expect("mallory files");
    support::wait_until(&agreements, "forged-share", "a first status", |dsa| {
        dsa.status.is_some()
    })
    .await;
    let forged = json!({ "status": {
        "phase": "Active",
        "share": { "objects": [], "activatedAt": Timestamp::now().to_string(),
                   "expiresAt": "2099-01-01T00:00:00Z" }
    }});
    forge_status(&agreements, "forged-share", &forged).await;
    let ended = support::wait_until(&agreements, "forged-share", "StatusTampered", |dsa| {
        dsa.status
            .as_ref()
            .and_then(|st| find(&st.conditions, "StatusTampered"))
            .is_some_and(|c| c.status == "True")
    })
    .await;
    assert_eq!(
        ended.status.and_then(|st| st.phase),
        Some(SharingPhase::Revoked)
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let copies = Api::<Secret>::namespaced(s.admin.clone(), &recipient)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(
        copies.items.iter().all(|c| !c
            .metadata
            .name
            .as_deref()
            .unwrap_or_default()
            .contains("forged-share")),
        "no data in the recipient namespace: {:?}",
        copies
            .items
            .iter()
            .map(|c| c.metadata.name.clone())
            .collect::<Vec<_>>()
    );

    drop(restore);
    wait_for_readyz(&operator, 200).await;
    operator.stop();
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn nothing_is_provisioned_while_the_approval_policies_are_missing() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let operator = support::spawn_operator(kubeconfig, "integrity-operator");
    let s = setup(kubeconfig, "integrity").await;
    wait_for_readyz(&operator, 200).await;
    let restore = RestorePolicies(kubeconfig);
    Api::<ValidatingAdmissionPolicyBinding>::all(s.admin.clone())
        .delete("gatehouse-approvals", &Default::default())
        .await
        .expect("delete the binding");
    let unready = wait_for_readyz(&operator, 503).await;
    assert!(
        unready.contains("ValidatingAdmissionPolicyBinding gatehouse-approvals is missing"),
        "/readyz says why the leader is not ready: {unready}"
    );

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
    wait_for_readyz(&operator, 200).await;
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

/// The leader election Lease, as deploy/ names it (its RBAC allows no other name).
const LEASE: &str = "gatehouse-operator";
/// Shorter than the default 15 s so that a takeover takes seconds.
const LEASE_DURATION: Duration = Duration::from_secs(6);
/// The series of AccessRequest reconciles.
const AR_RECONCILES: &str = r#"gatehouse_reconciles_total{kind="AccessRequest"}"#;

/// `kubectl ARGS` as the admin; panics with its output when it fails.
fn kubectl(kubeconfig: &Path, args: &[&str]) {
    let output = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "kubectl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Labels `name` as the admin, an update every binding of an approval policy looks at; the
/// API server's refusal, if any.
async fn probe(requests: &Api<AccessRequest>, name: &str, attempt: u32) -> Result<(), String> {
    let patch = json!({ "metadata": { "labels": { "probe": attempt.to_string() } } });
    match requests
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(refused)) => Err(refused.message),
        Err(other) => panic!("labelling {name}: {other}"),
    }
}

/// Probes until the API server admits (`true`) or refuses (`false`) the admin's update, so that
/// each step of the reinstall has reached admission before the next one.
async fn wait_for_admission(requests: &Api<AccessRequest>, name: &str, admits: bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let outcome = probe(requests, name, attempt).await;
        match &outcome {
            Ok(()) if admits => return String::new(),
            Err(message) if !admits => return message.clone(),
            _ if Instant::now() > deadline => {
                panic!("after 30s the API server still answers {outcome:?} to an update of {name}")
            }
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// What a reinstall does (`kubectl delete -k deploy/` then `kubectl apply -k deploy/`, or `helm
/// uninstall` then `helm install`): the requester-manager policy and its binding are deleted, so
/// for a while no binding names the org chart's kind, and created again with the org chart. The
/// manager then still decides, and only the manager. With a built-in paramKind (the ConfigMap
/// this once was) the API server stops watching that kind for good at that moment
/// (kubernetes/kubernetes#130887), so it never sees the org chart created again: every update of
/// every request is refused, or judged against the org chart as it was, until it restarts.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_requesters_manager_still_decides_after_the_manager_policy_is_reinstalled() {
    const POLICY: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/admission/requester-manager.yaml"
    );
    const ORG_CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/base/org-chart.yaml");
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let operator = support::spawn_operator(kubeconfig, "reinstall-operator");
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique("reinstall");
    support::namespace(&admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::allow_requests(&admin, &ns, "alice").await;
    // mallory holds the RBAC right for role manager, which grants nothing on a manager stage;
    // carol, alice's manager, only what annotating takes.
    support::allow_approval(&admin, &ns, "mallory", "manager").await;
    support::allow_approval(&admin, &ns, "carol", "unrelated").await;
    support::cluster_role(&admin, ROLE, "configmaps").await;
    let policy: gatehouse::api::AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy", "metadata": { "name": ns },
        "spec": { "roles": [{ "kind": "ClusterRole", "name": ROLE }],
                  "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
                  "maxDuration": "1h",
                  "approvals": [{ "role": "manager", "approver": "RequesterManager" }] }
    }))
    .expect("valid AccessPolicy");
    Api::<gatehouse::api::AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let file = |name: &'static str| {
        let alice = alice.clone();
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                      "duration": "10m", "justification": "OPS-9 after the reinstall" }
        }))
        .expect("valid request");
        async move {
            alice
                .create(&PostParams::default(), &request)
                .await
                .unwrap_or_else(|err| panic!("{name} cannot be filed: {err}"));
            support::wait_for_stages(&alice, name).await;
        }
    };
    file("probe").await;
    let requests = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    wait_for_admission(&requests, "probe", true).await;
    wait_for_readyz(&operator, 200).await;

    // Uninstall: the org chart goes (kubectl deletes it; the API server then refuses every
    // update), then the policy and its binding (updates are admitted again: the API server
    // dropped the binding, and with it its interest in the org chart's kind).
    let restore = RestorePolicies(kubeconfig);
    kubectl(kubeconfig, &["delete", "-f", ORG_CHART]);
    let refused = wait_for_admission(&requests, "probe", false).await;
    eprintln!("e2e: without the org chart: {refused}");
    assert!(
        refused.contains("no params found for policy binding with `Deny` parameterNotFoundAction"),
        "{refused}"
    );
    kubectl(kubeconfig, &["delete", "-f", POLICY]);
    wait_for_admission(&requests, "probe", true).await;
    let unready = wait_for_readyz(&operator, 503).await;
    assert!(
        unready.contains("gatehouse-requester-manager is missing"),
        "{unready}"
    );

    // Install again: policy, binding and an empty org chart, then HR sync adds alice's manager.
    let installed = Instant::now();
    kubectl(
        kubeconfig,
        &["apply", "--server-side", "-f", POLICY, "-f", ORG_CHART],
    );
    support::org_chart(&admin, &[("alice", Some("carol"))]).await;
    wait_for_readyz(&operator, 200).await;

    // The manager per the org chart created after the reinstall decides; nobody else does. The
    // API server loads a new binding a moment after it is created: until then mallory's approval
    // (a dry run, which admission judges as the real one) would pass unchecked.
    file("alice-read").await;
    let mallory =
        Api::<AccessRequest>::namespaced(support::client(kubeconfig, "mallory").await, &ns);
    let mallory_approves = json!({ "metadata": { "annotations": {
        "approve.gatehouse.dev/manager": "mallory" } } });
    let dry_run = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let outcome = mallory
            .patch("alice-read", &dry_run, &Patch::Merge(&mallory_approves))
            .await;
        match outcome {
            Err(kube::Error::Api(refused))
                if refused
                    .message
                    .contains("only the requester's manager 'carol' decides it") =>
            {
                break refused.message;
            }
            other if Instant::now() > deadline => panic!(
                "30s after the reinstall the manager policy does not judge by the new org chart: {other:?}"
            ),
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    eprintln!(
        "e2e: the manager policy judged by the new org chart {:?} after the reinstall: {refused}",
        installed.elapsed()
    );
    let (code, message) = support::rejection(
        mallory
            .patch(
                "alice-read",
                &PatchParams::default(),
                &Patch::Merge(&mallory_approves),
            )
            .await,
    );
    assert_eq!(code, 403, "{message}");
    let carol = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::annotate(
        &carol,
        "alice-read",
        &[("approve.gatehouse.dev/manager", "carol")],
    )
    .await;
    let active = support::wait_until(&alice, "alice-read", "Active", |ar| {
        ar.status.as_ref().and_then(|st| st.phase) == Some(AccessPhase::Active)
    })
    .await;
    let status = active.status.expect("status");
    assert!(
        status
            .approvals
            .iter()
            .any(|a| a.role == "manager" && a.user == "carol"),
        "{:?}",
        status.approvals
    );
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));

    drop(restore);
    operator.stop();
}

fn leases(admin: &kube::Client) -> Api<Lease> {
    Api::namespaced(admin.clone(), support::OPERATOR_NAMESPACE)
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases
        .get_opt(LEASE)
        .await
        .expect("read the Lease")
        .and_then(|l| l.spec?.holder_identity)
}

/// Waits until `identity` holds the Lease; how long that took.
async fn wait_for_holder(leases: &Api<Lease>, identity: &str, within: Duration) -> Duration {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < within {
        last = holder(leases).await;
        if last.as_deref() == Some(identity) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{identity} did not hold Lease {LEASE} within {within:?}; holder: {last:?}")
}

/// Polls `/readyz` until it answers `code` (or panics after 30 s); its body.
async fn wait_for_readyz(operator: &support::Operator, code: u16) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = Err(String::new());
    while Instant::now() < deadline {
        last = operator.get("/readyz");
        if let Ok((got, body)) = &last
            && *got == code
        {
            return body.clone();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("/readyz never answered {code} within 30s; last: {last:?}")
}

fn metrics(operator: &support::Operator) -> String {
    match operator.get("/metrics") {
        Ok((200, text)) => text,
        other => panic!("/metrics failed: {other:?}"),
    }
}

/// The operator's metrics once the `gatehouse_approval_to_provisioned_seconds` histogram counts
/// at least one provisioning, or its last scrape after 5 s. The operator observes a provisioning
/// when its status write returns, which can be just after a watch showed that very status to the
/// test: a scrape at once would race the observation.
async fn metrics_after_provisioning(operator: &support::Operator) -> String {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let text = metrics(operator);
        if provisionings(&text) >= 1.0 || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn provisionings(metrics: &str) -> f64 {
    support::sample(metrics, "gatehouse_approval_to_provisioned_seconds_count").unwrap_or(0.0)
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn only_the_leader_acts_and_a_standby_takes_over_when_it_dies_or_stops() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let s = setup(kubeconfig, "takeover").await;
    let leases = leases(&s.admin);
    // A Lease an earlier run left held would make the first operator wait for it to expire.
    let _ = leases.delete(LEASE, &Default::default()).await;
    let duration = format!("--lease-duration={}s", LEASE_DURATION.as_secs());
    let leader = support::spawn_operator_with(kubeconfig, "takeover-a", &[&duration]);
    wait_for_holder(&leases, "takeover-a", Duration::from_secs(30)).await;
    let standby = support::spawn_operator_with(kubeconfig, "takeover-b", &[&duration]);
    let ready = wait_for_readyz(&standby, 200).await;
    eprintln!("e2e: the standby is ready: {}", ready.trim());

    s.approved_request_named("first", "10m").await;
    s.phase_of("first", AccessPhase::Active).await;
    let (leading, standing_by) = (metrics(&leader), metrics(&standby));
    assert_eq!(support::sample(&leading, "gatehouse_leader"), Some(1.0));
    assert!(
        support::sample(&leading, AR_RECONCILES).unwrap_or(0.0) > 0.0,
        "{leading}"
    );
    assert_eq!(support::sample(&standing_by, "gatehouse_leader"), Some(0.0));
    assert_eq!(
        support::sample(&standing_by, AR_RECONCILES),
        None,
        "the standby reconciles nothing:\n{standing_by}"
    );
    assert_eq!(holder(&leases).await.as_deref(), Some("takeover-a"));

    leader.kill();
    assert_eq!(
        holder(&leases).await.as_deref(),
        Some("takeover-a"),
        "a killed leader releases nothing: the standby has to wait for the Lease to expire"
    );
    let took = wait_for_holder(
        &leases,
        "takeover-b",
        LEASE_DURATION + Duration::from_secs(5),
    )
    .await;
    eprintln!(
        "e2e: the standby took over {took:?} after the leader was killed (lease duration {LEASE_DURATION:?})"
    );
    s.approved_request_named("second", "10m").await;
    s.phase_of("second", AccessPhase::Active).await;
    let leading = metrics_after_provisioning(&standby).await;
    assert_eq!(support::sample(&leading, "gatehouse_leader"), Some(1.0));
    assert!(
        provisionings(&leading) >= 1.0,
        "the new leader provisioned the second request:\n{leading}"
    );

    // A leader stopped with SIGTERM releases the Lease: a standby takes it at its next look,
    // long before the Lease would expire (at least 4 s: renewals are 2 s apart).
    let mut third = support::spawn_operator_with(kubeconfig, "takeover-c", &[&duration]);
    wait_for_readyz(&third, 200).await;
    let stopped = Instant::now();
    standby.stop();
    wait_for_holder(&leases, "takeover-c", Duration::from_secs(10)).await;
    let took = stopped.elapsed();
    eprintln!("e2e: a standby took over {took:?} after the leader got SIGTERM");
    assert!(
        took < Duration::from_secs(3),
        "the released Lease was taken {took:?} after the stop, as if it had expired"
    );

    // Holding the Lease comes a moment before acting on it: take it away only from a leader.
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::sample(&metrics(&third), "gatehouse_leader") != Some(1.0) {
        assert!(
            Instant::now() < deadline,
            "takeover-c never started leading"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Someone else takes the Lease: the leader must stop acting at once, and stand by in the same
    // process rather than exit.
    let intruder = json!({
        "spec": { "holderIdentity": "intruder", "renewTime": MicroTime(Timestamp::now()) }
    });
    leases
        .patch(LEASE, &PatchParams::default(), &Patch::Merge(&intruder))
        .await
        .expect("take the Lease");
    let deadline = Instant::now() + Duration::from_secs(10);
    while support::sample(&metrics(&third), "gatehouse_leader") != Some(0.0) {
        assert!(
            Instant::now() < deadline,
            "takeover-c still leads 10 s after another replica took its Lease"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_path = concat!(env!("CARGO_MANIFEST_DIR"), "/target/takeover-c.log");
    let log = std::fs::read_to_string(log_path).unwrap_or_default();
    assert!(log.contains("lost the leadership"), "the log says why");
    let reconciles = support::sample(&metrics(&third), AR_RECONCILES);
    // While the intruder's Lease is valid nobody acts: a request approved now waits.
    s.approved_request_named("third", "10m").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = s.alice.get("third").await.expect("get");
    assert!(
        waiting.status.is_none(),
        "a replica that lost its Lease acted: {:?}",
        waiting.status
    );
    assert_eq!(
        support::sample(&metrics(&third), AR_RECONCILES),
        reconciles,
        "no reconcile ran after the Lease was lost"
    );
    assert!(
        third.exit_within(Duration::ZERO).is_none(),
        "a leader that lost its Lease stands by, it does not exit"
    );
    // The intruder never renews: once its Lease expires the same process leads again.
    let took = wait_for_holder(
        &leases,
        "takeover-c",
        LEASE_DURATION + Duration::from_secs(5),
    )
    .await;
    eprintln!("e2e: the replica that lost its Lease led again {took:?} later, without a restart");
    s.phase_of("third", AccessPhase::Active).await;
    third.stop();
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_metrics_count_reconciles_provisioning_and_active_grants() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    let operator = support::spawn_operator(kubeconfig, "metrics-operator");
    let s = setup(kubeconfig, "metrics").await;
    s.approved_request("10m").await;
    s.phase(AccessPhase::Active).await;

    let text = metrics_after_provisioning(&operator).await;
    assert!(
        support::sample(&text, AR_RECONCILES).unwrap_or(0.0) > 0.0,
        "{text}"
    );
    assert!(provisionings(&text) >= 1.0, "{text}");
    assert_eq!(
        support::sample(&text, "gatehouse_leader"),
        Some(1.0),
        "{text}"
    );
    // Cluster-wide: earlier tests leave grants of their own, so compare with the API server.
    let all = Api::<AccessRequest>::all(s.admin.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let active = all
            .list(&Default::default())
            .await
            .expect("list requests")
            .items
            .iter()
            .filter(|r| r.status.as_ref().and_then(|st| st.phase) == Some(AccessPhase::Active))
            .count();
        let text = metrics(&operator);
        let gauge = support::sample(&text, "gatehouse_active_grants");
        if gauge == Some(active as f64) {
            assert!(active >= 1);
            eprintln!("e2e: gatehouse_active_grants {active}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gatehouse_active_grants {gauge:?}, but {active} requests are Active:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    operator.stop();
    assert_eq!(
        holder(&leases(&s.admin)).await,
        None,
        "a leader stopped with SIGTERM releases the Lease for the next one"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_notification_still_pending_when_the_operator_stops_is_sent_after_it_restarts() {
    let _turn = TURN.lock().await;
    let kubeconfig = support::control_plane();
    // Retried for minutes: still pending when this operator stops.
    let first = support::spawn_operator_with(
        kubeconfig,
        "notify-restart-operator-1",
        &["--notification-attempts=20"],
    );
    let s = setup(kubeconfig, "notify-restart").await;
    let receiver = receiver::Receiver::start(&[]).await;
    let secret = support::unique("notify-restart-hmac");
    Api::<gatehouse::api::AccessPolicy>::all(s.admin.clone())
        .patch(
            &s.ns,
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "spec": { "notifyExpiringBefore": "1m", "notifications": [{
                "url": receiver.url("/restart"), "format": "CloudEvents",
                "secretRef": { "name": secret } }] } }),
            ),
        )
        .await
        .expect("the policy takes notifications");
    s.approved_request("1h").await;
    // Filed and approved at once, it may be told as waiting first or not: what counts is that
    // every notification its status records as pending is sent.
    let pending = support::wait_until(&s.alice, "alice-read", "active, told", |ar| {
        ar.status.as_ref().is_some_and(|st| {
            st.notifications
                .last()
                .is_some_and(|n| n.event == gatehouse::api::NotificationEvent::Active)
        })
    })
    .await;
    let recorded: Vec<String> = pending
        .status
        .iter()
        .flat_map(|st| &st.notifications)
        .map(|n| {
            let event = match n.event {
                gatehouse::api::NotificationEvent::Waiting => "waiting",
                gatehouse::api::NotificationEvent::Decided => "decided",
                gatehouse::api::NotificationEvent::Active => "active",
                other => panic!("unexpected {other} before activation"),
            };
            format!("dev.gatehouse.accessrequest.{event}")
        })
        .collect();
    assert!(
        pending
            .status
            .iter()
            .flat_map(|st| &st.notifications)
            .flat_map(|n| &n.deliveries)
            .all(|d| d.state == gatehouse::api::DeliveryState::Pending),
        "without its key nothing is sent: {:#?}",
        pending.status
    );
    first.stop();
    assert!(
        receiver.at("/restart").is_empty(),
        "nothing was sent unsigned"
    );

    // The key appears while no operator runs; the next one finds the pending deliveries in status.
    let key = "restart-key";
    let hmac: Secret = serde_json::from_value(json!({
        "metadata": { "name": secret }, "stringData": { "key": key }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(s.admin.clone(), support::OPERATOR_NAMESPACE)
        .create(&PostParams::default(), &hmac)
        .await
        .expect("the HMAC key Secret");
    let second = support::spawn_operator(kubeconfig, "notify-restart-operator-2");
    let received = receiver
        .wait("/restart", "every recorded event", |got| {
            receiver::events_about(got, "alice-read").len() == recorded.len()
        })
        .await;
    let types = receiver::types(&receiver::events_about(&received, "alice-read"));
    eprintln!("e2e: sent after the restart: {types:?}");
    assert_eq!(types, recorded, "what status recorded as pending, in order");
    assert!(types.ends_with(&[
        "dev.gatehouse.accessrequest.decided".to_string(),
        "dev.gatehouse.accessrequest.active".to_string()
    ]));
    for post in &received {
        assert_eq!(
            post.signature.as_deref(),
            Some(receiver::expected_signature(key.as_bytes(), &post.body).as_str())
        );
    }
    support::wait_until(&s.alice, "alice-read", "every delivery recorded", |ar| {
        ar.status.as_ref().is_some_and(|st| {
            st.notifications
                .iter()
                .flat_map(|n| &n.deliveries)
                .all(|d| d.state == gatehouse::api::DeliveryState::Delivered)
        })
    })
    .await;
    second.stop();
}
