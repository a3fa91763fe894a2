//! Approvers narrowing what they approve: together with `approve.gatehouse.dev/<role>` an approver
//! may set `duration.gatehouse.dev/<role>` (shorter than asked) and, on an AccessRequest,
//! `namespaces.gatehouse.dev/<role>` (a subset). Admission (policy `gatehouse-narrowing`) admits
//! them only in the update that adds the approval, never wider, never changed; here the narrowest
//! of all approvals becomes what is provided. A narrowing can only ever take away, so one is
//! applied whenever its approval annotation exists; one the operator cannot read keeps its
//! approval from counting (fail closed).

use std::collections::BTreeMap;
use std::time::Duration;

use super::duration;
use crate::api::common::{ApprovedScope, Narrowing, Scope};
use crate::api::{APPROVE_PREFIX, DURATION_PREFIX, NAMESPACES_PREFIX};

/// What was asked for.
pub struct Asked<'a> {
    pub duration: Duration,
    /// The namespaces asked for, or why namespaces cannot be narrowed (a cluster-wide request, an
    /// agreement).
    pub namespaces: Result<&'a [String], &'a str>,
}

/// The narrowings of an object's approvals.
#[derive(Debug, Default, PartialEq)]
pub struct Narrowed {
    by: Vec<Narrowing>,
    durations: Vec<Duration>,
    /// Per narrowing approver, the namespaces asked for that they approved (possibly none).
    namespaces: Vec<(String, Vec<String>)>,
    /// Approval annotations that do not count, with why: their narrowing cannot be read.
    pub invalid: Vec<(String, String)>,
}

/// Reads every narrowing that accompanies an approval annotation.
pub fn read(annotations: &BTreeMap<String, String>, asked: &Asked) -> Narrowed {
    let mut narrowed = Narrowed::default();
    for (approval, user) in annotations {
        let Some(role) = approval.strip_prefix(APPROVE_PREFIX) else {
            continue;
        };
        let mut narrowing = Narrowing {
            role: role.to_string(),
            user: user.trim().to_string(),
            ..Narrowing::default()
        };
        let mut problems = Vec::new();
        let mut duration_kept = None;
        let mut namespaces_kept = None;
        if let Some(value) = annotations.get(&format!("{DURATION_PREFIX}{role}")) {
            match duration::parse(value.trim()) {
                Ok(approved) if approved < asked.duration => {
                    narrowing.duration = Some(duration::format(approved));
                    duration_kept = Some(approved);
                }
                // Not shorter: it takes nothing away, so the duration asked for stands.
                Ok(_) => {}
                Err(why) => problems.push(format!("{DURATION_PREFIX}{role}: {why}")),
            }
        }
        if let Some(value) = annotations.get(&format!("{NAMESPACES_PREFIX}{role}")) {
            match (namespace_list(value), asked.namespaces) {
                (_, Err(why)) => problems.push(format!(
                    "{NAMESPACES_PREFIX}{role} narrows namespaces, but {why}"
                )),
                (Err(why), Ok(_)) => problems.push(format!("{NAMESPACES_PREFIX}{role}: {why}")),
                (Ok(approved), Ok(asked)) => {
                    // Namespaces not asked for are no part of the grant whatever it says.
                    let kept: Vec<String> = asked
                        .iter()
                        .filter(|ns| approved.contains(ns))
                        .cloned()
                        .collect();
                    if kept.len() < asked.len() {
                        narrowing.namespaces = kept.clone();
                        namespaces_kept = Some(kept);
                    }
                }
            }
        }
        if !problems.is_empty() {
            narrowed.invalid.push((
                approval.clone(),
                format!(
                    "{approval} by {} does not count: {}",
                    narrowing.user,
                    problems.join("; ")
                ),
            ));
            continue;
        }
        narrowed.durations.extend(duration_kept);
        if let Some(kept) = namespaces_kept {
            narrowed.namespaces.push((role.to_string(), kept));
        }
        if duration_kept.is_some() || narrowed.namespaces.iter().any(|(r, _)| r == role) {
            narrowed.by.push(narrowing);
        }
    }
    narrowed
}

