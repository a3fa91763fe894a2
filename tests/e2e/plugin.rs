//! `kubectl gatehouse`, the plugin binary, run as real users against the real API server: the
//! approval protocol by command instead of hand-typed annotations, with the admission policies
//! and the operator doing their part.

use std::path::Path;

use gatehouse::api::{
    AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement, SharingPolicy,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-gatehouse");
const READER: &str = "gatehouse-e2e-plugin-reader";

/// What one run of the plugin did.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            if self.ok { "0" } else { "non-zero" },
            self.stdout,
            self.stderr
        )
    }
}

/// Runs `kubectl-gatehouse ARGS --context USER` with the control plane's kubeconfig.
async fn gatehouse(kubeconfig: &Path, user: &str, args: &[&str]) -> Run {
    let output = tokio::process::Command::new(PLUGIN)
        .env("KUBECONFIG", kubeconfig)
        .args(args)
        .args(["--context", user])
        .output()
        .await
        .expect("the plugin binary runs");
    let run = Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    eprintln!("e2e: {user}$ kubectl gatehouse {}\n{run}", args.join(" "));
    run
}

/// Whether some line of `text` contains every one of `words`.
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|line| words.iter().all(|w| line.contains(w)))
}

/// Waits until the API server's authorizer sees `user` holding a right just granted: RBAC
/// changes reach it within moments, not at once.
async fn granted(kubeconfig: &Path, user: &str, verb: &str, resource: &str, ns: &str) {
    for _ in 0..100 {
        if support::can_i(kubeconfig, user, verb, resource, ns) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{user} still cannot {verb} {resource} in {ns} after 10s");
}

struct Setup {
    ns: String,
    kubeconfig: &'static Path,
    admin: Client,
    alice: Api<AccessRequest>,
}

/// A namespace with its own policy (manager, then data-owner approve `READER`), alice as
/// requester, bob as manager, carol as data owner, mallory with no rights at all.
async fn setup(kubeconfig: &'static Path, test: &str) -> Setup {
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique(test);
    support::namespace(&admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::allow_requests(&admin, &ns, "alice").await;
    support::allow_approval(&admin, &ns, "bob", "manager").await;
    support::allow_approval(&admin, &ns, "carol", "data-owner").await;
    // RoleBindings reach the authorizer in order: once carol's shows, all of them do.
    granted(
        kubeconfig,
        "carol",
        "patch",
        "accessrequests.gatehouse.dev",
        &ns,
    )
    .await;
    let reader = ClusterRole {
        metadata: ObjectMeta {
            name: Some(READER.into()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["configmaps".into()]),
            verbs: vec!["get".into(), "list".into()],
            ..Default::default()
        }]),
        ..Default::default()
    };
    match Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &reader)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("cannot create ClusterRole {READER}: {err}"),
    }
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": ns },
        "spec": {
            "roles": [{ "kind": "ClusterRole", "name": READER }],
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
            "maxDuration": "1h",
            "approvals": [{ "role": "manager" }, { "role": "data-owner" }]
        }
    }))
    .expect("valid AccessPolicy");
    Api::<AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    Setup {
        alice: Api::namespaced(support::client(kubeconfig, "alice").await, &ns),
        ns,
        kubeconfig,
        admin,
    }
}

impl Setup {
    /// Deletes what the test created (on success only: a failed test leaves it for debugging),
    /// so that a long-lived control plane does not pile up policies every operator must scan.
    async fn cleanup(self) {
        let params = kube::api::DeleteParams::default();
        let _ = Api::<AccessPolicy>::all(self.admin.clone())
            .delete(&self.ns, &params)
            .await;
        let _ = Api::<SharingPolicy>::all(self.admin.clone())
            .delete(&self.ns, &params)
            .await;
        let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(self.admin.clone())
            .delete(&self.ns, &params)
            .await;
    }

