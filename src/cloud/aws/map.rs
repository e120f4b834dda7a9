//! Pure mapping of SDK shapes into ballast's observed types.
//!
//! No I/O here: everything takes SDK values and lookup tables, so the
//! tests build SDK values with their builders and check the result.

use std::collections::HashMap;
use std::time::SystemTime;

use aws_sdk_autoscaling::types as asg;
use aws_sdk_cloudwatch::types as cw;
use aws_sdk_ecs::primitives::DateTime;
use aws_sdk_ecs::types as ecs;
use aws_sdk_elasticloadbalancingv2::types as elb;

use crate::cloud::marks;
use crate::desired::{MissingData, ServiceId};
use crate::observed::{
    AlarmActions, AlarmDefinition, AlarmState, Comparison, Lifecycle, MetricSample, ObservedAlarm, ObservedGroup,
    ObservedInstance, ObservedService, ObservedTarget, ObservedTargetGroup, ObservedTask, PortBinding, ProtectionRead,
    ResourceError, ServiceStatus, Statistic, Target, TargetGroupType, TargetHealth, TaskSize, TaskStatus,
};

/// The tag ECS puts on an Auto Scaling group it scales through a capacity
/// provider with managed scaling.
pub const MANAGED_SCALING_TAG: &str = "AmazonECSManaged";

/// What the adapter keeps of a task definition (immutable per ARN).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskDefInfo {
    /// Task-level CPU and memory, or the containers' sums.
    pub size: Option<TaskSize>,
    /// Static host-port mappings: what a task's bindings must be when
    /// ECS reports none (moto never does).
    pub static_bindings: Vec<PortBinding>,
}

/// What the adapter keeps of a target group (immutable per ARN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetGroupInfo {
    pub arn: String,
    pub name: String,
    pub target_type: TargetGroupType,
    pub port: Option<u16>,
}

/// The container-instance attribute that names an instance's subnet.
const SUBNET_ATTRIBUTE: &str = "ecs.subnet-id";

/// What the adapter needs of a container instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInstanceInfo {
    pub ec2_instance_id: Option<String>,
    /// Running plus pending tasks.
    pub tasks: u32,
    /// The `ecs.subnet-id` attribute the ECS agent registers for an
    /// instance launched in a VPC.
    pub subnet: Option<String>,
    pub arn: Option<String>,
    /// Status `DRAINING`.
    pub draining: bool,
}

pub fn system_time(t: &DateTime) -> Option<SystemTime> {
    SystemTime::try_from(*t).ok()
}

fn count(n: i32) -> u32 {
    u32::try_from(n).unwrap_or(0)
}

fn port(n: i32) -> Option<u16> {
    u16::try_from(n).ok()
}

/// A described ECS service, before its tasks, size and scalable target
/// are attached.
pub fn service(s: &ecs::Service) -> ObservedService {
    let deployments = s.deployments();
    let primary_rolling = deployments
        .iter()
        .any(|d| d.status() == Some("PRIMARY") && d.rollout_state() == Some(&ecs::DeploymentRolloutState::InProgress));
    ObservedService {
        arn: s.service_arn().unwrap_or_default().to_string(),
        status: service_status(s.status().unwrap_or_default()),
        desired_count: count(s.desired_count()),
        running_count: count(s.running_count()),
        pending_count: count(s.pending_count()),
        deploying: deployments.len() > 1 || primary_rolling,
        task_definition: s.task_definition().unwrap_or_default().to_string(),
        task_size: None,
        load_balancer_target_groups: s
            .load_balancers()
            .iter()
            .filter_map(|lb| lb.target_group_arn().map(str::to_string))
            .collect(),
        scalable_target: false,
        tasks: Vec::new(),
        // Present when described with `include: [TAGS]`.
        scaling_marks: marks::scaling_marks(
            s.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
        ),
        protection: ProtectionRead::NotAsked,
        primary_deployment: deployments
            .iter()
            .find(|d| d.status() == Some("PRIMARY"))
            .and_then(|d| d.id())
            .map(str::to_string),
        maximum_percent: s
            .deployment_configuration()
            .and_then(|c| c.maximum_percent())
            .and_then(|p| u32::try_from(p).ok()),
        surge_mark: marks::surge_mark(s.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default())))),
    }
}

/// ECS reports a service's status as a plain string.
fn service_status(s: &str) -> ServiceStatus {
    match s {
        "ACTIVE" => ServiceStatus::Active,
        "DRAINING" => ServiceStatus::Draining,
        "INACTIVE" => ServiceStatus::Inactive,
        other => ServiceStatus::Other(other.to_string()),
    }
}

