//! Leader election on a `coordination.k8s.io` Lease, so that several replicas can run and only one
//! acts: every replica keeps its caches warm, only the holder of the Lease runs the controllers.
//!
//! `kube-lease-manager` acquires and renews the Lease (a free Lease is taken by server-side apply,
//! so two candidates racing for it cannot both get it). It retries failed renewals forever without
//! telling, so a leader also reads the Lease itself and stops acting once it has not seen its own
//! renewal for the renew deadline, or sees another holder. The renew deadline is shorter than the
//! lease duration, so the old leader has stopped before any other replica may take over.
//!
//! A leader that stopped acting does not exit: it [steps down](Candidate::step_down) and stands by
//! again in the same process, caches warm, and leads again once it holds the Lease (an API server
//! that was away for a minute costs no restart, and no crash loop). Leading again needs a renewal
//! seen in the Lease itself, never the lease manager's word alone: a new lease manager takes a
//! Lease that still names this replica as its own before renewing it. A standby reads the Lease
//! too, to take over at once when a leader released it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::jiff::Timestamp;
use kube::{Api, Client};
use kube_lease_manager::{LeaseCreateMode, LeaseManager, LeaseManagerBuilder, LeaseParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How long stopping a campaign waits for the lease manager to release the Lease.
const RESIGN_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a replica the lease manager calls the holder reads the Lease until it shows a renewal
/// of its own, before it acts: the lease manager renews a Lease it takes over at once, so this
/// takes a read or two.
const CONFIRM_EVERY: Duration = Duration::from_millis(200);

/// Errors of leader election. Messages say what failed and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid leader election settings: {0}")]
    Settings(String),
    #[error(
        "cannot take part in leader election on Lease {namespace}/{lease}: {}; the namespace must exist (--lease-namespace, or POD_NAMESPACE) and the operator needs get, create and patch on that Lease (deploy/base/leader-election.yaml); a single replica may run with --leader-election=false",
        cause(source)
    )]
    Join {
        namespace: String,
        lease: String,
        #[source]
        source: kube_lease_manager::LeaseManagerError,
    },
    #[error(
        "lost the leadership: Lease {namespace}/{lease} is held by {holder} now; stopped acting so that only the leader acts, standing by to lead again"
    )]
    Lost {
        namespace: String,
        lease: String,
        holder: String,
    },
    #[error(
        "could not renew Lease {namespace}/{lease} for {deadline:?}; stopped acting before another replica may take over, standing by to lead again once the Lease is renewed (check this Pod's connection to the API server)"
    )]
    RenewDeadline {
        namespace: String,
        lease: String,
        deadline: Duration,
    },
    #[error(
        "the lease manager stopped unexpectedly; restart the operator (its logs above say why)"
    )]
    Stopped,
}

/// The API server's own message when it refused, rather than the whole response.
fn cause(err: &kube_lease_manager::LeaseManagerError) -> String {
    match err {
        kube_lease_manager::LeaseManagerError::KubeError(kube::Error::Api(status)) => {
            status.message.clone()
        }
        other => other.to_string(),
    }
}

/// Where and how to elect the leader.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Name of the Lease.
    pub lease: String,
    /// Namespace of the Lease: the operator's own.
    pub namespace: String,
    /// Who this replica is in `spec.holderIdentity`.
    pub identity: String,
    /// How long a Lease stays valid after its last renewal; standbys wait this long for a leader
    /// that vanished without releasing it.
    duration: Duration,
    /// How long a leader goes on without a confirmed renewal before it stops.
    renew_deadline: Duration,
}

impl Settings {
    /// Checks the timing: `duration` in whole seconds (the Lease stores seconds), the renew
    /// deadline (default two thirds of it) shorter than the duration and longer than the interval
    /// between renewals.
    pub fn new(
        lease: String,
        namespace: String,
        identity: String,
        duration: Duration,
        renew_deadline: Option<Duration>,
    ) -> Result<Settings, Error> {
        if duration.subsec_nanos() != 0 || duration < Duration::from_secs(2) {
            return Err(Error::Settings(format!(
                "--lease-duration must be whole seconds, at least 2s; got {duration:?}"
            )));
        }
        let renew_deadline = renew_deadline.unwrap_or(duration * 2 / 3);
        let settings = Settings {
            lease,
            namespace,
            identity,
            duration,
            renew_deadline,
        };
        if renew_deadline >= duration || renew_deadline <= settings.renew_every() {
            return Err(Error::Settings(format!(
                "--lease-renew-deadline must be shorter than --lease-duration ({duration:?}) and longer than the renewal interval ({:?}); got {renew_deadline:?}",
                settings.renew_every()
            )));
        }
        Ok(settings)
    }

