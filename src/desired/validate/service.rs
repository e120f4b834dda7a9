//! The rules of a `Service` document: its ECS service, task count,
//! target group bindings and CPU scaling.

use super::{Checked, DocCtx, ServiceClaims, Unique, bool_or, ecs_name, header, is_target_group_name, region};
use crate::desired::duration::format_duration;
use crate::desired::positions::{join_index, join_key};
use crate::desired::raw::{RawAlarmRule, RawScaling, RawServiceDocument, RawStep, RawTargetGroupBinding, RawTasks};
use crate::desired::{
    AlarmRule, CpuScaling, DEFAULT_PROPAGATION_LAG, MissingData, Origin, Ownership, Service, ServiceBudget, ServiceId,
    ServiceTakeOver, Step, TargetGroupBinding, TargetGroupId, TargetGroupRef, TargetType, TaskCount,
};
use std::time::Duration;

/// Checks a `Service` document.
pub(crate) fn service(ctx: &mut DocCtx, doc: &RawServiceDocument, default_region: &str) -> Checked {
    let errors_before = ctx.diags.len();
    let mut claims = ServiceClaims::default();
    let name = header(ctx, &doc.api_version, &doc.metadata, "Service", &mut claims.unique);
    let origin = Origin { file: ctx.file.to_path_buf(), line: ctx.index.value_pos("").line };
    let Some(spec) = ctx.required(&doc.spec, "spec", "add a `spec:` with at least `cluster`, `service` and `tasks`")
    else {
        return Checked::Service(claims, None);
    };

    let region = region(ctx, &spec.region, default_region);
    let cluster = ecs_name(ctx, &spec.cluster, "spec.cluster", "ECS cluster", "appCluster");
    let service_name = ecs_name(ctx, &spec.service, "spec.service", "ECS service", "appService");
    if let (Some(r), Some(c)) = (&region, &cluster) {
        claims.cluster = Some((r.clone(), c.clone()));
    }
    let id = match (&region, &cluster, &service_name) {
        (Some(region), Some(cluster), Some(service)) => {
            let id = ServiceId { region: region.clone(), cluster: cluster.clone(), service: service.clone() };
            claims.unique.push((Unique::Service(id.clone()), ctx.loc("spec.service")));
            Some(id)
        }
        _ => None,
    };

    let tasks = tasks(ctx, &spec.tasks);
    claims.min_tasks = tasks.map(|t| t.min());

    let mut bindings = Vec::new();
    let mut bindings_ok = true;
    for (i, raw) in spec.target_groups.iter().flatten().enumerate() {
        let path = join_index("spec.targetGroups", i);
        match binding(ctx, raw, &path, region.as_deref(), tasks, &mut claims) {
            Some(b) => bindings.push(b),
            None => bindings_ok = false,
        }
    }

    let scaling = match &spec.scaling {
        None => Some(None),
        Some(raw) => {
            if let Some(TaskCount::Fixed(n)) = tasks {
                ctx.at_key(
                    "spec.scaling",
                    format!("`spec.scaling` is set, but `spec.tasks.count` fixes the service at {n} tasks"),
                    "scaling needs a range: replace `count` with `min` and `max`, or remove `scaling`",
                );
                None
            } else {
                cpu_scaling(ctx, raw).map(Some)
            }
        }
    };

    let budget = spec.budget.clone().unwrap_or_default();
    let max_deregistrations_per_pass = ctx.int_or(
        budget.max_deregistrations_per_pass,
        "spec.budget.maxDeregistrationsPerPass",
        1,
        i64::MAX,
        1,
        "at least one deregistration per pass is needed to make progress; the default is 1",
    );
    let max_count_change_per_pass = ctx.int_or(
        budget.max_count_change_per_pass,
        "spec.budget.maxCountChangePerPass",
        1,
        i64::MAX,
        4,
        "at least one task per pass is needed to make progress; the default is 4",
    );
    let take_over = spec.take_over.clone().unwrap_or_default();

    let clean = ctx.diags.len() == errors_before && ctx.prior_errors == 0;
    let service = match (name, id, tasks, scaling, max_deregistrations_per_pass, max_count_change_per_pass) {
        (
            Some(name),
            Some(id),
            Some(tasks),
            Some(scaling),
            Some(max_deregistrations_per_pass),
            Some(max_count_change_per_pass),
        ) if clean && bindings_ok => Some(Service {
            name,
            origin,
            id,
            suspend: bool_or(spec.suspend, false),
            tasks,
            target_groups: bindings,
            scaling,
            budget: ServiceBudget { max_deregistrations_per_pass, max_count_change_per_pass },
            take_over: ServiceTakeOver {
                desired_count: bool_or(take_over.desired_count, false),
                load_balancers: bool_or(take_over.load_balancers, false),
            },
        }),
        _ => None,
    };
    Checked::Service(claims, service)
}

