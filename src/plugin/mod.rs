//! `kubectl gatehouse`: the approver's side of the approval protocol as a kubectl plugin.
//!
//! Everything here is pure (no I/O, `now` injected) so it can be unit-tested: naming objects
//! ([`target`]), building the annotation patches and checking them against what is already there
//! ([`patch`]), reading AccessRequests and DataSharingAgreements into one shape ([`summary`]),
//! deciding what waits for whom ([`pending`]), rendering tables ([`table`], [`audit`], who may
//! decide a waiting stage: [`approvers`]), and the
//! auditor's report over AccessRecords ([`report`]). The
//! binary `src/bin/kubectl-gatehouse.rs` is the thin shell that talks to the API server.

pub mod approvers;
pub mod audit;
pub mod patch;
pub mod pending;
pub mod report;
pub mod summary;
pub mod table;
pub mod target;

pub use patch::Verdict;
pub use summary::Summary;
pub use target::{Kind, Target};

/// Everything that can go wrong in the plugin, each message saying what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// A request for changes that does not say what to change.
    #[error(
        "asking for changes on {target} needs --reason saying what to change (e.g. --reason \"ask for 1h, not 8h\"): the requester files a new request with them"
    )]
    ChangesWithoutReason { target: String },
    /// The object was not named as `KIND/NAME`.
    #[error(
        "{input:?} does not name a Gatehouse object: write ar/NAME for an AccessRequest or dsa/NAME for a DataSharingAgreement"
    )]
    InvalidTarget { input: String },

    /// The kind before the `/` is not a Gatehouse kind the plugin acts on.
    #[error(
        "{kind:?} is not a kind kubectl gatehouse acts on: use ar (accessrequest) or dsa (datasharingagreement), e.g. ar/{name}"
    )]
    UnknownKind { kind: String, name: String },

    /// The approver role is not a valid role name.
    #[error(
        "{role:?} is not an approver role name: use 1 to 63 lower-case letters, digits and '-', starting and ending with a letter or digit (e.g. manager, data-owner)"
    )]
    InvalidRole { role: String },

    /// `--reason` was given but empty.
    #[error("--reason is empty: give the reason as text, or leave the flag out")]
    EmptyReason,

    /// The kubeconfig could not be loaded.
    #[error(
        "cannot load the kubeconfig: {0}; pass --kubeconfig PATH and --context NAME, or set KUBECONFIG"
    )]
    Kubeconfig(String),

    /// The API server did not say who the user is.
    #[error(
        "cannot find out who you are (SelfSubjectReview): {0}; check your credentials with kubectl auth whoami"
    )]
    WhoAmI(String),

    /// The user lacks verb `approve` on `approvals/<role>`.
    #[error(
        "{user} may not {verb} as {role:?} in namespace {namespace:?}: that needs verb approve on approvals.gatehouse.dev with resourceName {role:?} in the namespace or cluster-wide; ask an administrator for a RoleBinding to ClusterRole gatehouse-approver-{role} (or a Role granting it)"
    )]
    MayNotDecide {
        user: String,
        verb: &'static str,
        role: String,
        namespace: String,
    },

    /// The user is neither the requester nor holds verb `revoke`.
    #[error(
        "{user} may not revoke {target} in namespace {namespace:?}: only its requester ({requester}) or a holder of verb revoke on approvals.gatehouse.dev may; ask an administrator for a RoleBinding to ClusterRole gatehouse-revoker"
    )]
    MayNotRevoke {
        user: String,
        target: String,
        namespace: String,
        requester: String,
    },

    /// The role already carries a decision that differs from the one asked for.
    #[error(
        "{target} already has a decision for role {role:?}: {existing}; decisions are final and cannot be changed (see kubectl gatehouse audit {short})"
    )]
    AlreadyDecided {
        target: String,
        short: String,
        role: String,
        existing: String,
    },

    /// `--duration` or `--namespaces` cannot be written as given.
    #[error("{flag}: {why}")]
    InvalidNarrowing { flag: &'static str, why: String },

    /// A narrowing for a role already approved: it is set only together with the approval.
    #[error(
        "{target} is already approved as {role:?}, without {narrowing}; a narrowing is set only together with its approval, which is final"
    )]
    NarrowedTooLate {
        target: String,
        role: String,
        narrowing: String,
    },

    /// The reason for the role was already given, with other text.
    #[error(
        "{target} already has a reason for role {role:?} ({existing:?}); reasons are final and cannot be changed"
    )]
    ReasonAlreadyGiven {
        target: String,
        role: String,
        existing: String,
    },

    /// The object is past the point where decisions count.
    #[error(
        "{target} is {phase}: decisions count only while it is Pending or AwaitingAgreement, and an approval annotation can never be removed, so none was added"
    )]
    NotOpen { target: String, phase: String },

    /// Someone already revoked the object.
    #[error("{target} was already revoked by {by}; a revocation is final")]
    AlreadyRevoked { target: String, by: String },

    /// The object does not exist.
    #[error(
        "{target} not found in namespace {namespace:?}: check the name with kubectl get {resource} -n {namespace}, or pass -n NAMESPACE"
    )]
    NotFound {
        target: String,
        resource: &'static str,
        namespace: String,
    },

    /// `--since` is neither a duration nor a time.
    #[error(
        "--since {value:?} is neither a duration nor a time: write e.g. 24h, 7d, 1d12h or 90m (units d, h, m, s), or an RFC 3339 time such as 2026-01-01T00:00:00Z"
    )]
    InvalidSince { value: String },

    /// `--role` does not name a role.
    #[error(
        "--role {value:?} does not name a role: write ClusterRole/NAME, Role/NAME, or NAME for either kind (e.g. ClusterRole/db-reader)"
    )]
    InvalidRoleFilter { value: String },

    /// `--kind` is not a kind AccessRecords record.
    #[error(
        "--kind {value:?} is not a recorded kind: use ar (AccessRequest) or dsa (DataSharingAgreement)"
    )]
    InvalidRecordKind { value: String },

    /// The user may not list AccessRecords.
    #[error(
        "you may not read AccessRecords ({message}); the report needs get and list on accessrecords.gatehouse.dev: ask an administrator for a ClusterRoleBinding to ClusterRole gatehouse-auditor"
    )]
    MayNotReadRecords { message: String },

    /// The API server refused a request; its message is kept verbatim.
    #[error("the API server refused to {action}: {message}")]
    Refused { action: String, message: String },

    /// Talking to the API server failed.
    #[error(
        "cannot {action}: {message}; check that the cluster is reachable (kubectl cluster-info)"
    )]
    Api { action: String, message: String },
}

