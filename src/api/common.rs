//! Types shared by the kinds: role and subject references, approval stages and records.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::named_enum;

named_enum! {
    /// Kind of an RBAC role.
    #[derive(
        Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
    )]
    pub enum RoleKind {
        /// A namespaced Role, granted in the namespace it lives in.
        Role,
        /// A ClusterRole, granted per namespace (RoleBinding) or cluster-wide (ClusterRoleBinding).
        ClusterRole,
    }
}

/// A reference to an RBAC Role or ClusterRole.
#[derive(
    Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
pub struct RoleRef {
    /// `Role` or `ClusterRole`.
    pub kind: RoleKind,
    /// Name of the Role or ClusterRole.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// As messages and `kubectl gatehouse` name a role: `ClusterRole/db-reader`.
impl std::fmt::Display for RoleRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.kind, self.name)
    }
}

named_enum! {
    /// Kind of an RBAC subject.
    #[derive(
        Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
    )]
    pub enum SubjectKind {
        /// A user as named by the cluster's authenticator.
        User,
        /// A group as named by the cluster's authenticator.
        Group,
        /// A ServiceAccount; `namespace` is required.
        ServiceAccount,
    }
}

/// Who receives the access: an RBAC subject.
#[derive(
    Clone, Debug, Deserialize, Serialize, KubeSchema, PartialEq, Eq, Hash, PartialOrd, Ord,
)]
#[x_kube(validation = kube::core::Rule::new("self.kind != 'ServiceAccount' || has(self.__namespace__)").message("a ServiceAccount subject needs its namespace"))]
pub struct Subject {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: SubjectKind,
    /// Name of the user, group or ServiceAccount.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of a ServiceAccount subject; unset for users and groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub namespace: Option<String>,
}

named_enum! {
    /// When an approval stage applies.
    #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum StageCondition {
        /// The stage applies to every request.
        #[default]
        Always,
        /// The stage applies only when the automated checks found the grant high-risk.
        HighRisk,
    }
}

named_enum! {
    /// Who decides an approval stage.
    #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum Approver {
        /// A holder of verb `approve` on `approvals.gatehouse.dev` with the stage's role as
        /// resourceName (RBAC), in the object's namespace or cluster-wide.
        #[default]
        Role,
        /// Only the requester's manager per the org chart: OrgChart `gatehouse`, whose
        /// `spec.managers` maps the requester's username to their manager's. RBAC grants nothing
        /// here; no entry for the requester means nobody can decide the stage.
        RequesterManager,
    }
}

/// One approval stage: a role whose holder must approve, in order.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
pub struct ApprovalStage {
    /// Approver role, e.g. `manager`, `data-owner`, `security`. Approvers hold verb `approve` on
    /// `approvals.gatehouse.dev` with this resourceName, and annotate
    /// `approve.gatehouse.dev/<role>=<their username>`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub role: String,
    /// `Always` (default) or `HighRisk`: the stage applies only to high-risk grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<StageCondition>,
    /// `Role` (default): whoever holds the approve right for `role`. `RequesterManager`: only the
    /// requester's manager per OrgChart `gatehouse` (checked at admission and by the
    /// operator); the annotation keeps the stage's role, e.g. `approve.gatehouse.dev/manager`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver: Option<Approver>,
}

/// Who may decide one waiting stage, as the operator sees it (`status.approvers`): from the RBAC
/// bindings it caches, or for a `RequesterManager` stage from the org chart. For requesters, to
/// know whom to ask; admission and the operator's own checks stay the authority.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StageApprovers {
    /// The stage's role.
    pub role: String,
    /// Users holding the right where it counts (at most 20, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Groups holding it: any member may decide (at most 20, sorted; `system:` groups left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    /// ServiceAccounts holding it, as `<namespace>/<name>` (at most 20, sorted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_accounts: Vec<String>,
    /// For a `RequesterManager` stage: the requester's manager per the org chart (unset when it
    /// has no entry for the requester: nobody can decide the stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manager: Option<String>,
    /// How many more holders there are than listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub more: Option<u32>,
}

named_enum! {
    /// The outcome of one approver's decision.
    #[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum Decision {
        /// The approver approved their stage.
        Approved,
        /// The approver denied the request; it ends.
        Denied,
        /// The approver asked for changes: it ends without access, and the requester files a
        /// new one with the changes.
        ChangesRequested,
    }
}

/// One approver decision, as admitted by the API server and read from the annotations.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// Approver role the decision was made for.
    pub role: String,
    /// Username of the approver, exactly as the admission policy admitted it.
    pub user: String,
    /// `Approved` or `Denied`.
    pub decision: Decision,
    /// The approver's reason (`reason.gatehouse.dev/<role>`), if given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the operator first observed the decision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<Time>,
}

/// Schema rule for duration strings: Go duration syntax restricted to hours, minutes and seconds,
/// the same strings `kubectl` users know from `--request-timeout`, and greater than zero.
pub fn duration_rule() -> kube::core::Rule {
    kube::core::Rule::new("self.matches('^([0-9]+(h|m|s))+$') && duration(self) > duration('0s')")
        .message("must be a positive duration such as 30m, 8h or 1h30m (units: h, m, s)")
}

/// What was asked for and what the approvals allow: approvers may narrow the duration
/// (`duration.gatehouse.dev/<role>`) and an AccessRequest's namespaces
/// (`namespaces.gatehouse.dev/<role>`) together with their approval; the narrowest of all applies.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ApprovedScope {
    pub requested: Scope,
    /// What is provided once every stage approved, narrowed by the approvals so far.
    pub approved: Scope,
    /// The approvals that narrowed it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub narrowed_by: Vec<Narrowing>,
}

/// How long, and where: the duration (an agreement's retention) and the namespaces of an
/// AccessRequest (empty: cluster-wide, or an agreement).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Scope {
    /// e.g. `8h`.
    pub duration: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// One approver's narrowing, as admitted with their approval.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Narrowing {
    pub role: String,
    pub user: String,
    /// The duration they approved, when shorter than asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The namespaces they approved, when fewer than asked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}
