//! The controllers: one module per kind, each a fixed sequence of observe (read caches into plain
//! inputs) → decide (pure functions from [`crate::lifecycle`]) → act (server-side apply) → report.

mod access;
mod approvers;
mod cached;
pub use cached::Cached;
mod client;
mod events;
mod existing_bindings;
#[cfg(test)]
mod fixtures;
mod integrity;
mod lineage;
mod notify;
mod org_chart;
mod readiness;
pub mod recheck;
mod reconciler;
pub mod records;
mod seal_key;
mod sharing;
mod status;
mod sweep;
mod verdicts;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, future, stream};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ListParams, PartialObjectMeta};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, reflector as reflect, watcher};
use kube::{Api, Client, Resource, ResourceExt};

use crate::access::NamespaceLabels;
use crate::api::{
    AccessPolicy, AccessRecord, AccessRequest, DataSharingAgreement, OrgChart, SharingPolicy,
};
use crate::apply;
use crate::leader;
use crate::lifecycle::activation::{SealKey, Sealer};
use crate::lifecycle::eligible::{Approvers, Manager, Rbac};
use crate::metrics::Metrics;
use crate::server;
use crate::telemetry;

/// Name under which the operator reports Events.
const CONTROLLER_NAME: &str = "gatehouse";

/// Errors of the controllers. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to Kubernetes: {0}; set KUBECONFIG or run in a cluster")]
    Connect(#[source] kube::Error),
    #[error(
        "the Gatehouse CRDs are not installed ({0}); install them with `gatehouse crd | kubectl apply -f -`"
    )]
    CrdsMissing(#[source] kube::Error),
    #[error("cannot write status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error(
        "cannot write AccessRecord {name}: {source}; the operator needs get, create and update on accessrecords (ClusterRole gatehouse-operator), and admission policy gatehouse-status must name the operator"
    )]
    WriteRecord {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read {what}: {source}")]
    Observe {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Provision(#[from] crate::apply::Error),
    #[error(transparent)]
    Cached(#[from] cached::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    #[error("the admission policies compiled into the operator do not parse ({0}); this is a bug")]
    ShippedPolicies(String),
    #[error(
        "cannot read or create the seal key Secret {namespace}/gatehouse-seal-key: {source}; the operator needs get and create on Secrets in its namespace, which must exist (--namespace / POD_NAMESPACE)"
    )]
    SealKey {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "the seal key Secret {namespace}/gatehouse-seal-key is unusable: {problem}; delete it only if no grant or share is active (their windows would no longer verify)"
    )]
    SealKeyInvalid { namespace: String, problem: String },
    #[error(
        "cannot learn the operator's own username with a SelfSubjectReview: {0}; the admission policy gatehouse-status must name it"
    )]
    WhoAmI(#[source] kube::Error),
    #[error("the caches stopped before they synced; the operator is shutting down")]
    CachesStopped,
    #[error(
        "cannot build the notification HTTP client: {0}; the operator needs the system's TLS root certificates"
    )]
    NotificationClient(#[source] reqwest::Error),
    #[error(transparent)]
    Leader(#[from] leader::Error),
    #[error(transparent)]
    Serve(#[from] server::Error),
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Connect(_) => "connect",
            Error::CrdsMissing(_) => "crds_missing",
            Error::WriteStatus(_) => "write_status",
            Error::WriteRecord { .. } => "write_record",
            Error::Observe { .. } => "observe",
            Error::Provision(_) => "provision",
            Error::Cached(_) => "cache",
            Error::Finalizer(_) => "finalizer",
            Error::CachesStopped => "caches_stopped",
            Error::SealKey { .. } | Error::SealKeyInvalid { .. } => "seal_key",
            Error::WhoAmI(_) => "who_am_i",
            Error::ShippedPolicies(_) => "shipped_policies",
            Error::NotificationClient(_) => "notification_client",
            Error::Leader(_) => "leader_election",
            Error::Serve(_) => "serve",
        }
    }
}

