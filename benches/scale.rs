//! Measures Gatehouse at scale on the local control plane (issue #12) and prints, for each N, one
//! table against a tight client measured in the same run, and one of memory and API calls:
//! - N pre-approved AccessRequests for N different people (filed on their behalf), operator
//!   started → all RoleBindings exist; the same with one person holding all N grants;
//! - N approved Copy DataSharingAgreements, operator started → all copies exist;
//! - one rotation of a source shared by min(N, 1,000) agreements → all copies updated;
//! - intake: N filings with the operator running → all `Pending` with `status.requiredApprovals`;
//! - expiry: N grants expiring in the same second → all RoleBindings removed (worst lag, early);
//! - a restart over N converged requests and N converged shares: writes in the first 30 s, time
//!   to `/readyz`;
//! - the operator's peak RSS (VmHWM) and API requests per object in each scenario;
//! - the floor under the many-people requests: the tight client making the operator's own calls
//!   (binding, proof, status, Event, record) for N fresh requests, each kind timed on its own
//!   with the control plane's CPU, so that what the operator adds and what the API server charges
//!   for a grant are told apart.
//!
//! The tight client is one kube `Client` with 8 requests in flight (keep-alive connections),
//! creating the same kind of objects directly: what the API server accepts, the physical limit.
//! Each scenario has namespaces of its own and an operator process of its own (a release build,
//! running as its ServiceAccount, started when the scenario says so), deleted and stopped before
//! the next one starts. Everything is set up while that operator is stopped, so "pre-approved"
//! objects are approved before it ever sees them.
//!
//! `cargo bench --bench scale` (or `make bench-scale`); `GATEHOUSE_BENCH_SCALE` lists the sizes
//! (comma-separated, default `1000`). The operator logs at `info` unless `GATEHOUSE_E2E_LOG` says
//! otherwise: debug logging would be part of what is measured. `GATEHOUSE_BENCH_SCENARIOS` picks
//! scenarios (see [`Scenarios`]).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use gatehouse::access::bindings::binding_name;
use gatehouse::api::{
    AccessPhase, AccessPolicy, AccessRequest, DataSharingAgreement, FILED_BY_ANNOTATION,
    SharingPolicy,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;

// The e2e helpers; the benchmark uses only some of them.
#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

/// A ClusterRole the e2e overlay lets the operator bind (shared with benches/lifecycle.rs).
const ROLE: &str = "gatehouse-bench-reader";
/// Requests in flight at once, for the tight client and for every bulk step of the setup.
const IN_FLIGHT: usize = 8;
/// The most agreements sharing the one rotated source (the 1,000).
const ROTATION_FAN_OUT: usize = 1000;
/// How long after a restart writes are counted.
const RESTART_WINDOW: Duration = Duration::from_secs(30);
/// The GitOps-like account that files requests on behalf of their requesters.
const FILER: &str = "dave";

fn main() {
    // The e2e operator defaults to debug logs; a benchmark measures the operator as deployed.
    if std::env::var_os("GATEHOUSE_E2E_LOG").is_none() {
        // SAFETY: no other thread exists yet: the runtime is started below.
        unsafe { std::env::set_var("GATEHOUSE_E2E_LOG", "info") };
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(run());
}

async fn run() {
    let sizes: Vec<usize> = std::env::var("GATEHOUSE_BENCH_SCALE")
        .unwrap_or_else(|_| "1000".into())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .unwrap_or_else(|_| panic!("GATEHOUSE_BENCH_SCALE: {n:?} is not a size"))
        })
        .collect();
    // Panics with the reason, so a benchmark that could not run never prints a table or exits 0.
    let scenarios = Scenarios::from_env();
    let bench = Bench::new(support::control_plane()).await;
    for n in sizes {
        let report = bench.measure(n, &scenarios).await;
        report.print(n);
    }
}

/// The scenarios `GATEHOUSE_BENCH_SCENARIOS` names (comma-separated: people, one-person, shares,
/// rotation, intake, expiry; all when unset), for measuring one change quickly. Intake and expiry
/// run the people scenario too: they compare with its filings and its tight client.
struct Scenarios(Option<Vec<String>>);

impl Scenarios {
    const NAMES: [&str; 6] = [
        "people",
        "one-person",
        "shares",
        "rotation",
        "intake",
        "expiry",
    ];

    fn from_env() -> Scenarios {
        Scenarios(std::env::var("GATEHOUSE_BENCH_SCENARIOS").ok().map(|list| {
            list.split(',')
                .map(|name| {
                    let name = name.trim().to_string();
                    assert!(
                        Self::NAMES.contains(&name.as_str()),
                        "GATEHOUSE_BENCH_SCENARIOS: {name:?} is none of {:?}",
                        Self::NAMES
                    );
                    name
                })
                .collect()
        }))
    }

    fn runs(&self, name: &str) -> bool {
        self.0
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == name))
    }
}

/// The clients every scenario acts through, one per person.
struct Bench {
    kubeconfig: &'static std::path::Path,
    admin: Client,
    /// The tight client: used for nothing but the baselines.
    tight: Client,
    alice: Client,
    bob: Client,
    carol: Client,
    filer: Client,
}

/// What one size measured.
#[derive(Default)]
struct Report {
    rows: Vec<[String; 5]>,
    usage: Vec<Usage>,
    /// The operator's calls for the many-people requests, made by the tight client.
    floor: Vec<Phase>,
    floor_objects: usize,
}

/// N calls of one kind, made by the tight client.
struct Phase {
    /// Verb and resource, as the operator's metrics name them.
    call: &'static str,
    took: Duration,
    /// kube-apiserver's and etcd's CPU meanwhile.
    control_plane_cpu: Duration,
}

/// The operator's resources in one scenario.
struct Usage {
    scenario: String,
    peak_kib: u64,
    /// The operator's CPU time in the scenario (from its start, or from where the scenario's
    /// measurement starts).
    cpu: Duration,
    /// kube-apiserver's and etcd's, since the operator started.
    control_plane_cpu: Duration,
    api_requests: ApiRequests,
    objects: usize,
    records_at_start: usize,
}

impl Bench {
    async fn new(kubeconfig: &'static std::path::Path) -> Bench {
        Bench {
            kubeconfig,
            admin: support::client(kubeconfig, "admin").await,
            tight: support::client(kubeconfig, "admin").await,
            alice: support::client(kubeconfig, "alice").await,
            bob: support::client(kubeconfig, "bob").await,
            carol: support::client(kubeconfig, "carol").await,
            filer: support::client(kubeconfig, FILER).await,
        }
    }

    async fn measure(&self, n: usize, scenarios: &Scenarios) -> Report {
        let mut report = Report::default();
        // Intake and expiry compare with the filings and the tight client of the first scenario.
        let people =
            if scenarios.runs("people") || scenarios.runs("intake") || scenarios.runs("expiry") {
                eprintln!("scale: N = {n}, requests from {n} different people");
                Some(self.requests(n, Requesters::People, &mut report).await)
            } else {
                None
            };
        if scenarios.runs("one-person") {
            eprintln!("scale: N = {n}, requests of one person");
            self.requests(n, Requesters::OnePerson, &mut report).await;
        }
        if scenarios.runs("shares") {
            eprintln!("scale: N = {n}, Copy shares");
            self.shares(n, &mut report).await;
        }
        if scenarios.runs("rotation") {
            let fan_out = n.min(ROTATION_FAN_OUT);
            eprintln!("scale: N = {n}, rotation of one source shared {fan_out} times");
            self.rotation(fan_out, &mut report).await;
        }
        if let Some(people) = people {
            if scenarios.runs("intake") {
                eprintln!("scale: N = {n}, intake");
                self.intake(n, people.filings, &mut report).await;
            }
            if scenarios.runs("expiry") {
                eprintln!("scale: N = {n}, expiry");
                self.expiry(n, &people, &mut report).await;
            }
        }
        report
    }

