//! Attacks on what a policy governs, as real token users against the real API server and the
//! shared operator: subjects a policy does not allow (system groups, ServiceAccounts, system
//! users), policies named outside the namespaces they select, and what approvers see before they
//! approve.

use std::path::Path;
use std::time::{Duration, Instant};

use gatehouse::api::conditions::{ACCEPTED, find, reason};
use gatehouse::api::{
    AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement, OWNER_LABEL, SharingPhase,
    SharingPolicy,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

use crate::support;

const READER: &str = "gatehouse-e2e-attacks-reader";

/// A namespace labelled `gatehouse-e2e=<ns>` where alice files requests, bob approves as manager
/// and carol as data owner, and an AccessPolicy named like it (`spec` merged over: `READER` there,
/// manager then data-owner, up to 1h).
struct Setup {
    ns: String,
    admin: Client,
    alice: Api<AccessRequest>,
}

async fn setup(kubeconfig: &'static Path, test: &str, spec: Value) -> Setup {
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::unique(test);
    support::namespace(&admin, &ns, &[("gatehouse-e2e", &ns)]).await;
    people(&admin, &ns).await;
    support::cluster_role(&admin, READER, "configmaps").await;
    let mut policy = json!({
        "apiVersion": "gatehouse.dev/v1alpha1",
        "kind": "AccessPolicy",
        "metadata": { "name": ns },
        "spec": {
            "roles": [{ "kind": "ClusterRole", "name": READER }],
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": ns } },
            "maxDuration": "1h",
            "approvals": [{ "role": "manager" }, { "role": "data-owner" }]
        }
    });
    if let (Some(base), Some(extra)) = (policy["spec"].as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    let policy: AccessPolicy = serde_json::from_value(policy).expect("valid AccessPolicy");
    Api::<AccessPolicy>::all(admin.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("policy");
    Setup {
        alice: Api::namespaced(support::client(kubeconfig, "alice").await, &ns),
        ns,
        admin,
    }
}

/// alice files requests in `ns`, bob approves there as manager and carol as data owner.
async fn people(admin: &Client, ns: &str) {
    support::allow_requests(admin, ns, "alice").await;
    support::allow_approval(admin, ns, "bob", "manager").await;
    support::allow_approval(admin, ns, "carol", "data-owner").await;
}

impl Setup {
    /// alice files `name` for `READER` under the policy named like the namespace, with `extra`
    /// merged into the spec (subjects, namespaces).
    async fn request(&self, api: &Api<AccessRequest>, name: &str, extra: Value) {
        let mut spec = json!({
            "requester": "alice",
            "role": { "kind": "ClusterRole", "name": READER },
            "duration": "1h",
            "justification": "OPS-42 read the settlement config",
            "policy": self.ns
        });
        if let (Some(base), Some(extra)) = (spec.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "metadata": { "name": name },
            "spec": spec
        }))
        .expect("valid AccessRequest");
        api.create(&PostParams::default(), &request)
            .await
            .unwrap_or_else(|err| panic!("alice cannot file {name}: {err}"));
    }

    async fn phase(
        &self,
        api: &Api<AccessRequest>,
        name: &str,
        phase: AccessPhase,
    ) -> AccessRequest {
        support::wait_until(api, name, &format!("phase {phase:?}"), |ar| {
            ar.status.as_ref().and_then(|s| s.phase) == Some(phase)
        })
        .await
    }

    /// Deletes what the test created (on success only), so policies do not pile up.
    async fn cleanup(self, namespaces: &[&str]) {
        let params = DeleteParams::default();
        let _ = Api::<AccessPolicy>::all(self.admin.clone())
            .delete(&self.ns, &params)
            .await;
        for ns in std::iter::once(self.ns.as_str()).chain(namespaces.iter().copied()) {
            let _ = Api::<Namespace>::all(self.admin.clone())
                .delete(ns, &params)
                .await;
        }
    }
}

/// The `Accepted` condition as `reason: message`.
fn accepted(status: Option<(&str, &str)>) -> String {
    status
        .map(|(reason, message)| format!("{reason}: {message}"))
        .unwrap_or_default()
}

fn ar_accepted(request: &AccessRequest) -> String {
    accepted(
        request
            .status
            .as_ref()
            .and_then(|s| find(&s.conditions, ACCEPTED))
            .map(|c| (c.reason.as_str(), c.message.as_str())),
    )
}

fn dsa_accepted(agreement: &DataSharingAgreement) -> String {
    accepted(
        agreement
            .status
            .as_ref()
            .and_then(|s| find(&s.conditions, ACCEPTED))
            .map(|c| (c.reason.as_str(), c.message.as_str())),
    )
}

/// `user` writes `annotations` onto `name`, whatever admission says: an attacker tries; a refusal
/// is as good as an approval that does not count.
async fn try_annotate<K>(kubeconfig: &Path, user: &str, ns: &str, name: &str, annotations: Value)
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api = Api::<K>::namespaced(support::client(kubeconfig, user).await, ns);
    let patch = json!({ "metadata": { "annotations": annotations } });
    let result = api
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await;
    eprintln!(
        "e2e: {user} annotates {name} with {annotations}: {}",
        match result {
            Ok(_) => "admitted".to_string(),
            Err(kube::Error::Api(status)) => format!("refused: {}", status.message),
            Err(err) => format!("failed: {err}"),
        }
    );
}

