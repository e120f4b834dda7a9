//! Observing: the reads of the table in [`crate::cloud`], batched and
//! recorded exactly as the AWS adapter makes them, and the views of the
//! world in ballast's observed types.

use std::collections::{BTreeMap, BTreeSet};

use super::world::{TargetGroupInfo, World};
use crate::cloud::{CloudError, Scope, marks};
use crate::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef, TargetType};
use crate::observed::{
    Observed, ObservedAlarm, ObservedGroup, ObservedInstance, ObservedService, ObservedTarget, ObservedTargetGroup,
    ObservedTask, ProtectionRead, ResourceError, ServiceStatus, TargetGroupType, TaskStatus,
};

use crate::cloud::batch;

/// A deployment's ID as ECS writes it (`ecs-svc/…`), and as the tasks it
/// starts carry it in `startedBy`.
fn deployment_id(n: u64) -> String {
    format!("ecs-svc/{n:019}")
}

/// Pages a paginated list takes: always at least one call.
fn pages(items: usize, per_page: usize) -> usize {
    items.div_ceil(per_page).max(1)
}

/// `Unreachable` aborts the whole observation; other failures are the
/// covered resources' own.
fn per_resource(err: CloudError) -> Result<ResourceError, CloudError> {
    match err {
        CloudError::Unreachable { .. } => Err(err),
        other => Ok(ResourceError::Unavailable(other.to_string())),
    }
}

/// Make `count` calls of one operation; the first failure ends them.
fn calls(world: &mut World, service: &'static str, operation: &'static str, count: usize) -> Result<(), CloudError> {
    for _ in 0..count {
        world.api(service, operation, false, |_| Ok(()))?;
    }
    Ok(())
}

/// Mark every still-readable service of `ids` unavailable.
fn spoil(
    results: &mut BTreeMap<ServiceId, Result<ObservedService, ResourceError>>,
    ids: &[ServiceId],
    err: &ResourceError,
) {
    for id in ids {
        if let Some(r) = results.get_mut(id)
            && r.is_ok()
        {
            *r = Err(err.clone());
        }
    }
}

pub(super) fn observe(world: &mut World, scope: &Scope) -> Result<Observed, CloudError> {
    let mut regions: BTreeSet<String> = BTreeSet::new();
    regions.extend(scope.services.iter().map(|s| s.region.clone()));
    regions.extend(scope.target_groups.iter().map(|t| t.region.clone()));
    regions.extend(scope.alarms.iter().map(|(r, _)| r.clone()));
    regions.extend(scope.cpu.iter().map(|s| s.region.clone()));
    regions.extend(scope.groups.iter().map(|(g, _)| g.region.clone()));

    let mut observed = Observed::default();
    for region in &regions {
        observe_region(world, scope, region, &mut observed)?;
    }
    world.hide_lagging_writes(&mut observed);
    Ok(observed)
}

