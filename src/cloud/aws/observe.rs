//! The reads of one pass, per region, exactly as the table "Read calls per
//! pass" in [`crate::cloud`] lists them.
//!
//! Families that do not depend on each other run concurrently (the rate
//! buckets keep each family within AWS's limits); regions run in
//! parallel. A failed read becomes a per-resource error; only when every
//! read failed because the endpoint could not be reached is the whole
//! pass an error.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_applicationautoscaling::operation::describe_scalable_targets::DescribeScalableTargetsOutput;
use aws_sdk_applicationautoscaling::types::{ScalableDimension, ServiceNamespace};
use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
use aws_sdk_ecs::operation::list_container_instances::ListContainerInstancesOutput;
use aws_sdk_ecs::operation::list_tasks::ListTasksOutput;
use aws_sdk_ecs::types::{DesiredStatus, ServiceField};
use futures_util::{StreamExt, stream};

use super::cloudwatch::{alarm_tags, describe_alarms, metric_data};
use super::map::{self, ContainerInstanceInfo, TargetGroupInfo};
use super::{AwsCloud, RegionClients};
use crate::cloud::{CloudError, Scope, reuse};
use crate::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef};
use crate::observed::{Observed, ObservedService, ObservedTargetGroup, ProtectionRead, ResourceError, TaskStatus};

use crate::cloud::batch;
/// ListTasks / ListContainerInstances page size, as the SDK takes it.
const LIST_PAGE: i32 = crate::cloud::batch::LIST_PAGE as i32;

/// Calls of one family in flight at once. The rate buckets bound the rate;
/// this bounds connections and keeps a 500-service pass from waiting on
/// 50 sequential round trips.
const IN_FLIGHT: usize = 8;

/// Run `f` over `items` on this task (no spawning, so the calls may
/// borrow), up to [`IN_FLIGHT`] at a time, outputs in the order of
/// `items`. A call starts as soon as any other ends: finished outputs wait
/// for their turn outside the limit, so one slow call holds back no other
/// (`buffered` would keep them in its slots).
pub(super) async fn in_flight<T, F, Fut>(items: impl IntoIterator<Item = T>, f: F) -> Vec<Fut::Output>
where
    F: Fn(T) -> Fut,
    Fut: Future,
{
    // Built before the stream runs (a future does nothing until polled):
    // a closure inside the stream would make the pass's future fail the
    // `Send` check tokio::spawn asks for (rust-lang/rust#89976).
    let calls: Vec<_> = items.into_iter().map(f).enumerate().map(|(i, call)| async move { (i, call.await) }).collect();
    let mut out: Vec<(usize, Fut::Output)> = stream::iter(calls).buffer_unordered(IN_FLIGHT).collect().await;
    out.sort_unstable_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, output)| output).collect()
}

/// Every page of a paginated read. `page` sends the request for the page
/// after `token` (`None`: the first); `next_token` reads a page's
/// continuation, which ends the read when absent or empty. The first
/// failed page fails the read.
pub(super) async fn all_pages<P, Fut>(
    next_token: impl Fn(&P) -> Option<&str>,
    mut page: impl FnMut(Option<String>) -> Fut,
) -> Result<Vec<P>, CloudError>
where
    Fut: Future<Output = Result<P, CloudError>>,
{
    let mut pages = Vec::new();
    let mut token = None;
    loop {
        let p = page(token.take()).await?;
        token = next_token(&p).filter(|t| !t.is_empty()).map(str::to_string);
        pages.push(p);
        if token.is_none() {
            return Ok(pages);
        }
    }
}

/// Outcomes of the pass's calls, to tell "AWS is unreachable" (every call
/// failed to connect) from per-resource trouble.
#[derive(Default)]
pub(super) struct Tally {
    ok: AtomicUsize,
    failed: AtomicUsize,
    unreachable: Mutex<Option<CloudError>>,
}

impl Tally {
    pub(super) fn note<T>(&self, r: Result<T, CloudError>) -> Result<T, CloudError> {
        match &r {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e @ CloudError::Unreachable { .. }) => {
                self.unreachable.lock().unwrap().get_or_insert_with(|| e.clone());
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        r
    }
}

pub(super) fn resource_error(e: &CloudError) -> ResourceError {
    match e {
        CloudError::NotFound(m) => ResourceError::NotFound(m.clone()),
        other => ResourceError::Unavailable(other.to_string()),
    }
}

/// A failed batch call fails every item it asked for, with its error.
pub(super) fn failed_batch<'a, K: ToString, T>(
    batch: &'a [K],
    e: &CloudError,
) -> impl Iterator<Item = (String, Result<T, ResourceError>)> + use<'a, K, T> {
    let err = resource_error(e);
    batch.iter().map(move |k| (k.to_string(), Err(err.clone())))
}

