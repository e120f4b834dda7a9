//! Leader election on the emulator (issue 16): two `ballast run
//! --lease-table` daemons on a converged system with the default 15 s
//! lease; the leader is killed (`kill -9`) 20 times, at a random point of
//! its renew cycle, and replaced by a new process, as ECS would. Measured:
//! the time from each kill to the end of the new leader's first pass (its
//! own `lastPass.finishedAt`), and, over two steady minutes, the lease
//! calls of the leader and of the standby, per hour.
//!
//! Needs the emulator (`scripts/emulator-setup.sh`). Run with
//! `cargo bench --bench lease --profile dev` (the times are the lease's
//! and moto's, not ballast's CPU). Takes about 10 minutes; prints Markdown.

// The e2e helpers re-export what this bench does not use.
#[allow(unused_imports)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use support::e2e::{Ballast, Daemon, Declared};
use support::emulator::{Account, Emulator};
use support::proxy::FaultProxy;

const KILLS: usize = 20;
const TABLE: &str = "ballast-lease";
const STEADY: Duration = Duration::from_secs(120);

struct Replica {
    daemon: Daemon,
    _ballast: Ballast,
    dynamodb: FaultProxy,
    cloud: FaultProxy,
}

async fn start(account: &Account, declared: &Declared) -> Replica {
    let cloud = FaultProxy::start(&account.moto_url, 0).await;
    let dynamodb = FaultProxy::start(&account.moto_url, 0).await;
    let b = Ballast::via(account, &cloud.url, &account.bridge_url, declared)
        .with_env("AWS_ENDPOINT_URL_DYNAMODB", &dynamodb.url);
    let daemon = b.daemon(&["--lease-table", TABLE]).await;
    Replica { daemon, _ballast: b, dynamodb, cloud }
}

async fn leadership(r: &Replica) -> serde_json::Value {
    r.daemon.status().await["leadership"].clone()
}

fn time(v: &serde_json::Value) -> Option<SystemTime> {
    humantime::parse_rfc3339(v.as_str()?).ok()
}

/// Wait until `r` has read the lease (a standby that knows the holder).
async fn standing_by(r: &Replica) {
    r.daemon
        .wait_for(Duration::from_secs(60), "the new replica to read the lease", async |d| {
            let l = d.status().await["leadership"].clone();
            if l["holder"].is_string() && l["role"] == "standby" { Ok(()) } else { Err(l.to_string()) }
        })
        .await;
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let account = Emulator::shared().account().await;
    let actors = account.actors();
    let system = actors.seed(2).await;
    let declared = Declared::article(&system);
    let once = Ballast::new(&account, &declared);
    let apply = once.apply().await;
    assert_eq!(apply.code, 0, "the first apply converges: {apply}");
    account.create_lease_table(TABLE).await;

    let mut a = start(&account, &declared).await;
    a.daemon
        .wait_for(Duration::from_secs(60), "the first leader", async |d| {
            let st = d.status().await;
            if st["leadership"]["role"] == "leader" && st["passes"].as_u64() > Some(0) {
                Ok(())
            } else {
                Err(st["leadership"].to_string())
            }
        })
        .await;
    let mut b = start(&account, &declared).await;
    standing_by(&b).await;

    let mut failovers = Vec::new();
    let mut first_pass_writes = 0;
    for i in 0..KILLS {
        let a_leads = leadership(&a).await["role"] == "leader";
        let (leader, standby) = if a_leads { (&a, &b) } else { (&b, &a) };
        assert_eq!(leadership(standby).await["role"], "standby");
        // A random point of the leader's 5 s renew cycle.
        tokio::time::sleep(Duration::from_millis(rand::random_range(0..5000))).await;
        leader.daemon.kill();
        let killed = SystemTime::now();
        let writes_before = standby.cloud.writes().len();
        let finished = standby
            .daemon
            .wait_for(Duration::from_secs(60), "the new leader's first pass", async |d| {
                let st = d.status().await;
                let led = st["leadership"]["transitions"].as_array().and_then(|t| t.last()).cloned();
                let led_at = led.filter(|t| t["role"] == "leader").and_then(|t| time(&t["at"]));
                let pass_end = time(&st["lastPass"]["finishedAt"]);
                match (led_at, pass_end) {
                    (Some(l), Some(p)) if l > killed && p >= l => Ok(p),
                    _ => Err(st["leadership"].to_string()),
                }
            })
            .await;
        let took = finished.duration_since(killed).unwrap_or_default();
        first_pass_writes += standby.cloud.writes().len() - writes_before;
        eprintln!("failover {}: {:.2} s", i + 1, took.as_secs_f64());
        failovers.push(took);
        // ECS starts a replacement.
        let replacement = start(&account, &declared).await;
        standing_by(&replacement).await;
        if a_leads {
            a = replacement;
        } else {
            b = replacement;
        }
    }

    // Steady state: the lease calls of each.
    let (leader, standby) = if leadership(&a).await["role"] == "leader" { (&a, &b) } else { (&b, &a) };
    let (l0, s0) = (leader.dynamodb.calls().len(), standby.dynamodb.calls().len());
    let started = Instant::now();
    tokio::time::sleep(STEADY).await;
    let per_hour = |calls: &[support::proxy::Call]| -> BTreeMap<String, f64> {
        let mut m = BTreeMap::new();
        for c in calls {
            *m.entry(c.operation.clone()).or_insert(0.0) += 3600.0 / started.elapsed().as_secs_f64();
        }
        m
    };
    let leader_calls = per_hour(&leader.dynamodb.calls()[l0..]);
    let standby_calls = per_hour(&standby.dynamodb.calls()[s0..]);

    let mut sorted = failovers.clone();
    sorted.sort();
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    println!("## Leader election (`cargo bench --bench lease --profile dev`)\n");
    println!("| measure | value |\n|---|---|");
    println!("| failovers (kill -9 of the leader, 15 s lease) | {KILLS} |");
    println!("| kill → new leader's first completed pass, median | {} |", secs(percentile(&sorted, 0.5)));
    println!("| … min / max | {} / {} |", secs(sorted[0]), secs(*sorted.last().unwrap()));
    println!("| writes by the new leaders' first passes (converged system) | {first_pass_writes} |");
    let fmt = |m: &BTreeMap<String, f64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter().map(|(op, n)| format!("{op} {n:.0}")).collect::<Vec<_>>().join(", ")
        }
    };
    println!("| leader's lease calls per hour | {} |", fmt(&leader_calls));
    println!("| standby's lease calls per hour | {} |", fmt(&standby_calls));
    println!(
        "\nEach failover (s): {}",
        failovers.iter().map(|d| format!("{:.2}", d.as_secs_f64())).collect::<Vec<_>>().join(", ")
    );
}