fn observe_region(world: &mut World, scope: &Scope, region: &str, out: &mut Observed) -> Result<(), CloudError> {
    let in_region = |id: &&ServiceId| id.region == region;

    // Services, per cluster, 10 per DescribeServices.
    let mut by_cluster: BTreeMap<String, Vec<ServiceId>> = BTreeMap::new();
    for id in scope.services.iter().filter(in_region) {
        by_cluster.entry(id.cluster.clone()).or_default().push(id.clone());
    }
    let mut services: BTreeMap<ServiceId, Result<ObservedService, ResourceError>> = BTreeMap::new();
    for ids in by_cluster.values() {
        for chunk in ids.chunks(batch::DESCRIBE_SERVICES) {
            match world.api("ecs", "DescribeServices", false, |_| Ok(())) {
                Ok(()) => {
                    for id in chunk {
                        let result = world
                            .service_view(id, false)
                            .ok_or_else(|| ResourceError::NotFound(format!("ECS service {id}")));
                        services.insert(id.clone(), result);
                    }
                }
                Err(err) => {
                    let err = per_resource(err)?;
                    for id in chunk {
                        services.insert(id.clone(), Err(err.clone()));
                    }
                }
            }
        }
    }
    let existing_clusters: BTreeSet<String> =
        by_cluster.keys().filter(|c| world.clusters.contains(&(region.to_string(), (*c).clone()))).cloned().collect();

    // Tasks of every cluster with services in scope.
    for cluster in &existing_clusters {
        let (running, stopped) = world.task_counts(region, cluster);
        let result = calls(world, "ecs", "ListTasks", pages(running, batch::LIST_PAGE))
            .and_then(|()| calls(world, "ecs", "ListTasks", pages(stopped, batch::LIST_PAGE)))
            .and_then(|()| calls(world, "ecs", "DescribeTasks", (running + stopped).div_ceil(batch::DESCRIBE_TASKS)));
        if let Err(err) = result {
            spoil(&mut services, &by_cluster[cluster], &per_resource(err)?);
        }
    }

    // Scale-in protection of the RUNNING tasks of the services that ask
    // for it, 100 tasks per GetTaskProtection, reused while fresh.
    let protection_clusters: BTreeSet<&String> = scope
        .protection
        .iter()
        .filter(in_region)
        .map(|id| &id.cluster)
        .filter(|c| existing_clusters.contains(*c))
        .collect();
    for cluster in protection_clusters {
        let ids: Vec<ServiceId> =
            scope.protection.iter().filter(|id| id.region == region && &id.cluster == cluster).cloned().collect();
        let running = world.running_tasks(&ids);
        let key = (region.to_string(), cluster.clone());
        let read =
            match world.api.protection_reads.covering(region, cluster, running.iter().map(String::as_str), scope.now) {
                Some(read) => Ok(read.clone()),
                None => {
                    let mut read = BTreeMap::new();
                    let mut result = Ok(());
                    for chunk in running.chunks(batch::TASK_PROTECTION) {
                        result = world.api("ecs", "GetTaskProtection", false, |w| {
                            read.extend(chunk.iter().map(|arn| (arn.clone(), w.protection_of(arn))));
                            Ok(())
                        });
                        if result.is_err() {
                            break;
                        }
                    }
                    match result {
                        Ok(()) => {
                            world.api.protection_reads.put(key, scope.now, read.clone());
                            Ok(read)
                        }
                        Err(err) => Err(per_resource(err)?),
                    }
                }
            };
        match &read {
            Ok(read) => {
                for id in &ids {
                    let Some(Ok(service)) = services.get_mut(id) else { continue };
                    service.protection = ProtectionRead::Read;
                    for task in &mut service.tasks {
                        task.protected_until = read.get(&task.arn).copied().flatten();
                    }
                }
            }
            Err(err) => {
                let err = ResourceError::Unavailable(format!("scale-in protection of its tasks: {err}"));
                spoil(&mut services, &ids, &err);
            }
        }
    }

    // Container instances of the services' and the groups' clusters.
    let group_clusters: BTreeSet<String> =
        scope.groups.iter().filter(|(g, _)| g.region == region).map(|(_, c)| c.clone()).collect();
    let mut instance_reads: BTreeMap<String, Result<(), ResourceError>> = BTreeMap::new();
    for cluster in existing_clusters.iter().chain(group_clusters.difference(&existing_clusters)) {
        if instance_reads.contains_key(cluster) {
            continue;
        }
        let exists = world.clusters.contains(&(region.to_string(), cluster.clone()));
        let result = if exists {
            let n = world.container_instance_count(region, cluster);
            calls(world, "ecs", "ListContainerInstances", pages(n, batch::LIST_PAGE)).and_then(|()| {
                calls(world, "ecs", "DescribeContainerInstances", n.div_ceil(batch::DESCRIBE_CONTAINER_INSTANCES))
            })
        } else if by_cluster.contains_key(cluster) {
            // DescribeServices already said the cluster is missing.
            Ok(())
        } else {
            // ClusterNotFoundException: the group's instances have no task counts.
            world.api("ecs", "ListContainerInstances", false, |_| Ok(()))
        };
        let result = match result {
            Ok(()) => Ok(()),
            Err(err) => Err(per_resource(err)?),
        };
        if let (Err(err), Some(ids)) = (&result, by_cluster.get(cluster)) {
            spoil(&mut services, ids, err);
        }
        instance_reads.insert(cluster.clone(), result);
    }

    // Task sizes: DescribeTaskDefinition once per ARN for the process's life.
    for id in scope.task_sizes.iter().filter(in_region) {
        let Some(Ok(service)) = services.get(id) else {
            continue;
        };
        let arn = service.task_definition.clone();
        if !world.api.task_sizes.contains_key(&arn) {
            let read = world.api("ecs", "DescribeTaskDefinition", false, |w| {
                w.task_defs
                    .get(&arn)
                    .map(|td| crate::observed::TaskSize { cpu: td.cpu, memory: td.memory })
                    .ok_or_else(|| CloudError::NotFound(format!("task definition {arn}")))
            });
            match read {
                Ok(size) => {
                    world.api.task_sizes.insert(arn.clone(), size);
                }
                Err(err) => {
                    spoil(&mut services, std::slice::from_ref(id), &per_resource(err)?);
                    continue;
                }
            }
        }
        if let Some(Ok(service)) = services.get_mut(id) {
            service.task_size = world.api.task_sizes.get(&arn).copied();
        }
    }

    // Other scalers: Application Auto Scaling, 50 resource ids per call.
    let scoped: Vec<ServiceId> = scope.services.iter().filter(in_region).cloned().collect();
    for chunk in scoped.chunks(batch::SCALABLE_TARGETS) {
        match world.api("application-autoscaling", "DescribeScalableTargets", false, |_| Ok(())) {
            Ok(()) => {
                for id in chunk {
                    if let Some(Ok(service)) = services.get_mut(id) {
                        service.scalable_target = world.scalable_targets.contains(id);
                    }
                }
            }
            Err(err) => spoil(&mut services, chunk, &per_resource(err)?),
        }
    }
    out.services.append(&mut services);

    observe_target_groups(world, scope, region, out)?;

    // Alarms, 100 names per DescribeAlarms; absent alarms are left out.
    let names: Vec<String> = scope.alarms.iter().filter(|(r, _)| r == region).map(|(_, n)| n.clone()).collect();
    for chunk in names.chunks(batch::ALARM_NAMES) {
        match world.api("cloudwatch", "DescribeAlarms", false, |_| Ok(())) {
            Ok(()) => {
                for name in chunk {
                    let key = (region.to_string(), name.clone());
                    if let Some(alarm) = world.alarms.get(&key) {
                        out.alarms.insert(
                            key,
                            Ok(ObservedAlarm {
                                definition: alarm.definition.clone(),
                                state: alarm.state,
                                state_updated: alarm.state_updated,
                                arn: alarm.arn(region),
                                managed_by_ballast: None,
                            }),
                        );
                    }
                }
            }
            Err(err) => {
                let err = per_resource(err)?;
                for name in chunk {
                    out.alarms.insert((region.to_string(), name.clone()), Err(err.clone()));
                }
            }
        }
    }

    // CPU, 500 queries per GetMetricData, at most once per metric period.
    let mut cpu: Vec<ServiceId> = Vec::new();
    for id in scope.cpu.iter().filter(in_region) {
        let alarms = out.alarms.iter().filter(|((r, _), _)| r == region).filter_map(|(_, a)| a.as_ref().ok());
        if let Some(t) = crate::cloud::reuse::alarmed_since(id, alarms) {
            world.api.cpu_reads.forget_older_than(id, t);
        }
        match world.api.cpu_reads.fresh(id, scope.now) {
            Some(sample) => {
                out.cpu.insert(id.clone(), Ok(*sample));
            }
            None => cpu.push(id.clone()),
        }
    }
    for chunk in cpu.chunks(batch::METRIC_QUERIES) {
        match world.api("cloudwatch", "GetMetricData", false, |_| Ok(())) {
            Ok(()) => {
                for id in chunk {
                    let sample = world.latest_cpu(id);
                    world.api.cpu_reads.put(id.clone(), scope.now, sample);
                    out.cpu.insert(id.clone(), Ok(sample));
                }
            }
            Err(err) => {
                let err = per_resource(err)?;
                for id in chunk {
                    out.cpu.insert(id.clone(), Err(err.clone()));
                }
            }
        }
    }

    // Groups, 50 names per DescribeAutoScalingGroups.
    let mut groups: Vec<(GroupId, String)> = scope.groups.iter().filter(|(g, _)| g.region == region).cloned().collect();
    groups.dedup_by(|a, b| a.0 == b.0);
    for chunk in groups.chunks(batch::GROUP_NAMES) {
        match world.api("autoscaling", "DescribeAutoScalingGroups", false, |_| Ok(())) {
            Ok(()) => {
                for (id, cluster) in chunk {
                    let result = match instance_reads.get(cluster) {
                        Some(Err(err)) => Err(err.clone()),
                        _ => world
                            .group_view(id, Some(cluster))
                            .ok_or_else(|| ResourceError::NotFound(format!("Auto Scaling group {id}"))),
                    };
                    out.groups.insert(id.clone(), result);
                }
            }
            Err(err) => {
                let err = per_resource(err)?;
                for (id, _) in chunk {
                    out.groups.insert(id.clone(), Err(err.clone()));
                }
            }
        }
    }
    // ballast's termination hook, one DescribeLifecycleHooks per group
    // that declares one; the others are not read.
    for (id, _) in &groups {
        let Some(Ok(group)) = out.groups.get_mut(id) else { continue };
        if !scope.hooks.contains(id) {
            group.termination_hook = None;
            continue;
        }
        if let Err(err) = world.api("autoscaling", "DescribeLifecycleHooks", false, |_| Ok(())) {
            let err = per_resource(err)?;
            out.groups.insert(id.clone(), Err(err));
        }
    }
    Ok(())
}

