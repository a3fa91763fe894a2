//! The links between objects of one kind, observed from the controller's own cache of them:
//! what `spec.extends` continues, and which objects extend or supersede this one. A link only
//! joins objects of the same requester in the same namespace.

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures::Stream;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use tokio::sync::mpsc;

use super::cached::Cached;
use super::reconciler::Reconciled;
use crate::lifecycle::Refusal;
use crate::lifecycle::kind::Kind;
use crate::lifecycle::lineage::{self, Extension, Lineage, Original};

/// An object's own links, as its spec names them.
pub struct Links<'a> {
    pub requester: &'a str,
    pub extends: Option<&'a str>,
    pub supersedes: Option<&'a str>,
}

/// The controller's cache of every object of its kind, and a way to have a linked object
/// reconciled when the one linking to it changes (so that the other one's status shows the link
/// without waiting for its next resync).
pub struct Peers<K: Reconciled> {
    /// The cache of the controller running now: a replica that leads again runs a new one.
    store: RwLock<Option<Store<Cached<K>>>>,
    relink: mpsc::UnboundedSender<ObjectRef<Cached<K>>>,
    /// Taken by the controller running now, for as long as it runs.
    relinks: Arc<tokio::sync::Mutex<mpsc::UnboundedReceiver<ObjectRef<Cached<K>>>>>,
}

impl<K: Reconciled> Default for Peers<K> {
    fn default() -> Self {
        let (relink, relinks) = mpsc::unbounded_channel();
        Self {
            store: RwLock::new(None),
            relink,
            relinks: Arc::new(tokio::sync::Mutex::new(relinks)),
        }
    }
}

impl<K: Reconciled> Peers<K> {
    /// Hands over the cache of the controller that starts now (one per kind at a time: a replica
    /// runs a new one each time it leads again); returns the objects to reconcile for their
    /// links, for as long as that controller runs.
    pub fn attach(
        &self,
        store: Store<Cached<K>>,
    ) -> impl Stream<Item = ObjectRef<Cached<K>>> + Send + 'static {
        *self.store.write().unwrap_or_else(PoisonError::into_inner) = Some(store);
        futures::stream::unfold(self.relinks.clone(), |relinks| async move {
            let next = relinks.lock().await.recv().await?;
            Some((next, relinks))
        })
    }

    fn store(&self) -> Option<Store<Cached<K>>> {
        self.store
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The object named `name`, whole. One the cache cannot read back counts as absent (an
    /// extension of it is refused), and says why in the log.
    fn get(&self, namespace: &str, name: &str) -> Option<K> {
        let cached = self.store()?.get(&ObjectRef::new(name).within(namespace))?;
        cached
            .unpack()
            .inspect_err(|err| tracing::warn!(error = %err, "cannot read a linked object"))
            .ok()
    }

    /// Every object of the same requester in `object`'s namespace whose `spec.extends` names it.
    pub fn extending(&self, object: &K) -> Vec<String> {
        self.linked(object, |l| l.extends)
    }

    /// The first object (by name) of the same requester in `object`'s namespace whose link
    /// `names` names it, and that `counts`.
    fn linking(
        &self,
        object: &K,
        names: impl for<'a> Fn(&Links<'a>) -> Option<&'a str>,
        counts: impl Fn(&K) -> bool,
    ) -> Option<String> {
        let namespace = object.namespace().unwrap_or_default();
        self.linked(object, names)
            .into_iter()
            .filter(|name| {
                self.get(&namespace, name)
                    .is_some_and(|other| counts(&other))
            })
            .min()
    }

    /// The objects of the same requester in `object`'s namespace whose link `names` names it.
    fn linked(
        &self,
        object: &K,
        names: impl for<'a> Fn(&Links<'a>) -> Option<&'a str>,
    ) -> Vec<String> {
        let Some(store) = self.store() else {
            return Vec::new();
        };
        let (namespace, name) = (object.meta().namespace.as_deref(), object.name_any());
        let requester = object.links().requester;
        // Borrowed comparisons, the rarely set link first: this runs on every reconcile, over
        // every object of the kind.
        store
            .state_filter(|other| {
                let links = other.typed().links();
                names(&links) == Some(name.as_str())
                    && links.requester == requester
                    && other.meta().namespace.as_deref() == namespace
            })
            .iter()
            .map(|other| other.name_any())
            .collect()
    }
}

