//! Stages the requester's manager decides (`approver: RequesterManager`, SharingPolicy
//! `reviews.requesterManager`), as real token users: the API server admits their decisions only
//! from the manager the org chart (OrgChart gatehouse) names, the operator counts them
//! only from that manager, and `status.approvers` / `kubectl gatehouse approvers` tell requesters
//! whom to ask. Each test uses its own requester, so the org chart entries of parallel tests never
//! meet.

use gatehouse::api::conditions::{self, stage_condition};
use gatehouse::api::{
    AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement, ORG_CHART, OrgChart,
    SharingPhase,
};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::decisions::{accepted, as_user, refused};
use crate::support;

const PLUGIN: &str = env!("CARGO_BIN_EXE_kubectl-gatehouse");
/// Granted by these tests; listed in deploy/overlays/e2e.
const READER: &str = "gatehouse-e2e-manager-reader";

/// A namespace where `requester` files requests under an AccessPolicy (named like it) whose
/// `approvals` are `stages`.
async fn request_namespace(
    admin: &kube::Client,
    test: &str,
    requester: &str,
    stages: Value,
) -> String {
    let ns = support::unique(test);
    support::namespace(admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::allow_requests(admin, &ns, requester).await;
    support::cluster_role(admin, READER, "configmaps").await;
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy", "metadata": { "name": ns },
        "spec": { "roles": [{ "kind": "ClusterRole", "name": READER }],
                  "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
                  "maxDuration": "1h", "approvals": stages }
    }))
    .expect("valid AccessPolicy");
    Api::<AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    ns
}

/// `requester` files request `name` in `ns` for [`READER`], and the operator lists its stages.
async fn file(
    requests: &Api<AccessRequest>,
    ns: &str,
    name: &str,
    requester: &str,
) -> AccessRequest {
    let request: AccessRequest = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": requester, "role": { "kind": "ClusterRole", "name": READER },
                  "duration": "30m", "justification": "MGR-13 read the settings" }
    }))
    .expect("valid request");
    requests
        .create(&PostParams::default(), &request)
        .await
        .unwrap_or_else(|err| panic!("{name} cannot be filed: {err}"));
    support::wait_for_stages(requests, name).await
}

fn status_of<K: serde::Serialize>(object: &K) -> Value {
    serde_json::to_value(object).expect("serializable")["status"].clone()
}

