//! `ballast replay` and the scaling benchmark: a recorded load replayed on
//! the simulated cloud under a scaling policy, in virtual time, and what
//! each policy made of it.
//!
//! Every run builds a fresh [`SimCloud`] on a [`ManualClock`] from a
//! desired state, gives the replayed service the load (each point holds
//! until the next), starts it at the count the first load needs at the
//! target CPU, and lets it settle for a warm-up at that load. Then:
//!
//! - **ballast**: the real [`Controller`], pass after pass, as `ballast
//!   run` and `ballast simulate` drive it: every interval, and 2 s after a
//!   pass that made changes or was held by a budget;
//! - **a peer** ([`super::peers`]: ECS target tracking, the HPA): its
//!   emulation sets the desired count every interval, and a controller on
//!   the same desired state without the service's `scaling` block keeps
//!   the rest (targets, capacity) as ballast would.
//!
//! The state is sampled every interval; [`Score`] is measured from the
//! samples, the applied desired-count changes and the CPU datapoints.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::watch;

use super::history::{History, round_load};
use super::peers::{self, Hpa, HpaState, HpaView, TargetTracking, TargetTrackingState};
use crate::cloud::sim::{Interpolation, LoadCurve, SimCloud, SimConfig};
use crate::cloud::{Clock, Cloud, CloudError, ManualClock, Scope};
use crate::controller::{Controller, Options};
use crate::desired::{DesiredState, ServiceId};
use crate::metrics::Metrics;
use crate::observed::{Observed, TaskStatus};
use crate::plan::{Change, ResourceKey};

/// The CPU percent above which a minute counts as overloaded.
pub const HOT_CPU: f64 = 90.0;
/// The target CPU of the peers when the desired state declares none.
pub const DEFAULT_TARGET_CPU: f64 = 60.0;
/// A rise of the load between two points counts as a step when it adds
/// at least this share of the load before it.
pub const STEP_SHARE: f64 = 0.25;

/// What every policy of one comparison is replayed on.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The service the load goes to.
    pub service: ServiceId,
    /// Requests per second from each offset on (ascending, the first at 0).
    pub load: Vec<(Duration, f64)>,
    /// How long the replay covers.
    pub duration: Duration,
    /// Unmeasured time at the first load before the replay starts.
    pub warmup: Duration,
    /// The controller's pass interval, and the peers' and the samples'.
    pub interval: Duration,
    pub seed: u64,
    pub config: SimConfig,
    /// Every policy starts from the count the first load needs at this CPU.
    pub target_cpu: f64,
}

impl Setup {
    /// A setup for `history` on `service`, with the defaults `ballast
    /// replay` uses: a 20-minute warm-up, 15 s passes, the simulated
    /// cloud's defaults.
    pub fn for_history(history: &History, service: ServiceId, target_cpu: f64) -> Setup {
        let config = SimConfig::default();
        Setup {
            service,
            load: history.load(config.cpu_per_rps),
            duration: history.duration,
            warmup: Duration::from_secs(20 * 60),
            interval: Duration::from_secs(15),
            seed: 1,
            config,
            target_cpu,
        }
    }

    /// When the largest step of the load begins, if it has one: the
    /// largest rise between two points that adds at least [`STEP_SHARE`]
    /// of the load before it.
    pub fn largest_step(&self) -> Option<Duration> {
        self.load
            .windows(2)
            .map(|w| (w[1].0, w[1].1 - w[0].1, w[0].1))
            .filter(|(_, rise, before)| *rise > 0.0 && *rise >= STEP_SHARE * before)
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(at, _, _)| at)
    }
}

/// A scaling policy to replay.
#[derive(Debug, Clone)]
pub enum Policy {
    /// ballast with this desired state (the world is built from it too).
    Ballast { name: String, desired: Box<DesiredState> },
    /// Emulated ECS target tracking on the world of this desired state.
    TargetTracking { config: TargetTracking, world: Box<DesiredState> },
    /// The emulated Kubernetes HPA on the world of this desired state.
    Hpa { config: Hpa, world: Box<DesiredState> },
}

