//! What a DataSharingAgreement's data is: the effective classification of its sources, read
//! from the labels their owners put on them.
//!
//! The controller reads the source Secrets and ConfigMaps and hands over what it saw as
//! [`ObservedSource`]s; everything here is decided from that, without the cluster. Fails closed: a
//! missing source, a missing key or a label value this module does not understand refuses the
//! share rather than guess a lower sensitivity, and every refusal names the object and what
//! would be accepted. The status records the classification even when a later check refuses, so
//! people see why a share counts as, say, restricted.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::conditions::reason;
use crate::api::{
    CLASSIFICATION_LABEL, Classification, ClassificationResult, DataItem, PERSONAL_DATA_LABEL,
    RESIDENCY_LABEL, SourceKind,
};
use crate::lifecycle::Refusal;

/// The classification of data whose source carries no classification label: not public unless
/// someone says so, and not more than internal without a reason.
pub const UNLABELLED: Classification = Classification::Internal;

/// One `spec.data` item as the controller observed its source object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedSource {
    pub kind: SourceKind,
    pub name: String,
    /// The keys the agreement lists for this object.
    pub listed_keys: Vec<String>,
    /// The object's labels; `None` when the object does not exist. An existing object without
    /// labels is `Some` of an empty map.
    pub labels: Option<BTreeMap<String, String>>,
    /// The keys the object holds (for a Secret `data`, for a ConfigMap `data` and `binaryData`).
    pub present_keys: BTreeSet<String>,
}

impl ObservedSource {
    /// The source a data item names, not (yet) found; `None` when the item names neither or both
    /// of `secret` and `configMap` (the CRD's validation rule prevents that).
    pub fn from_item(item: &DataItem) -> Option<Self> {
        let (kind, name) = match (&item.secret, &item.config_map) {
            (Some(name), None) => (SourceKind::Secret, name),
            (None, Some(name)) => (SourceKind::ConfigMap, name),
            _ => return None,
        };
        Some(Self {
            kind,
            name: name.clone(),
            listed_keys: item.keys.clone(),
            labels: None,
            present_keys: BTreeSet::new(),
        })
    }

    /// This source as found: its labels (`None` for an object without labels) and its keys.
    pub fn found(
        mut self,
        labels: Option<&BTreeMap<String, String>>,
        keys: impl IntoIterator<Item = String>,
    ) -> Self {
        self.labels = Some(labels.cloned().unwrap_or_default());
        self.present_keys = keys.into_iter().collect();
        self
    }

    /// `Secret orders-db`, as refusals name the object.
    pub(super) fn describe(&self) -> String {
        format!("{} {}", self.kind, self.name)
    }
}

/// What the labels of one existing source say.
struct SourceFacts {
    level: Classification,
    labelled: bool,
    personal_data: bool,
    residency: Option<String>,
}

/// The effective classification of the data in `sources` (one per `spec.data` item, in order):
/// the highest level among them, personal data if any source is labelled so, every residency
/// region named, and one human-readable reason per source.
///
/// Refuses (`InvalidSpec`) when a source does not exist, lacks a listed key, or carries a label
/// value that cannot be understood; every problem is reported at once, each prefixed with the
/// `spec.data[i]` it concerns, so one correction fixes them all.
pub fn classify(sources: &[ObservedSource]) -> Result<ClassificationResult, Refusal> {
    if sources.is_empty() {
        return Err(Refusal::new(
            reason::INVALID_SPEC,
            "spec.data: lists no Secret or ConfigMap; name at least one",
        ));
    }
    let mut problems = Vec::new();
    let mut level = Classification::Public;
    let mut personal_data = false;
    let mut residency: Vec<String> = Vec::new();
    let mut reasons = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        let facts = match read_source(source) {
            Ok(facts) => facts,
            Err(found) => {
                problems.extend(
                    found
                        .into_iter()
                        .map(|p| format!("spec.data[{index}]: {p}")),
                );
                continue;
            }
        };
        level = level.max(facts.level);
        personal_data |= facts.personal_data;
        let mut reason = if facts.labelled {
            format!("{}: {}", source.describe(), facts.level)
        } else {
            format!(
                "{}: {} (no {CLASSIFICATION_LABEL} label)",
                source.describe(),
                facts.level
            )
        };
        if facts.personal_data {
            reason.push_str("; personal data");
        }
        if let Some(region) = facts.residency {
            reason.push_str(&format!("; resides in {region}"));
            if !residency.iter().any(|r| r.eq_ignore_ascii_case(&region)) {
                residency.push(region);
            }
        }
        reasons.push(reason);
    }
    if !problems.is_empty() {
        return Err(Refusal::new(reason::INVALID_SPEC, problems.join("; ")));
    }
    Ok(ClassificationResult {
        level,
        personal_data,
        residency,
        reasons,
    })
}

