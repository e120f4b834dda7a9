//! What the controller remembers between passes.
//!
//! The planner is level-triggered: almost everything is re-derived from a
//! fresh observation each pass. The few things that cannot be observed
//! live here, are passed *into* the planner, and come back updated:
//! which targets ballast registered (ownership), what it last wrote to
//! each field (to notice someone reverting it), scaling history
//! (cooldowns, the stabilisation window) and capacity timers. Losing it
//! on restart is safe: attribution falls back to the service's tasks,
//! scaling history is read back from the marks ballast leaves on the
//! service and the group ([`ScalingMemory::from_marks`],
//! [`CapacityMemory::from_mark`]), and nothing is deregistered that cannot
//! be attributed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use crate::desired::{GroupId, ServiceId};
use crate::observed::{ScalingMarks, Target};

use super::Change;

/// A field ballast writes, for revert tracking.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub enum Field {
    DesiredCount(ServiceId),
    Capacity(GroupId),
    Subnets(GroupId),
    /// (region, alarm name).
    Alarm(String, String),
}

impl std::fmt::Display for Field {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Field::DesiredCount(s) => write!(f, "desired count of {s}"),
            Field::Capacity(g) => write!(f, "desired capacity of {g}"),
            Field::Subnets(g) => write!(f, "subnets of {g}"),
            Field::Alarm(_, name) => write!(f, "alarm {name}"),
        }
    }
}

/// A field's value, in the form compared for reverts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    Count(u32),
    Text(String),
}

impl From<u32> for FieldValue {
    fn from(n: u32) -> Self {
        FieldValue::Count(n)
    }
}

/// A value ballast wrote to a field.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    pub value: FieldValue,
    pub at: SystemTime,
    /// A read has shown the value since: a different value read later is
    /// someone else's, not a read that lags the write.
    pub seen: bool,
}

/// Revert tracking for one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMemory {
    /// What ballast last wrote, kept for the fight window so that a revert
    /// counts whenever it comes within it.
    pub written: Option<Written>,
    /// When someone else changed the field away from what ballast wrote.
    pub reverts: VecDeque<SystemTime>,
    /// Set while ballast has stopped correcting the field.
    pub contested_since: Option<SystemTime>,
}

/// What a pass's read of a field says about writing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldState {
    /// Nothing stands in the way.
    Free,
    /// Ballast's last write does not show in reads yet, within the
    /// consistency lag: the read may lag the write, so writing again would
    /// only repeat it.
    Unconfirmed { since: SystemTime },
    /// Someone keeps reverting it; ballast leaves it alone.
    Contested,
}

/// Scaling history of one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingMemory {
    pub last_scale_out: Option<SystemTime>,
    pub last_scale_in: Option<SystemTime>,
    /// (time, recommended count) of recent passes, for the scale-in
    /// stabilisation window.
    pub recommendations: VecDeque<(SystemTime, u32)>,
    /// The scale-in run under way. Scale-outs that bring back three
    /// quarters of the tasks it gave up undo it (a flap); a scale-in after
    /// a scale-out that fell short starts a new run.
    pub dip: Option<Dip>,
    /// Since when flap damping has held a scale-in that the plain window
    /// would allow: the load coming back to the held count ends it as an
    /// averted flap.
    pub held_since: Option<SystemTime>,
    /// Flaps, oldest first: scale-ins undone by a scale-out, and
    /// scale-ins damping held until the load came back. Read, and pruned,
    /// by [`super::scaling::decide`].
    pub flaps: VecDeque<Flap>,
    /// The count the last scale-in decision went to, before the count
    /// budget: a scale-in applied short of it goes on to it in the next
    /// pass, inside the cooldown.
    pub scale_in_to: Option<u32>,
}

/// A run of scale-ins: consecutive ones with no scale-out between (a step
/// split by the count budget or the cooldown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dip {
    /// When its first scale-in was applied.
    pub since: SystemTime,
    /// The count before it, and the count it went down to.
    pub from: u32,
    pub to: u32,
}

