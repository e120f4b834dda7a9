//! Checks raw documents and turns them into the validated types.
//!
//! Every rule reports into a list instead of returning early, so one run
//! shows every mistake of every file. A document with any mistake yields
//! no validated value, but still yields its *claims* (the names, services,
//! target groups and groups it declares) so that conflicts between
//! documents are found in the same run.

use super::duration::{format_duration, parse_duration};
use super::load::Diagnostic;
use super::positions::{DocIndex, Pos, join_index, join_key};
use super::raw::*;
use super::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where something was declared: for messages that point at the other
/// half of a conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loc {
    pub file: PathBuf,
    pub pos: Pos,
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.pos.line, self.pos.column)
    }
}

/// What a `Service` document declares, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceClaims {
    pub name: Option<(String, Loc)>,
    /// Known when region, cluster and service are all valid.
    pub id: Option<(ServiceId, Loc)>,
    /// Region and cluster, known even when the service name is not.
    pub cluster: Option<(String, String)>,
    /// (region, target group name, where).
    pub target_groups: Vec<(String, String, Loc)>,
    /// The fewest tasks the service may run, when known.
    pub min_tasks: Option<u32>,
}

/// What a `Capacity` document declares, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityClaims {
    pub name: Option<(String, Loc)>,
    pub group: Option<(GroupId, Loc)>,
    /// (region, cluster, where).
    pub cluster: Option<(String, String, Loc)>,
    pub max_instances: Option<(u32, Loc)>,
    pub tasks_per_instance: Option<u32>,
}

/// One checked document.
#[derive(Debug, Clone)]
pub(crate) enum Checked {
    /// The validated service is `None` when the document has mistakes.
    Service(ServiceClaims, Option<Service>),
    Capacity(CapacityClaims, Option<Capacity>),
}

/// The context of one document: where to report, and how to locate paths.
pub(crate) struct DocCtx<'a> {
    pub file: &'a Path,
    pub index: &'a DocIndex,
    pub diags: &'a mut Vec<Diagnostic>,
    /// Diagnostics already reported for this document before the checks
    /// ran (unknown keys, duplicate keys): they also make it invalid.
    pub prior_errors: usize,
    /// Paths that an unknown key's "did you mean" already pointed to:
    /// their absence is not reported a second time.
    pub suggested: Vec<String>,
}

impl DocCtx<'_> {
    fn loc(&self, pos: Pos) -> Loc {
        Loc { file: self.file.to_path_buf(), pos }
    }

    fn report(&mut self, pos: Pos, message: String, help: Option<String>) {
        self.diags.push(Diagnostic {
            file: self.file.to_path_buf(),
            line: Some(pos.line),
            column: Some(pos.column),
            message,
            help,
        });
    }

    /// A problem with the value at `path`.
    fn at_value(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        let pos = self.index.value_pos(path);
        self.report(pos, message.into(), Some(help.into()));
    }

    /// A problem with the key at `path` (or a missing one: the nearest
    /// enclosing key).
    fn at_key(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        let pos = self.index.key_pos(path);
        self.report(pos, message.into(), Some(help.into()));
    }

    fn missing(&mut self, path: &str, help: impl Into<String>) {
        if self.suggested.iter().any(|s| s == path) {
            return;
        }
        // `key:` with nothing after it is null, read as absent; say so,
        // since "missing" would be puzzling with the key right there.
        let message = if self.index.get(path).is_some() {
            format!("`{path}` is empty")
        } else {
            format!("missing required field `{path}`")
        };
        self.at_key(path, message, help);
    }

    /// A required value: reports it missing when absent.
    fn required<'v, T>(&mut self, v: &'v Option<T>, path: &str, help: &str) -> Option<&'v T> {
        if v.is_none() {
            self.missing(path, help);
        }
        v.as_ref()
    }

    /// A whole number within `lo..=hi`, as a `u32`.
    fn int(&mut self, v: i64, path: &str, lo: i64, hi: i64, help: &str) -> Option<u32> {
        let hi = hi.min(i64::from(u32::MAX));
        if (lo..=hi).contains(&v) {
            return u32::try_from(v).ok();
        }
        let expected =
            if hi == i64::from(u32::MAX) { format!("at least {lo}") } else { format!("between {lo} and {hi}") };
        let found = if v < 0 && lo >= 0 { format!("{v}, a negative number") } else { v.to_string() };
        self.at_value(path, format!("`{path}` is {found}, but must be {expected}"), help);
        None
    }

    /// An optional whole number within `lo..=hi`, with a default.
    fn int_or(&mut self, v: Option<i64>, path: &str, lo: i64, hi: i64, default: u32, help: &str) -> Option<u32> {
        match v {
            None => Some(default),
            Some(v) => self.int(v, path, lo, hi, help),
        }
    }

    fn duration_or(&mut self, v: &Option<DurationText>, path: &str, default: Duration) -> Option<Duration> {
        match v {
            None => Some(default),
            Some(DurationText(text)) => match parse_duration(text) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.at_value(
                        path,
                        format!("`{path}`: {e}"),
                        format!(
                            "write a duration like `500ms`, `15s`, `5m` or `1h30m` (the default is `{}`)",
                            format_duration(default)
                        ),
                    );
                    None
                }
            },
        }
    }

    /// One of a fixed set of strings, with a did-you-mean.
    fn one_of<'c>(&mut self, v: &str, path: &str, choices: &[&'c str]) -> Option<&'c str> {
        if let Some(c) = choices.iter().find(|c| **c == v) {
            return Some(c);
        }
        let list = quoted_list(choices);
        let help = match did_you_mean(v, choices) {
            Some(s) => format!("did you mean `{s}`? expected one of: {list}"),
            None => format!("expected one of: {list}"),
        };
        self.at_value(path, format!("`{path}` is `{v}`, which is not one of {list}"), help);
        None
    }
}

