//! The level-triggered reconcile loop.
//!
//! Each pass observes fresh state, plans, and applies. A pass runs every
//! `interval`, at once when the desired state changes on disk, and early
//! when a failing resource's backoff is due. Nothing a restart would lose
//! is needed for correctness: the planner's [`Memory`] only makes ballast
//! more careful (ownership records, cooldowns, revert tracking).

pub mod backoff;
pub mod status;
pub mod watch;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use tokio::sync::{mpsc, watch as tokio_watch};
use tracing::{error, info, warn};

use crate::cloud::{Clock, Cloud, Scope};
use crate::desired::{DesiredState, LoadError};
use crate::metrics::{Metrics, ResourceGauges};
use crate::observed::TargetHealth;
use crate::plan::{self, Memory, Plan, ResourceKey};
use backoff::Backoff;
use status::{ChangeRecord, Condition, Status};

/// How soon a pass that made changes, or left steps for later, is
/// followed by another (capped by the interval).
pub const FOLLOW_UP: Duration = Duration::from_secs(2);

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    pub default_region: String,
    /// Time between passes when nothing else wakes the loop.
    pub interval: Duration,
    /// Plan and report, never write.
    pub dry_run: bool,
}

/// Shared, read by the HTTP server.
pub type SharedStatus = Arc<RwLock<Status>>;

/// The controller: owns the desired state in force and the planner's memory.
pub struct Controller<C: Cloud> {
    cloud: C,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    status: SharedStatus,
    options: Options,
    desired: DesiredState,
    memory: Memory,
    backoffs: BTreeMap<ResourceKey, (Backoff, SystemTime)>,
    cloud_backoff: Backoff,
    rng: rand::rngs::StdRng,
    /// Holds of the last pass, so each is logged once when it appears
    /// rather than every pass.
    logged_holds: std::collections::BTreeSet<(ResourceKey, String)>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub planned: usize,
    pub applied: usize,
    pub failed: usize,
    /// The cloud could not be observed at all.
    pub unreachable: bool,
    /// When the loop should come back early (a backoff falling due).
    pub retry_in: Option<Duration>,
}

