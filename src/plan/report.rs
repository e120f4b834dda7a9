//! Per-resource summaries for /status and `plan --output json`: what is
//! wanted and what is there. Built apart from planning, which needs none
//! of it.

use serde_json::json;
use serde_json::value::RawValue;

fn raw(v: serde_json::Value) -> Box<RawValue> {
    serde_json::value::to_raw_value(&v).expect("a JSON value serializes")
}

use super::targets::DeregistrationBudget;
use super::{Memory, Plan, ResourceKey, alarms, targets};
use crate::desired::{DesiredState, TaskCount};
use crate::observed::{Observed, TargetHealth};

/// What /status shows of one resource.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceReport {
    pub resource: ResourceKey,
    /// `metadata.name` of the document that declares it.
    pub document: String,
    /// Serialized JSON: a report is kept in /status for every resource,
    /// and serialized text is several times smaller than a `Value` tree.
    pub desired: Box<RawValue>,
    pub observed: Box<RawValue>,
    /// Set when the resource could not be read.
    pub error: Option<String>,
}

fn task_count_json(t: TaskCount) -> serde_json::Value {
    match t {
        TaskCount::Fixed(n) => json!({ "count": n }),
        TaskCount::Range { min, max } => json!({ "min": min, "max": max }),
    }
}

/// One report per resource the desired state names, in document order.
pub fn reports(desired: &DesiredState, observed: &Observed, plan: &Plan, memory: &Memory) -> Vec<ResourceReport> {
    let mut out = Vec::new();
    for cap in &desired.capacities {
        let (obs, error) = match observed.groups.get(&cap.group) {
            Some(Ok(g)) => (
                json!({
                    "desiredCapacity": g.desired_capacity,
                    "minSize": g.min_size,
                    "maxSize": g.max_size,
                    "activeInstances": g.instances.iter().filter(|i| i.is_active()).count(),
                    "subnets": g.subnets,
                    "managedScaling": g.managed_scaling,
                }),
                None,
            ),
            Some(Err(e)) => (json!(null), Some(e.to_string())),
            None => (json!(null), None),
        };
        let want = match plan.capacity.get(&cap.group) {
            Some(d) => {
                json!({ "desiredCapacity": d.needed, "tasks": d.tasks, "tasksPerInstance": d.per_instance, "minInstances": cap.min_instances, "maxInstances": cap.max_instances })
            }
            None => json!({ "minInstances": cap.min_instances, "maxInstances": cap.max_instances }),
        };
        out.push(ResourceReport {
            resource: ResourceKey::group(&cap.group),
            document: cap.name.clone(),
            desired: raw(want),
            observed: raw(obs),
            error,
        });
    }
    for (i, svc) in desired.services.iter().enumerate() {
        let observed_svc = observed.services.get(&svc.id);
        let (obs, error) = match observed_svc {
            Some(Ok(o)) => (
                json!({
                    "desiredCount": o.desired_count,
                    "runningCount": o.running_count,
                    "pendingCount": o.pending_count,
                    "deploying": o.deploying,
                    "taskDefinition": o.task_definition,
                }),
                None,
            ),
            Some(Err(e)) => (json!(null), Some(e.to_string())),
            None => (json!(null), None),
        };
        let mut want = json!({ "tasks": task_count_json(svc.tasks), "suspend": svc.suspend });
        if let Some(target) = plan.services.get(i).and_then(|p| p.target) {
            want["desiredCount"] = json!(target);
        } else if let TaskCount::Fixed(n) = svc.tasks {
            want["desiredCount"] = json!(n);
        }
        out.push(ResourceReport {
            resource: ResourceKey::service(&svc.id),
            document: svc.name.clone(),
            desired: raw(want),
            observed: raw(obs),
            error,
        });

        for b in &svc.target_groups {
            let (desired_json, obs, error) = match (observed.target_groups.get(&b.target_group), observed_svc) {
                (Some(Ok(g)), Some(Ok(s))) => {
                    let tp = targets::plan_targets(
                        b,
                        s,
                        g,
                        memory.registered.get(&g.arn),
                        DeregistrationBudget::UNLIMITED,
                        &super::drain::Leaving::default(),
                    );
                    let count = |h| g.targets.iter().filter(|t| t.health == h).count();
                    (
                        json!({
                            "targets": tp.expected.iter().map(ToString::to_string).collect::<Vec<_>>(),
                            "minHealthy": tp.floor,
                            "ownership": b.ownership,
                        }),
                        json!({
                            "arn": g.arn,
                            "targets": g.targets.iter().map(|t| json!({ "target": t.target.to_string(), "health": t.health })).collect::<Vec<_>>(),
                            "healthy": count(TargetHealth::Healthy),
                            "initial": count(TargetHealth::Initial),
                            "draining": count(TargetHealth::Draining),
                            "foreign": tp.foreign.iter().map(ToString::to_string).collect::<Vec<_>>(),
                        }),
                        None,
                    )
                }
                (Some(Err(e)), _) => (json!(null), json!(null), Some(e.to_string())),
                _ => (json!(null), json!(null), None),
            };
            out.push(ResourceReport {
                resource: ResourceKey::target_group(&b.target_group),
                document: svc.name.clone(),
                desired: raw(desired_json),
                observed: raw(obs),
                error,
            });
        }

        if let Some(defs) = alarms::desired_alarms(svc) {
            for def in defs {
                let (obs, error) = match observed.alarms.get(&(svc.id.region.clone(), def.name.clone())) {
                    Some(Ok(a)) => (json!({ "definition": a.definition, "state": a.state }), None),
                    Some(Err(e)) => (json!(null), Some(e.to_string())),
                    None => (json!(null), None),
                };
                out.push(ResourceReport {
                    resource: ResourceKey::alarm(&svc.id.region, &def.name),
                    document: svc.name.clone(),
                    desired: raw(json!(def)),
                    observed: raw(obs),
                    error,
                });
            }
        }
    }
    out
}
