//! The controller test tier: whole reconciles against a fake API server
//! ([`crate::controller::fixtures`]), asserting the exact API calls they make, in order.
//!
//! Each expected sequence is written out call by call, with why each call is there: a reconcile
//! that makes one call more (a write where nothing changed), one fewer (a proof skipped) or the
//! same calls in another order (a binding before its window is on record) fails.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{RoleBinding, Subject};
use kube::api::ObjectMeta;
use serde_json::Value;

use super::*;
use crate::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use crate::apply::Object;
use crate::controller::fixtures::{self, Call, Cluster, path_of};

/// The AccessRecord of the example request (its fixture UID is `uid-alice-db-read`).
const RECORD: &str = "/apis/gatehouse.dev/v1alpha1/accessrecords/accessrequest.payments.alice-db-read.uid-alice-db-read";
/// Where AccessRecords are created.
const RECORDS: &str = "/apis/gatehouse.dev/v1alpha1/accessrecords";
const REVIEWS: &str = "/apis/authorization.k8s.io/v1/subjectaccessreviews";
const REQUEST: &str =
    "/apis/gatehouse.dev/v1alpha1/namespaces/payments/accessrequests/alice-db-read";
const REQUEST_STATUS: &str =
    "/apis/gatehouse.dev/v1alpha1/namespaces/payments/accessrequests/alice-db-read/status";
const AGREEMENT_STATUS: &str = "/apis/gatehouse.dev/v1alpha1/namespaces/orders/datasharingagreements/orders-to-analytics/status";
const SOURCE_SECRET: &str = "/api/v1/namespaces/orders/secrets/orders-db-readonly";
const SOURCE_CONFIG_MAP: &str = "/api/v1/namespaces/orders/configmaps/orders-schema";
const COPIES: &str = "/api/v1/namespaces/analytics/secrets";

/// Where the RoleBindings of namespace `ns` are created.
fn bindings_in(ns: &str) -> String {
    format!("/apis/rbac.authorization.k8s.io/v1/namespaces/{ns}/rolebindings")
}

/// The RoleBinding of the example request in namespace `ns`.
fn binding_at(ns: &str) -> String {
    format!("{}/gatehouse.payments.alice-db-read", bindings_in(ns))
}

fn get(path: &str) -> String {
    format!("GET {path}")
}

fn post(path: &str) -> String {
    format!("POST {path}")
}

fn put(path: &str) -> String {
    format!("PUT {path}")
}

fn delete(path: &str) -> String {
    format!("DELETE {path}")
}

fn patch(path: &str) -> String {
    format!("PATCH {path}")
}

/// An Event with `reason` about an object in namespace `ns`.
fn event(ns: &str, reason: &str) -> String {
    format!("POST /apis/events.k8s.io/v1/namespaces/{ns}/events {reason}")
}

fn lines(calls: &[Call]) -> Vec<String> {
    calls.iter().map(Call::line).collect()
}

/// The one call to `line` (as [`Call::line`] writes it) among `calls`.
fn the<'a>(calls: &'a [Call], line: &str, nth: usize) -> &'a Call {
    calls
        .iter()
        .filter(|c| c.line() == line)
        .nth(nth)
        .unwrap_or_else(|| panic!("no call #{nth} {line} in {:#?}", lines(calls)))
}

/// `object` as the controller's cache holds it.
fn cached<K: Reconciled>(object: K) -> Cached<K> {
    Cached::pack(object).expect("packs")
}

/// Runs one reconcile as the controller would (finalizer helper included).
async fn reconciled<K: Reconciled>(object: &K, ctx: Context) -> Result<Action, Error> {
    reconcile(Arc::new(cached(object.clone())), Arc::new(ctx)).await
}

/// A cluster with the example request approved (in `namespaces`) and the role it asks for.
fn cluster_with(request: &AccessRequest) -> Cluster {
    let cluster = Cluster::new();
    cluster.holds(&fixtures::db_reader());
    cluster.holds(request);
    cluster
}

/// The calls the observe step of a request not yet active makes, approved by carol (data owner)
/// and bob (manager) for a grant in `namespaces`.
fn observe_pending(namespaces: &[&str]) -> Vec<String> {
    // The requested role's rules come from the RBAC cache. Each approver's right to approve for
    // every namespace the grant reaches (admission checked only the request's own), in
    // annotation order: data-owner (carol) before manager (bob).
    std::iter::repeat_n(post(REVIEWS), 2 * namespaces.len()).collect()
}

