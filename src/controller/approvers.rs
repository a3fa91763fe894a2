//! Approver rights the admission policies cannot check, proven with SubjectAccessReviews: admission
//! checks the right in the object's namespace only, while an access grant may reach other
//! namespaces (or the whole cluster), and a policy may require some roles to be held cluster-wide.

use std::collections::BTreeMap;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use kube::Api;
use kube::api::PostParams;

use super::{Context, Error};
use crate::api::{APPROVE_PREFIX, DENY_PREFIX, GROUP};

/// The decision annotations whose author lacks verb `approve` on `approvals.gatehouse.dev` for
/// the role in one of the scopes `scopes(role)` names (`None`: cluster-wide), each with why it does
/// not count. Rights that come only through groups are not seen (fail closed).
pub async fn unauthorized(
    ctx: &Context,
    annotations: &BTreeMap<String, String>,
    scopes: impl Fn(&str) -> Vec<Option<String>>,
) -> Result<Vec<(String, String)>, Error> {
    let api = Api::<SubjectAccessReview>::all(ctx.client.clone());
    let mut unauthorized = Vec::new();
    for (key, user) in annotations {
        let Some(role) = key
            .strip_prefix(APPROVE_PREFIX)
            .or_else(|| key.strip_prefix(DENY_PREFIX))
        else {
            continue;
        };
        for scope in scopes(role) {
            let review = SubjectAccessReview {
                spec: SubjectAccessReviewSpec {
                    user: Some(user.trim().to_string()),
                    resource_attributes: Some(ResourceAttributes {
                        namespace: scope.clone(),
                        verb: Some("approve".into()),
                        group: Some(GROUP.into()),
                        resource: Some("approvals".into()),
                        name: Some(role.to_string()),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                ..Default::default()
            };
            let allowed = api
                .create(&PostParams::default(), &review)
                .await
                .map_err(|source| Error::Observe {
                    what: "an approver's rights",
                    source,
                })?
                .status
                .is_some_and(|s| s.allowed);
            if !allowed {
                let place = scope
                    .map(|ns| format!("in namespace {ns}, where this applies"))
                    .unwrap_or_else(|| "cluster-wide, as this applies cluster-wide or its policy lists the role in clusterWideApprovers".into());
                unauthorized.push((
                    key.clone(),
                    format!("{key} by {user} does not count: {user} may not approve as {role} {place} (verb approve on approvals.gatehouse.dev, resourceName {role})"),
                ));
                break;
            }
        }
    }
    Ok(unauthorized)
}