impl Dip {
    /// Whether a scale-out to `count` brings back most of what the run
    /// gave up: three quarters of its tasks, rounded up (a proportional
    /// scale-out seldom lands on the same count twice).
    pub fn undone_by(&self, count: u32) -> bool {
        count >= self.to + (3 * (self.from - self.to)).div_ceil(4)
    }
}

/// A scale-in the load undid (or would have).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flap {
    /// When the tasks were given up (or damping began to hold them).
    pub gave_up: SystemTime,
    /// When the load asked for them back.
    pub back: SystemTime,
    /// The count it asked back.
    pub count: u32,
}

impl ScalingMemory {
    /// The history of a service this process has none of (after a
    /// restart, in `apply --once`, for a new document), from the marks
    /// ballast left on it when it scaled: the last scale-out and scale-in
    /// at their times, and the stabilisation window holding the count each
    /// set at that time. No marks: ballast never scaled the service, so no
    /// cooldown of its own holds anything. A mark later than `now` (a
    /// clock ahead of this one) counts as `now`, so it holds no longer
    /// than a cooldown.
    ///
    /// The flap history is what the two marks show: a last scale-out later
    /// than the last scale-in is taken to have undone it (one flap, which
    /// the damping's horizon keeps only if it came soon enough); a last
    /// scale-in later than the last scale-out is a scale-in run under way
    /// from the count that scale-out set.
    pub fn from_marks(marks: &ScalingMarks, now: SystemTime) -> Self {
        let seen = |m: Option<(SystemTime, u32)>| m.map(|(t, n)| (t.min(now), n));
        let (out, inn) = (seen(marks.last_out), seen(marks.last_in));
        let mut recommendations: Vec<(SystemTime, u32)> = out.into_iter().chain(inn).collect();
        recommendations.sort_unstable();
        let (mut dip, mut flaps) = (None, VecDeque::new());
        match (out, inn) {
            (Some((back, count)), Some((gave_up, _))) if gave_up < back => {
                flaps.push_back(Flap { gave_up, back, count })
            }
            (Some((_, from)), Some((since, to))) if to < from => dip = Some(Dip { since, from, to }),
            _ => {}
        }
        ScalingMemory {
            last_scale_out: out.map(|(t, _)| t),
            last_scale_in: inn.map(|(t, _)| t),
            recommendations: recommendations.into(),
            dip,
            held_since: None,
            flaps,
            scale_in_to: None,
        }
    }

    /// Record an applied desired-count change from `from` to `to` at
    /// `now`: the cooldowns' times, and the flap history (scale-outs that
    /// bring back most of what a scale-in run gave up undo it).
    pub fn record_change(&mut self, from: u32, to: u32, now: SystemTime) {
        if to > from {
            self.last_scale_out = Some(now);
            if let Some(dip) = self.dip
                && dip.undone_by(to)
            {
                self.flaps.push_back(Flap { gave_up: dip.since, back: now, count: to });
                self.dip = None;
            }
        } else if to < from {
            // A scale-in with no scale-out since the run began continues
            // it (a step split by the budget or the cooldown); after one,
            // it starts a new run.
            let out_since = |since: SystemTime| self.last_scale_out.is_some_and(|o| o > since);
            self.dip = match self.dip {
                Some(dip) if !out_since(dip.since) => Some(Dip { to, from: dip.from.max(from), ..dip }),
                _ => Some(Dip { since: now, from, to }),
            };
            self.last_scale_in = Some(now);
            self.held_since = None;
        }
    }
}

/// Capacity timers of one Auto Scaling group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityMemory {
    /// Last time ballast changed the group's capacity in either direction.
    pub last_change: Option<SystemTime>,
    /// Last time each on-demand subnet was needed.
    pub subnet_needed_at: BTreeMap<String, SystemTime>,
}

