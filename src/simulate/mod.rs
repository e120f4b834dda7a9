//! `ballast simulate`: a scenario played in virtual time by the real
//! controller against the simulated cloud, and what it cost in dropped
//! requests, resources and time to converge.
//!
//! - [`raw`] and [`load`]: the scenario format (`kind: Scenario`), read
//!   with located errors like the desired state, names resolved against
//!   the desired state in force at each event.
//! - [`scenario`]: the validated scenario, the only input of the runner.
//! - [`runner`]: builds the simulated cloud from the desired state,
//!   applies the `aws:` settings and the load curves, and runs
//!   [`crate::controller::Controller`] pass by pass with the events.
//! - [`report`]: what the run measured, as text or JSON.
//! - `ballast replay`: [`history`] (a service's recorded CPU and tasks,
//!   from CSV or CloudWatch), [`peers`] (the emulations of ECS target
//!   tracking and the HPA it compares with) and [`replay`] (each policy on
//!   the simulated cloud under the recorded load, measured; the scaling
//!   benchmark runs the same).
//!
//! The format is documented in docs/simulation.md, section "Scenarios".

pub mod history;
pub mod load;
pub mod peers;
pub mod raw;
pub mod replay;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod traces;

#[cfg(test)]
mod tests;

pub use load::{ScenarioError, load_scenario, load_scenario_str};
pub use report::Report;
pub use runner::{RunOptions, TargetManager, run};
pub use scenario::Scenario;
