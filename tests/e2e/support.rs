//! The real control plane for end-to-end tests: started (or reused) by `hack/controlplane/up.sh`,
//! the CRDs and admission policies installed by the API server, and one operator process for the
//! whole test binary.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde::de::DeserializeOwned;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

static CONTROL_PLANE: OnceLock<Result<PathBuf, String>> = OnceLock::new();
static SHARED_OPERATOR: OnceLock<Result<Operator, String>> = OnceLock::new();

/// The kubeconfig of the running control plane, with one operator for the whole test binary, or
/// `None` when it could not start outside CI. With `CI=true` a control plane or operator that
/// cannot start fails the test with the reason.
pub fn kubeconfig() -> Option<&'static Path> {
    let kubeconfig = control_plane()?;
    let operator = SHARED_OPERATOR.get_or_init(|| Operator::start(kubeconfig, "e2e-operator"));
    usable(operator.as_ref().map(|_| kubeconfig))
}

/// The kubeconfig of the running control plane (CRDs and admission policies installed), without
/// an operator: for tests that start and stop operators themselves.
pub fn control_plane() -> Option<&'static Path> {
    usable(
        CONTROL_PLANE
            .get_or_init(start)
            .as_ref()
            .map(PathBuf::as_path),
    )
}

fn usable<'a>(result: Result<&'a Path, &String>) -> Option<&'a Path> {
    match result {
        Ok(kubeconfig) => Some(kubeconfig),
        Err(reason) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("the end-to-end suite could not run: {reason}")
        }
        Err(reason) => {
            eprintln!(
                "\n{bar}\nEND-TO-END TESTS DID NOT RUN: {reason}\nThey are not passing, they are not running. Fix the control plane (make controlplane).\n{bar}\n",
                bar = "!".repeat(100)
            );
            None
        }
    }
}

fn start() -> Result<PathBuf, String> {
    let status = Command::new("bash")
        .arg(format!("{ROOT}/hack/controlplane/up.sh"))
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run hack/controlplane/up.sh: {e}"))?;
    if !status.success() {
        return Err(format!(
            "hack/controlplane/up.sh failed ({status}); its output above says why"
        ));
    }
    let state = std::env::var("GATEHOUSE_CONTROLPLANE_DIR")
        .unwrap_or_else(|_| format!("{ROOT}/target/controlplane"));
    let kubeconfig = PathBuf::from(state).join("kubeconfig");
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
    kubectl(
        &kubeconfig,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "-k",
            &format!("{ROOT}/deploy/admission/"),
        ],
    )?;
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
    Ok(kubeconfig)
}

/// An operator process. Its stdin is the kill switch: when the pipe closes (on [`Operator::stop`]
/// or when the test process exits) the wrapper shell stops the operator with SIGTERM.
pub struct Operator {
    child: Child,
}

impl Operator {
    fn start(kubeconfig: &Path, log_name: &str) -> Result<Operator, String> {
        let log = std::fs::File::create(format!("{ROOT}/target/{log_name}.log"))
            .map_err(|e| e.to_string())?;
        let child = Command::new("sh")
            .args([
                "-c",
                r#""$0" run & op=$!; read -r _; kill -TERM "$op"; wait "$op""#,
                env!("CARGO_BIN_EXE_gatehouse"),
            ])
            .env("KUBECONFIG", kubeconfig)
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
        eprintln!("e2e: operator running, logs in target/{log_name}.log");
        Ok(Operator { child })
    }

    /// Stops the operator and waits until it has exited.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// Starts an operator of its own for a test; `log_name` names its log under target/.
pub fn spawn_operator(kubeconfig: &Path, log_name: &str) -> Operator {
    Operator::start(kubeconfig, log_name).unwrap_or_else(|reason| panic!("{reason}"))
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
    let name = format!("gatehouse-requester-{user}");
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec!["gatehouse.dev".into()]),
            resources: Some(vec![
                "accessrequests".into(),
                "datasharingagreements".into(),
            ]),
            verbs: ["create", "get", "list", "watch", "update", "patch"]
                .map(String::from)
                .to_vec(),
            ..Default::default()
        }]),
    };
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
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
        .expect("role created");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding created");
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
    let name = format!("gatehouse-approver-{approver_role}-{user}");
    let role = Role {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        rules: Some(vec![
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
        ]),
    };
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name,
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
        .expect("approver role");
    Api::<RoleBinding>::namespaced(admin.clone(), namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("approver binding");
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
