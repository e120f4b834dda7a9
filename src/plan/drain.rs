//! Scale-in by drain: ballast chooses the tasks that leave, takes their
//! targets out of every bound group, waits until they have drained, then
//! removes their scale-in protection and lowers the desired count, so that
//! ECS stops those tasks and no others.
//!
//! ECS picks the tasks to stop when a desired count drops, and stops them
//! at once, while the load balancer still sends them connections. ECS
//! task scale-in protection (UpdateTaskProtection) keeps the scheduler's
//! scale-in off a task; ballast keeps it on every serving task of a
//! service whose count it manages, so that when it lowers the count, the
//! only unprotected tasks are the ones it drained.
//!
//! Every step is derived from what AWS reports, so a controller that
//! restarts mid-drain carries on:
//!
//! - **Which tasks leave** is chosen each pass, by an order that puts the
//!   tasks furthest on their way out first (not yet started, then out of
//!   every group, then draining, then serving), then those in on-demand
//!   zones, in the zone with the most of the service's tasks, the newest.
//!   A task ballast already took out of its groups is chosen again.
//! - **Drained** means no target of the task is left in any bound group
//!   (the load balancer removes a target once the group's deregistration
//!   delay has passed) and the binding's `propagationLag` has passed since
//!   a pass first saw the task out of service ([`Memory::drains`]). After
//!   a restart that count starts again at the first pass: a longer wait,
//!   never a shorter one.
//! - **Handed to ECS**: protection comes off the drained tasks (a write
//!   that makes the next pass read protection afresh); once a read shows
//!   them unprotected and every other task protected, the desired count
//!   drops by as many. A failure between the two steps leaves drained,
//!   unprotected tasks that the next pass hands over again.
//!
//! - **Deployments** hand their old tasks over with the same steps: while
//!   a service deploys, a task ECS started for an older deployment
//!   (`startedBy`) stays protected until it is chosen; it is chosen once
//!   every bound group keeps more healthy targets than its floor without
//!   it (the binding's `minHealthy`, or the count the service should
//!   have: a new task healthy first), or at once if it is healthy in no
//!   group; drained, its protection comes off and the deployment stops
//!   it. A deployment held at the floor while a new task stays unhealthy
//!   for [`STALL_AFTER`] is reported as stalled.
//! - **A deployment's surge**: with `maximumPercent` at 100, ECS starts no
//!   new task while every old one is protected, so the old tasks the floor
//!   holds would wait for a first drain to make room, then drain in a
//!   second one. While old tasks are protected, ballast raises the desired
//!   count by as many as the floor holds ([`deployment_room`]): ECS starts
//!   that many new tasks at once, and every old task drains in one round.
//!   The surge comes off in the pass that unprotects the last old tasks,
//!   so ECS stops exactly those. It is read back from the surge mark (the
//!   service's tag, [`read_surge`]), never from memory.
//!
//! The same per-task steps (take out of every group, wait, release) are
//! what an instance drain needs: they ask for a task to leave through
//! [`Leaving`], whatever the cause.
//!
//! [`Memory::drains`]: super::Memory::drains

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::gate::Proposal;
use super::{Change, PlannedChange, ResourceKey};
use crate::desired::{Service, TargetGroupBinding};
use crate::observed::{
    ObservedService, ObservedTargetGroup, ObservedTask, ProtectionRead, SurgeMark, TargetHealth, TaskStatus,
};

/// How long ballast protects a serving task at a time (UpdateTaskProtection's
/// `expiresInMinutes`). Short enough that a controller that is gone lets
/// ECS scale in by itself within the hour.
pub const PROTECTION_MINUTES: u32 = 60;

/// Protection is renewed once less than this is left.
pub const RENEW_BELOW: Duration = Duration::from_secs(30 * 60);

/// Whether the task's protection must be renewed this pass: none, or it
/// ends within [`RENEW_BELOW`].
pub fn protection_due(task: &ObservedTask, now: SystemTime) -> bool {
    task.protected_until.is_none_or(|until| until < now + RENEW_BELOW)
}

