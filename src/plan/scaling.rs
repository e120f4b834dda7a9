//! CPU-alarm scaling decisions: how many tasks a service should run.
//!
//! A pure function of the policy, the alarms' states, the CPU average,
//! the service and the scaling history. Scale-out reacts as soon as the
//! high alarm fires (one CloudWatch evaluation), proportionally when a
//! target CPU is declared; scale-in is gradual, waits for its cooldown and
//! takes the highest recommendation of the stabilisation window, like the
//! Kubernetes HPA.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

use crate::desired::CpuScaling;
use crate::observed::{AlarmState, MetricSample};

use super::memory::ScalingMemory;

/// The period of the CPU datapoints decisions are sized from: the cloud
/// reads 1-minute averages (`AWS/ECS CPUUtilization` at period 60, and
/// the simulated cloud's default metric period).
pub const CPU_PERIOD: Duration = Duration::from_secs(60);

/// Everything a decision is made from, kept for /status.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecisionInputs {
    /// The desired count ECS had.
    pub current: u32,
    /// Tasks that were running: the CPU average is over these.
    pub running: u32,
    /// The declared bounds, `tasks.min` and `tasks.max`.
    pub min: u32,
    pub max: u32,
    /// The states the scale-out and scale-in alarms were read in; `None`
    /// when not read.
    pub high_alarm: Option<AlarmState>,
    pub low_alarm: Option<AlarmState>,
    /// The CPU datapoint sized from, percent, if one was fresh enough.
    pub cpu: Option<f64>,
    /// A deployment was rolling out: no scale-in then.
    pub deploying: bool,
    /// Recommendations in the stabilisation window, oldest first.
    pub window: Vec<u32>,
}

/// Why the decision came out as it did; a stable metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    ScaleOut,
    ScaleIn,
    /// Nothing asks for a change.
    Steady,
    /// Within the tolerance band around the target CPU.
    WithinTolerance,
    OutCooldown,
    /// A proportional step waits: the newest CPU datapoint began before
    /// the last scale-out (it describes the old count), or the tasks
    /// already asked for but not yet running cover the load.
    Settling,
    InCooldown,
    /// A higher recommendation is still inside the stabilisation window.
    Stabilizing,
    /// No scale-in while a deployment rolls out.
    Deploying,
    /// Alarms missing, in INSUFFICIENT_DATA, or the metric is stale.
    NoData,
    AtMax,
    AtMin,
    /// The observed count was outside the bounds and is brought back in.
    Bounds,
}

