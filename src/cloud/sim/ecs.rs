//! The ECS service scheduler's behaviours that decide which tasks serve:
//! which tasks it stops on scale-in, task scale-in protection, rolling
//! deployments within `minimumHealthyPercent` / `maximumPercent`,
//! container instance draining, and how a task stops (its load balancer
//! deregistration, SIGTERM, `stopTimeout`). Placement and starting are in
//! `scheduler.rs`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::SimCloud;
use super::world::{Instance, World};
use crate::cloud::CloudError;
use crate::desired::ServiceId;
use crate::observed::{TargetHealth, TaskStatus};

/// The longest task scale-in protection ECS grants (UpdateTaskProtection's
/// `expiresInMinutes` is at most 2,880).
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateTaskProtection.html>
pub const MAX_TASK_PROTECTION: Duration = Duration::from_secs(48 * 3600);

/// The protection UpdateTaskProtection grants without `expiresInMinutes`.
pub const DEFAULT_TASK_PROTECTION: Duration = Duration::from_secs(2 * 3600);

/// How long a RUNNING task without a load balancer or container health
/// check waits before a deployment counts it as healthy.
/// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html>
const UNCHECKED_TASK_HEALTHY_AFTER: Duration = Duration::from_secs(40);

/// ECS's default `deploymentConfiguration`.
pub const DEFAULT_MINIMUM_HEALTHY_PERCENT: u32 = 100;
/// ECS's default `deploymentConfiguration`.
pub const DEFAULT_MAXIMUM_PERCENT: u32 = 200;

impl World {
    /// One service's scheduler round: tasks of an older deployment or on a
    /// draining container instance are replaced within the deployment
    /// limits; otherwise tasks start or stop to meet the desired count.
    /// `live` is the service's live tasks, oldest first.
    pub fn reconcile_service(&mut self, id: &ServiceId, live: &[(u64, String)]) -> bool {
        let Some(service) = self.services.get(id) else {
            return false;
        };
        let desired = service.desired_count as usize;
        let deployment = service.deployment;
        // The common case, cheaply: nothing to replace and the count is met
        // (outside a rollout every live task is of the current deployment).
        if !service.rolling && self.draining.is_empty() && live.len() == desired {
            return false;
        }
        // ECS rounds the lower limit up and the upper limit down.
        // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service_definition_parameters.html#sd-deploymentconfiguration
        let min_healthy = (desired * service.minimum_healthy_percent as usize).div_ceil(100);
        let max_total = desired * service.maximum_percent as usize / 100;
        let mut changed = false;

        // Service tasks still PENDING on a draining container instance are
        // stopped at once.
        // https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html
        let mut live: Vec<String> = live.iter().map(|(_, arn)| arn.clone()).collect();
        let pending_on_draining: Vec<String> = live
            .iter()
            .filter(|arn| self.tasks[*arn].last_status == TaskStatus::Pending && self.on_draining_instance(arn))
            .cloned()
            .collect();
        for arn in &pending_on_draining {
            self.stop_task(arn);
            changed = true;
        }
        live.retain(|arn| !pending_on_draining.contains(arn));

        let (mut keep, replace): (Vec<String>, Vec<String>) = live
            .iter()
            .cloned()
            .partition(|arn| self.tasks[arn].deployment == deployment && !self.on_draining_instance(arn));

        if replace.is_empty() {
            if keep.len() < desired {
                for _ in keep.len()..desired {
                    if self.start_task(id).is_none() {
                        break;
                    }
                    changed = true;
                }
            } else if keep.len() > desired {
                changed |= self.scale_in(id, &keep, keep.len() - desired);
            }
        } else {
            // Start replacements first, as far as maximumPercent allows.
            let mut total = live.len();
            while keep.len() < desired && total < max_total {
                let Some(arn) = self.start_task(id) else {
                    break;
                };
                keep.push(arn);
                total += 1;
                changed = true;
            }
            if keep.len() > desired {
                changed |= self.scale_in(id, &keep, keep.len() - desired);
            }
            // Then stop replaced tasks while minimumHealthyPercent holds:
            // the unhealthy ones cost nothing, the oldest go first.
            let healthy = live.iter().filter(|a| self.task_is_healthy(a)).count();
            let mut allowance = healthy.saturating_sub(min_healthy);
            let (sick, well): (Vec<&String>, Vec<&String>) = replace.iter().partition(|a| !self.task_is_healthy(a));
            let mut blocked = 0;
            for arn in sick.into_iter().chain(well) {
                let is_healthy = self.task_is_healthy(arn);
                if is_healthy && allowance == 0 {
                    break;
                }
                if self.is_protected(arn) {
                    blocked += 1;
                    continue;
                }
                self.stop_task(arn);
                allowance -= usize::from(is_healthy);
                changed = true;
            }
            if blocked > 0 {
                let message =
                    format!("(service {}) was unable to stop {blocked} tasks: they are protected.", id.service);
                self.record_event(id, &message);
            }
        }

        // The rollout is done once only new tasks remain and all run.
        if self.services.get(id).is_some_and(|s| s.rolling) {
            let running_new = self
                .tasks
                .values()
                .filter(|t| &t.service == id && t.deployment == deployment && t.is_live())
                .filter(|t| t.last_status == TaskStatus::Running)
                .count();
            let any_old =
                self.tasks.values().any(|t| &t.service == id && t.deployment != deployment && t.holds_resources());
            if !any_old
                && running_new == desired
                && let Some(service) = self.services.get_mut(id)
            {
                service.rolling = false;
                changed = true;
            }
        }
        changed
    }

