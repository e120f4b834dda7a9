//! ballast: a reconciling controller for ECS services behind an internal
//! NLB, their CPU alarms and the Auto Scaling group they run on.
//!
//! # Layout
//!
//! - [`desired`]: the desired-state YAML format: loading a directory,
//!   validation with located errors, the JSON Schema.
//! - [`observed`]: what the cloud looks like now, in ballast's own types.
//! - [`plan`]: the pure planning core, `(desired, observed, memory, now)
//!   -> changes`, with traffic safety, budgets, conflicts, scaling and
//!   scale-in by drain ([`plan::drain`]).
//! - [`cloud`]: the [`cloud::Cloud`] trait and its two implementations,
//!   the simulated cloud ([`cloud::sim`]) and AWS ([`cloud::aws`]), the
//!   scaling marks both leave on what they scale ([`cloud::marks`]), the
//!   reads both reuse within a period ([`cloud::reuse`]), and the store
//!   of the leadership lease ([`cloud::lease`]).
//! - [`controller`]: the level-triggered loop, hot reload, backoff,
//!   per-resource status, and leader election with its write fence
//!   ([`controller::leader`]).
//! - [`daemon`]: the loop, the file watcher and the HTTP server side by
//!   side until a shutdown signal (`ballast run`).
//! - [`http`]: the status page at `/`, `/livez`, `/healthz`, `/readyz`,
//!   `/metrics` and `/status`.
//! - [`metrics`]: the Prometheus metric families.
//! - [`simulate`]: scenarios played in virtual time by the real
//!   controller on the simulated cloud (`ballast simulate`).
//! - [`cli`]: the command line; `main.rs` only calls it.

pub mod cli;
pub mod cloud;
pub mod controller;
pub mod daemon;
pub mod desired;
pub mod http;
pub mod metrics;
pub mod observed;
pub mod plan;
pub mod simulate;

/// The repository's test inputs (broken fixtures, shipped examples), shared
/// with the CLI tests.
#[cfg(test)]
#[path = "../tests/support/fixtures.rs"]
mod fixtures;
