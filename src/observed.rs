//! Observed state: what a [`Cloud`](crate::cloud::Cloud) saw in one pass.
//!
//! These are ballast's own types; the AWS adapter maps SDK types into them
//! and the simulated cloud builds them directly. A resource that could not
//! be read is an `Err(ResourceError)` in its map, so one failing resource
//! never hides the others.

use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::desired::{GroupId, MissingData, ServiceId, TargetGroupId};

/// Why one resource could not be observed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize)]
pub enum ResourceError {
    #[error("not found: {0}")]
    NotFound(String),
    #[error("could not be read: {0}")]
    Unavailable(String),
}

/// Everything one pass observed, keyed as the desired state names it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    pub services: BTreeMap<ServiceId, Result<ObservedService, ResourceError>>,
    pub target_groups: BTreeMap<TargetGroupId, Result<ObservedTargetGroup, ResourceError>>,
    /// Alarms by (region, name). An absent alarm simply does not exist.
    pub alarms: BTreeMap<(String, String), Result<ObservedAlarm, ResourceError>>,
    /// Latest average CPU per service, where asked for.
    /// `Ok(None)`: CloudWatch has no datapoint; `Err`: it could not be read.
    pub cpu: BTreeMap<ServiceId, Result<Option<MetricSample>, ResourceError>>,
    pub groups: BTreeMap<GroupId, Result<ObservedGroup, ResourceError>>,
}

/// One metric datapoint.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    pub value: f64,
    /// Start of the period the datapoint covers.
    pub at: SystemTime,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedService {
    pub arn: String,
    pub status: ServiceStatus,
    pub desired_count: u32,
    pub running_count: u32,
    pub pending_count: u32,
    /// A deployment is rolling out (more than one deployment, or the
    /// primary one not yet completed).
    pub deploying: bool,
    pub task_definition: String,
    /// CPU units and MiB of the task definition, where known.
    pub task_size: Option<TaskSize>,
    /// Target group ARNs in the service's own `loadBalancers` (ECS then
    /// registers targets itself).
    pub load_balancer_target_groups: Vec<String>,
    /// Application Auto Scaling has a scalable target on the desired count.
    pub scalable_target: bool,
    /// The service's tasks that are not yet fully stopped, plus those that
    /// stopped recently (so stale targets can still be attributed).
    pub tasks: Vec<ObservedTask>,
    /// When ballast last scaled the service, from the tags it left on it.
    pub scaling_marks: ScalingMarks,
    /// Whether the serving tasks' scale-in protection was read
    /// (GetTaskProtection): each task's [`ObservedTask::protected_until`]
    /// means something only when it was.
    pub protection: ProtectionRead,
    /// The ID of the service's PRIMARY deployment (`ecs-svc/…`), what
    /// ECS writes as `startedBy` on the tasks it starts for it.
    pub primary_deployment: Option<String>,
    /// The deployment configuration's `maximumPercent`, where read: how
    /// many tasks (as a percentage of the desired count) a deployment may
    /// run at once. At 100 a deployment can start no new task until an
    /// old one stops.
    pub maximum_percent: Option<u32>,
    /// The counts ballast set while surging a deployment, read back from
    /// the service's tags ([`crate::cloud::marks`]).
    pub surge_mark: Option<SurgeMark>,
}

/// The desired counts ballast set during a deployment and the base count
/// each stands for (the count without the deployment's surge): the newest
/// first. Only the named deployment's counts mean anything.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SurgeMark {
    /// The deployment (`ecs-svc/…`) the counts were set during.
    pub deployment: String,
    /// (desired count, base count), newest first.
    pub counts: Vec<(u32, u32)>,
}

/// Whether a service's task scale-in protection was read this pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ProtectionRead {
    /// The scope did not ask for it: ballast does not manage the
    /// protection of this service's tasks, and a scale-in is the plain
    /// desired-count change (ECS chooses the tasks).
    #[default]
    NotAsked,
    /// Read (or reused from a read of the last few minutes): every serving
    /// task's `protected_until` is what ECS reported. (A failed read makes
    /// the whole service unreadable, as a failed read of its tasks does.)
    Read,
}