/// What every reconcile reads: the client, caches of the policies and namespaces, the Event recorder.
pub struct Context {
    pub client: Client,
    pub access_policies: Store<AccessPolicy>,
    pub sharing_policies: Store<SharingPolicy>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Every RoleBinding and ClusterRoleBinding, found by the subjects they name (the
    /// existing-access and separation-of-duties checks) and by the role they grant (who holds an
    /// approver right: `status.approvers`).
    pub existing_bindings: Arc<existing_bindings::ExistingBindings>,
    /// Every Role and ClusterRole: whose rules say who holds an approver right
    /// (`status.approvers`).
    pub roles: Store<Role>,
    pub cluster_roles: Store<ClusterRole>,
    /// The org chart (OrgChart `gatehouse`), the one object of its watch: who decides
    /// `RequesterManager` stages.
    pub org_chart: Store<OrgChart>,
    /// The operator's own namespace ([`Options::namespace`]).
    pub namespace: String,
    /// Every AccessRecord, as a digest of what it says: a record already saying what a reconcile
    /// would write is not written.
    pub records: Arc<records::Recorded>,
    /// How long a record is kept after its object ended ([`Options::record_retention`]).
    pub record_retention: Duration,
    /// The objects the operator created, by owner: what a reconcile compares its desired objects
    /// with, and where the orphan sweep looks.
    pub owned: apply::Index,
    pub events: events::Events,
    /// Whether the approval admission policies are installed as shipped.
    pub integrity: Arc<integrity::Integrity>,
    pub metrics: Arc<Metrics>,
    /// Seals the activation windows the operator opens, and checks recorded ones.
    pub seal_key: SealKey,
    /// How often owned objects whose owner is gone are looked for.
    pub sweep_interval: Duration,
    /// The longest a live object goes unchecked ([`Options::resync_period`]).
    pub resync_period: Duration,
    /// How many objects of each kind are reconciled at once ([`Options::concurrency`]).
    pub concurrency: u16,
    /// Every AccessRequest and DataSharingAgreement, for the links between them.
    pub access_peers: lineage::Peers<AccessRequest>,
    pub sharing_peers: lineage::Peers<DataSharingAgreement>,
    /// What the operator last wrote to each AccessRecord, while its cache may lag behind.
    pub written_records: Arc<records::WrittenRecords>,
    /// The operator's own status writes, until the watch shows them.
    pub own_writes: status::OwnWrites,
    /// Windows provided under before a status records them.
    pub opened_windows: status::OpenedWindows,
    /// Approver rights answered by SubjectAccessReviews, while RBAC stays as it was.
    pub verdicts: Arc<verdicts::Verdicts>,
    /// How long the API server's RBAC authorizer lately took to see a binding change.
    pub authorizer_lag: crate::access::verification::AuthorizerLag,
    /// Delivers `status.notifications` in the background.
    pub notifier: Arc<notify::Notifier>,
    /// Consecutive failures per object, for growing retry delays.
    failures: Mutex<HashMap<String, u32>>,
    /// Whether reconciles found the API server unreachable, to look at every object again as
    /// soon as it answers.
    reachability: recheck::Reachability,
}

impl Context {
    /// Waits until every cache has its first full list, so that an empty cache is never mistaken
    /// for "no policy exists". Called once before the controllers start, never from reconciles:
    /// kube-runtime's readiness signal wakes only one of several concurrent waiters.
    async fn caches_synced(&self) -> Result<(), Error> {
        let synced = future::try_join3(
            self.access_policies.wait_until_ready(),
            self.sharing_policies.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        );
        let rbac = future::try_join3(
            self.roles.wait_until_ready(),
            self.cluster_roles.wait_until_ready(),
            self.org_chart.wait_until_ready(),
        );
        let synced = future::try_join(synced, rbac);
        let (synced, (), (), ()) = future::join4(
            synced,
            self.owned.synced(),
            self.existing_bindings.listed(),
            self.records.listed(),
        )
        .await;
        synced.map(|_| ()).map_err(|_| Error::CachesStopped)
    }

