//! The IAM check: ballast's task role in `deploy/cloudformation.yaml`
//! allows every call ballast's AWS adapter makes, *as AWS evaluates it*,
//! and nothing broader.
//!
//! 1. **Calls.** `src/cloud/aws/**/*.rs` is scanned for the adapter's
//!    convention: every SDK operation is called on a client field named
//!    after its service, `<something>.ecs.<op>()`, `.elbv2.<op>()`,
//!    `.autoscaling.<op>()`, `.cloudwatch.<op>()` or `.appscaling.<op>()`
//!    (rustfmt may put each link of the chain on its own line; comments and
//!    `#[cfg(test)]` code do not count). Each operation maps to the IAM
//!    action of the same name in PascalCase. The scan also collects the
//!    request parameters each call sets (`req.cluster(..).desired_count(..)`),
//!    because some of them become condition keys.
//! 2. **Requests.** For each action, [`requests`] builds what IAM
//!    authorizes: the resource ARN and the request context (condition keys
//!    and their values). The resource type, its ARN format and the condition
//!    keys that apply come from the Service Authorization Reference, read
//!    from `parliament`'s copy of it (`iam_definition.json`, installed in
//!    `.venv` by `scripts/emulator-setup.sh`), with the documented
//!    exceptions written out (a cluster-wide `ecs:ListTasks` is authorized
//!    against `*`). The arguments are the names in `desired-state/`
//!    (cluster, service, target groups, the group, its subnets) and ballast's
//!    own alarm names, turned into ARNs and ids by a model of the stack.
//! 3. **Policy.** The role's statements, with CloudFormation's intrinsic
//!    functions resolved against that same model of the stack.
//! 4. **Evaluation.** A small evaluator ([`Policy::decide`]: Allow/Deny,
//!    action and resource wildcards, ARN matching, the Condition operators
//!    the template uses including `ForAllValues`, `ForAnyValue`, `Null` and
//!    `...IfExists`) must allow every request, and must deny every *probe*:
//!    the same calls aimed elsewhere (another cluster, ballast's own
//!    service, another target group, alarm or group, a group without the
//!    ownership tag, a foreign subnet, no subnets, a size or launch
//!    template change, other alarm tags, another region or account).
//!
//! A call the policy does not allow fails here with the request that AWS
//! would deny (AccessDenied in production); a statement that allows what
//! no call needs, or a probe that gets through, fails too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_yaml::Value;

/// Client field name in the adapter → IAM service prefix.
const CLIENTS: &[(&str, &str)] = &[
    ("ecs", "ecs"),
    ("elbv2", "elasticloadbalancing"),
    ("autoscaling", "autoscaling"),
    ("cloudwatch", "cloudwatch"),
    ("appscaling", "application-autoscaling"),
    ("dynamodb", "dynamodb"),
];

/// Methods of an SDK client that are not API operations.
const NOT_OPERATIONS: &[&str] = &["config", "clone", "from_conf", "new"];

/// Methods of a request builder that are not request parameters.
const NOT_PARAMETERS: &[&str] = &["clone", "send", "customize", "into_future", "as_input"];

/// Actions IAM also checks when an operation is sent with a parameter.
/// (operation's action, parameter, extra action, why)
const EXTRA: &[(&str, &str, &str, &str)] = &[(
    "cloudwatch:PutMetricAlarm",
    "tags",
    "cloudwatch:TagResource",
    "PutMetricAlarm is sent with Tags (managed-by=ballast), which CloudWatch \
     also authorizes as TagResource on the alarm",
)];

/// Actions the Service Authorization Reference lists with no resource
/// type: AWS authorizes them against `*`, so `Resource: "*"` is the only
/// resource that can allow them. `reference_and_model_agree` keeps this
/// list equal to the reference for every action ballast calls.
const NO_RESOURCE_LEVEL: &[&str] = &[
    "ecs:DescribeTaskDefinition",
    "application-autoscaling:DescribeScalableTargets",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "cloudwatch:GetMetricData",
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribeLifecycleHooks",
];

/// Actions that have a resource type but that AWS authorizes against `*`
/// as ballast calls them; a statement for them may use `Resource: "*"`
/// only with a condition that narrows it (the probes check it does).
/// (action, why)
const EVALUATED_ON_STAR: &[(&str, &str)] = &[(
    "ecs:ListTasks",
    "ListTasks names a container-instance resource type, but a cluster-wide \
     ListTasks (no containerInstance in the request) is authorized against \"*\", \
     narrowed only by the ecs:cluster condition key",
)];

/// The role's logical id in the template.
const ROLE: &str = "BallastTaskRole";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Scanning the adapter.

/// Where a call was found, and the request parameters it sets there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
    /// Builder methods called on the request (`set_` stripped).
    params: BTreeSet<String>,
}

impl std::fmt::Display for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// `describe_target_health` → `DescribeTargetHealth`.
fn pascal(snake: &str) -> String {
    snake
        .split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            let first = c.next().unwrap().to_ascii_uppercase();
            std::iter::once(first).chain(c).collect::<String>()
        })
        .collect()
}

