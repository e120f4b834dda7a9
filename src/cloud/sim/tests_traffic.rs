//! Tests of traffic and of the AWS behaviours that drop requests: each
//! names the behaviour's row in docs/simulation.md.

use super::*;

/// The article's system with `count` tasks and `rps` requests per second,
/// run for a minute.
fn loaded(count: u32, rps: f64, config: SimConfig) -> Fixture {
    let f = Fixture::new(&app(count), false, config);
    f.sim.set_load(&sid("appService"), rps).unwrap();
    f
}

fn counts(f: &Fixture, tg_name: &str) -> RequestCounts {
    f.sim.traffic().remove(tg_name).expect("the target group exists")
}

#[test]
fn steady_load_without_events_serves_every_request() {
    let f = loaded(2, 100.0, SimConfig::default());
    f.advance(secs(3600));
    for name in ["frontendTargetGroup", "backendTargetGroup"] {
        let c = counts(&f, name);
        assert_eq!(c, RequestCounts { served: 100.0 * 3600.0, failed: 0.0, seconds_with_failures: 0 }, "{name}");
    }
    let usage = f.sim.usage();
    assert_eq!(usage.task_seconds, 2.0 * 3600.0);
    assert_eq!(usage.instance_seconds, 2.0 * 3600.0);
    assert_eq!(usage.cpu_minutes_above_90, 0);
}

#[test]
fn a_linear_load_integrates_as_a_trapezoid_and_a_step_holds_until_the_next_point() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let t0 = f.sim.now();
    let curve = |interpolation| LoadCurve {
        points: vec![(t0 + secs(100), 0.0), (t0 + secs(200), 100.0), (t0 + secs(300), 100.0)],
        interpolation,
    };
    f.sim.set_load_curve(&sid("appService"), curve(Interpolation::Linear)).unwrap();
    f.advance(secs(150));
    assert_eq!(counts(&f, "frontendTargetGroup").served, 50.0 * 50.0 / 2.0);
    f.advance(secs(250));
    // 0..100 s: 0; 100..200 s: 5000; 200..400 s: 20000.
    assert_eq!(counts(&f, "frontendTargetGroup").served, 25_000.0);

    let f = Fixture::new(&app(2), false, SimConfig::default());
    f.sim.set_load_curve(&sid("appService"), curve(Interpolation::Step)).unwrap();
    f.advance(secs(400));
    assert_eq!(counts(&f, "frontendTargetGroup").served, 0.0 * 100.0 + 100.0 * 200.0);
    assert_eq!(f.sim.config(), SimConfig::default());

    let bad = LoadCurve { points: vec![(t0, 1.0), (t0, 2.0)], interpolation: Interpolation::Linear };
    assert!(f.sim.set_load_curve(&sid("appService"), bad).is_err(), "instants must ascend");
}

#[test]
fn usage_counts_the_minutes_a_service_runs_hot() {
    // 200 requests per second on two tasks: 100 % CPU each.
    let f = loaded(2, 200.0, SimConfig::default());
    f.advance(secs(600));
    assert_eq!(f.sim.usage().cpu_minutes_above_90, 10);
    f.sim.set_load(&sid("appService"), 100.0).unwrap();
    f.advance(secs(600));
    assert_eq!(f.sim.usage().cpu_minutes_above_90, 10, "50 % is not hot");
}

/// ipService: awsvpc tasks, four per instance (by CPU and memory).
fn ip_app(count: u32) -> DesiredState {
    let mut desired = app(count);
    desired.services = vec![service("ipService", count, vec![binding("ipTargets", 8080, TargetType::Ip)])];
    desired
}

/// The task of appService on the group's first instance and its frontend target.
fn first_task(f: &Fixture) -> (String, Target) {
    let instance = f.sim.group(&gid()).unwrap().instances[0].id.clone();
    let task = f.live_tasks("appService").into_iter().find(|t| t.instance_id.as_deref() == Some(&instance)).unwrap();
    (task.arn, Target { id: instance, port: 80 })
}

fn task_status(f: &Fixture, service: &str, arn: &str) -> Option<TaskStatus> {
    f.svc(service).tasks.into_iter().find(|t| t.arn == arn).map(|t| t.last_status)
}

// ---- NLB ---------------------------------------------------------------------

