//! charts/gatehouse, the Helm chart: it installs what deploy/base installs. Lint and the values
//! schema, a server-side dry run of the rendered chart under Pod Security `restricted`, its leader
//! election rights asked of the real authorizer, and every copy it keeps of crds/, deploy/admission
//! and the operator's rules. helm itself is built from hack/helm (cached after the first run).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::api::PostParams;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::support;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/gatehouse");
/// deploy/base's namespace: rendered into it, the chart's objects compare with deploy/base's files.
const NAMESPACE: &str = "gatehouse-system";
const LEASE: &str = "leases.coordination.k8s.io/gatehouse-operator";

/// The helm binary of hack/helm/build.sh: minutes to build the first time, then cached.
fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        let output = Command::new("bash")
            .arg(format!("{ROOT}/hack/helm/build.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        assert!(
            output.status.success(),
            "hack/helm/build.sh failed; its output above says why"
        );
        PathBuf::from(text(&output.stdout).trim())
    })
}

/// Runs `command` with `input` on stdin.
fn run(command: &mut Command, input: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the command runs");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("the command finishes")
}

fn helm_run(args: &[&str]) -> Output {
    run(Command::new(helm()).args(args), "")
}

fn kubectl(kubeconfig: &Path, args: &[&str], input: &str) -> Output {
    run(
        Command::new("kubectl")
            .env("KUBECONFIG", kubeconfig)
            .args(["--context", "admin"])
            .args(args),
        input,
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The objects of a YAML stream; documents holding only comments are no objects.
fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| Value::deserialize(doc).expect("valid YAML"))
        .filter(|object| !object.is_null())
        .collect()
}

fn file_objects(path: &str) -> Vec<Value> {
    documents(&std::fs::read_to_string(format!("{ROOT}/{path}")).expect(path))
}

/// `helm template` of the chart as release `gatehouse` in `namespace`; must succeed.
fn render(namespace: &str, args: &[&str]) -> (String, Vec<Value>) {
    let mut all = vec!["template", "gatehouse", CHART, "--namespace", namespace];
    all.extend_from_slice(args);
    let output = helm_run(&all);
    assert!(
        output.status.success(),
        "helm template {args:?} failed: {}",
        text(&output.stderr)
    );
    let yaml = text(&output.stdout);
    let objects = documents(&yaml);
    (yaml, objects)
}

fn rendered(args: &[&str]) -> Vec<Value> {
    render(NAMESPACE, args).1
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} is not rendered"))
}

fn container(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]["containers"][0]
}

/// Helm's failure for `args`, which must fail, with stdout and stderr together.
fn refused(args: &[&str]) -> String {
    let output = helm_run(args);
    assert!(!output.status.success(), "helm {args:?} succeeded");
    text(&output.stdout) + &text(&output.stderr)
}

