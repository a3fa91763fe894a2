//! The objects that carry a DataSharingAgreement's share: a Secret per source in the recipient
//! namespace (`Copy`) or the policy's egress namespace (`Export`), holding only the approved keys;
//! or a Role and RoleBinding letting the recipient ServiceAccount `get` exactly the named sources
//! (`Reference`). Pure builders, written by [`crate::apply`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::ResourceExt;
use kube::api::ObjectMeta;
use sha2::{Digest, Sha256};

use crate::api::SourceKind;
use crate::api::{DataSharingAgreementSpec, SharedObject, TransferMethod};
use crate::apply::{Object, Owner, OwnerKind, RBAC_GROUP};

/// Annotation on a shared Secret naming the object its keys come from.
pub const SOURCE_ANNOTATION: &str = "gatehouse.dev/source";
/// Labels on an exported Secret, for the egress tool to select what to send where.
pub const RECIPIENT_LABEL: &str = "gatehouse.dev/recipient";
pub const AGREEMENT_LABEL: &str = "gatehouse.dev/agreement";
/// Annotations on an exported Secret with the full recipient and agreement, which labels cannot
/// hold.
pub const RECIPIENT_ANNOTATION: &str = "gatehouse.dev/recipient-organization";
pub const COUNTRY_ANNOTATION: &str = "gatehouse.dev/recipient-country";
pub const AGREEMENT_ANNOTATION: &str = "gatehouse.dev/agreement-reference";

/// A source object as read for a share: its version and the values of the listed keys only.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub kind: SourceKind,
    pub name: String,
    pub resource_version: String,
    pub values: BTreeMap<String, ByteString>,
}

impl Source {
    /// `<kind>/<name>@<resourceVersion>`, as the sharing record lists it.
    pub fn version(&self) -> String {
        format!(
            "{}/{}@{}",
            self.kind.name(),
            self.name,
            self.resource_version
        )
    }
}

/// What the sharing record says about `object`: where it is and which keys it holds.
pub fn record(object: &Object, sources: &[Source]) -> SharedObject {
    let key = object.key();
    let (keys, source_names) = match object {
        Object::Secret(secret) => (
            secret
                .data
                .as_ref()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default(),
            secret
                .annotations()
                .get(SOURCE_ANNOTATION)
                .into_iter()
                .cloned()
                .collect::<Vec<_>>(),
        ),
        Object::Role(_) | Object::RoleBinding(_) | Object::ClusterRoleBinding(_) => {
            (Vec::new(), Vec::new())
        }
    };
    let sources = sources
        .iter()
        .filter(|s| {
            source_names.is_empty()
                || source_names.contains(&format!("{}/{}", s.kind.name(), s.name))
        })
        .map(Source::version)
        .collect();
    SharedObject {
        kind: key.kind.as_str().to_string(),
        namespace: key.namespace.unwrap_or_default(),
        name: key.name,
        keys,
        sources,
    }
}

/// Where an agreement's objects go and what they carry.
pub struct Target<'a> {
    pub agreement_namespace: &'a str,
    pub agreement_name: &'a str,
    /// What the objects are named after: the agreement itself, or the first agreement of the
    /// extension chain it continues (`spec.extends`), whose objects it takes over.
    pub chain_root: &'a str,
    pub spec: &'a DataSharingAgreementSpec,
    /// The governing policy's egress namespace, for `Export`.
    pub egress_namespace: Option<&'a str>,
}

impl Target<'_> {
    /// The agreement every object of this share is made for.
    pub fn owner(&self) -> Owner {
        Owner::new(
            OwnerKind::DataSharingAgreement,
            self.agreement_namespace,
            self.agreement_name,
        )
    }

    fn metadata(&self, namespace: &str, name: String) -> ObjectMeta {
        self.owner().metadata(Some(namespace), name)
    }
}

