//! Recipient consent (SharingPolicy `reviews.recipient`) as real token users: a share into a
//! namespace executes only once an approver holding the right in the **recipient** namespace
//! agreed; the right in the data owner's namespace does not count, at admission (for approve,
//! deny and changes alike) nor at the operator (for an approval admitted before the operator
//! listed the role in `status.recipientApprovals`, when admission could only check it in the
//! agreement's namespace).

use std::time::{Duration, Instant};

use gatehouse::api::{DataSharingAgreement, SharingPhase, SharingPolicy};
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

use crate::support;

const CONSENT: &str = "recipient-owner";

/// A Copy of two keys of Secret `orders-db` into `recipient`.
fn copy_into(recipient: &str) -> serde_json::Value {
    json!({
        "data": [{ "secret": "orders-db", "keys": ["host", "password"] }],
        "recipient": { "namespace": recipient },
        "purpose": "Monthly revenue reporting",
        "transfer": { "method": "Copy" },
        "retention": "1h"
    })
}

/// Lets `user` read and annotate agreements in `ns`, without any approver right there: what the
/// recipient team's approver needs in the data owner's namespace.
async fn allow_annotating(admin: &Client, ns: &str, user: &str) {
    let name = format!("annotate-agreements-{user}");
    let role: Role = serde_json::from_value(json!({
        "metadata": { "name": name },
        "rules": [{ "apiGroups": ["gatehouse.dev"], "resources": ["datasharingagreements"],
                    "verbs": ["get", "list", "watch", "patch"] }]
    }))
    .expect("valid Role");
    Api::<Role>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("Role");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": { "name": name },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }]
    }))
    .expect("valid RoleBinding");
    Api::<RoleBinding>::namespaced(admin.clone(), ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("RoleBinding");
}

/// Adds `annotations` as `api`'s user, retrying while the API server refuses (new RBAC reaches
/// the authorizer's cache within moments); panics after 30 s with the last refusal.
async fn annotate_once_allowed(
    api: &Api<DataSharingAgreement>,
    name: &str,
    annotations: serde_json::Value,
) {
    let patch = json!({ "metadata": { "annotations": annotations } });
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        assert!(Instant::now() < deadline, "{annotations} refused: {err}");
        eprintln!("e2e: waiting for the approver's rights: {err}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The API server's refusal of `annotations` as `api`'s user.
async fn refused(
    api: &Api<DataSharingAgreement>,
    name: &str,
    annotations: serde_json::Value,
) -> (u16, String) {
    let patch = json!({ "metadata": { "annotations": annotations } });
    support::rejection(
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await,
    )
}

/// Whether the authorizer lets `user` approve as the consent role in `ns` (SubjectAccessReview).
async fn may_consent(admin: &Client, user: &str, ns: &str) -> bool {
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": { "user": user, "resourceAttributes": {
            "namespace": ns, "verb": "approve", "group": "gatehouse.dev",
            "resource": "approvals", "name": CONSENT } }
    }))
    .expect("valid SubjectAccessReview");
    Api::<SubjectAccessReview>::all(admin.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("the authorizer answers")
        .status
        .is_some_and(|s| s.allowed)
}

