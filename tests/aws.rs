//! The AWS adapter over the wire, against moto (see `docs/aws.md`).
//!
//! One binary for everything that links the SDK. Each test has its own moto
//! account on the shared emulator (see `support::emulator`), so tests run
//! in parallel. The emulator must be installed (`scripts/emulator-setup.sh`);
//! without it every test fails with that instruction.

mod support;

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use ballast::cloud::aws::{AwsCloud, AwsOptions};
use ballast::cloud::{Cloud, CloudError, Scope};
use ballast::desired::ServiceId;
use ballast::observed::{AlarmState, ResourceError, Target, TaskStatus};
use ballast::plan::Change;
use support::contract::{self, Fixture, World};
use support::emulator::{
    self, Account, Actors, BACKEND, CLUSTER, Emulator, FRONTEND, GROUP, REGION, SERVICE, System, service_id,
    test_options,
};
use support::proxy::FaultProxy;

/// A seeded account and the adapter under test on it.
struct Moto {
    account: Account,
    actors: Actors,
    system: System,
    cloud: AwsCloud,
    fixture: Fixture,
}

async fn seeded_with(tasks: u32, options: AwsOptions) -> Moto {
    let account = Emulator::shared().account().await;
    let actors = account.actors();
    let system = actors.seed(tasks).await;
    let cloud = account.cloud(options);
    let fixture = Fixture {
        service: system.service_id(),
        running_tasks: system.tasks.len(),
        group: system.group_id(),
        cluster: CLUSTER.into(),
        frontend: (System::target_group(FRONTEND), system.frontend_arn.clone()),
        backend: (System::target_group(BACKEND), system.backend_arn.clone()),
        instances: system.instances.clone(),
        subnets: system.subnets.clone(),
        spare_subnet: system.spare_subnet.clone(),
    };
    Moto { account, actors, system, cloud, fixture }
}

async fn seeded() -> Moto {
    seeded_with(2, test_options()).await
}

impl World for Moto {
    type Cloud = AwsCloud;
    fn cloud(&self) -> &AwsCloud {
        &self.cloud
    }
    fn fixture(&self) -> &Fixture {
        &self.fixture
    }
    async fn set_desired_count_out_of_band(&self, n: u32) {
        self.actors.set_desired_count(SERVICE, n).await;
    }
}

/// Everything of the seeded system, with CPU and task sizes.
fn full_scope(system: &System) -> Scope {
    let mut scope = contract::scope(&Fixture {
        service: system.service_id(),
        running_tasks: 0,
        group: system.group_id(),
        cluster: CLUSTER.into(),
        frontend: (System::target_group(FRONTEND), String::new()),
        backend: (System::target_group(BACKEND), String::new()),
        instances: vec![],
        subnets: vec![],
        spare_subnet: String::new(),
    });
    scope.cpu = vec![system.service_id()];
    scope.task_sizes = vec![system.service_id()];
    scope
}

// ---------------------------------------------------------------------
// Mapping
// ---------------------------------------------------------------------

