//! Traffic-safe target registration for one target-group binding.
//!
//! Rules, in the order they apply:
//! 1. Register first: every serving task's target that is missing (or
//!    draining) is registered in this pass, except a task leaving for a
//!    scale-in ([`super::drain`]).
//! 2. Only deregister what can be attributed to the bound service: a task
//!    of the service (running or recently stopped) or a target ballast
//!    itself registered, unless the binding owns the group exclusively.
//!    Foreign targets are left alone and reported.
//! 3. Never deregister below the floor of healthy targets: the declared
//!    `minHealthy`, or by default the number of targets the service should
//!    have (capped by how many of its targets are healthy now), and never
//!    to zero while any of its targets is healthy. Foreign targets do not
//!    count. Targets that are not healthy can always go; healthy ones stay
//!    while a serving task's address is unknown (the target may be its).
//! 4. Targets already draining are left alone.
//! 5. Budgets limit what takes serving tasks out of service: a leaving
//!    task's targets go in the pass the drain picks for it (all its groups
//!    at once, `budget.maxDeregistrationsPerPass` tasks per pass), and
//!    foreign targets an exclusive binding claims go within the same
//!    budget. A target whose task is gone is removed at once: it serves
//!    nothing, and the load balancer may still send it requests.

use std::collections::{BTreeMap, BTreeSet};

use super::drain::{self, Leaving};
use super::gate::{Budget, Conflict, HoldReason, Notice, Proposal, Safety};
use super::{Change, PlannedChange, ResourceKey};
use crate::desired::{Ownership, Service, TargetGroupBinding, TargetType};
use crate::observed::{ObservedService, ObservedTargetGroup, Target, TargetHealth};

/// A service's budget for deregistering claimed foreign targets this
/// pass, shared by all its target groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeregistrationBudget {
    /// `budget.maxDeregistrationsPerPass`.
    pub per_pass: u32,
    /// Already spent on the service's other groups this pass.
    pub used: u32,
}

impl DeregistrationBudget {
    /// No limit: what a report uses to show everything that could go.
    pub const UNLIMITED: DeregistrationBudget = DeregistrationBudget { per_pass: u32::MAX, used: 0 };

    fn left(&self) -> u32 {
        self.per_pass.saturating_sub(self.used)
    }
}

/// The outcome for one binding.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetPlan {
    pub register: Vec<Target>,
    pub deregister: Vec<Target>,
    /// Stale targets kept this pass, with the budget or safety rule why.
    pub held: Vec<HoldReason>,
    /// Targets that are not the service's and stay.
    pub foreign: Vec<Target>,
    /// Targets that are not the service's either, but may go because the
    /// binding owns the group exclusively.
    pub claimed: BTreeSet<Target>,
    /// Serving tasks that have no usable address (e.g. no host port).
    pub unaddressable: Vec<String>,
    pub expected: BTreeSet<Target>,
    pub healthy: u32,
    /// Healthy targets left once the planned deregistrations are done.
    pub healthy_after: u32,
    pub floor: u32,
    /// Leaving tasks due out this pass whose target here a safety rule
    /// kept: their targets in the other groups stay too.
    pub held_leaving: BTreeSet<String>,
}

/// The target a task provides for a binding, if it has one (for tests
/// that check what the planner did).
#[cfg(test)]
pub(crate) fn task_target_of(task: &crate::observed::ObservedTask, b: &TargetGroupBinding) -> Option<Target> {
    task_target(task, b)
}

/// The target a task provides for a binding, if it has one.
pub(super) fn task_target(task: &crate::observed::ObservedTask, b: &TargetGroupBinding) -> Option<Target> {
    match b.target_type {
        TargetType::Instance => {
            Some(Target { id: task.instance_id.clone()?, port: task.host_port(&b.container_name, b.container_port)? })
        }
        TargetType::Ip => Some(Target { id: task.private_ip.clone()?, port: b.container_port }),
    }
}

