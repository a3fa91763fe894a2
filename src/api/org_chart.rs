use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// The name of the one OrgChart that counts: admission policy gatehouse-requester-manager's
/// binding names it as its parameter, and the operator watches it.
pub const ORG_CHART: &str = "gatehouse";

/// The most entries an org chart holds: bounds the cost of its validation rule, and at 253 bytes
/// per username stays under the size of one object etcd stores.
const MAX_ENTRIES: u32 = 2000;

/// Who is whose manager, for approval stages the requester's manager decides (AccessPolicy
/// `approvals[].approver: RequesterManager`, SharingPolicy `reviews.requesterManager`).
/// Cluster-scoped and one object, `gatehouse`: whoever may write it decides who approves manager
/// stages, so only cluster admins (or the HR sync they run) get write access to `orgcharts`.
#[derive(CustomResource, Clone, Debug, Default, Deserialize, Serialize, KubeSchema)]
#[kube(
    group = "gatehouse.dev",
    version = "v1alpha1",
    kind = "OrgChart",
    category = "gatehouse",
    doc = "Who is whose manager, for approval stages the requester's manager decides. One object, named gatehouse.",
    validation = kube::core::Rule::new("self.metadata.name == 'gatehouse'").message("the org chart is the OrgChart named gatehouse (admission policy gatehouse-requester-manager reads that one); put the entries there"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct OrgChartSpec {
    /// The manager of each user: key the username, value their manager's username, e.g.
    /// `alice: bob`. Only the manager named here decides a manager stage of that user's requests
    /// and agreements; a user with no entry has no manager, so nobody can decide such a stage.
    /// A user named as their own manager still never decides their own request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "managers_schema")]
    pub managers: BTreeMap<String, String>,
}

/// A map of usernames to usernames: each non-empty, at most 253 characters (as
/// `spec.requester`), without white space around it (a typo that would silently map nobody).
fn managers_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": MAX_ENTRIES,
        "additionalProperties": {
            "type": "string",
            "minLength": 1,
            "maxLength": 253,
            "pattern": r"^\S(.*\S)?$",
        },
        "x-kubernetes-validations": [{
            "rule": r"self.all(user, size(user) <= 253 && user.matches('^\\S(.*\\S)?$'))",
            "message": "each key of spec.managers is a username: not empty, at most 253 characters, no white space around it",
        }],
    })
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn the_org_chart_is_one_cluster_scoped_object_of_username_entries() {
        let crd = serde_json::to_value(OrgChart::crd()).expect("serializable");
        assert_eq!(crd["spec"]["scope"], "Cluster");
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        assert!(
            schema["x-kubernetes-validations"][0]["rule"]
                .as_str()
                .is_some_and(|rule| rule.contains(&format!("'{ORG_CHART}'"))),
            "{schema}"
        );
        let managers = &schema["properties"]["spec"]["properties"]["managers"];
        assert_eq!(managers["additionalProperties"]["minLength"], 1);
        assert_eq!(managers["additionalProperties"]["maxLength"], 253);
        assert_eq!(managers["maxProperties"], MAX_ENTRIES);
        let chart: OrgChart = serde_json::from_value(serde_json::json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "OrgChart",
            "metadata": { "name": ORG_CHART }, "spec": {}
        }))
        .expect("an org chart without entries");
        assert!(chart.spec.managers.is_empty());
    }
}