#[tokio::test]
async fn observe_maps_the_seeded_system() {
    let m = seeded().await;
    let o = m.cloud.observe(&full_scope(&m.system)).await.unwrap();

    let svc = o.services[&m.system.service_id()].as_ref().unwrap();
    assert_eq!(svc.status, "ACTIVE");
    assert_eq!(svc.desired_count, 2);
    assert_eq!(svc.task_definition, m.system.task_definition_arn);
    assert!(svc.load_balancer_target_groups.is_empty());
    assert!(!svc.scalable_target);
    assert_eq!(svc.task_size.map(|s| s.memory), Some(512));

    // Two serving tasks, one per instance (static host ports collide),
    // exposing host ports 80 and 8000 from the task definition.
    let tasks: Vec<_> = svc.tasks.iter().filter(|t| t.is_serving()).collect();
    assert_eq!(tasks.len(), 2);
    let mut placed: Vec<String> = tasks.iter().filter_map(|t| t.instance_id.clone()).collect();
    placed.sort();
    assert_eq!(placed, m.system.instances);
    for t in &tasks {
        assert!(m.system.tasks.contains(&t.arn));
        assert_eq!(t.host_port(emulator::CONTAINER, 80), Some(80));
        assert_eq!(t.host_port(emulator::CONTAINER, 8000), Some(8000));
    }

    let front = o.target_groups[&System::target_group(FRONTEND)].as_ref().unwrap();
    assert_eq!(front.arn, m.system.frontend_arn);
    assert_eq!((front.name.as_str(), front.target_type.as_str(), front.port), (FRONTEND, "instance", Some(80)));
    assert!(front.targets.is_empty());
    let back = o.target_groups[&System::target_group(BACKEND)].as_ref().unwrap();
    assert_eq!(back.port, Some(8000));

    assert!(o.alarms.is_empty(), "no alarms seeded");
    assert_eq!(o.cpu.get(&m.system.service_id()), Some(&None), "no datapoints");

    let g = o.groups[&m.system.group_id()].as_ref().unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 10, 2));
    assert_eq!(g.subnets, m.system.subnets);
    assert!(!g.managed_scaling);
    let ids: Vec<_> = g.instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, m.system.instances);
    for i in &g.instances {
        assert_eq!(i.lifecycle_state, "InService");
        assert!(i.healthy);
        assert_eq!(i.tasks, Some(1), "each instance runs one task");
    }
}

#[tokio::test]
async fn observe_follows_the_other_actors() {
    let m = seeded().await;
    let scope = full_scope(&m.system);
    let front = System::target_group(FRONTEND);

    // Someone registers a target, the scheduler stops a task, Application
    // Auto Scaling takes over the count, ECS managed scaling tags the group.
    m.actors.register_target(&m.system.frontend_arn, &m.system.instances[1], 80).await;
    m.actors.stop_task(&m.system.tasks[0]).await;
    m.actors.add_scalable_target(SERVICE).await;
    let req = m.actors.autoscaling.create_or_update_tags();
    req.tags(
        aws_sdk_autoscaling::types::Tag::builder()
            .resource_id(GROUP)
            .resource_type("auto-scaling-group")
            .key("AmazonECSManaged")
            .value("")
            .propagate_at_launch(false)
            .build(),
    )
    .send()
    .await
    .unwrap();

    let o = m.cloud.observe(&scope).await.unwrap();
    let tg = o.target_groups[&front].as_ref().unwrap();
    assert_eq!(
        tg.targets.iter().map(|t| t.target.clone()).collect::<Vec<_>>(),
        vec![Target { id: m.system.instances[1].clone(), port: 80 }]
    );
    let svc = o.services[&m.system.service_id()].as_ref().unwrap();
    assert!(svc.scalable_target);
    let stopped =
        svc.tasks.iter().find(|t| t.arn == m.system.tasks[0]).expect("a recently stopped task is still reported");
    assert_eq!(stopped.desired_status, TaskStatus::Stopped);
    assert!(!stopped.is_serving());
    assert_eq!(svc.tasks.iter().filter(|t| t.is_serving()).count(), 1);
    assert!(o.groups[&m.system.group_id()].as_ref().unwrap().managed_scaling);

    // The scheduler starts a replacement; the alarm fires.
    m.actors.start_tasks(SERVICE, 1).await;
    let def = contract::cpu_high_alarm(&m.fixture, 70.0);
    m.cloud.apply(&Change::PutAlarm { region: REGION.into(), alarm: def.clone(), create: true }).await.unwrap();
    m.actors.set_alarm_state(&def.name, StateValue::Alarm).await;
    let o = m.cloud.observe(&scope).await.unwrap();
    let svc = o.services[&m.system.service_id()].as_ref().unwrap();
    assert_eq!(svc.tasks.iter().filter(|t| t.is_serving()).count(), 2);
    let alarm = o.alarms[&(REGION.to_string(), def.name.clone())].as_ref().unwrap();
    assert_eq!(alarm.state, AlarmState::Alarm);

    // Someone edits the threshold: the drift is visible.
    m.actors.set_alarm_threshold(&def.name, 95.0).await;
    let o = m.cloud.observe(&scope).await.unwrap();
    let alarm = o.alarms[&(REGION.to_string(), def.name.clone())].as_ref().unwrap();
    assert_eq!(alarm.definition.threshold, 95.0);
    assert_eq!(alarm.definition, contract::cpu_high_alarm(&m.fixture, 95.0), "everything else unchanged");
}

