//! Reading a scenario file: YAML, the scenario's rules, and the
//! desired-state directories it runs on, with every problem located.
//!
//! The same machinery as the desired state ([`crate::desired::load`]):
//! a position index for `file:line:col`, serde_yaml with `serde_ignored`
//! for unknown keys, and [`DocCtx`]'s checks, so a scenario's mistakes
//! read like a desired-state file's. Names in a scenario are checked
//! against the desired state in force at the event's time; the desired
//! states themselves are loaded here too, so an invalid one is reported
//! with the scenario's problems, before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod aws;
mod curves;
mod events;

use crate::desired::diagnostic::Diagnostic;
use crate::desired::duration::{format_duration, parse_duration};
use crate::desired::positions::{self, DocIndex, NodeKind, Pos, join_index, join_key};
use crate::desired::raw::DurationText;
use crate::desired::validate::{self, DocCtx, did_you_mean, is_dns_label};
use crate::desired::{API_VERSION, Capacity, Service};
use crate::simulate::raw::{self, RawAws, RawEvent, RawLoad, RawPoint, RawScenarioDocument};
use crate::simulate::scenario::{Action, AwsSettings, Curve, DesiredStateDir, Event, Load, Scenario, Shape};

/// The kind a scenario document carries.
pub const KIND: &str = "Scenario";

/// Default pass interval: `ballast run`'s.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);

/// Default seed.
pub const DEFAULT_SEED: u64 = 1;

/// Event occurrences a scenario may have in all (`every` expanded): a
/// report lists each.
pub const MAX_OCCURRENCES: usize = 10_000;

/// Points a repeating curve may unroll to over the run.
pub const MAX_CURVE_POINTS: u128 = 100_000;

/// Every problem of a scenario and of the desired states it runs on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    /// Sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.diagnostics {
            writeln!(f, "{d}")?;
        }
        let n = self.diagnostics.len();
        write!(f, "{n} problem{} in the scenario or its desired state", if n == 1 { "" } else { "s" })
    }
}

/// Loads and validates the scenario in `file`, starting from the
/// desired state in `dir` (documents without a region get
/// `default_region`).
pub fn load_scenario(file: &Path, dir: &Path, default_region: &str) -> Result<Scenario, ScenarioError> {
    let text = match std::fs::read(file) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                return Err(one(Diagnostic::at(
                    file,
                    None,
                    "the scenario file is not UTF-8 text, so it cannot be YAML",
                    "give `ballast simulate` a scenario YAML file (`kind: Scenario`)",
                )));
            }
        },
        Err(e) => {
            let (message, help) = if file.is_dir() {
                (
                    "this is a directory, not a scenario file".to_string(),
                    "the scenario file comes first, the desired-state directory second: `ballast simulate SCENARIO [DIR]`",
                )
            } else if e.kind() == std::io::ErrorKind::NotFound {
                ("the scenario file does not exist".to_string(), "check the path given to `ballast simulate`")
            } else {
                (format!("cannot read the scenario file: {e}"), "check the file's permissions")
            };
            return Err(one(Diagnostic::at(file, None, message, help)));
        }
    };
    load_scenario_str(file, &text, dir, default_region)
}

/// Loads a scenario from its text, as if read from `file` (desired-state
/// paths in it are relative to `file`'s directory).
pub fn load_scenario_str(file: &Path, text: &str, dir: &Path, default_region: &str) -> Result<Scenario, ScenarioError> {
    let mut diags = Vec::new();
    let mut dirs = DesiredStates { default_region, loaded: BTreeMap::new() };
    let initial = dirs.load(dir, &mut diags);
    let scenario = read(file, text, initial.as_ref(), &mut dirs, &mut diags);
    if !diags.is_empty() {
        diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        diags.dedup();
        return Err(ScenarioError { diagnostics: diags });
    }
    scenario.ok_or_else(|| {
        one(Diagnostic::at(
            file,
            None,
            "internal error: the scenario failed validation without a message",
            "please report this as a ballast bug",
        ))
    })
}

fn one(d: Diagnostic) -> ScenarioError {
    ScenarioError { diagnostics: vec![d] }
}

/// The desired-state directories read so far, each once.
struct DesiredStates<'r> {
    default_region: &'r str,
    loaded: BTreeMap<PathBuf, Option<DesiredStateDir>>,
}

