//! Attacks on what the operator does (rather than on what admission refuses), each as a real token
//! user with only the rights a person in that position has: a finalizer that would pin a grant or
//! a copy past its end, and a write storm that would stretch a grant while it activates.

use std::time::Duration;

use gatehouse::api::conditions::find;
use gatehouse::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-db-reader";

fn request(ns: &str, name: &str, duration: &str) -> AccessRequest {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                  "duration": duration, "justification": "SEC-1 attack drill" }
    }))
    .expect("valid AccessRequest")
}

async fn phase(api: &Api<AccessRequest>, name: &str, phase: AccessPhase) -> AccessRequest {
    support::wait_until(api, name, &format!("{phase:?}"), |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(phase)
    })
    .await
}

/// Adds a foreign finalizer to an object as `api`'s user.
async fn pin<K>(api: &Api<K>, name: &str)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({ "metadata": { "finalizers": ["attacker.example/keep"] } });
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|err| panic!("pinning {name}: {err}"));
}

/// The data to share: Secret `orders-db` (keys `host`, `password`) in `ns`.
async fn source(admin: &kube::Client, ns: &str) {
    let source: Secret = serde_json::from_value(json!({
        "metadata": { "name": "orders-db" },
        "stringData": { "host": "db", "password": "p" }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &source)
        .await
        .expect("source");
}

/// alice's agreement `name` to copy `keys` of `orders-db` into `recipient`, under the policy
/// named like `ns` (support::sharing_namespaces).
fn copy_of_source(ns: &str, recipient: &str, name: &str, keys: &[&str]) -> DataSharingAgreement {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice",
                  "data": [{ "secret": "orders-db", "keys": keys }],
                  "recipient": { "namespace": recipient },
                  "purpose": "attack drill", "transfer": { "method": "Copy" },
                  "retention": "1h", "policy": ns }
    }))
    .expect("valid agreement")
}