/// Reads one source's labels and checks its listed keys; the problems found, without the
/// `spec.data[i]` prefix, when it cannot be classified.
fn read_source(source: &ObservedSource) -> Result<SourceFacts, Vec<String>> {
    let described = source.describe();
    let Some(labels) = &source.labels else {
        return Err(vec![format!(
            "{described} does not exist in this namespace; create it, or file an agreement that names only existing objects"
        )]);
    };
    let mut problems = Vec::new();

    let mut missing: Vec<&str> = source
        .listed_keys
        .iter()
        .filter(|key| !source.present_keys.contains(*key))
        .map(String::as_str)
        .collect();
    missing.sort_unstable();
    missing.dedup();
    match missing.as_slice() {
        [] => {}
        [key] => problems.push(format!(
            "{described} has no key {key}; list only keys it has"
        )),
        keys => problems.push(format!(
            "{described} has no keys {}; list only keys it has",
            keys.join(", ")
        )),
    }

    let (level, labelled) = match labels.get(CLASSIFICATION_LABEL) {
        None => (UNLABELLED, false),
        Some(value) => match parse_level(value) {
            Some(level) => (level, true),
            None => {
                let allowed: Vec<&str> = Classification::ALL.iter().map(|l| l.name()).collect();
                problems.push(format!(
                    "{described} has {CLASSIFICATION_LABEL}={value:?}, which is not one of {}; its owner must set one of those (or remove the label for internal)",
                    allowed.join(", ")
                ));
                (UNLABELLED, false)
            }
        },
    };

    let personal_data = match labels.get(PERSONAL_DATA_LABEL).map(|v| v.trim()) {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("true") => true,
        Some(value) if value.eq_ignore_ascii_case("false") => false,
        Some(value) => {
            problems.push(format!(
                "{described} has {PERSONAL_DATA_LABEL}={value:?}, which is neither \"true\" nor \"false\"; its owner must set one of those"
            ));
            false
        }
    };

    let residency = match labels.get(RESIDENCY_LABEL).map(|v| v.trim()) {
        None => None,
        Some("") => {
            problems.push(format!(
                "{described} has an empty {RESIDENCY_LABEL} label; its owner must name the region the data must stay in (e.g. EU) or remove the label"
            ));
            None
        }
        Some(region) => Some(region.to_string()),
    };

    if problems.is_empty() {
        Ok(SourceFacts {
            level,
            labelled,
            personal_data,
            residency,
        })
    } else {
        Err(problems)
    }
}

