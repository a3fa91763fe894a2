//! AccessRequest controller: observe (policy, approvals, RBAC around the request) → decide
//! ([`kind::plan`]) → act (provision or remove bindings) → report (status, Events, audit).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use super::status::Written;
use super::{Context, Error, access_verification, approvers, status};
use crate::access::findings::{self, Checks};
use crate::access::kind::{self, Access, Plan};
use crate::access::rbac_view::ExistingBinding;
use crate::access::{self, AcceptedRequest};
use crate::api::common::{RoleKind, SubjectKind};
use crate::api::conditions::{self, GRANTED, READY, reason};
use crate::api::{
    AccessPhase, AccessPolicy, AccessRequest, AccessRequestStatus, FILED_BY_ANNOTATION,
    OWNER_ANNOTATION, OWNER_LABEL,
};
use crate::provision::rbac::{self, Binding};

/// Finalizer that makes deleting a request revoke its access before the object goes.
pub const FINALIZER: &str = "gatehouse.dev/revoke-access";

/// Reconciles every AccessRequest until `stop`; `policy_changes` re-checks them all whenever an
/// AccessPolicy changes, and any change to a binding the operator owns reconciles its request.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let owned = watcher::Config::default().labels(OWNER_LABEL);
    let controller = Controller::new(
        Api::<AccessRequest>::all(ctx.client.clone()),
        watcher::Config::default(),
    );
    tokio::spawn(sweep_orphans(ctx.clone(), controller.store()));
    ctx.metrics.count_requests(controller.store());
    controller
        .with_config(controller::Config::default().concurrency(8))
        .watches(
            Api::<RoleBinding>::all(ctx.client.clone()),
            owned.clone(),
            |rb| owner_of(&rb),
        )
        .watches(
            Api::<ClusterRoleBinding>::all(ctx.client.clone()),
            owned,
            |crb| owner_of(&crb),
        )
        .reconcile_all_on(policy_changes)
        .graceful_shutdown_on(stop)
        .run(
            super::measured(reconcile),
            |request, error, ctx| ctx.retry_after(request.as_ref(), error),
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

/// Deletes bindings the operator made whose request no longer exists (its finalizer was removed by
/// hand, or it was deleted while the operator was down): access never outlives its request. The
/// cache proposes candidates; a GET confirms the request is really gone before anything is deleted.
async fn sweep_orphans(
    ctx: Arc<Context>,
    requests: kube::runtime::reflector::Store<AccessRequest>,
) {
    loop {
        tokio::time::sleep(ctx.sweep_interval).await;
        let live = requests
            .state()
            .iter()
            .filter(|r| !super::abandoned(Some(r.as_ref()), FINALIZER))
            .map(|r| format!("{}/{}", r.namespace().unwrap_or_default(), r.name_any()))
            .collect();
        let candidates = rbac::orphan_candidates(
            &ctx.role_bindings.state(),
            &ctx.cluster_role_bindings.state(),
            &live,
        );
        for (binding, owner) in candidates {
            if let Some((namespace, name)) = &owner {
                let api = Api::<AccessRequest>::namespaced(ctx.client.clone(), namespace);
                match api.get_opt(name).await {
                    Ok(found) if super::abandoned(found.as_ref(), FINALIZER) => {}
                    _ => continue,
                }
            }
            match rbac::delete(&ctx.client, &binding).await {
                Ok(()) => tracing::info!(
                    target: "audit",
                    binding = rbac::describe(&binding),
                    request = owner.map(|(ns, name)| format!("{ns}/{name}")).unwrap_or_default(),
                    decision = "OrphanRemoved",
                    "removed a binding whose access request no longer exists"
                ),
                Err(err) => tracing::warn!(error = %err, "cannot remove an orphaned binding"),
            }
        }
    }
}

/// The request a binding belongs to, from the annotation the operator puts on it.
fn owner_of<K: Resource>(object: &K) -> Option<ObjectRef<AccessRequest>> {
    let (namespace, name) = object
        .meta()
        .annotations
        .as_ref()?
        .get(OWNER_ANNOTATION)?
        .split_once('/')?;
    Some(ObjectRef::new(name).within(namespace))
}

#[instrument(skip_all, fields(namespace = request.namespace(), name = request.name_any()))]
async fn reconcile(request: Arc<AccessRequest>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let api: Api<AccessRequest> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, request, |event| async {
        match event {
            finalizer::Event::Apply(request) => apply(&request, &ctx).await,
            finalizer::Event::Cleanup(request) => cleanup(&request, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))?;
    Ok(action)
}

async fn apply(request: &AccessRequest, ctx: &Context) -> Result<Action, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let name = request.name_any();
    let now = Timestamp::now();

    // Observe.
    let policies = ctx.access_policies.state();
    let policy_refs: Vec<&AccessPolicy> = policies.iter().map(Arc::as_ref).collect();
    let filed_by = request
        .annotations()
        .get(FILED_BY_ANNOTATION)
        .map(String::as_str);
    let accepted = access::check_on_behalf(&request.spec, filed_by).and_then(|()| {
        access::accept(
            &request.spec,
            &namespace,
            &policy_refs,
            &ctx.namespace_labels(),
        )
    });
    let phase = request.status.as_ref().and_then(|s| s.phase);
    let awaiting_decision = matches!(
        phase,
        None | Some(AccessPhase::Pending | AccessPhase::Failed | AccessPhase::Approved)
    );
    let checks = match &accepted {
        Ok(accepted) if awaiting_decision => {
            let policy = policy_refs
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(accepted.policy.as_str()));
            let rules = role_rules(ctx, accepted).await?;
            let bindings = existing_bindings(ctx);
            policy
                .map(|p| findings::check(accepted, &p.spec, &bindings, rules.as_deref()))
                .unwrap_or_default()
        }
        _ => Checks::default(),
    };
    let governing = accepted.as_ref().ok().and_then(|a| {
        policy_refs
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(a.policy.as_str()))
    });
    let bindings = accepted
        .as_ref()
        .map(|a| rbac::desired(&namespace, &name, a))
        .unwrap_or_default();
    let no_annotations = BTreeMap::new();

    // Decide.
    let unauthorized = match &accepted {
        // Also while active: the approvals that keep a grant are re-derived on every reconcile.
        Ok(accepted) if !phase.is_some_and(AccessPhase::is_terminal) => {
            // Admission checks an approver's right in the request's namespace; the grant may
            // reach others (or the whole cluster), and some roles count only cluster-wide.
            // Only the policy's stages are checked: other roles' annotations never count anyway.
            let cluster_wide = governing
                .map(|p| p.spec.cluster_wide_approvers.clone())
                .unwrap_or_default();
            let stages: Vec<String> = governing
                .map(|p| p.spec.approvals.iter().map(|s| s.role.clone()).collect())
                .unwrap_or_default();
            let scopes: Vec<Option<String>> = if accepted.cluster_wide {
                vec![None]
            } else {
                accepted.namespaces.iter().cloned().map(Some).collect()
            };
            // Whoever can act as a ServiceAccount subject decides nothing on its access.
            let controls: Vec<approvers::Control> = accepted
                .subjects
                .iter()
                .filter(|s| s.kind == SubjectKind::ServiceAccount)
                .map(|s| {
                    approvers::service_account_tokens(
                        s.namespace.as_deref().unwrap_or_default(),
                        &s.name,
                    )
                })
                .collect();
            approvers::unauthorized(
                ctx,
                request.annotations(),
                |role| {
                    if !stages.iter().any(|r| r == role) {
                        None
                    } else if cluster_wide.iter().any(|r| r == role) {
                        Some(vec![None])
                    } else {
                        Some(scopes.clone())
                    }
                },
                &controls,
            )
            .await?
        }
        _ => Vec::new(),
    };
    let integrity_problem = ctx.integrity.problem();
    let plan = kind::plan(&kind::Observation {
        approvals_unverified: integrity_problem.as_deref(),
        unauthorized_decisions: &unauthorized,
        requester: &request.spec.requester,
        filed_by,
        sealer: ctx.sealer("AccessRequest", request),
        annotations: request
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&no_annotations),
        created: request.metadata.creation_timestamp.as_ref().map(|t| t.0),
        generation: request.metadata.generation,
        current: request.status.as_ref(),
        accepted: match (&accepted, governing) {
            (Ok(accepted), Some(policy)) => Ok(kind::Accepted {
                request: accepted,
                stages: &policy.spec.approvals,
                pending_timeout: policy.spec.pending_timeout.as_deref(),
                findings: checks.findings.clone(),
                high_risk: checks.high_risk,
                sod_denial: checks.denied_by_sod.clone(),
                bindings: bindings.iter().map(Binding::reference).collect(),
            }),
            (Err(refusal), _) => Err(refusal.clone()),
            (Ok(_), None) => Err(crate::lifecycle::Refusal::new(
                reason::POLICY_NOT_FOUND,
                "the governing AccessPolicy disappeared",
            )),
        },
        now,
    });

    // Act. A window the decision opens is recorded before any binding exists, so that access
    // never exists without its expiry on record; a lost write race decides again from a fresh read.
    let mut desired = plan.status.clone();
    let decided_from = request.status.clone();
    let recorded;
    let request = if plan.access == Access::Provide
        && request.status.as_ref().and_then(|s| s.grant.as_ref()) != desired.grant.as_ref()
    {
        // Recorded as Approved: Active (and Granted) only once the bindings exist.
        let mut opening = desired.clone();
        opening.phase = Some(AccessPhase::Approved);
        conditions::restore(
            &mut opening.conditions,
            request
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            &[GRANTED, READY],
        );
        match report(ctx, request, &opening, &plan).await? {
            Written::Stale => return Ok(Action::requeue(status::STALE_RETRY)),
            Written::Unchanged => request,
            Written::Yes(version) => {
                recorded = status::recorded(request, &opening, version);
                &recorded
            }
        }
    } else {
        request
    };
    let wanted = if plan.access == Access::Provide {
        bindings.as_slice()
    } else {
        &[]
    };
    let was_active = phase == Some(AccessPhase::Active);
    // A grant that may exist (its window is recorded and the request has not ended yet) is
    // removed by name too.
    let may_exist = !phase.is_some_and(AccessPhase::is_terminal);
    match converge(ctx, request, wanted, may_exist).await {
        Ok(repaired) if repaired && was_active && plan.access == Access::Provide => {
            status::publish(
                ctx,
                request,
                EventType::Warning,
                "DriftRepaired",
                "a managed binding was edited or deleted; restored to the approved state",
            )
            .await;
        }
        Ok(true) => ctx
            .metrics
            .bindings_changed(decided_from.as_ref(), &desired, Timestamp::now()),
        Ok(false) => {}
        Err(err) if plan.access == Access::Remove => {
            status::record_removal(
                &mut desired.conditions,
                Some(&err),
                request.metadata.generation,
                now,
            );
            report(ctx, request, &desired, &plan).await?;
            return Err(err);
        }
        Err(err) => {
            // A grant that could not be provisioned whole must not exist in part: the retry
            // provisions it whole within the recorded window.
            if !was_active {
                converge(ctx, request, &[], true).await?;
            }
            provisioning_failed(
                &mut desired,
                request.status.as_ref(),
                &err,
                request.metadata.generation,
                now,
            );
            report(ctx, request, &desired, &plan).await?;
            return Err(err);
        }
    }
    if plan.access == Access::Remove {
        status::record_removal(
            &mut desired.conditions,
            None,
            request.metadata.generation,
            now,
        );
    }

    if let Ok(accepted) = &accepted
        && desired.phase != phase
    {
        access_verification::verify(ctx, accepted, phase, &mut desired, now).await;
    }

    // Report.
    if report(ctx, request, &desired, &plan).await? == Written::Stale {
        return Ok(Action::requeue(status::STALE_RETRY));
    }
    ctx.reset_backoff(request);
    Ok(super::next_check(plan.wake_at, now, ctx.resync_period))
}

