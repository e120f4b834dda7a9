//! Plays a scenario: the real controller against the simulated cloud, in
//! virtual time.
//!
//! The clock is a [`ManualClock`] that jumps from one instant of interest
//! to the next: a pass (every interval, or sooner when a pass asks for a
//! follow-up or a backoff falls due, as [`Controller::run`] sleeps), an
//! event, the end of an outage. Between them the simulated cloud moves by
//! itself (tasks start, targets turn healthy, requests flow), exactly, so
//! nothing is lost by not stepping through every second. A pass takes no
//! virtual time.
//!
//! Nothing grows with the length of a run but the report's events: the
//! cloud's call log is cleared after every pass, the controller keeps
//! bounded status, and the simulated cloud bounds its own history.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::report::{EventReport, KINDS, Report, TargetGroupReport, kind_key};
use super::scenario::{Action, DesiredStateDir, Scenario, Shape};
use crate::cloud::sim::{Interpolation, LoadCurve, SimCloud};
use crate::cloud::{Clock, Cloud, CloudError, ManualClock, Scope};
use crate::controller::{Controller, Options, PassOutcome};
use crate::desired::DesiredState;
use crate::metrics::Metrics;
use crate::observed::Observed;
use crate::plan::{Change, ChangeKind};

/// Who registers the services' tasks in their target groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TargetManager {
    /// ballast, as the desired state's `targetGroups` say.
    #[default]
    Ballast,
    /// ECS's own load-balancer integration: each service lists its target
    /// groups in its `loadBalancers`, and the `targetGroups` bindings are
    /// taken out of what ballast manages. The comparison the disruption
    /// benchmark draws.
    Ecs,
}

impl TargetManager {
    pub fn as_str(&self) -> &'static str {
        match self {
            TargetManager::Ballast => "ballast",
            TargetManager::Ecs => "ecs",
        }
    }
}

/// How to run a scenario.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunOptions {
    pub targets: TargetManager,
}

/// Runs `scenario` to its end and reports what happened.
pub async fn run(scenario: &Scenario, options: &RunOptions) -> Report {
    Run::new(scenario, options).play().await
}

/// The cloud as the controller sees it, counting what it applies.
#[derive(Clone)]
struct Counting {
    sim: SimCloud,
    tally: Arc<Mutex<Tally>>,
}

#[derive(Debug, Default)]
struct Tally {
    applied: BTreeMap<ChangeKind, u64>,
    failed: u64,
}

impl Cloud for Counting {
    async fn observe(&self, scope: &Scope) -> Result<Observed, CloudError> {
        self.sim.observe(scope).await
    }

    async fn apply(&self, change: &Change) -> Result<(), CloudError> {
        let result = self.sim.apply(change).await;
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok(()) => *tally.applied.entry(change.kind()).or_default() += 1,
            Err(_) => tally.failed += 1,
        }
        result
    }
}

/// One event's report while the run goes on.
struct Tracked {
    report: EventReport,
    at: SystemTime,
    /// The first pass of the current run of converged passes.
    streak: Option<SystemTime>,
    /// A later event has happened: `settled` is final.
    closed: bool,
}

struct Run<'s> {
    scenario: &'s Scenario,
    options: &'s RunOptions,
    clock: Arc<ManualClock>,
    start: SystemTime,
    end: SystemTime,
    sim: SimCloud,
    cloud: Counting,
    metrics: Arc<Metrics>,
    /// The desired state in force, as given to the controller.
    in_force: DesiredStateDir,
    controller: Controller<Counting>,
    stop: watch::Receiver<bool>,
    _stop_tx: watch::Sender<bool>,
    next_pass: SystemTime,
    passes: u64,
    /// When the current outage ends.
    outage_until: Option<SystemTime>,
    events: Vec<Tracked>,
}

