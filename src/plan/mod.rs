//! The planning core: a pure function of desired state, observed state,
//! the controller's [`Memory`] and the time, returning [`Change`]s.
//!
//! No I/O, no clock reads, no AWS SDK types. [`plan`] is called once per
//! pass; the controller applies the changes in order and records each
//! applied one with [`Memory::record_applied`].
//!
//! Order within a plan: subnets and capacity first (instances must exist
//! before tasks need them), then desired counts, then target registrations
//! before deregistrations, then alarms.
//!
//! Every change passes through one admission gate ([`gate`]) that checks
//! conflicts, contested fields, `suspend` and limits in one order, and
//! reports what it holds as a typed [`Hold`].

pub mod alarms;
pub mod capacity;
mod change;
pub mod drain;
pub mod gate;
pub mod memory;
mod report;
pub mod scaling;
pub mod targets;
pub mod terminations;

use std::collections::BTreeMap;
use std::time::SystemTime;

pub use change::{Change, ChangeKind, short_arn, short_task};
pub use gate::{Hold, HoldKind, HoldReason, Notice};
pub use memory::{FightPolicy, Memory};
pub use report::{ResourceReport, reports};

use crate::desired::{DesiredState, GroupId, Service, ServiceId, TargetGroupId, TaskCount};
use crate::observed::{AlarmState, Observed, ObservedService, ProtectionRead, ResourceError, ServiceStatus};
use gate::{Admission, Budget, Conflict, Contested, Proposal, Unconfirmed};
use memory::{Field, FieldState, FieldValue};

/// What stands in the way of writing a field, from its revert tracking.
#[derive(Debug, Clone, Default)]
struct FieldCheck {
    contested: Option<Contested>,
    unconfirmed: Option<Unconfirmed>,
}

/// A managed resource, as status and backoff know it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ResourceKey {
    Service { region: String, cluster: String, service: String },
    TargetGroup { region: String, name: String },
    Alarm { region: String, name: String },
    Group { region: String, name: String },
}

impl ResourceKey {
    pub fn service(id: &ServiceId) -> Self {
        ResourceKey::Service { region: id.region.clone(), cluster: id.cluster.clone(), service: id.service.clone() }
    }

    pub fn group(id: &GroupId) -> Self {
        ResourceKey::Group { region: id.region.clone(), name: id.name.clone() }
    }

    pub fn target_group(id: &TargetGroupId) -> Self {
        ResourceKey::TargetGroup { region: id.region.clone(), name: id.target_group.name().to_string() }
    }

    pub fn alarm(region: &str, name: &str) -> Self {
        ResourceKey::Alarm { region: region.to_string(), name: name.to_string() }
    }
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceKey::Service { cluster, service, .. } => write!(f, "service/{cluster}/{service}"),
            ResourceKey::TargetGroup { name, .. } => write!(f, "targetgroup/{name}"),
            ResourceKey::Alarm { name, .. } => write!(f, "alarm/{name}"),
            ResourceKey::Group { name, .. } => write!(f, "autoscalinggroup/{name}"),
        }
    }
}

/// A change to make, with the resource it belongs to and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedChange {
    pub resource: ResourceKey,
    pub change: Change,
    pub reason: String,
}

/// What the planner decided for one service's desired count: the one
/// definition of "the count ballast wants" that status, gauges and
/// capacity read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServicePlan {
    /// The desired count ECS has now; `None` when the service was not read.
    pub observed: Option<u32>,
    /// The count ballast steers toward: the declared or scaled count, or
    /// the observed one while a conflict, a contested field or `suspend`
    /// holds the change. `None` when the service was not read.
    pub target: Option<u32>,
    /// Tasks a deployment adds above `target` for the time it hands its
    /// old tasks over ([`drain::deployment_room`]): ECS's desired count is
    /// `target + surge`, and instances are planned for both.
    pub surge: u32,
    /// Tasks ECS starts above its count by itself for such a deployment
    /// (within `maximumPercent`): instances are planned for them too.
    pub by_ecs: u32,
}