/// An ECS `failures[]` entry as a per-resource error.
pub fn failure(f: &ecs::Failure) -> ResourceError {
    let what = f.arn().unwrap_or("resource");
    let reason = f.reason().unwrap_or("unknown reason");
    let detail = f.detail().map(|d| format!(" ({d})")).unwrap_or_default();
    if reason == "MISSING" {
        ResourceError::NotFound(format!("{what}{detail}"))
    } else {
        ResourceError::Unavailable(format!("{what}: {reason}{detail}"))
    }
}

/// A described task. `instances` maps container instance ARNs to EC2
/// instance ids; `taskdef` supplies static bindings when ECS reports none.
pub fn task(
    t: &ecs::Task,
    instances: &HashMap<String, ContainerInstanceInfo>,
    taskdef: Option<&TaskDefInfo>,
) -> ObservedTask {
    let last_status = TaskStatus::from_aws(t.last_status().unwrap_or_default());
    let mut bindings: Vec<PortBinding> = t
        .containers()
        .iter()
        .flat_map(|c| {
            let name = c.name().unwrap_or_default();
            c.network_bindings().iter().filter_map(move |b| {
                Some(PortBinding {
                    container_name: name.to_string(),
                    container_port: port(b.container_port()?)?,
                    host_port: port(b.host_port()?)?,
                })
            })
        })
        .collect();
    // ECS reports bindings once the containers run; a started task (running
    // or since stopped) with none either uses awsvpc (host port = container
    // port) or comes from an emulator that never reports them. The task
    // definition's static host ports are then the truth. A stopped task
    // needs them too: they are how its stale targets are attributed.
    if bindings.is_empty()
        && last_status.has_started()
        && let Some(td) = taskdef
    {
        bindings = td.static_bindings.clone();
    }
    bindings.sort_by(|a, b| (&a.container_name, a.container_port).cmp(&(&b.container_name, b.container_port)));
    bindings.dedup();

    let private_ip = t
        .attachments()
        .iter()
        .filter(|a| a.r#type() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details())
        .find(|kv| kv.name() == Some("privateIPv4Address"))
        .and_then(|kv| kv.value())
        .or_else(|| t.containers().iter().flat_map(|c| c.network_interfaces()).find_map(|ni| ni.private_ipv4_address()))
        .map(str::to_string);

    ObservedTask {
        arn: t.task_arn().unwrap_or_default().to_string(),
        last_status,
        desired_status: TaskStatus::from_aws(t.desired_status().unwrap_or_default()),
        instance_id: t
            .container_instance_arn()
            .and_then(|ci| instances.get(ci))
            .and_then(|ci| ci.ec2_instance_id.clone()),
        private_ip,
        bindings,
        started_at: t.started_at().and_then(system_time),
        protected_until: None,
        started_by: t.started_by().map(str::to_string),
    }
}

/// Size and static bindings of a task definition.
pub fn task_definition(td: &ecs::TaskDefinition) -> TaskDefInfo {
    let containers = td.container_definitions();
    let parse = |s: Option<&str>| s.and_then(|v| v.trim().parse::<u32>().ok());
    let cpu = parse(td.cpu()).or_else(|| {
        let sum: i32 = containers.iter().map(|c| c.cpu()).sum();
        (sum > 0).then(|| count(sum))
    });
    let memory = parse(td.memory()).or_else(|| {
        let sum: i32 = containers.iter().map(|c| c.memory().or(c.memory_reservation()).unwrap_or(0)).sum();
        (sum > 0).then(|| count(sum))
    });
    let awsvpc = td.network_mode() == Some(&ecs::NetworkMode::Awsvpc);
    let static_bindings = containers
        .iter()
        .flat_map(|c| {
            let name = c.name().unwrap_or_default().to_string();
            c.port_mappings().iter().filter_map(move |pm| {
                let container_port = port(pm.container_port()?)?;
                let host_port = match pm.host_port() {
                    Some(h) if h > 0 => port(h)?,
                    // awsvpc: the host port is the container port.
                    _ if awsvpc => container_port,
                    // Dynamic host port: unknown until ECS reports it.
                    _ => return None,
                };
                Some(PortBinding { container_name: name.clone(), container_port, host_port })
            })
        })
        .collect();
    TaskDefInfo {
        size: match (cpu, memory) {
            (Some(cpu), Some(memory)) => Some(TaskSize { cpu, memory }),
            // ECS lets EC2 tasks omit CPU: they then reserve none.
            (None, Some(memory)) => Some(TaskSize { cpu: 0, memory }),
            _ => None,
        },
        static_bindings,
    }
}

pub fn container_instance(ci: &ecs::ContainerInstance) -> ContainerInstanceInfo {
    ContainerInstanceInfo {
        ec2_instance_id: ci.ec2_instance_id().map(str::to_string),
        tasks: count(ci.running_tasks_count()) + count(ci.pending_tasks_count()),
        subnet: ci
            .attributes()
            .iter()
            .find(|a| a.name() == SUBNET_ATTRIBUTE)
            .and_then(|a| a.value())
            .map(str::to_string),
        arn: ci.container_instance_arn().map(str::to_string),
        draining: ci.status() == Some("DRAINING"),
    }
}

pub fn target_group_info(tg: &elb::TargetGroup) -> Option<TargetGroupInfo> {
    Some(TargetGroupInfo {
        arn: tg.target_group_arn()?.to_string(),
        name: tg.target_group_name().unwrap_or_default().to_string(),
        // ELBv2's default type.
        target_type: tg.target_type().map(target_group_type).unwrap_or(TargetGroupType::Instance),
        port: tg.port().and_then(port),
    })
}

fn target_group_type(t: &elb::TargetTypeEnum) -> TargetGroupType {
    match t {
        elb::TargetTypeEnum::Instance => TargetGroupType::Instance,
        elb::TargetTypeEnum::Ip => TargetGroupType::Ip,
        elb::TargetTypeEnum::Lambda => TargetGroupType::Lambda,
        elb::TargetTypeEnum::Alb => TargetGroupType::Alb,
        other => TargetGroupType::Other(other.as_str().to_string()),
    }
}

pub fn target_group(info: &TargetGroupInfo, health: &[elb::TargetHealthDescription]) -> ObservedTargetGroup {
    let mut targets: Vec<ObservedTarget> = health
        .iter()
        .filter_map(|d| {
            let t = d.target()?;
            Some(ObservedTarget {
                target: Target {
                    id: t.id()?.to_string(),
                    // A target without a port uses the group's port.
                    port: t.port().and_then(port).or(info.port)?,
                },
                health: d
                    .target_health()
                    .and_then(|h| h.state())
                    .map(|s| TargetHealth::from_aws(s.as_str()))
                    .unwrap_or(TargetHealth::Unavailable),
            })
        })
        .collect();
    targets.sort_by(|a, b| a.target.cmp(&b.target));
    ObservedTargetGroup {
        arn: info.arn.clone(),
        name: info.name.clone(),
        target_type: info.target_type.clone(),
        port: info.port,
        targets,
    }
}

pub fn alarm(a: &cw::MetricAlarm) -> ObservedAlarm {
    let mut dimensions: Vec<(String, String)> = a
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
        .collect();
    dimensions.sort();
    let evaluation_periods = a.evaluation_periods().map(count).unwrap_or(1);
    ObservedAlarm {
        definition: AlarmDefinition {
            name: a.alarm_name().unwrap_or_default().to_string(),
            namespace: a.namespace().unwrap_or_default().to_string(),
            metric_name: a.metric_name().unwrap_or_default().to_string(),
            statistic: Statistic::from_aws(
                a.statistic().map(cw::Statistic::as_str).or(a.extended_statistic()).unwrap_or_default(),
            ),
            dimensions,
            period_secs: a.period().map(count).unwrap_or(0),
            evaluation_periods,
            // CloudWatch's default when unset: all evaluated periods.
            datapoints_to_alarm: a.datapoints_to_alarm().map(count).unwrap_or(evaluation_periods),
            threshold: a.threshold().unwrap_or(0.0),
            comparison: Comparison::from_aws(
                a.comparison_operator().map(cw::ComparisonOperator::as_str).unwrap_or_default(),
            ),
            missing_data: a.treat_missing_data().and_then(MissingData::from_aws).unwrap_or(MissingData::Missing),
            description: a.alarm_description().unwrap_or_default().to_string(),
            actions: AlarmActions {
                alarm: a.alarm_actions().to_vec(),
                ok: a.ok_actions().to_vec(),
                insufficient_data: a.insufficient_data_actions().to_vec(),
            },
        },
        state: a.state_value().map(|s| AlarmState::from_aws(s.as_str())).unwrap_or(AlarmState::InsufficientData),
        state_updated: a.state_updated_timestamp().and_then(system_time).unwrap_or(SystemTime::UNIX_EPOCH),
        arn: a.alarm_arn().unwrap_or_default().to_string(),
        // DescribeAlarms returns no tags; `observe` lists them.
        managed_by_ballast: None,
    }
}

/// A service metric: (namespace, metric name), by cluster and service.
pub type ServiceMetric = (&'static str, &'static str);
/// The service's CPU, percent of what its tasks reserve.
pub const SERVICE_CPU: ServiceMetric = ("AWS/ECS", "CPUUtilization");
/// The service's running tasks, from Container Insights.
pub const SERVICE_RUNNING_TASKS: ServiceMetric = ("ECS/ContainerInsights", "RunningTaskCount");

/// A GetMetricData query `id` for the average of a service metric over
/// periods of `period_secs`.
pub fn service_metric_query(
    id: &str,
    service: &ServiceId,
    (namespace, name): ServiceMetric,
    period_secs: i32,
) -> cw::MetricDataQuery {
    let dim = |n: &str, v: &str| cw::Dimension::builder().name(n).value(v).build();
    let metric = cw::Metric::builder()
        .namespace(namespace)
        .metric_name(name)
        .dimensions(dim("ClusterName", &service.cluster))
        .dimensions(dim("ServiceName", &service.service))
        .build();
    cw::MetricDataQuery::builder()
        .id(id)
        .metric_stat(cw::MetricStat::builder().metric(metric).period(period_secs).stat("Average").build())
        .return_data(true)
        .build()
}

/// Every datapoint of a GetMetricData result, by time.
pub fn samples(r: &cw::MetricDataResult) -> impl Iterator<Item = (SystemTime, f64)> + '_ {
    r.timestamps().iter().zip(r.values()).filter_map(|(t, v)| Some((system_time(t)?, *v)))
}

