//! Measures how fast Gatehouse acts on the real control plane and prints a table:
//! - last approval → RoleBinding exists (the grant is usable),
//! - `status.grant.expiresAt` → RoleBinding deleted (expiry lag; never negative),
//! - last review → a data share's copy exists, source rotated → copy updated, and
//!   `status.share.expiresAt` → copy deleted (retention lag),
//! - the operator's peak memory.
//!
//! `cargo bench --bench lifecycle` (or `make bench`); `GATEHOUSE_BENCH_REQUESTS` sets how many
//! requests (default 20). Uses the local control plane and a release build of the operator.

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use gatehouse::api::{AccessPhase, AccessRequest, DataSharingAgreement, SharingPhase};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use serde_json::json;

// The e2e helpers; the benchmark uses only some of them.
#[allow(dead_code)]
#[path = "../tests/e2e/support.rs"]
mod support;

const ROLE: &str = "gatehouse-bench-reader";

#[tokio::main]
async fn main() {
    // Panics with the reason, so a benchmark that could not run never prints a table or exits 0.
    let kubeconfig = support::kubeconfig();
    let count: usize = std::env::var("GATEHOUSE_BENCH_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let admin = support::client(kubeconfig, "admin").await;
    let ns = support::manager_approved_namespace(&admin, "bench", ROLE).await;

    let alice = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let bob = Api::<AccessRequest>::namespaced(support::client(kubeconfig, "bob").await, &ns);
    let bindings = Api::<RoleBinding>::namespaced(admin.clone(), &ns);
    let mut events = watcher(bindings, watcher::Config::default()).boxed();
    // The watch's initial list ends before the first request is made, so every later binding
    // arrives as an event of its own.
    loop {
        match events.try_next().await {
            Ok(Some(watcher::Event::InitDone)) => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("the binding watch ended before its initial list"),
        }
    }

    let requests_before = api_requests(&support::shared_operator_metrics());
    let mut grant_latency = Vec::new();
    let mut expiry_lag = Vec::new();
    for i in 0..count {
        let name = format!("bench-{i}");
        let request: AccessRequest = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "AccessRequest",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "requester": "alice", "role": { "kind": "ClusterRole", "name": ROLE },
                      "duration": "2s", "justification": "BENCH-1 measuring" }
        }))
        .expect("valid request");
        alice
            .create(&PostParams::default(), &request)
            .await
            .expect("request");
        support::wait_until(&alice, &name, "Pending", |ar| {
            ar.status.as_ref().and_then(|s| s.phase) == Some(AccessPhase::Pending)
        })
        .await;

        let approved = Instant::now();
        support::annotate(&bob, &name, &[("approve.gatehouse.dev/manager", "bob")]).await;
        let binding = format!("gatehouse.{ns}.{name}");
        wait_for(
            &mut events,
            |event| matches!(event, watcher::Event::Apply(rb) if rb.name_any() == binding),
        )
        .await;
        grant_latency.push(approved.elapsed());

        wait_for(
            &mut events,
            |event| matches!(event, watcher::Event::Delete(rb) if rb.name_any() == binding),
        )
        .await;
        let deleted = Timestamp::now();
        let active = alice.get(&name).await.expect("request");
        let Some(expires) = active
            .status
            .as_ref()
            .and_then(|s| s.grant.as_ref())
            .map(|g| g.expires_at.0)
        else {
            panic!(
                "{name} has no grant after its binding was deleted: {:#?}",
                active.status
            );
        };
        expiry_lag.push(deleted.duration_since(expires));
    }

    let requests_after_access = api_requests(&support::shared_operator_metrics());
    let shares = measure_shares(kubeconfig, count).await;
    let requests_after_shares = api_requests(&support::shared_operator_metrics());

    println!(
        "\nGatehouse lifecycle benchmark: {count} requests and {count} shares, kube-apiserver on loopback\n"
    );
    println!("| metric | n | min | p50 | p90 | max |");
    println!("|---|---|---|---|---|---|");
    row("last approval → RoleBinding exists", &grant_latency);
    let lag: Vec<Duration> = expiry_lag
        .iter()
        .map(|d| Duration::from_secs_f64(d.as_secs_f64().max(0.0)))
        .collect();
    row("expiresAt → RoleBinding deleted", &lag);
    row("last review → Copy Secret exists", &shares.executed);
    row("source rotated → Copy Secret updated", &shares.synced);
    let retention: Vec<Duration> = shares
        .retention_lag
        .iter()
        .map(|d| Duration::from_secs_f64(d.as_secs_f64().max(0.0)))
        .collect();
    row("share expiresAt → Copy Secret deleted", &retention);
    let early = expiry_lag.iter().filter(|d| d.is_negative()).count();
    println!("\nbindings deleted before expiresAt: {early}");
    let early = shares
        .retention_lag
        .iter()
        .filter(|d| d.is_negative())
        .count();
    println!("copies deleted before their share's expiresAt: {early}");
    // Everything the operator sent while the requests (then the shares) went from filing to
    // removal: reconciles of every step, Events, records, proofs, and the other tests' objects
    // it looked at meanwhile (none on a fresh control plane).
    println!(
        "operator API requests per access request, filed to removed: {:.1}",
        (requests_after_access - requests_before) / count as f64
    );
    println!(
        "operator API requests per share, filed to removed (incl. one rotation): {:.1}",
        (requests_after_shares - requests_after_access) / count as f64
    );
    if let Some(peak) = operator_peak_memory() {
        println!("operator peak resident memory (VmHWM): {peak}");
    }
}

