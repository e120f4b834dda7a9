//! The rules of a `Capacity` document: its Auto Scaling group, instance
//! bounds, tasks per instance and zones.

use super::{CapacityClaims, Checked, DocCtx, Unique, bool_or, ecs_name, header, is_subnet_id, region};
use crate::desired::positions::{join_index, join_key};
use crate::desired::raw::{RawCapacityDocument, RawTerminationHook, RawZone};
use crate::desired::{
    Capacity, GroupId, HEARTBEAT_TIMEOUT_RANGE, Origin, TasksPerInstance, TerminationHook, Zone, ZoneMode,
};
use std::time::Duration;

/// Checks a `Capacity` document.
pub(crate) fn capacity(ctx: &mut DocCtx, doc: &RawCapacityDocument, default_region: &str) -> Checked {
    let errors_before = ctx.diags.len();
    let mut claims = CapacityClaims::default();
    let name = header(ctx, &doc.api_version, &doc.metadata, "Capacity", &mut claims.unique);
    let origin = Origin { file: ctx.file.to_path_buf(), line: ctx.index.value_pos("").line };
    let Some(spec) = ctx.required(
        &doc.spec,
        "spec",
        "add a `spec:` with `cluster`, `autoScalingGroup`, `minInstances`, `maxInstances`, `tasksPerInstance` and `zones`",
    ) else {
        return Checked::Capacity(claims, None);
    };
    let region = region(ctx, &spec.region, default_region);
    let cluster = ecs_name(ctx, &spec.cluster, "spec.cluster", "ECS cluster", "appCluster");
    if let (Some(r), Some(c)) = (&region, &cluster) {
        let loc = ctx.loc("spec.cluster");
        claims.unique.push((Unique::CapacityOf { region: r.clone(), cluster: c.clone() }, loc.clone()));
        claims.cluster = Some((r.clone(), c.clone(), loc));
    }
    let group_path = "spec.autoScalingGroup";
    let group = ctx
        .required(
            &spec.auto_scaling_group,
            group_path,
            "add the Auto Scaling group's name, e.g. `autoScalingGroup: ecsAutoScalingGroup`",
        )
        .cloned()
        .and_then(|g| {
            if g.starts_with("arn:") {
                let name = g.rsplit("autoScalingGroupName/").next().unwrap_or("ecsAutoScalingGroup");
                ctx.at_value(
                    group_path,
                    format!("`{group_path}` is an ARN; ballast expects the group's name"),
                    format!("write the name only, e.g. `{name}`"),
                );
                None
            } else if g.is_empty() || g.len() > 255 {
                ctx.at_value(
                    group_path,
                    format!("`{group_path}` must be 1 to 255 characters"),
                    "write the Auto Scaling group's name",
                );
                None
            } else {
                Some(g)
            }
        });
    let group = region.as_ref().zip(group).map(|(region, name)| GroupId { region: region.clone(), name });
    if let Some(id) = &group {
        claims.unique.push((Unique::Group(id.clone()), ctx.loc(group_path)));
    }

    let count_help = "a number of instances, 0 or more";
    let min_instances = ctx
        .required(&spec.min_instances, "spec.minInstances", "add the fewest instances to keep, e.g. `minInstances: 1`")
        .copied()
        .and_then(|v| ctx.int(v, "spec.minInstances", 0, i64::MAX, count_help));
    let max_instances = ctx
        .required(&spec.max_instances, "spec.maxInstances", "add the most instances allowed, e.g. `maxInstances: 10`")
        .copied()
        .and_then(|v| ctx.int(v, "spec.maxInstances", 0, i64::MAX, count_help));
    let bounds_ok = match (min_instances, max_instances) {
        (Some(min), Some(max)) if min > max => {
            ctx.at_value(
                "spec.minInstances",
                format!("`spec.minInstances` ({min}) is greater than `spec.maxInstances` ({max}): no instance count satisfies both"),
                "make `minInstances` at most `maxInstances`",
            );
            false
        }
        _ => true,
    };
    if let Some(max) = max_instances {
        claims.max_instances = Some((max, ctx.loc("spec.maxInstances")));
    }

    let tasks_per_instance = match (spec.tasks_per_instance, &spec.instance_resources) {
        (Some(_), Some(_)) => {
            ctx.at_key(
                "spec.instanceResources",
                "`spec` sets both `tasksPerInstance` and `instanceResources`",
                "keep `tasksPerInstance` for a fixed number, or `instanceResources` to compute it from the task size, not both",
            );
            None
        }
        (None, None) => {
            ctx.at_key(
                "spec",
                "`spec` has neither `tasksPerInstance` nor `instanceResources`: ballast cannot tell how many instances the tasks need",
                "add `tasksPerInstance: 1` (one task per instance, as with static host ports), or `instanceResources: {cpu: 1024, memory: 983}`",
            );
            None
        }
        (Some(n), None) => {
            let n = ctx.int(n, "spec.tasksPerInstance", 1, i64::MAX, "at least one task must fit on an instance");
            claims.tasks_per_instance = n;
            n.map(TasksPerInstance::Fixed)
        }
        (None, Some(r)) => {
            let help = "ECS counts 1024 CPU units per vCPU, and memory in MiB";
            let cpu = ctx
                .required(
                    &r.cpu,
                    "spec.instanceResources.cpu",
                    "add the CPU units one instance registers, e.g. `cpu: 1024`",
                )
                .copied()
                .and_then(|v| ctx.int(v, "spec.instanceResources.cpu", 1, i64::MAX, help));
            let memory = ctx
                .required(
                    &r.memory,
                    "spec.instanceResources.memory",
                    "add the memory (MiB) one instance registers, e.g. `memory: 983`",
                )
                .copied()
                .and_then(|v| ctx.int(v, "spec.instanceResources.memory", 1, i64::MAX, help));
            cpu.zip(memory).map(|(cpu, memory)| TasksPerInstance::Resources { cpu, memory })
        }
    };
    let headroom = ctx.int_or(spec.headroom, "spec.headroom", 0, i64::MAX, 0, "spare instances, 0 or more");
    let scale_in_cooldown = ctx.duration_or(&spec.scale_in_cooldown, "spec.scaleInCooldown", Duration::from_secs(300));
    let max_change_per_pass = ctx.int_or(
        spec.max_change_per_pass,
        "spec.maxChangePerPass",
        1,
        i64::MAX,
        2,
        "at least one instance per pass is needed to make progress; the default is 2",
    );
    let zones = zones(ctx, &spec.zones, max_instances);
    let take_over = spec.take_over.clone().unwrap_or_default();
    let termination_hook = spec.termination_hook.as_ref().map(|h| termination_hook(ctx, h));

    let clean = ctx.diags.len() == errors_before && ctx.prior_errors == 0;
    let capacity = (|| {
        if !clean || !bounds_ok {
            return None;
        }
        Some(Capacity {
            name: name?,
            origin,
            group: group?,
            cluster: cluster?,
            suspend: bool_or(spec.suspend, false),
            min_instances: min_instances?,
            max_instances: max_instances?,
            tasks_per_instance: tasks_per_instance?,
            headroom: headroom?,
            scale_in_cooldown: scale_in_cooldown?,
            zones: zones?,
            max_change_per_pass: max_change_per_pass?,
            take_over_managed_scaling: bool_or(take_over.managed_scaling, false),
            suspend_az_rebalance: bool_or(spec.suspend_az_rebalance, true),
            termination_hook: match termination_hook {
                None => None,
                Some(hook) => Some(hook?),
            },
        })
    })();
    Checked::Capacity(claims, capacity)
}

