//! The DataSharingAgreement as a kind of the lifecycle core ([`crate::lifecycle::decide`]): how
//! its status holds the lifecycle and the sharing record, how it words it, and what its checks
//! add (reviews from the data's classification, the signed-agreement hold, suspension while the
//! sources no longer hold what was reviewed).
//!
//! Pending | AwaitingAgreement → (every review approved, agreement filed) → Approved → Active ⇄
//! Suspended → Expired | Revoked; or Denied | TimedOut before; or Failed while the agreement does
//! not fit a policy or its sources.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::combination::AgreementGate;
use crate::api::Phase;
use crate::api::common::{Subject, SubjectKind};
use crate::api::conditions::{SHARED, reason};
use crate::api::{
    ClassificationResult, DataSharingAgreementStatus, ShareRecord, SharedObject, SharingPhase,
    SyncRecord,
};
use crate::lifecycle::Refusal;
use crate::lifecycle::activation::Sealer;
use crate::lifecycle::decide::{self, Decision, Governed, Hold};
use crate::lifecycle::duration::{self, second_floor};
use crate::lifecycle::eligible::Approvers;
use crate::lifecycle::kind::{Kind, Record, RecordedWindow, Wording};
use crate::lifecycle::lineage::{self, Extension, Lineage};
use crate::lifecycle::narrowing;
use crate::lifecycle::protocol::Parties;

/// Default `pendingTimeout` of a SharingPolicy that names none: a week, as reviews by privacy and
/// legal take longer than an access approval.
pub const DEFAULT_SHARING_PENDING_TIMEOUT: Duration = Duration::from_secs(168 * 3600);

/// How many syncs the sharing record keeps; older ones remain in the Events and audit log.
pub const SYNC_HISTORY: usize = 10;

/// What the policy, the sources and the reviews say, computed by the controller from the
/// governing SharingPolicy ([`super::accept`]), the sources
/// ([`super::classify::classify`]) and both together
/// ([`super::reviews::required_reviews`], [`super::combination::check_combination`]).
#[derive(Clone)]
pub struct Checked {
    pub policy: String,
    pub retention: Duration,
    pub pending_timeout: Option<String>,
    pub required: Vec<String>,
    /// The roles of `required` that are the recipient's consent (checked in its namespace).
    pub recipient_consent: Vec<String>,
    /// Those of `required` the requester's manager decides (`reviews.requesterManager`).
    pub manager_stages: Vec<String>,
    /// Those of `required` that count only from cluster-wide holders (`clusterWideApprovers`).
    pub cluster_wide: Vec<String>,
    pub gate: AgreementGate,
}

/// Everything the decision needs, gathered by the controller.
pub struct Observation<'a> {
    pub requester: &'a str,
    /// Who filed the agreement on the requester's behalf (admitted `gatehouse.dev/filed-by`).
    pub filed_by: Option<&'a str>,
    /// Seals and checks the activation window of this agreement.
    pub sealer: Sealer<'a>,
    /// The recipient ServiceAccount: it receives the data, so it may not review the share.
    pub recipient: Option<Subject>,
    /// The recipient as the status names it.
    pub recipient_description: Option<String>,
    pub annotations: &'a BTreeMap<String, String>,
    /// Decision annotations whose author lacks the right where the policy requires it (roles in
    /// `clusterWideApprovers` count only from cluster-wide holders), with why: they do not count.
    pub unauthorized_decisions: &'a [(String, String)],
    /// Who holds each review role's right, and the requester's manager per the org chart.
    pub approvers: &'a Approvers,
    pub agreement_reference: Option<&'a str>,
    pub created: Option<Timestamp>,
    pub generation: Option<i64>,
    /// When what is asked for may start at the earliest (`spec.startAt`).
    pub start_at: Option<Timestamp>,
    pub current: Option<&'a DataSharingAgreementStatus>,
    /// Why approvals cannot be trusted right now; `None` when the admission policies are verified.
    pub approvals_unverified: Option<&'a str>,
    /// The governing policy's verdict on the spec alone (recipient, method, retention).
    pub accepted: Result<(), Refusal>,
    /// What the sources are now, or why they cannot be shared as listed.
    pub classification: Result<ClassificationResult, Refusal>,
    /// Reviews and the agreement gate, when both the policy and the sources passed.
    pub checked: Result<Checked, Refusal>,
    /// What `spec.extends` continues, when it names one, or why it may not.
    pub extension: Option<Result<Extension, Refusal>>,
    /// The agreements that extend (once executed) and supersede this one.
    pub extended_by: Option<String>,
    pub superseded_by: Option<String>,
    /// The objects that carry the share as it would be provided now, and the source versions
    /// (`<kind>/<name>@<resourceVersion>`) they carry: the sharing record.
    pub provided: Vec<SharedObject>,
    pub source_versions: Vec<String>,
    pub now: Timestamp,
}

