//! The real control plane for end-to-end tests: started (or reused) by `hack/controlplane/up.sh`,
//! the CRDs and admission policies installed by the API server, and one operator process for the
//! whole test binary.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

static CONTROL_PLANE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static SHARED_OPERATOR: OnceLock<Result<Operator, String>> = OnceLock::new();

/// The kubeconfig of the running control plane, with one operator for the whole test binary.
/// Panics with the reason when either cannot start: a test that needs them and runs without them
/// must fail, never pass. (Tests that need them are `#[ignore]`d; `make e2e` includes them.)
pub fn kubeconfig() -> &'static Path {
    let kubeconfig = control_plane();
    // Orphans are swept every second, so tests of the sweep need not wait the default 10 s; a
    // notification fails after 4 attempts (7 s of retries), so that tests see it fail.
    let operator = SHARED_OPERATOR.get_or_init(|| {
        Operator::start(
            kubeconfig,
            "e2e-operator",
            &["--sweep-interval=1s", "--notification-attempts=4"],
        )
    });
    if let Err(reason) = operator {
        panic!("the shared operator could not start: {reason}");
    }
    kubeconfig
}

/// The shared operator's `/metrics` text (after [`kubeconfig`] started it).
pub fn shared_operator_metrics() -> String {
    let operator = SHARED_OPERATOR
        .get()
        .and_then(|o| o.as_ref().ok())
        .expect("the shared operator runs");
    match operator.get("/metrics") {
        Ok((200, text)) => text,
        other => panic!("/metrics failed: {other:?}"),
    }
}

/// The value of one series of a `/metrics` text (name and labels exactly as exposed), if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The kubeconfig of the running control plane (CRDs and admission policies installed), without
/// an operator: for tests that start and stop operators themselves. Panics with the reason when
/// the control plane cannot start.
pub fn control_plane() -> &'static Path {
    match CONTROL_PLANE.get_or_init(start) {
        Ok(kubeconfig) => kubeconfig,
        Err(reason) => panic!("the control plane could not start: {reason}"),
    }
}

fn start() -> Result<PathBuf, String> {
    let state = std::env::var("GATEHOUSE_CONTROLPLANE_DIR")
        .unwrap_or_else(|_| format!("{ROOT}/target/controlplane"));
    start_in(Path::new(&state))
}

/// Starts (or reuses) the control plane whose state directory is `state` with
/// `hack/controlplane/up.sh`, and installs the CRDs, the admission policies, the operator's
/// namespace and the org chart; returns its kubeconfig.
pub fn start_in(state: &Path) -> Result<PathBuf, String> {
    let status = Command::new("bash")
        .arg(format!("{ROOT}/hack/controlplane/up.sh"))
        .env("GATEHOUSE_CONTROLPLANE_DIR", state)
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run hack/controlplane/up.sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "hack/controlplane/up.sh failed ({status}); its output above says why"
        ));
    }
    let kubeconfig = state.join("kubeconfig");
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &format!("{ROOT}/crds/"),
        ],
    )?;
    // The admission policies, and the one that adds the operator's finalizer at filing.
    for kustomization in ["deploy/admission/", "deploy/finalizers/"] {
        kubectl(
            &kubeconfig,
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "-k",
                &format!("{ROOT}/{kustomization}"),
            ],
        )?;
    }
    kubectl(
        &kubeconfig,
        &[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "!none",
            "--all",
        ],
    )?;
    // The org chart the policy gatehouse-requester-manager reads: without it the API server
    // refuses every update of requests and agreements. An OrgChart: only once its CRD serves.
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            &format!("{ROOT}/deploy/base/namespace.yaml"),
            "-f",
            &format!("{ROOT}/deploy/base/org-chart.yaml"),
        ],
    )?;
    Ok(kubeconfig)
}

