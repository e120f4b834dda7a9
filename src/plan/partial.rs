//! Partial reads never decide (issue 12): a read that fails never makes the
//! planner do what a complete read of the same world would not.
//!
//! Random worlds on the simulated cloud (the example desired state and
//! variants of it: fixed counts, ranges with and without CPU scaling,
//! `ownership: exclusive`, a second service in the cluster, no Capacity or
//! one sized by task resources) drift under random events: other actors set
//! counts and capacity, deregister ballast's targets and register their
//! own, edit alarms, kill instances and stop tasks; load moves the CPU and
//! time moves the alarms; ballast restarts. At each pass the world is
//! observed twice at the same instant, first with random reads failing
//! (queued failures of any read operation, or every n-th call throttled),
//! then completely, and both observations are planned from the same memory
//! and time. Then one of the two plans is applied, so the memory carries a
//! history of complete and partial passes.
//!
//! The property, for every change of the partial plan:
//! - a desired count moves in the direction the complete plan moves it,
//!   and no further (it may stop short: the bounds need no read, and a
//!   budget or the instances read may leave it less room), or no further
//!   than the target of a budget the complete plan reports on the service;
//! - registrations and deregistrations are among the complete plan's, or
//!   (deregistrations) held by the complete plan only for the per-pass
//!   budget, which an unread group of the same service leaves to the other;
//! - alarms, capacities, terminations and subnets are the complete plan's.
//!
//! And every failed read shows as an `unobserved` hold on each resource
//! whose plan needs it (a group also when a count of its cluster is held
//! for unread alarms or CPU), so the partial plan is never complete.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use proptest::prelude::*;

use super::*;
use crate::cloud::sim::{SimCloud, SimConfig};
use crate::cloud::{Clock, Cloud, CloudError, ManualClock, Scope};
use crate::desired::Ownership;
use crate::desired::{TargetGroupBinding, TargetGroupRef, TasksPerInstance};
use crate::metrics::Metrics;
use crate::observed::Target;

use crate::cloud::sim::READS;

fn example() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    crate::desired::load_dir(&dir, "us-east-2").expect("the example is valid")
}

/// How the first service's count is declared.
#[derive(Debug, Clone, Copy)]
enum Count {
    Fixed(u32),
    /// A range without a scaling policy: only the bounds move it.
    Range {
        min: u32,
        span: u32,
    },
    /// A range with the example's CPU scaling, proportional to a target
    /// CPU or (without it) by steps.
    Scaled {
        min: u32,
        span: u32,
        target_cpu: bool,
    },
}

/// The Capacity document of the cluster, if any.
#[derive(Debug, Clone, Copy)]
enum Instances {
    None,
    /// The example's: one task per instance.
    One,
    /// By the task definitions' size: four of the simulated tasks.
    Resources,
}

/// A variant of the example desired state.
#[derive(Debug, Clone)]
struct Shape {
    count: Count,
    exclusive: bool,
    /// The example's `minHealthy: 1`, or the default floor.
    min_healthy: bool,
    deregistrations: u32,
    count_change: u32,
    /// A second service in the cluster, with its own target group.
    worker: bool,
    instances: Instances,
    scale_in_cooldown: u64,
}

