//! Liveness: plans applied to a model world get it to the declared state.
//!
//! The property tests in `tests.rs` check safety only, so a planner that
//! plans nothing passes them. Here a small model of ECS and two target
//! groups reacts to each pass's changes the way AWS does (tasks start and
//! stop over several passes, host ports and addresses are reused, new
//! targets stay `initial` for a while, deregistered ones drain), while
//! random events disturb it: ballast restarts, reads fail, tasks crash or
//! are told to stop, another actor sets the desired count, the user edits
//! the declared count, time jumps. Once the events stop, the planner must
//! bring the world to the declared state within a bounded number of passes
//! and then plan nothing; all along, the safety rules hold.
//!
//! Scaling has its own liveness property: under a steady high (low) alarm
//! the count reaches the maximum (minimum) within a bounded time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::tests::fixtures as fx;
use super::*;
use crate::desired::*;
use crate::observed::*;

const BACK_ARN: &str = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/backendTargetGroup/def";
/// Instances tasks are placed on, and the dynamic host ports they take.
const INSTANCES: [&str; 3] = ["i-a", "i-b", "i-c"];
const HOST_PORTS: [u16; 4] = [32768, 32769, 32770, 32771];
/// awsvpc addresses tasks take.
const ADDRESSES: u8 = 12;
/// Time between passes once the events stop (the follow-up of a busy loop
/// is shorter, the interval longer: this is in between).
const SETTLE_STEP: Duration = Duration::from_secs(15);

/// Deterministic randomness for the model's own choices (health-check
/// delays, placement), from the case's seed: splitmix64.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }
}

/// Where a task is in ECS's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// PENDING for this many more passes.
    Pending(u8),
    Running,
    /// RUNNING but desired STOPPED (a scale-in, a deployment) for this many
    /// more passes.
    Leaving(u8),
    /// STOPPING for one pass.
    Stopping,
    /// Observable for the rest of the run (ECS reports stopped tasks for
    /// about an hour; a run is shorter).
    Stopped,
}

#[derive(Debug, Clone)]
struct ModelTask {
    n: u32,
    instance: String,
    host_port: u16,
    ip: String,
    phase: Phase,
}

impl ModelTask {
    fn statuses(&self) -> (TaskStatus, TaskStatus) {
        match self.phase {
            Phase::Pending(_) => (TaskStatus::Pending, TaskStatus::Running),
            Phase::Running => (TaskStatus::Running, TaskStatus::Running),
            Phase::Leaving(_) => (TaskStatus::Running, TaskStatus::Stopped),
            Phase::Stopping => (TaskStatus::Stopping, TaskStatus::Stopped),
            Phase::Stopped => (TaskStatus::Stopped, TaskStatus::Stopped),
        }
    }

    fn serving(&self) -> bool {
        self.phase == Phase::Running
    }

    /// The task's process is up: its targets pass health checks.
    fn up(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Leaving(_))
    }

    /// Holds its host port and address.
    fn placed(&self) -> bool {
        self.phase != Phase::Stopped
    }

    /// The target it provides in group `g`: 0 is `instance`, 1 is `ip`.
    fn target(&self, g: usize) -> Target {
        match g {
            0 => Target { id: self.instance.clone(), port: self.host_port },
            _ => Target { id: self.ip.clone(), port: 80 },
        }
    }
}

/// A registered target's health, as the load balancer reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// `initial` for this many more passes (health checks are slow).
    Initial(u8),
    Healthy,
    Unhealthy,
    /// `draining` for this many more passes, then gone.
    Draining(u8),
}

impl Health {
    fn observed(self) -> TargetHealth {
        match self {
            Health::Initial(_) => TargetHealth::Initial,
            Health::Healthy => TargetHealth::Healthy,
            Health::Unhealthy => TargetHealth::Unhealthy,
            Health::Draining(_) => TargetHealth::Draining,
        }
    }
}

