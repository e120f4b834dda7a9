//! Prometheus metrics. One [`Metrics`] per process, shared by the loop,
//! the clouds and the HTTP server; rendered by `GET /metrics`.
//!
//! Names follow Prometheus conventions: a `ballast_` prefix, base units
//! (seconds), `_total` on counters, labels for the dimensions a user
//! filters on.

use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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
    desired_tasks: Family<ServiceLabels, Gauge>,
    observed_tasks: Family<ServiceLabels, Gauge>,
    registered_targets: Family<TargetGroupLabels, Gauge>,
    healthy_targets: Family<TargetGroupLabels, Gauge>,
    group_capacity: Family<GroupLabels, Gauge>,
    decisions: Family<DecisionLabels, Counter>,
    contested: Family<FieldLabels, Gauge>,
    reloads: Family<ResultLabel, Counter>,
    config_valid: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    cloud_up: Gauge,
    /// Label sets set last pass, so vanished resources are removed.
    seen: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    services: Vec<ServiceLabels>,
    target_groups: Vec<TargetGroupLabels>,
    groups: Vec<GroupLabels>,
    contested: Vec<FieldLabels>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
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
            desired_tasks: Family::default(),
            observed_tasks: Family::default(),
            registered_targets: Family::default(),
            healthy_targets: Family::default(),
            group_capacity: Family::default(),
            decisions: Family::default(),
            contested: Family::default(),
            reloads: Family::default(),
            config_valid: Gauge::default(),
            last_success: Gauge::default(),
            cloud_up: Gauge::default(),
            seen: Mutex::default(),
            registry: Registry::default(),
        };
        registry.register("reconcile_passes", "Reconcile passes by result (success, partial, error)", m.passes.clone());
        registry.register("reconcile_pass_duration_seconds", "Time one reconcile pass takes", m.pass_duration.clone());
        registry.register(
            "drift_detected",
            "Differences between desired and observed state found, by change kind",
            m.drift.clone(),
        );
        registry.register("changes_applied", "Changes applied to the cloud, by kind and result", m.changes.clone());
        registry.register("changes_held", "Changes held back in the last pass, by why", m.held.clone());
        registry.register(
            "cloud_api_calls",
            "Cloud API calls (each attempt) by service, operation and result",
            m.api_calls.clone(),
        );
        registry.register("service_desired_tasks", "Task count ballast wants for the service", m.desired_tasks.clone());
        registry.register(
            "service_observed_desired_tasks",
            "The service's desired count as observed in ECS",
            m.observed_tasks.clone(),
        );
        registry.register(
            "target_group_registered_targets",
            "Targets registered in the target group (any state)",
            m.registered_targets.clone(),
        );
        registry.register(
            "target_group_healthy_targets",
            "Healthy targets in the target group",
            m.healthy_targets.clone(),
        );
        registry.register(
            "auto_scaling_group_desired_capacity",
            "Observed desired capacity of the Auto Scaling group",
            m.group_capacity.clone(),
        );
        registry.register("scaling_decisions", "Scaling decisions by service and reason", m.decisions.clone());
        registry.register(
            "contested_fields",
            "1 while ballast has stopped correcting a field another actor keeps reverting",
            m.contested.clone(),
        );
        registry.register("config_reloads", "Desired-state reloads by result (success, invalid)", m.reloads.clone());
        registry.register(
            "config_valid",
            "1 when the desired state on disk is valid, 0 while an invalid version is ignored",
            m.config_valid.clone(),
        );
        registry.register(
            "last_successful_pass_timestamp_seconds",
            "Unix time of the last pass that observed and applied without error",
            m.last_success.clone(),
        );
        registry.register("cloud_reachable", "1 when the last pass could reach the cloud", m.cloud_up.clone());
        // A gauge, not an OpenMetrics info: promtool and the Prometheus
        // text format know no `info` type.
        let build: Family<BuildLabels, Gauge> = Family::default();
        build.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION") }).set(1);
        registry.register("build_info", "Build information; the value is always 1", build);
        Metrics { registry, ..m }
    }

    /// Count one cloud API call (each attempt, including retries).
    pub fn api_call(&self, service: &'static str, operation: &'static str, result: CallResult) {
        self.api_calls.get_or_create(&ApiCallLabels { service, operation, result: result.as_str() }).inc();
    }

    pub fn pass(&self, result: &'static str, seconds: f64) {
        self.passes.get_or_create(&ResultLabel { result }).inc();
        self.pass_duration.observe(seconds);
    }

    pub fn pass_succeeded_at(&self, unix_seconds: f64) {
        self.last_success.set(unix_seconds);
    }

    pub fn cloud_reachable(&self, up: bool) {
        self.cloud_up.set(i64::from(up));
    }

    pub fn drift(&self, kind: &'static str) {
        self.drift.get_or_create(&KindLabel { kind }).inc();
    }

    pub fn change(&self, kind: &'static str, result: &'static str) {
        self.changes.get_or_create(&KindResultLabels { kind, result }).inc();
    }

    /// Replace the held-changes gauges with this pass's counts.
    pub fn held(&self, counts: &[(&'static str, i64)]) {
        self.held.clear();
        for (kind, n) in counts {
            self.held.get_or_create(&HoldLabels { kind }).set(*n);
        }
    }

    pub fn decision(&self, cluster: &str, service: &str, reason: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { cluster: cluster.into(), service: service.into(), reason })
            .inc();
    }

    pub fn reload(&self, ok: bool) {
        self.reloads.get_or_create(&ResultLabel { result: if ok { "success" } else { "invalid" } }).inc();
        self.config_valid.set(i64::from(ok));
    }

    pub fn set_config_valid(&self, ok: bool) {
        self.config_valid.set(i64::from(ok));
    }

    /// Per-resource gauges for one pass; resources no longer present are dropped.
    pub fn resources(&self, snapshot: &ResourceGauges) {
        let mut seen = self.seen.lock().unwrap();
        let services: Vec<ServiceLabels> = snapshot
            .services
            .iter()
            .map(|(c, s, _, _)| ServiceLabels { cluster: c.clone(), service: s.clone() })
            .collect();
        for old in seen.services.iter().filter(|l| !services.contains(l)) {
            self.desired_tasks.remove(old);
            self.observed_tasks.remove(old);
        }
        for ((_, _, desired, observed), labels) in snapshot.services.iter().zip(&services) {
            self.desired_tasks.get_or_create(labels).set(i64::from(*desired));
            self.observed_tasks.get_or_create(labels).set(i64::from(*observed));
        }
        seen.services = services;

        let tgs: Vec<TargetGroupLabels> =
            snapshot.target_groups.iter().map(|(n, _, _)| TargetGroupLabels { target_group: n.clone() }).collect();
        for old in seen.target_groups.iter().filter(|l| !tgs.contains(l)) {
            self.registered_targets.remove(old);
            self.healthy_targets.remove(old);
        }
        for ((_, registered, healthy), labels) in snapshot.target_groups.iter().zip(&tgs) {
            self.registered_targets.get_or_create(labels).set(i64::from(*registered));
            self.healthy_targets.get_or_create(labels).set(i64::from(*healthy));
        }
        seen.target_groups = tgs;

        let groups: Vec<GroupLabels> =
            snapshot.groups.iter().map(|(n, _)| GroupLabels { auto_scaling_group: n.clone() }).collect();
        for old in seen.groups.iter().filter(|l| !groups.contains(l)) {
            self.group_capacity.remove(old);
        }
        for ((_, cap), labels) in snapshot.groups.iter().zip(&groups) {
            self.group_capacity.get_or_create(labels).set(i64::from(*cap));
        }
        seen.groups = groups;

        let contested: Vec<FieldLabels> = snapshot.contested.iter().map(|f| FieldLabels { field: f.clone() }).collect();
        for old in seen.contested.iter().filter(|l| !contested.contains(l)) {
            self.contested.remove(old);
        }
        for labels in &contested {
            self.contested.get_or_create(labels).set(1);
        }
        seen.contested = contested;
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

/// Values for the per-resource gauges of one pass.
#[derive(Debug, Default, Clone)]
pub struct ResourceGauges {
    /// (cluster, service, desired by ballast, observed desired count).
    pub services: Vec<(String, String, u32, u32)>,
    /// (target group name, registered, healthy).
    pub target_groups: Vec<(String, u32, u32)>,
    /// (group name, desired capacity).
    pub groups: Vec<(String, u32)>,
    /// Contested fields, described.
    pub contested: Vec<String>,
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
        let m = Metrics::new();
        m.pass("success", 0.1);
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
