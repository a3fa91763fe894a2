//! The DataSharingAgreement in the one reconciler ([`super::reconciler`]): observe its policy,
//! its sources (values of the listed keys only) and its reviewers' rights; decide with
//! [`crate::sharing::kind::plan`]; provide the copies or the Role that carry the share.
//!
//! A change to a source Secret or ConfigMap (only its metadata is watched: values are read when
//! needed, never cached) reconciles the agreements naming it, so rotations propagate at once; a
//! change to a shared object reconciles its agreement (heard from the owned index once it holds
//! the change, so the reconcile sees it), so edits are reverted at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::events::EventType;
use futures::Stream;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::api::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource, ResourceExt};

use super::cached::Cached;
use super::lineage::{self, Links, Peers};
use super::reconciler::{self, Note, Planned, Reconciled};
use super::{Context, Error, approvers};
use crate::api::Phase;
use crate::api::SourceKind;
use crate::api::conditions::{ConditionUpdate, READY, reason};
use crate::api::{
    DataSharingAgreement, DataSharingAgreementSpec, DataSharingAgreementStatus,
    FILED_BY_ANNOTATION, SharingPhase, SharingPolicy, TransferMethod,
};
use crate::api::{RecordedData, RecordedObject, RecordedShare};
use crate::apply::{self, Applied, Object, OwnerKind};
use crate::lifecycle::eligible::Approvers;
use crate::lifecycle::{self, Refusal, duration, record};
use crate::sharing::classify::{self, ObservedSource};
use crate::sharing::kind::{self, Checked, SharingKind};
use crate::sharing::objects::{self as shares, Source, Target};
use crate::sharing::{self as policy_check, AcceptedShare};
use crate::sharing::{combination, reviews, whole_objects};

/// Finalizer that makes deleting an agreement remove what it shared before the object goes.
pub const FINALIZER: &str = "gatehouse.dev/remove-share";

/// Reconciles every DataSharingAgreement until `stop`; `policy_changes` re-checks them all
/// whenever a SharingPolicy changes.
pub async fn run(
    ctx: Arc<Context>,
    policy_changes: impl Stream<Item = ()> + Send + 'static,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    reconciler::run::<DataSharingAgreement>(
        ctx.clone(),
        policy_changes,
        stop,
        |controller, agreements| {
            ctx.metrics.count_agreements(agreements.clone());
            let secrets = crate::apply::backed_off(watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                watcher::Config::default(),
            ))
            .touched_objects();
            let config_maps = crate::apply::backed_off(watcher(
                Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
                watcher::Config::default(),
            ))
            .touched_objects();
            let by_secret = {
                let agreements = agreements.clone();
                move |meta: PartialObjectMeta<Secret>| {
                    affected(&agreements, SourceKind::Secret, &meta)
                }
            };
            let by_config_map = move |meta: PartialObjectMeta<ConfigMap>| {
                affected(&agreements, SourceKind::ConfigMap, &meta)
            };
            controller
                .watches_stream(secrets, by_secret)
                .watches_stream(config_maps, by_config_map)
        },
    )
    .await;
}