impl Policy {
    /// The two peers with their defaults around the target CPU and bounds
    /// of `service` in `world` (60 % when it declares none).
    pub fn peers(world: &DesiredState, service: &ServiceId) -> Vec<Policy> {
        let svc = world.services.iter().find(|s| &s.id == service);
        let target = target_cpu(world, service);
        let (min, max) = svc.map_or((1, u32::MAX), |s| (s.tasks.min(), s.tasks.max()));
        let world = Box::new(world.clone());
        vec![
            Policy::TargetTracking { config: TargetTracking::aws_defaults(target, min, max), world: world.clone() },
            Policy::Hpa { config: Hpa::k8s_defaults(target, min, max), world },
        ]
    }

    pub fn name(&self) -> String {
        match self {
            Policy::Ballast { name, .. } => name.clone(),
            Policy::TargetTracking { .. } => "ECS target tracking".into(),
            Policy::Hpa { .. } => "HPA".into(),
        }
    }
}

/// The service a replay is about: the one `--service` names (CLUSTER/SERVICE)
/// in `desired`, or the only one with CPU scaling.
pub fn replayed_service(
    desired: &DesiredState,
    dir: &std::path::Path,
    named: Option<&str>,
) -> Result<ServiceId, String> {
    match named {
        Some(name) => {
            let Some((cluster, svc)) = name.split_once('/') else {
                return Err(format!(
                    "--service {name}: write the service as CLUSTER/SERVICE, like appCluster/appService"
                ));
            };
            desired
                .services
                .iter()
                .find(|s| s.id.cluster == cluster && s.id.service == svc)
                .map(|s| s.id.clone())
                .ok_or_else(|| {
                    let known: Vec<String> =
                        desired.services.iter().map(|s| format!("{}/{}", s.id.cluster, s.id.service)).collect();
                    format!(
                        "{} declares no Service for {name}, so there is no policy to replay (it declares: {})",
                        dir.display(),
                        if known.is_empty() { "none".into() } else { known.join(", ") }
                    )
                })
        }
        None => {
            let scaled: Vec<_> = desired.services.iter().filter(|s| s.scaling.is_some()).collect();
            match scaled[..] {
                [one] => Ok(one.id.clone()),
                [] => Err(format!(
                    "{} declares no Service with spec.scaling.cpu: there is no policy to replay",
                    dir.display()
                )),
                _ => Err(format!(
                    "{} scales {} services; name the replayed one with --service CLUSTER/SERVICE",
                    dir.display(),
                    scaled.len()
                )),
            }
        }
    }
}

/// The declared target CPU of `service`, or [`DEFAULT_TARGET_CPU`].
pub fn target_cpu(desired: &DesiredState, service: &ServiceId) -> f64 {
    desired
        .services
        .iter()
        .find(|s| &s.id == service)
        .and_then(|s| s.scaling.as_ref()?.target_cpu)
        .unwrap_or(DEFAULT_TARGET_CPU)
}

/// One applied desired-count change.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Action {
    /// Seconds since the replay started (negative during the warm-up).
    pub t: i64,
    pub from: u32,
    pub to: u32,
    /// Why, as the policy said it.
    pub why: String,
}

/// The state sampled every interval, after the policy ran.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the replay started (negative during the warm-up).
    pub t: i64,
    pub load: f64,
    pub running: u32,
}

/// Everything one replay of one policy produced.
#[derive(Debug, Clone)]
pub struct Run {
    pub policy: String,
    pub samples: Vec<Sample>,
    pub actions: Vec<Action>,
    /// (seconds since the start of the replay to the datapoint's period, average CPU).
    pub datapoints: Vec<(i64, f64)>,
    /// ballast's decision reasons per pass, measured time only.
    pub reasons: BTreeMap<String, usize>,
}

/// What one policy made of the replayed load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Score {
    /// Minutes of running tasks.
    pub task_minutes: f64,
    /// Minutes with the service's CPU above 90 %.
    pub minutes_cpu_above90: f64,
    /// Applied desired-count changes (for what happened: changes of the
    /// running count).
    pub scaling_actions: usize,
    /// Seconds from the largest step of the load to the first scale-out;
    /// `None` when the load has no step or nothing scaled out after it.
    pub reaction_seconds: Option<i64>,
    pub peak_tasks: u32,
    /// Share of requests beyond what the running tasks serve at 100 % CPU, percent.
    pub overload_percent: f64,
    /// Mean CPU percent.
    pub mean_cpu: f64,
}

/// The cloud as the controller sees it, noting the desired-count changes
/// applied to the replayed service.
#[derive(Clone)]
struct Recording {
    sim: SimCloud,
    service: ServiceId,
    applied: Arc<Mutex<Vec<(SystemTime, u32, u32)>>>,
}