/// An operator process, running as the ServiceAccount that deploy/ defines (never as admin), with
/// the RBAC of `deploy/overlays/e2e`. Its stdin is the kill switch: when the pipe closes (on
/// [`Operator::stop`] or when the test process exits) the wrapper shell stops the operator with
/// SIGTERM; a line naming another signal ([`Operator::kill`]) sends that one instead (read through
/// fd 3: `sh` gives background jobs /dev/null as stdin). The wrapper exits with the operator's
/// status. Each operator serves its metrics on a free loopback port and is named `log_name`
/// (POD_NAME, its leader election identity).
pub struct Operator {
    child: Child,
    /// Where it serves /metrics, /healthz and /readyz.
    pub metrics: SocketAddr,
}

impl Operator {
    fn start(kubeconfig: &Path, log_name: &str, args: &[&str]) -> Result<Operator, String> {
        let identity = operator_kubeconfig(kubeconfig)?;
        let log = std::fs::File::create(format!("{ROOT}/target/{log_name}.log"))
            .map_err(|e| e.to_string())?;
        let metrics = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port for the operator's metrics: {e}"))?;
        let child = Command::new("sh")
            .args([
                "-c",
                r#"exec 3<&0; "$0" run "$@" & op=$!
                (read -r how <&3; kill -"${how:-TERM}" "$op") & stopper=$!
                wait "$op"; status=$?; kill "$stopper" 2>/dev/null; exit "$status""#,
                env!("CARGO_BIN_EXE_gatehouse"),
                &format!("--metrics-address={metrics}"),
            ])
            .args(args)
            .env("KUBECONFIG", identity)
            .env("POD_NAME", log_name)
            .env(
                "GATEHOUSE_LOG",
                std::env::var("GATEHOUSE_E2E_LOG")
                    .unwrap_or_else(|_| "info,gatehouse=debug".into()),
            )
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the operator: {e}"))?;
        eprintln!("e2e: operator running as {OPERATOR_USER}, logs in target/{log_name}.log");
        Ok(Operator { child, metrics })
    }

    /// Stops the operator and waits until it has exited.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }

    /// Kills the operator with SIGKILL, as a crash or an evicted node would: it releases nothing.
    pub fn kill(mut self) {
        use std::io::Write;
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.write_all(b"KILL\n");
        }
        let _ = self.child.wait();
    }

    /// The operator's exit status, once it exits by itself within `timeout`.
    pub fn exit_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// The process id of the operator itself (not of its wrapper shell), while it runs.
    pub fn pid(&self) -> Option<u32> {
        let wrapper = self.child.id();
        let children =
            std::fs::read_to_string(format!("/proc/{wrapper}/task/{wrapper}/children")).ok()?;
        children
            .split_whitespace()
            .filter_map(|pid| pid.parse().ok())
            .find(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|cmdline| {
                    cmdline.split(|b| *b == 0).next()
                        == Some(env!("CARGO_BIN_EXE_gatehouse").as_bytes())
                })
            })
    }

    /// `GET path` on the operator's metrics address: the status code and body.
    pub fn get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.metrics, path)
    }
}

/// A plain HTTP/1.1 GET, enough for the operator's three endpoints.
fn http_get(address: SocketAddr, path: &str) -> Result<(u16, String), String> {
    use std::io::{Read, Write};
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))
        .map_err(|e| format!("cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| format!("cannot send to {address}: {e}"))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| format!("cannot read from {address}: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("not an HTTP response: {response:?}"))?;
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status code in {head:?}"))?;
    Ok((code, body.to_string()))
}

/// The operator's namespace and ServiceAccount, as deploy/base defines them.
pub const OPERATOR_NAMESPACE: &str = "gatehouse-system";
pub const OPERATOR_SERVICE_ACCOUNT: &str = "gatehouse";
/// The username the API server sees for the operator.
pub const OPERATOR_USER: &str = "system:serviceaccount:gatehouse-system:gatehouse";
/// The overlay whose RBAC the tests' operator runs with: deploy/base plus the roles tests grant.
pub const OPERATOR_OVERLAY: &str = "deploy/overlays/e2e";

