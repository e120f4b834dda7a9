//! The contract every [`Cloud`] implementation keeps, written once and run
//! against each: the AWS adapter on moto (`tests/aws.rs`) and the simulated
//! cloud (instantiated by its own tests).
//!
//! # How to run it against an implementation
//!
//! Build a [`World`] on a freshly seeded instance of the article's
//! system (one ECS service with running tasks, an Auto Scaling group with
//! at least two instances, two target groups, all in one region) and an
//! [`Others`] that acts for everyone else, then call each `pub async fn`
//! of this module with it, e.g.
//!
//! ```ignore
//! #[path = "support/contract.rs"]
//! mod contract; // depends on `ballast` only, not on the SDK or the emulator
//!
//! #[tokio::test]
//! async fn contract_set_desired_count() {
//!     contract::set_desired_count_is_observed_and_idempotent(&my_world().await).await;
//! }
//! ```
//!
//! The suite: [`observe_sees_the_seeded_system`],
//! [`set_desired_count_is_observed_and_idempotent`],
//! [`out_of_band_desired_count_is_observed`],
//! [`targets_register_and_deregister_idempotently`],
//! [`alarms_are_put_and_observed_exactly`],
//! [`group_capacity_and_subnets_are_observed_and_idempotent`],
//! [`missing_resources_are_not_found`],
//! [`missing_group_changes_are_not_found`],
//! [`scaling_changes_leave_marks_read_back_by_observe`].
//!
//! Each function uses its own world (a fresh seed), so they can run in
//! parallel. Only behaviour both moto and AWS show is asserted here;
//! what moto does not model (health checks, draining, alarm evaluation) is
//! the simulated cloud's own tests' business.

#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, SystemTime};

use ballast::cloud::{Cloud, CloudError, Scope};
use ballast::desired::{GroupId, MissingData, ServiceId, TargetGroupId, TargetGroupRef};
use ballast::observed::{
    AlarmDefinition, Observed, ObservedService, ScalingMarks, ServiceStatus, Target, TargetGroupType,
};
use ballast::plan::Change;

/// Names and ids of the seeded system, as the suite needs them.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub service: ServiceId,
    /// Tasks of the service that run when the world is seeded.
    pub running_tasks: usize,
    pub group: GroupId,
    /// The cluster the group's instances join.
    pub cluster: String,
    /// Target groups by name, with their ARNs. Both start without targets
    /// (the service has no loadBalancers of its own).
    pub frontend: (TargetGroupId, String),
    pub backend: (TargetGroupId, String),
    /// Instance ids of the group (at least two), sorted.
    pub instances: Vec<String>,
    /// The group's subnets, and one more it does not use.
    pub subnets: Vec<String>,
    pub spare_subnet: String,
}

/// What the suite runs against: a freshly seeded implementation, its
/// fixture, and `others` acting for everyone but the controller.
pub struct World<C, O> {
    /// The implementation under test.
    pub cloud: C,
    pub fixture: Fixture,
    pub others: O,
}

/// The test-side controls the suite needs. Kept small on purpose: each
/// method is something another actor does, or what the implementation's
/// clock reads.
pub trait Others: Send + Sync {
    /// Another actor (a person, an autoscaler) sets `service`'s desired
    /// count behind the controller's back.
    fn set_desired_count(&self, service: &ServiceId, n: u32) -> impl Future<Output = ()> + Send;
    /// The time on the implementation's clock (what its writes stamp).
    fn now(&self) -> SystemTime;
}

impl<C: Cloud, O: Others> World<C, O> {
    async fn set_desired_count_out_of_band(&self, n: u32) {
        self.others.set_desired_count(&self.fixture.service, n).await;
    }

    fn now(&self) -> SystemTime {
        self.others.now()
    }
}

/// The scope that covers the whole fixture.
pub fn scope(f: &Fixture) -> Scope {
    Scope {
        services: vec![f.service.clone()],
        target_groups: vec![f.frontend.0.clone(), f.backend.0.clone()],
        alarms: alarm_names(f).into_iter().map(|n| (f.service.region.clone(), n)).collect(),
        cpu: vec![],
        task_sizes: vec![],
        groups: vec![(f.group.clone(), f.cluster.clone())],
        ..Scope::default()
    }
}

fn alarm_names(f: &Fixture) -> Vec<String> {
    ballast::plan::alarms::alarm_names(&f.service).to_vec()
}