    /// N pre-approved requests, from N people (filed on behalf) or all from alice for herself;
    /// the operator started afterwards, timed until every RoleBinding exists. For many people,
    /// also a restart over the converged requests.
    async fn requests(&self, n: usize, requesters: Requesters, report: &mut Report) -> People {
        let (tight_creates, tight_deletes) = self.tight_role_bindings(n, requesters).await;
        let ns = self
            .request_namespace(&format!("scale-{}", requesters.label()))
            .await;
        let records_at_start = self.records().await;
        let filings = self.file_requests(&ns, n, requesters, None, "1h").await;
        let approvals = self
            .approve_all::<AccessRequest>(&ns, n, "manager", request_name)
            .await;

        let expected: BTreeSet<String> = (0..n)
            .map(|i| binding_name(&ns, &request_name(i)))
            .collect();
        let mut bindings =
            Watched::start(Api::<RoleBinding>::namespaced(self.admin.clone(), &ns)).await;
        let operator = Running::start(self.kubeconfig, requesters.label());
        bindings
            .until("every RoleBinding exists", timeout(n), n, |seen| {
                seen.existing(&expected)
            })
            .await;
        let provisioned = operator.started.elapsed();
        let shape = match requesters {
            Requesters::People => format!("{n} different people"),
            Requesters::OnePerson => "one person holds all of them".to_string(),
        };
        report.compare(
            &format!(
                "{n} pre-approved requests, {shape}, operator started → all RoleBindings exist"
            ),
            tight_creates,
            &format!("{n} RoleBinding creates"),
            provisioned,
            "≤ 5×",
        );
        report.usage(
            &format!("requests, {shape}"),
            &operator,
            n,
            records_at_start,
        );
        let writes = if requesters == Requesters::People {
            Some(OperatorWrites::read(&self.admin, &ns).await)
        } else {
            None
        };
        let operator = if requesters == Requesters::People {
            let converged = format!("{n} converged requests");
            let restarted = operator.restart(self.kubeconfig, &converged, report).await;
            // The restarted operator holds every converged object from its first lists: its peak
            // is the steady state at N, which the first run's (grown while provisioning) is not.
            let records = self.records().await;
            report.usage(
                &format!("restart over {converged}, first 30 s"),
                &restarted,
                n,
                records,
            );
            restarted
        } else {
            operator
        };
        self.delete_namespace(&ns, n).await;
        delete_cluster_scoped::<AccessPolicy>(&self.admin, &ns).await;
        operator.stop();
        if let Some(writes) = writes {
            let phases = self.tight_operator_calls(n, &writes).await;
            let floor = phases.iter().map(|phase| phase.took).sum();
            report.compare(
                &format!(
                    "the same {n} requests, against a tight client making the operator's calls"
                ),
                floor,
                &format!("{n} × binding, proof, status, Event, record, one kind after another"),
                provisioned,
                "–",
            );
            report.floor = phases;
            report.floor_objects = n;
        }
        People {
            filings,
            approvals,
            provisioned,
            tight_creates,
            tight_deletes,
        }
    }

