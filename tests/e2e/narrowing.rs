//! Approvers narrowing what they approve (`duration.gatehouse.dev/<role>`,
//! `namespaces.gatehouse.dev/<role>`, set with their approval) as real users: the narrowest of all
//! approvals is what is provided, the status shows requested against approved, and admission
//! refuses anything wider, detached from its approval, someone else's, or changed later.

use gatehouse::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support;

const ROLE: &str = "gatehouse-e2e-narrowing-reader";

/// Adds `annotations` as `api`'s user; the API server's message when it refuses.
async fn refused<K>(api: &Api<K>, name: &str, annotations: serde_json::Value) -> String
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let patch = json!({ "metadata": { "annotations": annotations } });
    let (_, message) = support::rejection(
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    );
    message
}

/// alice files `name` in `ns` for ROLE in `namespaces`, for 1h.
async fn file(alice: &Api<AccessRequest>, ns: &str, name: &str, namespaces: &[&str]) {
    let request: AccessRequest = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": name, "namespace": ns },
        "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                  "namespaces": namespaces, "duration": "1h",
                  "justification": "NAR-1 reconcile the ledgers" }
    }))
    .expect("valid request");
    alice
        .create(&PostParams::default(), &request)
        .await
        .unwrap_or_else(|err| panic!("{name} cannot be filed: {err}"));
    support::wait_for_stages(alice, name).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn an_approver_narrows_duration_and_namespaces_and_only_that_is_granted() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "narrow", ROLE).await;
    // A second namespace the policy also covers; bob may approve only in the first.
    let other = format!("{ns}-b");
    support::namespace(&admin, &other, &[("gatehouse-e2e", &ns)]).await;
    support::allow_approval(&admin, &ns, "erin", "security").await;
    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let erin = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "erin").await, &ns);
    file(&alice, &ns, "both", &[&ns, &other]).await;

    // Refused: a narrowing on its own, wider than asked, outside what was asked, or added by an
    // approver of another role.
    let message = refused(
        &alice,
        "both",
        json!({ "duration.gatehouse.dev/manager": "5m" }),
    )
    .await;
    eprintln!("e2e: a narrowing without its approval: {message}");
    assert!(
        message.contains(
            "duration.gatehouse.dev/manager must be added in the same update as approve.gatehouse.dev/manager"
        ),
        "{message}"
    );
    let message = refused(
        &bob,
        "both",
        json!({ "approve.gatehouse.dev/manager": "bob", "duration.gatehouse.dev/manager": "2h" }),
    )
    .await;
    eprintln!("e2e: a longer duration: {message}");
    assert!(
        message.contains(
            "duration.gatehouse.dev/manager=2h is longer than the 1h asked for (spec.duration)"
        ),
        "{message}"
    );
    let message = refused(
        &bob,
        "both",
        json!({ "approve.gatehouse.dev/manager": "bob",
                "namespaces.gatehouse.dev/manager": format!("{ns},kube-system") }),
    )
    .await;
    eprintln!("e2e: a namespace not asked for: {message}");
    assert!(
        message.contains("must be a comma-separated, non-empty subset of the namespaces asked for"),
        "{message}"
    );
    let message = refused(
        &erin,
        "both",
        json!({ "approve.gatehouse.dev/security": "erin", "duration.gatehouse.dev/manager": "5m" }),
    )
    .await;
    eprintln!("e2e: someone else's narrowing: {message}");
    assert!(
        message.contains("nobody narrows an approval already made, or someone else's"),
        "{message}"
    );

    // bob approves only his namespace, for 20 minutes: his right is needed there alone.
    support::annotate(
        &bob,
        "both",
        &[
            ("approve.gatehouse.dev/manager", "bob"),
            ("duration.gatehouse.dev/manager", "20m"),
            ("namespaces.gatehouse.dev/manager", &ns),
        ],
    )
    .await;
    let active = support::wait_until(&alice, "both", "Active", |ar| {
        ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active)
    })
    .await;
    let status = active.status.expect("status");
    let grant = status.grant.expect("grant");
    // Whole seconds: the activation is recorded rounded down, the expiry up.
    let granted = grant.expires_at.0.as_second() - grant.activated_at.0.as_second();
    assert!(
        (20 * 60..=20 * 60 + 1).contains(&granted),
        "the approved 20m, not the 1h asked for: {granted}s"
    );
    let scope = status.scope.expect("scope");
    eprintln!(
        "e2e: scope {}",
        serde_json::to_string(&scope).unwrap_or_default()
    );
    assert_eq!(scope.requested.duration, "1h");
    assert_eq!(scope.requested.namespaces, vec![ns.clone(), other.clone()]);
    assert_eq!(scope.approved.duration, "20m");
    assert_eq!(scope.approved.namespaces, vec![ns.clone()]);
    assert_eq!(scope.narrowed_by[0].user, "bob");
    let binding = format!("gatehouse.{ns}.both");
    assert!(
        Api::<RoleBinding>::namespaced(admin.clone(), &ns)
            .get_opt(&binding)
            .await
            .expect("get")
            .is_some(),
        "bound where approved"
    );
    let elsewhere = Api::<RoleBinding>::namespaced(admin.clone(), &other)
        .list(&Default::default())
        .await
        .expect("list");
    assert!(
        elsewhere.items.is_empty(),
        "nothing in {other}: {:?}",
        elsewhere.items
    );

    // A narrowing is final, and nobody narrows an approval afterwards.
    let message = refused(
        &bob,
        "both",
        json!({ "duration.gatehouse.dev/manager": "30m" }),
    )
    .await;
    assert!(
        message.contains("duration.gatehouse.dev/manager was changed (it is '20m')"),
        "{message}"
    );
    let message = refused(
        &bob,
        "both",
        json!({ "namespaces.gatehouse.dev/manager": null }),
    )
    .await;
    assert!(
        message.contains("namespaces.gatehouse.dev/manager was removed"),
        "{message}"
    );

    // Without narrowing, bob's approval of both namespaces does not count: he may not approve in
    // the second one.
    file(&alice, &ns, "unnarrowed", &[&ns, &other]).await;
    support::annotate(
        &bob,
        "unnarrowed",
        &[("approve.gatehouse.dev/manager", "bob")],
    )
    .await;
    let pending = support::wait_until(&alice, "unnarrowed", "bob's approval ignored", |ar| {
        ar.status
            .as_ref()
            .is_some_and(|s| !s.ignored_annotations.is_empty())
    })
    .await;
    let status = pending.status.expect("status");
    assert_eq!(status.phase, Some(AccessPhase::Pending));
    assert!(
        status.ignored_annotations[0].contains(&format!("in namespace {other}")),
        "{:?}",
        status.ignored_annotations
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_reviewer_shortens_the_retention_of_a_share() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "narrow-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    support::source_secret(&admin, &ns, "orders-db", json!({ "password": "s3cret" })).await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::file_agreement(
        &alice,
        &ns,
        "orders",
        json!({ "data": [{ "secret": "orders-db", "keys": ["password"] }],
                "recipient": { "namespace": recipient }, "purpose": "NAR-2",
                "transfer": { "method": "Copy" }, "retention": "1h" }),
    )
    .await;
    support::wait_for_stages(&alice, "orders").await;
    let message = refused(
        &carol,
        "orders",
        json!({ "approve.gatehouse.dev/data-owner": "carol",
                "namespaces.gatehouse.dev/data-owner": recipient }),
    )
    .await;
    assert!(
        message.contains("a DataSharingAgreement has no namespaces to narrow"),
        "{message}"
    );
    let message = refused(
        &carol,
        "orders",
        json!({ "approve.gatehouse.dev/data-owner": "carol",
                "duration.gatehouse.dev/data-owner": "2h" }),
    )
    .await;
    assert!(
        message.contains("is longer than the 1h asked for (spec.retention)"),
        "{message}"
    );
    support::annotate(
        &carol,
        "orders",
        &[
            ("approve.gatehouse.dev/data-owner", "carol"),
            ("duration.gatehouse.dev/data-owner", "15m"),
        ],
    )
    .await;
    let active = support::wait_until(&alice, "orders", "Active", |a| {
        a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let status = active.status.expect("status");
    let share = status.share.expect("share");
    let retained = share.expires_at.0.as_second() - share.activated_at.0.as_second();
    assert!(
        (15 * 60..=15 * 60 + 1).contains(&retained),
        "the approved 15m retention: {retained}s"
    );
    let scope = status.scope.expect("scope");
    assert_eq!(
        (
            scope.requested.duration.as_str(),
            scope.approved.duration.as_str()
        ),
        ("1h", "15m")
    );
}
