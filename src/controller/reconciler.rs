//! The one reconciler both kinds run, as named steps:
//!
//! 1. **observe** ([`Reconciled::observe`]): read the caches, the sources, the role rules and the
//!    SubjectAccessReview answers the decision needs, once; decide nothing.
//! 2. **decide** ([`Reconciled::decide`]): a pure function of what was observed (the lifecycle
//!    core, [`crate::lifecycle::decide`]): the status, what must be provided, when to look again.
//! 3. **act**: record a window the decision opens before anything is provided; make what is
//!    provided exactly the decided set ([`Reconciled::converge`]); prove the result with the API
//!    server ([`Reconciled::prove`]). A failure is folded into the status by
//!    [`crate::lifecycle::outcome`], purely.
//! 4. **report**: one status write (none when nothing changed), an Event per condition transition,
//!    the kind's own Events and one audit line per phase change.
//!
//! Deleting an object runs [`Reconciled::converge`] with nothing wanted before its finalizer goes.

use std::fmt::Debug;
use std::sync::Arc;

use super::events::EventType;
use futures::{Stream, StreamExt, future};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::jiff::Timestamp;
use kube::core::object::HasStatus;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;

#[cfg(test)]
mod tests;

use super::cached::Cached;
use super::lineage::{Links, Peers};
use super::status::{self, Written};
use super::{Context, Error, records};
use crate::api::Phase;
use crate::api::conditions::{self, ConditionUpdate};
use crate::apply::{self, Applied, Object, OwnerKind};
use crate::lifecycle::decide::{Decision, Provision};
use crate::lifecycle::kind::{Kind, RecordedWindow};
use crate::lifecycle::notify::{self, Settings};
use crate::lifecycle::outcome;

/// An Event beyond the condition transitions.
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub message: String,
}

/// What decide returns: the lifecycle's decision and the objects that provide it.
pub struct Planned<S> {
    pub decision: Decision<S>,
    /// What must exist while [`Provision::Provide`]; nothing exists otherwise.
    pub provided: Vec<Object>,
}

/// The status of a reconciled kind.
pub type StatusOf<K> = <<K as Reconciled>::Core as Kind>::Status;

/// A kind the one reconciler drives: an `AccessRequest` ([`super::access`]) or a
/// `DataSharingAgreement` ([`super::sharing`]).
pub trait Reconciled:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + HasStatus<Status = <Self::Core as Kind>::Status>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// Its part of the lifecycle core.
    type Core: Kind<Status: Serialize + DeserializeOwned + Send + Sync>;
    /// What observe gathered.
    type Observed: Send + Sync;

    /// Makes deleting it remove what it provided before the object goes.
    const FINALIZER: &'static str;
    /// How the objects it provides name it as their owner.
    const OWNER: OwnerKind;

    /// Observe: everything the decision needs, read once.
    fn observe(&self, ctx: &Context) -> impl Future<Output = Result<Self::Observed, Error>> + Send;

    /// Decide: pure.
    fn decide(
        &self,
        ctx: &Context,
        observed: &Self::Observed,
        now: Timestamp,
    ) -> Planned<StatusOf<Self>>;

    /// Makes what it provides exactly `wanted`; `by_name` also removes what its recorded status
    /// names (an object whose owner label someone stripped is still removed).
    fn converge(
        &self,
        ctx: &Context,
        wanted: &[Object],
        by_name: bool,
    ) -> impl Future<Output = Result<Applied, Error>> + Send;

    /// Proof from the API server after what is provided started or ended, as a condition.
    fn prove(
        &self,
        ctx: &Context,
        observed: &Self::Observed,
        before: Option<Phase>,
        after: Option<Phase>,
    ) -> impl Future<Output = Option<ConditionUpdate>> + Send;

    /// The kind's own Events for a status written as `after` (e.g. new findings, a sync), and
    /// for what converging changed while it was provided (`executed_before`).
    fn notes(
        &self,
        before: Option<&StatusOf<Self>>,
        after: &StatusOf<Self>,
        converged: &Applied,
        executed_before: bool,
    ) -> Vec<Note>;

    /// Counts what a written status records (latencies, syncs).
    fn measure(
        ctx: &Context,
        before: Option<&StatusOf<Self>>,
        after: &StatusOf<Self>,
        now: Timestamp,
    );

    /// What its record says about it besides its status (`deleted_at` while it is deleted).
    fn record_facts(
        &self,
        ctx: &Context,
        status: Option<&StatusOf<Self>>,
        deleted_at: Option<Timestamp>,
    ) -> crate::lifecycle::record::Facts;

    /// Its cache of every object of its kind, for links between them.
    fn peers(ctx: &Context) -> &Peers<Self>;

    /// The requester and the links its spec names.
    fn links(&self) -> Links<'_>;

    /// Whether it asks for nothing beyond what `original` (which it extends) was granted; `Err`
    /// says what it asks for beyond it.
    fn covers(&self, original: &Self) -> Result<(), String>;

    /// One structured line per phase change, for a SIEM.
    fn audit(&self, status: &StatusOf<Self>);

    /// The audit line of a deletion that removed `removed`.
    fn audit_deleted(&self, removed: &[String]);

    /// Where notifications about objects under the policy named `policy` go.
    fn notification_settings(ctx: &Context, policy: &str) -> Settings;
}

