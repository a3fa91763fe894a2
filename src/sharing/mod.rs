//! Whether a DataSharingAgreement may proceed: which SharingPolicy governs it and whether its
//! recipient, method and retention fit that policy. Fails closed: anything unclear refuses.
//!
//! Once [`accept`]ed, an agreement's data is judged in the order the controller needs it:
//! 1. [`classify`]: what the data is, from its sources' labels;
//! 2. [`whole_objects`]: whether a `Reference` would expose keys nobody listed;
//! 3. [`combination`]: whether the policy lets this data go this way, and whether execution
//!    waits for a signed agreement;
//! 4. [`reviews`]: the review roles that must approve, in stage order.
//!
//! [`kind`] turns those answers and the approvals into the agreement's phase.

pub mod classify;
pub mod combination;
pub mod kind;
pub mod objects;
pub mod reviews;
pub mod whole_objects;

use std::time::Duration;

use crate::access::NamespaceLabels;
use crate::api::conditions::reason;
use crate::api::{
    DataSharingAgreementSpec, Recipient, SharingPolicy, SharingPolicySpec, TransferMethod,
};
use crate::lifecycle::{Refusal, duration, selector};

/// An agreement that passed the checks its spec alone allows, with its governing policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcceptedShare {
    /// Name of the governing SharingPolicy.
    pub policy: String,
    pub retention: Duration,
}

/// Checks `spec` (of an agreement in `namespace`) against the policies and namespaces that exist.
pub fn accept(
    spec: &DataSharingAgreementSpec,
    namespace: &str,
    policies: &[&SharingPolicy],
    namespaces: &NamespaceLabels,
) -> Result<AcceptedShare, Refusal> {
    check_method(spec)?;
    let policy = resolve(spec, namespace, policies, namespaces)?;
    let name = policy.metadata.name.clone().unwrap_or_default();
    // The very check unnamed matching filters by: a policy named in spec.policy governs only the
    // namespaces it selects, and shares only into the recipients it selects, like any other.
    check_governs(&name, &policy.spec, namespace, namespaces)?;
    check_recipient(&name, &policy.spec, &spec.recipient, namespaces)?;
    if spec.transfer.method == TransferMethod::Export && policy.spec.egress_namespace.is_none() {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.transfer.method: SharingPolicy {name} names no egressNamespace, so Export is not possible"
            ),
        ));
    }
    let retention = check_retention(&name, &policy.spec, &spec.retention)?;
    Ok(AcceptedShare {
        policy: name,
        retention,
    })
}

/// The recipient in one word, for `kubectl get`.
pub fn describe_recipient(recipient: &Recipient) -> String {
    match (
        &recipient.namespace,
        &recipient.service_account,
        &recipient.external,
    ) {
        (Some(ns), Some(sa), _) => format!("{ns}/{sa}"),
        (Some(ns), None, _) => ns.clone(),
        (None, _, Some(external)) => format!("external:{}", external.organization),
        (None, _, None) => String::new(),
    }
}

fn check_method(spec: &DataSharingAgreementSpec) -> Result<(), Refusal> {
    let recipient = &spec.recipient;
    let problem = match spec.transfer.method {
        TransferMethod::Export if recipient.external.is_none() => {
            "Export is for external recipients; use Copy or Reference to share with a namespace"
        }
        TransferMethod::Copy | TransferMethod::Reference if recipient.external.is_some() => {
            "an external recipient receives data only by Export"
        }
        TransferMethod::Reference if recipient.service_account.is_none() => {
            "Reference grants a ServiceAccount read access to the sources; set spec.recipient.serviceAccount"
        }
        _ => return Ok(()),
    };
    Err(Refusal::new(
        reason::INVALID_SPEC,
        format!("spec.transfer.method: {problem}"),
    ))
}

fn resolve<'a>(
    spec: &DataSharingAgreementSpec,
    namespace: &str,
    policies: &[&'a SharingPolicy],
    namespaces: &NamespaceLabels,
) -> Result<&'a SharingPolicy, Refusal> {
    crate::lifecycle::governing(
        spec.policy.as_deref(),
        policies,
        |p| check_governs("", &p.spec, namespace, namespaces).is_ok(),
        "SharingPolicy",
        || {
            format!(
                "no SharingPolicy governs namespace {namespace}; nothing will be shared. Ask a cluster admin for a policy"
            )
        },
    )
}

