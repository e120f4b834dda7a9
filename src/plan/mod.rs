//! The planning core: a pure function of desired state, observed state,
//! the controller's memory and the time, returning [`Change`]s.

pub mod alarms;
mod change;

pub use change::{Change, ChangeKind, short_arn};
