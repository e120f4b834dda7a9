//! Reads that stay true for a while, reused instead of repeated.
//!
//! Both clouds keep the same caches, so that the simulation records the
//! calls the AWS adapter makes. A read is reused only when the scope
//! carries the pass's time ([`crate::cloud::Scope::now`]).
//!
//! - **CPU** (GetMetricData): CloudWatch's `AWS/ECS CPUUtilization` has one
//!   datapoint per minute; reading it more often than once per period
//!   returns the same datapoint. Unless an alarm on the service's CPU
//!   changed state after the read ([`alarmed_since`]): CloudWatch then has
//!   the datapoint the alarm fired on, and a decision sized from the older
//!   one would take two steps where one does (a high alarm in ALARM with a
//!   CPU read still under its threshold asks for one task, and the next
//!   read for the rest, a minute later). At most one extra read per alarm
//!   state change.
//! - **Task protection** (GetTaskProtection): only UpdateTaskProtection
//!   changes it, and ballast is the one that calls it for the tasks it
//!   manages. A read is reused for [`PROTECTION_REUSE`], unless ballast
//!   changed a task's protection in the cluster since (the read is
//!   forgotten) or a RUNNING task is not in it (a new task). The task
//!   itself may change its own protection too (that is what the API is
//!   for); ballast sees it within [`PROTECTION_REUSE`], and re-reads
//!   before it relies on it: the scale-in's last step follows the
//!   unprotect write that makes the next pass read afresh.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::{Duration, SystemTime};

use crate::desired::ServiceId;
use crate::observed::{MetricSample, ObservedAlarm};

/// One CloudWatch metric period: the CPU read is reused within it.
pub const METRIC_PERIOD: Duration = Duration::from_secs(60);

/// How long a task protection read is reused at most.
pub const PROTECTION_REUSE: Duration = Duration::from_secs(300);

/// A read and when it was made.
#[derive(Debug, Clone)]
struct Entry<V> {
    at: SystemTime,
    value: V,
}

/// Reads by key, each reused for `PERIOD_SECS` seconds after it was made.
#[derive(Debug, Clone)]
pub struct Reads<K, V, const PERIOD_SECS: u64> {
    entries: HashMap<K, Entry<V>>,
    /// Per key, the newest change a read was forgotten for: each change
    /// makes at most one read stale, whatever the skew between the pass
    /// clock and the cloud's timestamps.
    changes: HashMap<K, SystemTime>,
}

impl<K, V, const PERIOD_SECS: u64> Default for Reads<K, V, PERIOD_SECS> {
    fn default() -> Self {
        Reads { entries: HashMap::new(), changes: HashMap::new() }
    }
}

impl<K: Eq + Hash, V, const PERIOD_SECS: u64> Reads<K, V, PERIOD_SECS> {
    /// The value read less than the period before `now`; none without `now`.
    pub fn fresh(&self, key: &K, now: Option<SystemTime>) -> Option<&V> {
        let now = now?;
        let e = self.entries.get(key)?;
        let age = now.duration_since(e.at).ok()?;
        (age < Duration::from_secs(PERIOD_SECS)).then_some(&e.value)
    }

    /// Remember a read made at `now` (nothing without `now`).
    pub fn put(&mut self, key: K, now: Option<SystemTime>, value: V) {
        if let Some(at) = now {
            self.entries.insert(key, Entry { at, value });
        }
    }

    /// Forget a read made before `t`, a change that happened after it (a
    /// newer value is known to exist); whether there was one. Each `t`
    /// does so once: a read made after it by the pass clock, but before it
    /// by a cloud's clock that runs ahead, stays.
    pub fn forget_older_than(&mut self, key: &K, t: SystemTime) -> bool
    where
        K: Clone,
    {
        if self.changes.get(key).is_some_and(|seen| *seen >= t) {
            return false;
        }
        self.changes.insert(key.clone(), t);
        let older = self.entries.get(key).is_some_and(|e| e.at < t);
        if older {
            self.entries.remove(key);
        }
        older
    }

    /// Forget a read that a write made stale.
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }
}

/// The latest CPU sample per service, reused within one [`METRIC_PERIOD`].
pub type CpuReads<K> = Reads<K, Option<MetricSample>, { METRIC_PERIOD.as_secs() }>;

/// Per (region, cluster): each task's protection expiry (`None`: off),
/// reused for [`PROTECTION_REUSE`].
pub type ProtectionReads =
    Reads<(String, String), BTreeMap<String, Option<SystemTime>>, { PROTECTION_REUSE.as_secs() }>;

