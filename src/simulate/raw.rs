//! The scenario document as serde reads it, before validation.
//!
//! Permissive like [`crate::desired::raw`]: every field optional, numbers
//! wide, durations as text, so that one run reports every mistake with
//! its own message. [`KEYS`] lists the keys each mapping may have, for
//! the "unknown field" messages and their did-you-mean.

use serde::{Deserialize, Deserializer};

use crate::desired::raw::{DurationText, RawMetadata};

/// Declares permissive mappings: every field optional (so that one run
/// reports every mistake), keys in camelCase.
macro_rules! raw_mappings {
    ($($(#[$doc:meta])* $name:ident { $($(#[$field_doc:meta])* $field:ident: $ty:ty,)* })*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct $name {
            $($(#[$field_doc])* pub $field: Option<$ty>,)*
        }
    )*};
}

raw_mappings! {
    /// A `kind: Scenario` document.
    RawScenarioDocument { api_version: String, kind: String, metadata: RawMetadata, spec: RawScenarioSpec, }

    RawScenarioSpec {
        duration: DurationText,
        seed: i64,
        interval: DurationText,
        load: Vec<RawLoad>,
        events: Vec<RawEvent>,
        aws: RawAws,
    }

    /// One service's requests per second over time.
    RawLoad {
        service: String,
        /// A constant rate.
        rps: f64,
        /// Joined linearly.
        points: Vec<RawPoint>,
        /// Each holds until the next.
        steps: Vec<RawPoint>,
        /// The points repeat with this period.
        repeat: DurationText,
    }

    RawPoint { at: DurationText, rps: f64, }

    /// One event: a time and exactly one action.
    RawEvent {
        at: DurationText,
        every: DurationText,
        desired_state: String,
        deploy: RawServiceRef,
        terminate_instance: RawTerminate,
        actor: RawActor,
        restart_controller: RawFlag,
        outage: RawOutage,
    }

    RawServiceRef { service: String, }

    RawTerminate {
        count: i64,
        zone: String,
        /// The Capacity document (by `metadata.name`) whose group loses the
        /// instances; needed only when the desired state has several.
        capacity: String,
    }

    RawActor { service: String, desired_count: i64, }

    RawOutage { duration: DurationText, }

    /// The fidelity settings of the simulated cloud a scenario overrides.
    RawAws {
        deregistration_propagation_lag: DurationText,
        deregistration_delay: DurationText,
        health_check_interval: DurationText,
        healthy_threshold: i64,
        stop_timeout: DurationText,
        sigterm_grace: DurationText,
        consistency_lag: DurationText,
        az_rebalance: bool,
        task_start_delay: DurationText,
        instance_launch_delay: DurationText,
        minimum_healthy_percent: i64,
        maximum_percent: i64,
    }
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
