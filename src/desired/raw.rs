//! The desired-state documents as serde reads them, before validation.
//!
//! These shapes are deliberately permissive: every field is optional,
//! numbers are wide signed integers or floats, durations and enums are
//! strings. That way a document with several mistakes deserializes anyway
//! and [`super::validate`] can report all of them with their own message
//! ("`containerPort` is 70000, but must be 1-65535") instead of serde
//! stopping at the first one.
//!
//! The same types, through `schemars`, produce the JSON Schema that editors
//! use ([`super::schema`]). The doc comments on fields are that schema's
//! descriptions, so they are written for people editing the YAML; the
//! `schemars` attributes carry what the permissive Rust types cannot say
//! (required fields, ranges, enums, defaults).

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// A ballast `Service` document: one ECS service, the target groups its
/// tasks are registered in, and how its task count is scaled.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields, title = "Service")]
#[schemars(rename = "ServiceDocument")]
pub struct RawServiceDocument {
    /// The format version: `ballast.dev/v1alpha1`.
    #[schemars(required, extend("const" = "ballast.dev/v1alpha1"))]
    pub api_version: Option<String>,
    /// The document kind.
    #[schemars(required, extend("const" = "Service"))]
    pub kind: Option<String>,
    #[schemars(required)]
    pub metadata: Option<RawMetadata>,
    #[schemars(required)]
    pub spec: Option<RawServiceSpec>,
}

/// A ballast `Capacity` document: the Auto Scaling group that hosts an ECS
/// cluster's tasks, and the subnets (zones) it may use.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields, title = "Capacity")]
#[schemars(rename = "CapacityDocument")]
pub struct RawCapacityDocument {
    /// The format version: `ballast.dev/v1alpha1`.
    #[schemars(required, extend("const" = "ballast.dev/v1alpha1"))]
    pub api_version: Option<String>,
    /// The document kind.
    #[schemars(required, extend("const" = "Capacity"))]
    pub kind: Option<String>,
    #[schemars(required)]
    pub metadata: Option<RawMetadata>,
    #[schemars(required)]
    pub spec: Option<RawCapacitySpec>,
}

/// Identifies the document itself (not the AWS resource).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Metadata")]
pub struct RawMetadata {
    /// Unique among documents of the same kind; a lowercase DNS label
    /// (letters, digits and `-`, at most 63 characters), e.g. `app`.
    #[schemars(required, length(min = 1, max = 63), regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"))]
    pub name: Option<String>,
}

/// The ECS service and everything ballast manages for it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "ServiceSpec")]
pub struct RawServiceSpec {
    /// AWS region, e.g. `us-east-2`. Default: the daemon's `--region`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: Option<String>,
    /// Name of the ECS cluster the service runs in (not its ARN).
    #[schemars(required, length(min = 1, max = 255))]
    pub cluster: Option<String>,
    /// Name of the ECS service (not its ARN).
    #[schemars(required, length(min = 1, max = 255))]
    pub service: Option<String>,
    /// When true, ballast keeps observing and reporting but changes nothing.
    #[schemars(extend("default" = false))]
    pub suspend: Option<bool>,
    #[schemars(required)]
    pub tasks: Option<RawTasks>,
    /// Target groups the service's tasks are registered in.
    #[schemars(extend("default" = []))]
    pub target_groups: Option<Vec<RawTargetGroupBinding>>,
    /// CPU-alarm scaling of the task count; needs `tasks.min`/`tasks.max`.
    pub scaling: Option<RawScaling>,
    pub budget: Option<RawBudget>,
    pub take_over: Option<RawServiceTakeOver>,
}

/// How many tasks to run: either a fixed `count`, or a `min`/`max` range
/// within which scaling (or the observed count) decides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["count"]}, {"required": ["min", "max"]}])
)]
#[schemars(rename = "Tasks")]
pub struct RawTasks {
    /// Exactly this many tasks. Not with `min`/`max` or `scaling`.
    #[schemars(range(min = 0))]
    pub count: Option<i64>,
    /// Never fewer tasks than this.
    #[schemars(range(min = 0))]
    pub min: Option<i64>,
    /// Never more tasks than this; at least `min`.
    #[schemars(range(min = 1))]
    pub max: Option<i64>,
}

