//! The real `ballast` binary, as a user runs it: validate, plan, apply,
//! schema, and the daemon with its HTTP endpoints, hot reload, signals and
//! a real Prometheus server scraping it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ballast::cloud::lease::MemoryLease;
use ballast::cloud::sim::{SimCloud, SimConfig};
use ballast::cloud::{Clock, TokioClock};
use ballast::controller::Options;
use ballast::controller::leader::LeaseOptions;
use ballast::desired::ServiceId;
use ballast::metrics::Metrics;

#[path = "support/chromium.rs"]
mod chromium;
#[path = "support/daemon_logs.rs"]
mod daemon_logs;
#[path = "support/fixtures.rs"]
mod fixtures;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_ballast")
}

/// `ballast COMMAND FILE` refuses the file: exit 1, no report on stdout.
/// Its stderr, and the file's path as messages name it.
fn refused(command: &str, file: &Path) -> (String, String) {
    let mut args: Vec<&str> = command.split(' ').collect();
    args.push(file.to_str().unwrap());
    let (code, out, err) = run(&args);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "no report for an invalid input: {out}");
    (err, file.display().to_string())
}

fn repo() -> PathBuf {
    fixtures::repo()
}

/// A copy of the example desired state in a fresh temporary directory.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("desired-state")).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    dir
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(bin()).args(args).current_dir(repo()).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn the_example_desired_state_is_valid() {
    let (code, out, err) = run(&["validate", "desired-state"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("valid"), "{out}");
}

#[test]
fn every_broken_fixture_fails_with_a_located_message() {
    for fixture in fixtures::broken_desired_states() {
        let (path, expect) = (&fixture.path, &fixture.expect);
        let name = path.file_name().unwrap().to_str().unwrap();
        let (code, _, err) = run(&["validate", fixture.dir.path().to_str().unwrap()]);
        assert_eq!(code, 1, "{} should fail validation", path.display());
        assert!(err.contains(expect.as_str()), "{}: expected {expect:?} in:\n{err}", path.display());
        let located = err.lines().any(|l| {
            l.split_once(name).is_some_and(|(_, rest)| {
                let mut parts = rest.trim_start_matches(':').splitn(3, ':');
                parts.next().is_some_and(|n| n.parse::<usize>().is_ok())
                    && parts.next().is_some_and(|n| n.parse::<usize>().is_ok())
            })
        });
        assert!(located, "{}: no file:line:column in:\n{err}", path.display());
    }
}

#[test]
fn all_errors_of_a_directory_are_reported_and_an_empty_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.to_lowercase().contains("no"), "{err}");

    let dir = example_copy();
    let app = dir.path().join("app.yaml");
    let text = std::fs::read_to_string(&app).unwrap();
    std::fs::write(
        &app,
        text.replace("containerPort: 80\n", "containerPort: 80000\n").replace("threshold: 54", "threshold: 130"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("extra.yaml"),
        "apiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\nspec: {cluster: c, servce: s}\n",
    )
    .unwrap();
    let (code, _, err) = run(&["validate", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("80000"), "{err}");
    assert!(err.contains("130"), "{err}");
    assert!(err.contains("servce") && err.contains("service"), "did-you-mean expected: {err}");
}

#[test]
fn plan_shows_the_simulated_drift_and_apply_corrects_it() {
    let (code, out, err) = run(&["plan"]);
    assert_eq!(code, 2, "changes pending: {out}{err}");
    assert!(out.contains("desired count 1 -> 2"), "{out}");
    assert!(out.contains("register"), "{out}");
    assert!(out.contains("alarm ballast-appCluster-appService-cpu-high: create"), "{out}");

    let (code, out, _) = run(&["plan", "--output", "json"]);
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["converged"], false);
    assert!(v["changes"].as_array().unwrap().iter().any(|c| c["change"]["kind"] == "setDesiredCount"));

    let (code, out, err) = run(&["apply", "--once"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("applied: service appCluster/appService: desired count 1 -> 2"), "{out}");
    assert!(out.contains("0 failed"), "{out}");

    let (code, out, _) = run(&["apply", "--once", "--dry-run"]);
    assert_eq!(code, 0);
    assert!(!out.contains("applied:"), "dry-run applies nothing: {out}");
}

#[test]
fn schema_is_a_json_schema() {
    let (code, out, _) = run(&["schema"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["$schema"].as_str().unwrap().contains("json-schema.org"), "{v}");
}

#[test]
fn simulate_runs_a_shipped_scenario_and_reports_json() {
    let (code, out, err) =
        run(&["simulate", "scenarios/instance-terminated-by-aws.yaml", "desired-state", "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    for key in ballast::simulate::report::JSON_KEYS {
        assert!(v.get(key).is_some(), "{key} missing: {v:#}");
    }
    assert!(v["servedRequests"].as_f64().unwrap() > 0.0, "{v:#}");
    assert!(v["targetGroups"]["frontendTargetGroup"]["failedRequests"].is_number(), "{v:#}");
    assert_eq!(v["events"][0]["kind"], "terminateInstance");
    assert!(v["events"][0]["convergedAfterSeconds"].is_number(), "{v:#}");
    // The same run again: the same report, to the byte.
    let (_, again, _) = run(&["simulate", "scenarios/instance-terminated-by-aws.yaml", "--output", "json"]);
    assert_eq!(out, again);
    // The text report, with ECS registering the targets.
    let (code, text, err) = run(&["simulate", "scenarios/instance-terminated-by-aws.yaml", "--targets", "ecs"]);
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.contains("targets registered by ECS's load-balancer integration"), "{text}");
    assert!(text.contains("requests:"), "{text}");
}

#[test]
fn a_lease_needs_the_aws_cloud_and_at_least_a_second() {
    // The simulated cloud has one daemon: a lease there is a mistake, said before anything starts.
    let (code, _, err) = run(&["run", "desired-state", "--lease-table", "ballast-lease"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--lease-table") && err.contains("add --cloud aws"), "{err}");
    let (code, _, err) =
        run(&["run", "desired-state", "--cloud", "aws", "--lease-table", "t", "--lease-duration", "500ms"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("500ms is too short for a lease: give at least 1s"), "{err}");
}

#[test]
fn simulate_refuses_an_invalid_scenario_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: ballast.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: bad\nspec:\n  duration: 1h\n  events:\n    - at: 5m\n      deploy: {service: nope}\n    - at: 2h\n      restartController: {}\n",
    )
    .unwrap();
    let (err, path) = refused("simulate", &file);
    assert!(err.contains(&format!("{path}:9:25: `spec.events[0].deploy.service`: no service `nope`")), "{err}");
    assert!(err.contains(&format!("{path}:10:11: `spec.events[1].at` is 2h")), "{err}");
    assert!(err.contains("2 problems"), "{err}");
    // A desired-state directory where the scenario belongs.
    let (code, _, err) = run(&["simulate", "desired-state"]);
    assert_eq!(code, 1);
    assert!(err.contains("this is a directory, not a scenario file"), "{err}");
}

/// The scaling benchmark's world (tests/fixtures/replay/bench-world).
const BENCH_WORLD: &str = "tests/fixtures/replay/bench-world";

/// The `spec.scaling.cpu` block of the first document of a desired-state file.
fn scaling_block(path: &str) -> serde_yaml::Value {
    let text = std::fs::read_to_string(repo().join(path)).unwrap();
    let doc = serde_yaml::Deserializer::from_str(&text).next().unwrap();
    let doc = <serde_yaml::Value as serde::Deserialize>::deserialize(doc).unwrap();
    doc["spec"]["scaling"]["cpu"].clone()
}

#[test]
fn replay_of_a_benchmark_trace_exported_as_csv_reproduces_the_benchmarks_figures() {
    use ballast::simulate::replay::{self, Policy, Setup};
    use ballast::simulate::traces;
    // The benchmark measures the shipped policy in this world.
    assert_eq!(scaling_block("desired-state/app.yaml"), scaling_block(&format!("{BENCH_WORLD}/app.yaml")));
    let world = ballast::desired::load_dir(&repo().join(BENCH_WORLD), "us-east-2").unwrap();
    let trace = traces::all().into_iter().find(|t| t.name == "step").unwrap();
    // What the benchmark runs (benches/scaling.rs, `setup`).
    let setup = Setup {
        service: world.services[0].id.clone(),
        load: trace.points(Duration::from_secs(15)),
        duration: trace.duration,
        warmup: Duration::from_secs(20 * 60),
        interval: Duration::from_secs(15),
        seed: 1,
        config: ballast::cloud::sim::SimConfig::default(),
        target_cpu: 60.0,
    };
    let mut policies = vec![Policy::Ballast { name: "ballast".into(), desired: Box::new(world.clone()) }];
    policies.extend(Policy::peers(&world, &setup.service));
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let runs: Vec<replay::Run> = policies.iter().map(|p| rt.block_on(replay::run(&setup, p))).collect();
    let bench: Vec<replay::Score> = runs.iter().map(|r| replay::score(&setup, r)).collect();
    assert_eq!(setup.largest_step(), Some(Duration::from_secs(30 * 60)));

    // The trace as a history CSV, target tracking's tasks as what happened
    // (what `cargo bench --bench scaling -- --export DIR` writes).
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("step.csv");
    std::fs::write(&csv, trace.history(&runs[1], 1.0).to_csv()).unwrap();
    let chart = dir.path().join("step.svg");
    let (code, out, err) = run(&[
        "replay",
        "--csv",
        csv.to_str().unwrap(),
        BENCH_WORLD,
        "--output",
        "json",
        "--chart",
        chart.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["largestStepAtSeconds"], 1800, "{report}");
    let rows = report["policies"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert_eq!(names, ["what happened", &format!("ballast ({BENCH_WORLD})"), "ECS target tracking", "HPA"]);
    for (row, score) in rows[1..].iter().zip(&bench) {
        let name = &row["policy"];
        assert_eq!(row["taskMinutes"].as_f64(), Some(score.task_minutes), "{name}");
        assert_eq!(row["minutesCpuAbove90"].as_f64(), Some(score.minutes_cpu_above90), "{name}");
        assert_eq!(row["scalingActions"].as_u64(), Some(score.scaling_actions as u64), "{name}");
        assert_eq!(row["reactionSeconds"].as_i64(), score.reaction_seconds, "{name}");
        assert!(score.reaction_seconds.is_some(), "{name} reacts to the step");
    }
    // What happened is target tracking's run, measured from the rows.
    let happened = &rows[0];
    assert!((happened["taskMinutes"].as_f64().unwrap() - bench[1].task_minutes).abs() < 1.0, "{happened}");
    assert_eq!(happened["peakTasks"].as_u64(), Some(u64::from(bench[1].peak_tasks)));
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""), "{svg}");
    for name in ["what happened", "ECS target tracking", "HPA", "load (CPU % x tasks)"] {
        assert!(svg.contains(name), "{name} missing from the chart");
    }

    // The text report carries the same figures.
    let (code, text, err) = run(&["replay", "--csv", csv.to_str().unwrap(), BENCH_WORLD, "--compare", "desired-state"]);
    assert_eq!(code, 0, "{text}{err}");
    let ballast_line = text.lines().find(|l| l.starts_with(&format!("ballast ({BENCH_WORLD})"))).unwrap();
    let cells: Vec<&str> = ballast_line.split_whitespace().collect();
    assert!(cells.contains(&format!("{:.0}", bench[0].task_minutes).as_str()), "{text}");
    assert!(text.contains("ballast (desired-state)"), "--compare adds a row: {text}");
}

/// Flap damping end to end: on the invented 20-minute sawtooth
/// (tests/fixtures/replay/invented, BENCHMARKS.md) the shipped policy
/// holds the peaks' count instead of following every cycle: no more
/// actions and minutes above 90 % than ECS target tracking, and fewer
/// task-minutes than it. Before damping it made 109 actions to target
/// tracking's 29.
#[test]
fn replay_of_a_sawtooth_takes_no_more_actions_than_target_tracking() {
    let csv = "tests/fixtures/replay/invented/sawtooth.csv";
    let (code, out, err) = run(&["replay", "--csv", csv, BENCH_WORLD, "--output", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = report["policies"].as_array().unwrap();
    let row = |name: &str| rows.iter().find(|r| r["policy"].as_str().unwrap().starts_with(name)).unwrap();
    let (ballast, tt) = (row("ballast"), row("ECS target tracking"));
    let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
    assert!(f(ballast, "scalingActions") <= f(tt, "scalingActions"), "{report}");
    assert!(f(ballast, "minutesCpuAbove90") <= f(tt, "minutesCpuAbove90"), "{report}");
    assert!(f(ballast, "taskMinutes") < f(tt, "taskMinutes"), "{report}");
}

/// Issue 17's goals end to end where the shipped policy meets them on an
/// invented history it once missed (BENCHMARKS.md, "Issue 17's goals on
/// every history"): no more task-minutes than the HPA, no more minutes
/// above 90 % and no more actions than ECS target tracking. On the 60-minute
/// sawtooth the policy of 66 % made 79 actions to target tracking's 65;
/// on the noisy sine 8 minutes above 90 % to its 6 (the CPU read older
/// than the alarm that fired).
#[test]
fn replay_of_a_slow_sawtooth_and_a_noisy_sine_meets_issue_17s_goals() {
    for csv in ["tests/fixtures/replay/invented/slow-sawtooth.csv", "tests/fixtures/replay/invented/noisy.csv"] {
        let (code, out, err) = run(&["replay", "--csv", csv, BENCH_WORLD, "--output", "json"]);
        assert_eq!(code, 0, "{out}{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        let rows = report["policies"].as_array().unwrap();
        let row = |name: &str| rows.iter().find(|r| r["policy"].as_str().unwrap().starts_with(name)).unwrap();
        let (ballast, tt, hpa) = (row("ballast"), row("ECS target tracking"), row("HPA"));
        let f = |r: &serde_json::Value, k: &str| r[k].as_f64().unwrap();
        assert!(f(ballast, "taskMinutes") <= f(hpa, "taskMinutes"), "{csv}: {report}");
        assert!(f(ballast, "minutesCpuAbove90") <= f(tt, "minutesCpuAbove90"), "{csv}: {report}");
        assert!(f(ballast, "scalingActions") <= f(tt, "scalingActions"), "{csv}: {report}");
    }
}

#[test]
fn replay_refuses_an_invalid_history_with_located_errors() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "time,cpu_percent,running_tasks\n0,50,4\n60,fifty,4\n120,50,-1\n").unwrap();
    let (err, path) = refused("replay --csv", &csv);
    assert!(err.contains(&format!("{path}:3:4: `fifty` is not a CPU percent")), "{err}");
    assert!(err.contains(&format!("{path}:4:8: `-1` is not a task count")), "{err}");
    assert!(err.contains("2 problems in the history"), "{err}");
    // A missing file, and a service the desired state does not declare.
    let (code, _, err) = run(&["replay", "--csv", "no-such.csv"]);
    assert_eq!(code, 1);
    assert!(err.contains("no-such.csv: cannot read the history"), "{err}");
    let (code, _, err) = run(&["replay", "--csv", csv.to_str().unwrap(), "--service", "appCluster/other"]);
    assert_eq!(code, 1);
    assert!(err.contains("declares no Service for appCluster/other"), "{err}");
    // Neither a CSV nor a cloud.
    let (code, _, err) = run(&["replay"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--csv"), "{err}");
}

/// The HTTP face of a running daemon, in a subprocess or in process.
struct Endpoint {
    addr: String,
}

impl Endpoint {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(self.url(path)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.get(path).await.1).unwrap()
    }

    /// Poll `f` on /status until it holds, or fail after `within`.
    async fn wait_status(
        &self,
        within: Duration,
        what: &str,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let start = Instant::now();
        loop {
            let v = self.json("/status").await;
            if f(&v) {
                return v;
            }
            assert!(start.elapsed() < within, "timed out waiting for {what}; status: {v:#}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The real binary's daemon in a subprocess, killed when dropped: what
/// only a process can show (its logs on stderr, signals, exit codes).
struct Daemon {
    child: Child,
    http: Endpoint,
    logs: Arc<Mutex<Vec<String>>>,
}

impl Daemon {
    fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(bin())
            .args(["run", dir.to_str().unwrap(), "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (logs, rx) = daemon_logs::follow(&mut child);
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the daemon did not start");
        Daemon { child, http: Endpoint { addr }, logs }
    }

    fn sigterm(&self) {
        let ok = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap().success();
        assert!(ok);
    }
}

impl std::ops::Deref for Daemon {
    type Target = Endpoint;
    fn deref(&self) -> &Endpoint {
        &self.http
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The same daemon ([`ballast::daemon::Daemon`]) in this process, on a
/// simulated cloud the test can change behind its back.
struct InProcess {
    http: Endpoint,
    sim: SimCloud,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl InProcess {
    async fn start(dir: &Path, interval: Duration, dry_run: bool) -> InProcess {
        let desired = ballast::desired::load_dir(dir, "us-east-2").expect("a valid desired state");
        let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
        let metrics = Arc::new(Metrics::new());
        let sim = SimCloud::from_desired(&desired, true, clock.clone(), 1, metrics.clone(), SimConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let daemon = ballast::daemon::Daemon {
            options: Options { dir: dir.to_path_buf(), default_region: "us-east-2".into(), interval, dry_run },
            shutdown_timeout: Duration::from_secs(5),
            debounce: Duration::from_millis(100),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let lease: Option<(LeaseOptions, MemoryLease)> = None;
        let task = tokio::spawn(daemon.run(listener, sim.clone(), metrics, clock, desired, lease, async {
            let _ = stopped.await;
        }));
        InProcess { http: Endpoint { addr }, sim, stop: Some(stop), task }
    }

    /// Shut down as a signal would, and return how the daemon ended.
    async fn shutdown(mut self) -> anyhow::Result<()> {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.expect("the daemon task panicked")
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn app_service() -> ServiceId {
    ServiceId { region: "us-east-2".into(), cluster: "appCluster".into(), service: "appService".into() }
}

fn service(v: &serde_json::Value) -> &serde_json::Value {
    v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"]["type"] == "service")
        .expect("a service in /status")
}

fn all_synced(v: &serde_json::Value) -> bool {
    let resources = v["resources"].as_array().unwrap();
    !resources.is_empty()
        && resources
            .iter()
            .all(|r| r["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Synced" && c["status"] == "True"))
}

#[tokio::test]
async fn the_daemon_converges_and_serves_health_metrics_and_status() {
    let dir = example_copy();
    let d = Daemon::start(dir.path(), &["--interval", "1s"]);
    let v = d.wait_status(Duration::from_secs(10), "every resource synced", all_synced).await;
    assert_eq!(service(&v)["observed"]["desiredCount"], 2);
    assert!(
        service(&v)["lastChanges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["result"] == "applied" && c["reason"].as_str().is_some())
    );
    assert!(v["resources"].as_array().unwrap().iter().all(|r| r["nextCheckAt"].is_string()));

    let (code, body) = d.get("/healthz").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(d.get("/readyz").await.0, 200);
    assert_eq!(d.get("/livez").await.0, 200);

    // Converged passes write nothing: the applied-changes counters stop moving.
    let metrics_a = d.get("/metrics").await.1;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let metrics_b = d.get("/metrics").await.1;
    let applied = |m: &str| {
        m.lines().filter(|l| l.starts_with("ballast_changes_applied_total")).map(String::from).collect::<Vec<_>>()
    };
    assert_eq!(applied(&metrics_a), applied(&metrics_b), "a converged daemon applies nothing");
    for name in [
        "ballast_reconcile_passes_total{result=\"success\"}",
        "ballast_reconcile_pass_duration_seconds_bucket",
        "ballast_cloud_api_calls_total{service=\"ecs\",operation=\"DescribeServices\",result=\"success\"}",
        "ballast_service_desired_tasks{cluster=\"appCluster\",service=\"appService\"} 2",
        "ballast_target_group_healthy_targets{target_group=\"frontendTargetGroup\"}",
        "ballast_config_valid 1",
        "ballast_last_successful_pass_timestamp_seconds",
        "ballast_build_info{version=",
    ] {
        assert!(metrics_b.contains(name), "{name} missing from:\n{metrics_b}");
    }
    // promtool is installed by scripts/test.sh; a missing promtool fails the test.
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) is needed; scripts/test.sh installs it");
    use std::io::Write as _;
    promtool.stdin.take().unwrap().write_all(metrics_b.as_bytes()).unwrap();
    let out = promtool.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // One log line per change applied, with resource, change and reason.
    let logs = d.logs.lock().unwrap().clone();
    let applied_lines: Vec<serde_json::Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["message"] == "applied")
        .collect();
    assert!(applied_lines.len() >= 3, "{logs:#?}");
    assert!(
        applied_lines.iter().all(|v| v["resource"].is_string() && v["change"].is_string() && v["reason"].is_string())
    );
}

#[tokio::test]
async fn edits_are_applied_at_once_and_a_broken_file_keeps_the_last_good_state() {
    let dir = example_copy();
    // A long interval: only the file watcher can explain a quick reaction.
    let d = InProcess::start(dir.path(), Duration::from_secs(60), false).await;
    d.http.wait_status(Duration::from_secs(10), "first convergence", all_synced).await;

    let app = dir.path().join("app.yaml");
    let good = std::fs::read_to_string(&app).unwrap();
    assert!(good.contains("min: 2"));
    std::fs::write(&app, good.replace("min: 2", "min: 3")).unwrap();
    d.http
        .wait_status(Duration::from_secs(5), "desired count 3", |v| service(v)["observed"]["desiredCount"] == 3)
        .await;

    let broken = good.replace("min: 2", "min: 3").replace("cluster: appCluster", "clustr: appCluster");
    std::fs::write(&app, &broken).unwrap();
    let v = d
        .http
        .wait_status(Duration::from_secs(5), "the invalid config reported", |v| v["config"]["valid"] == false)
        .await;
    let errors = v["config"]["errors"].to_string();
    assert!(errors.contains("app.yaml:") && errors.contains("clustr"), "{errors}");
    let (code, body) = d.http.get("/healthz").await;
    assert_eq!(code, 200, "a config error does not make the daemon unhealthy: {body}");
    assert!(body.contains("clustr"), "{body}");
    assert!(d.http.get("/metrics").await.1.contains("ballast_config_valid 0"));

    // The last good state stays in force: with the cloud drifted below its
    // minimum, the next pass (a save of the still broken file wakes the
    // loop) corrects to 3, which only the last good version declares.
    let passes = v["passes"].as_u64().unwrap();
    d.sim.set_desired_count(&app_service(), 1).unwrap();
    std::fs::write(&app, &broken).unwrap();
    let v = d
        .http
        .wait_status(Duration::from_secs(5), "a pass corrects the drift", |v| {
            v["passes"].as_u64().unwrap() > passes && service(v)["observed"]["desiredCount"] == 3
        })
        .await;
    assert_eq!(v["config"]["valid"], false, "the file is still broken");

    std::fs::write(&app, &good).unwrap();
    let v = d.http.wait_status(Duration::from_secs(5), "valid again", |v| v["config"]["valid"] == true).await;
    assert!(v["config"]["errors"].as_array().unwrap().is_empty());
    // Lowering the minimum does not scale in by itself: 3 is within [2, 10].
    assert_eq!(service(&v)["observed"]["desiredCount"], 3);

    // Deleting a document stops managing it; nothing is deleted in the cloud.
    std::fs::remove_file(dir.path().join("capacity.yaml")).unwrap();
    let v = d
        .http
        .wait_status(Duration::from_secs(5), "capacity unmanaged", |v| {
            v["config"]["capacities"] == 0
                && !v["resources"].as_array().unwrap().iter().any(|r| r["resource"]["type"] == "group")
        })
        .await;
    assert!(all_synced(&v));
    d.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn dry_run_reports_changes_without_making_them() {
    let dir = example_copy();
    let d = InProcess::start(dir.path(), Duration::from_millis(500), true).await;
    let v = d.http.wait_status(Duration::from_secs(10), "two passes", |v| v["passes"].as_u64().unwrap_or(0) >= 2).await;
    assert_eq!(v["lastPass"]["dryRun"], true);
    assert!(v["lastPass"]["changesPlanned"].as_u64().unwrap() > 0, "still drifted after passes: {v:#}");
    assert_eq!(v["lastPass"]["changesApplied"], 0);
    assert!(service(&v)["lastChanges"].as_array().unwrap().iter().all(|c| c["result"] == "dry-run"));
    assert_eq!(service(&v)["observed"]["desiredCount"], 1);
    assert!(d.sim.calls().iter().all(|c| !c.write), "no write reached the cloud");
    d.shutdown().await.expect("a clean shutdown");
}

/// Issue 17: during a cloud outage ballast reports it, but stays live, so
/// the container health check (on /livez) does not restart it in a loop.
#[tokio::test]
async fn an_unreachable_cloud_fails_healthz_but_not_livez() {
    let dir = example_copy();
    let d = InProcess::start(dir.path(), Duration::from_millis(200), false).await;
    d.http.wait_status(Duration::from_secs(10), "first convergence", all_synced).await;
    assert_eq!(d.http.get("/livez").await.0, 200);

    d.sim.set_unreachable(true);
    d.http
        .wait_status(Duration::from_secs(10), "five unreachable passes", |v| {
            v["cloud"]["consecutiveFailures"].as_u64().unwrap_or(0) >= 5
        })
        .await;
    let (code, body) = d.http.get("/healthz").await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("the cloud was unreachable"), "{body}");
    let (code, body) = d.http.get("/livez").await;
    assert_eq!(code, 200, "an outage is no reason to restart ballast: {body}");
    assert!(d.http.get("/metrics").await.1.contains("ballast_cloud_reachable 0"));
    assert_eq!(d.http.json("/status").await["lastPass"]["result"], "unreachable");
    d.shutdown().await.expect("a clean shutdown");
}

#[tokio::test]
async fn sigterm_stops_the_daemon_with_exit_code_zero() {
    let dir = example_copy();
    let mut d = Daemon::start(dir.path(), &["--interval", "1s"]);
    d.wait_status(Duration::from_secs(10), "a pass", |v| v["passes"].as_u64().unwrap_or(0) >= 1).await;
    let start = Instant::now();
    d.sigterm();
    let status = loop {
        if let Some(s) = d.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "did not stop within the shutdown timeout");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
}

#[tokio::test]
async fn a_real_prometheus_server_scrapes_the_daemon() {
    let dir = example_copy();
    let d = Daemon::start(dir.path(), &["--interval", "1s"]);
    let work = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ballast\n    static_configs:\n      - targets: ['{}']\n", d.addr),
    )
    .unwrap();
    let mut prom = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", work.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus (Debian package prometheus) is needed; scripts/test.sh installs it");
    let start = Instant::now();
    let query = format!("http://127.0.0.1:{port}/api/v1/query?query=ballast_build_info");
    let found = loop {
        if let Ok(r) = reqwest::get(&query).await
            && let Ok(v) = r.json::<serde_json::Value>().await
            && v["data"]["result"].as_array().is_some_and(|a| !a.is_empty())
        {
            break true;
        }
        if start.elapsed() > Duration::from_secs(30) {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let up: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/query?query=up")).await.unwrap().json().await.unwrap();
    let _ = prom.kill();
    let _ = prom.wait();
    assert!(found, "Prometheus never stored ballast_build_info");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
}

/// Issue 17: the status page at `/`, as a person's browser shows it: the
/// example's resources with a chart per service, then a broken file's
/// located error.
#[tokio::test]
async fn the_status_page_shows_the_resources_and_a_broken_file_in_a_browser() {
    let dir = example_copy();
    let d = Daemon::start(dir.path(), &["--interval", "1s"]);
    d.wait_status(Duration::from_secs(10), "every resource synced", all_synced).await;

    let dom = chromium::dump_dom(&d.url("/"), &[]);
    for name in [
        "service/appCluster/appService",
        "targetgroup/frontendTargetGroup",
        "targetgroup/backendTargetGroup",
        "alarm/ballast-appCluster-appService-cpu-high",
        "alarm/ballast-appCluster-appService-cpu-low",
        "autoscalinggroup/ecsAutoScalingGroup",
    ] {
        assert!(dom.contains(&format!("<h3>{name}</h3>")), "{name} missing from the page:\n{dom}");
    }
    assert!(dom.contains(r#"<svg class="chart chart-tasks""#) && dom.contains(r#"<svg class="chart chart-cpu""#));
    assert!(dom.contains(r#"class="line running""#), "the task chart has a line or a point:\n{dom}");
    assert!(dom.contains(r#"<span class="ok">valid</span>"#), "{dom}");
    assert!(!dom.contains("config-errors"), "{dom}");

    // A second service document with a typo: the whole directory is
    // invalid, the last good state stays in force, and the page says where.
    let broken = "apiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata: {name: broken}\nspec:\n  clustr: appCluster\n  service: otherService\n";
    std::fs::write(dir.path().join("broken.yaml"), broken).unwrap();
    d.wait_status(Duration::from_secs(10), "the invalid config reported", |v| v["config"]["valid"] == false).await;
    let dom = chromium::dump_dom(&d.url("/"), &[]);
    let errors = dom.split(r#"<ul id="config-errors">"#).nth(1).unwrap_or_else(|| panic!("no error list:\n{dom}"));
    let errors = &errors[..errors.find("</ul>").unwrap()];
    let located = format!("{}:5:3:", dir.path().join("broken.yaml").display());
    assert!(errors.contains(&located) && errors.contains("clustr"), "{located} expected in:\n{errors}");
    assert!(dom.contains("The desired state on disk is invalid"), "{dom}");
    assert!(dom.contains("<h3>service/appCluster/appService</h3>"), "the last good state is still shown:\n{dom}");
}
