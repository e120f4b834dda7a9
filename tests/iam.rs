//! The IAM check: ballast's task role in `deploy/cloudformation.yaml`
//! allows exactly the AWS actions the controller's code can call.
//!
//! The calls are found by scanning `src/cloud/aws/**/*.rs` for the AWS
//! adapter's convention: every SDK operation is called on a client field
//! named after its service, `<something>.ecs.<op>()`, `.elbv2.<op>()`,
//! `.autoscaling.<op>()`, `.cloudwatch.<op>()` or `.appscaling.<op>()`
//! (rustfmt may put each link of the chain on its own line; comments and
//! `#[cfg(test)]` code do not count). Each operation maps to the IAM action
//! of the same name in PascalCase, plus the extra actions in [`EXTRA`].
//!
//! A missing action makes ballast fail in production with AccessDenied; an
//! action allowed but never called is privilege nobody needs. Both fail
//! this test, which names them.

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
];

/// Methods of an SDK client that are not API operations.
const NOT_OPERATIONS: &[&str] = &["config", "clone", "from_conf", "new"];

/// Actions IAM also checks when an operation is called as ballast calls it.
/// (operation's action, extra action, why)
const EXTRA: &[(&str, &str, &str)] = &[(
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:TagResource",
    "PutMetricAlarm is sent with Tags (managed-by=ballast), which CloudWatch \
     also authorizes as TagResource on the alarm",
)];

/// Actions that AWS documents as supporting no resource-level permissions:
/// the only ones a statement may grant on `Resource: "*"`.
const NO_RESOURCE_LEVEL: &[&str] = &[
    "ecs:DescribeTaskDefinition",
    "application-autoscaling:DescribeScalableTargets",
    "elasticloadbalancing:DescribeTargetGroups",
    "elasticloadbalancing:DescribeTargetHealth",
    "cloudwatch:GetMetricData",
    "autoscaling:DescribeAutoScalingGroups",
];

/// The role's logical id in the template.
const ROLE: &str = "BallastTaskRole";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

// ---------------------------------------------------------------------------
// Scanning the adapter.

/// Where a call was found, for messages.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Site {
    file: String,
    line: usize,
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

/// Every `.CLIENT.op(` in one file's text (after blanking), as
/// (IAM action, line).
fn scan_source(src: &str) -> Vec<(String, usize)> {
    let b = src.as_bytes();
    let mut found = Vec::new();
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
        let i = skip_ws(b, i);
        if op.is_empty() || b.get(i) != Some(&b'(') || NOT_OPERATIONS.contains(&op) {
            continue;
        }
        let line = src[..dot].matches('\n').count() + 1;
        found.push((format!("{prefix}:{}", pascal(op)), line));
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

/// Every action the code under `dir` can call, with where.
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
        for (action, line) in scan_source(&text) {
            calls.entry(action).or_default().push(Site { file: shown.clone(), line });
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
    for (op, extra, why) in EXTRA {
        if calls.contains_key(*op) {
            needed.insert(extra.to_string(), format!("needed by {op}: {why}"));
        }
    }
    needed
}

// ---------------------------------------------------------------------------
// Reading the role's policy.

/// One Allow statement of the role.
#[derive(Debug)]
struct Statement {
    sid: String,
    actions: Vec<String>,
    /// Resource is exactly "*" (or a list containing "*").
    any_resource: bool,
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn statements_of(doc: &Value, origin: &str) -> Vec<Statement> {
    let stmts = match &doc["Statement"] {
        Value::Sequence(s) => s.clone(),
        single @ Value::Mapping(_) => vec![single.clone()],
        other => panic!("{origin}: Statement is not a list: {other:?}"),
    };
    stmts
        .iter()
        .filter(|s| s["Effect"].as_str() == Some("Allow"))
        .map(|s| {
            let sid = s["Sid"].as_str().unwrap_or("(no Sid)").to_string();
            assert!(
                s.get("NotAction").is_none() && s.get("NotResource").is_none(),
                "{origin} statement {sid}: NotAction/NotResource grant more than they name"
            );
            let actions = strings(&s["Action"]);
            assert!(!actions.is_empty(), "{origin} statement {sid}: no Action");
            let resources = &s["Resource"];
            let any_resource = strings(resources).iter().any(|r| r == "*");
            Statement { sid, actions, any_resource }
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

/// Every Allow statement that grants something to the role: its inline
/// policies, and any AWS::IAM::Policy / ManagedPolicy attached to it.
fn role_statements(template: &str) -> Vec<Statement> {
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
            out.extend(statements_of(&p["PolicyDocument"], &format!("{ROLE} policy {name}")));
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
            out.extend(statements_of(&rp["PolicyDocument"], &format!("{kind} {id}")));
        }
    }
    out
}

fn allowed_actions(statements: &[Statement]) -> BTreeSet<String> {
    statements.iter().flat_map(|s| s.actions.iter().cloned()).collect()
}

/// Statements that grant an action with resource-level permissions on
/// every resource: (Sid, action).
fn needless_wildcards(statements: &[Statement]) -> Vec<(String, String)> {
    statements
        .iter()
        .filter(|s| s.any_resource)
        .flat_map(|s| {
            s.actions.iter().filter(|a| !NO_RESOURCE_LEVEL.contains(&a.as_str())).map(|a| (s.sid.clone(), a.clone()))
        })
        .collect()
}

fn template() -> String {
    let path = repo().join("deploy/cloudformation.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------
// The checks on the repository.

#[test]
fn task_role_allows_exactly_what_the_aws_adapter_calls() {
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
        }
    }
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
    let actions: BTreeSet<&str> = found.iter().map(|(a, _)| a.as_str()).collect();
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
    let line = found.iter().find(|(a, _)| a == "elasticloadbalancing:DescribeTargetGroups").unwrap().1;
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
    calls.insert("cloudwatch:PutMetricAlarm".to_string(), vec![Site { file: "a.rs".into(), line: 1 }]);
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