impl CapacityMemory {
    /// The timers of a group this process has none of, from the mark
    /// ballast left on it when it last changed its capacity: that change,
    /// and each of `subnets` (the group's; only on-demand ones are read)
    /// taken to have been needed then. An on-demand subnet goes only once
    /// its zone has no instances left, and ballast removes instances by
    /// changing the capacity, so after a restart the subnet still stays a
    /// whole `scaleInCooldown` after the change that emptied its zone. No
    /// mark: ballast never changed the capacity, and no cooldown of its
    /// own holds anything. A mark later than `now` counts as `now`.
    pub fn from_mark(last_change: Option<SystemTime>, subnets: &[String], now: SystemTime) -> Self {
        let Some(t) = last_change.map(|t| t.min(now)) else {
            return CapacityMemory::default();
        };
        CapacityMemory { last_change: Some(t), subnet_needed_at: subnets.iter().map(|s| (s.clone(), t)).collect() }
    }
}

/// How many reverts within how long make a field contested, and how long
/// a read may lag a write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FightPolicy {
    pub max_reverts: usize,
    pub window: Duration,
    /// ECS, Auto Scaling and CloudWatch reads are eventually consistent:
    /// until a write shows in a read, a read of the old value within this
    /// long is taken for lag, not for someone reverting it.
    pub consistency_lag: Duration,
}

impl Default for FightPolicy {
    fn default() -> Self {
        FightPolicy { max_reverts: 3, window: Duration::from_secs(600), consistency_lag: Duration::from_secs(10) }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Targets ballast registered, by target group ARN.
    pub registered: BTreeMap<String, BTreeSet<Target>>,
    pub fields: BTreeMap<Field, FieldMemory>,
    pub scaling: BTreeMap<ServiceId, ScalingMemory>,
    pub capacity: BTreeMap<GroupId, CapacityMemory>,
    /// Tasks leaving for a scale-in, by ARN: when a pass first saw all
    /// their targets out of service (draining or gone). The propagation
    /// lag counts from then; a process that starts has none and counts
    /// from its first pass, which only waits longer (see [`super::drain`]).
    pub drains: BTreeMap<ServiceId, BTreeMap<String, SystemTime>>,
    /// Instances in `Terminating:Wait` that ballast drains, by instance id
    /// (see [`super::terminations`]).
    pub terminations: BTreeMap<String, TerminationMemory>,
}

/// What ballast remembers of one instance's drain for termination. Lost on
/// a restart, which only makes it wait longer and send a heartbeat sooner.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TerminationMemory {
    /// Its tasks, by ARN: when a pass first saw all their targets out of
    /// service (the propagation lag counts from then).
    pub out_since: BTreeMap<String, SystemTime>,
    /// When ballast last recorded a heartbeat for it.
    pub heartbeat: Option<SystemTime>,
}

impl Memory {
    /// Record that `change` was applied at `now`.
    pub fn record_applied(&mut self, change: &Change, now: SystemTime) {
        match change {
            Change::SetDesiredCount { service, from, to } => {
                self.written(Field::DesiredCount(service.clone()), FieldValue::Count(*to), now);
                self.scaling.entry(service.clone()).or_default().record_change(*from, *to, now);
            }
            Change::RegisterTargets { target_group_arn, targets, .. } => {
                self.registered.entry(target_group_arn.clone()).or_default().extend(targets.iter().cloned());
            }
            Change::DeregisterTargets { target_group_arn, targets, .. } => {
                if let Some(set) = self.registered.get_mut(target_group_arn) {
                    for t in targets {
                        set.remove(t);
                    }
                }
            }
            Change::PutAlarm { region, alarm, .. } => {
                self.written(
                    Field::Alarm(region.clone(), alarm.name.clone()),
                    FieldValue::Text(alarm_fingerprint(alarm)),
                    now,
                );
            }
            Change::SetDesiredCapacity { group, to, .. } => {
                self.written(Field::Capacity(group.clone()), FieldValue::Count(*to), now);
                self.capacity.entry(group.clone()).or_default().last_change = Some(now);
            }
            Change::TerminateInstance { group, .. } => {
                // The new capacity is read back next pass; no value to compare.
                self.fields.entry(Field::Capacity(group.clone())).or_default().written = None;
                self.capacity.entry(group.clone()).or_default().last_change = Some(now);
            }
            Change::SetGroupSubnets { group, to, .. } => {
                self.written(Field::Subnets(group.clone()), FieldValue::Text(subnets_fingerprint(to)), now);
            }
            // Tags (an alarm's, the surge mark) and the suspension are read
            // back next pass: nothing to remember.
            Change::TagAlarm { .. } | Change::MarkSurge { .. } | Change::SuspendProcesses { .. } => {}
            // Protection is read back too (the write makes the next read
            // fresh).
            Change::SetTaskProtection { .. } => {}
            // The hook, the container instance and the lifecycle state are
            // read each pass.
            Change::PutLifecycleHook { .. }
            | Change::DrainContainerInstance { .. }
            | Change::CompleteLifecycleAction { .. } => {}
            Change::RecordLifecycleActionHeartbeat { instance_id, .. } => {
                self.terminations.entry(instance_id.clone()).or_default().heartbeat = Some(now);
            }
        }
    }