impl Cloud for Recording {
    async fn observe(&self, scope: &Scope) -> Result<Observed, CloudError> {
        self.sim.observe(scope).await
    }

    async fn apply(&self, change: &Change) -> Result<(), CloudError> {
        self.sim.apply(change).await?;
        if let Change::SetDesiredCount { service, from, to } = change
            && *service == self.service
        {
            let now = self.sim.now();
            self.applied.lock().unwrap_or_else(|e| e.into_inner()).push((now, *from, *to));
        }
        Ok(())
    }
}

/// A peer's state between intervals.
enum Peer {
    TargetTracking { config: TargetTracking, state: TargetTrackingState },
    Hpa { config: Hpa, state: HpaState },
}

/// Seconds from `from` to `to`, signed.
fn secs_between(from: SystemTime, to: SystemTime) -> i64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

/// Replays `setup`'s load under `policy`.
pub async fn run(setup: &Setup, policy: &Policy) -> Run {
    let id = &setup.service;
    let (world, mut peer) = match policy {
        Policy::Ballast { desired, .. } => ((**desired).clone(), None),
        Policy::TargetTracking { config, world } => (
            without_scaling(world, id),
            Some(Peer::TargetTracking { config: config.clone(), state: TargetTrackingState::default() }),
        ),
        Policy::Hpa { config, world } => {
            (without_scaling(world, id), Some(Peer::Hpa { config: config.clone(), state: HpaState::default() }))
        }
    };
    let clock = Arc::new(ManualClock::new());
    let begin = clock.now();
    let start = begin + setup.warmup;
    let end = start + setup.duration;
    let metrics = Arc::new(Metrics::new());
    let period = setup.config.metric_period;
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let sim =
        SimCloud::from_desired(&world, false, dyn_clock.clone(), setup.seed, metrics.clone(), setup.config.clone());
    let first = setup.load.first().map_or(0.0, |(_, l)| *l);
    let mut points = vec![(begin, first)];
    points.extend(setup.load.iter().map(|(t, l)| (start + *t, *l)).filter(|(t, _)| *t > begin));
    let _ = sim.set_load_curve(id, LoadCurve { points, interpolation: Interpolation::Step });
    let (min, max) =
        world.services.iter().find(|s| &s.id == id).map_or((1, u32::MAX), |s| (s.tasks.min(), s.tasks.max()));
    let initial = ((first * setup.config.cpu_per_rps / setup.target_cpu).ceil() as u32).clamp(min, max);
    let _ = sim.set_desired_count(id, initial);

    let cloud = Recording { sim: sim.clone(), service: id.clone(), applied: Arc::default() };
    let options = Options {
        dir: std::path::PathBuf::from("replay"),
        default_region: String::new(),
        interval: setup.interval,
        dry_run: false,
    };
    let mut controller = Controller::new(cloud.clone(), dyn_clock, metrics, options, world).with_seed(setup.seed);
    let (_stop_tx, stop) = watch::channel(false);

    let mut out = Run {
        policy: policy.name(),
        samples: Vec::new(),
        actions: Vec::new(),
        datapoints: Vec::new(),
        reasons: BTreeMap::new(),
    };
    // (time, running tasks) after each interval: which tasks a datapoint covers.
    let mut running_history: VecDeque<(SystemTime, u32)> = VecDeque::new();
    let mut last_datapoint: Option<SystemTime> = None;
    let mut next_tick = begin;
    let mut next_pass = begin;
    loop {
        let now = next_tick.min(next_pass);
        if now >= end {
            break;
        }
        if let Ok(by) = now.duration_since(clock.now()) {
            clock.advance(by);
        }
        sim.tick();
        let rel = secs_between(start, now);
        let tick = now == next_tick;
        if tick {
            let latest = sim.cpu(id);
            let fresh = latest.filter(|dp| Some(dp.at) != last_datapoint);
            if let Some(dp) = fresh {
                last_datapoint = Some(dp.at);
                out.datapoints.push((secs_between(start, dp.at), dp.value));
            }
            if let (Some(peer), Some(svc)) = (peer.as_mut(), sim.service(id)) {
                let current = svc.desired_count;
                let decision = match peer {
                    Peer::TargetTracking { config, state } => fresh.and_then(|dp| {
                        state.datapoints.push_back((dp.at, dp.value));
                        while state.datapoints.len() > 60 {
                            state.datapoints.pop_front();
                        }
                        peers::target_tracking(config, state, current, period, now)
                            .map(|to| (to, format!("metric {:.1}% -> {to}", dp.value)))
                    }),
                    Peer::Hpa { config, state } => {
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
                        let to = peers::hpa(config, state, view, now);
                        (to != current).then(|| {
                            let cpu = view.cpu.unwrap_or_default();
                            (to, format!("cpu {cpu:.1}% over {measured} of {pods} tasks -> {to}"))
                        })
                    }
                };
                if let Some((to, why)) = decision {
                    let change = Change::SetDesiredCount { service: id.clone(), from: current, to };
                    if sim.apply(&change).await.is_ok() {
                        out.actions.push(Action { t: rel, from: current, to, why });
                    }
                }
            }
        }
        if now >= next_pass {
            let outcome = controller.pass(&stop).await;
            sim.reset_calls();
            let wait = outcome.retry_in.map_or(setup.interval, |r| r.min(setup.interval));
            next_pass = now + wait;
            let decision = decision_of(&controller, id);
            let applied = std::mem::take(&mut *cloud.applied.lock().unwrap_or_else(|e| e.into_inner()));
            for (at, from, to) in applied {
                let why = decision.as_ref().map_or_else(String::new, |d| d.1.clone());
                out.actions.push(Action { t: secs_between(start, at), from, to, why });
            }
            if rel >= 0
                && peer.is_none()
                && let Some((reason, _)) = decision
            {
                *out.reasons.entry(reason).or_default() += 1;
            }
        }
        if tick {
            let running = sim.service(id).map_or(0, |s| s.running_count);
            running_history.push_back((now, running));
            while running_history
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t).unwrap_or_default() >= 5 * 60 * SECOND)
            {
                running_history.pop_front();
            }
            let load = sim_load(setup, rel);
            out.samples.push(Sample { t: rel, load, running });
            next_tick = now + setup.interval;
        }
    }
    out
}

