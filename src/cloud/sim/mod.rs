//! The simulated cloud: an in-memory [`Cloud`] that behaves like AWS where
//! it matters to a controller.
//!
//! [`SimCloud`] is ballast's embedded default and the cloud every test
//! drives. It is deterministic from a seed and runs on a [`Clock`] the
//! caller controls, so a test that advances a
//! [`ManualClock`](crate::cloud::ManualClock) by an hour finishes at once.
//!
//! # What is modelled
//!
//! - **ECS**: a scheduler per service that starts tasks (PENDING for
//!   [`SimConfig::task_start_delay`], then RUNNING) on container instances
//!   with room (not DRAINING ones), and stops tasks of its own choice when
//!   there are too many: balanced across zones, then the newest, never a
//!   task under scale-in protection. A stopping task gets SIGTERM, answers
//!   for [`SimConfig::sigterm_grace`], and is STOPPED when the app exits
//!   ([`SimConfig::task_stop_delay`]) or at [`SimConfig::stop_timeout`],
//!   observable for an hour; with the service's own load balancers it is
//!   first deregistered and DEACTIVATING until drained. Deployments and
//!   draining container instances replace tasks within each service's
//!   minimum healthy and maximum percent. A task of a static-port service
//!   needs its host ports free on the instance, and every task needs its
//!   CPU and memory. awsvpc tasks take an address from 10.0.2.0/24, so at
//!   most 251 of them run at once.
//! - **Auto Scaling** (`autoscaling.rs`): desired capacity within
//!   [min, max], with AWS's ValidationError messages; instances are Pending
//!   for [`SimConfig::instance_launch_delay`] and launch in the zone with
//!   the fewest; scale-in takes instances of removed subnets first, then
//!   the fullest zone's. AZ rebalancing (unless [`SimConfig::az_rebalance`]
//!   is off or the group suspends `AZRebalance`) follows a subnet change or
//!   a termination that leaves zones more than one apart: it launches in
//!   the emptier zone first and terminates in the fuller (or removed) one
//!   once the new instances are in service. Termination lifecycle hooks
//!   hold a terminating instance in `Terminating:Wait`, still running its
//!   tasks, until CompleteLifecycleAction or the heartbeat timeout. AWS
//!   may terminate instances by itself
//!   ([`SimCloud::terminate_instances_by_aws`]); the group replaces them.
//! - **ELBv2**: targets keyed by (id, port), `initial` until health checks
//!   pass, `healthy` only while a task answers on the target, `draining`
//!   for the deregistration delay (at least the propagation lag) after
//!   deregistration.
//! - **Traffic**: each service's load flows through its target groups to
//!   the targets the load balancer routes new connections to (healthy ones,
//!   all when none is: fail-open, and deregistered ones for
//!   [`SimConfig::deregistration_propagation_lag`]); a request fails where
//!   no task answers. [`SimCloud::traffic`] and [`SimCloud::usage`] count
//!   requests and resource use. docs/simulation.md lists each behaviour
//!   with its AWS source.
//! - **CloudWatch**: a CPU datapoint per service per metric period from the
//!   load set with [`SimCloud::set_load`] or [`SimCloud::set_load_curve`],
//!   and M-of-N alarm evaluation with
//!   the four missing-data treatments.
//! - **Eventual consistency** (`consistency.rs`): for
//!   [`SimConfig::consistency_lag`] after a desired-count, capacity,
//!   target-registration or alarm write, observations show the field as it
//!   was before the write.
//!
//! # Choices where AWS gives latitude
//!
//! - AZ rebalancing starts at once and moves at most max(1, 10 % of the
//!   desired capacity) instances at a time (AWS documents a 10 % margin
//!   over MaxSize, no batch size). Without it (off or suspended), instances
//!   of a removed subnet keep running until a scale-in takes them.
//! - Among instances equal to the termination policy, the newest goes
//!   first. Only `AZRebalance`, `Launch` and `Terminate` of the suspended
//!   processes have an effect; the simulation has none of the others.
//! - A lifecycle hook's wait leaves the container instance ACTIVE with its
//!   tasks, but ECS places no new task on it; an instance that died
//!   ([`SimCloud::kill_instance`]) waits too, its tasks already lost.
//! - Reads lag only ballast's writes and other actors' desired-count and
//!   capacity writes; the tasks, instances and health those writes cause
//!   show at once.
//! - A terminated instance stays observable as `Terminating` for
//!   [`SimConfig::instance_terminate_delay`]; its tasks start stopping at
//!   once.
//! - Alarms are evaluated at the end of each alarm period (periods are
//!   rounded up to a multiple of the metric period). With `missing` and
//!   `ignore`, missing datapoints are left out: ALARM when at least M of the
//!   present datapoints breach, OK otherwise, and when none is present
//!   `missing` gives INSUFFICIENT_DATA while `ignore` keeps the state.
//! - Observing a service in a cluster that does not exist costs its
//!   DescribeServices calls; the cluster's tasks and container instances
//!   are then not listed. A cluster named only by a group costs one failing
//!   ListContainerInstances call.
//! - A read that fails with anything but `Unreachable` marks the resources
//!   it covers `Unavailable` (CPU reads simply leave their services out of
//!   [`Observed::cpu`]); `Unreachable` fails the whole observation.
//!
//! # Recording
//!
//! Every call ballast asks of the simulation is recorded as a [`Call`] and
//! counted in [`Metrics`], following the table of reads in
//! [`crate::cloud`]; test controls that play other actors are not recorded.