/// The phase of `status` as the core sees it.
fn phase_of<K: Kind>(status: Option<&K::Status>) -> Option<Phase> {
    status.and_then(K::phase)
}

/// Runs the controller of `K` until `stop`: every object of `K`, reconciled again when an object
/// it provides changes (heard from the owned index once it holds the change, so the reconcile
/// sees it), all at once when `rechecks` yields (policy or integrity changes), and on whatever
/// `configure` adds (watches of what it reads). Orphans of `K` are swept meanwhile. Dropping the
/// future stops all of it at once, running reconciles too (a leader that lost its Lease).
pub async fn run<K: Reconciled>(
    ctx: Arc<Context>,
    rechecks: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
    configure: impl FnOnce(Controller<Cached<K>>, Store<Cached<K>>) -> Controller<Cached<K>>,
) {
    let (store, writer) = reflector::store::<Cached<K>>();
    let filtering = ctx.clone();
    let objects = super::reflected(&ctx.client, writer)
        // The store holds every version; only the reconcile of the watch event of the operator's own
        // write is skipped. Never an object a list shows: a write whose event was lost to an outage
        // would otherwise keep its object from the next term's first round.
        .filter(move |event| {
            let own =
                matches!(event, Ok(watcher::Event::Apply(o)) if filtering.own_writes.is_own(o));
            future::ready(!own)
        })
        .applied_objects();
    let controller = Controller::for_stream(objects, store.clone());
    let sweep = super::sweep::sweep_orphans(ctx.clone(), store.clone());
    let relinks = K::peers(&ctx).attach(store.clone());
    // A settled delivery is recorded by the object's next reconcile, woken at once.
    let (settled, deliveries) = futures::channel::mpsc::unbounded();
    ctx.notifier
        .on_settled(&K::kind(&()), move |namespace, name| {
            let _ = settled.unbounded_send(ObjectRef::<Cached<K>>::new(name).within(namespace));
        });
    let controller = configure(controller, store)
        .reconcile_on(ctx.owned.changes(K::OWNER))
        .reconcile_on(relinks)
        .reconcile_on(deliveries)
        .with_config(controller::Config::default().concurrency(ctx.concurrency))
        .reconcile_all_on(rechecks)
        .graceful_shutdown_on(stop)
        .run(
            super::measured(reconcile::<K>),
            |object, error, ctx| ctx.retry_after(object.as_ref(), error),
            ctx,
        )
        .for_each(|result| {
            match result {
                // Logged by the error policy, with its retry.
                Err(controller::Error::ReconcilerFailed(..)) | Ok(_) => {}
                // Its watch's errors, one per attempt of its backoff (0.8 s doubling to 30 s).
                Err(err) => tracing::warn!(error = %err, "controller error"),
            }
            future::ready(())
        });
    // The sweep never ends by itself: the controller's end (on the stop signal) ends both.
    future::select(std::pin::pin!(controller), std::pin::pin!(sweep)).await;
}

