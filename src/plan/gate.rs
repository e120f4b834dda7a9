//! The admission gate, and the holds it and the planner's rules report.
//!
//! Every change the planner proposes passes through [`admit`], which
//! checks it in one order, the same for every kind of resource:
//!
//! 1. **Conflict**: another actor manages what the change writes
//!    (Application Auto Scaling, the ECS service's own `loadBalancers`,
//!    ECS managed scaling). Writing would start a fight the user has not
//!    asked for; only a `takeOver` setting lets ballast in.
//! 2. **Contested**: someone keeps reverting the field. Even with the
//!    user's consent, correcting it again only flaps; ballast waits until
//!    the field stays put.
//! 3. **Suspended**: the document says `suspend: true`; nothing is written.
//! 4. **Unconfirmed**: ballast's last write to the field does not show in
//!    reads yet, within the consistency lag: reads of ECS, Auto Scaling
//!    and CloudWatch may lag writes, and writing again would only repeat it.
//! 5. **Limits** (budgets, the healthy floor, what the instances hold): the
//!    proposal was already cut to them; the change goes ahead and each
//!    limit is reported beside it.
//!
//! The first check that applies holds the change, so a suspended document
//! never reports budgets, and a conflict is reported even while the
//! document is suspended: the conflict is what the user must resolve.
//!
//! A [`Hold`] carries a typed [`HoldReason`]; its kind (a metric label)
//! and its message (what the user reads) are derived from it.

use std::time::Duration;

use serde::ser::SerializeStruct as _;

use super::memory::Field;
use super::{Change, PlannedChange, ResourceKey};
use crate::desired::ServiceId;
use crate::observed::Target;

/// Why something the planner would have done was not done, as a stable
/// metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// A per-pass change budget; the rest follows in later passes.
    Budget,
    /// Another actor manages the field.
    Conflict,
    /// Someone keeps reverting the field; ballast stopped fighting.
    Contested,
    /// `suspend: true` on the document.
    Suspended,
    /// Traffic safety (healthy floor, attribution, addresses).
    Safety,
    /// A scaling or capacity rule (cooldown, window, data) holds it.
    Scaling,
    /// The resource could not be observed.
    Unobserved,
}

impl HoldKind {
    pub const ALL: [HoldKind; 7] = [
        HoldKind::Budget,
        HoldKind::Conflict,
        HoldKind::Contested,
        HoldKind::Suspended,
        HoldKind::Safety,
        HoldKind::Scaling,
        HoldKind::Unobserved,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            HoldKind::Budget => "budget",
            HoldKind::Conflict => "conflict",
            HoldKind::Contested => "contested",
            HoldKind::Suspended => "suspended",
            HoldKind::Safety => "safety",
            HoldKind::Scaling => "scaling",
            HoldKind::Unobserved => "unobserved",
        }
    }
}

/// Another actor that manages what a change would write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// Application Auto Scaling has a scalable target on the desired count.
    ScalableTarget,
    /// The ECS service registers its tasks in the group itself.
    ServiceLoadBalancers,
    /// ECS managed scaling (a capacity provider) sizes the group.
    ManagedScaling,
    /// Auto Scaling's AZRebalance is active and the document keeps ballast
    /// from suspending it (`suspendAzRebalance: false`).
    AzRebalance,
}

impl Conflict {
    fn describe(&self) -> &'static str {
        match self {
            Conflict::ScalableTarget => {
                "Application Auto Scaling has a scalable target on this service's desired count; \
                 set takeOver.desiredCount to let ballast manage it"
            }
            Conflict::ServiceLoadBalancers => {
                "the ECS service registers targets in this group itself (its loadBalancers); \
                 set takeOver.loadBalancers to let ballast manage them"
            }
            Conflict::ManagedScaling => {
                "ECS managed scaling drives this group (AmazonECSManaged tag); \
                 set takeOver.managedScaling to let ballast manage it"
            }
            Conflict::AzRebalance => {
                "Auto Scaling's AZRebalance is active on this group: after a zone change it would launch and \
                 terminate instances by itself, stopping their tasks without a drain; remove \
                 `suspendAzRebalance: false` to let ballast suspend it"
            }
        }
    }
}