/// bob and carol approve the request `name` in `ns`.
async fn approve_request(kubeconfig: &Path, ns: &str, name: &str) {
    try_annotate::<AccessRequest>(
        kubeconfig,
        "bob",
        ns,
        name,
        json!({ "approve.gatehouse.dev/manager": "bob" }),
    )
    .await;
    try_annotate::<AccessRequest>(
        kubeconfig,
        "carol",
        ns,
        name,
        json!({ "approve.gatehouse.dev/data-owner": "carol" }),
    )
    .await;
}

/// For `period`, `name` stays Failed and no binding the operator made exists in `ns` or
/// cluster-wide for it, however long the operator has to act on the approvals.
async fn stays_failed_with_nothing_bound(
    s: &Setup,
    api: &Api<AccessRequest>,
    ns: &str,
    name: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(6);
    let owner = gatehouse::api::owner_label_value("AccessRequest", ns, name);
    let selector = ListParams::default().labels(&format!("{OWNER_LABEL}={owner}"));
    while Instant::now() < deadline {
        let request = api.get(name).await.expect("the request exists");
        let phase = request.status.as_ref().and_then(|st| st.phase);
        assert_eq!(phase, Some(AccessPhase::Failed), "{request:#?}");
        let bindings = Api::<RoleBinding>::all(s.admin.clone())
            .list(&selector)
            .await
            .expect("list RoleBindings");
        assert!(bindings.items.is_empty(), "{:#?}", bindings.items);
        let cluster_bindings = Api::<ClusterRoleBinding>::all(s.admin.clone())
            .list(&selector)
            .await
            .expect("list ClusterRoleBindings");
        assert!(
            cluster_bindings.items.is_empty(),
            "{:#?}",
            cluster_bindings.items
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `kubectl --context USER ARGS` against the control plane: stdout, or a panic with stderr.
fn kubectl(kubeconfig: &Path, user: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", user])
        .args(args)
        .output()
        .expect("kubectl runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    eprintln!("e2e: {user}$ kubectl {}\n{stdout}", args.join(" "));
    assert!(
        output.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The cells of `table`'s row starting with `name`, keyed by the header line's column names
/// (kubectl separates columns by at least three spaces; a header like `WAITING FOR` or a cell may
/// itself hold single spaces).
fn row(table: &str, name: &str) -> std::collections::BTreeMap<String, String> {
    let mut lines = table.lines();
    let header = lines.next().unwrap_or_default();
    let starts: Vec<usize> = header
        .char_indices()
        .filter(|(i, c)| {
            *c != ' ' && (*i == 0 || header.get(i.saturating_sub(2)..*i) == Some("  "))
        })
        .map(|(i, _)| i)
        .collect();
    let line = lines
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in\n{table}"));
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| {
            let end = starts.get(n + 1).copied();
            let cell = |text: &str| -> String {
                let end = end.unwrap_or(text.len()).min(text.len());
                text.get(start.min(end)..end)
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            (cell(header), cell(line))
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_request_for_system_authenticated_fails_and_nothing_is_bound_after_approvals() {
    let kubeconfig = support::kubeconfig();
    // Even a policy that lists every group by pattern never grants a system: group.
    let s = setup(
        kubeconfig,
        "sysgroup",
        json!({ "subjects": { "groups": ["*"] } }),
    )
    .await;

    // The API server refuses a policy that lists one by name.
    let listing: AccessPolicy = serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessPolicy",
        "metadata": { "name": format!("{}-everyone", s.ns) },
        "spec": {
            "roles": [{ "kind": "ClusterRole", "name": READER }],
            "namespaceSelector": { "matchLabels": { "gatehouse-e2e": s.ns } },
            "maxDuration": "1h", "approvals": [{ "role": "manager" }],
            "subjects": { "groups": ["system:authenticated"] }
        }
    }))
    .expect("valid AccessPolicy");
    let (code, message) = support::rejection(
        Api::<AccessPolicy>::all(s.admin.clone())
            .create(&PostParams::default(), &listing)
            .await,
    );
    assert_eq!(code, 422, "{message}");
    assert!(
        message.contains("spec.subjects.groups may not name system: groups"),
        "{message}"
    );

    s.request(
        &s.alice,
        "everyone-read",
        json!({ "subjects": [{ "kind": "Group", "name": "system:authenticated" }] }),
    )
    .await;
    let failed = s
        .phase(&s.alice, "everyone-read", AccessPhase::Failed)
        .await;
    let condition = ar_accepted(&failed);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.subjects[0]: Group system:authenticated is never grantable",
            reason::POLICY_VIOLATION
        )),
        "{condition}"
    );
    approve_request(kubeconfig, &s.ns, "everyone-read").await;
    stays_failed_with_nothing_bound(&s, &s.alice, &s.ns, "everyone-read").await;
    for user in ["mallory", "alice", "erin"] {
        assert!(
            !support::can_i(kubeconfig, user, "list", "configmaps", &s.ns),
            "{user} must not read configmaps"
        );
    }
    s.cleanup(&[]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_service_account_the_policy_does_not_list_fails() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "sa-unlisted", json!({})).await;
    s.request(
        &s.alice,
        "deployer-read",
        json!({ "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": s.ns }] }),
    )
    .await;
    let failed = s
        .phase(&s.alice, "deployer-read", AccessPhase::Failed)
        .await;
    let condition = ar_accepted(&failed);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.subjects[0]: ServiceAccount {}/deployer may not receive access: AccessPolicy {} allows only the requester as a User",
            reason::POLICY_VIOLATION,
            s.ns,
            s.ns
        )),
        "{condition}"
    );
    assert!(
        condition.contains("spec.subjects.serviceAccounts"),
        "{condition}"
    );
    approve_request(kubeconfig, &s.ns, "deployer-read").await;
    stays_failed_with_nothing_bound(&s, &s.alice, &s.ns, "deployer-read").await;
    let sa = format!("system:serviceaccount:{}:deployer", s.ns);
    assert!(!support::can_i(
        kubeconfig,
        &sa,
        "list",
        "configmaps",
        &s.ns
    ));
    s.cleanup(&[]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_service_account_the_policy_lists_gets_access_and_approvers_see_it_with_get_wide() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "sa-listed", json!({})).await;
    // The policy lists the namespace's ServiceAccounts by pattern.
    let patch = json!({ "spec": { "subjects": { "serviceAccounts": [format!("{}/*", s.ns)] } } });
    Api::<AccessPolicy>::all(s.admin.clone())
        .patch(
            &s.ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("policy lists the ServiceAccounts");
    s.request(
        &s.alice,
        "deployer-read",
        json!({ "subjects": [{ "kind": "ServiceAccount", "name": "deployer", "namespace": s.ns }] }),
    )
    .await;
    let pending = s
        .phase(&s.alice, "deployer-read", AccessPhase::Pending)
        .await;
    let status = pending.status.expect("status");
    assert_eq!(
        status.subjects_summary,
        Some(format!("ServiceAccount {}/deployer", s.ns))
    );
    assert_eq!(status.grant_scope.as_deref(), Some(s.ns.as_str()));

    // What an approver sees before approving, with kubectl get -o wide.
    let wide = kubectl(
        kubeconfig,
        "bob",
        &["get", "accessrequests", "-n", &s.ns, "-o", "wide"],
    );
    let cells = row(&wide, "deployer-read");
    assert_eq!(
        cells.get("SUBJECTS").map(String::as_str),
        Some(format!("ServiceAccount {}/deployer", s.ns).as_str()),
        "{wide}"
    );
    assert_eq!(
        cells.get("SCOPE").map(String::as_str),
        Some(s.ns.as_str()),
        "{wide}"
    );
    let plain = kubectl(kubeconfig, "bob", &["get", "accessrequests", "-n", &s.ns]);
    assert!(
        !plain.contains("SUBJECTS"),
        "the columns are for -o wide: {plain}"
    );

    approve_request(kubeconfig, &s.ns, "deployer-read").await;
    s.phase(&s.alice, "deployer-read", AccessPhase::Active)
        .await;
    let sa = format!("system:serviceaccount:{}:deployer", s.ns);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !support::can_i(kubeconfig, &sa, "list", "configmaps", &s.ns) {
        assert!(
            Instant::now() < deadline,
            "{sa} cannot list configmaps in {} though the request is Active",
            s.ns
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !support::can_i(kubeconfig, "alice", "list", "configmaps", &s.ns),
        "the requester did not ask for herself"
    );
    s.cleanup(&[]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_system_user_subject_fails_even_where_every_user_is_listed() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "sysuser", json!({})).await;
    let patch = json!({ "spec": { "subjects": {
        "users": ["*"], "serviceAccounts": [format!("{}/*", s.ns)]
    } } });
    Api::<AccessPolicy>::all(s.admin.clone())
        .patch(
            &s.ns,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("policy lists every user");
    let sa = format!("system:serviceaccount:{}:deployer", s.ns);
    s.request(
        &s.alice,
        "as-user-read",
        json!({ "subjects": [{ "kind": "User", "name": sa }] }),
    )
    .await;
    let failed = s.phase(&s.alice, "as-user-read", AccessPhase::Failed).await;
    let condition = ar_accepted(&failed);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.subjects[0]: User {sa} is refused",
            reason::POLICY_VIOLATION
        )),
        "{condition}"
    );
    assert!(condition.contains("kind ServiceAccount"), "{condition}");
    approve_request(kubeconfig, &s.ns, "as-user-read").await;
    stays_failed_with_nothing_bound(&s, &s.alice, &s.ns, "as-user-read").await;
    assert!(!support::can_i(
        kubeconfig,
        &sa,
        "list",
        "configmaps",
        &s.ns
    ));
    s.cleanup(&[]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_named_access_policy_that_does_not_select_the_request_namespace_fails() {
    let kubeconfig = support::kubeconfig();
    let s = setup(kubeconfig, "named-ap", json!({})).await;
    // A namespace the policy does not select, where alice files and bob and carol approve.
    let elsewhere = support::unique("named-ap-elsewhere");
    support::namespace(&s.admin, &elsewhere, &[("gatehouse-e2e", "elsewhere")]).await;
    people(&s.admin, &elsewhere).await;
    let alice_elsewhere =
        Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &elsewhere);
    // Filed elsewhere, naming the policy, for the namespace it does select.
    s.request(
        &alice_elsewhere,
        "from-elsewhere",
        json!({ "namespaces": [s.ns] }),
    )
    .await;
    let failed = s
        .phase(&alice_elsewhere, "from-elsewhere", AccessPhase::Failed)
        .await;
    let condition = ar_accepted(&failed);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.policy: AccessPolicy {} does not govern namespace {elsewhere}, where this request is filed: its namespaceSelector (matchLabels gatehouse-e2e={}) does not select {elsewhere}",
            reason::POLICY_VIOLATION,
            s.ns,
            s.ns
        )),
        "{condition}"
    );
    approve_request(kubeconfig, &elsewhere, "from-elsewhere").await;
    stays_failed_with_nothing_bound(&s, &alice_elsewhere, &elsewhere, "from-elsewhere").await;
    for ns in [&s.ns, &elsewhere] {
        assert!(
            !support::can_i(kubeconfig, "alice", "list", "configmaps", ns),
            "alice must not read configmaps in {ns}"
        );
    }
    s.cleanup(&[&elsewhere]).await;
}