    /// Stop `count` of the service's `candidates` by ECS's own rule, never
    /// a protected one: from the zone with the most of the service's tasks,
    /// on the instance with the most of them, the newest first.
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/update-service-parameters.html>
    /// (the zone and instance order), and for protection
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>.
    fn scale_in(&mut self, id: &ServiceId, candidates: &[String], count: usize) -> bool {
        let mut per_zone: BTreeMap<String, usize> = BTreeMap::new();
        let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
        for arn in candidates {
            let (zone, instance) = self.task_place(arn);
            *per_zone.entry(zone).or_default() += 1;
            *per_instance.entry(instance).or_default() += 1;
        }
        let balance = self.config.scale_in_balances_zones;
        let mut stoppable: Vec<&String> = candidates.iter().filter(|a| !self.is_protected(a)).collect();
        let mut chosen = Vec::new();
        while chosen.len() < count && !stoppable.is_empty() {
            let best = (0..stoppable.len())
                .max_by_key(|&i| {
                    let (zone, instance) = self.task_place(stoppable[i]);
                    let spread = if balance { (per_zone[&zone], per_instance[&instance]) } else { (0, 0) };
                    (spread, self.tasks[stoppable[i]].seq)
                })
                .unwrap_or(0);
            let arn = stoppable.remove(best);
            let (zone, instance) = self.task_place(arn);
            *per_zone.entry(zone).or_default() -= 1;
            *per_instance.entry(instance).or_default() -= 1;
            chosen.push(arn.clone());
        }
        if chosen.len() < count {
            let message = format!(
                "(service {}) was unable to scale in {} tasks: they are protected.",
                id.service,
                count - chosen.len()
            );
            self.record_event(id, &message);
        }
        for arn in &chosen {
            self.stop_task(arn);
        }
        !chosen.is_empty()
    }

    /// The task's zone and instance ("" when it has none).
    fn task_place(&self, arn: &str) -> (String, String) {
        let instance = self.tasks.get(arn).and_then(|t| t.instance_id.clone()).unwrap_or_default();
        let zone = self.instances.get(&instance).map(|i| i.zone.clone()).unwrap_or_default();
        (zone, instance)
    }

    fn is_protected(&self, arn: &str) -> bool {
        let now = self.now;
        self.tasks.get(arn).and_then(|t| t.protected_until).is_some_and(|until| until > now)
    }

