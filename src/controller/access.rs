//! The AccessRequest in the one reconciler ([`super::reconciler`]): observe its policy, the RBAC
//! around it, the requested role's rules and its approvers' rights; decide with
//! [`crate::access::kind::plan`]; provide its RoleBindings; prove the grant with the API server.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::events::EventType;
use futures::Stream;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::rbac::v1::PolicyRule;
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, ResourceExt};

use super::lineage::{self, Links, Peers};
use super::reconciler::{self, Note, Planned, Reconciled};
use super::{Context, Error, approvers};
use crate::access::bindings as rbac;
use crate::access::findings::{self, Checks};
use crate::access::kind::{self, AccessKind};
use crate::access::verification::{self, Proving};
use crate::access::{self as policy_check, AcceptedRequest};
use crate::api::Phase;
use crate::api::RecordedObject;
use crate::api::common::{RoleKind, SubjectKind};
use crate::api::conditions::{ConditionUpdate, reason};
use crate::api::{AccessPolicy, AccessRequest, AccessRequestStatus, FILED_BY_ANNOTATION};
use crate::apply::{self, Applied, Object as Binding, OwnerKind};
use crate::lifecycle::eligible::Approvers;
use crate::lifecycle::{self, Refusal, duration, narrowing, record};
use kube::runtime::reflector::ObjectRef;

/// Finalizer that makes deleting a request revoke its access before the object goes.
pub const FINALIZER: &str = "gatehouse.dev/revoke-access";

/// Reconciles every AccessRequest until `stop`; `policy_changes` re-checks them all whenever an
/// AccessPolicy changes.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let metrics = ctx.metrics.clone();
    reconciler::run::<AccessRequest>(ctx, policy_changes, stop, |controller, store| {
        metrics.count_requests(store);
        controller
    })
    .await;
}

/// What the decision of a request needs, read once per reconcile.
pub struct Observed {
    accepted: Result<AcceptedRequest, Refusal>,
    policy: Option<Arc<AccessPolicy>>,
    checks: Checks,
    /// The requested role's rules, when they were read (for the checks); `Some(None)` when the
    /// role does not exist.
    rules: Option<Option<Vec<PolicyRule>>>,
    unauthorized: Vec<(String, String)>,
    approvers: Approvers,
    integrity_problem: Option<String>,
    links: lineage::Observed,
    /// How the approvals narrowed the request, read once for the checks and the decision.
    narrowed: narrowing::Narrowed,
}

impl Reconciled for AccessRequest {
    type Core = AccessKind;
    type Observed = Observed;
    const FINALIZER: &'static str = FINALIZER;
    const OWNER: OwnerKind = OwnerKind::AccessRequest;

