//! Per-resource status, as `GET /status` shows it: what a Kubernetes user
//! reads in `kubectl get -o yaml` status conditions.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::desired::DesiredState;
use crate::observed::Observed;
use crate::plan::{Hold, HoldKind, HoldReason, Plan, PlannedChange, ResourceKey, ResourceReport};

/// How many applied changes each resource remembers.
const HISTORY: usize = 10;

/// How many [`Sample`]s each service keeps for the status page's chart:
/// with [`SAMPLE_SPACING`], at least two hours, three at the default
/// 15 s interval. A point is about 90 bytes.
pub const SAMPLES: usize = 720;

/// Chart points kept over all services together (about 9 MB): a fleet of
/// 1,000 services keeps 100 points each (25 minutes at the default
/// interval) rather than 63 MB of history, so the daemon's memory stays
/// within its goal however long it runs.
pub const SAMPLE_BUDGET: usize = 100_000;

/// The fewest points a service keeps, however large the fleet.
pub const MIN_SAMPLES: usize = 20;

/// Points per service for a fleet of `services`.
pub fn samples_per_service(services: usize) -> usize {
    (SAMPLE_BUDGET / services.max(1)).clamp(MIN_SAMPLES, SAMPLES)
}

/// The least time between two kept samples. Follow-up passes come 2 s
/// apart while changes are in progress; keeping each would shrink the
/// chart's window to minutes, so a pass this close to the one before
/// replaces the newest point instead.
pub const SAMPLE_SPACING: Duration = Duration::from_secs(10);

fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

fn rfc3339(t: &SystemTime) -> String {
    humantime::format_rfc3339_millis(*t).to_string()
}

pub(crate) fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

pub(crate) fn ser_opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(t)),
        None => s.serialize_none(),
    }
}

/// One change ballast made (or would have made, in dry-run).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRecord {
    #[serde(serialize_with = "ser_time")]
    pub at: SystemTime,
    pub change: String,
    pub reason: String,
    /// `applied`, `dry-run`, or `failed: …`.
    pub result: String,
}

impl ChangeRecord {
    pub fn new(at: SystemTime, pc: &PlannedChange, result: String) -> Self {
        ChangeRecord { at, change: pc.change.to_string(), reason: pc.reason.clone(), result }
    }
}

/// A status condition, Kubernetes style.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    pub resource: ResourceKey,
    pub name: String,
    pub document: String,
    pub desired: Box<serde_json::value::RawValue>,
    pub observed: Box<serde_json::value::RawValue>,
    pub conditions: Vec<Condition>,
    /// Changes held back this pass, and why.
    pub held: Vec<Hold>,
    /// What this pass left as it is on purpose (foreign targets).
    pub notices: Vec<String>,
    /// The last scaling or capacity decision with its inputs.
    pub decision: Option<Box<serde_json::value::RawValue>>,
    pub last_changes: VecDeque<ChangeRecord>,
    pub last_error: Option<String>,
    #[serde(serialize_with = "ser_opt_time")]
    pub last_error_at: Option<SystemTime>,
    #[serde(serialize_with = "ser_opt_time")]
    pub next_check_at: Option<SystemTime>,
    /// What the passes observed of a service, oldest first, at most
    /// [`SAMPLES`]: the status page's chart. Empty for other resources.
    /// Not in /status, whose readers want the present (history is in the
    /// metrics).
    #[serde(skip)]
    pub samples: VecDeque<Sample>,
}

/// One point of a service's chart: what one pass observed and decided.
/// `None` where it could not tell (the cloud or the metric unread), so
/// the chart shows a gap rather than a made-up value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sample {
    #[serde(serialize_with = "ser_time")]
    pub at: SystemTime,
    /// Tasks running.
    pub running: Option<u32>,
    /// The desired count ECS had.
    pub desired: Option<u32>,
    /// The count ballast steered toward (the plan's target).
    pub target: Option<u32>,
    /// The newest CPU datapoint, percent.
    pub cpu: Option<f64>,
    /// The scale-out and scale-in alarm thresholds, percent, when the
    /// service scales on CPU.
    pub high: Option<f64>,
    pub low: Option<f64>,
}