    fn on_draining_instance(&self, arn: &str) -> bool {
        self.tasks.get(arn).and_then(|t| t.instance_id.as_ref()).is_some_and(|i| self.draining.contains(i))
    }

    /// What a deployment counts as healthy: RUNNING, and healthy in each
    /// of the service's own load balancers, or, without any, RUNNING for
    /// 40 s (the simulated task definitions have no container health check).
    /// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentConfiguration.html>
    fn task_is_healthy(&self, arn: &str) -> bool {
        let Some(task) = self.tasks.get(arn) else {
            return false;
        };
        if task.last_status != TaskStatus::Running || !task.is_live() {
            return false;
        }
        let Some(service) = self.services.get(&task.service) else {
            return false;
        };
        if service.load_balancers.is_empty() {
            return task.started_at.is_some_and(|at| at + UNCHECKED_TASK_HEALTHY_AFTER <= self.now);
        }
        service.load_balancers.iter().all(|tg_arn| {
            let target = self.task_target(arn, tg_arn);
            let tg = self.target_groups.get(tg_arn);
            match (target, tg) {
                (Some(target), Some(tg)) => tg.targets.get(&target).is_some_and(|t| t.health == TargetHealth::Healthy),
                _ => false,
            }
        })
    }

    /// ECS stops a task (StopTask, scale-in, replacement, a lost
    /// instance). A task of a service with its own load balancers is first
    /// deregistered and keeps running (DEACTIVATING) until its targets have
    /// drained (UNUSED); then its containers get SIGTERM, and the task is
    /// STOPPED when the app exits or at `stopTimeout` (SIGKILL), whichever
    /// is first. Stopping a stopping task is a no-op.
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-lifecycle-explanation.html>,
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/load-balancer-connection-draining.html>
    pub fn stop_task(&mut self, arn: &str) {
        let now = self.now;
        let Some(task) = self.tasks.get(arn) else {
            return;
        };
        if task.desired_status == TaskStatus::Stopped {
            return;
        }
        let service = task.service.clone();
        let ran = task.started_at.is_some();
        let instance_up =
            task.instance_id.as_deref().and_then(|id| self.instances.get(id)).is_some_and(Instance::runs_tasks);
        self.deregister_from_service_load_balancers(&service, arn);
        let drained = self.service_targets_drained_at(&service, arn);
        let Some(task) = self.tasks.get_mut(arn) else {
            return;
        };
        task.desired_status = TaskStatus::Stopped;
        if let Some(drained) = drained.filter(|at| ran && instance_up && *at > now) {
            task.last_status = TaskStatus::Deactivating;
            task.sigterm_at = Some(drained);
            task.due = Some(drained);
        } else {
            self.send_sigterm(arn);
        }
    }

    /// When the last of the task's targets in its service's own load
    /// balancers is done draining.
    fn service_targets_drained_at(&self, service: &ServiceId, task_arn: &str) -> Option<SystemTime> {
        let tgs = &self.services.get(service)?.load_balancers;
        tgs.iter()
            .filter_map(|tg_arn| {
                let target = self.task_target(task_arn, tg_arn)?;
                self.target_groups.get(tg_arn)?.targets.get(&target)?.drain_until
            })
            .max()
    }

    /// SIGTERM now; STOPPED when the app exits, or at `stopTimeout`.
    /// <https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html> (`stopTimeout`)
    pub fn send_sigterm(&mut self, arn: &str) {
        let now = self.now;
        let exit = self.config.task_stop_delay.min(self.config.stop_timeout);
        if let Some(task) = self.tasks.get_mut(arn) {
            task.last_status = TaskStatus::Stopping;
            task.sigterm_at = Some(now);
            task.due = Some(now + exit);
        }
    }

    /// ECS UpdateContainerInstancesState DRAINING.
    pub fn drain_container_instance(&mut self, instance_id: &str) -> Result<(), CloudError> {
        let registered = self.instances.get(instance_id).is_some_and(|i| i.container_instance.is_some());
        if !registered {
            return Err(CloudError::NotFound(format!("container instance on {instance_id}")));
        }
        self.draining.insert(instance_id.to_string());
        Ok(())
    }

