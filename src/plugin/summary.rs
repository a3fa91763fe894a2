//! AccessRequests and DataSharingAgreements read into one shape: what the plugin shows and
//! decides on is the same for both kinds.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::Kind;
use crate::access;
use crate::api::common::{ApprovalRecord, ApprovedScope, StageApprovers, SubjectKind};
use crate::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};

/// What the plugin needs of one request or agreement.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub requester: String,
    /// Users who would receive the access; like the requester, they may not decide.
    pub subject_users: Vec<String>,
    /// What an AccessRequest grants, e.g. `ClusterRole/db-reader`; `None` for agreements.
    pub grants: Option<String>,
    /// Who receives it, e.g. `User alice, Group oncall`: `status.subjectsSummary`, or from the
    /// spec while the operator has not written it. `None` for agreements.
    pub subjects: Option<String>,
    /// Where it applies, e.g. `orders, payments` or `cluster-wide`: `status.grantScope`, or from
    /// the spec. `None` for agreements.
    pub scope: Option<String>,
    /// `status.phase` as written (`Pending`, `AwaitingAgreement`, ...), if set.
    pub phase: Option<String>,
    pub policy: Option<String>,
    pub required_approvals: Vec<String>,
    /// The roles of `required_approvals` that are the recipient's consent, decided in
    /// `recipient_namespace` (`status.recipientApprovals`; agreements only).
    pub recipient_approvals: Vec<String>,
    /// The namespace an agreement shares into; `None` for requests and external recipients.
    pub recipient_namespace: Option<String>,
    pub waiting_for: Option<String>,
    pub approvals: Vec<ApprovalRecord>,
    /// Who may decide each waiting stage, as the operator listed it (`status.approvers`).
    pub approvers: Vec<StageApprovers>,
    /// The stages the requester's manager decides (`status.managerApprovals`).
    pub manager_approvals: Vec<String>,
    pub conditions: Vec<Condition>,
    /// Grant (AccessRequest) or share (DataSharingAgreement) times, once active.
    pub activated_at: Option<Time>,
    pub expires_at: Option<Time>,
    /// Annotations the operator reported it does not count, with why.
    pub ignored_annotations: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub created: Option<Time>,
    /// Its schedule, approved scope and links to other objects, as `(field, value)` lines.
    pub timeline: Vec<(String, String)>,
}

/// What `kubectl gatehouse audit` shows of a schedule, a narrowed scope, an extension chain and a
/// replacement, from the spec and the status of either kind.
struct Timeline<'a> {
    start_at: Option<&'a Time>,
    extends: Option<&'a str>,
    supersedes: Option<&'a str>,
    scope: Option<&'a ApprovedScope>,
    chain: &'a [String],
    chain_started_at: Option<&'a Time>,
    extended_by: Option<&'a str>,
    superseded_by: Option<&'a str>,
}

impl Timeline<'_> {
    fn fields(&self) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        if let Some(start) = self.start_at {
            fields.push(("Starts at".into(), start.0.to_string()));
        }
        if let Some(scope) = self.scope.filter(|s| !s.narrowed_by.is_empty()) {
            let describe = |s: &crate::api::common::Scope| match s.namespaces.is_empty() {
                true => s.duration.clone(),
                false => format!("{} in {}", s.duration, s.namespaces.join(", ")),
            };
            let by: Vec<String> = scope
                .narrowed_by
                .iter()
                .map(|n| format!("{} as {}", n.user, n.role))
                .collect();
            fields.push((
                "Approved scope".into(),
                format!(
                    "{} (asked for {}; narrowed by {})",
                    describe(&scope.approved),
                    describe(&scope.requested),
                    by.join(", ")
                ),
            ));
        }
        if let Some(original) = self.extends {
            let mut chain = self.chain.to_vec();
            if chain.is_empty() {
                chain.push(original.to_string());
            }
            let since = self
                .chain_started_at
                .map(|t| format!(", uninterrupted since {}", t.0))
                .unwrap_or_default();
            fields.push(("Extends".into(), format!("{}{since}", chain.join(" → "))));
        }
        if let Some(by) = self.extended_by {
            fields.push(("Extended by".into(), by.to_string()));
        }
        if let Some(old) = self.supersedes {
            fields.push(("Supersedes".into(), old.to_string()));
        }
        if let Some(by) = self.superseded_by {
            fields.push(("Superseded by".into(), by.to_string()));
        }
        fields
    }
}

