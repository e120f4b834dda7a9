//! Tests of the simulated cloud, in virtual time on a [`ManualClock`].

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::load::evaluate;
use super::*;
use crate::cloud::ManualClock;
use crate::desired::{
    Capacity, DesiredState, GroupId, MissingData, Origin, Ownership, Service, ServiceBudget, ServiceId,
    ServiceTakeOver, TargetGroupBinding, TargetGroupId, TargetGroupRef, TargetType, TaskCount, TasksPerInstance, Zone,
};
use crate::observed::{
    AlarmDefinition, AlarmState, Lifecycle, ObservedService, ResourceError, ServiceStatus, Target, TargetGroupType,
    TargetHealth, TaskStatus,
};

/// Traffic and the ECS and NLB behaviours that drop requests.
#[path = "tests_traffic.rs"]
mod traffic;

const REGION: &str = "us-east-1";
const CLUSTER: &str = "appCluster";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn origin() -> Origin {
    Origin { file: PathBuf::from("test.yaml"), line: 1 }
}

fn sid(name: &str) -> ServiceId {
    ServiceId { region: REGION.to_string(), cluster: CLUSTER.to_string(), service: name.to_string() }
}

fn gid() -> GroupId {
    GroupId { region: REGION.to_string(), name: "ecsAutoScalingGroup".to_string() }
}

fn tg(name: &str) -> TargetGroupId {
    TargetGroupId { region: REGION.to_string(), target_group: TargetGroupRef::Name(name.to_string()) }
}

fn binding(tg_name: &str, port: u16, target_type: TargetType) -> TargetGroupBinding {
    TargetGroupBinding {
        target_group: tg(tg_name),
        container_name: "appContainer".to_string(),
        container_port: port,
        target_type,
        ownership: Ownership::Shared,
        min_healthy: None,
        propagation_lag: crate::desired::DEFAULT_PROPAGATION_LAG,
    }
}

fn service(name: &str, count: u32, target_groups: Vec<TargetGroupBinding>) -> Service {
    Service {
        name: name.to_string(),
        origin: origin(),
        id: sid(name),
        suspend: false,
        tasks: TaskCount::Fixed(count),
        target_groups,
        scaling: None,
        budget: ServiceBudget::default(),
        take_over: ServiceTakeOver::default(),
    }
}

fn capacity(min: u32, max: u32, tasks_per_instance: TasksPerInstance) -> Capacity {
    Capacity {
        name: "capacity".to_string(),
        origin: origin(),
        group: gid(),
        cluster: CLUSTER.to_string(),
        suspend: false,
        min_instances: min,
        max_instances: max,
        tasks_per_instance,
        headroom: 0,
        scale_in_cooldown: secs(600),
        zones: vec![
            Zone::always_on("subnet-a", "us-east-1a"),
            Zone::always_on("subnet-b", "us-east-1b"),
            Zone::on_demand("subnet-c", "us-east-1c", 4),
        ],
        max_change_per_pass: 2,
        take_over_managed_scaling: false,
        suspend_az_rebalance: true,
        termination_hook: None,
    }
}

/// The article's system: appService with static ports 80 and 8000 behind
/// two instance target groups, on a group of up to 10 instances that each
/// have room for four tasks by size (but static ports allow one).
fn app(count: u32) -> DesiredState {
    DesiredState {
        services: vec![service(
            "appService",
            count,
            vec![
                binding("frontendTargetGroup", 80, TargetType::Instance),
                binding("backendTargetGroup", 8000, TargetType::Instance),
            ],
        )],
        capacities: vec![capacity(1, 10, TasksPerInstance::Resources { cpu: 1024, memory: 2048 })],
    }
}

struct Fixture {
    sim: SimCloud,
    clock: Arc<ManualClock>,
}

impl Fixture {
    fn new(desired: &DesiredState, drift: bool, config: SimConfig) -> Self {
        Self::seeded(desired, drift, config, 7)
    }

    fn seeded(desired: &DesiredState, drift: bool, config: SimConfig, seed: u64) -> Self {
        let clock = Arc::new(ManualClock::new());
        let sim = SimCloud::from_desired(desired, drift, clock.clone(), seed, Arc::new(Metrics::new()), config);
        Fixture { sim, clock }
    }

    fn empty() -> Self {
        let clock = Arc::new(ManualClock::new());
        let sim = SimCloud::new(clock.clone(), 7, Arc::new(Metrics::new()), SimConfig::default());
        Fixture { sim, clock }
    }

    /// Move the clock and let the world catch up.
    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.sim.tick();
    }

    fn svc(&self, name: &str) -> ObservedService {
        self.sim.service(&sid(name)).expect("service exists")
    }

    fn live_tasks(&self, name: &str) -> Vec<crate::observed::ObservedTask> {
        self.svc(name).tasks.into_iter().filter(|t| t.desired_status == TaskStatus::Running).collect()
    }

    /// The target's health in the group after `by` of virtual time.
    fn health_after(&self, by: Duration, tg_name: &str, target: &Target) -> Option<TargetHealth> {
        self.advance(by);
        self.health(tg_name, target)
    }

    fn health(&self, tg_name: &str, target: &Target) -> Option<TargetHealth> {
        self.sim.target_group(&tg(tg_name))?.targets.into_iter().find(|t| &t.target == target).map(|t| t.health)
    }

    async fn apply(&self, change: Change) -> Result<(), CloudError> {
        self.sim.apply(&change).await
    }
}

fn cpu_alarm(name: &str, threshold: f64, m: u32, n: u32, missing: MissingData) -> AlarmDefinition {
    AlarmDefinition {
        evaluation_periods: n,
        datapoints_to_alarm: m,
        missing_data: missing,
        description: "test".to_string(),
        ..AlarmDefinition::service_cpu(name, &sid("appService"), threshold)
    }
}

fn put_alarm(alarm: AlarmDefinition) -> Change {
    Change::PutAlarm { region: REGION.to_string(), alarm, create: true }
}

// ---- ECS tasks -------------------------------------------------------------

