//! The loop on the simulated cloud, in virtual time.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::*;
use crate::cloud::sim::{SimCloud, SimConfig};
use crate::cloud::{CloudError, TokioClock};
use crate::desired::{DesiredState, TaskCount};

fn example() -> DesiredState {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    crate::desired::load_dir(&dir, "us-east-2").expect("the example is valid")
}

struct Bed {
    sim: SimCloud,
    ctl: Controller<SimCloud>,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    _stop_tx: watch::Sender<bool>,
}

fn bed(desired: DesiredState) -> Bed {
    bed_with(desired, SimConfig::default())
}

fn bed_with(desired: DesiredState, config: SimConfig) -> Bed {
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let metrics = Arc::new(Metrics::new());
    let sim = SimCloud::from_desired(&desired, true, clock.clone(), 7, metrics.clone(), config);
    let options = Options {
        dir: PathBuf::from("unused"),
        default_region: "us-east-2".into(),
        interval: Duration::from_secs(15),
        dry_run: false,
    };
    let ctl = Controller::new(sim.clone(), clock.clone(), metrics.clone(), options, desired);
    let (tx, stop) = watch::channel(false);
    Bed { sim, ctl, clock, metrics, stop, _stop_tx: tx }
}

impl Bed {
    /// A new controller on the same cloud, with no memory: a restart.
    fn restart(&mut self) {
        let options = self.ctl.options.clone();
        let desired = self.ctl.desired().clone();
        self.ctl = Controller::new(self.sim.clone(), self.clock.clone(), self.metrics.clone(), options, desired);
    }