/// Whether `policy` governs agreements filed in `namespace`: its namespaceSelector selects it
/// (unset selects every namespace). Unnamed matching keeps the policies this accepts; a named
/// policy must pass it too.
fn check_governs(
    policy_name: &str,
    policy: &SharingPolicySpec,
    namespace: &str,
    namespaces: &NamespaceLabels,
) -> Result<(), Refusal> {
    let Some(namespace_selector) = &policy.namespace_selector else {
        return Ok(());
    };
    let selected = namespaces
        .get(namespace)
        .is_some_and(|labels| selector::selects(Some(namespace_selector), labels));
    if selected {
        return Ok(());
    }
    Err(Refusal::new(
        reason::POLICY_VIOLATION,
        format!(
            "spec.policy: SharingPolicy {policy_name} does not govern namespace {namespace}, where this agreement is filed: its namespaceSelector ({}) does not select {namespace}. Name a SharingPolicy that selects namespace {namespace}, leave spec.policy unset to use the one that does, or ask a cluster admin to label namespace {namespace} so that the selector selects it",
            selector::describe(Some(namespace_selector))
        ),
    ))
}

fn check_recipient(
    policy_name: &str,
    policy: &SharingPolicySpec,
    recipient: &Recipient,
    namespaces: &NamespaceLabels,
) -> Result<(), Refusal> {
    let Some(target) = &recipient.namespace else {
        return Ok(());
    };
    let Some(labels) = namespaces.get(target) else {
        return Err(Refusal::new(
            reason::INVALID_SPEC,
            format!("spec.recipient.namespace: namespace {target} does not exist"),
        ));
    };
    if !selector::selects(policy.recipient_namespace_selector.as_ref(), labels) {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.recipient.namespace: {target} is not selected by the recipientNamespaceSelector ({}) of SharingPolicy {policy_name}; share only with namespaces it selects, name a SharingPolicy whose recipientNamespaceSelector selects {target}, or ask a cluster admin to label namespace {target} so that it does",
                selector::describe(policy.recipient_namespace_selector.as_ref())
            ),
        ));
    }
    Ok(())
}

