//! What waits for the user: requests and agreements still in review whose open roles include one
//! the user may approve.
//!
//! The binary lists the objects, asks [`checks_needed`] which `(namespace, role)` pairs to check
//! with a SelfSubjectAccessReview (each once), and hands the allowed pairs to [`pending_rows`].

use std::collections::BTreeSet;

use k8s_openapi::jiff::Timestamp;

use super::Summary;
use super::summary::is_open_phase;
use super::table::{self, NONE};
use crate::api::common::Decision;
use crate::api::{APPROVE_PREFIX, DENY_PREFIX};

/// A `(namespace, approver role)` pair the user holds verb `approve` for.
pub type Allowed = BTreeSet<(String, String)>;

/// The roles still to approve, in stage order: `status.waitingFor`, or when the operator has not
/// written it, `status.requiredApprovals` minus the roles that approved.
pub fn waiting_roles(item: &Summary) -> Vec<String> {
    match item.waiting_for.as_deref() {
        Some(waiting) => waiting
            .split(',')
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_string)
            .collect(),
        None => item
            .required_approvals
            .iter()
            .filter(|role| {
                !item
                    .approvals
                    .iter()
                    .any(|a| &a.role == *role && a.decision == Decision::Approved)
            })
            .cloned()
            .collect(),
    }
}

/// The waiting roles nobody has decided on yet: a role approved out of order stays in
/// `waitingFor` until the earlier stages pass, but needs no one's decision any more. A decision
/// the operator has not recorded yet (only the annotation) counts too.
pub fn open_roles(item: &Summary) -> Vec<String> {
    waiting_roles(item)
        .into_iter()
        .filter(|role| {
            !item.approvals.iter().any(|a| &a.role == role)
                && !item
                    .annotations
                    .contains_key(&format!("{APPROVE_PREFIX}{role}"))
                && !item
                    .annotations
                    .contains_key(&format!("{DENY_PREFIX}{role}"))
        })
        .collect()
}

/// Whether `user` could decide on `item` at all: still open, and neither its requester nor one
/// who would receive the access (the admission policies refuse those).
fn actionable_by(item: &Summary, user: &str) -> bool {
    item.phase.as_deref().is_some_and(is_open_phase)
        && item.requester != user
        && !item.subject_users.iter().any(|u| u == user)
}

/// The `(namespace, role)` pairs to check for `user`, each once.
pub fn checks_needed(items: &[Summary], user: &str) -> Allowed {
    items
        .iter()
        .filter(|item| actionable_by(item, user))
        .flat_map(|item| {
            open_roles(item)
                .into_iter()
                .filter(|role| !item.manager_approvals.contains(role))
                .map(|role| (item.namespace.clone(), role))
        })
        .collect()
}

/// Whether `user` may decide `role` of `item`: for a stage the requester's manager decides, when
/// the operator lists them as that manager (RBAC grants nothing there); otherwise when they
/// hold the right there (`allowed`).
fn may_decide(item: &Summary, role: &str, user: &str, allowed: &Allowed) -> bool {
    if item.manager_approvals.iter().any(|m| m == role) {
        item.approvers
            .iter()
            .any(|a| a.role == role && a.manager.as_deref() == Some(user))
    } else {
        allowed.contains(&(item.namespace.clone(), role.to_string()))
    }
}

/// One object waiting for the user.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingRow<'a> {
    pub item: &'a Summary,
    /// The open roles the user may decide for, in stage order.
    pub roles: Vec<String>,
    /// Every role still to approve, in stage order.
    pub waiting: Vec<String>,
}

