//! AccessRecords: written for every object that reached a decision, updated as it advances,
//! final once it ended and what it provided is gone (written before a deleted object's finalizer
//! is released, so that a deletion never outruns its record), exported once as one JSON line on
//! the `audit` log target, and deleted when their retention ends.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use sha2::{Digest, Sha256};

use super::reconciler::{Reconciled, StatusOf};
use super::{Context, Error};
use crate::api::{AccessRecord, AccessRecordSpec, FIELD_MANAGER, MANAGED_BY, SyncRecord};
use crate::lifecycle::record;

/// Labels on every record, for `kubectl get arec -l …` and `kubectl gatehouse report`.
pub const KIND_LABEL: &str = "gatehouse.dev/record-kind";
pub const REQUESTER_LABEL: &str = "gatehouse.dev/requester";
pub const POLICY_LABEL: &str = "gatehouse.dev/policy";
pub const OUTCOME_LABEL: &str = "gatehouse.dev/outcome";

/// How many syncs a share's record keeps: every one since it started, up to this many (the
/// exported audit lines keep them all).
pub const RECORDED_SYNCS: usize = 1000;

/// The record's name: the object's kind, namespace, name and UID (a new object of the same name is
/// a new record), shortened with a hash past the 253 characters names may have.
pub fn name(kind: &str, namespace: &str, name: &str, uid: &str) -> String {
    let full = format!("{}.{namespace}.{name}.{uid}", kind.to_lowercase());
    if full.len() <= 253 {
        return full;
    }
    let digest = Sha256::digest(full.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    let prefix: String = full.chars().take(200).collect();
    format!("{}-{hex}", prefix.trim_end_matches(['.', '-']))
}

/// Writes the record of `object` as its status `status` says (being deleted when `deleted_at`),
/// unless the record already says exactly that or is final. A record is never rewritten once
/// complete: it is the evidence.
pub(super) async fn write<K: Reconciled>(
    ctx: &Context,
    object: &K,
    status: Option<&StatusOf<K>>,
    deleted_at: Option<Timestamp>,
) -> Result<(), Error> {
    let name = name(
        &K::kind(&()),
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
        &object.uid().unwrap_or_default(),
    );
    let existing = ctx.records.get(&ObjectRef::new(&name));
    // A complete record is final: nothing to derive (every reconcile of an ended object passes
    // here).
    if existing.as_ref().is_some_and(|r| r.spec.complete) {
        return Ok(());
    }
    let facts = object.record_facts(ctx, status, deleted_at);
    let Some(mut spec) = record::record::<K::Core>(status, facts, ctx.record_retention) else {
        return Ok(());
    };
    // Its retention ended: the record is gone for good, never written again (the object may
    // outlive it, e.g. a finished request still in Git).
    if spec
        .retain_until
        .as_ref()
        .is_some_and(|until| until.0 <= Timestamp::now())
    {
        return Ok(());
    }
    if let Some(existing) = &existing {
        merge_syncs(&mut spec, &existing.spec);
        if existing.spec == spec {
            return Ok(());
        }
    }
    // The cache may not show the operator's last write of this record yet (a reconcile right after
    // the one that wrote it): what was written last is not written again, unless the cache has
    // seen the record deleted since.
    let digest = Sha256::digest(serde_json::to_vec(&spec).unwrap_or_default());
    if ctx.written_records.is_last(&name, &digest) {
        return Ok(());
    }
    let record = AccessRecord {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels(&spec)),
            ..Default::default()
        },
        spec,
    };
    let mut patch = serde_json::to_value(&record).map_err(|err| Error::Record {
        name: name.clone(),
        problem: err.to_string(),
    })?;
    if let Some(map) = patch.as_object_mut() {
        map.insert("apiVersion".into(), "gatehouse.dev/v1alpha1".into());
        map.insert("kind".into(), "AccessRecord".into());
    }
    Api::<AccessRecord>::all(ctx.client.clone())
        .patch(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(|source| Error::WriteRecord {
            name: name.clone(),
            source,
        })?;
    ctx.written_records.wrote(name, digest);
    if record.spec.complete {
        export(&record.spec);
    }
    Ok(())
}

/// What the operator last wrote to each record, as a digest of its spec.
#[derive(Default)]
pub struct WrittenRecords {
    by_name: std::sync::Mutex<std::collections::HashMap<String, sha2::digest::Output<Sha256>>>,
}