#[test]
fn tasks_start_and_stop_after_their_delays_and_stay_visible_for_an_hour() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(60));
    let t0 = f.sim.now();

    f.sim.set_desired_count(&sid("appService"), 3).unwrap();
    let svc = f.svc("appService");
    assert_eq!((svc.running_count, svc.pending_count), (2, 1));
    let new = svc.tasks.iter().find(|t| t.last_status == TaskStatus::Pending).unwrap().arn.clone();

    f.advance(secs(14));
    assert_eq!(f.svc("appService").pending_count, 1, "still starting after 14 s");
    f.advance(secs(1));
    let svc = f.svc("appService");
    assert_eq!((svc.running_count, svc.pending_count), (3, 0));
    let task = svc.tasks.iter().find(|t| t.arn == new).unwrap();
    assert_eq!(task.started_at, Some(t0 + secs(15)));

    // Scale-in stops the newest task.
    f.sim.set_desired_count(&sid("appService"), 2).unwrap();
    let task = f.svc("appService").tasks.into_iter().find(|t| t.arn == new).unwrap();
    assert_eq!((task.last_status, task.desired_status), (TaskStatus::Stopping, TaskStatus::Stopped));
    assert_eq!(f.svc("appService").running_count, 2);
    f.advance(secs(9));
    let status = |f: &Fixture| f.svc("appService").tasks.into_iter().find(|t| t.arn == new).map(|t| t.last_status);
    assert_eq!(status(&f), Some(TaskStatus::Stopping));
    f.advance(secs(1));
    assert_eq!(status(&f), Some(TaskStatus::Stopped));
    f.advance(secs(3599));
    assert_eq!(status(&f), Some(TaskStatus::Stopped), "stopped tasks stay visible for an hour");
    f.advance(secs(1));
    assert_eq!(status(&f), None);
}

#[test]
fn static_ports_allow_one_task_per_instance_and_unplaced_tasks_wait_for_room() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    assert_eq!(f.sim.group(&gid()).unwrap().instances.len(), 2);

    f.sim.set_desired_count(&sid("appService"), 3).unwrap();
    assert_eq!(f.live_tasks("appService").len(), 2, "both instances already use ports 80 and 8000");
    assert!(
        f.sim.service_events(&sid("appService")).iter().any(|e| e.contains("unable to place a task")),
        "ECS records why the task was not placed"
    );

    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(59));
    assert_eq!(f.live_tasks("appService").len(), 2, "the new instance is still launching");
    f.advance(secs(1));
    let live = f.live_tasks("appService");
    assert_eq!(live.len(), 3, "placed as soon as the instance is in service");
    let instances: std::collections::BTreeSet<_> = live.iter().map(|t| t.instance_id.clone()).collect();
    assert_eq!(instances.len(), 3, "one task per instance");
    f.advance(secs(15));
    assert_eq!(f.svc("appService").running_count, 3);
}

#[test]
fn awsvpc_tasks_pack_by_cpu_and_memory() {
    let mut desired = app(1);
    desired.services = vec![service("ipService", 9, vec![binding("ipTargets", 8080, TargetType::Ip)])];
    // 1024 CPU / 256 and 2048 MiB / 512: four tasks per instance.
    let f = Fixture::new(&desired, false, SimConfig::default());
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.instances.len(), 3, "nine tasks need three instances of four");
    let live = f.live_tasks("ipService");
    assert_eq!(live.len(), 9);
    let ips: std::collections::BTreeSet<_> = live.iter().map(|t| t.private_ip.clone().unwrap()).collect();
    assert_eq!(ips.len(), 9, "each task has its own address");
    assert!(ips.iter().all(|ip| ip.starts_with("10.0.2.")));
    let targets = f.sim.target_group(&tg("ipTargets")).unwrap();
    assert_eq!(targets.target_type, TargetGroupType::Ip);
    assert!(targets.targets.iter().all(|t| t.target.port == 8080 && t.health == TargetHealth::Healthy));
    assert_eq!(targets.targets.len(), 9);
}

#[test]
fn deployment_replaces_tasks_one_at_a_time_without_losing_capacity() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(60));
    let old: Vec<String> = f.live_tasks("appService").into_iter().map(|t| t.arn).collect();

    f.sim.deploy(&sid("appService")).unwrap();
    assert!(f.svc("appService").deploying);
    let mut most_live = 0;
    for _ in 0..300 {
        f.advance(secs(1));
        let svc = f.svc("appService");
        let live = svc.tasks.iter().filter(|t| t.desired_status == TaskStatus::Running).count();
        most_live = most_live.max(live);

        assert!(svc.running_count >= 2, "minimum healthy 100 %: never fewer than 2 running");
        if !svc.deploying {
            break;
        }
    }
    let svc = f.svc("appService");
    assert!(!svc.deploying, "the rollout finishes");
    assert_eq!(most_live, 3, "one extra task at a time");
    let live: Vec<String> = f.live_tasks("appService").into_iter().map(|t| t.arn).collect();
    assert_eq!(live.len(), 2);
    assert!(live.iter().all(|arn| !old.contains(arn)), "every task was replaced");
}

// ---- target health -----------------------------------------------------------

#[tokio::test]
async fn targets_go_initial_healthy_unhealthy_and_drain() {
    let config = SimConfig { deregistration_delay: secs(60), ..SimConfig::default() };
    let f = Fixture::new(&app(2), false, config);
    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(60));
    f.sim.set_desired_count(&sid("appService"), 3).unwrap();
    f.advance(secs(15));
    let task = f.live_tasks("appService").into_iter().max_by_key(|t| t.started_at).unwrap();
    let target = Target { id: task.instance_id.clone().unwrap(), port: task.host_port("appContainer", 80).unwrap() };
    assert_eq!(target.port, 80);
    assert_eq!(f.health("frontendTargetGroup", &target), None, "not registered yet");

    let arn = f.sim.target_group_arn(&tg("frontendTargetGroup")).unwrap();
    let register =
        Change::RegisterTargets { region: REGION.into(), target_group_arn: arn.clone(), targets: vec![target.clone()] };
    f.apply(register.clone()).await.unwrap();
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Initial));
    assert_eq!(f.health_after(secs(19), "frontendTargetGroup", &target), Some(TargetHealth::Initial));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), Some(TargetHealth::Healthy));

    // Registering again changes nothing (no return to initial).
    f.apply(register).await.unwrap();
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Healthy));

    // The task stops: unhealthy after two failed checks; ECS places the
    // replacement on the same instance once the port is free, and the
    // target recovers.
    f.sim.stop_task(&task.arn).unwrap();
    assert_eq!(f.health_after(secs(19), "frontendTargetGroup", &target), Some(TargetHealth::Healthy));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), Some(TargetHealth::Unhealthy));
    // Stopped at 10 s, replacement running at 25 s, healthy at 45 s.
    assert_eq!(f.health_after(secs(24), "frontendTargetGroup", &target), Some(TargetHealth::Unhealthy));
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), Some(TargetHealth::Healthy));

    let deregister = Change::DeregisterTargets {
        region: REGION.into(),
        target_group_arn: arn.clone(),
        targets: vec![target.clone()],
    };
    f.apply(deregister.clone()).await.unwrap();
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Draining));
    f.advance(secs(30));
    f.apply(deregister).await.unwrap();
    f.advance(secs(29));
    assert_eq!(
        f.health("frontendTargetGroup", &target),
        Some(TargetHealth::Draining),
        "deregistering again does not restart the delay"
    );
    assert_eq!(f.health_after(secs(1), "frontendTargetGroup", &target), None, "gone after the deregistration delay");

    // Deregistering an unknown target is a no-op, like AWS.
    let before = f.sim.target_group(&tg("frontendTargetGroup")).unwrap();
    f.apply(Change::DeregisterTargets {
        region: REGION.to_string(),
        target_group_arn: arn,
        targets: vec![Target { id: "i-0000000000000000".to_string(), port: 80 }],
    })
    .await
    .unwrap();
    assert_eq!(f.sim.target_group(&tg("frontendTargetGroup")).unwrap(), before);
}

