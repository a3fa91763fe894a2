//! What a DataSharingAgreement's data is, which reviews that calls for, and which combinations of
//! data, recipient and transfer method its SharingPolicy forbids.
//!
//! The controller reads the source Secrets and ConfigMaps and hands over what it saw as
//! [`ObservedSource`]s; everything here is decided from that, the agreement's spec and the policy,
//! without the cluster, so every rule is unit-tested. Fails closed: a missing source, a missing key
//! or a label value this module does not understand refuses the share rather than guess a lower
//! sensitivity, and every refusal names the field or object and what would be accepted.
//!
//! Three steps, in the order the controller needs them:
//! 1. [`classify`]: the effective classification of the data (the status records it even when a
//!    later step refuses, so people see why a share counts as, say, restricted);
//! 2. [`required_reviews`]: the review roles that must approve, in stage order;
//! 3. [`check_combination`]: whether the policy allows this data to go this way, and whether
//!    execution must wait for a signed agreement.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::conditions::reason;
use crate::api::{
    AgreementRequirement, CLASSIFICATION_LABEL, Classification, ClassificationResult, DataItem,
    DataSharingAgreementSpec, PERSONAL_DATA_LABEL, RESIDENCY_LABEL, Recipient, RequiredReviews,
    SharingPolicySpec, SourceKind, TransferMethod,
};
use crate::lifecycle::Refusal;

/// The classification of data whose source carries no classification label: not public unless
/// someone says so, and not more than internal without a reason.
pub const UNLABELLED: Classification = Classification::Internal;