/// One pass's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<PlannedChange>,
    pub holds: Vec<Hold>,
    /// What is left as it is on purpose (foreign targets in a shared group).
    pub notices: Vec<Notice>,
    /// Per service, in the desired state's order: `services[i]` is what
    /// was decided for `desired.services[i]`.
    pub services: Vec<ServicePlan>,
    /// Scaling decisions, by service.
    pub decisions: BTreeMap<ServiceId, scaling::Decision>,
    pub capacity: BTreeMap<GroupId, capacity::CapacityDecision>,
    /// The memory to keep for the next pass (scaling window, reverts).
    pub memory: Memory,
}

impl Plan {
    pub fn is_converged(&self) -> bool {
        self.changes.is_empty()
    }

    /// The holds that stand for inputs that could not be read this pass:
    /// what depends on them was not decided.
    pub fn unread(&self) -> impl Iterator<Item = &Hold> {
        self.holds.iter().filter(|h| h.kind() == HoldKind::Unobserved)
    }

    /// Whether the plan was made on everything it needed.
    pub fn is_complete(&self) -> bool {
        self.unread().next().is_none()
    }
}

/// Plan one pass. Pure: the same inputs give the same plan. `memory` is
/// moved in and comes back, updated, in [`Plan::memory`].
pub fn plan(desired: &DesiredState, observed: &Observed, memory: Memory, now: SystemTime) -> Plan {
    plan_with(desired, observed, memory, now, FightPolicy::default())
}

/// Like [`plan`], with a non-default fight policy.
pub fn plan_with(
    desired: &DesiredState,
    observed: &Observed,
    memory: Memory,
    now: SystemTime,
    fight: FightPolicy,
) -> Plan {
    Planner {
        desired,
        observed,
        now,
        fight,
        out: Plan { memory, ..Plan::default() },
        leaving: BTreeMap::new(),
        terminating: BTreeMap::new(),
        surge_growth: BTreeMap::new(),
    }
    .run()
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a Observed,
    now: SystemTime,
    fight: FightPolicy,
    out: Plan,
    /// Tasks leaving for a scale-in, by service: the targets planner takes
    /// them out of their groups and registers them no more.
    leaving: BTreeMap<ServiceId, drain::Leaving>,
    /// Tasks on instances in `Terminating:Wait`, by service
    /// ([`terminations`]): out of their groups, and not the service's
    /// drain's to choose or protect.
    terminating: BTreeMap<ServiceId, drain::Leaving>,
    /// How much a deployment's surge grows this pass, by service: the part
    /// of a count change capacity does not cut.
    surge_growth: BTreeMap<ServiceId, u32>,
}

/// A drained service's count changes as the gate admitted them, for
/// [`Planner::drain`] to complete with the deployment's surge.
struct CountChanges {
    /// A change that raises the count (or keeps it, in base terms).
    raise: Option<PlannedChange>,
    /// A scale-in, which goes by drain.
    scale_in: Option<PlannedChange>,
    /// The surge in ECS's count as read ([`drain::read_surge`]).
    surge: u32,
}

/// Whether a service's scale-in goes by drain, and what it has to go on.
enum Drainable<'a> {
    /// ballast does not manage the tasks' protection (not asked for, a
    /// suspended document, another actor on the count): the plain count change.
    No,
    /// Something the drain needs could not be read: scale-in waits.
    Unread(String),
    /// ballast's last count change does not show in reads yet, or the
    /// count could not be decided: the drain waits for a read that does.
    Waits,
    Yes(&'a ObservedService),
}

