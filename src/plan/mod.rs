//! The planning core: a pure function of desired state, observed state,
//! the controller's [`Memory`] and the time, returning [`Change`]s.
//!
//! No I/O, no clock reads, no AWS SDK types. [`plan`] is called once per
//! pass; the controller applies the changes in order and records each
//! applied one with [`Memory::record_applied`].
//!
//! Order within a plan: subnets and capacity first (instances must exist
//! before tasks need them), then desired counts, then target registrations
//! before deregistrations, then alarms.

pub mod alarms;
pub mod capacity;
mod change;
pub mod memory;
mod report;
pub mod scaling;
pub mod targets;

use std::collections::BTreeMap;
use std::time::SystemTime;

pub use change::{Change, ChangeKind, short_arn};
pub use memory::{FightPolicy, Memory};
pub use report::{ResourceReport, reports};

use crate::desired::{DesiredState, GroupId, Service, ServiceId, TargetGroupId, TaskCount};
use crate::observed::{Observed, TaskSize};
use memory::{Field, FieldValue};

/// A managed resource, as status and backoff know it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ResourceKey {
    Service { region: String, cluster: String, service: String },
    TargetGroup { region: String, name: String },
    Alarm { region: String, name: String },
    Group { region: String, name: String },
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceKey::Service { cluster, service, .. } => write!(f, "service/{cluster}/{service}"),
            ResourceKey::TargetGroup { name, .. } => write!(f, "targetgroup/{name}"),
            ResourceKey::Alarm { name, .. } => write!(f, "alarm/{name}"),
            ResourceKey::Group { name, .. } => write!(f, "autoscalinggroup/{name}"),
        }
    }
}

/// A change to make, with the resource it belongs to and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PlannedChange {
    pub resource: ResourceKey,
    pub change: Change,
    pub reason: String,
}

/// Why something the planner would have done was not planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// A per-pass change budget; the rest follows in later passes.
    Budget,
    /// Another actor manages the field.
    Conflict,
    /// Someone keeps reverting the field; ballast stopped fighting.
    Contested,
    /// `suspend: true` on the document.
    Suspended,
    /// Traffic safety (healthy floor, attribution, draining).
    Safety,
    /// A scaling or capacity rule (cooldown, window, data) holds it.
    Scaling,
    /// The resource could not be observed.
    Unobserved,
}

impl HoldKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            HoldKind::Budget => "budget",
            HoldKind::Conflict => "conflict",
            HoldKind::Contested => "contested",
            HoldKind::Suspended => "suspended",
            HoldKind::Safety => "safety",
            HoldKind::Scaling => "scaling",
            HoldKind::Unobserved => "unobserved",
        }
    }
}

/// Something held back this pass, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Hold {
    pub resource: ResourceKey,
    pub kind: HoldKind,
    pub message: String,
}

/// One pass's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<PlannedChange>,
    pub holds: Vec<Hold>,
    /// Scaling decisions, by service.
    pub decisions: BTreeMap<ServiceId, scaling::Decision>,
    pub capacity: BTreeMap<GroupId, capacity::CapacityDecision>,
    /// The memory to keep for the next pass (scaling window, reverts).
    pub memory: Memory,
}

