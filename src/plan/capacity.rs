//! Auto Scaling capacity that follows the tasks, and zones on demand.
//!
//! A scale-in terminates empty instances only, chosen so that the zones
//! that stay are left balanced (`choose_empty`): with `AZRebalance`
//! suspended nothing else evens them out. An on-demand subnet no longer
//! needed leaves once no instance may be in it, in the same pass as its
//! last instance's termination and after it (`zones`); a pass that does
//! not make those terminations does not remove it either
//! ([`CapacityDecision::keep_instances`]).

use std::time::SystemTime;

use std::collections::BTreeMap;

use crate::desired::{Capacity, TasksPerInstance, ZoneMode};
use crate::observed::{Lifecycle, ObservedGroup, ObservedInstance, TaskSize};

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
    /// Empty instances to terminate this pass (scale-in), in the order
    /// they were chosen.
    pub terminate: Vec<String>,
    /// The subnets the group should have, if they change.
    pub subnets: Option<Vec<String>>,
    /// Why something wanted was not done this pass (shown as its message).
    #[serde(serialize_with = "messages")]
    pub held: Vec<HoldReason>,
    pub message: String,
    /// Set when `subnets` removes an on-demand subnet because `terminate`
    /// takes its last instances: the zones as they are without those
    /// terminations, for a pass that does not make them
    /// ([`CapacityDecision::keep_instances`],
    /// [`CapacityDecision::subnets_rely_on_terminations`]).
    #[serde(skip)]
    without_terminations: Option<Fallback>,
}

/// The zone decision with and without this pass's terminations.
#[derive(Debug, Clone, PartialEq)]
struct Fallback {
    with: Zones,
    without: Zones,
}

/// The group's subnets as a pass leaves them.
#[derive(Debug, Clone, PartialEq)]
struct Zones {
    /// The subnets the group should have, if they change.
    subnets: Option<Vec<String>>,
    /// Why each on-demand subnet no longer needed stays.
    held: Vec<HoldReason>,
}

impl CapacityDecision {
    /// The subnet change removes an on-demand subnet whose last instances
    /// this pass terminates: it must come after those terminations, and
    /// only with them.
    pub fn subnets_rely_on_terminations(&self) -> bool {
        self.without_terminations.is_some()
    }

    /// No instance is terminated this pass after all (the caller holds
    /// them and says why): a subnet removal that relied on those
    /// terminations waits for them too, and its hold says so.
    pub fn keep_instances(&mut self) {
        self.terminate.clear();
        if let Some(Fallback { with, without }) = self.without_terminations.take() {
            self.held.retain(|h| !with.held.contains(h));
            self.held.extend(without.held);
            self.subnets = without.subnets;
        }
    }
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
        without_terminations: None,
    };
    if raw_needed > cap.max_instances {
        d.held.push(HoldReason::Scaling(format!(
            "the tasks need {raw_needed} instances; maxInstances is {}",
            cap.max_instances
        )));
    }

    // Zones: always-on subnets, on-demand ones while needed. An on-demand
    // subnet of the group no longer needed is leaving: its instances go
    // first, and it goes once they have (`zones`).
    let cooled =
        |t: Option<&SystemTime>| t.is_none_or(|t| now.duration_since(*t).unwrap_or_default() >= cap.scale_in_cooldown);
    let mut want: Vec<String> = Vec::new();
    let mut leaving: Vec<&str> = Vec::new();
    for z in &cap.zones {
        match z.mode {
            ZoneMode::AlwaysOn => want.push(z.subnet.clone()),
            ZoneMode::OnDemand { above } if needed > above => {
                memory.subnet_needed_at.insert(z.subnet.clone(), now);
                want.push(z.subnet.clone());
            }
            ZoneMode::OnDemand { .. } => {
                if group.subnets.contains(&z.subnet) {
                    leaving.push(&z.subnet);
                }
            }
        }
    }
    let zone_holds_at = d.held.len();

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
            // Only instances with no tasks go.
            let empty: Vec<&ObservedInstance> = group
                .instances
                .iter()
                .filter(|i| i.lifecycle_state == Lifecycle::InService && i.tasks == Some(0))
                .collect();
            let wanted = (desired - floor).min(cap.max_change_per_pass) as usize;
            let stays_in_group = |s: &str| group.subnets.iter().any(|g| g == s) && !leaving.contains(&s);
            d.terminate = choose_empty(group, &empty, stays_in_group, wanted);
            if d.terminate.len() < (desired - floor) as usize {
                let in_service = |i: &&ObservedInstance| i.lifecycle_state == Lifecycle::InService;
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

    // The leaving subnets as this pass's terminations leave them: one whose
    // last instance goes now goes in the same pass, after it.
    let recent = |s: &str| !cooled(memory.subnet_needed_at.get(s));
    let with = zones(cap, group, &want, &leaving, &d.terminate, recent);
    d.held.splice(zone_holds_at..zone_holds_at, with.held.iter().cloned());
    d.subnets = with.subnets.clone();
    if !d.terminate.is_empty() {
        let without = zones(cap, group, &want, &leaving, &[], recent);
        if without != with {
            d.without_terminations = Some(Fallback { with, without });
        }
    }
    d
}

