//! Reads that stay true for a while, reused instead of repeated.
//!
//! Both clouds keep the same caches, so that the simulation records the
//! calls the AWS adapter makes. A read is reused only when the scope
//! carries the pass's time ([`crate::cloud::Scope::now`]).
//!
//! - **CPU** (GetMetricData): CloudWatch's `AWS/ECS CPUUtilization` has one
//!   datapoint per minute; reading it more often than once per period
//!   returns the same datapoint.
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

use crate::observed::MetricSample;

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
}

impl<K, V, const PERIOD_SECS: u64> Default for Reads<K, V, PERIOD_SECS> {
    fn default() -> Self {
        Reads { entries: HashMap::new() }
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
}
