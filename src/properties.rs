//! What the property tests share: their configuration, strategies for the text users write, and
//! Kubernetes' own validation rules as oracles.
//!
//! Each parser's properties live beside it in a `mod properties` (so `cargo test --lib properties`
//! runs them all). A run tries `PROPTEST_CASES` inputs per property (256 by default, a few seconds
//! in all); `PROPTEST_CASES=100000 cargo test --lib properties` searches harder. A failure prints
//! the smallest input it shrank to; keep it as an ordinary unit test beside the fix.

use std::collections::{BTreeMap, HashMap};
use std::sync::{LazyLock, Mutex};

use proptest::prelude::*;
use proptest::test_runner::Config;
use regex::Regex;

use crate::api::{
    APPROVE_PREFIX, CHANGES_PREFIX, DENY_PREFIX, DURATION_PREFIX, NAMESPACES_PREFIX, REASON_PREFIX,
};

/// The cases of every property: `PROPTEST_CASES` (256 unless set), never writing regression files
/// into the source tree (a failing case becomes a unit test instead).
pub fn config() -> Config {
    Config {
        failure_persistence: None,
        ..Config::default()
    }
}

/// Any text, weighted towards what breaks parsers: empty, whitespace, digits with units, huge
/// numbers, signs and dots, multi-byte characters, and the separators `/ , : = .`.
pub fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t\n]{0,3}",
        "[-+]?[0-9]{0,25}(\\.[0-9]{0,3})?(h|m|s|ms|us|µs|ns|d|H|)",
        "([0-9]{0,22}[hms]){1,4}",
        "[ -~]{0,40}",
        "[a-z0-9./,:=*@ -]{0,40}",
        "[\\PC]{0,12}",
    ]
}

/// Text that looks like a name and often is not one: `a..b`, `-a`, `a.`, `A`, `a_b`.
pub fn name_like() -> impl Strategy<Value = String> {
    "[a-z0-9.-]{1,12}|[a-zA-Z0-9._-]{1,8}"
}

/// A full-match regex from a Kubernetes pattern, compiled once per pattern.
fn whole(pattern: &'static str) -> Regex {
    static COMPILED: LazyLock<Mutex<HashMap<&'static str, Regex>>> = LazyLock::new(Mutex::default);
    let mut compiled = COMPILED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    compiled
        .entry(pattern)
        .or_insert_with(|| {
            Regex::new(&format!("^(?:{pattern})$")).expect("a valid Kubernetes validation pattern")
        })
        .clone()
}

// The rules of k8s.io/apimachinery/pkg/util/validation/validation.go, as the API server applies
// them to names, label values and annotation keys.

/// `dns1123LabelFmt`.
pub const DNS1123_LABEL: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
/// `dns1123SubdomainFmt`.
pub const DNS1123_SUBDOMAIN: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
/// `qualifiedNameFmt`: the name part of a label or annotation key.
pub const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
/// `labelValueFmt`.
pub const LABEL_VALUE: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";

/// `IsDNS1123Label`: a namespace name.
pub fn is_dns1123_label(value: &str) -> bool {
    value.len() <= 63 && whole(DNS1123_LABEL).is_match(value)
}

/// `IsDNS1123Subdomain`: the name of most objects (Secrets, ConfigMaps, custom resources).
pub fn is_dns1123_subdomain(value: &str) -> bool {
    value.len() <= 253 && whole(DNS1123_SUBDOMAIN).is_match(value)
}

/// `IsValidLabelValue`.
pub fn is_label_value(value: &str) -> bool {
    value.len() <= 63 && whole(LABEL_VALUE).is_match(value)
}

/// `IsQualifiedName`: a label or annotation key, or a condition type (which
/// k8s.io/apimachinery/pkg/apis/meta/v1/validation's ValidateConditions checks with it; the
/// Condition type also documents at most 316 characters): an optional DNS-1123 subdomain prefix
/// and `/`, then a name of at most 63 characters.
pub fn is_qualified_name(value: &str) -> bool {
    let (prefix, name) = match value.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, value),
    };
    prefix.is_none_or(|p| !p.is_empty() && is_dns1123_subdomain(p))
        && name.len() <= 63
        && whole(QUALIFIED_NAME).is_match(name)
}

