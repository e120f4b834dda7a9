//! Daemon benchmarks on the simulated cloud.
//!
//! 1. Reaction: from a desired-state file being saved to the first
//!    corrective call reaching the cloud (hot reload: watcher, debounce,
//!    load, observe, plan, apply), in process, real time.
//! 2. Idle cost: the real `ballast` binary managing 1,000 converged
//!    services: CPU (share of one core) and resident memory between passes,
//!    and write calls per converged pass.
//! 3. Virtual time: a day of the simulated cloud with 250 services (a
//!    tenth under load), the wall time it takes (in a test it was a
//!    wall-clock assert; timing belongs here).
//!
//! Run: `cargo bench --bench daemon`.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ballast::cloud::sim::{SimCloud, SimConfig};
use ballast::cloud::{Clock, Cloud, CloudError, ManualClock, Scope, TokioClock};
use ballast::controller::{Controller, Options};
use ballast::metrics::Metrics;
use ballast::observed::Observed;
use ballast::plan::Change;
use tokio::sync::mpsc;

/// Forwards to the simulated cloud and reports when each write arrives.
struct Timed {
    inner: SimCloud,
    writes: mpsc::UnboundedSender<Instant>,
}

impl Cloud for Timed {
    async fn observe(&self, scope: &Scope) -> Result<Observed, CloudError> {
        self.inner.observe(scope).await
    }
    async fn apply(&self, change: &Change) -> Result<(), CloudError> {
        let _ = self.writes.send(Instant::now());
        self.inner.apply(change).await
    }
}

fn service_doc(name: &str, cluster: &str, count: u32, tgs: &[(String, u16)]) -> String {
    let mut s = format!(
        "---\napiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  region: us-east-2\n  cluster: {cluster}\n  service: {name}\n  tasks:\n    count: {count}\n"
    );
    if !tgs.is_empty() {
        s.push_str("  targetGroups:\n");
        for (tg, port) in tgs {
            let _ = write!(s, "    - targetGroup: {tg}\n      containerName: app\n      containerPort: {port}\n");
        }
    }
    s
}

async fn reaction(samples: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.yaml");
    let write = |count: u32| std::fs::write(&file, service_doc("web", "c1", count, &[("web-tg".into(), 80)])).unwrap();
    write(2);
    let desired = ballast::desired::load_dir(dir.path(), "us-east-2").unwrap();
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let metrics = Arc::new(Metrics::new());
    let sim = SimCloud::from_desired(&desired, false, clock.clone(), 1, metrics.clone(), SimConfig::default());
    let (tx, mut writes) = mpsc::unbounded_channel();
    let cloud = Timed { inner: sim, writes: tx };
    let options = Options {
        dir: dir.path().to_path_buf(),
        default_region: "us-east-2".into(),
        interval: Duration::from_secs(3600),
        dry_run: false,
    };
    let ctl = Controller::new(cloud, clock, metrics, options, desired);
    let (_watcher, reloads) =
        ballast::controller::watch::watch(dir.path(), Duration::from_millis(100), Duration::from_secs(1)).unwrap();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(ctl.run(reloads, stop));
    tokio::time::sleep(Duration::from_millis(500)).await;
    while writes.try_recv().is_ok() {}
    let mut out = Vec::new();
    for i in 0..samples {
        // Let follow-up passes of the previous change settle first.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        while writes.try_recv().is_ok() {}
        let saved = Instant::now();
        write(if i % 2 == 0 { 3 } else { 2 });
        let at =
            tokio::time::timeout(Duration::from_secs(5), writes.recv()).await.expect("no corrective call").unwrap();
        out.push(at - saved);
    }
    out
}