/// Runs `kubectl gatehouse ARGS` as `user`; returns stdout, panicking when it fails.
async fn plugin(user: &str, args: &[&str]) -> String {
    let output = tokio::process::Command::new(PLUGIN)
        .env("KUBECONFIG", support::kubeconfig())
        .args(args)
        .args(["--context", user])
        .output()
        .await
        .expect("the plugin binary runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!(
        "e2e: {user}$ kubectl gatehouse {}\n{stdout}{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "kubectl gatehouse {args:?} failed");
    stdout
}

fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines()
        .any(|line| words.iter().all(|w| line.contains(w)))
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn only_the_requesters_manager_decides_a_manager_stage() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    support::org_chart(&admin, &[("dave", Some("erin"))]).await;
    let ns = request_namespace(
        &admin,
        "manager",
        "dave",
        json!([{ "role": "manager", "approver": "RequesterManager" }, { "role": "data-owner" }]),
    )
    .await;
    // mallory holds the RBAC right for role manager, which grants nothing on a manager stage;
    // erin, dave's manager, holds no approver right at all, only what annotating takes.
    support::allow_approval(&admin, &ns, "mallory", "manager").await;
    support::allow_approval(&admin, &ns, "erin", "unrelated").await;
    support::allow_approval(&admin, &ns, "carol", "data-owner").await;
    let dave = as_user::<AccessRequest>(kubeconfig, "dave", &ns).await;
    file(&dave, &ns, "dave-read", "dave").await;

    let listed = support::wait_until(&dave, "dave-read", "its approvers listed", |r| {
        let status = status_of(r);
        status["managerApprovals"] == json!(["manager"])
            && status["approvers"][0]["manager"] == "erin"
            && status["approvers"][1]["users"] == json!(["carol"])
    })
    .await;
    eprintln!(
        "e2e: status.approvers of dave-read: {}",
        status_of(&listed)["approvers"]
    );

    // Whoever else decides a manager stage is refused, for every kind of decision.
    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    for decision in [
        json!({ "approve.gatehouse.dev/manager": "mallory" }),
        json!({ "deny.gatehouse.dev/manager": "mallory" }),
        json!({ "changes.gatehouse.dev/manager": "mallory",
                "reason.gatehouse.dev/manager": "ask for less" }),
        json!({ "reason.gatehouse.dev/manager": "I would approve" }),
    ] {
        refused(
            &mallory,
            "dave-read",
            decision,
            "mallory",
            403,
            "only the requester's manager 'erin' decides it (OrgChart gatehouse, spec.managers key 'dave'); you are 'mallory'",
        )
        .await;
    }
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    refused(
        &carol,
        "dave-read",
        json!({ "approve.gatehouse.dev/manager": "carol" }),
        "carol",
        403,
        "only the requester's manager 'erin' decides it",
    )
    .await;

    let table = plugin("dave", &["approvers", "ar/dave-read", "-n", &ns]).await;
    assert!(has_line(&table, &["manager", "Manager", "erin"]), "{table}");
    assert!(
        has_line(&table, &["data-owner", "User", "carol"]),
        "{table}"
    );
    assert!(!table.contains("mallory"), "{table}");

    // erin holds no approver right, yet the plugin shows her what waits for her as dave's
    // manager and approves through the API server's check of the org chart.
    let pending = plugin("erin", &["pending", "-n", &ns]).await;
    assert!(
        has_line(&pending, &["dave-read", "dave", "manager"]),
        "{pending}"
    );
    let approved = plugin(
        "erin",
        &["approve", "ar/dave-read", "--role", "manager", "-n", &ns],
    )
    .await;
    assert!(
        approved.contains("approved as manager by erin"),
        "{approved}"
    );
    let approved = support::wait_until(&dave, "dave-read", "the manager stage passed", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.approvals
                .iter()
                .any(|a| a.role == "manager" && a.user == "erin")
                && s.waiting_for.as_deref() == Some("data-owner")
        })
    })
    .await;
    let status = approved.status.expect("status");
    assert_eq!(status.approvers.len(), 1, "only data-owner still waits");
    accepted(
        &carol,
        "dave-read",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    let active = support::wait_until(&dave, "dave-read", "Active", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    assert!(active.status.expect("status").approvers.is_empty());
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn without_an_org_chart_entry_nobody_decides_until_hr_adds_it() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    support::org_chart(&admin, &[("frank", None)]).await;
    let ns = request_namespace(
        &admin,
        "no-manager",
        "frank",
        json!([{ "role": "manager", "approver": "RequesterManager" }]),
    )
    .await;
    support::allow_approval(&admin, &ns, "bob", "manager").await;
    let frank = as_user::<AccessRequest>(kubeconfig, "frank", &ns).await;
    file(&frank, &ns, "frank-read", "frank").await;
    let waiting = support::wait_until(&frank, "frank-read", "condition NoManager", |r| {
        r.status.as_ref().is_some_and(|s| {
            conditions::find(&s.conditions, &stage_condition("manager"))
                .is_some_and(|c| c.reason == "NoManager")
        })
    })
    .await;
    let status = waiting.status.expect("status");
    let condition =
        conditions::find(&status.conditions, &stage_condition("manager")).expect("condition");
    eprintln!("e2e: {}: {}", condition.type_, condition.message);
    assert!(
        condition
            .message
            .contains("OrgChart gatehouse has no entry for the requester 'frank' in spec.managers")
            && condition.message.contains("add key 'frank'"),
        "{}",
        condition.message
    );
    assert_eq!(status.approvers[0].manager, None);

    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    refused(
        &bob,
        "frank-read",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
        403,
        "nobody can approve stage 'manager' yet: only the requester's manager decides it, and OrgChart gatehouse has no entry for the requester 'frank'; add key 'frank' to its spec.managers",
    )
    .await;
    let table = plugin("frank", &["approvers", "ar/frank-read", "-n", &ns]).await;
    assert!(
        table.contains("Nobody can decide manager: OrgChart gatehouse has no entry"),
        "{table}"
    );

    // HR adds the entry: the operator looks again at once, and bob may decide.
    support::org_chart(&admin, &[("frank", Some("bob"))]).await;
    support::wait_until(&frank, "frank-read", "the manager named", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.approvers.first().and_then(|a| a.manager.as_deref()) == Some("bob"))
    })
    .await;
    accepted(
        &bob,
        "frank-read",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
    support::wait_until(&frank, "frank-read", "Active", |r| {
        r.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_requester_the_org_chart_names_as_their_own_manager_still_never_decides() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    support::org_chart(&admin, &[("carol", Some("carol"))]).await;
    let ns = request_namespace(
        &admin,
        "self-manager",
        "carol",
        json!([{ "role": "manager", "approver": "RequesterManager" }]),
    )
    .await;
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    let filed = file(&carol, &ns, "carol-read", "carol").await;
    assert_eq!(
        filed.status.expect("status").approvers[0].manager,
        None,
        "the requester is never listed as whom to ask"
    );
    for (key, verb) in [
        ("approve.gatehouse.dev/manager", "approve"),
        ("deny.gatehouse.dev/manager", "deny"),
        ("changes.gatehouse.dev/manager", "request changes on"),
    ] {
        refused(
            &carol,
            "carol-read",
            json!({ key: "carol" }),
            "carol",
            403,
            &format!("you may not {verb} your own request: you are its requester ('carol')"),
        )
        .await;
    }
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn only_the_requesters_manager_reviews_a_manager_role_of_an_agreement() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    support::org_chart(&admin, &[("mallory", Some("alice"))]).await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "manager-share",
        json!({ "reviews": { "always": ["manager", "data-owner"], "requesterManager": ["manager"] },
                "maxRetention": "1h" }),
    )
    .await;
    support::allow_requests(&admin, &ns, "mallory").await;
    support::allow_approval(&admin, &ns, "alice", "unrelated").await;
    support::allow_approval(&admin, &ns, "bob", "manager").await;
    support::source_secret(&admin, &ns, "orders-db", json!({ "password": "s3cret" })).await;
    // Who may review data-owner besides carol: a group and a ServiceAccount of the namespace
    // (both listed), and a ServiceAccount of the recipient namespace (never: it receives the data).
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "data-owners" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "gatehouse-approver-data-owner" },
        "subjects": [
            { "kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "orders-owners" },
            { "kind": "ServiceAccount", "name": "review-bot", "namespace": ns },
            { "kind": "ServiceAccount", "name": "reporting", "namespace": recipient }
        ]
    }))
    .expect("valid RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding data-owners");
    let mallory = as_user::<DataSharingAgreement>(kubeconfig, "mallory", &ns).await;
    let agreement: DataSharingAgreement = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": "orders-share", "namespace": ns },
        "spec": { "requester": "mallory", "policy": ns,
                  "data": [{ "secret": "orders-db", "keys": ["password"] }],
                  "recipient": { "namespace": recipient }, "purpose": "MGR-13 reporting",
                  "transfer": { "method": "Copy" }, "retention": "30m" }
    }))
    .expect("valid agreement");
    mallory
        .create(&PostParams::default(), &agreement)
        .await
        .expect("mallory files the agreement");
    support::wait_until(&mallory, "orders-share", "its reviewers listed", |a| {
        let status = status_of(a);
        status["managerApprovals"] == json!(["manager"])
            && status["approvers"][0]["manager"] == "alice"
            && status["approvers"][1]["users"] == json!(["carol"])
            && status["approvers"][1]["groups"] == json!(["orders-owners"])
            && status["approvers"][1]["serviceAccounts"] == json!([format!("{ns}/review-bot")])
    })
    .await;

    let bob = as_user::<DataSharingAgreement>(kubeconfig, "bob", &ns).await;
    refused(
        &bob,
        "orders-share",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
        403,
        "only the requester's manager 'alice' decides it",
    )
    .await;
    refused(
        &bob,
        "orders-share",
        json!({ "deny.gatehouse.dev/manager": "bob" }),
        "bob",
        403,
        "you may not deny stage 'manager'",
    )
    .await;
    let table = plugin("mallory", &["approvers", "dsa/orders-share", "-n", &ns]).await;
    assert!(
        has_line(&table, &["manager", "Manager", "alice"]),
        "{table}"
    );

    let alice = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    accepted(
        &alice,
        "orders-share",
        json!({ "approve.gatehouse.dev/manager": "alice" }),
        "alice",
    )
    .await;
    let carol = as_user::<DataSharingAgreement>(kubeconfig, "carol", &ns).await;
    accepted(
        &carol,
        "orders-share",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    let active = support::wait_until(&mallory, "orders-share", "Active", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let status = active.status.expect("status");
    assert!(
        status
            .approvals
            .iter()
            .any(|a| a.role == "manager" && a.user == "alice"),
        "{:?}",
        status.approvals
    );
}

/// The operator checks again: an approval admitted while the stage was an RBAC stage stops
/// counting once the policy makes it a manager stage, and the org chart's manager is waited for.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_operator_counts_a_manager_stage_only_from_the_manager() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    support::org_chart(&admin, &[("bob", Some("erin"))]).await;
    let ns = request_namespace(
        &admin,
        "manager-recheck",
        "bob",
        json!([{ "role": "manager" }, { "role": "data-owner" }]),
    )
    .await;
    support::allow_approval(&admin, &ns, "mallory", "manager").await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    file(&bob, &ns, "bob-read", "bob").await;
    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    accepted(
        &mallory,
        "bob-read",
        json!({ "approve.gatehouse.dev/manager": "mallory" }),
        "mallory",
    )
    .await;
    support::wait_until(&bob, "bob-read", "the RBAC stage passed", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.waiting_for.as_deref() == Some("data-owner"))
    })
    .await;

    let policies = Api::<AccessPolicy>::all(admin.clone());
    policies
        .patch(
            &ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({ "spec": { "approvals": [
                { "role": "manager", "approver": "RequesterManager" }, { "role": "data-owner" }
            ] } })),
        )
        .await
        .expect("policy changed");
    let rechecked = support::wait_until(&bob, "bob-read", "mallory's approval dropped", |r| {
        r.status.as_ref().is_some_and(|s| {
            s.manager_approvals == ["manager"]
                && s.waiting_for.as_deref() == Some("manager,data-owner")
        })
    })
    .await;
    let status = rechecked.status.expect("status");
    assert!(
        status.ignored_annotations.iter().any(|i| i.contains(
            "approve.gatehouse.dev/manager by \"mallory\" does not count: only the requester's manager \"erin\" (org chart) decides stage manager"
        )),
        "{:?}",
        status.ignored_annotations
    );
    assert_eq!(status.approvers[0].manager.as_deref(), Some("erin"));
}

