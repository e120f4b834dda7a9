//! The planner's output: changes to make in the cloud, each with its reason.

use crate::desired::{GroupId, ServiceId, TerminationHook};
use crate::observed::{AlarmDefinition, Comparison, Target};

/// One write to the cloud. Changes carry everything the cloud needs to
/// apply them, so applying never re-reads desired state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Change {
    /// ECS UpdateService(desiredCount).
    SetDesiredCount { service: ServiceId, from: u32, to: u32 },
    /// ELBv2 RegisterTargets.
    RegisterTargets { region: String, target_group_arn: String, targets: Vec<Target> },
    /// ELBv2 DeregisterTargets, always with ports.
    DeregisterTargets { region: String, target_group_arn: String, targets: Vec<Target> },
    /// CloudWatch PutMetricAlarm, tagged as ballast's.
    PutAlarm { region: String, alarm: AlarmDefinition, create: bool },
    /// CloudWatch TagResource(managed-by=ballast) on an existing alarm that
    /// lacks the tag: PutMetricAlarm ignores tags when it updates.
    TagAlarm { region: String, name: String, arn: String },
    /// Auto Scaling SetDesiredCapacity.
    SetDesiredCapacity { group: GroupId, from: u32, to: u32 },
    /// Auto Scaling TerminateInstanceInAutoScalingGroup, decrementing the
    /// desired capacity: scale-in of an instance known to be empty.
    TerminateInstance { group: GroupId, instance_id: String },
    /// Auto Scaling UpdateAutoScalingGroup(VPCZoneIdentifier).
    SetGroupSubnets { group: GroupId, from: Vec<String>, to: Vec<String> },
    /// ECS UpdateTaskProtection(protectionEnabled, expiresInMinutes) on
    /// tasks of the service: scale-in protection on (`minutes` of it) so
    /// that ECS stops only the tasks ballast chose, or off (`minutes`
    /// `None`) for the tasks ballast drained and hands to ECS to stop.
    SetTaskProtection { service: ServiceId, tasks: Vec<String>, minutes: Option<u32> },
    /// Auto Scaling SuspendProcesses: processes that would act on a group
    /// ballast sizes behind its back (`AZRebalance`).
    SuspendProcesses { group: GroupId, processes: Vec<String> },
    /// Auto Scaling PutLifecycleHook(autoscaling:EC2_INSTANCE_TERMINATING)
    /// named [`crate::desired::TERMINATION_HOOK_NAME`]: creates the group's
    /// termination hook or puts it back as declared.
    PutLifecycleHook { group: GroupId, hook: TerminationHook, create: bool },
    /// ECS UpdateContainerInstancesState(DRAINING) on the container
    /// instance of an instance in `Terminating:Wait` whose tasks' targets
    /// have drained: ECS places their replacements elsewhere.
    DrainContainerInstance { region: String, cluster: String, container_instance_arn: String, instance_id: String },
    /// Auto Scaling RecordLifecycleActionHeartbeat for ballast's hook: the
    /// instance's drain takes longer than part of the heartbeat timeout.
    RecordLifecycleActionHeartbeat { group: GroupId, instance_id: String },
    /// Auto Scaling CompleteLifecycleAction(CONTINUE) for ballast's hook:
    /// no task is left on the instance, it may terminate.
    CompleteLifecycleAction { group: GroupId, instance_id: String },
    /// ECS TagResource([`crate::cloud::marks::DEPLOYMENT_SURGE`]) on the
    /// service: which desired counts ballast set during a deployment stand
    /// for which base count, written before the count it describes.
    MarkSurge { service: ServiceId, service_arn: String, mark: crate::observed::SurgeMark },
}

/// What kind of change, as a stable metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    DesiredCount,
    RegisterTargets,
    DeregisterTargets,
    Alarm,
    Capacity,
    Subnets,
    TaskProtection,
    Processes,
    LifecycleHook,
    Termination,
    SurgeMark,
}