fn tasks(ctx: &mut DocCtx, raw: &Option<RawTasks>) -> Option<TaskCount> {
    const HELP: &str =
        "write `tasks: {count: 3}` for a fixed number of tasks, or `tasks: {min: 2, max: 10}` for a range";
    let t = ctx.required(raw, "spec.tasks", HELP)?;
    let count_help = "a task count is a whole number, 0 or more";
    match (t.count, t.min, t.max) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            ctx.at_key(
                "spec.tasks.count",
                "`spec.tasks` sets both `count` and `min`/`max`",
                "keep `count` for a fixed number of tasks, or `min` and `max` for a range, not both",
            );
            None
        }
        (None, None, None) => {
            ctx.at_key("spec.tasks", "`spec.tasks` has neither `count` nor `min` and `max`", HELP);
            None
        }
        (Some(count), None, None) => ctx.int(count, "spec.tasks.count", 0, i64::MAX, count_help).map(TaskCount::Fixed),
        (None, Some(_), None) => {
            ctx.missing("spec.tasks.max", "a range needs both bounds: add `max:` (at least `min`)");
            None
        }
        (None, None, Some(_)) => {
            ctx.missing("spec.tasks.min", "a range needs both bounds: add `min:` (0 or more)");
            None
        }
        (None, Some(min), Some(max)) => {
            let min_v = ctx.int(min, "spec.tasks.min", 0, i64::MAX, count_help);
            let max_v = ctx.int(
                max,
                "spec.tasks.max",
                1,
                i64::MAX,
                "the most tasks the service may run, at least 1 (to stop the service, write `count: 0`)",
            );
            let (min, max) = (min_v?, max_v?);
            if min > max {
                ctx.at_value(
                    "spec.tasks.min",
                    format!("`spec.tasks.min` ({min}) is greater than `spec.tasks.max` ({max}): no task count satisfies both"),
                    "make `min` at most `max`",
                );
                return None;
            }
            Some(TaskCount::Range { min, max })
        }
    }
}