/// Makes the bindings of this request exactly `wanted`; true when something had to change.
async fn converge(
    ctx: &Context,
    request: &AccessRequest,
    wanted: &[Binding],
    by_name: bool,
) -> Result<bool, Error> {
    let namespace = request.namespace().unwrap_or_default();
    let existing = rbac::owned(
        &namespace,
        &request.name_any(),
        &ctx.role_bindings.state(),
        &ctx.cluster_role_bindings.state(),
    );
    let mut repair = rbac::repair(wanted, &existing);
    // Removal also goes by name: a binding whose owner label someone stripped, or that the cache
    // has not seen yet, is still named in the recorded grant. Only this request's own name is
    // taken from there, so that a status can never make the operator delete another binding.
    if wanted.is_empty() && by_name {
        let own_name = rbac::binding_name(&namespace, &request.name_any());
        let recorded = request
            .status
            .as_ref()
            .and_then(|s| s.grant.as_ref())
            .map(|g| g.bindings.as_slice())
            .unwrap_or_default();
        for reference in recorded {
            if reference.name == own_name && !repair.delete.contains(reference) {
                repair.delete.push(reference.clone());
            }
        }
    }
    for reference in &repair.delete {
        rbac::delete(&ctx.client, reference).await?;
    }
    for binding in &repair.create {
        rbac::apply(&ctx.client, binding).await?;
    }
    for binding in &repair.restore {
        rbac::restore(&ctx.client, binding, &existing).await?;
    }
    Ok(!repair.is_empty())
}