impl Shape {
    fn desired(&self) -> DesiredState {
        let mut d = example();
        let s = &mut d.services[0];
        match self.count {
            Count::Fixed(n) => {
                s.tasks = TaskCount::Fixed(n);
                s.scaling = None;
            }
            Count::Range { min, span } => {
                s.tasks = TaskCount::Range { min, max: min + span };
                s.scaling = None;
            }
            Count::Scaled { min, span, target_cpu } => {
                s.tasks = TaskCount::Range { min, max: min + span };
                if !target_cpu && let Some(policy) = &mut s.scaling {
                    policy.target_cpu = None;
                }
            }
        }
        for b in &mut s.target_groups {
            if self.exclusive {
                b.ownership = Ownership::Exclusive;
            }
            if !self.min_healthy {
                b.min_healthy = None;
            }
        }
        s.budget.max_deregistrations_per_pass = self.deregistrations;
        s.budget.max_count_change_per_pass = self.count_change;
        if self.worker {
            let mut w = s.clone();
            w.name = "worker".into();
            w.id.service = "workerService".into();
            w.tasks = TaskCount::Range { min: 1, max: 3 };
            w.scaling = None;
            let front = &s.target_groups[0];
            w.target_groups = vec![TargetGroupBinding {
                target_group: TargetGroupId {
                    region: front.target_group.region.clone(),
                    target_group: TargetGroupRef::Name("workerTargetGroup".into()),
                },
                container_name: "workerContainer".into(),
                container_port: 9000,
                ..front.clone()
            }];
            d.services.push(w);
        }
        match self.instances {
            Instances::None => d.capacities.clear(),
            Instances::One => {}
            Instances::Resources => {
                d.capacities[0].tasks_per_instance = TasksPerInstance::Resources { cpu: 1024, memory: 2048 };
            }
        }
        for cap in &mut d.capacities {
            cap.scale_in_cooldown = Duration::from_secs(self.scale_in_cooldown);
        }
        d
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    let count = prop_oneof![
        1 => (0u32..5).prop_map(Count::Fixed),
        1 => (1u32..3, 0u32..5).prop_map(|(min, span)| Count::Range { min, span }),
        3 => (1u32..3, 1u32..7, any::<bool>()).prop_map(|(min, span, target_cpu)| Count::Scaled { min, span, target_cpu }),
    ];
    let instances = prop_oneof![1 => Just(Instances::None), 2 => Just(Instances::One), 2 => Just(Instances::Resources)];
    (
        count,
        any::<bool>(),
        any::<bool>(),
        1u32..3,
        1u32..5,
        any::<bool>(),
        instances,
        prop_oneof![Just(60u64), Just(300)],
    )
        .prop_map(
            |(count, exclusive, min_healthy, deregistrations, count_change, worker, instances, scale_in_cooldown)| {
                Shape {
                    count,
                    exclusive,
                    min_healthy,
                    deregistrations,
                    count_change,
                    worker,
                    instances,
                    scale_in_cooldown,
                }
            },
        )
}

/// The reads that fail in one observation.
#[derive(Debug, Clone)]
struct Faults {
    /// (index in [`READS`], how many of its next calls fail).
    fail: Vec<(usize, u8)>,
    /// Every n-th call is throttled; 0: none.
    throttle_every: u64,
}

fn faults() -> impl Strategy<Value = Faults> {
    (proptest::collection::vec((0..READS.len(), 1u8..3), 0..4), prop_oneof![3 => Just(0u64), 1 => 2u64..12])
        .prop_map(|(fail, throttle_every)| Faults { fail, throttle_every })
}

#[derive(Debug, Clone)]
enum Event {
    /// A pass: observe with `faults` and completely, compare the plans,
    /// then apply the partial plan (as the controller would) or the
    /// complete one.
    Pass {
        faults: Faults,
        apply_partial: bool,
    },
    /// Time moves on (seconds).
    Wait(u64),
    /// ballast restarts: its memory is lost.
    Restart,
    /// Another actor sets the (n % services)-th service's desired count.
    SetCount(usize, u32),
    SetCapacity(u32),
    /// Another actor deregisters a target of a group (indices wrap).
    Deregister(usize, usize),
    /// Another actor registers an instance of the cluster on a port no
    /// task uses, or on the binding's port.
    Register {
        group: usize,
        instance: usize,
        bindings_port: bool,
    },
    AlarmThreshold(usize, f64),
    AlarmState(usize, AlarmState),
    KillInstance(usize),
    StopTask(usize, usize),
    /// Requests per second on a service.
    Load(usize, f64),
    Deploy(usize),
}

fn event() -> impl Strategy<Value = Event> {
    let state = prop_oneof![Just(AlarmState::Ok), Just(AlarmState::Alarm), Just(AlarmState::InsufficientData)];
    prop_oneof![
        5 => (faults(), any::<bool>()).prop_map(|(faults, apply_partial)| Event::Pass { faults, apply_partial }),
        4 => (1u64..300).prop_map(Event::Wait),
        1 => Just(Event::Restart),
        1 => (0usize..2, 0u32..7).prop_map(|(s, n)| Event::SetCount(s, n)),
        1 => (0u32..6).prop_map(Event::SetCapacity),
        1 => (0usize..3, 0usize..8).prop_map(|(g, t)| Event::Deregister(g, t)),
        1 => (0usize..3, 0usize..8, any::<bool>())
            .prop_map(|(group, instance, bindings_port)| Event::Register { group, instance, bindings_port }),
        1 => (0usize..4, 10.0f64..95.0).prop_map(|(a, t)| Event::AlarmThreshold(a, t)),
        1 => (0usize..4, state).prop_map(|(a, s)| Event::AlarmState(a, s)),
        1 => (0usize..8).prop_map(Event::KillInstance),
        1 => (0usize..2, 0usize..8).prop_map(|(s, t)| Event::StopTask(s, t)),
        2 => (0usize..2, 0.0f64..600.0).prop_map(|(s, rps)| Event::Load(s, rps)),
        1 => (0usize..2).prop_map(Event::Deploy),
    ]
}

/// The simulated cloud answers at once when it has no latency.
fn observe(sim: &SimCloud, scope: &Scope) -> Observed {
    sim.observe(scope)
        .now_or_never()
        .expect("the simulated cloud has no latency")
        .expect("only an unreachable cloud fails a whole observation, and none is simulated")
}

fn failed(o: &Observed) -> bool {
    o.services.values().any(Result::is_err)
        || o.target_groups.values().any(Result::is_err)
        || o.alarms.values().any(Result::is_err)
        || o.cpu.values().any(Result::is_err)
        || o.groups.values().any(Result::is_err)
}

/// Whether `to` moves from `from` toward `bound`, and not past it.
fn toward(from: u32, to: u32, bound: u32) -> bool {
    (from < to && to <= bound) || (bound <= to && to < from)
}

/// A run: the world, ballast's memory and the desired state.
struct Run {
    sim: SimCloud,
    clock: Arc<ManualClock>,
    desired: DesiredState,
    scope: Scope,
    memory: Memory,
}

impl Run {
    fn new(desired: DesiredState, drift: bool, seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new());
        let config = SimConfig { deregistration_delay: Duration::from_secs(60), ..SimConfig::default() };
        let sim = SimCloud::from_desired(&desired, drift, clock.clone(), seed, Arc::new(Metrics::new()), config);
        let scope = Scope::of(&desired);
        Run { sim, clock, desired, scope, memory: Memory::default() }
    }