    async fn observe(&self, ctx: &Context) -> Result<Observed, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let filed_by = self
            .annotations()
            .get(FILED_BY_ANNOTATION)
            .map(String::as_str);
        let policies = ctx.access_policies.state();
        let policy_refs: Vec<&AccessPolicy> = policies.iter().map(Arc::as_ref).collect();
        let accepted = policy_check::check_on_behalf(&self.spec, filed_by).and_then(|()| {
            policy_check::accept(
                &self.spec,
                &namespace,
                &policy_refs,
                &ctx.namespace_labels(),
            )
        });
        let policy = accepted.as_ref().ok().and_then(|a| {
            policies
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(a.policy.as_str()))
                .cloned()
        });
        let phase = self.status.as_ref().and_then(|s| s.phase);
        let awaiting_decision =
            phase.is_none_or(|p| !p.is_terminal() && p != crate::api::AccessPhase::Active);
        let mut rules = None;
        let mut checks = Checks::default();
        if let (Ok(accepted), Some(policy), true) = (&accepted, &policy, awaiting_decision) {
            let read = role_rules(ctx, accepted);
            checks = findings::check(
                accepted,
                &policy.spec,
                &ctx.existing_bindings.reaching(&accepted.subjects),
                read.as_deref(),
            );
            rules = Some(read);
        }
        let narrowed = accepted
            .as_ref()
            .map(|a| narrowing::read(self.annotations(), &policy_check::asked(a)))
            .unwrap_or_default();
        // Also while active: the approvals that keep a grant are re-derived on every reconcile.
        let unauthorized = match (&accepted, &policy) {
            (Ok(accepted), Some(policy)) if !phase.is_some_and(|p| p.is_terminal()) => {
                unauthorized_decisions(ctx, self, accepted, policy, &narrowed).await?
            }
            _ => Vec::new(),
        };
        let approvers = match (&accepted, &policy) {
            (Ok(accepted), Some(policy)) => {
                approver_scopes(&namespace, accepted, policy, |roles| {
                    ctx.approvers(&self.spec.requester, roles)
                })
            }
            _ => ctx.approvers(&self.spec.requester, []),
        };
        Ok(Observed {
            accepted,
            policy,
            checks,
            rules,
            unauthorized,
            approvers,
            integrity_problem: ctx.integrity.problem(),
            links: lineage::observe(self, &ctx.access_peers),
            narrowed,
        })
    }

    fn decide(
        &self,
        ctx: &Context,
        observed: &Observed,
        now: Timestamp,
    ) -> Planned<AccessRequestStatus> {
        let namespace = self.namespace().unwrap_or_default();
        let no_annotations = BTreeMap::new();
        let annotations = self
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&no_annotations);
        let narrowed = &observed.narrowed;
        let bindings = observed
            .accepted
            .as_ref()
            .map(|a| {
                rbac::desired(
                    &namespace,
                    &self.name_any(),
                    &policy_check::narrow(a, narrowed),
                )
            })
            .unwrap_or_default();
        let checks = &observed.checks;
        let decision = kind::plan(&kind::Observation {
            approvals_unverified: observed.integrity_problem.as_deref(),
            unauthorized_decisions: &observed.unauthorized,
            approvers: &observed.approvers,
            requester: &self.spec.requester,
            filed_by: self
                .annotations()
                .get(FILED_BY_ANNOTATION)
                .map(String::as_str),
            sealer: ctx.sealer("AccessRequest", self),
            annotations,
            created: self.metadata.creation_timestamp.as_ref().map(|t| t.0),
            generation: self.metadata.generation,
            start_at: self.spec.start_at.as_ref().map(|t| t.0),
            current: self.status.as_ref(),
            accepted: match (&observed.accepted, &observed.policy) {
                (Ok(accepted), Some(policy)) => Ok(kind::Accepted {
                    request: accepted,
                    narrowed,
                    stages: &policy.spec.approvals,
                    pending_timeout: policy.spec.pending_timeout.as_deref(),
                    findings: checks.findings.clone(),
                    high_risk: checks.high_risk,
                    sod_denial: checks.denied_by_sod.clone(),
                    bindings: bindings.iter().map(Binding::reference).collect(),
                }),
                (Err(refusal), _) => Err(refusal.clone()),
                (Ok(_), None) => Err(Refusal::new(
                    reason::POLICY_NOT_FOUND,
                    "the governing AccessPolicy disappeared",
                )),
            },
            extension: observed.links.extension(
                "request",
                &self.spec.requester,
                observed
                    .policy
                    .as_ref()
                    .and_then(|p| p.spec.max_total_duration.as_deref())
                    .and_then(|d| duration::parse(d).ok()),
                now,
            ),
            extended_by: observed.links.extended_by.clone(),
            superseded_by: observed.links.superseded_by.clone(),
            now,
        });
        Planned {
            decision,
            provided: bindings,
        }
    }

    async fn converge(
        &self,
        ctx: &Context,
        wanted: &[Binding],
        by_name: bool,
    ) -> Result<Applied, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let owner = apply::Owner::new(OwnerKind::AccessRequest, &namespace, &self.name_any());
        let mut changes = apply::diff(wanted, &ctx.owned.owned_by(&owner));
        // Removal also goes by name: a binding whose owner label someone stripped, or that the
        // cache has not seen yet, is still named in the recorded grant. Only this request's own
        // name is taken from there, so that a status can never make the operator delete another
        // binding.
        if wanted.is_empty() && by_name {
            let own_name = rbac::binding_name(&namespace, &self.name_any());
            let recorded = self
                .status
                .as_ref()
                .and_then(|s| s.grant.as_ref())
                .map(|g| g.bindings.as_slice())
                .unwrap_or_default();
            for key in recorded
                .iter()
                .filter(|reference| reference.name == own_name)
                .filter_map(apply::Key::of_binding)
            {
                changes.delete_also(key);
            }
        }
        Ok(apply::execute(&ctx.client, &ctx.owned, &changes, &owner, &[]).await?)
    }

    async fn prove(
        &self,
        ctx: &Context,
        observed: &Observed,
        before: Option<Phase>,
        after: Option<Phase>,
    ) -> Option<ConditionUpdate> {
        let proving = match (before, after) {
            (_, Some(Phase::Active)) => Proving::Started,
            (Some(Phase::Active), Some(Phase::Expired | Phase::Revoked)) => Proving::Ended,
            _ => return None,
        };
        // What was bound: the namespaces the approvals narrowed it to.
        let request = &policy_check::narrow(observed.accepted.as_ref().ok()?, &observed.narrowed);
        let rules = match &observed.rules {
            Some(rules) => rules.clone(),
            None => role_rules(ctx, request),
        };
        let permission = rules.as_deref().and_then(verification::probe);
        let (Some(permission), Some(subject)) = (permission, request.subjects.first()) else {
            return Some(verification::unprovable(
                proving,
                "the role has no permission without wildcards to ask the API server about".into(),
            ));
        };
        let namespace = request.namespaces.first().map(String::as_str);
        let review = SubjectAccessReview {
            spec: verification::review(subject, &permission, namespace),
            ..Default::default()
        };
        let where_ = namespace
            .map(|ns| format!("in {ns}"))
            .unwrap_or_else(|| "cluster-wide".into());
        let answer = review_until(ctx, &review, proving == Proving::Started)
            .await
            .map_err(|err| err.to_string());
        Some(verification::proof(
            proving,
            answer,
            &subject.name,
            &permission,
            &where_,
            || other_grants(ctx, request, subject),
        ))
    }

    fn notes(
        &self,
        before: Option<&AccessRequestStatus>,
        after: &AccessRequestStatus,
        converged: &Applied,
        executed_before: bool,
    ) -> Vec<Note> {
        let mut notes = Vec::new();
        let new_findings: Vec<&str> = after
            .findings
            .iter()
            .filter(|f| !before.is_some_and(|b| b.findings.contains(f)))
            .map(|f| f.message.as_str())
            .collect();
        if !new_findings.is_empty() {
            notes.push(Note {
                type_: EventType::Warning,
                reason: "Findings",
                message: new_findings.join("; "),
            });
        }
        let still_active = after.phase == Some(crate::api::AccessPhase::Active);
        if executed_before && still_active && !converged.written.is_empty() {
            notes.push(Note {
                type_: EventType::Warning,
                reason: "DriftRepaired",
                message: "a managed binding was edited or deleted; restored to the approved state"
                    .into(),
            });
        }
        notes
    }

    fn measure(
        ctx: &Context,
        before: Option<&AccessRequestStatus>,
        after: &AccessRequestStatus,
        now: Timestamp,
    ) {
        ctx.metrics.bindings_changed(before, after, now);
    }

    fn record_facts(
        &self,
        ctx: &Context,
        status: Option<&AccessRequestStatus>,
        deleted_at: Option<Timestamp>,
    ) -> record::Facts {
        let namespace = self.namespace().unwrap_or_default();
        let scope = policy_check::describe_grant_scope(
            self.spec.cluster_wide,
            &policy_check::target_namespaces(&self.spec, &namespace),
        );
        let governing = status
            .and_then(|s| s.policy.as_deref())
            .and_then(|name| ctx.access_policies.get(&ObjectRef::new(name)));
        record::Facts {
            object: RecordedObject {
                kind: "AccessRequest".into(),
                namespace,
                name: self.name_any(),
                uid: self.uid().unwrap_or_default(),
            },
            requester: self.spec.requester.clone(),
            filed_by: self.annotations().get(FILED_BY_ANNOTATION).cloned(),
            subjects: policy_check::subjects(&self.spec),
            what: if self.spec.cluster_wide {
                format!("{} {scope}", self.spec.role)
            } else {
                format!("{} in {scope}", self.spec.role)
            },
            why: self.spec.justification.clone(),
            share: None,
            findings: status.map(|s| s.findings.clone()).unwrap_or_default(),
            policy_generation: governing.as_ref().and_then(|p| p.metadata.generation),
            policy_retention: governing
                .as_ref()
                .and_then(|p| p.spec.record_retention.as_deref())
                .and_then(|r| lifecycle::duration::parse(r).ok()),
            revoked_by: lifecycle::protocol::revoked_by(self.annotations()).map(str::to_string),
            deleted_at,
        }
    }

    fn peers(ctx: &Context) -> &Peers<Self> {
        &ctx.access_peers
    }

    fn links(&self) -> Links<'_> {
        Links {
            requester: &self.spec.requester,
            extends: self.spec.extends.as_deref(),
            supersedes: self.spec.supersedes.as_deref(),
        }
    }

    fn covers(&self, original: &Self) -> Result<(), String> {
        let approved = original
            .status
            .as_ref()
            .and_then(|s| s.scope.as_ref())
            .map(|scope| scope.approved.namespaces.as_slice())
            .filter(|namespaces| !namespaces.is_empty());
        policy_check::covers(
            &self.spec,
            &original.spec,
            &self.namespace().unwrap_or_default(),
            approved,
        )
    }

    fn audit(&self, status: &AccessRequestStatus) {
        let ready = crate::api::conditions::find(&status.conditions, crate::api::conditions::READY);
        let approvers: Vec<String> = status
            .approvals
            .iter()
            .map(|a| format!("{}:{}:{}", a.role, a.user, a.decision))
            .collect();
        tracing::info!(
            target: "audit",
            kind = "AccessRequest",
            namespace = self.namespace().unwrap_or_default(),
            name = self.name_any(),
            requester = self.spec.requester,
            role = self.spec.role.name,
            phase = status.phase.map(|p| p.to_string()).unwrap_or_default(),
            policy = status.policy.as_deref().unwrap_or_default(),
            approvals = approvers.join(","),
            expires_at = status.grant.as_ref().map(|g| g.expires_at.0.to_string()).unwrap_or_default(),
            reason = ready.map(|c| c.reason.as_str()).unwrap_or_default(),
            message = ready.map(|c| c.message.as_str()).unwrap_or_default(),
            "access request decision"
        );
    }

    fn notification_settings(ctx: &Context, policy: &str) -> lifecycle::notify::Settings {
        ctx.access_policies
            .get(&ObjectRef::<crate::api::AccessPolicy>::new(policy))
            .map(|p| {
                lifecycle::notify::Settings::new(
                    &p.spec.notifications,
                    p.spec.notify_expiring_before.as_deref(),
                )
            })
            .unwrap_or_default()
    }

    fn audit_deleted(&self, removed: &[String]) {
        tracing::info!(
            target: "audit",
            kind = "AccessRequest",
            namespace = self.namespace().unwrap_or_default(),
            name = self.name_any(),
            requester = self.spec.requester,
            removed = removed.join(","),
            decision = "Deleted",
            "access request deleted; any access it granted was removed"
        );
    }
}