const SECOND: Duration = Duration::from_secs(1);

/// The replayed load at `rel` seconds (the first load during the warm-up).
fn sim_load(setup: &Setup, rel: i64) -> f64 {
    let at = Duration::from_secs(rel.max(0) as u64);
    let after = setup.load.partition_point(|(t, _)| *t <= at);
    setup.load.get(after.saturating_sub(1)).map_or(0.0, |(_, l)| *l)
}

/// The reason and message of the controller's last scaling decision for `id`.
fn decision_of<C: Cloud>(controller: &Controller<C>, id: &ServiceId) -> Option<(String, String)> {
    let status = controller.status();
    let status = status.read().unwrap_or_else(|e| e.into_inner());
    let raw = status.resource(&ResourceKey::service(id))?.decision.as_ref()?;
    let value: serde_json::Value = serde_json::from_str(raw.get()).ok()?;
    Some((value["reason"].as_str()?.to_string(), value["message"].as_str().unwrap_or_default().to_string()))
}

/// `desired` with the scaling of `service` taken out: the count is the
/// peer's to set, the rest is managed as declared.
fn without_scaling(desired: &DesiredState, service: &ServiceId) -> DesiredState {
    let mut desired = desired.clone();
    for s in desired.services.iter_mut().filter(|s| &s.id == service) {
        s.scaling = None;
    }
    desired
}

/// What a run measured, from the replay's start to its end.
pub fn score(setup: &Setup, run: &Run) -> Score {
    let end = setup.duration.as_secs() as i64;
    let measured: Vec<&Sample> = run.samples.iter().filter(|s| s.t >= 0 && s.t < end).collect();
    let per_sample = setup.interval.as_secs_f64() / 60.0;
    let task_minutes = measured.iter().map(|s| f64::from(s.running) * per_sample).sum();
    let (mut served, mut excess) = (0.0, 0.0);
    for s in &measured {
        let capacity = f64::from(s.running) * 100.0 / setup.config.cpu_per_rps;
        excess += (s.load - capacity).max(0.0);
        served += s.load;
    }
    let dps: Vec<f64> = run.datapoints.iter().filter(|(t, _)| *t >= 0 && *t < end).map(|(_, v)| *v).collect();
    let period_minutes = setup.config.metric_period.as_secs_f64() / 60.0;
    let reaction = setup.largest_step().and_then(|at| {
        let at = at.as_secs() as i64;
        run.actions.iter().find(|a| a.t >= at && a.to > a.from).map(|a| a.t - at)
    });
    Score {
        task_minutes,
        minutes_cpu_above90: dps.iter().filter(|v| **v > HOT_CPU).count() as f64 * period_minutes,
        scaling_actions: run.actions.iter().filter(|a| a.t >= 0 && a.t < end).count(),
        reaction_seconds: reaction,
        peak_tasks: measured.iter().map(|s| s.running).max().unwrap_or(0),
        overload_percent: if served > 0.0 { 100.0 * excess / served } else { 0.0 },
        mean_cpu: if dps.is_empty() { 0.0 } else { dps.iter().sum::<f64>() / dps.len() as f64 },
    }
}

