//! AccessRecords: written for every object that reached a decision, updated as it advances,
//! final once it ended and what it provided is gone (written before a deleted object's finalizer
//! is released, so that a deletion never outruns its record), exported once as one JSON line on
//! the `audit` log target, and deleted when their retention ends.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::runtime::watcher;
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
    let existing = ctx.records.get(&name);
    // A complete record is final: nothing to derive (every reconcile of an ended object passes
    // here).
    if existing.as_ref().is_some_and(|r| r.complete) {
        return Ok(());
    }
    let facts = object.record_facts(ctx, status, deleted_at);
    let Some(spec) = record::record::<K::Core>(status, facts, ctx.record_retention) else {
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
    let Some((spec, digest)) = over(spec, existing.as_ref()) else {
        return Ok(());
    };
    // The cache may not show the operator's last write of this record yet (a reconcile right after
    // the one that wrote it): what was written last is not written again, unless the cache has
    // seen the record deleted since.
    let last = ctx.written_records.last(&name);
    if last.as_ref().is_some_and(|last| last.digest == digest) {
        return Ok(());
    }
    let version = match (&existing, last) {
        // The cache does not show the operator's last write yet.
        (Some(held), Some(last)) if held.digest != last.digest => Some(last.version),
        (Some(held), _) => held.version.clone(),
        (None, last) => last.map(|last| last.version),
    };
    let api = Api::<AccessRecord>::all(ctx.client.clone());
    let written = store(&api, &name, spec, digest, version)
        .await
        .map_err(|source| Error::WriteRecord {
            name: name.clone(),
            source,
        })?;
    let Some((record, digest)) = written else {
        return Ok(());
    };
    if let Some(version) = record.metadata.resource_version {
        ctx.written_records.wrote(name, digest, version);
    }
    if record.spec.complete {
        export(&record.spec);
    }
    Ok(())
}

/// What a record saying `spec` is written as over the record `held` (None: there is none):
/// with the syncs `held` keeps, and its digest. None when nothing is to be written: `held` is
/// final, or says exactly that already.
fn over(
    mut spec: AccessRecordSpec,
    held: Option<&Held>,
) -> Option<(AccessRecordSpec, sha2::digest::Output<Sha256>)> {
    if let Some(held) = held {
        if held.complete {
            return None;
        }
        merge_syncs(&mut spec, &held.syncs);
    }
    let digest = digest_of(&spec);
    if held.is_some_and(|held| held.digest == digest) {
        return None;
    }
    Some((spec, digest))
}

/// Writes the record `name` saying `spec` (of `digest`) whole: created when no version of it is
/// known, else replaced at `version`; what was written, or None when a fresh read found nothing
/// to write. Not applied: the API server does more work for an apply (it parses the body as YAML
/// and merges it into the stored object), and an apply after a create could not remove a field
/// the record no longer says, which the create's managed-fields entry keeps. When the name is
/// taken or the version superseded (the cache did not show the operator's last write yet), it
/// is decided again over the record a fresh read finds, as over the cached one: the operator is
/// the record's only writer.
async fn store(
    api: &Api<AccessRecord>,
    name: &str,
    spec: AccessRecordSpec,
    digest: sha2::digest::Output<Sha256>,
    version: Option<String>,
) -> Result<Option<(AccessRecord, sha2::digest::Output<Sha256>)>, kube::Error> {
    match create_or_replace(api, name, &spec, version).await {
        Err(kube::Error::Api(status)) if matches!(status.code, 404 | 409) => {
            let fresh = api.get_opt(name).await?;
            let Some((spec, digest)) = over(spec, fresh.as_ref().map(Held::of).as_ref()) else {
                return Ok(None);
            };
            let version = fresh.and_then(|fresh| fresh.metadata.resource_version);
            let written = create_or_replace(api, name, &spec, version).await?;
            Ok(Some((written, digest)))
        }
        written => Ok(Some((written?, digest))),
    }
}

/// Creates the record `name` saying `spec` (`version` None), or replaces it at `version`.
async fn create_or_replace(
    api: &Api<AccessRecord>,
    name: &str,
    spec: &AccessRecordSpec,
    version: Option<String>,
) -> Result<AccessRecord, kube::Error> {
    let record = AccessRecord {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(labels(spec)),
            resource_version: version.clone(),
            ..Default::default()
        },
        spec: spec.clone(),
    };
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match version {
        None => api.create(&params, &record).await,
        Some(_) => api.replace(name, &params, &record).await,
    }
}

