//! Desired state: what the user declared in YAML, after validation.
//!
//! The YAML documents are read by [`load`] into the *raw* shapes of
//! [`raw`] (what serde sees, permissive so that every mistake can be
//! reported at once), then checked and converted by [`validate`] into the
//! types of this module. Only these validated types reach the planner.
//! Every problem found on the way is a located [`Diagnostic`]
//! ([`diagnostic`]).

pub mod diagnostic;
pub mod duration;
pub mod load;
pub mod positions;
pub mod raw;
pub mod schema;
pub mod validate;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::time::Duration;

pub use diagnostic::{Diagnostic, LoadError};
pub use load::{load_dir, load_str};
pub use schema::json_schema;

/// The `apiVersion` every document must carry.
pub const API_VERSION: &str = "ballast.dev/v1alpha1";

/// Where a document came from, for messages and /status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Origin {
    pub file: PathBuf,
    /// 1-based line of the document's first key.
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// The whole validated desired state of a directory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DesiredState {
    pub services: Vec<Service>,
    pub capacities: Vec<Capacity>,
}

/// Identifies an ECS service in AWS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct ServiceId {
    pub region: String,
    pub cluster: String,
    pub service: String,
}

impl std::fmt::Display for ServiceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.cluster, self.service)
    }
}

/// Identifies an Auto Scaling group in AWS.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct GroupId {
    pub region: String,
    pub name: String,
}

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// A target group as the user named it: by name or by full ARN.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum TargetGroupRef {
    Name(String),
    Arn(String),
}

impl TargetGroupRef {
    /// ARNs start with `arn:`; anything else is a name.
    pub fn parse(s: &str) -> Self {
        if s.starts_with("arn:") { TargetGroupRef::Arn(s.to_string()) } else { TargetGroupRef::Name(s.to_string()) }
    }

    pub fn as_str(&self) -> &str {
        match self {
            TargetGroupRef::Name(s) | TargetGroupRef::Arn(s) => s,
        }
    }

    /// The target group's name: the name itself, or the name part of an
    /// ARN (`arn:…:targetgroup/NAME/ID`).
    pub fn name(&self) -> &str {
        match self {
            TargetGroupRef::Name(s) => s,
            TargetGroupRef::Arn(arn) => {
                arn.split_once(":targetgroup/").and_then(|(_, rest)| rest.split('/').next()).unwrap_or(arn)
            }
        }
    }
}

impl std::fmt::Display for TargetGroupRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A target group reference together with its region.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct TargetGroupId {
    pub region: String,
    pub target_group: TargetGroupRef,
}

/// A `kind: Service` document: one ECS service and what hangs off it.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// `metadata.name`.
    pub name: String,
    pub origin: Origin,
    pub id: ServiceId,
    /// No changes are made for this document; it is still observed.
    pub suspend: bool,
    pub tasks: TaskCount,
    pub target_groups: Vec<TargetGroupBinding>,
    pub scaling: Option<CpuScaling>,
    pub budget: ServiceBudget,
    pub take_over: ServiceTakeOver,
}

/// How many tasks the service should run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCount {
    /// Exactly this many.
    Fixed(u32),
    /// Decided by scaling (or left as observed, clamped) within bounds.
    Range { min: u32, max: u32 },
}

impl TaskCount {
    pub fn min(&self) -> u32 {
        match *self {
            TaskCount::Fixed(n) => n,
            TaskCount::Range { min, .. } => min,
        }
    }
    pub fn max(&self) -> u32 {
        match *self {
            TaskCount::Fixed(n) => n,
            TaskCount::Range { max, .. } => max,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetType {
    /// EC2 instance id + the task's host port.
    Instance,
    /// The task's private IP + the container port (awsvpc tasks).
    Ip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    /// Other targets may live in the group; ballast only removes what it
    /// can attribute to the bound service.
    Shared,
    /// Every target in the group belongs to this binding; foreign targets
    /// are removed.
    Exclusive,
}

/// Binds one container port of the service's tasks to a target group.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetGroupBinding {
    pub target_group: TargetGroupId,
    pub container_name: String,
    pub container_port: u16,
    pub target_type: TargetType,
    pub ownership: Ownership,
    /// Never deregister below this many healthy targets. `None`: never
    /// below the number healthy before the change, and never to zero
    /// while any target is healthy.
    pub min_healthy: Option<u32>,
    /// How long the load balancer may still send new connections to a
    /// deregistered target (`propagationLag`): a task leaving for a
    /// scale-in stops no sooner than this after its deregistration.
    pub propagation_lag: Duration,
}

/// The default `propagationLag`: public reports of NLB targets receiving
/// new connections after DeregisterTargets reach about two minutes
/// (aws/containers-roadmap#470, aws-load-balancer-controller#2366, #3270).
pub const DEFAULT_PROPAGATION_LAG: Duration = Duration::from_secs(120);

/// CPU-alarm scaling of a service's task count.
#[derive(Debug, Clone, PartialEq)]
pub struct CpuScaling {
    pub scale_out: AlarmRule,
    pub scale_in: AlarmRule,
    pub missing_data: MissingData,
    /// Target CPU (percent) for proportional scale-out:
    /// desired = ceil(current × cpu / target). `None`: step scaling only.
    pub target_cpu: Option<f64>,
    /// Scale-in takes the highest recommendation of this window.
    pub stabilization_window: Duration,
    /// Relative band around the target within which nothing changes.
    pub tolerance: f64,
    /// Alarm states or metric values older than this are not acted on.
    pub max_data_age: Duration,
}

/// One of the two CPU alarms of a scaling policy.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmRule {
    /// CPU percent, 0–100.
    pub threshold: f64,
    pub period: Duration,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub step: Step,
    pub cooldown: Duration,
}

/// How far one scaling action moves the task count.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Tasks(u32),
    /// Percent of the current count, at least one task.
    Percent(u32),
}