/// The agreements a changed Secret or ConfigMap concerns: every agreement in its namespace that
/// names it as a source. (The one a shared Secret was made for hears of it from the owned index.)
fn affected<K: Resource<DynamicType = ()>>(
    agreements: &Store<Cached<DataSharingAgreement>>,
    kind: SourceKind,
    object: &PartialObjectMeta<K>,
) -> Vec<ObjectRef<Cached<DataSharingAgreement>>> {
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
    agreements
        .state()
        .iter()
        .filter(|a| {
            a.namespace().as_deref() == Some(namespace.as_str()) && names_it(&a.typed().spec)
        })
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// What the decision of an agreement needs, read once per reconcile.
pub struct Observed {
    accepted: Result<AcceptedShare, Refusal>,
    policy: Option<Arc<SharingPolicy>>,
    /// The sources with the values of their listed keys only.
    sources: Vec<Source>,
    /// What the sources are now, or why they cannot be shared as listed.
    classification: Result<crate::api::ClassificationResult, Refusal>,
    /// Reviews and the agreement gate, when both the policy and the sources pass.
    checked: Result<Checked, Refusal>,
    unauthorized: Vec<(String, String)>,
    approvers: Approvers,
    integrity_problem: Option<String>,
    links: lineage::Observed,
}

/// What the sources are, from what was read of them, or why they cannot be shared as listed.
fn classification(
    observed: &[ObservedSource],
    spec: &DataSharingAgreementSpec,
) -> Result<crate::api::ClassificationResult, Refusal> {
    classify::classify(observed).and_then(|found| {
        whole_objects::check_whole_objects(spec.transfer.method, observed).map(|()| found)
    })
}

/// Reviews and the agreement gate, when both the policy and the sources pass.
fn checked(
    accepted: &Result<AcceptedShare, Refusal>,
    policy: Option<&SharingPolicy>,
    classification: &Result<crate::api::ClassificationResult, Refusal>,
    spec: &DataSharingAgreementSpec,
) -> Result<Checked, Refusal> {
    match (accepted, classification, policy) {
        (Ok(accepted), Ok(found), Some(policy)) => {
            let gate = combination::check_combination(&accepted.policy, &policy.spec, spec, found)?;
            let reviews = reviews::required_reviews(
                &accepted.policy,
                &policy.spec.reviews,
                found,
                &spec.recipient,
            )?;
            let among = |roles: &[String]| {
                reviews
                    .required
                    .iter()
                    .filter(|r| roles.contains(r))
                    .cloned()
                    .collect()
            };
            Ok(Checked {
                policy: accepted.policy.clone(),
                retention: accepted.retention,
                pending_timeout: policy.spec.pending_timeout.clone(),
                manager_stages: among(&policy.spec.reviews.requester_manager),
                cluster_wide: among(&policy.spec.cluster_wide_approvers),
                recipient_consent: reviews.recipient_consent,
                required: reviews.required,
                gate,
            })
        }
        (Err(refusal), _, _) | (_, Err(refusal), _) => Err(refusal.clone()),
        (Ok(_), Ok(_), None) => Err(Refusal::new(
            reason::POLICY_NOT_FOUND,
            "the governing SharingPolicy disappeared",
        )),
    }
}

impl Reconciled for DataSharingAgreement {
    type Core = SharingKind;
    type Observed = Observed;
    const FINALIZER: &'static str = FINALIZER;
    const OWNER: OwnerKind = OwnerKind::DataSharingAgreement;

    async fn observe(&self, ctx: &Context) -> Result<Observed, Error> {
        let namespace = self.namespace().unwrap_or_default();
        let spec = &self.spec;
        let terminal = self
            .status
            .as_ref()
            .and_then(|s| s.phase)
            .is_some_and(SharingPhase::is_terminal);
        let policies = ctx.sharing_policies.state();
        let policy_refs: Vec<&SharingPolicy> = policies.iter().map(Arc::as_ref).collect();
        let accepted =
            policy_check::accept(spec, &namespace, &policy_refs, &ctx.namespace_labels());
        let policy = accepted.as_ref().ok().and_then(|a| {
            policies
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(a.policy.as_str()))
                .cloned()
        });
        let (observed, sources) = if terminal {
            (Vec::new(), Vec::new())
        } else {
            read_sources(ctx, &namespace, spec).await?
        };
        let classification = classification(&observed, spec);
        let checked = checked(&accepted, policy.as_deref(), &classification, spec);
        // Also while active: the reviews that keep a share are re-derived on every reconcile.
        let unauthorized = match (&checked, terminal) {
            (Ok(checked), false) => {
                unauthorized_reviews(ctx, self, policy.as_deref(), checked).await?
            }
            _ => Vec::new(),
        };
        let approvers = reviewers(ctx, self, checked.as_ref().ok());
        let observed = Observed {
            accepted,
            policy,
            sources,
            classification,
            checked,
            unauthorized,
            approvers,
            integrity_problem: ctx.integrity.problem(),
            links: lineage::observe(self, &ctx.sharing_peers),
        };
        Ok(observed)
    }

    fn decide(
        &self,
        ctx: &Context,
        observed: &Observed,
        now: Timestamp,
    ) -> Planned<DataSharingAgreementStatus> {
        let namespace = self.namespace().unwrap_or_default();
        let name = self.name_any();
        let spec = &self.spec;
        let max_total = observed
            .policy
            .as_ref()
            .and_then(|p| p.spec.max_total_duration.as_deref())
            .and_then(|d| duration::parse(d).ok());
        let extension = observed
            .links
            .extension("agreement", &spec.requester, max_total, now);
        // An extension's objects keep the names of the chain's first agreement, so that a
        // consumer of the share keeps reading the same Secret across extensions.
        let recorded_root = self.status.as_ref().and_then(|s| s.chain.first());
        let chain_root = extension
            .as_ref()
            .and_then(|e| e.as_ref().ok())
            .and_then(|e| e.chain.first())
            .or(recorded_root)
            .unwrap_or(&name);
        let target = Target {
            agreement_namespace: &namespace,
            agreement_name: &name,
            chain_root,
            spec,
            egress_namespace: observed
                .policy
                .as_ref()
                .and_then(|p| p.spec.egress_namespace.as_deref()),
        };
        let provided = shares::desired(&target, &observed.sources);
        let no_annotations = BTreeMap::new();
        let decision = kind::plan(&kind::Observation {
            unauthorized_decisions: &observed.unauthorized,
            approvers: &observed.approvers,
            requester: &spec.requester,
            filed_by: self
                .annotations()
                .get(FILED_BY_ANNOTATION)
                .map(String::as_str),
            sealer: ctx.sealer("DataSharingAgreement", self),
            recipient_description: Some(policy_check::describe_recipient(&spec.recipient)),
            recipient: kind::recipient_subject(
                spec.recipient.namespace.as_deref(),
                spec.recipient.service_account.as_deref(),
            ),
            annotations: self
                .metadata
                .annotations
                .as_ref()
                .unwrap_or(&no_annotations),
            agreement_reference: spec.agreement.as_ref().map(|a| a.reference.as_str()),
            created: self.metadata.creation_timestamp.as_ref().map(|t| t.0),
            generation: self.metadata.generation,
            start_at: spec.start_at.as_ref().map(|t| t.0),
            current: self.status.as_ref(),
            approvals_unverified: observed.integrity_problem.as_deref(),
            accepted: observed.accepted.as_ref().map(|_| ()).map_err(Clone::clone),
            classification: observed.classification.clone(),
            checked: observed.checked.clone(),
            extension,
            extended_by: observed.links.extended_by.clone(),
            superseded_by: observed.links.superseded_by.clone(),
            provided: provided
                .iter()
                .map(|o| shares::record(o, &observed.sources))
                .collect(),
            source_versions: observed.sources.iter().map(Source::version).collect(),
            now,
        });
        Planned { decision, provided }
    }

    async fn converge(
        &self,
        ctx: &Context,
        wanted: &[Object],
        _by_name: bool,
    ) -> Result<Applied, Error> {
        let owner = apply::Owner::new(
            OwnerKind::DataSharingAgreement,
            &self.namespace().unwrap_or_default(),
            &self.name_any(),
        );
        // Objects pass along an extension chain in place: they carry the same names.
        let namespace = self.namespace().unwrap_or_default();
        let agreement =
            |name: &str| apply::Owner::new(OwnerKind::DataSharingAgreement, &namespace, name);
        let original = self.spec.extends.as_deref().map(agreement);
        let extensions: Vec<apply::Owner> = ctx
            .sharing_peers
            .extending(self)
            .iter()
            .map(|name| agreement(name))
            .collect();
        let handover = apply::Handover {
            from: original.as_ref(),
            to: &extensions,
        };
        Ok(apply::converge(&ctx.client, &ctx.owned, &owner, &handover, wanted).await?)
    }

    async fn prove(
        &self,
        _: &Context,
        _: &Observed,
        _: Option<Phase>,
        _: Option<Phase>,
    ) -> Option<ConditionUpdate> {
        None
    }

    fn notes(
        &self,
        before: Option<&DataSharingAgreementStatus>,
        after: &DataSharingAgreementStatus,
        converged: &Applied,
        executed_before: bool,
    ) -> Vec<Note> {
        let shared = after.phase == Some(SharingPhase::Active);
        if !executed_before || !shared || converged.written.is_empty() {
            return Vec::new();
        }
        let written = converged.written.join(", ");
        vec![if synced(before, after) {
            Note {
                type_: EventType::Normal,
                reason: "Synced",
                message: format!("a source changed; re-shared {written}"),
            }
        } else {
            Note {
                type_: EventType::Warning,
                reason: "DriftRepaired",
                message: format!(
                    "a shared object was edited or deleted; restored to the approved state: {written}"
                ),
            }
        }]
    }

    fn measure(
        ctx: &Context,
        before: Option<&DataSharingAgreementStatus>,
        after: &DataSharingAgreementStatus,
        _: Timestamp,
    ) {
        if synced(before, after) {
            ctx.metrics.share_synced();
        }
    }

    fn record_facts(
        &self,
        ctx: &Context,
        status: Option<&DataSharingAgreementStatus>,
        deleted_at: Option<Timestamp>,
    ) -> record::Facts {
        let spec = &self.spec;
        let recipient = policy_check::describe_recipient(&spec.recipient);
        let data: Vec<RecordedData> = spec
            .data
            .iter()
            .filter_map(|item| {
                let source = item
                    .secret
                    .as_ref()
                    .map(|s| format!("Secret/{s}"))
                    .or_else(|| item.config_map.as_ref().map(|c| format!("ConfigMap/{c}")))?;
                Some(RecordedData {
                    source,
                    keys: item.keys.clone(),
                })
            })
            .collect();
        let what = data
            .iter()
            .map(|d| format!("{}[{}]", d.source, d.keys.join(",")))
            .collect::<Vec<_>>()
            .join(" ");
        let shared = status.and_then(|s| s.share.as_ref());
        let governing = status
            .and_then(|s| s.policy.as_deref())
            .and_then(|name| ctx.sharing_policies.get(&ObjectRef::new(name)));
        record::Facts {
            object: RecordedObject {
                kind: "DataSharingAgreement".into(),
                namespace: self.namespace().unwrap_or_default(),
                name: self.name_any(),
                uid: self.uid().unwrap_or_default(),
            },
            requester: spec.requester.clone(),
            filed_by: self.annotations().get(FILED_BY_ANNOTATION).cloned(),
            subjects: kind::recipient_subject(
                spec.recipient.namespace.as_deref(),
                spec.recipient.service_account.as_deref(),
            )
            .into_iter()
            .collect(),
            what: format!("{what} to {recipient} by {}", spec.transfer.method),
            why: spec.purpose.clone(),
            share: Some(RecordedShare {
                recipient,
                method: spec.transfer.method,
                agreement: shared
                    .and_then(|s| s.agreement.clone())
                    .or_else(|| spec.agreement.as_ref().map(|a| a.reference.clone())),
                data,
                objects: shared.map(|s| s.objects.clone()).unwrap_or_default(),
                syncs: shared.map(|s| s.syncs.clone()).unwrap_or_default(),
            }),
            findings: Vec::new(),
            policy_generation: governing.as_ref().and_then(|p| p.metadata.generation),
            policy_retention: governing
                .as_ref()
                .and_then(|p| p.spec.record_retention.as_deref())
                .and_then(|r| lifecycle::duration::parse(r).ok()),
            revoked_by: crate::lifecycle::protocol::revoked_by(self.annotations())
                .map(str::to_string),
            deleted_at,
        }
    }

    fn peers(ctx: &Context) -> &Peers<Self> {
        &ctx.sharing_peers
    }

    fn links(&self) -> Links<'_> {
        Links {
            requester: &self.spec.requester,
            extends: self.spec.extends.as_deref(),
            supersedes: self.spec.supersedes.as_deref(),
        }
    }

    /// An extension shares exactly what the original shared, with the same recipient and method.
    fn covers(&self, original: &Self) -> Result<(), String> {
        let (mine, theirs) = (&self.spec, &original.spec);
        if mine.recipient != theirs.recipient {
            return Err("its spec.recipient differs".into());
        }
        if mine.transfer != theirs.transfer {
            return Err("its spec.transfer differs".into());
        }
        if mine.data != theirs.data {
            return Err("its spec.data differs".into());
        }
        Ok(())
    }

    fn audit(&self, status: &DataSharingAgreementStatus) {
        let ready = crate::api::conditions::find(&status.conditions, READY);
        let approvers: Vec<String> = status
            .approvals
            .iter()
            .map(|a| format!("{}:{}:{}", a.role, a.user, a.decision))
            .collect();
        let data: Vec<String> = self
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
            namespace = self.namespace().unwrap_or_default(),
            name = self.name_any(),
            requester = self.spec.requester,
            recipient = status.recipient.as_deref().unwrap_or_default(),
            method = %self.spec.transfer.method,
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

    fn notification_settings(ctx: &Context, policy: &str) -> lifecycle::notify::Settings {
        ctx.sharing_policies
            .get(&ObjectRef::<crate::api::SharingPolicy>::new(policy))
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
            kind = "DataSharingAgreement",
            namespace = self.namespace().unwrap_or_default(),
            name = self.name_any(),
            requester = self.spec.requester,
            removed = removed.join(","),
            decision = "Deleted",
            "data sharing agreement deleted; everything it shared was removed"
        );
    }
}

