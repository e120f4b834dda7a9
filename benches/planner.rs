//! Planner benchmark: a full plan of 10,000 converged services with two
//! target groups of four targets each. Prints the median and worst plan
//! time, allocations per plan, and the process's peak memory.
//!
//! Run: `cargo bench --bench planner` (release profile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ballast::desired::*;
use ballast::observed::*;
use ballast::plan::{Memory, plan};

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const REGION: &str = "us-east-2";

fn build(n: usize) -> (DesiredState, Observed) {
    let mut desired = DesiredState::default();
    let mut observed = Observed::default();
    for i in 0..n {
        let id =
            ServiceId { region: REGION.into(), cluster: format!("cluster{}", i / 1000), service: format!("svc{i}") };
        let mut bindings = Vec::new();
        let tasks: Vec<ObservedTask> = (0..4)
            .map(|t| ObservedTask {
                arn: format!("arn:aws:ecs:{REGION}:1:task/c/{i}-{t}"),
                last_status: TaskStatus::Running,
                desired_status: TaskStatus::Running,
                instance_id: Some(format!("i-{i}-{t}")),
                private_ip: None,
                bindings: vec![
                    PortBinding { container_name: "app".into(), container_port: 80, host_port: 80 },
                    PortBinding { container_name: "app".into(), container_port: 8000, host_port: 8000 },
                ],
                started_at: None,
                // Protected for an hour past the bench's `now`: nothing to renew.
                protected_until: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_003_600)),
                started_by: None,
            })
            .collect();
        for port in [80u16, 8000] {
            let tg =
                TargetGroupId { region: REGION.into(), target_group: TargetGroupRef::Name(format!("tg-{i}-{port}")) };
            bindings.push(TargetGroupBinding {
                target_group: tg.clone(),
                container_name: "app".into(),
                container_port: port,
                target_type: TargetType::Instance,
                ownership: Ownership::Shared,
                min_healthy: None,
                propagation_lag: ballast::desired::DEFAULT_PROPAGATION_LAG,
            });
            observed.target_groups.insert(
                tg,
                Ok(ObservedTargetGroup {
                    arn: format!("arn:aws:elasticloadbalancing:{REGION}:1:targetgroup/tg-{i}-{port}/x"),
                    name: format!("tg-{i}-{port}"),
                    target_type: TargetGroupType::Instance,
                    port: Some(port),
                    targets: (0..4)
                        .map(|t| ObservedTarget {
                            target: Target { id: format!("i-{i}-{t}"), port },
                            health: TargetHealth::Healthy,
                        })
                        .collect(),
                }),
            );
        }
        observed.services.insert(
            id.clone(),
            Ok(ObservedService {
                arn: format!("arn:svc/{i}"),
                status: ServiceStatus::Active,
                desired_count: 4,
                running_count: 4,
                pending_count: 0,
                deploying: false,
                task_definition: "td:1".into(),
                task_size: None,
                load_balancer_target_groups: vec![],
                scalable_target: false,
                tasks,
                scaling_marks: Default::default(),
                protection: ProtectionRead::Read,
                primary_deployment: None,
                maximum_percent: None,
                surge_mark: None,
            }),
        );
        desired.services.push(Service {
            name: format!("svc{i}"),
            origin: Origin { file: PathBuf::from("bench.yaml"), line: 1 },
            id,
            suspend: false,
            tasks: TaskCount::Fixed(4),
            target_groups: bindings,
            scaling: None,
            budget: ServiceBudget::default(),
            take_over: ServiceTakeOver::default(),
        });
    }
    (desired, observed)
}

fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let n = 10_000;
    let (desired, observed) = build(n);
    let rss_inputs = peak_rss_mib();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let memory = Memory::default();
    // Warm up: the first pass fills the memory's per-field entries.
    let p = plan(&desired, &observed, memory, now);
    assert!(p.changes.is_empty(), "the benchmark state must be converged");
    let mut memory = p.memory;

    let mut times = Vec::new();
    let mut allocs = Vec::new();
    for _ in 0..25 {
        let a0 = ALLOCS.load(Ordering::Relaxed);
        let t = Instant::now();
        let mut p = plan(&desired, &observed, std::mem::take(&mut memory), now);
        let el = t.elapsed();
        memory = std::mem::take(&mut p.memory);
        allocs.push(ALLOCS.load(Ordering::Relaxed) - a0);
        times.push(el);
        assert!(p.changes.is_empty());
        drop(p);
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    let allocs_per_plan = allocs[allocs.len() / 2];
    println!(
        "| services | median plan | worst plan | allocations per plan | per service | peak RSS (inputs) | peak RSS (total) |"
    );
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| {n} | {:.1} ms | {:.1} ms | {allocs_per_plan} | {:.1} | {:.0} MiB | {:.0} MiB |",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3,
        allocs_per_plan as f64 / n as f64,
        rss_inputs,
        peak_rss_mib()
    );
}
