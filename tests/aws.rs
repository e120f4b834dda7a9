//! The AWS adapter over the wire, against moto (see `docs/aws.md`).
//!
//! One binary for everything that links the SDK. Each test has its own moto
//! account on the shared emulator (see `support::emulator`), so tests run
//! in parallel. The emulator must be installed (`scripts/emulator-setup.sh`);
//! without it every test fails with that instruction.

mod support;

/// Leader election on a DynamoDB lease (issue 16).
#[path = "aws/lease.rs"]
mod lease;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::StateValue;
use ballast::cloud::aws::{AwsCloud, AwsOptions};
use ballast::cloud::{Clock, Cloud, CloudError, ManualClock, Scope, marks};
use ballast::controller::{Controller, Options as ControllerOptions};
use ballast::desired::ServiceId;
use ballast::observed::{AlarmState, Lifecycle, ResourceError, ServiceStatus, Target, TargetGroupType, TaskStatus};
use ballast::plan::Change;
use support::contract::{self, Fixture, Others, World};
use support::declared::Tasks;
use support::e2e::{Ballast, Declared, MISSING_DATA, Output, SCALE_IN, SCALE_OUT};
use support::emulator::{
    self, Account, Actors, BACKEND, CLUSTER, Emulator, FRONTEND, GROUP, REGION, SERVICE, System, service_id,
    test_options,
};
use support::proxy::{Call, FaultProxy};

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
    let fixture = fixture_of(&system);
    Moto { account, actors, system, cloud, fixture }
}

/// The contract suite's names and ids of the seeded system.
fn fixture_of(system: &System) -> Fixture {
    Fixture {
        service: system.service_id(),
        running_tasks: system.tasks.len(),
        group: system.group_id(),
        cluster: CLUSTER.into(),
        frontend: (System::target_group(FRONTEND), system.frontend_arn.clone()),
        backend: (System::target_group(BACKEND), system.backend_arn.clone()),
        instances: system.instances.clone(),
        subnets: system.subnets.clone(),
        spare_subnet: system.spare_subnet.clone(),
    }
}

async fn seeded() -> Moto {
    seeded_with(2, test_options()).await
}

/// A seeded account without tasks, and the adapter on it reaching moto
/// through a fault proxy that faults every `every`-th request (0: none).
async fn seeded_behind_proxy(every: u64) -> (Moto, FaultProxy, AwsCloud) {
    let m = seeded_with(0, test_options()).await;
    let proxy = FaultProxy::start(&m.account.moto_url, every).await;
    let cloud = cloud_via(&m.account, &proxy.url, &m.account.bridge_url, test_options());
    (m, proxy, cloud)
}

/// The adapter on `account`, reaching moto and the CloudWatch bridge at
/// the given URLs (fault proxies in front of them).
fn cloud_via(account: &Account, moto: &str, bridge: &str, options: AwsOptions) -> AwsCloud {
    AwsCloud::new(&account.sdk_config_via(moto, bridge), Arc::new(ballast::metrics::Metrics::new()), options)
}

/// The account's own clients act for everyone else.
impl Others for Actors {
    async fn set_desired_count(&self, service: &ServiceId, n: u32) {
        Actors::set_desired_count(self, &service.service, n).await;
    }
    fn now(&self) -> SystemTime {
        // The adapter's clock: the wall clock, as tokio moves it.
        SystemTime::now()
    }
}

/// The contract suite's world on a seeded account.
async fn seeded_world() -> World<AwsCloud, Actors> {
    let Moto { cloud, fixture, actors, .. } = seeded().await;
    World { cloud, fixture, others: actors }
}

