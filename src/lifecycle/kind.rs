//! What the lifecycle core needs to know about a kind: how its status holds the lifecycle's fields
//! ([`Record`]), how it words its messages, and the few fields of its own it derives from what was
//! observed. `AccessRequest` ([`crate::access::kind`]) and `DataSharingAgreement`
//! ([`crate::sharing::kind`]) implement it; everything else is decided once, in
//! [`super::decide`].

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use super::lineage::Lineage;
use crate::api::common::{ApprovalRecord, ApprovedScope, StageApprovers};
use crate::api::{ACTIVATED_AT_ANNOTATION, EXPIRES_AT_ANNOTATION, Phase, WINDOW_SEAL_ANNOTATION};

/// The activation window as a status records it; the seal may be missing (a forged status).
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedWindow {
    pub activated_at: Time,
    pub expires_at: Time,
    pub seal: Option<String>,
}

impl RecordedWindow {
    /// The annotations that carry this window on every object provided under it.
    pub fn annotations(&self) -> [(&'static str, String); 3] {
        [
            (ACTIVATED_AT_ANNOTATION, self.activated_at.0.to_string()),
            (EXPIRES_AT_ANNOTATION, self.expires_at.0.to_string()),
            (
                WINDOW_SEAL_ANNOTATION,
                self.seal.clone().unwrap_or_default(),
            ),
        ]
    }

    /// The window `annotations` carry; `None` unless both times are there and parse. Whether the
    /// operator opened it is for its seal to say ([`super::activation::Sealer::check`]).
    pub fn carried(annotations: &BTreeMap<String, String>) -> Option<RecordedWindow> {
        let time = |key: &str| annotations.get(key)?.parse::<Timestamp>().ok().map(Time);
        Some(RecordedWindow {
            activated_at: time(ACTIVATED_AT_ANNOTATION)?,
            expires_at: time(EXPIRES_AT_ANNOTATION)?,
            seal: annotations
                .get(WINDOW_SEAL_ANNOTATION)
                .filter(|seal| !seal.is_empty())
                .cloned(),
        })
    }
}

/// The lifecycle's part of a status: the same fields for every kind.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub phase: Option<Phase>,
    pub observed_generation: Option<i64>,
    pub policy: Option<String>,
    pub required_approvals: Vec<String>,
    pub waiting_for: Option<String>,
    /// Requested against approved (approvers may narrow it).
    pub scope: Option<ApprovedScope>,
    pub lineage: Lineage,
    pub manager_approvals: Vec<String>,
    pub approvers: Vec<StageApprovers>,
    pub approvals: Vec<ApprovalRecord>,
    pub untrusted_approvals: Vec<String>,
    pub ignored_annotations: Vec<String>,
    pub reminded_at: Option<Time>,
    pub window: Option<RecordedWindow>,
    pub conditions: Vec<Condition>,
    /// The notifications sent so far ([`super::notify`]).
    pub notifications: Vec<crate::api::NotificationRecord>,
}

/// How a kind words what the core decides, so that messages read naturally for each kind.
pub struct Wording {
    /// The CRD kind, e.g. `AccessRequest`.
    pub kind: &'static str,
    /// What a person calls the object: `request`, `agreement`.
    pub noun: &'static str,
    pub policy_kind: &'static str,
    /// The condition that says whether what was approved is provided (`Granted`, `Shared`).
    pub provided_condition: &'static str,
    /// Its reason while waiting for approvals.
    pub waiting_reason: &'static str,
    /// One decision (`approval`, `review`) and its participle (`approved`, `reviewed`).
    pub decision: &'static str,
    pub decided: &'static str,
    /// What each required decision is called in "every … approved".
    pub stage: &'static str,
    /// The verb of provision in "so nothing will be …" (`provisioned`, `shared`).
    pub provisioned: &'static str,
    /// "<provided> until <expiry>" (`granted`, `shared`).
    pub provided: &'static str,
    /// What removal is called in messages: `access removed`, `share removed`.
    pub removed: &'static str,
    /// Why an executed object ends when its policy no longer allows it.
    pub withdrawn: &'static str,
    /// What an approved object whose provisioning failed says before the error.
    pub failed: &'static str,
    /// The message of a revocation by `user`; `executed` when something was provided.
    pub revoked: fn(user: &str, executed: bool) -> String,
    /// The message of a window that ended at `at`.
    pub expired: fn(at: Timestamp) -> String,
    /// The name of the kind's phase for `phase`, as its status writes it.
    pub phase_name: fn(phase: Phase) -> &'static str,
}

/// One approvable, time-bound, provisioned kind.
pub trait Kind {
    /// The status of the CRD.
    type Status: Clone + Default + PartialEq + std::fmt::Debug;
    /// The status fields that are the kind's own, beside the [`Record`].
    type Details;
    /// What those fields are derived from.
    type Facts;

    const WORDING: Wording;

    /// Separates a status into the lifecycle's part and the kind's own.
    fn split(status: Self::Status) -> (Record, Self::Details);
    /// Puts them together again.
    fn join(record: Record, details: Self::Details) -> Self::Status;
    /// The status conditions, for what acting adds (proofs, removal failures).
    fn conditions(status: &mut Self::Status) -> &mut Vec<Condition>;
    /// The phase and the conditions a status records, read without taking it apart (every
    /// reconcile compares them before and after).
    fn phase(status: &Self::Status) -> Option<Phase>;
    fn recorded_conditions(status: &Self::Status) -> &[Condition];
    /// Fills the kind's own fields from what was observed; `executed` once something is provided
    /// (what was approved is then kept as it was approved).
    fn describe(details: &mut Self::Details, facts: &Self::Facts, executed: bool);
    /// Records, as the window opens, what is provided under it.
    fn activated(details: &mut Self::Details, facts: &Self::Facts);
    /// Records what is provided while the window is open, on every reconcile that provides it.
    fn provided(details: &mut Self::Details, facts: &Self::Facts, now: Timestamp);
    /// Records the end: nothing is provided from `now` on.
    fn ended(details: &mut Self::Details, now: Timestamp);
}
