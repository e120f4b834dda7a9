//! Whatever is in the desired-state directory, the loader answers: never a
//! panic, and either a valid state or problems that each say where they
//! are and what to do. Fed arbitrary bytes, arbitrary text, generated YAML
//! documents, and the valid example with its fields and text mutated.

use super::{CAPACITY, REGION, SERVICE, both};
use crate::desired::{DesiredState, LoadError, load_dir, load_str};
use proptest::prelude::*;
use serde_yaml::Value as Yaml;
use std::path::Path;

/// The problems of a whole file or directory, which have no line: the
/// only ones allowed without a position, and then alone.
const WHOLE_FILE: &[&str] = &[
    "the file is not UTF-8 text",
    "no desired-state documents in this file",
    "no desired-state documents in this directory",
];

/// Keys of the format (and a few that are not), so that generated
/// mappings often look like a document.
const KEYS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "name",
    "spec",
    "region",
    "cluster",
    "service",
    "suspend",
    "tasks",
    "count",
    "min",
    "max",
    "targetGroups",
    "targetGroup",
    "containerName",
    "containerPort",
    "targetType",
    "ownership",
    "minHealthy",
    "scaling",
    "cpu",
    "targetCpu",
    "stabilizationWindow",
    "tolerance",
    "maxDataAge",
    "missingData",
    "scaleOut",
    "scaleIn",
    "threshold",
    "period",
    "evaluationPeriods",
    "datapointsToAlarm",
    "step",
    "cooldown",
    "budget",
    "maxDeregistrationsPerPass",
    "maxCountChangePerPass",
    "takeOver",
    "desiredCount",
    "loadBalancers",
    "autoScalingGroup",
    "minInstances",
    "maxInstances",
    "tasksPerInstance",
    "instanceResources",
    "memory",
    "headroom",
    "scaleInCooldown",
    "maxChangePerPass",
    "zones",
    "subnet",
    "zone",
    "mode",
    "whenInstancesAbove",
    "managedScaling",
    "suspendAzRebalance",
    "terminationHook",
    "heartbeatTimeout",
    "defaultResult",
    "<<",
    "",
    "targetgroups",
];

/// Values the format gives meaning to, valid and not.
const WORDS: &[&str] = &[
    "ballast.dev/v1alpha1",
    "apps/v1",
    "Service",
    "Capacity",
    "service",
    "app",
    "App_1",
    "appCluster",
    "appService",
    "us-east-2",
    "us-west-2",
    "us-east",
    "instance",
    "ip",
    "shared",
    "exclusive",
    "missing",
    "notBreaching",
    "alwaysOn",
    "onDemand",
    "50%",
    "0%",
    "-5%",
    "5m",
    "0s",
    "45s",
    "1h30m",
    "1.5m",
    "99999999999999999999h",
    "subnet-0a1b2c3d",
    "subnet-0a1b2c3d4e5f60001",
    "frontendTargetGroup",
    "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/tg/0123456789abcdef",
    "arn:aws:elasticloadbalancing:us-west-2:123456789012:targetgroup/tg/0123456789abcdef",
    "arn:aws:ecs:us-east-2:123456789012:cluster/appCluster",
    "arn:",
];

