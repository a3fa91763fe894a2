//! Watches the admission policies that verify approvals and keeps the verdict of
//! [`crate::lifecycle::integrity::verify`] current, so that reconciles can refuse to provision while
//! approvals cannot be trusted, and re-check every request as soon as that changes.

use std::sync::{Arc, RwLock};

use futures::channel::mpsc;
use futures::{Stream, StreamExt, stream};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::api::PostParams;
use kube::runtime::reflector::Store;
use kube::{Api, Client, ResourceExt};

use super::{Error, cache};
use crate::lifecycle::integrity::{self, Expected};

/// The current verdict: `Ok` when every shipped policy and binding is installed as shipped.
pub struct Integrity {
    verdict: RwLock<Result<(), String>>,
}

impl Integrity {
    /// What is wrong with the admission policies, if anything.
    pub fn problem(&self) -> Option<String> {
        self.verdict
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .err()
            .cloned()
    }

    /// A verdict that every shipped policy is installed, for tests that need no watch.
    #[cfg(test)]
    pub(super) fn verified() -> Integrity {
        Integrity {
            verdict: RwLock::new(Ok(())),
        }
    }
}

/// This operator's own username, as the API server authenticates it: the one identity the
/// `gatehouse-status` admission policy must let write status.
pub async fn who_am_i(client: &Client) -> Result<String, Error> {
    let review = Api::<SelfSubjectReview>::all(client.clone())
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(Error::WhoAmI)?;
    Ok(review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default())
}

/// Starts watching; returns once the first verdict is known, with one stream per controller that
/// yields whenever the verdict changes.
pub async fn watch(
    client: &Client,
    operator: &str,
) -> Result<
    (
        Arc<Integrity>,
        impl Stream<Item = ()> + Send + use<>,
        impl Stream<Item = ()> + Send + use<>,
    ),
    Error,
> {
    let expected = integrity::expected(operator).map_err(Error::ShippedPolicies)?;
    let (policies, policy_changes) = cache::<ValidatingAdmissionPolicy>(client);
    let (bindings, binding_changes) = cache::<ValidatingAdmissionPolicyBinding>(client);
    policies
        .wait_until_ready()
        .await
        .map_err(|_| Error::CachesStopped)?;
    bindings
        .wait_until_ready()
        .await
        .map_err(|_| Error::CachesStopped)?;

    let first = evaluate(&expected, &policies, &bindings);
    report(&first);
    let state = Arc::new(Integrity {
        verdict: RwLock::new(first),
    });
    let (mut access_tx, access_rx) = mpsc::channel(1);
    let (mut sharing_tx, sharing_rx) = mpsc::channel(1);
    let watched = state.clone();
    tokio::spawn(
        stream::select(policy_changes, binding_changes).for_each(move |()| {
            let verdict = evaluate(&expected, &policies, &bindings);
            let changed = {
                let mut current = watched
                    .verdict
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                let changed = *current != verdict;
                *current = verdict.clone();
                changed
            };
            if changed {
                report(&verdict);
                let _ = (access_tx.try_send(()), sharing_tx.try_send(()));
            }
            futures::future::ready(())
        }),
    );
    Ok((state, access_rx, sharing_rx))
}

fn evaluate(
    expected: &Expected,
    policies: &Store<ValidatingAdmissionPolicy>,
    bindings: &Store<ValidatingAdmissionPolicyBinding>,
) -> Result<(), String> {
    let policies: Vec<_> = expected
        .policies
        .iter()
        .map(|want| {
            let name = want.name_any();
            let have = policies
                .state()
                .into_iter()
                .find(|p| p.name_any() == name)
                .map(|p| (*p).clone());
            (name, have)
        })
        .collect();
    let bindings: Vec<_> = expected
        .bindings
        .iter()
        .map(|want| {
            let name = want.name_any();
            let have = bindings
                .state()
                .into_iter()
                .find(|b| b.name_any() == name)
                .map(|b| (*b).clone());
            (name, have)
        })
        .collect();
    integrity::verify(expected, &policies, &bindings)
}

fn report(verdict: &Result<(), String>) {
    match verdict {
        Ok(()) => tracing::info!("approval admission policies verified"),
        Err(problem) => tracing::error!(
            problem = problem.as_str(),
            "approval admission policies are not installed as shipped; nothing new will be provisioned until `kubectl apply -k deploy/admission/` restores them"
        ),
    }
}
