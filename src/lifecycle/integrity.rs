//! Whether the admission policies that make approvals trustworthy are installed exactly as
//! shipped. Without them an annotation proves nothing, so the operator provisions nothing new.

use k8s_openapi::api::admissionregistration::v1::{
    NamedRuleWithOperations, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// The shipped policies (deploy/admission), compiled into the operator so that it compares the
/// cluster against what this version expects.
const SHIPPED: [&str; 6] = [
    include_str!("../../deploy/admission/requester.yaml"),
    include_str!("../../deploy/admission/approvals.yaml"),
    include_str!("../../deploy/admission/narrowing.yaml"),
    include_str!("../../deploy/admission/revocation.yaml"),
    include_str!("../../deploy/admission/status.yaml"),
    include_str!("../../deploy/admission/requester-manager.yaml"),
];

/// The policy that lets only the operator write status, and its one installation-specific part:
/// the variable naming the operator's username.
pub const STATUS_POLICY: &str = "gatehouse-status";
const OPERATOR_VARIABLE: &str = "operator";

/// Objects looked up by name: `None` when the cluster has none of that name.
pub type Found<T> = Vec<(String, Option<T>)>;

/// The policies and bindings this version of the operator relies on.
pub struct Expected {
    pub policies: Vec<ValidatingAdmissionPolicy>,
    pub bindings: Vec<ValidatingAdmissionPolicyBinding>,
}

/// Parses the shipped admission policies, with `operator` (this operator's own username, as the
/// API server authenticates it) as the only identity allowed to write status.
pub fn expected(operator: &str) -> Result<Expected, String> {
    let mut expected = Expected {
        policies: Vec::new(),
        bindings: Vec::new(),
    };
    for file in SHIPPED {
        for document in serde_yaml::Deserializer::from_str(file) {
            let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
            match value.get("kind").and_then(serde_yaml::Value::as_str) {
                Some("ValidatingAdmissionPolicy") => {
                    let mut policy: ValidatingAdmissionPolicy = convert(value)?;
                    name_operator(&mut policy, operator);
                    expected.policies.push(policy);
                }
                Some("ValidatingAdmissionPolicyBinding") => {
                    expected.bindings.push(convert(value)?);
                }
                _ => {}
            }
        }
    }
    Ok(expected)
}

/// Sets the status policy's `operator` variable to `operator`, as a CEL string literal.
fn name_operator(policy: &mut ValidatingAdmissionPolicy, operator: &str) {
    if policy.metadata.name.as_deref() != Some(STATUS_POLICY) {
        return;
    }
    let variables = policy.spec.as_mut().and_then(|s| s.variables.as_mut());
    for variable in variables.into_iter().flatten() {
        if variable.name == OPERATOR_VARIABLE {
            variable.expression =
                format!("'{}'", operator.replace('\\', "\\\\").replace('\'', "\\'"));
        }
    }
}

/// The username the installed status policy lets write status, when it is a plain literal.
fn named_operator(policy: &ValidatingAdmissionPolicy) -> Option<String> {
    let variables = policy.spec.as_ref()?.variables.as_ref()?;
    let expression = &variables
        .iter()
        .find(|v| v.name == OPERATOR_VARIABLE)?
        .expression;
    let literal = expression.trim().strip_prefix('\'')?.strip_suffix('\'')?;
    Some(literal.to_string())
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
                let (wanted_operator, installed_operator) =
                    (named_operator(want), named_operator(have));
                if name == STATUS_POLICY && wanted_operator != installed_operator {
                    problems.push(format!(
                        "ValidatingAdmissionPolicy {name} lets {} write status, but this operator runs as {}: set its variable `{OPERATOR_VARIABLE}` to that username",
                        installed_operator.map(|u| format!("'{u}'")).unwrap_or_else(|| "an unreadable identity".into()),
                        wanted_operator.map(|u| format!("'{u}'")).unwrap_or_default(),
                    ));
                } else if policy_rules(want) != policy_rules(have) {
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
        "paramKind": spec.param_kind,
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

    const OPERATOR: &str = "system:serviceaccount:gatehouse-system:gatehouse";

    #[test]
    fn the_status_policy_must_name_this_operator() {
        let expected = expected(OPERATOR).expect("shipped policies parse");
        let (mut policies, bindings) = installed(&expected);
        let local = expected_for("admin");
        let status = policies
            .iter()
            .position(|(name, _)| name == STATUS_POLICY)
            .expect("status policy");
        policies[status].1 = Some(local);
        let problem = verify(&expected, &policies, &bindings).expect_err("another writer");
        assert!(
            problem.contains("lets 'admin' write status, but this operator runs as 'system:serviceaccount:gatehouse-system:gatehouse'"),
            "{problem}"
        );
        policies[status].1 = None;
        let problem = verify(&expected, &policies, &bindings).expect_err("missing");
        assert!(problem.contains("gatehouse-status is missing"), "{problem}");
    }

    fn expected_for(operator: &str) -> ValidatingAdmissionPolicy {
        expected(operator)
            .expect("shipped policies parse")
            .policies
            .into_iter()
            .find(|p| p.metadata.name.as_deref() == Some(STATUS_POLICY))
            .expect("status policy")
    }

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
        let expected = expected(OPERATOR).expect("shipped policies parse");
        assert_eq!(expected.policies.len(), SHIPPED.len());
        assert_eq!(expected.bindings.len(), SHIPPED.len());
        let (policies, bindings) = installed(&expected);
        assert_eq!(verify(&expected, &policies, &bindings), Ok(()));
    }

    #[test]
    fn a_missing_policy_or_binding_fails() {
        let expected = expected(OPERATOR).expect("shipped policies parse");
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
    fn the_binding_must_read_the_shipped_org_chart() {
        let expected = expected(OPERATOR).expect("shipped policies parse");
        let (mut policies, mut bindings) = installed(&expected);
        let manager = bindings
            .iter()
            .position(|(name, _)| name == "gatehouse-requester-manager")
            .expect("requester-manager binding");
        let param_ref = bindings[manager]
            .1
            .as_mut()
            .and_then(|b| b.spec.as_mut())
            .and_then(|s| s.param_ref.as_mut())
            .expect("it reads the org chart");
        assert_eq!(param_ref.name.as_deref(), Some(crate::api::ORG_CHART));
        assert_eq!(param_ref.namespace, None, "OrgChart is cluster-scoped");
        param_ref.name = Some("another-chart".into());
        let problem = verify(&expected, &policies, &bindings).expect_err("another org chart");
        assert!(
            problem.contains("gatehouse-requester-manager is scoped differently"),
            "{problem}"
        );
        let (_, shipped) = installed(&expected);
        let policy = policies
            .iter_mut()
            .find(|(name, _)| name == "gatehouse-requester-manager")
            .and_then(|(_, p)| p.as_mut())
            .and_then(|p| p.spec.as_mut())
            .expect("requester-manager policy");
        let param_kind = policy.param_kind.as_mut().expect("it has a parameter");
        assert_eq!(param_kind.kind.as_deref(), Some("OrgChart"));
        param_kind.api_version = Some("v1".into());
        param_kind.kind = Some("ConfigMap".into());
        let problem = verify(&expected, &policies, &shipped).expect_err("a ConfigMap again");
        assert!(
            problem.contains("gatehouse-requester-manager differs from the shipped one"),
            "{problem}"
        );
    }

    #[test]
    fn server_side_defaults_are_not_a_change() {
        let expected = expected(OPERATOR).expect("shipped policies parse");
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
        let expected = expected(OPERATOR).expect("shipped policies parse");
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
        let revocation = bindings
            .iter_mut()
            .find(|(name, _)| name == "gatehouse-revocation")
            .expect("shipped");
        if let Some(spec) = revocation.1.as_mut().and_then(|b| b.spec.as_mut()) {
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
