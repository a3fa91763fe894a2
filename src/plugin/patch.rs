//! The annotation patches of the approval protocol, and the checks against what an object already
//! carries, so that a decision that is already made is reported instead of silently sent again.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{PluginError, Target};
use crate::api::{
    APPROVE_PREFIX, CHANGES_PREFIX, DENY_PREFIX, DURATION_PREFIX, NAMESPACES_PREFIX, REASON_PREFIX,
    REVOKE_ANNOTATION,
};

/// An approver's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Approve,
    Deny,
    /// Ask for changes: ends the object like a denial, the reason says what to change.
    RequestChanges,
}

impl Verdict {
    /// The annotation key prefix: `approve.gatehouse.dev/`, `deny.gatehouse.dev/` or
    /// `changes.gatehouse.dev/`.
    pub fn prefix(self) -> &'static str {
        match self {
            Verdict::Approve => APPROVE_PREFIX,
            Verdict::Deny => DENY_PREFIX,
            Verdict::RequestChanges => CHANGES_PREFIX,
        }
    }

    /// The verb, as typed: `approve` or `deny`.
    pub fn verb(self) -> &'static str {
        match self {
            Verdict::Approve => "approve",
            Verdict::Deny => "deny",
            Verdict::RequestChanges => "changes",
        }
    }

    /// The past tense, for reports: `approved` or `denied`.
    pub fn past(self) -> &'static str {
        match self {
            Verdict::Approve => "approved",
            Verdict::Deny => "denied",
            Verdict::RequestChanges => "asked for changes",
        }
    }

    /// The annotation key of this decision for `role`.
    pub fn key(self, role: &str) -> String {
        format!("{}{role}", self.prefix())
    }
}

/// Checks an approver role name: what the AccessPolicy schema allows for `approvals[].role`
/// (a DNS label), which is also what an annotation key's name part allows.
pub fn validate_role(role: &str) -> Result<(), PluginError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = !role.is_empty()
        && role.len() <= 63
        && role
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && edge(role.chars().next())
        && edge(role.chars().last());
    if valid {
        Ok(())
    } else {
        Err(PluginError::InvalidRole {
            role: role.to_string(),
        })
    }
}

/// The reason as it will be written: trimmed, and refused when empty.
pub fn normalize_reason(reason: Option<&str>) -> Result<Option<String>, PluginError> {
    match reason.map(str::trim) {
        None => Ok(None),
        Some("") => Err(PluginError::EmptyReason),
        Some(text) => Ok(Some(text.to_string())),
    }
}

/// What an approver narrows together with their approval (`--duration`, `--namespaces`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Narrow {
    pub duration: Option<String>,
    pub namespaces: Vec<String>,
}