/// The original an extension names, as its cached status records it.
struct Snapshot {
    requester: String,
    phase: Option<crate::api::Phase>,
    phase_name: Option<String>,
    window: Option<(Timestamp, Timestamp)>,
    lineage: Lineage,
}

/// What `spec.extends` names, as observed.
struct Extended {
    name: String,
    /// The original, when it exists.
    original: Option<Snapshot>,
    /// Whether the extension asks for nothing beyond it.
    covers: Result<(), String>,
}

/// What was observed of an object's links.
#[derive(Default)]
pub struct Observed {
    extended: Option<Extended>,
    pub extended_by: Option<String>,
    pub superseded_by: Option<String>,
}

impl Observed {
    /// What `spec.extends` continues at `now`, or why it may not, when it names something;
    /// `max_total` is the policy's cap on a chain.
    pub fn extension(
        &self,
        noun: &str,
        requester: &str,
        max_total: Option<Duration>,
        now: Timestamp,
    ) -> Option<Result<Extension, Refusal>> {
        let extended = self.extended.as_ref()?;
        let original = extended.original.as_ref().map(|o| Original {
            name: &extended.name,
            requester: &o.requester,
            phase: o.phase,
            phase_name: o.phase_name.clone(),
            window: o.window,
            lineage: &o.lineage,
        });
        Some(lineage::extension(
            noun,
            original,
            requester,
            extended.covers.clone(),
            max_total,
            now,
        ))
    }
}

/// Observes `object`'s links, and asks for the objects it names to be reconciled when their
/// status does not show the link yet.
pub fn observe<K: Reconciled>(object: &K, peers: &Peers<K>) -> Observed {
    let namespace = object.namespace().unwrap_or_default();
    let links = object.links();
    let extended = links.extends.map(|name| {
        let original = peers.get(&namespace, name);
        let covers = original
            .as_ref()
            .map(|o| object.covers(o))
            .unwrap_or(Ok(()));
        let original = original.map(|o| {
            let record = K::Core::split(o.status().cloned().unwrap_or_default()).0;
            // The original shows who extends it once this one is granted.
            if record.lineage.extended_by.is_none() && granted::<K>(object) {
                let _ = peers.relink.send(ObjectRef::new(name).within(&namespace));
            }
            Snapshot {
                requester: o.links().requester.to_string(),
                phase: record.phase,
                phase_name: record
                    .phase
                    .map(|p| (K::Core::WORDING.phase_name)(p).to_string()),
                window: record
                    .window
                    .as_ref()
                    .map(|w| (w.activated_at.0, w.expires_at.0)),
                lineage: record.lineage,
            }
        });
        Extended {
            name: name.to_string(),
            original,
            covers,
        }
    });
    if let Some(name) = links.supersedes {
        let unshown = peers.get(&namespace, name).is_some_and(|old| {
            old.links().requester == links.requester
                && K::Core::split(old.status().cloned().unwrap_or_default())
                    .0
                    .lineage
                    .superseded_by
                    .is_none()
        });
        if unshown {
            let _ = peers.relink.send(ObjectRef::new(name).within(&namespace));
        }
    }
    Observed {
        extended,
        extended_by: peers.linking(object, |l| l.extends, granted::<K>),
        superseded_by: peers.linking(object, |l| l.supersedes, |_| true),
    }
}

/// Whether what `object` grants was ever provided (it holds a recorded window).
fn granted<K: Reconciled>(object: &K) -> bool {
    object
        .status()
        .and_then(K::Core::phase)
        .is_some_and(|p| p.is_running() || p == crate::api::Phase::Expired)
}
