//! The actors inside AWS: the ECS service scheduler, Auto Scaling, and the
//! load balancer's health checks. Each `reconcile_*` reacts to the world
//! at the current instant and reports whether it changed anything.

use std::collections::{BTreeMap, BTreeSet};

use super::world::{Instance, Lifecycle, RegisteredTarget, Task, World};
use crate::desired::{GroupId, ServiceId, TargetType};
use crate::observed::{Target, TargetHealth, TaskStatus};

/// ECS keeps this many service events.
const MAX_EVENTS: usize = 100;

/// Why a task could not be placed, as ECS words it.
const NO_ROOM: &str = "was unable to place a task because no container instance met all of its requirements";

impl World {
    // ---- ECS ----------------------------------------------------------

    /// The ECS scheduler of every service: start or stop tasks to meet the
    /// desired count, and roll deployments one task at a time.
    pub fn reconcile_services(&mut self) -> bool {
        let mut live: BTreeMap<ServiceId, Vec<(u64, String)>> = BTreeMap::new();
        for task in self.tasks.values().filter(|t| t.is_live()) {
            live.entry(task.service.clone()).or_default().push((task.seq, task.arn.clone()));
        }
        let ids: Vec<ServiceId> = self.services.keys().cloned().collect();
        let mut changed = false;
        for id in ids {
            let mut tasks = live.remove(&id).unwrap_or_default();
            // Oldest first: creation order, not ARN order.
            tasks.sort();
            changed |= self.reconcile_service(&id, &tasks);
        }
        changed
    }