/// Every task that stays must be protected at least this much longer when
/// the desired count drops: ECS acts on the new count at once.
const PROTECTED_MARGIN: Duration = Duration::from_secs(60);

/// Tasks taken out of their target groups, for the targets planner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Leaving {
    /// Every task leaving: its targets are no longer wanted in any group
    /// and it is not registered again.
    pub tasks: BTreeSet<String>,
    /// Those whose serving targets are deregistered this pass (the rest
    /// wait for the budget): all their groups at once.
    pub now: BTreeSet<String>,
    /// The tasks are only kept out until the count can be decided
    /// ([`kept_out`]): none was chosen to leave, so they still count toward
    /// the healthy floor, which must not drop because an input is unread.
    pub undecided: bool,
}

/// Where a task is on its way out of its target groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Routing {
    /// Not RUNNING yet: never received traffic.
    NotStarted,
    /// No target in any bound group.
    Out,
    /// No target in service, at least one still draining.
    Draining,
    /// At least one target registered and not draining (or none yet).
    Routed,
}

/// What the drain decided for one service this pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DrainPlan {
    pub leaving: Leaving,
    /// Serving tasks to protect, or whose protection runs out soon.
    pub protect: Vec<String>,
    /// Drained tasks (and tasks of an older deployment) whose protection
    /// comes off.
    pub unprotect: Vec<String>,
    /// The desired count that hands the drained tasks to ECS, when lower
    /// than the count ECS has.
    pub lower_to: Option<u32>,
    /// Why the scale-in is not done yet, for the hold.
    pub waiting: Option<Waiting>,
    /// A deployment's hand-over of its old tasks, while one rolls.
    pub deployment: Option<Handover>,
}

/// A new task that has been RUNNING this long without becoming healthy
/// in every bound group, while the hand-over is at its floor, makes the
/// deployment stalled: reported, and no old task goes further.
pub const STALL_AFTER: Duration = Duration::from_secs(5 * 60);

/// A deployment's hand-over: where it is, and what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handover {
    /// Live tasks of older deployments.
    pub old: u32,
    /// Live tasks of the primary deployment, and those of them healthy in
    /// every bound group.
    pub new: u32,
    pub new_healthy: u32,
    /// Old tasks taken out of their groups (draining, drained or handed to ECS).
    pub leaving: u32,
    /// Old healthy tasks kept in service by the floor.
    pub held: u32,
    /// The healthy targets the tightest bound group keeps at the least:
    /// its binding's `minHealthy`, or the count the service should have
    /// (never 0).
    pub floor: u32,
    /// That group's healthy targets of the service once the leaving
    /// tasks are out.
    pub in_service: u32,
    /// Of the leaving tasks, those still in service or draining.
    pub draining: u32,
    /// The longest known wait left (the propagation lag).
    pub left: Duration,
    /// At the floor while a new task has not become healthy for
    /// [`STALL_AFTER`]: reported as a condition and a metric.
    pub stalled: bool,
    /// The tasks ballast adds to the desired count meanwhile
    /// ([`deployment_room`]), once this pass's changes are applied.
    pub surge: u32,
}

/// A scale-in in progress: what it waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    /// Tasks chosen to leave.
    pub tasks: u32,
    /// Of them, tasks whose targets are still in service or draining.
    pub draining: u32,
    /// The longest wait left that is known: the propagation lag after the
    /// last target is gone (the deregistration delay itself is the load
    /// balancer's to count).
    pub left: Duration,
    /// Tasks that stay but are not protected yet: ECS could pick them.
    pub unprotected: u32,
}

