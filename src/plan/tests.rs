//! Table-driven and property tests of the planner.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use proptest::prelude::*;

use super::gate::Safety;
use super::*;
use crate::desired::*;
use crate::observed::*;

const REGION: &str = "us-east-2";
const FRONT_ARN: &str = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/frontendTargetGroup/abc";

fn t0() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn service_id() -> ServiceId {
    ServiceId { region: REGION.into(), cluster: "appCluster".into(), service: "appService".into() }
}

fn tg_id() -> TargetGroupId {
    TargetGroupId { region: REGION.into(), target_group: TargetGroupRef::Name("frontendTargetGroup".into()) }
}

fn service(tasks: TaskCount) -> Service {
    Service {
        name: "app".into(),
        origin: Origin { file: PathBuf::from("app.yaml"), line: 1 },
        id: service_id(),
        suspend: false,
        tasks,
        target_groups: vec![TargetGroupBinding {
            target_group: tg_id(),
            container_name: "appContainer".into(),
            container_port: 80,
            target_type: TargetType::Instance,
            ownership: Ownership::Shared,
            min_healthy: None,
            propagation_lag: crate::desired::DEFAULT_PROPAGATION_LAG,
        }],
        scaling: None,
        budget: ServiceBudget::default(),
        take_over: ServiceTakeOver::default(),
    }
}

fn task(n: u32, status: TaskStatus) -> ObservedTask {
    ObservedTask {
        arn: format!("arn:aws:ecs:us-east-2:123456789012:task/appCluster/t{n}"),
        last_status: status,
        desired_status: if status == TaskStatus::Stopped { TaskStatus::Stopped } else { TaskStatus::Running },
        instance_id: Some(format!("i-{n}")),
        private_ip: None,
        bindings: vec![PortBinding { container_name: "appContainer".into(), container_port: 80, host_port: 80 }],
        started_at: Some(t0()),
        protected_until: None,
        started_by: None,
    }
}

fn target(n: u32, health: TargetHealth) -> ObservedTarget {
    ObservedTarget { target: Target { id: format!("i-{n}"), port: 80 }, health }
}

/// The one-task world of `desired` plus target `i-9`, which no task of
/// the service accounts for.
fn with_foreign_target(desired: &DesiredState, health: TargetHealth) -> Observed {
    let mut o = world(desired, 1);
    tg_mut(&mut o).targets.push(target(9, health));
    o
}

/// A world with `count` running tasks, each registered and healthy.
fn world(desired: &DesiredState, count: u32) -> Observed {
    let mut o = Observed::default();
    o.services.insert(
        service_id(),
        Ok(ObservedService {
            arn: "arn:aws:ecs:us-east-2:123456789012:service/appCluster/appService".into(),
            status: crate::observed::ServiceStatus::Active,
            desired_count: count,
            running_count: count,
            pending_count: 0,
            deploying: false,
            task_definition: "appTaskDefinition:1".into(),
            task_size: None,
            load_balancer_target_groups: vec![],
            scalable_target: false,
            tasks: (1..=count).map(|n| task(n, TaskStatus::Running)).collect(),
            scaling_marks: Default::default(),
            protection: ProtectionRead::NotAsked,
            primary_deployment: None,
            maximum_percent: None,
            surge_mark: None,
        }),
    );
    o.target_groups.insert(
        tg_id(),
        Ok(ObservedTargetGroup {
            arn: FRONT_ARN.into(),
            name: "frontendTargetGroup".into(),
            target_type: crate::observed::TargetGroupType::Instance,
            port: Some(80),
            targets: (1..=count).map(|n| target(n, TargetHealth::Healthy)).collect(),
        }),
    );
    for svc in &desired.services {
        if let Some(defs) = alarms::desired_alarms(svc) {
            for d in defs {
                o.alarms.insert((REGION.into(), d.name.clone()), Ok(observed_alarm(d)));
            }
        }
    }
    o
}

fn svc_mut(o: &mut Observed) -> &mut ObservedService {
    o.services.get_mut(&service_id()).unwrap().as_mut().unwrap()
}

fn tg_mut(o: &mut Observed) -> &mut ObservedTargetGroup {
    o.target_groups.get_mut(&tg_id()).unwrap().as_mut().unwrap()
}

fn backend_tg_id() -> TargetGroupId {
    TargetGroupId { region: REGION.into(), target_group: TargetGroupRef::Name("backendTargetGroup".into()) }
}

/// `s` bound to the backend target group too, as to its first one, with
/// a budget of one deregistration per pass for both.
fn two_groups_one_deregistration_per_pass(mut s: Service) -> DesiredState {
    let mut backend = s.target_groups[0].clone();
    backend.target_group = backend_tg_id();
    s.target_groups.push(backend);
    s.budget.max_deregistrations_per_pass = 1;
    desired_with(s)
}

/// Observes the backend target group in `o`, with the front one's targets.
fn observe_backend(o: &mut Observed) {
    let mut back = tg_mut(o).clone();
    back.arn = "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/backendTargetGroup/def".into();
    back.name = "backendTargetGroup".into();
    o.target_groups.insert(backend_tg_id(), Ok(back));
}

/// The service scaled to 0: every task stopped.
fn scaled_to_zero(o: &mut Observed) {
    svc_mut(o).desired_count = 0;
    for t in &mut svc_mut(o).tasks {
        t.last_status = TaskStatus::Stopped;
        t.desired_status = TaskStatus::Stopped;
    }
}

/// The service scaled to 0 with no task left, while its target group
/// still holds `count` unhealthy targets: targets of no task of the
/// service.
fn only_targets_of_no_task(desired: &DesiredState, count: u32) -> Observed {
    let mut o = world(desired, count);
    scaled_to_zero(&mut o);
    svc_mut(&mut o).tasks.clear();
    for t in &mut tg_mut(&mut o).targets {
        t.health = TargetHealth::Unhealthy;
    }
    o
}

fn desired_with(s: Service) -> DesiredState {
    DesiredState { services: vec![s], capacities: vec![] }
}

/// One service of `count` tasks whose target group's propagation lag is
/// `lag_secs`.
fn with_lag(count: u32, lag_secs: u64) -> DesiredState {
    let mut s = service(TaskCount::Fixed(count));
    s.target_groups[0].propagation_lag = Duration::from_secs(lag_secs);
    desired_with(s)
}

/// An alarm as read, OK, tagged as ballast's.
fn observed_alarm(definition: AlarmDefinition) -> ObservedAlarm {
    let arn = format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:{}", definition.name);
    ObservedAlarm { definition, state: AlarmState::Ok, state_updated: t0(), arn, managed_by_ballast: Some(true) }
}

fn kinds(p: &Plan) -> Vec<ChangeKind> {
    p.changes.iter().map(|c| c.change.kind()).collect()
}

/// The instances the plan terminates.
fn terminated(p: &Plan) -> Vec<&str> {
    p.changes
        .iter()
        .filter_map(|c| match &c.change {
            Change::TerminateInstance { instance_id, .. } => Some(instance_id.as_str()),
            _ => None,
        })
        .collect()
}

/// The plan makes one change: the desired count `from` -> `to`.
#[track_caller]
fn assert_only_count_change(p: &Plan, from: u32, to: u32) {
    assert!(
        matches!(p.changes[..], [PlannedChange { change: Change::SetDesiredCount { from: f, to: t, .. }, .. }]
            if (f, t) == (from, to)),
        "expected only desired count {from} -> {to}: {:#?}",
        p.changes
    );
}

/// One of the plan's holds says what `want` accepts.
#[track_caller]
fn assert_held(p: &Plan, want: impl Fn(&str) -> bool) {
    let held: Vec<String> = p.holds.iter().map(Hold::message).collect();
    assert!(held.iter().any(|m| want(m)), "no such hold in {held:?}");
}

#[test]
fn converged_state_plans_nothing() {
    let d = desired_with(service(TaskCount::Fixed(2)));
    let p = plan(&d, &world(&d, 2), Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert!(p.holds.is_empty(), "{:?}", p.holds);
}

#[test]
fn desired_count_cases() {
    // (declared, observed desired count, expected change to, expected hold kind)
    let cases: &[(TaskCount, u32, Option<u32>, Option<HoldKind>)] = &[
        (TaskCount::Fixed(3), 2, Some(3), None),
        (TaskCount::Fixed(1), 2, Some(1), None),
        (TaskCount::Fixed(10), 1, Some(5), Some(HoldKind::Budget)),
        (TaskCount::Range { min: 2, max: 4 }, 1, Some(2), None),
        (TaskCount::Range { min: 2, max: 4 }, 6, Some(4), None),
        (TaskCount::Range { min: 2, max: 4 }, 3, None, None),
        (TaskCount::Fixed(0), 2, Some(0), None),
    ];
    for (tasks, observed, want, hold) in cases {
        let d = desired_with(service(*tasks));
        let mut o = world(&d, *observed);
        svc_mut(&mut o).desired_count = *observed;
        let p = plan(&d, &o, Memory::default(), t0());
        let got = p.changes.iter().find_map(|c| match c.change {
            Change::SetDesiredCount { from, to, .. } => {
                assert_eq!(from, *observed);
                Some(to)
            }
            _ => None,
        });
        assert_eq!(got, *want, "{tasks:?} observed {observed}");
        assert_eq!(p.holds.iter().find(|h| h.kind() == HoldKind::Budget).map(|h| h.kind()), *hold, "{tasks:?}");
    }
}

#[test]
fn missing_target_is_registered_before_stale_ones_are_deregistered() {
    let d = desired_with(service(TaskCount::Fixed(2)));
    let mut o = world(&d, 2);
    // Task 2 was replaced by task 3: task 2 stopped, its target unhealthy; 3 not registered.
    let s = svc_mut(&mut o);
    s.tasks[1] = task(2, TaskStatus::Stopped);
    s.tasks.push(task(3, TaskStatus::Running));
    tg_mut(&mut o).targets[1].health = TargetHealth::Unhealthy;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::RegisterTargets, ChangeKind::DeregisterTargets]);
    match (&p.changes[0].change, &p.changes[1].change) {
        (Change::RegisterTargets { targets: r, .. }, Change::DeregisterTargets { targets: d, .. }) => {
            assert_eq!(r, &vec![Target { id: "i-3".into(), port: 80 }]);
            assert_eq!(d, &vec![Target { id: "i-2".into(), port: 80 }], "deregistration names the port");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn healthy_stale_target_waits_until_its_replacement_is_healthy() {
    let d = desired_with(service(TaskCount::Fixed(1)));
    let mut o = world(&d, 1);
    // Task 1 is going away (desired STOPPED) but its target is still healthy;
    // task 2 replaces it and its target is still initial.
    svc_mut(&mut o).tasks[0].desired_status = TaskStatus::Stopped;
    svc_mut(&mut o).tasks.push(task(2, TaskStatus::Running));
    tg_mut(&mut o).targets.push(target(2, TargetHealth::Initial));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "nothing to do until the new target is healthy: {:?}", p.changes);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Safety && h.message().contains("i-1:80")), "{:?}", p.holds);

    tg_mut(&mut o).targets[1].health = TargetHealth::Healthy;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets]);
}

#[test]
fn never_deregisters_the_last_healthy_target_nor_below_min_healthy() {
    let mut s = service(TaskCount::Fixed(0));
    s.target_groups[0].min_healthy = Some(2);
    let d = desired_with(s);
    let mut o = world(&d, 3);
    svc_mut(&mut o).desired_count = 0;
    for t in &mut svc_mut(&mut o).tasks {
        t.desired_status = TaskStatus::Stopped;
    }
    let mut m = Memory::default();
    let mut healthy = 3;
    for _ in 0..5 {
        let p = plan(&d, &o, m.clone(), t0());
        m = p.memory.clone();
        for c in &p.changes {
            if let Change::DeregisterTargets { targets, .. } = &c.change {
                tg_mut(&mut o).targets.retain(|t| !targets.contains(&t.target));
                healthy -= targets.len();
            }
        }
    }
    assert_eq!(healthy, 2, "declared minHealthy of 2 is kept");
}

#[test]
fn foreign_targets_are_left_alone_unless_the_group_is_exclusive() {
    let d = desired_with(service(TaskCount::Fixed(2)));
    let mut o = world(&d, 2);
    tg_mut(&mut o)
        .targets
        .push(ObservedTarget { target: Target { id: "i-foreign".into(), port: 80 }, health: TargetHealth::Unhealthy });
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:?}", p.changes);

    let mut s = service(TaskCount::Fixed(2));
    s.target_groups[0].ownership = Ownership::Exclusive;
    let d = desired_with(s);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets]);
}

#[test]
fn a_target_ballast_registered_is_attributable_after_its_task_is_gone() {
    let d = desired_with(service(TaskCount::Fixed(1)));
    let o = with_foreign_target(&d, TargetHealth::Unhealthy);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "unknown target left alone");
    let mut m = Memory::default();
    m.record_applied(
        &Change::RegisterTargets {
            region: REGION.into(),
            target_group_arn: FRONT_ARN.into(),
            targets: vec![Target { id: "i-9".into(), port: 80 }],
        },
        t0(),
    );
    let p = plan(&d, &o, m.clone(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets]);
}

#[test]
fn draining_targets_are_left_alone_and_budgets_limit_deregistrations() {
    // The budget limits what may still carry someone's traffic: here
    // targets of no task of the service, claimed by an exclusive binding.
    // (Targets of tasks that are gone are not budgeted: issue 15.)
    let mut s = service(TaskCount::Fixed(0));
    s.budget.max_deregistrations_per_pass = 2;
    s.target_groups[0].ownership = Ownership::Exclusive;
    let d = desired_with(s);
    let mut o = only_targets_of_no_task(&d, 5);
    tg_mut(&mut o).targets[0].health = TargetHealth::Draining;
    let p = plan(&d, &o, Memory::default(), t0());
    let deregistered: Vec<&Target> = p
        .changes
        .iter()
        .flat_map(|c| match &c.change {
            Change::DeregisterTargets { targets, .. } => targets.iter().collect(),
            _ => vec![],
        })
        .collect();
    assert_eq!(deregistered.len(), 2);
    assert!(!deregistered.iter().any(|t| t.id == "i-1"), "draining target untouched");
    assert_eq!(p.holds.iter().filter(|h| h.kind() == HoldKind::Budget).count(), 2);
}

#[test]
fn other_actors_are_reported_not_fought() {
    // The ECS service registers targets in this group itself.
    let d = desired_with(service(TaskCount::Fixed(2)));
    let mut o = world(&d, 2);
    tg_mut(&mut o).targets.pop();
    svc_mut(&mut o).load_balancer_target_groups = vec![FRONT_ARN.into()];
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty());
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Conflict));
    let mut s = service(TaskCount::Fixed(2));
    s.take_over.load_balancers = true;
    let p = plan(&desired_with(s), &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::RegisterTargets]);

    // Application Auto Scaling owns the desired count.
    let d = desired_with(service(TaskCount::Fixed(3)));
    let mut o = world(&d, 2);
    svc_mut(&mut o).scalable_target = true;
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty());
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Conflict && h.message().contains("takeOver.desiredCount")));
}

#[test]
fn suspended_documents_are_observed_but_not_changed() {
    let mut s = service(TaskCount::Fixed(3));
    s.suspend = true;
    let d = desired_with(s);
    let mut o = world(&d, 2);
    tg_mut(&mut o).targets.pop();
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty());
    assert!(p.holds.iter().filter(|h| h.kind() == HoldKind::Suspended).count() >= 2);
    assert!(!reports(&d, &o, &p, &p.memory).is_empty(), "still reported");
}