/// The objects that carry the share of `target`, given its sources as read now.
pub fn desired(target: &Target, sources: &[Source]) -> Vec<Object> {
    match target.spec.transfer.method {
        TransferMethod::Copy => match target.spec.recipient.namespace.as_deref() {
            Some(namespace) => copies(target, namespace, sources, false),
            None => Vec::new(),
        },
        TransferMethod::Export => match target.egress_namespace {
            Some(namespace) => copies(target, namespace, sources, true),
            None => Vec::new(),
        },
        TransferMethod::Reference => reference(target, sources),
    }
}

/// One Secret per source, holding exactly the source's approved keys.
fn copies(target: &Target, namespace: &str, sources: &[Source], export: bool) -> Vec<Object> {
    sources
        .iter()
        .map(|source| {
            let mut metadata = target.metadata(
                namespace,
                object_name(target.agreement_namespace, target.chain_root, &source.name),
            );
            let annotations = metadata.annotations.get_or_insert_default();
            annotations.insert(
                SOURCE_ANNOTATION.to_string(),
                format!("{}/{}", source.kind.name(), source.name),
            );
            if export && let Some(external) = &target.spec.recipient.external {
                let reference = target
                    .spec
                    .agreement
                    .as_ref()
                    .map(|a| a.reference.clone())
                    .unwrap_or_default();
                annotations.insert(RECIPIENT_ANNOTATION.into(), external.organization.clone());
                annotations.insert(COUNTRY_ANNOTATION.into(), external.country.clone());
                annotations.insert(AGREEMENT_ANNOTATION.into(), reference.clone());
                let labels = metadata.labels.get_or_insert_default();
                labels.insert(RECIPIENT_LABEL.into(), label_safe(&external.organization));
                labels.insert(AGREEMENT_LABEL.into(), label_safe(&reference));
            }
            Object::Secret(Secret {
                metadata,
                data: Some(source.values.clone()),
                type_: Some("Opaque".into()),
                ..Default::default()
            })
        })
        .collect()
}

/// A Role allowing `get` on exactly the named sources, bound to the recipient ServiceAccount.
fn reference(target: &Target, sources: &[Source]) -> Vec<Object> {
    let recipient = &target.spec.recipient;
    let (Some(namespace), Some(service_account)) =
        (&recipient.namespace, &recipient.service_account)
    else {
        return Vec::new();
    };
    let names = |kind: SourceKind| -> Vec<String> {
        let mut names: Vec<String> = sources
            .iter()
            .filter(|s| s.kind == kind)
            .map(|s| s.name.clone())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let rules: Vec<PolicyRule> = [
        (SourceKind::Secret, "secrets"),
        (SourceKind::ConfigMap, "configmaps"),
    ]
    .into_iter()
    .filter_map(|(kind, resource)| {
        let names = names(kind);
        (!names.is_empty()).then(|| PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec![resource.into()]),
            resource_names: Some(names),
            verbs: vec!["get".into()],
            ..Default::default()
        })
    })
    .collect();
    let name = format!("gatehouse-share.{}", target.chain_root);
    let name = shorten(name);
    vec![
        Object::Role(Role {
            metadata: target.metadata(target.agreement_namespace, name.clone()),
            rules: Some(rules),
        }),
        Object::RoleBinding(RoleBinding {
            metadata: target.metadata(target.agreement_namespace, name.clone()),
            role_ref: RoleRef {
                api_group: RBAC_GROUP.into(),
                kind: "Role".into(),
                name,
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: service_account.clone(),
                namespace: Some(namespace.clone()),
                api_group: None,
            }]),
        }),
    ]
}

/// `<agreement namespace>.<agreement name>.<source name>`: readable for the recipient, and two
/// agreements never write the same object (namespace names have no dots; a clash of dotted names
/// is caught by the ownership check in [`crate::apply::execute`]).
fn object_name(agreement_namespace: &str, agreement_name: &str, source: &str) -> String {
    shorten(format!("{agreement_namespace}.{agreement_name}.{source}"))
}

