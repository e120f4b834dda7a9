//! The peers ballast's scaling is compared with, as pure decision
//! functions: ECS service target tracking (Application Auto Scaling) and
//! the Kubernetes HPA. The scaling benchmark and `ballast replay` both run
//! them. Both follow the AWS and Kubernetes documentation and defaults;
//! where the documentation leaves room, the choice is the one that favours
//! the peer, so that ballast is not compared with a strawman.

use std::collections::VecDeque;
use std::time::{Duration, SystemTime};

/// ECS service target tracking on `AWS/ECS CPUUtilization` (1-minute data).
#[derive(Debug, Clone, PartialEq)]
pub struct TargetTracking {
    pub target: f64,
    /// The high alarm: this many 1-minute datapoints in a row above target.
    pub high_points: usize,
    /// The low alarm: this many 1-minute datapoints in a row below
    /// `low_factor × target`.
    pub low_points: usize,
    pub low_factor: f64,
    pub scale_out_cooldown: Duration,
    pub scale_in_cooldown: Duration,
    /// Scale-in removes at most this fraction of the tasks per action
    /// (at least one task), and never goes below the proportional count.
    pub scale_in_fraction: f64,
    pub min: u32,
    pub max: u32,
}

impl TargetTracking {
    /// AWS's defaults around a target CPU.
    pub fn aws_defaults(target: f64, min: u32, max: u32) -> Self {
        TargetTracking {
            target,
            high_points: 3,
            low_points: 15,
            low_factor: 0.9,
            scale_out_cooldown: Duration::from_secs(300),
            scale_in_cooldown: Duration::from_secs(300),
            scale_in_fraction: 0.1,
            min,
            max,
        }
    }
}

/// What target tracking remembers: its metric history and cooldowns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TargetTrackingState {
    /// (period start, average CPU) of the 1-minute datapoints seen, oldest first.
    pub datapoints: VecDeque<(SystemTime, f64)>,
    /// The last scale-out, and the count it started from.
    pub last_out: Option<(SystemTime, u32)>,
    pub last_in: Option<SystemTime>,
}

impl TargetTrackingState {
    /// The last `n` datapoints, if they are `n` consecutive minutes ending
    /// with the newest: CloudWatch treats a gap as missing data, and target
    /// tracking does not scale on insufficient data.
    fn last_consecutive(&self, n: usize, period: Duration) -> Option<Vec<f64>> {
        if self.datapoints.len() < n {
            return None;
        }
        let tail: Vec<&(SystemTime, f64)> = self.datapoints.iter().skip(self.datapoints.len() - n).collect();
        let contiguous = tail.windows(2).all(|w| w[1].0.duration_since(w[0].0).ok() == Some(period));
        contiguous.then(|| tail.iter().map(|(_, v)| *v).collect())
    }
}

/// Run target tracking once, when a new datapoint arrives (its alarms are
/// evaluated once per period, and Application Auto Scaling re-invokes the
/// policy each period while an alarm stays in ALARM). Returns the new
/// desired count, or `None` to leave `current` alone.
///
/// Choices where AWS documents behaviour but not a formula:
/// - scale-out is proportional: `ceil(base × cpu / target)`. During the
///   scale-out cooldown the capacity the previous scale-out added "is
///   calculated as part of the desired capacity for the next scale out":
///   `base` is then the count before that scale-out (the metric still
///   mostly reflects it), and only a larger count than now is acted on.
///   Outside the cooldown `base` is the current count.
/// - scale-in is gradual: at most 10 % of the tasks (at least one) per
///   action, never below the proportional count, after the scale-in
///   cooldown. A scale-out is never blocked by the scale-in cooldown.
pub fn target_tracking(
    cfg: &TargetTracking,
    state: &mut TargetTrackingState,
    current: u32,
    period: Duration,
    now: SystemTime,
) -> Option<u32> {
    let elapsed = |t: SystemTime| now.duration_since(t).unwrap_or_default();
    let latest = state.datapoints.back()?.1;
    let high = state.last_consecutive(cfg.high_points, period).is_some_and(|v| v.iter().all(|&c| c > cfg.target));
    let low = state
        .last_consecutive(cfg.low_points, period)
        .is_some_and(|v| v.iter().all(|&c| c < cfg.low_factor * cfg.target));
    if high {
        let in_cooldown = state.last_out.filter(|(at, _)| elapsed(*at) < cfg.scale_out_cooldown);
        let base = in_cooldown.map_or(current, |(_, from)| from);
        let want = ((f64::from(base.max(1)) * latest / cfg.target).ceil() as u32).clamp(cfg.min, cfg.max);
        if want > current {
            // A larger scale-out during the cooldown keeps the original base.
            state.last_out = Some((now, base));
            return Some(want);
        }
    } else if low && state.last_in.is_none_or(|at| elapsed(at) >= cfg.scale_in_cooldown) {
        let proportional = (f64::from(current) * latest / cfg.target).ceil() as u32;
        let step = ((f64::from(current) * cfg.scale_in_fraction).floor() as u32).max(1);
        let want = proportional.max(current.saturating_sub(step)).clamp(cfg.min, cfg.max);
        if want < current {
            state.last_in = Some(now);
            return Some(want);
        }
    }
    None
}