impl Sample {
    /// A point at `at` that observed nothing: a pass that could not reach
    /// the cloud.
    pub fn unobserved(at: SystemTime) -> Self {
        Sample { at, running: None, desired: None, target: None, cpu: None, high: None, low: None }
    }

    /// One sample per service of `desired`, from what this pass observed
    /// and planned.
    pub fn of_pass(
        desired: &DesiredState,
        observed: &Observed,
        plan: &Plan,
        at: SystemTime,
    ) -> Vec<(ResourceKey, Sample)> {
        desired
            .services
            .iter()
            .enumerate()
            .map(|(i, svc)| {
                let seen = observed.services.get(&svc.id).and_then(|s| s.as_ref().ok());
                let cpu = observed.cpu.get(&svc.id).and_then(|c| c.as_ref().ok().copied().flatten());
                let sample = Sample {
                    at,
                    running: seen.map(|s| s.running_count),
                    desired: seen.map(|s| s.desired_count),
                    target: plan.services.get(i).and_then(|p| p.target),
                    cpu: cpu.map(|c| c.value),
                    high: svc.scaling.as_ref().map(|s| s.scale_out.threshold),
                    low: svc.scaling.as_ref().map(|s| s.scale_in.threshold),
                };
                (ResourceKey::service(&svc.id), sample)
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    pub directory: String,
    pub valid: bool,
    #[serde(serialize_with = "ser_opt_time")]
    pub loaded_at: Option<SystemTime>,
    /// Located errors of the version on disk, while it is invalid.
    pub errors: Vec<String>,
    pub services: usize,
    pub capacities: usize,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PassStatus {
    #[serde(serialize_with = "ser_opt_time")]
    pub started_at: Option<SystemTime>,
    #[serde(serialize_with = "ser_opt_time")]
    pub finished_at: Option<SystemTime>,
    /// `success`, `partial` (a change failed or an input could not be
    /// read), `interrupted` (a stop request left changes for the next run)
    /// or `unreachable`.
    pub result: String,
    pub changes_planned: usize,
    pub changes_applied: usize,
    /// Inputs that could not be read; each is a `held` entry of kind
    /// `unobserved` on its resource.
    pub unread_inputs: usize,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct CloudStatus {
    pub reachable: bool,
    pub consecutive_failures: u32,
    pub last_error: Option<String>,
}

/// Everything /status, /healthz and /readyz report.
#[derive(Debug, Clone, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    #[serde(serialize_with = "ser_opt_time")]
    pub started_at: Option<SystemTime>,
    pub config: ConfigStatus,
    pub last_pass: PassStatus,
    /// Passes completed since start.
    pub passes: u64,
    #[serde(serialize_with = "ser_opt_time")]
    pub last_success_at: Option<SystemTime>,
    pub cloud: CloudStatus,
    /// Leader or standby, who holds the lease, and the last role changes.
    pub leadership: crate::controller::leader::LeadershipStatus,
    pub resources: Vec<ResourceStatus>,
    #[serde(skip)]
    index: BTreeMap<ResourceKey, usize>,
}

impl Status {
    pub fn resource_mut(&mut self, key: &ResourceKey, document: &str) -> &mut ResourceStatus {
        let i = match self.index.get(key) {
            Some(&i) => i,
            None => {
                self.resources.push(ResourceStatus {
                    resource: key.clone(),
                    name: key.to_string(),
                    document: document.to_string(),
                    desired: null(),
                    observed: null(),
                    conditions: Vec::new(),
                    held: Vec::new(),
                    notices: Vec::new(),
                    decision: None,
                    last_changes: VecDeque::new(),
                    last_error: None,
                    last_error_at: None,
                    next_check_at: None,
                    samples: VecDeque::new(),
                });
                self.index.insert(key.clone(), self.resources.len() - 1);
                self.resources.len() - 1
            }
        };
        &mut self.resources[i]
    }

    pub fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut ResourceStatus> {
        self.index.get(key).map(|&i| &mut self.resources[i])
    }

    pub fn resource(&self, key: &ResourceKey) -> Option<&ResourceStatus> {
        self.index.get(key).map(|&i| &self.resources[i])
    }

    /// Keep only resources the desired state still names.
    pub fn retain(&mut self, keep: impl Fn(&ResourceKey) -> bool) {
        self.resources.retain(|r| keep(&r.resource));
        self.index = self.resources.iter().enumerate().map(|(i, r)| (r.resource.clone(), i)).collect();
    }
}

impl ResourceStatus {
    pub fn push_change(&mut self, record: ChangeRecord) {
        if self.last_changes.len() == HISTORY {
            self.last_changes.pop_front();
        }
        self.last_changes.push_back(record);
    }

    /// Add a chart point: at most [`SAMPLES`], at least [`SAMPLE_SPACING`]
    /// apart but for the newest, which is always the latest pass.
    pub fn push_sample(&mut self, sample: Sample) {
        self.push_sample_within(sample, SAMPLES);
    }

    /// [`push_sample`](Self::push_sample), keeping at most `capacity` points.
    pub fn push_sample_within(&mut self, sample: Sample, capacity: usize) {
        let n = self.samples.len();
        let crowded = n >= 2
            && self.samples[n - 1].at.duration_since(self.samples[n - 2].at).unwrap_or_default() < SAMPLE_SPACING;
        if crowded {
            self.samples.pop_back();
        }
        while self.samples.len() >= capacity.max(1) {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }
}

/// One pass that observed the cloud, as the status records it.
pub struct PassRecord<'a> {
    pub plan: &'a Plan,
    /// One per resource the desired state names.
    pub reports: Vec<ResourceReport>,
    /// What was done with each change tried this pass, and its error.
    pub changes: Vec<(ResourceKey, ChangeRecord, Option<String>)>,
    pub started_at: SystemTime,
    pub finished_at: SystemTime,
    pub applied: usize,
    pub failed: usize,
    /// Inputs that could not be read (the plan's unobserved holds).
    pub unread: usize,
    /// A stop request left some of the plan's changes for the next run.
    pub interrupted: bool,
    pub dry_run: bool,
    /// Each service's chart point ([`Sample::of_pass`]).
    pub samples: Vec<(ResourceKey, Sample)>,
}

impl Status {
    /// Record a pass that could not observe the cloud.
    pub fn record_unreachable(&mut self, error: String, started_at: SystemTime, finished_at: SystemTime) {
        self.cloud.reachable = false;
        self.cloud.consecutive_failures += 1;
        self.cloud.last_error = Some(error);
        self.last_pass = PassStatus {
            started_at: Some(started_at),
            finished_at: Some(finished_at),
            result: "unreachable".into(),
            ..PassStatus::default()
        };
        self.passes += 1;
        let is_service = |r: &ResourceStatus| matches!(r.resource, ResourceKey::Service { .. });
        let capacity = samples_per_service(self.resources.iter().filter(|r| is_service(r)).count());
        for r in self.resources.iter_mut().filter(|r| is_service(r)) {
            r.push_sample_within(Sample::unobserved(finished_at), capacity);
        }
    }

    /// Record a pass that observed the cloud: the pass, each resource's
    /// desired and observed state, holds, decision and changes, and the
    /// conditions derived from them. `next_check` says when a resource is
    /// looked at next.
    pub fn record_pass(&mut self, pass: PassRecord<'_>, next_check: impl Fn(&ResourceKey) -> SystemTime) {
        let now = pass.finished_at;
        self.cloud.reachable = true;
        self.cloud.consecutive_failures = 0;
        self.passes += 1;
        self.last_pass = PassStatus {
            started_at: Some(pass.started_at),
            finished_at: Some(now),
            result: match (pass.failed, pass.unread, pass.interrupted) {
                (_, _, true) => "interrupted".into(),
                (0, 0, false) => "success".into(),
                _ => "partial".into(),
            },
            changes_planned: pass.plan.changes.len(),
            changes_applied: pass.applied,
            unread_inputs: pass.unread,
            dry_run: pass.dry_run,
        };
        if pass.failed == 0 && pass.unread == 0 && !pass.interrupted {
            self.last_success_at = Some(now);
        }
        let keep: std::collections::BTreeSet<ResourceKey> = pass.reports.iter().map(|r| r.resource.clone()).collect();
        self.retain(|k| keep.contains(k));
        for report in pass.reports {
            let r = self.resource_mut(&report.resource, &report.document);
            r.held = pass.plan.holds.iter().filter(|h| h.resource == report.resource).cloned().collect();
            r.notices =
                pass.plan.notices.iter().filter(|n| n.resource == report.resource).map(|n| n.message.clone()).collect();
            r.next_check_at = Some(next_check(&report.resource));
            r.desired = report.desired;
            r.observed = report.observed;
            if let Some(e) = report.error {
                r.last_error = Some(e);
                r.last_error_at = Some(now);
            }
        }
        for (key, rec, err) in pass.changes {
            if let Some(r) = self.get_mut(&key) {
                r.push_change(rec);
                if let Some(e) = err {
                    r.last_error = Some(e);
                    r.last_error_at = Some(now);
                }
            }
        }
        let capacity = samples_per_service(pass.samples.len());
        for (key, sample) in pass.samples {
            if let Some(r) = self.get_mut(&key) {
                r.push_sample_within(sample, capacity);
            }
        }
        let decisions = pass.plan.decisions.iter().map(|(id, d)| (ResourceKey::service(id), to_raw(d)));
        let capacity = pass.plan.capacity.iter().map(|(g, d)| (ResourceKey::group(g), to_raw(d)));
        for (key, decision) in decisions.chain(capacity) {
            if let Some(r) = self.get_mut(&key) {
                r.decision = decision;
            }
        }
        let pending: std::collections::BTreeSet<&ResourceKey> = pass.plan.changes.iter().map(|c| &c.resource).collect();
        for r in self.resources.iter_mut() {
            r.update_conditions(pending.contains(&r.resource), now);
        }
    }
}

fn to_raw<T: Serialize>(v: &T) -> Option<Box<serde_json::value::RawValue>> {
    serde_json::value::to_raw_value(v).ok()
}

/// The holds that raise a condition of their own, with its type.
const HOLD_CONDITIONS: [(HoldKind, &str); 4] = [
    (HoldKind::Conflict, "Conflict"),
    (HoldKind::Contested, "Contested"),
    (HoldKind::Suspended, "Suspended"),
    (HoldKind::Budget, "BudgetLimited"),
];

impl ResourceStatus {
    /// Derive the conditions from this pass: `Synced` (nothing pending and
    /// nothing held but scaling rules, which are the policy working), and
    /// one condition per kind of hold a user must know about.
    fn update_conditions(&mut self, pending: bool, now: SystemTime) {
        let failed_now = self.last_changes.back().is_some_and(|c| c.at == now && c.result.starts_with("failed"));
        let synced = !pending && self.held.iter().all(|h| h.kind() == HoldKind::Scaling);
        let (reason, message) = if synced {
            ("Converged", "observed state matches the desired state".to_string())
        } else {
            let first_hold = self.held.first().map(Hold::message);
            let reason = if failed_now {
                "ApplyFailed"
            } else if self.held.is_empty() {
                "ChangesApplied"
            } else {
                "Held"
            };
            (reason, first_hold.unwrap_or_else(|| "changes were made this pass".into()))
        };
        let mut conditions = vec![Condition {
            kind: "Synced",
            status: if synced { "True" } else { "False" },
            reason: reason.into(),
            message,
        }];
        for (kind, label) in HOLD_CONDITIONS {
            if let Some(h) = self.held.iter().find(|h| h.kind() == kind) {
                conditions.push(Condition { kind: label, status: "True", reason: label.into(), message: h.message() });
            }
        }
        // A deployment whose new tasks do not become healthy: the old
        // ones keep serving at the floor until someone acts.
        if let Some(h) = self.held.iter().find(|h| matches!(&h.reason, HoldReason::Deploying(d) if d.stalled)) {
            let label = "DeploymentStalled";
            conditions.push(Condition { kind: label, status: "True", reason: label.into(), message: h.message() });
        }
        if !failed_now && self.last_changes.back().is_some_and(|c| c.at == now) {
            self.last_error = None;
            self.last_error_at = None;
        }
        self.conditions = conditions;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(st: &mut Status) -> &mut ResourceStatus {
        let key = ResourceKey::Service { region: "r".into(), cluster: "c".into(), service: "s".into() };
        st.resource_mut(&key, "app")
    }

    fn point(secs: u64, running: u32) -> Sample {
        Sample { running: Some(running), ..Sample::unobserved(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)) }
    }

    #[test]
    fn the_chart_history_stays_bounded_and_keeps_the_newest() {
        let mut st = Status::default();
        let r = service(&mut st);
        let passes = 3 * SAMPLES as u64;
        for i in 0..passes {
            r.push_sample(point(i * 15, i as u32));
        }
        assert_eq!(r.samples.len(), SAMPLES);
        assert_eq!(r.samples.back().unwrap().running, Some(passes as u32 - 1));
        assert_eq!(r.samples.front().unwrap().running, Some((passes - SAMPLES as u64) as u32));
        let span = r.samples.back().unwrap().at.duration_since(r.samples.front().unwrap().at).unwrap();
        assert!(span >= Duration::from_secs(2 * 3600), "{span:?}");
    }

    #[test]
    fn a_large_fleet_keeps_fewer_points_per_service_within_the_budget() {
        assert_eq!(samples_per_service(1), SAMPLES);
        assert_eq!(samples_per_service(1000), 100);
        assert_eq!(samples_per_service(1_000_000), MIN_SAMPLES);
        for services in [1, 10, 138, 139, 1000, 5000] {
            assert!(services * samples_per_service(services) <= SAMPLE_BUDGET.max(services * MIN_SAMPLES));
        }
        let mut st = Status::default();
        let r = service(&mut st);
        for i in 0..500 {
            r.push_sample_within(point(i * 15, i as u32), 100);
        }
        assert_eq!(r.samples.len(), 100);
        assert_eq!(r.samples.back().unwrap().running, Some(499));
        // A fleet that grows shrinks each history at the next point.
        r.push_sample_within(point(500 * 15, 500), 40);
        assert_eq!(r.samples.len(), 40);
        assert_eq!(r.samples.back().unwrap().running, Some(500));
    }

    #[test]
    fn passes_closer_than_the_spacing_replace_the_newest_point() {
        let mut st = Status::default();
        let r = service(&mut st);
        // A pass every 2 s for an hour (follow-up passes while changes go on).
        for i in 0..1800 {
            r.push_sample(point(i * 2, i as u32));
        }
        assert!(r.samples.len() <= 3600 / SAMPLE_SPACING.as_secs() as usize + 1, "{}", r.samples.len());
        assert_eq!(r.samples.back().unwrap().running, Some(1799), "the newest point is the latest pass");
        assert_eq!(r.samples.front().unwrap().running, Some(0), "an hour of them fits");
        let gaps: Vec<_> =
            r.samples.iter().zip(r.samples.iter().skip(1)).map(|(a, b)| b.at.duration_since(a.at).unwrap()).collect();
        assert!(gaps[..gaps.len() - 1].iter().all(|g| *g >= SAMPLE_SPACING), "{gaps:?}");
    }

    #[test]
    fn an_unreachable_pass_leaves_a_gap_in_each_service_chart() {
        let mut st = Status::default();
        service(&mut st).push_sample(point(0, 2));
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(15);
        st.record_unreachable("connection refused".into(), t, t);
        let r = service(&mut st);
        assert_eq!(r.samples.len(), 2);
        assert_eq!(r.samples[1], Sample::unobserved(t));
    }
}