impl Plan {
    pub fn is_converged(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plan one pass. Pure: the same inputs give the same plan. `memory` is
/// moved in and comes back, updated, in [`Plan::memory`].
pub fn plan(desired: &DesiredState, observed: &Observed, memory: Memory, now: SystemTime) -> Plan {
    plan_with(desired, observed, memory, now, FightPolicy::default())
}

/// Like [`plan`], with a non-default fight policy.
pub fn plan_with(
    desired: &DesiredState,
    observed: &Observed,
    memory: Memory,
    now: SystemTime,
    fight: FightPolicy,
) -> Plan {
    Planner { desired, observed, now, fight, out: Plan { memory, ..Plan::default() } }.run()
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a Observed,
    now: SystemTime,
    fight: FightPolicy,
    out: Plan,
}

pub(crate) fn service_key(id: &ServiceId) -> ResourceKey {
    ResourceKey::Service { region: id.region.clone(), cluster: id.cluster.clone(), service: id.service.clone() }
}

pub(crate) fn group_key(id: &GroupId) -> ResourceKey {
    ResourceKey::Group { region: id.region.clone(), name: id.name.clone() }
}

pub(crate) fn target_group_key(id: &TargetGroupId) -> ResourceKey {
    ResourceKey::TargetGroup { region: id.region.clone(), name: id.target_group.name().to_string() }
}

impl Planner<'_> {
    fn run(mut self) -> Plan {
        // Counts are decided first (capacity follows them) but emitted after
        // capacity changes, so instances exist before tasks need them.
        let mut count_changes = Vec::new();
        let mut planned: Vec<Option<u32>> = Vec::with_capacity(self.desired.services.len());
        for svc in &self.desired.services {
            let (target, change) = self.plan_count(svc).unzip();
            planned.push(target);
            count_changes.extend(change.flatten());
        }
        self.plan_capacities(&planned);
        self.fit_scale_outs_to_capacity(&mut count_changes);
        self.out.changes.extend(count_changes);
        let mut deregistrations = Vec::new();
        for svc in &self.desired.services {
            self.plan_service_targets(svc, &mut deregistrations);
        }
        self.out.changes.extend(deregistrations);
        for svc in &self.desired.services {
            self.plan_alarms(svc);
        }
        self.out
    }

    fn hold(&mut self, resource: ResourceKey, kind: HoldKind, message: impl Into<String>) {
        self.out.holds.push(Hold { resource, kind, message: message.into() });
    }

    /// The count the service should end at (capacity plans for it) and the
    /// change for this pass; `None` when the service was not observed.
    fn plan_count(&mut self, svc: &Service) -> Option<(u32, Option<PlannedChange>)> {
        let observed = match self.observed.services.get(&svc.id) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                self.hold(service_key(&svc.id), HoldKind::Unobserved, e.to_string());
                return None;
            }
            None => {
                self.hold(service_key(&svc.id), HoldKind::Unobserved, "not observed this pass");
                return None;
            }
        };
        let current = observed.desired_count;
        let target = match (svc.tasks, &svc.scaling) {
            (TaskCount::Fixed(n), _) => n,
            (TaskCount::Range { min, max }, Some(policy)) => {
                let [high, low] = alarms::alarm_names(&svc.id);
                let state = |name: String| match self.observed.alarms.get(&(svc.id.region.clone(), name)) {
                    Some(Ok(a)) => Some(a.state),
                    _ => None,
                };
                let view = scaling::ScalingView {
                    current,
                    running: observed.running_count,
                    min,
                    max,
                    deploying: observed.deploying,
                    high_alarm: state(high),
                    low_alarm: state(low),
                    cpu: self.observed.cpu.get(&svc.id).copied().flatten(),
                };
                let mem = self.out.memory.scaling.entry(svc.id.clone()).or_default();
                let decision = scaling::decide(policy, view, mem, self.now);
                let target = decision.desired;
                if target == current
                    && !matches!(decision.reason, scaling::DecisionReason::Steady | scaling::DecisionReason::NoData)
                {
                    self.hold(service_key(&svc.id), HoldKind::Scaling, decision.message.clone());
                }
                self.out.decisions.insert(svc.id.clone(), decision);
                target
            }
            (TaskCount::Range { min, max }, None) => current.clamp(min, max),
        };

