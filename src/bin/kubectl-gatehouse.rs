//! `kubectl gatehouse`: the approval protocol for people, as a kubectl plugin.
//!
//! Put this binary on the PATH and kubectl finds it: `kubectl gatehouse approve ar/NAME --role
//! manager -n payments`. Every decision is made in `gatehouse::plugin` (pure, unit-tested); this
//! file only talks to the API server: who am I (SelfSubjectReview), may I (SelfSubjectAccessReview),
//! read, and merge-patch annotations. The API server's admission policies stay the authority; what
//! they refuse is shown verbatim.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use futures::StreamExt;
use gatehouse::api::{AccessRecord, AccessRequest, DataSharingAgreement, GROUP};
use gatehouse::plugin::patch::{self, Change, Narrow};
use gatehouse::plugin::report::{self, RoleFilter, Since};
use gatehouse::plugin::{Kind, PluginError, Summary, Target, Verdict, approvers, audit, pending};
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::Value;

/// Approve, deny and revoke Gatehouse access requests and data sharing agreements, see what
/// waits for you, audit who decided what, and report who had what access when.
#[derive(Debug, Parser)]
#[command(
    name = "kubectl-gatehouse",
    bin_name = "kubectl gatehouse",
    version,
    after_help = "Examples:\n  \
        kubectl gatehouse pending -A\n  \
        kubectl gatehouse approve ar/alice-db-read -n payments --role manager --reason \"PAY-1234 checked\"\n  \
        kubectl gatehouse deny dsa/orders-to-analytics -n orders --role privacy --reason \"no DPA\"\n  \
        kubectl gatehouse audit ar/alice-db-read -n payments\n  \
        kubectl gatehouse revoke ar/alice-db-read -n payments\n  \
        kubectl gatehouse report --since 7d --requester alice -o csv"
)]
struct Cli {
    #[command(flatten)]
    connection: Connection,
    #[command(subcommand)]
    command: Command,
}