/// Binds one container port of the service's tasks to a target group.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "TargetGroupBinding")]
pub struct RawTargetGroupBinding {
    /// Target group name, or its full ARN
    /// (`arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`).
    #[schemars(required, length(min = 1))]
    pub target_group: Option<String>,
    /// The container (in the task definition) whose port is registered.
    #[schemars(required, length(min = 1, max = 255))]
    pub container_name: Option<String>,
    /// The container port whose host port (instance targets) or which
    /// itself (ip targets) is registered.
    #[schemars(required, range(min = 1, max = 65535))]
    pub container_port: Option<i64>,
    #[schemars(with = "Option<TargetTypeSchema>", extend("default" = "instance"))]
    pub target_type: Option<String>,
    #[schemars(with = "Option<OwnershipSchema>", extend("default" = "shared"))]
    pub ownership: Option<String>,
    /// Never deregister below this many healthy targets. Unset: never below
    /// the number healthy before the change, and never to zero while any
    /// target is healthy. At most `tasks.max`.
    #[schemars(range(min = 0))]
    pub min_healthy: Option<i64>,
    /// How long after DeregisterTargets the load balancer may still send
    /// new connections to a target: a task ballast scales in is stopped
    /// only once its targets have drained and this long has passed since
    /// they were deregistered. Default `2m` (public reports of NLB targets
    /// receiving connections after deregistration reach about two minutes).
    #[schemars(extend("default" = "2m"))]
    pub propagation_lag: Option<DurationText>,
}

// Only for the schema; the loader reads the value as a string.
/// How targets are registered.
#[derive(JsonSchema)]
#[schemars(rename = "TargetType")]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum TargetTypeSchema {
    /// Register the EC2 instance id with the task's host port.
    Instance,
    /// Register the task's private IP with the container port (awsvpc tasks).
    Ip,
}

// Only for the schema; the loader reads the value as a string.
/// Which targets of the group this binding may remove.
#[derive(JsonSchema)]
#[schemars(rename = "Ownership")]
#[serde(rename_all = "lowercase")]
#[allow(dead_code)]
enum OwnershipSchema {
    /// Other targets may live in the group; ballast only removes targets of
    /// this service.
    Shared,
    /// Every target in the group belongs to this binding; others are removed.
    Exclusive,
}

/// Scaling of the task count.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "Scaling")]
pub struct RawScaling {
    #[schemars(required)]
    pub cpu: Option<RawCpuScaling>,
}

/// Scaling on the service's average CPU (CloudWatch `AWS/ECS`
/// `CPUUtilization`), with one alarm to scale out and one to scale in.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "CpuScaling")]
pub struct RawCpuScaling {
    /// Target CPU percent for proportional scale-out
    /// (desired = ceil(current × cpu / target)). Unset: step scaling only.
    #[schemars(range(max = 100), extend("exclusiveMinimum" = 0))]
    pub target_cpu: Option<f64>,
    /// Scale-in acts on the highest recommendation of this window.
    #[schemars(extend("default" = "5m"))]
    pub stabilization_window: Option<DurationText>,
    /// Relative band around the target within which nothing changes.
    #[schemars(range(min = 0), extend("exclusiveMaximum" = 1, "default" = 0.1))]
    pub tolerance: Option<f64>,
    /// Alarm states or metric values older than this are not acted on.
    #[schemars(extend("default" = "3m"))]
    pub max_data_age: Option<DurationText>,
    /// How the alarms treat missing data points (CloudWatch
    /// `TreatMissingData`).
    #[schemars(with = "Option<MissingDataSchema>", extend("default" = "missing"))]
    pub missing_data: Option<String>,
    /// The alarm that adds tasks.
    #[schemars(required)]
    pub scale_out: Option<RawAlarmRule>,
    /// The alarm that removes tasks; its threshold is below `scaleOut`'s.
    #[schemars(required)]
    pub scale_in: Option<RawAlarmRule>,
}

// Only for the schema; the loader reads the value as a string.
/// How the alarms treat missing data points (CloudWatch `TreatMissingData`).
#[derive(JsonSchema)]
#[schemars(rename = "MissingData")]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum MissingDataSchema {
    /// Missing points are neither breaching nor not breaching; with too few
    /// points the alarm goes to INSUFFICIENT_DATA.
    Missing,
    /// The alarm keeps its current state.
    Ignore,
    /// Missing points count as above the threshold.
    Breaching,
    /// Missing points count as within the threshold.
    NotBreaching,
}