/// The service, ECS's scheduler and the two target groups.
struct Model {
    /// The service's desired count in ECS.
    desired_count: u32,
    tasks: Vec<ModelTask>,
    /// Per group (0: instance targets, 1: ip targets).
    targets: [BTreeMap<Target, Health>; 2],
    /// Other tools' targets: always healthy, never the service's.
    foreign: [BTreeSet<Target>; 2],
    next_task: u32,
    rng: Rng,
}

impl Model {
    fn new(running: u32, stale: u32, seed: u64) -> Self {
        let mut m = Model {
            desired_count: running,
            tasks: Vec::new(),
            targets: Default::default(),
            foreign: [
                // A real instance, on a port no task uses.
                BTreeSet::from([Target { id: INSTANCES[0].into(), port: 8080 }]),
                BTreeSet::from([Target { id: "10.0.9.9".into(), port: 80 }]),
            ],
            next_task: 1,
            rng: Rng(seed),
        };
        for g in 0..2 {
            let foreign = m.foreign[g].clone();
            m.targets[g].extend(foreign.into_iter().map(|t| (t, Health::Healthy)));
        }
        // Tasks that stopped before ballast started, their targets left
        // behind; then the running ones, registered or not, in any health.
        for _ in 0..stale {
            if let Some(i) = m.start_task() {
                m.tasks[i].phase = Phase::Stopped;
                m.register_initially(i, Health::Unhealthy);
            }
        }
        for _ in 0..running {
            if let Some(i) = m.start_task() {
                m.tasks[i].phase = Phase::Running;
                let health =
                    [Health::Healthy, Health::Healthy, Health::Initial(1), Health::Unhealthy][m.rng.below(4) as usize];
                m.register_initially(i, health);
            }
        }
        m
    }

    /// Targets present before ballast starts, in some of the groups.
    fn register_initially(&mut self, i: usize, health: Health) {
        for g in 0..2 {
            if self.rng.below(4) != 0 {
                let t = self.tasks[i].target(g);
                self.targets[g].insert(t, health);
            }
        }
    }

    /// ECS places a new task on a free host port and a free address, if
    /// there is one (otherwise it tries again next pass).
    fn start_task(&mut self) -> Option<usize> {
        let placed: Vec<&ModelTask> = self.tasks.iter().filter(|t| t.placed()).collect();
        let ports: Vec<(String, u16)> = INSTANCES
            .iter()
            .flat_map(|i| HOST_PORTS.iter().map(move |p| (i.to_string(), *p)))
            .filter(|(i, p)| !placed.iter().any(|t| &t.instance == i && t.host_port == *p))
            .collect();
        let ips: Vec<String> =
            (1..=ADDRESSES).map(|n| format!("10.0.1.{n}")).filter(|ip| !placed.iter().any(|t| &t.ip == ip)).collect();
        if ports.is_empty() || ips.is_empty() {
            return None;
        }
        let (instance, host_port) = ports[self.rng.below(ports.len() as u64) as usize].clone();
        let ip = ips[self.rng.below(ips.len() as u64) as usize].clone();
        let phase = Phase::Pending(self.rng.below(2) as u8);
        self.tasks.push(ModelTask { n: self.next_task, instance, host_port, ip, phase });
        self.next_task += 1;
        Some(self.tasks.len() - 1)
    }

    /// One pass's worth of ECS: tasks move through their lifecycle, then
    /// the scheduler starts tasks up to the desired count or tells the
    /// newest to stop.
    fn ecs_step(&mut self) {
        for t in &mut self.tasks {
            t.phase = match t.phase {
                Phase::Pending(0) => Phase::Running,
                Phase::Pending(n) => Phase::Pending(n - 1),
                Phase::Leaving(0) => Phase::Stopping,
                Phase::Leaving(n) => Phase::Leaving(n - 1),
                Phase::Stopping | Phase::Stopped => Phase::Stopped,
                Phase::Running => Phase::Running,
            };
        }
        let active = |t: &ModelTask| matches!(t.phase, Phase::Pending(_) | Phase::Running);
        let mut n = self.tasks.iter().filter(|t| active(t)).count() as u32;
        while n < self.desired_count && self.start_task().is_some() {
            n += 1;
        }
        while n > self.desired_count {
            let newest = self.tasks.iter_mut().rev().find(|t| active(t)).expect("an active task");
            newest.phase = match newest.phase {
                Phase::Pending(_) => Phase::Stopped,
                _ => Phase::Leaving(self.rng.below(3) as u8),
            };
            n -= 1;
        }
    }

