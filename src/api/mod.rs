//! The Gatehouse API (`gatehouse.dev/v1alpha1`): its kinds, their shared parts, and the
//! names (labels, annotations, condition types) that users, admission policies and tests rely on.

mod access_policy;
mod access_record;
mod access_request;
pub mod common;
pub mod conditions;
mod data_sharing_agreement;
#[cfg(test)]
pub mod fixtures;
mod names;
mod notification;
mod org_chart;
mod phase;
pub mod reference;
mod sharing_policy;
mod vocabulary;

pub use access_policy::*;
pub use access_record::*;
pub use access_request::*;
pub use data_sharing_agreement::*;
pub use notification::*;
pub use org_chart::*;
pub use phase::Phase;
pub use sharing_policy::*;
pub use vocabulary::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use sha2::{Digest, Sha256};

/// The API group of every Gatehouse kind.
pub const GROUP: &str = "gatehouse.dev";

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "gatehouse";

/// Label on everything the operator creates: `<kind>.<namespace>.<name>` of the owning object.
pub const OWNER_LABEL: &str = "gatehouse.dev/owner";

/// Annotation on everything the operator creates: `<namespace>/<name>` of the owning object, so
/// that a change to a created object can be traced back to its owner even when the label is hashed.
pub const OWNER_ANNOTATION: &str = "gatehouse.dev/owner-ref";

/// Annotations on everything the operator provides under an activation window: when it started,
/// when it ends and the operator's seal over both (see `lifecycle::activation`). What is provided
/// carries its own end from the moment it exists, so the status need not be written first, and
/// `kubectl get rolebinding -o yaml` says when access ends.
pub const ACTIVATED_AT_ANNOTATION: &str = "gatehouse.dev/activated-at";
pub const EXPIRES_AT_ANNOTATION: &str = "gatehouse.dev/expires-at";
pub const WINDOW_SEAL_ANNOTATION: &str = "gatehouse.dev/window-seal";
pub const WINDOW_ANNOTATIONS: [&str; 3] = [
    ACTIVATED_AT_ANNOTATION,
    EXPIRES_AT_ANNOTATION,
    WINDOW_SEAL_ANNOTATION,
];

/// The value of [`OWNER_LABEL`] for an object: `<kind>.<namespace>.<name>` in lower case, or, when
/// that exceeds the 63 characters a label value may have, its first 46 characters, `-` and 16 hex
/// digits of its SHA-256, so the value stays unique and readable.
pub fn owner_label_value(kind: &str, namespace: &str, name: &str) -> String {
    let full = format!("{}.{namespace}.{name}", kind.to_lowercase());
    if full.len() <= 63 {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let prefix: String = full.chars().take(46).collect();
    format!("{}-{hex}", prefix.trim_end_matches(['.', '-', '_']))
}

/// Whether `labels` mark an object the operator made for an owner of `kind`: the managed-by
/// label and an [`OWNER_LABEL`] naming that kind (its `<kind>.` prefix survives shortening).
pub fn made_for_kind(labels: &std::collections::BTreeMap<String, String>, kind: &str) -> bool {
    labels.get(MANAGED_BY.0).map(String::as_str) == Some(MANAGED_BY.1)
        && labels.get(OWNER_LABEL).is_some_and(|owner| {
            owner
                .strip_prefix(kind.to_lowercase().as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        })
}

/// The `app.kubernetes.io/managed-by` label on everything the operator creates.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "gatehouse");

/// Annotation key prefix of an approval: `approve.gatehouse.dev/<role>: <approver username>`.
pub const APPROVE_PREFIX: &str = "approve.gatehouse.dev/";
/// Annotation key prefix of a denial: `deny.gatehouse.dev/<role>: <approver username>`.
pub const DENY_PREFIX: &str = "deny.gatehouse.dev/";
/// Annotation prefix of a request for changes: `changes.gatehouse.dev/<role>=<username>`, with
/// the wanted changes in `reason.gatehouse.dev/<role>`; it ends the object in phase
/// `ChangesRequested`.
pub const CHANGES_PREFIX: &str = "changes.gatehouse.dev/";
/// Annotation key prefix of an approver's reason: `reason.gatehouse.dev/<role>: <text>`.
pub const REASON_PREFIX: &str = "reason.gatehouse.dev/";
/// Annotation key prefix of an approver's shorter duration (an agreement's retention), set with
/// their approval: `duration.gatehouse.dev/<role>: 2h`.
pub const DURATION_PREFIX: &str = "duration.gatehouse.dev/";
/// Annotation key prefix of an approver's subset of an AccessRequest's namespaces, set with their
/// approval: `namespaces.gatehouse.dev/<role>: payments,billing`.
pub const NAMESPACES_PREFIX: &str = "namespaces.gatehouse.dev/";
/// Annotation that ends an active grant or share early; its value is the revoking user.
pub const REVOKE_ANNOTATION: &str = "revoke.gatehouse.dev/by";
/// Annotation naming who filed an object on someone else's behalf (set at creation by that user,
/// checked and frozen by admission): the filer may not approve what they filed.
pub const FILED_BY_ANNOTATION: &str = "gatehouse.dev/filed-by";

/// Every Gatehouse CustomResourceDefinition, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        AccessPolicy::crd(),
        AccessRecord::crd(),
        AccessRequest::crd(),
        SharingPolicy::crd(),
        DataSharingAgreement::crd(),
        OrgChart::crd(),
    ]
}