#[test]
fn a_field_reverted_again_and_again_becomes_contested_then_resumes() {
    let d = desired_with(service(TaskCount::Fixed(3)));
    let mut o = world(&d, 2);
    let mut m = Memory::default();
    let mut writes = 0;
    let mut now = t0();
    for _ in 0..10 {
        let p = plan(&d, &o, m.clone(), now);
        m = p.memory.clone();
        for c in &p.changes {
            if matches!(c.change, Change::SetDesiredCount { .. }) {
                writes += 1;
                m.record_applied(&c.change, now);
                // …and another actor sets it back to 2 before the next pass.
            }
        }
        svc_mut(&mut o).desired_count = 2;
        now += Duration::from_secs(15);
    }
    assert_eq!(writes, FightPolicy::default().max_reverts, "stops after N reverts");
    let p = plan(&d, &o, m.clone(), now);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Contested));
    // Once the reverts are older than the window, ballast tries again.
    let later = now + FightPolicy::default().window + Duration::from_secs(1);
    let p = plan(&d, &o, p.memory.clone(), later);
    assert_eq!(kinds(&p), vec![ChangeKind::DesiredCount]);
}

fn scaling_policy() -> CpuScaling {
    let rule = |threshold, cooldown| AlarmRule {
        threshold,
        period: Duration::from_secs(60),
        evaluation_periods: 1,
        datapoints_to_alarm: 1,
        step: Step::Tasks(1),
        cooldown: Duration::from_secs(cooldown),
    };
    CpuScaling {
        scale_out: rule(70.0, 60),
        scale_in: rule(30.0, 300),
        missing_data: MissingData::Missing,
        target_cpu: None,
        stabilization_window: Duration::from_secs(300),
        tolerance: 0.1,
        max_data_age: Duration::from_secs(180),
    }
}

/// The stabilisation window is counted in the data's time: a scale-in
/// waits for `stabilizationWindow` of CPU datapoints that all ask for no
/// more, not for that long after the first of them was read, which would
/// add the metric's delay (a period and the wait for the next pass).
#[test]
fn the_scale_in_window_counts_the_time_of_the_data_not_of_the_passes() {
    let mut policy = scaling_policy();
    policy.target_cpu = Some(60.0);
    policy.scale_in = AlarmRule { step: Step::Percent(100), cooldown: Duration::from_secs(60), ..policy.scale_in };
    let minute = Duration::from_secs(60);
    // The load fell at `fall`: the datapoint of the minute before it is the
    // last at 60 %; every one after is at 20 %. Passes run 40 s after each
    // datapoint's period ended (CloudWatch's delay and the pass interval),
    // every 15 s.
    let fall = t0();
    let lag = Duration::from_secs(40);
    let mut mem = memory::ScalingMemory::default();
    let view = |now: SystemTime| {
        let newest_end = fall + minute * ((now - lag).duration_since(fall).map_or(0, |d| d.as_secs() / 60) as u32);
        let at = newest_end.checked_sub(minute).unwrap();
        let low = at >= fall;
        scaling::ScalingView {
            current: 10,
            running: 10,
            min: 2,
            max: 20,
            deploying: false,
            high_alarm: Some(AlarmState::Ok),
            low_alarm: Some(if low { AlarmState::Alarm } else { AlarmState::Ok }),
            cpu: Some(MetricSample { value: if low { 20.0 } else { 60.0 }, at }),
        }
    };
    let mut now = fall + lag - Duration::from_secs(30);
    let scaled_in = loop {
        let d = scaling::decide(&policy, view(now), &mut mem, now);
        if d.desired < 10 {
            assert_eq!(d.desired, 4, "straight to the proportional count: {d:?}");
            break now;
        }
        assert!(now < fall + 10 * minute, "never scaled in");
        now += Duration::from_secs(15);
    };
    // The scale-in comes with the fifth low datapoint: five minutes of CPU
    // data after the fall, read at `fall + 5m + lag`. Counted from when the
    // first low datapoint was read (`fall + 1m + lag`), it would come a
    // minute later, with six.
    let fifth_read = fall + 5 * minute + lag;
    assert!(scaled_in >= fifth_read, "before the fifth low datapoint: {:?}", scaled_in.duration_since(fall));
    assert!(scaled_in < fifth_read + Duration::from_secs(15), "{:?}", scaled_in.duration_since(fall));
}

#[test]
fn alarms_are_created_corrected_and_never_rewritten_when_equal() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 2, max: 10 }, None, 2);
    assert!(plan(&d, &o, Memory::default(), t0()).changes.is_empty(), "equal alarms are not re-put");

    let high = alarms::alarm_names(&service_id())[0].clone();
    o.alarms.remove(&(REGION.to_string(), high.clone()));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(matches!(&p.changes[..], [PlannedChange { change: Change::PutAlarm { create: true, .. }, .. }]));

    let mut o = world(&d, 2);
    if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), high)) {
        a.definition.threshold = 95.0;
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(p.changes.len(), 1);
    assert!(p.changes[0].reason.contains("threshold 95 -> 70"), "{}", p.changes[0].reason);
}

/// PutMetricAlarm ignores tags when it updates an alarm: an existing alarm
/// without ballast's tag is tagged by its own change, once.
#[test]
fn an_existing_alarm_without_ballasts_tag_is_tagged() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 2, max: 10 }, None, 2);
    let high = alarms::alarm_names(&service_id())[0].clone();
    let key = (REGION.to_string(), high.clone());
    if let Some(Ok(a)) = o.alarms.get_mut(&key) {
        a.managed_by_ballast = Some(false);
    }
    let p = plan(&d, &o, Memory::default(), t0());
    let arn = format!("arn:aws:cloudwatch:{REGION}:123456789012:alarm:{high}");
    assert_eq!(
        p.changes.iter().map(|c| &c.change).collect::<Vec<_>>(),
        vec![&Change::TagAlarm { region: REGION.into(), name: high.clone(), arn }],
        "only the tag: the definition is equal"
    );
    assert_eq!(p.changes[0].change.to_string(), format!("alarm {high}: tag managed-by=ballast"));
    // Tags not read (None) or present: nothing.
    for tagged in [None, Some(true)] {
        if let Some(Ok(a)) = o.alarms.get_mut(&key) {
            a.managed_by_ballast = tagged;
        }
        assert!(plan(&d, &o, Memory::default(), t0()).changes.is_empty(), "{tagged:?}");
    }
}

/// A Capacity document for the test cluster's group, one task per instance.
fn capacity(group: &str, zones: Vec<Zone>, max_change_per_pass: u32) -> Capacity {
    Capacity {
        name: "cap".into(),
        origin: Origin { file: PathBuf::from("c.yaml"), line: 1 },
        group: GroupId { region: REGION.into(), name: group.into() },
        cluster: "appCluster".into(),
        suspend: false,
        min_instances: 1,
        max_instances: 10,
        tasks_per_instance: TasksPerInstance::Fixed(1),
        headroom: 0,
        scale_in_cooldown: Duration::from_secs(300),
        zones,
        max_change_per_pass,
        take_over_managed_scaling: false,
        suspend_az_rebalance: true,
        termination_hook: None,
    }
}

/// Group `asg` with two always-on zones (subnet-a, subnet-b) and subnet-c
/// on demand above `above` instances.
pub(in crate::plan) fn three_zones(above: u32, max_change_per_pass: u32) -> Capacity {
    let zones = vec![
        Zone::always_on("subnet-a", "us-east-2a"),
        Zone::always_on("subnet-b", "us-east-2b"),
        Zone::on_demand("subnet-c", "us-east-2c", above),
    ];
    capacity("asg", zones, max_change_per_pass)
}

/// Two tasks on two instances in one zone, the high alarm firing, and an
/// on-demand second zone for more than two instances: the next pass adds
/// the zone, an instance and a task. `suspended`: the group's suspended
/// processes.
fn scale_out_into_a_second_zone(suspended: &[&str], suspend_az_rebalance: bool) -> (DesiredState, Observed) {
    let mut s = service(TaskCount::Range { min: 2, max: 10 });
    s.scaling = Some(scaling_policy());
    let cap = Capacity {
        suspend_az_rebalance,
        ..capacity(
            "ecsAutoScalingGroup",
            vec![Zone::always_on("subnet-a", "us-east-2a"), Zone::on_demand("subnet-b", "us-east-2b", 2)],
            2,
        )
    };
    let d = DesiredState { services: vec![s], capacities: vec![cap.clone()] };
    let mut o = world(&d, 2);
    o.groups.insert(
        cap.group.clone(),
        Ok(ObservedGroup {
            subnets: vec!["subnet-a".into()],
            suspended_processes: suspended.iter().map(|p| p.to_string()).collect(),
            ..capacity_group(2)
        }),
    );
    if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), alarms::alarm_names(&service_id())[0].clone())) {
        a.state = AlarmState::Alarm;
    }
    (d, o)
}

/// Issue 15 item 3: a declared termination hook is created on the group,
/// put back when it differs, and left alone when it is as declared.
#[test]
fn termination_hook_is_created_and_kept() {
    let declared = TerminationHook { heartbeat_timeout: Duration::from_secs(600), default_result: "CONTINUE".into() };
    let hook_changes = |observed: Option<TerminationHook>| {
        let (mut d, mut o) = scale_out_into_a_second_zone(&[AZ_REBALANCE], true);
        d.capacities[0].termination_hook = Some(declared.clone());
        let group = d.capacities[0].group.clone();
        if let Some(Ok(g)) = o.groups.get_mut(&group) {
            g.termination_hook = observed;
        }
        let p = plan(&d, &o, Memory::default(), t0());
        p.changes
            .iter()
            .filter_map(|c| match &c.change {
                Change::PutLifecycleHook { hook, create, .. } => Some((hook.clone(), *create)),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(hook_changes(None), vec![(declared.clone(), true)], "created");
    let changed = TerminationHook { heartbeat_timeout: Duration::from_secs(60), ..declared.clone() };
    assert_eq!(hook_changes(Some(changed)), vec![(declared.clone(), false)], "put back");
    assert_eq!(hook_changes(Some(declared.clone())), vec![], "as declared: left alone");
}

#[test]
fn high_alarm_scales_out_and_capacity_comes_first() {
    let (d, o) = scale_out_into_a_second_zone(&[AZ_REBALANCE], true);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(
        kinds(&p),
        vec![ChangeKind::Subnets, ChangeKind::Capacity, ChangeKind::DesiredCount],
        "{:#?}",
        p.changes
    );
    assert!(matches!(p.changes[1].change, Change::SetDesiredCapacity { from: 2, to: 3, .. }));
    assert!(matches!(p.changes[2].change, Change::SetDesiredCount { from: 2, to: 3, .. }));
    assert_eq!(p.decisions[&service_id()].reason, scaling::DecisionReason::ScaleOut);
}

/// Issue 15: Auto Scaling's AZRebalance would launch and terminate
/// instances by itself after a zone change. ballast suspends it on a group
/// it sizes and changes zones only once the suspension reads back; a
/// document that keeps it gets a conflict and no zone change.
#[test]
fn zones_change_only_with_az_rebalance_suspended() {
    let zone_hold = |p: &Plan| p.holds.iter().find(|h| h.message().contains("AZRebalance")).map(|h| h.kind());

    // Active: suspended first, the zone change waits; the rest goes on.
    let (d, o) = scale_out_into_a_second_zone(&[], true);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::Processes, ChangeKind::Capacity, ChangeKind::DesiredCount]);
    assert!(matches!(&p.changes[0].change, Change::SuspendProcesses { processes, .. } if processes == &[AZ_REBALANCE]));
    assert_eq!(zone_hold(&p), Some(HoldKind::Safety), "{:#?}", p.holds);

    // Suspended (or Launch, which stops it too): no suspension, the zones change.
    for suspended in [AZ_REBALANCE, "Launch"] {
        let (d, o) = scale_out_into_a_second_zone(&[suspended], true);
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(kinds(&p), vec![ChangeKind::Subnets, ChangeKind::Capacity, ChangeKind::DesiredCount], "{suspended}");
        assert_eq!(zone_hold(&p), None);
    }

    // `suspendAzRebalance: false` with AZRebalance active: a conflict on
    // the zone change, nothing suspended.
    let (d, o) = scale_out_into_a_second_zone(&[], false);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::Capacity, ChangeKind::DesiredCount]);
    assert_eq!(zone_hold(&p), Some(HoldKind::Conflict), "{:#?}", p.holds);

    // A suspended document suspends nothing either.
    let (mut d, o) = scale_out_into_a_second_zone(&[], true);
    d.capacities[0].suspend = true;
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!kinds(&p).contains(&ChangeKind::Processes), "{:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Suspended && h.message().contains("suspend AZRebalance")));
}

#[test]
fn capacity_scale_in_terminates_only_empty_instances_after_cooldown() {
    let cap = capacity("asg", vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }], 5);
    // Instances 1 to 4 with 1, 0, 1 and 0 tasks.
    let mut group = ObservedGroup { subnets: vec!["subnet-a".into()], ..capacity_group(4) };
    for (instance, tasks) in group.instances.iter_mut().zip([1, 0, 1, 0]) {
        instance.tasks = Some(tasks);
    }
    let mut mem = memory::CapacityMemory { last_change: Some(t0()), ..Default::default() };
    let d = capacity::decide(&cap, &group, 1, 1, &mut mem, t0() + Duration::from_secs(60));
    assert!(d.terminate.is_empty(), "cooldown holds scale-in");
    let d = capacity::decide(&cap, &group, 1, 1, &mut mem, t0() + Duration::from_secs(301));
    assert_eq!(d.terminate, vec!["i-2".to_string(), "i-4".to_string()], "only the empty instances go");
    assert!(d.held.iter().any(|h| h.to_string().contains("wait for their tasks")));
}