/// `a`, `b` or `c`.
fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The candidate closest to `input`, if it is close enough to be a typo:
/// case, `_` and `-` are ignored, then a small edit distance is allowed.
pub fn did_you_mean<'c, S: AsRef<str>>(input: &str, candidates: &'c [S]) -> Option<&'c str> {
    fn norm(s: &str) -> String {
        s.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect()
    }
    let n = norm(input);
    let (best, distance) = candidates
        .iter()
        .map(|c| (c.as_ref(), strsim::damerau_levenshtein(&n, &norm(c.as_ref()))))
        .min_by_key(|(_, d)| *d)?;
    let allowed = match n.chars().count() {
        0..=2 => 0,
        3..=4 => 1,
        5..=8 => 2,
        _ => 3,
    };
    (distance <= allowed).then_some(best)
}

/// True for a lowercase DNS label (RFC 1123), the rule for `metadata.name`.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A DNS label close to `s`, to suggest: lowercased, other characters
/// turned into `-`.
fn to_dns_label(s: &str) -> String {
    let mut out: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let t = out.trim_matches('-');
    let t = if t.is_empty() { "app" } else { t };
    t.chars().take(63).collect::<String>().trim_end_matches('-').to_string()
}

/// True for an AWS region code like `us-east-2` or `us-gov-west-1`.
pub fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1].iter().all(|p| !p.is_empty() && p.bytes().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|c| c.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

/// ECS names (clusters, services, containers): up to 255 letters, digits,
/// `_` and `-`.
fn is_ecs_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 255 && s.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

/// ELB target group names: up to 32 letters, digits and `-`, not at
/// either end.
fn is_target_group_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

fn is_subnet_id(s: &str) -> bool {
    s.strip_prefix("subnet-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
    })
}

/// The checks every document shares: `apiVersion` and `metadata.name`.
/// Returns the name when valid.
fn header(
    ctx: &mut DocCtx,
    api_version: &Option<String>,
    metadata: &Option<RawMetadata>,
    kind: &str,
) -> Option<String> {
    match api_version {
        None => ctx.missing("apiVersion", format!("add `apiVersion: {API_VERSION}` as the first line of the document")),
        Some(v) if v != API_VERSION => ctx.at_value(
            "apiVersion",
            format!("unsupported apiVersion `{v}`: this version of ballast reads `{API_VERSION}`"),
            format!("write `apiVersion: {API_VERSION}`"),
        ),
        Some(_) => {}
    }
    let example = if kind == "Service" { "app" } else { "app-capacity" };
    let metadata = ctx.required(
        metadata,
        "metadata",
        &format!("add `metadata:` with a `name:` for this document, e.g. `name: {example}`"),
    )?;
    let name = ctx.required(
        &metadata.name,
        "metadata.name",
        &format!("name the document, e.g. `name: {example}`; names are unique per kind"),
    )?;
    if !is_dns_label(name) {
        ctx.at_value(
            "metadata.name",
            format!("`metadata.name` `{name}` is not a lowercase DNS label"),
            format!(
                "use lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters, e.g. `{}`",
                to_dns_label(name)
            ),
        );
        return None;
    }
    Some(name.clone())
}

/// The region of a document: its own, else the default.
fn region(ctx: &mut DocCtx, raw: &Option<String>, default_region: &str) -> Option<String> {
    match raw {
        Some(r) if is_region(r) => Some(r.clone()),
        Some(r) => {
            ctx.at_value(
                "spec.region",
                format!("`spec.region` `{r}` is not an AWS region code"),
                "write a region code like `us-east-2`",
            );
            None
        }
        None if default_region.is_empty() => {
            ctx.missing("spec.region", "no default region is set: add `region: us-east-2` (your region) to spec");
            None
        }
        None if !is_region(default_region) => {
            ctx.at_key(
                "spec",
                format!(
                    "the default region `{default_region}` is not an AWS region code, and `spec.region` is not set"
                ),
                "add `region: us-east-2` (your region) to spec, or start ballast with a valid default region",
            );
            None
        }
        None => Some(default_region.to_string()),
    }
}

/// A required ECS name (cluster, service, container).
fn ecs_name(ctx: &mut DocCtx, raw: &Option<String>, path: &str, what: &str, example: &str) -> Option<String> {
    let key = path.rsplit('.').next().unwrap_or(path);
    let v = ctx.required(raw, path, &format!("add the {what}'s name, e.g. `{key}: {example}`"))?;
    if let Some(rest) = v.strip_prefix("arn:") {
        let name = rest.rsplit('/').next().unwrap_or(example);
        ctx.at_value(
            path,
            format!("`{path}` is an ARN; ballast expects the {what}'s name"),
            format!("write the name only, e.g. `{name}`"),
        );
        return None;
    }
    if !is_ecs_name(v) {
        ctx.at_value(
            path,
            format!("`{path}` `{v}` is not a valid {what} name"),
            format!("ECS names have 1 to 255 letters, digits, `_` and `-`, e.g. `{example}`"),
        );
        return None;
    }
    Some(v.clone())
}

fn bool_or(v: Option<bool>, default: bool) -> bool {
    v.unwrap_or(default)
}