/// Target groups: names (and ARNs) resolved once by DescribeTargetGroups,
/// 20 per call, then DescribeTargetHealth once per group.
fn observe_target_groups(world: &mut World, scope: &Scope, region: &str, out: &mut Observed) -> Result<(), CloudError> {
    let ids: Vec<&TargetGroupId> = scope.target_groups.iter().filter(|t| t.region == region).collect();
    let mut unresolved_names: Vec<String> = Vec::new();
    let mut unresolved_arns: Vec<String> = Vec::new();
    for id in &ids {
        match &id.target_group {
            TargetGroupRef::Name(name) => {
                if !world.api.tg_by_name.contains_key(&(region.to_string(), name.clone()))
                    && !unresolved_names.contains(name)
                {
                    unresolved_names.push(name.clone());
                }
            }
            TargetGroupRef::Arn(arn) => {
                if !world.api.tg_info.contains_key(arn) && !unresolved_arns.contains(arn) {
                    unresolved_arns.push(arn.clone());
                }
            }
        }
    }

    let mut failed: BTreeMap<String, ResourceError> = BTreeMap::new();
    for (keys, by_name) in [(&unresolved_names, true), (&unresolved_arns, false)] {
        for chunk in keys.chunks(batch::TARGET_GROUP_NAMES) {
            let read = world.api("elasticloadbalancing", "DescribeTargetGroups", false, |w| {
                Ok(chunk
                    .iter()
                    .filter_map(|key| {
                        let tg = if by_name {
                            w.target_group_by_name(region, key)
                        } else {
                            w.target_groups.get(key).filter(|tg| tg.region == region)
                        };
                        tg.map(|tg| tg.info.clone())
                    })
                    .collect::<Vec<TargetGroupInfo>>())
            });
            match read {
                Ok(found) => {
                    for info in found {
                        world.api.tg_by_name.insert((region.to_string(), info.name.clone()), info.arn.clone());
                        world.api.tg_info.insert(info.arn.clone(), info);
                    }
                }
                Err(err) => {
                    let err = per_resource(err)?;
                    for key in chunk {
                        failed.insert(key.clone(), err.clone());
                    }
                }
            }
        }
    }

    let mut health: BTreeMap<String, Result<ObservedTargetGroup, ResourceError>> = BTreeMap::new();
    for id in ids {
        let key = id.target_group.as_str().to_string();
        if let Some(err) = failed.get(&key) {
            out.target_groups.insert(id.clone(), Err(err.clone()));
            continue;
        }
        let arn = match &id.target_group {
            TargetGroupRef::Name(name) => world.api.tg_by_name.get(&(region.to_string(), name.clone())).cloned(),
            TargetGroupRef::Arn(arn) => world.api.tg_info.contains_key(arn).then(|| arn.clone()),
        };
        let Some(arn) = arn else {
            out.target_groups
                .insert(id.clone(), Err(ResourceError::NotFound(format!("target group {}", id.target_group))));
            continue;
        };
        if !health.contains_key(&arn) {
            let read =
                world.api("elasticloadbalancing", "DescribeTargetHealth", false, |w| Ok(w.target_group_view(&arn)));
            let result = match read {
                Ok(Some(view)) => Ok(view),
                Ok(None) => {
                    // Deleted since it was resolved: forget it, like a
                    // TargetGroupNotFound would make the adapter do.
                    if let Some(info) = world.api.tg_info.remove(&arn) {
                        world.api.tg_by_name.remove(&(region.to_string(), info.name));
                    }
                    Err(ResourceError::NotFound(format!("target group {}", id.target_group)))
                }
                Err(err) => Err(per_resource(err)?),
            };
            health.insert(arn.clone(), result);
        }
        out.target_groups.insert(id.clone(), health[&arn].clone());
    }
    Ok(())
}