/// A classification label value; case and surrounding spaces are forgiven because they cannot
/// lower the level, anything else is not guessed at.
fn parse_level(value: &str) -> Option<Classification> {
    let value = value.trim();
    Classification::ALL
        .iter()
        .copied()
        .find(|level| level.name().eq_ignore_ascii_case(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::data_sharing_agreement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn keys(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| k.to_string()).collect()
    }

    /// The contract's Secret, existing with every listed key and `labels`.
    fn secret(pairs: &[(&str, &str)]) -> ObservedSource {
        ObservedSource {
            kind: SourceKind::Secret,
            name: "orders-db-readonly".into(),
            listed_keys: keys(&["host", "username", "password"]),
            labels: Some(labels(pairs)),
            present_keys: keys(&["host", "username", "password", "admin-password"])
                .into_iter()
                .collect(),
        }
    }

    /// The contract's ConfigMap, existing with its listed key and `labels`.
    fn config_map(pairs: &[(&str, &str)]) -> ObservedSource {
        ObservedSource {
            kind: SourceKind::ConfigMap,
            name: "orders-schema".into(),
            listed_keys: keys(&["schema.sql"]),
            labels: Some(labels(pairs)),
            present_keys: keys(&["schema.sql"]).into_iter().collect(),
        }
    }

    #[test]
    fn unlabelled_sources_count_as_internal() {
        let result = classify(&[secret(&[]), config_map(&[])]).expect("classified");
        assert_eq!(
            result,
            ClassificationResult {
                level: Classification::Internal,
                personal_data: false,
                residency: vec![],
                reasons: vec![
                    "Secret orders-db-readonly: internal (no gatehouse.dev/classification label)"
                        .into(),
                    "ConfigMap orders-schema: internal (no gatehouse.dev/classification label)"
                        .into(),
                ],
            }
        );
    }

    #[test]
    fn the_highest_source_wins_and_each_source_gives_a_reason() {
        let result = classify(&[
            config_map(&[(CLASSIFICATION_LABEL, "public")]),
            secret(&[
                (CLASSIFICATION_LABEL, "confidential"),
                (PERSONAL_DATA_LABEL, "true"),
                (RESIDENCY_LABEL, "EU"),
            ]),
        ])
        .expect("classified");
        assert_eq!(result.level, Classification::Confidential);
        assert!(result.personal_data);
        assert_eq!(result.residency, vec!["EU"]);
        assert_eq!(
            result.reasons,
            vec![
                "ConfigMap orders-schema: public",
                "Secret orders-db-readonly: confidential; personal data; resides in EU",
            ]
        );
    }

    #[test]
    fn a_public_source_alone_is_public_but_an_unlabelled_one_lifts_it_to_internal() {
        let public = config_map(&[(CLASSIFICATION_LABEL, "public")]);
        assert_eq!(
            classify(std::slice::from_ref(&public))
                .expect("classified")
                .level,
            Classification::Public
        );
        assert_eq!(
            classify(&[public, secret(&[])]).expect("classified").level,
            Classification::Internal
        );
    }

    #[test]
    fn every_level_parses_forgiving_case_and_spaces() {
        for (value, level) in [
            ("public", Classification::Public),
            ("internal", Classification::Internal),
            ("confidential", Classification::Confidential),
            ("restricted", Classification::Restricted),
            (" Restricted ", Classification::Restricted),
            ("CONFIDENTIAL", Classification::Confidential),
        ] {
            let result = classify(&[secret(&[(CLASSIFICATION_LABEL, value)])])
                .unwrap_or_else(|r| panic!("{value:?} refused: {}", r.message));
            assert_eq!(result.level, level, "{value:?}");
        }
    }

    #[test]
    fn an_unknown_classification_fails_closed_naming_the_object_and_the_allowed_values() {
        let refusal = classify(&[config_map(&[]), secret(&[(CLASSIFICATION_LABEL, "secret")])])
            .expect_err("refused");
        assert_eq!(refusal.reason, reason::INVALID_SPEC);
        assert_eq!(
            refusal.message,
            "spec.data[1]: Secret orders-db-readonly has gatehouse.dev/classification=\"secret\", which is not one of public, internal, confidential, restricted; its owner must set one of those (or remove the label for internal)"
        );
        let refusal = classify(&[secret(&[(CLASSIFICATION_LABEL, "")])]).expect_err("refused");
        assert!(
            refusal
                .message
                .contains("classification=\"\", which is not one of"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn personal_data_on_any_source_marks_the_whole_share() {
        let result = classify(&[
            secret(&[(PERSONAL_DATA_LABEL, "false")]),
            config_map(&[(PERSONAL_DATA_LABEL, "True")]),
        ])
        .expect("classified");
        assert!(result.personal_data);
        assert_eq!(
            result.level,
            Classification::Internal,
            "personal data alone does not raise the level"
        );
        assert!(
            !classify(&[secret(&[(PERSONAL_DATA_LABEL, "false")])])
                .expect("classified")
                .personal_data
        );
    }

    #[test]
    fn an_unclear_personal_data_value_fails_closed() {
        let refusal = classify(&[secret(&[(PERSONAL_DATA_LABEL, "yes")])]).expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.data[0]: Secret orders-db-readonly has gatehouse.dev/personal-data=\"yes\", which is neither \"true\" nor \"false\"; its owner must set one of those"
        );
    }

    #[test]
    fn residency_regions_are_collected_once_each_in_order() {
        let mut other = secret(&[(RESIDENCY_LABEL, "US")]);
        other.name = "orders-us".into();
        let result = classify(&[
            secret(&[(RESIDENCY_LABEL, "EU")]),
            config_map(&[(RESIDENCY_LABEL, "eu")]),
            other,
        ])
        .expect("classified");
        assert_eq!(result.residency, vec!["EU", "US"]);
        let refusal = classify(&[secret(&[(RESIDENCY_LABEL, " ")])]).expect_err("refused");
        assert!(
            refusal.message.starts_with(
                "spec.data[0]: Secret orders-db-readonly has an empty gatehouse.dev/residency label"
            ),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn a_missing_source_is_named() {
        let mut missing = config_map(&[]);
        missing.labels = None;
        let refusal = classify(&[secret(&[]), missing]).expect_err("refused");
        assert_eq!(refusal.reason, reason::INVALID_SPEC);
        assert_eq!(
            refusal.message,
            "spec.data[1]: ConfigMap orders-schema does not exist in this namespace; create it, or file an agreement that names only existing objects"
        );
    }

    #[test]
    fn missing_keys_are_named_and_extra_source_keys_do_not_matter() {
        let mut source = secret(&[]);
        source.present_keys.remove("password");
        let refusal = classify(&[source.clone()]).expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.data[0]: Secret orders-db-readonly has no key password; list only keys it has"
        );
        source.present_keys.remove("host");
        source.listed_keys.push("host".into());
        let refusal = classify(&[source]).expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.data[0]: Secret orders-db-readonly has no keys host, password; list only keys it has"
        );
        // `secret` holds admin-password, which is not listed: only listed keys are checked.
        assert!(classify(&[secret(&[])]).is_ok());
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut missing_key = secret(&[(CLASSIFICATION_LABEL, "top-secret")]);
        missing_key.present_keys.clear();
        missing_key.present_keys.insert("host".into());
        let mut missing = config_map(&[]);
        missing.labels = None;
        let refusal = classify(&[missing_key, missing]).expect_err("refused");
        assert_eq!(
            refusal.message.matches("spec.data[").count(),
            3,
            "{}",
            refusal.message
        );
        assert!(
            refusal.message.starts_with(
                "spec.data[0]: Secret orders-db-readonly has no keys password, username"
            )
        );
        assert!(refusal.message.contains("spec.data[0]: Secret orders-db-readonly has gatehouse.dev/classification=\"top-secret\""));
        assert!(
            refusal
                .message
                .contains("spec.data[1]: ConfigMap orders-schema does not exist")
        );
    }

    #[test]
    fn no_sources_refuses() {
        let refusal = classify(&[]).expect_err("refused");
        assert_eq!(refusal.reason, reason::INVALID_SPEC);
        assert!(
            refusal.message.starts_with("spec.data:"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn sources_are_built_from_data_items() {
        let spec = data_sharing_agreement().spec;
        let source = ObservedSource::from_item(&spec.data[0]).expect("one kind named");
        assert_eq!(source.kind, SourceKind::Secret);
        assert_eq!(source.name, "orders-db-readonly");
        assert_eq!(source.listed_keys, keys(&["host", "username", "password"]));
        assert_eq!(source.labels, None, "not found until found() says so");
        let found = source.found(None, keys(&["host", "username", "password"]));
        assert_eq!(
            found.labels,
            Some(BTreeMap::new()),
            "no labels is not missing"
        );
        assert!(classify(&[found]).is_ok());

        let config = ObservedSource::from_item(&spec.data[1]).expect("one kind named");
        assert_eq!(config.kind, SourceKind::ConfigMap);
        let mut both = spec.data[0].clone();
        both.config_map = Some("orders-schema".into());
        assert_eq!(ObservedSource::from_item(&both), None);
        both.secret = None;
        both.config_map = None;
        assert_eq!(ObservedSource::from_item(&both), None);
    }

    #[test]
    fn names_match_what_users_write() {
        for level in Classification::ALL {
            assert_eq!(parse_level(level.name()), Some(*level));
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// A classification label is a level only when it names one (any case, spaces around);
        /// nothing else is guessed at.
        #[test]
        fn levels_are_named_never_guessed(value in prop_oneof![
            Just(" Restricted ".to_string()), Just("CONFIDENTIAL".to_string()), tricky_text()
        ]) {
            let named = Classification::ALL
                .iter()
                .copied()
                .find(|level| level.name().eq_ignore_ascii_case(value.trim()));
            prop_assert_eq!(parse_level(&value), named);
        }
    }
}