/// What the drain of one service reads.
pub struct DrainInput<'a> {
    pub service: &'a ObservedService,
    /// Each bound group with what it holds.
    pub groups: &'a [(&'a TargetGroupBinding, &'a ObservedTargetGroup)],
    /// How many tasks should run: a scale-in when below the live tasks.
    pub target: u32,
    /// `budget.maxDeregistrationsPerPass`: tasks taken out of service per pass.
    pub per_pass: u32,
    /// A task's zone and whether it is an on-demand one, by instance id.
    pub zone_of: &'a dyn Fn(&str) -> Option<(String, bool)>,
    /// No task may be chosen (a deployment is rolling): protection only.
    pub no_scale_in: bool,
    /// The deployment's surge in the desired count ECS has ([`read_surge`]).
    pub surge: u32,
    pub now: SystemTime,
}

/// Decide the service's protection and drain. `since` is the service's
/// part of [`super::Memory::drains`]: entries of tasks that no longer
/// leave are dropped.
pub fn plan_drain(input: &DrainInput<'_>, since: &mut BTreeMap<String, SystemTime>) -> DrainPlan {
    let svc = input.service;
    let now = input.now;
    let mut out = DrainPlan::default();
    let live: Vec<&ObservedTask> = svc.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running).collect();
    let routing: BTreeMap<&str, Routing> = live.iter().map(|t| (t.arn.as_str(), routing(t, input.groups))).collect();
    let (old, current): (Vec<&ObservedTask>, Vec<&ObservedTask>) =
        live.iter().copied().partition(|t| is_older_deployment(svc, t));
    let chosen: Vec<&ObservedTask> = if old.is_empty() {
        choose_for_scale_in(input, &current, &routing, since)
    } else {
        let (chosen, handover) = choose_for_handover(input, &live, &old, &routing, since);
        out.deployment = Some(handover);
        chosen
    };
    let chosen_arns: BTreeSet<&str> = chosen.iter().map(|t| t.arn.as_str()).collect();
    since.retain(|arn, _| chosen_arns.contains(arn.as_str()));

    // Protection of the tasks that stay and carry traffic: a target in
    // service in some bound group (any serving task, without groups). A
    // task the load balancer does not route to yet loses nothing if ECS
    // stops it, and is protected once registered.
    let carries_traffic =
        |t: &ObservedTask| t.is_serving() && (input.groups.is_empty() || routing[t.arn.as_str()] == Routing::Routed);
    let staying: Vec<&ObservedTask> =
        live.iter().copied().filter(|t| !chosen_arns.contains(t.arn.as_str()) && carries_traffic(t)).collect();
    for t in &staying {
        if protection_due(t, now) {
            out.protect.push(t.arn.clone());
        }
    }

    let lag = input.groups.iter().map(|(b, _)| b.propagation_lag).max().unwrap_or_default();
    let mut ready = 0u32;
    let mut waiting = Waiting { tasks: chosen.len() as u32, draining: 0, left: Duration::ZERO, unprotected: 0 };
    for t in &chosen {
        out.leaving.tasks.insert(t.arn.clone());
        match routing[t.arn.as_str()] {
            Routing::NotStarted => ready += 1,
            Routing::Routed => {
                waiting.draining += 1;
                if (out.leaving.now.len() as u32) < input.per_pass {
                    out.leaving.now.insert(t.arn.clone());
                }
            }
            Routing::Draining => {
                since.entry(t.arn.clone()).or_insert(now);
                waiting.draining += 1;
            }
            Routing::Out => {
                let from = *since.entry(t.arn.clone()).or_insert(now);
                let left = (from + lag).duration_since(now).unwrap_or_default();
                if !left.is_zero() {
                    waiting.left = waiting.left.max(left);
                } else if t.protected_until.is_some() {
                    out.unprotect.push(t.arn.clone());
                } else {
                    ready += 1;
                }
            }
        }
        if let Some(from) = since.get(&t.arn) {
            waiting.left = waiting.left.max((*from + lag).duration_since(now).unwrap_or_default());
        }
    }

    // Hand the ready tasks to ECS once every task that stays and carries
    // traffic is protected (ECS may stop one that carries none instead:
    // nothing is lost, and the drained task is handed over again).
    waiting.unprotected =
        staying.iter().filter(|t| t.protected_until.is_none_or(|until| until < now + PROTECTED_MARGIN)).count() as u32;
    if let Some(handover) = &mut out.deployment {
        // The deployment stops the handed-over tasks itself: no count
        // changes for them.
        handover.draining = waiting.draining;
        handover.left = waiting.left;
        return out;
    }
    // ECS stops `live - to` tasks, each an unprotected one: at most the
    // ready ones, and only those while every task that stays is protected.
    let to = (live.len() as u32 - ready).max(input.target);
    let stops = (live.len() as u32).saturating_sub(to);
    if to < svc.desired_count && (stops == 0 || waiting.unprotected == 0) {
        out.lower_to = Some(to);
    }
    if (ready as usize) < chosen.len() || (ready > 0 && out.lower_to.is_none()) {
        out.waiting = Some(waiting);
    }
    out
}