/// Deleting a request revokes at once: every binding goes before the finalizer is removed.
async fn cleanup(request: &AccessRequest, ctx: &Context) -> Result<Action, Error> {
    converge(ctx, request, &[], true).await?;
    if request.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Active) {
        status::publish(
            ctx,
            request,
            EventType::Normal,
            reason::REVOKED,
            "request deleted; access removed",
        )
        .await;
    }
    tracing::info!(
        target: "audit",
        kind = "AccessRequest",
        namespace = request.namespace().unwrap_or_default(),
        name = request.name_any(),
        requester = request.spec.requester,
        decision = "Deleted",
        "access request deleted; any access it granted was removed"
    );
    Ok(Action::await_change())
}

/// Writes the status when it changed, with an Event per condition transition, the reminder, and
/// one audit line.
async fn report(
    ctx: &Context,
    request: &AccessRequest,
    desired: &AccessRequestStatus,
    plan: &Plan,
) -> Result<Written, Error> {
    let current = request.status.as_ref();
    let written = status::apply(ctx, request, current, desired).await?;
    if matches!(written, Written::Yes(_)) {
        let before = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        status::publish_transitions(ctx, request, before, &desired.conditions).await;
        let new_findings: Vec<&str> = desired
            .findings
            .iter()
            .filter(|f| !current.is_some_and(|c| c.findings.contains(f)))
            .map(|f| f.message.as_str())
            .collect();
        if !new_findings.is_empty() {
            status::publish(
                ctx,
                request,
                EventType::Warning,
                "Findings",
                &new_findings.join("; "),
            )
            .await;
        }
        if current.and_then(|s| s.phase) != desired.phase {
            audit(request, desired);
        }
    }
    if let Some(reminder) = &plan.reminder {
        status::publish(
            ctx,
            request,
            EventType::Normal,
            "ApprovalReminder",
            reminder,
        )
        .await;
    }
    Ok(written)
}