/// Where to connect, as kubectl's own flags.
#[derive(Debug, Args)]
struct Connection {
    /// Path to the kubeconfig file [default: $KUBECONFIG or ~/.kube/config]
    #[arg(long, global = true, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use [default: its current context]
    #[arg(long, global = true, value_name = "NAME")]
    context: Option<String>,
    /// The namespace of the object [default: the context's namespace]
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Approve as an approver role: annotates approve.gatehouse.dev/<role>=<your username>,
    /// optionally narrowed to a shorter --duration or fewer --namespaces
    Approve(Approve),
    /// Deny as an approver role: annotates deny.gatehouse.dev/<role>=<your username>; this ends
    /// the request
    Deny(Decide),
    /// Ask for changes as an approver role: annotates changes.gatehouse.dev/<role>=<your
    /// username> with --reason saying what to change; this ends the request or agreement
    /// (phase ChangesRequested) and the requester files a new one
    Changes(Decide),
    /// End an active grant or share early: annotates revoke.gatehouse.dev/by=<your username>
    Revoke {
        /// The object: ar/NAME (AccessRequest) or dsa/NAME (DataSharingAgreement)
        #[arg(value_name = "KIND/NAME")]
        target: Target,
    },
    /// List the requests and agreements waiting for a decision you may make, then what each
    /// request would grant: the role, to whom (subjects) and where (namespaces or cluster-wide)
    Pending {
        /// Look in every namespace (you need list rights cluster-wide)
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// Show who decided what, when and why, then the phase, what is granted to whom and where,
    /// the grant's times and the conditions
    Audit {
        /// The object: ar/NAME (AccessRequest) or dsa/NAME (DataSharingAgreement)
        #[arg(value_name = "KIND/NAME")]
        target: Target,
    },
    /// Who may decide each stage the object waits for: the users, groups and ServiceAccounts
    /// holding the approver right where it counts, or the requester's manager per the org chart,
    /// as the operator lists them (status.approvers); requesters see whom to ask
    Approvers {
        /// The object: ar/NAME (AccessRequest) or dsa/NAME (DataSharingAgreement)
        #[arg(value_name = "KIND/NAME")]
        target: Target,
    },
    /// Who had what access when, approved by whom: one row per AccessRecord, kept by the operator
    /// after the request or agreement is deleted. Every namespace unless -n is given. Needs get
    /// and list on accessrecords (ClusterRole gatehouse-auditor)
    Report(ReportArgs),
}

#[derive(Debug, Args)]
struct ReportArgs {
    /// Only records active at or after this: activated, ended or created then, or still running;
    /// a duration back from now (24h, 90m, 7d, 1d12h) or an RFC 3339 time
    #[arg(long, value_name = "DURATION|TIME", value_parser = Since::parse)]
    since: Option<Since>,
    /// Only records of this requester, exactly as recorded
    #[arg(long, value_name = "USER")]
    requester: Option<String>,
    /// Only records governed by this policy
    #[arg(long, value_name = "NAME")]
    policy: Option<String>,
    /// Only access requests that granted this role: ClusterRole/NAME, Role/NAME, or NAME for
    /// either kind (not an approver role)
    #[arg(long, value_name = "ROLE", value_parser = RoleFilter::parse)]
    role: Option<RoleFilter>,
    /// Only records of this kind: ar (AccessRequest) or dsa (DataSharingAgreement)
    #[arg(long, value_name = "ar|dsa", value_parser = parse_record_kind)]
    kind: Option<Kind>,
    /// How to print the records: a table, CSV (RFC 4180, the table's columns) or JSON (the
    /// record specs)
    #[arg(short = 'o', long, value_enum, default_value_t = Format::Table)]
    output: Format,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Csv,
    Json,
}

fn parse_record_kind(kind: &str) -> Result<Kind, PluginError> {
    Kind::from_alias(kind).ok_or_else(|| PluginError::InvalidRecordKind {
        value: kind.to_string(),
    })
}

#[derive(Debug, Args)]
struct Decide {
    /// The object: ar/NAME (AccessRequest) or dsa/NAME (DataSharingAgreement)
    #[arg(value_name = "KIND/NAME")]
    target: Target,
    /// The approver role you decide for, e.g. manager or data-owner
    #[arg(long, value_parser = parse_role)]
    role: String,
    /// Why; recorded as reason.gatehouse.dev/<role> and in the audit trail
    #[arg(long, value_name = "TEXT")]
    reason: Option<String>,
}

#[derive(Debug, Args)]
struct Approve {
    #[command(flatten)]
    decide: Decide,
    /// Approve a shorter duration (an agreement's retention) than asked, e.g. 2h; recorded as
    /// duration.gatehouse.dev/<role>
    #[arg(long, value_name = "DURATION")]
    duration: Option<String>,
    /// Approve only these of the namespaces asked for, comma-separated (AccessRequests); recorded
    /// as namespaces.gatehouse.dev/<role>
    #[arg(long, value_name = "NS[,NS...]")]
    namespaces: Option<String>,
}

fn parse_role(role: &str) -> Result<String, PluginError> {
    patch::validate_role(role).map(|()| role.to_string())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), PluginError> {
    let session = Session::connect(&cli.connection).await?;
    // The report is cluster-wide: only an explicit -n narrows it, never the context's default.
    let explicit_namespace = cli.connection.namespace;
    match cli.command {
        Command::Approve(approve) => {
            let narrow = Narrow::from_flags(
                &approve.decide.target,
                approve.duration.as_deref(),
                approve.namespaces.as_deref(),
            )?;
            session
                .decide(Verdict::Approve, approve.decide, &narrow)
                .await
        }
        Command::Deny(decide) => {
            session
                .decide(Verdict::Deny, decide, &Narrow::default())
                .await
        }
        Command::Changes(decide) => {
            session
                .decide(Verdict::RequestChanges, decide, &Narrow::default())
                .await
        }
        Command::Revoke { target } => session.revoke(&target).await,
        Command::Pending { all_namespaces } => session.pending(all_namespaces).await,
        Command::Audit { target } => session.audit(&target).await,
        Command::Approvers { target } => session.approvers(&target).await,
        Command::Report(args) => {
            let filter = report::Filter {
                since: args.since,
                requester: args.requester,
                policy: args.policy,
                role: args.role,
                kind: args.kind,
                namespace: explicit_namespace,
            };
            session.report(&filter, args.output).await
        }
    }
}

/// A client and the namespace to act in.
struct Session {
    client: Client,
    namespace: String,
}

impl Session {
    async fn connect(connection: &Connection) -> Result<Self, PluginError> {
        let options = KubeConfigOptions {
            context: connection.context.clone(),
            ..Default::default()
        };
        let invalid = |err: &dyn std::fmt::Display| PluginError::Kubeconfig(err.to_string());
        let config = match &connection.kubeconfig {
            Some(path) => {
                let kubeconfig = Kubeconfig::read_from(path)
                    .map_err(|err| PluginError::Kubeconfig(format!("{}: {err}", path.display())))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|err| invalid(&err))?
            }
            None => match Config::from_kubeconfig(&options).await {
                Ok(config) => config,
                // Without a kubeconfig, inside a Pod: its ServiceAccount, as kubectl does.
                Err(err) if connection.context.is_none() => {
                    Config::incluster().map_err(|_| invalid(&err))?
                }
                Err(err) => return Err(invalid(&err)),
            },
        };
        let namespace = connection
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|err| invalid(&err))?;
        Ok(Session { client, namespace })
    }

    /// The user's name as the API server authenticates them.
    async fn whoami(&self) -> Result<String, PluginError> {
        let review = Api::<SelfSubjectReview>::all(self.client.clone())
            .create(&PostParams::default(), &SelfSubjectReview::default())
            .await
            .map_err(|err| PluginError::WhoAmI(message(&err)))?;
        review
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| PluginError::WhoAmI("the API server returned no username".into()))
    }

    /// Whether the user holds `verb` on `approvals.gatehouse.dev` (with resourceName `role`, when
    /// given) in `namespace`; a cluster-wide grant answers yes too.
    async fn can_i(
        &self,
        verb: &str,
        namespace: &str,
        role: Option<&str>,
    ) -> Result<bool, kube::Error> {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    group: Some(GROUP.to_string()),
                    resource: Some("approvals".to_string()),
                    verb: Some(verb.to_string()),
                    namespace: Some(namespace.to_string()),
                    name: role.map(str::to_string),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = Api::<SelfSubjectAccessReview>::all(self.client.clone())
            .create(&PostParams::default(), &review)
            .await?;
        Ok(answer.status.is_some_and(|s| s.allowed))
    }

    /// The object, or `None` when it does not exist.
    async fn get(&self, target: &Target) -> Result<Option<Summary>, kube::Error> {
        Ok(match target.kind {
            Kind::AccessRequest => {
                Api::<AccessRequest>::namespaced(self.client.clone(), &self.namespace)
                    .get_opt(&target.name)
                    .await?
                    .as_ref()
                    .map(Summary::from)
            }
            Kind::DataSharingAgreement => {
                Api::<DataSharingAgreement>::namespaced(self.client.clone(), &self.namespace)
                    .get_opt(&target.name)
                    .await?
                    .as_ref()
                    .map(Summary::from)
            }
        })
    }

    /// The object, or an error saying it does not exist or why it cannot be read.
    async fn require(&self, target: &Target) -> Result<Summary, PluginError> {
        match self.get(target).await {
            Ok(Some(item)) => Ok(item),
            Ok(None) => Err(self.not_found(target)),
            Err(err) => Err(PluginError::from_kube(format!("read {target}"), &err)),
        }
    }

    /// The object for the checks before a patch: `None` when the user may not read it (the
    /// patch is still sent: the API server decides).
    async fn get_for_checks(&self, target: &Target) -> Result<Option<Summary>, PluginError> {
        match self.get(target).await {
            Ok(Some(item)) => Ok(Some(item)),
            Ok(None) => Err(self.not_found(target)),
            Err(kube::Error::Api(status)) if status.code == 403 => Ok(None),
            Err(err) => Err(PluginError::from_kube(format!("read {target}"), &err)),
        }
    }

    fn not_found(&self, target: &Target) -> PluginError {
        PluginError::NotFound {
            target: target.to_string(),
            resource: target.kind.resource(),
            namespace: self.namespace.clone(),
        }
    }

    /// Merge-patches the object's annotations, keeping the API server's refusal verbatim.
    async fn annotate(&self, target: &Target, body: &Value) -> Result<(), PluginError> {
        let resource = match target.kind {
            Kind::AccessRequest => ApiResource::erase::<AccessRequest>(&()),
            Kind::DataSharingAgreement => ApiResource::erase::<DataSharingAgreement>(&()),
        };
        let params = PatchParams {
            field_manager: Some("kubectl-gatehouse".to_string()),
            ..Default::default()
        };
        match Api::<DynamicObject>::namespaced_with(self.client.clone(), &self.namespace, &resource)
            .patch(&target.name, &params, &Patch::Merge(body))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(self.not_found(target)),
            Err(err) => Err(PluginError::from_kube(format!("annotate {target}"), &err)),
        }
    }

    async fn decide(
        &self,
        verdict: Verdict,
        decide: Decide,
        narrow: &Narrow,
    ) -> Result<(), PluginError> {
        let Decide {
            target,
            role,
            reason,
        } = decide;
        let reason = patch::normalize_reason(reason.as_deref())?;
        if verdict == Verdict::RequestChanges && reason.is_none() {
            return Err(PluginError::ChangesWithoutReason {
                target: target.to_string(),
            });
        }
        let user = self.whoami().await?;
        let item = self.get_for_checks(&target).await?;
        // A stage the requester's manager decides needs no RBAC right: the org chart says who may,
        // and the API server checks it.
        let manager_stage = item
            .as_ref()
            .is_some_and(|i| i.manager_approvals.contains(&role));
        if !manager_stage {
            match self.can_i("approve", &self.namespace, Some(&role)).await {
                Ok(true) => {}
                Ok(false) => {
                    return Err(PluginError::MayNotDecide {
                        user,
                        verb: verdict.verb(),
                        role,
                        namespace: self.namespace.clone(),
                    });
                }
                Err(err) => eprintln!(
                    "warning: cannot check your right to {} as {role} ({}); the API server decides",
                    verdict.verb(),
                    message(&err)
                ),
            }
        }
        if let Some(item) = item {
            let change = patch::check_decision(
                &target,
                &item.annotations,
                verdict,
                &role,
                &user,
                reason.as_deref(),
                narrow,
            )?;
            if change == Change::AlreadyDone {
                println!(
                    "{target} was already {} as {role} by {user}; nothing changed",
                    verdict.past()
                );
                return Ok(());
            }
            patch::check_open(&target, item.phase.as_deref())?;
        }
        let body = patch::decision_patch(verdict, &role, &user, reason.as_deref(), narrow);
        self.annotate(&target, &body).await?;
        let mut notes = Vec::new();
        if let Some(duration) = &narrow.duration {
            notes.push(format!("for at most {duration}"));
        }
        if !narrow.namespaces.is_empty() {
            notes.push(format!("in {} only", narrow.namespaces.join(", ")));
        }
        if let Some(reason) = reason {
            notes.push(format!("reason: {reason}"));
        }
        match notes.is_empty() {
            true => println!("{target} {} as {role} by {user}", verdict.past()),
            false => println!(
                "{target} {} as {role} by {user} ({})",
                verdict.past(),
                notes.join("; ")
            ),
        }
        Ok(())
    }

    async fn revoke(&self, target: &Target) -> Result<(), PluginError> {
        let user = self.whoami().await?;
        if let Some(item) = self.get_for_checks(target).await? {
            if patch::check_revocation(target, &item.annotations, &user)? == Change::AlreadyDone {
                println!("{target} was already revoked by {user}; nothing changed");
                return Ok(());
            }
            if item.requester != user {
                match self.can_i("revoke", &self.namespace, None).await {
                    Ok(true) => {}
                    Ok(false) => {
                        return Err(PluginError::MayNotRevoke {
                            user,
                            target: target.to_string(),
                            namespace: self.namespace.clone(),
                            requester: item.requester,
                        });
                    }
                    Err(err) => eprintln!(
                        "warning: cannot check your right to revoke ({}); the API server decides",
                        message(&err)
                    ),
                }
            }
        }
        self.annotate(target, &patch::revoke_patch(&user)).await?;
        println!("{target} revoked by {user}");
        Ok(())
    }

    async fn pending(&self, all_namespaces: bool) -> Result<(), PluginError> {
        let user = self.whoami().await?;
        let (request_api, agreement_api) = if all_namespaces {
            (
                Api::<AccessRequest>::all(self.client.clone()),
                Api::<DataSharingAgreement>::all(self.client.clone()),
            )
        } else {
            (
                Api::namespaced(self.client.clone(), &self.namespace),
                Api::namespaced(self.client.clone(), &self.namespace),
            )
        };
        let params = ListParams::default();
        let (requests, agreements) =
            tokio::join!(request_api.list(&params), agreement_api.list(&params));
        let scope = if all_namespaces {
            "in any namespace".to_string()
        } else {
            format!("in namespace {:?}", self.namespace)
        };
        let mut items: Vec<Summary> = Vec::new();
        let mut failures = Vec::new();
        match requests {
            Ok(list) => items.extend(list.items.iter().map(Summary::from)),
            Err(err) => failures.push((Kind::AccessRequest, err)),
        }
        match agreements {
            Ok(list) => items.extend(list.items.iter().map(Summary::from)),
            Err(err) => failures.push((Kind::DataSharingAgreement, err)),
        }
        if failures.len() == 2 {
            let (kind, err) = failures.remove(0);
            return Err(PluginError::from_kube(
                format!("list {} {scope}", kind.resource()),
                &err,
            ));
        }
        for (kind, err) in &failures {
            eprintln!(
                "warning: cannot list {} {scope}, showing the others: {}",
                kind.resource(),
                message(err)
            );
        }

        let checks = pending::checks_needed(&items, &user);
        let answers: Vec<_> = futures::stream::iter(checks.into_iter().map(|(ns, role)| async {
            let answer = self.can_i("approve", &ns, Some(&role)).await;
            (ns, role, answer)
        }))
        .buffered(8)
        .collect()
        .await;
        let mut allowed = BTreeSet::new();
        for (ns, role, answer) in answers {
            match answer {
                Ok(true) => {
                    allowed.insert((ns, role));
                }
                Ok(false) => {}
                Err(err) => eprintln!(
                    "warning: cannot check your right to approve as {role} in namespace {ns:?}: {}",
                    message(&err)
                ),
            }
        }

        let rows = pending::pending_rows(&items, &user, &allowed);
        if rows.is_empty() {
            eprintln!("Nothing waits for a decision by {user} {scope}.");
        } else {
            print!("{}", pending::render(&rows, Timestamp::now()));
        }
        Ok(())
    }

    async fn audit(&self, target: &Target) -> Result<(), PluginError> {
        let item = self.require(target).await?;
        print!("{}", audit::render(&item, Timestamp::now()));
        Ok(())
    }

    async fn approvers(&self, target: &Target) -> Result<(), PluginError> {
        let item = self.require(target).await?;
        print!("{}", approvers::render(&item));
        Ok(())
    }

    async fn report(&self, filter: &report::Filter, format: Format) -> Result<(), PluginError> {
        let records = self.records(filter.label_selector().as_deref()).await?;
        let now = Timestamp::now();
        let rows = report::rows(&records, filter, now);
        if rows.is_empty() {
            eprintln!("{}", report::no_match(filter, now));
        }
        match format {
            // An empty table would be headers alone; the message says it all.
            Format::Table if rows.is_empty() => {}
            Format::Table => print!("{}", report::table(&rows)),
            // Scripts get a well-formed document even when it is empty.
            Format::Csv => print!("{}", report::csv(&rows)),
            Format::Json => print!("{}", report::json(&rows)),
        }
        Ok(())
    }

    /// Every AccessRecord the selector matches, in pages: a retention of 400 days keeps many.
    async fn records(&self, selector: Option<&str>) -> Result<Vec<AccessRecord>, PluginError> {
        let api = Api::<AccessRecord>::all(self.client.clone());
        let mut params = ListParams::default().limit(500);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        let mut records = Vec::new();
        loop {
            let page = match api.list(&params).await {
                Ok(page) => page,
                Err(kube::Error::Api(status)) if status.code == 403 => {
                    return Err(PluginError::MayNotReadRecords {
                        message: status.message.clone(),
                    });
                }
                Err(err) => {
                    return Err(PluginError::from_kube(
                        "list accessrecords.gatehouse.dev",
                        &err,
                    ));
                }
            };
            records.extend(page.items);
            match page.metadata.continue_.filter(|token| !token.is_empty()) {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(records),
            }
        }
    }
}

