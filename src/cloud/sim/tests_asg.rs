//! Tests of the Auto Scaling behaviours (and read lag) of the simulated
//! cloud, on hand-built worlds in virtual time.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cloud::ManualClock;
use crate::cloud::Scope;
use crate::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef, TargetType};
use crate::observed::{
    AlarmDefinition, Lifecycle, Observed, ObservedGroup, ObservedInstance, Target, TargetHealth, TaskStatus,
};

const REGION: &str = "us-east-1";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn gid() -> GroupId {
    GroupId { region: REGION.to_string(), name: "asg".to_string() }
}

fn sid() -> ServiceId {
    ServiceId { region: REGION.to_string(), cluster: CLUSTER.to_string(), service: "app".to_string() }
}

const CLUSTER: &str = "cluster";

fn subnets(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| format!("subnet-{n}")).collect()
}

fn rejection(err: CloudError) -> (&'static str, String) {
    match err {
        CloudError::Rejected { operation, message, .. } => (operation, message),
        other => panic!("expected a rejection, got {other}"),
    }
}

struct World {
    sim: SimCloud,
    clock: Arc<ManualClock>,
}

impl World {
    /// A group of `desired` instances (min 1, max 10) over subnet-a and
    /// subnet-b (us-east-1a, us-east-1b; subnet-c is us-east-1c), all in
    /// service.
    fn new(desired: u32, config: SimConfig) -> Self {
        let clock = Arc::new(ManualClock::new());
        let sim = SimCloud::new(clock.clone(), 7, Arc::new(Metrics::new()), config);
        for zone in ["a", "b", "c"] {
            sim.add_subnet(REGION, &format!("subnet-{zone}"), &format!("{REGION}{zone}"));
        }
        sim.create_group(&GroupSpec {
            id: gid(),
            cluster: Some(CLUSTER.to_string()),
            min: 1,
            max: 10,
            desired,
            subnets: vec!["subnet-a".to_string(), "subnet-b".to_string()],
            instance_cpu: 1024,
            instance_memory: 982,
        })
        .unwrap();
        let world = World { sim, clock };
        world.advance(secs(60));
        world
    }

    /// Plus an ECS service of `tasks` tasks, one per instance (static port 80).
    fn with_service(desired: u32, tasks: u32, config: SimConfig) -> Self {
        let world = World::new(desired, config);
        world
            .sim
            .create_service(&ServiceSpec {
                id: sid(),
                desired_count: tasks,
                containers: vec![ContainerSpec { name: "app".to_string(), ports: vec![80] }],
                awsvpc: false,
                cpu: 256,
                memory: 256,
                minimum_healthy_percent: crate::cloud::sim::DEFAULT_MINIMUM_HEALTHY_PERCENT,
                maximum_percent: crate::cloud::sim::DEFAULT_MAXIMUM_PERCENT,
            })
            .unwrap();
        world.advance(secs(15));
        world
    }

    async fn apply(&self, change: Change) -> Result<(), CloudError> {
        self.sim.apply(&change).await
    }

    fn ids(&self) -> Vec<String> {
        self.group().instances.into_iter().map(|i| i.id).collect()
    }

    /// The RUNNING tasks of the service on the instance.
    fn running_on(&self, instance: &str) -> usize {
        let svc = self.sim.service(&sid()).expect("service exists");
        svc.tasks
            .iter()
            .filter(|t| t.instance_id.as_deref() == Some(instance) && t.last_status == TaskStatus::Running)
            .count()
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.sim.tick();
    }

    fn group(&self) -> ObservedGroup {
        self.sim.group(&gid()).expect("group exists")
    }

    fn instance(&self, id: &str) -> Option<ObservedInstance> {
        self.group().instances.into_iter().find(|i| i.id == id)
    }

    /// Zones of the active (pending or in-service) instances, in launch order.
    fn active_zones(&self) -> Vec<String> {
        self.group().instances.into_iter().filter(|i| i.is_active()).map(|i| i.zone).collect()
    }
}

// ---- instances AWS terminates by itself -------------------------------------

