//! The level-triggered reconcile loop.
//!
//! Each pass observes fresh state, plans, and applies. A pass runs every
//! `interval`, at once when the desired state changes on disk, and early
//! when a failing resource's backoff is due. Nothing a restart would lose
//! is needed for correctness: the planner's [`Memory`] only makes ballast
//! more careful (ownership records, cooldowns, revert tracking).

pub mod backoff;
pub mod leader;
pub mod status;
pub mod watch;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rand::SeedableRng;
use tokio::sync::{mpsc, watch as tokio_watch};
use tracing::{Instrument as _, error, info, info_span, instrument, warn};

use crate::cloud::{Clock, Cloud, Scope};
use crate::desired::{DesiredState, LoadError};
use crate::metrics::Metrics;
use crate::plan::{self, Memory, Plan, ResourceKey};
use backoff::Backoff;
use leader::{Fenced, Leadership, Role};
use status::{ChangeRecord, PassRecord, Status};

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
    logged_holds: BTreeSet<(ResourceKey, String)>,
    /// Passes begun since start: the `pass` field of each pass's log lines.
    passes_started: u64,
    /// Asked before every write; a standby makes no pass.
    leadership: Leadership,
    /// The term of leadership the memory was built in: a new term starts
    /// from an empty memory and a fresh observation.
    term: Option<u64>,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PassOutcome {
    pub planned: usize,
    pub applied: usize,
    pub failed: usize,
    /// Inputs that could not be read: what depends on them was held.
    pub unread: usize,
    /// A stop request, or the loss of the lease, left changes of the plan
    /// for the next run (or the next leader).
    pub interrupted: bool,
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
        let status = Arc::new(RwLock::new(status));
        let leadership = Leadership::sole(metrics.clone(), status.clone(), clock.clone());
        Controller {
            cloud,
            clock,
            metrics,
            status,
            options,
            desired,
            memory: Memory::default(),
            backoffs: BTreeMap::new(),
            cloud_backoff: Backoff::default(),
            rng: rand::rngs::StdRng::from_os_rng(),
            logged_holds: Default::default(),
            passes_started: 0,
            leadership,
            term: None,
        }
    }

    /// Write only under `leadership` (built on this controller's
    /// [`status`](Self::status)), instead of leading alone.
    pub fn with_leadership(mut self, leadership: Leadership) -> Self {
        self.leadership = leadership;
        self
    }

    pub fn leadership(&self) -> &Leadership {
        &self.leadership
    }

    /// Draw the backoff jitter from `seed` instead of the OS, so that a
    /// simulated run is the same every time (`ballast simulate`).
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = rand::rngs::StdRng::seed_from_u64(seed);
        self
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
        match result {
            Ok(desired) => {
                self.put_in_force(desired);
                Ok(())
            }
            Err(e) => {
                let mut st = self.status.write().unwrap();
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

    /// Put `desired`, which the caller loaded from `dir` and validated, in
    /// force, as a reload of `dir` would: how `ballast simulate` scripts a
    /// switch to another desired-state directory.
    pub fn replace_desired(&mut self, dir: PathBuf, desired: DesiredState) {
        self.options.dir = dir.clone();
        self.status.write().unwrap().config.directory = dir.display().to_string();
        self.put_in_force(desired);
    }

    fn put_in_force(&mut self, desired: DesiredState) {
        info!(services = desired.services.len(), capacities = desired.capacities.len(), "desired state reloaded");
        self.metrics.reload(true);
        let mut st = self.status.write().unwrap();
        st.config.valid = true;
        st.config.errors.clear();
        st.config.loaded_at = Some(self.clock.now());
        st.config.services = desired.services.len();
        st.config.capacities = desired.capacities.len();
        self.desired = desired;
    }

    /// One observe-plan-apply pass. Stops between changes when `stop` is set.
    #[instrument(name = "pass", skip_all, fields(pass = self.passes_started + 1))]
    pub async fn pass(&mut self, stop: &tokio_watch::Receiver<bool>) -> PassOutcome {
        self.passes_started += 1;
        let mut timer = self.metrics.time_pass();
        let started_at = self.clock.now();
        let scope = Scope::of(&self.desired).at(started_at);
        let mut outcome = PassOutcome::default();

        let observed = match self.cloud.observe(&scope).instrument(info_span!("observe")).await {
            Ok(o) => {
                self.cloud_backoff.reset();
                o
            }
            Err(e) => {
                let delay = self.cloud_backoff.next_delay(&mut self.rng);
                warn!(error = %e, retry_in = ?delay, "cannot observe the cloud");
                timer.set_result("error");
                self.metrics.cloud_reachable(false);
                self.status.write().unwrap().record_unreachable(e.to_string(), started_at, self.clock.now());
                outcome.unreachable = true;
                outcome.retry_in = Some(delay);
                return outcome;
            }
        };
        self.metrics.cloud_reachable(true);

        let mut plan = info_span!("plan")
            .in_scope(|| plan::plan(&self.desired, &observed, std::mem::take(&mut self.memory), started_at));
        self.memory = std::mem::take(&mut plan.memory);
        outcome.planned = plan.changes.len();
        outcome.unread = plan.unread().count();
        for c in &plan.changes {
            self.metrics.drift(c.change.kind().as_str());
        }
        self.log_new_holds(&plan);

        let changes =
            self.apply(&plan, stop, &mut outcome).instrument(info_span!("apply", changes = plan.changes.len())).await;
        let now = self.clock.now();
        outcome.retry_in = self.backoffs.values().map(|(_, due)| due.duration_since(now).unwrap_or_default()).min();
        // Work in progress (changes just made, steps left by a budget or a
        // safety rule) is looked at again soon rather than a whole interval later.
        let in_progress = outcome.applied > 0
            || plan.holds.iter().any(|h| matches!(h.kind(), plan::HoldKind::Budget | plan::HoldKind::Safety));
        if in_progress {
            outcome.retry_in = Some(outcome.retry_in.map_or(FOLLOW_UP, |r| r.min(FOLLOW_UP)));
        }
        // A pass that could not read everything, or could not make every
        // change, is partial: it never counts as a success.
        let complete = outcome.failed == 0 && outcome.unread == 0 && !outcome.interrupted;
        timer.set_result(match (complete, outcome.interrupted) {
            (true, _) => "success",
            (false, true) => "interrupted",
            (false, false) => "partial",
        });
        if complete {
            let unix = now.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default().as_secs_f64();
            self.metrics.pass_succeeded_at(unix);
        }
        let reports = plan::reports(&self.desired, &observed, &plan, &self.memory);
        let samples = status::Sample::of_pass(&self.desired, &observed, &plan, now);
        let next = now + self.options.interval;
        let pass = PassRecord {
            plan: &plan,
            reports,
            changes,
            started_at,
            finished_at: now,
            applied: outcome.applied,
            failed: outcome.failed,
            unread: outcome.unread,
            interrupted: outcome.interrupted,
            dry_run: self.options.dry_run,
            samples,
        };
        let next_check = |key: &ResourceKey| self.backoffs.get(key).map_or(next, |(_, due)| *due);
        self.status.write().unwrap().record_pass(pass, next_check);
        self.metrics.record_plan(&self.desired, &observed, &plan, &self.memory);
        outcome
    }

    /// Log each hold once, in the pass it appears; an unread input as a
    /// warning, since it keeps ballast from deciding what depends on it.
    fn log_new_holds(&mut self, plan: &Plan) {
        let mut now = BTreeSet::new();
        for h in &plan.holds {
            let key = (h.resource.clone(), h.message());
            if !self.logged_holds.contains(&key) {
                let (resource, reason, rule) = (&key.0, &key.1, h.kind().as_str());
                if h.kind() == plan::HoldKind::Unobserved {
                    warn!(%resource, rule, %reason, "held back: an input could not be read");
                } else {
                    info!(%resource, rule, %reason, "held back");
                }
            }
            now.insert(key);
        }
        self.logged_holds = now;
    }

    /// Apply the plan's changes in order, skipping resources whose backoff
    /// is not due, stopping between changes when `stop` is set.
    async fn apply(
        &mut self,
        plan: &Plan,
        stop: &tokio_watch::Receiver<bool>,
        outcome: &mut PassOutcome,
    ) -> Vec<(ResourceKey, ChangeRecord, Option<String>)> {
        let mut records = Vec::new();
        for pc in &plan.changes {
            if *stop.borrow() {
                info!("stopping: remaining changes are left for the next run");
                outcome.interrupted = true;
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
                records.push((pc.resource.clone(), ChangeRecord::new(now, pc, "dry-run".into()), None));
                continue;
            }
            let result = match self.leadership.guard(self.cloud.apply(&pc.change)).await {
                Ok(r) => r,
                Err(Fenced::Overran(budget)) => Err(crate::cloud::CloudError::Unreachable {
                    service: "lease",
                    message: format!("abandoned after its budget of {budget:?} under the lease"),
                }),
                Err(fenced) => {
                    warn!(resource = %pc.resource, change = %pc.change, reason = %fenced, "not applied: this daemon no longer leads; the rest of the pass is left to the leader");
                    outcome.interrupted = true;
                    break;
                }
            };
            match result {
                Ok(()) => {
                    info!(resource = %pc.resource, change = %pc.change, reason = %pc.reason, "applied");
                    self.metrics.change(pc.change.kind().as_str(), "success");
                    self.memory.record_applied(&pc.change, now);
                    self.backoffs.remove(&pc.resource);
                    outcome.applied += 1;
                    records.push((pc.resource.clone(), ChangeRecord::new(now, pc, "applied".into()), None));
                }
                Err(e) => {
                    let entry = self.backoffs.entry(pc.resource.clone()).or_insert((Backoff::default(), now));
                    let delay = entry.0.next_delay(&mut self.rng);
                    entry.1 = now + delay;
                    warn!(resource = %pc.resource, change = %pc.change, error = %e, retry_in = ?delay, "change failed");
                    self.metrics.change(pc.change.kind().as_str(), e.label());
                    outcome.failed += 1;
                    let rec = ChangeRecord::new(now, pc, format!("failed: {e}"));
                    records.push((pc.resource.clone(), rec, Some(e.to_string())));
                }
            }
        }
        records
    }

    /// Run until `stop` turns true: a pass every interval, on reload
    /// signals, and when a backoff is due; while the daemon stands by, no
    /// pass at all (reloads still keep the desired state current).
    pub async fn run(mut self, mut reloads: mpsc::Receiver<()>, mut stop: tokio_watch::Receiver<bool>) {
        let mut role = self.leadership.subscribe();
        loop {
            let current = *role.borrow_and_update();
            let Role::Leader { term } = current else {
                tokio::select! {
                    _ = role.changed() => {}
                    Some(()) = reloads.recv() => { let _ = self.reload(); }
                    _ = stop.changed() => break,
                }
                continue;
            };
            if self.term != Some(term) {
                self.begin_term(term);
            }
            let outcome = self.pass(&stop).await;
            if *stop.borrow() {
                break;
            }
            let wait = outcome.retry_in.map_or(self.options.interval, |r| r.min(self.options.interval));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Some(()) = reloads.recv() => { let _ = self.reload(); }
                _ = stop.changed() => break,
                _ = role.changed() => {}
            }
            if *stop.borrow() {
                break;
            }
        }
        info!("controller stopped");
    }

    /// A new term of leadership starts from nothing this daemon built
    /// before: an empty memory, no backoffs, a fresh observation (the
    /// next pass), as a process that just started would.
    fn begin_term(&mut self, term: u64) {
        if self.term.is_some() {
            info!(term, "leading again: starting from a fresh observation");
        }
        self.term = Some(term);
        self.memory = Memory::default();
        self.backoffs.clear();
        self.cloud_backoff.reset();
        self.logged_holds.clear();
    }
}

#[cfg(test)]
mod tests;