/// The part of a scope in one region.
#[derive(Debug, Default, Clone)]
struct RegionScope {
    services: Vec<ServiceId>,
    target_groups: Vec<TargetGroupRef>,
    alarms: Vec<String>,
    cpu: Vec<ServiceId>,
    task_sizes: HashSet<ServiceId>,
    groups: Vec<(GroupId, String)>,
    protection: HashSet<ServiceId>,
    hooks: Vec<GroupId>,
    now: Option<std::time::SystemTime>,
}

fn split_by_region(scope: &Scope) -> BTreeMap<String, RegionScope> {
    let mut out: BTreeMap<String, RegionScope> = BTreeMap::new();
    for s in &scope.services {
        out.entry(s.region.clone()).or_default().services.push(s.clone());
    }
    for t in &scope.target_groups {
        out.entry(t.region.clone()).or_default().target_groups.push(t.target_group.clone());
    }
    for (region, name) in &scope.alarms {
        out.entry(region.clone()).or_default().alarms.push(name.clone());
    }
    for s in &scope.cpu {
        out.entry(s.region.clone()).or_default().cpu.push(s.clone());
    }
    for s in &scope.task_sizes {
        out.entry(s.region.clone()).or_default().task_sizes.insert(s.clone());
    }
    for (g, cluster) in &scope.groups {
        out.entry(g.region.clone()).or_default().groups.push((g.clone(), cluster.clone()));
    }
    for s in &scope.protection {
        out.entry(s.region.clone()).or_default().protection.insert(s.clone());
    }
    for g in &scope.hooks {
        out.entry(g.region.clone()).or_default().hooks.push(g.clone());
    }
    for part in out.values_mut() {
        part.now = scope.now;
    }
    out
}

pub(super) async fn observe(cloud: &AwsCloud, scope: &Scope) -> Result<Observed, CloudError> {
    let tally = std::sync::Arc::new(Tally::default());
    let mut regions = tokio::task::JoinSet::new();
    for (region, part) in split_by_region(scope) {
        let cloud = cloud.clone();
        let tally = tally.clone();
        regions.spawn(async move { observe_region(&cloud, &region, &part, &tally).await });
    }
    let mut observed = Observed::default();
    while let Some(joined) = regions.join_next().await {
        let part = match joined {
            Ok(part) => part,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        };
        observed.services.extend(part.services);
        observed.target_groups.extend(part.target_groups);
        observed.alarms.extend(part.alarms);
        observed.cpu.extend(part.cpu);
        observed.groups.extend(part.groups);
    }
    let ok = tally.ok.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    if ok == 0
        && failed == 0
        && let Some(e) = tally.unreachable.lock().unwrap().take()
    {
        return Err(e);
    }
    Ok(observed)
}

/// What one cluster's reads returned.
struct ClusterView {
    services: HashMap<String, Result<aws_sdk_ecs::types::Service, ResourceError>>,
    tasks: Result<Vec<aws_sdk_ecs::types::Task>, CloudError>,
    instances: Result<HashMap<String, ContainerInstanceInfo>, CloudError>,
}