/// One CPU alarm and the scaling action it triggers.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "AlarmRule")]
pub struct RawAlarmRule {
    /// CPU percent (0-100) the average is compared with.
    #[schemars(required, range(min = 0, max = 100))]
    pub threshold: Option<f64>,
    /// Length of one data point: `10s`, `30s` or a multiple of `1m`.
    #[schemars(extend("default" = "1m"))]
    pub period: Option<DurationText>,
    /// How many recent periods the alarm looks at.
    #[schemars(range(min = 1), extend("default" = 1))]
    pub evaluation_periods: Option<i64>,
    /// How many of those periods must breach; default `evaluationPeriods`.
    #[schemars(range(min = 1))]
    pub datapoints_to_alarm: Option<i64>,
    /// Tasks added or removed per action: a number of tasks, or a percent
    /// of the current count like `"50%"` (at least one task).
    #[schemars(extend("default" = 1))]
    pub step: Option<RawStep>,
    /// Time after an action before the next one in the same direction.
    /// Default `1m` for scaleOut, `5m` for scaleIn.
    pub cooldown: Option<DurationText>,
}

/// Per-pass limits on how much ballast changes this service at once.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "ServiceBudget")]
pub struct RawBudget {
    /// Targets deregistered per pass, at most.
    #[schemars(range(min = 1), extend("default" = 1))]
    pub max_deregistrations_per_pass: Option<i64>,
    /// Tasks added or removed per pass, at most.
    #[schemars(range(min = 1), extend("default" = 4))]
    pub max_count_change_per_pass: Option<i64>,
}

/// Fields another actor manages that ballast should take over anyway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "ServiceTakeOver")]
pub struct RawServiceTakeOver {
    /// Correct the desired count even when Application Auto Scaling has a
    /// scalable target on it.
    #[schemars(extend("default" = false))]
    pub desired_count: Option<bool>,
    /// Manage target registrations even when the ECS service lists the
    /// target group in its own `loadBalancers`.
    #[schemars(extend("default" = false))]
    pub load_balancers: Option<bool>,
}

/// The Auto Scaling group behind an ECS cluster.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    deny_unknown_fields,
    extend("oneOf" = [{"required": ["tasksPerInstance"]}, {"required": ["instanceResources"]}])
)]
#[schemars(rename = "CapacitySpec")]
pub struct RawCapacitySpec {
    /// AWS region, e.g. `us-east-2`. Default: the daemon's `--region`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-[0-9]+$"))]
    pub region: Option<String>,
    /// The ECS cluster whose tasks this group hosts; a `Service` document
    /// must use it.
    #[schemars(required, length(min = 1, max = 255))]
    pub cluster: Option<String>,
    /// Name of the Auto Scaling group (not its ARN).
    #[schemars(required, length(min = 1, max = 255))]
    pub auto_scaling_group: Option<String>,
    /// Never fewer instances than this.
    #[schemars(required, range(min = 0))]
    pub min_instances: Option<i64>,
    /// Never more instances than this; at least `minInstances`.
    #[schemars(required, range(min = 0))]
    pub max_instances: Option<i64>,
    /// How many tasks one instance holds (e.g. 1 with static host ports).
    /// Not with `instanceResources`.
    #[schemars(range(min = 1))]
    pub tasks_per_instance: Option<i64>,
    /// One instance's resources, to compute tasks per instance from the
    /// task definition. Not with `tasksPerInstance`.
    pub instance_resources: Option<RawInstanceResources>,
    /// Spare instances kept beyond what the tasks need.
    #[schemars(range(min = 0), extend("default" = 0))]
    pub headroom: Option<i64>,
    /// Time after any capacity change before instances are removed.
    #[schemars(extend("default" = "5m"))]
    pub scale_in_cooldown: Option<DurationText>,
    /// Instances added or removed per pass, at most.
    #[schemars(range(min = 1), extend("default" = 2))]
    pub max_change_per_pass: Option<i64>,
    /// The group's subnets, one per availability zone; at least one
    /// `alwaysOn`.
    #[schemars(required, length(min = 1))]
    pub zones: Option<Vec<RawZone>>,
    /// When true, ballast keeps observing and reporting but changes nothing.
    #[schemars(extend("default" = false))]
    pub suspend: Option<bool>,
    /// When true, ballast suspends the group's AZRebalance process, which
    /// would otherwise launch and terminate instances on its own after a
    /// zone change, stopping their tasks without a drain. When false and
    /// AZRebalance is active, ballast makes no zone change (a conflict).
    #[schemars(extend("default" = true))]
    pub suspend_az_rebalance: Option<bool>,
    /// A termination lifecycle hook ballast creates and keeps on the group:
    /// an instance Auto Scaling terminates, whoever starts it, waits in
    /// `Terminating:Wait` while ballast drains its tasks.
    pub termination_hook: Option<RawTerminationHook>,
    pub take_over: Option<RawCapacityTakeOver>,
}