pub fn plan_targets(
    binding: &TargetGroupBinding,
    service: &ObservedService,
    group: &ObservedTargetGroup,
    registered_by_us: Option<&BTreeSet<Target>>,
    budget: DeregistrationBudget,
    leaving: &Leaving,
) -> TargetPlan {
    let mut out = TargetPlan::default();
    let mut attributable = BTreeSet::new();
    // Targets of tasks that leave, with the task.
    let mut leaving_targets: BTreeMap<Target, &str> = BTreeMap::new();
    for task in &service.tasks {
        let target = task_target(task, binding);
        if leaving.tasks.contains(&task.arn) {
            if let Some(t) = target {
                attributable.insert(t.clone());
                leaving_targets.insert(t, &task.arn);
            }
            continue;
        }
        if task.is_serving() {
            match target.clone() {
                Some(t) => {
                    out.expected.insert(t);
                }
                None => out.unaddressable.push(task.arn.clone()),
            }
        }
        if let Some(t) = target {
            attributable.insert(t);
        }
    }

    let present: BTreeMap<&Target, TargetHealth> = group.targets.iter().map(|t| (&t.target, t.health)).collect();
    for t in &out.expected {
        match present.get(t) {
            None | Some(TargetHealth::Draining) => out.register.push(t.clone()),
            Some(_) => {}
        }
    }

    // Stale candidates, cheapest first: those not carrying traffic.
    let mut stale: Vec<(&Target, TargetHealth)> = Vec::new();
    for (t, health) in &present {
        if out.expected.contains(*t) {
            continue;
        }
        let attributed = attributable.contains(*t) || registered_by_us.is_some_and(|r| r.contains(*t));
        if !attributed && binding.ownership != Ownership::Exclusive {
            out.foreign.push((*t).clone());
        } else if *health != TargetHealth::Draining {
            if !attributed {
                out.claimed.insert((*t).clone());
            }
            stale.push((t, *health));
        }
    }
    // A leaving task's own targets go after those of tasks that are gone.
    stale.sort_by_key(|(t, h)| (*h == TargetHealth::Healthy, leaving_targets.contains_key(*t), (*t).clone()));

    // The floor counts the service's own targets: a healthy foreign target
    // serves someone else's traffic and is no replacement for this one.
    out.healthy =
        present.iter().filter(|(t, h)| **h == TargetHealth::Healthy && !out.foreign.contains(**t)).count() as u32;
    // Tasks kept out while the count is undecided are no leavers yet.
    let kept_out = if leaving.undecided { leaving_targets.len() } else { 0 };
    let expected_n = (out.expected.len() + kept_out) as u32;
    out.floor = binding.min_healthy.unwrap_or(expected_n.min(out.healthy));
    if out.healthy > 0 {
        out.floor = out.floor.max(1);
    }
    // A target that is no leaving task's (its task is gone) is held by a
    // floor that still counts the leaving tasks while they run: they are
    // on their way out, not replacements for it.
    // (Kept-out tasks are in `expected_n` already.)
    let running_leaving = if leaving.undecided {
        0
    } else {
        service
            .tasks
            .iter()
            .filter(|t| t.is_serving() && leaving.tasks.contains(&t.arn) && task_target(t, binding).is_some())
            .count() as u32
    };
    let floor_of_others = match binding.min_healthy {
        Some(_) => out.floor,
        None => (expected_n + running_leaving).min(out.healthy).max(out.floor),
    };

    let mut healthy_after = out.healthy;
    let mut claimed_used = 0u32;
    for (t, health) in stale {
        let leaving_task = leaving_targets.get(t).copied();
        let budget_held = match leaving_task {
            // The drain picked the tasks whose targets go this pass.
            Some(task) => !leaving.now.contains(task),
            None => out.claimed.contains(t) && claimed_used >= budget.left(),
        };
        if budget_held {
            out.held.push(HoldReason::Budget(Budget::Deregistrations {
                target: t.clone(),
                per_pass: budget.per_pass,
                elsewhere: budget.used,
            }));
            continue;
        }
        if health == TargetHealth::Healthy {
            let safety = if !out.unaddressable.is_empty() {
                // A serving task without a known address may be behind it.
                let tasks = out.unaddressable.len() as u32;
                Some(Safety::MaybeServing { target: t.clone(), tasks })
            } else if let floor = if leaving_task.is_some() { out.floor } else { floor_of_others }
                && healthy_after <= floor
            {
                Some(Safety::HealthyFloor { target: t.clone(), healthy_after, floor })
            } else {
                None
            };
            if let Some(safety) = safety {
                out.held.push(HoldReason::Safety(safety));
                out.held_leaving.extend(leaving_task.map(str::to_string));
                continue;
            }
            healthy_after -= 1;
        }
        if out.claimed.contains(t) {
            claimed_used += 1;
        }
        out.deregister.push(t.clone());
    }
    out.healthy_after = healthy_after;
    out
}

/// Whether the group already holds exactly the serving tasks' targets, none
/// of them draining, and nothing else the service could own. Allocates
/// nothing: this is the path every converged pass takes.
pub fn is_converged(binding: &TargetGroupBinding, service: &ObservedService, group: &ObservedTargetGroup) -> bool {
    fn address<'t>(task: &'t crate::observed::ObservedTask, b: &TargetGroupBinding) -> Option<(&'t str, u16)> {
        match b.target_type {
            TargetType::Instance => {
                Some((task.instance_id.as_deref()?, task.host_port(&b.container_name, b.container_port)?))
            }
            TargetType::Ip => Some((task.private_ip.as_deref()?, b.container_port)),
        }
    }
    let mut serving = 0usize;
    for task in service.tasks.iter().filter(|t| t.is_serving()) {
        let Some((id, port)) = address(task, binding) else {
            return false;
        };
        let present = group
            .targets
            .iter()
            .any(|t| t.target.port == port && t.target.id == id && t.health != TargetHealth::Draining);
        if !present {
            return false;
        }
        serving += 1;
    }
    // Every target present is a serving task's (targets are unique by id
    // and port, so equal counts mean equal sets).
    serving == group.targets.len()
}

