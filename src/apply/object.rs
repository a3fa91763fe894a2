//! The kinds of object the operator creates, who they were created for, and how they are named.

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, RoleRef};
use kube::api::ObjectMeta;

use crate::api::{
    BindingRef, MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL, made_for_kind, owner_label_value,
};

/// API group of Roles, RoleBindings and their references.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// One object the operator creates for an owner.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Secret(Secret),
    Role(Role),
    RoleBinding(RoleBinding),
    ClusterRoleBinding(ClusterRoleBinding),
}

/// The kinds of [`Object`], in the order they are written: a Role before the bindings that refer
/// to it (the API server's escalation check reads the Role a new binding grants).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Secret,
    Role,
    RoleBinding,
    ClusterRoleBinding,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::Secret,
        Kind::Role,
        Kind::RoleBinding,
        Kind::ClusterRoleBinding,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

/// Where an object is: what identifies it on the API server.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub kind: Kind,
    /// `None` for a ClusterRoleBinding.
    pub namespace: Option<String>,
    pub name: String,
}

impl Key {
    /// The key of a binding an AccessRequest's status records; `None` for a kind it never records.
    pub fn of_binding(reference: &BindingRef) -> Option<Key> {
        let kind = match reference.kind.as_str() {
            "RoleBinding" => Kind::RoleBinding,
            "ClusterRoleBinding" => Kind::ClusterRoleBinding,
            _ => return None,
        };
        Some(Key {
            kind,
            namespace: reference.namespace.clone(),
            name: reference.name.clone(),
        })
    }

    /// `<namespace>/<name>`, or `<name>` for a cluster-scoped object, for messages.
    pub fn describe(&self) -> String {
        match &self.namespace {
            Some(namespace) => format!("{namespace}/{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `<kind> <namespace>/<name>`, as Events and audit lines name what changed.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.as_str(), self.describe())
    }
}

/// The kinds the operator creates objects for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OwnerKind {
    AccessRequest,
    DataSharingAgreement,
}

impl OwnerKind {
    const ALL: [OwnerKind; 2] = [OwnerKind::AccessRequest, OwnerKind::DataSharingAgreement];

    pub fn as_str(self) -> &'static str {
        match self {
            OwnerKind::AccessRequest => "AccessRequest",
            OwnerKind::DataSharingAgreement => "DataSharingAgreement",
        }
    }

    /// How messages to the owner's author call it.
    pub fn noun(self) -> &'static str {
        match self {
            OwnerKind::AccessRequest => "request",
            OwnerKind::DataSharingAgreement => "agreement",
        }
    }
}

/// The AccessRequest or DataSharingAgreement an object was created for.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Owner {
    pub kind: OwnerKind,
    pub namespace: String,
    pub name: String,
}

impl Owner {
    pub fn new(kind: OwnerKind, namespace: &str, name: &str) -> Owner {
        Owner {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }

    /// The value of [`OWNER_LABEL`] on every object of this owner.
    pub fn label(&self) -> String {
        owner_label_value(self.kind.as_str(), &self.namespace, &self.name)
    }

    /// The owner of an object the operator created, or `None` when the operator did not create
    /// it: the managed-by label, an owner label naming an owner kind, and an owner annotation
    /// (`<namespace>/<name>`) that yields that very label. An object someone merely labelled, or
    /// one whose label and annotation disagree, is never the operator's to rewrite or delete.
    pub fn of(meta: &ObjectMeta) -> Option<Owner> {
        let labels = meta.labels.as_ref()?;
        let kind = OwnerKind::ALL
            .into_iter()
            .find(|kind| made_for_kind(labels, kind.as_str()))?;
        let (namespace, name) = meta
            .annotations
            .as_ref()?
            .get(OWNER_ANNOTATION)?
            .split_once('/')?;
        let owner = Owner::new(kind, namespace, name);
        (labels.get(OWNER_LABEL) == Some(&owner.label())).then_some(owner)
    }

    /// The metadata of an object named `name` created for this owner: the labels and the
    /// annotation [`Owner::of`] recognises.
    pub fn metadata(&self, namespace: Option<&str>, name: String) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: namespace.map(str::to_string),
            labels: Some(
                [
                    (OWNER_LABEL.to_string(), self.label()),
                    (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                ]
                .into(),
            ),
            annotations: Some(
                [(
                    OWNER_ANNOTATION.to_string(),
                    format!("{}/{}", self.namespace, self.name),
                )]
                .into(),
            ),
            ..Default::default()
        }
    }
}