    /// One pass's worth of health checks and draining.
    fn health_step(&mut self) {
        for g in 0..2 {
            let up: BTreeSet<Target> = self.tasks.iter().filter(|t| t.up()).map(|t| t.target(g)).collect();
            let foreign = &self.foreign[g];
            self.targets[g].retain(|t, h| {
                *h = match *h {
                    Health::Draining(0) => return false,
                    Health::Draining(n) => Health::Draining(n - 1),
                    Health::Initial(n) if n > 0 => Health::Initial(n - 1),
                    _ if up.contains(t) || foreign.contains(t) => Health::Healthy,
                    _ => Health::Unhealthy,
                };
                true
            });
        }
    }

    fn healthy(&self, g: usize) -> usize {
        self.targets[g].values().filter(|h| **h == Health::Healthy).count()
    }

    fn serving_targets(&self, g: usize) -> BTreeSet<Target> {
        self.tasks.iter().filter(|t| t.serving()).map(|t| t.target(g)).collect()
    }

    /// The declared state: the declared count runs, nothing else is on its
    /// way in or out, and each group holds the serving tasks' targets and
    /// the foreign ones, none draining.
    fn at_declared(&self, declared: u32) -> Result<(), String> {
        if self.desired_count != declared {
            return Err(format!("desired count {} != declared {declared}", self.desired_count));
        }
        if let Some(t) = self.tasks.iter().find(|t| !matches!(t.phase, Phase::Running | Phase::Stopped)) {
            return Err(format!("task t{} is still {:?}", t.n, t.phase));
        }
        for g in 0..2 {
            let want: BTreeSet<Target> = self.serving_targets(g).union(&self.foreign[g]).cloned().collect();
            let have: BTreeSet<Target> = self.targets[g].keys().cloned().collect();
            if want != have {
                return Err(format!("group {g} holds {have:?}, wants {want:?}"));
            }
            if let Some((t, _)) = self.targets[g].iter().find(|(_, h)| matches!(h, Health::Draining(_))) {
                return Err(format!("group {g}: {t} is draining"));
            }
        }
        Ok(())
    }

    /// What a pass observes; `fail` makes one read fail.
    fn observe(&self, desired: &DesiredState, fail: Option<Read>) -> Observed {
        let mut o = fx::world(desired, 0);
        let id = fx::service_id();
        let Some(Ok(svc)) = o.services.get_mut(&id) else { unreachable!("the fixture has the service") };
        svc.desired_count = self.desired_count;
        svc.running_count = self.tasks.iter().filter(|t| t.up()).count() as u32;
        svc.pending_count = self.tasks.iter().filter(|t| matches!(t.phase, Phase::Pending(_))).count() as u32;
        svc.tasks = self
            .tasks
            .iter()
            .map(|t| {
                let mut task = fx::task(t.n, TaskStatus::Running);
                (task.last_status, task.desired_status) = t.statuses();
                task.instance_id = Some(t.instance.clone());
                task.private_ip = Some(t.ip.clone());
                task.bindings[0].host_port = t.host_port;
                task
            })
            .collect();
        let bindings = &desired.services[0].target_groups;
        let Some(Ok(front)) = o.target_groups.get(&bindings[0].target_group).cloned() else {
            unreachable!("the fixture has the front group")
        };
        for (g, b) in bindings.iter().enumerate() {
            let mut group = front.clone();
            if g == 1 {
                group.arn = BACK_ARN.into();
                group.name = "backendTargetGroup".into();
                group.target_type = crate::observed::TargetGroupType::Ip;
            }
            group.targets = self.targets[g]
                .iter()
                .map(|(t, h)| ObservedTarget { target: t.clone(), health: h.observed() })
                .collect();
            o.target_groups.insert(b.target_group.clone(), Ok(group));
        }
        let unavailable = || ResourceError::Unavailable("throttled".into());
        match fail {
            None => {}
            Some(Read::Service) => {
                o.services.insert(id, Err(unavailable()));
            }
            Some(Read::Group(g)) => {
                o.target_groups.insert(bindings[g].target_group.clone(), Err(unavailable()));
            }
        }
        o
    }

