//! Proof that a grant works, and that a removed grant is gone: which permission to ask the API
//! server about (a SubjectAccessReview), and what its answer means for the request.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReviewSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::api::common::{Subject, SubjectKind};
use crate::api::conditions::{ACCESS_REMOVED, ACCESS_VERIFIED, ConditionUpdate, reason};

/// One concrete permission of a role: no wildcards, so a yes means this grant (or another one)
/// allows exactly this.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permission {
    pub verb: String,
    pub group: String,
    pub resource: String,
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        write!(f, "{} {resource}", self.verb)
    }
}

/// The first permission of `rules` that names a verb, group and resource without wildcards or
/// resourceNames (a resourceName-limited rule cannot be asked about without guessing a name).
pub fn probe(rules: &[PolicyRule]) -> Option<Permission> {
    rules
        .iter()
        .filter(|r| r.resource_names.as_ref().is_none_or(Vec::is_empty))
        .find_map(|rule| {
            let verb = rule.verbs.iter().find(|v| *v != "*")?;
            let group = rule.api_groups.as_ref()?.iter().find(|g| *g != "*")?;
            let resource = rule.resources.as_ref()?.iter().find(|r| *r != "*")?;
            Some(Permission {
                verb: verb.clone(),
                group: group.clone(),
                resource: resource.clone(),
            })
        })
}