impl DecisionReason {
    pub fn as_str(&self) -> &'static str {
        match self {
            DecisionReason::ScaleOut => "scale_out",
            DecisionReason::ScaleIn => "scale_in",
            DecisionReason::Steady => "steady",
            DecisionReason::WithinTolerance => "within_tolerance",
            DecisionReason::OutCooldown => "out_cooldown",
            DecisionReason::Settling => "settling",
            DecisionReason::InCooldown => "in_cooldown",
            DecisionReason::Stabilizing => "stabilizing",
            DecisionReason::Deploying => "deploying",
            DecisionReason::NoData => "no_data",
            DecisionReason::AtMax => "at_max",
            DecisionReason::AtMin => "at_min",
            DecisionReason::Bounds => "bounds",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Decision {
    pub desired: u32,
    pub reason: DecisionReason,
    pub message: String,
    pub inputs: DecisionInputs,
}

/// What the decision sees of the world this pass.
#[derive(Debug, Clone, Copy)]
pub struct ScalingView {
    /// The desired count now.
    pub current: u32,
    /// Tasks running now (the CPU average is over these).
    pub running: u32,
    /// The declared bounds, `tasks.min` and `tasks.max`.
    pub min: u32,
    pub max: u32,
    /// A deployment is rolling out: its new tasks would skew the CPU.
    pub deploying: bool,
    /// The scale-out and scale-in alarms' states; `None` when unread.
    pub high_alarm: Option<AlarmState>,
    pub low_alarm: Option<AlarmState>,
    /// The newest CPU datapoint, with the start of its period.
    pub cpu: Option<MetricSample>,
}

/// How far the firing high alarm asks to scale out.
#[derive(Debug, Clone, Copy)]
enum OutStep {
    /// The CPU is within the tolerance band around the target.
    WithinTolerance,
    /// Tasks asked for but not running yet cover the running tasks' load.
    Covered,
    /// To this count, from the CPU against the target.
    Proportional(u32),
    /// To this count, by the declared step (no target CPU).
    Step(u32),
}

/// Drops the recommendations (oldest first) more than `window` older than
/// `reference`: what a stabilisation window keeps.
pub fn keep_within(recommendations: &mut VecDeque<(SystemTime, u32)>, reference: SystemTime, window: Duration) {
    while recommendations.front().is_some_and(|(t, _)| reference.duration_since(*t).unwrap_or_default() > window) {
        recommendations.pop_front();
    }
}

/// Decide the task count, and record this pass's recommendation in
/// `memory` (the stabilisation window). Cooldown timestamps are updated
/// by the caller only once a change is actually applied.
pub fn decide(policy: &CpuScaling, view: ScalingView, memory: &mut ScalingMemory, now: SystemTime) -> Decision {
    let current = view.current;
    let clamped = current.clamp(view.min, view.max);
    let sample = view.cpu.filter(|s| now.duration_since(s.at).unwrap_or_default() <= policy.max_data_age);
    let cpu = sample.map(|s| s.value);

    let age = |t: Option<SystemTime>| t.map(|t| now.duration_since(t).unwrap_or_default());
    let since_out = age(memory.last_scale_out);
    let since_any = match (memory.last_scale_out, memory.last_scale_in) {
        (Some(a), Some(b)) => age(Some(a.max(b))),
        (a, b) => age(a.or(b)),
    };

    // The raw recommendation of this pass: what the alarms and the CPU ask
    // for, before the window, the cooldowns and the bounds. The window
    // records it even while a cooldown holds the count, as the HPA does, so
    // that the cooldown and the window overlap rather than add up.
    let (mut recommendation, mut reason, mut message) =
        (clamped, DecisionReason::Steady, String::from("no alarm is firing"));
    // Why there is not enough to decide on, if so.
    let no_data = if view.high_alarm.is_none() || view.low_alarm.is_none() {
        Some("the scaling alarms are not observed (yet)".to_string())
    } else if view.high_alarm == Some(AlarmState::InsufficientData)
        && view.low_alarm == Some(AlarmState::InsufficientData)
    {
        Some("both alarms are in INSUFFICIENT_DATA".to_string())
    } else if policy.target_cpu.is_some() && cpu.is_none() {
        Some(match view.cpu {
            None => "targetCpu is declared, but CloudWatch returned no CPU datapoint for the service".to_string(),
            Some(s) => format!(
                "the newest CPU datapoint is {}s old, more than maxDataAge ({}s)",
                now.duration_since(s.at).unwrap_or_default().as_secs(),
                policy.max_data_age.as_secs()
            ),
        })
    } else {
        None
    };
    if let Some(why) = no_data {
        reason = DecisionReason::NoData;
        message = format!("{why}; holding");
    } else if view.high_alarm == Some(AlarmState::Alarm) {
        // The CPU average is over the tasks that run; tasks still starting
        // (on an instance that is still launching, say) carry no load yet,
        // so a proportional step starts from the running count.
        let base = if view.running == 0 { clamped.max(1) } else { view.running.min(clamped) };
        let step = match (policy.target_cpu, cpu) {
            (Some(t), Some(c)) => {
                let ratio = c / t;
                let proportional = (f64::from(base) * ratio).ceil() as u32;
                if (ratio - 1.0).abs() <= policy.tolerance {
                    OutStep::WithinTolerance
                } else if base < clamped && proportional <= clamped {
                    OutStep::Covered
                } else {
                    OutStep::Proportional(proportional.max(clamped + 1))
                }
            }
            _ => OutStep::Step(clamped.saturating_add(policy.scale_out.step.tasks_from(clamped))),
        };
        // A datapoint whose period began at or before the last scale-out
        // averages over fewer tasks than run now (new tasks take a while to
        // start); multiplying the current count by it overshoots.
        let predates_scale_out = matches!((sample, memory.last_scale_out), (Some(s), Some(out)) if s.at <= out);
        let cpu_value = cpu.unwrap_or_default();
        match step {
            OutStep::WithinTolerance => {
                reason = DecisionReason::WithinTolerance;
                message = format!("CPU {cpu_value:.1}% is within {:.0}% of the target", policy.tolerance * 100.0);
            }
            OutStep::Covered => {
                reason = DecisionReason::Settling;
                message = format!(
                    "{} of {clamped} tasks run at CPU {cpu_value:.1}%; the {clamped} already asked for cover it",
                    view.running
                );
            }
            _ if since_out.is_some_and(|d| d < policy.scale_out.cooldown) => {
                reason = DecisionReason::OutCooldown;
                message = format!("scale-out cooldown of {:?} not over", policy.scale_out.cooldown);
            }
            OutStep::Proportional(_) if predates_scale_out => {
                reason = DecisionReason::Settling;
                message = format!(
                    "CPU {cpu_value:.1}% is from a period that began before the last scale-out; \
                     waiting for one that covers all {clamped} tasks"
                );
            }
            OutStep::Proportional(target) | OutStep::Step(target) => {
                let how = if matches!(step, OutStep::Step(_)) { "step" } else { "proportional" };
                recommendation = target;
                reason = DecisionReason::ScaleOut;
                message = format!("high CPU alarm firing; {how} scale-out {clamped} -> {target}");
            }
        }
    } else if view.low_alarm == Some(AlarmState::Alarm) {
        let step_target = clamped.saturating_sub(policy.scale_in.step.tasks_from(clamped));
        let target = match (policy.target_cpu, cpu) {
            (Some(t), Some(c)) => step_target.max((f64::from(clamped) * c / t).ceil() as u32),
            _ => step_target,
        }
        .max(view.min);
        if target < clamped {
            recommendation = target;
            reason = DecisionReason::ScaleIn;
            message = format!("low CPU alarm firing; scale-in {clamped} -> {target}");
        } else if clamped == view.min {
            reason = DecisionReason::AtMin;
            message = format!("low CPU alarm firing; already at the minimum of {}", view.min);
        }
    }

    // Stabilisation: remember this pass, and scale in no lower than the
    // highest recommendation still inside the window. The window is
    // counted in the data's time: a recommendation made from a datapoint
    // dates from that datapoint's period, and the window ends with the
    // newest datapoint, so a 5-minute window is five minutes of CPU that
    // all ask for no more, whatever the metric's delay (counted from when
    // a datapoint is read, the window would add that delay and cover six).
    // Without a datapoint, passes date from `now`.
    let (stamp, reference) = sample.map_or((now, now), |s| (s.at.min(now), (s.at + CPU_PERIOD).min(now)));
    let stamp = memory.recommendations.back().map_or(stamp, |(t, _)| stamp.max(*t));
    memory.recommendations.push_back((stamp, recommendation));
    keep_within(&mut memory.recommendations, reference, policy.stabilization_window);
    let window: Vec<u32> = memory.recommendations.iter().map(|(_, r)| *r).collect();
    let mut desired = recommendation;
    if recommendation < clamped {
        let highest = window.iter().copied().max().unwrap_or(recommendation);
        if highest > recommendation {
            desired = highest.min(clamped);
            if desired == clamped {
                reason = DecisionReason::Stabilizing;
                message = format!(
                    "scale-in to {recommendation} waits: {highest} was recommended within the last {:?}",
                    policy.stabilization_window
                );
            }
        }
        // What the window allows still waits for a deployment to finish
        // and for the scale-in cooldown.
        if desired < clamped {
            if view.deploying {
                desired = clamped;
                reason = DecisionReason::Deploying;
                message = "no scale-in while a deployment is in progress".into();
            } else if since_any.is_some_and(|d| d < policy.scale_in.cooldown) {
                desired = clamped;
                reason = DecisionReason::InCooldown;
                message = format!("scale-in cooldown of {:?} not over", policy.scale_in.cooldown);
            }
        }
    }

    if desired > view.max {
        desired = view.max;
        reason = DecisionReason::AtMax;
        message = format!("{message}; limited by max {}", view.max);
    } else if desired < view.min {
        desired = view.min;
        reason = DecisionReason::AtMin;
        message = format!("{message}; limited by min {}", view.min);
    }
    if desired == current && matches!(reason, DecisionReason::ScaleOut | DecisionReason::ScaleIn) {
        reason = if current >= view.max { DecisionReason::AtMax } else { DecisionReason::AtMin };
    }
    if desired != current && clamped != current && desired == clamped {
        reason = DecisionReason::Bounds;
        message = format!("observed count {current} is outside [{}, {}]", view.min, view.max);
    }

    Decision {
        desired,
        reason,
        message,
        inputs: DecisionInputs {
            current,
            running: view.running,
            min: view.min,
            max: view.max,
            high_alarm: view.high_alarm,
            low_alarm: view.low_alarm,
            cpu,
            deploying: view.deploying,
            window,
        },
    }
}
