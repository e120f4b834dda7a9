//! A service's recorded history for `ballast replay`: its CPU average
//! (`AWS/ECS CPUUtilization`) and running tasks (`ECS/ContainerInsights
//! RunningTaskCount`, which needs Container Insights on the cluster) over a
//! time range, read with GetMetricData in one paginated request.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::types::ScanBy;

use super::AwsCloud;
use super::cloudwatch::get_metric_data;
use super::map::{self, SERVICE_CPU, SERVICE_RUNNING_TASKS};
use crate::cloud::CloudError;
use crate::desired::ServiceId;
use crate::simulate::history::History;

/// The period to read a range of `span` at: CloudWatch keeps 1-minute data
/// for 15 days, 5-minute data for 63 days, hourly data beyond.
pub fn period_for(span: Duration) -> Duration {
    const DAY: u64 = 24 * 3600;
    match span.as_secs() {
        s if s <= 15 * DAY => Duration::from_secs(60),
        s if s <= 63 * DAY => Duration::from_secs(300),
        _ => Duration::from_secs(3600),
    }
}

impl AwsCloud {
    /// The history of `service` from `start` to `end`: one row per period
    /// with both a CPU and a task-count datapoint (the task count is the
    /// period's average, rounded). `None` when there is no such period.
    pub async fn history(
        &self,
        service: &ServiceId,
        start: SystemTime,
        end: SystemTime,
    ) -> Result<Option<History>, CloudError> {
        let rc = self.region(&service.region);
        let period = period_for(end.duration_since(start).unwrap_or_default());
        let secs = i32::try_from(period.as_secs()).unwrap_or(i32::MAX);
        let queries = vec![
            map::service_metric_query("cpu", service, SERVICE_CPU, secs),
            map::service_metric_query("tasks", service, SERVICE_RUNNING_TASKS, secs),
        ];
        let pages = get_metric_data(&rc, &queries, (start, end), ScanBy::TimestampAscending, None).await?;
        let mut cpu: BTreeMap<SystemTime, f64> = BTreeMap::new();
        let mut tasks: BTreeMap<SystemTime, f64> = BTreeMap::new();
        for r in pages.iter().flat_map(|p| p.metric_data_results()) {
            let into = match r.id() {
                Some("cpu") => &mut cpu,
                Some("tasks") => &mut tasks,
                _ => continue,
            };
            into.extend(map::samples(r));
        }
        let rows = cpu.into_iter().filter_map(|(t, c)| Some((t, c, tasks.get(&t)?.round().max(0.0) as u32))).collect();
        Ok(History::from_samples(format!("{}/{}", service.cluster, service.service), rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_period_follows_cloudwatch_retention() {
        let day = Duration::from_secs(24 * 3600);
        assert_eq!(period_for(7 * day), Duration::from_secs(60));
        assert_eq!(period_for(30 * day), Duration::from_secs(300));
        assert_eq!(period_for(90 * day), Duration::from_secs(3600));
    }
}
