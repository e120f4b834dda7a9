//! Traffic: each service's requests per second flow through its target
//! groups' load balancers to the targets they route new connections to,
//! and succeed only where a task answers. Also the resource use of a run.
//!
//! The world is constant between two events, so every interval is
//! integrated exactly: a linear load as a trapezoid, a step load as a
//! rectangle, with the curve's points among the events. Only counters are
//! kept: a run of any length holds the same state.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use super::SimCloud;
use super::world::{Instance, RegisteredTarget, TargetGroup, Task, World};
use crate::cloud::CloudError;
use crate::desired::ServiceId;
use crate::observed::{TargetHealth, TaskStatus};

/// Requests per second of a service over time.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadCurve {
    /// (instant, requests per second), instants strictly ascending. Before
    /// the first point the first rate holds, after the last the last rate
    /// holds; no point at all is no load.
    pub points: Vec<(SystemTime, f64)>,
    /// How the rate goes from one point to the next.
    pub interpolation: Interpolation,
}

/// How a [`LoadCurve`] goes from one point to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Joined linearly between points.
    #[default]
    Linear,
    /// Each rate holds until the next point.
    Step,
}

/// Requests counted so far (since the [`SimCloud`] was created). Rates are
/// fractional, so are the counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    /// Requests a task answered.
    pub served: f64,
    /// Requests routed to a target no task answered on, or sent while no
    /// target was routable.
    pub failed: f64,
    /// Whole seconds (since the epoch) in which any request failed.
    pub seconds_with_failures: u64,
}

/// Resource use so far (since the [`SimCloud`] was created).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Seconds of RUNNING tasks (DEACTIVATING ones too: they still run
    /// while ECS drains their targets), all services together.
    pub task_seconds: f64,
    /// Seconds of instances Pending, InService or Terminating.
    pub instance_seconds: f64,
    /// Service CPU datapoints (one per service per metric period, a minute
    /// by default) above 90 %.
    pub cpu_minutes_above_90: u64,
}

impl LoadCurve {
    /// The same rate at all times.
    pub fn constant(requests_per_second: f64) -> Self {
        LoadCurve { points: vec![(SystemTime::UNIX_EPOCH, requests_per_second)], interpolation: Interpolation::Step }
    }

    /// Why the curve cannot be used, if it cannot.
    fn problem(&self) -> Option<String> {
        if let Some((at, rate)) = self.points.iter().find(|(_, r)| !r.is_finite() || *r < 0.0) {
            return Some(format!("the rate {rate} at {at:?} is not a finite number of requests per second >= 0"));
        }
        if let Some(pair) = self.points.windows(2).find(|w| w[1].0 <= w[0].0) {
            return Some(format!("the instants must ascend strictly, but {:?} follows {:?}", pair[1].0, pair[0].0));
        }
        None
    }

    /// The rate at an instant (for a step, the new rate holds from its point on).
    pub fn rate_at(&self, at: SystemTime) -> f64 {
        let after = self.points.partition_point(|(t, _)| *t <= at);
        match (after, self.interpolation) {
            (_, _) if self.points.is_empty() => 0.0,
            (0, _) => self.points[0].1,
            (n, _) if n == self.points.len() => self.points[n - 1].1,
            (n, Interpolation::Step) => self.points[n - 1].1,
            (n, Interpolation::Linear) => {
                let (t0, r0) = self.points[n - 1];
                let (t1, r1) = self.points[n];
                let span = secs_between(t0, t1);
                r0 + (r1 - r0) * secs_between(t0, at) / span
            }
        }
    }

    /// Requests from `from` to `to`.
    pub fn requests(&self, from: SystemTime, to: SystemTime) -> f64 {
        if to <= from || self.points.is_empty() {
            return 0.0;
        }
        let first = self.points.partition_point(|(t, _)| *t <= from);
        let mut total = 0.0;
        let mut start = from;
        for &(at, _) in self.points[first..].iter().take_while(|(t, _)| *t < to) {
            total += self.piece(start, at);
            start = at;
        }
        total + self.piece(start, to)
    }

    /// Requests over [a, b] with no point strictly inside: the rate is
    /// constant (step) or linear there.
    fn piece(&self, a: SystemTime, b: SystemTime) -> f64 {
        let secs = secs_between(a, b);
        match self.interpolation {
            Interpolation::Step => self.rate_at(a) * secs,
            Interpolation::Linear => (self.rate_at(a) + self.rate_at(b)) / 2.0 * secs,
        }
    }

    /// The first point after `at`: where the rate changes course.
    fn next_point_after(&self, at: SystemTime) -> Option<SystemTime> {
        let after = self.points.partition_point(|(t, _)| *t <= at);
        self.points.get(after).map(|(t, _)| *t)
    }
}

fn secs_between(a: SystemTime, b: SystemTime) -> f64 {
    b.duration_since(a).unwrap_or_default().as_secs_f64()
}