    /// Apply one change as AWS would.
    fn apply(&mut self, change: &Change) {
        match change {
            Change::SetDesiredCount { to, .. } => self.desired_count = *to,
            Change::RegisterTargets { target_group_arn, targets, .. } => {
                let g = group_of(target_group_arn);
                for t in targets {
                    let delay = self.rng.below(4) as u8;
                    let h = self.targets[g].entry(t.clone()).or_insert(Health::Initial(delay));
                    if let Health::Draining(_) = h {
                        *h = Health::Initial(delay);
                    }
                }
            }
            Change::DeregisterTargets { target_group_arn, targets, .. } => {
                let g = group_of(target_group_arn);
                for t in targets {
                    if let Some(h) = self.targets[g].get_mut(t)
                        && !matches!(h, Health::Draining(_))
                    {
                        *h = Health::Draining(1);
                    }
                }
            }
            other => panic!("the model has no alarms nor groups: {other:?}"),
        }
    }
}

/// The model's index of a target group: 0 the front (instance targets),
/// 1 the back (ip targets).
fn group_of(arn: &str) -> usize {
    usize::from(arn == BACK_ARN)
}

/// A read that fails for one pass.
#[derive(Debug, Clone, Copy)]
enum Read {
    Service,
    Group(usize),
}

#[derive(Debug, Clone)]
enum Event {
    /// A pass with nothing new.
    Pass,
    /// Time moves on (seconds) before the next pass.
    Wait(u64),
    /// ballast restarts: its memory is lost.
    Restart,
    /// One read fails in the next pass.
    FailRead(Read),
    /// A serving task crashes (STOPPED at once); ECS starts another.
    Crash(usize),
    /// A serving task is told to stop: RUNNING, desired STOPPED for a few
    /// passes; ECS starts another meanwhile.
    Stop(usize),
    /// Another actor sets the desired count.
    OtherActorSets(u32),
    /// The user edits the declared count.
    Declare(u32),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        3 => Just(Event::Pass),
        2 => (1u64..900).prop_map(Event::Wait),
        1 => Just(Event::Restart),
        2 => prop_oneof![Just(Read::Service), Just(Read::Group(0)), Just(Read::Group(1))].prop_map(Event::FailRead),
        2 => (0usize..6).prop_map(Event::Crash),
        2 => (0usize..6).prop_map(Event::Stop),
        1 => (0u32..7).prop_map(Event::OtherActorSets),
        1 => (0u32..6).prop_map(Event::Declare),
    ]
}

/// The service of the model: one `instance` and one `ip` binding.
fn desired(declared: u32, min_healthy: Option<u32>, budget: u32) -> DesiredState {
    let mut s = fx::service(TaskCount::Fixed(declared));
    s.target_groups[0].min_healthy = min_healthy;
    let mut back = s.target_groups[0].clone();
    back.target_group.target_group = TargetGroupRef::Name("backendTargetGroup".into());
    back.target_type = TargetType::Ip;
    s.target_groups.push(back);
    s.budget.max_deregistrations_per_pass = budget;
    DesiredState { services: vec![s], capacities: vec![] }
}

/// ballast's side of the run: its memory and the clock.
struct Ballast {
    memory: Memory,
    now: SystemTime,
}