#[test]
fn a_killed_instance_turns_its_targets_unhealthy_and_is_replaced() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let victim = f.sim.group(&gid()).unwrap().instances[0].id.clone();
    let target = Target { id: victim.clone(), port: 8000 };
    assert_eq!(f.health("backendTargetGroup", &target), Some(TargetHealth::Healthy));

    f.sim.kill_instance(&victim).unwrap();
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.desired_capacity, 2, "killing is not scaling in");
    let dead = group.instances.iter().find(|i| i.id == victim).unwrap();
    assert_eq!((&dead.lifecycle_state, dead.healthy), (&Lifecycle::Terminating, false));
    assert_eq!(group.instances.iter().filter(|i| i.is_active()).count(), 2, "a replacement launches at once");
    assert_eq!(f.live_tasks("appService").len(), 1, "its task was lost and cannot be placed yet");

    assert_eq!(f.health_after(secs(20), "backendTargetGroup", &target), Some(TargetHealth::Unhealthy));
    f.advance(secs(40));
    assert_eq!(f.live_tasks("appService").len(), 2, "replaced on the new instance");
    let group = f.sim.group(&gid()).unwrap();
    assert!(group.instances.iter().all(|i| i.id != victim), "terminated instances disappear");
}

// ---- Auto Scaling ------------------------------------------------------------

#[tokio::test]
async fn desired_capacity_stays_within_bounds_and_instances_take_the_launch_delay() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let set = |from, to| Change::SetDesiredCapacity { group: gid(), from, to };

    let err = f.apply(set(2, 11)).await.unwrap_err();
    assert!(matches!(err, CloudError::Rejected { operation: "SetDesiredCapacity", .. }), "{err}");
    assert!(f.apply(set(2, 0)).await.is_err(), "below min is rejected too");
    assert_eq!(f.sim.group(&gid()).unwrap().desired_capacity, 2);

    f.apply(set(2, 4)).await.unwrap();
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.desired_capacity, 4);
    let pending: Vec<_> = group.instances.iter().filter(|i| i.lifecycle_state == Lifecycle::Pending).collect();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|i| i.tasks.is_none()), "not a container instance yet");
    let zones: Vec<&str> = group.instances.iter().map(|i| i.zone.as_str()).collect();
    assert_eq!(zones, ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"], "round-robin over subnets");

    f.advance(secs(59));
    assert_eq!(
        f.sim.group(&gid()).unwrap().instances.iter().filter(|i| i.lifecycle_state == Lifecycle::InService).count(),
        2
    );
    f.advance(secs(1));
    let group = f.sim.group(&gid()).unwrap();
    assert!(group.instances.iter().all(|i| i.lifecycle_state == Lifecycle::InService));
    assert_eq!(group.instances.iter().map(|i| i.tasks).collect::<Vec<_>>(), [Some(1), Some(1), Some(0), Some(0)]);

    // Scale-in terminates the newest instances.
    let newest: Vec<String> = group.instances[2..].iter().map(|i| i.id.clone()).collect();
    f.apply(set(4, 2)).await.unwrap();
    let group = f.sim.group(&gid()).unwrap();
    let terminating: Vec<String> =
        group.instances.iter().filter(|i| i.lifecycle_state == Lifecycle::Terminating).map(|i| i.id.clone()).collect();
    assert_eq!(terminating, newest);
    assert_eq!(f.live_tasks("appService").len(), 2, "the older instances keep their tasks");
}

#[tokio::test]
async fn terminate_instance_decrements_desired_but_not_below_min() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let ids: Vec<String> = f.sim.group(&gid()).unwrap().instances.iter().map(|i| i.id.clone()).collect();
    let terminate = |id: &str| Change::TerminateInstance { group: gid(), instance_id: id.to_string() };
    f.apply(terminate(&ids[1])).await.unwrap();
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.desired_capacity, 1);
    assert_eq!(group.instances.iter().filter(|i| i.is_active()).count(), 1, "not replaced");
    f.apply(terminate(&ids[1])).await.unwrap();
    assert_eq!(f.sim.group(&gid()).unwrap().desired_capacity, 1, "terminating twice is idempotent");

    let err = f.apply(terminate(&ids[0])).await.unwrap_err();
    assert!(matches!(err, CloudError::Rejected { .. }), "min is 1: {err}");
    let err = f.apply(terminate("i-0123456789abcdef0")).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)), "{err}");
}

#[tokio::test]
async fn changing_subnets_moves_instances_out_of_removed_subnets() {
    // AZ rebalancing launches the replacement before it terminates: with no
    // launch delay both happen at once (tests_asg covers the delay).
    let config = SimConfig { instance_launch_delay: Duration::ZERO, ..SimConfig::default() };
    let f = Fixture::new(&app(2), false, config);
    f.apply(Change::SetGroupSubnets {
        group: gid(),
        from: vec!["subnet-a".to_string(), "subnet-b".to_string()],
        to: vec!["subnet-a".to_string(), "subnet-c".to_string()],
    })
    .await
    .unwrap();
    let group = f.sim.group(&gid()).unwrap();
    assert_eq!(group.subnets, ["subnet-a", "subnet-c"]);
    let active: Vec<&str> = group.instances.iter().filter(|i| i.is_active()).map(|i| i.zone.as_str()).collect();
    assert_eq!(active, ["us-east-1a", "us-east-1c"], "the us-east-1b instance is replaced in us-east-1c");
    f.advance(secs(60));
    assert_eq!(f.live_tasks("appService").len(), 2);
}

