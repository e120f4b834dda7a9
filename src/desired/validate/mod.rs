//! Checks raw documents and turns them into the validated types.
//!
//! Every rule reports into a list instead of returning early, so one run
//! shows every mistake of every file. A document with any mistake yields
//! no validated value, but still yields its *claims* (the names, services,
//! target groups and groups it declares) so that conflicts between
//! documents are found in the same run.
//!
//! This module holds what every document's checks share (the context
//! they report into, the header, names, regions, typed values); each kind
//! has its own file ([`service`], [`capacity`]) and the rules between
//! documents are in [`cross`].

mod capacity;
mod cross;
mod service;

pub(crate) use capacity::capacity;
pub(crate) use cross::cross_check;
pub(crate) use service::service;

use super::API_VERSION;
use super::diagnostic::Diagnostic;
use super::duration::{format_duration, parse_duration};
use super::positions::{DocIndex, NodeKind, Pos};
use super::raw::{DurationText, RawMetadata};
use super::{Capacity, GroupId, Service, ServiceId};
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

/// Something that at most one document may declare; two documents that
/// declare the same one conflict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unique {
    /// A document's `metadata.name`, unique per kind.
    Name { kind: &'static str, name: String },
    /// An ECS service: two documents would fight over its count.
    Service(ServiceId),
    /// A target group, by region and name (however it was written).
    TargetGroup { region: String, name: String },
    /// An Auto Scaling group: two documents would fight over its size.
    Group(GroupId),
    /// A cluster's Capacity: one per cluster.
    CapacityOf { region: String, cluster: String },
}

/// What a `Service` document declares, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServiceClaims {
    /// With where each is declared, in document order.
    pub unique: Vec<(Unique, Loc)>,
    /// Region and cluster, known even when the service name is not.
    pub cluster: Option<(String, String)>,
    /// The fewest tasks the service may run, when known.
    pub min_tasks: Option<u32>,
}

/// What a `Capacity` document declares, as far as it could be read.
#[derive(Debug, Clone, Default)]
pub(crate) struct CapacityClaims {
    /// With where each is declared, in document order.
    pub unique: Vec<(Unique, Loc)>,
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
    /// Where the value at `path` is, for a claim another document may
    /// conflict with.
    fn loc(&self, path: &str) -> Loc {
        Loc { file: self.file.to_path_buf(), pos: self.index.value_pos(path) }
    }

    /// A problem with the value at `path`.
    pub(crate) fn at_value(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::at(self.file, self.index.value_pos(path), message, help));
    }

    /// A problem with the key at `path` (or a missing one: the nearest
    /// enclosing key).
    pub(crate) fn at_key(&mut self, path: &str, message: impl Into<String>, help: impl Into<String>) {
        self.diags.push(Diagnostic::at(self.file, self.index.key_pos(path), message, help));
    }

    pub(crate) fn missing(&mut self, path: &str, help: impl Into<String>) {
        if self.suggested.iter().any(|s| s == path) {
            return;
        }
        // `key:` with nothing after it is null, read as absent; say so,
        // since "missing" would be puzzling with the key right there. (A
        // list or mapping where a word belongs is not empty: only the
        // unknown-kind check asks about a value serde has not typed.)
        let present = self.index.get(path).is_some_and(|e| !matches!(e.kind, NodeKind::Mapping | NodeKind::Sequence));
        let message = if present { format!("`{path}` is empty") } else { format!("missing required field `{path}`") };
        self.at_key(path, message, help);
    }

    /// A required value: reports it missing when absent.
    pub(crate) fn required<'v, T>(&mut self, v: &'v Option<T>, path: &str, help: &str) -> Option<&'v T> {
        if v.is_none() {
            self.missing(path, help);
        }
        v.as_ref()
    }

    /// A whole number within `lo..=hi`, as a `u32`.
    pub(crate) fn int(&mut self, v: i64, path: &str, lo: i64, hi: i64, help: &str) -> Option<u32> {
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
    pub(crate) fn int_or(
        &mut self,
        v: Option<i64>,
        path: &str,
        lo: i64,
        hi: i64,
        default: u32,
        help: &str,
    ) -> Option<u32> {
        match v {
            None => Some(default),
            Some(v) => self.int(v, path, lo, hi, help),
        }
    }

    pub(crate) fn duration_or(&mut self, v: &Option<DurationText>, path: &str, default: Duration) -> Option<Duration> {
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
    pub(crate) fn one_of<'c>(&mut self, v: &str, path: &str, choices: &[&'c str]) -> Option<&'c str> {
        if let Some(c) = choices.iter().find(|c| **c == v) {
            return Some(c);
        }
        let list = quoted_list(choices);
        let d = Diagnostic::at(
            self.file,
            self.index.value_pos(path),
            format!("`{path}` is `{v}`, which is not one of {list}"),
            format!("expected one of: {list}"),
        );
        self.diags.push(d.did_you_mean(did_you_mean(v, choices)));
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

/// The `apiVersion` rule. Also applied to a document whose `kind` is
/// unknown, of which nothing else is checked.
pub(crate) fn check_api_version(ctx: &mut DocCtx, found: Option<&str>) {
    match found {
        None => ctx.missing("apiVersion", format!("add `apiVersion: {API_VERSION}` as the first line of the document")),
        Some(API_VERSION) => {}
        Some(v) => ctx.at_value(
            "apiVersion",
            format!("unsupported apiVersion `{v}`: this version of ballast reads `{API_VERSION}`"),
            format!("write `apiVersion: {API_VERSION}`"),
        ),
    }
}

/// The checks every document shares: `apiVersion` and `metadata.name`.
/// Returns the name when valid, and claims it.
fn header(
    ctx: &mut DocCtx,
    api_version: &Option<String>,
    metadata: &Option<RawMetadata>,
    kind: &'static str,
    unique: &mut Vec<(Unique, Loc)>,
) -> Option<String> {
    check_api_version(ctx, api_version.as_deref());
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
    unique.push((Unique::Name { kind, name: name.clone() }, ctx.loc("metadata.name")));
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
