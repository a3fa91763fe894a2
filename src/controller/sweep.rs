//! Removes objects the operator created whose owner no longer exists (its finalizer was removed by
//! hand, or it was deleted while the operator was down): no access and no shared data outlives
//! the request or agreement it was created for.

use std::collections::BTreeSet;
use std::sync::Arc;

use kube::runtime::reflector::Store;
use kube::{Api, ResourceExt};

use super::Context;
use super::cached::Cached;
use super::reconciler::Reconciled;
use crate::apply;

/// Every sweep interval, deletes the owned objects whose owner of kind `K` is not among `owners`
/// (the controller's cache). The cache proposes candidates; a GET confirms the owner is really
/// gone before anything is deleted, as the cache may lag behind the API server.
pub(super) async fn sweep_orphans<K: Reconciled>(ctx: Arc<Context>, owners: Store<Cached<K>>) {
    // A controller that just started (a replica leading again) has not listed its objects yet:
    // every owned object would be a candidate, each costing a GET.
    if owners.wait_until_ready().await.is_err() {
        return;
    }
    loop {
        tokio::time::sleep(ctx.sweep_interval).await;
        let live: BTreeSet<apply::Owner> = owners
            .state()
            .iter()
            .filter(|owner| !super::abandoned(Some(owner.as_ref()), K::FINALIZER))
            .map(|owner| {
                apply::Owner::new(
                    K::OWNER,
                    &owner.namespace().unwrap_or_default(),
                    &owner.name_any(),
                )
            })
            .collect();
        for orphan in apply::orphans(&ctx.owned, K::OWNER, &live) {
            let api = Api::<K>::namespaced(ctx.client.clone(), &orphan.owner.namespace);
            match api.get_opt(&orphan.owner.name).await {
                Ok(found) if super::abandoned(found.as_ref(), K::FINALIZER) => {}
                _ => continue,
            }
            match apply::remove(&ctx.client, &orphan.key).await {
                Ok(false) => {}
                Ok(true) => tracing::info!(
                    target: "audit",
                    object = orphan.key.to_string(),
                    owner_kind = K::OWNER.as_str(),
                    owner = orphan.owner.to_string(),
                    decision = "OrphanRemoved",
                    "removed an object whose owner no longer exists"
                ),
                Err(err) => tracing::warn!(error = %err, "cannot remove an orphaned object"),
            }
        }
    }
}