/// What happened in the recorded history itself, measured as a run is:
/// each row lasts until the next, the actions are the changes of the
/// running count, the reaction is to the first rise of it after the step.
pub fn score_history(setup: &Setup, history: &History) -> Score {
    let rows = &history.rows;
    let until = |i: usize| rows.get(i + 1).map_or(history.duration, |r| r.at);
    let minutes = |i: usize| until(i).saturating_sub(rows[i].at).as_secs_f64() / 60.0;
    let mut score = Score {
        task_minutes: 0.0,
        minutes_cpu_above90: 0.0,
        scaling_actions: rows.windows(2).filter(|w| w[0].tasks != w[1].tasks).count(),
        reaction_seconds: None,
        peak_tasks: rows.iter().map(|r| r.tasks).max().unwrap_or(0),
        overload_percent: 0.0,
        mean_cpu: 0.0,
    };
    let (mut total, mut served, mut excess) = (0.0, 0.0, 0.0);
    for (i, r) in rows.iter().enumerate() {
        let m = minutes(i);
        score.task_minutes += f64::from(r.tasks) * m;
        if r.cpu > HOT_CPU {
            score.minutes_cpu_above90 += m;
        }
        score.mean_cpu += r.cpu * m;
        total += m;
        let load = round_load(r.cpu * f64::from(r.tasks));
        served += load * m;
        excess += (load - f64::from(r.tasks) * 100.0).max(0.0) * m;
    }
    if total > 0.0 {
        score.mean_cpu /= total;
    }
    if served > 0.0 {
        score.overload_percent = 100.0 * excess / served;
    }
    score.reaction_seconds = setup.largest_step().and_then(|at| {
        let i = rows.partition_point(|r| r.at < at);
        let before = rows.get(i.checked_sub(1)?)?.tasks;
        rows[i..].iter().find(|r| r.tasks > before).map(|r| (r.at - at).as_secs() as i64)
    });
    score
}

/// One row of a comparison: a policy, or what happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Compared {
    pub policy: String,
    #[serde(flatten)]
    pub score: Score,
}

/// `ballast replay`'s report: what happened and what each policy would
/// have done with the same load. `--output json` is this, serialized.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comparison {
    /// The history's file or `CLUSTER/SERVICE`.
    pub source: String,
    /// The replayed service, `CLUSTER/SERVICE`.
    pub service: String,
    /// The history's first row, RFC 3339, when known.
    pub started: Option<String>,
    pub duration_seconds: u64,
    /// Seconds from the start to the largest step of the load, if any.
    pub largest_step_at_seconds: Option<u64>,
    /// What happened first, then each policy.
    pub policies: Vec<Compared>,
}

impl Comparison {
    /// Replays `history` under every policy and measures it.
    pub async fn of(history: &History, setup: &Setup, policies: &[Policy]) -> (Comparison, Vec<Run>) {
        let mut rows = vec![Compared { policy: "what happened".into(), score: score_history(setup, history) }];
        let mut runs = Vec::new();
        for p in policies {
            let r = run(setup, p).await;
            rows.push(Compared { policy: r.policy.clone(), score: score(setup, &r) });
            runs.push(r);
        }
        let comparison = Comparison {
            source: history.source.clone(),
            service: format!("{}/{}", setup.service.cluster, setup.service.service),
            started: history.started.map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            duration_seconds: setup.duration.as_secs(),
            largest_step_at_seconds: setup.largest_step().map(|d| d.as_secs()),
            policies: rows,
        };
        (comparison, runs)
    }