/// The highest classification that may go to an external recipient when the policy sets no
/// `maxExternalClassification`.
pub const DEFAULT_MAX_EXTERNAL_CLASSIFICATION: Classification = Classification::Confidential;

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

    fn describe(&self) -> String {
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

/// The source residency regions the recipient is not in: non-empty means a cross-border transfer.
/// Only an external recipient names a country or region; a namespace recipient stays in the
/// cluster, so sharing with it is never cross-border. Regions compare as written (ignoring case):
/// a recipient in `DE` receiving `EU`-resident data counts as cross-border, which asks for a review
/// rather than assume a containment this module cannot know.
pub fn cross_border_regions(
    classification: &ClassificationResult,
    recipient: &Recipient,
) -> Vec<String> {
    let Some(external) = &recipient.external else {
        return Vec::new();
    };
    let country = external.country.trim();
    classification
        .residency
        .iter()
        .filter(|region| !region.trim().eq_ignore_ascii_case(country))
        .cloned()
        .collect()
}

/// The review roles that must approve a share, in stage order: `always`, then the roles of every
/// classification level at or below the data's (`byClassification`: a level's roles apply to it
/// and every higher level), then `externalRecipient` for an external recipient, `personalData`
/// when any source is personal data, and `crossBorder` when the recipient is outside a source's
/// residency. Each role appears once, at its first stage.
///
/// An empty result means the policy asks for no review at all; the caller decides whether that
/// may execute unreviewed.
pub fn required_reviews(
    reviews: &RequiredReviews,
    classification: &ClassificationResult,
    recipient: &Recipient,
) -> Vec<String> {
    let mut roles: Vec<String> = Vec::new();
    let mut add = |stage: &[String]| {
        for role in stage {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
    };
    add(&reviews.always);
    if let Some(by) = &reviews.by_classification {
        let level = classification.level;
        if level >= Classification::Internal {
            add(&by.internal);
        }
        if level >= Classification::Confidential {
            add(&by.confidential);
        }
        if level >= Classification::Restricted {
            add(&by.restricted);
        }
    }
    if recipient.external.is_some() {
        add(&reviews.external_recipient);
    }
    if classification.personal_data {
        add(&reviews.personal_data);
    }
    if !cross_border_regions(classification, recipient).is_empty() {
        add(&reviews.cross_border);
    }
    roles
}

/// Whether an accepted share may execute once reviewed, as far as a signed agreement goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgreementGate {
    /// No agreement reference is required, or one is given.
    Open,
    /// The policy requires `spec.agreement.reference` and the agreement has none: reviews may
    /// proceed, but nothing executes (phase `AwaitingAgreement`). The message says what to do.
    AwaitingAgreement { message: String },
}

impl AgreementGate {
    /// Whether execution must wait.
    pub fn blocks_execution(&self) -> bool {
        matches!(self, AgreementGate::AwaitingAgreement { .. })
    }
}

/// Checks the combination of data, recipient and method against SharingPolicy `policy_name`:
/// the method must be allowed for the data's classification (`allowedMethods`; a level not listed
/// allows every method), and data above `maxExternalClassification` (default confidential) may
/// not go to an external recipient. Refuses with `PolicyViolation`, naming every violated field
/// and what would be accepted.
///
/// When the combination is allowed, says whether execution must wait for a signed agreement
/// (`requireAgreement`: `External`, the default, for external recipients; `Always`; `Never`). That
/// is not a refusal: the agreement stays reviewable and the reference can be added to it later.
///
/// The method's fit to the recipient (Export only for external recipients), the recipient
/// namespace and retention are checked by [`super::accept`].
pub fn check_combination(
    policy_name: &str,
    policy: &SharingPolicySpec,
    spec: &DataSharingAgreementSpec,
    classification: &ClassificationResult,
) -> Result<AgreementGate, Refusal> {
    let level = classification.level;
    let method = spec.transfer.method;
    let mut violations = Vec::new();

    if let Some(allowed) = allowed_methods(policy, classification.level)
        && !allowed.contains(&method)
    {
        let mut allowed = allowed.to_vec();
        allowed.sort_unstable();
        allowed.dedup();
        let listed: Vec<&str> = allowed.iter().map(|m| m.name()).collect();
        let accepted = if listed.is_empty() {
            format!("allowed: none, so {level} data cannot be shared under this policy")
        } else {
            format!("allowed: {}", listed.join(", "))
        };
        violations.push(format!(
            "spec.transfer.method: {method} is not allowed for {level} data under SharingPolicy {policy_name}; {accepted}"
        ));
    }

    if spec.recipient.external.is_some() {
        let max = policy
            .max_external_classification
            .unwrap_or(DEFAULT_MAX_EXTERNAL_CLASSIFICATION);
        if classification.level > max {
            violations.push(format!(
                "spec.recipient.external: {level} data may not go to an external recipient under SharingPolicy {policy_name}; it allows {max} data or lower externally, so share only such data or share with a namespace"
            ));
        }
    }

    if !violations.is_empty() {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            violations.join("; "),
        ));
    }
    Ok(agreement_gate(policy_name, policy, spec))
}

/// The methods `policy` allows for `level`; `None` when the level is not listed (every method).
fn allowed_methods(policy: &SharingPolicySpec, level: Classification) -> Option<&[TransferMethod]> {
    let by = policy.allowed_methods.as_ref()?;
    let listed = match level {
        Classification::Public => &by.public,
        Classification::Internal => &by.internal,
        Classification::Confidential => &by.confidential,
        Classification::Restricted => &by.restricted,
    };
    listed.as_deref()
}

fn agreement_gate(
    policy_name: &str,
    policy: &SharingPolicySpec,
    spec: &DataSharingAgreementSpec,
) -> AgreementGate {
    let (required, which) = match policy.require_agreement.unwrap_or_default() {
        AgreementRequirement::External => {
            (spec.recipient.external.is_some(), "for external recipients")
        }
        AgreementRequirement::Always => (true, "for every share"),
        AgreementRequirement::Never => (false, ""),
    };
    let has_reference = spec
        .agreement
        .as_ref()
        .is_some_and(|a| !a.reference.trim().is_empty());
    if !required || has_reference {
        return AgreementGate::Open;
    }
    AgreementGate::AwaitingAgreement {
        message: format!(
            "spec.agreement.reference: SharingPolicy {policy_name} requires a signed agreement {which}; reviews may proceed, but nothing is shared until the reference is added to this agreement (`kubectl patch`, the one change allowed after creation)"
        ),
    }
}

