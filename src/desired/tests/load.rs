use super::*;
use crate::desired::*;
use std::time::Duration;

#[test]
fn every_invalid_fixture_fails_with_its_expected_message_at_a_position() {
    for fixture in fixtures::broken_desired_states() {
        let path = &fixture.path;
        let expect = &fixture.expect;
        let err = load_dir(fixture.dir.path(), REGION).expect_err(&format!("{} should be refused", path.display()));
        let hit = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains(expect.as_str()))
            .unwrap_or_else(|| panic!("{}: no message contains {expect:?}:\n{err}", path.display()));
        assert!(hit.line.is_some() && hit.column.is_some(), "{}: no line:col in {hit}", path.display());
        assert!(hit.help.is_some(), "{}: no help in {hit}", path.display());
        // One mistake per fixture: anything more is noise a user
        // would have to read through.
        assert_eq!(err.diagnostics.len(), 1, "{}:\n{err}", path.display());
    }
}

#[test]
fn the_example_desired_state_loads_clean_and_says_what_the_article_built() {
    let state = load_dir(&manifest_dir().join("desired-state"), "eu-west-1").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.capacities.len(), 1);
    let s = &state.services[0];
    assert_eq!(
        s.id,
        ServiceId { region: "us-east-2".into(), cluster: "appCluster".into(), service: "appService".into() }
    );
    assert_eq!(s.tasks, TaskCount::Range { min: 2, max: 10 });
    let bound: Vec<(&str, &str, u16, TargetType)> = s
        .target_groups
        .iter()
        .map(|b| (b.target_group.target_group.name(), b.container_name.as_str(), b.container_port, b.target_type))
        .collect();
    assert_eq!(
        bound,
        [
            ("frontendTargetGroup", "appContainer", 80, TargetType::Instance),
            ("backendTargetGroup", "appContainer", 8000, TargetType::Instance)
        ]
    );
    let cpu = s.scaling.as_ref().unwrap();
    assert_eq!((cpu.scale_out.threshold, cpu.scale_in.threshold, cpu.target_cpu), (70.0, 54.0, Some(60.0)));
    assert!(cpu.scale_in.period >= Duration::from_secs(60));
    let c = &state.capacities[0];
    assert_eq!(c.group.name, "ecsAutoScalingGroup");
    assert_eq!(c.cluster, "appCluster");
    assert_eq!((c.min_instances, c.max_instances), (1, 10));
    assert_eq!(c.tasks_per_instance, TasksPerInstance::Fixed(1));
    let modes: Vec<ZoneMode> = c.zones.iter().map(|z| z.mode).collect();
    assert_eq!(modes, [ZoneMode::AlwaysOn, ZoneMode::OnDemand { above: 2 }]);
    assert_eq!(state.capacity_for("us-east-2", "appCluster"), Some(c));
}

#[test]
fn minimal_documents_get_the_documented_defaults() {
    let state = load_str("t.yaml", &both(), REGION).unwrap_or_else(|e| panic!("{e}"));
    let s = &state.services[0];
    assert_eq!(s.id.region, REGION, "region defaults to the argument");
    assert_eq!(s.origin, Origin { file: "t.yaml".into(), line: 1 });
    assert!(!s.suspend);
    let b = &s.target_groups[0];
    assert_eq!(b.target_group.target_group, TargetGroupRef::Name("frontendTargetGroup".into()));
    assert_eq!((b.target_type, b.ownership, b.min_healthy), (TargetType::Instance, Ownership::Shared, None));
    let cpu = s.scaling.as_ref().unwrap();
    assert_eq!(cpu.missing_data, MissingData::Missing);
    assert_eq!(cpu.target_cpu, None);
    assert_eq!(cpu.stabilization_window, Duration::from_secs(300));
    assert_eq!(cpu.tolerance, 0.1);
    assert_eq!(cpu.max_data_age, Duration::from_secs(180));
    let out = &cpu.scale_out;
    assert_eq!(
        (out.period, out.evaluation_periods, out.datapoints_to_alarm, out.step, out.cooldown),
        (Duration::from_secs(60), 1, 1, Step::Tasks(1), Duration::from_secs(60))
    );
    assert_eq!(cpu.scale_in.cooldown, Duration::from_secs(300));
    assert_eq!(s.budget, ServiceBudget { max_deregistrations_per_pass: 1, max_count_change_per_pass: 4 });
    assert_eq!(s.take_over, ServiceTakeOver::default());

    let c = &state.capacities[0];
    assert_eq!(c.origin.line, SERVICE.lines().count() + 2);
    assert_eq!((c.headroom, c.max_change_per_pass), (0, 2));
    assert_eq!(c.scale_in_cooldown, Duration::from_secs(300));
    assert!(!c.take_over_managed_scaling && !c.suspend);
    assert_eq!(c.zones[0].zone, None);
}

