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

    /// Place and start one task of the service, returning its ARN. None
    /// (and an ECS event) when no instance has room.
    pub fn start_task(&mut self, id: &ServiceId) -> Option<String> {
        let service = self.services.get(id)?;
        let task_def = self.task_defs.get(&service.task_def).cloned()?;
        let deployment = service.deployment;
        let broken = service.broken_deployment == Some(deployment);
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
                protected_until: None,
                broken,
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
                    && !self.draining.contains(&i.id)
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

    pub fn record_event(&mut self, id: &ServiceId, message: &str) {
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
    pub fn task_target(&self, task_arn: &str, tg_arn: &str) -> Option<Target> {
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
    pub fn deregister_from_service_load_balancers(&mut self, service: &ServiceId, task_arn: &str) {
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

    /// Launch one instance into the group's subnet whose zone has the
    /// fewest active instances (round-robin over zones), returning its id.
    /// None when the group has no subnet.
    pub fn launch_instance(&mut self, group: &GroupId) -> Option<String> {
        let g = self.groups.get(group)?;
        let (cluster, size) = (g.cluster.clone(), (g.instance_cpu, g.instance_memory));
        let subnet = self.emptiest_subnet(group)?;
        let id = self.new_instance_id();
        self.add_launched_instance(&id, &group.region, Some(group.clone()), subnet, cluster, size);
        Some(id)
    }

    /// Add instance `id`, just launched into `subnet` (of `group`, or
    /// standalone): Pending for the launch delay, then to join `cluster`
    /// (if any) offering ECS `size`, CPU units and MiB.
    pub fn add_launched_instance(
        &mut self,
        id: &str,
        region: &str,
        group: Option<GroupId>,
        subnet: String,
        cluster: Option<String>,
        (cpu, memory): (u32, u32),
    ) {
        let zone = self.zone_of(region, &subnet);
        let seq = self.next_seq();
        let due = Some(self.now + self.config.instance_launch_delay);
        let instance = Instance {
            id: id.to_string(),
            region: region.to_string(),
            group,
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
        };
        self.instances.insert(id.to_string(), instance);
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

    /// Terminate an instance now (past any lifecycle hook): it leaves its
    /// cluster and its tasks stop. A no-op for an instance already
    /// terminating.
    pub fn finish_termination(&mut self, id: &str) {
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
        self.stop_tasks_on(id);
    }

    /// Stop every task still on the instance.
    pub fn stop_tasks_on(&mut self, id: &str) {
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
        // New connections keep coming for the propagation lag, and the
        // drain lasts at least that long, whatever the delay says (public
        // reports: about two minutes with a delay of 5 s or even 0:
        // https://github.com/aws/containers-roadmap/issues/470,
        // https://github.com/kubernetes-sigs/aws-load-balancer-controller/issues/3270).
        let lag = self.config.deregistration_propagation_lag;
        let until = self.now + self.config.deregistration_delay.max(lag);
        let routed_until = self.now + lag;
        let Some(tg) = self.target_groups.get_mut(tg_arn) else {
            return;
        };
        if let Some(t) = tg.targets.get_mut(target)
            && t.drain_until.is_none()
        {
            // The load balancer only keeps sending to a target it was
            // sending to (a healthy one).
            if t.health == TargetHealth::Healthy {
                t.routed_until = Some(routed_until);
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
        let answering =
            super::traffic::answering_endpoints(&self.tasks, &self.instances, now, self.config.sigterm_grace);

        let mut changed = false;
        for tg in self.target_groups.values_mut() {
            let is_ip = tg.info.target_type == TargetType::Ip;
            for (target, state) in tg.targets.iter_mut() {
                // Kept for draining targets too: traffic still reaches them.
                let serving = answering.contains(&(is_ip, target.id.as_str(), target.port));
                if serving != state.serving {
                    state.serving = serving;
                    state.serving_since = now;
                }
                if state.drain_until.is_some() {
                    continue;
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
