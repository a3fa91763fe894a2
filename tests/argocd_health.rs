//! The Argo CD health checks in `deploy/argocd/` give every phase the health the README promises,
//! as Argo CD itself would compute it: each script runs in gopher-lua, the Lua engine inside Argo
//! CD, with the libraries and object conversion Argo CD uses (`hack/argocd`, a Go module run with
//! `go run`). The objects are serialized from the CRDs' Rust types with conditions set by the
//! operator's own condition helper, so a change to the status shape shows up here too.
//!
//! Needs Go (1.26+) on PATH; the first run compiles gopher-lua (seconds), later runs reuse Go's
//! build cache.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use gatehouse::api::common::{RoleKind, RoleRef};
use gatehouse::api::conditions::{self, ACCEPTED, ConditionUpdate, GRANTED, READY, SHARED, reason};
use gatehouse::api::{
    AccessPhase, AccessRequest, AccessRequestSpec, AccessRequestStatus, BindingRef, Classification,
    ClassificationResult, DataItem, DataSharingAgreement, DataSharingAgreementSpec,
    DataSharingAgreementStatus, Grant, Recipient, ShareRecord, SharedObject, SharingPhase,
    SyncRecord, Transfer, TransferMethod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const ACCESS_REQUEST_SCRIPT: &str = "deploy/argocd/accessrequest-health.lua";
const AGREEMENT_SCRIPT: &str = "deploy/argocd/datasharingagreement-health.lua";
const CM_PATCH: &str = "deploy/argocd/argocd-cm-patch.yaml";

/// What Argo CD would show for one object.
#[derive(Debug, Deserialize)]
struct Health {
    status: String,
    message: String,
    /// Set when Argo CD could not have used the script's answer (a Lua error, a wrong return).
    error: Option<String>,
}

/// Runs `script` (a path relative to the repository, or absolute) once per object, all in one
/// harness process.
fn argo_health(script: &str, objects: &[Value]) -> Vec<Health> {
    let script = Path::new(ROOT).join(script);
    let mut child = Command::new("go")
        .current_dir(format!("{ROOT}/hack/argocd"))
        .args(["run", "."])
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| match err.kind() {
            std::io::ErrorKind::NotFound => panic!(
                "`go` is not on PATH: these tests run the Argo CD health checks with Argo CD's Lua \
                 engine (gopher-lua), built from hack/argocd; install Go 1.26+ and retry"
            ),
            _ => panic!("cannot start `go run` in hack/argocd: {err}"),
        });
    // The harness reads all of its input before it writes anything, so this cannot deadlock.
    let input = serde_json::to_vec(objects).expect("objects serialize");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(&input)
        .expect("write objects to the harness");
    let output = child.wait_with_output().expect("the harness runs");
    assert!(
        output.status.success(),
        "hack/argocd failed on {}: {}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let results: Vec<Health> =
        serde_json::from_slice(&output.stdout).expect("the harness prints one result per object");
    assert_eq!(results.len(), objects.len(), "one result per object");
    results
}

/// One object and the health Argo CD must show for it.
struct Case {
    name: &'static str,
    object: Value,
    status: &'static str,
    /// A part of the message that proves where it came from (usually the Ready condition).
    message: &'static str,
}

fn case(name: &'static str, object: Value, status: &'static str, message: &'static str) -> Case {
    Case {
        name,
        object,
        status,
        message,
    }
}

/// Evaluates every case and fails once, listing every case that got the wrong health.
fn check(script: &str, cases: Vec<Case>) {
    let objects: Vec<Value> = cases.iter().map(|c| c.object.clone()).collect();
    let results = argo_health(script, &objects);
    let wrong: Vec<String> = cases
        .iter()
        .zip(&results)
        .filter(|(case, health)| {
            health.error.is_some()
                || health.status != case.status
                || health.message.trim().is_empty()
                || !health.message.contains(case.message)
        })
        .map(|(case, health)| {
            format!(
                "{}: want {} with a message containing {:?}, got {health:?}",
                case.name, case.status, case.message
            )
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{script} gives the wrong health:\n  {}",
        wrong.join("\n  ")
    );
}

fn at(secs: i64) -> Time {
    Time(Timestamp::from_second(secs).expect("valid test timestamp"))
}

/// 2026-11-21T10:55:13Z, when the fixtures' conditions last changed.
const NOW: i64 = 1_795_344_913;

/// Sets conditions the way the operator does (`set_condition`, generation 1).
fn set_conditions(
    list: &mut Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
    updates: &[(&str, bool, &'static str, &str)],
) {
    for &(type_, ok, why, message) in updates {
        conditions::set_condition(
            list,
            ConditionUpdate::new(type_, ok, why, message),
            Some(1),
            at(NOW),
        );
    }
}

/// The README's `alice-db-read` request at generation 1, in `phase`, with the given conditions.
fn access_request(
    phase: Option<AccessPhase>,
    updates: &[(&str, bool, &'static str, &str)],
) -> Value {
    let mut request = AccessRequest::new(
        "alice-db-read",
        AccessRequestSpec {
            requester: "alice".into(),
            subjects: Vec::new(),
            role: RoleRef {
                kind: RoleKind::ClusterRole,
                name: "db-reader".into(),
            },
            namespaces: Vec::new(),
            cluster_wide: false,
            duration: Some("2m".into()),
            justification: "PAY-1234: reconcile the ledger export".into(),
            policy: None,
            start_at: None,
            extends: None,
            supersedes: None,
        },
    );
    request.metadata.namespace = Some("payments".into());
    request.metadata.generation = Some(1);
    let mut status = AccessRequestStatus {
        phase,
        policy: Some("payments-db".into()),
        required_approvals: vec!["manager".into(), "data-owner".into()],
        observed_generation: Some(1),
        ..Default::default()
    };
    if phase == Some(AccessPhase::Active) {
        status.grant = Some(Grant {
            bindings: vec![BindingRef {
                kind: "RoleBinding".into(),
                namespace: Some("payments".into()),
                name: "gatehouse.payments.alice-db-read".into(),
            }],
            activated_at: at(NOW),
            seal: None,
            expires_at: at(NOW + 120),
        });
    }
    set_conditions(&mut status.conditions, updates);
    request.status = Some(status);
    serde_json::to_value(&request).expect("an AccessRequest serializes")
}

/// The README's `orders-to-analytics` agreement at generation 1, in `phase`, with the given
/// conditions.
fn agreement(phase: Option<SharingPhase>, updates: &[(&str, bool, &'static str, &str)]) -> Value {
    let mut agreement = DataSharingAgreement::new(
        "orders-to-analytics",
        DataSharingAgreementSpec {
            requester: "erin".into(),
            data: vec![DataItem {
                secret: Some("orders-db-readonly".into()),
                config_map: None,
                keys: vec!["host".into(), "username".into(), "password".into()],
            }],
            recipient: Recipient {
                namespace: Some("analytics".into()),
                service_account: None,
                external: None,
            },
            purpose: "nightly revenue reporting".into(),
            transfer: Transfer {
                method: TransferMethod::Copy,
            },
            retention: "2m".into(),
            agreement: None,
            start_at: None,
            extends: None,
            supersedes: None,
            policy: None,
        },
    );
    agreement.metadata.namespace = Some("orders".into());
    agreement.metadata.generation = Some(1);
    let mut status = DataSharingAgreementStatus {
        phase,
        policy: Some("default-sharing".into()),
        recipient: Some("analytics/reporting".into()),
        classification: Some(ClassificationResult {
            level: Classification::Internal,
            personal_data: false,
            residency: Vec::new(),
            reasons: vec!["Secret orders-db-readonly: internal".into()],
        }),
        required_approvals: vec!["data-owner".into()],
        observed_generation: Some(1),
        ..Default::default()
    };
    if matches!(
        phase,
        Some(SharingPhase::Active | SharingPhase::Suspended | SharingPhase::Expired)
    ) {
        status.share = Some(ShareRecord {
            objects: vec![SharedObject {
                kind: "Secret".into(),
                namespace: "analytics".into(),
                name: "orders.orders-to-analytics.orders-db-readonly".into(),
                keys: vec!["host".into(), "password".into(), "username".into()],
                sources: vec!["Secret/orders-db-readonly@232".into()],
            }],
            activated_at: at(NOW),
            seal: None,
            expires_at: at(NOW + 120),
            agreement: None,
            syncs: vec![SyncRecord {
                time: at(NOW),
                sources: vec!["Secret/orders-db-readonly@232".into()],
            }],
            removed_at: (phase == Some(SharingPhase::Expired)).then(|| at(NOW + 120)),
        });
    }
    set_conditions(&mut status.conditions, updates);
    agreement.status = Some(status);
    serde_json::to_value(&agreement).expect("a DataSharingAgreement serializes")
}

/// `object` with the field at the JSON pointer `path` removed.
fn without(mut object: Value, path: &str) -> Value {
    let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
    object
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .and_then(|map| map.remove(key))
        .unwrap_or_else(|| panic!("the fixture has {path}"));
    object
}

/// `object` with the field at the JSON pointer `path` set to `value`.
fn with(mut object: Value, path: &str, value: Value) -> Value {
    let (parent, key) = path.rsplit_once('/').expect("a JSON pointer");
    object
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("the fixture has {parent}"))
        .insert(key.to_string(), value);
    object
}

const ACCEPTED_AR: (&str, bool, &str, &str) = (
    ACCEPTED,
    true,
    reason::VALID,
    "AccessPolicy payments-db governs this request",
);

#[test]
fn access_request_health_follows_the_phase() {
    let granted = "granted until 2026-11-21T10:57:13Z";
    let active = access_request(
        Some(AccessPhase::Active),
        &[
            ACCEPTED_AR,
            (GRANTED, true, reason::PROVISIONED, granted),
            (READY, true, reason::PROVISIONED, granted),
        ],
    );
    let waiting = "waiting for approval by manager, data-owner";
    let pending = access_request(
        Some(AccessPhase::Pending),
        &[
            ACCEPTED_AR,
            (GRANTED, false, reason::NOT_GRANTED, waiting),
            (READY, false, reason::WAITING, waiting),
        ],
    );
    let failing = "approved, but provisioning failed: the operator may not bind ClusterRole db-reader; add it to grantableRoles";
    let ended = |phase, why, message| {
        access_request(
            Some(phase),
            &[
                ACCEPTED_AR,
                (GRANTED, false, why, message),
                (READY, false, why, message),
            ],
        )
    };
    let no_policy = "no AccessPolicy allows ClusterRole db-reader; nothing will be granted. Ask a cluster admin for a policy, or name one in spec.policy";
    let cases = vec![
        case("Active", active.clone(), "Healthy", granted),
        case("Pending", pending.clone(), "Progressing", waiting),
        case(
            "Approved, provisioning retried",
            access_request(
                Some(AccessPhase::Approved),
                &[
                    ACCEPTED_AR,
                    (GRANTED, false, reason::PROVISIONING_FAILED, failing),
                    (READY, false, reason::PROVISIONING_FAILED, failing),
                ],
            ),
            "Progressing",
            "provisioning failed",
        ),
        case(
            "Scheduled",
            access_request(
                Some(AccessPhase::Scheduled),
                &[
                    ACCEPTED_AR,
                    (
                        GRANTED,
                        false,
                        reason::SCHEDULED,
                        "every stage approved; granted from 2026-11-22T09:00:00Z",
                    ),
                    (
                        READY,
                        false,
                        reason::SCHEDULED,
                        "every stage approved; granted from 2026-11-22T09:00:00Z",
                    ),
                ],
            ),
            "Suspended",
            "granted from 2026-11-22T09:00:00Z",
        ),
        case(
            "Expired",
            ended(
                AccessPhase::Expired,
                reason::EXPIRED,
                "access expired at 2026-11-21T10:57:13Z",
            ),
            "Healthy",
            "ended as intended (Expired): access expired at",
        ),
        case(
            "Revoked",
            ended(
                AccessPhase::Revoked,
                reason::REVOKED,
                "access revoked by alice",
            ),
            "Healthy",
            "ended as intended (Revoked): access revoked by alice",
        ),
        case(
            "Denied",
            ended(
                AccessPhase::Denied,
                reason::DENIED,
                "denied by bob as manager: no ticket for this",
            ),
            "Degraded",
            "denied by bob as manager",
        ),
        case(
            "TimedOut",
            ended(
                AccessPhase::TimedOut,
                reason::TIMED_OUT,
                "not fully approved within 24h; still waiting for data-owner",
            ),
            "Degraded",
            "not fully approved within 24h",
        ),
        case(
            "Failed",
            access_request(
                Some(AccessPhase::Failed),
                &[
                    (ACCEPTED, false, reason::NO_MATCHING_POLICY, no_policy),
                    (READY, false, reason::NO_MATCHING_POLICY, no_policy),
                ],
            ),
            "Degraded",
            no_policy,
        ),
        case(
            "Failed, only Accepted says why",
            access_request(
                Some(AccessPhase::Failed),
                &[(ACCEPTED, false, reason::NO_MATCHING_POLICY, no_policy)],
            ),
            "Degraded",
            no_policy,
        ),
        case(
            "just created: no status at all",
            without(active.clone(), "/status"),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "spec changed, status still for generation 1",
            with(active.clone(), "/metadata/generation", json!(2)),
            "Progressing",
            "waiting for the operator to observe generation 2",
        ),
        case(
            "status without observedGeneration",
            without(pending.clone(), "/status/observedGeneration"),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "status without a phase yet",
            with(
                active.clone(),
                "/status",
                json!({ "observedGeneration": 1 }),
            ),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "Active without conditions",
            without(active.clone(), "/status/conditions"),
            "Healthy",
            "access granted",
        ),
        case(
            "Pending without conditions",
            without(pending.clone(), "/status/conditions"),
            "Progressing",
            "waiting for approval",
        ),
        case(
            "Expired without conditions",
            access_request(Some(AccessPhase::Expired), &[]),
            "Healthy",
            "ended as intended (Expired)",
        ),
        case(
            "Denied without conditions",
            access_request(Some(AccessPhase::Denied), &[]),
            "Degraded",
            "Denied",
        ),
        case(
            "no metadata.generation: the status counts as is",
            without(active.clone(), "/metadata/generation"),
            "Healthy",
            granted,
        ),
        case(
            "a phase from a newer operator",
            with(active.clone(), "/status/phase", json!("Paused")),
            "Unknown",
            "unknown phase Paused",
        ),
        case(
            "malformed: conditions not a list, status a string",
            with(
                with(active.clone(), "/status/conditions", json!("Ready")),
                "/status/phase",
                json!({ "not": "a string" }),
            ),
            "Unknown",
            "unknown phase",
        ),
        case(
            "malformed: status is a string",
            with(active, "/status", json!("Active")),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "malformed: conditions hold nulls and numbers",
            with(
                pending,
                "/status/conditions",
                json!([null, 7, { "type": "Ready", "message": 3 }]),
            ),
            "Progressing",
            "waiting for approval",
        ),
    ];
    check(ACCESS_REQUEST_SCRIPT, cases);
}

const ACCEPTED_DSA: (&str, bool, &str, &str) = (
    ACCEPTED,
    true,
    reason::VALID,
    "SharingPolicy default-sharing governs this agreement; the data is internal; reviews required: data-owner",
);

#[test]
fn data_sharing_agreement_health_follows_the_phase() {
    let shared = "shared until 2026-11-21T10:57:13Z";
    let active = agreement(
        Some(SharingPhase::Active),
        &[
            ACCEPTED_DSA,
            (SHARED, true, reason::PROVISIONED, shared),
            (READY, true, reason::PROVISIONED, shared),
        ],
    );
    let not_shared = |phase, why, message| {
        agreement(
            Some(phase),
            &[
                ACCEPTED_DSA,
                (SHARED, false, why, message),
                (READY, false, why, message),
            ],
        )
    };
    let waiting = "waiting for review by data-owner";
    let pending = not_shared(SharingPhase::Pending, reason::WAITING, waiting);
    let no_policy = "no SharingPolicy governs this agreement; nothing will be shared. Ask a cluster admin for a policy, or name one in spec.policy";
    let resync_failed = "approved, but the share could not be executed: cannot write Secret analytics/orders.orders-to-analytics.orders-db-readonly: the API server is unavailable";
    let cases = vec![
        case("Active", active.clone(), "Healthy", shared),
        case(
            "Active, a re-sync failed and is retried",
            agreement(
                Some(SharingPhase::Active),
                &[
                    ACCEPTED_DSA,
                    (SHARED, false, reason::PROVISIONING_FAILED, resync_failed),
                    (READY, false, reason::PROVISIONING_FAILED, resync_failed),
                ],
            ),
            "Degraded",
            "could not be executed",
        ),
        case("Pending", pending.clone(), "Progressing", waiting),
        case(
            "AwaitingAgreement",
            not_shared(
                SharingPhase::AwaitingAgreement,
                reason::AWAITING_AGREEMENT,
                "an external recipient needs spec.agreement.reference; meanwhile waiting for review by legal",
            ),
            "Progressing",
            "needs spec.agreement.reference",
        ),
        case(
            "Approved, execution retried",
            not_shared(
                SharingPhase::Approved,
                reason::PROVISIONING_FAILED,
                "approved, but the share could not be executed: Secret analytics/orders.orders-to-analytics.orders-db-readonly exists and was not created by Gatehouse",
            ),
            "Progressing",
            "could not be executed",
        ),
        case(
            "Suspended",
            not_shared(
                SharingPhase::Suspended,
                reason::SOURCE_CHANGED,
                "suspended, nothing is shared until the sources hold what was approved again: spec.data[0]: Secret orders-db-readonly has no key password; list only keys it has",
            ),
            "Degraded",
            "has no key password",
        ),
        case(
            "Expired",
            not_shared(
                SharingPhase::Expired,
                reason::EXPIRED,
                "retention ended at 2026-11-21T10:57:13Z; everything shared was removed",
            ),
            "Healthy",
            "ended as intended (Expired): retention ended",
        ),
        case(
            "Revoked",
            not_shared(
                SharingPhase::Revoked,
                reason::REVOKED,
                "share revoked by erin; everything shared was removed",
            ),
            "Healthy",
            "ended as intended (Revoked): share revoked by erin",
        ),
        case(
            "Denied",
            not_shared(
                SharingPhase::Denied,
                reason::DENIED,
                "denied by carol as data-owner: use the reporting replica",
            ),
            "Degraded",
            "denied by carol as data-owner",
        ),
        case(
            "TimedOut",
            not_shared(
                SharingPhase::TimedOut,
                reason::TIMED_OUT,
                "not fully reviewed within 7d; still waiting for data-owner",
            ),
            "Degraded",
            "not fully reviewed within 7d",
        ),
        case(
            "Failed",
            agreement(
                Some(SharingPhase::Failed),
                &[
                    (ACCEPTED, false, reason::NO_MATCHING_POLICY, no_policy),
                    (READY, false, reason::NO_MATCHING_POLICY, no_policy),
                ],
            ),
            "Degraded",
            no_policy,
        ),
        case(
            "Failed, only Accepted says why",
            agreement(
                Some(SharingPhase::Failed),
                &[(ACCEPTED, false, reason::NO_MATCHING_POLICY, no_policy)],
            ),
            "Degraded",
            no_policy,
        ),
        case(
            "just created: no status at all",
            without(active.clone(), "/status"),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "agreement reference filed, status still for generation 1",
            with(active.clone(), "/metadata/generation", json!(2)),
            "Progressing",
            "waiting for the operator to observe generation 2",
        ),
        case(
            "status without observedGeneration",
            without(pending.clone(), "/status/observedGeneration"),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "status without a phase yet",
            with(
                active.clone(),
                "/status",
                json!({ "observedGeneration": 1 }),
            ),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "Active without conditions",
            without(active.clone(), "/status/conditions"),
            "Healthy",
            "shared",
        ),
        case(
            "Pending without conditions",
            without(pending.clone(), "/status/conditions"),
            "Progressing",
            "waiting for review",
        ),
        case(
            "Suspended without conditions",
            agreement(Some(SharingPhase::Suspended), &[]),
            "Degraded",
            "suspended",
        ),
        case(
            "Revoked without conditions",
            agreement(Some(SharingPhase::Revoked), &[]),
            "Healthy",
            "ended as intended (Revoked)",
        ),
        case(
            "TimedOut without conditions",
            agreement(Some(SharingPhase::TimedOut), &[]),
            "Degraded",
            "TimedOut",
        ),
        case(
            "a phase from a newer operator",
            with(active.clone(), "/status/phase", json!("Paused")),
            "Unknown",
            "unknown phase Paused",
        ),
        case(
            "malformed: status is a list",
            with(active, "/status", json!([1, 2])),
            "Progressing",
            "waiting for the operator",
        ),
        case(
            "malformed: a condition is a string",
            with(pending, "/status/conditions", json!(["Ready"])),
            "Progressing",
            "waiting for review",
        ),
    ];
    check(AGREEMENT_SCRIPT, cases);
}

/// The harness is only a proof if it is as strict as Argo CD: a check that calls the string
/// library, which Argo CD does not open for argocd-cm scripts, must fail here too.
#[test]
fn the_harness_has_no_string_library_like_argo_cd() {
    let dir = env!("CARGO_TARGET_TMPDIR");
    let script = format!("{dir}/argocd-health-uses-string.lua");
    std::fs::write(
        &script,
        "return { status = \"Healthy\", message = string.format(\"%s\", \"ok\") }\n",
    )
    .expect("write the probe script");
    let health = argo_health(&script, &[json!({ "kind": "AccessRequest" })]);
    let error = health[0].error.as_deref().unwrap_or_default();
    assert!(
        error.contains("format"),
        "string.format must fail as in Argo CD, got {:?}",
        health[0]
    );
}

/// `kubectl patch --patch-file` installs what the tests above ran: the ConfigMap keys must hold the
/// .lua files byte for byte.
#[test]
fn argocd_cm_patch_carries_the_scripts_verbatim() {
    let read = |path: &str| {
        std::fs::read_to_string(format!("{ROOT}/{path}"))
            .unwrap_or_else(|err| panic!("cannot read {path}: {err}"))
    };
    let patch: serde_yaml::Value =
        serde_yaml::from_str(&read(CM_PATCH)).expect("the patch is YAML");
    assert_eq!(patch["kind"].as_str(), Some("ConfigMap"));
    assert_eq!(patch["metadata"]["name"].as_str(), Some("argocd-cm"));
    let data = patch["data"].as_mapping().expect("the patch has data");
    assert_eq!(
        data.len(),
        2,
        "one health check per Gatehouse kind with a status"
    );
    for (kind, script) in [
        ("AccessRequest", ACCESS_REQUEST_SCRIPT),
        ("DataSharingAgreement", AGREEMENT_SCRIPT),
    ] {
        let key = format!("resource.customizations.health.gatehouse.dev_{kind}");
        let in_patch = data
            .get(key.as_str())
            .and_then(serde_yaml::Value::as_str)
            .unwrap_or_else(|| panic!("{CM_PATCH} has no {key}"));
        assert!(
            in_patch == read(script),
            "{CM_PATCH} key {key} differs from {script}: copy the script into it, indented by four spaces"
        );
    }
}