/// The last scale-out and scale-in ballast made on a service, each with
/// the count it set, read back from the service's tags
/// ([`crate::cloud::marks`]): the history a process that starts needs to
/// keep the cooldowns and the stabilisation window. Absent when ballast
/// never scaled the service that way (or the tag was unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScalingMarks {
    pub last_out: Option<(SystemTime, u32)>,
    pub last_in: Option<(SystemTime, u32)>,
}

/// Where ECS has an ECS service: serving, being deleted, or deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceStatus {
    Active,
    /// Deleted while it still has tasks; they are being stopped.
    Draining,
    Inactive,
    /// A status this version does not know, as ECS wrote it.
    Other(String),
}

/// As ECS writes it: `ACTIVE`, `DRAINING`, `INACTIVE`.
impl std::fmt::Display for ServiceStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServiceStatus::Active => f.write_str("ACTIVE"),
            ServiceStatus::Draining => f.write_str("DRAINING"),
            ServiceStatus::Inactive => f.write_str("INACTIVE"),
            ServiceStatus::Other(s) => f.write_str(s),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskSize {
    pub cpu: u32,
    pub memory: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum TaskStatus {
    Provisioning,
    Pending,
    Activating,
    Running,
    Deactivating,
    Stopping,
    Deprovisioning,
    Stopped,
}

impl TaskStatus {
    /// Whether the task has reached RUNNING (and may since have stopped):
    /// such a task held its host ports, so its targets can be its own.
    pub fn has_started(self) -> bool {
        self >= TaskStatus::Running
    }

    pub fn from_aws(s: &str) -> Self {
        match s {
            "PROVISIONING" => TaskStatus::Provisioning,
            "PENDING" => TaskStatus::Pending,
            "ACTIVATING" => TaskStatus::Activating,
            "RUNNING" => TaskStatus::Running,
            "DEACTIVATING" => TaskStatus::Deactivating,
            "STOPPING" => TaskStatus::Stopping,
            "DEPROVISIONING" => TaskStatus::Deprovisioning,
            _ => TaskStatus::Stopped,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedTask {
    pub arn: String,
    pub last_status: TaskStatus,
    /// RUNNING or STOPPED: where ECS is taking the task.
    pub desired_status: TaskStatus,
    /// EC2 instance the task is placed on (EC2 launch type).
    pub instance_id: Option<String>,
    /// The task's private IPv4 address (awsvpc network mode).
    pub private_ip: Option<String>,
    pub bindings: Vec<PortBinding>,
    pub started_at: Option<SystemTime>,
    /// ECS task scale-in protection: when it expires while it is on
    /// (GetTaskProtection's `expirationDate`), `None` when it is off or
    /// was not read (see [`ObservedService::protection`]).
    pub protected_until: Option<SystemTime>,
    /// What started the task: for a service's task, the ID of its
    /// deployment (`startedBy`).
    pub started_by: Option<String>,
}

impl ObservedTask {
    /// Running and meant to keep running: a task that should receive traffic.
    pub fn is_serving(&self) -> bool {
        self.last_status == TaskStatus::Running && self.desired_status == TaskStatus::Running
    }

    /// The host port the task exposes for a container port.
    pub fn host_port(&self, container_name: &str, container_port: u16) -> Option<u16> {
        self.bindings
            .iter()
            .find(|b| b.container_name == container_name && b.container_port == container_port)
            .map(|b| b.host_port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortBinding {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedTargetGroup {
    pub arn: String,
    pub name: String,
    pub target_type: TargetGroupType,
    pub port: Option<u16>,
    pub targets: Vec<ObservedTarget>,
}

/// What a target group's targets are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetGroupType {
    /// EC2 instance ids.
    Instance,
    /// IP addresses.
    Ip,
    Lambda,
    /// An Application Load Balancer.
    Alb,
    /// A type this version does not know, as ELBv2 wrote it.
    Other(String),
}

/// A registered target: id and port together identify it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Target {
    /// Instance id or IP address.
    pub id: String,
    pub port: u16,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.id, self.port)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTarget {
    pub target: Target,
    pub health: TargetHealth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum TargetHealth {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
}

impl TargetHealth {
    pub fn from_aws(s: &str) -> Self {
        match s {
            "initial" => TargetHealth::Initial,
            "healthy" => TargetHealth::Healthy,
            "unhealthy" => TargetHealth::Unhealthy,
            "unused" => TargetHealth::Unused,
            "draining" => TargetHealth::Draining,
            _ => TargetHealth::Unavailable,
        }
    }
}

/// The parts of a CloudWatch metric alarm ballast manages. Two alarms
/// whose managed parts are equal need no write (see
/// [`crate::plan::alarms::differences`]).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDefinition {
    pub name: String,
    pub namespace: String,
    pub metric_name: String,
    pub statistic: Statistic,
    /// Sorted by name.
    pub dimensions: Vec<(String, String)>,
    pub period_secs: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: Comparison,
    pub missing_data: MissingData,
    pub description: String,
    /// The alarm's actions. ballast declares none and never compares them:
    /// when it corrects an alarm it puts back the actions it read (an SNS
    /// page someone added stays), since PutMetricAlarm replaces them all.
    pub actions: AlarmActions,
}

impl AlarmDefinition {
    /// An alarm on `service`'s average CPU (`AWS/ECS` `CPUUtilization` by
    /// cluster and service name, the metric ECS publishes), alarming on
    /// one 60 s period at or above `threshold`, missing data ignored, no
    /// description and no actions: callers set what differs.
    pub fn service_cpu(name: impl Into<String>, service: &ServiceId, threshold: f64) -> AlarmDefinition {
        AlarmDefinition {
            name: name.into(),
            namespace: "AWS/ECS".into(),
            metric_name: "CPUUtilization".into(),
            statistic: Statistic::Average,
            dimensions: vec![
                ("ClusterName".into(), service.cluster.clone()),
                ("ServiceName".into(), service.service.clone()),
            ],
            period_secs: 60,
            evaluation_periods: 1,
            datapoints_to_alarm: 1,
            threshold,
            comparison: Comparison::GreaterThanOrEqualToThreshold,
            missing_data: MissingData::Missing,
            description: String::new(),
            actions: AlarmActions::default(),
        }
    }
}

/// The ARNs an alarm notifies or acts on, by state it enters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AlarmActions {
    pub alarm: Vec<String>,
    pub ok: Vec<String>,
    pub insufficient_data: Vec<String>,
}

/// How an alarm aggregates the datapoints of one period. Named as
/// CloudWatch names them: the names go back to CloudWatch as they are, and
/// the plan shows (and serializes) them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statistic {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    /// A percentile or trimmed statistic (`p90`, `tm99`, …): CloudWatch's
    /// ExtendedStatistic.
    Extended(String),
}

impl Statistic {
    pub fn as_aws(&self) -> &str {
        match self {
            Statistic::SampleCount => "SampleCount",
            Statistic::Average => "Average",
            Statistic::Sum => "Sum",
            Statistic::Minimum => "Minimum",
            Statistic::Maximum => "Maximum",
            Statistic::Extended(s) => s,
        }
    }

    /// A Statistic name, or else an ExtendedStatistic.
    pub fn from_aws(s: &str) -> Self {
        match s {
            "SampleCount" => Statistic::SampleCount,
            "Average" => Statistic::Average,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            other => Statistic::Extended(other.to_string()),
        }
    }
}

/// How an alarm compares the statistic with its threshold. Named as
/// CloudWatch names them (see [`Statistic`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
    /// Anything else CloudWatch has (the anomaly-detection bands), as it
    /// wrote it.
    Other(String),
}

impl Comparison {
    pub fn as_aws(&self) -> &str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            Comparison::GreaterThanThreshold => "GreaterThanThreshold",
            Comparison::LessThanThreshold => "LessThanThreshold",
            Comparison::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
            Comparison::Other(s) => s,
        }
    }

    pub fn from_aws(s: &str) -> Self {
        match s {
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            other => Comparison::Other(other.to_string()),
        }
    }
}

/// Both print and serialize as CloudWatch's name, as the plan always showed them.
macro_rules! named_as_aws {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_aws())
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_aws())
            }
        }
    )*};
}
named_as_aws!(Statistic, Comparison);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn from_aws(s: &str) -> Self {
        match s {
            "OK" => AlarmState::Ok,
            "ALARM" => AlarmState::Alarm,
            _ => AlarmState::InsufficientData,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedAlarm {
    pub definition: AlarmDefinition,
    pub state: AlarmState,
    pub state_updated: SystemTime,
    /// The alarm's ARN: what CloudWatch TagResource names.
    pub arn: String,
    /// Whether the alarm carries ballast's `managed-by` tag, which
    /// PutMetricAlarm sets only when it creates the alarm; `None` when
    /// its tags were not read.
    pub managed_by_ballast: Option<bool>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedGroup {
    pub arn: String,
    pub min_size: u32,
    pub max_size: u32,
    pub desired_capacity: u32,
    /// Subnet ids of the group's VPCZoneIdentifier, in AWS's order.
    pub subnets: Vec<String>,
    pub instances: Vec<ObservedInstance>,
    /// ECS capacity-provider managed scaling drives this group (the group
    /// carries the `AmazonECSManaged` tag).
    pub managed_scaling: bool,
    /// When ballast last changed the group's capacity, from the tag it
    /// left on it ([`crate::cloud::marks`]); `None` if it never did.
    pub last_capacity_change: Option<SystemTime>,
    /// The group's suspended Auto Scaling processes (`AZRebalance`,
    /// `Launch`, ...), sorted.
    pub suspended_processes: Vec<String>,
    /// ballast's termination lifecycle hook on the group
    /// ([`crate::desired::TERMINATION_HOOK_NAME`]), as DescribeLifecycleHooks
    /// reports it; `None` if the group has none.
    pub termination_hook: Option<crate::desired::TerminationHook>,
}

/// The Auto Scaling process that rebalances a group's instances across
/// its zones.
pub const AZ_REBALANCE: &str = "AZRebalance";

impl ObservedGroup {
    /// Auto Scaling's AZRebalance runs on the group: after a zone change
    /// (or an unbalanced termination) it launches and terminates instances
    /// by itself. Suspending `Launch` stops it too.
    pub fn az_rebalance_active(&self) -> bool {
        !self.suspended_processes.iter().any(|p| p == AZ_REBALANCE || p == "Launch")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInstance {
    pub id: String,
    pub zone: String,
    pub lifecycle_state: Lifecycle,
    pub healthy: bool,
    /// Tasks ECS reports on this instance (running + pending), where the
    /// instance is registered in a cluster.
    pub tasks: Option<u32>,
    /// Its subnet, as the ECS agent registered it (`ecs.subnet-id`), where
    /// the instance is registered in the cluster; `None` until then.
    pub subnet: Option<String>,
    /// Its container instance in the group's cluster, where registered.
    pub container_instance: Option<ContainerInstance>,
}

/// An instance's registration in an ECS cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInstance {
    pub arn: String,
    /// ECS status `DRAINING`: no new task is placed there, and its service
    /// tasks are replaced elsewhere.
    pub draining: bool,
}

impl ObservedInstance {
    /// Counts toward capacity: launching or in service.
    pub fn is_active(&self) -> bool {
        matches!(
            self.lifecycle_state,
            Lifecycle::Pending | Lifecycle::PendingWait | Lifecycle::PendingProceed | Lifecycle::InService
        )
    }
}

/// Where an instance is in its Auto Scaling lifecycle. `…Wait` states
/// hold for a lifecycle hook, `…Proceed` ones follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    Pending,
    PendingWait,
    PendingProceed,
    InService,
    Terminating,
    TerminatingWait,
    TerminatingProceed,
    Terminated,
    Detaching,
    Detached,
    EnteringStandby,
    Standby,
    /// Any other state (warm pools, root-volume replacement, …), as Auto
    /// Scaling wrote it.
    Other(String),
}