impl Summary {
    /// An object with nothing but its identity and requester; the rest empty.
    pub fn new(kind: Kind, namespace: &str, name: &str, requester: &str) -> Self {
        Summary {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            requester: requester.to_string(),
            subject_users: Vec::new(),
            grants: None,
            subjects: None,
            scope: None,
            phase: None,
            policy: None,
            required_approvals: Vec::new(),
            recipient_approvals: Vec::new(),
            recipient_namespace: None,
            waiting_for: None,
            approvals: Vec::new(),
            approvers: Vec::new(),
            manager_approvals: Vec::new(),
            conditions: Vec::new(),
            activated_at: None,
            expires_at: None,
            ignored_annotations: Vec::new(),
            annotations: BTreeMap::new(),
            created: None,
            timeline: Vec::new(),
        }
    }

    /// The object as kubectl names it, e.g. `accessrequest.gatehouse.dev/alice-read`.
    pub fn target(&self) -> super::Target {
        super::Target {
            kind: self.kind,
            name: self.name.clone(),
        }
    }
}

/// Whether `phase`, as `status.phase` writes it, still awaits decisions. A phase name means the
/// same in both kinds, so the open phases of either count.
pub fn is_open_phase(phase: &str) -> bool {
    AccessPhase::from_name(phase).is_some_and(AccessPhase::is_open)
        || SharingPhase::from_name(phase).is_some_and(SharingPhase::is_open)
}

/// Whether `phase`, as `status.phase` writes it, says the grant or share is in place with its
/// expiry still ahead, in either kind.
pub fn is_running_phase(phase: &str) -> bool {
    AccessPhase::from_name(phase).is_some_and(AccessPhase::is_running)
        || SharingPhase::from_name(phase).is_some_and(SharingPhase::is_running)
}

impl From<&AccessRequest> for Summary {
    fn from(request: &AccessRequest) -> Self {
        let status = request.status.clone().unwrap_or_default();
        let subject_users = if request.spec.subjects.is_empty() {
            vec![request.spec.requester.clone()]
        } else {
            request
                .spec
                .subjects
                .iter()
                .filter(|s| s.kind == SubjectKind::User)
                .map(|s| s.name.clone())
                .collect()
        };
        let namespace = request.metadata.namespace.clone().unwrap_or_default();
        let spec = &request.spec;
        let subjects = status
            .subjects_summary
            .clone()
            .unwrap_or_else(|| access::describe_subjects(&access::subjects(spec)));
        let scope = status.grant_scope.clone().unwrap_or_else(|| {
            access::describe_grant_scope(
                spec.cluster_wide,
                &access::target_namespaces(spec, &namespace),
            )
        });
        Summary {
            kind: Kind::AccessRequest,
            name: request.metadata.name.clone().unwrap_or_default(),
            requester: request.spec.requester.clone(),
            subject_users,
            grants: Some(spec.role.to_string()),
            subjects: Some(subjects),
            scope: Some(scope),
            namespace,
            phase: status.phase.map(|p| p.to_string()),
            policy: status.policy,
            required_approvals: status.required_approvals,
            recipient_approvals: Vec::new(),
            recipient_namespace: None,
            waiting_for: status.waiting_for,
            approvals: status.approvals,
            approvers: status.approvers,
            manager_approvals: status.manager_approvals,
            conditions: status.conditions,
            activated_at: status.grant.as_ref().map(|g| g.activated_at.clone()),
            expires_at: status.grant.as_ref().map(|g| g.expires_at.clone()),
            ignored_annotations: status.ignored_annotations,
            annotations: request.metadata.annotations.clone().unwrap_or_default(),
            created: request.metadata.creation_timestamp.clone(),
            timeline: Timeline {
                start_at: spec.start_at.as_ref(),
                extends: spec.extends.as_deref(),
                supersedes: spec.supersedes.as_deref(),
                scope: status.scope.as_ref(),
                chain: &status.chain,
                chain_started_at: status.chain_started_at.as_ref(),
                extended_by: status.extended_by.as_deref(),
                superseded_by: status.superseded_by.as_deref(),
            }
            .fields(),
        }
    }
}

