//! The controller test tier's fixtures: a small fake API server behind kube's [`Client`], a
//! [`Context`] over it, and the objects the scenarios start from.
//!
//! The fake is a [`tower_test::mock`] service (as in kube-rs' controller-rs `fixtures.rs`) whose
//! requests a spawned task answers from an in-memory store of JSON objects by URL path, the way
//! the API server would: a create of a taken name is a 409, a write at an outdated
//! resourceVersion is a 409, a read of what is not there is a 404. Every request is recorded, so a
//! test asserts the exact sequence of calls a reconcile made; a test makes one call fail with
//! [`Cluster::fails`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::{ByteString, jiff::Timestamp};
use kube::api::{ObjectMeta, PartialObjectMetaExt};
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::integrity::Integrity;
use super::{CONTROLLER_NAME, Context};
use crate::access::fixtures::benign_rules;
use crate::api::fixtures::{access_policy, access_request, data_sharing_agreement, sharing_policy};
use crate::api::{AccessRequest, DataSharingAgreement};
use crate::apply::{Index, Object};
use crate::lifecycle::activation::SealKey;
use crate::metrics::Metrics;

/// What the API server was asked.
#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: String,
    /// The request body as JSON; `Null` when there was none.
    pub body: Value,
    /// The status code the fake answered with.
    pub answered: u16,
}

impl Call {
    /// `<METHOD> <path>`, and for an Event its reason: how sequences are asserted.
    pub fn line(&self) -> String {
        match self.body["reason"].as_str() {
            Some(reason) if self.path.ends_with("/events") => {
                format!("{} {} {reason}", self.method, self.path)
            }
            _ => format!("{} {}", self.method, self.path),
        }
    }

    /// Whether it changes something: every method but GET, except the reviews, which only ask.
    pub fn writes(&self) -> bool {
        self.method != "GET" && !self.path.ends_with("/subjectaccessreviews")
    }
}

/// A call to make fail once, with its status code.
struct Failure {
    method: String,
    path: String,
    code: u16,
}

struct State {
    /// Stored objects by their URL path (`…/namespaces/<ns>/<plural>/<name>`).
    objects: BTreeMap<String, Value>,
    calls: Vec<Call>,
    failures: Vec<Failure>,
    version: u64,
}