/// The decision annotations that do not count, with why. Admission checks an approver's right in
/// the request's namespace; the grant may reach others (or the whole cluster), and some roles
/// count only cluster-wide. Only the policy's stages are checked: other roles' annotations never
/// count anyway. Whoever can act as a ServiceAccount subject decides nothing on its access.
async fn unauthorized_decisions(
    ctx: &Context,
    request: &AccessRequest,
    accepted: &AcceptedRequest,
    policy: &AccessPolicy,
    narrowed: &narrowing::Narrowed,
) -> Result<Vec<(String, String)>, Error> {
    let cluster_wide = &policy.spec.cluster_wide_approvers;
    let stages: Vec<&str> = policy
        .spec
        .approvals
        .iter()
        .map(|s| s.role.as_str())
        .collect();
    let managed = lifecycle::protocol::manager_roles(&policy.spec.approvals);
    let scopes: Vec<Option<String>> = if accepted.cluster_wide {
        vec![None]
    } else {
        accepted.namespaces.iter().cloned().map(Some).collect()
    };
    let controls: Vec<approvers::Control> = accepted
        .subjects
        .iter()
        .filter(|s| s.kind == SubjectKind::ServiceAccount)
        .map(|s| {
            approvers::service_account_tokens(s.namespace.as_deref().unwrap_or_default(), &s.name)
        })
        .collect();
    approvers::unauthorized(ctx, request.annotations(), |role| {
        if !stages.contains(&role) {
            return None;
        }
        Some(approvers::Checks {
            scopes: if managed.iter().any(|m| m == role) {
                // The org chart decides who may (lifecycle::protocol::counted); RBAC grants
                // nothing there, and the controls still apply.
                Vec::new()
            } else if cluster_wide.iter().any(|r| r == role) {
                vec![None]
            } else if let Some(approved) = narrowed.namespaces_of(role) {
                // An approver who narrowed the namespaces approved only those: their right
                // counts there.
                approved.iter().cloned().map(Some).collect()
            } else {
                scopes.clone()
            },
            controls: &controls,
            recipient_consent: false,
        })
    })
    .await
}