#[test]
fn aws_terminates_the_newest_in_service_instances_and_replaces_them() {
    let w = World::new(4, SimConfig::default());
    let ids: Vec<String> = w.group().instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"]);

    let gone = w.sim.terminate_instances_by_aws(&gid(), 1, Some("us-east-1a")).unwrap();
    assert_eq!(gone, [ids[2].clone()], "the newest instance of us-east-1a");
    let group = w.group();
    assert_eq!(group.desired_capacity, 4, "AWS's own termination keeps the desired capacity");
    assert_eq!(w.instance(&ids[2]).unwrap().lifecycle_state, Lifecycle::Terminating);
    let replacement = group.instances.last().unwrap();
    assert_eq!((replacement.zone.as_str(), &replacement.lifecycle_state), ("us-east-1a", &Lifecycle::Pending));

    let gone = w.sim.terminate_instances_by_aws(&gid(), 2, None).unwrap();
    assert_eq!(gone, [ids[3].clone(), ids[1].clone()], "newest in-service first; the pending one is spared");
    assert_eq!(w.sim.terminate_instances_by_aws(&gid(), 5, Some("us-east-1b")).unwrap(), Vec::<String>::new());
    assert_eq!(w.group().instances.iter().filter(|i| i.is_active()).count(), 4);

    let other = GroupId { region: REGION.to_string(), name: "nope".to_string() };
    assert!(matches!(w.sim.terminate_instances_by_aws(&other, 1, None), Err(CloudError::NotFound(_))));
}

// ---- MinSize and MaxSize ----------------------------------------------------

#[tokio::test]
async fn min_and_max_size_are_enforced_with_aws_validation_errors() {
    let w = World::new(2, SimConfig::default());
    let set = |to| Change::SetDesiredCapacity { group: gid(), from: 2, to };
    let (op, message) = rejection(w.apply(set(11)).await.unwrap_err());
    assert_eq!(op, "SetDesiredCapacity");
    assert_eq!(
        message,
        "ValidationError: New SetDesiredCapacity value 11 is above max value 10 for the AutoScalingGroup."
    );
    let (_, message) = rejection(w.apply(set(0)).await.unwrap_err());
    assert_eq!(
        message,
        "ValidationError: New SetDesiredCapacity value 0 is below min value 1 for the AutoScalingGroup."
    );
    let (_, message) = rejection(w.sim.set_desired_capacity(&gid(), 11).unwrap_err());
    assert!(message.contains("above max value 10"), "another actor gets the same error: {message}");
    assert_eq!(w.group().desired_capacity, 2);

    let ids = w.ids();
    let terminate = |id: &str| Change::TerminateInstance { group: gid(), instance_id: id.to_string() };
    w.apply(terminate(&ids[1])).await.unwrap();
    let (op, message) = rejection(w.apply(terminate(&ids[0])).await.unwrap_err());
    assert_eq!(op, "TerminateInstanceInAutoScalingGroup");
    assert_eq!(
        message,
        "ValidationError: Currently, desiredSize equals minSize (1). Terminating instance without replacement will \
         violate group's min size constraint."
    );
    assert_eq!(w.group().desired_capacity, 1);
    assert_eq!(w.instance(&ids[0]).unwrap().lifecycle_state, Lifecycle::InService, "the instance stays");
}

// ---- AZ rebalancing -----------------------------------------------------------

#[tokio::test]
async fn a_subnet_change_launches_in_the_new_zone_before_terminating_in_the_removed_one() {
    let w = World::with_service(2, 2, SimConfig::default());
    let ids = w.ids();
    w.apply(Change::SetGroupSubnets { group: gid(), from: subnets(&["a", "b"]), to: subnets(&["a", "c"]) })
        .await
        .unwrap();
    let group = w.group();
    assert_eq!(group.desired_capacity, 2);
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1c"], "one over desired while rebalancing");
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::InService);
    assert_eq!(w.running_on(&ids[1]), 1, "the removed zone's instance keeps its task meanwhile");

    w.advance(secs(59));
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::InService);
    w.advance(secs(1));
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::Terminating, "once the new one is in service");
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1c"]);
    w.advance(secs(60));
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1c"], "balanced: nothing more moves");
}

