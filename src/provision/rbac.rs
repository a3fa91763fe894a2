//! RoleBindings and ClusterRoleBindings that carry an AccessRequest's grant.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding, RoleRef, Subject};
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};

use super::{Error, RBAC_GROUP};
use crate::access::AcceptedRequest;
use crate::api::common::{RoleKind, SubjectKind};
use crate::api::{
    BindingRef, FIELD_MANAGER, MANAGED_BY, OWNER_ANNOTATION, OWNER_LABEL, made_for_kind,
    owner_label_value,
};

/// A binding the operator owns.
#[derive(Clone, Debug, PartialEq)]
pub enum Binding {
    Namespaced(RoleBinding),
    Cluster(ClusterRoleBinding),
}

impl Binding {
    pub fn reference(&self) -> BindingRef {
        match self {
            Binding::Namespaced(rb) => BindingRef {
                kind: "RoleBinding".into(),
                namespace: rb.namespace(),
                name: rb.name_any(),
            },
            Binding::Cluster(crb) => BindingRef {
                kind: "ClusterRoleBinding".into(),
                namespace: None,
                name: crb.name_any(),
            },
        }
    }
}

/// The bindings that grant an accepted request: one RoleBinding per target namespace, or one
/// ClusterRoleBinding for a cluster-wide grant. Names are deterministic, so a repeated apply
/// finds the same objects.
pub fn desired(
    request_namespace: &str,
    request_name: &str,
    request: &AcceptedRequest,
) -> Vec<Binding> {
    let name = binding_name(request_namespace, request_name);
    let metadata = |namespace: Option<String>| ObjectMeta {
        name: Some(name.clone()),
        namespace,
        labels: Some(BTreeMap::from([
            (
                OWNER_LABEL.to_string(),
                owner_label_value("AccessRequest", request_namespace, request_name),
            ),
            (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        ])),
        annotations: Some(BTreeMap::from([(
            OWNER_ANNOTATION.to_string(),
            format!("{request_namespace}/{request_name}"),
        )])),
        ..Default::default()
    };
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
        return vec![Binding::Cluster(ClusterRoleBinding {
            metadata: metadata(None),
            role_ref,
            subjects: Some(subjects),
        })];
    }
    request
        .namespaces
        .iter()
        .map(|ns| {
            Binding::Namespaced(RoleBinding {
                metadata: metadata(Some(ns.clone())),
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

/// What must change so that the bindings that exist are exactly the desired ones.
#[derive(Debug, Default, PartialEq)]
pub struct Repair {
    /// Desired bindings that do not exist yet.
    pub create: Vec<Binding>,
    /// Bindings that exist but were edited: replaced with the desired object.
    pub restore: Vec<Binding>,
    /// Bindings of ours that must not exist (no longer desired, or a roleRef was changed, which
    /// Kubernetes cannot update in place: those are deleted and created again).
    pub delete: Vec<BindingRef>,
}

impl Repair {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.restore.is_empty() && self.delete.is_empty()
    }
}

/// Compares the desired bindings with those that carry the request's owner label.
pub fn repair(desired: &[Binding], existing: &[Binding]) -> Repair {
    let mut plan = Repair::default();
    for want in desired {
        let found = existing
            .iter()
            .find(|have| have.reference() == want.reference());
        match found {
            None => plan.create.push(want.clone()),
            Some(have) if same_role(have, want) => {
                if !matches(have, want) {
                    plan.restore.push(want.clone());
                }
            }
            Some(have) => {
                plan.delete.push(have.reference());
                plan.create.push(want.clone());
            }
        }
    }
    for have in existing {
        if !desired
            .iter()
            .any(|want| want.reference() == have.reference())
        {
            plan.delete.push(have.reference());
        }
    }
    plan
}

fn same_role(a: &Binding, b: &Binding) -> bool {
    match (a, b) {
        (Binding::Namespaced(a), Binding::Namespaced(b)) => a.role_ref == b.role_ref,
        (Binding::Cluster(a), Binding::Cluster(b)) => a.role_ref == b.role_ref,
        _ => false,
    }
}

/// Subjects and labels exactly as desired, and our annotation present.
fn matches(have: &Binding, want: &Binding) -> bool {
    let (have_meta, have_subjects, want_meta, want_subjects) = match (have, want) {
        (Binding::Namespaced(h), Binding::Namespaced(w)) => {
            (&h.metadata, &h.subjects, &w.metadata, &w.subjects)
        }
        (Binding::Cluster(h), Binding::Cluster(w)) => {
            (&h.metadata, &h.subjects, &w.metadata, &w.subjects)
        }
        _ => return false,
    };
    let owner = |meta: &ObjectMeta| {
        meta.annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION))
            .cloned()
    };
    have_subjects == want_subjects
        && have_meta.labels == want_meta.labels
        && owner(have_meta) == owner(want_meta)
}

/// The bindings among `role_bindings` and `cluster_role_bindings` (the operator's caches) that
/// carry the owner label of one request.
pub fn owned(
    request_namespace: &str,
    request_name: &str,
    role_bindings: &[std::sync::Arc<RoleBinding>],
    cluster_role_bindings: &[std::sync::Arc<ClusterRoleBinding>],
) -> Vec<Binding> {
    let owner = owner_label_value("AccessRequest", request_namespace, request_name);
    let ours = |labels: &BTreeMap<String, String>| labels.get(OWNER_LABEL) == Some(&owner);
    role_bindings
        .iter()
        .filter(|rb| ours(rb.labels()))
        .map(|rb| Binding::Namespaced((**rb).clone()))
        .chain(
            cluster_role_bindings
                .iter()
                .filter(|crb| ours(crb.labels()))
                .map(|crb| Binding::Cluster((**crb).clone())),
        )
        .collect()
}

/// Bindings the operator made (managed-by and owner labels) whose request, named by the owner
/// annotation, is not among `requests` (`namespace/name`): candidates for removal. The caller
/// confirms with the API server before deleting, as its view of the requests may lag.
pub fn orphan_candidates(
    role_bindings: &[std::sync::Arc<RoleBinding>],
    cluster_role_bindings: &[std::sync::Arc<ClusterRoleBinding>],
    requests: &std::collections::BTreeSet<String>,
) -> Vec<(BindingRef, Option<(String, String)>)> {
    let candidate = |binding: Binding| {
        let meta = match &binding {
            Binding::Namespaced(rb) => &rb.metadata,
            Binding::Cluster(crb) => &crb.metadata,
        };
        let labels = meta.labels.as_ref()?;
        // Bindings of data shares have their own sweep (provision::sharing).
        if !made_for_kind(labels, "AccessRequest") {
            return None;
        }
        let owner = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(OWNER_ANNOTATION));
        if owner.is_some_and(|o| requests.contains(o)) {
            return None;
        }
        let owner = owner
            .and_then(|o| o.split_once('/'))
            .map(|(ns, name)| (ns.to_string(), name.to_string()));
        Some((binding.reference(), owner))
    };
    role_bindings
        .iter()
        .filter_map(|rb| candidate(Binding::Namespaced((**rb).clone())))
        .chain(
            cluster_role_bindings
                .iter()
                .filter_map(|crb| candidate(Binding::Cluster((**crb).clone()))),
        )
        .collect()
}

/// Creates or updates a binding by server-side apply.
pub async fn apply(client: &Client, binding: &Binding) -> Result<(), Error> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let reference = binding.reference();
    let result = match binding {
        Binding::Namespaced(rb) => {
            let api = Api::<RoleBinding>::namespaced(
                client.clone(),
                reference.namespace.as_deref().unwrap_or_default(),
            );
            api.patch(
                &reference.name,
                &params,
                &Patch::Apply(with_type(rb, "RoleBinding")),
            )
            .await
            .map(|_| ())
        }
        Binding::Cluster(crb) => {
            let api = Api::<ClusterRoleBinding>::all(client.clone());
            api.patch(
                &reference.name,
                &params,
                &Patch::Apply(with_type(crb, "ClusterRoleBinding")),
            )
            .await
            .map(|_| ())
        }
    };
    result.map_err(|source| {
        Error::apply(
            kind_of(binding),
            describe(&reference),
            role_ref_of(binding),
            source,
        )
    })
}