async fn observe_region(cloud: &AwsCloud, region: &str, part: &RegionScope, tally: &Tally) -> Observed {
    let rc = cloud.region(region);
    let group_names: Vec<String> = part.groups.iter().map(|(g, _)| g.name.clone()).collect();
    let (clusters, scalable, target_groups, alarms, mut cpu, groups) = tokio::join!(
        observe_clusters(&rc, part, tally),
        scalable_targets(&rc, &part.services, tally),
        target_groups(cloud, &rc, region, &part.target_groups, tally),
        describe_alarms(&rc, &part.alarms, tally),
        metric_data(cloud, &rc, &part.cpu, part.now, tally),
        describe_groups(&rc, &group_names, tally),
    );

    // Task definitions: for sizes where asked, and for started tasks that
    // report no port bindings (see `map::task`). Cached per ARN.
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for id in &part.services {
        if part.task_sizes.contains(id)
            && let Some(Ok(svc)) = clusters.get(&id.cluster).and_then(|c| c.services.get(&id.service))
            && let Some(td) = svc.task_definition()
        {
            wanted.insert(td.to_string());
        }
    }
    for view in clusters.values() {
        for t in view.tasks.iter().flatten() {
            let unbound = t.containers().iter().all(|c| c.network_bindings().is_empty());
            if unbound
                && TaskStatus::from_aws(t.last_status().unwrap_or_default()).has_started()
                && let Some(td) = t.task_definition_arn()
            {
                wanted.insert(td.to_string());
            }
        }
    }
    // A CPU read reused from an earlier pass is read again when an alarm
    // on it changed state since: CloudWatch has a newer datapoint
    // (crate::cloud::reuse).
    let stale: Vec<ServiceId> = part
        .cpu
        .iter()
        .filter(|id| {
            let since = reuse::alarmed_since(id, alarms.values().filter_map(|a| a.as_ref().ok()));
            since.is_some_and(|t| cloud.inner.cpu_reads.lock().unwrap().forget_older_than(id, t))
        })
        .cloned()
        .collect();
    if !stale.is_empty() {
        cpu.extend(metric_data(cloud, &rc, &stale, part.now, tally).await);
    }
    let (_, alarms, protection, hooks) = tokio::join!(
        task_definitions(cloud, &rc, &wanted, tally),
        alarm_tags(cloud, &rc, region, alarms),
        task_protection(cloud, &rc, region, &clusters, part, tally),
        termination_hooks(&rc, &part.hooks, tally),
    );
    let task_defs = cloud.inner.task_defs.lock().unwrap().clone();

    let mut observed = Observed::default();
    for id in &part.services {
        let mut entry = assemble_service(id, &clusters, &scalable, &task_defs, part);
        if let (Ok(svc), Some(read)) = (&mut entry, protection.get(&id.cluster)) {
            match read {
                Ok(read) => {
                    svc.protection = ProtectionRead::Read;
                    for task in &mut svc.tasks {
                        task.protected_until = read.get(&task.arn).copied().flatten();
                    }
                }
                Err(e) => {
                    entry = Err(ResourceError::Unavailable(format!("scale-in protection of its tasks: {e}")));
                }
            }
        }
        observed.services.insert(id.clone(), entry);
    }
    for tg in &part.target_groups {
        let entry = target_groups
            .get(tg)
            .cloned()
            .unwrap_or_else(|| Err(ResourceError::Unavailable("target group was not read".into())));
        observed.target_groups.insert(TargetGroupId { region: region.to_string(), target_group: tg.clone() }, entry);
    }
    for (name, alarm) in alarms {
        observed.alarms.insert((region.to_string(), name), alarm);
    }
    observed.cpu.extend(cpu);
    for (gid, cluster) in &part.groups {
        let entry = match groups.get(&gid.name) {
            None => Err(ResourceError::NotFound(format!("auto scaling group {}", gid.name))),
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(g)) => {
                match clusters.get(cluster).map(|c| &c.instances) {
                    Some(Ok(cis)) => {
                        let by_id = cis.values().filter_map(|ci| Some((ci.ec2_instance_id.clone()?, ci))).collect();
                        Ok(map::group(g, &by_id))
                    }
                    // No such cluster: its instances run no ECS tasks.
                    Some(Err(CloudError::NotFound(_))) | None => Ok(map::group(g, &HashMap::new())),
                    Some(Err(e)) => {
                        Err(ResourceError::Unavailable(format!("container instances of cluster {cluster}: {e}")))
                    }
                }
            }
        };
        let entry = match (entry, hooks.get(&gid.name)) {
            (Ok(mut g), Some(Ok(hook))) => {
                g.termination_hook = hook.clone();
                Ok(g)
            }
            (Ok(_), Some(Err(e))) => Err(ResourceError::Unavailable(format!("its termination lifecycle hook: {e}"))),
            (entry, _) => entry,
        };
        observed.groups.insert(gid.clone(), entry);
    }
    observed
}

/// ballast's termination lifecycle hook of each group, one
/// DescribeLifecycleHooks per group.
async fn termination_hooks(
    rc: &RegionClients,
    groups: &[GroupId],
    tally: &Tally,
) -> HashMap<String, Result<Option<crate::desired::TerminationHook>, CloudError>> {
    let reads = in_flight(groups.to_vec(), |g| {
        let req = rc.autoscaling.describe_lifecycle_hooks();
        let req = req.auto_scaling_group_name(&g.name).lifecycle_hook_names(crate::desired::TERMINATION_HOOK_NAME);
        async move {
            let result = tally.note(
                rc.call(&rc.buckets.autoscaling, "autoscaling", "DescribeLifecycleHooks", || req.clone().send()).await,
            );
            (g.name.clone(), result.map(|out| map::termination_hook(out.lifecycle_hooks())))
        }
    })
    .await;
    reads.into_iter().collect()
}

