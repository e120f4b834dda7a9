//! Reading a desired-state directory: files, YAML documents, and every
//! problem in them, located.
//!
//! Each file is parsed twice: once by `yaml-rust2` into a position index
//! ([`super::positions`]) that also finds syntax errors and document
//! boundaries, and once by serde_yaml into the raw types
//! ([`super::raw`]), with `serde_ignored` collecting every unknown key.
//! [`super::validate`] then checks each document and the documents
//! against each other. Nothing is returned unless there is no problem at
//! all, so a half-valid desired state never reaches the planner.

use super::diagnostic::{Diagnostic, LoadError};
use super::positions::{self, DocIndex, FileIndex, NodeKind, Pos, join_index, join_key};
use super::raw::{RawCapacityDocument, RawServiceDocument};
use super::schema::{self, KINDS};
use super::validate::{self, Checked, DocCtx};
use super::{API_VERSION, DesiredState};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Loads and validates every `*.yaml`/`*.yml` file under `dir`
/// (recursively, hidden entries skipped, in path order). Documents without
/// `spec.region` get `default_region`.
pub fn load_dir(dir: &Path, default_region: &str) -> Result<DesiredState, LoadError> {
    let mut diags = Vec::new();
    let files = match list_files(dir) {
        Ok(files) => files,
        Err(d) => {
            return Err(LoadError { diagnostics: vec![d] });
        }
    };
    let mut reader = DocumentReader::new(default_region);
    for file in &files {
        match std::fs::read(file) {
            Err(e) => diags.push(Diagnostic::at(
                file,
                None,
                format!("cannot read the file: {e}"),
                "check the file's permissions, or move it out of the desired-state directory",
            )),
            Ok(bytes) => match String::from_utf8(bytes) {
                Err(_) => diags.push(Diagnostic::at(
                    file,
                    None,
                    "the file is not UTF-8 text, so it cannot be YAML",
                    "only desired-state YAML belongs in *.yaml/*.yml files here: remove or rename this file",
                )),
                Ok(text) => reader.read_file(file, &text, &mut diags),
            },
        }
    }
    if reader.documents == 0 && diags.is_empty() {
        diags.push(Diagnostic::at(
            dir,
            None,
            format!(
                "no desired-state documents in this directory ({} YAML file{} read)",
                files.len(),
                if files.len() == 1 { "" } else { "s" }
            ),
            "add *.yaml files with `kind: Service` and `kind: Capacity` documents; see docs/desired-state.md",
        ));
    }
    reader.finish(diags)
}

/// Loads one file's text as if it were the only file of a directory; for
/// tests and for checking a single file.
pub fn load_str(file_name: &str, text: &str, default_region: &str) -> Result<DesiredState, LoadError> {
    let file = Path::new(file_name);
    let mut diags = Vec::new();
    let mut reader = DocumentReader::new(default_region);
    reader.read_file(file, text, &mut diags);
    if reader.documents == 0 && diags.is_empty() {
        diags.push(Diagnostic::at(
            file,
            None,
            "no desired-state documents in this file",
            "add a `kind: Service` or `kind: Capacity` document; see docs/desired-state.md",
        ));
    }
    reader.finish(diags)
}

/// The `*.yaml`/`*.yml` files under `dir`, sorted by path.
fn list_files(dir: &Path) -> Result<Vec<PathBuf>, Diagnostic> {
    let meta = std::fs::metadata(dir).map_err(|e| {
        let message = if e.kind() == std::io::ErrorKind::NotFound {
            "the desired-state directory does not exist".to_string()
        } else {
            format!("cannot read the desired-state directory: {e}")
        };
        Diagnostic::at(dir, None, message, "check the path ballast was given for the desired state")
    })?;
    if !meta.is_dir() {
        return Err(Diagnostic::at(
            dir,
            None,
            "this is a file, not a directory",
            "give ballast the directory that holds the desired-state files",
        ));
    }
    let mut files = Vec::new();
    let mut visited = Vec::new();
    walk(dir, &mut files, &mut visited)?;
    files.sort();
    Ok(files)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, visited: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    // Symlinked directories are followed (a Kubernetes ConfigMap volume is
    // all symlinks), so guard against loops.
    if let Ok(real) = std::fs::canonicalize(dir) {
        if visited.contains(&real) {
            return Ok(());
        }
        visited.push(real);
    }
    let unlisted = |e: std::io::Error| {
        Diagnostic::at(dir, None, format!("cannot list the directory: {e}"), "check its permissions")
    };
    for entry in std::fs::read_dir(dir).map_err(unlisted)? {
        let entry = entry.map_err(unlisted)?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks; a dangling one is skipped like any
        // other file that is not desired state.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, files, visited)?;
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")) {
            files.push(path);
        }
    }
    Ok(())
}

