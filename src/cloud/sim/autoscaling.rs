//! Auto Scaling: each group's own reconciliation (capacity, zone balance,
//! which instance goes first), AZ rebalancing, termination lifecycle
//! hooks, suspended processes, and instances AWS terminates by itself.
//!
//! Each behaviour names the AWS documentation page that describes it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::SimCloud;
use super::world::{Lifecycle, World};
use crate::cloud::CloudError;
use crate::desired::GroupId;

/// The processes SuspendProcesses and ResumeProcesses accept
/// (<https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-suspend-resume-processes.html>).
/// The simulation acts on `AZRebalance`, `Launch` and `Terminate`; it keeps
/// the others as suspended without effect (it has no such process).
pub const SCALING_PROCESSES: [&str; 9] = [
    "Launch",
    "Terminate",
    "AddToLoadBalancer",
    "AlarmNotification",
    "AZRebalance",
    "HealthCheck",
    "InstanceRefresh",
    "ReplaceUnhealthy",
    "ScheduledActions",
];

use crate::desired::{HEARTBEAT_TIMEOUT_RANGE as HEARTBEAT_TIMEOUT, TerminationHook};

/// A group's termination lifecycle hook: its name and settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Hook {
    pub name: String,
    pub settings: TerminationHook,
}

/// The name of a hook a scenario or test puts on a group itself.
pub const OTHER_HOOK_NAME: &str = "scenario-hook";

/// Auto Scaling's per-group state beyond the group's own settings.
#[derive(Default)]
pub(super) struct AutoScaling {
    /// SuspendProcesses: group → suspended process names.
    pub suspended: BTreeMap<GroupId, BTreeSet<String>>,
    /// A termination lifecycle hook: group → the hook (one per group).
    pub termination_hooks: BTreeMap<GroupId, Hook>,
    /// Group → the instances its AZ rebalancing launched; as many
    /// instances of fuller zones terminate once these are in service.
    pub rebalancing: BTreeMap<GroupId, Vec<String>>,
}

fn rejected(operation: &'static str, message: String) -> CloudError {
    CloudError::Rejected { service: "autoscaling", operation, message }
}

fn not_found(group: &GroupId) -> CloudError {
    CloudError::NotFound(format!("Auto Scaling group {group}"))
}

/// How many instances one rebalancing step may add above the desired
/// capacity: AWS lets a rebalancing group exceed its maximum size by 10 %
/// or one instance, whichever is greater
/// (<https://docs.aws.amazon.com/autoscaling/ec2/userguide/auto-scaling-benefits.html>);
/// taking the same margin over the desired capacity keeps the group
/// within that bound.
fn rebalance_surge(desired: usize) -> usize {
    desired.div_ceil(10).max(1)
}

/// Active instances of one group as zone balance sees them.
struct Spread {
    /// Enabled zone → active instances in the group's subnets there.
    per_zone: BTreeMap<String, usize>,
    /// (seq, id, zone or None when its subnet was removed) of every active
    /// instance.
    active: Vec<(u64, String, Option<String>)>,
}

impl Spread {
    fn stranded(&self) -> usize {
        self.active.iter().filter(|(_, _, zone)| zone.is_none()).count()
    }

    /// How many instances must move (launch in an emptier zone, then
    /// terminate one of a fuller or removed zone) before no instance is
    /// stranded and the zones differ by at most one.
    fn moves_to_balance(&self) -> usize {
        let mut counts: Vec<usize> = self.per_zone.values().copied().collect();
        if counts.is_empty() {
            return 0;
        }
        let mut stranded = self.stranded();
        let mut moves = 0;
        loop {
            let (lo, hi) = min_max(&counts);
            if stranded > 0 {
                stranded -= 1;
            } else if counts[hi] - counts[lo] > 1 {
                counts[hi] -= 1;
            } else {
                return moves;
            }
            counts[lo] += 1;
            moves += 1;
        }
    }
}

/// Indexes of the first smallest and the first largest count.
fn min_max(counts: &[usize]) -> (usize, usize) {
    let mut lo = 0;
    let mut hi = 0;
    for (i, &c) in counts.iter().enumerate() {
        if c < counts[lo] {
            lo = i;
        }
        if c > counts[hi] {
            hi = i;
        }
    }
    (lo, hi)
}

impl World {
    fn suspended(&self, group: &GroupId, process: &str) -> bool {
        self.autoscaling.suspended.get(group).is_some_and(|s| s.contains(process))
    }