impl Step {
    /// The number of tasks this step moves from `current`.
    pub fn tasks_from(&self, current: u32) -> u32 {
        match *self {
            Step::Tasks(n) => n,
            Step::Percent(p) => ((u64::from(current) * u64::from(p)).div_ceil(100) as u32).max(1),
        }
    }
}

/// CloudWatch's TreatMissingData.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum MissingData {
    Missing,
    Ignore,
    Breaching,
    NotBreaching,
}

impl MissingData {
    /// The value CloudWatch uses on the wire.
    pub fn as_aws(&self) -> &'static str {
        match self {
            MissingData::Missing => "missing",
            MissingData::Ignore => "ignore",
            MissingData::Breaching => "breaching",
            MissingData::NotBreaching => "notBreaching",
        }
    }

    pub fn from_aws(s: &str) -> Option<Self> {
        Some(match s {
            "missing" => MissingData::Missing,
            "ignore" => MissingData::Ignore,
            "breaching" => MissingData::Breaching,
            "notBreaching" => MissingData::NotBreaching,
            _ => return None,
        })
    }
}

/// Per-pass limits on how much one service may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceBudget {
    pub max_deregistrations_per_pass: u32,
    pub max_count_change_per_pass: u32,
}

impl Default for ServiceBudget {
    fn default() -> Self {
        ServiceBudget { max_deregistrations_per_pass: 1, max_count_change_per_pass: 4 }
    }
}

/// Fields another actor manages that this document explicitly takes over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServiceTakeOver {
    /// Correct the desired count even when Application Auto Scaling
    /// has a scalable target on it.
    pub desired_count: bool,
    /// Manage target registrations even when the ECS service has its own
    /// `loadBalancers` entry for the bound target group.
    pub load_balancers: bool,
}

/// A `kind: Capacity` document: the Auto Scaling group behind a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Capacity {
    pub name: String,
    pub origin: Origin,
    pub group: GroupId,
    /// The ECS cluster whose services' tasks this group hosts.
    pub cluster: String,
    pub suspend: bool,
    pub min_instances: u32,
    pub max_instances: u32,
    pub tasks_per_instance: TasksPerInstance,
    /// Spare instances kept beyond what the tasks need.
    pub headroom: u32,
    pub scale_in_cooldown: Duration,
    pub zones: Vec<Zone>,
    /// Instances added or removed per pass at most.
    pub max_change_per_pass: u32,
    /// Correct capacity even when ECS managed scaling is on for the group.
    pub take_over_managed_scaling: bool,
    /// Suspend the group's AZRebalance process (else: no zone changes
    /// while it is active).
    pub suspend_az_rebalance: bool,
    /// The termination lifecycle hook ballast keeps on the group, if declared.
    pub termination_hook: Option<TerminationHook>,
}

/// A termination lifecycle hook on a group, as declared or as AWS reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TerminationHook {
    #[serde(serialize_with = "seconds")]
    pub heartbeat_timeout: Duration,
    /// `CONTINUE` or `ABANDON`.
    pub default_result: String,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_secs())
}

/// The name of the termination lifecycle hook ballast creates and drains for.
pub const TERMINATION_HOOK_NAME: &str = "ballast-drain";

/// PutLifecycleHook's HeartbeatTimeout range
/// (<https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutLifecycleHook.html>).
pub const HEARTBEAT_TIMEOUT_RANGE: (Duration, Duration) = (Duration::from_secs(30), Duration::from_secs(7200));

/// How many tasks one instance holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TasksPerInstance {
    Fixed(u32),
    /// Computed from the task definition's CPU and memory against these
    /// instance resources (ECS units: 1024 per vCPU, MiB).
    Resources {
        cpu: u32,
        memory: u32,
    },
}

/// A subnet of the group, in one availability zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    pub subnet: String,
    /// For messages only.
    pub zone: Option<String>,
    pub mode: ZoneMode,
}

impl Zone {
    /// A subnet always in the group.
    pub fn always_on(subnet: &str, zone: &str) -> Zone {
        Zone { subnet: subnet.into(), zone: Some(zone.into()), mode: ZoneMode::AlwaysOn }
    }

    /// A subnet in the group only while more than `above` instances are needed.
    pub fn on_demand(subnet: &str, zone: &str, above: u32) -> Zone {
        Zone { subnet: subnet.into(), zone: Some(zone.into()), mode: ZoneMode::OnDemand { above } }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneMode {
    AlwaysOn,
    /// Added to the group when needed instances exceed `above`, removed
    /// again after the capacity's scale-in cooldown once they fall back.
    OnDemand {
        above: u32,
    },
}

impl DesiredState {
    /// The capacity document that covers `cluster` in `region`, if any.
    pub fn capacity_for(&self, region: &str, cluster: &str) -> Option<&Capacity> {
        self.capacities.iter().find(|c| c.group.region == region && c.cluster == cluster)
    }
}
