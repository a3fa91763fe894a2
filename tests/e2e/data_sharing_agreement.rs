use gatehouse::api::conditions::{ACCEPTED, find, reason};
use gatehouse::api::{DataSharingAgreement, SharingPhase, SharingPolicy};
use kube::Api;
use kube::api::PostParams;
use serde_json::{Value, json};

use crate::{cluster, support};

/// Names its policy (`ns`) so that other SharingPolicies on the cluster never make it ambiguous.
fn agreement(ns: &str, recipient: Value) -> DataSharingAgreement {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "DataSharingAgreement",
        "metadata": { "name": "orders-to-analytics", "namespace": ns },
        "spec": {
            "requester": "alice",
            "data": [
                { "secret": "orders-db-readonly", "keys": ["host", "username", "password"] },
                { "configMap": "orders-schema", "keys": ["schema.sql"] }
            ],
            "recipient": recipient,
            "purpose": "Monthly revenue reporting",
            "transfer": { "method": "Copy" },
            "retention": "720h",
            "policy": ns
        }
    }))
    .expect("valid DataSharingAgreement")
}

#[tokio::test]
async fn an_agreement_is_accepted_under_its_sharing_policy() {
    let kubeconfig = cluster!();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique("sharing");
    let recipient = support::unique("analytics");
    support::namespace(&admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    support::namespace(&admin, &recipient, &[("gatehouse-e2e-recipient", &ns)]).await;
    support::allow_requests(&admin, &ns, "alice").await;
    let policy: SharingPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "SharingPolicy",
        "metadata": { "name": ns },
        "spec": {
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
            "recipientNamespaceSelector": { "matchLabels": { "gatehouse-e2e-recipient": ns } },
            "reviews": { "always": ["data-owner"] },
            "maxRetention": "2160h"
        }
    }))
    .expect("valid SharingPolicy");
    Api::<SharingPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");

    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let to_namespace = json!({ "namespace": recipient, "serviceAccount": "reporting" });
    alice
        .create(&PostParams::default(), &agreement(&ns, to_namespace))
        .await
        .expect("alice files the agreement");

    let seen = support::wait_until(&alice, "orders-to-analytics", "Accepted=True", |dsa| {
        dsa.status
            .as_ref()
            .and_then(|s| find(&s.conditions, ACCEPTED))
            .is_some_and(|c| c.status == "True")
    })
    .await;
    let status = seen.status.expect("status");
    assert_eq!(status.phase, Some(SharingPhase::Pending));
    assert_eq!(status.recipient, Some(format!("{recipient}/reporting")));
    assert_eq!(
        find(&status.conditions, ACCEPTED).map(|c| c.reason.as_str()),
        Some(reason::VALID)
    );
}

#[tokio::test]
async fn the_api_server_refuses_a_recipient_that_is_both_namespace_and_external() {
    let kubeconfig = cluster!();
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique("recipient");
    support::namespace(&admin, &ns, &[]).await;
    support::allow_requests(&admin, &ns, "alice").await;
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);

    let both = json!({ "namespace": "analytics", "external": { "organization": "Acme", "country": "US" } });
    let (code, message) = support::rejection(
        alice
            .create(&PostParams::default(), &agreement(&ns, both))
            .await,
    );
    eprintln!("e2e: recipient refused ({code}): {message}");
    assert_eq!(code, 422);
    assert!(
        message.contains("set exactly one of recipient.namespace or recipient.external"),
        "{message}"
    );
}