impl super::Planner<'_> {
    /// Registrations go straight into the plan; deregistrations into
    /// `deregs`, emitted after every registration of the pass.
    pub(super) fn plan_service_targets(&mut self, svc: &Service, deregs: &mut Vec<PlannedChange>) {
        let Ok(observed_svc) = self.live_service(&svc.id) else {
            return;
        };
        let no_one = drain::Leaving::default();
        let mut leaving = self.leaving.get(&svc.id).cloned().unwrap_or_default();
        if let Some(t) = self.terminating.get(&svc.id) {
            leaving.tasks.extend(t.tasks.iter().cloned());
            leaving.now.extend(t.now.iter().cloned());
            leaving.undecided |= t.undecided;
        }
        // One task's targets leave all its groups together: a task one
        // group's floor keeps stays in every group this pass.
        let mut read = Vec::new();
        for b in &svc.target_groups {
            let key = || ResourceKey::target_group(&b.target_group);
            let Some(group) = self.read(key, self.observed.target_groups.get(&b.target_group)) else { continue };
            read.push((b, group));
        }
        let mut plans = Vec::new();
        loop {
            let mut budget = DeregistrationBudget { per_pass: svc.budget.max_deregistrations_per_pass, used: 0 };
            plans.clear();
            let mut held = BTreeSet::new();
            for (b, group) in &read {
                let leaving = if leaving.tasks.is_empty() { &no_one } else { &leaving };
                if leaving.tasks.is_empty() && is_converged(b, observed_svc, group) {
                    continue;
                }
                let registered = self.out.memory.registered.get(&group.arn);
                let tp = plan_targets(b, observed_svc, group, registered, budget, leaving);
                budget.used += tp.deregister.iter().filter(|t| tp.claimed.contains(*t)).count() as u32;
                held.extend(tp.held_leaving.iter().cloned());
                plans.push((*b, *group, tp));
            }
            let split = held.iter().any(|arn| leaving.now.contains(arn));
            if !split {
                break;
            }
            leaving.now.retain(|arn| !held.contains(arn));
        }
        for (b, group, tp) in plans {
            let key = ResourceKey::target_group(&b.target_group);
            for arn in tp.unaddressable {
                let task = observed_svc.tasks.iter().find(|t| t.arn == arn);
                // Its task definition was read (the task has port mappings)
                // but none is the binding's: a mistake in the document.
                let mapped = task.is_some_and(|t| !t.bindings.is_empty() && b.target_type == TargetType::Instance);
                let (container, port) = (b.container_name.clone(), b.container_port);
                let safety = if mapped {
                    Safety::NoSuchPort {
                        task: arn,
                        container,
                        port,
                        task_definition: observed_svc.task_definition.clone(),
                        declared: svc.origin.to_string(),
                    }
                } else {
                    Safety::NoAddress { task: arn, container, port }
                };
                self.hold(key.clone(), HoldReason::Safety(safety));
            }
            if b.ownership == Ownership::Shared {
                for t in &tp.foreign {
                    let message = format!(
                        "target {t} is left alone: it is no task of {} and ballast did not register it \
                         (the group is shared; ownership: exclusive would remove it)",
                        svc.id
                    );
                    self.out.notices.push(Notice { resource: key.clone(), message });
                }
            }
            let mut proposals = Vec::new();
            if !tp.register.is_empty() {
                let reason = format!("{} serving task(s) of {} are not registered", tp.register.len(), svc.id);
                let change = Change::RegisterTargets {
                    region: b.target_group.region.clone(),
                    target_group_arn: group.arn.clone(),
                    targets: tp.register,
                };
                proposals.push(Proposal::new(key.clone(), change, reason));
            }
            if !tp.deregister.is_empty() {
                let mut reason = format!(
                    "no serving task of {} behind these target(s); {} healthy remain, floor {}",
                    svc.id, tp.healthy_after, tp.floor
                );
                let claimed: Vec<String> =
                    tp.deregister.iter().filter(|t| tp.claimed.contains(t)).map(ToString::to_string).collect();
                if !claimed.is_empty() {
                    reason = format!(
                        "{reason}; {} not the service's (foreign), removed because the binding owns the group \
                         exclusively (ownership: exclusive)",
                        claimed.join(", ")
                    );
                }
                let change = Change::DeregisterTargets {
                    region: b.target_group.region.clone(),
                    target_group_arn: group.arn.clone(),
                    targets: tp.deregister,
                };
                proposals.push(Proposal { limits: tp.held, ..Proposal::new(key.clone(), change, reason) });
            } else {
                // Nothing leaves, so the stale targets kept are no change's
                // limits: they are reported as they are.
                for reason in tp.held {
                    self.hold(key.clone(), reason);
                }
            }
            let conflict =
                observed_svc.load_balancer_target_groups.contains(&group.arn) && !svc.take_over.load_balancers;
            for p in proposals {
                let p = Proposal {
                    conflict: conflict.then_some(Conflict::ServiceLoadBalancers),
                    suspended: svc.suspend,
                    ..p
                };
                let Some(pc) = self.admit(p) else { continue };
                if let Change::DeregisterTargets { .. } = &pc.change {
                    deregs.push(pc);
                } else {
                    self.out.changes.push(pc);
                }
            }
        }
    }
}
