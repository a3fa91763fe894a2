//! AccessRequest controller: checks each request against its AccessPolicy and records the outcome.

use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::instrument;

use super::{Context, Error, retry_after, status};
use crate::api::conditions::{self, ACCEPTED, ConditionUpdate, reason};
use crate::api::{AccessPhase, AccessPolicy, AccessRequest, AccessRequestStatus};
use crate::policy::Refusal;
use crate::policy::access::{self, AcceptedRequest};

/// Reconciles every AccessRequest until shutdown; `policy_changes` re-checks them all whenever an
/// AccessPolicy changes; `stop` starts a graceful shutdown.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        Api::<AccessRequest>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(8))
    .reconcile_all_on(policy_changes)
    .graceful_shutdown_on(stop)
    .run(
        reconcile,
        |_, error, _| Action::requeue(retry_after(error)),
        ctx,
    )
    .for_each(|_| future::ready(()))
    .await;
}

#[instrument(skip_all, fields(namespace = request.namespace(), name = request.name_any()))]
async fn reconcile(request: Arc<AccessRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let policies = ctx.access_policies.state();
    let policies: Vec<&AccessPolicy> = policies.iter().map(Arc::as_ref).collect();
    let namespace = request.namespace().unwrap_or_default();
    let decision = access::accept(
        &request.spec,
        &namespace,
        &policies,
        &ctx.namespace_labels(),
    );

    let current = request.status.as_ref();
    let desired = desired_status(
        current,
        request.metadata.generation,
        &decision,
        Time(Timestamp::now()),
    );
    if status::apply(&ctx, request.as_ref(), current, &desired).await? {
        let before = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        status::publish_transitions(&ctx, request.as_ref(), before, &desired.conditions).await;
        audit(&request, &desired);
    }
    Ok(Action::await_change())
}

/// The status a request should have given the policy decision. Deterministic: the same inputs give
/// the same status, and timestamps move only when a condition changes.
pub fn desired_status(
    current: Option<&AccessRequestStatus>,
    generation: Option<i64>,
    decision: &Result<AcceptedRequest, Refusal>,
    now: Time,
) -> AccessRequestStatus {
    let mut status = current.cloned().unwrap_or_default();
    let update = match decision {
        Ok(accepted) => {
            status.phase = Some(AccessPhase::Pending);
            status.policy = Some(accepted.policy.clone());
            ConditionUpdate::new(
                ACCEPTED,
                true,
                reason::VALID,
                format!(
                    "AccessPolicy {} governs this request; waiting for approvals",
                    accepted.policy
                ),
            )
        }
        Err(refusal) => {
            status.phase = Some(AccessPhase::Failed);
            status.policy = None;
            ConditionUpdate::new(ACCEPTED, false, refusal.reason, refusal.message.clone())
        }
    };
    conditions::set_condition(&mut status.conditions, update, generation, now);
    status.observed_generation = generation;
    status
}

/// One structured line per decision, for a SIEM.
fn audit(request: &AccessRequest, status: &AccessRequestStatus) {
    let accepted = conditions::find(&status.conditions, ACCEPTED);
    tracing::info!(
        target: "audit",
        kind = "AccessRequest",
        namespace = request.namespace().unwrap_or_default(),
        name = request.name_any(),
        requester = request.spec.requester,
        phase = ?status.phase,
        reason = accepted.map(|c| c.reason.as_str()).unwrap_or_default(),
        message = accepted.map(|c| c.message.as_str()).unwrap_or_default(),
        "access request decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::{access_policy, access_request, namespaces};

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    #[test]
    fn an_accepted_request_is_pending_under_its_policy() {
        let policy = access_policy("payments-db");
        let request = access_request();
        let decision = access::accept(&request.spec, "payments", &[&policy], &namespaces());
        let status = desired_status(None, Some(1), &decision, at(10));
        assert_eq!(status.phase, Some(AccessPhase::Pending));
        assert_eq!(status.policy.as_deref(), Some("payments-db"));
        assert_eq!(status.observed_generation, Some(1));
        let accepted = conditions::find(&status.conditions, ACCEPTED).expect("Accepted condition");
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("True", reason::VALID)
        );
    }

    #[test]
    fn a_refused_request_fails_with_the_refusal_as_its_condition() {
        let request = access_request();
        let decision = access::accept(&request.spec, "payments", &[], &namespaces());
        let status = desired_status(None, Some(1), &decision, at(10));
        assert_eq!(status.phase, Some(AccessPhase::Failed));
        let accepted = conditions::find(&status.conditions, ACCEPTED).expect("Accepted condition");
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", reason::NO_MATCHING_POLICY)
        );
    }

    #[test]
    fn a_converged_status_is_identical_on_the_next_pass() {
        let policy = access_policy("payments-db");
        let request = access_request();
        let decision = access::accept(&request.spec, "payments", &[&policy], &namespaces());
        let first = desired_status(None, Some(1), &decision, at(10));
        let second = desired_status(Some(&first), Some(1), &decision, at(99));
        assert_eq!(first, second, "no write when nothing changed");
    }
}