/// The operator's kubeconfig per control plane (by the control plane's kubeconfig).
static OPERATOR_IDENTITY: Mutex<BTreeMap<PathBuf, PathBuf>> = Mutex::new(BTreeMap::new());

/// A kubeconfig that authenticates as the operator's ServiceAccount, set up once per control plane:
/// the admin applies the operator's identity from [`OPERATOR_OVERLAY`] (Namespace, ServiceAccount,
/// ClusterRoles and their bindings; not the Deployment), mints a token with the TokenRequest API
/// and writes server, CA and token beside the control plane's kubeconfig.
pub fn operator_kubeconfig(kubeconfig: &Path) -> Result<PathBuf, String> {
    let mut identities = OPERATOR_IDENTITY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(identity) = identities.get(kubeconfig) {
        return Ok(identity.clone());
    }
    let identity = set_up_operator_identity(kubeconfig)?;
    identities.insert(kubeconfig.to_path_buf(), identity.clone());
    Ok(identity)
}

fn set_up_operator_identity(kubeconfig: &Path) -> Result<PathBuf, String> {
    let identity = operator_identity_manifests()?;
    kubectl_with_input(
        kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=gatehouse-e2e",
            "-f",
            "-",
        ],
        &identity.to_string(),
    )?;
    let token = kubectl_with_input(
        kubeconfig,
        &[
            "create",
            "token",
            OPERATOR_SERVICE_ACCOUNT,
            "-n",
            OPERATOR_NAMESPACE,
            "--duration=2h",
        ],
        "",
    )?;
    let path = kubeconfig.with_file_name("gatehouse-operator.kubeconfig");
    write_private(&path, &token_kubeconfig(kubeconfig, token.trim())?)?;
    // The API server's token authenticator and RBAC authorizer learn of the new ServiceAccount and
    // bindings from caches: wait until both answer for the operator, so it never starts on a 401
    // or 403 that would be gone a moment later.
    let last_role = identity["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|o| o["metadata"]["name"] == "gatehouse-operator-bind" && o["kind"] == "ClusterRole")
        .and_then(|o| o["rules"][0]["resourceNames"].as_array()?.last()?.as_str())
        .ok_or("the overlay has no ClusterRole gatehouse-operator-bind with resourceNames")?
        .to_string();
    let checks = [
        ["list", "accessrequests.gatehouse.dev", "--all-namespaces"].map(String::from),
        [
            "patch",
            "leases.coordination.k8s.io/gatehouse-operator",
            &format!("--namespace={OPERATOR_NAMESPACE}"),
        ]
        .map(String::from),
        [
            "bind",
            &format!("clusterroles/{last_role}"),
            "--all-namespaces",
        ]
        .map(String::from),
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    for check in &checks {
        loop {
            let mut args = vec![
                "--kubeconfig",
                path.to_str().unwrap_or_default(),
                "auth",
                "can-i",
            ];
            args.extend(check.iter().map(String::as_str));
            let output = Command::new("kubectl")
                .args(&args)
                .output()
                .map_err(|e| format!("cannot run kubectl: {e}"))?;
            if String::from_utf8_lossy(&output.stdout).trim() == "yes" {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{OPERATOR_USER} still may not {} after 30s: {}{}",
                    check.join(" "),
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(path)
}

/// The operator's identity from [`OPERATOR_OVERLAY`], as a `v1/List`: the objects labelled
/// `app.kubernetes.io/component: operator` except the Deployment and its metrics Service (the test
/// runs the binary itself).
pub fn operator_identity_manifests() -> Result<serde_json::Value, String> {
    let rendered = Command::new("kubectl")
        .args(["kustomize", &format!("{ROOT}/{OPERATOR_OVERLAY}")])
        .output()
        .map_err(|e| format!("cannot run kubectl kustomize: {e}"))?;
    if !rendered.status.success() {
        return Err(format!(
            "kubectl kustomize {OPERATOR_OVERLAY} failed: {}",
            String::from_utf8_lossy(&rendered.stderr)
        ));
    }
    let items: Vec<serde_json::Value> = serde_yaml::Deserializer::from_slice(&rendered.stdout)
        .map(|doc| serde::Deserialize::deserialize(doc).map_err(|e| e.to_string()))
        .collect::<Result<Vec<serde_json::Value>, String>>()?
        .into_iter()
        .filter(|o| {
            o["metadata"]["labels"]["app.kubernetes.io/component"] == "operator"
                && o["kind"] != "Deployment"
                && o["kind"] != "Service"
        })
        .collect();
    let mut kinds: Vec<&str> = items.iter().filter_map(|o| o["kind"].as_str()).collect();
    kinds.sort_unstable();
    let expected = [
        "ClusterRole",
        "ClusterRole",
        "ClusterRoleBinding",
        "ClusterRoleBinding",
        "Namespace",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ];
    if kinds != expected {
        return Err(format!(
            "{OPERATOR_OVERLAY} should hold the operator's {expected:?}, has {kinds:?}"
        ));
    }
    Ok(serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": items }))
}

/// A kubeconfig for the control plane of `kubeconfig` (its current context's server and CA) that
/// authenticates with `token`.
fn token_kubeconfig(kubeconfig: &Path, token: &str) -> Result<String, String> {
    let config = Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let context = config
        .contexts
        .iter()
        .find(|c| Some(&c.name) == config.current_context.as_ref())
        .and_then(|c| c.context.as_ref())
        .ok_or("the control plane's kubeconfig has no current context")?;
    let cluster = config
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .and_then(|c| c.cluster.as_ref())
        .ok_or("the control plane's kubeconfig has no cluster for its current context")?;
    let config = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "gatehouse", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data,
        } }],
        "users": [{ "name": OPERATOR_USER, "user": { "token": token } }],
        "contexts": [{ "name": "operator", "context": { "cluster": "gatehouse", "user": OPERATOR_USER } }],
        "current-context": "operator",
    });
    Ok(config.to_string())
}