    /// Instances of the cluster: those of the group, and those the tasks
    /// run on (a cluster without a Capacity has no group).
    fn instances(&self) -> Vec<String> {
        let mut ids = BTreeSet::new();
        for cap in &self.desired.capacities {
            ids.extend(self.sim.group(&cap.group).into_iter().flat_map(|g| g.instances).map(|i| i.id));
        }
        for s in &self.desired.services {
            ids.extend(self.sim.service(&s.id).into_iter().flat_map(|o| o.tasks).filter_map(|t| t.instance_id));
        }
        ids.into_iter().collect()
    }

    fn bindings(&self) -> Vec<&TargetGroupBinding> {
        self.desired.services.iter().flat_map(|s| &s.target_groups).collect()
    }

    fn service(&self, n: usize) -> &ServiceId {
        &self.desired.services[n % self.desired.services.len()].id
    }

    /// Other actors' events. What AWS would refuse (an alarm that does
    /// not exist yet, a target on a stopped instance) is simply not done.
    fn disturb(&mut self, ev: &Event) {
        let pick = |v: &[String], n: usize| (!v.is_empty()).then(|| v[n % v.len()].clone());
        match *ev {
            Event::Pass { .. } => {}
            Event::Wait(s) => self.clock.advance(Duration::from_secs(s)),
            Event::Restart => self.memory = Memory::default(),
            Event::SetCount(s, n) => {
                let _ = self.sim.set_desired_count(&self.service(s).clone(), n);
            }
            Event::SetCapacity(n) => {
                for cap in &self.desired.capacities {
                    let _ = self.sim.set_desired_capacity(&cap.group, n);
                }
            }
            Event::Deregister(g, t) => {
                let bindings = self.bindings();
                let tg = &bindings[g % bindings.len()].target_group;
                let targets = self.sim.target_group(tg).map(|o| o.targets).unwrap_or_default();
                if let Some(t) = targets.get(t % targets.len().max(1)) {
                    let _ = self.sim.deregister_target(tg, t.target.clone());
                }
            }
            Event::Register { group, instance, bindings_port } => {
                let bindings = self.bindings();
                let b = bindings[group % bindings.len()];
                if let Some(id) = pick(&self.instances(), instance) {
                    let port = if bindings_port { b.container_port } else { 8080 };
                    let _ = self.sim.register_target(&b.target_group, Target { id, port });
                }
            }
            Event::AlarmThreshold(a, threshold) => {
                if let Some((region, name)) = self.scope.alarms.get(a % self.scope.alarms.len().max(1)) {
                    let _ = self.sim.set_alarm_threshold(region, name, threshold.round());
                }
            }
            Event::AlarmState(a, state) => {
                if let Some((region, name)) = self.scope.alarms.get(a % self.scope.alarms.len().max(1)) {
                    let _ = self.sim.set_alarm_state(region, name, state);
                }
            }
            Event::KillInstance(i) => {
                if let Some(id) = pick(&self.instances(), i) {
                    let _ = self.sim.kill_instance(&id);
                }
            }
            Event::StopTask(s, t) => {
                let id = self.service(s).clone();
                let tasks: Vec<String> = self
                    .sim
                    .service(&id)
                    .into_iter()
                    .flat_map(|o| o.tasks)
                    .filter(|t| t.desired_status == crate::observed::TaskStatus::Running)
                    .map(|t| t.arn)
                    .collect();
                if let Some(arn) = pick(&tasks, t) {
                    let _ = self.sim.stop_task(&arn);
                }
            }
            Event::Load(s, rps) => {
                let _ = self.sim.set_load(&self.service(s).clone(), rps);
            }
            Event::Deploy(s) => {
                let _ = self.sim.deploy(&self.service(s).clone());
            }
        }
    }