#[test]
fn nlb_a_new_target_gets_no_traffic_until_it_passes_health_checks() {
    let f = loaded(2, 100.0, SimConfig::default());
    // A target nothing answers on: initial for 20 s, then unhealthy. Were
    // it routed, a third of the requests would fail.
    let instance = f.sim.group(&gid()).unwrap().instances[0].id.clone();
    let stray = Target { id: instance, port: 9000 };
    f.sim.register_target(&tg("frontendTargetGroup"), stray.clone()).unwrap();
    assert_eq!(f.health_after(secs(19), "frontendTargetGroup", &stray), Some(TargetHealth::Initial));
    assert_eq!(f.health_after(secs(41), "frontendTargetGroup", &stray), Some(TargetHealth::Unhealthy));
    assert_eq!(
        counts(&f, "frontendTargetGroup"),
        RequestCounts { served: 6000.0, failed: 0.0, seconds_with_failures: 0 }
    );
}

#[test]
fn nlb_keeps_sending_new_connections_to_a_deregistered_target_for_the_propagation_lag_then_drains() {
    let run = |lag: u64| {
        let config = SimConfig { deregistration_propagation_lag: secs(lag), ..SimConfig::default() };
        let f = loaded(2, 100.0, config);
        let (task, target) = first_task(&f);
        // ballast's order today: deregister, then the task stops 10 s later.
        f.sim.deregister_target(&tg("frontendTargetGroup"), target.clone()).unwrap();
        f.advance(secs(10));
        f.sim.stop_task(&task).unwrap();
        f.advance(secs(120));
        (f, target)
    };
    // Routed until 30 s, dead from 10 s: 20 s of half the requests fail.
    let (f, target) = run(30);
    let c = counts(&f, "frontendTargetGroup");
    assert_eq!((c.failed, c.seconds_with_failures), (50.0 * 20.0, 20));
    assert_eq!(c.served + c.failed, 100.0 * 130.0);
    // Draining for the deregistration delay (300 s), then gone.
    assert_eq!(f.health_after(secs(169), "frontendTargetGroup", &target), Some(TargetHealth::Draining));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), None);

    let (f, _) = run(0);
    assert_eq!(counts(&f, "frontendTargetGroup").failed, 0.0, "without the lag nothing reaches the stopped task");

    // A shorter deregistration delay does not shorten the drain below the lag.
    let config = SimConfig { deregistration_delay: secs(5), ..SimConfig::default() };
    let f = Fixture::new(&app(2), false, config);
    let (_, target) = first_task(&f);
    f.sim.deregister_target(&tg("frontendTargetGroup"), target.clone()).unwrap();
    assert_eq!(f.health_after(secs(59), "frontendTargetGroup", &target), Some(TargetHealth::Draining));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), None);
}

#[test]
fn nlb_routes_to_a_target_whose_task_died_until_health_checks_mark_it_unhealthy() {
    let f = loaded(2, 100.0, SimConfig::default());
    let (task, target) = first_task(&f);
    f.sim.stop_task(&task).unwrap();
    assert_eq!(f.health_after(secs(19), "frontendTargetGroup", &target), Some(TargetHealth::Healthy));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), Some(TargetHealth::Unhealthy));
    // The replacement runs at 25 s on the same instance, healthy at 45 s.
    assert_eq!(f.health_after(secs(100), "frontendTargetGroup", &target), Some(TargetHealth::Healthy));
    for name in ["frontendTargetGroup", "backendTargetGroup"] {
        let c = counts(&f, name);
        assert_eq!((c.failed, c.seconds_with_failures), (50.0 * 20.0, 20), "{name}");
    }
}