/// alice files `agreement` and carol approves it as data owner; returns alice's view.
async fn file_approved_by_owner(
    kubeconfig: &std::path::Path,
    agreement: &DataSharingAgreement,
) -> Api<DataSharingAgreement> {
    let ns = agreement.metadata.namespace.clone().unwrap_or_default();
    let name = agreement.metadata.name.clone().unwrap_or_default();
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    alice
        .create(&PostParams::default(), agreement)
        .await
        .expect("alice files");
    support::annotate(
        &carol,
        &name,
        &[("approve.gatehouse.dev/data-owner", "carol")],
    )
    .await;
    alice
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_finalizer_on_a_granted_binding_does_not_keep_access_after_revocation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "pin-binding", ROLE).await;
    // mallory administers the namespace the grant is made in.
    support::namespace_admin(&admin, &ns, "mallory").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "pinned", "10m"))
        .await
        .expect("alice files");
    support::annotate(&bob, "pinned", &[("approve.gatehouse.dev/manager", "bob")]).await;
    let active = phase(&alice, "pinned", AccessPhase::Active).await;
    let binding = active
        .status
        .expect("status")
        .grant
        .expect("grant")
        .bindings[0]
        .name
        .clone();
    assert!(support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));

    let mallory = Api::<RoleBinding>::namespaced(support::client(kubeconfig, "mallory").await, &ns);
    pin(&mallory, &binding).await;
    support::annotate(&alice, "pinned", &[("revoke.gatehouse.dev/by", "alice")]).await;
    phase(&alice, "pinned", AccessPhase::Revoked).await;
    support::wait_gone(&mallory, &binding).await;
    assert!(
        !support::can_i(kubeconfig, "alice", "get", "configmaps", &ns),
        "the pinned binding went with its finalizer stripped"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_finalizer_on_a_copied_secret_does_not_keep_the_data_after_revocation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "pin-copy",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "2160h" }),
    )
    .await;
    source(&admin, &ns).await;
    // mallory administers the recipient namespace.
    support::namespace_admin(&admin, &recipient, "mallory").await;
    let agreement = copy_of_source(&ns, &recipient, "pinned-copy", &["host", "password"]);
    let alice = file_approved_by_owner(kubeconfig, &agreement).await;
    let active = support::wait_until(&alice, "pinned-copy", "Active", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
            && dsa
                .status
                .as_ref()
                .and_then(|s| s.share.as_ref())
                .is_some_and(|s| !s.objects.is_empty())
    })
    .await;
    let copy = active.status.expect("status").share.expect("share").objects[0]
        .name
        .clone();
    let secrets =
        Api::<Secret>::namespaced(support::client(kubeconfig, "mallory").await, &recipient);
    pin(&secrets, &copy).await;
    support::annotate(
        &alice,
        "pinned-copy",
        &[("revoke.gatehouse.dev/by", "alice")],
    )
    .await;
    support::wait_until(&alice, "pinned-copy", "Revoked", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Revoked)
    })
    .await;
    support::wait_gone(&secrets, &copy).await;
    let left = secrets.list(&Default::default()).await.expect("list");
    assert!(
        left.items
            .iter()
            .all(|s| s.metadata.name.as_deref() != Some(copy.as_str())),
        "no data in the recipient namespace"
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_write_storm_while_a_request_activates_never_stretches_the_grant() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "storm", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "stormy", "6s"))
        .await
        .expect("alice files");
    // alice rewrites her own request as fast as she can while it activates and runs.
    let storm = {
        let alice = alice.clone();
        // Six seconds of it: longer than the grant, and bounded however slow the machine is (a
        // storm may delay activation until it ends; it must never stretch the grant).
        let until = std::time::Instant::now() + Duration::from_secs(6);
        tokio::spawn(async move {
            for n in (0u32..).take_while(|_| std::time::Instant::now() < until) {
                let patch =
                    json!({ "metadata": { "annotations": { "storm.example/n": n.to_string() } } });
                let _ = alice
                    .patch("stormy", &PatchParams::default(), &Patch::Merge(&patch))
                    .await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        })
    };
    support::annotate(&bob, "stormy", &[("approve.gatehouse.dev/manager", "bob")]).await;
    let active = phase(&alice, "stormy", AccessPhase::Active).await;
    let grant = active.status.expect("status").grant.expect("grant");
    // Whole seconds: the start rounds down and the end up, so never shorter, at most 1 s longer.
    let length = grant.expires_at.0.as_second() - grant.activated_at.0.as_second();
    assert!(
        (6..=7).contains(&length),
        "the window is the requested duration: {grant:?}"
    );
    assert!(grant.seal.is_some(), "the operator sealed its window");
    let expired = phase(&alice, "stormy", AccessPhase::Expired).await;
    let after = Timestamp::now();
    storm.abort();
    let status = expired.status.expect("status");
    assert_eq!(
        status.grant.as_ref().map(|g| &g.expires_at),
        Some(&grant.expires_at),
        "the expiry never moved"
    );
    assert!(
        after.as_second() - grant.expires_at.0.as_second() < 20,
        "expired near its recorded end, not later ({after} vs {})",
        grant.expires_at.0
    );
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
    assert!(
        find(&status.conditions, "StatusTampered").is_none(),
        "the operator's own writes verify"
    );
}