/// `<namespace>/<name>` of the owner, as audit lines name it.
impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Object {
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Secret(o) => &o.metadata,
            Object::Role(o) => &o.metadata,
            Object::RoleBinding(o) => &o.metadata,
            Object::ClusterRoleBinding(o) => &o.metadata,
        }
    }

    pub(super) fn meta_mut(&mut self) -> &mut ObjectMeta {
        match self {
            Object::Secret(o) => &mut o.metadata,
            Object::Role(o) => &mut o.metadata,
            Object::RoleBinding(o) => &mut o.metadata,
            Object::ClusterRoleBinding(o) => &mut o.metadata,
        }
    }

    /// Sets the annotation `key` to `value`.
    pub fn annotate(&mut self, key: &str, value: String) {
        self.meta_mut()
            .annotations
            .get_or_insert_default()
            .insert(key.to_string(), value);
    }

    pub fn kind(&self) -> Kind {
        match self {
            Object::Secret(_) => Kind::Secret,
            Object::Role(_) => Kind::Role,
            Object::RoleBinding(_) => Kind::RoleBinding,
            Object::ClusterRoleBinding(_) => Kind::ClusterRoleBinding,
        }
    }

    pub fn key(&self) -> Key {
        let meta = self.meta();
        Key {
            kind: self.kind(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }

    /// `<namespace>/<name>`, or `<name>` for a cluster-scoped object, for messages.
    pub fn describe(&self) -> String {
        self.key().describe()
    }

    /// Who the operator created this object for; `None` when it did not create it.
    pub fn owner(&self) -> Option<Owner> {
        Owner::of(self.meta())
    }

    /// The role a binding grants; `None` for a Secret or Role.
    pub fn role_ref(&self) -> Option<&RoleRef> {
        match self {
            Object::RoleBinding(o) => Some(&o.role_ref),
            Object::ClusterRoleBinding(o) => Some(&o.role_ref),
            Object::Secret(_) | Object::Role(_) => None,
        }
    }

    /// How an AccessRequest's status records this object (a binding of its grant).
    pub fn reference(&self) -> BindingRef {
        let key = self.key();
        BindingRef {
            kind: key.kind.as_str().into(),
            namespace: key.namespace,
            name: key.name,
        }
    }
}

impl From<Secret> for Object {
    fn from(object: Secret) -> Object {
        Object::Secret(object)
    }
}

impl From<Role> for Object {
    fn from(object: Role) -> Object {
        Object::Role(object)
    }
}

impl From<RoleBinding> for Object {
    fn from(object: RoleBinding) -> Object {
        Object::RoleBinding(object)
    }
}

impl From<ClusterRoleBinding> for Object {
    fn from(object: ClusterRoleBinding) -> Object {
        Object::ClusterRoleBinding(object)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(meta: ObjectMeta) -> Object {
        Object::Secret(Secret {
            metadata: meta,
            ..Default::default()
        })
    }

    #[test]
    fn an_object_is_ours_only_with_managed_by_owner_label_and_a_matching_annotation() {
        let owner = Owner::new(OwnerKind::DataSharingAgreement, "orders", "to-analytics");
        let ours = owner.metadata(Some("analytics"), "orders.to-analytics.db".into());
        assert_eq!(secret(ours.clone()).owner(), Some(owner.clone()));

        for (what, edit) in [
            ("no managed-by label", {
                let mut meta = ours.clone();
                meta.labels.get_or_insert_default().remove(MANAGED_BY.0);
                meta
            }),
            ("no owner label", {
                let mut meta = ours.clone();
                meta.labels.get_or_insert_default().remove(OWNER_LABEL);
                meta
            }),
            ("no owner annotation", {
                let mut meta = ours.clone();
                meta.annotations = None;
                meta
            }),
            ("an annotation naming another owner", {
                let mut meta = ours.clone();
                meta.annotations
                    .get_or_insert_default()
                    .insert(OWNER_ANNOTATION.into(), "orders/other".into());
                meta
            }),
        ] {
            assert_eq!(secret(edit).owner(), None, "{what}");
        }
    }

    #[test]
    fn keys_describe_namespaced_and_cluster_objects() {
        let key = Key {
            kind: Kind::RoleBinding,
            namespace: Some("payments".into()),
            name: "gatehouse.payments.alice".into(),
        };
        assert_eq!(
            key.to_string(),
            "RoleBinding payments/gatehouse.payments.alice"
        );
        let cluster = Key {
            kind: Kind::ClusterRoleBinding,
            namespace: None,
            name: "gatehouse.payments.alice".into(),
        };
        assert_eq!(cluster.describe(), "gatehouse.payments.alice");
        assert_eq!(
            Key::of_binding(&BindingRef {
                kind: "ClusterRoleBinding".into(),
                namespace: None,
                name: "gatehouse.payments.alice".into(),
            }),
            Some(cluster)
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{config, namespace_name, object_name, tricky_text};

    proptest! {
        #![proptest_config(config())]

        /// The owner written into an object's metadata is read back from it.
        #[test]
        fn owners_read_back_from_their_metadata(
            kind in prop_oneof![Just(OwnerKind::AccessRequest), Just(OwnerKind::DataSharingAgreement)],
            namespace in namespace_name(),
            name in object_name(),
        ) {
            let owner = Owner::new(kind, &namespace, &name);
            prop_assert_eq!(Owner::of(&owner.metadata(Some(&namespace), "x".into())), Some(owner));
        }

        /// Labels and annotations anyone could put on an object: never a panic, and an owner only
        /// when the label is exactly the one its annotation yields.
        #[test]
        fn only_a_consistent_label_and_annotation_name_an_owner(
            label in prop_oneof![Just("accessrequest.a.b".to_string()), tricky_text()],
            annotation in prop_oneof![Just("a/b".to_string()), tricky_text()],
        ) {
            let meta = ObjectMeta {
                labels: Some([
                    (OWNER_LABEL.to_string(), label.clone()),
                    (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
                ].into()),
                annotations: Some([(OWNER_ANNOTATION.to_string(), annotation)].into()),
                ..Default::default()
            };
            if let Some(owner) = Owner::of(&meta) {
                prop_assert_eq!(owner.label(), label);
            }
        }
    }
}