/// Checks a `Service` document.
pub(crate) fn service(ctx: &mut DocCtx, doc: &RawServiceDocument, default_region: &str) -> Checked {
    let errors_before = ctx.diags.len();
    let mut claims = ServiceClaims::default();
    let name = header(ctx, &doc.api_version, &doc.metadata, "Service");
    if let Some(n) = &name {
        claims.name = Some((n.clone(), ctx.loc(ctx.index.value_pos("metadata.name"))));
    }
    let origin = Origin { file: ctx.file.to_path_buf(), line: ctx.index.value_pos("").line };
    let Some(spec) = ctx.required(&doc.spec, "spec", "add a `spec:` with at least `cluster`, `service` and `tasks`")
    else {
        return Checked::Service(claims, None);
    };

    let region = region(ctx, &spec.region, default_region);
    let cluster = ecs_name(ctx, &spec.cluster, "spec.cluster", "ECS cluster", "appCluster");
    let service_name = ecs_name(ctx, &spec.service, "spec.service", "ECS service", "appService");
    if let (Some(r), Some(c)) = (&region, &cluster) {
        claims.cluster = Some((r.clone(), c.clone()));
    }
    let id = match (&region, &cluster, &service_name) {
        (Some(region), Some(cluster), Some(service)) => {
            let id = ServiceId { region: region.clone(), cluster: cluster.clone(), service: service.clone() };
            claims.id = Some((id.clone(), ctx.loc(ctx.index.value_pos("spec.service"))));
            Some(id)
        }
        _ => None,
    };

    let tasks = tasks(ctx, &spec.tasks);
    claims.min_tasks = tasks.map(|t| t.min());

    let mut bindings = Vec::new();
    let mut bindings_ok = true;
    for (i, raw) in spec.target_groups.iter().flatten().enumerate() {
        let path = join_index("spec.targetGroups", i);
        match binding(ctx, raw, &path, region.as_deref(), tasks, &mut claims) {
            Some(b) => bindings.push(b),
            None => bindings_ok = false,
        }
    }

    let scaling = match &spec.scaling {
        None => Some(None),
        Some(raw) => {
            if let Some(TaskCount::Fixed(n)) = tasks {
                ctx.at_key(
                    "spec.scaling",
                    format!("`spec.scaling` is set, but `spec.tasks.count` fixes the service at {n} tasks"),
                    "scaling needs a range: replace `count` with `min` and `max`, or remove `scaling`",
                );
                None
            } else {
                cpu_scaling(ctx, raw).map(Some)
            }
        }
    };

    let budget = spec.budget.clone().unwrap_or_default();
    let max_deregistrations_per_pass = ctx.int_or(
        budget.max_deregistrations_per_pass,
        "spec.budget.maxDeregistrationsPerPass",
        1,
        i64::MAX,
        1,
        "at least one deregistration per pass is needed to make progress; the default is 1",
    );
    let max_count_change_per_pass = ctx.int_or(
        budget.max_count_change_per_pass,
        "spec.budget.maxCountChangePerPass",
        1,
        i64::MAX,
        4,
        "at least one task per pass is needed to make progress; the default is 4",
    );
    let take_over = spec.take_over.clone().unwrap_or_default();

    let clean = ctx.diags.len() == errors_before && ctx.prior_errors == 0;
    let service = match (name, id, tasks, scaling, max_deregistrations_per_pass, max_count_change_per_pass) {
        (
            Some(name),
            Some(id),
            Some(tasks),
            Some(scaling),
            Some(max_deregistrations_per_pass),
            Some(max_count_change_per_pass),
        ) if clean && bindings_ok => Some(Service {
            name,
            origin,
            id,
            suspend: bool_or(spec.suspend, false),
            tasks,
            target_groups: bindings,
            scaling,
            budget: ServiceBudget { max_deregistrations_per_pass, max_count_change_per_pass },
            take_over: ServiceTakeOver {
                desired_count: bool_or(take_over.desired_count, false),
                load_balancers: bool_or(take_over.load_balancers, false),
            },
        }),
        _ => None,
    };
    Checked::Service(claims, service)
}

fn tasks(ctx: &mut DocCtx, raw: &Option<RawTasks>) -> Option<TaskCount> {
    const HELP: &str =
        "write `tasks: {count: 3}` for a fixed number of tasks, or `tasks: {min: 2, max: 10}` for a range";
    let t = ctx.required(raw, "spec.tasks", HELP)?;
    let count_help = "a task count is a whole number, 0 or more";
    match (t.count, t.min, t.max) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            ctx.at_key(
                "spec.tasks.count",
                "`spec.tasks` sets both `count` and `min`/`max`",
                "keep `count` for a fixed number of tasks, or `min` and `max` for a range, not both",
            );
            None
        }
        (None, None, None) => {
            ctx.at_key("spec.tasks", "`spec.tasks` has neither `count` nor `min` and `max`", HELP);
            None
        }
        (Some(count), None, None) => ctx.int(count, "spec.tasks.count", 0, i64::MAX, count_help).map(TaskCount::Fixed),
        (None, Some(_), None) => {
            ctx.missing("spec.tasks.max", "a range needs both bounds: add `max:` (at least `min`)");
            None
        }
        (None, None, Some(_)) => {
            ctx.missing("spec.tasks.min", "a range needs both bounds: add `min:` (0 or more)");
            None
        }
        (None, Some(min), Some(max)) => {
            let min_v = ctx.int(min, "spec.tasks.min", 0, i64::MAX, count_help);
            let max_v = ctx.int(
                max,
                "spec.tasks.max",
                1,
                i64::MAX,
                "the most tasks the service may run, at least 1 (to stop the service, write `count: 0`)",
            );
            let (min, max) = (min_v?, max_v?);
            if min > max {
                ctx.at_value(
                    "spec.tasks.min",
                    format!("`spec.tasks.min` ({min}) is greater than `spec.tasks.max` ({max}): no task count satisfies both"),
                    "make `min` at most `max`",
                );
                return None;
            }
            Some(TaskCount::Range { min, max })
        }
    }
}

