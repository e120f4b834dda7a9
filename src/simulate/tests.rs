//! The scenario loader (every mistake located) and the runner (traffic
//! accounting, determinism) on the example desired state.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::scenario::{Action, Shape};
use super::*;
use crate::cloud::sim::SimConfig;

const REGION: &str = "us-east-2";

use crate::fixtures;

fn manifest_dir() -> PathBuf {
    fixtures::repo()
}

fn example_dir() -> PathBuf {
    manifest_dir().join("desired-state")
}

/// A scenario around `spec`, as if it were `scenarios/test.yaml`.
fn scenario(spec: &str) -> String {
    format!("apiVersion: ballast.dev/v1alpha1\nkind: Scenario\nmetadata:\n  name: test\nspec:\n{spec}")
}

fn load(text: &str) -> Result<Scenario, ScenarioError> {
    load_scenario_str(&manifest_dir().join("scenarios/test.yaml"), text, &example_dir(), REGION)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

#[test]
fn a_full_scenario_loads_with_defaults_and_expanded_events() {
    let s = load(&scenario(
        "  duration: 2h\n\
         \x20 seed: 9\n\
         \x20 load:\n\
         \x20   - service: app\n\
         \x20     points: [{at: 0s, rps: 100}, {at: 30m, rps: 300}]\n\
         \x20     repeat: 1h\n\
         \x20 events:\n\
         \x20   - at: 50m\n\
         \x20     terminateInstance: {count: 2, zone: us-east-2a}\n\
         \x20   - at: 10m\n\
         \x20     every: 40m\n\
         \x20     deploy: {service: appService}\n\
         \x20   - at: 20m\n\
         \x20     restartController:\n\
         \x20   - at: 30m\n\
         \x20     outage: {duration: 2m}\n\
         \x20   - at: 1h\n\
         \x20     actor: {service: appCluster/appService, desiredCount: 4}\n\
         \x20 aws:\n\
         \x20   deregistrationDelay: 30s\n\
         \x20   healthyThreshold: 3\n",
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.name.as_str(), s.duration, s.seed, s.interval), ("test", secs(7200), 9, secs(15)));
    assert_eq!(s.load.len(), 1);
    assert_eq!(s.load[0].service.service, "appService");
    assert_eq!(s.load[0].curve.shape, Shape::Linear);
    assert_eq!(s.load[0].curve.repeat, Some(secs(3600)));
    let times: Vec<(u64, &str)> = s.events.iter().map(|e| (e.at.as_secs() / 60, e.action.kind())).collect();
    assert_eq!(
        times,
        [
            (10, "deploy"),
            (20, "restartController"),
            (30, "outage"),
            (50, "terminateInstance"),
            (50, "deploy"),
            (60, "actor"),
            (90, "deploy")
        ]
    );
    // Same time: file order.
    assert_eq!(s.events[4].line, s.events[0].line);
    assert!(s.events[3].line < s.events[4].line);
    match &s.events[3].action {
        Action::TerminateInstance { group, count, zone } => {
            assert_eq!((group.name.as_str(), *count, zone.as_deref()), ("ecsAutoScalingGroup", 2, Some("us-east-2a")));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(s.aws.sim.deregistration_delay, secs(30));
    assert_eq!(s.aws.sim.healthy_threshold, 3);
    assert_eq!(s.aws.sim.stop_timeout, SimConfig::default().stop_timeout, "not set: AWS's default");
}

#[test]
fn a_repeating_curve_is_unrolled_periodically_from_before_the_start() {
    let s = load(&scenario(
        "  duration: 2h\n  load:\n    - service: app\n      steps: [{at: 0s, rps: 10}, {at: 45m, rps: 50}]\n      repeat: 1h\n",
    ))
    .unwrap();
    let start = SystemTime::UNIX_EPOCH + secs(1_000_000);
    let points: Vec<(i64, f64)> = s.load[0]
        .curve
        .instants(start, s.duration)
        .into_iter()
        .map(|(t, r)| {
            let off = match t.duration_since(start) {
                Ok(d) => d.as_secs() as i64,
                Err(e) => -(e.duration().as_secs() as i64),
            };
            (off / 60, r)
        })
        .collect();
    assert_eq!(points, [(-15, 50.0), (0, 10.0), (45, 50.0), (60, 10.0), (105, 50.0), (120, 10.0)]);
}

/// The broken specs of tests/fixtures/invalid-scenarios.txt: (spec, a
/// part of the message, its line in the file; line 6 is the first line of
/// the spec).
fn invalid_specs() -> Vec<(String, String, usize)> {
    let text = std::fs::read_to_string(manifest_dir().join("tests/fixtures/invalid-scenarios.txt")).unwrap();
    let mut cases: Vec<(String, String, usize)> = Vec::new();
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("== ") {
            let (at, message) = head.split_once(": ").unwrap_or_else(|| panic!("`== LINE: MESSAGE` expected: {line}"));
            cases.push((String::new(), message.to_string(), at.parse().unwrap()));
        } else if let Some((spec, _, _)) = cases.last_mut() {
            spec.push_str(line);
            spec.push('\n');
        } else {
            assert!(line.is_empty() || line.starts_with('#'), "text before the first case: {line}");
        }
    }
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    cases
}

#[test]
fn every_mistake_is_reported_at_its_line_with_help() {
    for (spec, expected, line) in invalid_specs() {
        let err = load(&scenario(&spec)).expect_err(&spec);
        let hit = err
            .diagnostics
            .iter()
            .find(|d| d.message.contains(&expected) || d.help.as_deref().is_some_and(|h| h.contains(&expected)))
            .unwrap_or_else(|| panic!("{spec:?}: no message contains {expected:?}:\n{err}"));
        assert_eq!(hit.line, Some(line), "{spec:?}:\n{err}");
        assert!(hit.column.is_some(), "{spec:?}: no column in {hit}");
        assert!(hit.help.as_deref().is_some_and(|h| !h.is_empty()), "{spec:?}: no help in {hit}");
        // One mistake, one message.
        assert_eq!(err.diagnostics.len(), 1, "{spec:?}:\n{err}");
        assert!(hit.to_string().starts_with("error: "), "{hit}");
        assert!(hit.file.ends_with("scenarios/test.yaml"), "{}", hit.file.display());
    }
}

#[test]
fn all_mistakes_are_reported_at_once_in_file_order() {
    let err = load(&scenario(
        "  duration: 1h\n  seed: -3\n  load:\n    - service: nope\n      rps: 1\n  events:\n    - at: 2h\n      restartController: {}\n",
    ))
    .unwrap_err();
    let lines: Vec<Option<usize>> = err.diagnostics.iter().map(|d| d.line).collect();
    assert_eq!(lines, [Some(7), Some(9), Some(12)], "{err}");
    assert!(err.to_string().ends_with("3 problems in the scenario or its desired state"), "{err}");
}

#[test]
fn the_document_itself_is_checked_first() {
    // (text, message)
    let cases: &[(&str, &str)] = &[
        ("apiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata: {name: x}\n", "desired-state `Service` document"),
        ("apiVersion: ballast.dev/v1alpha1\nkind: Scenarios\n", "did you mean `Scenario`?"),
        (
            "apiVersion: ballast.dev/v1\nkind: Scenario\nmetadata: {name: x}\nspec: {duration: 1h}\n",
            "unsupported apiVersion",
        ),
        (
            "apiVersion: ballast.dev/v1alpha1\nkind: Scenario\nmetadata: {name: X_1}\nspec: {duration: 1h}\n",
            "not a lowercase DNS label",
        ),
        ("kind: Scenario\nspec: [1\n", "YAML syntax error"),
        ("- a\n- b\n", "not a mapping"),
        ("", "no document"),
        (
            "apiVersion: ballast.dev/v1alpha1\nkind: Scenario\nmetadata: {name: a}\nspec: {duration: 1h}\n---\nkind: Scenario\n",
            "a second document",
        ),
    ];
    for (text, expected) in cases {
        let err = load(text).expect_err(text);
        assert!(err.diagnostics.iter().any(|d| d.to_string().contains(expected)), "{text:?}:\n{err}");
    }
}

/// A directory with the example desired state, the app's Service document
/// renamed, and a scenario file beside it.
fn switch_bed(service_name: &str) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for sub in ["start", "after"] {
        std::fs::create_dir(tmp.path().join(sub)).unwrap();
        std::fs::copy(example_dir().join("capacity.yaml"), tmp.path().join(sub).join("capacity.yaml")).unwrap();
    }
    let app = std::fs::read_to_string(example_dir().join("app.yaml")).unwrap();
    std::fs::write(tmp.path().join("start/app.yaml"), &app).unwrap();
    let renamed = app.replace("  name: app\n", &format!("  name: {service_name}\n"));
    std::fs::write(tmp.path().join("after/app.yaml"), renamed).unwrap();
    tmp
}

#[test]
fn names_are_those_of_the_desired_state_in_force_at_the_event() {
    let tmp = switch_bed("web");
    let file = tmp.path().join("s.yaml");
    let text = |name: &str| {
        scenario(&format!(
            "  duration: 1h\n  events:\n    - at: 10m\n      desiredState: after\n    - at: 20m\n      deploy: {{service: {name}}}\n"
        ))
    };
    let s = load_scenario_str(&file, &text("web"), &tmp.path().join("start"), REGION).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(&s.events[0].action, Action::DesiredState(d) if d.dir == tmp.path().join("after")));
    assert!(matches!(&s.events[1].action, Action::Deploy { name, .. } if name == "web"));
    let err = load_scenario_str(&file, &text("app"), &tmp.path().join("start"), REGION).unwrap_err();
    assert!(err.diagnostics[0].message.contains("no service `app` in the desired state"), "{err}");
    assert_eq!(err.diagnostics[0].line, Some(11));
}

