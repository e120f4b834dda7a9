//! Shared helpers of the integration tests over the wire (`tests/aws.rs`)
//! and, for the contract suite, of any other `Cloud` implementation's
//! tests.

#![allow(dead_code)]

pub mod contract;
pub mod daemon_logs;
pub mod declared;
pub mod e2e;
pub mod emulator;
pub mod proxy;