/// The org chart decides who approves every manager stage, so its schema takes usernames only and
/// there is one of it.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_org_chart_takes_only_usernames_and_is_one_object() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let charts = Api::<OrgChart>::all(admin.clone());
    for (managers, why) in [
        (
            json!({ "": "bob" }),
            "each key of spec.managers is a username",
        ),
        (
            json!({ " alice": "bob" }),
            "each key of spec.managers is a username",
        ),
        (json!({ "alice": "" }), "spec.managers.alice"),
        (json!({ "alice": "bob " }), "spec.managers.alice"),
        (json!({ "alice": "b".repeat(254) }), "spec.managers.alice"),
    ] {
        let (code, message) = support::rejection(
            charts
                .patch(
                    ORG_CHART,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&json!({ "spec": { "managers": managers } })),
                )
                .await,
        );
        assert_eq!(code, 422, "{managers}: {message}");
        assert!(message.contains(why), "{managers}: {message}");
    }
    let another: OrgChart = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "OrgChart",
        "metadata": { "name": "hr" }, "spec": { "managers": { "alice": "bob" } }
    }))
    .expect("valid shape");
    let (code, message) = support::rejection(charts.create(&PostParams::default(), &another).await);
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("the org chart is the OrgChart named gatehouse"),
        "{message}"
    );
}