impl ProtectionReads {
    /// The cluster's protection as last read, if it is fresh and covers
    /// every one of `running` (task ARNs).
    pub fn covering<'a>(
        &self,
        region: &str,
        cluster: &str,
        running: impl IntoIterator<Item = &'a str>,
        now: Option<SystemTime>,
    ) -> Option<&BTreeMap<String, Option<SystemTime>>> {
        let read = self.fresh(&(region.to_string(), cluster.to_string()), now)?;
        running.into_iter().all(|arn| read.contains_key(arn)).then_some(read)
    }
}

/// The latest state change of an alarm on `service`'s CPU metric
/// (`AWS/ECS` `CPUUtilization` by its cluster and service name) among
/// `alarms`: a CPU read older than it has missed the datapoint the alarm
/// evaluated.
pub fn alarmed_since<'a>(
    service: &ServiceId,
    alarms: impl IntoIterator<Item = &'a ObservedAlarm>,
) -> Option<SystemTime> {
    let dims =
        |a: &ObservedAlarm, k: &str| a.definition.dimensions.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    alarms
        .into_iter()
        .filter(|a| a.definition.namespace == "AWS/ECS" && a.definition.metric_name == "CPUUtilization")
        .filter(|a| {
            dims(a, "ClusterName").as_deref() == Some(service.cluster.as_str())
                && dims(a, "ServiceName").as_deref() == Some(service.service.as_str())
        })
        .map(|a| a.state_updated)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + s)
    }

    #[test]
    fn a_read_is_reused_within_its_period_and_only_with_a_pass_time() {
        let mut r: Reads<&str, u32, 60> = Reads::default();
        r.put("a", Some(t(0)), 1);
        assert_eq!(r.fresh(&"a", Some(t(59))), Some(&1));
        assert_eq!(r.fresh(&"a", Some(t(60))), None, "one period later it is read again");
        assert_eq!(r.fresh(&"a", None), None, "a one-off observation reads everything");
        r.forget(&"a");
        assert_eq!(r.fresh(&"a", Some(t(1))), None, "a write makes it stale");
        r.put("b", None, 2);
        assert_eq!(r.fresh(&"b", Some(t(0))), None, "nothing is kept without a pass time");
    }

    #[test]
    fn a_protection_read_covers_only_the_tasks_it_saw() {
        let mut r = ProtectionReads::default();
        let read: BTreeMap<String, Option<SystemTime>> = [("t1".to_string(), Some(t(3600)))].into();
        r.put(("r".into(), "c".into()), Some(t(0)), read);
        assert!(r.covering("r", "c", ["t1"], Some(t(10))).is_some());
        assert!(r.covering("r", "c", ["t1", "t2"], Some(t(10))).is_none(), "a new task is read");
        assert!(r.covering("r", "c", ["t1"], Some(t(300))).is_none(), "after five minutes it is read again");
    }

    #[test]
    fn an_alarm_on_the_service_cpu_that_changed_state_after_the_read_makes_it_stale() {
        use crate::observed::{AlarmDefinition, AlarmState};
        let id = ServiceId { region: "us-east-2".into(), cluster: "appCluster".into(), service: "appService".into() };
        let other = ServiceId { service: "other".into(), ..id.clone() };
        let alarm = |service: &ServiceId, updated| ObservedAlarm {
            definition: AlarmDefinition::service_cpu("high", service, 70.0),
            state: AlarmState::Alarm,
            state_updated: updated,
            arn: String::new(),
            managed_by_ballast: None,
        };
        let alarms = [alarm(&id, t(30)), alarm(&other, t(50))];
        assert_eq!(alarmed_since(&id, &alarms), Some(t(30)), "only the service's own alarms count");
        let mut reads: CpuReads<ServiceId> = CpuReads::default();
        reads.put(id.clone(), Some(t(10)), Some(MetricSample { value: 50.0, at: t(0) }));
        assert!(!reads.forget_older_than(&id, t(5)), "a read after the change stays");
        assert!(reads.fresh(&id, Some(t(40))).is_some());
        assert!(reads.forget_older_than(&id, t(30)), "a read before the change goes");
        assert_eq!(reads.fresh(&id, Some(t(40))), None, "and the next pass reads the newer datapoint");
        // A cloud clock ahead of the pass clock: the re-read dates from
        // before the change, and still counts as its read.
        reads.put(id.clone(), Some(t(25)), None);
        assert!(!reads.forget_older_than(&id, t(30)), "one re-read per change");
        assert!(reads.fresh(&id, Some(t(40))).is_some());
    }
}