    /// The leader renews three times per lease duration, so that a failed renewal is retried
    /// well before the renew deadline.
    fn renew_every(&self) -> Duration {
        Duration::from_secs((self.duration.as_secs() / 3).max(1))
    }

    /// How often a leader reads the Lease to confirm that it still holds it, and a replica that
    /// stepped down tries to compete again while the API server does not answer.
    pub fn check_every(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(200))
    }

    /// The lease manager's parameters: it renews `grace` seconds before the Lease would expire.
    fn params(&self) -> LeaseParams {
        let duration = self.duration.as_secs();
        LeaseParams::new(
            self.identity.clone(),
            duration,
            duration - self.renew_every().as_secs(),
        )
    }
}

/// This replica's identity: the Pod name in a cluster, else hostname and process id (unique among
/// operators run by hand on one cluster).
pub fn identity(pod_name: Option<String>) -> String {
    match pod_name {
        Some(name) if !name.trim().is_empty() => name.trim().to_string(),
        _ => {
            let host = hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "gatehouse".into());
            format!("{host}-{}", std::process::id())
        }
    }
}

/// A replica taking part in the election.
pub struct Candidate {
    client: Client,
    settings: Settings,
    leases: Api<Lease>,
    /// `None` only while a campaign is being replaced.
    campaign: Option<Campaign>,
    /// Until when this replica may act: its last renewal seen in the Lease plus the renew
    /// deadline (set by [`Candidate::elected`], moved on by [`Candidate::lost`]).
    valid_until: Timestamp,
}

/// One run of the lease manager: it competes for the Lease in the background and reports whether
/// this replica holds it.
struct Campaign {
    leading: watch::Receiver<bool>,
    manager: JoinHandle<kube_lease_manager::Result<LeaseManager>>,
}

impl Campaign {
    async fn start(client: &Client, settings: &Settings) -> Result<Campaign, Error> {
        let manager = LeaseManagerBuilder::new(client.clone(), &settings.lease)
            .with_namespace(&settings.namespace)
            .with_parameters(settings.params())
            .with_create_mode(LeaseCreateMode::AutoCreate)
            .build()
            .await
            .map_err(|source| Error::Join {
                namespace: settings.namespace.clone(),
                lease: settings.lease.clone(),
                source,
            })?;
        let (leading, manager) = manager.watch().await;
        Ok(Campaign { leading, manager })
    }

    /// Stops competing. A leader releases the Lease, waiting at most [`RESIGN_TIMEOUT`] so that
    /// shutdown never hangs on an unreachable API server. A standby just stops: the lease
    /// manager's release would clear an expired Lease, which may be a new leader's by now.
    async fn stop(self) {
        let leading = *self.leading.borrow();
        let mut manager = self.manager;
        if !leading {
            manager.abort();
            return;
        }
        drop(self.leading);
        match tokio::time::timeout(RESIGN_TIMEOUT, &mut manager).await {
            Ok(Ok(Ok(_))) => tracing::info!("released the leader Lease"),
            Ok(Ok(Err(err))) => {
                tracing::warn!(error = %err, "cannot release the leader Lease; it expires by itself");
            }
            Ok(Err(err)) => tracing::warn!(error = %err, "the lease manager failed"),
            Err(_) => {
                manager.abort();
                tracing::warn!("releasing the leader Lease timed out; it expires by itself");
            }
        }
    }
}

impl Candidate {
    /// Creates the Lease if it is missing and starts competing for it in the background.
    pub async fn join(client: Client, settings: Settings) -> Result<Candidate, Error> {
        let campaign = Campaign::start(&client, &settings).await?;
        Ok(Candidate {
            leases: Api::namespaced(client.clone(), &settings.namespace),
            client,
            settings,
            campaign: Some(campaign),
            valid_until: Timestamp::now(),
        })
    }

    fn leading(&mut self) -> Result<&mut watch::Receiver<bool>, Error> {
        self.campaign
            .as_mut()
            .map(|c| &mut c.leading)
            .ok_or(Error::Stopped)
    }

    /// Resolves once this replica holds the Lease and the Lease shows its renewal: from then on
    /// it may act until [`Candidate::lost`] resolves. The lease manager looks at a held Lease
    /// again only when it would expire, so a leader that released it on SIGTERM would leave the
    /// standbys waiting up to a lease duration: the Lease is read here too, and a released one
    /// makes this replica compete at once.
    pub async fn elected(&mut self) -> Result<(), Error> {
        loop {
            self.campaigned().await?;
            if self.confirmed().await {
                return Ok(());
            }
        }
    }