#[test]
fn an_invalid_desired_state_is_reported_with_its_own_location() {
    let tmp = switch_bed("web");
    std::fs::write(
        tmp.path().join("after/app.yaml"),
        "apiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {cluster: c}\n",
    )
    .unwrap();
    let file = tmp.path().join("s.yaml");
    let text = scenario(
        "  duration: 1h\n  events:\n    - at: 10m\n      desiredState: after\n    - at: 20m\n      deploy: {service: web}\n",
    );
    let err = load_scenario_str(&file, &text, &tmp.path().join("start"), REGION).unwrap_err();
    assert!(!err.diagnostics.is_empty());
    // Only the desired state's own problems: the scenario's names after
    // the switch cannot be checked, and are not reported as wrong.
    for d in &err.diagnostics {
        assert!(d.file.starts_with(tmp.path().join("after")), "{d}");
        assert!(d.line.is_some(), "{d}");
    }
    let missing = load_scenario_str(&file, &text, Path::new("/nonexistent"), REGION).unwrap_err();
    assert!(missing.to_string().contains("the desired-state directory does not exist"), "{missing}");
}

#[test]
fn every_shipped_scenario_is_valid() {
    for path in fixtures::files("scenarios", "yaml", 6) {
        load_scenario(&path, &example_dir(), REGION).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()));
    }
}