/// `spec.terminationHook`: AWS's heartbeat range, and a result it knows.
fn termination_hook(ctx: &mut DocCtx, raw: &RawTerminationHook) -> Option<TerminationHook> {
    let path = "spec.terminationHook.heartbeatTimeout";
    let timeout = ctx.duration_or(&raw.heartbeat_timeout, path, Duration::from_secs(600))?;
    let (min, max) = HEARTBEAT_TIMEOUT_RANGE;
    if timeout < min || timeout > max {
        ctx.at_value(
            path,
            format!("a heartbeat timeout of {} s is outside what Auto Scaling accepts (30s to 2h)", timeout.as_secs()),
            "use a duration from `30s` to `2h`, e.g. `10m`: longer than the target groups' deregistration delay",
        );
        return None;
    }
    let result = match raw.default_result.as_deref() {
        None => "CONTINUE",
        Some(r) => ctx.one_of(r, "spec.terminationHook.defaultResult", &["CONTINUE", "ABANDON"])?,
    };
    Some(TerminationHook { heartbeat_timeout: timeout, default_result: result.to_string() })
}

fn zones(ctx: &mut DocCtx, raw: &Option<Vec<RawZone>>, max_instances: Option<u32>) -> Option<Vec<Zone>> {
    let raw = ctx.required(
        raw,
        "spec.zones",
        "list the group's subnets, e.g. `zones: [{subnet: subnet-0a1b2c3d4e5f60001, mode: alwaysOn}]`",
    )?;
    if raw.is_empty() {
        ctx.at_value(
            "spec.zones",
            "`spec.zones` is empty: the group needs at least one subnet to start instances in",
            "add a zone with `subnet:` and `mode: alwaysOn`",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: Vec<(&str, String)> = Vec::new();
    for (i, z) in raw.iter().enumerate() {
        let path = join_index("spec.zones", i);
        let subnet_path = join_key(&path, "subnet");
        let subnet = ctx
            .required(&z.subnet, &subnet_path, "add the subnet id, e.g. `subnet: subnet-0a1b2c3d4e5f60001`")
            .cloned()
            .and_then(|s| {
                if !is_subnet_id(&s) {
                    ctx.at_value(
                        &subnet_path,
                        format!("`{subnet_path}` `{s}` is not a subnet id"),
                        "subnet ids are `subnet-` and 8 or 17 lowercase hex digits, e.g. `subnet-0a1b2c3d4e5f60001`",
                    );
                    None
                } else if let Some((_, first)) = seen.iter().find(|(id, _)| *id == s) {
                    ctx.at_value(
                        &subnet_path,
                        format!("subnet `{s}` is listed twice, first at `{first}`"),
                        "list each subnet once",
                    );
                    None
                } else {
                    Some(s)
                }
            });
        if let Some(s) = &z.subnet {
            seen.push((s.as_str(), path.clone()));
        }
        let zone = match &z.zone {
            Some(name) if name.trim().is_empty() => {
                ctx.at_value(
                    &join_key(&path, "zone"),
                    format!("`{path}.zone` is empty"),
                    "write the availability zone, e.g. `us-east-2a`, or remove the key",
                );
                None
            }
            other => Some(other.clone()),
        };
        let above_path = join_key(&path, "whenInstancesAbove");
        let mode = match z.mode.as_deref().map(|m| ctx.one_of(m, &join_key(&path, "mode"), &["alwaysOn", "onDemand"])) {
            Some(None) => None,
            None | Some(Some("alwaysOn")) => {
                if z.when_instances_above.is_some() {
                    ctx.at_key(
                        &above_path,
                        format!("`{above_path}` is set on an `alwaysOn` zone"),
                        "only `onDemand` zones have a threshold: add `mode: onDemand`, or remove `whenInstancesAbove`",
                    );
                    None
                } else {
                    Some(ZoneMode::AlwaysOn)
                }
            }
            Some(Some(_)) => match z.when_instances_above {
                None => {
                    ctx.missing(
                        &above_path,
                        "an `onDemand` zone needs the instance count above which it is used, e.g. `whenInstancesAbove: 2`",
                    );
                    None
                }
                Some(v) => ctx
                    .int(v, &above_path, 0, i64::MAX, "a number of instances, 0 or more")
                    .and_then(|above| match max_instances {
                        Some(max) if above >= max => {
                            ctx.at_value(
                                &above_path,
                                format!(
                                    "`{above_path}` ({above}) is not below `spec.maxInstances` ({max}): this zone would never be used"
                                ),
                                format!("lower `whenInstancesAbove` below {max}, or raise `maxInstances`"),
                            );
                            None
                        }
                        _ => Some(ZoneMode::OnDemand { above }),
                    }),
            },
        };
        match (subnet, zone, mode) {
            (Some(subnet), Some(zone), Some(mode)) => out.push(Zone { subnet, zone, mode }),
            _ => ok = false,
        }
    }
    if ok && !out.iter().any(|z| z.mode == ZoneMode::AlwaysOn) {
        ctx.at_key(
            "spec.zones",
            "no zone in `spec.zones` is `alwaysOn`: the group would have no subnet while few instances are needed",
            "make at least one zone `mode: alwaysOn` (the default)",
        );
        return None;
    }
    ok.then_some(out)
}