    /// AZ rebalancing runs for the group: on in the configuration, and
    /// neither AZRebalance nor Launch suspended (Launch suspended stops
    /// rebalancing:
    /// <https://docs.aws.amazon.com/autoscaling/ec2/userguide/understand-how-suspending-processes-affects-other-processes.html>).
    fn rebalances(&self, group: &GroupId) -> bool {
        self.config.az_rebalance && !self.suspended(group, "AZRebalance") && !self.suspended(group, "Launch")
    }

    fn spread(&self, group: &GroupId) -> Spread {
        let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
        let mut enabled: BTreeMap<&str, &str> = BTreeMap::new();
        if let Some(g) = self.groups.get(group) {
            for subnet in &g.subnets {
                if let Some(zone) = self.subnets.get(&(group.region.clone(), subnet.clone())) {
                    enabled.insert(subnet, zone);
                    per_zone.entry(zone.clone()).or_default();
                }
            }
        }
        let mut active = Vec::new();
        for i in self.instances.values().filter(|i| i.group.as_ref() == Some(group) && i.is_active()) {
            let zone = enabled.get(i.subnet.as_str()).map(|z| z.to_string());
            if let Some(z) = &zone {
                *per_zone.entry(z.clone()).or_default() += 1;
            }
            active.push((i.seq, i.id.clone(), zone));
        }
        active.sort();
        Spread { per_zone, active }
    }

    /// The subnet a launch goes to: the first of the group's subnets whose
    /// zone has the fewest active instances (Auto Scaling launches in the
    /// zone with the fewest instances:
    /// <https://docs.aws.amazon.com/autoscaling/ec2/userguide/auto-scaling-benefits.html>).
    pub fn emptiest_subnet(&self, group: &GroupId) -> Option<String> {
        let spread = self.spread(group);
        let g = self.groups.get(group)?;
        g.subnets
            .iter()
            .min_by_key(|s| {
                self.subnets
                    .get(&(group.region.clone(), (*s).clone()))
                    .and_then(|zone| spread.per_zone.get(zone))
                    .copied()
                    .unwrap_or(0)
            })
            .cloned()
    }

    /// The instance the termination policy takes next, leaving `keep`
    /// alone: one in a removed subnet first, else one in the zone with the
    /// most active instances (AWS's default termination policy balances
    /// zones first:
    /// <https://docs.aws.amazon.com/autoscaling/ec2/userguide/as-instance-termination.html>);
    /// the newest among equals (the simulation's tie-break).
    fn next_victim(&self, group: &GroupId, keep: &[String]) -> Option<String> {
        let spread = self.spread(group);
        spread
            .active
            .iter()
            .filter(|(_, id, _)| !keep.contains(id))
            .max_by_key(|(seq, _, zone)| {
                let fullness = zone.as_ref().map_or(usize::MAX, |z| spread.per_zone.get(z).copied().unwrap_or(0));
                (fullness, *seq)
            })
            .map(|(_, id, _)| id.clone())
    }

    /// Terminate `count` instances chosen by the termination policy.
    fn scale_in_group(&mut self, group: &GroupId, count: usize, keep: &[String]) -> bool {
        let mut changed = false;
        for _ in 0..count {
            let Some(victim) = self.next_victim(group, keep) else {
                break;
            };
            self.terminate_instance(&victim);
            changed = true;
        }
        changed
    }

    /// Auto Scaling: launch or terminate instances until each group's
    /// active instances match its desired capacity, balanced over its
    /// zones.
    pub fn reconcile_groups(&mut self) -> bool {
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        let mut changed = false;
        for id in ids {
            changed |= self.reconcile_group(&id);
        }
        changed
    }

