//! One write per [`Change`] (chunked where the API wants it), and the
//! scaling marks after a desired-count or capacity change.

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Tag};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

use std::collections::HashSet;

use super::{AwsCloud, RegionClients};
use crate::cloud::{Clock, CloudError, batch, marks};
use crate::desired::{GroupId, ServiceId};
use crate::observed::{AlarmDefinition, Statistic, Target};
use crate::plan::Change;

/// Targets per Register/DeregisterTargets call, as the AWS Load Balancer
/// Controller sends them.
pub(crate) const TARGETS_PER_CALL: usize = 200;

/// The tag every alarm ballast creates carries, so that people (and IAM
/// conditions) can tell ballast's alarms from others.
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "ballast");

pub(super) async fn apply(cloud: &AwsCloud, change: &Change) -> Result<(), CloudError> {
    match change {
        Change::SetDesiredCount { service, from, to } => {
            let rc = cloud.region(&service.region);
            let req = rc.ecs.update_service();
            let req = req
                .cluster(&service.cluster)
                .service(&service.service)
                .desired_count(i32::try_from(*to).unwrap_or(i32::MAX));
            let out = rc.call(&rc.buckets.ecs_write, "ecs", "UpdateService", || req.clone().send()).await?;
            if let Some(key) = marks::scaling_key(*from, *to) {
                let arn = out.service().and_then(|s| s.service_arn());
                mark_service(&rc, service, arn, key, marks::scaling_value(cloud.inner.clock.now(), *to)).await;
            }
            Ok(())
        }
        Change::MarkSurge { service, service_arn, mark } => {
            // Unlike the scaling marks, a surge mark that is not written
            // fails the change: the count it describes is not set either.
            let rc = cloud.region(&service.region);
            let tag =
                aws_sdk_ecs::types::Tag::builder().key(marks::DEPLOYMENT_SURGE).value(marks::surge_value(mark)).build();
            let req = rc.ecs.tag_resource().resource_arn(service_arn).tags(tag);
            rc.call(&rc.buckets.ecs_write, "ecs", "TagResource", || req.clone().send()).await?;
            Ok(())
        }
        Change::RegisterTargets { region, target_group_arn, targets } => {
            let rc = cloud.region(region);
            for chunk in targets.chunks(TARGETS_PER_CALL) {
                register_chunk(&rc, target_group_arn, chunk).await?;
            }
            Ok(())
        }
        Change::DeregisterTargets { region, target_group_arn, targets } => {
            let rc = cloud.region(region);
            for chunk in targets.chunks(TARGETS_PER_CALL) {
                deregister_chunk(&rc, target_group_arn, chunk).await?;
            }
            Ok(())
        }
        Change::PutAlarm { region, alarm, create } => {
            let rc = cloud.region(region);
            let req = put_alarm_request(rc.cloudwatch.put_metric_alarm(), alarm);
            rc.call(&rc.buckets.cloudwatch_put_alarm, "cloudwatch", "PutMetricAlarm", || req.clone().send()).await?;
            // Created with the tag (an update ignores tags): no need to
            // list them next pass.
            if *create {
                cloud.tagged_alarm(region, &alarm.name);
            }
            Ok(())
        }
        Change::TagAlarm { region, name, arn } => {
            let rc = cloud.region(region);
            let req = rc.cloudwatch.tag_resource();
            let req = req.resource_arn(arn).tags(Tag::builder().key(MANAGED_BY_TAG.0).value(MANAGED_BY_TAG.1).build());
            rc.call(&rc.buckets.cloudwatch_put_alarm, "cloudwatch", "TagResource", || req.clone().send()).await?;
            cloud.tagged_alarm(region, name);
            Ok(())
        }
        Change::SetDesiredCapacity { group, to, .. } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.set_desired_capacity();
            let req = req
                .auto_scaling_group_name(&group.name)
                .desired_capacity(i32::try_from(*to).unwrap_or(i32::MAX))
                // The planner has its own cooldowns; the group's would make
                // a correction silently fail.
                .honor_cooldown(false);
            rc.call(&rc.buckets.autoscaling, "autoscaling", "SetDesiredCapacity", || req.clone().send()).await?;
            mark_group(&rc, group, marks::capacity_value(cloud.inner.clock.now())).await;
            Ok(())
        }
        Change::TerminateInstance { group, instance_id } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.terminate_instance_in_auto_scaling_group();
            let req = req.instance_id(instance_id).should_decrement_desired_capacity(true);
            rc.call(&rc.buckets.autoscaling, "autoscaling", "TerminateInstanceInAutoScalingGroup", || {
                req.clone().send()
            })
            .await?;
            mark_group(&rc, group, marks::capacity_value(cloud.inner.clock.now())).await;
            Ok(())
        }
        Change::SetGroupSubnets { group, to, .. } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.update_auto_scaling_group();
            let req = req.auto_scaling_group_name(&group.name).vpc_zone_identifier(to.join(","));
            rc.call(&rc.buckets.autoscaling, "autoscaling", "UpdateAutoScalingGroup", || req.clone().send()).await?;
            Ok(())
        }
        Change::SetTaskProtection { service, tasks, minutes } => {
            let rc = cloud.region(&service.region);
            // Whatever the outcome, the cluster's protection read is stale.
            cloud.inner.protection_reads.lock().unwrap().forget(&(service.region.clone(), service.cluster.clone()));
            for chunk in tasks.chunks(batch::UPDATE_TASK_PROTECTION) {
                let req = rc.ecs.update_task_protection();
                let req = req
                    .cluster(&service.cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .protection_enabled(minutes.is_some())
                    .set_expires_in_minutes(minutes.map(|m| i32::try_from(m).unwrap_or(i32::MAX)));
                let out = rc.call(&rc.buckets.ecs_write, "ecs", "UpdateTaskProtection", || req.clone().send()).await?;
                // A task that stopped since the read is no one's to protect;
                // any other failure is the change's.
                if let Some(f) = out.failures().iter().find(|f| f.reason() != Some("TASK_NOT_VALID")) {
                    return Err(ecs_failure("UpdateTaskProtection", "task", f));
                }
            }
            Ok(())
        }
        Change::SuspendProcesses { group, processes } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.suspend_processes();
            let req = req.auto_scaling_group_name(&group.name).set_scaling_processes(Some(processes.clone()));
            rc.call(&rc.buckets.autoscaling, "autoscaling", "SuspendProcesses", || req.clone().send()).await?;
            Ok(())
        }
        Change::PutLifecycleHook { group, hook, .. } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.put_lifecycle_hook();
            let req = req
                .auto_scaling_group_name(&group.name)
                .lifecycle_hook_name(crate::desired::TERMINATION_HOOK_NAME)
                .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
                .heartbeat_timeout(hook.heartbeat_timeout.as_secs().min(i32::MAX as u64) as i32)
                .default_result(&hook.default_result);
            rc.call(&rc.buckets.autoscaling, "autoscaling", "PutLifecycleHook", || req.clone().send()).await?;
            Ok(())
        }
        Change::DrainContainerInstance { region, cluster, container_instance_arn, .. } => {
            let rc = cloud.region(region);
            let req = rc.ecs.update_container_instances_state();
            let req = req
                .cluster(cluster)
                .container_instances(container_instance_arn)
                .status(aws_sdk_ecs::types::ContainerInstanceStatus::Draining);
            let out =
                rc.call(&rc.buckets.ecs_write, "ecs", "UpdateContainerInstancesState", || req.clone().send()).await?;
            if let Some(f) = out.failures().first() {
                return Err(ecs_failure("UpdateContainerInstancesState", "container instance", f));
            }
            Ok(())
        }
        Change::RecordLifecycleActionHeartbeat { group, instance_id } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.record_lifecycle_action_heartbeat();
            let req = req
                .auto_scaling_group_name(&group.name)
                .lifecycle_hook_name(crate::desired::TERMINATION_HOOK_NAME)
                .instance_id(instance_id);
            let op = "RecordLifecycleActionHeartbeat";
            rc.call(&rc.buckets.autoscaling, "autoscaling", op, || req.clone().send()).await?;
            Ok(())
        }
        Change::CompleteLifecycleAction { group, instance_id } => {
            let rc = cloud.region(&group.region);
            let req = rc.autoscaling.complete_lifecycle_action();
            let req = req
                .auto_scaling_group_name(&group.name)
                .lifecycle_hook_name(crate::desired::TERMINATION_HOOK_NAME)
                .instance_id(instance_id)
                .lifecycle_action_result("CONTINUE");
            let op = "CompleteLifecycleAction";
            rc.call(&rc.buckets.autoscaling, "autoscaling", op, || req.clone().send()).await?;
            Ok(())
        }
    }
}