    fn reconcile_service(&mut self, id: &ServiceId, live: &[(u64, String)]) -> bool {
        let Some(service) = self.services.get(id) else {
            return false;
        };
        let desired = service.desired_count as usize;
        let deployment = service.deployment;
        let (new, old): (Vec<&String>, Vec<&String>) =
            live.iter().map(|(_, arn)| arn).partition(|arn| self.tasks[*arn].deployment == deployment);
        let new_pending = new.iter().filter(|arn| self.tasks[**arn].last_status != TaskStatus::Running).count();
        let new: Vec<String> = new.into_iter().cloned().collect();
        let old: Vec<String> = old.into_iter().cloned().collect();
        let mut changed = false;

        if old.is_empty() {
            if live.len() < desired {
                for _ in live.len()..desired {
                    if self.start_task(id).is_none() {
                        break;
                    }
                    changed = true;
                }
            } else if live.len() > desired {
                // Newest first, like ECS scale-in.
                for arn in new.iter().rev().take(live.len() - desired) {
                    self.stop_task(arn);
                    changed = true;
                }
            }
        } else {
            // Rolling replacement with minimumHealthyPercent 100 and one
            // extra task at a time: start a new task, and stop an old one
            // only once its replacement runs.
            if new.len() - new_pending >= desired {
                for arn in &old {
                    self.stop_task(arn);
                }
                for arn in new.iter().rev().take(new.len() - desired) {
                    self.stop_task(arn);
                }
                changed = true;
            } else {
                let allowed_extra = usize::from(new_pending > 0);
                let excess = live.len().saturating_sub(desired + allowed_extra);
                for arn in old.iter().take(excess) {
                    self.stop_task(arn);
                    changed = true;
                }
                let live_now = live.len() - excess;
                if new_pending == 0 && live_now <= desired && self.start_task(id).is_some() {
                    changed = true;
                }
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

    /// Place and start one task of the service, returning its ARN. None
    /// (and an ECS event) when no instance has room.
    pub fn start_task(&mut self, id: &ServiceId) -> Option<String> {
        let service = self.services.get(id)?;
        let task_def = self.task_defs.get(&service.task_def).cloned()?;
        let deployment = service.deployment;
        let host_ports = task_def.host_ports();
        let Some(instance_id) = self.place(id, &host_ports, task_def.cpu, task_def.memory) else {
            self.record_event(id, &format!("(service {}) {NO_ROOM}.", id.service));
            return None;
        };
        let private_ip = if task_def.awsvpc {
            match self.new_task_ip() {
                Some(ip) => Some(ip),
                None => {
                    self.record_event(
                        id,
                        &format!(
                            "(service {}) was unable to place a task: no free IP address in the subnet.",
                            id.service
                        ),
                    );
                    return None;
                }
            }
        } else {
            None
        };
        let arn = self.new_task_arn(id);
        let seq = self.next_seq();
        let due = Some(self.now + self.config.task_start_delay);
        self.tasks.insert(
            arn.clone(),
            Task {
                arn: arn.clone(),
                service: id.clone(),
                deployment,
                last_status: TaskStatus::Pending,
                desired_status: TaskStatus::Running,
                instance_id: Some(instance_id),
                private_ip,
                bindings: task_def.bindings(),
                host_ports,
                cpu: task_def.cpu,
                memory: task_def.memory,
                seq,
                started_at: None,
                stopped_at: None,
                due,
                sigterm_at: None,
            },
        );
        Some(arn)
    }

    /// Choose an instance for a task: ACTIVE container instances of the
    /// service's cluster with the host ports free and enough CPU and
    /// memory; spread over zones, then over instances (ECS's default
    /// spread placement).
    pub fn place(&self, id: &ServiceId, host_ports: &BTreeSet<u16>, cpu: u32, memory: u32) -> Option<String> {
        let mut used: BTreeMap<&str, (BTreeSet<u16>, u32, u32, usize)> = BTreeMap::new();
        let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
        for task in self.tasks.values().filter(|t| t.holds_resources()) {
            let Some(instance_id) = task.instance_id.as_deref() else {
                continue;
            };
            let entry = used.entry(instance_id).or_default();
            entry.0.extend(task.host_ports.iter().copied());
            entry.1 += task.cpu;
            entry.2 += task.memory;
            if &task.service == id && task.is_live() {
                entry.3 += 1;
                if let Some(instance) = self.instances.get(instance_id) {
                    *per_zone.entry(instance.zone.as_str()).or_default() += 1;
                }
            }
        }
        let empty = (BTreeSet::new(), 0, 0, 0);
        self.instances
            .values()
            .filter(|i| {
                i.region == id.region
                    && i.lifecycle == Lifecycle::InService
                    && i.container_instance.is_some()
                    && i.cluster.as_deref() == Some(id.cluster.as_str())
            })
            .filter(|i| {
                let (ports, used_cpu, used_memory, _) = used.get(i.id.as_str()).unwrap_or(&empty);
                ports.is_disjoint(host_ports) && used_cpu + cpu <= i.cpu && used_memory + memory <= i.memory
            })
            .min_by_key(|i| {
                let (_, _, _, mine) = used.get(i.id.as_str()).unwrap_or(&empty);
                (per_zone.get(i.zone.as_str()).copied().unwrap_or(0), *mine, i.seq)
            })
            .map(|i| i.id.clone())
    }

    /// ECS StopTask: the task drains from its service's load balancers and
    /// stops after the stop delay. Stopping a stopping task is a no-op.
    pub fn stop_task(&mut self, arn: &str) {
        let now = self.now;
        let stop_delay = self.config.task_stop_delay;
        let Some(task) = self.tasks.get_mut(arn) else {
            return;
        };
        if task.desired_status == TaskStatus::Stopped {
            return;
        }
        task.desired_status = TaskStatus::Stopped;
        task.last_status = TaskStatus::Stopping;
        task.due = Some(now + stop_delay);
        task.sigterm_at = Some(now);
        let service = task.service.clone();
        self.deregister_from_service_load_balancers(&service, arn);
    }

    fn record_event(&mut self, id: &ServiceId, message: &str) {
        let now = self.now;
        let Some(service) = self.services.get_mut(id) else {
            return;
        };
        // ECS does not repeat an unchanged event more often than this.
        let repeat_after = std::time::Duration::from_secs(300);
        if let Some((at, last)) = service.events.back()
            && last == message
            && *at + repeat_after > now
        {
            return;
        }
        service.events.push_back((now, message.to_string()));
        while service.events.len() > MAX_EVENTS {
            service.events.pop_front();
        }
    }

    /// The targets a task offers to a target group of its service.
    fn task_target(&self, task_arn: &str, tg_arn: &str) -> Option<Target> {
        let task = self.tasks.get(task_arn)?;
        let tg = self.target_groups.get(tg_arn)?;
        let binding = task.bindings.iter().find(|b| b.container_port == tg.info.port)?;
        match tg.info.target_type {
            TargetType::Instance => Some(Target { id: task.instance_id.clone()?, port: binding.host_port }),
            TargetType::Ip => Some(Target { id: task.private_ip.clone()?, port: binding.container_port }),
        }
    }

    /// ECS registers a task in its service's own load balancers once it runs.
    pub fn register_with_service_load_balancers(&mut self, service: &ServiceId, task_arn: &str) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        for tg_arn in svc.load_balancers.clone() {
            if let Some(target) = self.task_target(task_arn, &tg_arn) {
                self.register_target(&tg_arn, target);
            }
        }
    }

    /// ECS deregisters a stopping task from its service's own load balancers.
    fn deregister_from_service_load_balancers(&mut self, service: &ServiceId, task_arn: &str) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        for tg_arn in svc.load_balancers.clone() {
            if let Some(target) = self.task_target(task_arn, &tg_arn) {
                self.deregister_target(&tg_arn, &target);
            }
        }
    }

    // ---- Auto Scaling -------------------------------------------------

    /// Auto Scaling: launch or terminate instances until each group's
    /// active instances match its desired capacity.
    pub fn reconcile_groups(&mut self) -> bool {
        let ids: Vec<GroupId> = self.groups.keys().cloned().collect();
        let mut changed = false;
        for id in ids {
            let mut active: Vec<(u64, String)> = self
                .instances
                .values()
                .filter(|i| i.group.as_ref() == Some(&id) && i.is_active())
                .map(|i| (i.seq, i.id.clone()))
                .collect();
            active.sort();
            let desired = self.groups[&id].desired as usize;
            if active.len() < desired {
                for _ in active.len()..desired {
                    if self.launch_instance(&id).is_none() {
                        break;
                    }
                    changed = true;
                }
            } else if active.len() > desired {
                for (_, instance_id) in active.iter().rev().take(active.len() - desired) {
                    self.terminate_instance(instance_id);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Launch one instance into the group's subnet with the fewest active
    /// instances (round-robin over zones), returning its id. None when the
    /// group has no subnet.
    pub fn launch_instance(&mut self, group: &GroupId) -> Option<String> {
        let g = self.groups.get(group)?;
        let subnets = g.subnets.clone();
        let (cluster, cpu, memory) = (g.cluster.clone(), g.instance_cpu, g.instance_memory);
        let subnet = subnets.iter().min_by_key(|s| {
            self.instances
                .values()
                .filter(|i| i.group.as_ref() == Some(group) && i.is_active() && &i.subnet == *s)
                .count()
        });
        let subnet = subnet.cloned()?;
        let zone = self.zone_of(&group.region, &subnet);
        let id = self.new_instance_id();
        let seq = self.next_seq();
        let due = Some(self.now + self.config.instance_launch_delay);
        self.instances.insert(
            id.clone(),
            Instance {
                id: id.clone(),
                region: group.region.clone(),
                group: Some(group.clone()),
                subnet,
                zone,
                lifecycle: Lifecycle::Pending,
                healthy: true,
                cluster,
                container_instance: None,
                cpu,
                memory,
                seq,
                due,
            },
        );
        Some(id)
    }

    /// The instance is in service and joins its cluster as an ACTIVE
    /// container instance.
    pub fn bring_into_service(&mut self, id: &str) {
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        instance.lifecycle = Lifecycle::InService;
        instance.due = None;
        let Some(cluster) = instance.cluster.clone() else {
            return;
        };
        let region = instance.region.clone();
        let arn = self.new_container_instance_arn(&region, &cluster);
        self.clusters.insert((region, cluster));
        if let Some(instance) = self.instances.get_mut(id) {
            instance.container_instance = Some(arn);
        }
    }

    /// Begin terminating an instance: it leaves its cluster and its tasks
    /// stop. A no-op for an instance already terminating.
    pub fn terminate_instance(&mut self, id: &str) {
        let due = self.now + self.config.instance_terminate_delay;
        let Some(instance) = self.instances.get_mut(id) else {
            return;
        };
        if instance.lifecycle == Lifecycle::Terminating {
            return;
        }
        instance.lifecycle = Lifecycle::Terminating;
        instance.container_instance = None;
        instance.due = Some(due);
        let on_it: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.instance_id.as_deref() == Some(id) && t.holds_resources())
            .map(|t| t.arn.clone())
            .collect();
        for arn in on_it {
            self.stop_task(&arn);
        }
    }

    // ---- ELBv2 ----------------------------------------------------------

    /// RegisterTargets for one target: a no-op when already registered; a
    /// draining target is registered afresh.
    pub fn register_target(&mut self, tg_arn: &str, target: Target) {
        let now = self.now;
        let Some(tg) = self.target_groups.get_mut(tg_arn) else {
            return;
        };
        if let Some(existing) = tg.targets.get(&target)
            && existing.drain_until.is_none()
        {
            return;
        }
        tg.targets.insert(
            target,
            RegisteredTarget {
                registered_at: now,
                health: TargetHealth::Initial,
                serving: false,
                serving_since: now,
                drain_until: None,
                routed_until: None,
            },
        );
    }

    /// DeregisterTargets for one target: starts draining; unknown or
    /// already draining targets are left alone.
    pub fn deregister_target(&mut self, tg_arn: &str, target: &Target) {
        let until = self.now + self.config.deregistration_delay;
        let routed_until = self.now + self.config.deregistration_propagation_lag;
        let Some(tg) = self.target_groups.get_mut(tg_arn) else {
            return;
        };
        if let Some(t) = tg.targets.get_mut(target)
            && t.drain_until.is_none()
        {
            // The load balancer only keeps sending to a target it was
            // sending to (a healthy one), and never past the drain.
            if t.health == TargetHealth::Healthy {
                t.routed_until = Some(routed_until.min(until));
            }
            t.health = TargetHealth::Draining;
            t.drain_until = Some(until);
        }
    }

    /// Health checks: a target's health follows whether a running task
    /// answers on it, once that has held for interval × threshold.
    pub fn reconcile_health(&mut self) -> bool {
        let now = self.now;
        let check_time = self.config.health_check_time();
        let answering = self.answering_endpoints();

        let mut changed = false;
        for tg in self.target_groups.values_mut() {
            let is_ip = tg.info.target_type == TargetType::Ip;
            for (target, state) in tg.targets.iter_mut() {
                if state.drain_until.is_some() {
                    continue;
                }
                let serving = answering.contains(&(is_ip, target.id.clone(), target.port));
                if serving != state.serving {
                    state.serving = serving;
                    state.serving_since = now;
                }
                if state.health != state.verdict() && now >= state.verdict_at(check_time) {
                    state.health = state.verdict();
                    changed = true;
                }
            }
        }
        changed
    }
}
