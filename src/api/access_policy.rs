use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{ApprovalStage, RoleRef};
use super::names::named_enum;

/// What may be requested through `AccessRequest`s, where, for how long, and who must approve.
/// Cluster-scoped: cluster admins own policies; requesters cannot weaken them.
// Each `printcolumn(...)` repeats the same keys, which this lint mistakes for duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "AccessPolicy",
    shortname = "apol",
    category = "gatehouse",
    doc = "Rules for AccessRequests: grantable roles, where, for how long, and the approval stages.",
    printcolumn(
        name = "Max Duration",
        type_ = "string",
        json_path = ".spec.maxDuration"
    ),
    printcolumn(
        name = "Cluster-Wide",
        type_ = "boolean",
        json_path = ".spec.allowClusterWide"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccessPolicySpec {
    /// Roles that may be requested under this policy. A request for any other role is refused.
    #[schemars(length(min = 1, max = 64))]
    pub roles: Vec<RoleRef>,
    /// Namespaces in which grants may be made. Unset selects no namespace: grants are then only
    /// possible cluster-wide, and only with `allowClusterWide`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Whether a request may ask for a cluster-wide grant (a ClusterRoleBinding).
    #[serde(default)]
    pub allow_cluster_wide: bool,
    /// Longest `duration` a request may ask for, e.g. `8h`.
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub max_duration: String,
    /// Duration granted when a request names none; at most `maxDuration`. Defaults to `maxDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub default_duration: Option<String>,
    /// What a business justification must look like.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub justification: Option<JustificationRule>,
    /// Approval stages, in order; every applicable stage must approve before access is granted.
    #[schemars(length(min = 1, max = 16))]
    pub approvals: Vec<ApprovalStage>,
    /// The longest uninterrupted access a chain of extensions (`spec.extends`) may give, from the
    /// first activation to the last expiry, e.g. `24h`; an extension's window ends there at the
    /// latest. Unset: each extension is capped only by `maxDuration`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub max_total_duration: Option<String>,
    /// A request not fully approved this long after creation ends as `TimedOut`. Default `72h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub pending_timeout: Option<String>,
    /// How long the AccessRecord of a request this policy governed is kept after it ended, when
    /// longer than the operator's `--record-retention` (default 400 days); never shorter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = super::common::duration_rule())]
    #[schemars(length(max = 32))]
    pub record_retention: Option<String>,
    /// Sets of roles nobody may hold together (segregation of duties).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub separation_of_duties: Vec<SeparationOfDutiesRule>,
    /// Approver roles whose decisions count only from holders of the right cluster-wide (verb
    /// `approve` on `approvals.gatehouse.dev` through a ClusterRoleBinding), e.g. `[security,
    /// privacy, legal]`. A namespace's own admins hold every verb there, including `approve`, so
    /// without this they (or a ServiceAccount they make) could review their own request or share.
    /// Decisions by anyone else are listed in `status.ignoredAnnotations` and never count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub cluster_wide_approvers: Vec<String>,
    /// Who may receive access besides the requester. Unset: a request may name only its
    /// requester, as a `User` (which is also what an empty `spec.subjects` means). Every other
    /// subject of a request must match an entry here. Groups named `system:...` are never
    /// grantable, and a `User` named `system:...` only to itself as the requester, whatever is
    /// listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subjects: Option<SubjectRules>,
    /// Where notifications about requests under this policy go: waiting for a stage, decided,
    /// active, expiring soon, ended, provisioning failed. Delivered at least once, with retries,
    /// never delaying access or its removal; `status.notifications` of each request says how far
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

/// The subjects, besides the requester as a `User`, that requests under a policy may name. In
/// every entry `*` matches any run of characters (also none), e.g. `oncall-*`; everything else
/// matches itself.
#[derive(Clone, Debug, Default, Deserialize, Serialize, KubeSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SubjectRules {
    /// Usernames (or patterns) that may receive access, e.g. `bob` or `*@example.com`. Names
    /// starting with `system:` are refused: those are Kubernetes identities (ServiceAccounts,
    /// components, `system:anonymous`) that only ever receive access as their own requester; list
    /// ServiceAccounts under `serviceAccounts`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(u, !u.startsWith('system:'))").message("spec.subjects.users may not name system: users: they are Kubernetes identities, granted only to themselves as the requester; list ServiceAccounts in spec.subjects.serviceAccounts as <namespace>/<name>"))]
    pub users: Vec<String>,
    /// Group names (or patterns) that may receive access, e.g. `payments-oncall`. Groups named
    /// `system:...` (`system:authenticated` is every signed-in user, `system:masters` is cluster
    /// admin) are never grantable: they are refused here, and a pattern such as `*` never matches
    /// them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(g, !g.startsWith('system:'))").message("spec.subjects.groups may not name system: groups: they are built into Kubernetes (system:authenticated is every signed-in user) and are never grantable"))]
    pub groups: Vec<String>,
    /// ServiceAccounts that may receive access, as `<namespace>/<name>`, with `*` allowed in
    /// either part, e.g. `ci/deployer` or `payments/*`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 3, max = 317)))]
    #[x_kube(validation = kube::core::Rule::new("self.all(s, s.matches('^[^/]+/[^/]+$'))").message("spec.subjects.serviceAccounts entries are <namespace>/<name>, e.g. ci/deployer or payments/*"))]
    pub service_accounts: Vec<String>,
}

/// Requirements on a request's `justification`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct JustificationRule {
    /// Minimum number of characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4096))]
    pub min_length: Option<i32>,
    /// A regular expression the justification must contain a match of, e.g. a ticket reference
    /// `[A-Z]+-[0-9]+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 256))]
    pub pattern: Option<String>,
}

/// Roles that no subject may hold together.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SeparationOfDutiesRule {
    /// Name of the rule, shown in findings, e.g. `maker-checker`.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Role names (Role or ClusterRole names) that conflict with each other.
    #[schemars(length(min = 2, max = 32))]
    pub roles: Vec<String>,
    /// What a conflict does: `Deny` (default) ends the request; `RequireApproval` records the
    /// finding and lets the approvers decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_conflict: Option<ConflictAction>,
}

named_enum! {
    /// What a segregation-of-duties conflict does to a request.
    #[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
    pub enum ConflictAction {
        /// The request is denied.
        #[default]
        Deny,
        /// The conflict is recorded as a finding and approvers decide.
        RequireApproval,
    }
}