/// The review asking whether `subject` has `permission` in `namespace` (None: cluster-wide).
pub fn review(
    subject: &Subject,
    permission: &Permission,
    namespace: Option<&str>,
) -> SubjectAccessReviewSpec {
    let (user, groups) = match subject.kind {
        SubjectKind::User => (Some(subject.name.clone()), None),
        SubjectKind::Group => (None, Some(vec![subject.name.clone()])),
        SubjectKind::ServiceAccount => (
            Some(format!(
                "system:serviceaccount:{}:{}",
                subject.namespace.as_deref().unwrap_or_default(),
                subject.name
            )),
            None,
        ),
    };
    SubjectAccessReviewSpec {
        user,
        groups,
        resource_attributes: Some(ResourceAttributes {
            namespace: namespace.map(str::to_string),
            verb: Some(permission.verb.clone()),
            group: Some(permission.group.clone()),
            resource: Some(permission.resource.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// What the access is being proven for: it started (the subject must be able to use it) or it
/// ended (the subject must no longer be able to).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Proving {
    Started,
    Ended,
}

impl Proving {
    fn condition(self) -> &'static str {
        match self {
            Proving::Started => ACCESS_VERIFIED,
            Proving::Ended => ACCESS_REMOVED,
        }
    }
}

/// What the API server's answer to the review of `permission` means, as the condition recorded:
/// `subject` can (`Ok(true)`) or cannot use it `where_` (e.g. `in payments`), or the review could
/// not be made (`Err`, with why). `other_grants` names what else grants it, asked only when access
/// that should be gone is still there.
pub fn proof(
    proving: Proving,
    answer: Result<bool, String>,
    subject: &str,
    permission: &Permission,
    where_: &str,
    other_grants: impl FnOnce() -> String,
) -> ConditionUpdate {
    let type_ = proving.condition();
    let (ok, why, message) = match (answer, proving) {
        (Ok(true), Proving::Started) => (
            true,
            reason::CONFIRMED,
            format!("{subject} can {permission} {where_}"),
        ),
        (Ok(false), Proving::Started) => (
            false,
            reason::CONTRADICTED,
            format!(
                "the API server says {subject} cannot {permission} {where_} although the binding exists"
            ),
        ),
        (Ok(false), Proving::Ended) => (
            true,
            reason::CONFIRMED,
            format!("{subject} can no longer {permission} {where_}"),
        ),
        (Ok(true), Proving::Ended) => (
            false,
            reason::CONTRADICTED,
            format!(
                "{subject} can still {permission} {where_}, through {}",
                other_grants()
            ),
        ),
        (Err(err), _) => (
            false,
            reason::UNVERIFIABLE,
            format!("the SubjectAccessReview failed: {err}"),
        ),
    };
    ConditionUpdate::new(type_, ok, why, message)
}

/// The condition when nothing can be asked: the role's rules are unreadable, or it has no
/// permission without wildcards (`why`).
pub fn unprovable(proving: Proving, why: String) -> ConditionUpdate {
    ConditionUpdate::new(proving.condition(), false, reason::UNVERIFIABLE, why)
}

/// How long the API server's RBAC authorizer takes to see a binding change, as the proofs found
/// it: the wait before a proof's first review. Its authorizer learns of bindings from its own
/// cache, a moment after the write; under load that moment grows to hundreds of milliseconds,
/// and asking at once costs a review that is bound to be answered from before the change.
///
/// A proof that needed more than one review sets the estimate to how long it took; from then on
/// the estimate halves every [`AuthorizerLag::HALF_LIFE`], so that it follows the lag back down
/// when the load goes. The decay is by time, not by proofs answered at once: dozens of proofs
/// run at a time, and lowering the estimate for each brought it under the lag within a fraction
/// of a second, so that a third of all proofs needed a second review (benches/scale.rs). An
/// extra review costs the API server CPU, which is what a large batch is short of; waiting a
/// little longer costs none.
#[derive(Debug, Default)]
pub struct AuthorizerLag {
    estimate: Mutex<Option<Lag>>,
}

/// The lag a proof found, and when.
#[derive(Clone, Copy, Debug)]
struct Lag {
    found: Duration,
    at: Instant,
}

impl AuthorizerLag {
    /// The longest wait before a first review: beyond, a slow authorizer costs retries instead.
    pub const MAX: Duration = Duration::from_secs(1);

    /// How long after a proof found a lag the wait is half of it.
    pub const HALF_LIFE: Duration = Duration::from_secs(5);

    /// How long to wait after a binding change, at `now`, before the first review of it.
    pub fn wait(&self, now: Instant) -> Duration {
        let Some(lag) = *self.lock() else {
            return Duration::ZERO;
        };
        let half_lives =
            now.saturating_duration_since(lag.at).as_secs_f64() / Self::HALF_LIFE.as_secs_f64();
        // In whole microseconds: finer than any wait needs, and exact for whole half-lives.
        let micros = lag.found.as_micros() as f64 * 0.5_f64.powf(half_lives);
        Duration::from_micros(micros.round() as u64)
    }

    /// A proof needed `reviews` reviews, and had the answer it expected `elapsed` after the
    /// change (waits included), at `now`.
    pub fn proved(&self, reviews: u32, elapsed: Duration, now: Instant) {
        if reviews > 1 {
            *self.lock() = Some(Lag {
                found: elapsed.min(Self::MAX),
                at: now,
            });
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Lag>> {
        self.estimate.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_follows_the_lag_up_at_once_and_halves_with_time() {
        let lag = AuthorizerLag::default();
        let start = Instant::now();
        assert_eq!(
            lag.wait(start),
            Duration::ZERO,
            "no lag is assumed before a proof found one"
        );
        lag.proved(3, Duration::from_millis(480), start);
        assert_eq!(lag.wait(start), Duration::from_millis(480));
        lag.proved(1, Duration::from_millis(490), start);
        assert_eq!(
            lag.wait(start),
            Duration::from_millis(480),
            "a proof answered at once leaves the estimate to time"
        );
        let later = start + AuthorizerLag::HALF_LIFE;
        assert_eq!(lag.wait(later), Duration::from_millis(240));
        assert_eq!(
            lag.wait(later + 2 * AuthorizerLag::HALF_LIFE),
            Duration::from_millis(60)
        );
        lag.proved(2, Duration::from_millis(600), later);
        assert_eq!(lag.wait(later), Duration::from_millis(600));
    }

    #[test]
    fn the_wait_is_bounded_and_never_negative_for_an_earlier_clock() {
        let lag = AuthorizerLag::default();
        let now = Instant::now() + Duration::from_secs(10);
        lag.proved(15, Duration::from_secs(3), now);
        assert_eq!(lag.wait(now), AuthorizerLag::MAX);
        assert_eq!(
            lag.wait(now - Duration::from_secs(1)),
            AuthorizerLag::MAX,
            "a clock read before the lag was found waits the whole lag"
        );
    }

    fn rule(verbs: &[&str], groups: &[&str], resources: &[&str]) -> PolicyRule {
        PolicyRule {
            verbs: verbs.iter().map(|s| s.to_string()).collect(),
            api_groups: Some(groups.iter().map(|s| s.to_string()).collect()),
            resources: Some(resources.iter().map(|s| s.to_string()).collect()),
            ..Default::default()
        }
    }

    #[test]
    fn probes_the_first_concrete_permission() {
        let rules = [
            rule(&["*"], &["*"], &["*"]),
            rule(&["*", "list"], &[""], &["configmaps"]),
        ];
        let permission = probe(&rules).expect("a concrete permission");
        assert_eq!(
            permission,
            Permission {
                verb: "list".into(),
                group: String::new(),
                resource: "configmaps".into()
            }
        );
        assert_eq!(permission.to_string(), "list configmaps");
    }

    #[test]
    fn no_probe_for_wildcards_or_resource_names_only() {
        let mut named = rule(&["get"], &[""], &["secrets"]);
        named.resource_names = Some(vec!["one".into()]);
        assert_eq!(probe(&[rule(&["*"], &["*"], &["*"]), named]), None);
    }

    #[test]
    fn reviews_name_the_subject_as_the_authorizer_sees_it() {
        let permission = Permission {
            verb: "get".into(),
            group: "apps".into(),
            resource: "deployments".into(),
        };
        let sa = Subject {
            kind: SubjectKind::ServiceAccount,
            name: "ci".into(),
            namespace: Some("tools".into()),
        };
        let spec = review(&sa, &permission, Some("payments"));
        assert_eq!(spec.user.as_deref(), Some("system:serviceaccount:tools:ci"));
        assert_eq!(
            spec.resource_attributes
                .and_then(|r| r.namespace)
                .as_deref(),
            Some("payments")
        );
        let group = Subject {
            kind: SubjectKind::Group,
            name: "oncall".into(),
            namespace: None,
        };
        assert_eq!(
            review(&group, &permission, None).groups,
            Some(vec!["oncall".into()])
        );
    }
}