    /// The next instant the ECS scheduler must look again by itself: a
    /// task's scale-in protection running out, or a new task counting as
    /// healthy.
    pub fn ecs_next_due(&self) -> Option<SystemTime> {
        let now = self.now;
        let live = self.tasks.values().filter(|t| t.is_live());
        let protection = live.clone().filter_map(|t| t.protected_until);
        let healthy = live.filter_map(|t| t.started_at.map(|at| at + UNCHECKED_TASK_HEALTHY_AFTER));
        protection.chain(healthy).filter(|at| *at > now).min()
    }

    /// UpdateTaskProtection on `arns`: every task is checked first, and
    /// one that is unknown or no longer meant to run fails the call as
    /// AWS's per-task failures would (`TASK_NOT_VALID`).
    pub fn update_task_protection(&mut self, arns: &[String], expires_in: Option<Duration>) -> Result<(), CloudError> {
        for arn in arns {
            let task = self.tasks.get(arn).ok_or_else(|| CloudError::NotFound(format!("task {arn}")))?;
            if !task.is_live() {
                return Err(CloudError::Rejected {
                    service: "ecs",
                    operation: "UpdateTaskProtection",
                    message: format!("TASK_NOT_VALID: the task {arn} is stopping or stopped"),
                });
            }
        }
        let until = expires_in.map(|d| self.now + d);
        for arn in arns {
            if let Some(task) = self.tasks.get_mut(arn) {
                task.protected_until = until;
            }
        }
        Ok(())
    }

    /// Forget draining marks of instances that are gone.
    pub fn forget_gone_container_instances(&mut self) {
        if !self.draining.is_empty() {
            let instances = &self.instances;
            self.draining.retain(|id| instances.get(id).is_some_and(|i| i.container_instance.is_some()));
        }
    }
}

impl SimCloud {
    /// ECS UpdateTaskProtection by the task itself (or anyone): with
    /// `Some(d)`, the service scheduler does not stop the task on scale-in
    /// or in a deployment for `d` (at most 48 hours; AWS's default is
    /// [`DEFAULT_TASK_PROTECTION`]); `None` removes the protection.
    /// StopTask still stops a protected task.
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-scale-in-protection.html>
    pub fn set_task_protection(&self, task_arn: &str, expires_in: Option<Duration>) -> Result<(), CloudError> {
        if let Some(d) = expires_in
            && (d.is_zero() || d > MAX_TASK_PROTECTION)
        {
            return Err(CloudError::Rejected {
                service: "ecs",
                operation: "UpdateTaskProtection",
                message: format!(
                    "InvalidParameterException: expiresInMinutes must be between 1 and 2880, not {} minutes",
                    d.as_secs() / 60
                ),
            });
        }
        self.control(|w| w.update_task_protection(&[task_arn.to_string()], expires_in))
    }

    /// ECS UpdateContainerInstancesState DRAINING for the container
    /// instance on this EC2 instance: no new tasks are placed on it, and
    /// its service tasks are replaced elsewhere within each service's
    /// deployment limits (replacements first where `maximumPercent`
    /// allows).
    /// <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/container-instance-draining.html>
    pub fn drain_container_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        self.control(|w| w.drain_container_instance(instance_id))
    }

    /// ECS UpdateService `deploymentConfiguration` by someone else.
    pub fn set_deployment_configuration(
        &self,
        id: &ServiceId,
        minimum_healthy_percent: u32,
        maximum_percent: u32,
    ) -> Result<(), CloudError> {
        self.control(|w| {
            let service = w.services.get_mut(id).ok_or_else(|| CloudError::NotFound(format!("ECS service {id}")))?;
            service.minimum_healthy_percent = minimum_healthy_percent;
            service.maximum_percent = maximum_percent;
            Ok(())
        })
    }
}