/// A field that someone else keeps changing back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contested {
    pub field: Field,
    /// Reverts counted within `window`.
    pub reverts: usize,
    pub window: Duration,
}

/// A field whose last write by ballast does not show in reads yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unconfirmed {
    pub field: Field,
    /// Since ballast wrote it.
    pub age: Duration,
    /// How long a read may lag a write.
    pub lag: Duration,
}

/// A per-pass budget that cut a change short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Budget {
    /// `budget.maxCountChangePerPass`: the count moves in steps.
    DesiredCount { per_pass: u32, from: u32, now: u32, target: u32 },
    /// `budget.maxDeregistrationsPerPass`, shared by all the service's
    /// target groups; `elsewhere` of it went to its other groups this pass.
    Deregistrations { target: Target, per_pass: u32, elsewhere: u32 },
    /// A scale-out cut to what the Auto Scaling group's instances hold
    /// once this pass's capacity change is made. `max_size` is the group's
    /// MaxSize when the capacity stops there: no more instances come until
    /// it is raised.
    Instances { instances: u32, fit: u32, service: ServiceId, target: u32, max_size: Option<u32> },
}

/// The Auto Scaling group's own size limits. AWS rejects a capacity outside
/// them with `ValidationError`, so ballast stops at them and says so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupSize {
    /// The tasks need more instances than the group's MaxSize allows.
    AboveMaxSize { needed: u32, max_size: u32 },
    /// The tasks need fewer instances than the group's MinSize keeps.
    BelowMinSize { needed: u32, min_size: u32 },
}

/// A traffic-safety rule that kept something as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Safety {
    /// Removing a healthy stale target would go below the healthy floor.
    HealthyFloor { target: Target, healthy_after: u32, floor: u32 },
    /// A serving task has no address for the binding (no host port, no IP).
    NoAddress { task: String, container: String, port: u16 },
    /// A serving task's task definition maps no such port for the
    /// binding's container: the declared `containerPort` (or
    /// `containerName`) does not match it. `declared` locates the document.
    NoSuchPort { task: String, container: String, port: u16, task_definition: String, declared: String },
    /// A healthy stale target kept because `tasks` serving task(s) have no
    /// known address: it may be one of theirs.
    MaybeServing { target: Target, tasks: u32 },
    /// A zone change waits until the group's AZRebalance shows as
    /// suspended: with it active, Auto Scaling would move instances itself.
    AzRebalanceActive,
}

/// Why a change was held, typed. [`HoldReason::kind`] and the `Display`
/// text are derived from it.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldReason {
    /// An input could not be read this pass.
    Unobserved(String),
    /// Another actor manages the field; `change` is what ballast would do.
    Conflict {
        conflict: Conflict,
        change: String,
    },
    Contested(Contested),
    Unconfirmed(Unconfirmed),
    /// The document is suspended; `change` is what ballast would do.
    Suspended {
        change: String,
    },
    Budget(Budget),
    Safety(Safety),
    /// A scaling or capacity rule, in the rule's own words.
    Scaling(String),
    /// The capacity stops at the group's MinSize or MaxSize.
    GroupSize(GroupSize),
    /// A scale-in waits while the tasks it takes out drain ([`super::drain`]).
    Draining(super::drain::Waiting),
    /// A deployment hands its old tasks over ([`super::drain::Handover`]):
    /// progress, or stalled at the floor (a safety hold).
    Deploying(super::drain::Handover),
    /// An instance in `Terminating:Wait` waits while its tasks drain
    /// ([`super::terminations`]).
    Terminating(super::terminations::TerminationWait),
}

impl HoldReason {
    pub fn kind(&self) -> HoldKind {
        match self {
            HoldReason::Unobserved(_) => HoldKind::Unobserved,
            HoldReason::Conflict { .. } => HoldKind::Conflict,
            HoldReason::Contested(_) => HoldKind::Contested,
            HoldReason::Unconfirmed(_) => HoldKind::Safety,
            HoldReason::Suspended { .. } => HoldKind::Suspended,
            HoldReason::Budget(_) => HoldKind::Budget,
            HoldReason::Safety(_) => HoldKind::Safety,
            HoldReason::Deploying(h) if h.stalled => HoldKind::Safety,
            HoldReason::Scaling(_)
            | HoldReason::GroupSize(_)
            | HoldReason::Draining(_)
            | HoldReason::Deploying(_)
            | HoldReason::Terminating(_) => HoldKind::Scaling,
        }
    }
}