/// A `Reference` lets the recipient read whole objects (RBAC cannot narrow a grant to keys), so
/// it may name only objects whose every key is listed: otherwise the recipient could read more
/// than the reviewers approved. Checked on every reconcile, so a key added to a source later
/// suspends an active Reference. Other methods share only the listed keys.
pub fn check_whole_objects(
    method: TransferMethod,
    sources: &[ObservedSource],
) -> Result<(), Refusal> {
    if method != TransferMethod::Reference {
        return Ok(());
    }
    let problems: Vec<String> = sources
        .iter()
        .enumerate()
        .filter(|(_, source)| source.labels.is_some())
        .filter_map(|(i, source)| {
            let unlisted: Vec<&str> = source
                .present_keys
                .iter()
                .filter(|key| !source.listed_keys.contains(key))
                .map(String::as_str)
                .collect();
            (!unlisted.is_empty()).then(|| {
                format!(
                    "spec.data[{i}]: Reference lets the recipient read all of {}, which also holds {}; list those keys too, or use Copy to share only the listed ones",
                    source.describe(),
                    unlisted.join(", ")
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal::new(reason::INVALID_SPEC, problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::{data_sharing_agreement, sharing_policy};
    use crate::api::{
        AgreementRef, ExternalRecipient, MethodsByClassification, RolesByClassification,
    };

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

    fn classified(
        level: Classification,
        personal_data: bool,
        residency: &[&str],
    ) -> ClassificationResult {
        ClassificationResult {
            level,
            personal_data,
            residency: keys(residency),
            reasons: vec![],
        }
    }

    fn namespace_recipient() -> Recipient {
        data_sharing_agreement().spec.recipient
    }

    fn external(country: &str) -> Recipient {
        Recipient {
            namespace: None,
            service_account: None,
            external: Some(ExternalRecipient {
                organization: "Acme Analytics Ltd".into(),
                country: country.into(),
                contact: Some("dpo@acme.example".into()),
            }),
        }
    }

    /// The agreement of the contract, sent to an external recipient in `country` by Export.
    fn external_spec(country: &str, reference: Option<&str>) -> DataSharingAgreementSpec {
        let mut spec = data_sharing_agreement().spec;
        spec.recipient = external(country);
        spec.transfer.method = TransferMethod::Export;
        spec.agreement = reference.map(|r| AgreementRef {
            reference: r.into(),
        });
        spec
    }

    /// The reviews the issue describes: data-owner always; security for confidential and above
    /// or external; privacy for personal data or cross-border; legal for external.
    fn issue_reviews() -> RequiredReviews {
        RequiredReviews {
            always: keys(&["data-owner"]),
            by_classification: Some(RolesByClassification {
                internal: vec![],
                confidential: keys(&["security"]),
                restricted: vec![],
            }),
            external_recipient: keys(&["security", "legal"]),
            personal_data: keys(&["privacy"]),
            cross_border: keys(&["privacy"]),
        }
    }

    // --- classification -------------------------------------------------------------------

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

    // --- reviews --------------------------------------------------------------------------

    #[test]
    fn an_internal_share_into_a_namespace_needs_only_the_data_owner() {
        let roles = required_reviews(
            &issue_reviews(),
            &classified(Classification::Internal, false, &["EU"]),
            &namespace_recipient(),
        );
        assert_eq!(
            roles,
            vec!["data-owner"],
            "a namespace recipient is never cross-border"
        );
    }

    #[test]
    fn a_confidential_external_cross_border_share_needs_security_privacy_and_legal() {
        let roles = required_reviews(
            &issue_reviews(),
            &classified(Classification::Confidential, false, &["EU"]),
            &external("US"),
        );
        assert_eq!(roles, vec!["data-owner", "security", "legal", "privacy"]);
    }

    #[test]
    fn personal_data_adds_privacy_even_in_the_cluster() {
        let roles = required_reviews(
            &issue_reviews(),
            &classified(Classification::Internal, true, &[]),
            &namespace_recipient(),
        );
        assert_eq!(roles, vec!["data-owner", "privacy"]);
    }

    #[test]
    fn classification_roles_apply_to_their_level_and_every_higher_one() {
        let reviews = RequiredReviews {
            always: keys(&["data-owner"]),
            by_classification: Some(RolesByClassification {
                internal: keys(&["team-lead"]),
                confidential: keys(&["security"]),
                restricted: keys(&["ciso", "security"]),
            }),
            ..Default::default()
        };
        let for_level = |level| {
            required_reviews(
                &reviews,
                &classified(level, false, &[]),
                &namespace_recipient(),
            )
        };
        assert_eq!(for_level(Classification::Public), vec!["data-owner"]);
        assert_eq!(
            for_level(Classification::Internal),
            vec!["data-owner", "team-lead"]
        );
        assert_eq!(
            for_level(Classification::Confidential),
            vec!["data-owner", "team-lead", "security"]
        );
        assert_eq!(
            for_level(Classification::Restricted),
            vec!["data-owner", "team-lead", "security", "ciso"]
        );
    }

    #[test]
    fn stages_come_in_order_and_each_role_once() {
        let reviews = RequiredReviews {
            always: keys(&["data-owner", "data-owner"]),
            by_classification: Some(RolesByClassification {
                restricted: keys(&["security"]),
                ..Default::default()
            }),
            external_recipient: keys(&["legal", "security"]),
            personal_data: keys(&["privacy"]),
            cross_border: keys(&["transfer-officer", "privacy"]),
        };
        let roles = required_reviews(
            &reviews,
            &classified(Classification::Restricted, true, &["EU"]),
            &external("US"),
        );
        assert_eq!(
            roles,
            vec![
                "data-owner",
                "security",
                "legal",
                "privacy",
                "transfer-officer"
            ]
        );
    }

    #[test]
    fn cross_border_compares_the_recipient_country_with_every_residency() {
        let reviews = RequiredReviews {
            always: keys(&["data-owner"]),
            cross_border: keys(&["privacy"]),
            ..Default::default()
        };
        let with = |residency: &[&str], country: &str| {
            required_reviews(
                &reviews,
                &classified(Classification::Internal, false, residency),
                &external(country),
            )
        };
        assert_eq!(
            with(&["EU"], "eu"),
            vec!["data-owner"],
            "same region, any case"
        );
        assert_eq!(
            with(&[], "US"),
            vec!["data-owner"],
            "no residency, no border"
        );
        assert_eq!(with(&["EU", "US"], "US"), vec!["data-owner", "privacy"]);
        assert_eq!(
            cross_border_regions(
                &classified(Classification::Internal, false, &["EU", "US", "CH"]),
                &external("US")
            ),
            vec!["EU", "CH"]
        );
        assert!(
            cross_border_regions(
                &classified(Classification::Internal, false, &["EU"]),
                &namespace_recipient()
            )
            .is_empty()
        );
    }

    #[test]
    fn a_policy_without_classification_roles_adds_none() {
        let roles = required_reviews(
            &RequiredReviews {
                always: keys(&["data-owner"]),
                ..Default::default()
            },
            &classified(Classification::Restricted, false, &[]),
            &namespace_recipient(),
        );
        assert_eq!(roles, vec!["data-owner"]);
    }

    // --- policy rules on combinations -----------------------------------------------------

    #[test]
    fn an_unrestricted_policy_lets_a_namespace_share_proceed() {
        let policy = sharing_policy("default-sharing");
        let gate = check_combination(
            "default-sharing",
            &policy.spec,
            &data_sharing_agreement().spec,
            &classified(Classification::Restricted, true, &["EU"]),
        )
        .expect("allowed");
        assert_eq!(gate, AgreementGate::Open);
        assert!(!gate.blocks_execution());
    }

    #[test]
    fn a_method_not_allowed_for_the_level_is_refused_naming_what_is() {
        let mut policy = sharing_policy("default-sharing").spec;
        policy.allowed_methods = Some(MethodsByClassification {
            restricted: Some(vec![TransferMethod::Reference]),
            ..Default::default()
        });
        let spec = data_sharing_agreement().spec;
        let refusal = check_combination(
            "default-sharing",
            &policy,
            &spec,
            &classified(Classification::Restricted, false, &[]),
        )
        .expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert_eq!(
            refusal.message,
            "spec.transfer.method: Copy is not allowed for restricted data under SharingPolicy default-sharing; allowed: Reference"
        );
        // A level not listed allows every method.
        assert!(
            check_combination(
                "default-sharing",
                &policy,
                &spec,
                &classified(Classification::Confidential, false, &[]),
            )
            .is_ok()
        );
        let mut by_reference = spec;
        by_reference.transfer.method = TransferMethod::Reference;
        assert!(
            check_combination(
                "default-sharing",
                &policy,
                &by_reference,
                &classified(Classification::Restricted, false, &[]),
            )
            .is_ok()
        );
    }

    #[test]
    fn allowed_methods_are_listed_in_order_and_an_empty_list_allows_nothing() {
        let mut policy = sharing_policy("strict").spec;
        policy.allowed_methods = Some(MethodsByClassification {
            internal: Some(vec![TransferMethod::Export, TransferMethod::Reference]),
            confidential: Some(vec![]),
            ..Default::default()
        });
        let spec = data_sharing_agreement().spec;
        let refusal = check_combination(
            "strict",
            &policy,
            &spec,
            &classified(Classification::Internal, false, &[]),
        )
        .expect_err("refused");
        assert!(
            refusal.message.ends_with("allowed: Reference, Export"),
            "{}",
            refusal.message
        );
        let refusal = check_combination(
            "strict",
            &policy,
            &spec,
            &classified(Classification::Confidential, false, &[]),
        )
        .expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.transfer.method: Copy is not allowed for confidential data under SharingPolicy strict; allowed: none, so confidential data cannot be shared under this policy"
        );
    }

    #[test]
    fn external_recipients_get_at_most_confidential_by_default() {
        let policy = sharing_policy("default-sharing").spec;
        let spec = external_spec("US", Some("DPA-2026-017"));
        let refusal = check_combination(
            "default-sharing",
            &policy,
            &spec,
            &classified(Classification::Restricted, false, &[]),
        )
        .expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert_eq!(
            refusal.message,
            "spec.recipient.external: restricted data may not go to an external recipient under SharingPolicy default-sharing; it allows confidential data or lower externally, so share only such data or share with a namespace"
        );
        assert_eq!(
            check_combination(
                "default-sharing",
                &policy,
                &spec,
                &classified(Classification::Confidential, false, &[]),
            ),
            Ok(AgreementGate::Open)
        );
    }

    #[test]
    fn the_policy_sets_the_external_maximum() {
        let mut policy = sharing_policy("default-sharing").spec;
        let spec = external_spec("US", Some("DPA-2026-017"));
        policy.max_external_classification = Some(Classification::Internal);
        let refusal = check_combination(
            "default-sharing",
            &policy,
            &spec,
            &classified(Classification::Confidential, false, &[]),
        )
        .expect_err("refused");
        assert!(
            refusal
                .message
                .contains("it allows internal data or lower externally"),
            "{}",
            refusal.message
        );
        policy.max_external_classification = Some(Classification::Restricted);
        assert!(
            check_combination(
                "default-sharing",
                &policy,
                &spec,
                &classified(Classification::Restricted, false, &[]),
            )
            .is_ok()
        );
    }

    #[test]
    fn every_violation_is_reported_at_once() {
        let mut policy = sharing_policy("default-sharing").spec;
        policy.allowed_methods = Some(MethodsByClassification {
            restricted: Some(vec![TransferMethod::Reference]),
            ..Default::default()
        });
        let refusal = check_combination(
            "default-sharing",
            &policy,
            &external_spec("US", None),
            &classified(Classification::Restricted, false, &[]),
        )
        .expect_err("refused");
        assert!(
            refusal
                .message
                .starts_with("spec.transfer.method: Export is not allowed for restricted data"),
            "{}",
            refusal.message
        );
        assert!(
            refusal
                .message
                .contains("; spec.recipient.external: restricted data may not go"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn external_recipients_wait_for_an_agreement_by_default() {
        let policy = sharing_policy("default-sharing").spec;
        let confidential = classified(Classification::Confidential, false, &[]);
        let gate = check_combination(
            "default-sharing",
            &policy,
            &external_spec("US", None),
            &confidential,
        )
        .expect("allowed, but waits");
        assert!(gate.blocks_execution());
        assert_eq!(
            gate,
            AgreementGate::AwaitingAgreement {
                message: "spec.agreement.reference: SharingPolicy default-sharing requires a signed agreement for external recipients; reviews may proceed, but nothing is shared until the reference is added to this agreement (`kubectl patch`, the one change allowed after creation)".into()
            }
        );
        let blank = check_combination(
            "default-sharing",
            &policy,
            &external_spec("US", Some("  ")),
            &confidential,
        )
        .expect("allowed, but waits");
        assert!(
            blank.blocks_execution(),
            "a blank reference is no reference"
        );
        assert_eq!(
            check_combination(
                "default-sharing",
                &policy,
                &external_spec("US", Some("DPA-2026-017")),
                &confidential,
            ),
            Ok(AgreementGate::Open)
        );
        assert_eq!(
            check_combination(
                "default-sharing",
                &policy,
                &data_sharing_agreement().spec,
                &confidential,
            ),
            Ok(AgreementGate::Open),
            "a namespace recipient needs no agreement under External"
        );
    }

    #[test]
    fn always_and_never_override_the_recipient() {
        let mut policy = sharing_policy("default-sharing").spec;
        let internal = classified(Classification::Internal, false, &[]);
        policy.require_agreement = Some(AgreementRequirement::Always);
        let gate = check_combination(
            "default-sharing",
            &policy,
            &data_sharing_agreement().spec,
            &internal,
        )
        .expect("allowed, but waits");
        match gate {
            AgreementGate::AwaitingAgreement { message } => {
                assert!(
                    message.contains("requires a signed agreement for every share"),
                    "{message}"
                )
            }
            AgreementGate::Open => panic!("Always requires an agreement"),
        }
        policy.require_agreement = Some(AgreementRequirement::Never);
        assert_eq!(
            check_combination(
                "default-sharing",
                &policy,
                &external_spec("US", None),
                &internal,
            ),
            Ok(AgreementGate::Open)
        );
    }

    #[test]
    fn a_forbidden_combination_is_refused_before_the_agreement_gate() {
        let policy = sharing_policy("default-sharing").spec;
        let refusal = check_combination(
            "default-sharing",
            &policy,
            &external_spec("US", None),
            &classified(Classification::Restricted, false, &[]),
        )
        .expect_err("refused, not awaiting an agreement");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
    }

    #[test]
    fn names_match_what_users_write() {
        for level in Classification::ALL {
            assert_eq!(parse_level(level.name()), Some(*level));
        }
    }

    #[test]
    fn a_reference_may_name_only_objects_whose_every_key_is_listed() {
        let source = |keys: &[&str]| {
            ObservedSource {
                kind: SourceKind::Secret,
                name: "orders-db".into(),
                listed_keys: vec!["password".into()],
                labels: None,
                present_keys: BTreeSet::new(),
            }
            .found(None, keys.iter().map(|k| k.to_string()))
        };
        assert!(check_whole_objects(TransferMethod::Reference, &[source(&["password"])]).is_ok());
        let refused =
            check_whole_objects(TransferMethod::Reference, &[source(&["password", "admin"])])
                .expect_err("an unlisted key is exposed");
        assert_eq!(refused.reason, reason::INVALID_SPEC);
        assert!(
            refused.message.contains("spec.data[0]: Reference lets the recipient read all of Secret orders-db, which also holds admin"),
            "{}",
            refused.message
        );
        assert!(
            check_whole_objects(TransferMethod::Copy, &[source(&["password", "admin"])]).is_ok()
        );
    }
}