struct ShareTimes {
    executed: Vec<Duration>,
    synced: Vec<Duration>,
    retention_lag: Vec<k8s_openapi::jiff::SignedDuration>,
}

/// `count` internal shares by Copy, each reviewed by carol, its source rotated once, and left to
/// expire after 3 s.
async fn measure_shares(kubeconfig: &std::path::Path, count: usize) -> ShareTimes {
    let admin = support::client(kubeconfig, "admin").await;
    let (ns, recipient) = support::sharing_namespaces(
        &admin,
        "bench-share",
        json!({ "reviews": { "always": ["data-owner"] }, "maxRetention": "1h" }),
    )
    .await;
    let sources = Api::<Secret>::namespaced(admin.clone(), &ns);
    let alice =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "alice").await, &ns);
    let carol =
        Api::<DataSharingAgreement>::namespaced(support::client(kubeconfig, "carol").await, &ns);
    let mut events = watcher(
        Api::<Secret>::namespaced(admin.clone(), &recipient),
        watcher::Config::default(),
    )
    .boxed();
    loop {
        match events.try_next().await {
            Ok(Some(watcher::Event::InitDone)) => break,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => panic!("the copy watch ended before its initial list"),
        }
    }
    let mut times = ShareTimes {
        executed: Vec::new(),
        synced: Vec::new(),
        retention_lag: Vec::new(),
    };
    for i in 0..count {
        let source = format!("db-{i}");
        let secret: Secret = serde_json::from_value(json!({
            "metadata": { "name": source }, "stringData": { "password": "v1" }
        }))
        .expect("valid Secret");
        sources
            .create(&PostParams::default(), &secret)
            .await
            .expect("source");
        let name = format!("share-{i}");
        let agreement: DataSharingAgreement = serde_json::from_value(json!({
            "apiVersion": "gatehouse.dev/v1alpha1", "kind": "DataSharingAgreement",
            "metadata": { "name": name, "namespace": ns },
            "spec": { "requester": "alice", "data": [{ "secret": source, "keys": ["password"] }],
                      "recipient": { "namespace": recipient }, "purpose": "benchmark",
                      "transfer": { "method": "Copy" }, "retention": "3s", "policy": ns }
        }))
        .expect("valid DataSharingAgreement");
        alice
            .create(&PostParams::default(), &agreement)
            .await
            .expect("agreement");
        support::wait_until(&alice, &name, "Pending", |a| {
            a.status.as_ref().and_then(|s| s.phase) == Some(SharingPhase::Pending)
        })
        .await;
        let copy = format!("{ns}.{name}.{source}");
        let approved = Instant::now();
        support::annotate(
            &carol,
            &name,
            &[("approve.gatehouse.dev/data-owner", "carol")],
        )
        .await;
        wait_for(
            &mut events,
            |event| matches!(event, watcher::Event::Apply(s) if s.name_any() == copy),
        )
        .await;
        times.executed.push(approved.elapsed());

        let rotated = Instant::now();
        sources
            .patch(
                &source,
                &PatchParams::default(),
                &Patch::Merge(&json!({ "stringData": { "password": "v2" } })),
            )
            .await
            .expect("rotate");
        let v2 = |s: &Secret| {
            s.data
                .as_ref()
                .and_then(|d| d.get("password"))
                .map(|v| v.0.as_slice())
                == Some(b"v2".as_slice())
        };
        wait_for(
            &mut events,
            |event| matches!(event, watcher::Event::Apply(s) if s.name_any() == copy && v2(s)),
        )
        .await;
        times.synced.push(rotated.elapsed());

        wait_for(
            &mut events,
            |event| matches!(event, watcher::Event::Delete(s) if s.name_any() == copy),
        )
        .await;
        let deleted = Timestamp::now();
        let expires = alice
            .get(&name)
            .await
            .expect("agreement")
            .status
            .and_then(|s| s.share)
            .map(|s| s.expires_at.0)
            .expect("a share record after the copy was deleted");
        times.retention_lag.push(deleted.duration_since(expires));
    }
    times
}

/// Waits (30 s at most) for a watch event that `wanted` accepts.
async fn wait_for<K>(
    events: &mut (impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Unpin),
    wanted: impl Fn(&watcher::Event<K>) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(1), events.try_next()).await {
            Ok(Ok(Some(event))) if wanted(&event) => return,
            Ok(Err(err)) => panic!("watch failed: {err}"),
            _ => {}
        }
    }
    panic!("the awaited event never came");
}

fn row(metric: &str, samples: &[Duration]) {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let at = |q: f64| {
        sorted
            .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or_default()
    };
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    println!(
        "| {metric} | {} | {} | {} | {} | {} |",
        sorted.len(),
        ms(at(0.0)),
        ms(at(0.5)),
        ms(at(0.9)),
        ms(at(1.0))
    );
}

/// The total of `gatehouse_api_requests_total` over every verb and resource in a `/metrics` text.
fn api_requests(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| line.starts_with("gatehouse_api_requests_total{"))
        .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum()
}

/// VmHWM of the operator process started for this run, from /proc.
fn operator_peak_memory() -> Option<String> {
    let exe = env!("CARGO_BIN_EXE_gatehouse");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let cmdline = std::fs::read_to_string(entry.path().join("cmdline")).ok()?;
            if !cmdline.starts_with(exe) {
                return None;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.trim_start_matches("VmHWM:").trim().to_string())
        })
}