// ---- load, CPU and alarms --------------------------------------------------------

#[test]
fn cpu_is_load_shared_by_running_tasks_averaged_over_the_period() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let id = sid("appService");
    let start = f.sim.now();
    assert_eq!(f.sim.cpu(&id), None, "no complete period yet");

    f.sim.set_load(&id, 100.0).unwrap();
    f.advance(secs(60));
    let sample = f.sim.cpu(&id).unwrap();
    assert_eq!((sample.value, sample.at), (50.0, start), "100 rps over 2 tasks at 1 % per rps");

    // Half a period at 50 %, half at 100 % (300 rps would be 150 %: capped).
    f.advance(secs(30));
    f.sim.set_load(&id, 300.0).unwrap();
    f.advance(secs(30));
    let sample = f.sim.cpu(&id).unwrap();
    assert_eq!((sample.value, sample.at), (75.0, start + secs(60)));

    // Stopping tasks serve nothing: no running task, no datapoint.
    f.sim.set_desired_count(&id, 0).unwrap();
    f.advance(secs(600));
    assert_eq!(f.sim.cpu(&id).unwrap().at, start + secs(60), "no datapoint after the tasks stopped");
}

/// The CPU read is reused within a metric period, unless an alarm on the
/// service's CPU changed state since: it fired on a newer datapoint, which
/// a decision must size its step from (BENCHMARKS.md, issue 17's goals).
#[tokio::test]
async fn a_reused_cpu_read_is_read_again_once_an_alarm_on_it_changed_state() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let id = sid("appService");
    let start = f.sim.now();
    f.apply(put_alarm(cpu_alarm("high", 70.0, 1, 1, MissingData::Missing))).await.unwrap();
    f.sim.set_load(&id, 100.0).unwrap(); // 50 % per task
    let scope = |now| Scope {
        alarms: vec![(REGION.to_string(), "high".to_string())],
        cpu: vec![id.clone()],
        now: Some(now),
        ..Scope::default()
    };
    let cpu = |o: &Observed| o.cpu[&id].clone().unwrap().map(|s| (s.value, s.at));
    // The first datapoint (50 %) puts the alarm in OK; then the load doubles.
    f.advance(secs(60));
    f.sim.set_load(&id, 200.0).unwrap();
    f.advance(secs(50));
    f.sim.reset_calls();
    let o = f.sim.observe(&scope(f.sim.now())).await.unwrap();
    assert_eq!(cpu(&o), Some((50.0, start)));
    assert_eq!(f.sim.call_count("GetMetricData"), 1);
    f.advance(secs(5));
    let o = f.sim.observe(&scope(f.sim.now())).await.unwrap();
    assert_eq!(cpu(&o), Some((50.0, start)), "reused within the period");
    assert_eq!(f.sim.call_count("GetMetricData"), 1);

    // At the end of the period the alarm fires on the new datapoint, 10 s
    // after the read: 15 s after it, the CPU is read again.
    f.advance(secs(10));
    let o = f.sim.observe(&scope(f.sim.now())).await.unwrap();
    let alarm = o.alarms[&(REGION.to_string(), "high".to_string())].as_ref().unwrap();
    assert_eq!((alarm.state, alarm.state_updated), (AlarmState::Alarm, start + secs(120)));
    assert_eq!(cpu(&o), Some((100.0, start + secs(60))), "the datapoint the alarm fired on");
    assert_eq!(f.sim.call_count("GetMetricData"), 2);
    // Then reused again: the alarm has not changed since.
    f.advance(secs(15));
    let o = f.sim.observe(&scope(f.sim.now())).await.unwrap();
    assert_eq!(cpu(&o), Some((100.0, start + secs(60))));
    assert_eq!(f.sim.call_count("GetMetricData"), 2);
}

#[tokio::test]
async fn alarms_evaluate_m_of_n_and_reset_on_put() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let id = sid("appService");
    let start = f.sim.now();
    f.sim.set_load(&id, 160.0).unwrap(); // 80 % per task

    f.apply(put_alarm(cpu_alarm("high", 70.0, 2, 3, MissingData::Missing))).await.unwrap();
    let alarm = f.sim.alarm(REGION, "high").unwrap();
    assert_eq!((alarm.state, alarm.state_updated), (AlarmState::InsufficientData, start));

    f.advance(secs(60));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Ok, "1 of 2 breaching");
    f.advance(secs(60));
    let alarm = f.sim.alarm(REGION, "high").unwrap();
    assert_eq!((alarm.state, alarm.state_updated), (AlarmState::Alarm, start + secs(120)));

    f.sim.set_load(&id, 0.0).unwrap();
    f.advance(secs(60));
    let alarm = f.sim.alarm(REGION, "high").unwrap();
    assert_eq!(
        (alarm.state, alarm.state_updated),
        (AlarmState::Alarm, start + secs(120)),
        "still 2 of the last 3 breach; the timestamp moves only on change"
    );
    f.advance(secs(60));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Ok);

    // Re-putting resets to INSUFFICIENT_DATA; the next period decides again.
    f.advance(secs(30));
    f.apply(put_alarm(cpu_alarm("high", 70.0, 2, 3, MissingData::Missing))).await.unwrap();
    let alarm = f.sim.alarm(REGION, "high").unwrap();
    assert_eq!((alarm.state, alarm.state_updated), (AlarmState::InsufficientData, start + secs(270)));
    f.advance(secs(30));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Ok);

    // Another actor's threshold edit is a put too.
    f.sim.set_alarm_threshold(REGION, "high", -1.0).unwrap();
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::InsufficientData);
    f.advance(secs(60));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Alarm);

    // Without tasks there is no data: `missing` ends in INSUFFICIENT_DATA.
    f.sim.set_desired_count(&id, 0).unwrap();
    f.advance(secs(60 * 4));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::InsufficientData);
}

#[test]
fn set_alarm_state_holds_until_the_next_evaluation() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    f.sim.set_load(&sid("appService"), 20.0).unwrap();
    {
        let mut world = f.sim.world();
        world.put_alarm(REGION, cpu_alarm("high", 70.0, 1, 1, MissingData::Missing));
    }
    f.advance(secs(60));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Ok);
    f.advance(secs(10));
    f.sim.set_alarm_state(REGION, "high", AlarmState::Alarm).unwrap();
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Alarm);
    f.advance(secs(50));
    assert_eq!(f.sim.alarm(REGION, "high").unwrap().state, AlarmState::Ok);
}

