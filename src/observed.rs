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
    pub cpu: BTreeMap<ServiceId, Option<MetricSample>>,
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
    /// ACTIVE, DRAINING or INACTIVE.
    pub status: String,
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
    /// `instance`, `ip`, `lambda` or `alb`.
    pub target_type: String,
    pub port: Option<u16>,
    pub targets: Vec<ObservedTarget>,
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
/// with equal definitions need no write.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlarmDefinition {
    pub name: String,
    pub namespace: String,
    pub metric_name: String,
    pub statistic: String,
    /// Sorted by name.
    pub dimensions: Vec<(String, String)>,
    pub period_secs: u32,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    /// CloudWatch's ComparisonOperator, e.g. `GreaterThanOrEqualToThreshold`.
    pub comparison: String,
    pub missing_data: MissingData,
    pub description: String,
}

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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedInstance {
    pub id: String,
    pub zone: String,
    /// Auto Scaling lifecycle state, e.g. `InService`, `Pending`, `Terminating`.
    pub lifecycle_state: String,
    pub healthy: bool,
    /// Tasks ECS reports on this instance (running + pending), where the
    /// instance is registered in a cluster.
    pub tasks: Option<u32>,
}

impl ObservedInstance {
    /// Counts toward capacity: launching or in service.
    pub fn is_active(&self) -> bool {
        matches!(self.lifecycle_state.as_str(), "Pending" | "Pending:Wait" | "Pending:Proceed" | "InService")
    }
}
