//! Links between objects of one kind: `spec.extends` (a re-approved extension of a grant or share,
//! continuing it without a gap) and `spec.supersedes` (a new filing replacing an old one, e.g. one
//! that ended with changes requested). Both link only objects of the same requester in the same
//! namespace, so nobody extends or marks someone else's.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::Refusal;
use super::decide::Governed;
use super::duration;
use crate::api::Phase;
use crate::api::conditions::reason;

/// The links a status records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Lineage {
    /// The names from the first of the chain to the one this extends.
    pub chain: Vec<String>,
    /// When the chain's uninterrupted access began.
    pub chain_started_at: Option<Time>,
    /// The extension that continues this one, once granted.
    pub extended_by: Option<String>,
    /// The object that replaces this one.
    pub superseded_by: Option<String>,
}

/// What an accepted extension continues.
#[derive(Clone, Debug, PartialEq)]
pub struct Extension {
    /// The names from the first of the chain to the one extended.
    pub chain: Vec<String>,
    /// The extended one's expiry while it is active: the window then runs on from there.
    pub continues_until: Option<Timestamp>,
    /// When the chain's uninterrupted access began.
    pub chain_started_at: Option<Timestamp>,
    /// The longest uninterrupted access a chain may give (the policy's `maxTotalDuration`).
    pub max_total: Option<Duration>,
}

/// The object `spec.extends` names, as observed.
pub struct Original<'a> {
    pub name: &'a str,
    pub requester: &'a str,
    pub phase: Option<Phase>,
    /// The phase as its kind names it, for messages.
    pub phase_name: Option<String>,
    /// Its recorded window: activation and expiry.
    pub window: Option<(Timestamp, Timestamp)>,
    pub lineage: &'a Lineage,
}

/// Whether an extension may go ahead: the original exists, is the same requester's, was granted
/// and not revoked, and `covers` (the kind's check that the extension asks for nothing more) holds.
pub fn extension(
    noun: &str,
    original: Option<Original>,
    requester: &str,
    covers: Result<(), String>,
    max_total: Option<Duration>,
    now: Timestamp,
) -> Result<Extension, Refusal> {
    let refuse = |message: String| Err(Refusal::new(reason::INVALID_EXTENSION, message));
    let Some(original) = original else {
        return refuse(format!(
            "spec.extends names no {noun} in this namespace; name the {noun} whose access this extends, or leave spec.extends out to file a new one"
        ));
    };
    let name = original.name;
    if original.requester != requester {
        return refuse(format!(
            "spec.extends: {name} was requested by {}, not {requester}; only its own requester extends it",
            original.requester
        ));
    }
    if let Err(why) = covers {
        return refuse(format!(
            "spec.extends: an extension asks for no more than {name} was granted, but {why}; file a new {noun} without spec.extends instead"
        ));
    }
    let Some((activated_at, expires_at)) = original.window else {
        return refuse(format!(
            "spec.extends: {name} has not been granted (phase {}); extend it once it is Active",
            original.phase_name.as_deref().unwrap_or("not observed yet")
        ));
    };
    if original.phase == Some(Phase::Revoked) {
        return refuse(format!(
            "spec.extends: {name} was revoked; an extension never brings back what was revoked, so file a new {noun}"
        ));
    }
    let mut chain = original.lineage.chain.clone();
    chain.push(name.to_string());
    let active = original.phase == Some(Phase::Active) && now < expires_at;
    Ok(Extension {
        chain,
        continues_until: active.then_some(expires_at),
        chain_started_at: active.then(|| {
            original
                .lineage
                .chain_started_at
                .as_ref()
                .map(|t| t.0)
                .unwrap_or(activated_at)
        }),
        max_total,
    })
}

/// What the policy requires once `spec.extends` is checked: an extension that may not go ahead
/// fails the object until it may. Once something is provided the check is behind it: an active
/// extension stays as it was granted, whatever becomes of its original.
pub fn governed(
    governed: Result<Governed, Refusal>,
    extension: Option<Result<Extension, Refusal>>,
    phase: Option<Phase>,
) -> Result<Governed, Refusal> {
    let executed = phase.is_some_and(|p| p.is_running() || p.is_terminal());
    match (governed, extension) {
        (Ok(_), Some(Err(refusal))) if !executed => Err(refusal),
        (Ok(mut governed), Some(Ok(extension))) => {
            governed.extension = Some(extension);
            Ok(governed)
        }
        (governed, _) => governed,
    }
}