    /// One pass: the partial and the complete plan of the same world at
    /// the same instant are compared; then one of them is applied.
    fn pass(&mut self, faults: &Faults, apply_partial: bool) -> Result<(), TestCaseError> {
        // The partial observation comes first: a read that fails fills no
        // cache (target group ARNs, task sizes), so the complete one after
        // it makes every call it needs.
        for &(read, times) in &faults.fail {
            let (service, operation) = READS[read];
            for _ in 0..times {
                let message = "Rate exceeded (simulated)".to_string();
                self.sim.fail_next(operation, CloudError::Throttled { service, operation, message });
            }
        }
        self.sim.throttle_every(faults.throttle_every);
        let partial_read = observe(&self.sim, &self.scope);
        self.sim.throttle_every(0);
        // A failure queued for a call the partial observation did not make
        // (a read skipped after another failed) is used up here.
        let mut complete_read = observe(&self.sim, &self.scope);
        for _ in 0..READS.len() * 2 {
            if !failed(&complete_read) {
                break;
            }
            complete_read = observe(&self.sim, &self.scope);
        }
        prop_assert!(!failed(&complete_read), "the world has every resource in scope: {complete_read:#?}");
        same_world(&partial_read, &complete_read)?;

        let (complete, partial) = self.plans(&complete_read, &partial_read);
        prop_assert!(complete.is_complete(), "a complete read leaves nothing unread: {:#?}", complete.holds);
        unread_is_held(&self.desired, &partial_read, &partial)?;
        no_change_beyond(&complete, &partial)?;

        self.apply(if apply_partial { partial } else { complete });
        Ok(())
    }

    /// The plans of the complete and the partial read, from the same
    /// memory at the same time.
    fn plans(&self, complete: &Observed, partial: &Observed) -> (Plan, Plan) {
        let now = self.clock.now();
        (
            plan(&self.desired, complete, self.memory.clone(), now),
            plan(&self.desired, partial, self.memory.clone(), now),
        )
    }

    /// Apply the plan as the controller does, then let 5 s pass.
    fn apply(&mut self, mut p: Plan) {
        let now = self.clock.now();
        self.memory = std::mem::take(&mut p.memory);
        for pc in &p.changes {
            if self.sim.apply(&pc.change).now_or_never().expect("the simulated cloud has no latency").is_ok() {
                self.memory.record_applied(&pc.change, now);
            }
        }
        self.clock.advance(Duration::from_secs(5));
    }
}