/// Whoever writes the org chart chooses every requester's manager: no role deploy/admission ships
/// (approvers, revoker, filer on behalf, auditor) may write `orgcharts`, directly or through a
/// wildcard. The operator's own rights are checked against the API server in deploy.rs.
#[test]
fn no_shipped_role_may_write_the_org_chart() {
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/admission/approver-roles.yaml"
    ))
    .expect("approver-roles.yaml");
    let roles: Vec<Value> = serde_yaml::Deserializer::from_str(&shipped)
        .map(|doc| serde::Deserialize::deserialize(doc).expect("YAML"))
        .filter(|doc: &Value| doc["kind"] == "ClusterRole")
        .collect();
    assert!(roles.len() >= 5, "the shipped roles: {roles:?}");
    let names = |rule: &Value, field: &str| -> Vec<String> {
        rule[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(String::from))
            .collect()
    };
    for role in &roles {
        for rule in role["rules"].as_array().expect("rules") {
            let covers = |field: &str, value: &str| {
                names(rule, field).iter().any(|n| n == value || n == "*")
            };
            let writes = names(rule, "verbs").iter().any(|v| {
                [
                    "create",
                    "update",
                    "patch",
                    "delete",
                    "deletecollection",
                    "*",
                ]
                .contains(&v.as_str())
            });
            assert!(
                !(covers("apiGroups", "gatehouse.dev")
                    && covers("resources", "orgcharts")
                    && writes),
                "ClusterRole {} may write the org chart: {rule}",
                role["metadata"]["name"]
            );
        }
    }
}