/// The objects waiting for `user`, given the pairs the user may approve for, sorted by
/// namespace, kind and name.
pub fn pending_rows<'a>(
    items: &'a [Summary],
    user: &str,
    allowed: &Allowed,
) -> Vec<PendingRow<'a>> {
    let mut rows: Vec<PendingRow<'a>> = items
        .iter()
        .filter(|item| actionable_by(item, user))
        .filter_map(|item| {
            let roles: Vec<String> = open_roles(item)
                .into_iter()
                .filter(|role| may_decide(item, role, user, allowed))
                .collect();
            (!roles.is_empty()).then(|| PendingRow {
                item,
                roles,
                waiting: waiting_roles(item),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (&a.item.namespace, a.item.kind, &a.item.name).cmp(&(
            &b.item.namespace,
            b.item.kind,
            &b.item.name,
        ))
    });
    rows
}

/// The table `kubectl gatehouse pending` prints, and under it, for the AccessRequests among the
/// rows, what each would grant: the role, to whom, and where.
pub fn render(rows: &[PendingRow<'_>], now: Timestamp) -> String {
    let mut out = render_waiting(rows, now);
    let grants = render_grants(rows);
    if !grants.is_empty() {
        out.push('\n');
        out.push_str(&grants);
    }
    out
}

/// What the AccessRequests among `rows` grant: `ACCESS REQUEST`, `GRANTS` (the role),
/// `SUBJECTS` and `SCOPE` (namespaces or `cluster-wide`); empty when no row says.
pub fn render_grants(rows: &[PendingRow<'_>]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .filter_map(|row| {
            let item = row.item;
            let subjects = item.subjects.as_ref()?;
            Some(vec![
                format!("{}/{}", item.namespace, item.name),
                item.grants.clone().unwrap_or_else(|| NONE.to_string()),
                subjects.clone(),
                item.scope.clone().unwrap_or_else(|| NONE.to_string()),
            ])
        })
        .collect();
    if cells.is_empty() {
        return String::new();
    }
    table::render(&["ACCESS REQUEST", "GRANTS", "SUBJECTS", "SCOPE"], &cells)
}

fn render_waiting(rows: &[PendingRow<'_>], now: Timestamp) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            vec![
                row.item.kind.name().to_string(),
                row.item.namespace.clone(),
                row.item.name.clone(),
                row.item.requester.clone(),
                row.roles.join(","),
                if row.waiting.is_empty() {
                    NONE.to_string()
                } else {
                    row.waiting.join(",")
                },
                table::age(row.item.created.as_ref(), now),
            ]
        })
        .collect();
    table::render(
        &[
            "KIND",
            "NAMESPACE",
            "NAME",
            "REQUESTER",
            "ROLE",
            "WAITING FOR",
            "AGE",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::ApprovalRecord;
    use crate::plugin::Kind;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn request(ns: &str, name: &str, waiting: Option<&str>) -> Summary {
        let mut item = Summary::new(Kind::AccessRequest, ns, name, "alice");
        item.subject_users = vec!["alice".into()];
        item.phase = Some("Pending".into());
        item.required_approvals = vec!["manager".into(), "data-owner".into()];
        item.waiting_for = waiting.map(str::to_string);
        item
    }

    fn approved(role: &str, user: &str) -> ApprovalRecord {
        ApprovalRecord {
            role: role.into(),
            user: user.into(),
            decision: Decision::Approved,
            reason: None,
            time: None,
        }
    }

    fn allowed(pairs: &[(&str, &str)]) -> Allowed {
        pairs
            .iter()
            .map(|(ns, role)| (ns.to_string(), role.to_string()))
            .collect()
    }

    #[test]
    fn a_manager_stage_waits_for_the_listed_manager_whatever_rbac_says() {
        let mut item = request("payments", "alice-read", Some("manager,data-owner"));
        item.manager_approvals = vec!["manager".into()];
        item.approvers = vec![crate::api::common::StageApprovers {
            role: "manager".into(),
            manager: Some("erin".into()),
            ..Default::default()
        }];
        let items = [item];
        assert_eq!(
            checks_needed(&items, "erin"),
            allowed(&[("payments", "data-owner")]),
            "no right is checked for the manager stage"
        );
        let rows = pending_rows(&items, "erin", &Allowed::new());
        assert_eq!(rows[0].roles, ["manager"]);
        let holder = allowed(&[("payments", "manager")]);
        assert!(
            pending_rows(&items, "mallory", &holder).is_empty(),
            "holding the role's right does not make mallory the manager"
        );
    }

    #[test]
    fn waiting_roles_come_from_waiting_for_or_required_minus_approved() {
        let item = request("p", "a", Some("manager, data-owner"));
        assert_eq!(waiting_roles(&item), vec!["manager", "data-owner"]);
        let mut item = request("p", "a", None);
        item.approvals = vec![approved("manager", "bob")];
        assert_eq!(waiting_roles(&item), vec!["data-owner"]);
    }

    #[test]
    fn a_role_already_decided_is_not_open_even_before_the_operator_records_it() {
        let mut item = request("p", "a", Some("manager,data-owner"));
        item.approvals = vec![approved("data-owner", "carol")];
        assert_eq!(open_roles(&item), vec!["manager"]);
        item.annotations
            .insert("approve.gatehouse.dev/manager".into(), "bob".into());
        assert!(open_roles(&item).is_empty());
    }

    #[test]
    fn lists_only_what_the_user_may_approve_where_they_may() {
        let items = vec![
            request(
                "payments",
                "b-waits-for-manager",
                Some("manager,data-owner"),
            ),
            request("payments", "a-waits-for-owner", Some("data-owner")),
            request("orders", "elsewhere", Some("data-owner")),
        ];
        let carol = allowed(&[("payments", "data-owner")]);
        let rows = pending_rows(&items, "carol", &carol);
        let listed: Vec<(&str, Vec<String>)> = rows
            .iter()
            .map(|r| (r.item.name.as_str(), r.roles.clone()))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("a-waits-for-owner", vec!["data-owner".to_string()]),
                ("b-waits-for-manager", vec!["data-owner".to_string()]),
            ],
            "sorted by name; the orders request needs a right carol lacks there"
        );
        assert_eq!(rows[1].waiting, vec!["manager", "data-owner"]);
        assert!(pending_rows(&items, "mallory", &allowed(&[])).is_empty());
    }

    #[test]
    fn closed_own_or_received_requests_are_never_pending() {
        let mut active = request("p", "active", Some("manager"));
        active.phase = Some("Active".into());
        let mut unobserved = request("p", "new", Some("manager"));
        unobserved.phase = None;
        let alices = request("p", "alices", Some("manager"));
        let mut receives = request("p", "receives", Some("manager"));
        receives.requester = "erin".into();
        receives.subject_users = vec!["bob".into()];
        let mut agreement = Summary::new(Kind::DataSharingAgreement, "p", "share", "erin");
        agreement.phase = Some("AwaitingAgreement".into());
        agreement.waiting_for = Some("manager".into());
        let items = vec![active, unobserved, alices, receives, agreement];
        let all = allowed(&[("p", "manager")]);
        assert_eq!(checks_needed(&items, "bob"), all);
        let names = |user: &str| -> Vec<String> {
            pending_rows(&items, user, &all)
                .iter()
                .map(|r| r.item.name.clone())
                .collect()
        };
        assert_eq!(
            names("bob"),
            vec!["alices", "share"],
            "not what bob receives"
        );
        assert_eq!(names("alice"), vec!["receives", "share"], "not her own");
        assert_eq!(names("erin"), vec!["alices"], "not her own agreement");
        assert_eq!(checks_needed(&items, "nobody"), all);
    }

    #[test]
    fn checks_each_namespace_and_role_once() {
        let items = vec![
            request("payments", "a", Some("manager,data-owner")),
            request("payments", "b", Some("manager")),
            request("orders", "c", Some("manager")),
        ];
        assert_eq!(
            checks_needed(&items, "bob"),
            allowed(&[
                ("orders", "manager"),
                ("payments", "data-owner"),
                ("payments", "manager")
            ])
        );
    }

    #[test]
    fn renders_the_pending_table() {
        let mut item = request("payments", "alice-read", Some("data-owner"));
        item.created = Some(Time(Timestamp::from_second(940).expect("valid")));
        let items = vec![item];
        let rows = pending_rows(&items, "carol", &allowed(&[("payments", "data-owner")]));
        let now = Timestamp::from_second(1_000).expect("valid");
        assert_eq!(
            render(&rows, now),
            "KIND            NAMESPACE   NAME         REQUESTER   ROLE         WAITING FOR   AGE\n\
             AccessRequest   payments    alice-read   alice       data-owner   data-owner    60s\n"
        );
    }

    #[test]
    fn shows_what_each_request_would_grant_to_whom_and_where() {
        let mut item = request("payments", "alice-read", Some("data-owner"));
        item.created = Some(Time(Timestamp::from_second(940).expect("valid")));
        item.grants = Some("ClusterRole/db-reader".into());
        item.subjects = Some("User alice, Group oncall".into());
        item.scope = Some("orders, payments".into());
        let mut agreement = Summary::new(Kind::DataSharingAgreement, "payments", "share", "erin");
        agreement.phase = Some("Pending".into());
        agreement.waiting_for = Some("data-owner".into());
        agreement.created = item.created.clone();
        let items = vec![item, agreement];
        let rows = pending_rows(&items, "carol", &allowed(&[("payments", "data-owner")]));
        let now = Timestamp::from_second(1_000).expect("valid");
        assert_eq!(
            render(&rows, now),
            "KIND                   NAMESPACE   NAME         REQUESTER   ROLE         WAITING FOR   AGE\n\
             AccessRequest          payments    alice-read   alice       data-owner   data-owner    60s\n\
             DataSharingAgreement   payments    share        erin        data-owner   data-owner    60s\n\
             \n\
             ACCESS REQUEST        GRANTS                  SUBJECTS                   SCOPE\n\
             payments/alice-read   ClusterRole/db-reader   User alice, Group oncall   orders, payments\n"
        );
    }
}