#[tokio::test]
async fn a_service_with_its_own_load_balancers_reports_them() {
    let m = seeded_with(0, test_options()).await;
    let req = m.actors.ecs.create_service();
    req.cluster(CLUSTER)
        .service_name("lbService")
        .task_definition(&m.system.task_definition_arn)
        .desired_count(1)
        .load_balancers(
            aws_sdk_ecs::types::LoadBalancer::builder()
                .target_group_arn(&m.system.frontend_arn)
                .container_name(emulator::CONTAINER)
                .container_port(80)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let id = service_id("lbService");
    let o = m.cloud.observe(&Scope { services: vec![id.clone()], ..Scope::default() }).await.unwrap();
    let svc = o.services[&id].as_ref().unwrap();
    assert_eq!(svc.load_balancer_target_groups, vec![m.system.frontend_arn.clone()]);
}

#[tokio::test]
async fn a_target_group_named_by_arn_is_observed() {
    let m = seeded().await;
    let by_arn = ballast::desired::TargetGroupId {
        region: REGION.into(),
        target_group: ballast::desired::TargetGroupRef::Arn(m.system.backend_arn.clone()),
    };
    let o = m.cloud.observe(&Scope { target_groups: vec![by_arn.clone()], ..Scope::default() }).await.unwrap();
    let tg = o.target_groups[&by_arn].as_ref().unwrap();
    assert_eq!(tg.name, BACKEND);
    assert_eq!(tg.port, Some(8000));
}

// ---------------------------------------------------------------------
// Applying changes
// ---------------------------------------------------------------------

#[tokio::test]
async fn terminate_instance_removes_it_and_lowers_capacity() {
    let m = seeded_with(0, test_options()).await;
    let gone = m.system.instances[0].clone();
    m.cloud.apply(&Change::TerminateInstance { group: m.system.group_id(), instance_id: gone.clone() }).await.unwrap();
    let o = m
        .cloud
        .observe(&Scope { groups: vec![(m.system.group_id(), CLUSTER.into())], ..Scope::default() })
        .await
        .unwrap();
    let g = o.groups[&m.system.group_id()].as_ref().unwrap();
    assert_eq!(g.desired_capacity, 1);
    assert!(g.instances.iter().all(|i| i.id != gone || !i.is_active()), "{:?}", g.instances);
    // An unknown instance is not tested here: moto 5.2.5 crashes (HTTP 500)
    // where AWS answers ValidationError "Instance Id not found".
}

#[tokio::test]
async fn put_alarm_tags_the_alarm_as_ballasts() {
    let m = seeded_with(0, test_options()).await;
    let def = contract::cpu_high_alarm(&m.fixture, 70.0);
    m.cloud.apply(&Change::PutAlarm { region: REGION.into(), alarm: def.clone(), create: true }).await.unwrap();
    let req = m.actors.cloudwatch.describe_alarms();
    let out = req.alarm_names(&def.name).send().await.unwrap();
    let arn = out.metric_alarms()[0].alarm_arn().unwrap().to_string();
    let req = m.actors.cloudwatch.list_tags_for_resource();
    let tags = req.resource_arn(arn).send().await.unwrap();
    assert!(
        tags.tags().iter().any(|t| t.key() == Some("managed-by") && t.value() == Some("ballast")),
        "{:?}",
        tags.tags()
    );
}

#[tokio::test]
async fn large_registrations_are_sent_in_chunks_of_200() {
    let m = seeded_with(0, test_options()).await;
    // An ip target group takes any address in the VPC, so 450 targets need
    // no 450 instances.
    let req = m.actors.elbv2.create_target_group();
    let tg = req
        .name("ipTargetGroup")
        .protocol(aws_sdk_elasticloadbalancingv2::types::ProtocolEnum::Tcp)
        .port(8000)
        .vpc_id(&m.system.vpc_id)
        .target_type(aws_sdk_elasticloadbalancingv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    let arn = tg.target_groups()[0].target_group_arn().unwrap().to_string();
    let targets: Vec<Target> =
        (0..450).map(|i| Target { id: format!("10.0.{}.{}", 2 + i / 200, 10 + i % 200), port: 8000 }).collect();
    let before = m.cloud.api_calls();
    m.cloud
        .apply(&Change::RegisterTargets {
            region: REGION.into(),
            target_group_arn: arn.clone(),
            targets: targets.clone(),
        })
        .await
        .unwrap();
    let calls = m.cloud.api_calls().since(&before);
    assert_eq!(calls.of("RegisterTargets"), 3, "200 + 200 + 50");

    let id = ballast::desired::TargetGroupId {
        region: REGION.into(),
        target_group: ballast::desired::TargetGroupRef::Name("ipTargetGroup".into()),
    };
    let o = m.cloud.observe(&Scope { target_groups: vec![id.clone()], ..Scope::default() }).await.unwrap();
    assert_eq!(o.target_groups[&id].as_ref().unwrap().targets.len(), 450);

    let before = m.cloud.api_calls();
    m.cloud.apply(&Change::DeregisterTargets { region: REGION.into(), target_group_arn: arn, targets }).await.unwrap();
    assert_eq!(m.cloud.api_calls().since(&before).of("DeregisterTargets"), 3);
    let o = m.cloud.observe(&Scope { target_groups: vec![id.clone()], ..Scope::default() }).await.unwrap();
    assert!(o.target_groups[&id].as_ref().unwrap().targets.is_empty());
}

// ---------------------------------------------------------------------
// API economy
// ---------------------------------------------------------------------

#[tokio::test]
async fn a_converged_pass_makes_exactly_the_table_reads_and_no_writes() {
    let m = seeded().await;
    // 25 services in the cluster: appService plus 24 more without tasks.
    let mut services: Vec<ServiceId> = vec![m.system.service_id()];
    for i in 1..25 {
        let name = format!("svc{i:02}");
        m.actors.create_service(&name, &m.system.task_definition_arn, 0).await;
        services.push(service_id(&name));
    }
    let alarms: Vec<(String, String)> =
        services.iter().flat_map(ballast::plan::alarms::alarm_names).map(|n| (REGION.to_string(), n)).collect();
    assert_eq!(alarms.len(), 50);
    let scope = Scope {
        services: services.clone(),
        target_groups: vec![System::target_group(FRONTEND), System::target_group(BACKEND)],
        alarms,
        cpu: services.clone(),
        task_sizes: services.clone(),
        groups: vec![(m.system.group_id(), CLUSTER.into())],
    };

    // The first pass also fills the caches: target groups by name (one
    // call, 2 names ≤ 20) and the one task definition.
    let before = m.cloud.api_calls();
    let first = m.cloud.observe(&scope).await.unwrap();
    let calls = m.cloud.api_calls().since(&before);
    assert_eq!(calls.of("DescribeTargetGroups"), 1);
    assert_eq!(calls.of("DescribeTaskDefinition"), 1);
    assert_eq!(first.services.values().filter(|s| s.is_ok()).count(), 25);

    let before = m.cloud.api_calls();
    let second = m.cloud.observe(&scope).await.unwrap();
    let calls = m.cloud.api_calls().since(&before);
    let expected = [
        ("DescribeServices", 3), // 25 services, 10 per call
        ("ListTasks", 2),        // RUNNING, then STOPPED
        ("DescribeTasks", 1),    // 2 tasks
        ("ListContainerInstances", 1),
        ("DescribeContainerInstances", 1),
        ("DescribeScalableTargets", 1), // 25 resource ids, 50 per call
        ("DescribeTargetHealth", 2),    // one per target group
        ("DescribeAlarms", 1),          // 50 names, 100 per call
        ("GetMetricData", 1),           // 25 queries, 500 per call
        ("DescribeAutoScalingGroups", 1),
    ];
    let by_op = calls.by_operation();
    let expected_map: std::collections::BTreeMap<&str, u64> = expected.into_iter().collect();
    assert_eq!(by_op, expected_map, "calls of a converged pass");
    assert_eq!(calls.writes(), 0);
    assert_eq!(calls.throttled(), 0);
    assert_eq!(first, second, "nothing changed in between");
}

// ---------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------

#[tokio::test]
async fn throttled_attempts_are_retried_and_counted() {
    let m = seeded().await;
    let scope = full_scope(&m.system);
    let reference = m.cloud.observe(&scope).await.unwrap();

    // Every third request to moto and to the CloudWatch bridge is throttled.
    let moto = FaultProxy::start(&m.account.moto_url, 3).await;
    let bridge = FaultProxy::start(&m.account.bridge_url, 3).await;
    let options = AwsOptions {
        // Enough attempts that interleaved callers never see three
        // throttles in a row; backoff stays short for the test.
        max_attempts: 6,
        ..test_options()
    };
    let cloud = AwsCloud::new(
        &m.account.sdk_config_via(&moto.url, &bridge.url),
        std::sync::Arc::new(ballast::metrics::Metrics::new()),
        options,
    );
    let observed = cloud.observe(&scope).await.unwrap();
    assert_eq!(observed, reference, "retries hide the throttling");

    let changes = [
        Change::SetDesiredCount { service: m.system.service_id(), from: 2, to: 4 },
        Change::RegisterTargets {
            region: REGION.into(),
            target_group_arn: m.system.frontend_arn.clone(),
            targets: vec![Target { id: m.system.instances[0].clone(), port: 80 }],
        },
        Change::PutAlarm { region: REGION.into(), alarm: contract::cpu_high_alarm(&m.fixture, 70.0), create: true },
        Change::SetDesiredCapacity { group: m.system.group_id(), from: 2, to: 3 },
    ];
    for c in &changes {
        cloud.apply(c).await.unwrap_or_else(|e| panic!("{c}: {e}"));
    }
    let o = cloud.observe(&scope).await.unwrap();
    assert_eq!(o.services[&m.system.service_id()].as_ref().unwrap().desired_count, 4);

    let injected = moto.throttled() + bridge.throttled();
    assert!(injected >= 5, "the proxies throttled {injected} requests");
    let calls = cloud.api_calls();
    assert_eq!(calls.throttled(), injected, "every throttled attempt is counted: {calls:#?}");
    assert_eq!(calls.total(), moto.requests() + bridge.requests(), "every attempt is counted once");
}

#[tokio::test]
async fn ecs_limit_exceeded_is_a_quota_and_not_retried() {
    let m = seeded_with(0, test_options()).await;
    let proxy = FaultProxy::start(&m.account.moto_url, 1).await;
    proxy.set_error_code("LimitExceededException");
    let cloud = AwsCloud::new(
        &m.account.sdk_config_via(&proxy.url, &m.account.bridge_url),
        std::sync::Arc::new(ballast::metrics::Metrics::new()),
        test_options(),
    );
    let err =
        cloud.apply(&Change::SetDesiredCount { service: m.system.service_id(), from: 2, to: 3 }).await.unwrap_err();
    assert!(matches!(err, CloudError::Quota { service: "ecs", .. }), "{err:?}");
    let calls = cloud.api_calls();
    assert_eq!(calls.of("UpdateService"), 1, "no retry: {calls:#?}");
    assert_eq!(calls.throttled(), 0, "a quota is not throttling");
    assert_eq!(proxy.requests(), 1);
}

#[tokio::test]
async fn throttling_that_outlasts_the_retries_is_reported_as_throttled() {
    let m = seeded_with(0, test_options()).await;
    let proxy = FaultProxy::start(&m.account.moto_url, 1).await;
    let cloud = AwsCloud::new(
        &m.account.sdk_config_via(&proxy.url, &m.account.bridge_url),
        std::sync::Arc::new(ballast::metrics::Metrics::new()),
        test_options(),
    );
    let err =
        cloud.apply(&Change::SetDesiredCapacity { group: m.system.group_id(), from: 2, to: 3 }).await.unwrap_err();
    assert!(matches!(err, CloudError::Throttled { .. }), "{err:?}");
    let calls = cloud.api_calls();
    assert_eq!(calls.of("SetDesiredCapacity"), 3, "the standard 3 attempts");
    assert_eq!(calls.throttled(), 3);
}

#[tokio::test]
async fn an_unreachable_emulator_fails_fast_and_the_adapter_recovers() {
    let emulator = Emulator::start();
    let account = emulator.account().await;
    let actors = account.actors();
    let system = actors.seed(1).await;
    let options = AwsOptions {
        attempt_timeout: Duration::from_secs(1),
        operation_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_millis(500),
        ..test_options()
    };
    let cloud = account.cloud(options);
    let scope = full_scope(&system);
    cloud.observe(&scope).await.expect("reachable at first");

    emulator.stop();
    let started = Instant::now();
    let err = cloud.observe(&scope).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, CloudError::Unreachable { .. }), "{err:?}");
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let err = cloud.apply(&Change::SetDesiredCount { service: system.service_id(), from: 2, to: 3 }).await.unwrap_err();
    assert!(matches!(err, CloudError::Unreachable { .. }), "{err:?}");

    // Back, but empty: the same keys now land in moto's default account.
    emulator.restart();
    let o = cloud.observe(&scope).await.expect("reachable again");
    assert!(matches!(o.services[&system.service_id()], Err(ResourceError::NotFound(_))));
    actors.seed(1).await;
    let o = cloud.observe(&scope).await.unwrap();
    assert!(o.services[&system.service_id()].is_ok());
}