// ---- the runner ------------------------------------------------------------

fn run_blocking(s: &Scenario, options: &RunOptions) -> Report {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(run(s, options))
}

#[test]
fn steady_load_without_events_serves_every_request_of_the_load() {
    // 200 requests per second: the service scales out from two tasks to
    // four on the way, and no request may be lost to it.
    let s = load(&scenario("  duration: 1h\n  load:\n    - service: app\n      rps: 200\n")).unwrap();
    let report = run_blocking(&s, &RunOptions::default());
    let target_groups = s.initial.desired.services[0].target_groups.len() as f64;
    let offered = 200.0 * 3600.0 * target_groups;
    assert_eq!(report.failed_requests, 0.0, "{}", report.render());
    assert!((report.served_requests - offered).abs() < 1e-6 * offered, "{} of {offered}", report.served_requests);
    assert_eq!(report.target_groups.len(), 2);
    for (name, tg) in &report.target_groups {
        assert!((tg.served_requests - 200.0 * 3600.0).abs() < 1e-3, "{name}: {tg:?}");
        assert_eq!(tg.seconds_with_failures, 0, "{name}");
    }
    assert!(report.scaling_actions >= 1, "the load needs more than the minimum: {}", report.render());
    assert!(report.task_minutes > 2.0 * 60.0, "{}", report.task_minutes);
    assert!(report.instance_minutes >= report.task_minutes, "{report:?}");
    assert_eq!(report.changes_failed, 0);
}

/// A bit of everything, for the determinism and reporting checks.
const BUSY: &str = "  duration: 2h\n  seed: 5\n  load:\n    - service: app\n      steps: [{at: 0s, rps: 250}, {at: 50m, rps: 40}]\n  events:\n    - at: 20m\n      terminateInstance: {count: 1}\n    - at: 30m\n      outage: {duration: 3m}\n    - at: 55m\n      restartController: {}\n    - at: 1h10m\n      actor: {service: app, desiredCount: 5}\n    - at: 1h30m\n      deploy: {service: app}\n";