/// The API server's message, or the client error.
fn message(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn kubectl_flags_go_anywhere_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "kubectl-gatehouse",
            "approve",
            "ar/alice-read",
            "--role",
            "manager",
            "-n",
            "payments",
            "--context",
            "bob",
            "--reason",
            "ok",
        ])
        .expect("parses");
        assert_eq!(cli.connection.namespace.as_deref(), Some("payments"));
        assert_eq!(cli.connection.context.as_deref(), Some("bob"));
        let Command::Approve(Approve { decide, .. }) = cli.command else {
            panic!("approve expected")
        };
        assert_eq!(decide.target.kind, Kind::AccessRequest);
        assert_eq!(decide.role, "manager");
        assert_eq!(decide.reason.as_deref(), Some("ok"));

        let cli = Cli::try_parse_from(["kubectl-gatehouse", "pending", "-A"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Pending {
                all_namespaces: true
            }
        ));
    }

    #[test]
    fn report_flags_parse_into_filters() {
        let cli = Cli::try_parse_from([
            "kubectl-gatehouse",
            "report",
            "--since",
            "7d",
            "--requester",
            "alice",
            "--role",
            "ClusterRole/db-reader",
            "--kind",
            "ar",
            "-o",
            "csv",
        ])
        .expect("parses");
        let Command::Report(args) = cli.command else {
            panic!("report expected")
        };
        assert_eq!(
            args.since,
            Some(Since::Ago(std::time::Duration::from_secs(7 * 86_400)))
        );
        assert_eq!(args.requester.as_deref(), Some("alice"));
        assert_eq!(
            args.role.map(|r| r.to_string()).as_deref(),
            Some("ClusterRole/db-reader")
        );
        assert_eq!(args.kind, Some(Kind::AccessRequest));
        assert_eq!(args.output, Format::Csv);
        assert_eq!(cli.connection.namespace, None, "no -n: every namespace");

        let cli = Cli::try_parse_from(["kubectl-gatehouse", "report"]).expect("parses");
        let Command::Report(args) = cli.command else {
            panic!("report expected")
        };
        assert_eq!(args.output, Format::Table);
    }

    #[test]
    fn bad_report_flags_say_what_to_write() {
        for (flag, value, hint) in [
            ("--since", "yesterday", "write e.g. 24h, 7d"),
            ("--role", "Secret/x", "ClusterRole/NAME"),
            ("--kind", "pod", "use ar (AccessRequest) or dsa"),
            ("-o", "yaml", "table"),
        ] {
            let err = Cli::try_parse_from(["kubectl-gatehouse", "report", flag, value])
                .expect_err(value)
                .to_string();
            assert!(err.contains(hint), "{flag} {value}: {err}");
        }
    }

    #[test]
    fn bad_targets_and_roles_are_usage_errors_that_say_the_fix() {
        let err =
            Cli::try_parse_from(["kubectl-gatehouse", "audit", "alice-read"]).expect_err("no kind");
        assert!(err.to_string().contains("ar/NAME"), "{err}");
        let err = Cli::try_parse_from([
            "kubectl-gatehouse",
            "approve",
            "ar/x",
            "--role",
            "Data_Owner",
        ])
        .expect_err("bad role");
        assert!(err.to_string().contains("lower-case"), "{err}");
        assert!(
            Cli::try_parse_from(["kubectl-gatehouse", "deny", "ar/x"]).is_err(),
            "--role is required"
        );
    }
}
