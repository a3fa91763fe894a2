//! Condition types and reasons, and the one helper that sets a condition.
//!
//! Conditions follow the Kubernetes API conventions (and kstatus): `lastTransitionTime` changes only
//! when the status changes, and every condition carries the generation it was computed for.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// The spec was checked and a policy governs it; the request is being processed.
pub const ACCEPTED: &str = "Accepted";

/// The request holds its access now (kstatus `Ready`: True while active; a terminal outcome says
/// why it is not).
pub const READY: &str = "Ready";

/// Access is provisioned: the bindings exist exactly as approved.
pub const GRANTED: &str = "Granted";

/// The admission policies that verify approvals are installed as shipped; while they are not,
/// nothing new is provisioned.
pub const APPROVAL_INTEGRITY: &str = "ApprovalIntegrity";

/// A data share is executed: the shared objects exist exactly as approved and in sync with the
/// sources.
pub const SHARED: &str = "Shared";

/// A SubjectAccessReview proved the provisioned grant works.
pub const ACCESS_VERIFIED: &str = "AccessVerified";

/// A SubjectAccessReview proved the access is gone after expiry or revocation, or names what
/// still grants it.
pub const ACCESS_REMOVED: &str = "AccessRemoved";

/// True when the recorded status contradicts what the operator wrote (an activation without its
/// seal, a moved expiry): access is removed and the object ends, because nothing it records can be
/// trusted any more.
pub const STATUS_TAMPERED: &str = "StatusTampered";

/// Everything the operator created for the object was deleted, and a read-back proved it gone;
/// False (reason `RemovalFailed`) while something still exists, retried until it holds.
pub const REMOVED: &str = "Removed";

/// The condition type of one approval stage, e.g. `ManagerApproved` for role `manager` and
/// `DataOwnerApproved` for `data-owner`, so `kubectl wait --for=condition=ManagerApproved` works.
pub fn stage_condition(role: &str) -> String {
    let mut out = String::new();
    for part in role.split(['-', '.', '_']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out.push_str("Approved");
    out
}

/// Reasons of the `Accepted` condition.
pub mod reason {
    /// The spec is valid and exactly one policy governs it.
    pub const VALID: &str = "Valid";
    /// Reviews may proceed, but nothing is shared until `spec.agreement.reference` is filed.
    pub const AWAITING_AGREEMENT: &str = "AwaitingAgreement";
    /// Every stage approved before `spec.startAt`: nothing is provided until then.
    pub const SCHEDULED: &str = "Scheduled";
    /// A source no longer holds what was approved (an object or key is gone, or its
    /// classification rose): the share is suspended until it does again.
    pub const SOURCE_CHANGED: &str = "SourceChanged";
    /// A spec field is invalid; the message names the field and the fix.
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// No policy governs the object; nothing will be granted or shared.
    pub const NO_MATCHING_POLICY: &str = "NoMatchingPolicy";
    /// The named policy does not exist.
    pub const POLICY_NOT_FOUND: &str = "PolicyNotFound";
    /// Several policies match; the object must name one in `spec.policy`.
    pub const AMBIGUOUS_POLICY: &str = "AmbiguousPolicy";
    /// The object asks for something its policy does not allow; the message says what would be.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// Waiting for an approver of this stage.
    pub const WAITING: &str = "Waiting";
    /// Approved, but counts only after the earlier stages approve.
    /// A `RequesterManager` stage nobody can decide: the org chart names no manager for the
    /// requester (the message names the OrgChart key to add).
    pub const NO_MANAGER: &str = "NoManager";
    pub const WAITING_FOR_EARLIER_STAGE: &str = "WaitingForEarlierStage";
    /// The stage approved.
    pub const APPROVED: &str = "Approved";
    /// An approver denied the request.
    pub const DENIED: &str = "Denied";
    /// An approver asked for changes; the object ended without access.
    pub const CHANGES_REQUESTED: &str = "ChangesRequested";
    /// Approvers narrowed an AccessRequest's namespaces to none in common: nothing is granted.
    pub const NARROWED_TO_NOTHING: &str = "NarrowedToNothing";
    /// An extension (`spec.extends`) was granted and continues what this one provided.
    pub const EXTENDED: &str = "Extended";
    /// `spec.extends` names nothing this object may extend; the message says why.
    pub const INVALID_EXTENSION: &str = "InvalidExtension";
    /// A separation-of-duties rule forbids the grant.
    pub const SEPARATION_OF_DUTIES: &str = "SeparationOfDutiesConflict";
    /// Not fully approved within the policy's pendingTimeout.
    pub const TIMED_OUT: &str = "TimedOut";
    /// The bindings exist exactly as approved.
    pub const PROVISIONED: &str = "Provisioned";
    /// Provisioning failed; the message says why and what to do.
    pub const PROVISIONING_FAILED: &str = "ProvisioningFailed";
    /// The duration ran out and the bindings were removed.
    pub const EXPIRED: &str = "Expired";
    /// Someone revoked the access.
    pub const REVOKED: &str = "Revoked";
    /// The policy no longer allows an active grant; it was removed.
    pub const POLICY_WITHDRAWN: &str = "PolicyWithdrawn";
    /// The approval admission policies are installed as shipped.
    pub const VERIFIED: &str = "Verified";
    /// The approval admission policies are missing or changed: approvals cannot be trusted.
    pub const APPROVAL_INTEGRITY_UNVERIFIED: &str = "ApprovalIntegrityUnverified";
    /// The API server answered the SubjectAccessReview as expected.
    pub const CONFIRMED: &str = "Confirmed";
    /// The API server's answer contradicts what the grant should do; the message says what.
    pub const CONTRADICTED: &str = "Contradicted";
    /// The role has no concrete permission to ask about, or the review failed.
    pub const UNVERIFIABLE: &str = "Unverifiable";
    /// Not granted (yet or any more) for a reason another condition gives.
    pub const NOT_GRANTED: &str = "NotGranted";
    /// The recorded activation was not written by the operator.
    pub const STATUS_TAMPERED: &str = "StatusTampered";
    /// Everything created was deleted and is proven gone.
    pub const REMOVED: &str = "Removed";
    /// Something created could not be deleted, or still exists after deletion.
    pub const REMOVAL_FAILED: &str = "RemovalFailed";
}

/// What a condition should say, before timestamps and generations are attached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConditionUpdate {
    pub type_: String,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

impl ConditionUpdate {
    pub fn new(
        type_: impl Into<String>,
        status: bool,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            type_: type_.into(),
            status,
            reason,
            message: message.into(),
        }
    }
}