impl<'a> Planner<'a> {
    fn run(mut self) -> Plan {
        // Counts are decided first (capacity follows them) but emitted after
        // capacity changes, so instances exist before tasks need them.
        let mut count_changes = Vec::new();
        let termination_changes = self.plan_terminations();
        self.out.services.reserve_exact(self.desired.services.len());
        for svc in &self.desired.services {
            let holds_before = self.out.holds.len();
            let (mut decided, proposal) = self.propose_count(svc);
            let mut drainable = self.drainable(svc);
            // A count decided without its inputs (alarms, CPU unread) says
            // nothing about a scale-in under way: the drain waits.
            let undecided = self.out.holds[holds_before..].iter().any(|h| h.kind() == HoldKind::Unobserved);
            if undecided && matches!(drainable, Drainable::Yes(_)) {
                drainable = Drainable::Waits;
            }
            let scale_in = |c: &Change| matches!(c, Change::SetDesiredCount { from, to, .. } if to < from);
            let count = match proposal {
                Some(p) => {
                    // ballast's last count does not show in reads yet: the
                    // drain waits for a read that does, rather than take
                    // the old count for the wanted one and undo itself.
                    let unconfirmed = p.unconfirmed.is_some();
                    match self.admit(p) {
                        Some(pc) => Some(pc),
                        None => {
                            decided.target = decided.observed.map(|o| o.saturating_sub(decided.surge));
                            if unconfirmed && matches!(drainable, Drainable::Yes(_)) {
                                drainable = Drainable::Waits;
                            }
                            None
                        }
                    }
                }
                None => None,
            };
            match (count, drainable) {
                (Some(pc), Drainable::Unread(why)) if scale_in(&pc.change) => {
                    let reason = HoldReason::Unobserved(format!("not applying: {}: {why}", pc.change));
                    self.hold(pc.resource, reason);
                    self.keep_out(svc);
                }
                (count, Drainable::Unread(_)) if self.live_service(&svc.id).is_ok_and(|o| o.deploying) => {
                    // The hand-over may have taken old tasks out of groups
                    // that were read: they stay out until it can decide.
                    self.push_count(svc, count, decided.surge, &mut count_changes);
                    if let Ok(observed) = self.live_service(&svc.id) {
                        let kept = drain::old_tasks_kept_out(observed);
                        if !kept.tasks.is_empty() {
                            self.leaving.insert(svc.id.clone(), kept);
                        }
                    }
                }
                (Some(pc), Drainable::Waits) if scale_in(&pc.change) => {
                    // A scale-in goes by drain only: it waits with the drain.
                    let reason = HoldReason::Unobserved(format!(
                        "not applying: {}: the drain waits for a complete read of the service's inputs",
                        pc.change
                    ));
                    self.hold(pc.resource, reason);
                    self.keep_out(svc);
                }
                // A drain may be under way that this pass cannot see
                // through: what is out stays out.
                (count, Drainable::Waits | Drainable::Unread(_)) => {
                    self.push_count(svc, count, decided.surge, &mut count_changes);
                    self.keep_out(svc);
                }
                (count, Drainable::Yes(observed)) => {
                    // In base terms: without the deployment's surge.
                    let target = match &count {
                        Some(PlannedChange { change: Change::SetDesiredCount { to, .. }, .. }) => *to,
                        _ => observed.desired_count,
                    }
                    .saturating_sub(decided.surge);
                    let (count, scale_in) = match count {
                        Some(pc) if scale_in(&pc.change) => (None, Some(pc)),
                        other => (other, None),
                    };
                    let counts = CountChanges { raise: count, scale_in, surge: decided.surge };
                    let room = self.drain(svc, observed, target, counts, &mut count_changes);
                    (decided.surge, decided.by_ecs) = (room.surge, room.by_ecs);
                }
                (count, _) => self.push_count(svc, count, decided.surge, &mut count_changes),
            }
            self.out.services.push(decided);
        }
        // Drains of services no longer in the desired state are forgotten.
        let services = &self.desired.services;
        self.out.memory.drains.retain(|id, _| services.iter().any(|s| &s.id == id));
        self.plan_capacities();
        self.fit_scale_outs_to_capacity(&mut count_changes);
        self.out.changes.extend(count_changes);
        let mut deregistrations = Vec::new();
        for svc in &self.desired.services {
            self.plan_service_targets(svc, &mut deregistrations);
        }
        self.out.changes.extend(deregistrations);
        self.out.changes.extend(termination_changes);
        for svc in &self.desired.services {
            self.plan_alarms(svc);
        }
        self.out
    }