/// Whether the task was started by a deployment older than the primary
/// one while the service deploys: the deployment is replacing it.
fn is_older_deployment(svc: &ObservedService, t: &ObservedTask) -> bool {
    match (&svc.primary_deployment, &t.started_by) {
        (Some(primary), Some(by)) => svc.deploying && by.starts_with("ecs-svc/") && by != primary,
        _ => false,
    }
}

/// The tasks a scale-in takes out, one at a time as ECS balances its own
/// scale-in (the zone counts change with each task chosen): the tasks
/// furthest on their way out first, then those in on-demand zones, in the
/// zone with the most of the service's tasks, the newest.
fn choose_for_scale_in<'t>(
    input: &DrainInput<'t>,
    current: &[&'t ObservedTask],
    routing: &BTreeMap<&str, Routing>,
    since: &BTreeMap<String, SystemTime>,
) -> Vec<&'t ObservedTask> {
    let leave = if input.no_scale_in { 0 } else { (current.len() as u32).saturating_sub(input.target) as usize };
    let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
    for t in current {
        if let Some((zone, _)) = t.instance_id.as_deref().and_then(input.zone_of) {
            *per_zone.entry(zone).or_default() += 1;
        }
    }
    let mut candidates: Vec<(&ObservedTask, Option<(String, bool)>)> =
        current.iter().map(|t| (*t, t.instance_id.as_deref().and_then(input.zone_of))).collect();
    let mut chosen: Vec<&ObservedTask> = Vec::with_capacity(leave);
    while chosen.len() < leave && !candidates.is_empty() {
        let key = |(t, place): &(&ObservedTask, Option<(String, bool)>)| {
            let on_demand = place.as_ref().is_some_and(|(_, od)| *od);
            let crowd = place.as_ref().map_or(0, |(z, _)| per_zone[z]);
            (
                routing[t.arn.as_str()],
                // A task whose drain began earlier is further on its way.
                since.get(&t.arn).is_none(),
                since.get(&t.arn).copied(),
                !on_demand,
                std::cmp::Reverse(crowd),
                std::cmp::Reverse(t.started_at),
                std::cmp::Reverse(t.arn.clone()),
            )
        };
        let best = (0..candidates.len()).min_by_key(|&i| key(&candidates[i])).unwrap_or(0);
        let (task, place) = candidates.swap_remove(best);
        if let Some((zone, _)) = place {
            per_zone.entry(zone).and_modify(|n| *n -= 1);
        }
        chosen.push(task);
    }
    chosen
}

