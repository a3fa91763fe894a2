//! Label selector matching for policies' namespace selectors.

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
}