/// The HorizontalPodAutoscaler's algorithm with its default behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct Hpa {
    pub target: f64,
    pub tolerance: f64,
    /// Scale-down takes the highest recommendation of this window.
    pub down_window: Duration,
    /// Scale-up per sync: by the larger of this percent and this many tasks.
    pub up_percent: u32,
    pub up_tasks: u32,
    pub min: u32,
    pub max: u32,
}

impl Hpa {
    /// Kubernetes' defaults around a target utilisation.
    pub fn k8s_defaults(target: f64, min: u32, max: u32) -> Self {
        Hpa { target, tolerance: 0.1, down_window: Duration::from_secs(300), up_percent: 100, up_tasks: 4, min, max }
    }
}

/// What the HPA sees of the tasks in one sync.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HpaView {
    /// The scale's replicas: the service's desired count.
    pub current: u32,
    /// Tasks that exist and are meant to run (running or starting).
    pub pods: u32,
    /// Of those, the ones the metric covers (running through its whole period).
    pub measured: u32,
    /// Average CPU of the measured tasks, if there is a metric.
    pub cpu: Option<f64>,
}

/// The HPA's recommendations of the last `down_window`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HpaState {
    pub recommendations: VecDeque<(SystemTime, u32)>,
}

/// The replica calculation: ratio to target, tolerance, and the pods
/// without a metric set aside (counted at 0 % when scaling up, at the
/// target when scaling down) with the direction re-checked.
pub fn hpa_replicas(cfg: &Hpa, view: HpaView) -> u32 {
    let Some(cpu) = view.cpu else {
        return view.current;
    };
    let measured = view.measured.min(view.pods);
    if measured == 0 {
        return view.current;
    }
    let ratio = cpu / cfg.target;
    let missing = view.pods - measured;
    if missing == 0 {
        if (ratio - 1.0).abs() <= cfg.tolerance {
            return view.current;
        }
        return (ratio * f64::from(measured)).ceil() as u32;
    }
    let filled = if ratio > 1.0 { 0.0 } else { cfg.target };
    let new_ratio = (cpu * f64::from(measured) + filled * f64::from(missing)) / (cfg.target * f64::from(view.pods));
    let flipped = (ratio < 1.0 && new_ratio > 1.0) || (ratio > 1.0 && new_ratio < 1.0);
    if (new_ratio - 1.0).abs() <= cfg.tolerance || flipped {
        return view.current;
    }
    let replicas = (new_ratio * f64::from(view.pods)).ceil() as u32;
    if (new_ratio < 1.0 && replicas > view.current) || (new_ratio > 1.0 && replicas < view.current) {
        return view.current;
    }
    replicas
}