/// The example request provisioned in `payments` by a first reconcile: the request and its
/// RoleBinding as the cluster now holds them.
async fn provisioned(cluster: &Cluster) -> (AccessRequest, RoleBinding) {
    let request = fixtures::approved_request(&["payments"]);
    cluster.holds(&fixtures::db_reader());
    cluster.holds(&request);
    reconciled(&request, fixtures::context(cluster, []))
        .await
        .expect("the example request is provisioned");
    cluster.take_calls();
    let active = cluster.stored(&request).expect("the request exists");
    assert_eq!(
        active.status.as_ref().and_then(|s| s.phase),
        Some(AccessPhase::Active)
    );
    let binding = cluster
        .stored(&RoleBinding {
            metadata: ObjectMeta {
                name: Some("gatehouse.payments.alice-db-read".into()),
                namespace: Some("payments".into()),
                ..Default::default()
            },
            ..Default::default()
        })
        .expect("the binding was created");
    (active, binding)
}

fn user(name: &str) -> Subject {
    Subject {
        kind: "User".into(),
        name: name.into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        namespace: None,
    }
}

#[tokio::test]
async fn an_approved_request_binds_under_its_window_then_proves_then_reports_active() {
    let request = fixtures::approved_request(&["payments"]);
    let cluster = cluster_with(&request);
    let ctx = fixtures::context(&cluster, []);
    let resync = ctx.resync_period;
    let metrics = ctx.metrics.clone();

    let action = reconciled(&request, ctx).await.expect("provisioned");
    let text = metrics.encode().expect("metrics encode");
    assert!(
        text.contains("gatehouse_approval_to_provisioned_seconds_count 1"),
        "the latency from approval to the binding is measured:\n{text}"
    );

    let calls = cluster.take_calls();
    let mut expected = observe_pending(&["payments"]);
    // The grant itself, created (never applied over someone else's binding), carrying the
    // window it exists under: access never exists without its end on record.
    expected.push(post(&bindings_in("payments")));
    // The proof: the API server confirms alice can now use the role.
    expected.push(post(REVIEWS));
    // Phase Active, with the window and the proof, and one Event for all this reconcile changed
    // (Valid, Approved, Verified, Provisioned, Confirmed), with the reason of the last: the proof.
    expected.push(patch(REQUEST_STATUS));
    expected.push(event("payments", "Confirmed"));
    // The evidence: the record of the decision and the grant, kept after the request is gone.
    expected.push(post(RECORDS));
    assert_eq!(lines(&calls), expected);

    let binding = &the(&calls, &post(&bindings_in("payments")), 0).body;
    assert_eq!(
        binding["metadata"]["name"],
        "gatehouse.payments.alice-db-read"
    );
    assert_eq!(binding["roleRef"]["name"], "db-reader");
    assert_eq!(binding["subjects"][0]["name"], "alice");

    let proof = the(&calls, &post(REVIEWS), 2);
    assert_eq!(proof.body["spec"]["user"], "alice");
    assert_eq!(
        proof.body["spec"]["resourceAttributes"]["namespace"],
        "payments"
    );

    let active = the(&calls, &patch(REQUEST_STATUS), 0);
    assert!(
        active.query.contains("fieldManager=gatehouse") && active.query.contains("force=true"),
        "a server-side apply by the gatehouse field manager: {}",
        active.query
    );
    assert_eq!(
        active.body["metadata"]["resourceVersion"], "1",
        "conditional on the version decided from"
    );
    assert_eq!(active.body["status"]["phase"], "Active");
    let grant = &active.body["status"]["grant"];
    assert!(
        grant["seal"].as_str().is_some_and(|seal| !seal.is_empty()),
        "the window is sealed: {grant}"
    );
    let annotations = &binding["metadata"]["annotations"];
    assert_eq!(
        [
            &annotations["gatehouse.dev/activated-at"],
            &annotations["gatehouse.dev/expires-at"],
            &annotations["gatehouse.dev/window-seal"],
        ],
        [&grant["activatedAt"], &grant["expiresAt"], &grant["seal"]],
        "the binding carries the window the status records"
    );
    assert_eq!(
        grant["bindings"][0]["name"], "gatehouse.payments.alice-db-read",
        "the window names what it bound"
    );
    assert_eq!(
        action,
        Action::requeue(resync),
        "the grant ends in an hour: look again within the resync period"
    );
}