fn assemble_service(
    id: &ServiceId,
    clusters: &HashMap<String, ClusterView>,
    scalable: &Result<HashSet<String>, CloudError>,
    task_defs: &HashMap<String, map::TaskDefInfo>,
    part: &RegionScope,
) -> Result<ObservedService, ResourceError> {
    let view = clusters.get(&id.cluster).ok_or_else(|| ResourceError::Unavailable("cluster was not read".into()))?;
    let svc = view
        .services
        .get(&id.service)
        .cloned()
        .unwrap_or_else(|| Err(ResourceError::NotFound(format!("service {id}"))))?;
    // Without its tasks, instances or scalable target the service cannot be
    // planned safely (e.g. targets would look stale): report it unreadable.
    let tasks = view.tasks.as_ref().map_err(resource_error)?;
    let instances = view
        .instances
        .as_ref()
        .map_err(|e| ResourceError::Unavailable(format!("container instances of cluster {}: {e}", id.cluster)))?;
    let scalable = scalable.as_ref().map_err(|e| ResourceError::Unavailable(format!("scalable targets: {e}")))?;

    let mut observed = map::service(&svc);
    observed.scalable_target = scalable.contains(&resource_id(id));
    let group = format!("service:{}", id.service);
    observed.tasks = tasks
        .iter()
        .filter(|t| t.group() == Some(group.as_str()))
        .map(|t| {
            let td = t.task_definition_arn().and_then(|arn| task_defs.get(arn));
            map::task(t, instances, td)
        })
        .collect();
    observed.tasks.sort_by(|a, b| a.arn.cmp(&b.arn));
    if part.task_sizes.contains(id) {
        observed.task_size = task_defs.get(&observed.task_definition).and_then(|td| td.size);
    }
    Ok(observed)
}

/// Each task's protection expiry (`None`: off), by task ARN.
type ProtectionMap = BTreeMap<String, Option<std::time::SystemTime>>;

/// Scale-in protection of the RUNNING tasks of the services in
/// `part.protection`, per cluster: GetTaskProtection, 100 tasks per call,
/// or a read of the last few minutes that covers them all
/// ([`crate::cloud::reuse`]). Clusters whose tasks were not read are left
/// out (their services are unreadable anyway).
async fn task_protection(
    cloud: &AwsCloud,
    rc: &RegionClients,
    region: &str,
    clusters: &HashMap<String, ClusterView>,
    part: &RegionScope,
    tally: &Tally,
) -> HashMap<String, Result<ProtectionMap, CloudError>> {
    let mut out = HashMap::new();
    for (cluster, view) in clusters {
        let asked: HashSet<String> = part
            .protection
            .iter()
            .filter(|id| &id.cluster == cluster)
            .map(|id| format!("service:{}", id.service))
            .collect();
        let Ok(tasks) = &view.tasks else { continue };
        if asked.is_empty() {
            continue;
        }
        let running: Vec<String> = tasks
            .iter()
            .filter(|t| t.group().is_some_and(|g| asked.contains(g)))
            .filter(|t| t.last_status() == Some("RUNNING") && t.desired_status() == Some("RUNNING"))
            .filter_map(|t| t.task_arn().map(str::to_string))
            .collect();
        let reused = cloud
            .inner
            .protection_reads
            .lock()
            .unwrap()
            .covering(region, cluster, running.iter().map(String::as_str), part.now)
            .cloned();
        if let Some(read) = reused {
            out.insert(cluster.clone(), Ok(read));
            continue;
        }
        let results = in_flight(map::batches(&running, batch::TASK_PROTECTION), |batch| async move {
            let req = rc.ecs.get_task_protection().cluster(cluster).set_tasks(Some(batch.to_vec()));
            tally.note(rc.call(&rc.buckets.ecs_read, "ecs", "GetTaskProtection", || req.clone().send()).await)
        })
        .await;
        let mut read: ProtectionMap = running.iter().map(|arn| (arn.clone(), None)).collect();
        let mut failed = None;
        for result in results {
            match result {
                Ok(resp) => {
                    for t in resp.protected_tasks() {
                        let Some(arn) = t.task_arn() else { continue };
                        let until = t.expiration_date().and_then(map::system_time);
                        read.insert(arn.to_string(), if t.protection_enabled() { until } else { None });
                    }
                    // failures[] are tasks that stopped since DescribeTasks:
                    // unprotected, and no longer anyone's to protect.
                }
                Err(e) => failed = Some(e),
            }
        }
        match failed {
            Some(e) => {
                out.insert(cluster.clone(), Err(e));
            }
            None => {
                let key = (region.to_string(), cluster.clone());
                cloud.inner.protection_reads.lock().unwrap().put(key, part.now, read.clone());
                out.insert(cluster.clone(), Ok(read));
            }
        }
    }
    out
}

