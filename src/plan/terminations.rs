//! Instance terminations, whoever starts them: an instance of a group with
//! ballast's termination lifecycle hook waits in `Terminating:Wait` (ballast's
//! own capacity scale-in, AZ rebalancing, a Spot interruption, a health
//! replacement, an instance refresh). ballast drains it:
//!
//! 1. its tasks' targets leave every bound group, through the targets
//!    planner's [`Leaving`](super::drain::Leaving), as a scale-in's do; the
//!    service's own drain does not count them (they are not its to choose);
//! 2. once every one of them is out of its groups and the binding's
//!    `propagationLag` has passed, their scale-in protection comes off and
//!    the container instance is set to `DRAINING`: ECS starts their
//!    replacements elsewhere and stops them;
//! 3. once ECS reports no task on the instance, `CompleteLifecycleAction`
//!    (`CONTINUE`) lets it terminate.
//!
//! While it waits, `RecordLifecycleActionHeartbeat` keeps the wait from
//! timing out: at first sight (a restarted controller cannot tell how long
//! the instance has waited) and then every third of the heartbeat timeout.
//!
//! Replacement capacity: an instance in `Terminating:Wait` is no longer
//! capacity ([`crate::observed::ObservedInstance::is_active`]); the capacity
//! planner sizes the group for the tasks without it.
//!
//! Every step is read from AWS each pass (lifecycle state, target health,
//! container instance status, its task count), so a restart carries on.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use super::gate::{HoldReason, Proposal};
use super::{Change, PlannedChange, ResourceKey, drain};
use crate::desired::{ServiceId, TargetGroupBinding, TerminationHook};
use crate::observed::{ObservedInstance, ObservedService, ObservedTargetGroup, TaskStatus};

use super::drain::{Routing, routing};
use super::memory::TerminationMemory;

/// A declared service of the instance's cluster, with its bound groups.
pub struct ServiceView<'a> {
    pub id: &'a ServiceId,
    pub service: &'a ObservedService,
    pub groups: Vec<(&'a TargetGroupBinding, &'a ObservedTargetGroup)>,
}

/// What to do this pass for one instance in `Terminating:Wait`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InstanceDrain {
    /// Its tasks, by service: out of every group, never registered again.
    pub leaving: BTreeMap<ServiceId, BTreeSet<String>>,
    /// Of them, those with a target still in service: deregistered now.
    pub deregister: BTreeMap<ServiceId, BTreeSet<String>>,
    /// Drained tasks whose scale-in protection comes off, so that ECS may
    /// stop them once the instance drains.
    pub unprotect: BTreeMap<ServiceId, Vec<String>>,
    /// Tasks still routed or draining whose protection ends soon: they
    /// carry traffic until their targets are gone, however long the healthy
    /// floor keeps them, so it is renewed (ECS must not stop them first).
    pub protect: BTreeMap<ServiceId, Vec<String>>,
    /// Set the container instance to `DRAINING` (its ARN).
    pub drain_container_instance: Option<String>,
    pub heartbeat: bool,
    pub complete: bool,
    /// What the instance waits for, when it does not complete this pass.
    pub waiting: Option<TerminationWait>,
}

/// An instance's drain in progress, for the hold and /status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminationWait {
    pub instance_id: String,
    /// Tasks on the instance (every service's, as ECS counts them).
    pub tasks: u32,
    /// Of the declared services' tasks, those still in service or draining
    /// in the load balancer.
    pub draining: u32,
    /// The propagation lag still to pass after the last target is gone.
    pub left: Duration,
    /// The container instance is `DRAINING`: ECS replaces and stops its tasks.
    pub ecs_draining: bool,
}