#[test]
fn missing_data_treatments_follow_cloudwatch() {
    use AlarmState::*;
    let def = |missing| cpu_alarm("a", 50.0, 2, 3, missing);
    let x = Some(90.0); // breaching
    let o = Some(10.0); // not breaching
    let cases: [(&[Option<f64>], MissingData, AlarmState, AlarmState); 14] = [
        (&[x, x, o], MissingData::Missing, Ok, Alarm),
        (&[x, o, o], MissingData::Missing, Alarm, Ok),
        (&[x, None, None], MissingData::Missing, Ok, Ok),
        (&[x, x, None], MissingData::Missing, Ok, Alarm),
        (&[None, None, None], MissingData::Missing, Alarm, InsufficientData),
        (&[None, None, None], MissingData::Ignore, Alarm, Alarm),
        (&[None, None, None], MissingData::Ignore, Ok, Ok),
        (&[x, None, None], MissingData::Ignore, Alarm, Ok),
        (&[x, None, None], MissingData::Breaching, Ok, Alarm),
        (&[None, None, None], MissingData::Breaching, Ok, Alarm),
        (&[o, None, None], MissingData::Breaching, Ok, Alarm),
        (&[x, None, None], MissingData::NotBreaching, Alarm, Ok),
        (&[None, None, None], MissingData::NotBreaching, InsufficientData, Ok),
        (&[x, None, x], MissingData::NotBreaching, Ok, Alarm),
    ];
    for (windows, missing, current, expected) in cases {
        assert_eq!(
            evaluate(&def(missing), windows, current),
            expected,
            "{windows:?} with {missing:?} from {current:?}"
        );
    }
}

#[test]
fn longer_alarm_periods_average_the_metric_periods_inside() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let id = sid("appService");
    let mut def = cpu_alarm("slow", 60.0, 1, 1, MissingData::Missing);
    def.period_secs = 300;
    f.sim.world().put_alarm(REGION, def);
    // 4 minutes at 80 %, 1 at 0 %: the 5-minute average is 64 %.
    f.sim.set_load(&id, 160.0).unwrap();
    f.advance(secs(240));
    assert_eq!(
        f.sim.alarm(REGION, "slow").unwrap().state,
        AlarmState::InsufficientData,
        "not evaluated before the period ends"
    );
    f.sim.set_load(&id, 0.0).unwrap();
    f.advance(secs(60));
    assert_eq!(f.sim.alarm(REGION, "slow").unwrap().state, AlarmState::Alarm);
}

// ---- from_desired -------------------------------------------------------------

#[tokio::test]
async fn from_desired_builds_a_converged_world() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();

    let svc = observed.services[&sid("appService")].as_ref().unwrap();
    assert_eq!(svc.arn, "arn:aws:ecs:us-east-1:123456789012:service/appCluster/appService");
    assert_eq!(
        (&svc.status, svc.desired_count, svc.running_count, svc.pending_count),
        (&ServiceStatus::Active, 2, 2, 0)
    );
    assert!(!svc.deploying && !svc.scalable_target && svc.load_balancer_target_groups.is_empty());
    assert_eq!(svc.task_definition, "arn:aws:ecs:us-east-1:123456789012:task-definition/appService:1");
    assert_eq!(svc.tasks.len(), 2);
    for task in &svc.tasks {
        assert!(task.is_serving());
        assert!(task.arn.starts_with("arn:aws:ecs:us-east-1:123456789012:task/appCluster/"));
        assert_eq!(task.host_port("appContainer", 80), Some(80));
        assert_eq!(task.host_port("appContainer", 8000), Some(8000));
        assert!(task.instance_id.as_deref().is_some_and(|id| id.starts_with("i-") && id.len() == 19));
    }

    for (name, port) in [("frontendTargetGroup", 80), ("backendTargetGroup", 8000)] {
        let group = observed.target_groups[&tg(name)].as_ref().unwrap();
        assert!(
            group.arn.starts_with(&format!("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/{name}/")),
            "{}",
            group.arn
        );
        assert_eq!((&group.target_type, group.port), (&TargetGroupType::Instance, Some(port)));
        let mut targets: Vec<_> =
            group.targets.iter().map(|t| (t.target.id.clone(), t.target.port, t.health)).collect();
        targets.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        let mut expected: Vec<_> =
            svc.tasks.iter().map(|t| (t.instance_id.clone().unwrap(), port, TargetHealth::Healthy)).collect();
        expected.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        assert_eq!(targets, expected);
    }

    let group = observed.groups[&gid()].as_ref().unwrap();
    assert!(group.arn.starts_with("arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup:"));
    assert!(group.arn.ends_with(":autoScalingGroupName/ecsAutoScalingGroup"));
    assert_eq!((group.min_size, group.max_size, group.desired_capacity), (1, 10, 2));
    assert_eq!(group.subnets, ["subnet-a", "subnet-b"], "alwaysOn subnets only");
    assert!(
        group.instances.iter().all(|i| i.lifecycle_state == Lifecycle::InService && i.healthy && i.tasks == Some(1))
    );
    assert!(!group.managed_scaling);
    assert!(observed.alarms.is_empty());

    // Nothing is pending: an hour later the world is the same.
    f.advance(secs(3600));
    let later = f.sim.observe(&Scope::of(&desired)).await.unwrap();
    assert_eq!(later, observed);
}

#[tokio::test]
async fn drift_lowers_the_first_services_count_and_drops_one_target() {
    let mut desired = app(3);
    desired.services.push(service("otherService", 2, vec![binding("otherTargetGroup", 9000, TargetType::Instance)]));
    let f = Fixture::new(&desired, true, SimConfig::default());
    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();

    let app_svc = observed.services[&sid("appService")].as_ref().unwrap();
    assert_eq!((app_svc.desired_count, app_svc.running_count), (2, 2));
    let other = observed.services[&sid("otherService")].as_ref().unwrap();
    assert_eq!((other.desired_count, other.running_count), (2, 2), "only the first service drifts");

    let targets = |name: &str| observed.target_groups[&tg(name)].as_ref().unwrap().targets.len();
    assert_eq!(targets("frontendTargetGroup"), 1, "one of the two tasks is missing");
    assert_eq!(targets("backendTargetGroup"), 2);
    assert_eq!(targets("otherTargetGroup"), 2);

    let group = observed.groups[&gid()].as_ref().unwrap();
    assert_eq!(group.desired_capacity, 3, "room for the declared three tasks");

    // The drift is real work a controller can do: raise the count back.
    f.apply(Change::SetDesiredCount { service: sid("appService"), from: 2, to: 3 }).await.unwrap();
    f.advance(secs(15));
    assert_eq!(f.svc("appService").running_count, 3);
}

