//! The RoleBindings and ClusterRoleBindings that carry an AccessRequest's grant: pure builders,
//! written by [`crate::apply`].

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};

use crate::access::AcceptedRequest;
use crate::api::common::{RoleKind, SubjectKind};
use crate::api::owner_label_value;
use crate::apply::{Object, Owner, OwnerKind, RBAC_GROUP};

/// The bindings that grant an accepted request: one RoleBinding per target namespace, or one
/// ClusterRoleBinding for a cluster-wide grant. Names are deterministic, so a repeated apply
/// finds the same objects.
pub fn desired(
    request_namespace: &str,
    request_name: &str,
    request: &AcceptedRequest,
) -> Vec<Object> {
    let name = binding_name(request_namespace, request_name);
    let owner = Owner::new(OwnerKind::AccessRequest, request_namespace, request_name);
    let metadata = |namespace: Option<&str>| owner.metadata(namespace, name.clone());
    let role_ref = RoleRef {
        api_group: RBAC_GROUP.into(),
        kind: match request.role.kind {
            RoleKind::Role => "Role",
            RoleKind::ClusterRole => "ClusterRole",
        }
        .into(),
        name: request.role.name.clone(),
    };
    let subjects: Vec<Subject> = request.subjects.iter().map(rbac_subject).collect();
    if request.cluster_wide {
        return vec![Object::ClusterRoleBinding(ClusterRoleBinding {
            metadata: metadata(None),
            role_ref,
            subjects: Some(subjects),
        })];
    }
    request
        .namespaces
        .iter()
        .map(|ns| {
            Object::RoleBinding(RoleBinding {
                metadata: metadata(Some(ns)),
                role_ref: role_ref.clone(),
                subjects: Some(subjects.clone()),
            })
        })
        .collect()
}

/// `gatehouse.<request namespace>.<request name>`, shortened with a hash past 253 characters.
/// Namespace names have no dots, so no two requests share a name (with `-` they could:
/// `a`/`b-c` and `a-b`/`c`).
pub fn binding_name(request_namespace: &str, request_name: &str) -> String {
    let full = format!("gatehouse.{request_namespace}.{request_name}");
    if full.len() <= 253 {
        full
    } else {
        format!(
            "gatehouse.{}",
            owner_label_value("", request_namespace, request_name).trim_start_matches('.')
        )
    }
}

