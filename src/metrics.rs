//! Prometheus metrics. One [`Metrics`] per process, shared by the loop,
//! the clouds and the HTTP server; rendered by `GET /metrics`.
//!
//! Names follow Prometheus conventions: a `ballast_` prefix, base units
//! (seconds), `_total` on counters, labels for the dimensions a user
//! filters on.

use std::collections::HashSet;
use std::hash::Hash;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::desired::DesiredState;
use crate::observed::{Observed, TargetHealth};
use crate::plan::{HoldKind, HoldReason, Memory, Plan, ResourceKey};

/// The result of one cloud API call, as a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallResult {
    Success,
    /// Rejected with a throttling error (counted apart from other errors).
    Throttled,
    Error,
}

impl CallResult {
    fn as_str(&self) -> &'static str {
        match self {
            CallResult::Success => "success",
            CallResult::Throttled => "throttled",
            CallResult::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ApiCallLabels {
    service: &'static str,
    operation: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RoleLabel {
    role: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindResultLabels {
    kind: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ServiceLabels {
    cluster: String,
    service: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct TargetGroupLabels {
    target_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct GroupLabels {
    auto_scaling_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DecisionLabels {
    cluster: String,
    service: String,
    reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HoldLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FieldLabels {
    field: String,
}

/// Every metric family ballast exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    passes: Family<ResultLabel, Counter>,
    pass_duration: Histogram,
    drift: Family<KindLabel, Counter>,
    changes: Family<KindResultLabels, Counter>,
    held: Family<HoldLabels, Gauge>,
    api_calls: Family<ApiCallLabels, Counter>,
    /// Wanted and observed desired count.
    services: ResourceGauges<ServiceLabels, 2>,
    /// Registered and healthy targets.
    target_groups: ResourceGauges<TargetGroupLabels, 2>,
    /// Desired capacity.
    groups: ResourceGauges<GroupLabels, 1>,
    decisions: Family<DecisionLabels, Counter>,
    contested: ResourceGauges<FieldLabels, 1>,
    /// Per deploying service: old tasks, new tasks healthy, stalled (1/0).
    deployments: ResourceGauges<ServiceLabels, 3>,
    reloads: Family<ResultLabel, Counter>,
    config_valid: Gauge,
    /// Inputs the last pass could not read.
    unread: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    cloud_up: Gauge,
    leader: Gauge,
    leader_transitions: Family<RoleLabel, Counter>,
}

/// Gauge families of one kind of resource whose series follow what a pass
/// reports: a resource missing from a pass loses its series, so a deleted
/// service does not keep its last value forever.
#[derive(Debug)]
struct ResourceGauges<L, const N: usize> {
    families: [Family<L, Gauge>; N],
    /// The label sets set by the last pass.
    present: Mutex<HashSet<L>>,
}

impl<L: Clone + Eq + Hash, const N: usize> Default for ResourceGauges<L, N> {
    fn default() -> Self {
        ResourceGauges { families: std::array::from_fn(|_| Family::default()), present: Mutex::default() }
    }
}

impl<L: Clone + Eq + Hash + EncodeLabelSet + std::fmt::Debug, const N: usize> ResourceGauges<L, N> {
    /// Replace every series with `rows`: one row per resource, one value
    /// per family.
    fn set(&self, rows: impl IntoIterator<Item = (L, [i64; N])>) {
        let mut present = self.present.lock().unwrap();
        let mut now = HashSet::with_capacity(present.len());
        for (labels, values) in rows {
            for (family, value) in self.families.iter().zip(values) {
                family.get_or_create(&labels).set(value);
            }
            now.insert(labels);
        }
        for gone in present.difference(&now) {
            for family in &self.families {
                family.remove(gone);
            }
        }
        *present = now;
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a table of `name, help, metric;` rows in `$registry` (which
/// adds the `ballast_` prefix, and `_total` to counters), each metric
/// cloned: the registry and [`Metrics`] share the same series.
macro_rules! register {
    ($registry:ident; $($name:literal, $help:literal, $metric:expr;)+) => {
        $($registry.register($name, $help, $metric.clone());)+
    };
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ballast");
        let m = Metrics {
            passes: Family::default(),
            pass_duration: Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
            drift: Family::default(),
            changes: Family::default(),
            held: Family::default(),
            api_calls: Family::default(),
            services: ResourceGauges::default(),
            target_groups: ResourceGauges::default(),
            groups: ResourceGauges::default(),
            decisions: Family::default(),
            contested: ResourceGauges::default(),
            deployments: ResourceGauges::default(),
            reloads: Family::default(),
            config_valid: Gauge::default(),
            unread: Gauge::default(),
            last_success: Gauge::default(),
            cloud_up: Gauge::default(),
            leader: Gauge::default(),
            leader_transitions: Family::default(),
            registry: Registry::default(),
        };
        let [wanted, observed] = &m.services.families;
        let [registered, healthy] = &m.target_groups.families;
        let [old, new_healthy, stalled] = &m.deployments.families;
        // A gauge, not an OpenMetrics info: promtool and the Prometheus
        // text format know no `info` type.
        let build: Family<BuildLabels, Gauge> = Family::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        register! { registry;
            "reconcile_passes", "Reconcile passes by result (success, partial, error, interrupted)", m.passes;
            "reconcile_pass_duration_seconds", "Time one reconcile pass takes", m.pass_duration;
            "drift_detected", "Differences between desired and observed state found, by change kind", m.drift;
            "changes_applied", "Changes applied to the cloud, by kind and result", m.changes;
            "changes_held", "Changes held back in the last pass, by why", m.held;
            "cloud_api_calls", "Cloud API calls (each attempt) by service, operation and result", m.api_calls;
            "service_desired_tasks",
                "Task count ballast steers the service toward (the observed count while a hold keeps it)", wanted;
            "service_observed_desired_tasks", "The service's desired count as observed in ECS", observed;
            "target_group_registered_targets", "Targets registered in the target group (any state)", registered;
            "target_group_healthy_targets", "Healthy targets in the target group", healthy;
            "auto_scaling_group_desired_capacity", "Observed desired capacity of the Auto Scaling group",
                m.groups.families[0];
            "scaling_decisions", "Scaling decisions by service and reason", m.decisions;
            "contested_fields", "1 while ballast has stopped correcting a field another actor keeps reverting",
                m.contested.families[0];
            "deployment_old_tasks", "Tasks of older deployments still live while a deployment hands them over", old;
            "deployment_new_healthy_tasks", "Tasks of the rolling deployment healthy in every bound target group",
                new_healthy;
            "deployment_stalled",
                "1 while a deployment's new tasks do not become healthy and the old ones keep serving at the floor",
                stalled;
            "config_reloads", "Desired-state reloads by result (success, invalid)", m.reloads;
            "config_valid", "1 when the desired state on disk is valid, 0 while an invalid version is ignored",
                m.config_valid;
            "last_successful_pass_timestamp_seconds",
                "Unix time of the last pass that read every input and applied every change", m.last_success;
            "unread_inputs",
                "Inputs (resources, metrics) the last pass could not read; what depends on them was held", m.unread;
            "cloud_reachable", "1 when the last pass could reach the cloud", m.cloud_up;
            "leader", "1 while this replica leads, 0 while it stands by", m.leader;
            "leader_transitions", "Role changes, by the role taken (leader, standby)", m.leader_transitions;
            "build_info", "Build information; the value is always 1", build;
        }
        Metrics { registry, ..m }
    }

    /// Count one cloud API call (each attempt, including retries).
    pub fn api_call(&self, service: &'static str, operation: &'static str, result: CallResult) {
        self.api_calls.get_or_create(&ApiCallLabels { service, operation, result: result.as_str() }).inc();
    }

    /// Start timing a reconcile pass; it is counted when the timer drops.
    pub fn time_pass(self: &Arc<Self>) -> PassTimer {
        PassTimer { metrics: self.clone(), started: tokio::time::Instant::now(), result: "interrupted" }
    }

    pub fn pass_succeeded_at(&self, unix_seconds: f64) {
        self.last_success.set(unix_seconds);
    }

    pub fn cloud_reachable(&self, up: bool) {
        self.cloud_up.set(i64::from(up));
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn leader_transition(&self, role: &'static str) {
        self.leader_transitions.get_or_create(&RoleLabel { role }).inc();
    }

    pub fn drift(&self, kind: &'static str) {
        self.drift.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn change(&self, kind: &'static str, result: &'static str) {
        self.changes.get_or_create(&KindResultLabels { kind, result }).inc();
    }

    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabel { result: if ok { "success" } else { "invalid" } }).inc();
        self.config_valid.set(i64::from(ok));
    }

    pub fn set_config_valid(&self, ok: bool) {
        self.config_valid.set(i64::from(ok));
    }

    /// Everything one pass that observed the cloud sets: the per-resource
    /// gauges (from the plan's decisions and what was observed), the
    /// contested fields of `memory`, the scaling decisions and the held
    /// changes by kind.
    pub fn record_plan(&self, desired: &DesiredState, observed: &Observed, plan: &Plan, memory: &Memory) {
        self.services.set(desired.services.iter().zip(&plan.services).filter_map(|(svc, decided)| {
            let labels = ServiceLabels { cluster: svc.id.cluster.clone(), service: svc.id.service.clone() };
            Some((labels, [i64::from(decided.target?), i64::from(decided.observed?)]))
        }));
        self.target_groups.set(observed.target_groups.iter().filter_map(|(id, g)| {
            let g = g.as_ref().ok()?;
            let healthy = g.targets.iter().filter(|t| t.health == TargetHealth::Healthy).count();
            let labels = TargetGroupLabels { target_group: id.target_group.name().to_string() };
            Some((labels, [g.targets.len() as i64, healthy as i64]))
        }));
        self.groups.set(observed.groups.iter().filter_map(|(id, g)| {
            let g = g.as_ref().ok()?;
            Some((GroupLabels { auto_scaling_group: id.name.clone() }, [i64::from(g.desired_capacity)]))
        }));
        self.contested.set(
            memory
                .fields
                .iter()
                .filter(|(_, m)| m.contested_since.is_some())
                .map(|(f, _)| (FieldLabels { field: f.to_string() }, [1])),
        );
        self.deployments.set(plan.holds.iter().filter_map(|h| {
            let (HoldReason::Deploying(d), ResourceKey::Service { cluster, service, .. }) = (&h.reason, &h.resource)
            else {
                return None;
            };
            let labels = ServiceLabels { cluster: cluster.clone(), service: service.clone() };
            Some((labels, [i64::from(d.old), i64::from(d.new_healthy), i64::from(d.stalled)]))
        }));
        for (id, d) in &plan.decisions {
            self.decisions
                .get_or_create(&DecisionLabels {
                    cluster: id.cluster.clone(),
                    service: id.service.clone(),
                    reason: d.reason.as_str(),
                })
                .inc();
        }
        self.unread.set(plan.unread().count() as i64);
        // Every kind, 0 included, so an alert on one kind never sees it absent.
        for kind in HoldKind::ALL {
            let n = plan.holds.iter().filter(|h| h.kind() == kind).count();
            self.held.get_or_create(&HoldLabels { kind: kind.as_str() }).set(n as i64);
        }
    }

    /// The OpenMetrics text exposition (what Prometheus asks for first).
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }

    /// The classic Prometheus text format 0.0.4, for clients that do not
    /// accept OpenMetrics (curl, `promtool check metrics`, older scrapers).
    pub fn render_prometheus_text(&self) -> String {
        to_prometheus_text(&self.render())
    }
}

/// Times one reconcile pass. When dropped it counts the pass in
/// `ballast_reconcile_passes_total` with its result and observes its
/// duration, so every way out of a pass is counted once; a pass abandoned
/// before it set a result (shutdown) counts as `interrupted`.
#[derive(Debug)]
pub struct PassTimer {
    metrics: Arc<Metrics>,
    started: tokio::time::Instant,
    result: &'static str,
}

impl PassTimer {
    /// `success`, `partial` or `error`.
    pub fn set_result(&mut self, result: &'static str) {
        self.result = result;
    }
}

impl Drop for PassTimer {
    fn drop(&mut self) {
        self.metrics.passes.get_or_create(&ResultLabel { result: self.result }).inc();
        self.metrics.pass_duration.observe(self.started.elapsed().as_secs_f64());
    }
}

/// OpenMetrics text to Prometheus text 0.0.4. The two differ where it
/// matters here in one way: OpenMetrics names a counter family without its
/// `_total` suffix in `# HELP` and `# TYPE`, the classic format with it.
/// `# EOF` and `# UNIT` do not exist in the classic format.
fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 64);
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters.contains(name).then(|| format!("{prefix}{name}_total {tail}"))
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_total_and_drops_eof() {
        let m = Arc::new(Metrics::new());
        m.time_pass().set_result("success");
        m.api_call("ecs", "DescribeServices", CallResult::Throttled);
        let text = m.render_prometheus_text();
        assert!(text.contains("# HELP ballast_reconcile_passes_total "), "{text}");
        assert!(text.contains("# TYPE ballast_reconcile_passes_total counter"), "{text}");
        assert!(
            text.contains(
                r#"ballast_cloud_api_calls_total{service="ecs",operation="DescribeServices",result="throttled"} 1"#
            ),
            "{text}"
        );
        assert!(text.contains("# TYPE ballast_reconcile_pass_duration_seconds histogram"));
        assert!(!text.contains("# EOF"));
        assert!(m.render().ends_with("# EOF\n"));
    }
}