/// `path.IsValidPathSegmentName` (k8s.io/apimachinery/pkg/api/validation/path): what RBAC
/// (k8s.io/kubernetes/pkg/apis/rbac/validation's ValidateRBACName) requires of Role and
/// RoleBinding names.
pub fn is_path_segment_name(value: &str) -> bool {
    !value.is_empty() && value != "." && value != ".." && !value.contains(['/', '%'])
}

/// Annotations as anyone who may patch an object could write them (admission aside): keys of the
/// protocol with roles from a few known ones to any text, other keys, and values from usernames
/// to garbage.
pub fn annotations() -> impl Strategy<Value = BTreeMap<String, String>> {
    let prefix = prop_oneof![
        Just(APPROVE_PREFIX),
        Just(DENY_PREFIX),
        Just(CHANGES_PREFIX),
        Just(REASON_PREFIX),
        Just(DURATION_PREFIX),
        Just(NAMESPACES_PREFIX),
        Just("gatehouse.dev/"),
    ];
    let role = prop_oneof![
        Just("manager".to_string()),
        Just("security".to_string()),
        Just(String::new()),
        tricky_text(),
    ];
    let value = prop_oneof![
        Just("bob".to_string()),
        Just(" carol ".to_string()),
        Just("alice".to_string()),
        Just("30m".to_string()),
        Just("a, b,,c".to_string()),
        tricky_text(),
    ];
    prop::collection::btree_map(
        (prefix, role).prop_map(|(p, r)| format!("{p}{r}")),
        value,
        0..8,
    )
}

/// A namespace name as the API server admits it.
pub fn namespace_name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
}

/// An object name as the API server admits it (a DNS-1123 subdomain, up to 253 characters).
pub fn object_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?){0,3}",
        // Long ones, where shortening starts.
        "[a-z0-9]([-a-z0-9.]{0,60}[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]{0,60}[a-z0-9])?){0,3}",
    ]
    .prop_filter("a DNS-1123 subdomain", |name| is_dns1123_subdomain(name))
}

/// An approval role as the AccessPolicy schema admits it (`ApprovalStage.role`).
pub fn role() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
}

mod oracles {
    use super::*;

    /// The oracles agree with examples from apimachinery's own validation tests, so that a
    /// property passing on them means what it says.
    #[test]
    fn oracles_agree_with_kubernetes_examples() {
        for good in ["a", "a-b", "0", "a".repeat(63).as_str()] {
            assert!(is_dns1123_label(good), "{good}");
        }
        for bad in ["", "A", "-a", "a-", "a.b", "a_b", "a".repeat(64).as_str()] {
            assert!(!is_dns1123_label(bad), "{bad}");
        }
        for good in ["a.b", "a-b.c-d", "1.2.3", "a".repeat(253).as_str()] {
            assert!(is_dns1123_subdomain(good), "{good}");
        }
        for bad in ["a..b", ".a", "a.", "a.-b", "A.b", "a".repeat(254).as_str()] {
            assert!(!is_dns1123_subdomain(bad), "{bad}");
        }
        for good in ["", "a", "A_b.c-D", "1", "a".repeat(63).as_str()] {
            assert!(is_label_value(good), "{good}");
        }
        for bad in ["-a", "a-", "_", "a b", "a/b", "ä", "a".repeat(64).as_str()] {
            assert!(!is_label_value(bad), "{bad}");
        }
        for good in [
            "Ready",
            "example.com/Ready",
            "approve.gatehouse.dev/data-owner",
        ] {
            assert!(is_qualified_name(good), "{good}");
        }
        for bad in [
            "",
            "/a",
            "a/",
            "A.com/b",
            "a/b/c",
            "a b",
            "a".repeat(64).as_str(),
        ] {
            assert!(!is_qualified_name(bad), "{bad}");
        }
        for bad in ["", ".", "..", "a/b", "a%b"] {
            assert!(!is_path_segment_name(bad), "{bad}");
        }
    }
}
