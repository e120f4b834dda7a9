//! Eventual consistency: reads lag writes by [`SimConfig::consistency_lag`].
//!
//! AWS's APIs are eventually consistent: "the result of an API command you
//! run that affects your Amazon ECS resources might not be immediately
//! visible to all subsequent commands you run"
//! (<https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html>;
//! EC2 says the same, <https://docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html>),
//! and gives no figure. After a write, observation shows the written field
//! as it was before the write until the lag has passed. The world itself
//! changes at once: only reads lag.
//!
//! [`SimConfig::consistency_lag`]: super::SimConfig::consistency_lag

use std::collections::BTreeSet;
use std::time::SystemTime;

use super::world::World;
use crate::desired::{GroupId, ServiceId};
use crate::observed::{Observed, ObservedAlarm, ObservedTarget, Target, TargetHealth};
use crate::plan::Change;

/// A write that reads do not show yet.
pub(super) struct LaggingWrite {
    /// When it was made.
    pub at: SystemTime,
    /// What reads show until `at` + the lag.
    pub before: Before,
}

/// A written field as it was before the write.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Before {
    /// A service's desired count (UpdateService).
    DesiredCount(ServiceId, u32),
    /// A group's desired capacity (SetDesiredCapacity,
    /// TerminateInstanceInAutoScalingGroup with decrement).
    Capacity(GroupId, u32),
    /// A target's registration (RegisterTargets, DeregisterTargets): its
    /// health then, `None` when it was not registered.
    Target { target_group_arn: String, target: Target, health: Option<TargetHealth> },
    /// An alarm (PutMetricAlarm); `None` when it did not exist.
    Alarm { key: (String, String), alarm: Option<Box<ObservedAlarm>> },
}

/// What a lagging write hides: one entry per written field.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Field {
    DesiredCount(ServiceId),
    Capacity(GroupId),
    Target(String, Target),
    Alarm((String, String)),
}

impl Before {
    fn field(&self) -> Field {
        match self {
            Before::DesiredCount(id, _) => Field::DesiredCount(id.clone()),
            Before::Capacity(id, _) => Field::Capacity(id.clone()),
            Before::Target { target_group_arn, target, .. } => Field::Target(target_group_arn.clone(), target.clone()),
            Before::Alarm { key, .. } => Field::Alarm(key.clone()),
        }
    }
}

impl World {
    /// The fields `change` is about to write, as they are now; nothing when
    /// reads do not lag.
    pub fn before_write(&self, change: &Change) -> Vec<Before> {
        if self.config.consistency_lag.is_zero() {
            return Vec::new();
        }
        match change {
            Change::SetDesiredCount { service, .. } => self.before_desired_count(service),
            Change::SetDesiredCapacity { group, .. } | Change::TerminateInstance { group, .. } => {
                self.before_capacity(group)
            }
            Change::RegisterTargets { target_group_arn, targets, .. }
            | Change::DeregisterTargets { target_group_arn, targets, .. } => {
                let registering = matches!(change, Change::RegisterTargets { .. });
                let Some(tg) = self.target_groups.get(target_group_arn) else {
                    return Vec::new();
                };
                targets
                    .iter()
                    .filter_map(|target| {
                        let now = tg.targets.get(target);
                        let registered = now.is_some_and(|t| t.drain_until.is_none());
                        // Only targets the call changes: re-registering or
                        // deregistering again is a no-op.
                        (registered != registering).then(|| Before::Target {
                            target_group_arn: target_group_arn.clone(),
                            target: target.clone(),
                            health: now.map(|t| t.health),
                        })
                    })
                    .collect()
            }
            Change::PutAlarm { region, alarm, .. } => {
                let key = (region.clone(), alarm.name.clone());
                let before = self.alarms.get(&key).map(|a| {
                    Box::new(ObservedAlarm {
                        definition: a.definition.clone(),
                        state: a.state,
                        state_updated: a.state_updated,
                        arn: a.arn(region),
                        managed_by_ballast: None,
                    })
                });
                vec![Before::Alarm { key, alarm: before }]
            }
            Change::SetGroupSubnets { .. }
            | Change::TagAlarm { .. }
            | Change::MarkSurge { .. }
            | Change::SuspendProcesses { .. }
            | Change::PutLifecycleHook { .. }
            | Change::DrainContainerInstance { .. }
            | Change::RecordLifecycleActionHeartbeat { .. }
            | Change::CompleteLifecycleAction { .. }
            | Change::SetTaskProtection { .. } => Vec::new(),
        }
    }

    /// A service's desired count before UpdateService (ballast's or
    /// another actor's); nothing when reads do not lag.
    pub fn before_desired_count(&self, id: &ServiceId) -> Vec<Before> {
        if self.config.consistency_lag.is_zero() {
            return Vec::new();
        }
        self.services.get(id).map(|s| Before::DesiredCount(id.clone(), s.desired_count)).into_iter().collect()
    }

    /// A group's desired capacity before a capacity write (ballast's or
    /// another actor's); nothing when reads do not lag.
    pub fn before_capacity(&self, id: &GroupId) -> Vec<Before> {
        if self.config.consistency_lag.is_zero() {
            return Vec::new();
        }
        self.groups.get(id).map(|g| Before::Capacity(id.clone(), g.desired)).into_iter().collect()
    }

    /// Writes just made: reads show `before` until the lag has passed.
    pub fn lag_reads(&mut self, before: Vec<Before>) {
        let at = self.now;
        self.forget_visible_writes();
        self.api.lagging.extend(before.into_iter().map(|before| LaggingWrite { at, before }));
    }

    /// Drop the writes reads show by now: the log holds only the last lag's worth.
    fn forget_visible_writes(&mut self) {
        let visible_before = self.now.checked_sub(self.config.consistency_lag).unwrap_or(SystemTime::UNIX_EPOCH);
        while self.api.lagging.front().is_some_and(|w| w.at <= visible_before) {
            self.api.lagging.pop_front();
        }
    }

    /// Show each lagging field as it was before its oldest write still
    /// hidden.
    pub fn hide_lagging_writes(&mut self, observed: &mut Observed) {
        self.forget_visible_writes();
        let mut seen: BTreeSet<Field> = BTreeSet::new();
        for write in &self.api.lagging {
            if !seen.insert(write.before.field()) {
                continue;
            }
            match &write.before {
                Before::DesiredCount(id, count) => {
                    if let Some(Ok(service)) = observed.services.get_mut(id) {
                        service.desired_count = *count;
                    }
                }
                Before::Capacity(id, capacity) => {
                    if let Some(Ok(group)) = observed.groups.get_mut(id) {
                        group.desired_capacity = *capacity;
                    }
                }
                Before::Target { target_group_arn, target, health } => {
                    for tg in observed.target_groups.values_mut().flatten().filter(|tg| &tg.arn == target_group_arn) {
                        tg.targets.retain(|t| &t.target != target);
                        if let Some(health) = health {
                            tg.targets.push(ObservedTarget { target: target.clone(), health: *health });
                            tg.targets.sort_by(|a, b| a.target.cmp(&b.target));
                        }
                    }
                }
                Before::Alarm { key, alarm } => {
                    if !matches!(observed.alarms.get(key), Some(Ok(_))) {
                        continue;
                    }
                    match alarm {
                        Some(alarm) => {
                            observed.alarms.insert(key.clone(), Ok(alarm.as_ref().clone()));
                        }
                        None => {
                            observed.alarms.remove(key);
                        }
                    }
                }
            }
        }
    }
}
