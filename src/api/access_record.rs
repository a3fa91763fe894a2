use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ApprovalRecord, Subject};
use super::names::named_enum;
use super::{Finding, SharedObject, SyncRecord, TransferMethod};

/// The evidence of one AccessRequest or DataSharingAgreement that reached a decision: who asked
/// for what, who decided, what was provided when, and how it ended. Written by the operator only
/// (admission policy `gatehouse-status`), kept after the object is deleted until `retainUntil`.
// Each `printcolumn(...)` repeats the same keys, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "AccessRecord",
    shortname = "arec",
    category = "gatehouse",
    doc = "The immutable record of one access request or data sharing agreement: what was asked, who decided, what was provided when, and how it ended.",
    printcolumn(name = "Kind", type_ = "string", json_path = ".spec.object.kind"),
    printcolumn(name = "Subject", type_ = "string", json_path = ".spec.requester"),
    printcolumn(name = "What", type_ = "string", json_path = ".spec.what"),
    printcolumn(name = "Outcome", type_ = "string", json_path = ".spec.outcome"),
    printcolumn(name = "Ended", type_ = "date", json_path = ".spec.end.at"),
    printcolumn(
        name = "Namespace",
        type_ = "string",
        json_path = ".spec.object.namespace",
        priority = 1
    ),
    printcolumn(
        name = "Policy",
        type_ = "string",
        json_path = ".spec.policy.name",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessRecordSpec {
    /// The object this records.
    pub object: RecordedObject,
    /// Who asked.
    pub requester: String,
    /// Who filed it on the requester's behalf, if someone did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filed_by: Option<String>,
    /// Who receives the access or the data: the request's subjects, or the share's recipient
    /// ServiceAccount.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<Subject>,
    /// What was asked for, in one line: `ClusterRole/db-reader in payments`, or
    /// `Secret/orders-db[host,password] to analytics/reporting by Copy`.
    pub what: String,
    /// Why: the request's justification or the share's purpose.
    pub why: String,
    /// For a share: the recipient, the transfer method and the data (keys only, never values).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share: Option<RecordedShare>,
    /// The policy that governed it, at the generation that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<RecordedPolicy>,
    /// Every decision, in stage order, with the approver's reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<ApprovalRecord>,
    /// The automated checks' findings when it was decided.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// When access or the share started, and when it was due to end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Time>,
    /// Where it stands: its phase while it runs, then how it ended.
    pub outcome: Outcome,
    /// How it ended, once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<RecordedEnd>,
    /// When what it provided was removed, and how that was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removal: Option<RecordedRemoval>,
    /// Whether the record is final: the object ended and what it provided is gone.
    #[serde(default)]
    pub complete: bool,
    /// When the operator deletes this record: `--record-retention` after the end, or the
    /// governing policy's `recordRetention` when that is longer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_until: Option<Time>,
}

/// The object a record is about.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedObject {
    /// `AccessRequest` or `DataSharingAgreement`.
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// What a share sent where.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedShare {
    /// The recipient, as the agreement's status names it.
    pub recipient: String,
    pub method: TransferMethod,
    /// The signed agreement the share executed under, if one was required or given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<String>,
    /// The data asked for: `<kind>/<name>` and its keys, never values.
    pub data: Vec<RecordedData>,
    /// The objects that carried the share, with the keys each held.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<SharedObject>,
    /// Every sync: which source versions were shared when (the last ones; older ones are in the
    /// exported audit lines).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub syncs: Vec<SyncRecord>,
}

/// One source of a share and the keys shared from it.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedData {
    /// `Secret/<name>` or `ConfigMap/<name>`.
    pub source: String,
    pub keys: Vec<String>,
}

/// The governing policy when it was decided.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedPolicy {
    pub name: String,
    /// `metadata.generation` of the policy when the record was last written while it governed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
}

named_enum! {
    /// Where a recorded object stands.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum Outcome {
        /// Fully approved before its start: nothing provided until then.
        Scheduled,
        /// Fully approved; being provided.
        Approved,
        /// Provided within its window.
        Active,
        /// Within its window, nothing provided until its sources hold what was approved.
        Suspended,
        /// Ran its window and was removed.
        Expired,
        /// Ended early: revoked by a person, withdrawn by its policy, or its status tampered with.
        Revoked,
        /// An approver or a check denied it.
        Denied,
        /// An approver asked for changes; a new request or agreement carries them.
        ChangesRequested,
        /// Not fully approved in time.
        TimedOut,
        /// Deleted while it was still open or running: what it provided was removed first.
        Deleted,
    }
}

/// How a recorded object ended.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedEnd {
    pub at: Time,
    /// The condition reason it ended with, e.g. `Expired`, `Revoked`, `PolicyWithdrawn`.
    pub reason: String,
    /// Who ended it, when a person did (a revocation, a denial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    pub message: String,
}

/// The removal of what an object provided.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecordedRemoval {
    pub at: Time,
    /// How the removal was verified: the objects read back as gone, and for access the API
    /// server's answer that the subject can no longer use it.
    pub verified: String,
}
