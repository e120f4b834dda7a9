//! The command line. `main.rs` parses nothing itself; everything a user
//! can type is declared here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::cloud::aws::{AwsCloud, AwsOptions};
use crate::cloud::sim::{SimCloud, SimConfig};
use crate::cloud::{Clock, Cloud, Scope, TokioClock};
use crate::controller::Options;
use crate::controller::leader::{LeaseOptions, holder_identity};
use crate::daemon::Daemon;
use crate::desired::DesiredState;
use crate::metrics::Metrics;
use crate::plan::{Change, Memory, Plan, ResourceReport};
use crate::simulate::{RunOptions, TargetManager};

/// ballast keeps ECS services, their NLB target registrations, their CPU
/// alarms and the Auto Scaling group they run on as declared in YAML.
///
/// Every command that reads desired state takes the directory as an
/// optional argument (default ./desired-state). Durations are written like
/// 500ms, 15s, 2m.
#[derive(Debug, Parser)]
#[command(name = "ballast", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Log format: human-readable text or one JSON object per line. The
    /// level comes from RUST_LOG (default info; error for `simulate` and `replay`, whose report is the output).
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a desired-state directory; report every problem with its
    /// file, line and column. Exit 0 when valid, 1 when not.
    Validate {
        /// Directory of desired-state YAML files (read recursively).
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[command(flatten)]
        region: RegionArg,
    },
    /// Show the changes one pass would make, desired vs observed.
    /// Exit 0 when converged, 2 when changes are pending, 3 when some
    /// input could not be read (the plan is partial), 1 on error.
    Plan {
        /// Directory of desired-state YAML files (read recursively).
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[command(flatten)]
        cloud: CloudArgs,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Plan and apply one pass, then exit. Exit 0 when every change was
    /// applied (or none was needed), 1 when a change failed, 3 when some
    /// input could not be read (what depends on it was not decided).
    Apply {
        /// Apply one pass and exit (the daemon is `ballast run`).
        #[arg(long, required = true)]
        once: bool,
        /// Directory of desired-state YAML files (read recursively).
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[command(flatten)]
        cloud: CloudArgs,
        /// Plan and print, but change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Run the controller: reconcile every interval and whenever the
    /// desired state changes; serve the status page at /,
    /// /livez, /healthz, /readyz, /metrics and /status.
    Run {
        /// Directory of desired-state YAML files (read recursively).
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[command(flatten)]
        cloud: CloudArgs,
        /// Time between passes.
        #[arg(long, default_value = "15s", value_parser = parse_duration)]
        interval: Duration,
        /// Address of the HTTP server. Listening on all interfaces must be
        /// asked for explicitly (e.g. 0.0.0.0:9090).
        #[arg(long, default_value = "127.0.0.1:9090")]
        listen: SocketAddr,
        /// Plan and report every pass, but change nothing.
        #[arg(long)]
        dry_run: bool,
        /// How long a SIGTERM or Ctrl-C waits for the change in flight.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        shutdown_timeout: Duration,
        /// Quiet time that ends a burst of file events before reloading.
        #[arg(long, default_value = "100ms", value_parser = parse_duration)]
        debounce: Duration,
        #[command(flatten)]
        lease: LeaseArgs,
    },
    /// Play a scenario in virtual time: the real controller against the
    /// simulated cloud, starting from the desired state in DIR, with the
    /// load and events the scenario scripts (docs/simulation.md,
    /// "Scenarios"). Reports requests served and failed, task and instance
    /// minutes, the changes made, and how long the plan took to converge
    /// after each event. Exit 0 when the run completed, 1 when the
    /// scenario or a desired state it uses is invalid (every problem is
    /// printed with its file, line and column).
    Simulate {
        /// The scenario file (`kind: Scenario`).
        scenario: PathBuf,
        /// Directory of desired-state YAML files the run starts from.
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        #[command(flatten)]
        region: RegionArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Who registers the tasks in their target groups: ballast, or
        /// ECS's own load-balancer integration (each service lists its
        /// target groups, and ballast leaves the bindings alone).
        #[arg(long, value_enum, default_value_t = Targets::Ballast)]
        targets: Targets,
    },
    /// Replay a service's recorded history through the policy declared in
    /// DIR on the simulated cloud, and compare it with what happened, with
    /// ECS target tracking and the Kubernetes HPA (emulated) and,
    /// optionally, another desired state (docs/simulation.md, "Replay").
    /// The history comes from a CSV file (--csv) or CloudWatch (--cloud
    /// aws --service CLUSTER/SERVICE --since 7d). Exit 0 when the replay
    /// ran, 1 when the history or a desired state is invalid (every
    /// problem located) or cannot be read.
    Replay {
        /// Directory of desired-state YAML files whose policy is replayed.
        #[arg(default_value = "desired-state")]
        dir: PathBuf,
        /// The history as CSV: the header time,cpu_percent,running_tasks,
        /// then one row per datapoint (time in RFC 3339 or seconds).
        #[arg(long, value_name = "FILE", required_unless_present = "cloud", conflicts_with = "cloud")]
        csv: Option<PathBuf>,
        /// Read the history from CloudWatch instead (`aws`, through the
        /// standard credential chain): the service's CPUUtilization average
        /// and its ECS/ContainerInsights RunningTaskCount.
        #[arg(long, value_enum, requires = "service")]
        cloud: Option<HistoryCloud>,
        /// The replayed service, CLUSTER/SERVICE (needed with --cloud aws,
        /// and with --csv when DIR scales more than one service).
        #[arg(long, value_name = "CLUSTER/SERVICE")]
        service: Option<String>,
        /// How far back CloudWatch is read (like 7d, 36h).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        since: Duration,
        /// Also replay the policy of this desired-state directory (a
        /// proposed edit), for the same service.
        #[arg(long, value_name = "OTHER_DIR")]
        compare: Vec<PathBuf>,
        /// Write an SVG chart of the load and of the tasks of each policy.
        #[arg(long, value_name = "FILE.svg")]
        chart: Option<PathBuf>,
        #[command(flatten)]
        region: RegionArg,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Print the JSON Schema of the desired-state format (for editors).
    Schema,
}

/// Where `ballast replay` reads a history from, besides a CSV file.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum HistoryCloud {
    Aws,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Targets {
    Ballast,
    Ecs,
}

#[derive(Debug, Clone, Args)]
pub struct RegionArg {
    /// Region for documents that name none.
    #[arg(long, env = "AWS_REGION", default_value = "us-east-2")]
    pub region: String,
}

#[derive(Debug, Clone, Args)]
pub struct CloudArgs {
    /// Which cloud: `sim`, the built-in simulated cloud (starts from the
    /// desired state with some drift), or `aws`, real AWS through the
    /// standard credential chain (AWS_PROFILE, AWS_REGION,
    /// AWS_ENDPOINT_URL …).
    #[arg(long, value_enum, default_value_t = CloudKind::Sim)]
    pub cloud: CloudKind,
    #[command(flatten)]
    pub region: RegionArg,
    /// Seed of the simulated cloud (same seed, same run).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Requests per second of simulated load on every service, so that the
    /// simulated CPU alarms have something to react to.
    #[arg(long, default_value_t = 0.0)]
    pub sim_load: f64,
}

/// Leader election, for running two or more daemons on one desired state.
#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    /// DynamoDB table of the leadership lease (partition key `name`, a
    /// string). Daemons given the same table and lease name elect one
    /// leader; the others stand by, observing and writing nothing, until
    /// its lease expires or is released. Needs `--cloud aws`. Without it
    /// the daemon leads alone.
    #[arg(long, env = "BALLAST_LEASE_TABLE")]
    pub lease_table: Option<String>,
    /// Name of the lease item in the table.
    #[arg(long, env = "BALLAST_LEASE_NAME", default_value = "ballast")]
    pub lease_name: String,
    /// How long a lease stays valid after it is taken or renewed (at least
    /// 1s). The leader renews every third of it; a standby takes over at
    /// most this long, plus a second, after the leader stops renewing.
    #[arg(long, default_value = "15s", value_parser = parse_lease_duration)]
    pub lease_duration: Duration,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum CloudKind {
    Sim,
    Aws,
}

#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e}: write a number with a unit, like 500ms, 15s or 2m"))
}

fn parse_lease_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s} is too short for a lease: give at least 1s (the default is 15s)"));
    }
    Ok(d)
}