/// The newest datapoint of a GetMetricData result.
pub fn latest_sample(r: &cw::MetricDataResult) -> Option<MetricSample> {
    samples(r).max_by_key(|(t, _)| *t).map(|(at, value)| MetricSample { value, at })
}

/// A described Auto Scaling group. `tasks_by_instance` holds the ECS task
/// counts of the instances registered in the capacity's cluster, when
/// those could be read.
/// ballast's termination hook among a group's lifecycle hooks; a hook of
/// that name for another transition is not one.
pub fn termination_hook(hooks: &[asg::LifecycleHook]) -> Option<crate::desired::TerminationHook> {
    hooks
        .iter()
        .find(|h| {
            h.lifecycle_hook_name() == Some(crate::desired::TERMINATION_HOOK_NAME)
                && h.lifecycle_transition() == Some("autoscaling:EC2_INSTANCE_TERMINATING")
        })
        .map(|h| crate::desired::TerminationHook {
            heartbeat_timeout: std::time::Duration::from_secs(h.heartbeat_timeout().map_or(3600, |s| s.max(0) as u64)),
            default_result: h.default_result().unwrap_or("ABANDON").to_string(),
        })
}

pub fn group(
    g: &asg::AutoScalingGroup,
    container_instances: &HashMap<String, &ContainerInstanceInfo>,
) -> ObservedGroup {
    let mut instances: Vec<ObservedInstance> = g
        .instances()
        .iter()
        .map(|i| {
            let id = i.instance_id().unwrap_or_default().to_string();
            let ci = container_instances.get(&id);
            ObservedInstance {
                tasks: ci.map(|ci| ci.tasks),
                subnet: ci.and_then(|ci| ci.subnet.clone()),
                container_instance: ci.and_then(|ci| {
                    Some(crate::observed::ContainerInstance { arn: ci.arn.clone()?, draining: ci.draining })
                }),
                zone: i.availability_zone().unwrap_or_default().to_string(),
                lifecycle_state: i.lifecycle_state().map(lifecycle).unwrap_or_else(|| Lifecycle::Other(String::new())),
                healthy: i.health_status() == Some("Healthy"),
                id,
            }
        })
        .collect();
    instances.sort_by(|a, b| a.id.cmp(&b.id));
    ObservedGroup {
        arn: g.auto_scaling_group_arn().unwrap_or_default().to_string(),
        min_size: g.min_size().map(count).unwrap_or(0),
        max_size: g.max_size().map(count).unwrap_or(0),
        desired_capacity: g.desired_capacity().map(count).unwrap_or(0),
        subnets: g
            .vpc_zone_identifier()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        instances,
        managed_scaling: g.tags().iter().any(|t| t.key() == Some(MANAGED_SCALING_TAG)),
        last_capacity_change: marks::last_capacity_change(
            g.tags().iter().filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
        ),
        termination_hook: None,
        suspended_processes: {
            let mut names: Vec<String> =
                g.suspended_processes().iter().filter_map(|p| p.process_name()).map(str::to_string).collect();
            names.sort();
            names
        },
    }
}