/// Everything of the seeded system, with CPU and task sizes.
fn full_scope(system: &System) -> Scope {
    let mut scope = contract::scope(&fixture_of(system));
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
    assert_eq!(svc.status, ServiceStatus::Active);
    assert_eq!(svc.desired_count, 2);
    assert_eq!(svc.task_definition, m.system.task_definition_arn);
    assert!(svc.load_balancer_target_groups.is_empty());
    assert!(!svc.deploying, "its one deployment is complete");
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
    assert_eq!((front.name.as_str(), &front.target_type, front.port), (FRONTEND, &TargetGroupType::Instance, Some(80)));
    assert!(front.targets.is_empty());
    let back = o.target_groups[&System::target_group(BACKEND)].as_ref().unwrap();
    assert_eq!(back.port, Some(8000));

    assert!(o.alarms.is_empty(), "no alarms seeded");
    assert_eq!(o.cpu.get(&m.system.service_id()), Some(&Ok(None)), "no datapoints");

    let g = o.groups[&m.system.group_id()].as_ref().unwrap();
    assert_eq!((g.min_size, g.max_size, g.desired_capacity), (1, 10, 2));
    assert_eq!(g.subnets, m.system.subnets);
    assert!(!g.managed_scaling);
    let ids: Vec<_> = g.instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(ids, m.system.instances);
    for i in &g.instances {
        assert_eq!(i.lifecycle_state, Lifecycle::InService);
        assert!(i.healthy);
        assert_eq!(i.tasks, Some(1), "each instance runs one task");
        // The ECS agent's ecs.subnet-id (tests/emulator/moto_server.py
        // plays the agent): one of the group's subnets.
        let subnet = i.subnet.as_ref().expect("a registered instance's subnet");
        assert!(m.system.subnets.contains(subnet), "{subnet} not in {:?}", m.system.subnets);
    }
    assert_eq!(g.suspended_processes, Vec::<String>::new(), "a new group suspends nothing");
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
    m.actors.tag_group_as_ecs_managed().await;

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
    m.actors
        .create_service_in_target_group("lbService", &m.system.task_definition_arn, 1, &m.system.frontend_arn)
        .await;
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

/// ELBv2 refuses a whole RegisterTargets naming an instance that is not
/// running; the others are registered without it.
#[tokio::test]
async fn registration_leaves_out_an_instance_that_is_not_running() {
    let m = seeded_with(0, test_options()).await;
    let [up, gone] = [&m.system.instances[0], &m.system.instances[1]];
    m.cloud.apply(&Change::TerminateInstance { group: m.system.group_id(), instance_id: gone.clone() }).await.unwrap();
    let targets = vec![Target { id: gone.clone(), port: 31000 }, Target { id: up.clone(), port: 31000 }];
    let before = m.cloud.api_calls();
    m.cloud
        .apply(&Change::RegisterTargets {
            region: REGION.into(),
            target_group_arn: m.system.frontend_arn.clone(),
            targets,
        })
        .await
        .unwrap();
    assert_eq!(m.cloud.api_calls().since(&before).of("RegisterTargets"), 2, "once refused, once without it");
    let registered = targets_of(&m, FRONTEND).await;
    assert!(registered.contains(&Target { id: up.clone(), port: 31000 }), "{registered:?}");
    assert!(!registered.iter().any(|t| &t.id == gone), "{registered:?}");
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

/// PutMetricAlarm sets tags only when it creates an alarm: an existing
/// alarm that lacks ballast's tag is seen so, and TagResource adds it.
#[tokio::test]
async fn an_alarm_without_ballasts_tag_is_seen_and_tagged() {
    let m = seeded_with(0, test_options()).await;
    let def = contract::cpu_high_alarm(&m.fixture, 70.0);
    m.cloud.apply(&Change::PutAlarm { region: REGION.into(), alarm: def.clone(), create: true }).await.unwrap();
    let arn = m.actors.alarm(&def.name).await.alarm_arn().unwrap().to_string();
    let req = m.actors.cloudwatch.untag_resource();
    req.resource_arn(&arn).tag_keys("managed-by").send().await.unwrap();

    // A process that did not create it reads its tags.
    let cloud = m.account.cloud(test_options());
    let scope = Scope { alarms: vec![(REGION.into(), def.name.clone())], ..Scope::default() };
    let key = (REGION.to_string(), def.name.clone());
    let seen = cloud.observe(&scope).await.unwrap().alarms[&key].clone().unwrap();
    assert_eq!((seen.arn.as_str(), seen.managed_by_ballast), (arn.as_str(), Some(false)));

    cloud.apply(&Change::TagAlarm { region: REGION.into(), name: def.name.clone(), arn: arn.clone() }).await.unwrap();
    let tags = m.actors.cloudwatch.list_tags_for_resource().resource_arn(&arn).send().await.unwrap();
    assert!(
        tags.tags().iter().any(|t| t.key() == Some("managed-by") && t.value() == Some("ballast")),
        "{:?}",
        tags.tags()
    );
    // Tagged by this process: its tags are not listed again.
    let before = cloud.api_calls();
    let seen = cloud.observe(&scope).await.unwrap().alarms[&key].clone().unwrap();
    assert_eq!(seen.managed_by_ballast, Some(true));
    assert_eq!(cloud.api_calls().since(&before).of("ListTagsForResource"), 0);
    // Another process lists them once and finds the tag.
    let fresh = m.account.cloud(test_options());
    let seen = fresh.observe(&scope).await.unwrap().alarms[&key].clone().unwrap();
    assert_eq!(seen.managed_by_ballast, Some(true));
    assert_eq!(fresh.api_calls().of("ListTagsForResource"), 1);
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
        ..Scope::default()
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
    let cloud = cloud_via(&m.account, &moto.url, &bridge.url, options);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_keep_to_the_rate_limit_through_throttling() {
    // PutMetricAlarm has the smallest bucket (3/s, burst 3). Twelve alarm
    // writes at once, a third of the attempts throttled: every attempt,
    // retries included, keeps to the bucket, so no request reaches AWS
    // before the bucket has refilled for it.
    let m = seeded_with(0, test_options()).await;
    let bridge = FaultProxy::start(&m.account.bridge_url, 3).await;
    let cloud = cloud_via(&m.account, &m.account.moto_url, &bridge.url, test_options());
    let template = contract::cpu_high_alarm(&m.fixture, 70.0);
    // The adapter creates the region's buckets, full, at its first call:
    // not before this.
    let start = Instant::now();
    let mut writes = tokio::task::JoinSet::new();
    for i in 0..12 {
        let mut alarm = template.clone();
        alarm.name = format!("{}-{i}", template.name);
        let cloud = cloud.clone();
        writes
            .spawn(async move { cloud.apply(&Change::PutAlarm { region: REGION.into(), alarm, create: true }).await });
    }
    while let Some(done) = writes.join_next().await {
        done.unwrap().expect("every write lands despite the throttling");
    }

    let mut at: Vec<Instant> =
        bridge.calls().iter().filter(|c| c.operation == "PutMetricAlarm").map(|c| c.at).collect();
    at.sort();
    assert!(bridge.throttled() >= 4, "a third of the attempts were throttled: {}", bridge.throttled());
    assert_eq!(at.len(), 12 + bridge.throttled() as usize, "each throttled attempt was retried once or more");
    // Each attempt takes its token before it is sent, so when the k-th
    // request reaches the proxy the bucket has handed out k tokens: at
    // most burst + rate x (time since `start`). Delays on the way only
    // make requests later, so this bound needs no slack for scheduling;
    // retries that skipped the bucket would arrive too early (the
    // windowed check, burst + rate x T in any T, is
    // `call::tests::concurrent_retries_keep_to_the_bucket_in_every_window`,
    // on paused time).
    let rate = ballast::cloud::aws::RateLimits::default().cloudwatch_put_alarm;
    for (k, arrived) in (1..).zip(&at) {
        let earliest = Duration::from_secs_f64((f64::from(k) - f64::from(rate.burst)).max(0.0) / rate.per_second);
        let t = arrived.duration_since(start);
        assert!(t >= earliest, "request {k} arrived {t:?} after the start; the bucket allows it from {earliest:?}");
    }
}

#[tokio::test]
async fn writes_carry_what_moto_would_fill_in_or_ignore() {
    // moto deregisters by instance id whatever the port, fills a missing
    // port with the group's, and ignores HonorCooldown: the requests are
    // where a dropped port or cooldown shows.
    let (m, proxy, cloud) = seeded_behind_proxy(0).await;
    let targets = on_port(&m.system.instances, 8000);
    let arn = &m.system.backend_arn;
    let changes = [
        Change::RegisterTargets { region: REGION.into(), target_group_arn: arn.clone(), targets: targets.clone() },
        Change::DeregisterTargets { region: REGION.into(), target_group_arn: arn.clone(), targets: targets.clone() },
        Change::SetDesiredCapacity { group: m.system.group_id(), from: 2, to: 3 },
    ];
    for c in &changes {
        cloud.apply(c).await.unwrap_or_else(|e| panic!("{c}: {e}"));
    }

    let sent = |operation: &str| -> Vec<_> {
        proxy.calls().into_iter().filter(|c| c.operation == operation).map(|c| c.params()).collect()
    };
    for operation in ["RegisterTargets", "DeregisterTargets"] {
        let calls = sent(operation);
        assert_eq!(calls.len(), 1, "{operation}: {calls:?}");
        let p = &calls[0];
        let described: Vec<(Option<&str>, Option<&str>)> = (1..=targets.len())
            .map(|n| {
                let field = |f: &str| p.get(&format!("Targets.member.{n}.{f}")).map(String::as_str);
                (field("Id"), field("Port"))
            })
            .collect();
        let expected: Vec<(Option<&str>, Option<&str>)> =
            targets.iter().map(|t| (Some(t.id.as_str()), Some("8000"))).collect();
        assert_eq!(described, expected, "{operation} names each target with its port: {p:?}");
        assert!(!p.contains_key(&format!("Targets.member.{}.Id", targets.len() + 1)), "{p:?}");
    }
    let calls = sent("SetDesiredCapacity");
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].get("DesiredCapacity").map(String::as_str), Some("3"), "{:?}", calls[0]);
    assert_eq!(calls[0].get("HonorCooldown").map(String::as_str), Some("false"), "{:?}", calls[0]);
    // The capacity mark names the group, and is not propagated to the
    // instances it launches (moto would accept anything here).
    let calls = sent("CreateOrUpdateTags");
    assert_eq!(calls.len(), 1, "{calls:?}");
    let tag = |f: &str| calls[0].get(&format!("Tags.member.1.{f}")).cloned().unwrap_or_default();
    assert_eq!(
        [tag("ResourceId"), tag("ResourceType"), tag("Key"), tag("PropagateAtLaunch")],
        [GROUP, "auto-scaling-group", marks::LAST_CAPACITY_CHANGE, "false"].map(String::from),
        "{:?}",
        calls[0]
    );
    assert!(humantime::parse_rfc3339(&tag("Value")).is_ok(), "{:?}", calls[0]);
}

#[tokio::test]
async fn a_scaling_mark_that_cannot_be_written_fails_no_change() {
    // A role without ecs:TagResource: the count is still changed (and the
    // change reported as made); only a restart's knowledge of it is lost.
    let (m, proxy, cloud) = seeded_behind_proxy(1).await;
    proxy.set_only(Some(&["TagResource"]));
    proxy.set_error_code("AccessDeniedException");
    cloud.apply(&Change::SetDesiredCount { service: m.system.service_id(), from: 2, to: 3 }).await.unwrap();
    let svc = observed_service(&m).await;
    assert_eq!(svc.desired_count, 3);
    assert_eq!(svc.scaling_marks, Default::default());
    assert_eq!((proxy.attempts("TagResource"), proxy.succeeded("UpdateService")), (1, 1), "denied: not retried");
}

#[tokio::test]
async fn ecs_limit_exceeded_is_a_quota_and_not_retried() {
    let (m, proxy, cloud) = seeded_behind_proxy(1).await;
    proxy.set_error_code("LimitExceededException");
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
    let (m, _proxy, cloud) = seeded_behind_proxy(1).await;
    let err =
        cloud.apply(&Change::SetDesiredCapacity { group: m.system.group_id(), from: 2, to: 3 }).await.unwrap_err();
    assert!(matches!(err, CloudError::Throttled { .. }), "{err:?}");
    let calls = cloud.api_calls();
    assert_eq!(calls.of("SetDesiredCapacity"), 3, "the standard 3 attempts");
    assert_eq!(calls.throttled(), 3);
}

/// Auto Scaling answers ScalingActivityInProgress while the group is busy:
/// the adapter retries it like throttling, and it is no throttling.
#[tokio::test]
async fn a_scaling_activity_in_progress_is_retried() {
    let (m, proxy, cloud) = seeded_behind_proxy(1).await;
    proxy.set_only(Some(&["SetDesiredCapacity"]));
    proxy.set_error_code("ScalingActivityInProgress");
    let err =
        cloud.apply(&Change::SetDesiredCapacity { group: m.system.group_id(), from: 2, to: 3 }).await.unwrap_err();
    assert!(
        matches!(&err, CloudError::Rejected { message, .. } if message.contains("ScalingActivityInProgress")),
        "{err:?}"
    );
    let calls = cloud.api_calls();
    assert_eq!(calls.of("SetDesiredCapacity"), 3, "retried: {calls:#?}");
    assert_eq!(calls.throttled(), 0, "busy, not throttled");
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
// End to end: the ballast binary and the controller, over the wire
// ---------------------------------------------------------------------

/// A seeded account, what the test declares about it, and the binary
/// configured for it.
struct E2e {
    m: Moto,
    declared: Declared,
    ballast: Ballast,
}

/// Seed the article's system with `tasks` running and declare it (as
/// edited by `edit`); nothing is applied yet.
async fn declared(tasks: u32, edit: impl FnOnce(&mut Declared)) -> E2e {
    let m = seeded_with(tasks, test_options()).await;
    let mut declared = Declared::article(&m.system);
    edit(&mut declared);
    let ballast = Ballast::new(&m.account, &declared);
    E2e { m, declared, ballast }
}

/// [`declared`], converged with one `apply --once`, after which `plan`
/// must report no changes.
async fn converged(tasks: u32, edit: impl FnOnce(&mut Declared)) -> E2e {
    let e = declared(tasks, edit).await;
    let apply = e.ballast.apply().await;
    assert_eq!(apply.code, 0, "the first apply converges: {apply}");
    assert_no_changes(&e.ballast.plan().await);
    e
}

fn assert_no_changes(plan: &Output) {
    assert_eq!(plan.code, 0, "nothing pending: {plan}");
    assert!(plan.stdout.starts_with("No changes"), "{plan}");
}

/// Whether `out` has a line that reads exactly `line` (indentation aside).
fn has_line(out: &Output, line: &str) -> bool {
    out.stdout.lines().any(|l| l.trim() == line)
}

/// After someone else's edit: `plan` finds the drift (exit 2, printing
/// each of `expected` as a line), `apply --once` makes exactly
/// `corrections` changes, and `plan` is clean again.
async fn drift_is_found_and_corrected(e: &E2e, expected: &[&str], corrections: usize) {
    let plan = e.ballast.plan().await;
    assert_eq!(plan.code, 2, "the drift is pending: {plan}");
    for line in expected {
        assert!(has_line(&plan, line), "expected the line {line:?} in: {plan}");
    }
    let apply = e.ballast.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.contains(&format!("\n{corrections} applied, 0 failed")), "{apply}");
    assert_no_changes(&e.ballast.plan().await);
}

async fn observe(m: &Moto) -> ballast::observed::Observed {
    m.cloud.observe(&full_scope(&m.system)).await.expect("moto is reachable")
}

async fn observed_service(m: &Moto) -> ballast::observed::ObservedService {
    observe(m).await.services[&m.system.service_id()].clone().expect("the service is observed")
}

async fn observed_group(m: &Moto) -> ballast::observed::ObservedGroup {
    observe(m).await.groups[&m.system.group_id()].clone().expect("the group is observed")
}

/// The targets of a target group, sorted.
async fn targets_of(m: &Moto, name: &str) -> Vec<Target> {
    let o = observe(m).await;
    let mut t: Vec<Target> = o.target_groups[&System::target_group(name)]
        .as_ref()
        .expect("the target group is observed")
        .targets
        .iter()
        .map(|t| t.target.clone())
        .collect();
    t.sort();
    t
}

fn on_port(instances: &[String], port: u16) -> Vec<Target> {
    instances.iter().map(|id| Target { id: id.clone(), port }).collect()
}

/// The instances the group launched beyond the seeded ones, joined to the
/// cluster as their ECS agent would.
async fn join_new_instances(m: &Moto) -> Vec<String> {
    let new: Vec<String> =
        m.actors.group_instances().await.into_iter().filter(|i| !m.system.instances.contains(i)).collect();
    for id in &new {
        m.actors.register_container_instance(id).await;
    }
    new
}

#[tokio::test]
async fn drift_a_desired_count_changed_by_hand_is_corrected() {
    let e = converged(2, |_| {}).await;
    // Someone scales the service in below the declared minimum of 2.
    e.m.actors.set_desired_count(SERVICE, 1).await;
    drift_is_found_and_corrected(
        &e,
        &["~ service appCluster/appService: desired count 1 -> 2", "why: observed count 1 is outside [2, 10]"],
        1,
    )
    .await;
    assert_eq!(observed_service(&e.m).await.desired_count, 2);
}

#[tokio::test]
async fn drift_a_target_deregistered_by_hand_is_registered_again() {
    let e = converged(2, |_| {}).await;
    let s = &e.m.system;
    assert_eq!(targets_of(&e.m, FRONTEND).await, on_port(&s.instances, 80));
    e.m.actors.deregister_target(&s.frontend_arn, &s.instances[0], 80).await;
    drift_is_found_and_corrected(
        &e,
        &[
            &format!("+ target group {FRONTEND}: register {}:80", s.instances[0]),
            "why: 1 serving task(s) of appCluster/appService are not registered",
        ],
        1,
    )
    .await;
    assert_eq!(targets_of(&e.m, FRONTEND).await, on_port(&s.instances, 80));
    assert_eq!(targets_of(&e.m, BACKEND).await, on_port(&s.instances, 8000), "untouched");
}

#[tokio::test]
async fn drift_the_stale_targets_of_a_stopped_task_are_deregistered() {
    let e = converged(2, |_| {}).await;
    let s = &e.m.system;
    let svc = observed_service(&e.m).await;
    let on = |arn: &str| svc.tasks.iter().find(|t| t.arn == arn).and_then(|t| t.instance_id.clone()).unwrap();
    let (gone, stays) = (on(&s.tasks[0]), on(&s.tasks[1]));
    // ECS stops a task; moto, like an NLB that was never told, keeps its
    // targets registered. `apply --once` is a fresh process with no record
    // of registering them: they are the service's because the stopped task
    // was placed on that instance and its task definition's host ports are
    // static (80 and 8000), whether or not the task reports its bindings.
    e.m.actors.stop_task(&s.tasks[0]).await;
    assert_eq!(targets_of(&e.m, FRONTEND).await.len(), 2);
    drift_is_found_and_corrected(
        &e,
        &[
            &format!("- target group {FRONTEND}: deregister {gone}:80"),
            &format!("- target group {BACKEND}: deregister {gone}:8000"),
        ],
        2,
    )
    .await;
    assert_eq!(targets_of(&e.m, FRONTEND).await, on_port(std::slice::from_ref(&stays), 80));
    assert_eq!(targets_of(&e.m, BACKEND).await, on_port(std::slice::from_ref(&stays), 8000));
}

#[tokio::test]
async fn drift_an_alarm_threshold_edited_by_hand_is_put_back() {
    let e = converged(2, |_| {}).await;
    let [high, low] = ballast::plan::alarms::alarm_names(&e.m.system.service_id());
    e.m.actors.set_alarm_threshold(&high, 95.0).await;
    drift_is_found_and_corrected(
        &e,
        &[
            &format!("~ alarm {high}: update (CPUUtilization > 70 for 2 of 3 x 60s)"),
            "why: edited outside ballast: threshold 95 -> 70",
        ],
        1,
    )
    .await;
    let o = observe(&e.m).await;
    let alarm = |n: &str| o.alarms[&(REGION.to_string(), n.to_string())].clone().unwrap().definition;
    assert_eq!(alarm(&high).threshold, SCALE_OUT.threshold);
    assert_eq!(alarm(&low).threshold, SCALE_IN.threshold, "the other alarm is as it was");
}

/// Issue 15 item 3: the declared termination hook is created, read back
/// as declared (the converged plan has no changes), and put back when
/// someone edits it.
#[tokio::test]
async fn drift_a_termination_hook_is_created_and_put_back() {
    let e = converged(2, |d| d.capacity.as_mut().unwrap().termination_hook = Some("10m")).await;
    let observed_hook = || async {
        let scope = Scope { hooks: vec![e.m.system.group_id()], ..full_scope(&e.m.system) };
        let o = e.m.cloud.observe(&scope).await.expect("moto is reachable");
        o.groups[&e.m.system.group_id()].clone().expect("the group is observed").termination_hook
    };
    let hook = observed_hook().await.expect("ballast created its termination hook");
    assert_eq!(hook.heartbeat_timeout, std::time::Duration::from_secs(600));
    assert_eq!(hook.default_result, "CONTINUE");
    e.m.actors
        .autoscaling
        .put_lifecycle_hook()
        .auto_scaling_group_name(GROUP)
        .lifecycle_hook_name(ballast::desired::TERMINATION_HOOK_NAME)
        .lifecycle_transition("autoscaling:EC2_INSTANCE_TERMINATING")
        .heartbeat_timeout(60)
        .default_result("ABANDON")
        .send()
        .await
        .unwrap();
    drift_is_found_and_corrected(
        &e,
        &[&format!(
            "~ auto scaling group {}: put back termination lifecycle hook ballast-drain (heartbeat timeout 600 s, \
             default result CONTINUE)",
            e.m.system.group_id()
        )],
        1,
    )
    .await;
    let hook = observed_hook().await.unwrap();
    assert_eq!((hook.heartbeat_timeout.as_secs(), hook.default_result.as_str()), (600, "CONTINUE"));
}

#[tokio::test]
async fn drift_a_group_capacity_raised_by_hand_is_brought_back_by_removing_empty_instances() {
    let e = converged(2, |_| {}).await;
    // Someone raises the capacity; the new instances join the cluster but
    // run nothing (ballast's services need 2 instances).
    e.m.actors.set_capacity(4).await;
    let mut new = join_new_instances(&e.m).await;
    new.sort();
    assert_eq!(new.len(), 2);
    let expected: Vec<String> =
        new.iter().map(|id| format!("- auto scaling group {GROUP}: terminate empty instance {id}")).collect();
    drift_is_found_and_corrected(&e, &expected.iter().map(String::as_str).collect::<Vec<_>>(), 2).await;
    let g = observed_group(&e.m).await;
    assert_eq!(g.desired_capacity, 2);
    let mut left: Vec<String> = g.instances.iter().filter(|i| i.is_active()).map(|i| i.id.clone()).collect();
    left.sort();
    assert_eq!(left, e.m.system.instances, "the instances running tasks stay");
}

#[tokio::test]
async fn drift_a_running_controller_deregisters_the_targets_it_registered_for_a_stopped_task() {
    // The daemon's case: the process that registered the targets remembers
    // them, so they are the service's even when the stopped task no
    // longer says which ports it had.
    let E2e { m, ballast: b, .. } = declared(2, |_| {}).await;
    let s = &m.system;
    let (mut c, clock, _stop_tx, stop) = after_first_pass(&m, &b).await;
    let svc = observed_service(&m).await;
    let on = |arn: &str| svc.tasks.iter().find(|t| t.arn == arn).and_then(|t| t.instance_id.clone()).unwrap();
    let (gone, stays) = (on(&s.tasks[0]), on(&s.tasks[1]));

    m.actors.stop_task(&s.tasks[0]).await;
    clock.advance(Duration::from_secs(15));
    let before = m.cloud.api_calls();
    let outcome = c.pass(&stop).await;
    assert_eq!((outcome.applied, outcome.failed), (2, 0), "{outcome:?}");
    let calls = m.cloud.api_calls().since(&before);
    assert_eq!((calls.of("DeregisterTargets"), calls.writes()), (2, 2), "{calls:#?}");
    assert_eq!(targets_of(&m, FRONTEND).await, on_port(std::slice::from_ref(&stays), 80), "{gone} is gone");
    assert_eq!(targets_of(&m, BACKEND).await, on_port(std::slice::from_ref(&stays), 8000), "{gone} is gone");
}

// ----- Restarts: the scaling marks -----

#[tokio::test]
async fn restart_a_scale_in_by_apply_once_holds_the_next_one_until_its_window_and_cooldown_end() {
    // The issue's restart case: ballast scales in, a new process starts
    // (each `apply --once` is one) inside the cooldown and the window, and
    // the next scale-in still waits.
    let m = seeded_with(0, test_options()).await;
    // moto keeps a service's first ECS deployment IN_PROGRESS for ever
    // (its running count stays 0), and no scale-in happens during a
    // deployment; a service with an external deployment controller has no
    // ECS deployments, so moto shows it steady.
    let name = "steadyService";
    let (id, _) = steady_service(&m, name, 3, 0).await;
    let mut declared = Declared::article(&m.system);
    declared.service = name.into();
    declared.tasks = Tasks::Range { min: 1, max: 10 };
    declared.target_groups = false;
    declared.capacity = None;
    let b = Ballast::new(&m.account, &declared);
    let observed = async || {
        let o = m.cloud.observe(&Scope { services: vec![id.clone()], ..Scope::default() }).await.unwrap();
        o.services[&id].clone().expect("the service is observed")
    };
    let first = b.apply().await;
    assert_eq!(first.code, 0, "the alarms are created: {first}");
    let [_, low] = ballast::plan::alarms::alarm_names(&id);
    m.actors.set_alarm_state(&low, StateValue::Alarm).await;

    // Ballast never scaled this service: no mark, nothing of its own holds.
    assert_eq!(observed().await.scaling_marks, Default::default());
    let before = SystemTime::now();
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.contains("\n1 applied, 0 failed"), "{apply}");
    let svc = observed().await;
    assert_eq!(svc.desired_count, 2);
    let (at, count) = svc.scaling_marks.last_in.expect("the scale-in left its mark");
    assert_eq!(count, 2);
    assert!(at + Duration::from_secs(1) >= before && at <= SystemTime::now() + Duration::from_secs(1), "{at:?}");
    // As written on the service: `<RFC 3339> <count>`.
    let req = m.actors.ecs.list_tags_for_resource();
    let tags = req.resource_arn(&svc.arn).send().await.unwrap();
    let value = tags.tags().iter().find(|t| t.key() == Some(marks::LAST_SCALE_IN)).and_then(|t| t.value());
    let value = value.expect("the mark is a tag of the service");
    let (time, n) = value.split_once(' ').expect("time and count");
    assert!(humantime::parse_rfc3339(time).is_ok() && time.ends_with('Z') && n == "2", "{value}");

    // The restart: the alarm still fires, and the next scale-in waits.
    let plan = b.plan().await;
    assert_eq!(plan.code, 0, "nothing to do yet: {plan}");
    let hold =
        plan.stdout.lines().find_map(|l| l.trim().strip_prefix(&format!("! service/{CLUSTER}/{name} [scaling]: ")));
    let hold = hold.unwrap_or_else(|| panic!("a scaling hold on the service: {plan}"));
    assert!(
        hold.starts_with("scale-in to 1 waits: 2 was recommended within the last 300s")
            || hold.starts_with("scale-in cooldown of 300s not over"),
        "{hold}"
    );
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.starts_with("No changes"), "{apply}");
    assert_eq!(observed().await.desired_count, 2);

    // The mark is what holds it: without it, the scale-in goes at once.
    let req = m.actors.ecs.untag_resource();
    req.resource_arn(&svc.arn).tag_keys(marks::LAST_SCALE_IN).send().await.unwrap();
    let plan = b.plan().await;
    assert_eq!(plan.code, 2, "{plan}");
    assert!(has_line(&plan, &format!("~ service {CLUSTER}/{name}: desired count 2 -> 1")), "{plan}");
}