fn binding(
    ctx: &mut DocCtx,
    raw: &RawTargetGroupBinding,
    path: &str,
    region: Option<&str>,
    tasks: Option<TaskCount>,
    claims: &mut ServiceClaims,
) -> Option<TargetGroupBinding> {
    let tg_path = join_key(path, "targetGroup");
    let target_group = ctx
        .required(
            &raw.target_group,
            &tg_path,
            "name the target group, e.g. `targetGroup: frontendTargetGroup`, or give its ARN",
        )
        .cloned()
        .and_then(|tg| target_group_ref(ctx, &tg, &tg_path, region));
    if let (Some(tg), Some(region)) = (&target_group, region) {
        claims.target_groups.push((region.to_string(), tg.name().to_string(), ctx.loc(ctx.index.value_pos(&tg_path))));
    }
    let container_name =
        ecs_name(ctx, &raw.container_name, &join_key(path, "containerName"), "container", "appContainer");
    let port_path = join_key(path, "containerPort");
    let container_port = ctx
        .required(&raw.container_port, &port_path, "add the container port to register, e.g. `containerPort: 80`")
        .copied()
        .and_then(|p| {
            ctx.int(p, &port_path, 1, 65535, "ports are 1 to 65535; use the container port from the task definition")
        })
        .map(|p| p as u16);
    let target_type = match raw.target_type.as_deref() {
        None => Some(TargetType::Instance),
        Some(v) => ctx
            .one_of(v, &join_key(path, "targetType"), &["instance", "ip"])
            .map(|v| if v == "ip" { TargetType::Ip } else { TargetType::Instance }),
    };
    let ownership = match raw.ownership.as_deref() {
        None => Some(Ownership::Shared),
        Some(v) => ctx
            .one_of(v, &join_key(path, "ownership"), &["shared", "exclusive"])
            .map(|v| if v == "exclusive" { Ownership::Exclusive } else { Ownership::Shared }),
    };
    let min_healthy_path = join_key(path, "minHealthy");
    let min_healthy = match raw.min_healthy {
        None => Some(None),
        Some(v) => ctx
            .int(v, &min_healthy_path, 0, i64::MAX, "a number of healthy targets, 0 or more")
            .and_then(|v| match tasks {
                Some(t) if v > t.max() => {
                    ctx.at_value(
                        &min_healthy_path,
                        format!(
                            "`{min_healthy_path}` ({v}) is more than the {} tasks the service may run: no target could ever be deregistered",
                            t.max()
                        ),
                        format!("lower `minHealthy` to at most {}", t.max()),
                    );
                    None
                }
                _ => Some(Some(v)),
            }),
    };
    Some(TargetGroupBinding {
        target_group: TargetGroupId { region: region?.to_string(), target_group: target_group? },
        container_name: container_name?,
        container_port: container_port?,
        target_type: target_type?,
        ownership: ownership?,
        min_healthy: min_healthy?,
    })
}

/// A target group name, or an ARN whose region must be the document's.
fn target_group_ref(ctx: &mut DocCtx, v: &str, path: &str, region: Option<&str>) -> Option<TargetGroupRef> {
    let r = TargetGroupRef::parse(v);
    match &r {
        TargetGroupRef::Name(name) if !is_target_group_name(name) => {
            ctx.at_value(
                path,
                format!("`{path}` `{name}` is not a valid target group name"),
                "target group names have 1 to 32 letters, digits and `-` (not first or last); or give the full ARN",
            );
            None
        }
        TargetGroupRef::Name(_) => Some(r),
        TargetGroupRef::Arn(arn) => {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let resource: Vec<&str> = parts.get(5).map(|r| r.split('/').collect()).unwrap_or_default();
            let well_formed = parts.len() == 6
                && parts[1].starts_with("aws")
                && parts[2] == "elasticloadbalancing"
                && parts[4].len() == 12
                && parts[4].bytes().all(|c| c.is_ascii_digit())
                && resource.len() == 3
                && resource[0] == "targetgroup"
                && is_target_group_name(resource[1])
                && !resource[2].is_empty();
            if !well_formed {
                ctx.at_value(
                    path,
                    format!("`{path}` `{arn}` is not a target group ARN"),
                    "write `arn:aws:elasticloadbalancing:REGION:ACCOUNT:targetgroup/NAME/ID`, or just the target group's name",
                );
                return None;
            }
            if let Some(region) = region
                && parts[3] != region
            {
                ctx.at_value(
                    path,
                    format!("`{path}` is in region `{}`, but this service is in `{region}`", parts[3]),
                    "a service's tasks can only be registered in target groups of its own region; fix `spec.region` or the ARN",
                );
                return None;
            }
            Some(r)
        }
    }
}

fn cpu_scaling(ctx: &mut DocCtx, raw: &RawScaling) -> Option<CpuScaling> {
    let cpu = ctx.required(
        &raw.cpu,
        "spec.scaling.cpu",
        "add `cpu:` with `scaleOut` and `scaleIn` alarms, or remove `scaling`",
    )?;
    let base = "spec.scaling.cpu";
    let target_cpu = match cpu.target_cpu {
        None => Some(None),
        Some(t) if t > 0.0 && t <= 100.0 => Some(Some(t)),
        Some(t) => {
            ctx.at_value(
                "spec.scaling.cpu.targetCpu",
                format!("`spec.scaling.cpu.targetCpu` is {t}, but must be above 0 and at most 100"),
                "a target CPU percent, e.g. `targetCpu: 60`; remove it for step scaling only",
            );
            None
        }
    };
    let stabilization_window =
        ctx.duration_or(&cpu.stabilization_window, "spec.scaling.cpu.stabilizationWindow", Duration::from_secs(300));
    let tolerance = match cpu.tolerance {
        None => Some(0.1),
        Some(t) if (0.0..1.0).contains(&t) => Some(t),
        Some(t) => {
            ctx.at_value(
                "spec.scaling.cpu.tolerance",
                format!("`spec.scaling.cpu.tolerance` is {t}, but must be at least 0 and below 1"),
                "a fraction of the target, e.g. `0.1` for ±10%",
            );
            None
        }
    };
    let max_data_age_path = "spec.scaling.cpu.maxDataAge";
    let max_data_age = ctx.duration_or(&cpu.max_data_age, max_data_age_path, Duration::from_secs(180)).and_then(|d| {
        if d.is_zero() {
            ctx.at_value(
                max_data_age_path,
                "`spec.scaling.cpu.maxDataAge` is zero: every alarm state would be too old to act on",
                "use a duration longer than the alarm periods, e.g. `3m`",
            );
            None
        } else {
            Some(d)
        }
    });
    let missing_data = match cpu.missing_data.as_deref() {
        None => Some(MissingData::Missing),
        Some(v) => ctx
            .one_of(v, "spec.scaling.cpu.missingData", &["missing", "ignore", "breaching", "notBreaching"])
            .and_then(MissingData::from_aws),
    };
    let out_path = join_key(base, "scaleOut");
    let in_path = join_key(base, "scaleIn");
    let scale_out = ctx
        .required(&cpu.scale_out, &out_path, "add `scaleOut:` with at least a `threshold`, e.g. `threshold: 70`")
        .and_then(|r| alarm_rule(ctx, r, &out_path, Duration::from_secs(60)));
    let scale_in = ctx
        .required(&cpu.scale_in, &in_path, "add `scaleIn:` with at least a `threshold`, e.g. `threshold: 30`")
        .and_then(|r| alarm_rule(ctx, r, &in_path, Duration::from_secs(300)));
    if let (Some(o), Some(i)) = (&scale_out, &scale_in)
        && i.threshold >= o.threshold
    {
        ctx.at_value(
            "spec.scaling.cpu.scaleIn.threshold",
            format!(
                "`scaleIn.threshold` ({}) is not below `scaleOut.threshold` ({}): both alarms could fire at once",
                i.threshold, o.threshold
            ),
            "scale in below the scale-out threshold, with a gap, e.g. scaleOut 70 and scaleIn 30",
        );
        return None;
    }
    Some(CpuScaling {
        scale_out: scale_out?,
        scale_in: scale_in?,
        missing_data: missing_data?,
        target_cpu: target_cpu?,
        stabilization_window: stabilization_window?,
        tolerance: tolerance?,
        max_data_age: max_data_age?,
    })
}

