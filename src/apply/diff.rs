//! What must change so that an owner's objects are exactly the desired ones: a pure comparison of
//! the desired objects with those the owner already has.

use std::collections::{BTreeMap, BTreeSet};

use super::object::{Key, Object};
use crate::api::WINDOW_ANNOTATIONS;

/// The writes that make an owner's objects exactly the desired ones.
#[derive(Debug, Default, PartialEq)]
pub struct Changes {
    /// Desired objects that do not exist yet.
    pub create: Vec<Object>,
    /// Desired objects to replace existing ones that differ, each carrying the resourceVersion of
    /// the object it replaces (the write fails if that changed meanwhile).
    pub replace: Vec<Object>,
    /// Desired bindings whose existing object grants another role: a roleRef cannot change in
    /// place, so the old one is deleted and this one created.
    pub recreate: Vec<Object>,
    /// Objects that must not exist.
    pub delete: Vec<Key>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.replace.is_empty()
            && self.recreate.is_empty()
            && self.delete.is_empty()
    }

    /// Also deletes `key`, unless it is deleted already.
    pub fn delete_also(&mut self, key: Key) {
        if !self.delete.contains(&key) {
            self.delete.push(key);
        }
    }
}

/// Compares `desired` with `existing`, the objects the owner has (as the owned index holds them).
pub fn diff(desired: &[Object], existing: &[Object]) -> Changes {
    let existing_by_key: BTreeMap<Key, &Object> = existing.iter().map(|o| (o.key(), o)).collect();
    let mut changes = Changes::default();
    for want in desired {
        match existing_by_key.get(&want.key()) {
            None => changes.create.push(want.clone()),
            Some(have) if want.role_ref() != have.role_ref() => {
                changes.recreate.push(want.clone());
            }
            Some(have) if matches(want, have) => {}
            Some(have) => {
                let mut replacement = want.clone();
                replacement.meta_mut().resource_version = have.meta().resource_version.clone();
                changes.replace.push(replacement);
            }
        }
    }
    let desired_keys: BTreeSet<Key> = desired.iter().map(Object::key).collect();
    changes.delete = existing
        .iter()
        .map(Object::key)
        .filter(|key| !desired_keys.contains(key))
        .collect();
    changes
}