impl std::fmt::Display for HoldReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HoldReason::Unobserved(e) => f.write_str(e),
            HoldReason::Conflict { conflict, change } => {
                write!(f, "{}; not applying: {change}", conflict.describe())
            }
            HoldReason::Contested(c) => write!(
                f,
                "the {} was changed back by someone else {} times within {}; \
                 not correcting it until it stays put",
                c.field,
                c.reverts,
                humantime::format_duration(c.window)
            ),
            HoldReason::Unconfirmed(u) => write!(
                f,
                "the {} ballast wrote {} ago does not show in reads yet; reads may lag writes by up to {}, \
                 so it is not written again before they catch up",
                u.field,
                humantime::format_duration(Duration::from_secs(u.age.as_secs())),
                humantime::format_duration(u.lag)
            ),
            HoldReason::Suspended { change } => write!(f, "document is suspended; not applying: {change}"),
            HoldReason::Draining(w) => write!(f, "{w}"),
            HoldReason::Deploying(h) => write!(f, "{h}"),
            HoldReason::Terminating(w) => write!(f, "{w}"),
            HoldReason::Budget(Budget::DesiredCount { per_pass, from, now, target }) => {
                write!(f, "desired count moves by at most {per_pass} per pass: {from} -> {now} now, {target} later")
            }
            HoldReason::Budget(Budget::Deregistrations { target, per_pass, elsewhere }) => {
                write!(f, "keeping stale target {target}: the deregistration budget of {per_pass} per pass is used")?;
                match elsewhere {
                    0 => Ok(()),
                    n if n == per_pass => write!(f, " (by the service's other target groups)"),
                    n => write!(f, " ({n} of it by the service's other target groups)"),
                }
            }
            HoldReason::Budget(Budget::Instances { instances, fit, service, target, max_size: None }) => write!(
                f,
                "{instances} instance(s) this pass hold {fit} task(s) of {service}; \
                 the scale-out to {target} continues as instances are added"
            ),
            HoldReason::Budget(Budget::Instances { instances, fit, service, target, max_size: Some(max) }) => write!(
                f,
                "{instances} instance(s) hold {fit} task(s) of {service}; the Auto Scaling group's MaxSize is {max}, \
                 so the scale-out to {target} waits until MaxSize is raised"
            ),
            HoldReason::Safety(Safety::HealthyFloor { target, healthy_after, floor }) => write!(
                f,
                "keeping stale target {target}: still healthy; removing it would leave {} healthy target(s), \
                 below the floor of {floor}",
                healthy_after.saturating_sub(1)
            ),
            HoldReason::Safety(Safety::MaybeServing { target, tasks }) => write!(
                f,
                "keeping stale target {target}: still healthy, and {tasks} serving task(s) have no known address, \
                 so it may be one of theirs"
            ),
            HoldReason::Safety(Safety::NoSuchPort { task, container, port, task_definition, declared }) => write!(
                f,
                "task {task} has no port {port} of container {container}: its task definition {task_definition} \
                 maps no such port; check containerName and containerPort in {declared}"
            ),
            HoldReason::Safety(Safety::AzRebalanceActive) => f.write_str(
                "the zone change waits until the group's AZRebalance shows as suspended: \
                 while it is active, Auto Scaling would move instances between zones by itself",
            ),
            HoldReason::Safety(Safety::NoAddress { task, container, port }) => {
                write!(f, "task {task} has no address for {container}:{port}")
            }
            HoldReason::Scaling(m) => f.write_str(m),
            HoldReason::GroupSize(GroupSize::AboveMaxSize { needed, max_size }) => write!(
                f,
                "the tasks need {needed} instance(s), above the Auto Scaling group's MaxSize of {max_size}; \
                 capacity stops at {max_size} (AWS rejects more) until MaxSize is raised"
            ),
            HoldReason::GroupSize(GroupSize::BelowMinSize { needed, min_size }) => write!(
                f,
                "the tasks need {needed} instance(s), below the Auto Scaling group's MinSize of {min_size}; \
                 capacity stays at {min_size} (AWS rejects less) until MinSize is lowered"
            ),
        }
    }
}