#[tokio::test]
async fn terminating_with_decrement_into_imbalance_makes_aws_move_an_instance() {
    let w = World::new(6, SimConfig::default());
    let ids = w.ids();
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"]);
    for id in [&ids[1], &ids[3]] {
        w.apply(Change::TerminateInstance { group: gid(), instance_id: id.clone() }).await.unwrap();
    }
    // 3 in us-east-1a, 1 in us-east-1b: AWS launches in us-east-1b first.
    let group = w.group();
    assert_eq!(group.desired_capacity, 4);
    let launched = group.instances.last().unwrap();
    assert_eq!((launched.zone.as_str(), &launched.lifecycle_state), ("us-east-1b", &Lifecycle::Pending));
    assert_eq!(group.instances.iter().filter(|i| i.is_active()).count(), 5, "at most one over desired (10 % of 4)");

    w.advance(secs(60));
    assert_eq!(
        w.instance(&ids[4]).unwrap().lifecycle_state,
        Lifecycle::Terminating,
        "then the newest of the fuller zone goes"
    );
    let mut zones = w.active_zones();
    zones.sort();
    assert_eq!(zones, ["us-east-1a", "us-east-1a", "us-east-1b", "us-east-1b"]);
}

#[tokio::test]
async fn a_large_imbalance_moves_at_most_ten_percent_of_desired_at_a_time() {
    let config = SimConfig { instance_launch_delay: secs(10), ..SimConfig::default() };
    let w = World::new(10, config);
    w.apply(Change::SetGroupSubnets { group: gid(), from: subnets(&["a", "b"]), to: subnets(&["a", "c"]) })
        .await
        .unwrap();
    // Five instances of us-east-1b to move, one at a time (10 % of 10).
    let mut most_active = 0;
    for _ in 0..60 {
        most_active = most_active.max(w.group().instances.iter().filter(|i| i.is_active()).count());
        w.advance(secs(5));
    }
    assert_eq!(most_active, 11);
    let zones = w.active_zones();
    assert!(!zones.iter().any(|z| z == "us-east-1b"), "every instance moved: {zones:?}");
    assert_eq!(w.group().instances.iter().filter(|i| i.is_active()).count(), 10);
}

#[tokio::test]
async fn suspended_az_rebalance_leaves_instances_in_a_removed_subnet_until_resumed() {
    let w = World::new(3, SimConfig::default());
    let ids = w.ids();
    let err = w.sim.suspend_processes(&gid(), &["AzRebalance"]).unwrap_err();
    assert!(rejection(err).1.contains("AZRebalance"), "names are checked");
    w.sim.suspend_processes(&gid(), &["AZRebalance"]).unwrap();
    w.apply(Change::SetGroupSubnets { group: gid(), from: subnets(&["a", "b"]), to: subnets(&["a", "c"]) })
        .await
        .unwrap();
    w.advance(secs(120));
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a"], "nothing moves");

    // Scale-out still balances the enabled zones; scale-in takes the
    // instance of the removed subnet first.
    w.apply(Change::SetDesiredCapacity { group: gid(), from: 3, to: 4 }).await.unwrap();
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1c"]);
    w.apply(Change::SetDesiredCapacity { group: gid(), from: 4, to: 3 }).await.unwrap();
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::Terminating);
    w.apply(Change::SetDesiredCapacity { group: gid(), from: 3, to: 4 }).await.unwrap();
    w.advance(secs(60));
    let mut zones = w.active_zones();
    zones.sort();
    assert_eq!(zones, ["us-east-1a", "us-east-1a", "us-east-1c", "us-east-1c"]);

    // Terminations leave us-east-1a 2, us-east-1c 0: nothing moves while
    // suspended; resuming rebalances.
    let in_c: Vec<String> =
        w.group().instances.into_iter().filter(|i| i.is_active() && i.zone == "us-east-1c").map(|i| i.id).collect();
    for id in in_c {
        w.apply(Change::TerminateInstance { group: gid(), instance_id: id }).await.unwrap();
    }
    w.advance(secs(120));
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1a"]);
    w.sim.resume_processes(&gid(), &[]).unwrap();
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1a", "us-east-1c"]);
    w.advance(secs(60));
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1c"]);
}