/// Application Auto Scaling's resource id of an ECS service.
fn resource_id(id: &ServiceId) -> String {
    format!("service/{}/{}", id.cluster, id.service)
}

async fn observe_clusters(rc: &RegionClients, part: &RegionScope, tally: &Tally) -> HashMap<String, ClusterView> {
    let mut by_cluster: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for s in &part.services {
        by_cluster.entry(&s.cluster).or_default().push(&s.service);
    }
    for (_, cluster) in &part.groups {
        by_cluster.entry(cluster).or_default();
    }
    let mut out = HashMap::new();
    for (cluster, services) in by_cluster {
        let has_services = !services.is_empty();
        let (services, tasks, instances) = tokio::join!(
            describe_services(rc, cluster, &services, tally),
            async { if has_services { cluster_tasks(rc, cluster, tally).await } else { Ok(Vec::new()) } },
            container_instances(rc, cluster, tally),
        );
        out.insert(cluster.to_string(), ClusterView { services, tasks, instances });
    }
    out
}

async fn describe_services(
    rc: &RegionClients,
    cluster: &str,
    names: &[&str],
    tally: &Tally,
) -> HashMap<String, Result<aws_sdk_ecs::types::Service, ResourceError>> {
    let results = in_flight(map::batches(names, batch::DESCRIBE_SERVICES), |batch| async move {
        let req = rc.ecs.describe_services();
        let req = req.cluster(cluster).set_services(Some(batch.iter().map(|s| s.to_string()).collect()));
        // The tags carry the scaling marks (`crate::cloud::marks`).
        let req = req.include(ServiceField::Tags);
        let result = rc.call(&rc.buckets.ecs_read, "ecs", "DescribeServices", || req.clone().send()).await;
        (batch, tally.note(result))
    })
    .await;
    let mut out = HashMap::new();
    for (batch, result) in results {
        match result {
            Ok(resp) => {
                for s in resp.services() {
                    if let Some(name) = s.service_name() {
                        out.insert(name.to_string(), Ok(s.clone()));
                    }
                }
                for f in resp.failures() {
                    let name = f.arn().and_then(|a| a.rsplit('/').next()).unwrap_or_default();
                    out.insert(name.to_string(), Err(map::failure(f)));
                }
            }
            Err(e) => out.extend(failed_batch(batch, &e)),
        }
    }
    out
}

/// All tasks of a cluster that run or stopped recently, described.
async fn cluster_tasks(
    rc: &RegionClients,
    cluster: &str,
    tally: &Tally,
) -> Result<Vec<aws_sdk_ecs::types::Task>, CloudError> {
    let mut arns = Vec::new();
    for status in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let pages = all_pages(ListTasksOutput::next_token, |token| {
            let req = rc.ecs.list_tasks();
            let req = req.cluster(cluster).desired_status(status.clone()).max_results(LIST_PAGE).set_next_token(token);
            async move { tally.note(rc.call(&rc.buckets.ecs_read, "ecs", "ListTasks", || req.clone().send()).await) }
        })
        .await?;
        arns.extend(pages.iter().flat_map(|p| p.task_arns()).cloned());
    }
    arns.sort();
    arns.dedup();
    let results = in_flight(map::batches(&arns, batch::DESCRIBE_TASKS), |batch| async move {
        let req = rc.ecs.describe_tasks();
        let req = req.cluster(cluster).set_tasks(Some(batch.to_vec()));
        let result = rc.call(&rc.buckets.ecs_read, "ecs", "DescribeTasks", || req.clone().send()).await;
        tally.note(result)
    })
    .await;
    let mut tasks = Vec::with_capacity(arns.len());
    for result in results {
        // failures[] here are tasks that vanished since ListTasks: gone.
        tasks.extend(result?.tasks().iter().cloned());
    }
    Ok(tasks)
}