impl Ballast {
    /// One pass: observe, plan, apply every change (checking the safety
    /// rules on each), then the world moves on. Returns the plan's changes.
    fn pass(
        &mut self,
        model: &mut Model,
        desired: &DesiredState,
        fail: Option<Read>,
    ) -> Result<Vec<Change>, TestCaseError> {
        let observed = model.observe(desired, fail);
        let mut p = plan(desired, &observed, std::mem::take(&mut self.memory), self.now);
        self.memory = std::mem::take(&mut p.memory);
        let changes: Vec<Change> = p.changes.into_iter().map(|pc| pc.change).collect();
        if let Some(first_dereg) = changes.iter().position(|c| matches!(c, Change::DeregisterTargets { .. })) {
            prop_assert!(
                !changes[first_dereg..].iter().any(|c| matches!(c, Change::RegisterTargets { .. })),
                "a registration after a deregistration: {changes:?}"
            );
        }
        let bindings = &desired.services[0].target_groups;
        for change in &changes {
            let before = [model.healthy(0), model.healthy(1)];
            let serving = [model.serving_targets(0), model.serving_targets(1)];
            match change {
                Change::RegisterTargets { target_group_arn, targets, .. } => {
                    let g = group_of(target_group_arn);
                    for t in targets {
                        prop_assert!(serving[g].contains(t), "registered {t}, no serving task's");
                    }
                }
                Change::DeregisterTargets { target_group_arn, targets, .. } => {
                    let g = group_of(target_group_arn);
                    for t in targets {
                        prop_assert!(!model.foreign[g].contains(t), "deregistered the foreign target {t}");
                        prop_assert!(!serving[g].contains(t), "deregistered {t} of a serving task");
                    }
                }
                _ => {}
            }
            model.apply(change);
            self.memory.record_applied(change, self.now);
            for g in 0..2 {
                let after = model.healthy(g);
                if before[g] > 0 {
                    prop_assert!(after > 0, "{change:?} dropped group {g}'s healthy targets from {} to 0", before[g]);
                }
                // minHealthy, or by default the targets the service should have.
                let floor = bindings[g].min_healthy.map_or(serving[g].len(), |m| m as usize).min(before[g]);
                prop_assert!(after >= floor, "{change:?} left {after} healthy in group {g}, floor {floor}");
            }
        }
        model.ecs_step();
        model.health_step();
        Ok(changes)
    }
}

/// A CPU datapoint as CloudWatch reports it `now`: the newest complete
/// 60 s period, so a datapoint covering a scale-out arrives about two
/// periods after it.
fn datapoint(now: SystemTime, value: f64) -> MetricSample {
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    MetricSample { value, at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs / 60 * 60 - 60) }
}