/// The traffic state of the world: loads, and counters that only grow.
#[derive(Debug, Default)]
pub(super) struct Traffic {
    /// Per service with a load or traffic target groups.
    pub services: BTreeMap<ServiceId, ServiceTraffic>,
    /// Per target group ARN that has carried requests.
    pub counts: BTreeMap<String, TargetGroupCounts>,
    pub usage: Usage,
}

#[derive(Debug)]
pub(super) struct ServiceTraffic {
    pub load: LoadCurve,
    /// Target group ARNs, each carrying the full rate.
    pub target_groups: Vec<String>,
}

impl Default for ServiceTraffic {
    fn default() -> Self {
        ServiceTraffic { load: LoadCurve::constant(0.0), target_groups: Vec::new() }
    }
}

#[derive(Debug, Default)]
pub(super) struct TargetGroupCounts {
    pub requests: RequestCounts,
    /// The last whole second counted in `seconds_with_failures`.
    pub last_failed_second: Option<u64>,
}

impl TargetGroupCounts {
    /// Count every whole second that [from, to) touches, once.
    fn failed_during(&mut self, from: SystemTime, to: SystemTime) {
        let since = |t: SystemTime| t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let (from, to) = (since(from), since(to));
        let last = if to.subsec_nanos() == 0 { to.as_secs().saturating_sub(1) } else { to.as_secs() };
        let first = match self.last_failed_second {
            Some(s) => from.as_secs().max(s + 1),
            None => from.as_secs(),
        };
        if last >= first {
            self.requests.seconds_with_failures += last - first + 1;
            self.last_failed_second = Some(last);
        }
    }
}

/// An endpoint a task answers on: (is an ip target, instance id or
/// address, port).
pub(super) type Endpoint<'a> = (bool, &'a str, u16);

/// Whether the task answers requests (and health checks) now: it has run,
/// is not past its SIGTERM grace, and its instance runs tasks (in service,
/// or held by a termination lifecycle hook).
fn answers(task: &Task, instances: &BTreeMap<String, Instance>, now: SystemTime, sigterm_grace: Duration) -> bool {
    let up = matches!(task.last_status, TaskStatus::Running | TaskStatus::Deactivating | TaskStatus::Stopping)
        && task.started_at.is_some();
    let before_sigterm_grace = task.sigterm_at.is_none_or(|at| now < at + sigterm_grace);
    let on_live_instance =
        task.instance_id.as_deref().and_then(|id| instances.get(id)).is_some_and(Instance::runs_tasks);
    up && before_sigterm_grace && on_live_instance && !task.broken
}

/// Every endpoint a task answers on now. Takes the world's parts, so that
/// the caller may change its target groups while holding the set.
pub(super) fn answering_endpoints<'a>(
    tasks: &'a BTreeMap<String, Task>,
    instances: &BTreeMap<String, Instance>,
    now: SystemTime,
    sigterm_grace: Duration,
) -> HashSet<Endpoint<'a>> {
    let mut answering = HashSet::new();
    for task in tasks.values().filter(|t| answers(t, instances, now, sigterm_grace)) {
        for b in &task.bindings {
            if let Some(instance_id) = &task.instance_id {
                answering.insert((false, instance_id.as_str(), b.host_port));
            }
            if let Some(ip) = &task.private_ip {
                answering.insert((true, ip.as_str(), b.container_port));
            }
        }
    }
    answering
}

impl World {
    /// The service's requests per second, averaged from `from` to `to`.
    pub fn average_rate(&self, id: &ServiceId, from: SystemTime, to: SystemTime) -> f64 {
        let secs = secs_between(from, to);
        match self.traffic.services.get(id) {
            Some(t) if secs > 0.0 => t.load.requests(from, to) / secs,
            Some(t) => t.load.rate_at(from),
            None => 0.0,
        }
    }