/// Writes a file only its owner may read, atomically (parallel test processes share the path).
fn write_private(path: &Path, contents: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(contents.as_bytes()).map(|()| f))
        .map_err(|e| format!("cannot write {}: {e}", tmp.display()))?;
    file.flush().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Runs kubectl against `kubeconfig` with `input` on stdin; its stdout, or why it failed.
fn kubectl_with_input(kubeconfig: &Path, args: &[&str], input: &str) -> Result<String, String> {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("cannot write to kubectl: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("kubectl failed: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Starts an operator of its own for a test; `log_name` names its log under target/.
pub fn spawn_operator(kubeconfig: &Path, log_name: &str) -> Operator {
    spawn_operator_with(kubeconfig, log_name, &[])
}

/// [`spawn_operator`] with more arguments for `gatehouse run`.
pub fn spawn_operator_with(kubeconfig: &Path, log_name: &str, args: &[&str]) -> Operator {
    Operator::start(kubeconfig, log_name, args).unwrap_or_else(|reason| panic!("{reason}"))
}

fn kubectl(kubeconfig: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run kubectl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A client acting as `user` (a context of the control plane's kubeconfig: `admin`, `alice`, ...).
pub async fn client(kubeconfig: &Path, user: &str) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("readable kubeconfig");
    let options = KubeConfigOptions {
        context: Some(user.to_string()),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .expect("valid kubeconfig context");
    Client::try_from(config).expect("client")
}

/// A name no other test uses, so tests run in parallel on one control plane.
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

/// Creates a namespace with `labels`.
pub async fn namespace(admin: &Client, name: &str, labels: &[(&str, &str)]) {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(admin.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

/// Lets `user` create and manage Gatehouse requests in `namespace`, as a platform team would.
pub async fn allow_requests(admin: &Client, namespace: &str, user: &str) {
    let rules = vec![PolicyRule {
        api_groups: Some(vec!["gatehouse.dev".into()]),
        resources: Some(vec![
            "accessrequests".into(),
            "datasharingagreements".into(),
        ]),
        verbs: ["create", "get", "list", "watch", "update", "patch"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    }];
    grant(
        admin,
        namespace,
        user,
        &format!("gatehouse-requester-{user}"),
        rules,
    )
    .await;
}

/// Makes `user` an administrator of `namespace`: `*` on `*` there, an ordinary right for a team
/// that owns its namespace (it includes every custom verb, and the status subresources).
pub async fn namespace_admin(admin: &Client, namespace: &str, user: &str) {
    let everything = vec![PolicyRule {
        api_groups: Some(vec!["*".into()]),
        resources: Some(vec!["*".into()]),
        verbs: vec!["*".into()],
        ..Default::default()
    }];
    grant(
        admin,
        namespace,
        user,
        &format!("namespace-admin-{user}"),
        everything,
    )
    .await;
    // RBAC is served from the authorizer's cache: wait until the new rights answer.
    let reviews = Api::<SubjectAccessReview>::all(admin.clone());
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.into()),
                verb: Some("patch".into()),
                group: Some("gatehouse.dev".into()),
                resource: Some("accessrequests".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let allowed = reviews
            .create(&PostParams::default(), &review)
            .await
            .map(|r| r.status.is_some_and(|s| s.allowed))
            .unwrap_or(false);
        if allowed {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user} never became admin of {namespace}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates Role `name` with `rules` in `namespace` and binds it to `user`.
async fn grant(admin: &Client, namespace: &str, user: &str, name: &str, rules: Vec<PolicyRule>) {
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(rules),
    };
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.into(),
            ..Default::default()
        }]),
    };
    Api::<Role>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &role)
        .await
        .unwrap_or_else(|err| panic!("Role {name} in {namespace}: {err}"));
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|err| panic!("RoleBinding {name} in {namespace}: {err}"));
}

/// Polls `name` until `done` holds, or panics after 30 s with the last state seen. The bound is a
/// liveness limit, not a speed assertion: speed is measured in benchmarks.
pub async fn wait_until<K>(api: &Api<K>, name: &str, what: &str, done: impl Fn(&K) -> bool) -> K
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        if let Ok(object) = api.get(name).await {
            if done(&object) {
                return object;
            }
            last = Some(object);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!(
        "{name} never reached {what} within 30s; last seen: {last:#?}\n(operator logs: target/e2e-operator.log)"
    )
}

/// The message of an API error, for tests that expect the API server to refuse.
pub fn rejection<T: Debug>(result: Result<T, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.message),
        other => panic!("expected the API server to refuse, got {other:?}"),
    }
}