/// CloudWatch's limit on evaluation periods × period for minute alarms.
const MAX_EVALUATION_RANGE: Duration = Duration::from_secs(24 * 3600);

fn alarm_rule(ctx: &mut DocCtx, raw: &RawAlarmRule, path: &str, default_cooldown: Duration) -> Option<AlarmRule> {
    let threshold_path = join_key(path, "threshold");
    let threshold = ctx
        .required(&raw.threshold, &threshold_path, "add the CPU percent that triggers this alarm, e.g. `threshold: 70`")
        .copied()
        .and_then(|t| {
            if (0.0..=100.0).contains(&t) {
                Some(t)
            } else {
                ctx.at_value(
                    &threshold_path,
                    format!("`{threshold_path}` is {t}, but must be between 0 and 100"),
                    "a CPU threshold is a percent of the service's reserved CPU, 0 to 100",
                );
                None
            }
        });
    let period_path = join_key(path, "period");
    let period = ctx.duration_or(&raw.period, &period_path, Duration::from_secs(60)).and_then(|p| {
        let ms = p.as_millis();
        if ms == 10_000 || ms == 30_000 || (ms > 0 && ms % 60_000 == 0) {
            Some(p)
        } else {
            ctx.at_value(
                &period_path,
                format!(
                    "`{period_path}` is {}, which CloudWatch does not accept as an alarm period",
                    format_duration(p)
                ),
                "use `10s`, `30s` or a multiple of a minute (`1m`, `2m`, `5m`, ...)",
            );
            None
        }
    });
    let eval_path = join_key(path, "evaluationPeriods");
    let evaluation_periods = ctx.int_or(
        raw.evaluation_periods,
        &eval_path,
        1,
        i64::MAX,
        1,
        "the number of recent periods the alarm looks at, at least 1",
    );
    let dta_path = join_key(path, "datapointsToAlarm");
    let datapoints_to_alarm = match (raw.datapoints_to_alarm, evaluation_periods) {
        (None, e) => e,
        (Some(d), e) => ctx
            .int(d, &dta_path, 1, i64::MAX, "the number of breaching periods that fire the alarm, at least 1")
            .and_then(|d| match e {
                Some(e) if d > e => {
                    ctx.at_value(
                        &dta_path,
                        format!("`{dta_path}` ({d}) is more than `evaluationPeriods` ({e}): the alarm could never fire"),
                        format!("an alarm only counts the periods it evaluates: set `datapointsToAlarm` to at most {e}, or raise `evaluationPeriods`"),
                    );
                    None
                }
                _ => Some(d),
            }),
    };
    if let (Some(p), Some(e)) = (period, evaluation_periods)
        && p.checked_mul(e).is_none_or(|range| range > MAX_EVALUATION_RANGE)
    {
        ctx.at_value(
            &eval_path,
            format!(
                "`{eval_path}` ({e}) × `period` ({}) is more than one day, CloudWatch's limit for an alarm",
                format_duration(p)
            ),
            "lower `evaluationPeriods` or `period`",
        );
        return None;
    }
    let step_path = join_key(path, "step");
    let step = match &raw.step {
        None => Some(Step::Tasks(1)),
        Some(s) => step(ctx, s, &step_path),
    };
    let cooldown = ctx.duration_or(&raw.cooldown, &join_key(path, "cooldown"), default_cooldown);
    Some(AlarmRule {
        threshold: threshold?,
        period: period?,
        evaluation_periods: evaluation_periods?,
        datapoints_to_alarm: datapoints_to_alarm?,
        step: step?,
        cooldown: cooldown?,
    })
}

fn step(ctx: &mut DocCtx, raw: &RawStep, path: &str) -> Option<Step> {
    const HELP: &str = "write a number of tasks like `2`, or a percent of the current count like `\"50%\"`";
    match raw {
        RawStep::Tasks(n) => ctx.int(*n, path, 1, i64::MAX, HELP).map(Step::Tasks),
        RawStep::Text(text) => {
            let t = text.trim();
            if let Some(p) = t.strip_suffix('%') {
                match p.trim().parse::<i64>() {
                    Ok(p) if p >= 1 && p <= i64::from(u32::MAX) => Some(Step::Percent(p as u32)),
                    Ok(p) => {
                        ctx.at_value(path, format!("`{path}` is {p}%, but a percent step must be at least 1%"), HELP);
                        None
                    }
                    Err(_) => {
                        ctx.at_value(path, format!("`{path}` `{text}` is not a whole percent"), HELP);
                        None
                    }
                }
            } else if let Ok(n) = t.parse::<i64>() {
                ctx.int(n, path, 1, i64::MAX, HELP).map(Step::Tasks)
            } else {
                ctx.at_value(path, format!("`{path}` `{text}` is neither a number of tasks nor a percent"), HELP);
                None
            }
        }
    }
}