/// The fake API server. Cheap to clone: clones share one store and one record of calls.
#[derive(Clone)]
pub struct Cluster {
    state: Arc<Mutex<State>>,
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            state: Arc::new(Mutex::new(State {
                objects: BTreeMap::new(),
                calls: Vec::new(),
                failures: Vec::new(),
                version: 100,
            })),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A client whose every request this fake answers, from a task of its own.
    pub fn client(&self) -> Client {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let cluster = self.clone();
        tokio::spawn(async move {
            while let Some((request, respond)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let mut call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    answered: 0,
                };
                let (status, answer) = cluster.answer(&call);
                call.answered = status.as_u16();
                cluster.state().calls.push(call);
                let response = Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap_or_default()))
                    .unwrap_or_else(|_| unreachable!("a status and a JSON body make a response"));
                respond.send_response(response);
            }
        });
        Client::new(service, "default")
    }

    /// Stores `object` as it is, resourceVersion included.
    pub fn holds<K: Resource<DynamicType = ()> + Serialize>(&self, object: &K) {
        let value = serde_json::to_value(object).expect("objects serialize");
        self.state().objects.insert(path_of(object), value);
    }

    /// The object stored at the path of `like` (same kind, namespace and name), as it is now.
    pub fn stored<K>(&self, like: &K) -> Option<K>
    where
        K: Resource<DynamicType = ()> + DeserializeOwned,
    {
        let value = self.state().objects.get(&path_of(like)).cloned()?;
        Some(serde_json::from_value(value).expect("stored objects deserialize"))
    }

    /// Every AccessRecord the operator wrote, as its cache would hold them.
    pub fn records(&self) -> Vec<crate::api::AccessRecord> {
        self.state()
            .objects
            .iter()
            .filter(|(path, _)| path.starts_with(RECORDS))
            .map(|(_, value)| serde_json::from_value(value.clone()).expect("records deserialize"))
            .collect()
    }

    /// The ClusterRoles it holds, for the context's RBAC cache.
    pub fn cluster_roles(&self) -> Vec<ClusterRole> {
        self.state()
            .objects
            .iter()
            .filter(|(path, _)| {
                path.starts_with("/apis/rbac.authorization.k8s.io/v1/clusterroles/")
            })
            .map(|(_, value)| {
                serde_json::from_value(value.clone()).expect("cluster roles deserialize")
            })
            .collect()
    }

    /// Makes the next `method` to `path` fail with `code`.
    pub fn fails(&self, method: &str, path: &str, code: u16) {
        self.state().failures.push(Failure {
            method: method.into(),
            path: path.into(),
            code,
        });
    }

    /// The calls made so far, and forgets them.
    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    fn answer(&self, call: &Call) -> (StatusCode, Value) {
        let mut state = self.state();
        if let Some(at) = state
            .failures
            .iter()
            .position(|f| f.method == call.method && f.path == call.path)
        {
            let failure = state.failures.remove(at);
            return refusal(failure.code, "Injected", "failure injected by the test");
        }
        state.version += 1;
        let version = state.version.to_string();
        match call.method.as_str() {
            "GET" => match state.objects.get(&call.path) {
                Some(object) => (StatusCode::OK, object.clone()),
                None => not_found(),
            },
            "POST" if call.path.ends_with("/subjectaccessreviews") => {
                let mut review = call.body.clone();
                review["status"] = json!({ "allowed": allowed(&call.body["spec"]) });
                (StatusCode::CREATED, review)
            }
            "POST" => {
                let name = call.body["metadata"]["name"].as_str().unwrap_or_default();
                let path = format!("{}/{name}", call.path);
                if state.objects.contains_key(&path) {
                    return refusal(409, "AlreadyExists", "the name is taken");
                }
                let mut object = call.body.clone();
                object["metadata"]["resourceVersion"] = json!(version);
                state.objects.insert(path, object.clone());
                (StatusCode::CREATED, object)
            }
            "PUT" => {
                let Some(stored) = state.objects.get(&call.path) else {
                    return not_found();
                };
                let sent = &call.body["metadata"]["resourceVersion"];
                if !sent.is_null() && *sent != stored["metadata"]["resourceVersion"] {
                    return refusal(409, "Conflict", "the object has been modified");
                }
                let mut object = call.body.clone();
                object["metadata"]["resourceVersion"] = json!(version);
                state.objects.insert(call.path.clone(), object.clone());
                (StatusCode::OK, object)
            }
            "DELETE" => match state.objects.remove(&call.path) {
                Some(_) => (
                    StatusCode::OK,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Success", "code": 200}),
                ),
                None => not_found(),
            },
            "PATCH" => {
                let (path, status) = match call.path.strip_suffix("/status") {
                    Some(object) => (object.to_string(), true),
                    None => (call.path.clone(), false),
                };
                let Some(stored) = state.objects.get_mut(&path) else {
                    return not_found();
                };
                if status {
                    // A server-side apply of the status, conditional on the resourceVersion sent.
                    let sent = &call.body["metadata"]["resourceVersion"];
                    if !sent.is_null() && *sent != stored["metadata"]["resourceVersion"] {
                        return refusal(409, "Conflict", "the object has been modified");
                    }
                    stored["status"] = call.body["status"].clone();
                } else if !json_patch_finalizers(stored, &call.body) {
                    return refusal(
                        422,
                        "Invalid",
                        "the fake applies only finalizer JSON patches",
                    );
                }
                stored["metadata"]["resourceVersion"] = json!(version);
                (StatusCode::OK, stored.clone())
            }
            _ => refusal(405, "MethodNotAllowed", "not served by the fake"),
        }
    }
}