/// Lets `user` approve as `approver_role` in `namespace` (verb `approve` on `approvals` with that
/// resourceName) and annotate requests there, as an admin would with the shipped approver roles.
pub async fn allow_approval(admin: &Client, namespace: &str, user: &str, approver_role: &str) {
    let rules = vec![
        PolicyRule {
            api_groups: Some(vec!["gatehouse.dev".into()]),
            resources: Some(vec!["approvals".into()]),
            resource_names: Some(vec![approver_role.into()]),
            verbs: vec!["approve".into(), "revoke".into()],
            ..Default::default()
        },
        PolicyRule {
            api_groups: Some(vec!["gatehouse.dev".into()]),
            resources: Some(vec![
                "accessrequests".into(),
                "datasharingagreements".into(),
            ]),
            verbs: ["get", "list", "watch", "patch"].map(String::from).to_vec(),
            ..Default::default()
        },
    ];
    grant(
        admin,
        namespace,
        user,
        &format!("gatehouse-approver-{approver_role}-{user}"),
        rules,
    )
    .await;
}

/// Sets annotations on an object as whoever `api`'s client is.
pub async fn annotate<K>(api: &Api<K>, name: &str, annotations: &[(&str, &str)])
where
    K: Clone + DeserializeOwned + Debug,
{
    let map: BTreeMap<&str, &str> = annotations.iter().copied().collect();
    let patch = serde_json::json!({ "metadata": { "annotations": map } });
    api.patch(
        name,
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap_or_else(|err| panic!("annotating {name} with {annotations:?} failed: {err}"));
}

/// `kubectl auth can-i VERB RESOURCE -n NAMESPACE --as USER`, asked by the admin: whether the API
/// server's authorizer lets `user` do it right now.
pub fn can_i(kubeconfig: &Path, user: &str, verb: &str, resource: &str, namespace: &str) -> bool {
    let output = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args([
            "--context",
            "admin",
            "auth",
            "can-i",
            verb,
            resource,
            "-n",
            namespace,
            "--as",
            user,
        ])
        .output()
        .expect("kubectl runs");
    String::from_utf8_lossy(&output.stdout).trim() == "yes"
}

/// Polls until `name` no longer exists (or panics after 30 s).
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Clone + DeserializeOwned + Debug,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if matches!(api.get_opt(name).await, Ok(None)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{name} still exists after 30s (operator logs: target/e2e-operator.log)");
}

/// A ClusterRole allowing get and list on one core resource; shared by tests, created once.
pub async fn cluster_role(admin: &Client, name: &str, resource: &str) {
    let role = k8s_openapi::api::rbac::v1::ClusterRole {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![resource.into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    match Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("cannot create ClusterRole {name}: {err}"),
    }
}

/// Sets (`Some`) or removes (`None`) entries of the org chart, OrgChart gatehouse's
/// `spec.managers` (a JSON merge patch: `None` is null, which removes the key).
pub async fn org_chart(admin: &Client, entries: &[(&str, Option<&str>)]) {
    let managers: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(user, manager)| (user.to_string(), serde_json::json!(manager)))
        .collect();
    Api::<gatehouse::api::OrgChart>::all(admin.clone())
        .patch(
            gatehouse::api::ORG_CHART,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&serde_json::json!({ "spec": { "managers": managers } })),
        )
        .await
        .unwrap_or_else(|err| panic!("org chart entries {entries:?}: {err}"));
}