/// Reads the documents of one load, file by file: checks each on its
/// own and keeps what the checks between documents need, which
/// [`DocumentReader::finish`] runs once every file has been read.
struct DocumentReader<'r> {
    default_region: &'r str,
    checked: Vec<Checked>,
    /// Documents seen (not empty ones).
    documents: usize,
    /// False once a document could not be read at all, so its claims are
    /// unknown.
    complete: bool,
}

impl<'r> DocumentReader<'r> {
    fn new(default_region: &'r str) -> Self {
        DocumentReader { default_region, checked: Vec::new(), documents: 0, complete: true }
    }

    fn read_file(&mut self, file: &Path, text: &str, diags: &mut Vec<Diagnostic>) {
        // libyaml (under serde_yaml) refuses a byte order mark that editors
        // on Windows add and that no one can see.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let index = match positions::index_str(text) {
            Ok(index) => index,
            Err(e) => {
                self.complete = false;
                // A file that is not YAML at all still counts, so it is not
                // also reported as "no documents".
                self.documents += 1;
                diags.push(Diagnostic::at(
                    file,
                    e.pos,
                    format!("YAML syntax error: {}", e.message),
                    "fix the YAML here or just before: indentation, a missing `:` or a quote or bracket left open",
                ));
                return;
            }
        };
        self.documents_of(file, text, &index, diags);
    }

    fn documents_of(&mut self, file: &Path, text: &str, index: &FileIndex, diags: &mut Vec<Diagnostic>) {
        for (i, de) in serde_yaml::Deserializer::from_str(text).enumerate() {
            let Some(doc) = index.docs.get(i) else {
                break;
            };
            let Some(root) = doc.root() else {
                continue;
            };
            if root.kind.is_null() {
                // `---` alone, or a file of comments.
                continue;
            }
            self.documents += 1;
            if root.kind != NodeKind::Mapping {
                self.complete = false;
                let found = match root.kind {
                    NodeKind::Sequence => "a list",
                    _ => "plain text",
                };
                diags.push(Diagnostic::at(
                    file,
                    root.value,
                    format!(
                        "this document is {found}, not a desired-state document (a mapping with `apiVersion`, `kind`, `metadata` and `spec`)"
                    ),
                    "only desired-state documents belong in *.yaml/*.yml files here: remove or rename this file",
                ));
                continue;
            }
            report_duplicate_keys(file, doc, diags);
            let prior = doc.duplicate_keys().len();
            let Some(kind) = self.kind(file, doc, diags) else {
                self.complete = false;
                continue;
            };
            let checked = match kind {
                "Service" => self
                    .deserialize::<RawServiceDocument>(de, kind, file, doc, prior, diags)
                    .map(|(raw, mut ctx)| validate::service(&mut ctx, &raw, self.default_region)),
                _ => self
                    .deserialize::<RawCapacityDocument>(de, kind, file, doc, prior, diags)
                    .map(|(raw, mut ctx)| validate::capacity(&mut ctx, &raw, self.default_region)),
            };
            match checked {
                Ok(c) => self.checked.push(c),
                Err(Unread::Document) => self.complete = false,
                Err(Unread::Stream) => {
                    // serde_yaml's parser gave up where yaml-rust2's did
                    // not: the documents after this one cannot be matched
                    // to the index any more.
                    self.complete = false;
                    break;
                }
            }
        }
    }

    /// The document's kind, or a diagnostic (with the apiVersion's, since
    /// nothing else of the document will be checked).
    fn kind(&self, file: &Path, doc: &DocIndex, diags: &mut Vec<Diagnostic>) -> Option<&'static str> {
        let found = doc.scalar("kind");
        if let Some(k) = KINDS.iter().find(|k| Some(**k) == found) {
            return Some(k);
        }
        if found.is_none() && doc.get("kind").is_none() && doc.get("apiVersion").is_none() {
            // Not an attempt at a desired-state document at all: one
            // message, not one per missing header field.
            diags.push(Diagnostic::at(
                file,
                doc.value_pos(""),
                "this document has no `apiVersion` or `kind`, so it is not a desired-state document",
                format!(
                    "start it with `apiVersion: {API_VERSION}` and `kind: Service` (or `Capacity`), or move the file out of the desired-state directory"
                ),
            ));
            return None;
        }
        const WRITE_KIND: &str = "write `kind: Service` or `kind: Capacity`";
        let d = match found {
            None if doc.get("kind").is_some_and(|e| !e.kind.is_null()) => Diagnostic::at(
                file,
                doc.value_pos("kind"),
                "`kind` is not a plain word: expected `Service` or `Capacity`",
                WRITE_KIND,
            ),
            None => Diagnostic::at(
                file,
                doc.value_pos(""),
                "missing required field `kind`",
                "add `kind: Service` or `kind: Capacity`",
            ),
            Some(k) => {
                let suggestion = validate::did_you_mean(k, &KINDS);
                Diagnostic::at(
                    file,
                    doc.value_pos("kind"),
                    format!("unknown kind `{k}`: ballast reads `Service` and `Capacity` documents"),
                    // A close kind is all the help needed.
                    if suggestion.is_some() { "" } else { WRITE_KIND },
                )
                .did_you_mean(suggestion)
            }
        };
        diags.push(d);
        let mut ctx = DocCtx { file, index: doc, diags, prior_errors: 0, suggested: Vec::new() };
        validate::check_api_version(&mut ctx, doc.scalar("apiVersion"));
        None
    }

    /// Deserializes one document into its raw type, reporting unknown keys
    /// and type errors. Returns the raw document with a context for its
    /// checks, or `None` when serde could not read it.
    #[allow(clippy::too_many_arguments)]
    fn deserialize<'a, 'de, T: Deserialize<'de>>(
        &self,
        de: serde_yaml::Deserializer<'de>,
        kind: &str,
        file: &'a Path,
        doc: &'a DocIndex,
        prior: usize,
        diags: &'a mut Vec<Diagnostic>,
    ) -> Result<(T, DocCtx<'a>), Unread> {
        let mut unknown = Vec::new();
        let result: Result<T, _> = serde_ignored::deserialize(de, |path| unknown.push(ignored_path(&path)));
        let unknown_count = unknown.len();
        let mut suggested = Vec::new();
        for path in unknown {
            let (d, suggestion) = unknown_key(file, doc, kind, &path);
            diags.push(d);
            suggested.extend(suggestion);
        }
        match result {
            Ok(raw) => Ok((raw, DocCtx { file, index: doc, diags, prior_errors: prior + unknown_count, suggested })),
            Err(e) => {
                let (d, stream) = type_error(file, kind, &e);
                diags.extend(d);
                Err(if stream { Unread::Stream } else { Unread::Document })
            }
        }
    }
}

