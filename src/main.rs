use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand};
use gatehouse::{api, controller, leader, lifecycle, telemetry};

/// Gatehouse: data access and data sharing approval for Kubernetes.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator against the cluster of the current kubeconfig or in-cluster config.
    Run {
        /// Log format.
        #[arg(long, env = "GATEHOUSE_LOG_FORMAT", value_enum, default_value = "json")]
        log_format: telemetry::LogFormat,
        /// Log filter, e.g. `info` or `debug,kube=info`.
        #[arg(long, env = "GATEHOUSE_LOG", default_value = "info")]
        log_level: String,
        /// Where to serve /metrics, /healthz and /readyz.
        #[arg(
            long,
            env = "GATEHOUSE_METRICS_ADDRESS",
            default_value = "0.0.0.0:8080"
        )]
        metrics_address: SocketAddr,
        /// Elect one leader among the replicas with a Lease; only the leader acts.
        /// `--leader-election=false` acts at once: then run exactly one replica.
        #[arg(
            long,
            env = "GATEHOUSE_LEADER_ELECTION",
            default_value_t = true,
            num_args = 0..=1,
            require_equals = true,
            default_missing_value = "true",
            action = ArgAction::Set
        )]
        leader_election: bool,
        /// Name of the leader election Lease.
        #[arg(
            long,
            env = "GATEHOUSE_LEASE_NAME",
            default_value = "gatehouse-operator"
        )]
        lease_name: String,
        /// The operator's own namespace: the leader election Lease, the seal key Secret
        /// (`gatehouse-seal-key`) and the notification HMAC key Secrets live there.
        #[arg(
            long = "namespace",
            alias = "lease-namespace",
            env = "POD_NAMESPACE",
            default_value = "gatehouse-system"
        )]
        lease_namespace: String,
        /// How long the Lease is valid after a renewal: a standby takes over at most this long
        /// after the leader vanished. Whole seconds, at least 2s.
        #[arg(
            long,
            env = "GATEHOUSE_LEASE_DURATION",
            default_value = "15s",
            value_parser = lifecycle::duration::parse
        )]
        lease_duration: Duration,
        /// A leader that could not renew the Lease for this long stops acting and stands by again
        /// (it does not exit).
        /// Shorter than --lease-duration; default two thirds of it.
        #[arg(
            long,
            env = "GATEHOUSE_LEASE_RENEW_DEADLINE",
            value_parser = lifecycle::duration::parse
        )]
        lease_renew_deadline: Option<Duration>,
        /// How often objects the operator created are checked for an owner that no longer exists
        /// (removed when it is gone).
        #[arg(
            long,
            env = "GATEHOUSE_SWEEP_INTERVAL",
            default_value = "10s",
            value_parser = lifecycle::duration::parse
        )]
        sweep_interval: Duration,
        /// The longest a pending or active object goes unchecked (a namespace relabelled out of a
        /// policy's selector triggers nothing by itself).
        #[arg(
            long,
            env = "GATEHOUSE_RESYNC_PERIOD",
            default_value = "5m",
            value_parser = lifecycle::duration::parse
        )]
        resync_period: Duration,
        /// How long an AccessRecord is kept after its request or agreement ended (400 days); a
        /// policy's `recordRetention` may ask for longer, never shorter.
        #[arg(
            long,
            env = "GATEHOUSE_RECORD_RETENTION",
            default_value = "9600h",
            value_parser = lifecycle::duration::parse
        )]
        record_retention: Duration,
        /// How often a notification is tried before its delivery counts as failed; the waits
        /// between attempts double from 1 s, at most 1 minute.
        #[arg(long, env = "GATEHOUSE_NOTIFICATION_ATTEMPTS", default_value_t = 8,
              value_parser = clap::value_parser!(u32).range(1..=20))]
        notification_attempts: u32,
        /// How many objects of each kind are reconciled at once. More overlaps more API round
        /// trips on a large cluster; each reconcile holds its object's observations meanwhile.
        /// 32: a reconcile that provisions mostly waits (for the API server, and for its RBAC
        /// authorizer to see a new binding before the proof), so 1,000 grants took 26.8 s with
        /// 8 and 18.8 s with 32 (benches/scale.rs, 2 cores).
        #[arg(long, env = "GATEHOUSE_CONCURRENCY", default_value_t = 32,
              value_parser = clap::value_parser!(u16).range(1..=256))]
        concurrency: u16,
    },
    /// Print every Gatehouse CustomResourceDefinition as YAML.
    Crd,
    /// Print the API reference (docs/api.md) generated from the CRD schemas, as Markdown.
    ApiReference,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
        Command::ApiReference => {
            print!("{}", api::reference::markdown());
            ExitCode::SUCCESS
        }
        Command::Crd => match api::crds_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(err) => {
                eprintln!("gatehouse: cannot render the CRDs: {err}");
                ExitCode::FAILURE
            }
        },
        Command::Run {
            log_format,
            log_level,
            metrics_address,
            leader_election,
            lease_name,
            lease_namespace,
            lease_duration,
            lease_renew_deadline,
            sweep_interval,
            resync_period,
            record_retention,
            notification_attempts,
            concurrency,
        } => {
            if let Err(err) = telemetry::init(log_format, &log_level) {
                eprintln!("gatehouse: invalid --log-level {log_level:?}: {err}");
                return ExitCode::FAILURE;
            }
            let leader_election = match leader_election
                .then(|| {
                    leader::Settings::new(
                        lease_name,
                        lease_namespace.clone(),
                        leader::identity(std::env::var("POD_NAME").ok()),
                        lease_duration,
                        lease_renew_deadline,
                    )
                })
                .transpose()
            {
                Ok(settings) => settings,
                Err(err) => {
                    eprintln!("gatehouse: {err}");
                    return ExitCode::FAILURE;
                }
            };
            let options = controller::Options {
                leader_election,
                metrics_address,
                namespace: lease_namespace,
                sweep_interval,
                resync_period,
                record_retention,
                notification_attempts,
                concurrency,
            };
            match controller::run(options).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