/// Something the plan leaves as it is on purpose, worth knowing: not a
/// change held back (a resource with notices can be in sync).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Notice {
    pub resource: ResourceKey,
    pub message: String,
}

/// Something held back this pass, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub resource: ResourceKey,
    pub reason: HoldReason,
}

impl Hold {
    pub fn kind(&self) -> HoldKind {
        self.reason.kind()
    }

    /// What the user reads.
    pub fn message(&self) -> String {
        self.reason.to_string()
    }
}

/// `{resource, kind, message}`: what /status and `plan --output json` show.
impl serde::Serialize for Hold {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Hold", 3)?;
        st.serialize_field("resource", &self.resource)?;
        st.serialize_field("kind", &self.kind())?;
        st.serialize_field("message", &self.message())?;
        st.end()
    }
}

/// A change the planner would make, with what the gate checks it against.
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub resource: ResourceKey,
    pub change: Change,
    pub reason: String,
    /// Another actor manages what the change writes.
    pub conflict: Option<Conflict>,
    /// The field the change writes, while someone keeps reverting it.
    pub contested: Option<Contested>,
    /// The document is suspended.
    pub suspended: bool,
    /// The field the change writes, while ballast's last write to it does
    /// not show in reads yet.
    pub unconfirmed: Option<Unconfirmed>,
    /// Budgets and safety rules the change was cut to; reported beside it
    /// when it is admitted.
    pub limits: Vec<HoldReason>,
}

impl Proposal {
    pub fn new(resource: ResourceKey, change: Change, reason: impl Into<String>) -> Self {
        Proposal {
            resource,
            change,
            reason: reason.into(),
            conflict: None,
            contested: None,
            suspended: false,
            unconfirmed: None,
            limits: Vec::new(),
        }
    }
}

/// What the gate decided for one proposal.
#[derive(Debug, Clone, PartialEq)]
#[expect(clippy::large_enum_variant, reason = "a verdict is taken apart at once; boxing would only allocate")]
pub enum Admission {
    /// Make the change; the holds are the limits it was cut to.
    Admitted(PlannedChange, Vec<Hold>),
    /// Do not make it this pass.
    Held(Hold),
}