impl DesiredStates<'_> {
    /// The directory's desired state, or `None` (its problems reported).
    fn load(&mut self, dir: &Path, diags: &mut Vec<Diagnostic>) -> Option<DesiredStateDir> {
        if let Some(d) = self.loaded.get(dir) {
            return d.clone();
        }
        let d = match crate::desired::load_dir(dir, self.default_region) {
            Ok(desired) => Some(DesiredStateDir { dir: dir.to_path_buf(), desired }),
            Err(e) => {
                diags.extend(e.diagnostics);
                None
            }
        };
        self.loaded.insert(dir.to_path_buf(), d.clone());
        d
    }
}

/// Finds the one scenario document of the file and checks it.
fn read(
    file: &Path,
    text: &str,
    initial: Option<&DesiredStateDir>,
    dirs: &mut DesiredStates,
    diags: &mut Vec<Diagnostic>,
) -> Option<Scenario> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let index = match positions::index_str(text) {
        Ok(index) => index,
        Err(e) => {
            diags.push(Diagnostic::at(
                file,
                e.pos,
                format!("YAML syntax error: {}", e.message),
                "fix the YAML here or just before: indentation, a missing `:` or a quote or bracket left open",
            ));
            return None;
        }
    };
    let mut found: Option<(usize, serde_yaml::Deserializer)> = None;
    for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let Some(doc) = index.docs.get(i) else { break };
        if doc.root().is_none_or(|r| r.kind.is_null()) {
            continue;
        }
        if found.is_some() {
            diags.push(Diagnostic::at(
                file,
                doc.value_pos(""),
                "a second document: a scenario file holds one `kind: Scenario` document",
                "put each scenario in a file of its own",
            ));
            break;
        }
        found = Some((i, de));
    }
    let Some((i, de)) = found else {
        diags.push(Diagnostic::at(
            file,
            None,
            "the scenario file has no document",
            format!("start it with `apiVersion: {API_VERSION}` and `kind: {KIND}`; see docs/simulation.md"),
        ));
        return None;
    };
    let doc = &index.docs[i];
    if doc.root().is_some_and(|r| r.kind != NodeKind::Mapping) {
        diags.push(Diagnostic::at(
            file,
            doc.value_pos(""),
            "this document is not a mapping: a scenario has `apiVersion`, `kind`, `metadata` and `spec`",
            "see docs/simulation.md for the scenario format",
        ));
        return None;
    }
    crate::desired::load::report_duplicate_keys(file, doc, diags);
    let prior = doc.duplicate_keys().len();
    if !kind_is_scenario(file, doc, diags) {
        return None;
    }
    let mut unknown = Vec::new();
    let result: Result<RawScenarioDocument, _> =
        serde_ignored::deserialize(de, |path| unknown.push(crate::desired::load::ignored_path(&path)));
    let mut suggested = Vec::new();
    for path in &unknown {
        let (d, suggestion) = unknown_key(file, doc, path);
        diags.push(d);
        suggested.extend(suggestion);
    }
    let raw = match result {
        Ok(raw) => raw,
        Err(e) => {
            diags.push(type_error(file, &e));
            return None;
        }
    };
    let mut ctx = DocCtx { file, index: doc, diags, prior_errors: prior + unknown.len(), suggested };
    let errors_before = ctx.diags.len();
    let scenario = Checker { ctx: &mut ctx, dirs, initial }.scenario(&raw);
    let clean = ctx.diags.len() == errors_before && ctx.prior_errors == 0;
    scenario.filter(|_| clean)
}

/// Whether the document says `kind: Scenario`; reports it when not.
fn kind_is_scenario(file: &Path, doc: &DocIndex, diags: &mut Vec<Diagnostic>) -> bool {
    let found = doc.scalar("kind");
    let d = match found {
        Some(KIND) => return true,
        Some(k @ ("Service" | "Capacity")) => Diagnostic::at(
            file,
            doc.value_pos("kind"),
            format!("this is a desired-state `{k}` document, not a scenario"),
            "the scenario file comes first, the desired-state directory second: `ballast simulate SCENARIO [DIR]`",
        ),
        Some(k) => Diagnostic::at(
            file,
            doc.value_pos("kind"),
            format!("unknown kind `{k}`: a scenario file holds a `{KIND}` document"),
            format!("write `kind: {KIND}`"),
        )
        .did_you_mean(did_you_mean(k, &[KIND])),
        None => Diagnostic::at(
            file,
            doc.key_pos("kind"),
            if doc.get("kind").is_some() { "`kind` is empty" } else { "missing required field `kind`" },
            format!("add `kind: {KIND}`"),
        ),
    };
    diags.push(d);
    false
}