    /// Waits until the lease manager says this replica holds the Lease.
    async fn campaigned(&mut self) -> Result<(), Error> {
        let mut checks = tokio::time::interval(self.settings.check_every());
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if self.campaign.is_none() {
                match Campaign::start(&self.client, &self.settings).await {
                    Ok(campaign) => self.campaign = Some(campaign),
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot compete for the lease; retrying")
                    }
                }
            }
            match self.campaign.as_mut() {
                Some(campaign) => tokio::select! {
                    elected = campaign.leading.wait_for(|leading| *leading) => {
                        return elected.map(|_| ()).map_err(|_| Error::Stopped);
                    }
                    _ = checks.tick() => {}
                },
                None => {
                    checks.tick().await;
                    continue;
                }
            }
            if self.released().await {
                tracing::info!(
                    lease = self.settings.lease,
                    "the leader released the lease; competing for it now"
                );
                if let Some(campaign) = self.campaign.take() {
                    campaign.stop().await;
                }
            }
        }
    }

    /// Whether the Lease shows a renewal by this replica recent enough to act on, read while the
    /// lease manager goes on saying it holds the Lease; sets [`Candidate::valid_until`].
    async fn confirmed(&mut self) -> bool {
        loop {
            let leading = match self.campaign.as_ref() {
                Some(campaign) => *campaign.leading.borrow(),
                None => false,
            };
            if !leading {
                return false;
            }
            let read = tokio::time::timeout(
                self.settings.check_every(),
                self.leases.get_opt(&self.settings.lease),
            );
            if let Ok(Ok(lease)) = read.await {
                let spec = lease.and_then(|l| l.spec);
                let verdict = verdict(
                    spec.as_ref(),
                    &self.settings.identity,
                    self.settings.renew_deadline,
                );
                if let Verdict::HeldUntil(until) = verdict
                    && until > Timestamp::now()
                {
                    self.valid_until = until;
                    return true;
                }
            }
            tokio::time::sleep(CONFIRM_EVERY).await;
        }
    }

    /// Whether the Lease has no holder now (released, or never taken).
    async fn released(&self) -> bool {
        let read = tokio::time::timeout(
            self.settings.check_every(),
            self.leases.get_opt(&self.settings.lease),
        );
        match read.await {
            Ok(Ok(lease)) => {
                let spec = lease.and_then(|l| l.spec);
                verdict(spec.as_ref(), &self.settings.identity, Duration::ZERO)
                    == Verdict::HeldBy(None)
            }
            Ok(Err(_)) | Err(_) => false,
        }
    }

    /// Resolves when this replica, the leader, must stop acting, with why: at the latest its last
    /// renewal seen in the Lease plus the renew deadline.
    pub async fn lost(&mut self) -> Error {
        let deadline = self.settings.renew_deadline;
        let mut valid_until = self.valid_until;
        let mut checks = tokio::time::interval(self.settings.check_every());
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let leading = match self.leading() {
                Ok(leading) => leading,
                Err(err) => return err,
            };
            tokio::select! {
                changed = leading.changed() => match changed {
                    Ok(()) if !*leading.borrow_and_update() => {
                        return self.lost_to("another replica".into());
                    }
                    Ok(()) => {}
                    Err(_) => return Error::Stopped,
                },
                () = tokio::time::sleep(until(valid_until)) => {
                    return Error::RenewDeadline {
                        namespace: self.settings.namespace.clone(),
                        lease: self.settings.lease.clone(),
                        deadline,
                    };
                }
                _ = checks.tick() => {
                    let read = tokio::time::timeout(
                        self.settings.check_every(),
                        self.leases.get_opt(&self.settings.lease),
                    );
                    match read.await {
                        Ok(Ok(lease)) => {
                            let spec = lease.and_then(|l| l.spec);
                            match verdict(spec.as_ref(), &self.settings.identity, deadline) {
                                Verdict::HeldUntil(until) => valid_until = until,
                                Verdict::HeldBy(holder) => {
                                    return self.lost_to(holder.unwrap_or_else(|| "nobody".into()));
                                }
                            }
                        }
                        Ok(Err(err)) => tracing::warn!(error = %err, "cannot read the leader Lease; retrying"),
                        Err(_) => tracing::warn!("reading the leader Lease timed out; retrying"),
                    }
                }
            }
        }
    }

    fn lost_to(&self, holder: String) -> Error {
        Error::Lost {
            namespace: self.settings.namespace.clone(),
            lease: self.settings.lease.clone(),
            holder,
        }
    }

    /// After [`Candidate::lost`]: stands by again. The lease manager is stopped without releasing
    /// anything (what it believes may be stale: the Lease may be another replica's by now), and
    /// [`Candidate::elected`] competes with a new one.
    pub fn step_down(&mut self) {
        if let Some(campaign) = self.campaign.take() {
            campaign.manager.abort();
        }
    }

    /// Leaves the election, releasing the Lease if held, so that a standby takes over at once.
    pub async fn resign(self) {
        if let Some(campaign) = self.campaign {
            campaign.stop().await;
        }
    }
}