    /// `requester` files a request for `READER` in the namespace.
    async fn request(&self, as_user: &Api<AccessRequest>, requester: &str, name: &str) {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": { "name": name, "namespace": self.ns },
            "spec": {
                "requester": requester,
                "role": { "kind": "ClusterRole", "name": READER },
                "duration": "1h",
                "justification": "OPS-42 read the settlement config"
            }
        }))
        .expect("valid AccessRequest");
        as_user
            .create(&PostParams::default(), &request)
            .await
            .unwrap_or_else(|err| panic!("{requester} cannot create {name}: {err}"));
    }

    async fn run(&self, user: &str, args: &[&str]) -> Run {
        let mut all = args.to_vec();
        all.extend(["-n", &self.ns]);
        gatehouse(self.kubeconfig, user, &all).await
    }

    async fn annotations(&self, name: &str) -> std::collections::BTreeMap<String, String> {
        Api::<AccessRequest>::namespaced(self.admin.clone(), &self.ns)
            .get(name)
            .await
            .expect("request exists")
            .metadata
            .annotations
            .unwrap_or_default()
    }

    async fn wait(&self, name: &str, what: &str, done: impl Fn(&AccessRequest) -> bool) {
        support::wait_until(&self.alice, name, what, done).await;
    }
}

fn phase(request: &AccessRequest) -> Option<AccessPhase> {
    request.status.as_ref().and_then(|s| s.phase)
}