#[test]
fn the_same_scenario_and_seed_give_the_same_report() {
    let mut s = load(&scenario(BUSY)).unwrap();
    // Without the example's termination hook, the terminated instance's
    // task dies with it: a report with failures to compare.
    s.initial.desired.capacities[0].termination_hook = None;
    let first = run_blocking(&s, &RunOptions::default());
    let second = run_blocking(&s, &RunOptions::default());
    assert_eq!(first, second);
    assert_eq!(serde_json::to_string(&first).unwrap(), serde_json::to_string(&second).unwrap());
    assert!(first.failed_requests > 0.0, "terminating an instance under load drops requests: {}", first.render());
}

#[test]
fn each_event_reports_when_the_plan_converged_again() {
    let s = load(&scenario(BUSY)).unwrap();
    let report = run_blocking(&s, &RunOptions::default());
    let kinds: Vec<&str> = report.events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["terminateInstance", "outage", "restartController", "actor", "deploy"]);
    for e in &report.events {
        assert_eq!(e.error, None, "{e:?}");
        let converged = e.converged_after_seconds.unwrap_or_else(|| panic!("{e:?}"));
        assert!(e.settled_after_seconds.is_none_or(|s| s >= converged), "{e:?}");
    }
    // No pass converges while AWS cannot be read.
    assert!(report.events[1].converged_after_seconds.unwrap() >= secs(180), "{:?}", report.events[1]);
    // The other actor's count is corrected by a change before convergence.
    assert!(report.events[3].converged_after_seconds.unwrap() > Duration::ZERO, "{:?}", report.events[3]);
    let json = serde_json::to_value(&report).unwrap();
    for key in crate::simulate::report::JSON_KEYS {
        assert!(json.get(key).is_some(), "{key} missing from {json}");
    }
    assert!(json["events"][0]["convergedAfterSeconds"].is_number(), "{json}");
    assert_eq!(json["changesApplied"]["desiredCount"], report.changes_applied["desiredCount"]);
}

#[test]
fn with_ecs_registering_the_targets_ballast_changes_none() {
    let s = load(&scenario(
        "  duration: 40m\n  load:\n    - service: app\n      rps: 200\n  events:\n    - at: 15m\n      terminateInstance: {count: 1}\n",
    ))
    .unwrap();
    let ecs = run_blocking(&s, &RunOptions { targets: TargetManager::Ecs });
    assert_eq!(ecs.targets, "ecs");
    assert_eq!((ecs.changes_applied["registerTargets"], ecs.changes_applied["deregisterTargets"]), (0, 0));
    assert!(ecs.served_requests > 0.0, "{}", ecs.render());
    let ballast = run_blocking(&s, &RunOptions::default());
    assert!(ballast.changes_applied["registerTargets"] > 0, "{}", ballast.render());
}

#[test]
fn a_desired_state_switch_puts_the_new_state_in_force() {
    let tmp = switch_bed("app");
    // The edit: a fixed count of six tasks.
    let app = std::fs::read_to_string(tmp.path().join("after/app.yaml")).unwrap();
    let start = app.find("  tasks:").unwrap();
    let end = app.find("  targetGroups:").unwrap();
    let scaling = app.find("  scaling:").unwrap();
    let budget = app.find("  budget:").unwrap();
    let edited = format!("{}  tasks:\n    count: 6\n{}{}", &app[..start], &app[end..scaling], &app[budget..]);
    std::fs::write(tmp.path().join("after/app.yaml"), edited).unwrap();
    let file = tmp.path().join("s.yaml");
    let text = scenario("  duration: 30m\n  events:\n    - at: 10m\n      desiredState: after\n");
    let s = load_scenario_str(&file, &text, &tmp.path().join("start"), REGION).unwrap_or_else(|e| panic!("{e}"));
    let report = run_blocking(&s, &RunOptions::default());
    assert!(report.changes_applied["desiredCount"] >= 1, "{}", report.render());
    let e = &report.events[0];
    assert!(e.converged_after_seconds.is_some_and(|c| c > Duration::ZERO), "{e:?}");
    // Six tasks for the last part of the run.
    assert!(report.task_minutes > 2.0 * 10.0 + 6.0 * 15.0, "{}", report.render());
}

