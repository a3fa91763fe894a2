//! The objects that carry a DataSharingAgreement's share: a Secret per source in the recipient
//! namespace (`Copy`) or the policy's egress namespace (`Export`), holding only the approved keys;
//! or a Role and RoleBinding letting the recipient ServiceAccount `get` exactly the named sources
//! (`Reference`). Builders are pure; [`converge`] makes the cluster hold exactly the desired objects.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{Error, RBAC_GROUP};
use crate::api::{
    DataSharingAgreementSpec, FIELD_MANAGER, MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL,
    SharedObject, SourceKind, TransferMethod, made_for_kind, owner_label_value,
};

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

/// One object of a share.
#[derive(Clone, Debug, PartialEq)]
pub enum Shared {
    Secret(Secret),
    Role(Role),
    RoleBinding(RoleBinding),
}

impl Shared {
    fn meta(&self) -> &ObjectMeta {
        match self {
            Shared::Secret(o) => &o.metadata,
            Shared::Role(o) => &o.metadata,
            Shared::RoleBinding(o) => &o.metadata,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Shared::Secret(_) => "Secret",
            Shared::Role(_) => "Role",
            Shared::RoleBinding(_) => "RoleBinding",
        }
    }

    fn key(&self) -> (&'static str, String, String) {
        let meta = self.meta();
        (
            self.kind(),
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        )
    }

    /// `<namespace>/<name>`, for messages.
    pub fn describe(&self) -> String {
        let (_, namespace, name) = self.key();
        format!("{namespace}/{name}")
    }

    /// What the sharing record says about this object: where it is and which keys it holds.
    pub fn record(&self, sources: &[Source]) -> SharedObject {
        let (kind, namespace, name) = self.key();
        let (keys, source_names) = match self {
            Shared::Secret(secret) => (
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
            Shared::Role(_) | Shared::RoleBinding(_) => (Vec::new(), Vec::new()),
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
            kind: kind.to_string(),
            namespace,
            name,
            keys,
            sources,
        }
    }

    /// Whether `existing` (as read from the cluster) already is this object as desired: same
    /// content and the operator's labels and annotations. Labels others add are tolerated.
    fn matches(&self, existing: &Shared) -> bool {
        let ours = |want: &Option<BTreeMap<String, String>>,
                    have: &Option<BTreeMap<String, String>>| {
            let have = have.clone().unwrap_or_default();
            want.iter().flatten().all(|(k, v)| have.get(k) == Some(v))
        };
        let (want, have) = (self.meta(), existing.meta());
        let content = match (self, existing) {
            (Shared::Secret(w), Shared::Secret(h)) => {
                w.data.clone().unwrap_or_default() == h.data.clone().unwrap_or_default()
                    && w.type_ == h.type_
            }
            (Shared::Role(w), Shared::Role(h)) => w.rules == h.rules,
            (Shared::RoleBinding(w), Shared::RoleBinding(h)) => {
                w.role_ref == h.role_ref && w.subjects == h.subjects
            }
            _ => false,
        };
        content && ours(&want.labels, &have.labels) && ours(&want.annotations, &have.annotations)
    }
}

/// Where an agreement's objects go and what they carry.
pub struct Target<'a> {
    pub agreement_namespace: &'a str,
    pub agreement_name: &'a str,
    pub spec: &'a DataSharingAgreementSpec,
    /// The governing policy's egress namespace, for `Export`.
    pub egress_namespace: Option<&'a str>,
}

impl Target<'_> {
    /// The value of the owner label on every object of this agreement.
    pub fn owner(&self) -> String {
        owner_label_value(
            "DataSharingAgreement",
            self.agreement_namespace,
            self.agreement_name,
        )
    }

    fn metadata(&self, namespace: &str, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([
                (OWNER_LABEL.to_string(), self.owner()),
                (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
            ])),
            annotations: Some(BTreeMap::from([(
                OWNER_ANNOTATION.to_string(),
                format!("{}/{}", self.agreement_namespace, self.agreement_name),
            )])),
            ..Default::default()
        }
    }
}