/// Why serde could not read a document.
enum Unread {
    /// A mistake inside the document (reported); the next ones are fine.
    Document,
    /// The YAML stream itself broke: stop reading the file.
    Stream,
}

impl DocumentReader<'_> {
    fn finish(self, mut diags: Vec<Diagnostic>) -> Result<DesiredState, LoadError> {
        validate::cross_check(&self.checked, self.complete, &mut diags);
        if !diags.is_empty() {
            // Stable order whatever the order of the checks.
            diags.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
            return Err(LoadError { diagnostics: diags });
        }
        let mut state = DesiredState::default();
        for c in self.checked {
            match c {
                Checked::Service(_, Some(s)) => state.services.push(s),
                Checked::Capacity(_, Some(c)) => state.capacities.push(c),
                // Only reachable if a check forgot to report: refuse
                // rather than drop a document silently.
                Checked::Service(_, None) | Checked::Capacity(_, None) => {
                    let bug = Diagnostic::at(
                        Path::new(""),
                        None,
                        "internal error: a document failed validation without a message",
                        "please report this as a ballast bug",
                    );
                    return Err(LoadError { diagnostics: vec![bug] });
                }
            }
        }
        Ok(state)
    }
}

/// serde_ignored's path in the index's syntax (`spec.targetGroups[0].x`).
pub(crate) fn ignored_path(path: &serde_ignored::Path) -> String {
    use serde_ignored::Path as P;
    match path {
        P::Root => String::new(),
        P::Seq { parent, index } => join_index(&ignored_path(parent), *index),
        P::Map { parent, key } => join_key(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => ignored_path(parent),
    }
}

/// One error per key written twice in a mapping of `doc` (YAML allows it;
/// the parser would keep the last silently).
pub(crate) fn report_duplicate_keys(file: &Path, doc: &DocIndex, diags: &mut Vec<Diagnostic>) {
    for (path, pos) in doc.duplicate_keys() {
        diags.push(Diagnostic::at(
            file,
            *pos,
            format!("`{path}` is written twice"),
            "keep one of the two; YAML keys must be unique within a mapping",
        ));
    }
}

/// The diagnostic for an unknown key of a `kind` document, and the path
/// of the key it suggests instead (whose absence then needs no message of
/// its own).
fn unknown_key(file: &Path, doc: &DocIndex, kind: &str, path: &str) -> (Diagnostic, Option<String>) {
    let parent = positions::parent_path(path);
    let key = path[parent.len()..].trim_start_matches('.');
    unknown_key_among(file, doc, path, &schema::known_keys(kind, parent), &schema::paths_with_key(kind, key))
}

/// The diagnostic for the unknown key at `path`, given the keys `known`
/// where it stands and the `elsewhere` paths where that key is known (for
/// a key indented wrongly), and the path of the key it suggests instead.
/// Shared with the scenario loader.
pub(crate) fn unknown_key_among<S: AsRef<str>>(
    file: &Path,
    doc: &DocIndex,
    path: &str,
    known: &[S],
    elsewhere: &[S],
) -> (Diagnostic, Option<String>) {
    let parent = positions::parent_path(path);
    let key = path[parent.len()..].trim_start_matches('.');
    let place = if parent.is_empty() { "at the top of the document".to_string() } else { format!("in `{parent}`") };
    let expected = format!(
        "expected one of: {}",
        known.iter().map(|k| format!("`{}`", k.as_ref())).collect::<Vec<_>>().join(", ")
    );
    let elsewhere: Vec<String> = elsewhere
        .iter()
        .map(|p| p.as_ref())
        .map(|p| if p.is_empty() { "the top of the document".into() } else { format!("`{p}`") })
        .collect();
    // `<<` is never close to a known key: the merge-key help stands alone.
    let suggestion = validate::did_you_mean(key, known);
    let help = if key == "<<" {
        "YAML merge keys are not supported: write the fields out".to_string()
    } else if suggestion.is_some() {
        expected
    } else if !elsewhere.is_empty() {
        format!("`{key}` belongs in {}: check its indentation; {expected}", elsewhere.join(" or "))
    } else {
        format!("{expected}; remove it or check its spelling")
    };
    let d = Diagnostic::at(file, doc.key_pos(path), format!("unknown field `{key}` {place}"), help);
    (d.did_you_mean(suggestion), suggestion.map(|s| join_key(parent, s)))
}

/// A serde error as a diagnostic at serde_yaml's position, in words a
/// person uses, and whether it broke the YAML stream (a parser error
/// rather than a value of the wrong type). Duplicate fields are left out:
/// the position index already reported them.
fn type_error(file: &Path, kind: &str, e: &serde_yaml::Error) -> (Option<Diagnostic>, bool) {
    let full = e.to_string();
    // serde_yaml writes "PATH: MESSAGE at line L column C".
    let without_pos = match full.rfind(" at line ") {
        Some(i) => &full[..i],
        None => &full,
    };
    let (path, message) = match without_pos.split_once(": ") {
        Some((p, m)) if !p.contains(' ') => (Some(p), m),
        _ => (None, without_pos),
    };
    if message.starts_with("duplicate field") {
        return (None, false);
    }
    // Errors about a value carry its path; a parser error has none.
    let stream = path.is_none();
    let message = humanize(message);
    let (message, help) = match path {
        Some(p) => (
            format!("`{p}`: {message}"),
            schema::describe(kind, p).map(|d| format!("`{}`: {d}", p.rsplit('.').next().unwrap_or(p))),
        ),
        None => (message, None),
    };
    let pos = e.location().map(|l| Pos { line: l.line(), column: l.column() });
    let help = help.unwrap_or_else(|| "see docs/desired-state.md for the type of each field".into());
    (Some(Diagnostic::at(file, pos, message, help)), stream)
}

/// Rewrites serde's type vocabulary (`i64`, `struct RawTasks`) in the
/// file's terms.
pub(crate) fn humanize(message: &str) -> String {
    let mut m = message.replace("invalid type: ", "wrong type: found ");
    for (rust, words) in [
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected `true` or `false`"),
        ("expected a sequence", "expected a list (`- item` lines)"),
    ] {
        m = m.replace(rust, words);
    }
    if let Some(i) = m.find("expected struct ") {
        m.replace_range(i.., "expected a mapping (`key: value` lines)");
    }
    m
}
