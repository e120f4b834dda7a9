//! The rules between documents, checked once every document of every
//! file has been read.

use super::{CapacityClaims, Checked, Loc, ServiceClaims, Unique, did_you_mean};
use crate::desired::diagnostic::Diagnostic;

/// The rules between documents: unique names, one owner per service,
/// target group, Auto Scaling group and cluster, and references that
/// lead somewhere. `complete` is false when some document could not be
/// read at all: then "nothing refers to this" is not reported, because
/// the missing reference may be in the unreadable document.
pub(crate) fn cross_check(docs: &[Checked], complete: bool, diags: &mut Vec<Diagnostic>) {
    let mut services: Vec<&ServiceClaims> = Vec::new();
    let mut capacities: Vec<&CapacityClaims> = Vec::new();
    let mut declared: Vec<&(Unique, Loc)> = Vec::new();
    for doc in docs {
        match doc {
            Checked::Service(c, _) => {
                services.push(c);
                declared.extend(&c.unique);
            }
            Checked::Capacity(c, _) => {
                capacities.push(c);
                declared.extend(&c.unique);
            }
        }
    }
    // Every repeat is reported at itself, pointing at the first.
    for (i, (claim, loc)) in declared.iter().enumerate() {
        if let Some((_, first)) = declared[..i].iter().find(|(earlier, _)| earlier == claim) {
            let (message, help) = conflict(claim, first);
            diags.push(Diagnostic::at(&loc.file, loc.pos, message, help));
        }
    }

    for cap in &capacities {
        let Some((region, cluster, loc)) = &cap.cluster else {
            continue;
        };
        let in_cluster: Vec<&&ServiceClaims> =
            services.iter().filter(|s| s.cluster.as_ref().is_some_and(|(r, c)| r == region && c == cluster)).collect();
        if in_cluster.is_empty() {
            // A service whose region or cluster is itself wrong may be the
            // one meant; its own message comes first.
            if !complete || services.iter().any(|s| s.cluster.is_none()) {
                continue;
            }
            let known: Vec<&str> = services
                .iter()
                .filter_map(|s| s.cluster.as_ref())
                .filter(|(r, _)| r == region)
                .map(|(_, c)| c.as_str())
                .collect();
            let other_region =
                services.iter().filter_map(|s| s.cluster.as_ref()).find(|(r, c)| c == cluster && r != region);
            let suggestion = did_you_mean(cluster, &known);
            let help = if suggestion.is_some() {
                "a Capacity sizes the instances of a cluster that a Service document uses".to_string()
            } else if let Some((r, _)) = other_region {
                format!("a Service uses `{cluster}` in `{r}`: set the same `region` in both documents")
            } else {
                format!("add a Service document with `cluster: {cluster}` (region {region}), or fix the cluster name")
            };
            diags.push(Diagnostic::at(
                &loc.file,
                loc.pos,
                format!("no Service document runs in cluster `{cluster}` ({region}): this Capacity would size instances for nothing"),
                help,
            ).did_you_mean(suggestion));
            continue;
        }
        // Tasks that must run, against tasks that can fit at most.
        if let (Some((max, max_loc)), Some(per)) = (&cap.max_instances, cap.tasks_per_instance) {
            let needed: Option<u64> = in_cluster.iter().map(|s| s.min_tasks.map(u64::from)).sum();
            let fit = u64::from(*max) * u64::from(per);
            if let Some(needed) = needed
                && needed > fit
            {
                diags.push(Diagnostic::at(
                    &max_loc.file,
                    max_loc.pos,
                    format!(
                        "the services in cluster `{cluster}` need at least {needed} tasks, but at most {fit} fit on {max} instances of {per} tasks each"
                    ),
                    "raise `maxInstances` (or `tasksPerInstance`), or lower the services' `tasks.min`/`count`",
                ));
            }
        }
    }
}

/// What to say when a document declares `claim` again, first declared
/// at `first`: what is wrong, and what to do.
fn conflict(claim: &Unique, first: &Loc) -> (String, String) {
    match claim {
        Unique::Name { kind, name } => (
            format!("a {kind} named `{name}` is already declared at {first}"),
            format!("`metadata.name` must be unique among {kind} documents: rename one of them"),
        ),
        Unique::Service(id) => (
            format!(
                "service `{}` in cluster `{}` ({}) is already declared at {first}",
                id.service, id.cluster, id.region
            ),
            "two documents managing one ECS service would fight over it: keep one document for it".into(),
        ),
        Unique::TargetGroup { region, name } => (
            format!("target group `{name}` ({region}) is already bound at {first}"),
            "a target group can be bound once: two bindings would register and deregister the same targets; remove one"
                .into(),
        ),
        Unique::Group(g) => (
            format!("Auto Scaling group `{}` ({}) is already managed by the Capacity at {first}", g.name, g.region),
            "two documents sizing one group would fight over it: keep one Capacity for it".into(),
        ),
        Unique::CapacityOf { region, cluster } => (
            format!("cluster `{cluster}` ({region}) already has a Capacity at {first}"),
            "one Capacity per cluster: ballast sizes the cluster's instances from all its services' tasks".into(),
        ),
    }
}