/// Paths of the valid example, for mutating it field by field.
const PATHS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "metadata.name",
    "spec",
    "spec.region",
    "spec.cluster",
    "spec.service",
    "spec.tasks",
    "spec.tasks.min",
    "spec.tasks.max",
    "spec.tasks.count",
    "spec.targetGroups",
    "spec.targetGroups[0]",
    "spec.targetGroups[0].targetGroup",
    "spec.targetGroups[0].containerPort",
    "spec.targetGroups[0].minHealthy",
    "spec.targetGroups[1]",
    "spec.scaling",
    "spec.scaling.cpu",
    "spec.scaling.cpu.scaleOut",
    "spec.scaling.cpu.scaleOut.threshold",
    "spec.scaling.cpu.scaleOut.period",
    "spec.scaling.cpu.scaleOut.evaluationPeriods",
    "spec.scaling.cpu.scaleOut.step",
    "spec.scaling.cpu.scaleIn.threshold",
    "spec.scaling.cpu.targetCpu",
    "spec.scaling.cpu.maxDataAge",
    "spec.budget",
    "spec.autoScalingGroup",
    "spec.minInstances",
    "spec.maxInstances",
    "spec.tasksPerInstance",
    "spec.instanceResources",
    "spec.zones",
    "spec.zones[0].subnet",
    "spec.zones[1].mode",
    "spec.zones[1].whenInstancesAbove",
    "spec.zones[2]",
];

/// Checks the loader's answer: a valid state, or at least one problem,
/// each in `file` (or `dir`, for a directory's), with what to do, and
/// located at line ≥ 1 and column ≥ 1 unless it is one of the
/// [`WHOLE_FILE`] problems, alone. With the text, the line must be in it.
fn check(
    result: Result<DesiredState, LoadError>,
    file: &Path,
    dir: Option<&Path>,
    text: Option<&str>,
) -> Result<(), TestCaseError> {
    let Err(err) = result else {
        return Ok(());
    };
    prop_assert!(!err.diagnostics.is_empty(), "refused without a problem");
    for d in &err.diagnostics {
        prop_assert!(d.file == file || Some(d.file.as_path()) == dir, "{d}: not in {}", file.display());
        prop_assert!(d.help.as_ref().is_some_and(|h| !h.is_empty()), "{d}: no help");
        match (d.line, d.column) {
            (Some(line), Some(column)) => {
                prop_assert!(line >= 1 && column >= 1, "{d}");
                if let Some(text) = text {
                    prop_assert!(line <= text.lines().count() + 1, "{d}: past the end of the text");
                }
            }
            _ => {
                prop_assert!(WHOLE_FILE.iter().any(|m| d.message.starts_with(m)), "not located: {d}");
                prop_assert_eq!(err.diagnostics.len(), 1, "{}", err);
            }
        }
    }
    Ok(())
}

fn check_str(text: &str) -> Result<(), TestCaseError> {
    check(load_str("t.yaml", text, REGION), Path::new("t.yaml"), None, Some(text))
}

fn scalar() -> impl Strategy<Value = Yaml> {
    prop_oneof![
        Just(Yaml::Null),
        any::<bool>().prop_map(Yaml::Bool),
        (-3i64..20).prop_map(|n| Yaml::Number(n.into())),
        any::<i64>().prop_map(|n| Yaml::Number(n.into())),
        any::<u64>().prop_map(|n| Yaml::Number(n.into())),
        any::<f64>().prop_map(|f| Yaml::Number(f.into())),
        prop::sample::select(WORDS).prop_map(|w| Yaml::String(w.into())),
        "[a-zA-Z0-9 %:./_-]{0,12}".prop_map(Yaml::String),
        any::<String>().prop_map(Yaml::String),
    ]
}

/// Any YAML value, mappings keyed mostly by the format's keys.
fn value() -> impl Strategy<Value = Yaml> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Yaml::Sequence),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|entries| {
                Yaml::Mapping(entries.into_iter().map(|(k, v)| (Yaml::String(k.into()), v)).collect())
            }),
        ]
    })
}

/// A document with a header that is right, wrong or absent, and any
/// metadata and spec.
fn document() -> impl Strategy<Value = Yaml> {
    let header = |choices: &'static [&'static str]| prop::option::of(prop::sample::select(choices));
    (
        header(&["ballast.dev/v1alpha1", "v1"]),
        header(&["Service", "Capacity", "Pod"]),
        prop::option::of(value()),
        prop::option::of(value()),
    )
        .prop_map(|(api_version, kind, metadata, spec)| {
            let mut m = serde_yaml::Mapping::new();
            for (key, v) in [
                ("apiVersion", api_version.map(|s| Yaml::String(s.into()))),
                ("kind", kind.map(|s| Yaml::String(s.into()))),
                ("metadata", metadata),
                ("spec", spec),
            ] {
                if let Some(v) = v {
                    m.insert(Yaml::String(key.into()), v);
                }
            }
            Yaml::Mapping(m)
        })
}

