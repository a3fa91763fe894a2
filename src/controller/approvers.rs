//! Approver rights the admission policies cannot check, proven with SubjectAccessReviews:
//! admission checks the right in the object's namespace only, while an access grant may reach
//! other namespaces (or the whole cluster), a policy may require some roles to be held
//! cluster-wide, and whoever controls the beneficiary of an object (mints its ServiceAccount's
//! tokens, reads the Secrets a share lands in) must not decide on it.

use std::collections::BTreeMap;
use std::time::Instant;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::{Context, Error};
use crate::api::{APPROVE_PREFIX, CHANGES_PREFIX, DENY_PREFIX, GROUP};

/// A right whose holder could act as, or read what goes to, the beneficiary of an object.
pub struct Control {
    /// What the right gives, for messages, e.g. `ServiceAccount ci/deployer's tokens`.
    pub what: String,
    pub attributes: ResourceAttributes,
}

/// Minting tokens of ServiceAccount `namespace/name`: acting as it.
pub fn service_account_tokens(namespace: &str, name: &str) -> Control {
    Control {
        what: format!("tokens of ServiceAccount {namespace}/{name}"),
        attributes: ResourceAttributes {
            namespace: Some(namespace.into()),
            verb: Some("create".into()),
            resource: Some("serviceaccounts".into()),
            subresource: Some("token".into()),
            name: Some(name.into()),
            ..Default::default()
        },
    }
}

/// Reading the Secrets of `namespace`: reading whatever a share puts there.
pub fn secrets_in(namespace: &str) -> Control {
    Control {
        what: format!("the Secrets of namespace {namespace}"),
        attributes: ResourceAttributes {
            namespace: Some(namespace.into()),
            verb: Some("get".into()),
            resource: Some("secrets".into()),
            ..Default::default()
        },
    }
}

/// What a decision for one role must pass to count.
pub struct Checks<'a> {
    /// Where its author must hold verb `approve` for the role (`None`: cluster-wide).
    pub scopes: Vec<Option<String>>,
    /// Rights its author must not hold.
    pub controls: &'a [Control],
    /// Whether the role is the recipient's consent, its scope the recipient namespace (messages).
    pub recipient_consent: bool,
}

/// The role a decision annotation decides (approve, deny or request changes), if it is one. A
/// request for changes ends an object as a denial does, so it is verified as one.
pub fn decided_role(key: &str) -> Option<&str> {
    key.strip_prefix(APPROVE_PREFIX)
        .or_else(|| key.strip_prefix(DENY_PREFIX))
        .or_else(|| key.strip_prefix(CHANGES_PREFIX))
}

/// The decision annotations that do not count, with why: their author lacks verb `approve` on
/// `approvals.gatehouse.dev` for the role in one of the scopes `checks(role)` names, or holds one
/// of its controls. `checks(role)` is `None` for roles that are no stage (their annotations never
/// count anyway, so they cost no review). Rights that come only through groups are not seen: for
/// the approve right that fails closed; a control held only through a group is missed (the
/// admission policy refuses members of Group subjects).
pub async fn unauthorized<'a>(
    ctx: &Context,
    annotations: &BTreeMap<String, String>,
    checks: impl Fn(&str) -> Option<Checks<'a>>,
) -> Result<Vec<(String, String)>, Error> {
    let mut unauthorized = Vec::new();
    for (key, user) in annotations {
        let Some(role) = decided_role(key) else {
            continue;
        };
        let user = user.trim();
        let Some(Checks {
            scopes,
            controls,
            recipient_consent,
        }) = checks(role)
        else {
            continue;
        };
        let mut why = None;
        for scope in scopes {
            let right = ResourceAttributes {
                namespace: scope.clone(),
                verb: Some("approve".into()),
                group: Some(GROUP.into()),
                resource: Some("approvals".into()),
                name: Some(role.to_string()),
                ..Default::default()
            };
            if !allowed(ctx, user, right).await? {
                let place = scope
                    .map(|ns| {
                        if recipient_consent {
                            format!("in namespace {ns}, the recipient's, as {role} is its consent (reviews.recipient)")
                        } else {
                            format!("in namespace {ns}, where this applies")
                        }
                    })
                    .unwrap_or_else(|| "cluster-wide, as this applies cluster-wide or its policy lists the role in clusterWideApprovers".into());
                why = Some(format!(
                    "{user} may not approve as {role} {place} (verb approve on approvals.gatehouse.dev, resourceName {role})"
                ));
                break;
            }
        }
        if why.is_none() {
            for control in controls {
                if allowed(ctx, user, control.attributes.clone()).await? {
                    why = Some(format!(
                        "{user} controls {}, which this would give access or data to",
                        control.what
                    ));
                    break;
                }
            }
        }
        if let Some(why) = why {
            unauthorized.push((
                key.clone(),
                format!("{key} by {user} does not count: {why}"),
            ));
        }
    }
    Ok(unauthorized)
}

/// Whether `user` holds `attributes`, answered by a SubjectAccessReview, or by the same question's
/// answer while RBAC has not changed for `user` since ([`super::verdicts`]).
async fn allowed(ctx: &Context, user: &str, attributes: ResourceAttributes) -> Result<bool, Error> {
    let question = serde_json::to_string(&attributes).unwrap_or_default();
    if let Some(allowed) = ctx.verdicts.get(user, &question, Instant::now()) {
        return Ok(allowed);
    }
    let generation = ctx.verdicts.generation();
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.to_string()),
            resource_attributes: Some(attributes),
            ..Default::default()
        },
        ..Default::default()
    };
    let allowed = Api::<SubjectAccessReview>::all(ctx.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|source| Error::Observe {
            what: "an approver's rights",
            source,
        })?
        .status
        .is_some_and(|s| s.allowed);
    ctx.verdicts
        .put(user, question, generation, allowed, Instant::now());
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::decided_role;

    #[test]
    fn every_decision_is_verified_and_nothing_else() {
        assert_eq!(
            decided_role("approve.gatehouse.dev/security"),
            Some("security")
        );
        assert_eq!(
            decided_role("deny.gatehouse.dev/security"),
            Some("security")
        );
        assert_eq!(
            decided_role("changes.gatehouse.dev/security"),
            Some("security"),
            "a request for changes ends the object as a denial does"
        );
        assert_eq!(decided_role("reason.gatehouse.dev/security"), None);
        assert_eq!(decided_role("revoke.gatehouse.dev/by"), None);
        assert_eq!(decided_role("gatehouse.dev/filed-by"), None);
    }
}
