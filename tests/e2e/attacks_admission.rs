//! Attacks on the approval protocol, each by a real user holding only the rights a person in that
//! position holds: a namespace admin (`*` on `*` in their namespace) forging status, approvers who
//! would receive the access (by name, by group, as the ServiceAccount, as the recipient of a
//! share), the one who filed a request on someone's behalf, denials that would count for nothing
//! or mislead, and annotation bloat meant to starve the admission policies. Every refusal is
//! checked for its status code and for a message that says why.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use gatehouse::api::{AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::decisions::{accepted, annotations_of, as_user, refused};
use crate::support;

const READER: &str = "gatehouse-e2e-attack-reader";
const FILED_BY: &str = "gatehouse.dev/filed-by";
const REVOKE: &str = "revoke.gatehouse.dev/by";
/// frank's group: hack/controlplane/up.sh signs his client certificate with it.
const ONCALL: &str = "payments-oncall";

fn access_request(name: &str, requester: &str, subjects: Value) -> AccessRequest {
    let mut spec = json!({
        "requester": requester,
        "role": { "kind": "ClusterRole", "name": READER },
        "duration": "30m",
        "justification": "PAY-1234 investigate failed settlement batch"
    });
    if !subjects.is_null() {
        spec["subjects"] = subjects;
    }
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name }, "spec": spec
    }))
    .expect("valid AccessRequest")
}

fn agreement(name: &str, requester: &str, recipient: Value, method: &str) -> DataSharingAgreement {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": name },
        "spec": {
            "requester": requester,
            "data": [{ "secret": "orders-db-readonly", "keys": ["host"] }],
            "recipient": recipient,
            "purpose": "Monthly revenue reporting",
            "transfer": { "method": method },
            "retention": "720h"
        }
    }))
    .expect("valid DataSharingAgreement")
}

fn with_annotations<K: Resource>(mut object: K, annotations: &[(&str, &str)]) -> K {
    object.meta_mut().annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    object
}

fn user(name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: name.into(),
        ..Default::default()
    }
}

fn service_account(ns: &str, name: &str) -> Subject {
    Subject {
        kind: "ServiceAccount".into(),
        name: name.into(),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

/// A RoleBinding in `ns` from `subject` to one of the shipped ClusterRoles of
/// deploy/admission/approver-roles.yaml, created by `by`.
async fn bind(by: &Client, ns: &str, subject: Subject, cluster_role: &str) {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(support::unique(cluster_role)),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: cluster_role.into(),
        },
        subjects: Some(vec![subject]),
    };
    Api::<RoleBinding>::namespaced(by.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap_or_else(|e| panic!("RoleBinding to {cluster_role} in {ns}: {e}"));
}

/// Waits until the authorizer lets `who` do `verb` on `resource` (`plural.group`, or
/// `plural.group/name`) in `ns`, asked with a SubjectAccessReview as admin: RBAC reaches the
/// authorizer's cache a moment after a binding is created, and the policies ask the same one.
/// (`kubectl auth can-i` cannot ask about `approvals.gatehouse.dev`: discovery does not know it.)
fn wait_can(kubeconfig: &Path, who: &str, verb: &str, resource: &str, ns: &str) {
    let (resource, name) = resource.split_once('/').unwrap_or((resource, ""));
    let (plural, group) = resource.split_once('.').unwrap_or((resource, ""));
    let review = json!({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": { "user": who, "resourceAttributes": {
            "group": group, "resource": plural, "verb": verb, "namespace": ns, "name": name } }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let output = kubectl_with_input(
            kubeconfig,
            "admin",
            &["create", "-o", "jsonpath={.status.allowed}", "-f", "-"],
            &review.to_string(),
        );
        if String::from_utf8_lossy(&output.stdout).trim() == "true" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} still may not {verb} {resource} {name} in {ns} after 30s: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn kubectl_with_input(kubeconfig: &Path, who: &str, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", who])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write");
    child.wait_with_output().expect("kubectl finishes")
}

/// `kubectl --context <who> <args>`.
fn kubectl_as(kubeconfig: &Path, who: &str, args: &[&str]) -> Output {
    Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", who])
        .args(args)
        .output()
        .expect("kubectl runs")
}

/// A create that must be refused with `code` and `expected` in the message.
async fn refused_create<K>(api: &Api<K>, object: &K, who: &str, code: u16, expected: &str)
where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource,
{
    let name = object.meta().name.clone().unwrap_or_default();
    let (got, message) = support::rejection(api.create(&PostParams::default(), object).await);
    eprintln!("e2e: {who} creating {name} refused ({got}): {message}");
    assert_eq!(got, code, "{message}");
    assert!(
        message.contains(expected),
        "expected {expected:?} in: {message}"
    );
}

