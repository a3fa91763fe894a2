//! Whether a DataSharingAgreement may proceed: which SharingPolicy governs it and whether its
//! recipient, method and retention fit that policy. Fails closed: anything unclear refuses.

use std::time::Duration;

use super::access::NamespaceLabels;
use super::{Refusal, duration, selector};
use crate::api::conditions::reason;
use crate::api::{
    DataSharingAgreementSpec, Recipient, SharingPolicy, SharingPolicySpec, TransferMethod,
};

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
    let labels = namespaces.get(namespace).cloned().unwrap_or_default();
    super::governing(
        spec.policy.as_deref(),
        policies,
        |p| {
            p.spec.namespace_selector.is_none()
                || selector::selects(p.spec.namespace_selector.as_ref(), &labels)
        },
        "SharingPolicy",
        || {
            format!(
                "no SharingPolicy governs namespace {namespace}; nothing will be shared. Ask a cluster admin for a policy"
            )
        },
    )
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
                "spec.recipient.namespace: {target} is not selected by the recipientNamespaceSelector of SharingPolicy {policy_name}; share only with namespaces it selects"
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
}