    fn hold(&mut self, resource: ResourceKey, reason: HoldReason) {
        self.out.holds.push(Hold { resource, reason });
    }

    /// A resource as read this pass; one that could not be read is held
    /// (unobserved) and, like one not asked for, gives `None`. The key is
    /// built only for the hold: a converged pass allocates nothing here.
    fn read<T>(
        &mut self,
        key: impl FnOnce() -> ResourceKey,
        entry: Option<&'a Result<T, ResourceError>>,
    ) -> Option<&'a T> {
        match entry? {
            Ok(v) => Some(v),
            Err(e) => {
                self.hold(key(), HoldReason::Unobserved(e.to_string()));
                None
            }
        }
    }

    /// Pass `p` through the gate; its holds go into the plan, the change
    /// is returned when admitted.
    fn admit(&mut self, p: Proposal) -> Option<PlannedChange> {
        match gate::admit(p) {
            Admission::Admitted(pc, limits) => {
                self.out.holds.extend(limits);
                Some(pc)
            }
            Admission::Held(h) => {
                self.out.holds.push(h);
                None
            }
        }
    }

    /// Record this pass's value of a field ballast writes, and say what
    /// stands in the way of writing it.
    fn check_field(&mut self, field: impl Fn() -> Field, value: FieldValue) -> FieldCheck {
        match self.out.memory.observe_field_with(&field, value, self.now, self.fight) {
            FieldState::Free => FieldCheck::default(),
            FieldState::Contested => {
                let field = field();
                let reverts = self.out.memory.fields.get(&field).map_or(0, |m| m.reverts.len());
                FieldCheck {
                    contested: Some(Contested { field, reverts, window: self.fight.window }),
                    unconfirmed: None,
                }
            }
            FieldState::Unconfirmed { since } => FieldCheck {
                contested: None,
                unconfirmed: Some(Unconfirmed {
                    field: field(),
                    age: self.now.duration_since(since).unwrap_or_default(),
                    lag: self.fight.consistency_lag,
                }),
            },
        }
    }

    /// The service as observed, if it can be planned: read this pass and
    /// ACTIVE. Otherwise why not, in words that name it. A deleted service
    /// (INACTIVE, or DRAINING while its tasks stop) gets no write at all:
    /// updating it would fail or bring nothing back.
    fn live_service(&self, id: &ServiceId) -> Result<&'a ObservedService, String> {
        match self.observed.services.get(id) {
            Some(Ok(o)) if o.status == ServiceStatus::Active => Ok(o),
            Some(Ok(o)) => Err(format!(
                "service {id} is {} in ECS (deleted); nothing is written for it until it is created again",
                o.status
            )),
            Some(Err(e)) => Err(format!("service {id}: {e}")),
            None => Err(format!("service {id}: not observed this pass")),
        }
    }

    /// The service's observed and wanted counts, and the change that would
    /// move it, before the gate.
    fn propose_count(&mut self, svc: &Service) -> (ServicePlan, Option<Proposal>) {
        let observed = match self.live_service(&svc.id) {
            Ok(o) => o,
            Err(why) => {
                self.hold(ResourceKey::service(&svc.id), HoldReason::Unobserved(why));
                return (ServicePlan::default(), None);
            }
        };
        // ECS's count less the deployment's surge: what scaling decides on.
        let surge = drain::read_surge(observed);
        let ecs_count = observed.desired_count;
        let current = ecs_count - surge;
        let target = match (svc.tasks, &svc.scaling) {
            (TaskCount::Fixed(n), _) => n,
            (TaskCount::Range { min, max }, Some(policy)) => {
                // What the decision reads, and what of it could not be read.
                let mut unread = Vec::new();
                let [high, low] = alarms::alarm_names(&svc.id);
                let mut state = |name: String| match self.observed.alarms.get(&(svc.id.region.clone(), name.clone())) {
                    Some(Ok(a)) => Some(a.state),
                    Some(Err(e)) => {
                        unread.push(format!("alarm {name}: {e}"));
                        None
                    }
                    None => None,
                };
                let (high_alarm, low_alarm) = (state(high), state(low));
                let cpu = match self.observed.cpu.get(&svc.id) {
                    Some(Ok(sample)) => *sample,
                    Some(Err(e)) if policy.target_cpu.is_some() => {
                        unread.push(format!("the CPU metric: {e}"));
                        None
                    }
                    _ => None,
                };
                let view = scaling::ScalingView {
                    current,
                    running: observed.running_count,
                    min,
                    max,
                    deploying: observed.deploying,
                    high_alarm,
                    low_alarm,
                    cpu,
                };
                let now = self.now;
                let mem = self
                    .out
                    .memory
                    .scaling
                    .entry(svc.id.clone())
                    .or_insert_with(|| memory::ScalingMemory::from_marks(&observed.scaling_marks, now));
                let mut decision = scaling::decide(policy, view, mem, self.now);
                if !unread.is_empty() {
                    // Decided without what it needs: it holds (within the
                    // bounds), and says which read failed, never "no data".
                    decision.reason = scaling::DecisionReason::NoData;
                    decision.desired = current.clamp(min, max);
                    decision.message = format!("could not read {}; holding", unread.join("; "));
                    self.hold(ResourceKey::service(&svc.id), HoldReason::Unobserved(decision.message.clone()));
                } else {
                    // A decision that keeps the count is a hold, unless
                    // nothing asked for a change: no alarm firing means no
                    // data is needed.
                    let firing = [view.high_alarm, view.low_alarm].contains(&Some(AlarmState::Alarm));
                    let quiet = match decision.reason {
                        scaling::DecisionReason::Steady => true,
                        scaling::DecisionReason::NoData => !firing,
                        _ => false,
                    };
                    if decision.desired == current && !quiet {
                        self.hold(ResourceKey::service(&svc.id), HoldReason::Scaling(decision.message.clone()));
                    }
                }
                let target = decision.desired;
                self.out.decisions.insert(svc.id.clone(), decision);
                target
            }
            (TaskCount::Range { min, max }, None) => current.clamp(min, max),
        };
        let field = self.check_field(|| Field::DesiredCount(svc.id.clone()), ecs_count.into());
        let decided = ServicePlan { observed: Some(ecs_count), target: Some(target), surge, by_ecs: 0 };
        if target == current {
            return (decided, None);
        }
        let mut reason = match (svc.tasks, self.out.decisions.get(&svc.id)) {
            (TaskCount::Fixed(n), _) => format!("declared count is {n}"),
            (_, Some(d)) => d.message.clone(),
            (TaskCount::Range { min, max }, None) => {
                format!("observed count {current} is outside [{min}, {max}]")
            }
        };
        let per_pass = svc.budget.max_count_change_per_pass;
        let to = if target > current {
            target.min(current.saturating_add(per_pass))
        } else {
            target.max(current.saturating_sub(per_pass))
        };
        let mut limits = Vec::new();
        if to != target {
            limits.push(HoldReason::Budget(Budget::DesiredCount { per_pass, from: current, now: to, target }));
            reason = format!("{reason} (stepping by the budget of {per_pass})");
        }
        let change = Change::SetDesiredCount { service: svc.id.clone(), from: ecs_count, to: to + surge };
        let p = Proposal {
            conflict: (observed.scalable_target && !svc.take_over.desired_count).then_some(Conflict::ScalableTarget),
            contested: field.contested,
            unconfirmed: field.unconfirmed,
            suspended: svc.suspend,
            limits,
            ..Proposal::new(ResourceKey::service(&svc.id), change, reason)
        };
        (decided, Some(p))
    }

    /// Whether the service's scale-in drains ([`drain`]): ballast manages
    /// its count and its tasks' protection was read, with every bound group.
    fn drainable(&self, svc: &'a Service) -> Drainable<'a> {
        let Ok(observed) = self.live_service(&svc.id) else { return Drainable::No };
        let count_conflict = observed.scalable_target && !svc.take_over.desired_count;
        if svc.suspend || count_conflict {
            return Drainable::No;
        }
        if observed.protection == ProtectionRead::NotAsked {
            return Drainable::No;
        }
        for b in &svc.target_groups {
            match self.observed.target_groups.get(&b.target_group) {
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    return Drainable::Unread(format!(
                        "target group {} could not be read, so its targets cannot be drained: {e}",
                        b.target_group.target_group.name()
                    ));
                }
                None => {
                    return Drainable::Unread(format!(
                        "target group {} was not read",
                        b.target_group.target_group.name()
                    ));
                }
            }
        }
        // The tasks of instances that may be terminating are neither the
        // drain's to protect nor to choose until the group is read.
        if self.terminating.get(&svc.id).is_some_and(|l| l.undecided) {
            return Drainable::Unread(format!(
                "the Auto Scaling group of cluster {} could not be read, so which instances are terminating \
                 cannot be told",
                svc.id.cluster
            ));
        }
        Drainable::Yes(observed)
    }

    /// While the drain waits, the tasks already out of service stay out:
    /// one may be a drained task ECS is about to stop.
    fn keep_out(&mut self, svc: &'a Service) {
        let Ok(observed) = self.live_service(&svc.id) else { return };
        let kept = drain::kept_out(observed, &self.bound_groups(svc));
        if !kept.tasks.is_empty() {
            self.leaving.insert(svc.id.clone(), kept);
        }
    }

    /// The service's bound target groups that were read, with their bindings.
    fn bound_groups(
        &self,
        svc: &'a Service,
    ) -> Vec<(&'a crate::desired::TargetGroupBinding, &'a crate::observed::ObservedTargetGroup)> {
        let read = |b: &'a crate::desired::TargetGroupBinding| match self.observed.target_groups.get(&b.target_group) {
            Some(Ok(g)) => Some((b, g)),
            _ => None,
        };
        svc.target_groups.iter().filter_map(read).collect()
    }

    /// A task's zone, and whether a Capacity document declares it
    /// on-demand, from the groups' instances.
    fn zone_of(&self, instance_id: &str) -> Option<(String, bool)> {
        for cap in &self.desired.capacities {
            let Some(Ok(group)) = self.observed.groups.get(&cap.group) else { continue };
            if let Some(i) = group.instances.iter().find(|i| i.id == instance_id) {
                // The instance's subnet as the ECS agent registered it.
                let on_demand = cap.zones.iter().any(|z| {
                    matches!(z.mode, crate::desired::ZoneMode::OnDemand { .. })
                        && i.subnet.as_deref() == Some(z.subnet.as_str())
                });
                return Some((i.zone.clone(), on_demand));
            }
        }
        None
    }

    /// Keep the service's tasks protected and drive its scale-in
    /// (`counts.scale_in`, the admitted count change, when one is wanted)
    /// by drain, and a deployment's hand-over with its surge: its changes
    /// go into `count_changes`, the leaving tasks to the targets planner.
    /// `target` is the count the service should have, without a surge.
    /// Returns the surge ECS's count carries after this pass, and the
    /// tasks ECS starts above it by itself.
    fn drain(
        &mut self,
        svc: &'a Service,
        observed: &'a ObservedService,
        target: u32,
        counts: CountChanges,
        count_changes: &mut Vec<PlannedChange>,
    ) -> drain::DeploymentRoom {
        let CountChanges { raise, scale_in, surge } = counts;
        let view = self.without_terminating(&svc.id, observed);
        let observed = view.as_ref().unwrap_or(observed);
        // The path of every converged pass, without allocating: nothing
        // leaves, nothing is draining, every serving task is protected
        // (no deployment, so no surge).
        if scale_in.is_none() && !self.out.memory.drains.contains_key(&svc.id) && drain::settled(observed, self.now) {
            count_changes.extend(raise);
            return drain::DeploymentRoom { surge, by_ecs: 0 };
        }
        let groups = &self.bound_groups(svc)[..];
        let mut since = self.out.memory.drains.remove(&svc.id).unwrap_or_default();
        let zone_of = |i: &str| self.zone_of(i);
        let input = drain::DrainInput {
            service: observed,
            groups,
            target,
            per_pass: svc.budget.max_deregistrations_per_pass,
            zone_of: &zone_of,
            no_scale_in: observed.deploying,
            surge,
            now: self.now,
        };
        let d = drain::plan_drain(&input, &mut since);
        if !since.is_empty() {
            self.out.memory.drains.insert(svc.id.clone(), since);
        }
        let key = ResourceKey::service(&svc.id);
        if observed.deploying && observed.desired_count - surge > target {
            let why = "scale-in waits until the deployment in progress is done: ballast drains only the tasks it                        chooses, and the deployment is replacing them";
            self.hold(key.clone(), HoldReason::Scaling(why.to_string()));
        }
        let mut proposals = Vec::new();
        if !d.protect.is_empty() {
            let change = Change::SetTaskProtection {
                service: svc.id.clone(),
                tasks: d.protect.clone(),
                minutes: Some(drain::PROTECTION_MINUTES),
            };
            let reason = format!(
                "{} serving task(s) of {} are not protected from scale-in, or their protection ends within {} min:                  ECS must stop only the tasks ballast drained",
                d.protect.len(),
                svc.id,
                drain::RENEW_BELOW.as_secs() / 60
            );
            proposals.push(Proposal::new(key.clone(), change, reason));
        }
        if !d.unprotect.is_empty() {
            let change =
                Change::SetTaskProtection { service: svc.id.clone(), tasks: d.unprotect.clone(), minutes: None };
            let reason = if d.deployment.is_some() {
                format!(
                    "{} task(s) of an older deployment of {} drained: the deployment may stop them",
                    d.unprotect.len(),
                    svc.id
                )
            } else {
                format!("{} task(s) of {} drained for scale-in: ECS may stop them", d.unprotect.len(), svc.id)
            };
            proposals.push(Proposal::new(key.clone(), change, reason));
        }
        let mut released = Vec::new();
        for p in proposals {
            if let Some(pc) = self.admit(p) {
                if let Change::SetTaskProtection { tasks, minutes: None, .. } = &pc.change {
                    released.extend(tasks.iter().cloned());
                }
                count_changes.push(pc);
            }
        }
        // The surge follows the old tasks still protected after this
        // pass's releases: it comes off with the last of them, in the same
        // step, so ECS stops exactly those and starts no task for them.
        let protected_old = drain::protected_old(observed, &released, self.now);
        let room = drain::deployment_room(&svc.target_groups, observed, target, protected_old);
        // No deployment to name in the mark: no surge.
        let wanted = if observed.primary_deployment.is_some() { room.surge } else { 0 };
        let surge = self.surge(svc, observed, (surge, wanted), raise, count_changes);
        if let (Some(to), Some(mut pc)) = (d.lower_to, scale_in)
            && let Change::SetDesiredCount { from, .. } = pc.change
        {
            pc.change = Change::SetDesiredCount { service: svc.id.clone(), from, to };
            pc.reason = format!("{}; the drained task(s) leave: ECS stops exactly those", pc.reason);
            count_changes.push(pc);
        }
        if let Some(w) = &d.waiting {
            self.hold(key.clone(), HoldReason::Draining(w.clone()));
        }
        if let Some(h) = &d.deployment {
            self.hold(key, HoldReason::Deploying(drain::Handover { surge, ..h.clone() }));
        }
        if !d.leaving.tasks.is_empty() {
            self.leaving.insert(svc.id.clone(), d.leaving);
        }
        drain::DeploymentRoom { surge, by_ecs: room.by_ecs }
    }
}

#[cfg(test)]
mod liveness;
#[cfg(test)]
mod partial;
#[cfg(test)]
mod tests;