    /// The text report: a line of context, then the table.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let span = crate::desired::duration::format_duration(Duration::from_secs(self.duration_seconds));
        let from = self.started.as_deref().map(|s| format!(" from {s}")).unwrap_or_default();
        let _ = writeln!(out, "Replay of {} ({span}{from}) on {}", self.source, self.service);
        match self.largest_step_at_seconds {
            Some(at) => {
                let at = crate::desired::duration::format_duration(Duration::from_secs(at));
                let _ = writeln!(out, "Largest step of the load: at {at}");
            }
            None => {
                let _ = writeln!(out, "Largest step of the load: none (no rise of a quarter or more)");
            }
        }
        let _ = writeln!(out);
        let name_width = self.policies.iter().map(|p| p.policy.chars().count()).max().unwrap_or(6).max(6);
        let _ = writeln!(
            out,
            "{:<name_width$}  {:>12}  {:>13}  {:>15}  {:>17}  {:>10}",
            "policy", "task-minutes", "min CPU > 90%", "scaling actions", "reaction to step", "peak tasks"
        );
        for p in &self.policies {
            let s = &p.score;
            let reaction = match (self.largest_step_at_seconds, s.reaction_seconds) {
                (None, _) => "n/a".to_string(),
                (Some(_), None) => "never".to_string(),
                (Some(_), Some(r)) => format!("{r} s"),
            };
            let _ = writeln!(
                out,
                "{:<name_width$}  {:>12.0}  {:>13}  {:>15}  {:>17}  {:>10}",
                p.policy,
                s.task_minutes,
                format_minutes(s.minutes_cpu_above90),
                s.scaling_actions,
                reaction,
                s.peak_tasks
            );
        }
        out
    }
}

/// Whole minutes as a whole number, parts of one with a decimal.
fn format_minutes(m: f64) -> String {
    if m.fract() == 0.0 { format!("{m:.0}") } else { format!("{m:.1}") }
}