/// Checks a `Capacity` document.
pub(crate) fn capacity(ctx: &mut DocCtx, doc: &RawCapacityDocument, default_region: &str) -> Checked {
    let errors_before = ctx.diags.len();
    let mut claims = CapacityClaims::default();
    let name = header(ctx, &doc.api_version, &doc.metadata, "Capacity");
    if let Some(n) = &name {
        claims.name = Some((n.clone(), ctx.loc(ctx.index.value_pos("metadata.name"))));
    }
    let origin = Origin { file: ctx.file.to_path_buf(), line: ctx.index.value_pos("").line };
    let Some(spec) = ctx.required(
        &doc.spec,
        "spec",
        "add a `spec:` with `cluster`, `autoScalingGroup`, `minInstances`, `maxInstances`, `tasksPerInstance` and `zones`",
    ) else {
        return Checked::Capacity(claims, None);
    };
    let region = region(ctx, &spec.region, default_region);
    let cluster = ecs_name(ctx, &spec.cluster, "spec.cluster", "ECS cluster", "appCluster");
    if let (Some(r), Some(c)) = (&region, &cluster) {
        claims.cluster = Some((r.clone(), c.clone(), ctx.loc(ctx.index.value_pos("spec.cluster"))));
    }
    let group_path = "spec.autoScalingGroup";
    let group = ctx
        .required(
            &spec.auto_scaling_group,
            group_path,
            "add the Auto Scaling group's name, e.g. `autoScalingGroup: ecsAutoScalingGroup`",
        )
        .cloned()
        .and_then(|g| {
            if g.starts_with("arn:") {
                let name = g.rsplit("autoScalingGroupName/").next().unwrap_or("ecsAutoScalingGroup");
                ctx.at_value(
                    group_path,
                    format!("`{group_path}` is an ARN; ballast expects the group's name"),
                    format!("write the name only, e.g. `{name}`"),
                );
                None
            } else if g.is_empty() || g.len() > 255 {
                ctx.at_value(
                    group_path,
                    format!("`{group_path}` must be 1 to 255 characters"),
                    "write the Auto Scaling group's name",
                );
                None
            } else {
                Some(g)
            }
        });
    if let (Some(region), Some(name)) = (&region, &group) {
        let id = GroupId { region: region.clone(), name: name.clone() };
        claims.group = Some((id, ctx.loc(ctx.index.value_pos(group_path))));
    }

    let count_help = "a number of instances, 0 or more";
    let min_instances = ctx
        .required(&spec.min_instances, "spec.minInstances", "add the fewest instances to keep, e.g. `minInstances: 1`")
        .copied()
        .and_then(|v| ctx.int(v, "spec.minInstances", 0, i64::MAX, count_help));
    let max_instances = ctx
        .required(&spec.max_instances, "spec.maxInstances", "add the most instances allowed, e.g. `maxInstances: 10`")
        .copied()
        .and_then(|v| ctx.int(v, "spec.maxInstances", 0, i64::MAX, count_help));
    let bounds_ok = match (min_instances, max_instances) {
        (Some(min), Some(max)) if min > max => {
            ctx.at_value(
                "spec.minInstances",
                format!("`spec.minInstances` ({min}) is greater than `spec.maxInstances` ({max}): no instance count satisfies both"),
                "make `minInstances` at most `maxInstances`",
            );
            false
        }
        _ => true,
    };
    if let Some(max) = max_instances {
        claims.max_instances = Some((max, ctx.loc(ctx.index.value_pos("spec.maxInstances"))));
    }

    let tasks_per_instance = match (spec.tasks_per_instance, &spec.instance_resources) {
        (Some(_), Some(_)) => {
            ctx.at_key(
                "spec.instanceResources",
                "`spec` sets both `tasksPerInstance` and `instanceResources`",
                "keep `tasksPerInstance` for a fixed number, or `instanceResources` to compute it from the task size, not both",
            );
            None
        }
        (None, None) => {
            ctx.at_key(
                "spec",
                "`spec` has neither `tasksPerInstance` nor `instanceResources`: ballast cannot tell how many instances the tasks need",
                "add `tasksPerInstance: 1` (one task per instance, as with static host ports), or `instanceResources: {cpu: 1024, memory: 983}`",
            );
            None
        }
        (Some(n), None) => {
            let n = ctx.int(n, "spec.tasksPerInstance", 1, i64::MAX, "at least one task must fit on an instance");
            claims.tasks_per_instance = n;
            n.map(TasksPerInstance::Fixed)
        }
        (None, Some(r)) => {
            let help = "ECS counts 1024 CPU units per vCPU, and memory in MiB";
            let cpu = ctx
                .required(
                    &r.cpu,
                    "spec.instanceResources.cpu",
                    "add the CPU units one instance registers, e.g. `cpu: 1024`",
                )
                .copied()
                .and_then(|v| ctx.int(v, "spec.instanceResources.cpu", 1, i64::MAX, help));
            let memory = ctx
                .required(
                    &r.memory,
                    "spec.instanceResources.memory",
                    "add the memory (MiB) one instance registers, e.g. `memory: 983`",
                )
                .copied()
                .and_then(|v| ctx.int(v, "spec.instanceResources.memory", 1, i64::MAX, help));
            cpu.zip(memory).map(|(cpu, memory)| TasksPerInstance::Resources { cpu, memory })
        }
    };
    let headroom = ctx.int_or(spec.headroom, "spec.headroom", 0, i64::MAX, 0, "spare instances, 0 or more");
    let scale_in_cooldown = ctx.duration_or(&spec.scale_in_cooldown, "spec.scaleInCooldown", Duration::from_secs(300));
    let max_change_per_pass = ctx.int_or(
        spec.max_change_per_pass,
        "spec.maxChangePerPass",
        1,
        i64::MAX,
        2,
        "at least one instance per pass is needed to make progress; the default is 2",
    );
    let zones = zones(ctx, &spec.zones, max_instances);
    let take_over = spec.take_over.clone().unwrap_or_default();

    let clean = ctx.diags.len() == errors_before && ctx.prior_errors == 0;
    let capacity = (|| {
        if !clean || !bounds_ok {
            return None;
        }
        Some(Capacity {
            name: name?,
            origin,
            group: claims.group.as_ref()?.0.clone(),
            cluster: cluster?,
            suspend: bool_or(spec.suspend, false),
            min_instances: min_instances?,
            max_instances: max_instances?,
            tasks_per_instance: tasks_per_instance?,
            headroom: headroom?,
            scale_in_cooldown: scale_in_cooldown?,
            zones: zones?,
            max_change_per_pass: max_change_per_pass?,
            take_over_managed_scaling: bool_or(take_over.managed_scaling, false),
        })
    })();
    Checked::Capacity(claims, capacity)
}