#[tokio::test]
async fn restart_an_instance_scale_in_by_apply_once_holds_the_next_step_for_the_cooldown() {
    // Someone raises the capacity by 3 empty instances; ballast takes out
    // 2 per pass (maxChangePerPass), and the next `apply --once` inside
    // the scaleInCooldown leaves the third.
    let e = converged(2, |_| {}).await;
    e.m.actors.set_capacity(5).await;
    assert_eq!(join_new_instances(&e.m).await.len(), 3);
    assert_eq!(observed_group(&e.m).await.last_capacity_change, None);
    let apply = e.ballast.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.contains("\n2 applied, 0 failed"), "{apply}");
    let g = observed_group(&e.m).await;
    assert_eq!(g.desired_capacity, 3);
    assert!(g.last_capacity_change.is_some(), "the terminations left their mark");

    let plan = e.ballast.plan().await;
    assert_eq!(plan.code, 0, "nothing to do yet: {plan}");
    assert!(
        plan.stdout.lines().any(|l| l.trim()
            == format!("! autoscalinggroup/{GROUP} [scaling]: scale-in to 2 waits for the cooldown of 300s")),
        "{plan}"
    );
    assert!(e.ballast.apply().await.stdout.starts_with("No changes"));
    assert_eq!(observed_group(&e.m).await.desired_capacity, 3);
}

