//! Smoke tests of the local single-node cluster (`make cluster`): what the operator's install
//! tests rely on. The node is Ready; a Deployment's Pod runs non-root on a read-only root
//! filesystem in a namespace where Pod Security `restricted` is enforced, and reaches the API
//! server through the `kubernetes` Service with its ServiceAccount token; Services route to Pods
//! (the API server's service proxy and kube-proxy's ClusterIP); deleted namespaces finish; owned
//! objects are garbage collected; the aggregated ClusterRoles aggregate; the kubelet acts under
//! Node authorization, not as an administrator.
//!
//! The tests are `#[ignore]`d (they need root and several minutes the first time);
//! `make test-cluster` starts the cluster and includes them.

#[path = "cluster/support.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// Generous bounds for a shared 2-core machine: they only separate "works" from "never happens".
const POD_READY: Duration = Duration::from_secs(120);
const CONTROLLER: Duration = Duration::from_secs(60);

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn the_node_is_ready_and_runs_the_built_kubelet() {
    let admin = support::client("admin").await;
    let (node, waited) = support::wait_until(
        &Api::<Node>::all(admin),
        support::NODE_NAME,
        "Ready",
        POD_READY,
        |node| {
            node.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        },
    )
    .await;
    let info = node
        .status
        .and_then(|s| s.node_info)
        .expect("a Ready node reports its versions");
    eprintln!(
        "cluster: node {} Ready (waited {waited:?}): kubelet {}, {}",
        support::NODE_NAME,
        info.kubelet_version,
        info.container_runtime_version
    );
    assert!(
        info.kubelet_version.starts_with("v1.36."),
        "kubelet {}",
        info.kubelet_version
    );
    assert!(
        info.container_runtime_version.starts_with("containerd://"),
        "runtime {}",
        info.container_runtime_version
    );
}

