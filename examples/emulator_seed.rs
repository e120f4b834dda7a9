//! Seed a running AWS emulator with the article's system and write the
//! desired state that declares it, so that `ballast --cloud aws` has
//! something real to reconcile. `scripts/emulator.sh --seed DIR` runs it;
//! by hand:
//!
//! ```sh
//! cargo run --example emulator_seed -- http://127.0.0.1:5000 http://127.0.0.1:5001 /tmp/ballast-desired
//! ```
//!
//! The system is the one the tests seed (`tests/support/emulator.rs`,
//! `Actors::seed`): VPC 10.0.0.0/16 with three subnets in us-east-1, the
//! Auto Scaling group with two instances joined to `appCluster`, the task
//! definition with static host ports 80 and 8000, `appService` with two
//! RUNNING tasks, and the internal NLB with `frontendTargetGroup` (80) and
//! `backendTargetGroup` (8000), no targets registered yet. It goes into
//! moto's default account (access key `testing`).

#[path = "../tests/support/declared.rs"]
mod declared;
#[path = "../tests/support/emulator.rs"]
mod emulator;

use std::path::PathBuf;

const USAGE: &str = "usage: emulator_seed MOTO_URL BRIDGE_URL DIR";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [moto_url, bridge_url, dir] = <[String; 3]>::try_from(args).unwrap_or_else(|_| {
        eprintln!("{USAGE}");
        std::process::exit(2);
    });
    let account = emulator::Account {
        id: "123456789012".into(),
        access_key: "testing".into(),
        secret_key: "testing".into(),
        moto_url,
        bridge_url,
    };
    let system = account.actors().seed(2).await;
    let dir = PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    declared::Declared::article(&system).write_to(&dir);
    println!("seeded: cluster {}, service {}, tasks {:?}", emulator::CLUSTER, emulator::SERVICE, system.tasks);
    println!("declared in {}: try `ballast plan --cloud aws {}`", dir.display(), dir.display());
}