proptest! {
    // A case costs about 2 ms (debug build); 3,000 cases passed once.
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Safety all along, and once the events stop the world reaches the
    /// declared state and the planner then plans nothing.
    #[test]
    fn plans_reach_the_declared_state_once_disturbances_stop(
        declared in 0u32..6,
        running in 0u32..6,
        stale in 0u32..4,
        min_healthy in proptest::option::of(1u32..3),
        budget in 1u32..3,
        seed in any::<u64>(),
        events in proptest::collection::vec(event(), 0..40),
    ) {
        let mut declared = declared;
        let mut d = desired(declared, min_healthy, budget);
        let mut model = Model::new(running, stale, seed);
        let mut ballast = Ballast { memory: Memory::default(), now: fx::t0() };
        for ev in events {
            let mut fail = None;
            match ev {
                Event::Pass => {}
                Event::Wait(s) => ballast.now += Duration::from_secs(s),
                Event::Restart => ballast.memory = Memory::default(),
                Event::FailRead(r) => fail = Some(r),
                Event::Crash(i) | Event::Stop(i) => {
                    let serving: Vec<usize> = (0..model.tasks.len()).filter(|&j| model.tasks[j].serving()).collect();
                    if let Some(&j) = serving.get(i % serving.len().max(1)) {
                        model.tasks[j].phase =
                            if matches!(ev, Event::Crash(_)) { Phase::Stopped } else { Phase::Leaving(2) };
                    }
                }
                Event::OtherActorSets(n) => model.desired_count = n,
                Event::Declare(n) => {
                    declared = n;
                    d = desired(declared, min_healthy, budget);
                }
            }
            ballast.pass(&mut model, &d, fail)?;
            ballast.now += Duration::from_secs(5);
        }

        // Bound: a contested count waits out the revert window; each task
        // leaves at most one stale target per group, deregistered one per
        // pass at worst; a few passes for tasks to start and stop and for
        // health checks.
        let window = FightPolicy::default().window.as_secs().div_ceil(SETTLE_STEP.as_secs()) as usize;
        let bound = window + 2 * model.tasks.len() + 20;
        let mut last = (Vec::new(), Ok(()));
        for _ in 0..bound {
            let changes = ballast.pass(&mut model, &d, None)?;
            ballast.now += SETTLE_STEP;
            last = (changes, model.at_declared(declared));
            if last.0.is_empty() && last.1.is_ok() {
                break;
            }
        }
        let (changes, world) = last;
        prop_assert!(
            changes.is_empty() && world.is_ok(),
            "not at rest in the declared state {bound} passes after the events stopped: {world:?}, planned {changes:?}"
        );
        // And it stays there without a write.
        let changes = ballast.pass(&mut model, &d, None)?;
        prop_assert!(changes.is_empty(), "a converged world planned {changes:?}");
        prop_assert!(model.at_declared(declared).is_ok());
    }


    /// Under a steady high alarm and CPU above the target, the count
    /// reaches the maximum within a bounded time; under a steady low alarm
    /// and low CPU, it comes back to the minimum. Restarts and any pass
    /// spacing do not stop it.
    #[test]
    fn steady_alarms_take_the_count_to_its_bounds(
        min in 1u32..4,
        span in 1u32..10,
        proportional in any::<bool>(),
        percent in any::<bool>(),
        step in 1u32..4,
        out_cooldown in 0u64..300,
        in_cooldown in 0u64..300,
        window in 0u64..300,
        count_budget in 1u32..5,
        high_cpu in 75.0f64..100.0,
        low_cpu in 0.0f64..29.0,
        passes in proptest::collection::vec((15u64..60, proptest::bool::weighted(0.05)), 1..50),
    ) {
        let max = min + span;
        let mut policy = fx::scaling_policy();
        policy.target_cpu = proportional.then_some(60.0);
        let step = if percent { Step::Percent(step * 20) } else { Step::Tasks(step) };
        policy.scale_out.step = step;
        policy.scale_in.step = step;
        policy.scale_out.cooldown = Duration::from_secs(out_cooldown);
        policy.scale_in.cooldown = Duration::from_secs(in_cooldown);
        policy.stabilization_window = Duration::from_secs(window);
        let mut s = fx::service(TaskCount::Range { min, max });
        s.scaling = Some(policy);
        s.budget.max_count_change_per_pass = count_budget;
        let d = DesiredState { services: vec![s], capacities: vec![] };

        // Each step waits at most for its cooldown (or the window) and a
        // datapoint from after the last scale-out, plus one pass spacing.
        let per_step = Duration::from_secs(out_cooldown.max(in_cooldown).max(window) + 180 + 60);
        let limit = per_step * span;
        let mut memory = Memory::default();
        let mut now = fx::t0();
        let mut count = min;
        for (high, low, cpu, goal) in [
            (AlarmState::Alarm, AlarmState::Ok, high_cpu, max),
            (AlarmState::Ok, AlarmState::Alarm, low_cpu, min),
        ] {
            let start = now;
            let mut i = 0;
            while count != goal {
                prop_assert!(
                    now.duration_since(start).unwrap() <= limit,
                    "count {count}, not {goal}, {:?} after the alarms settled ({:?} allowed)",
                    now.duration_since(start).unwrap(),
                    limit
                );
                let (dt, restart) = passes[i % passes.len()];
                i += 1;
                if restart {
                    memory = Memory::default();
                }
                let mut o = fx::world(&d, count);
                fx::set_alarm_state(&mut o, 0, high);
                fx::set_alarm_state(&mut o, 1, low);
                o.cpu.insert(fx::service_id(), Ok(Some(datapoint(now, cpu))));
                let mut p = plan(&d, &o, memory, now);
                memory = std::mem::take(&mut p.memory);
                for pc in &p.changes {
                    if let Change::SetDesiredCount { from, to, .. } = pc.change {
                        prop_assert!(if goal == max { to > from } else { to < from }, "{:?}", pc.change);
                        count = to;
                    }
                    memory.record_applied(&pc.change, now);
                }
                now += Duration::from_secs(dt);
            }
        }
    }
}
