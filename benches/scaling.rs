//! Scaling comparison: ballast's CPU-alarm scaling against emulations of
//! ECS service target tracking and the Kubernetes HPA, on the simulated
//! cloud in virtual time.
//!
//! Each (trace, policy) pair gets a fresh `SimCloud` with the same seed and
//! config: one service (`appCluster/appService`, 2..20 tasks) on an Auto
//! Scaling group pinned at 20 instances (one task per instance, as with
//! the static host ports), so instances never limit placement and the
//! comparison is about task counts alone. Every 15 s of virtual time the
//! load follows the trace and the policy runs once; measured from t = 0
//! after a 20-minute warm-up at the trace's starting load.
//!
//! Run: `cargo bench --bench scaling` (release profile; a few seconds).

#[path = "scaling/emulations.rs"]
mod emulations;
#[path = "scaling/traces.rs"]
mod traces;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant, SystemTime};

use ballast::cloud::sim::{SimCloud, SimConfig};
use ballast::cloud::{Clock, Cloud, ManualClock, Scope};
use ballast::desired::{DesiredState, ServiceId, load_str};
use ballast::metrics::Metrics;
use ballast::observed::TaskStatus;
use ballast::plan::{Change, Memory, plan};

use emulations::{Hpa, HpaState, HpaView, TargetTracking, TargetTrackingState};
use traces::Trace;

const REGION: &str = "us-east-2";
const TICK: Duration = Duration::from_secs(15);
const WARMUP: Duration = Duration::from_secs(20 * 60);
const SEED: u64 = 20_240_601;
const MIN_TASKS: u32 = 2;
const MAX_TASKS: u32 = 20;
/// The CPU percent every policy aims for.
const TARGET_CPU: f64 = 60.0;
/// The CPU percent above which a minute counts as overloaded.
const HOT_CPU: f64 = 90.0;

/// The desired state ballast runs with, around a scaling block: one
/// service of 2..20 tasks, and a Capacity that pins the group at 20
/// instances (minInstances = maxInstances), so that the capacity planner
/// never moves it.
const DESIRED: &str = r#"
apiVersion: ballast.dev/v1alpha1
kind: Service
metadata:
  name: app
spec:
  region: us-east-2
  cluster: appCluster
  service: appService
  tasks:
    min: 2
    max: 20
  scaling:
    cpu:
SCALING
---
apiVersion: ballast.dev/v1alpha1
kind: Capacity
metadata:
  name: app-capacity
spec:
  region: us-east-2
  cluster: appCluster
  autoScalingGroup: ecsAutoScalingGroup
  minInstances: 20
  maxInstances: 20
  tasksPerInstance: 1
  zones:
    - subnet: subnet-0a1b2c3d4e5f60001
      zone: us-east-2a
"#;

/// A ballast scaling policy (the `spec.scaling.cpu` block), as a user
/// would declare it.
struct Variant {
    name: &'static str,
    why: &'static str,
    yaml: &'static str,
}

/// The policy in the headline tables: the one `desired-state/app.yaml`
/// ships, read from the file so that the tables always measure what users
/// start from.
static EXAMPLE: LazyLock<Variant> = LazyLock::new(|| {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../desired-state/app.yaml")).expect("desired-state/app.yaml is YAML");
    let cpu = &doc["spec"]["scaling"]["cpu"];
    assert!(cpu.is_mapping(), "desired-state/app.yaml declares spec.scaling.cpu");
    let block: String = serde_yaml::to_string(cpu)
        .expect("a YAML value serialises")
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    Variant {
        name: "example",
        why: "desired-state/app.yaml as shipped, read from the file",
        yaml: Box::leak(format!("\n{block}").into_boxed_str()),
    }
});

/// Every ballast policy measured: the shipped example, then the others.
fn ballast_policies() -> Vec<&'static Variant> {
    std::iter::once(&*EXAMPLE).chain(VARIANTS.iter()).collect()
}