/// Names longer than the 253 characters Kubernetes allows keep their first 200 characters and a
/// hash of the whole.
fn shorten(name: String) -> String {
    if name.len() <= 253 {
        return name;
    }
    let digest = Sha256::digest(name.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let prefix: String = name.chars().take(200).collect();
    format!("{}-{hex}", prefix.trim_end_matches(['.', '-']))
}

/// A label value made of the characters labels allow, at most 63, starting and ending
/// alphanumeric (the full text is in an annotation).
fn label_safe(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::OWNER_LABEL;
    use crate::api::fixtures::data_sharing_agreement;
    use crate::api::{ExternalRecipient, Recipient, Transfer};
    use crate::apply::matches;

    fn source(kind: SourceKind, name: &str, keys: &[(&str, &str)]) -> Source {
        Source {
            kind,
            name: name.into(),
            resource_version: "7".into(),
            values: keys
                .iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    fn target(spec: &DataSharingAgreementSpec) -> Target<'_> {
        Target {
            agreement_namespace: "orders",
            agreement_name: "orders-to-analytics",
            chain_root: "orders-to-analytics",
            spec,
            egress_namespace: Some("egress"),
        }
    }

    #[test]
    fn a_copy_holds_exactly_the_approved_keys_in_the_recipient_namespace() {
        let spec = data_sharing_agreement().spec;
        let sources = [
            source(
                SourceKind::Secret,
                "orders-db",
                &[("host", "db"), ("password", "s3cret")],
            ),
            source(
                SourceKind::ConfigMap,
                "orders-schema",
                &[("schema.sql", "create")],
            ),
        ];
        let objects = desired(&target(&spec), &sources);
        assert_eq!(objects.len(), 2);
        let Object::Secret(secret) = &objects[0] else {
            panic!("a Secret: {objects:?}")
        };
        assert_eq!(secret.metadata.namespace.as_deref(), Some("analytics"));
        assert_eq!(
            secret.metadata.name.as_deref(),
            Some("orders.orders-to-analytics.orders-db")
        );
        assert_eq!(
            secret.labels().get(OWNER_LABEL).map(String::as_str),
            Some("datasharingagreement.orders.orders-to-analytics")
        );
        let recorded = record(&objects[0], &sources);
        assert_eq!(recorded.keys, vec!["host", "password"]);
        assert_eq!(recorded.sources, vec!["Secret/orders-db@7"]);
        assert_eq!(
            record(&objects[1], &sources).sources,
            vec!["ConfigMap/orders-schema@7"]
        );
        assert_eq!(
            objects[0].owner(),
            Some(Owner::new(
                OwnerKind::DataSharingAgreement,
                "orders",
                "orders-to-analytics"
            ))
        );
    }

    #[test]
    fn a_reference_grants_get_on_exactly_the_named_sources() {
        let mut spec = data_sharing_agreement().spec;
        spec.transfer = Transfer {
            method: TransferMethod::Reference,
        };
        spec.recipient.service_account = Some("reporting".into());
        let sources = [
            source(SourceKind::Secret, "orders-db", &[]),
            source(SourceKind::ConfigMap, "orders-schema", &[]),
        ];
        let objects = desired(&target(&spec), &sources);
        let [Object::Role(role), Object::RoleBinding(binding)] = objects.as_slice() else {
            panic!("a Role and a RoleBinding: {objects:?}")
        };
        assert_eq!(role.metadata.namespace.as_deref(), Some("orders"));
        let rules = role.rules.clone().unwrap_or_default();
        assert_eq!(rules.len(), 2);
        for rule in &rules {
            assert_eq!(rule.verbs, vec!["get"]);
            assert_eq!(rule.resource_names.as_ref().map(Vec::len), Some(1));
        }
        let subjects = binding.subjects.clone().unwrap_or_default();
        assert_eq!(subjects[0].name, "reporting");
        assert_eq!(subjects[0].namespace.as_deref(), Some("analytics"));
        assert_eq!(
            binding.role_ref.name,
            role.metadata.name.clone().unwrap_or_default()
        );
    }

    #[test]
    fn an_export_is_labelled_with_recipient_and_agreement_in_the_egress_namespace() {
        let mut spec = data_sharing_agreement().spec;
        spec.transfer = Transfer {
            method: TransferMethod::Export,
        };
        spec.recipient = Recipient {
            namespace: None,
            service_account: None,
            external: Some(ExternalRecipient {
                organization: "Acme Analytics Ltd".into(),
                country: "US".into(),
                contact: None,
            }),
        };
        spec.agreement = Some(crate::api::AgreementRef {
            reference: "DPA-2026-017".into(),
        });
        let objects = desired(
            &target(&spec),
            &[source(SourceKind::Secret, "db", &[("k", "v")])],
        );
        let Object::Secret(secret) = &objects[0] else {
            panic!("a Secret")
        };
        assert_eq!(secret.metadata.namespace.as_deref(), Some("egress"));
        assert_eq!(
            secret.labels().get(RECIPIENT_LABEL).map(String::as_str),
            Some("Acme-Analytics-Ltd")
        );
        assert_eq!(
            secret.labels().get(AGREEMENT_LABEL).map(String::as_str),
            Some("DPA-2026-017")
        );
        assert_eq!(
            secret
                .annotations()
                .get(RECIPIENT_ANNOTATION)
                .map(String::as_str),
            Some("Acme Analytics Ltd")
        );
    }

    #[test]
    fn edited_content_or_removed_labels_do_not_match_but_extra_labels_do() {
        let spec = data_sharing_agreement().spec;
        let sources = [source(SourceKind::Secret, "db", &[("k", "v")])];
        let want = desired(&target(&spec), &sources).remove(0);
        assert!(matches(&want, &want));
        let Object::Secret(mut edited) = want.clone() else {
            panic!("a Secret")
        };
        edited
            .data
            .get_or_insert_default()
            .insert("extra".into(), ByteString(b"x".to_vec()));
        assert!(!matches(&want, &Object::Secret(edited)));
        let Object::Secret(mut labelled) = want.clone() else {
            panic!("a Secret")
        };
        labelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "analytics".into());
        assert!(matches(&want, &Object::Secret(labelled.clone())));
        labelled
            .metadata
            .labels
            .get_or_insert_default()
            .remove(OWNER_LABEL);
        assert!(!matches(&want, &Object::Secret(labelled)));
    }

    #[test]
    fn long_names_are_shortened_and_labels_made_safe() {
        let long = object_name("orders", &"a".repeat(200), &"b".repeat(100));
        assert!(long.len() <= 253, "{}", long.len());
        assert_ne!(
            long,
            object_name("orders", &"a".repeat(200), &"b".repeat(101))
        );
        assert_eq!(label_safe(" Ünïcode & Co. "), "n-code---Co");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{
        self as strategies, config, is_dns1123_subdomain, is_label_value, namespace_name,
        tricky_text,
    };

    proptest! {
        #![proptest_config(config())]

        /// The Secret a share writes, and its Role, have names the API server accepts for any
        /// agreement and source it admits.
        #[test]
        fn shared_object_names_are_dns_subdomains(
            namespace in namespace_name(),
            agreement in strategies::object_name(),
            source in strategies::object_name(),
        ) {
            let secret = object_name(&namespace, &agreement, &source);
            prop_assert!(is_dns1123_subdomain(&secret), "{}", secret);
            let role = shorten(format!("gatehouse-share.{agreement}"));
            prop_assert!(is_dns1123_subdomain(&role), "{}", role);
        }

        /// An external recipient's organisation and agreement reference are free text; the
        /// labels made of them are always valid label values.
        #[test]
        fn labels_of_free_text_are_valid(text in tricky_text()) {
            let label = label_safe(&text);
            prop_assert!(is_label_value(&label), "{:?} -> {:?}", text, label);
        }
    }
}
