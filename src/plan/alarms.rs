//! The CPU alarms a scaling policy keeps in CloudWatch.

use super::gate::{HoldReason, Proposal};
use super::memory::{self, Field, FieldValue};
use super::{Change, FieldCheck, ResourceKey};
use crate::desired::{AlarmRule, Service, ServiceId};
use crate::observed::{AlarmDefinition, Comparison, ServiceStatus};

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

impl super::Planner<'_> {
    /// The service's alarms as its policy declares them: created, tagged,
    /// or put back where they were edited outside ballast.
    pub(super) fn plan_alarms(&mut self, svc: &Service) {
        let Some(defs) = desired_alarms(svc) else {
            return;
        };
        // No alarms are kept for a deleted service (its hold says why).
        if matches!(self.observed.services.get(&svc.id), Some(Ok(o)) if o.status != ServiceStatus::Active) {
            return;
        }
        for mut def in defs {
            let key = ResourceKey::alarm(&svc.id.region, &def.name);
            let observed = self.observed.alarms.get(&(svc.id.region.clone(), def.name.clone()));
            // PutMetricAlarm sets tags only when it creates the alarm: one
            // that exists without ballast's tag (created by someone else,
            // or before ballast tagged) is tagged on its own.
            if let Some(Ok(o)) = observed
                && o.managed_by_ballast == Some(false)
            {
                let change =
                    Change::TagAlarm { region: svc.id.region.clone(), name: def.name.clone(), arn: o.arn.clone() };
                let reason = "the alarm lacks ballast's managed-by tag".to_string();
                let p = Proposal { suspended: svc.suspend, ..Proposal::new(key.clone(), change, reason) };
                if let Some(pc) = self.admit(p) {
                    self.out.changes.push(pc);
                }
            }
            let (create, reason, field) = match observed {
                Some(Err(e)) => {
                    self.hold(key, HoldReason::Unobserved(e.to_string()));
                    continue;
                }
                None => (true, "alarm does not exist".to_string(), FieldCheck::default()),
                Some(Ok(o)) => {
                    let fingerprint = memory::alarm_fingerprint(&o.definition);
                    let field = self.check_field(
                        || Field::Alarm(svc.id.region.clone(), def.name.clone()),
                        FieldValue::Text(fingerprint),
                    );
                    let diffs = differences(&def, &o.definition);
                    if diffs.is_empty() {
                        continue;
                    }
                    // PutMetricAlarm replaces the actions too: keep those
                    // someone added, which ballast does not declare.
                    def.actions = o.definition.actions.clone();
                    (false, format!("edited outside ballast: {}", diffs.join(", ")), field)
                }
            };
            let change = Change::PutAlarm { region: svc.id.region.clone(), alarm: def, create };
            let p = Proposal {
                contested: field.contested,
                unconfirmed: field.unconfirmed,
                suspended: svc.suspend,
                ..Proposal::new(key, change, reason)
            };
            if let Some(pc) = self.admit(p) {
                self.out.changes.push(pc);
            }
        }
    }
}