/// What the decision of an agreement is.
pub type Plan = Decision<DataSharingAgreementStatus>;

/// The DataSharingAgreement kind of the lifecycle core.
pub struct SharingKind;

/// What an agreement's own status fields come from.
pub struct Facts {
    pub recipient: Option<String>,
    /// The recipient consent roles, when the policy and the sources were checked.
    pub recipient_approvals: Option<Vec<String>>,
    pub classification: Option<ClassificationResult>,
    pub agreement_reference: Option<String>,
    /// What the share consists of as decided now, and the source versions it carries.
    pub objects: Vec<SharedObject>,
    pub sources: Vec<String>,
}

/// The status fields of an agreement beside the lifecycle's: the sharing record.
pub struct Details {
    recipient: Option<String>,
    recipient_approvals: Vec<String>,
    classification: Option<ClassificationResult>,
    objects: Vec<SharedObject>,
    agreement: Option<String>,
    syncs: Vec<SyncRecord>,
    removed_at: Option<Time>,
}

impl Kind for SharingKind {
    type Status = DataSharingAgreementStatus;
    type Details = Details;
    type Facts = Facts;

    const WORDING: Wording = Wording {
        kind: "DataSharingAgreement",
        noun: "agreement",
        policy_kind: "SharingPolicy",
        provided_condition: SHARED,
        waiting_reason: reason::WAITING,
        decision: "review",
        decided: "reviewed",
        stage: "review",
        provisioned: "shared",
        provided: "shared",
        removed: "share removed",
        withdrawn: "share removed: the policy no longer allows it",
        failed: "approved, but the share could not be executed",
        revoked: |user, executed| {
            if executed {
                format!("share revoked by {user}; everything shared was removed")
            } else {
                format!("withdrawn by {user} before anything was shared")
            }
        },
        expired: |at| format!("retention ended at {at}; everything shared was removed"),
        phase_name: |phase| SharingPhase::from(phase).name(),
    };

    fn split(status: DataSharingAgreementStatus) -> (Record, Details) {
        let (window, share) = match status.share {
            Some(share) => (
                Some(RecordedWindow {
                    activated_at: share.activated_at,
                    expires_at: share.expires_at,
                    seal: share.seal,
                }),
                Some((
                    share.objects,
                    share.agreement,
                    share.syncs,
                    share.removed_at,
                )),
            ),
            None => (None, None),
        };
        let (objects, agreement, syncs, removed_at) = share.unwrap_or_default();
        let record = Record {
            phase: status.phase.map(SharingPhase::into),
            observed_generation: status.observed_generation,
            notifications: status.notifications,
            policy: status.policy,
            required_approvals: status.required_approvals,
            waiting_for: status.waiting_for,
            scope: status.scope,
            lineage: Lineage {
                chain: status.chain,
                chain_started_at: status.chain_started_at,
                extended_by: status.extended_by,
                superseded_by: status.superseded_by,
            },
            manager_approvals: status.manager_approvals,
            approvers: status.approvers,
            approvals: status.approvals,
            untrusted_approvals: status.untrusted_approvals,
            ignored_annotations: status.ignored_annotations,
            reminded_at: None,
            window,
            conditions: status.conditions,
        };
        let details = Details {
            recipient: status.recipient,
            recipient_approvals: status.recipient_approvals,
            classification: status.classification,
            objects,
            agreement,
            syncs,
            removed_at,
        };
        (record, details)
    }