fn lifecycle(s: &asg::LifecycleState) -> Lifecycle {
    use asg::LifecycleState as L;
    match s {
        L::Pending => Lifecycle::Pending,
        L::PendingWait => Lifecycle::PendingWait,
        L::PendingProceed => Lifecycle::PendingProceed,
        L::InService => Lifecycle::InService,
        L::Terminating => Lifecycle::Terminating,
        L::TerminatingWait => Lifecycle::TerminatingWait,
        L::TerminatingProceed => Lifecycle::TerminatingProceed,
        L::Terminated => Lifecycle::Terminated,
        L::Detaching => Lifecycle::Detaching,
        L::Detached => Lifecycle::Detached,
        L::EnteringStandby => Lifecycle::EnteringStandby,
        L::Standby => Lifecycle::Standby,
        other => Lifecycle::Other(other.as_str().to_string()),
    }
}

/// Split `items` into batches of at most `size`: the batch limits of the
/// read calls (10 services, 100 tasks, 20 target group names, …).
pub fn batches<T>(items: &[T], size: usize) -> impl Iterator<Item = &[T]> {
    items.chunks(size.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn dt(secs: i64) -> DateTime {
        DateTime::from_secs(secs)
    }

    #[test]
    fn a_service_with_two_deployments_is_deploying() {
        let d = |status: &str| ecs::Deployment::builder().status(status).build();
        let s = ecs::Service::builder()
            .service_arn("arn:aws:ecs:us-east-1:1:service/appCluster/appService")
            .status("ACTIVE")
            .desired_count(3)
            .running_count(2)
            .pending_count(1)
            .task_definition("arn:td:1")
            .deployments(d("PRIMARY"))
            .deployments(d("ACTIVE"))
            .load_balancers(
                ecs::LoadBalancer::builder()
                    .target_group_arn("arn:tg:front")
                    .container_name("appContainer")
                    .container_port(80)
                    .build(),
            )
            .build();
        let o = service(&s);
        assert!(o.deploying);
        assert_eq!((o.desired_count, o.running_count, o.pending_count), (3, 2, 1));
        assert_eq!(o.load_balancer_target_groups, vec!["arn:tg:front"]);
        assert_eq!(o.status, ServiceStatus::Active);
    }

    #[test]
    fn a_single_primary_deployment_is_deploying_only_while_in_progress() {
        let svc = |state: Option<ecs::DeploymentRolloutState>| {
            ecs::Service::builder()
                .deployments(ecs::Deployment::builder().status("PRIMARY").set_rollout_state(state).build())
                .build()
        };
        assert!(!service(&svc(None)).deploying);
        assert!(!service(&svc(Some(ecs::DeploymentRolloutState::Completed))).deploying);
        assert!(service(&svc(Some(ecs::DeploymentRolloutState::InProgress))).deploying);
    }

    #[test]
    fn missing_is_not_found_other_failures_are_unavailable() {
        let f = |reason: &str| {
            ecs::Failure::builder().arn("arn:aws:ecs:us-east-1:1:service/appCluster/x").reason(reason).build()
        };
        assert!(matches!(failure(&f("MISSING")), ResourceError::NotFound(_)));
        assert!(matches!(failure(&f("INTERNAL_ERROR")), ResourceError::Unavailable(_)));
    }

    fn app_taskdef() -> ecs::TaskDefinition {
        let pm = |c: i32, h: i32| ecs::PortMapping::builder().container_port(c).host_port(h).build();
        ecs::TaskDefinition::builder()
            .task_definition_arn("arn:aws:ecs:us-east-1:1:task-definition/appTaskDefinition:1")
            .container_definitions(
                ecs::ContainerDefinition::builder()
                    .name("appContainer")
                    .memory(512)
                    .port_mappings(pm(80, 80))
                    .port_mappings(pm(8000, 8000))
                    .port_mappings(pm(9000, 0))
                    .build(),
            )
            .build()
    }

    #[test]
    fn task_definition_gives_size_and_only_static_host_ports() {
        let info = task_definition(&app_taskdef());
        assert_eq!(info.size, Some(TaskSize { cpu: 0, memory: 512 }));
        let ports: Vec<(u16, u16)> = info.static_bindings.iter().map(|b| (b.container_port, b.host_port)).collect();
        assert_eq!(ports, vec![(80, 80), (8000, 8000)], "dynamic 9000 is unknown");
        let sized = ecs::TaskDefinition::builder().cpu("256").memory("1024").build();
        assert_eq!(task_definition(&sized).size, Some(TaskSize { cpu: 256, memory: 1024 }));
    }

    fn instances() -> HashMap<String, ContainerInstanceInfo> {
        HashMap::from([(
            "arn:ci:1".to_string(),
            ContainerInstanceInfo {
                ec2_instance_id: Some("i-0abc".into()),
                tasks: 1,
                subnet: None,
                arn: None,
                draining: false,
            },
        )])
    }

    #[test]
    fn task_bindings_come_from_network_bindings_when_reported() {
        let t = ecs::Task::builder()
            .task_arn("arn:task:1")
            .last_status("RUNNING")
            .desired_status("RUNNING")
            .container_instance_arn("arn:ci:1")
            .started_at(dt(1_700_000_000))
            .containers(
                ecs::Container::builder()
                    .name("appContainer")
                    .network_bindings(ecs::NetworkBinding::builder().container_port(80).host_port(32768).build())
                    .build(),
            )
            .build();
        let td = task_definition(&app_taskdef());
        let o = task(&t, &instances(), Some(&td));
        assert_eq!(o.instance_id.as_deref(), Some("i-0abc"));
        assert_eq!(o.host_port("appContainer", 80), Some(32768));
        // Reported bindings win: the static 8000 is not added.
        assert_eq!(o.host_port("appContainer", 8000), None);
        assert!(o.is_serving());
        assert_eq!(o.started_at, Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)));
    }

    #[test]
    fn running_task_without_bindings_uses_the_task_definitions_static_ports() {
        let t = ecs::Task::builder()
            .task_arn("arn:task:2")
            .last_status("RUNNING")
            .desired_status("RUNNING")
            .container_instance_arn("arn:ci:unknown")
            .containers(ecs::Container::builder().name("appContainer").build())
            .build();
        let td = task_definition(&app_taskdef());
        let o = task(&t, &instances(), Some(&td));
        assert_eq!(o.host_port("appContainer", 80), Some(80));
        assert_eq!(o.host_port("appContainer", 8000), Some(8000));
        assert_eq!(o.instance_id, None, "unknown container instance");

        // A pending task has no ports yet, whatever the definition says.
        let pending = ecs::Task::builder().last_status("PENDING").desired_status("RUNNING").build();
        assert!(task(&pending, &instances(), Some(&td)).bindings.is_empty());

        // A stopped task held them: they attribute its stale targets.
        let stopped = ecs::Task::builder()
            .last_status("STOPPED")
            .desired_status("STOPPED")
            .containers(ecs::Container::builder().name("appContainer").build())
            .build();
        assert_eq!(task(&stopped, &instances(), Some(&td)).host_port("appContainer", 8000), Some(8000));
    }

    #[test]
    fn awsvpc_task_private_ip_comes_from_its_eni_attachment() {
        let kv = |n: &str, v: &str| ecs::KeyValuePair::builder().name(n).value(v).build();
        let t = ecs::Task::builder()
            .last_status("RUNNING")
            .desired_status("STOPPED")
            .attachments(
                ecs::Attachment::builder()
                    .r#type("ElasticNetworkInterface")
                    .details(kv("subnetId", "subnet-1"))
                    .details(kv("privateIPv4Address", "10.0.2.17"))
                    .build(),
            )
            .build();
        let o = task(&t, &HashMap::new(), None);
        assert_eq!(o.private_ip.as_deref(), Some("10.0.2.17"));
        assert!(!o.is_serving(), "desired STOPPED");
    }

    #[test]
    fn target_group_targets_are_sorted_with_health() {
        let info = TargetGroupInfo {
            arn: "arn:tg".into(),
            name: "frontendTargetGroup".into(),
            target_type: TargetGroupType::Instance,
            port: Some(80),
        };
        let d = |id: &str, port: Option<i32>, state: elb::TargetHealthStateEnum| {
            elb::TargetHealthDescription::builder()
                .target(elb::TargetDescription::builder().id(id).set_port(port).build())
                .target_health(elb::TargetHealth::builder().state(state).build())
                .build()
        };
        let o = target_group(
            &info,
            &[
                d("i-2", Some(80), elb::TargetHealthStateEnum::Draining),
                d("i-1", None, elb::TargetHealthStateEnum::Healthy),
            ],
        );
        assert_eq!(o.targets.len(), 2);
        assert_eq!(o.targets[0].target, Target { id: "i-1".into(), port: 80 });
        assert_eq!(o.targets[0].health, TargetHealth::Healthy);
        assert_eq!(o.targets[1].health, TargetHealth::Draining);
    }

    #[test]
    fn alarm_definition_defaults_match_cloudwatch() {
        let a = cw::MetricAlarm::builder()
            .alarm_name("ballast-appCluster-appService-cpu-high")
            .namespace("AWS/ECS")
            .metric_name("CPUUtilization")
            .statistic(cw::Statistic::Average)
            .dimensions(cw::Dimension::builder().name("ServiceName").value("appService").build())
            .dimensions(cw::Dimension::builder().name("ClusterName").value("appCluster").build())
            .period(60)
            .evaluation_periods(3)
            .threshold(70.0)
            .comparison_operator(cw::ComparisonOperator::GreaterThanOrEqualToThreshold)
            .state_value(cw::StateValue::Alarm)
            .state_updated_timestamp(dt(1_800_000_000))
            .build();
        let o = alarm(&a);
        assert_eq!(o.definition.datapoints_to_alarm, 3, "defaults to evaluation periods");
        assert_eq!(o.definition.missing_data, MissingData::Missing);
        assert_eq!(o.definition.statistic, Statistic::Average);
        assert_eq!(
            o.definition.dimensions,
            vec![
                ("ClusterName".to_string(), "appCluster".to_string()),
                ("ServiceName".to_string(), "appService".to_string())
            ],
            "sorted by name"
        );
        assert_eq!(o.state, AlarmState::Alarm);
        assert_eq!(o.definition.description, "");
    }

    #[test]
    fn alarm_statistic_and_comparison_keep_what_ballast_does_not_name() {
        let a = cw::MetricAlarm::builder()
            .extended_statistic("p90")
            .comparison_operator(cw::ComparisonOperator::LessThanLowerThreshold)
            .build();
        let o = alarm(&a);
        assert_eq!(o.definition.statistic, Statistic::Extended("p90".into()));
        assert_eq!(o.definition.comparison, Comparison::Other("LessThanLowerThreshold".into()));
        let a = cw::MetricAlarm::builder()
            .statistic(cw::Statistic::Maximum)
            .comparison_operator(cw::ComparisonOperator::LessThanThreshold)
            .build();
        let o = alarm(&a);
        assert_eq!(
            (o.definition.statistic, o.definition.comparison),
            (Statistic::Maximum, Comparison::LessThanThreshold)
        );
    }

    #[test]
    fn enums_map_to_ballasts_with_the_rest_kept_as_written() {
        let status = |s: &str| service(&ecs::Service::builder().status(s).build()).status;
        assert_eq!(status("ACTIVE"), ServiceStatus::Active);
        assert_eq!(status("DRAINING"), ServiceStatus::Draining);
        assert_eq!(status("INACTIVE"), ServiceStatus::Inactive);
        assert_eq!(status("PAUSED"), ServiceStatus::Other("PAUSED".into()));

        let tg_type = |t: Option<elb::TargetTypeEnum>| {
            let tg = elb::TargetGroup::builder().target_group_arn("arn:tg").set_target_type(t).build();
            target_group_info(&tg).unwrap().target_type
        };
        assert_eq!(tg_type(None), TargetGroupType::Instance, "ELBv2's default");
        assert_eq!(tg_type(Some(elb::TargetTypeEnum::Ip)), TargetGroupType::Ip);
        assert_eq!(tg_type(Some(elb::TargetTypeEnum::Alb)), TargetGroupType::Alb);

        let state = |s: asg::LifecycleState| {
            let g = asg::AutoScalingGroup::builder()
                .instances(asg::Instance::builder().instance_id("i-1").lifecycle_state(s).build())
                .build();
            group(&g, &HashMap::new()).instances.remove(0)
        };
        assert_eq!(state(asg::LifecycleState::PendingWait).lifecycle_state, Lifecycle::PendingWait);
        assert!(state(asg::LifecycleState::PendingWait).is_active());
        assert_eq!(state(asg::LifecycleState::TerminatingWait).lifecycle_state, Lifecycle::TerminatingWait);
        assert!(!state(asg::LifecycleState::Standby).is_active());
        let warm = state(asg::LifecycleState::WarmedPending);
        assert_eq!(warm.lifecycle_state, Lifecycle::Other("Warmed:Pending".into()));
        assert!(!warm.is_active());
    }

    #[test]
    fn latest_sample_is_the_newest_whatever_the_order() {
        let r = cw::MetricDataResult::builder()
            .timestamps(dt(120))
            .timestamps(dt(180))
            .timestamps(dt(60))
            .values(40.0)
            .values(55.5)
            .values(10.0)
            .build();
        let s = latest_sample(&r).unwrap();
        assert_eq!(s.value, 55.5);
        assert_eq!(s.at, SystemTime::UNIX_EPOCH + Duration::from_secs(180));
        assert_eq!(latest_sample(&cw::MetricDataResult::builder().build()), None);
    }

    #[test]
    fn group_maps_subnets_instances_tasks_and_managed_scaling() {
        let inst = |id: &str, state: asg::LifecycleState, health: &str| {
            asg::Instance::builder()
                .instance_id(id)
                .availability_zone("us-east-1a")
                .lifecycle_state(state)
                .health_status(health)
                .build()
        };
        let g = asg::AutoScalingGroup::builder()
            .auto_scaling_group_name("ecsAutoScalingGroup")
            .auto_scaling_group_arn("arn:asg")
            .min_size(1)
            .max_size(10)
            .desired_capacity(2)
            .vpc_zone_identifier("subnet-a, subnet-b")
            .instances(inst("i-2", asg::LifecycleState::Pending, "Healthy"))
            .instances(inst("i-1", asg::LifecycleState::InService, "Unhealthy"))
            .tags(asg::TagDescription::builder().key(MANAGED_SCALING_TAG).value("").build())
            .build();
        let ci = container_instance(
            &ecs::ContainerInstance::builder()
                .ec2_instance_id("i-1")
                .running_tasks_count(1)
                .pending_tasks_count(1)
                .attributes(
                    ecs::Attribute::builder().name("ecs.availability-zone").value("us-east-1a").build().unwrap(),
                )
                .attributes(ecs::Attribute::builder().name("ecs.subnet-id").value("subnet-a").build().unwrap())
                .build(),
        );
        let o = group(&g, &HashMap::from([("i-1".to_string(), &ci)]));
        assert_eq!(o.subnets, vec!["subnet-a", "subnet-b"]);
        assert_eq!((o.min_size, o.max_size, o.desired_capacity), (1, 10, 2));
        assert!(o.managed_scaling);
        assert_eq!(o.instances[0].id, "i-1");
        assert_eq!(o.instances[0].tasks, Some(2));
        assert_eq!(o.instances[0].subnet.as_deref(), Some("subnet-a"), "the ECS agent's ecs.subnet-id");
        assert!(!o.instances[0].healthy);
        assert_eq!(
            (o.instances[1].tasks, o.instances[1].subnet.as_deref()),
            (None, None),
            "not registered in the cluster"
        );
        assert_eq!(o.instances[1].lifecycle_state, Lifecycle::Pending);
        assert!(o.instances[1].is_active());
    }

    #[test]
    fn scaling_marks_come_from_the_tags_and_malformed_ones_are_absent() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_946_400);
        let tag = |k: &str, v: &str| ecs::Tag::builder().key(k).value(v).build();
        let s = ecs::Service::builder()
            .tags(tag(marks::LAST_SCALE_IN, "2026-11-29T10:00:00Z 3"))
            .tags(tag(marks::LAST_SCALE_OUT, "not a time 5"))
            .tags(tag("team", "app"))
            .build();
        let m = service(&s).scaling_marks;
        assert_eq!((m.last_in, m.last_out), (Some((t, 3)), None));
        assert_eq!(service(&ecs::Service::builder().build()).scaling_marks, Default::default(), "no tags");

        let g = |value: &str| {
            let tag = asg::TagDescription::builder().key(marks::LAST_CAPACITY_CHANGE).value(value).build();
            group(&asg::AutoScalingGroup::builder().tags(tag).build(), &HashMap::new()).last_capacity_change
        };
        assert_eq!(g("2026-11-29T10:00:00Z"), Some(t));
        assert_eq!(g("2026-11-29"), None);
        assert_eq!(group(&asg::AutoScalingGroup::builder().build(), &HashMap::new()).last_capacity_change, None);
    }

    #[test]
    fn batching_arithmetic_follows_the_api_limits() {
        // 25 services → 3 DescribeServices; 100 tasks → 1 DescribeTasks;
        // 101 → 2; 21 target group names → 2; 0 items → no call.
        let calls = |n: usize, size: usize| batches(&vec![0u8; n], size).count();
        assert_eq!(calls(25, 10), 3);
        assert_eq!(calls(100, 100), 1);
        assert_eq!(calls(101, 100), 2);
        assert_eq!(calls(21, 20), 2);
        assert_eq!(calls(0, 10), 0);
        let items: Vec<u32> = (0..25).collect();
        let sizes: Vec<usize> = batches(&items, 10).map(<[u32]>::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
    }
}