    /// Passes every 5 s of virtual time until one plans nothing.
    async fn converge(&mut self) -> u32 {
        for n in 1..=60 {
            let out = self.ctl.pass(&self.stop).await;
            if out.planned == 0 {
                return n;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        panic!("did not converge in 60 passes");
    }
}

#[tokio::test(start_paused = true)]
async fn converges_and_a_converged_pass_writes_nothing() {
    let mut b = bed(example());
    let first = b.ctl.pass(&b.stop).await;
    assert!(first.applied >= 3, "the simulated drift is corrected: {first:?}");
    b.converge().await;
    b.sim.reset_calls();
    let out = b.ctl.pass(&b.stop).await;
    assert_eq!(out, PassOutcome { retry_in: out.retry_in, ..PassOutcome::default() });
    let writes: Vec<_> = b.sim.calls().into_iter().filter(|c| c.write).collect();
    assert!(writes.is_empty(), "{writes:?}");
    assert_eq!(b.sim.call_count("DescribeServices"), 1, "one service: one DescribeServices call");
    let st = b.ctl.status();
    let st = st.read().unwrap();
    assert!(st.resources.iter().all(|r| r.conditions.iter().any(|c| c.kind == "Synced" && c.status == "True")));
}

#[tokio::test(start_paused = true)]
async fn a_failing_change_backs_off_and_does_not_stop_the_others() {
    let mut b = bed(example());
    b.sim.fail_next(
        "UpdateService",
        CloudError::Rejected { service: "ecs", operation: "UpdateService", message: "boom".into() },
    );
    let out = b.ctl.pass(&b.stop).await;
    assert_eq!(out.failed, 1);
    assert!(out.applied >= 3, "targets and alarms still applied: {out:?}");
    let retry = out.retry_in.expect("a retry is scheduled");
    assert!(retry <= Duration::from_millis(960), "first backoff is about 800 ms: {retry:?}");
    {
        let st = b.ctl.status();
        let st = st.read().unwrap();
        let svc = st.resources.iter().find(|r| matches!(r.resource, ResourceKey::Service { .. })).unwrap();
        assert!(svc.last_error.as_deref().unwrap().contains("boom"));
        assert!(svc.conditions.iter().any(|c| c.kind == "Synced" && c.reason == "ApplyFailed"));
    }
    // Before the backoff is due the change is not retried.
    b.sim.reset_calls();
    b.ctl.pass(&b.stop).await;
    assert_eq!(b.sim.call_count("UpdateService"), 0);
    tokio::time::sleep(retry).await;
    let out = b.ctl.pass(&b.stop).await;
    assert_eq!(b.sim.call_count("UpdateService"), 1);
    assert_eq!(out.failed, 0);
    assert!(b.metrics.render().contains(r#"ballast_changes_applied_total{kind="desired_count",result="rejected"} 1"#));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_cloud_is_reported_backed_off_and_recovered() {
    let mut b = bed(example());
    b.sim.set_unreachable(true);
    let mut delays = Vec::new();
    for _ in 0..3 {
        let out = b.ctl.pass(&b.stop).await;
        assert!(out.unreachable);
        delays.push(out.retry_in.unwrap());
    }
    assert!(delays[2] > delays[0], "backs off: {delays:?}");
    {
        let st = b.ctl.status();
        let st = st.read().unwrap();
        assert_eq!(st.cloud.consecutive_failures, 3);
        assert!(!st.cloud.reachable);
    }
    assert!(b.metrics.render().contains("ballast_cloud_reachable 0"));
    b.sim.set_unreachable(false);
    let out = b.ctl.pass(&b.stop).await;
    assert!(!out.unreachable && out.applied > 0);
    assert_eq!(b.ctl.status().read().unwrap().cloud.consecutive_failures, 0);
}

#[tokio::test(start_paused = true)]
async fn an_actor_that_keeps_reverting_the_count_is_not_fought() {
    let mut desired = example();
    desired.services[0].tasks = TaskCount::Fixed(3);
    let id = desired.services[0].id.clone();
    let mut b = bed(desired);
    let mut writes = 0;
    for _ in 0..12 {
        b.sim.reset_calls();
        b.ctl.pass(&b.stop).await;
        writes += b.sim.call_count("UpdateService");
        // The other actor sets it back before the next pass.
        b.sim.set_desired_count(&id, 2).unwrap();
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let limit = crate::plan::FightPolicy::default().max_reverts;
    assert_eq!(writes, limit, "ballast stops after {limit} reverts");
    let st = b.ctl.status();
    let st = st.read().unwrap();
    let svc = st.resources.iter().find(|r| matches!(r.resource, ResourceKey::Service { .. })).unwrap();
    assert!(svc.conditions.iter().any(|c| c.kind == "Contested"), "{:?}", svc.conditions);
    assert!(
        b.metrics.render().contains("ballast_contested_fields{field=\"desired count of appCluster/appService\"} 1")
    );
}

#[tokio::test(start_paused = true)]
async fn dry_run_changes_nothing() {
    let mut b = bed(example());
    b.ctl.options.dry_run = true;
    b.sim.reset_calls();
    let out = b.ctl.pass(&b.stop).await;
    assert!(out.planned > 0 && out.applied == 0);
    assert!(b.sim.calls().iter().all(|c| !c.write));
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_leaves_the_remaining_changes_for_later() {
    let mut b = bed(example());
    let (tx, stop) = watch::channel(true);
    let out = b.ctl.pass(&stop).await;
    drop(tx);
    assert!(out.planned > 0);
    assert_eq!(out.applied, 0);
}

mod safety {
    //! Property: over random task replacements, scale-ins, instance losses
    //! and restarts of ballast, no ballast action drops a group's healthy
    //! targets to zero while one is healthy, or below the declared minimum,
    //! and no target ballast cannot attribute is ever deregistered.

    use proptest::prelude::*;

    use super::*;
    use crate::cloud::{Cloud, ManualClock, Scope};
    use crate::desired::{TargetGroupId, TaskCount};
    use crate::observed::{Target, TargetHealth};
    use crate::plan::{Change, Memory};

    #[derive(Debug, Clone)]
    enum Event {
        Wait(u64),
        Deploy,
        ScaleTo(u32),
        LoseInstance(usize),
        RestartBallast,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            3 => (5u64..90).prop_map(Event::Wait),
            1 => Just(Event::Deploy),
            1 => (0u32..5).prop_map(Event::ScaleTo),
            1 => (0usize..4).prop_map(Event::LoseInstance),
            1 => Just(Event::RestartBallast),
        ]
    }

    fn healthy(sim: &SimCloud, tg: &TargetGroupId) -> usize {
        sim.target_group(tg).map_or(0, |g| g.targets.iter().filter(|t| t.health == TargetHealth::Healthy).count())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
        #[test]
        fn ballast_actions_never_drop_healthy_targets_unsafely(events in proptest::collection::vec(event(), 1..30)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let mut desired = example();
                // Frontend keeps the declared floor of 1; backend uses the default rule.
                desired.services[0].target_groups[1].min_healthy = None;
                let clock = Arc::new(ManualClock::new());
                let metrics = Arc::new(Metrics::new());
                let config = SimConfig { deregistration_delay: Duration::from_secs(30), ..SimConfig::default() };
                let sim = SimCloud::from_desired(&desired, false, clock.clone(), 3, metrics, config);
                let tgs: Vec<(TargetGroupId, Option<u32>)> =
                    desired.services[0].target_groups.iter().map(|b| (b.target_group.clone(), b.min_healthy)).collect();
                let id = desired.services[0].id.clone();
                let group = desired.capacities[0].group.clone();
                // Another tool's target: a real instance, on a port no task of the service uses.
                let instance = sim.group(&group).unwrap().instances[0].id.clone();
                let foreign = Target { id: instance, port: 8080 };
                sim.register_target(&tgs[0].0, foreign.clone()).unwrap();
                let mut memory = Memory::default();

                for ev in events {
                    match ev {
                        Event::Wait(s) => clock.advance(Duration::from_secs(s)),
                        Event::Deploy => { let _ = sim.deploy(&id); }
                        Event::ScaleTo(n) => desired.services[0].tasks = TaskCount::Fixed(n),
                        Event::LoseInstance(i) => {
                            if let Some(inst) = sim.group(&group).and_then(|g| g.instances.get(i).cloned()) {
                                let _ = sim.kill_instance(&inst.id);
                            }
                        }
                        Event::RestartBallast => memory = Memory::default(),
                    }
                    for _ in 0..3 {
                        let observed = sim.observe(&Scope::of(&desired)).await.unwrap();
                        let mut plan = crate::plan::plan(&desired, &observed, std::mem::take(&mut memory), clock.now());
                        memory = std::mem::take(&mut plan.memory);
                        for pc in &plan.changes {
                            let tg = tgs.iter().find(|(t, _)| sim.target_group_arn(t).is_some_and(|arn| matches!(&pc.change,
                                Change::DeregisterTargets { target_group_arn, .. } | Change::RegisterTargets { target_group_arn, .. } if *target_group_arn == arn)));
                            let before = tg.map(|(t, _)| healthy(&sim, t));
                            // The tasks the service should keep serving: since issue 15 a
                            // scale-in drains the leaving tasks while they still serve, so
                            // no more than the declared count; and a deployment's new tasks
                            // run beside the old ones (within maximumPercent, or by ballast's
                            // surge), so no more than ECS's count without the surge.
                            let declared = desired.services[0].tasks.max() as usize;
                            let service = sim.service(&id);
                            let count = service
                                .as_ref()
                                .map_or(0, |s| s.desired_count - crate::plan::drain::read_surge(s)) as usize;
                            let serving = service
                                .map_or(0, |s| s.tasks.iter().filter(|t| t.is_serving()).count())
                                .min(declared)
                                .min(count);
                            if let Change::DeregisterTargets { targets, .. } = &pc.change {
                                prop_assert!(!targets.contains(&foreign), "deregistered a foreign target");
                            }
                            if sim.apply(&pc.change).await.is_ok() {
                                memory.record_applied(&pc.change, clock.now());
                            }
                            if let (Some((t, min)), Some(before)) = (tg, before) {
                                let after = healthy(&sim, t);
                                if before > 0 {
                                    prop_assert!(after > 0, "{:?} dropped healthy targets of {t:?} from {before} to 0", pc.change);
                                }
                                // Declared minHealthy, or by default the targets the service should have.
                                let floor = min.map_or(serving, |m| m as usize).min(before);
                                prop_assert!(after >= floor, "{:?} left {after} healthy, floor {floor}", pc.change);
                            }
                        }
                        clock.advance(Duration::from_secs(5));
                    }
                }
                let front = sim.target_group(&tgs[0].0).unwrap();
                prop_assert!(front.targets.iter().any(|t| t.target == foreign), "the foreign target is still registered");
                Ok(())
            })?;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn cpu_load_moves_tasks_then_capacity_and_zones_and_back() {
    let desired = example();
    let id = desired.services[0].id.clone();
    let group = desired.capacities[0].group.clone();
    let on_demand = desired.capacities[0]
        .zones
        .iter()
        .find(|z| matches!(z.mode, crate::desired::ZoneMode::OnDemand { .. }))
        .expect("the example has an on-demand zone")
        .subnet
        .clone();
    // ECS's own scale-in keeps a task in the on-demand zone (it balances
    // zones), and ballast does not move it yet: this test keeps the
    // newest-first rule.
    let config = SimConfig { scale_in_balances_zones: false, ..SimConfig::default() };
    let mut b = bed_with(desired, config);
    b.converge().await;
    // AZ rebalancing would refill the on-demand zone after each of
    // ballast's terminations, so the zone could never be removed: ballast
    // suspended it when it first saw the group.
    let group_now = b.sim.group(&group).unwrap();
    assert!(!group_now.az_rebalance_active(), "{:?}", group_now.suspended_processes);
    // 400 requests/s on 2 tasks: every task at 100 % CPU.
    b.sim.set_load(&id, 400.0).unwrap();
    let mut peak_tasks = 0;
    let mut saw_zone = false;
    for _ in 0..(40 * 4) {
        b.ctl.pass(&b.stop).await;
        let svc = b.sim.service(&id).unwrap();
        let g = b.sim.group(&group).unwrap();
        peak_tasks = peak_tasks.max(svc.desired_count);
        assert!(
            g.desired_capacity >= svc.desired_count.min(10),
            "capacity follows the tasks: {} < {}",
            g.desired_capacity,
            svc.desired_count
        );
        saw_zone |= g.subnets.contains(&on_demand);
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    assert!(peak_tasks >= 4, "scaled out under load (peak {peak_tasks})");
    assert!(saw_zone, "the on-demand subnet was added once more than its threshold of instances was needed");
    let svc = b.sim.service(&id).unwrap();
    assert!(svc.running_count >= 4, "the new tasks run: {svc:?}");

    // Load gone: tasks scale in slowly, then instances and the extra zone go.
    b.sim.set_load(&id, 10.0).unwrap();
    for _ in 0..(120 * 4) {
        b.ctl.pass(&b.stop).await;
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let svc = b.sim.service(&id).unwrap();
    let g = b.sim.group(&group).unwrap();
    assert_eq!(svc.desired_count, 2, "back to min");
    assert!(g.desired_capacity <= 3, "instances released: {}", g.desired_capacity);
    assert!(!g.subnets.contains(&on_demand), "on-demand zone removed: {:?}", g.subnets);
}

/// Another tool sets the desired count back to 2 every `period` while
/// ballast declares 3, the loop running as the daemon runs it. Ballast
/// fights exactly `max_reverts` times, whatever the spacing of the reverts
/// within the window, then leaves the field alone while the actor goes on,
/// and corrects it once more after the field stayed put for a window.
async fn an_actor_reverting_every(period: Duration) {
    let mut desired = example();
    desired.services[0].tasks = TaskCount::Fixed(3);
    let id = desired.services[0].id.clone();
    let b = bed(desired);
    let sim = b.sim.clone();
    let metrics = b.metrics.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (_reload_tx, reloads) = tokio::sync::mpsc::channel(1);
    let ctl = tokio::spawn(b.ctl.run(reloads, stop_rx));
    let actor = tokio::spawn({
        let (sim, id) = (sim.clone(), id.clone());
        async move {
            loop {
                tokio::time::sleep(period).await;
                sim.set_desired_count(&id, 2).unwrap();
            }
        }
    });
    let policy = crate::plan::FightPolicy::default();
    let writes = || sim.call_count("UpdateService");
    let contested =
        || metrics.render().contains("ballast_contested_fields{field=\"desired count of appCluster/appService\"} 1");

    // Long enough for the reverts to come, well within one window.
    tokio::time::sleep(period * 4 + Duration::from_secs(60)).await;
    assert!(contested(), "contested after {} reverts {period:?} apart", policy.max_reverts);
    assert_eq!(writes(), policy.max_reverts, "the first correction and one per revert until contested");
    tokio::time::sleep(Duration::from_secs(240)).await;
    assert_eq!(writes(), policy.max_reverts, "no write while the actor keeps reverting");

    // The actor stops; once a window passes without a revert, ballast
    // corrects the field again, once.
    actor.abort();
    tokio::time::sleep(policy.window + Duration::from_secs(60)).await;
    assert!(!contested());
    assert_eq!(writes(), policy.max_reverts + 1);
    assert_eq!(sim.service(&id).unwrap().desired_count, 3);
    stop_tx.send(true).unwrap();
    ctl.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_fight_with_reverts_every_6_seconds_is_noticed() {
    an_actor_reverting_every(Duration::from_secs(6)).await;
}

#[tokio::test(start_paused = true)]
async fn a_fight_with_reverts_every_60_seconds_is_noticed() {
    an_actor_reverting_every(Duration::from_secs(60)).await;
}

#[tokio::test(start_paused = true)]
async fn an_unread_input_makes_the_pass_partial_and_shows_everywhere() {
    let mut b = bed(example());
    b.converge().await;
    let throttled =
        || CloudError::Throttled { service: "ecs", operation: "ListTasks", message: "Rate exceeded".into() };
    b.sim.fail_next("ListTasks", throttled());
    let out = b.ctl.pass(&b.stop).await;
    assert!(out.unread > 0, "{out:?}");
    {
        let st = b.ctl.status();
        let st = st.read().unwrap();
        assert_eq!(st.last_pass.result, "partial");
        assert_eq!(st.last_pass.unread_inputs, out.unread);
        let svc = st.resources.iter().find(|r| matches!(r.resource, ResourceKey::Service { .. })).unwrap();
        let held: Vec<String> =
            svc.held.iter().filter(|h| h.kind() == plan::HoldKind::Unobserved).map(|h| h.message()).collect();
        assert!(held.iter().any(|m| m.contains("Rate exceeded")), "{held:?}");
    }
    let text = b.metrics.render();
    assert!(text.contains(&format!("ballast_unread_inputs {}", out.unread)), "{text}");
    assert!(text.contains(r#"ballast_reconcile_passes_total{result="partial"} 1"#), "{text}");

    // Read again: complete.
    let out = b.ctl.pass(&b.stop).await;
    assert_eq!(out.unread, 0);
    assert_eq!(b.ctl.status().read().unwrap().last_pass.result, "success");
    assert!(b.metrics.render().contains("ballast_unread_inputs 0"));
}

/// SIGTERM while a change is being applied: that change finishes and is
/// recorded, the rest of the pass is left alone, and the next run makes it.
#[tokio::test(start_paused = true)]
async fn a_stop_request_during_a_change_lets_it_finish_and_leaves_the_rest() {
    // Each call takes a second of (paused) tokio time: the stop request
    // arrives while the first write is in flight.
    let config = SimConfig { latency_per_call: Duration::from_secs(1), ..SimConfig::default() };
    let Bed { sim, mut ctl, .. } = bed_with(example(), config);
    // The changes' own writes; a scaling change's history tag follows it
    // as part of the same change.
    let marks = ["TagResource", "CreateOrUpdateTags"];
    let writes = |sim: &SimCloud| {
        sim.calls().into_iter().filter(|c| c.write && !marks.contains(&c.operation)).collect::<Vec<_>>()
    };
    let (tx, stop) = watch::channel(false);
    let stop_during_first_write = async {
        while writes(&sim).is_empty() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tx.send(true).unwrap();
    };
    let (out, ()) = tokio::join!(ctl.pass(&stop), stop_during_first_write);
    assert!(out.planned > 1, "{out:?}");
    assert_eq!((out.applied, out.failed), (1, 0), "the change in flight finished: {out:?}");
    let made = writes(&sim);
    assert_eq!(made.len(), 1, "nothing started after the stop request: {made:?}");
    let records: Vec<ChangeRecord> =
        ctl.status().read().unwrap().resources.iter().flat_map(|r| r.last_changes.iter().cloned()).collect();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].result, "applied", "and it is recorded as made: {records:?}");
    assert!(out.interrupted, "{out:?}");
    assert_eq!(ctl.status().read().unwrap().last_pass.result, "interrupted");

    // The next run makes the rest, and not the finished change again.
    let (_tx, stop) = watch::channel(false);
    sim.reset_calls();
    let next = ctl.pass(&stop).await;
    assert_eq!((next.planned, next.applied, next.failed), (out.planned - 1, out.planned - 1, 0), "{next:?}");
    assert!(!writes(&sim).contains(&made[0]), "{:?}", writes(&sim));
}

#[tokio::test(start_paused = true)]
async fn each_pass_adds_a_chart_point_with_what_it_observed() {
    let mut b = bed(example());
    b.converge().await;
    // Two metric periods: whatever the wall clock's second at the start, a
    // CPU datapoint is complete by then (periods are aligned to the epoch).
    tokio::time::sleep(Duration::from_secs(120)).await;
    b.ctl.pass(&b.stop).await;
    let st = b.ctl.status();
    let st = st.read().unwrap();
    let svc = st.resources.iter().find(|r| matches!(r.resource, ResourceKey::Service { .. })).unwrap();
    let last = svc.samples.back().expect("a chart point");
    assert_eq!(last.at, st.last_pass.finished_at.unwrap());
    assert_eq!((last.running, last.desired, last.target), (Some(2), Some(2), Some(2)));
    assert_eq!((last.high, last.low), (Some(70.0), Some(54.0)), "the example's alarm thresholds");
    assert!(last.cpu.is_some(), "the simulated cloud reports CPU");
    assert!(
        st.resources
            .iter()
            .filter(|r| !matches!(r.resource, ResourceKey::Service { .. }))
            .all(|r| r.samples.is_empty())
    );
}

mod drain {
    //! Scale-in by drain and deployment hand-over (issue 15) on the
    //! simulated cloud with traffic: no request fails because of a ballast
    //! scale-in or a deployment, a restart mid-drain or mid-deployment
    //! carries on from what AWS reports, a deployment whose new tasks never
    //! become healthy stops at the floor and is reported, and every serving
    //! task is protected from scale-in unless ballast chose it to leave.

    use std::collections::BTreeMap;
    use std::time::SystemTime;

    use proptest::prelude::*;

    use super::*;
    use crate::desired::ServiceId;
    use crate::observed::TargetHealth;

    /// The example without AZ rebalancing: Auto Scaling moving instances
    /// between zones takes their tasks with them, which is the capacity
    /// drain's part of issue 15, not the scale-in's.
    fn drain_bed() -> (Bed, ServiceId) {
        let desired = example();
        let id = desired.services[0].id.clone();
        let config = SimConfig { az_rebalance: false, ..SimConfig::default() };
        (bed_with(desired, config), id)
    }

    fn failed(sim: &SimCloud) -> f64 {
        sim.traffic().values().map(|c| c.failed).sum()
    }

    /// The tasks whose targets are in service (registered, not draining)
    /// in some bound group.
    fn routed(b: &Bed, id: &ServiceId) -> Vec<String> {
        let desired = b.ctl.desired();
        let svc = desired.services.iter().find(|s| &s.id == id).unwrap();
        let observed = b.sim.service(id).unwrap();
        observed
            .tasks
            .iter()
            .filter(|t| {
                svc.target_groups.iter().any(|binding| {
                    let Some(target) = crate::plan::targets::task_target_of(t, binding) else { return false };
                    b.sim.target_group(&binding.target_group).is_some_and(|g| {
                        g.targets.iter().any(|x| x.target == target && x.health != TargetHealth::Draining)
                    })
                })
            })
            .map(|t| t.arn.clone())
            .collect()
    }

    /// Serving tasks that carried traffic when the last pass observed
    /// (`routed_before`) and still do, yet are not protected: ECS could
    /// stop them on a scale-in ballast did not choose.
    fn exposed(b: &Bed, id: &ServiceId, routed_before: &[String]) -> Vec<String> {
        let protected: BTreeMap<String, SystemTime> = b.sim.protected_tasks(id);
        let routed = routed(b, id);
        let observed = b.sim.service(id).unwrap();
        observed
            .tasks
            .iter()
            .filter(|t| t.is_serving() && routed_before.contains(&t.arn) && routed.contains(&t.arn))
            .filter(|t| !protected.contains_key(&t.arn))
            .map(|t| t.arn.clone())
            .collect()
    }

    /// Passes as the daemon makes them for `secs` of virtual time; after
    /// each that reached AWS, no task is exposed.
    async fn run_for(b: &mut Bed, id: &ServiceId, secs: u64) -> Result<(), String> {
        let end = b.clock.now() + Duration::from_secs(secs);
        while b.clock.now() < end {
            let routed_before = routed(b, id);
            let out = b.ctl.pass(&b.stop).await;
            if !out.unreachable {
                let exposed = exposed(b, id, &routed_before);
                if !exposed.is_empty() {
                    return Err(format!("unprotected and routed, not chosen by ballast: {exposed:?}"));
                }
            }
            let wait = out.retry_in.map_or(Duration::from_secs(15), |r| r.min(Duration::from_secs(15)));
            tokio::time::sleep(wait.max(Duration::from_secs(1))).await;
        }
        Ok(())
    }

    #[tokio::test(start_paused = true)]
    async fn a_scale_in_stops_only_drained_tasks_and_loses_no_request() {
        let (mut b, id) = drain_bed();
        b.sim.set_load(&id, 100.0).unwrap();
        b.converge().await;
        let mut desired = b.ctl.desired().clone();
        desired.services[0].tasks = TaskCount::Fixed(4);
        b.ctl.replace_desired(PathBuf::from("four"), desired.clone());
        run_for(&mut b, &id, 300).await.unwrap();
        assert_eq!(b.sim.service(&id).unwrap().running_count, 4);
        desired.services[0].tasks = TaskCount::Fixed(2);
        b.ctl.replace_desired(PathBuf::from("two"), desired);
        run_for(&mut b, &id, 60).await.unwrap();
        // Every step shows in /status: the drain is the service's hold.
        let held: Vec<String> = {
            let st = b.ctl.status();
            let st = st.read().unwrap();
            st.resources.iter().flat_map(|r| r.held.iter().map(|h| h.message())).collect()
        };
        assert!(held.iter().any(|m| m.starts_with("draining 2 task(s) for scale-in")), "{held:?}");
        assert_eq!(b.sim.service(&id).unwrap().desired_count, 4, "ECS stops nothing before the drain ends");
        // The deregistration delay (300 s) and a few passes more.
        run_for(&mut b, &id, 400).await.unwrap();
        let svc = b.sim.service(&id).unwrap();
        assert_eq!((svc.desired_count, svc.running_count), (2, 2), "{svc:?}");
        assert_eq!(failed(&b.sim), 0.0, "no request failed: {:?}", b.sim.traffic());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_mid_drain_carries_on_from_what_aws_reports() {
        let (mut b, id) = drain_bed();
        b.sim.set_load(&id, 100.0).unwrap();
        let mut desired = b.ctl.desired().clone();
        desired.services[0].tasks = TaskCount::Fixed(3);
        b.ctl.replace_desired(PathBuf::from("three"), desired.clone());
        run_for(&mut b, &id, 300).await.unwrap();
        desired.services[0].tasks = TaskCount::Fixed(2);
        b.ctl.replace_desired(PathBuf::from("two"), desired);
        // Into the drain: the chosen task's targets are draining.
        run_for(&mut b, &id, 60).await.unwrap();
        let draining =
            b.sim.service(&id).unwrap().tasks.iter().filter(|t| t.is_serving()).count() - routed(&b, &id).len();
        assert_eq!(draining, 1, "one task is out of its groups");
        assert_eq!(b.sim.service(&id).unwrap().desired_count, 3, "the count waits for the drain");

        b.restart();
        run_for(&mut b, &id, 900).await.unwrap();
        let svc = b.sim.service(&id).unwrap();
        assert_eq!((svc.desired_count, svc.running_count), (2, 2), "{svc:?}");
        assert_eq!(failed(&b.sim), 0.0, "no request failed: {:?}", b.sim.traffic());
    }

    /// The drain bed with deploy/'s deployment configuration (0 / 100: one
    /// static-port task per instance leaves a new task no room before an
    /// old one stops), at 100 requests per second, converged.
    async fn deploy_bed() -> (Bed, ServiceId) {
        let (mut b, id) = drain_bed();
        b.sim.set_deployment_configuration(&id, 0, 100).unwrap();
        b.sim.set_load(&id, 100.0).unwrap();
        run_for(&mut b, &id, 300).await.unwrap();
        (b, id)
    }

    /// Whether the deployment is done: not deploying, and every live task
    /// the primary deployment's.
    fn deployed(b: &Bed, id: &ServiceId) -> bool {
        let svc = b.sim.service(id).unwrap();
        let live = svc.tasks.iter().filter(|t| t.desired_status == crate::observed::TaskStatus::Running);
        !svc.deploying && live.clone().count() > 0 && live.clone().all(|t| t.started_by == svc.primary_deployment)
    }

    fn service_status(b: &Bed) -> (Vec<String>, Vec<&'static str>) {
        let st = b.ctl.status();
        let st = st.read().unwrap();
        let svc = st.resources.iter().find(|r| matches!(r.resource, crate::plan::ResourceKey::Service { .. })).unwrap();
        (svc.held.iter().map(|h| h.message()).collect(), svc.conditions.iter().map(|c| c.kind).collect())
    }

    #[tokio::test(start_paused = true)]
    async fn a_deployment_hands_the_old_tasks_over_and_loses_no_request() {
        let (mut b, id) = deploy_bed().await;
        let before = b.sim.service(&id).unwrap().running_count;
        b.sim.deploy(&id).unwrap();
        run_for(&mut b, &id, 60).await.unwrap();
        let (held, _) = service_status(&b);
        assert!(held.iter().any(|m| m.starts_with("deployment: ")), "progress in /status: {held:?}");
        // Each old task: the deregistration delay (300 s), the lag, a pass.
        run_for(&mut b, &id, 1800).await.unwrap();
        assert!(deployed(&b, &id), "{:?}", b.sim.service(&id));
        assert_eq!(b.sim.service(&id).unwrap().running_count, before);
        assert_eq!(failed(&b.sim), 0.0, "no request failed: {:?}", b.sim.traffic());
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_mid_deployment_carries_on() {
        let (mut b, id) = deploy_bed().await;
        b.sim.deploy(&id).unwrap();
        // Into the hand-over: an old task is out of its groups.
        run_for(&mut b, &id, 120).await.unwrap();
        let svc = b.sim.service(&id).unwrap();
        assert!(svc.deploying);
        assert!(svc.tasks.iter().filter(|t| t.is_serving()).count() > routed(&b, &id).len(), "one is draining");
        b.restart();
        run_for(&mut b, &id, 1800).await.unwrap();
        assert!(deployed(&b, &id), "{:?}", b.sim.service(&id));
        assert_eq!(failed(&b.sim), 0.0, "no request failed: {:?}", b.sim.traffic());
    }

    #[tokio::test(start_paused = true)]
    async fn a_deployment_whose_new_tasks_never_get_healthy_stops_at_the_floor_and_is_reported() {
        let (mut b, id) = deploy_bed().await;
        let old: Vec<String> = b.sim.service(&id).unwrap().tasks.iter().map(|t| t.arn.clone()).collect();
        b.sim.deploy_broken(&id).unwrap();
        run_for(&mut b, &id, 1800).await.unwrap();
        let svc = b.sim.service(&id).unwrap();
        assert!(svc.deploying);
        // The example's bindings declare minHealthy 1: one old task keeps
        // serving, the rest were handed over.
        let old_serving: Vec<&String> =
            svc.tasks.iter().filter(|t| t.is_serving() && old.contains(&t.arn)).map(|t| &t.arn).collect();
        assert_eq!(old_serving.len(), 1, "{svc:?}");
        // (A stopped old task shares its target with the new task on its
        // instance: only the serving one counts.)
        let routed = routed(&b, &id);
        assert!(routed.contains(old_serving[0]), "and stays routed");
        let (held, conditions) = service_status(&b);
        assert!(conditions.contains(&"DeploymentStalled"), "{conditions:?} {held:?}");
        assert!(held.iter().any(|m| m.contains("stalled")), "{held:?}");
        let text = b.metrics.render();
        assert!(
            text.lines().any(|l| l.starts_with("ballast_deployment_stalled{") && l.ends_with(" 1")),
            "{}",
            text.lines().filter(|l| l.contains("deployment")).collect::<Vec<_>>().join("\n")
        );
        assert_eq!(failed(&b.sim), 0.0, "no request failed: {:?}", b.sim.traffic());
    }

    #[derive(Debug, Clone)]
    enum Event {
        Wait(u64),
        Load(f64),
        Count(u32),
        Scaling,
        Restart,
        Outage(u64),
        Deploy,
        /// AWS terminates an instance of the group (the example declares
        /// ballast's termination hook).
        Terminate,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            2 => (30u64..400).prop_map(Event::Wait),
            2 => prop_oneof![Just(20.0), Just(100.0), Just(250.0), Just(400.0)].prop_map(Event::Load),
            2 => (1u32..6).prop_map(Event::Count),
            1 => Just(Event::Scaling),
            1 => Just(Event::Restart),
            1 => (10u64..180).prop_map(Event::Outage),
            1 => Just(Event::Deploy),
            1 => Just(Event::Terminate),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
        #[test]
        fn no_request_fails_because_of_a_ballast_scale_in_or_a_deployment(events in proptest::collection::vec(event(), 1..10)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
            let result: Result<(), String> = rt.block_on(async {
                let (mut b, id) = drain_bed();
                let example = b.ctl.desired().clone();
                // deploy/'s deployment configuration: ECS's defaults leave
                // a new static-port task no room.
                b.sim.set_deployment_configuration(&id, 0, 100).unwrap();
                b.sim.set_load(&id, 100.0).unwrap();
                run_for(&mut b, &id, 120).await?;
                for ev in events {
                    match ev {
                        Event::Wait(s) => run_for(&mut b, &id, s).await?,
                        Event::Load(rps) => b.sim.set_load(&id, rps).unwrap(),
                        Event::Count(n) => {
                            let mut d = b.ctl.desired().clone();
                            d.services[0].tasks = TaskCount::Fixed(n);
                            b.ctl.replace_desired(PathBuf::from("edited"), d);
                        }
                        Event::Scaling => b.ctl.replace_desired(PathBuf::from("example"), example.clone()),
                        Event::Restart => b.restart(),
                        Event::Outage(s) => {
                            b.sim.set_unreachable(true);
                            run_for(&mut b, &id, s).await?;
                            b.sim.set_unreachable(false);
                        }
                        Event::Deploy => b.sim.deploy(&id).unwrap(),
                        Event::Terminate => {
                            let group = b.ctl.desired().capacities[0].group.clone();
                            b.sim.terminate_instances_by_aws(&group, 1, None).unwrap();
                        }
                    }
                    run_for(&mut b, &id, 30).await?;
                }
                // Long enough for every drain to end.
                run_for(&mut b, &id, 900).await?;
                let failed = failed(&b.sim);
                if failed > 0.0 {
                    return Err(format!("{failed} requests failed: {:?}", b.sim.traffic()));
                }
                Ok(())
            });
            prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        }
    }
}

/// Issue 15: GetMetricData at most once per metric period, not every pass.
#[tokio::test(start_paused = true)]
async fn cpu_is_read_at_most_once_per_metric_period() {
    let desired = example();
    assert!(desired.services[0].scaling.as_ref().is_some_and(|p| p.target_cpu.is_some()), "ballast reads CPU");
    let mut b = bed(desired);
    b.converge().await;
    b.sim.reset_calls();
    // Ten minutes of passes every 15 s: 40 passes, 10 metric periods
    // (the first may fall short of a period after the last read).
    let mut passes = 0;
    for _ in 0..40 {
        b.ctl.pass(&b.stop).await;
        passes += 1;
        tokio::time::sleep(Duration::from_secs(15)).await;
    }
    let reads = b.sim.call_count("GetMetricData");
    assert!((9..=11).contains(&reads), "{reads} GetMetricData calls in {passes} passes over 10 minutes");
}

// ----- Leadership (issue 16) -----

fn lease_options(holder: &str) -> leader::LeaseOptions {
    leader::LeaseOptions { name: "table/ballast".into(), holder: holder.into(), duration: Duration::from_secs(15) }
}

/// Another daemon holding the lease in `store` until its task is aborted.
fn other_daemon(store: &Arc<crate::cloud::lease::MemoryLease>) -> tokio::task::JoinHandle<()> {
    let status: SharedStatus = Arc::new(RwLock::new(Status::default()));
    let other =
        Leadership::contender(lease_options("other"), Arc::new(Metrics::new()), status, Arc::new(TokioClock::new()));
    let (tx, rx) = watch::channel(false);
    let store = store.clone();
    tokio::spawn(async move {
        let _keep = tx;
        other.campaign(store, rx).await
    })
}

#[tokio::test(start_paused = true)]
async fn a_standby_observes_and_writes_nothing_until_it_leads() {
    let store = Arc::new(crate::cloud::lease::MemoryLease::new());
    let other = other_daemon(&store);
    tokio::time::sleep(Duration::from_millis(10)).await;

    let Bed { sim, ctl, metrics, stop, _stop_tx, clock: _ } = bed(example());
    let clock: Arc<dyn Clock> = Arc::new(TokioClock::new());
    let leadership = Leadership::contender(lease_options("me"), metrics.clone(), ctl.status(), clock);
    let (_campaign_stop, campaign_rx) = watch::channel(false);
    tokio::spawn(leadership.clone().campaign(store.clone(), campaign_rx));
    let ctl = ctl.with_leadership(leadership.clone());
    let status = ctl.status();
    let (_reload_tx, reloads) = mpsc::channel(1);
    tokio::spawn(ctl.run(reloads, stop));

    tokio::time::sleep(Duration::from_secs(120)).await;
    assert!(sim.calls().is_empty(), "a standby calls nothing: {:?}", sim.calls());
    assert_eq!(status.read().unwrap().passes, 0);
    assert_eq!(status.read().unwrap().leadership.role, "standby");
    assert_eq!(status.read().unwrap().leadership.holder.as_deref(), Some("other"));
    assert!(metrics.render().contains("ballast_leader 0"));

    other.abort();
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert!(matches!(leadership.role(), Role::Leader { term: 1 }));
    assert!(status.read().unwrap().passes > 0, "it leads and makes passes");
    assert!(sim.calls().iter().any(|c| c.write), "and corrects the simulated drift");
}

#[tokio::test(start_paused = true)]
async fn a_new_term_starts_from_an_empty_memory() {
    let mut b = bed(example());
    b.ctl.begin_term(1);
    b.converge().await;
    assert_ne!(*b.ctl.memory(), Memory::default(), "the first term remembered what it did");
    b.ctl.begin_term(2);
    assert_eq!(*b.ctl.memory(), Memory::default());
    // The fresh observation finds nothing to do: no takeover wave.
    b.sim.reset_calls();
    let out = b.ctl.pass(&b.stop).await;
    assert_eq!((out.planned, out.applied), (0, 0), "{out:?}");
    assert!(b.sim.calls().iter().all(|c| !c.write));
}

#[tokio::test(start_paused = true)]
async fn a_pass_stops_writing_when_the_lease_is_lost() {
    let store = Arc::new(crate::cloud::lease::MemoryLease::new());
    let Bed { sim, ctl, metrics, stop, _stop_tx, clock: _ } = bed(example());
    let leadership =
        Leadership::contender(lease_options("me"), metrics.clone(), ctl.status(), Arc::new(TokioClock::new()));
    let (_campaign_stop, campaign_rx) = watch::channel(false);
    tokio::spawn(leadership.clone().campaign(store.clone(), campaign_rx));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut ctl = ctl.with_leadership(leadership.clone());
    // The lease changes hands before the pass: no change of it is applied.
    let thief = crate::cloud::lease::LeaseRecord {
        holder: "x".into(),
        version: "x1".into(),
        expires_at: std::time::SystemTime::now(),
    };
    use crate::cloud::lease::LeaseStore as _;
    store.renew(&store.record().unwrap().version, &thief).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let out = ctl.pass(&stop).await;
    assert!(out.planned > 0 && out.interrupted, "{out:?}");
    assert_eq!(out.applied, 0);
    assert!(sim.calls().iter().all(|c| !c.write), "{:?}", sim.calls());
}
