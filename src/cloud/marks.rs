//! Scaling marks: the tags ballast leaves on the ECS service and the Auto
//! Scaling group when it changes a desired count or a capacity, so that a
//! process that starts (a restart, `apply --once`) knows when it last
//! scaled and keeps the cooldowns and the stabilisation window exactly
//! (docs/decisions.md, "Scaling history survives a restart").
//!
//! Both clouds write and read the same tags in the same format, so the
//! simulated cloud cannot drift from what the AWS adapter does.
//!
//! | tag | on | value |
//! |---|---|---|
//! | `ballast.dev/last-scale-out` | ECS service | `<RFC 3339 UTC time> <count>`, e.g. `2026-11-29T10:00:00Z 4` |
//! | `ballast.dev/last-scale-in` | ECS service | likewise |
//! | `ballast.dev/last-capacity-change` | Auto Scaling group | `<RFC 3339 UTC time>` |
//! | `ballast.dev/deployment-surge` | ECS service | `<deployment id> <count>=<base> [<count>=<base>]`, e.g. `ecs-svc/123 5=4 4=4` |
//!
//! The surge mark says which desired counts ballast set during a
//! deployment stand for which base count (the count without the surge,
//! docs/decisions.md, "A deployment surges by the floor's shortfall"): the
//! newest write first, then the one before it, so that a count write that
//! failed after its mark was written is still told apart.
//! Times are written in whole seconds, rounded up, so that a restart never
//! ends a cooldown early. A value that does not parse is taken as absent.

use std::time::{Duration, SystemTime};

use crate::observed::{ScalingMarks, SurgeMark};

/// The last scale-out ballast made on a service.
pub const LAST_SCALE_OUT: &str = "ballast.dev/last-scale-out";
/// The last scale-in ballast made on a service.
pub const LAST_SCALE_IN: &str = "ballast.dev/last-scale-in";
/// The last capacity change ballast made on an Auto Scaling group, in
/// either direction.
pub const LAST_CAPACITY_CHANGE: &str = "ballast.dev/last-capacity-change";

/// The desired counts ballast set during a deployment, and the base
/// count each stands for.
pub const DEPLOYMENT_SURGE: &str = "ballast.dev/deployment-surge";

/// The tag a desired-count change from `from` to `to` leaves, if any.
pub fn scaling_key(from: u32, to: u32) -> Option<&'static str> {
    match to.cmp(&from) {
        std::cmp::Ordering::Greater => Some(LAST_SCALE_OUT),
        std::cmp::Ordering::Less => Some(LAST_SCALE_IN),
        std::cmp::Ordering::Equal => None,
    }
}

/// `at`, rounded up to the second, in RFC 3339 UTC.
fn time_value(at: SystemTime) -> String {
    let since = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
    humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)).to_string()
}

/// The value of a scale-out or scale-in mark: the time and the count
/// ballast set.
pub fn scaling_value(at: SystemTime, count: u32) -> String {
    format!("{} {count}", time_value(at))
}

/// The value of the capacity mark.
pub fn capacity_value(at: SystemTime) -> String {
    time_value(at)
}

fn parse_time(s: &str) -> Option<SystemTime> {
    humantime::parse_rfc3339(s.trim()).ok()
}

fn parse_scaling(s: &str) -> Option<(SystemTime, u32)> {
    let (time, count) = s.trim().split_once(' ')?;
    Some((parse_time(time)?, count.trim().parse().ok()?))
}

/// The scaling marks among a service's tags, (key, value) pairs.
pub fn scaling_marks<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> ScalingMarks {
    let mut marks = ScalingMarks::default();
    for (key, value) in tags {
        match key {
            LAST_SCALE_OUT => marks.last_out = parse_scaling(value),
            LAST_SCALE_IN => marks.last_in = parse_scaling(value),
            _ => {}
        }
    }
    marks
}

/// The value of the surge mark.
pub fn surge_value(mark: &SurgeMark) -> String {
    let mut value = mark.deployment.clone();
    for (count, base) in &mark.counts {
        value.push_str(&format!(" {count}={base}"));
    }
    value
}

/// The surge mark among a service's tags, (key, value) pairs; absent
/// when malformed.
pub fn surge_mark<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<SurgeMark> {
    let (_, value) = tags.into_iter().find(|(key, _)| *key == DEPLOYMENT_SURGE)?;
    let mut words = value.split_whitespace();
    let deployment = words.next()?.to_string();
    let counts = words
        .map(|w| {
            let (count, base) = w.split_once('=')?;
            Some((count.parse().ok()?, base.parse().ok()?))
        })
        .collect::<Option<Vec<(u32, u32)>>>()?;
    (!counts.is_empty()).then_some(SurgeMark { deployment, counts })
}

/// The capacity mark among a group's tags, (key, value) pairs.
pub fn last_capacity_change<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Option<SystemTime> {
    tags.into_iter().find(|(key, _)| *key == LAST_CAPACITY_CHANGE).and_then(|(_, value)| parse_time(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, nanos: u32) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::new(secs, nanos)
    }

    #[test]
    fn the_direction_names_the_mark() {
        assert_eq!(scaling_key(2, 4), Some(LAST_SCALE_OUT));
        assert_eq!(scaling_key(4, 3), Some(LAST_SCALE_IN));
        assert_eq!(scaling_key(3, 3), None);
    }

    #[test]
    fn values_round_trip_in_whole_seconds_rounded_up() {
        let t = at(1_795_946_400, 0);
        assert_eq!(scaling_value(t, 4), "2026-11-29T10:00:00Z 4");
        assert_eq!(capacity_value(t), "2026-11-29T10:00:00Z");
        // A cooldown measured from the mark never ends early.
        assert_eq!(capacity_value(at(1_795_946_400, 1)), "2026-11-29T10:00:01Z");
        let marks = scaling_marks([(LAST_SCALE_OUT, scaling_value(t, 4).as_str()), ("Name", "app")]);
        assert_eq!(marks, ScalingMarks { last_out: Some((t, 4)), last_in: None });
        assert_eq!(last_capacity_change([("x", "y"), (LAST_CAPACITY_CHANGE, capacity_value(t).as_str())]), Some(t));
        let mark = SurgeMark { deployment: "ecs-svc/1".into(), counts: vec![(5, 4), (4, 4)] };
        assert_eq!(surge_value(&mark), "ecs-svc/1 5=4 4=4");
        assert_eq!(surge_mark([("Name", "app"), (DEPLOYMENT_SURGE, surge_value(&mark).as_str())]), Some(mark));
    }

    #[test]
    fn values_written_by_hand_parse_and_malformed_ones_are_absent() {
        let t = at(1_795_946_400, 0);
        let marks = scaling_marks([(LAST_SCALE_IN, " 2026-11-29T10:00:00.000Z  3 ")]);
        assert_eq!(marks.last_in, Some((t, 3)));
        for bad in ["", "2026-11-29T10:00:00Z", "yesterday 3", "2026-11-29T10:00:00Z -1", "2026-11-29 10:00:00 3"] {
            assert_eq!(scaling_marks([(LAST_SCALE_OUT, bad)]), ScalingMarks::default(), "{bad:?}");
        }
        assert_eq!(last_capacity_change([(LAST_CAPACITY_CHANGE, "soon")]), None);
        for bad in ["", "ecs-svc/1", "ecs-svc/1 5", "ecs-svc/1 5=x", "ecs-svc/1 5=4 -1=2"] {
            assert_eq!(surge_mark([(DEPLOYMENT_SURGE, bad)]), None, "{bad:?}");
        }
        assert_eq!(last_capacity_change([]), None);
    }
}
