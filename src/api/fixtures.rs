//! Objects for unit tests: realistic defaults that each test changes where it matters.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ObjectMeta;

use super::common::{ApprovalStage, RoleKind, RoleRef, StageCondition};
use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Namespaces `payments` (team=payments), `orders` (team=orders) and `analytics` (shared-data=allowed).
pub fn namespaces() -> BTreeMap<String, BTreeMap<String, String>> {
    [
        ("payments", labels(&[("team", "payments")])),
        ("orders", labels(&[("team", "orders")])),
        ("analytics", labels(&[("shared-data", "allowed")])),
    ]
    .into_iter()
    .map(|(name, labels)| (name.to_string(), labels))
    .collect()
}

/// The contract's example policy: ClusterRole db-reader in team=payments namespaces, 8h max.
pub fn access_policy(name: &str) -> AccessPolicy {
    AccessPolicy::new(
        name,
        AccessPolicySpec {
            roles: vec![RoleRef {
                kind: RoleKind::ClusterRole,
                name: "db-reader".into(),
            }],
            namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("team", "payments")])),
                ..Default::default()
            }),
            allow_cluster_wide: false,
            max_duration: "8h".into(),
            default_duration: Some("1h".into()),
            justification: Some(JustificationRule {
                min_length: Some(20),
                pattern: Some("[A-Z]+-[0-9]+".into()),
            }),
            approvals: vec![
                ApprovalStage {
                    role: "manager".into(),
                    when: None,
                    approver: None,
                },
                ApprovalStage {
                    role: "data-owner".into(),
                    when: None,
                    approver: None,
                },
                ApprovalStage {
                    role: "security".into(),
                    when: Some(StageCondition::HighRisk),
                    approver: None,
                },
            ],
            pending_timeout: Some("72h".into()),
            max_total_duration: None,
            record_retention: None,
            separation_of_duties: vec![],
            cluster_wide_approvers: vec![],
            subjects: None,
            notifications: vec![],
            notify_expiring_before: None,
        },
    )
}

/// The contract's example request: alice asks for db-reader in payments.
pub fn access_request() -> AccessRequest {
    let mut request = AccessRequest::new(
        "alice-db-read",
        AccessRequestSpec {
            requester: "alice".into(),
            subjects: vec![],
            role: RoleRef {
                kind: RoleKind::ClusterRole,
                name: "db-reader".into(),
            },
            namespaces: vec![],
            cluster_wide: false,
            duration: None,
            justification: "PAY-1234 investigate failed settlement batch".into(),
            policy: None,
            start_at: None,
            extends: None,
            supersedes: None,
        },
    );
    request.metadata = ObjectMeta {
        name: Some("alice-db-read".into()),
        namespace: Some("payments".into()),
        generation: Some(1),
        ..Default::default()
    };
    request
}

/// A policy for every namespace: data owner reviews, shares into shared-data=allowed, 90 days max.
pub fn sharing_policy(name: &str) -> SharingPolicy {
    SharingPolicy::new(
        name,
        SharingPolicySpec {
            namespace_selector: None,
            recipient_namespace_selector: Some(LabelSelector {
                match_labels: Some(labels(&[("shared-data", "allowed")])),
                ..Default::default()
            }),
            reviews: RequiredReviews {
                always: vec!["data-owner".into()],
                ..Default::default()
            },
            allowed_methods: None,
            max_external_classification: None,
            max_retention: "2160h".into(),
            require_agreement: None,
            egress_namespace: Some("gatehouse-egress".into()),
            pending_timeout: None,
            max_total_duration: None,
            record_retention: None,
            cluster_wide_approvers: vec![],
            notifications: vec![],
            notify_expiring_before: None,
        },
    )
}

/// The contract's example agreement: orders shares two objects' keys with analytics by Copy.
pub fn data_sharing_agreement() -> DataSharingAgreement {
    let mut agreement = DataSharingAgreement::new(
        "orders-to-analytics",
        DataSharingAgreementSpec {
            requester: "erin".into(),
            data: vec![
                DataItem {
                    secret: Some("orders-db-readonly".into()),
                    config_map: None,
                    keys: vec!["host".into(), "username".into(), "password".into()],
                },
                DataItem {
                    secret: None,
                    config_map: Some("orders-schema".into()),
                    keys: vec!["schema.sql".into()],
                },
            ],
            recipient: Recipient {
                namespace: Some("analytics".into()),
                service_account: Some("reporting".into()),
                external: None,
            },
            purpose: "Monthly revenue reporting".into(),
            transfer: Transfer {
                method: TransferMethod::Copy,
            },
            retention: "720h".into(),
            agreement: None,
            start_at: None,
            extends: None,
            supersedes: None,
            policy: None,
        },
    );
    agreement.metadata.namespace = Some("orders".into());
    agreement.metadata.generation = Some(1);
    agreement
}

/// Data classified at `level`, personal data or not, resident in `residency`; no reasons.
pub fn classified(
    level: Classification,
    personal_data: bool,
    residency: &[&str],
) -> ClassificationResult {
    ClassificationResult {
        level,
        personal_data,
        residency: residency.iter().map(|r| r.to_string()).collect(),
        reasons: vec![],
    }
}

/// An external recipient, Acme Analytics Ltd, in `country`.
pub fn external_recipient(country: &str) -> Recipient {
    Recipient {
        namespace: None,
        service_account: None,
        external: Some(ExternalRecipient {
            organization: "Acme Analytics Ltd".into(),
            country: country.into(),
            contact: Some("dpo@acme.example".into()),
        }),
    }
}
