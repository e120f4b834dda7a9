//! Auto Scaling behaviours that change what a load-balanced service sees:
//! instances AWS terminates by itself.
//!
//! Each behaviour names the AWS documentation page that describes it.

use super::SimCloud;
use super::world::{Lifecycle, World};
use crate::cloud::CloudError;
use crate::desired::GroupId;

impl World {
    /// Auto Scaling replaces `count` InService instances of its own accord,
    /// newest first, only in `zone` if given. Returns their ids (fewer than
    /// `count` when the group has fewer such instances).
    pub fn terminate_by_aws(
        &mut self,
        group: &GroupId,
        count: u32,
        zone: Option<&str>,
    ) -> Result<Vec<String>, CloudError> {
        if !self.groups.contains_key(group) {
            return Err(CloudError::NotFound(format!("Auto Scaling group {group}")));
        }
        let mut candidates: Vec<(u64, String)> = self
            .instances
            .values()
            .filter(|i| i.group.as_ref() == Some(group) && i.lifecycle == Lifecycle::InService)
            .filter(|i| zone.is_none_or(|z| i.zone == z))
            .map(|i| (i.seq, i.id.clone()))
            .collect();
        candidates.sort();
        let victims: Vec<String> = candidates.into_iter().rev().take(count as usize).map(|(_, id)| id).collect();
        // Desired capacity stays: the group launches replacements as it
        // reconciles (health replacement, Spot interruption:
        // https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-health-checks.html,
        // https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-capacity-rebalancing.html).
        for id in &victims {
            self.terminate_instance(id);
        }
        Ok(victims)
    }
}

impl SimCloud {
    /// AWS terminates `count` InService instances of the group by itself
    /// (health replacement, Spot interruption), newest first, in `zone` if
    /// given; Auto Scaling launches replacements (desired capacity
    /// unchanged). Returns the instance ids: fewer than `count` when the
    /// group (or zone) has fewer InService instances.
    pub fn terminate_instances_by_aws(
        &self,
        group: &GroupId,
        count: u32,
        zone: Option<&str>,
    ) -> Result<Vec<String>, CloudError> {
        self.control(|w| w.terminate_by_aws(group, count, zone))
    }
}