/// AWS rejects a capacity outside the group's own MinSize/MaxSize with
/// ValidationError: the plan stops at them with a typed hold instead.
#[test]
fn capacity_stops_at_the_groups_own_max_size_and_holds_the_scale_out_with_it() {
    let cap = capacity("asg", vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }], 5);
    // 5 tasks wanted, 3 running on a group of 3 whose MaxSize is 3.
    let (d, mut o) = with_group(service(TaskCount::Fixed(5)), &cap, 3, 3, &["subnet-a"]);
    if let Some(Ok(g)) = o.groups.get_mut(&cap.group) {
        g.max_size = 3;
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(
        !p.changes.iter().any(|c| matches!(c.change.kind(), ChangeKind::Capacity | ChangeKind::DesiredCount)),
        "no capacity above MaxSize, no tasks without instances: {:#?}",
        p.changes
    );
    let group_holds: Vec<&Hold> = p.holds.iter().filter(|h| h.resource == ResourceKey::group(&cap.group)).collect();
    assert!(
        group_holds
            .iter()
            .any(|h| h.reason == HoldReason::GroupSize(gate::GroupSize::AboveMaxSize { needed: 5, max_size: 3 })
                && h.kind() == HoldKind::Scaling),
        "{:?}",
        p.holds
    );
    let svc_hold = p.holds.iter().find(|h| h.resource == ResourceKey::service(&service_id())).expect("held");
    assert_eq!(
        svc_hold.message(),
        "3 instance(s) hold 3 task(s) of appCluster/appService; the Auto Scaling group's MaxSize is 3, \
         so the scale-out to 5 waits until MaxSize is raised"
    );

    // minInstances above the group's MaxSize: capacity goes to MaxSize, never past it.
    let mut cap = cap;
    cap.min_instances = 6;
    let (d, mut o) = with_group(service(TaskCount::Fixed(2)), &cap, 2, 2, &["subnet-a"]);
    if let Some(Ok(g)) = o.groups.get_mut(&cap.group) {
        g.max_size = 4;
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(
        p.changes.iter().any(|c| matches!(c.change, Change::SetDesiredCapacity { from: 2, to: 4, .. })),
        "{:#?}",
        p.changes
    );
    assert!(p.holds.iter().any(|h| h.message().contains("above the Auto Scaling group's MaxSize of 4")));
}

#[test]
fn capacity_scale_in_stops_at_the_groups_own_min_size() {
    let cap = capacity("asg", vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }], 5);
    let mut group = capacity_group(4);
    for i in &mut group.instances[1..] {
        i.tasks = Some(0);
    }
    group.min_size = 3;
    let mut mem = memory::CapacityMemory::default();
    let d = capacity::decide(&cap, &group, 1, 1, &mut mem, t0());
    assert_eq!(d.terminate, vec!["i-2".to_string()], "one goes: 4 -> 3, the MinSize");
    assert!(d.held.contains(&HoldReason::GroupSize(gate::GroupSize::BelowMinSize { needed: 1, min_size: 3 })));
    // At MinSize nothing is terminated: AWS would reject it.
    group.desired_capacity = 3;
    group.instances.remove(1);
    let d = capacity::decide(&cap, &group, 1, 1, &mut mem, t0());
    assert!(d.terminate.is_empty() && d.set_capacity.is_none(), "{d:?}");
    assert_eq!(
        d.held.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![
            "the tasks need 1 instance(s), below the Auto Scaling group's MinSize of 3; capacity stays at 3 \
             (AWS rejects less) until MinSize is lowered"
                .to_string()
        ]
    );
}

#[test]
fn scaling_decisions_respect_bounds_cooldowns_window_and_data() {
    let p = scaling_policy();
    let view = |current, high, low| scaling::ScalingView {
        current,
        running: current,
        min: 2,
        max: 5,
        deploying: false,
        high_alarm: Some(high),
        low_alarm: Some(low),
        cpu: None,
    };
    let mut m = memory::ScalingMemory::default();
    // Out: one step, capped at max.
    assert_eq!(scaling::decide(&p, view(3, AlarmState::Alarm, AlarmState::Ok), &mut m, t0()).desired, 4);
    let d = scaling::decide(&p, view(5, AlarmState::Alarm, AlarmState::Ok), &mut m, t0());
    assert_eq!((d.desired, d.reason), (5, scaling::DecisionReason::AtMax));
    // No data: hold.
    let mut m = memory::ScalingMemory::default();
    let d = scaling::decide(&p, view(3, AlarmState::InsufficientData, AlarmState::InsufficientData), &mut m, t0());
    assert_eq!((d.desired, d.reason), (3, scaling::DecisionReason::NoData));
    // In: waits for the stabilisation window after a higher recommendation.
    let mut m = memory::ScalingMemory::default();
    scaling::decide(&p, view(4, AlarmState::Ok, AlarmState::Ok), &mut m, t0());
    let d = scaling::decide(&p, view(4, AlarmState::Ok, AlarmState::Alarm), &mut m, t0() + Duration::from_secs(60));
    assert_eq!((d.desired, d.reason), (4, scaling::DecisionReason::Stabilizing));
    let d = scaling::decide(&p, view(4, AlarmState::Ok, AlarmState::Alarm), &mut m, t0() + Duration::from_secs(400));
    assert_eq!((d.desired, d.reason), (3, scaling::DecisionReason::ScaleIn));
    // In: never while deploying, never inside the cooldown, never below min.
    let mut m = memory::ScalingMemory::default();
    let mut v = view(4, AlarmState::Ok, AlarmState::Alarm);
    v.deploying = true;
    assert_eq!(scaling::decide(&p, v, &mut m, t0()).reason, scaling::DecisionReason::Deploying);
    let mut m = memory::ScalingMemory { last_scale_out: Some(t0()), ..Default::default() };
    assert_eq!(
        scaling::decide(&p, view(4, AlarmState::Ok, AlarmState::Alarm), &mut m, t0() + Duration::from_secs(100)).reason,
        scaling::DecisionReason::InCooldown
    );
    let mut m = memory::ScalingMemory::default();
    let d = scaling::decide(&p, view(2, AlarmState::Ok, AlarmState::Alarm), &mut m, t0());
    assert_eq!((d.desired, d.reason), (2, scaling::DecisionReason::AtMin), "{}", d.message);
    assert_eq!(d.inputs.window, vec![2], "the window never holds a count below the minimum");
    // Proportional with a target: 4 tasks at 90% for a 60% target -> 6; stale CPU -> no data.
    let mut prop = scaling_policy();
    prop.target_cpu = Some(60.0);
    let mut m = memory::ScalingMemory::default();
    let mut v = scaling::ScalingView {
        current: 4,
        running: 4,
        min: 1,
        max: 20,
        deploying: false,
        high_alarm: Some(AlarmState::Alarm),
        low_alarm: Some(AlarmState::Ok),
        cpu: Some(MetricSample { value: 90.0, at: t0() }),
    };
    assert_eq!(scaling::decide(&prop, v, &mut m, t0()).desired, 6);
    v.cpu = Some(MetricSample { value: 90.0, at: t0() - Duration::from_secs(600) });
    assert_eq!(scaling::decide(&prop, v, &mut m, t0()).reason, scaling::DecisionReason::NoData);
}

#[test]
fn proportional_scale_out_waits_for_a_datapoint_that_covers_the_new_count() {
    // The scaling benchmark's step: 4 -> 7 tasks at t0; the period that
    // began at t0 averages 15 s of 4 tasks at 100 % and 45 s of 7 at 85.7 %.
    let mut p = scaling_policy();
    p.target_cpu = Some(60.0);
    let view = |at, value| scaling::ScalingView {
        current: 7,
        running: 7,
        min: 2,
        max: 20,
        deploying: false,
        high_alarm: Some(AlarmState::Alarm),
        low_alarm: Some(AlarmState::Ok),
        cpu: Some(MetricSample { value, at }),
    };
    let mut m = memory::ScalingMemory { last_scale_out: Some(t0()), ..Default::default() };
    let d = scaling::decide(&p, view(t0(), 89.3), &mut m, t0() + Duration::from_secs(75));
    assert_eq!((d.desired, d.reason), (7, scaling::DecisionReason::Settling), "{}", d.message);
    // The next period covers 7 tasks only: 7 x 85.7 / 60 -> 10, not 11.
    let d = scaling::decide(&p, view(t0() + Duration::from_secs(60), 85.7), &mut m, t0() + Duration::from_secs(135));
    assert_eq!((d.desired, d.reason), (10, scaling::DecisionReason::ScaleOut), "{}", d.message);
}

#[test]
fn proportional_scale_out_counts_only_running_tasks() {
    // 7 tasks asked for, 4 running (their instances still launch), at 100 %
    // for a 60 % target: 4 x 100 / 60 -> 7, already asked for.
    let mut p = scaling_policy();
    p.target_cpu = Some(60.0);
    let mut view = scaling::ScalingView {
        current: 7,
        running: 4,
        min: 2,
        max: 20,
        deploying: false,
        high_alarm: Some(AlarmState::Alarm),
        low_alarm: Some(AlarmState::Ok),
        cpu: Some(MetricSample { value: 100.0, at: t0() }),
    };
    let mut m = memory::ScalingMemory::default();
    let d = scaling::decide(&p, view, &mut m, t0() + Duration::from_secs(60));
    assert_eq!((d.desired, d.reason), (7, scaling::DecisionReason::Settling), "{}", d.message);
    // Load beyond what the 7 cover: 5 running at 100 % -> 9.
    view.running = 5;
    let d = scaling::decide(&p, view, &mut m, t0() + Duration::from_secs(60));
    assert_eq!((d.desired, d.reason), (9, scaling::DecisionReason::ScaleOut), "{}", d.message);
}

#[test]
fn scale_in_cooldown_and_window_overlap() {
    // Cooldown 5m and window 5m, one pass a minute: under a steady low
    // alarm, one scale-in each time the last higher recommendation leaves
    // the window (every 6 passes), not cooldown + window (every 10).
    let p = scaling_policy();
    let view = |current| scaling::ScalingView {
        current,
        running: current,
        min: 1,
        max: 10,
        deploying: false,
        high_alarm: Some(AlarmState::Ok),
        low_alarm: Some(AlarmState::Alarm),
        cpu: None,
    };
    let mut m = memory::ScalingMemory::default();
    let mut current = 8;
    let mut scale_ins = Vec::new();
    for minute in 0..=20u64 {
        let now = t0() + Duration::from_secs(minute * 60);
        let d = scaling::decide(&p, view(current), &mut m, now);
        if d.desired < current {
            scale_ins.push(minute);
            m.last_scale_in = Some(now);
            current = d.desired;
        }
    }
    assert_eq!(scale_ins, vec![0, 6, 12, 18]);
}

/// Apply a change to the model the way the cloud would, with registered
/// targets turning healthy at once and deregistered ones gone.
fn apply_to_model(o: &mut Observed, change: &Change) {
    match change {
        Change::SetDesiredCount { to, .. } => {
            let s = svc_mut(o);
            s.desired_count = *to;
            s.tasks.retain(|t| t.is_serving());
            while (s.tasks.len() as u32) < *to {
                let n = 100 + s.tasks.len() as u32;
                s.tasks.push(task(n, TaskStatus::Running));
            }
            s.tasks.truncate(*to as usize);
        }
        Change::RegisterTargets { targets, .. } => {
            for t in targets {
                tg_mut(o).targets.push(ObservedTarget { target: t.clone(), health: TargetHealth::Healthy });
            }
        }
        Change::DeregisterTargets { targets, .. } => tg_mut(o).targets.retain(|t| !targets.contains(&t.target)),
        Change::PutAlarm { region, alarm, .. } => {
            o.alarms.insert((region.clone(), alarm.name.clone()), Ok(observed_alarm(alarm.clone())));
        }
        _ => {}
    }
}

proptest! {
    /// From any mix of tasks and targets, applying plans converges to a
    /// state that plans nothing; along the way no foreign target is
    /// deregistered and healthy targets never hit zero while one is wanted.
    #[test]
    fn plans_converge_and_stay_safe(
        declared in 0u32..6,
        tasks in proptest::collection::vec((1u32..12, 0u8..3), 0..8),
        targets in proptest::collection::vec((1u32..16, 0u8..4), 0..10),
    ) {
        let d = desired_with(service(TaskCount::Fixed(declared)));
        let mut o = world(&d, 0);
        {
            let s = svc_mut(&mut o);
            for (n, st) in &tasks {
                let mut t = task(*n, if *st == 0 { TaskStatus::Stopped } else { TaskStatus::Running });
                if *st == 2 { t.instance_id = Some(format!("i-{n}")); }
                if !s.tasks.iter().any(|x| x.arn == t.arn) { s.tasks.push(t); }
            }
            s.desired_count = s.tasks.iter().filter(|t| t.is_serving()).count() as u32;
        }
        for (n, h) in &targets {
            let health = [TargetHealth::Healthy, TargetHealth::Unhealthy, TargetHealth::Initial, TargetHealth::Draining][*h as usize];
            let t = target(*n, health);
            if !tg_mut(&mut o).targets.iter().any(|x| x.target == t.target) { tg_mut(&mut o).targets.push(t); }
        }
        let known: std::collections::BTreeSet<String> = svc_mut(&mut o).tasks.iter().filter_map(|t| t.instance_id.clone()).collect();
        let mut m = Memory::default();
        let mut converged = false;
        for _ in 0..30 {
            let p = plan(&d, &o, m.clone(), t0());
            m = p.memory.clone();
            if p.changes.is_empty() { converged = true; break; }
            let healthy_before = tg_mut(&mut o).targets.iter().filter(|t| t.health == TargetHealth::Healthy).count();
            for c in &p.changes {
                if let Change::DeregisterTargets { targets, .. } = &c.change {
                    for t in targets {
                        prop_assert!(known.contains(&t.id) || m.registered.values().any(|r| r.contains(t)), "foreign target {t} deregistered");
                    }
                }
                apply_to_model(&mut o, &c.change);
                m.record_applied(&c.change, t0());
            }
            let healthy_after = tg_mut(&mut o).targets.iter().filter(|t| t.health == TargetHealth::Healthy).count();
            prop_assert!(!(healthy_before > 0 && healthy_after == 0), "healthy targets dropped to zero");
        }
        prop_assert!(converged, "did not converge in 30 passes");
    }
}

proptest! {
    /// Over random sequences of alarm states, CPU samples and elapsed
    /// times, with decisions applied as the controller would: the count
    /// stays within bounds, never drops inside the scale-in cooldown or
    /// below the stabilisation window's highest recommendation, and never
    /// moves on missing or stale data.
    #[test]
    fn scaling_decisions_keep_their_rules(
        steps in proptest::collection::vec((0u8..3, 0u8..3, proptest::option::of(0.0f64..100.0), 0u64..400, 0u64..600, any::<bool>()), 1..60),
        proportional in any::<bool>(),
    ) {
        let mut policy = scaling_policy();
        if proportional {
            policy.target_cpu = Some(60.0);
        }
        // A window shorter than the scale-in cooldown, so that each rule is
        // checked on its own.
        policy.stabilization_window = Duration::from_secs(60);
        let (min, max) = (2u32, 12u32);
        let states = [AlarmState::Ok, AlarmState::Alarm, AlarmState::InsufficientData];
        let mut mem = memory::ScalingMemory::default();
        let mut now = t0();
        let mut current = 4u32;
        let mut last_action: Option<SystemTime> = None;
        for (high, low, cpu, dt, age, deploying) in steps {
            now += Duration::from_secs(dt);
            let sample = cpu.map(|value| MetricSample { value, at: now - Duration::from_secs(age) });
            let stale = sample.is_none_or(|s| now.duration_since(s.at).unwrap() > policy.max_data_age);
            let view = scaling::ScalingView {
                current, running: current, min, max, deploying,
                high_alarm: Some(states[high as usize]),
                low_alarm: Some(states[low as usize]),
                cpu: sample,
            };
            let before = mem.clone();
            let d = scaling::decide(&policy, view, &mut mem, now);
            prop_assert!((min..=max).contains(&d.desired), "{d:?}");
            let no_data = (states[high as usize] == AlarmState::InsufficientData && states[low as usize] == AlarmState::InsufficientData)
                || (proportional && stale);
            if no_data {
                prop_assert_eq!(d.desired, current, "moved on missing or stale data: {:?}", d);
            }
            if d.desired < current {
                prop_assert!(!deploying, "scale-in while deploying");
                if let Some(t) = last_action {
                    prop_assert!(now.duration_since(t).unwrap() >= policy.scale_in.cooldown, "scale-in inside the cooldown");
                }
                let window_high = before.recommendations.iter()
                    .filter(|(t, _)| now.duration_since(*t).unwrap() <= policy.stabilization_window)
                    .map(|(_, r)| *r).max().unwrap_or(0);
                prop_assert!(d.desired >= window_high.min(current), "below the window's highest recommendation {window_high}: {d:?}");
            }
            if let (true, Some(t)) = (d.desired > current, before.last_scale_out) {
                prop_assert!(now.duration_since(t).unwrap() >= policy.scale_out.cooldown, "scale-out inside its cooldown");
                if proportional {
                    prop_assert!(sample.is_some_and(|s| s.at > t), "proportional scale-out on a datapoint from before the last one: {d:?}");
                }
            }
            if d.desired != current {
                if d.desired > current { mem.last_scale_out = Some(now) } else { mem.last_scale_in = Some(now) }
                last_action = Some(now);
                current = d.desired;
            }
        }
    }
}

