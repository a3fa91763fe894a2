//! The org chart: the cluster-scoped OrgChart `gatehouse`, watched by name, so that a manager
//! stage counts only the decision of the requester's manager as it says now, and every object is
//! looked at again as soon as it changes (an entry added lets a waiting stage be decided; one
//! changed makes an earlier manager's decision stop counting).

use futures::channel::mpsc;
use futures::{Stream, StreamExt, future};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{reflector as reflect, watcher};
use kube::{Api, Client};

use crate::api::{ORG_CHART, OrgChart};

/// Starts watching the org chart; returns its cache and one stream per controller that yields
/// whenever it changes (created, edited or deleted).
pub fn watch(
    client: &Client,
) -> (
    Store<OrgChart>,
    impl Stream<Item = ()> + Send + use<>,
    impl Stream<Item = ()> + Send + use<>,
) {
    let (store, writer) = reflector::store();
    let (mut access_tx, access_rx) = mpsc::channel(1);
    let (mut sharing_tx, sharing_rx) = mpsc::channel(1);
    let config = watcher::Config::default().fields(&format!("metadata.name={ORG_CHART}"));
    let events = crate::apply::backed_off(reflect(
        writer,
        watcher(Api::<OrgChart>::all(client.clone()), config),
    ));
    let watched = store.clone();
    let mut log = crate::telemetry::WatchLog::new("OrgChart gatehouse");
    tokio::spawn(events.for_each(move |event| {
        log.saw(&event);
        // Every event but the bookkeeping of a relist: a deletion too, after which nobody
        // decides a manager stage.
        if let Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitDone) =
            event
        {
            if watched.state().is_empty() {
                tracing::error!(
                    kind = "OrgChart",
                    name = ORG_CHART,
                    "the org chart does not exist: nobody decides RequesterManager stages, and admission policy gatehouse-requester-manager refuses every update of requests and agreements until it does; restore it with `kubectl apply -f deploy/base/org-chart.yaml` (it may be empty)"
                );
            }
            let _ = (access_tx.try_send(()), sharing_tx.try_send(()));
        }
        future::ready(())
    }));
    (store, access_rx, sharing_rx)
}
