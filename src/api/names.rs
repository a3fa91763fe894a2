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