#[test]
fn every_field_maps_to_the_validated_types() {
    let text = "\
apiVersion: ballast.dev/v1alpha1
kind: Service
metadata: {name: web}
spec:
  region: eu-west-1
  cluster: c
  service: s
  suspend: true
  tasks: {min: 0, max: 4}
  targetGroups:
    - targetGroup: arn:aws:elasticloadbalancing:eu-west-1:123456789012:targetgroup/tg-1/0123456789abcdef
      containerName: web
      containerPort: 8080
      targetType: ip
      ownership: exclusive
      minHealthy: 0
  scaling:
    cpu:
      targetCpu: 60
      stabilizationWindow: 2m30s
      tolerance: 0.2
      maxDataAge: 90s
      missingData: notBreaching
      scaleOut: {threshold: 75.5, period: 30s, evaluationPeriods: 4, datapointsToAlarm: 3, step: \"50%\", cooldown: 500ms}
      scaleIn: {threshold: 20, period: 10s, step: 2, cooldown: 1h}
  budget: {maxDeregistrationsPerPass: 3, maxCountChangePerPass: 1}
  takeOver: {desiredCount: true, loadBalancers: true}
---
apiVersion: ballast.dev/v1alpha1
kind: Capacity
metadata: {name: web-capacity}
spec:
  region: eu-west-1
  cluster: c
  autoScalingGroup: g
  minInstances: 0
  maxInstances: 3
  instanceResources: {cpu: 1024, memory: 983}
  headroom: 1
  scaleInCooldown: 10m
  maxChangePerPass: 1
  zones:
    - {subnet: subnet-0a1b2c3d, zone: eu-west-1a}
  suspend: true
  takeOver: {managedScaling: true}
";
    let state = load_str("t.yaml", text, REGION).unwrap_or_else(|e| panic!("{e}"));
    let s = &state.services[0];
    assert_eq!(s.id.region, "eu-west-1");
    assert!(s.suspend);
    assert_eq!(s.tasks, TaskCount::Range { min: 0, max: 4 });
    let b = &s.target_groups[0];
    assert_eq!(b.target_group.target_group.name(), "tg-1");
    assert!(matches!(b.target_group.target_group, TargetGroupRef::Arn(_)));
    assert_eq!(
        (b.container_port, b.target_type, b.ownership, b.min_healthy),
        (8080, TargetType::Ip, Ownership::Exclusive, Some(0))
    );
    let cpu = s.scaling.as_ref().unwrap();
    assert_eq!(cpu.target_cpu, Some(60.0));
    assert_eq!(cpu.stabilization_window, Duration::from_secs(150));
    assert_eq!((cpu.tolerance, cpu.max_data_age), (0.2, Duration::from_secs(90)));
    assert_eq!(cpu.missing_data, MissingData::NotBreaching);
    assert_eq!(
        cpu.scale_out,
        AlarmRule {
            threshold: 75.5,
            period: Duration::from_secs(30),
            evaluation_periods: 4,
            datapoints_to_alarm: 3,
            step: Step::Percent(50),
            cooldown: Duration::from_millis(500)
        }
    );
    assert_eq!((cpu.scale_in.period, cpu.scale_in.step), (Duration::from_secs(10), Step::Tasks(2)));
    assert_eq!(cpu.scale_in.cooldown, Duration::from_secs(3600));
    assert_eq!(s.budget, ServiceBudget { max_deregistrations_per_pass: 3, max_count_change_per_pass: 1 });
    assert_eq!(s.take_over, ServiceTakeOver { desired_count: true, load_balancers: true });
    let c = &state.capacities[0];
    assert_eq!(c.group, GroupId { region: "eu-west-1".into(), name: "g".into() });
    assert_eq!(c.tasks_per_instance, TasksPerInstance::Resources { cpu: 1024, memory: 983 });
    assert_eq!((c.headroom, c.max_change_per_pass), (1, 1));
    assert_eq!(c.scale_in_cooldown, Duration::from_secs(600));
    assert_eq!(c.zones[0], Zone::always_on("subnet-0a1b2c3d", "eu-west-1a"));
    assert!(c.suspend && c.take_over_managed_scaling);
}

/// One rule per row: a change to the valid two-document text, the
/// message it must produce, and the line it must point at.
#[test]
fn each_rule_reports_what_is_wrong_where() {
    let base = both();
    let line_of = |needle: &str| -> usize {
        base.lines().position(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}")) + 1
    };
    let cases = edits(&std::fs::read_to_string(manifest_dir().join("tests/fixtures/desired-state-edits.txt")).unwrap());
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    let mut failures = Vec::new();
    for Edit { find, replace, expected, offset } in &cases {
        assert!(base.contains(find.as_str()), "{find:?} not in the base text");
        let text = base.replacen(find.as_str(), replace, 1);
        let Err(err) = load_str("t.yaml", &text, REGION) else {
            failures.push(format!("{find:?} -> {replace:?} was accepted"));
            continue;
        };
        let diags = err.diagnostics;
        let Some(hit) = diags.iter().find(|d| {
            d.message.contains(expected.as_str()) || d.help.as_ref().is_some_and(|h| h.contains(expected.as_str()))
        }) else {
            failures.push(format!("{find:?} -> {replace:?}: expected {expected:?} in {diags:#?}"));
            continue;
        };
        let line = (line_of(find.lines().next().unwrap()) as isize + offset) as usize;
        if hit.line != Some(line) {
            failures.push(format!("{find:?} -> {replace:?}: expected line {line}: {hit}"));
        }
        if hit.help.as_ref().is_none_or(|h| h.is_empty()) {
            failures.push(format!("no help: {hit}"));
        }
        if diags.len() != 1 {
            failures.push(format!("{find:?} -> {replace:?}: one mistake, one message: {diags:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One case of tests/fixtures/desired-state-edits.txt (its header says
/// the format).
struct Edit {
    find: String,
    replace: String,
    /// Part of the message or help of the one diagnostic.
    expected: String,
    /// From the first line of `find` to the line the diagnostic names.
    offset: isize,
}

fn edits(text: &str) -> Vec<Edit> {
    let mut cases: Vec<Edit> = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(head) = line.strip_prefix("== ") {
            let (offset, expected) = head.split_once(": ").unwrap_or_else(|| panic!("`== OFFSET: MESSAGE`: {line}"));
            let offset = offset.parse().unwrap_or_else(|_| panic!("OFFSET is not a number: {line}"));
            cases.push(Edit { find: String::new(), replace: String::new(), expected: expected.into(), offset });
            continue;
        }
        let case = cases.last_mut().unwrap_or_else(|| panic!("a line before the first case: {line}"));
        let (into, rest) = match line.split_at_checked(2) {
            Some(("- ", rest)) => (&mut case.find, rest),
            Some(("+ ", rest)) => (&mut case.replace, rest),
            _ => panic!("a case's lines start with `- ` or `+ `: {line:?}"),
        };
        into.push_str(rest);
        into.push('\n');
    }
    cases
}

#[test]
fn all_mistakes_of_all_files_are_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    // File a: two mistakes in one document.
    write(
        dir.path(),
        "a.yaml",
        SERVICE.replace("containerPort: 80", "containerPort: 99999").replace("threshold: 70", "threshold: 700"),
    );
    // File b: one mistake.
    write(dir.path(), "b.yaml", CAPACITY.replace("minInstances: 1", "minInstances: 20"));
    let err = load_dir(dir.path(), REGION).unwrap_err();
    assert_eq!(err.diagnostics.len(), 3, "{err}");
    let files: Vec<String> =
        err.diagnostics.iter().map(|d| d.file.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(files, ["a.yaml", "a.yaml", "b.yaml"]);
    assert!(err.diagnostics[0].line < err.diagnostics[1].line, "sorted by position");
}

#[test]
fn one_document_reports_every_unknown_key_and_every_rule() {
    let text = SERVICE
        .replace("  cluster: appCluster\n", "  clutser: appCluster\n")
        .replace("containerPort: 80", "containerPort: 80\n      port: 80")
        .replace("    max: 10\n", "    max: 10\n    maximum: 12\n")
        .replace("threshold: 30", "threshold: 90");
    let diags = errors(&text);
    let messages: Vec<&str> = diags.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(diags.len(), 4, "{messages:#?}");
    assert!(messages[0].contains("unknown field `clutser` in `spec`"));
    assert!(diags[0].help.as_ref().unwrap().starts_with("did you mean `cluster`?"));
    assert!(messages[1].contains("unknown field `maximum` in `spec.tasks`"));
    assert!(diags[1].help.as_ref().unwrap().contains("expected one of: `count`, `max`, `min`"), "{}", diags[1]);
    assert!(messages[2].contains("unknown field `port` in `spec.targetGroups[0]`"));
    assert!(messages[3].contains("`scaleIn.threshold` (90) is not below"));
    // The misspelt `cluster` is not also reported as missing: the
    // unknown key already says what to do.
    assert!(!messages.iter().any(|m| m.contains("missing required field")));
}

#[test]
fn unknown_keys_get_did_you_mean_the_expected_keys_or_where_they_belong() {
    // (the key line added under `spec:`, message part, help part)
    let cases: &[(&str, &str, &str)] = &[
        ("  targetgroups: []\n", "unknown field `targetgroups` in `spec`", "did you mean `targetGroups`?"),
        ("  target_groups: []\n", "unknown field `target_groups`", "did you mean `targetGroups`?"),
        ("  min: 1\n", "unknown field `min` in `spec`", "`min` belongs in `spec.tasks`: check its indentation"),
        ("  containerPort: 1\n", "unknown field `containerPort`", "belongs in `spec.targetGroups[]`"),
        ("  colour: blue\n", "unknown field `colour` in `spec`", "expected one of: `budget`, `cluster`"),
        ("  <<: {}\n", "unknown field `<<`", "merge keys are not supported"),
    ];
    for (line, message, help) in cases {
        let text = SERVICE.replace("spec:\n", &format!("spec:\n{line}"));
        let diags = errors(&text);
        let d = diags.iter().find(|d| d.message.contains(message)).unwrap_or_else(|| panic!("{line:?}: {diags:#?}"));
        assert!(d.help.as_ref().unwrap().contains(help), "{line:?}: {d}");
        assert_eq!((d.line, d.column), (Some(6), Some(3)), "{line:?}: points at the key");
    }
    let text = SERVICE.replacen("kind: Service\n", "kind: Service\nlabels: {}\n", 1);
    let d = &errors(&text)[0];
    assert!(d.message.contains("unknown field `labels` at the top of the document"), "{d}");
}

#[test]
fn wrong_types_use_serde_yaml_positions_which_are_file_absolute() {
    // The mistake is in the third document: its line must count the
    // lines of the first two.
    let text = format!(
        "{SERVICE}---\n{CAPACITY}---\n{}",
        SERVICE
            .replace("name: app", "name: app-b")
            .replace("appService", "other")
            .replace("frontendTargetGroup", "other")
            .replace("containerPort: 80", "containerPort: [80]")
    );
    let expected_line = text.lines().position(|l| l.contains("[80]")).unwrap() + 1;
    let diags = errors(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    let d = &diags[0];
    assert_eq!(d.line, Some(expected_line));
    assert_eq!(d.column, Some(22));
    assert!(
        d.message.contains("`spec.targetGroups[0].containerPort`: wrong type: found sequence, expected a whole number"),
        "{d}"
    );
    assert!(d.help.as_ref().unwrap().contains("`containerPort`: The container port"), "{d}");

    // (value, message part)
    let cases: &[(&str, &str)] = &[
        ("suspend: yes", "expected `true` or `false`"),
        ("tasks: 3", "expected a mapping (`key: value` lines)"),
        ("targetGroups: frontendTargetGroup", "expected a list (`- item` lines)"),
    ];
    for (line, message) in cases {
        let text = SERVICE
                .replace("  tasks:\n    min: 2\n    max: 10\n", "")
                .replace("  targetGroups:\n    - targetGroup: frontendTargetGroup\n      containerName: appContainer\n      containerPort: 80\n", "")
                .replace("  scaling:\n    cpu:\n      scaleOut:\n        threshold: 70\n      scaleIn:\n        threshold: 30\n", "")
                + &format!("  {line}\n");
        let diags = errors(&text);
        let d = diags.iter().find(|d| d.message.contains(message)).unwrap_or_else(|| panic!("{line}: {diags:#?}"));
        assert_eq!(d.line, Some(text.lines().count()), "{line}: {d}");
    }
}

#[test]
fn repeated_keys_are_reported_once() {
    let text = SERVICE.replace("    max: 10\n", "    max: 10\n    max: 12\n");
    let diags = errors(&text);
    assert_eq!(diags.len(), 1, "{diags:#?}");
    assert!(diags[0].message.contains("`spec.tasks.max` is written twice"));
    assert_eq!(diags[0].line, Some(11));
}

#[test]
fn conflicts_between_documents() {
    let cap = |name: &str, cluster: &str, group: &str| {
        CAPACITY
            .replace("name: app-capacity", &format!("name: {name}"))
            .replace("cluster: appCluster", &format!("cluster: {cluster}"))
            .replace("ecsAutoScalingGroup", group)
    };
    let svc = |name: &str, service: &str, tg: &str| {
        SERVICE
            .replace("name: app", &format!("name: {name}"))
            .replace("appService", service)
            .replace("frontendTargetGroup", tg)
    };
    // (documents, expected message part, document index it points into)
    let cases: Vec<(Vec<String>, &str)> = vec![
            (vec![svc("app", "s1", "tg1"), svc("app", "s2", "tg2")], "a Service named `app` is already declared at t.yaml:4:9"),
            (vec![svc("a", "s1", "tg1"), svc("b", "s1", "tg2")], "service `s1` in cluster `appCluster` (us-east-2) is already declared at t.yaml:7:12"),
            (vec![svc("a", "s1", "tg1"), svc("b", "s2", "tg1")], "target group `tg1` (us-east-2) is already bound at t.yaml:12:20"),
            (
                vec![
                    svc("a", "s1", "tg1"),
                    svc("b", "s2", "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/tg1/0123456789abcdef"),
                ],
                "target group `tg1` (us-east-2) is already bound",
            ),
            (
                vec![SERVICE.replace("containerPort: 80\n", "containerPort: 80\n    - targetGroup: frontendTargetGroup\n      containerName: appContainer\n      containerPort: 8000\n")],
                "target group `frontendTargetGroup` (us-east-2) is already bound",
            ),
            (
                vec![SERVICE.into(), cap("c1", "appCluster", "g1"), cap("c1", "other", "g2"), svc("o", "o", "o").replace("appCluster", "other")],
                "a Capacity named `c1` is already declared",
            ),
            (vec![SERVICE.into(), cap("c1", "appCluster", "g1"), cap("c2", "other", "g1"), svc("o", "o", "o").replace("appCluster", "other")], "Auto Scaling group `g1` (us-east-2) is already managed by the Capacity at"),
            (vec![SERVICE.into(), cap("c1", "appCluster", "g1"), cap("c2", "appCluster", "g2")], "cluster `appCluster` (us-east-2) already has a Capacity at"),
            (vec![SERVICE.into(), cap("c1", "appClustr", "g1")], "no Service document runs in cluster `appClustr`"),
            (vec![SERVICE.into(), cap("c1", "appCluster", "g1").replace("cluster: appCluster", "region: us-west-2\n  cluster: appCluster")], "no Service document runs in cluster `appCluster` (us-west-2)"),
        ];
    for (docs, expected) in cases {
        let text = docs.join("---\n");
        let diags = errors(&text);
        assert!(
            diags.iter().any(|d| d.message.contains(expected) && d.help.is_some()),
            "expected {expected:?} in {diags:#?}"
        );
        assert_eq!(diags.len(), 1, "{expected}: {diags:#?}");
    }
    // The help says what to do.
    let d = &errors(&[SERVICE.to_string(), cap("c1", "appClustr", "g1")].join("---\n"))[0];
    assert!(d.help.as_ref().unwrap().contains("did you mean `appCluster`?"), "{d}");
    let d = &errors(
        &[
            SERVICE.to_string(),
            cap("c1", "appCluster", "g1").replace("cluster: appCluster", "region: us-west-2\n  cluster: appCluster"),
        ]
        .join("---\n"),
    )[0];
    assert!(d.help.as_ref().unwrap().contains("set the same `region`"), "{d}");
}

#[test]
fn a_broken_document_still_takes_part_in_conflicts_but_hides_missing_references() {
    // The second service has a bad port, yet its target group still
    // conflicts with the first's.
    let text = [
        SERVICE.to_string(),
        SERVICE
            .replace("name: app", "name: b")
            .replace("appService", "b")
            .replace("containerPort: 80", "containerPort: -1"),
    ]
    .join("---\n");
    let diags = errors(&text);
    assert_eq!(diags.len(), 2, "{diags:#?}");
    assert!(diags.iter().any(|d| d.message.contains("is already bound")), "{diags:#?}");
    assert!(diags.iter().any(|d| d.message.contains("containerPort` is -1")), "{diags:#?}");
    // A Capacity whose Service may be in an unreadable document is not
    // called a reference to nothing.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", "kind: Service\nspec: [unclosed\n");
    write(dir.path(), "b.yaml", CAPACITY);
    let err = load_dir(dir.path(), REGION).unwrap_err();
    assert_eq!(err.diagnostics.len(), 1, "{err}");
    assert!(err.diagnostics[0].message.starts_with("YAML syntax error"));
}

#[test]
fn kind_and_api_version_problems() {
    // (text, expected message part, expected help part)
    let cases: &[(&str, &str, &str)] = &[
        (
            "apiVersion: ballast.dev/v1alpha1\nkind: service\nmetadata: {name: a}\n",
            "unknown kind `service`",
            "did you mean `Service`?",
        ),
        ("apiVersion: ballast.dev/v1alpha1\nkind: Capacty\n", "unknown kind `Capacty`", "did you mean `Capacity`?"),
        (
            "apiVersion: ballast.dev/v1alpha1\nkind: Deployment\n",
            "unknown kind `Deployment`",
            "write `kind: Service` or `kind: Capacity`",
        ),
        (
            "apiVersion: ballast.dev/v1alpha1\nmetadata: {name: a}\n",
            "missing required field `kind`",
            "add `kind: Service`",
        ),
        ("kind: Pod\n", "missing required field `apiVersion`", "add `apiVersion: ballast.dev/v1alpha1`"),
        (
            "apiVersion: apps/v1\nkind: Pod\n",
            "unsupported apiVersion `apps/v1`",
            "write `apiVersion: ballast.dev/v1alpha1`",
        ),
    ];
    for (text, message, help) in cases {
        let diags = errors(text);
        let d = diags.iter().find(|d| d.message.contains(message)).unwrap_or_else(|| panic!("{text:?}: {diags:#?}"));
        assert!(d.help.as_ref().unwrap().contains(help), "{d}");
        assert!(d.line.is_some());
    }
    let missing_api = SERVICE.replace("apiVersion: ballast.dev/v1alpha1\n", "");
    let d = &errors(&missing_api)[0];
    assert_eq!(d.message, "missing required field `apiVersion`");
    assert_eq!(d.line, Some(1));
}

#[test]
fn region_comes_from_the_document_or_the_default() {
    let err = load_str("t.yaml", SERVICE, "").unwrap_err();
    assert!(err.diagnostics[0].message.contains("missing required field `spec.region`"), "{err}");
    let err = load_str("t.yaml", SERVICE, "mars").unwrap_err();
    assert!(err.diagnostics[0].message.contains("the default region `mars`"), "{err}");
    let ok = load_str("t.yaml", &SERVICE.replace("spec:\n", "spec:\n  region: us-gov-west-1\n"), "").unwrap();
    assert_eq!(ok.services[0].id.region, "us-gov-west-1");
}

#[test]
fn byte_order_marks_crlf_and_tabs() {
    let bom = format!("\u{feff}{}", both());
    load_str("t.yaml", &bom, REGION).unwrap_or_else(|e| panic!("BOM: {e}"));
    let crlf = both().replace('\n', "\r\n");
    load_str("t.yaml", &crlf, REGION).unwrap_or_else(|e| panic!("CRLF: {e}"));
    // Positions still count lines right with CRLF.
    let bad = crlf.replacen("containerPort: 80", "containerPort: 0", 1);
    let d = &errors(&bad)[0];
    assert_eq!((d.line, d.column), (Some(14), Some(22)), "{d}");
    // Tabs cannot indent YAML: a syntax error, located.
    let tabs = SERVICE.replace("    min: 2", "\tmin: 2");
    let d = &errors(&tabs)[0];
    assert!(d.message.starts_with("YAML syntax error"), "{d}");
    assert_eq!(d.line, Some(9), "{d}");
}

#[test]
fn anchors_and_aliases_are_followed() {
    let text = both()
        .replace("    max: 10\n", "    max: &max 10\n")
        .replace("      containerPort: 80\n", "      containerPort: 80\n      minHealthy: *max\n");
    let state = load_str("t.yaml", &text, REGION).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.services[0].target_groups[0].min_healthy, Some(10));
    // Anchors do not reach into the next document (YAML's rule).
    let text =
        both().replace("    max: 10\n", "    max: &max 10\n").replace("  maxInstances: 10\n", "  maxInstances: *max\n");
    let d = &errors(&text)[0];
    assert!(d.message.contains("unknown anchor"), "{d}");
}

#[test]
fn directory_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "b/service.yml", SERVICE);
    write(d, "a-capacity.yaml", CAPACITY);
    write(d, "README.md", "not yaml: [");
    write(d, "notes.txt", "\u{0}\u{1}");
    write(d, ".hidden.yaml", "garbage: [");
    write(d, ".git/config.yaml", "garbage: [");
    write(d, "empty.yaml", "---\n---\n# nothing\n");
    let state = load_dir(d, REGION).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((state.services.len(), state.capacities.len()), (1, 1));

    // Files are read in path order, so diagnostics are stable.
    write(d, "c.yaml", "kind: Service\nfoo: [");
    write(d, "0.yaml", "kind: Service\nfoo: [");
    let err = load_dir(d, REGION).unwrap_err();
    let names: Vec<_> = err.diagnostics.iter().map(|x| x.file.file_name().unwrap().to_owned()).collect();
    assert_eq!(names, ["0.yaml", "c.yaml"]);
    assert_eq!(err.diagnostics[0].file, d.join("0.yaml"));
}

#[test]
fn files_that_are_not_desired_state() {
    // (file contents, expected message part)
    let cases: &[(&[u8], &str)] = &[
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "the file is not UTF-8 text"),
        (b"# Desired state\n\nPut the YAML files here.\n", "this document is plain text"),
        (b"- a\n- b\n", "this document is a list"),
        (b"Usage: ballast run --desired-state DIR\n", "this document has no `apiVersion` or `kind`"),
        (b"key: [unclosed\n", "YAML syntax error"),
    ];
    for (contents, message) in cases {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "x.yaml", contents);
        let err = load_dir(dir.path(), REGION).unwrap_err();
        assert_eq!(err.diagnostics.len(), 1, "{err}");
        assert!(err.diagnostics[0].message.contains(message), "{message}: {err}");
    }
}

#[test]
fn empty_missing_and_non_directories() {
    let dir = tempfile::tempdir().unwrap();
    let err = load_dir(dir.path(), REGION).unwrap_err();
    assert!(
        err.diagnostics[0].message.contains("no desired-state documents in this directory (0 YAML files read)"),
        "{err}"
    );
    write(dir.path(), "only-comments.yaml", "# todo\n---\n");
    let err = load_dir(dir.path(), REGION).unwrap_err();
    assert!(err.diagnostics[0].message.contains("(1 YAML file read)"), "{err}");

    let missing = dir.path().join("nope");
    let err = load_dir(&missing, REGION).unwrap_err();
    assert_eq!(err.diagnostics[0].message, "the desired-state directory does not exist");
    assert_eq!(err.diagnostics[0].file, missing);

    let file = dir.path().join("only-comments.yaml");
    let err = load_dir(&file, REGION).unwrap_err();
    assert!(err.diagnostics[0].message.contains("not a directory"));
}

#[cfg(unix)]
#[test]
fn follows_symlinks_like_a_configmap_volume_without_looping() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The layout kubelet writes: hidden timestamped dir, `..data`
    // link, and visible links through it.
    write(d, "..2024_01_01/app.yaml", both());
    std::os::unix::fs::symlink("..2024_01_01", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/app.yaml", d.join("app.yaml")).unwrap();
    std::os::unix::fs::symlink(".", d.join("loop")).unwrap();
    let state = load_dir(d, REGION).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state.services.len(), 1);
}

