//! Desired-state documents that name the seeded system's resources: what
//! a test (or `examples/emulator_seed.rs`) declares about it.

#![allow(dead_code)]

use std::path::Path;

use super::emulator::{BACKEND, CLUSTER, CONTAINER, FRONTEND, GROUP, REGION, SERVICE, System};

/// A CPU alarm rule of a scaling document (`scaleOut` or `scaleIn`).
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub threshold: f64,
    pub period_secs: i32,
    pub evaluation_periods: i32,
    pub datapoints: i32,
    /// Tasks added or removed per action.
    pub step: u32,
    pub cooldown: &'static str,
}

impl Rule {
    /// The rule as a YAML flow mapping. `datapointsToAlarm` is left out
    /// where it is its default (`evaluationPeriods`), so a test sees the
    /// default applied.
    fn yaml(&self) -> String {
        let Rule { threshold, period_secs, evaluation_periods, datapoints, step, cooldown } = self;
        let datapoints =
            if datapoints == evaluation_periods { String::new() } else { format!(" datapointsToAlarm: {datapoints},") };
        format!(
            "{{threshold: {threshold}, period: {period_secs}s, evaluationPeriods: {evaluation_periods},{datapoints} \
             step: {step}, cooldown: {cooldown}}}"
        )
    }
}

/// The scale-out rule every scaling document declares.
pub const SCALE_OUT: Rule =
    Rule { threshold: 70.0, period_secs: 60, evaluation_periods: 3, datapoints: 2, step: 2, cooldown: "3m" };

/// The scale-in rule every scaling document declares.
pub const SCALE_IN: Rule =
    Rule { threshold: 25.0, period_secs: 60, evaluation_periods: 15, datapoints: 15, step: 1, cooldown: "5m" };

/// `missingData` of every scaling document (not the default, so a test
/// sees it was applied).
pub const MISSING_DATA: &str = "notBreaching";

/// How many tasks a `Service` document asks for.
#[derive(Debug, Clone, Copy)]
pub enum Tasks {
    /// `tasks: {count: N}`.
    Count(u32),
    /// `tasks: {min, max}`.
    Range { min: u32, max: u32 },
}

/// The `Capacity` document of the seeded group.
#[derive(Debug, Clone)]
pub struct Capacity {
    /// Subnets with `mode: alwaysOn`.
    pub always_on: Vec<String>,
    /// An on-demand subnet and its `whenInstancesAbove`.
    pub on_demand: Option<(String, u32)>,
    /// `maxChangePerPass`.
    pub max_change_per_pass: u32,
    /// `takeOver.managedScaling`.
    pub take_over_managed_scaling: bool,
    /// `terminationHook.heartbeatTimeout`, if a hook is declared.
    pub termination_hook: Option<&'static str>,
}

/// What a test declares about the seeded system.
#[derive(Debug, Clone)]
pub struct Declared {
    /// The ECS service's name (in `appCluster`).
    pub service: String,
    pub tasks: Tasks,
    /// CPU scaling with the rules of [`scale_out`] and [`scale_in`];
    /// `Some(target)` adds `targetCpu` (which makes ballast read CPU).
    pub scaling: Option<Option<f64>>,
    /// Bind `frontendTargetGroup` (80) and `backendTargetGroup` (8000).
    pub target_groups: bool,
    /// `budget.maxDeregistrationsPerPass`.
    pub max_deregistrations_per_pass: u32,
    /// `takeOver.desiredCount`.
    pub take_over_desired_count: bool,
    /// `takeOver.loadBalancers`.
    pub take_over_load_balancers: bool,
    /// A `Capacity` document for `ecsAutoScalingGroup`, if any.
    pub capacity: Option<Capacity>,
}