    /// Logs a failed reconcile and picks its retry delay: 1 s, doubling per consecutive failure of
    /// the same object, at most 5 minutes.
    fn retry_after<K: Resource<DynamicType = ()>>(&self, object: &K, error: &Error) -> Action {
        let key = object_key(object);
        let attempt = {
            let mut failures = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let count = failures.entry(key.clone()).or_default();
            *count = count.saturating_add(1);
            *count
        };
        let delay = Duration::from_secs(1u64 << attempt.min(9).saturating_sub(1))
            .min(Duration::from_secs(300));
        tracing::warn!(object = key, error = %error, category = error.category(), attempt, retry_in = ?delay, "reconcile failed");
        if recheck::unreachable(error) {
            self.reachability.unreachable();
        }
        Action::requeue(delay)
    }

    /// Forgets the failures of an object that reconciled successfully.
    fn reset_backoff<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&object_key(object));
    }

    /// The sealer of `object`'s activation window (`kind` is its kind).
    fn sealer<'a, K: Resource>(&'a self, kind: &'a str, object: &'a K) -> Sealer<'a> {
        Sealer {
            key: &self.seal_key,
            kind,
            uid: object.meta().uid.as_deref().unwrap_or_default(),
        }
    }

    /// The requester's manager per the org chart, or why there is none.
    fn manager_of(&self, requester: &str) -> Manager {
        let chart = self.org_chart.state().into_iter().next();
        Manager::of(requester, chart.as_ref().map(|c| &c.spec.managers))
    }

    /// Who may decide on an object of `requester`: the holders of each role's right in every
    /// scope `roles` names for it (`None`: cluster-wide), and the requester's manager.
    fn approvers<'r>(
        &self,
        requester: &str,
        roles: impl IntoIterator<Item = (&'r str, Vec<Option<&'r str>>)>,
    ) -> Approvers {
        let (roles_, cluster_roles) = (self.roles.state(), self.cluster_roles.state());
        let rbac = Rbac {
            bindings: &*self.existing_bindings,
            roles: &roles_,
            cluster_roles: &cluster_roles,
        };
        Approvers {
            holders: roles
                .into_iter()
                .map(|(role, scopes)| (role.to_string(), rbac.holders(role, &scopes)))
                .collect(),
            manager: self.manager_of(requester),
        }
    }

    fn namespace_labels(&self) -> NamespaceLabels {
        self.namespaces
            .state()
            .iter()
            .map(|ns| (ns.name_any(), ns.labels().clone()))
            .collect::<BTreeMap<_, _>>()
    }
}

/// Whether `object` no longer holds anything: gone, or being deleted without the operator's
/// `finalizer` (someone else's finalizer keeps it around, but its removal was done, or skipped by
/// whoever removed ours): what it owned is an orphan.
fn abandoned<K: Resource>(object: Option<&K>, finalizer: &str) -> bool {
    object.is_none_or(|o| {
        o.meta().deletion_timestamp.is_some()
            && !o
                .meta()
                .finalizers
                .as_deref()
                .unwrap_or_default()
                .iter()
                .any(|f| f == finalizer)
    })
}

/// How `gatehouse run` was asked to run.
pub struct Options {
    /// `None` when this is the only replica and acts at once (`--leader-election=false`).
    pub leader_election: Option<leader::Settings>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub metrics_address: SocketAddr,
    /// The operator's own namespace: the seal key, the notification HMAC keys (and the Lease)
    /// live there.
    pub namespace: String,
    /// How often owned objects whose owner is gone are looked for.
    pub sweep_interval: Duration,
    /// The longest a live object goes unchecked: policy changes re-check every object at once,
    /// but a namespace whose labels change (moving it in or out of a policy's selector) triggers
    /// nothing, so pending and active objects are looked at again at least this often.
    pub resync_period: Duration,
    /// How long an AccessRecord is kept after its object ended (a policy may ask for longer).
    pub record_retention: Duration,
    /// How often a notification is tried before its delivery fails.
    pub notification_attempts: u32,
    /// How many objects of each kind are reconciled at once.
    pub concurrency: u16,
}

