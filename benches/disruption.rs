//! Disruption benchmark (issues 14 and 15): how many requests each shipped
//! scenario loses, with ballast registering the targets and with ECS's own
//! load-balancer integration doing it, and how long each operation takes to
//! settle, at the shipped propagation lag and at 120 s; then the 7-day
//! scenario's wall time and peak memory.
//!
//! `cargo bench --bench disruption` prints Markdown tables for
//! BENCHMARKS.md. Everything but the wall time is deterministic: the
//! scenarios carry their seeds.
//!
//! The scenarios run as shipped: the event-driven ones (deployment, instance
//! terminated by AWS) at a steady 200 requests per second, the load-driven
//! ones (scale-in after a load drop, on-demand zone removed, restart
//! mid-scale-in) with the load curve that makes the operation happen, since
//! a steady load would not.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ballast::simulate::{self, Report, RunOptions, TargetManager};

const SCENARIOS: &[&str] = &[
    "scale-in-after-load-drop.yaml",
    "rolling-deployment.yaml",
    "instance-terminated-by-aws.yaml",
    "on-demand-zone-removed.yaml",
    "controller-restart-mid-scale-in.yaml",
];

const SEVEN_DAYS: &str = "seven-days.yaml";

/// Run as a child of itself with this argument: plays the 7-day scenario
/// alone, so that the peak memory measured is that run's.
const CHILD: &str = "--seven-days-child";

fn scenario_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios").join(file)
}

fn run(file: &str, targets: TargetManager) -> (Report, Duration) {
    run_with_lag(file, targets, None)
}

/// `lag`: a `deregistrationPropagationLag` other than the scenario's.
fn run_with_lag(file: &str, targets: TargetManager, lag: Option<Duration>) -> (Report, Duration) {
    let path = scenario_path(file);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    let mut scenario = simulate::load_scenario(&path, &dir, "us-east-2")
        .unwrap_or_else(|e| panic!("{} is a valid scenario:\n{e}", path.display()));
    if let Some(lag) = lag {
        scenario.aws.sim.deregistration_propagation_lag = lag;
    }
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
    let started = Instant::now();
    let report = runtime.block_on(simulate::run(&scenario, &RunOptions { targets }));
    (report, started.elapsed())
}

/// The longest time from an event to the state that follows it, over the
/// scenario's events (`never` when one did not get there): `settled` picks
/// the settle time (the operation done, nothing left to change), else the
/// convergence time (the plan empty once).
fn completion(report: &Report, settled: bool) -> String {
    if report.events.is_empty() {
        // A load-driven scenario: no event to measure from.
        return "(no event)".to_string();
    }
    report
        .events
        .iter()
        .map(|e| if settled { e.settled_after_seconds } else { e.converged_after_seconds })
        .try_fold(Duration::ZERO, |worst, e| Some(worst.max(e?)))
        .map_or_else(|| "never".to_string(), |d| format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60))
}

/// Peak resident memory of this process, from /proc (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    if std::env::args().any(|a| a == CHILD) {
        let (report, wall) = run(SEVEN_DAYS, TargetManager::Ballast);
        println!(
            "{} {} {} {}",
            wall.as_secs_f64(),
            peak_rss_mib().unwrap_or(f64::NAN),
            report.failed_requests,
            report.served_requests
        );
        return;
    }

    for (title, lag) in [("the shipped propagation lag (60 s)", None), ("a propagation lag of 120 s", Some(120))] {
        let lag = lag.map(Duration::from_secs);
        println!("## Disruption: failed requests per scenario, {title}\n");
        println!(
            "| scenario | load | failed (ballast) | failed (ECS integration) | served (ballast) | \
             converged after (ballast) | converged after (ECS) | settled after (ballast) | settled after (ECS) |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
        for file in SCENARIOS {
            let (ours, _) = run_with_lag(file, TargetManager::Ballast, lag);
            let (ecs, _) = run_with_lag(file, TargetManager::Ecs, lag);
            let name = file.trim_end_matches(".yaml");
            let load = if ["rolling-deployment", "instance-terminated-by-aws"].contains(&name) {
                "steady 200 rps"
            } else {
                "curve (see the scenario)"
            };
            println!(
                "| {name} | {load} | {:.0} | {:.0} | {:.0} | {} | {} | {} | {} |",
                ours.failed_requests,
                ecs.failed_requests,
                ours.served_requests,
                completion(&ours, false),
                completion(&ecs, false),
                completion(&ours, true),
                completion(&ecs, true),
            );
        }
        println!();
    }

    // The 7-day run in a child process of its own: its peak memory is
    // then the run's, not this process's after the runs above.
    let exe = std::env::current_exe().expect("the bench binary's path");
    let out = std::process::Command::new(exe).arg(CHILD).output().expect("run the 7-day child");
    assert!(out.status.success(), "the 7-day run failed: {}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let [wall, rss, failed, served] = fields[..] else {
        panic!("unexpected output of the 7-day child: {line}");
    };
    println!("\n## Seven days (scenarios/{SEVEN_DAYS}), ballast registering targets\n");
    println!("| wall time | peak memory | failed requests | served requests |");
    println!("|---|---|---|---|");
    println!("| {wall:.1} s | {rss:.1} MiB | {failed:.0} | {served:.0} |");
    println!("\nGoal: under 60 s and under 100 MiB.");
}