/// Who may decide each approval stage of `policy` on a request in `namespace`: holders of the
/// right in that namespace (where admission checks it) and every namespace the grant reaches,
/// cluster-wide for a cluster-wide grant or a role in `clusterWideApprovers`. `collect` reads
/// them from the caches.
fn approver_scopes(
    namespace: &str,
    accepted: &AcceptedRequest,
    policy: &AccessPolicy,
    collect: impl for<'r> FnOnce(Vec<(&'r str, Vec<Option<&'r str>>)>) -> Approvers,
) -> Approvers {
    let cluster_wide = &policy.spec.cluster_wide_approvers;
    let mut reached: Vec<Option<&str>> = vec![Some(namespace)];
    reached.extend(accepted.namespaces.iter().map(|ns| Some(ns.as_str())));
    let roles = policy
        .spec
        .approvals
        .iter()
        .map(|stage| {
            let role = stage.role.as_str();
            if accepted.cluster_wide || cluster_wide.iter().any(|r| r == role) {
                (role, vec![None])
            } else {
                (role, reached.clone())
            }
        })
        .collect();
    collect(roles)
}

/// The rules of the requested role, or None when it does not exist (the checks then fail closed),
/// from the caches: the watches are as current as a read, and a GET per reconcile was one API
/// call per request for what the operator already holds.
fn role_rules(ctx: &Context, request: &AcceptedRequest) -> Option<Vec<PolicyRule>> {
    match request.role.kind {
        RoleKind::ClusterRole => ctx
            .cluster_roles
            .get(&ObjectRef::new(&request.role.name))
            .map(|r| r.rules.clone().unwrap_or_default()),
        // A Role of that name in each target namespace: all of their rules count, and one that
        // is missing makes the whole grant unreadable (fail closed).
        RoleKind::Role => {
            let mut rules = Vec::new();
            for namespace in &request.namespaces {
                let role = ctx
                    .roles
                    .get(&ObjectRef::new(&request.role.name).within(namespace))?;
                rules.extend(role.rules.clone().unwrap_or_default());
            }
            Some(rules)
        }
    }
}