impl ChangeKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::DesiredCount => "desired_count",
            ChangeKind::RegisterTargets => "register_targets",
            ChangeKind::DeregisterTargets => "deregister_targets",
            ChangeKind::Alarm => "alarm",
            ChangeKind::Capacity => "capacity",
            ChangeKind::Subnets => "subnets",
            ChangeKind::TaskProtection => "task_protection",
            ChangeKind::Processes => "processes",
            ChangeKind::LifecycleHook => "lifecycle_hook",
            ChangeKind::Termination => "termination",
            ChangeKind::SurgeMark => "surge_mark",
        }
    }
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::SetDesiredCount { .. } => ChangeKind::DesiredCount,
            Change::RegisterTargets { .. } => ChangeKind::RegisterTargets,
            Change::DeregisterTargets { .. } => ChangeKind::DeregisterTargets,
            Change::PutAlarm { .. } | Change::TagAlarm { .. } => ChangeKind::Alarm,
            Change::SetDesiredCapacity { .. } | Change::TerminateInstance { .. } => ChangeKind::Capacity,
            Change::SetGroupSubnets { .. } => ChangeKind::Subnets,
            Change::SetTaskProtection { .. } => ChangeKind::TaskProtection,
            Change::SuspendProcesses { .. } => ChangeKind::Processes,
            Change::PutLifecycleHook { .. } => ChangeKind::LifecycleHook,
            Change::DrainContainerInstance { .. }
            | Change::RecordLifecycleActionHeartbeat { .. }
            | Change::CompleteLifecycleAction { .. } => ChangeKind::Termination,
            Change::MarkSurge { .. } => ChangeKind::SurgeMark,
        }
    }
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        fn list(targets: &[Target]) -> String {
            targets.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
        }
        match self {
            Change::SetDesiredCount { service, from, to } => {
                write!(f, "service {service}: desired count {from} -> {to}")
            }
            Change::RegisterTargets { target_group_arn, targets, .. } => {
                write!(f, "target group {}: register {}", short_arn(target_group_arn), list(targets))
            }
            Change::DeregisterTargets { target_group_arn, targets, .. } => {
                write!(f, "target group {}: deregister {}", short_arn(target_group_arn), list(targets))
            }
            Change::PutAlarm { alarm, create, .. } => {
                let verb = if *create { "create" } else { "update" };
                write!(
                    f,
                    "alarm {}: {verb} ({} {} {} for {} of {} x {}s)",
                    alarm.name,
                    alarm.metric_name,
                    comparison_symbol(&alarm.comparison),
                    alarm.threshold,
                    alarm.datapoints_to_alarm,
                    alarm.evaluation_periods,
                    alarm.period_secs
                )
            }
            Change::TagAlarm { name, .. } => write!(f, "alarm {name}: tag managed-by=ballast"),
            Change::MarkSurge { service, mark, .. } => {
                let (count, base) = mark.counts.first().copied().unwrap_or_default();
                write!(
                    f,
                    "service {service}: mark desired count {count} as base {base} plus a surge of {} during {}",
                    count.saturating_sub(base),
                    mark.deployment
                )
            }
            Change::SetDesiredCapacity { group, from, to } => {
                write!(f, "auto scaling group {group}: desired capacity {from} -> {to}")
            }
            Change::TerminateInstance { group, instance_id } => {
                write!(f, "auto scaling group {group}: terminate empty instance {instance_id}")
            }
            Change::SetGroupSubnets { group, from, to } => {
                write!(f, "auto scaling group {group}: subnets [{}] -> [{}]", from.join(", "), to.join(", "))
            }
            Change::SetTaskProtection { service, tasks, minutes } => {
                let ids = tasks.iter().map(|t| short_task(t)).collect::<Vec<_>>().join(", ");
                match minutes {
                    Some(m) => write!(f, "service {service}: protect task(s) {ids} from scale-in for {m} min"),
                    None => write!(f, "service {service}: remove scale-in protection from drained task(s) {ids}"),
                }
            }
            Change::SuspendProcesses { group, processes } => {
                write!(f, "auto scaling group {group}: suspend {}", processes.join(", "))
            }
            Change::PutLifecycleHook { group, hook, create } => {
                let verb = if *create { "create" } else { "put back" };
                write!(
                    f,
                    "auto scaling group {group}: {verb} termination lifecycle hook {} (heartbeat timeout {} s, default \
                     result {})",
                    crate::desired::TERMINATION_HOOK_NAME,
                    hook.heartbeat_timeout.as_secs(),
                    hook.default_result
                )
            }
            Change::DrainContainerInstance { cluster, instance_id, .. } => {
                write!(f, "cluster {cluster}: set the container instance on {instance_id} to DRAINING")
            }
            Change::RecordLifecycleActionHeartbeat { group, instance_id } => {
                write!(f, "auto scaling group {group}: record a heartbeat for terminating instance {instance_id}")
            }
            Change::CompleteLifecycleAction { group, instance_id } => {
                write!(f, "auto scaling group {group}: complete the lifecycle action of {instance_id} (CONTINUE)")
            }
        }
    }
}

/// `targetgroup/NAME/ID` of an ARN, or the whole string.
pub fn short_arn(arn: &str) -> &str {
    arn.split_once(":targetgroup/").map(|(_, rest)| rest.split('/').next().unwrap_or(rest)).unwrap_or(arn)
}

/// The task ID of a task ARN (`arn:…:task/CLUSTER/ID`), or the whole string.
pub fn short_task(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

fn comparison_symbol(op: &Comparison) -> &str {
    match op {
        Comparison::GreaterThanOrEqualToThreshold => ">=",
        Comparison::GreaterThanThreshold => ">",
        Comparison::LessThanThreshold => "<",
        Comparison::LessThanOrEqualToThreshold => "<=",
        Comparison::Other(other) => other,
    }
}
