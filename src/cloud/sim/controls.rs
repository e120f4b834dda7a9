//! Test controls: other actors and events (an operator, an autoscaler, a
//! failing instance), resource creation for worlds built by hand, fault
//! injection, and read-only views. None of these is recorded as a call.
//! Each first brings the world up to the clock's time, and lets the
//! actors react afterwards.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use super::world::{ContainerDef, Group, Service, TargetGroup, TargetGroupInfo, TaskDef, World};
use super::{ACCOUNT_ID, SimCloud};
use crate::cloud::CloudError;
use crate::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef, TargetType};
use crate::observed::{
    AlarmState, MetricSample, ObservedAlarm, ObservedGroup, ObservedService, ObservedTargetGroup, Target, TaskStatus,
};

/// An ECS service to create in a hand-built world.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceSpec {
    /// Region, cluster (created if missing) and service name.
    pub id: ServiceId,
    pub desired_count: u32,
    /// The task definition's containers.
    pub containers: Vec<ContainerSpec>,
    /// awsvpc network mode: each task gets its own address and no host port.
    pub awsvpc: bool,
    /// Task CPU units.
    pub cpu: u32,
    /// Task MiB.
    pub memory: u32,
    /// `deploymentConfiguration.minimumHealthyPercent` (ECS's default:
    /// [`DEFAULT_MINIMUM_HEALTHY_PERCENT`](super::DEFAULT_MINIMUM_HEALTHY_PERCENT)).
    pub minimum_healthy_percent: u32,
    /// `deploymentConfiguration.maximumPercent` (ECS's default:
    /// [`DEFAULT_MAXIMUM_PERCENT`](super::DEFAULT_MAXIMUM_PERCENT)).
    pub maximum_percent: u32,
}

/// A container of a [`ServiceSpec`]'s task definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    /// The container name target group bindings refer to.
    pub name: String,
    /// Container ports, each bound to the same static host port.
    pub ports: Vec<u16>,
}

/// An Auto Scaling group to create in a hand-built world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    /// Region and group name.
    pub id: GroupId,
    /// The ECS cluster its instances join.
    pub cluster: Option<String>,
    pub min: u32,
    pub max: u32,
    /// Clamped to [min, max].
    pub desired: u32,
    /// VPCZoneIdentifier: instances spread over these.
    pub subnets: Vec<String>,
    /// CPU units and MiB each instance offers ECS.
    pub instance_cpu: u32,
    pub instance_memory: u32,
}

fn not_found(what: String) -> CloudError {
    CloudError::NotFound(what)
}

impl World {
    pub fn create_service(&mut self, spec: &ServiceSpec) -> Result<String, CloudError> {
        let id = &spec.id;
        if self.services.contains_key(id) {
            return Err(CloudError::Rejected {
                service: "ecs",
                operation: "CreateService",
                message: format!("InvalidParameterException: service {id} already exists"),
            });
        }
        let revision =
            self.task_defs.keys().filter(|arn| arn.contains(&format!(":task-definition/{}:", id.service))).count() + 1;
        let td_arn = format!("arn:aws:ecs:{}:{ACCOUNT_ID}:task-definition/{}:{revision}", id.region, id.service);
        self.task_defs.insert(
            td_arn.clone(),
            TaskDef {
                arn: td_arn.clone(),
                awsvpc: spec.awsvpc,
                containers: spec
                    .containers
                    .iter()
                    .map(|c| ContainerDef { name: c.name.clone(), ports: c.ports.iter().map(|&p| (p, p)).collect() })
                    .collect(),
                cpu: spec.cpu,
                memory: spec.memory,
            },
        );
        let arn = format!("arn:aws:ecs:{}:{ACCOUNT_ID}:service/{}/{}", id.region, id.cluster, id.service);
        self.clusters.insert((id.region.clone(), id.cluster.clone()));
        self.services.insert(
            id.clone(),
            Service {
                arn: arn.clone(),
                desired_count: spec.desired_count,
                task_def: td_arn,
                load_balancers: Vec::new(),
                deployment: 1,
                rolling: false,
                broken_deployment: None,
                minimum_healthy_percent: spec.minimum_healthy_percent,
                maximum_percent: spec.maximum_percent,
                cpu_acc: 0.0,
                cpu_covered: 0.0,
                datapoints: VecDeque::new(),
                events: VecDeque::new(),
                tags: BTreeMap::new(),
            },
        );
        Ok(arn)
    }

