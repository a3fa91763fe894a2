//! The local single-node cluster for tests that need Pods: started (or reused) by
//! `hack/cluster/up.sh`, images built by `hack/cluster/build-images.sh` and imported by
//! `hack/cluster/load-image.sh`, since no registry is reachable. Install tests of the operator use
//! [`kubeconfig`], [`client`], [`load_image`] and [`wait_for_ready_pods`].

use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config, Resource};
use serde::de::DeserializeOwned;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The node `hack/cluster/up.sh` registers.
pub const NODE_NAME: &str = "gatehouse-node";

static CLUSTER: OnceLock<Result<PathBuf, String>> = OnceLock::new();

/// The kubeconfig of the running cluster (contexts admin, alice … mallory, frank), starting it
/// first if needed. Panics with the reason when it cannot start: a test that needs the cluster
/// and runs without it must fail, never pass. (Such tests are `#[ignore]`d; `make test-cluster`
/// includes them.)
pub fn kubeconfig() -> &'static Path {
    match CLUSTER.get_or_init(start) {
        Ok(kubeconfig) => kubeconfig,
        Err(reason) => panic!("the local cluster could not start: {reason}"),
    }
}

fn state_dir() -> PathBuf {
    std::env::var_os("GATEHOUSE_CLUSTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(ROOT).join("target/cluster"))
}

fn start() -> Result<PathBuf, String> {
    run_script("hack/cluster/up.sh", &[])?;
    Ok(state_dir().join("kubeconfig"))
}

/// Runs one of the repository's scripts; its stdout is returned, its stderr goes to the test's.
fn run_script(script: &str, args: &[&str]) -> Result<String, String> {
    let output = Command::new("bash")
        .arg(Path::new(ROOT).join(script))
        .args(args)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "{script} {} failed ({}); its output above says why",
            args.join(" "),
            output.status
        ))
    }
}

/// A client acting as one of the kubeconfig's users (`admin`, `alice`, …, `frank`).
pub async fn client(user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig()).expect("readable kubeconfig");
    let options = KubeConfigOptions {
        context: Some(user.to_string()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .unwrap_or_else(|e| panic!("context {user} of the cluster's kubeconfig: {e}"));
    Client::try_from(config).expect("client")
}

/// An image of `hack/cluster/build-images.sh` (`pause`, `probe`), built if needed and imported
/// into the node; returns its reference.
pub fn local_image(name: &str) -> String {
    let printed = run_script("hack/cluster/build-images.sh", &[name])
        .unwrap_or_else(|e| panic!("building image {name}: {e}"));
    let key = name.to_uppercase();
    let value = |suffix: &str| {
        printed
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{key}{suffix}=")))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("build-images.sh printed no {key}{suffix}: {printed}"))
    };
    let tarball = value("");
    let reference = value("_REF");
    let imported = load_image(Path::new(&tarball));
    assert!(
        imported.contains(&reference),
        "importing {tarball} gave {imported:?}, not {reference}"
    );
    reference
}

/// Imports a docker-archive or OCI tarball (e.g. of `make image`) into the node's containerd, so
/// Pods with pull policy `IfNotPresent` or `Never` run it; importing again replaces the tag.
/// Returns the references the tarball held.
pub fn load_image(tarball: &Path) -> Vec<String> {
    let tarball = tarball.to_string_lossy();
    kubeconfig();
    run_script("hack/cluster/load-image.sh", &[&tarball])
        .unwrap_or_else(|e| panic!("importing {tarball}: {e}"))
        .lines()
        .map(str::to_string)
        .collect()
}

/// A name no other test uses, so tests run in parallel on one cluster.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{:x}{}",
        nanos % 0xffff,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates a fresh namespace with these labels (e.g. Pod Security's) and returns its name.
pub async fn namespace(admin: &Client, prefix: &str, labels: &[(&str, &str)]) -> String {
    let name = unique(prefix);
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
    name
}

/// Polls every 200 ms until `done` holds for the object, or panics after `within` with `what` and
/// the object as last seen. Returns the object and how long it took.
pub async fn wait_until<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    within: Duration,
    done: impl Fn(&K) -> bool,
) -> (K, Duration)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < within {
        match api.get_opt(name).await {
            Ok(Some(object)) if done(&object) => return (object, start.elapsed()),
            Ok(object) => last = object.map(|o| format!("{o:?}")),
            Err(e) => last = Some(format!("error: {e}")),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{name}: not {what} within {within:?}; last seen: {}",
        last.unwrap_or_else(|| "absent".into())
    );
}

/// Polls until the object is gone (404), or panics after `within`; returns how long it took.
pub async fn wait_gone<K>(api: &Api<K>, name: &str, within: Duration) -> Duration
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match api.get_opt(name).await {
            Ok(None) => return start.elapsed(),
            Ok(Some(object)) => last = format!("{object:?}"),
            Err(e) => last = format!("error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name}: still there after {within:?}; last seen: {last}");
}

/// Whether the Pod's Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Waits until `count` Pods matching the label selector are Ready (none terminating), or panics
/// after `within` listing the Pods' phases and the namespace's recent warning Events. Returns the
/// Pods and how long it took.
pub async fn wait_for_ready_pods(
    client: &Client,
    ns: &str,
    selector: &str,
    count: usize,
    within: Duration,
) -> (Vec<Pod>, Duration) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < within {
        match pods.list(&ListParams::default().labels(selector)).await {
            Ok(list) => {
                let live: Vec<Pod> = list
                    .items
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .collect();
                if live.len() == count && live.iter().all(pod_ready) {
                    return (live, start.elapsed());
                }
                last = live
                    .iter()
                    .map(|p| {
                        format!(
                            "{}: {:?}",
                            p.metadata.name.as_deref().unwrap_or("?"),
                            p.status.as_ref().map(|s| (&s.phase, &s.container_statuses))
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
            }
            Err(e) => last = format!("error: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!(
        "{count} Ready Pods {selector} in {ns}: not within {within:?}; Pods: {last}; warnings: {}",
        warning_events(client, ns).await
    );
}

/// The namespace's Warning Events, one line each (for failure messages).
pub async fn warning_events(client: &Client, ns: &str) -> String {
    use k8s_openapi::api::core::v1::Event;
    match Api::<Event>::namespaced(client.clone(), ns)
        .list(&ListParams::default().fields("type=Warning"))
        .await
    {
        Ok(list) => list
            .items
            .iter()
            .map(|e| {
                format!(
                    "{} {}: {}",
                    e.involved_object.name.as_deref().unwrap_or("?"),
                    e.reason.as_deref().unwrap_or("?"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Err(e) => format!("(cannot list events: {e})"),
    }
}

/// GET through the API server's service proxy
/// (`/api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH`), as the client's user; how tests
/// reach a Pod's HTTP endpoint (e.g. the operator's `/metrics`) without a route into the cluster.
pub async fn service_proxy_get(
    client: &Client,
    ns: &str,
    service: &str,
    port: &str,
    path: &str,
) -> Result<String, kube::Error> {
    let uri = format!(
        "/api/v1/namespaces/{ns}/services/{service}:{port}/proxy/{}",
        path.trim_start_matches('/')
    );
    let request = http::Request::get(uri)
        .body(Vec::new())
        .expect("a valid request");
    client.request_text(request).await
}