#[test]
fn display_shows_position_message_and_help() {
    let d = Diagnostic {
        file: "desired-state/app.yaml".into(),
        line: Some(12),
        column: Some(22),
        message: "`spec.targetGroups[0].containerPort` is 70000, but must be between 1 and 65535".into(),
        help: Some("ports are 1 to 65535".into()),
    };
    assert_eq!(
        d.to_string(),
        "error: desired-state/app.yaml:12:22: `spec.targetGroups[0].containerPort` is 70000, but must be between 1 and 65535\n  help: ports are 1 to 65535"
    );
    let whole = Diagnostic {
        file: "ds".into(),
        line: None,
        column: None,
        message: "the desired-state directory does not exist".into(),
        help: None,
    };
    assert_eq!(whole.to_string(), "error: ds: the desired-state directory does not exist");
    let err = LoadError { diagnostics: vec![d.clone(), whole.clone()] };
    assert_eq!(err.to_string(), format!("{d}\n{whole}\n2 problems in the desired state"));
}

/// The apiVersion rule is one function: a document whose kind is unknown
/// (of which nothing else is checked) gets the same messages as one
/// whose kind is right.
#[test]
fn api_version_messages_do_not_depend_on_the_kind() {
    for (api_version, message) in [
        ("apiVersion:\n", "`apiVersion` is empty"),
        ("apiVersion: apps/v1\n", "unsupported apiVersion `apps/v1`"),
        ("", "missing required field `apiVersion`"),
    ] {
        for kind in ["Pod", "Service"] {
            let text = format!("{api_version}kind: {kind}\n");
            let diags = errors(&text);
            assert!(diags.iter().any(|d| d.message.starts_with(message) && d.line == Some(1)), "{text:?}: {diags:#?}");
        }
    }
}
