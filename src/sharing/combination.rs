//! Whether a SharingPolicy lets this data go to this recipient by this method, and whether
//! execution must wait for a signed agreement: the policy's combination rules and its
//! agreement gate, decided from the spec and the data's classification.

use crate::api::conditions::reason;
use crate::api::{
    AgreementRequirement, Classification, ClassificationResult, DataSharingAgreementSpec,
    SharingPolicySpec, TransferMethod,
};
use crate::lifecycle::Refusal;

/// The highest classification that may go to an external recipient when the policy sets no
/// `maxExternalClassification`.
pub const DEFAULT_MAX_EXTERNAL_CLASSIFICATION: Classification = Classification::Confidential;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::{
        classified, data_sharing_agreement, external_recipient, sharing_policy,
    };
    use crate::api::{AgreementRef, MethodsByClassification};

    /// The agreement of the contract, sent to an external recipient in `country` by Export.
    fn external_spec(country: &str, reference: Option<&str>) -> DataSharingAgreementSpec {
        let mut spec = data_sharing_agreement().spec;
        spec.recipient = external_recipient(country);
        spec.transfer.method = TransferMethod::Export;
        spec.agreement = reference.map(|r| AgreementRef {
            reference: r.into(),
        });
        spec
    }

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
}
