//! The scaling benchmark's load traces (`benches/scaling.rs`), in
//! requests per second over time: deterministic, and also the known
//! histories `ballast replay` is tested with (a trace exported as a
//! history CSV and replayed gives the benchmark's figures).
//!
//! With the simulation's default `cpu_per_rps` of 1.0, one task's CPU
//! percent is the load divided by the running tasks, so a load of `L`
//! needs `ceil(L / 60)` tasks to sit at a 60 % target. The levels are
//! chosen so every policy has to move well inside the 2..20 task range.

use std::f64::consts::TAU;
use std::time::{Duration, SystemTime};

use super::history::{History, round_load};
use super::replay::Run;

const MIN: u64 = 60;
const HOUR: u64 = 3600;

/// The shape of a trace.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// `low` until `at`, `high` for `len`, then `low` again.
    Step { low: f64, high: f64, at: Duration, len: Duration },
    /// `low` to `high` linearly over `up`, back to `low` over `down`, then flat.
    Ramp { low: f64, high: f64, up: Duration, down: Duration },
    /// A 24-hour sine between `low` (at t = 0) and `high` (at 12 h), plus
    /// `spike` extra requests per second during each spike window.
    Daily { low: f64, high: f64, spike: f64, spikes: &'static [(Duration, Duration)] },
}

/// A named load trace and how long to run it.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    pub name: &'static str,
    pub description: &'static str,
    pub duration: Duration,
    pub shape: Shape,
}

impl Trace {
    /// Requests per second at `t` after the trace starts.
    pub fn load(&self, t: Duration) -> f64 {
        let s = t.as_secs_f64();
        match self.shape {
            Shape::Step { low, high, at, len } => {
                if t >= at && t < at + len {
                    high
                } else {
                    low
                }
            }
            Shape::Ramp { low, high, up, down } => {
                let (up, down) = (up.as_secs_f64(), down.as_secs_f64());
                if s < up {
                    low + (high - low) * s / up
                } else if s < up + down {
                    high - (high - low) * (s - up) / down
                } else {
                    low
                }
            }
            Shape::Daily { low, high, spike, spikes } => {
                let day = 24.0 * HOUR as f64;
                let base = low + (high - low) * (1.0 - (TAU * s / day).cos()) / 2.0;
                let spiking = spikes.iter().any(|&(at, len)| t >= at && t < at + len);
                base + if spiking { spike } else { 0.0 }
            }
        }
    }

    /// The load at every `interval` from 0 to the end, each holding until
    /// the next: what the benchmark replays.
    pub fn points(&self, interval: Duration) -> Vec<(Duration, f64)> {
        let n = self.duration.as_secs() / interval.as_secs().max(1);
        (0..n).map(|i| interval * i as u32).map(|t| (t, round_load(self.load(t)))).collect()
    }

    /// The trace as a recorded history: `run`'s running tasks at each of
    /// its samples from 0 on, and the CPU that puts the trace's load on
    /// them (`cpu_per_rps` percent per request per second).
    pub fn history(&self, run: &Run, cpu_per_rps: f64) -> History {
        let end = self.duration.as_secs() as i64;
        let rows = run
            .samples
            .iter()
            .filter(|s| s.t >= 0 && s.t < end)
            .map(|s| {
                let at = SystemTime::UNIX_EPOCH + Duration::from_secs(s.t as u64);
                let tasks = s.running.max(1);
                (at, round_load(self.load(Duration::from_secs(s.t as u64))) * cpu_per_rps / f64::from(tasks), tasks)
            })
            .collect();
        let mut h = History::from_samples(self.name, rows).expect("a run has samples");
        h.started = None;
        h
    }
}

const fn mins(n: u64) -> Duration {
    Duration::from_secs(n * MIN)
}

/// Four five-minute spikes: one at night, one in the morning climb, one
/// just after the daily peak, one in the evening.
const SPIKES: &[(Duration, Duration)] =
    &[(mins(3 * 60), mins(5)), (mins(9 * 60 + 30), mins(5)), (mins(14 * 60), mins(5)), (mins(20 * 60), mins(5))];

/// The three traces of the benchmark.
pub fn all() -> Vec<Trace> {
    vec![
        Trace {
            name: "step",
            description: "200 req/s (4 tasks at 50 %); at t = 30 min a jump to 600 req/s (3x) for 60 min; \
                          then 200 req/s again until t = 180 min",
            duration: mins(180),
            shape: Shape::Step { low: 200.0, high: 600.0, at: mins(30), len: mins(60) },
        },
        Trace {
            name: "ramp",
            description: "120 req/s rising linearly to 1080 req/s over 2 h, falling back to 120 req/s over 2 h, \
                          then flat for 30 min (270 min)",
            duration: mins(270),
            shape: Shape::Ramp { low: 120.0, high: 1080.0, up: mins(120), down: mins(120) },
        },
        Trace {
            name: "daily",
            description: "24 h sine from 150 req/s (midnight) to 900 req/s (noon), plus four 5-minute spikes of \
                          +500 req/s at 03:00, 09:30, 14:00 and 20:00",
            duration: Duration::from_secs(24 * HOUR),
            shape: Shape::Daily { low: 150.0, high: 900.0, spike: 500.0, spikes: SPIKES },
        },
    ]
}
