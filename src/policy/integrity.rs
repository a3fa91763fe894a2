//! Whether the admission policies that make approvals trustworthy are installed exactly as
//! shipped. Without them an annotation proves nothing, so the operator provisions nothing new.

use k8s_openapi::api::admissionregistration::v1::{
    NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The shipped policies (deploy/admission), compiled into the operator so that it compares the
/// cluster against what this version expects.
const SHIPPED: [&str; 3] = [
    include_str!("../../deploy/admission/requester.yaml"),
    include_str!("../../deploy/admission/approvals.yaml"),
    include_str!("../../deploy/admission/revocation.yaml"),
];

/// Objects looked up by name: `None` when the cluster has none of that name.
pub type Found<T> = Vec<(String, Option<T>)>;

/// The policies and bindings this version of the operator relies on.
pub struct Expected {
    pub policies: Vec<ValidatingAdmissionPolicy>,
    pub bindings: Vec<ValidatingAdmissionPolicyBinding>,
}

/// Parses the shipped admission policies.
pub fn expected() -> Result<Expected, String> {
    let mut expected = Expected {
        policies: Vec::new(),
        bindings: Vec::new(),
    };
    for file in SHIPPED {
        for document in serde_yaml::Deserializer::from_str(file) {
            let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
            match value.get("kind").and_then(serde_yaml::Value::as_str) {
                Some("ValidatingAdmissionPolicy") => expected.policies.push(convert(value)?),
                Some("ValidatingAdmissionPolicyBinding") => expected.bindings.push(convert(value)?),
                _ => {}
            }
        }
    }
    Ok(expected)
}

fn convert<T: DeserializeOwned>(value: serde_yaml::Value) -> Result<T, String> {
    serde_yaml::from_value(value).map_err(|e| e.to_string())
}

/// Compares what the cluster has (`None`: not found) with what is expected; the error lists every
/// problem in words an admin can act on.
pub fn verify(
    expected: &Expected,
    policies: &[(String, Option<ValidatingAdmissionPolicy>)],
    bindings: &[(String, Option<ValidatingAdmissionPolicyBinding>)],
) -> Result<(), String> {
    let mut problems = Vec::new();
    for want in &expected.policies {
        let name = want.metadata.name.clone().unwrap_or_default();
        match policies
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, p)| p.as_ref())
        {
            None => problems.push(format!("ValidatingAdmissionPolicy {name} is missing")),
            Some(have) => {
                if policy_rules(want) != policy_rules(have) {
                    problems.push(format!(
                        "ValidatingAdmissionPolicy {name} differs from the shipped one"
                    ));
                }
                if have.spec.as_ref().and_then(|s| s.failure_policy.as_deref()) != Some("Fail") {
                    problems.push(format!(
                        "ValidatingAdmissionPolicy {name} must have failurePolicy Fail"
                    ));
                }
            }
        }
    }
    for want in &expected.bindings {
        let name = want.metadata.name.clone().unwrap_or_default();
        match bindings
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, b)| b.as_ref())
        {
            None => problems.push(format!(
                "ValidatingAdmissionPolicyBinding {name} is missing"
            )),
            Some(have) => {
                let denies = have
                    .spec
                    .as_ref()
                    .and_then(|s| s.validation_actions.as_ref())
                    .is_some_and(|actions| actions.iter().any(|a| a == "Deny"));
                if !denies {
                    problems.push(format!(
                        "ValidatingAdmissionPolicyBinding {name} does not Deny"
                    ));
                }
                if binding_scope(want) != binding_scope(have) {
                    problems.push(format!("ValidatingAdmissionPolicyBinding {name} is scoped differently from the shipped one"));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// What a policy checks and on which requests: the parts an admin could weaken. Server-side
/// defaults (matchPolicy, empty selectors) are left out so that they never count as a change.
fn policy_rules(policy: &ValidatingAdmissionPolicy) -> Option<serde_json::Value> {
    let spec = policy.spec.as_ref()?;
    Some(collapse_whitespace(serde_json::json!({
        "validations": spec.validations,
        "variables": spec.variables,
        "matchConditions": spec.match_conditions,
        "namespaceSelector": spec.match_constraints.as_ref().and_then(|m| m.namespace_selector.clone()).filter(|s| s != &Default::default()),
        "objectSelector": spec.match_constraints.as_ref().and_then(|m| m.object_selector.clone()).filter(|s| s != &Default::default()),
        "resourceRules": spec.match_constraints.as_ref().and_then(|m| m.resource_rules.clone()).map(defaulted),
        "excludeResourceRules": spec.match_constraints.as_ref().and_then(|m| m.exclude_resource_rules.clone()).map(defaulted),
    })))
}

/// CEL does not care about layout, and YAML tools reflow block strings: compare every string
/// with runs of white space folded to one space.
fn collapse_whitespace(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(text) => Value::String(text.split_whitespace().collect::<Vec<_>>().join(" ")),
        Value::Array(items) => Value::Array(items.into_iter().map(collapse_whitespace).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, collapse_whitespace(v)))
                .collect(),
        ),
        other => other,
    }
}

