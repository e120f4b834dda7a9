//! What a run measured: requests, resources, the controller's work, and
//! how long the plan took to converge after each event. Serialized as
//! `--output json`; [`Report::render`] is the text form.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::desired::duration::format_duration;
use crate::plan::ChangeKind;

/// The top-level keys every JSON report has (`--output json`): what
/// scripts and the held-out checks may rely on.
pub const JSON_KEYS: [&str; 9] = [
    "servedRequests",
    "failedRequests",
    "targetGroups",
    "taskMinutes",
    "instanceMinutes",
    "minutesCpuAbove90",
    "scalingActions",
    "changesApplied",
    "events",
];

/// The report of one run. Every number is deterministic: the same
/// scenario, seed and options give the same report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The scenario's `metadata.name`.
    pub scenario: String,
    pub seed: u64,
    /// Virtual time the run covered.
    #[serde(serialize_with = "seconds")]
    pub duration_seconds: Duration,
    /// Who registered the targets: `ballast` or `ecs` (ECS's own
    /// load-balancer integration).
    pub targets: &'static str,
    /// Requests served, summed over every target group (a service's load
    /// reaches each of its target groups: one request per listener).
    #[serde(serialize_with = "requests")]
    pub served_requests: f64,
    /// Requests that failed, summed over every target group.
    #[serde(serialize_with = "requests")]
    pub failed_requests: f64,
    /// Per target group, by name.
    pub target_groups: BTreeMap<String, TargetGroupReport>,
    /// Minutes of RUNNING tasks, all services together.
    #[serde(serialize_with = "rounded")]
    pub task_minutes: f64,
    /// Minutes of instances Pending, InService or Terminating.
    #[serde(serialize_with = "rounded")]
    pub instance_minutes: f64,
    /// CloudWatch CPU datapoints (one per service per minute) above 90 %.
    pub minutes_cpu_above90: u64,
    /// Changes of a desired count or of a group's capacity ballast applied.
    pub scaling_actions: u64,
    /// Changes ballast applied, by kind (camelCase of the metric label).
    pub changes_applied: BTreeMap<&'static str, u64>,
    /// Changes the cloud refused.
    pub changes_failed: u64,
    /// Passes the controller made.
    pub passes: u64,
    /// Each occurrence of each event, in time order.
    pub events: Vec<EventReport>,
}

/// Requests through one target group.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupReport {
    #[serde(serialize_with = "requests")]
    pub served_requests: f64,
    #[serde(serialize_with = "requests")]
    pub failed_requests: f64,
    /// Whole seconds with at least one failed request.
    pub seconds_with_failures: u64,
}

/// One occurrence of an event and how the controller came back from it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventReport {
    /// Time from the start.
    #[serde(serialize_with = "seconds")]
    pub at_seconds: Duration,
    /// The event's line in the scenario file.
    pub line: usize,
    /// The action's key: `deploy`, `terminateInstance`, …
    pub kind: &'static str,
    pub description: String,
    /// Why the simulated cloud could not play the event (it then changed
    /// nothing).
    pub error: Option<String>,
    /// From the event to the first pass at or after it that planned no
    /// change with every input read; `null` if none came before the end.
    #[serde(serialize_with = "opt_seconds")]
    pub converged_after_seconds: Option<Duration>,
    /// From the event to the first pass of the run of converged passes
    /// that lasted until the next event (or the end); `null` if the last
    /// pass before it was not converged.
    #[serde(serialize_with = "opt_seconds")]
    pub settled_after_seconds: Option<Duration>,
}

/// A change kind's key in `changesApplied`.
pub fn kind_key(kind: ChangeKind) -> &'static str {
    match kind {
        ChangeKind::DesiredCount => "desiredCount",
        ChangeKind::RegisterTargets => "registerTargets",
        ChangeKind::DeregisterTargets => "deregisterTargets",
        ChangeKind::Alarm => "alarm",
        ChangeKind::Capacity => "capacity",
        ChangeKind::Subnets => "subnets",
        ChangeKind::Processes => "processes",
        ChangeKind::TaskProtection => "taskProtection",
        ChangeKind::LifecycleHook => "lifecycleHook",
        ChangeKind::Termination => "termination",
        ChangeKind::SurgeMark => "surgeMark",
    }
}

/// Every change kind, for a `changesApplied` that lists each.
pub const KINDS: [ChangeKind; 11] = [
    ChangeKind::DesiredCount,
    ChangeKind::RegisterTargets,
    ChangeKind::DeregisterTargets,
    ChangeKind::Alarm,
    ChangeKind::Capacity,
    ChangeKind::Subnets,
    ChangeKind::Processes,
    ChangeKind::TaskProtection,
    ChangeKind::LifecycleHook,
    ChangeKind::Termination,
    ChangeKind::SurgeMark,
];

fn seconds<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn opt_seconds<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// Requests are integrated from fractional rates: a thousandth of a
/// request is noise, not a failure.
fn requests<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round3(*v))
}

fn rounded<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round3(*v))
}

fn round3(v: f64) -> f64 {
    let r = (v * 1000.0).round() / 1000.0;
    // No `-0` in a report.
    if r == 0.0 { 0.0 } else { r }
}

impl Report {
    /// The report as a person reads it.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let who = if self.targets == "ecs" { "ECS's load-balancer integration" } else { "ballast" };
        let _ = writeln!(
            out,
            "scenario {}: {} of virtual time, seed {}, targets registered by {who}",
            self.scenario,
            format_duration(self.duration_seconds),
            self.seed
        );
        let total = self.served_requests + self.failed_requests;
        let share = if total > 0.0 { 100.0 * self.failed_requests / total } else { 0.0 };
        let _ = writeln!(
            out,
            "requests: {} served, {} failed ({share:.4} %)",
            count(self.served_requests),
            count(self.failed_requests)
        );
        for (name, tg) in &self.target_groups {
            let _ = writeln!(
                out,
                "  {name}: {} served, {} failed, {} s with failures",
                count(tg.served_requests),
                count(tg.failed_requests),
                tg.seconds_with_failures
            );
        }
        let _ = writeln!(
            out,
            "resources: {:.1} task-minutes, {:.1} instance-minutes, {} minutes with CPU above 90 %",
            self.task_minutes, self.instance_minutes, self.minutes_cpu_above90
        );
        let applied: Vec<String> =
            self.changes_applied.iter().filter(|(_, n)| **n > 0).map(|(k, n)| format!("{n} {k}")).collect();
        let _ = writeln!(
            out,
            "controller: {} passes, {} scaling actions, changes applied: {}, {} failed",
            self.passes,
            self.scaling_actions,
            if applied.is_empty() { "none".to_string() } else { applied.join(", ") },
            self.changes_failed
        );
        if !self.events.is_empty() {
            let _ = writeln!(out, "events:");
        }
        let since =
            |d: Option<Duration>| d.map_or_else(|| "never".to_string(), |d| format!("after {}", format_duration(d)));
        for e in &self.events {
            let _ = write!(out, "  at {} (line {}): {}", format_duration(e.at_seconds), e.line, e.description);
            match &e.error {
                Some(err) => {
                    let _ = write!(out, ": FAILED: {err}");
                }
                None => {
                    let _ = write!(
                        out,
                        ": converged {}, settled {}",
                        since(e.converged_after_seconds),
                        since(e.settled_after_seconds)
                    );
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A request count as a whole number when it is one.
fn count(v: f64) -> String {
    let r = round3(v);
    if r.fract() == 0.0 { format!("{r:.0}") } else { format!("{r:.3}") }
}