fn zones(ctx: &mut DocCtx, raw: &Option<Vec<RawZone>>, max_instances: Option<u32>) -> Option<Vec<Zone>> {
    let raw = ctx.required(
        raw,
        "spec.zones",
        "list the group's subnets, e.g. `zones: [{subnet: subnet-0a1b2c3d4e5f60001, mode: alwaysOn}]`",
    )?;
    if raw.is_empty() {
        ctx.at_value(
            "spec.zones",
            "`spec.zones` is empty: the group needs at least one subnet to start instances in",
            "add a zone with `subnet:` and `mode: alwaysOn`",
        );
        return None;
    }
    let mut out = Vec::new();
    let mut ok = true;
    let mut seen: Vec<(&str, String)> = Vec::new();
    for (i, z) in raw.iter().enumerate() {
        let path = join_index("spec.zones", i);
        let subnet_path = join_key(&path, "subnet");
        let subnet = ctx
            .required(&z.subnet, &subnet_path, "add the subnet id, e.g. `subnet: subnet-0a1b2c3d4e5f60001`")
            .cloned()
            .and_then(|s| {
                if !is_subnet_id(&s) {
                    ctx.at_value(
                        &subnet_path,
                        format!("`{subnet_path}` `{s}` is not a subnet id"),
                        "subnet ids are `subnet-` and 8 or 17 lowercase hex digits, e.g. `subnet-0a1b2c3d4e5f60001`",
                    );
                    None
                } else if let Some((_, first)) = seen.iter().find(|(id, _)| *id == s) {
                    ctx.at_value(
                        &subnet_path,
                        format!("subnet `{s}` is listed twice, first at `{first}`"),
                        "list each subnet once",
                    );
                    None
                } else {
                    Some(s)
                }
            });
        if let Some(s) = &z.subnet {
            seen.push((s.as_str(), path.clone()));
        }
        let zone = match &z.zone {
            Some(name) if name.trim().is_empty() => {
                ctx.at_value(
                    &join_key(&path, "zone"),
                    format!("`{path}.zone` is empty"),
                    "write the availability zone, e.g. `us-east-2a`, or remove the key",
                );
                None
            }
            other => Some(other.clone()),
        };
        let above_path = join_key(&path, "whenInstancesAbove");
        let mode = match z.mode.as_deref().map(|m| ctx.one_of(m, &join_key(&path, "mode"), &["alwaysOn", "onDemand"])) {
            Some(None) => None,
            None | Some(Some("alwaysOn")) => {
                if z.when_instances_above.is_some() {
                    ctx.at_key(
                        &above_path,
                        format!("`{above_path}` is set on an `alwaysOn` zone"),
                        "only `onDemand` zones have a threshold: add `mode: onDemand`, or remove `whenInstancesAbove`",
                    );
                    None
                } else {
                    Some(ZoneMode::AlwaysOn)
                }
            }
            Some(Some(_)) => match z.when_instances_above {
                None => {
                    ctx.missing(
                        &above_path,
                        "an `onDemand` zone needs the instance count above which it is used, e.g. `whenInstancesAbove: 2`",
                    );
                    None
                }
                Some(v) => ctx
                    .int(v, &above_path, 0, i64::MAX, "a number of instances, 0 or more")
                    .and_then(|above| match max_instances {
                        Some(max) if above >= max => {
                            ctx.at_value(
                                &above_path,
                                format!(
                                    "`{above_path}` ({above}) is not below `spec.maxInstances` ({max}): this zone would never be used"
                                ),
                                format!("lower `whenInstancesAbove` below {max}, or raise `maxInstances`"),
                            );
                            None
                        }
                        _ => Some(ZoneMode::OnDemand { above }),
                    }),
            },
        };
        match (subnet, zone, mode) {
            (Some(subnet), Some(zone), Some(mode)) => out.push(Zone { subnet, zone, mode }),
            _ => ok = false,
        }
    }
    if ok && !out.iter().any(|z| z.mode == ZoneMode::AlwaysOn) {
        ctx.at_key(
            "spec.zones",
            "no zone in `spec.zones` is `alwaysOn`: the group would have no subnet while few instances are needed",
            "make at least one zone `mode: alwaysOn` (the default)",
        );
        return None;
    }
    ok.then_some(out)
}

fn diag(loc: &Loc, message: String, help: String) -> Diagnostic {
    Diagnostic {
        file: loc.file.clone(),
        line: Some(loc.pos.line),
        column: Some(loc.pos.column),
        message,
        help: Some(help),
    }
}

