//! A scenario after validation: only these types reach the runner.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::cloud::sim::SimConfig;
use crate::desired::{DesiredState, GroupId, ServiceId};

/// A validated `kind: Scenario` document, with the desired states it
/// starts from and switches to already loaded and valid.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// `metadata.name`.
    pub name: String,
    pub file: PathBuf,
    /// Virtual time the run covers.
    pub duration: Duration,
    /// Seeds the simulated cloud and the controller's jitter.
    pub seed: u64,
    /// The controller's pass interval (`ballast run --interval`).
    pub interval: Duration,
    /// The desired-state directory the run starts from, and its content.
    pub initial: DesiredStateDir,
    pub load: Vec<Load>,
    /// Every occurrence of every event (`every` expanded), in time order;
    /// events at the same time in file order.
    pub events: Vec<Event>,
    pub aws: AwsSettings,
}

/// A desired-state directory and what it held when the scenario was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredStateDir {
    pub dir: PathBuf,
    pub desired: DesiredState,
}

/// One service's requests per second over time (on each of its target
/// groups: one request per listener).
#[derive(Debug, Clone, PartialEq)]
pub struct Load {
    /// As the scenario names it.
    pub name: String,
    pub service: ServiceId,
    pub curve: Curve,
}

/// Requests per second over time, from the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    /// (time from the start, requests per second), times ascending.
    pub points: Vec<(Duration, f64)>,
    pub shape: Shape,
    /// The points repeat with this period.
    pub repeat: Option<Duration>,
}

impl Curve {
    /// The curve's points as instants of a run that starts at `start` and
    /// lasts `end`: a repeating curve is unrolled from one period before
    /// the start (so it is periodic from the first instant) to its first
    /// point at or after the end.
    pub fn instants(&self, start: SystemTime, end: Duration) -> Vec<(SystemTime, f64)> {
        let Some(period) = self.repeat else {
            return self.points.iter().map(|&(t, r)| (start + t, r)).collect();
        };
        let mut out = Vec::new();
        if let Some(&(t, r)) = self.points.last() {
            // `t` is within the period, so this is before the start.
            out.push((start + t - period, r));
        }
        let mut cycle = Duration::ZERO;
        loop {
            for &(t, r) in &self.points {
                let at = cycle + t;
                out.push((start + at, r));
                if at >= end {
                    return out;
                }
            }
            cycle += period;
        }
    }
}

/// How a curve goes from one point to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `points`: joined linearly.
    Linear,
    /// `steps`: each rate holds until the next point.
    Steps,
}

/// One occurrence of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Time from the start.
    pub at: Duration,
    /// The line of the event in the scenario file, to name it in reports.
    pub line: usize,
    pub action: Action,
}

/// What happens at an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// The user puts another desired-state directory in force.
    DesiredState(Box<DesiredStateDir>),
    /// ECS rolls out a new revision of the service.
    Deploy { name: String, service: ServiceId },
    /// AWS terminates instances of the group by itself.
    TerminateInstance { group: GroupId, count: u32, zone: Option<String> },
    /// Another tool sets the service's desired count.
    Actor { name: String, service: ServiceId, desired_count: u32 },
    /// ballast restarts: its memory is lost, the marks in the cloud stay.
    RestartController,
    /// The AWS APIs are unreachable for this long.
    Outage { duration: Duration },
}

impl Action {
    /// The action's key in the scenario format.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::DesiredState(_) => "desiredState",
            Action::Deploy { .. } => "deploy",
            Action::TerminateInstance { .. } => "terminateInstance",
            Action::Actor { .. } => "actor",
            Action::RestartController => "restartController",
            Action::Outage { .. } => "outage",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::desired::duration::format_duration;
        match self {
            Action::DesiredState(d) => write!(f, "desired state switched to {}", d.dir.display()),
            Action::Deploy { name, .. } => write!(f, "deployment of {name}"),
            Action::TerminateInstance { group, count, zone } => {
                write!(f, "AWS terminates {count} instance{} of {group}", if *count == 1 { "" } else { "s" })?;
                match zone {
                    Some(z) => write!(f, " in {z}"),
                    None => Ok(()),
                }
            }
            Action::Actor { name, desired_count, .. } => {
                write!(f, "another actor sets {name}'s desired count to {desired_count}")
            }
            Action::RestartController => f.write_str("ballast restarts"),
            Action::Outage { duration } => write!(f, "AWS APIs unreachable for {}", format_duration(*duration)),
        }
    }
}

/// The simulated cloud a scenario runs on: AWS's defaults with the
/// scenario's `aws:` overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AwsSettings {
    pub sim: SimConfig,
    /// Every service's deployment configuration (minimum healthy and
    /// maximum percent) when the scenario sets either; ECS's defaults are
    /// 100 and 200, deploy/ runs the app with 0 and 100.
    pub deployment: Option<(u32, u32)>,
}