/// The old tasks a deployment's hand-over takes out this pass: every old
/// task that carries no healthy traffic (it costs nothing), then healthy
/// ones, furthest on their way out then the oldest, while every bound
/// group keeps more healthy targets than its floor: the binding's
/// `minHealthy`, or by default the count the service should have (the
/// larger of ECS's desired count and ballast's), so that a new task is
/// healthy before an old one goes.
fn choose_for_handover<'t>(
    input: &DrainInput<'t>,
    live: &[&'t ObservedTask],
    old: &[&'t ObservedTask],
    routing: &BTreeMap<&str, Routing>,
    since: &BTreeMap<String, SystemTime>,
) -> (Vec<&'t ObservedTask>, Handover) {
    // Per bound group: the floor, and the service's tasks healthy there.
    // Without bound groups ballast routes nothing to the tasks (ECS's own
    // load-balancer integration drains them before it stops them, if
    // any): every old task is handed over at once.
    let desired = input.service.desired_count.saturating_sub(input.surge).max(input.target);
    let healthy_in_group = |t: &ObservedTask, g: Option<usize>| g.is_some_and(|i| is_healthy_in(t, input.groups[i]));
    let groups: Vec<Option<usize>> =
        if input.groups.is_empty() { vec![None] } else { (0..input.groups.len()).map(Some).collect() };
    let floor_of = |g: Option<usize>| g.map_or(0, |i| input.groups[i].0.min_healthy.unwrap_or(desired).max(1));
    let mut healthy: Vec<u32> =
        groups.iter().map(|&g| live.iter().filter(|t| healthy_in_group(t, g)).count() as u32).collect();
    let serves = |t: &ObservedTask| groups.iter().any(|&g| healthy_in_group(t, g));
    let mut order: Vec<&ObservedTask> = old.to_vec();
    order.sort_by_key(|t| {
        (serves(t), routing[t.arn.as_str()], since.get(&t.arn).is_none(), t.started_at, t.arn.clone())
    });
    let mut chosen = Vec::new();
    let mut held = 0u32;
    for t in order {
        let costs: Vec<usize> = (0..groups.len()).filter(|&i| healthy_in_group(t, groups[i])).collect();
        if costs.iter().all(|&i| healthy[i] > floor_of(groups[i])) {
            for i in costs {
                healthy[i] -= 1;
            }
            chosen.push(t);
        } else {
            held += 1;
        }
    }
    // The group with the least room tells what the hand-over waits for.
    let tightest = (0..groups.len()).min_by_key(|&i| healthy[i] as i64 - floor_of(groups[i]) as i64).unwrap_or(0);
    let new: Vec<&ObservedTask> = live.iter().copied().filter(|t| !old.iter().any(|o| o.arn == t.arn)).collect();
    let healthy_everywhere = |t: &ObservedTask| groups.iter().all(|&g| healthy_in_group(t, g));
    let new_healthy = new.iter().filter(|t| healthy_everywhere(t)).count() as u32;
    // Held at the floor while a new task has run for long without becoming
    // healthy: the deployment is not getting anywhere by itself.
    let stuck_since = new
        .iter()
        .filter(|t| t.last_status == TaskStatus::Running && !healthy_everywhere(t))
        .filter_map(|t| t.started_at)
        .min();
    let stalled = held > 0 && stuck_since.is_some_and(|at| at + STALL_AFTER <= input.now);
    let handover = Handover {
        old: old.len() as u32,
        new: new.len() as u32,
        new_healthy,
        leaving: chosen.len() as u32,
        held,
        floor: floor_of(groups[tightest]),
        in_service: healthy[tightest],
        draining: 0,
        left: Duration::ZERO,
        stalled,
        surge: 0,
    };
    (chosen, handover)
}

/// The live tasks of older deployments ECS cannot stop yet: protected
/// from scale-in, not among `released` (unprotected this pass).
pub fn protected_old(service: &ObservedService, released: &[String], now: SystemTime) -> u32 {
    let protected = |t: &&ObservedTask| t.protected_until.is_some_and(|until| until > now);
    let live = service.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running);
    live.filter(|t| is_older_deployment(service, t)).filter(protected).filter(|t| !released.contains(&t.arn)).count()
        as u32
}