// ---- termination lifecycle hooks ----------------------------------------------

#[tokio::test]
async fn a_termination_hook_holds_the_instance_running_until_the_heartbeat_timeout() {
    let w = World::with_service(2, 2, SimConfig::default());
    w.sim.put_termination_hook(&gid(), secs(300)).unwrap();
    let ids = w.ids();
    let (_, message) = rejection(w.sim.put_termination_hook(&gid(), secs(10)).unwrap_err());
    assert!(message.contains("HeartbeatTimeout"), "{message}");
    w.apply(Change::SetDesiredCapacity { group: gid(), from: 2, to: 1 }).await.unwrap();
    let held = w.instance(&ids[1]).unwrap();
    assert_eq!(held.lifecycle_state, Lifecycle::TerminatingWait);
    assert!(!held.is_active(), "no longer counted as capacity");
    assert_eq!(held.tasks, Some(1), "still a container instance with its task");
    assert_eq!(w.running_on(&ids[1]), 1, "which keeps running");

    w.advance(secs(299));
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::TerminatingWait);
    w.advance(secs(1));
    assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::Terminating, "the heartbeat timed out");
    assert_eq!(w.running_on(&ids[1]), 0);
}

#[tokio::test]
async fn complete_lifecycle_action_ends_the_wait_and_a_dead_instance_loses_its_tasks_at_once() {
    let w = World::with_service(3, 3, SimConfig::default());
    w.sim.put_termination_hook(&gid(), secs(3600)).unwrap();
    let ids = w.ids();
    let err = w.sim.complete_lifecycle_action(&gid(), &ids[2]).unwrap_err();
    assert!(rejection(err).1.contains("No active Lifecycle Action"), "not waiting yet");

    w.apply(Change::TerminateInstance { group: gid(), instance_id: ids[2].clone() }).await.unwrap();
    assert_eq!(w.instance(&ids[2]).unwrap().lifecycle_state, Lifecycle::TerminatingWait);
    assert_eq!(w.running_on(&ids[2]), 1, "its task serves during the wait");
    w.advance(secs(30));
    assert_eq!(w.running_on(&ids[2]), 1);
    w.sim.complete_lifecycle_action(&gid(), &ids[2]).unwrap();
    assert_eq!(w.instance(&ids[2]).unwrap().lifecycle_state, Lifecycle::Terminating);
    assert_eq!(w.running_on(&ids[2]), 0, "its task stops with the instance");

    // An instance that died waits too, but its tasks are gone at once.
    w.sim.kill_instance(&ids[1]).unwrap();
    let dead = w.instance(&ids[1]).unwrap();
    assert_eq!((dead.lifecycle_state, dead.healthy), (Lifecycle::TerminatingWait, false));
    assert_eq!(w.running_on(&ids[1]), 0);
}