/// The chart of a replay (`--chart`): the load, and the running tasks of
/// what happened and of each policy, over the replayed time.
pub fn chart(history: &History, setup: &Setup, runs: &[Run]) -> String {
    use crate::http::chart::{Panel, Series, standalone};
    let step = setup.interval;
    let n = (setup.duration.as_secs() / step.as_secs().max(1)) as usize;
    let base = SystemTime::UNIX_EPOCH;
    let times: Vec<SystemTime> = (0..n).map(|i| base + step * i as u32).collect();
    let at = |i: usize| step * i as u32;
    let row_at = |t: Duration| history.rows[history.rows.partition_point(|r| r.at <= t).saturating_sub(1)];
    let classes = ["p0", "p1", "p2", "p3", "p4", "p5"];
    let load = Series {
        class: "load",
        label: "load (CPU % x tasks)".into(),
        values: (0..n).map(|i| Some(sim_load(setup, at(i).as_secs() as i64))).collect(),
    };
    let mut tasks = vec![Series {
        class: "happened",
        label: "what happened".into(),
        values: (0..n).map(|i| Some(f64::from(row_at(at(i)).tasks))).collect(),
    }];
    for (k, r) in runs.iter().enumerate() {
        let by_t: BTreeMap<i64, u32> = r.samples.iter().map(|s| (s.t, s.running)).collect();
        tasks.push(Series {
            class: classes[k % classes.len()],
            label: r.policy.clone(),
            values: (0..n).map(|i| by_t.get(&(at(i).as_secs() as i64)).map(|v| f64::from(*v))).collect(),
        });
    }
    let panels = [
        Panel { title: format!("Load of {} (100 = one task at 100 % CPU)", history.source), series: vec![load] },
        Panel { title: "Running tasks".into(), series: tasks },
    ];
    let end = crate::desired::duration::format_duration(setup.duration);
    standalone(&panels, &times, "0s", &end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::load_str;

    const DESIRED: &str = r#"
apiVersion: ballast.dev/v1alpha1
kind: Service
metadata:
  name: app
spec:
  region: us-east-2
  cluster: appCluster
  service: appService
  tasks: {min: 2, max: 20}
  scaling:
    cpu:
      targetCpu: 60
      tolerance: 0.1
      scaleOut: {threshold: 66, period: 1m, evaluationPeriods: 1, cooldown: 1m}
      scaleIn: {threshold: 54, period: 1m, evaluationPeriods: 3, step: "25%", cooldown: 1m}
      stabilizationWindow: 5m
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

    fn setup(load: Vec<(Duration, f64)>, duration: Duration) -> (Setup, DesiredState) {
        let desired = load_str("replay.yaml", DESIRED, "us-east-2").unwrap();
        let service = desired.services[0].id.clone();
        let config = SimConfig::default();
        let setup = Setup {
            service,
            load,
            duration,
            warmup: Duration::from_secs(20 * 60),
            interval: Duration::from_secs(15),
            seed: 1,
            config,
            target_cpu: 60.0,
        };
        (setup, desired)
    }

    fn mins(n: u64) -> Duration {
        Duration::from_secs(60 * n)
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn the_largest_step_is_the_largest_rise_that_adds_a_quarter() {
        let (s, _) = setup(vec![(mins(0), 200.0), (mins(10), 230.0), (mins(20), 600.0), (mins(30), 200.0)], mins(40));
        assert_eq!(s.largest_step(), Some(mins(20)));
        let (ramp, _) = setup((0..60).map(|m| (mins(m), 100.0 + 10.0 * m as f64)).collect(), mins(60));
        assert_eq!(ramp.largest_step(), None, "a ramp of +10 per minute has no step");
    }

    #[test]
    fn every_policy_follows_a_step_up_and_back_down() {
        let load = vec![(mins(0), 200.0), (mins(10), 600.0), (mins(40), 200.0)];
        // Target tracking takes 40 minutes to come down 10 % at a time.
        let (s, desired) = setup(load, mins(90));
        let mut policies = vec![Policy::Ballast { name: "ballast".into(), desired: Box::new(desired.clone()) }];
        policies.extend(Policy::peers(&desired, &s.service));
        for p in &policies {
            let run = block_on(run(&s, p));
            let sc = score(&s, &run);
            // 600 at 60 % needs 10 tasks; every policy gets there and back to 4.
            assert_eq!(sc.peak_tasks, 10, "{}: {sc:?}", p.name());
            assert_eq!(run.samples.last().unwrap().running, 4, "{}: {:?}", p.name(), run.actions);
            assert!(sc.reaction_seconds.is_some_and(|r| r <= 180), "{}: {sc:?}", p.name());
            // 10 minutes at 4, 30 at 10 or fewer, 50 at 4 or more.
            assert!(sc.task_minutes > 40.0 + 120.0 + 200.0 && sc.task_minutes < 40.0 + 300.0 + 500.0, "{sc:?}");
        }
    }

    #[test]
    fn the_replayed_service_is_the_named_one_or_the_only_scaled_one() {
        let (_, desired) = setup(Vec::new(), mins(1));
        let dir = std::path::Path::new("ds");
        let id = &desired.services[0].id;
        assert_eq!(replayed_service(&desired, dir, None).as_ref(), Ok(id));
        assert_eq!(replayed_service(&desired, dir, Some("appCluster/appService")).as_ref(), Ok(id));
        let e = replayed_service(&desired, dir, Some("appService")).unwrap_err();
        assert!(e.contains("write the service as CLUSTER/SERVICE"), "{e}");
        let e = replayed_service(&desired, dir, Some("appCluster/other")).unwrap_err();
        assert!(
            e.contains("ds declares no Service for appCluster/other") && e.contains("appCluster/appService"),
            "{e}"
        );
        let mut unscaled = desired.clone();
        unscaled.services[0].scaling = None;
        let e = replayed_service(&unscaled, dir, None).unwrap_err();
        assert!(e.contains("no Service with spec.scaling.cpu"), "{e}");
    }

    #[test]
    fn what_happened_is_measured_from_the_rows() {
        let csv = "time,cpu_percent,running_tasks\n0,50,4\n60,150,4\n120,95,6\n180,60,10\n240,60,10\n";
        let h = History::parse_csv(std::path::Path::new("h.csv"), csv).unwrap();
        let (s, _) = setup(h.load(1.0), h.duration);
        let sc = score_history(&s, &h);
        assert_eq!(s.largest_step(), Some(mins(1)));
        assert_eq!(sc.task_minutes, 4.0 + 4.0 + 6.0 + 10.0 + 10.0);
        assert_eq!(sc.minutes_cpu_above90, 2.0);
        assert_eq!(sc.scaling_actions, 2);
        assert_eq!(sc.reaction_seconds, Some(60));
        assert_eq!(sc.peak_tasks, 10);
    }
}