/// A fresh namespace (labelled `gatehouse-e2e=<name>`) where alice may file requests and bob
/// approves as manager, a ClusterRole `role` reading configmaps, and an AccessPolicy named like the
/// namespace letting alice ask for `role` there with the manager's approval. Returns the namespace.
pub async fn manager_approved_namespace(admin: &Client, test: &str, role: &str) -> String {
    let ns = unique(test);
    namespace(admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    allow_requests(admin, &ns, "alice").await;
    allow_approval(admin, &ns, "bob", "manager").await;
    cluster_role(admin, role, "configmaps").await;
    let policy: gatehouse::api::AccessPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy", "metadata": { "name": ns },
        "spec": { "roles": [{ "kind": "ClusterRole", "name": role }],
                  "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
                  "maxDuration": "1h", "approvals": [{ "role": "manager" }] }
    }))
    .expect("valid AccessPolicy");
    Api::<gatehouse::api::AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    ns
}

/// A data owner namespace (labelled `gatehouse-e2e=<name>`, where alice files agreements and
/// carol approves as data owner), a recipient namespace, and a SharingPolicy named like the first
/// with `policy` as its spec plus selectors for exactly these two. Returns both namespaces.
pub async fn sharing_namespaces(
    admin: &Client,
    test: &str,
    mut policy: serde_json::Value,
) -> (String, String) {
    let ns = unique(test);
    let recipient = unique(&format!("{test}-to"));
    namespace(admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    namespace(admin, &recipient, &[("gatehouse-e2e-recipient", &ns)]).await;
    allow_requests(admin, &ns, "alice").await;
    allow_approval(admin, &ns, "carol", "data-owner").await;
    policy["namespaceSelector"] = serde_json::json!({ "matchLabels": { "gatehouse-e2e": ns } });
    policy["recipientNamespaceSelector"] =
        serde_json::json!({ "matchLabels": { "gatehouse-e2e-recipient": ns } });
    let policy: gatehouse::api::SharingPolicy = serde_json::from_value(serde_json::json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "SharingPolicy",
        "metadata": { "name": ns }, "spec": policy
    }))
    .expect("valid SharingPolicy");
    Api::<gatehouse::api::SharingPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    (ns, recipient)
}

