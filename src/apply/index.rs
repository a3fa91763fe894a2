//! The objects the operator owns, indexed by owner: kept current from watches of every Secret,
//! Role, RoleBinding and ClusterRoleBinding with an owner label, so that a reconcile finds its
//! owner's objects without listing the cluster and the orphan sweep sees every owned object.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::channel::mpsc;
use futures::{Stream, StreamExt, future};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::object::{Key, Kind, Object, Owner, OwnerKind};
use crate::api::OWNER_LABEL;

/// A watch's events with kube-runtime's default backoff between failed attempts (0.8 s doubling
/// to 30 s), without its `Event::Init`s. The backoff starts over at every item that is not an
/// A kind the operator watches and caches whole: every Kubernetes resource type qualifies.
pub trait Watchable:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static
{
}

impl<K> Watchable for K where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static
{
}

/// error, and a watch that lists again (after 410 Gone, or while it never listed) yields `Init`
/// before each attempt to list: while the API server is away that would retry every second,
/// forever. Whoever needs `Init` (a reflector, the index) takes it before.
pub fn backed_off<K, S>(events: S) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>>
where
    S: Stream<Item = Result<watcher::Event<K>, watcher::Error>>,
{
    events
        .filter(|event| future::ready(!matches!(event, Ok(watcher::Event::Init))))
        .default_backoff()
}

/// Every object the operator owns, by owner. Cheap to clone: clones share one index.
#[derive(Clone)]
pub struct Index {
    shelf: Arc<Mutex<Shelf>>,
    /// Whether every kind has had its first full list.
    synced: Arc<watch::Sender<bool>>,
    /// Whoever wants to hear of owners whose objects changed.
    subscribers: Arc<Mutex<Vec<mpsc::UnboundedSender<Owner>>>>,
}

/// The index's contents.
#[derive(Default)]
struct Shelf {
    objects: HashMap<Key, Held>,
    /// Each owner's keys, sorted: most owners have one or a few objects, which a set's node of
    /// eleven slots would hold at several times the size.
    by_owner: HashMap<Owner, Vec<Key>>,
    /// The keys of each kind that its running list (the first, or again after a watch restart)
    /// has shown so far: what it no longer shows goes once it is complete.
    relisting: HashMap<Kind, HashSet<Key>>,
    listed: HashSet<Kind>,
    /// The resourceVersion of each object the operator just wrote, until the watch shows it: the
    /// reconcile that wrote it goes on from what it wrote, so that write's own event wakes no one
    /// (one reconcile per written object fewer, and its reads). Any other change has another
    /// version and wakes the owner as ever.
    written: HashMap<Key, (String, Owner)>,
}

/// An object as the index holds it, one per object the operator made: its labels and
/// annotations as exactly sized pairs (a map's first node has room for eleven, an owned object
/// has two to five of each), the rest boxed, so that the table's slots stay small.
struct Held {
    owner: Owner,
    /// The object without its labels and annotations.
    rest: Box<Object>,
    labels: Pairs,
    annotations: Pairs,
}

type Pairs = Box<[(Box<str>, Box<str>)]>;

impl Held {
    fn new(owner: Owner, mut object: Object) -> Held {
        let meta = object.meta_mut();
        let pairs = |map: Option<BTreeMap<String, String>>| -> Pairs {
            map.into_iter()
                .flatten()
                .map(|(key, value)| (key.into_boxed_str(), value.into_boxed_str()))
                .collect()
        };
        let labels = pairs(meta.labels.take());
        let annotations = pairs(meta.annotations.take());
        Held {
            owner,
            rest: Box::new(object),
            labels,
            annotations,
        }
    }

    /// The object as the watch showed it (the API server never shows an empty map).
    fn object(&self) -> Object {
        let map = |pairs: &Pairs| {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect()
            })
        };
        let mut object = (*self.rest).clone();
        let meta = object.meta_mut();
        meta.labels = map(&self.labels);
        meta.annotations = map(&self.annotations);
        object
    }
}