/// An unknown key, with a did-you-mean, and the path it suggests.
fn unknown_key(file: &Path, doc: &DocIndex, path: &str) -> (Diagnostic, Option<String>) {
    let parent = positions::parent_path(path);
    let key = path[parent.len()..].trim_start_matches('.');
    crate::desired::load::unknown_key_among(file, doc, path, raw::known_keys(parent), &raw::paths_with_key(key))
}

/// A serde error (a value of the wrong type) at serde_yaml's position.
fn type_error(file: &Path, e: &serde_yaml::Error) -> Diagnostic {
    let full = e.to_string();
    let without_pos = full.rfind(" at line ").map_or(full.as_str(), |i| &full[..i]);
    let message = match without_pos.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => format!("`{p}`: {}", crate::desired::load::humanize(m)),
        _ => crate::desired::load::humanize(without_pos),
    };
    let pos = e.location().map(|l| Pos { line: l.line(), column: l.column() });
    Diagnostic::at(file, pos, message, "see docs/simulation.md (Scenarios) for the type of each field")
}

/// The checks of one scenario document.
struct Checker<'c, 'a, 'r> {
    ctx: &'c mut DocCtx<'a>,
    dirs: &'c mut DesiredStates<'r>,
    initial: Option<&'c DesiredStateDir>,
}

/// An event's time and action as read, before names are resolved.
struct Timed<'e> {
    path: String,
    at: Duration,
    every: Option<Duration>,
    raw: &'e RawEvent,
    /// The action's key, when the event has exactly one.
    action: Option<&'static str>,
}