#[test]
fn the_chart_lints_and_its_schema_refuses_bad_values() {
    let lint = helm_run(&["lint", "--strict", CHART]);
    assert!(
        lint.status.success(),
        "helm lint --strict failed:\n{}{}",
        text(&lint.stdout),
        text(&lint.stderr)
    );
    for (values, expected) in [
        (
            ["--set", "replicas=-1"],
            "at '/replicas': minimum: got -1, want 1",
        ),
        (
            ["--set", "replica=3"],
            "additional properties 'replica' not allowed",
        ),
        (
            ["--set", "logFormat=xml"],
            "at '/logFormat': value must be one of",
        ),
        (
            ["--set", "image.pullPolicy=Sometimes"],
            "at '/image/pullPolicy'",
        ),
        (
            ["--set-json", "grantableRoles=[]"],
            "at '/grantableRoles': minItems",
        ),
        (
            ["--set-json", r#"grantableRoles=["*"]"#],
            "at '/grantableRoles/0'",
        ),
        (
            ["--set-json", r#"grantableNamespacedRoles=["a/b"]"#],
            "at '/grantableNamespacedRoles/0'",
        ),
        (
            ["--set", "metrics.serviceMonitor.interval=soon"],
            "at '/metrics/serviceMonitor/interval'",
        ),
        (
            ["--set", "metrics.serviceMonitor.enable=true"],
            "additional properties 'enable' not allowed",
        ),
    ] {
        let message = refused(&["lint", "--strict", CHART, values[0], values[1]]);
        assert!(
            message.contains(expected),
            "helm lint {values:?}: no {expected:?} in:\n{message}"
        );
    }
}

/// An empty bind list would let the operator bind every role: the template refuses it even when
/// the schema is skipped.
#[test]
fn the_chart_refuses_an_empty_bind_list_without_its_schema() {
    let message = refused(&[
        "template",
        "gatehouse",
        CHART,
        "--skip-schema-validation",
        "--set-json",
        "grantableRoles=[]",
    ]);
    assert!(
        message.contains("grantableRoles must name at least one ClusterRole"),
        "{message}"
    );
}

#[test]
fn the_chart_requires_kubernetes_1_33() {
    let message = refused(&["template", "gatehouse", CHART, "--kube-version", "1.32.0"]);
    assert!(
        message.contains("requires kubeVersion: >= 1.33.0"),
        "{message}"
    );
    render(NAMESPACE, &["--kube-version", "1.33.0"]);
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_rendered_chart_passes_a_server_side_dry_run_under_restricted() {
    let kubeconfig = support::control_plane();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique("helm");
    support::namespace(
        &admin,
        &ns,
        &[
            ("pod-security.kubernetes.io/enforce", "restricted"),
            ("pod-security.kubernetes.io/warn", "restricted"),
        ],
    )
    .await;
    let (yaml, objects) = render(&ns, &["--include-crds"]);
    let output = kubectl(kubeconfig, &["apply", "--dry-run=server", "-f", "-"], &yaml);
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert!(
        output.status.success(),
        "kubectl apply --dry-run=server of the chart failed:\n{stderr}\n{stdout}"
    );
    assert!(
        !stderr.contains("PodSecurity"),
        "the Pod template would violate restricted: {stderr}"
    );
    // Every object the chart renders was accepted, none skipped.
    for o in &objects {
        let group = o["apiVersion"]
            .as_str()
            .and_then(|v| v.split_once('/'))
            .map(|(group, _)| format!(".{group}"))
            .unwrap_or_default();
        let kind = o["kind"].as_str().expect("kind").to_lowercase();
        let applied = format!(
            "{kind}{group}/{} ",
            o["metadata"]["name"].as_str().expect("name")
        );
        assert!(stdout.contains(&applied), "no {applied}in:\n{stdout}");
    }
    eprintln!(
        "e2e: helm template | kubectl apply --dry-run=server: {} objects ok",
        objects.len()
    );

    // Pod Security enforces on Pods: the Deployment's Pod is admitted, the same one allowed to
    // escalate is refused (so the namespace does enforce).
    let template = &object(&objects, "Deployment", "gatehouse")["spec"]["template"];
    let pod = |template: &Value| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": "gatehouse-helm", "namespace": ns,
                          "labels": template["metadata"]["labels"] },
            "spec": template["spec"],
        }))
        .expect("a Pod")
    };
    let pods = Api::<Pod>::namespaced(admin.clone(), &ns);
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    pods.create(&dry_run, &pod(template))
        .await
        .expect("the chart's Pod is admitted under enforce=restricted");
    let mut weakened = template.clone();
    weakened["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = json!(true);
    let (code, message) = support::rejection(pods.create(&dry_run, &pod(&weakened)).await);
    assert_eq!(code, 403, "{message}");
}