#[test]
fn nlb_fails_open_when_no_target_is_healthy() {
    let f = loaded(2, 100.0, SimConfig::default());
    // A second listener's target group whose targets are all new.
    let fresh = f.sim.create_target_group(REGION, "freshTargetGroup", TargetType::Instance, 80);
    for task in f.live_tasks("appService") {
        let target = Target { id: task.instance_id.unwrap(), port: 80 };
        f.sim.register_target(&tg("freshTargetGroup"), target).unwrap();
    }
    let empty = f.sim.create_target_group(REGION, "emptyTargetGroup", TargetType::Instance, 80);
    f.sim.set_traffic_target_groups(&sid("appService"), vec![fresh, empty]).unwrap();
    f.advance(secs(20));
    let fresh_targets = f.sim.target_group(&tg("freshTargetGroup")).unwrap().targets;
    assert!(fresh_targets.iter().all(|t| t.health == TargetHealth::Healthy));
    // While both were initial the NLB sent to both, and the tasks answered.
    assert_eq!(counts(&f, "freshTargetGroup"), RequestCounts { served: 2000.0, failed: 0.0, seconds_with_failures: 0 });
    // No target at all: every request fails.
    assert_eq!(
        counts(&f, "emptyTargetGroup"),
        RequestCounts { served: 0.0, failed: 2000.0, seconds_with_failures: 20 }
    );
    assert_eq!(counts(&f, "frontendTargetGroup"), RequestCounts::default(), "no longer carries the service");
}

// ---- ECS service scheduler ---------------------------------------------------------

#[test]
fn ecs_scale_in_balances_zones_before_stopping_the_newest() {
    let f = Fixture::new(&ip_app(4), false, SimConfig::default());
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.instances.len(), 1, "four tasks fit one instance");
    let first = group.instances[0].id.clone();
    f.sim.set_desired_capacity(&gid(), 2).unwrap();
    f.advance(secs(60));
    f.sim.set_desired_count(&sid("ipService"), 5).unwrap();
    f.advance(secs(15));
    let newest = f.live_tasks("ipService").into_iter().max_by_key(|t| t.started_at).unwrap();
    assert_ne!(newest.instance_id.as_deref(), Some(first.as_str()), "placed in the empty zone");

    // Zone a has four tasks, zone b one: ECS stops one in zone a, not the newest.
    f.sim.set_desired_count(&sid("ipService"), 4).unwrap();
    let stopping: Vec<_> =
        f.svc("ipService").tasks.into_iter().filter(|t| t.desired_status == TaskStatus::Stopped).collect();
    assert_eq!(stopping.len(), 1);
    assert_eq!(stopping[0].instance_id.as_deref(), Some(first.as_str()));

    // Zones 3 and 1, then 2 and 1, then 1 and 1: then the newest goes.
    f.sim.set_desired_count(&sid("ipService"), 2).unwrap();
    f.sim.set_desired_count(&sid("ipService"), 1).unwrap();
    let live = f.live_tasks("ipService");
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].instance_id.as_deref(), Some(first.as_str()), "the newest task stopped");
}

#[test]
fn ecs_scale_in_skips_protected_tasks_until_protection_expires_or_is_removed() {
    let f = Fixture::new(&ip_app(3), false, SimConfig::default());
    let tasks: Vec<String> = f.live_tasks("ipService").into_iter().map(|t| t.arn).collect();
    for arn in &tasks {
        f.sim.set_task_protection(arn, Some(secs(600))).unwrap();
    }
    f.sim.set_desired_count(&sid("ipService"), 2).unwrap();
    f.advance(secs(599));
    assert_eq!(f.live_tasks("ipService").len(), 3, "every task is protected");
    assert!(f.sim.service_events(&sid("ipService")).iter().any(|e| e.contains("protected")));
    f.advance(secs(1));
    assert_eq!(f.live_tasks("ipService").len(), 2, "stopped when the protection expires");

    // Removing the protection lets ECS stop at once.
    let live: Vec<String> = f.live_tasks("ipService").into_iter().map(|t| t.arn).collect();
    for arn in &live {
        f.sim.set_task_protection(arn, Some(secs(3600))).unwrap();
    }
    f.sim.set_desired_count(&sid("ipService"), 1).unwrap();
    assert_eq!(f.live_tasks("ipService").len(), 2);
    f.sim.set_task_protection(&live[1], None).unwrap();
    let live_now: Vec<String> = f.live_tasks("ipService").into_iter().map(|t| t.arn).collect();
    assert_eq!(live_now, [live[0].clone()], "only the unprotected task may stop");

    // UpdateTaskProtection's limits: 48 hours at most.
    assert!(f.sim.set_task_protection(&live[0], Some(MAX_TASK_PROTECTION)).is_ok());
    assert!(f.sim.set_task_protection(&live[0], Some(MAX_TASK_PROTECTION + secs(60))).is_err());
    assert!(f.sim.set_task_protection(&live[1], Some(DEFAULT_TASK_PROTECTION)).is_err(), "a stopping task");
    assert!(matches!(f.sim.set_task_protection("arn:nope", None), Err(CloudError::NotFound(_))));
}