/// A digest of a record's spec: two specs are the same exactly when their digests are.
fn digest_of(spec: &AccessRecordSpec) -> sha2::digest::Output<Sha256> {
    Sha256::digest(serde_json::to_vec(spec).unwrap_or_default())
}

/// What the operator needs of each AccessRecord that exists, kept from the watch of every record:
/// whether it is final, what it says (as a digest), when its retention ends, and the syncs a
/// share's record holds (which a rewrite keeps). A whole record cost several times as much memory,
/// once per object ever decided.
pub struct Recorded {
    shelf: Mutex<RecordedShelf>,
    /// Whether the first full list is complete.
    listed: tokio::sync::watch::Sender<bool>,
}

#[derive(Default)]
struct RecordedShelf {
    by_name: HashMap<String, Held>,
    /// The records the running relist has shown so far.
    relisted: Option<HashSet<String>>,
}

/// One record as [`Recorded`] holds it.
#[derive(Clone, Debug)]
pub struct Held {
    pub complete: bool,
    digest: sha2::digest::Output<Sha256>,
    retain_until: Option<Timestamp>,
    being_deleted: bool,
    syncs: Vec<SyncRecord>,
    /// Its resourceVersion, which a rewrite replaces.
    version: Option<String>,
}

impl Held {
    fn of(record: &AccessRecord) -> Held {
        Held {
            complete: record.spec.complete,
            digest: digest_of(&record.spec),
            retain_until: record.spec.retain_until.as_ref().map(|until| until.0),
            being_deleted: record.meta().deletion_timestamp.is_some(),
            syncs: record
                .spec
                .share
                .as_ref()
                .map(|share| share.syncs.clone())
                .unwrap_or_default(),
            version: record.metadata.resource_version.clone(),
        }
    }
}