/// The tasks a deploying service runs above its count while it hands its
/// old tasks over, and who asks for them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeploymentRoom {
    /// Added to the desired count by ballast: `maximumPercent` 100 lets
    /// ECS start no task above it.
    pub surge: u32,
    /// Started by ECS itself within `maximumPercent`, without a count
    /// change: only instances must be planned for them.
    pub by_ecs: u32,
}

/// The tasks a deploying service needs above `base` (the count it should
/// have): as many new tasks as the tightest bound group's floor holds old
/// ones back (its `minHealthy`, or `base`), never more than the
/// `protected_old` tasks still in the way. With `maximumPercent` at 100
/// ballast surges the count by that many; above 100, ECS starts as many
/// as its room allows by itself. Nothing when `maximumPercent` was not
/// read, when no group is bound (the old tasks go at once), or when
/// ballast does not keep the tasks' protection.
pub fn deployment_room(
    bindings: &[TargetGroupBinding],
    service: &ObservedService,
    base: u32,
    protected_old: u32,
) -> DeploymentRoom {
    if !service.deploying || service.protection == ProtectionRead::NotAsked {
        return DeploymentRoom::default();
    }
    let floor = bindings.iter().map(|b| b.min_healthy.unwrap_or(base).max(1)).max().unwrap_or(0);
    let need = protected_old.min(floor);
    match service.maximum_percent {
        Some(p) if p <= 100 => DeploymentRoom { surge: need, by_ecs: 0 },
        // ECS rounds the upper limit down.
        Some(p) => DeploymentRoom { surge: 0, by_ecs: need.min((base * p / 100).saturating_sub(base)) },
        None => DeploymentRoom::default(),
    }
}

/// The surge in the desired count ECS has, read from the surge mark: the
/// base count ballast marked for that count during the deployment in
/// progress. A mark of an earlier deployment counts only by its newest
/// count, the one ballast set last (a deployment that replaced another
/// mid-surge inherits its surge; a surge that ended left its base there,
/// no surge). 0 outside a deployment, or for a count ballast did not mark
/// (someone else set it).
pub fn read_surge(service: &ObservedService) -> u32 {
    let (Some(mark), Some(primary)) = (&service.surge_mark, &service.primary_deployment) else { return 0 };
    if !service.deploying {
        return 0;
    }
    let counts = if &mark.deployment == primary { &mark.counts[..] } else { &mark.counts[..1.min(mark.counts.len())] };
    let count = service.desired_count;
    counts.iter().find(|(c, _)| *c == count).map_or(0, |(c, base)| c.saturating_sub(*base))
}

/// Whether the task's target is healthy in the group: the load balancer
/// routes to it (a task that is no longer RUNNING included, until its
/// health checks fail).
fn is_healthy_in(task: &ObservedTask, (b, g): (&TargetGroupBinding, &ObservedTargetGroup)) -> bool {
    super::targets::task_target(task, b)
        .is_some_and(|target| g.targets.iter().any(|t| t.target == target && t.health == TargetHealth::Healthy))
}

/// Whether the service needs nothing from the drain this pass: no
/// deployment, no more live tasks than the desired count, and every
/// serving task protected for longer than the renewal threshold. (A task
/// not yet registered fails the last test: the full drain then looks.)
pub fn settled(service: &ObservedService, now: SystemTime) -> bool {
    let live = service.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running);
    !service.deploying
        && live.clone().count() as u32 <= service.desired_count
        && live.filter(|t| t.is_serving()).all(|t| !protection_due(t, now))
}

/// While a scale-in waits for an input it needs, the serving tasks already
/// out of a group that was read stay out of it: one of them may be the task
/// the drain chooses, and registering it would undo or contradict its
/// drain. So do the tasks of an older deployment: the hand-over may have
/// chosen them.
pub fn kept_out(service: &ObservedService, groups: &[(&TargetGroupBinding, &ObservedTargetGroup)]) -> Leaving {
    let tasks = service
        .tasks
        .iter()
        .filter(|t| t.is_serving() && (!in_every_group(t, groups) || is_older_deployment(service, t)))
        .map(|t| t.arn.clone())
        .collect();
    Leaving { tasks, now: BTreeSet::new(), undecided: true }
}