/// The test service with CPU scaling (`targetCpu` if given), in a world
/// of `count` tasks.
fn scaling_world(tasks: TaskCount, target_cpu: Option<f64>, count: u32) -> (DesiredState, Observed) {
    let mut s = service(tasks);
    s.scaling = Some(CpuScaling { target_cpu, ..scaling_policy() });
    let d = desired_with(s);
    let o = world(&d, count);
    (d, o)
}

fn set_alarm_state(o: &mut Observed, which: usize, state: AlarmState) {
    let name = alarms::alarm_names(&service_id())[which].clone();
    if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), name)) {
        a.state = state;
    }
}

#[test]
fn a_scaling_decision_held_while_its_alarm_fires_is_a_hold() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 2, max: 10 }, Some(60.0), 2);
    // No CPU datapoint: nothing to size a proportional step from.
    set_alarm_state(&mut o, 0, AlarmState::Alarm);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:?}", p.changes);
    assert_eq!(p.decisions[&service_id()].reason, scaling::DecisionReason::NoData);
    let held: Vec<_> = p.holds.iter().filter(|h| h.kind() == HoldKind::Scaling).collect();
    assert_eq!(held.len(), 1, "{:?}", p.holds);
    assert!(held[0].message().contains("no CPU datapoint"), "{}", held[0].message());

    // With no alarm firing, missing CPU data asks for nothing: no hold.
    set_alarm_state(&mut o, 0, AlarmState::Ok);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty() && p.holds.is_empty(), "{:?}", p.holds);
}

#[test]
fn the_plan_carries_the_count_it_steers_toward_after_the_gate() {
    let d = desired_with(service(TaskCount::Fixed(3)));
    let mut o = world(&d, 2);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(p.services, vec![ServicePlan { observed: Some(2), target: Some(3), surge: 0, by_ecs: 0 }]);

    // Held by a conflict: ballast steers toward nothing but what is there.
    svc_mut(&mut o).scalable_target = true;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(p.services, vec![ServicePlan { observed: Some(2), target: Some(2), surge: 0, by_ecs: 0 }]);

    // Unread: nothing is known.
    o.services.insert(service_id(), Err(ResourceError::Unavailable("DescribeServices: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(p.services, vec![ServicePlan::default()]);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Unobserved));
}

#[test]
fn a_budget_used_by_another_group_says_so() {
    // Claimed foreign targets (an exclusive binding) share the budget;
    // targets of tasks that are gone are not budgeted (issue 15).
    let mut s = service(TaskCount::Fixed(0));
    s.target_groups[0].ownership = Ownership::Exclusive;
    let d = two_groups_one_deregistration_per_pass(s);
    let mut o = only_targets_of_no_task(&d, 1);
    observe_backend(&mut o);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets], "one per pass for the service");
    let budget: Vec<String> = p.holds.iter().filter(|h| h.kind() == HoldKind::Budget).map(|h| h.message()).collect();
    assert_eq!(
        budget,
        vec![
            "keeping stale target i-1:80: the deregistration budget of 1 per pass is used \
             (by the service's other target groups)"
                .to_string()
        ]
    );
}

#[test]
fn a_suspended_service_counts_in_capacity_with_what_ecs_has() {
    // An operator scaled a suspended service to 5; its document says at
    // most 3. Capacity follows the 5, not the 3 ballast would have set.
    let mut s = service(TaskCount::Range { min: 1, max: 3 });
    s.suspend = true;
    let cap = capacity("asg", vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }], 5);
    let (d, o) = with_group(s, &cap, 5, 5, &["subnet-a"]);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!p.changes.iter().any(|c| c.change.kind() == ChangeKind::Capacity), "{:#?}", p.changes);
    assert_eq!(p.capacity[&cap.group].needed, 5);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Suspended), "{:?}", p.holds);
}

/// The service `s` with `tasks` running, on the group of `cap` with
/// `instances` instances in `subnets`.
fn with_group(s: Service, cap: &Capacity, tasks: u32, instances: u32, subnets: &[&str]) -> (DesiredState, Observed) {
    let d = DesiredState { services: vec![s], capacities: vec![cap.clone()] };
    let mut o = world(&d, tasks);
    let mut group = capacity_group(instances);
    group.subnets = subnets.iter().map(|s| s.to_string()).collect();
    o.groups.insert(cap.group.clone(), Ok(group));
    (d, o)
}

/// An Auto Scaling group of `n` in-service instances with one task each.
fn capacity_group(n: u32) -> ObservedGroup {
    ObservedGroup {
        arn: "arn:asg".into(),
        min_size: 0,
        max_size: 10,
        desired_capacity: n,
        subnets: vec![],
        instances: (1..=n)
            .map(|i| ObservedInstance {
                id: format!("i-{i}"),
                zone: "us-east-2a".into(),
                lifecycle_state: Lifecycle::InService,
                healthy: true,
                tasks: Some(1),
                subnet: Some("subnet-a".into()),
                container_instance: None,
            })
            .collect(),
        managed_scaling: false,
        last_capacity_change: None,
        suspended_processes: vec![AZ_REBALANCE.into()],
        termination_hook: None,
    }
}

#[test]
fn a_healthy_foreign_target_does_not_count_toward_the_floor() {
    // Count 1: the old task was replaced; its target is still healthy, the
    // new one is initial, and a healthy foreign target shares the group.
    let d = desired_with(service(TaskCount::Fixed(1)));
    let mut o = world(&d, 1);
    svc_mut(&mut o).tasks[0].last_status = TaskStatus::Stopped;
    svc_mut(&mut o).tasks[0].desired_status = TaskStatus::Stopped;
    svc_mut(&mut o).tasks.push(task(2, TaskStatus::Running));
    tg_mut(&mut o).targets.push(target(2, TargetHealth::Initial));
    tg_mut(&mut o).targets.push(target(9, TargetHealth::Healthy));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "the old target stays until its replacement is healthy: {:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Safety && h.message().contains("i-1:80")), "{:?}", p.holds);
}

#[test]
fn exclusive_ownership_says_why_a_foreign_target_goes_and_keeps_targets_tasks_may_serve() {
    let mut s = service(TaskCount::Fixed(1));
    s.target_groups[0].ownership = Ownership::Exclusive;
    let d = desired_with(s);
    let o = with_foreign_target(&d, TargetHealth::Unhealthy);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets]);
    assert!(
        p.changes[0].reason.contains("i-9:80 not the service's (foreign)")
            && p.changes[0].reason.contains("ownership: exclusive"),
        "{}",
        p.changes[0].reason
    );

    // Two serving tasks whose task definition could not be read have no
    // address: the healthy targets may be theirs and stay.
    let mut s = service(TaskCount::Fixed(3));
    s.target_groups[0].ownership = Ownership::Exclusive;
    let d = desired_with(s);
    let mut o = world(&d, 3);
    for t in &mut svc_mut(&mut o).tasks[1..] {
        t.bindings.clear();
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let kept = p.holds.iter().filter(|h| h.message().contains("may be one of theirs")).count();
    assert_eq!(kept, 2, "{:?}", p.holds);
}

#[test]
fn a_read_that_lags_a_write_is_not_a_revert_nor_written_again() {
    let d = desired_with(service(TaskCount::Fixed(3)));
    let o = world(&d, 2);
    let p = plan(&d, &o, Memory::default(), t0());
    let mut m = p.memory.clone();
    m.record_applied(&p.changes[0].change, t0());
    // Two seconds later ECS still reads 2: the write may not show yet.
    let lag = FightPolicy::default().consistency_lag;
    let p = plan(&d, &o, m.clone(), t0() + Duration::from_secs(2));
    assert!(p.changes.is_empty(), "the write is not repeated: {:#?}", p.changes);
    assert!(
        p.holds.iter().any(|h| h.kind() == HoldKind::Safety && h.message().contains("does not show in reads yet")),
        "{:?}",
        p.holds
    );
    assert!(p.memory.fields.values().all(|f| f.reverts.is_empty()), "not a revert");
    // Past the lag, the old value is someone else's: a revert, corrected.
    let p = plan(&d, &o, p.memory.clone(), t0() + lag);
    assert_eq!(kinds(&p), vec![ChangeKind::DesiredCount]);
    assert_eq!(p.memory.fields.values().map(|f| f.reverts.len()).sum::<usize>(), 1);
}

/// Puts an instance in zone `us-east-2X` and its subnet `subnet-X`, as
/// Auto Scaling and the ECS agent report them.
fn place(instance: &mut ObservedInstance, zone: &str) {
    instance.zone = zone.to_string();
    instance.subnet = Some(format!("subnet-{}", zone.strip_prefix("us-east-2").unwrap()));
}

/// The scale-out test's world: a Capacity document with an on-demand zone
/// above 2 instances, `n` instances in service with a task each.
fn cluster_world(tasks: TaskCount, n: u32) -> (DesiredState, Observed, GroupId) {
    let cap = capacity(
        "asg",
        vec![Zone::always_on("subnet-a", "us-east-2a"), Zone::on_demand("subnet-b", "us-east-2b", 2)],
        2,
    );
    let d = DesiredState { services: vec![service(tasks)], capacities: vec![cap.clone()] };
    let mut o = world(&d, n);
    let mut group = capacity_group(n);
    group.subnets = vec!["subnet-a".into(), "subnet-b".into()];
    place(&mut group.instances[n as usize - 1], "us-east-2b");
    o.groups.insert(cap.group.clone(), Ok(group));
    (d, o, cap.group)
}

/// [`cluster_world`] with 2 tasks on its 3 instances: i-1 and i-2 (zone a)
/// hold one each, i-3 (the on-demand subnet-b) is empty.
fn third_instance_empty() -> (DesiredState, Observed, GroupId) {
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(2), 3);
    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        g.instances[2].tasks = Some(0);
    }
    let svc = svc_mut(&mut o);
    svc.tasks.truncate(2);
    (svc.desired_count, svc.running_count) = (2, 2);
    (d, o, gid)
}

#[test]
fn capacity_is_held_while_a_service_of_the_cluster_is_unread() {
    // 3 tasks on 3 instances; one task just stopped (its instance looks
    // empty) and the service's tasks could not be read this pass.
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(3), 3);
    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        g.instances[2].tasks = Some(0);
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.iter().all(|c| c.change.kind() != ChangeKind::Capacity), "sanity: {:#?}", p.changes);
    o.services.insert(service_id(), Err(ResourceError::Unavailable("ListTasks: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(
        !p.changes.iter().any(|c| matches!(c.change.kind(), ChangeKind::Capacity | ChangeKind::Subnets)),
        "nothing decided on the unread service: {:#?}",
        p.changes
    );
    let held: Vec<String> = p
        .holds
        .iter()
        .filter(|h| h.resource == ResourceKey::group(&gid) && h.kind() == HoldKind::Unobserved)
        .map(Hold::message)
        .collect();
    assert!(held.len() == 1 && held[0].contains("ListTasks: throttled"), "{:?}", p.holds);
}

#[test]
fn capacity_counts_other_services_tasks_on_the_instances() {
    // Our service runs 2 tasks on instances 1 and 2; another service's task
    // fills instance 3. Scaling ours to 3 needs a fourth instance.
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(3), 3);
    svc_mut(&mut o).tasks.truncate(2);
    svc_mut(&mut o).desired_count = 2;
    svc_mut(&mut o).running_count = 2;
    tg_mut(&mut o).targets.truncate(2);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(p.capacity[&gid].other_tasks, 1);
    assert!(
        p.changes.iter().any(|c| matches!(c.change, Change::SetDesiredCapacity { from: 3, to: 4, .. })),
        "{:#?}",
        p.changes
    );
    assert!(p.changes.iter().any(|c| matches!(c.change, Change::SetDesiredCount { from: 2, to: 3, .. })));
}

#[test]
fn a_scale_out_waits_while_the_group_is_unread() {
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(4), 2);
    o.groups.insert(gid.clone(), Err(ResourceError::Unavailable("DescribeAutoScalingGroups: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!p.changes.iter().any(|c| c.change.kind() == ChangeKind::DesiredCount), "{:#?}", p.changes);
    assert!(
        p.holds.iter().any(|h| h.kind() == HoldKind::Unobserved
            && h.resource == ResourceKey::service(&service_id())
            && h.message().contains("DescribeAutoScalingGroups: throttled")),
        "{:?}",
        p.holds
    );
    // A scale-in needs no instances: it goes on.
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(1), 2);
    o.groups.insert(gid, Err(ResourceError::Unavailable("DescribeAutoScalingGroups: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.iter().any(|c| matches!(c.change, Change::SetDesiredCount { from: 2, to: 1, .. })));
}

#[test]
fn the_plan_says_what_a_foreign_target_and_a_wrong_container_port_are() {
    let d = desired_with(service(TaskCount::Fixed(1)));
    let o = with_foreign_target(&d, TargetHealth::Healthy);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty() && p.holds.is_empty(), "{:?} {:?}", p.changes, p.holds);
    assert_eq!(p.notices.len(), 1);
    assert!(p.notices[0].message.contains("target i-9:80 is left alone"), "{}", p.notices[0].message);

    // The document names port 8080; the task definition maps only 80.
    let mut s = service(TaskCount::Fixed(1));
    s.target_groups[0].container_port = 8080;
    let d = desired_with(s);
    let o = world(&d, 1);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_held(&p, |m| m.contains("has no port 8080 of container appContainer") && m.contains("app.yaml:1"));
}

// ---------------------------------------------------------------------------
// One test per safety rule of docs/operations.md that had none, and the
// fixtures the liveness model (`liveness.rs`) builds on.
// ---------------------------------------------------------------------------

/// The test Capacity document with an always-on zone (a) and an on-demand
/// zone (b) that is needed above `above` instances.
fn two_zone_capacity(above: u32, max_change_per_pass: u32) -> Capacity {
    capacity(
        "asg",
        vec![Zone::always_on("subnet-a", "us-east-2a"), Zone::on_demand("subnet-b", "us-east-2b", above)],
        max_change_per_pass,
    )
}

#[test]
fn a_suspended_capacity_document_changes_neither_capacity_nor_subnets() {
    // 4 tasks need 4 instances, above the on-demand zone's 2: the group of
    // 2 in zone a alone would get zone b and 2 more instances.
    let mut cap = two_zone_capacity(2, 2);
    cap.suspend = true;
    let (mut d, o) = with_group(service(TaskCount::Fixed(4)), &cap, 4, 2, &["subnet-a"]);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let suspended: Vec<String> = p
        .holds
        .iter()
        .filter(|h| h.kind() == HoldKind::Suspended && h.resource == ResourceKey::group(&cap.group))
        .map(Hold::message)
        .collect();
    assert_eq!(suspended.len(), 2, "the subnets and the capacity: {:?}", p.holds);
    assert_eq!(p.capacity[&cap.group].needed, 4, "still decided and reported");

    d.capacities[0].suspend = false;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::Subnets, ChangeKind::Capacity], "what the suspend held");
}

#[test]
fn a_suspended_service_does_not_put_its_drifted_alarm() {
    let mut s = service(TaskCount::Range { min: 2, max: 10 });
    s.scaling = Some(scaling_policy());
    s.suspend = true;
    let mut d = desired_with(s);
    let mut o = world(&d, 2);
    let high = alarms::alarm_names(&service_id())[0].clone();
    if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), high.clone())) {
        a.definition.threshold = 95.0;
    }
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    assert!(
        p.holds.iter().any(|h| h.kind() == HoldKind::Suspended && h.resource == ResourceKey::alarm(REGION, &high)),
        "{:?}",
        p.holds
    );

    d.services[0].suspend = false;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::Alarm], "what the suspend held");
}

