//! A world that already matches a desired state, optionally with drift.

use std::sync::Arc;

use super::controls::{ContainerSpec, GroupSpec, ServiceSpec};
use super::world::{RegisteredTarget, World};
use super::{SimCloud, SimConfig};
use crate::cloud::Clock;
use crate::desired::{DesiredState, GroupId, Service, TargetGroupRef, TargetType, TasksPerInstance, ZoneMode};
use crate::metrics::Metrics;
use crate::observed::{Target, TargetHealth, TaskStatus};

impl SimCloud {
    /// A world that matches `desired`, settled at the clock's time:
    ///
    /// - per Capacity, its group with the alwaysOn subnets and enough
    ///   InService container instances for its cluster's tasks (at least
    ///   `minInstances`, at most `maxInstances`);
    /// - per Service, its cluster, a task definition binding each bound
    ///   container port to the same static host port (awsvpc when a
    ///   binding has `ip` targets), the fixed count or `min` of RUNNING
    ///   tasks, and its target groups with those tasks registered and
    ///   healthy, each carrying the service's requests (no load until one
    ///   is set); no alarms, scalable targets or managed scaling.
    ///
    /// A cluster without a Capacity gets standalone container instances.
    ///
    /// With `drift`, the first service's desired count is one below what
    /// is declared (so ECS runs one task fewer), and one of its tasks is
    /// missing from its first target group; nothing else differs.
    pub fn from_desired(
        desired: &DesiredState,
        drift: bool,
        clock: Arc<dyn Clock>,
        seed: u64,
        metrics: Arc<Metrics>,
        config: SimConfig,
    ) -> SimCloud {
        let sim = SimCloud::new(clock, seed, metrics, config);
        {
            let mut world = sim.world.lock().unwrap_or_else(|e| e.into_inner());
            build(&mut world, desired, drift);
            world.settle();
        }
        sim
    }
}

fn build(w: &mut World, desired: &DesiredState, drift: bool) {
    let (task_cpu, task_memory) = (w.config.task_cpu, w.config.task_memory);

    for cap in &desired.capacities {
        for zone in &cap.zones {
            if let Some(name) = &zone.zone {
                w.subnets.insert((cap.group.region.clone(), zone.subnet.clone()), name.clone());
            }
        }
        let mut subnets: Vec<String> =
            cap.zones.iter().filter(|z| z.mode == ZoneMode::AlwaysOn).map(|z| z.subnet.clone()).collect();
        if subnets.is_empty() {
            subnets.extend(cap.zones.first().map(|z| z.subnet.clone()));
        }
        let (instance_cpu, instance_memory) = match cap.tasks_per_instance {
            TasksPerInstance::Fixed(n) => (n * task_cpu, n * task_memory),
            TasksPerInstance::Resources { cpu, memory } => (cpu, memory),
        };
        let spec = GroupSpec {
            id: cap.group.clone(),
            cluster: Some(cap.cluster.clone()),
            min: cap.min_instances,
            max: cap.max_instances,
            desired: cap.min_instances,
            subnets,
            instance_cpu,
            instance_memory,
        };
        // A second Capacity for the same group changes nothing.
        let _ = w.create_group(&spec);
    }

    for (index, svc) in desired.services.iter().enumerate() {
        let declared = svc.tasks.min();
        let live = if drift && index == 0 { declared.saturating_sub(1) } else { declared };
        if w.create_service(&service_spec(svc, live, task_cpu, task_memory)).is_err() {
            continue;
        }
        for binding in &svc.target_groups {
            let arn = match &binding.target_group.target_group {
                TargetGroupRef::Arn(arn) => Some(arn.as_str()),
                TargetGroupRef::Name(_) => None,
            };
            w.create_target_group(
                &binding.target_group.region,
                binding.target_group.target_group.name(),
                arn,
                binding.target_type,
                binding.container_port,
            );
        }

        // Each bound target group carries the service's requests.
        let mut traffic_target_groups: Vec<String> = Vec::new();
        for binding in &svc.target_groups {
            if let Some(arn) = w.resolve_target_group(&binding.target_group)
                && !traffic_target_groups.contains(&arn)
            {
                traffic_target_groups.push(arn);
            }
        }
        w.traffic.services.entry(svc.id.clone()).or_default().target_groups = traffic_target_groups;

        let ports = host_ports(w, svc);
        let mut tasks = Vec::new();
        for n in 0..declared {
            let fits = |w: &World| w.place(&svc.id, &ports, task_cpu, task_memory).is_some();
            let room = fits(w) || (add_instance(w, desired, svc) && fits(w));
            if !room {
                break;
            }
            if n < live
                && let Some(arn) = w.start_task(&svc.id)
            {
                let now = w.now;
                if let Some(task) = w.tasks.get_mut(&arn) {
                    task.last_status = TaskStatus::Running;
                    task.started_at = Some(now);
                    task.due = None;
                }
                tasks.push(arn);
            }
        }

        for (b, binding) in svc.target_groups.iter().enumerate() {
            let Some(tg_arn) = w.resolve_target_group(&binding.target_group) else {
                continue;
            };
            for (t, task_arn) in tasks.iter().enumerate() {
                if drift && index == 0 && b == 0 && t + 1 == tasks.len() {
                    continue;
                }
                let task = &w.tasks[task_arn];
                let Some(binding) = task
                    .bindings
                    .iter()
                    .find(|p| p.container_name == binding.container_name && p.container_port == binding.container_port)
                else {
                    continue;
                };
                let target = match w.target_groups[&tg_arn].info.target_type {
                    TargetType::Instance => task.instance_id.clone().map(|id| Target { id, port: binding.host_port }),
                    TargetType::Ip => task.private_ip.clone().map(|id| Target { id, port: binding.container_port }),
                };
                let Some(target) = target else {
                    continue;
                };
                let now = w.now;
                if let Some(tg) = w.target_groups.get_mut(&tg_arn) {
                    tg.targets.insert(
                        target,
                        RegisteredTarget {
                            registered_at: now,
                            health: TargetHealth::Healthy,
                            serving: true,
                            serving_since: now,
                            drain_until: None,
                            routed_until: None,
                        },
                    );
                }
            }
        }
    }

    // Every group holds at least its minimum, all in service.
    for cap in &desired.capacities {
        while active_instances(w, &cap.group) < cap.min_instances {
            if !add_group_instance(w, &cap.group) {
                break;
            }
        }
        let active = active_instances(w, &cap.group);
        if let Some(group) = w.groups.get_mut(&cap.group) {
            group.desired = active.clamp(group.min, group.max);
        }
    }
}