/// The admission gate: the checks of the module doc, in that order.
pub fn admit(p: Proposal) -> Admission {
    let held = |reason| Admission::Held(Hold { resource: p.resource.clone(), reason });
    if let Some(conflict) = p.conflict {
        return held(HoldReason::Conflict { conflict, change: p.change.to_string() });
    }
    if let Some(c) = p.contested.clone() {
        return held(HoldReason::Contested(c));
    }
    if p.suspended {
        return held(HoldReason::Suspended { change: p.change.to_string() });
    }
    if let Some(u) = p.unconfirmed.clone() {
        return held(HoldReason::Unconfirmed(u));
    }
    let limits = p.limits.into_iter().map(|reason| Hold { resource: p.resource.clone(), reason }).collect();
    Admission::Admitted(PlannedChange { resource: p.resource, change: p.change, reason: p.reason }, limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::ServiceId;

    fn svc() -> ServiceId {
        ServiceId { region: "r".into(), cluster: "c".into(), service: "s".into() }
    }

    fn proposal() -> Proposal {
        let mut p = Proposal::new(
            ResourceKey::service(&svc()),
            Change::SetDesiredCount { service: svc(), from: 1, to: 2 },
            "declared count is 3",
        );
        p.limits.push(HoldReason::Budget(Budget::DesiredCount { per_pass: 1, from: 1, now: 2, target: 3 }));
        p
    }

    fn contested() -> Contested {
        Contested { field: Field::DesiredCount(svc()), reverts: 3, window: Duration::from_secs(600) }
    }

    /// The limits reported beside an admitted change, or what held it.
    type Verdict = Result<Vec<HoldKind>, HoldKind>;

    fn verdict(p: Proposal) -> Verdict {
        match admit(p) {
            Admission::Admitted(_, limits) => Ok(limits.iter().map(Hold::kind).collect()),
            Admission::Held(h) => Err(h.kind()),
        }
    }

    /// The order of the module doc: conflict, contested, suspended, limits.
    #[test]
    fn the_first_check_that_applies_holds_the_change() {
        let cases: &[(bool, bool, bool, Verdict)] = &[
            (false, false, false, Ok(vec![HoldKind::Budget])),
            (false, false, true, Err(HoldKind::Suspended)),
            (false, true, false, Err(HoldKind::Contested)),
            (false, true, true, Err(HoldKind::Contested)),
            (true, false, false, Err(HoldKind::Conflict)),
            (true, true, false, Err(HoldKind::Conflict)),
            (true, false, true, Err(HoldKind::Conflict)),
            (true, true, true, Err(HoldKind::Conflict)),
        ];
        for (conflict, is_contested, suspended, want) in cases {
            let mut p = proposal();
            p.conflict = conflict.then_some(Conflict::ScalableTarget);
            p.contested = is_contested.then(contested);
            p.suspended = *suspended;
            assert_eq!(
                &verdict(p.clone()),
                want,
                "conflict {conflict}, contested {is_contested}, suspended {suspended}"
            );
            // A write not yet seen in reads comes after all three.
            p.unconfirmed = Some(Unconfirmed {
                field: Field::DesiredCount(svc()),
                age: Duration::from_secs(3),
                lag: Duration::from_secs(10),
            });
            let want = if want.is_ok() { Err(HoldKind::Safety) } else { want.clone() };
            assert_eq!(
                verdict(p),
                want,
                "unconfirmed, conflict {conflict}, contested {is_contested}, suspended {suspended}"
            );
        }
    }

    #[test]
    fn an_admitted_change_keeps_its_reason_and_reports_its_limits() {
        let Admission::Admitted(pc, limits) = admit(proposal()) else { panic!("admitted") };
        assert_eq!(pc.reason, "declared count is 3");
        assert_eq!(pc.change, Change::SetDesiredCount { service: svc(), from: 1, to: 2 });
        assert_eq!(limits.len(), 1);
        assert_eq!(limits[0].message(), "desired count moves by at most 1 per pass: 1 -> 2 now, 3 later");
    }

    #[test]
    fn messages_say_what_would_have_been_done_and_why() {
        let mut p = proposal();
        p.suspended = true;
        let Admission::Held(h) = admit(p) else { panic!("held") };
        assert_eq!(h.message(), "document is suspended; not applying: service c/s: desired count 1 -> 2");

        let mut p = proposal();
        p.contested = Some(contested());
        let Admission::Held(h) = admit(p) else { panic!("held") };
        assert_eq!(
            h.message(),
            "the desired count of c/s was changed back by someone else 3 times within 10m; \
             not correcting it until it stays put"
        );
    }

    #[test]
    fn the_deregistration_budget_says_who_used_it() {
        let target = Target { id: "i-1".into(), port: 80 };
        let msg = |per_pass, elsewhere| {
            HoldReason::Budget(Budget::Deregistrations { target: target.clone(), per_pass, elsewhere }).to_string()
        };
        assert_eq!(msg(1, 0), "keeping stale target i-1:80: the deregistration budget of 1 per pass is used");
        assert_eq!(
            msg(1, 1),
            "keeping stale target i-1:80: the deregistration budget of 1 per pass is used \
             (by the service's other target groups)"
        );
        assert_eq!(
            msg(3, 2),
            "keeping stale target i-1:80: the deregistration budget of 3 per pass is used \
             (2 of it by the service's other target groups)"
        );
    }

    #[test]
    fn holds_serialize_with_their_kind_and_message() {
        let h = Hold { resource: ResourceKey::service(&svc()), reason: HoldReason::Scaling("cooldown".into()) };
        let v = serde_json::to_value(&h).unwrap();
        assert_eq!(v["kind"], "scaling");
        assert_eq!(v["message"], "cooldown");
        assert_eq!(v["resource"]["type"], "service");
    }
}
