//! Prometheus metrics, all named `gatehouse_*`, served as OpenMetrics text on `/metrics`
//! ([`crate::server`]). Every label has a bounded set of values: a kind, an error category
//! ([`crate::controller::Error::category`]), an approver role from the AccessPolicies; never an
//! object's name or an error message, which would grow the series without end.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::Store;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use crate::api::common::Decision;
use crate::api::{
    AccessPhase, AccessRequest, AccessRequestStatus, DataSharingAgreement, SharingPhase,
};
use crate::controller::Cached;

/// Reconciles take milliseconds; the top buckets catch slow API calls and retries.
const RECONCILE_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Provisioning and expiry take tens of milliseconds when healthy (README, "Measured"); the top
/// buckets show an operator that was down or could not provision for minutes.
const LIFECYCLE_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    kind: String,
    category: &'static str,
}

/// Labels of one notification delivery attempt: the destination's format (`CloudEvents`,
/// `Slack`) and what became of it (`delivered`, `retried`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotificationLabels {
    format: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

fn reconcile_histogram() -> Histogram {
    Histogram::new(RECONCILE_BUCKETS)
}

/// Every metric of the operator and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabels, Counter>,
    reconcile_errors: Family<ErrorLabels, Counter>,
    reconcile_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    approval_to_provisioned: Histogram,
    expiry_lag: Histogram,
    leader: Gauge,
    requests: Arc<RequestGauges>,
    agreements: Arc<AgreementGauges>,
    share_syncs: Counter,
    api_requests: Family<ApiLabels, Counter>,
    notifications: Family<NotificationLabels, Counter>,
}

/// Labels of a request to the Kubernetes API: its verb and resource (`rolebindings`,
/// `accessrequests/status`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    verb: &'static str,
    resource: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("gatehouse");
        let reconciles = Family::default();
        registry.register(
            "reconciles",
            "Reconciles run, by kind (AccessRequest, DataSharingAgreement)",
            reconciles.clone(),
        );
        let reconcile_errors = Family::default();
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and will be retried, by kind and error category",
            reconcile_errors.clone(),
        );
        let reconcile_duration =
            Family::new_with_constructor(reconcile_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "reconcile_duration",
            "How long one reconcile took, by kind",
            Unit::Seconds,
            reconcile_duration.clone(),
        );
        let approval_to_provisioned = Histogram::new(LIFECYCLE_BUCKETS);
        registry.register_with_unit(
            "approval_to_provisioned",
            "From the last approval the operator recorded (status.approvals[].time) to the request's bindings being applied",
            Unit::Seconds,
            approval_to_provisioned.clone(),
        );
        let expiry_lag = Histogram::new(LIFECYCLE_BUCKETS);
        registry.register_with_unit(
            "expiry_lag",
            "From a grant's expiresAt to its bindings being deleted; negative would mean early",
            Unit::Seconds,
            expiry_lag.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease and runs the controllers, else 0",
            leader.clone(),
        );
        let requests = Arc::new(RequestGauges::default());
        registry.register_collector(Box::new(requests.clone()));
        let agreements = Arc::new(AgreementGauges::default());
        registry.register_collector(Box::new(agreements.clone()));
        let share_syncs = Counter::default();
        registry.register(
            "share_syncs",
            "Times a data share's objects were written from new source versions (activation and each rotation)",
            share_syncs.clone(),
        );
        let api_requests = Family::default();
        registry.register(
            "api_requests",
            "Requests the operator sent to the Kubernetes API, by verb and resource (watches count once, when they start)",
            api_requests.clone(),
        );
        let notifications = Family::default();
        registry.register(
            "notifications",
            "Notification delivery attempts, by format and outcome: delivered (2xx), retried (failed, tried again later), failed (the last attempt failed; given up)",
            notifications.clone(),
        );
        Metrics {
            api_requests,
            notifications,
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            approval_to_provisioned,
            expiry_lag,
            leader,
            requests,
            agreements,
            share_syncs,
        }
    }

    /// Counts and times one reconcile of `kind`; `error` is the category of its failure.
    pub fn reconciled(&self, kind: &str, took: Duration, error: Option<&'static str>) {
        let labels = KindLabels { kind: kind.into() };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
        if let Some(category) = error {
            self.reconcile_errors
                .get_or_create(&ErrorLabels {
                    kind: labels.kind,
                    category,
                })
                .inc();
        }
    }

    pub fn set_leader(&self, leading: bool) {
        self.leader.set(i64::from(leading));
    }

    /// Records what a change of an AccessRequest's bindings achieved, when it was a grant
    /// provisioned (`before` not active, `after` active) or a grant removed at expiry.
    pub fn bindings_changed(
        &self,
        before: Option<&AccessRequestStatus>,
        after: &AccessRequestStatus,
        now: Timestamp,
    ) {
        match transition(before, after, now) {
            Some(Transition::Provisioned { since_approval }) => {
                self.approval_to_provisioned.observe(since_approval);
            }
            Some(Transition::Expired { lag }) => self.expiry_lag.observe(lag),
            None => {}
        }
    }

    /// The pending and active AccessRequests, counted at each scrape from `requests` (the
    /// controller's cache). Only the leader has that cache, so a standby reports neither gauge.
    pub fn count_requests(&self, requests: Store<Cached<AccessRequest>>) {
        *self
            .requests
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(requests);
    }

    /// The DataSharingAgreements by phase, counted at each scrape from `agreements` (the
    /// controller's cache, so the leader's only).
    pub fn count_agreements(&self, agreements: Store<Cached<DataSharingAgreement>>) {
        *self
            .agreements
            .store
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(agreements);
    }

    /// Counts one request to the Kubernetes API.
    pub fn api_request(&self, verb: &'static str, resource: String) {
        self.api_requests
            .get_or_create(&ApiLabels { verb, resource })
            .inc();
    }

    /// Counts one notification delivery attempt to a destination of `format`.
    pub fn notification(&self, format: &'static str, outcome: &'static str) {
        self.notifications
            .get_or_create(&NotificationLabels { format, outcome })
            .inc();
    }

    pub fn share_synced(&self) {
        self.share_syncs.inc();
    }

    /// Everything in the OpenMetrics text format.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// What a change of an AccessRequest's bindings was, for the lifecycle histograms.
