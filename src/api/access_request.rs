use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ApprovalRecord, ApprovedScope, RoleRef, StageApprovers, Subject};
use super::names::named_enum;

/// One person or service asks for one role, in some namespaces, for a time, with a reason.
// Each `printcolumn(...)` repeats the same keys, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "AccessRequest",
    namespaced,
    shortname = "ar",
    category = "gatehouse",
    status = "AccessRequestStatus",
    doc = "A request for an RBAC role, for a time, with a business justification, approved in stages.",
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Role", type_ = "string", json_path = ".spec.role.name"),
    printcolumn(name = "Requester", type_ = "string", json_path = ".spec.requester"),
    printcolumn(
        name = "Waiting For",
        type_ = "string",
        json_path = ".status.waitingFor"
    ),
    printcolumn(
        name = "Expires",
        type_ = "string",
        json_path = ".status.grant.expiresAt"
    ),
    printcolumn(
        name = "Findings",
        type_ = "string",
        json_path = ".status.findingsSummary",
        priority = 1
    ),
    printcolumn(
        name = "Subjects",
        type_ = "string",
        json_path = ".status.subjectsSummary",
        priority = 1
    ),
    printcolumn(
        name = "Scope",
        type_ = "string",
        json_path = ".status.grantScope",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("spec is immutable after creation: approvals apply to exactly what was asked; create a new AccessRequest instead"))]
pub struct AccessRequestSpec {
    /// Username of the person asking. Must be the user creating the request (checked at admission).
    #[schemars(length(min = 1, max = 253))]
    pub requester: String,
    /// Who receives the access. Defaults to the requester as a `User`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub subjects: Vec<Subject>,
    /// The Role or ClusterRole asked for; the policy must list it.
    pub role: RoleRef,
    /// Namespaces to grant the role in. Defaults to the request's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub namespaces: Vec<String>,
    /// Ask for a cluster-wide grant (a ClusterRoleBinding) instead of per-namespace grants.
    /// Only a `ClusterRole` can be granted cluster-wide, and only where the policy allows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cluster_wide: bool,
    /// How long access lasts once provisioned, e.g. `4h`. Defaults to the policy's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub duration: Option<String>,
    /// Why the access is needed; the policy may require a ticket reference or a minimum length.
    #[schemars(length(min = 1, max = 1024))]
    pub justification: String,
    /// When access should start (RFC 3339, e.g. `2026-12-24T09:00:00Z`). Approved before it, the
    /// request waits in phase `Scheduled` and access lasts from `startAt` to `startAt + duration`;
    /// approved after it, the clock starts at activation, never earlier. Unset: at approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<Time>,
    /// The AccessRequest (same namespace, same requester) whose grant this one extends once approved:
    /// approved while that grant is active, it continues without a gap until that grant's
    /// expiry plus this one's own duration; approved later, it is a renewal that starts at
    /// activation. It must ask for nothing beyond the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub extends: Option<String>,
    /// The AccessRequest (same namespace, same requester) this one replaces, e.g. one that ended with
    /// changes requested; the other one's status then names this one in `supersededBy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub supersedes: Option<String>,
    /// Name of the AccessPolicy that governs this request. Unset: the single policy whose roles
    /// and namespace selector match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub policy: Option<String>,
}

named_enum! {
    /// Where an AccessRequest is in its lifecycle.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum AccessPhase {
        /// Waiting for checks or approvals.
        Pending,
        /// Every stage approved; access is being provisioned.
        Approved,
        /// Every stage approved before `spec.startAt`: access starts then.
        Scheduled,
        /// Access is provisioned until `grant.expiresAt`.
        Active,
        /// An approver denied the request, or a check refused it.
        Denied,
        /// An approver asked for changes (`changes.gatehouse.dev/<role>`): nothing is provided;
        /// file a new request with the changes.
        ChangesRequested,
        /// Not fully approved within the policy's `pendingTimeout`.
        TimedOut,
        /// Access ran its duration and was removed.
        Expired,
        /// Access was revoked early.
        Revoked,
        /// The request cannot proceed as written; the `Accepted` condition says why.
        Failed,
    }
}

super::phase::phase_helpers!(AccessPhase);

/// Observed state of an AccessRequest: the audit record of every decision.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessRequestStatus {
    /// Lifecycle phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<AccessPhase>,
    /// The AccessPolicy that governs the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Approver roles that must approve, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_approvals: Vec<String>,
    /// The approver roles still to approve, comma-separated (for `kubectl get`).
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
    /// Every decision made, with approver, role, reason and time.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvals: Vec<ApprovalRecord>,
    /// Results of the automated checks made before anyone approves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<Finding>,
    /// The finding types, comma-separated (for `kubectl get -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub findings_summary: Option<String>,
    /// Who receives the access, as the policy check accepted it, e.g. `User alice, Group oncall,
    /// ServiceAccount ci/deployer` (for approvers and `kubectl get -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects_summary: Option<String>,
    /// Where the access applies, as the policy check accepted it: the namespaces, e.g.
    /// `orders, payments`, or `cluster-wide` (for approvers and `kubectl get -o wide`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_scope: Option<String>,
    /// The provisioned access, once active.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant: Option<Grant>,
    /// When approvers were last reminded that the request waits for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reminded_at: Option<Time>,
    /// Approvals first seen while the approval admission policies were not enforced
    /// (`<annotation>=<value>`): nothing verified who wrote them, so they never count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub untrusted_approvals: Vec<String>,
    /// Annotations that were present but do not count, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_annotations: Vec<String>,
    /// Standard conditions: `Accepted`, per-stage approvals, `Ready`, and outcome.
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

named_enum! {
    /// Kind of an automated finding.
    #[derive(
        Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
    )]
    pub enum FindingType {
        /// A subject already holds this role there through another binding.
        ExistingAccess,
        /// A subject holds a role that a separation-of-duties rule forbids together with this one.
        SeparationOfDutiesConflict,
        /// The role grants powerful permissions; high-risk approval stages apply.
        HighRisk,
    }
}

/// One result of the automated checks.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    /// What was found.
    #[serde(rename = "type")]
    pub type_: FindingType,
    /// Details for the approvers.
    pub message: String,
}

/// The access provisioned for a request.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Grant {
    /// The RoleBindings or ClusterRoleBinding created.
    pub bindings: Vec<BindingRef>,
    /// When access was provisioned; the duration counts from here.
    pub activated_at: Time,
    /// When access is removed.
    pub expires_at: Time,
    /// The operator's seal over `activatedAt` and `expiresAt`: a window without a valid seal was
    /// not opened by the operator and never grants access.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seal: Option<String>,
}

/// A binding the operator created.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BindingRef {
    /// `RoleBinding` or `ClusterRoleBinding`.
    pub kind: String,
    /// Namespace of a RoleBinding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name of the binding.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::AccessPhase;

    #[test]
    fn a_phase_is_at_most_one_of_open_running_and_terminal() {
        for phase in AccessPhase::ALL {
            let kinds = [phase.is_open(), phase.is_running(), phase.is_terminal()];
            assert!(kinds.iter().filter(|k| **k).count() <= 1, "{phase}");
        }
        let open: Vec<&AccessPhase> = AccessPhase::ALL.iter().filter(|p| p.is_open()).collect();
        assert_eq!(open, [&AccessPhase::Pending]);
        assert!(!AccessPhase::Failed.is_open() && !AccessPhase::Failed.is_terminal());
    }
}