    /// The tight client creates N RoleBindings like the operator's (one subject each, the
    /// benchmark's ClusterRole), then deletes them: both timed.
    async fn tight_role_bindings(&self, n: usize, requesters: Requesters) -> (Duration, Duration) {
        let ns = support::unique("scale-tight");
        support::namespace(&self.admin, &ns, &[]).await;
        let bindings = Api::<RoleBinding>::namespaced(self.tight.clone(), &ns);
        let creates = concurrently(0..n, |i| {
            let bindings = bindings.clone();
            let binding: RoleBinding = serde_json::from_value(json!({
                "metadata": { "name": format!("tight-{i}") },
                "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": ROLE },
                "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                               "name": requesters.requester(i) }]
            }))
            .expect("valid RoleBinding");
            async move {
                bindings
                    .create(&PostParams::default(), &binding)
                    .await
                    .unwrap_or_else(|e| panic!("tight client: RoleBinding {i}: {e}"));
            }
        })
        .await;
        let deletes = concurrently(0..n, |i| {
            let bindings = bindings.clone();
            async move {
                bindings
                    .delete(&format!("tight-{i}"), &DeleteParams::default())
                    .await
                    .unwrap_or_else(|e| panic!("tight client: deleting RoleBinding {i}: {e}"));
            }
        })
        .await;
        self.delete_namespace(&ns, n).await;
        (creates, deletes)
    }

    /// The floor under the operator: with no operator running, a tight client makes the
    /// operator's own writes for each of N pre-approved requests (the RoleBinding, the proof, the
    /// status, the Event and the AccessRecord, as the operator wrote them for request 0 of the
    /// many-people scenario), as the operator and 8 at a time; timed, and the control plane's CPU
    /// meanwhile, one kind of call after another. The operator's time over their sum is its own
    /// overhead; each kind's cost against the RoleBinding creates is what the API server spends on
    /// that part of a grant.
    async fn tight_operator_calls(&self, n: usize, writes: &OperatorWrites) -> Vec<Phase> {
        let ns = self.request_namespace("scale-floor").await;
        self.file_requests(&ns, n, Requesters::People, None, "1h")
            .await;
        self.approve_all::<AccessRequest>(&ns, n, "manager", request_name)
            .await;
        let filed: BTreeMap<String, (String, String)> =
            Api::<AccessRequest>::namespaced(self.admin.clone(), &ns)
                .list_metadata(&Default::default())
                .await
                .expect("listing the filed requests")
                .items
                .into_iter()
                .map(|r| {
                    let uid = r.metadata.uid.clone().unwrap_or_default();
                    let version = r.metadata.resource_version.clone().unwrap_or_default();
                    (r.name_any(), (uid, version))
                })
                .collect();
        let rules = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(self.admin.clone())
            .get(ROLE)
            .await
            .expect("the benchmark's ClusterRole")
            .rules
            .unwrap_or_default();
        let permission = gatehouse::access::verification::probe(&rules)
            .expect("the benchmark's ClusterRole grants a permission a review can ask about");

        let identity =
            support::operator_kubeconfig(self.kubeconfig).expect("the operator's kubeconfig");
        let operator = support::client(&identity, "operator").await;
        let bindings = Api::<RoleBinding>::namespaced(operator.clone(), &ns);
        let reviews = Api::<SubjectAccessReview>::all(operator.clone());
        let requests = Api::<AccessRequest>::namespaced(operator.clone(), &ns);
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(operator.clone(), &ns);
        let records = Api::<gatehouse::api::AccessRecord>::all(operator.clone());
        let own: Vec<OwnWrites> = (0..n)
            .map(|i| writes.for_request(&ns, i, &filed[&request_name(i)].0))
            .collect();
        let own = &own;
        let control_plane = self.kubeconfig.parent().expect("the control plane's state");
        let mut phases = Vec::new();
        let mut phase = |call, (took, control_plane_cpu)| {
            phases.push(Phase {
                call,
                took,
                control_plane_cpu,
            });
        };

        phase(
            "create rolebindings",
            create_each(control_plane, &bindings, n, |i| own[i].binding.clone()).await,
        );
        phase(
            "create subjectaccessreviews",
            create_each(control_plane, &reviews, n, |i| {
                let subject = gatehouse::api::common::Subject {
                    kind: gatehouse::api::common::SubjectKind::User,
                    name: Requesters::People.requester(i),
                    namespace: None,
                };
                serde_json::to_value(SubjectAccessReview {
                    spec: gatehouse::access::verification::review(&subject, &permission, Some(&ns)),
                    ..Default::default()
                })
                .expect("JSON")
            })
            .await,
        );
        let status = timed(
            control_plane,
            concurrently(0..n, |i| {
                let requests = requests.clone();
                let name = request_name(i);
                let mut status = own[i].status.clone();
                status["metadata"] = json!({ "resourceVersion": filed[&name].1 });
                async move {
                    requests
                        .patch_status(
                            &name,
                            &PatchParams::apply(gatehouse::api::FIELD_MANAGER).force(),
                            &Patch::Apply(&status),
                        )
                        .await
                        .unwrap_or_else(|e| panic!("tight client: status of {name}: {e}"));
                }
            }),
        )
        .await;
        phase("patch accessrequests/status (apply)", status);
        phase(
            "create events",
            create_each(control_plane, &events, n, |i| own[i].event.clone()).await,
        );
        phase(
            "create accessrecords",
            create_each(control_plane, &records, n, |i| own[i].record.clone()).await,
        );

        // Nobody but the operator may remove its finalizer or a record: the tight client acts as
        // the operator to leave nothing behind for the next scenario's operator to cache.
        concurrently(0..n, |i| {
            let name = request_name(i);
            let record =
                gatehouse::controller::records::name("AccessRequest", &ns, &name, &filed[&name].0);
            let (requests, records) = (requests.clone(), records.clone());
            async move {
                records
                    .delete(&record, &DeleteParams::default())
                    .await
                    .unwrap_or_else(|e| {
                        panic!("tight client: deleting AccessRecord {record}: {e}")
                    });
                let unpinned = json!({ "metadata": { "finalizers": null } });
                requests
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&unpinned))
                    .await
                    .unwrap_or_else(|e| panic!("tight client: the finalizer of {name}: {e}"));
            }
        })
        .await;
        self.delete_namespace(&ns, n).await;
        delete_cluster_scoped::<AccessPolicy>(&self.admin, &ns).await;
        phases
    }

    /// N approved Copy agreements, each sharing its own source; the operator started afterwards,
    /// timed until every copy exists; then a restart over them.
    async fn shares(&self, n: usize, report: &mut Report) {
        let tight_creates = self.tight_secrets(n).await;
        let (ns, recipient) = self.sharing_namespaces("scale-share").await;
        let records_at_start = self.records().await;
        let sources = Api::<Secret>::namespaced(self.admin.clone(), &ns);
        concurrently(0..n, |i| {
            let sources = sources.clone();
            let secret = secret(&format!("db-{i}"), "v1");
            async move {
                sources
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap_or_else(|e| panic!("source {i}: {e}"));
            }
        })
        .await;
        self.file_agreements(&ns, &recipient, n, |i| format!("db-{i}"))
            .await;
        self.approve_all::<DataSharingAgreement>(&ns, n, "data-owner", agreement_name)
            .await;

        let expected: BTreeSet<String> = (0..n)
            .map(|i| copy_name(&ns, i, &format!("db-{i}")))
            .collect();
        let mut copies =
            Watched::start(Api::<Secret>::namespaced(self.admin.clone(), &recipient)).await;
        let operator = Running::start(self.kubeconfig, "shares");
        copies
            .until("every copy exists", timeout(n), n, |seen| {
                seen.existing(&expected)
            })
            .await;
        report.compare(
            &format!("{n} approved Copy shares, operator started → all copies exist"),
            tight_creates,
            &format!("{n} Secret creates"),
            operator.started.elapsed(),
            "≤ 5×",
        );
        report.usage("Copy shares", &operator, n, records_at_start);
        let operator = operator
            .restart(self.kubeconfig, &format!("{n} converged shares"), report)
            .await;
        self.delete_namespace(&ns, n).await;
        self.delete_namespace(&recipient, n).await;
        delete_cluster_scoped::<SharingPolicy>(&self.admin, &ns).await;
        operator.stop();
    }

    /// The tight client creates N Secrets like the copies; timed.
    async fn tight_secrets(&self, n: usize) -> Duration {
        let ns = support::unique("scale-tight");
        support::namespace(&self.admin, &ns, &[]).await;
        let secrets = Api::<Secret>::namespaced(self.tight.clone(), &ns);
        let creates = concurrently(0..n, |i| {
            let secrets = secrets.clone();
            let secret = secret(&format!("tight-{i}"), "v1");
            async move {
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap_or_else(|e| panic!("tight client: Secret {i}: {e}"));
            }
        })
        .await;
        self.delete_namespace(&ns, n).await;
        creates
    }

    /// `fan_out` approved agreements sharing one source; once every copy exists, the source is
    /// rotated and timed until every copy holds the new value. The tight client's equivalent is
    /// one write to each of `fan_out` Secrets.
    async fn rotation(&self, fan_out: usize, report: &mut Report) {
        let tight_updates = self.tight_secret_updates(fan_out).await;
        let (ns, recipient) = self.sharing_namespaces("scale-rotation").await;
        let records_at_start = self.records().await;
        let sources = Api::<Secret>::namespaced(self.admin.clone(), &ns);
        sources
            .create(&PostParams::default(), &secret("db", "v1"))
            .await
            .expect("the shared source");
        self.file_agreements(&ns, &recipient, fan_out, |_| "db".to_string())
            .await;
        self.approve_all::<DataSharingAgreement>(&ns, fan_out, "data-owner", agreement_name)
            .await;

        let expected: BTreeSet<String> = (0..fan_out).map(|i| copy_name(&ns, i, "db")).collect();
        let mut copies =
            Watched::start(Api::<Secret>::namespaced(self.admin.clone(), &recipient)).await;
        let operator = Running::start(self.kubeconfig, "rotation");
        copies
            .until("every copy exists", timeout(fan_out), fan_out, |seen| {
                seen.existing(&expected)
            })
            .await;
        let before = operator.api_requests();
        let cpu_before = operator.cpu_time();
        let control_plane_before = operator.control_plane_cpu();
        let rotated = Instant::now();
        sources
            .patch(
                "db",
                &PatchParams::default(),
                &Patch::Merge(&json!({ "stringData": { "password": "v2" } })),
            )
            .await
            .expect("rotating the shared source");
        copies
            .until("every copy holds v2", timeout(fan_out), fan_out, |seen| {
                seen.current
                    .iter()
                    .filter(|(name, copy)| expected.contains(*name) && holds(copy, "v2"))
                    .count()
            })
            .await;
        report.compare(
            &format!(
                "one rotation of a source shared by {fan_out} agreements → all copies updated"
            ),
            tight_updates,
            &format!("{fan_out} Secret updates"),
            rotated.elapsed(),
            "≤ 5×",
        );
        report.usage.push(Usage {
            scenario: format!("rotation of one source, {fan_out} shares (during the rotation)"),
            peak_kib: operator.peak_memory_kib(),
            cpu: operator.cpu_time().saturating_sub(cpu_before),
            control_plane_cpu: operator
                .control_plane_cpu()
                .saturating_sub(control_plane_before),
            api_requests: operator.api_requests().since(&before),
            objects: fan_out,
            records_at_start,
        });
        self.delete_namespace(&ns, fan_out).await;
        self.delete_namespace(&recipient, fan_out).await;
        delete_cluster_scoped::<SharingPolicy>(&self.admin, &ns).await;
        operator.stop();
    }

    /// The tight client writes a new value into each of `n` existing Secrets; only the writes
    /// are timed.
    async fn tight_secret_updates(&self, n: usize) -> Duration {
        let ns = support::unique("scale-tight");
        support::namespace(&self.admin, &ns, &[]).await;
        let secrets = Api::<Secret>::namespaced(self.tight.clone(), &ns);
        concurrently(0..n, |i| {
            let secrets = secrets.clone();
            let secret = secret(&format!("tight-{i}"), "v1");
            async move {
                secrets
                    .create(&PostParams::default(), &secret)
                    .await
                    .unwrap_or_else(|e| panic!("tight client: Secret {i}: {e}"));
            }
        })
        .await;
        let updates = concurrently(0..n, |i| {
            let secrets = secrets.clone();
            async move {
                secrets
                    .patch(
                        &format!("tight-{i}"),
                        &PatchParams::default(),
                        &Patch::Merge(&json!({ "stringData": { "password": "v2" } })),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("tight client: updating Secret {i}: {e}"));
            }
        })
        .await;
        self.delete_namespace(&ns, n).await;
        updates
    }

    /// N requests from N people filed while the operator runs (and is ready), timed from the
    /// first filing until every one is `Pending` with its required approvals listed; compared
    /// with the same filings with no operator running (measured by [`Bench::requests`]).
    async fn intake(&self, n: usize, filings_alone: Duration, report: &mut Report) {
        let ns = self.request_namespace("scale-intake").await;
        let records_at_start = self.records().await;
        let requests = Api::<AccessRequest>::namespaced(self.filer.clone(), &ns);
        let mut watched =
            Watched::start(Api::<AccessRequest>::namespaced(self.admin.clone(), &ns)).await;
        let operator = Running::start(self.kubeconfig, "intake");
        operator.wait_ready(timeout(0)).await;
        let before = operator.api_requests();
        let cpu_before = operator.cpu_time();
        let control_plane_before = operator.control_plane_cpu();
        let filed = Instant::now();
        concurrently(0..n, |i| {
            let requests = requests.clone();
            let request = access_request(&ns, i, Requesters::People, None, "1h");
            async move {
                requests
                    .create(&PostParams::default(), &request)
                    .await
                    .unwrap_or_else(|e| panic!("filing request {i}: {e}"));
            }
        })
        .await;
        watched
            .until(
                "every request is Pending with its stages",
                timeout(n),
                n,
                |seen| {
                    seen.current
                        .values()
                        .filter(|ar| {
                            ar.status.as_ref().is_some_and(|s| {
                                s.phase == Some(AccessPhase::Pending)
                                    && !s.required_approvals.is_empty()
                            })
                        })
                        .count()
                },
            )
            .await;
        report.compare(
            &format!("intake: {n} filings, operator running → all Pending with requiredApprovals"),
            filings_alone,
            &format!("the {n} filings alone"),
            filed.elapsed(),
            "≤ 1.3×",
        );
        report.usage.push(Usage {
            scenario: "intake (after /readyz)".into(),
            peak_kib: operator.peak_memory_kib(),
            cpu: operator.cpu_time().saturating_sub(cpu_before),
            control_plane_cpu: operator
                .control_plane_cpu()
                .saturating_sub(control_plane_before),
            api_requests: operator.api_requests().since(&before),
            objects: n,
            records_at_start,
        });
        self.delete_namespace(&ns, n).await;
        delete_cluster_scoped::<AccessPolicy>(&self.admin, &ns).await;
        operator.stop();
    }

    /// N pre-approved requests from N people, all starting at the same `spec.startAt` with the
    /// same duration, so all expire in the same second; timed from `startAt` until every binding
    /// exists, and from `expiresAt` until each is gone. The lead and the duration are scaled by
    /// how long [`Bench::requests`] took to file, approve and provision N, so that every request
    /// is `Scheduled` before the start and every binding exists before the expiry.
    async fn expiry(&self, n: usize, people: &People, report: &mut Report) {
        let ns = self.request_namespace("scale-expiry").await;
        let records_at_start = self.records().await;
        let lead =
            2 * (people.filings + people.approvals + people.provisioned) + Duration::from_secs(10);
        let active = 3 * people.provisioned + Duration::from_secs(20);
        let start_at = Timestamp::from_second(
            Timestamp::now().as_second() + i64::try_from(lead.as_secs()).expect("a short lead"),
        )
        .expect("a valid start");
        let duration = format!("{}s", active.as_secs());
        self.file_requests(&ns, n, Requesters::People, Some(start_at), &duration)
            .await;
        self.approve_all::<AccessRequest>(&ns, n, "manager", request_name)
            .await;

        let expected: BTreeSet<String> = (0..n)
            .map(|i| binding_name(&ns, &request_name(i)))
            .collect();
        let mut bindings =
            Watched::start(Api::<RoleBinding>::namespaced(self.admin.clone(), &ns)).await;
        let operator = Running::start(self.kubeconfig, "expiry");
        let until_start = lead + timeout(n);
        bindings
            .until("every RoleBinding was created", until_start, n, |seen| {
                expected
                    .iter()
                    .filter(|name| seen.created_at.contains_key(*name))
                    .count()
            })
            .await;
        let last_created = expected
            .iter()
            .filter_map(|name| bindings.created_at.get(name))
            .max()
            .copied()
            .expect("every binding was created");
        bindings
            .until(
                "every RoleBinding was removed",
                active + timeout(n),
                n,
                |seen| {
                    expected
                        .iter()
                        .filter(|name| {
                            !seen.current.contains_key(*name) && seen.removed_at.contains_key(*name)
                        })
                        .count()
                },
            )
            .await;

        let expiries: BTreeMap<String, Timestamp> =
            Api::<AccessRequest>::namespaced(self.admin.clone(), &ns)
                .list(&Default::default())
                .await
                .expect("listing the expired requests")
                .items
                .into_iter()
                .filter_map(|ar| {
                    let expires = ar.status.as_ref()?.grant.as_ref()?.expires_at.0;
                    Some((binding_name(&ns, &ar.name_any()), expires))
                })
                .collect();
        let mut lags: Vec<SignedDuration> = expected
            .iter()
            .map(|name| {
                let expires = expiries.get(name).unwrap_or_else(|| {
                    panic!("the request of {name} has no grant after its removal")
                });
                bindings.removed_at[name].duration_since(*expires)
            })
            .collect();
        lags.sort();
        let seconds: BTreeSet<i64> = expiries.values().map(|t| t.as_second()).collect();
        let early = lags.iter().filter(|lag| lag.is_negative()).count();
        let worst = lags.last().copied().unwrap_or_default();
        let median = lags[lags.len() / 2];
        report.compare(
            &format!(
                "scheduled start: {n} grants starting in the same second → all RoleBindings exist"
            ),
            people.tight_creates,
            &format!("{n} RoleBinding creates"),
            unsigned(last_created.duration_since(start_at)),
            "≤ 5×",
        );
        report.rows.push([
            format!(
                "expiry: {n} grants expiring in the same second ({} distinct expiresAt seconds) → all removed",
                seconds.len()
            ),
            format!("{} ({n} RoleBinding deletes)", seconds_text(people.tight_deletes)),
            format!(
                "worst lag {}, median {}, {early} of {n} removed early",
                seconds_text(unsigned(worst)),
                seconds_text(unsigned(median))
            ),
            ratio(unsigned(worst), people.tight_deletes),
            "0 early".into(),
        ]);
        report.usage(
            "scheduled grants, start to removal",
            &operator,
            n,
            records_at_start,
        );
        self.delete_namespace(&ns, n).await;
        delete_cluster_scoped::<AccessPolicy>(&self.admin, &ns).await;
        operator.stop();
    }

    /// A namespace whose policy lets bob approve (stage `manager`) requests for [`ROLE`] filed by
    /// alice for herself or by [`FILER`] on anyone's behalf; waits until the API server's
    /// authorizer answers for those rights.
    async fn request_namespace(&self, prefix: &str) -> String {
        let ns = support::manager_approved_namespace(&self.admin, prefix, ROLE).await;
        let on_behalf: RoleBinding = serde_json::from_value(json!({
            "metadata": { "name": format!("gatehouse-create-on-behalf-{FILER}") },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                         "name": "gatehouse-create-on-behalf" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": FILER }]
        }))
        .expect("valid RoleBinding");
        Api::<RoleBinding>::namespaced(self.admin.clone(), &ns)
            .create(&PostParams::default(), &on_behalf)
            .await
            .expect("the filer's right to file on behalf");
        self.wait_allowed("alice", &ns, "create", "accessrequests", None)
            .await;
        self.wait_allowed(FILER, &ns, "create-on-behalf", "approvals", None)
            .await;
        self.wait_allowed("bob", &ns, "approve", "approvals", Some("manager"))
            .await;
        ns
    }

    /// An owner namespace where alice files agreements and carol reviews as data owner, and a
    /// recipient namespace; waits for those rights.
    async fn sharing_namespaces(&self, prefix: &str) -> (String, String) {
        let (ns, recipient) = support::sharing_namespaces(
            &self.admin,
            prefix,
            json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
        )
        .await;
        self.wait_allowed("alice", &ns, "create", "datasharingagreements", None)
            .await;
        self.wait_allowed("carol", &ns, "approve", "approvals", Some("data-owner"))
            .await;
        (ns, recipient)
    }

    /// alice files `n` Copy agreements `share-<i>` sharing `source(i)`'s key `password` with
    /// `recipient`.
    async fn file_agreements(
        &self,
        ns: &str,
        recipient: &str,
        n: usize,
        source: impl Fn(usize) -> String,
    ) {
        let agreements = Api::<DataSharingAgreement>::namespaced(self.alice.clone(), ns);
        concurrently(0..n, |i| {
            let agreements = agreements.clone();
            let agreement: DataSharingAgreement = serde_json::from_value(json!({
                "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
                "metadata": { "name": agreement_name(i), "namespace": ns },
                "spec": { "requester": "alice", "data": [{ "secret": source(i), "keys": ["password"] }],
                          "recipient": { "namespace": recipient }, "purpose": "scale benchmark",
                          "transfer": { "method": "Copy" }, "retention": "1h", "policy": ns }
            }))
            .expect("valid DataSharingAgreement");
            async move {
                agreements
                    .create(&PostParams::default(), &agreement)
                    .await
                    .unwrap_or_else(|e| panic!("filing agreement {i}: {e}"));
            }
        })
        .await;
    }

    /// `requesters` file requests `0..n` in `ns` for `duration`, starting at `start_at` if
    /// given (see [`access_request`]); timed.
    async fn file_requests(
        &self,
        ns: &str,
        n: usize,
        requesters: Requesters,
        start_at: Option<Timestamp>,
        duration: &str,
    ) -> Duration {
        let requests = Api::<AccessRequest>::namespaced(requesters.client(self).clone(), ns);
        concurrently(0..n, |i| {
            let requests = requests.clone();
            let request = access_request(ns, i, requesters, start_at, duration);
            async move {
                requests
                    .create(&PostParams::default(), &request)
                    .await
                    .unwrap_or_else(|e| panic!("filing request {i}: {e}"));
            }
        })
        .await
    }

    /// The approver of `role` (bob for `manager`, carol for `data-owner`) approves the objects
    /// `name(0..n)` of kind `K` in `ns`; timed.
    async fn approve_all<K>(
        &self,
        ns: &str,
        n: usize,
        role: &str,
        name: fn(usize) -> String,
    ) -> Duration
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let (approver, client) = match role {
            "manager" => ("bob", &self.bob),
            _ => ("carol", &self.carol),
        };
        let objects = Api::<K>::namespaced(client.clone(), ns);
        let key = format!("approve.gatehouse.dev/{role}");
        concurrently(0..n, |i| {
            let objects = objects.clone();
            let name = name(i);
            let patch = json!({ "metadata": { "annotations": { key.as_str(): approver } } });
            async move {
                objects
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .unwrap_or_else(|e| panic!("{approver} approving {name}: {e}"));
            }
        })
        .await
    }

    /// Waits until the API server's authorizer lets `user` `verb` `resource` (of gatehouse.dev
    /// or core) in `ns`: RBAC is served from a cache, and a right just granted may not answer yet.
    async fn wait_allowed(
        &self,
        user: &str,
        ns: &str,
        verb: &str,
        resource: &str,
        name: Option<&str>,
    ) {
        let review = SubjectAccessReview {
            spec: SubjectAccessReviewSpec {
                user: Some(user.into()),
                resource_attributes: Some(ResourceAttributes {
                    namespace: Some(ns.into()),
                    verb: Some(verb.into()),
                    group: Some("gatehouse.dev".into()),
                    resource: Some(resource.into()),
                    name: name.map(Into::into),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let reviews = Api::<SubjectAccessReview>::all(self.admin.clone());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let allowed = reviews
                .create(&PostParams::default(), &review)
                .await
                .map(|r| r.status.is_some_and(|s| s.allowed))
                .unwrap_or(false);
            if allowed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{user} still may not {verb} {resource} in {ns} after 30s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// How many AccessRecords exist: the operator caches every one, and the API server lets
    /// nobody but the operator delete them, so each scenario starts with those of the earlier
    /// ones (and of earlier runs on the same control plane).
    async fn records(&self) -> usize {
        Api::<gatehouse::api::AccessRecord>::all(self.admin.clone())
            .list_metadata(&Default::default())
            .await
            .expect("listing AccessRecords")
            .items
            .len()
    }

    /// Deletes everything of a scenario in `ns`, then `ns` itself. The local control plane runs
    /// no controller-manager, so a deleted namespace is never emptied by one: its objects are
    /// deleted here, requests and agreements first (their finalizers need the scenario's
    /// operator, so this runs before it stops; it removes what they provided), then the rest the
    /// setup made, so that no later operator caches any of it. The namespace itself stays
    /// `Terminating`, empty.
    async fn delete_namespace(&self, ns: &str, objects: usize) {
        self.delete_all::<AccessRequest>(ns, objects).await;
        self.delete_all::<DataSharingAgreement>(ns, objects).await;
        self.delete_all::<RoleBinding>(ns, objects).await;
        self.delete_all::<Role>(ns, objects).await;
        self.delete_all::<Secret>(ns, objects).await;
        Api::<Namespace>::all(self.admin.clone())
            .delete(ns, &DeleteParams::default())
            .await
            .unwrap_or_else(|e| panic!("deleting namespace {ns}: {e}"));
    }

    /// Deletes every `K` in `ns` and waits until none is left.
    async fn delete_all<K>(&self, ns: &str, objects: usize)
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        let api = Api::<K>::namespaced(self.admin.clone(), ns);
        let kind = K::kind(&K::DynamicType::default()).to_string();
        // The API server deletes a collection one object at a time, and goes on when the client
        // gives up on a long one (10,000 requests with finalizers): what is left is waited for,
        // and asked for again.
        if let Err(err) = api
            .delete_collection(&DeleteParams::default(), &Default::default())
            .await
        {
            eprintln!("scale: deleting every {kind} in {ns} did not answer ({err}); waiting");
        }
        let deadline = Instant::now() + timeout(objects);
        let mut asked = Instant::now();
        loop {
            let left = api
                .list_metadata(&kube::api::ListParams::default().limit(1))
                .await
                .unwrap_or_else(|e| panic!("listing {kind} in {ns}: {e}"));
            if left.items.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{kind} in {ns} were not all gone within {:?} (operator logs: target/scale-*-operator.log)",
                timeout(objects)
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
            if asked.elapsed() > Duration::from_secs(30) {
                let _ = api
                    .delete_collection(&DeleteParams::default(), &Default::default())
                    .await;
                asked = Instant::now();
            }
        }
    }
}

/// Who files the requests of a scenario, and who receives the grants.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Requesters {
    /// `person-<i>` for request i, filed on their behalf by [`FILER`] (as GitOps would).
    People,
    /// alice for every request, filed by herself.
    OnePerson,
}

impl Requesters {
    fn requester(self, i: usize) -> String {
        match self {
            Requesters::People => format!("person-{i}"),
            Requesters::OnePerson => "alice".into(),
        }
    }

    fn client(self, bench: &Bench) -> &Client {
        match self {
            Requesters::People => &bench.filer,
            Requesters::OnePerson => &bench.alice,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Requesters::People => "people",
            Requesters::OnePerson => "one-person",
        }
    }
}

/// What the many-people requests scenario measured, which later scenarios scale by or compare
/// with.
struct People {
    /// N filings with no operator running.
    filings: Duration,
    /// N approvals.
    approvals: Duration,
    /// Operator start → every binding exists.
    provisioned: Duration,
    /// The tight client creating N RoleBindings.
    tight_creates: Duration,
    /// The tight client deleting N RoleBindings.
    tight_deletes: Duration,
}

/// What the operator wrote for request 0 of a namespace, as JSON texts to make the same writes
/// for request i of another: its RoleBinding, its status, its Event and its AccessRecord.
struct OperatorWrites {
    namespace: String,
    uid: String,
    binding: String,
    status: String,
    event: String,
    record: String,
}

impl OperatorWrites {
    async fn read(admin: &Client, ns: &str) -> OperatorWrites {
        let name = request_name(0);
        let request = Api::<AccessRequest>::namespaced(admin.clone(), ns)
            .get(&name)
            .await
            .expect("request 0");
        let uid = request.metadata.uid.clone().unwrap_or_default();
        let binding = Api::<RoleBinding>::namespaced(admin.clone(), ns)
            .get(&binding_name(ns, &name))
            .await
            .expect("the RoleBinding of request 0");
        let event = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), ns)
            .list(&Default::default())
            .await
            .expect("listing Events")
            .items
            .into_iter()
            .find(|e| e.regarding.as_ref().and_then(|r| r.uid.as_deref()) == Some(uid.as_str()))
            .expect("the operator's Event about request 0");
        let record = Api::<gatehouse::api::AccessRecord>::all(admin.clone())
            .get(&gatehouse::controller::records::name(
                "AccessRequest",
                ns,
                &name,
                &uid,
            ))
            .await
            .expect("the AccessRecord of request 0");
        let as_created = |object: serde_json::Value| {
            let mut object = object;
            let meta = object["metadata"].take();
            let mut kept = serde_json::Map::new();
            for field in [
                "name",
                "namespace",
                "labels",
                "annotations",
                "ownerReferences",
            ] {
                if let Some(value) = meta.get(field) {
                    kept.insert(field.into(), value.clone());
                }
            }
            object["metadata"] = kept.into();
            object.to_string()
        };
        let status = json!({
            "apiVersion": "gatehouse.dev/v1alpha1",
            "kind": "AccessRequest",
            "status": request.status,
        });
        OperatorWrites {
            namespace: ns.to_string(),
            uid,
            binding: as_created(serde_json::to_value(binding).expect("JSON")),
            status: status.to_string(),
            event: as_created(serde_json::to_value(event).expect("JSON")),
            record: as_created(serde_json::to_value(record).expect("JSON")),
        }
    }

    /// The writes for request i, uid `uid`, in `ns`.
    fn for_request(&self, ns: &str, i: usize, uid: &str) -> OwnWrites {
        let json = |text: &str| serde_json::from_str(&self.rename(text, ns, i, uid)).expect("JSON");
        OwnWrites {
            binding: json(&self.binding),
            status: json(&self.status),
            event: json(&self.event),
            record: json(&self.record),
        }
    }

    /// Request 0's names in `text` made request i's: the uid, the namespace, the request's name
    /// and its requester's.
    fn rename(&self, text: &str, ns: &str, i: usize, uid: &str) -> String {
        text.replace(&self.uid, uid)
            .replace(&self.namespace, ns)
            .replace(
                &format!("\"{}", request_name(0)),
                &format!("\"{}", request_name(i)),
            )
            .replace(
                &format!(".{}", request_name(0)),
                &format!(".{}", request_name(i)),
            )
            .replace(
                &Requesters::People.requester(0),
                &Requesters::People.requester(i),
            )
    }
}

