//! Whether a share would expose more than its reviewers approved: a `Reference` grants whole
//! objects, so every key of those objects must be listed.

use super::classify::ObservedSource;
use crate::api::TransferMethod;
use crate::api::conditions::reason;
use crate::lifecycle::Refusal;

/// A `Reference` lets the recipient read whole objects (RBAC cannot narrow a grant to keys), so
/// it may name only objects whose every key is listed: otherwise the recipient could read more
/// than the reviewers approved. Checked on every reconcile, so a key added to a source later
/// suspends an active Reference. Other methods share only the listed keys.
pub fn check_whole_objects(
    method: TransferMethod,
    sources: &[ObservedSource],
) -> Result<(), Refusal> {
    if method != TransferMethod::Reference {
        return Ok(());
    }
    let problems: Vec<String> = sources
        .iter()
        .enumerate()
        .filter(|(_, source)| source.labels.is_some())
        .filter_map(|(i, source)| {
            let unlisted: Vec<&str> = source
                .present_keys
                .iter()
                .filter(|key| !source.listed_keys.contains(key))
                .map(String::as_str)
                .collect();
            (!unlisted.is_empty()).then(|| {
                format!(
                    "spec.data[{i}]: Reference lets the recipient read all of {}, which also holds {}; list those keys too, or use Copy to share only the listed ones",
                    source.describe(),
                    unlisted.join(", ")
                )
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Refusal::new(reason::INVALID_SPEC, problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::api::SourceKind;

    #[test]
    fn a_reference_may_name_only_objects_whose_every_key_is_listed() {
        let source = |keys: &[&str]| {
            ObservedSource {
                kind: SourceKind::Secret,
                name: "orders-db".into(),
                listed_keys: vec!["password".into()],
                labels: None,
                present_keys: BTreeSet::new(),
            }
            .found(None, keys.iter().map(|k| k.to_string()))
        };
        assert!(check_whole_objects(TransferMethod::Reference, &[source(&["password"])]).is_ok());
        let refused =
            check_whole_objects(TransferMethod::Reference, &[source(&["password", "admin"])])
                .expect_err("an unlisted key is exposed");
        assert_eq!(refused.reason, reason::INVALID_SPEC);
        assert!(
            refused.message.contains("spec.data[0]: Reference lets the recipient read all of Secret orders-db, which also holds admin"),
            "{}",
            refused.message
        );
        assert!(
            check_whole_objects(TransferMethod::Copy, &[source(&["password", "admin"])]).is_ok()
        );
    }
}
