//! The CPU alarms a scaling policy keeps in CloudWatch.

use crate::desired::{AlarmRule, Service, ServiceId};
use crate::observed::{AlarmDefinition, Comparison};

/// Names of the scale-out and scale-in alarms of a service.
pub fn alarm_names(id: &ServiceId) -> [String; 2] {
    [
        format!("ballast-{}-{}-cpu-high", id.cluster, id.service),
        format!("ballast-{}-{}-cpu-low", id.cluster, id.service),
    ]
}

/// The two alarm definitions a service's policy declares, high first.
pub fn desired_alarms(service: &Service) -> Option<[AlarmDefinition; 2]> {
    let scaling = service.scaling.as_ref()?;
    let [high, low] = alarm_names(&service.id);
    let def = |name: String, rule: &AlarmRule, comparison: Comparison, what: &str| AlarmDefinition {
        period_secs: rule.period.as_secs() as u32,
        evaluation_periods: rule.evaluation_periods,
        datapoints_to_alarm: rule.datapoints_to_alarm,
        comparison,
        missing_data: scaling.missing_data,
        description: format!("Managed by ballast ({}): {what} of {}", service.name, service.id),
        ..AlarmDefinition::service_cpu(name, &service.id, rule.threshold)
    };
    Some([
        def(high, &scaling.scale_out, Comparison::GreaterThanThreshold, "scale-out alarm"),
        def(low, &scaling.scale_in, Comparison::LessThanThreshold, "scale-in alarm"),
    ])
}

/// Which managed fields of `observed` differ from `desired`, for reasons.
pub fn differences(desired: &AlarmDefinition, observed: &AlarmDefinition) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |name: &str, d: String, o: String| {
        if d != o {
            diffs.push(format!("{name} {o} -> {d}"));
        }
    };
    check("threshold", desired.threshold.to_string(), observed.threshold.to_string());
    check("comparison", desired.comparison.to_string(), observed.comparison.to_string());
    check("period", format!("{}s", desired.period_secs), format!("{}s", observed.period_secs));
    check("evaluationPeriods", desired.evaluation_periods.to_string(), observed.evaluation_periods.to_string());
    check("datapointsToAlarm", desired.datapoints_to_alarm.to_string(), observed.datapoints_to_alarm.to_string());
    check("missingData", desired.missing_data.as_aws().into(), observed.missing_data.as_aws().into());
    check(
        "metric",
        format!("{}/{}", desired.namespace, desired.metric_name),
        format!("{}/{}", observed.namespace, observed.metric_name),
    );
    check("statistic", desired.statistic.to_string(), observed.statistic.to_string());
    check("dimensions", format!("{:?}", desired.dimensions), format!("{:?}", observed.dimensions));
    diffs
}