#[tokio::test]
async fn resources_the_world_lacks_are_not_found() {
    let desired = app(1);
    let f = Fixture::new(&desired, false, SimConfig::default());
    let mut scope = Scope::of(&desired);
    scope.services.push(sid("ghost"));
    scope.services.push(ServiceId {
        region: REGION.to_string(),
        cluster: "noCluster".to_string(),
        service: "ghost".to_string(),
    });
    scope.target_groups.push(tg("ghostTargetGroup"));
    scope
        .groups
        .push((GroupId { region: REGION.to_string(), name: "ghostGroup".to_string() }, "noCluster".to_string()));
    scope.alarms.push((REGION.to_string(), "ghostAlarm".to_string()));
    let observed = f.sim.observe(&scope).await.unwrap();
    assert!(matches!(observed.services[&sid("ghost")], Err(ResourceError::NotFound(_))));
    assert!(matches!(observed.target_groups[&tg("ghostTargetGroup")], Err(ResourceError::NotFound(_))));
    assert!(observed.groups.values().filter(|g| g.is_err()).count() == 1);
    assert!(observed.alarms.is_empty(), "absent alarms are simply absent");
    assert!(observed.services[&sid("appService")].is_ok());

    let err = f.apply(Change::SetDesiredCount { service: sid("ghost"), from: 0, to: 1 }).await.unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)));
    let err = f
        .apply(Change::RegisterTargets {
            region: REGION.to_string(),
            target_group_arn: "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/x/0".to_string(),
            targets: vec![],
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)));
    let err = f
        .apply(Change::SetDesiredCapacity {
            group: GroupId { region: REGION.to_string(), name: "ghostGroup".to_string() },
            from: 0,
            to: 1,
        })
        .await
        .unwrap_err();
    assert!(matches!(err, CloudError::NotFound(_)));
}

// ---- API economy ----------------------------------------------------------------

fn many_services(n: usize) -> DesiredState {
    DesiredState { services: (0..n).map(|i| service(&format!("svc{i:03}"), 0, vec![])).collect(), capacities: vec![] }
}

#[tokio::test]
async fn describe_services_takes_ten_services_per_call() {
    for (n, calls) in [(1, 1), (10, 1), (11, 2), (250, 25)] {
        let desired = many_services(n);
        let f = Fixture::new(&desired, false, SimConfig::default());
        let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();
        assert_eq!(observed.services.len(), n);
        assert!(observed.services.values().all(Result::is_ok));
        assert_eq!(f.sim.call_count("DescribeServices"), calls, "{n} services");
        assert_eq!(f.sim.call_count("DescribeScalableTargets"), n.div_ceil(50), "{n} services");
        assert_eq!(f.sim.call_count("ListTasks"), 2, "one page of RUNNING and one of STOPPED");
        assert_eq!(f.sim.call_count("DescribeTasks"), 0, "no tasks to describe");
    }
}

#[tokio::test]
async fn one_pass_makes_the_reads_of_the_table_and_no_writes() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    f.sim.observe(&Scope::of(&desired)).await.unwrap();
    let ops: Vec<(&str, &str)> = f.sim.calls().iter().map(|c| (c.service, c.operation)).collect();
    // Every read in order, but CloudWatch's (no alarms are declared): tasks
    // listed twice (desired RUNNING, then STOPPED), target health once per
    // target group.
    let expected: Vec<(&str, &str)> = READS
        .iter()
        .filter(|(service, _)| *service != "cloudwatch")
        .flat_map(|&read| {
            let times = if matches!(read.1, "ListTasks" | "DescribeTargetHealth") { 2 } else { 1 };
            std::iter::repeat_n(read, times)
        })
        .collect();
    assert_eq!(ops, expected);
    assert!(f.sim.calls().iter().all(|c| !c.write));

    // Names are resolved once; the task size once per task definition.
    f.sim.reset_calls();
    f.sim.observe(&Scope::of(&desired)).await.unwrap();
    assert_eq!(f.sim.call_count("DescribeTargetGroups"), 0);
    assert_eq!(f.sim.call_count("DescribeTaskDefinition"), 0);
    assert_eq!(f.sim.call_count("DescribeTargetHealth"), 2);
}

#[tokio::test]
async fn task_definitions_are_described_once_per_arn() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    let scope = Scope::of(&desired);
    assert_eq!(scope.task_sizes, [sid("appService")], "a Resources capacity asks for task sizes");
    let observed = f.sim.observe(&scope).await.unwrap();
    let size = observed.services[&sid("appService")].as_ref().unwrap().task_size.unwrap();
    assert_eq!((size.cpu, size.memory), (256, 512));
    f.sim.observe(&scope).await.unwrap();
    assert_eq!(f.sim.call_count("DescribeTaskDefinition"), 1);
    let again = f.sim.observe(&scope).await.unwrap();
    assert_eq!(again.services[&sid("appService")].as_ref().unwrap().task_size, Some(size));
}

#[tokio::test]
async fn batched_reads_follow_the_api_limits() {
    let f = Fixture::empty();
    let tgs: Vec<TargetGroupId> = (0..25)
        .map(|i| {
            let name = format!("tg{i:02}");
            f.sim.create_target_group(REGION, &name, TargetType::Instance, 80);
            tg(&name)
        })
        .collect();
    let scope = Scope {
        target_groups: tgs,
        alarms: (0..250).map(|i| (REGION.to_string(), format!("alarm{i}"))).collect(),
        cpu: (0..501).map(|i| sid(&format!("svc{i}"))).collect(),
        groups: (0..51)
            .map(|i| (GroupId { region: REGION.to_string(), name: format!("group{i}") }, CLUSTER.to_string()))
            .collect(),
        ..Scope::default()
    };
    let observed = f.sim.observe(&scope).await.unwrap();
    assert_eq!(f.sim.call_count("DescribeTargetGroups"), 2, "20 names per call");
    assert_eq!(f.sim.call_count("DescribeTargetHealth"), 25);
    assert_eq!(f.sim.call_count("DescribeAlarms"), 3, "100 names per call");
    assert_eq!(f.sim.call_count("GetMetricData"), 2, "500 queries per call");
    assert_eq!(f.sim.call_count("DescribeAutoScalingGroups"), 2, "50 names per call");
    assert_eq!(f.sim.call_count("ListContainerInstances"), 1, "the cluster does not exist");
    assert_eq!(observed.cpu.len(), 501);
    assert!(observed.cpu.values().all(|c| matches!(c, Ok(None))));

    f.sim.reset_calls();
    f.sim.observe(&scope).await.unwrap();
    assert_eq!(f.sim.call_count("DescribeTargetGroups"), 0, "names are looked up only once");
}

