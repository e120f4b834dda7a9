//! Per-resource status, as `GET /status` shows it: what a Kubernetes user
//! reads in `kubectl get -o yaml` status conditions.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde::Serialize;

use crate::plan::{Hold, HoldKind, Plan, PlannedChange, ResourceKey, ResourceReport};

/// How many applied changes each resource remembers.
const HISTORY: usize = 10;

fn null() -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string("null".into()).expect("null is JSON")
}

fn rfc3339(t: &SystemTime) -> String {
    humantime::format_rfc3339_millis(*t).to_string()
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(t))
}

fn ser_opt_time<S: serde::Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
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
        if !failed_now && self.last_changes.back().is_some_and(|c| c.at == now) {
            self.last_error = None;
            self.last_error_at = None;
        }
        self.conditions = conditions;
    }
}