/// Whether the status written as `after` records a sync `before` did not: new source versions
/// shared.
fn synced(before: Option<&DataSharingAgreementStatus>, after: &DataSharingAgreementStatus) -> bool {
    let last = |status: Option<&DataSharingAgreementStatus>| {
        status
            .and_then(|s| s.share.as_ref())
            .and_then(|s| s.syncs.last())
            .map(|sync| sync.sources.clone())
    };
    last(Some(after)).is_some() && last(Some(after)) != last(before)
}

/// The review annotations that do not count, with why. Admission checks a reviewer's right in the
/// agreement's namespace, whose admins hold every verb there; roles the policy lists in
/// `clusterWideApprovers` count only cluster-wide. A recipient consent counts only from a holder
/// of the right in the recipient namespace (only there: the recipient team needs no right in the
/// data owner's namespace), as admission checks once the status lists it, but not for an approval
/// made before. Only required reviews are checked: other roles' annotations never count anyway.
/// Whoever can read what the share delivers, or act as the recipient, reviews nothing on it;
/// except the recipient's consent, which is exactly the receiving team's say (the recipient
/// ServiceAccount itself still never decides: it is a party, refused by admission and the core).
async fn unauthorized_reviews(
    ctx: &Context,
    agreement: &DataSharingAgreement,
    policy: Option<&SharingPolicy>,
    checked: &Checked,
) -> Result<Vec<(String, String)>, Error> {
    let spec = &agreement.spec;
    let cluster_wide = policy
        .map(|p| p.spec.cluster_wide_approvers.clone())
        .unwrap_or_default();
    let managed = policy
        .map(|p| p.spec.reviews.requester_manager.clone())
        .unwrap_or_default();
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
    approvers::unauthorized(ctx, agreement.annotations(), |role| {
        if !checked.required.iter().any(|r| r == role) {
            return None;
        }
        let consent = checked.recipient_consent.iter().any(|r| r == role);
        let scopes = if managed.iter().any(|r| r == role) {
            // The org chart decides who may (lifecycle::protocol::counted); the controls remain.
            Vec::new()
        } else if cluster_wide.iter().any(|r| r == role) {
            vec![None]
        } else if consent {
            // A consent is required only for a namespace recipient.
            vec![spec.recipient.namespace.clone()]
        } else {
            // Admission checked the right in this namespace; the controls remain.
            Vec::new()
        };
        Some(approvers::Checks {
            scopes,
            controls: if consent { &[] } else { &controls },
            recipient_consent: consent,
        })
    })
    .await
}

/// Who may review each required role of an agreement: holders of the right in its namespace
/// (cluster-wide for roles in `clusterWideApprovers`), less the ServiceAccounts of the recipient
/// namespace (admission refuses them), and the requester's manager.
fn reviewers(
    ctx: &Context,
    agreement: &DataSharingAgreement,
    checked: Option<&Checked>,
) -> Approvers {
    let namespace = agreement.namespace().unwrap_or_default();
    let roles = checked.map(|c| {
        c.required
            .iter()
            .map(|role| {
                let scope = if c.cluster_wide.contains(role) {
                    None
                } else {
                    Some(namespace.as_str())
                };
                (role.as_str(), vec![scope])
            })
            .collect::<Vec<_>>()
    });
    let mut approvers = ctx.approvers(&agreement.spec.requester, roles.unwrap_or_default());
    if let Some(recipient) = agreement.spec.recipient.namespace.as_deref() {
        for holders in approvers.holders.values_mut() {
            holders.service_accounts.retain(|(ns, _)| ns != recipient);
        }
    }
    approvers
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
