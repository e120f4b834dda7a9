//! The world model: every resource the simulation keeps, with identifiers
//! shaped like AWS's, and the API-side state (recorded calls, faults,
//! caches) that a real adapter would hold.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::SystemTime;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::autoscaling::AutoScaling;
use super::consistency::LaggingWrite;
use super::traffic::Traffic;
use super::{ACCOUNT_ID, Call, SimConfig};
use crate::cloud::CloudError;
use crate::desired::{GroupId, ServiceId, TargetType};
use crate::metrics::{CallResult, Metrics};
use crate::observed::{AlarmDefinition, AlarmState, PortBinding, Target, TargetHealth, TaskSize, TaskStatus};

/// Everything in the simulated account, in every region.
pub(super) struct World {
    /// The instant the world has been brought up to.
    pub now: SystemTime,
    pub config: SimConfig,
    pub metrics: Arc<Metrics>,
    /// The only source of randomness: identifiers and addresses.
    pub rng: StdRng,
    /// Creation order of tasks and instances ("newest first" needs it;
    /// ARNs are random).
    pub seq: u64,
    /// (region, subnet id) → availability zone.
    pub subnets: BTreeMap<(String, String), String>,
    /// (region, cluster name) of every ECS cluster.
    pub clusters: BTreeSet<(String, String)>,
    /// By ARN.
    pub task_defs: BTreeMap<String, TaskDef>,
    pub services: BTreeMap<ServiceId, Service>,
    /// By ARN.
    pub tasks: BTreeMap<String, Task>,
    /// By EC2 instance id.
    pub instances: BTreeMap<String, Instance>,
    /// EC2 instance ids whose container instance is DRAINING.
    pub draining: BTreeSet<String>,
    pub groups: BTreeMap<GroupId, Group>,
    /// By ARN.
    pub target_groups: BTreeMap<String, TargetGroup>,
    /// By (region, name).
    pub alarms: BTreeMap<(String, String), Alarm>,
    /// Services with an Application Auto Scaling scalable target.
    pub scalable_targets: BTreeSet<ServiceId>,
    /// Auto Scaling's per-group processes, hooks and rebalancing.
    pub autoscaling: AutoScaling,
    pub api: ApiState,
    /// Loads, and the requests and resource use counted so far.
    pub traffic: Traffic,
}

/// What a real adapter would keep between calls, plus the recording and
/// fault injection that only the simulation has.
#[derive(Default)]
pub(super) struct ApiState {
    pub calls: Vec<Call>,
    pub unreachable: bool,
    /// Operation name → errors to return on its next calls, in order.
    pub fail_next: Vec<(String, CloudError)>,
    /// Every nth call is throttled; 0 turns it off.
    pub throttle_every: u64,
    /// Calls counted since `throttle_every` was set.
    pub throttle_counter: u64,
    /// (region, target group name) → ARN, filled by DescribeTargetGroups.
    pub tg_by_name: BTreeMap<(String, String), String>,
    /// ARN → what DescribeTargetGroups said (immutable in AWS).
    pub tg_info: BTreeMap<String, TargetGroupInfo>,
    /// Task definition ARN → size (task definitions are immutable).
    pub task_sizes: BTreeMap<String, TaskSize>,
    /// Writes reads do not show yet, oldest first (eventual consistency).
    pub lagging: VecDeque<LaggingWrite>,
    /// Reads reused within their period, as the adapter reuses them.
    pub cpu_reads: crate::cloud::reuse::CpuReads<ServiceId>,
    pub protection_reads: crate::cloud::reuse::ProtectionReads,
}