/// Approved, but the grant could not be provisioned: back to `Approved` (retried), with the
/// condition naming the error and its fix. Condition times are those of the last written status,
/// so retries that fail the same way do not rewrite it.
fn provisioning_failed(
    status: &mut AccessRequestStatus,
    previous: Option<&AccessRequestStatus>,
    err: &Error,
    generation: Option<i64>,
    now: Timestamp,
) {
    // The window stays recorded: the retry provisions within it, and the expiry never moves.
    status.phase = Some(AccessPhase::Approved);
    let message = format!("approved, but provisioning failed: {err}");
    conditions::restore(
        &mut status.conditions,
        previous
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default(),
        &[GRANTED, READY],
    );
    conditions::set_conditions(
        &mut status.conditions,
        &[GRANTED, READY],
        false,
        reason::PROVISIONING_FAILED,
        &message,
        generation,
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
    );
}

/// The rules of the requested role, or None when it does not exist (the checks then fail closed).
pub(super) async fn role_rules(
    ctx: &Context,
    request: &AcceptedRequest,
) -> Result<Option<Vec<PolicyRule>>, Error> {
    let observe = |source| Error::Observe {
        what: "the requested role",
        source,
    };
    match request.role.kind {
        RoleKind::ClusterRole => Ok(Api::<ClusterRole>::all(ctx.client.clone())
            .get_opt(&request.role.name)
            .await
            .map_err(observe)?
            .map(|r| r.rules.unwrap_or_default())),
        // A Role of that name in each target namespace: all of their rules count, and one that
        // is missing makes the whole grant unreadable (fail closed).
        RoleKind::Role => {
            let mut rules = Vec::new();
            for namespace in &request.namespaces {
                let role = Api::<Role>::namespaced(ctx.client.clone(), namespace)
                    .get_opt(&request.role.name)
                    .await
                    .map_err(observe)?;
                match role {
                    Some(role) => rules.extend(role.rules.unwrap_or_default()),
                    None => return Ok(None),
                }
            }
            Ok(Some(rules))
        }
    }
}

/// Every RoleBinding and ClusterRoleBinding in the cluster, for the existing-access and
/// separation-of-duties checks.
pub(super) fn existing_bindings(ctx: &Context) -> Vec<ExistingBinding> {
    let role_bindings = ctx.role_bindings.state();
    let cluster_bindings = ctx.cluster_role_bindings.state();
    role_bindings
        .iter()
        .filter_map(|rb| ExistingBinding::from_role_binding(rb))
        .chain(
            cluster_bindings
                .iter()
                .filter_map(|crb| ExistingBinding::from_cluster_role_binding(crb)),
        )
        .collect()
}

/// One structured line per phase change, for a SIEM.
fn audit(request: &AccessRequest, status: &AccessRequestStatus) {
    let ready = conditions::find(&status.conditions, READY);
    let approvers: Vec<String> = status
        .approvals
        .iter()
        .map(|a| format!("{}:{}:{}", a.role, a.user, a.decision))
        .collect();
    tracing::info!(
        target: "audit",
        kind = "AccessRequest",
        namespace = request.namespace().unwrap_or_default(),
        name = request.name_any(),
        requester = request.spec.requester,
        role = request.spec.role.name,
        phase = status.phase.map(|p| p.to_string()).unwrap_or_default(),
        policy = status.policy.as_deref().unwrap_or_default(),
        approvals = approvers.join(","),
        expires_at = status.grant.as_ref().map(|g| g.expires_at.0.to_string()).unwrap_or_default(),
        reason = ready.map(|c| c.reason.as_str()).unwrap_or_default(),
        message = ready.map(|c| c.message.as_str()).unwrap_or_default(),
        "access request decision"
    );
}