/// Parse the command line and run it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation's controller logs every change of a long run, with
    // wall-clock times that mean nothing there: only errors unless asked.
    let default_level =
        if matches!(cli.command, Command::Simulate { .. } | Command::Replay { .. }) { "error" } else { "info" };
    init_logging(cli.log_format, default_level);
    // One thread is plenty for a controller (its work is I/O and short plans),
    // and it keeps the allocator to one arena: about 15 MiB less resident.
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, default_level: &str) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

async fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Validate { dir, region } => Ok(match load(&dir, &region.region) {
            Some(d) => {
                println!(
                    "{}: valid ({} service(s), {} capacity document(s))",
                    dir.display(),
                    d.services.len(),
                    d.capacities.len()
                );
                ExitCode::SUCCESS
            }
            None => ExitCode::FAILURE,
        }),
        Command::Schema => {
            println!("{}", serde_json::to_string_pretty(&crate::desired::schema::json_schema())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { dir, cloud, output } => {
            let Some(desired) = load(&dir, &cloud.region.region) else {
                return Ok(ExitCode::FAILURE);
            };
            with_cloud(&cloud, &desired, async |c, clock| {
                let (plan, reports) = observe_and_plan(&c, &clock, &desired).await?;
                plan_once(&plan, &reports, output)
            })
            .await
        }
        Command::Apply { dir, cloud, dry_run, .. } => {
            let Some(desired) = load(&dir, &cloud.region.region) else {
                return Ok(ExitCode::FAILURE);
            };
            with_cloud(&cloud, &desired, async |c, clock| {
                let (plan, reports) = observe_and_plan(&c, &clock, &desired).await?;
                apply_once(&c, &plan, &reports, dry_run).await
            })
            .await
        }
        Command::Simulate { scenario, dir, region, output, targets } => {
            let scenario = match crate::simulate::load_scenario(&scenario, &dir, &region.region) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("{e}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let targets = match targets {
                Targets::Ballast => TargetManager::Ballast,
                Targets::Ecs => TargetManager::Ecs,
            };
            let report = crate::simulate::run(&scenario, &RunOptions { targets }).await;
            match output {
                Output::Text => print!("{}", report.render()),
                Output::Json => println!("{}", serde_json::to_string_pretty(&report)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay { dir, csv, cloud, service, since, compare, chart, region, output } => {
            let request = ReplayRequest { dir, csv, aws: cloud.is_some(), service, since, compare, chart, output };
            replay(request, &region.region).await
        }
        Command::Run { dir, cloud, interval, listen, dry_run, shutdown_timeout, debounce, lease } => {
            if lease.lease_table.is_some() && cloud.cloud != CloudKind::Aws {
                anyhow::bail!(
                    "--lease-table elects a leader among daemons on AWS: add --cloud aws (the simulated cloud has one daemon, which leads alone)"
                );
            }
            let Some(desired) = load(&dir, &cloud.region.region) else {
                return Ok(ExitCode::FAILURE);
            };
            let options = Options { dir: dir.clone(), default_region: cloud.region.region.clone(), interval, dry_run };
            let daemon = Daemon { options, shutdown_timeout, debounce };
            let listener =
                tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
            let region = cloud.region.region.clone();
            with_cloud(&cloud, &desired, async |c, clock| {
                let store = match (&lease.lease_table, &c.cloud) {
                    (Some(table), AnyCloud::Aws(aws)) => {
                        let options = LeaseOptions {
                            name: format!("{table}/{}", lease.lease_name),
                            holder: holder_identity().await,
                            duration: lease.lease_duration,
                        };
                        let store = aws.lease(&region, table, &lease.lease_name, options.write_budget());
                        Some((options, store))
                    }
                    _ => None,
                };
                daemon.run(listener, c.cloud, c.metrics, clock, desired.clone(), store, shutdown_signal()).await?;
                Ok(ExitCode::SUCCESS)
            })
            .await
        }
    }
}

/// What `ballast replay` was asked.
struct ReplayRequest {
    dir: PathBuf,
    csv: Option<PathBuf>,
    aws: bool,
    service: Option<String>,
    since: Duration,
    compare: Vec<PathBuf>,
    chart: Option<PathBuf>,
    output: Output,
}

async fn replay(request: ReplayRequest, region: &str) -> anyhow::Result<ExitCode> {
    use crate::simulate::history::History;
    use crate::simulate::replay::{self, Comparison, Policy, Setup};
    let Some(desired) = load(&request.dir, region) else {
        return Ok(ExitCode::FAILURE);
    };
    let service = match replay::replayed_service(&desired, &request.dir, request.service.as_deref()) {
        Ok(id) => id,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let history = if let Some(path) = &request.csv {
        match History::read_csv(path) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        debug_assert!(request.aws);
        let aws = AwsCloud::from_env(Arc::new(Metrics::new()), AwsOptions::default()).await;
        let now = std::time::SystemTime::now();
        match aws.history(&service, now - request.since, now).await {
            Ok(Some(h)) => h,
            Ok(None) => {
                eprintln!(
                    "error: CloudWatch has no CPUUtilization and RunningTaskCount datapoints for {}/{} in {} \
                     over the last {}\n  help: check the service's name and region, and that Container Insights \
                     is on for the cluster (RunningTaskCount comes from it)",
                    service.cluster,
                    service.service,
                    service.region,
                    humantime::format_duration(request.since)
                );
                return Ok(ExitCode::FAILURE);
            }
            Err(e) => {
                eprintln!("error: cannot read the history from CloudWatch: {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    };
    let mut policies = vec![Policy::Ballast {
        name: format!("ballast ({})", request.dir.display()),
        desired: Box::new(desired.clone()),
    }];
    for other in &request.compare {
        let Some(d) = load(other, region) else {
            return Ok(ExitCode::FAILURE);
        };
        if !d.services.iter().any(|s| s.id == service) {
            eprintln!(
                "error: {} declares no Service for {}/{} in {}, the replayed service",
                other.display(),
                service.cluster,
                service.service,
                service.region
            );
            return Ok(ExitCode::FAILURE);
        }
        policies.push(Policy::Ballast { name: format!("ballast ({})", other.display()), desired: Box::new(d) });
    }
    policies.extend(Policy::peers(&desired, &service));
    let setup = Setup::for_history(&history, service.clone(), replay::target_cpu(&desired, &service));
    let (comparison, runs) = Comparison::of(&history, &setup, &policies).await;
    if let Some(path) = &request.chart {
        std::fs::write(path, replay::chart(&history, &setup, &runs))
            .with_context(|| format!("cannot write the chart to {}", path.display()))?;
    }
    match request.output {
        Output::Text => print!("{}", comparison.render()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&comparison)?),
    }
    Ok(ExitCode::SUCCESS)
}

/// Load and validate, printing every problem. `None` when invalid.
fn load(dir: &Path, region: &str) -> Option<DesiredState> {
    match crate::desired::load_dir(dir, region) {
        Ok(d) => Some(d),
        Err(e) => {
            // Every located problem, then how many.
            eprintln!("{e}");
            None
        }
    }
}

/// Build the chosen cloud and hand it to `f`.
async fn with_cloud<F>(args: &CloudArgs, desired: &DesiredState, f: F) -> anyhow::Result<ExitCode>
where
    F: AsyncFnOnce(CloudHandle, Arc<dyn Clock>) -> anyhow::Result<ExitCode>,
{
    let metrics = Arc::new(Metrics::new());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    match args.cloud {
        CloudKind::Sim => {
            let sim =
                SimCloud::from_desired(desired, true, clock.clone(), args.seed, metrics.clone(), SimConfig::default());
            if args.sim_load > 0.0 {
                for s in &desired.services {
                    sim.set_load(&s.id, args.sim_load).context("cannot set the simulated load")?;
                }
            }
            f(CloudHandle { cloud: AnyCloud::Sim(sim), metrics }, clock).await
        }
        CloudKind::Aws => {
            let aws = AwsCloud::from_env(metrics.clone(), AwsOptions::default()).await;
            f(CloudHandle { cloud: AnyCloud::Aws(aws), metrics }, clock).await
        }
    }
}

/// One of the two clouds, chosen at run time.
pub enum AnyCloud {
    Sim(SimCloud),
    Aws(AwsCloud),
}

/// `$body` with `$c` bound to whichever cloud `$cloud` holds.
macro_rules! with_either {
    ($cloud:expr, $c:ident => $body:expr) => {
        match $cloud {
            AnyCloud::Sim($c) => $body,
            AnyCloud::Aws($c) => $body,
        }
    };
}

impl Cloud for AnyCloud {
    async fn observe(&self, scope: &Scope) -> Result<crate::observed::Observed, crate::cloud::CloudError> {
        with_either!(self, c => c.observe(scope).await)
    }

    async fn apply(&self, change: &Change) -> Result<(), crate::cloud::CloudError> {
        with_either!(self, c => c.apply(change).await)
    }
}

/// The chosen cloud and the metrics it counts its calls in.
pub struct CloudHandle {
    pub cloud: AnyCloud,
    pub metrics: Arc<Metrics>,
}

async fn observe_and_plan(
    cloud: &CloudHandle,
    clock: &Arc<dyn Clock>,
    desired: &DesiredState,
) -> anyhow::Result<(Plan, Vec<ResourceReport>)> {
    let observed = cloud.cloud.observe(&Scope::of(desired)).await.context("cannot observe the cloud")?;
    let plan = crate::plan::plan(desired, &observed, Memory::default(), clock.now());
    let reports = crate::plan::reports(desired, &observed, &plan, &plan.memory);
    Ok((plan, reports))
}

/// Print the plan; the exit code says whether it is complete and converged.
fn plan_once(plan: &Plan, reports: &[ResourceReport], output: Output) -> anyhow::Result<ExitCode> {
    match output {
        Output::Text => print!("{}", render_plan(plan, reports)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&plan_json(plan, reports))?),
    }
    Ok(if !plan.is_complete() {
        ExitCode::from(PARTIAL)
    } else if plan.is_converged() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    })
}

/// Print the plan and apply its changes in order.
async fn apply_once(
    cloud: &CloudHandle,
    plan: &Plan,
    reports: &[ResourceReport],
    dry_run: bool,
) -> anyhow::Result<ExitCode> {
    print!("{}", render_plan(plan, reports));
    let done = if plan.is_complete() { ExitCode::SUCCESS } else { ExitCode::from(PARTIAL) };
    if dry_run || plan.is_converged() {
        return Ok(done);
    }
    println!();
    let mut failed = 0;
    for pc in &plan.changes {
        match cloud.cloud.apply(&pc.change).await {
            Ok(()) => println!("applied: {}", pc.change),
            Err(e) => {
                failed += 1;
                println!("FAILED:  {}: {e}", pc.change);
            }
        }
    }
    println!("\n{} applied, {failed} failed", plan.changes.len() - failed);
    Ok(if failed == 0 { done } else { ExitCode::FAILURE })
}

/// The exit code of `plan` and `apply --once` when some input could not
/// be read: never 0, since what depends on it was not decided.
pub const PARTIAL: u8 = 3;

/// The plan as a person reads it: resources with their changes and why,
/// then what was held back.
pub fn render_plan(plan: &Plan, reports: &[ResourceReport]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let unread = plan.unread().count();
    if unread > 0 {
        let _ = writeln!(
            out,
            "Partial plan: {unread} input(s) could not be read; nothing that depends on them is planned (see below).\n"
        );
    }
    if plan.changes.is_empty() && plan.holds.is_empty() {
        let _ =
            writeln!(out, "No changes: the observed state matches the desired state ({} resources).", reports.len());
    } else if plan.changes.is_empty() {
        let n = plan.holds.len();
        let _ = writeln!(out, "No changes to make now ({} resources); {n} held back, see below.", reports.len());
    } else {
        let _ = writeln!(out, "{} change(s) over {} resource(s):", plan.changes.len(), reports.len());
        let mut last = None;
        for pc in &plan.changes {
            if last != Some(&pc.resource) {
                let doc =
                    reports.iter().find(|r| r.resource == pc.resource).map(|r| r.document.as_str()).unwrap_or("?");
                let _ = writeln!(out, "\n{} (document {doc})", pc.resource);
                last = Some(&pc.resource);
            }
            let sign = match &pc.change {
                Change::RegisterTargets { .. } => "+",
                Change::DeregisterTargets { .. } | Change::TerminateInstance { .. } => "-",
                Change::PutAlarm { create: true, .. } | Change::PutLifecycleHook { create: true, .. } => "+",
                _ => "~",
            };
            let _ = writeln!(out, "  {sign} {}", pc.change);
            let _ = writeln!(out, "      why: {}", pc.reason);
        }
    }
    if !plan.notices.is_empty() {
        let _ = writeln!(out, "\nLeft alone:");
        for n in &plan.notices {
            let _ = writeln!(out, "  = {}: {}", n.resource, n.message);
        }
    }
    if !plan.holds.is_empty() {
        let _ = writeln!(out, "\nHeld back:");
        for h in &plan.holds {
            let _ = writeln!(out, "  ! {} [{}]: {}", h.resource, h.kind().as_str(), h.message());
        }
    }
    out
}

fn plan_json(plan: &Plan, reports: &[ResourceReport]) -> serde_json::Value {
    serde_json::json!({
        "converged": plan.is_converged(),
        "changes": plan.changes,
        "holds": plan.holds,
        "notices": plan.notices,
        "resources": reports,
    })
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