/// A namespace admin holds every verb in their namespace, `approve` included: with a
/// ServiceAccount of their own they could review their own team's share as `security`. A role the
/// SharingPolicy lists in `clusterWideApprovers` counts only from a cluster-wide holder.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_namespace_admin_cannot_review_as_a_cluster_wide_role_through_a_service_account() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "own-review",
        json!({ "reviews": { "always": ["data-owner", "security"] },
                "clusterWideApprovers": ["security"], "maxRetention": "2160h" }),
    )
    .await;
    source(&admin, &ns).await;
    support::namespace_admin(&admin, &ns, "mallory").await;
    let mallory = support::client(kubeconfig, "mallory").await;
    support::create_service_account(&mallory, &ns, "reviewer").await;
    let rights: Role = serde_json::from_value(json!({
        "metadata": { "name": "self-review" },
        "rules": [{ "apiGroups": ["gatehouse.dev"], "resources": ["approvals"],
                    "resourceNames": ["security"], "verbs": ["approve"] },
                  { "apiGroups": ["gatehouse.dev"], "resources": ["datasharingagreements"],
                    "verbs": ["get", "patch"] }]
    }))
    .expect("valid Role");
    Api::<Role>::namespaced(mallory.clone(), &ns)
        .create(&PostParams::default(), &rights)
        .await
        .expect("mallory may grant what she holds");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "self-review" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "self-review" },
        "subjects": [{ "kind": "ServiceAccount", "name": "reviewer", "namespace": ns }]
    }))
    .expect("valid RoleBinding");
    Api::<RoleBinding>::namespaced(mallory.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    let reviewer_user = format!("system:serviceaccount:{ns}:reviewer");
    let reviewer = Api::<DataSharingAgreement>::namespaced(
        support::service_account_client(kubeconfig, &mallory, &ns, "reviewer").await,
        &ns,
    );

    let agreement = copy_of_source(&ns, &recipient, "self-reviewed", &["password"]);
    let alice = file_approved_by_owner(kubeconfig, &agreement).await;
    // Admission lets it through: the ServiceAccount holds approve in the namespace.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let patch = json!({ "metadata": { "annotations": {
            "approve.gatehouse.dev/security": reviewer_user } } });
        match reviewer
            .patch(
                "self-reviewed",
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => break,
            Err(err) if std::time::Instant::now() < deadline => {
                eprintln!("e2e: waiting for the reviewer's rights: {err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("the reviewer's approval was refused: {err}"),
        }
    }
    let ignored = support::wait_until(&alice, "self-reviewed", "the review set aside", |dsa| {
        dsa.status.as_ref().is_some_and(|s| {
            s.ignored_annotations
                .iter()
                .any(|m| m.contains("approve.gatehouse.dev/security") && m.contains("cluster-wide"))
        })
    })
    .await;
    let status = ignored.status.expect("status");
    assert_eq!(status.phase, Some(SharingPhase::Pending), "{status:?}");
    assert_eq!(status.waiting_for.as_deref(), Some("security"));
    let copies = Api::<Secret>::namespaced(admin.clone(), &recipient)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(copies.items.is_empty(), "nothing shared");

    // dave, security reviewer cluster-wide, counts.
    let dave_binding: k8s_openapi::api::rbac::v1::ClusterRoleBinding =
        serde_json::from_value(json!({
            "metadata": { "name": format!("{ns}-dave-security") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "gatehouse-approver-security" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "dave" }]
        }))
        .expect("valid ClusterRoleBinding");
    Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &dave_binding)
        .await
        .expect("dave's binding");
    // The SA's review stays (decisions are final); a second security review by dave is not
    // possible on the same key, so file afresh and let dave review it.
    file_approved_by_owner(
        kubeconfig,
        &copy_of_source(&ns, &recipient, "reviewed", &["password"]),
    )
    .await;
    let dave =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "dave").await, &ns);
    // Admission admits dave's review once his new ClusterRoleBinding is in the authorizer's cache.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let review =
        json!({ "metadata": { "annotations": { "approve.gatehouse.dev/security": "dave" } } });
    while let Err(err) = dave
        .patch("reviewed", &PatchParams::default(), &Patch::Merge(&review))
        .await
    {
        assert!(
            std::time::Instant::now() < deadline,
            "dave's review was refused: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    support::wait_until(&alice, "reviewed", "Active", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let _ = Api::<k8s_openapi::api::rbac::v1::ClusterRoleBinding>::all(admin.clone())
        .delete(&format!("{ns}-dave-security"), &Default::default())
        .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_binding_stripped_of_its_owner_label_is_still_removed_at_revocation() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "unlabel", ROLE).await;
    support::namespace_admin(&admin, &ns, "mallory").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "unlabelled", "10m"))
        .await
        .expect("alice files");
    support::annotate(
        &bob,
        "unlabelled",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await;
    let active = phase(&alice, "unlabelled", AccessPhase::Active).await;
    let binding = active
        .status
        .expect("status")
        .grant
        .expect("grant")
        .bindings[0]
        .name
        .clone();
    let mallory = Api::<RoleBinding>::namespaced(support::client(kubeconfig, "mallory").await, &ns);
    // Labels and the owner annotation gone: the binding no longer looks like Gatehouse's.
    let strip = json!({ "metadata": {
        "labels": { "gatehouse.dev/owner": null, "app.kubernetes.io/managed-by": null },
        "annotations": { "gatehouse.dev/owner-ref": null } } });
    mallory
        .patch(&binding, &PatchParams::default(), &Patch::Merge(&strip))
        .await
        .expect("mallory strips the labels");
    pin(&mallory, &binding).await;
    support::annotate(
        &alice,
        "unlabelled",
        &[("revoke.gatehouse.dev/by", "alice")],
    )
    .await;
    phase(&alice, "unlabelled", AccessPhase::Revoked).await;
    support::wait_gone(&mallory, &binding).await;
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
}

