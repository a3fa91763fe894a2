//! `kubectl gatehouse audit`: the decision history of one request or agreement, then where it
//! stands: phase, grant or share times, and the conditions.

use k8s_openapi::jiff::Timestamp;

use super::summary::is_running_phase;
use super::table::{self, NONE};
use super::{Kind, Summary};
use crate::api::common::Decision;
use crate::api::{APPROVE_PREFIX, CHANGES_PREFIX, DENY_PREFIX, REVOKE_ANNOTATION};

/// Decision annotations present on the object that the operator has not recorded in
/// `status.approvals` (nor reported as ignored) yet, as `key=value`.
pub fn unrecorded_decisions(item: &Summary) -> Vec<String> {
    item.annotations
        .iter()
        .filter_map(|(key, user)| {
            let (decision, role) = if let Some(role) = key.strip_prefix(APPROVE_PREFIX) {
                (Decision::Approved, role)
            } else if let Some(role) = key.strip_prefix(DENY_PREFIX) {
                (Decision::Denied, role)
            } else {
                (
                    Decision::ChangesRequested,
                    key.strip_prefix(CHANGES_PREFIX)?,
                )
            };
            let recorded = item
                .approvals
                .iter()
                .any(|a| a.role == role && a.decision == decision && a.user == user.trim());
            let ignored = item
                .ignored_annotations
                .iter()
                .any(|i| i.starts_with(&format!("{key} ")));
            (!recorded && !ignored).then(|| format!("{key}={user}"))
        })
        .collect()
}

/// `role`, marked when it is the recipient's consent (decided in the recipient namespace).
fn consent_marked(item: &Summary, role: &str) -> String {
    if item.recipient_approvals.iter().any(|r| r == role) {
        format!("{role} (recipient consent)")
    } else {
        role.to_string()
    }
}

