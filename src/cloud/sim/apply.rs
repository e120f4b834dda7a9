//! Applying one [`Change`]: one recorded write call each, with AWS's
//! validation and idempotence, and the scaling marks after a
//! desired-count or capacity change, as the AWS adapter leaves them.

use std::net::Ipv4Addr;

use super::world::{Lifecycle, World};
use crate::cloud::{CloudError, marks};
use crate::desired::{GroupId, TargetType};
use crate::observed::Target;
use crate::plan::Change;

pub(super) fn apply(world: &mut World, change: &Change) -> Result<(), CloudError> {
    let before = world.before_write(change);
    let result = match change {
        Change::SetDesiredCount { service, from, to } => {
            let result = world.api("ecs", "UpdateService", true, |w| {
                let svc = w
                    .services
                    .get_mut(service)
                    .ok_or_else(|| CloudError::NotFound(format!("ECS service {service}")))?;
                svc.desired_count = *to;
                Ok(())
            });
            if let (Ok(()), Some(key)) = (&result, marks::scaling_key(*from, *to)) {
                let value = marks::scaling_value(world.now, *to);
                // As in the adapter, a mark that is not written fails no change.
                let _ = world.api("ecs", "TagResource", true, |w| {
                    if let Some(svc) = w.services.get_mut(service) {
                        svc.tags.insert(key.to_string(), value);
                    }
                    Ok(())
                });
            }
            result
        }
        Change::MarkSurge { service, mark, .. } => world.api("ecs", "TagResource", true, |w| {
            let svc =
                w.services.get_mut(service).ok_or_else(|| CloudError::NotFound(format!("ECS service {service}")))?;
            svc.tags.insert(marks::DEPLOYMENT_SURGE.to_string(), marks::surge_value(mark));
            Ok(())
        }),
        Change::RegisterTargets { target_group_arn, targets, .. } => {
            world
                .api("elasticloadbalancing", "RegisterTargets", true, |w| w.register_targets(target_group_arn, targets))
        }
        Change::DeregisterTargets { target_group_arn, targets, .. } => {
            world.api("elasticloadbalancing", "DeregisterTargets", true, |w| {
                w.deregister_targets(target_group_arn, targets)
            })
        }
        Change::PutAlarm { region, alarm, .. } => world.api("cloudwatch", "PutMetricAlarm", true, |w| {
            w.put_alarm(region, alarm.clone());
            Ok(())
        }),
        // Tags are not modelled: the simulated alarms report none read.
        Change::TagAlarm { .. } => world.api("cloudwatch", "TagResource", true, |_| Ok(())),
        Change::SetDesiredCapacity { group, to, .. } => {
            let result = world.api("autoscaling", "SetDesiredCapacity", true, |w| w.set_desired_capacity(group, *to));
            world.mark_capacity_change(group, &result);
            result
        }
        Change::TerminateInstance { group, instance_id } => {
            let result = world.api("autoscaling", "TerminateInstanceInAutoScalingGroup", true, |w| {
                w.terminate_and_decrement(group, instance_id)
            });
            world.mark_capacity_change(group, &result);
            result
        }
        Change::SetGroupSubnets { group, to, .. } => {
            world.api("autoscaling", "UpdateAutoScalingGroup", true, |w| w.set_group_subnets(group, to))
        }
        Change::SetTaskProtection { service, tasks, minutes } => {
            // A write makes the cluster's protection read stale.
            world.api.protection_reads.forget(&(service.region.clone(), service.cluster.clone()));
            let expires_in = minutes.map(|m| std::time::Duration::from_secs(u64::from(m) * 60));
            tasks.chunks(crate::cloud::batch::UPDATE_TASK_PROTECTION).try_for_each(|chunk| {
                world.api("ecs", "UpdateTaskProtection", true, |w| w.update_task_protection(chunk, expires_in))
            })
        }
        Change::SuspendProcesses { group, processes } => world.api("autoscaling", "SuspendProcesses", true, |w| {
            // Never empty from the planner: an empty list would suspend all.
            let names: Vec<&str> = processes.iter().map(String::as_str).collect();
            w.set_processes(group, &names, true)
        }),
        Change::PutLifecycleHook { group, hook, .. } => world.api("autoscaling", "PutLifecycleHook", true, |w| {
            w.put_hook(group, crate::desired::TERMINATION_HOOK_NAME, hook)
        }),
        Change::DrainContainerInstance { instance_id, .. } => {
            world.api("ecs", "UpdateContainerInstancesState", true, |w| w.drain_container_instance(instance_id))
        }
        Change::RecordLifecycleActionHeartbeat { group, instance_id } => {
            world.api("autoscaling", "RecordLifecycleActionHeartbeat", true, |w| w.record_heartbeat(group, instance_id))
        }
        Change::CompleteLifecycleAction { group, instance_id } => {
            world.api("autoscaling", "CompleteLifecycleAction", true, |w| {
                w.complete_lifecycle_action(group, instance_id)
            })
        }
    };
    if result.is_ok() {
        world.lag_reads(before);
    }
    // Let the actors react at once (a task starting, an instance launching).
    world.settle();
    result
}

fn rejected(service: &'static str, operation: &'static str, message: String) -> CloudError {
    CloudError::Rejected { service, operation, message }
}