/// Applies the JSON patch kube-runtime's finalizer helper sends (add or remove a finalizer);
/// false for any other patch.
fn json_patch_finalizers(object: &mut Value, patch: &Value) -> bool {
    let Some(operations) = patch.as_array() else {
        return false;
    };
    for operation in operations {
        let path = operation["path"].as_str().unwrap_or_default();
        let finalizers = &mut object["metadata"]["finalizers"];
        match (operation["op"].as_str(), path) {
            (Some("test"), _) => {}
            (Some("add"), "/metadata/finalizers") => *finalizers = operation["value"].clone(),
            (Some("add"), "/metadata/finalizers/-") => match finalizers.as_array_mut() {
                Some(list) => list.push(operation["value"].clone()),
                None => return false,
            },
            (Some("remove"), _) => {
                let index = path
                    .strip_prefix("/metadata/finalizers/")
                    .and_then(|i| i.parse::<usize>().ok());
                match (index, finalizers.as_array_mut()) {
                    (Some(index), Some(list)) if index < list.len() => {
                        list.remove(index);
                    }
                    _ => return false,
                }
            }
            _ => return false,
        }
    }
    true
}

/// The fake's answer to every SubjectAccessReview: everyone holds what they are asked about
/// (approvers may approve, the grant works), except reading Secrets and minting ServiceAccount
/// tokens (no approver controls what a share delivers).
fn allowed(spec: &Value) -> bool {
    let attributes = &spec["resourceAttributes"];
    !(attributes["resource"] == "secrets" || attributes["subresource"] == "token")
}

fn not_found() -> (StatusCode, Value) {
    refusal(404, "NotFound", "not found")
}

fn refusal(code: u16, reason: &str, message: &str) -> (StatusCode, Value) {
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code,
        }),
    )
}

/// The URL path of `object`, as kube's Client addresses it.
pub fn path_of<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}",
        K::url_path(&(), object.namespace().as_deref()),
        object.name_any()
    )
}

/// A cache holding exactly `objects`, as if listed.
fn store_of<K>(objects: impl IntoIterator<Item = K>) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone,
{
    let (store, mut writer) = reflector::store();
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::Apply(object));
    }
    store
}

/// The seal key of every test context: a window sealed in one context verifies in the next.
fn seal_key() -> SealKey {
    SealKey::from_bytes(&[7; 32]).expect("32 bytes make a key")
}

/// A context over `cluster`: the example policies (AccessPolicy `payments-db`, SharingPolicy
/// `default-sharing`), namespaces `payments` and `payments-2` (team=payments), `orders` and
/// `analytics` (shared-data=allowed), no other bindings, verified admission policies, and an owned
/// index holding exactly `owned`.
/// Where the fake keeps AccessRecords.
pub const RECORDS: &str = "/apis/gatehouse.dev/v1alpha1/accessrecords/";

pub fn context(cluster: &Cluster, owned: impl IntoIterator<Item = Object>) -> Context {
    let client = cluster.client();
    let namespace = |name: &str, labels: &[(&str, &str)]| {
        ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }
        .into_request_partial::<Namespace>()
    };
    Context {
        notifier: Arc::new(
            super::notify::Notifier::new(
                client.clone(),
                "gatehouse-system".into(),
                Arc::new(Metrics::new()),
                1,
            )
            .expect("the notification client builds"),
        ),
        events: super::events::Events::new(client.clone(), CONTROLLER_NAME, None),
        client,
        access_policies: store_of([access_policy("payments-db")]),
        sharing_policies: store_of([sharing_policy("default-sharing")]),
        namespaces: store_of([
            namespace("payments", &[("team", "payments")]),
            namespace("payments-2", &[("team", "payments")]),
            namespace("orders", &[("team", "orders")]),
            namespace("analytics", &[("shared-data", "allowed")]),
        ]),
        existing_bindings: Default::default(),
        roles: store_of::<Role>([]),
        cluster_roles: store_of(cluster.cluster_roles()),
        org_chart: store_of::<crate::api::OrgChart>([]),
        namespace: "gatehouse-system".into(),
        records: Arc::new(super::records::Recorded::holding(cluster.records())),
        record_retention: Duration::from_secs(400 * 24 * 3600),
        owned: Index::holding(owned),
        integrity: Arc::new(Integrity::verified()),
        metrics: Arc::new(Metrics::new()),
        seal_key: seal_key(),
        sweep_interval: Duration::from_secs(300),
        resync_period: Duration::from_secs(300),
        concurrency: 8,
        access_peers: Default::default(),
        sharing_peers: Default::default(),
        verdicts: Default::default(),
        authorizer_lag: Default::default(),
        own_writes: Default::default(),
        opened_windows: Default::default(),
        written_records: Default::default(),
        failures: Mutex::default(),
        reachability: Default::default(),
    }
}