/// The full audit text.
pub fn render(item: &Summary, now: Timestamp) -> String {
    let mut out = format!(
        "{} {}/{}, requested by {}{}\n\n",
        item.kind.name(),
        item.namespace,
        item.name,
        item.requester,
        item.policy
            .as_deref()
            .map(|p| format!(", governed by policy {p}"))
            .unwrap_or_default()
    );

    if item.approvals.is_empty() {
        out.push_str("No decisions recorded yet.\n");
    } else {
        let rows: Vec<Vec<String>> = item
            .approvals
            .iter()
            .map(|a| {
                vec![
                    table::time(a.time.as_ref()),
                    consent_marked(item, &a.role),
                    a.user.clone(),
                    a.decision.to_string(),
                    a.reason.clone().unwrap_or_else(|| NONE.to_string()),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["TIME", "ROLE", "USER", "DECISION", "REASON"],
            &rows,
        ));
    }
    out.push('\n');

    let what = match item.kind {
        Kind::AccessRequest => "Grant",
        Kind::DataSharingAgreement => "Share",
    };
    let list = |roles: &[String]| {
        if roles.is_empty() {
            NONE.to_string()
        } else {
            roles.join(", ")
        }
    };
    let waiting: Vec<String> = super::pending::waiting_roles(item);
    let running = item.phase.as_deref().is_some_and(is_running_phase);
    let mut fields: Vec<(String, String)> = vec![(
        "Phase".into(),
        item.phase.clone().unwrap_or_else(|| NONE.to_string()),
    )];
    // What approvers approve: the role, to whom, and where (AccessRequests).
    for (key, value) in [
        ("Grants", &item.grants),
        ("Subjects", &item.subjects),
        ("Scope", &item.scope),
    ] {
        if let Some(value) = value {
            fields.push((key.into(), value.clone()));
        }
    }
    let required: Vec<String> = item
        .required_approvals
        .iter()
        .map(|role| consent_marked(item, role))
        .collect();
    fields.push(("Required".into(), list(&required)));
    if !item.recipient_approvals.is_empty() {
        fields.push((
            "Recipient consent".into(),
            format!(
                "{}, decided by holders of the right in the recipient namespace {}",
                item.recipient_approvals.join(", "),
                item.recipient_namespace.as_deref().unwrap_or(NONE)
            ),
        ));
    }
    fields.extend([
        ("Waiting for".into(), list(&waiting)),
        (
            format!("{what} activated"),
            table::time(item.activated_at.as_ref()),
        ),
        (
            format!("{what} expires"),
            match &item.expires_at {
                // Once revoked or expired, "in 59m" would mislead: the time is history.
                Some(t) if running => {
                    format!("{} ({})", table::time(Some(t)), table::relative(t, now))
                }
                Some(t) => table::time(Some(t)),
                None => NONE.to_string(),
            },
        ),
    ]);
    fields.extend(item.timeline.iter().cloned());
    if let Some(by) = item.annotations.get(REVOKE_ANNOTATION) {
        fields.push(("Revoked by".into(), by.clone()));
    }
    let unrecorded = unrecorded_decisions(item);
    if !unrecorded.is_empty() {
        fields.push((
            "Not yet recorded".into(),
            format!(
                "{} (the operator has not observed it yet)",
                unrecorded.join(", ")
            ),
        ));
    }
    for ignored in &item.ignored_annotations {
        fields.push(("Ignored".into(), ignored.clone()));
    }
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 3;
    for (key, value) in fields {
        out.push_str(&format!("{:<width$}{value}\n", format!("{key}:")));
    }
    out.push('\n');

    if item.conditions.is_empty() {
        out.push_str("Conditions: <none>\n");
    } else {
        out.push_str("Conditions:\n");
        let rows: Vec<Vec<String>> = item
            .conditions
            .iter()
            .map(|c| {
                vec![
                    c.type_.clone(),
                    c.status.clone(),
                    c.reason.clone(),
                    c.message.clone(),
                ]
            })
            .collect();
        out.push_str(&table::render(
            &["TYPE", "STATUS", "REASON", "MESSAGE"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::ApprovalRecord;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    const T0: i64 = 1_767_261_600; // 2026-01-01T10:00:00Z

    fn record(
        role: &str,
        user: &str,
        decision: Decision,
        reason: Option<&str>,
        t: i64,
    ) -> ApprovalRecord {
        ApprovalRecord {
            role: role.into(),
            user: user.into(),
            decision,
            reason: reason.map(str::to_string),
            time: Some(at(t)),
        }
    }

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            observed_generation: Some(1),
            last_transition_time: at(T0),
        }
    }

    #[test]
    fn shows_decisions_grant_and_conditions() {
        let mut item = Summary::new(Kind::AccessRequest, "payments", "alice-read", "alice");
        item.policy = Some("payments-db".into());
        item.phase = Some("Active".into());
        item.required_approvals = vec!["manager".into(), "data-owner".into()];
        item.approvals = vec![
            record(
                "manager",
                "bob",
                Decision::Approved,
                Some("ticket checked"),
                T0 + 10,
            ),
            record("data-owner", "carol", Decision::Approved, None, T0 + 20),
        ];
        item.activated_at = Some(at(T0 + 21));
        item.expires_at = Some(at(T0 + 21 + 3600));
        item.conditions = vec![
            condition(
                "Accepted",
                "True",
                "Valid",
                "AccessPolicy payments-db governs this request",
            ),
            condition("Ready", "True", "Provisioned", "access granted until 11:00"),
        ];
        let now = Timestamp::from_second(T0 + 81).expect("valid");
        assert_eq!(
            render(&item, now),
            "AccessRequest payments/alice-read, requested by alice, governed by policy payments-db

TIME                   ROLE         USER    DECISION   REASON
2026-01-01T10:00:10Z   manager      bob     Approved   ticket checked
2026-01-01T10:00:20Z   data-owner   carol   Approved   <none>

Phase:            Active
Required:         manager, data-owner
Waiting for:      <none>
Grant activated:  2026-01-01T10:00:21Z
Grant expires:    2026-01-01T11:00:21Z (in 59m)

Conditions:
TYPE       STATUS   REASON        MESSAGE
Accepted   True     Valid         AccessPolicy payments-db governs this request
Ready      True     Provisioned   access granted until 11:00
"
        );
    }

    #[test]
    fn an_ended_grant_shows_its_times_without_a_countdown() {
        let mut item = Summary::new(Kind::AccessRequest, "payments", "alice-read", "alice");
        item.phase = Some("Revoked".into());
        item.activated_at = Some(at(T0));
        item.expires_at = Some(at(T0 + 3600));
        item.annotations
            .insert("revoke.gatehouse.dev/by".into(), "alice".into());
        let text = render(&item, Timestamp::from_second(T0 + 60).expect("valid"));
        assert!(
            text.contains("Grant expires:    2026-01-01T11:00:00Z\n"),
            "{text}"
        );
        assert!(text.contains("Revoked by:       alice\n"), "{text}");
    }

    #[test]
    fn says_when_nothing_is_decided_and_what_the_operator_has_not_seen() {
        let mut item = Summary::new(Kind::DataSharingAgreement, "orders", "share", "erin");
        item.phase = Some("Pending".into());
        item.required_approvals = vec!["data-owner".into()];
        item.annotations
            .insert("approve.gatehouse.dev/data-owner".into(), "carol".into());
        item.annotations
            .insert("revoke.gatehouse.dev/by".into(), "erin".into());
        let text = render(&item, Timestamp::from_second(T0).expect("valid"));
        assert!(text.contains("No decisions recorded yet.\n"), "{text}");
        assert!(text.contains("Waiting for:       data-owner\n"), "{text}");
        assert!(text.contains("Share activated:   <none>\n"), "{text}");
        assert!(text.contains("Revoked by:        erin\n"), "{text}");
        assert!(
            text.contains(
                "Not yet recorded:  approve.gatehouse.dev/data-owner=carol (the operator has not observed it yet)\n"
            ),
            "{text}"
        );
        assert!(text.ends_with("Conditions: <none>\n"), "{text}");
    }

    #[test]
    fn recorded_or_ignored_decisions_are_not_reported_as_unrecorded() {
        let mut item = Summary::new(Kind::AccessRequest, "p", "a", "alice");
        item.annotations
            .insert("approve.gatehouse.dev/manager".into(), "bob".into());
        item.annotations
            .insert("deny.gatehouse.dev/security".into(), "alice".into());
        item.annotations
            .insert("reason.gatehouse.dev/security".into(), "no".into());
        item.approvals = vec![record("manager", "bob", Decision::Approved, None, T0)];
        item.ignored_annotations = vec![
            "deny.gatehouse.dev/security is by the requester \"alice\", who may not decide on their own request; it does not count".into(),
        ];
        assert!(unrecorded_decisions(&item).is_empty());
        item.approvals.clear();
        assert_eq!(
            unrecorded_decisions(&item),
            vec!["approve.gatehouse.dev/manager=bob"]
        );
    }

    #[test]
    fn shows_what_a_request_grants_to_whom_and_where() {
        let mut item = Summary::new(Kind::AccessRequest, "payments", "oncall-read", "alice");
        item.phase = Some("Pending".into());
        item.grants = Some("ClusterRole/db-reader".into());
        item.subjects = Some("Group oncall, ServiceAccount ci/deployer".into());
        item.scope = Some("cluster-wide".into());
        let text = render(&item, Timestamp::from_second(T0).expect("valid"));
        assert!(
            text.contains(
                "Phase:            Pending\n\
                 Grants:           ClusterRole/db-reader\n\
                 Subjects:         Group oncall, ServiceAccount ci/deployer\n\
                 Scope:            cluster-wide\n\
                 Required:         <none>\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn marks_the_recipient_consent_and_where_it_is_decided() {
        let mut item = Summary::new(Kind::DataSharingAgreement, "orders", "share", "erin");
        item.phase = Some("Active".into());
        item.required_approvals = vec!["data-owner".into(), "recipient-owner".into()];
        item.recipient_approvals = vec!["recipient-owner".into()];
        item.recipient_namespace = Some("analytics".into());
        item.approvals = vec![
            record("data-owner", "carol", Decision::Approved, None, T0),
            record("recipient-owner", "frank", Decision::Approved, None, T0 + 5),
        ];
        let text = render(&item, Timestamp::from_second(T0 + 10).expect("valid"));
        assert!(
            text.contains(
                "2026-01-01T10:00:05Z   recipient-owner (recipient consent)   frank   Approved"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "Required:           data-owner, recipient-owner (recipient consent)\n\
                 Recipient consent:  recipient-owner, decided by holders of the right in the recipient namespace analytics\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_unrecorded_request_for_changes_is_reported() {
        let mut item = Summary::new(Kind::DataSharingAgreement, "orders", "share", "erin");
        item.annotations
            .insert("changes.gatehouse.dev/data-owner".into(), "carol".into());
        assert_eq!(
            unrecorded_decisions(&item),
            vec!["changes.gatehouse.dev/data-owner=carol"]
        );
        item.approvals = vec![record(
            "data-owner",
            "carol",
            Decision::ChangesRequested,
            None,
            T0,
        )];
        assert!(unrecorded_decisions(&item).is_empty());
    }
}