// ---------------------------------------------------------------------
// The Cloud contract, on moto
// ---------------------------------------------------------------------

#[tokio::test]
async fn contract_observe_sees_the_seeded_system() {
    contract::observe_sees_the_seeded_system(&seeded().await).await;
}

#[tokio::test]
async fn contract_set_desired_count_is_observed_and_idempotent() {
    contract::set_desired_count_is_observed_and_idempotent(&seeded().await).await;
}

#[tokio::test]
async fn contract_out_of_band_desired_count_is_observed() {
    contract::out_of_band_desired_count_is_observed(&seeded().await).await;
}

#[tokio::test]
async fn contract_targets_register_and_deregister_idempotently() {
    contract::targets_register_and_deregister_idempotently(&seeded().await).await;
}

#[tokio::test]
async fn contract_alarms_are_put_and_observed_exactly() {
    contract::alarms_are_put_and_observed_exactly(&seeded().await).await;
}

#[tokio::test]
async fn contract_group_capacity_and_subnets_are_observed_and_idempotent() {
    contract::group_capacity_and_subnets_are_observed_and_idempotent(&seeded().await).await;
}

#[tokio::test]
async fn contract_missing_resources_are_not_found() {
    contract::missing_resources_are_not_found(&seeded().await).await;
}

// `contract::missing_group_changes_are_not_found` is not run here: moto
// 5.2.5 answers SetDesiredCapacity / UpdateAutoScalingGroup on an unknown
// group with an HTTP 500 (KeyError) instead of AWS's ValidationError.