/// Container instances of a cluster by ARN.
async fn container_instances(
    rc: &RegionClients,
    cluster: &str,
    tally: &Tally,
) -> Result<HashMap<String, ContainerInstanceInfo>, CloudError> {
    let pages = all_pages(ListContainerInstancesOutput::next_token, |token| {
        let req = rc.ecs.list_container_instances();
        let req = req.cluster(cluster).max_results(LIST_PAGE).set_next_token(token);
        async move {
            tally.note(rc.call(&rc.buckets.ecs_read, "ecs", "ListContainerInstances", || req.clone().send()).await)
        }
    })
    .await?;
    let arns: Vec<String> = pages.iter().flat_map(|p| p.container_instance_arns()).cloned().collect();
    let mut out = HashMap::new();
    for batch in map::batches(&arns, batch::DESCRIBE_CONTAINER_INSTANCES) {
        let req = rc.ecs.describe_container_instances();
        let req = req.cluster(cluster).set_container_instances(Some(batch.to_vec()));
        let result = rc.call(&rc.buckets.ecs_read, "ecs", "DescribeContainerInstances", || req.clone().send()).await;
        for ci in tally.note(result)?.container_instances() {
            if let Some(arn) = ci.container_instance_arn() {
                out.insert(arn.to_string(), map::container_instance(ci));
            }
        }
    }
    Ok(out)
}

/// Fetch the task definitions in `arns` not yet cached.
async fn task_definitions(cloud: &AwsCloud, rc: &RegionClients, arns: &BTreeSet<String>, tally: &Tally) {
    let missing: Vec<String> = {
        let cache = cloud.inner.task_defs.lock().unwrap();
        arns.iter().filter(|a| !cache.contains_key(*a)).cloned().collect()
    };
    for arn in missing {
        let req = rc.ecs.describe_task_definition();
        let req = req.task_definition(&arn);
        let result = rc.call(&rc.buckets.ecs_read, "ecs", "DescribeTaskDefinition", || req.clone().send()).await;
        // A failure leaves the size unknown for this pass; the next pass
        // asks again.
        if let Ok(resp) = tally.note(result)
            && let Some(td) = resp.task_definition()
        {
            cloud.inner.task_defs.lock().unwrap().insert(arn, map::task_definition(td));
        }
    }
}

/// Resource ids of the services that have a scalable target on their
/// desired count.
async fn scalable_targets(
    rc: &RegionClients,
    services: &[ServiceId],
    tally: &Tally,
) -> Result<HashSet<String>, CloudError> {
    let ids: Vec<String> = services.iter().map(resource_id).collect();
    let results = in_flight(map::batches(&ids, batch::SCALABLE_TARGETS), |batch| {
        all_pages(DescribeScalableTargetsOutput::next_token, move |token| {
            let req = rc.appscaling.describe_scalable_targets();
            let req = req
                .service_namespace(ServiceNamespace::Ecs)
                .scalable_dimension(ScalableDimension::EcsServiceDesiredCount)
                .set_resource_ids(Some(batch.to_vec()))
                .set_next_token(token);
            async move {
                let op = "DescribeScalableTargets";
                tally.note(rc.call(&rc.buckets.appscaling, "application-autoscaling", op, || req.clone().send()).await)
            }
        })
    })
    .await;
    let mut out = HashSet::new();
    for pages in results {
        out.extend(pages?.iter().flat_map(|p| p.scalable_targets()).map(|t| t.resource_id().to_string()));
    }
    Ok(out)
}

/// Describe the target groups not yet cached, then read each one's
/// target health.
async fn target_groups(
    cloud: &AwsCloud,
    rc: &RegionClients,
    region: &str,
    refs: &[TargetGroupRef],
    tally: &Tally,
) -> HashMap<TargetGroupRef, Result<ObservedTargetGroup, ResourceError>> {
    let mut out = HashMap::new();
    let key = |r: &TargetGroupRef| (region.to_string(), r.clone());
    let (mut names, mut arns) = (Vec::new(), Vec::new());
    {
        let cache = cloud.inner.target_groups.lock().unwrap();
        for r in refs {
            if !cache.contains_key(&key(r)) {
                match r {
                    TargetGroupRef::Name(n) => names.push(n.clone()),
                    TargetGroupRef::Arn(a) => arns.push(a.clone()),
                }
            }
        }
    }
    for (by_name, list) in [(true, names), (false, arns)] {
        for batch in map::batches(&list, batch::TARGET_GROUP_NAMES) {
            let found = describe_target_groups(rc, by_name, batch, tally).await;
            let mut cache = cloud.inner.target_groups.lock().unwrap();
            for (wanted, result) in found {
                let r = if by_name { TargetGroupRef::Name(wanted) } else { TargetGroupRef::Arn(wanted) };
                match result {
                    Ok(info) => {
                        cache.insert(key(&r), info);
                    }
                    Err(e) => {
                        out.insert(r, Err(e));
                    }
                }
            }
        }
    }

    let mut described = Vec::new();
    for r in refs {
        if out.contains_key(r) {
            continue;
        }
        let info = cloud.inner.target_groups.lock().unwrap().get(&key(r)).cloned();
        match info {
            Some(info) => described.push((r, info)),
            None => {
                out.insert(r.clone(), Err(ResourceError::Unavailable("target group was not described".into())));
            }
        }
    }
    let results = in_flight(described, |(r, info)| async move {
        let req = rc.elbv2.describe_target_health();
        let req = req.target_group_arn(&info.arn);
        let result = rc.call(&rc.buckets.elbv2_describe, "elbv2", "DescribeTargetHealth", || req.clone().send()).await;
        (r, info, tally.note(result))
    })
    .await;
    for (r, info, result) in results {
        let entry = match result {
            Ok(resp) => Ok(map::target_group(&info, resp.target_health_descriptions())),
            Err(e) => {
                if matches!(e, CloudError::NotFound(_)) {
                    // Deleted (and maybe re-created with a new ARN):
                    // describe it again next pass.
                    cloud.inner.target_groups.lock().unwrap().remove(&key(r));
                }
                Err(resource_error(&e))
            }
        };
        out.insert(r.clone(), entry);
    }
    out
}