/// Plan one instance's drain. `memory` is its part of
/// [`super::Memory::terminations`].
pub fn plan_instance(
    instance: &ObservedInstance,
    hook: &TerminationHook,
    services: &[ServiceView<'_>],
    memory: &mut TerminationMemory,
    now: SystemTime,
) -> InstanceDrain {
    let mut out = InstanceDrain::default();
    let mut wait = TerminationWait {
        instance_id: instance.id.clone(),
        tasks: instance.tasks.unwrap_or(0),
        draining: 0,
        left: Duration::ZERO,
        ecs_draining: instance.container_instance.as_ref().is_some_and(|c| c.draining),
    };
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    let mut all_drained = true;
    let mut live_tasks = 0u32;
    for view in services {
        let lag = view.groups.iter().map(|(b, _)| b.propagation_lag).max().unwrap_or_default();
        let on_instance = view.service.tasks.iter().filter(|t| {
            t.desired_status == TaskStatus::Running && t.instance_id.as_deref() == Some(instance.id.as_str())
        });
        for t in on_instance {
            live_tasks += 1;
            seen.insert(&t.arn);
            out.leaving.entry(view.id.clone()).or_default().insert(t.arn.clone());
            let route = routing(t, &view.groups);
            let serving = matches!(route, Routing::Routed | Routing::Draining);
            if serving && drain::protection_due(t, now) {
                out.protect.entry(view.id.clone()).or_default().push(t.arn.clone());
            }
            let drained = match route {
                Routing::NotStarted => true,
                Routing::Routed => {
                    out.deregister.entry(view.id.clone()).or_default().insert(t.arn.clone());
                    wait.draining += 1;
                    false
                }
                Routing::Draining => {
                    memory.out_since.entry(t.arn.clone()).or_insert(now);
                    wait.draining += 1;
                    false
                }
                Routing::Out => {
                    let from = *memory.out_since.entry(t.arn.clone()).or_insert(now);
                    let left = (from + lag).duration_since(now).unwrap_or_default();
                    wait.left = wait.left.max(left);
                    left.is_zero()
                }
            };
            all_drained &= drained;
            if drained && t.protected_until.is_some_and(|until| until > now) {
                out.unprotect.entry(view.id.clone()).or_default().push(t.arn.clone());
            }
        }
    }
    memory.out_since.retain(|arn, _| seen.contains(arn.as_str()));
    if !all_drained {
        out.unprotect.clear();
    }

    // No task left, as ECS counts them (other services' too), or the
    // instance never joined the cluster: nothing to drain.
    out.complete = live_tasks == 0 && instance.tasks.is_none_or(|n| n == 0);
    if !out.complete {
        if all_drained
            && let Some(ci) = &instance.container_instance
            && !ci.draining
        {
            out.drain_container_instance = Some(ci.arn.clone());
        }
        out.heartbeat = memory.heartbeat.is_none_or(|at| now >= at + hook.heartbeat_timeout / 3);
        out.waiting = Some(wait);
    }
    out
}

impl std::fmt::Display for TerminationWait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "instance {} is terminating (Terminating:Wait): ", self.instance_id)?;
        match (self.draining, self.left.as_secs(), self.ecs_draining) {
            (0, 0, true) => {
                write!(f, "container instance DRAINING, waiting for ECS to stop its {} task(s)", self.tasks)
            }
            (0, 0, false) => {
                write!(f, "its {} task(s) drained, setting the container instance to DRAINING", self.tasks)
            }
            (0, s, _) => write!(f, "its task(s) are out of their target groups, {s} s left"),
            (n, _, _) => write!(f, "draining {n} task(s) from their target groups"),
        }?;
        write!(f, "; the lifecycle action completes once no task is left")
    }
}