/// An entry of an ECS answer's `failures[]` as the change's error; `what`
/// names the resource when the entry has no ARN.
fn ecs_failure(operation: &'static str, what: &str, f: &aws_sdk_ecs::types::Failure) -> CloudError {
    CloudError::Rejected {
        service: "ecs",
        operation,
        message: format!(
            "{}: {}{}",
            f.arn().unwrap_or(what),
            f.reason().unwrap_or("unknown reason"),
            f.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
    }
}

/// Leave the scaling mark `key` = `value` on the service (ARN from
/// UpdateService's answer). The change itself is made whatever happens
/// here: a mark that cannot be written (a role without `ecs:TagResource`,
/// throttling past the retries) is logged, not failed, and costs only the
/// exactness of a restart's cooldown.
async fn mark_service(rc: &RegionClients, service: &ServiceId, arn: Option<&str>, key: &str, value: String) {
    let Some(arn) = arn else {
        tracing::warn!(%service, "UpdateService returned no service ARN; its scaling mark is not written");
        return;
    };
    let req = rc.ecs.tag_resource();
    let req = req.resource_arn(arn).tags(aws_sdk_ecs::types::Tag::builder().key(key).value(value).build());
    if let Err(e) = rc.call(&rc.buckets.ecs_write, "ecs", "TagResource", || req.clone().send()).await {
        tracing::warn!(
            %service,
            error = %e,
            "the desired count was changed, but its scaling mark ({key}) could not be written: \
             a restart before the cooldown ends will not know of this change"
        );
    }
}

/// Leave the capacity mark on the group; failures as in [`mark_service`].
async fn mark_group(rc: &RegionClients, group: &GroupId, value: String) {
    let tag = aws_sdk_autoscaling::types::Tag::builder()
        .resource_id(&group.name)
        .resource_type("auto-scaling-group")
        .key(marks::LAST_CAPACITY_CHANGE)
        .value(value)
        // The mark describes the group, not the instances it launches.
        .propagate_at_launch(false)
        .build();
    let req = rc.autoscaling.create_or_update_tags();
    let req = req.tags(tag);
    if let Err(e) = rc.call(&rc.buckets.autoscaling, "autoscaling", "CreateOrUpdateTags", || req.clone().send()).await {
        tracing::warn!(
            %group,
            error = %e,
            "the capacity was changed, but its mark ({}) could not be written: \
             a restart before the scaleInCooldown ends will not know of this change",
            marks::LAST_CAPACITY_CHANGE
        );
    }
}

/// Register one chunk. ELBv2 rejects the whole call with InvalidTarget
/// when an instance in it is not running (stopping, stopped, terminated),
/// naming those instances: the call is sent again without them, so the
/// other tasks' targets are not held back by one instance going away. The
/// instances left out are logged; a rejection that names none of the
/// chunk's instances fails the change as it is.
async fn register_chunk(rc: &RegionClients, target_group_arn: &str, chunk: &[Target]) -> Result<(), CloudError> {
    let mut targets = chunk.to_vec();
    loop {
        let req = rc.elbv2.register_targets();
        let req = req.target_group_arn(target_group_arn).set_targets(Some(descriptions(&targets)));
        let err = match rc.call(&rc.buckets.elbv2_register, "elbv2", "RegisterTargets", || req.clone().send()).await {
            Ok(_) => return Ok(()),
            Err(e) => e,
        };
        let CloudError::Rejected { message, .. } = &err else { return Err(err) };
        if !message.starts_with("InvalidTarget") {
            return Err(err);
        }
        let named = instance_ids(message);
        let (left_out, rest): (Vec<Target>, Vec<Target>) =
            targets.into_iter().partition(|t| named.contains(&t.id.as_str()));
        if left_out.is_empty() {
            return Err(err);
        }
        tracing::warn!(
            target_group = target_group_arn,
            left_out = ?left_out.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "not registering targets whose instances are not running: {message}"
        );
        if rest.is_empty() {
            return Ok(());
        }
        targets = rest;
    }
}

/// The EC2 instance ids (`i-` and 8 or 17 hex digits) an error message names.
fn instance_ids(message: &str) -> Vec<&str> {
    message
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            w.strip_prefix("i-")
                .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.chars().all(|c| c.is_ascii_hexdigit()))
        })
        .collect()
}