/// Ten passes, 15 s apart, in which another actor undoes every change of
/// `kind` before the next pass (so the observed state never moves).
/// Returns how many such changes ballast made, its memory and the time.
fn fight(d: &DesiredState, o: &Observed, kind: ChangeKind) -> (usize, Memory, SystemTime) {
    let mut m = Memory::default();
    let mut now = t0();
    let mut writes = 0;
    for _ in 0..10 {
        let p = plan(d, o, m, now);
        m = p.memory;
        for c in p.changes.iter().filter(|c| c.change.kind() == kind) {
            writes += 1;
            m.record_applied(&c.change, now);
        }
        now += Duration::from_secs(15);
    }
    (writes, m, now)
}

/// `resource`'s `field`, fought over (`what` is changed back each time):
/// ballast stops after the policy's reverts and holds it as contested, then
/// corrects it again once a whole window passes without a revert.
fn assert_contested_then_resumed(
    d: &DesiredState,
    o: &Observed,
    kind: ChangeKind,
    resource: ResourceKey,
    field: &str,
    what: &str,
) {
    let (writes, m, now) = fight(d, o, kind);
    assert_eq!(writes, FightPolicy::default().max_reverts, "{what}: ballast stops after this many reverts");
    let p = plan(d, o, m, now);
    assert!(!p.changes.iter().any(|c| c.change.kind() == kind), "{what}: {:?}", p.changes);
    assert!(
        p.holds
            .iter()
            .any(|h| h.kind() == HoldKind::Contested && h.resource == resource && h.message().contains(field)),
        "{what}: {:?}",
        p.holds
    );
    let later = now + FightPolicy::default().window + Duration::from_secs(1);
    let p = plan(d, o, p.memory, later);
    assert!(p.changes.iter().any(|c| c.change.kind() == kind), "{what}: corrected again after the window");
}

#[test]
fn a_capacity_reverted_again_and_again_becomes_contested_then_resumes() {
    // 3 tasks on a group of 2: ballast sets 3, someone sets 2 back.
    let cap = capacity("asg", vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }], 2);
    let (d, o) = with_group(service(TaskCount::Fixed(3)), &cap, 3, 2, &["subnet-a"]);
    assert_eq!(kinds(&plan(&d, &o, Memory::default(), t0())), vec![ChangeKind::Capacity]);
    assert_contested_then_resumed(
        &d,
        &o,
        ChangeKind::Capacity,
        ResourceKey::group(&cap.group),
        "desired capacity",
        "capacity",
    );
}

#[test]
fn subnets_reverted_again_and_again_become_contested_then_resume() {
    // Zone b is needed above 1 instance; someone keeps removing it.
    let cap = two_zone_capacity(1, 2);
    let (d, o) = with_group(service(TaskCount::Fixed(2)), &cap, 2, 2, &["subnet-a"]);
    assert_eq!(kinds(&plan(&d, &o, Memory::default(), t0())), vec![ChangeKind::Subnets]);
    assert_contested_then_resumed(&d, &o, ChangeKind::Subnets, ResourceKey::group(&cap.group), "subnets", "subnets");
}

#[test]
fn drift_in_each_compared_alarm_field_is_corrected_and_a_fight_over_it_noticed() {
    let mut s = service(TaskCount::Range { min: 2, max: 10 });
    s.scaling = Some(scaling_policy());
    let d = desired_with(s);
    let high = alarms::alarm_names(&service_id())[0].clone();
    type Edit = fn(&mut AlarmDefinition);
    let edits: &[(&str, Edit)] = &[
        ("threshold 95 -> 70", |a| a.threshold = 95.0),
        ("comparison GreaterThanOrEqualToThreshold -> GreaterThanThreshold", |a| {
            a.comparison = Comparison::GreaterThanOrEqualToThreshold
        }),
        ("period 300s -> 60s", |a| a.period_secs = 300),
        ("evaluationPeriods 3 -> 1", |a| a.evaluation_periods = 3),
        ("datapointsToAlarm 2 -> 1", |a| a.datapoints_to_alarm = 2),
        ("missingData breaching -> missing", |a| a.missing_data = MissingData::Breaching),
        ("metric AWS/EC2/CPUUtilization -> AWS/ECS/CPUUtilization", |a| a.namespace = "AWS/EC2".into()),
        ("metric AWS/ECS/MemoryUtilization -> AWS/ECS/CPUUtilization", |a| a.metric_name = "MemoryUtilization".into()),
        ("statistic Maximum -> Average", |a| a.statistic = Statistic::Maximum),
        ("dimensions", |a| a.dimensions.truncate(1)),
    ];
    for (reason, edit) in edits {
        let mut o = world(&d, 2);
        if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), high.clone())) {
            edit(&mut a.definition);
        }
        let p = plan(&d, &o, Memory::default(), t0());
        assert!(
            matches!(&p.changes[..], [PlannedChange { change: Change::PutAlarm { create: false, .. }, .. }]),
            "{reason}: {:#?}",
            p.changes
        );
        assert!(p.changes[0].reason.contains(reason), "{reason}: {}", p.changes[0].reason);
        assert_contested_then_resumed(&d, &o, ChangeKind::Alarm, ResourceKey::alarm(REGION, &high), &high, reason);
    }
}

#[test]
fn capacity_scale_in_terminates_on_demand_instances_first() {
    // 2 tasks on 4 instances, one removed per pass: the empty one in the
    // on-demand zone b goes before the empty one in zone a, though its id
    // sorts after.
    let cap = two_zone_capacity(5, 1);
    let d = DesiredState { services: vec![service(TaskCount::Fixed(2))], capacities: vec![cap.clone()] };
    let mut o = world(&d, 2);
    let mut group = capacity_group(4);
    group.subnets = vec!["subnet-a".into(), "subnet-b".into()];
    for (i, (zone, tasks)) in
        [("us-east-2a", 0), ("us-east-2a", 1), ("us-east-2a", 1), ("us-east-2b", 0)].iter().enumerate()
    {
        place(&mut group.instances[i], zone);
        group.instances[i].tasks = Some(*tasks);
    }
    o.groups.insert(cap.group.clone(), Ok(group));
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(terminated(&p), vec!["i-4"], "{:#?}", p.changes);
}

/// Issue 15: an instance's subnet is what the ECS agent registered, never
/// the Capacity document's `zone:` text (a typo there once made ballast
/// remove a subnet that still had instances).
#[test]
fn on_demand_subnets_go_by_the_subnets_ecs_reports_not_the_zone_text() {
    // 2 tasks need 2 instances; the third, in the on-demand subnet-b, is
    // empty. The documents' zone names are wrong (or absent).
    let (mut d, mut o, gid) = cluster_world(TaskCount::Fixed(2), 3);
    d.capacities[0].zones[1].zone = Some("us-east-2x".into());
    d.capacities[0].zones[0].zone = None;
    fn group<'o>(o: &'o mut Observed, gid: &GroupId) -> &'o mut ObservedGroup {
        o.groups.get_mut(gid).and_then(|g| g.as_mut().ok()).expect("the group was read")
    }
    let removes_b = |p: &Plan| {
        p.changes.iter().any(|c| matches!(&c.change, Change::SetGroupSubnets { to, .. } if to == &["subnet-a"]))
    };
    // i-3 still runs a task (the service's third, being scaled in).
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!removes_b(&p), "i-3 is still in subnet-b: {:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.message().contains("stays until its 1 instance(s) are gone")), "{:#?}", p.holds);

    // Empty: it terminates, and the subnet goes in the same pass, after it.
    group(&mut o, &gid).instances[2].tasks = Some(0);
    svc_mut(&mut o).tasks.truncate(2);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(terminated(&p), ["i-3"], "the empty instance of the on-demand subnet");
    assert_eq!(kinds(&p)[..2], [ChangeKind::Capacity, ChangeKind::Subnets], "{:#?}", p.changes);
    assert!(removes_b(&p));

    // Gone: the subnet follows.
    group(&mut o, &gid).instances.pop();
    group(&mut o, &gid).desired_capacity = 2;
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(removes_b(&p), "{:#?}", p.changes);

    // An instance not registered with ECS yet may be in subnet-b: it stays.
    let mut unjoined = group(&mut o, &gid).instances[0].clone();
    (unjoined.id, unjoined.subnet, unjoined.tasks) = ("i-9".into(), None, None);
    group(&mut o, &gid).instances.push(unjoined);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!removes_b(&p), "{:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.message().contains("not registered with ECS yet")), "{:#?}", p.holds);
}

/// Issue 15 item 4: a scale-in takes the empty instances of a subnet going
/// away first, then one of the zone with the most instances, counted again
/// after each pick, so the zones that stay are left balanced; an instance
/// whose subnet ECS does not report comes last.
#[test]
fn capacity_scale_in_keeps_the_zones_that_stay_balanced() {
    let cap = three_zones(5, 10);
    // Instance i-1, i-2, ... in each zone (None: its subnet is not known),
    // with its tasks; the scale-in goes down to `needed`.
    let chosen = |layout: &[(Option<&str>, u32)], needed: u32| {
        let mut group = capacity_group(layout.len() as u32);
        group.subnets = vec!["subnet-a".into(), "subnet-b".into(), "subnet-c".into()];
        for (i, (zone, tasks)) in group.instances.iter_mut().zip(layout) {
            match zone {
                Some(zone) => place(i, zone),
                None => i.subnet = None,
            }
            i.tasks = Some(*tasks);
        }
        capacity::decide(&cap, &group, needed, 1, &mut memory::CapacityMemory::default(), t0()).terminate
    };
    let (a, b, c) = (Some("us-east-2a"), Some("us-east-2b"), Some("us-east-2c"));

    // a 3, b 2, the on-demand c 1 (not needed for 4): c's goes, then a's,
    // though b's empty instance sorts first. a 2, b 2 are left.
    let layout = [(b, 0), (b, 1), (a, 1), (a, 1), (a, 0), (c, 0)];
    assert_eq!(chosen(&layout, 4), ["i-6", "i-5"]);

    // a 4, b 3, three to go: a, then a and b are even (a sorts first),
    // then b: a 2, b 2 are left. Counted once, all three would be a's.
    let layout = [(a, 0), (a, 0), (a, 0), (a, 1), (b, 0), (b, 0), (b, 1)];
    assert_eq!(chosen(&layout, 4), ["i-1", "i-2", "i-5"]);

    // An instance ECS reports no subnet for could be in any zone: the
    // empty one of a known zone goes first, it only after.
    let layout = [(None, 0), (a, 1), (a, 0), (b, 1), (b, 1)];
    assert_eq!(chosen(&layout, 4), ["i-3"]);
    assert_eq!(chosen(&layout, 3), ["i-3", "i-1"]);
}

/// Issue 15 item 4: an on-demand subnet no longer needed goes in the same
/// pass as its last instance, after it; not while another instance may
/// still be there, nor within the cooldown, nor without that termination.
#[test]
fn an_on_demand_subnet_goes_in_the_same_pass_as_its_last_instance() {
    // 2 tasks on i-1 and i-2 in zone a; i-3, in the on-demand subnet-b
    // (needed above 2 instances), is empty.
    let world = third_instance_empty;
    fn group<'o>(o: &'o mut Observed, gid: &GroupId) -> &'o mut ObservedGroup {
        o.groups.get_mut(gid).and_then(|g| g.as_mut().ok()).expect("the group was read")
    }
    let removes_b = |p: &Plan| {
        p.changes.iter().any(|c| matches!(&c.change, Change::SetGroupSubnets { to, .. } if to == &["subnet-a"]))
    };
    let b_stays = |p: &Plan, until: &str| {
        let hold = format!("on-demand subnet subnet-b stays until {until}");
        p.holds.iter().any(|h| h.message() == hold)
    };

    let (d, o, gid) = world();
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(terminated(&p), ["i-3"]);
    assert_eq!(kinds(&p), [ChangeKind::Capacity, ChangeKind::Subnets], "the termination first: {:#?}", p.changes);
    assert!(removes_b(&p));
    assert!(p.changes[1].reason.contains("last instance(s) terminate first"), "{}", p.changes[1].reason);
    assert!(!p.holds.iter().any(|h| h.message().contains("subnet-b")), "{:#?}", p.holds);

    // Another instance of subnet-b: in standby (it may come back), or
    // terminating while a task of ours on it drains. Once drained, it no
    // longer keeps the subnet.
    let mut other = group(&mut world().1, &gid).instances[2].clone();
    other.id = "i-4".into();
    for (state, tasks, until) in [
        (Lifecycle::Standby, 0, "its 1 instance(s) are gone"),
        (Lifecycle::TerminatingWait, 1, "its 1 instance(s) are gone (1 terminating, waiting for their tasks to drain)"),
        (Lifecycle::TerminatingWait, 0, ""),
    ] {
        let (d, mut o, gid) = world();
        group(&mut o, &gid).instances.push(ObservedInstance {
            lifecycle_state: state.clone(),
            tasks: Some(tasks),
            ..other.clone()
        });
        if tasks > 0 {
            let svc = svc_mut(&mut o);
            svc.tasks.push(task(4, TaskStatus::Running));
            svc.running_count = 3;
        }
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(terminated(&p), ["i-3"], "{state:?}: {:#?}", p.changes);
        if until.is_empty() {
            assert!(removes_b(&p), "{state:?} drained: {:#?}", p.changes);
        } else {
            assert!(!removes_b(&p), "{state:?}: {:#?}", p.changes);
            assert!(b_stays(&p, until), "{state:?}: {:#?}", p.holds);
        }
    }

    // An instance not registered with ECS yet may be in subnet-b.
    let (d, mut o, gid) = world();
    let unjoined =
        ObservedInstance { id: "i-9".into(), lifecycle_state: Lifecycle::Pending, subnet: None, tasks: None, ..other };
    group(&mut o, &gid).instances.push(unjoined);
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!((terminated(&p), removes_b(&p)), (vec!["i-3"], false), "{:#?}", p.changes);
    assert!(b_stays(
        &p,
        "1 instance(s) not registered with ECS yet are placed (their subnet is unknown until they are)"
    ));

    // Needed a minute ago: the instance goes, the subnet stays for the cooldown.
    let (d, o, gid) = world();
    let mut m = Memory::default();
    let needed_at = [("subnet-b".to_string(), t0() - Duration::from_secs(60))].into();
    m.capacity.insert(gid.clone(), memory::CapacityMemory { last_change: None, subnet_needed_at: needed_at });
    let p = plan(&d, &o, m, t0());
    assert_eq!((terminated(&p), removes_b(&p)), (vec!["i-3"], false), "{:#?}", p.changes);
    assert!(b_stays(&p, "the scale-in cooldown passes"), "{:#?}", p.holds);

    // The termination is not made this pass, so neither is the removal,
    // and the hold says what the subnet waits for: a deployment in the
    // cluster, the group's capacity contested.
    let (d, mut o, _) = world();
    svc_mut(&mut o).deploying = true;
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(terminated(&p).is_empty() && !removes_b(&p), "deploying: {:#?}", p.changes);
    assert!(b_stays(&p, "its 1 instance(s) are gone"), "deploying: {:#?}", p.holds);

    let (d, o, gid) = world();
    let mut m = Memory::default();
    let contested = memory::FieldMemory {
        reverts: vec![t0(); FightPolicy::default().max_reverts].into(),
        contested_since: Some(t0()),
        ..memory::FieldMemory::default()
    };
    m.fields.insert(Field::Capacity(gid), contested);
    let p = plan(&d, &o, m, t0());
    assert!(terminated(&p).is_empty() && !removes_b(&p), "contested: {:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.kind() == HoldKind::Contested), "{:#?}", p.holds);

    // AZRebalance still active: suspended first; the instance goes, the
    // subnet once the suspension reads back.
    let (d, mut o, gid) = world();
    group(&mut o, &gid).suspended_processes.clear();
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), [ChangeKind::Processes, ChangeKind::Capacity], "{:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.reason == HoldReason::Safety(Safety::AzRebalanceActive)), "{:#?}", p.holds);
}

/// Issue 15: an instance is empty only when no task is left on it, and no
/// instance goes while a service of the cluster deploys.
#[test]
fn capacity_scale_in_spares_stopping_tasks_and_deployments() {
    // 2 tasks on 3 instances (one per instance); i-3 is empty, the rest
    // wants 2: i-3 goes.
    let empty_third = || {
        let (d, o, _) = third_instance_empty();
        (d, o)
    };
    let (d, o) = empty_third();
    assert_eq!(terminated(&plan(&d, &o, Memory::default(), t0())), ["i-3"]);

    // A task of ours still stopping on i-3 (ECS no longer counts it):
    // i-3 stays, and the group is not scaled in around it.
    for status in [TaskStatus::Deactivating, TaskStatus::Stopping, TaskStatus::Deprovisioning] {
        let (d, mut o) = empty_third();
        let mut stopping = task(3, status);
        stopping.desired_status = TaskStatus::Stopped;
        svc_mut(&mut o).tasks.push(stopping);
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(terminated(&p), Vec::<String>::new(), "{status:?}: {:#?}", p.changes);
        assert!(!kinds(&p).contains(&ChangeKind::Capacity), "{status:?}: {:#?}", p.changes);
    }

    // A deployment of a service in the cluster: no scale-in, said why.
    let (d, mut o) = empty_third();
    svc_mut(&mut o).deploying = true;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(terminated(&p), Vec::<String>::new(), "{:#?}", p.changes);
    assert!(p.holds.iter().any(|h| h.message().contains("waits while service")), "{:#?}", p.holds);
}

#[test]
fn a_draining_target_whose_task_still_serves_is_registered_again() {
    let d = desired_with(service(TaskCount::Fixed(2)));
    let mut o = world(&d, 2);
    tg_mut(&mut o).targets[0].health = TargetHealth::Draining;
    let p = plan(&d, &o, Memory::default(), t0());
    assert_eq!(kinds(&p), vec![ChangeKind::RegisterTargets]);
    assert!(
        matches!(&p.changes[0].change, Change::RegisterTargets { targets, .. } if *targets == [Target { id: "i-1".into(), port: 80 }]),
        "{:?}",
        p.changes
    );
}

/// The helpers above, for the liveness model next door.
pub(super) mod fixtures {
    use super::*;

    pub(in crate::plan) fn t0() -> SystemTime {
        super::t0()
    }

    pub(in crate::plan) fn service_id() -> ServiceId {
        super::service_id()
    }

    pub(in crate::plan) fn service(tasks: TaskCount) -> Service {
        super::service(tasks)
    }

    pub(in crate::plan) fn world(desired: &DesiredState, count: u32) -> Observed {
        super::world(desired, count)
    }

    pub(in crate::plan) fn task(n: u32, status: TaskStatus) -> ObservedTask {
        super::task(n, status)
    }

    pub(in crate::plan) fn scaling_policy() -> CpuScaling {
        super::scaling_policy()
    }

    pub(in crate::plan) fn set_alarm_state(o: &mut Observed, which: usize, state: AlarmState) {
        super::set_alarm_state(o, which, state)
    }
}

#[test]
fn a_failed_cpu_read_is_no_missing_datapoint_and_holds_the_decision() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 2, max: 10 }, Some(60.0), 2);
    set_alarm_state(&mut o, 0, AlarmState::Alarm);
    o.cpu.insert(service_id(), Ok(Some(MetricSample { value: 95.0, at: t0() - Duration::from_secs(60) })));
    let p = plan(&d, &o, Memory::default(), t0());
    assert_only_count_change(&p, 2, 4);

    o.cpu.insert(service_id(), Err(ResourceError::Unavailable("GetMetricData: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    let d0 = &p.decisions[&service_id()];
    assert!(d0.message.contains("could not read the CPU metric") && d0.message.contains("throttled"), "{}", d0.message);
    assert!(!d0.message.contains("returned no"), "a failed read is not an empty one: {}", d0.message);
    assert!(!p.is_complete());
    assert!(p.unread().any(|h| h.resource == ResourceKey::service(&service_id())));

    // An unread alarm holds the decision too.
    let mut o = world(&d, 2);
    let high = alarms::alarm_names(&service_id())[0].clone();
    o.alarms.insert((REGION.into(), high), Err(ResourceError::Unavailable("DescribeAlarms: throttled".into())));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.unread().any(|h| h.resource == ResourceKey::service(&service_id()) && h.message().contains("alarm")));
}

#[test]
fn a_deleted_service_is_reported_and_gets_no_write() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 3, max: 10 }, None, 2);
    svc_mut(&mut o).status = ServiceStatus::Inactive;
    tg_mut(&mut o).targets.pop();
    o.alarms.clear();
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "nothing is written for a deleted service: {:#?}", p.changes);
    let held: Vec<String> = p.unread().map(Hold::message).collect();
    assert!(held.iter().any(|m| m.contains("is INACTIVE in ECS (deleted)")), "{held:?}");
}

