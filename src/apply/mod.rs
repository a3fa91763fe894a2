//! The one way the operator changes the cluster for its owners (AccessRequests and
//! DataSharingAgreements): builders (in `access::bindings` and `sharing::objects`) describe the
//! desired [`Object`]s, [`diff`] compares them with what the owner already has in the [`Index`],
//! and [`execute`] makes the changes under one ownership rule: an object is only ever created
//! (never applied over a name someone else holds), and only objects the operator created are
//! replaced or deleted. Nothing relies on garbage collection.

mod diff;
mod execute;
mod index;
mod object;

pub use diff::{Changes, diff, matches};
pub use execute::{Applied, Handover, converge, execute, remove};
pub use index::{Index, Orphan, Watchable, backed_off, orphans};
pub use object::{Key, Kind, Object, Owner, OwnerKind, RBAC_GROUP};

/// The ClusterRole that lists, by name, the roles the operator may `bind` (deploy/base).
pub const BIND_CLUSTER_ROLE: &str = "gatehouse-operator-bind";

/// Errors of provisioning; messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "the operator may not bind {role_kind} {role}: it is not among the roles the operator may grant (verb `bind` with resourceNames on {resource}.rbac.authorization.k8s.io, ClusterRole {BIND_CLUSTER_ROLE}), and the operator does not hold its permissions itself. To grant it, add `{role}` to that list (a deploy/ overlay, see the README's Install section) and apply it: this request is then provisioned on the next retry. To refuse it, remove it from the AccessPolicy. (The API server refused {kind} {name}: {refusal})"
    )]
    BindForbidden {
        kind: &'static str,
        name: String,
        role_kind: String,
        role: String,
        /// `clusterroles` or `roles`: the resource the missing `bind` right is on.
        resource: &'static str,
        /// The API server's message: who was refused and which permissions it lacked.
        refusal: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot apply {kind} {name}: {source}; the operator needs create, patch and update on {kind}s (ClusterRole gatehouse-operator in deploy/base)"
    )]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {name} already exists and was not created for this {owner}, so Gatehouse will not overwrite it; delete or rename it, or file the {owner} under another name"
    )]
    NameTaken {
        kind: &'static str,
        name: String,
        /// What the object was to be created for: `agreement` or `request`.
        owner: &'static str,
    },
    #[error(
        "the API server refuses {kind} {name} as invalid: {message}. It is made from this {owner}'s spec, which names something Kubernetes does not accept there, so it cannot be provisioned as written: file a corrected {owner} and delete this one (it is retried meanwhile, with growing waits, in case an admission policy refused it for now)"
    )]
    Invalid {
        kind: &'static str,
        name: String,
        /// What the object was made for: `agreement` or `request`.
        owner: &'static str,
        /// The API server's message: the field, its value and the rule it breaks.
        message: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "cannot read {kind}s: {source}; the operator needs get and list on them (ClusterRole gatehouse-operator in deploy/base)"
    )]
    List {
        kind: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "{kind} {name} still exists after it was deleted ({holding}); Gatehouse retries until it is gone"
    )]
    StillExists {
        kind: &'static str,
        name: String,
        holding: String,
    },
}

impl Error {
    /// The error for a write of an object made for an `owner` (`request`, `agreement`) that the
    /// API server refused as invalid (422 Invalid: a field breaks a rule of its kind), if it was.
    pub fn invalid(
        kind: &'static str,
        name: &str,
        owner: &'static str,
        source: kube::Error,
    ) -> Result<Error, kube::Error> {
        match &source {
            kube::Error::Api(status) if status.code == 422 && status.reason == "Invalid" => {
                Ok(Error::Invalid {
                    kind,
                    name: name.to_string(),
                    owner,
                    message: status.message.replace('\n', " "),
                    source,
                })
            }
            _ => Err(source),
        }
    }

    /// The error for a failed create or update of a binding to `role_ref`: the API server's
    /// escalation check (the operator may not `bind` the role) gets its own message, with the fix.
    pub fn apply(
        kind: &'static str,
        name: String,
        role_ref: &k8s_openapi::api::rbac::v1::RoleRef,
        source: kube::Error,
    ) -> Error {
        if let Some(refusal) = escalation_refusal(&source) {
            Error::BindForbidden {
                refusal,
                kind,
                name,
                resource: if role_ref.kind == "Role" {
                    "roles"
                } else {
                    "clusterroles"
                },
                role_kind: role_ref.kind.clone(),
                role: role_ref.name.clone(),
                source,
            }
        } else {
            Error::Apply { kind, name, source }
        }
    }
}