impl PluginError {
    /// The message of a `kube::Error`, verbatim from the API server where it answered, as
    /// [`PluginError::Refused`]; anything else (connection, TLS, decoding) as [`PluginError::Api`].
    pub fn from_kube(action: impl Into<String>, err: &kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => Self::Refused {
                action: action.into(),
                message: if status.message.is_empty() {
                    format!("HTTP {} {}", status.code, status.reason)
                } else {
                    status.message.clone()
                },
            },
            other => Self::Api {
                action: action.into(),
                message: other.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_refusals_are_kept_verbatim() {
        let status = kube::core::Status::failure(
            "accessrequests.gatehouse.dev \"x\" is forbidden: ValidatingAdmissionPolicy 'gatehouse-approvals' with binding 'gatehouse-approvals' denied request: you may not approve your own request",
            "Forbidden",
        )
        .with_code(403);
        let err = PluginError::from_kube("annotate ar/x", &kube::Error::Api(status.boxed()));
        assert_eq!(
            err.to_string(),
            "the API server refused to annotate ar/x: accessrequests.gatehouse.dev \"x\" is forbidden: ValidatingAdmissionPolicy 'gatehouse-approvals' with binding 'gatehouse-approvals' denied request: you may not approve your own request"
        );
    }

    #[test]
    fn a_missing_right_says_which_binding_to_ask_for() {
        let err = PluginError::MayNotDecide {
            user: "mallory".into(),
            verb: "approve",
            role: "manager".into(),
            namespace: "payments".into(),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("mallory may not approve as \"manager\" in namespace \"payments\""),
            "{text}"
        );
        assert!(text.contains("gatehouse-approver-manager"), "{text}");
    }
}