impl Default for Recorded {
    fn default() -> Self {
        Recorded {
            shelf: Mutex::default(),
            listed: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Recorded {
    /// Holding exactly `records`, as if listed.
    #[cfg(test)]
    pub fn holding(records: impl IntoIterator<Item = AccessRecord>) -> Recorded {
        let recorded = Recorded::default();
        recorded.observe(&watcher::Event::Init);
        for record in records {
            recorded.observe(&watcher::Event::InitApply(record));
        }
        recorded.observe(&watcher::Event::InitDone);
        recorded
    }

    /// Takes in one event of the watch of every record.
    pub fn observe(&self, event: &watcher::Event<AccessRecord>) {
        let mut shelf = self.lock();
        match event {
            watcher::Event::Apply(record) => {
                shelf.by_name.insert(record.name_any(), Held::of(record));
            }
            watcher::Event::Delete(record) => {
                shelf.by_name.remove(&record.name_any());
            }
            watcher::Event::Init => shelf.relisted = Some(HashSet::new()),
            watcher::Event::InitApply(record) => {
                let name = record.name_any();
                shelf.relisted.get_or_insert_default().insert(name.clone());
                shelf.by_name.insert(name, Held::of(record));
            }
            watcher::Event::InitDone => {
                let listed = shelf.relisted.take().unwrap_or_default();
                shelf.by_name.retain(|name, _| listed.contains(name));
                self.listed
                    .send_if_modified(|listed| !std::mem::replace(listed, true));
            }
        }
    }

    /// The record named `name`, if it exists.
    pub fn get(&self, name: &str) -> Option<Held> {
        self.lock().by_name.get(name).cloned()
    }

    /// The names of the records whose retention ended by `now`, not being deleted yet.
    fn due(&self, now: Timestamp) -> Vec<String> {
        self.lock()
            .by_name
            .iter()
            .filter(|(_, held)| {
                !held.being_deleted && held.retain_until.is_some_and(|until| until <= now)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Waits until the first full list is complete: until then a record that exists may be
    /// missing, and would be written again.
    pub async fn listed(&self) {
        let mut listed = self.listed.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = listed.wait_for(|listed| *listed).await;
    }

    fn lock(&self) -> MutexGuard<'_, RecordedShelf> {
        self.shelf.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the operator last wrote to each record: a digest of its spec, and the resourceVersion
/// the write made.
#[derive(Default)]
pub struct WrittenRecords {
    by_name: Mutex<HashMap<String, Written>>,
}

/// The operator's last write of one record.
#[derive(Clone, Debug)]
struct Written {
    digest: sha2::digest::Output<Sha256>,
    version: String,
}

impl WrittenRecords {
    /// How many records' writes are kept at most (a bound on memory: beyond, all are forgotten
    /// and a lagging cache costs a redundant write).
    const CAPACITY: usize = 100_000;

    /// The record named `name` is gone: whatever was written is written again.
    pub fn forget(&self, name: &str) {
        self.lock().remove(name);
    }

    fn wrote(&self, name: String, digest: sha2::digest::Output<Sha256>, version: String) {
        let mut by_name = self.lock();
        if by_name.len() >= Self::CAPACITY {
            by_name.clear();
        }
        by_name.insert(name, Written { digest, version });
    }

    fn last(&self, name: &str) -> Option<Written> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Written>> {
        self.by_name.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps every sync the record holds already (`recorded`): the status keeps only the last few.
fn merge_syncs(spec: &mut AccessRecordSpec, recorded: &[SyncRecord]) {
    let Some(share) = spec.share.as_mut() else {
        return;
    };
    let mut syncs: Vec<SyncRecord> = recorded.to_vec();
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
pub(super) async fn sweep_expired(ctx: Arc<Context>) {
    loop {
        tokio::time::sleep(ctx.sweep_interval).await;
        for name in ctx.records.due(Timestamp::now()) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of AccessRequest `payments/<name>`, kept until `retain_until` (seconds).
    fn record(name: &str, outcome: &str, retain_until: Option<i64>) -> AccessRecord {
        let retain_until =
            retain_until.map(|s| Timestamp::from_second(s).expect("a time").to_string());
        serde_json::from_value(serde_json::json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRecord",
            "metadata": { "name": name },
            "spec": {
                "object": { "kind": "AccessRequest", "namespace": "payments", "name": name, "uid": "u" },
                "requester": "alice",
                "subjects": [],
                "what": "ClusterRole/db-reader in payments",
                "why": "OPS-42",
                "decisions": [],
                "findings": [],
                "outcome": outcome,
                "complete": outcome == "Expired",
                "retainUntil": retain_until,
            }
        }))
        .expect("a record")
    }

    #[test]
    fn a_record_is_held_as_what_it_says_until_a_relist_no_longer_shows_it() {
        let recorded = Recorded::holding([
            record("a", "Active", None),
            record("b", "Expired", Some(1_000)),
        ]);
        let a = recorded.get("a").expect("a is held");
        assert!(!a.complete);
        assert_eq!(a.digest, digest_of(&record("a", "Active", None).spec));
        assert_ne!(a.digest, digest_of(&record("a", "Expired", None).spec));
        assert!(recorded.get("b").expect("b is held").complete);
        assert_eq!(
            recorded.due(Timestamp::from_second(999).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(recorded.due(Timestamp::from_second(1_000).unwrap()), ["b"]);

        recorded.observe(&watcher::Event::Apply(record("a", "Expired", None)));
        assert!(recorded.get("a").expect("a is held").complete);
        recorded.observe(&watcher::Event::Init);
        recorded.observe(&watcher::Event::InitApply(record("a", "Expired", None)));
        assert!(
            recorded.get("b").is_some(),
            "nothing is dropped before the relist is done"
        );
        recorded.observe(&watcher::Event::InitDone);
        assert!(recorded.get("b").is_none());
        recorded.observe(&watcher::Event::Delete(record("a", "Expired", None)));
        assert!(recorded.get("a").is_none());
    }

    #[tokio::test]
    async fn it_is_listed_once_the_first_list_is_complete() {
        let recorded = Recorded::default();
        recorded.observe(&watcher::Event::Init);
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), recorded.listed());
        assert!(waiting.await.is_err(), "the list is not complete yet");
        recorded.observe(&watcher::Event::InitDone);
        tokio::time::timeout(std::time::Duration::from_secs(1), recorded.listed())
            .await
            .expect("listed");
    }
}