#[test]
fn correcting_an_alarm_keeps_the_actions_someone_added() {
    let (d, mut o) = scaling_world(TaskCount::Range { min: 2, max: 10 }, None, 2);
    let high = alarms::alarm_names(&service_id())[0].clone();
    let page = "arn:aws:sns:us-east-2:123456789012:page-the-on-call".to_string();
    if let Some(Ok(a)) = o.alarms.get_mut(&(REGION.to_string(), high)) {
        a.definition.threshold = 95.0;
        a.definition.actions.alarm = vec![page.clone()];
    }
    let p = plan(&d, &o, Memory::default(), t0());
    let [PlannedChange { change: Change::PutAlarm { alarm, create: false, .. }, .. }] = &p.changes[..] else {
        panic!("one alarm update: {:#?}", p.changes)
    };
    assert_eq!(alarm.threshold, 70.0, "the declared threshold");
    assert_eq!(alarm.actions.alarm, vec![page], "the page someone added stays");
}

#[test]
fn instances_that_never_joined_ecs_are_named_for_what_they_are() {
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(1), 3);
    svc_mut(&mut o).tasks.truncate(1);
    svc_mut(&mut o).desired_count = 1;
    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        g.instances[1].tasks = None;
        g.instances[2].tasks = None;
    }
    let later = t0() + Duration::from_secs(3600);
    let mut m = Memory::default();
    m.capacity.insert(gid.clone(), memory::CapacityMemory::default());
    let p = plan(&d, &o, m, later);
    let held: Vec<String> =
        p.holds.iter().filter(|h| h.resource == ResourceKey::group(&gid)).map(Hold::message).collect();
    // One instance runs the task; the two others are not in the cluster.
    assert!(
        held.iter().any(|m| m.contains("1 wait for their tasks to leave; 2 never joined the ECS cluster")),
        "{held:?}"
    );
}

/// The low alarm fires on 3 tasks, and the planner has no memory (a
/// restart, `apply --once`); the service carries `marks`.
fn restarted_with_low_alarm(marks: ScalingMarks) -> (DesiredState, Observed) {
    let mut s = service(TaskCount::Range { min: 1, max: 10 });
    s.scaling = Some(scaling_policy());
    let d = desired_with(s);
    let mut o = world(&d, 3);
    set_alarm_state(&mut o, 1, AlarmState::Alarm);
    svc_mut(&mut o).scaling_marks = marks;
    (d, o)
}

#[test]
fn a_restart_keeps_the_scale_in_cooldown_and_window_of_the_marked_scale_in() {
    // Ballast scaled in 4 -> 3 eight seconds before the restart; the low
    // alarm still fires.
    let restart = t0();
    let scaled_in = restart - Duration::from_secs(8);
    let (d, o) = restarted_with_low_alarm(ScalingMarks { last_out: None, last_in: Some((scaled_in, 3)) });
    let policy = scaling_policy();
    let ends = scaled_in + policy.scale_in.cooldown.max(policy.stabilization_window);
    let mut m = Memory::default();
    let mut now = restart;
    // Every pass until the cooldown and the window of that scale-in end holds.
    while now <= ends {
        let p = plan(&d, &o, m, now);
        assert!(p.changes.is_empty(), "at {:?} after the restart: {:#?}", now.duration_since(restart), p.changes);
        let reason = p.decisions[&service_id()].reason;
        assert!(
            matches!(reason, scaling::DecisionReason::InCooldown | scaling::DecisionReason::Stabilizing),
            "{reason:?}"
        );
        m = p.memory;
        now += Duration::from_secs(15);
    }
    let p = plan(&d, &o, m, now);
    assert_only_count_change(&p, 3, 2);
}

#[test]
fn a_restart_without_marks_scales_in_at_once() {
    // No marks: ballast never scaled the service, so none of its
    // cooldowns holds the scale-in the alarm asks for.
    let (d, o) = restarted_with_low_alarm(ScalingMarks::default());
    let p = plan(&d, &o, Memory::default(), t0());
    assert_only_count_change(&p, 3, 2);
    // A mark from long ago holds nothing either.
    let long_ago = ScalingMarks { last_out: Some((t0() - Duration::from_secs(3600), 5)), last_in: None };
    let (d, o) = restarted_with_low_alarm(long_ago);
    assert_eq!(plan(&d, &o, Memory::default(), t0()).changes.len(), 1);
}

#[test]
fn a_restart_keeps_the_scale_out_cooldown_of_the_marked_scale_out() {
    let mut s = service(TaskCount::Range { min: 1, max: 10 });
    s.scaling = Some(scaling_policy());
    let d = desired_with(s);
    let mut o = world(&d, 3);
    set_alarm_state(&mut o, 0, AlarmState::Alarm);
    let cooldown = scaling_policy().scale_out.cooldown;
    svc_mut(&mut o).scaling_marks.last_out = Some((t0() - cooldown / 2, 3));
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty(), "{:#?}", p.changes);
    assert_eq!(p.decisions[&service_id()].reason, scaling::DecisionReason::OutCooldown);
    let p = plan(&d, &o, p.memory, t0() + cooldown / 2);
    assert_only_count_change(&p, 3, 4);
}

#[test]
fn a_mark_from_a_clock_ahead_holds_no_longer_than_a_cooldown() {
    let ahead = t0() + Duration::from_secs(3600);
    let (d, o) = restarted_with_low_alarm(ScalingMarks { last_out: None, last_in: Some((ahead, 3)) });
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.is_empty());
    let policy = scaling_policy();
    let over = t0() + policy.scale_in.cooldown.max(policy.stabilization_window) + Duration::from_secs(1);
    let p = plan(&d, &o, p.memory, over);
    assert_eq!(p.changes.len(), 1, "{:#?}", p.changes);
}

/// Two tasks on three instances, the third empty, and a planner with no
/// memory; the group's last capacity change (ballast's mark) is `mark`.
fn restarted_with_an_empty_instance(mark: Option<SystemTime>) -> (DesiredState, Observed) {
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(2), 3);
    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        g.instances[2].tasks = Some(0);
        g.last_capacity_change = mark;
    }
    svc_mut(&mut o).tasks.truncate(2);
    (d, o)
}

#[test]
fn a_restart_keeps_the_capacity_cooldown_of_the_marked_change() {
    let changed = t0() - Duration::from_secs(8);
    let (d, o) = restarted_with_an_empty_instance(Some(changed));
    let cooldown = d.capacities[0].scale_in_cooldown;
    let mut m = Memory::default();
    let mut now = t0();
    while now < changed + cooldown {
        let p = plan(&d, &o, m, now);
        assert!(!p.changes.iter().any(|c| c.change.kind() == ChangeKind::Capacity), "{:#?}", p.changes);
        assert!(p.holds.iter().any(|h| h.reason.to_string().contains("waits for the cooldown")), "{:#?}", p.holds);
        m = p.memory;
        now += Duration::from_secs(15);
    }
    let p = plan(&d, &o, m, now);
    assert!(p.changes.iter().any(|c| matches!(c.change, Change::TerminateInstance { .. })), "{:#?}", p.changes);

    // No mark: ballast never changed the capacity; the empty instance goes.
    let (d, o) = restarted_with_an_empty_instance(None);
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(p.changes.iter().any(|c| matches!(c.change, Change::TerminateInstance { .. })), "{:#?}", p.changes);
}

#[test]
fn a_restart_keeps_an_emptied_on_demand_subnet_for_the_cooldown_of_the_marked_change() {
    // Two instances in the always-on zone; the on-demand subnet-b is still
    // in the group, its zone emptied by ballast's last capacity change.
    let (d, mut o, gid) = cluster_world(TaskCount::Fixed(2), 2);
    let changed = t0() - Duration::from_secs(8);
    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        place(&mut g.instances[1], "us-east-2a");
        g.last_capacity_change = Some(changed);
    }
    let removes_b = |p: &Plan| {
        p.changes.iter().any(|c| matches!(&c.change, Change::SetGroupSubnets { to, .. } if to == &["subnet-a"]))
    };
    let p = plan(&d, &o, Memory::default(), t0());
    assert!(!removes_b(&p), "{:#?}", p.changes);
    let cooldown = d.capacities[0].scale_in_cooldown;
    let p = plan(&d, &o, p.memory, changed + cooldown);
    assert!(removes_b(&p), "{:#?}", p.changes);

    if let Some(Ok(g)) = o.groups.get_mut(&gid) {
        g.last_capacity_change = None;
    }
    assert!(removes_b(&plan(&d, &o, Memory::default(), t0())), "no mark: nothing of ballast's holds it");
}

mod drain {
    //! Scale-in by drain at the planner: pure, with `now` passed in.

    use super::*;

    /// `world` with protection read and every task protected for an hour.
    fn protected_world(d: &DesiredState, count: u32) -> Observed {
        let mut o = world(d, count);
        let svc = svc_mut(&mut o);
        svc.protection = ProtectionRead::Read;
        for t in &mut svc.tasks {
            t.protected_until = Some(t0() + Duration::from_secs(3600));
        }
        o
    }

    /// A scale-in from 2 tasks to 1 with a propagation lag of `lag_secs`,
    /// whose task 2 is already out of its group and unprotected.
    fn second_task_out_and_unprotected(lag_secs: u64) -> (DesiredState, Observed) {
        let d = with_lag(1, lag_secs);
        let mut o = protected_world(&d, 2);
        tg_mut(&mut o).targets.remove(1);
        svc_mut(&mut o).tasks[1].protected_until = None;
        (d, o)
    }

    fn protection_changes(p: &Plan) -> Vec<(Vec<String>, Option<u32>)> {
        p.changes
            .iter()
            .filter_map(|c| match &c.change {
                Change::SetTaskProtection { tasks, minutes, .. } => Some((tasks.clone(), *minutes)),
                _ => None,
            })
            .collect()
    }

    fn arn(n: u32) -> String {
        task(n, TaskStatus::Running).arn
    }

