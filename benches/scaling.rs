//! Scaling comparison: ballast's CPU-alarm scaling against emulations of
//! ECS service target tracking and the Kubernetes HPA, on the simulated
//! cloud in virtual time, with the same engine as `ballast replay`
//! (`ballast::simulate::replay`): the real controller pass after pass for
//! ballast, the peers' emulations (`ballast::simulate::peers`) for the
//! others.
//!
//! Each (trace, policy) pair gets a fresh `SimCloud` with the same seed and
//! config: one service (`appCluster/appService`, 2..20 tasks) on an Auto
//! Scaling group pinned at 20 instances (tests/fixtures/replay/bench-world),
//! so instances never limit placement and the comparison is about task
//! counts alone. The load follows the trace in 15 s steps; measured from
//! t = 0 after a 20-minute warm-up at the trace's starting load.
//!
//! Run: `cargo bench --bench scaling` (release profile; a few seconds).
//! `cargo bench --bench scaling -- --export DIR` also writes each trace as
//! a history CSV (`ballast replay --csv`), with target tracking's tasks as
//! what happened.
//!
//! `cargo bench --bench scaling -- --goals` measures issue 17's goals
//! instead: on the three traces and on every history under
//! `tests/fixtures/replay/` (`invented/`, `held-out/`), the shipped policy
//! against target tracking and the HPA, one line per history with the
//! verdict (task-minutes no more than the HPA's, minutes above 90 % and
//! actions no more than target tracking's). `--variant NAME` (repeatable)
//! adds a policy of benches/scaling-variants.yaml to the lines; `--only
//! HISTORY` keeps the named histories (like `invented/square`); `--show
//! HISTORY` prints every policy's actions and hot minutes there (stderr).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use ballast::cloud::sim::SimConfig;
use ballast::desired::{DesiredState, load_str};
use ballast::simulate::history::History;
use ballast::simulate::replay::{self, Policy, Run, Score, Setup};
use ballast::simulate::traces::{self, Trace};

const REGION: &str = "us-east-2";
const TICK: Duration = Duration::from_secs(15);
const WARMUP: Duration = Duration::from_secs(20 * 60);
/// `ballast replay`'s seed, so that a replay of an exported trace gives
/// the same figures.
const SEED: u64 = 1;
/// The CPU percent every policy aims for.
const TARGET_CPU: f64 = 60.0;

/// The benchmark's world with its scaling block; a variant's block
/// replaces it.
const WORLD: &str = include_str!("../tests/fixtures/replay/bench-world/app.yaml");

/// A ballast scaling policy (the `spec.scaling.cpu` block), as a user
/// would declare it.
struct Variant {
    name: String,
    why: String,
    /// The `cpu` block, indented as under `spec.scaling:` in the world.
    yaml: String,
}

/// A policy from its `spec.scaling.cpu` mapping.
fn variant(name: impl Into<String>, why: impl Into<String>, cpu: &serde_yaml::Value) -> Variant {
    assert!(cpu.is_mapping(), "a scaling policy is a mapping: {cpu:?}");
    let yaml = serde_yaml::to_string(cpu)
        .expect("a YAML value serialises")
        .lines()
        .map(|line| format!("      {line}\n"))
        .collect();
    Variant { name: name.into(), why: why.into(), yaml }
}

/// The policy in the headline tables: the one `desired-state/app.yaml`
/// ships, read from the file so that the tables always measure what users
/// start from.
static EXAMPLE: LazyLock<Variant> = LazyLock::new(|| {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(include_str!("../desired-state/app.yaml")).expect("desired-state/app.yaml is YAML");
    variant("example", "desired-state/app.yaml as shipped, read from the file", &doc["spec"]["scaling"]["cpu"])
});

/// Every ballast policy measured: the shipped example, then the others.
fn ballast_policies() -> Vec<&'static Variant> {
    std::iter::once(&*EXAMPLE).chain(VARIANTS.iter()).collect()
}