/// ClusterRole db-reader, the role the example request asks for, with rules nothing flags.
pub fn db_reader() -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some("db-reader".into()),
            resource_version: Some("1".into()),
            ..Default::default()
        },
        rules: Some(benign_rules()),
        ..Default::default()
    }
}

/// Metadata as the API server gives it to an object filed a minute ago: uid, resourceVersion,
/// creation time, the operator's finalizer already added, and `annotations`.
fn filed(meta: &mut ObjectMeta, uid: &str, finalizer: &str, annotations: &[(&str, &str)]) {
    let minute_ago = Timestamp::now()
        .checked_sub(Duration::from_secs(60))
        .expect("a minute ago is a valid time");
    meta.uid = Some(uid.into());
    meta.resource_version = Some("1".into());
    meta.creation_timestamp = Some(Time(minute_ago));
    meta.finalizers = Some(vec![finalizer.into()]);
    meta.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
}

/// The example request (alice asks for ClusterRole db-reader) in `namespaces`, approved by bob
/// as manager and carol as data owner: the two stages a request that is not high-risk needs.
pub fn approved_request(namespaces: &[&str]) -> AccessRequest {
    let mut request = access_request();
    request.spec.namespaces = namespaces.iter().map(|ns| ns.to_string()).collect();
    filed(
        &mut request.metadata,
        "uid-alice-db-read",
        super::access::FINALIZER,
        &[
            ("approve.gatehouse.dev/manager", "bob"),
            ("approve.gatehouse.dev/data-owner", "carol"),
        ],
    );
    request
}

/// The example agreement (orders shares a Secret's and a ConfigMap's keys with analytics by
/// Copy), reviewed by carol as data owner, the one review the policy requires.
pub fn reviewed_agreement() -> DataSharingAgreement {
    let mut agreement = data_sharing_agreement();
    filed(
        &mut agreement.metadata,
        "uid-orders-to-analytics",
        super::sharing::FINALIZER,
        &[("approve.gatehouse.dev/data-owner", "carol")],
    );
    agreement
}

/// The sources the example agreement lists, with one key more than it shares.
pub fn agreement_sources() -> (Secret, ConfigMap) {
    let meta = |name: &str| ObjectMeta {
        name: Some(name.into()),
        namespace: Some("orders".into()),
        resource_version: Some("1".into()),
        ..Default::default()
    };
    let bytes = |s: &str| ByteString(s.as_bytes().to_vec());
    let secret = Secret {
        metadata: meta("orders-db-readonly"),
        data: Some(
            [
                ("host", "db.orders"),
                ("username", "reader"),
                ("password", "s3cret"),
                ("admin-password", "never shared"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), bytes(v)))
            .collect(),
        ),
        ..Default::default()
    };
    let config_map = ConfigMap {
        metadata: meta("orders-schema"),
        data: Some(
            [(
                "schema.sql".to_string(),
                "create table orders ();".to_string(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    (secret, config_map)
}