async fn observe<C: Cloud, O: Others>(w: &World<C, O>) -> Observed {
    w.cloud.observe(&scope(&w.fixture)).await.expect("observe succeeds")
}

async fn service<C: Cloud, O: Others>(w: &World<C, O>) -> ObservedService {
    let o = observe(w).await;
    o.services[&w.fixture.service].clone().expect("the service is observed")
}

async fn apply<C: Cloud, O: Others>(w: &World<C, O>, change: Change) {
    w.cloud.apply(&change).await.unwrap_or_else(|e| panic!("{change}: {e}"));
}

/// The seeded system is observed as seeded: the service with its tasks
/// placed on the group's instances, both target groups, the group with
/// its instances and subnets, no alarms yet.
pub async fn observe_sees_the_seeded_system<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let o = observe(w).await;
    let svc = o.services[&f.service].as_ref().expect("service");
    assert_eq!(svc.status, ServiceStatus::Active);
    let serving: Vec<_> = svc.tasks.iter().filter(|t| t.is_serving()).collect();
    assert_eq!(serving.len(), f.running_tasks, "{:#?}", svc.tasks);
    for t in &serving {
        let on = t.instance_id.as_deref().expect("task placed on an instance");
        assert!(f.instances.iter().any(|i| i == on), "{on} not in the group");
    }
    for tg in [&f.frontend, &f.backend] {
        let seen = o.target_groups[&tg.0].as_ref().expect("target group");
        assert_eq!(seen.arn, tg.1);
        assert_eq!(seen.target_type, TargetGroupType::Instance);
    }
    let g = o.groups[&f.group].as_ref().expect("group");
    let mut ids: Vec<_> = g.instances.iter().map(|i| i.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, f.instances);
    assert_eq!(g.subnets, f.subnets);
    for name in alarm_names(f) {
        assert!(!o.alarms.contains_key(&(f.service.region.clone(), name.clone())), "alarm {name} should not exist yet");
    }
}

/// SetDesiredCount is observed, and applying it twice changes nothing more.
pub async fn set_desired_count_is_observed_and_idempotent<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let before = service(w).await.desired_count;
    let change = Change::SetDesiredCount { service: f.service.clone(), from: before, to: before + 3 };
    apply(w, change.clone()).await;
    assert_eq!(service(w).await.desired_count, before + 3);
    apply(w, change).await;
    assert_eq!(service(w).await.desired_count, before + 3);
}

/// A desired count changed by someone else is what the next observe sees.
pub async fn out_of_band_desired_count_is_observed<C: Cloud, O: Others>(w: &World<C, O>) {
    w.set_desired_count_out_of_band(7).await;
    assert_eq!(service(w).await.desired_count, 7);
}

/// Registering and deregistering targets (with ports) is observed, and
/// both are idempotent.
pub async fn targets_register_and_deregister_idempotently<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let (tg, arn) = &f.frontend;
    let target = Target { id: f.instances[0].clone(), port: 80 };
    let region = f.service.region.clone();
    let register = Change::RegisterTargets {
        region: region.clone(),
        target_group_arn: arn.clone(),
        targets: vec![target.clone()],
    };
    // A deregistered target drains first in AWS (and in the simulation);
    // moto drops it at once. Either way it no longer takes traffic.
    let targets_of = |o: &Observed| -> Vec<Target> {
        o.target_groups[tg]
            .as_ref()
            .expect("target group")
            .targets
            .iter()
            .filter(|t| t.health != ballast::observed::TargetHealth::Draining)
            .map(|t| t.target.clone())
            .collect()
    };
    apply(w, register.clone()).await;
    assert_eq!(targets_of(&observe(w).await), vec![target.clone()]);
    apply(w, register).await;
    assert_eq!(targets_of(&observe(w).await), vec![target.clone()], "registered once");

    let deregister = Change::DeregisterTargets { region, target_group_arn: arn.clone(), targets: vec![target] };
    apply(w, deregister.clone()).await;
    assert_eq!(targets_of(&observe(w).await), vec![]);
    apply(w, deregister).await;
    assert_eq!(targets_of(&observe(w).await), vec![]);
}

/// The scale-out alarm of the fixture's service, as the planner would
/// define it.
pub fn cpu_high_alarm(f: &Fixture, threshold: f64) -> AlarmDefinition {
    AlarmDefinition {
        evaluation_periods: 3,
        datapoints_to_alarm: 2,
        missing_data: MissingData::NotBreaching,
        description: "ballast: scale out appService".into(),
        ..AlarmDefinition::service_cpu(alarm_names(f)[0].clone(), &f.service, threshold)
    }
}

