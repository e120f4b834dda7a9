//! Tests of the Auto Scaling behaviours (and read lag) of the simulated
//! cloud, on hand-built worlds in virtual time.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::cloud::ManualClock;
use crate::desired::GroupId;
use crate::observed::{Lifecycle, ObservedGroup, ObservedInstance};

const REGION: &str = "us-east-1";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn gid() -> GroupId {
    GroupId { region: REGION.to_string(), name: "asg".to_string() }
}

struct World {
    sim: SimCloud,
    clock: Arc<ManualClock>,
}

impl World {
    /// A group of `desired` instances (min 1, max 10) over subnet-a and
    /// subnet-b (us-east-1a, us-east-1b; subnet-c is us-east-1c), all in
    /// service.
    fn new(desired: u32, config: SimConfig) -> Self {
        let clock = Arc::new(ManualClock::new());
        let sim = SimCloud::new(clock.clone(), 7, Arc::new(Metrics::new()), config);
        for zone in ["a", "b", "c"] {
            sim.add_subnet(REGION, &format!("subnet-{zone}"), &format!("{REGION}{zone}"));
        }
        sim.create_group(&GroupSpec {
            id: gid(),
            cluster: None,
            min: 1,
            max: 10,
            desired,
            subnets: vec!["subnet-a".to_string(), "subnet-b".to_string()],
            instance_cpu: 1024,
            instance_memory: 982,
        })
        .unwrap();
        let world = World { sim, clock };
        world.advance(secs(60));
        world
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
        self.sim.tick();
    }

    fn group(&self) -> ObservedGroup {
        self.sim.group(&gid()).expect("group exists")
    }

    fn instance(&self, id: &str) -> Option<ObservedInstance> {
        self.group().instances.into_iter().find(|i| i.id == id)
    }

    /// Zones of the active (pending or in-service) instances, in launch order.
    fn active_zones(&self) -> Vec<String> {
        self.group().instances.into_iter().filter(|i| i.is_active()).map(|i| i.zone).collect()
    }
}

// ---- instances AWS terminates by itself -------------------------------------

#[test]
fn aws_terminates_the_newest_in_service_instances_and_replaces_them() {
    let w = World::new(4, SimConfig::default());
    let ids: Vec<String> = w.group().instances.iter().map(|i| i.id.clone()).collect();
    assert_eq!(w.active_zones(), ["us-east-1a", "us-east-1b", "us-east-1a", "us-east-1b"]);

    let gone = w.sim.terminate_instances_by_aws(&gid(), 1, Some("us-east-1a")).unwrap();
    assert_eq!(gone, [ids[2].clone()], "the newest instance of us-east-1a");
    let group = w.group();
    assert_eq!(group.desired_capacity, 4, "AWS's own termination keeps the desired capacity");
    assert_eq!(w.instance(&ids[2]).unwrap().lifecycle_state, Lifecycle::Terminating);
    let replacement = group.instances.last().unwrap();
    assert_eq!((replacement.zone.as_str(), &replacement.lifecycle_state), ("us-east-1a", &Lifecycle::Pending));

    let gone = w.sim.terminate_instances_by_aws(&gid(), 2, None).unwrap();
    assert_eq!(gone, [ids[3].clone(), ids[1].clone()], "newest in-service first; the pending one is spared");
    assert_eq!(w.sim.terminate_instances_by_aws(&gid(), 5, Some("us-east-1b")).unwrap(), Vec::<String>::new());
    assert_eq!(w.group().instances.iter().filter(|i| i.is_active()).count(), 4);

    let other = GroupId { region: REGION.to_string(), name: "nope".to_string() };
    assert!(matches!(w.sim.terminate_instances_by_aws(&other, 1, None), Err(CloudError::NotFound(_))));
}