/// Removing a subnet changes where the group launches; an instance already
/// terminating there goes on with its termination and lifecycle action.
/// Rebalancing after a zone change replaces the instances the group still
/// counts, and with AZRebalance suspended nothing moves at all
/// (https://docs.aws.amazon.com/autoscaling/ec2/userguide/suspend-resume-considerations.html).
/// ballast removes an on-demand subnet in the pass that terminates its
/// last instance, and drains that instance through the hook.
#[tokio::test]
async fn a_subnet_removed_while_its_last_instance_terminates_leaves_the_termination_alone() {
    for suspended in [true, false] {
        let w = World::with_service(3, 3, SimConfig::default());
        if suspended {
            w.sim.suspend_processes(&gid(), &["AZRebalance"]).unwrap();
        }
        w.sim.put_termination_hook(&gid(), secs(3600)).unwrap();
        let ids = w.ids();
        assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a"]);
        w.apply(Change::TerminateInstance { group: gid(), instance_id: ids[1].clone() }).await.unwrap();
        w.apply(Change::SetGroupSubnets { group: gid(), from: subnets(&["a", "b"]), to: subnets(&["a"]) })
            .await
            .unwrap();
        w.advance(secs(120));
        let waiting = w.instance(&ids[1]).unwrap();
        assert_eq!(waiting.lifecycle_state, Lifecycle::TerminatingWait, "suspended {suspended}");
        assert_eq!(w.running_on(&ids[1]), 1, "suspended {suspended}: its task still serves while it drains");
        assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1a"], "suspended {suspended}: nothing launched or moved");
        assert_eq!(w.group().desired_capacity, 2);

        w.sim.complete_lifecycle_action(&gid(), &ids[1]).unwrap();
        assert_eq!(w.instance(&ids[1]).unwrap().lifecycle_state, Lifecycle::Terminating);
        w.advance(secs(120));
        assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1a"], "suspended {suspended}");
    }
}

// ---- ELBv2 RegisterTargets ------------------------------------------------------

#[tokio::test]
async fn register_targets_fails_as_a_whole_when_any_instance_is_not_running() {
    let w = World::new(2, SimConfig::default());
    let arn = w.sim.create_target_group(REGION, "tg", TargetType::Instance, 80);
    let tg = TargetGroupId { region: REGION.to_string(), target_group: TargetGroupRef::Name("tg".to_string()) };
    let ids = w.ids();
    w.apply(Change::TerminateInstance { group: gid(), instance_id: ids[1].clone() }).await.unwrap();
    let register = |ids: &[&String]| Change::RegisterTargets {
        region: REGION.to_string(),
        target_group_arn: arn.clone(),
        targets: ids.iter().map(|id| Target { id: (*id).clone(), port: 80 }).collect(),
    };

    let (op, message) = rejection(w.apply(register(&[&ids[0], &ids[1]])).await.unwrap_err());
    assert_eq!(op, "RegisterTargets");
    assert!(message.starts_with("InvalidTarget:") && message.contains(&ids[1]), "{message}");
    assert!(w.sim.target_group(&tg).unwrap().targets.is_empty(), "the running instance was not registered either");
    let unknown = "i-00000000000000000".to_string();
    assert!(w.apply(register(&[&ids[0], &unknown])).await.is_err(), "an unknown instance fails the call too");
    assert!(w.sim.target_group(&tg).unwrap().targets.is_empty());

    w.apply(register(&[&ids[0]])).await.unwrap();
    assert_eq!(w.sim.target_group(&tg).unwrap().targets.len(), 1);
}

#[tokio::test]
async fn without_az_rebalance_in_the_config_nothing_moves() {
    let w = World::new(2, SimConfig { az_rebalance: false, ..SimConfig::default() });
    w.apply(Change::SetGroupSubnets { group: gid(), from: subnets(&["a", "b"]), to: subnets(&["a", "c"]) })
        .await
        .unwrap();
    w.advance(secs(120));
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b"]);
}

// ---- eventual consistency -------------------------------------------------------

fn tg_id() -> TargetGroupId {
    TargetGroupId { region: REGION.to_string(), target_group: TargetGroupRef::Name("tg".to_string()) }
}

fn alarm(threshold: f64) -> AlarmDefinition {
    AlarmDefinition {
        evaluation_periods: 3,
        datapoints_to_alarm: 3,
        description: "test".to_string(),
        ..AlarmDefinition::service_cpu("cpu-high", &sid(), threshold)
    }
}

