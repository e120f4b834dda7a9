//! Cloud access behind one trait.
//!
//! [`Cloud`] is everything the controller needs from AWS: observe the
//! resources the desired state names, and apply one [`Change`]. Two
//! implementations: [`sim::SimCloud`], the in-memory simulated cloud that
//! is the embedded default, and [`aws::AwsCloud`], the only code that
//! imports `aws_sdk_*`.
//!
//! # Read calls per pass
//!
//! Both implementations make (the AWS adapter) or record (the simulation)
//! the same reads for a scope, so tests on the simulation can assert API
//! economy. Per region:
//!
//! | reads | calls |
//! |---|---|
//! | services | ECS DescribeServices, 10 services per call, per cluster |
//! | tasks | per cluster with services in scope: ECS ListTasks (RUNNING, then STOPPED; 100 per page) and DescribeTasks, 100 per call; tasks are matched to services by their `group` (`service:NAME`) |
//! | instances of tasks and groups | per cluster: ECS ListContainerInstances (100 per page) and DescribeContainerInstances, 100 per call |
//! | task sizes | ECS DescribeTaskDefinition once per task definition ARN for the life of the process (they are immutable), only for services in `scope.task_sizes` |
//! | other scalers | Application Auto Scaling DescribeScalableTargets (ecs namespace), 50 resource ids per call |
//! | target groups | ELBv2 DescribeTargetGroups once per name (then cached by ARN), 20 names per call; DescribeTargetHealth once per target group |
//! | alarms | CloudWatch DescribeAlarms, 100 names per call |
//! | CPU | CloudWatch GetMetricData, 500 queries per call; with the pass time in the scope, at most once per metric period (60 s) per service, and again once an alarm on the service's CPU changed state since the read (it saw a newer datapoint) |
//! | task protection | per cluster with services in `scope.protection`: ECS GetTaskProtection for the RUNNING tasks, 100 per call; with the pass time in the scope, reused for 5 minutes unless ballast changed a task's protection in the cluster or a task is new |
//! | groups | Auto Scaling DescribeAutoScalingGroups, 50 names per call |
//! | termination hooks | Auto Scaling DescribeLifecycleHooks, one per group whose document declares `terminationHook` |
//!
//! A converged pass makes no write calls. Each change is one write call
//! (chunked where the API wants it), except that a desired-count change is
//! followed by ECS TagResource on the service and a capacity change
//! (SetDesiredCapacity, TerminateInstanceInAutoScalingGroup) by Auto
//! Scaling CreateOrUpdateTags on the group: the [`marks`] that let a
//! process that starts keep the cooldowns. Services are described with
//! their tags (`include: [TAGS]`) and groups come with theirs, so reading
//! the marks back costs no call.

pub mod aws;
pub mod lease;
pub mod marks;
pub mod reuse;
pub mod sim;

use std::future::Future;
use std::time::{Duration, SystemTime};

use crate::desired::{DesiredState, GroupId, ServiceId, TargetGroupId};
use crate::observed::Observed;
use crate::plan::Change;

/// Batch limits of the read calls, from the AWS API models: the contract
/// of the table above, shared by both clouds.
pub mod batch {
    pub const DESCRIBE_SERVICES: usize = 10;
    pub const DESCRIBE_TASKS: usize = 100;
    /// ListTasks and ListContainerInstances page size.
    pub const LIST_PAGE: usize = 100;
    pub const DESCRIBE_CONTAINER_INSTANCES: usize = 100;
    pub const SCALABLE_TARGETS: usize = 50;
    pub const TARGET_GROUP_NAMES: usize = 20;
    pub const ALARM_NAMES: usize = 100;
    pub const METRIC_QUERIES: usize = 500;
    pub const GROUP_NAMES: usize = 50;
    /// GetTaskProtection's task list.
    pub const TASK_PROTECTION: usize = 100;
    /// UpdateTaskProtection's task list.
    pub const UPDATE_TASK_PROTECTION: usize = 10;
}

/// What one pass asks the cloud to observe. Built from the desired state
/// by [`Scope::of`]; the cloud batches its reads over it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub services: Vec<ServiceId>,
    pub target_groups: Vec<TargetGroupId>,
    /// (region, alarm name).
    pub alarms: Vec<(String, String)>,
    /// Services whose average CPU is read from the metric itself.
    pub cpu: Vec<ServiceId>,
    /// Services whose task definition's CPU and memory are needed.
    pub task_sizes: Vec<ServiceId>,
    /// Each group with the ECS cluster its instances join.
    pub groups: Vec<(GroupId, String)>,
    /// Services whose serving tasks' scale-in protection is read
    /// (GetTaskProtection): those whose scale-in ballast drains.
    pub protection: Vec<ServiceId>,
    /// Groups whose termination lifecycle hook is read
    /// (DescribeLifecycleHooks): those whose document declares one.
    pub hooks: Vec<GroupId>,
    /// The pass's time. With it, reads that stay true for a while are
    /// reused ([`reuse`]): CPU within one metric period, task protection
    /// for a few minutes unless ballast changed it or a task is new.
    /// Without it (a one-off observation), everything is read.
    pub now: Option<SystemTime>,
}

