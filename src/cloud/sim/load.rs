//! Load, CPU datapoints and alarm evaluation (CloudWatch's side).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::world::{Alarm, World};
use crate::desired::{MissingData, ServiceId};
use crate::observed::{AlarmDefinition, AlarmState, Comparison, MetricSample, Statistic, TaskStatus};

/// Datapoints kept per service: a day of one-minute periods.
const MAX_DATAPOINTS: usize = 1440;

impl World {
    /// Average CPU percent of one running task of the service right now.
    fn task_cpu(&self, load_rps: f64, running: usize) -> f64 {
        (load_rps / running as f64 * self.config.cpu_per_rps).clamp(0.0, 100.0)
    }

    /// Integrate CPU from `self.now` to `to`. The load and the running
    /// tasks are constant in between: every change is an event.
    pub fn accumulate_load(&mut self, to: SystemTime) {
        let Ok(elapsed) = to.duration_since(self.now) else {
            return;
        };
        let seconds = elapsed.as_secs_f64();
        if seconds <= 0.0 {
            return;
        }
        self.accumulate_traffic(to);
        let mut running: BTreeMap<&ServiceId, usize> = BTreeMap::new();
        for task in self.tasks.values() {
            if task.last_status == TaskStatus::Running {
                *running.entry(&task.service).or_default() += 1;
            }
        }
        let cpu: Vec<(ServiceId, f64)> = running
            .into_iter()
            .map(|(id, n)| {
                let load = self.average_rate(id, self.now, to);
                (id.clone(), self.task_cpu(load, n))
            })
            .collect();
        for (id, cpu) in cpu {
            if let Some(service) = self.services.get_mut(&id) {
                service.cpu_acc += cpu * seconds;
                service.cpu_covered += seconds;
            }
        }
    }

    /// The metric period ending at `end` is complete: publish one
    /// datapoint per service that had a running task, then evaluate the
    /// alarms whose period ends here.
    pub fn close_period(&mut self, end: SystemTime) {
        let start = end - self.config.metric_period;
        for service in self.services.values_mut() {
            if service.cpu_covered > 0.0 {
                let average = service.cpu_acc / service.cpu_covered;
                service.datapoints.push_back((start, average));
                if average > 90.0 {
                    self.traffic.usage.cpu_minutes_above_90 += 1;
                }
                while service.datapoints.len() > MAX_DATAPOINTS {
                    service.datapoints.pop_front();
                }
            }
            service.cpu_acc = 0.0;
            service.cpu_covered = 0.0;
        }
        self.evaluate_alarms(end);
    }

    /// The latest complete datapoint of a service's CPU.
    pub fn latest_cpu(&self, id: &ServiceId) -> Option<MetricSample> {
        let (at, value) = *self.services.get(id)?.datapoints.back()?;
        Some(MetricSample { value, at })
    }

    /// The service an alarm watches, if it is an ECS service CPU alarm on a
    /// simulated service.
    fn alarm_service(&self, region: &str, def: &AlarmDefinition) -> Option<ServiceId> {
        if def.namespace != "AWS/ECS" || def.metric_name != "CPUUtilization" {
            return None;
        }
        let dim = |name: &str| def.dimensions.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        let id = ServiceId { region: region.to_string(), cluster: dim("ClusterName")?, service: dim("ServiceName")? };
        self.services.contains_key(&id).then_some(id)
    }

    /// The alarm's period, rounded up to whole metric periods.
    fn alarm_period(&self, def: &AlarmDefinition) -> Duration {
        let metric = self.config.metric_period.as_secs().max(1);
        let secs = u64::from(def.period_secs).max(1).div_ceil(metric) * metric;
        Duration::from_secs(secs)
    }

    fn evaluate_alarms(&mut self, end: SystemTime) {
        let since_epoch = end.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs();
        let mut updates = Vec::new();
        for ((region, name), alarm) in &self.alarms {
            let Some(id) = self.alarm_service(region, &alarm.definition) else {
                continue;
            };
            let period = self.alarm_period(&alarm.definition);
            if !since_epoch.is_multiple_of(period.as_secs()) {
                continue;
            }
            let datapoints = &self.services[&id].datapoints;
            let windows: Vec<Option<f64>> = (0..alarm.definition.evaluation_periods.max(1))
                .map(|k| {
                    let window_end = end - period * k;
                    let window_start = window_end - period;
                    let values: Vec<f64> = datapoints
                        .iter()
                        .filter(|(at, _)| *at >= window_start && *at < window_end)
                        .map(|(_, v)| *v)
                        .collect();
                    aggregate(&alarm.definition.statistic, &values)
                })
                .collect();
            let state = evaluate(&alarm.definition, &windows, alarm.state);
            if state != alarm.state {
                updates.push(((region.clone(), name.clone()), state));
            }
        }
        for (key, state) in updates {
            if let Some(alarm) = self.alarms.get_mut(&key) {
                alarm.state = state;
                alarm.state_updated = end;
            }
        }
    }

    /// PutMetricAlarm: create, or overwrite the definition.
    pub fn put_alarm(&mut self, region: &str, definition: AlarmDefinition) {
        let now = self.now;
        let reset = self.config.reset_alarm_state_on_put;
        let key = (region.to_string(), definition.name.clone());
        match self.alarms.get_mut(&key) {
            Some(alarm) => {
                alarm.definition = definition;
                if reset && alarm.state != AlarmState::InsufficientData {
                    alarm.state = AlarmState::InsufficientData;
                    alarm.state_updated = now;
                }
            }
            None => {
                self.alarms.insert(key, Alarm { definition, state: AlarmState::InsufficientData, state_updated: now });
            }
        }
    }
}

/// One window's value from the metric's datapoints inside it.
fn aggregate(statistic: &Statistic, values: &[f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    Some(match statistic {
        Statistic::Maximum => values.iter().copied().fold(f64::MIN, f64::max),
        Statistic::Minimum => values.iter().copied().fold(f64::MAX, f64::min),
        Statistic::Sum => values.iter().sum(),
        Statistic::SampleCount => values.len() as f64,
        _ => values.iter().sum::<f64>() / values.len() as f64,
    })
}

fn breaches(comparison: &Comparison, value: f64, threshold: f64) -> bool {
    match comparison {
        Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
        Comparison::GreaterThanThreshold => value > threshold,
        Comparison::LessThanThreshold => value < threshold,
        Comparison::LessThanOrEqualToThreshold => value <= threshold,
        Comparison::Other(_) => false,
    }
}

/// M of N over the last N windows (newest first), with the alarm's
/// treatment of missing data. See the module docs of `sim` for how
/// `missing` and `ignore` treat partial data.
pub(super) fn evaluate(def: &AlarmDefinition, windows: &[Option<f64>], current: AlarmState) -> AlarmState {
    let m = def.datapoints_to_alarm.max(1) as usize;
    let breach = |v: f64| breaches(&def.comparison, v, def.threshold);
    let verdict = |breaching: usize| {
        if breaching >= m { AlarmState::Alarm } else { AlarmState::Ok }
    };
    match def.missing_data {
        MissingData::Breaching => verdict(windows.iter().filter(|w| w.is_none_or(breach)).count()),
        MissingData::NotBreaching => verdict(windows.iter().filter(|w| w.is_some_and(breach)).count()),
        MissingData::Missing | MissingData::Ignore => {
            if windows.iter().all(Option::is_none) {
                return match def.missing_data {
                    MissingData::Missing => AlarmState::InsufficientData,
                    _ => current,
                };
            }
            verdict(windows.iter().filter(|w| w.is_some_and(breach)).count())
        }
    }
}