async fn reconcile<K: Reconciled>(
    cached: Arc<Cached<K>>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let object = Arc::new(cached.unpack()?);
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &object.namespace().unwrap_or_default());
    let span = tracing::info_span!(
        "reconcile",
        kind = %K::kind(&()),
        namespace = object.namespace(),
        name = object.name_any()
    );
    let finalized = finalizer(&api, K::FINALIZER, object, |event| async {
        match event {
            finalizer::Event::Apply(object) => steps(object.as_ref(), &ctx).await,
            finalizer::Event::Cleanup(object) => cleanup(object.as_ref(), &ctx).await,
        }
    })
    .instrument(span)
    .await;
    match finalized {
        Err(err) if lost_finalizer_race(&err) => {
            tracing::debug!(error = %err, "the finalizers changed since this object was read; reading it again");
            Ok(Action::requeue(status::STALE_RETRY))
        }
        other => other.map_err(|err| Error::Finalizer(Box::new(err))),
    }
}

/// Whether adding or removing the finalizer failed only because the finalizers are no longer
/// what the (cached) object said: the JSON patch's `test` operation fails with 422. A reconcile of
/// an object read just before its finalizer was added (a request approved right after it was
/// filed) does that; the next read decides again, like a stale status write. An admission policy
/// refuses with 422 too (e.g. while kube-apiserver, just restarted, cannot resolve a policy's
/// paramKind yet): that is a failure, retried with backoff, not a race to retry at once. The API
/// server answers a failed patch with exactly [`PATCH_TEST_FAILED`].
fn lost_finalizer_race(err: &finalizer::Error<Error>) -> bool {
    matches!(
        err,
        finalizer::Error::AddFinalizer(kube::Error::Api(status))
            | finalizer::Error::RemoveFinalizer(kube::Error::Api(status))
            if status.code == 422 && status.message == PATCH_TEST_FAILED
    )
}

/// kube-apiserver's message for a JSON patch that does not apply (k8s.io/apimachinery's
/// `NewGenericServerResponse` for 422, which drops the patch library's own words).
const PATCH_TEST_FAILED: &str = "the server rejected our request due to an error in our request";