    #[test]
    fn serving_tasks_are_protected_and_renewed_before_their_protection_ends() {
        let d = desired_with(service(TaskCount::Fixed(2)));
        let mut o = protected_world(&d, 2);
        assert!(plan(&d, &o, Memory::default(), t0()).changes.is_empty(), "protected for an hour: nothing to do");
        svc_mut(&mut o).tasks[0].protected_until = None;
        svc_mut(&mut o).tasks[1].protected_until = Some(t0() + Duration::from_secs(29 * 60));
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(protection_changes(&p), vec![(vec![arn(1), arn(2)], Some(crate::plan::drain::PROTECTION_MINUTES))]);
    }

    #[test]
    fn a_scale_in_drains_the_newest_task_then_unprotects_it_then_lowers_the_count() {
        let d = with_lag(2, 120);
        let mut o = protected_world(&d, 3);
        // Task 3 is the newest.
        svc_mut(&mut o).tasks[2].started_at = Some(t0() + Duration::from_secs(1));

        // 1. Out of the group; the count stays.
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(kinds(&p), vec![ChangeKind::DeregisterTargets], "{:#?}", p.changes);
        assert!(matches!(&p.changes[0].change, Change::DeregisterTargets { targets, .. } if targets[0].id == "i-3"));
        assert_held(&p, |m| m.starts_with("draining 1 task(s) for scale-in"));

        // 2. Draining in the load balancer: nothing but waiting.
        tg_mut(&mut o).targets[2].health = TargetHealth::Draining;
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(2));
        assert!(p.changes.is_empty(), "{:#?}", p.changes);

        // 3. Gone from the group after the delay (300 s), long after the
        // lag: its protection comes off.
        tg_mut(&mut o).targets.remove(2);
        let later = t0() + Duration::from_secs(302);
        let p = plan(&d, &o, p.memory, later);
        assert_eq!(protection_changes(&p), vec![(vec![arn(3)], None)]);
        assert!(!p.changes.iter().any(|c| c.change.kind() == ChangeKind::DesiredCount), "the count waits a read");

        // 4. The read shows it unprotected: the count drops by one.
        svc_mut(&mut o).tasks[2].protected_until = None;
        let p = plan(&d, &o, p.memory, later + Duration::from_secs(2));
        assert_only_count_change(&p, 3, 2);
    }

    #[test]
    fn the_propagation_lag_counts_from_the_first_pass_that_saw_the_task_out() {
        // A restart: the task is out of its group and unprotected, but this
        // process never saw it leave.
        let (d, o) = second_task_out_and_unprotected(120);
        let p = plan(&d, &o, Memory::default(), t0());
        assert!(p.changes.is_empty(), "waits the lag: {:#?}", p.changes);
        assert_held(&p, |m| m == "draining 1 task(s) for scale-in, 120 s left");
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(120));
        assert_only_count_change(&p, 2, 1);
    }

    #[test]
    fn the_count_drops_only_while_every_task_that_stays_is_protected() {
        let (d, mut o) = second_task_out_and_unprotected(0);
        svc_mut(&mut o).tasks[0].protected_until = None;
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(kinds(&p), vec![ChangeKind::TaskProtection], "protect the one that stays first: {:#?}", p.changes);
        assert_held(&p, |m| m.contains("1 task(s) that stay are protected"));
    }

    #[test]
    fn a_task_leaves_all_its_groups_together_and_the_budget_counts_tasks() {
        let d = two_groups_one_deregistration_per_pass(service(TaskCount::Fixed(2)));
        let mut o = protected_world(&d, 4);
        observe_backend(&mut o);
        let p = plan(&d, &o, Memory::default(), t0());
        let out: Vec<(String, Vec<String>)> = p
            .changes
            .iter()
            .filter_map(|c| match &c.change {
                Change::DeregisterTargets { target_group_arn, targets, .. } => {
                    Some((short_arn(target_group_arn).to_string(), targets.iter().map(ToString::to_string).collect()))
                }
                _ => None,
            })
            .collect();
        // One task per pass (the budget), in both groups at once.
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].1, out[1].1, "the same task's targets: {out:?}");
        assert_eq!(out[0].1.len(), 1, "{out:?}");
    }

    #[test]
    fn on_demand_zones_go_first_then_the_fullest_zone() {
        let mut s = service(TaskCount::Fixed(2));
        s.target_groups[0].propagation_lag = Duration::ZERO;
        let cap = three_zones(2, 5);
        let (d, mut o) = with_group(s, &cap, 5, 5, &["subnet-a", "subnet-b", "subnet-c"]);
        {
            let svc = svc_mut(&mut o);
            svc.protection = ProtectionRead::Read;
            svc.tasks = (1..=5).map(|n| task(n, TaskStatus::Running)).collect();
            svc.desired_count = 5;
            for t in &mut svc.tasks {
                t.protected_until = Some(t0() + Duration::from_secs(3600));
            }
        }
        tg_mut(&mut o).targets = (1..=5).map(|n| target(n, TargetHealth::Healthy)).collect();
        // Instances 1-2 in a, 3-4 in b... and 5 in the on-demand zone c;
        // task 4 is the newest.
        let zones = ["a", "a", "b", "b", "c"];
        let group = o.groups.values_mut().next().unwrap().as_mut().unwrap();
        group.instances = zones
            .iter()
            .enumerate()
            .map(|(i, z)| ObservedInstance {
                id: format!("i-{}", i + 1),
                zone: format!("us-east-2{z}"),
                lifecycle_state: Lifecycle::InService,
                healthy: true,
                tasks: Some(1),
                subnet: Some(format!("subnet-{z}")),
                container_instance: None,
            })
            .collect();
        svc_mut(&mut o).tasks[3].started_at = Some(t0() + Duration::from_secs(5));
        let mut d = d;
        d.services[0].budget.max_deregistrations_per_pass = 3;
        d.services[0].tasks = TaskCount::Fixed(3);
        let p = plan(&d, &o, Memory::default(), t0());
        let gone: Vec<String> = p
            .changes
            .iter()
            .flat_map(|c| match &c.change {
                Change::DeregisterTargets { targets, .. } => targets.iter().map(|t| t.id.clone()).collect(),
                _ => vec![],
            })
            .collect();
        // The on-demand zone's task, then the newest of a full zone.
        assert_eq!(gone, vec!["i-4".to_string(), "i-5".to_string()], "{:#?}", p.changes);
    }

    /// `protected_world` in the middle of a deployment: every task is of
    /// the old one, the service's primary deployment is a new one.
    fn deploying_world(d: &DesiredState, count: u32) -> Observed {
        let mut o = protected_world(d, count);
        let svc = svc_mut(&mut o);
        svc.deploying = true;
        svc.primary_deployment = Some("ecs-svc/new".into());
        for t in &mut svc.tasks {
            t.started_by = Some("ecs-svc/old".into());
        }
        o
    }

    /// A task of the new deployment, RUNNING, not registered yet.
    fn new_task(n: u32) -> ObservedTask {
        ObservedTask { started_by: Some("ecs-svc/new".into()), ..task(n, TaskStatus::Running) }
    }

    fn deregistered(p: &Plan) -> Vec<String> {
        p.changes
            .iter()
            .flat_map(|c| match &c.change {
                Change::DeregisterTargets { targets, .. } => targets.iter().map(|t| t.id.clone()).collect(),
                _ => vec![],
            })
            .collect()
    }

    fn deployment_hold(p: &Plan) -> Hold {
        p.holds.iter().find(|h| matches!(h.reason, HoldReason::Deploying(_))).cloned().expect("a deployment hold")
    }

    #[test]
    fn a_deployment_hands_over_one_old_task_at_a_time_once_a_new_one_is_healthy() {
        let d = with_lag(3, 60);
        let mut o = deploying_world(&d, 3);

        // 1. No new task yet: every old one keeps serving, protected (the
        // floor is the desired count).
        let p = plan(&d, &o, Memory::default(), t0());
        assert!(p.changes.is_empty(), "{:#?}", p.changes);
        let hold = deployment_hold(&p);
        assert_eq!(hold.kind(), HoldKind::Scaling);
        assert!(hold.message().starts_with("deployment: 3 old task(s), 0 new"), "{}", hold.message());
        assert!(hold.message().contains("no new task has started"), "{}", hold.message());

        // 2. A new task runs: it is registered, and no old task leaves
        // while it is not healthy.
        svc_mut(&mut o).tasks.push(new_task(4));
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(10));
        assert!(deregistered(&p).is_empty(), "{:#?}", p.changes);
        assert!(p.changes.iter().any(|c| c.change.kind() == ChangeKind::RegisterTargets), "{:#?}", p.changes);
        assert!(deployment_hold(&p).message().contains("waiting for a new task to become healthy"));

        // 3. Healthy: the oldest old task leaves its group; the new one is
        // protected; no old task is unprotected before it has drained.
        tg_mut(&mut o).targets.push(target(4, TargetHealth::Healthy));
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(40));
        assert_eq!(deregistered(&p), vec!["i-1".to_string()], "{:#?}", p.changes);
        assert_eq!(protection_changes(&p), vec![(vec![arn(4)], Some(crate::plan::drain::PROTECTION_MINUTES))]);

        // 4. Gone from the group; a restarted controller (no memory) waits
        // the propagation lag from its first pass, then unprotects that
        // task only, and lowers no count: the deployment stops it.
        tg_mut(&mut o).targets.remove(0);
        svc_mut(&mut o).tasks[3].protected_until = Some(t0() + Duration::from_secs(3600));
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(340));
        assert!(p.changes.is_empty(), "the lag is not over: {:#?}", p.changes);
        let message = deployment_hold(&p).message();
        assert!(message.contains("1 old handed over, 60 s left"), "{message}");
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(400));
        assert_eq!(protection_changes(&p), vec![(vec![arn(1)], None)], "{:#?}", p.changes);
        assert!(!p.changes.iter().any(|c| c.change.kind() == ChangeKind::DesiredCount), "ECS stops it, not a count");

        // 5. ECS stopped it: three healthy, the floor; the next old task
        // waits for the next new one.
        svc_mut(&mut o).tasks.remove(0);
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(410));
        assert!(p.changes.is_empty(), "{:#?}", p.changes);
        let message = deployment_hold(&p).message();
        assert!(message.contains("2 old task(s) keep serving") && message.contains("floor 3"), "{message}");
    }

    #[test]
    fn a_declared_min_healthy_lets_old_tasks_go_before_new_ones_run() {
        // deploy/'s maximumPercent of 100 leaves no room for a new task
        // before an old one stops: the binding's minHealthy says how many
        // may go.
        let mut s = service(TaskCount::Fixed(3));
        s.target_groups[0].min_healthy = Some(2);
        let d = desired_with(s);
        let o = deploying_world(&d, 3);
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(deregistered(&p), vec!["i-1".to_string()], "{:#?}", p.changes);
    }

    #[test]
    fn more_old_tasks_go_at_once_when_the_floor_allows() {
        let mut s = service(TaskCount::Fixed(2));
        s.budget.max_deregistrations_per_pass = 10;
        let d = desired_with(s);
        let mut o = deploying_world(&d, 2);
        // maximumPercent 200: both replacements run and are healthy.
        svc_mut(&mut o).tasks.extend([new_task(3), new_task(4)]);
        tg_mut(&mut o).targets.extend([target(3, TargetHealth::Healthy), target(4, TargetHealth::Healthy)]);
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(deregistered(&p), vec!["i-1".to_string(), "i-2".to_string()], "{:#?}", p.changes);
    }

    #[test]
    fn a_deployment_whose_new_tasks_never_get_healthy_stops_at_the_floor_and_is_reported() {
        let d = desired_with(service(TaskCount::Fixed(3)));
        let mut o = deploying_world(&d, 3);
        // The first old task is gone; its replacement runs but fails its
        // health checks.
        let svc = svc_mut(&mut o);
        svc.tasks.remove(0);
        svc.tasks.push(new_task(4));
        let targets = &mut tg_mut(&mut o).targets;
        targets.remove(0);
        targets.push(target(4, TargetHealth::Unhealthy));

        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(60));
        assert!(deregistered(&p).is_empty(), "{:#?}", p.changes);
        let unprotected = protection_changes(&p).into_iter().filter(|(_, minutes)| minutes.is_none()).count();
        assert_eq!(unprotected, 0, "{:#?}", p.changes);
        assert_eq!(deployment_hold(&p).kind(), HoldKind::Scaling, "not stalled yet");

        let later = t0() + crate::plan::drain::STALL_AFTER;
        let p = plan(&d, &o, p.memory, later);
        assert!(deregistered(&p).is_empty(), "never below the floor: {:#?}", p.changes);
        let hold = deployment_hold(&p);
        assert_eq!(hold.kind(), HoldKind::Safety, "{}", hold.message());
        assert!(hold.message().contains("stalled"), "{}", hold.message());
    }

    /// `deploying_world` as deploy/ runs it: maximumPercent 100, and the
    /// binding's `minHealthy: 1`, every old task deregistered as the floor allows.
    fn surge_world(count: u32, min_healthy: Option<u32>) -> (DesiredState, Observed) {
        let mut s = service(TaskCount::Fixed(count));
        s.target_groups[0].min_healthy = min_healthy;
        s.budget.max_deregistrations_per_pass = 10;
        let d = desired_with(s);
        let mut o = deploying_world(&d, count);
        svc_mut(&mut o).maximum_percent = Some(100);
        (d, o)
    }

    fn count_changes(p: &Plan) -> Vec<(u32, u32)> {
        p.changes
            .iter()
            .filter_map(|c| match c.change {
                Change::SetDesiredCount { from, to, .. } => Some((from, to)),
                _ => None,
            })
            .collect()
    }

    fn marks(p: &Plan) -> Vec<Vec<(u32, u32)>> {
        p.changes
            .iter()
            .filter_map(|c| match &c.change {
                Change::MarkSurge { mark, .. } => Some(mark.counts.clone()),
                _ => None,
            })
            .collect()
    }

    /// What ECS reads back once the plan's mark and count are applied.
    fn apply_surge(o: &mut Observed, p: &Plan) {
        let svc = svc_mut(o);
        for c in &p.changes {
            match &c.change {
                Change::MarkSurge { mark, .. } => svc.surge_mark = Some(mark.clone()),
                Change::SetDesiredCount { to, .. } => svc.desired_count = *to,
                _ => {}
            }
        }
    }

    #[test]
    fn a_deployment_without_room_surges_by_the_floor_and_hands_every_old_task_over_in_one_drain() {
        let (d, mut o) = surge_world(4, Some(1));

        // 1. ECS has no room: the count rises by the one task the floor
        // holds back, marked first; three old tasks leave at once.
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(count_changes(&p), vec![(4, 5)], "{:#?}", p.changes);
        assert_eq!(marks(&p), vec![vec![(5, 4), (4, 4)]]);
        let mark_at = p.changes.iter().position(|c| c.change.kind() == ChangeKind::SurgeMark);
        let count_at = p.changes.iter().position(|c| c.change.kind() == ChangeKind::DesiredCount);
        assert!(mark_at < count_at, "the mark is written before the count it describes");
        assert_eq!(deregistered(&p), vec!["i-1".to_string(), "i-2".to_string(), "i-3".to_string()]);
        assert_eq!(p.services[0].surge, 1);
        let message = deployment_hold(&p).message();
        assert!(message.contains("desired count raised by 1 for the new task(s) meanwhile"), "{message}");
        apply_surge(&mut o, &p);
        let mem = p.memory;

        // 2. Applied, the surge reads back from the mark: nothing more to
        // change, whatever the memory (a restart).
        for memory in [mem.clone(), Memory::default()] {
            let p = plan(&d, &o, memory, t0() + Duration::from_secs(10));
            assert!(count_changes(&p).is_empty(), "the surge is not applied twice: {:#?}", p.changes);
            assert_eq!(p.services[0].target, Some(4));
        }

        // 3. The new task is healthy: the last old task leaves too, before
        // the first three have drained (one drain in all).
        let svc = svc_mut(&mut o);
        svc.tasks.push(ObservedTask { protected_until: Some(t0() + Duration::from_secs(3600)), ..new_task(5) });
        let targets = &mut tg_mut(&mut o).targets;
        for t in targets.iter_mut().take(3) {
            t.health = TargetHealth::Draining;
        }
        targets.push(target(5, TargetHealth::Healthy));
        let p = plan(&d, &o, mem, t0() + Duration::from_secs(60));
        assert_eq!(deregistered(&p), vec!["i-4".to_string()], "{:#?}", p.changes);
        assert!(count_changes(&p).is_empty(), "{:#?}", p.changes);

        // 4. The first three drained: released, the surge stays (one old
        // task is still protected), so ECS replaces them.
        tg_mut(&mut o).targets.retain(|t| t.target.id == "i-4" || t.target.id == "i-5");
        tg_mut(&mut o).targets[0].health = TargetHealth::Draining;
        let lag = crate::desired::DEFAULT_PROPAGATION_LAG;
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(320));
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(320) + lag);
        assert_eq!(protection_changes(&p), vec![(vec![arn(1), arn(2), arn(3)], None)], "{:#?}", p.changes);
        assert!(count_changes(&p).is_empty(), "{:#?}", p.changes);
        let svc = svc_mut(&mut o);
        svc.tasks.retain(|t| t.arn != arn(1) && t.arn != arn(2) && t.arn != arn(3));
        for n in 6..=8 {
            svc.tasks.push(ObservedTask { protected_until: Some(t0() + Duration::from_secs(3600)), ..new_task(n) });
        }
        tg_mut(&mut o).targets.extend((6..=8).map(|n| target(n, TargetHealth::Healthy)));

        // 5. The last one drained: released and the surge off in the same
        // plan, the release first, the mark before the count.
        tg_mut(&mut o).targets.retain(|t| t.target.id != "i-4");
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(380));
        let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(380) + lag);
        assert_eq!(protection_changes(&p), vec![(vec![arn(4)], None)], "{:#?}", p.changes);
        assert_eq!(count_changes(&p), vec![(5, 4)], "{:#?}", p.changes);
        assert_eq!(marks(&p), vec![vec![(4, 4), (5, 4)]]);
        let kinds: Vec<ChangeKind> = p.changes.iter().map(|c| c.change.kind()).collect();
        assert_eq!(kinds, vec![ChangeKind::TaskProtection, ChangeKind::SurgeMark, ChangeKind::DesiredCount]);
        assert_eq!(p.services[0].surge, 0);
    }

    #[test]
    fn a_deployment_that_replaces_one_mid_surge_inherits_its_surge() {
        let (d, mut o) = surge_world(4, Some(1));
        let p = plan(&d, &o, Memory::default(), t0());
        apply_surge(&mut o, &p);
        // A second deployment starts: every task so far is older.
        svc_mut(&mut o).primary_deployment = Some("ecs-svc/newer".into());
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(10));
        assert!(count_changes(&p).is_empty(), "the surge is not applied twice: {:#?}", p.changes);
        assert_eq!((p.services[0].target, p.services[0].surge), (Some(4), 1));
        // An earlier deployment's older count means nothing: the count
        // ballast set last is the one the mark stands for.
        svc_mut(&mut o).desired_count = 4;
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(20));
        assert_eq!(count_changes(&p), vec![(4, 5)], "{:#?}", p.changes);
    }

    #[test]
    fn no_surge_where_ecs_has_room_or_no_old_task_is_protected() {
        // maximumPercent 200: ECS starts the new tasks itself.
        let (d, mut o) = surge_world(4, Some(1));
        svc_mut(&mut o).maximum_percent = Some(200);
        assert!(count_changes(&plan(&d, &o, Memory::default(), t0())).is_empty());
        // Unknown: ECS's default (200) is the likelier.
        svc_mut(&mut o).maximum_percent = None;
        assert!(count_changes(&plan(&d, &o, Memory::default(), t0())).is_empty());
        // No old task is protected: ECS may stop them, it needs no room.
        svc_mut(&mut o).maximum_percent = Some(100);
        for t in &mut svc_mut(&mut o).tasks {
            t.protected_until = None;
        }
        let p = plan(&d, &o, Memory::default(), t0());
        assert!(count_changes(&p).is_empty(), "{:#?}", p.changes);
    }

    #[test]
    fn the_surge_is_as_large_as_the_floor_holds_back() {
        // No minHealthy: the floor is the count, every old task waits for a
        // new one, so as many new ones start at once.
        let (d, o) = surge_world(3, None);
        assert_eq!(count_changes(&plan(&d, &o, Memory::default(), t0())), vec![(3, 6)]);
        let (d, o) = surge_world(4, Some(2));
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(count_changes(&p), vec![(4, 6)]);
        assert_eq!(deregistered(&p).len(), 2, "{:#?}", p.changes);
        // minHealthy 0 still keeps one healthy target.
        let (d, o) = surge_world(4, Some(0));
        assert_eq!(count_changes(&plan(&d, &o, Memory::default(), t0())), vec![(4, 5)]);
    }

    #[test]
    fn a_count_change_during_the_surge_keeps_it_and_is_marked() {
        let (mut d, mut o) = surge_world(4, Some(1));
        let p = plan(&d, &o, Memory::default(), t0());
        apply_surge(&mut o, &p);
        // An edit to 6 during the deployment: the surge comes on top, and
        // the mark names the new base; a restart reads it back.
        d.services[0].tasks = TaskCount::Fixed(6);
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(10));
        assert_eq!(count_changes(&p), vec![(5, 7)], "{:#?}", p.changes);
        assert_eq!(marks(&p), vec![vec![(7, 6), (5, 4)]]);
        apply_surge(&mut o, &p);
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(20));
        assert!(count_changes(&p).is_empty(), "{:#?}", p.changes);
        assert_eq!(p.services[0].target, Some(6));

        // A range: the base count (6, not ECS's 7) is what it keeps.
        d.services[0].tasks = TaskCount::Range { min: 2, max: 10 };
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(30));
        assert!(count_changes(&p).is_empty(), "{:#?}", p.changes);

        // The mark written, the count write failed: the count is still the
        // one the mark names second, and reads as its base.
        svc_mut(&mut o).desired_count = 5;
        let p = plan(&d, &o, Memory::default(), t0() + Duration::from_secs(40));
        assert_eq!(p.services[0].target, Some(4), "{:#?}", p.services);
    }

    #[test]
    fn a_deployment_gets_instances_for_its_new_tasks_and_its_surge_is_not_cut() {
        let cap = capacity(
            "ecsAutoScalingGroup",
            vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }],
            2,
        );
        let mut s = service(TaskCount::Fixed(4));
        s.target_groups[0].min_healthy = Some(1);
        let (d, mut o) = with_group(s, &cap, 4, 4, &["subnet-a"]);
        let svc = svc_mut(&mut o);
        svc.protection = ProtectionRead::Read;
        svc.deploying = true;
        svc.primary_deployment = Some("ecs-svc/new".into());
        svc.maximum_percent = Some(100);
        for t in &mut svc.tasks {
            t.started_by = Some("ecs-svc/old".into());
            t.protected_until = Some(t0() + Duration::from_secs(3600));
        }
        let p = plan(&d, &o, Memory::default(), t0());
        let changes: Vec<String> = p.changes.iter().map(|c| c.change.to_string()).collect();
        assert!(changes.iter().any(|c| c.contains("desired capacity 4 -> 5")), "{changes:#?}");
        assert_eq!(count_changes(&p), vec![(4, 5)], "{changes:#?}");
        // At the group's MaxSize: still surged (ECS places it if a task
        // stops), never cut to a count the mark does not describe.
        o.groups.get_mut(&cap.group).unwrap().as_mut().unwrap().max_size = 4;
        let p = plan(&d, &o, Memory::default(), t0());
        assert_eq!(count_changes(&p), vec![(4, 5)], "{:#?}", p.changes);
        assert_eq!(marks(&p), vec![vec![(5, 4), (4, 4)]]);

        // maximumPercent 200: ECS starts the new task itself, no count
        // changes, but the instance for it is planned (found by a variant
        // of the rolling deployment: without it the hand-over took two
        // drains, as ECS had nowhere to place the new task).
        o.groups.get_mut(&cap.group).unwrap().as_mut().unwrap().max_size = 10;
        svc_mut(&mut o).maximum_percent = Some(200);
        let p = plan(&d, &o, Memory::default(), t0());
        let changes: Vec<String> = p.changes.iter().map(|c| c.change.to_string()).collect();
        assert!(changes.iter().any(|c| c.contains("desired capacity 4 -> 5")), "{changes:#?}");
        assert!(count_changes(&p).is_empty() && marks(&p).is_empty(), "{changes:#?}");
        assert_eq!((p.services[0].surge, p.services[0].by_ecs), (0, 1));
    }
}