#[test]
fn a_stopping_task_serves_for_its_sigterm_grace_and_is_killed_at_the_stop_timeout() {
    let config =
        SimConfig { sigterm_grace: secs(5), task_stop_delay: secs(60), stop_timeout: secs(30), ..SimConfig::default() };
    let f = loaded(2, 100.0, config);
    let (task, _) = first_task(&f);
    f.sim.stop_task(&task).unwrap();
    f.advance(secs(5));
    assert_eq!(counts(&f, "frontendTargetGroup").failed, 0.0, "still answering in its grace");
    f.advance(secs(24));
    assert_eq!(task_status(&f, "appService", &task), Some(TaskStatus::Stopping));
    f.advance(secs(1));
    assert_eq!(task_status(&f, "appService", &task), Some(TaskStatus::Stopped), "SIGKILL at the stop timeout");
    f.advance(secs(60));
    // Answered 5 s after SIGTERM, then failed until unhealthy (20 s later).
    let c = counts(&f, "frontendTargetGroup");
    assert_eq!((c.failed, c.seconds_with_failures), (50.0 * 20.0, 20));

    // An app that exits by itself before the timeout is STOPPED then.
    let config = SimConfig { task_stop_delay: secs(3), stop_timeout: secs(30), ..SimConfig::default() };
    let f = loaded(2, 100.0, config);
    let (task, _) = first_task(&f);
    f.sim.stop_task(&task).unwrap();
    f.advance(secs(3));
    assert_eq!(task_status(&f, "appService", &task), Some(TaskStatus::Stopped));
}

/// Deploy ipService and follow it second by second until it is done:
/// (most live tasks, fewest running tasks).
fn follow_deployment(f: &Fixture) -> (usize, u32) {
    f.sim.deploy(&sid("ipService")).unwrap();
    let (mut most_live, mut fewest_running) = (0, u32::MAX);
    for _ in 0..600 {
        let svc = f.svc("ipService");
        most_live = most_live.max(svc.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running).count());
        fewest_running = fewest_running.min(svc.running_count);
        if !svc.deploying {
            return (most_live, fewest_running);
        }
        f.advance(secs(1));
    }
    panic!("the deployment did not finish");
}

#[test]
fn deployments_stay_within_minimum_healthy_and_maximum_percent() {
    let f = Fixture::new(&ip_app(4), false, SimConfig::default());
    f.sim.set_desired_capacity(&gid(), 2).unwrap();
    f.advance(secs(60));
    assert_eq!(follow_deployment(&f), (8, 4), "ECS's defaults 100 / 200: all four replacements start at once");

    f.sim.set_deployment_configuration(&sid("ipService"), 50, 100).unwrap();
    let old: Vec<String> = f.live_tasks("ipService").into_iter().map(|t| t.arn).collect();
    assert_eq!(follow_deployment(&f), (4, 2), "50 / 100: two stop first, then two start");
    let live: Vec<String> = f.live_tasks("ipService").into_iter().map(|t| t.arn).collect();
    assert_eq!(live.len(), 4);
    assert!(live.iter().all(|arn| !old.contains(arn)));
}

#[test]
fn deployments_do_not_stop_protected_tasks_until_protection_ends() {
    let f = Fixture::new(&ip_app(2), false, SimConfig::default());
    f.sim.set_desired_capacity(&gid(), 2).unwrap();
    f.advance(secs(60));
    let protected = f.live_tasks("ipService")[0].arn.clone();
    f.sim.set_task_protection(&protected, Some(secs(3600))).unwrap();
    f.sim.deploy(&sid("ipService")).unwrap();
    f.advance(secs(120));
    let svc = f.svc("ipService");
    assert!(svc.deploying);
    assert_eq!(task_status(&f, "ipService", &protected), Some(TaskStatus::Running));
    assert_eq!(svc.tasks.iter().filter(|t| t.is_serving()).count(), 3, "two new tasks and the protected old one");

    f.sim.set_task_protection(&protected, None).unwrap();
    assert_eq!(task_status(&f, "ipService", &protected), Some(TaskStatus::Stopping));
    f.advance(secs(10));
    assert!(!f.svc("ipService").deploying);
}