/// observe → decide → act → report.
async fn steps<K: Reconciled>(object: &K, ctx: &Context) -> Result<Action, Error> {
    let now = Timestamp::now();
    // Decided from the window what it provides carries, when its status does not record it yet.
    let carried = adopt_carried(ctx, object, now);
    let deciding = carried.as_ref().unwrap_or(object);
    let observed = deciding.observe(ctx).await?;
    let planned = deciding.decide(ctx, &observed, now);
    let Planned { decision, provided } = planned;
    let before = object.status();
    let phase_before = phase_of::<K::Core>(before);
    let provide = decision.provision == Provision::Provide;
    let generation = object.meta().generation;

    // Act. What is provided carries the window it is provided under, so that nothing is ever
    // provided without its end on record; the status records it once everything exists.
    let executed_before = phase_before.is_some_and(Phase::is_running);
    let provided = match K::Core::split(decision.status.clone()).0.window {
        Some(window) if provide => {
            // Remembered only until a status records it; one provided before has it on record.
            if !executed_before {
                ctx.opened_windows.opened(object, window.clone());
            }
            carrying(provided, &window)
        }
        _ if provide => provided,
        _ => Vec::new(),
    };
    let wanted = provided.as_slice();
    // What may exist (its window is recorded and it has not ended yet) is removed by name too.
    let may_exist = !phase_before.is_some_and(Phase::is_terminal);
    let mut status = decision.status.clone();
    let converged = match object.converge(ctx, wanted, may_exist).await {
        Ok(converged) => converged,
        Err(err) if !provide => {
            let conditions = K::Core::conditions(&mut status);
            status::record_removal(conditions, Some(&err), generation, now);
            report(ctx, object, &status, &[]).await?;
            return Err(err);
        }
        Err(err) => {
            // What could not be provided whole must not exist in part: the retry provides it
            // whole within the recorded window. What was provided before stays while retried.
            // Removed by the names the decision gave it too: the owned watch may not show what
            // was just created.
            if !executed_before {
                status::recorded(object, &decision.status, object.resource_version())
                    .converge(ctx, &[], true)
                    .await?;
            }
            let failed = outcome::provisioning_failed::<K::Core>(
                status,
                object.status(),
                &err.to_string(),
                generation,
                now,
            );
            let (failed, settings) = outbox(ctx, object, before, failed, now);
            if report(ctx, object, &failed, &[]).await? != Written::Stale {
                send(ctx, object, &failed, &settings);
            }
            return Err(err);
        }
    };
    if !provide {
        status::record_removal(K::Core::conditions(&mut status), None, generation, now);
    }
    let phase_after = phase_of::<K::Core>(Some(&status));
    if phase_after != phase_before
        && let Some(proof) = object
            .prove(ctx, &observed, phase_before, phase_after)
            .await
    {
        conditions::set_condition(
            K::Core::conditions(&mut status),
            proof,
            generation,
            k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
        );
    }

    // Report.
    let mut notes = object.notes(before, &status, &converged, executed_before);
    if let Some(reminder) = &decision.reminder {
        notes.push(Note {
            type_: EventType::Normal,
            reason: "ApprovalReminder",
            message: reminder.clone(),
        });
    }
    let (status, settings) = outbox(ctx, object, before, status, now);
    if report(ctx, object, &status, &notes).await? == Written::Stale {
        return Ok(Action::requeue(status::STALE_RETRY));
    }
    send(ctx, object, &status, &settings);
    // Also when the status did not change: a record lost to a restart between the status write
    // and the record write is written now.
    records::write(ctx, object, Some(&status), None).await?;
    ctx.reset_backoff(object);
    let (record, _) = K::Core::split(status);
    let wake_at = [decision.wake_at, notify::wake_at(&record, &settings, now)]
        .into_iter()
        .flatten()
        .min();
    Ok(super::next_check(wake_at, now, ctx.resync_period))
}

/// `object` with the status to decide from when what it provides carries a window its status does
/// not record yet ([`outcome::adopt_carried`]); `None` to decide from `object` as it is.
fn adopt_carried<K: Reconciled>(ctx: &Context, object: &K, now: Timestamp) -> Option<K> {
    // Most reconciles are of objects provided or ended, which never adopt: their owned objects
    // are not even looked at.
    if phase_of::<K::Core>(object.status()).is_some_and(|p| p.is_running() || p.is_terminal()) {
        return None;
    }
    let owner = apply::Owner::new(
        K::OWNER,
        &object.namespace().unwrap_or_default(),
        &object.name_any(),
    );
    let carried = ctx
        .owned
        .owned_by(&owner)
        .iter()
        .filter_map(|provided| provided.meta().annotations.as_ref())
        .filter_map(RecordedWindow::carried)
        .chain(ctx.opened_windows.of(object))
        .collect::<Vec<_>>();
    if carried.is_empty() {
        return None;
    }
    let kind = K::kind(&());
    let sealer = ctx.sealer(&kind, object);
    let status = outcome::adopt_carried::<K::Core>(object.status(), carried, &sealer, now)?;
    Some(status::recorded(object, &status, object.resource_version()))
}

/// `provided`, each carrying `window` in its annotations.
fn carrying(mut provided: Vec<Object>, window: &RecordedWindow) -> Vec<Object> {
    for object in &mut provided {
        for (key, value) in window.annotations() {
            object.annotate(key, value);
        }
    }
    provided
}