fn waiting_for(request: &AccessRequest) -> Option<String> {
    request.status.as_ref().and_then(|s| s.waiting_for.clone())
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approvers_decide_see_what_waits_and_audit_with_the_plugin() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "plugin").await;
    s.request(&s.alice, "alice", "alice-read").await;
    s.wait("alice-read", "Pending for manager,data-owner", |ar| {
        waiting_for(ar).as_deref() == Some("manager,data-owner")
    })
    .await;

    // bob sees the request waiting for him, then approves as manager.
    let bob_pending = s.run("bob", &["pending"]).await;
    assert!(bob_pending.ok, "{bob_pending}");
    assert!(
        has_line(
            &bob_pending.stdout,
            &[
                "AccessRequest",
                &s.ns,
                "alice-read",
                "alice",
                "manager",
                "manager,data-owner"
            ]
        ),
        "{bob_pending}"
    );
    // Under the table: what the request would grant, to whom, and where.
    assert!(
        has_line(
            &bob_pending.stdout,
            &["ACCESS REQUEST", "GRANTS", "SUBJECTS", "SCOPE"]
        ),
        "{bob_pending}"
    );
    assert!(
        bob_pending.stdout.lines().any(|line| {
            line.starts_with(&format!("{}/alice-read ", s.ns))
                && line.contains(&format!("ClusterRole/{READER}"))
                && line.contains("User alice")
                && line.ends_with(&format!("   {}", s.ns))
        }),
        "{bob_pending}"
    );
    let approve = s
        .run(
            "bob",
            &[
                "approve",
                "ar/alice-read",
                "--role",
                "manager",
                "--reason",
                "OPS-42 checked",
            ],
        )
        .await;
    assert!(approve.ok, "{approve}");
    assert_eq!(
        approve.stdout,
        "accessrequest.gatehouse.dev/alice-read approved as manager by bob (reason: OPS-42 checked)\n"
    );
    let annotations = s.annotations("alice-read").await;
    assert_eq!(
        annotations
            .get("approve.gatehouse.dev/manager")
            .map(String::as_str),
        Some("bob"),
        "the annotation carries bob's own username: {annotations:?}"
    );
    assert_eq!(
        annotations
            .get("reason.gatehouse.dev/manager")
            .map(String::as_str),
        Some("OPS-42 checked")
    );

    // Approving again changes nothing; a contradicting decision is refused before it is sent.
    let again = s
        .run("bob", &["approve", "ar/alice-read", "--role", "manager"])
        .await;
    assert!(again.ok, "{again}");
    assert!(again.stdout.contains("already approved"), "{again}");
    let contradict = s
        .run("bob", &["deny", "ar/alice-read", "--role", "manager"])
        .await;
    assert!(!contradict.ok, "{contradict}");
    assert!(
        contradict
            .stderr
            .contains("approved by bob; decisions are final"),
        "{contradict}"
    );

    // Now the request waits for carol only, and she sees it; bob no longer does.
    s.wait("alice-read", "waiting for data-owner", |ar| {
        waiting_for(ar).as_deref() == Some("data-owner")
    })
    .await;
    let carol_pending = s.run("carol", &["pending"]).await;
    assert!(carol_pending.ok, "{carol_pending}");
    let header: Vec<&str> = carol_pending
        .stdout
        .lines()
        .next()
        .unwrap_or_default()
        .split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        header,
        [
            "KIND",
            "NAMESPACE",
            "NAME",
            "REQUESTER",
            "ROLE",
            "WAITING FOR",
            "AGE"
        ],
        "{carol_pending}"
    );
    assert!(
        has_line(
            &carol_pending.stdout,
            &["AccessRequest", &s.ns, "alice-read", "alice", "data-owner"]
        ),
        "{carol_pending}"
    );
    let bob_done = s.run("bob", &["pending"]).await;
    assert!(bob_done.ok, "{bob_done}");
    assert!(
        !bob_done.stdout.contains("alice-read"),
        "bob decided already: {bob_done}"
    );
    assert!(bob_done.stderr.contains("Nothing waits"), "{bob_done}");
    let admin_all = gatehouse(kubeconfig, "admin", &["pending", "-A"]).await;
    assert!(admin_all.ok, "{admin_all}");
    assert!(
        has_line(&admin_all.stdout, &[&s.ns, "alice-read", "data-owner"]),
        "the cluster admin sees it across namespaces: {admin_all}"
    );

    // mallory holds no approver right: the plugin says so and changes nothing.
    let mallory = s
        .run(
            "mallory",
            &["approve", "ar/alice-read", "--role", "data-owner"],
        )
        .await;
    assert!(!mallory.ok, "{mallory}");
    assert!(
        mallory.stderr.starts_with(&format!(
            "error: mallory may not approve as \"data-owner\" in namespace \"{}\"",
            s.ns
        )),
        "{mallory}"
    );
    assert!(
        mallory.stderr.contains("gatehouse-approver-data-owner"),
        "{mallory}"
    );
    assert!(
        !s.annotations("alice-read")
            .await
            .contains_key("approve.gatehouse.dev/data-owner")
    );

    // carol approves; access is granted; the audit shows both decisions.
    let carol = s
        .run(
            "carol",
            &[
                "approve",
                "accessrequest/alice-read",
                "--role",
                "data-owner",
            ],
        )
        .await;
    assert!(carol.ok, "{carol}");
    s.wait("alice-read", "Active", |ar| {
        phase(ar) == Some(AccessPhase::Active)
    })
    .await;
    let audit = s.run("alice", &["audit", "ar/alice-read"]).await;
    assert!(audit.ok, "{audit}");
    let text = &audit.stdout;
    assert!(
        text.starts_with(&format!(
            "AccessRequest {}/alice-read, requested by alice, governed by policy {}\n",
            s.ns, s.ns
        )),
        "{audit}"
    );
    assert!(
        has_line(text, &["TIME", "ROLE", "USER", "DECISION", "REASON"]),
        "{audit}"
    );
    assert!(
        has_line(text, &["manager", "bob", "Approved", "OPS-42 checked"]),
        "{audit}"
    );
    assert!(
        has_line(text, &["data-owner", "carol", "Approved", "<none>"]),
        "{audit}"
    );
    assert!(has_line(text, &["Phase:", "Active"]), "{audit}");
    assert!(
        has_line(text, &["Grants:", &format!("ClusterRole/{READER}")]),
        "{audit}"
    );
    assert!(has_line(text, &["Subjects:", "User alice"]), "{audit}");
    assert!(has_line(text, &["Scope:", &s.ns]), "{audit}");
    assert!(has_line(text, &["Grant activated:", "Z"]), "{audit}");
    assert!(has_line(text, &["Grant expires:", "(in "]), "{audit}");
    assert!(
        has_line(text, &["TYPE", "STATUS", "REASON", "MESSAGE"]),
        "{audit}"
    );
    assert!(has_line(text, &["Ready", "True"]), "{audit}");

    // The same binary, found by kubectl as a plugin on the PATH.
    let bin_dir = Path::new(PLUGIN).parent().expect("binary directory");
    let path = std::env::join_paths(std::iter::once(bin_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .expect("PATH");
    let via_kubectl = tokio::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .env("PATH", path)
        .args([
            "gatehouse",
            "audit",
            "ar/alice-read",
            "-n",
            &s.ns,
            "--context",
            "alice",
        ])
        .output()
        .await
        .expect("kubectl runs");
    let stable = |text: &str| -> Vec<String> {
        // The expiry line says "(in 59m)" or "(in 60m)" depending on the second it runs.
        text.lines()
            .filter(|l| !l.starts_with("Grant expires:"))
            .map(str::to_string)
            .collect()
    };
    assert!(
        via_kubectl.status.success(),
        "kubectl gatehouse audit: {}",
        String::from_utf8_lossy(&via_kubectl.stderr)
    );
    assert_eq!(
        stable(&String::from_utf8_lossy(&via_kubectl.stdout)),
        stable(&audit.stdout),
        "kubectl runs the plugin with its arguments"
    );

    // alice revokes her own access.
    let revoke = s.run("alice", &["revoke", "ar/alice-read"]).await;
    assert!(revoke.ok, "{revoke}");
    assert_eq!(
        revoke.stdout,
        "accessrequest.gatehouse.dev/alice-read revoked by alice\n"
    );
    s.wait("alice-read", "Revoked", |ar| {
        phase(ar) == Some(AccessPhase::Revoked)
    })
    .await;
    let audit = s.run("alice", &["audit", "ar/alice-read"]).await;
    assert!(has_line(&audit.stdout, &["Phase:", "Revoked"]), "{audit}");
    assert!(
        has_line(&audit.stdout, &["Revoked by:", "alice"]),
        "{audit}"
    );

    // A decision on a closed request would count for nothing and stay forever: refused.
    let late = s
        .run("admin", &["approve", "ar/alice-read", "--role", "security"])
        .await;
    assert!(!late.ok, "{late}");
    assert!(
        late.stderr
            .contains("accessrequest.gatehouse.dev/alice-read is Revoked: decisions count only"),
        "{late}"
    );
    assert!(
        !s.annotations("alice-read")
            .await
            .contains_key("approve.gatehouse.dev/security")
    );
    s.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn admission_refusals_reach_the_user_verbatim() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "plugin-refused").await;
    // bob may file requests too, and may approve as manager: but never his own request.
    support::allow_requests(&s.admin, &s.ns, "bob").await;
    granted(
        kubeconfig,
        "bob",
        "create",
        "accessrequests.gatehouse.dev",
        &s.ns,
    )
    .await;
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &s.ns);
    s.request(&bob, "bob", "bob-read").await;
    let own = s
        .run("bob", &["approve", "ar/bob-read", "--role", "manager"])
        .await;
    assert!(!own.ok, "{own}");
    assert!(
        own.stderr.starts_with(
            "error: the API server refused to annotate accessrequest.gatehouse.dev/bob-read: "
        ),
        "{own}"
    );
    assert!(
        own.stderr.contains(
            "you may not approve your own request: you are its requester ('bob'); approve.gatehouse.dev/manager must come from another approver"
        ),
        "the admission policy's message, verbatim: {own}"
    );
    assert!(
        !s.annotations("bob-read")
            .await
            .contains_key("approve.gatehouse.dev/manager")
    );

    // carol may not revoke alice's request: she is neither its requester nor a revoker.
    s.request(&s.alice, "alice", "alice-read").await;
    let revoke = s.run("carol", &["revoke", "ar/alice-read"]).await;
    assert!(!revoke.ok, "{revoke}");
    assert!(
        revoke
            .stderr
            .contains("carol may not revoke accessrequest.gatehouse.dev/alice-read"),
        "{revoke}"
    );

    let missing = s.run("bob", &["audit", "ar/no-such-request"]).await;
    assert!(!missing.ok, "{missing}");
    assert!(
        missing
            .stderr
            .contains("accessrequest.gatehouse.dev/no-such-request not found in namespace"),
        "{missing}"
    );
    let usage = s
        .run("bob", &["approve", "alice-read", "--role", "manager"])
        .await;
    assert!(!usage.ok, "{usage}");
    assert!(usage.stderr.contains("write ar/NAME"), "{usage}");
    s.cleanup().await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_data_sharing_agreement_is_reviewed_with_the_plugin() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "plugin-dsa").await;
    let recipient = support::unique("plugin-recipient");
    support::namespace(&s.admin, &recipient, &[("gatehouse-e2e-recipient", &s.ns)]).await;
    let policy: SharingPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "SharingPolicy",
        "metadata": { "name": s.ns },
        "spec": {
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": s.ns } },
            "recipientNamespaceSelector": { "matchLabels": { "gatehouse-e2e-recipient": s.ns } },
            "reviews": { "always": ["data-owner"] },
            "maxRetention": "2160h"
        }
    }))
    .expect("valid SharingPolicy");
    Api::<SharingPolicy>::all(s.admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    // The source exists, so the agreement is reviewed (one naming a missing object fails at once,
    // with no stage anyone could deny for).
    let source: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "orders-schema" },
        "data": { "schema.sql": "create table orders (id bigint);" }
    }))
    .expect("valid ConfigMap");
    Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(s.admin.clone(), &s.ns)
        .create(&PostParams::default(), &source)
        .await
        .expect("source ConfigMap");
    let agreement: DataSharingAgreement = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "DataSharingAgreement",
        "metadata": { "name": "orders-out", "namespace": s.ns },
        "spec": {
            "requester": "alice",
            "data": [{ "configMap": "orders-schema", "keys": ["schema.sql"] }],
            "recipient": { "namespace": recipient },
            "purpose": "Monthly revenue reporting",
            "transfer": { "method": "Copy" },
            "retention": "720h",
            "policy": s.ns
        }
    }))
    .expect("valid DataSharingAgreement");
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &s.ns);
    alice
        .create(&PostParams::default(), &agreement)
        .await
        .expect("alice files the agreement");
    // A denial counts only for a stage, so admission waits for the operator to list them.
    support::wait_until(&alice, "orders-out", "its stages listed", |dsa| {
        dsa.status
            .as_ref()
            .is_some_and(|st| st.required_approvals.iter().any(|r| r == "data-owner"))
    })
    .await;

    let review = s
        .run(
            "carol",
            &[
                "deny",
                "dsa/orders-out",
                "--role",
                "data-owner",
                "--reason",
                "schema is confidential",
            ],
        )
        .await;
    assert!(review.ok, "{review}");
    assert_eq!(
        review.stdout,
        "datasharingagreement.gatehouse.dev/orders-out denied as data-owner by carol (reason: schema is confidential)\n"
    );
    let annotations = alice
        .get("orders-out")
        .await
        .expect("agreement")
        .metadata
        .annotations
        .unwrap_or_default();
    assert_eq!(
        annotations
            .get("deny.gatehouse.dev/data-owner")
            .map(String::as_str),
        Some("carol")
    );
    let audit = s.run("alice", &["audit", "dsa/orders-out"]).await;
    assert!(audit.ok, "{audit}");
    assert!(
        audit
            .stdout
            .starts_with(&format!("DataSharingAgreement {}/orders-out", s.ns)),
        "{audit}"
    );
    let _ = Api::<k8s_openapi::api::core::v1::Namespace>::all(s.admin.clone())
        .delete(&recipient, &Default::default())
        .await;
    s.cleanup().await;
}
