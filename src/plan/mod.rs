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
pub mod scaling;
pub mod targets;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::json;

pub use change::{Change, ChangeKind, short_arn};
pub use memory::{FightPolicy, Memory};

use crate::desired::{DesiredState, Service, TaskCount};
use crate::observed::{Observed, TaskSize};
use memory::Field;

/// A managed resource, as status and backoff know it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ResourceKey {
    Service {
        region: String,
        cluster: String,
        service: String,
    },
    TargetGroup {
        region: String,
        name: String,
    },
    Alarm {
        region: String,
        name: String,
    },
    Group {
        region: String,
        name: String,
    },
}

impl std::fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceKey::Service {
                cluster, service, ..
            } => write!(f, "service/{cluster}/{service}"),
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

/// Per-resource summary for /status: what is wanted and what is there.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceReport {
    pub resource: ResourceKey,
    /// `metadata.name` of the document that declares it.
    pub document: String,
    pub desired: serde_json::Value,
    pub observed: serde_json::Value,
    /// Set when the resource could not be read.
    pub error: Option<String>,
}

/// One pass's plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    pub changes: Vec<PlannedChange>,
    pub holds: Vec<Hold>,
    pub reports: Vec<ResourceReport>,
    pub decisions: BTreeMap<crate::desired::ServiceId, scaling::Decision>,
    pub capacity: BTreeMap<crate::desired::GroupId, capacity::CapacityDecision>,
    /// The memory to keep for the next pass (scaling window, reverts).
    pub memory: Memory,
}

impl Plan {
    pub fn is_converged(&self) -> bool {
        self.changes.is_empty()
    }
}

/// Plan one pass. Pure: same inputs, same plan.
pub fn plan(desired: &DesiredState, observed: &Observed, memory: &Memory, now: SystemTime) -> Plan {
    Planner {
        desired,
        observed,
        now,
        fight: FightPolicy::default(),
        out: Plan {
            memory: memory.clone(),
            ..Plan::default()
        },
    }
    .run()
}

/// Like [`plan`], with a non-default fight policy.
pub fn plan_with(
    desired: &DesiredState,
    observed: &Observed,
    memory: &Memory,
    now: SystemTime,
    fight: FightPolicy,
) -> Plan {
    Planner {
        desired,
        observed,
        now,
        fight,
        out: Plan {
            memory: memory.clone(),
            ..Plan::default()
        },
    }
    .run()
}

struct Planner<'a> {
    desired: &'a DesiredState,
    observed: &'a Observed,
    now: SystemTime,
    fight: FightPolicy,
    out: Plan,
}

fn service_key(s: &Service) -> ResourceKey {
    ResourceKey::Service {
        region: s.id.region.clone(),
        cluster: s.id.cluster.clone(),
        service: s.id.service.clone(),
    }
}