/// The group's termination lifecycle hook (`PutLifecycleHook` for
/// `autoscaling:EC2_INSTANCE_TERMINATING`).
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "TerminationHook")]
pub struct RawTerminationHook {
    /// How long an instance waits in `Terminating:Wait` without a heartbeat
    /// before Auto Scaling applies `defaultResult` (30s to 2h, AWS's range).
    /// ballast records a heartbeat while a drain takes longer.
    #[schemars(extend("default" = "10m"))]
    pub heartbeat_timeout: Option<DurationText>,
    /// What Auto Scaling does when the timeout passes (both terminate the
    /// instance; `ABANDON` stops the group's other hooks).
    #[schemars(with = "Option<HookResultSchema>", extend("default" = "CONTINUE"))]
    pub default_result: Option<String>,
}

// Only for the schema; the loader reads the value as a string.
/// A lifecycle hook's result.
#[derive(JsonSchema)]
#[schemars(rename = "HookResult")]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum HookResultSchema {
    CONTINUE,
    ABANDON,
}

/// One instance's resources as ECS counts them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "InstanceResources")]
pub struct RawInstanceResources {
    /// CPU units registered by one instance (1024 per vCPU).
    #[schemars(required, range(min = 1))]
    pub cpu: Option<i64>,
    /// Memory registered by one instance, in MiB.
    #[schemars(required, range(min = 1))]
    pub memory: Option<i64>,
}

/// A subnet of the Auto Scaling group, in one availability zone.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(
    deny_unknown_fields,
    extend(
        "if" = {"properties": {"mode": {"const": "onDemand"}}, "required": ["mode"]},
        "then" = {"required": ["whenInstancesAbove"]},
        "else" = {"not": {"required": ["whenInstancesAbove"]}}
    )
)]
#[schemars(rename = "Zone")]
pub struct RawZone {
    /// The subnet id, e.g. `subnet-0a1b2c3d4e5f60001`.
    #[schemars(required, regex(pattern = r"^subnet-([0-9a-f]{8}|[0-9a-f]{17})$"))]
    pub subnet: Option<String>,
    /// The subnet's availability zone, e.g. `us-east-2a`; for messages only.
    pub zone: Option<String>,
    #[schemars(with = "Option<ZoneModeSchema>", extend("default" = "alwaysOn"))]
    pub mode: Option<String>,
    /// `onDemand` only: the zone is added when more instances than this are
    /// needed, and removed after `scaleInCooldown` once they fall back.
    /// Below `maxInstances`.
    #[schemars(range(min = 0))]
    pub when_instances_above: Option<i64>,
}

// Only for the schema; the loader reads the value as a string.
/// When the zone's subnet is part of the group.
#[derive(JsonSchema)]
#[schemars(rename = "ZoneMode")]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
enum ZoneModeSchema {
    /// Always part of the group.
    AlwaysOn,
    /// Part of the group only while more than `whenInstancesAbove`
    /// instances are needed.
    OnDemand,
}

/// Fields another actor manages that ballast should take over anyway.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(deny_unknown_fields)]
#[schemars(rename = "CapacityTakeOver")]
pub struct RawCapacityTakeOver {
    /// Correct the group's capacity even when ECS managed scaling is on.
    #[schemars(extend("default" = false))]
    pub managed_scaling: Option<bool>,
}

/// A duration as written (`15s`, `1h30m`), parsed by
/// [`super::duration::parse_duration`] during validation so a bad one gets
/// a message of its own. A bare number is accepted here and refused there,
/// with a message that asks for a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationText(pub String);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = DurationText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a duration like `15s`, `5m` or `1h30m`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<DurationText, E> {
                Ok(DurationText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DurationText {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "description": "A whole number with a unit ms, s, m or h; parts largest first, e.g. `500ms`, `15s`, `5m`, `1h30m`.",
            "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?([0-9]+ms)?$",
            "minLength": 2,
            "examples": ["15s", "1m", "5m", "1h30m"]
        })
    }
}

/// A scaling step as written: a number of tasks, or a percent string.
#[derive(Debug, Clone, PartialEq)]
pub enum RawStep {
    Tasks(i64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawStep {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = RawStep;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number of tasks like `2` or a percent like `\"50%\"`")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<RawStep, E> {
                Ok(RawStep::Tasks(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<RawStep, E> {
                Ok(RawStep::Tasks(i64::try_from(v).unwrap_or(i64::MAX)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawStep, E> {
                Ok(RawStep::Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawStep {
    fn schema_name() -> Cow<'static, str> {
        "Step".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "A number of tasks (at least 1), or a percent of the current count like \"50%\" (at least one task).",
            "oneOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": "^[0-9]+%$"}
            ]
        })
    }
}
