//! What policies select: label selectors for namespaces, and name patterns (`*` wildcards) for
//! subjects.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

/// Whether `selector` selects an object with `labels`. An unset selector selects nothing (fail
/// closed); an empty one (`{}`) selects everything, as in Kubernetes. A selector that cannot be
/// parsed selects nothing; the policy's author learns of it from the refusal message.
pub fn selects(selector: Option<&LabelSelector>, labels: &BTreeMap<String, String>) -> bool {
    let Some(selector) = selector else {
        return false;
    };
    Selector::try_from(selector.clone()).is_ok_and(|s| s.matches(labels))
}

/// A selector as its author wrote it, for refusal messages: `matchLabels team=payments`,
/// `matchExpressions tier In (gold, silver)`, `{} (selects everything)` or `unset (selects
/// nothing)`.
pub fn describe(selector: Option<&LabelSelector>) -> String {
    let Some(selector) = selector else {
        return "unset (selects nothing)".to_string();
    };
    let mut parts = Vec::new();
    if let Some(labels) = selector.match_labels.as_ref().filter(|l| !l.is_empty()) {
        let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.push(format!("matchLabels {}", pairs.join(", ")));
    }
    if let Some(expressions) = selector
        .match_expressions
        .as_ref()
        .filter(|e| !e.is_empty())
    {
        let described: Vec<String> = expressions
            .iter()
            .map(|e| match e.values.as_deref() {
                Some(values) if !values.is_empty() => {
                    format!("{} {} ({})", e.key, e.operator, values.join(", "))
                }
                _ => format!("{} {}", e.key, e.operator),
            })
            .collect();
        parts.push(format!("matchExpressions {}", described.join(", ")));
    }
    if parts.is_empty() {
        "{} (selects everything)".to_string()
    } else {
        parts.join("; ")
    }
}

/// Whether `value` matches `pattern`, in which `*` matches any run of characters (also none) and
/// every other character matches itself. No other character is special, so a name can never be
/// read as a pattern by accident: `a.b` matches only `a.b`, `[x]` only `[x]`.
pub fn pattern_matches(pattern: &str, value: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let value: Vec<char> = value.chars().collect();
    // Greedy match with backtracking to the last `*`: linear in practice, never exponential.
    let (mut p, mut v) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while v < value.len() {
        if p < pattern.len() && pattern[p] == '*' {
            last_star = Some((p, v));
            p += 1;
        } else if p < pattern.len() && pattern[p] == value[v] {
            p += 1;
            v += 1;
        } else if let Some((star, matched)) = last_star {
            // Let the last `*` swallow one more character and retry from there.
            p = star + 1;
            v = matched + 1;
            last_star = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn match_labels(pairs: &[(&str, &str)]) -> LabelSelector {
        LabelSelector {
            match_labels: Some(labels(pairs)),
            ..Default::default()
        }
    }

    #[test]
    fn unset_selects_nothing_and_empty_selects_everything() {
        assert!(!selects(None, &labels(&[("team", "payments")])));
        assert!(selects(Some(&LabelSelector::default()), &labels(&[])));
    }

    #[test]
    fn match_labels_must_all_match() {
        let selector = match_labels(&[("team", "payments")]);
        assert!(selects(
            Some(&selector),
            &labels(&[("team", "payments"), ("env", "prod")])
        ));
        assert!(!selects(Some(&selector), &labels(&[("team", "orders")])));
    }

    #[test]
    fn patterns_match_runs_of_characters_at_stars_only() {
        for (pattern, value) in [
            ("alice", "alice"),
            ("*", ""),
            ("*", "anything:at all"),
            ("oncall-*", "oncall-"),
            ("oncall-*", "oncall-payments"),
            ("*@example.com", "bob@example.com"),
            ("a*b*c", "abc"),
            ("a*b*c", "aXXbYYbZc"),
            ("**", "x"),
            ("a.b", "a.b"),
            ("[x]", "[x]"),
            ("ünï*", "ünïcode"),
        ] {
            assert!(pattern_matches(pattern, value), "{pattern} ~ {value}");
        }
        for (pattern, value) in [
            ("alice", "alice2"),
            ("alice", "xalice"),
            ("alice", ""),
            ("oncall-*", "oncall"),
            ("*@example.com", "bob@example.com.evil"),
            ("a*b*c", "acb"),
            ("a.b", "aXb"),
            ("a?c", "abc"),
            ("", "a"),
        ] {
            assert!(!pattern_matches(pattern, value), "{pattern} !~ {value}");
        }
    }

    #[test]
    fn describes_selectors_as_written() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
        assert_eq!(
            describe(Some(&match_labels(&[("team", "payments")]))),
            "matchLabels team=payments"
        );
        let selector = LabelSelector {
            match_labels: Some(labels(&[("a", "1"), ("b", "2")])),
            match_expressions: Some(vec![
                LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["gold".into(), "silver".into()]),
                },
                LabelSelectorRequirement {
                    key: "pci".into(),
                    operator: "Exists".into(),
                    values: None,
                },
            ]),
        };
        assert_eq!(
            describe(Some(&selector)),
            "matchLabels a=1, b=2; matchExpressions tier In (gold, silver), pci Exists"
        );
        assert_eq!(
            describe(Some(&LabelSelector::default())),
            "{} (selects everything)"
        );
        assert_eq!(describe(None), "unset (selects nothing)");
    }
}