/// PutAlarm creates an alarm observed with exactly its definition;
/// putting it again is a no-op; a changed definition replaces it.
pub async fn alarms_are_put_and_observed_exactly<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let region = f.service.region.clone();
    let def = cpu_high_alarm(f, 70.0);
    let key = (region.clone(), def.name.clone());
    let put = |alarm: AlarmDefinition, create: bool| Change::PutAlarm { region: region.clone(), alarm, create };
    apply(w, put(def.clone(), true)).await;
    let seen = observe(w).await.alarms[&key].clone().expect("alarm");
    assert_eq!(seen.definition, def);
    apply(w, put(def.clone(), false)).await;
    assert_eq!(observe(w).await.alarms[&key].clone().unwrap().definition, def);
    let raised = cpu_high_alarm(f, 85.0);
    apply(w, put(raised.clone(), false)).await;
    assert_eq!(observe(w).await.alarms[&key].clone().unwrap().definition, raised);
}

/// SetDesiredCapacity and SetGroupSubnets are observed and idempotent.
pub async fn group_capacity_and_subnets_are_observed_and_idempotent<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let group = |o: Observed| o.groups[&f.group].clone().expect("group");
    let before = group(observe(w).await).desired_capacity;
    let capacity = Change::SetDesiredCapacity { group: f.group.clone(), from: before, to: before + 1 };
    apply(w, capacity.clone()).await;
    assert_eq!(group(observe(w).await).desired_capacity, before + 1);
    apply(w, capacity).await;
    let g = group(observe(w).await);
    assert_eq!(g.desired_capacity, before + 1);

    let mut to = f.subnets.clone();
    to.push(f.spare_subnet.clone());
    let subnets = Change::SetGroupSubnets { group: f.group.clone(), from: f.subnets.clone(), to: to.clone() };
    apply(w, subnets.clone()).await;
    assert_eq!(group(observe(w).await).subnets, to);
    apply(w, subnets).await;
    assert_eq!(group(observe(w).await).subnets, to);
}

/// Changes naming resources that do not exist fail with NotFound, and
/// observing them yields per-resource NotFound, not a failed pass.
pub async fn missing_resources_are_not_found<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let region = f.service.region.clone();
    let ghost_service = ServiceId { service: "ghostService".into(), ..f.service.clone() };
    let ghost_group = GroupId { region: region.clone(), name: "ghostGroup".into() };
    let ghost_tg =
        TargetGroupId { region: region.clone(), target_group: TargetGroupRef::Name("ghostTargetGroup".into()) };
    let ghost_tg_arn =
        format!("arn:aws:elasticloadbalancing:{region}:123456789012:targetgroup/ghostTargetGroup/0123456789abcdef");

    let scope = Scope {
        services: vec![ghost_service.clone(), f.service.clone()],
        target_groups: vec![ghost_tg.clone(), f.frontend.0.clone()],
        groups: vec![(ghost_group.clone(), f.cluster.clone()), (f.group.clone(), f.cluster.clone())],
        ..Scope::default()
    };
    let o = w.cloud.observe(&scope).await.expect("a pass with missing resources still succeeds");
    assert!(
        matches!(o.services[&ghost_service], Err(ballast::observed::ResourceError::NotFound(_))),
        "{:?}",
        o.services[&ghost_service]
    );
    assert!(o.services[&f.service].is_ok(), "the others are still observed");
    assert!(matches!(o.target_groups[&ghost_tg], Err(ballast::observed::ResourceError::NotFound(_))));
    assert!(o.target_groups[&f.frontend.0].is_ok());
    assert!(matches!(o.groups[&ghost_group], Err(ballast::observed::ResourceError::NotFound(_))));
    assert!(o.groups[&f.group].is_ok());

    let not_found = |r: Result<(), CloudError>, what: &str| match r {
        Err(CloudError::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    };
    not_found(
        w.cloud.apply(&Change::SetDesiredCount { service: ghost_service, from: 1, to: 2 }).await,
        "SetDesiredCount",
    );
    not_found(
        w.cloud
            .apply(&Change::RegisterTargets {
                region: region.clone(),
                target_group_arn: ghost_tg_arn.clone(),
                targets: vec![Target { id: f.instances[0].clone(), port: 80 }],
            })
            .await,
        "RegisterTargets",
    );
    not_found(
        w.cloud
            .apply(&Change::DeregisterTargets {
                region: region.clone(),
                target_group_arn: ghost_tg_arn,
                targets: vec![Target { id: f.instances[0].clone(), port: 80 }],
            })
            .await,
        "DeregisterTargets",
    );
}