impl Checker<'_, '_, '_> {
    fn scenario(&mut self, raw: &RawScenarioDocument) -> Option<Scenario> {
        validate::check_api_version(self.ctx, raw.api_version.as_deref());
        let name = self.name(raw);
        let spec = self.ctx.required(
            &raw.spec,
            "spec",
            "add a `spec:` with at least `duration`, e.g. `duration: 1h`, and the `load` and `events` to play",
        )?;
        let duration = self.positive(&spec.duration, "spec.duration", "write how long the run lasts, e.g. `1h`");
        let seed = match spec.seed {
            None => Some(DEFAULT_SEED),
            Some(v) if v >= 0 => Some(v as u64),
            Some(v) => {
                self.ctx.at_value(
                    "spec.seed",
                    format!("`spec.seed` is {v}, a negative number"),
                    "a seed is a whole number, 0 or more, e.g. `seed: 7`",
                );
                None
            }
        };
        let interval = self.ctx.duration_or(&spec.interval, "spec.interval", DEFAULT_INTERVAL).filter(|d| {
            let ok = *d >= Duration::from_secs(1);
            if !ok {
                self.ctx.at_value(
                    "spec.interval",
                    format!("`spec.interval` is {}, below a second", format_duration(*d)),
                    "the controller's interval is at least `1s` (the daemon's default is `15s`)",
                );
            }
            ok
        });
        let load = self.loads(spec.load.as_deref().unwrap_or_default(), duration);
        let events = self.events(spec.events.as_deref().unwrap_or_default(), duration);
        let aws = self.aws(spec.aws.as_ref());
        Some(Scenario {
            name: name?,
            file: self.ctx.file.to_path_buf(),
            duration: duration?,
            seed: seed?,
            interval: interval?,
            initial: self.initial?.clone(),
            load: load?,
            events: events?,
            aws: aws?,
        })
    }

    fn name(&mut self, raw: &RawScenarioDocument) -> Option<String> {
        let metadata = self.ctx.required(
            &raw.metadata,
            "metadata",
            "add `metadata:` with a `name:` for the scenario, e.g. `name: scale-in`",
        )?;
        let name = self.ctx.required(&metadata.name, "metadata.name", "name the scenario, e.g. `name: scale-in`")?;
        if !is_dns_label(name) {
            self.ctx.at_value(
                "metadata.name",
                format!("`metadata.name` `{name}` is not a lowercase DNS label"),
                "use lowercase letters, digits and `-`, starting and ending with a letter or digit, at most 63 characters",
            );
            return None;
        }
        Some(name.clone())
    }

    /// A required duration.
    fn duration(&mut self, v: &Option<DurationText>, path: &str, help: &str) -> Option<Duration> {
        let DurationText(text) = self.ctx.required(v, path, help)?;
        match parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.ctx.at_value(
                    path,
                    format!("`{path}`: {e}"),
                    "write a duration like `500ms`, `15s`, `5m` or `1h30m`",
                );
                None
            }
        }
    }

    /// A duration that must be more than zero.
    fn positive(&mut self, v: &Option<DurationText>, path: &str, help: &str) -> Option<Duration> {
        let d = self.duration(v, path, help)?;
        if d.is_zero() {
            self.ctx.at_value(path, format!("`{path}` is 0s"), help);
            return None;
        }
        Some(d)
    }

    /// A time from the start that must fall within the run.
    fn time(&mut self, v: &Option<DurationText>, path: &str, end: Option<Duration>) -> Option<Duration> {
        let at = self.duration(v, path, "write when it happens, as a time from the start, e.g. `at: 10m`")?;
        if let Some(end) = end
            && at >= end
        {
            self.ctx.at_value(
                path,
                format!(
                    "`{path}` is {}, not before the end of the run ({})",
                    format_duration(at),
                    format_duration(end)
                ),
                "make it earlier, or `spec.duration` longer",
            );
            return None;
        }
        Some(at)
    }

    // ---- names -----------------------------------------------------------

    /// The service `raw` names in `state`: by its Service document's
    /// `metadata.name`, else its ECS service name or `cluster/service`
    /// when they name one service.
    fn service(
        &mut self,
        raw: &Option<String>,
        path: &str,
        state: Option<&DesiredStateDir>,
    ) -> Option<(String, crate::desired::ServiceId)> {
        let name = self.ctx.required(
            raw,
            path,
            "name the service by its Service document's `metadata.name`, e.g. `service: app`",
        )?;
        // An invalid desired state is reported on its own; names cannot be checked.
        let state = state?;
        let services = &state.desired.services;
        if let Some(s) = find_service(services, name) {
            return Some((name.clone(), s.id.clone()));
        }
        let names: Vec<&str> = services.iter().map(|s| s.name.as_str()).collect();
        self.no_such(path, "Service", ("service", name), &names, state);
        None
    }

    /// `path` names (`what`: a noun and the name) no document of `kind` in
    /// `state`: the message, the names it could have been, and the closest.
    pub(super) fn no_such(
        &mut self,
        path: &str,
        kind: &str,
        (noun, name): (&str, &str),
        names: &[&str],
        state: &DesiredStateDir,
    ) {
        let help = if names.is_empty() {
            format!("that desired state has no {kind} document")
        } else {
            format!("name a {kind} document by its `metadata.name`: {}", backticked(names))
        };
        let message = format!("`{path}`: no {noun} `{name}` in the desired state {}", state.dir.display());
        let d = Diagnostic::at(self.ctx.file, self.ctx.index.value_pos(path), message, help);
        self.ctx.diags.push(d.did_you_mean(did_you_mean(name, names)));
    }
}

/// The service `name` names: a Service document's `metadata.name`, else
/// the one service with that ECS name or `cluster/service`.
pub fn find_service<'s>(services: &'s [Service], name: &str) -> Option<&'s Service> {
    if let Some(s) = services.iter().find(|s| s.name == name) {
        return Some(s);
    }
    let by = |f: &dyn Fn(&Service) -> bool| {
        let mut it = services.iter().filter(|s| f(s));
        match (it.next(), it.next()) {
            (Some(one), None) => Some(one),
            _ => None,
        }
    };
    by(&|s| s.id.service == name).or_else(|| by(&|s| format!("{}/{}", s.id.cluster, s.id.service) == name))
}

/// `a`, `b`, `c`: names for a message.
fn backticked(names: &[&str]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}
