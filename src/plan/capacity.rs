//! Auto Scaling capacity that follows the tasks, and zones on demand.

use std::time::SystemTime;

use crate::desired::{Capacity, TasksPerInstance, ZoneMode};
use crate::observed::{ObservedGroup, TaskSize};

use super::gate::{GroupSize, HoldReason};
use super::memory::CapacityMemory;

/// What the capacity planner decided for one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CapacityDecision {
    /// Tasks the instances must hold, other services' included.
    pub tasks: u32,
    /// Of `tasks`, those of services no document declares, counted on the
    /// group's instances.
    pub other_tasks: u32,
    pub per_instance: u32,
    /// Instances the tasks need, plus headroom, within the document's bounds.
    pub needed: u32,
    /// The capacity to set this pass (budget applied), if it changes.
    pub set_capacity: Option<u32>,
    /// Empty instances to terminate this pass (scale-in).
    pub terminate: Vec<String>,
    /// The subnets the group should have, if they change.
    pub subnets: Option<Vec<String>>,
    /// Why something wanted was not done this pass (shown as its message).
    #[serde(serialize_with = "messages")]
    pub held: Vec<HoldReason>,
    pub message: String,
}

fn messages<S: serde::Serializer>(held: &[HoldReason], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(held.iter().map(ToString::to_string))
}

/// Tasks one instance holds, or why it cannot be known.
pub fn per_instance(cap: &Capacity, sizes: &[TaskSize]) -> Result<u32, String> {
    match cap.tasks_per_instance {
        TasksPerInstance::Fixed(n) => Ok(n.max(1)),
        TasksPerInstance::Resources { cpu, memory } => {
            // Size instances for the largest task in the cluster: conservative.
            let largest = sizes.iter().fold(None, |acc: Option<TaskSize>, s| {
                Some(acc.map_or(*s, |a| TaskSize { cpu: a.cpu.max(s.cpu), memory: a.memory.max(s.memory) }))
            });
            let Some(size) = largest else {
                return Err("the task definitions' CPU and memory are not known yet".into());
            };
            let by_cpu = cpu.checked_div(size.cpu).unwrap_or(u32::MAX);
            let by_mem = memory.checked_div(size.memory).unwrap_or(u32::MAX);
            let n = by_cpu.min(by_mem);
            if n == 0 {
                Err(format!(
                    "a task ({} CPU, {} MiB) does not fit an instance ({cpu} CPU, {memory} MiB)",
                    size.cpu, size.memory
                ))
            } else {
                Ok(n)
            }
        }
    }
}