/// Other policies a user might declare, for the sensitivity table.
const VARIANTS: &[Variant] = &[
    Variant {
        name: "suggested",
        why: "the issue's suggestion: out 1 min above 70 %, in 5 min below 40 %, cooldowns 1m / 5m",
        yaml: r#"
      targetCpu: 60
      tolerance: 0.1
      stabilizationWindow: 5m
      scaleOut: {threshold: 70, period: 1m, evaluationPeriods: 1, step: "50%", cooldown: 1m}
      scaleIn: {threshold: 40, period: 1m, evaluationPeriods: 5, step: "25%", cooldown: 5m}
"#,
    },
    Variant {
        name: "step, fast",
        why: "step scaling (no targetCpu, no CPU reads): out +50 % after 1 min above 66 % with a 2m cooldown, \
              in -25 % after 3 min below 54 %",
        yaml: r#"
      stabilizationWindow: 5m
      scaleOut: {threshold: 66, period: 1m, evaluationPeriods: 1, step: "50%", cooldown: 2m}
      scaleIn: {threshold: 54, period: 1m, evaluationPeriods: 3, step: "25%", cooldown: 1m}
"#,
    },
    Variant {
        name: "step, slow",
        why: "the first shipped example: step scaling (no targetCpu), out +50 % after 3 min above 70 %, \
              in -1 after 15 min below 30 %",
        yaml: r#"
      missingData: missing
      scaleOut: {threshold: 70, period: 1m, evaluationPeriods: 3, step: "50%", cooldown: 3m}
      scaleIn: {threshold: 30, period: 1m, evaluationPeriods: 15, step: 1, cooldown: 5m}
"#,
    },
];

fn desired_for(variant: &Variant) -> DesiredState {
    let text = DESIRED.replace("SCALING\n", variant.yaml.trim_start_matches('\n'));
    load_str("scaling-bench.yaml", &text, REGION).unwrap_or_else(|e| panic!("variant {}: {e}", variant.name))
}

/// The scaling policies compared.
#[derive(Clone, Copy)]
enum Policy {
    /// Ballast's real planner with this declared policy.
    Ballast(&'static Variant),
    TargetTracking,
    Hpa,
}

impl Policy {
    fn headline() -> [Policy; 3] {
        [Policy::Ballast(&EXAMPLE), Policy::TargetTracking, Policy::Hpa]
    }

    fn name(self) -> String {
        match self {
            Policy::Ballast(v) if v.name == EXAMPLE.name => "ballast".into(),
            Policy::Ballast(v) => format!("ballast ({})", v.name),
            Policy::TargetTracking => "ECS target tracking".into(),
            Policy::Hpa => "HPA".into(),
        }
    }

    fn mark(self) -> char {
        match self {
            Policy::Ballast(_) => 'B',
            Policy::TargetTracking => 'T',
            Policy::Hpa => 'H',
        }
    }

