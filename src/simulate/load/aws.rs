//! Checks of `spec.aws`: the fidelity settings and their AWS ranges.

use super::*;
use crate::cloud::sim::{DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT, SimConfig};

impl Checker<'_, '_, '_> {
    // ---- aws -------------------------------------------------------------

    pub(super) fn aws(&mut self, raw: Option<&RawAws>) -> Option<AwsSettings> {
        let Some(raw) = raw else {
            return Some(AwsSettings::default());
        };
        let mut ok = true;
        let d = SimConfig::default();
        // `default` where the key is absent or its value is refused.
        let mut dur = |this: &mut Self,
                       v: &Option<DurationText>,
                       key: &str,
                       default: Duration,
                       (lo, hi): (Duration, Option<Duration>),
                       why: &str| {
            let path = join_key("spec.aws", key);
            if v.is_none() {
                return default;
            }
            let Some(d) = this.duration(v, &path, "") else {
                ok = false;
                return default;
            };
            if d < lo || hi.is_some_and(|hi| d > hi) {
                let range = match hi {
                    Some(hi) => format!("between {} and {}", format_duration(lo), format_duration(hi)),
                    None => format!("at least {}", format_duration(lo)),
                };
                this.ctx.at_value(
                    &path,
                    format!("`{path}` is {}, but must be {range}", format_duration(d)),
                    why.to_string(),
                );
                ok = false;
                return default;
            }
            d
        };
        let s = |n| Duration::from_secs(n);
        let any = (s(0), None);
        let sim = SimConfig {
            deregistration_propagation_lag: dur(
                self,
                &raw.deregistration_propagation_lag,
                "deregistrationPropagationLag",
                d.deregistration_propagation_lag,
                any,
                "",
            ),
            deregistration_delay: dur(
                self,
                &raw.deregistration_delay,
                "deregistrationDelay",
                d.deregistration_delay,
                (s(0), Some(s(3600))),
                "ELBv2's deregistration_delay.timeout_seconds is 0 to 3600 seconds",
            ),
            health_check_interval: dur(
                self,
                &raw.health_check_interval,
                "healthCheckInterval",
                d.health_check_interval,
                (s(5), Some(s(300))),
                "ELBv2's HealthCheckIntervalSeconds is 5 to 300 seconds",
            ),
            stop_timeout: dur(
                self,
                &raw.stop_timeout,
                "stopTimeout",
                d.stop_timeout,
                (s(0), Some(s(120))),
                "ECS's stopTimeout is at most 120 seconds",
            ),
            sigterm_grace: dur(self, &raw.sigterm_grace, "sigtermGrace", d.sigterm_grace, any, ""),
            consistency_lag: dur(self, &raw.consistency_lag, "consistencyLag", d.consistency_lag, any, ""),
            az_rebalance: raw.az_rebalance.unwrap_or(d.az_rebalance),
            task_start_delay: dur(self, &raw.task_start_delay, "taskStartDelay", d.task_start_delay, any, ""),
            instance_launch_delay: dur(
                self,
                &raw.instance_launch_delay,
                "instanceLaunchDelay",
                d.instance_launch_delay,
                any,
                "",
            ),
            ..d
        };
        let help = "ELBv2's health check thresholds are 2 to 10 checks";
        let healthy = raw.healthy_threshold.map(|v| self.ctx.int(v, "spec.aws.healthyThreshold", 2, 10, help));
        ok &= healthy.is_none_or(|h| h.is_some());
        let help = "ECS's minimumHealthyPercent is 0 to 100";
        let min = raw.minimum_healthy_percent.map(|v| self.ctx.int(v, "spec.aws.minimumHealthyPercent", 0, 100, help));
        ok &= min.is_none_or(|m| m.is_some());
        let help = "ECS's maximumPercent is at least 100 for a rolling update on EC2";
        let max = raw.maximum_percent.map(|v| self.ctx.int(v, "spec.aws.maximumPercent", 100, 1000, help));
        ok &= max.is_none_or(|m| m.is_some());
        let sim = SimConfig { healthy_threshold: healthy.flatten().unwrap_or(sim.healthy_threshold), ..sim };
        let deployment = (min.is_some() || max.is_some()).then(|| {
            (min.flatten().unwrap_or(DEFAULT_MINIMUM_HEALTHY_PERCENT), max.flatten().unwrap_or(DEFAULT_MAXIMUM_PERCENT))
        });
        ok.then_some(AwsSettings { sim, deployment })
    }
}
