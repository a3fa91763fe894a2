//! Status writes: server-side apply of the whole status under the `gatehouse` field manager,
//! skipped when nothing changed, and Events for condition transitions.

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Patch, PatchParams};
use kube::core::object::HasStatus;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{Context, Error};
use crate::api::FIELD_MANAGER;
use crate::api::conditions::{self, READY, REMOVED, reason};

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
        Ok(written) => Ok(Written::Yes(written.resource_version())),
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

/// Publishes an Event for every condition whose status or reason differs from before.
/// Event failures are logged, not returned: the status is the record, Events are a convenience.
pub async fn publish_transitions<K>(
    ctx: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    for condition in after {
        let unchanged = before.iter().any(|old| {
            old.type_ == condition.type_
                && old.status == condition.status
                && old.reason == condition.reason
        });
        // Ready summarises the other conditions; an Event for it would repeat one of theirs.
        if unchanged || condition.type_ == READY {
            continue;
        }
        let event = Event {
            type_: if WARNINGS.contains(&condition.reason.as_str()) {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: condition.reason.clone(),
            note: Some(event_note(&condition.message)),
            action: condition.type_.clone(),
            secondary: None,
        };
        if let Err(err) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(error = %err, "cannot publish event");
        }
    }
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
    let event = Event {
        type_,
        reason: reason.into(),
        note: Some(event_note(note)),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(err) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(error = %err, "cannot publish event");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
