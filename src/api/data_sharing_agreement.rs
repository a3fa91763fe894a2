use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ApprovalRecord, ApprovedScope, StageApprovers};
use super::names::named_enum;
use super::vocabulary::{Classification, TransferMethod};

/// A team asks to share named keys of Secrets and ConfigMaps with a recipient, for a purpose,
/// by a transfer method, for a retention period. Filed in the data owner's namespace.
// Each `printcolumn(...)` repeats the same keys, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "DataSharingAgreement",
    namespaced,
    shortname = "dsa",
    category = "gatehouse",
    status = "DataSharingAgreementStatus",
    doc = "A request to share named keys of Secrets and ConfigMaps with a recipient, reviewed and time-limited.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Recipient", type_ = "string", json_path = ".status.recipient"),
    printcolumn(name = "Method", type_ = "string", json_path = ".spec.transfer.method"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(
        name = "Waiting For",
        type_ = "string",
        json_path = ".status.waitingFor"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.share.expiresAt"
    ),
    printcolumn(
        name = "Classification",
        type_ = "string",
        json_path = ".status.classification.level",
        priority = 1
    ),
    // Every shared object and its keys, as written: a JSONPath with `[*]` shows only its first
    // match in a table, so the whole list it is.
    printcolumn(name = "Data", type_ = "string", json_path = ".spec.data", priority = 1),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
// The one change allowed: filing the signed agreement's reference (once) on an agreement held in
// AwaitingAgreement; it adds evidence, never scope.
#[x_kube(validation = kube::core::Rule::new("self == oldSelf || (!has(oldSelf.agreement) && has(self.agreement) && self.requester == oldSelf.requester && self.data == oldSelf.data && self.recipient == oldSelf.recipient && self.purpose == oldSelf.purpose && self.transfer == oldSelf.transfer && self.retention == oldSelf.retention && has(self.policy) == has(oldSelf.policy) && (!has(self.policy) || self.policy == oldSelf.policy) && has(self.startAt) == has(oldSelf.startAt) && (!has(self.startAt) || self.startAt == oldSelf.startAt) && has(self.extends) == has(oldSelf.extends) && (!has(self.extends) || self.extends == oldSelf.extends) && has(self.supersedes) == has(oldSelf.supersedes) && (!has(self.supersedes) || self.supersedes == oldSelf.supersedes))").message("spec is immutable after creation, except that spec.agreement may be added once: reviews apply to exactly what was asked; create a new DataSharingAgreement instead"))]
pub struct DataSharingAgreementSpec {
    /// Username of the person asking. Must be the user creating the agreement (checked at admission).
    #[schemars(length(min = 1, max = 253))]
    pub requester: String,
    /// The data to share: named keys of Secrets and ConfigMaps in this namespace, each object once.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = kube::core::Rule::new("self.all(a, self.filter(b, (has(a.secret) && has(b.secret) && a.secret == b.secret) || (has(a.configMap) && has(b.configMap) && a.configMap == b.configMap)).size() == 1)").message("each Secret or ConfigMap may appear once in spec.data; list all of its keys in one item"))]
    pub data: Vec<DataItem>,
    /// Who receives the data.
    pub recipient: Recipient,
    /// What the recipient will use the data for.
    #[schemars(length(min = 1, max = 1024))]
    pub purpose: String,
    /// How the data is transferred.
    pub transfer: Transfer,
    /// How long the recipient keeps the data, e.g. `720h`; everything shared is removed after.
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub retention: String,
    /// The signed data sharing agreement behind this share, where one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<AgreementRef>,
    /// When the share should start (RFC 3339). Reviewed before it, the agreement waits in phase
    /// `Scheduled` and the retention counts from `startAt`; reviewed after it, from execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Time>,
    /// The DataSharingAgreement (same namespace, same requester) whose share this one extends once approved:
    /// approved while that share is active, it continues without a gap until that share's
    /// expiry plus this one's own duration; approved later, it is a renewal that starts at
    /// activation. It must ask for nothing beyond the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub extends: Option<String>,
    /// The DataSharingAgreement (same namespace, same requester) this one replaces, e.g. one that ended with
    /// changes requested; the other one's status then names this one in `supersededBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub supersedes: Option<String>,
    /// Name of the SharingPolicy that governs this share. Unset: the single matching policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub policy: Option<String>,
}

/// Named keys of one Secret or ConfigMap.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.secret) != has(self.configMap)").message("name exactly one of secret or configMap in each data item"))]
pub struct DataItem {
    /// Name of a Secret in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret: Option<String>,
    /// Name of a ConfigMap in this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub config_map: Option<String>,
    /// The keys to share; other keys of the object are never shared.
    #[schemars(length(min = 1, max = 64))]
    pub keys: Vec<String>,
}

/// The receiving side of a share: a namespace (optionally one ServiceAccount) or an external party.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("has(self.__namespace__) != has(self.external)").message("set exactly one of recipient.namespace or recipient.external"))]
#[x_kube(validation = kube::core::Rule::new("!has(self.serviceAccount) || has(self.__namespace__)").message("recipient.serviceAccount needs recipient.namespace"))]
pub struct Recipient {
    /// Namespace receiving the data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
    /// ServiceAccount in `namespace` that may read the data (required for `Reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub service_account: Option<String>,
    /// An external party outside the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRecipient>,
}

/// An organisation outside the cluster receiving data.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalRecipient {
    /// Legal name of the organisation.
    #[schemars(length(min = 1, max = 256))]
    pub organization: String,
    /// Country or region where the recipient processes the data (e.g. `US`, `EU`); compared with
    /// the data's `gatehouse.dev/residency` label to detect cross-border transfers.
    #[schemars(length(min = 1, max = 64))]
    pub country: String,
    /// Contact for the recipient's data protection officer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub contact: Option<String>,
}