/// The operator's writes for one request.
struct OwnWrites {
    binding: serde_json::Value,
    status: serde_json::Value,
    event: serde_json::Value,
    record: serde_json::Value,
}

fn request_name(i: usize) -> String {
    format!("request-{i}")
}

fn agreement_name(i: usize) -> String {
    format!("share-{i}")
}

/// The copy of `source` an agreement `share-<i>` in `ns` makes (sharing/objects.rs; our names are
/// short enough never to be shortened).
fn copy_name(ns: &str, i: usize, source: &str) -> String {
    format!("{ns}.{}.{source}", agreement_name(i))
}

/// Request i in `ns` for [`ROLE`], for `duration`, optionally starting at `start_at`.
fn access_request(
    ns: &str,
    i: usize,
    requesters: Requesters,
    start_at: Option<Timestamp>,
    duration: &str,
) -> AccessRequest {
    let annotations = match requesters {
        Requesters::People => json!({ FILED_BY_ANNOTATION: FILER }),
        Requesters::OnePerson => json!({}),
    };
    serde_json::from_value(json!({
        "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
        "metadata": { "name": request_name(i), "namespace": ns, "annotations": annotations },
        "spec": { "requester": requesters.requester(i),
                  "role": { "kind": "ClusterRole", "name": ROLE },
                  "duration": duration, "justification": "BENCH-12 scale",
                  "startAt": start_at.map(|t| t.to_string()) }
    }))
    .expect("valid AccessRequest")
}

