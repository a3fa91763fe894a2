//! DataSharingAgreement controller: observe (policy, sources, reviews) → decide
//! ([`kind::plan`]) → act (create, sync or remove the shared objects) → report (status
//! as the sharing record, Events, audit).

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::{Stream, StreamExt, future};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::PartialObjectMeta;
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{self, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};
use tracing::instrument;

use super::status::Written;
use super::{Context, Error, approvers, status};
use crate::api::conditions::{self, READY, SHARED, reason};
use crate::api::{
    DataSharingAgreement, DataSharingAgreementSpec, DataSharingAgreementStatus,
    FILED_BY_ANNOTATION, OWNER_LABEL, SharingPhase, SharingPolicy, SourceKind, TransferMethod,
};
use crate::lifecycle::Refusal;
use crate::provision::sharing::{self as shares, Source, Target};
use crate::sharing;
use crate::sharing::classify::{self, ObservedSource};
use crate::sharing::kind::{self, Checked, Share};
use crate::sharing::{combination, reviews, whole_objects};

/// Finalizer that makes deleting an agreement remove what it shared before the object goes.
pub const FINALIZER: &str = "gatehouse.dev/remove-share";

/// Reconciles every DataSharingAgreement until `stop`; `policy_changes` re-checks them all
/// whenever a SharingPolicy changes. A change to a source Secret or ConfigMap (only its metadata
/// is watched: values are read when needed, never cached) reconciles the agreements naming it, so
/// rotations propagate at once; a change to a shared object reconciles its agreement, so edits
/// are reverted at once.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(
        Api::<DataSharingAgreement>::all(ctx.client.clone()),
        watcher::Config::default(),
    );
    let agreements = controller.store();
    tokio::spawn(sweep_orphans(ctx.clone(), agreements.clone()));
    ctx.metrics.count_agreements(agreements.clone());
    let owned = watcher::Config::default().labels(OWNER_LABEL);
    let secrets = watcher(
        Api::<PartialObjectMeta<Secret>>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let config_maps = watcher(
        Api::<PartialObjectMeta<ConfigMap>>::all(ctx.client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .touched_objects();
    let by_secret = {
        let agreements = agreements.clone();
        move |meta: PartialObjectMeta<Secret>| affected(&agreements, SourceKind::Secret, &meta)
    };
    let by_config_map = {
        let agreements = agreements.clone();
        move |meta: PartialObjectMeta<ConfigMap>| {
            affected(&agreements, SourceKind::ConfigMap, &meta)
        }
    };
    controller
        .with_config(controller::Config::default().concurrency(8))
        .watches_stream(secrets, by_secret)
        .watches_stream(config_maps, by_config_map)
        .watches(Api::<Role>::all(ctx.client.clone()), owned.clone(), |r| {
            owner_of(&r)
        })
        .watches(Api::<RoleBinding>::all(ctx.client.clone()), owned, |rb| {
            owner_of(&rb)
        })
        .reconcile_all_on(policy_changes)
        .graceful_shutdown_on(stop)
        .run(
            super::measured(reconcile),
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

/// The agreements a changed Secret or ConfigMap concerns: the one it was made for, and every
/// agreement in its namespace that names it as a source.
fn affected<K: Resource<DynamicType = ()>>(
    agreements: &Store<DataSharingAgreement>,
    kind: SourceKind,
    object: &PartialObjectMeta<K>,
) -> Vec<ObjectRef<DataSharingAgreement>> {
    let namespace = object.namespace().unwrap_or_default();
    let name = object.name_any();
    let names_it = |spec: &DataSharingAgreementSpec| {
        spec.data.iter().any(|item| {
            let source = match kind {
                SourceKind::Secret => &item.secret,
                SourceKind::ConfigMap => &item.config_map,
            };
            source.as_deref() == Some(name.as_str())
        })
    };
    let made_for =
        shares::agreement_of(&object.metadata).map(|(ns, name)| ObjectRef::new(&name).within(&ns));
    agreements
        .state()
        .iter()
        .filter(|a| a.namespace().as_deref() == Some(namespace.as_str()) && names_it(&a.spec))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .chain(made_for)
        .collect()
}

fn owner_of<K: Resource>(object: &K) -> Option<ObjectRef<DataSharingAgreement>> {
    let (namespace, name) = shares::agreement_of(object.meta())?;
    Some(ObjectRef::new(&name).within(&namespace))
}

/// Deletes objects made for agreements that no longer exist (a finalizer removed by hand, or a
/// deletion while the operator was down): nothing shared outlives its agreement. A GET confirms
/// the agreement is really gone before anything is deleted.
async fn sweep_orphans(ctx: Arc<Context>, agreements: Store<DataSharingAgreement>) {
    loop {
        tokio::time::sleep(ctx.sweep_interval).await;
        let objects = match shares::all_owned(&ctx.client).await {
            Ok(objects) => objects,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look for orphaned shares");
                continue;
            }
        };
        let live: BTreeSet<(String, String)> = agreements
            .state()
            .iter()
            .filter(|a| !super::abandoned(Some(a.as_ref()), FINALIZER))
            .map(|a| (a.namespace().unwrap_or_default(), a.name_any()))
            .collect();
        for object in objects {
            let Some((namespace, name)) = object.agreement() else {
                continue;
            };
            if live.contains(&(namespace.clone(), name.clone())) {
                continue;
            }
            let api = Api::<DataSharingAgreement>::namespaced(ctx.client.clone(), &namespace);
            match api.get_opt(&name).await {
                Ok(found) if super::abandoned(found.as_ref(), FINALIZER) => {}
                _ => continue,
            }
            match shares::delete(&ctx.client, &object).await {
                Ok(()) => tracing::info!(
                    target: "audit",
                    object = format!("{} {}", object.kind(), object.describe()),
                    agreement = format!("{namespace}/{name}"),
                    decision = "OrphanRemoved",
                    "removed a shared object whose data sharing agreement no longer exists"
                ),
                Err(err) => tracing::warn!(error = %err, "cannot remove an orphaned share"),
            }
        }
    }
}

#[instrument(skip_all, fields(namespace = agreement.namespace(), name = agreement.name_any()))]
async fn reconcile(
    agreement: Arc<DataSharingAgreement>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let namespace = agreement.namespace().unwrap_or_default();
    let api: Api<DataSharingAgreement> = Api::namespaced(ctx.client.clone(), &namespace);
    finalizer(&api, FINALIZER, agreement, |event| async {
        match event {
            finalizer::Event::Apply(agreement) => apply(&agreement, &ctx).await,
            finalizer::Event::Cleanup(agreement) => cleanup(&agreement, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))
}

async fn apply(agreement: &DataSharingAgreement, ctx: &Context) -> Result<Action, Error> {
    let namespace = agreement.namespace().unwrap_or_default();
    let name = agreement.name_any();
    let spec = &agreement.spec;
    let now = Timestamp::now();
    let phase = agreement.status.as_ref().and_then(|s| s.phase);
    let terminal = phase.is_some_and(SharingPhase::is_terminal);

    // Observe.
    let policies = ctx.sharing_policies.state();
    let policy_refs: Vec<&SharingPolicy> = policies.iter().map(Arc::as_ref).collect();
    let accepted = sharing::accept(spec, &namespace, &policy_refs, &ctx.namespace_labels());
    let (observed, sources) = if terminal {
        (Vec::new(), Vec::new())
    } else {
        read_sources(ctx, &namespace, spec).await?
    };
    let classification = classify::classify(&observed).and_then(|found| {
        whole_objects::check_whole_objects(spec.transfer.method, &observed).map(|()| found)
    });
    let policy = accepted.as_ref().ok().and_then(|a| {
        policy_refs
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(a.policy.as_str()))
    });
    let checked = match (&accepted, &classification, policy) {
        (Ok(accepted), Ok(found), Some(policy)) => combination::check_combination(
            &accepted.policy,
            &policy.spec,
            spec,
            found,
        )
        .map(|gate| Checked {
            policy: accepted.policy.clone(),
            retention: accepted.retention,
            pending_timeout: policy.spec.pending_timeout.clone(),
            required: reviews::required_reviews(&policy.spec.reviews, found, &spec.recipient),
            gate,
        }),
        (Err(refusal), _, _) | (_, Err(refusal), _) => Err(refusal.clone()),
        (Ok(_), Ok(_), None) => Err(Refusal::new(
            reason::POLICY_NOT_FOUND,
            "the governing SharingPolicy disappeared",
        )),
    };

    // Admission checks a reviewer's right in the agreement's namespace, whose admins hold every
    // verb there; roles the policy lists in clusterWideApprovers count only cluster-wide.
    let cluster_wide = policy
        .map(|p| p.spec.cluster_wide_approvers.clone())
        .unwrap_or_default();
    // Also while active: the reviews that keep a share are re-derived on every reconcile. Only
    // required reviews are checked: other roles' annotations never count anyway.
    let required: &[String] = checked
        .as_ref()
        .map(|c| c.required.as_slice())
        .unwrap_or_default();
    // Whoever can read what the share delivers, or act as the recipient, reviews nothing on it.
    let mut controls = Vec::new();
    match (spec.transfer.method, spec.recipient.namespace.as_deref()) {
        (TransferMethod::Copy, Some(recipient)) => controls.push(approvers::secrets_in(recipient)),
        (TransferMethod::Export, _) => controls.extend(
            policy
                .and_then(|p| p.spec.egress_namespace.as_deref())
                .map(approvers::secrets_in),
        ),
        _ => {}
    }
    if let (Some(recipient), Some(account)) = (
        spec.recipient.namespace.as_deref(),
        spec.recipient.service_account.as_deref(),
    ) {
        controls.push(approvers::service_account_tokens(recipient, account));
    }
    let unauthorized = if terminal {
        Vec::new()
    } else {
        approvers::unauthorized(
            ctx,
            agreement.annotations(),
            |role| {
                if !required.iter().any(|r| r == role) {
                    None
                } else if cluster_wide.iter().any(|r| r == role) {
                    Some(vec![None])
                } else {
                    // Admission checked the right in this namespace; the controls remain.
                    Some(Vec::new())
                }
            },
            &controls,
        )
        .await?
    };

    // Decide.
    let no_annotations = Default::default();
    let integrity_problem = ctx.integrity.problem();
    let plan = kind::plan(&kind::Observation {
        unauthorized_decisions: &unauthorized,
        requester: &spec.requester,
        filed_by: agreement
            .annotations()
            .get(FILED_BY_ANNOTATION)
            .map(String::as_str),
        sealer: ctx.sealer("DataSharingAgreement", agreement),
        recipient: kind::recipient_subject(
            spec.recipient.namespace.as_deref(),
            spec.recipient.service_account.as_deref(),
        ),
        annotations: agreement
            .metadata
            .annotations
            .as_ref()
            .unwrap_or(&no_annotations),
        agreement_reference: spec.agreement.as_ref().map(|a| a.reference.as_str()),
        created: agreement.metadata.creation_timestamp.as_ref().map(|t| t.0),
        generation: agreement.metadata.generation,
        current: agreement.status.as_ref(),
        approvals_unverified: integrity_problem.as_deref(),
        accepted: accepted.as_ref().map(|_| ()).map_err(Clone::clone),
        classification,
        checked,
        now,
    });

    // Act.
    let target = Target {
        agreement_namespace: &namespace,
        agreement_name: &name,
        spec,
        egress_namespace: policy.and_then(|p| p.spec.egress_namespace.as_deref()),
    };
    let wanted = match plan.share {
        Share::Execute => shares::desired(&target, &sources),
        Share::Remove => Vec::new(),
    };
    let mut desired = plan.status.clone();
    desired.recipient = Some(sharing::describe_recipient(&spec.recipient));
    // A window the decision opens is recorded before anything is shared, so that no share exists
    // without its retention end on record; a lost write race decides again from a fresh read.
    let window = |status: Option<&DataSharingAgreementStatus>| {
        status
            .and_then(|s| s.share.as_ref())
            .map(|s| (s.activated_at.clone(), s.expires_at.clone()))
    };
    let recorded;
    let agreement = if plan.share == Share::Execute
        && window(agreement.status.as_ref()) != window(Some(&desired))
    {
        // Recorded as Approved: Active (and Shared) only once the shared objects exist.
        let mut opening = desired.clone();
        opening.phase = Some(SharingPhase::Approved);
        conditions::restore(
            &mut opening.conditions,
            agreement
                .status
                .as_ref()
                .map(|s| s.conditions.as_slice())
                .unwrap_or_default(),
            &[SHARED, READY],
        );
        match report(ctx, agreement, &opening).await? {
            Written::Stale => return Ok(Action::requeue(status::STALE_RETRY)),
            Written::Unchanged => agreement,
            Written::Yes(version) => {
                recorded = status::recorded(agreement, &opening, version);
                &recorded
            }
        }
    } else {
        agreement
    };
    let was_active = phase == Some(SharingPhase::Active);
    let already_removed = terminal
        && desired
            .share
            .as_ref()
            .is_none_or(|share| share.removed_at.is_some())
        && agreement.status.as_ref() == Some(&plan.status);
    let converged = if already_removed {
        shares::Converged::default()
    } else {
        match shares::converge(&ctx.client, &target.owner(), &wanted).await {
            Ok(converged) => converged,
            Err(err) if plan.share == Share::Execute => {
                // A share that could not be executed whole must not exist in part; an active one
                // keeps what it had (approved scope, possibly stale) while the sync is retried.
                if !was_active {
                    shares::converge(&ctx.client, &target.owner(), &[]).await?;
                }
                let err = Error::from(err);
                sharing_failed(
                    &mut desired,
                    agreement.status.as_ref(),
                    &err,
                    agreement.metadata.generation,
                    now,
                );
                report(ctx, agreement, &desired).await?;
                return Err(err);
            }
            Err(err) => {
                let err = Error::from(err);
                status::record_removal(
                    &mut desired.conditions,
                    Some(&err),
                    agreement.metadata.generation,
                    now,
                );
                report(ctx, agreement, &desired).await?;
                return Err(err);
            }
        }
    };
    if plan.share == Share::Remove {
        status::record_removal(
            &mut desired.conditions,
            None,
            agreement.metadata.generation,
            now,
        );
    }
    // A sync is what the recipient can see change: written objects, or for a Reference (nothing
    // written) new versions of the sources it reads.
    let mut synced = false;
    let reference = spec.transfer.method == crate::api::TransferMethod::Reference;
    if plan.share == Share::Execute
        && (reference || !converged.written.is_empty())
        && let Some(share) = desired.share.as_mut()
    {
        share.objects = wanted.iter().map(|o| o.record(&sources)).collect();
        synced = kind::record_sync(share, sources.iter().map(Source::version).collect(), now);
    }

    // Report. Nothing more when the status was decided from an outdated object (not written):
    // decided again from a fresh read.
    let written = report(ctx, agreement, &desired).await?;
    if written == Written::Stale {
        return Ok(Action::requeue(status::STALE_RETRY));
    }
    let synced = synced && matches!(written, Written::Yes(_));
    if synced {
        ctx.metrics.share_synced();
    }
    if was_active && synced {
        let note = format!(
            "a source changed; re-shared {}",
            converged.written.join(", ")
        );
        status::publish(ctx, agreement, EventType::Normal, "Synced", &note).await;
        audit_sync(agreement, &desired);
    } else if was_active && !converged.written.is_empty() && plan.share == Share::Execute {
        let note = format!(
            "a shared object was edited or deleted; restored to the approved state: {}",
            converged.written.join(", ")
        );
        status::publish(ctx, agreement, EventType::Warning, "DriftRepaired", &note).await;
    } else if synced {
        audit_sync(agreement, &desired);
    }
    ctx.reset_backoff(agreement);
    Ok(super::next_check(plan.wake_at, now, ctx.resync_period))
}

/// Reads every source the agreement lists: what classification needs (labels, which keys exist)
/// and, for the share, the values of the listed keys only. Other keys are never read into the
/// share.
async fn read_sources(
    ctx: &Context,
    namespace: &str,
    spec: &DataSharingAgreementSpec,
) -> Result<(Vec<ObservedSource>, Vec<Source>), Error> {
    let observe = |source| Error::Observe {
        what: "a source of the data sharing agreement",
        source,
    };
    let mut observed = Vec::new();
    let mut sources = Vec::new();
    for item in &spec.data {
        let Some(listed) = ObservedSource::from_item(item) else {
            continue;
        };
        let found = match listed.kind {
            SourceKind::Secret => Api::<Secret>::namespaced(ctx.client.clone(), namespace)
                .get_opt(&listed.name)
                .await
                .map_err(observe)?
                .map(|secret| {
                    let data = secret.data.unwrap_or_default();
                    (secret.metadata, data)
                }),
            SourceKind::ConfigMap => Api::<ConfigMap>::namespaced(ctx.client.clone(), namespace)
                .get_opt(&listed.name)
                .await
                .map_err(observe)?
                .map(|config_map| {
                    let text = config_map
                        .data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, ByteString(v.into_bytes())));
                    let binary = config_map.binary_data.unwrap_or_default();
                    (config_map.metadata, text.chain(binary).collect())
                }),
        };
        let Some((metadata, data)) = found else {
            observed.push(listed);
            continue;
        };
        sources.push(Source {
            kind: listed.kind,
            name: listed.name.clone(),
            resource_version: metadata.resource_version.clone().unwrap_or_default(),
            values: data
                .iter()
                .filter(|(key, _)| listed.listed_keys.contains(key))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        });
        observed.push(listed.found(metadata.labels.as_ref(), data.into_keys()));
    }
    Ok((observed, sources))
}

/// Deleting an agreement ends the share at once: every shared object goes before the finalizer is
/// removed.
async fn cleanup(agreement: &DataSharingAgreement, ctx: &Context) -> Result<Action, Error> {
    let owner = crate::api::owner_label_value(
        "DataSharingAgreement",
        &agreement.namespace().unwrap_or_default(),
        &agreement.name_any(),
    );
    let converged = shares::converge(&ctx.client, &owner, &[]).await?;
    if !converged.deleted.is_empty() {
        let note = format!(
            "agreement deleted; removed {}",
            converged.deleted.join(", ")
        );
        status::publish(ctx, agreement, EventType::Normal, reason::REVOKED, &note).await;
    }
    tracing::info!(
        target: "audit",
        kind = "DataSharingAgreement",
        namespace = agreement.namespace().unwrap_or_default(),
        name = agreement.name_any(),
        requester = agreement.spec.requester,
        removed = converged.deleted.join(","),
        decision = "Deleted",
        "data sharing agreement deleted; everything it shared was removed"
    );
    Ok(Action::await_change())
}

/// Writes the status when it changed, with an Event per condition transition and an audit line
/// per phase change.
async fn report(
    ctx: &Context,
    agreement: &DataSharingAgreement,
    desired: &DataSharingAgreementStatus,
) -> Result<Written, Error> {
    let current = agreement.status.as_ref();
    let written = status::apply(ctx, agreement, current, desired).await?;
    if matches!(written, Written::Yes(_)) {
        let before = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
        status::publish_transitions(ctx, agreement, before, &desired.conditions).await;
        if current.and_then(|s| s.phase) != desired.phase {
            audit(agreement, desired);
        }
    }
    Ok(written)
}

/// Approved, but the share could not be executed: the condition names the error and its fix. A
/// share never executed goes back to `Approved`, keeping its recorded window (the retry executes
/// within it); one executed before keeps its phase and record. Either way retention counts from
/// the activation. Condition times are those of the last written status, so retries do not
/// rewrite it.
fn sharing_failed(
    status: &mut DataSharingAgreementStatus,
    previous: Option<&DataSharingAgreementStatus>,
    err: &Error,
    generation: Option<i64>,
    now: Timestamp,
) {
    let executed_before = previous.and_then(|p| p.share.as_ref()).is_some();
    if executed_before {
        status.phase = previous.and_then(|p| p.phase);
        status.share = previous.and_then(|p| p.share.clone());
    } else {
        // The window stays recorded: the retry executes within it, and retention never moves.
        status.phase = Some(SharingPhase::Approved);
    }
    let message = format!("approved, but the share could not be executed: {err}");
    conditions::restore(
        &mut status.conditions,
        previous
            .map(|p| p.conditions.as_slice())
            .unwrap_or_default(),
        &[SHARED, READY],
    );
    conditions::set_conditions(
        &mut status.conditions,
        &[SHARED, READY],
        false,
        reason::PROVISIONING_FAILED,
        &message,
        generation,
        Time(now),
    );
}

/// One structured line per phase change, for a SIEM: what, to whom, how, under which agreement.
fn audit(agreement: &DataSharingAgreement, status: &DataSharingAgreementStatus) {
    let ready = conditions::find(&status.conditions, READY);
    let approvers: Vec<String> = status
        .approvals
        .iter()
        .map(|a| format!("{}:{}:{}", a.role, a.user, a.decision))
        .collect();
    let data: Vec<String> = agreement
        .spec
        .data
        .iter()
        .map(|item| {
            let object = item
                .secret
                .as_ref()
                .map(|s| format!("Secret/{s}"))
                .or_else(|| item.config_map.as_ref().map(|c| format!("ConfigMap/{c}")))
                .unwrap_or_default();
            format!("{object}[{}]", item.keys.join(","))
        })
        .collect();
    tracing::info!(
        target: "audit",
        kind = "DataSharingAgreement",
        namespace = agreement.namespace().unwrap_or_default(),
        name = agreement.name_any(),
        requester = agreement.spec.requester,
        recipient = status.recipient.as_deref().unwrap_or_default(),
        method = agreement.spec.transfer.method.to_string(),
        data = data.join(" "),
        classification = status.classification.as_ref().map(|c| c.level.to_string()).unwrap_or_default(),
        phase = status.phase.map(|p| p.to_string()).unwrap_or_default(),
        policy = status.policy.as_deref().unwrap_or_default(),
        approvals = approvers.join(","),
        expires_at = status.share.as_ref().map(|s| s.expires_at.0.to_string()).unwrap_or_default(),
        reason = ready.map(|c| c.reason.as_str()).unwrap_or_default(),
        message = ready.map(|c| c.message.as_str()).unwrap_or_default(),
        "data sharing decision"
    );
}

/// One structured line per sync: which source versions were shared into which objects.
fn audit_sync(agreement: &DataSharingAgreement, status: &DataSharingAgreementStatus) {
    let Some(share) = &status.share else {
        return;
    };
    let objects: Vec<String> = share
        .objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}/{}[{}]",
                o.kind,
                o.namespace,
                o.name,
                o.keys.join(",")
            )
        })
        .collect();
    tracing::info!(
        target: "audit",
        kind = "DataSharingAgreement",
        namespace = agreement.namespace().unwrap_or_default(),
        name = agreement.name_any(),
        recipient = status.recipient.as_deref().unwrap_or_default(),
        objects = objects.join(" "),
        sources = share.syncs.last().map(|s| s.sources.join(",")).unwrap_or_default(),
        decision = "Synced",
        "data shared"
    );
}