/// How shared data moves.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Transfer {
    /// `Copy`, `Reference` or `Export`.
    pub method: TransferMethod,
}

/// A signed agreement covering the share.
#[derive(Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!self.reference.matches('^\\\\s*$')").message("spec.agreement.reference must name the signed agreement, e.g. DPA-2026-017"))]
pub struct AgreementRef {
    /// Reference of the signed agreement, e.g. `DPA-2026-017`.
    #[schemars(length(min = 1, max = 128))]
    pub reference: String,
}

named_enum! {
    /// Where a DataSharingAgreement is in its lifecycle.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum SharingPhase {
        /// Waiting for checks or reviews.
        Pending,
        /// Reviews may proceed, but nothing executes until an agreement reference is filed.
        AwaitingAgreement,
        /// Every review approved; the share is being executed.
        Approved,
        /// Every review approved before `spec.startAt`: the share starts then.
        Scheduled,
        /// The share exists until `share.expiresAt`.
        Active,
        /// The share is paused because the sources no longer match the approved scope.
        Suspended,
        /// A reviewer denied the share, or a check refused it.
        Denied,
        /// An approver asked for changes (`changes.gatehouse.dev/<role>`): nothing is provided;
        /// file a new agreement with the changes.
        ChangesRequested,
        /// Not fully reviewed within the policy's `pendingTimeout`.
        TimedOut,
        /// Retention ended and everything shared was removed.
        Expired,
        /// The share was revoked early.
        Revoked,
        /// The agreement cannot proceed as written; the `Accepted` condition says why.
        Failed,
    }
}

super::phase::phase_helpers!(SharingPhase);