/// What the partial observation could read is what the complete one read:
/// observing did not change the world in between.
fn same_world(partial: &Observed, complete: &Observed) -> Result<(), TestCaseError> {
    fn check<K: Ord + std::fmt::Debug, V: PartialEq + std::fmt::Debug, E>(
        what: &str,
        partial: &BTreeMap<K, Result<V, E>>,
        complete: &BTreeMap<K, Result<V, E>>,
    ) -> Result<(), TestCaseError> {
        for (k, p) in partial {
            if let Ok(p) = p {
                let c = complete.get(k).and_then(|c| c.as_ref().ok());
                prop_assert_eq!(Some(p), c, "{} {:?} read differently in the two observations", what, k);
            }
        }
        Ok(())
    }
    check("service", &partial.services, &complete.services)?;
    check("target group", &partial.target_groups, &complete.target_groups)?;
    check("alarm", &partial.alarms, &complete.alarms)?;
    check("cpu of", &partial.cpu, &complete.cpu)?;
    check("group", &partial.groups, &complete.groups)?;
    Ok(())
}

/// Each failed read holds, as `unobserved`, every resource whose plan needs it.
fn unread_is_held(desired: &DesiredState, read: &Observed, p: &Plan) -> Result<(), TestCaseError> {
    let held = |key: &ResourceKey| p.unread().any(|h| &h.resource == key);
    let live = |id: &ServiceId| matches!(read.services.get(id), Some(Ok(_)));
    for svc in &desired.services {
        let key = ResourceKey::service(&svc.id);
        if !live(&svc.id) {
            prop_assert!(held(&key), "{key}: its read failed, but it is not held: {:#?}", p.holds);
            for cap in desired.capacities.iter().filter(|c| c.cluster == svc.id.cluster) {
                let group = ResourceKey::group(&cap.group);
                prop_assert!(held(&group), "{group}: {key} of its cluster is unread: {:#?}", p.holds);
            }
            continue;
        }
        for b in &svc.target_groups {
            let key = ResourceKey::target_group(&b.target_group);
            if matches!(read.target_groups.get(&b.target_group), Some(Err(_))) {
                prop_assert!(held(&key), "{key}: its read failed, but it is not held: {:#?}", p.holds);
            }
        }
        let Some(policy) = &svc.scaling else { continue };
        let names = alarms::alarm_names(&svc.id);
        let alarm_failed =
            names.iter().any(|n| matches!(read.alarms.get(&(svc.id.region.clone(), n.clone())), Some(Err(_))));
        let cpu_failed = policy.target_cpu.is_some() && matches!(read.cpu.get(&svc.id), Some(Err(_)));
        if matches!(svc.tasks, TaskCount::Range { .. }) && (alarm_failed || cpu_failed) {
            prop_assert!(held(&key), "{key}: its alarms or CPU could not be read, but it decided: {:#?}", p.holds);
            // The group's capacity follows the count.
            for cap in desired.capacities.iter().filter(|c| c.cluster == svc.id.cluster) {
                let group = ResourceKey::group(&cap.group);
                prop_assert!(held(&group), "{group}: the count of {key} was not decided: {:#?}", p.holds);
            }
        }
    }
    for ((region, name), r) in &read.alarms {
        let key = ResourceKey::alarm(region, name);
        if r.is_err() {
            prop_assert!(held(&key), "{key}: its read failed, but it is not held: {:#?}", p.holds);
        }
    }
    for (id, r) in &read.groups {
        let key = ResourceKey::group(id);
        if r.is_err() {
            prop_assert!(held(&key), "{key}: its read failed, but it is not held: {:#?}", p.holds);
        }
    }
    if failed(read) {
        prop_assert!(!p.is_complete(), "a read failed, yet the plan says it is complete");
    }
    Ok(())
}