fn binding(
    ctx: &mut DocCtx,
    raw: &RawTargetGroupBinding,
    path: &str,
    region: Option<&str>,
    tasks: Option<TaskCount>,
    claims: &mut ServiceClaims,
) -> Option<TargetGroupBinding> {
    let tg_path = join_key(path, "targetGroup");
    let target_group = ctx
        .required(
            &raw.target_group,
            &tg_path,
            "name the target group, e.g. `targetGroup: frontendTargetGroup`, or give its ARN",
        )
        .cloned()
        .and_then(|tg| target_group_ref(ctx, &tg, &tg_path, region));
    if let (Some(tg), Some(region)) = (&target_group, region) {
        let tg = Unique::TargetGroup { region: region.to_string(), name: tg.name().to_string() };
        claims.unique.push((tg, ctx.loc(&tg_path)));
    }
    let container_name =
        ecs_name(ctx, &raw.container_name, &join_key(path, "containerName"), "container", "appContainer");
    let port_path = join_key(path, "containerPort");
    let container_port = ctx
        .required(&raw.container_port, &port_path, "add the container port to register, e.g. `containerPort: 80`")
        .copied()
        .and_then(|p| {
            ctx.int(p, &port_path, 1, 65535, "ports are 1 to 65535; use the container port from the task definition")
        })
        .map(|p| p as u16);
    let target_type = match raw.target_type.as_deref() {
        None => Some(TargetType::Instance),
        Some(v) => ctx
            .one_of(v, &join_key(path, "targetType"), &["instance", "ip"])
            .map(|v| if v == "ip" { TargetType::Ip } else { TargetType::Instance }),
    };
    let ownership = match raw.ownership.as_deref() {
        None => Some(Ownership::Shared),
        Some(v) => ctx
            .one_of(v, &join_key(path, "ownership"), &["shared", "exclusive"])
            .map(|v| if v == "exclusive" { Ownership::Exclusive } else { Ownership::Shared }),
    };
    let min_healthy_path = join_key(path, "minHealthy");
    let min_healthy = match raw.min_healthy {
        None => Some(None),
        Some(v) => ctx
            .int(v, &min_healthy_path, 0, i64::MAX, "a number of healthy targets, 0 or more")
            .and_then(|v| match tasks {
                Some(t) if v > t.max() => {
                    ctx.at_value(
                        &min_healthy_path,
                        format!(
                            "`{min_healthy_path}` ({v}) is more than the {} tasks the service may run: no target could ever be deregistered",
                            t.max()
                        ),
                        format!("lower `minHealthy` to at most {}", t.max()),
                    );
                    None
                }
                _ => Some(Some(v)),
            }),
    };
    let propagation_lag =
        ctx.duration_or(&raw.propagation_lag, &join_key(path, "propagationLag"), DEFAULT_PROPAGATION_LAG);
    Some(TargetGroupBinding {
        target_group: TargetGroupId { region: region?.to_string(), target_group: target_group? },
        container_name: container_name?,
        container_port: container_port?,
        target_type: target_type?,
        ownership: ownership?,
        min_healthy: min_healthy?,
        propagation_lag: propagation_lag?,
    })
}

/// A target group name, or an ARN whose region must be the document's.
fn target_group_ref(ctx: &mut DocCtx, v: &str, path: &str, region: Option<&str>) -> Option<TargetGroupRef> {
    let r = TargetGroupRef::parse(v);
    match &r {
        TargetGroupRef::Name(name) if !is_target_group_name(name) => {
            ctx.at_value(
                path,
                format!("`{path}` `{name}` is not a valid target group name"),
                "target group names have 1 to 32 letters, digits and `-` (not first or last); or give the full ARN",
            );
            None
        }
        TargetGroupRef::Name(_) => Some(r),
        TargetGroupRef::Arn(arn) => {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let resource: Vec<&str> = parts.get(5).map(|r| r.split('/').collect()).unwrap_or_default();
            let well_formed = parts.len() == 6
                && parts[1].starts_with("aws")
                && parts[2] == "elasticloadbalancing"
                && parts[4].len() == 12
                && parts[4].bytes().all(|c| c.is_ascii_digit())
                && resource.len() == 3
                && resource[0] == "targetgroup"
                && is_target_group_name(resource[1])
                && !resource[2].is_empty();
            if !well_formed {
                ctx.at_value(
                    path,
                    format!("`{path}` `{arn}` is not a target group ARN"),
                    "write `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`, or just the target group's name",
                );
                return None;
            }
            if let Some(region) = region
                && parts[3] != region
            {
                ctx.at_value(
                    path,
                    format!("`{path}` is in region `{}`, but this service is in `{region}`", parts[3]),
                    "a service's tasks can only be registered in target groups of its own region; fix `spec.region` or the ARN",
                );
                return None;
            }
            Some(r)
        }
    }
}