/// The leader election Role, installed for real in a namespace of its own: the operator's
/// ServiceAccount may create the Lease and get and patch (server-side apply) exactly
/// `gatehouse-operator`, nothing more.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_leader_election_role_allows_exactly_the_operators_lease() {
    let kubeconfig = support::control_plane();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique("helm-lease");
    support::namespace(&admin, &ns, &[]).await;
    let (_, objects) = render(&ns, &[]);
    let namespaced: Vec<Value> = ["ServiceAccount", "Role", "RoleBinding"]
        .iter()
        .flat_map(|kind| objects.iter().filter(move |o| o["kind"] == *kind))
        .cloned()
        .collect();
    assert_eq!(namespaced.len(), 3, "{namespaced:#?}");
    let list = json!({ "apiVersion": "v1", "kind": "List", "items": namespaced });
    let output = kubectl(kubeconfig, &["apply", "-f", "-"], &list.to_string());
    assert!(output.status.success(), "{}", text(&output.stderr));

    let operator = format!("system:serviceaccount:{ns}:gatehouse");
    let can = |verb: &str, resource: &str, namespace: &str| {
        support::can_i(kubeconfig, &operator, verb, resource, namespace)
    };
    let mut wrong = Vec::new();
    for verb in ["get", "patch"] {
        if !can(verb, LEASE, &ns) {
            wrong.push(format!("may not {verb} {LEASE}"));
        }
    }
    if !can("create", "leases.coordination.k8s.io", &ns) {
        wrong.push("may not create leases".into());
    }
    for (verb, resource, namespace) in [
        ("update", LEASE, ns.as_str()),
        ("delete", LEASE, &ns),
        ("list", "leases.coordination.k8s.io", &ns),
        ("patch", "leases.coordination.k8s.io/another", &ns),
        ("get", LEASE, "default"),
        ("create", "leases.coordination.k8s.io", "default"),
    ] {
        if can(verb, resource, namespace) {
            wrong.push(format!("may {verb} {resource} in {namespace}"));
        }
    }
    assert!(wrong.is_empty(), "{operator}: {wrong:#?}");
}

#[test]
fn the_service_monitor_is_rendered_only_when_enabled() {
    let objects = rendered(&[]);
    assert!(
        !objects.iter().any(|o| o["kind"] == "ServiceMonitor"),
        "a ServiceMonitor by default"
    );

    let objects = rendered(&[
        "--set",
        "metrics.serviceMonitor.enabled=true",
        "--set",
        "metrics.serviceMonitor.interval=1m",
        "--set",
        "metrics.serviceMonitor.labels.release=prometheus",
    ]);
    let monitor = object(&objects, "ServiceMonitor", "gatehouse");
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["namespace"], NAMESPACE);
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(
        monitor["spec"]["endpoints"],
        json!([{ "port": "metrics", "path": "/metrics", "interval": "1m" }])
    );
    // The monitor finds the Service, the Service the operator's Pods and their metrics port.
    let service = object(&objects, "Service", "gatehouse-metrics");
    let selector = &service["spec"]["selector"];
    assert_eq!(&monitor["spec"]["selector"]["matchLabels"], selector);
    assert_eq!(
        service["spec"]["ports"],
        json!([{ "name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP" }])
    );
    let deployment = object(&objects, "Deployment", "gatehouse");
    let pod_labels = &deployment["spec"]["template"]["metadata"]["labels"];
    for (key, value) in selector.as_object().expect("selector") {
        assert_eq!(&pod_labels[key], value, "the Service selects {key}");
    }
    assert_eq!(
        container(deployment)["ports"],
        json!([{ "name": "metrics", "containerPort": 8080, "protocol": "TCP" }])
    );
}

#[test]
fn the_chart_rbac_equals_deploy_base() {
    let objects = rendered(&[]);
    for (file, kind, name) in [
        ("operator-rbac.yaml", "ClusterRole", "gatehouse-operator"),
        ("leader-election.yaml", "Role", "gatehouse-leader-election"),
    ] {
        let base = file_objects(&format!("deploy/base/{file}"));
        assert_eq!(
            object(&objects, kind, name)["rules"],
            object(&base, kind, name)["rules"],
            "the chart's {kind} {name} must have exactly the rules of deploy/base/{file}"
        );
    }
    for (file, kind, name) in [
        (
            "operator-rbac.yaml",
            "ClusterRoleBinding",
            "gatehouse-operator",
        ),
        (
            "operator-bind.yaml",
            "ClusterRoleBinding",
            "gatehouse-operator-bind",
        ),
        (
            "leader-election.yaml",
            "RoleBinding",
            "gatehouse-leader-election",
        ),
    ] {
        let base = file_objects(&format!("deploy/base/{file}"));
        let (chart, base) = (object(&objects, kind, name), object(&base, kind, name));
        assert_eq!(chart["roleRef"], base["roleRef"], "{kind} {name}");
        assert_eq!(chart["subjects"], base["subjects"], "{kind} {name}");
    }
}

