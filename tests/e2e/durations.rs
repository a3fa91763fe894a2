//! The operator's duration parser against the API server's own verdict: every duration the CRD's
//! rule admits, the operator accepts with the same length, and none other. The property tests
//! check this against an oracle of the rule; here kube-apiserver itself decides.

use gatehouse::api::AccessPolicy;
use gatehouse::lifecycle::duration;
use kube::Api;
use kube::api::PostParams;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;
use serde_json::json;

use crate::support;

fn policy(name: &str, max_duration: &str) -> AccessPolicy {
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": name },
        "spec": {
            "roles": [{ "kind": "ClusterRole", "name": "view" }],
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": name } },
            "maxDuration": max_duration,
            "approvals": [{ "role": "manager" }]
        }
    }))
    .expect("valid AccessPolicy")
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn the_operator_accepts_exactly_the_durations_the_api_server_admits() {
    let admin = support::client(support::kubeconfig(), "admin").await;
    let policies: Api<AccessPolicy> = Api::all(admin);
    let dry_run = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    // The edges (Go's i64 of nanoseconds ends at 2562047h47m16.854775807s), spellings outside the
    // grammar, and a fixed sample of the grammar with numbers up to far beyond any duration.
    let mut values: Vec<String> = [
        "2562047h47m16s",
        "2562047h47m17s",
        "153722867m16s",
        "153722868m",
        "9223372036s",
        "9223372037s",
        "99999999999999999999h",
        "0000000000000000000000000001h",
        "0h1s",
        "0h0m0s",
        "0s",
        "1ms",
        "1.5h",
        "+1h",
        "-1h",
        "1h 30m",
        "1d",
        "1H",
        "0",
        "",
        "h",
        "1h30m",
    ]
    .map(String::from)
    .into();
    let mut runner = TestRunner::deterministic();
    let grammar = "([0-9]{1,11}[hms]){1,3}|[0-9]{0,12}[hms]?[0-9.]{0,3}[a-z]{0,2}";
    for _ in 0..80 {
        let tree = grammar.new_tree(&mut runner).expect("a sample");
        values.push(tree.current());
    }
    let mut disagreements = Vec::new();
    for value in &values {
        let name = support::unique("duration");
        let admitted = policies.create(&dry_run, &policy(&name, value)).await;
        let accepted = duration::parse(value);
        match (&admitted, &accepted) {
            (Ok(_), Ok(_)) | (Err(kube::Error::Api(_)), Err(_)) => {}
            _ => disagreements.push(format!(
                "{value:?}: API server {:?}, operator {accepted:?}",
                admitted
                    .as_ref()
                    .map(|_| "admits")
                    .map_err(|e| e.to_string())
            )),
        }
    }
    eprintln!(
        "e2e: {} durations compared with the API server's verdict",
        values.len()
    );
    assert!(disagreements.is_empty(), "{disagreements:#?}");
}