impl<C: Cloud> Controller<C> {
    /// A controller enforcing `desired`, which the caller has loaded and validated.
    pub fn new(
        cloud: C,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        options: Options,
        desired: DesiredState,
    ) -> Self {
        let now = clock.now();
        let mut status = Status::default();
        status.started_at = Some(now);
        status.config = status::ConfigStatus {
            directory: options.dir.display().to_string(),
            valid: true,
            loaded_at: Some(now),
            errors: Vec::new(),
            services: desired.services.len(),
            capacities: desired.capacities.len(),
        };
        metrics.set_config_valid(true);
        Controller {
            cloud,
            clock,
            metrics,
            status: Arc::new(RwLock::new(status)),
            options,
            desired,
            memory: Memory::default(),
            backoffs: BTreeMap::new(),
            cloud_backoff: Backoff::default(),
            rng: rand::rngs::StdRng::from_os_rng(),
            logged_holds: Default::default(),
        }
    }

    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    pub fn desired(&self) -> &DesiredState {
        &self.desired
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// Re-read the desired-state directory. An invalid version leaves the
    /// last good one in force; the errors show in /status and /metrics.
    pub fn reload(&mut self) -> Result<(), LoadError> {
        let dir = self.options.dir.clone();
        let result = crate::desired::load_dir(&dir, &self.options.default_region);
        let now = self.clock.now();
        let mut st = self.status.write().unwrap();
        match result {
            Ok(desired) => {
                info!(
                    services = desired.services.len(),
                    capacities = desired.capacities.len(),
                    "desired state reloaded"
                );
                self.metrics.reload(true);
                st.config.valid = true;
                st.config.errors.clear();
                st.config.loaded_at = Some(now);
                st.config.services = desired.services.len();
                st.config.capacities = desired.capacities.len();
                self.desired = desired;
                Ok(())
            }
            Err(e) => {
                for d in &e.diagnostics {
                    error!("{d}");
                }
                warn!(
                    problems = e.diagnostics.len(),
                    "the desired state on disk is invalid; the last valid desired state stays in force"
                );
                self.metrics.reload(false);
                st.config.valid = false;
                st.config.errors = e.diagnostics.iter().map(ToString::to_string).collect();
                Err(e)
            }
        }
    }

    /// One observe-plan-apply pass. Stops between changes when `stop` is set.
    pub async fn pass(&mut self, stop: &tokio_watch::Receiver<bool>) -> PassOutcome {
        let started = tokio::time::Instant::now();
        let now = self.clock.now();
        let scope = Scope::of(&self.desired);
        let mut outcome = PassOutcome::default();
        self.status.write().unwrap().last_pass.started_at = Some(now);

        let observed = match self.cloud.observe(&scope).await {
            Ok(o) => {
                self.cloud_backoff.reset();
                o
            }
            Err(e) => {
                let delay = self.cloud_backoff.next_delay(&mut self.rng);
                warn!(error = %e, retry_in = ?delay, "cannot observe the cloud");
                self.metrics.cloud_reachable(false);
                self.metrics.pass("error", started.elapsed().as_secs_f64());
                let mut st = self.status.write().unwrap();
                st.cloud.reachable = false;
                st.cloud.consecutive_failures += 1;
                st.cloud.last_error = Some(e.to_string());
                st.last_pass.finished_at = Some(self.clock.now());
                st.last_pass.result = "unreachable".into();
                st.passes += 1;
                outcome.unreachable = true;
                outcome.retry_in = Some(delay);
                return outcome;
            }
        };
        self.metrics.cloud_reachable(true);

        let mut plan = plan::plan(&self.desired, &observed, std::mem::take(&mut self.memory), now);
        self.memory = std::mem::take(&mut plan.memory);
        outcome.planned = plan.changes.len();
        for c in &plan.changes {
            self.metrics.drift(c.change.kind().as_str());
        }
        let holds: std::collections::BTreeSet<(ResourceKey, String)> =
            plan.holds.iter().map(|h| (h.resource.clone(), h.message.clone())).collect();
        for h in &plan.holds {
            if !self.logged_holds.contains(&(h.resource.clone(), h.message.clone())) {
                info!(resource = %h.resource, rule = h.kind.as_str(), reason = %h.message, "held back");
            }
        }
        self.logged_holds = holds;

        let mut records: Vec<(ResourceKey, ChangeRecord, Option<String>)> = Vec::new();
        for pc in &plan.changes {
            if *stop.borrow() {
                info!("stopping: remaining changes are left for the next run");
                break;
            }
            let now = self.clock.now();
            if let Some((_, due)) = self.backoffs.get(&pc.resource)
                && *due > now
            {
                continue;
            }
            if self.options.dry_run {
                info!(resource = %pc.resource, change = %pc.change, reason = %pc.reason, "dry-run: would apply");
                records.push((pc.resource.clone(), record(now, pc, "dry-run".into()), None));
                continue;
            }
            match self.cloud.apply(&pc.change).await {
                Ok(()) => {
                    info!(resource = %pc.resource, change = %pc.change, reason = %pc.reason, "applied");
                    self.metrics.change(pc.change.kind().as_str(), "success");
                    self.memory.record_applied(&pc.change, now);
                    self.backoffs.remove(&pc.resource);
                    outcome.applied += 1;
                    records.push((pc.resource.clone(), record(now, pc, "applied".into()), None));
                }
                Err(e) => {
                    let entry = self.backoffs.entry(pc.resource.clone()).or_insert((Backoff::default(), now));
                    let delay = entry.0.next_delay(&mut self.rng);
                    entry.1 = now + delay;
                    warn!(resource = %pc.resource, change = %pc.change, error = %e, retry_in = ?delay, "change failed");
                    self.metrics.change(pc.change.kind().as_str(), e.label());
                    outcome.failed += 1;
                    records.push((pc.resource.clone(), record(now, pc, format!("failed: {e}")), Some(e.to_string())));
                }
            }
        }
        let now = self.clock.now();
        outcome.retry_in = self.backoffs.values().map(|(_, due)| due.duration_since(now).unwrap_or_default()).min();
        // Work in progress (changes just made, steps left by a budget or a
        // safety rule) is looked at again soon rather than a whole interval later.
        let in_progress = outcome.applied > 0
            || plan.holds.iter().any(|h| matches!(h.kind, plan::HoldKind::Budget | plan::HoldKind::Safety));
        if in_progress {
            outcome.retry_in = Some(outcome.retry_in.map_or(FOLLOW_UP, |r| r.min(FOLLOW_UP)));
        }
        let result = if outcome.failed == 0 { "success" } else { "partial" };
        self.metrics.pass(result, started.elapsed().as_secs_f64());
        if outcome.failed == 0 {
            let unix = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            self.metrics.pass_succeeded_at(unix);
        }
        self.update_status(&plan, &observed, records, now, &outcome);
        outcome
    }

    fn update_status(
        &self,
        plan: &Plan,
        observed: &crate::observed::Observed,
        records: Vec<(ResourceKey, ChangeRecord, Option<String>)>,
        now: SystemTime,
        outcome: &PassOutcome,
    ) {
        let mut st = self.status.write().unwrap();
        st.cloud.reachable = true;
        st.cloud.consecutive_failures = 0;
        st.passes += 1;
        st.last_pass.finished_at = Some(now);
        st.last_pass.result = if outcome.failed == 0 { "success".into() } else { "partial".into() };
        st.last_pass.changes_planned = outcome.planned;
        st.last_pass.changes_applied = outcome.applied;
        st.last_pass.dry_run = self.options.dry_run;
        if outcome.failed == 0 {
            st.last_success_at = Some(now);
        }
        let reports = plan::reports(&self.desired, observed, plan, &self.memory);
        let keep: std::collections::BTreeSet<ResourceKey> = reports.iter().map(|r| r.resource.clone()).collect();
        st.retain(|k| keep.contains(k));
        let next = now + self.options.interval;
        for report in reports {
            let r = st.resource_mut(&report.resource, &report.document);
            r.held = plan.holds.iter().filter(|h| h.resource == report.resource).cloned().collect();
            r.next_check_at = Some(self.backoffs.get(&report.resource).map(|(_, due)| *due).unwrap_or(next));
            r.desired = report.desired;
            r.observed = report.observed;
            if let Some(e) = report.error {
                r.last_error = Some(e);
                r.last_error_at = Some(now);
            }
        }
        for (key, rec, err) in records {
            if let Some(r) = st.get_mut(&key) {
                r.push_change(rec);
                if let Some(e) = err {
                    r.last_error = Some(e);
                    r.last_error_at = Some(now);
                }
            }
        }
        for (id, d) in &plan.decisions {
            self.metrics.decision(&id.cluster, &id.service, d.reason.as_str());
            let key = ResourceKey::Service {
                region: id.region.clone(),
                cluster: id.cluster.clone(),
                service: id.service.clone(),
            };
            if let Some(r) = st.get_mut(&key) {
                r.decision = serde_json::value::to_raw_value(d).ok();
            }
        }
        for (g, d) in &plan.capacity {
            let key = ResourceKey::Group { region: g.region.clone(), name: g.name.clone() };
            if let Some(r) = st.get_mut(&key) {
                r.decision = serde_json::value::to_raw_value(d).ok();
            }
        }
        // Conditions, derived from this pass.
        let pending: std::collections::BTreeSet<&ResourceKey> = plan.changes.iter().map(|c| &c.resource).collect();
        for r in st.resources.iter_mut() {
            let mut conds = Vec::new();
            let failed_now = r.last_changes.back().is_some_and(|c| c.at == now && c.result.starts_with("failed"));
            let synced = !pending.contains(&r.resource) && r.held.iter().all(|h| h.kind == plan::HoldKind::Scaling);
            conds.push(Condition {
                kind: "Synced",
                status: if synced { "True" } else { "False" },
                reason: if synced {
                    "Converged".into()
                } else if failed_now {
                    "ApplyFailed".into()
                } else if r.held.is_empty() {
                    "ChangesApplied".into()
                } else {
                    "Held".into()
                },
                message: if synced {
                    "observed state matches the desired state".into()
                } else {
                    r.held.first().map(|h| h.message.clone()).unwrap_or_else(|| "changes were made this pass".into())
                },
            });
            for (kind, label) in [
                (plan::HoldKind::Conflict, "Conflict"),
                (plan::HoldKind::Contested, "Contested"),
                (plan::HoldKind::Suspended, "Suspended"),
                (plan::HoldKind::Budget, "BudgetLimited"),
            ] {
                if let Some(h) = r.held.iter().find(|h| h.kind == kind) {
                    conds.push(Condition {
                        kind: label,
                        status: "True",
                        reason: label.into(),
                        message: h.message.clone(),
                    });
                }
            }
            if !failed_now && r.last_changes.back().is_some_and(|c| c.at == now) {
                r.last_error = None;
                r.last_error_at = None;
            }
            r.conditions = conds;
        }

        // Gauges.
        let mut gauges = ResourceGauges::default();
        for svc in &self.desired.services {
            if let Some(Ok(o)) = observed.services.get(&svc.id) {
                let want = plan.decisions.get(&svc.id).map(|d| d.desired).unwrap_or(match svc.tasks {
                    crate::desired::TaskCount::Fixed(n) => n,
                    crate::desired::TaskCount::Range { min, max } => o.desired_count.clamp(min, max),
                });
                gauges.services.push((svc.id.cluster.clone(), svc.id.service.clone(), want, o.desired_count));
            }
        }
        for (id, g) in &observed.target_groups {
            if let Ok(g) = g {
                let healthy = g.targets.iter().filter(|t| t.health == TargetHealth::Healthy).count() as u32;
                gauges.target_groups.push((id.target_group.name().to_string(), g.targets.len() as u32, healthy));
            }
        }
        for (id, g) in &observed.groups {
            if let Ok(g) = g {
                gauges.groups.push((id.name.clone(), g.desired_capacity));
            }
        }
        gauges.contested = self
            .memory
            .fields
            .iter()
            .filter(|(_, m)| m.contested_since.is_some())
            .map(|(f, _)| f.to_string())
            .collect();
        self.metrics.resources(&gauges);
        let mut held: BTreeMap<&'static str, i64> = BTreeMap::new();
        for h in &plan.holds {
            *held.entry(h.kind.as_str()).or_default() += 1;
        }
        self.metrics.held(&held.into_iter().collect::<Vec<_>>());
    }

    /// Run until `stop` turns true: a pass every interval, on reload
    /// signals, and when a backoff is due.
    pub async fn run(mut self, mut reloads: mpsc::Receiver<()>, mut stop: tokio_watch::Receiver<bool>) {
        loop {
            let outcome = self.pass(&stop).await;
            if *stop.borrow() {
                break;
            }
            let wait = outcome.retry_in.map_or(self.options.interval, |r| r.min(self.options.interval));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(()) = reloads.recv() => { let _ = self.reload(); }
                _ = stop.changed() => break,
            }
            if *stop.borrow() {
                break;
            }
        }
        info!("controller stopped");
    }
}

fn record(at: SystemTime, pc: &plan::PlannedChange, result: String) -> ChangeRecord {
    ChangeRecord { at, change: pc.change.to_string(), reason: pc.reason.clone(), result }
}

#[cfg(test)]
mod tests;