/// Observed state of a DataSharingAgreement: the sharing record.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DataSharingAgreementStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<SharingPhase>,
    /// The SharingPolicy that governs the agreement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The recipient in one word, for `kubectl get`: a namespace or an organisation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The effective classification of the shared data and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<ClassificationResult>,
    /// Review roles that must approve, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_approvals: Vec<String>,
    /// The roles of `requiredApprovals` that are the recipient's consent (SharingPolicy
    /// `reviews.recipient`): admission and the operator check their approvers' right in the
    /// recipient namespace instead of the agreement's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipient_approvals: Vec<String>,
    /// The review roles still to approve, comma-separated (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waiting_for: Option<String>,
    /// What was asked for and what the approvals allow (approvers may narrow it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ApprovedScope>,
    /// The extensions this one continues, from the first, when `spec.extends` names one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chain: Vec<String>,
    /// When the uninterrupted access of the chain began, when this one extends an active one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain_started_at: Option<Time>,
    /// The object whose `spec.extends` names this one, once it is granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_by: Option<String>,
    /// The object whose `spec.supersedes` names this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<String>,
    /// The required roles only the requester's manager decides (`approver: RequesterManager`):
    /// admission policy gatehouse-requester-manager reads them here (only the operator writes
    /// status) and admits their decisions only from the manager per OrgChart `gatehouse`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub manager_approvals: Vec<String>,
    /// Who may decide each stage still waiting, from the RBAC bindings the operator sees (and for
    /// manager stages the org chart): whom to ask (`kubectl gatehouse approvers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<StageApprovers>,
    /// Every decision made, with reviewer, role, reason and time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRecord>,
    /// Approval annotations that do not count, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_annotations: Vec<String>,
    /// Approvals first seen while the approval admission policies were not enforced
    /// (`<annotation>=<value>`): nothing verified their author, so they never count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untrusted_approvals: Vec<String>,
    /// What was shared, once active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<ShareRecord>,
    /// Standard conditions: `Accepted`, reviews, `Ready`, and outcome.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Notifications sent about it, oldest first (at most 32), with how far each reached each
    /// destination.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<super::NotificationRecord>,
    /// The `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The effective classification of an agreement's data.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClassificationResult {
    /// The highest classification among the sources.
    pub level: Classification,
    /// Whether any source is labelled personal data.
    #[serde(default)]
    pub personal_data: bool,
    /// Residency regions of the sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub residency: Vec<String>,
    /// Which labels led to this result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What was shared: the record, never the values.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShareRecord {
    /// The objects created for the share.
    #[serde(default)]
    pub objects: Vec<SharedObject>,
    /// When the share was executed; retention counts from here.
    pub activated_at: Time,
    /// When everything shared is removed.
    pub expires_at: Time,
    /// The operator's seal over `activatedAt` and `expiresAt`: a window without a valid seal was
    /// not opened by the operator and never shares anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
    /// The signed agreement the share was executed under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// The most recent syncs, oldest first (at most ten): each time the shared objects were
    /// written because the share started or a source changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syncs: Vec<SyncRecord>,
    /// When everything shared was removed (retention end, revocation or deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_at: Option<Time>,
}

/// One sync of a share: when, and which source versions were shared.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SyncRecord {
    pub time: Time,
    /// `<kind>/<name>@<resourceVersion>` of every source.
    pub sources: Vec<String>,
}

/// One object the operator created for a share.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SharedObject {
    /// Kind of the created object: `Secret`, `Role` or `RoleBinding`.
    pub kind: String,
    /// Namespace of the created object.
    pub namespace: String,
    /// Name of the created object.
    pub name: String,
    /// The keys it holds, for copies and exports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    /// Source object and resourceVersion at the last sync, `<kind>/<name>@<resourceVersion>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::SharingPhase;

    #[test]
    fn a_phase_is_at_most_one_of_open_running_and_terminal() {
        for phase in SharingPhase::ALL {
            let kinds = [phase.is_open(), phase.is_running(), phase.is_terminal()];
            assert!(kinds.iter().filter(|k| **k).count() <= 1, "{phase}");
        }
        let named = |keep: fn(&SharingPhase) -> bool| -> Vec<String> {
            SharingPhase::ALL
                .iter()
                .filter(|p| keep(p))
                .map(ToString::to_string)
                .collect()
        };
        assert_eq!(named(|p| p.is_open()), ["Pending", "AwaitingAgreement"]);
        assert_eq!(named(|p| p.is_running()), ["Active", "Suspended"]);
    }
}
