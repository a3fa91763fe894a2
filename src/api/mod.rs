//! The Gatehouse API (`gatehouse.dev/v1alpha1`): the four kinds, their shared parts, and the
//! names (labels, annotations, condition types) that users, admission policies and tests rely on.

mod access_policy;
mod access_request;
pub mod common;
pub mod conditions;
mod data_sharing_agreement;
#[cfg(test)]
pub mod fixtures;
mod sharing_policy;

pub use access_policy::*;
pub use access_request::*;
pub use data_sharing_agreement::*;
pub use sharing_policy::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The API group of every Gatehouse kind.
pub const GROUP: &str = "gatehouse.dev";

/// Field manager for every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "gatehouse";

/// Label on everything the operator creates: `<kind>.<namespace>.<name>` of the owning object.
pub const OWNER_LABEL: &str = "gatehouse.dev/owner";

/// Annotation key prefix of an approval: `approve.gatehouse.dev/<role>: <approver username>`.
pub const APPROVE_PREFIX: &str = "approve.gatehouse.dev/";
/// Annotation key prefix of a denial: `deny.gatehouse.dev/<role>: <approver username>`.
pub const DENY_PREFIX: &str = "deny.gatehouse.dev/";
/// Annotation key prefix of an approver's reason: `reason.gatehouse.dev/<role>: <text>`.
pub const REASON_PREFIX: &str = "reason.gatehouse.dev/";
/// Annotation that ends an active grant or share early; its value is the revoking user.
pub const REVOKE_ANNOTATION: &str = "revoke.gatehouse.dev/by";

/// Every Gatehouse CustomResourceDefinition, in a stable order.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        AccessPolicy::crd(),
        AccessRequest::crd(),
        SharingPolicy::crd(),
        DataSharingAgreement::crd(),
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