/// What the watch of one kind reports, as the index takes it.
enum Change {
    Applied(Object),
    Deleted(Object),
    RelistStarted(Kind),
    Relisted(Object),
    RelistDone(Kind),
}

/// An owned object whose owner is not among the live ones: a candidate for removal, once the
/// owner is confirmed gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Orphan {
    pub key: Key,
    pub owner: Owner,
}

/// The objects in `index` made for an owner of `kind` that is not in `live`.
pub fn orphans(index: &Index, kind: OwnerKind, live: &BTreeSet<Owner>) -> Vec<Orphan> {
    let shelf = index.shelf();
    shelf
        .by_owner
        .iter()
        .filter(|(owner, _)| owner.kind == kind && !live.contains(owner))
        .flat_map(|(owner, keys)| {
            keys.iter().map(|key| Orphan {
                key: key.clone(),
                owner: owner.clone(),
            })
        })
        .collect()
}

impl Index {
    /// An empty index that nothing fills: [`Index::watch`] starts the watches.
    fn new() -> Index {
        Index {
            shelf: Arc::default(),
            synced: Arc::new(watch::Sender::new(false)),
            subscribers: Arc::default(),
        }
    }

    /// An index holding exactly `objects`, as if listed.
    #[cfg(test)]
    pub(crate) fn holding(objects: impl IntoIterator<Item = Object>) -> Index {
        let index = Index::new();
        for object in objects {
            index.record(Change::Applied(object));
        }
        index
    }

    /// An index kept current by one spawned task per kind. The tasks are the index's own, never a
    /// controller's trigger stream: a controller busy with reconciles that wait for the index
    /// would never poll it (see `controller::cache`).
    pub fn watch(client: &Client) -> Index {
        let index = Index::new();
        index.spawn_watch::<Secret>(client, Kind::Secret);
        index.spawn_watch::<Role>(client, Kind::Role);
        index.spawn_watch::<RoleBinding>(client, Kind::RoleBinding);
        index.spawn_watch::<ClusterRoleBinding>(client, Kind::ClusterRoleBinding);
        index
    }

    fn spawn_watch<K>(&self, client: &Client, kind: Kind)
    where
        K: Watchable,
        Object: From<K>,
    {
        let index = self.clone();
        let config = watcher::Config::default().labels(OWNER_LABEL);
        // Recorded before the backoff, which drops the start of a relist.
        let events = watcher(Api::<K>::all(client.clone()), config)
            .modify(|object| object.meta_mut().managed_fields = None)
            .map(move |event| {
                if let Ok(event) = &event {
                    index.record(match event.clone() {
                        watcher::Event::Apply(object) => Change::Applied(object.into()),
                        watcher::Event::Delete(object) => Change::Deleted(object.into()),
                        watcher::Event::Init => Change::RelistStarted(kind),
                        watcher::Event::InitApply(object) => Change::Relisted(object.into()),
                        watcher::Event::InitDone => Change::RelistDone(kind),
                    });
                }
                event
            });
        let mut log = crate::telemetry::WatchLog::new(format!("owned {}", kind.as_str()));
        tokio::spawn(backed_off(events).for_each(move |event| {
            log.saw(&event);
            future::ready(())
        }));
    }

    /// Waits until every kind has had its first full list, so that an owner's objects are never
    /// taken to be missing because they were not listed yet. Wakes every waiter.
    pub async fn synced(&self) {
        let mut synced = self.synced.subscribe();
        // The sender lives as long as `self`: waiting cannot fail.
        let _ = synced.wait_for(|synced| *synced).await;
    }