/// What may be granted is the list in the values and nothing else: never a wildcard, never
/// escalate or impersonate, bind only in gatehouse-operator-bind and only by name.
#[test]
fn grantable_roles_are_the_only_names_the_operator_may_bind() {
    let defaults = rendered(&[]);
    assert_eq!(
        object(&defaults, "ClusterRole", "gatehouse-operator-bind")["rules"],
        object(
            &file_objects("deploy/base/operator-bind.yaml"),
            "ClusterRole",
            "gatehouse-operator-bind"
        )["rules"],
        "by default the chart may bind what deploy/base may"
    );

    let objects = rendered(&[
        "--set-json",
        r#"grantableRoles=["payments-initiator","payments-approver"]"#,
        "--set-json",
        r#"grantableNamespacedRoles=["ledger-operator"]"#,
    ]);
    let bind = |resource: &str, names: &[&str]| {
        json!({ "apiGroups": ["rbac.authorization.k8s.io"], "resources": [resource],
                "verbs": ["bind"], "resourceNames": names })
    };
    assert_eq!(
        object(&objects, "ClusterRole", "gatehouse-operator-bind")["rules"],
        json!([
            bind("clusterroles", &["payments-initiator", "payments-approver"]),
            bind("roles", &["ledger-operator"]),
        ])
    );

    for role in objects
        .iter()
        .filter(|o| o["kind"] == "ClusterRole" || o["kind"] == "Role")
    {
        let name = role["metadata"]["name"].as_str().expect("name");
        for rule in role["rules"].as_array().expect("rules") {
            let list = |field: &str| -> Vec<&str> {
                rule[field]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect()
            };
            for field in ["apiGroups", "resources", "verbs", "resourceNames"] {
                assert!(
                    !list(field).iter().any(|v| v.contains('*')),
                    "{name} has a wildcard in {field}: {rule}"
                );
            }
            let verbs = list("verbs");
            assert!(
                !verbs
                    .iter()
                    .any(|v| ["escalate", "impersonate"].contains(v)),
                "{name}: {rule}"
            );
            if verbs.contains(&"bind") {
                assert_eq!(name, "gatehouse-operator-bind", "{rule}");
                assert!(!list("resourceNames").is_empty(), "{name}: {rule}");
            }
        }
    }
}

