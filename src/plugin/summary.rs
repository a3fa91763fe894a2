//! AccessRequests and DataSharingAgreements read into one shape: what the plugin shows and
//! decides on is the same for both kinds.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use serde::Serialize;

use super::Kind;
use crate::api::common::{ApprovalRecord, SubjectKind};
use crate::api::{AccessRequest, DataSharingAgreement};

/// What the plugin needs of one request or agreement.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub requester: String,
    /// Users who would receive the access; like the requester, they may not decide.
    pub subject_users: Vec<String>,
    /// `status.phase` as written (`Pending`, `AwaitingAgreement`, ...), if set.
    pub phase: Option<String>,
    pub policy: Option<String>,
    pub required_approvals: Vec<String>,
    pub waiting_for: Option<String>,
    pub approvals: Vec<ApprovalRecord>,
    pub conditions: Vec<Condition>,
    /// Grant (AccessRequest) or share (DataSharingAgreement) times, once active.
    pub activated_at: Option<Time>,
    pub expires_at: Option<Time>,
    /// Annotations the operator reported it does not count, with why.
    pub ignored_annotations: Vec<String>,
    pub annotations: BTreeMap<String, String>,
    pub created: Option<Time>,
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
            phase: None,
            policy: None,
            required_approvals: Vec::new(),
            waiting_for: None,
            approvals: Vec::new(),
            conditions: Vec::new(),
            activated_at: None,
            expires_at: None,
            ignored_annotations: Vec::new(),
            annotations: BTreeMap::new(),
            created: None,
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

/// The serialized name of a unit enum variant, e.g. `Pending`.
fn variant_name<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
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
        Summary {
            kind: Kind::AccessRequest,
            namespace: request.metadata.namespace.clone().unwrap_or_default(),
            name: request.metadata.name.clone().unwrap_or_default(),
            requester: request.spec.requester.clone(),
            subject_users,
            phase: status.phase.as_ref().and_then(variant_name),
            policy: status.policy,
            required_approvals: status.required_approvals,
            waiting_for: status.waiting_for,
            approvals: status.approvals,
            conditions: status.conditions,
            activated_at: status.grant.as_ref().map(|g| g.activated_at.clone()),
            expires_at: status.grant.as_ref().map(|g| g.expires_at.clone()),
            ignored_annotations: status.ignored_annotations,
            annotations: request.metadata.annotations.clone().unwrap_or_default(),
            created: request.metadata.creation_timestamp.clone(),
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
            phase: status.phase.as_ref().and_then(variant_name),
            policy: status.policy,
            required_approvals: status.required_approvals,
            waiting_for: status.waiting_for,
            approvals: status.approvals,
            conditions: status.conditions,
            activated_at: status.share.as_ref().map(|s| s.activated_at.clone()),
            expires_at: status.share.as_ref().map(|s| s.expires_at.clone()),
            ignored_annotations: Vec::new(),
            annotations: agreement.metadata.annotations.clone().unwrap_or_default(),
            created: agreement.metadata.creation_timestamp.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
    }
}
