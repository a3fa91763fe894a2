//! Which reviews a DataSharingAgreement needs: the review roles its SharingPolicy asks for,
//! given what the data is and where it goes, in the order they approve.

use crate::api::conditions::reason;
use crate::api::{Classification, ClassificationResult, Recipient, RequiredReviews};
use crate::lifecycle::Refusal;

/// The reviews one share needs: every role in stage order, and which of them are the recipient's
/// consent (decided by holders of the right in the recipient namespace).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reviews {
    pub required: Vec<String>,
    pub recipient_consent: Vec<String>,
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
/// when any source is personal data, `crossBorder` when the recipient is outside a source's
/// residency, and last the recipient's consent (`recipient`) for a namespace recipient: the
/// recipient agrees to what the data owner's side reviewed. Each role appears once, at its first
/// stage.
///
/// A policy listing a role both as recipient consent and as another review is refused: one
/// annotation decides a role, and its approver's right cannot be checked in the recipient
/// namespace and the agreement's at once. An empty `required` means the policy asks for no
/// review at all; the caller decides whether that may execute unreviewed.
pub fn required_reviews(
    policy_name: &str,
    reviews: &RequiredReviews,
    classification: &ClassificationResult,
    recipient: &Recipient,
) -> Result<Reviews, Refusal> {
    let doubled: Vec<String> = reviews
        .recipient
        .iter()
        .filter_map(|role| {
            let lists: Vec<&str> = other_lists(reviews)
                .into_iter()
                .filter(|(_, roles)| roles.contains(role))
                .map(|(list, _)| list)
                .collect();
            (!lists.is_empty()).then(|| format!("{role} (also in {})", lists.join(", ")))
        })
        .collect();
    if !doubled.is_empty() {
        return Err(Refusal::new(
            reason::POLICY_VIOLATION,
            format!(
                "SharingPolicy {policy_name} lists a recipient consent role in reviews.recipient and in another review list: {}; a recipient consent is decided by holders of the right in the recipient namespace, every other review in the agreement's, so give the recipient's role a name of its own (e.g. recipient-owner)",
                doubled.join(", ")
            ),
        ));
    }
    let mut roles: Vec<String> = Vec::new();
    let add = |roles: &mut Vec<String>, stage: &[String]| {
        for role in stage {
            if !roles.contains(role) {
                roles.push(role.clone());
            }
        }
    };
    add(&mut roles, &reviews.always);
    if let Some(by) = &reviews.by_classification {
        let level = classification.level;
        if level >= Classification::Internal {
            add(&mut roles, &by.internal);
        }
        if level >= Classification::Confidential {
            add(&mut roles, &by.confidential);
        }
        if level >= Classification::Restricted {
            add(&mut roles, &by.restricted);
        }
    }
    if recipient.external.is_some() {
        add(&mut roles, &reviews.external_recipient);
    }
    if classification.personal_data {
        add(&mut roles, &reviews.personal_data);
    }
    if !cross_border_regions(classification, recipient).is_empty() {
        add(&mut roles, &reviews.cross_border);
    }
    // Only a namespace recipient has a team that consents in its namespace; no other list names
    // these roles (refused above), so the roles added here are exactly the consents.
    let others = roles.len();
    if recipient.namespace.is_some() {
        add(&mut roles, &reviews.recipient);
    }
    let recipient_consent = roles[others..].to_vec();
    Ok(Reviews {
        required: roles,
        recipient_consent,
    })
}

