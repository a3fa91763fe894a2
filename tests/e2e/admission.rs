//! The approval protocol as the API server enforces it: the ValidatingAdmissionPolicies of
//! `deploy/admission/`, exercised by real users through their own tokens. Admin only sets up
//! namespaces, RBAC and the probes that wait for the policies to be enforced.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use gatehouse::api::{AccessRequest, DataSharingAgreement};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::decisions::{accepted, annotations_of, as_user, refused};
use crate::support;

const APPROVE_MANAGER: &str = "approve.gatehouse.dev/manager";

/// An AccessRequest `name` filed by `requester` for `subjects` (default: the requester).
fn access_request(name: &str, requester: &str, subjects: &[&str]) -> AccessRequest {
    let mut spec = json!({
        "requester": requester,
        "role": { "kind": "ClusterRole", "name": "db-reader" },
        "duration": "1h",
        "justification": "PAY-1234 investigate failed settlement batch"
    });
    if !subjects.is_empty() {
        spec["subjects"] = subjects
            .iter()
            .map(|s| json!({ "kind": "User", "name": s }))
            .collect();
    }
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessRequest",
        "metadata": { "name": name },
        "spec": spec
    }))
    .expect("valid AccessRequest")
}

fn agreement(name: &str, requester: &str) -> DataSharingAgreement {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "DataSharingAgreement",
        "metadata": { "name": name },
        "spec": {
            "requester": requester,
            "data": [{ "secret": "orders-db-readonly", "keys": ["host"] }],
            "recipient": { "namespace": "analytics" },
            "purpose": "Monthly revenue reporting",
            "transfer": { "method": "Copy" },
            "retention": "720h"
        }
    }))
    .expect("valid DataSharingAgreement")
}

/// A fresh namespace where alice may file requests.
async fn setup(admin: &Client, test: &str) -> String {
    let ns = support::unique(test);
    support::namespace(admin, &ns, &[]).await;
    allow_requests(admin, &ns, "alice").await;
    ns
}

/// `support::allow_requests`, then waits until the authorizer has seen the new binding.
async fn allow_requests(admin: &Client, ns: &str, user_name: &str) {
    support::allow_requests(admin, ns, user_name).await;
    may_patch(admin, user_name, Some(ns)).await;
}

/// Waits until the API server's authorizer lets `user` patch AccessRequests in `ns` (everywhere
/// with `None`): RBAC bindings reach the authorizer's cache a moment after they are created.
async fn may_patch(admin: &Client, user_name: &str, ns: Option<&str>) {
    authorized(admin, user_name, ns, "patch", "accessrequests", None).await;
}

/// Waits until the authorizer grants what ClusterRole `role` of deploy/admission/ grants: the
/// admission policies ask the same authorizer, so a test must not race the RBAC cache.
async fn may_act_as(admin: &Client, user_name: &str, ns: Option<&str>, role: &str) {
    may_patch(admin, user_name, ns).await;
    let (verb, name) = match role.strip_prefix("gatehouse-approver-") {
        Some(approver) => ("approve", Some(approver)),
        None if role == "gatehouse-revoker" => ("revoke", None),
        None => ("create-on-behalf", None),
    };
    authorized(admin, user_name, ns, verb, "approvals", name).await;
}

/// Polls a SubjectAccessReview (what `kubectl auth can-i --as` asks) until it is allowed.
async fn authorized(
    admin: &Client,
    user_name: &str,
    ns: Option<&str>,
    verb: &str,
    resource: &str,
    name: Option<&str>,
) {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user_name.into()),
            resource_attributes: Some(ResourceAttributes {
                group: Some("gatehouse.dev".into()),
                resource: Some(resource.into()),
                verb: Some(verb.into()),
                namespace: ns.map(String::from),
                name: name.map(String::from),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews = Api::<SubjectAccessReview>::all(admin.clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .expect("subject access review");
        if answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user_name} still may not {verb} {resource} {name:?} in {ns:?} after 30s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn user(name: &str) -> Subject {
    Subject {
        api_group: Some("rbac.authorization.k8s.io".into()),
        kind: "User".into(),
        name: name.into(),
        ..Default::default()
    }
}

fn cluster_role(name: &str) -> RoleRef {
    RoleRef {
        api_group: "rbac.authorization.k8s.io".into(),
        kind: "ClusterRole".into(),
        name: name.into(),
    }
}

/// Binds `user` to ClusterRole `role` (from deploy/admission/approver-roles.yaml) in `ns` only.
async fn bind(admin: &Client, ns: &str, user_name: &str, role: &str) {
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some(format!("{role}-{user_name}")),
            ..Default::default()
        },
        role_ref: cluster_role(role),
        subjects: Some(vec![user(user_name)]),
    };
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("role binding created");
    may_act_as(admin, user_name, Some(ns), role).await;
}

