//! API economy of the AWS adapter against moto: the calls one converged
//! observe makes, and how long it takes, for 10, 100 and 500 services.
//!
//! Needs the emulator (`scripts/emulator-setup.sh`). Run with
//! `cargo bench --bench aws_calls` (or `--profile dev` to skip the release
//! build of the SDKs: the times are moto's, not the adapter's CPU).
//! Prints a Markdown table.

#[path = "../tests/support/emulator.rs"]
mod emulator;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ballast::cloud::aws::{AwsOptions, RateLimits};
use ballast::cloud::{Cloud, Scope};
use ballast::desired::ServiceId;
use emulator::{BACKEND, CLUSTER, Emulator, FRONTEND, REGION, System, service_id};

/// Converged passes measured per size (after one warm-up pass).
const PASSES: usize = 5;

struct Row {
    services: usize,
    reads: u64,
    writes: u64,
    by_operation: BTreeMap<&'static str, u64>,
    unpaced: Duration,
    paced: Duration,
}

/// The desired state's scope for `services` services of the seeded system:
/// every service with CPU scaling (two alarms and a CPU read each) and
/// resource-based capacity (task sizes), two target groups, one group.
fn scope(services: &[ServiceId], system: &System) -> Scope {
    Scope {
        services: services.to_vec(),
        target_groups: vec![System::target_group(FRONTEND), System::target_group(BACKEND)],
        alarms: services.iter().flat_map(ballast::plan::alarms::alarm_names).map(|n| (REGION.to_string(), n)).collect(),
        cpu: services.to_vec(),
        task_sizes: services.to_vec(),
        groups: vec![(system.group_id(), CLUSTER.to_string())],
        ..Scope::default()
    }
}

async fn measure(n: usize) -> Row {
    let account = Emulator::shared().account().await;
    let actors = account.actors();
    let system = actors.seed(2).await;
    let mut services = vec![system.service_id()];
    for i in 1..n {
        let name = format!("svc{i:03}");
        actors.create_service(&name, &system.task_definition_arn, 1).await;
        services.push(service_id(&name));
    }
    let scope = scope(&services, &system);

    // Unpaced: moto's latency only.
    let cloud = account.cloud(AwsOptions { rate_limits: RateLimits::unlimited(), ..AwsOptions::default() });
    cloud.observe(&scope).await.expect("warm-up pass");
    let mut times = Vec::new();
    let mut calls = None;
    for _ in 0..PASSES {
        let before = cloud.api_calls();
        let started = Instant::now();
        let o = cloud.observe(&scope).await.expect("observe");
        times.push(started.elapsed());
        assert_eq!(o.services.len(), n);
        calls = Some(cloud.api_calls().since(&before));
    }
    times.sort();
    let calls = calls.unwrap();

    // Paced by the default (AWS) rate limits, starting with full buckets as
    // a controller pass would after its interval.
    let paced_cloud = account.cloud(AwsOptions::default());
    paced_cloud.observe(&scope).await.expect("warm-up pass");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let started = Instant::now();
    paced_cloud.observe(&scope).await.expect("observe");
    let paced = started.elapsed();

    Row {
        services: n,
        reads: calls.total() - calls.writes(),
        writes: calls.writes(),
        by_operation: calls.by_operation(),
        unpaced: times[times.len() / 2],
        paced,
    }
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; a filter argument selects sizes.
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10, 100, 500] } else { sizes };
    let mut rows = Vec::new();
    for n in sizes {
        eprintln!("measuring {n} services…");
        rows.push(measure(n).await);
    }

    println!(
        "| services | reads per converged pass | writes | observe, unpaced (median of {PASSES}) | observe, paced by the default rate limits |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.0} ms | {:.0} ms |",
            r.services,
            r.reads,
            r.writes,
            r.unpaced.as_secs_f64() * 1e3,
            r.paced.as_secs_f64() * 1e3
        );
    }
    println!();
    let ops: std::collections::BTreeSet<&str> = rows.iter().flat_map(|r| r.by_operation.keys().copied()).collect();
    print!("| operation |");
    for r in &rows {
        print!(" {} services |", r.services);
    }
    println!();
    print!("|---|");
    for _ in &rows {
        print!("---:|");
    }
    println!();
    for op in ops {
        print!("| {op} |");
        for r in &rows {
            print!(" {} |", r.by_operation.get(op).copied().unwrap_or(0));
        }
        println!();
    }
}