#[tokio::test]
async fn a_request_without_the_finalizer_gets_it_and_nothing_else() {
    let mut request = fixtures::approved_request(&["payments"]);
    request.metadata.finalizers = None;
    let cluster = cluster_with(&request);

    let action = reconciled(&request, fixtures::context(&cluster, []))
        .await
        .expect("finalizer added");

    let calls = cluster.take_calls();
    // The finalizer first, so that deleting the request always revokes what it grants; the
    // patch's own watch event runs the reconcile that provisions.
    assert_eq!(lines(&calls), vec![patch(REQUEST)]);
    assert_eq!(
        cluster.stored(&request).and_then(|r| r.metadata.finalizers),
        Some(vec!["gatehouse.dev/revoke-access".to_string()])
    );
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_grant_that_fails_in_one_namespace_is_removed_from_the_others() {
    let request = fixtures::approved_request(&["payments", "payments-2"]);
    let cluster = cluster_with(&request);
    cluster.fails("POST", &bindings_in("payments-2"), 403);

    let result = reconciled(&request, fixtures::context(&cluster, [])).await;

    let calls = cluster.take_calls();
    let mut expected = observe_pending(&["payments", "payments-2"]);
    expected.extend([
        post(&bindings_in("payments")),
        // Refused (403): the grant cannot be made whole.
        post(&bindings_in("payments-2")),
        // So what was created goes, by the names the decision gave it (the owned index has not
        // seen the new binding yet): read, delete, and prove it gone…
        get(&binding_at("payments")),
        delete(&binding_at("payments")),
        get(&binding_at("payments")),
        // …and the one that was never created is found gone.
        get(&binding_at("payments-2")),
        // The failure, on record with its cause, and one Warning Event for the reconcile.
        patch(REQUEST_STATUS),
        event("payments", "ProvisioningFailed"),
    ]);
    assert_eq!(lines(&calls), expected);

    let failed = &the(&calls, &patch(REQUEST_STATUS), 0).body["status"];
    assert_eq!(failed["phase"], "Approved");
    assert!(
        failed["grant"]["seal"].is_string(),
        "the window is recorded for the retry: {failed}"
    );
    let granted = failed["conditions"]
        .as_array()
        .and_then(|all| all.iter().find(|c| c["type"] == "Granted"))
        .unwrap_or_else(|| panic!("a Granted condition in {failed}"));
    assert_eq!(granted["status"], "False");
    assert_eq!(granted["reason"], "ProvisioningFailed");
    assert!(
        cluster
            .stored(&RoleBinding {
                metadata: ObjectMeta {
                    name: Some("gatehouse.payments.alice-db-read".into()),
                    namespace: Some("payments".into()),
                    ..Default::default()
                },
                ..Default::default()
            })
            .is_none(),
        "no part of the grant is left"
    );
    assert!(
        matches!(result, Err(Error::Finalizer(_))),
        "the reconcile fails, so that it is retried with backoff: {result:?}"
    );
}

#[tokio::test]
async fn a_status_write_that_loses_its_race_retries_soon_and_keeps_the_window_provided_under() {
    let request = fixtures::approved_request(&["payments"]);
    let cluster = cluster_with(&request);
    // The API server holds a newer version than the one the reconcile decides from (the
    // requester keeps patching the request, hoping for a later start).
    let mut newer = request.clone();
    newer.metadata.resource_version = Some("2".into());
    cluster.holds(&newer);
    let ctx = Arc::new(fixtures::context(&cluster, []));

    let action = reconcile(Arc::new(cached(request.clone())), ctx.clone())
        .await
        .expect("a lost race is no error");

    let calls = cluster.take_calls();
    let mut expected = observe_pending(&["payments"]);
    expected.extend([post(&bindings_in("payments")), post(REVIEWS)]);
    // Refused with 409: no Event tells of a status that was not written.
    expected.push(patch(REQUEST_STATUS));
    assert_eq!(lines(&calls), expected);
    assert_eq!(calls.last().map(|c| c.answered), Some(409));
    assert_eq!(action, Action::requeue(status::STALE_RETRY));
    assert_eq!(status::STALE_RETRY, Duration::from_millis(200));
    let bound = &the(&calls, &post(&bindings_in("payments")), 0).body;
    let carried = bound["metadata"]["annotations"]["gatehouse.dev/expires-at"].clone();

    // Decided again from the fresh read, a moment later, before the owned watch shows the
    // binding: the end stays the one the binding carries.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let newer = cluster.stored(&request).expect("the request exists");
    reconcile(Arc::new(cached(newer)), ctx)
        .await
        .expect("provisioned");
    let calls = cluster.take_calls();
    let active = &the(&calls, &patch(REQUEST_STATUS), 0).body["status"];
    assert_eq!(active["phase"], "Active");
    assert_eq!(
        active["grant"]["expiresAt"], carried,
        "the window is the one the binding was created with"
    );
}

#[tokio::test]
async fn an_edited_binding_of_an_active_request_is_restored_with_a_warning() {
    let cluster = Cluster::new();
    let (active, binding) = provisioned(&cluster).await;
    let mut edited = binding.clone();
    edited
        .subjects
        .get_or_insert_default()
        .push(user("mallory"));
    cluster.holds(&edited);

    let action = reconciled(
        &active,
        fixtures::context(&cluster, [Object::RoleBinding(edited)]),
    )
    .await
    .expect("repaired");

    let calls = cluster.take_calls();
    assert_eq!(
        lines(&calls),
        vec![
            // The approvals that keep the grant are re-derived on every reconcile.
            post(REVIEWS),
            post(REVIEWS),
            // The binding as approved, over the edited one (at its resourceVersion).
            put(&binding_at("payments")),
            // The status did not change; the repair is told as a Warning Event.
            event("payments", "DriftRepaired"),
        ]
    );
    let replaced = &the(&calls, &put(&binding_at("payments")), 0).body;
    let subjects: Vec<&Value> = replaced["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(subjects.len(), 1, "mallory is gone: {replaced}");
    assert_eq!(subjects[0]["name"], "alice");
    let repaired = the(&calls, &event("payments", "DriftRepaired"), 0);
    assert_eq!(repaired.body["type"], "Warning");
    assert_eq!(repaired.body["regarding"]["kind"], "AccessRequest");
    assert_eq!(action, Action::requeue(Duration::from_secs(300)));
}

#[tokio::test]
async fn an_active_converged_request_writes_nothing() {
    let cluster = Cluster::new();
    let (active, binding) = provisioned(&cluster).await;

    reconciled(
        &active,
        fixtures::context(&cluster, [Object::RoleBinding(binding)]),
    )
    .await
    .expect("converged");

    let calls = cluster.take_calls();
    // Only the approvers' rights, re-derived: no status write, no binding write, no Event.
    assert_eq!(lines(&calls), vec![post(REVIEWS), post(REVIEWS)]);
    let writes: Vec<String> = calls
        .iter()
        .filter(|c| c.writes())
        .map(Call::line)
        .collect();
    assert!(writes.is_empty(), "a converged request wrote {writes:?}");
}

#[tokio::test]
async fn a_denied_request_is_recorded_once_and_then_costs_no_calls() {
    let mut request = fixtures::approved_request(&["payments"]);
    request
        .metadata
        .annotations
        .get_or_insert_default()
        .insert("deny.gatehouse.dev/manager".into(), "bob".into());
    let cluster = cluster_with(&request);
    reconciled(&request, fixtures::context(&cluster, []))
        .await
        .expect("denied");
    let calls = cluster.take_calls();
    assert!(
        !calls.iter().any(|c| c.path.contains("rolebindings")),
        "nothing is bound for a denied request: {:#?}",
        lines(&calls)
    );
    let denied = cluster.stored(&request).expect("the request exists");
    assert_eq!(
        denied.status.as_ref().and_then(|s| s.phase),
        Some(AccessPhase::Denied)
    );

    reconciled(&denied, fixtures::context(&cluster, []))
        .await
        .expect("settled");

    // Terminal: no role to read, no approver to check, nothing to write.
    assert_eq!(lines(&cluster.take_calls()), Vec::<String>::new());
}

#[tokio::test]
async fn deleting_an_active_request_removes_its_binding_before_the_finalizer() {
    let cluster = Cluster::new();
    let (mut active, binding) = provisioned(&cluster).await;
    active.metadata.deletion_timestamp = active.metadata.creation_timestamp.clone();

    let action = reconciled(
        &active,
        fixtures::context(&cluster, [Object::RoleBinding(binding)]),
    )
    .await
    .expect("cleaned up");

    assert_eq!(
        lines(&cluster.take_calls()),
        vec![
            // The binding goes, and is proven gone…
            get(&binding_at("payments")),
            delete(&binding_at("payments")),
            get(&binding_at("payments")),
            // …the record is final (replaced whole at the version written before)…
            put(RECORD),
            event("payments", "Revoked"),
            // …before the finalizer that lets the request go.
            patch(REQUEST),
        ]
    );
    let record = cluster
        .records()
        .into_iter()
        .next()
        .expect("the request's record");
    assert_eq!(
        (record.spec.outcome, record.spec.complete),
        (crate::api::Outcome::Deleted, true)
    );
    assert!(record.spec.removal.is_some() && record.spec.retain_until.is_some());
    assert_eq!(record.spec.decisions.len(), 2, "both approvals recorded");
    assert_eq!(
        cluster.stored(&active).and_then(|r| r.metadata.finalizers),
        Some(Vec::new())
    );
    assert_eq!(action, Action::await_change());
}

#[tokio::test]
async fn a_record_whose_cached_version_is_superseded_is_replaced_at_the_version_read_fresh() {
    let cluster = Cluster::new();
    let (mut active, binding) = provisioned(&cluster).await;
    active.metadata.deletion_timestamp = active.metadata.creation_timestamp.clone();
    // The cache holds the record at the version written; the API server has moved past it since.
    let ctx = fixtures::context(&cluster, [Object::RoleBinding(binding)]);
    let mut moved = cluster.records().pop().expect("the request's record");
    moved.metadata.resource_version = Some("superseded".into());
    cluster.holds(&moved);

    reconciled(&active, ctx).await.expect("cleaned up");

    let calls = cluster.take_calls();
    let record_calls: Vec<String> = lines(&calls)
        .into_iter()
        .filter(|line| line.contains("accessrecords"))
        .collect();
    assert_eq!(
        record_calls,
        vec![put(RECORD), get(RECORD), put(RECORD)],
        "refused at the cached version, the record is read again and replaced at the fresh one"
    );
    let record = cluster.records().pop().expect("the request's record");
    assert!(record.spec.complete, "the final record is written");
    assert_ne!(
        record.metadata.resource_version.as_deref(),
        Some("superseded"),
        "the replacement made a new version"
    );
}

#[tokio::test]
async fn a_record_a_fresh_read_finds_final_is_not_written_again() {
    let cluster = Cluster::new();
    let (mut active, binding) = provisioned(&cluster).await;
    active.metadata.deletion_timestamp = active.metadata.creation_timestamp.clone();
    // The cache holds the record as first written; the API server holds a final one since.
    let ctx = fixtures::context(&cluster, [Object::RoleBinding(binding)]);
    let mut finished = cluster.records().pop().expect("the request's record");
    finished.metadata.resource_version = Some("final".into());
    finished.spec.complete = true;
    cluster.holds(&finished);

    reconciled(&active, ctx).await.expect("cleaned up");

    let record_calls: Vec<String> = lines(&cluster.take_calls())
        .into_iter()
        .filter(|line| line.contains("accessrecords"))
        .collect();
    assert_eq!(
        record_calls,
        vec![put(RECORD), get(RECORD)],
        "a final record is evidence: the fresh read decides it is not rewritten"
    );
    let record = cluster.records().pop().expect("the request's record");
    assert_eq!(record.metadata.resource_version.as_deref(), Some("final"));
}

/// The example agreement shared by a first reconcile: the agreement and its copies as the
/// cluster now holds them.
async fn shared(cluster: &Cluster) -> (DataSharingAgreement, Vec<Secret>) {
    let agreement = fixtures::reviewed_agreement();
    let (secret, config_map) = fixtures::agreement_sources();
    cluster.holds(&secret);
    cluster.holds(&config_map);
    cluster.holds(&agreement);
    reconciled(&agreement, fixtures::context(cluster, []))
        .await
        .expect("the example agreement is shared");
    let calls = cluster.take_calls();
    let active = cluster.stored(&agreement).expect("the agreement exists");
    assert_eq!(
        active.status.as_ref().and_then(|s| s.phase),
        Some(SharingPhase::Active),
        "{:#?}",
        lines(&calls)
    );
    let copies = calls
        .iter()
        .filter(|c| c.line() == post(COPIES))
        .map(|c| {
            let name = c.body["metadata"]["name"].as_str().unwrap_or_default();
            cluster
                .stored(&Secret {
                    metadata: ObjectMeta {
                        name: Some(name.into()),
                        namespace: Some("analytics".into()),
                        ..Default::default()
                    },
                    ..Default::default()
                })
                .expect("a created copy exists")
        })
        .collect();
    (active, copies)
}

#[tokio::test]
async fn an_edited_copy_of_an_active_share_is_restored_with_a_warning() {
    let cluster = Cluster::new();
    let (active, copies) = shared(&cluster).await;
    assert_eq!(copies.len(), 2, "one copy per source");
    let mut edited = copies[0].clone();
    edited.data.get_or_insert_default().insert(
        "password".into(),
        k8s_openapi::ByteString(b"changed".to_vec()),
    );
    cluster.holds(&edited);
    let owned = [
        Object::Secret(edited.clone()),
        Object::Secret(copies[1].clone()),
    ];

    reconciled(&active, fixtures::context(&cluster, owned))
        .await
        .expect("repaired");

    let calls = cluster.take_calls();
    assert_eq!(
        lines(&calls),
        vec![
            // The sources, read again: a rotation is shared at once.
            get(SOURCE_SECRET),
            get(SOURCE_CONFIG_MAP),
            // The reviewer must still not control what the share delivers: neither read the
            // recipient namespace's Secrets nor act as its ServiceAccount.
            post(REVIEWS),
            post(REVIEWS),
            // The edited copy as approved, and nothing else.
            put(&path_of(&edited)),
            event("orders", "DriftRepaired"),
        ]
    );
    let restored = &the(&calls, &put(&path_of(&edited)), 0).body;
    assert_eq!(
        restored["data"]["password"],
        serde_json::to_value(k8s_openapi::ByteString(b"s3cret".to_vec())).expect("bytes")
    );
    assert!(
        restored["data"].get("admin-password").is_none(),
        "only the listed keys are shared: {restored}"
    );
    let repaired = the(&calls, &event("orders", "DriftRepaired"), 0);
    assert_eq!(repaired.body["type"], "Warning");
    assert!(
        !calls.iter().any(|c| c.path == AGREEMENT_STATUS),
        "the status did not change"
    );
}

#[test]
fn only_a_failed_test_of_the_finalizers_is_a_lost_race() {
    let status = |code, message: &str| {
        kube::Error::Api(
            kube::core::Status::failure(message, "Invalid")
                .with_code(code)
                .boxed(),
        )
    };
    let patch_failed = "the server rejected our request due to an error in our request";
    assert!(lost_finalizer_race(&finalizer::Error::AddFinalizer(
        status(422, patch_failed)
    )));
    assert!(lost_finalizer_race(&finalizer::Error::RemoveFinalizer(
        status(422, patch_failed)
    )));
    assert!(!lost_finalizer_race(&finalizer::Error::AddFinalizer(
        status(403, patch_failed)
    )));
    // What kube-apiserver answered for 29 s after a restart, before it resolved the org chart's
    // paramKind: a refusal to back off from, not a race to retry every 200 ms.
    let refused = "accessrequests.gatehouse.dev \"new\" is forbidden: ValidatingAdmissionPolicy 'gatehouse-requester-manager' denied request: failed to configure policy: failed to find resource referenced by paramKind: 'gatehouse.dev/v1alpha1, Kind=OrgChart'";
    assert!(!lost_finalizer_race(&finalizer::Error::AddFinalizer(
        status(422, refused)
    )));
    assert!(!lost_finalizer_race(
        &finalizer::Error::<Error>::UnnamedObject
    ));
}