/// Other policies a user might declare, for the sensitivity table
/// (benches/scaling-variants.yaml).
static VARIANTS: LazyLock<Vec<Variant>> = LazyLock::new(|| {
    #[derive(serde::Deserialize)]
    struct Declared {
        name: String,
        why: String,
        cpu: serde_yaml::Value,
    }
    let declared: Vec<Declared> =
        serde_yaml::from_str(include_str!("scaling-variants.yaml")).expect("benches/scaling-variants.yaml");
    declared.into_iter().map(|d| variant(d.name, d.why, &d.cpu)).collect()
});

fn desired_for(variant: &Variant) -> DesiredState {
    let (before, after) = WORLD.split_once("  scaling:\n").expect("the world declares scaling");
    let (_, after) = after.split_once("\n---\n").expect("the world has a Capacity after the Service");
    let text = format!("{before}  scaling:\n    cpu:\n{}---\n{after}", variant.yaml.trim_start_matches('\n'));
    load_str("scaling-bench.yaml", &text, REGION).unwrap_or_else(|e| panic!("variant {}: {e}", variant.name))
}

fn policy_name(v: &Variant) -> String {
    if v.name == EXAMPLE.name { "ballast".into() } else { format!("ballast ({})", v.name) }
}

fn ballast(v: &Variant) -> Policy {
    Policy::Ballast { name: policy_name(v), desired: Box::new(desired_for(v)) }
}

/// The headline policies: the shipped ballast policy, target tracking, the HPA.
fn headline(setup: &Setup) -> Vec<Policy> {
    let world = desired_for(&EXAMPLE);
    let mut policies = vec![ballast(&EXAMPLE)];
    policies.extend(Policy::peers(&world, &setup.service));
    policies
}

fn mark(run: &Run) -> char {
    match run.policy.as_str() {
        "ECS target tracking" => 'T',
        "HPA" => 'H',
        _ => 'B',
    }
}