impl Planner<'_> {
    fn run(mut self) -> Plan {
        // Desired counts first (capacity needs them), but emitted after capacity.
        let mut count_changes = Vec::new();
        let mut planned_counts: BTreeMap<crate::desired::ServiceId, u32> = BTreeMap::new();
        for svc in &self.desired.services {
            if let Some((target, change)) = self.plan_count(svc) {
                planned_counts.insert(svc.id.clone(), target);
                count_changes.extend(change);
            }
        }
        self.plan_capacities(&planned_counts);
        self.out.changes.extend(count_changes);
        let mut deregistrations = Vec::new();
        for svc in &self.desired.services {
            deregistrations.extend(self.plan_service_targets(svc));
        }
        self.out.changes.extend(deregistrations);
        for svc in &self.desired.services {
            self.plan_alarms(svc);
        }
        self.out
    }

    fn hold(&mut self, resource: &ResourceKey, kind: HoldKind, message: impl Into<String>) {
        self.out.holds.push(Hold {
            resource: resource.clone(),
            kind,
            message: message.into(),
        });
    }

    /// Returns the count the service should end at (for capacity) and the change for this pass.
    fn plan_count(&mut self, svc: &Service) -> Option<(u32, Option<PlannedChange>)> {
        let key = service_key(svc);
        let observed = match self.observed.services.get(&svc.id) {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                self.report(
                    &key,
                    svc,
                    json!({ "tasks": task_count_json(svc.tasks) }),
                    json!(null),
                    Some(e.to_string()),
                );
                self.hold(&key, HoldKind::Unobserved, e.to_string());
                return None;
            }
            None => {
                self.hold(&key, HoldKind::Unobserved, "not observed this pass");
                return None;
            }
        };
        let current = observed.desired_count;
        let (target, reason) = match (svc.tasks, &svc.scaling) {
            (TaskCount::Fixed(n), _) => (n, format!("declared count is {n}")),
            (TaskCount::Range { min, max }, Some(policy)) => {
                let [high, low] = alarms::alarm_names(&svc.id);
                let state =
                    |name: String| match self.observed.alarms.get(&(svc.id.region.clone(), name)) {
                        Some(Ok(a)) => Some(a.state),
                        _ => None,
                    };
                let view = scaling::ScalingView {
                    current,
                    min,
                    max,
                    deploying: observed.deploying,
                    high_alarm: state(high),
                    low_alarm: state(low),
                    cpu: self.observed.cpu.get(&svc.id).copied().flatten(),
                };
                let mem = self.out.memory.scaling.entry(svc.id.clone()).or_default();
                let decision = scaling::decide(policy, view, mem, self.now);
                let out = (decision.desired, decision.message.clone());
                if decision.desired == current
                    && !matches!(
                        decision.reason,
                        scaling::DecisionReason::Steady | scaling::DecisionReason::NoData
                    )
                {
                    self.hold(&key, HoldKind::Scaling, decision.message.clone());
                }
                self.out.decisions.insert(svc.id.clone(), decision);
                out
            }
            (TaskCount::Range { min, max }, None) => {
                let t = current.clamp(min, max);
                (
                    t,
                    format!("observed count {current} is outside [{min}, {max}]"),
                )
            }
        };
        let running = observed.tasks.iter().filter(|t| t.is_serving()).count();
        self.report(
            &key,
            svc,
            json!({ "tasks": task_count_json(svc.tasks), "desiredCount": target }),
            json!({
                "desiredCount": current,
                "runningCount": observed.running_count,
                "pendingCount": observed.pending_count,
                "servingTasks": running,
                "deploying": observed.deploying,
            }),
            None,
        );

        let field = Field::DesiredCount(svc.id.clone());
        let contested =
            self.out
                .memory
                .observe_field(&field, &current.to_string(), self.now, self.fight);
        if target == current {
            return Some((target, None));
        }
        if observed.scalable_target && !svc.take_over.desired_count {
            self.hold(
                &key,
                HoldKind::Conflict,
                "Application Auto Scaling has a scalable target on this service's desired count; \
                 set takeOver.desiredCount to let ballast manage it",
            );
            return Some((current, None));
        }
        if contested {
            self.hold(
                &key,
                HoldKind::Contested,
                format!("{field} was changed back by someone else {} times recently; not correcting it until it stays put", self.fight.max_reverts),
            );
            return Some((current, None));
        }
        if svc.suspend {
            self.hold(
                &key,
                HoldKind::Suspended,
                format!("would set desired count {current} -> {target}; document is suspended"),
            );
            return Some((target, None));
        }
        let budget = svc.budget.max_count_change_per_pass;
        let to = if target > current {
            target.min(current.saturating_add(budget))
        } else {
            target.max(current.saturating_sub(budget))
        };
        let mut reason = reason;
        if to != target {
            self.hold(&key, HoldKind::Budget, format!("desired count moves by at most {budget} per pass: {current} -> {to} now, {target} later"));
            reason = format!("{reason} (stepping by the budget of {budget})");
        }
        Some((
            target,
            Some(PlannedChange {
                resource: key,
                change: Change::SetDesiredCount {
                    service: svc.id.clone(),
                    from: current,
                    to,
                },
                reason,
            }),
        ))
    }

    fn plan_capacities(&mut self, planned_counts: &BTreeMap<crate::desired::ServiceId, u32>) {
        for cap in &self.desired.capacities {
            let key = ResourceKey::Group {
                region: cap.group.region.clone(),
                name: cap.group.name.clone(),
            };
            let group = match self.observed.groups.get(&cap.group) {
                Some(Ok(g)) => g,
                Some(Err(e)) => {
                    let msg = e.to_string();
                    self.out.reports.push(ResourceReport {
                        resource: key.clone(),
                        document: cap.name.clone(),
                        desired: json!(null),
                        observed: json!(null),
                        error: Some(msg.clone()),
                    });
                    self.hold(&key, HoldKind::Unobserved, msg);
                    continue;
                }
                None => continue,
            };
            // Tasks of the cluster: ballast's planned counts where it manages
            // the service, otherwise what ECS is asked to run now.
            let mut tasks = 0u32;
            let mut sizes: Vec<TaskSize> = Vec::new();
            for (id, svc) in &self.observed.services {
                if id.region != cap.group.region || id.cluster != cap.cluster {
                    continue;
                }
                let Ok(svc) = svc else { continue };
                tasks += planned_counts.get(id).copied().unwrap_or(svc.desired_count);
                sizes.extend(svc.task_size);
            }
            let per_instance = match capacity::per_instance(cap, &sizes) {
                Ok(n) => n,
                Err(msg) => {
                    self.hold(&key, HoldKind::Unobserved, msg);
                    continue;
                }
            };
            let mem = self
                .out
                .memory
                .capacity
                .entry(cap.group.clone())
                .or_default();
            let d = capacity::decide(cap, group, tasks, per_instance, mem, self.now);
            let active = group.instances.iter().filter(|i| i.is_active()).count();
            self.out.reports.push(ResourceReport {
                resource: key.clone(),
                document: cap.name.clone(),
                desired: json!({ "desiredCapacity": d.needed, "tasks": tasks, "tasksPerInstance": per_instance, "subnets": d.subnets.clone().unwrap_or_else(|| group.subnets.clone()) }),
                observed: json!({ "desiredCapacity": group.desired_capacity, "minSize": group.min_size, "maxSize": group.max_size, "activeInstances": active, "subnets": group.subnets }),
                error: None,
            });
            for h in &d.held {
                self.hold(&key, HoldKind::Scaling, h.clone());
            }
            let mut changes = Vec::new();
            if let Some(to) = &d.subnets {
                changes.push((
                    Field::Subnets(cap.group.clone()),
                    memory::subnets_fingerprint(&group.subnets),
                    Change::SetGroupSubnets {
                        group: cap.group.clone(),
                        from: group.subnets.clone(),
                        to: to.clone(),
                    },
                    format!("zones needed for {} instance(s)", d.needed),
                ));
            }
            if let Some(to) = d.set_capacity {
                changes.push((
                    Field::Capacity(cap.group.clone()),
                    group.desired_capacity.to_string(),
                    Change::SetDesiredCapacity {
                        group: cap.group.clone(),
                        from: group.desired_capacity,
                        to,
                    },
                    d.message.clone(),
                ));
            }
            for id in &d.terminate {
                changes.push((
                    Field::Capacity(cap.group.clone()),
                    group.desired_capacity.to_string(),
                    Change::TerminateInstance {
                        group: cap.group.clone(),
                        instance_id: id.clone(),
                    },
                    format!("{}; instance {id} has no tasks", d.message),
                ));
            }
            let subnets_now = memory::subnets_fingerprint(&group.subnets);
            let contested_subnets = self.out.memory.observe_field(
                &Field::Subnets(cap.group.clone()),
                &subnets_now,
                self.now,
                self.fight,
            );
            let contested_capacity = self.out.memory.observe_field(
                &Field::Capacity(cap.group.clone()),
                &group.desired_capacity.to_string(),
                self.now,
                self.fight,
            );
            self.out.capacity.insert(cap.group.clone(), d);
            for (field, _, change, reason) in changes {
                let contested = match field {
                    Field::Subnets(_) => contested_subnets,
                    _ => contested_capacity,
                };
                if group.managed_scaling && !cap.take_over_managed_scaling {
                    self.hold(&key, HoldKind::Conflict, format!("ECS managed scaling drives this group (AmazonECSManaged tag); would {change}; set takeOver.managedScaling to let ballast manage it"));
                } else if contested {
                    self.hold(&key, HoldKind::Contested, format!("{field} keeps being changed by someone else; not correcting it until it stays put"));
                } else if cap.suspend {
                    self.hold(
                        &key,
                        HoldKind::Suspended,
                        format!("would {change}; document is suspended"),
                    );
                } else {
                    self.out.changes.push(PlannedChange {
                        resource: key.clone(),
                        change,
                        reason,
                    });
                }
            }
        }
    }

    /// Plans registrations into `self.out.changes`; returns deregistrations (emitted after every registration).
    fn plan_service_targets(&mut self, svc: &Service) -> Vec<PlannedChange> {
        let mut deregs = Vec::new();
        let Some(Ok(observed_svc)) = self.observed.services.get(&svc.id) else {
            return deregs;
        };
        let mut budget_left = svc.budget.max_deregistrations_per_pass;
        for b in &svc.target_groups {
            let key = ResourceKey::TargetGroup {
                region: b.target_group.region.clone(),
                name: b.target_group.target_group.name().to_string(),
            };
            let group = match self.observed.target_groups.get(&b.target_group) {
                Some(Ok(g)) => g,
                Some(Err(e)) => {
                    self.report(&key, svc, json!(null), json!(null), Some(e.to_string()));
                    self.hold(&key, HoldKind::Unobserved, e.to_string());
                    continue;
                }
                None => continue,
            };
            let tp = targets::plan_targets(
                b,
                observed_svc,
                group,
                self.out.memory.registered.get(&group.arn),
                budget_left,
            );
            budget_left -= (tp.deregister.len() as u32).min(budget_left);
            let health = |h| group.targets.iter().filter(|t| t.health == h).count();
            self.report(
                &key,
                svc,
                json!({ "targets": tp.expected.iter().map(ToString::to_string).collect::<Vec<_>>(), "minHealthy": tp.floor }),
                json!({
                    "targets": group.targets.iter().map(|t| format!("{} ({:?})", t.target, t.health)).collect::<Vec<_>>(),
                    "healthy": health(crate::observed::TargetHealth::Healthy),
                    "initial": health(crate::observed::TargetHealth::Initial),
                    "draining": health(crate::observed::TargetHealth::Draining),
                    "foreign": tp.foreign.iter().map(ToString::to_string).collect::<Vec<_>>(),
                }),
                None,
            );
            for task in &tp.unaddressable {
                self.hold(
                    &key,
                    HoldKind::Safety,
                    format!(
                        "task {task} has no address for {}:{}",
                        b.container_name, b.container_port
                    ),
                );
            }
            for (t, why) in &tp.held {
                let kind = if why.contains("budget") {
                    HoldKind::Budget
                } else {
                    HoldKind::Safety
                };
                self.hold(&key, kind, format!("keeping stale target {t}: {why}"));
            }
            if tp.register.is_empty() && tp.deregister.is_empty() {
                continue;
            }
            if observed_svc
                .load_balancer_target_groups
                .contains(&group.arn)
                && !svc.take_over.load_balancers
            {
                self.hold(&key, HoldKind::Conflict, "the ECS service registers targets in this group itself (its loadBalancers); set takeOver.loadBalancers to let ballast manage them");
                continue;
            }
            if svc.suspend {
                self.hold(
                    &key,
                    HoldKind::Suspended,
                    format!(
                        "would register {} and deregister {} target(s); document is suspended",
                        tp.register.len(),
                        tp.deregister.len()
                    ),
                );
                continue;
            }
            if !tp.register.is_empty() {
                self.out.changes.push(PlannedChange {
                    resource: key.clone(),
                    reason: format!(
                        "{} serving task(s) of {} are not registered",
                        tp.register.len(),
                        svc.id
                    ),
                    change: Change::RegisterTargets {
                        region: b.target_group.region.clone(),
                        target_group_arn: group.arn.clone(),
                        targets: tp.register.clone(),
                    },
                });
            }
            if !tp.deregister.is_empty() {
                deregs.push(PlannedChange {
                    resource: key.clone(),
                    reason: format!(
                        "no serving task of {} behind {} target(s); {} healthy remain, floor {}",
                        svc.id,
                        tp.deregister.len(),
                        tp.healthy
                            - tp.deregister
                                .iter()
                                .filter(|t| group.targets.iter().any(|o| &o.target == *t
                                    && o.health == crate::observed::TargetHealth::Healthy))
                                .count() as u32,
                        tp.floor
                    ),
                    change: Change::DeregisterTargets {
                        region: b.target_group.region.clone(),
                        target_group_arn: group.arn.clone(),
                        targets: tp.deregister.clone(),
                    },
                });
            }
        }
        deregs
    }

    fn plan_alarms(&mut self, svc: &Service) {
        let Some(defs) = alarms::desired_alarms(svc) else {
            return;
        };
        for def in defs {
            let key = ResourceKey::Alarm {
                region: svc.id.region.clone(),
                name: def.name.clone(),
            };
            let observed = self
                .observed
                .alarms
                .get(&(svc.id.region.clone(), def.name.clone()));
            let (create, reason) = match observed {
                Some(Err(e)) => {
                    self.report(&key, svc, json!(def), json!(null), Some(e.to_string()));
                    self.hold(&key, HoldKind::Unobserved, e.to_string());
                    continue;
                }
                None => {
                    self.report(&key, svc, json!(def), json!(null), None);
                    (true, "alarm does not exist".to_string())
                }
                Some(Ok(o)) => {
                    self.report(
                        &key,
                        svc,
                        json!(def),
                        json!({ "definition": o.definition, "state": o.state }),
                        None,
                    );
                    let field = Field::Alarm(svc.id.region.clone(), def.name.clone());
                    let contested = self.out.memory.observe_field(
                        &field,
                        &memory::alarm_fingerprint(&o.definition),
                        self.now,
                        self.fight,
                    );
                    let diffs = alarms::differences(&def, &o.definition);
                    if diffs.is_empty() {
                        continue;
                    }
                    if contested {
                        self.hold(&key, HoldKind::Contested, format!("{field} keeps being edited by someone else; not correcting it until it stays put"));
                        continue;
                    }
                    (
                        false,
                        format!("edited outside ballast: {}", diffs.join(", ")),
                    )
                }
            };
            if svc.suspend {
                self.hold(
                    &key,
                    HoldKind::Suspended,
                    format!(
                        "would {} alarm {}; document is suspended",
                        if create { "create" } else { "update" },
                        def.name
                    ),
                );
                continue;
            }
            self.out.changes.push(PlannedChange {
                resource: key,
                change: Change::PutAlarm {
                    region: svc.id.region.clone(),
                    alarm: def,
                    create,
                },
                reason,
            });
        }
    }

    fn report(
        &mut self,
        key: &ResourceKey,
        svc: &Service,
        desired: serde_json::Value,
        observed: serde_json::Value,
        error: Option<String>,
    ) {
        self.out.reports.push(ResourceReport {
            resource: key.clone(),
            document: svc.name.clone(),
            desired,
            observed,
            error,
        });
    }
}

fn task_count_json(t: TaskCount) -> serde_json::Value {
    match t {
        TaskCount::Fixed(n) => json!({ "count": n }),
        TaskCount::Range { min, max } => json!({ "min": min, "max": max }),
    }
}

#[cfg(test)]
mod tests;