#[derive(Debug, PartialEq)]
enum Transition {
    /// The grant became active, this many seconds after its last recorded approval.
    Provisioned { since_approval: f64 },
    /// The grant was removed at expiry, this many seconds after `expiresAt`.
    Expired { lag: f64 },
}

fn transition(
    before: Option<&AccessRequestStatus>,
    after: &AccessRequestStatus,
    now: Timestamp,
) -> Option<Transition> {
    let was = before.and_then(|s| s.phase);
    match after.phase? {
        AccessPhase::Active if was != Some(AccessPhase::Active) => {
            let approved = after
                .approvals
                .iter()
                .filter(|a| a.decision == Decision::Approved)
                .filter_map(|a| a.time.as_ref().map(|t| t.0))
                .max()?;
            Some(Transition::Provisioned {
                since_approval: seconds_between(approved, now),
            })
        }
        AccessPhase::Expired if was == Some(AccessPhase::Active) => {
            let expires_at = before?.grant.as_ref()?.expires_at.0;
            Some(Transition::Expired {
                lag: seconds_between(expires_at, now),
            })
        }
        _ => None,
    }
}

fn seconds_between(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

/// Gauges computed at each scrape from the AccessRequest cache, so they are never stale and
/// forget deleted requests without bookkeeping.
#[derive(Debug, Default)]
struct RequestGauges {
    store: RwLock<Option<Store<Cached<AccessRequest>>>>,
}

impl Collector for RequestGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let requests = match &*self.store.read().unwrap_or_else(PoisonError::into_inner) {
            Some(store) => store.state(),
            None => return Ok(()),
        };
        // Only the two fields counted are parsed from each cached status; a status the cache
        // cannot read back (a bug, logged by its reconcile) is not counted.
        let counts = count(
            requests
                .iter()
                .filter_map(|r| r.status_as::<RequestGauged>().ok().flatten()),
        );
        let pending: Family<StageLabels, Gauge> = Family::default();
        for (stage, n) in counts.pending {
            pending.get_or_create(&StageLabels { stage }).set(n);
        }
        pending.encode(encoder.encode_descriptor(
            "pending_access_requests",
            "AccessRequests in phase Pending, by the approver role whose stage they wait for (none: waiting for nothing a person can do, e.g. approval integrity)",
            None,
            pending.metric_type(),
        )?)?;
        let active = Gauge::<i64>::default();
        active.set(counts.active);
        active.encode(encoder.encode_descriptor(
            "active_grants",
            "AccessRequests whose access is provisioned now (phase Active)",
            None,
            active.metric_type(),
        )?)?;
        Ok(())
    }
}

