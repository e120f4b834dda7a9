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

use super::raw::{self, RawAws, RawEvent, RawLoad, RawPoint, RawScenarioDocument};
use super::scenario::{Action, AwsSettings, Curve, DesiredStateDir, Event, Load, Scenario, Shape};
use crate::desired::diagnostic::Diagnostic;
use crate::desired::duration::{format_duration, parse_duration};
use crate::desired::positions::{self, DocIndex, NodeKind, Pos, join_index, join_key};
use crate::desired::raw::DurationText;
use crate::desired::validate::{self, DocCtx, did_you_mean, is_dns_label};
use crate::desired::{API_VERSION, Capacity, Service};

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
        serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)));
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

/// serde_ignored's path in the index's syntax (`spec.load[0].x`).
fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => join_index(&ignored_path(parent), *index),
        P::Map { parent, key } => join_key(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// An unknown key, with a did-you-mean, and the path it suggests.
fn unknown_key(file: &Path, doc: &DocIndex, path: &str) -> (Diagnostic, Option<String>) {
    let parent = positions::parent_path(path);
    let key = path[parent.len()..].trim_start_matches('.');
    let known = raw::known_keys(parent);
    let place = if parent.is_empty() { "at the top of the document".to_string() } else { format!("in `{parent}`") };
    let expected =
        format!("expected one of: {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "));
    let suggestion = did_you_mean(key, known);
    let elsewhere = raw::paths_with_key(key);
    let help = if suggestion.is_some() {
        expected
    } else if !elsewhere.is_empty() {
        let places: Vec<String> = elsewhere
            .iter()
            .map(|p| if p.is_empty() { "the top of the document".into() } else { format!("`{p}`") })
            .collect();
        format!("`{key}` belongs in {}: check its indentation; {expected}", places.join(" or "))
    } else {
        format!("{expected}; remove it or check its spelling")
    };
    let d = Diagnostic::at(file, doc.key_pos(path), format!("unknown field `{key}` {place}"), help);
    (d.did_you_mean(suggestion), suggestion.map(|s| join_key(parent, s)))
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

    // ---- load ------------------------------------------------------------

    fn loads(&mut self, raw: &[RawLoad], end: Option<Duration>) -> Option<Vec<Load>> {
        let mut out = Vec::new();
        let mut ok = true;
        for (i, l) in raw.iter().enumerate() {
            let path = join_index("spec.load", i);
            match self.load(l, &path, end) {
                Some(load) => {
                    if out.iter().any(|o: &Load| o.service == load.service) {
                        self.ctx.at_value(
                            &join_key(&path, "service"),
                            format!("`{path}.service`: {} has a load already", load.name),
                            "give each service one curve; join the two into one list of points",
                        );
                        ok = false;
                    }
                    out.push(load);
                }
                None => ok = false,
            }
        }
        ok.then_some(out)
    }

    fn load(&mut self, raw: &RawLoad, path: &str, end: Option<Duration>) -> Option<Load> {
        let service = self.service(&raw.service, &join_key(path, "service"), self.initial);
        let given: Vec<&str> = ["rps", "points", "steps"]
            .into_iter()
            .filter(|k| self.ctx.index.get(&join_key(path, k)).is_some())
            .collect();
        let curve = match given.as_slice() {
            [] => {
                self.ctx.at_key(
                    path,
                    format!("`{path}` has no rate"),
                    "add `rps: 200` for a constant rate, or `points:` (joined linearly) or `steps:` (each holds until the next), each a list of `{at, rps}`",
                );
                None
            }
            ["rps"] => {
                if raw.repeat.is_some() {
                    self.ctx.at_key(
                        &join_key(path, "repeat"),
                        format!("`{path}.repeat` repeats nothing: the rate is constant"),
                        "remove `repeat`, or give `points` or `steps` to repeat",
                    );
                }
                let rps = self.rate(raw.rps, &join_key(path, "rps"))?;
                Some(Curve { points: vec![(Duration::ZERO, rps)], shape: Shape::Linear, repeat: None })
            }
            [one] => {
                let (points, shape) = match *one {
                    "points" => (&raw.points, Shape::Linear),
                    _ => (&raw.steps, Shape::Steps),
                };
                self.curve(points.as_deref().unwrap_or_default(), &join_key(path, one), shape, &raw.repeat, end)
            }
            [_, second, ..] => {
                self.ctx.at_key(
                    &join_key(path, second),
                    format!(
                        "`{path}` has {}: a curve is one of them",
                        given.iter().map(|g| format!("`{g}`")).collect::<Vec<_>>().join(" and ")
                    ),
                    "keep `rps` (constant), `points` (joined linearly) or `steps` (each holds until the next)",
                );
                None
            }
        };
        let (name, service) = service?;
        Some(Load { name, service, curve: curve? })
    }

    fn rate(&mut self, v: Option<f64>, path: &str) -> Option<f64> {
        let Some(rps) = v else {
            self.ctx.missing(path, "add the requests per second, e.g. `rps: 200`");
            return None;
        };
        if !rps.is_finite() || rps < 0.0 {
            self.ctx.at_value(
                path,
                format!("`{path}` is {rps}"),
                "requests per second are a number, 0 or more, e.g. `200`",
            );
            return None;
        }
        Some(rps)
    }

    fn curve(
        &mut self,
        raw: &[RawPoint],
        path: &str,
        shape: Shape,
        repeat: &Option<DurationText>,
        end: Option<Duration>,
    ) -> Option<Curve> {
        if raw.is_empty() {
            self.ctx.at_value(path, format!("`{path}` has no point"), "add at least one `{at: 0s, rps: 200}`");
            return None;
        }
        let repeat_path = path.rsplit_once('.').map_or(String::new(), |(p, _)| join_key(p, "repeat"));
        // `Some(None)`: a repeat was written but is invalid (reported).
        let repeat = repeat
            .as_ref()
            .map(|_| self.positive(repeat, &repeat_path, "write the period of the cycle, e.g. `repeat: 24h`"));
        let mut points = Vec::new();
        let mut ok = true;
        for (i, p) in raw.iter().enumerate() {
            let pp = join_index(path, i);
            let at_path = join_key(&pp, "at");
            let at = self.duration(&p.at, &at_path, "write when the rate applies, from the start, e.g. `at: 10m`");
            let rps = self.rate(p.rps, &join_key(&pp, "rps"));
            let (Some(at), Some(rps)) = (at, rps) else {
                ok = false;
                continue;
            };
            if let Some(&(prev, _)) = points.last()
                && at <= prev
            {
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, not after the point before it ({})",
                        format_duration(at),
                        format_duration(prev)
                    ),
                    "list the points in time order; for a sudden change put the next point a second later",
                );
                ok = false;
            }
            if let Some(Some(period)) = repeat
                && at >= period
            {
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, not within the repeated period ({})",
                        format_duration(at),
                        format_duration(period)
                    ),
                    "the points of a repeating curve lie within one period, from `0s`",
                );
                ok = false;
            }
            if let (None, Some(end)) = (repeat, end)
                && at > end
            {
                // Harmless, but surely not what was meant.
                self.ctx.at_value(
                    &at_path,
                    format!(
                        "`{at_path}` is {}, after the end of the run ({})",
                        format_duration(at),
                        format_duration(end)
                    ),
                    "remove the point, or make `spec.duration` longer",
                );
                ok = false;
            }
            points.push((at, rps));
        }
        let repeat = match repeat {
            Some(None) => return None,
            Some(Some(period)) => Some(period),
            None => None,
        };
        if let (Some(period), Some(end)) = (repeat, end)
            && (end.as_millis() / period.as_millis().max(1) + 1) * points.len() as u128 > MAX_CURVE_POINTS
        {
            self.ctx.at_value(
                &repeat_path,
                format!(
                    "`{repeat_path}` is {}: the curve repeats into more than {MAX_CURVE_POINTS} points over the run",
                    format_duration(period)
                ),
                "repeat a longer period (a day, `24h`, is typical), or make the run shorter",
            );
            return None;
        }
        ok.then_some(Curve { points, shape, repeat })
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
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let d = Diagnostic::at(
            self.ctx.file,
            self.ctx.index.value_pos(path),
            format!("`{path}`: no service `{name}` in the desired state {}", state.dir.display()),
            if names.is_empty() {
                "that desired state has no Service document".to_string()
            } else {
                format!("name a Service document by its `metadata.name`: {list}")
            },
        );
        self.ctx.diags.push(d.did_you_mean(did_you_mean(name, &names)));
        None
    }

    // ---- events ----------------------------------------------------------

    fn events(&mut self, raw: &[RawEvent], end: Option<Duration>) -> Option<Vec<Event>> {
        let mut ok = true;
        let mut timed = Vec::new();
        for (i, e) in raw.iter().enumerate() {
            let path = join_index("spec.events", i);
            let at = self.time(&e.at, &join_key(&path, "at"), end);
            let every = match &e.every {
                None => Some(None),
                Some(_) => self
                    .positive(
                        &e.every,
                        &join_key(&path, "every"),
                        "write the time between occurrences, e.g. `every: 4h`",
                    )
                    .map(Some),
            };
            let action = self.action_key(&path);
            match (at, every) {
                (Some(at), Some(every)) => timed.push(Timed { path, at, every, raw: e, action }),
                _ => ok = false,
            }
            ok &= action.is_some();
        }
        // Desired-state switches first: the names of the other events are
        // those of the desired state in force at their time.
        let mut switches: Vec<(Duration, usize, Option<DesiredStateDir>)> = Vec::new();
        for (i, t) in timed.iter().enumerate() {
            if t.action == Some("desiredState") {
                let d = self.desired_state(t);
                ok &= d.is_some();
                switches.push((t.at, i, d));
            }
        }
        let mut events = Vec::new();
        for (i, t) in timed.iter().enumerate() {
            let Some(key) = t.action else { continue };
            // The state in force at the event: the last switch before it
            // (or at the same time, earlier in the file).
            let in_force = switches
                .iter()
                .filter(|(at, j, _)| *at < t.at || (*at == t.at && *j < i))
                .max_by_key(|(at, j, _)| (*at, *j))
                .map_or(self.initial, |(_, _, d)| d.as_ref());
            let action = match key {
                "desiredState" => switches
                    .iter()
                    .find(|(_, j, _)| *j == i)
                    .and_then(|(_, _, d)| d.clone())
                    .map(|d| Action::DesiredState(Box::new(d))),
                _ => self.action(t, key, in_force, switches.iter().any(|(at, _, d)| *at <= t.at && d.is_none())),
            };
            let Some(action) = action else {
                ok = false;
                continue;
            };
            let line = self.ctx.index.value_pos(&t.path).line;
            let end = end.unwrap_or_default();
            let mut at = t.at;
            loop {
                events.push((at, i, Event { at, line, action: action.clone() }));
                if events.len() > MAX_OCCURRENCES {
                    self.ctx.at_value(
                        &join_key(&t.path, "every"),
                        format!("the events occur more than {MAX_OCCURRENCES} times in all"),
                        "space them further apart (a larger `every`), or make the run shorter",
                    );
                    return None;
                }
                match t.every {
                    Some(every) if at + every < end => at += every,
                    _ => break,
                }
            }
        }
        events.sort_by_key(|(at, i, _)| (*at, *i));
        ok.then(|| events.into_iter().map(|(_, _, e)| e).collect())
    }

    /// The one action key the event at `path` has, or a diagnostic.
    fn action_key(&mut self, path: &str) -> Option<&'static str> {
        let present: Vec<&'static str> =
            raw::ACTIONS.iter().copied().filter(|k| self.ctx.index.get(&join_key(path, k)).is_some()).collect();
        match present.as_slice() {
            [one] => Some(one),
            [] => {
                // An unknown key close to an action was reported with its
                // did-you-mean already.
                if !self.ctx.suggested.iter().any(|s| s.starts_with(&format!("{path}."))) {
                    self.ctx.at_key(
                        path,
                        format!("`{path}` has no action"),
                        format!(
                            "add one of: {}",
                            raw::ACTIONS.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                None
            }
            [_, second, ..] => {
                self.ctx.at_key(
                    &join_key(path, second),
                    format!(
                        "`{path}` has {} actions ({}): an event has one",
                        present.len(),
                        present.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                    ),
                    "split it into one event per action, at the same `at`",
                );
                None
            }
        }
    }

    fn desired_state(&mut self, t: &Timed) -> Option<DesiredStateDir> {
        let path = join_key(&t.path, "desiredState");
        let written = self.ctx.required(
            &t.raw.desired_state,
            &path,
            "write the desired-state directory to switch to, relative to the scenario file, e.g. `desiredState: after/`",
        )?;
        let base = self.ctx.file.parent().unwrap_or(Path::new(""));
        let dir = base.join(written);
        if !dir.is_dir() {
            self.ctx.at_value(
                &path,
                format!("`{path}`: {} is not a directory", dir.display()),
                "paths are relative to the scenario file's directory; the directory holds desired-state YAML",
            );
            return None;
        }
        let mut found = Vec::new();
        let d = self.dirs.load(&dir, &mut found);
        if d.is_none() && found.is_empty() {
            // Loaded before, and reported then.
            return None;
        }
        self.ctx.diags.extend(found);
        d
    }

    /// The event's action, its names resolved in `in_force`. `unknown`: a
    /// switch before it failed, so names cannot be checked.
    fn action(&mut self, t: &Timed, key: &str, in_force: Option<&DesiredStateDir>, unknown: bool) -> Option<Action> {
        let path = join_key(&t.path, key);
        let state = if unknown { None } else { in_force };
        let e = t.raw;
        match key {
            "deploy" => {
                let r =
                    self.present(&e.deploy, &path, "write which service ECS deploys, e.g. `deploy: {service: app}`")?;
                let (name, service) = self.service(&r.service, &join_key(&path, "service"), state)?;
                Some(Action::Deploy { name, service })
            }
            "actor" => {
                let r = self.present(
                    &e.actor,
                    &path,
                    "write the service and its new count, e.g. `actor: {service: app, desiredCount: 6}`",
                )?;
                let service = self.service(&r.service, &join_key(&path, "service"), state);
                let count_path = join_key(&path, "desiredCount");
                let count = self
                    .ctx
                    .required(
                        &r.desired_count,
                        &count_path,
                        "write the count the other tool sets, e.g. `desiredCount: 6`",
                    )
                    .copied()
                    .and_then(|v| {
                        self.ctx.int(v, &count_path, 0, i64::MAX, "a task count is a whole number, 0 or more")
                    });
                let (name, service) = service?;
                Some(Action::Actor { name, service, desired_count: count? })
            }
            "terminateInstance" => {
                let r = self.present(
                    &e.terminate_instance,
                    &path,
                    "write how many instances, e.g. `terminateInstance: {count: 1}`",
                )?;
                let count_path = join_key(&path, "count");
                let count = match r.count {
                    None => Some(1),
                    Some(v) => self.ctx.int(v, &count_path, 1, i64::MAX, "a number of instances, at least 1"),
                };
                let capacity = self.capacity(r.capacity.as_deref(), &path, state, unknown || in_force.is_none());
                let zone = match (&r.zone, capacity) {
                    (Some(z), Some(cap)) => self.zone(z, cap, &join_key(&path, "zone")).map(Some),
                    (z, _) => Some(z.clone()),
                };
                Some(Action::TerminateInstance { group: capacity?.group.clone(), count: count?, zone: zone? })
            }
            "restartController" => {
                if let Some(raw::RawFlag(false)) = e.restart_controller {
                    self.ctx.at_value(
                        &path,
                        format!("`{path}` is false"),
                        "an event happens: write `restartController: {}`, or remove the event",
                    );
                    return None;
                }
                Some(Action::RestartController)
            }
            _ => {
                let r =
                    self.present(&e.outage, &path, "write how long AWS is unreachable, e.g. `outage: {duration: 2m}`")?;
                let duration = self.positive(
                    &r.duration,
                    &join_key(&path, "duration"),
                    "write how long AWS is unreachable, e.g. `duration: 2m`",
                )?;
                Some(Action::Outage { duration })
            }
        }
    }

    /// An action's fields, reported as empty when the key has no value.
    fn present<'v, T>(&mut self, v: &'v Option<T>, path: &str, help: &str) -> Option<&'v T> {
        self.ctx.required(v, path, help)
    }

    /// The Capacity whose group loses instances: the named one, else the
    /// only one. `quiet`: the desired state is invalid (reported on its own).
    fn capacity<'s>(
        &mut self,
        named: Option<&str>,
        path: &str,
        state: Option<&'s DesiredStateDir>,
        quiet: bool,
    ) -> Option<&'s Capacity> {
        let state = state.filter(|_| !quiet)?;
        let caps = &state.desired.capacities;
        let names: Vec<&str> = caps.iter().map(|c| c.name.as_str()).collect();
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        match named {
            Some(n) => {
                if let Some(c) = caps.iter().find(|c| c.name == n) {
                    return Some(c);
                }
                let cap_path = join_key(path, "capacity");
                let d = Diagnostic::at(
                    self.ctx.file,
                    self.ctx.index.value_pos(&cap_path),
                    format!("`{cap_path}`: no Capacity document `{n}` in the desired state {}", state.dir.display()),
                    if names.is_empty() {
                        "that desired state has no Capacity document".into()
                    } else {
                        format!("name one of: {list}")
                    },
                );
                self.ctx.diags.push(d.did_you_mean(did_you_mean(n, &names)));
                None
            }
            None => match caps.as_slice() {
                [one] => Some(one),
                [] => {
                    self.ctx.at_key(
                        path,
                        format!(
                            "`{path}`: the desired state {} has no Capacity document, so no Auto Scaling group",
                            state.dir.display()
                        ),
                        "AWS terminates instances of the group a Capacity document names: add one, or remove the event",
                    );
                    None
                }
                _ => {
                    self.ctx.at_key(
                        path,
                        format!("`{path}`: the desired state {} has several Capacity documents", state.dir.display()),
                        format!("say whose group loses instances with `capacity:`, one of {list}"),
                    );
                    None
                }
            },
        }
    }

    /// A zone of the capacity, when the capacity names its zones.
    fn zone(&mut self, zone: &str, cap: &Capacity, path: &str) -> Option<String> {
        let names: Vec<&str> = cap.zones.iter().filter_map(|z| z.zone.as_deref()).collect();
        if names.is_empty() || names.contains(&zone) {
            return Some(zone.to_string());
        }
        let list = names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let d = Diagnostic::at(
            self.ctx.file,
            self.ctx.index.value_pos(path),
            format!("`{path}`: `{zone}` is not a zone of the Capacity `{}`", cap.name),
            format!("its zones are {list}"),
        );
        self.ctx.diags.push(d.did_you_mean(did_you_mean(zone, &names)));
        None
    }

    // ---- aws -------------------------------------------------------------

    fn aws(&mut self, raw: Option<&RawAws>) -> Option<AwsSettings> {
        let Some(raw) = raw else {
            return Some(AwsSettings::default());
        };
        let mut ok = true;
        let mut dur =
            |this: &mut Self, v: &Option<DurationText>, key: &str, lo: Duration, hi: Option<Duration>, why: &str| {
                let path = join_key("spec.aws", key);
                v.as_ref()?;
                let Some(d) = this.duration(v, &path, "") else {
                    ok = false;
                    return None;
                };
                if d < lo || hi.is_some_and(|hi| d > hi) {
                    let range = match hi {
                        Some(hi) => format!("between {} and {}", format_duration(lo), format_duration(hi)),
                        None => format!("at least {}", format_duration(lo)),
                    };
                    this.ctx.at_value(
                        &path,
                        format!("`{path}` is {}, but must be {range}", format_duration(d)),
                        why.to_string(),
                    );
                    ok = false;
                    return None;
                }
                Some(d)
            };
        let s = |n| Duration::from_secs(n);
        let settings = AwsSettings {
            deregistration_propagation_lag: dur(
                self,
                &raw.deregistration_propagation_lag,
                "deregistrationPropagationLag",
                s(0),
                None,
                "",
            ),
            deregistration_delay: dur(
                self,
                &raw.deregistration_delay,
                "deregistrationDelay",
                s(0),
                Some(s(3600)),
                "ELBv2's deregistration_delay.timeout_seconds is 0 to 3600 seconds",
            ),
            health_check_interval: dur(
                self,
                &raw.health_check_interval,
                "healthCheckInterval",
                s(5),
                Some(s(300)),
                "ELBv2's HealthCheckIntervalSeconds is 5 to 300 seconds",
            ),
            healthy_threshold: None,
            stop_timeout: dur(
                self,
                &raw.stop_timeout,
                "stopTimeout",
                s(0),
                Some(s(120)),
                "ECS's stopTimeout is at most 120 seconds",
            ),
            sigterm_grace: dur(self, &raw.sigterm_grace, "sigtermGrace", s(0), None, ""),
            consistency_lag: dur(self, &raw.consistency_lag, "consistencyLag", s(0), None, ""),
            az_rebalance: raw.az_rebalance,
            task_start_delay: dur(self, &raw.task_start_delay, "taskStartDelay", s(0), None, ""),
            instance_launch_delay: dur(self, &raw.instance_launch_delay, "instanceLaunchDelay", s(0), None, ""),
            minimum_healthy_percent: None,
            maximum_percent: None,
        };
        let help = "ELBv2's health check thresholds are 2 to 10 checks";
        let healthy = raw.healthy_threshold.map(|v| self.ctx.int(v, "spec.aws.healthyThreshold", 2, 10, help));
        ok &= healthy.is_none_or(|h| h.is_some());
        let help = "ECS's minimumHealthyPercent is 0 to 100";
        let min = raw.minimum_healthy_percent.map(|v| self.ctx.int(v, "spec.aws.minimumHealthyPercent", 0, 100, help));
        ok &= min.is_none_or(|m| m.is_some());
        let help = "ECS's maximumPercent is at least 100 for a rolling update on EC2";
        let max = raw.maximum_percent.map(|v| self.ctx.int(v, "spec.aws.maximumPercent", 100, 1000, help));
        ok &= max.is_none_or(|m| m.is_some());
        ok.then_some(AwsSettings {
            healthy_threshold: healthy.flatten(),
            minimum_healthy_percent: min.flatten(),
            maximum_percent: max.flatten(),
            ..settings
        })
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
