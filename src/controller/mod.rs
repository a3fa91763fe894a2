//! The controllers: one module per kind, each a fixed sequence of observe (read caches into plain
//! inputs) → decide (pure functions from [`crate::policy`]) → act (server-side apply) → report.

mod access_request;
mod data_sharing_agreement;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::{StreamExt, future};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ListParams, PartialObjectMeta};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, reflector as reflect, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use crate::api::{AccessPolicy, AccessRequest, DataSharingAgreement, SharingPolicy};
use crate::policy::access::NamespaceLabels;

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
    #[error("the caches stopped before they synced; the operator is shutting down")]
    CachesStopped,
}

impl Error {
    /// A bounded label for metrics and logs.
    pub fn category(&self) -> &'static str {
        match self {
            Error::Connect(_) => "connect",
            Error::CrdsMissing(_) => "crds_missing",
            Error::WriteStatus(_) => "write_status",
            Error::CachesStopped => "caches_stopped",
        }
    }
}

/// What every reconcile reads: the client, caches of the policies and namespaces, the Event recorder.
pub struct Context {
    pub client: Client,
    pub access_policies: Store<AccessPolicy>,
    pub sharing_policies: Store<SharingPolicy>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    pub recorder: Recorder,
}

impl Context {
    /// Waits until every cache has its first full list, so that an empty cache is never mistaken
    /// for "no policy exists".
    async fn caches_synced(&self) -> Result<(), Error> {
        let synced = future::try_join3(
            self.access_policies.wait_until_ready(),
            self.sharing_policies.wait_until_ready(),
            self.namespaces.wait_until_ready(),
        )
        .await;
        synced.map(|_| ()).map_err(|_| Error::CachesStopped)
    }

    fn namespace_labels(&self) -> NamespaceLabels {
        self.namespaces
            .state()
            .iter()
            .map(|ns| (ns.name_any(), ns.labels().clone()))
            .collect::<BTreeMap<_, _>>()
    }
}

/// Runs both controllers until SIGTERM or Ctrl-C.
pub async fn run() -> Result<(), Error> {
    let client = Client::try_default().await.map_err(Error::Connect)?;
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
    let (namespaces, namespace_writer) = reflector::store();
    let namespace_cache = reflect(
        namespace_writer,
        watcher(
            Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
            watcher::Config::default(),
        ),
    )
    .default_backoff()
    .for_each(|_| future::ready(()));
    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: std::env::var("POD_NAME").ok(),
    };
    let ctx = Arc::new(Context {
        recorder: Recorder::new(client.clone(), reporter),
        client,
        access_policies,
        sharing_policies,
        namespaces,
    });

    tracing::info!("gatehouse operator started");
    let controllers = future::join(
        access_request::run(ctx.clone(), access_policy_changes),
        data_sharing_agreement::run(ctx, sharing_policy_changes),
    );
    // The namespace cache runs until the controllers stop, which they do on SIGTERM or Ctrl-C.
    tokio::select! {
        _ = controllers => {}
        () = namespace_cache => {}
    }
    tracing::info!("gatehouse operator stopped");
    Ok(())
}

/// A cache of every object of kind `K` and a stream that yields whenever one changes.
fn cache<K>(client: &Client) -> (Store<K>, impl futures::Stream<Item = ()> + Send + 'static)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let changes = reflect(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default())
            .modify(|object| object.meta_mut().managed_fields = None),
    )
    .default_backoff()
    .touched_objects()
    .map(|_| ());
    (store, changes)
}

/// How long to wait before retrying an object whose reconcile failed.
fn retry_after(error: &Error) -> Duration {
    tracing::warn!(error = %error, category = error.category(), "reconcile failed, retrying");
    Duration::from_secs(5)
}