    /// The targets the target group's load balancer sends new connections
    /// to now: healthy ones (all registered ones when none is: fail-open),
    /// and deregistered ones whose deregistration has not reached it yet.
    fn routable<'a>(&self, tg: &'a TargetGroup) -> Vec<&'a RegisteredTarget> {
        let registered = || tg.targets.values().filter(|t| t.drain_until.is_none());
        let healthy: Vec<&RegisteredTarget> = registered().filter(|t| t.health == TargetHealth::Healthy).collect();
        let mut routable = if healthy.is_empty() { registered().collect() } else { healthy };
        let now = self.now;
        routable.extend(tg.targets.values().filter(|t| t.routed_until.is_some_and(|u| u > now)));
        routable
    }

    /// Count the requests and resource use from `self.now` to `to`, the
    /// world being as it is now throughout.
    pub fn accumulate_traffic(&mut self, to: SystemTime) {
        let secs = secs_between(self.now, to);
        if secs <= 0.0 {
            return;
        }
        let running = self
            .tasks
            .values()
            .filter(|t| matches!(t.last_status, TaskStatus::Running | TaskStatus::Deactivating))
            .count();
        self.traffic.usage.task_seconds += running as f64 * secs;
        self.traffic.usage.instance_seconds += self.instances.len() as f64 * secs;

        let mut requests: BTreeMap<&str, f64> = BTreeMap::new();
        for service in self.traffic.services.values().filter(|s| !s.target_groups.is_empty()) {
            let n = service.load.requests(self.now, to);
            if n > 0.0 {
                for arn in &service.target_groups {
                    *requests.entry(arn.as_str()).or_default() += n;
                }
            }
        }
        if requests.is_empty() {
            return;
        }
        let outcomes: Vec<(String, f64, f64)> = requests
            .into_iter()
            .map(|(arn, n)| {
                let Some(tg) = self.target_groups.get(arn) else {
                    return (arn.to_string(), 0.0, n);
                };
                let routable = self.routable(tg);
                if routable.is_empty() {
                    return (arn.to_string(), 0.0, n);
                }
                // `serving` is whether a task answers on the target now
                // (health checks keep it for every target).
                let dead = routable.iter().filter(|t| !t.serving).count();
                // Requests spread evenly over the routable targets.
                let failed = n * dead as f64 / routable.len() as f64;
                (arn.to_string(), n - failed, failed)
            })
            .collect();
        let from = self.now;
        for (arn, served, failed) in outcomes {
            let counts = self.traffic.counts.entry(arn).or_default();
            counts.requests.served += served;
            counts.requests.failed += failed;
            if failed > 0.0 {
                counts.failed_during(from, to);
            }
        }
    }

    /// The next instant at which traffic changes course by itself: a load
    /// curve's point, a deregistration reaching the load balancer, a
    /// stopping task's SIGTERM grace running out.
    pub fn traffic_next_due(&self) -> Option<SystemTime> {
        let now = self.now;
        let curves = self.traffic.services.values().filter_map(|s| s.load.next_point_after(now));
        let routed = self
            .target_groups
            .values()
            .flat_map(|tg| tg.targets.values().filter_map(|t| t.routed_until.filter(|u| *u > now)));
        let grace = self.config.sigterm_grace;
        let answering_ends = self
            .tasks
            .values()
            .filter_map(|t| t.sigterm_at.map(|at| at + grace).filter(|end| *end > now && t.holds_resources()));
        curves.chain(routed).chain(answering_ends).min()
    }
}

impl SimCloud {
    /// Give the service a load that varies over time (replaces
    /// [`set_load`](Self::set_load)'s constant rate, which is a one-point
    /// curve). The rate drives the service's CPU and the requests through
    /// its traffic target groups.
    pub fn set_load_curve(&self, id: &ServiceId, curve: LoadCurve) -> Result<(), CloudError> {
        if let Some(problem) = curve.problem() {
            return Err(CloudError::Rejected {
                service: "simulation",
                operation: "SetLoadCurve",
                message: format!("invalid load curve for {id}: {problem}"),
            });
        }
        self.control(|w| {
            if !w.services.contains_key(id) {
                return Err(CloudError::NotFound(format!("ECS service {id}")));
            }
            w.traffic.services.entry(id.clone()).or_default().load = curve;
            Ok(())
        })
    }

    /// Which target groups (ARNs) carry the service's requests: each of
    /// them receives the service's full rate (one listener each).
    /// [`from_desired`](Self::from_desired) sets this from the desired
    /// state's targetGroups bindings.
    pub fn set_traffic_target_groups(&self, id: &ServiceId, target_group_arns: Vec<String>) -> Result<(), CloudError> {
        self.control(|w| {
            if !w.services.contains_key(id) {
                return Err(CloudError::NotFound(format!("ECS service {id}")));
            }
            if let Some(arn) = target_group_arns.iter().find(|arn| !w.target_groups.contains_key(*arn)) {
                return Err(CloudError::NotFound(format!("target group {arn}")));
            }
            w.traffic.services.entry(id.clone()).or_default().target_groups = target_group_arns;
            Ok(())
        })
    }

    /// Served and failed requests per target group name, cumulative. Every
    /// target group is listed (a name used in two regions sums both).
    pub fn traffic(&self) -> BTreeMap<String, RequestCounts> {
        let world = self.world();
        let mut by_name: BTreeMap<String, RequestCounts> =
            world.target_groups.values().map(|tg| (tg.info.name.clone(), RequestCounts::default())).collect();
        for (arn, counts) in &world.traffic.counts {
            let name = world.target_groups.get(arn).map_or_else(|| arn.clone(), |tg| tg.info.name.clone());
            let total = by_name.entry(name).or_default();
            total.served += counts.requests.served;
            total.failed += counts.requests.failed;
            total.seconds_with_failures += counts.requests.seconds_with_failures;
        }
        by_name
    }

    /// Resource use so far.
    pub fn usage(&self) -> Usage {
        self.world().traffic.usage.clone()
    }

    /// Change the fidelity settings from now on (transitions already under
    /// way keep the instants they were given).
    pub fn set_config(&self, config: super::SimConfig) {
        self.control(|w| w.config = config);
    }

    /// The fidelity settings in force.
    pub fn config(&self) -> super::SimConfig {
        self.world().config.clone()
    }
}