#[test]
fn the_chart_keeps_exact_copies_of_the_crds_and_admission_policies() {
    let read = |path: &str| std::fs::read(format!("{ROOT}/{path}")).expect(path);
    assert!(
        read("charts/gatehouse/crds/gatehouse.yaml") == read("crds/gatehouse.yaml"),
        "charts/gatehouse/crds/gatehouse.yaml differs from crds/gatehouse.yaml: run `make crds`"
    );

    let kustomization = file_objects("deploy/admission/kustomization.yaml");
    let mut shipped: Vec<&str> = kustomization[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    shipped.sort_unstable();
    let mut copied: Vec<String> = std::fs::read_dir(format!("{CHART}/files/admission"))
        .expect("files/admission")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    copied.sort_unstable();
    assert_eq!(
        copied, shipped,
        "charts/gatehouse/files/admission must hold exactly the resources of deploy/admission"
    );
    let objects = rendered(&[]);
    for file in shipped {
        assert!(
            read(&format!("charts/gatehouse/files/admission/{file}"))
                == read(&format!("deploy/admission/{file}")),
            "charts/gatehouse/files/admission/{file} differs: \
             `cp deploy/admission/{file} charts/gatehouse/files/admission/`"
        );
        // ... and the chart renders them untouched.
        for policy in file_objects(&format!("deploy/admission/{file}")) {
            assert!(objects.contains(&policy), "not rendered as is: {policy}");
        }
    }

    // The finalizer policy: rendered as is where the cluster serves MutatingAdmissionPolicy v1,
    // and not at all where it does not (the operator adds its finalizer itself there).
    assert!(
        read("charts/gatehouse/files/finalizers.yaml") == read("deploy/finalizers/finalizers.yaml"),
        "charts/gatehouse/files/finalizers.yaml differs: \
         `cp deploy/finalizers/finalizers.yaml charts/gatehouse/files/`"
    );
    let finalizers = file_objects("deploy/finalizers/finalizers.yaml");
    assert!(
        !objects
            .iter()
            .any(|o| o["kind"] == "MutatingAdmissionPolicy"),
        "rendered for a cluster without MutatingAdmissionPolicy v1"
    );
    let served = rendered(&[
        "--api-versions",
        "admissionregistration.k8s.io/v1/MutatingAdmissionPolicy",
    ]);
    for policy in &finalizers {
        assert!(served.contains(policy), "not rendered as is: {policy}");
    }
}

/// Every object of deploy/base but the Namespace (`helm install --create-namespace`), with the
/// same identity, image and restricted security context.
#[test]
fn the_chart_installs_what_deploy_base_installs() {
    let chart: Value = serde_yaml::from_str(
        &std::fs::read_to_string(format!("{CHART}/Chart.yaml")).expect("Chart.yaml"),
    )
    .expect("Chart.yaml");
    assert_eq!(chart["appVersion"], env!("CARGO_PKG_VERSION"));

    let objects = rendered(&[]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(format!("{ROOT}/deploy/base"))
        .expect("deploy/base")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        // The CRDs are compared byte for byte above; the chart installs into the release
        // namespace.
        if ["kustomization.yaml", "crds.yaml", "namespace.yaml"].contains(&name.as_str()) {
            continue;
        }
        for base in file_objects(&format!("deploy/base/{name}")) {
            let found = objects.iter().any(|o| {
                o["kind"] == base["kind"]
                    && o["metadata"]["name"] == base["metadata"]["name"]
                    && o["metadata"]["namespace"] == base["metadata"]["namespace"]
            });
            assert!(
                found,
                "deploy/base/{name}: {} {} is not in the chart",
                base["kind"], base["metadata"]["name"]
            );
        }
    }

    let base = file_objects("deploy/base/deployment.yaml");
    let (base, ours) = (
        object(&base, "Deployment", "gatehouse"),
        object(&objects, "Deployment", "gatehouse"),
    );
    for field in ["replicas", "strategy"] {
        assert_eq!(
            ours["spec"][field], base["spec"][field],
            "Deployment {field}"
        );
    }
    let (base_pod, pod) = (
        &base["spec"]["template"]["spec"],
        &ours["spec"]["template"]["spec"],
    );
    for field in [
        "serviceAccountName",
        "automountServiceAccountToken",
        "terminationGracePeriodSeconds",
        "topologySpreadConstraints",
        "securityContext",
        "nodeSelector",
    ] {
        assert_eq!(pod[field], base_pod[field], "Pod {field}");
    }
    for field in [
        "image",
        "imagePullPolicy",
        "ports",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
    ] {
        assert_eq!(
            container(ours)[field],
            container(base)[field],
            "container {field}"
        );
    }
    let env = container(ours)["env"].as_array().expect("env");
    for var in container(base)["env"].as_array().expect("env") {
        assert!(
            env.contains(var),
            "deploy/base sets {var}, the chart does not"
        );
    }
}

/// The values reach the Deployment, and the interfaces the operator serves are wired up.
#[test]
fn the_values_configure_the_deployment() {
    let objects = rendered(&[]);
    let deployment = object(&objects, "Deployment", "gatehouse");
    assert_eq!(deployment["spec"]["replicas"], 2, "a leader and a standby");
    assert_eq!(deployment["spec"]["strategy"]["type"], "RollingUpdate");
    let c = container(deployment);
    assert_eq!(
        c["args"],
        json!(["run", "--metrics-address", "0.0.0.0:8080"])
    );
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(
            c[probe]["httpGet"],
            json!({ "path": path, "port": "metrics" })
        );
    }
    let env = c["env"].as_array().expect("env");
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = json!({ "name": name, "valueFrom": { "fieldRef": { "fieldPath": field } } });
        assert!(env.contains(&var), "no {var} in {env:?}");
    }

    let objects = rendered(&[
        "--set",
        "replicas=3",
        "--set",
        "image.repository=registry.example.com/platform/gatehouse",
        "--set-string",
        "image.tag=0.2.0",
        "--set",
        "image.pullPolicy=Always",
        "--set",
        "logLevel=debug\\,kube=info",
        "--set",
        "logFormat=text",
        "--set",
        "resources.limits.memory=512Mi",
    ]);
    let deployment = object(&objects, "Deployment", "gatehouse");
    assert_eq!(deployment["spec"]["replicas"], 3);
    let c = container(deployment);
    assert_eq!(c["image"], "registry.example.com/platform/gatehouse:0.2.0");
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(c["resources"]["limits"]["memory"], "512Mi");
    let env = c["env"].as_array().expect("env");
    for (name, value) in [
        ("GATEHOUSE_LOG", "debug,kube=info"),
        ("GATEHOUSE_LOG_FORMAT", "text"),
    ] {
        let var = json!({ "name": name, "value": value });
        assert!(env.contains(&var), "no {var} in {env:?}");
    }
}

