//! One write per [`Change`] (chunked where the API wants it).

use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
use aws_sdk_elasticloadbalancingv2::types::TargetDescription;

use std::collections::HashSet;

use super::errors::from_sdk;
use super::{AwsCloud, RegionClients, pace};
use crate::cloud::CloudError;
use crate::observed::{AlarmDefinition, Target};
use crate::plan::Change;

/// Targets per Register/DeregisterTargets call, as the AWS Load Balancer
/// Controller sends them.
pub(crate) const TARGETS_PER_CALL: usize = 200;

/// The tag every alarm ballast creates carries, so that people (and IAM
/// conditions) can tell ballast's alarms from others.
pub const MANAGED_BY_TAG: (&str, &str) = ("managed-by", "ballast");

pub(super) async fn apply(cloud: &AwsCloud, change: &Change) -> Result<(), CloudError> {
    match change {
        Change::SetDesiredCount { service, to, .. } => {
            let rc = cloud.region(&service.region);
            pace(&rc.buckets.ecs_write).await;
            let req = rc.ecs.update_service();
            req.cluster(&service.cluster)
                .service(&service.service)
                .desired_count(i32::try_from(*to).unwrap_or(i32::MAX))
                .send()
                .await
                .map_err(|e| from_sdk("ecs", "UpdateService", e))?;
            Ok(())
        }
        Change::RegisterTargets { region, target_group_arn, targets } => {
            let rc = cloud.region(region);
            for chunk in targets.chunks(TARGETS_PER_CALL) {
                pace(&rc.buckets.elbv2_register).await;
                let req = rc.elbv2.register_targets();
                req.target_group_arn(target_group_arn)
                    .set_targets(Some(descriptions(chunk)))
                    .send()
                    .await
                    .map_err(|e| from_sdk("elbv2", "RegisterTargets", e))?;
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
        Change::PutAlarm { region, alarm, .. } => {
            let rc = cloud.region(region);
            pace(&rc.buckets.cloudwatch_put_alarm).await;
            put_alarm_request(rc.cloudwatch.put_metric_alarm(), alarm)
                .send()
                .await
                .map_err(|e| from_sdk("cloudwatch", "PutMetricAlarm", e))?;
            Ok(())
        }
        Change::SetDesiredCapacity { group, to, .. } => {
            let rc = cloud.region(&group.region);
            pace(&rc.buckets.autoscaling).await;
            let req = rc.autoscaling.set_desired_capacity();
            req.auto_scaling_group_name(&group.name)
                .desired_capacity(i32::try_from(*to).unwrap_or(i32::MAX))
                // The planner has its own cooldowns; the group's would make
                // a correction silently fail.
                .honor_cooldown(false)
                .send()
                .await
                .map_err(|e| from_sdk("autoscaling", "SetDesiredCapacity", e))?;
            Ok(())
        }
        Change::TerminateInstance { group, instance_id } => {
            let rc = cloud.region(&group.region);
            pace(&rc.buckets.autoscaling).await;
            let req = rc.autoscaling.terminate_instance_in_auto_scaling_group();
            req.instance_id(instance_id)
                .should_decrement_desired_capacity(true)
                .send()
                .await
                .map_err(|e| from_sdk("autoscaling", "TerminateInstanceInAutoScalingGroup", e))?;
            Ok(())
        }
        Change::SetGroupSubnets { group, to, .. } => {
            let rc = cloud.region(&group.region);
            pace(&rc.buckets.autoscaling).await;
            let req = rc.autoscaling.update_auto_scaling_group();
            req.auto_scaling_group_name(&group.name)
                .vpc_zone_identifier(to.join(","))
                .send()
                .await
                .map_err(|e| from_sdk("autoscaling", "UpdateAutoScalingGroup", e))?;
            Ok(())
        }
    }
}

/// Deregister one chunk. ELBv2 rejects the whole call with InvalidTarget
/// when one target is not (or no longer) registered, so that answer is
/// followed by one DescribeTargetHealth and a retry with only the targets
/// still registered: deregistering twice is then a no-op, as the
/// [`Cloud`](crate::cloud::Cloud) contract wants.
async fn deregister_chunk(rc: &RegionClients, target_group_arn: &str, chunk: &[Target]) -> Result<(), CloudError> {
    let send = |targets: Vec<TargetDescription>| async move {
        pace(&rc.buckets.elbv2_register).await;
        let req = rc.elbv2.deregister_targets();
        req.target_group_arn(target_group_arn).set_targets(Some(targets)).send().await
    };
    let err = match send(descriptions(chunk)).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let invalid_target = err.as_service_error().and_then(|e| e.meta().code()).is_some_and(|c| c == "InvalidTarget");
    if !invalid_target {
        return Err(from_sdk("elbv2", "DeregisterTargets", err));
    }
    pace(&rc.buckets.elbv2_describe).await;
    let req = rc.elbv2.describe_target_health();
    let health = req
        .target_group_arn(target_group_arn)
        .send()
        .await
        .map_err(|e| from_sdk("elbv2", "DescribeTargetHealth", e))?;
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
    send(descriptions(&still)).await.map(|_| ()).map_err(|e| from_sdk("elbv2", "DeregisterTargets", e))
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
        .comparison_operator(ComparisonOperator::from(alarm.comparison.as_str()))
        .treat_missing_data(alarm.missing_data.as_aws())
        .tags(Tag::builder().key(MANAGED_BY_TAG.0).value(MANAGED_BY_TAG.1).build());
    // Statistics are one of a fixed set; anything else (p90, tm99) is an
    // extended statistic.
    if Statistic::values().contains(&alarm.statistic.as_str()) {
        req.statistic(Statistic::from(alarm.statistic.as_str()))
    } else {
        req.extended_statistic(&alarm.statistic)
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
    fn targets_are_chunked_by_200() {
        let targets: Vec<Target> = (0..401).map(|i| Target { id: format!("i-{i}"), port: 80 }).collect();
        let sizes: Vec<usize> = targets.chunks(TARGETS_PER_CALL).map(<[_]>::len).collect();
        assert_eq!(sizes, vec![200, 200, 1]);
    }
}