/// A client authenticating with a ServiceAccount token minted through the TokenRequest API by
/// `minter` (who needs `create` on `serviceaccounts/token`), against the control plane of
/// `kubeconfig`.
pub async fn service_account_client(
    kubeconfig: &Path,
    minter: &Client,
    ns: &str,
    sa: &str,
) -> Client {
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = Api::<ServiceAccount>::namespaced(minter.clone(), ns)
        .create_token_request(sa, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {ns}/{sa}: {e}"))
        .status
        .expect("token status")
        .token;
    let local = Kubeconfig::read_from(kubeconfig).expect("kubeconfig");
    let cluster = local
        .clusters
        .iter()
        .find_map(|c| c.cluster.clone())
        .expect("a cluster");
    let config: Kubeconfig = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "gatehouse", "cluster": {
            "server": cluster.server,
            "certificate-authority-data": cluster.certificate_authority_data } }],
        "users": [{ "name": sa, "user": { "token": token } }],
        "contexts": [{ "name": sa, "context": { "cluster": "gatehouse", "user": sa } }],
        "current-context": sa
    }))
    .expect("kubeconfig for the ServiceAccount");
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

pub async fn create_service_account(by: &Client, ns: &str, name: &str) {
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<ServiceAccount>::namespaced(by.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap_or_else(|e| panic!("ServiceAccount {ns}/{name}: {e}"));
}

/// `requests`' user files an AccessRequest `name` in `ns` for ClusterRole `role` as alice, for
/// `duration`, with `justification`; returns its UID (records are named by it).
pub async fn file_request(
    requests: &Api<gatehouse::api::AccessRequest>,
    ns: &str,
    name: &str,
    role: &str,
    duration: &str,
    justification: &str,
) -> String {
    let request: gatehouse::api::AccessRequest = serde_json::from_value(serde_json::json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": role },
                  "duration": duration, "justification": justification }
    }))
    .expect("valid request");
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap_or_else(|err| panic!("{name} cannot be filed: {err}"))
        .metadata
        .uid
        .expect("the API server assigns a UID")
}

/// Waits until the operator listed the stages of `name` (status.requiredApprovals): only then
/// does admission take a denial or a request for changes.
pub async fn wait_for_stages<K>(api: &Api<K>, name: &str) -> K
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + serde::Serialize,
{
    wait_until(api, name, "its stages listed", |object| {
        serde_json::to_value(object)
            .ok()
            .and_then(|v| {
                v["status"]["requiredApprovals"]
                    .as_array()
                    .map(|a| !a.is_empty())
            })
            .unwrap_or(false)
    })
    .await
}

/// A source Secret `name` in `ns` with `string_data`, created as `admin`.
pub async fn source_secret(admin: &Client, ns: &str, name: &str, string_data: serde_json::Value) {
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": { "name": name }, "stringData": string_data
    }))
    .expect("valid Secret");
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|err| panic!("source {name} cannot be created: {err}"));
}

/// alice files a DataSharingAgreement `name` in `ns` (the SharingPolicy named like `ns` governs
/// it) with `spec` as its spec besides requester and policy; returns its UID.
pub async fn file_agreement(
    agreements: &Api<gatehouse::api::DataSharingAgreement>,
    ns: &str,
    name: &str,
    mut spec: serde_json::Value,
) -> String {
    spec["requester"] = serde_json::json!("alice");
    spec["policy"] = serde_json::json!(ns);
    let agreement: gatehouse::api::DataSharingAgreement =
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": { "name": name, "namespace": ns }, "spec": spec
        }))
        .expect("valid DataSharingAgreement");
    agreements
        .create(&PostParams::default(), &agreement)
        .await
        .unwrap_or_else(|err| panic!("{name} cannot be filed: {err}"))
        .metadata
        .uid
        .expect("the API server assigns a UID")
}