impl Declared {
    /// The article's system as [`System`] seeds it: `appService` with 2 to
    /// 10 tasks and CPU scaling, both target groups, and the group with
    /// its two subnets always on and the spare one on demand above 3
    /// instances.
    pub fn article(system: &System) -> Declared {
        Declared {
            service: SERVICE.into(),
            tasks: Tasks::Range { min: 2, max: 10 },
            scaling: Some(None),
            target_groups: true,
            // Both target groups lose a target when a task stops; one pass
            // may take both out.
            max_deregistrations_per_pass: 2,
            take_over_desired_count: false,
            take_over_load_balancers: false,
            capacity: Some(Capacity {
                always_on: system.subnets.clone(),
                on_demand: Some((system.spare_subnet.clone(), 3)),
                max_change_per_pass: 2,
                take_over_managed_scaling: false,
                termination_hook: None,
            }),
        }
    }

    /// The YAML documents: the `Service`, and the `Capacity` if declared.
    pub fn yaml(&self) -> (String, Option<String>) {
        let tasks = match self.tasks {
            Tasks::Count(n) => format!("{{count: {n}}}"),
            Tasks::Range { min, max } => format!("{{min: {min}, max: {max}}}"),
        };
        let mut svc = format!(
            "apiVersion: ballast.dev/v1alpha1\n\
             kind: Service\n\
             metadata:\n  name: app\n\
             spec:\n  region: {REGION}\n  cluster: {CLUSTER}\n  service: {}\n  tasks: {tasks}\n",
            self.service
        );
        if self.target_groups {
            svc += "  targetGroups:\n";
            for (tg, port) in [(FRONTEND, 80), (BACKEND, 8000)] {
                svc += &format!(
                    "    - {{targetGroup: {tg}, containerName: {CONTAINER}, containerPort: {port}, targetType: instance}}\n"
                );
            }
        }
        if let Some(target_cpu) = self.scaling {
            svc += &format!(
                "  scaling:\n    cpu:\n      missingData: {MISSING_DATA}\n{}      scaleOut: {}\n      scaleIn: {}\n",
                target_cpu.map(|t| format!("      targetCpu: {t}\n")).unwrap_or_default(),
                SCALE_OUT.yaml(),
                SCALE_IN.yaml(),
            );
        }
        svc += &format!(
            "  budget: {{maxDeregistrationsPerPass: {}, maxCountChangePerPass: 4}}\n  \
             takeOver: {{desiredCount: {}, loadBalancers: {}}}\n",
            self.max_deregistrations_per_pass, self.take_over_desired_count, self.take_over_load_balancers
        );
        let cap = self.capacity.as_ref().map(|c| {
            let mut y = format!(
                "apiVersion: ballast.dev/v1alpha1\n\
                 kind: Capacity\n\
                 metadata:\n  name: app-capacity\n\
                 spec:\n  region: {REGION}\n  cluster: {CLUSTER}\n  autoScalingGroup: {GROUP}\n  \
                 minInstances: 1\n  maxInstances: 10\n  tasksPerInstance: 1\n  headroom: 0\n  \
                 scaleInCooldown: 5m\n  maxChangePerPass: {}\n  takeOver: {{managedScaling: {}}}\n  zones:\n",
                c.max_change_per_pass, c.take_over_managed_scaling
            );
            if let Some(timeout) = c.termination_hook {
                y = y.replace("  zones:\n", &format!("  terminationHook: {{heartbeatTimeout: {timeout}}}\n  zones:\n"));
            }
            for s in &c.always_on {
                y += &format!("    - {{subnet: {s}, mode: alwaysOn}}\n");
            }
            if let Some((s, above)) = &c.on_demand {
                y += &format!("    - {{subnet: {s}, zone: us-east-1c, mode: onDemand, whenInstancesAbove: {above}}}\n");
            }
            y
        });
        (svc, cap)
    }

    /// Write the documents into `dir` (replacing earlier ones).
    pub fn write_to(&self, dir: &Path) {
        let (svc, cap) = self.yaml();
        std::fs::write(dir.join("service.yaml"), svc).unwrap();
        let cap_path = dir.join("capacity.yaml");
        match cap {
            Some(cap) => std::fs::write(cap_path, cap).unwrap(),
            None => {
                let _ = std::fs::remove_file(cap_path);
            }
        }
    }
}