impl Extension {
    /// How long a window opened at `opens` lasts: an extension of an active one runs on from its
    /// expiry for `duration`, within the chain's cap; anything else lasts `duration`.
    pub fn window_length(&self, opens: Timestamp, duration: Duration) -> Duration {
        let Some(until) = self.continues_until.filter(|until| *until > opens) else {
            return duration;
        };
        let remaining = Duration::try_from(until.duration_since(opens)).unwrap_or_default();
        let length = remaining + duration;
        match (self.chain_started_at, self.max_total) {
            (Some(start), Some(max)) => {
                let cap = duration::after(start, max);
                length.min(Duration::try_from(cap.duration_since(opens)).unwrap_or_default())
            }
            _ => length,
        }
    }

    /// When the uninterrupted access of a window opened at `opens` began.
    pub fn chain_start(&self, opens: Timestamp) -> Timestamp {
        match self.continues_until.filter(|until| *until > opens) {
            Some(_) => self.chain_started_at.unwrap_or(opens),
            None => opens,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid")
    }

    const HOUR: Duration = Duration::from_secs(3600);

    fn original<'a>(phase: Phase, lineage: &'a Lineage) -> Original<'a> {
        Original {
            name: "first",
            requester: "alice",
            phase: Some(phase),
            phase_name: Some(crate::api::AccessPhase::from(phase).to_string()),
            window: Some((at(0), at(3600))),
            lineage,
        }
    }

    #[test]
    fn an_extension_of_an_active_grant_runs_on_from_its_expiry() {
        let lineage = Lineage::default();
        let extension = extension(
            "request",
            Some(original(Phase::Active, &lineage)),
            "alice",
            Ok(()),
            None,
            at(1800),
        )
        .expect("accepted");
        assert_eq!(extension.chain, vec!["first".to_string()]);
        assert_eq!(extension.continues_until, Some(at(3600)));
        assert_eq!(extension.chain_started_at, Some(at(0)));
        assert_eq!(
            extension.window_length(at(2000), HOUR),
            Duration::from_secs(1600) + HOUR,
            "no gap, and one hour beyond the original's expiry"
        );
        assert_eq!(extension.chain_start(at(2000)), at(0));
    }

    #[test]
    fn the_chain_cap_shortens_the_window_and_says_why() {
        let lineage = Lineage {
            chain: vec!["zero".into()],
            chain_started_at: Some(Time(at(-3600))),
            ..Lineage::default()
        };
        let extension = extension(
            "request",
            Some(original(Phase::Active, &lineage)),
            "alice",
            Ok(()),
            Some(3 * HOUR),
            at(1800),
        )
        .expect("accepted");
        assert_eq!(
            extension.chain,
            vec!["zero".to_string(), "first".to_string()]
        );
        assert_eq!(
            extension.window_length(at(1800), 2 * HOUR),
            Duration::from_secs(3600 * 2 - 1800),
            "capped at -1h + 3h"
        );
    }

    #[test]
    fn an_expired_original_is_renewed_from_activation() {
        let lineage = Lineage::default();
        let renewal = extension(
            "request",
            Some(original(Phase::Expired, &lineage)),
            "alice",
            Ok(()),
            None,
            at(7200),
        )
        .expect("accepted");
        assert_eq!(renewal.continues_until, None);
        assert_eq!(renewal.window_length(at(7200), HOUR), HOUR);
        assert_eq!(
            renewal.chain_start(at(7200)),
            at(7200),
            "a new uninterrupted run"
        );
    }

    #[test]
    fn a_missing_foreign_ungranted_revoked_or_wider_original_is_refused() {
        let lineage = Lineage::default();
        let refused = |original: Option<Original>, requester: &str, covers: Result<(), String>| {
            extension("request", original, requester, covers, None, at(10))
                .expect_err("refused")
                .message
        };
        assert!(refused(None, "alice", Ok(())).contains("names no request"));
        assert!(
            refused(Some(original(Phase::Active, &lineage)), "mallory", Ok(()))
                .contains("only its own requester extends it")
        );
        assert!(
            refused(
                Some(original(Phase::Active, &lineage)),
                "alice",
                Err("it asks for role admin".into())
            )
            .contains("it asks for role admin")
        );
        let mut pending = original(Phase::Pending, &lineage);
        pending.window = None;
        assert!(
            refused(Some(pending), "alice", Ok(()))
                .contains("has not been granted (phase Pending)")
        );
        assert!(
            refused(Some(original(Phase::Revoked, &lineage)), "alice", Ok(()))
                .contains("was revoked")
        );
    }
}
