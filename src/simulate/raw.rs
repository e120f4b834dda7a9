//! The scenario document as serde reads it, before validation.
//!
//! Permissive like [`crate::desired::raw`]: every field optional, numbers
//! wide, durations as text, so that one run reports every mistake with
//! its own message. [`KEYS`] lists the keys each mapping may have, for
//! the "unknown field" messages and their did-you-mean.

use serde::{Deserialize, Deserializer};

use crate::desired::raw::{DurationText, RawMetadata};

/// A `kind: Scenario` document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawScenarioDocument {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<RawMetadata>,
    pub spec: Option<RawScenarioSpec>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawScenarioSpec {
    pub duration: Option<DurationText>,
    pub seed: Option<i64>,
    pub interval: Option<DurationText>,
    pub load: Option<Vec<RawLoad>>,
    pub events: Option<Vec<RawEvent>>,
    pub aws: Option<RawAws>,
}

/// One service's requests per second over time.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawLoad {
    pub service: Option<String>,
    /// A constant rate.
    pub rps: Option<f64>,
    /// Joined linearly.
    pub points: Option<Vec<RawPoint>>,
    /// Each holds until the next.
    pub steps: Option<Vec<RawPoint>>,
    /// The points repeat with this period.
    pub repeat: Option<DurationText>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawPoint {
    pub at: Option<DurationText>,
    pub rps: Option<f64>,
}

/// One event: a time and exactly one action.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawEvent {
    pub at: Option<DurationText>,
    pub every: Option<DurationText>,
    pub desired_state: Option<String>,
    pub deploy: Option<RawServiceRef>,
    pub terminate_instance: Option<RawTerminate>,
    pub actor: Option<RawActor>,
    pub restart_controller: Option<RawFlag>,
    pub outage: Option<RawOutage>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawServiceRef {
    pub service: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawTerminate {
    pub count: Option<i64>,
    pub zone: Option<String>,
    /// The Capacity document (by `metadata.name`) whose group loses the
    /// instances; needed only when the desired state has several.
    pub capacity: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawActor {
    pub service: Option<String>,
    pub desired_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawOutage {
    pub duration: Option<DurationText>,
}

/// The fidelity settings of the simulated cloud a scenario overrides.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RawAws {
    pub deregistration_propagation_lag: Option<DurationText>,
    pub deregistration_delay: Option<DurationText>,
    pub health_check_interval: Option<DurationText>,
    pub healthy_threshold: Option<i64>,
    pub stop_timeout: Option<DurationText>,
    pub sigterm_grace: Option<DurationText>,
    pub consistency_lag: Option<DurationText>,
    pub az_rebalance: Option<bool>,
    pub task_start_delay: Option<DurationText>,
    pub instance_launch_delay: Option<DurationText>,
    pub minimum_healthy_percent: Option<i64>,
    pub maximum_percent: Option<i64>,
}

/// An action without fields (`restartController: {}`, `restartController:
/// true`, or the key alone). `false` is read, and refused by validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawFlag(pub bool);

impl<'de> Deserialize<'de> for RawFlag {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawFlag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("`{}` (the action takes no fields)")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawFlag, E> {
                Ok(RawFlag(v))
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<RawFlag, E> {
                Ok(RawFlag(true))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<RawFlag, A::Error> {
                match map.next_key::<String>()? {
                    None => Ok(RawFlag(true)),
                    Some(k) => Err(serde::de::Error::custom(format!(
                        "unexpected field `{k}`: the action takes no fields, write `{{}}`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// The keys each mapping of a scenario may have, by path with list
/// indexes written `[]`.
pub const KEYS: &[(&str, &[&str])] = &[
    ("", &["apiVersion", "kind", "metadata", "spec"]),
    ("metadata", &["name"]),
    ("spec", &["duration", "seed", "interval", "load", "events", "aws"]),
    ("spec.load[]", &["service", "rps", "points", "steps", "repeat"]),
    ("spec.load[].points[]", &["at", "rps"]),
    ("spec.load[].steps[]", &["at", "rps"]),
    (
        "spec.events[]",
        &["at", "every", "desiredState", "deploy", "terminateInstance", "actor", "restartController", "outage"],
    ),
    ("spec.events[].deploy", &["service"]),
    ("spec.events[].terminateInstance", &["count", "zone", "capacity"]),
    ("spec.events[].actor", &["service", "desiredCount"]),
    ("spec.events[].outage", &["duration"]),
    (
        "spec.aws",
        &[
            "deregistrationPropagationLag",
            "deregistrationDelay",
            "healthCheckInterval",
            "healthyThreshold",
            "stopTimeout",
            "sigtermGrace",
            "consistencyLag",
            "azRebalance",
            "taskStartDelay",
            "instanceLaunchDelay",
            "minimumHealthyPercent",
            "maximumPercent",
        ],
    ),
];

/// The actions an event may have, one per event.
pub const ACTIONS: [&str; 6] = ["desiredState", "deploy", "terminateInstance", "actor", "restartController", "outage"];

/// `spec.load[2].points[0]` → `spec.load[].points[]`.
pub fn pattern(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for c in path.chars() {
        match c {
            '[' => {
                in_index = true;
                out.push_str("[]");
            }
            ']' => in_index = false,
            _ if in_index => {}
            _ => out.push(c),
        }
    }
    out
}

/// The keys the mapping at `path` may have.
pub fn known_keys(path: &str) -> &'static [&'static str] {
    let p = pattern(path);
    KEYS.iter().find(|(k, _)| *k == p).map_or(&[], |(_, keys)| keys)
}

/// The mapping paths that have `key`, for "belongs in" help.
pub fn paths_with_key(key: &str) -> Vec<&'static str> {
    KEYS.iter().filter(|(_, keys)| keys.contains(&key)).map(|(p, _)| *p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_drop_list_indexes() {
        assert_eq!(pattern("spec.load[12].points[0].at"), "spec.load[].points[].at");
        assert_eq!(known_keys("spec.events[3].actor"), ["service", "desiredCount"]);
        assert!(known_keys("spec.duration").is_empty());
        assert_eq!(paths_with_key("desiredCount"), ["spec.events[].actor"]);
    }
}