    pub fn create_group(&mut self, spec: &GroupSpec) -> Result<String, CloudError> {
        if self.groups.contains_key(&spec.id) {
            return Err(CloudError::Rejected {
                service: "autoscaling",
                operation: "CreateAutoScalingGroup",
                message: format!("AlreadyExists: group {} already exists", spec.id),
            });
        }
        for subnet in &spec.subnets {
            self.zone_of(&spec.id.region, subnet);
        }
        if let Some(cluster) = &spec.cluster {
            self.clusters.insert((spec.id.region.clone(), cluster.clone()));
        }
        let arn = self.new_group_arn(&spec.id);
        self.groups.insert(
            spec.id.clone(),
            Group {
                arn: arn.clone(),
                min: spec.min,
                max: spec.max,
                desired: spec.desired.clamp(spec.min, spec.max),
                subnets: spec.subnets.clone(),
                managed_scaling: false,
                tags: BTreeMap::new(),
                cluster: spec.cluster.clone(),
                instance_cpu: spec.instance_cpu,
                instance_memory: spec.instance_memory,
            },
        );
        Ok(arn)
    }

    /// Create a target group; `arn` keeps a given ARN (a desired state may
    /// name one), otherwise a new one is made.
    pub fn create_target_group(
        &mut self,
        region: &str,
        name: &str,
        arn: Option<&str>,
        target_type: TargetType,
        port: u16,
    ) -> String {
        if let Some(existing) = self.target_group_by_name(region, name) {
            return existing.info.arn.clone();
        }
        let arn = match arn {
            Some(arn) => arn.to_string(),
            None => self.new_target_group_arn(region, name),
        };
        self.target_groups.insert(
            arn.clone(),
            TargetGroup {
                info: TargetGroupInfo { arn: arn.clone(), name: name.to_string(), target_type, port },
                region: region.to_string(),
                targets: Default::default(),
            },
        );
        arn
    }

    /// The ARN of a target group named by a desired state.
    pub fn resolve_target_group(&self, id: &TargetGroupId) -> Option<String> {
        match &id.target_group {
            TargetGroupRef::Name(name) => self.target_group_by_name(&id.region, name).map(|tg| tg.info.arn.clone()),
            TargetGroupRef::Arn(arn) => self.target_groups.contains_key(arn).then(|| arn.clone()),
        }
    }

    fn service_mut(&mut self, id: &ServiceId) -> Result<&mut Service, CloudError> {
        self.services.get_mut(id).ok_or_else(|| not_found(format!("ECS service {id}")))
    }
}

