use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gatehouse::{api, controller, telemetry};

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
    },
    /// Print every Gatehouse CustomResourceDefinition as YAML.
    Crd,
}

#[tokio::main]
async fn main() -> ExitCode {
    match Cli::parse().command {
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
        } => {
            if let Err(err) = telemetry::init(log_format, &log_level) {
                eprintln!("gatehouse: invalid --log-level {log_level:?}: {err}");
                return ExitCode::FAILURE;
            }
            match controller::run().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => {
                    tracing::error!(error = %err, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