/// One HPA sync: the replica calculation, the scale-down stabilisation
/// window (scale-up's is 0 s), the scale-up rate limit and the bounds.
pub fn hpa(cfg: &Hpa, state: &mut HpaState, view: HpaView, now: SystemTime) -> u32 {
    let recommendation = hpa_replicas(cfg, view);
    state.recommendations.push_back((now, recommendation));
    crate::plan::scaling::keep_within(&mut state.recommendations, now, cfg.down_window);
    let current = view.current;
    let highest = state.recommendations.iter().map(|(_, r)| *r).max().unwrap_or(recommendation);
    let stabilized = if recommendation > current {
        recommendation
    } else if highest < current {
        highest
    } else {
        current
    };
    let up_limit = current
        .saturating_add((u64::from(current) * u64::from(cfg.up_percent) / 100) as u32)
        .max(current.saturating_add(cfg.up_tasks));
    stabilized.min(up_limit).clamp(cfg.min, cfg.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-computed cases for both emulations, so that a broken peer
    /// cannot produce a flattering table.
    #[test]
    fn the_emulations_follow_the_documented_algorithms() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let min = Duration::from_secs(60);
        let at = |m: u64| t0 + min * m as u32;

        // Target tracking: two minutes above target is not enough, three is.
        let tt = TargetTracking::aws_defaults(60.0, 2, 20);
        let mut st = TargetTrackingState::default();
        st.datapoints.extend([(at(0), 50.0), (at(1), 90.0), (at(2), 90.0)]);
        assert_eq!(target_tracking(&tt, &mut st, 4, min, at(3)), None, "2 of 3 minutes above target");
        st.datapoints.push_back((at(3), 90.0));
        assert_eq!(target_tracking(&tt, &mut st, 4, min, at(4)), Some(6), "ceil(4 x 90 / 60) = 6");
        // During the cooldown the same metric does not compound on the new count...
        st.datapoints.push_back((at(4), 90.0));
        assert_eq!(target_tracking(&tt, &mut st, 6, min, at(5)), None, "no compounding during cooldown");
        // ...but a larger scale-out is taken, from the same base.
        st.datapoints.push_back((at(5), 100.0));
        assert_eq!(target_tracking(&tt, &mut st, 6, min, at(6)), Some(7), "ceil(4 x 100 / 60) = 7");
        // A gap in the data is insufficient data: no scaling.
        let mut gap = TargetTrackingState::default();
        gap.datapoints.extend([(at(0), 90.0), (at(2), 90.0), (at(3), 90.0)]);
        assert_eq!(target_tracking(&tt, &mut gap, 4, min, at(4)), None, "gap means insufficient data");
        // Scale-in: 15 minutes below 54 %, then 10 % (at least 1) per action.
        let mut low = TargetTrackingState::default();
        low.datapoints.extend((0..14).map(|m| (at(m), 20.0)));
        assert_eq!(target_tracking(&tt, &mut low, 20, min, at(14)), None, "14 of 15 minutes low");
        low.datapoints.push_back((at(14), 20.0));
        assert_eq!(target_tracking(&tt, &mut low, 20, min, at(15)), Some(18), "-10 % of 20");
        low.datapoints.push_back((at(15), 22.0));
        assert_eq!(target_tracking(&tt, &mut low, 18, min, at(16)), None, "scale-in cooldown");
        // Never below the proportional count: 5 tasks at 50 % stay 5.
        let mut near = TargetTrackingState::default();
        near.datapoints.extend((0..15).map(|m| (at(m), 50.0)));
        assert_eq!(target_tracking(&tt, &mut near, 5, min, at(15)), None, "ceil(5 x 50 / 60) = 5");

        // HPA: tolerance, proportional, missing pods, window, rate limit.
        let h = Hpa::k8s_defaults(60.0, 2, 20);
        let v = |current, pods, measured, cpu| HpaView { current, pods, measured, cpu };
        assert_eq!(hpa_replicas(&h, v(4, 4, 4, Some(64.0))), 4, "within tolerance");
        assert_eq!(hpa_replicas(&h, v(4, 4, 4, Some(90.0))), 6, "ceil(1.5 x 4)");
        assert_eq!(hpa_replicas(&h, v(6, 6, 4, Some(90.0))), 6, "new pods at 0 %: ceil(4 x 90 / 60) = 6");
        assert_eq!(hpa_replicas(&h, v(6, 6, 4, Some(100.0))), 7, "new pods at 0 %: ceil(4 x 100 / 60) = 7");
        assert_eq!(hpa_replicas(&h, v(8, 8, 8, Some(30.0))), 4, "scale down proportionally");
        assert_eq!(hpa_replicas(&h, v(4, 4, 4, None)), 4, "no metric, no change");
        let mut hs = HpaState::default();
        assert_eq!(hpa(&h, &mut hs, v(8, 8, 8, Some(60.0)), at(0)), 8);
        assert_eq!(hpa(&h, &mut hs, v(8, 8, 8, Some(30.0)), at(1)), 8, "8 is still in the window");
        assert_eq!(hpa(&h, &mut hs, v(8, 8, 8, Some(30.0)), at(6)), 4, "window passed");
        let mut up = HpaState::default();
        assert_eq!(hpa(&h, &mut up, v(2, 2, 2, Some(100.0)), at(0)), 4, "ceil(2 x 100 / 60)");
        assert_eq!(hpa(&h, &mut up, v(3, 3, 3, Some(90.0)), at(0)), 5, "ceil(3 x 1.5)");
        let big = Hpa { max: 100, ..h.clone() };
        let mut lim = HpaState::default();
        assert_eq!(hpa(&big, &mut lim, v(10, 10, 10, Some(100.0)), at(0)), 17, "ceil(10 x 100 / 60) is under +100 %");
        let tiny = Hpa { target: 10.0, ..big };
        let mut lim2 = HpaState::default();
        assert_eq!(hpa(&tiny, &mut lim2, v(3, 3, 3, Some(100.0)), at(0)), 7, "30 wanted; max(+100 %, +4) from 3 is 7");
    }
}