/// Group changes naming a group that does not exist fail with NotFound.
/// (Not run on moto 5.2.5, which answers these with an HTTP 500 KeyError
/// instead of AWS's `ValidationError: AutoScalingGroup name not found`;
/// the mapping of that error is unit-tested in the adapter.)
pub async fn missing_group_changes_are_not_found<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let ghost_group = GroupId { region: f.group.region.clone(), name: "ghostGroup".into() };
    for change in [
        Change::SetDesiredCapacity { group: ghost_group.clone(), from: 1, to: 2 },
        Change::SetGroupSubnets { group: ghost_group, from: vec![], to: f.subnets.clone() },
    ] {
        match w.cloud.apply(&change).await {
            Err(CloudError::NotFound(_)) => {}
            other => panic!("{change}: expected NotFound, got {other:?}"),
        }
    }
}

/// Whether a mark's time is that of a write made between `before` and
/// `after`, to the second (marks are whole seconds, rounded up; the AWS
/// adapter's clock and the test's may differ by microseconds).
fn stamped_between(at: SystemTime, before: SystemTime, after: SystemTime) -> bool {
    let second = Duration::from_secs(1);
    at + second >= before && at <= after + second
}

/// A desired-count change leaves its scaling mark on the service (when,
/// and the count it set), and a capacity change its mark on the group:
/// the next observe reads them back. A process that starts keeps its
/// cooldowns from them.
pub async fn scaling_changes_leave_marks_read_back_by_observe<C: Cloud, O: Others>(w: &World<C, O>) {
    let f = &w.fixture;
    let svc = service(w).await;
    assert_eq!(svc.scaling_marks, ScalingMarks::default(), "the seeded service has never been scaled by ballast");
    let n = svc.desired_count;

    let before = w.now();
    apply(w, Change::SetDesiredCount { service: f.service.clone(), from: n, to: n + 2 }).await;
    let after = w.now();
    let marks = service(w).await.scaling_marks;
    let (at, count) = marks.last_out.expect("a scale-out leaves its mark");
    assert_eq!(count, n + 2);
    assert!(stamped_between(at, before, after), "{at:?} not within {before:?}..{after:?}");
    assert_eq!(marks.last_in, None);

    let before = w.now();
    apply(w, Change::SetDesiredCount { service: f.service.clone(), from: n + 2, to: n + 1 }).await;
    let after = w.now();
    let marks = service(w).await.scaling_marks;
    let (at, count) = marks.last_in.expect("a scale-in leaves its mark");
    assert_eq!(count, n + 1);
    assert!(stamped_between(at, before, after), "{at:?} not within {before:?}..{after:?}");
    assert_eq!(marks.last_out.map(|(_, c)| c), Some(n + 2), "the scale-out mark stays");

    let group = |o: Observed| o.groups[&f.group].clone().expect("group");
    let g = group(observe(w).await);
    assert_eq!(g.last_capacity_change, None, "the seeded group has never been changed by ballast");
    let before = w.now();
    let to = g.desired_capacity + 1;
    apply(w, Change::SetDesiredCapacity { group: f.group.clone(), from: g.desired_capacity, to }).await;
    let after = w.now();
    let at = group(observe(w).await).last_capacity_change.expect("a capacity change leaves its mark");
    assert!(stamped_between(at, before, after), "{at:?} not within {before:?}..{after:?}");
}

/// One `#[tokio::test]` per contract check, each on the world that
/// `$world` builds (an expression, awaited where the caller writes so):
/// every check both clouds pass, then the ones named after `;` (checks
/// one implementation cannot run, each with its reason at the call).
#[macro_export]
macro_rules! contract_suite {
    ($world:expr; $($extra:ident),* $(,)?) => {
        $crate::contract_suite!(
            @tests $world;
            observe_sees_the_seeded_system,
            set_desired_count_is_observed_and_idempotent,
            out_of_band_desired_count_is_observed,
            targets_register_and_deregister_idempotently,
            alarms_are_put_and_observed_exactly,
            group_capacity_and_subnets_are_observed_and_idempotent,
            missing_resources_are_not_found,
            scaling_changes_leave_marks_read_back_by_observe,
            $($extra),*
        );
    };
    (@tests $world:expr; $($check:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $check() {
                contract::$check(&$world).await;
            }
        )+
    };
}
