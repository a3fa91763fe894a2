//! The words of data sharing that both sharing kinds, their checks and the provisioner speak:
//! how sensitive data is, how it is transferred, what kind of object holds it, and the labels
//! that source owners put on those objects.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::names::named_enum;

/// Label on a source object: its classification, one of `public`, `internal`, `confidential`,
/// `restricted`. Unlabelled objects count as `internal`.
pub const CLASSIFICATION_LABEL: &str = "gatehouse.dev/classification";

/// Label on a source object: `"true"` when it holds personal data (`"false"` says so explicitly).
pub const PERSONAL_DATA_LABEL: &str = "gatehouse.dev/personal-data";

/// Label on a source object: the country or region the data must reside in, e.g. `EU`.
pub const RESIDENCY_LABEL: &str = "gatehouse.dev/residency";

named_enum! {
    /// Data classification, from lowest to highest.
    #[derive(
        Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
    )]
    pub enum Classification {
        /// Publicly available.
        Public = "public",
        /// Internal use; the default for unlabelled data.
        Internal = "internal",
        /// Confidential business data.
        Confidential = "confidential",
        /// The most sensitive data.
        Restricted = "restricted",
    }
}

named_enum! {
    /// Transfer method of a share.
    #[derive(
        Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq, PartialOrd, Ord,
    )]
    pub enum TransferMethod {
        /// A Secret in the recipient namespace holding only the approved keys, kept in sync.
        Copy,
        /// No copy: the recipient ServiceAccount may `get` only the named source objects.
        Reference,
        /// The approved keys are materialised in the policy's egress namespace for an egress tool.
        Export,
    }
}

named_enum! {
    /// The kind of a source object, named as Kubernetes names it.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum SourceKind {
        Secret,
        ConfigMap,
    }
}