impl From<&DataSharingAgreement> for Summary {
    fn from(agreement: &DataSharingAgreement) -> Self {
        let status = agreement.status.clone().unwrap_or_default();
        Summary {
            kind: Kind::DataSharingAgreement,
            namespace: agreement.metadata.namespace.clone().unwrap_or_default(),
            name: agreement.metadata.name.clone().unwrap_or_default(),
            requester: agreement.spec.requester.clone(),
            subject_users: Vec::new(),
            grants: None,
            subjects: None,
            scope: None,
            phase: status.phase.map(|p| p.to_string()),
            policy: status.policy,
            required_approvals: status.required_approvals,
            recipient_approvals: status.recipient_approvals,
            recipient_namespace: agreement.spec.recipient.namespace.clone(),
            waiting_for: status.waiting_for,
            approvals: status.approvals,
            approvers: status.approvers,
            manager_approvals: status.manager_approvals,
            conditions: status.conditions,
            activated_at: status.share.as_ref().map(|s| s.activated_at.clone()),
            expires_at: status.share.as_ref().map(|s| s.expires_at.clone()),
            ignored_annotations: Vec::new(),
            annotations: agreement.metadata.annotations.clone().unwrap_or_default(),
            created: agreement.metadata.creation_timestamp.clone(),
            timeline: Timeline {
                start_at: agreement.spec.start_at.as_ref(),
                extends: agreement.spec.extends.as_deref(),
                supersedes: agreement.spec.supersedes.as_deref(),
                scope: status.scope.as_ref(),
                chain: &status.chain,
                chain_started_at: status.chain_started_at.as_ref(),
                extended_by: status.extended_by.as_deref(),
                superseded_by: status.superseded_by.as_deref(),
            }
            .fields(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn shows_the_schedule_the_narrowed_scope_and_the_links() {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": { "name": "more", "namespace": "payments" },
            "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": "db-reader" },
                      "justification": "PAY-1 look", "startAt": "2026-12-24T09:00:00Z",
                      "extends": "first", "supersedes": "draft" },
            "status": {
                "scope": { "requested": { "duration": "1h", "namespaces": ["payments", "billing"] },
                           "approved": { "duration": "20m", "namespaces": ["payments"] },
                           "narrowedBy": [{ "role": "manager", "user": "bob", "duration": "20m",
                                            "namespaces": ["payments"] }] },
                "chain": ["zero", "first"], "chainStartedAt": "2026-12-24T08:00:00Z",
                "extendedBy": "even-more", "supersededBy": "other"
            }
        }))
        .expect("valid");
        let timeline = Summary::from(&request).timeline;
        let field = |key: &str| {
            timeline
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
                .unwrap_or_else(|| panic!("no {key} in {timeline:?}"))
        };
        assert_eq!(field("Starts at"), "2026-12-24T09:00:00Z");
        assert_eq!(
            field("Approved scope"),
            "20m in payments (asked for 1h in payments, billing; narrowed by bob as manager)"
        );
        assert_eq!(
            field("Extends"),
            "zero → first, uninterrupted since 2026-12-24T08:00:00Z"
        );
        assert_eq!(field("Extended by"), "even-more");
        assert_eq!(field("Supersedes"), "draft");
        assert_eq!(field("Superseded by"), "other");
    }

    #[test]
    fn reads_an_access_request_with_its_grant() {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": {
                "name": "alice-read", "namespace": "payments",
                "annotations": { "approve.gatehouse.dev/manager": "bob" },
                "creationTimestamp": "2026-01-01T10:00:00Z"
            },
            "spec": {
                "requester": "alice",
                "role": { "kind": "ClusterRole", "name": "db-reader" },
                "justification": "PAY-1 look"
            },
            "status": {
                "phase": "Active",
                "requiredApprovals": ["manager"],
                "approvals": [{ "role": "manager", "user": "bob", "decision": "Approved" }],
                "grant": {
                    "bindings": [],
                    "activatedAt": "2026-01-01T10:01:00Z",
                    "expiresAt": "2026-01-01T11:01:00Z"
                }
            }
        }))
        .expect("valid AccessRequest");
        let summary = Summary::from(&request);
        assert_eq!(summary.kind, Kind::AccessRequest);
        assert_eq!(
            (summary.namespace.as_str(), summary.name.as_str()),
            ("payments", "alice-read")
        );
        assert_eq!(
            summary.subject_users,
            vec!["alice"],
            "defaults to requester"
        );
        assert_eq!(summary.phase.as_deref(), Some("Active"));
        assert_eq!(summary.approvals.len(), 1);
        assert_eq!(
            summary.expires_at.map(|t| t.0.to_string()).as_deref(),
            Some("2026-01-01T11:01:00Z")
        );
        assert_eq!(
            summary
                .annotations
                .get("approve.gatehouse.dev/manager")
                .map(String::as_str),
            Some("bob")
        );
        assert_eq!(summary.grants.as_deref(), Some("ClusterRole/db-reader"));
        assert_eq!(
            summary.subjects.as_deref(),
            Some("User alice"),
            "from the spec while status lacks it"
        );
        assert_eq!(summary.scope.as_deref(), Some("payments"));
    }

    #[test]
    fn subjects_and_scope_come_from_status_where_the_operator_wrote_them() {
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": { "name": "oncall-read", "namespace": "payments" },
            "spec": {
                "requester": "alice",
                "subjects": [
                    { "kind": "Group", "name": "oncall" },
                    { "kind": "ServiceAccount", "name": "deployer", "namespace": "ci" }
                ],
                "role": { "kind": "ClusterRole", "name": "db-reader" },
                "namespaces": ["payments", "orders"],
                "justification": "PAY-1 look"
            }
        }))
        .expect("valid AccessRequest");
        let summary = Summary::from(&request);
        assert_eq!(
            summary.subjects.as_deref(),
            Some("Group oncall, ServiceAccount ci/deployer")
        );
        assert_eq!(summary.scope.as_deref(), Some("orders, payments"));
        let mut request = request;
        request.spec.cluster_wide = true;
        request.spec.namespaces.clear();
        assert_eq!(
            Summary::from(&request).scope.as_deref(),
            Some("cluster-wide")
        );
        request.status = Some(crate::api::AccessRequestStatus {
            subjects_summary: Some("Group oncall".into()),
            grant_scope: Some("payments".into()),
            ..Default::default()
        });
        let summary = Summary::from(&request);
        assert_eq!(summary.subjects.as_deref(), Some("Group oncall"));
        assert_eq!(summary.scope.as_deref(), Some("payments"));
    }

    #[test]
    fn reads_an_agreement_awaiting_its_reference() {
        let agreement: DataSharingAgreement = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "DataSharingAgreement",
            "metadata": { "name": "orders-out", "namespace": "orders" },
            "spec": {
                "requester": "erin",
                "data": [{ "secret": "db", "keys": ["host"] }],
                "recipient": { "namespace": "analytics" },
                "purpose": "reporting",
                "transfer": { "method": "Copy" },
                "retention": "720h"
            },
            "status": { "phase": "AwaitingAgreement", "waitingFor": "legal" }
        }))
        .expect("valid DataSharingAgreement");
        let summary = Summary::from(&agreement);
        assert_eq!(summary.kind, Kind::DataSharingAgreement);
        assert_eq!(summary.phase.as_deref(), Some("AwaitingAgreement"));
        assert_eq!(summary.waiting_for.as_deref(), Some("legal"));
        assert!(summary.subject_users.is_empty());
        assert_eq!(summary.subjects, None);
    }
}