/// The status to write with its outbox: what the notifier reported merged into
/// `status.notifications`, and what the change from `before` tells appended, for the policy's
/// destinations (returned too, for [`send`]).
fn outbox<K: Reconciled>(
    ctx: &Context,
    object: &K,
    before: Option<&StatusOf<K>>,
    status: StatusOf<K>,
    now: Timestamp,
) -> (StatusOf<K>, Settings) {
    let (mut after, details) = K::Core::split(status);
    let before = before.map(|b| K::Core::split(b.clone()).0);
    let policy = after
        .policy
        .clone()
        .or_else(|| before.as_ref().and_then(|b| b.policy.clone()));
    let settings = policy
        .map(|policy| K::notification_settings(ctx, &policy))
        .unwrap_or_default();
    notify::merge(
        &mut after.notifications,
        &settings.targets,
        |id, destination| ctx.notifier.reached(id, destination),
    );
    let uid = object.meta().uid.as_deref().unwrap_or_default();
    notify::append(
        &K::Core::WORDING,
        uid,
        before.as_ref(),
        &mut after,
        &settings,
        now,
    );
    (K::Core::join(after, details), settings)
}

/// Hands the pending deliveries of a status that was written (or already said so) to the
/// notifier, which sends them in the background: nothing here waits for a destination.
fn send<K: Reconciled>(ctx: &Context, object: &K, status: &StatusOf<K>, settings: &Settings) {
    let (record, _) = K::Core::split(status.clone());
    ctx.notifier.submit(
        object,
        object.links().requester,
        &record.notifications,
        &settings.targets,
    );
}

/// Deleting an object ends what it provides at once: everything goes before the finalizer is
/// removed.
async fn cleanup<K: Reconciled>(object: &K, ctx: &Context) -> Result<Action, Error> {
    let converged = object.converge(ctx, &[], true).await?;
    // The record is final before the finalizer goes: a deletion never outruns its evidence.
    let deleted_at = object
        .meta()
        .deletion_timestamp
        .as_ref()
        .map_or_else(Timestamp::now, |t| t.0);
    records::write(ctx, object, object.status(), Some(deleted_at)).await?;
    if !converged.deleted.is_empty() {
        let note = format!(
            "{} deleted; removed {}",
            K::Core::WORDING.noun,
            converged.deleted.join(", ")
        );
        status::publish(
            ctx,
            object,
            EventType::Normal,
            crate::api::conditions::reason::REVOKED,
            &note,
        )
        .await;
    }
    object.audit_deleted(&converged.deleted);
    ctx.notifier
        .forget(object.meta().uid.as_deref().unwrap_or_default());
    ctx.own_writes.forget(object);
    ctx.opened_windows.forget(object);
    // Its failures are forgotten too: a deleted object's retry count would otherwise stay forever.
    ctx.reset_backoff(object);
    Ok(Action::await_change())
}

/// Writes the status when it changed, with one Event for the condition transitions, the kind's
/// notes, and one audit line per phase change.
async fn report<K: Reconciled>(
    ctx: &Context,
    object: &K,
    desired: &StatusOf<K>,
    notes: &[Note],
) -> Result<Written, Error> {
    let current = object.status();
    let written = status::apply(ctx, object, current, desired).await?;
    if written != Written::Stale {
        ctx.opened_windows.forget(object);
    }
    if matches!(written, Written::Yes(_)) {
        // First, before the Events: whoever sees the new status may read the metrics at once.
        K::measure(ctx, current, desired, Timestamp::now());
        let before = current
            .map(K::Core::recorded_conditions)
            .unwrap_or_default();
        let after = K::Core::recorded_conditions(desired);
        status::publish_transitions(ctx, object, before, after).await;
        if phase_of::<K::Core>(current) != phase_of::<K::Core>(Some(desired)) {
            object.audit(desired);
        }
    }
    if written != Written::Stale {
        for note in notes {
            status::publish(ctx, object, note.type_, note.reason, &note.message).await;
        }
    }
    Ok(written)
}