// ----- API economy of whole passes -----

/// A controller on the seeded emulator for what `b` declares, in virtual
/// time, after its first pass: the two seeded tasks' targets registered,
/// the two alarms created and the group's AZRebalance suspended (once:
/// the converged passes of the tests that follow make no write).
async fn after_first_pass(
    m: &Moto,
    b: &Ballast,
) -> (Controller<AwsCloud>, Arc<ManualClock>, tokio::sync::watch::Sender<bool>, tokio::sync::watch::Receiver<bool>) {
    // Starting at the wall clock: task protection expires at AWS's time,
    // which a clock years ahead would take for long gone.
    after_first_pass_at(m, b, ManualClock::starting_at(SystemTime::now())).await
}

/// [`after_first_pass`] with a given clock.
async fn after_first_pass_at(
    m: &Moto,
    b: &Ballast,
    clock: ManualClock,
) -> (Controller<AwsCloud>, Arc<ManualClock>, tokio::sync::watch::Sender<bool>, tokio::sync::watch::Receiver<bool>) {
    let clock = Arc::new(clock);
    let mut c = controller_for(m, b, clock.clone());
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let before = m.cloud.api_calls();
    let first = c.pass(&stop).await;
    assert_eq!(
        (first.applied, first.failed),
        (5, 0),
        "2 registrations, 2 alarms and AZRebalance suspended on the group: {first:?}"
    );
    assert_eq!(m.cloud.api_calls().since(&before).of("SuspendProcesses"), 1);
    let group = observed_group(m).await;
    assert!(!group.az_rebalance_active(), "{:?}", group.suspended_processes);
    (c, clock, stop_tx, stop)
}

/// The reads of one pass over the article's system as declared with
/// `targetCpu` (one service with two running tasks, two target groups,
/// two alarms, CPU, one group): the table in `src/cloud/mod.rs`.
fn converged_pass_reads() -> std::collections::BTreeMap<&'static str, u64> {
    [
        ("DescribeServices", 1),
        ("ListTasks", 2), // RUNNING, then STOPPED
        ("DescribeTasks", 1),
        ("ListContainerInstances", 1),
        ("DescribeContainerInstances", 1),
        ("DescribeScalableTargets", 1),
        ("DescribeTargetHealth", 2), // one per target group
        ("DescribeAlarms", 1),       // both alarms in one call
        ("GetMetricData", 1),
        ("DescribeAutoScalingGroups", 1),
    ]
    .into_iter()
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_converged_pass_makes_no_writes_and_only_the_table_reads() {
    // targetCpu: ballast reads CPU too.
    let E2e { m, ballast: b, declared } = declared(2, |d| d.scaling = Some(Some(60.0))).await;
    let (mut c, clock, _stop_tx, stop) = after_first_pass(&m, &b).await;
    for pass in 0..3 {
        // A metric period apart: the CPU is read at most once per period
        // (issue 15); task protection is reused for five minutes.
        clock.advance(Duration::from_secs(60));
        let before = m.cloud.api_calls();
        let outcome = c.pass(&stop).await;
        let calls = m.cloud.api_calls().since(&before);
        assert_eq!((outcome.planned, outcome.applied, outcome.failed), (0, 0, 0), "pass {pass}: {outcome:?}");
        assert_eq!(calls.by_operation(), converged_pass_reads(), "pass {pass}");
        assert_eq!(calls.writes(), 0);
    }

    // The binary's `apply --once` on the converged system, counted by a
    // proxy: the same reads, plus the lookups a fresh process caches
    // (target groups by name, the task definition, the two alarms' tags,
    // the tasks' scale-in protection), and no write.
    let moto = FaultProxy::start(&m.account.moto_url, 0).await;
    let bridge = FaultProxy::start(&m.account.bridge_url, 0).await;
    let b = Ballast::via(&m.account, &moto.url, &bridge.url, &declared);
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.starts_with("No changes"), "{apply}");
    let mut seen = std::collections::BTreeMap::<String, u64>::new();
    for call in moto.calls().into_iter().chain(bridge.calls()) {
        assert!(call.succeeded(), "{call:?}");
        *seen.entry(call.operation).or_default() += 1;
    }
    let mut expected: std::collections::BTreeMap<String, u64> =
        converged_pass_reads().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    expected.insert("DescribeTargetGroups".into(), 1);
    expected.insert("DescribeTaskDefinition".into(), 1);
    expected.insert("ListTagsForResource".into(), 2);
    expected.insert("GetTaskProtection".into(), 1);
    assert_eq!(seen, expected, "the calls of `apply --once` on a converged system");
}

// ----- Conflicts: fields another actor manages -----

/// Everything the binary wrote through `proxy`, as `Operation` names.
/// `ballast` configured through fault proxies in front of moto and the
/// CloudWatch bridge, each faulting every `every`-th request (0: none).
async fn through_proxies(e: &E2e, every: u64) -> (FaultProxy, FaultProxy, Ballast) {
    let moto = FaultProxy::start(&e.m.account.moto_url, every).await;
    let bridge = FaultProxy::start(&e.m.account.bridge_url, every).await;
    let b = Ballast::via(&e.m.account, &moto.url, &bridge.url, &e.declared);
    (moto, bridge, b)
}

/// The service's scaling decision as `/status` shows it.
fn service_decision(c: &Controller<AwsCloud>) -> serde_json::Value {
    let status = c.status();
    let st = status.read().unwrap();
    let svc = st.resources.iter().find(|r| matches!(r.resource, ballast::plan::ResourceKey::Service { .. }));
    let raw = svc.and_then(|r| r.decision.as_ref()).expect("the decision is in /status");
    serde_json::from_str(raw.get()).expect("the decision is JSON")
}