/// The request's own finalizer does the removal even when another keeps the object; the race the
/// by-name removal also covers (deleted while its bindings are not yet in the operator's cache)
/// is not reproduced here, the stripped-label test proves removal by name.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn deleting_a_request_held_by_a_foreign_finalizer_removes_its_access() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "held", ROLE).await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "held", "10m"))
        .await
        .expect("alice files");
    // alice may withdraw her requests by deleting them, as many teams allow.
    let withdraw: Role = serde_json::from_value(json!({
        "metadata": { "name": "withdraw" },
        "rules": [{ "apiGroups": ["gatehouse.dev"], "resources": ["accessrequests"], "verbs": ["delete"] }]
    }))
    .expect("valid Role");
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &withdraw)
        .await
        .expect("Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": "withdraw" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "withdraw" },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice" }]
    }))
    .expect("valid RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding");
    // alice holds her own request with a finalizer, then deletes it once it is approved.
    let hold = json!({ "metadata": { "finalizers": ["attacker.example/keep", "gatehouse.dev/revoke-access"] } });
    support::wait_until(&alice, "held", "the operator's finalizer", |ar| {
        ar.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|f| f == "gatehouse.dev/revoke-access"))
    })
    .await;
    alice
        .patch("held", &PatchParams::default(), &Patch::Merge(&hold))
        .await
        .expect("alice adds a finalizer to her own request");
    support::annotate(&bob, "held", &[("approve.gatehouse.dev/manager", "bob")]).await;
    phase(&alice, "held", AccessPhase::Active).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while let Err(err) = alice.delete("held", &Default::default()).await {
        assert!(
            std::time::Instant::now() < deadline,
            "alice may not delete her request: {err}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while support::can_i(kubeconfig, "alice", "get", "configmaps", &ns) {
        assert!(
            std::time::Instant::now() < deadline,
            "access outlived its deleted request"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let left = Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .list(&kube::api::ListParams::default().labels("gatehouse.dev/owner"))
        .await
        .expect("list");
    assert!(left.items.is_empty(), "no binding left: {:?}", left.items);
    let held = alice
        .get("held")
        .await
        .expect("still held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    // Let it go, so that nothing of the test lingers.
    let release = json!({ "metadata": { "finalizers": null } });
    let _ = alice
        .patch("held", &PatchParams::default(), &Patch::Merge(&release))
        .await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn one_person_holding_two_approver_roles_passes_only_one_stage() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "one-person", ROLE).await;
    // The namespace's policy asks for a manager and then a data owner; bob holds both roles.
    let stages =
        json!({ "spec": { "approvals": [{ "role": "manager" }, { "role": "data-owner" }] } });
    Api::<gatehouse::api::AccessPolicy>::all(admin.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&stages))
        .await
        .expect("two stages");
    support::allow_approval(&admin, &ns, "bob", "data-owner").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    alice
        .create(&PostParams::default(), &request(&ns, "two-hats", "10m"))
        .await
        .expect("alice files");
    support::wait_until(&alice, "two-hats", "both stages listed", |ar| {
        ar.status
            .as_ref()
            .is_some_and(|s| s.required_approvals == ["manager", "data-owner"])
    })
    .await;
    support::annotate(
        &bob,
        "two-hats",
        &[
            ("approve.gatehouse.dev/manager", "bob"),
            ("approve.gatehouse.dev/data-owner", "bob"),
        ],
    )
    .await;
    let seen = support::wait_until(
        &alice,
        "two-hats",
        "bob's second approval set aside",
        |ar| {
            ar.status.as_ref().is_some_and(|s| {
                s.ignored_annotations
                    .iter()
                    .any(|m| m.contains("every stage needs a different person"))
            })
        },
    )
    .await;
    let status = seen.status.expect("status");
    assert_eq!(status.phase, Some(AccessPhase::Pending));
    assert_eq!(status.waiting_for.as_deref(), Some("data-owner"));
    assert!(!support::can_i(
        kubeconfig,
        "alice",
        "get",
        "configmaps",
        &ns
    ));
}

/// An approver who can mint a ServiceAccount subject's tokens would approve access for
/// themselves: that approval does not count.
#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn whoever_can_act_as_a_service_account_subject_cannot_approve_its_access() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "sa-owner", ROLE).await;
    // mallory administers the ServiceAccount's namespace and is also a manager approver here.
    let ci = support::unique("sa-owner-ci");
    support::namespace(&admin, &ci, &[]).await;
    support::namespace_admin(&admin, &ci, "mallory").await;
    support::create_service_account(&admin, &ci, "deployer").await;
    support::allow_approval(&admin, &ns, "mallory", "manager").await;
    let subjects =
        json!({ "spec": { "subjects": { "serviceAccounts": [format!("{ci}/deployer")] } } });
    Api::<gatehouse::api::AccessPolicy>::all(admin.clone())
        .patch(&ns, &PatchParams::default(), &Patch::Merge(&subjects))
        .await
        .expect("the policy lists the ServiceAccount");
    let mut wanted = request(&ns, "for-deployer", "10m");
    wanted.spec.subjects = vec![gatehouse::api::common::Subject {
        kind: gatehouse::api::common::SubjectKind::ServiceAccount,
        name: "deployer".into(),
        namespace: Some(ci.clone()),
    }];
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    alice
        .create(&PostParams::default(), &wanted)
        .await
        .expect("alice files");
    let mallory =
        Api::<AccessRequest>::namespaced(support::client(kubeconfig, "mallory").await, &ns);
    support::annotate(
        &mallory,
        "for-deployer",
        &[("approve.gatehouse.dev/manager", "mallory")],
    )
    .await;
    let seen = support::wait_until(
        &alice,
        "for-deployer",
        "mallory's approval set aside",
        |ar| {
            ar.status.as_ref().is_some_and(|s| {
                s.ignored_annotations
                    .iter()
                    .any(|m| m.contains("controls tokens of ServiceAccount"))
            })
        },
    )
    .await;
    let status = seen.status.expect("status");
    assert_eq!(status.phase, Some(AccessPhase::Pending), "{status:?}");
    let deployer = format!("system:serviceaccount:{ci}:deployer");
    assert!(!support::can_i(
        kubeconfig,
        &deployer,
        "get",
        "configmaps",
        &ns
    ));
}