    fn is(self, other: Policy) -> bool {
        match (self, other) {
            (Policy::Ballast(a), Policy::Ballast(b)) => a.name == b.name,
            (Policy::TargetTracking, Policy::TargetTracking) | (Policy::Hpa, Policy::Hpa) => true,
            _ => false,
        }
    }
}

/// A policy's state between ticks.
enum Runner {
    Ballast { desired: Box<DesiredState>, scope: Scope, memory: Memory },
    TargetTracking { cfg: TargetTracking, state: TargetTrackingState },
    Hpa { cfg: Hpa, state: HpaState },
}

/// One applied desired-count change.
#[derive(Debug, Clone)]
struct Action {
    /// Seconds since the trace started (negative during the warm-up).
    t: i64,
    from: u32,
    to: u32,
    why: String,
}

/// The state sampled once per tick, after the policy ran.
#[derive(Debug, Clone, Copy)]
struct Sample {
    t: i64,
    load: f64,
    running: u32,
}

/// Everything one (trace, policy) run produced.
struct Run {
    policy: Policy,
    samples: Vec<Sample>,
    actions: Vec<Action>,
    /// (seconds since start of the datapoint's period, average CPU).
    datapoints: Vec<(i64, f64)>,
    /// Ballast's decision reasons per tick, for the report.
    reasons: BTreeMap<&'static str, usize>,
}

/// The measured numbers of one run.
#[derive(Debug, Clone, Copy)]
struct Score {
    task_minutes: f64,
    hot_minutes: usize,
    /// Seconds from the step to the first applied scale-out.
    reaction: Option<i64>,
    actions: usize,
    peak_tasks: u32,
    /// Share of requests beyond what the running tasks could serve at 100 % CPU.
    overload_pct: f64,
    mean_cpu: f64,
}

fn service_id() -> ServiceId {
    ServiceId { region: REGION.into(), cluster: "appCluster".into(), service: "appService".into() }
}

/// Seconds between two instants, signed.
fn secs_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Run one policy on one trace.
fn run(trace: &Trace, policy: Policy, rt: &tokio::runtime::Runtime) -> Run {
    // The same world for every policy: only the scaling block differs
    // between variants, and the simulation does not read it.
    let world = desired_for(&EXAMPLE);
    let clock = Arc::new(ManualClock::new());
    let config = SimConfig::default();
    let (cpu_per_rps, period) = (config.cpu_per_rps, config.metric_period);
    let sim = SimCloud::from_desired(&world, false, clock.clone(), SEED, Arc::new(Metrics::new()), config);
    let id = service_id();
    let start = clock.now() + WARMUP;

    // Every policy starts from the count the starting load needs at the target.
    let initial = ((trace.load(Duration::ZERO) * cpu_per_rps / TARGET_CPU).ceil() as u32).clamp(MIN_TASKS, MAX_TASKS);
    sim.set_desired_count(&id, initial).expect("the service exists");

    let mut runner = match policy {
        Policy::Ballast(variant) => {
            let desired = desired_for(variant);
            Runner::Ballast { scope: Scope::of(&desired), desired: Box::new(desired), memory: Memory::default() }
        }
        Policy::TargetTracking => Runner::TargetTracking {
            cfg: TargetTracking::aws_defaults(TARGET_CPU, MIN_TASKS, MAX_TASKS),
            state: TargetTrackingState::default(),
        },
        Policy::Hpa => {
            Runner::Hpa { cfg: Hpa::k8s_defaults(TARGET_CPU, MIN_TASKS, MAX_TASKS), state: HpaState::default() }
        }
    };

    let mut out =
        Run { policy, samples: Vec::new(), actions: Vec::new(), datapoints: Vec::new(), reasons: BTreeMap::new() };
    // (time, running tasks) after each tick: which tasks a datapoint covers.
    let mut running_history: Vec<(SystemTime, u32)> = Vec::new();
    let mut last_datapoint: Option<SystemTime> = None;
    let ticks = (WARMUP + trace.duration).as_secs() / TICK.as_secs();
    for _ in 0..ticks {
        let now = clock.now();
        let rel = secs_between(start, now);
        let load = trace.load(Duration::from_secs(rel.max(0) as u64));
        sim.set_load(&id, load).expect("the service exists");

        let latest = sim.cpu(&id);
        let fresh = latest.filter(|dp| Some(dp.at) != last_datapoint);
        if let Some(dp) = fresh {
            last_datapoint = Some(dp.at);
            out.datapoints.push((secs_between(start, dp.at), dp.value));
        }
        let svc = sim.service(&id).expect("the service exists");
        let current = svc.desired_count;

        let decision: Option<(u32, String)> = match &mut runner {
            Runner::Ballast { desired, scope, memory } => {
                let observed = rt.block_on(sim.observe(scope)).expect("the simulation is reachable");
                let mut p = plan(desired, &observed, std::mem::take(memory), now);
                *memory = std::mem::take(&mut p.memory);
                if let Some(d) = p.decisions.get(&id).filter(|_| rel >= 0) {
                    *out.reasons.entry(d.reason.as_str()).or_default() += 1;
                }
                // Like a controller pass: apply in order, record each applied change.
                for pc in &p.changes {
                    rt.block_on(sim.apply(&pc.change)).expect("the simulation accepts the change");
                    memory.record_applied(&pc.change, now);
                    if let Change::SetDesiredCount { from, to, .. } = &pc.change {
                        out.actions.push(Action { t: rel, from: *from, to: *to, why: pc.reason.clone() });
                    }
                }
                None
            }
            Runner::TargetTracking { cfg, state } => fresh.and_then(|dp| {
                state.datapoints.push_back((dp.at, dp.value));
                while state.datapoints.len() > 60 {
                    state.datapoints.pop_front();
                }
                emulations::target_tracking(cfg, state, current, period, now)
                    .map(|to| (to, format!("metric {:.1}% -> {to}", dp.value)))
            }),
            Runner::Hpa { cfg, state } => {
                let pods = svc
                    .tasks
                    .iter()
                    .filter(|t| t.desired_status == TaskStatus::Running && t.last_status <= TaskStatus::Running)
                    .count() as u32;
                // The tasks that ran through the whole period of the datapoint.
                let measured = latest.map_or(0, |dp| {
                    running_history
                        .iter()
                        .filter(|(t, _)| *t >= dp.at && *t < dp.at + period)
                        .map(|(_, n)| *n)
                        .min()
                        .unwrap_or(0)
                });
                let view = HpaView { current, pods, measured, cpu: latest.map(|dp| dp.value) };
                let to = emulations::hpa(cfg, state, view, now);
                (to != current).then(|| {
                    (to, format!("cpu {:.1}% over {measured} of {pods} tasks -> {to}", view.cpu.unwrap_or_default()))
                })
            }
        };
        if let Some((to, why)) = decision {
            let change = Change::SetDesiredCount { service: id.clone(), from: current, to };
            rt.block_on(sim.apply(&change)).expect("the simulation accepts the change");
            out.actions.push(Action { t: rel, from: current, to, why });
        }

        let svc = sim.service(&id).expect("the service exists");
        running_history.push((now, svc.running_count));
        running_history.retain(|(t, _)| now.duration_since(*t).unwrap_or_default() < Duration::from_secs(300));
        out.samples.push(Sample { t: rel, load, running: svc.running_count });
        clock.advance(TICK);
    }
    out
}

fn score(trace: &Trace, run: &Run, cpu_per_rps: f64) -> Score {
    let end = trace.duration.as_secs() as i64;
    let measured: Vec<&Sample> = run.samples.iter().filter(|s| s.t >= 0 && s.t < end).collect();
    let tick_min = TICK.as_secs_f64() / 60.0;
    let task_minutes = measured.iter().map(|s| f64::from(s.running) * tick_min).sum();
    let (mut served, mut excess) = (0.0, 0.0);
    for s in &measured {
        let capacity = f64::from(s.running) * 100.0 / cpu_per_rps;
        excess += (s.load - capacity).max(0.0);
        served += s.load;
    }
    let dps: Vec<f64> = run.datapoints.iter().filter(|(t, _)| *t >= 0 && *t < end).map(|(_, v)| *v).collect();
    let reaction = trace.step_at().and_then(|at| {
        let at = at.as_secs() as i64;
        run.actions.iter().find(|a| a.t >= at && a.to > a.from).map(|a| a.t - at)
    });
    Score {
        task_minutes,
        hot_minutes: dps.iter().filter(|v| **v > HOT_CPU).count(),
        reaction,
        actions: run.actions.iter().filter(|a| a.t >= 0 && a.t < end).count(),
        peak_tasks: measured.iter().map(|s| s.running).max().unwrap_or(0),
        overload_pct: if served > 0.0 { 100.0 * excess / served } else { 0.0 },
        mean_cpu: if dps.is_empty() { 0.0 } else { dps.iter().sum::<f64>() / dps.len() as f64 },
    }
}

fn fmt_reaction(r: Option<i64>, has_step: bool) -> String {
    match (r, has_step) {
        (_, false) => "n/a".into(),
        (None, true) => "never".into(),
        (Some(s), true) => format!("{s} s"),
    }
}

/// A Markdown table of one trace's scores.
fn table(trace: &Trace, scores: &[(Policy, Score)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| policy | task-minutes | minutes CPU > 90 % | reaction to the step | scaling actions | peak tasks | requests over capacity | mean CPU |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (p, sc) in scores {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {} | {} | {:.2} % | {:.1} % |",
            p.name(),
            sc.task_minutes,
            sc.hot_minutes,
            fmt_reaction(sc.reaction, trace.step_at().is_some()),
            sc.actions,
            sc.peak_tasks,
            sc.overload_pct,
            sc.mean_cpu
        );
    }
    s
}

/// An ASCII chart of the tasks each policy runs over the trace, with the
/// tasks the load needs at the target CPU (`.`) for reference.
fn chart(trace: &Trace, runs: &[Run], cpu_per_rps: f64) -> String {
    const COLS: usize = 72;
    const ROWS: u32 = 10; // two tasks per row
    let end = trace.duration.as_secs() as i64;
    let bucket = (end as f64 / COLS as f64).max(1.0);
    // Column-major: one cell per row (two tasks each) per time bucket.
    let mut columns = vec![[' '; ROWS as usize + 1]; COLS];
    let row_of = |tasks: f64| ((tasks / 2.0).round() as u32).min(ROWS) as usize;
    let column_mean = |run: &Run, col: usize, f: &dyn Fn(&Sample) -> f64| {
        let (lo, hi) = ((col as f64 * bucket) as i64, ((col + 1) as f64 * bucket) as i64);
        let v: Vec<f64> = run.samples.iter().filter(|s| s.t >= lo && s.t < hi).map(f).collect();
        if v.is_empty() { None } else { Some(v.iter().sum::<f64>() / v.len() as f64) }
    };
    for (col, cells) in columns.iter_mut().enumerate() {
        if let Some(needed) = column_mean(&runs[0], col, &|s| (s.load * cpu_per_rps / TARGET_CPU).ceil()) {
            cells[row_of(needed)] = '.';
        }
        for run in runs {
            if let Some(tasks) = column_mean(run, col, &|s| f64::from(s.running)) {
                let cell = &mut cells[row_of(tasks)];
                *cell = if *cell == ' ' || *cell == '.' { run.policy.mark() } else { '*' };
            }
        }
    }
    let mut s = String::new();
    for r in (0..=ROWS as usize).rev() {
        let label = if r % 2 == 0 { format!("{:>3}", r * 2) } else { "   ".into() };
        let row: String = columns.iter().map(|c| c[r]).collect();
        let _ = writeln!(s, "{label} |{}", row.trim_end());
    }
    let _ = writeln!(s, "    +{}", "-".repeat(COLS));
    let minutes = end / 60;
    let _ = writeln!(
        s,
        "     0{:>width$} min   (B ballast, T target tracking, H HPA, * several, . tasks needed at 60 %)",
        minutes,
        width = COLS - 1
    );
    s
}

fn main() {
    emulations::self_check();
    let cpu_per_rps = SimConfig::default().cpu_per_rps;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime");
    let started = Instant::now();
    let traces = traces::all();

    println!("ballast's policy (`spec.scaling.cpu`): {}\n\n```yaml{}```\n", EXAMPLE.why, EXAMPLE.yaml);
    let mut summary: Vec<(&'static str, Vec<(Policy, Score)>)> = Vec::new();
    for trace in &traces {
        let runs: Vec<Run> = Policy::headline().iter().map(|&p| run(trace, p, &rt)).collect();
        let scores: Vec<(Policy, Score)> = runs.iter().map(|r| (r.policy, score(trace, r, cpu_per_rps))).collect();
        println!("### Trace `{}`\n\n{}\n", trace.name, trace.description);
        println!("{}", table(trace, &scores));
        println!("```text\n{}```\n", chart(trace, &runs, cpu_per_rps));
        for r in runs.iter().filter(|r| matches!(r.policy, Policy::Ballast(_))) {
            let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("ballast's decisions per tick: {}\n", reasons.join(", "));
        }
        if trace.step_at().is_some() {
            println!("Scaling actions on the step trace (t in minutes):\n\n```text");
            for r in &runs {
                for a in r.actions.iter().filter(|a| a.t >= 0) {
                    let name = r.policy.name();
                    println!("{name:<20} t={:>6.2}  {:>2} -> {:<2}  {}", a.t as f64 / 60.0, a.from, a.to, a.why);
                }
            }
            println!("```\n");
        }
        summary.push((trace.name, scores));
    }

    println!("### Other ballast policies\n");
    println!("The same runs with other declared policies (task-minutes / minutes CPU > 90 % / scaling actions):\n");
    let mut head = String::from("| policy |");
    for trace in &traces {
        let _ = write!(head, " {} |", trace.name);
    }
    println!("{head} step reaction |\n|---|{}---:|", "---:|".repeat(traces.len()));
    let others = ballast_policies().into_iter().map(Policy::Ballast);
    for policy in others.chain([Policy::TargetTracking, Policy::Hpa]) {
        let mut row = format!("| {} |", policy.name());
        let mut reaction = None;
        for trace in &traces {
            let sc = score(trace, &run(trace, policy, &rt), cpu_per_rps);
            let _ = write!(row, " {:.0} / {} / {} |", sc.task_minutes, sc.hot_minutes, sc.actions);
            reaction = reaction.or(sc.reaction);
        }
        println!("{row} {} |", fmt_reaction(reaction, true));
    }
    println!();
    for v in ballast_policies() {
        println!("- `{}`: {}", Policy::Ballast(v).name(), v.why);
    }
    println!();

    println!("### Summary: ballast against the goals (ECS target tracking as the baseline)\n\n```text");
    println!("{:<8} {:>26} {:>24} {:>24}", "trace", "task-minutes B / T", "minutes >90% B / T", "step reaction B / T");
    for (name, scores) in &summary {
        let get = |p: Policy| scores.iter().find(|(q, _)| q.is(p)).map(|(_, s)| *s).expect("every policy ran");
        let (b, t) = (get(Policy::Ballast(&EXAMPLE)), get(Policy::TargetTracking));
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let hot = if b.hot_minutes == 0 && t.hot_minutes == 0 { "tie" } else { verdict(b.hot_minutes < t.hot_minutes) };
        let reaction = match (b.reaction, t.reaction) {
            (Some(rb), Some(rt)) => format!("{rb} s / {rt} s {}", verdict(rb <= 60)),
            _ => "n/a".into(),
        };
        println!(
            "{:<8} {:>26} {:>24} {:>24}",
            name,
            format!("{:.0} / {:.0} {}", b.task_minutes, t.task_minutes, verdict(b.task_minutes <= t.task_minutes)),
            format!("{} / {} {hot}", b.hot_minutes, t.hot_minutes),
            reaction
        );
    }
    println!("```\n");
    println!("(simulated in {:.1} s of wall time)", started.elapsed().as_secs_f64());
}