// ---------------------------------------------------------------------
// The same contract, on the simulated cloud
// ---------------------------------------------------------------------

mod sim_contract {
    use std::sync::Arc;
    use std::time::Duration;

    use ballast::cloud::ManualClock;
    use ballast::cloud::sim::{ContainerSpec, GroupSpec, ServiceSpec, SimCloud, SimConfig};
    use ballast::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef, TargetType};
    use ballast::metrics::Metrics;

    use super::support::contract::{self, Fixture, World};

    pub struct SimWorld {
        sim: SimCloud,
        fixture: Fixture,
    }

    impl World for SimWorld {
        type Cloud = SimCloud;
        fn cloud(&self) -> &SimCloud {
            &self.sim
        }
        fn fixture(&self) -> &Fixture {
            &self.fixture
        }
        async fn set_desired_count_out_of_band(&self, n: u32) {
            self.sim.set_desired_count(&self.fixture.service, n).unwrap();
        }
    }

    /// The article's system, built by hand in the simulation and run until
    /// the instances are in service and the tasks running.
    pub fn seeded() -> SimWorld {
        let region = "us-east-1";
        let clock = Arc::new(ManualClock::new());
        let sim = SimCloud::new(clock.clone(), 11, Arc::new(Metrics::new()), SimConfig::default());
        let group = GroupId { region: region.into(), name: "ecsAutoScalingGroup".into() };
        let subnets = vec!["subnet-0private0a".to_string(), "subnet-0private0b".to_string()];
        for (s, z) in subnets.iter().zip(["us-east-1a", "us-east-1b"]) {
            sim.add_subnet(region, s, z);
        }
        sim.add_subnet(region, "subnet-0spare00c", "us-east-1c");
        sim.create_group(&GroupSpec {
            id: group.clone(),
            cluster: Some("appCluster".into()),
            min: 0,
            max: 10,
            desired: 2,
            subnets: subnets.clone(),
            instance_cpu: 1024,
            instance_memory: 982,
        })
        .unwrap();
        let service = ServiceId { region: region.into(), cluster: "appCluster".into(), service: "appService".into() };
        sim.create_service(&ServiceSpec {
            id: service.clone(),
            desired_count: 2,
            containers: vec![ContainerSpec { name: "appContainer".into(), ports: vec![80, 8000] }],
            awsvpc: false,
            cpu: 256,
            memory: 512,
        })
        .unwrap();
        let tg = |name: &str, port| {
            let arn = sim.create_target_group(region, name, TargetType::Instance, port);
            (TargetGroupId { region: region.into(), target_group: TargetGroupRef::Name(name.into()) }, arn)
        };
        let frontend = tg("frontendTargetGroup", 80);
        let backend = tg("backendTargetGroup", 8000);
        clock.advance(Duration::from_secs(180));
        let mut instances: Vec<String> = sim.group(&group).unwrap().instances.into_iter().map(|i| i.id).collect();
        instances.sort();
        let fixture = Fixture {
            service,
            running_tasks: 2,
            group,
            cluster: "appCluster".into(),
            frontend,
            backend,
            instances,
            subnets,
            spare_subnet: "subnet-0spare00c".into(),
        };
        SimWorld { sim, fixture }
    }

    #[tokio::test]
    async fn sim_contract_observe_sees_the_seeded_system() {
        contract::observe_sees_the_seeded_system(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_set_desired_count_is_observed_and_idempotent() {
        contract::set_desired_count_is_observed_and_idempotent(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_out_of_band_desired_count_is_observed() {
        contract::out_of_band_desired_count_is_observed(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_targets_register_and_deregister_idempotently() {
        contract::targets_register_and_deregister_idempotently(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_alarms_are_put_and_observed_exactly() {
        contract::alarms_are_put_and_observed_exactly(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_group_capacity_and_subnets_are_observed_and_idempotent() {
        contract::group_capacity_and_subnets_are_observed_and_idempotent(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_missing_resources_are_not_found() {
        contract::missing_resources_are_not_found(&seeded()).await;
    }

    #[tokio::test]
    async fn sim_contract_missing_group_changes_are_not_found() {
        contract::missing_group_changes_are_not_found(&seeded()).await;
    }
}