/// `src` with comments and the contents of string literals replaced by
/// spaces (newlines kept, so line numbers stay right): neither holds code,
/// and a `//` inside a URL must not start a comment.
fn blank_comments(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                let end = b[i..].iter().position(|&c| c == b'\n').map_or(b.len(), |p| i + p);
                blank(&mut out, i, end);
                i = end;
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Block comments nest in Rust.
                let (mut depth, mut j) = (1, i + 2);
                while j < b.len() && depth > 0 {
                    if b[j] == b'/' && b.get(j + 1) == Some(&b'*') {
                        depth += 1;
                        j += 2;
                    } else if b[j] == b'*' && b.get(j + 1) == Some(&b'/') {
                        depth -= 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                blank(&mut out, i, j);
                i = j;
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                // Raw string r"..." / r#"..."#.
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let open = i + 1 + hashes;
                if b.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close: Vec<u8> = std::iter::once(b'"').chain(std::iter::repeat_n(b'#', hashes)).collect();
                let end = b[open + 1..]
                    .windows(close.len())
                    .position(|w| w == close.as_slice())
                    .map_or(b.len(), |p| open + 1 + p);
                blank(&mut out, open + 1, end);
                i = (end + close.len()).min(b.len());
            }
            b'"' => {
                let mut j = i + 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                let end = j.min(b.len());
                blank(&mut out, i + 1, end);
                i = end + 1;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"'); otherwise a lifetime.
                if b.get(i + 1) == Some(&b'\\') {
                    let end = b[i + 2..].iter().position(|&c| c == b'\'');
                    i = end.map_or(b.len(), |p| i + 2 + p + 1);
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            _ => i += 1,
        }
    }
    String::from_utf8(out).expect("blanking keeps UTF-8: only ASCII bytes are replaced")
}

/// Blank every item marked `#[cfg(test)]` (a `mod tests { … }`, a test
/// helper fn, a `use`), and return the names of `#[cfg(test)] mod NAME;`
/// declarations, whose files are test code too. Expects comments blanked.
fn blank_test_items(src: &str) -> (String, Vec<String>) {
    let mut out = src.as_bytes().to_vec();
    let mut test_modules = Vec::new();
    let marker = "#[cfg(test)]";
    let mut from = 0;
    while let Some(p) = src[from..].find(marker) {
        let start = from + p;
        let body = start + marker.len();
        let semi = src[body..].find(';').map(|q| body + q);
        let brace = src[body..].find('{').map(|q| body + q);
        let end = match (semi, brace) {
            (Some(s), Some(b)) if s < b => s + 1,
            (Some(s), None) => s + 1,
            (_, Some(b)) => {
                let mut depth = 0usize;
                let mut end = src.len();
                for (k, c) in src[b..].bytes().enumerate() {
                    match c {
                        b'{' => depth += 1,
                        b'}' => {
                            depth -= 1;
                            if depth == 0 {
                                end = b + k + 1;
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                end
            }
            (None, None) => src.len(),
        };
        let item = &src[body..end];
        let words: Vec<&str> = item.split(|c: char| c.is_whitespace() || c == ';').filter(|w| !w.is_empty()).collect();
        if let [.., "mod", name] = words.as_slice() {
            test_modules.push(name.to_string());
        }
        for c in &mut out[start..end] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
        from = end;
    }
    (String::from_utf8(out).unwrap(), test_modules)
}

fn ident_at(b: &[u8], i: usize) -> (usize, &str) {
    let len = b[i..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    (i + len, std::str::from_utf8(&b[i..i + len]).expect("identifier bytes are ASCII"))
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// One operation call found in a file: its IAM action, line and the
/// request parameters it sets.
#[derive(Debug, Clone)]
struct Found {
    action: String,
    line: usize,
    params: BTreeSet<String>,
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `b[open]` is `(`, `{` or `[`: the index just past its partner.
fn skip_group(b: &[u8], open: usize) -> usize {
    let (o, c) = match b[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        _ => (b'[', b']'),
    };
    let mut depth = 0usize;
    for (k, &ch) in b[open..].iter().enumerate() {
        if ch == o {
            depth += 1;
        } else if ch == c {
            depth -= 1;
            if depth == 0 {
                return open + k + 1;
            }
        }
    }
    b.len()
}

/// The method chain starting at `i` (`.a(..).b(..)`): the method names,
/// stopping at anything else (a field, an operator, the end).
fn method_chain(b: &[u8], mut i: usize) -> Vec<String> {
    let mut names = Vec::new();
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'.') {
            return names;
        }
        let (after, name) = ident_at(b, skip_ws(b, i + 1));
        let open = skip_ws(b, after);
        if name.is_empty() || b.get(open) != Some(&b'(') {
            return names;
        }
        names.push(name.to_string());
        i = skip_group(b, open);
    }
}

/// The end of the block that contains `i` (the index of its `}`).
fn block_end(b: &[u8], i: usize) -> usize {
    let mut depth = 0i32;
    for (k, &c) in b[i..].iter().enumerate() {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth < 0 {
                    return i + k;
                }
            }
            _ => {}
        }
    }
    b.len()
}

/// Every method chain on the variable `var` within `from..to`.
fn chains_on(b: &[u8], var: &str, from: usize, to: usize) -> Vec<String> {
    let v = var.as_bytes();
    let mut out = Vec::new();
    let mut i = from;
    while i + v.len() <= to {
        let word = &b[i..i + v.len()] == v
            && (i == 0 || !(is_ident(b[i - 1]) || b[i - 1] == b'.'))
            && b.get(i + v.len()).is_none_or(|&c| !is_ident(c));
        if word {
            out.extend(method_chain(b, i + v.len()));
            i += v.len();
        } else {
            i += 1;
        }
    }
    out
}

/// The request parameters of the call whose operation's `(` is at
/// `open`: its own chain, then every chain on the variable it is bound
/// to (`let req = rc.ecs.op(); let req = req.a(..);`) up to the end of
/// its block or the next operation call, or, when the request is passed
/// to a function (`f(rc.cloudwatch.op(), ..)`), the chains on that
/// function's first parameter in its body.
fn call_params(b: &[u8], receiver: usize, open: usize, next_call: usize) -> BTreeSet<String> {
    let after = skip_group(b, open);
    let mut names = method_chain(b, after);
    // What stands before the receiver: `let VAR =` or `FUNCTION(`.
    let mut k = receiver;
    while k > 0 && b[k - 1].is_ascii_whitespace() {
        k -= 1;
    }
    let before = k.checked_sub(1).map(|k| b[k]);
    if before == Some(b'=') && b.get(k.wrapping_sub(2)) != Some(&b'=') {
        let stmt_start = b[..k].iter().rposition(|&c| matches!(c, b';' | b'{' | b'}')).map_or(0, |p| p + 1);
        let text = std::str::from_utf8(&b[stmt_start..k - 1]).unwrap();
        let words: Vec<&str> = text.split_whitespace().filter(|w| *w != "mut").collect();
        if let ["let", var] = words.as_slice() {
            let end = block_end(b, after).min(next_call);
            names.extend(chains_on(b, var, after, end));
        }
    } else if before == Some(b'(') {
        let mut s = k - 1;
        while s > 0 && is_ident(b[s - 1]) {
            s -= 1;
        }
        let function = std::str::from_utf8(&b[s..k - 1]).unwrap();
        let text = std::str::from_utf8(b).unwrap();
        if let Some(p) = text.find(&format!("fn {function}(")) {
            let params_open = p + 3 + function.len();
            let (_, first) = ident_at(b, skip_ws(b, params_open + 1));
            let first = if first == "mut" { ident_at(b, skip_ws(b, params_open + 5)).1 } else { first };
            let body_open = skip_group(b, params_open)
                + b[skip_group(b, params_open)..].iter().position(|&c| c == b'{').unwrap_or(0);
            let body_end = skip_group(b, body_open);
            names.extend(chains_on(b, first, body_open, body_end));
        }
    }
    names
        .into_iter()
        .filter(|n| !NOT_PARAMETERS.contains(&n.as_str()) && !n.starts_with("get_"))
        .map(|n| n.strip_prefix("set_").map_or(n.clone(), str::to_string))
        .collect()
}

/// Every `.CLIENT.op(` in one file's text (after blanking), with its line
/// and request parameters.
fn scan_source(src: &str) -> Vec<Found> {
    let b = src.as_bytes();
    // (receiver start, client dot, action, operation's `(`)
    let mut sites = Vec::new();
    for dot in (0..b.len()).filter(|&i| b[i] == b'.') {
        let i = skip_ws(b, dot + 1);
        let (i, client) = ident_at(b, i);
        let Some(&(_, prefix)) = CLIENTS.iter().find(|(name, _)| *name == client) else {
            continue;
        };
        let i = skip_ws(b, i);
        if b.get(i) != Some(&b'.') {
            continue;
        }
        let (i, op) = ident_at(b, skip_ws(b, i + 1));
        let open = skip_ws(b, i);
        if op.is_empty() || b.get(open) != Some(&b'(') || NOT_OPERATIONS.contains(&op) {
            continue;
        }
        // The receiver: `rc`, `self.clients`, … (whitespace allowed before dots).
        let mut r = dot;
        loop {
            let mut k = r;
            while k > 0 && b[k - 1].is_ascii_whitespace() {
                k -= 1;
            }
            let mut s = k;
            while s > 0 && is_ident(b[s - 1]) {
                s -= 1;
            }
            if s == k {
                break;
            }
            r = s;
            let mut d = s;
            while d > 0 && b[d - 1].is_ascii_whitespace() {
                d -= 1;
            }
            if d > 0 && b[d - 1] == b'.' {
                r = d - 1;
            } else {
                break;
            }
        }
        sites.push((r, dot, format!("{prefix}:{}", pascal(op)), open));
    }
    let mut found = Vec::new();
    for (n, (receiver, dot, action, open)) in sites.iter().enumerate() {
        let next = sites.get(n + 1).map_or(b.len(), |s| s.0);
        let line = src[..*dot].matches('\n').count() + 1;
        found.push(Found { action: action.clone(), line, params: call_params(b, *receiver, *open, next) });
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module directory of a file's child modules: `dir/` for `dir/mod.rs`,
/// `dir/name/` for `dir/name.rs`.
fn child_module_dir(file: &Path) -> PathBuf {
    let parent = file.parent().unwrap();
    match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod") => parent.to_path_buf(),
        Some(stem) => parent.join(stem),
        None => parent.to_path_buf(),
    }
}

/// Every action the code under `dir` can call, with where and how.
fn scan_dir(dir: &Path) -> BTreeMap<String, Vec<Site>> {
    let mut files = Vec::new();
    rust_files(dir, &mut files);
    let mut texts = Vec::new();
    let mut test_only: Vec<PathBuf> = Vec::new();
    for file in &files {
        let src = std::fs::read_to_string(file).unwrap();
        let (text, test_mods) = blank_test_items(&blank_comments(&src));
        let mod_dir = child_module_dir(file);
        for name in test_mods {
            test_only.push(mod_dir.join(format!("{name}.rs")));
            test_only.push(mod_dir.join(name));
        }
        texts.push((file.clone(), text));
    }
    let mut calls: BTreeMap<String, Vec<Site>> = BTreeMap::new();
    for (file, text) in texts {
        if test_only.iter().any(|t| file.starts_with(t)) {
            continue;
        }
        let shown = file.strip_prefix(repo()).unwrap_or(&file).display().to_string();
        for f in scan_source(&text) {
            calls.entry(f.action).or_default().push(Site { file: shown.clone(), line: f.line, params: f.params });
        }
    }
    calls
}

/// The scanned actions plus the extra ones they need, each with a reason.
fn needed_actions(calls: &BTreeMap<String, Vec<Site>>) -> BTreeMap<String, String> {
    let mut needed: BTreeMap<String, String> = calls
        .iter()
        .map(|(action, sites)| {
            let at: Vec<String> = sites.iter().map(ToString::to_string).collect();
            (action.clone(), format!("called at {}", at.join(", ")))
        })
        .collect();
    for (op, param, extra, why) in EXTRA {
        if calls.get(*op).is_some_and(|sites| sites.iter().any(|s| s.params.contains(*param))) {
            needed.insert(extra.to_string(), format!("needed by {op}: {why}"));
        }
    }
    needed
}

/// The parameters each action is sent with, over all its call sites.
fn params_by_action(calls: &BTreeMap<String, Vec<Site>>) -> BTreeMap<String, BTreeSet<String>> {
    calls.iter().map(|(a, sites)| (a.clone(), sites.iter().flat_map(|s| s.params.iter().cloned()).collect())).collect()
}

// ---------------------------------------------------------------------------
// The Service Authorization Reference, from parliament's copy of it.

/// What the reference says about one action.
#[derive(Debug, Default, Clone)]
struct ActionRef {
    /// Resource types, `*` marking the required ones; empty: none (the
    /// action is authorized against `*`).
    resource_types: Vec<String>,
    /// Condition keys of the action and of its resource types.
    condition_keys: BTreeSet<String>,
}

/// The parts of the reference this check uses.
struct Reference {
    actions: BTreeMap<String, ActionRef>,
    /// `service:resource-type` → ARN format (`arn:${Partition}:ecs:…`).
    arn_formats: BTreeMap<String, String>,
    /// Condition keys whose values are lists (`ArrayOfString`, …).
    multivalued: BTreeSet<String>,
}

/// parliament ships the reference as `iam_definition.json`; the emulator
/// setup installs it into `.venv` (tests/emulator/requirements.txt).
fn reference_path() -> PathBuf {
    let lib = repo().join(".venv/lib");
    let found = std::fs::read_dir(&lib).ok().and_then(|dirs| {
        dirs.filter_map(Result::ok)
            .map(|d| d.path().join("site-packages/parliament/iam_definition.json"))
            .find(|p| p.exists())
    });
    found.unwrap_or_else(|| {
        panic!(
            "the Service Authorization Reference is not installed: no \
             .venv/lib/python*/site-packages/parliament/iam_definition.json.\n\
             Run `scripts/emulator-setup.sh` at the repository root (installs parliament \
             into .venv with the emulator), then run the tests again."
        )
    })
}

fn reference() -> Reference {
    let path = reference_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reference_from_json(&text)
}

fn reference_from_json(text: &str) -> Reference {
    let doc: serde_json::Value = serde_json::from_str(text).expect("iam_definition.json is JSON");
    let mut r = Reference { actions: BTreeMap::new(), arn_formats: BTreeMap::new(), multivalued: BTreeSet::new() };
    let str_of = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    // A prefix can appear twice (elasticloadbalancing: v1 and v2): merge.
    for service in doc.as_array().expect("a list of services") {
        let prefix = str_of(&service["prefix"]);
        for res in service["resources"].as_array().into_iter().flatten() {
            r.arn_formats.insert(format!("{prefix}:{}", str_of(&res["resource"])), str_of(&res["arn"]));
        }
        for c in service["conditions"].as_array().into_iter().flatten() {
            if str_of(&c["type"]).starts_with("ArrayOf") {
                r.multivalued.insert(str_of(&c["condition"]).to_ascii_lowercase());
            }
        }
        let resource_keys: BTreeMap<String, Vec<String>> = service["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|res| {
                let keys = res["condition_keys"].as_array().into_iter().flatten().map(str_of).collect();
                (str_of(&res["resource"]), keys)
            })
            .collect();
        for p in service["privileges"].as_array().into_iter().flatten() {
            let entry = r.actions.entry(format!("{prefix}:{}", str_of(&p["privilege"]))).or_default();
            for rt in p["resource_types"].as_array().into_iter().flatten() {
                let t = str_of(&rt["resource_type"]);
                entry.condition_keys.extend(rt["condition_keys"].as_array().into_iter().flatten().map(str_of));
                if !t.is_empty() {
                    if !entry.resource_types.contains(&t) {
                        entry.resource_types.push(t.clone());
                    }
                    entry
                        .condition_keys
                        .extend(resource_keys.get(t.trim_end_matches('*')).into_iter().flatten().cloned());
                }
            }
        }
    }
    r
}

impl Reference {
    fn action(&self, action: &str) -> &ActionRef {
        self.actions.get(action).unwrap_or_else(|| panic!("{action} is not in the Service Authorization Reference"))
    }

    /// The ARN of `action`'s required resource type, its `${Placeholders}`
    /// filled from `values`.
    fn arn(&self, action: &str, values: &[(&str, &str)]) -> String {
        let service = action.split(':').next().unwrap();
        let a = self.action(action);
        let required: Vec<&String> = a.resource_types.iter().filter(|t| t.ends_with('*')).collect();
        let [t] = required.as_slice() else {
            panic!("{action}: expected one required resource type in the reference, found {:?}", a.resource_types);
        };
        self.arn_of_type(&format!("{service}:{}", t.trim_end_matches('*')), values)
    }

    /// The ARN of the resource type `key` (`ecs:service`), its
    /// `${Placeholders}` filled from `values`: for actions that name no
    /// required resource type (TagResource tags whatever it is given).
    fn arn_of_type(&self, key: &str, values: &[(&str, &str)]) -> String {
        let mut arn = self.arn_formats.get(key).unwrap_or_else(|| panic!("no ARN format for {key}")).clone();
        for (name, value) in values {
            arn = arn.replace(&format!("${{{name}}}"), value);
        }
        assert!(!arn.contains("${"), "{key}: the model gives no value for a part of {arn}");
        arn
    }

    /// Whether AWS evaluates `key` for `action` (global `aws:` keys always).
    fn applies(&self, action: &str, key: &str) -> bool {
        let key = key.to_ascii_lowercase();
        if key.starts_with("aws:") {
            return true;
        }
        self.action(action).condition_keys.iter().any(|k| {
            let k = k.to_ascii_lowercase();
            match k.strip_suffix("${tagkey}") {
                Some(prefix) => key.starts_with(prefix),
                None => k == key,
            }
        })
    }
}

// ---------------------------------------------------------------------------
// A model of the deployed stack: physical ids and ARNs for the template's
// resources, and CloudFormation's intrinsic functions resolved with them.

const ACCOUNT: &str = "123456789012";
/// The region of desired-state/ (the deploy workflow sets both equal).
const REGION: &str = "us-east-2";
const STACK: &str = "app-stack";

struct Stack {
    resources: serde_yaml::Mapping,
    parameters: BTreeMap<String, String>,
    conditions: serde_yaml::Mapping,
    outputs: serde_yaml::Mapping,
}

/// A stable fake id: `len` hex digits from a name.
fn fake_hex(name: &str, len: usize) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut out = String::new();
    while out.len() < len {
        for b in name.bytes().chain(out.clone().bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out.truncate(len);
    out
}

/// `Fn::X` / `!X` as (function, argument), for a value that is one.
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => {
            let name = t.tag.to_string();
            let name = name.trim_start_matches('!');
            Some((
                if name == "Ref" || name == "Condition" { name.to_string() } else { format!("Fn::{name}") },
                &t.value,
            ))
        }
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next().unwrap();
            let k = k.as_str()?;
            (k == "Ref" || k.starts_with("Fn::") || k == "Condition").then(|| (k.to_string(), arg))
        }
        _ => None,
    }
}

impl Stack {
    fn new(template: &str, overrides: &[(&str, &str)]) -> Stack {
        let t: Value = serde_yaml::from_str(template).expect("template is YAML");
        let mut parameters = BTreeMap::new();
        for (name, p) in t["Parameters"].as_mapping().into_iter().flatten() {
            let default = match &p["Default"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => serde_yaml::to_string(other).unwrap().trim().to_string(),
            };
            parameters.insert(name.as_str().unwrap().to_string(), default);
        }
        for (k, v) in overrides {
            parameters.insert(k.to_string(), v.to_string());
        }
        let map = |v: &Value| v.as_mapping().cloned().unwrap_or_default();
        Stack {
            resources: map(&t["Resources"]),
            parameters,
            conditions: map(&t["Conditions"]),
            outputs: map(&t["Outputs"]),
        }
    }

    fn resource(&self, logical: &str) -> &Value {
        self.resources.get(logical).unwrap_or_else(|| panic!("the template has no resource {logical}"))
    }

    fn prop(&self, logical: &str, name: &str) -> String {
        let v = self.resolve(&self.resource(logical)["Properties"][name]);
        v.as_str().map_or_else(|| logical.to_string(), str::to_string)
    }

    fn ref_(&self, name: &str) -> String {
        match name {
            "AWS::Partition" => return "aws".into(),
            "AWS::Region" => return REGION.into(),
            "AWS::AccountId" => return ACCOUNT.into(),
            "AWS::StackName" => return STACK.into(),
            "AWS::StackId" => {
                return format!("arn:aws:cloudformation:{REGION}:{ACCOUNT}:stack/{STACK}/{}", fake_hex(STACK, 32));
            }
            "AWS::URLSuffix" => return "amazonaws.com".into(),
            _ => {}
        }
        if let Some(p) = self.parameters.get(name) {
            return p.clone();
        }
        let kind = self.resource(name)["Type"].as_str().unwrap_or_default().to_string();
        match kind.as_str() {
            "AWS::ECS::Cluster" => self.prop(name, "ClusterName"),
            "AWS::ECS::Service" => {
                let cluster = self.resolve(&self.resource(name)["Properties"]["Cluster"]);
                format!(
                    "arn:aws:ecs:{REGION}:{ACCOUNT}:service/{}/{}",
                    cluster.as_str().unwrap_or_default(),
                    self.prop(name, "ServiceName")
                )
            }
            "AWS::ElasticLoadBalancingV2::TargetGroup" => format!(
                "arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{}/{}",
                self.prop(name, "Name"),
                fake_hex(name, 16)
            ),
            "AWS::EC2::Subnet" => format!("subnet-{}", fake_hex(name, 17)),
            "AWS::EC2::SecurityGroup" => format!("sg-{}", fake_hex(name, 17)),
            "AWS::AutoScaling::AutoScalingGroup" => self.prop(name, "AutoScalingGroupName"),
            "AWS::DynamoDB::Table" => self.prop(name, "TableName"),
            "AWS::IAM::Role" => format!("{STACK}-{name}-{}", fake_hex(name, 12).to_ascii_uppercase()),
            _ => format!("{name}-{}", fake_hex(name, 8)),
        }
    }

    fn get_att(&self, name: &str, attr: &str) -> String {
        let kind = self.resource(name)["Type"].as_str().unwrap_or_default().to_string();
        match (kind.as_str(), attr) {
            ("AWS::ECS::Cluster", "Arn") => format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{}", self.ref_(name)),
            ("AWS::IAM::Role", "Arn") => format!("arn:aws:iam::{ACCOUNT}:role/{}", self.ref_(name)),
            ("AWS::EC2::Subnet", "AvailabilityZone") => {
                let az = self.resolve(&self.resource(name)["Properties"]["AvailabilityZone"]);
                az.as_str().unwrap_or("").to_string()
            }
            ("AWS::ElasticLoadBalancingV2::TargetGroup", "TargetGroupArn") => self.ref_(name),
            ("AWS::DynamoDB::Table", "Arn") => format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{}", self.ref_(name)),
            _ => format!("{}.{attr}", self.ref_(name)),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let c = self.conditions.get(name).unwrap_or_else(|| panic!("no condition {name}"));
        self.truth(c)
    }

    fn truth(&self, v: &Value) -> bool {
        let (f, arg) = intrinsic(v).unwrap_or_else(|| panic!("not a condition: {v:?}"));
        let args = arg.as_sequence().cloned().unwrap_or_default();
        match f.as_str() {
            "Fn::Equals" => self.resolve(&args[0]) == self.resolve(&args[1]),
            "Fn::Not" => !self.truth(&args[0]),
            "Fn::And" => args.iter().all(|a| self.truth(a)),
            "Fn::Or" => args.iter().any(|a| self.truth(a)),
            "Condition" => self.condition(arg.as_str().unwrap()),
            other => panic!("condition function {other} is not modelled"),
        }
    }

    /// `v` with every intrinsic function replaced by its value.
    fn resolve(&self, v: &Value) -> Value {
        if let Some((f, arg)) = intrinsic(v) {
            return match f.as_str() {
                "Ref" => Value::String(self.ref_(arg.as_str().expect("Ref names a string"))),
                "Fn::GetAtt" => {
                    let (name, attr) = match arg {
                        Value::String(s) => s.split_once('.').map(|(a, b)| (a.to_string(), b.to_string())),
                        Value::Sequence(s) => Some((
                            s[0].as_str().unwrap_or_default().to_string(),
                            s[1].as_str().unwrap_or_default().to_string(),
                        )),
                        _ => None,
                    }
                    .unwrap_or_else(|| panic!("bad GetAtt {arg:?}"));
                    Value::String(self.get_att(&name, &attr))
                }
                "Fn::Sub" => {
                    let (text, vars) = match arg {
                        Value::String(s) => (s.clone(), serde_yaml::Mapping::new()),
                        Value::Sequence(s) => (
                            s[0].as_str().unwrap_or_default().to_string(),
                            s.get(1).and_then(Value::as_mapping).cloned().unwrap_or_default(),
                        ),
                        _ => panic!("bad Sub {arg:?}"),
                    };
                    Value::String(self.sub(&text, &vars))
                }
                "Fn::Join" => {
                    let s = arg.as_sequence().expect("Join takes a list");
                    let parts = self.resolve(&s[1]);
                    let parts: Vec<String> = parts
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .map(|p| p.as_str().unwrap_or("").to_string())
                        .collect();
                    Value::String(parts.join(s[0].as_str().unwrap_or("")))
                }
                "Fn::If" => {
                    let s = arg.as_sequence().expect("If takes a list");
                    let chosen = if self.condition(s[0].as_str().unwrap()) { &s[1] } else { &s[2] };
                    self.resolve(chosen)
                }
                "Fn::Select" => {
                    let s = arg.as_sequence().expect("Select takes a list");
                    let i = self.resolve(&s[0]);
                    let i: usize = i.as_u64().map(|n| n as usize).or_else(|| i.as_str()?.parse().ok()).unwrap_or(0);
                    let list = self.resolve(&s[1]);
                    list.as_sequence().and_then(|l| l.get(i).cloned()).unwrap_or(Value::Null)
                }
                "Fn::GetAZs" => {
                    Value::Sequence(["a", "b", "c"].iter().map(|z| Value::String(format!("{REGION}{z}"))).collect())
                }
                "Fn::Base64" => self.resolve(arg),
                other => panic!("intrinsic function {other} is not modelled by tests/iam.rs"),
            };
        }
        match v {
            Value::Sequence(items) => Value::Sequence(items.iter().map(|i| self.resolve(i)).collect()),
            Value::Mapping(m) => Value::Mapping(m.iter().map(|(k, v)| (k.clone(), self.resolve(v))).collect()),
            other => other.clone(),
        }
    }

    fn sub(&self, text: &str, vars: &serde_yaml::Mapping) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(p) = rest.find("${") {
            out.push_str(&rest[..p]);
            let end = rest[p..].find('}').map(|e| p + e).expect("unclosed ${ in Sub");
            let name = &rest[p + 2..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str(&format!("${{{literal}}}"));
            } else if let Some(v) = vars.get(name) {
                out.push_str(self.resolve(v).as_str().unwrap_or_default());
            } else if let Some((res, attr)) = name.split_once('.') {
                out.push_str(&self.get_att(res, attr));
            } else {
                out.push_str(&self.ref_(name));
            }
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    /// The logical id of the resource of `kind` whose property `prop` is `value`.
    fn find(&self, kind: &str, prop: &str, value: &str) -> Option<String> {
        self.resources.iter().find_map(|(id, r)| {
            let id = id.as_str()?;
            (r["Type"].as_str() == Some(kind) && self.prop(id, prop) == value).then(|| id.to_string())
        })
    }

    /// A resource's tags (`Tags: [{Key, Value}]`), resolved.
    /// The value of the environment variable `var` of the first container
    /// of the task definition `logical`, resolved.
    fn task_environment(&self, logical: &str, var: &str) -> Option<String> {
        let containers = self.resource(logical)["Properties"]["ContainerDefinitions"].as_sequence()?;
        let env = containers.first()?["Environment"].as_sequence()?;
        let entry = env.iter().find(|e| e["Name"].as_str() == Some(var))?;
        self.resolve(&entry["Value"]).as_str().map(str::to_string)
    }

    fn tags(&self, logical: &str) -> BTreeMap<String, String> {
        let tags = self.resolve(&self.resource(logical)["Properties"]["Tags"]);
        tags.as_sequence()
            .into_iter()
            .flatten()
            .filter_map(|t| Some((t["Key"].as_str()?.to_string(), t["Value"].as_str()?.to_string())))
            .collect()
    }

    fn output(&self, name: &str) -> String {
        let o = self.outputs.get(name).unwrap_or_else(|| panic!("the template has no output {name}"));
        self.resolve(&o["Value"]).as_str().unwrap_or_default().to_string()
    }
}

// ---------------------------------------------------------------------------
// The role's policy and a small evaluator.

/// One condition: `Operator: {key: [values]}`, operator split into its
/// set qualifier (`ForAllValues:` / `ForAnyValue:`), base and `IfExists`.
#[derive(Debug, Clone)]
struct Condition {
    /// As written, for messages.
    operator: String,
    set: Option<SetOperator>,
    base: String,
    if_exists: bool,
    key: String,
    values: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum SetOperator {
    /// Every value in the request matches (true when there is none).
    ForAll,
    /// At least one value in the request matches.
    ForAny,
}

/// The condition operators the evaluator implements; any other fails the
/// test rather than being skipped.
const OPERATORS: &[&str] = &[
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
    "ArnEquals",
    "ArnNotEquals",
    "ArnLike",
    "ArnNotLike",
    "Bool",
    "Null",
];

/// One statement of the role.
#[derive(Debug, Clone)]
struct Statement {
    sid: String,
    allow: bool,
    actions: Vec<String>,
    resources: Vec<String>,
    conditions: Vec<Condition>,
}

impl Statement {
    /// Resource is exactly "*" (or a list containing "*").
    fn any_resource(&self) -> bool {
        self.resources.iter().any(|r| r == "*")
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Bool(b) => vec![b.to_string()],
        Value::Number(n) => vec![n.to_string()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn parse_condition(operator: &str, key: &str, values: &Value, origin: &str) -> Condition {
    let (set, rest) = if let Some(r) = operator.strip_prefix("ForAllValues:") {
        (Some(SetOperator::ForAll), r)
    } else if let Some(r) = operator.strip_prefix("ForAnyValue:") {
        (Some(SetOperator::ForAny), r)
    } else {
        (None, operator)
    };
    let (base, if_exists) = match rest.strip_suffix("IfExists") {
        Some(b) => (b, true),
        None => (rest, false),
    };
    assert!(
        OPERATORS.contains(&base),
        "{origin}: condition operator {operator} is not implemented by the evaluator in tests/iam.rs; \
         add it there (it must not be skipped)"
    );
    Condition {
        operator: operator.to_string(),
        set,
        base: base.to_string(),
        if_exists,
        key: key.to_string(),
        values: strings(values),
    }
}

/// A policy document's statements; intrinsics must be resolved already.
fn statements_of(doc: &Value, origin: &str) -> Vec<Statement> {
    let stmts = match &doc["Statement"] {
        Value::Sequence(s) => s.clone(),
        single @ Value::Mapping(_) => vec![single.clone()],
        other => panic!("{origin}: Statement is not a list: {other:?}"),
    };
    stmts
        .iter()
        .map(|s| {
            let sid = s["Sid"].as_str().unwrap_or("(no Sid)").to_string();
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{origin} statement {sid}: NotAction/NotResource grant more than they name"
            );
            let actions = strings(&s["Action"]);
            assert!(!actions.is_empty(), "{origin} statement {sid}: no Action");
            let mut conditions = Vec::new();
            for (op, keys) in s["Condition"].as_mapping().into_iter().flatten() {
                let op = op.as_str().expect("condition operator");
                for (key, values) in keys.as_mapping().unwrap_or_else(|| panic!("{origin} {sid}: {op} is not a map")) {
                    conditions.push(parse_condition(op, key.as_str().unwrap(), values, &format!("{origin} {sid}")));
                }
            }
            Statement {
                sid,
                allow: s["Effect"].as_str() == Some("Allow"),
                actions,
                resources: strings(&s["Resource"]),
                conditions,
            }
        })
        .collect()
}

/// Whether `v` is `!Ref ROLE` / `{"Ref": ROLE}` (how a policy names a role).
fn refers_to_role(v: &Value) -> bool {
    match v {
        Value::Tagged(t) => t.tag == "Ref" && t.value.as_str() == Some(ROLE),
        Value::Mapping(m) => m.get("Ref").and_then(Value::as_str) == Some(ROLE),
        _ => false,
    }
}

/// Every statement that applies to the role: its inline policies, and any
/// AWS::IAM::Policy / ManagedPolicy attached to it, resolved on `stack`.
fn role_statements_in(template: &str, stack: &Stack) -> Vec<Statement> {
    // serde_yaml keeps CloudFormation's short tags (!Sub, !Ref, !GetAtt, …)
    // as tagged values, so the template parses without knowing them.
    let t: Value = serde_yaml::from_str(template).expect("template is YAML");
    let resources = t["Resources"].as_mapping().expect("Resources mapping");
    let role = resources.get(ROLE).unwrap_or_else(|| panic!("no resource {ROLE} in the template"));
    assert_eq!(role["Type"].as_str(), Some("AWS::IAM::Role"), "{ROLE} type");
    let props = &role["Properties"];
    assert!(
        props.get("ManagedPolicyArns").is_none(),
        "{ROLE} has ManagedPolicyArns: a managed policy grants actions this check cannot see"
    );
    let mut out = Vec::new();
    if let Some(policies) = props["Policies"].as_sequence() {
        for p in policies {
            let name = p["PolicyName"].as_str().unwrap_or("?");
            out.extend(statements_of(&stack.resolve(&p["PolicyDocument"]), &format!("{ROLE} policy {name}")));
        }
    }
    for (id, res) in resources {
        let kind = res["Type"].as_str().unwrap_or("");
        if !matches!(kind, "AWS::IAM::Policy" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::RolePolicy") {
            continue;
        }
        let rp = &res["Properties"];
        let attached = match &rp["Roles"] {
            Value::Sequence(roles) => roles.iter().any(refers_to_role),
            _ => false,
        } || refers_to_role(&rp["RoleName"]);
        if attached {
            let id = id.as_str().unwrap_or("?");
            out.extend(statements_of(&stack.resolve(&rp["PolicyDocument"]), &format!("{kind} {id}")));
        }
    }
    out
}

/// The role's statements in `template`, resolved with default parameters.
fn role_statements(template: &str) -> Vec<Statement> {
    role_statements_in(template, &Stack::new(template, &[("GitHubRepository", "owner/repo")]))
}

/// The actions the role's Allow statements name.
fn allowed_actions(statements: &[Statement]) -> BTreeSet<String> {
    statements.iter().filter(|s| s.allow).flat_map(|s| s.actions.iter().cloned()).collect()
}

/// Allow statements that grant on `Resource: "*"` an action that AWS
/// authorizes against a resource ARN: (Sid, action). (Actions AWS
/// authorizes against `*` as ballast calls them are in
/// [`EVALUATED_ON_STAR`]; the probes check their conditions narrow them.)
fn needless_wildcards(statements: &[Statement]) -> Vec<(String, String)> {
    statements
        .iter()
        .filter(|s| s.allow && s.any_resource())
        .flat_map(|s| {
            s.actions
                .iter()
                .filter(|a| !NO_RESOURCE_LEVEL.contains(&a.as_str()) && !EVALUATED_ON_STAR.iter().any(|(x, _)| x == a))
                .map(|a| (s.sid.clone(), a.clone()))
        })
        .collect()
}

/// IAM's wildcard match: `*` any run of characters, `?` one.
fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (pattern.to_lowercase().chars().collect(), text.to_lowercase().chars().collect())
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    // Iterative matching with backtracking to the last `*`.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// ARN matching: the six colon-separated parts are matched one by one
/// (the last keeps its colons), so a `*` in the region cannot reach into
/// the resource part. A non-ARN (`*` as the resource of an action with no
/// resource type) matches only a pattern that is all wildcards.
fn arn_match(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if p.len() != 6 || a.len() != 6 {
        // An ARN pattern must have all six parts to match an ARN.
        return !pattern.starts_with("arn:") && glob(pattern, arn, false);
    }
    p.iter().zip(&a).all(|(p, a)| glob(p, a, false))
}

/// The request context: condition key (lowercase) → values. Absent keys
/// are not in the map.
type Context = BTreeMap<String, Vec<String>>;

impl Condition {
    /// Whether one request value matches one of the condition's values
    /// (for the base operator without its negation).
    fn value_matches(&self, value: &str) -> bool {
        let positive = self.base.replace("Not", "");
        self.values.iter().any(|p| match positive.as_str() {
            "StringEquals" => p == value,
            "StringEqualsIgnoreCase" => p.eq_ignore_ascii_case(value),
            "StringLike" => glob(p, value, false),
            "ArnEquals" | "ArnLike" => arn_match(p, value),
            "Bool" => p.eq_ignore_ascii_case(value),
            other => unreachable!("{other}"),
        })
    }

    fn negated(&self) -> bool {
        self.base.contains("Not")
    }

    /// AWS's evaluation of one condition against the request context.
    fn holds(&self, ctx: &Context) -> bool {
        let present = ctx.get(&self.key.to_ascii_lowercase()).filter(|v| !v.is_empty());
        if self.base == "Null" {
            let want_absent = self.values.iter().all(|v| v.eq_ignore_ascii_case("true"));
            return present.is_none() == want_absent;
        }
        let one = |v: &String| self.value_matches(v) != self.negated();
        match (self.set, present) {
            // A missing key: no match, except for negated operators and
            // ...IfExists; ForAllValues is true of the empty set.
            (None, None) => self.if_exists || self.negated(),
            (Some(SetOperator::ForAll), None) => true,
            (Some(SetOperator::ForAny), None) => false,
            (None, Some(vals)) => {
                assert!(
                    vals.len() == 1,
                    "{} on the multivalued key {} without ForAllValues/ForAnyValue: AWS's \
                     evaluation of that is not what it looks like; use a set operator",
                    self.operator,
                    self.key
                );
                one(&vals[0])
            }
            (Some(SetOperator::ForAll), Some(vals)) => vals.iter().all(one),
            (Some(SetOperator::ForAny), Some(vals)) => vals.iter().any(one),
        }
    }
}

/// One request as IAM authorizes it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Request {
    action: String,
    resource: String,
    context: Context,
    /// What the request is, for messages.
    about: String,
}

impl Request {
    fn key(&self) -> (&str, &str, &Context) {
        (&self.action, &self.resource, &self.context)
    }
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} on {}", self.action, self.resource)?;
        if !self.context.is_empty() {
            let ctx: Vec<String> = self.context.iter().map(|(k, v)| format!("{k}={}", v.join(","))).collect();
            write!(f, " with {}", ctx.join(", "))?;
        }
        write!(f, " ({})", self.about)
    }
}

/// IAM's decision on one request.
#[derive(Debug, PartialEq)]
enum Decision {
    /// Allowed by the statement with this Sid.
    Allowed(String),
    /// No statement allows it.
    ImplicitDeny,
    /// A Deny statement matches.
    Denied(String),
}

struct Policy<'a>(&'a [Statement]);

impl Policy<'_> {
    fn matches(s: &Statement, r: &Request) -> bool {
        s.actions.iter().any(|a| glob(a, &r.action, true))
            && s.resources.iter().any(|p| arn_match(p, &r.resource))
            && s.conditions.iter().all(|c| c.holds(&r.context))
    }

    /// An explicit Deny wins; otherwise the first Allow that matches.
    fn decide(&self, r: &Request) -> Decision {
        if let Some(s) = self.0.iter().find(|s| !s.allow && Self::matches(s, r)) {
            return Decision::Denied(s.sid.clone());
        }
        match self.0.iter().find(|s| s.allow && Self::matches(s, r)) {
            Some(s) => Decision::Allowed(s.sid.clone()),
            None => Decision::ImplicitDeny,
        }
    }
}

// ---------------------------------------------------------------------------
// The requests ballast makes, as IAM sees them.

/// Stand-ins for ids AWS makes up (any value does: policies cannot name
/// them in advance, so they match by wildcard).
const TASK_ID: &str = "0123456789abcdef0123456789abcdef";
const CONTAINER_INSTANCE_ID: &str = "fedcba9876543210fedcba9876543210";
const GROUP_UUID: &str = "01234567-89ab-cdef-0123-456789abcdef";

/// The request parameters the model knows, per action: what ballast sends
/// and the parameters a probe may add. A call that sets anything else
/// fails `every_call_is_modelled`, so that a new parameter that becomes a
/// condition key (a launch template, a task definition) is not missed.
const KNOWN_PARAMS: &[(&str, &[&str])] = &[
    // `include: [TAGS]` returns the service's tags (the scaling marks);
    // the reference lists no condition key or extra action for it.
    ("ecs:DescribeServices", &["cluster", "services", "include"]),
    ("ecs:UpdateService", &["cluster", "service", "desired_count"]),
    ("ecs:TagResource", &["resource_arn", "tags"]),
    ("ecs:ListTasks", &["cluster", "desired_status", "max_results", "next_token", "container_instance"]),
    ("ecs:DescribeTasks", &["cluster", "tasks"]),
    // Task scale-in protection (issue 15): the same resource and keys as
    // DescribeTasks in the reference.
    ("ecs:GetTaskProtection", &["cluster", "tasks"]),
    ("ecs:UpdateTaskProtection", &["cluster", "tasks", "protection_enabled", "expires_in_minutes"]),
    ("ecs:ListContainerInstances", &["cluster", "max_results", "next_token"]),
    ("ecs:DescribeContainerInstances", &["cluster", "container_instances"]),
    ("ecs:UpdateContainerInstancesState", &["cluster", "container_instances", "status"]),
    ("ecs:DescribeTaskDefinition", &["task_definition"]),
    (
        "application-autoscaling:DescribeScalableTargets",
        &["service_namespace", "scalable_dimension", "resource_ids", "next_token"],
    ),
    ("elasticloadbalancing:DescribeTargetGroups", &["names", "target_group_arns"]),
    ("elasticloadbalancing:DescribeTargetHealth", &["target_group_arn"]),
    ("elasticloadbalancing:RegisterTargets", &["target_group_arn", "targets"]),
    ("elasticloadbalancing:DeregisterTargets", &["target_group_arn", "targets"]),
    ("cloudwatch:DescribeAlarms", &["alarm_names", "alarm_types", "next_token"]),
    ("cloudwatch:ListTagsForResource", &["resource_arn"]),
    ("cloudwatch:TagResource", &["resource_arn", "tags"]),
    (
        "cloudwatch:PutMetricAlarm",
        &[
            "alarm_name",
            "alarm_description",
            "namespace",
            "metric_name",
            "dimensions",
            "period",
            "evaluation_periods",
            "datapoints_to_alarm",
            "threshold",
            "comparison_operator",
            "treat_missing_data",
            "tags",
            "statistic",
            "extended_statistic",
            "alarm_actions",
            "ok_actions",
            "insufficient_data_actions",
        ],
    ),
    ("cloudwatch:GetMetricData", &["metric_data_queries", "start_time", "end_time", "scan_by", "next_token"]),
    ("autoscaling:DescribeAutoScalingGroups", &["auto_scaling_group_names", "max_records", "next_token"]),
    ("autoscaling:SetDesiredCapacity", &["auto_scaling_group_name", "desired_capacity", "honor_cooldown"]),
    ("autoscaling:TerminateInstanceInAutoScalingGroup", &["instance_id", "should_decrement_desired_capacity"]),
    ("autoscaling:CreateOrUpdateTags", &["tags"]),
    ("autoscaling:SuspendProcesses", &["auto_scaling_group_name", "scaling_processes"]),
    ("autoscaling:DescribeLifecycleHooks", &["auto_scaling_group_name", "lifecycle_hook_names"]),
    (
        "autoscaling:PutLifecycleHook",
        &[
            "auto_scaling_group_name",
            "lifecycle_hook_name",
            "lifecycle_transition",
            "heartbeat_timeout",
            "default_result",
        ],
    ),
    ("autoscaling:RecordLifecycleActionHeartbeat", &["auto_scaling_group_name", "lifecycle_hook_name", "instance_id"]),
    (
        "autoscaling:CompleteLifecycleAction",
        &["auto_scaling_group_name", "lifecycle_hook_name", "instance_id", "lifecycle_action_result"],
    ),
    // The leadership lease (`src/cloud/aws/lease.rs`): conditions and
    // expressions name the item's own attributes, which IAM does not see
    // unless a policy uses dynamodb:Attributes (this one does not).
    ("dynamodb:GetItem", &["table_name", "key", "consistent_read"]),
    (
        "dynamodb:PutItem",
        &["table_name", "item", "condition_expression", "expression_attribute_names", "expression_attribute_values"],
    ),
    (
        "dynamodb:DeleteItem",
        &["table_name", "key", "condition_expression", "expression_attribute_names", "expression_attribute_values"],
    ),
    (
        "autoscaling:UpdateAutoScalingGroup",
        &[
            "auto_scaling_group_name",
            "vpc_zone_identifier",
            "min_size",
            "max_size",
            "launch_template",
            "launch_configuration_name",
        ],
    ),
];

/// What ballast names in its calls: the desired state's names, made into
/// ARNs and ids by the stack model.
#[derive(Debug, Clone)]
struct Args {
    region: String,
    account: String,
    /// (cluster, service) of every Service document.
    services: Vec<(String, String)>,
    /// Clusters whose tasks and container instances ballast reads.
    clusters: BTreeSet<String>,
    /// Bound target groups, by ARN.
    target_groups: Vec<String>,
    /// The alarms ballast keeps (its own naming, `plan::alarms`).
    alarms: Vec<String>,
    /// Auto Scaling groups by name, with their tags (what
    /// `autoscaling:ResourceTag/…` and `aws:ResourceTag/…` evaluate).
    groups: BTreeMap<String, BTreeMap<String, String>>,
    /// Every VPCZoneIdentifier ballast may send: the always-on subnets
    /// plus any combination of on-demand ones.
    subnet_sets: Vec<Vec<String>>,
    /// The tags PutMetricAlarm carries.
    alarm_tags: BTreeMap<String, String>,
    /// The scaling marks ECS TagResource may set on a service, one per
    /// call (`crate::cloud::marks` in ballast).
    service_marks: BTreeMap<String, String>,
    /// The capacity mark CreateOrUpdateTags sets on a group.
    group_marks: BTreeMap<String, String>,
    /// The lease table ballast's task is given (`BALLAST_LEASE_TABLE`).
    lease_tables: Vec<String>,
}

/// The tag ballast puts on its alarms (`MANAGED_BY_TAG` in the adapter).
const ALARM_TAG: (&str, &str) = ("managed-by", "ballast");

/// The time in the scaling marks of the model (any value does: the
/// policy cannot know it, and conditions only the keys).
const MARK_TIME: std::time::SystemTime = std::time::SystemTime::UNIX_EPOCH;

/// The desired state in `dir`, its subnets filled from the stack's outputs
/// as `deploy/fill-desired-state.sh` fills them (always-on zones get
/// `PrivateSubnetA`, on-demand ones `PrivateSubnetB`).
fn args_from(dir: &Path, stack: &Stack) -> Args {
    use ballast::cloud::marks;
    use ballast::desired::{TargetGroupRef, ZoneMode};
    let desired = ballast::desired::load_dir(dir, REGION)
        .unwrap_or_else(|e| panic!("{}: the desired state does not load: {e:?}", dir.display()));
    let (subnet_a, subnet_b) = (stack.output("PrivateSubnetA"), stack.output("PrivateSubnetB"));
    let mut args = Args {
        region: REGION.into(),
        account: ACCOUNT.into(),
        services: Vec::new(),
        clusters: BTreeSet::new(),
        target_groups: Vec::new(),
        alarms: Vec::new(),
        groups: BTreeMap::new(),
        subnet_sets: Vec::new(),
        alarm_tags: [(ALARM_TAG.0.to_string(), ALARM_TAG.1.to_string())].into(),
        service_marks: [marks::LAST_SCALE_OUT, marks::LAST_SCALE_IN]
            .iter()
            .map(|k| (k.to_string(), marks::scaling_value(MARK_TIME, 4)))
            .chain([(
                marks::DEPLOYMENT_SURGE.to_string(),
                marks::surge_value(&ballast::observed::SurgeMark {
                    deployment: "ecs-svc/1".into(),
                    counts: vec![(5, 4), (4, 4)],
                }),
            )])
            .collect(),
        group_marks: [(marks::LAST_CAPACITY_CHANGE.to_string(), marks::capacity_value(MARK_TIME))].into(),
        lease_tables: stack.task_environment("BallastTaskDefinition", "BALLAST_LEASE_TABLE").into_iter().collect(),
    };
    assert!(
        !args.lease_tables.is_empty(),
        "BallastTaskDefinition gives ballast no BALLAST_LEASE_TABLE: the lease calls would name no table to check"
    );
    for s in &desired.services {
        args.services.push((s.id.cluster.clone(), s.id.service.clone()));
        args.clusters.insert(s.id.cluster.clone());
        for b in &s.target_groups {
            let arn = match &b.target_group.target_group {
                TargetGroupRef::Arn(a) => a.clone(),
                TargetGroupRef::Name(n) => {
                    let id = stack.find("AWS::ElasticLoadBalancingV2::TargetGroup", "Name", n).unwrap_or_else(|| {
                        panic!("desired-state binds target group {n}, which the stack does not create")
                    });
                    stack.ref_(&id)
                }
            };
            args.target_groups.push(arn);
        }
        if s.scaling.is_some() {
            args.alarms.extend(ballast::plan::alarms::alarm_names(&s.id));
        }
    }
    for c in &desired.capacities {
        args.clusters.insert(c.cluster.clone());
        let id = stack
            .find("AWS::AutoScaling::AutoScalingGroup", "AutoScalingGroupName", &c.group.name)
            .unwrap_or_else(|| panic!("desired-state names group {}, which the stack does not create", c.group.name));
        args.groups.insert(c.group.name.clone(), stack.tags(&id));
        let always: Vec<String> =
            c.zones.iter().filter(|z| matches!(z.mode, ZoneMode::AlwaysOn)).map(|_| subnet_a.clone()).collect();
        let on_demand = c.zones.iter().filter(|z| matches!(z.mode, ZoneMode::OnDemand { .. })).count();
        for picked in 0..(1u32 << on_demand) {
            let mut set = always.clone();
            set.extend((0..on_demand).filter(|i| picked & (1 << i) != 0).map(|_| subnet_b.clone()));
            set.dedup();
            args.subnet_sets.push(set);
        }
    }
    args
}

fn kv(key: &str, values: Vec<String>) -> (String, Vec<String>) {
    (key.to_string(), values)
}

/// Every request `action` makes when sent with `params`, for `a`.
fn requests(sar: &Reference, action: &str, a: &Args, params: &BTreeSet<String>) -> Vec<Request> {
    let has = |p: &str| params.contains(p);
    let arn = |values: &[(&str, &str)]| {
        let mut all = vec![("Partition", "aws"), ("Region", a.region.as_str()), ("Account", a.account.as_str())];
        all.extend_from_slice(values);
        sar.arn(action, &all)
    };
    let cluster_arn = |c: &str| format!("arn:aws:ecs:{}:{}:cluster/{c}", a.region, a.account);
    let request = |resource: String, context: Vec<(String, Vec<String>)>, about: String| {
        let context: Context = context.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        for k in context.keys() {
            assert!(
                sar.applies(action, k),
                "the model puts {k} in {action}'s context, which the reference does not list"
            );
        }
        Request { action: action.to_string(), resource, context, about }
    };
    let group_context = |tags: &BTreeMap<String, String>| -> Vec<(String, Vec<String>)> {
        tags.iter()
            .flat_map(|(k, v)| {
                [
                    (format!("autoscaling:ResourceTag/{k}"), vec![v.clone()]),
                    (format!("aws:ResourceTag/{k}"), vec![v.clone()]),
                ]
            })
            .collect()
    };
    let tag_context = || -> Vec<(String, Vec<String>)> {
        let mut c: Vec<_> =
            a.alarm_tags.iter().map(|(k, v)| (format!("aws:RequestTag/{k}"), vec![v.clone()])).collect();
        c.push(kv("aws:TagKeys", a.alarm_tags.keys().cloned().collect()));
        c
    };
    // One tag per call (TagResource, CreateOrUpdateTags): its key and value.
    let one_tag = |k: &String, v: &String| {
        vec![(format!("aws:RequestTag/{k}"), vec![v.clone()]), kv("aws:TagKeys", vec![k.clone()])]
    };
    let star = |about: &str| vec![request("*".into(), vec![], about.into())];
    // One request per cluster on the resource `resource` names, with the
    // ecs:cluster key that ECS sets for every cluster-scoped resource.
    let in_each_cluster = |resource: &dyn Fn(&str) -> String, about: &str| -> Vec<Request> {
        a.clusters
            .iter()
            .map(|c| request(resource(c), vec![kv("ecs:cluster", vec![cluster_arn(c)])], format!("{about} {c}")))
            .collect()
    };
    match action {
        // ECS: services, tasks and container instances carry the cluster in
        // their ARN and in ecs:cluster.
        "ecs:DescribeServices" | "ecs:UpdateService" => a
            .services
            .iter()
            .map(|(c, s)| {
                let r = arn(&[("ClusterName", c), ("ServiceName", s)]);
                request(r, vec![kv("ecs:cluster", vec![cluster_arn(c)])], format!("service {c}/{s}"))
            })
            .collect(),
        // TagResource has no required resource type: AWS authorizes it
        // against the resource tagged, here the service (whose condition
        // keys do not include ecs:cluster).
        "ecs:TagResource" => a
            .services
            .iter()
            .flat_map(|(c, s)| {
                let r = sar.arn_of_type(
                    "ecs:service",
                    &[
                        ("Partition", "aws"),
                        ("Region", a.region.as_str()),
                        ("Account", a.account.as_str()),
                        ("ClusterName", c),
                        ("ServiceName", s),
                    ],
                );
                a.service_marks.iter().map(move |(k, v)| (r.clone(), k, v, format!("mark {k} on service {c}/{s}")))
            })
            .map(|(r, k, v, about)| request(r, one_tag(k, v), about))
            .collect(),
        // The documented exception: without a container instance in the
        // request, ListTasks is authorized against "*".
        "ecs:ListTasks" => in_each_cluster(
            &|c| {
                if has("container_instance") {
                    arn(&[("ClusterName", c), ("ContainerInstanceId", CONTAINER_INSTANCE_ID)])
                } else {
                    "*".to_string()
                }
            },
            "the tasks of cluster",
        ),
        "ecs:DescribeTasks" | "ecs:GetTaskProtection" | "ecs:UpdateTaskProtection" => {
            in_each_cluster(&|c| arn(&[("ClusterName", c), ("TaskId", TASK_ID)]), "a task of cluster")
        }
        "ecs:ListContainerInstances" => a
            .clusters
            .iter()
            .map(|c| request(arn(&[("ClusterName", c)]), vec![], format!("the instances of cluster {c}")))
            .collect(),
        "ecs:DescribeContainerInstances" | "ecs:UpdateContainerInstancesState" => in_each_cluster(
            &|c| arn(&[("ClusterName", c), ("ContainerInstanceId", CONTAINER_INSTANCE_ID)]),
            "an instance of cluster",
        ),
        "elasticloadbalancing:RegisterTargets" | "elasticloadbalancing:DeregisterTargets" => a
            .target_groups
            .iter()
            .map(|tg| {
                let mut parts = tg.rsplit('/');
                let (id, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                let r = arn(&[("TargetGroupName", name), ("TargetGroupId", id)]);
                request(r, vec![], format!("target group {name}"))
            })
            .collect(),
        "cloudwatch:DescribeAlarms" => {
            a.alarms.iter().map(|n| request(arn(&[("AlarmName", n)]), vec![], format!("alarm {n}"))).collect()
        }
        // ListTagsForResource and TagResource name any taggable resource;
        // ballast names its alarms by ARN.
        "cloudwatch:ListTagsForResource" => a
            .alarms
            .iter()
            .map(|n| {
                request(
                    format!("arn:aws:cloudwatch:{}:{}:alarm:{n}", a.region, a.account),
                    vec![],
                    format!("alarm {n}"),
                )
            })
            .collect(),
        "cloudwatch:PutMetricAlarm" | "cloudwatch:TagResource" => a
            .alarms
            .iter()
            .map(|n| {
                let mut ctx = if has("tags") || action == "cloudwatch:TagResource" { tag_context() } else { vec![] };
                // ballast puts back the actions it read (someone's SNS page,
                // say): PutMetricAlarm's context then names them.
                if has("alarm_actions") && action == "cloudwatch:PutMetricAlarm" {
                    ctx.push(kv("cloudwatch:AlarmActions", vec!["arn:aws:automate:us-east-2:ec2:terminate".into()]));
                }
                let r = if action == "cloudwatch:TagResource" {
                    format!("arn:aws:cloudwatch:{}:{}:alarm:{n}", a.region, a.account)
                } else {
                    arn(&[("AlarmName", n)])
                };
                request(r, ctx, format!("alarm {n}"))
            })
            .collect(),
        // The group's ARN carries a UUID ballast never sees; policies name
        // the group by its name part. TerminateInstanceInAutoScalingGroup
        // names only the instance: AWS authorizes it against the group the
        // instance is in, and ballast terminates only its groups' instances.
        "autoscaling:SetDesiredCapacity"
        | "autoscaling:TerminateInstanceInAutoScalingGroup"
        | "autoscaling:SuspendProcesses"
        | "autoscaling:PutLifecycleHook"
        | "autoscaling:RecordLifecycleActionHeartbeat"
        | "autoscaling:CompleteLifecycleAction" => a
            .groups
            .iter()
            .map(|(g, tags)| {
                let r = arn(&[("GroupId", GROUP_UUID), ("GroupFriendlyName", g)]);
                request(r, group_context(tags), format!("group {g}"))
            })
            .collect(),
        "autoscaling:CreateOrUpdateTags" => a
            .groups
            .iter()
            .flat_map(|(g, tags)| {
                let r = arn(&[("GroupId", GROUP_UUID), ("GroupFriendlyName", g)]);
                a.group_marks.iter().map(move |(k, v)| {
                    let mut ctx = group_context(tags);
                    ctx.extend(one_tag(k, v));
                    (r.clone(), ctx, format!("mark {k} on group {g}"))
                })
            })
            .map(|(r, ctx, about)| request(r, ctx, about))
            .collect(),
        "autoscaling:UpdateAutoScalingGroup" => {
            let mut out = Vec::new();
            for (g, tags) in &a.groups {
                for subnets in &a.subnet_sets {
                    let r = arn(&[("GroupId", GROUP_UUID), ("GroupFriendlyName", g)]);
                    let mut ctx = group_context(tags);
                    if has("vpc_zone_identifier") && !subnets.is_empty() {
                        ctx.push(("autoscaling:VPCZoneIdentifiers".into(), subnets.clone()));
                    }
                    for (param, key, value) in [
                        ("min_size", "autoscaling:MinSize", "0"),
                        ("max_size", "autoscaling:MaxSize", "100"),
                        ("launch_template", "autoscaling:LaunchTemplateVersionSpecified", "true"),
                        ("launch_configuration_name", "autoscaling:LaunchConfigurationName", "other"),
                    ] {
                        if has(param) {
                            ctx.push((key.into(), vec![value.into()]));
                        }
                    }
                    out.push(request(r, ctx, format!("group {g}, subnets [{}]", subnets.join(","))));
                }
            }
            out
        }
        "dynamodb:GetItem" | "dynamodb:PutItem" | "dynamodb:DeleteItem" => a
            .lease_tables
            .iter()
            .map(|t| request(arn(&[("TableName", t)]), vec![], format!("lease table {t}")))
            .collect(),
        a if NO_RESOURCE_LEVEL.contains(&a) => star(a),
        other => panic!(
            "no IAM model for {other} in tests/iam.rs: add one to `requests` from the Service \
             Authorization Reference (its resource type and the condition keys AWS evaluates)"
        ),
    }
}

fn modelled(action: &str) -> bool {
    KNOWN_PARAMS.iter().any(|(a, _)| *a == action)
}

/// Problem lines for called actions the model does not cover.
fn unmodelled(calls: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    calls
        .keys()
        .filter(|a| !modelled(a))
        .map(|a| format!("  {a}: no IAM model, so it cannot be evaluated (see every_call_is_modelled)"))
        .collect()
}

/// Every request ballast makes, each action with the parameters it is
/// sent with, extra actions included.
fn all_requests(sar: &Reference, args: &Args, calls: &BTreeMap<String, BTreeSet<String>>) -> Vec<Request> {
    let mut out = Vec::new();
    // An action without a model fails `every_call_is_modelled` (and the
    // evaluated checks, through `unmodelled`).
    for (action, params) in calls.iter().filter(|(a, _)| modelled(a)) {
        out.extend(requests(sar, action, args, params));
        for (op, param, extra, _) in EXTRA {
            if op == action && params.contains(*param) {
                out.extend(requests(sar, extra, args, params));
            }
        }
    }
    out
}

/// A request ballast never makes, and the policy must deny: a change to
/// the arguments or the parameters of every call.
struct Probe {
    what: &'static str,
    args: fn(&mut Args),
    /// Parameters added to one action's calls.
    params: Option<(&'static str, &'static str)>,
}

const PROBES: &[Probe] = &[
    Probe {
        what: "another cluster",
        args: |a| {
            a.services = a.services.iter().map(|(_, s)| ("someOtherCluster".into(), s.clone())).collect();
            a.clusters = ["someOtherCluster".to_string()].into();
        },
        params: None,
    },
    Probe {
        what: "ballast's own service",
        args: |a| a.services = a.services.iter().map(|(c, _)| (c.clone(), "ballast".into())).collect(),
        params: None,
    },
    Probe {
        what: "another service in the cluster",
        args: |a| a.services = a.services.iter().map(|(c, _)| (c.clone(), "someOtherService".into())).collect(),
        params: None,
    },
    Probe {
        what: "another target group",
        args: |a| {
            a.target_groups = a
                .target_groups
                .iter()
                .map(|t| format!("{}/someOtherTargetGroup/0123456789abcdef", t.split('/').next().unwrap()))
                .collect()
        },
        params: None,
    },
    Probe { what: "an alarm that is not ballast's", args: |a| a.alarms = vec!["someOtherAlarm".into()], params: None },
    Probe {
        what: "another Auto Scaling group",
        args: |a| a.groups = a.groups.values().map(|t| ("someOtherGroup".to_string(), t.clone())).collect(),
        params: None,
    },
    Probe {
        what: "the group without the ballast.dev/managed tag",
        args: |a| {
            for tags in a.groups.values_mut() {
                tags.remove("ballast.dev/managed");
            }
        },
        params: None,
    },
    Probe {
        what: "a subnet outside the stack",
        args: |a| {
            let first = a.subnet_sets.first().and_then(|s| s.first()).cloned().unwrap_or_default();
            a.subnet_sets =
                vec![vec![first, "subnet-0ffffffffffffffff".into()], vec!["subnet-0ffffffffffffffff".into()]];
        },
        params: None,
    },
    Probe {
        what: "an UpdateAutoScalingGroup without subnets (it would change other settings)",
        args: |a| a.subnet_sets = vec![vec![]],
        params: None,
    },
    Probe { what: "a MinSize change", args: |_| {}, params: Some(("autoscaling:UpdateAutoScalingGroup", "min_size")) },
    Probe { what: "a MaxSize change", args: |_| {}, params: Some(("autoscaling:UpdateAutoScalingGroup", "max_size")) },
    Probe {
        what: "a launch template change",
        args: |_| {},
        params: Some(("autoscaling:UpdateAutoScalingGroup", "launch_template")),
    },
    Probe {
        what: "a launch configuration change",
        args: |_| {},
        params: Some(("autoscaling:UpdateAutoScalingGroup", "launch_configuration_name")),
    },
    Probe {
        what: "an alarm tagged with another owner",
        args: |a| a.alarm_tags = [("managed-by".to_string(), "someone-else".to_string())].into(),
        params: None,
    },
    Probe {
        what: "an alarm with a second tag",
        args: |a| {
            a.alarm_tags.insert("owner".into(), "someone".into());
        },
        params: None,
    },
    Probe {
        what: "a service tag that is not a scaling mark",
        args: |a| a.service_marks = [("owner".to_string(), "someone".to_string())].into(),
        params: None,
    },
    Probe {
        what: "the group's ownership tag instead of its capacity mark",
        args: |a| a.group_marks = [("ballast.dev/managed".to_string(), "true".to_string())].into(),
        params: None,
    },
    Probe { what: "another DynamoDB table", args: |a| a.lease_tables = vec!["someOtherTable".into()], params: None },
    Probe { what: "another region", args: |a| a.region = "eu-west-1".into(), params: None },
    Probe { what: "another account", args: |a| a.account = "210987654321".into(), params: None },
];

/// The requests of `probe` that differ from what ballast makes.
fn probe_requests(
    sar: &Reference,
    probe: &Probe,
    args: &Args,
    calls: &BTreeMap<String, BTreeSet<String>>,
    needed: &[Request],
) -> Vec<Request> {
    let mut a = args.clone();
    (probe.args)(&mut a);
    let mut calls = calls.clone();
    if let Some((action, param)) = probe.params {
        calls.entry(action.to_string()).or_default().insert(param.to_string());
    }
    let known: BTreeSet<_> = needed.iter().map(Request::key).collect();
    all_requests(sar, &a, &calls).into_iter().filter(|r| !known.contains(&r.key())).collect()
}

fn template() -> String {
    let path = repo().join("deploy/cloudformation.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The adapter's calls: action → call sites.
fn adapter_calls() -> BTreeMap<String, Vec<Site>> {
    let adapter = repo().join("src/cloud/aws");
    let calls = scan_dir(&adapter);
    assert!(
        !calls.is_empty(),
        "found no AWS SDK calls under {}: either the adapter is not there yet or it \
         no longer calls operations as `<x>.ecs.<op>()`, `.elbv2.<op>()`, \
         `.autoscaling.<op>()`, `.cloudwatch.<op>()` or `.appscaling.<op>()`, which this \
         check relies on",
        adapter.display()
    );
    calls
}

/// Everything the evaluated checks need, on the repository's files.
struct World {
    sar: Reference,
    args: Args,
    calls: BTreeMap<String, BTreeSet<String>>,
    sites: BTreeMap<String, Vec<Site>>,
    statements: Vec<Statement>,
}

fn world() -> World {
    let template = template();
    let stack = Stack::new(&template, &[("GitHubRepository", "owner/repo")]);
    let sites = adapter_calls();
    World {
        sar: reference(),
        args: args_from(&repo().join("desired-state"), &stack),
        calls: params_by_action(&sites),
        statements: role_statements_in(&template, &stack),
        sites,
    }
}

// ---------------------------------------------------------------------------
// The checks on the repository.

#[test]
fn task_role_allows_exactly_what_the_aws_adapter_calls() {
    let calls = adapter_calls();
    let needed = needed_actions(&calls);
    let allowed = allowed_actions(&role_statements(&template()));

    let missing: Vec<String> =
        needed.iter().filter(|(a, _)| !allowed.contains(*a)).map(|(a, why)| format!("  {a} ({why})")).collect();
    let unused: Vec<&String> = allowed.iter().filter(|a| !needed.contains_key(*a)).collect();
    assert!(
        missing.is_empty() && unused.is_empty(),
        "{ROLE} in deploy/cloudformation.yaml does not match the AWS adapter.\n\
         Called but not allowed (AccessDenied in production):\n{}\n\
         Allowed but never called (remove them):\n{}",
        if missing.is_empty() { "  (none)".into() } else { missing.join("\n") },
        if unused.is_empty() {
            "  (none)".into()
        } else {
            unused.iter().map(|a| format!("  {a}")).collect::<Vec<_>>().join("\n")
        },
    );
}

#[test]
fn task_role_uses_resource_star_only_where_aws_allows_nothing_narrower() {
    let statements = role_statements(&template());
    assert!(!statements.is_empty(), "{ROLE} grants nothing");
    let wide = needless_wildcards(&statements);
    assert!(
        wide.is_empty(),
        "these actions support resource-level permissions but are granted on Resource \"*\"; \
         scope them by ARN or condition: {wide:?}"
    );
    for s in &statements {
        for a in &s.actions {
            assert!(!a.contains('*'), "statement {}: wildcard action {a} grants calls ballast never makes", s.sid);
            let on_star = EVALUATED_ON_STAR.iter().any(|(x, _)| x == a);
            assert!(
                !(s.allow && on_star && s.any_resource() && s.conditions.is_empty()),
                "statement {}: {a} on Resource \"*\" without a condition reaches every cluster",
                s.sid
            );
        }
    }
}

#[test]
fn every_call_is_modelled() {
    let calls = adapter_calls();
    let mut problems = Vec::new();
    for (action, sites) in &calls {
        let Some((_, known)) = KNOWN_PARAMS.iter().find(|(a, _)| a == action) else {
            problems.push(format!("  {action} (called at {}): no entry in KNOWN_PARAMS", sites[0]));
            continue;
        };
        for site in sites {
            for p in site.params.iter().filter(|p| !known.contains(&p.as_str())) {
                problems.push(format!(
                    "  {action} is sent with .{p}() at {site}: the IAM model does not know what AWS \
                     evaluates for it (a condition key? another resource?)"
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "calls tests/iam.rs cannot evaluate; model them in KNOWN_PARAMS and `requests`:\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_call_ballast_makes_is_allowed_as_aws_evaluates_it() {
    let w = world();
    let policy = Policy(&w.statements);
    let mut denied = unmodelled(&w.calls);
    for r in all_requests(&w.sar, &w.args, &w.calls) {
        let decision = policy.decide(&r);
        if !matches!(decision, Decision::Allowed(_)) {
            let at = w.sites.get(&r.action).and_then(|s| s.first()).map_or("(extra action)".into(), Site::to_string);
            denied.push(format!("  {r}: {decision:?}; called at {at}"));
        }
    }
    assert!(
        denied.is_empty(),
        "{ROLE} in deploy/cloudformation.yaml does not allow these requests as AWS evaluates them \
         (AccessDenied in production):\n{}",
        denied.join("\n")
    );
}

#[test]
fn nothing_is_allowed_beyond_what_ballast_needs() {
    let w = world();
    let policy = Policy(&w.statements);
    let needed = all_requests(&w.sar, &w.args, &w.calls);
    let mut problems = unmodelled(&w.calls);
    for probe in PROBES {
        let requests = probe_requests(&w.sar, probe, &w.args, &w.calls, &needed);
        if probe.params.is_none() && requests.is_empty() {
            problems.push(format!("  probe \"{}\" changes no request: it tests nothing", probe.what));
        }
        for r in requests {
            if let Decision::Allowed(sid) = policy.decide(&r) {
                problems.push(format!("  {}: {r} is allowed by {sid}", probe.what));
            }
        }
    }
    // Every action of every Allow statement must be what some call needs
    // there: a leftover grant is privilege nobody uses.
    for s in w.statements.iter().filter(|s| s.allow) {
        for a in &s.actions {
            if !needed.iter().any(|r| &r.action == a && Policy::matches(s, r)) {
                problems.push(format!("  statement {} allows {a}, but no call of ballast needs it there", s.sid));
            }
        }
    }
    assert!(problems.is_empty(), "{ROLE} allows more than ballast needs:\n{}", problems.join("\n"));
}

#[test]
fn reference_and_model_agree() {
    let w = world();
    let mut problems = Vec::new();
    let actions: BTreeSet<String> = w.calls.keys().cloned().chain(EXTRA.iter().map(|e| e.2.to_string())).collect();
    for action in &actions {
        let none = w.sar.action(action).resource_types.is_empty();
        if none != NO_RESOURCE_LEVEL.contains(&action.as_str()) {
            problems.push(format!(
                "  {action}: the reference lists {} resource type, NO_RESOURCE_LEVEL says otherwise",
                if none { "no" } else { "a" }
            ));
        }
    }
    for (action, _) in EVALUATED_ON_STAR {
        if w.sar.action(action).resource_types.is_empty() {
            problems.push(format!("  {action} has no resource type: it belongs in NO_RESOURCE_LEVEL"));
        }
    }
    // Actions with no resource type are authorized on "*", the others on
    // an ARN, except the documented exceptions (which depend on the call).
    for r in all_requests(&w.sar, &w.args, &w.calls) {
        if EVALUATED_ON_STAR.iter().any(|(a, _)| *a == r.action) {
            continue;
        }
        if (r.resource == "*") != NO_RESOURCE_LEVEL.contains(&r.action.as_str()) {
            problems.push(format!("  {r}: resource {} disagrees with NO_RESOURCE_LEVEL", r.resource));
        }
    }
    // Multivalued keys need a set operator, and only they take one.
    for s in &w.statements {
        for c in &s.conditions {
            let multi = w.sar.multivalued.contains(&c.key.to_ascii_lowercase());
            if c.base != "Null" && multi != c.set.is_some() {
                problems.push(format!(
                    "  statement {}: {} on {}, which is {}valued",
                    s.sid,
                    c.operator,
                    c.key,
                    if multi { "multi" } else { "single-" }
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the IAM model and the Service Authorization Reference disagree:\n{}",
        problems.join("\n")
    );
}

// ---------------------------------------------------------------------------
// The scanner and the policy reader on small inline samples, so that they
// are tested while the adapter itself is still being written.

#[test]
fn pascal_case_matches_iam_action_names() {
    assert_eq!(pascal("describe_services"), "DescribeServices");
    assert_eq!(pascal("terminate_instance_in_auto_scaling_group"), "TerminateInstanceInAutoScalingGroup");
    assert_eq!(pascal("get_metric_data"), "GetMetricData");
}

const SAMPLE: &str = r#"
//! Adapter sample. `.ecs.delete_cluster()` in a doc comment is not a call.
use std::sync::Arc;

impl Clients {
    async fn services(&self) {
        // self.ecs.delete_service() is commented out
        let out = self.clients.ecs.describe_services().cluster("c").send().await;
        let tgs = self
            .elbv2
            .describe_target_groups()
            .names("frontendTargetGroup")
            .send()
            .await;
        let url = "http://example.com//.ecs.not_a_call()";
        let c = self.cloudwatch.config(); /* .cloudwatch.delete_alarms() */
        let r = regional.autoscaling.set_desired_capacity().send().await;
        let a = x.appscaling.describe_scalable_targets().send().await;
        let w = x.cloudwatch.put_metric_alarm().send().await;
        let other = self.ecs_client.list_clusters();
        let field = self.ecs.region;
        let ch = '"'; let again = y.ecs.list_tasks().send().await;
    }
}

#[cfg(test)]
mod tests {
    fn helper() { c.ecs.create_cluster().send(); { nested(); } }
}

#[cfg(test)]
fn seed() { c.elbv2.create_load_balancer(); }
"#;

#[test]
fn scanner_finds_calls_across_lines_and_ignores_comments_tests_and_non_operations() {
    let (text, _) = blank_test_items(&blank_comments(SAMPLE));
    let found = scan_source(&text);
    let actions: BTreeSet<&str> = found.iter().map(|f| f.action.as_str()).collect();
    let want: BTreeSet<&str> = [
        "ecs:DescribeServices",
        "elasticloadbalancing:DescribeTargetGroups",
        "autoscaling:SetDesiredCapacity",
        "application-autoscaling:DescribeScalableTargets",
        "cloudwatch:PutMetricAlarm",
        "ecs:ListTasks",
    ]
    .into();
    assert_eq!(actions, want);
    // The multi-line chain is reported at the line of `.elbv2`.
    let line = found.iter().find(|f| f.action == "elasticloadbalancing:DescribeTargetGroups").unwrap().line;
    assert_eq!(SAMPLE.lines().nth(line - 1).unwrap().trim(), ".elbv2");
}

#[test]
fn test_only_module_files_are_left_out_of_the_scan() {
    let dir = tempfile::tempdir().unwrap();
    let aws = dir.path().join("aws");
    std::fs::create_dir_all(aws.join("fixtures")).unwrap();
    std::fs::write(aws.join("mod.rs"), "mod observe;\n#[cfg(test)]\nmod fixtures;\nfn f() { c.ecs.list_tasks(); }\n")
        .unwrap();
    std::fs::write(aws.join("observe.rs"), "fn g() { c.cloudwatch.get_metric_data(); }\n").unwrap();
    std::fs::write(aws.join("fixtures/mod.rs"), "fn s() { c.ecs.create_cluster(); }\n").unwrap();
    let calls = scan_dir(&aws);
    let actions: Vec<&str> = calls.keys().map(String::as_str).collect();
    assert_eq!(actions, ["cloudwatch:GetMetricData", "ecs:ListTasks"]);
    assert_eq!(calls["ecs:ListTasks"][0].line, 4);
}

#[test]
fn extra_actions_follow_the_operation_that_needs_them() {
    let mut calls = BTreeMap::new();
    let params = ["alarm_name".to_string(), "tags".to_string()].into();
    calls.insert("cloudwatch:PutMetricAlarm".to_string(), vec![Site { file: "a.rs".into(), line: 1, params }]);
    let needed = needed_actions(&calls);
    assert!(needed["cloudwatch:TagResource"].contains("PutMetricAlarm"));
    assert!(needed_actions(&BTreeMap::new()).is_empty());
}

const TEMPLATE_SAMPLE: &str = r#"
Resources:
  Cluster:
    Type: AWS::ECS::Cluster
  BallastTaskRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: p
          PolicyDocument:
            Statement:
              - Sid: Scoped
                Effect: Allow
                Action: [ecs:UpdateService, ecs:DescribeServices]
                Resource:
                  - !Sub arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:service/c/s
              - Sid: Star
                Effect: Allow
                Action: ecs:DescribeTaskDefinition
                Resource: "*"
              - Sid: TooWide
                Effect: Allow
                Action:
                  - elasticloadbalancing:RegisterTargets
                Resource: "*"
                Condition:
                  StringEquals:
                    aws:ResourceTag/x: !Ref Cluster
              - Sid: Denied
                Effect: Deny
                Action: ecs:DeleteService
                Resource: "*"
  Extra:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: extra
      Roles: [!Ref BallastTaskRole]
      PolicyDocument:
        Statement:
          Effect: Allow
          Action: cloudwatch:GetMetricData
          Resource: "*"
  Unrelated:
    Type: AWS::IAM::Policy
    Properties:
      PolicyName: other
      Roles: [!Ref OtherRole]
      PolicyDocument:
        Statement:
          - Effect: Allow
            Action: s3:GetObject
            Resource: !GetAtt Bucket.Arn
"#;

#[test]
fn policy_reader_handles_short_tags_and_attached_policies() {
    let statements = role_statements(TEMPLATE_SAMPLE);
    let allowed = allowed_actions(&statements);
    let want: BTreeSet<String> = [
        "ecs:UpdateService",
        "ecs:DescribeServices",
        "ecs:DescribeTaskDefinition",
        "elasticloadbalancing:RegisterTargets",
        "cloudwatch:GetMetricData",
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(allowed, want, "Deny statements and other roles' policies grant nothing");
    assert_eq!(
        needless_wildcards(&statements),
        [("TooWide".to_string(), "elasticloadbalancing:RegisterTargets".to_string())]
    );
}

#[test]
#[should_panic(expected = "ManagedPolicyArns")]
fn a_managed_policy_on_the_role_is_refused() {
    role_statements(
        "Resources:\n  BallastTaskRole:\n    Type: AWS::IAM::Role\n    Properties:\n      \
         ManagedPolicyArns: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n",
    );
}

// ---------------------------------------------------------------------------
// The parameter scan, the stack model and the evaluator on small samples.

#[test]
fn scanner_collects_the_parameters_each_call_sends() {
    let src = r#"
async fn a(rc: &Rc) {
    let req = rc.ecs.update_service();
    let req = req.cluster(&c).service(&s).desired_count(n);
    rc.call(&rc.buckets.x, "ecs", "UpdateService", || req.clone().send()).await;
    let req = rc.autoscaling.update_auto_scaling_group();
    let req = if x { req.set_min_size(Some(1)) } else { req.vpc_zone_identifier(v.join(",")) };
}
fn b() { let w = put(rc.cloudwatch.put_metric_alarm(), alarm); }
fn put(req: Builder, alarm: &A) -> Builder {
    let req = req.alarm_name(&alarm.name).tags(Tag::builder().key("k").value("v").build());
    if y { req.statistic(s) } else { req.extended_statistic(&alarm.statistic) }
}
"#;
    let found = scan_source(&blank_comments(src));
    let params = |a: &str| {
        let f = found.iter().find(|f| f.action == a).unwrap();
        f.params.iter().map(String::as_str).collect::<Vec<_>>()
    };
    assert_eq!(params("ecs:UpdateService"), ["cluster", "desired_count", "service"]);
    assert_eq!(params("autoscaling:UpdateAutoScalingGroup"), ["min_size", "vpc_zone_identifier"]);
    assert_eq!(params("cloudwatch:PutMetricAlarm"), ["alarm_name", "extended_statistic", "statistic", "tags"]);
}

#[test]
fn wildcards_and_arns_match_as_iam_matches_them() {
    assert!(glob("ecs:Describe*", "ecs:DescribeServices", false));
    assert!(glob("ECS:describeservices", "ecs:DescribeServices", true));
    assert!(glob("a*", "a*b", false));
    assert!(glob("ballast-?", "ballast-x", false) && !glob("ballast-?", "ballast-xy", false));
    let tg = "arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/frontendTargetGroup/abc";
    assert!(arn_match("arn:aws:elasticloadbalancing:*:1:targetgroup/frontend*", tg));
    assert!(!arn_match("arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/backend*", tg));
    // A `*` in one part of an ARN does not reach into the next.
    assert!(!arn_match("arn:aws:ecs:us-*:cluster/c", "arn:aws:ecs:us-east-2:1:cluster/c"));
    assert!(arn_match("arn:aws:ecs:us-*:*:cluster/c", "arn:aws:ecs:us-east-2:1:cluster/c"));
    // An action with no resource type is evaluated on "*", which only "*" matches.
    assert!(arn_match("*", "*"));
    assert!(!arn_match("arn:aws:ecs:us-east-2:1:container-instance/c/*", "*"));
}

fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
    let v = Value::Sequence(values.iter().map(|s| Value::String(s.to_string())).collect());
    parse_condition(op, key, &v, "test")
}

fn ctx(pairs: &[(&str, &[&str])]) -> Context {
    pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.iter().map(ToString::to_string).collect())).collect()
}

#[test]
fn conditions_follow_aws_evaluation_rules() {
    let subnets = cond("ForAllValues:StringEquals", "autoscaling:VPCZoneIdentifiers", &["subnet-a", "subnet-b"]);
    assert!(subnets.holds(&ctx(&[("autoscaling:VPCZoneIdentifiers", &["subnet-a", "subnet-b"])])));
    assert!(!subnets.holds(&ctx(&[("autoscaling:VPCZoneIdentifiers", &["subnet-a", "subnet-x"])])));
    // The gap issue 13 names: ForAllValues is true when the key is absent.
    assert!(subnets.holds(&ctx(&[])));
    assert!(!cond("Null", "autoscaling:VPCZoneIdentifiers", &["false"]).holds(&ctx(&[])));
    assert!(cond("Null", "autoscaling:MinSize", &["true"]).holds(&ctx(&[])));
    assert!(!cond("Null", "autoscaling:MinSize", &["true"]).holds(&ctx(&[("autoscaling:MinSize", &["0"])])));
    let any = cond("ForAnyValue:StringLike", "aws:TagKeys", &["managed-*"]);
    assert!(any.holds(&ctx(&[("aws:TagKeys", &["owner", "managed-by"])])) && !any.holds(&ctx(&[])));
    // A missing key: no match, except for negated operators and IfExists.
    assert!(!cond("StringEquals", "aws:RequestTag/a", &["x"]).holds(&ctx(&[])));
    assert!(cond("StringNotEquals", "aws:RequestTag/a", &["x"]).holds(&ctx(&[])));
    assert!(cond("StringEqualsIfExists", "aws:RequestTag/a", &["x"]).holds(&ctx(&[])));
    let cluster = cond("ArnEquals", "ecs:cluster", &["arn:aws:ecs:us-east-2:1:cluster/appCluster"]);
    assert!(cluster.holds(&ctx(&[("ecs:cluster", &["arn:aws:ecs:us-east-2:1:cluster/appCluster"])])));
    assert!(!cluster.holds(&ctx(&[("ecs:cluster", &["arn:aws:ecs:us-east-2:1:cluster/other"])])));
    // Condition keys are case-insensitive.
    assert!(cond("Bool", "AWS:SecureTransport", &["true"]).holds(&ctx(&[("aws:securetransport", &["TRUE"])])));
}

#[test]
#[should_panic(expected = "not implemented by the evaluator")]
fn an_unknown_condition_operator_is_refused() {
    cond("NumericLessThan", "autoscaling:MaxSize", &["10"]);
}

#[test]
fn the_stack_model_resolves_the_intrinsics_policies_use() {
    let t = r#"
Parameters:
  Flag: {Type: String, Default: "false"}
Conditions:
  On: !Equals [!Ref Flag, "true"]
Resources:
  Cluster: {Type: AWS::ECS::Cluster, Properties: {ClusterName: appCluster}}
  Group: {Type: AWS::AutoScaling::AutoScalingGroup, Properties: {AutoScalingGroupName: g, Tags: [{Key: k, Value: v}]}}
  TG: {Type: AWS::ElasticLoadBalancingV2::TargetGroup, Properties: {Name: frontendTargetGroup}}
  A: {Type: AWS::EC2::Subnet}
  B: {Type: AWS::EC2::Subnet}
"#;
    let off = Stack::new(t, &[]);
    let on = Stack::new(t, &[("Flag", "true")]);
    let v: Value =
        serde_yaml::from_str("!Sub arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:task/${Cluster}/*")
            .unwrap();
    assert_eq!(off.resolve(&v).as_str(), Some("arn:aws:ecs:us-east-2:123456789012:task/appCluster/*"));
    let v: Value = serde_yaml::from_str("!GetAtt Cluster.Arn").unwrap();
    assert_eq!(off.resolve(&v).as_str(), Some("arn:aws:ecs:us-east-2:123456789012:cluster/appCluster"));
    let v: Value = serde_yaml::from_str("{'Fn::If': [On, [!Ref A, !Ref B], [!Ref A]]}").unwrap();
    assert_eq!(off.resolve(&v).as_sequence().unwrap().len(), 1);
    assert_eq!(on.resolve(&v).as_sequence().unwrap().len(), 2);
    assert!(off.ref_("TG").contains(":targetgroup/frontendTargetGroup/"));
    assert_eq!(off.find("AWS::AutoScaling::AutoScalingGroup", "AutoScalingGroupName", "g").as_deref(), Some("Group"));
    assert_eq!(off.tags("Group"), [("k".to_string(), "v".to_string())].into());
}

/// The statements issue 13 found wrong, and their fixes, as written in the
/// template before and after.
const ISSUE_13_SAMPLE: &str = r#"
Resources:
  ECSCluster: {Type: AWS::ECS::Cluster, Properties: {ClusterName: appCluster}}
  PrivateSubnetA: {Type: AWS::EC2::Subnet}
  BallastTaskRole:
    Type: AWS::IAM::Role
    Properties:
      Policies:
        - PolicyName: before
          PolicyDocument:
            Statement:
              - Sid: OldListTasks
                Effect: Allow
                Action: [ecs:ListTasks]
                Resource:
                  - !Sub arn:${AWS::Partition}:ecs:${AWS::Region}:${AWS::AccountId}:container-instance/${ECSCluster}/*
                Condition:
                  ArnEquals:
                    ecs:cluster: !GetAtt ECSCluster.Arn
              - Sid: OldSubnets
                Effect: Allow
                Action: [autoscaling:UpdateAutoScalingGroup]
                Resource: "*"
                Condition:
                  ForAllValues:StringEquals:
                    autoscaling:VPCZoneIdentifiers: [!Ref PrivateSubnetA]
        - PolicyName: after
          PolicyDocument:
            Statement:
              - {Sid: NewListTasks, Effect: Allow, Action: [ecs:ListTasks], Resource: "*",
                 Condition: {ArnEquals: {ecs:cluster: !GetAtt ECSCluster.Arn}}}
              - {Sid: NewSubnets, Effect: Allow, Action: [autoscaling:UpdateAutoScalingGroup], Resource: "*",
                 Condition: {"ForAllValues:StringEquals": {autoscaling:VPCZoneIdentifiers: [!Ref PrivateSubnetA]},
                             "Null": {autoscaling:VPCZoneIdentifiers: "false"}}}
"#;

#[test]
fn issue_13_a_cluster_wide_list_tasks_and_an_update_without_subnets() {
    let statements = role_statements(ISSUE_13_SAMPLE);
    let (before, after): (Vec<_>, Vec<_>) = statements.into_iter().partition(|s| s.sid.starts_with("Old"));
    let cluster = format!("arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/appCluster");
    let list = Request {
        action: "ecs:ListTasks".into(),
        resource: "*".into(),
        context: ctx(&[("ecs:cluster", &[cluster.as_str()])]),
        about: "the tasks of cluster appCluster".into(),
    };
    assert_eq!(Policy(&before).decide(&list), Decision::ImplicitDeny);
    assert_eq!(Policy(&after).decide(&list), Decision::Allowed("NewListTasks".into()));
    let other = Request { context: ctx(&[("ecs:cluster", &["arn:aws:ecs:us-east-2:1:cluster/x"])]), ..list.clone() };
    assert_eq!(Policy(&after).decide(&other), Decision::ImplicitDeny);

    let no_subnets = Request {
        action: "autoscaling:UpdateAutoScalingGroup".into(),
        resource: "arn:aws:autoscaling:us-east-2:1:autoScalingGroup:u:autoScalingGroupName/g".into(),
        context: Context::new(),
        about: "an update without subnets".into(),
    };
    assert_eq!(Policy(&before).decide(&no_subnets), Decision::Allowed("OldSubnets".into()));
    assert_eq!(Policy(&after).decide(&no_subnets), Decision::ImplicitDeny);
}

#[test]
fn an_explicit_deny_wins() {
    let s = |sid: &str, allow: bool| Statement {
        sid: sid.into(),
        allow,
        actions: vec!["ecs:*".into()],
        resources: vec!["*".into()],
        conditions: vec![],
    };
    let statements = [s("A", true), s("D", false)];
    let r = Request {
        action: "ecs:UpdateService".into(),
        resource: "*".into(),
        context: Context::new(),
        about: String::new(),
    };
    assert_eq!(Policy(&statements).decide(&r), Decision::Denied("D".into()));
}

#[test]
fn the_reference_reader_merges_resource_types_and_keys() {
    let json = r#"[{"prefix": "ecs", "service_name": "x", "conditions": [
        {"condition": "ecs:cluster", "type": "ARN"}, {"condition": "ecs:subnet", "type": "ArrayOfString"}],
      "resources": [{"resource": "service", "arn": "arn:${Partition}:ecs:${Region}:${Account}:service/${ClusterName}/${ServiceName}",
                     "condition_keys": ["aws:ResourceTag/${TagKey}"]}],
      "privileges": [{"privilege": "UpdateService", "resource_types": [
        {"resource_type": "service*", "condition_keys": ["ecs:cluster"], "dependent_actions": []},
        {"resource_type": "", "condition_keys": ["ecs:subnet"], "dependent_actions": []}]}]}]"#;
    let r = reference_from_json(json);
    let arn = r.arn(
        "ecs:UpdateService",
        &[("Partition", "aws"), ("Region", "r"), ("Account", "1"), ("ClusterName", "c"), ("ServiceName", "s")],
    );
    assert_eq!(arn, "arn:aws:ecs:r:1:service/c/s");
    assert!(r.applies("ecs:UpdateService", "ecs:cluster") && r.applies("ecs:UpdateService", "ecs:subnet"));
    assert!(r.applies("ecs:UpdateService", "aws:ResourceTag/Name"));
    assert!(!r.applies("ecs:UpdateService", "ecs:task-definition"));
    assert!(r.multivalued.contains("ecs:subnet") && !r.multivalued.contains("ecs:cluster"));
}
