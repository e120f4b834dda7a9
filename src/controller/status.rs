//! Per-resource status, as `GET /status` shows it: what a Kubernetes user
//! reads in `kubectl get -o yaml` status conditions.

use std::collections::{BTreeMap, VecDeque};
use std::time::SystemTime;

use serde::Serialize;

use crate::plan::{Hold, ResourceKey};

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
    pub result: String,
    pub changes_planned: usize,
    pub changes_applied: usize,
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
