//! The real control plane for end-to-end tests: started (or reused) by `hack/controlplane/up.sh`,
//! the CRDs installed by the API server, and one operator process for the whole test binary.

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

struct Cluster {
    kubeconfig: PathBuf,
    /// The operator; its stdin is the kill switch: when this test process exits, the pipe closes
    /// and the wrapper shell stops the operator.
    _operator: Child,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();

/// The kubeconfig of the running control plane, or `None` when it could not start outside CI.
/// With `CI=true` a control plane that cannot start fails the test with the reason.
pub fn kubeconfig() -> Option<&'static Path> {
    match CLUSTER.get_or_init(start) {
        Ok(cluster) => Some(&cluster.kubeconfig),
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

fn start() -> Result<Cluster, String> {
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
    let kubeconfig = PathBuf::from(format!("{ROOT}/target/controlplane/kubeconfig"));
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
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd",
            "-l",
            "!none",
            "--all",
        ],
    )?;
    let log = std::fs::File::create(format!("{ROOT}/target/e2e-operator.log"))
        .map_err(|e| e.to_string())?;
    let operator = Command::new("sh")
        .args([
            "-c",
            r#""$0" run & op=$!; read -r _; kill -TERM "$op"; wait "$op""#,
            env!("CARGO_BIN_EXE_gatehouse"),
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "GATEHOUSE_LOG",
            std::env::var("GATEHOUSE_E2E_LOG").unwrap_or_else(|_| "info,gatehouse=debug".into()),
        )
        .stdin(Stdio::piped())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start the operator: {e}"))?;
    eprintln!("e2e: operator running, logs in target/e2e-operator.log");
    Ok(Cluster {
        kubeconfig,
        _operator: operator,
    })
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
