//! Pure decisions: no I/O, no clock reads (`now` is an argument), unit-tested without a server.
//! The controllers gather what they observed into plain inputs and act on what these functions
//! decide.

pub mod activation;
pub mod decide;
pub mod duration;
pub mod eligible;
pub mod integrity;
pub mod kind;
pub mod lineage;
pub mod narrowing;
pub mod notify;
pub mod outcome;
pub mod protocol;
pub mod record;
pub mod selector;

/// Why an object cannot proceed: a condition reason and a message that names the field and the fix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    pub fn new(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }
}

/// The policy that governs an object: the one its `spec.policy` names, or else the single policy
/// `matches` accepts. None, several, or an unknown name refuse (fail closed); `kind` is the policy
/// kind for messages, `no_match` the message when none matches.
pub fn governing<'a, P: kube::Resource>(
    wanted: Option<&str>,
    policies: &[&'a P],
    matches: impl Fn(&P) -> bool,
    kind: &str,
    no_match: impl FnOnce() -> String,
) -> Result<&'a P, Refusal> {
    use crate::api::conditions::reason;
    let name = |p: &P| p.meta().name.clone().unwrap_or_default();
    if let Some(wanted) = wanted {
        return policies.iter().copied().find(|p| name(p) == wanted).ok_or_else(|| {
            Refusal::new(
                reason::POLICY_NOT_FOUND,
                format!("spec.policy: {kind} {wanted:?} does not exist; name an existing policy or leave spec.policy unset"),
            )
        });
    }
    let mut matching: Vec<&P> = policies.iter().copied().filter(|p| matches(p)).collect();
    match matching.len() {
        1 => Ok(matching.remove(0)),
        0 => Err(Refusal::new(reason::NO_MATCHING_POLICY, no_match())),
        _ => {
            let mut names: Vec<String> = matching.iter().map(|p| name(p)).collect();
            names.sort_unstable();
            Err(Refusal::new(
                reason::AMBIGUOUS_POLICY,
                format!(
                    "spec.policy: several {kind} objects match ({}); name the one that governs it",
                    names.join(", ")
                ),
            ))
        }
    }
}