    fn written(&mut self, field: Field, value: FieldValue, now: SystemTime) {
        self.fields.entry(field).or_default().written = Some(Written { value, at: now, seen: false });
    }

    /// Compare a field's observed value with what ballast last wrote; a
    /// different value is a revert by someone else once ballast's write
    /// was seen in a read or the consistency lag has passed, whenever it
    /// comes within the fight window. Returns what the field's state says
    /// about writing it at `now`.
    ///
    /// Only fields ballast wrote within the window or saw reverted have an
    /// entry, and entries with nothing left to remember are dropped, so a
    /// converged pass neither builds keys (`key` is called only when the
    /// map is not empty) nor allocates here.
    pub fn observe_field_with(
        &mut self,
        key: impl FnOnce() -> Field,
        observed: FieldValue,
        now: SystemTime,
        policy: FightPolicy,
    ) -> FieldState {
        if self.fields.is_empty() {
            return FieldState::Free;
        }
        let key = key();
        let Some(m) = self.fields.get_mut(&key) else {
            return FieldState::Free;
        };
        let age = |t: SystemTime| now.duration_since(t).unwrap_or_default();
        let mut unconfirmed = None;
        if let Some(w) = &mut m.written {
            if w.value == observed {
                w.seen = true;
            } else if w.seen || age(w.at) >= policy.consistency_lag {
                m.reverts.push_back(now);
                m.written = None;
            } else {
                unconfirmed = Some(w.at);
            }
        }
        if m.written.as_ref().is_some_and(|w| age(w.at) > policy.window) {
            m.written = None;
        }
        while m.reverts.front().is_some_and(|t| age(*t) > policy.window) {
            m.reverts.pop_front();
        }
        if m.reverts.len() >= policy.max_reverts {
            m.contested_since.get_or_insert(now);
        } else if m.reverts.is_empty() {
            // Quiet for a whole window: the field stayed put; resume.
            m.contested_since = None;
        }
        let state = match (m.contested_since, unconfirmed) {
            (Some(_), _) => FieldState::Contested,
            (None, Some(since)) => FieldState::Unconfirmed { since },
            (None, None) => FieldState::Free,
        };
        if *m == FieldMemory::default() {
            self.fields.remove(&key);
        }
        state
    }
}

/// The compared form of an alarm definition: every field
/// [`differences`](super::alarms::differences) compares, so that a revert
/// of any of them counts.
pub fn alarm_fingerprint(alarm: &crate::observed::AlarmDefinition) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}/{}|{}|{:?}",
        alarm.threshold,
        alarm.comparison,
        alarm.period_secs,
        alarm.evaluation_periods,
        alarm.datapoints_to_alarm,
        alarm.missing_data.as_aws(),
        alarm.namespace,
        alarm.metric_name,
        alarm.statistic,
        alarm.dimensions
    )
}

pub fn subnets_fingerprint(subnets: &[String]) -> String {
    let mut s: Vec<&str> = subnets.iter().map(String::as_str).collect();
    s.sort_unstable();
    s.join(",")
}