fn secret(name: &str, password: &str) -> Secret {
    serde_json::from_value(json!({
        "metadata": { "name": name }, "stringData": { "password": password }
    }))
    .expect("valid Secret")
}

fn holds(secret: &Secret, password: &str) -> bool {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get("password"))
        .is_some_and(|v| v.0 == password.as_bytes())
}

/// Runs `step` for each item with [`IN_FLIGHT`] of them at once; how long they all took.
async fn concurrently<T, Fut>(
    items: impl Iterator<Item = T>,
    step: impl FnMut(T) -> Fut,
) -> Duration
where
    Fut: Future<Output = ()>,
{
    let started = Instant::now();
    futures::stream::iter(items)
        .map(step)
        .buffer_unordered(IN_FLIGHT)
        .collect::<()>()
        .await;
    started.elapsed()
}

/// The tight client creates `body(i)` for each i below `n` through `api`: how long that took,
/// and the control plane's CPU meanwhile.
async fn create_each<K>(
    control_plane: &std::path::Path,
    api: &Api<K>,
    n: usize,
    body: impl Fn(usize) -> serde_json::Value,
) -> (Duration, Duration)
where
    K: Resource + Clone + DeserializeOwned + serde::Serialize + std::fmt::Debug,
    K::DynamicType: Default,
{
    let kind = K::kind(&K::DynamicType::default()).to_string();
    let kind = &kind;
    timed(
        control_plane,
        concurrently(0..n, |i| {
            let object: K = serde_json::from_value(body(i))
                .unwrap_or_else(|e| panic!("tight client: {kind} {i} does not parse: {e}"));
            async move {
                api.create(&PostParams::default(), &object)
                    .await
                    .unwrap_or_else(|e| panic!("tight client: {kind} {i}: {e}"));
            }
        }),
    )
    .await
}