impl Scope {
    /// Everything `desired` refers to, without duplicates, in a stable order.
    pub fn of(desired: &DesiredState) -> Scope {
        let mut scope = Scope::default();
        for svc in &desired.services {
            scope.services.push(svc.id.clone());
            scope.protection.push(svc.id.clone());
            for b in &svc.target_groups {
                scope.target_groups.push(b.target_group.clone());
            }
            if let Some(scaling) = &svc.scaling {
                for name in crate::plan::alarms::alarm_names(&svc.id) {
                    scope.alarms.push((svc.id.region.clone(), name));
                }
                if scaling.target_cpu.is_some() {
                    scope.cpu.push(svc.id.clone());
                }
            }
        }
        for cap in &desired.capacities {
            scope.groups.push((cap.group.clone(), cap.cluster.clone()));
            if cap.termination_hook.is_some() {
                scope.hooks.push(cap.group.clone());
            }
            if matches!(cap.tasks_per_instance, crate::desired::TasksPerInstance::Resources { .. }) {
                let in_cluster =
                    desired.services.iter().filter(|s| s.id.region == cap.group.region && s.id.cluster == cap.cluster);
                scope.task_sizes.extend(in_cluster.map(|s| s.id.clone()));
            }
        }
        fn sorted<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        sorted(&mut scope.services);
        sorted(&mut scope.target_groups);
        sorted(&mut scope.alarms);
        sorted(&mut scope.cpu);
        sorted(&mut scope.task_sizes);
        sorted(&mut scope.groups);
        sorted(&mut scope.protection);
        sorted(&mut scope.hooks);
        scope
    }

    /// The same scope, observed at the pass time `now`: see [`Scope::now`].
    pub fn at(mut self, now: SystemTime) -> Scope {
        self.now = Some(now);
        self
    }
}

/// Why a whole cloud operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CloudError {
    /// The endpoint could not be reached at all (network, DNS, timeout).
    #[error("{service} is unreachable: {message}")]
    Unreachable { service: &'static str, message: String },
    /// Still throttled after the client's retries.
    #[error("{service} {operation} was throttled: {message}")]
    Throttled { service: &'static str, operation: &'static str, message: String },
    /// A resource quota (e.g. ECS LimitExceededException); retrying will not help soon.
    #[error("{service} {operation} hit a quota: {message}")]
    Quota { service: &'static str, operation: &'static str, message: String },
    /// The resource the change names does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The credentials lack a permission.
    #[error("{service} {operation} was denied: {message}")]
    AccessDenied { service: &'static str, operation: &'static str, message: String },
    /// Anything else AWS (or the simulation) rejected.
    #[error("{service} {operation} failed: {message}")]
    Rejected { service: &'static str, operation: &'static str, message: String },
}

impl CloudError {
    /// Stable metric label.
    pub fn label(&self) -> &'static str {
        match self {
            CloudError::Unreachable { .. } => "unreachable",
            CloudError::Throttled { .. } => "throttled",
            CloudError::Quota { .. } => "quota",
            CloudError::NotFound(_) => "not_found",
            CloudError::AccessDenied { .. } => "access_denied",
            CloudError::Rejected { .. } => "rejected",
        }
    }
}

/// The controller's view of a cloud.
///
/// Implementations must be cheap to share (`Arc` inside) and must count
/// every API call they make in [`crate::metrics::Metrics`].
pub trait Cloud: Send + Sync + 'static {
    /// Read the current state of everything in `scope`, batching reads as
    /// the API allows. Per-resource failures are `Err` entries inside
    /// [`Observed`]; `Err` here means nothing at all could be read.
    fn observe(&self, scope: &Scope) -> impl Future<Output = Result<Observed, CloudError>> + Send;

    /// Make one change. Idempotent: applying a change twice leaves the
    /// same state as applying it once.
    fn apply(&self, change: &Change) -> impl Future<Output = Result<(), CloudError>> + Send;
}

/// Where "now" comes from. The planner never reads a clock; the loop and
/// the simulated cloud ask this.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> SystemTime;
}

/// Wall-clock time that follows tokio's clock, so that tests with paused
/// tokio time see virtual time everywhere.
#[derive(Debug, Clone)]
pub struct TokioClock {
    start_wall: SystemTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    pub fn new() -> Self {
        TokioClock { start_wall: SystemTime::now(), start: tokio::time::Instant::now() }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.start_wall + self.start.elapsed()
    }
}

/// A clock that moves only when told to: for tests and benchmarks that
/// drive the simulated cloud directly.
#[derive(Debug)]
pub struct ManualClock {
    now: std::sync::Mutex<SystemTime>,
}

impl ManualClock {
    /// Starts at a fixed instant so runs are reproducible.
    pub fn new() -> Self {
        ManualClock { now: std::sync::Mutex::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)) }
    }

    /// Starts at `now`: for tests against a cloud that stamps data with
    /// the wall clock (CloudWatch datapoints on the emulator).
    pub fn starting_at(now: SystemTime) -> Self {
        ManualClock { now: std::sync::Mutex::new(now) }
    }

    pub fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *self.now.lock().unwrap()
    }
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }
}