fn cpu_scaling(ctx: &mut DocCtx, raw: &RawScaling) -> Option<CpuScaling> {
    let cpu = ctx.required(
        &raw.cpu,
        "spec.scaling.cpu",
        "add `cpu:` with `scaleOut` and `scaleIn` alarms, or remove `scaling`",
    )?;
    let base = "spec.scaling.cpu";
    let target_cpu = match cpu.target_cpu {
        None => Some(None),
        Some(t) if t > 0.0 && t <= 100.0 => Some(Some(t)),
        Some(t) => {
            ctx.at_value(
                "spec.scaling.cpu.targetCpu",
                format!("`spec.scaling.cpu.targetCpu` is {t}, but must be above 0 and at most 100"),
                "a target CPU percent, e.g. `targetCpu: 60`; remove it for step scaling only",
            );
            None
        }
    };
    let stabilization_window =
        ctx.duration_or(&cpu.stabilization_window, "spec.scaling.cpu.stabilizationWindow", Duration::from_secs(300));
    let tolerance = match cpu.tolerance {
        None => Some(0.1),
        Some(t) if (0.0..1.0).contains(&t) => Some(t),
        Some(t) => {
            ctx.at_value(
                "spec.scaling.cpu.tolerance",
                format!("`spec.scaling.cpu.tolerance` is {t}, but must be at least 0 and below 1"),
                "a fraction of the target, e.g. `0.1` for ±10%",
            );
            None
        }
    };
    let max_data_age_path = "spec.scaling.cpu.maxDataAge";
    let max_data_age = ctx.duration_or(&cpu.max_data_age, max_data_age_path, Duration::from_secs(180)).and_then(|d| {
        if d.is_zero() {
            ctx.at_value(
                max_data_age_path,
                "`spec.scaling.cpu.maxDataAge` is zero: every alarm state would be too old to act on",
                "use a duration longer than the alarm periods, e.g. `3m`",
            );
            None
        } else {
            Some(d)
        }
    });
    let missing_data = match cpu.missing_data.as_deref() {
        None => Some(MissingData::Missing),
        Some(v) => ctx
            .one_of(v, "spec.scaling.cpu.missingData", &["missing", "ignore", "breaching", "notBreaching"])
            .and_then(MissingData::from_aws),
    };
    let out_path = join_key(base, "scaleOut");
    let in_path = join_key(base, "scaleIn");
    let scale_out = ctx
        .required(&cpu.scale_out, &out_path, "add `scaleOut:` with at least a `threshold`, e.g. `threshold: 70`")
        .and_then(|r| alarm_rule(ctx, r, &out_path, Duration::from_secs(60)));
    let scale_in = ctx
        .required(&cpu.scale_in, &in_path, "add `scaleIn:` with at least a `threshold`, e.g. `threshold: 30`")
        .and_then(|r| alarm_rule(ctx, r, &in_path, Duration::from_secs(300)));
    if let (Some(o), Some(i)) = (&scale_out, &scale_in)
        && i.threshold >= o.threshold
    {
        ctx.at_value(
            "spec.scaling.cpu.scaleIn.threshold",
            format!(
                "`scaleIn.threshold` ({}) is not below `scaleOut.threshold` ({}): both alarms could fire at once",
                i.threshold, o.threshold
            ),
            "scale in below the scale-out threshold, with a gap, e.g. scaleOut 70 and scaleIn 30",
        );
        return None;
    }
    Some(CpuScaling {
        scale_out: scale_out?,
        scale_in: scale_in?,
        missing_data: missing_data?,
        target_cpu: target_cpu?,
        stabilization_window: stabilization_window?,
        tolerance: tolerance?,
        max_data_age: max_data_age?,
    })
}

/// CloudWatch's limit on evaluation periods × period for minute alarms.
const MAX_EVALUATION_RANGE: Duration = Duration::from_secs(24 * 3600);