// ---- fault injection --------------------------------------------------------------

#[tokio::test]
async fn unreachable_fails_every_call() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    f.sim.set_unreachable(true);
    let err = f.sim.observe(&Scope::of(&desired)).await.unwrap_err();
    assert!(matches!(err, CloudError::Unreachable { .. }), "{err}");
    let err = f.apply(Change::SetDesiredCount { service: sid("appService"), from: 2, to: 3 }).await.unwrap_err();
    assert!(matches!(err, CloudError::Unreachable { .. }));
    assert_eq!(f.svc("appService").desired_count, 2, "a failed write changes nothing");

    f.sim.set_unreachable(false);
    assert!(f.sim.observe(&Scope::of(&desired)).await.is_ok());
}

#[tokio::test]
async fn a_failed_read_spoils_only_what_it_covers() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    let throttled = CloudError::Throttled {
        service: "elasticloadbalancing",
        operation: "DescribeTargetHealth",
        message: "Rate exceeded".to_string(),
    };
    f.sim.fail_next("DescribeTargetHealth", throttled);
    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();
    let bad: Vec<_> = observed.target_groups.iter().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(bad.len(), 1);
    assert!(matches!(bad[0].1, Err(ResourceError::Unavailable(m)) if m.contains("throttled")));
    assert!(observed.services.values().all(Result::is_ok));
    assert!(observed.groups.values().all(Result::is_ok));

    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();
    assert!(observed.target_groups.values().all(Result::is_ok), "only the next call failed");

    // A failed task listing leaves the cluster's services unreadable.
    f.sim.fail_next(
        "ListTasks",
        CloudError::AccessDenied { service: "ecs", operation: "ListTasks", message: "no".to_string() },
    );
    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();
    assert!(matches!(observed.services[&sid("appService")], Err(ResourceError::Unavailable(_))));
}

#[tokio::test]
async fn throttle_every_fails_each_nth_call() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    f.sim.throttle_every(3);
    let change = Change::SetDesiredCount { service: sid("appService"), from: 2, to: 2 };
    let results: Vec<bool> = futures_results(&f, &change, 6).await;
    assert_eq!(results, [true, true, false, true, true, false]);
    f.sim.throttle_every(0);
    assert!(futures_results(&f, &change, 3).await.into_iter().all(|ok| ok));
}

async fn futures_results(f: &Fixture, change: &Change, n: usize) -> Vec<bool> {
    let mut out = Vec::new();
    for _ in 0..n {
        match f.sim.apply(change).await {
            Ok(()) => out.push(true),
            Err(CloudError::Throttled { .. }) => out.push(false),
            Err(e) => panic!("unexpected {e}"),
        }
    }
    out
}

#[tokio::test]
async fn fail_next_fails_a_write_once() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    f.sim.fail_next(
        "UpdateService",
        CloudError::Quota { service: "ecs", operation: "UpdateService", message: "LimitExceededException".to_string() },
    );
    let change = Change::SetDesiredCount { service: sid("appService"), from: 2, to: 1 };
    assert!(matches!(f.apply(change.clone()).await, Err(CloudError::Quota { .. })));
    assert_eq!(f.svc("appService").desired_count, 2);
    f.apply(change).await.unwrap();
    assert_eq!(f.svc("appService").desired_count, 1);
    let writes: Vec<(&str, &str)> =
        f.sim.calls().into_iter().filter(|c| c.write).map(|c| (c.service, c.operation)).collect();
    // The failed attempt is recorded too; only the change that was made
    // leaves its scaling mark.
    assert_eq!(writes, [("ecs", "UpdateService"), ("ecs", "UpdateService"), ("ecs", "TagResource")]);
}

// ---- other actors ------------------------------------------------------------------

#[tokio::test]
async fn other_actors_show_up_in_observations() {
    let desired = app(2);
    let f = Fixture::new(&desired, false, SimConfig::default());
    let arn = f.sim.target_group_arn(&tg("frontendTargetGroup")).unwrap();
    f.sim.set_scalable_target(&sid("appService"), true).unwrap();
    f.sim.set_managed_scaling(&gid(), true).unwrap();
    f.sim.set_service_load_balancers(&sid("appService"), vec![arn.clone()]).unwrap();
    let foreign = Target { id: "10.0.1.50".to_string(), port: 80 };
    let err = f.sim.register_target(&tg("frontendTargetGroup"), foreign.clone()).unwrap_err();
    assert!(matches!(err, CloudError::Rejected { .. }), "an ip in an instance target group: {err}");

    let observed = f.sim.observe(&Scope::of(&desired)).await.unwrap();
    let svc = observed.services[&sid("appService")].as_ref().unwrap();
    assert!(svc.scalable_target);
    assert_eq!(svc.load_balancer_target_groups, [arn]);
    assert!(observed.groups[&gid()].as_ref().unwrap().managed_scaling);

    // ECS registers its own tasks in its loadBalancers: a new task's
    // target appears once it runs, and leaves when it stops.
    f.sim.set_desired_capacity(&gid(), 3).unwrap();
    f.advance(secs(60));
    f.sim.set_desired_count(&sid("appService"), 3).unwrap();
    f.advance(secs(15));
    let new_task = f.live_tasks("appService").into_iter().max_by_key(|t| t.started_at).unwrap();
    let target = Target { id: new_task.instance_id.clone().unwrap(), port: 80 };
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Initial));
    f.sim.set_desired_count(&sid("appService"), 2).unwrap();
    assert_eq!(f.health("frontendTargetGroup", &target), Some(TargetHealth::Draining));
    assert_eq!(f.health("backendTargetGroup", &target), None, "not in the service's loadBalancers");

    // An operator deregisters one of ballast's targets.
    let first = f.live_tasks("appService")[0].instance_id.clone().unwrap();
    f.sim.deregister_target(&tg("backendTargetGroup"), Target { id: first.clone(), port: 8000 }).unwrap();
    assert_eq!(f.health("backendTargetGroup", &Target { id: first, port: 8000 }), Some(TargetHealth::Draining));
}

