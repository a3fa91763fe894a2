//! Proof that a grant works, and that a removed grant is gone: which permission to ask the API
//! server about (a SubjectAccessReview), and what its answer means for the request.

use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReviewSpec};
use k8s_openapi::api::rbac::v1::PolicyRule;

use crate::api::common::{Subject, SubjectKind};

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

#[cfg(test)]
mod tests {
    use super::*;

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