async fn copies_in(admin: &Client, ns: &str) -> Vec<String> {
    Api::<Secret>::namespaced(admin.clone(), ns)
        .list(&ListParams::default().labels("gatehouse.dev/owner"))
        .await
        .expect("list copies")
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_share_executes_only_after_the_recipient_team_consents_in_its_namespace() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "consent",
        json!({ "reviews": { "always": ["data-owner"], "recipient": [CONSENT] },
                "maxRetention": "2160h" }),
    )
    .await;
    support::source_secret(
        &admin,
        &ns,
        "orders-db",
        json!({ "host": "db", "password": "p", "admin-password": "never" }),
    )
    .await;
    // bob holds the consent role, but in the data owner's namespace only.
    support::allow_approval(&admin, &ns, "bob", CONSENT).await;
    // dave administers the recipient namespace (every verb there, approve and reading its Secrets
    // included: the receiving team's own say) and may annotate agreements in the owner's.
    support::namespace_admin(&admin, &recipient, "dave").await;
    allow_annotating(&admin, &ns, "dave").await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    let bob =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let dave =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "dave").await, &ns);

    support::file_agreement(&alice, &ns, "consented", copy_into(&recipient)).await;
    let listed = support::wait_for_stages(&alice, "consented").await;
    let status = listed.status.expect("status");
    assert_eq!(status.required_approvals, ["data-owner", CONSENT]);
    assert_eq!(status.recipient_approvals, [CONSENT]);

    annotate_once_allowed(
        &carol,
        "consented",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
    )
    .await;
    let owner_approved = support::wait_until(&alice, "consented", "waiting for consent", |dsa| {
        dsa.status
            .as_ref()
            .is_some_and(|s| s.waiting_for.as_deref() == Some(CONSENT))
    })
    .await;
    assert_eq!(
        owner_approved.status.and_then(|s| s.phase),
        Some(SharingPhase::Pending),
        "the data owner's approval alone shares nothing"
    );
    assert!(copies_in(&admin, &recipient).await.is_empty());

    // bob's right in the data owner's namespace (in force: the authorizer answers yes there) does
    // not make him the recipient's voice: not to approve, deny or ask for changes.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !may_consent(&admin, "bob", &ns).await {
        assert!(Instant::now() < deadline, "bob's right never took effect");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!may_consent(&admin, "bob", &recipient).await);
    for key in ["approve", "deny", "changes"] {
        let (code, message) = refused(
            &bob,
            "consented",
            json!({ format!("{key}.gatehouse.dev/{CONSENT}"): "bob" }),
        )
        .await;
        eprintln!("e2e: bob's {key} as {CONSENT} refused ({code}): {message}");
        assert_eq!(code, 403, "{message}");
        assert!(
            message.contains(&format!(
                "role '{CONSENT}' (resourceName) in namespace '{recipient}' or cluster-wide"
            )) && message.contains("is the recipient's consent")
                && message.contains(&format!(
                    "ask the admins of namespace '{recipient}' for a RoleBinding there"
                ))
                && message.contains(&format!("the right in namespace '{ns}' does not count")),
            "{message}"
        );
    }

    annotate_once_allowed(
        &dave,
        "consented",
        json!({ format!("approve.gatehouse.dev/{CONSENT}"): "dave",
                format!("reason.gatehouse.dev/{CONSENT}"): "analytics expects it" }),
    )
    .await;
    let active = support::wait_until(&alice, "consented", "Active", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Active)
    })
    .await;
    let status = active.status.expect("status");
    assert!(status.ignored_annotations.is_empty(), "{status:?}");
    assert!(
        status
            .approvals
            .iter()
            .any(|a| a.role == CONSENT && a.user == "dave"),
        "{status:?}"
    );
    assert_eq!(
        copies_in(&admin, &recipient).await,
        [format!("{ns}.consented.orders-db")]
    );

    // The recipient team may also decline: asking for changes ends a second agreement.
    support::file_agreement(&alice, &ns, "declined", copy_into(&recipient)).await;
    support::wait_for_stages(&alice, "declined").await;
    annotate_once_allowed(
        &dave,
        "declined",
        json!({ format!("changes.gatehouse.dev/{CONSENT}"): "dave",
                format!("reason.gatehouse.dev/{CONSENT}"): "only the host, please" }),
    )
    .await;
    let declined = support::wait_until(&alice, "declined", "ChangesRequested", |dsa| {
        dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::ChangesRequested)
    })
    .await;
    assert!(
        declined
            .status
            .expect("status")
            .ignored_annotations
            .is_empty()
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_consent_admitted_before_the_operator_listed_it_needs_the_right_in_the_recipient_namespace()
 {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "early-consent",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "2160h" }),
    )
    .await;
    support::source_secret(
        &admin,
        &ns,
        "orders-db",
        json!({ "host": "db", "password": "p" }),
    )
    .await;
    // mallory holds the consent role in the data owner's namespace only.
    support::allow_approval(&admin, &ns, "mallory", CONSENT).await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let mallory =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "mallory").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    support::file_agreement(&alice, &ns, "pushed", copy_into(&recipient)).await;
    support::wait_for_stages(&alice, "pushed").await;

    // No consent is required yet, so the status lists none and admission checks mallory's right
    // where she holds it: the approval is admitted, as if admission had been bypassed.
    annotate_once_allowed(
        &mallory,
        "pushed",
        json!({ format!("approve.gatehouse.dev/{CONSENT}"): "mallory" }),
    )
    .await;
    // Then the policy asks for the recipient's consent.
    Api::<SharingPolicy>::all(admin.clone())
        .patch(
            &ns,
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "reviews": { "recipient": [CONSENT] } } })),
        )
        .await
        .expect("the policy asks for consent");
    let set_aside = support::wait_until(&alice, "pushed", "mallory's consent set aside", |dsa| {
        dsa.status.as_ref().is_some_and(|s| {
            s.recipient_approvals == [CONSENT]
                && s.ignored_annotations.iter().any(|m| {
                    m.contains(&format!(
                        "approve.gatehouse.dev/{CONSENT} by mallory does not count"
                    )) && m.contains(&format!("in namespace {recipient}, the recipient's"))
                })
        })
    })
    .await;
    eprintln!(
        "e2e: {:?}",
        set_aside.status.as_ref().map(|s| &s.ignored_annotations)
    );

    annotate_once_allowed(
        &carol,
        "pushed",
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
    )
    .await;
    let waiting = support::wait_until(&alice, "pushed", "the owner's review recorded", |dsa| {
        dsa.status.as_ref().is_some_and(|s| {
            s.approvals
                .iter()
                .any(|a| a.role == "data-owner" && a.user == "carol")
        })
    })
    .await;
    let status = waiting.status.expect("status");
    assert_eq!(status.phase, Some(SharingPhase::Pending), "{status:?}");
    assert_eq!(status.waiting_for.as_deref(), Some(CONSENT));
    // The operator has acted on the same status: nothing was shared then, nor since.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(copies_in(&admin, &recipient).await.is_empty());
    assert_eq!(
        alice
            .get("pushed")
            .await
            .expect("agreement")
            .status
            .and_then(|s| s.phase),
        Some(SharingPhase::Pending)
    );
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_request_for_changes_counts_only_from_an_approver_the_operator_verified() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "verified-changes",
        json!({ "reviews": { "always": ["data-owner", "security"] },
                "clusterWideApprovers": ["security"], "maxRetention": "2160h" }),
    )
    .await;
    support::source_secret(
        &admin,
        &ns,
        "orders-db",
        json!({ "host": "db", "password": "p" }),
    )
    .await;
    // erin holds security in this namespace only: admission admits her decision, the operator
    // (security counts only cluster-wide) must not.
    support::allow_approval(&admin, &ns, "erin", "security").await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let erin =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "erin").await, &ns);
    support::file_agreement(&alice, &ns, "vetoed", copy_into(&recipient)).await;
    support::wait_for_stages(&alice, "vetoed").await;
    annotate_once_allowed(
        &erin,
        "vetoed",
        json!({ "changes.gatehouse.dev/security": "erin" }),
    )
    .await;
    let set_aside = support::wait_until(&alice, "vetoed", "erin's request set aside", |dsa| {
        dsa.status.as_ref().is_some_and(|s| {
            s.ignored_annotations.iter().any(|m| {
                m.contains("changes.gatehouse.dev/security by erin does not count")
                    && m.contains("cluster-wide")
            })
        })
    })
    .await;
    let status = set_aside.status.expect("status");
    assert_eq!(status.phase, Some(SharingPhase::Pending), "{status:?}");
    assert!(status.approvals.is_empty(), "{status:?}");
}
