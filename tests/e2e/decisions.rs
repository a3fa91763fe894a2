//! Approval-protocol helpers shared by the admission suites: annotate as a user and expect the API
//! server to accept, or to refuse with a given message while leaving the object as it was.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::support;

pub fn annotations_of<K: Resource>(object: &K) -> BTreeMap<String, String> {
    object.meta().annotations.clone().unwrap_or_default()
}

/// What `kubectl annotate` sends: a merge patch of the annotations (`null` removes one).
pub async fn annotate<K>(api: &Api<K>, name: &str, annotations: &Value) -> Result<K, kube::Error>
where
    K: Clone + DeserializeOwned + Debug,
{
    let patch = json!({ "metadata": { "annotations": annotations } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
}

/// Annotates and expects the API server to accept (retrying a few seconds while a binding created
/// a moment ago reaches the authorizer).
pub async fn accepted<K>(api: &Api<K>, name: &str, annotations: Value, who: &str) -> K
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match annotate(api, name, &annotations).await {
            Ok(object) => {
                let shown: String = annotations.to_string().chars().take(200).collect();
                eprintln!("e2e: {who} annotated {name} with {shown}: accepted");
                return object;
            }
            Err(e) if Instant::now() < deadline => {
                eprintln!("e2e: {who} annotating {name} not accepted yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{who} annotating {name} with {annotations} was refused: {e}"),
        }
    }
}

/// Annotates, expects a refusal with `code` and `expected` in its message, and checks that the
/// object's annotations did not change.
pub async fn refused<K>(
    api: &Api<K>,
    name: &str,
    annotations: Value,
    who: &str,
    code: u16,
    expected: &str,
) -> String
where
    K: Clone + DeserializeOwned + Debug + Resource,
{
    let before = annotations_of(&api.get(name).await.expect("readable"));
    let (got, message) = support::rejection(annotate(api, name, &annotations).await);
    eprintln!("e2e: {who} annotating {name} with {annotations} refused ({got}): {message}");
    assert_eq!(got, code, "{message}");
    assert!(
        message.contains(expected),
        "expected {expected:?} in: {message}"
    );
    let after = annotations_of(&api.get(name).await.expect("readable"));
    assert_eq!(before, after, "a refused write leaves the object as it was");
    message
}

pub async fn as_user<K>(kubeconfig: &Path, who: &str, ns: &str) -> Api<K>
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>,
{
    Api::namespaced(support::client(kubeconfig, who).await, ns)
}
