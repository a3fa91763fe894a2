//! How an API enum is named: each value has one name, the one users write in YAML, and every
//! message, audit line, metric label and kubectl column prints that same name.
//!
//! [`named_enum!`] declares the enum and derives from one list both the serde name (the CRD's
//! enum values) and `Display`, so the two cannot drift apart; a value whose name is its Rust
//! identifier needs no `= "name"`.

/// Declares an enum of unit values, each with its YAML name, and gives it:
/// - `#[serde(rename = ...)]` for every value written `Value = "name"`;
/// - `ALL`, every value in declaration order;
/// - `name()`, the YAML name, and `from_name`, its inverse (exact, as the API server compares);
/// - `Display`, printing `name()`.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $enum:ident {
            $(
                $(#[$value_meta:meta])*
                $value:ident $(= $name:literal)?
            ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $enum {
            $(
                $(#[$value_meta])*
                $(#[serde(rename = $name)])?
                $value,
            )+
        }

        impl $enum {
            /// Every value, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$value),+];

            /// The name users write in YAML.
            pub const fn name(self) -> &'static str {
                match self {
                    $($enum::$value => $crate::api::names::named_enum!(@name $value $($name)?),)+
                }
            }

            /// The value named `name`, exactly as written in YAML; `None` for any other text.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|value| value.name() == name)
            }
        }

        impl std::fmt::Display for $enum {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
    (@name $value:ident $name:literal) => { $name };
    (@name $value:ident) => { stringify!($value) };
}

pub(crate) use named_enum;

#[cfg(test)]
mod tests {
    use k8s_openapi::Resource;
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    use serde::Serialize;

    use crate::api::common::{Decision, RoleKind, StageCondition, SubjectKind};
    use crate::api::{
        AccessPhase, AgreementRequirement, Classification, ConflictAction, FindingType,
        SharingPhase, SourceKind, TransferMethod,
    };

    /// Each value prints, and is found by, the very name serde writes for it in YAML.
    fn assert_display_is_serde_name<T>(values: &[T], from_name: fn(&str) -> Option<T>)
    where
        T: Copy + std::fmt::Display + std::fmt::Debug + PartialEq + Serialize,
    {
        for value in values {
            let serialized = serde_json::to_value(value).expect("a unit value serializes");
            assert_eq!(
                serialized,
                serde_json::Value::String(value.to_string()),
                "{value:?}"
            );
            assert_eq!(from_name(&value.to_string()), Some(*value), "{value:?}");
        }
    }

    #[test]
    fn display_is_the_serde_name_of_every_value() {
        assert_display_is_serde_name(AccessPhase::ALL, AccessPhase::from_name);
        assert_display_is_serde_name(SharingPhase::ALL, SharingPhase::from_name);
        assert_display_is_serde_name(Classification::ALL, Classification::from_name);
        assert_display_is_serde_name(TransferMethod::ALL, TransferMethod::from_name);
        assert_display_is_serde_name(FindingType::ALL, FindingType::from_name);
        assert_display_is_serde_name(Decision::ALL, Decision::from_name);
        assert_display_is_serde_name(RoleKind::ALL, RoleKind::from_name);
        assert_display_is_serde_name(SubjectKind::ALL, SubjectKind::from_name);
        assert_display_is_serde_name(StageCondition::ALL, StageCondition::from_name);
        assert_display_is_serde_name(ConflictAction::ALL, ConflictAction::from_name);
        assert_display_is_serde_name(AgreementRequirement::ALL, AgreementRequirement::from_name);
    }

    #[test]
    fn source_kinds_are_named_as_kubernetes_names_them() {
        assert_eq!(SourceKind::Secret.to_string(), Secret::KIND);
        assert_eq!(SourceKind::ConfigMap.to_string(), ConfigMap::KIND);
        assert_eq!(SourceKind::ALL, [SourceKind::Secret, SourceKind::ConfigMap]);
    }

    #[test]
    fn names_are_exact_and_text_around_them_is_not_a_name() {
        assert_eq!(Classification::Public.to_string(), "public");
        assert_eq!(Classification::from_name("Public"), None);
        assert_eq!(AccessPhase::from_name("Pending "), None);
        assert_eq!(AccessPhase::from_name("AwaitingAgreement"), None);
        assert_eq!(
            SharingPhase::from_name("AwaitingAgreement"),
            Some(SharingPhase::AwaitingAgreement)
        );
    }
}