/// The immutable part of a target group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TargetGroupInfo {
    pub arn: String,
    pub name: String,
    pub target_type: TargetType,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TaskDef {
    pub arn: String,
    pub awsvpc: bool,
    pub containers: Vec<ContainerDef>,
    pub cpu: u32,
    pub memory: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ContainerDef {
    pub name: String,
    /// (container port, host port). Bridge mode uses static host ports;
    /// awsvpc tasks expose the container port on their own address.
    pub ports: Vec<(u16, u16)>,
}

impl TaskDef {
    /// The bindings a task of this definition gets.
    pub fn bindings(&self) -> Vec<PortBinding> {
        self.containers
            .iter()
            .flat_map(|c| {
                c.ports.iter().map(|&(container_port, host_port)| PortBinding {
                    container_name: c.name.clone(),
                    container_port,
                    host_port: if self.awsvpc { container_port } else { host_port },
                })
            })
            .collect()
    }

    /// Host ports a task occupies on its instance (none in awsvpc mode).
    pub fn host_ports(&self) -> BTreeSet<u16> {
        if self.awsvpc {
            return BTreeSet::new();
        }
        self.containers.iter().flat_map(|c| c.ports.iter().map(|&(_, host)| host)).collect()
    }
}

pub(super) struct Service {
    pub arn: String,
    pub desired_count: u32,
    pub task_def: String,
    /// Target group ARNs of the service's own `loadBalancers`.
    pub load_balancers: Vec<String>,
    /// Tasks of older deployments are replaced by tasks of this one.
    pub deployment: u64,
    /// A deployment is rolling out.
    pub rolling: bool,
    /// A deployment whose tasks run but never answer (a broken revision).
    pub broken_deployment: Option<u64>,
    /// `deploymentConfiguration`: the bounds on running tasks, in percent
    /// of the desired count, while tasks are replaced.
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    /// CPU-percent-seconds accumulated in the current metric period.
    pub cpu_acc: f64,
    /// Seconds of the current period during which a task was running.
    pub cpu_covered: f64,
    /// (period start, average CPU), oldest first.
    pub datapoints: VecDeque<(SystemTime, f64)>,
    /// ECS service events, newest last.
    pub events: VecDeque<(SystemTime, String)>,
    /// Resource tags (the scaling marks among them).
    pub tags: BTreeMap<String, String>,
}

pub(super) struct Task {
    pub arn: String,
    /// The service that started it, and the deployment (task definition
    /// revision rollout) it belongs to.
    pub service: ServiceId,
    pub deployment: u64,
    /// Where the task is and where ECS is taking it.
    pub last_status: TaskStatus,
    pub desired_status: TaskStatus,
    /// Its placement: the instance, or its own address in awsvpc mode.
    pub instance_id: Option<String>,
    pub private_ip: Option<String>,
    /// Container ports mapped to host ports, and the host ports it holds.
    pub bindings: Vec<PortBinding>,
    pub host_ports: BTreeSet<u16>,
    /// What it reserves on its instance: CPU units and MiB.
    pub cpu: u32,
    pub memory: u32,
    /// Start order: the simulated scheduler stops the newest first when the
    /// desired count drops.
    pub seq: u64,
    pub started_at: Option<SystemTime>,
    pub stopped_at: Option<SystemTime>,
    /// When the current transition (PENDING→RUNNING, STOPPING→STOPPED) ends.
    pub due: Option<SystemTime>,
    /// When the task's containers get (or got) SIGTERM.
    pub sigterm_at: Option<SystemTime>,
    /// Scale-in protection (UpdateTaskProtection) holds until then.
    pub protected_until: Option<SystemTime>,
    /// Of a broken revision: it runs but never answers, so its targets
    /// never become healthy.
    pub broken: bool,
}

impl Task {
    /// Not stopped yet: holds ports, CPU and memory on its instance.
    pub fn holds_resources(&self) -> bool {
        self.last_status != TaskStatus::Stopped
    }

    /// Counts toward the service's desired count.
    pub fn is_live(&self) -> bool {
        self.desired_status == TaskStatus::Running
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lifecycle {
    Pending,
    InService,
    /// Held by a termination lifecycle hook: still running.
    TerminatingWait,
    Terminating,
}

impl Lifecycle {
    pub fn observed(self) -> crate::observed::Lifecycle {
        match self {
            Lifecycle::Pending => crate::observed::Lifecycle::Pending,
            Lifecycle::InService => crate::observed::Lifecycle::InService,
            Lifecycle::TerminatingWait => crate::observed::Lifecycle::TerminatingWait,
            Lifecycle::Terminating => crate::observed::Lifecycle::Terminating,
        }
    }
}

pub(super) struct Instance {
    /// EC2 instance id, `i-…`.
    pub id: String,
    pub region: String,
    /// None for a standalone container instance.
    pub group: Option<GroupId>,
    /// Where it was launched: its subnet and that subnet's zone.
    pub subnet: String,
    pub zone: String,
    /// Auto Scaling's view (pending, in service, terminating) and health.
    pub lifecycle: Lifecycle,
    pub healthy: bool,
    /// The ECS cluster it joins once in service.
    pub cluster: Option<String>,
    /// Set while registered as an ACTIVE container instance.
    pub container_instance: Option<String>,
    /// What ECS can place on it: CPU units and MiB.
    pub cpu: u32,
    pub memory: u32,
    /// Launch order: observation lists instances in it, and the group's own
    /// scale-in (SetDesiredCapacity down) removes the newest first.
    pub seq: u64,
    /// End of Pending or of Terminating.
    pub due: Option<SystemTime>,
}

impl Instance {
    /// Counts toward the group's capacity.
    pub fn is_active(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::Pending | Lifecycle::InService)
    }

    /// On its way out: Auto Scaling no longer counts it.
    pub fn is_terminating(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::TerminatingWait | Lifecycle::Terminating)
    }

    /// Its tasks run and answer: in service, or held in service by a
    /// termination lifecycle hook.
    pub fn runs_tasks(&self) -> bool {
        matches!(self.lifecycle, Lifecycle::InService | Lifecycle::TerminatingWait)
    }
}

pub(super) struct Group {
    pub arn: String,
    pub min: u32,
    pub max: u32,
    pub desired: u32,
    pub subnets: Vec<String>,
    pub managed_scaling: bool,
    /// Resource tags (the capacity mark among them).
    pub tags: BTreeMap<String, String>,
    pub cluster: Option<String>,
    pub instance_cpu: u32,
    pub instance_memory: u32,
}

pub(super) struct TargetGroup {
    pub info: TargetGroupInfo,
    pub region: String,
    pub targets: BTreeMap<Target, RegisteredTarget>,
}

pub(super) struct RegisteredTarget {
    pub registered_at: SystemTime,
    pub health: TargetHealth,
    /// Whether health checks currently succeed (a running task answers).
    pub serving: bool,
    /// Since when `serving` has held.
    pub serving_since: SystemTime,
    /// Set while draining.
    pub drain_until: Option<SystemTime>,
    /// Set while draining: until then the load balancer still sends new
    /// connections (the deregistration has not reached it yet).
    pub routed_until: Option<SystemTime>,
}

impl RegisteredTarget {
    /// When health checks have run long enough for `serving` to decide.
    pub fn verdict_at(&self, check_time: std::time::Duration) -> SystemTime {
        self.registered_at.max(self.serving_since) + check_time
    }

    pub fn verdict(&self) -> TargetHealth {
        if self.serving { TargetHealth::Healthy } else { TargetHealth::Unhealthy }
    }
}

pub(super) struct Alarm {
    pub definition: AlarmDefinition,
    pub state: AlarmState,
    pub state_updated: SystemTime,
}

impl Alarm {
    /// The ARN CloudWatch gives the alarm in `region`.
    pub fn arn(&self, region: &str) -> String {
        format!("arn:aws:cloudwatch:{region}:{}:alarm:{}", super::ACCOUNT_ID, self.definition.name)
    }
}

impl World {
    pub fn new(now: SystemTime, seed: u64, metrics: Arc<Metrics>, config: SimConfig) -> Self {
        World {
            now,
            config,
            metrics,
            rng: StdRng::seed_from_u64(seed),
            seq: 0,
            subnets: BTreeMap::new(),
            clusters: BTreeSet::new(),
            task_defs: BTreeMap::new(),
            services: BTreeMap::new(),
            tasks: BTreeMap::new(),
            instances: BTreeMap::new(),
            draining: BTreeSet::new(),
            groups: BTreeMap::new(),
            target_groups: BTreeMap::new(),
            alarms: BTreeMap::new(),
            scalable_targets: BTreeSet::new(),
            autoscaling: AutoScaling::default(),
            api: ApiState::default(),
            traffic: Traffic::default(),
        }
    }

    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// `len` lowercase hex digits.
    pub fn hex(&mut self, len: usize) -> String {
        (0..len).map(|_| char::from_digit(self.rng.random_range(0..16u32), 16).unwrap_or('0')).collect()
    }

    pub fn new_instance_id(&mut self) -> String {
        loop {
            let id = format!("i-{}", self.hex(17));
            if !self.instances.contains_key(&id) {
                return id;
            }
        }
    }

    pub fn new_task_arn(&mut self, service: &ServiceId) -> String {
        loop {
            let arn = format!("arn:aws:ecs:{}:{ACCOUNT_ID}:task/{}/{}", service.region, service.cluster, self.hex(32));
            if !self.tasks.contains_key(&arn) {
                return arn;
            }
        }
    }

    pub fn new_target_group_arn(&mut self, region: &str, name: &str) -> String {
        format!("arn:aws:elasticloadbalancing:{region}:{ACCOUNT_ID}:targetgroup/{name}/{}", self.hex(16))
    }

    pub fn new_group_arn(&mut self, group: &GroupId) -> String {
        let uuid = format!("{}-{}-{}-{}-{}", self.hex(8), self.hex(4), self.hex(4), self.hex(4), self.hex(12));
        format!(
            "arn:aws:autoscaling:{}:{ACCOUNT_ID}:autoScalingGroup:{uuid}:autoScalingGroupName/{}",
            group.region, group.name
        )
    }

    pub fn new_container_instance_arn(&mut self, region: &str, cluster: &str) -> String {
        format!("arn:aws:ecs:{region}:{ACCOUNT_ID}:container-instance/{cluster}/{}", self.hex(32))
    }

    /// A free address for an awsvpc task in the private subnet
    /// 10.0.2.0/24 (AWS reserves .0–.3 and .255).
    pub fn new_task_ip(&mut self) -> Option<String> {
        let used: BTreeSet<&str> =
            self.tasks.values().filter(|t| t.holds_resources()).filter_map(|t| t.private_ip.as_deref()).collect();
        let free: Vec<u32> = (4..255).filter(|n| !used.contains(format!("10.0.2.{n}").as_str())).collect();
        if free.is_empty() {
            return None;
        }
        let n = free[self.rng.random_range(0..free.len())];
        Some(format!("10.0.2.{n}"))
    }

    /// The zone of a subnet; unknown subnets get the region's next zone
    /// letter, so that distinct subnets land in distinct zones.
    pub fn zone_of(&mut self, region: &str, subnet: &str) -> String {
        if let Some(zone) = self.subnets.get(&(region.to_string(), subnet.to_string())) {
            return zone.clone();
        }
        let known = self.subnets.keys().filter(|(r, _)| r == region).count();
        let letter = (b'a' + (known % 26) as u8) as char;
        let zone = format!("{region}{letter}");
        self.subnets.insert((region.to_string(), subnet.to_string()), zone.clone());
        zone
    }

    /// Resolve a target group by (region, name).
    pub fn target_group_by_name(&self, region: &str, name: &str) -> Option<&TargetGroup> {
        self.target_groups.values().find(|tg| tg.region == region && tg.info.name == name)
    }

    /// Run one API call: fault injection first, then `op`, then the
    /// recording and the metric with its outcome.
    pub fn api<T>(
        &mut self,
        service: &'static str,
        operation: &'static str,
        write: bool,
        op: impl FnOnce(&mut World) -> Result<T, CloudError>,
    ) -> Result<T, CloudError> {
        let result = match self.injected_fault(service, operation) {
            Some(err) => Err(err),
            None => op(self),
        };
        self.api.calls.push(Call { service, operation, write });
        let label = match &result {
            Ok(_) => CallResult::Success,
            Err(CloudError::Throttled { .. }) => CallResult::Throttled,
            Err(_) => CallResult::Error,
        };
        self.metrics.api_call(service, operation, label);
        result
    }

    fn injected_fault(&mut self, service: &'static str, operation: &'static str) -> Option<CloudError> {
        if self.api.unreachable {
            return Some(CloudError::Unreachable { service, message: "simulated network failure".to_string() });
        }
        if self.api.throttle_every > 0 {
            self.api.throttle_counter += 1;
            if self.api.throttle_counter.is_multiple_of(self.api.throttle_every) {
                return Some(CloudError::Throttled { service, operation, message: "Rate exceeded".to_string() });
            }
        }
        let pos = self.api.fail_next.iter().position(|(op, _)| op == operation)?;
        Some(self.api.fail_next.remove(pos).1)
    }
}