/// Serves the health and metrics endpoints, syncs the caches, and, once this replica leads (at
/// once without leader election), runs both controllers until SIGTERM or Ctrl-C. A leader that
/// loses its Lease stops acting at once and stands by again, in the same process, until it leads
/// again.
pub async fn run(options: Options) -> Result<(), Error> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(readiness::Readiness::default());
    let listener = server::bind(options.metrics_address).await?;
    tokio::spawn(server::serve(listener, metrics.clone(), readiness.clone()));
    let client = client::counted(metrics.clone())
        .await
        .map_err(Error::Connect)?;
    for probe in [
        Api::<AccessRequest>::all(client.clone())
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map(|_| ()),
        Api::<DataSharingAgreement>::all(client.clone())
            .list_metadata(&ListParams::default().limit(1))
            .await
            .map(|_| ()),
    ] {
        probe.map_err(Error::CrdsMissing)?;
    }

    let (access_policies, access_policy_changes) = cache::<AccessPolicy>(&client);
    let (sharing_policies, sharing_policy_changes) = cache::<SharingPolicy>(&client);
    // RBAC changes re-check no object at once (changes to the bindings the operator owns come
    // from the owned index; who holds a right is a listing for requesters, refreshed on the
    // object's next reconcile), but each forgets the approver rights answered that it may alter.
    let verdicts = Arc::new(verdicts::Verdicts::default());
    let existing_bindings = Arc::new(existing_bindings::ExistingBindings::default());
    let (roles, cluster_roles) = rbac_caches(&client, verdicts.clone(), existing_bindings.clone());
    let (org_chart, access_org_chart_changes, sharing_org_chart_changes) =
        org_chart::watch(&client);
    let written_records = Arc::new(records::WrittenRecords::default());
    let deleted_records = written_records.clone();
    let records = Arc::new(records::Recorded::default());
    let recorded = records.clone();
    observed::<AccessRecord>(&client, move |event| {
        recorded.observe(event);
        if let watcher::Event::Delete(record) = event {
            deleted_records.forget(&record.name_any());
        }
    });
    let owned = apply::Index::watch(&client);
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_events = reflect(
        namespace_writer,
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        ),
    );
    let mut namespace_log = telemetry::WatchLog::new("Namespace");
    tokio::spawn(apply::backed_off(namespace_events).for_each(move |event| {
        namespace_log.saw(&event);
        future::ready(())
    }));
    let seal_key = seal_key::load(&client, &options.namespace).await?;
    let operator = integrity::who_am_i(&client).await?;
    tracing::info!(
        operator,
        "status is written as this user; admission policy gatehouse-status must name it"
    );
    let (integrity, access_integrity_changes, sharing_integrity_changes) =
        integrity::watch(&client, &operator).await?;
    let notifier = Arc::new(
        notify::Notifier::new(
            client.clone(),
            options.namespace.clone(),
            metrics.clone(),
            options.notification_attempts,
        )
        .map_err(Error::NotificationClient)?,
    );
    let ctx = Arc::new(Context {
        notifier,
        seal_key,
        sweep_interval: options.sweep_interval,
        resync_period: options.resync_period,
        concurrency: options.concurrency,
        events: events::Events::new(
            client.clone(),
            CONTROLLER_NAME,
            std::env::var("POD_NAME").ok(),
        ),
        integrity,
        metrics: metrics.clone(),
        client,
        access_policies,
        sharing_policies,
        namespaces,
        existing_bindings,
        roles,
        cluster_roles,
        org_chart,
        namespace: options.namespace.clone(),
        records,
        record_retention: options.record_retention,
        owned,
        access_peers: Default::default(),
        sharing_peers: Default::default(),
        verdicts,
        authorizer_lag: Default::default(),
        own_writes: Default::default(),
        opened_windows: Default::default(),
        written_records,
        failures: Mutex::default(),
        reachability: Default::default(),
    });
    // What makes each controller look at every object again, whichever controllers run now.
    let reconnected = recheck::Relay::of(futures::stream::empty());
    let rechecks = Rechecks {
        access: recheck::Relay::of(stream::select(
            access_policy_changes,
            stream::select(access_integrity_changes, access_org_chart_changes),
        )),
        sharing: recheck::Relay::of(stream::select(
            sharing_policy_changes,
            stream::select(sharing_integrity_changes, sharing_org_chart_changes),
        )),
        reconnected: reconnected.clone(),
    };
    let probing = ctx.clone();
    tokio::spawn(async move {
        probing
            .reachability
            .watch(probing.client.clone(), reconnected)
            .await;
    });

    tracing::info!("waiting for the policy, namespace, binding and owned-object caches to sync");
    ctx.caches_synced().await?;
    readiness.synced(ctx.integrity.clone());
    let (stop, mut deadline) = shutdown_signals();
    // Only after the caches synced: a replica that cannot read the cluster never takes the Lease
    // from one that can.
    let (lease, identity) = options
        .leader_election
        .as_ref()
        .map(|s| (s.lease.clone(), s.identity.clone()))
        .unwrap_or_default();
    let mut candidate = match options.leader_election {
        Some(settings) => Some(leader::Candidate::join(ctx.client.clone(), settings).await?),
        None => None,
    };
    loop {
        if let Some(standing_by) = candidate.as_mut() {
            tracing::info!(
                lease,
                identity,
                "standing by until this replica holds the lease"
            );
            let stopped = tokio::select! {
                elected = standing_by.elected() => elected.map(|()| false)?,
                () = stop.clone() => true,
            };
            if stopped {
                if let Some(candidate) = candidate {
                    candidate.resign().await;
                }
                tracing::info!("gatehouse operator stopped while standing by");
                return Ok(());
            }
            tracing::info!(lease, identity, "elected leader");
        }
        metrics.set_leader(true);
        readiness.leading(true);
        tracing::info!("gatehouse operator started");
        let leading = lead(ctx.clone(), &rechecks, stop.clone());
        let lost = async {
            match candidate.as_mut() {
                Some(candidate) => candidate.lost().await,
                None => future::pending().await,
            }
        };
        let lost = tokio::select! {
            () = leading => None,
            Ok(()) = &mut deadline => {
                tracing::warn!("reconciles still running {SHUTDOWN_GRACE:?} after the stop signal; stopping anyway");
                None
            }
            lost = lost => Some(lost),
        };
        let Some(lost) = lost else { break };
        // Another replica may act from now on: everything stopped at once (dropping what `lead`
        // ran cancelled running reconciles) rather than after they finished. Stand by again.
        metrics.set_leader(false);
        readiness.leading(false);
        tracing::warn!(error = %lost, "stopped acting; standing by");
        if let Some(candidate) = candidate.as_mut() {
            candidate.step_down();
        }
    }
    if let Some(candidate) = candidate {
        candidate.resign().await;
    }
    tracing::info!("gatehouse operator stopped");
    Ok(())
}