#[cfg(test)]
mod properties {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, tricky_text};

    /// A selector as a policy could hold it: operators and keys from valid to garbage.
    fn label_selector() -> impl Strategy<Value = LabelSelector> {
        let requirement = (
            prop_oneof![Just("team".to_string()), tricky_text()],
            prop_oneof![
                Just("In"),
                Just("NotIn"),
                Just("Exists"),
                Just("DoesNotExist"),
                Just("in"),
                Just("")
            ],
            prop::option::of(prop::collection::vec(
                prop_oneof![Just("gold".to_string()), tricky_text()],
                0..3,
            )),
        )
            .prop_map(|(key, operator, values)| LabelSelectorRequirement {
                key,
                operator: operator.to_string(),
                values,
            });
        (
            prop::option::of(prop::collection::btree_map(
                tricky_text(),
                tricky_text(),
                0..3,
            )),
            prop::option::of(prop::collection::vec(requirement, 0..3)),
        )
            .prop_map(|(match_labels, match_expressions)| LabelSelector {
                match_labels,
                match_expressions,
            })
    }

    proptest! {
        #![proptest_config(config())]

        /// Any selector, against any labels: a verdict and a description, never a panic.
        #[test]
        fn any_selector_is_decided_and_described(
            selector in label_selector(),
            labels in prop::collection::btree_map(prop_oneof![Just("team".to_string()), tricky_text()], tricky_text(), 0..3),
        ) {
            selects(Some(&selector), &labels);
            prop_assert!(!describe(Some(&selector)).is_empty());
        }

        /// `*` matches anything, a text without `*` only itself, and a pattern made of pieces of
        /// a value joined by `*` matches it.
        #[test]
        fn patterns_match_as_globs(value in tricky_text(), cut in any::<prop::sample::Index>()) {
            prop_assert!(pattern_matches("*", &value));
            let literal = value.replace('*', "");
            prop_assert!(pattern_matches(&literal, &literal));
            let longer = format!("{literal}x");
            prop_assert!(!pattern_matches(&literal, &longer));
            let chars: Vec<char> = literal.chars().collect();
            let at = cut.index(chars.len() + 1);
            let (head, tail): (String, String) = (chars[..at].iter().collect(), chars[at..].iter().collect());
            let pattern = format!("{head}*{tail}");
            prop_assert!(pattern_matches(&pattern, &literal), "{:?} {:?}", pattern, literal);
        }
    }
}