    fn join(record: Record, details: Details) -> DataSharingAgreementStatus {
        DataSharingAgreementStatus {
            phase: record.phase.map(SharingPhase::from),
            policy: record.policy,
            recipient: details.recipient,
            classification: details.classification,
            required_approvals: record.required_approvals,
            recipient_approvals: details.recipient_approvals,
            waiting_for: record.waiting_for,
            scope: record.scope,
            chain: record.lineage.chain,
            chain_started_at: record.lineage.chain_started_at,
            extended_by: record.lineage.extended_by,
            superseded_by: record.lineage.superseded_by,
            manager_approvals: record.manager_approvals,
            approvers: record.approvers,
            approvals: record.approvals,
            ignored_annotations: record.ignored_annotations,
            untrusted_approvals: record.untrusted_approvals,
            share: record.window.map(|window| ShareRecord {
                objects: details.objects,
                activated_at: window.activated_at,
                expires_at: window.expires_at,
                seal: window.seal,
                agreement: details.agreement,
                syncs: details.syncs,
                removed_at: details.removed_at,
            }),
            conditions: record.conditions,
            observed_generation: record.observed_generation,
            notifications: record.notifications,
        }
    }

    fn conditions(status: &mut DataSharingAgreementStatus) -> &mut Vec<Condition> {
        &mut status.conditions
    }

    fn phase(status: &DataSharingAgreementStatus) -> Option<Phase> {
        status.phase.map(SharingPhase::into)
    }

    fn recorded_conditions(status: &DataSharingAgreementStatus) -> &[Condition] {
        &status.conditions
    }

    fn describe(details: &mut Details, facts: &Facts, executed: bool) {
        if facts.recipient.is_some() {
            details.recipient = facts.recipient.clone();
        }
        // Listed for admission, which checks these roles' right in the recipient namespace.
        if let Some(roles) = &facts.recipient_approvals {
            details.recipient_approvals = roles.clone();
        }
        // An executed share keeps the classification it was reviewed as: what the sources are now
        // is compared with it.
        if let (false, Some(classification)) = (executed, &facts.classification) {
            details.classification = Some(classification.clone());
        }
    }

    fn activated(details: &mut Details, facts: &Facts) {
        details.agreement = facts.agreement_reference.clone();
    }

    fn provided(details: &mut Details, facts: &Facts, now: Timestamp) {
        details.objects = facts.objects.clone();
        record_sync(&mut details.syncs, facts.sources.clone(), now);
    }

    fn ended(details: &mut Details, now: Timestamp) {
        if details.removed_at.is_none() {
            details.removed_at = Some(Time(second_floor(now)));
        }
    }
}

/// Decides the next state of an agreement.
pub fn plan(observed: &Observation) -> Plan {
    let facts = Facts {
        recipient: observed.recipient_description.clone(),
        recipient_approvals: observed
            .checked
            .as_ref()
            .ok()
            .map(|c| c.recipient_consent.clone()),
        classification: observed.classification.as_ref().ok().cloned(),
        agreement_reference: observed.agreement_reference.map(str::to_string),
        objects: observed.provided.clone(),
        sources: observed.source_versions.clone(),
    };
    // A policy that no longer accepts the spec withdraws the share; otherwise sources that no
    // longer hold what was reviewed suspend it until they do.
    let (governed, unreadable) = match (&observed.accepted, &observed.checked) {
        (Err(refusal), _) | (Ok(()), Err(refusal)) => (Err(refusal.clone()), Vec::new()),
        (Ok(()), Ok(checked)) => {
            let asked = narrowing::Asked {
                duration: checked.retention,
                namespaces: Err(
                    "an agreement has no namespaces to narrow (narrow its retention with duration.gatehouse.dev/<role>, or ask for changes)",
                ),
            };
            let narrowed = narrowing::read(observed.annotations, &asked);
            let governed = governed(checked, observed, &narrowed, &asked);
            (Ok(governed), narrowed.invalid)
        }
    };
    let governed = lineage::governed(
        governed,
        observed.extension.clone(),
        observed.current.and_then(SharingKind::phase),
    );
    let unauthorized: Vec<(String, String)> = observed
        .unauthorized_decisions
        .iter()
        .cloned()
        .chain(unreadable)
        .collect();
    let approved = observed.current.and_then(|s| s.classification.as_ref());
    let problem = match (&observed.accepted, &observed.classification, approved) {
        (Err(_), _, _) => None,
        (Ok(()), Err(refusal), _) => Some(refusal.message.clone()),
        (Ok(()), Ok(now), Some(approved)) => raised(approved, now),
        (Ok(()), Ok(_), None) => None,
    };
    let suspension = problem.map(|problem| {
        Refusal::new(
            reason::SOURCE_CHANGED,
            format!(
                "suspended, nothing is shared until the sources hold what was approved again: {problem}"
            ),
        )
    });
    let recipients: Vec<Subject> = observed.recipient.iter().cloned().collect();
    decide::decide::<SharingKind>(&decide::Observation {
        sealer: observed.sealer,
        annotations: observed.annotations,
        parties: Parties {
            requester: observed.requester,
            filed_by: observed.filed_by,
            subjects: &recipients,
        },
        unauthorized_decisions: &unauthorized,
        approvers: observed.approvers,
        approvals_unverified: observed.approvals_unverified,
        created: observed.created,
        generation: observed.generation,
        current: observed.current,
        governed,
        extended_by: observed.extended_by.clone(),
        superseded_by: observed.superseded_by.clone(),
        suspension,
        facts: &facts,
        now: observed.now,
    })
}