/// The rules between documents: unique names, one owner per service,
/// target group, Auto Scaling group and cluster, and references that
/// lead somewhere. `complete` is false when some document could not be
/// read at all: then "nothing refers to this" is not reported, because
/// the missing reference may be in the unreadable document.
pub(crate) fn cross_check(docs: &[Checked], complete: bool, diags: &mut Vec<Diagnostic>) {
    let services: Vec<&ServiceClaims> = docs
        .iter()
        .filter_map(|d| match d {
            Checked::Service(c, _) => Some(c),
            _ => None,
        })
        .collect();
    let capacities: Vec<&CapacityClaims> = docs
        .iter()
        .filter_map(|d| match d {
            Checked::Capacity(c, _) => Some(c),
            _ => None,
        })
        .collect();

    first_wins(
        services.iter().filter_map(|s| s.name.as_ref()),
        |name, first| {
            (
                format!("a Service named `{name}` is already declared at {first}"),
                "`metadata.name` must be unique among Service documents: rename one of them".to_string(),
            )
        },
        diags,
    );
    first_wins(
        capacities.iter().filter_map(|c| c.name.as_ref()),
        |name, first| {
            (
                format!("a Capacity named `{name}` is already declared at {first}"),
                "`metadata.name` must be unique among Capacity documents: rename one of them".to_string(),
            )
        },
        diags,
    );
    first_wins(
        services.iter().filter_map(|s| s.id.as_ref()),
        |id: &ServiceId, first| {
            (
                format!(
                    "service `{}` in cluster `{}` ({}) is already declared at {first}",
                    id.service, id.cluster, id.region
                ),
                "two documents managing one ECS service would fight over it: keep one document for it".to_string(),
            )
        },
        diags,
    );
    let bindings: Vec<((String, String), Loc)> = services
        .iter()
        .flat_map(|s| &s.target_groups)
        .map(|(region, name, loc)| ((region.clone(), name.clone()), loc.clone()))
        .collect();
    first_wins(
        bindings.iter(),
        |(region, name), first| {
            (
                format!("target group `{name}` ({region}) is already bound at {first}"),
                "a target group can be bound once: two bindings would register and deregister the same targets; remove one".to_string(),
            )
        },
        diags,
    );
    first_wins(
        capacities.iter().filter_map(|c| c.group.as_ref()),
        |g: &GroupId, first| {
            (
                format!("Auto Scaling group `{}` ({}) is already managed by the Capacity at {first}", g.name, g.region),
                "two documents sizing one group would fight over it: keep one Capacity for it".to_string(),
            )
        },
        diags,
    );
    let clusters: Vec<((String, String), Loc)> = capacities
        .iter()
        .filter_map(|c| c.cluster.as_ref())
        .map(|(r, c, l)| ((r.clone(), c.clone()), l.clone()))
        .collect();
    first_wins(
        clusters.iter(),
        |(region, cluster), first| {
            (
                format!("cluster `{cluster}` ({region}) already has a Capacity at {first}"),
                "one Capacity per cluster: ballast sizes the cluster's instances from all its services' tasks"
                    .to_string(),
            )
        },
        diags,
    );

    for cap in &capacities {
        let Some((region, cluster, loc)) = &cap.cluster else {
            continue;
        };
        let in_cluster: Vec<&&ServiceClaims> =
            services.iter().filter(|s| s.cluster.as_ref().is_some_and(|(r, c)| r == region && c == cluster)).collect();
        if in_cluster.is_empty() {
            // A service whose region or cluster is itself wrong may be the
            // one meant; its own message comes first.
            if !complete || services.iter().any(|s| s.cluster.is_none()) {
                continue;
            }
            let known: Vec<&str> = services
                .iter()
                .filter_map(|s| s.cluster.as_ref())
                .filter(|(r, _)| r == region)
                .map(|(_, c)| c.as_str())
                .collect();
            let other_region =
                services.iter().filter_map(|s| s.cluster.as_ref()).find(|(r, c)| c == cluster && r != region);
            let help = if let Some(s) = did_you_mean(cluster, &known) {
                format!("did you mean `{s}`? a Capacity sizes the instances of a cluster that a Service document uses")
            } else if let Some((r, _)) = other_region {
                format!("a Service uses `{cluster}` in `{r}`: set the same `region` in both documents")
            } else {
                format!("add a Service document with `cluster: {cluster}` (region {region}), or fix the cluster name")
            };
            diags.push(diag(
                loc,
                format!("no Service document runs in cluster `{cluster}` ({region}): this Capacity would size instances for nothing"),
                help,
            ));
            continue;
        }
        // Tasks that must run, against tasks that can fit at most.
        if let (Some((max, max_loc)), Some(per)) = (&cap.max_instances, cap.tasks_per_instance) {
            let needed: Option<u64> = in_cluster.iter().map(|s| s.min_tasks.map(u64::from)).sum();
            let fit = u64::from(*max) * u64::from(per);
            if let Some(needed) = needed
                && needed > fit
            {
                diags.push(diag(
                    max_loc,
                    format!(
                        "the services in cluster `{cluster}` need at least {needed} tasks, but at most {fit} fit on {max} instances of {per} tasks each"
                    ),
                    "raise `maxInstances` (or `tasksPerInstance`), or lower the services' `tasks.min`/`count`".to_string(),
                ));
            }
        }
    }
}

/// Reports every repeat of a key after its first occurrence.
fn first_wins<'a, K: PartialEq + 'a>(
    items: impl Iterator<Item = &'a (K, Loc)>,
    message: impl Fn(&K, &Loc) -> (String, String),
    diags: &mut Vec<Diagnostic>,
) {
    let mut seen: Vec<&'a (K, Loc)> = Vec::new();
    for item in items {
        if let Some(first) = seen.iter().find(|s| s.0 == item.0) {
            let (m, h) = message(&item.0, &first.1);
            diags.push(diag(&item.1, m, h));
        } else {
            seen.push(item);
        }
    }
}
