//! Kubernetes Events about requests and agreements (`events.k8s.io/v1`), with the series the
//! API server expects for an Event that repeats: the same Event about the same object within
//! [`SERIES_WINDOW`] patches the first one's `series` instead of creating another.
//!
//! kube-runtime's `Recorder` keeps every Event it published, whole, for six minutes and scans all
//! of them on each publish: at 10,000 objects that is tens of MiB and a scan per Event under one
//! lock. It also recognises a repeat by reason and action alone, so a second Event with another
//! note became a series of the first and its note was lost. This keeps only what a series needs
//! (the first Event's name, the count, when it was last seen), keyed by the whole Event.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

/// How long an Event counts as repeated rather than new (client-go's event broadcaster uses six
/// minutes too).
pub const SERIES_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// Whether an Event says something went wrong or was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// One Event to publish about an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: String,
    /// What was done: the condition that changed, or `Reconcile`.
    pub action: String,
    pub message: String,
}

/// Publishes Events as the operator (`reportingController` gatehouse, `reportingInstance` this
/// replica).
pub struct Events {
    client: Client,
    controller: String,
    instance: String,
    series: Mutex<Series>,
}

#[derive(Default)]
struct Series {
    by_event: HashMap<u64, Seen>,
    /// When entries older than [`SERIES_WINDOW`] were last dropped.
    pruned: Option<Timestamp>,
}

/// An Event published before: its name, how often it happened, when last.
struct Seen {
    name: String,
    count: i32,
    last: Timestamp,
}

impl Events {
    pub fn new(client: Client, controller: &str, instance: Option<String>) -> Events {
        Events {
            client,
            controller: controller.to_string(),
            instance: instance.unwrap_or_else(|| controller.to_string()),
            series: Mutex::default(),
        }
    }

    /// Publishes `note` about `regarding`: a new Event, or the next of its series.
    pub async fn publish(
        &self,
        note: &Note,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = key_of(note, regarding);
        let namespace = regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let repeat = self.repeat_of(key, now);
        let api = Api::<Event>::namespaced(self.client.clone(), &namespace);
        match repeat {
            Some((name, count)) => {
                let series = serde_json::json!({
                    "series": EventSeries { count, last_observed_time: MicroTime(now) }
                });
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
            }
            None => {
                let event = self.event(note, regarding, &namespace, now);
                let name = event.metadata.name.clone().unwrap_or_default();
                api.create(&PostParams::default(), &event).await?;
                self.lock().by_event.insert(
                    key,
                    Seen {
                        name,
                        count: 1,
                        last: now,
                    },
                );
            }
        }
        Ok(())
    }

    /// The name and next count of the Event `key` repeats, if it is one; counts it.
    fn repeat_of(&self, key: u64, now: Timestamp) -> Option<(String, i32)> {
        let mut series = self.lock();
        if series
            .pruned
            .is_none_or(|at| at + SignedDuration::from_mins(1) < now)
        {
            series
                .by_event
                .retain(|_, seen| seen.last + SERIES_WINDOW > now);
            series.pruned = Some(now);
        }
        let seen = series
            .by_event
            .get_mut(&key)
            .filter(|seen| seen.last + SERIES_WINDOW > now)?;
        seen.count = seen.count.saturating_add(1);
        seen.last = now;
        Some((seen.name.clone(), seen.count))
    }

    fn event(
        &self,
        note: &Note,
        regarding: &ObjectReference,
        namespace: &str,
        now: Timestamp,
    ) -> Event {
        let object = regarding.name.as_deref().unwrap_or(&self.controller);
        Event {
            metadata: ObjectMeta {
                namespace: Some(namespace.to_string()),
                name: Some(format!("{object}.{:x}", now.as_nanosecond())),
                ..Default::default()
            },
            action: Some(note.action.clone()),
            reason: Some(note.reason.clone()),
            note: Some(note.message.clone()),
            type_: Some(note.type_.as_str().into()),
            event_time: Some(MicroTime(now)),
            regarding: Some(regarding.clone()),
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        }
    }

    /// How many Events are remembered for their series (for tests and memory bounds).
    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.lock().by_event.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The same Event about the same object: the object's uid (a recreated object starts anew), and
/// everything the Event says.
fn key_of(note: &Note, regarding: &ObjectReference) -> u64 {
    let mut hasher = DefaultHasher::new();
    (
        &regarding.uid,
        &regarding.namespace,
        &regarding.name,
        note.type_,
        &note.reason,
        &note.action,
        &note.message,
    )
        .hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(message: &str) -> Note {
        Note {
            type_: EventType::Warning,
            reason: "DriftRepaired".into(),
            action: "Reconcile".into(),
            message: message.into(),
        }
    }

    fn regarding(uid: &str) -> ObjectReference {
        ObjectReference {
            namespace: Some("payments".into()),
            name: Some("alice-db-read".into()),
            uid: Some(uid.into()),
            ..Default::default()
        }
    }

    fn events() -> Events {
        let (service, _handle) = tower_test::mock::pair::<
            http::Request<kube::client::Body>,
            http::Response<kube::client::Body>,
        >();
        Events::new(Client::new(service, "default"), "gatehouse", None)
    }

    #[tokio::test]
    async fn a_repeat_within_the_window_continues_the_series_and_anything_else_is_new() {
        let events = events();
        let now = Timestamp::now();
        let first = key_of(&note("restored"), &regarding("u1"));
        events.lock().by_event.insert(
            first,
            Seen {
                name: "alice-db-read.1".into(),
                count: 1,
                last: now,
            },
        );
        assert_eq!(
            events.repeat_of(first, now + SignedDuration::from_mins(1)),
            Some(("alice-db-read.1".into(), 2))
        );
        // Another note, or the same note about a recreated object, is another Event.
        assert_ne!(key_of(&note("other"), &regarding("u1")), first);
        assert_ne!(key_of(&note("restored"), &regarding("u2")), first);
        // Past the window, measured from the last repeat, it is new again and forgotten.
        assert_eq!(
            events.repeat_of(first, now + SignedDuration::from_mins(8)),
            None
        );
        assert_eq!(events.remembered(), 0);
    }
}