/// While a deployment's hand-over cannot decide (a bound group unread),
/// the tasks of older deployments are neither registered nor
/// deregistered: the hand-over may have taken them out.
pub fn old_tasks_kept_out(service: &ObservedService) -> Leaving {
    let tasks = service.tasks.iter().filter(|t| is_older_deployment(service, t)).map(|t| t.arn.clone()).collect();
    Leaving { tasks, now: BTreeSet::new(), undecided: true }
}

/// Whether each group that was read routes to the task (a target there,
/// not draining).
fn in_every_group(task: &ObservedTask, groups: &[(&TargetGroupBinding, &ObservedTargetGroup)]) -> bool {
    groups.iter().all(|(b, g)| {
        let Some(target) = super::targets::task_target(task, b) else { return true };
        g.targets.iter().any(|t| t.target == target && t.health != TargetHealth::Draining)
    })
}

/// Where the task's targets are, over every bound group.
pub(super) fn routing(task: &ObservedTask, groups: &[(&TargetGroupBinding, &ObservedTargetGroup)]) -> Routing {
    if task.last_status < TaskStatus::Running {
        return Routing::NotStarted;
    }
    let mut draining = false;
    for (b, g) in groups {
        let Some(target) = super::targets::task_target(task, b) else { continue };
        match g.targets.iter().find(|t| t.target == target).map(|t| t.health) {
            Some(TargetHealth::Draining) => draining = true,
            Some(_) => return Routing::Routed,
            None => {}
        }
    }
    if draining { Routing::Draining } else { Routing::Out }
}

/// How far tasks on their way out are, for the holds: those still in
/// service or draining, and the longest known wait left; `None` once
/// they are drained.
fn progress(draining: u32, left: Duration) -> Option<String> {
    match (draining, left.as_secs()) {
        (0, 0) => None,
        (0, s) => Some(format!("{s} s left")),
        (n, 0) => Some(format!("{n} still in service or draining in the load balancer")),
        (n, s) => Some(format!("{n} still in service or draining in the load balancer, at least {s} s left")),
    }
}

impl std::fmt::Display for Waiting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "draining {} task(s) for scale-in", self.tasks)?;
        match progress(self.draining, self.left) {
            None => write!(f, ": drained, handing them to ECS")?,
            Some(p) if self.draining == 0 => write!(f, ", {p}")?,
            Some(p) => write!(f, ": {p}")?,
        }
        if self.unprotected > 0 {
            write!(
                f,
                "; waiting until {} task(s) that stay are protected from scale-in, so ECS stops only the drained ones",
                self.unprotected
            )?;
        }
        Ok(())
    }
}

impl std::fmt::Display for Handover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "deployment: {} old task(s), {} new ({} healthy in every target group); {} old handed over",
            self.old, self.new, self.new_healthy, self.leaving
        )?;
        if let Some(p) = progress(self.draining, self.left) {
            write!(f, ", {p}")?;
        }
        if self.surge > 0 {
            write!(f, "; desired count raised by {} for the new task(s) meanwhile", self.surge)?;
        }
        if self.held > 0 {
            write!(
                f,
                "; {} old task(s) keep serving: {} healthy target(s) in a bound group, floor {}; ",
                self.held, self.in_service, self.floor
            )?;
            if self.new == 0 {
                write!(
                    f,
                    "no new task has started (ECS needs room for one: an instance that can take it, for the \
                     surge or within maximumPercent)"
                )?;
            } else {
                write!(f, "waiting for a new task to become healthy")?;
            }
        }
        if self.stalled {
            write!(
                f,
                "; stalled: a new task has run for over {} min without becoming healthy, so no more old tasks are \
                 drained (fix or roll back the deployment)",
                STALL_AFTER.as_secs() / 60
            )?;
        }
        Ok(())
    }
}