        let contested = self.out.memory.observe_field_with(
            || Field::DesiredCount(svc.id.clone()),
            current.into(),
            self.now,
            self.fight,
        );
        if target == current {
            return Some((target, None));
        }
        let key = service_key(&svc.id);
        if observed.scalable_target && !svc.take_over.desired_count {
            self.hold(
                key,
                HoldKind::Conflict,
                "Application Auto Scaling has a scalable target on this service's desired count; \
                 set takeOver.desiredCount to let ballast manage it",
            );
            return Some((current, None));
        }
        if contested {
            self.hold(
                key,
                HoldKind::Contested,
                format!(
                    "the desired count of {} was changed back by someone else {} times recently; \
                     not correcting it until it stays put",
                    svc.id, self.fight.max_reverts
                ),
            );
            return Some((current, None));
        }
        if svc.suspend {
            self.hold(
                key,
                HoldKind::Suspended,
                format!("would set desired count {current} -> {target}; document is suspended"),
            );
            return Some((target, None));
        }
        let mut reason = match (svc.tasks, self.out.decisions.get(&svc.id)) {
            (TaskCount::Fixed(n), _) => format!("declared count is {n}"),
            (_, Some(d)) => d.message.clone(),
            (TaskCount::Range { min, max }, None) => {
                format!("observed count {current} is outside [{min}, {max}]")
            }
        };
        let budget = svc.budget.max_count_change_per_pass;
        let to = if target > current {
            target.min(current.saturating_add(budget))
        } else {
            target.max(current.saturating_sub(budget))
        };
        if to != target {
            self.hold(
                key.clone(),
                HoldKind::Budget,
                format!("desired count moves by at most {budget} per pass: {current} -> {to} now, {target} later"),
            );
            reason = format!("{reason} (stepping by the budget of {budget})");
        }
        let change = Change::SetDesiredCount { service: svc.id.clone(), from: current, to };
        Some((target, Some(PlannedChange { resource: key, change, reason })))
    }

    /// Tasks never outrun instances: where a Capacity document covers the
    /// cluster, a scale-out is cut to what the group holds once this pass's
    /// capacity change is made (instances may still be launching, but the
    /// capacity comes first or together, never after tasks are stuck pending).
    fn fit_scale_outs_to_capacity(&mut self, count_changes: &mut Vec<PlannedChange>) {
        for cap in &self.desired.capacities {
            let Some(d) = self.out.capacity.get(&cap.group) else { continue };
            let Some(Ok(group)) = self.observed.groups.get(&cap.group) else { continue };
            let instances = d.set_capacity.unwrap_or(group.desired_capacity);
            let in_cluster = |id: &ServiceId| id.region == cap.group.region && id.cluster == cap.cluster;
            // Tasks the cluster runs now; tasks being scaled in still hold
            // their instances until they stop.
            let committed: u64 = self
                .desired
                .services
                .iter()
                .filter(|s| in_cluster(&s.id))
                .filter_map(|s| match self.observed.services.get(&s.id) {
                    Some(Ok(o)) => Some(u64::from(o.desired_count)),
                    _ => None,
                })
                .sum();
            let mut room = (u64::from(instances) * u64::from(d.per_instance)).saturating_sub(committed);
            count_changes.retain_mut(|pc| {
                let Change::SetDesiredCount { service, from, to } = &mut pc.change else { return true };
                if !in_cluster(service) || *to <= *from {
                    return true;
                }
                let wanted = *to - *from;
                let allowed = (wanted as u64).min(room) as u32;
                room -= u64::from(allowed);
                if allowed < wanted {
                    let fit = *from + allowed;
                    self.out.holds.push(Hold {
                        resource: pc.resource.clone(),
                        kind: HoldKind::Budget,
                        message: format!(
                            "{instances} instance(s) this pass hold {fit} task(s) of {service}; the scale-out to {} continues as instances are added",
                            *to
                        ),
                    });
                    pc.reason = format!("{} (limited to what the Auto Scaling group holds this pass)", pc.reason);
                    *to = fit;
                }
                *to != *from
            });
        }
    }

    fn plan_capacities(&mut self, planned: &[Option<u32>]) {
        for cap in &self.desired.capacities {
            let key = group_key(&cap.group);
            let group = match self.observed.groups.get(&cap.group) {
                Some(Ok(g)) => g,
                Some(Err(e)) => {
                    self.hold(key, HoldKind::Unobserved, e.to_string());
                    continue;
                }
                None => continue,
            };
            // Tasks of the cluster: what ballast plans for the services it
            // manages, or what ECS runs now for those it could not decide.
            let mut tasks = 0u32;
            let mut sizes: Vec<TaskSize> = Vec::new();
            for (svc, planned) in self.desired.services.iter().zip(planned) {
                if svc.id.region != cap.group.region || svc.id.cluster != cap.cluster {
                    continue;
                }
                let Some(Ok(o)) = self.observed.services.get(&svc.id) else {
                    continue;
                };
                tasks += planned.unwrap_or(o.desired_count);
                sizes.extend(o.task_size);
            }
            let per_instance = match capacity::per_instance(cap, &sizes) {
                Ok(n) => n,
                Err(msg) => {
                    self.hold(key, HoldKind::Unobserved, msg);
                    continue;
                }
            };
            let mem = self.out.memory.capacity.entry(cap.group.clone()).or_default();
            let d = capacity::decide(cap, group, tasks, per_instance, mem, self.now);
            for h in &d.held {
                self.hold(key.clone(), HoldKind::Scaling, h.clone());
            }
            let mut changes = Vec::new();
            if let Some(to) = &d.subnets {
                let change =
                    Change::SetGroupSubnets { group: cap.group.clone(), from: group.subnets.clone(), to: to.clone() };
                changes.push((true, change, format!("zones needed for {} instance(s)", d.needed)));
            }
            if let Some(to) = d.set_capacity {
                let change = Change::SetDesiredCapacity { group: cap.group.clone(), from: group.desired_capacity, to };
                changes.push((false, change, d.message.clone()));
            }
            for id in &d.terminate {
                let change = Change::TerminateInstance { group: cap.group.clone(), instance_id: id.clone() };
                changes.push((false, change, format!("{}; instance {id} has no tasks", d.message)));
            }
            let subnets_now = memory::subnets_fingerprint(&group.subnets);
            let contested_subnets = self.out.memory.observe_field_with(
                || Field::Subnets(cap.group.clone()),
                FieldValue::Text(subnets_now),
                self.now,
                self.fight,
            );
            let contested_capacity = self.out.memory.observe_field_with(
                || Field::Capacity(cap.group.clone()),
                group.desired_capacity.into(),
                self.now,
                self.fight,
            );
            self.out.capacity.insert(cap.group.clone(), d);
            for (is_subnets, change, reason) in changes {
                let contested = if is_subnets { contested_subnets } else { contested_capacity };
                if group.managed_scaling && !cap.take_over_managed_scaling {
                    self.hold(
                        key.clone(),
                        HoldKind::Conflict,
                        format!("ECS managed scaling drives this group (AmazonECSManaged tag); would {change}; set takeOver.managedScaling to let ballast manage it"),
                    );
                } else if contested {
                    self.hold(
                        key.clone(),
                        HoldKind::Contested,
                        format!(
                            "{} keeps being changed by someone else; not correcting it until it stays put",
                            if is_subnets { "the subnets" } else { "the capacity" }
                        ),
                    );
                } else if cap.suspend {
                    self.hold(key.clone(), HoldKind::Suspended, format!("would {change}; document is suspended"));
                } else {
                    self.out.changes.push(PlannedChange { resource: key.clone(), change, reason });
                }
            }
        }
    }

    /// Registrations go straight into the plan; deregistrations into
    /// `deregs`, emitted after every registration of the pass.
    fn plan_service_targets(&mut self, svc: &Service, deregs: &mut Vec<PlannedChange>) {
        let Some(Ok(observed_svc)) = self.observed.services.get(&svc.id) else {
            return;
        };
        let mut budget_left = svc.budget.max_deregistrations_per_pass;
        for b in &svc.target_groups {
            let group = match self.observed.target_groups.get(&b.target_group) {
                Some(Ok(g)) => g,
                Some(Err(e)) => {
                    self.hold(target_group_key(&b.target_group), HoldKind::Unobserved, e.to_string());
                    continue;
                }
                None => continue,
            };
            if targets::is_converged(b, observed_svc, group) {
                continue;
            }
            let key = target_group_key(&b.target_group);
            let tp =
                targets::plan_targets(b, observed_svc, group, self.out.memory.registered.get(&group.arn), budget_left);
            budget_left -= (tp.deregister.len() as u32).min(budget_left);
            for task in &tp.unaddressable {
                self.hold(
                    key.clone(),
                    HoldKind::Safety,
                    format!("task {task} has no address for {}:{}", b.container_name, b.container_port),
                );
            }
            for (t, why) in &tp.held {
                let kind = if why.contains("budget") { HoldKind::Budget } else { HoldKind::Safety };
                self.hold(key.clone(), kind, format!("keeping stale target {t}: {why}"));
            }
            if tp.register.is_empty() && tp.deregister.is_empty() {
                continue;
            }
            if observed_svc.load_balancer_target_groups.contains(&group.arn) && !svc.take_over.load_balancers {
                self.hold(
                    key,
                    HoldKind::Conflict,
                    "the ECS service registers targets in this group itself (its loadBalancers); set takeOver.loadBalancers to let ballast manage them",
                );
                continue;
            }
            if svc.suspend {
                let msg = format!(
                    "would register {} and deregister {} target(s); document is suspended",
                    tp.register.len(),
                    tp.deregister.len()
                );
                self.hold(key, HoldKind::Suspended, msg);
                continue;
            }
            let region = b.target_group.region.clone();
            if !tp.register.is_empty() {
                self.out.changes.push(PlannedChange {
                    resource: key.clone(),
                    reason: format!("{} serving task(s) of {} are not registered", tp.register.len(), svc.id),
                    change: Change::RegisterTargets {
                        region: region.clone(),
                        target_group_arn: group.arn.clone(),
                        targets: tp.register,
                    },
                });
            }
            if !tp.deregister.is_empty() {
                deregs.push(PlannedChange {
                    resource: key,
                    reason: format!(
                        "no serving task of {} behind these target(s); {} healthy remain, floor {}",
                        svc.id, tp.healthy_after, tp.floor
                    ),
                    change: Change::DeregisterTargets {
                        region,
                        target_group_arn: group.arn.clone(),
                        targets: tp.deregister,
                    },
                });
            }
        }
    }

    fn plan_alarms(&mut self, svc: &Service) {
        let Some(defs) = alarms::desired_alarms(svc) else {
            return;
        };
        for def in defs {
            let observed = self.observed.alarms.get(&(svc.id.region.clone(), def.name.clone()));
            let (create, reason) = match observed {
                Some(Err(e)) => {
                    self.hold(
                        ResourceKey::Alarm { region: svc.id.region.clone(), name: def.name.clone() },
                        HoldKind::Unobserved,
                        e.to_string(),
                    );
                    continue;
                }
                None => (true, "alarm does not exist".to_string()),
                Some(Ok(o)) => {
                    let fingerprint = memory::alarm_fingerprint(&o.definition);
                    let contested = self.out.memory.observe_field_with(
                        || Field::Alarm(svc.id.region.clone(), def.name.clone()),
                        FieldValue::Text(fingerprint),
                        self.now,
                        self.fight,
                    );
                    let diffs = alarms::differences(&def, &o.definition);
                    if diffs.is_empty() {
                        continue;
                    }
                    if contested {
                        let msg = format!(
                            "alarm {} keeps being edited by someone else; not correcting it until it stays put",
                            def.name
                        );
                        self.hold(
                            ResourceKey::Alarm { region: svc.id.region.clone(), name: def.name.clone() },
                            HoldKind::Contested,
                            msg,
                        );
                        continue;
                    }
                    (false, format!("edited outside ballast: {}", diffs.join(", ")))
                }
            };
            let key = ResourceKey::Alarm { region: svc.id.region.clone(), name: def.name.clone() };
            if svc.suspend {
                let verb = if create { "create" } else { "update" };
                self.hold(key, HoldKind::Suspended, format!("would {verb} alarm {}; document is suspended", def.name));
                continue;
            }
            self.out.changes.push(PlannedChange {
                resource: key,
                change: Change::PutAlarm { region: svc.id.region.clone(), alarm: def, create },
                reason,
            });
        }
    }
}

#[cfg(test)]
mod tests;