/// The setup of one trace: the load in 15 s steps on the benchmark's world.
fn setup(trace: &Trace) -> Setup {
    let world = desired_for(&EXAMPLE);
    Setup {
        service: world.services[0].id.clone(),
        load: trace.points(TICK),
        duration: trace.duration,
        warmup: WARMUP,
        interval: TICK,
        seed: SEED,
        config: SimConfig::default(),
        target_cpu: TARGET_CPU,
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
fn table(setup: &Setup, scores: &[(String, Score)]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "| policy | task-minutes | minutes CPU > 90 % | reaction to the step | scaling actions | peak tasks | requests over capacity | mean CPU |"
    );
    let _ = writeln!(s, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for (name, sc) in scores {
        let _ = writeln!(
            s,
            "| {} | {:.0} | {} | {} | {} | {} | {:.2} % | {:.1} % |",
            name,
            sc.task_minutes,
            sc.minutes_cpu_above90,
            fmt_reaction(sc.reaction_seconds, setup.largest_step().is_some()),
            sc.scaling_actions,
            sc.peak_tasks,
            sc.overload_percent,
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
    let column_mean = |run: &Run, col: usize, f: &dyn Fn(&replay::Sample) -> f64| {
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
                *cell = if *cell == ' ' || *cell == '.' { mark(run) } else { '*' };
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

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().build().expect("a tokio runtime").block_on(f)
}

/// A history of `tests/fixtures/replay/`, replayed as `ballast replay
/// --csv FILE tests/fixtures/replay/bench-world` replays it.
fn history_setup(path: &std::path::Path) -> Setup {
    let history = History::read_csv(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let world = desired_for(&EXAMPLE);
    Setup::for_history(&history, world.services[0].id.clone(), TARGET_CPU)
}

/// Issue 17's goals, one line per history (see the module's doc).
fn goals(variants: &[String], show: &[String], only: &[String]) {
    let started = Instant::now();
    let mut histories: Vec<(String, Setup)> = traces::all().iter().map(|t| (t.name.to_string(), setup(t))).collect();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/replay");
    for dir in ["invented", "held-out"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "csv"))
            .collect();
        paths.sort();
        for p in paths {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            histories.push((format!("{dir}/{stem}"), history_setup(&p)));
        }
    }
    let extra: Vec<&Variant> = variants
        .iter()
        .map(|n| VARIANTS.iter().find(|v| &v.name == n).unwrap_or_else(|| panic!("no variant named {n:?}")))
        .collect();
    println!("task-minutes / minutes CPU > 90 % / scaling actions; goals: tm <= HPA, hot <= TT, actions <= TT\n");
    let mut head = format!("| {:<24} | {:>17} | {:>17} | {:>17} |", "history", "ballast", "target tracking", "HPA");
    for v in &extra {
        let _ = write!(head, " {:>17} |", v.name);
    }
    println!("{head} goals (ballast) |");
    let fmt = |s: &Score| format!("{:.0} / {} / {}", s.task_minutes, s.minutes_cpu_above90, s.scaling_actions);
    let verdict = |b: &Score, t: &Score, h: &Score| {
        let mut missed = Vec::new();
        if b.task_minutes > h.task_minutes {
            missed.push(format!("tm {:.0} > {:.0}", b.task_minutes, h.task_minutes));
        }
        if b.minutes_cpu_above90 > t.minutes_cpu_above90 {
            missed.push(format!("hot {} > {}", b.minutes_cpu_above90, t.minutes_cpu_above90));
        }
        if b.scaling_actions > t.scaling_actions {
            missed.push(format!("actions {} > {}", b.scaling_actions, t.scaling_actions));
        }
        if missed.is_empty() { "all met".to_string() } else { missed.join(", ") }
    };
    for (name, setup) in histories.iter().filter(|(n, _)| only.is_empty() || only.contains(n)) {
        let mut policies = headline(setup);
        policies.extend(extra.iter().map(|v| ballast(v)));
        let runs: Vec<Run> = policies.iter().map(|p| block_on(replay::run(setup, p))).collect();
        if show.iter().any(|s| s == name) {
            for r in &runs {
                for a in r.actions.iter().filter(|a| a.t >= 0) {
                    eprintln!(
                        "{name} {:<20} t={:>7.2} {:>2} -> {:<2} {}",
                        r.policy,
                        a.t as f64 / 60.0,
                        a.from,
                        a.to,
                        a.why
                    );
                }
                for (t, v) in r.datapoints.iter().filter(|(t, v)| *t >= 0 && *v > replay::HOT_CPU) {
                    eprintln!("{name} {:<20} hot minute at t={:>7.2}: {v:.1} %", r.policy, *t as f64 / 60.0);
                }
            }
        }
        let scores: Vec<Score> = runs.iter().map(|r| replay::score(setup, r)).collect();
        let (b, t, h) = (&scores[0], &scores[1], &scores[2]);
        let mut line = format!("| {:<24} | {:>17} | {:>17} | {:>17} |", name, fmt(b), fmt(t), fmt(h));
        for s in &scores[3..] {
            let _ = write!(line, " {} ({}) |", fmt(s), verdict(s, t, h));
        }
        println!("{line} {} |", verdict(b, t, h));
    }
    println!("\n(simulated in {:.1} s of wall time)", started.elapsed().as_secs_f64());
}

fn main() {
    {
        let args: Vec<String> = std::env::args().collect();
        if args.iter().any(|a| a == "--goals") {
            let variants: Vec<String> = args.windows(2).filter(|w| w[0] == "--variant").map(|w| w[1].clone()).collect();
            let named = |flag: &str| -> Vec<String> {
                args.windows(2).filter(|w| w[0] == flag).map(|w| w[1].clone()).collect()
            };
            goals(&variants, &named("--show"), &named("--only"));
            return;
        }
    }
    let export: Option<std::path::PathBuf> = {
        let args: Vec<String> = std::env::args().collect();
        args.iter().position(|a| a == "--export").and_then(|i| args.get(i + 1)).map(Into::into)
    };
    let cpu_per_rps = SimConfig::default().cpu_per_rps;
    let started = Instant::now();
    let traces = traces::all();

    println!("ballast's policy (`spec.scaling.cpu`): {}\n\n```yaml{}```\n", EXAMPLE.why, EXAMPLE.yaml);
    let mut summary: Vec<(&'static str, Vec<(String, Score)>)> = Vec::new();
    for trace in &traces {
        let setup = setup(trace);
        let runs: Vec<Run> = headline(&setup).iter().map(|p| block_on(replay::run(&setup, p))).collect();
        let scores: Vec<(String, Score)> = runs.iter().map(|r| (r.policy.clone(), replay::score(&setup, r))).collect();
        if let Some(dir) = &export {
            let tt = runs.iter().find(|r| mark(r) == 'T').expect("target tracking ran");
            let path = dir.join(format!("{}.csv", trace.name));
            std::fs::write(&path, trace.history(tt, cpu_per_rps).to_csv()).expect("the export directory is writable");
        }
        let step = setup.largest_step();
        println!("### Trace `{}`\n\n{}\n", trace.name, trace.description);
        if let Some(at) = step {
            println!("Largest step of the load: at {} min.\n", at.as_secs() / 60);
        }
        println!("{}", table(&setup, &scores));
        println!("```text\n{}```\n", chart(trace, &runs, cpu_per_rps));
        for r in runs.iter().filter(|r| mark(r) == 'B') {
            let reasons: Vec<String> = r.reasons.iter().map(|(k, v)| format!("{k} {v}")).collect();
            println!("ballast's decisions per pass: {}\n", reasons.join(", "));
        }
        if trace.name == "step" {
            println!("Scaling actions on the step trace (t in minutes):\n\n```text");
            for r in &runs {
                for a in r.actions.iter().filter(|a| a.t >= 0) {
                    println!("{:<20} t={:>6.2}  {:>2} -> {:<2}  {}", r.policy, a.t as f64 / 60.0, a.from, a.to, a.why);
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
    let mut rows: BTreeMap<usize, (String, String, Option<i64>)> = BTreeMap::new();
    for trace in &traces {
        let setup = setup(trace);
        let mut policies: Vec<Policy> = ballast_policies().into_iter().map(ballast).collect();
        policies.extend(headline(&setup).into_iter().skip(1));
        for (i, p) in policies.iter().enumerate() {
            let sc = replay::score(&setup, &block_on(replay::run(&setup, p)));
            let row = rows.entry(i).or_insert_with(|| (p.name(), String::new(), None));
            let _ = write!(row.1, " {:.0} / {} / {} |", sc.task_minutes, sc.minutes_cpu_above90, sc.scaling_actions);
            if trace.name == "step" {
                row.2 = sc.reaction_seconds;
            }
        }
    }
    for (name, cells, reaction) in rows.values() {
        println!("| {name} |{cells} {} |", fmt_reaction(*reaction, true));
    }
    println!();
    for v in ballast_policies() {
        println!("- `{}`: {}", policy_name(v), v.why);
    }
    println!();

    println!("### Summary: ballast against its peers\n\n```text");
    println!(
        "{:<8} {:>28} {:>26} {:>24}",
        "trace", "task-minutes B / HPA", "minutes >90% B / T", "scaling actions B / T"
    );
    for (name, scores) in &summary {
        let get = |p: &str| scores.iter().find(|(q, _)| q == p).map(|(_, s)| *s).expect("every policy ran");
        let (b, t, h) = (get("ballast"), get("ECS target tracking"), get("HPA"));
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "{:<8} {:>28} {:>26} {:>24}",
            name,
            format!("{:.0} / {:.0} {}", b.task_minutes, h.task_minutes, verdict(b.task_minutes <= h.task_minutes)),
            format!(
                "{} / {} {}",
                b.minutes_cpu_above90,
                t.minutes_cpu_above90,
                verdict(b.minutes_cpu_above90 <= t.minutes_cpu_above90)
            ),
            format!(
                "{} / {} {}",
                b.scaling_actions,
                t.scaling_actions,
                verdict(b.scaling_actions <= t.scaling_actions)
            ),
        );
    }
    println!("```\n");
    println!("(simulated in {:.1} s of wall time)", started.elapsed().as_secs_f64());
}