/// Asks the review until the API server answers `expected`, for up to about 3 s: its RBAC
/// authorizer learns of new and deleted bindings from a cache, a moment after they change. The
/// first review waits for as long as that moment lasted lately ([`verification::AuthorizerLag`]).
async fn review_until(
    ctx: &Context,
    review: &SubjectAccessReview,
    expected: bool,
) -> Result<bool, kube::Error> {
    let api = Api::<SubjectAccessReview>::all(ctx.client.clone());
    let changed = std::time::Instant::now();
    tokio::time::sleep(ctx.authorizer_lag.wait(changed)).await;
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
            ctx.authorizer_lag
                .proved(attempt + 1, changed.elapsed(), std::time::Instant::now());
            break;
        }
    }
    Ok(answer)
}

/// The bindings other than this request's that grant its role to `subject` where it asked for.
fn other_grants(
    ctx: &Context,
    request: &AcceptedRequest,
    subject: &crate::api::common::Subject,
) -> String {
    let sources: Vec<String> = ctx
        .existing_bindings
        .reaching(std::slice::from_ref(subject))
        .into_iter()
        .filter(|b| b.role == request.role && b.subjects.contains(subject))
        .filter(|b| {
            b.namespace
                .as_ref()
                .is_none_or(|ns| request.namespaces.contains(ns))
        })
        .map(|b| b.source)
        .collect();
    if sources.is_empty() {
        "another role, group or binding".into()
    } else {
        sources.join(", ")
    }
}