impl World {
    /// (desired RUNNING, desired STOPPED) tasks of a cluster, as ListTasks
    /// would count them.
    /// The RUNNING tasks of these services: what GetTaskProtection is asked about.
    fn running_tasks(&self, ids: &[ServiceId]) -> Vec<String> {
        let mut tasks: Vec<&super::world::Task> = self
            .tasks
            .values()
            .filter(|t| ids.contains(&t.service) && t.is_live() && t.last_status == TaskStatus::Running)
            .collect();
        tasks.sort_by_key(|t| t.seq);
        tasks.into_iter().map(|t| t.arn.clone()).collect()
    }

    /// GetTaskProtection's answer for one task: its expiry while protected.
    fn protection_of(&self, arn: &str) -> Option<std::time::SystemTime> {
        self.tasks.get(arn).and_then(|t| t.protected_until).filter(|until| *until > self.now)
    }

    fn task_counts(&self, region: &str, cluster: &str) -> (usize, usize) {
        let in_cluster = self.tasks.values().filter(|t| t.service.region == region && t.service.cluster == cluster);
        let (mut running, mut stopped) = (0, 0);
        for task in in_cluster {
            if task.is_live() {
                running += 1;
            } else {
                stopped += 1;
            }
        }
        (running, stopped)
    }