/// Decide the group's capacity and subnets for `tasks` desired tasks.
pub fn decide(
    cap: &Capacity,
    group: &ObservedGroup,
    tasks: u32,
    per_instance: u32,
    memory: &mut CapacityMemory,
    now: SystemTime,
) -> CapacityDecision {
    let raw_needed = tasks.div_ceil(per_instance).saturating_add(cap.headroom);
    let needed = raw_needed.clamp(cap.min_instances, cap.max_instances);
    let mut d = CapacityDecision {
        tasks,
        other_tasks: 0,
        per_instance,
        needed,
        set_capacity: None,
        terminate: Vec::new(),
        subnets: None,
        held: Vec::new(),
        message: format!("{tasks} task(s) at {per_instance} per instance need {needed} instance(s)"),
    };
    if raw_needed > cap.max_instances {
        d.held.push(HoldReason::Scaling(format!(
            "the tasks need {raw_needed} instances; maxInstances is {}",
            cap.max_instances
        )));
    }

    // Zones: always-on subnets, plus on-demand ones while needed or draining.
    let cooled =
        |t: Option<&SystemTime>| t.is_none_or(|t| now.duration_since(*t).unwrap_or_default() >= cap.scale_in_cooldown);
    let mut want: Vec<String> = Vec::new();
    for z in &cap.zones {
        let keep = match z.mode {
            ZoneMode::AlwaysOn => true,
            ZoneMode::OnDemand { above } => {
                if needed > above {
                    memory.subnet_needed_at.insert(z.subnet.clone(), now);
                    true
                } else if group.subnets.contains(&z.subnet) {
                    // The subnet of an instance is what the ECS agent
                    // registered; one not registered yet may be there.
                    let active = || group.instances.iter().filter(|i| i.is_active());
                    let there = active().filter(|i| i.subnet.as_ref() == Some(&z.subnet)).count();
                    let unknown = active().filter(|i| i.subnet.is_none()).count();
                    let recent = !cooled(memory.subnet_needed_at.get(&z.subnet));
                    let why = if there > 0 {
                        Some(format!("its {there} instance(s) are gone"))
                    } else if unknown > 0 {
                        Some(format!(
                            "{unknown} instance(s) not registered with ECS yet are placed (their subnet is unknown \
                             until they are)"
                        ))
                    } else if recent {
                        Some("the scale-in cooldown passes".to_string())
                    } else {
                        None
                    };
                    if let Some(why) = &why {
                        d.held.push(HoldReason::Scaling(format!("on-demand subnet {} stays until {why}", z.subnet)));
                    }
                    why.is_some()
                } else {
                    false
                }
            }
        };
        if keep {
            want.push(z.subnet.clone());
        }
    }
    let current: Vec<&String> = group.subnets.iter().collect();
    let mut ordered: Vec<String> = current.iter().filter(|s| want.contains(s)).map(|s| (*s).clone()).collect();
    ordered.extend(want.iter().filter(|s| !group.subnets.contains(s)).cloned());
    // Subnets not declared at all are left in place: removing them is not ours to decide.
    let declared: Vec<&String> = cap.zones.iter().map(|z| &z.subnet).collect();
    for s in &group.subnets {
        if !declared.contains(&s) && !ordered.contains(s) {
            ordered.push(s.clone());
        }
    }
    if super::memory::subnets_fingerprint(&ordered) != super::memory::subnets_fingerprint(&group.subnets) {
        d.subnets = Some(ordered);
    }

    // The group's own MinSize and MaxSize bound what AWS accepts: a
    // capacity outside them fails with ValidationError, so it stops there.
    let desired = group.desired_capacity;
    let ceiling = needed.min(group.max_size);
    let floor = needed.max(group.min_size);
    if needed > group.max_size {
        d.held.push(HoldReason::GroupSize(GroupSize::AboveMaxSize { needed, max_size: group.max_size }));
    }
    if needed < group.min_size && needed < desired {
        d.held.push(HoldReason::GroupSize(GroupSize::BelowMinSize { needed, min_size: group.min_size }));
    }
    if ceiling > desired {
        let to = ceiling.min(desired.saturating_add(cap.max_change_per_pass));
        if to < ceiling {
            d.held.push(HoldReason::Scaling(format!(
                "capacity change budget: {desired} -> {to} this pass, {ceiling} wanted"
            )));
        }
        d.set_capacity = Some(to);
    } else if floor < desired {
        if !cooled(memory.last_change.as_ref()) {
            d.held.push(HoldReason::Scaling(format!(
                "scale-in to {floor} waits for the cooldown of {:?}",
                cap.scale_in_cooldown
            )));
        } else {
            // Only instances with no tasks go, on-demand subnets first.
            let on_demand: Vec<&str> = cap
                .zones
                .iter()
                .filter(|z| matches!(z.mode, ZoneMode::OnDemand { .. }))
                .map(|z| z.subnet.as_str())
                .collect();
            let mut empty: Vec<_> = group
                .instances
                .iter()
                .filter(|i| i.lifecycle_state == crate::observed::Lifecycle::InService && i.tasks == Some(0))
                .collect();
            empty.sort_by_key(|i| (!i.subnet.as_deref().is_some_and(|s| on_demand.contains(&s)), i.id.clone()));
            let wanted = (desired - floor).min(cap.max_change_per_pass) as usize;
            d.terminate = empty.iter().take(wanted).map(|i| i.id.clone()).collect();
            if d.terminate.len() < (desired - floor) as usize {
                let in_service =
                    |i: &&crate::observed::ObservedInstance| i.lifecycle_state == crate::observed::Lifecycle::InService;
                let busy = group.instances.iter().filter(in_service).filter(|i| i.tasks.is_some_and(|n| n > 0)).count();
                let unjoined = group.instances.iter().filter(in_service).filter(|i| i.tasks.is_none()).count();
                let mut why = Vec::new();
                if busy > 0 {
                    why.push(format!("{busy} wait for their tasks to leave"));
                }
                if unjoined > 0 {
                    why.push(format!(
                        "{unjoined} never joined the ECS cluster (no container instance), so ballast cannot tell \
                         whether they are empty and leaves them alone"
                    ));
                }
                if d.terminate.len() == empty.len() && why.is_empty() {
                    why.push("the others are not in service yet".to_string());
                }
                d.held.push(HoldReason::Scaling(format!(
                    "scale-in to {floor}: {} empty instance(s) can go this pass; of the rest, {}",
                    d.terminate.len(),
                    why.join("; ")
                )));
            }
        }
    }
    d
}