/// Every review list of a policy except `recipient`, with its field name.
fn other_lists(reviews: &RequiredReviews) -> Vec<(&'static str, &[String])> {
    let by = reviews.by_classification.as_ref();
    let empty: &[String] = &[];
    vec![
        ("always", reviews.always.as_slice()),
        (
            "byClassification.internal",
            by.map_or(empty, |b| b.internal.as_slice()),
        ),
        (
            "byClassification.confidential",
            by.map_or(empty, |b| b.confidential.as_slice()),
        ),
        (
            "byClassification.restricted",
            by.map_or(empty, |b| b.restricted.as_slice()),
        ),
        ("externalRecipient", reviews.external_recipient.as_slice()),
        ("personalData", reviews.personal_data.as_slice()),
        ("crossBorder", reviews.cross_border.as_slice()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolesByClassification;
    use crate::api::fixtures::{classified, data_sharing_agreement, external_recipient};

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| k.to_string()).collect()
    }

    /// The roles of a policy without doubled roles.
    fn required(
        reviews: &RequiredReviews,
        classification: &ClassificationResult,
        recipient: &Recipient,
    ) -> Vec<String> {
        required_reviews("test", reviews, classification, recipient)
            .expect("no role is both a consent and another review")
            .required
    }

    fn namespace_recipient() -> Recipient {
        data_sharing_agreement().spec.recipient
    }

    /// The reviews the issue describes: data-owner always; security for confidential and above
    /// or external; privacy for personal data or cross-border; legal for external.
    fn issue_reviews() -> RequiredReviews {
        RequiredReviews {
            always: roles(&["data-owner"]),
            by_classification: Some(RolesByClassification {
                internal: vec![],
                confidential: roles(&["security"]),
                restricted: vec![],
            }),
            external_recipient: roles(&["security", "legal"]),
            personal_data: roles(&["privacy"]),
            cross_border: roles(&["privacy"]),
            recipient: vec![],
            requester_manager: vec![],
        }
    }

    #[test]
    fn an_internal_share_into_a_namespace_needs_only_the_data_owner() {
        let roles = required(
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
        let roles = required(
            &issue_reviews(),
            &classified(Classification::Confidential, false, &["EU"]),
            &external_recipient("US"),
        );
        assert_eq!(roles, vec!["data-owner", "security", "legal", "privacy"]);
    }

    #[test]
    fn personal_data_adds_privacy_even_in_the_cluster() {
        let roles = required(
            &issue_reviews(),
            &classified(Classification::Internal, true, &[]),
            &namespace_recipient(),
        );
        assert_eq!(roles, vec!["data-owner", "privacy"]);
    }

    #[test]
    fn classification_roles_apply_to_their_level_and_every_higher_one() {
        let reviews = RequiredReviews {
            always: roles(&["data-owner"]),
            by_classification: Some(RolesByClassification {
                internal: roles(&["team-lead"]),
                confidential: roles(&["security"]),
                restricted: roles(&["ciso", "security"]),
            }),
            ..Default::default()
        };
        let for_level = |level| {
            required(
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
            always: roles(&["data-owner", "data-owner"]),
            by_classification: Some(RolesByClassification {
                restricted: roles(&["security"]),
                ..Default::default()
            }),
            external_recipient: roles(&["legal", "security"]),
            personal_data: roles(&["privacy"]),
            cross_border: roles(&["transfer-officer", "privacy"]),
            recipient: roles(&["recipient-owner"]),
            requester_manager: vec![],
        };
        let roles = required(
            &reviews,
            &classified(Classification::Restricted, true, &["EU"]),
            &external_recipient("US"),
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
            always: roles(&["data-owner"]),
            cross_border: roles(&["privacy"]),
            ..Default::default()
        };
        let with = |residency: &[&str], country: &str| {
            required(
                &reviews,
                &classified(Classification::Internal, false, residency),
                &external_recipient(country),
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
                &external_recipient("US")
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
        let roles = required(
            &RequiredReviews {
                always: roles(&["data-owner"]),
                ..Default::default()
            },
            &classified(Classification::Restricted, false, &[]),
            &namespace_recipient(),
        );
        assert_eq!(roles, vec!["data-owner"]);
    }

    #[test]
    fn recipient_consent_comes_last_and_only_for_a_namespace_recipient() {
        let reviews = RequiredReviews {
            recipient: roles(&["recipient-owner", "recipient-owner"]),
            ..issue_reviews()
        };
        let into_namespace = required_reviews(
            "p",
            &reviews,
            &classified(Classification::Confidential, true, &[]),
            &namespace_recipient(),
        )
        .expect("no doubled role");
        assert_eq!(
            into_namespace,
            Reviews {
                required: roles(&["data-owner", "security", "privacy", "recipient-owner"]),
                recipient_consent: roles(&["recipient-owner"]),
            }
        );
        let external = required_reviews(
            "p",
            &reviews,
            &classified(Classification::Confidential, false, &[]),
            &external_recipient("US"),
        )
        .expect("no doubled role");
        assert_eq!(
            external,
            Reviews {
                required: roles(&["data-owner", "security", "legal"]),
                recipient_consent: vec![],
            },
            "an external recipient has no namespace to consent in"
        );
    }

    #[test]
    fn a_role_both_consent_and_another_review_is_refused_naming_both_lists() {
        let reviews = RequiredReviews {
            recipient: roles(&["data-owner", "recipient-owner", "privacy"]),
            ..issue_reviews()
        };
        let refusal = required_reviews(
            "default-sharing",
            &reviews,
            &classified(Classification::Public, false, &[]),
            &namespace_recipient(),
        )
        .expect_err("a role cannot be decided in two namespaces");
        assert_eq!(refusal.reason, reason::POLICY_VIOLATION);
        assert!(
            refusal.message.contains("SharingPolicy default-sharing")
                && refusal.message.contains("data-owner (also in always)")
                && refusal
                    .message
                    .contains("privacy (also in personalData, crossBorder)")
                && !refusal.message.contains("recipient-owner ("),
            "{}",
            refusal.message
        );
    }
}
