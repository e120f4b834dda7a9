//! The CloudWatch reads of a pass (alarms, their tags, the services' CPU)
//! and the GetMetricData pager `ballast replay` shares. Part of
//! [`super::observe`]: the same table, tally and batching rules.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch::operation::describe_alarms::DescribeAlarmsOutput;
use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{AlarmType, MetricDataQuery, ScanBy};

use super::map;
use super::observe::{Tally, all_pages, failed_batch, in_flight, resource_error};
use super::{AwsCloud, RegionClients};
use crate::cloud::{CloudError, batch};
use crate::desired::ServiceId;
use crate::observed::{MetricSample, ObservedAlarm, ResourceError};

/// Alarms by name; absent names are simply not there.
pub(super) async fn describe_alarms(
    rc: &RegionClients,
    names: &[String],
    tally: &Tally,
) -> BTreeMap<String, Result<ObservedAlarm, ResourceError>> {
    let results = in_flight(map::batches(names, batch::ALARM_NAMES), |batch| async move {
        let pages = all_pages(DescribeAlarmsOutput::next_token, |token| {
            let req = rc.cloudwatch.describe_alarms();
            let req =
                req.set_alarm_names(Some(batch.to_vec())).alarm_types(AlarmType::MetricAlarm).set_next_token(token);
            let bucket = &rc.buckets.cloudwatch_describe_alarms;
            async move { tally.note(rc.call(bucket, "cloudwatch", "DescribeAlarms", || req.clone().send()).await) }
        });
        (batch, pages.await)
    })
    .await;
    let mut out = BTreeMap::new();
    for (batch, result) in results {
        match result {
            Ok(pages) => {
                for a in pages.iter().flat_map(|p| p.metric_alarms()).map(map::alarm) {
                    out.insert(a.definition.name.clone(), Ok(a));
                }
            }
            Err(e) => out.extend(failed_batch(batch, &e)),
        }
    }
    out
}

/// Whether each alarm read carries ballast's `managed-by` tag, which
/// PutMetricAlarm sets only on create. DescribeAlarms returns no tags, so
/// an alarm's are listed until it is seen tagged; alarms seen tagged, or
/// created or tagged by ballast, are remembered, so a steady pass lists
/// none. A listing that fails leaves `None` (logged): the alarm itself was
/// read, only its tag is unknown.
pub(super) async fn alarm_tags(
    cloud: &AwsCloud,
    rc: &RegionClients,
    region: &str,
    mut alarms: BTreeMap<String, Result<ObservedAlarm, ResourceError>>,
) -> BTreeMap<String, Result<ObservedAlarm, ResourceError>> {
    let known =
        |name: &str| cloud.inner.tagged_alarms.lock().unwrap().contains(&(region.to_string(), name.to_string()));
    let mut unknown = Vec::new();
    for a in alarms.values_mut().filter_map(|a| a.as_mut().ok()) {
        if known(&a.definition.name) {
            a.managed_by_ballast = Some(true);
        } else if !a.arn.is_empty() {
            unknown.push((a.definition.name.clone(), a.arn.clone()));
        }
    }
    let listed = in_flight(unknown, |(name, arn)| async move {
        let req = rc.cloudwatch.list_tags_for_resource().resource_arn(&arn);
        let bucket = &rc.buckets.cloudwatch_describe_alarms;
        (name, rc.call(bucket, "cloudwatch", "ListTagsForResource", || req.clone().send()).await)
    })
    .await;
    for (name, tags) in listed {
        let tagged = match tags {
            Ok(out) => {
                let (key, value) = super::apply::MANAGED_BY_TAG;
                out.tags().iter().any(|t| t.key() == Some(key) && t.value() == Some(value))
            }
            Err(e) => {
                tracing::warn!(alarm = %name, error = %e, "the alarm's tags could not be read");
                continue;
            }
        };
        if tagged {
            cloud.inner.tagged_alarms.lock().unwrap().insert((region.to_string(), name.clone()));
        }
        if let Some(Ok(a)) = alarms.get_mut(&name) {
            a.managed_by_ballast = Some(tagged);
        }
    }
    alarms
}

/// The latest average CPU of each service. A service whose read failed
/// is left out; one without datapoints maps to `None`.
pub(super) async fn metric_data(
    cloud: &AwsCloud,
    rc: &RegionClients,
    services: &[ServiceId],
    now: Option<std::time::SystemTime>,
    tally: &Tally,
) -> BTreeMap<ServiceId, Result<Option<MetricSample>, ResourceError>> {
    let mut out = BTreeMap::new();
    let end = cloud.inner.clock.now();
    let start = end - cloud.inner.options.metric_lookback;
    // At most one read per metric period per service.
    let services: Vec<ServiceId> = {
        let reads = cloud.inner.cpu_reads.lock().unwrap();
        services
            .iter()
            .filter(|id| match reads.fresh(id, now) {
                Some(sample) => {
                    out.insert((*id).clone(), Ok(*sample));
                    false
                }
                None => true,
            })
            .cloned()
            .collect()
    };
    for batch in map::batches(&services, batch::METRIC_QUERIES) {
        let queries: Vec<MetricDataQuery> = batch
            .iter()
            .enumerate()
            .map(|(i, id)| map::service_metric_query(&format!("q{i}"), id, map::SERVICE_CPU, 60))
            .collect();
        let pages = get_metric_data(rc, &queries, (start, end), ScanBy::TimestampDescending, Some(tally));
        let pages = match pages.await {
            Ok(pages) => pages,
            Err(e) => {
                // A failed read is no "no datapoint": the decision that
                // needs it must know it was not read.
                let err = resource_error(&e);
                out.extend(batch.iter().map(|id| (id.clone(), Err(err.clone()))));
                continue;
            }
        };
        let mut samples: HashMap<String, Option<MetricSample>> = HashMap::new();
        for r in pages.iter().flat_map(|p| p.metric_data_results()) {
            let Some(qid) = r.id() else { continue };
            let s = map::latest_sample(r);
            let slot = samples.entry(qid.to_string()).or_default();
            // Pages split datapoints; keep the newest.
            if s.map(|s| s.at) > slot.map(|s| s.at) {
                *slot = s;
            }
        }
        let mut reads = cloud.inner.cpu_reads.lock().unwrap();
        for (i, id) in batch.iter().enumerate() {
            let sample = samples.get(&format!("q{i}")).copied().flatten();
            reads.put(id.clone(), now, sample);
            out.insert(id.clone(), Ok(sample));
        }
    }
    out
}

/// Every page of one GetMetricData request over `(start, end)`; each
/// attempt's outcome noted in `tally`, when there is one.
pub(super) async fn get_metric_data(
    rc: &RegionClients,
    queries: &[MetricDataQuery],
    (start, end): (std::time::SystemTime, std::time::SystemTime),
    scan: ScanBy,
    tally: Option<&Tally>,
) -> Result<Vec<GetMetricDataOutput>, CloudError> {
    all_pages(GetMetricDataOutput::next_token, |token| {
        let req = rc.cloudwatch.get_metric_data();
        let req = req
            .set_metric_data_queries(Some(queries.to_vec()))
            .start_time(start.into())
            .end_time(end.into())
            .scan_by(scan.clone())
            .set_next_token(token);
        let bucket = &rc.buckets.cloudwatch_metric_data;
        async move {
            let result = rc.call(bucket, "cloudwatch", "GetMetricData", || req.clone().send()).await;
            match tally {
                Some(t) => t.note(result),
                None => result,
            }
        }
    })
    .await
}