/// DataSharingAgreements by phase, computed at each scrape like [`RequestGauges`].
#[derive(Debug, Default)]
struct AgreementGauges {
    store: RwLock<Option<Store<Cached<DataSharingAgreement>>>>,
}

impl Collector for AgreementGauges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let agreements = match &*self.store.read().unwrap_or_else(PoisonError::into_inner) {
            Some(store) => store.state(),
            None => return Ok(()),
        };
        let by_phase: Family<PhaseLabels, Gauge> = Family::default();
        for (phase, n) in count_phases(
            agreements
                .iter()
                .map(|a| a.status_as::<AgreementGauged>().ok().flatten()?.phase),
        ) {
            by_phase.get_or_create(&PhaseLabels { phase }).set(n);
        }
        by_phase.encode(encoder.encode_descriptor(
            "data_sharing_agreements",
            "DataSharingAgreements by phase (Active: shared now; Suspended: sources changed, nothing shared)",
            None,
            by_phase.metric_type(),
        )?)?;
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: String,
}

/// Agreements per phase; one not yet reconciled counts as `New`.
fn count_phases(phases: impl Iterator<Item = Option<SharingPhase>>) -> BTreeMap<String, i64> {
    let mut counts = BTreeMap::new();
    for phase in phases {
        let name = phase.map_or_else(|| "New".to_string(), |p| p.to_string());
        *counts.entry(name).or_default() += 1;
    }
    counts
}

/// What the request gauges read of a cached status.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestGauged {
    phase: Option<AccessPhase>,
    waiting_for: Option<String>,
}

/// What the agreement gauges read of a cached status.
#[derive(serde::Deserialize)]
struct AgreementGauged {
    phase: Option<SharingPhase>,
}

#[derive(Debug, Default, PartialEq)]
struct Counts {
    pending: BTreeMap<String, i64>,
    active: i64,
}