/// The probe's answer on `/whoami` (hack/cluster/probe): what the API server saw and how the
/// container runs.
#[derive(serde::Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Whoami {
    apiserver: String,
    username: String,
    uid: u32,
    root_filesystem_writable: bool,
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn a_restricted_pod_reaches_the_api_server_through_the_kubernetes_service() {
    let admin = support::client("admin").await;
    let image = support::local_image("probe");
    let ns = support::namespace(
        &admin,
        "smoke-restricted",
        &[("pod-security.kubernetes.io/enforce", "restricted")],
    )
    .await;

    // Pod Security is enforced here: a Pod that may run as root is refused.
    let pods: Api<Pod> = Api::namespaced(admin.clone(), &ns);
    let rootable: Pod = serde_json::from_value(json!({
        "metadata": {"name": "rootable"},
        "spec": {"containers": [{"name": "c", "image": image, "imagePullPolicy": "Never"}]}
    }))
    .expect("a Pod");
    match pods.create(&PostParams::default(), &rootable).await {
        Err(kube::Error::Api(status)) => assert!(
            status.code == 403 && status.message.contains("restricted"),
            "refused for another reason: {status:?}"
        ),
        other => panic!("a Pod without a restricted security context was admitted: {other:?}"),
    }

    let service_account = "probe";
    Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(service_account.into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create the ServiceAccount");
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "probe"}},
            "template": {
                "metadata": {"labels": {"app": "probe"}},
                "spec": {
                    "serviceAccountName": service_account,
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "probe",
                        "image": image,
                        "imagePullPolicy": "Never",
                        "ports": [{"name": "http", "containerPort": 8080}],
                        // Ready only once a call through the kubernetes Service succeeded.
                        "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 1},
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "readOnlyRootFilesystem": true,
                            "capabilities": {"drop": ["ALL"]}
                        }
                    }]
                }
            }
        }
    }))
    .expect("a Deployment");
    Api::<Deployment>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    let service: Service = serde_json::from_value(json!({
        "metadata": {"name": "probe"},
        "spec": {"selector": {"app": "probe"}, "ports": [{"name": "http", "port": 8080, "targetPort": "http"}]}
    }))
    .expect("a Service");
    let service = Api::<Service>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .expect("create the Service");

    let (ready, waited) =
        support::wait_for_ready_pods(&admin, &ns, "app=probe", 1, POD_READY).await;
    eprintln!("cluster: probe Pod Ready {waited:?} after its Deployment was created");
    let owner = ready[0]
        .metadata
        .owner_references
        .as_ref()
        .and_then(|o| o.first())
        .map(|o| o.kind.clone());
    assert_eq!(
        owner.as_deref(),
        Some("ReplicaSet"),
        "the Deployment's ReplicaSet made the Pod"
    );

    // Through the API server's service proxy to the Pod, which asks the API server in turn.
    let answer = support::service_proxy_get(&admin, &ns, "probe", "http", "/whoami")
        .await
        .expect("the service proxy reaches the probe");
    let whoami: Whoami = serde_json::from_str(&answer)
        .unwrap_or_else(|e| panic!("the probe's /whoami is not JSON ({e}): {answer}"));
    let kubernetes = Api::<Service>::namespaced(admin.clone(), "default")
        .get("kubernetes")
        .await
        .expect("the kubernetes Service");
    let cluster_ip = kubernetes
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("the kubernetes Service has a ClusterIP");
    assert_eq!(
        whoami.apiserver,
        format!("{cluster_ip}:443"),
        "in-cluster config points at the kubernetes Service"
    );
    assert_eq!(
        whoami.username,
        format!("system:serviceaccount:{ns}:{service_account}"),
        "the API server saw the Pod's ServiceAccount token"
    );
    assert_ne!(whoami.uid, 0, "the container runs as root");
    assert!(
        !whoami.root_filesystem_writable,
        "the container can write to its root filesystem"
    );

    // kube-proxy routes the probe's own ClusterIP too (from this machine, into the Pod network).
    let probe_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("the probe Service has a ClusterIP");
    // kube-proxy programs a Service's rules shortly after its endpoint is Ready: retry meanwhile.
    let url = format!("http://{probe_ip}:8080/healthz");
    let http = reqwest::Client::new();
    let start = Instant::now();
    loop {
        let outcome = http
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match outcome {
            Ok(_) => break,
            Err(e) if start.elapsed() > CONTROLLER => {
                panic!("GET {url} (the probe's ClusterIP) failed for {CONTROLLER:?}: {e}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    eprintln!(
        "cluster: the probe's ClusterIP answered {:?} after the check began",
        start.elapsed()
    );

    delete_namespace(&admin, &ns).await;
}

/// Deletes a namespace and waits until it is gone: the namespace controller empties it (Pods
/// included: the kubelet stops them) and removes its finalizer.
async fn delete_namespace(admin: &Client, ns: &str) -> Duration {
    let namespaces: Api<Namespace> = Api::all(admin.clone());
    namespaces
        .delete(ns, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete namespace {ns}: {e}"));
    support::wait_gone(&namespaces, ns, POD_READY).await
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn a_deleted_namespace_with_a_running_pod_finishes_deleting() {
    let admin = support::client("admin").await;
    let image = support::local_image("pause");
    let ns = support::namespace(&admin, "smoke-delete", &[]).await;
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "sleeper", "labels": {"app": "sleeper"}},
        "spec": {"containers": [{"name": "pause", "image": image, "imagePullPolicy": "Never"}]}
    }))
    .expect("a Pod");
    Api::<Pod>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("create the Pod");
    support::wait_for_ready_pods(&admin, &ns, "app=sleeper", 1, POD_READY).await;
    Api::<ConfigMap>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &config_map("data", None))
        .await
        .expect("create a ConfigMap");

    let took = delete_namespace(&admin, &ns).await;
    eprintln!("cluster: namespace with a running Pod deleted in {took:?}");
}