fn proc_stat(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(") ").unwrap().1.split_whitespace().collect();
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = (fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap()) / ticks;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss_kb: f64 =
        status.lines().find(|l| l.starts_with("VmRSS:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap();
    (cpu, rss_kb / 1024.0)
}

fn write_fleet(dir: &Path, n: usize) {
    let mut text = String::new();
    for i in 0..n {
        let tgs = vec![(format!("tg-{i}-a"), 80u16), (format!("tg-{i}-b"), 8000u16)];
        text.push_str(&service_doc(&format!("svc-{i}"), &format!("cluster-{}", i / 100), 2, &tgs));
    }
    std::fs::write(dir.join("fleet.yaml"), text).unwrap();
}

async fn scrape(addr: &str) -> String {
    reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap()
}

fn counter_sum(metrics: &str, prefix: &str) -> f64 {
    metrics.lines().filter(|l| l.starts_with(prefix)).filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok()).sum()
}

async fn idle(n: usize, window: Duration) -> (f64, f64, f64, f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), n);
    let mut child = Command::new(env!("CARGO_BIN_EXE_ballast"))
        .args([
            "run",
            dir.path().to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--interval",
            "15s",
        ])
        .env("RUST_LOG", "warn,ballast::daemon=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = {
        use std::io::BufRead as _;
        let mut lines = std::io::BufReader::new(stderr).lines();
        loop {
            let line = lines.next().expect("daemon exited").unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "ballast running" {
                break v["listen"].as_str().unwrap().to_string();
            }
        }
    };
    // Converge: wait until a pass applies nothing.
    let start = Instant::now();
    loop {
        let st: serde_json::Value = reqwest::get(format!("http://{addr}/status")).await.unwrap().json().await.unwrap();
        if st["passes"].as_u64().unwrap_or(0) >= 2 && st["lastPass"]["changesPlanned"] == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "did not converge");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pid = child.id();
    let before_metrics = scrape(&addr).await;
    let (cpu0, _) = proc_stat(pid);
    let t0 = Instant::now();
    let mut rss_max: f64 = 0.0;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(proc_stat(pid).1);
    }
    let (cpu1, rss) = proc_stat(pid);
    let after_metrics = scrape(&addr).await;
    let _ = child.kill();
    let _ = child.wait();
    let cpu_share = (cpu1 - cpu0) / t0.elapsed().as_secs_f64();
    let passes = counter_sum(&after_metrics, "ballast_reconcile_passes_total")
        - counter_sum(&before_metrics, "ballast_reconcile_passes_total");
    let writes = counter_sum(&after_metrics, "ballast_changes_applied_total")
        - counter_sum(&before_metrics, "ballast_changes_applied_total");
    (cpu_share * 100.0, rss, rss_max, passes, writes)
}

/// Wall time of one virtual day of the simulated cloud: 250 services of 2
/// tasks, every tenth under 100 requests per second.
fn virtual_day() -> Duration {
    let dir = tempfile::tempdir().unwrap();
    write_fleet(dir.path(), 250);
    let desired = ballast::desired::load_dir(dir.path(), "us-east-2").expect("the fleet is valid");
    let clock = Arc::new(ManualClock::new());
    let sim = SimCloud::from_desired(&desired, false, clock.clone(), 7, Arc::new(Metrics::new()), SimConfig::default());
    for s in desired.services.iter().step_by(10) {
        sim.set_load(&s.id, 100.0).unwrap();
    }
    let started = Instant::now();
    clock.advance(Duration::from_secs(24 * 3600));
    sim.tick();
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let day = virtual_day();
    println!("## A virtual day of the simulated cloud, 250 services\n");
    println!("| wall time |\n|---|\n| {:.2} s |\n", day.as_secs_f64());

    let mut r = reaction(20).await;
    r.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("## Save to first corrective call (20 saves, debounce 100 ms)\n");
    println!("| median | p90 | max |\n|---|---|---|");
    println!("| {:.0} ms | {:.0} ms | {:.0} ms |\n", ms(r[r.len() / 2]), ms(r[r.len() * 9 / 10]), ms(r[r.len() - 1]));

    let n = 1000;
    let (cpu, rss, rss_max, passes, writes) = idle(n, Duration::from_secs(60)).await;
    println!("## Converged daemon, {n} services (2 target groups each), 60 s window, interval 15 s\n");
    println!("| CPU (share of one core) | RSS at end | RSS max | passes | write calls |\n|---|---|---|---|---|");
    println!("| {cpu:.2} % | {rss:.1} MiB | {rss_max:.1} MiB | {passes} | {writes} |");
}
