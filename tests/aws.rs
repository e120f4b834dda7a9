//! The AWS adapter over the wire, against moto (see `docs/aws.md`).

mod support;

use ballast::cloud::{Cloud, Scope};
use support::emulator::{self, Emulator, System};

fn scope_of(system: &System) -> Scope {
    Scope {
        services: vec![system.service_id()],
        target_groups: vec![
            System::target_group(emulator::FRONTEND),
            System::target_group(emulator::BACKEND),
        ],
        alarms: vec![],
        cpu: vec![system.service_id()],
        task_sizes: vec![system.service_id()],
        groups: vec![(system.group_id(), emulator::CLUSTER.to_string())],
    }
}

#[tokio::test]
async fn smoke() {
    let account = Emulator::shared().account().await;
    let actors = account.actors();
    let system = actors.seed(2).await;
    let cloud = account.cloud(emulator::test_options());
    let observed = cloud.observe(&scope_of(&system)).await.unwrap();
    println!("{observed:#?}");
    println!("{:#?}", cloud.api_calls());
}
