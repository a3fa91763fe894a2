//! Proof from the API server that a grant works once provisioned, and is gone once removed.

use std::time::Duration;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;

use super::access_request::{existing_bindings, role_rules};
use super::{Context, Error};
use crate::access::AcceptedRequest;
use crate::access::verification;
use crate::api::conditions::{self, ACCESS_REMOVED, ACCESS_VERIFIED, reason};
use crate::api::{AccessPhase, AccessRequestStatus};

/// After access starts or ends, asks the API server (SubjectAccessReview) whether the first subject
/// really has, or really no longer has, one of the role's permissions, and records the answer.
pub(super) async fn verify(
    ctx: &Context,
    request: &AcceptedRequest,
    before: Option<AccessPhase>,
    status: &mut AccessRequestStatus,
    now: Timestamp,
) {
    let started = status.phase == Some(AccessPhase::Active);
    let ended = before == Some(AccessPhase::Active)
        && matches!(
            status.phase,
            Some(AccessPhase::Expired | AccessPhase::Revoked)
        );
    if !started && !ended {
        return;
    }
    let namespace = request.namespaces.first().map(String::as_str);
    let (type_, update) = match (probe(ctx, request).await, request.subjects.first()) {
        (Ok(Some(permission)), Some(subject)) => {
            let review = SubjectAccessReview {
                spec: verification::review(subject, &permission, namespace),
                ..Default::default()
            };
            let where_ = namespace
                .map(|ns| format!("in {ns}"))
                .unwrap_or_else(|| "cluster-wide".into());
            let answer = review_until(ctx, &review, started).await;
            match (answer, started) {
                (Ok(true), true) => (
                    ACCESS_VERIFIED,
                    (
                        true,
                        reason::CONFIRMED,
                        format!("{} can {permission} {where_}", subject.name),
                    ),
                ),
                (Ok(false), true) => (
                    ACCESS_VERIFIED,
                    (
                        false,
                        reason::CONTRADICTED,
                        format!(
                            "the API server says {} cannot {permission} {where_} although the binding exists",
                            subject.name
                        ),
                    ),
                ),
                (Ok(false), false) => (
                    ACCESS_REMOVED,
                    (
                        true,
                        reason::CONFIRMED,
                        format!("{} can no longer {permission} {where_}", subject.name),
                    ),
                ),
                (Ok(true), false) => (
                    ACCESS_REMOVED,
                    (
                        false,
                        reason::CONTRADICTED,
                        format!(
                            "{} can still {permission} {where_}, through {}",
                            subject.name,
                            other_grants(ctx, request, subject).await
                        ),
                    ),
                ),
                (Err(err), _) => (
                    if started {
                        ACCESS_VERIFIED
                    } else {
                        ACCESS_REMOVED
                    },
                    (
                        false,
                        reason::UNVERIFIABLE,
                        format!("the SubjectAccessReview failed: {err}"),
                    ),
                ),
            }
        }
        (Ok(_), _) => (
            if started {
                ACCESS_VERIFIED
            } else {
                ACCESS_REMOVED
            },
            (
                false,
                reason::UNVERIFIABLE,
                "the role has no permission without wildcards to ask the API server about"
                    .to_string(),
            ),
        ),
        (Err(err), _) => (
            if started {
                ACCESS_VERIFIED
            } else {
                ACCESS_REMOVED
            },
            (false, reason::UNVERIFIABLE, err.to_string()),
        ),
    };
    let (ok, why, message) = update;
    let update = conditions::ConditionUpdate::new(type_, ok, why, message);
    let generation = status.observed_generation;
    conditions::set_condition(&mut status.conditions, update, generation, Time(now));
}

/// Asks the review until the API server answers `expected`, for up to about 3 s: its RBAC
/// authorizer learns of new and deleted bindings from a cache, a moment after they change.
async fn review_until(
    ctx: &Context,
    review: &SubjectAccessReview,
    expected: bool,
) -> Result<bool, kube::Error> {
    let api = Api::<SubjectAccessReview>::all(ctx.client.clone());
    let mut answer = false;
    for attempt in 0..15 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        answer = api
            .create(&PostParams::default(), review)
            .await?
            .status
            .is_some_and(|s| s.allowed);
        if answer == expected {
            break;
        }
    }
    Ok(answer)
}

async fn probe(
    ctx: &Context,
    request: &AcceptedRequest,
) -> Result<Option<verification::Permission>, Error> {
    Ok(role_rules(ctx, request)
        .await?
        .and_then(|rules| verification::probe(&rules)))
}

/// The bindings other than this request's that grant its role to `subject` where it asked for.
async fn other_grants(
    ctx: &Context,
    request: &AcceptedRequest,
    subject: &crate::api::common::Subject,
) -> String {
    let bindings = existing_bindings(ctx);
    let sources: Vec<String> = bindings
        .into_iter()
        .filter(|b| b.role == request.role && b.subjects.contains(subject))
        .filter(|b| {
            b.namespace.is_none()
                || request
                    .namespaces
                    .contains(b.namespace.as_ref().unwrap_or(&String::new()))
        })
        .map(|b| b.source)
        .collect();
    if sources.is_empty() {
        "another role, group or binding".into()
    } else {
        sources.join(", ")
    }
}