/// Every change of `partial` is one `complete` makes, or one it holds
/// only for a per-pass budget; a count may stop short of the complete one.
fn no_change_beyond(complete: &Plan, partial: &Plan) -> Result<(), TestCaseError> {
    let made = |f: &dyn Fn(&Change) -> bool| complete.changes.iter().any(|c| f(&c.change));
    for pc in &partial.changes {
        let ok = match &pc.change {
            Change::SetDesiredCount { service, from, to } => {
                // A count outside its range comes back into it even while
                // the alarms are unread (3 -> 2 in [1, 2], where the complete
                // read's low alarm takes it to 1): toward, never past.
                let mut bounds: Vec<u32> = complete
                    .changes
                    .iter()
                    .filter_map(|c| match &c.change {
                        Change::SetDesiredCount { service: s, from: f, to: t } if s == service && f == from => Some(*t),
                        _ => None,
                    })
                    .collect();
                bounds.extend(complete.holds.iter().filter(|h| h.resource == pc.resource).filter_map(
                    |h| match &h.reason {
                        HoldReason::Budget(Budget::DesiredCount { from: f, target, .. }) if f == from => Some(*target),
                        HoldReason::Budget(Budget::Instances { service: s, target, .. }) if s == service => {
                            Some(*target)
                        }
                        _ => None,
                    },
                ));
                bounds.iter().any(|&b| toward(*from, *to, b))
            }
            Change::RegisterTargets { target_group_arn, targets, .. } => targets.iter().all(|t| {
                made(&|c| {
                    matches!(c, Change::RegisterTargets { target_group_arn: a, targets: ts, .. }
                        if a == target_group_arn && ts.contains(t))
                })
            }),
            Change::DeregisterTargets { target_group_arn, targets, .. } => targets.iter().all(|t| {
                made(&|c| {
                    matches!(c, Change::DeregisterTargets { target_group_arn: a, targets: ts, .. }
                        if a == target_group_arn && ts.contains(t))
                }) || complete.holds.iter().any(|h| {
                    h.resource == pc.resource
                        && matches!(&h.reason, HoldReason::Budget(Budget::Deregistrations { target, .. }) if target == t)
                })
            }),
            // A mark describes the count change that follows it in the
            // same plan, which the rule for counts checks; alone (the count
            // stays, its base changes) the complete read must make it too.
            Change::MarkSurge { service, mark, .. } => {
                made(&|c| c == &pc.change)
                    || partial.changes.iter().any(|c| {
                        matches!(&c.change, Change::SetDesiredCount { service: s, to, .. }
                            if s == service && mark.counts.first().is_some_and(|(count, _)| count == to))
                    })
            }
            // Every other change (alarms, capacity, subnets, processes, the
            // hook and its actions, protection), and any new kind: the
            // complete read makes exactly the same one, the strictest rule.
            _ => made(&|c| c == &pc.change),
        };
        prop_assert!(
            ok,
            "with reads failing ({unread:?}) the plan makes {change}, which the complete read does not:\n\
             complete changes: {complete_changes:#?}\ncomplete holds: {complete_holds:#?}",
            unread = partial.unread().map(Hold::message).collect::<Vec<_>>(),
            change = pc.change,
            complete_changes = complete.changes.iter().map(|c| c.change.to_string()).collect::<Vec<_>>(),
            complete_holds = complete.holds.iter().map(Hold::message).collect::<Vec<_>>(),
        );
    }
    Ok(())
}

proptest! {
    // A case (about 6 passes) costs about 7 ms in a debug build; 6,000
    // cases passed once.
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Random read failures never produce a change a complete read would
    /// not have produced, and always leave the plan incomplete.
    #[test]
    fn failed_reads_never_decide(
        shape in shape(),
        drift in any::<bool>(),
        seed in any::<u64>(),
        warm_up in 0usize..4,
        events in proptest::collection::vec(event(), 1..30),
        last in faults(),
        // deploy/'s deployment configuration (0 % / 100 %): a deployment
        // leaves ECS no room, and ballast surges it. Drawn last, so the
        // cases of the seeds kept in proptest-regressions stay the same.
        no_room in any::<bool>(),
    ) {
        let mut run = Run::new(shape.desired(), drift, seed);
        if no_room {
            let id = run.service(0).clone();
            run.sim.set_deployment_configuration(&id, 0, 100).expect("the service exists");
        }
        let clean = Faults { fail: Vec::new(), throttle_every: 0 };
        for _ in 0..warm_up {
            run.pass(&clean, false)?;
            run.clock.advance(Duration::from_secs(10));
        }
        for ev in &events {
            match ev {
                Event::Pass { faults, apply_partial } => run.pass(faults, *apply_partial)?,
                other => run.disturb(other),
            }
        }
        run.pass(&last, true)?;
    }
}

