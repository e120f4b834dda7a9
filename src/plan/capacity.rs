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
use crate::observed::{AZ_REBALANCE, Lifecycle, ObservedGroup, ObservedInstance, TaskSize, TaskStatus};

use super::FieldCheck;
use super::gate::{Budget, Conflict, GroupSize, Hold, HoldReason, Proposal, Safety};
use super::memory::{self, CapacityMemory, Field, FieldValue};
use super::{Change, PlannedChange, ResourceKey};
use crate::desired::ServiceId;

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

impl super::Planner<'_> {
    /// Tasks never outrun instances: where a Capacity document covers the
    /// cluster, a scale-out the gate admitted is cut to what the group
    /// holds once this pass's capacity change is made (instances may still
    /// be launching, but the capacity comes first or together, never after
    /// tasks are stuck pending). This is the last limit of the gate's order.
    pub(super) fn fit_scale_outs_to_capacity(&mut self, count_changes: &mut Vec<PlannedChange>) {
        for cap in &self.desired.capacities {
            let in_cluster = |id: &ServiceId| id.region == cap.group.region && id.cluster == cap.cluster;
            let (d, group) = match (self.out.capacity.get(&cap.group), self.observed.groups.get(&cap.group)) {
                (Some(d), Some(Ok(group))) => (d, group),
                // Without a capacity plan (the group or a service of the
                // cluster unread), a scale-out cannot be sized to instances:
                // it waits, and says why.
                (_, group) => {
                    let why = match group {
                        Some(Err(e)) => format!("the Auto Scaling group {} could not be read: {e}", cap.group),
                        None => format!("the Auto Scaling group {} was not read", cap.group),
                        Some(Ok(_)) => format!("the capacity of {} could not be planned this pass", cap.group),
                    };
                    let mut dropped = Vec::new();
                    count_changes.retain(|pc| {
                        let Change::SetDesiredCount { service, from, to } = &pc.change else { return true };
                        if !in_cluster(service) || to <= from {
                            return true;
                        }
                        let reason = HoldReason::Unobserved(format!(
                            "not applying: {}: {why}; tasks never outrun the instances planned for them",
                            pc.change
                        ));
                        self.out.holds.push(Hold { resource: pc.resource.clone(), reason });
                        dropped.push(service.clone());
                        false
                    });
                    // A mark goes with the count it describes.
                    count_changes.retain(
                        |pc| !matches!(&pc.change, Change::MarkSurge { service, .. } if dropped.contains(service)),
                    );
                    continue;
                }
            };
            let instances = d.set_capacity.unwrap_or(group.desired_capacity);
            // At the group's MaxSize no more instances come: the hold says
            // what must change rather than "as instances are added".
            let max_size = (d.needed > group.max_size && instances >= group.max_size).then_some(group.max_size);
            // Tasks the cluster runs now, other services' included; tasks
            // being scaled in still hold their instances until they stop.
            let committed: u64 = self
                .desired
                .services
                .iter()
                .filter(|s| in_cluster(&s.id))
                .filter_map(|s| self.live_service(&s.id).ok().map(|o| u64::from(o.desired_count)))
                .sum::<u64>()
                + u64::from(d.other_tasks);
            let mut room = (u64::from(instances) * u64::from(d.per_instance)).saturating_sub(committed);
            // Counts cut below: their surge marks follow.
            let mut cut: BTreeMap<ServiceId, u32> = BTreeMap::new();
            count_changes.retain_mut(|pc| {
                let Change::SetDesiredCount { service, from, to } = &mut pc.change else { return true };
                if !in_cluster(service) || *to <= *from {
                    return true;
                }
                // A deployment's surge is not cut: the capacity planned for
                // it comes together, and until it is placed ECS only waits
                // (the hand-over then takes the old way). Cutting it would
                // leave a count its surge mark does not describe.
                let surge = self.surge_growth.get(service).copied().unwrap_or(0);
                let wanted = (*to - *from).saturating_sub(surge);
                let allowed = (wanted as u64).min(room) as u32;
                room -= u64::from(allowed);
                if allowed < wanted {
                    let fit = *to - (wanted - allowed);
                    let budget = Budget::Instances { instances, fit, service: service.clone(), target: *to, max_size };
                    self.out.holds.push(Hold { resource: pc.resource.clone(), reason: HoldReason::Budget(budget) });
                    pc.reason = format!("{} (limited to what the Auto Scaling group holds this pass)", pc.reason);
                    *to = fit;
                    cut.insert(service.clone(), wanted - allowed);
                }
                *to != *from
            });
            // A count cut to nothing leaves its mark nothing to describe.
            let counted: Vec<ServiceId> = count_changes
                .iter()
                .filter_map(|pc| match &pc.change {
                    Change::SetDesiredCount { service, .. } => Some(service.clone()),
                    _ => None,
                })
                .collect();
            count_changes.retain(
                |pc| !matches!(&pc.change, Change::MarkSurge { service, .. } if cut.contains_key(service) && !counted.contains(service)),
            );
            for pc in count_changes.iter_mut() {
                if let Change::MarkSurge { service, mark, .. } = &mut pc.change
                    && let Some(by) = cut.get(service)
                    && let Some((count, base)) = mark.counts.first_mut()
                {
                    *count = count.saturating_sub(*by);
                    *base = base.saturating_sub(*by);
                }
            }
        }
    }

    pub(super) fn plan_capacities(&mut self) {
        for cap in &self.desired.capacities {
            let key = ResourceKey::group(&cap.group);
            let Some(group) = self.read(|| key.clone(), self.observed.groups.get(&cap.group)) else { continue };
            // Tasks of the cluster: the counts ballast steers its services
            // toward (what ECS has where a hold keeps it), and the tasks of
            // other services on the group's instances. Every service of the
            // cluster must have been read: one unread service's tasks would
            // count as none, and its instances look empty.
            let mut tasks = 0u32;
            let mut ours_on_instances = 0u32;
            // Our tasks not yet stopped, by instance: ECS's count of an
            // instance's tasks leaves out the ones still stopping.
            let mut ours_by_instance: BTreeMap<&str, u32> = BTreeMap::new();
            let mut deploying: Vec<&ServiceId> = Vec::new();
            let mut sizes: Vec<TaskSize> = Vec::new();
            let mut unread = Vec::new();
            // Services whose count is held because its alarms or CPU could
            // not be read: the group must not follow the held count.
            let mut undecided = Vec::new();
            let anything_unread = !self.out.is_complete();
            for (svc, decided) in self.desired.services.iter().zip(&self.out.services) {
                if svc.id.region != cap.group.region || svc.id.cluster != cap.cluster {
                    continue;
                }
                match self.live_service(&svc.id) {
                    Ok(o) => {
                        // Only a pass with unread inputs builds keys here.
                        if anything_unread {
                            let key = ResourceKey::service(&svc.id);
                            undecided.extend(
                                self.out
                                    .unread()
                                    .filter(|h| h.resource == key)
                                    .map(|h| format!("{key}: {}", h.message())),
                            );
                        }
                        // A deployment's surge needs instances too; while a
                        // bound group is unread its hand-over (and so the
                        // room its new tasks need) cannot be planned.
                        if o.deploying && self.bound_groups(svc).len() < svc.target_groups.len() {
                            undecided.push(format!(
                                "{}: the deployment's new tasks cannot be planned while a bound target group is \
                                 unread",
                                ResourceKey::service(&svc.id)
                            ));
                        }
                        tasks += decided.target.unwrap_or(o.desired_count) + decided.surge + decided.by_ecs;
                        sizes.extend(o.task_size);
                        if o.deploying {
                            deploying.push(&svc.id);
                        }
                        for t in o.tasks.iter().filter(|t| t.last_status != TaskStatus::Stopped) {
                            let Some(i) = t.instance_id.as_deref() else { continue };
                            if group.instances.iter().any(|g| g.id == i) {
                                ours_on_instances += 1;
                                *ours_by_instance.entry(i).or_default() += 1;
                            }
                        }
                    }
                    Err(why) => unread.push(why),
                }
            }
            if !unread.is_empty() {
                self.hold(key, waits_for_cluster(&cap.cluster, "service", "read; unread", &unread));
                continue;
            }
            // An instance ECS counts empty while one of our tasks on it is
            // still stopping (draining, in its SIGTERM grace) is not empty.
            let still_stopping = |i: &ObservedInstance| {
                i.tasks.is_some_and(|n| n < ours_by_instance.get(i.id.as_str()).copied().unwrap_or(0))
            };
            let adjusted;
            let group = if group.instances.iter().any(still_stopping) {
                let mut g = group.clone();
                for i in g.instances.iter_mut().filter(|i| still_stopping(i)) {
                    i.tasks = ours_by_instance.get(i.id.as_str()).copied();
                }
                adjusted = g;
                &adjusted
            } else {
                group
            };
            let on_instances: u32 = group.instances.iter().filter_map(|i| i.tasks).sum();
            let other_tasks = on_instances.saturating_sub(ours_on_instances);
            tasks += other_tasks;
            let per_instance = match per_instance(cap, &sizes) {
                Ok(n) => n,
                Err(msg) => {
                    self.hold(key, HoldReason::Unobserved(msg));
                    continue;
                }
            };
            let now = self.now;
            let mem =
                self.out.memory.capacity.entry(cap.group.clone()).or_insert_with(|| {
                    memory::CapacityMemory::from_mark(group.last_capacity_change, &group.subnets, now)
                });
            // Undecided, the decision only sizes this pass's scale-outs to
            // the instances there are, and leaves the timers alone.
            let mut scratch;
            let mem = if undecided.is_empty() {
                mem
            } else {
                scratch = mem.clone();
                &mut scratch
            };
            let mut d = decide(cap, group, tasks, per_instance, mem, self.now);
            if other_tasks > 0 {
                d.other_tasks = other_tasks;
                d.message = format!("{} ({other_tasks} of the tasks are other services')", d.message);
            }
            if !undecided.is_empty() {
                self.hold(key, waits_for_cluster(&cap.cluster, "count", "decided", &undecided));
                (d.set_capacity, d.subnets) = (None, None);
                d.terminate.clear();
                self.out.capacity.insert(cap.group.clone(), d);
                continue;
            }
            let scales_in = !d.terminate.is_empty() || d.set_capacity.is_some_and(|to| to < group.desired_capacity);
            if scales_in && let Some(svc) = deploying.first() {
                // Its new tasks are being placed and its old ones drained:
                // an instance taken now may be where they go.
                d.held.push(HoldReason::Scaling(format!(
                    "capacity scale-in waits while service {svc} deploys (ECS places its new tasks and stops the old)"
                )));
                d.keep_instances();
                d.set_capacity = d.set_capacity.filter(|to| *to > group.desired_capacity);
            }
            for h in &d.held {
                self.hold(key.clone(), h.clone());
            }
            let subnets_now = memory::subnets_fingerprint(&group.subnets);
            let subnets_field = self.check_field(|| Field::Subnets(cap.group.clone()), FieldValue::Text(subnets_now));
            let capacity_field = self.check_field(|| Field::Capacity(cap.group.clone()), group.desired_capacity.into());
            let mut proposals = Vec::new();
            let az_rebalance = group.az_rebalance_active();
            if az_rebalance && cap.suspend_az_rebalance {
                let change =
                    Change::SuspendProcesses { group: cap.group.clone(), processes: vec![AZ_REBALANCE.to_string()] };
                let reason = "ballast sizes this group: AZRebalance would launch and terminate instances by itself, \
                              stopping their tasks without a drain";
                proposals.push((Proposal::new(key.clone(), change, reason), FieldCheck::default()));
            }
            if let Some(hook) = &cap.termination_hook
                && group.termination_hook.as_ref() != Some(hook)
            {
                let create = group.termination_hook.is_none();
                let change = Change::PutLifecycleHook { group: cap.group.clone(), hook: hook.clone(), create };
                let reason = if create {
                    "the document declares a termination hook: instances Auto Scaling terminates wait while their \
                     tasks drain"
                } else {
                    "the group's termination hook differs from the document's"
                };
                proposals.push((Proposal::new(key.clone(), change, reason), FieldCheck::default()));
            }
            let mut zone_change = None;
            if let Some(to) = &d.subnets {
                let change =
                    Change::SetGroupSubnets { group: cap.group.clone(), from: group.subnets.clone(), to: to.clone() };
                let reason = format!("zones needed for {} instance(s)", d.needed);
                let p = Proposal::new(key.clone(), change, reason);
                match (az_rebalance, cap.suspend_az_rebalance) {
                    (false, _) => zone_change = Some((p, subnets_field.clone())),
                    // Suspended this pass: the zone change follows once
                    // the suspension reads back.
                    (true, true) => self.hold(key.clone(), HoldReason::Safety(Safety::AzRebalanceActive)),
                    (true, false) => {
                        zone_change =
                            Some((Proposal { conflict: Some(Conflict::AzRebalance), ..p }, subnets_field.clone()))
                    }
                }
            }
            // A subnet removal that relies on this pass's terminations
            // (its last instances) comes after them, and is held whenever
            // they are; any other zone change comes before the capacity
            // change, so that new instances may launch in a new zone.
            if !d.subnets_rely_on_terminations() {
                proposals.extend(zone_change.take());
            }
            if let Some(to) = d.set_capacity {
                let change = Change::SetDesiredCapacity { group: cap.group.clone(), from: group.desired_capacity, to };
                proposals.push((Proposal::new(key.clone(), change, d.message.clone()), capacity_field.clone()));
            }
            for id in &d.terminate {
                let change = Change::TerminateInstance { group: cap.group.clone(), instance_id: id.clone() };
                let reason = format!("{}; instance {id} has no tasks", d.message);
                proposals.push((Proposal::new(key.clone(), change, reason), capacity_field.clone()));
            }
            if let Some((p, field)) = zone_change {
                let field = FieldCheck {
                    contested: field.contested.or_else(|| capacity_field.contested.clone()),
                    unconfirmed: field.unconfirmed.or_else(|| capacity_field.unconfirmed.clone()),
                };
                let reason = format!("{}; the removed subnet's last instance(s) terminate first", p.reason);
                proposals.push((Proposal { reason, ..p }, field));
            }
            self.out.capacity.insert(cap.group.clone(), d);
            for (p, field) in proposals {
                let p = Proposal {
                    conflict: (group.managed_scaling && !cap.take_over_managed_scaling)
                        .then_some(Conflict::ManagedScaling)
                        .or(p.conflict),
                    contested: field.contested,
                    unconfirmed: field.unconfirmed,
                    suspended: cap.suspend,
                    ..p
                };
                if let Some(pc) = self.admit(p) {
                    self.out.changes.push(pc);
                }
            }
        }
    }
}

/// Capacity's hold while some input of its cluster (`what`: a service's
/// reads, a count's decision) is missing: `missing` names each.
fn waits_for_cluster(cluster: &str, what: &str, state: &str, missing: &[String]) -> HoldReason {
    HoldReason::Unobserved(format!(
        "capacity waits until every {what} of cluster {cluster} is {state}: {}",
        missing.join("; ")
    ))
}