#[tokio::test]
async fn applying_a_change_twice_is_the_same_as_once() {
    let f = Fixture::new(&app(2), false, SimConfig::default());
    let arn = f.sim.target_group_arn(&tg("frontendTargetGroup")).unwrap();
    let instance = f.sim.group(&gid()).unwrap().instances[0].id.clone();
    let changes = [
        Change::SetDesiredCount { service: sid("appService"), from: 2, to: 1 },
        Change::RegisterTargets {
            region: REGION.to_string(),
            target_group_arn: arn.clone(),
            targets: vec![Target { id: instance.clone(), port: 8080 }],
        },
        Change::DeregisterTargets {
            region: REGION.to_string(),
            target_group_arn: arn,
            targets: vec![Target { id: instance, port: 80 }],
        },
        put_alarm(cpu_alarm("high", 70.0, 2, 3, MissingData::Missing)),
        Change::SetDesiredCapacity { group: gid(), from: 2, to: 3 },
    ];
    for change in changes {
        f.apply(change.clone()).await.unwrap();
        let once = snapshot(&f);
        f.apply(change.clone()).await.unwrap();
        assert_eq!(snapshot(&f), once, "{change}");
    }
}

fn snapshot(f: &Fixture) -> String {
    format!(
        "{:?}{:?}{:?}{:?}",
        f.sim.service(&sid("appService")),
        f.sim.target_group(&tg("frontendTargetGroup")),
        f.sim.group(&gid()),
        f.sim.alarm(REGION, "high"),
    )
}

// ---- determinism ------------------------------------------------------------------------

async fn scripted_run(seed: u64) -> (crate::observed::Observed, Vec<Call>) {
    let desired = app(3);
    let f = Fixture::seeded(&desired, true, SimConfig::default(), seed);
    f.sim.set_load(&sid("appService"), 120.0).unwrap();
    f.apply(put_alarm(cpu_alarm("ballast-appCluster-appService-cpu-high", 50.0, 2, 3, MissingData::Missing)))
        .await
        .unwrap();
    f.apply(Change::SetDesiredCount { service: sid("appService"), from: 2, to: 3 }).await.unwrap();
    f.advance(secs(45));
    let victim = f.sim.group(&gid()).unwrap().instances[1].id.clone();
    f.sim.kill_instance(&victim).unwrap();
    f.sim.deploy(&sid("appService")).unwrap();
    f.advance(secs(400));
    let mut scope = Scope::of(&desired);
    scope.alarms.push((REGION.to_string(), "ballast-appCluster-appService-cpu-high".to_string()));
    scope.cpu.push(sid("appService"));
    let observed = f.sim.observe(&scope).await.unwrap();
    (observed, f.sim.calls())
}

#[tokio::test]
async fn the_same_seed_and_calls_give_the_same_observations() {
    let (a, calls_a) = scripted_run(42).await;
    let (b, calls_b) = scripted_run(42).await;
    assert_eq!(a, b);
    assert_eq!(calls_a, calls_b);
    assert!(matches!(a.cpu[&sid("appService")], Ok(Some(_))), "the script produced metric data");
    let (c, _) = scripted_run(43).await;
    assert_ne!(a, c, "identifiers come from the seed");
}

// ---- time and scale -------------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn latency_per_call_passes_in_tokio_time_only() {
    let desired = app(2);
    let config = SimConfig { latency_per_call: Duration::from_millis(100), ..SimConfig::default() };
    let f = Fixture::new(&desired, false, config);
    let started = tokio::time::Instant::now();
    f.sim.observe(&Scope::of(&desired)).await.unwrap();
    let calls = f.sim.calls().len() as u32;
    assert_eq!(started.elapsed(), Duration::from_millis(100) * calls);
    f.apply(Change::SetDesiredCount { service: sid("appService"), from: 2, to: 2 }).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100) * (calls + 1));
    // A count change and its scaling mark: two calls.
    f.apply(Change::SetDesiredCount { service: sid("appService"), from: 2, to: 3 }).await.unwrap();
    assert_eq!(started.elapsed(), Duration::from_millis(100) * (calls + 3));
}

#[test]
fn a_cluster_without_capacity_gets_standalone_container_instances() {
    let desired = DesiredState {
        services: vec![service("web", 3, vec![binding("webTargetGroup", 80, TargetType::Instance)])],
        capacities: vec![],
    };
    let f = Fixture::new(&desired, false, SimConfig::default());
    let live = f.live_tasks("web");
    assert_eq!(live.len(), 3);
    assert!(live.iter().all(|t| t.is_serving()));
    assert_eq!(f.sim.target_group(&tg("webTargetGroup")).unwrap().targets.len(), 3);
    assert!(f.sim.group(&gid()).is_none());
}

#[tokio::test]
async fn a_day_of_a_large_world_runs_in_virtual_time() {
    let desired = DesiredState {
        services: (0..250).map(|i| service(&format!("svc{i:03}"), 2, vec![])).collect(),
        capacities: vec![capacity(1, 1000, TasksPerInstance::Resources { cpu: 4096, memory: 8192 })],
    };
    let f = Fixture::new(&desired, false, SimConfig::default());
    assert_eq!(f.sim.group(&gid()).unwrap().instances.len(), 32, "500 tasks, 16 per instance");

    // Listing pages through 100 tasks or instances at a time.
    f.sim.observe(&Scope::of(&desired)).await.unwrap();
    assert_eq!(f.sim.call_count("ListTasks"), 5 + 1, "5 pages of RUNNING, 1 of STOPPED");
    assert_eq!(f.sim.call_count("DescribeTasks"), 5);
    assert_eq!(f.sim.call_count("ListContainerInstances"), 1);
    assert_eq!(f.sim.call_count("DescribeContainerInstances"), 1);
    assert_eq!(f.sim.call_count("DescribeTaskDefinition"), 250, "one per task definition");

    for i in (0..250).step_by(10) {
        f.sim.set_load(&sid(&format!("svc{i:03}")), 100.0).unwrap();
    }
    // How long a day takes in wall time is measured by `cargo bench --bench
    // daemon`, not asserted here.
    f.advance(secs(24 * 3600));
    let sample = f.sim.cpu(&sid("svc010")).unwrap();
    assert_eq!(sample.value, 50.0);
    assert_eq!(sample.at, f.sim.now() - secs(60));
}