/// Every CRD as one multi-document YAML stream: what `gatehouse crd` prints and `crds/` holds.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_label_is_readable_when_short_and_hashed_when_long() {
        assert_eq!(
            owner_label_value("AccessRequest", "payments", "alice-db-read"),
            "accessrequest.payments.alice-db-read"
        );
        let long = owner_label_value("AccessRequest", "payments", &"x".repeat(80));
        assert!(long.len() <= 63, "{long}");
        assert!(long.starts_with("accessrequest.payments.xxx"), "{long}");
        assert_ne!(
            long,
            owner_label_value("AccessRequest", "payments", &"x".repeat(81)),
            "distinct owners stay distinct"
        );
        let labels = |owner: &str| {
            std::collections::BTreeMap::from([
                (OWNER_LABEL.to_string(), owner.to_string()),
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            ])
        };
        assert!(
            made_for_kind(&labels(&long), "AccessRequest"),
            "the kind survives shortening"
        );
        assert!(!made_for_kind(&labels(&long), "DataSharingAgreement"));
        assert!(!made_for_kind(
            &labels("accessrequestx.a.b"),
            "AccessRequest"
        ));
    }
}

#[cfg(test)]
mod properties {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::properties::{
        config, is_label_value, is_qualified_name, namespace_name, object_name, role,
    };

    proptest! {
        #![proptest_config(config())]

        /// The owner label of any object the API server admits is a label value it accepts, and
        /// keeps naming the owner's kind.
        #[test]
        fn owner_labels_are_valid_label_values(
            kind in prop_oneof![Just("AccessRequest"), Just("DataSharingAgreement")],
            namespace in namespace_name(),
            name in object_name(),
        ) {
            let value = owner_label_value(kind, &namespace, &name);
            prop_assert!(is_label_value(&value), "{:?}", value);
            let labels = BTreeMap::from([
                (OWNER_LABEL.to_string(), value),
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            ]);
            prop_assert!(made_for_kind(&labels, kind));
        }

        /// Every annotation key of the protocol, for any role an AccessPolicy admits, is a key
        /// the API server accepts.
        #[test]
        fn protocol_annotation_keys_are_qualified_names(role in role()) {
            for prefix in [APPROVE_PREFIX, DENY_PREFIX, CHANGES_PREFIX, REASON_PREFIX, DURATION_PREFIX, NAMESPACES_PREFIX] {
                let key = format!("{prefix}{role}");
                prop_assert!(is_qualified_name(&key), "{}", key);
            }
        }

        /// The condition type of a stage, for any role an AccessPolicy admits, is one
        /// `ValidateConditions` accepts (a qualified name, at most 316 characters).
        #[test]
        fn stage_conditions_are_valid_condition_types(role in role()) {
            let condition = conditions::stage_condition(&role);
            prop_assert!(condition.len() <= 316 && is_qualified_name(&condition), "{}", condition);
        }
    }
}