/// Describe up to 20 target groups by name (or ARN). DescribeTargetGroups
/// fails the whole call when one of them does not exist, so a failed
/// batch is asked again one by one to tell which.
async fn describe_target_groups(
    rc: &RegionClients,
    by_name: bool,
    batch: &[String],
    tally: &Tally,
) -> Vec<(String, Result<TargetGroupInfo, ResourceError>)> {
    let call = |items: Vec<String>| async move {
        let req = rc.elbv2.describe_target_groups();
        let req = if by_name { req.set_names(Some(items)) } else { req.set_target_group_arns(Some(items)) };
        let result = rc.call(&rc.buckets.elbv2_describe, "elbv2", "DescribeTargetGroups", || req.clone().send()).await;
        tally.note(result)
    };
    let pick =
        |resp: &aws_sdk_elasticloadbalancingv2::operation::describe_target_groups::DescribeTargetGroupsOutput,
         wanted: &str| {
            resp.target_groups()
                .iter()
                .filter_map(map::target_group_info)
                .find(|i| if by_name { i.name == wanted } else { i.arn == wanted })
        };
    match call(batch.to_vec()).await {
        Ok(resp) => batch
            .iter()
            .map(|w| {
                let r = pick(&resp, w).ok_or_else(|| ResourceError::NotFound(format!("target group {w}")));
                (w.clone(), r)
            })
            .collect(),
        Err(CloudError::NotFound(_)) if batch.len() > 1 => {
            let mut out = Vec::new();
            for w in batch {
                let r = match call(vec![w.clone()]).await {
                    Ok(resp) => pick(&resp, w).ok_or_else(|| ResourceError::NotFound(format!("target group {w}"))),
                    Err(e) => Err(resource_error(&e)),
                };
                out.push((w.clone(), r));
            }
            out
        }
        Err(e) => failed_batch(batch, &e).collect(),
    }
}