/// The longest message the API server accepts in a condition (bytes).
pub const MESSAGE_LIMIT: usize = 32768;

/// `text` cut to at most `limit` bytes (on a character boundary), marked when cut.
pub fn bounded(text: &str, limit: usize) -> String {
    const MARK: &str = " …(cut)";
    if text.len() <= limit {
        return text.to_string();
    }
    let mut cut = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{MARK}", &text[..cut])
}

/// Sets `update` in `conditions`, keeping `lastTransitionTime` when the status did not change so
/// that a converged object's status stays byte-identical between reconciles.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    update: ConditionUpdate,
    generation: Option<i64>,
    now: Time,
) {
    let status = if update.status { "True" } else { "False" }.to_string();
    let existing = conditions.iter_mut().find(|c| c.type_ == update.type_);
    let last_transition_time = match &existing {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => now,
    };
    let condition = Condition {
        type_: update.type_,
        status,
        reason: update.reason.to_string(),
        message: bounded(&update.message, MESSAGE_LIMIT),
        observed_generation: generation,
        last_transition_time,
    };
    match existing {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
}

/// Sets every condition of `types` to the same outcome: the conditions that move together, such
/// as `Accepted` and `Ready` when a spec is refused, or `Granted` and `Ready` when access ends.
pub fn set_conditions(
    conditions: &mut Vec<Condition>,
    types: &[&str],
    status: bool,
    reason: &'static str,
    message: &str,
    generation: Option<i64>,
    now: Time,
) {
    for type_ in types {
        let update = ConditionUpdate::new(*type_, status, reason, message);
        set_condition(conditions, update, generation, now.clone());
    }
}

/// Puts back the conditions of `types` as they were in `previous` (dropping ones it lacked): for a
/// decision overridden after the fact (a grant that could not be provisioned), so that the
/// override is compared with what was last written and a retry that changes nothing writes
/// nothing.
pub fn restore(conditions: &mut Vec<Condition>, previous: &[Condition], types: &[&str]) {
    for type_ in types {
        conditions.retain(|c| c.type_ != *type_);
        if let Some(last) = find(previous, type_) {
            conditions.push(last.clone());
        }
    }
}

/// The condition of the given type, if set.
pub fn find<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).expect("valid test timestamp"))
    }

    #[test]
    fn an_override_restored_from_the_last_status_keeps_its_transition_time() {
        let failed = |conditions: &mut Vec<Condition>, now| {
            set_conditions(
                conditions,
                &[READY],
                false,
                reason::PROVISIONING_FAILED,
                "refused",
                Some(1),
                now,
            )
        };
        let mut written = Vec::new();
        failed(&mut written, at(10));
        // The next attempt decides "ready" first, then fails the same way.
        let mut retry = written.clone();
        set_conditions(
            &mut retry,
            &[READY],
            true,
            reason::PROVISIONED,
            "granted",
            Some(1),
            at(20),
        );
        restore(&mut retry, &written, &[READY]);
        failed(&mut retry, at(20));
        assert_eq!(retry, written, "nothing to write");
        let mut first = Vec::new();
        restore(&mut first, &[], &[READY]);
        assert!(
            first.is_empty(),
            "a condition the last status lacked stays absent"
        );
    }

    #[test]
    fn keeps_transition_time_while_status_is_unchanged() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionUpdate::new(ACCEPTED, true, reason::VALID, "ok"),
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            ConditionUpdate::new(ACCEPTED, true, reason::VALID, "still ok"),
            Some(2),
            at(20),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(10));
        assert_eq!(conditions[0].message, "still ok");
        assert_eq!(conditions[0].observed_generation, Some(2));
    }

    #[test]
    fn stage_conditions_are_camel_case() {
        assert_eq!(stage_condition("manager"), "ManagerApproved");
        assert_eq!(stage_condition("data-owner"), "DataOwnerApproved");
    }

    #[test]
    fn moves_transition_time_when_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            ConditionUpdate::new(ACCEPTED, true, reason::VALID, "ok"),
            Some(1),
            at(10),
        );
        set_condition(
            &mut conditions,
            ConditionUpdate::new(ACCEPTED, false, reason::INVALID_SPEC, "bad"),
            Some(1),
            at(20),
        );
        assert_eq!(conditions[0].last_transition_time, at(20));
        assert_eq!(conditions[0].status, "False");
        assert_eq!(
            find(&conditions, ACCEPTED).map(|c| c.reason.as_str()),
            Some(reason::INVALID_SPEC)
        );
    }
}