/// Rules as the API server stores them: an unset scope means every scope (`*`).
fn defaulted(mut rules: Vec<NamedRuleWithOperations>) -> Vec<NamedRuleWithOperations> {
    for rule in &mut rules {
        rule.scope.get_or_insert_with(|| "*".to_string());
    }
    rules
}

/// Which policy a binding enforces and where; a narrowed scope would exempt requests.
fn binding_scope(binding: &ValidatingAdmissionPolicyBinding) -> Option<serde_json::Value> {
    let spec = binding.spec.as_ref()?;
    let resources = spec.match_resources.as_ref();
    Some(serde_json::json!({
        "policyName": spec.policy_name,
        "paramRef": spec.param_ref,
        "resourceRules": resources.and_then(|m| m.resource_rules.clone()).map(defaulted),
        "excludeResourceRules": resources.and_then(|m| m.exclude_resource_rules.clone()).map(defaulted),
        "namespaceSelector": resources.and_then(|m| m.namespace_selector.clone()).filter(|s| s != &Default::default()),
        "objectSelector": resources.and_then(|m| m.object_selector.clone()).filter(|s| s != &Default::default()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn installed(
        expected: &Expected,
    ) -> (
        Found<ValidatingAdmissionPolicy>,
        Found<ValidatingAdmissionPolicyBinding>,
    ) {
        (
            expected
                .policies
                .iter()
                .map(|p| (p.metadata.name.clone().unwrap_or_default(), Some(p.clone())))
                .collect(),
            expected
                .bindings
                .iter()
                .map(|b| (b.metadata.name.clone().unwrap_or_default(), Some(b.clone())))
                .collect(),
        )
    }

    #[test]
    fn the_shipped_policies_parse_and_verify_against_themselves() {
        let expected = expected().expect("shipped policies parse");
        assert_eq!(expected.policies.len(), 3);
        assert_eq!(expected.bindings.len(), 3);
        let (policies, bindings) = installed(&expected);
        assert_eq!(verify(&expected, &policies, &bindings), Ok(()));
    }

    #[test]
    fn a_missing_policy_or_binding_fails() {
        let expected = expected().expect("shipped policies parse");
        let (mut policies, mut bindings) = installed(&expected);
        policies[1].1 = None;
        bindings[0].1 = None;
        let problems = verify(&expected, &policies, &bindings).expect_err("unverified");
        assert!(
            problems.contains("ValidatingAdmissionPolicy gatehouse-approvals is missing"),
            "{problems}"
        );
        assert!(
            problems.contains("ValidatingAdmissionPolicyBinding gatehouse-requester is missing"),
            "{problems}"
        );
    }

    #[test]
    fn server_side_defaults_are_not_a_change() {
        let expected = expected().expect("shipped policies parse");
        let (mut policies, bindings) = installed(&expected);
        for (_, policy) in &mut policies {
            let rules = policy
                .as_mut()
                .and_then(|p| p.spec.as_mut())
                .and_then(|s| s.match_constraints.as_mut())
                .and_then(|m| m.resource_rules.as_mut());
            for rule in rules.into_iter().flatten() {
                rule.scope = Some("*".into());
            }
        }
        assert_eq!(verify(&expected, &policies, &bindings), Ok(()));
    }

    #[test]
    fn a_weakened_policy_or_binding_fails() {
        let expected = expected().expect("shipped policies parse");
        let (mut policies, mut bindings) = installed(&expected);
        if let Some(spec) = policies[1].1.as_mut().and_then(|p| p.spec.as_mut()) {
            spec.validations.get_or_insert_default().pop();
        }
        if let Some(constraints) = policies[0]
            .1
            .as_mut()
            .and_then(|p| p.spec.as_mut())
            .and_then(|s| s.match_constraints.as_mut())
        {
            constraints.object_selector = Some(
                k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector {
                    match_labels: Some([("exempt".to_string(), "yes".to_string())].into()),
                    ..Default::default()
                },
            );
        }
        if let Some(spec) = bindings[2].1.as_mut().and_then(|b| b.spec.as_mut()) {
            spec.validation_actions = Some(vec!["Audit".into()]);
        }
        let problems = verify(&expected, &policies, &bindings).expect_err("unverified");
        assert!(
            problems.contains("gatehouse-approvals differs from the shipped one"),
            "{problems}"
        );
        assert!(
            problems.contains("gatehouse-revocation does not Deny"),
            "{problems}"
        );
    }
}
