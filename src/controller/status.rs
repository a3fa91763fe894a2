//! Status writes: server-side apply of the whole status under the `gatehouse` field manager,
//! skipped when nothing changed, and Events for condition transitions.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::events::{EventType, Note};
use super::{Context, Error};
use crate::api::FIELD_MANAGER;
use crate::api::conditions::{self, READY, REMOVED, reason};
use crate::lifecycle::kind::RecordedWindow;

/// What became of a status write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// The object already had exactly that status: nothing was sent.
    Unchanged,
    /// Written; the object is now at this resourceVersion.
    Yes(Option<String>),
    /// The object changed since it was read: nothing was written, and the caller must decide
    /// again from a fresh read (never act on the decision).
    Stale,
}

/// The resourceVersion of each object's last status write, until the watch shows it: a reconcile
/// that wrote a status goes on from what it wrote, so the watch event of that very write is not
/// a change to reconcile again (one reconcile per object fewer, and its reads). Any other change,
/// by anyone, has another resourceVersion and is reconciled as ever.
#[derive(Default)]
pub struct OwnWrites {
    by_object: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

impl OwnWrites {
    /// `object` was written by the operator at `resource_version`.
    fn wrote(&self, key: String, resource_version: String) {
        self.lock().insert(key, resource_version);
    }

    /// Whether `object`, as the watch shows it, is exactly the operator's last write of it; the
    /// first sighting is the only one that counts.
    pub fn is_own<K: Resource<DynamicType = ()>>(&self, object: &K) -> bool {
        let key = super::object_key(object);
        let mut by_object = self.lock();
        match (by_object.get(&key), object.meta().resource_version.as_ref()) {
            (Some(written), Some(seen)) if written == seen => {
                by_object.remove(&key);
                true
            }
            _ => false,
        }
    }