fn status_of<K: Serialize>(object: &K) -> Value {
    serde_json::to_value(object).expect("serializable")["status"].clone()
}

/// alice revokes her request `name`; the operator records it, and she holds no access in `ns`.
async fn revoke_and_prove_gone(
    kubeconfig: &Path,
    alice: &Api<AccessRequest>,
    name: &str,
    ns: &str,
) {
    accepted(alice, name, json!({ REVOKE: "alice" }), "alice (revokes)").await;
    operator_status(alice, name, "Revoked", phase_is("Revoked")).await;
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        ns
    ));
}

/// Polls until `name` has a status the operator wrote and `done` holds for it.
async fn operator_status<K>(
    api: &Api<K>,
    name: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> K
where
    K: Clone + DeserializeOwned + Serialize + Debug,
{
    support::wait_until(api, name, what, |o| {
        let status = status_of(o);
        !status.is_null() && done(&status)
    })
    .await
}

fn phase_is(phase: &'static str) -> impl Fn(&Value) -> bool {
    move |status| status["phase"] == phase
}

/// Waits until the policies of this version are enforced for `name` (an AccessRequest in `ns`),
/// probing with dry-run writes as admin, which change nothing: a policy just applied or replaced
/// takes a moment to be enforced.
async fn wait_for_policies(admin: &Client, ns: &str, name: &str) {
    let api = Api::<AccessRequest>::namespaced(admin.clone(), ns);
    let dry_patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        let status = api
            .patch_status(
                name,
                &dry_patch,
                &Patch::Merge(json!({ "status": { "phase": "Active" } })),
            )
            .await;
        if !matches!(&status, Err(kube::Error::Api(s)) if s.message.contains("status is written only by the Gatehouse operator"))
        {
            missing.push(format!("gatehouse-status ({status:?})"));
        }
        let probe = with_annotations(
            access_request("attack-probe", "alice", Value::Null),
            &[(FILED_BY, "not-admin")],
        );
        let create = api.create(&dry_post, &probe).await;
        if !matches!(&create, Err(kube::Error::Api(s)) if s.message.contains("gatehouse.dev/filed-by must be your own username 'admin'"))
        {
            missing.push(format!("gatehouse-requester ({create:?})"));
        }
        let patch = json!({ "metadata": { "annotations": {
            "deny.gatehouse.dev/gatehouse-probe": "admin" } } });
        let deny = api.patch(name, &dry_patch, &Patch::Merge(&patch)).await;
        if !matches!(&deny, Err(kube::Error::Api(s)) if s.message.contains("deny.gatehouse.dev/gatehouse-probe") && s.message.contains("count"))
        {
            missing.push(format!("gatehouse-approvals ({deny:?})"));
        }
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "admission policies not enforced within 30s (is deploy/admission/ applied?): {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A namespace labelled for its own AccessPolicy (READER, stages manager then data-owner): alice
/// files requests, bob and dave approve as manager, carol as data owner.
async fn staged_namespace(admin: &Client, test: &str) -> String {
    let ns = support::unique(test);
    support::namespace(admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::allow_requests(admin, &ns, "alice").await;
    support::allow_approval(admin, &ns, "bob", "manager").await;
    support::allow_approval(admin, &ns, "dave", "manager").await;
    support::allow_approval(admin, &ns, "carol", "data-owner").await;
    support::cluster_role(admin, READER, "configmaps").await;
    let policy: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy", "metadata": { "name": ns },
        "spec": { "roles": [{ "kind": "ClusterRole", "name": READER }],
                  "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
                  "maxDuration": "1h",
                  "approvals": [{ "role": "manager" }, { "role": "data-owner" }] }
    }))
    .expect("valid AccessPolicy");
    Api::<AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    let kubeconfig = support::kubeconfig();
    for (who, role) in [
        ("bob", "manager"),
        ("dave", "manager"),
        ("carol", "data-owner"),
    ] {
        wait_can(
            kubeconfig,
            who,
            "approve",
            &format!("approvals.gatehouse.dev/{role}"),
            &ns,
        );
    }
    wait_can(
        kubeconfig,
        "alice",
        "create",
        "accessrequests.gatehouse.dev",
        &ns,
    );
    ns
}

/// A plain namespace where alice may file requests (no AccessPolicy).
async fn plain_namespace(admin: &Client, test: &str) -> String {
    let ns = support::unique(test);
    support::namespace(admin, &ns, &[]).await;
    support::allow_requests(admin, &ns, "alice").await;
    wait_can(
        support::kubeconfig(),
        "alice",
        "create",
        "accessrequests.gatehouse.dev",
        &ns,
    );
    ns
}