/// Replaces an edited binding with exactly the desired object (server-side apply cannot remove
/// labels or annotations that another field manager added).
pub async fn restore(
    client: &Client,
    binding: &Binding,
    existing: &[Binding],
) -> Result<(), Error> {
    let reference = binding.reference();
    let resource_version = existing
        .iter()
        .find(|b| b.reference() == reference)
        .and_then(|b| match b {
            Binding::Namespaced(rb) => rb.resource_version(),
            Binding::Cluster(crb) => crb.resource_version(),
        });
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    let result = match binding {
        Binding::Namespaced(rb) => {
            let mut rb = rb.clone();
            rb.metadata.resource_version = resource_version;
            let api = Api::<RoleBinding>::namespaced(
                client.clone(),
                reference.namespace.as_deref().unwrap_or_default(),
            );
            api.replace(&reference.name, &params, &rb).await.map(|_| ())
        }
        Binding::Cluster(crb) => {
            let mut crb = crb.clone();
            crb.metadata.resource_version = resource_version;
            Api::<ClusterRoleBinding>::all(client.clone())
                .replace(&reference.name, &params, &crb)
                .await
                .map(|_| ())
        }
    };
    result.map_err(|source| {
        Error::apply(
            kind_of(binding),
            describe(&reference),
            role_ref_of(binding),
            source,
        )
    })
}

/// Deletes a binding; one that is already gone counts as deleted.
pub async fn delete(client: &Client, reference: &BindingRef) -> Result<(), Error> {
    if reference.kind == "ClusterRoleBinding" {
        let api = Api::<ClusterRoleBinding>::all(client.clone());
        super::remove(&api, "ClusterRoleBinding", &reference.name).await
    } else {
        let namespace = reference.namespace.as_deref().unwrap_or_default();
        let api = Api::<RoleBinding>::namespaced(client.clone(), namespace);
        super::remove(&api, "RoleBinding", &reference.name).await
    }
}