    fn container_instance_count(&self, region: &str, cluster: &str) -> usize {
        self.instances
            .values()
            .filter(|i| i.region == region && i.cluster.as_deref() == Some(cluster) && i.container_instance.is_some())
            .count()
    }

    /// A service as DescribeServices + ListTasks/DescribeTasks show it.
    /// `with_size` fills in the task definition's size.
    pub fn service_view(&self, id: &ServiceId, with_size: bool) -> Option<ObservedService> {
        let service = self.services.get(id)?;
        let mut tasks: Vec<_> = self.tasks.values().filter(|t| &t.service == id).collect();
        tasks.sort_by_key(|t| t.seq);
        let count = |status: TaskStatus| tasks.iter().filter(|t| t.last_status == status && t.is_live()).count() as u32;
        Some(ObservedService {
            arn: service.arn.clone(),
            status: ServiceStatus::Active,
            desired_count: service.desired_count,
            running_count: count(TaskStatus::Running),
            pending_count: count(TaskStatus::Pending),
            deploying: service.rolling,
            task_definition: service.task_def.clone(),
            task_size: with_size
                .then(|| self.task_defs.get(&service.task_def))
                .flatten()
                .map(|td| crate::observed::TaskSize { cpu: td.cpu, memory: td.memory }),
            load_balancer_target_groups: service.load_balancers.clone(),
            scalable_target: self.scalable_targets.contains(id),
            tasks: tasks
                .into_iter()
                .map(|t| ObservedTask {
                    arn: t.arn.clone(),
                    last_status: t.last_status,
                    desired_status: t.desired_status,
                    instance_id: t.instance_id.clone(),
                    private_ip: t.private_ip.clone(),
                    bindings: t.bindings.clone(),
                    started_at: t.started_at,
                    protected_until: None,
                    started_by: Some(deployment_id(t.deployment)),
                })
                .collect(),
            scaling_marks: marks::scaling_marks(service.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
            protection: ProtectionRead::NotAsked,
            primary_deployment: Some(deployment_id(service.deployment)),
            maximum_percent: Some(service.maximum_percent),
            surge_mark: marks::surge_mark(service.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        })
    }

    /// A target group with DescribeTargetHealth's view of its targets.
    pub fn target_group_view(&self, arn: &str) -> Option<ObservedTargetGroup> {
        let tg = self.target_groups.get(arn)?;
        Some(ObservedTargetGroup {
            arn: tg.info.arn.clone(),
            name: tg.info.name.clone(),
            target_type: match tg.info.target_type {
                TargetType::Instance => TargetGroupType::Instance,
                TargetType::Ip => TargetGroupType::Ip,
            },
            port: Some(tg.info.port),
            targets: tg
                .targets
                .iter()
                .map(|(target, state)| ObservedTarget { target: target.clone(), health: state.health })
                .collect(),
        })
    }

    /// A group as DescribeAutoScalingGroups shows it, with each
    /// instance's task count where it is a container instance of `cluster`.
    pub fn group_view(&self, id: &GroupId, cluster: Option<&str>) -> Option<ObservedGroup> {
        let group = self.groups.get(id)?;
        let mut instances: Vec<_> = self.instances.values().filter(|i| i.group.as_ref() == Some(id)).collect();
        instances.sort_by_key(|i| i.seq);
        Some(ObservedGroup {
            arn: group.arn.clone(),
            min_size: group.min,
            max_size: group.max,
            desired_capacity: group.desired,
            subnets: group.subnets.clone(),
            instances: instances
                .into_iter()
                .map(|i| {
                    let registered = i.container_instance.is_some()
                        && i.runs_tasks()
                        && cluster.is_some_and(|c| i.cluster.as_deref() == Some(c));
                    ObservedInstance {
                        id: i.id.clone(),
                        zone: i.zone.clone(),
                        lifecycle_state: i.lifecycle.observed(),
                        healthy: i.healthy,
                        subnet: registered.then(|| i.subnet.clone()),
                        container_instance: i.container_instance.as_ref().filter(|_| registered).map(|arn| {
                            crate::observed::ContainerInstance {
                                arn: arn.clone(),
                                draining: self.draining.contains(&i.id),
                            }
                        }),
                        // Counted until STOPPED: a stopping task still
                        // occupies the instance.
                        tasks: registered.then(|| {
                            self.tasks
                                .values()
                                .filter(|t| t.instance_id.as_deref() == Some(i.id.as_str()) && t.holds_resources())
                                .count() as u32
                        }),
                    }
                })
                .collect(),
            managed_scaling: group.managed_scaling,
            suspended_processes: self
                .autoscaling
                .suspended
                .get(id)
                .map(|s| s.iter().cloned().collect())
                .unwrap_or_default(),
            termination_hook: self
                .autoscaling
                .termination_hooks
                .get(id)
                .filter(|h| h.name == crate::desired::TERMINATION_HOOK_NAME)
                .map(|h| h.settings.clone()),
            last_capacity_change: marks::last_capacity_change(group.tags.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
        })
    }
}