/// What makes the controllers look at every object again, across terms of leadership.
struct Rechecks {
    access: recheck::Relay,
    sharing: recheck::Relay,
    /// The API server answers again after reconciles found it unreachable.
    reconnected: recheck::Relay,
}

/// One term of leadership: both controllers, their orphan sweeps and the record retention sweep,
/// until the stop signal. Dropping it stops everything it runs at once, running reconciles too.
async fn lead(
    ctx: Arc<Context>,
    rechecks: &Rechecks,
    stop: impl Future<Output = ()> + Clone + Send + Sync + 'static,
) {
    let controllers = future::join(
        access::run(
            ctx.clone(),
            stream::select(
                rechecks.access.subscribe(),
                rechecks.reconnected.subscribe(),
            ),
            stop.clone(),
        ),
        sharing::run(
            ctx.clone(),
            stream::select(
                rechecks.sharing.subscribe(),
                rechecks.reconnected.subscribe(),
            ),
            stop,
        ),
    );
    // The retention sweep never ends by itself: the controllers' end ends both.
    let records = records::sweep_expired(ctx.clone());
    future::select(std::pin::pin!(controllers), std::pin::pin!(records)).await;
}

/// How long running reconciles may take to finish after SIGTERM or Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Futures for a graceful stop: one to clone for each part that stops, resolving on the first
/// SIGTERM or Ctrl-C, and a deadline that resolves [`SHUTDOWN_GRACE`] later, or at once on a
/// second signal.
fn shutdown_signals() -> (
    impl Future<Output = ()> + Clone + Send + Sync + 'static,
    oneshot::Receiver<()>,
) {
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (deadline_tx, deadline_rx) = oneshot::channel();
    tokio::spawn(async move {
        stop_signal().await;
        tracing::info!("stop signal received; finishing running reconciles");
        let _ = stop_tx.send(());
        tokio::select! {
            () = tokio::time::sleep(SHUTDOWN_GRACE) => {}
            () = stop_signal() => {}
        }
        let _ = deadline_tx.send(());
    });
    (stop_rx.map(|_| ()).shared(), deadline_rx)
}