#[test]
fn the_deployment_configuration_of_aws_applies_to_every_service() {
    // One task per instance (static host ports, no headroom): with ECS's
    // defaults (100 / 200) the new task finds no room and the old tasks
    // keep serving; with deploy/'s 0 / 100 the old task stops first, and
    // its requests fail until the replacement is healthy. (ECS registers
    // the targets: ballast's hand-over, which loses nothing, would hide
    // the configuration's effect.)
    let deploy = "  duration: 30m\n  load:\n    - service: app\n      rps: 100\n  events:\n    - at: 10m\n      deploy: {service: app}\n";
    let ecs = RunOptions { targets: TargetManager::Ecs };
    let defaults = run_blocking(&load(&scenario(deploy)).unwrap(), &ecs);
    let stop_first = format!("{deploy}  aws:\n    minimumHealthyPercent: 0\n    maximumPercent: 100\n");
    let stop_first = run_blocking(&load(&scenario(&stop_first)).unwrap(), &ecs);
    assert_eq!(defaults.failed_requests, 0.0, "{}", defaults.render());
    assert!(stop_first.failed_requests > 0.0, "{}", stop_first.render());
}

/// Issue 15 item 3: AWS terminates an instance (a health replacement, a
/// Spot interruption) under steady load, with the example's termination
/// hook: ballast drains it (targets out, the lag, DRAINING, ECS replaces
/// the task elsewhere) and completes the lifecycle action, and no request
/// fails, at the shipped propagation lag and at 120 s.
#[test]
fn an_instance_aws_terminates_through_the_hook_loses_no_request() {
    for lag in [None, Some(secs(120))] {
        let text = std::fs::read_to_string(manifest_dir().join("scenarios/instance-terminated-by-aws.yaml")).unwrap();
        let mut s = load(&text).unwrap();
        if let Some(lag) = lag {
            s.aws.sim.deregistration_propagation_lag = lag;
        }
        let report = run_blocking(&s, &RunOptions::default());
        assert_eq!(report.failed_requests, 0.0, "lag {lag:?}: {}", report.render());
        assert_eq!(report.changes_applied["lifecycleHook"], 1, "the hook is created once: {}", report.render());
        assert!(report.changes_applied["termination"] >= 2, "DRAINING and the completion: {}", report.render());
        assert_eq!(report.changes_failed, 0, "{}", report.render());
        let event = &report.events[0];
        assert!(event.converged_after_seconds.is_some(), "{event:?}");
    }
}

/// Issue 15's deployment goal: the shipped rolling deployment (deploy/'s
/// 0 % / 100 %, `minHealthy: 1`) loses no request and settles within the
/// time ECS's own load-balancer integration needs plus one deregistration
/// delay, at the shipped propagation lag and at 120 s; and a controller
/// restarted in the middle of the surge reads it back from its mark
/// rather than surging again. With maximumPercent 200 ECS starts the new
/// task itself (no surge), once ballast has planned an instance for it.
#[test]
fn a_rolling_deployment_surges_and_settles_within_one_drain_of_ecs() {
    let text = std::fs::read_to_string(manifest_dir().join("scenarios/rolling-deployment.yaml")).unwrap();
    let restart = format!("{text}    - at: 16m\n      restartController: {{}}\n");
    let room = Some((0, 200));
    for (text, lag, deployment) in
        [(&text, None, None), (&text, Some(secs(120)), None), (&restart, None, None), (&text, None, room)]
    {
        let mut s = load(text).unwrap();
        if let Some(lag) = lag {
            s.aws.sim.deregistration_propagation_lag = lag;
        }
        if deployment.is_some() {
            s.aws.deployment = deployment;
        }
        let ecs = run_blocking(&s, &RunOptions { targets: TargetManager::Ecs });
        let report = run_blocking(&s, &RunOptions::default());
        assert_eq!(report.failed_requests, 0.0, "lag {lag:?}: {}", report.render());
        let settled = |r: &Report| {
            let deploy = r.events.iter().find(|e| e.kind == "deploy").expect("the deployment");
            deploy.settled_after_seconds.expect("settled")
        };
        let budget = settled(&ecs) + s.aws.sim.deregistration_delay;
        assert!(settled(&report) <= budget, "lag {lag:?}: {:?} > {budget:?}: {}", settled(&report), report.render());
        // Up once, down once: a restart does not surge again.
        let marks = if deployment.is_some() { 0 } else { 2 };
        assert_eq!(report.changes_applied["surgeMark"], marks, "lag {lag:?}: {}", report.render());
        assert_eq!(report.changes_failed, 0, "{}", report.render());
    }
}