/// Binds `user` to ClusterRole `role` cluster-wide; returns the binding's name, for cleanup.
async fn bind_cluster_wide(admin: &Client, user_name: &str, role: &str) -> String {
    let name = support::unique(&format!("e2e-{role}-{user_name}"));
    let binding = ClusterRoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        role_ref: cluster_role(role),
        subjects: Some(vec![user(user_name)]),
    };
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("cluster role binding created");
    may_act_as(admin, user_name, None, role).await;
    name
}

async fn unbind_cluster_wide(admin: &Client, name: &str) {
    Api::<ClusterRoleBinding>::all(admin.clone())
        .delete(name, &DeleteParams::default())
        .await
        .expect("cluster role binding deleted");
}

/// Whether `result` is a refusal by admission policy `policy` whose message contains `text`.
fn refused_by<T>(result: &Result<T, kube::Error>, policy: &str, text: &str) -> bool {
    match result {
        Err(kube::Error::Api(status)) => {
            status.message.contains(&format!("'{policy}'")) && status.message.contains(text)
        }
        _ => false,
    }
}

/// Polls (with dry-run requests as admin, which change nothing) until all three policies of
/// deploy/admission/ are enforced for `name` in `ns`: a freshly created or updated policy or
/// binding takes a moment. The probes expect today's messages, so a policy still being replaced
/// by a newer version is waited for too.
async fn wait_for_policies<K>(admin: &Client, ns: &str, name: &str)
where
    K: Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api = Api::<K>::namespaced(admin.clone(), ns);
    let ar = Api::<AccessRequest>::namespaced(admin.clone(), ns);
    let dry_patch = PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let dry_post = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut probe = access_request("admission-probe", "admin", &[]);
    probe.metadata.annotations = Some(BTreeMap::from([(
        APPROVE_MANAGER.to_string(),
        "admin".to_string(),
    )]));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut missing = Vec::new();
        let create = ar.create(&dry_post, &probe).await;
        if !refused_by(
            &create,
            "gatehouse-requester",
            "approval annotations cannot be set at creation: remove approve.gatehouse.dev/manager",
        ) {
            missing.push(format!("gatehouse-requester ({create:?})"));
        }
        for (policy, key) in [
            ("gatehouse-approvals", "approve.gatehouse.dev/probe"),
            ("gatehouse-revocation", "revoke.gatehouse.dev/by"),
        ] {
            let patch = json!({ "metadata": { "annotations": { key: "not-admin" } } });
            let result = api.patch(name, &dry_patch, &Patch::Merge(&patch)).await;
            let text = format!("{key} must be set to your own username 'admin', not 'not-admin'");
            if !refused_by(&result, policy, &text) {
                missing.push(format!("{policy} ({result:?})"));
            }
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

/// An AccessPolicy for exactly `ns` (its `kubernetes.io/metadata.name` label) letting alice ask for
/// `db-reader` with `roles` as its approval stages, and that ClusterRole (as examples/setup.yaml
/// defines it).
async fn stages(admin: &Client, ns: &str, roles: &[&str]) {
    support::cluster_role(admin, "db-reader", "configmaps").await;
    let policy: gatehouse::api::AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy", "metadata": { "name": ns },
        "spec": { "roles": [{ "kind": "ClusterRole", "name": "db-reader" }],
                  "namespaceSelector": { "matchLabels": { "kubernetes.io/metadata.name": ns } },
                  "maxDuration": "1h",
                  "approvals": roles.iter().map(|r| json!({ "role": r })).collect::<Vec<_>>() }
    }))
    .expect("valid AccessPolicy");
    Api::<gatehouse::api::AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
}