/// What the governing SharingPolicy requires of an agreement whose spec and sources it accepts.
fn governed(
    checked: &Checked,
    observed: &Observation,
    narrowed: &narrowing::Narrowed,
    asked: &narrowing::Asked,
) -> Governed {
    let level = observed
        .classification
        .as_ref()
        .map(|c| c.level.to_string())
        .unwrap_or_default();
    let policy = &checked.policy;
    Governed {
        policy: policy.clone(),
        accepted: format!(
            "SharingPolicy {policy} governs this agreement; the data is {level}; reviews required: {}",
            if checked.required.is_empty() {
                "none".to_string()
            } else {
                checked.required.join(", ")
            }
        ),
        required: checked.required.clone(),
        manager_stages: checked.manager_stages.clone(),
        // Reviews in the agreement's namespace are checked by admission alone, which sees the
        // reviewer's groups; cluster-wide ones the operator proves by username.
        group_approvers: checked
            .required
            .iter()
            .filter(|r| !checked.cluster_wide.contains(r) && !checked.manager_stages.contains(r))
            .cloned()
            .collect(),
        no_stage: format!(
            "SharingPolicy {policy} requires no review for this share; nothing is shared unreviewed, so the policy needs `reviews.always` (e.g. [data-owner])"
        ),
        duration: narrowed.duration(checked.retention),
        scope: Some(narrowed.scope(asked)),
        start_at: observed.start_at,
        extension: None,
        pending_timeout: checked
            .pending_timeout
            .as_deref()
            .and_then(|t| duration::parse(t).ok())
            .unwrap_or(DEFAULT_SHARING_PENDING_TIMEOUT),
        // Sharing status has no reminder record yet; reviews wait for the timeout alone.
        remind: false,
        denial: None,
        hold: match &checked.gate {
            AgreementGate::Open => None,
            AgreementGate::AwaitingAgreement { message } => Some(Hold {
                reason: reason::AWAITING_AGREEMENT,
                message: message.clone(),
                missing: "a signed agreement (spec.agreement.reference)".to_string(),
            }),
        },
    }
}

/// How the sources became more sensitive than when the share was reviewed, if they did: the
/// reviews covered the data as it was classified then.
fn raised(approved: &ClassificationResult, now: &ClassificationResult) -> Option<String> {
    let mut changes = Vec::new();
    if now.level > approved.level {
        changes.push(format!(
            "the data is now {} (reviewed as {})",
            now.level, approved.level
        ));
    }
    if now.personal_data && !approved.personal_data {
        changes.push("a source is now labelled personal data".to_string());
    }
    let new_regions: Vec<&str> = now
        .residency
        .iter()
        .filter(|r| !approved.residency.contains(r))
        .map(String::as_str)
        .collect();
    if !new_regions.is_empty() {
        changes.push(format!("new residency {}", new_regions.join(", ")));
    }
    (!changes.is_empty()).then(|| {
        format!(
            "{}; file a new DataSharingAgreement to share it as it is now",
            changes.join("; ")
        )
    })
}

/// Records a sync in `share` when the shared source versions differ from the last one recorded:
/// the sharing record lists what was shared when, never the values.
pub fn record_sync(syncs: &mut Vec<SyncRecord>, sources: Vec<String>, now: Timestamp) -> bool {
    if syncs.last().is_some_and(|last| last.sources == sources) {
        return false;
    }
    syncs.push(SyncRecord {
        time: Time(second_floor(now)),
        sources,
    });
    let excess = syncs.len().saturating_sub(SYNC_HISTORY);
    syncs.drain(..excess);
    true
}

