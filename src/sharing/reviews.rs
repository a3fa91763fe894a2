//! Which reviews a DataSharingAgreement needs: the review roles its SharingPolicy asks for,
//! given what the data is and where it goes, in the order they approve.

use crate::api::{Classification, ClassificationResult, Recipient, RequiredReviews};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RolesByClassification;
    use crate::api::fixtures::{classified, data_sharing_agreement, external_recipient};

    fn roles(names: &[&str]) -> Vec<String> {
        names.iter().map(|k| k.to_string()).collect()
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
            requester_manager: vec![],
        }
    }

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
            &external_recipient("US"),
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
            always: roles(&["data-owner"]),
            by_classification: Some(RolesByClassification {
                internal: roles(&["team-lead"]),
                confidential: roles(&["security"]),
                restricted: roles(&["ciso", "security"]),
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
            always: roles(&["data-owner", "data-owner"]),
            by_classification: Some(RolesByClassification {
                restricted: roles(&["security"]),
                ..Default::default()
            }),
            external_recipient: roles(&["legal", "security"]),
            personal_data: roles(&["privacy"]),
            cross_border: roles(&["transfer-officer", "privacy"]),
            requester_manager: vec![],
        };
        let roles = required_reviews(
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
            required_reviews(
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
        let roles = required_reviews(
            &RequiredReviews {
                always: roles(&["data-owner"]),
                ..Default::default()
            },
            &classified(Classification::Restricted, false, &[]),
            &namespace_recipient(),
        );
        assert_eq!(roles, vec!["data-owner"]);
    }
}
