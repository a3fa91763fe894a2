//! `kubectl gatehouse approvers`: who may decide each stage a request or agreement waits for, as
//! the operator listed it in `status.approvers`, so that requesters know whom to ask.

use super::Summary;
use super::table;
use crate::api::conditions::stage_condition;

/// The text: one row per person, group or ServiceAccount who may decide a waiting stage, then
/// why a stage nobody can decide waits (its condition's message).
pub fn render(item: &Summary) -> String {
    let mut out = format!(
        "{} {}/{}, requested by {}\n\n",
        item.kind.name(),
        item.namespace,
        item.name,
        item.requester
    );
    if item.approvers.is_empty() {
        let phase = item.phase.as_deref().unwrap_or("not yet reconciled");
        out.push_str(&format!("No stage waits for a decision (phase {phase}).\n"));
        return out;
    }
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut nobody = Vec::new();
    for stage in &item.approvers {
        let row =
            |kind: &str, name: &str| vec![stage.role.clone(), kind.to_string(), name.to_string()];
        let before = rows.len();
        if let Some(manager) = &stage.manager {
            rows.push(row("Manager", manager));
        }
        rows.extend(stage.users.iter().map(|u| row("User", u)));
        rows.extend(stage.groups.iter().map(|g| row("Group", g)));
        rows.extend(
            stage
                .service_accounts
                .iter()
                .map(|s| row("ServiceAccount", s)),
        );
        if let Some(more) = stage.more {
            rows.push(row("", &format!("and {more} more not listed")));
        }
        if rows.len() == before {
            rows.push(row(table::NONE, table::NONE));
            nobody.push(stage.role.as_str());
        }
    }
    out.push_str(&table::render(&["ROLE", "KIND", "NAME"], &rows));
    for role in nobody {
        let condition = stage_condition(role);
        let why = item
            .conditions
            .iter()
            .find(|c| c.type_ == condition)
            .map(|c| c.message.as_str())
            .unwrap_or("nobody the operator can see holds the right");
        out.push_str(&format!("\nNobody can decide {role}: {why}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::common::StageApprovers;
    use crate::plugin::Kind;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;

    fn waiting() -> Summary {
        let mut item = Summary::new(Kind::AccessRequest, "payments", "dave-read", "dave");
        item.phase = Some("Pending".into());
        item.approvers = vec![
            StageApprovers {
                role: "manager".into(),
                manager: Some("erin".into()),
                ..Default::default()
            },
            StageApprovers {
                role: "data-owner".into(),
                users: vec!["bob".into()],
                groups: vec!["owners".into()],
                service_accounts: vec!["payments/bot".into()],
                more: Some(3),
                ..Default::default()
            },
        ];
        item
    }

    #[test]
    fn lists_every_holder_by_stage() {
        assert_eq!(
            render(&waiting()),
            "AccessRequest payments/dave-read, requested by dave\n\n\
             ROLE         KIND             NAME\n\
             manager      Manager          erin\n\
             data-owner   User             bob\n\
             data-owner   Group            owners\n\
             data-owner   ServiceAccount   payments/bot\n\
             data-owner                    and 3 more not listed\n"
        );
    }

    #[test]
    fn a_stage_nobody_can_decide_says_why() {
        let mut item = waiting();
        item.approvers[0].manager = None;
        item.conditions = vec![Condition {
            type_: stage_condition("manager"),
            status: "False".into(),
            reason: "NoManager".into(),
            message: "OrgChart gatehouse has no entry for 'dave'".into(),
            last_transition_time: Time(Timestamp::UNIX_EPOCH),
            observed_generation: None,
        }];
        let text = render(&item);
        assert!(text.contains("manager      <none>"), "{text}");
        assert!(
            text.ends_with(
                "\nNobody can decide manager: OrgChart gatehouse has no entry for 'dave'\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn nothing_waiting_says_the_phase() {
        let mut item = Summary::new(Kind::DataSharingAgreement, "orders", "share", "dave");
        item.phase = Some("Active".into());
        assert!(render(&item).ends_with("No stage waits for a decision (phase Active).\n"));
    }
}
