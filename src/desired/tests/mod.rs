//! The loader's tests, from text and directories to diagnostics, and the
//! documents they start from.

mod arbitrary_input;
mod load;
mod schema_agreement;

use crate::desired::{Diagnostic, load_str};
use std::path::{Path, PathBuf};

const REGION: &str = "us-east-2";

use crate::fixtures;

fn manifest_dir() -> PathBuf {
    fixtures::repo()
}

fn errors(text: &str) -> Vec<Diagnostic> {
    load_str("t.yaml", text, REGION).expect_err("the document should be refused").diagnostics
}

fn write(dir: &Path, rel: &str, contents: impl AsRef<[u8]>) {
    let path = dir.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, contents).unwrap();
}

const SERVICE: &str = "\
apiVersion: ballast.dev/v1alpha1
kind: Service
metadata:
  name: app
spec:
  cluster: appCluster
  service: appService
  tasks:
    min: 2
    max: 10
  targetGroups:
    - targetGroup: frontendTargetGroup
      containerName: appContainer
      containerPort: 80
  scaling:
    cpu:
      scaleOut:
        threshold: 70
      scaleIn:
        threshold: 30
";

const CAPACITY: &str = "\
apiVersion: ballast.dev/v1alpha1
kind: Capacity
metadata:
  name: app-capacity
spec:
  cluster: appCluster
  autoScalingGroup: ecsAutoScalingGroup
  minInstances: 1
  maxInstances: 10
  tasksPerInstance: 1
  zones:
    - subnet: subnet-0a1b2c3d4e5f60001
    - subnet: subnet-0a1b2c3d4e5f60002
      mode: onDemand
      whenInstancesAbove: 2
";

fn both() -> String {
    format!("{SERVICE}---\n{CAPACITY}")
}