/// Policy gatehouse-status names the operator's username in its variable `operator`; the chart
/// renders it with the release's ServiceAccount (the one its Deployment runs as), and every other
/// field exactly as deploy/admission/status.yaml ships it (the operator compares them).
#[test]
fn the_status_policy_names_the_releases_service_account() {
    const SHIPPED: &str = "'system:serviceaccount:gatehouse-system:gatehouse'";
    let shipped = file_objects("deploy/admission/status.yaml");
    let policy = object(&shipped, "ValidatingAdmissionPolicy", "gatehouse-status");
    assert_eq!(
        policy["spec"]["variables"],
        json!([{ "name": "operator", "expression": SHIPPED }]),
        "deploy/admission/status.yaml names deploy/base's ServiceAccount"
    );
    for namespace in [NAMESPACE, "platform-gatehouse"] {
        let (_, objects) = render(namespace, &[]);
        let account = object(&objects, "ServiceAccount", "gatehouse");
        assert_eq!(account["metadata"]["namespace"], namespace);
        let deployment = object(&objects, "Deployment", "gatehouse");
        assert_eq!(
            deployment["spec"]["template"]["spec"]["serviceAccountName"],
            account["metadata"]["name"]
        );
        let username = format!(
            "'system:serviceaccount:{namespace}:{}'",
            account["metadata"]["name"].as_str().expect("name")
        );
        let mut expected = policy.clone();
        expected["spec"]["variables"][0]["expression"] = json!(username);
        let rendered = object(&objects, "ValidatingAdmissionPolicy", "gatehouse-status");
        assert_eq!(
            rendered, &expected,
            "release in {namespace}: only the operator's username differs from the shipped policy"
        );
        assert_eq!(
            object(
                &objects,
                "ValidatingAdmissionPolicyBinding",
                "gatehouse-status"
            ),
            object(
                &shipped,
                "ValidatingAdmissionPolicyBinding",
                "gatehouse-status"
            )
        );
        let policies = objects
            .iter()
            .filter(|o| o["metadata"]["name"] == "gatehouse-status")
            .count();
        assert_eq!(policies, 2, "one policy and one binding, rendered once");
    }
}