impl Narrow {
    /// The flags as they will be written: a duration the operator reads, namespaces trimmed and
    /// never empty, and namespaces only on an AccessRequest.
    pub fn from_flags(
        target: &Target,
        duration: Option<&str>,
        namespaces: Option<&str>,
    ) -> Result<Self, PluginError> {
        let duration = duration
            .map(|value| {
                crate::lifecycle::duration::parse(value.trim())
                    .map(|_| value.trim().to_string())
                    .map_err(|why| PluginError::InvalidNarrowing {
                        flag: "--duration",
                        why,
                    })
            })
            .transpose()?;
        let namespaces: Vec<String> = match namespaces {
            None => Vec::new(),
            Some(list) => {
                if target.kind != super::Kind::AccessRequest {
                    return Err(PluginError::InvalidNarrowing {
                        flag: "--namespaces",
                        why: "a DataSharingAgreement has no namespaces to narrow; shorten its retention with --duration, or ask for changes".into(),
                    });
                }
                crate::lifecycle::narrowing::namespace_list(list).map_err(|why| {
                    PluginError::InvalidNarrowing {
                        flag: "--namespaces",
                        why,
                    }
                })?
            }
        };
        Ok(Self {
            duration,
            namespaces,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.duration.is_none() && self.namespaces.is_empty()
    }

    /// The annotations it is written as.
    fn annotations(&self, role: &str) -> Vec<(String, String)> {
        let mut annotations = Vec::new();
        if let Some(duration) = &self.duration {
            annotations.push((format!("{DURATION_PREFIX}{role}"), duration.clone()));
        }
        if !self.namespaces.is_empty() {
            annotations.push((
                format!("{NAMESPACES_PREFIX}{role}"),
                self.namespaces.join(","),
            ));
        }
        annotations
    }
}

/// The JSON merge patch that records `user`'s decision for `role`, with the reason and the
/// narrowing if given.
pub fn decision_patch(
    verdict: Verdict,
    role: &str,
    user: &str,
    reason: Option<&str>,
    narrow: &Narrow,
) -> Value {
    let mut annotations = serde_json::Map::new();
    annotations.insert(verdict.key(role), Value::String(user.to_string()));
    for (key, value) in narrow.annotations(role) {
        annotations.insert(key, Value::String(value));
    }
    if let Some(reason) = reason {
        annotations.insert(
            format!("{REASON_PREFIX}{role}"),
            Value::String(reason.to_string()),
        );
    }
    json!({ "metadata": { "annotations": annotations } })
}

/// The JSON merge patch that revokes as `user`.
pub fn revoke_patch(user: &str) -> Value {
    json!({ "metadata": { "annotations": { REVOKE_ANNOTATION: user } } })
}

/// What sending a decision would change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The decision (and reason) are new: send the patch.
    New,
    /// Exactly this decision is already there, and the reason too (or none was given): nothing
    /// to send.
    AlreadyDone,
}

/// Compares the decision `user` wants to make with the annotations `target` carries already.
/// A different decision for the role, by anyone, or a different reason, is final and refused here
/// with what is there; the API server would refuse changes, but not a second, contradicting key.
pub fn check_decision(
    target: &Target,
    annotations: &BTreeMap<String, String>,
    verdict: Verdict,
    role: &str,
    user: &str,
    reason: Option<&str>,
    narrow: &Narrow,
) -> Result<Change, PluginError> {
    let existing: Vec<String> = [Verdict::Approve, Verdict::Deny, Verdict::RequestChanges]
        .into_iter()
        .filter_map(|v| {
            annotations
                .get(&v.key(role))
                .map(|by| (v, by.trim().to_string()))
        })
        .filter(|(v, by)| !(*v == verdict && by == user))
        .map(|(v, by)| format!("{} by {by}", v.past()))
        .collect();
    if !existing.is_empty() {
        return Err(PluginError::AlreadyDecided {
            target: target.to_string(),
            short: target.short(),
            role: role.to_string(),
            existing: existing.join(" and "),
        });
    }
    let recorded_reason = annotations.get(&format!("{REASON_PREFIX}{role}"));
    if let (Some(existing), Some(reason)) = (recorded_reason, reason)
        && existing.trim() != reason
    {
        return Err(PluginError::ReasonAlreadyGiven {
            target: target.to_string(),
            role: role.to_string(),
            existing: existing.clone(),
        });
    }
    let decided = annotations.contains_key(&verdict.key(role));
    let unrecorded: Vec<String> = narrow
        .annotations(role)
        .into_iter()
        .filter(|(key, value)| annotations.get(key) != Some(value))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if decided && !unrecorded.is_empty() {
        return Err(PluginError::NarrowedTooLate {
            target: target.to_string(),
            role: role.to_string(),
            narrowing: unrecorded.join(", "),
        });
    }
    let reason_missing = reason.is_some() && recorded_reason.is_none();
    Ok(if decided && !reason_missing {
        Change::AlreadyDone
    } else {
        Change::New
    })
}

/// Refuses a decision on an object whose phase is known and no longer open: the annotation would
/// change nothing and could never be removed. An object the operator has not observed yet (no
/// phase) is open.
pub fn check_open(target: &Target, phase: Option<&str>) -> Result<(), PluginError> {
    match phase {
        Some(phase) if !super::summary::is_open_phase(phase) => Err(PluginError::NotOpen {
            target: target.to_string(),
            phase: phase.to_string(),
        }),
        _ => Ok(()),
    }
}

/// Compares a revocation by `user` with the annotations `target` carries already.
pub fn check_revocation(
    target: &Target,
    annotations: &BTreeMap<String, String>,
    user: &str,
) -> Result<Change, PluginError> {
    match annotations.get(REVOKE_ANNOTATION).map(|by| by.trim()) {
        None => Ok(Change::New),
        Some(by) if by == user => Ok(Change::AlreadyDone),
        Some(by) => Err(PluginError::AlreadyRevoked {
            target: target.to_string(),
            by: by.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::Kind;

    fn target() -> Target {
        Target {
            kind: Kind::AccessRequest,
            name: "alice-read".into(),
        }
    }

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_patch_carries_the_decision_and_the_reason() {
        assert_eq!(
            decision_patch(Verdict::Approve, "manager", "bob", None, &Narrow::default()),
            json!({ "metadata": { "annotations": { "approve.gatehouse.dev/manager": "bob" } } })
        );
        assert_eq!(
            decision_patch(
                Verdict::Deny,
                "data-owner",
                "carol",
                Some("no ticket"),
                &Narrow::default()
            ),
            json!({ "metadata": { "annotations": {
                "deny.gatehouse.dev/data-owner": "carol",
                "reason.gatehouse.dev/data-owner": "no ticket"
            } } })
        );
        assert_eq!(
            revoke_patch("alice"),
            json!({ "metadata": { "annotations": { "revoke.gatehouse.dev/by": "alice" } } })
        );
    }

    #[test]
    fn role_names_are_dns_labels() {
        for ok in ["manager", "data-owner", "a", "l2-support"] {
            assert!(validate_role(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Manager",
            "data_owner",
            "-x",
            "x-",
            "a/b",
            &"x".repeat(64),
        ] {
            assert!(
                matches!(validate_role(bad), Err(PluginError::InvalidRole { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn reasons_are_trimmed_and_never_empty() {
        assert_eq!(normalize_reason(None).ok(), Some(None));
        assert_eq!(
            normalize_reason(Some("  looks fine ")).ok(),
            Some(Some("looks fine".into()))
        );
        assert!(matches!(
            normalize_reason(Some("  ")),
            Err(PluginError::EmptyReason)
        ));
    }

    #[test]
    fn a_narrowing_goes_with_its_approval_and_never_after_it() {
        let request = target();
        let narrow =
            Narrow::from_flags(&request, Some("20m"), Some(" payments, billing,")).expect("valid");
        assert_eq!(
            decision_patch(Verdict::Approve, "manager", "bob", None, &narrow),
            json!({ "metadata": { "annotations": {
                "approve.gatehouse.dev/manager": "bob",
                "duration.gatehouse.dev/manager": "20m",
                "namespaces.gatehouse.dev/manager": "payments,billing",
            } } })
        );
        let done = annotations(&[("approve.gatehouse.dev/manager", "bob")]);
        let err = check_decision(
            &request,
            &done,
            Verdict::Approve,
            "manager",
            "bob",
            None,
            &narrow,
        )
        .expect_err("too late");
        assert!(
            err.to_string()
                .contains("without duration.gatehouse.dev/manager=20m"),
            "{err}"
        );
        assert!(matches!(
            Narrow::from_flags(&request, Some("soon"), None),
            Err(PluginError::InvalidNarrowing {
                flag: "--duration",
                ..
            })
        ));
        assert!(matches!(
            Narrow::from_flags(&request, None, Some(" , ")),
            Err(PluginError::InvalidNarrowing {
                flag: "--namespaces",
                ..
            })
        ));
        let share: Target = "dsa/orders".parse().expect("target");
        assert!(matches!(
            Narrow::from_flags(&share, None, Some("analytics")),
            Err(PluginError::InvalidNarrowing {
                flag: "--namespaces",
                ..
            })
        ));
    }

    #[test]
    fn a_new_decision_is_sent() {
        let none = annotations(&[("approve.gatehouse.dev/manager", "bob")]);
        assert_eq!(
            check_decision(
                &target(),
                &none,
                Verdict::Approve,
                "data-owner",
                "carol",
                None,
                &Narrow::default()
            )
            .ok(),
            Some(Change::New)
        );
    }

    #[test]
    fn repeating_ones_own_decision_is_a_no_op_unless_it_adds_the_reason() {
        let done = annotations(&[("approve.gatehouse.dev/manager", "bob")]);
        let check = |reason| {
            check_decision(
                &target(),
                &done,
                Verdict::Approve,
                "manager",
                "bob",
                reason,
                &Narrow::default(),
            )
            .ok()
        };
        assert_eq!(check(None), Some(Change::AlreadyDone));
        assert_eq!(check(Some("fine")), Some(Change::New));
        let with_reason = annotations(&[
            ("approve.gatehouse.dev/manager", "bob"),
            ("reason.gatehouse.dev/manager", "fine"),
        ]);
        assert_eq!(
            check_decision(
                &target(),
                &with_reason,
                Verdict::Approve,
                "manager",
                "bob",
                Some("fine"),
                &Narrow::default()
            )
            .ok(),
            Some(Change::AlreadyDone)
        );
    }

    #[test]
    fn a_contradicting_decision_or_reason_is_refused_with_what_is_there() {
        let done = annotations(&[
            ("approve.gatehouse.dev/manager", "bob"),
            ("reason.gatehouse.dev/manager", "fine"),
        ]);
        let err = check_decision(
            &target(),
            &done,
            Verdict::Deny,
            "manager",
            "bob",
            None,
            &Narrow::default(),
        )
        .expect_err("bob already approved");
        assert_eq!(
            err.to_string(),
            "accessrequest.gatehouse.dev/alice-read already has a decision for role \"manager\": approved by bob; decisions are final and cannot be changed (see kubectl gatehouse audit ar/alice-read)"
        );
        assert!(matches!(
            check_decision(
                &target(),
                &done,
                Verdict::Approve,
                "manager",
                "dave",
                None,
                &Narrow::default()
            ),
            Err(PluginError::AlreadyDecided { .. })
        ));
        assert!(matches!(
            check_decision(
                &target(),
                &done,
                Verdict::Approve,
                "manager",
                "bob",
                Some("other"),
                &Narrow::default()
            ),
            Err(PluginError::ReasonAlreadyGiven { .. })
        ));
    }

    #[test]
    fn decisions_are_taken_only_while_the_object_is_open() {
        assert!(check_open(&target(), None).is_ok(), "not observed yet");
        assert!(check_open(&target(), Some("Pending")).is_ok());
        assert!(check_open(&target(), Some("AwaitingAgreement")).is_ok());
        let err = check_open(&target(), Some("Denied")).expect_err("closed");
        assert!(
            err.to_string()
                .starts_with("accessrequest.gatehouse.dev/alice-read is Denied: "),
            "{err}"
        );
    }

    #[test]
    fn a_revocation_happens_once() {
        let none = annotations(&[]);
        let revoked = annotations(&[("revoke.gatehouse.dev/by", "alice")]);
        assert_eq!(
            check_revocation(&target(), &none, "alice").ok(),
            Some(Change::New)
        );
        assert_eq!(
            check_revocation(&target(), &revoked, "alice").ok(),
            Some(Change::AlreadyDone)
        );
        assert!(matches!(
            check_revocation(&target(), &revoked, "dave"),
            Err(PluginError::AlreadyRevoked { .. })
        ));
    }
}