/// A world with ballast's termination hook on an always-on group of
/// `instances` instances holding `tasks` tasks (one each), ballast managing
/// their protection, and instance `i-{terminating}` in `Terminating:Wait`.
fn terminating_world(s: Service, tasks: u32, instances: u32, terminating: usize) -> (DesiredState, Observed, GroupId) {
    let hook = TerminationHook { heartbeat_timeout: Duration::from_secs(600), default_result: "CONTINUE".into() };
    let cap = Capacity {
        termination_hook: Some(hook.clone()),
        ..capacity(
            "ecsAutoScalingGroup",
            vec![Zone { subnet: "subnet-a".into(), zone: None, mode: ZoneMode::AlwaysOn }],
            2,
        )
    };
    let (d, mut o) = with_group(s, &cap, tasks, instances, &["subnet-a"]);
    // ballast manages the tasks' protection: the service's own drain runs.
    svc_mut(&mut o).protection = ProtectionRead::Read;
    let g = o.groups.get_mut(&cap.group).unwrap().as_mut().unwrap();
    g.termination_hook = Some(hook);
    let i = &mut g.instances[terminating - 1];
    i.lifecycle_state = Lifecycle::TerminatingWait;
    let arn = format!("arn:ci/{terminating}");
    i.container_instance = Some(crate::observed::ContainerInstance { arn, draining: false });
    (d, o, cap.group)
}

/// Issue 15 item 3: an instance in `Terminating:Wait` (ballast's hook) is
/// drained step by step: its task's target out (with a heartbeat), then,
/// after the propagation lag, DRAINING; the lifecycle action completes only
/// once no task is left. The replacement ECS starts meanwhile is registered,
/// not taken for a scale-in.
#[test]
fn a_terminating_instance_is_drained_then_completed() {
    // A fourth instance, where ECS places the replacement.
    let (d, mut o, gid) = terminating_world(service(TaskCount::Fixed(3)), 3, 4, 3);
    let of = |p: &Plan| p.changes.iter().map(|c| c.change.to_string()).collect::<Vec<_>>();
    let terminating = |p: &Plan| p.holds.iter().any(|h| matches!(h.reason, HoldReason::Terminating(_)));

    // First sight: the target leaves, a heartbeat; no DRAINING, no completion.
    let p = plan(&d, &o, Memory::default(), t0());
    let changes = of(&p);
    assert!(changes.iter().any(|c| c.contains("deregister i-3:80")), "{changes:#?}");
    assert!(changes.iter().any(|c| c.contains("record a heartbeat for terminating instance i-3")), "{changes:#?}");
    assert!(!changes.iter().any(|c| c.contains("DRAINING") || c.contains("complete")), "{changes:#?}");
    assert!(terminating(&p), "{:#?}", p.holds);

    // The target is gone, and ECS starts a replacement: it is registered,
    // not chosen for a scale-in; DRAINING waits for the propagation lag.
    tg_mut(&mut o).targets.retain(|t| t.target.id != "i-3");
    svc_mut(&mut o)
        .tasks
        .push(ObservedTask { started_at: Some(t0() + Duration::from_secs(10)), ..task(4, TaskStatus::Running) });
    let p = plan(&d, &o, p.memory, t0() + Duration::from_secs(15));
    let changes = of(&p);
    assert!(changes.iter().any(|c| c.contains("register i-4:80")), "{changes:#?}");
    assert!(!changes.iter().any(|c| c.contains("desired count")), "{changes:#?}");
    assert!(!changes.iter().any(|c| c.contains("DRAINING") || c.contains("complete")), "{changes:#?}");

    let later = t0() + Duration::from_secs(15) + crate::desired::DEFAULT_PROPAGATION_LAG;
    let p = plan(&d, &o, p.memory, later);
    let changes = of(&p);
    assert!(changes.iter().any(|c| c.contains("set the container instance on i-3 to DRAINING")), "{changes:#?}");
    assert!(!changes.iter().any(|c| c.contains("complete")), "the task is still there: {changes:#?}");

    // ECS stopped the task: the action completes.
    svc_mut(&mut o).tasks.retain(|t| t.instance_id.as_deref() != Some("i-3"));
    let g = o.groups.get_mut(&gid).unwrap().as_mut().unwrap();
    g.instances[2].tasks = Some(0);
    g.instances[2].container_instance.as_mut().unwrap().draining = true;
    let p = plan(&d, &o, p.memory, later + Duration::from_secs(15));
    let changes = of(&p);
    assert!(changes.iter().any(|c| c.contains("complete the lifecycle action of i-3 (CONTINUE)")), "{changes:#?}");
    assert!(!terminating(&p), "{:#?}", p.holds);
}

/// A terminating instance's task that the healthy floor keeps in service
/// (no replacement yet) still carries traffic: its scale-in protection is
/// renewed before it runs out, so that no deployment or other scale-in
/// stops it while routed; the instance is not set to DRAINING meanwhile.
/// (A held-out scenario lost requests this way: the floor held the task for
/// over an hour, its protection lapsed, and a deployment stopped it.)
#[test]
fn a_terminating_instance_task_the_floor_keeps_stays_protected() {
    let mut s = service(TaskCount::Fixed(2));
    for b in &mut s.target_groups {
        b.min_healthy = Some(2);
    }
    let (d, mut o, _) = terminating_world(s, 2, 3, 2);
    // Both tasks protected for another 20 minutes: below the renewal threshold.
    for t in &mut svc_mut(&mut o).tasks {
        t.protected_until = Some(t0() + Duration::from_secs(20 * 60));
    }
    let p = plan(&d, &o, Memory::default(), t0());
    let protected: Vec<String> = p
        .changes
        .iter()
        .filter_map(|c| match &c.change {
            Change::SetTaskProtection { tasks, minutes: Some(_), .. } => Some(tasks.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    let on_terminating =
        svc_mut(&mut o).tasks.iter().find(|t| t.instance_id.as_deref() == Some("i-2")).unwrap().arn.clone();
    assert!(protected.contains(&on_terminating), "{:#?}", p.changes);
    let changes: Vec<String> = p.changes.iter().map(|c| c.change.to_string()).collect();
    assert!(!changes.iter().any(|c| c.contains("deregister i-2")), "the floor keeps it: {changes:#?}");
    assert!(!changes.iter().any(|c| c.contains("DRAINING") || c.contains("complete")), "{changes:#?}");
}