fn writes_through(proxy: &FaultProxy) -> Vec<String> {
    proxy.writes().into_iter().map(|c| c.operation).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_a_service_with_its_own_load_balancers_keeps_its_target_group() {
    // The service registers its tasks in frontendTargetGroup itself (ECS
    // loadBalancers); backendTargetGroup is ballast's.
    let m = seeded_with(0, test_options()).await;
    let s = &m.system;
    m.actors.create_service_in_target_group("lbService", &s.task_definition_arn, 2, &s.frontend_arn).await;
    m.actors.start_tasks("lbService", 2).await;
    let mut declared = Declared::article(s);
    declared.service = "lbService".into();
    declared.scaling = None;
    declared.capacity = None;
    let moto = FaultProxy::start(&m.account.moto_url, 0).await;
    let bridge = FaultProxy::start(&m.account.bridge_url, 0).await;
    let b = Ballast::via(&m.account, &moto.url, &bridge.url, &declared);

    let plan = b.plan().await;
    assert_eq!(plan.code, 2, "the backend registrations are pending: {plan}");
    let (changes, held) = plan.stdout.split_once("\nHeld back:\n").unwrap_or_else(|| panic!("no holds: {plan}"));
    assert!(
        held.lines().any(|l| l.starts_with("  ! targetgroup/frontendTargetGroup [conflict]: ")
            && l.contains("loadBalancers")
            && l.contains("takeOver.loadBalancers")),
        "{plan}"
    );
    assert!(!changes.contains(&format!("target group {FRONTEND}:")), "nothing planned for the frontend: {plan}");
    let (_, json) = b.plan_json().await;
    let holds = json["holds"].as_array().unwrap();
    assert!(
        holds.iter().any(|h| h["kind"] == "conflict"
            && h["resource"]["type"] == "targetGroup"
            && h["resource"]["name"] == FRONTEND),
        "{json:#}"
    );

    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    let writes = moto.writes();
    assert!(!writes.is_empty(), "the backend targets are registered");
    for w in &writes {
        assert_eq!(w.operation, "RegisterTargets", "{w:?}");
        assert!(w.body.contains(&urlencode(&s.backend_arn)), "only the backend group is written: {w:?}");
    }
    assert!(targets_of(&m, FRONTEND).await.is_empty(), "the frontend is the service's to fill");
    assert_eq!(targets_of(&m, BACKEND).await, on_port(&s.instances, 8000));

    // takeOver.loadBalancers: ballast manages the frontend too.
    declared.take_over_load_balancers = true;
    b.declare(&declared);
    let plan = b.plan().await;
    assert_eq!(plan.code, 2, "{plan}");
    assert!(
        has_line(&plan, &format!("+ target group {FRONTEND}: register {}:80, {}:80", s.instances[0], s.instances[1])),
        "{plan}"
    );
    assert!(!plan.stdout.contains("[conflict]"), "{plan}");
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert_eq!(targets_of(&m, FRONTEND).await, on_port(&s.instances, 80));
    assert_no_changes(&b.plan().await);
}

/// The awsQuery encoding of a value (ARNs: `:` and `/`).
fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('/', "%2F")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_an_application_auto_scaling_target_keeps_the_desired_count() {
    let e = converged(2, |d| d.scaling = None).await;
    // Application Auto Scaling takes over the count and scales in below
    // ballast's minimum.
    e.m.actors.add_scalable_target(SERVICE).await;
    e.m.actors.set_desired_count(SERVICE, 1).await;
    let (moto, _bridge, b) = through_proxies(&e, 0).await;
    let mut declared = e.declared.clone();

    let plan = b.plan().await;
    assert_eq!(plan.code, 0, "ballast will change nothing: {plan}");
    assert!(
        plan.stdout.contains("\nHeld back:\n  ! service/appCluster/appService [conflict]: Application Auto Scaling"),
        "{plan}"
    );
    assert!(plan.stdout.contains("takeOver.desiredCount"), "the way out is named: {plan}");
    let (_, json) = b.plan_json().await;
    assert!(
        json["holds"].as_array().unwrap().iter().any(|h| h["kind"] == "conflict" && h["resource"]["type"] == "service"),
        "{json:#}"
    );
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert_eq!(writes_through(&moto), Vec::<String>::new(), "no write at all");
    assert_eq!(observed_service(&e.m).await.desired_count, 1);

    declared.take_over_desired_count = true;
    b.declare(&declared);
    let plan = b.plan().await;
    assert_eq!(plan.code, 2, "{plan}");
    assert!(has_line(&plan, "~ service appCluster/appService: desired count 1 -> 2"), "{plan}");
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    // The count, and its scaling mark on the service.
    assert_eq!(writes_through(&moto), vec!["UpdateService".to_string(), "TagResource".to_string()]);
    assert_eq!(observed_service(&e.m).await.desired_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflict_a_group_under_ecs_managed_scaling_keeps_its_capacity() {
    let e = converged(2, |_| {}).await;
    e.m.actors.tag_group_as_ecs_managed().await;
    // ECS managed scaling adds an instance ballast's tasks do not need.
    e.m.actors.set_capacity(3).await;
    let new = join_new_instances(&e.m).await;
    assert_eq!(new.len(), 1);
    let (moto, _bridge, b) = through_proxies(&e, 0).await;
    let mut declared = e.declared.clone();

    let plan = b.plan().await;
    assert_eq!(plan.code, 0, "ballast will change nothing: {plan}");
    let hold = format!(
        "\nHeld back:\n  ! autoscalinggroup/{GROUP} [conflict]: ECS managed scaling drives this group (AmazonECSManaged tag); \
         set takeOver.managedScaling to let ballast manage it; not applying: auto scaling group {GROUP}: \
         terminate empty instance {}",
        new[0]
    );
    assert!(plan.stdout.contains(&hold), "{plan}");
    let (_, json) = b.plan_json().await;
    assert!(
        json["holds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["kind"] == "conflict" && h["resource"]["type"] == "group" && h["resource"]["name"] == GROUP),
        "{json:#}"
    );
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert_eq!(writes_through(&moto), Vec::<String>::new(), "no write at all");
    assert_eq!(observed_group(&e.m).await.desired_capacity, 3);

    declared.capacity.as_mut().unwrap().take_over_managed_scaling = true;
    b.declare(&declared);
    let plan = b.plan().await;
    assert_eq!(plan.code, 2, "{plan}");
    assert!(has_line(&plan, &format!("- auto scaling group {GROUP}: terminate empty instance {}", new[0])), "{plan}");
    let apply = b.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    // The instance, and the capacity mark on the group.
    assert_eq!(
        writes_through(&moto),
        vec!["TerminateInstanceInAutoScalingGroup".to_string(), "CreateOrUpdateTags".to_string()]
    );
    assert_eq!(observed_group(&e.m).await.desired_capacity, 2);
}

/// Issue 12's fault matrix: with drift in the count, a registration and an
/// alarm, each read failing on every call in turn. `plan` and
/// `apply --once` name the failed read, never exit 0, and make no write
/// that depends on it; then the daemon reports the pass partial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_failing_on_every_call_holds_exactly_what_depends_on_it() {
    let e = converged(2, |d| d.scaling = Some(Some(60.0))).await;
    let s = e.m.system.clone();
    let [high, _] = ballast::plan::alarms::alarm_names(&s.service_id());
    let service_writes: &[&str] = &[
        "UpdateService",
        "RegisterTargets",
        "DeregisterTargets",
        "SetDesiredCapacity",
        "TerminateInstanceInAutoScalingGroup",
        "UpdateAutoScalingGroup",
    ];
    // (the failing read, at moto (true) or at the CloudWatch bridge, the
    // writes that depend on it)
    let matrix: &[(&str, bool, &[&str])] = &[
        ("DescribeServices", true, service_writes),
        ("ListTasks", true, service_writes),
        ("DescribeTasks", true, service_writes),
        ("DescribeScalableTargets", true, service_writes),
        ("DescribeContainerInstances", true, service_writes),
        ("DescribeTargetHealth", true, &["RegisterTargets", "DeregisterTargets"]),
        // The count is raised 1 -> 2: a scale-out waits for the group.
        (
            "DescribeAutoScalingGroups",
            true,
            &["UpdateService", "SetDesiredCapacity", "TerminateInstanceInAutoScalingGroup", "UpdateAutoScalingGroup"],
        ),
        ("DescribeAlarms", false, &["PutMetricAlarm"]),
        ("GetMetricData", false, &[]),
    ];
    for (read, at_moto, dependent) in matrix {
        e.m.actors.set_desired_count(SERVICE, 1).await;
        // Already gone where an earlier round left it deregistered.
        let _ = e.m.actors.try_deregister_target(&s.frontend_arn, &s.instances[0], 80).await;
        e.m.actors.set_alarm_threshold(&high, 95.0).await;
        let (moto, bridge, b) = through_proxies(&e, 1).await;
        let (failing, other) = if *at_moto { (&moto, &bridge) } else { (&bridge, &moto) };
        failing.set_only(Some(&[read]));
        // Refused rather than throttled: the adapter does not retry it, so
        // each round takes one attempt per call (the throttled case, with
        // its retries, is the daemon's below and the other outage tests').
        failing.set_error_code("AccessDeniedException");
        other.set_every(0);

        // `apply --once` prints the plan it makes, as `plan` would.
        let apply = b.apply().await;
        assert_eq!(apply.code, 3, "{read}: the plan is partial: {apply}");
        assert!(apply.stdout.contains(read), "{read}: the failed read is named: {apply}");
        if *read == "DescribeServices" {
            let plan = b.plan().await;
            assert_eq!(plan.code, 3, "{read}: {plan}");
        }
        let made: Vec<String> = writes_through(&moto).into_iter().chain(writes_through(&bridge)).collect();
        let blind: Vec<&String> = made.iter().filter(|w| dependent.contains(&w.as_str())).collect();
        assert!(blind.is_empty(), "{read} failed, yet {blind:?} were written: {apply}");
    }

    // The daemon: a partial pass, counted, and the gauge raised.
    let (moto, _bridge, b) = through_proxies(&e, 1).await;
    moto.set_only(Some(&["ListTasks"]));
    let d = b.daemon(&["--interval", "1s"]).await;
    let m = d
        .wait_for(Duration::from_secs(30), "a partial pass", async |d| {
            let m = d.metrics().await;
            if m.sum("ballast_reconcile_passes_total", &[r#"result="partial""#]) > 0.0 { Ok(m) } else { Err(m.0) }
        })
        .await;
    assert!(m.value("ballast_unread_inputs").is_some_and(|n| n > 0.0), "{}", m.0);
    assert_eq!(m.sum("ballast_reconcile_passes_total", &[r#"result="success""#]), 0.0, "{}", m.0);
    let st = d.status().await;
    assert_eq!(st["lastPass"]["result"], "partial", "{st:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn correcting_an_alarm_keeps_the_actions_someone_added() {
    let e = converged(2, |_| {}).await;
    let [high, _] = ballast::plan::alarms::alarm_names(&e.m.system.service_id());
    let page = format!("arn:aws:sns:{REGION}:{}:page-the-on-call", e.m.account.id);
    e.m.actors.edit_alarm(&high, 95.0, Some(vec![page.clone()])).await;
    let apply = e.ballast.apply().await;
    assert_eq!(apply.code, 0, "{apply}");
    assert!(apply.stdout.contains("threshold 95 -> "), "the threshold is corrected: {apply}");
    let a = e.m.actors.alarm(&high).await;
    assert_ne!(a.threshold(), Some(95.0));
    assert_eq!(a.alarm_actions(), [page], "PutMetricAlarm replaces the actions: ballast puts them back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_target_groups_and_alarms_are_held_never_rewritten_blind() {
    let e = converged(2, |_| {}).await;
    let s = e.m.system.clone();
    let [high, _] = ballast::plan::alarms::alarm_names(&s.service_id());
    // Three drifts; then the target health and alarm reads keep failing
    // (throttled past the retries).
    e.m.actors.set_desired_count(SERVICE, 1).await;
    e.m.actors.deregister_target(&s.frontend_arn, &s.instances[0], 80).await;
    e.m.actors.set_alarm_threshold(&high, 95.0).await;
    let (moto, bridge, b) = through_proxies(&e, 1).await;
    moto.set_only(Some(&["DescribeTargetHealth"]));
    bridge.set_only(Some(&["DescribeAlarms"]));

    let plan = b.plan().await;
    assert_eq!(plan.code, 3, "partial: an input could not be read: {plan}");
    assert!(has_line(&plan, "~ service appCluster/appService: desired count 1 -> 2"), "{plan}");
    for resource in [format!("targetgroup/{FRONTEND}"), format!("targetgroup/{BACKEND}"), format!("alarm/{high}")] {
        assert!(plan.stdout.contains(&format!("  ! {resource} [unobserved]: ")), "{resource} held: {plan}");
    }
    assert!(!plan.stdout.contains(": register ") && !plan.stdout.contains(": create ("), "{plan}");

    let apply = b.apply().await;
    assert_eq!(apply.code, 3, "what was read is applied, and the exit says the rest was not: {apply}");
    assert_eq!(
        writes_through(&moto),
        vec!["UpdateService".to_string(), "TagResource".to_string()],
        "only what was read is corrected (the count, and its scaling mark)"
    );
    assert_eq!(writes_through(&bridge), Vec::<String>::new(), "no alarm is put blind");

    // Readable again: the rest is corrected.
    moto.set_every(0);
    bridge.set_every(0);
    drift_is_found_and_corrected(
        &E2e { m: e.m, declared: e.declared.clone(), ballast: b },
        &[
            &format!("+ target group {FRONTEND}: register {}:80", s.instances[0]),
            "why: edited outside ballast: threshold 95 -> 70",
        ],
        2,
    )
    .await;
}

#[tokio::test]
async fn without_the_cloudwatch_bridge_the_rest_is_still_corrected() {
    // CloudWatch pointed at moto itself, which cannot read the CBOR that
    // aws-sdk-cloudwatch sends: as with an outage of CloudWatch alone, the
    // alarms are held and everything else is corrected.
    let e = converged(2, |_| {}).await;
    e.m.actors.set_desired_count(SERVICE, 1).await;
    let moto_url = e.m.account.moto_url.clone();
    let b = Ballast::via(&e.m.account, &moto_url, &moto_url, &e.declared);
    let plan = b.plan().await;
    assert_eq!(plan.code, 3, "partial: an input could not be read: {plan}");
    assert!(has_line(&plan, "~ service appCluster/appService: desired count 1 -> 2"), "{plan}");
    assert!(plan.stdout.contains("[unobserved]"), "the alarms are held: {plan}");
    let apply = b.apply().await;
    assert_eq!(apply.code, 3, "what was read is applied, and the exit says the rest was not: {apply}");
    assert_eq!(observed_service(&e.m).await.desired_count, 2);
}

// ----- CPU-alarm scaling -----

#[tokio::test]
async fn alarms_are_created_as_declared_and_the_scale_out_alarm_grows_tasks_then_capacity() {
    let E2e { m, ballast: b, .. } = declared(2, |_| {}).await;
    let s = &m.system;
    let (mut c, clock, _stop_tx, stop) = after_first_pass(&m, &b).await;

    // The alarms, read back from CloudWatch, are exactly as declared.
    let [high, low] = ballast::plan::alarms::alarm_names(&s.service_id());
    let req = m.actors.cloudwatch.describe_alarms();
    let out = req.alarm_names(&high).alarm_names(&low).send().await.unwrap();
    let alarms = out.metric_alarms();
    assert_eq!(alarms.len(), 2);
    for (name, rule, comparison) in [(&high, SCALE_OUT, "GreaterThanThreshold"), (&low, SCALE_IN, "LessThanThreshold")]
    {
        let a = alarms.iter().find(|a| a.alarm_name() == Some(name.as_str())).unwrap();
        assert_eq!(a.namespace(), Some("AWS/ECS"), "{name}");
        assert_eq!(a.metric_name(), Some("CPUUtilization"), "{name}");
        assert_eq!(a.statistic().map(|s| s.as_str()), Some("Average"), "{name}");
        assert_eq!(a.threshold(), Some(rule.threshold), "{name}");
        assert_eq!(a.comparison_operator().map(|c| c.as_str()), Some(comparison), "{name}");
        assert_eq!(a.period(), Some(rule.period_secs), "{name}");
        assert_eq!(a.evaluation_periods(), Some(rule.evaluation_periods), "{name}");
        assert_eq!(a.datapoints_to_alarm(), Some(rule.datapoints), "{name}");
        assert_eq!(a.treat_missing_data(), Some(MISSING_DATA), "{name}");
        let mut dims: Vec<(&str, &str)> =
            a.dimensions().iter().map(|d| (d.name().unwrap_or(""), d.value().unwrap_or(""))).collect();
        dims.sort();
        assert_eq!(dims, vec![("ClusterName", CLUSTER), ("ServiceName", SERVICE)], "{name}");
        let req = m.actors.cloudwatch.list_tags_for_resource();
        let tags = req.resource_arn(a.alarm_arn().unwrap()).send().await.unwrap();
        assert!(
            tags.tags().iter().any(|t| t.key() == Some("managed-by") && t.value() == Some("ballast")),
            "{name}: {:?}",
            tags.tags()
        );
    }

    // Unchanged alarms are never put again.
    let before = m.cloud.api_calls();
    for _ in 0..3 {
        clock.advance(Duration::from_secs(15));
        let outcome = c.pass(&stop).await;
        assert_eq!(outcome.planned, 0, "{outcome:?}");
    }
    let calls = m.cloud.api_calls().since(&before);
    assert_eq!(calls.of("PutMetricAlarm"), 0);
    assert_eq!(calls.writes(), 0, "{calls:#?}");

    assert_eq!(observed_group(&m).await.subnets, s.subnets, "2 instances: no on-demand subnet yet");

    // CloudWatch fires the scale-out alarm: the count goes up by the step,
    // the group follows (one task per instance), and with more than 3
    // instances needed the on-demand subnet joins the group.
    m.actors.set_alarm_state(&high, StateValue::Alarm).await;
    clock.advance(Duration::from_secs(15));
    let before = m.cloud.api_calls();
    let outcome = c.pass(&stop).await;
    assert_eq!((outcome.applied, outcome.failed), (3, 0), "{outcome:?}");
    let calls = m.cloud.api_calls().since(&before);
    for op in ["UpdateService", "SetDesiredCapacity", "UpdateAutoScalingGroup"] {
        assert_eq!(calls.of(op), 1, "{op}: {calls:#?}");
    }
    let grown = 2 + SCALE_OUT.step;
    assert_eq!(observed_service(&m).await.desired_count, grown);
    let g = observed_group(&m).await;
    assert_eq!(g.desired_capacity, grown, "one instance per task");
    let mut with_spare = s.subnets.clone();
    with_spare.push(s.spare_subnet.clone());
    assert_eq!(g.subnets, with_spare);
    let decision = service_decision(&c);
    assert_eq!(decision["reason"], "scale_out", "{decision:#}");

    // Still firing, but inside the 3-minute scale-out cooldown: nothing.
    clock.advance(Duration::from_secs(30));
    let before = m.cloud.api_calls();
    let outcome = c.pass(&stop).await;
    assert_eq!(outcome.planned, 0, "{outcome:?}");
    assert_eq!(m.cloud.api_calls().since(&before).writes(), 0);

    // ECS (played by the test) starts the new tasks on the new instances:
    // their targets are registered in both groups.
    let new = join_new_instances(&m).await;
    assert_eq!(new.len(), 2);
    m.actors.start_tasks(SERVICE, 2).await;
    clock.advance(Duration::from_secs(15));
    let before = m.cloud.api_calls();
    let outcome = c.pass(&stop).await;
    assert_eq!((outcome.applied, outcome.failed), (2, 0), "{outcome:?}");
    assert_eq!(m.cloud.api_calls().since(&before).of("RegisterTargets"), 2);
    let mut all = m.actors.group_instances().await;
    all.sort();
    assert_eq!(targets_of(&m, FRONTEND).await, on_port(&all, 80));
    assert_eq!(targets_of(&m, BACKEND).await, on_port(&all, 8000));
}

// ----- The daemon under faults -----

/// Whether the daemon's last pass succeeded and every resource is synced.
fn synced(status: &serde_json::Value) -> bool {
    status["lastPass"]["result"] == "success"
        && status["resources"].as_array().is_some_and(|rs| {
            !rs.is_empty()
                && rs.iter().all(|r| {
                    r["conditions"].as_array().unwrap().iter().any(|c| c["type"] == "Synced" && c["status"] == "True")
                })
        })
}

/// `ballast run --interval 1s`, once a pass has synced within `within`.
async fn synced_daemon(b: &Ballast, within: Duration) -> support::e2e::Daemon {
    let d = b.daemon(&["--interval", "1s"]).await;
    d.wait_for(within, "a synced pass", async |d| {
        let st = d.status().await;
        if synced(&st) { Ok(()) } else { Err(st.to_string()) }
    })
    .await;
    d
}

/// `ballast replay --cloud aws`: the history is the service's CPU average
/// and Container Insights' running task count, minute by minute, over the
/// wire through GetMetricData (moto, behind the CBOR bridge).
#[tokio::test]
async fn replay_reads_a_services_cpu_and_running_task_history_from_cloudwatch() {
    let account = Emulator::shared().account().await;
    let actors = account.actors();
    let minute = Duration::from_secs(60);
    // Whole minutes, some way back: CloudWatch buckets by period.
    let now = SystemTime::now();
    let since_epoch = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % 60) - 30 * minute;
    let recorded = [(40.0, 2), (95.0, 2), (70.0, 3), (62.0, 3), (50.0, 3)];
    for (i, (cpu, tasks)) in recorded.iter().enumerate() {
        let at = t0 + minute * i as u32;
        actors.put_cpu(SERVICE, *cpu, at).await;
        actors.put_running_tasks(SERVICE, *tasks, at).await;
    }
    // A minute with CPU but no task count is no row; nor is another service.
    actors.put_cpu(SERVICE, 10.0, t0 + 6 * minute).await;
    actors.put_cpu("otherService", 10.0, t0).await;

    let cloud = account.cloud(test_options());
    let h = cloud.history(&service_id(SERVICE), t0 - 10 * minute, now).await.unwrap().expect("a history");
    assert_eq!(h.source, format!("{CLUSTER}/{SERVICE}"));
    assert_eq!(h.started, Some(t0));
    let rows: Vec<(u64, f64, u32)> = h.rows.iter().map(|r| (r.at.as_secs(), r.cpu, r.tasks)).collect();
    let expected: Vec<(u64, f64, u32)> =
        recorded.iter().enumerate().map(|(i, (c, t))| (60 * i as u64, *c, *t)).collect();
    assert_eq!(rows, expected);
    assert_eq!(h.load(1.0)[1].1, 190.0, "the load is CPU x tasks");
    assert_eq!(h.duration, 5 * minute);
    // No datapoints at all: no history.
    let none = cloud.history(&service_id("absentService"), t0 - 10 * minute, now).await.unwrap();
    assert_eq!(none, None);
    assert_eq!(cloud.api_calls().of("GetMetricData"), 2);
}

/// `ballast replay --cloud aws` end to end: the binary reads the history
/// from CloudWatch and replays it through the declared policy.
#[tokio::test]
async fn replay_from_cloudwatch_reports_what_happened_and_each_policy() {
    let E2e { m, ballast: b, .. } = declared(2, |d| d.scaling = Some(Some(60.0))).await;
    let minute = Duration::from_secs(60);
    let since_epoch = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(since_epoch - since_epoch % 60) - 20 * minute;
    // Ten minutes at 2 tasks, the CPU at 50 % then 95 % for the last five.
    for i in 0..10u32 {
        let at = t0 + minute * i;
        m.actors.put_cpu(SERVICE, if i < 5 { 50.0 } else { 95.0 }, at).await;
        m.actors.put_running_tasks(SERVICE, 2, at).await;
    }
    let service = format!("{CLUSTER}/{SERVICE}");
    let out = b.run(&["replay", "--service", &service, "--since", "1h", "--output", "json"]).await;
    assert_eq!(out.code, 0, "{out}");
    let report: serde_json::Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["source"], service, "{report:#}");
    assert_eq!(report["durationSeconds"], 600, "{report:#}");
    assert_eq!(report["largestStepAtSeconds"], 300, "50 % to 95 % is the step: {report:#}");
    let rows = report["policies"].as_array().unwrap();
    assert_eq!(rows[0]["policy"], "what happened");
    assert_eq!(rows[0]["taskMinutes"], 20.0, "{report:#}");
    assert_eq!(rows[0]["minutesCpuAbove90"], 5.0, "{report:#}");
    let names: Vec<&str> = rows[1..].iter().map(|r| r["policy"].as_str().unwrap()).collect();
    assert!(names[0].starts_with("ballast ("), "{names:?}");
    assert_eq!(names[1..], ["ECS target tracking", "HPA"]);
    // ballast answers the step (95 % of 2 tasks needs 4 at 60 %).
    assert!(rows[1]["peakTasks"].as_u64().unwrap() >= 4, "{report:#}");
    // A service the desired state does not declare has no policy to replay.
    let out = b.run(&["replay", "--service", &format!("{CLUSTER}/nothingHere"), "--since", "1h"]).await;
    assert_eq!(out.code, 1, "{out}");
    assert!(out.stderr.contains("declares no Service for appCluster/nothingHere"), "{out}");
}

#[tokio::test]
async fn a_proportional_policy_sizes_its_step_by_the_cpu_read_from_cloudwatch() {
    let E2e { m, ballast: b, .. } = declared(2, |d| d.scaling = Some(Some(60.0))).await;
    // CloudWatch stamps datapoints with the wall clock: start there.
    let (mut c, clock, _stop_tx, stop) = after_first_pass_at(&m, &b, ManualClock::starting_at(SystemTime::now())).await;
    let [high, _] = ballast::plan::alarms::alarm_names(&m.system.service_id());

    // The alarm fires, but CloudWatch has no CPU value to size the step
    // by: a proportional policy holds and says why.
    m.actors.set_alarm_state(&high, StateValue::Alarm).await;
    clock.advance(Duration::from_secs(15));
    let outcome = c.pass(&stop).await;
    assert_eq!(outcome.planned, 0, "{outcome:?}");
    let d = service_decision(&c);
    assert_eq!(d["reason"], "no_data", "{d:#}");
    assert!(d["message"].as_str().unwrap().contains("no CPU datapoint"), "{d:#}");

    // 2 tasks at 80 % for a 60 % target: ceil(2 x 80 / 60) = 3 (the
    // declared step, used without targetCpu, would give 2 + 2).
    m.actors.put_cpu(SERVICE, 80.0, clock.now() - Duration::from_secs(60)).await;
    // The next metric period: CPU is read at most once per period (issue 15).
    clock.advance(Duration::from_secs(60));
    let outcome = c.pass(&stop).await;
    assert_eq!(outcome.failed, 0, "{outcome:?}");
    let d = service_decision(&c);
    assert_eq!(d["reason"], "scale_out", "{d:#}");
    assert_eq!(d["inputs"]["cpu"], 80.0, "{d:#}");
    assert_eq!(observed_service(&m).await.desired_count, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_survives_an_unreachable_cloud_and_resumes() {
    let e = converged(2, |_| {}).await;
    let (moto, bridge, b) = through_proxies(&e, 0).await;
    let d = synced_daemon(&b, Duration::from_secs(20)).await;
    assert_eq!(d.get("/healthz").await.0, 200);
    assert_eq!(d.metrics().await.value("ballast_cloud_reachable"), Some(1.0));

    // The endpoint goes away: connections are refused.
    moto.set_up(false);
    bridge.set_up(false);
    let reason = d
        .wait_for(Duration::from_secs(60), "/healthz to report the unreachable cloud", async |d| {
            let (code, body) = d.get("/healthz").await;
            let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
            let reason = v["reason"].as_str().unwrap_or_default().to_string();
            if code == 503 && reason.contains("the cloud was unreachable for the last") {
                Ok(reason)
            } else {
                Err(format!("{code} {body}"))
            }
        })
        .await;
    // The reason names the API family that failed first, whichever it was.
    assert!(
        ["ecs", "elbv2", "autoscaling", "cloudwatch"]
            .iter()
            .any(|family| reason.contains(&format!("{family} is unreachable"))),
        "{reason}"
    );
    assert_eq!(d.metrics().await.value("ballast_cloud_reachable"), Some(0.0));
    let st = d.status().await;
    assert_eq!(st["cloud"]["reachable"], false, "{st:#}");
    assert!(st["cloud"]["consecutiveFailures"].as_u64().unwrap() >= 3, "{st:#}");
    assert!(d.alive());

    // Meanwhile someone scales the service in; the endpoint comes back.
    e.m.actors.set_desired_count(SERVICE, 1).await;
    moto.set_up(true);
    bridge.set_up(true);
    d.wait_for(Duration::from_secs(30), "healthy again, with the drift corrected", async |d| {
        let (code, body) = d.get("/healthz").await;
        let reachable = d.metrics().await.value("ballast_cloud_reachable");
        let count = observed_service(&e.m).await.desired_count;
        if code == 200 && reachable == Some(1.0) && count == 2 {
            Ok(())
        } else {
            Err(format!("healthz {code} {body}; reachable {reachable:?}; desired count {count}"))
        }
    })
    .await;
    assert_eq!(moto.succeeded("UpdateService"), 1, "{:?}", writes_through(&moto));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_converges_through_throttling_without_duplicate_writes() {
    let e = converged(2, |_| {}).await;
    // A third of all calls, to every service, are throttled.
    let (moto, bridge, b) = through_proxies(&e, 3).await;
    let d = synced_daemon(&b, Duration::from_secs(30)).await;

    // Someone scales the service in below its minimum; the daemon puts it
    // back despite the throttling.
    e.m.actors.set_desired_count(SERVICE, 1).await;
    d.wait_for(Duration::from_secs(40), "the desired count corrected", async |_| {
        let count = observed_service(&e.m).await.desired_count;
        if count == 2 { Ok(()) } else { Err(format!("desired count {count}")) }
    })
    .await;

    // Stop throttling, let two more passes finish, then compare counts.
    moto.set_every(0);
    bridge.set_every(0);
    let passes = d.status().await["passes"].as_u64().unwrap();
    d.wait_for(Duration::from_secs(20), "two more passes", async |d| {
        let st = d.status().await;
        let n = st["passes"].as_u64().unwrap();
        if n >= passes + 2 && synced(&st) { Ok(()) } else { Err(st.to_string()) }
    })
    .await;

    let injected = moto.throttled() + bridge.throttled();
    assert!(injected >= 10, "the proxies throttled only {injected} calls");
    let m = d.metrics().await;
    let counted = m.sum("ballast_cloud_api_calls_total", &[r#"result="throttled""#]);
    assert_eq!(counted, injected as f64, "every throttled attempt is in /metrics");
    // Exactly one UpdateService went through, however many attempts it
    // took; nothing else was written but its scaling mark.
    assert_eq!(moto.succeeded("UpdateService"), 1, "{:#?}", moto.writes());
    let throttled_updates = moto.calls().iter().filter(|c| c.operation == "UpdateService" && c.injected).count();
    assert_eq!(moto.attempts("UpdateService"), 1 + throttled_updates, "every other attempt was a throttle");
    let written: Vec<Call> = moto.writes().into_iter().chain(bridge.writes()).filter(Call::succeeded).collect();
    let ops: Vec<&str> = written.iter().map(|c| c.operation.as_str()).collect();
    assert_eq!(ops, ["UpdateService", "TagResource"], "{written:#?}");
    assert!(d.alive());
}

// ---------------------------------------------------------------------
// The Cloud contract, on moto
// ---------------------------------------------------------------------

mod moto_contract {
    use super::*;

    // `contract::missing_group_changes_are_not_found` is not run here:
    // moto 5.2.5 answers SetDesiredCapacity / UpdateAutoScalingGroup on an
    // unknown group with an HTTP 500 (KeyError) instead of AWS's
    // ValidationError.
    crate::contract_suite!(seeded_world().await;);
}

// ---------------------------------------------------------------------
// The same contract, on the simulated cloud
// ---------------------------------------------------------------------

mod sim_contract {
    use std::sync::Arc;
    use std::time::Duration;

    use ballast::cloud::sim::{ContainerSpec, GroupSpec, ServiceSpec, SimCloud, SimConfig};
    use ballast::cloud::{Clock, ManualClock};
    use ballast::desired::{GroupId, ServiceId, TargetGroupId, TargetGroupRef, TargetType};
    use ballast::metrics::Metrics;

    use super::support::contract::{self, Fixture, Others, World};

    /// The simulation's own controls act for everyone else.
    pub struct SimOthers {
        sim: SimCloud,
        clock: Arc<ManualClock>,
    }

    impl Others for SimOthers {
        async fn set_desired_count(&self, service: &ServiceId, n: u32) {
            self.sim.set_desired_count(service, n).unwrap();
        }
        fn now(&self) -> std::time::SystemTime {
            self.clock.now()
        }
    }

    /// The article's system, built by hand in the simulation and run until
    /// the instances are in service and the tasks running.
    pub fn seeded() -> World<SimCloud, SimOthers> {
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
            minimum_healthy_percent: ballast::cloud::sim::DEFAULT_MINIMUM_HEALTHY_PERCENT,
            maximum_percent: ballast::cloud::sim::DEFAULT_MAXIMUM_PERCENT,
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
        World { cloud: sim.clone(), fixture, others: SimOthers { sim, clock } }
    }

    crate::contract_suite!(seeded(); missing_group_changes_are_not_found);
}

// ----- Scale-in by drain: task scale-in protection (issue 15) -----

/// A service ECS shows steady (an external deployment controller: moto
/// keeps a first ECS deployment in progress for ever, and ballast leaves a
/// deployment's tasks to it), at `desired` tasks with `tasks` of them
/// started.
async fn steady_service(m: &Moto, name: &str, desired: u32, tasks: u32) -> (ServiceId, Vec<String>) {
    let controller = aws_sdk_ecs::types::DeploymentController::builder()
        .r#type(aws_sdk_ecs::types::DeploymentControllerType::External)
        .build()
        .unwrap();
    let req = m.actors.ecs.create_service();
    req.cluster(CLUSTER)
        .service_name(name)
        .task_definition(&m.system.task_definition_arn)
        .desired_count(desired as i32)
        .launch_type(aws_sdk_ecs::types::LaunchType::Ec2)
        .deployment_controller(controller)
        .send()
        .await
        .unwrap();
    let arns = m.actors.start_tasks(name, tasks).await;
    assert_eq!(arns.len(), tasks as usize, "moto placed every task");
    (ServiceId { service: name.into(), ..m.system.service_id() }, arns)
}

fn declared_count(m: &Moto, name: &str, count: u32) -> Declared {
    let mut declared = Declared::article(&m.system);
    declared.service = name.into();
    declared.tasks = Tasks::Count(count);
    declared.scaling = None;
    declared.target_groups = false;
    declared.capacity = None;
    declared
}

/// A controller on the adapter, enforcing what `b` declares, on `clock`.
fn controller_for(m: &Moto, b: &Ballast, clock: Arc<dyn Clock>) -> Controller<AwsCloud> {
    let dir = b.dir.path();
    let desired = ballast::desired::load_dir(dir, REGION).expect("the declared documents are valid");
    let options = ControllerOptions {
        dir: dir.to_path_buf(),
        default_region: REGION.into(),
        interval: Duration::from_secs(15),
        dry_run: false,
    };
    Controller::new(m.cloud.clone(), clock, Arc::new(ballast::metrics::Metrics::new()), options, desired)
}

/// A controller whose clock starts at the wall clock (task protection
/// expires at AWS's time).
fn controller_now(m: &Moto, b: &Ballast) -> Controller<AwsCloud> {
    controller_for(m, b, Arc::new(ManualClock::starting_at(SystemTime::now())))
}

/// Each task's protection as GetTaskProtection answers it: (on, minutes left).
async fn protection_of(m: &Moto, arns: &[String]) -> Vec<(bool, u64)> {
    let out = m.actors.ecs.get_task_protection().cluster(CLUSTER).set_tasks(Some(arns.to_vec())).send().await;
    let out = out.expect("GetTaskProtection");
    arns.iter()
        .map(|arn| {
            let t =
                out.protected_tasks().iter().find(|t| t.task_arn() == Some(arn.as_str())).expect("every task answered");
            let left = t
                .expiration_date()
                .and_then(|d| SystemTime::try_from(*d).ok())
                .and_then(|d| d.duration_since(SystemTime::now()).ok())
                .map_or(0, |d| d.as_secs() / 60);
            (t.protection_enabled(), left)
        })
        .collect()
}

#[tokio::test]
async fn ballast_protects_the_serving_tasks_of_a_service_it_manages() {
    let m = seeded_with(0, test_options()).await;
    let (id, arns) = steady_service(&m, "protectedService", 2, 2).await;
    assert_eq!(protection_of(&m, &arns).await, vec![(false, 0), (false, 0)], "not protected before ballast");
    let b = Ballast::new(&m.account, &declared_count(&m, "protectedService", 2));
    let mut c = controller_now(&m, &b);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);

    let before = m.cloud.api_calls();
    let first = c.pass(&stop).await;
    assert_eq!((first.applied, first.failed), (1, 0), "one UpdateTaskProtection: {first:?}");
    let calls = m.cloud.api_calls().since(&before);
    assert_eq!((calls.of("GetTaskProtection"), calls.of("UpdateTaskProtection")), (1, 1));
    for (on, left) in protection_of(&m, &arns).await {
        assert!(on && (58..=60).contains(&left), "protected for ballast's hour: {left} min left");
    }

    // The adapter reads it back over the wire.
    let scope = Scope { services: vec![id.clone()], protection: vec![id.clone()], ..Scope::default() };
    let svc = m.cloud.observe(&scope).await.unwrap().services[&id].clone().unwrap();
    assert_eq!(svc.protection, ballast::observed::ProtectionRead::Read);
    assert!(svc.tasks.iter().all(|t| t.protected_until.is_some()), "{:?}", svc.tasks);

    // Protected: the next pass has nothing to do, and reuses the read
    // it made after its write.
    let second = c.pass(&stop).await;
    assert_eq!((second.planned, second.failed), (0, 0), "{second:?}");
}

#[tokio::test]
async fn a_scale_in_unprotects_exactly_the_drained_tasks() {
    let m = seeded_with(0, test_options()).await;
    // Two instances hold one task each.
    let (id, arns) = steady_service(&m, "shrinkingService", 2, 2).await;
    let b = Ballast::new(&m.account, &declared_count(&m, "shrinkingService", 2));
    let mut c = controller_now(&m, &b);
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    c.pass(&stop).await;
    assert!(protection_of(&m, &arns).await.iter().all(|(on, _)| *on), "both protected");

    // The declared count drops to 1. Without target groups, the chosen
    // task has nothing to drain: its protection comes off, and only once
    // a read shows that does the count drop, so ECS stops that task and
    // no other.
    let smaller = Ballast::new(&m.account, &declared_count(&m, "shrinkingService", 1));
    let desired = ballast::desired::load_dir(smaller.dir.path(), REGION).unwrap();
    c.replace_desired(smaller.dir.path().to_path_buf(), desired);
    let pass = c.pass(&stop).await;
    assert_eq!((pass.applied, pass.failed), (1, 0), "{pass:?}");
    let after: Vec<bool> = protection_of(&m, &arns).await.into_iter().map(|(on, _)| on).collect();
    assert_eq!(after.iter().filter(|on| !**on).count(), 1, "exactly one task unprotected: {after:?}");
    let desired_count = async || observed_service_id(&m, &id).await.desired_count;
    assert_eq!(desired_count().await, 2, "the count waits for the read that shows it");

    let pass = c.pass(&stop).await;
    assert_eq!((pass.applied, pass.failed), (1, 0), "{pass:?}");
    assert_eq!(desired_count().await, 1);
    let still: Vec<bool> = protection_of(&m, &arns).await.into_iter().map(|(on, _)| on).collect();
    assert_eq!(still, after, "the task that stays keeps its protection");
}

async fn observed_service_id(m: &Moto, id: &ServiceId) -> ballast::observed::ObservedService {
    let o = m.cloud.observe(&Scope { services: vec![id.clone()], ..Scope::default() }).await.unwrap();
    o.services[id].clone().expect("the service is observed")
}

/// Issue 15 item 3: AWS terminates an instance running a task (the group
/// has ballast's termination hook): it waits in `Terminating:Wait`; ballast
/// takes the task's targets out, records a heartbeat, sets the container
/// instance to DRAINING once the lag has passed, and completes the
/// lifecycle action only once no task is left (ECS, played by the test,
/// stops it), never while its targets are in the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_in_terminating_wait_is_completed_only_after_its_targets_are_gone() {
    let E2e { m, ballast: b, .. } = declared(2, |d| d.capacity.as_mut().unwrap().termination_hook = Some("10m")).await;
    let clock = Arc::new(ManualClock::starting_at(SystemTime::now()));
    let mut c = controller_for(&m, &b, clock.clone());
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let before = m.cloud.api_calls();
    let first = c.pass(&stop).await;
    assert_eq!(first.failed, 0, "{first:?}");
    assert_eq!(m.cloud.api_calls().since(&before).of("PutLifecycleHook"), 1);

    let svc = observed_service(&m).await;
    let task = svc.tasks.iter().find(|t| t.instance_id.is_some()).expect("a seeded task on an instance").clone();
    let victim = task.instance_id.clone().unwrap();
    assert!(targets_of(&m, FRONTEND).await.iter().any(|t| t.id == victim), "the task is routed");
    let req = m.actors.autoscaling.terminate_instance_in_auto_scaling_group();
    req.instance_id(&victim).should_decrement_desired_capacity(false).send().await.unwrap();
    let waiting = |g: &ballast::observed::ObservedGroup| {
        g.instances.iter().any(|i| i.id == victim && i.lifecycle_state == ballast::observed::Lifecycle::TerminatingWait)
    };
    assert!(waiting(&observed_group(&m).await), "the hook holds the instance");

    // Its targets leave; no completion while the task is there.
    let before = m.cloud.api_calls();
    let mut drained_at = None;
    for pass in 0..12 {
        clock.advance(Duration::from_secs(30));
        let outcome = c.pass(&stop).await;
        assert_eq!(outcome.failed, 0, "{outcome:?}");
        for name in [FRONTEND, BACKEND] {
            assert!(!targets_of(&m, name).await.iter().any(|t| t.id == victim), "{name}: out after the first pass");
        }
        if m.cloud.api_calls().since(&before).of("UpdateContainerInstancesState") > 0 {
            drained_at = Some(pass);
            break;
        }
    }
    let calls = m.cloud.api_calls().since(&before);
    assert!(drained_at.is_some_and(|p| p >= 3), "DRAINING only after the propagation lag: {drained_at:?}");
    assert_eq!(calls.of("CompleteLifecycleAction"), 0, "the task is still on the instance");
    assert!(calls.of("RecordLifecycleActionHeartbeat") >= 1, "{calls:#?}");
    let g = observed_group(&m).await;
    assert!(waiting(&g), "still waiting");
    let ci = g.instances.iter().find(|i| i.id == victim).and_then(|i| i.container_instance.clone());
    assert!(ci.is_some_and(|c| c.draining), "the container instance is DRAINING");

    // ECS stops the task: the action completes and the instance goes.
    m.actors.stop_task(&task.arn).await;
    clock.advance(Duration::from_secs(15));
    let before = m.cloud.api_calls();
    let outcome = c.pass(&stop).await;
    assert_eq!(outcome.failed, 0, "{outcome:?}");
    assert_eq!(m.cloud.api_calls().since(&before).of("CompleteLifecycleAction"), 1);
    assert!(!observed_group(&m).await.instances.iter().any(|i| i.id == victim), "terminated");
}

/// The surge mark goes over the wire as the service's tag and reads back
/// as written; the deployment configuration's maximumPercent is read.
#[tokio::test]
async fn a_surge_mark_is_written_as_a_tag_and_read_back() {
    let m = seeded_with(2, test_options()).await;
    let svc = observed_service(&m).await;
    assert_eq!(svc.surge_mark, None);
    let mark = ballast::observed::SurgeMark { deployment: "ecs-svc/1".into(), counts: vec![(3, 2), (2, 2)] };
    let change = Change::MarkSurge { service: m.system.service_id(), service_arn: svc.arn.clone(), mark: mark.clone() };
    m.cloud.apply(&change).await.unwrap();
    let tags = m.actors.ecs.list_tags_for_resource().resource_arn(&svc.arn).send().await.unwrap();
    let value = tags.tags().iter().find(|t| t.key() == Some(marks::DEPLOYMENT_SURGE)).and_then(|t| t.value());
    assert_eq!(value, Some("ecs-svc/1 3=2 2=2"), "{:?}", tags.tags());
    assert_eq!(observed_service(&m).await.surge_mark, Some(mark));

    // deploy/'s configuration, as the stack sets it.
    let config =
        aws_sdk_ecs::types::DeploymentConfiguration::builder().minimum_healthy_percent(0).maximum_percent(100).build();
    let req = m.actors.ecs.update_service().cluster(&m.system.service_id().cluster).service(&svc.arn);
    req.deployment_configuration(config).send().await.unwrap();
    assert_eq!(observed_service(&m).await.maximum_percent, Some(100));
}