/// Deregister one chunk. ELBv2 rejects the whole call with InvalidTarget
/// when one target is not (or no longer) registered, so that answer is
/// followed by one DescribeTargetHealth and a retry with only the targets
/// still registered: deregistering twice is then a no-op, as the
/// [`Cloud`](crate::cloud::Cloud) contract wants.
async fn deregister_chunk(rc: &RegionClients, target_group_arn: &str, chunk: &[Target]) -> Result<(), CloudError> {
    let send = |targets: Vec<TargetDescription>| async move {
        let req = rc.elbv2.deregister_targets();
        let req = req.target_group_arn(target_group_arn).set_targets(Some(targets));
        rc.call(&rc.buckets.elbv2_register, "elbv2", "DeregisterTargets", || req.clone().send()).await
    };
    match send(descriptions(chunk)).await {
        Ok(_) => return Ok(()),
        Err(CloudError::Rejected { message, .. }) if message.starts_with("InvalidTarget") => {}
        Err(e) => return Err(e),
    }
    let req = rc.elbv2.describe_target_health();
    let req = req.target_group_arn(target_group_arn);
    let health = rc.call(&rc.buckets.elbv2_describe, "elbv2", "DescribeTargetHealth", || req.clone().send()).await?;
    let registered: HashSet<(&str, Option<i32>)> = health
        .target_health_descriptions()
        .iter()
        .filter_map(|d| d.target())
        .filter_map(|t| Some((t.id()?, t.port())))
        .collect();
    let still: Vec<Target> = chunk
        .iter()
        .filter(|t| {
            registered.contains(&(t.id.as_str(), Some(i32::from(t.port))))
                || registered.contains(&(t.id.as_str(), None))
        })
        .cloned()
        .collect();
    if still.is_empty() {
        return Ok(());
    }
    send(descriptions(&still)).await.map(|_| ())
}