/// How long `work` took, and how much CPU kube-apiserver and etcd spent meanwhile.
async fn timed(
    control_plane: &std::path::Path,
    work: impl Future<Output = Duration>,
) -> (Duration, Duration) {
    let before = control_plane_cpu(control_plane);
    let took = work.await;
    (
        took,
        control_plane_cpu(control_plane).saturating_sub(before),
    )
}

/// How long to wait for `objects` objects to converge before failing: far beyond any expected
/// time (the issue measured 51.5 s for 1,000), a liveness bound, never a speed assertion.
fn timeout(objects: usize) -> Duration {
    Duration::from_secs(120)
        + Duration::from_millis(300) * u32::try_from(objects).unwrap_or(u32::MAX)
}

async fn delete_cluster_scoped<K>(admin: &Client, name: &str)
where
    K: Resource<Scope = kube::core::ClusterResourceScope>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    Api::<K>::all(admin.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
}

/// The objects of one kind in one namespace as a watch saw them: which exist now, and when each
/// was first seen and last seen to go.
struct Watched<K> {
    events: BoxStream<'static, Result<watcher::Event<K>, watcher::Error>>,
    /// Set during a list (the first, or a re-list after a broken watch): what it returned so far.
    relisting: Option<BTreeMap<String, K>>,
    /// Whether the first list is complete.
    listed: bool,
    seen: Seen<K>,
}

