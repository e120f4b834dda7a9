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