fn alarm_rule(ctx: &mut DocCtx, raw: &RawAlarmRule, path: &str, default_cooldown: Duration) -> Option<AlarmRule> {
    let threshold_path = join_key(path, "threshold");
    let threshold = ctx
        .required(&raw.threshold, &threshold_path, "add the CPU percent that triggers this alarm, e.g. `threshold: 70`")
        .copied()
        .and_then(|t| {
            if (0.0..=100.0).contains(&t) {
                Some(t)
            } else {
                ctx.at_value(
                    &threshold_path,
                    format!("`{threshold_path}` is {t}, but must be between 0 and 100"),
                    "a CPU threshold is a percent of the service's reserved CPU, 0 to 100",
                );
                None
            }
        });
    let period_path = join_key(path, "period");
    let period = ctx.duration_or(&raw.period, &period_path, Duration::from_secs(60)).and_then(|p| {
        let ms = p.as_millis();
        if ms == 10_000 || ms == 30_000 || (ms > 0 && ms % 60_000 == 0) {
            Some(p)
        } else {
            ctx.at_value(
                &period_path,
                format!(
                    "`{period_path}` is {}, which CloudWatch does not accept as an alarm period",
                    format_duration(p)
                ),
                "use `10s`, `30s` or a multiple of a minute (`1m`, `2m`, `5m`, ...)",
            );
            None
        }
    });
    let eval_path = join_key(path, "evaluationPeriods");
    let evaluation_periods = ctx.int_or(
        raw.evaluation_periods,
        &eval_path,
        1,
        i64::MAX,
        1,
        "the number of recent periods the alarm looks at, at least 1",
    );
    let dta_path = join_key(path, "datapointsToAlarm");
    let datapoints_to_alarm = match (raw.datapoints_to_alarm, evaluation_periods) {
        (None, e) => e,
        (Some(d), e) => ctx
            .int(d, &dta_path, 1, i64::MAX, "the number of breaching periods that fire the alarm, at least 1")
            .and_then(|d| match e {
                Some(e) if d > e => {
                    ctx.at_value(
                        &dta_path,
                        format!("`{dta_path}` ({d}) is more than `evaluationPeriods` ({e}): the alarm could never fire"),
                        format!("an alarm only counts the periods it evaluates: set `datapointsToAlarm` to at most {e}, or raise `evaluationPeriods`"),
                    );
                    None
                }
                _ => Some(d),
            }),
    };
    if let (Some(p), Some(e)) = (period, evaluation_periods)
        && p.checked_mul(e).is_none_or(|range| range > MAX_EVALUATION_RANGE)
    {
        ctx.at_value(
            &eval_path,
            format!(
                "`{eval_path}` ({e}) × `period` ({}) is more than one day, CloudWatch's limit for an alarm",
                format_duration(p)
            ),
            "lower `evaluationPeriods` or `period`",
        );
        return None;
    }
    let step_path = join_key(path, "step");
    let step = match &raw.step {
        None => Some(Step::Tasks(1)),
        Some(s) => step(ctx, s, &step_path),
    };
    let cooldown = ctx.duration_or(&raw.cooldown, &join_key(path, "cooldown"), default_cooldown);
    Some(AlarmRule {
        threshold: threshold?,
        period: period?,
        evaluation_periods: evaluation_periods?,
        datapoints_to_alarm: datapoints_to_alarm?,
        step: step?,
        cooldown: cooldown?,
    })
}

fn step(ctx: &mut DocCtx, raw: &RawStep, path: &str) -> Option<Step> {
    const HELP: &str = "write a number of tasks like `2`, or a percent of the current count like `\"50%\"`";
    match raw {
        RawStep::Tasks(n) => ctx.int(*n, path, 1, i64::MAX, HELP).map(Step::Tasks),
        RawStep::Text(text) => {
            let t = text.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<i64>() {
                    Ok(p) if p >= 1 && p <= i64::from(u32::MAX) => Some(Step::Percent(p as u32)),
                    Ok(p) => {
                        ctx.at_value(path, format!("`{path}` is {p}%, but a percent step must be at least 1%"), HELP);
                        None
                    }
                    Err(_) => {
                        ctx.at_value(path, format!("`{path}` `{text}` is not a whole percent"), HELP);
                        None
                    }
                }
            } else if let Ok(n) = t.parse::<i64>() {
                ctx.int(n, path, 1, i64::MAX, HELP).map(Step::Tasks)
            } else {
                ctx.at_value(path, format!("`{path}` `{text}` is neither a number of tasks nor a percent"), HELP);
                None
            }
        }
    }
}