impl<'s> Run<'s> {
    fn new(scenario: &'s Scenario, options: &'s RunOptions) -> Self {
        let clock = Arc::new(ManualClock::new());
        let start = clock.now();
        let metrics = Arc::new(Metrics::new());
        let config = scenario.aws.sim.clone();
        let dyn_clock: Arc<dyn Clock> = clock.clone();
        let sim =
            SimCloud::from_desired(&scenario.initial.desired, false, dyn_clock, scenario.seed, metrics.clone(), config);
        for load in &scenario.load {
            let curve = LoadCurve {
                points: load.curve.instants(start, scenario.duration),
                interpolation: match load.curve.shape {
                    Shape::Linear => Interpolation::Linear,
                    Shape::Steps => Interpolation::Step,
                },
            };
            // The loader checked that the service is in the desired state
            // the world was built from.
            let _ = sim.set_load_curve(&load.service, curve);
        }
        if let Some((minimum_healthy, maximum)) = scenario.aws.deployment {
            for service in &scenario.initial.desired.services {
                let _ = sim.set_deployment_configuration(&service.id, minimum_healthy, maximum);
            }
        }
        let cloud = Counting { sim: sim.clone(), tally: Arc::default() };
        let in_force = DesiredStateDir {
            dir: scenario.initial.dir.clone(),
            desired: managed(&sim, &scenario.initial.desired, options.targets),
        };
        let (stop_tx, stop) = watch::channel(false);
        let controller = controller(scenario, &cloud, &clock, &metrics, &in_force);
        Run {
            scenario,
            options,
            clock,
            start,
            end: start + scenario.duration,
            sim,
            cloud,
            metrics,
            in_force,
            controller,
            stop,
            _stop_tx: stop_tx,
            next_pass: start,
            passes: 0,
            outage_until: None,
            events: Vec::new(),
        }
    }

    async fn play(mut self) -> Report {
        let mut pending = self.scenario.events.iter().peekable();
        loop {
            let next_event = pending.peek().map(|e| self.start + e.at);
            let next = [Some(self.next_pass), next_event, self.outage_until].into_iter().flatten().min();
            let Some(now) = next.filter(|t| *t < self.end) else { break };
            self.advance_to(now);
            if self.outage_until == Some(now) {
                self.outage_until = None;
                self.sim.set_unreachable(false);
            }
            while let Some(e) = pending.next_if(|e| self.start + e.at == now) {
                self.play_event(e.at, e.line, &e.action);
            }
            if self.next_pass <= now {
                let outcome = self.controller.pass(&self.stop).await;
                // The call log is for tests; a long run must not keep it.
                self.sim.reset_calls();
                self.passes += 1;
                self.record(now, &outcome);
                // What `Controller::run` sleeps before its next pass.
                let interval = self.scenario.interval;
                let wait = outcome.retry_in.map_or(interval, |r| r.min(interval));
                self.next_pass = now + wait;
            }
        }
        self.advance_to(self.end);
        self.report()
    }

    fn advance_to(&self, t: SystemTime) {
        if let Ok(by) = t.duration_since(self.clock.now()) {
            self.clock.advance(by);
        }
        self.sim.tick();
    }

    fn play_event(&mut self, at: Duration, line: usize, action: &Action) {
        let now = self.start + at;
        // A later event ends the earlier ones' runs of converged passes;
        // events at the same instant share theirs.
        for t in self.events.iter_mut().filter(|t| t.at < now) {
            t.closed = true;
        }
        let result = match action {
            Action::DesiredState(d) => {
                let desired = managed(&self.sim, &d.desired, self.options.targets);
                self.in_force = DesiredStateDir { dir: d.dir.clone(), desired: desired.clone() };
                self.controller.replace_desired(d.dir.clone(), desired);
                // The daemon reloads and passes at once.
                self.next_pass = now;
                Ok(())
            }
            Action::Deploy { service, .. } => self.sim.deploy(service),
            Action::TerminateInstance { group, count, zone } => {
                self.sim.terminate_instances_by_aws(group, *count, zone.as_deref()).map(|_| ())
            }
            Action::Actor { service, desired_count, .. } => self.sim.set_desired_count(service, *desired_count),
            Action::RestartController => {
                self.controller = controller(self.scenario, &self.cloud, &self.clock, &self.metrics, &self.in_force);
                self.next_pass = now;
                Ok(())
            }
            Action::Outage { duration } => {
                self.sim.set_unreachable(true);
                let until = now + *duration;
                self.outage_until = Some(self.outage_until.map_or(until, |u| u.max(until)));
                Ok(())
            }
        };
        self.events.push(Tracked {
            report: EventReport {
                at_seconds: at,
                line,
                kind: action.kind(),
                description: action.to_string(),
                error: result.err().map(|e| e.to_string()),
                converged_after_seconds: None,
                settled_after_seconds: None,
            },
            at: now,
            streak: None,
            closed: false,
        });
    }