fn service_spec(svc: &Service, count: u32, cpu: u32, memory: u32) -> ServiceSpec {
    let mut containers: Vec<ContainerSpec> = Vec::new();
    for binding in &svc.target_groups {
        let container = match containers.iter_mut().find(|c| c.name == binding.container_name) {
            Some(c) => c,
            None => {
                containers.push(ContainerSpec { name: binding.container_name.clone(), ports: Vec::new() });
                containers.last_mut().expect("just pushed")
            }
        };
        if !container.ports.contains(&binding.container_port) {
            container.ports.push(binding.container_port);
        }
    }
    if containers.is_empty() {
        containers.push(ContainerSpec { name: "app".to_string(), ports: Vec::new() });
    }
    ServiceSpec {
        id: svc.id.clone(),
        desired_count: count,
        containers,
        awsvpc: svc.target_groups.iter().any(|b| b.target_type == TargetType::Ip),
        cpu,
        memory,
        minimum_healthy_percent: super::DEFAULT_MINIMUM_HEALTHY_PERCENT,
        maximum_percent: super::DEFAULT_MAXIMUM_PERCENT,
    }
}

fn host_ports(w: &World, svc: &Service) -> std::collections::BTreeSet<u16> {
    w.services.get(&svc.id).and_then(|s| w.task_defs.get(&s.task_def)).map(|td| td.host_ports()).unwrap_or_default()
}

fn active_instances(w: &World, group: &GroupId) -> u32 {
    w.instances.values().filter(|i| i.group.as_ref() == Some(group) && i.is_active()).count() as u32
}

/// One more in-service instance for the service's cluster: in its
/// Capacity's group while below the maximum, or standalone when the
/// cluster has no Capacity. False when no more may be added.
fn add_instance(w: &mut World, desired: &DesiredState, svc: &Service) -> bool {
    match desired.capacity_for(&svc.id.region, &svc.id.cluster) {
        Some(cap) => {
            let max = w.groups.get(&cap.group).map_or(0, |g| g.max);
            active_instances(w, &cap.group) < max && add_group_instance(w, &cap.group)
        }
        None => {
            let id = w.new_instance_id();
            let subnet = format!("subnet-{}", w.hex(17));
            let size = (w.config.instance_cpu, w.config.instance_memory);
            w.add_launched_instance(&id, &svc.id.region, None, subnet, Some(svc.id.cluster.clone()), size);
            w.bring_into_service(&id);
            true
        }
    }
}

fn add_group_instance(w: &mut World, group: &GroupId) -> bool {
    match w.launch_instance(group) {
        Some(id) => {
            w.bring_into_service(&id);
            true
        }
        None => false,
    }
}