/// A comma-separated namespace list, e.g. `payments, billing`.
pub fn namespace_list(value: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .collect();
    if names.is_empty() {
        return Err(format!(
            "{value:?} names no namespace; write a comma-separated subset of spec.namespaces, e.g. payments,billing"
        ));
    }
    Ok(names)
}

impl Narrowed {
    /// The duration every approval allows.
    pub fn duration(&self, asked: Duration) -> Duration {
        self.durations.iter().copied().fold(asked, Duration::min)
    }

    /// The namespaces every approval allows, in the order asked.
    pub fn namespaces(&self, asked: &[String]) -> Vec<String> {
        asked
            .iter()
            .filter(|ns| self.namespaces.iter().all(|(_, kept)| kept.contains(ns)))
            .cloned()
            .collect()
    }

    /// The namespaces `role`'s approver approved, when they narrowed them: where their right
    /// must hold.
    pub fn namespaces_of(&self, role: &str) -> Option<&[String]> {
        self.namespaces
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, kept)| kept.as_slice())
    }

    /// The approvals that narrowed namespaces down to none in common, when they did: nothing is
    /// left to provide.
    pub fn nothing_left(&self, asked: &[String]) -> Option<String> {
        (!asked.is_empty() && !self.namespaces.is_empty() && self.namespaces(asked).is_empty())
            .then(|| {
                self.by
                    .iter()
                    .filter(|n| self.namespaces_of(&n.role).is_some())
                    .map(|n| format!("{} as {}: [{}]", n.user, n.role, n.namespaces.join(", ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            })
    }

    /// Requested against approved, for the status.
    pub fn scope(&self, asked: &Asked) -> ApprovedScope {
        let asked_namespaces = asked.namespaces.unwrap_or_default();
        ApprovedScope {
            requested: Scope {
                duration: duration::format(asked.duration),
                namespaces: asked_namespaces.to_vec(),
            },
            approved: Scope {
                duration: duration::format(self.duration(asked.duration)),
                namespaces: self.namespaces(asked_namespaces),
            },
            narrowed_by: self.by.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn asked(namespaces: &[String]) -> Asked<'_> {
        Asked {
            duration: 8 * HOUR,
            namespaces: Ok(namespaces),
        }
    }

    #[test]
    fn the_narrowest_duration_and_the_common_namespaces_apply() {
        let namespaces = ["a".to_string(), "b".to_string(), "c".to_string()];
        let narrowed = read(
            &annotations(&[
                ("approve.gatehouse.dev/manager", "bob"),
                ("duration.gatehouse.dev/manager", "4h"),
                ("namespaces.gatehouse.dev/manager", "a, b"),
                ("approve.gatehouse.dev/security", "erin"),
                ("duration.gatehouse.dev/security", "2h"),
                ("namespaces.gatehouse.dev/security", "c,b"),
            ]),
            &asked(&namespaces),
        );
        assert!(narrowed.invalid.is_empty());
        assert_eq!(narrowed.duration(8 * HOUR), 2 * HOUR);
        assert_eq!(narrowed.namespaces(&namespaces), vec!["b".to_string()]);
        assert_eq!(
            narrowed.namespaces_of("manager"),
            Some(&["a".to_string(), "b".to_string()][..])
        );
        assert_eq!(narrowed.namespaces_of("data-owner"), None);
        let scope = narrowed.scope(&asked(&namespaces));
        assert_eq!(scope.requested.duration, "8h");
        assert_eq!(scope.approved.duration, "2h");
        assert_eq!(scope.approved.namespaces, vec!["b".to_string()]);
        assert_eq!(scope.narrowed_by.len(), 2);
        assert_eq!(narrowed.nothing_left(&namespaces), None);
    }

    #[test]
    fn a_narrowing_without_its_approval_or_wider_than_asked_takes_nothing() {
        let namespaces = ["a".to_string(), "b".to_string()];
        let narrowed = read(
            &annotations(&[
                // No approval for this role: it narrows nothing.
                ("duration.gatehouse.dev/manager", "1h"),
                ("namespaces.gatehouse.dev/manager", "a"),
                ("approve.gatehouse.dev/security", "erin"),
                ("duration.gatehouse.dev/security", "10h"),
                ("namespaces.gatehouse.dev/security", "a,b,z"),
            ]),
            &asked(&namespaces),
        );
        assert!(narrowed.invalid.is_empty());
        assert_eq!(narrowed.duration(8 * HOUR), 8 * HOUR);
        assert_eq!(narrowed.namespaces(&namespaces), namespaces.to_vec());
        assert!(narrowed.scope(&asked(&namespaces)).narrowed_by.is_empty());
    }

    #[test]
    fn an_unreadable_narrowing_keeps_its_approval_from_counting() {
        let namespaces = ["a".to_string()];
        for (key, value) in [
            ("duration.gatehouse.dev/manager", "soon"),
            ("duration.gatehouse.dev/manager", "0s"),
            ("namespaces.gatehouse.dev/manager", " , "),
        ] {
            let narrowed = read(
                &annotations(&[("approve.gatehouse.dev/manager", "bob"), (key, value)]),
                &asked(&namespaces),
            );
            assert_eq!(narrowed.invalid.len(), 1, "{key}={value}");
            assert_eq!(narrowed.invalid[0].0, "approve.gatehouse.dev/manager");
            assert!(
                narrowed.invalid[0].1.contains(key),
                "{}",
                narrowed.invalid[0].1
            );
        }
        let cluster_wide = read(
            &annotations(&[
                ("approve.gatehouse.dev/manager", "bob"),
                ("namespaces.gatehouse.dev/manager", "a"),
            ]),
            &Asked {
                duration: HOUR,
                namespaces: Err("this request is cluster-wide"),
            },
        );
        assert!(
            cluster_wide.invalid[0]
                .1
                .contains("this request is cluster-wide"),
            "{:?}",
            cluster_wide.invalid
        );
    }

    #[test]
    fn approvals_of_no_namespace_in_common_leave_nothing() {
        let namespaces = ["a".to_string(), "b".to_string()];
        let narrowed = read(
            &annotations(&[
                ("approve.gatehouse.dev/manager", "bob"),
                ("namespaces.gatehouse.dev/manager", "a"),
                ("approve.gatehouse.dev/security", "erin"),
                ("namespaces.gatehouse.dev/security", "b"),
            ]),
            &asked(&namespaces),
        );
        assert!(narrowed.namespaces(&namespaces).is_empty());
        let who = narrowed.nothing_left(&namespaces).expect("nothing left");
        assert!(who.contains("bob as manager: [a]"), "{who}");
        assert!(who.contains("erin as security: [b]"), "{who}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{annotations, config, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// Whatever narrowings are annotated: no panic, and they only ever take away: never a
        /// longer duration nor a namespace not asked for; one that cannot be read keeps its
        /// approval from counting.
        #[test]
        fn narrowing_only_takes_away(annotations in annotations()) {
            let asked_namespaces = ["payments".to_string(), "billing".to_string()];
            let asked = Asked {
                duration: Duration::from_secs(8 * 3600),
                namespaces: Ok(&asked_namespaces),
            };
            let narrowed = read(&annotations, &asked);
            prop_assert!(narrowed.duration(asked.duration) <= asked.duration);
            prop_assert!(narrowed.namespaces(&asked_namespaces).iter().all(|ns| asked_namespaces.contains(ns)));
            for (approval, why) in &narrowed.invalid {
                prop_assert!(approval.starts_with(APPROVE_PREFIX) && annotations.contains_key(approval));
                prop_assert!(why.contains("does not count"), "{}", why);
            }
        }

        /// A namespace list is its non-empty, trimmed, comma-separated names, or an error
        /// saying what to write.
        #[test]
        fn namespace_lists_are_their_names(value in tricky_text()) {
            match namespace_list(&value) {
                Ok(names) => {
                    prop_assert!(!names.is_empty());
                    for name in names {
                        prop_assert!(!name.is_empty() && name.trim() == name && !name.contains(','), "{:?}", name);
                    }
                }
                Err(err) => prop_assert!(err.contains("comma-separated"), "{}", err),
            }
        }
    }
}