fn check_retention(
    policy_name: &str,
    policy: &SharingPolicySpec,
    retention: &str,
) -> Result<Duration, Refusal> {
    let max = duration::parse(&policy.max_retention).map_err(|err| {
        Refusal::new(
            reason::POLICY_VIOLATION,
            format!("SharingPolicy {policy_name} has an invalid maxRetention: {err}; a cluster admin must fix the policy"),
        )
    })?;
    let requested = duration::parse(retention)
        .map_err(|err| Refusal::new(reason::INVALID_SPEC, format!("spec.retention: {err}")))?;
    if requested > max {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "spec.retention: {} is longer than the {} SharingPolicy {policy_name} allows; request {} or less",
                duration::format(requested),
                duration::format(max),
                duration::format(max)
            ),
        ));
    }
    Ok(requested)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ExternalRecipient;
    use crate::api::fixtures::{data_sharing_agreement, namespaces, sharing_policy};

    #[test]
    fn accepts_a_share_into_a_selected_namespace() {
        let policy = sharing_policy("default-sharing");
        let accepted = accept(
            &data_sharing_agreement().spec,
            "orders",
            &[&policy],
            &namespaces(),
        )
        .expect("accepted");
        assert_eq!(
            accepted,
            AcceptedShare {
                policy: "default-sharing".into(),
                retention: Duration::from_secs(720 * 3600)
            }
        );
    }

    #[test]
    fn refuses_without_a_policy_and_with_an_unknown_named_one() {
        let agreement = data_sharing_agreement();
        let refusal = accept(&agreement.spec, "orders", &[], &namespaces()).expect_err("refused");
        assert_eq!(refusal.reason, reason::NO_MATCHING_POLICY);
        let mut named = agreement;
        named.spec.policy = Some("nope".into());
        let refusal = accept(
            &named.spec,
            "orders",
            &[&sharing_policy("default-sharing")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_NOT_FOUND);
    }

    #[test]
    fn refuses_a_recipient_namespace_outside_the_selector() {
        let mut agreement = data_sharing_agreement();
        agreement.spec.recipient.namespace = Some("payments".into());
        let refusal = accept(
            &agreement.spec,
            "orders",
            &[&sharing_policy("default-sharing")],
            &namespaces(),
        )
        .expect_err("refused");
        assert!(
            refusal
                .message
                .starts_with("spec.recipient.namespace: payments is not selected"),
            "{}",
            refusal.message
        );
    }

    #[test]
    fn refuses_retention_over_the_maximum() {
        let mut agreement = data_sharing_agreement();
        agreement.spec.retention = "2200h".into();
        let refusal = accept(
            &agreement.spec,
            "orders",
            &[&sharing_policy("default-sharing")],
            &namespaces(),
        )
        .expect_err("refused");
        assert_eq!(
            refusal.message,
            "spec.retention: 2200h is longer than the 2160h SharingPolicy default-sharing allows; request 2160h or less"
        );
    }

    #[test]
    fn methods_must_fit_the_recipient() {
        let policy = sharing_policy("default-sharing");
        let mut agreement = data_sharing_agreement();
        agreement.spec.transfer.method = TransferMethod::Export;
        let refusal =
            accept(&agreement.spec, "orders", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal
                .message
                .contains("Export is for external recipients"),
            "{}",
            refusal.message
        );
        agreement.spec.recipient = Recipient {
            namespace: None,
            service_account: None,
            external: Some(ExternalRecipient {
                organization: "Acme".into(),
                country: "US".into(),
                contact: None,
            }),
        };
        assert!(accept(&agreement.spec, "orders", &[&policy], &namespaces()).is_ok());
        assert_eq!(
            describe_recipient(&agreement.spec.recipient),
            "external:Acme"
        );
        agreement.spec.transfer.method = TransferMethod::Copy;
        let refusal =
            accept(&agreement.spec, "orders", &[&policy], &namespaces()).expect_err("refused");
        assert!(
            refusal.message.contains("only by Export"),
            "{}",
            refusal.message
        );
    }

    /// A lenient policy (no reviews) for data owners labelled team=payments only, sharing into
    /// namespaces labelled team=payments only.
    fn lenient() -> SharingPolicy {
        let mut policy = sharing_policy("lenient");
        policy.spec.reviews.always = vec![];
        let team = |t: &str| k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
            match_labels: Some([("team".to_string(), t.to_string())].into()),
            ..Default::default()
        };
        policy.spec.namespace_selector = Some(team("payments"));
        policy.spec.recipient_namespace_selector = Some(team("payments"));
        policy
    }

    #[test]
    fn a_named_policy_governs_only_the_namespaces_it_selects() {
        let mut agreement = data_sharing_agreement();
        agreement.spec.recipient.namespace = Some("payments".into());
        let policies = [&lenient(), &sharing_policy("default-sharing")];
        // Unnamed, the lenient policy does not match an agreement filed in orders.
        let unnamed =
            accept(&agreement.spec, "orders", &policies[..1], &namespaces()).expect_err("refused");
        assert_eq!(unnamed.reason, reason::NO_MATCHING_POLICY);
        // Named, it does not govern orders either.
        agreement.spec.policy = Some("lenient".into());
        let named =
            accept(&agreement.spec, "orders", &policies, &namespaces()).expect_err("refused");
        assert_eq!(named.reason, reason::POLICY_VIOLATION);
        assert!(
            named.message.starts_with(
                "spec.policy: SharingPolicy lenient does not govern namespace orders, where this agreement is filed: its namespaceSelector (matchLabels team=payments) does not select orders."
            ),
            "{}",
            named.message
        );
        assert!(
            named.message.contains("label namespace orders"),
            "{}",
            named.message
        );
        // Filed where it governs, it applies.
        assert_eq!(
            accept(&agreement.spec, "payments", &policies, &namespaces()).map(|a| a.policy),
            Ok("lenient".into())
        );
    }

    #[test]
    fn a_named_policy_shares_only_into_recipients_it_selects() {
        let mut agreement = data_sharing_agreement();
        agreement.spec.policy = Some("lenient".into());
        // Filed in payments (governed), for analytics (not a recipient the policy selects).
        let refusal =
            accept(&agreement.spec, "payments", &[&lenient()], &namespaces()).expect_err("refused");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert!(
            refusal.message.starts_with(
                "spec.recipient.namespace: analytics is not selected by the recipientNamespaceSelector (matchLabels team=payments) of SharingPolicy lenient;"
            ),
            "{}",
            refusal.message
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::api::fixtures::sharing_policy;
    use crate::properties::{config, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// Any spec.retention against any maxRetention: at most maxRetention, or a refusal
        /// naming the field to fix; never a panic.
        #[test]
        fn retention_is_granted_or_refused_by_field(
            retention in prop_oneof!["([0-9]{1,20}[hms]){1,3}", tricky_text()],
            max in prop_oneof!["([0-9]{1,20}[hms]){1,3}", tricky_text()],
        ) {
            let mut policy = sharing_policy("p").spec;
            policy.max_retention = max.clone();
            match check_retention("p", &policy, &retention) {
                Ok(granted) => prop_assert!(Ok(granted) <= duration::parse(&max).map_err(|_| ())),
                Err(refusal) => prop_assert!(
                    refusal.message.contains("spec.retention") || refusal.message.contains("maxRetention"),
                    "{}", refusal.message
                ),
            }
        }
    }
}
