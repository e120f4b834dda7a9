//! What the controller remembers between passes.
//!
//! The planner is level-triggered: almost everything is re-derived from a
//! fresh observation each pass. The few things that cannot be observed
//! live here, are passed *into* the planner, and come back updated:
//! which targets ballast registered (ownership), what it last wrote to
//! each field (to notice someone reverting it), scaling history
//! (cooldowns, the stabilisation window) and capacity timers. Losing it
//! on restart is safe: attribution falls back to the service's tasks,
//! cooldowns restart conservatively, and nothing is deregistered that
//! cannot be attributed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, SystemTime};

use crate::desired::{GroupId, ServiceId};
use crate::observed::Target;

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

/// Revert tracking for one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldMemory {
    /// The value ballast last wrote, until the next observation.
    pub written: Option<FieldValue>,
    /// When someone else changed the field away from what ballast wrote.
    pub reverts: VecDeque<SystemTime>,
    /// Set while ballast has stopped correcting the field.
    pub contested_since: Option<SystemTime>,
}

/// Scaling history of one service.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScalingMemory {
    pub last_scale_out: Option<SystemTime>,
    pub last_scale_in: Option<SystemTime>,
    /// (time, recommended count) of recent passes, for the scale-in
    /// stabilisation window.
    pub recommendations: VecDeque<(SystemTime, u32)>,
}

/// Capacity timers of one Auto Scaling group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CapacityMemory {
    /// Last time ballast changed the group's capacity in either direction.
    pub last_change: Option<SystemTime>,
    /// Last time each on-demand subnet was needed.
    pub subnet_needed_at: BTreeMap<String, SystemTime>,
}

/// How many reverts within how long make a field contested.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FightPolicy {
    pub max_reverts: usize,
    pub window: Duration,
}

impl Default for FightPolicy {
    fn default() -> Self {
        FightPolicy { max_reverts: 3, window: Duration::from_secs(600) }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Targets ballast registered, by target group ARN.
    pub registered: BTreeMap<String, BTreeSet<Target>>,
    pub fields: BTreeMap<Field, FieldMemory>,
    pub scaling: BTreeMap<ServiceId, ScalingMemory>,
    pub capacity: BTreeMap<GroupId, CapacityMemory>,
}

impl Memory {
    /// Record that `change` was applied at `now`.
    pub fn record_applied(&mut self, change: &Change, now: SystemTime) {
        match change {
            Change::SetDesiredCount { service, from, to } => {
                self.written(Field::DesiredCount(service.clone()), FieldValue::Count(*to));
                let s = self.scaling.entry(service.clone()).or_default();
                if to > from {
                    s.last_scale_out = Some(now);
                } else if to < from {
                    s.last_scale_in = Some(now);
                }
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
                );
            }
            Change::SetDesiredCapacity { group, to, .. } => {
                self.written(Field::Capacity(group.clone()), FieldValue::Count(*to));
                self.capacity.entry(group.clone()).or_default().last_change = Some(now);
            }
            Change::TerminateInstance { group, .. } => {
                // The new capacity is read back next pass; no value to compare.
                self.fields.entry(Field::Capacity(group.clone())).or_default().written = None;
                self.capacity.entry(group.clone()).or_default().last_change = Some(now);
            }
            Change::SetGroupSubnets { group, to, .. } => {
                self.written(Field::Subnets(group.clone()), FieldValue::Text(subnets_fingerprint(to)));
            }
        }
    }

    fn written(&mut self, field: Field, value: FieldValue) {
        self.fields.entry(field).or_default().written = Some(value);
    }

    /// Compare a field's observed value with what ballast last wrote; a
    /// difference is a revert by someone else. Returns whether the field is
    /// contested (ballast should leave it alone) at `now`.
    ///
    /// Only fields ballast wrote or saw reverted have an entry, and entries
    /// with nothing left to remember are dropped, so a converged pass
    /// neither builds keys (`key` is called only when the map is not empty)
    /// nor allocates here.
    pub fn observe_field_with(
        &mut self,
        key: impl FnOnce() -> Field,
        observed: FieldValue,
        now: SystemTime,
        policy: FightPolicy,
    ) -> bool {
        if self.fields.is_empty() {
            return false;
        }
        let key = key();
        let Some(m) = self.fields.get_mut(&key) else {
            return false;
        };
        if let Some(written) = m.written.take()
            && written != observed
        {
            m.reverts.push_back(now);
        }
        while m.reverts.front().is_some_and(|t| now.duration_since(*t).unwrap_or_default() > policy.window) {
            m.reverts.pop_front();
        }
        if m.reverts.len() >= policy.max_reverts {
            m.contested_since.get_or_insert(now);
        } else if m.reverts.is_empty() {
            // Quiet for a whole window: the field stayed put; resume.
            m.contested_since = None;
        }
        let contested = m.contested_since.is_some();
        if *m == FieldMemory::default() {
            self.fields.remove(&key);
        }
        contested
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