#[tokio::test]
#[ignore = "needs the local control plane; make e2e starts it and runs this test"]
async fn a_named_lenient_sharing_policy_outside_its_selectors_shares_nothing() {
    let kubeconfig = support::kubeconfig();
    let admin = support::client(kubeconfig, "admin").await;
    // The data owner namespace and recipient, under a strict policy that selects them.
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "lenient",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "720h" }),
    )
    .await;
    let secret: Secret = serde_json::from_value(json!({
        "metadata": { "name": "orders-db" },
        "stringData": { "host": "db.orders", "password": "p" }
    }))
    .expect("valid Secret");
    Api::<Secret>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &secret)
        .await
        .expect("source Secret");
    // Two lenient policies (no review at all) written for another team: one governs other
    // namespaces, the other governs ns but shares only into other recipients.
    let other_team = format!("{ns}-other");
    let lenient = |name: &str, owners: Value, recipients: Value| -> SharingPolicy {
        serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "SharingPolicy",
            "metadata": { "name": name },
            "spec": {
                "namespaceSelector": owners,
                "recipientNamespaceSelector": recipients,
                "reviews": { "always": [] },
                "maxRetention": "720h",
                "requireAgreement": "Never"
            }
        }))
        .expect("valid SharingPolicy")
    };
    let by_label = |key: &str, value: &str| json!({ "matchLabels": { key: value } });
    let policies = Api::<SharingPolicy>::all(admin.clone());
    let not_owner = format!("{ns}-lenient-owners");
    let not_recipient = format!("{ns}-lenient-recipients");
    for policy in [
        lenient(
            &not_owner,
            by_label("gatehouse-e2e", &other_team),
            by_label("gatehouse-e2e-recipient", &ns),
        ),
        lenient(
            &not_recipient,
            by_label("gatehouse-e2e", &ns),
            by_label("gatehouse-e2e-recipient", &other_team),
        ),
    ] {
        policies
            .create(&PostParams::default(), &policy)
            .await
            .expect("lenient policy");
    }

    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    for (name, policy) in [
        ("via-owners", &not_owner),
        ("via-recipients", &not_recipient),
    ] {
        let agreement: DataSharingAgreement = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": { "name": name, "namespace": ns },
            "spec": {
                "requester": "alice",
                "data": [{ "secret": "orders-db", "keys": ["host", "password"] }],
                "recipient": { "namespace": recipient },
                "purpose": "Monthly revenue reporting",
                "transfer": { "method": "Copy" },
                "retention": "24h",
                "policy": policy
            }
        }))
        .expect("valid DataSharingAgreement");
        alice
            .create(&PostParams::default(), &agreement)
            .await
            .expect("alice files the agreement");
    }
    let failed = |name: &'static str| {
        let alice = alice.clone();
        async move {
            support::wait_until(&alice, name, "phase Failed", |dsa| {
                dsa.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Failed)
            })
            .await
        }
    };
    let condition = dsa_accepted(&failed("via-owners").await);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.policy: SharingPolicy {not_owner} does not govern namespace {ns}, where this agreement is filed: its namespaceSelector (matchLabels gatehouse-e2e={other_team}) does not select {ns}",
            reason::POLICY_VIOLATION
        )),
        "{condition}"
    );
    let condition = dsa_accepted(&failed("via-recipients").await);
    assert!(
        condition.starts_with(&format!(
            "{}: spec.recipient.namespace: {recipient} is not selected by the recipientNamespaceSelector (matchLabels gatehouse-e2e-recipient={other_team}) of SharingPolicy {not_recipient}",
            reason::POLICY_VIOLATION
        )),
        "{condition}"
    );

    // The data owner approves anyway; nothing is shared.
    for name in ["via-owners", "via-recipients"] {
        try_annotate::<DataSharingAgreement>(
            kubeconfig,
            "carol",
            &ns,
            name,
            json!({ "approve.gatehouse.dev/data-owner": "carol" }),
        )
        .await;
    }
    let copies = Api::<Secret>::namespaced(admin.clone(), &recipient);
    let deadline = Instant::now() + Duration::from_secs(6);
    while Instant::now() < deadline {
        let shared = copies
            .list(&ListParams::default())
            .await
            .expect("list recipient Secrets");
        let names: Vec<String> = shared
            .items
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .filter(|n| n.contains("orders-db") || n.starts_with(&ns))
            .collect();
        assert!(names.is_empty(), "shared into {recipient}: {names:?}");
        for name in ["via-owners", "via-recipients"] {
            let dsa = alice.get(name).await.expect("agreement exists");
            assert_eq!(
                dsa.status.as_ref().and_then(|s| s.phase),
                Some(SharingPhase::Failed),
                "{dsa:#?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // kubectl get dsa -o wide shows the recipient and every data item.
    let wide = kubectl(
        kubeconfig,
        "alice",
        &["get", "datasharingagreements", "-n", &ns, "-o", "wide"],
    );
    let cells = row(&wide, "via-owners");
    assert_eq!(
        cells.get("RECIPIENT").map(String::as_str),
        Some(recipient.as_str()),
        "{wide}"
    );
    let data = cells.get("DATA").cloned().unwrap_or_default();
    assert!(
        data.contains("orders-db") && data.contains("password"),
        "{wide}"
    );

    let params = DeleteParams::default();
    for name in [&not_owner, &not_recipient, &ns] {
        let _ = policies.delete(name, &params).await;
    }
    for namespace in [&ns, &recipient] {
        let _ = Api::<Namespace>::all(admin.clone())
            .delete(namespace, &params)
            .await;
    }
}