    /// The operator wrote the object at `key` for `writer`; it is now at `resource_version`.
    pub fn wrote(&self, key: Key, resource_version: String, writer: &Owner) {
        let mut shelf = self.shelf();
        // Its event may have come first (the watch can beat the response): remembered then, it
        // would stay, as no later event carries that version.
        let shown = shelf.objects.get(&key).is_some_and(|held| {
            held.rest.meta().resource_version.as_ref() == Some(&resource_version)
        });
        if !shown {
            shelf
                .written
                .insert(key, (resource_version, writer.clone()));
        }
    }

    /// The objects made for `owner`.
    pub fn owned_by(&self, owner: &Owner) -> Vec<Object> {
        let shelf = self.shelf();
        shelf
            .by_owner
            .get(owner)
            .into_iter()
            .flatten()
            .filter_map(|key| shelf.objects.get(key).map(Held::object))
            .collect()
    }

    /// The owners of `K` whose objects change, each once the index holds the change: a reconcile
    /// it triggers finds the change in the index.
    pub fn changes<K>(&self, kind: OwnerKind) -> impl Stream<Item = ObjectRef<K>> + Send + 'static
    where
        K: Resource<DynamicType = ()> + 'static,
    {
        // Unbounded: the index's tasks never wait for a controller to take its triggers.
        let (sender, receiver) = mpsc::unbounded();
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(sender);
        receiver.filter_map(move |owner: Owner| {
            future::ready(
                (owner.kind == kind).then(|| ObjectRef::new(&owner.name).within(&owner.namespace)),
            )
        })
    }

    fn shelf(&self) -> MutexGuard<'_, Shelf> {
        self.shelf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn record(&self, change: Change) {
        let touched = {
            let mut shelf = self.shelf();
            let touched = shelf.record(change);
            if shelf.listed.len() == Kind::ALL.len() {
                self.synced
                    .send_if_modified(|synced| !std::mem::replace(synced, true));
            }
            touched
        };
        if touched.is_empty() {
            return;
        }
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|subscriber| {
                touched
                    .iter()
                    .all(|owner| subscriber.unbounded_send(owner.clone()).is_ok())
            });
    }
}

impl Shelf {
    /// Takes in one change; returns the owners whose objects it changed.
    fn record(&mut self, change: Change) -> BTreeSet<Owner> {
        match change {
            Change::Applied(object) => {
                let key = object.key();
                let own_write = self.written.get(&key).is_some_and(|(version, _)| {
                    object.meta().resource_version.as_ref() == Some(version)
                });
                let writer = own_write
                    .then(|| self.written.remove(&key))
                    .flatten()
                    .map(|(_, writer)| writer);
                let held_by = self.objects.get(&key).map(|held| &held.owner);
                // A takeover (an extension's handover) wakes everyone: the new holder goes on
                // from seeing the object as its own.
                let quiet = writer.filter(|writer| held_by.is_none_or(|held| held == writer));
                let mut touched = self.put(object);
                if let Some(writer) = quiet {
                    // Another owner it was taken from still hears of it.
                    touched.remove(&writer);
                }
                touched
            }
            Change::Deleted(object) => {
                self.written.remove(&object.key());
                self.take(&object.key()).into_iter().collect()
            }
            Change::RelistStarted(kind) => {
                self.relisting.insert(kind, HashSet::new());
                BTreeSet::new()
            }
            Change::Relisted(object) => {
                // Held at once, compact: a list kept whole until its end held every object of
                // the kind in full, at 10,000 bindings tens of megabytes on each restart. What
                // a list shows wakes its owners whoever wrote it: a write whose event was lost
                // (to a watch that restarted) must not keep its owner asleep.
                self.relisting
                    .entry(object.kind())
                    .or_default()
                    .insert(object.key());
                self.put(object)
            }
            Change::RelistDone(kind) => {
                self.written.retain(|key, _| key.kind != kind);
                let listed = self.relisting.remove(&kind).unwrap_or_default();
                let gone: Vec<Key> = self
                    .objects
                    .keys()
                    .filter(|key| key.kind == kind && !listed.contains(*key))
                    .cloned()
                    .collect();
                self.listed.insert(kind);
                gone.iter().filter_map(|key| self.take(key)).collect()
            }
        }
    }