/// (desired count, desired capacity, registered targets with health, alarm threshold) as observed.
async fn seen(w: &World) -> (u32, u32, Vec<(String, TargetHealth)>, Option<f64>) {
    let scope = Scope {
        services: vec![sid()],
        target_groups: vec![tg_id()],
        alarms: vec![(REGION.to_string(), "cpu-high".to_string())],
        groups: vec![(gid(), CLUSTER.to_string())],
        ..Scope::default()
    };
    let o: Observed = w.sim.observe(&scope).await.unwrap();
    let svc = o.services[&sid()].as_ref().unwrap();
    let group = o.groups[&gid()].as_ref().unwrap();
    let tg = o.target_groups[&tg_id()].as_ref().unwrap();
    let targets = tg.targets.iter().map(|t| (t.target.id.clone(), t.health)).collect();
    let threshold = o.alarms.get(&(REGION.to_string(), "cpu-high".to_string())).map(|a| {
        let a = a.as_ref().unwrap();
        a.definition.threshold
    });
    (svc.desired_count, group.desired_capacity, targets, threshold)
}

fn lagging(w: &World) -> usize {
    w.sim.world.lock().unwrap().api.lagging.len()
}

#[tokio::test]
async fn reads_show_each_write_only_after_the_consistency_lag() {
    let w = World::with_service(2, 2, SimConfig { consistency_lag: secs(30), ..SimConfig::default() });
    let arn = w.sim.create_target_group(REGION, "tg", TargetType::Instance, 80);
    let ids = w.ids();
    let target = |id: &String| Target { id: id.clone(), port: 80 };
    let register = Change::RegisterTargets {
        region: REGION.to_string(),
        target_group_arn: arn.clone(),
        targets: vec![target(&ids[0])],
    };
    for change in [
        Change::SetDesiredCount { service: sid(), from: 2, to: 3 },
        Change::SetDesiredCapacity { group: gid(), from: 2, to: 3 },
        register,
        Change::PutAlarm { region: REGION.to_string(), alarm: alarm(80.0), create: true },
    ] {
        w.apply(change).await.unwrap();
    }
    assert_eq!(seen(&w).await, (2, 2, vec![], None), "every write is hidden at first");
    assert_eq!(w.sim.service(&sid()).unwrap().desired_count, 3, "the world itself changed at once");

    w.advance(secs(10));
    w.apply(Change::SetDesiredCount { service: sid(), from: 3, to: 4 }).await.unwrap();
    w.apply(Change::PutAlarm { region: REGION.to_string(), alarm: alarm(90.0), create: false }).await.unwrap();
    w.sim.set_desired_capacity(&gid(), 4).unwrap();
    w.advance(secs(19));
    assert_eq!(seen(&w).await, (2, 2, vec![], None));
    w.advance(secs(1));
    let healthy = vec![(ids[0].clone(), TargetHealth::Healthy)];
    assert_eq!(seen(&w).await, (3, 3, healthy.clone(), Some(80.0)), "the first writes show 30 s after them");
    w.advance(secs(10));
    assert_eq!(seen(&w).await, (4, 4, healthy.clone(), Some(90.0)), "another actor's write lags too");
    assert_eq!(lagging(&w), 0, "visible writes leave the log");

    // A deregistered target still shows as it was.
    let deregister =
        Change::DeregisterTargets { region: REGION.to_string(), target_group_arn: arn, targets: vec![target(&ids[0])] };
    w.apply(deregister.clone()).await.unwrap();
    assert_eq!(seen(&w).await.2, healthy);
    w.advance(secs(30));
    assert_eq!(seen(&w).await.2, [(ids[0].clone(), TargetHealth::Draining)]);
    w.apply(deregister).await.unwrap();
    assert_eq!(lagging(&w), 0, "deregistering again changes nothing, so nothing lags");
}

#[tokio::test]
async fn without_a_consistency_lag_reads_show_writes_at_once_and_nothing_is_logged() {
    let w = World::with_service(2, 2, SimConfig::default());
    w.sim.create_target_group(REGION, "tg", TargetType::Instance, 80);
    w.apply(Change::SetDesiredCount { service: sid(), from: 2, to: 3 }).await.unwrap();
    w.apply(Change::SetDesiredCapacity { group: gid(), from: 2, to: 3 }).await.unwrap();
    assert_eq!(seen(&w).await, (3, 3, vec![], None));
    assert_eq!(lagging(&w), 0);
}