    /// Follows each event's convergence with this pass's outcome.
    fn record(&mut self, now: SystemTime, outcome: &PassOutcome) {
        let converged = outcome.planned == 0 && outcome.unread == 0 && !outcome.unreachable;
        for t in self.events.iter_mut().filter(|t| !t.closed || t.report.converged_after_seconds.is_none()) {
            let since = now.duration_since(t.at).unwrap_or_default();
            if converged && t.report.converged_after_seconds.is_none() {
                t.report.converged_after_seconds = Some(since);
            }
            if !t.closed {
                t.streak = if converged { t.streak.or(Some(now)) } else { None };
            }
        }
    }

    fn report(self) -> Report {
        let tally = self.cloud.tally.lock().unwrap_or_else(|e| e.into_inner());
        let traffic = self.sim.traffic();
        let usage = self.sim.usage();
        let changes_applied =
            KINDS.iter().map(|k| (kind_key(*k), tally.applied.get(k).copied().unwrap_or(0))).collect();
        let scaling_actions = [ChangeKind::DesiredCount, ChangeKind::Capacity]
            .iter()
            .map(|k| tally.applied.get(k).copied().unwrap_or(0))
            .sum();
        let events = self
            .events
            .into_iter()
            .map(|t| EventReport {
                settled_after_seconds: t.streak.map(|s| s.duration_since(t.at).unwrap_or_default()),
                ..t.report
            })
            .collect();
        Report {
            scenario: self.scenario.name.clone(),
            seed: self.scenario.seed,
            duration_seconds: self.scenario.duration,
            targets: self.options.targets.as_str(),
            served_requests: traffic.values().map(|c| c.served).sum(),
            failed_requests: traffic.values().map(|c| c.failed).sum(),
            target_groups: traffic
                .into_iter()
                .map(|(name, c)| {
                    let tg = TargetGroupReport {
                        served_requests: c.served,
                        failed_requests: c.failed,
                        seconds_with_failures: c.seconds_with_failures,
                    };
                    (name, tg)
                })
                .collect(),
            task_minutes: usage.task_seconds / 60.0,
            instance_minutes: usage.instance_seconds / 60.0,
            minutes_cpu_above90: usage.cpu_minutes_above_90,
            scaling_actions,
            changes_applied,
            changes_failed: tally.failed,
            passes: self.passes,
            events,
        }
    }
}

/// A controller that starts now, with no memory, on the desired state in force.
fn controller(
    scenario: &Scenario,
    cloud: &Counting,
    clock: &Arc<ManualClock>,
    metrics: &Arc<Metrics>,
    in_force: &DesiredStateDir,
) -> Controller<Counting> {
    let options = Options {
        dir: in_force.dir.clone(),
        default_region: String::new(),
        interval: scenario.interval,
        dry_run: false,
    };
    let clock: Arc<dyn Clock> = clock.clone();
    Controller::new(cloud.clone(), clock, metrics.clone(), options, in_force.desired.clone()).with_seed(scenario.seed)
}

/// What ballast manages of `desired`: all of it, or (ECS registering the
/// targets) all but the target group bindings, which go to the services'
/// own `loadBalancers` in the simulated cloud instead.
fn managed(sim: &SimCloud, desired: &DesiredState, targets: TargetManager) -> DesiredState {
    match targets {
        TargetManager::Ballast => desired.clone(),
        TargetManager::Ecs => {
            let mut desired = desired.clone();
            for svc in &mut desired.services {
                let arns: Vec<String> =
                    svc.target_groups.iter().filter_map(|b| sim.target_group_arn(&b.target_group)).collect();
                if !arns.is_empty() {
                    // A service the world does not have is ballast's to report.
                    let _ = sim.set_service_load_balancers(&svc.id, arns);
                }
                svc.target_groups.clear();
            }
            desired
        }
    }
}