/// Whether `have` (as read from the cluster) already is `want`: the same content (data and type
/// of a Secret, rules of a Role, roleRef and subjects of a binding), and every label and
/// annotation of `want` with its value. Labels and annotations others add are tolerated, for
/// every kind: they grant nothing, and replacing them would fight whoever adds them (a mutating
/// admission policy re-adds them on every write), writing on every reconcile.
pub fn matches(want: &Object, have: &Object) -> bool {
    let content = match (want, have) {
        (Object::Secret(w), Object::Secret(h)) => {
            w.data.clone().unwrap_or_default() == h.data.clone().unwrap_or_default()
                && w.type_ == h.type_
        }
        (Object::Role(w), Object::Role(h)) => w.rules == h.rules,
        (Object::RoleBinding(w), Object::RoleBinding(h)) => {
            w.role_ref == h.role_ref && w.subjects == h.subjects
        }
        (Object::ClusterRoleBinding(w), Object::ClusterRoleBinding(h)) => {
            w.role_ref == h.role_ref && w.subjects == h.subjects
        }
        _ => false,
    };
    let includes = |want: &Option<BTreeMap<String, String>>,
                    have: &Option<BTreeMap<String, String>>,
                    may_lack: &[&str]| {
        want.iter()
            .flatten()
            .all(|(k, v)| match have.as_ref().and_then(|have| have.get(k)) {
                Some(held) => held == v,
                None => may_lack.contains(&k.as_str()),
            })
    };
    let (want, have) = (want.meta(), have.meta());
    content
        && includes(&want.labels, &have.labels, &[])
        // An object may lack its window annotations: one provided before objects carried their
        // window, whose status records it (the operator relies on them only until it does).
        // Rewriting it to add them would write every such object once, with a Warning that it
        // was restored. One that carries another window is drift.
        && includes(&want.annotations, &have.annotations, &WINDOW_ANNOTATIONS)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};

    use super::*;
    use crate::api::{EXPIRES_AT_ANNOTATION, OWNER_LABEL, WINDOW_SEAL_ANNOTATION};
    use crate::apply::object::{Kind, Owner, OwnerKind};

    fn owner() -> Owner {
        Owner::new(OwnerKind::AccessRequest, "payments", "alice-db-read")
    }

    fn binding(namespace: &str) -> Object {
        Object::RoleBinding(RoleBinding {
            metadata: owner().metadata(Some(namespace), "gatehouse.payments.alice-db-read".into()),
            role_ref: RoleRef {
                api_group: "rbac.authorization.k8s.io".into(),
                kind: "ClusterRole".into(),
                name: "db-reader".into(),
            },
            subjects: Some(vec![Subject {
                kind: "User".into(),
                name: "alice".into(),
                api_group: Some("rbac.authorization.k8s.io".into()),
                ..Default::default()
            }]),
        })
    }

    fn secret() -> Object {
        let owner = Owner::new(OwnerKind::DataSharingAgreement, "orders", "to-analytics");
        Object::Secret(Secret {
            metadata: owner.metadata(Some("analytics"), "orders.to-analytics.db".into()),
            data: Some([("host".to_string(), ByteString(b"db".to_vec()))].into()),
            type_: Some("Opaque".into()),
            ..Default::default()
        })
    }

    /// `object` as the API server returns it: with a resourceVersion.
    fn stored(mut object: Object, version: &str) -> Object {
        object.meta_mut().resource_version = Some(version.into());
        object
    }

    fn edit_binding(object: &Object, edit: impl FnOnce(&mut RoleBinding)) -> Object {
        let Object::RoleBinding(mut rb) = object.clone() else {
            panic!("a RoleBinding: {object:?}")
        };
        edit(&mut rb);
        Object::RoleBinding(rb)
    }

    #[test]
    fn the_changes_for_each_case() {
        let want = vec![binding("payments"), binding("payments-2"), secret()];
        let edited = edit_binding(&stored(binding("payments"), "7"), |rb| {
            rb.subjects.get_or_insert_default().push(Subject {
                kind: "User".into(),
                name: "mallory".into(),
                ..Default::default()
            });
        });
        let other_role = edit_binding(&stored(binding("payments-2"), "8"), |rb| {
            rb.role_ref.name = "cluster-admin".into();
        });
        let stray = stored(binding("orders"), "9");
        let cases: Vec<(&str, Vec<Object>, Changes)> = vec![
            (
                "nothing exists",
                vec![],
                Changes {
                    create: want.clone(),
                    ..Default::default()
                },
            ),
            (
                "all exist as desired",
                want.iter().cloned().map(|o| stored(o, "1")).collect(),
                Changes::default(),
            ),
            (
                "an edited one is replaced at the version read",
                vec![edited, stored(binding("payments-2"), "1"), secret()],
                Changes {
                    replace: vec![stored(binding("payments"), "7")],
                    ..Default::default()
                },
            ),
            (
                "a changed roleRef is recreated",
                vec![binding("payments"), other_role, secret()],
                Changes {
                    recreate: vec![binding("payments-2")],
                    ..Default::default()
                },
            ),
            (
                "an undesired owned one is deleted",
                vec![binding("payments"), binding("payments-2"), secret(), stray],
                Changes {
                    delete: vec![Key {
                        kind: Kind::RoleBinding,
                        namespace: Some("orders".into()),
                        name: "gatehouse.payments.alice-db-read".into(),
                    }],
                    ..Default::default()
                },
            ),
        ];
        for (case, existing, expected) in cases {
            assert_eq!(diff(&want, &existing), expected, "{case}");
        }
    }

    #[test]
    fn labels_and_annotations_others_add_are_tolerated_on_every_kind() {
        for want in [binding("payments"), secret()] {
            let mut labelled = want.clone();
            let meta = labelled.meta_mut();
            meta.labels
                .get_or_insert_default()
                .insert("team".into(), "analytics".into());
            meta.annotations
                .get_or_insert_default()
                .insert("note".into(), "checked".into());
            assert!(matches(&want, &labelled), "{want:?}");
            assert!(diff(std::slice::from_ref(&want), &[labelled]).is_empty());
        }
    }

    #[test]
    fn an_object_without_the_window_annotations_matches_one_with_another_window_does_not() {
        let mut want = binding("payments");
        want.annotate(EXPIRES_AT_ANNOTATION, "2026-12-02T10:00:00Z".into());
        want.annotate(WINDOW_SEAL_ANNOTATION, "hmac-sha256:ab".into());
        assert!(
            matches(&want, &binding("payments")),
            "provided before objects carried their window"
        );
        let mut moved = want.clone();
        moved.annotate(EXPIRES_AT_ANNOTATION, "2027-12-02T10:00:00Z".into());
        assert!(!matches(&want, &moved), "another window");
    }

    #[test]
    fn a_changed_or_removed_label_of_ours_or_edited_data_is_drift() {
        let want = secret();
        let mut unlabelled = want.clone();
        unlabelled
            .meta_mut()
            .labels
            .get_or_insert_default()
            .remove(OWNER_LABEL);
        assert!(!matches(&want, &unlabelled));
        let mut relabelled = want.clone();
        relabelled.meta_mut().labels.get_or_insert_default().insert(
            OWNER_LABEL.into(),
            "datasharingagreement.orders.other".into(),
        );
        assert!(!matches(&want, &relabelled));
        let Object::Secret(mut edited) = want.clone() else {
            panic!("a Secret")
        };
        edited
            .data
            .get_or_insert_default()
            .insert("extra".into(), ByteString(b"x".to_vec()));
        assert!(!matches(&want, &Object::Secret(edited)));
    }

    #[test]
    fn a_recorded_binding_is_deleted_once() {
        let mut changes = diff(&[], &[binding("payments")]);
        changes.delete_also(binding("payments").key());
        assert_eq!(changes.delete, vec![binding("payments").key()]);
    }
}