/// The recipient ServiceAccount as an approvals subject: it may not review its own share.
pub fn recipient_subject(
    namespace: Option<&str>,
    service_account: Option<&str>,
) -> Option<Subject> {
    Some(Subject {
        kind: SubjectKind::ServiceAccount,
        name: service_account?.to_string(),
        namespace: Some(namespace?.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Classification;
    use crate::api::conditions::find;
    use crate::api::conditions::{ACCEPTED, READY, STATUS_TAMPERED};
    use crate::lifecycle::decide::Provision;

    const HOUR: i64 = 3600;

    fn test_key() -> crate::lifecycle::activation::SealKey {
        crate::lifecycle::activation::SealKey::from_bytes(&[3; 32]).expect("32 bytes")
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).expect("valid test time")
    }

    fn internal() -> ClassificationResult {
        ClassificationResult {
            level: Classification::Internal,
            personal_data: false,
            residency: vec![],
            reasons: vec![],
        }
    }

    fn checked(required: &[&str], gate: AgreementGate) -> Checked {
        Checked {
            policy: "default-sharing".into(),
            retention: Duration::from_secs(2 * HOUR as u64),
            pending_timeout: Some("24h".into()),
            required: required.iter().map(|r| r.to_string()).collect(),
            recipient_consent: vec![],
            manager_stages: Vec::new(),
            cluster_wide: Vec::new(),
            gate,
        }
    }

    struct Case {
        annotations: BTreeMap<String, String>,
        status: Option<DataSharingAgreementStatus>,
        classification: Result<ClassificationResult, Refusal>,
        checked: Result<Checked, Refusal>,
        accepted: Result<(), Refusal>,
        unverified: Option<&'static str>,
        unauthorized: Vec<(String, String)>,
        extension: Option<Result<Extension, Refusal>>,
        now: i64,
    }

    impl Case {
        fn new(required: &[&str]) -> Self {
            Self {
                annotations: BTreeMap::new(),
                status: None,
                classification: Ok(internal()),
                checked: Ok(checked(required, AgreementGate::Open)),
                accepted: Ok(()),
                unverified: None,
                unauthorized: vec![],
                extension: None,
                now: 60,
            }
        }

        fn annotate(mut self, key: &str, value: &str) -> Self {
            self.annotations.insert(key.into(), value.into());
            self
        }

        fn run(&self) -> Plan {
            let key = test_key();
            plan(&Observation {
                extension: self.extension.clone(),
                extended_by: None,
                superseded_by: None,
                requester: "erin",
                filed_by: None,
                sealer: Sealer {
                    key: &key,
                    kind: "DataSharingAgreement",
                    uid: "uid-1",
                },
                recipient_description: None,
                recipient: recipient_subject(Some("analytics"), Some("reporting")),
                annotations: &self.annotations,
                unauthorized_decisions: &self.unauthorized,
                approvers: &crate::lifecycle::eligible::Approvers::nobody(),
                agreement_reference: Some("DPA-1"),
                created: Some(at(0)),
                generation: Some(1),
                start_at: None,
                current: self.status.as_ref(),
                approvals_unverified: self.unverified,
                accepted: self.accepted.clone(),
                classification: self.classification.clone(),
                checked: match &self.checked {
                    Ok(c) => Ok(Checked {
                        policy: c.policy.clone(),
                        retention: c.retention,
                        pending_timeout: c.pending_timeout.clone(),
                        required: c.required.clone(),
                        recipient_consent: c.recipient_consent.clone(),
                        manager_stages: c.manager_stages.clone(),
                        cluster_wide: c.cluster_wide.clone(),
                        gate: c.gate.clone(),
                    }),
                    Err(r) => Err(r.clone()),
                },
                provided: vec![],
                source_versions: vec![],
                now: at(self.now),
            })
        }

        /// This case, continued from the status `plan` produced, at `now`.
        fn then(mut self, plan: &Plan, now: i64) -> Self {
            self.status = Some(plan.status.clone());
            self.now = now;
            self
        }
    }

    fn reason_of(plan: &Plan, type_: &str) -> String {
        find(&plan.status.conditions, type_)
            .map(|c| c.reason.clone())
            .unwrap_or_default()
    }

    #[test]
    fn waits_for_every_review_then_shares_until_retention_end() {
        let pending = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run();
        assert_eq!(pending.status.phase, Some(SharingPhase::Pending));
        assert_eq!(pending.provision, Provision::Remove);
        assert_eq!(pending.status.waiting_for.as_deref(), Some("security"));
        assert_eq!(reason_of(&pending, "DataOwnerApproved"), reason::APPROVED);
        assert_eq!(
            pending.wake_at,
            Some(at(24 * HOUR)),
            "wakes at the pending timeout"
        );

        let case = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate("approve.gatehouse.dev/security", "dave");
        let active = case.run();
        assert_eq!(active.status.phase, Some(SharingPhase::Active));
        assert_eq!(active.provision, Provision::Provide);
        let share = active.status.share.clone().expect("share record");
        assert_eq!(share.expires_at.0, at(60 + 2 * HOUR));
        assert_eq!(share.agreement.as_deref(), Some("DPA-1"));
        assert_eq!(active.wake_at, Some(at(60 + 2 * HOUR)));
        assert_eq!(reason_of(&active, READY), reason::PROVISIONED);

        let expired = Case::new(&["data-owner", "security"])
            .then(&active, 60 + 2 * HOUR)
            .run();
        assert_eq!(expired.status.phase, Some(SharingPhase::Expired));
        assert_eq!(expired.provision, Provision::Remove);
        assert_eq!(
            expired.status.share.and_then(|s| s.removed_at).map(|t| t.0),
            Some(at(60 + 2 * HOUR))
        );
    }

    #[test]
    fn the_status_lists_the_recipient_consent_for_admission_while_it_is_checked() {
        let mut case = Case::new(&["data-owner", "recipient-owner"]);
        if let Ok(checked) = &mut case.checked {
            checked.recipient_consent = vec!["recipient-owner".into()];
        }
        let pending = case.run();
        assert_eq!(pending.status.recipient_approvals, ["recipient-owner"]);
        assert_eq!(
            pending.status.required_approvals,
            ["data-owner", "recipient-owner"]
        );

        // A policy that no longer asks for consent un-lists it: admission checks the role where
        // the agreement is again.
        let mut relaxed = Case::new(&["data-owner"]).then(&pending, 120);
        assert_eq!(
            relaxed.run().status.recipient_approvals,
            Vec::<String>::new()
        );
        // While the policy or the sources cannot be checked, the list stays as it was.
        relaxed.checked = Err(Refusal::new(reason::POLICY_NOT_FOUND, "gone"));
        assert_eq!(
            relaxed.run().status.recipient_approvals,
            ["recipient-owner"]
        );
    }

    #[test]
    fn the_requester_and_the_recipient_cannot_review() {
        let plan = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "erin")
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        let plan = Case::new(&["data-owner"])
            .annotate(
                "approve.gatehouse.dev/data-owner",
                "system:serviceaccount:analytics:reporting",
            )
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        assert_eq!(plan.status.ignored_annotations.len(), 1, "{plan:?}");
    }

    #[test]
    fn a_denial_by_any_reviewer_ends_it() {
        let plan = Case::new(&["data-owner", "legal"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate("deny.gatehouse.dev/legal", "lena")
            .annotate("reason.gatehouse.dev/legal", "no DPA")
            .run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Denied));
        let ready = find(&plan.status.conditions, READY).expect("Ready");
        assert_eq!(ready.message, "denied by lena as legal: no DPA");
    }

    #[test]
    fn without_an_agreement_reviews_proceed_but_nothing_executes() {
        let mut case =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        case.checked = Ok(checked(
            &["data-owner"],
            AgreementGate::AwaitingAgreement {
                message: "file spec.agreement.reference".into(),
            },
        ));
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::AwaitingAgreement));
        assert_eq!(plan.provision, Provision::Remove);
        assert_eq!(reason_of(&plan, SHARED), reason::AWAITING_AGREEMENT);
        assert_eq!(reason_of(&plan, "DataOwnerApproved"), reason::APPROVED);

        case.checked = Ok(checked(&["data-owner"], AgreementGate::Open));
        let filed = case.then(&plan, 120).run();
        assert_eq!(filed.status.phase, Some(SharingPhase::Active));
    }

    #[test]
    fn pending_timeout_names_what_is_missing() {
        let mut case = Case::new(&["data-owner", "legal"]);
        case.now = 24 * HOUR;
        case.checked = Ok(checked(
            &["data-owner", "legal"],
            AgreementGate::AwaitingAgreement {
                message: "file one".into(),
            },
        ));
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::TimedOut));
        let ready = find(&plan.status.conditions, READY).expect("Ready");
        assert!(
            ready
                .message
                .contains("data-owner, legal, a signed agreement"),
            "{}",
            ready.message
        );
    }

    #[test]
    fn refusals_fail_and_record_the_classification() {
        let mut case = Case::new(&["data-owner"]);
        case.checked = Err(Refusal::new(
            reason::POLICY_VIOLATION,
            "Copy of restricted data",
        ));
        case.classification = Ok(ClassificationResult {
            level: Classification::Restricted,
            ..internal()
        });
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Failed));
        assert_eq!(reason_of(&plan, ACCEPTED), reason::POLICY_VIOLATION);
        assert_eq!(
            plan.status.classification.map(|c| c.level),
            Some(Classification::Restricted)
        );
    }

    #[test]
    fn a_policy_without_reviews_shares_nothing() {
        let plan = Case::new(&[]).run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Failed));
        assert_eq!(plan.provision, Provision::Remove);
    }

    #[test]
    fn missing_keys_or_raised_classification_suspend_until_restored() {
        let case =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = case().run();
        assert_eq!(active.status.phase, Some(SharingPhase::Active));

        let mut gone = case().then(&active, 120);
        gone.classification = Err(Refusal::new(
            reason::INVALID_SPEC,
            "spec.data[0]: Secret db has no key password",
        ));
        let suspended = gone.run();
        assert_eq!(suspended.status.phase, Some(SharingPhase::Suspended));
        assert_eq!(suspended.provision, Provision::Remove);
        assert_eq!(reason_of(&suspended, SHARED), reason::SOURCE_CHANGED);

        let restored = case().then(&suspended, 180).run();
        assert_eq!(restored.status.phase, Some(SharingPhase::Active));
        assert_eq!(restored.provision, Provision::Provide);
        assert_eq!(
            restored.status.share.as_ref().map(|s| s.expires_at.clone()),
            active.status.share.as_ref().map(|s| s.expires_at.clone()),
            "retention keeps counting from activation"
        );

        let mut raised = case().then(&active, 120);
        raised.classification = Ok(ClassificationResult {
            level: Classification::Restricted,
            personal_data: true,
            ..internal()
        });
        let plan = raised.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Suspended));
        let shared = find(&plan.status.conditions, SHARED).expect("Shared");
        assert!(
            shared
                .message
                .contains("now restricted (reviewed as internal)"),
            "{}",
            shared.message
        );
        assert!(
            shared.message.contains("personal data"),
            "{}",
            shared.message
        );
    }

    #[test]
    fn revocation_and_policy_withdrawal_remove_the_share() {
        let case = Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = case.run();
        let revoked = Case::new(&["data-owner"])
            .then(&active, 120)
            .annotate("revoke.gatehouse.dev/by", "erin")
            .run();
        assert_eq!(revoked.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(revoked.provision, Provision::Remove);
        assert!(revoked.status.share.and_then(|s| s.removed_at).is_some());

        let mut withdrawn = Case::new(&["data-owner"]).then(&active, 120);
        withdrawn.accepted = Err(Refusal::new(reason::NO_MATCHING_POLICY, "no SharingPolicy"));
        let plan = withdrawn.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(reason_of(&plan, READY), reason::POLICY_WITHDRAWN);

        let after = Case::new(&["data-owner"]).then(&plan, 180).run();
        assert_eq!(after.status, plan.status, "terminal phases never change");
    }

    #[test]
    fn a_policy_that_now_forbids_an_active_share_withdraws_it() {
        let active = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run();
        let mut tightened = Case::new(&["data-owner"]).then(&active, 120);
        tightened.checked = Err(Refusal::new(
            reason::POLICY_VIOLATION,
            "spec.transfer.method: Copy is not allowed for internal data",
        ));
        let plan = tightened.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
        assert_eq!(plan.provision, Provision::Remove);
        assert_eq!(reason_of(&plan, READY), reason::POLICY_WITHDRAWN);
    }

    #[test]
    fn an_approved_share_whose_execution_failed_is_retried_past_the_deadline() {
        let mut status = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .run()
            .status;
        status.phase = Some(SharingPhase::Approved);
        status.share = None;
        let mut late =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        late.status = Some(status);
        late.now = 25 * HOUR;
        let plan = late.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Active));
    }

    #[test]
    fn untrusted_approvals_never_count() {
        let mut case =
            Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        case.unverified = Some("policy gatehouse-approvals is missing");
        let held = case.run();
        assert_eq!(held.status.phase, Some(SharingPhase::Pending));
        assert_eq!(held.provision, Provision::Remove);
        let mut restored = Case::new(&["data-owner"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .then(&held, 120);
        restored.unverified = None;
        let plan = restored.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending), "{plan:?}");
    }

    #[test]
    fn syncs_are_recorded_once_per_source_version_and_bounded() {
        let mut share = ShareRecord {
            objects: vec![],
            activated_at: Time(at(0)),
            expires_at: Time(at(HOUR)),
            seal: None,
            agreement: None,
            syncs: vec![],
            removed_at: None,
        };
        assert!(record_sync(
            &mut share.syncs,
            vec!["Secret/db@1".into()],
            at(1)
        ));
        assert!(!record_sync(
            &mut share.syncs,
            vec!["Secret/db@1".into()],
            at(2)
        ));
        for version in 2..20 {
            assert!(record_sync(
                &mut share.syncs,
                vec![format!("Secret/db@{version}")],
                at(version)
            ));
        }
        assert_eq!(share.syncs.len(), SYNC_HISTORY);
        assert_eq!(
            share.syncs.last().map(|s| s.sources.clone()),
            Some(vec!["Secret/db@19".to_string()])
        );
    }
    #[test]
    fn a_forged_executed_status_shares_nothing_and_ends_the_agreement() {
        let approved =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = approved().run();
        for forge in [
            |s: &mut DataSharingAgreementStatus| s.share = None,
            |s: &mut DataSharingAgreementStatus| {
                if let Some(share) = s.share.as_mut() {
                    share.expires_at = Time(Timestamp::from_second(4_070_908_800).expect("valid"));
                }
            },
            |s: &mut DataSharingAgreementStatus| {
                if let Some(share) = s.share.as_mut() {
                    share.seal = None;
                }
            },
        ] {
            let mut status = active.status.clone();
            forge(&mut status);
            let plan = approved()
                .then(
                    &Plan {
                        status,
                        ..active.clone()
                    },
                    120,
                )
                .run();
            assert_eq!(plan.provision, Provision::Remove);
            assert_eq!(plan.status.phase, Some(SharingPhase::Revoked));
            assert_eq!(reason_of(&plan, STATUS_TAMPERED), reason::STATUS_TAMPERED);
        }
        let kept = approved().then(&active, 120).run();
        assert_eq!(
            kept.provision,
            Provision::Provide,
            "the genuine window keeps sharing"
        );
    }

    #[test]
    fn a_review_by_someone_without_the_right_where_required_does_not_count() {
        let mut case = Case::new(&["data-owner", "security"])
            .annotate("approve.gatehouse.dev/data-owner", "carol")
            .annotate(
                "approve.gatehouse.dev/security",
                "system:serviceaccount:orders:me",
            );
        case.unauthorized = vec![(
            "approve.gatehouse.dev/security".into(),
            "approve.gatehouse.dev/security by system:serviceaccount:orders:me does not count"
                .into(),
        )];
        let plan = case.run();
        assert_eq!(plan.status.phase, Some(SharingPhase::Pending));
        assert_eq!(plan.provision, Provision::Remove);
        assert_eq!(plan.status.waiting_for.as_deref(), Some("security"));
        assert!(
            plan.status
                .ignored_annotations
                .iter()
                .any(|m| m.contains("does not count")),
            "{:?}",
            plan.status.ignored_annotations
        );
    }

    #[test]
    fn an_execution_retry_keeps_the_recorded_window() {
        let approved =
            || Case::new(&["data-owner"]).annotate("approve.gatehouse.dev/data-owner", "carol");
        let active = approved().run();
        let mut failed = active.status.clone();
        failed.phase = Some(SharingPhase::Approved);
        let retried = approved()
            .then(
                &Plan {
                    status: failed,
                    ..active.clone()
                },
                900,
            )
            .run();
        assert_eq!(retried.status.phase, Some(SharingPhase::Active));
        assert_eq!(
            retried
                .status
                .share
                .as_ref()
                .map(|s| (&s.activated_at, &s.expires_at)),
            active
                .status
                .share
                .as_ref()
                .map(|s| (&s.activated_at, &s.expires_at)),
            "retention never moves"
        );
    }
}