impl super::Planner<'_> {
    /// The group could not be read, so which instances are terminating
    /// cannot be told: the cluster's tasks already out of their groups stay
    /// out (one may be on an instance being drained) and count toward the
    /// healthy floor, as while a count is undecided.
    pub(super) fn keep_out_while_terminations_are_unread(&mut self, cap: &crate::desired::Capacity) {
        for svc in &self.desired.services {
            if svc.id.region != cap.group.region || svc.id.cluster != cap.cluster || svc.target_groups.is_empty() {
                continue;
            }
            let Ok(observed) = self.live_service(&svc.id) else { continue };
            let kept = drain::kept_out(observed, &self.bound_groups(svc));
            let l = self.terminating.entry(svc.id.clone()).or_default();
            l.tasks.extend(kept.tasks);
            l.undecided = true;
        }
    }

    /// Drain the instances in `Terminating:Wait` of every group with
    /// ballast's termination hook ([`terminations`]); their tasks go to
    /// `self.terminating`, the changes are returned.
    pub(super) fn plan_terminations(&mut self) -> Vec<PlannedChange> {
        let mut changes = Vec::new();
        let mut waiting_ids = BTreeSet::new();
        for cap in &self.desired.capacities {
            let group = match self.observed.groups.get(&cap.group) {
                Some(Ok(group)) => group,
                Some(Err(_)) if cap.termination_hook.is_some() => {
                    self.keep_out_while_terminations_are_unread(cap);
                    continue;
                }
                _ => continue,
            };
            // Only ballast's hook holds the instance for ballast to release.
            let (Some(_), Some(hook)) = (&cap.termination_hook, &group.termination_hook) else { continue };
            let waiting =
                group.instances.iter().filter(|i| i.lifecycle_state == crate::observed::Lifecycle::TerminatingWait);
            for instance in waiting {
                waiting_ids.insert(instance.id.clone());
                let mut views = Vec::new();
                let mut unread = Vec::new();
                for svc in &self.desired.services {
                    if svc.id.region != cap.group.region || svc.id.cluster != cap.cluster {
                        continue;
                    }
                    let Ok(observed) = self.live_service(&svc.id) else {
                        unread.push(format!("service {}", svc.id));
                        continue;
                    };
                    let groups = self.bound_groups(svc);
                    if groups.len() < svc.target_groups.len() {
                        unread.push(format!("the target groups of service {}", svc.id));
                    }
                    views.push(ServiceView { id: &svc.id, service: observed, groups });
                }
                let mut memory = self.out.memory.terminations.remove(&instance.id).unwrap_or_default();
                let mut d = plan_instance(instance, hook, &views, &mut memory, self.now);
                if !unread.is_empty() {
                    // Whether its tasks have drained cannot be told: the
                    // heartbeat only, and targets keep leaving.
                    d.unprotect.clear();
                    d.protect.clear();
                    (d.drain_container_instance, d.complete) = (None, false);
                    let why =
                        format!("terminating instance {} waits until {} can be read", instance.id, unread.join(", "));
                    self.hold(ResourceKey::group(&cap.group), HoldReason::Unobserved(why));
                }
                self.out.memory.terminations.insert(instance.id.clone(), memory);
                for (id, tasks) in d.leaving {
                    let now = d.deregister.get(&id).cloned().unwrap_or_default();
                    let l = self.terminating.entry(id).or_default();
                    l.tasks.extend(tasks);
                    l.now.extend(now);
                }
                let key = ResourceKey::group(&cap.group);
                let mut proposals = Vec::new();
                for (id, tasks) in d.unprotect {
                    let n = tasks.len();
                    let change = Change::SetTaskProtection { service: id.clone(), tasks, minutes: None };
                    let reason = format!(
                        "{n} task(s) of {id} on terminating instance {} drained: ECS may stop them",
                        instance.id
                    );
                    proposals.push(Proposal::new(ResourceKey::service(&id), change, reason));
                }
                for (id, tasks) in d.protect {
                    let n = tasks.len();
                    let minutes = Some(drain::PROTECTION_MINUTES);
                    let change = Change::SetTaskProtection { service: id.clone(), tasks, minutes };
                    let reason = format!(
                        "{n} task(s) of {id} on terminating instance {} still carry traffic and their protection \
                         ends within {} min: ECS must not stop them before their targets are gone",
                        instance.id,
                        drain::RENEW_BELOW.as_secs() / 60
                    );
                    proposals.push(Proposal::new(ResourceKey::service(&id), change, reason));
                }
                if let Some(arn) = d.drain_container_instance {
                    let change = Change::DrainContainerInstance {
                        region: cap.group.region.clone(),
                        cluster: cap.cluster.clone(),
                        container_instance_arn: arn,
                        instance_id: instance.id.clone(),
                    };
                    let reason = "the instance is terminating and its tasks' targets have drained: ECS places their \
                                  replacements elsewhere and stops them";
                    proposals.push(Proposal { suspended: cap.suspend, ..Proposal::new(key.clone(), change, reason) });
                }
                if d.heartbeat {
                    let change = Change::RecordLifecycleActionHeartbeat {
                        group: cap.group.clone(),
                        instance_id: instance.id.clone(),
                    };
                    let reason = format!(
                        "its drain may outlast part of the heartbeat timeout ({} s)",
                        hook.heartbeat_timeout.as_secs()
                    );
                    proposals.push(Proposal { suspended: cap.suspend, ..Proposal::new(key.clone(), change, reason) });
                }
                if d.complete {
                    let change =
                        Change::CompleteLifecycleAction { group: cap.group.clone(), instance_id: instance.id.clone() };
                    let reason = "no task is left on the terminating instance";
                    proposals.push(Proposal { suspended: cap.suspend, ..Proposal::new(key.clone(), change, reason) });
                }
                for p in proposals {
                    if let Some(pc) = self.admit(p) {
                        changes.push(pc);
                    }
                }
                if let Some(w) = d.waiting {
                    self.hold(key.clone(), HoldReason::Terminating(w));
                }
            }
        }
        self.out.memory.terminations.retain(|id, _| waiting_ids.contains(id));
        changes
    }

    /// The service as its own drain sees it: without the tasks of
    /// instances in `Terminating:Wait` ([`terminations`]).
    /// (Tasks only kept out while the group is unread are the drain's to
    /// count.)
    pub(super) fn without_terminating(&self, id: &ServiceId, observed: &ObservedService) -> Option<ObservedService> {
        let leaving = self.terminating.get(id).filter(|l| !l.undecided)?;
        let mut view = observed.clone();
        view.tasks.retain(|t| !leaving.tasks.contains(&t.arn));
        Some(view)
    }
}