/// Approval stages go in order, so a pending request waits for the first role it lists.
fn count(statuses: impl Iterator<Item = RequestGauged>) -> Counts {
    let mut counts = Counts::default();
    for status in statuses {
        match status.phase {
            Some(AccessPhase::Pending) => {
                let stage = status
                    .waiting_for
                    .as_deref()
                    .and_then(|w| w.split(',').map(str::trim).find(|r| !r.is_empty()))
                    .unwrap_or("none");
                *counts.pending.entry(stage.to_string()).or_default() += 1;
            }
            Some(AccessPhase::Active) => counts.active += 1,
            _ => {}
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::Grant;
    use crate::api::common::ApprovalRecord;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).expect("valid time")
    }

    fn status(phase: AccessPhase) -> AccessRequestStatus {
        AccessRequestStatus {
            phase: Some(phase),
            ..Default::default()
        }
    }

    fn approval(decision: Decision, second: i64) -> ApprovalRecord {
        ApprovalRecord {
            role: "manager".into(),
            user: "bob".into(),
            decision,
            reason: None,
            time: Some(Time(at(second))),
        }
    }

    #[test]
    fn provisioning_is_timed_from_the_last_approval() {
        let mut active = status(AccessPhase::Active);
        active.approvals = vec![
            approval(Decision::Approved, 10),
            approval(Decision::Approved, 40),
        ];
        assert_eq!(
            transition(Some(&status(AccessPhase::Pending)), &active, at(42)),
            Some(Transition::Provisioned {
                since_approval: 2.0
            })
        );
        assert_eq!(
            transition(None, &active, at(41)),
            Some(Transition::Provisioned {
                since_approval: 1.0
            })
        );
    }

    #[test]
    fn a_grant_already_active_or_never_approved_is_not_a_provisioning() {
        let mut active = status(AccessPhase::Active);
        active.approvals = vec![approval(Decision::Approved, 10)];
        assert_eq!(transition(Some(&active), &active, at(20)), None);
        let mut denied_only = status(AccessPhase::Active);
        denied_only.approvals = vec![approval(Decision::Denied, 10)];
        assert_eq!(transition(None, &denied_only, at(20)), None);
    }

    #[test]
    fn expiry_lag_counts_from_expires_at() {
        let mut active = status(AccessPhase::Active);
        active.grant = Some(Grant {
            bindings: Vec::new(),
            activated_at: Time(at(0)),
            expires_at: Time(at(60)),
            seal: None,
        });
        let lag = transition(Some(&active), &status(AccessPhase::Expired), at(61));
        assert_eq!(lag, Some(Transition::Expired { lag: 1.0 }));
        // Revocation is not expiry.
        assert_eq!(
            transition(Some(&active), &status(AccessPhase::Revoked), at(61)),
            None
        );
    }

    #[test]
    fn pending_requests_count_under_the_stage_they_wait_for() {
        let gauged = |phase, waiting_for: Option<&str>| RequestGauged {
            phase: Some(phase),
            waiting_for: waiting_for.map(str::to_string),
        };
        let statuses = [
            gauged(AccessPhase::Pending, Some("manager,data-owner")),
            gauged(AccessPhase::Pending, Some("manager,data-owner")),
            gauged(AccessPhase::Pending, Some("data-owner")),
            gauged(AccessPhase::Pending, None),
            gauged(AccessPhase::Active, None),
            gauged(AccessPhase::Expired, None),
        ];
        let counts = count(statuses.into_iter());
        assert_eq!(
            counts.pending,
            BTreeMap::from([
                ("data-owner".to_string(), 1),
                ("manager".to_string(), 2),
                ("none".to_string(), 1),
            ])
        );
        assert_eq!(counts.active, 1);
    }

    #[test]
    fn the_exposition_names_every_metric_with_its_unit_and_labels() {
        let metrics = Metrics::new();
        metrics.reconciled("AccessRequest", Duration::from_millis(3), None);
        metrics.reconciled(
            "AccessRequest",
            Duration::from_millis(7),
            Some("write_status"),
        );
        metrics.set_leader(true);
        let text = metrics.encode().expect("encodes");
        for line in [
            "gatehouse_reconciles_total{kind=\"AccessRequest\"} 2",
            "gatehouse_reconcile_errors_total{kind=\"AccessRequest\",category=\"write_status\"} 1",
            "gatehouse_reconcile_duration_seconds_count{kind=\"AccessRequest\"} 2",
            "gatehouse_approval_to_provisioned_seconds_count 0",
            "gatehouse_expiry_lag_seconds_count 0",
            "gatehouse_leader 1",
            "# EOF",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} missing:\n{text}");
        }
        assert!(
            !text.contains("active_grants"),
            "without the request cache (a standby) the request gauges are absent:\n{text}"
        );
    }

    #[test]
    fn the_request_gauges_come_from_the_cache_at_scrape_time() {
        let metrics = Metrics::new();
        let (store, mut writer) = kube::runtime::reflector::store::<Cached<AccessRequest>>();
        metrics.count_requests(store);
        let mut request = crate::api::fixtures::access_request();
        request.status = Some(status(AccessPhase::Active));
        let cached = Cached::pack(request).expect("packs");
        writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(cached));
        let text = metrics.encode().expect("encodes");
        assert!(
            text.lines().any(|l| l == "gatehouse_active_grants 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE gatehouse_pending_access_requests gauge"),
            "{text}"
        );
    }

    #[test]
    fn agreements_are_counted_by_phase() {
        let counts = count_phases(
            [
                Some(SharingPhase::Active),
                Some(SharingPhase::Active),
                Some(SharingPhase::Suspended),
                None,
            ]
            .into_iter(),
        );
        assert_eq!(
            counts,
            BTreeMap::from([
                ("Active".to_string(), 2),
                ("New".to_string(), 1),
                ("Suspended".to_string(), 1)
            ])
        );
    }
}