async fn stop_signal() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut sigterm) => {
                sigterm.recv().await;
            }
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the operator");
                future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = future::pending::<()>();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

/// A cache of every object of kind `K`, kept current by its own task, and a stream that yields
/// whenever one changes. The cache must not be driven by a controller's trigger stream: a
/// controller busy with reconciles that wait for the cache would then never poll it (deadlock).
pub(crate) fn cache<K: apply::Watchable>(
    client: &Client,
) -> (Store<K>, impl futures::Stream<Item = ()> + Send + 'static) {
    // Capacity 1 coalesces bursts: one pending "re-check everything" covers every change before it.
    let (mut changed, changes) = mpsc::channel(1);
    let store = cache_observed::<K>(client, move |_| {
        let _ = changed.try_send(());
    });
    (store, changes)
}

/// The caches of RBAC: every Role and ClusterRole, and every RoleBinding and ClusterRoleBinding
/// in `existing_bindings` (which keeps only what decisions read of them). Each change forgets the
/// approver-right answers it may alter ([`verdicts::RbacChanges`]).
fn rbac_caches(
    client: &Client,
    verdicts: Arc<verdicts::Verdicts>,
    existing_bindings: Arc<existing_bindings::ExistingBindings>,
) -> (Store<Role>, Store<ClusterRole>) {
    let mut changes = verdicts::RbacChanges::new(verdicts.clone());
    let existing = existing_bindings.clone();
    observed::<RoleBinding>(client, move |event| {
        existing.role_binding(event);
        changes.role_binding(event);
    });
    let mut changes = verdicts::RbacChanges::new(verdicts.clone());
    let existing = existing_bindings.clone();
    observed::<ClusterRoleBinding>(client, move |event| {
        existing.cluster_role_binding(event);
        changes.cluster_role_binding(event);
    });
    let changes = verdicts::RbacChanges::new(verdicts.clone());
    let bindings = existing_bindings.clone();
    let roles = cache_observed(client, move |event| changes.role(event, &bindings));
    let changes = verdicts::RbacChanges::new(verdicts);
    let cluster_roles = cache_observed(client, move |event| {
        changes.cluster_role(event, &existing_bindings)
    });
    (roles, cluster_roles)
}

/// Hands each event of the watch of every object of kind `K` to `observe`, in its own task,
/// keeping no cache of its own.
fn observed<K: apply::Watchable>(
    client: &Client,
    observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
) {
    let events = apply::backed_off(
        watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .modify(|object| object.meta_mut().managed_fields = None),
    );
    spawn_observing(events, observe);
}