    /// Forgets a deleted object.
    pub fn forget<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.lock().remove(&super::object_key(object));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, String>> {
        self.by_object
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The window each object's provided objects were written with, until a status write says what
/// became of it: a reconcile after a status write that lost its race (to a storm of writes to
/// the object, say) may run before the owned watch shows those objects, and must keep that window
/// rather than open a later one.
#[derive(Default)]
pub struct OpenedWindows {
    by_object: std::sync::Mutex<std::collections::HashMap<String, RecordedWindow>>,
}

impl OpenedWindows {
    /// What `object` provides is being written with `window`.
    pub fn opened<K: Resource<DynamicType = ()>>(&self, object: &K, window: RecordedWindow) {
        self.lock().insert(super::object_key(object), window);
    }

    /// The window what `object` provides was last written with, if no status said so since.
    pub fn of<K: Resource<DynamicType = ()>>(&self, object: &K) -> Option<RecordedWindow> {
        self.lock().get(&super::object_key(object)).cloned()
    }

    /// A status of `object` was written: it records the window, or that nothing is provided.
    pub fn forget<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.lock().remove(&super::object_key(object));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, RecordedWindow>> {
        self.by_object
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How soon a reconcile whose status write lost a race runs again, from a fresh read.
pub const STALE_RETRY: std::time::Duration = std::time::Duration::from_millis(200);

/// Applies `status` to `object` unless it already has exactly that status.
pub async fn apply<K, S>(
    ctx: &Context,
    object: &K,
    current: Option<&S>,
    desired: &S,
) -> Result<Written, Error>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    S: Serialize + PartialEq,
{
    if current == Some(desired) {
        return Ok(Written::Unchanged);
    }
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    // The resourceVersion makes the write conditional on the object we decided from: a decision
    // made from a cache that lagged behind (e.g. reconciling on the watch event of an object just
    // created, before the cache saw the status that led to it) must not overwrite a newer status.
    // The newer version triggers its own reconcile.
    let patch = serde_json::json!({
        "apiVersion": K::api_version(&()),
        "kind": K::kind(&()),
        "metadata": { "resourceVersion": object.resource_version() },
        "status": desired,
    });
    match api
        .patch_status(
            &object.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(written) => {
            if let Some(version) = written.resource_version() {
                ctx.own_writes
                    .wrote(super::object_key(object), version.clone());
                return Ok(Written::Yes(Some(version)));
            }
            Ok(Written::Yes(None))
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            tracing::debug!("status decided from an outdated object; deciding again");
            Ok(Written::Stale)
        }
        Err(err) => Err(Error::WriteStatus(err)),
    }
}

/// `object` as it is after its status was written as `status` at `resource_version`: what the
/// rest of a reconcile acts on once a decision is recorded.
pub fn recorded<K, S>(object: &K, status: &S, resource_version: Option<String>) -> K
where
    K: Resource + Clone + HasStatus<Status = S>,
    S: Clone,
{
    let mut recorded = object.clone();
    *recorded.status_mut() = Some(status.clone());
    recorded.meta_mut().resource_version = resource_version;
    recorded
}

/// Records how removing what the operator created went: `Removed=False` (a Warning Event through
/// the transition) while something could not be deleted or still exists, and `Removed=True` once
/// a retry after such a failure proved everything gone. A removal that never failed adds nothing.
pub fn record_removal(
    conditions: &mut Vec<Condition>,
    failure: Option<&Error>,
    generation: Option<i64>,
    now: k8s_openapi::jiff::Timestamp,
) {
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now);
    match failure {
        Some(err) => conditions::set_conditions(
            conditions,
            &[REMOVED],
            false,
            reason::REMOVAL_FAILED,
            &format!(
                "not everything created could be removed yet: {err}; retrying until it is gone"
            ),
            generation,
            now,
        ),
        None if conditions::find(conditions, REMOVED).is_some_and(|c| c.status == "False") => {
            conditions::set_conditions(
                conditions,
                &[REMOVED],
                true,
                reason::REMOVED,
                "everything created was deleted and is proven gone",
                generation,
                now,
            )
        }
        None => {}
    }
}

/// Condition reasons that mean something went wrong or was refused; the rest (waiting, expired on
/// time) are the normal course of a request.
const WARNINGS: &[&str] = &[
    reason::INVALID_SPEC,
    reason::NO_MATCHING_POLICY,
    reason::POLICY_NOT_FOUND,
    reason::AMBIGUOUS_POLICY,
    reason::POLICY_VIOLATION,
    reason::DENIED,
    reason::SEPARATION_OF_DUTIES,
    reason::TIMED_OUT,
    reason::PROVISIONING_FAILED,
    reason::POLICY_WITHDRAWN,
    reason::CONTRADICTED,
    reason::UNVERIFIABLE,
    reason::APPROVAL_INTEGRITY_UNVERIFIED,
    reason::SOURCE_CHANGED,
    reason::STATUS_TAMPERED,
    reason::REMOVAL_FAILED,
];

/// Publishes one Event for the conditions whose status or reason differ from before: a status
/// write is one change of the object, and one Event per condition would multiply the Events (and
/// the API calls) of every reconcile by the number of conditions it moved. The Event takes the
/// reason of the first transition that is a warning, else of the last one (the furthest the
/// object got), and its note says every transition, in order. Event failures are logged, not
/// returned: the status is the record, Events are a convenience.
pub async fn publish_transitions<K>(
    ctx: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    if let Some(note) = transitions_note(before, after)
        && let Err(err) = ctx.events.publish(&note, &object.object_ref(&())).await
    {
        tracing::warn!(error = %err, "cannot publish event");
    }
}

/// The one Event for the transitions from `before` to `after`, if any condition changed.
fn transitions_note(before: &[Condition], after: &[Condition]) -> Option<Note> {
    let changed: Vec<&Condition> = after
        .iter()
        .filter(|condition| {
            // Ready summarises the other conditions; saying it would repeat one of theirs.
            condition.type_ != READY
                && !before.iter().any(|old| {
                    old.type_ == condition.type_
                        && old.status == condition.status
                        && old.reason == condition.reason
                })
        })
        .collect();
    let warning = changed
        .iter()
        .find(|c| WARNINGS.contains(&c.reason.as_str()));
    let headline = warning.or(changed.last())?;
    let message = changed
        .iter()
        .map(|c| format!("{} {}: {}", c.type_, c.status, c.message))
        .collect::<Vec<_>>()
        .join("; ");
    Some(Note {
        type_: if warning.is_some() {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: headline.reason.clone(),
        action: headline.type_.clone(),
        message: event_note(&message),
    })
}

/// The API server refuses an Event whose note exceeds 1,024 bytes (not characters): a longer
/// message is cut and points at the full text.
pub const EVENT_NOTE_LIMIT: usize = 1024;

fn event_note(message: &str) -> String {
    if message.len() <= EVENT_NOTE_LIMIT {
        return message.to_string();
    }
    const POINTER: &str = " (the object's status and its AccessRecord hold the whole message)";
    crate::api::conditions::bounded(message, EVENT_NOTE_LIMIT - POINTER.len()) + POINTER
}

/// Publishes one Event about `object`. Failures are logged, not returned: the status is the
/// record, Events are a convenience.
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &Context,
    object: &K,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    let note = Note {
        type_,
        reason: reason.into(),
        action: "Reconcile".into(),
        message: event_note(note),
    };
    if let Err(err) = ctx.events.publish(&note, &object.object_ref(&())).await {
        tracing::warn!(error = %err, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn condition(type_: &str, status: &str, reason: &str, message: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
            observed_generation: None,
        }
    }

    #[test]
    fn one_event_says_every_transition_and_takes_a_warning_for_its_reason() {
        let approved = condition("Approved", "True", "Approved", "approved by bob (manager)");
        let provisioned = condition("Provisioned", "True", "Provisioned", "bound in payments");
        let ready = condition(READY, "True", "Active", "active");
        let note = transitions_note(&[], &[approved.clone(), provisioned.clone(), ready.clone()])
            .expect("an Event");
        assert_eq!(note.type_, EventType::Normal);
        assert_eq!(
            (note.reason.as_str(), note.action.as_str()),
            ("Provisioned", "Provisioned")
        );
        assert_eq!(
            note.message,
            "Approved True: approved by bob (manager); Provisioned True: bound in payments"
        );

        let failed = condition(
            "Provisioned",
            "False",
            reason::PROVISIONING_FAILED,
            "forbidden",
        );
        let note = transitions_note(
            std::slice::from_ref(&approved),
            &[approved.clone(), failed, ready.clone()],
        )
        .expect("an Event");
        assert_eq!(note.type_, EventType::Warning);
        assert_eq!(note.reason, reason::PROVISIONING_FAILED);
        assert_eq!(note.message, "Provisioned False: forbidden");

        // Nothing moved (a new message alone is no transition): no Event.
        let reworded = condition("Approved", "True", "Approved", "approved again");
        assert_eq!(transitions_note(&[approved], &[reworded, ready]), None);
    }

    #[test]
    fn only_the_first_sighting_of_the_operators_own_write_is_its_own() {
        let at = |version: &str| crate::api::AccessRequest {
            metadata: kube::api::ObjectMeta {
                namespace: Some("payments".into()),
                name: Some("alice-db-read".into()),
                resource_version: Some(version.into()),
                ..Default::default()
            },
            spec: serde_json::from_value(serde_json::json!({
                "requester": "alice", "role": { "kind": "ClusterRole", "name": "db-reader" },
                "namespaces": ["payments"], "duration": "1h", "justification": "x"
            }))
            .expect("a spec"),
            status: None,
        };
        let own = OwnWrites::default();
        own.wrote(super::super::object_key(&at("7")), "7".into());
        // Someone else's change before the write's event, then the write, then it again.
        assert!(!own.is_own(&at("6")));
        assert!(own.is_own(&at("7")));
        assert!(!own.is_own(&at("7")));
        own.wrote(super::super::object_key(&at("8")), "8".into());
        own.forget(&at("8"));
        assert!(!own.is_own(&at("8")));
    }

    #[test]
    fn event_notes_fit_the_api_servers_byte_limit() {
        for message in ["short".to_string(), "é".repeat(3000), "x".repeat(5000)] {
            let note = event_note(&message);
            assert!(note.len() <= EVENT_NOTE_LIMIT, "{} bytes", note.len());
            if message.len() <= EVENT_NOTE_LIMIT {
                assert_eq!(note, message);
            } else {
                assert!(note.ends_with("hold the whole message)"), "{note}");
            }
        }
    }
}