/// Files `object` as `api`'s user; must be accepted.
async fn file<K>(api: &Api<K>, object: &K) -> K
where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource,
{
    api.create(&PostParams::default(), object)
        .await
        .unwrap_or_else(|e| panic!("filing {:?}: {e}", object.meta().name))
}

/// Every way to write the status subresource, as `who` through `api`, each refused with 403 and
/// the reason; the stored status stays exactly as the operator wrote it.
async fn forge_status<K>(
    kubeconfig: &Path,
    api: &Api<K>,
    who: &str,
    resource: &str,
    name: &str,
    forged: Value,
) where
    K: Clone + DeserializeOwned + Serialize + Debug + Resource<DynamicType = ()>,
{
    let before = api.get(name).await.expect("readable");
    let status = status_of(&before);
    let expect = |how: &str, code: u16, message: &str| {
        eprintln!(
            "e2e: {who} writing the status of {resource}/{name} by {how} refused ({code}): {message}"
        );
        assert_eq!(code, 403, "{how}: {message}");
        assert!(
            message.contains("status is written only by the Gatehouse operator")
                && message.contains(&format!("you are '{who}'"))
                && message.contains("approve with annotations"),
            "{how}: {message}"
        );
    };

    let (code, message) = support::rejection(
        api.patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": forged })),
        )
        .await,
    );
    expect("merge patch", code, &message);

    let apply = json!({
        "apiVersion": K::api_version(&()), "kind": K::kind(&()),
        "metadata": { "name": name }, "status": forged
    });
    let (code, message) = support::rejection(
        api.patch_status(
            name,
            &PatchParams::apply("gatehouse").force(),
            &Patch::Apply(&apply),
        )
        .await,
    );
    expect(
        "server-side apply (force, the operator's field manager)",
        code,
        &message,
    );

    let mut replaced: Value = serde_json::to_value(&before).expect("serializable");
    replaced["status"] = forged.clone();
    let replaced: K = serde_json::from_value(replaced).expect("still valid");
    let (code, message) = support::rejection(
        api.replace_status(name, &PostParams::default(), &replaced)
            .await,
    );
    expect("PUT (replace_status)", code, &message);

    let ops: Vec<Value> = forged
        .as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| json!({ "op": "add", "path": format!("/status/{k}"), "value": v }))
        .collect();
    let output = kubectl_as(
        kubeconfig,
        who,
        &[
            "patch",
            resource,
            name,
            "-n",
            &before.meta().namespace.clone().unwrap_or_default(),
            "--subresource=status",
            "--type=json",
            "-p",
            &Value::from(ops).to_string(),
        ],
    );
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "the JSON patch was accepted");
    assert!(stderr.contains("(Forbidden)"), "{stderr}");
    expect("JSON patch (kubectl patch --type=json)", 403, &stderr);

    let after = api.get(name).await.expect("readable");
    assert_eq!(status_of(&after), status, "the stored status is unchanged");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_namespace_admin_cannot_forge_status_by_any_write_method_nor_can_system_masters() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = staged_namespace(&admin, "attack-status").await;
    support::namespace_admin(&admin, &ns, "mallory").await;
    // RBAC alone would let her: `*` covers the status subresource.
    let can = kubectl_as(
        kubeconfig,
        "admin",
        &[
            "auth",
            "can-i",
            "patch",
            "accessrequests.gatehouse.dev",
            "--subresource=status",
            "-n",
            &ns,
            "--as",
            "mallory",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&can.stdout).trim(), "yes");

    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(&alice, &access_request("alice-read", "alice", Value::Null)).await;
    operator_status(&alice, "alice-read", "Pending", phase_is("Pending")).await;
    wait_for_policies(&admin, &ns, "alice-read").await;
    let alice_dsa = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    file(
        &alice_dsa,
        &agreement("orders-share", "alice", json!({ "namespace": ns }), "Copy"),
    )
    .await;
    operator_status(&alice_dsa, "orders-share", "a status", |_| true).await;

    let approvals = json!([{ "role": "manager", "user": "bob", "decision": "Approved" },
                           { "role": "data-owner", "user": "carol", "decision": "Approved" }]);
    let forged_request =
        json!({ "phase": "Active", "requiredApprovals": [], "approvals": approvals });
    let forged_share =
        json!({ "phase": "Active", "requiredApprovals": [], "approvals": approvals });
    for who in ["mallory", "admin"] {
        let client = support::client(kubeconfig, who).await;
        forge_status(
            kubeconfig,
            &Api::<AccessRequest>::namespaced(client.clone(), &ns),
            who,
            "accessrequests.gatehouse.dev",
            "alice-read",
            forged_request.clone(),
        )
        .await;
        forge_status(
            kubeconfig,
            &Api::<DataSharingAgreement>::namespaced(client, &ns),
            who,
            "datasharingagreements.gatehouse.dev",
            "orders-share",
            forged_share.clone(),
        )
        .await;
    }

    // Nor is a status smuggled in at creation: the API server drops it, the operator writes its own.
    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    let mut smuggled = serde_json::to_value(access_request("mallory-read", "mallory", Value::Null))
        .expect("serializable");
    smuggled["status"] = forged_request.clone();
    let created = file(
        &mallory,
        &serde_json::from_value::<AccessRequest>(smuggled).expect("valid"),
    )
    .await;
    assert!(
        created.status.is_none(),
        "status at creation was kept: {:?}",
        created.status
    );
    operator_status(&mallory, "mallory-read", "Pending", phase_is("Pending")).await;

    // Nothing was granted: the request still waits for its approvers.
    let request = alice.get("alice-read").await.expect("readable");
    assert_eq!(
        request.status.and_then(|s| s.phase),
        Some(AccessPhase::Pending)
    );
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_approver_in_a_group_subject_cannot_decide() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-group").await;
    for who in ["frank", "bob"] {
        bind(&admin, &ns, user(who), "gatehouse-approver-manager").await;
        wait_can(
            kubeconfig,
            who,
            "approve",
            "approvals.gatehouse.dev/manager",
            &ns,
        );
    }
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(
        &alice,
        &access_request(
            "oncall-read",
            "alice",
            json!([{ "kind": "Group", "name": ONCALL }]),
        ),
    )
    .await;
    wait_for_policies(&admin, &ns, "oncall-read").await;

    // frank is in the group the request grants to (his certificate says so).
    let frank = as_user::<AccessRequest>(kubeconfig, "frank", &ns).await;
    let why = format!("you ('frank') are in group '{ONCALL}', a Group subject in spec.subjects");
    for (annotation, verb) in [
        (
            json!({ "approve.gatehouse.dev/manager": "frank" }),
            "approve",
        ),
        (json!({ "deny.gatehouse.dev/manager": "frank" }), "deny"),
        (
            json!({ "reason.gatehouse.dev/manager": "on call, fine" }),
            "give a reason on",
        ),
    ] {
        refused(
            &frank,
            "oncall-read",
            annotation,
            "frank (in the group)",
            403,
            &format!("you may not {verb} a request that grants you access: {why}"),
        )
        .await;
    }
    // An approver outside the group may.
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    accepted(
        &bob,
        "oncall-read",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_service_account_subject_cannot_approve_with_its_own_token() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-sa").await;
    // mallory administers the namespace: she creates the ServiceAccount, makes it a manager
    // approver (she holds every right in the namespace, so RBAC lets her) and mints its token.
    support::namespace_admin(&admin, &ns, "mallory").await;
    let mallory = support::client(kubeconfig, "mallory").await;
    support::create_service_account(&mallory, &ns, "deployer").await;
    bind(
        &mallory,
        &ns,
        service_account(&ns, "deployer"),
        "gatehouse-approver-manager",
    )
    .await;
    let deployer_user = format!("system:serviceaccount:{ns}:deployer");
    wait_can(
        kubeconfig,
        &deployer_user,
        "approve",
        "approvals.gatehouse.dev/manager",
        &ns,
    );
    let deployer = Api::<AccessRequest>::namespaced(
        support::service_account_client(kubeconfig, &mallory, &ns, "deployer").await,
        &ns,
    );

    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(
        &alice,
        &access_request(
            "deployer-read",
            "alice",
            json!([{ "kind": "ServiceAccount", "name": "deployer", "namespace": ns }]),
        ),
    )
    .await;
    file(
        &alice,
        &access_request(
            "namespace-sa-read",
            "alice",
            json!([{ "kind": "Group", "name": format!("system:serviceaccounts:{ns}") }]),
        ),
    )
    .await;
    wait_for_policies(&admin, &ns, "deployer-read").await;

    refused(
        &deployer,
        "deployer-read",
        json!({ "approve.gatehouse.dev/manager": deployer_user }),
        "the ServiceAccount subject",
        403,
        &format!(
            "you may not approve a request that grants you access: you ('{deployer_user}') are ServiceAccount '{ns}/deployer', a ServiceAccount subject in spec.subjects"
        ),
    )
    .await;
    // Every ServiceAccount of the namespace is in group system:serviceaccounts:<namespace>.
    refused(
        &deployer,
        "namespace-sa-read",
        json!({ "approve.gatehouse.dev/manager": deployer_user }),
        "a ServiceAccount in the subject group",
        403,
        &format!("are in group 'system:serviceaccounts:{ns}', a Group subject in spec.subjects"),
    )
    .await;
    assert!(!support::can_i(
        kubeconfig,
        &deployer_user,
        "list",
        "configmaps",
        &ns
    ));
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_recipient_service_accounts_cannot_review_their_own_share() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-recipient").await;
    let to = support::unique("attack-recipient-to");
    support::namespace(&admin, &to, &[]).await;
    for sa in ["reporter", "batch"] {
        support::create_service_account(&admin, &to, sa).await;
        // Whoever granted them the data owner's right erred; admission still holds.
        bind(
            &admin,
            &ns,
            service_account(&to, sa),
            "gatehouse-approver-data-owner",
        )
        .await;
    }
    bind(&admin, &ns, user("carol"), "gatehouse-approver-data-owner").await;
    for who in [
        format!("system:serviceaccount:{to}:reporter"),
        format!("system:serviceaccount:{to}:batch"),
        "carol".to_string(),
    ] {
        wait_can(
            kubeconfig,
            &who,
            "approve",
            "approvals.gatehouse.dev/data-owner",
            &ns,
        );
    }
    let alice_dsa = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    file(
        &alice_dsa,
        &agreement(
            "orders-to-reporter",
            "alice",
            json!({ "namespace": to, "serviceAccount": "reporter" }),
            "Reference",
        ),
    )
    .await;
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(&alice, &access_request("probe", "alice", Value::Null)).await;
    wait_for_policies(&admin, &ns, "probe").await;

    for (sa, why) in [
        (
            "reporter",
            "are its recipient ServiceAccount (spec.recipient)".to_string(),
        ),
        (
            "batch",
            format!("are a ServiceAccount of the recipient namespace '{to}'"),
        ),
    ] {
        let username = format!("system:serviceaccount:{to}:{sa}");
        let api = Api::<DataSharingAgreement>::namespaced(
            support::service_account_client(kubeconfig, &admin, &to, sa).await,
            &ns,
        );
        for (key, verb) in [
            ("approve.gatehouse.dev/data-owner", "approve"),
            ("deny.gatehouse.dev/data-owner", "deny"),
        ] {
            refused(
                &api,
                "orders-to-reporter",
                json!({ key: username }),
                &username,
                403,
                &format!(
                    "you may not {verb} an agreement that shares data with you: you ('{username}') {why}"
                ),
            )
            .await;
        }
        assert!(!support::can_i(
            kubeconfig, &username, "get", "secrets", &ns
        ));
    }
    let carol = as_user::<DataSharingAgreement>(kubeconfig, "carol", &ns).await;
    accepted(
        &carol,
        "orders-to-reporter",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol (data owner)",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_on_behalf_filer_cannot_approve_deny_or_give_a_reason() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-filer").await;
    // erin is a GitOps account that files for people, and (wrongly) also an approver.
    for role in [
        "gatehouse-create-on-behalf",
        "gatehouse-approver-manager",
        "gatehouse-approver-data-owner",
    ] {
        bind(&admin, &ns, user("erin"), role).await;
    }
    bind(&admin, &ns, user("bob"), "gatehouse-approver-manager").await;
    wait_can(
        kubeconfig,
        "erin",
        "create-on-behalf",
        "approvals.gatehouse.dev",
        &ns,
    );
    wait_can(
        kubeconfig,
        "erin",
        "approve",
        "approvals.gatehouse.dev/data-owner",
        &ns,
    );
    wait_can(
        kubeconfig,
        "bob",
        "approve",
        "approvals.gatehouse.dev/manager",
        &ns,
    );

    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    file(
        &erin,
        &with_annotations(
            access_request("for-alice", "alice", Value::Null),
            &[(FILED_BY, "erin")],
        ),
    )
    .await;
    wait_for_policies(&admin, &ns, "for-alice").await;
    for (annotation, verb) in [
        (
            json!({ "approve.gatehouse.dev/manager": "erin" }),
            "approve",
        ),
        (json!({ "deny.gatehouse.dev/manager": "erin" }), "deny"),
        (
            json!({ "reason.gatehouse.dev/manager": "looks fine" }),
            "give a reason on",
        ),
    ] {
        refused(
            &erin,
            "for-alice",
            annotation,
            "erin (the filer)",
            403,
            &format!(
                "you may not {verb} this AccessRequest: you ('erin') filed it on behalf of 'alice' (gatehouse.dev/filed-by)"
            ),
        )
        .await;
    }
    let erin_dsa = as_user::<DataSharingAgreement>(kubeconfig, "erin", &ns).await;
    file(
        &erin_dsa,
        &with_annotations(
            agreement(
                "share-for-alice",
                "alice",
                json!({ "namespace": ns }),
                "Copy",
            ),
            &[(FILED_BY, "erin")],
        ),
    )
    .await;
    refused(
        &erin_dsa,
        "share-for-alice",
        json!({ "approve.gatehouse.dev/data-owner": "erin" }),
        "erin (the filer)",
        403,
        "you may not approve this DataSharingAgreement: you ('erin') filed it on behalf of 'alice'",
    )
    .await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    accepted(
        &bob,
        "for-alice",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn filed_by_is_required_and_truthful_at_creation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-filed-by").await;
    bind(&admin, &ns, user("erin"), "gatehouse-create-on-behalf").await;
    wait_can(
        kubeconfig,
        "erin",
        "create-on-behalf",
        "approvals.gatehouse.dev",
        &ns,
    );
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(&alice, &access_request("probe", "alice", Value::Null)).await;
    wait_for_policies(&admin, &ns, "probe").await;

    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    refused_create(
        &erin,
        &access_request("for-alice", "alice", Value::Null),
        "erin without filed-by",
        422,
        "you file this AccessRequest on behalf of 'alice': add the annotation gatehouse.dev/filed-by=erin so approvers see who filed it",
    )
    .await;
    refused_create(
        &erin,
        &with_annotations(
            access_request("for-alice", "alice", Value::Null),
            &[(FILED_BY, "bob")],
        ),
        "erin naming bob as the filer",
        422,
        "gatehouse.dev/filed-by must be your own username 'erin', not 'bob'",
    )
    .await;
    // A ServiceAccount in disguise: filed for as a system: requester, it would receive access
    // as a User that no AccessPolicy lists.
    refused_create(
        &erin,
        &with_annotations(
            access_request(
                "for-bot",
                &format!("system:serviceaccount:{ns}:bot"),
                Value::Null,
            ),
            &[(FILED_BY, "erin")],
        ),
        "erin filing for a ServiceAccount",
        403,
        &format!("nobody files on behalf of 'system:serviceaccount:{ns}:bot'"),
    )
    .await;
    // Whoever files for themselves may not name another filer either.
    refused_create(
        &alice,
        &with_annotations(
            access_request("alice-read", "alice", Value::Null),
            &[(FILED_BY, "bob")],
        ),
        "alice naming bob as the filer",
        422,
        "gatehouse.dev/filed-by must be your own username 'alice', not 'bob'",
    )
    .await;
    let erin_dsa = as_user::<DataSharingAgreement>(kubeconfig, "erin", &ns).await;
    refused_create(
        &erin_dsa,
        &agreement("share-for-alice", "alice", json!({ "namespace": ns }), "Copy"),
        "erin without filed-by",
        422,
        "you file this DataSharingAgreement on behalf of 'alice': add the annotation gatehouse.dev/filed-by=erin",
    )
    .await;
    // Truthful, it is accepted.
    let filed = file(
        &erin,
        &with_annotations(
            access_request("for-alice", "alice", Value::Null),
            &[(FILED_BY, "erin")],
        ),
    )
    .await;
    assert_eq!(annotations_of(&filed)[FILED_BY], "erin");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn filed_by_can_never_be_added_changed_or_removed() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = plain_namespace(&admin, "attack-filed-by-later").await;
    bind(&admin, &ns, user("erin"), "gatehouse-create-on-behalf").await;
    wait_can(
        kubeconfig,
        "erin",
        "create-on-behalf",
        "approvals.gatehouse.dev",
        &ns,
    );
    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    file(
        &erin,
        &with_annotations(
            access_request("for-alice", "alice", Value::Null),
            &[(FILED_BY, "erin")],
        ),
    )
    .await;
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(&alice, &access_request("alice-read", "alice", Value::Null)).await;
    wait_for_policies(&admin, &ns, "alice-read").await;

    let as_admin = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    for (api, who, change, what) in [
        (
            &erin,
            "erin",
            json!({ FILED_BY: "bob" }),
            "was changed (it is 'erin')",
        ),
        (
            &erin,
            "erin",
            json!({ FILED_BY: null }),
            "was removed (it is 'erin')",
        ),
        (
            &alice,
            "alice",
            json!({ FILED_BY: null }),
            "was removed (it is 'erin')",
        ),
        (
            &as_admin,
            "admin",
            json!({ FILED_BY: "admin" }),
            "was changed (it is 'erin')",
        ),
    ] {
        refused(
            api,
            "for-alice",
            change,
            who,
            422,
            &format!("gatehouse.dev/filed-by cannot be added, changed or removed after creation: it {what}"),
        )
        .await;
    }
    // Added later, it would make someone else look like the filer (and bar them from deciding).
    for (api, who) in [(&alice, "alice"), (&as_admin, "admin")] {
        refused(
            api,
            "alice-read",
            json!({ FILED_BY: "bob" }),
            who,
            422,
            "gatehouse.dev/filed-by cannot be added, changed or removed after creation: it was not set when the AccessRequest was filed",
        )
        .await;
    }
    // Replacing the whole object without it is a removal too.
    let mut stale = as_admin.get("for-alice").await.expect("readable");
    stale.metadata.annotations = None;
    let (code, message) = support::rejection(
        as_admin
            .replace("for-alice", &PostParams::default(), &stale)
            .await,
    );
    eprintln!("e2e: admin replacing for-alice without filed-by refused ({code}): {message}");
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("it was removed (it is 'erin')"),
        "{message}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_denial_for_a_role_that_is_no_stage_is_refused() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = staged_namespace(&admin, "attack-offstage").await;
    support::allow_approval(&admin, &ns, "erin", "security").await;
    wait_can(
        kubeconfig,
        "erin",
        "approve",
        "approvals.gatehouse.dev/security",
        &ns,
    );
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    file(&alice, &access_request("alice-read", "alice", Value::Null)).await;
    operator_status(&alice, "alice-read", "its stages", |s| {
        s["requiredApprovals"] == json!(["manager", "data-owner"])
    })
    .await;
    wait_for_policies(&admin, &ns, "alice-read").await;

    // erin holds a real approver role, just not one this request needs: her denial would end it.
    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    refused(
        &erin,
        "alice-read",
        json!({ "deny.gatehouse.dev/security": "erin",
                "reason.gatehouse.dev/security": "I say no" }),
        "erin (security, no stage here)",
        422,
        "deny.gatehouse.dev/security does not count: 'security' is no approval stage of this AccessRequest (stages: manager, data-owner)",
    )
    .await;
    let request = alice.get("alice-read").await.expect("readable");
    assert_eq!(
        request.status.and_then(|s| s.phase),
        Some(AccessPhase::Pending)
    );

    // Where the operator lists no stage (no policy matches), no denial can count yet.
    let unmatched = plain_namespace(&admin, "attack-nostage").await;
    support::allow_approval(&admin, &unmatched, "bob", "manager").await;
    wait_can(
        kubeconfig,
        "bob",
        "approve",
        "approvals.gatehouse.dev/manager",
        &unmatched,
    );
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &unmatched).await;
    file(&alice, &access_request("alice-read", "alice", Value::Null)).await;
    let seen = operator_status(&alice, "alice-read", "a phase", |s| !s["phase"].is_null()).await;
    assert!(
        status_of(&seen)["requiredApprovals"].is_null(),
        "{:?}",
        seen.status
    );
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &unmatched).await;
    refused(
        &bob,
        "alice-read",
        json!({ "deny.gatehouse.dev/manager": "bob" }),
        "bob",
        422,
        "wait until the operator lists the required approvals in status.requiredApprovals (kubectl get accessrequests alice-read",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_denial_after_the_grant_points_to_revoke_and_an_ended_request_takes_no_decision() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = staged_namespace(&admin, "attack-late").await;
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    let dave = as_user::<AccessRequest>(kubeconfig, "dave", &ns).await;
    for name in ["granted", "denied", "withdrawn"] {
        file(&alice, &access_request(name, "alice", Value::Null)).await;
        operator_status(&alice, name, "its stages", |s| {
            s["requiredApprovals"] == json!(["manager", "data-owner"])
        })
        .await;
    }
    wait_for_policies(&admin, &ns, "granted").await;

    // Active: a denial would end nothing, the message says what does.
    accepted(
        &bob,
        "granted",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
    accepted(
        &carol,
        "granted",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    operator_status(&alice, "granted", "Active", phase_is("Active")).await;
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
    refused(
        &dave,
        "granted",
        json!({ "deny.gatehouse.dev/manager": "dave" }),
        "dave (manager) on an active request",
        422,
        &format!(
            "access is already granted (phase Active): a denial would end nothing; to end it use revoke.gatehouse.dev/by=dave (kubectl gatehouse revoke ar/granted -n {ns})"
        ),
    )
    .await;
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
    revoke_and_prove_gone(kubeconfig, &alice, "granted", &ns).await;
    refused(
        &dave,
        "granted",
        json!({ "deny.gatehouse.dev/manager": "dave" }),
        "dave on a revoked request",
        422,
        "this AccessRequest already ended (phase Revoked): nothing to decide, deny.gatehouse.dev/manager was not added",
    )
    .await;

    // Denied: no approval any more; a reason only from whoever made the decision it explains.
    accepted(
        &dave,
        "denied",
        json!({ "deny.gatehouse.dev/manager": "dave" }),
        "dave",
    )
    .await;
    operator_status(&alice, "denied", "Denied", phase_is("Denied")).await;
    refused(
        &carol,
        "denied",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol on a denied request",
        422,
        "this AccessRequest already ended (phase Denied): nothing to decide, approve.gatehouse.dev/data-owner was not added",
    )
    .await;
    refused(
        &bob,
        "denied",
        json!({ "reason.gatehouse.dev/manager": "approved by the CFO" }),
        "bob explaining dave's denial",
        403,
        "reason.gatehouse.dev/manager explains the decision of 'dave': only they give its reason",
    )
    .await;
    accepted(
        &dave,
        "denied",
        json!({ "reason.gatehouse.dev/manager": "no ticket" }),
        "dave explains his denial",
    )
    .await;
    // A concurring denial is still recorded (it decides nothing new, and misleads nobody).
    accepted(
        &carol,
        "denied",
        json!({ "deny.gatehouse.dev/data-owner": "carol" }),
        "carol concurs",
    )
    .await;

    // Revoked while pending: the last stage can no longer approve.
    accepted(
        &bob,
        "withdrawn",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
    accepted(
        &alice,
        "withdrawn",
        json!({ REVOKE: "alice" }),
        "alice (withdraws)",
    )
    .await;
    operator_status(&alice, "withdrawn", "Revoked", phase_is("Revoked")).await;
    refused(
        &carol,
        "withdrawn",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol on a withdrawn request",
        422,
        "already ended (phase Revoked): nothing to decide",
    )
    .await;
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
}

/// 150 annotations of 1 KB each (unrelated keys) must not starve the policies: they still take
/// a legitimate approval, denial and revocation, and still refuse forged ones.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn annotation_bloat_does_not_starve_admission() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = staged_namespace(&admin, "attack-bloat").await;
    support::namespace_admin(&admin, &ns, "mallory").await;
    support::allow_requests(&admin, &ns, "erin").await;
    wait_can(
        kubeconfig,
        "erin",
        "patch",
        "accessrequests.gatehouse.dev",
        &ns,
    );
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    let bloat: BTreeMap<String, String> = (0..150)
        .map(|i| (format!("bloat.example.com/k{i:03}"), "x".repeat(1000)))
        .collect();
    for name in ["approved", "denied"] {
        file(&alice, &access_request(name, "alice", Value::Null)).await;
        operator_status(&alice, name, "its stages", |s| {
            s["requiredApprovals"] == json!(["manager", "data-owner"])
        })
        .await;
        let bloated = accepted(&mallory, name, json!(bloat), "mallory (150 x 1 KB)").await;
        assert!(annotations_of(&bloated).len() >= 150);
    }
    wait_for_policies(&admin, &ns, "approved").await;

    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    let dave = as_user::<AccessRequest>(kubeconfig, "dave", &ns).await;
    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    // Forged ones are still refused, each for its reason (no cost error, no timeout).
    refused(
        &bob,
        "approved",
        json!({ "approve.gatehouse.dev/manager": "carol" }),
        "bob forging carol",
        422,
        "approve.gatehouse.dev/manager must be set to your own username 'bob', not 'carol'",
    )
    .await;
    refused(
        &erin,
        "approved",
        json!({ "approve.gatehouse.dev/manager": "erin" }),
        "erin (no approver right)",
        403,
        "you need verb approve on approvals.gatehouse.dev for role 'manager'",
    )
    .await;
    refused(
        &erin,
        "approved",
        json!({ REVOKE: "erin" }),
        "erin (no revoker)",
        403,
        "only the requester ('alice') or a holder of verb revoke",
    )
    .await;
    // Legitimate ones pass.
    accepted(
        &bob,
        "approved",
        json!({ "approve.gatehouse.dev/manager": "bob" }),
        "bob",
    )
    .await;
    accepted(
        &carol,
        "approved",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    operator_status(&alice, "approved", "Active", phase_is("Active")).await;
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
    revoke_and_prove_gone(kubeconfig, &alice, "approved", &ns).await;

    accepted(
        &dave,
        "denied",
        json!({ "deny.gatehouse.dev/manager": "dave", "reason.gatehouse.dev/manager": "no ticket" }),
        "dave",
    )
    .await;
    operator_status(&alice, "denied", "Denied", phase_is("Denied")).await;
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "list",
        "configmaps",
        &ns
    ));
}