/// Alice files `name` in `ns` (as herself) and waits until the policies guard it.
async fn filed_by_alice(
    kubeconfig: &std::path::Path,
    admin: &Client,
    ns: &str,
    request: AccessRequest,
) -> Api<AccessRequest> {
    let name = request.metadata.name.clone().expect("named");
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, ns);
    alice
        .create(&PostParams::default(), &request)
        .await
        .expect("alice files her request");
    wait_for_policies::<AccessRequest>(admin, ns, &name).await;
    alice
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approvers_holding_the_role_approve_a_request_and_an_agreement() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "approve").await;
    bind(&admin, &ns, "bob", "gatehouse-approver-manager").await;
    bind(&admin, &ns, "carol", "gatehouse-approver-data-owner").await;
    let dave_binding = bind_cluster_wide(&admin, "dave", "gatehouse-approver-security").await;
    let alice = filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;

    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    accepted(
        &bob,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "bob" }),
        "bob",
    )
    .await;
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    accepted(
        &carol,
        "alice-db-read",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    let dave = as_user::<AccessRequest>(kubeconfig, "dave", &ns).await;
    let approved = accepted(
        &dave,
        "alice-db-read",
        json!({ "approve.gatehouse.dev/security": "dave" }),
        "dave (cluster-wide)",
    )
    .await;
    let annotations = annotations_of(&approved);
    assert_eq!(annotations[APPROVE_MANAGER], "bob");
    assert_eq!(annotations["approve.gatehouse.dev/data-owner"], "carol");
    assert_eq!(annotations["approve.gatehouse.dev/security"], "dave");

    // Other writes to an approved object pass: a finalizer added and removed the way the operator
    // does (server-side apply, its own field manager; finalizers are a set, so nobody else's
    // entry is touched), and a label.
    let as_admin = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    let manager = PatchParams::apply("gatehouse-e2e-admission").force();
    for finalizers in [json!(["gatehouse.dev/e2e-admission"]), json!([])] {
        let apply = json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": { "name": "alice-db-read", "finalizers": finalizers }
        });
        let written = as_admin
            .patch("alice-db-read", &manager, &Patch::Apply(&apply))
            .await
            .expect("a finalizer change passes the admission policies");
        let has_probe = written
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"gatehouse.dev/e2e-admission".to_string());
        assert_eq!(has_probe, finalizers != json!([]), "finalizer applied");
    }
    let labelled = json!({ "metadata": { "labels": { "team": "payments" } } });
    alice
        .patch(
            "alice-db-read",
            &PatchParams::default(),
            &Patch::Merge(&labelled),
        )
        .await
        .expect("a label change passes the admission policies");
    eprintln!("e2e: a finalizer and a label on an approved request: accepted");

    // The same keys work on a DataSharingAgreement.
    let alice_dsa = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    alice_dsa
        .create(&PostParams::default(), &agreement("orders-share", "alice"))
        .await
        .expect("alice files an agreement");
    wait_for_policies::<DataSharingAgreement>(&admin, &ns, "orders-share").await;
    let carol_dsa = as_user::<DataSharingAgreement>(kubeconfig, "carol", &ns).await;
    let shared = accepted(
        &carol_dsa,
        "orders-share",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    assert_eq!(
        annotations_of(&shared)["approve.gatehouse.dev/data-owner"],
        "carol"
    );
    unbind_cluster_wide(&admin, &dave_binding).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_denial_with_its_reason_is_accepted_and_final() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "deny").await;
    bind(&admin, &ns, "carol", "gatehouse-approver-data-owner").await;
    let dave_binding = bind_cluster_wide(&admin, "dave", "gatehouse-approver-security").await;
    // A denial counts only for a stage the operator listed: security and data-owner here.
    stages(&admin, &ns, &["security", "data-owner"]).await;
    let alice = filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    support::wait_until(&alice, "alice-db-read", "its stages listed", |r| {
        r.status
            .as_ref()
            .is_some_and(|s| s.required_approvals == ["security", "data-owner"])
    })
    .await;

    // A denial and its reason in one go ...
    let dave = as_user::<AccessRequest>(kubeconfig, "dave", &ns).await;
    accepted(
        &dave,
        "alice-db-read",
        json!({
            "deny.gatehouse.dev/security": "dave",
            "reason.gatehouse.dev/security": "no ticket for production data"
        }),
        "dave",
    )
    .await;
    // ... or the reason afterwards, as in `kubectl annotate` twice.
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    accepted(
        &carol,
        "alice-db-read",
        json!({ "deny.gatehouse.dev/data-owner": "carol" }),
        "carol",
    )
    .await;
    let denied = accepted(
        &carol,
        "alice-db-read",
        json!({ "reason.gatehouse.dev/data-owner": "use the anonymised replica" }),
        "carol",
    )
    .await;
    let annotations = annotations_of(&denied);
    assert_eq!(annotations["deny.gatehouse.dev/security"], "dave");
    assert_eq!(annotations["deny.gatehouse.dev/data-owner"], "carol");
    assert_eq!(
        annotations["reason.gatehouse.dev/security"],
        "no ticket for production data"
    );

    // A reason is final too.
    refused(
        &dave,
        "alice-db-read",
        json!({ "reason.gatehouse.dev/security": "changed my mind" }),
        "dave",
        422,
        "approvals cannot be changed or removed once set: reason.gatehouse.dev/security was changed",
    )
    .await;
    // A reason needs the right for its role.
    refused(
        &carol,
        "alice-db-read",
        json!({ "reason.gatehouse.dev/manager": "fine by me" }),
        "carol",
        403,
        &format!(
            "you need verb approve on approvals.gatehouse.dev for role 'manager' (resourceName) in namespace '{ns}'"
        ),
    )
    .await;
    unbind_cluster_wide(&admin, &dave_binding).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn nobody_approves_their_own_request_even_holding_the_role() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "self").await;
    bind(&admin, &ns, "alice", "gatehouse-approver-manager").await;
    bind(&admin, &ns, "erin", "gatehouse-approver-manager").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    refused(
        &alice,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "alice" }),
        "alice (requester, holds manager)",
        403,
        "you may not approve your own request",
    )
    .await;
    refused(
        &alice,
        "alice-db-read",
        json!({ "deny.gatehouse.dev/manager": "alice" }),
        "alice (requester, holds manager)",
        403,
        "you may not deny your own request",
    )
    .await;

    // Nor does a subject: the request grants erin access.
    let for_erin = access_request("erin-db-read", "alice", &["erin"]);
    Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns)
        .create(&PostParams::default(), &for_erin)
        .await
        .expect("alice files a request for erin");
    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    refused(
        &erin,
        "erin-db-read",
        json!({ APPROVE_MANAGER: "erin" }),
        "erin (subject, holds manager)",
        403,
        "you may not approve a request that grants you access: you ('erin') are a User subject in spec.subjects",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_approval_needs_the_approver_right() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "noright").await;
    // Mallory may edit requests here, but holds no approver role.
    allow_requests(&admin, &ns, "mallory").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    refused(
        &mallory,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "mallory" }),
        "mallory",
        403,
        &format!(
            "you need verb approve on approvals.gatehouse.dev for role 'manager' (resourceName) in namespace '{ns}' or cluster-wide; ask for a RoleBinding to ClusterRole gatehouse-approver-manager"
        ),
    )
    .await;

    // Every role of an update is checked: bob holds manager, not data-owner.
    bind(&admin, &ns, "bob", "gatehouse-approver-manager").await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    refused(
        &bob,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "bob", "approve.gatehouse.dev/data-owner": "bob" }),
        "bob (manager only)",
        403,
        &format!(
            "you need verb approve on approvals.gatehouse.dev for role 'data-owner' (resourceName) in namespace '{ns}'"
        ),
    )
    .await;
    // One authorization check per role keeps the CEL cost bounded: at most two roles at once.
    refused(
        &bob,
        "alice-db-read",
        json!({
            "approve.gatehouse.dev/privacy": "bob",
            "approve.gatehouse.dev/legal": "bob",
            "approve.gatehouse.dev/security": "bob"
        }),
        "bob",
        422,
        "add approvals for at most two roles per update",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_approval_carries_the_approvers_own_username() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "value").await;
    bind(&admin, &ns, "bob", "gatehouse-approver-manager").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    refused(
        &bob,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "carol" }),
        "bob",
        422,
        "approve.gatehouse.dev/manager must be set to your own username 'bob', not 'carol'",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_data_owner_of_another_namespace_cannot_approve() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let owned = setup(&admin, "owned").await;
    let ns = setup(&admin, "other").await;
    bind(&admin, &owned, "carol", "gatehouse-approver-data-owner").await;
    // Carol may edit requests in the other namespace, but owns no data there.
    allow_requests(&admin, &ns, "carol").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    let carol = as_user::<AccessRequest>(kubeconfig, "carol", &ns).await;
    refused(
        &carol,
        "alice-db-read",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        "carol (data owner of another namespace)",
        403,
        &format!(
            "you need verb approve on approvals.gatehouse.dev for role 'data-owner' (resourceName) in namespace '{ns}'"
        ),
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approvals_can_never_be_changed_or_removed_not_even_by_admin() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "final").await;
    bind(&admin, &ns, "bob", "gatehouse-approver-manager").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;
    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    accepted(
        &bob,
        "alice-db-read",
        json!({ APPROVE_MANAGER: "bob" }),
        "bob",
    )
    .await;

    let as_admin = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    for (api, who, change, what) in [
        (
            &bob,
            "bob",
            json!({ APPROVE_MANAGER: "carol" }),
            "was changed",
        ),
        (&bob, "bob", json!({ APPROVE_MANAGER: null }), "was removed"),
        (
            &as_admin,
            "admin",
            json!({ APPROVE_MANAGER: "admin" }),
            "was changed",
        ),
        (
            &as_admin,
            "admin",
            json!({ APPROVE_MANAGER: null }),
            "was removed",
        ),
    ] {
        refused(
            api,
            "alice-db-read",
            change,
            who,
            422,
            &format!(
                "approvals cannot be changed or removed once set: approve.gatehouse.dev/manager {what} (it is 'bob')"
            ),
        )
        .await;
    }
    // Replacing the whole object without the annotation is a removal too.
    let mut stale = as_admin.get("alice-db-read").await.expect("readable");
    stale.metadata.annotations = None;
    let (code, message) = support::rejection(
        as_admin
            .replace("alice-db-read", &PostParams::default(), &stale)
            .await,
    );
    eprintln!(
        "e2e: admin replacing alice-db-read without its annotations refused ({code}): {message}"
    );
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("approvals cannot be changed or removed once set"),
        "{message}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn approval_annotations_are_refused_at_creation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "precreate").await;
    let alice = as_user::<AccessRequest>(kubeconfig, "alice", &ns).await;
    // Wait for enforcement on a plain request first.
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;

    let as_admin = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    for (api, who) in [(&alice, "alice"), (&as_admin, "admin")] {
        let mut preapproved = access_request("preapproved", "alice", &[]);
        preapproved.metadata.annotations = Some(BTreeMap::from([(
            APPROVE_MANAGER.to_string(),
            "bob".to_string(),
        )]));
        let (code, message) =
            support::rejection(api.create(&PostParams::default(), &preapproved).await);
        eprintln!("e2e: {who} creating a pre-approved request refused ({code}): {message}");
        assert_eq!(code, 422, "{message}");
        assert!(
            message.contains(
                "approval annotations cannot be set at creation: remove approve.gatehouse.dev/manager"
            ),
            "{message}"
        );
    }
    let mut prerevoked = agreement("prerevoked", "alice");
    prerevoked.metadata.annotations = Some(BTreeMap::from([(
        "revoke.gatehouse.dev/by".to_string(),
        "alice".to_string(),
    )]));
    let alice_dsa = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    let (code, message) =
        support::rejection(alice_dsa.create(&PostParams::default(), &prerevoked).await);
    eprintln!("e2e: alice creating a revoked agreement refused ({code}): {message}");
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains(
            "approval annotations cannot be set at creation: remove revoke.gatehouse.dev/by"
        ),
        "{message}"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_requester_is_the_creating_user_unless_filing_on_behalf() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "requester").await;
    allow_requests(&admin, &ns, "bob").await;
    bind(&admin, &ns, "erin", "gatehouse-create-on-behalf").await;
    filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;

    let bob = as_user::<AccessRequest>(kubeconfig, "bob", &ns).await;
    let (code, message) = support::rejection(
        bob.create(
            &PostParams::default(),
            &access_request("for-alice", "alice", &[]),
        )
        .await,
    );
    eprintln!("e2e: bob filing as alice refused ({code}): {message}");
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.requester must be your own username 'bob', not 'alice'"),
        "{message}"
    );
    let bob_dsa = as_user::<DataSharingAgreement>(kubeconfig, "bob", &ns).await;
    let (code, message) = support::rejection(
        bob_dsa
            .create(&PostParams::default(), &agreement("for-alice", "alice"))
            .await,
    );
    eprintln!("e2e: bob filing an agreement as alice refused ({code}): {message}");
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("spec.requester must be your own username 'bob', not 'alice'"),
        "{message}"
    );

    // Erin holds create-on-behalf here (a GitOps service account would): she may, saying so.
    let erin = as_user::<AccessRequest>(kubeconfig, "erin", &ns).await;
    let mut for_alice = access_request("for-alice", "alice", &[]);
    for_alice.metadata.annotations = Some(BTreeMap::from([(
        "gatehouse.dev/filed-by".to_string(),
        "erin".to_string(),
    )]));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match erin.create(&PostParams::default(), &for_alice).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("e2e: erin filing on behalf not accepted yet: {e}");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("erin holds create-on-behalf but was refused: {e}"),
        }
    }
    eprintln!("e2e: erin (create-on-behalf) filed for-alice with requester alice: accepted");
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn only_the_requester_or_a_revoker_revokes() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = setup(&admin, "revoke").await;
    allow_requests(&admin, &ns, "mallory").await;
    bind(&admin, &ns, "dave", "gatehouse-revoker").await;
    let alice = filed_by_alice(
        kubeconfig,
        &admin,
        &ns,
        access_request("alice-db-read", "alice", &[]),
    )
    .await;

    let mallory = as_user::<AccessRequest>(kubeconfig, "mallory", &ns).await;
    refused(
        &mallory,
        "alice-db-read",
        json!({ "revoke.gatehouse.dev/by": "mallory" }),
        "mallory",
        403,
        &format!(
            "only the requester ('alice') or a holder of verb revoke on approvals.gatehouse.dev in namespace '{ns}' or cluster-wide may revoke"
        ),
    )
    .await;
    refused(
        &alice,
        "alice-db-read",
        json!({ "revoke.gatehouse.dev/by": "dave" }),
        "alice",
        422,
        "revoke.gatehouse.dev/by must be set to your own username 'alice', not 'dave'",
    )
    .await;
    let revoked = accepted(
        &alice,
        "alice-db-read",
        json!({ "revoke.gatehouse.dev/by": "alice" }),
        "alice (requester)",
    )
    .await;
    assert_eq!(annotations_of(&revoked)["revoke.gatehouse.dev/by"], "alice");
    let as_admin = Api::<AccessRequest>::namespaced(admin.clone(), &ns);
    for (api, who, change, what) in [
        (
            &alice,
            "alice",
            json!({ "revoke.gatehouse.dev/by": null }),
            "was removed",
        ),
        (
            &as_admin,
            "admin",
            json!({ "revoke.gatehouse.dev/by": "admin" }),
            "was changed",
        ),
    ] {
        refused(
            api,
            "alice-db-read",
            change,
            who,
            422,
            &format!(
                "revocations cannot be changed or removed once set: revoke.gatehouse.dev/by {what} (it is 'alice')"
            ),
        )
        .await;
    }

    // A holder of verb revoke ends someone else's agreement.
    let alice_dsa = as_user::<DataSharingAgreement>(kubeconfig, "alice", &ns).await;
    alice_dsa
        .create(&PostParams::default(), &agreement("orders-share", "alice"))
        .await
        .expect("alice files an agreement");
    wait_for_policies::<DataSharingAgreement>(&admin, &ns, "orders-share").await;
    let dave = as_user::<DataSharingAgreement>(kubeconfig, "dave", &ns).await;
    let revoked = accepted(
        &dave,
        "orders-share",
        json!({ "revoke.gatehouse.dev/by": "dave" }),
        "dave (revoker)",
    )
    .await;
    assert_eq!(annotations_of(&revoked)["revoke.gatehouse.dev/by"], "dave");
}
