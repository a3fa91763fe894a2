//! DataSharingAgreement controller: checks each agreement against its SharingPolicy and records
//! the outcome.

use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tracing::instrument;

use super::{Context, Error, status};
use crate::api::conditions::{self, ACCEPTED, ConditionUpdate, reason};
use crate::api::{DataSharingAgreement, DataSharingAgreementStatus, SharingPhase, SharingPolicy};
use crate::policy::Refusal;
use crate::policy::sharing::{self, AcceptedShare};

/// Reconciles every DataSharingAgreement until shutdown; `policy_changes` re-checks them all
/// whenever a SharingPolicy changes; `stop` starts a graceful shutdown.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    Controller::new(
        Api::<DataSharingAgreement>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .with_config(controller::Config::default().concurrency(8))
    .reconcile_all_on(policy_changes)
    .graceful_shutdown_on(stop)
    .run(
        reconcile,
        |agreement, error, ctx| ctx.retry_after(agreement.as_ref(), error),
        ctx,
    )
    .for_each(|result| {
        if let Err(err) = result {
            tracing::warn!(error = %err, "controller error");
        }
        future::ready(())
    })
    .await;
}

#[instrument(skip_all, fields(namespace = agreement.namespace(), name = agreement.name_any()))]
async fn reconcile(
    agreement: Arc<DataSharingAgreement>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let policies = ctx.sharing_policies.state();
    let policies: Vec<&SharingPolicy> = policies.iter().map(Arc::as_ref).collect();
    let namespace = agreement.namespace().unwrap_or_default();
    let decision = sharing::accept(
        &agreement.spec,
        &namespace,
        &policies,
        &ctx.namespace_labels(),
    );

    let current = agreement.status.as_ref();
    let mut desired = desired_status(
        current,
        agreement.metadata.generation,
        &decision,
        Time(Timestamp::now()),
    );
    desired.recipient = Some(sharing::describe_recipient(&agreement.spec.recipient));
    if status::apply(&ctx, agreement.as_ref(), current, &desired).await? {
        let before = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        status::publish_transitions(&ctx, agreement.as_ref(), before, &desired.conditions).await;
        audit(&agreement, &desired);
    }
    ctx.reset_backoff(agreement.as_ref());
    Ok(Action::await_change())
}

/// The status an agreement should have given the policy decision; deterministic like
/// [`super::access_request::desired_status`].
pub fn desired_status(
    current: Option<&DataSharingAgreementStatus>,
    generation: Option<i64>,
    decision: &Result<AcceptedShare, Refusal>,
    now: Time,
) -> DataSharingAgreementStatus {
    let mut status = current.cloned().unwrap_or_default();
    let update = match decision {
        Ok(accepted) => {
            status.phase = Some(SharingPhase::Pending);
            status.policy = Some(accepted.policy.clone());
            ConditionUpdate::new(
                ACCEPTED,
                true,
                reason::VALID,
                format!(
                    "SharingPolicy {} governs this agreement; waiting for reviews",
                    accepted.policy
                ),
            )
        }
        Err(refusal) => {
            status.phase = Some(SharingPhase::Failed);
            status.policy = None;
            ConditionUpdate::new(ACCEPTED, false, refusal.reason, refusal.message.clone())
        }
    };
    conditions::set_condition(&mut status.conditions, update, generation, now);
    status.observed_generation = generation;
    status
}

/// One structured line per decision, for a SIEM.
fn audit(agreement: &DataSharingAgreement, status: &DataSharingAgreementStatus) {
    let accepted = conditions::find(&status.conditions, ACCEPTED);
    tracing::info!(
        target: "audit",
        kind = "DataSharingAgreement",
        namespace = agreement.namespace().unwrap_or_default(),
        name = agreement.name_any(),
        requester = agreement.spec.requester,
        recipient = status.recipient.as_deref().unwrap_or_default(),
        phase = ?status.phase,
        reason = accepted.map(|c| c.reason.as_str()).unwrap_or_default(),
        message = accepted.map(|c| c.message.as_str()).unwrap_or_default(),
        "data sharing decision"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::fixtures::{data_sharing_agreement, namespaces, sharing_policy};

    #[test]
    fn accepted_then_refused_flips_phase_and_condition() {
        let policy = sharing_policy("default-sharing");
        let agreement = data_sharing_agreement();
        let accepted = sharing::accept(&agreement.spec, "orders", &[&policy], &namespaces());
        let first = desired_status(None, Some(1), &accepted, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(first.phase, Some(SharingPhase::Pending));
        let refused = sharing::accept(&agreement.spec, "orders", &[], &namespaces());
        let second = desired_status(Some(&first), Some(1), &refused, Time(Timestamp::UNIX_EPOCH));
        assert_eq!(second.phase, Some(SharingPhase::Failed));
        assert_eq!(second.policy, None);
        let condition = conditions::find(&second.conditions, ACCEPTED).expect("Accepted condition");
        assert_eq!(condition.reason, reason::NO_MATCHING_POLICY);
    }
}