/// Found by the property: with the scaling alarms unread, the service's
/// count is held at what ECS has, and the capacity used to follow that
/// held count. Here the high alarm fires under load, so the complete read
/// scales the tasks and the group out; the partial one terminated the
/// empty instance the new tasks need.
#[test]
fn unread_alarms_hold_the_capacity_that_follows_the_count() {
    let mut run = Run::new(example(), false, 7);
    let id = run.desired.services[0].id.clone();
    let group = run.desired.capacities[0].group.clone();
    // An empty third instance; a first pass creates the alarms.
    run.sim.set_desired_capacity(&group, 3).unwrap();
    let first = observe(&run.sim, &run.scope);
    let (p, _) = run.plans(&first, &first);
    run.apply(p);
    // 400 requests/s on two tasks; past the scale-in cooldown, the high
    // alarm fires.
    run.sim.set_load(&id, 400.0).unwrap();
    run.clock.advance(Duration::from_secs(360));
    let high = alarms::alarm_names(&id)[0].clone();
    assert_eq!(run.sim.alarm(&id.region, &high).map(|a| a.state), Some(AlarmState::Alarm));
    let empty = run.sim.group(&group).unwrap().instances.into_iter().filter(|i| i.tasks == Some(0)).count();
    assert_eq!(empty, 1, "the third instance runs no task");

    let (complete, partial) = plans_with_alarms_throttled(&mut run);

    let capacity = |p: &Plan| -> Vec<String> {
        p.changes.iter().filter(|c| c.change.kind() == ChangeKind::Capacity).map(|c| c.change.to_string()).collect()
    };
    assert!(
        complete.changes.iter().any(|c| matches!(c.change, Change::SetDesiredCount { from: 2, to, .. } if to > 2)),
        "the complete read scales out: {:#?}",
        complete.changes
    );
    assert!(capacity(&complete).iter().all(|c| c.contains("desired capacity 3 ->")), "{:?}", capacity(&complete));
    assert_eq!(capacity(&partial), Vec::<String>::new(), "nothing is decided on the count the alarms did not decide");
    let held: Vec<String> =
        partial.unread().filter(|h| h.resource == ResourceKey::group(&group)).map(Hold::message).collect();
    assert!(held.iter().any(|m| m.contains("could not read alarm")), "{held:?}");
    no_change_beyond(&complete, &partial).unwrap();
}

/// The complete plan, and the plan made while DescribeAlarms is throttled.
fn plans_with_alarms_throttled(run: &mut Run) -> (Plan, Plan) {
    run.sim.fail_next(
        "DescribeAlarms",
        CloudError::Throttled { service: "cloudwatch", operation: "DescribeAlarms", message: "Rate exceeded".into() },
    );
    let partial_read = observe(&run.sim, &run.scope);
    let complete_read = observe(&run.sim, &run.scope);
    run.plans(&complete_read, &partial_read)
}

/// What the bounds decide needs no alarm: with the alarms unread, a count
/// below its minimum still comes up to it, sized to the instances there
/// are, while the group waits.
#[test]
fn unread_alarms_still_bring_the_count_into_its_bounds_within_the_instances() {
    let mut run = Run::new(example(), false, 7);
    let id = run.desired.services[0].id.clone();
    let group = run.desired.capacities[0].group.clone();
    let first = observe(&run.sim, &run.scope);
    let (p, _) = run.plans(&first, &first);
    run.apply(p);
    run.sim.set_desired_count(&id, 1).unwrap();
    run.clock.advance(Duration::from_secs(30));
    assert_eq!(run.sim.group(&group).unwrap().desired_capacity, 2);

    let (complete, partial) = plans_with_alarms_throttled(&mut run);
    let changes: Vec<String> = partial
        .changes
        .iter()
        .filter(|c| matches!(c.change.kind(), ChangeKind::DesiredCount | ChangeKind::Capacity | ChangeKind::Subnets))
        .map(|c| c.change.to_string())
        .collect();
    assert_eq!(changes, ["service appCluster/appService: desired count 1 -> 2"], "and no capacity change");
    assert!(partial.unread().any(|h| h.resource == ResourceKey::group(&group)), "{:#?}", partial.holds);
    no_change_beyond(&complete, &partial).unwrap();
}