struct Seen<K> {
    current: BTreeMap<String, K>,
    created_at: BTreeMap<String, Timestamp>,
    removed_at: BTreeMap<String, Timestamp>,
}

impl<K> Seen<K> {
    /// How many of `names` exist now.
    fn existing(&self, names: &BTreeSet<String>) -> usize {
        names
            .iter()
            .filter(|n| self.current.contains_key(*n))
            .count()
    }
}

impl<K> std::ops::Deref for Watched<K> {
    type Target = Seen<K>;

    fn deref(&self) -> &Seen<K> {
        &self.seen
    }
}

impl<K> Watched<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    /// Starts the watch and returns once its initial list is in.
    async fn start(api: Api<K>) -> Watched<K> {
        let mut watched = Watched {
            events: watcher(api, watcher::Config::default())
                .default_backoff()
                .boxed(),
            relisting: None,
            listed: false,
            seen: Seen {
                current: BTreeMap::new(),
                created_at: BTreeMap::new(),
                removed_at: BTreeMap::new(),
            },
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !watched.listed {
            assert!(
                Instant::now() < deadline,
                "the watch did not list within 60s"
            );
            watched.next(deadline, "the initial list").await;
        }
        watched
    }

    /// Applies watch events until `count` reaches `expected`; panics after `timeout` with `what`
    /// and how far it got.
    async fn until(
        &mut self,
        what: &str,
        timeout: Duration,
        expected: usize,
        count: impl Fn(&Seen<K>) -> usize,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            let reached = count(&self.seen);
            if reached >= expected && self.relisting.is_none() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "{what}: {reached} of {expected} after {timeout:?}; the operator did not converge (logs: target/scale-*-operator.log)"
                );
            }
            self.next(deadline, what).await;
        }
    }

    async fn next(&mut self, deadline: Instant, what: &str) {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = match tokio::time::timeout(left, self.events.try_next()).await {
            Err(_) => return,
            Ok(Ok(Some(event))) => event,
            Ok(Ok(None)) => panic!("the watch ended while waiting for {what}"),
            Ok(Err(err)) => {
                eprintln!("scale: watch error while waiting for {what} (retried): {err}");
                return;
            }
        };
        let now = Timestamp::now();
        match event {
            watcher::Event::Apply(object) => self.appeared(object, now),
            watcher::Event::Delete(object) => {
                let name = object.name_any();
                self.seen.current.remove(&name);
                self.seen.removed_at.insert(name, now);
            }
            watcher::Event::Init => self.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(object) => {
                self.seen.created_at.entry(object.name_any()).or_insert(now);
                if let Some(listed) = self.relisting.as_mut() {
                    listed.insert(object.name_any(), object);
                }
            }
            watcher::Event::InitDone => {
                let listed = self.relisting.take().unwrap_or_default();
                // A re-list after a broken watch: what it no longer returns went meanwhile.
                for name in self.seen.current.keys() {
                    if !listed.contains_key(name) {
                        self.seen.removed_at.insert(name.clone(), now);
                    }
                }
                self.seen.current = listed;
                self.listed = true;
            }
        }
    }

    fn appeared(&mut self, object: K, now: Timestamp) {
        let name = object.name_any();
        self.seen.created_at.entry(name.clone()).or_insert(now);
        self.seen.current.insert(name, object);
    }
}

/// The operator process of one scenario.
/// The CPU time kube-apiserver and etcd have used so far, from their pid files in `state` and
/// their `/proc/<pid>/stat` (utime and stime, in clock ticks of 10 ms).
fn control_plane_cpu(state: &std::path::Path) -> Duration {
    ["kube-apiserver.pid", "etcd.pid"]
        .iter()
        .map(|file| {
            let pid = std::fs::read_to_string(state.join(file))
                .unwrap_or_else(|e| panic!("{}: {e}", state.join(file).display()));
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .unwrap_or_else(|e| panic!("/proc/{}/stat: {e}", pid.trim()));
            // The fields after the command's closing parenthesis start at the third, state.
            let fields: Vec<&str> = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect())
                .unwrap_or_default();
            let ticks = |field: usize| -> u64 {
                fields
                    .get(field - 3)
                    .and_then(|value| value.parse().ok())
                    .unwrap_or_else(|| {
                        panic!("/proc/{}/stat: field {field} in {stat:?}", pid.trim())
                    })
            };
            Duration::from_millis((ticks(14) + ticks(15)) * 10)
        })
        .sum()
}

struct Running {
    operator: support::Operator,
    started: Instant,
    /// Where the control plane keeps its pid files: its kubeconfig's directory.
    control_plane: std::path::PathBuf,
    control_plane_cpu_at_start: Duration,
}

impl Running {
    fn start(kubeconfig: &std::path::Path, scenario: &str) -> Running {
        let control_plane = kubeconfig
            .parent()
            .expect("the control plane's state")
            .to_path_buf();
        let control_plane_cpu_at_start = control_plane_cpu(&control_plane);
        let started = Instant::now();
        let operator = support::spawn_operator(kubeconfig, &format!("scale-{scenario}-operator"));
        Running {
            operator,
            started,
            control_plane,
            control_plane_cpu_at_start,
        }
    }

    /// The CPU time kube-apiserver and etcd spent since this operator started: with the
    /// operator's own, whether the machine's cores were the limit.
    fn control_plane_cpu(&self) -> Duration {
        control_plane_cpu(&self.control_plane).saturating_sub(self.control_plane_cpu_at_start)
    }

    /// Polls `/readyz` until it answers 200; how long after the start that was.
    async fn wait_ready(&self, timeout: Duration) -> Duration {
        let deadline = self.started + timeout;
        loop {
            if let Ok((200, _)) = self.operator.get("/readyz") {
                return self.started.elapsed();
            }
            assert!(
                Instant::now() < deadline,
                "the operator was not ready within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn api_requests(&self) -> ApiRequests {
        match self.operator.get("/metrics") {
            Ok((200, text)) => ApiRequests::parse(&text),
            other => panic!("the operator's /metrics failed: {other:?}"),
        }
    }

    /// The operator process's /proc directory (not the shell's that wraps it).
    fn process(&self) -> std::path::PathBuf {
        let exe = env!("CARGO_BIN_EXE_gatehouse");
        let flag = format!("--metrics-address={}", self.operator.metrics);
        std::fs::read_dir("/proc")
            .expect("/proc")
            .flatten()
            .find(|entry| {
                let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                    return false;
                };
                let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
                args.first() == Some(&exe.as_bytes()) && args.contains(&flag.as_bytes())
            })
            .expect("the operator process in /proc")
            .path()
    }

    /// VmHWM of the operator process, in KiB.
    fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(self.process().join("status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM of the operator process")
    }

    /// The CPU time the operator's threads have used so far (each thread's schedstat).
    fn cpu_time(&self) -> Duration {
        let tasks = std::fs::read_dir(self.process().join("task")).expect("the operator's threads");
        let nanos: u64 = tasks
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .sum();
        Duration::from_nanos(nanos)
    }

    /// Stops this operator and starts another over the same converged objects: its time to
    /// ready, and its writes in its first [`RESTART_WINDOW`].
    async fn restart(
        self,
        kubeconfig: &std::path::Path,
        objects: &str,
        report: &mut Report,
    ) -> Running {
        self.stop();
        let operator = Running::start(kubeconfig, "restart");
        let ready = operator.wait_ready(RESTART_WINDOW).await;
        tokio::time::sleep(RESTART_WINDOW.saturating_sub(operator.started.elapsed())).await;
        let writes = operator.api_requests().writes();
        let total: u64 = writes.iter().map(|(_, _, n)| n).sum();
        // Reviews (SubjectAccessReview and the like) are POSTs that store nothing, and the Lease
        // is renewed every few seconds whatever else happens: what the issue wants at 0 is the rest.
        let stored: u64 = writes
            .iter()
            .filter(|(_, resource, _)| resource != "leases" && !resource.ends_with("reviews"))
            .map(|(_, _, n)| n)
            .sum();
        let listed: Vec<String> = writes
            .iter()
            .map(|(verb, resource, n)| format!("{verb} {resource} {n}"))
            .collect();
        report.rows.push([
            format!("restart over {objects}: writes in the first 30 s / time to ready"),
            "–".into(),
            format!(
                "{stored} writes of stored objects besides the Lease; {total} non-read requests ({}) / ready in {}",
                listed.join(", "),
                seconds_text(ready)
            ),
            "–".into(),
            "0 / ≤ 5 s".into(),
        ]);
        operator
    }

    fn stop(self) {
        self.operator.stop();
    }
}

/// The operator's `gatehouse_api_requests_total`, by verb and resource.
struct ApiRequests(Vec<(String, String, f64)>);

impl ApiRequests {
    fn parse(metrics: &str) -> ApiRequests {
        let label = |labels: &str, key: &str| {
            labels
                .split(',')
                .find_map(|l| l.trim().strip_prefix(key)?.strip_prefix("=\""))
                .map(|v| v.trim_end_matches('"').to_string())
                .unwrap_or_default()
        };
        ApiRequests(
            metrics
                .lines()
                .filter_map(|line| line.strip_prefix("gatehouse_api_requests_total{"))
                .filter_map(|rest| {
                    let (labels, value) = rest.split_once("} ")?;
                    Some((
                        label(labels, "verb"),
                        label(labels, "resource"),
                        value.trim().parse().ok()?,
                    ))
                })
                .collect(),
        )
    }