/// Up to `count` of the `empty` instances to terminate. First those of
/// subnets going away (an on-demand subnet no longer needed, a subnet no
/// longer in the group: `stays_in_group` is false), then one of the subnet
/// with the most instances launching or in service, counted again after
/// each pick, so the zones that stay are left balanced. Ties go to the
/// subnet, then the instance id, that sorts first. An instance whose
/// subnet is not known (the ECS agent did not report it) could be in any
/// zone: it comes after every instance whose subnet is known.
fn choose_empty(
    group: &ObservedGroup,
    empty: &[&ObservedInstance],
    stays_in_group: impl Fn(&str) -> bool,
    count: usize,
) -> Vec<String> {
    let mut per_subnet: BTreeMap<&str, usize> = BTreeMap::new();
    for i in group.instances.iter().filter(|i| i.is_active()) {
        if let Some(s) = i.subnet.as_deref() {
            *per_subnet.entry(s).or_default() += 1;
        }
    }
    let mut candidates = empty.to_vec();
    let mut chosen = Vec::new();
    while chosen.len() < count && !candidates.is_empty() {
        let (at, _) = candidates
            .iter()
            .enumerate()
            .min_by_key(|(_, i)| {
                let subnet = i.subnet.as_deref();
                let stays = subnet.is_none_or(&stays_in_group);
                let there = subnet.and_then(|s| per_subnet.get(s)).copied().unwrap_or(0);
                (subnet.is_none(), stays, std::cmp::Reverse(there), subnet, i.id.as_str())
            })
            .expect("candidates is not empty");
        let instance = candidates.remove(at);
        if let Some(n) = instance.subnet.as_deref().and_then(|s| per_subnet.get_mut(s)) {
            *n = n.saturating_sub(1);
        }
        chosen.push(instance.id.clone());
    }
    chosen
}

/// Whether an instance keeps its subnet in the group: every instance but
/// those on their way out with no task left (terminating, or waiting in
/// `Terminating:Wait` once drained, which ballast completes) and those
/// out of the group. One in standby or detaching may come back or still
/// serve: it keeps its subnet.
fn keeps_its_subnet(i: &ObservedInstance) -> bool {
    match i.lifecycle_state {
        Lifecycle::Terminating | Lifecycle::TerminatingProceed | Lifecycle::Terminated | Lifecycle::Detached => false,
        Lifecycle::TerminatingWait => i.tasks.is_some_and(|n| n > 0),
        _ => true,
    }
}

/// The group's subnets once the instances in `terminated` are gone: `want`
/// (always-on and needed on-demand subnets), and each `leaving` subnet
/// that still has an instance, may have one (an instance whose subnet is
/// not known yet), or was needed within the scale-in cooldown (`recent`).
fn zones(
    cap: &Capacity,
    group: &ObservedGroup,
    want: &[String],
    leaving: &[&str],
    terminated: &[String],
    recent: impl Fn(&str) -> bool,
) -> Zones {
    let mut want = want.to_vec();
    let mut held = Vec::new();
    // The subnet of an instance is what the ECS agent registered; one not
    // registered yet may be in any of them.
    let remaining = || group.instances.iter().filter(|i| !terminated.contains(&i.id) && keeps_its_subnet(i));
    let unknown = remaining().filter(|i| i.subnet.is_none()).count();
    for &subnet in leaving {
        let there: Vec<&ObservedInstance> = remaining().filter(|i| i.subnet.as_deref() == Some(subnet)).collect();
        let draining = there.iter().filter(|i| i.lifecycle_state == Lifecycle::TerminatingWait).count();
        let why = if !there.is_empty() {
            let drain = if draining > 0 {
                format!(" ({draining} terminating, waiting for their tasks to drain)")
            } else {
                String::new()
            };
            Some(format!("its {} instance(s) are gone{drain}", there.len()))
        } else if unknown > 0 {
            Some(format!(
                "{unknown} instance(s) not registered with ECS yet are placed (their subnet is unknown until they are)"
            ))
        } else if recent(subnet) {
            Some("the scale-in cooldown passes".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            held.push(HoldReason::Scaling(format!("on-demand subnet {subnet} stays until {why}")));
            want.push(subnet.to_string());
        }
    }
    let mut ordered: Vec<String> = group.subnets.iter().filter(|s| want.contains(s)).cloned().collect();
    ordered.extend(want.iter().filter(|s| !group.subnets.contains(s)).cloned());
    // Subnets not declared at all are left in place: removing them is not ours to decide.
    let declared: Vec<&String> = cap.zones.iter().map(|z| &z.subnet).collect();
    for s in &group.subnets {
        if !declared.contains(&s) && !ordered.contains(s) {
            ordered.push(s.clone());
        }
    }
    let changes = super::memory::subnets_fingerprint(&ordered) != super::memory::subnets_fingerprint(&group.subnets);
    Zones { subnets: changes.then_some(ordered), held }
}