fn rbac_subject(subject: &crate::api::common::Subject) -> Subject {
    let (kind, api_group) = match subject.kind {
        SubjectKind::User => ("User", Some(RBAC_GROUP.to_string())),
        SubjectKind::Group => ("Group", Some(RBAC_GROUP.to_string())),
        SubjectKind::ServiceAccount => ("ServiceAccount", None),
    };
    Subject {
        kind: kind.into(),
        name: subject.name.clone(),
        namespace: subject.namespace.clone(),
        api_group,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use kube::ResourceExt;

    use super::*;
    use crate::access::accept;
    use crate::api::fixtures::{access_policy, access_request, namespaces};
    use crate::api::{OWNER_LABEL, owner_label_value};
    use crate::apply::{Changes, Index, Key, diff, orphans};

    fn accepted(namespaces_: &[&str]) -> AcceptedRequest {
        let mut request = access_request();
        request.spec.namespaces = namespaces_.iter().map(|s| s.to_string()).collect();
        let mut all = namespaces();
        all.insert("payments-2".into(), all["payments"].clone());
        accept(
            &request.spec,
            "payments",
            &[&access_policy("payments-db")],
            &all,
        )
        .expect("accepted")
    }

    #[test]
    fn one_role_binding_per_namespace_with_owner_label_and_deterministic_name() {
        let bindings = desired(
            "payments",
            "alice-db-read",
            &accepted(&["payments", "payments-2"]),
        );
        assert_eq!(bindings.len(), 2);
        let Object::RoleBinding(rb) = &bindings[1] else {
            panic!("expected a RoleBinding")
        };
        assert_eq!(
            rb.metadata.name.as_deref(),
            Some("gatehouse.payments.alice-db-read")
        );
        assert_eq!(rb.metadata.namespace.as_deref(), Some("payments-2"));
        assert_eq!(
            rb.labels().get(OWNER_LABEL).map(String::as_str),
            Some("accessrequest.payments.alice-db-read")
        );
        assert_eq!(rb.role_ref.kind, "ClusterRole");
        let subjects = rb.subjects.clone().unwrap_or_default();
        assert_eq!(
            (subjects[0].kind.as_str(), subjects[0].name.as_str()),
            ("User", "alice")
        );
        assert_eq!(
            bindings,
            desired(
                "payments",
                "alice-db-read",
                &accepted(&["payments", "payments-2"])
            )
        );
        assert_eq!(
            bindings[1].owner(),
            Some(Owner::new(
                OwnerKind::AccessRequest,
                "payments",
                "alice-db-read"
            )),
            "the applier recognises the bindings as made for the request"
        );
    }

    #[test]
    fn repair_creates_missing_restores_edited_and_deletes_strays() {
        let want = desired(
            "payments",
            "alice-db-read",
            &accepted(&["payments", "payments-2"]),
        );
        assert_eq!(
            diff(&want, &want),
            Changes::default(),
            "nothing to do when in sync"
        );

        let mut edited = want[0].clone();
        if let Object::RoleBinding(rb) = &mut edited {
            rb.subjects.get_or_insert_default().push(Subject {
                kind: "User".into(),
                name: "mallory".into(),
                ..Default::default()
            });
        }
        let mut stray = want[0].clone();
        if let Object::RoleBinding(rb) = &mut stray {
            rb.metadata.namespace = Some("orders".into());
        }
        let plan = diff(&want, &[edited, stray]);
        assert_eq!(plan.create, vec![want[1].clone()]);
        assert_eq!(plan.replace, vec![want[0].clone()]);
        assert_eq!(
            plan.delete.iter().map(Key::describe).collect::<Vec<_>>(),
            vec!["orders/gatehouse.payments.alice-db-read"]
        );
    }

    #[test]
    fn a_changed_role_ref_is_deleted_and_created_again() {
        let want = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let mut changed = want[0].clone();
        if let Object::RoleBinding(rb) = &mut changed {
            rb.role_ref.name = "cluster-admin".into();
        }
        let plan = diff(&want, &[changed]);
        assert_eq!(plan.recreate, want);
        assert!(plan.create.is_empty() && plan.replace.is_empty() && plan.delete.is_empty());
    }

    #[test]
    fn bindings_without_a_live_request_are_orphan_candidates() {
        let ours = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let foreign = Object::RoleBinding(RoleBinding {
            metadata: kube::api::ObjectMeta {
                name: Some("team-readers".into()),
                ..Default::default()
            },
            ..Default::default()
        });
        let index = Index::holding([ours[0].clone(), foreign]);
        let request = Owner::new(OwnerKind::AccessRequest, "payments", "alice-db-read");
        let live = BTreeSet::from([request.clone()]);
        assert!(
            orphans(&index, OwnerKind::AccessRequest, &live).is_empty(),
            "a live request keeps its binding"
        );
        let orphans = orphans(&index, OwnerKind::AccessRequest, &BTreeSet::new());
        assert_eq!(
            orphans.len(),
            1,
            "only bindings the operator made are candidates"
        );
        assert_eq!(
            orphans[0].key.describe(),
            "payments/gatehouse.payments.alice-db-read"
        );
        assert_eq!(orphans[0].owner, request);
    }

    #[test]
    fn bindings_of_data_shares_are_left_to_their_own_sweep() {
        let Object::RoleBinding(mut share) =
            desired("orders", "orders-reference", &accepted(&["payments"])).remove(0)
        else {
            panic!("expected a RoleBinding")
        };
        share.metadata.labels.get_or_insert_default().insert(
            OWNER_LABEL.into(),
            owner_label_value("DataSharingAgreement", "orders", "orders-reference"),
        );
        let index = Index::holding([Object::RoleBinding(share)]);
        assert!(orphans(&index, OwnerKind::AccessRequest, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn labels_others_add_are_not_drift() {
        let want = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let mut relabelled = want[0].clone();
        if let Object::RoleBinding(rb) = &mut relabelled {
            rb.metadata
                .labels
                .get_or_insert_default()
                .insert("extra".into(), "yes".into());
        }
        assert!(diff(&want, &[relabelled]).is_empty());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{
        config, is_dns1123_subdomain, is_path_segment_name, namespace_name, object_name,
    };

    proptest! {
        #![proptest_config(config())]

        /// The binding of any request the API server admits has a name RBAC accepts (and a DNS
        /// subdomain besides), and two requests never share one.
        #[test]
        fn binding_names_are_valid_and_distinct(
            namespace in namespace_name(),
            name in object_name(),
            other in object_name(),
        ) {
            let binding = binding_name(&namespace, &name);
            prop_assert!(is_path_segment_name(&binding) && is_dns1123_subdomain(&binding), "{}", binding);
            if other != name {
                prop_assert_ne!(binding, binding_name(&namespace, &other));
            }
        }
    }
}