    fn total(&self) -> f64 {
        self.0.iter().map(|(_, _, n)| n).sum()
    }

    /// The requests sent since `before` was read.
    fn since(&self, before: &ApiRequests) -> ApiRequests {
        ApiRequests(
            self.0
                .iter()
                .map(|(verb, resource, n)| {
                    let earlier = before
                        .0
                        .iter()
                        .find(|(v, r, _)| v == verb && r == resource)
                        .map_or(0.0, |(_, _, n)| *n);
                    (verb.clone(), resource.clone(), n - earlier)
                })
                .filter(|(.., n)| *n > 0.0)
                .collect(),
        )
    }

    /// Requests per object by verb and resource, the most first: where the calls go.
    fn breakdown(&self, objects: usize) -> String {
        let mut counts: Vec<&(String, String, f64)> =
            self.0.iter().filter(|(.., n)| *n > 0.0).collect();
        counts.sort_by(|a, b| b.2.total_cmp(&a.2));
        counts
            .iter()
            .map(|(verb, resource, n)| {
                format!("{verb} {resource} {:.2}", n / objects.max(1) as f64)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Requests other than reads (get, list, watch): verb, resource, count.
    fn writes(&self) -> Vec<(String, String, u64)> {
        self.0
            .iter()
            .filter(|(verb, _, n)| !matches!(verb.as_str(), "get" | "list" | "watch") && *n > 0.0)
            // A counter's value is a whole number, exposed as a float.
            .map(|(verb, resource, n)| (verb.clone(), resource.clone(), *n as u64))
            .collect()
    }
}

impl Report {
    fn compare(
        &mut self,
        scenario: &str,
        tight: Duration,
        what: &str,
        gatehouse: Duration,
        goal: &str,
    ) {
        self.rows.push([
            scenario.to_string(),
            format!("{} ({what})", seconds_text(tight)),
            seconds_text(gatehouse),
            ratio(gatehouse, tight),
            goal.to_string(),
        ]);
    }

    fn usage(
        &mut self,
        scenario: &str,
        operator: &Running,
        objects: usize,
        records_at_start: usize,
    ) {
        self.usage.push(Usage {
            scenario: scenario.to_string(),
            peak_kib: operator.peak_memory_kib(),
            cpu: operator.cpu_time(),
            control_plane_cpu: operator.control_plane_cpu(),
            api_requests: operator.api_requests(),
            objects,
            records_at_start,
        });
    }

    fn print(&self, n: usize) {
        let cores = std::thread::available_parallelism().map_or(0, |c| c.get());
        println!(
            "\nGatehouse scale benchmark, N = {n}: kube-apiserver + etcd on loopback, release build, {cores} cores\n"
        );
        println!("| scenario | tight client, same objects | Gatehouse | ratio | goal |");
        println!("|---|---|---|---|---|");
        for [scenario, tight, gatehouse, ratio, goal] in &self.rows {
            println!("| {scenario} | {tight} | {gatehouse} | {ratio} | {goal} |");
        }
        if let Some(binding) = self.floor.first() {
            let calls = self.floor_objects.max(1) as f64;
            let per_call = |cpu: Duration| cpu.as_secs_f64() * 1000.0 / calls;
            println!(
                "\n| the operator's calls for {} requests, made by the tight client | time | kube-apiserver + etcd CPU | CPU per call | against a RoleBinding create |",
                self.floor_objects
            );
            println!("|---|---|---|---|---|");
            for phase in &self.floor {
                println!(
                    "| {} | {} | {} | {:.2} ms | {:.1}× |",
                    phase.call,
                    seconds_text(phase.took),
                    seconds_text(phase.control_plane_cpu),
                    per_call(phase.control_plane_cpu),
                    phase.control_plane_cpu.as_secs_f64()
                        / binding.control_plane_cpu.as_secs_f64().max(f64::EPSILON)
                );
            }
            let took: Duration = self.floor.iter().map(|phase| phase.took).sum();
            let cpu: Duration = self.floor.iter().map(|phase| phase.control_plane_cpu).sum();
            println!(
                "| all of them | {} | {} | {:.2} ms a request | {:.1}× |",
                seconds_text(took),
                seconds_text(cpu),
                per_call(cpu),
                cpu.as_secs_f64() / binding.control_plane_cpu.as_secs_f64().max(f64::EPSILON)
            );
        }
        println!(
            "\n| scenario | operator peak RSS (VmHWM) | operator CPU | kube-apiserver + etcd CPU | operator API requests | per object | AccessRecords at start |"
        );
        println!("|---|---|---|---|---|---|---|");
        for usage in &self.usage {
            println!(
                "| {} ({} objects) | {:.1} MiB | {:.2} s | {:.2} s | {:.0} | {:.1} | {} |",
                usage.scenario,
                usage.objects,
                usage.peak_kib as f64 / 1024.0,
                usage.cpu.as_secs_f64(),
                usage.control_plane_cpu.as_secs_f64(),
                usage.api_requests.total(),
                usage.api_requests.total() / usage.objects.max(1) as f64,
                usage.records_at_start
            );
        }
        println!("\nAPI requests per object, by verb and resource:\n");
        for usage in &self.usage {
            println!(
                "- {}: {}",
                usage.scenario,
                usage.api_requests.breakdown(usage.objects)
            );
        }
        println!(
            "\nGoals from issue #12: ≤ 64 MiB at 10,000 requests, ≤ 4 API requests per provisioned object."
        );
    }
}

fn seconds_text(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn ratio(gatehouse: Duration, tight: Duration) -> String {
    if tight.is_zero() {
        "–".into()
    } else {
        format!("{:.1}×", gatehouse.as_secs_f64() / tight.as_secs_f64())
    }
}

/// A duration that may be negative, as one to print: negative counts as zero (early removals are
/// counted separately).
fn unsigned(d: SignedDuration) -> Duration {
    Duration::try_from(d).unwrap_or(Duration::ZERO)
}