    fn reconcile_group(&mut self, id: &GroupId) -> bool {
        let Some(desired) = self.groups.get(id).map(|g| g.desired as usize) else {
            return false;
        };
        let spread = self.spread(id);
        let active = spread.active.len();
        let is_active = |instance: &String| spread.active.iter().any(|(_, i, _)| i == instance);
        let batch: Vec<String> = self
            .autoscaling
            .rebalancing
            .get(id)
            .map(|b| b.iter().filter(|i| is_active(i)).cloned().collect())
            .unwrap_or_default();

        if active < desired {
            if self.suspended(id, "Launch") {
                return false;
            }
            let mut changed = false;
            for _ in active..desired {
                if self.launch_instance(id).is_none() {
                    break;
                }
                changed = true;
            }
            return changed;
        }
        // With Terminate suspended, rebalancing still launches but never
        // terminates, so the group stays above its desired capacity
        // (https://docs.aws.amazon.com/autoscaling/ec2/userguide/understand-how-suspending-processes-affects-other-processes.html).
        let can_terminate = !self.suspended(id, "Terminate");
        if active > desired + batch.len() {
            return can_terminate && self.scale_in_group(id, active - desired - batch.len(), &batch);
        }
        if !batch.is_empty() {
            // Rebalancing launches first, then terminates: wait until the
            // new instances are in service
            // (https://docs.aws.amazon.com/autoscaling/ec2/userguide/auto-scaling-benefits.html).
            let launched =
                batch.iter().all(|i| self.instances.get(i).is_none_or(|i| i.lifecycle != Lifecycle::Pending));
            if !launched || !can_terminate {
                return false;
            }
            self.autoscaling.rebalancing.remove(id);
            self.scale_in_group(id, active - desired, &batch);
            return true;
        }
        if !self.rebalances(id) {
            return false;
        }
        let moves = spread.moves_to_balance().min(rebalance_surge(desired));
        let mut launched = Vec::new();
        for _ in 0..moves {
            match self.launch_instance(id) {
                Some(instance) => launched.push(instance),
                None => break,
            }
        }
        if launched.is_empty() {
            return false;
        }
        self.autoscaling.rebalancing.insert(id.clone(), launched);
        true
    }

    /// Begin terminating an instance. With a termination lifecycle hook it
    /// waits in `Terminating:Wait` (still running, its tasks too unless the
    /// instance died) until CompleteLifecycleAction or the heartbeat
    /// timeout (<https://docs.aws.amazon.com/autoscaling/ec2/userguide/lifecycle-hooks.html>).
    /// A no-op for an instance already terminating.
    pub fn terminate_instance(&mut self, id: &str) {
        let now = self.now;
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.is_terminating() {
            return;
        }
        let hook = instance
            .group
            .as_ref()
            .and_then(|g| self.autoscaling.termination_hooks.get(g))
            .map(|h| h.settings.heartbeat_timeout);
        let Some(timeout) = hook else {
            self.finish_termination(id);
            return;
        };
        instance.lifecycle = Lifecycle::TerminatingWait;
        instance.due = Some(now + timeout);
        if !instance.healthy {
            self.stop_tasks_on(id);
        }
    }

    /// Auto Scaling replaces `count` InService instances of its own accord,
    /// newest first, only in `zone` if given. Returns their ids (fewer than
    /// `count` when the group has fewer such instances).
    pub fn terminate_by_aws(
        &mut self,
        group: &GroupId,
        count: u32,
        zone: Option<&str>,
    ) -> Result<Vec<String>, CloudError> {
        if !self.groups.contains_key(group) {
            return Err(not_found(group));
        }
        let mut candidates: Vec<(u64, String)> = self
            .instances
            .values()
            .filter(|i| i.group.as_ref() == Some(group) && i.lifecycle == Lifecycle::InService)
            .filter(|i| zone.is_none_or(|z| i.zone == z))
            .map(|i| (i.seq, i.id.clone()))
            .collect();
        candidates.sort();
        let victims: Vec<String> = candidates.into_iter().rev().take(count as usize).map(|(_, id)| id).collect();
        // Desired capacity stays: the group launches replacements as it
        // reconciles ("an instance terminates unexpectedly (for example,
        // because of a Spot Instance interruption, a health check failure
        // ...) the group automatically launches a new instance":
        // https://docs.aws.amazon.com/autoscaling/ec2/userguide/asg-capacity-limits.html).
        for id in &victims {
            self.terminate_instance(id);
        }
        Ok(victims)
    }

    /// PutLifecycleHook for `autoscaling:EC2_INSTANCE_TERMINATING`.
    pub(super) fn put_hook(
        &mut self,
        group: &GroupId,
        name: &str,
        settings: &TerminationHook,
    ) -> Result<(), CloudError> {
        if !self.groups.contains_key(group) {
            return Err(not_found(group));
        }
        let (min, max) = HEARTBEAT_TIMEOUT;
        let timeout = settings.heartbeat_timeout;
        if timeout < min || timeout > max {
            return Err(rejected(
                "PutLifecycleHook",
                format!(
                    "ValidationError: HeartbeatTimeout {} s is outside {} s to {} s",
                    timeout.as_secs(),
                    min.as_secs(),
                    max.as_secs()
                ),
            ));
        }
        let hook = Hook { name: name.to_string(), settings: settings.clone() };
        self.autoscaling.termination_hooks.insert(group.clone(), hook);
        Ok(())
    }

