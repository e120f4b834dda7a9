//! TEMPORARY: stands in for helper T's sim API until it is merged.
#![allow(dead_code)]
use std::collections::BTreeMap;
use std::time::SystemTime;

use crate::cloud::CloudError;
use crate::cloud::sim::SimCloud;
use crate::desired::ServiceId;

#[derive(Debug, Clone, PartialEq)]
pub struct LoadCurve {
    pub points: Vec<(SystemTime, f64)>,
    pub interpolation: Interpolation,
}
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Linear,
    Step,
}
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RequestCounts {
    pub served: f64,
    pub failed: f64,
    pub seconds_with_failures: u64,
}
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    pub task_seconds: f64,
    pub instance_seconds: f64,
    pub cpu_minutes_above_90: u64,
}
pub trait Shim {
    fn set_load_curve(&self, id: &ServiceId, curve: LoadCurve) -> Result<(), CloudError>;
    fn traffic(&self) -> BTreeMap<String, RequestCounts>;
    fn usage(&self) -> Usage;
}
impl Shim for SimCloud {
    fn set_load_curve(&self, id: &ServiceId, curve: LoadCurve) -> Result<(), CloudError> {
        self.set_load(id, curve.points.first().map_or(0.0, |p| p.1))
    }
    fn traffic(&self) -> BTreeMap<String, RequestCounts> {
        BTreeMap::new()
    }
    fn usage(&self) -> Usage {
        Usage::default()
    }
}
