//! Virtual time: bringing the world from one instant to another by
//! processing every due transition in time order.
//!
//! Nothing is queued. Each entity carries the instant of its next
//! transition, and the world jumps from one such instant (or metric period
//! boundary) to the next, letting the schedulers react at each. This keeps
//! the order of events a pure function of the world's state.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::world::{Lifecycle, World};
use crate::observed::TaskStatus;

/// How long ECS keeps stopped tasks observable.
pub(super) const STOPPED_TASK_RETENTION: Duration = Duration::from_secs(3600);

/// Bound on scheduler rounds at one instant; only zero delays need more
/// than a few.
const MAX_ROUNDS_PER_INSTANT: usize = 1000;

impl World {
    /// Process everything due up to `target`, in time order.
    pub fn advance_to(&mut self, target: SystemTime) {
        self.settle();
        loop {
            let boundary = self.next_period_end();
            let next = self.next_due().map_or(boundary, |due| due.min(boundary));
            if next > target {
                break;
            }
            self.accumulate_load(next);
            self.now = next;
            if next == boundary {
                self.close_period(boundary);
            }
            self.settle();
        }
        if target > self.now {
            self.accumulate_load(target);
            self.now = target;
            self.settle();
        }
    }

    /// Let every actor react at the current instant until nothing changes.
    pub fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS_PER_INSTANT {
            let mut changed = self.fire_due();
            changed |= self.reconcile_groups();
            changed |= self.reconcile_services();
            changed |= self.reconcile_health();
            if !changed {
                break;
            }
        }
        self.forget_old_tasks();
    }

    /// The end of the current metric period (periods are aligned to the
    /// epoch, like CloudWatch's).
    fn next_period_end(&self) -> SystemTime {
        let period = self.config.metric_period.as_nanos().max(1);
        let since = self.now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let next = (since / period + 1) * period;
        SystemTime::UNIX_EPOCH + nanos(next)
    }

    /// The earliest pending transition, if any.
    fn next_due(&self) -> Option<SystemTime> {
        let check_time = self.config.health_check_time();
        let tasks = self.tasks.values().filter_map(|t| t.due);
        let instances = self.instances.values().filter_map(|i| i.due);
        let targets = self.target_groups.values().flat_map(|tg| {
            tg.targets.values().filter_map(move |t| match t.drain_until {
                Some(until) => Some(until),
                None if t.health != t.verdict() => Some(t.verdict_at(check_time)),
                None => None,
            })
        });
        tasks.chain(instances).chain(targets).chain(self.traffic_next_due()).min()
    }

    /// Finish the transitions due by now. Returns whether anything changed.
    fn fire_due(&mut self) -> bool {
        let now = self.now;
        let mut changed = false;

        for arn in take_due(&mut self.tasks, now, |t| &mut t.due) {
            changed = true;
            let Some(task) = self.tasks.get_mut(&arn) else {
                continue;
            };
            match task.last_status {
                TaskStatus::Pending => {
                    task.last_status = TaskStatus::Running;
                    task.started_at = Some(now);
                    let service = task.service.clone();
                    self.register_with_service_load_balancers(&service, &arn);
                }
                _ => {
                    task.last_status = TaskStatus::Stopped;
                    task.stopped_at = Some(now);
                }
            }
        }

        for id in take_due(&mut self.instances, now, |i| &mut i.due) {
            changed = true;
            let Some(instance) = self.instances.get(&id) else {
                continue;
            };
            match instance.lifecycle {
                Lifecycle::Pending => self.bring_into_service(&id),
                Lifecycle::Terminating => {
                    self.instances.remove(&id);
                }
                Lifecycle::InService => {}
            }
        }

        for tg in self.target_groups.values_mut() {
            let before = tg.targets.len();
            tg.targets.retain(|_, t| t.drain_until.is_none_or(|until| until > now));
            changed |= tg.targets.len() != before;
        }
        changed
    }

    /// ECS forgets stopped tasks after about an hour.
    fn forget_old_tasks(&mut self) {
        let now = self.now;
        self.tasks.retain(|_, t| t.stopped_at.is_none_or(|at| at + STOPPED_TASK_RETENTION > now));
    }
}

/// The keys of the entries whose next transition has come, in key order,
/// with that transition taken off them.
fn take_due<T>(
    entries: &mut BTreeMap<String, T>,
    now: SystemTime,
    due: impl Fn(&mut T) -> &mut Option<SystemTime>,
) -> Vec<String> {
    entries
        .iter_mut()
        .filter_map(|(key, entry)| {
            let at = due(entry);
            at.is_some_and(|d| d <= now).then(|| {
                *at = None;
                key.clone()
            })
        })
        .collect()
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}