impl WrittenRecords {
    /// How many records' digests are kept at most (a bound on memory: beyond, all are forgotten
    /// and a lagging cache costs a redundant write).
    const CAPACITY: usize = 100_000;

    /// The record named `name` is gone: whatever was written is written again.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn wrote(&self, name: String, digest: sha2::digest::Output<Sha256>) {
        let mut by_name = self.lock();
        if by_name.len() >= Self::CAPACITY {
            by_name.clear();
        }
        by_name.insert(name, digest);
    }

    fn is_last(&self, name: &str, digest: &sha2::digest::Output<Sha256>) -> bool {
        self.lock().get(name) == Some(digest)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, sha2::digest::Output<Sha256>>>
    {
        self.by_name
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps every sync the record holds already: the status keeps only the last few.
fn merge_syncs(spec: &mut AccessRecordSpec, existing: &AccessRecordSpec) {
    let (Some(share), Some(before)) = (spec.share.as_mut(), existing.share.as_ref()) else {
        return;
    };
    let mut syncs: Vec<SyncRecord> = before.syncs.clone();
    for sync in &share.syncs {
        if !syncs.contains(sync) {
            syncs.push(sync.clone());
        }
    }
    let excess = syncs.len().saturating_sub(RECORDED_SYNCS);
    syncs.drain(..excess);
    share.syncs = syncs;
}

fn labels(spec: &AccessRecordSpec) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (KIND_LABEL.to_string(), spec.object.kind.clone()),
        (REQUESTER_LABEL.to_string(), label_value(&spec.requester)),
        (OUTCOME_LABEL.to_string(), spec.outcome.to_string()),
    ]);
    if let Some(policy) = &spec.policy {
        labels.insert(POLICY_LABEL.to_string(), label_value(&policy.name));
    }
    labels
}

/// A label value for `text`: the characters labels allow, at most 63, starting and ending
/// alphanumeric. Usernames with other characters (`@`, `:`) are selected by the spec instead
/// (`kubectl gatehouse report --requester` compares the spec).
pub fn label_value(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    cleaned
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The completed record as one JSON line on the `audit` target, for a log pipeline to ship.
fn export(spec: &AccessRecordSpec) {
    match serde_json::to_string(spec) {
        Ok(json) => {
            tracing::info!(target: "audit", record = %json, decision = "Recorded", "access record complete")
        }
        Err(err) => tracing::warn!(error = %err, "cannot export a completed record"),
    }
}

/// Every sweep interval, deletes the records whose retention ended.
pub(super) async fn sweep_expired(ctx: Arc<Context>, records: Store<AccessRecord>) {
    loop {
        tokio::time::sleep(ctx.sweep_interval).await;
        let now = Timestamp::now();
        for record in records.state() {
            let due = record
                .spec
                .retain_until
                .as_ref()
                .is_some_and(|until| until.0 <= now);
            if !due || record.meta().deletion_timestamp.is_some() {
                continue;
            }
            let name = record.name_any();
            match Api::<AccessRecord>::all(ctx.client.clone())
                .delete(&name, &DeleteParams::default())
                .await
            {
                Ok(_) => tracing::info!(
                    target: "audit",
                    record = name,
                    decision = "RecordExpired",
                    "deleted a record whose retention ended"
                ),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(err) => {
                    tracing::warn!(error = %err, record = name, "cannot delete an expired record")
                }
            }
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;
    use crate::properties::{
        config, is_dns1123_subdomain, is_label_value, namespace_name, object_name, tricky_text,
    };

    proptest! {
        #![proptest_config(config())]

        /// A record's name is one the API server accepts for any object it admits (UIDs are
        /// lower-case UUIDs).
        #[test]
        fn record_names_are_dns_subdomains(
            kind in prop_oneof![Just("AccessRequest"), Just("DataSharingAgreement")],
            namespace in namespace_name(),
            object in object_name(),
            uid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        ) {
            let record = name(kind, &namespace, &object, &uid);
            prop_assert!(is_dns1123_subdomain(&record), "{}", record);
        }

        /// Requester usernames and policy names are free text; their labels are always valid.
        #[test]
        fn labels_of_usernames_are_valid(text in tricky_text()) {
            let label = label_value(&text);
            prop_assert!(is_label_value(&label), "{:?} -> {:?}", text, label);
        }
    }
}