impl World {
    /// CreateOrUpdateTags with the capacity mark, after a capacity change
    /// that succeeded.
    fn mark_capacity_change(&mut self, group: &GroupId, change: &Result<(), CloudError>) {
        if change.is_err() {
            return;
        }
        let value = marks::capacity_value(self.now);
        let _ = self.api("autoscaling", "CreateOrUpdateTags", true, |w| {
            if let Some(g) = w.groups.get_mut(group) {
                g.tags.insert(marks::LAST_CAPACITY_CHANGE.to_string(), value);
            }
            Ok(())
        });
    }

    /// RegisterTargets with AWS's target validation.
    pub fn register_targets(&mut self, tg_arn: &str, targets: &[Target]) -> Result<(), CloudError> {
        let op = "RegisterTargets";
        let tg =
            self.target_groups.get(tg_arn).ok_or_else(|| CloudError::NotFound(format!("target group {tg_arn}")))?;
        let (region, target_type) = (tg.region.clone(), tg.info.target_type);
        for target in targets {
            if target.port == 0 {
                return Err(rejected("elasticloadbalancing", op, format!("InvalidTarget: {target} has no port")));
            }
            match target_type {
                TargetType::Instance => {
                    let running = self
                        .instances
                        .get(&target.id)
                        .is_some_and(|i| i.region == region && i.lifecycle != Lifecycle::Terminating);
                    if !running {
                        return Err(rejected(
                            "elasticloadbalancing",
                            op,
                            format!("InvalidTarget: the target {} is not a running instance", target.id),
                        ));
                    }
                }
                TargetType::Ip => {
                    let in_vpc =
                        target.id.parse::<Ipv4Addr>().is_ok_and(|ip| ip.octets()[0] == 10 && ip.octets()[1] == 0);
                    if !in_vpc {
                        return Err(rejected(
                            "elasticloadbalancing",
                            op,
                            format!("InvalidTarget: {} is not an address in the VPC 10.0.0.0/16", target.id),
                        ));
                    }
                }
            }
        }
        for target in targets {
            self.register_target(tg_arn, target.clone());
        }
        Ok(())
    }

    pub fn deregister_targets(&mut self, tg_arn: &str, targets: &[Target]) -> Result<(), CloudError> {
        if !self.target_groups.contains_key(tg_arn) {
            return Err(CloudError::NotFound(format!("target group {tg_arn}")));
        }
        for target in targets {
            self.deregister_target(tg_arn, target);
        }
        Ok(())
    }

    /// SetDesiredCapacity: outside [min, max] is AWS's ValidationError.
    pub fn set_desired_capacity(&mut self, group: &GroupId, to: u32) -> Result<(), CloudError> {
        let g =
            self.groups.get_mut(group).ok_or_else(|| CloudError::NotFound(format!("Auto Scaling group {group}")))?;
        if to > g.max {
            return Err(rejected(
                "autoscaling",
                "SetDesiredCapacity",
                format!(
                    "ValidationError: New SetDesiredCapacity value {to} is above max value {} for the AutoScalingGroup.",
                    g.max
                ),
            ));
        }
        if to < g.min {
            return Err(rejected(
                "autoscaling",
                "SetDesiredCapacity",
                format!(
                    "ValidationError: New SetDesiredCapacity value {to} is below min value {} for the AutoScalingGroup.",
                    g.min
                ),
            ));
        }
        g.desired = to;
        Ok(())
    }

    /// TerminateInstanceInAutoScalingGroup with ShouldDecrementDesiredCapacity.
    /// Terminating an instance that is already terminating changes nothing.
    fn terminate_and_decrement(&mut self, group: &GroupId, instance_id: &str) -> Result<(), CloudError> {
        let op = "TerminateInstanceInAutoScalingGroup";
        let g = self.groups.get(group).ok_or_else(|| CloudError::NotFound(format!("Auto Scaling group {group}")))?;
        let instance = self
            .instances
            .get(instance_id)
            .filter(|i| i.group.as_ref() == Some(group))
            .ok_or_else(|| CloudError::NotFound(format!("instance {instance_id} in group {group}")))?;
        if instance.is_terminating() {
            return Ok(());
        }
        if g.desired <= g.min {
            return Err(rejected(
                "autoscaling",
                op,
                format!(
                    "ValidationError: Currently, desiredSize equals minSize ({}). Terminating instance without replacement will violate group's min size constraint.",
                    g.min
                ),
            ));
        }
        if let Some(g) = self.groups.get_mut(group) {
            g.desired -= 1;
        }
        self.terminate_instance(instance_id);
        Ok(())
    }

    /// UpdateAutoScalingGroup(VPCZoneIdentifier). Instances in removed
    /// subnets keep running: AZ rebalancing replaces them, launching first
    /// (see `autoscaling.rs`), and scale-in takes them first.
    pub fn set_group_subnets(&mut self, group: &GroupId, subnets: &[String]) -> Result<(), CloudError> {
        if subnets.is_empty() {
            return Err(rejected(
                "autoscaling",
                "UpdateAutoScalingGroup",
                "ValidationError: VPCZoneIdentifier must name at least one subnet".to_string(),
            ));
        }
        let g =
            self.groups.get_mut(group).ok_or_else(|| CloudError::NotFound(format!("Auto Scaling group {group}")))?;
        g.subnets = subnets.to_vec();
        for subnet in subnets {
            self.zone_of(&group.region, subnet);
        }
        Ok(())
    }
}
