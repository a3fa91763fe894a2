use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::named_enum;
use super::vocabulary::{Classification, TransferMethod};

/// Which reviews a data share needs, what may be shared how, and for how long.
/// Cluster-scoped: privacy and security teams own sharing policies.
// Each `printcolumn(...)` repeats the same keys, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "SharingPolicy",
    shortname = "spol",
    category = "gatehouse",
    doc = "Rules for DataSharingAgreements: required reviews, allowed methods, retention and recipients.",
    printcolumn(
        name = "Max Retention",
        type_ = "string",
        json_path = ".spec.maxRetention"
    ),
    printcolumn(
        name = "Agreement",
        type_ = "string",
        json_path = ".spec.requireAgreement"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SharingPolicySpec {
    /// Data owner namespaces this policy governs (where agreements are filed). Unset: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespaces data may be shared into. Unset: no namespace (external recipients only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_namespace_selector: Option<LabelSelector>,
    /// Review roles required, by what the data is and where it goes.
    pub reviews: RequiredReviews,
    /// Transfer methods allowed per classification. A classification not listed allows every
    /// method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_methods: Option<MethodsByClassification>,
    /// Highest classification that may go to an external recipient. Unset: `confidential`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_external_classification: Option<Classification>,
    /// Longest `retention` an agreement may ask for, e.g. `2160h`.
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub max_retention: String,
    /// When `spec.agreement.reference` (a signed agreement) must exist before anything executes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_agreement: Option<AgreementRequirement>,
    /// Namespace where `Export` shares are materialised for an egress tool to pick up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub egress_namespace: Option<String>,
    /// The longest uninterrupted share a chain of extensions (`spec.extends`) may give, from the
    /// first execution to the last retention end, e.g. `720h`. Unset: each extension is capped
    /// only by `maxRetention`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub max_total_duration: Option<String>,
    /// An agreement not fully reviewed this long after creation ends as `TimedOut`. Default `168h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub pending_timeout: Option<String>,
    /// How long the AccessRecord of a agreement this policy governed is kept after it ended, when
    /// longer than the operator's `--record-retention` (default 400 days); never shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub record_retention: Option<String>,
    /// Approver roles whose decisions count only from holders of the right cluster-wide (verb
    /// `approve` on `approvals.gatehouse.dev` through a ClusterRoleBinding), e.g. `[security,
    /// privacy, legal]`. A namespace's own admins hold every verb there, including `approve`, so
    /// without this they (or a ServiceAccount they make) could review their own request or share.
    /// Decisions by anyone else are listed in `status.ignoredAnnotations` and never count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub cluster_wide_approvers: Vec<String>,
    /// Where notifications about agreements under this policy go: waiting for a stage, decided,
    /// active, expiring soon, ended, provisioning failed. Delivered at least once, with retries,
    /// never delaying access or its removal; `status.notifications` of each agreement says how far
    /// each one got. See docs/notifications.md.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<super::NotificationTarget>,
    /// How long before a window ends the `ExpiringSoon` notification goes out, e.g. `15m`.
    /// Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub notify_expiring_before: Option<String>,
}

/// Review roles required for a share.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RequiredReviews {
    /// Roles that review every share, e.g. `[data-owner]`.
    #[serde(default)]
    pub always: Vec<String>,
    /// Additional roles for data at or above each classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_classification: Option<RolesByClassification>,
    /// Additional roles for external recipients, e.g. `[security, legal]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_recipient: Vec<String>,
    /// Additional roles when any source is labelled personal data, e.g. `[privacy]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub personal_data: Vec<String>,
    /// Additional roles when the recipient's region differs from the data's residency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cross_border: Vec<String>,
    /// Recipient consent: roles that review every share into a namespace, decided by the
    /// recipient team. Their approvers must hold verb `approve` on `approvals.gatehouse.dev`
    /// (resourceName the role) in the **recipient** namespace (or cluster-wide), not in the
    /// agreement's, so that a team cannot push data into another team's namespace without that
    /// team agreeing. They come after every other review and are listed in
    /// `status.recipientApprovals`. Not required for external recipients (no namespace to consent
    /// in; `externalRecipient` and the signed agreement cover them). A role listed here and in
    /// another list is refused: one decision cannot be made in two namespaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub recipient: Vec<String>,
    /// Roles decided by the requester's manager, wherever the lists above require them, e.g.
    /// `[manager]`: only the manager per OrgChart `gatehouse` (its `spec.managers` entry for the
    /// requester's username) may review for them; RBAC grants nothing for these roles.
    /// Listing a role here requires nothing by itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub requester_manager: Vec<String>,
}

/// Review roles per classification level; a level's roles apply to it and every higher level.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolesByClassification {
    /// Roles for internal data and above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub internal: Vec<String>,
    /// Roles for confidential data and above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub confidential: Vec<String>,
    /// Roles for restricted data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restricted: Vec<String>,
}

/// Allowed transfer methods per classification.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MethodsByClassification {
    /// Methods allowed for public data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<Vec<TransferMethod>>,
    /// Methods allowed for internal data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<Vec<TransferMethod>>,
    /// Methods allowed for confidential data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidential: Option<Vec<TransferMethod>>,
    /// Methods allowed for restricted data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted: Option<Vec<TransferMethod>>,
}

named_enum! {
    /// When a signed agreement reference is required.
    #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum AgreementRequirement {
        /// Required for external recipients only.
        #[default]
        External,
        /// Required for every share.
        Always,
        /// Never required.
        Never,
    }
}
