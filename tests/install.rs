//! Gatehouse installed on the local single-node cluster (hack/cluster) the two ways a cluster admin
//! installs it, from the image `make image` builds: the Helm chart and `kubectl apply -k deploy/`.
//! Each runs two replicas in a namespace that enforces Pod Security `restricted`, elects one
//! leader, provisions an approved request with the in-cluster configuration, hands over to the
//! standby when the leader's Pod is deleted (a grant falling due meanwhile is removed on time,
//! never early), serves `/metrics` through its Service, and the chart upgrades to a new image
//! without losing or extending a grant. The people are the cluster's token users: alice files,
//! bob approves as her manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use gatehouse::api::{AccessPhase, AccessPolicy, AccessRequest, OrgChart};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

#[allow(dead_code)]
#[path = "cluster/support.rs"]
mod cluster;
// The e2e suite's helpers for people's rights; only some are used here.
#[allow(dead_code)]
#[path = "e2e/support.rs"]
mod support;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Where both install paths put the operator (its admission policies name this namespace's
/// ServiceAccount).
const NAMESPACE: &str = "gatehouse-system";
const SELECTOR: &str = "app.kubernetes.io/name=gatehouse,app.kubernetes.io/component=operator";
const LEASE: &str = "gatehouse-operator";
/// The operator's default `--lease-duration`: a standby takes over at most this long after the
/// leader last renewed.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// The ClusterRole the chart's and deploy/'s default bind list lets Gatehouse grant.
const ROLE: &str = "db-reader";
/// How long Pods may take to start and become ready (image unpack, cache sync, admission check).
const STARTUP: Duration = Duration::from_secs(180);

/// Both tests install the same cluster-wide objects (CRDs, admission policies, ClusterRoles), so
/// one runs at a time.
static ONE_INSTALL_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn the_chart_runs_two_replicas_that_take_over_and_upgrade_without_losing_a_grant() {
    let _one = ONE_INSTALL_AT_A_TIME.lock().await;
    let admin = cluster::client("admin").await;
    uninstall(&admin).await;
    load_operator_image(&image(None));
    create_operator_namespace(&admin).await;
    helm(&[
        "install",
        "gatehouse",
        &format!("{ROOT}/charts/gatehouse"),
        "--namespace",
        NAMESPACE,
    ]);

    let installed = running(&admin, "gatehouse:0.1.0").await;
    let team = Team::new(&admin, "helm").await;
    let kept = team.granted("kept", "30m").await;
    let kept_until = team.expires_at("kept").await;
    hand_over(&admin, &team, &installed).await;

    // An upgrade to a new image: the same binary under a new tag, so the Deployment rolls.
    let upgrade = image(Some("0.1.0-upgrade"));
    load_operator_image(&upgrade);
    let watch = BindingWatch::start(&admin, &team.ns, &kept);
    let rollout = Instant::now();
    helm(&[
        "upgrade",
        "gatehouse",
        &format!("{ROOT}/charts/gatehouse"),
        "--namespace",
        NAMESPACE,
        "--reuse-values",
        "--set",
        "image.tag=0.1.0-upgrade",
    ]);
    let upgraded = running(&admin, "gatehouse:0.1.0-upgrade").await;
    eprintln!(
        "install: helm upgrade rolled both replicas to the new image in {:.1}s",
        rollout.elapsed().as_secs_f64()
    );
    let gaps = watch.stop().await;
    assert_eq!(
        gaps, 0,
        "binding {kept} went missing {gaps} times during the upgrade"
    );
    assert_eq!(
        team.expires_at("kept").await,
        kept_until,
        "the upgrade changed when the grant ends"
    );
    team.phase("kept", AccessPhase::Active).await;
    team.granted("after-upgrade", "30m").await;
    assert!(upgraded.iter().all(|pod| !installed.contains(pod)));

    team.remove().await;
    uninstall(&admin).await;
}

#[tokio::test]
#[ignore = "needs the local cluster; make test-cluster starts it and runs this test"]
async fn the_kustomization_runs_two_replicas_that_take_over() {
    let _one = ONE_INSTALL_AT_A_TIME.lock().await;
    let admin = cluster::client("admin").await;
    uninstall(&admin).await;
    load_operator_image(&image(None));
    // As the README says for a new cluster: the CRDs first, since kubectl looks up the kind of
    // every object, the OrgChart too, before it creates any.
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        &format!("{ROOT}/crds/"),
    ]);
    kubectl(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &format!("{ROOT}/crds/"),
    ]);
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-k",
        &format!("{ROOT}/deploy"),
    ]);

    let installed = running(&admin, "gatehouse:0.1.0").await;
    let team = Team::new(&admin, "kustomize").await;
    team.granted("first", "30m").await;
    hand_over(&admin, &team, &installed).await;

    team.remove().await;
    uninstall(&admin).await;
}