fn config_map(name: &str, owner: Option<&ConfigMap>) -> ConfigMap {
    let owner_references = owner.map(|o| {
        vec![
            k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: o.metadata.name.clone().expect("named owner"),
                uid: o.metadata.uid.clone().expect("created owner"),
                ..Default::default()
            },
        ]
    });
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references,
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_string(), "v".to_string())])),
        ..Default::default()
    }
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn owned_objects_are_garbage_collected() {
    let admin = support::client("admin").await;
    let ns = support::namespace(&admin, "smoke-gc", &[]).await;
    let config_maps: Api<ConfigMap> = Api::namespaced(admin.clone(), &ns);
    let owner = config_maps
        .create(&PostParams::default(), &config_map("owner", None))
        .await
        .expect("create the owner");
    config_maps
        .create(&PostParams::default(), &config_map("owned", Some(&owner)))
        .await
        .expect("create the owned object");
    config_maps
        .create(&PostParams::default(), &config_map("bystander", None))
        .await
        .expect("create an unowned object");

    config_maps
        .delete("owner", &DeleteParams::background())
        .await
        .expect("delete the owner");
    let took = support::wait_gone(&config_maps, "owned", CONTROLLER).await;
    eprintln!("cluster: owned ConfigMap collected {took:?} after its owner was deleted");
    assert!(
        config_maps
            .get_opt("bystander")
            .await
            .expect("get")
            .is_some(),
        "the garbage collector removed an object nobody owned"
    );

    // A Deployment's ReplicaSet goes with it (foreground: the Deployment waits for it).
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "empty"},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "empty"}},
            "template": {"metadata": {"labels": {"app": "empty"}},
                         "spec": {"containers": [{"name": "c", "image": "unused"}]}}
        }
    }))
    .expect("a Deployment");
    let deployments: Api<Deployment> = Api::namespaced(admin.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create the Deployment");
    let replica_sets: Api<ReplicaSet> = Api::namespaced(admin.clone(), &ns);
    let start = Instant::now();
    let replica_set = loop {
        let list = replica_sets.list(&Default::default()).await.expect("list");
        if let Some(rs) = list.items.into_iter().next() {
            break rs.metadata.name.expect("named ReplicaSet");
        }
        assert!(
            start.elapsed() < CONTROLLER,
            "the Deployment controller made no ReplicaSet within {CONTROLLER:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    deployments
        .delete("empty", &DeleteParams::foreground())
        .await
        .expect("delete the Deployment");
    support::wait_gone(&replica_sets, &replica_set, CONTROLLER).await;
    support::wait_gone(&deployments, "empty", CONTROLLER).await;

    delete_namespace(&admin, &ns).await;
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn aggregated_cluster_roles_take_in_labelled_rules() {
    let admin = support::client("admin").await;
    let name = support::unique("smoke-aggregate-to-view");
    let resource = format!("{name}s");
    let role = ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                "rbac.authorization.k8s.io/aggregate-to-view".to_string(),
                "true".to_string(),
            )])),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["smoke.gatehouse.dev".into()]),
            resources: Some(vec![resource.clone()]),
            verbs: vec!["get".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    let cluster_roles: Api<ClusterRole> = Api::all(admin.clone());
    cluster_roles
        .create(&PostParams::default(), &role)
        .await
        .expect("create the labelled ClusterRole");
    let has_rule = |role: &ClusterRole| {
        role.rules
            .iter()
            .flatten()
            .any(|rule| rule.resources.iter().flatten().any(|r| *r == resource))
    };
    // view aggregates into edit, and edit into admin.
    for aggregate in ["view", "edit", "admin"] {
        let (_, took) = support::wait_until(
            &cluster_roles,
            aggregate,
            "aggregated",
            CONTROLLER,
            has_rule,
        )
        .await;
        eprintln!("cluster: ClusterRole {aggregate} took the rule in after {took:?}");
    }
    cluster_roles
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete the labelled ClusterRole");
    support::wait_until(
        &cluster_roles,
        "view",
        "without the deleted rule",
        CONTROLLER,
        |r| !has_rule(r),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn the_kubelet_is_limited_by_node_authorization() {
    let admin = support::client("admin").await;
    let node_user = format!("system:node:{}", support::NODE_NAME);
    let review =
        |verb: &str, resource: &str, namespace: Option<&str>, name: &str| SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(node_user.clone()),
                groups: Some(vec!["system:nodes".into(), "system:authenticated".into()]),
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(verb.into()),
                    resource: Some(resource.into()),
                    namespace: namespace.map(str::to_string),
                    name: Some(name.into()),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
    let reviews: Api<SubjectAccessReview> = Api::all(admin);
    let allowed = |review: SubjectAccessReview| {
        let reviews = reviews.clone();
        async move {
            reviews
                .create(&PostParams::default(), &review)
                .await
                .expect("create a SubjectAccessReview")
                .status
                .is_some_and(|s| s.allowed)
        }
    };
    assert!(
        allowed(review("get", "nodes", None, support::NODE_NAME)).await,
        "the node may read its own Node"
    );
    assert!(
        !allowed(review("get", "secrets", Some("kube-system"), "any")).await,
        "the node may read a Secret no Pod of it uses"
    );
    assert!(
        !allowed(review("delete", "namespaces", None, "default")).await,
        "the node may delete a namespace"
    );
}