/// The objects that carry the share of `target`, given its sources as read now.
pub fn desired(target: &Target, sources: &[Source]) -> Vec<Shared> {
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
fn copies(target: &Target, namespace: &str, sources: &[Source], export: bool) -> Vec<Shared> {
    sources
        .iter()
        .map(|source| {
            let mut metadata = target.metadata(
                namespace,
                object_name(
                    target.agreement_namespace,
                    target.agreement_name,
                    &source.name,
                ),
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
            Shared::Secret(Secret {
                metadata,
                data: Some(source.values.clone()),
                type_: Some("Opaque".into()),
                ..Default::default()
            })
        })
        .collect()
}

/// A Role allowing `get` on exactly the named sources, bound to the recipient ServiceAccount.
fn reference(target: &Target, sources: &[Source]) -> Vec<Shared> {
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
    let name = format!("gatehouse-share.{}", target.agreement_name);
    let name = shorten(name);
    vec![
        Shared::Role(Role {
            metadata: target.metadata(target.agreement_namespace, name.clone()),
            rules: Some(rules),
        }),
        Shared::RoleBinding(RoleBinding {
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
/// is caught by the ownership check in [`converge`]).
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

/// The label selector of every object the agreement with owner label value `owner` created.
fn selector(owner: &str) -> ListParams {
    ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"))
}

/// What [`converge`] changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Converged {
    /// Objects created or rewritten (a sync, a restored edit or a recreated deletion).
    pub written: Vec<String>,
    /// Objects removed.
    pub deleted: Vec<String>,
}

/// Makes the objects of the agreement with owner label value `owner` exactly `desired`: creates
/// what is missing (server-side apply), replaces what differs (apply cannot remove keys or labels
/// another field manager added), deletes what is not desired. Never takes over an object it did
/// not create.
pub async fn converge(
    client: &Client,
    owner: &str,
    desired: &[Shared],
) -> Result<Converged, Error> {
    let existing = owned(client, owner).await?;
    let mut converged = Converged::default();
    for want in desired {
        match existing.iter().find(|have| have.key() == want.key()) {
            Some(have) if want.matches(have) => {}
            Some(have) => {
                replace(client, want, have).await?;
                converged
                    .written
                    .push(format!("{} {}", want.kind(), want.describe()));
            }
            None => {
                create(client, want).await?;
                converged
                    .written
                    .push(format!("{} {}", want.kind(), want.describe()));
            }
        }
    }
    for have in &existing {
        if !desired.iter().any(|want| want.key() == have.key()) {
            delete(client, have).await?;
            converged
                .deleted
                .push(format!("{} {}", have.kind(), have.describe()));
        }
    }
    Ok(converged)
}

/// Every object made for the agreement with owner label value `owner`, in any namespace: the
/// label, the managed-by label and the owner annotation, so that an object someone else merely
/// labelled is never rewritten or deleted.
pub async fn owned(client: &Client, owner: &str) -> Result<Vec<Shared>, Error> {
    let secrets = list::<Secret>(client, owner)
        .await?
        .into_iter()
        .map(Shared::Secret);
    let roles = list::<Role>(client, owner)
        .await?
        .into_iter()
        .map(Shared::Role);
    let bindings = list::<RoleBinding>(client, owner)
        .await?
        .into_iter()
        .map(Shared::RoleBinding);
    Ok(secrets
        .chain(roles)
        .chain(bindings)
        .filter(|object| object.agreement().is_some())
        .collect())
}

async fn list<K>(client: &Client, owner: &str) -> Result<Vec<K>, Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    Api::<K>::all(client.clone())
        .list(&selector(owner))
        .await
        .map(|list| list.items)
        .map_err(|source| Error::List {
            kind: K::kind(&()).to_string(),
            source,
        })
}

/// Creates a new object. A create (not an apply) because it fails when the name is taken: an
/// object someone else made is never overwritten.
async fn create(client: &Client, object: &Shared) -> Result<(), Error> {
    let (kind, namespace, name) = object.key();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let result = match object {
        Shared::Secret(o) => post(client, &namespace, &params, o).await,
        Shared::Role(o) => post(client, &namespace, &params, o).await,
        Shared::RoleBinding(o) => post(client, &namespace, &params, o).await,
    };
    match result {
        Err(kube::Error::Api(status)) if status.code == 409 => Err(Error::NameTaken {
            kind,
            name: format!("{namespace}/{name}"),
        }),
        other => other.map_err(|source| write_error(object, source)),
    }
}

async fn post<K>(
    client: &Client,
    namespace: &str,
    params: &PostParams,
    object: &K,
) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .create(params, object)
        .await
        .map(|_| ())
}

async fn replace(client: &Client, want: &Shared, have: &Shared) -> Result<(), Error> {
    let (_, namespace, name) = want.key();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let version = have.meta().resource_version.clone();
    let result = match (want, have) {
        (Shared::RoleBinding(w), Shared::RoleBinding(h)) if w.role_ref != h.role_ref => {
            // A roleRef cannot change in place.
            delete(client, have).await?;
            return create(client, want).await;
        }
        (Shared::Secret(w), _) => {
            let mut w = w.clone();
            w.metadata.resource_version = version;
            Api::<Secret>::namespaced(client.clone(), &namespace)
                .replace(&name, &params, &w)
                .await
                .map(|_| ())
        }
        (Shared::Role(w), _) => {
            let mut w = w.clone();
            w.metadata.resource_version = version;
            Api::<Role>::namespaced(client.clone(), &namespace)
                .replace(&name, &params, &w)
                .await
                .map(|_| ())
        }
        (Shared::RoleBinding(w), _) => {
            let mut w = w.clone();
            w.metadata.resource_version = version;
            Api::<RoleBinding>::namespaced(client.clone(), &namespace)
                .replace(&name, &params, &w)
                .await
                .map(|_| ())
        }
    };
    result.map_err(|source| write_error(want, source))
}

/// Deletes one object; one already gone counts as deleted.
pub async fn delete(client: &Client, object: &Shared) -> Result<(), Error> {
    let (kind, namespace, name) = object.key();
    match object {
        Shared::Secret(_) => {
            let api = Api::<Secret>::namespaced(client.clone(), &namespace);
            super::remove(&api, kind, &name).await
        }
        Shared::Role(_) => {
            let api = Api::<Role>::namespaced(client.clone(), &namespace);
            super::remove(&api, kind, &name).await
        }
        Shared::RoleBinding(_) => {
            let api = Api::<RoleBinding>::namespaced(client.clone(), &namespace);
            super::remove(&api, kind, &name).await
        }
    }
}

fn write_error(object: &Shared, source: kube::Error) -> Error {
    match object {
        Shared::RoleBinding(rb) => {
            Error::apply("RoleBinding", object.describe(), &rb.role_ref, source)
        }
        _ => Error::Apply {
            kind: object.kind(),
            name: object.describe(),
            source,
        },
    }
}

/// The owner (`namespace/name`) of an object made for a DataSharingAgreement, from its labels and
/// annotations; `None` for anything else (AccessRequest bindings carry the same annotation).
pub fn agreement_of(meta: &ObjectMeta) -> Option<(String, String)> {
    if !made_for_kind(meta.labels.as_ref()?, "DataSharingAgreement") {
        return None;
    }
    let (namespace, name) = meta
        .annotations
        .as_ref()?
        .get(OWNER_ANNOTATION)?
        .split_once('/')?;
    Some((namespace.to_string(), name.to_string()))
}

/// Every object made for any DataSharingAgreement: candidates for the orphan sweep.
pub async fn all_owned(client: &Client) -> Result<Vec<Shared>, Error> {
    let params =
        ListParams::default().labels(&format!("{}={},{OWNER_LABEL}", MANAGED_BY.0, MANAGED_BY.1));
    let secrets = Api::<Secret>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(|source| Error::List {
            kind: "Secret".into(),
            source,
        })?;
    let roles = Api::<Role>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(|source| Error::List {
            kind: "Role".into(),
            source,
        })?;
    let bindings = Api::<RoleBinding>::all(client.clone())
        .list_metadata(&params)
        .await
        .map_err(|source| Error::List {
            kind: "RoleBinding".into(),
            source,
        })?;
    let secrets = secrets.items.into_iter().map(|m| {
        Shared::Secret(Secret {
            metadata: m.metadata,
            ..Default::default()
        })
    });
    let roles = roles.items.into_iter().map(|m| {
        Shared::Role(Role {
            metadata: m.metadata,
            ..Default::default()
        })
    });
    let bindings = bindings.items.into_iter().map(|m| {
        Shared::RoleBinding(RoleBinding {
            metadata: m.metadata,
            ..Default::default()
        })
    });
    Ok(secrets
        .chain(roles)
        .chain(bindings)
        .filter(|object| agreement_of(object.meta()).is_some())
        .collect())
}

impl Shared {
    /// The agreement this object was made for.
    pub fn agreement(&self) -> Option<(String, String)> {
        agreement_of(self.meta())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::data_sharing_agreement;
    use crate::api::{ExternalRecipient, Recipient, Transfer};

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
        let Shared::Secret(secret) = &objects[0] else {
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
        let record = objects[0].record(&sources);
        assert_eq!(record.keys, vec!["host", "password"]);
        assert_eq!(record.sources, vec!["Secret/orders-db@7"]);
        assert_eq!(
            objects[1].record(&sources).sources,
            vec!["ConfigMap/orders-schema@7"]
        );
        assert_eq!(
            objects[0].agreement(),
            Some(("orders".into(), "orders-to-analytics".into()))
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
        let [Shared::Role(role), Shared::RoleBinding(binding)] = objects.as_slice() else {
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
        let Shared::Secret(secret) = &objects[0] else {
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
        assert!(want.matches(&want));
        let Shared::Secret(mut edited) = want.clone() else {
            panic!("a Secret")
        };
        edited
            .data
            .get_or_insert_default()
            .insert("extra".into(), ByteString(b"x".to_vec()));
        assert!(!want.matches(&Shared::Secret(edited)));
        let Shared::Secret(mut labelled) = want.clone() else {
            panic!("a Secret")
        };
        labelled
            .metadata
            .labels
            .get_or_insert_default()
            .insert("team".into(), "analytics".into());
        assert!(want.matches(&Shared::Secret(labelled.clone())));
        labelled
            .metadata
            .labels
            .get_or_insert_default()
            .remove(OWNER_LABEL);
        assert!(!want.matches(&Shared::Secret(labelled)));
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