#[test]
fn a_draining_container_instance_gets_no_tasks_and_its_tasks_are_replaced_elsewhere() {
    let f = Fixture::new(&ip_app(2), false, SimConfig::default());
    let first = f.sim.group(&gid()).unwrap().instances[0].id.clone();
    f.sim.set_desired_capacity(&gid(), 2).unwrap();
    f.advance(secs(60));

    f.sim.drain_container_instance(&first).unwrap();
    let svc = f.svc("ipService");
    let on = |t: &crate::observed::ObservedTask| t.instance_id.as_deref() == Some(first.as_str());
    let live = |svc: &ObservedService| svc.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running).count();
    assert_eq!(live(&svc), 4, "replacements start first (maximumPercent 200)");
    assert!(svc.tasks.iter().filter(|t| t.last_status == TaskStatus::Pending).all(|t| !on(t)));
    // Replacements run at 15 s and count as healthy 40 s later.
    f.advance(secs(54));
    let svc = f.svc("ipService");
    assert_eq!((live(&svc), svc.running_count), (4, 4), "the drained tasks serve until replaced");
    f.advance(secs(1));
    let svc = f.svc("ipService");
    assert_eq!(live(&svc), 2);
    assert!(svc.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running).all(|t| !on(t)));

    f.sim.set_desired_count(&sid("ipService"), 4).unwrap();
    let placed_there = f.svc("ipService").tasks.iter().filter(|t| on(t)).count();
    assert_eq!(placed_there, 2, "nothing new on a draining instance, only the two replaced tasks");
    assert!(f.sim.drain_container_instance("i-nope").is_err());
}

#[test]
fn ecs_load_balancer_integration_deregisters_waits_the_drain_then_sends_sigterm() {
    // A delay of 5 s: the drain still lasts the propagation lag (60 s), and
    // ECS waits for it.
    let config = SimConfig { deregistration_delay: secs(5), ..SimConfig::default() };
    let f = Fixture::new(&app(2), false, config);
    let frontend = f.sim.target_group_arn(&tg("frontendTargetGroup")).unwrap();
    f.sim.set_service_load_balancers(&sid("appService"), vec![frontend.clone()]).unwrap();
    f.sim.set_traffic_target_groups(&sid("appService"), vec![frontend]).unwrap();
    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(60));

    // ECS registers a task once it runs.
    f.sim.set_desired_count(&sid("appService"), 3).unwrap();
    let new = f.live_tasks("appService").into_iter().find(|t| t.last_status == TaskStatus::Pending).unwrap();
    let target = Target { id: new.instance_id.clone().unwrap(), port: 80 };
    assert_eq!(f.health_after(secs(14), "frontendTargetGroup", &target), None, "not registered while PENDING");
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), Some(TargetHealth::Initial));
    f.advance(secs(20));
    f.sim.set_load(&sid("appService"), 90.0).unwrap();

    // On a stop: deregistered at once, running through the drain, then SIGTERM.
    f.sim.set_desired_count(&sid("appService"), 2).unwrap();
    let stopping = f.svc("appService").tasks.into_iter().find(|t| t.desired_status == TaskStatus::Stopped).unwrap();
    let target = Target { id: stopping.instance_id.clone().unwrap(), port: 80 };
    assert_eq!(stopping.last_status, TaskStatus::Deactivating);
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Draining));
    f.advance(secs(59));
    assert_eq!(task_status(&f, "appService", &stopping.arn), Some(TaskStatus::Deactivating));
    f.advance(secs(1));
    assert_eq!(task_status(&f, "appService", &stopping.arn), Some(TaskStatus::Stopping));
    f.advance(secs(10));
    assert_eq!(task_status(&f, "appService", &stopping.arn), Some(TaskStatus::Stopped));
    f.advance(secs(60));
    let c = counts(&f, "frontendTargetGroup");
    assert_eq!((c.served, c.failed), (90.0 * 130.0, 0.0), "the NLB's lag ends before SIGTERM: nothing fails");
}