impl<'a> super::Planner<'a> {
    /// A count change decided without the drain (an input it needs is
    /// unread, or ballast does not drain the service): while ECS's count
    /// carries a surge, the change keeps it, and its mark is written first.
    pub(super) fn push_count(
        &mut self,
        svc: &'a Service,
        count: Option<PlannedChange>,
        surge: u32,
        count_changes: &mut Vec<PlannedChange>,
    ) {
        match (count, self.live_service(&svc.id)) {
            (Some(pc), Ok(observed)) if surge > 0 => {
                self.surge(svc, observed, (surge, surge), Some(pc), count_changes);
            }
            (count, _) => count_changes.extend(count),
        }
    }

    /// Set ECS's count to the base count plus the `wanted` surge (`read` is the
    /// one it carries), with `raise` (the admitted change of the base
    /// count) folded in. While a surge is or was carried, the surge mark
    /// is written first, naming the new count's base and the old one's: a
    /// restarted controller reads the surge back from it, and a count
    /// write that fails after its mark leaves a count the mark still
    /// describes. Returns the surge ECS's count carries once applied.
    pub(super) fn surge(
        &mut self,
        svc: &'a Service,
        observed: &ObservedService,
        (read, wanted): (u32, u32),
        raise: Option<PlannedChange>,
        count_changes: &mut Vec<PlannedChange>,
    ) -> u32 {
        let from = observed.desired_count;
        if read == 0 && wanted == 0 {
            count_changes.extend(raise);
            return 0;
        }
        let (base, pc) = match raise {
            Some(mut pc) => {
                let Change::SetDesiredCount { to, .. } = &mut pc.change else {
                    count_changes.push(pc);
                    return read;
                };
                let base = to.saturating_sub(read);
                *to = base + wanted;
                if read != wanted {
                    pc.reason = format!("{}; {}", pc.reason, surge_reason(wanted));
                }
                (base, pc)
            }
            None if read == wanted => return read,
            None => {
                let base = from - read;
                let to = base + wanted;
                let change = Change::SetDesiredCount { service: svc.id.clone(), from, to };
                let reason = surge_reason(wanted);
                match self.admit(Proposal::new(ResourceKey::service(&svc.id), change, reason)) {
                    Some(pc) => (base, pc),
                    None => return read,
                }
            }
        };
        // A surge is or was carried, so the deployment is named (`read`
        // and `wanted` both need it).
        let (Change::SetDesiredCount { to, .. }, Some(primary)) = (&pc.change, &observed.primary_deployment) else {
            count_changes.push(pc);
            return read;
        };
        let to = *to;
        self.surge_growth.insert(svc.id.clone(), wanted.saturating_sub(read));
        // A count that stays (the base grew into the surge as it came off)
        // is not written again: the mark alone tells its new base.
        let counts = if to == from { vec![(to, base)] } else { vec![(to, base), (from, from - read)] };
        let mark = SurgeMark { deployment: primary.clone(), counts };
        let change = Change::MarkSurge { service: svc.id.clone(), service_arn: observed.arn.clone(), mark };
        let reason = "the desired count that follows carries a deployment's surge (or drops it): the mark tells its \
                      base count to a controller that starts afresh";
        count_changes.push(PlannedChange { resource: ResourceKey::service(&svc.id), change, reason: reason.into() });
        if to != from {
            count_changes.push(pc);
        }
        wanted
    }
}

/// Why a deploying service's count carries a surge (or no longer does).
fn surge_reason(surge: u32) -> String {
    if surge == 0 {
        "the deployment's old tasks are handed to ECS: its surge comes off, so ECS stops exactly them".to_string()
    } else {
        format!(
            "{surge} task(s) of surge while the deployment replaces protected old tasks: maximumPercent leaves ECS \
             no room to start new ones, and the floor keeps old ones serving until new ones are healthy"
        )
    }
}