mod apply;
mod autoscaling;
mod build;
mod consistency;
mod controls;
mod ecs;
mod events;
mod load;
mod observe;
mod scheduler;
mod traffic;
mod world;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_asg;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::cloud::{Clock, Cloud, CloudError, Scope};
use crate::metrics::Metrics;
use crate::observed::Observed;
use crate::plan::Change;

pub use autoscaling::SCALING_PROCESSES;
pub use controls::{ContainerSpec, GroupSpec, ServiceSpec};
pub use ecs::{DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT, DEFAULT_TASK_PROTECTION, MAX_TASK_PROTECTION};
pub use traffic::{Interpolation, LoadCurve, RequestCounts, Usage};

use world::World;

/// Every read operation of an observation, with its AWS service: the
/// names `observe.rs` records, in the order it makes them.
#[cfg(test)]
pub(crate) const READS: [(&str, &str); 13] = [
    ("ecs", "DescribeServices"),
    ("ecs", "ListTasks"),
    ("ecs", "DescribeTasks"),
    ("ecs", "GetTaskProtection"),
    ("ecs", "ListContainerInstances"),
    ("ecs", "DescribeContainerInstances"),
    ("ecs", "DescribeTaskDefinition"),
    ("application-autoscaling", "DescribeScalableTargets"),
    ("elasticloadbalancing", "DescribeTargetGroups"),
    ("elasticloadbalancing", "DescribeTargetHealth"),
    ("cloudwatch", "DescribeAlarms"),
    ("cloudwatch", "GetMetricData"),
    ("autoscaling", "DescribeAutoScalingGroups"),
];

/// The AWS account every simulated ARN carries.
pub const ACCOUNT_ID: &str = "123456789012";

/// Timings and sizes of the simulated cloud. The defaults follow AWS's.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// PENDING to RUNNING.
    pub task_start_delay: Duration,
    /// STOPPING to STOPPED.
    pub task_stop_delay: Duration,
    /// Auto Scaling `Pending` to `InService`.
    pub instance_launch_delay: Duration,
    /// Auto Scaling `Terminating` until the instance is gone.
    pub instance_terminate_delay: Duration,
    /// Target group health check interval.
    pub health_check_interval: Duration,
    /// Consecutive checks that flip a target's health (NLBs use the same
    /// count for healthy and unhealthy).
    pub healthy_threshold: u32,
    /// How long a deregistered target drains (AWS's default is 300 s).
    pub deregistration_delay: Duration,
    /// CPU percent one task spends per request per second it serves.
    pub cpu_per_rps: f64,
    /// CloudWatch metric period of the service CPU metric.
    pub metric_period: Duration,
    /// CPU units of the task definitions [`SimCloud::from_desired`] registers.
    pub task_cpu: u32,
    /// MiB of the task definitions [`SimCloud::from_desired`] registers.
    pub task_memory: u32,
    /// CPU units of an instance when the desired state does not say (t2.micro).
    pub instance_cpu: u32,
    /// MiB an instance offers ECS when the desired state does not say
    /// (a t2.micro registers about 982 MiB).
    pub instance_memory: u32,
    /// PutMetricAlarm on an existing alarm resets its state to
    /// INSUFFICIENT_DATA (what moto does and what ballast assumes; AWS's API
    /// reference says an update leaves the state unchanged).
    pub reset_alarm_state_on_put: bool,
    /// Virtual time each API call takes, slept on tokio's clock after the
    /// call is made. Zero: no sleeping at all.
    pub latency_per_call: Duration,
    /// After DeregisterTargets, the load balancer keeps sending new
    /// connections to the target this long (public reports: tens of
    /// seconds up to about two minutes), then it only drains.
    pub deregistration_propagation_lag: Duration,
    /// After SIGTERM the task's app keeps accepting new requests this long
    /// (the sample app in app/ stops at once: 0).
    pub sigterm_grace: Duration,
    /// ECS `stopTimeout`: SIGKILL this long after SIGTERM at the latest.
    pub stop_timeout: Duration,
    /// Reads show a write only this long after it was made (eventual
    /// consistency; AWS documents no figure).
    pub consistency_lag: Duration,
    /// Auto Scaling's AZRebalance process runs (it does unless suspended).
    pub az_rebalance: bool,
    /// ECS scale-in keeps the service balanced across zones before it
    /// picks the newest task (AWS's rule). Off: the newest task goes first
    /// wherever it is (the simulation's rule before issue 14).
    pub scale_in_balances_zones: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            task_start_delay: Duration::from_secs(15),
            task_stop_delay: Duration::from_secs(10),
            instance_launch_delay: Duration::from_secs(60),
            instance_terminate_delay: Duration::from_secs(30),
            health_check_interval: Duration::from_secs(10),
            healthy_threshold: 2,
            deregistration_delay: Duration::from_secs(300),
            cpu_per_rps: 1.0,
            metric_period: Duration::from_secs(60),
            task_cpu: 256,
            task_memory: 512,
            instance_cpu: 1024,
            instance_memory: 982,
            reset_alarm_state_on_put: true,
            latency_per_call: Duration::ZERO,
            deregistration_propagation_lag: Duration::from_secs(60),
            sigterm_grace: Duration::ZERO,
            stop_timeout: Duration::from_secs(30),
            consistency_lag: Duration::ZERO,
            az_rebalance: true,
            scale_in_balances_zones: true,
        }
    }
}