/// Auto Scaling groups by name; absent names are not in the map.
async fn describe_groups(
    rc: &RegionClients,
    names: &[String],
    tally: &Tally,
) -> HashMap<String, Result<aws_sdk_autoscaling::types::AutoScalingGroup, ResourceError>> {
    let mut out = HashMap::new();
    for batch in map::batches(names, batch::GROUP_NAMES) {
        let pages = all_pages(DescribeAutoScalingGroupsOutput::next_token, |token| {
            let req = rc.autoscaling.describe_auto_scaling_groups();
            let req = req.set_auto_scaling_group_names(Some(batch.to_vec())).max_records(100).set_next_token(token);
            let op = "DescribeAutoScalingGroups";
            async move { tally.note(rc.call(&rc.buckets.autoscaling, "autoscaling", op, || req.clone().send()).await) }
        });
        match pages.await {
            Ok(pages) => {
                for g in pages.iter().flat_map(|p| p.auto_scaling_groups()) {
                    if let Some(name) = g.auto_scaling_group_name() {
                        out.insert(name.to_string(), Ok(g.clone()));
                    }
                }
            }
            Err(e) => out.extend(failed_batch(batch, &e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sid(region: &str, cluster: &str, service: &str) -> ServiceId {
        ServiceId { region: region.into(), cluster: cluster.into(), service: service.into() }
    }

    #[test]
    fn scope_splits_by_region_keeping_everything() {
        let scope = Scope {
            services: vec![sid("eu-west-1", "c", "a"), sid("us-east-1", "c", "b")],
            target_groups: vec![TargetGroupId {
                region: "us-east-1".into(),
                target_group: TargetGroupRef::Name("frontendTargetGroup".into()),
            }],
            alarms: vec![("eu-west-1".into(), "x".into())],
            cpu: vec![sid("eu-west-1", "c", "a")],
            task_sizes: vec![sid("us-east-1", "c", "b")],
            groups: vec![(GroupId { region: "us-east-1".into(), name: "ecsAutoScalingGroup".into() }, "c".into())],
            protection: vec![sid("us-east-1", "c", "b")],
            hooks: vec![],
            now: None,
        };
        let parts = split_by_region(&scope);
        assert_eq!(parts.len(), 2);
        let eu = &parts["eu-west-1"];
        assert_eq!(eu.services.len(), 1);
        assert_eq!(eu.alarms, vec!["x"]);
        assert_eq!(eu.cpu.len(), 1);
        let us = &parts["us-east-1"];
        assert_eq!(us.target_groups.len(), 1);
        assert!(us.task_sizes.contains(&sid("us-east-1", "c", "b")));
        assert_eq!(us.groups.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn calls_run_up_to_the_limit_at_once_and_keep_order() {
        let start = tokio::time::Instant::now();
        let items: Vec<u64> = (0..(IN_FLIGHT as u64 + 1)).collect();
        let out = in_flight(items, |i| async move {
            // Later items finish first within a wave.
            tokio::time::sleep(std::time::Duration::from_millis(1_000 - i)).await;
            i * 10
        })
        .await;
        assert_eq!(out, (0..(IN_FLIGHT as u64 + 1)).map(|i| i * 10).collect::<Vec<_>>());
        // One full wave (≈1 s) plus one more item (≈1 s), not 9 s.
        let took = start.elapsed();
        assert!(took < std::time::Duration::from_millis(2_001), "took {took:?}");
        assert!(took > std::time::Duration::from_millis(1_900), "took {took:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn one_slow_call_holds_back_no_other() {
        // Call 0 takes 10 s, 16 more take 1 s each. The other seven slots
        // get through the 16 in 3 s, so the whole takes the slow call's
        // 10 s (waves of 8 would take 12 s, as would `buffered`).
        let start = tokio::time::Instant::now();
        let out = in_flight(0..17u64, |i| async move {
            tokio::time::sleep(std::time::Duration::from_secs(if i == 0 { 10 } else { 1 })).await;
            i
        })
        .await;
        assert_eq!(out, (0..17).collect::<Vec<_>>());
        assert_eq!(start.elapsed(), std::time::Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn all_pages_follows_tokens_until_none_or_empty() {
        for last in [None, Some("")] {
            let mut asked = Vec::new();
            let pages = all_pages(
                |p: &(u32, Option<&'static str>)| p.1,
                |token| {
                    asked.push(token.clone());
                    let page = match token.as_deref() {
                        None => (1, Some("a")),
                        Some("a") => (2, Some("b")),
                        _ => (3, last),
                    };
                    async move { Ok(page) }
                },
            )
            .await
            .unwrap();
            assert_eq!(pages.iter().map(|p| p.0).collect::<Vec<_>>(), [1, 2, 3]);
            assert_eq!(asked, [None, Some("a".to_string()), Some("b".to_string())]);
        }
        // A failed page fails the read; no page after it is asked for.
        let mut calls = 0;
        let err = all_pages(
            |_: &()| Some("more"),
            |_| {
                calls += 1;
                let n = calls;
                async move { if n < 2 { Ok(()) } else { Err(CloudError::NotFound("gone".into())) } }
            },
        )
        .await
        .unwrap_err();
        assert_eq!((err, calls), (CloudError::NotFound("gone".into()), 2));
    }

    #[test]
    fn a_failed_batch_fails_each_item_with_its_error() {
        let out: Vec<(String, Result<(), ResourceError>)> =
            failed_batch(&["a", "b"], &CloudError::NotFound("service x".into())).collect();
        assert_eq!(
            out,
            [
                ("a".to_string(), Err(ResourceError::NotFound("service x".into()))),
                ("b".to_string(), Err(ResourceError::NotFound("service x".into())))
            ]
        );
    }

    #[test]
    fn tally_reports_unreachable_only_when_nothing_else_happened() {
        let t = Tally::default();
        let unreachable = || -> Result<(), CloudError> {
            Err(CloudError::Unreachable { service: "ecs", message: "connection refused".into() })
        };
        let _ = t.note(unreachable());
        let _ = t.note(unreachable());
        assert_eq!(t.ok.load(Ordering::Relaxed), 0);
        assert!(t.unreachable.lock().unwrap().is_some());
        let _ = t.note(Ok::<(), CloudError>(()));
        assert_eq!(t.ok.load(Ordering::Relaxed), 1);
    }
}