    /// Stores `object` if the operator owns it, and forgets it otherwise (someone removed the
    /// labels that made it ours). Returns the owners it changed for: none when it is unchanged.
    fn put(&mut self, object: Object) -> BTreeSet<Owner> {
        let key = object.key();
        let unchanged = self
            .objects
            .get(&key)
            .is_some_and(|held| held.object() == object);
        if unchanged {
            return BTreeSet::new();
        }
        let mut touched: BTreeSet<Owner> = self.take(&key).into_iter().collect();
        if let Some(owner) = object.owner() {
            let keys = self.by_owner.entry(owner.clone()).or_default();
            if let Err(at) = keys.binary_search(&key) {
                keys.insert(at, key.clone());
            }
            self.objects.insert(key, Held::new(owner.clone(), object));
            touched.insert(owner);
        }
        touched
    }

    /// Forgets the object at `key`; returns its owner if it was held.
    fn take(&mut self, key: &Key) -> Option<Owner> {
        let owner = self.objects.remove(key)?.owner;
        if let Some(keys) = self.by_owner.get_mut(&owner) {
            keys.retain(|held| held != key);
            if keys.is_empty() {
                self.by_owner.remove(&owner);
            }
        }
        Some(owner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(owner: &Owner, namespace: &str) -> Object {
        Object::RoleBinding(RoleBinding {
            metadata: owner.metadata(Some(namespace), "gatehouse.payments.alice".into()),
            ..Default::default()
        })
    }

    fn access(name: &str) -> Owner {
        Owner::new(OwnerKind::AccessRequest, "payments", name)
    }

    fn all_listed(index: &Index) {
        for kind in Kind::ALL {
            index.record(Change::RelistStarted(kind));
            index.record(Change::RelistDone(kind));
        }
    }

    #[tokio::test]
    async fn objects_are_found_by_owner_and_follow_their_changes() {
        let index = Index::new();
        all_listed(&index);
        index.synced().await;
        let mut changes = index.changes::<crate::api::AccessRequest>(OwnerKind::AccessRequest);
        let alice = access("alice");
        index.record(Change::Applied(binding(&alice, "payments")));
        index.record(Change::Applied(binding(&alice, "payments-2")));
        index.record(Change::Applied(binding(&access("bob"), "orders")));
        assert_eq!(index.owned_by(&alice).len(), 2);
        assert_eq!(
            changes.next().await,
            Some(ObjectRef::new("alice").within("payments"))
        );

        // Someone strips the owner annotation: no longer ours, and the owner hears of it.
        let mut stripped = binding(&alice, "payments");
        stripped.meta_mut().annotations = None;
        index.record(Change::Applied(stripped));
        assert_eq!(index.owned_by(&alice), vec![binding(&alice, "payments-2")]);

        index.record(Change::Deleted(binding(&alice, "payments-2")));
        assert!(index.owned_by(&alice).is_empty());
    }

    #[tokio::test]
    async fn the_event_of_an_own_write_wakes_no_one_but_any_other_change_does() {
        let index = Index::new();
        all_listed(&index);
        let mut changes = index.changes::<crate::api::AccessRequest>(OwnerKind::AccessRequest);
        let alice = access("alice");
        let at = |version: &str| {
            let mut object = binding(&alice, "payments");
            object.meta_mut().resource_version = Some(version.into());
            object
        };
        index.wrote(at("5").key(), "5".into(), &alice);
        index.record(Change::Applied(at("5")));
        assert_eq!(index.owned_by(&alice), vec![at("5")], "it is held");
        assert!(
            futures::FutureExt::now_or_never(changes.next()).is_none(),
            "its own write wakes no one"
        );
        // Someone edits it: that wakes alice's request.
        index.record(Change::Applied(at("6")));
        assert_eq!(
            changes.next().await,
            Some(ObjectRef::new("alice").within("payments"))
        );
        // A write whose event a watch restart lost: the relist wakes its owner all the same.
        index.wrote(at("7").key(), "7".into(), &alice);
        index.record(Change::RelistStarted(Kind::RoleBinding));
        index.record(Change::Relisted(at("7")));
        index.record(Change::RelistDone(Kind::RoleBinding));
        assert_eq!(
            changes.next().await,
            Some(ObjectRef::new("alice").within("payments"))
        );
        assert!(
            index.shelf().written.is_empty(),
            "nothing is remembered past its sighting or a relist"
        );
    }

    #[tokio::test]
    async fn a_write_that_takes_an_object_over_wakes_both_owners() {
        let index = Index::new();
        let mut changes = index.changes::<crate::api::AccessRequest>(OwnerKind::AccessRequest);
        let (original, extension) = (access("alice"), access("alice-ext"));
        index.record(Change::Applied(binding(&original, "payments")));
        assert_eq!(
            changes.next().await,
            Some(ObjectRef::new("alice").within("payments"))
        );
        // The extension's write of the same binding, labelled as its own.
        let mut taken = binding(&extension, "payments");
        taken.meta_mut().resource_version = Some("9".into());
        assert_eq!(taken.key(), binding(&original, "payments").key());
        index.wrote(taken.key(), "9".into(), &extension);
        index.record(Change::Applied(taken.clone()));
        let mut woken = Vec::new();
        while let Some(owner) = futures::FutureExt::now_or_never(changes.next()) {
            woken.push(owner);
        }
        woken.sort_by_key(|owner| format!("{owner:?}"));
        assert_eq!(
            woken,
            vec![
                Some(ObjectRef::new("alice").within("payments")),
                Some(ObjectRef::new("alice-ext").within("payments")),
            ],
            "the new holder goes on from seeing it as its own; the old one hears it went"
        );
        assert_eq!(index.owned_by(&extension), vec![taken]);
        assert!(
            index.shelf().written.is_empty(),
            "its sighting is not remembered"
        );
    }

    #[test]
    fn a_relist_drops_what_it_no_longer_lists() {
        let index = Index::new();
        let alice = access("alice");
        index.record(Change::Applied(binding(&alice, "payments")));
        index.record(Change::Applied(binding(&alice, "payments-2")));
        index.record(Change::RelistStarted(Kind::RoleBinding));
        index.record(Change::Relisted(binding(&alice, "payments-2")));
        assert_eq!(index.owned_by(&alice).len(), 2, "not replaced before done");
        index.record(Change::RelistDone(Kind::RoleBinding));
        assert_eq!(index.owned_by(&alice), vec![binding(&alice, "payments-2")]);
    }

    #[test]
    fn objects_without_a_live_owner_of_the_kind_are_orphans() {
        let index = Index::new();
        let (alice, bob) = (access("alice"), access("bob"));
        let share = Owner::new(OwnerKind::DataSharingAgreement, "orders", "reference");
        for (owner, namespace) in [
            (&alice, "payments"),
            (&bob, "orders"),
            (&share, "analytics"),
        ] {
            index.record(Change::Applied(binding(owner, namespace)));
        }
        let live = BTreeSet::from([alice.clone()]);
        assert_eq!(
            orphans(&index, OwnerKind::AccessRequest, &live),
            vec![Orphan {
                key: binding(&bob, "orders").key(),
                owner: bob
            }],
            "a live request keeps its binding; shares are left to their own sweep"
        );
    }

    #[test]
    fn a_write_whose_event_came_first_is_not_waited_for() {
        let index = Index::holding([]);
        let alice = access("alice");
        let mut shown = binding(&alice, "payments");
        shown.meta_mut().resource_version = Some("5".into());
        index.record(Change::Applied(shown.clone()));
        index.wrote(shown.key(), "5".into(), &alice);
        assert!(
            index.shelf().written.is_empty(),
            "no later event would ever take it out"
        );
    }
}