impl SimConfig {
    /// How long checks take to flip a target's health.
    pub fn health_check_time(&self) -> Duration {
        self.health_check_interval * self.healthy_threshold
    }
}

/// One API call the simulation was asked to make (failed attempts included).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Call {
    /// The AWS service's signing name, e.g. `ecs`, `elasticloadbalancing`.
    pub service: &'static str,
    /// AWS's operation name, e.g. `DescribeServices`.
    pub operation: &'static str,
    /// The call changes something.
    pub write: bool,
}

/// The simulated cloud. Cheap to clone; clones share one world.
#[derive(Clone)]
pub struct SimCloud {
    /// One lock over the whole world: calls are short and never await
    /// while holding it.
    world: Arc<Mutex<World>>,
    /// Every call first brings the world up to this clock's time.
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for SimCloud {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCloud").finish_non_exhaustive()
    }
}

impl SimCloud {
    /// An empty world (no cluster, group, target group or alarm) at the
    /// clock's current time.
    pub fn new(clock: Arc<dyn Clock>, seed: u64, metrics: Arc<Metrics>, config: SimConfig) -> Self {
        let world = World::new(clock.now(), seed, metrics, config);
        SimCloud { world: Arc::new(Mutex::new(world)), clock }
    }

    /// Locks the world after bringing it up to the clock's time.
    fn world(&self) -> MutexGuard<'_, World> {
        // A panic while holding the lock leaves a world that is still
        // consistent enough for other tests' assertions to read.
        let mut world = self.world.lock().unwrap_or_else(|e| e.into_inner());
        world.advance_to(self.clock.now());
        world
    }

    /// Process everything due up to the clock's time.
    pub fn tick(&self) {
        drop(self.world());
    }

    /// Every call made since creation or the last [`reset_calls`](Self::reset_calls).
    pub fn calls(&self) -> Vec<Call> {
        self.world.lock().unwrap_or_else(|e| e.into_inner()).api.calls.clone()
    }

    /// How many recorded calls had this operation name.
    pub fn call_count(&self, operation: &str) -> usize {
        self.world
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .api
            .calls
            .iter()
            .filter(|c| c.operation == operation)
            .count()
    }

    /// Forget the recorded calls (not the caches: those live as long as
    /// the process would).
    pub fn reset_calls(&self) {
        self.world.lock().unwrap_or_else(|e| e.into_inner()).api.calls.clear();
    }

    /// Run `f` on the world, then take `latency_per_call` for each API
    /// call it made, as the real services would.
    async fn with_latency<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let (result, calls, latency) = {
            let mut world = self.world();
            let before = world.api.calls.len();
            let result = f(&mut world);
            (result, world.api.calls.len() - before, world.config.latency_per_call)
        };
        if !latency.is_zero() && calls > 0 {
            tokio::time::sleep(latency * calls as u32).await;
        }
        result
    }
}

impl Cloud for SimCloud {
    fn observe(&self, scope: &Scope) -> impl Future<Output = Result<Observed, CloudError>> + Send {
        let this = self.clone();
        let scope = scope.clone();
        async move { this.with_latency(|world| observe::observe(world, &scope)).await }
    }

    fn apply(&self, change: &Change) -> impl Future<Output = Result<(), CloudError>> + Send {
        let this = self.clone();
        let change = change.clone();
        // A change is one call, or two with its scaling mark.
        async move { this.with_latency(|world| apply::apply(world, &change)).await }
    }
}
