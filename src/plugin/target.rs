//! Naming the object to act on, the way kubectl does: `ar/NAME`, `accessrequest/NAME`,
//! `dsa/NAME`, `datasharingagreement/NAME` (plural and `.gatehouse.dev` forms too).

use std::fmt;
use std::str::FromStr;

use super::PluginError;

/// The Gatehouse kinds approvers act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    AccessRequest,
    DataSharingAgreement,
}

impl Kind {
    /// The kind as in `kind:`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::AccessRequest => "AccessRequest",
            Kind::DataSharingAgreement => "DataSharingAgreement",
        }
    }

    /// The plural resource name, as in RBAC rules and `kubectl get`.
    pub fn resource(self) -> &'static str {
        match self {
            Kind::AccessRequest => "accessrequests",
            Kind::DataSharingAgreement => "datasharingagreements",
        }
    }

    /// The short name.
    pub fn short(self) -> &'static str {
        match self {
            Kind::AccessRequest => "ar",
            Kind::DataSharingAgreement => "dsa",
        }
    }

    /// The kind named by a kubectl-style alias: short name, singular or plural, optionally
    /// qualified with `.gatehouse.dev`, in any case.
    pub fn from_alias(alias: &str) -> Option<Kind> {
        let alias = alias.to_ascii_lowercase();
        let alias = alias
            .strip_suffix(&format!(".{}", crate::api::GROUP))
            .unwrap_or(&alias);
        match alias {
            "ar" | "accessrequest" | "accessrequests" => Some(Kind::AccessRequest),
            "dsa" | "datasharingagreement" | "datasharingagreements" => {
                Some(Kind::DataSharingAgreement)
            }
            _ => None,
        }
    }
}

/// One object: its kind and name (the namespace comes from `-n` or the context).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub kind: Kind,
    pub name: String,
}

impl Target {
    /// `ar/NAME` or `dsa/NAME`, for hints that repeat a command.
    pub fn short(&self) -> String {
        format!("{}/{}", self.kind.short(), self.name)
    }
}

/// As kubectl prints objects: `accessrequest.gatehouse.dev/NAME`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}/{}",
            self.kind.name().to_ascii_lowercase(),
            crate::api::GROUP,
            self.name
        )
    }
}

impl FromStr for Target {
    type Err = PluginError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = || PluginError::InvalidTarget {
            input: input.to_string(),
        };
        let (kind, name) = input.trim().split_once('/').ok_or_else(invalid)?;
        if kind.is_empty() || !is_object_name(name) {
            return Err(invalid());
        }
        let kind = Kind::from_alias(kind).ok_or_else(|| PluginError::UnknownKind {
            kind: kind.to_string(),
            name: name.to_string(),
        })?;
        Ok(Target {
            kind,
            name: name.to_string(),
        })
    }
}

/// A Kubernetes object name (DNS-1123 subdomain): at most 253 characters, dot-separated parts of
/// lower-case letters, digits and `-`, each starting and ending with a letter or digit.
fn is_object_name(name: &str) -> bool {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    name.len() <= 253
        && name.split('.').all(|part| {
            part.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && edge(part.chars().next())
                && edge(part.chars().last())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &str) -> Result<Target, PluginError> {
        input.parse()
    }

    #[test]
    fn accepts_every_kubectl_spelling_of_the_two_kinds() {
        for input in [
            "ar/alice-read",
            "accessrequest/alice-read",
            "accessrequests/alice-read",
            "AccessRequest/alice-read",
            "accessrequests.gatehouse.dev/alice-read",
        ] {
            assert_eq!(
                parse(input).ok(),
                Some(Target {
                    kind: Kind::AccessRequest,
                    name: "alice-read".into()
                }),
                "{input}"
            );
        }
        for input in [
            "dsa/orders.to-analytics",
            "datasharingagreement/orders.to-analytics",
            "datasharingagreements.gatehouse.dev/orders.to-analytics",
        ] {
            assert_eq!(
                parse(input).map(|t| t.kind).ok(),
                Some(Kind::DataSharingAgreement),
                "{input}"
            );
        }
    }

    #[test]
    fn prints_like_kubectl_and_short_for_hints() {
        let target = parse("ar/alice-read").expect("valid");
        assert_eq!(target.to_string(), "accessrequest.gatehouse.dev/alice-read");
        assert_eq!(target.short(), "ar/alice-read");
    }

    #[test]
    fn refuses_what_is_not_kind_slash_name() {
        // `0-.0`, `a..b`: found by the property tests, names no object can have.
        for input in [
            "alice-read",
            "ar/",
            "ar/Alice",
            "ar/a/b",
            "ar/-x",
            "/x",
            "ar/0-.0",
            "ar/a..b",
        ] {
            assert!(
                matches!(parse(input), Err(PluginError::InvalidTarget { .. })),
                "{input}: {:?}",
                parse(input)
            );
        }
        let err = parse("pod/alice-read").expect_err("not a gatehouse kind");
        assert!(matches!(err, PluginError::UnknownKind { .. }));
        assert!(err.to_string().contains("e.g. ar/alice-read"), "{err}");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, is_dns1123_subdomain, name_like, object_name, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// Any `KIND/NAME`: a target whose name the API server could hold, or an error, never a
        /// panic.
        #[test]
        fn targets_name_objects_the_api_server_could_hold(
            kind in prop_oneof![Just("ar".to_string()), Just("dsa".to_string()), tricky_text()],
            name in prop_oneof![object_name(), name_like(), tricky_text()],
        ) {
            if let Ok(target) = format!("{kind}/{name}").parse::<Target>() {
                prop_assert!(is_dns1123_subdomain(&target.name), "{:?}", target);
            }
        }

        /// Every name the API server admits is a target.
        #[test]
        fn every_object_name_is_a_target(name in object_name()) {
            prop_assert_eq!(format!("ar/{name}").parse::<Target>().map(|t| t.name).ok(), Some(name));
        }
    }
}