impl SimCloud {
    /// Run `f` on the world brought up to now, then let the actors react.
    pub(super) fn control<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        let mut world = self.world();
        let result = f(&mut world);
        world.settle();
        result
    }

    // ---- building a world by hand --------------------------------------

    /// Put a subnet in an availability zone (unknown subnets get zones of
    /// their own in order of first use).
    pub fn add_subnet(&self, region: &str, subnet: &str, zone: &str) {
        self.control(|w| {
            w.subnets.insert((region.to_string(), subnet.to_string()), zone.to_string());
        });
    }

    /// Create an ECS service (and its cluster and task definition). Its
    /// tasks start like any service's. Returns the service ARN.
    pub fn create_service(&self, spec: &ServiceSpec) -> Result<String, CloudError> {
        self.control(|w| w.create_service(spec))
    }

    /// Create an Auto Scaling group; its instances launch like any group's.
    /// Returns the group ARN.
    pub fn create_group(&self, spec: &GroupSpec) -> Result<String, CloudError> {
        self.control(|w| w.create_group(spec))
    }

    /// Create a target group (or return the ARN of the one with that name).
    pub fn create_target_group(&self, region: &str, name: &str, target_type: TargetType, port: u16) -> String {
        self.control(|w| w.create_target_group(region, name, None, target_type, port))
    }

    // ---- other actors ----------------------------------------------------

    /// Someone else's UpdateService(desiredCount).
    pub fn set_desired_count(&self, id: &ServiceId, count: u32) -> Result<(), CloudError> {
        self.control(|w| {
            let before = w.before_desired_count(id);
            w.service_mut(id)?.desired_count = count;
            w.lag_reads(before);
            Ok(())
        })
    }

    /// Someone else's SetDesiredCapacity, with the same validation.
    pub fn set_desired_capacity(&self, id: &GroupId, capacity: u32) -> Result<(), CloudError> {
        self.control(|w| {
            let before = w.before_capacity(id);
            w.set_desired_capacity(id, capacity)?;
            w.lag_reads(before);
            Ok(())
        })
    }

    /// Someone else's DeregisterTargets.
    pub fn deregister_target(&self, tg: &TargetGroupId, target: Target) -> Result<(), CloudError> {
        self.control(|w| {
            let arn =
                w.resolve_target_group(tg).ok_or_else(|| not_found(format!("target group {}", tg.target_group)))?;
            w.deregister_targets(&arn, &[target])
        })
    }

    /// Someone else's RegisterTargets (a foreign target), with AWS's validation.
    pub fn register_target(&self, tg: &TargetGroupId, target: Target) -> Result<(), CloudError> {
        self.control(|w| {
            let arn =
                w.resolve_target_group(tg).ok_or_else(|| not_found(format!("target group {}", tg.target_group)))?;
            w.register_targets(&arn, &[target])
        })
    }

    /// Someone edits an alarm's threshold (a PutMetricAlarm of their own).
    pub fn set_alarm_threshold(&self, region: &str, name: &str, threshold: f64) -> Result<(), CloudError> {
        self.control(|w| {
            let key = (region.to_string(), name.to_string());
            let mut definition =
                w.alarms.get(&key).ok_or_else(|| not_found(format!("alarm {name}")))?.definition.clone();
            definition.threshold = threshold;
            w.put_alarm(region, definition);
            Ok(())
        })
    }

    /// SetAlarmState: holds until the alarm's next evaluation.
    pub fn set_alarm_state(&self, region: &str, name: &str, state: AlarmState) -> Result<(), CloudError> {
        self.control(|w| {
            let now = w.now;
            let alarm = w
                .alarms
                .get_mut(&(region.to_string(), name.to_string()))
                .ok_or_else(|| not_found(format!("alarm {name}")))?;
            if alarm.state != state {
                alarm.state = state;
                alarm.state_updated = now;
            }
            Ok(())
        })
    }

    /// Give the service its own `loadBalancers` (target group ARNs): ECS
    /// then registers its running tasks there and deregisters stopping ones.
    pub fn set_service_load_balancers(&self, id: &ServiceId, target_group_arns: Vec<String>) -> Result<(), CloudError> {
        self.control(|w| {
            for arn in &target_group_arns {
                if !w.target_groups.contains_key(arn) {
                    return Err(not_found(format!("target group {arn}")));
                }
            }
            w.service_mut(id)?.load_balancers = target_group_arns.clone();
            let running: Vec<String> = w
                .tasks
                .values()
                .filter(|t| &t.service == id && t.is_live() && t.last_status == TaskStatus::Running)
                .map(|t| t.arn.clone())
                .collect();
            for arn in running {
                w.register_with_service_load_balancers(id, &arn);
            }
            Ok(())
        })
    }

    /// Register or remove an Application Auto Scaling scalable target on
    /// the service's desired count.
    pub fn set_scalable_target(&self, id: &ServiceId, on: bool) -> Result<(), CloudError> {
        self.control(|w| {
            w.service_mut(id)?;
            if on {
                w.scalable_targets.insert(id.clone());
            } else {
                w.scalable_targets.remove(id);
            }
            Ok(())
        })
    }

    /// Tag the group as driven by ECS managed scaling, or untag it.
    pub fn set_managed_scaling(&self, id: &GroupId, on: bool) -> Result<(), CloudError> {
        self.control(|w| {
            w.groups.get_mut(id).ok_or_else(|| not_found(format!("Auto Scaling group {id}")))?.managed_scaling = on;
            Ok(())
        })
    }

    /// The instance dies without notice: it turns unhealthy and
    /// terminating, its tasks are lost, and its group replaces it.
    pub fn kill_instance(&self, instance_id: &str) -> Result<(), CloudError> {
        self.control(|w| {
            let instance =
                w.instances.get_mut(instance_id).ok_or_else(|| not_found(format!("instance {instance_id}")))?;
            instance.healthy = false;
            w.terminate_instance(instance_id);
            Ok(())
        })
    }

    /// ECS StopTask by someone else; the service scheduler replaces the task.
    pub fn stop_task(&self, task_arn: &str) -> Result<(), CloudError> {
        self.control(|w| {
            if !w.tasks.contains_key(task_arn) {
                return Err(not_found(format!("task {task_arn}")));
            }
            w.stop_task(task_arn);
            Ok(())
        })
    }

    /// Force a new deployment: tasks are replaced one at a time, and the
    /// service reports `deploying` until all replacements run.
    pub fn deploy(&self, id: &ServiceId) -> Result<(), CloudError> {
        self.new_deployment(id, false)
    }

    /// Like [`SimCloud::deploy`], with a broken revision: its tasks run
    /// but never answer, so their targets never become healthy.
    pub fn deploy_broken(&self, id: &ServiceId) -> Result<(), CloudError> {
        self.new_deployment(id, true)
    }

    fn new_deployment(&self, id: &ServiceId, broken: bool) -> Result<(), CloudError> {
        self.control(|w| {
            let service = w.service_mut(id)?;
            service.deployment += 1;
            service.rolling = true;
            if broken {
                service.broken_deployment = Some(service.deployment);
            }
            Ok(())
        })
    }

    /// Requests per second the service's running tasks share, from now
    /// on (a one-point [`LoadCurve`](super::LoadCurve)).
    pub fn set_load(&self, id: &ServiceId, requests_per_second: f64) -> Result<(), CloudError> {
        self.set_load_curve(id, super::LoadCurve::constant(requests_per_second.max(0.0)))
    }

    // ---- fault injection -------------------------------------------------

    /// While set, every call fails `Unreachable`.
    pub fn set_unreachable(&self, unreachable: bool) {
        self.control(|w| w.api.unreachable = unreachable);
    }

    /// The next call of `operation` (AWS's name, e.g. `DescribeServices`)
    /// fails with `error`. Several queue up in order.
    pub fn fail_next(&self, operation: &str, error: CloudError) {
        self.control(|w| w.api.fail_next.push((operation.to_string(), error)));
    }

    /// Every `n`th call from now on fails `Throttled`; 0 turns it off.
    pub fn throttle_every(&self, n: u64) {
        self.control(|w| {
            w.api.throttle_every = n;
            w.api.throttle_counter = 0;
        });
    }

    // ---- views -------------------------------------------------------------

    /// The time the world has been brought up to.
    pub fn now(&self) -> SystemTime {
        self.world().now
    }

    /// The service as `observe` would show it, with its task size.
    pub fn service(&self, id: &ServiceId) -> Option<ObservedService> {
        self.world().service_view(id, true)
    }

    /// The service's live tasks under scale-in protection now, with when
    /// it ends (what GetTaskProtection would answer).
    pub fn protected_tasks(&self, id: &ServiceId) -> BTreeMap<String, SystemTime> {
        let world = self.world();
        let now = world.now;
        world
            .tasks
            .values()
            .filter(|t| &t.service == id && t.is_live())
            .filter_map(|t| Some((t.arn.clone(), t.protected_until.filter(|u| *u > now)?)))
            .collect()
    }

    /// The target group as `observe` would show it.
    pub fn target_group(&self, id: &TargetGroupId) -> Option<ObservedTargetGroup> {
        let world = self.world();
        let arn = world.resolve_target_group(id)?;
        world.target_group_view(&arn)
    }

    /// The target group's ARN.
    pub fn target_group_arn(&self, id: &TargetGroupId) -> Option<String> {
        self.world().resolve_target_group(id)
    }

    /// The group as `observe` would show it, with task counts of instances
    /// in the group's own cluster.
    pub fn group(&self, id: &GroupId) -> Option<ObservedGroup> {
        let world = self.world();
        let cluster = world.groups.get(id)?.cluster.clone();
        world.group_view(id, cluster.as_deref())
    }

    /// The alarm as `observe` would show it.
    pub fn alarm(&self, region: &str, name: &str) -> Option<ObservedAlarm> {
        let world = self.world();
        let alarm = world.alarms.get(&(region.to_string(), name.to_string()))?;
        Some(ObservedAlarm {
            definition: alarm.definition.clone(),
            state: alarm.state,
            state_updated: alarm.state_updated,
            arn: alarm.arn(region),
            managed_by_ballast: None,
        })
    }

    /// The latest complete CPU datapoint of the service.
    pub fn cpu(&self, id: &ServiceId) -> Option<MetricSample> {
        self.world().latest_cpu(id)
    }

    /// The service's ECS events, oldest first.
    pub fn service_events(&self, id: &ServiceId) -> Vec<String> {
        self.world().services.get(id).map(|s| s.events.iter().map(|(_, m)| m.clone()).collect()).unwrap_or_default()
    }
}