/// One change to a document of the valid example.
#[derive(Debug, Clone)]
enum Mutation {
    Set(&'static str, Yaml),
    Remove(&'static str),
    Rename(&'static str, &'static str),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let path = || prop::sample::select(PATHS);
    prop_oneof![
        (path(), value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        path().prop_map(Mutation::Remove),
        (path(), prop::sample::select(KEYS)).prop_map(|(p, k)| Mutation::Rename(p, k)),
    ]
}

/// The node at `path`'s parent and the last segment, if the document
/// still has that shape.
fn parent_mut<'a>(doc: &'a mut Yaml, path: &'static str) -> Option<(&'a mut Yaml, &'static str)> {
    let (init, last) = path.rsplit_once('.').map_or(("", path), |(i, l)| (i, l));
    let mut node = doc;
    for part in init.split('.').filter(|p| !p.is_empty()) {
        let (key, index) = split(part);
        node = node.get_mut(key)?;
        if let Some(i) = index {
            node = node.get_mut(i)?;
        }
    }
    Some((node, last))
}

fn split(part: &str) -> (&str, Option<usize>) {
    match part.split_once('[') {
        Some((k, i)) => (k, i.trim_end_matches(']').parse().ok()),
        None => (part, None),
    }
}

fn apply(doc: &mut Yaml, m: &Mutation) {
    let path = match m {
        Mutation::Set(p, _) | Mutation::Remove(p) | Mutation::Rename(p, _) => *p,
    };
    let Some((parent, last)) = parent_mut(doc, path) else {
        return;
    };
    let (key, index) = split(last);
    let Some(map) = parent.as_mapping_mut() else {
        return;
    };
    match (m, index) {
        (Mutation::Set(_, v), None) => {
            map.insert(Yaml::String(key.into()), v.clone());
        }
        (Mutation::Set(_, v), Some(i)) => {
            if let Some(Yaml::Sequence(items)) = map.get_mut(key) {
                items.insert(i.min(items.len()), v.clone());
            }
        }
        (Mutation::Remove(_), None) => {
            map.remove(key);
        }
        (Mutation::Remove(_), Some(i)) => {
            if let Some(Yaml::Sequence(items)) = map.get_mut(key)
                && i < items.len()
            {
                items.remove(i);
            }
        }
        (Mutation::Rename(_, to), _) => {
            if let Some(v) = map.remove(key) {
                map.insert(Yaml::String((*to).into()), v);
            }
        }
    }
}

/// A change to the text itself: at a character index, cut some
/// characters and put others in.
fn edit(text: &str, at: usize, cut: usize, insert: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let at = at % (chars.len() + 1);
    let end = (at + cut).min(chars.len());
    chars[..at].iter().chain(insert.chars().collect::<Vec<_>>().iter()).chain(&chars[end..]).collect()
}

// 256 cases each by default; `PROPTEST_CASES=20000` searches harder.
proptest! {
    #[test]
    fn arbitrary_bytes_in_a_file(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.yaml");
        std::fs::write(&file, &bytes).unwrap();
        let text = std::str::from_utf8(&bytes).ok();
        check(load_dir(dir.path(), REGION), &file, Some(dir.path()), text)?;
    }

    #[test]
    fn arbitrary_text(text in any::<String>()) {
        check_str(&text)?;
    }

    /// Text made of YAML's own punctuation, where parsers' corners are.
    #[test]
    fn yaml_punctuation(parts in prop::collection::vec(prop::sample::select(&[
        "\n", "  ", "- ", ": ", "---\n", "...\n", "[", "]", "{", "}", ",", "&a ", "*a", "<<: ", "!!str ", "? ",
        "|\n", ">-\n", "#", "'", "\"", "\t", "\u{feff}", "\r\n", "kind: Service\n", "apiVersion: ballast.dev/v1alpha1\n",
        "spec:\n", "metadata:\n", "  name: a\n", "x", "1", "~",
    ][..]), 0..40)) {
        check_str(&parts.concat())?;
    }

    #[test]
    fn generated_documents(docs in prop::collection::vec(document(), 1..4)) {
        let text = docs.iter().map(|d| serde_yaml::to_string(d).unwrap()).collect::<Vec<_>>().join("---\n");
        check_str(&text)?;
    }

    /// The valid example with fields set to other values, removed or
    /// renamed: the mistakes people make.
    #[test]
    fn the_example_with_fields_mutated(
        service_changes in prop::collection::vec(mutation(), 0..4),
        capacity_changes in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut service: Yaml = serde_yaml::from_str(SERVICE).unwrap();
        let mut capacity: Yaml = serde_yaml::from_str(CAPACITY).unwrap();
        service_changes.iter().for_each(|m| apply(&mut service, m));
        capacity_changes.iter().for_each(|m| apply(&mut capacity, m));
        let text = format!("{}---\n{}", serde_yaml::to_string(&service).unwrap(), serde_yaml::to_string(&capacity).unwrap());
        check_str(&text)?;
    }

    /// The valid example's text cut and spliced anywhere.
    #[test]
    fn the_example_with_text_edited(
        edits in prop::collection::vec((any::<usize>(), 0usize..8, "[ -~\n\t]{0,6}"), 1..4),
    ) {
        let mut text = both();
        for (at, cut, insert) in &edits {
            text = edit(&text, *at, *cut, insert);
        }
        check_str(&text)?;
    }
}

#[test]
fn the_unmutated_example_is_valid() {
    // The mutations start from a valid state, so what they find is theirs.
    let service: Yaml = serde_yaml::from_str(SERVICE).unwrap();
    let capacity: Yaml = serde_yaml::from_str(CAPACITY).unwrap();
    let text =
        format!("{}---\n{}", serde_yaml::to_string(&service).unwrap(), serde_yaml::to_string(&capacity).unwrap());
    load_str("t.yaml", &text, REGION).unwrap_or_else(|e| panic!("{e}"));
}

/// Corners the generators rarely reach: nesting past serde_yaml's
/// recursion limit, aliases that multiply, directives, tags and document
/// end markers.
#[test]
fn yaml_corners_are_answered() {
    let header = "apiVersion: ballast.dev/v1alpha1\nkind: Service\nmetadata: {name: a}\n";
    let aliases = (b'b'..=b'h').fold("a: &a [x, x, x, x, x, x, x, x, x]\n".to_string(), |text, c| {
        let (prev, this) = ((c - 1) as char, c as char);
        text + &format!("{this}: &{this} [{}]\n", vec![format!("*{prev}"); 9].join(", "))
    });
    let cases = [
        format!("{header}spec: {}{}\n", "[".repeat(300), "]".repeat(300)),
        format!("{header}spec: {}1{}\n", "{a: ".repeat(300), "}".repeat(300)),
        aliases.clone(),
        format!("{header}spec:\n  x:\n    {}", aliases.replace('\n', "\n    ")),
        "--- !!map\n".into(),
        "%YAML 1.2\n---\nkind: Service\n".into(),
        "kind: Service\n...\n---\nkind: Capacity\n".into(),
        "? [a]\n: b\n".into(),
        "kind: !!binary aGVsbG8=\n".into(),
        format!("{header}spec: !Tag {{a: 1}}\n"),
    ];
    for text in cases {
        check_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }
}