fn with_type<T: serde::Serialize>(object: &T, kind: &str) -> serde_json::Value {
    let mut value = serde_json::to_value(object).unwrap_or_default();
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), format!("{RBAC_GROUP}/v1").into());
        map.insert("kind".into(), kind.into());
    }
    value
}

fn kind_of(binding: &Binding) -> &'static str {
    match binding {
        Binding::Namespaced(_) => "RoleBinding",
        Binding::Cluster(_) => "ClusterRoleBinding",
    }
}

fn role_ref_of(binding: &Binding) -> &RoleRef {
    match binding {
        Binding::Namespaced(rb) => &rb.role_ref,
        Binding::Cluster(crb) => &crb.role_ref,
    }
}

/// `namespace/name` or `name`, for messages.
pub fn describe(reference: &BindingRef) -> String {
    match &reference.namespace {
        Some(ns) => format!("{ns}/{}", reference.name),
        None => reference.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::accept;
    use crate::api::fixtures::{access_policy, access_request, namespaces};

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
        let Binding::Namespaced(rb) = &bindings[1] else {
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
    }

    #[test]
    fn repair_creates_missing_restores_edited_and_deletes_strays() {
        let want = desired(
            "payments",
            "alice-db-read",
            &accepted(&["payments", "payments-2"]),
        );
        assert_eq!(
            repair(&want, &want),
            Repair::default(),
            "nothing to do when in sync"
        );

        let mut edited = want[0].clone();
        if let Binding::Namespaced(rb) = &mut edited {
            rb.subjects.get_or_insert_default().push(Subject {
                kind: "User".into(),
                name: "mallory".into(),
                ..Default::default()
            });
        }
        let mut stray = want[0].clone();
        if let Binding::Namespaced(rb) = &mut stray {
            rb.metadata.namespace = Some("orders".into());
        }
        let plan = repair(&want, &[edited, stray]);
        assert_eq!(plan.create, vec![want[1].clone()]);
        assert_eq!(plan.restore, vec![want[0].clone()]);
        assert_eq!(
            plan.delete.iter().map(describe).collect::<Vec<_>>(),
            vec!["orders/gatehouse.payments.alice-db-read"]
        );
    }

    #[test]
    fn a_changed_role_ref_is_deleted_and_created_again() {
        let want = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let mut changed = want[0].clone();
        if let Binding::Namespaced(rb) = &mut changed {
            rb.role_ref.name = "cluster-admin".into();
        }
        let plan = repair(&want, &[changed]);
        assert_eq!(plan.delete.len(), 1);
        assert_eq!(plan.create, want);
    }

    #[test]
    fn bindings_without_a_live_request_are_orphan_candidates() {
        let ours = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let Binding::Namespaced(rb) = ours[0].clone() else {
            panic!("expected a RoleBinding")
        };
        let foreign = RoleBinding {
            metadata: ObjectMeta {
                name: Some("team-readers".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let bindings = vec![std::sync::Arc::new(rb), std::sync::Arc::new(foreign)];
        let live = std::collections::BTreeSet::from(["payments/alice-db-read".to_string()]);
        assert!(
            orphan_candidates(&bindings, &[], &live).is_empty(),
            "a live request keeps its binding"
        );
        let orphans = orphan_candidates(&bindings, &[], &std::collections::BTreeSet::new());
        assert_eq!(
            orphans.len(),
            1,
            "only bindings the operator made are candidates"
        );
        assert_eq!(
            describe(&orphans[0].0),
            "payments/gatehouse.payments.alice-db-read"
        );
        assert_eq!(
            orphans[0].1,
            Some(("payments".into(), "alice-db-read".into()))
        );
    }

    #[test]
    fn bindings_of_data_shares_are_left_to_their_own_sweep() {
        let Binding::Namespaced(mut share) =
            desired("orders", "orders-reference", &accepted(&["payments"])).remove(0)
        else {
            panic!("expected a RoleBinding")
        };
        share.metadata.labels.get_or_insert_default().insert(
            OWNER_LABEL.into(),
            owner_label_value("DataSharingAgreement", "orders", "orders-reference"),
        );
        let bindings = vec![std::sync::Arc::new(share)];
        assert!(orphan_candidates(&bindings, &[], &std::collections::BTreeSet::new()).is_empty());
    }

    #[test]
    fn changed_labels_count_as_drift() {
        let want = desired("payments", "alice-db-read", &accepted(&["payments"]));
        let mut relabelled = want[0].clone();
        if let Binding::Namespaced(rb) = &mut relabelled {
            rb.metadata
                .labels
                .get_or_insert_default()
                .insert("extra".into(), "yes".into());
        }
        assert_eq!(repair(&want, &[relabelled]).restore, want);
    }
}