/// Follows `events` in its own task, logging the watch's errors and handing each event to
/// `observe`.
fn spawn_observing<K: apply::Watchable>(
    events: impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    mut observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
) {
    let mut log = telemetry::WatchLog::new(K::kind(&()));
    tokio::spawn(events.for_each(move |event| {
        log.saw(&event);
        if let Ok(event) = &event {
            observe(event);
        }
        future::ready(())
    }));
}

/// A cache of every object of kind `K`, kept current by its own task, which also hands each of
/// the watch's events to `observe` once the cache holds it.
fn cache_observed<K: apply::Watchable>(
    client: &Client,
    observe: impl FnMut(&watcher::Event<K>) + Send + 'static,
) -> Store<K> {
    let (store, writer) = reflector::store();
    spawn_observing(reflected(client, writer), observe);
    store
}

/// The watch of every object of kind `K`, reflected into `writer`'s store (without managedFields,
/// which nothing reads), its errors backed off.
pub(crate) fn reflected<K: apply::Watchable>(
    client: &Client,
    writer: reflector::store::Writer<K>,
) -> impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static {
    apply::backed_off(reflect(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .modify(|object| object.meta_mut().managed_fields = None),
    ))
}

/// Wraps a reconcile function so that every run is counted and timed under its kind, with the
/// category of its error.
fn measured<K, F, Fut>(
    mut reconcile: F,
) -> impl FnMut(Arc<K>, Arc<Context>) -> BoxFuture<'static, Result<Action, Error>>
where
    K: Resource<DynamicType = ()>,
    F: FnMut(Arc<K>, Arc<Context>) -> Fut,
    Fut: Future<Output = Result<Action, Error>> + Send + 'static,
{
    move |object, ctx| {
        let metrics = ctx.metrics.clone();
        let started = Instant::now();
        let reconciled = reconcile(object, ctx);
        async move {
            let result = reconciled.await;
            metrics.reconciled(
                &K::kind(&()),
                started.elapsed(),
                result.as_ref().err().map(Error::category),
            );
            result
        }
        .boxed()
    }
}

fn object_key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
}

/// When to reconcile again: at the plan's next deadline, and at most `resync` later; objects
/// without a deadline (terminal ones) only when they change.
fn next_check(
    wake_at: Option<k8s_openapi::jiff::Timestamp>,
    now: k8s_openapi::jiff::Timestamp,
    resync: Duration,
) -> Action {
    match wake_at {
        Some(at) => Action::requeue(until(at, now).min(resync)),
        None => Action::await_change(),
    }
}

/// How long until `at`, at least 50 ms: the requeue delay for a deadline.
fn until(at: k8s_openapi::jiff::Timestamp, now: k8s_openapi::jiff::Timestamp) -> Duration {
    let millis = at
        .as_millisecond()
        .saturating_sub(now.as_millisecond())
        .max(0);
    Duration::from_millis(u64::try_from(millis).unwrap_or(0)).max(Duration::from_millis(50))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    const RESYNC: Duration = Duration::from_secs(300);

    #[test]
    fn live_objects_are_checked_at_their_deadline_or_within_the_resync_period() {
        let now = Timestamp::from_second(1_800_000_000).expect("valid time");
        let soon = now
            .checked_add(Duration::from_secs(10))
            .expect("valid time");
        let later = now
            .checked_add(Duration::from_secs(86_400))
            .expect("valid time");
        assert_eq!(
            next_check(Some(soon), now, RESYNC),
            Action::requeue(Duration::from_secs(10))
        );
        assert_eq!(
            next_check(Some(later), now, RESYNC),
            Action::requeue(RESYNC)
        );
        assert_eq!(next_check(None, now, RESYNC), Action::await_change());
        assert_eq!(
            next_check(Some(now), now, RESYNC),
            Action::requeue(Duration::from_millis(50)),
            "a deadline already due is acted on at once"
        );
    }
}