/// Targets always carry their port: a target without one means "the
/// group's port", which for deregistration could remove a different
/// registration of the same instance.
fn descriptions(targets: &[Target]) -> Vec<TargetDescription> {
    targets.iter().map(|t| TargetDescription::builder().id(&t.id).port(i32::from(t.port)).build()).collect()
}

fn put_alarm_request(
    req: aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder,
    alarm: &AlarmDefinition,
) -> aws_sdk_cloudwatch::operation::put_metric_alarm::builders::PutMetricAlarmFluentBuilder {
    let dimensions = alarm.dimensions.iter().map(|(n, v)| Dimension::builder().name(n).value(v).build()).collect();
    let req = req
        .alarm_name(&alarm.name)
        .alarm_description(&alarm.description)
        .namespace(&alarm.namespace)
        .metric_name(&alarm.metric_name)
        .set_dimensions(Some(dimensions))
        .period(i32::try_from(alarm.period_secs).unwrap_or(i32::MAX))
        .evaluation_periods(i32::try_from(alarm.evaluation_periods).unwrap_or(i32::MAX))
        .datapoints_to_alarm(i32::try_from(alarm.datapoints_to_alarm).unwrap_or(i32::MAX))
        .threshold(alarm.threshold)
        .comparison_operator(ComparisonOperator::from(alarm.comparison.as_aws()))
        .treat_missing_data(alarm.missing_data.as_aws())
        .set_alarm_actions(Some(alarm.actions.alarm.clone()))
        .set_ok_actions(Some(alarm.actions.ok.clone()))
        .set_insufficient_data_actions(Some(alarm.actions.insufficient_data.clone()))
        .tags(Tag::builder().key(MANAGED_BY_TAG.0).value(MANAGED_BY_TAG.1).build());
    match &alarm.statistic {
        Statistic::Extended(s) => req.extended_statistic(s),
        s => req.statistic(aws_sdk_cloudwatch::types::Statistic::from(s.as_aws())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_always_carry_ports() {
        let d = descriptions(&[Target { id: "i-1".into(), port: 8000 }]);
        assert_eq!(d[0].id(), Some("i-1"));
        assert_eq!(d[0].port(), Some(8000));
    }

    #[test]
    fn put_alarm_sends_a_named_or_an_extended_statistic_and_the_comparison() {
        let conf = aws_sdk_cloudwatch::Config::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .build();
        let client = aws_sdk_cloudwatch::Client::from_conf(conf);
        let mut alarm = AlarmDefinition {
            name: "a".into(),
            namespace: "AWS/ECS".into(),
            metric_name: "CPUUtilization".into(),
            statistic: Statistic::Average,
            dimensions: vec![],
            period_secs: 60,
            evaluation_periods: 3,
            datapoints_to_alarm: 3,
            threshold: 70.0,
            comparison: crate::observed::Comparison::GreaterThanThreshold,
            missing_data: crate::desired::MissingData::Missing,
            description: String::new(),
            actions: Default::default(),
        };
        let req = put_alarm_request(client.put_metric_alarm(), &alarm);
        assert_eq!(req.get_statistic(), &Some(aws_sdk_cloudwatch::types::Statistic::Average));
        assert_eq!(req.get_extended_statistic(), &None);
        assert_eq!(req.get_comparison_operator(), &Some(ComparisonOperator::GreaterThanThreshold));

        alarm.statistic = Statistic::Extended("p90".into());
        let req = put_alarm_request(client.put_metric_alarm(), &alarm);
        assert_eq!((req.get_statistic(), req.get_extended_statistic().as_deref()), (&None, Some("p90")));
    }

    #[test]
    fn the_instances_an_invalid_target_answer_names_are_found() {
        let msg = "InvalidTarget: The following targets are not in a running state and cannot be registered: \
                   'i-0123456789abcdef0, i-89abcdef'";
        assert_eq!(instance_ids(msg), vec!["i-0123456789abcdef0", "i-89abcdef"]);
        assert_eq!(instance_ids("InvalidTarget: 'i-0123456789abcdef0'"), vec!["i-0123456789abcdef0"]);
        let none = "InvalidTarget: The specified target does not exist or is not in the same VPC as the target group.";
        assert!(instance_ids(none).is_empty());
        assert!(instance_ids("ids-like i-notanid or i-123").is_empty());
    }

    #[test]
    fn targets_are_chunked_by_200() {
        let targets: Vec<Target> = (0..401).map(|i| Target { id: format!("i-{i}"), port: 80 }).collect();
        let sizes: Vec<usize> = targets.chunks(TARGETS_PER_CALL).map(<[_]>::len).collect();
        assert_eq!(sizes, vec![200, 200, 1]);
    }
}