/// The API server's message when it refused a binding because its author may neither `bind` the
/// role nor holds its permissions (RBAC escalation prevention), rather than for lack of rights on
/// bindings.
fn escalation_refusal(error: &kube::Error) -> Option<String> {
    match error {
        kube::Error::Api(status)
            if status.code == 403
                && status
                    .message
                    .contains("is attempting to grant RBAC permissions not currently held") =>
        {
            Some(status.message.replace('\n', " "))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::rbac::v1::RoleRef;

    fn forbidden(message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, "Forbidden")
                .with_code(403)
                .boxed(),
        )
    }

    fn role(kind: &str, name: &str) -> RoleRef {
        RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: kind.into(),
            name: name.into(),
        }
    }

    #[test]
    fn an_escalation_refusal_names_the_role_and_the_fix() {
        let err = Error::apply(
            "RoleBinding",
            "payments/gatehouse-payments-alice".into(),
            &role("ClusterRole", "ledger-admin"),
            forbidden(
                "rolebindings.rbac.authorization.k8s.io \"gatehouse-payments-alice\" is forbidden: user \"system:serviceaccount:gatehouse-system:gatehouse\" (groups=[]) is attempting to grant RBAC permissions not currently held:\n{APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]}",
            ),
        );
        let message = err.to_string();
        assert!(matches!(err, Error::BindForbidden { .. }), "{message}");
        for part in [
            "the operator may not bind ClusterRole ledger-admin",
            "clusterroles.rbac.authorization.k8s.io, ClusterRole gatehouse-operator-bind",
            "add `ledger-admin` to that list",
            "remove it from the AccessPolicy",
            "(The API server refused RoleBinding payments/gatehouse-payments-alice: rolebindings.rbac.authorization.k8s.io \"gatehouse-payments-alice\" is forbidden: user",
            "not currently held: {APIGroups:[\"\"], Resources:[\"secrets\"], Verbs:[\"get\"]})",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        let namespaced = Error::apply(
            "RoleBinding",
            "payments/x".into(),
            &role("Role", "ledger-operator"),
            forbidden("is attempting to grant RBAC permissions not currently held"),
        );
        assert!(
            namespaced
                .to_string()
                .contains("bind Role ledger-operator: it is not among the roles the operator may grant (verb `bind` with resourceNames on roles.rbac"),
            "{namespaced}"
        );
    }

    #[test]
    fn an_invalid_object_names_the_field_and_what_to_do() {
        let refused = kube::Error::Api(
            kube::core::Status::failure(
                "RoleBinding.rbac.authorization.k8s.io \"gatehouse.p.r\" is invalid: subjects[0].name: Invalid value: \"Not_A_ServiceAccount\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters",
                "Invalid",
            )
            .with_code(422)
            .boxed(),
        );
        let err = Error::invalid("RoleBinding", "p/gatehouse.p.r", "request", refused)
            .expect("refused as invalid");
        let message = err.to_string();
        for part in [
            "the API server refuses RoleBinding p/gatehouse.p.r as invalid: ",
            "subjects[0].name: Invalid value: \"Not_A_ServiceAccount\"",
            "made from this request's spec",
            "file a corrected request and delete this one",
        ] {
            assert!(message.contains(part), "{part:?} missing from: {message}");
        }
        assert!(
            !message.contains("Status {"),
            "the API server's message, not its whole answer: {message}"
        );
        let forbidden = Error::invalid("RoleBinding", "p/x", "request", forbidden("no"));
        assert!(forbidden.is_err(), "only 422 Invalid is an invalid object");
    }

    #[test]
    fn a_taken_name_is_refused_in_the_words_of_its_owner() {
        let taken = |owner| {
            Error::NameTaken {
                kind: "Secret",
                name: "analytics/orders.to-analytics.db".into(),
                owner,
            }
            .to_string()
        };
        assert_eq!(
            taken("agreement"),
            "Secret analytics/orders.to-analytics.db already exists and was not created for this agreement, so Gatehouse will not overwrite it; delete or rename it, or file the agreement under another name"
        );
        assert!(
            taken("request").contains("not created for this request"),
            "{}",
            taken("request")
        );
    }

    #[test]
    fn other_refusals_say_which_rights_the_operator_needs() {
        let err = Error::apply(
            "RoleBinding",
            "payments/x".into(),
            &role("ClusterRole", "db-reader"),
            forbidden(
                "rolebindings.rbac.authorization.k8s.io is forbidden: User cannot create resource",
            ),
        );
        assert!(matches!(err, Error::Apply { .. }));
        assert!(
            err.to_string().contains(
                "needs create, patch and update on RoleBindings (ClusterRole gatehouse-operator"
            ),
            "{err}"
        );
    }
}