/// What one read of the Lease says about this replica's leadership.
#[derive(Debug, PartialEq)]
enum Verdict {
    /// Held by this replica; it may act until its last renewal plus the renew deadline.
    HeldUntil(Timestamp),
    /// Held by someone else, or by nobody.
    HeldBy(Option<String>),
}

fn verdict(spec: Option<&LeaseSpec>, identity: &str, renew_deadline: Duration) -> Verdict {
    let holder = spec.and_then(|s| s.holder_identity.clone());
    let renewed = spec.and_then(|s| s.renew_time.as_ref()).map(|t| t.0);
    match (holder, renewed) {
        (Some(holder), Some(renewed)) if holder == identity => {
            Verdict::HeldUntil(later(renewed, renew_deadline))
        }
        (holder, _) => Verdict::HeldBy(holder.filter(|h| h != identity)),
    }
}

/// `at` plus `duration`, without panicking on a time too late to add to (a corrupt Lease).
fn later(at: Timestamp, duration: Duration) -> Timestamp {
    at.checked_add(duration).unwrap_or(at)
}

/// Time left until `at`, zero when past.
fn until(at: Timestamp) -> Duration {
    Duration::try_from(at.duration_since(Timestamp::now())).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;

    use super::*;

    fn settings(duration: u64, renew_deadline: Option<u64>) -> Result<Settings, Error> {
        Settings::new(
            "gatehouse-operator".into(),
            "gatehouse-system".into(),
            "pod-a".into(),
            Duration::from_secs(duration),
            renew_deadline.map(Duration::from_secs),
        )
    }

    #[test]
    fn the_defaults_renew_every_five_seconds_and_stop_after_ten() {
        let s = settings(15, None).expect("valid");
        assert_eq!(s.renew_every(), Duration::from_secs(5));
        assert_eq!(s.renew_deadline, Duration::from_secs(10));
        assert_eq!(s.check_every(), Duration::from_secs(3));
    }

    #[test]
    fn timings_that_would_let_two_leaders_act_are_refused() {
        for (duration, deadline) in [(15, Some(15)), (15, Some(20)), (15, Some(5)), (1, None)] {
            let err = settings(duration, deadline).expect_err("invalid");
            assert!(err.to_string().contains("--lease-"), "{err}");
        }
        let fractional = Settings::new(
            "l".into(),
            "n".into(),
            "i".into(),
            Duration::from_millis(2500),
            None,
        );
        assert!(fractional.is_err());
        // The shortest valid duration still yields parameters the lease manager accepts.
        settings(2, None).expect("valid").params();
    }

    fn lease(holder: Option<&str>, renewed: Option<Timestamp>) -> LeaseSpec {
        LeaseSpec {
            holder_identity: holder.map(String::from),
            renew_time: renewed.map(MicroTime),
            ..Default::default()
        }
    }

    #[test]
    fn a_leader_may_act_until_its_last_renewal_plus_the_deadline() {
        let renewed = Timestamp::from_second(1_800_000_000).expect("time");
        let deadline = Duration::from_secs(10);
        assert_eq!(
            verdict(
                Some(&lease(Some("pod-a"), Some(renewed))),
                "pod-a",
                deadline
            ),
            Verdict::HeldUntil(later(renewed, deadline))
        );
    }

    #[test]
    fn a_renewal_time_at_the_end_of_time_does_not_panic() {
        let verdict = verdict(
            Some(&lease(Some("pod-a"), Some(Timestamp::MAX))),
            "pod-a",
            Duration::from_secs(10),
        );
        assert_eq!(verdict, Verdict::HeldUntil(Timestamp::MAX));
    }

    #[test]
    fn another_holder_or_none_ends_the_leadership() {
        let now = Timestamp::now();
        let deadline = Duration::from_secs(10);
        assert_eq!(
            verdict(Some(&lease(Some("pod-b"), Some(now))), "pod-a", deadline),
            Verdict::HeldBy(Some("pod-b".into()))
        );
        assert_eq!(
            verdict(Some(&lease(None, None)), "pod-a", deadline),
            Verdict::HeldBy(None)
        );
        assert_eq!(verdict(None, "pod-a", deadline), Verdict::HeldBy(None));
        assert_eq!(
            verdict(Some(&lease(Some("pod-a"), None)), "pod-a", deadline),
            Verdict::HeldBy(None),
            "held without a renewal time: nothing proves it is current"
        );
    }

    #[test]
    fn the_identity_is_the_pod_name_or_host_and_process() {
        assert_eq!(
            identity(Some("gatehouse-7d9f-abcde".into())),
            "gatehouse-7d9f-abcde"
        );
        let local = identity(Some(" ".into()));
        assert!(
            local.ends_with(&format!("-{}", std::process::id())),
            "{local}"
        );
        assert_eq!(identity(None), local);
    }
}