    /// The instance of `group` waiting in `Terminating:Wait`, or AWS's error.
    fn waiting_instance(
        &mut self,
        group: &GroupId,
        instance_id: &str,
        operation: &'static str,
    ) -> Result<&mut super::world::Instance, CloudError> {
        if !self.groups.contains_key(group) {
            return Err(not_found(group));
        }
        match self.instances.get_mut(instance_id) {
            Some(i) if i.group.as_ref() == Some(group) && i.lifecycle == Lifecycle::TerminatingWait => Ok(i),
            _ => Err(rejected(
                operation,
                format!("ValidationError: No active Lifecycle Action found with instance ID {instance_id}"),
            )),
        }
    }

    /// CompleteLifecycleAction: the instance terminates now.
    pub(super) fn complete_lifecycle_action(&mut self, group: &GroupId, instance_id: &str) -> Result<(), CloudError> {
        self.waiting_instance(group, instance_id, "CompleteLifecycleAction")?;
        self.finish_termination(instance_id);
        Ok(())
    }

    /// RecordLifecycleActionHeartbeat: the wait starts again from now.
    pub(super) fn record_heartbeat(&mut self, group: &GroupId, instance_id: &str) -> Result<(), CloudError> {
        let timeout = self.autoscaling.termination_hooks.get(group).map(|h| h.settings.heartbeat_timeout);
        let now = self.now;
        let instance = self.waiting_instance(group, instance_id, "RecordLifecycleActionHeartbeat")?;
        if let Some(timeout) = timeout {
            instance.due = Some(now + timeout);
        }
        Ok(())
    }

    pub(super) fn set_processes(
        &mut self,
        group: &GroupId,
        processes: &[&str],
        suspend: bool,
    ) -> Result<(), CloudError> {
        let operation = if suspend { "SuspendProcesses" } else { "ResumeProcesses" };
        if !self.groups.contains_key(group) {
            return Err(not_found(group));
        }
        if let Some(unknown) = processes.iter().find(|p| !SCALING_PROCESSES.contains(p)) {
            return Err(rejected(
                operation,
                format!(
                    "ValidationError: {unknown} is not a process; expected one of {}",
                    SCALING_PROCESSES.join(", ")
                ),
            ));
        }
        // No process named: all of them, as in AWS.
        let named: Vec<&str> = if processes.is_empty() { SCALING_PROCESSES.to_vec() } else { processes.to_vec() };
        let set = self.autoscaling.suspended.entry(group.clone()).or_default();
        for p in named {
            if suspend {
                set.insert(p.to_string());
            } else {
                set.remove(p);
            }
        }
        Ok(())
    }
}

impl SimCloud {
    /// AWS terminates `count` InService instances of the group by itself
    /// (health replacement, Spot interruption), newest first, in `zone` if
    /// given; Auto Scaling launches replacements (desired capacity
    /// unchanged). Returns the instance ids: fewer than `count` when the
    /// group (or zone) has fewer InService instances.
    pub fn terminate_instances_by_aws(
        &self,
        group: &GroupId,
        count: u32,
        zone: Option<&str>,
    ) -> Result<Vec<String>, CloudError> {
        self.control(|w| w.terminate_by_aws(group, count, zone))
    }

    /// SuspendProcesses: names from [`SCALING_PROCESSES`]; none names them all.
    /// `AZRebalance` stops zone rebalancing, `Launch` every launch,
    /// `Terminate` every termination but explicit ones.
    pub fn suspend_processes(&self, group: &GroupId, processes: &[&str]) -> Result<(), CloudError> {
        self.control(|w| w.set_processes(group, processes, true))
    }

    /// ResumeProcesses: names from [`SCALING_PROCESSES`]; none names them all.
    pub fn resume_processes(&self, group: &GroupId, processes: &[&str]) -> Result<(), CloudError> {
        self.control(|w| w.set_processes(group, processes, false))
    }

    /// PutLifecycleHook(autoscaling:EC2_INSTANCE_TERMINATING) with this
    /// heartbeat timeout (30 s to 2 h, AWS's range; AWS's default is 1 h),
    /// named [`OTHER_HOOK_NAME`]: a hook someone other than ballast put.
    /// Replaces the group's hook if it has one.
    pub fn put_termination_hook(&self, group: &GroupId, heartbeat_timeout: Duration) -> Result<(), CloudError> {
        let settings = TerminationHook { heartbeat_timeout, default_result: "CONTINUE".into() };
        self.control(|w| w.put_hook(group, OTHER_HOOK_NAME, &settings))
    }

    /// CompleteLifecycleAction for an instance in `Terminating:Wait`: it
    /// terminates now.
    pub fn complete_lifecycle_action(&self, group: &GroupId, instance_id: &str) -> Result<(), CloudError> {
        self.control(|w| w.complete_lifecycle_action(group, instance_id))
    }
}