/// Waits for two Ready replicas of `image`, checks what they run as, that one of them leads and
/// that `/metrics` answers through the Service; returns the Pods' names.
async fn running(admin: &Client, image: &str) -> Vec<String> {
    let start = Instant::now();
    let pods = loop {
        let (pods, _) = cluster::wait_for_ready_pods(admin, NAMESPACE, SELECTOR, 2, STARTUP).await;
        if pods.iter().all(|pod| runs_image(pod, image)) {
            break pods;
        }
        assert!(
            start.elapsed() < STARTUP,
            "the replicas never all ran {image}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    eprintln!(
        "install: 2 replicas of {image} Ready in {:.1}s",
        start.elapsed().as_secs_f64()
    );
    let names: Vec<String> = pods
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    for pod in &pods {
        hardened(pod);
    }
    let leader = wait_for_leader(admin, &names, STARTUP).await;
    eprintln!("install: {leader} leads");

    // The Service balances between both replicas: scrape until the leader answered.
    let mut scrapes = 0;
    loop {
        scrapes += 1;
        let metrics = cluster::service_proxy_get(
            admin,
            NAMESPACE,
            "gatehouse-metrics",
            "metrics",
            "/metrics",
        )
        .await
        .expect("/metrics answers through Service gatehouse-metrics");
        assert!(
            metrics.contains("# TYPE gatehouse_api_requests counter"),
            "/metrics through the Service is not the operator's:\n{metrics}"
        );
        if metrics.lines().any(|line| line == "gatehouse_leader 1") {
            break;
        }
        assert!(
            scrapes < 50,
            "50 scrapes through Service gatehouse-metrics never reached the leader"
        );
    }
    names
}

fn runs_image(pod: &Pod, image: &str) -> bool {
    pod.spec.as_ref().is_some_and(|spec| {
        spec.containers
            .iter()
            .all(|c| c.image.as_deref() == Some(image))
    })
}

/// What Pod Security `restricted` asks, as the Pod really runs: the namespace enforces it, so a
/// Pod without these would not exist; this says the operator's Pod is that Pod.
fn hardened(pod: &Pod) {
    let spec = pod.spec.as_ref().expect("a Pod has a spec");
    let container = &spec.containers[0];
    let context = container
        .security_context
        .as_ref()
        .expect("the operator's container has a security context");
    let pod_context = spec.security_context.as_ref();
    assert_eq!(
        pod_context.and_then(|c| c.run_as_user),
        Some(65532),
        "runs as uid 65532"
    );
    assert_eq!(context.read_only_root_filesystem, Some(true));
    assert_eq!(context.allow_privilege_escalation, Some(false));
    let status = pod.status.as_ref().expect("a running Pod has a status");
    let restarts: i32 = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    assert_eq!(restarts, 0, "the operator restarted: {status:?}");
}

async fn create_operator_namespace(admin: &Client) {
    let manifest = std::fs::read_to_string(format!("{ROOT}/deploy/base/namespace.yaml"))
        .expect("deploy/base/namespace.yaml");
    let namespace: Namespace = serde_yaml::from_str(&manifest).expect("a Namespace");
    let labels = namespace.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("the operator's namespace is created");
}

/// Deletes the leader's Pod as a person would (`kubectl delete pod`), and checks that the standby
/// takes over within the lease duration, that a grant falling due during the takeover is removed
/// on time and never early, and that the new leader provisions.
async fn hand_over(admin: &Client, team: &Team, pods: &[String]) {
    let leader = wait_for_leader(admin, pods, Duration::from_secs(5)).await;
    let due = team.granted("due", "45s").await;
    let due_at = team.expires_at("due").await;
    // Delete the leader a few seconds before the grant falls due, so it falls due while the
    // replicas hand over.
    let until_due = due_at.duration_since(Timestamp::now());
    let lead_time = jiff_secs(until_due).saturating_sub(Duration::from_secs(4));
    let watch = BindingWatch::start(admin, &team.ns, &due);
    tokio::time::sleep(lead_time).await;

    let deleted = Instant::now();
    Api::<Pod>::namespaced(admin.clone(), NAMESPACE)
        .delete(&leader, &DeleteParams::default())
        .await
        .expect("the leader's Pod is deleted");
    let new_leader =
        wait_for_successor(admin, &leader, LEASE_DURATION + Duration::from_secs(5)).await;
    let took = deleted.elapsed();
    let was_standby = pods.contains(&new_leader);
    eprintln!(
        "install: {new_leader} ({}) took over {:.1}s after {leader}'s Pod was deleted (lease duration {LEASE_DURATION:?})",
        if was_standby {
            "the standby"
        } else {
            "the Deployment's replacement Pod"
        },
        took.as_secs_f64()
    );
    assert!(
        took <= LEASE_DURATION + Duration::from_secs(2),
        "the standby took {took:?}, more than the lease duration"
    );

    let removed = watch.removal(LEASE_DURATION * 2).await;
    let lag = removed.duration_since(due_at);
    eprintln!(
        "install: the grant that fell due during the takeover was removed {:.1}s after its expiry",
        lag.as_secs_f64()
    );
    assert!(
        removed >= due_at,
        "binding {due} was removed {:?} before it fell due",
        due_at.duration_since(removed)
    );
    assert!(
        jiff_secs(lag) <= LEASE_DURATION,
        "binding {due} was removed {lag:?} after it fell due, more than the lease duration"
    );
    team.phase("due", AccessPhase::Expired).await;
    team.granted("after-takeover", "30m").await;
}

fn jiff_secs(span: k8s_openapi::jiff::SignedDuration) -> Duration {
    Duration::try_from(span).unwrap_or_default()
}

async fn holder(admin: &Client) -> Option<String> {
    Api::<Lease>::namespaced(admin.clone(), NAMESPACE)
        .get_opt(LEASE)
        .await
        .ok()
        .flatten()
        .and_then(|lease| lease.spec?.holder_identity)
}

/// Waits until one of `pods` holds the Lease; its name.
async fn wait_for_leader(admin: &Client, pods: &[String], within: Duration) -> String {
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < within {
        last = holder(admin).await;
        if let Some(holder) = last.as_ref().filter(|h| pods.contains(h)) {
            return holder.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("none of {pods:?} held Lease {NAMESPACE}/{LEASE} within {within:?}; holder: {last:?}")
}

/// Waits until a live replica other than `leader` holds the Lease: the standby, or the Pod the
/// Deployment started in the deleted one's place when it was quicker to look; its name.
async fn wait_for_successor(admin: &Client, leader: &str, within: Duration) -> String {
    let pods = Api::<Pod>::namespaced(admin.clone(), NAMESPACE);
    let start = Instant::now();
    let mut last = None;
    while start.elapsed() < within {
        last = holder(admin).await;
        if let Some(holder) = last.as_deref().filter(|h| *h != leader) {
            let live = pods
                .get_opt(holder)
                .await
                .ok()
                .flatten()
                .is_some_and(|pod| pod.metadata.deletion_timestamp.is_none());
            if live {
                return holder.to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no replica but {leader} held Lease {NAMESPACE}/{LEASE} within {within:?}; holder: {last:?}"
    )
}

/// A team namespace whose policy lets alice ask for `db-reader` with bob, her manager, approving.
struct Team {
    ns: String,
    admin: Client,
    alice: Api<AccessRequest>,
    bob: Api<AccessRequest>,
}

impl Team {
    async fn new(admin: &Client, prefix: &str) -> Team {
        let ns = cluster::unique(prefix);
        support::namespace(admin, &ns, &[("gatehouse-install", &ns)]).await;
        support::cluster_role(admin, ROLE, "configmaps").await;
        support::allow_requests(admin, &ns, "alice").await;
        support::allow_approval(admin, &ns, "bob", "manager").await;
        let policy: AccessPolicy = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessPolicy",
            "metadata": { "name": ns },
            "spec": {
                "roles": [{ "kind": "ClusterRole", "name": ROLE }],
                "namespaceSelector": { "matchLabels": { "gatehouse-install": ns } },
                "maxDuration": "1h",
                "approvals": [{ "role": "manager" }]
            }
        }))
        .expect("a valid AccessPolicy");
        Api::<AccessPolicy>::all(admin.clone())
            .create(&PostParams::default(), &policy)
            .await
            .expect("the team's policy is created");
        Team {
            alice: Api::namespaced(cluster::client("alice").await, &ns),
            bob: Api::namespaced(cluster::client("bob").await, &ns),
            admin: admin.clone(),
            ns,
        }
    }

    /// alice files `name` for `duration`, bob approves it; waits until it is Active and returns
    /// its binding's name, which must exist.
    async fn granted(&self, name: &str, duration: &str) -> String {
        support::file_request(
            &self.alice,
            &self.ns,
            name,
            ROLE,
            duration,
            "OPS-42 read the settlement config",
        )
        .await;
        support::wait_for_stages(&self.bob, name).await;
        support::annotate(&self.bob, name, &[("approve.gatehouse.dev/manager", "bob")]).await;
        let active = self.phase(name, AccessPhase::Active).await;
        let binding = active
            .status
            .and_then(|s| s.grant)
            .and_then(|g| g.bindings.first().map(|b| b.name.clone()))
            .expect("an active request names its binding");
        Api::<RoleBinding>::namespaced(self.admin.clone(), &self.ns)
            .get(&binding)
            .await
            .unwrap_or_else(|e| panic!("binding {binding} of {name}: {e}"));
        binding
    }

    async fn phase(&self, name: &str, phase: AccessPhase) -> AccessRequest {
        cluster::wait_until(
            &self.alice,
            name,
            &format!("{phase:?}"),
            STARTUP,
            |request: &AccessRequest| request.status.as_ref().and_then(|s| s.phase) == Some(phase),
        )
        .await
        .0
    }

    async fn expires_at(&self, name: &str) -> Timestamp {
        self.alice
            .get(name)
            .await
            .expect("the request")
            .status
            .and_then(|s| s.grant)
            .map(|g| g.expires_at.0)
            .expect("an active request has an expiry")
    }

    /// Deletes the team's requests as the admin while the operator runs (it removes their
    /// finalizers), then the namespace and the policy.
    async fn remove(self) {
        let requests = Api::<AccessRequest>::namespaced(self.admin.clone(), &self.ns);
        let listed = requests
            .list(&ListParams::default())
            .await
            .expect("the team's requests are listed");
        for request in listed.items {
            let name = request.metadata.name.expect("a listed object has a name");
            requests
                .delete(&name, &DeleteParams::default())
                .await
                .expect("the request is deleted");
            cluster::wait_gone(&requests, &name, STARTUP).await;
        }
        Api::<AccessPolicy>::all(self.admin.clone())
            .delete(&self.ns, &DeleteParams::default())
            .await
            .expect("the policy is deleted");
        Api::<Namespace>::all(self.admin.clone())
            .delete(&self.ns, &DeleteParams::default())
            .await
            .expect("the namespace is deleted");
    }
}

/// Polls a binding every 100 ms in the background: counts the times it was missing while it
/// should exist, or records when it was first seen gone.
struct BindingWatch {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<(u32, Option<Timestamp>)>,
}

impl BindingWatch {
    fn start(admin: &Client, ns: &str, name: &str) -> BindingWatch {
        let bindings = Api::<RoleBinding>::namespaced(admin.clone(), ns);
        let name = name.to_string();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut missing = 0;
            loop {
                if *stopped.borrow() {
                    return (missing, None);
                }
                match bindings.get_opt(&name).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        missing += 1;
                        return (missing, Some(Timestamp::now()));
                    }
                    // The API server answers throughout; a failed read is not a missing binding.
                    Err(_) => {}
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        BindingWatch { stop, task }
    }

    /// Stops watching; how many times the binding was missing (0 or 1: watching ends there).
    async fn stop(self) -> u32 {
        let _ = self.stop.send(true);
        self.task.await.expect("the watch task").0
    }

    /// Waits (at most `within` past now) until the binding is gone; when it was first seen gone.
    async fn removal(self, within: Duration) -> Timestamp {
        match tokio::time::timeout(within, self.task).await {
            Ok(Ok((_, Some(gone)))) => gone,
            other => panic!("the binding was still there {within:?} later: {other:?}"),
        }
    }
}

/// The operator's image tarball (`make image`, cached), or one of the same binary tagged
/// `gatehouse:<tag>` in a directory of its own.
fn image(tag: Option<&str>) -> PathBuf {
    let mut build = Command::new("bash");
    build.arg(format!("{ROOT}/hack/image/build.sh"));
    if let Some(tag) = tag {
        build
            .env("GATEHOUSE_IMAGE_TAG", format!("gatehouse:{tag}"))
            .env("GATEHOUSE_IMAGE_DIR", format!("{ROOT}/target/image-{tag}"));
    }
    let output = build.output().expect("bash runs");
    assert!(
        output.status.success(),
        "hack/image/build.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8_lossy(&output.stdout).trim())
}

fn load_operator_image(tarball: &Path) {
    let references = cluster::load_image(tarball);
    assert!(
        references
            .iter()
            .any(|r| r.starts_with("docker.io/library/gatehouse:")),
        "{} held {references:?}",
        tarball.display()
    );
}

fn kubectl(args: &[&str]) -> String {
    command(
        Command::new("kubectl")
            .env("KUBECONFIG", cluster::kubeconfig())
            .args(["--context", "admin"])
            .args(args),
    )
}

fn helm(args: &[&str]) -> String {
    let helm = Command::new("bash")
        .arg(format!("{ROOT}/hack/helm/build.sh"))
        .output()
        .expect("bash runs");
    assert!(helm.status.success(), "hack/helm/build.sh failed");
    let helm = String::from_utf8_lossy(&helm.stdout).trim().to_string();
    command(
        Command::new(helm)
            .env("KUBECONFIG", cluster::kubeconfig())
            .args(["--kube-context", "admin"])
            .args(args),
    )
}

fn command(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Removes whatever an earlier install (of either path, finished or not) left, except the CRDs and
/// their objects: the Helm release, deploy/'s other objects, and the operator's namespace.
async fn uninstall(admin: &Client) {
    let releases = helm(&["list", "--namespace", NAMESPACE, "--short"]);
    if releases.lines().any(|r| r.trim() == "gatehouse") {
        helm(&["uninstall", "gatehouse", "--namespace", NAMESPACE, "--wait"]);
    }
    let rendered = kubectl(&["kustomize", &format!("{ROOT}/deploy")]);
    let others: Vec<serde_json::Value> = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|doc| serde::Deserialize::deserialize(doc).ok())
        .filter(|object: &serde_json::Value| {
            !object.is_null()
                && !matches!(
                    object["kind"].as_str(),
                    Some("CustomResourceDefinition" | "Namespace" | "OrgChart")
                )
        })
        .collect();
    // The OrgChart is cluster-scoped, so the namespace's deletion leaves it, and a kubectl-made one
    // would stop `helm install` (ownership metadata); on a new cluster its kind does not exist yet.
    match Api::<OrgChart>::all(admin.clone())
        .delete("gatehouse", &DeleteParams::default())
        .await
    {
        Ok(_) | Err(kube::Error::Api(_)) => {}
        Err(e) => panic!("deleting OrgChart gatehouse: {e}"),
    }
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": others });
    let mut delete = Command::new("kubectl")
        .env("KUBECONFIG", cluster::kubeconfig())
        .args([
            "--context",
            "admin",
            "delete",
            "--ignore-not-found",
            "-f",
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    {
        use std::io::Write;
        let mut stdin = delete.stdin.take().expect("stdin");
        stdin
            .write_all(list.to_string().as_bytes())
            .expect("kubectl reads the objects");
    }
    let output = delete.wait_with_output().expect("kubectl finishes");
    assert!(
        output.status.success(),
        "deleting deploy/'s objects failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let namespaces = Api::<Namespace>::all(admin.clone());
    if namespaces.get_opt(NAMESPACE).await.ok().flatten().is_some() {
        let _ = namespaces.delete(NAMESPACE, &DeleteParams::default()).await;
        cluster::wait_gone(&namespaces, NAMESPACE, STARTUP).await;
    }
}
