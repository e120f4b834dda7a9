//! The CPU alarms a scaling policy keeps in CloudWatch.

use crate::desired::ServiceId;

/// Names of the scale-out and scale-in alarms of a service.
pub fn alarm_names(id: &ServiceId) -> [String; 2] {
    [
        format!("ballast-{}-{}-cpu-high", id.cluster, id.service),
        format!("ballast-{}-{}-cpu-low", id.cluster, id.service),
    ]
}
