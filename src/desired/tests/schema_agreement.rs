//! The JSON Schema that editors use and the loader must agree on every
//! value a field may hold: an editor that marks a good file red, or stays
//! quiet about a value the loader refuses, sends people the wrong way.
//!
//! Each field with a pattern, an enum or a range in the schema gets a
//! table of values, each checked by the schema (the field's own schema,
//! evaluated below with the keywords it uses) and by the loader (the
//! value set into a valid document). Values whose verdict depends on
//! another field (`min` above `max`) are not the schema's to judge and
//! are left out; where the two knowingly disagree, the difference is
//! pinned in [`KNOWN_DIFFERENCES`] with its reason.

use super::{CAPACITY, REGION, SERVICE};
use crate::desired::{load_str, schema};
use serde_json::Value;

/// (kind, field path, values the loader and the schema accept, values
/// both refuse). Values are YAML, so `"80"` is a string and `80` a number.
const FIELDS: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "Service",
        "metadata.name",
        &["app", "a", "app-1", "1app", "a23456789012345678901234567890123456789012345678901234567890123"],
        &[
            "App",
            "app_1",
            "-app",
            "app-",
            "ap.p",
            "''",
            "a234567890123456789012345678901234567890123456789012345678901234",
        ],
    ),
    (
        "Service",
        "spec.region",
        &["us-east-2", "us-gov-west-1", "eu-central-1", "ap-southeast-10"],
        &["us-east", "US-east-2", "useast-2", "u-east-2", "us-east-2a", "us--east-2", "us-east-", "12"],
    ),
    ("Service", "spec.tasks.min", &["0", "2", "10"], &["-1", "'2'", "true"]),
    ("Service", "spec.tasks.max", &["2", "10", "1000"], &["0", "-3", "'10'"]),
    ("Service", "spec.targetGroups[0].containerPort", &["1", "80", "65535"], &["0", "65536", "-1", "'80'", "[80]"]),
    ("Service", "spec.targetGroups[0].targetType", &["instance", "ip"], &["Instance", "instances", "IP", "''", "1"]),
    ("Service", "spec.targetGroups[0].ownership", &["shared", "exclusive"], &["Shared", "mine", "''"]),
    ("Service", "spec.targetGroups[0].minHealthy", &["0", "1", "10"], &["-1", "'1'"]),
    ("Service", "spec.targetGroups[0].propagationLag", &["2m", "0s", "90s"], &["120", "later"]),
    ("Service", "spec.scaling.cpu.targetCpu", &["60", "100", "0.5", "99.9"], &["0", "-5", "100.5", "'60'"]),
    ("Service", "spec.scaling.cpu.tolerance", &["0", "0.1", "0.99"], &["1", "-0.1", "1.5"]),
    (
        "Service",
        "spec.scaling.cpu.missingData",
        &["missing", "ignore", "breaching", "notBreaching"],
        &["notbreaching", "not_breaching", "Missing", "''"],
    ),
    (
        "Service",
        "spec.scaling.cpu.stabilizationWindow",
        &["5m", "1h30m", "500ms", "0s", "90s", "10s5ms", "1h2m3s4ms"],
        &["5", "1.5m", "5 m", "m", "1m1h", "5ms5s", "1H", "''", "5min", "-5m"],
    ),
    ("Service", "spec.scaling.cpu.scaleIn.threshold", &["0", "30", "69.5"], &["-1", "100.5", "101", "'30'"]),
    ("Service", "spec.scaling.cpu.scaleOut.period", &["10s", "30s", "1m", "5m", "1h"], &["1", "1.5m", "60"]),
    ("Service", "spec.scaling.cpu.scaleOut.evaluationPeriods", &["1", "5"], &["0", "-2"]),
    ("Service", "spec.scaling.cpu.scaleOut.datapointsToAlarm", &["1"], &["0", "-1"]),
    (
        "Service",
        "spec.scaling.cpu.scaleOut.step",
        &["1", "3", "'50%'", "'1%'", "'100%'", "'200%'"],
        &["0", "-1", "lots", "'-5%'", "'5.5%'", "1.5", "'%'"],
    ),
    ("Service", "spec.scaling.cpu.scaleOut.cooldown", &["1m", "0s", "15s"], &["5", "soon"]),
    ("Service", "spec.budget.maxDeregistrationsPerPass", &["1", "5"], &["0", "-1"]),
    ("Service", "spec.budget.maxCountChangePerPass", &["1", "4"], &["0", "-1"]),
    ("Capacity", "spec.region", &["us-east-2"], &["us-east", "us-east-2a"]),
    ("Capacity", "spec.minInstances", &["0", "1", "10"], &["-1", "'1'"]),
    ("Capacity", "spec.maxInstances", &["3", "10", "100"], &["-1", "'10'"]),
    ("Capacity", "spec.tasksPerInstance", &["1", "4"], &["0", "-1"]),
    ("Capacity", "spec.headroom", &["0", "3"], &["-1"]),
    ("Capacity", "spec.scaleInCooldown", &["5m", "0s", "1h"], &["5", "1.5m", "5 minutes"]),
    ("Capacity", "spec.maxChangePerPass", &["1", "2"], &["0", "-1"]),
    (
        "Capacity",
        "spec.zones[0].subnet",
        &["subnet-0a1b2c3d", "subnet-0a1b2c3d4e5f60009"],
        &[
            "subnet-0A1B2C3D",
            "subnet-0a1b2c3",
            "subnet-0a1b2c3d4",
            "sn-0a1b2c3d",
            "subnet-0a1b2c3g",
            "12345678",
            "'subnet-0a1b2c3d '",
        ],
    ),
    ("Capacity", "spec.zones[0].mode", &["alwaysOn"], &["AlwaysOn", "ondemand", "always", "''", "1"]),
    ("Capacity", "spec.zones[1].whenInstancesAbove", &["0", "2", "9"], &["-1", "'2'"]),
    ("Capacity", "spec.terminationHook.heartbeatTimeout", &["10m", "30s", "2h"], &["600", "1.5m", "ten minutes"]),
    ("Capacity", "spec.terminationHook.defaultResult", &["CONTINUE", "ABANDON"], &["continue", "ABORT", "''", "1"]),
];

/// Where the schema and the loader knowingly disagree: (kind, field,
/// value, the schema's verdict, why). The loader's verdict is the
/// opposite. A row that starts to agree fails the test, so that it is
/// removed here.
const KNOWN_DIFFERENCES: &[(&str, &str, &str, bool, &str)] = &[
    (
        "Capacity",
        "spec.terminationHook.heartbeatTimeout",
        "10s",
        true,
        "the schema's duration pattern has no range; the loader holds it to Auto Scaling's 30s to 2h",
    ),
    ("Service", "spec.cluster", "app cluster", true, "the schema checks ECS names' length, not their characters"),
    (
        "Service",
        "spec.tasks.max",
        "4294967296",
        true,
        "counts have no maximum in the schema; the loader holds them in 32 bits",
    ),
    ("Service", "spec.tasks.max", "10.0", true, "JSON Schema counts 10.0 as an integer; YAML reads it as a float"),
    ("Service", "spec.scaling.cpu.scaleOut.step", "'0%'", true, "the schema's percent pattern allows 0%"),
    (
        "Service",
        "spec.scaling.cpu.scaleOut.step",
        "'5'",
        false,
        "the loader reads a quoted number as a number of tasks",
    ),
    ("Service", "spec.scaling.cpu.scaleOut.cooldown", "' 5m'", false, "the loader trims spaces around a duration"),
    (
        "Service",
        "spec.scaling.cpu.scaleOut.period",
        "45s",
        true,
        "CloudWatch's periods are a rule on the value, not its syntax",
    ),
    ("Service", "spec.scaling.cpu.maxDataAge", "0s", true, "a zero age is a rule on the value, not its syntax"),
];

#[test]
fn the_schema_and_the_loader_accept_and_refuse_the_same_values() {
    let schema = schema::json_schema();
    let mut failures = Vec::new();
    for (kind, path, valid, invalid) in FIELDS {
        let field = field_schema(&schema, kind, path);
        for (values, expected) in [(*valid, true), (*invalid, false)] {
            for value in values {
                let by_schema = schema_accepts(&schema, field, &json(value));
                let by_loader = loader_accepts(kind, path, value);
                if (by_schema, by_loader) != (expected, expected) {
                    failures.push(format!(
                        "{kind} {path}: {value}: expected {}, but the schema {} and the loader {}",
                        verdict(expected),
                        verdict(by_schema),
                        verdict(by_loader)
                    ));
                }
            }
        }
    }
    for (kind, path, value, schema_verdict, why) in KNOWN_DIFFERENCES {
        let field = field_schema(&schema, kind, path);
        let by_schema = schema_accepts(&schema, field, &json(value));
        let by_loader = loader_accepts(kind, path, value);
        if (by_schema, by_loader) != (*schema_verdict, !schema_verdict) {
            failures.push(format!(
                "{kind} {path}: {value} ({why}): the schema now {} and the loader {}",
                verdict(by_schema),
                verdict(by_loader)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table covers every field the schema constrains: a new pattern,
/// enum or range needs rows.
#[test]
fn every_constrained_field_has_rows() {
    let schema = schema::json_schema();
    let mut constrained = Vec::new();
    for kind in schema::KINDS {
        constrained_fields(&schema, document(&schema, kind), kind, "", &mut constrained);
    }
    let covered: Vec<(&str, String)> = FIELDS
        .iter()
        .map(|(k, p, ..)| (*k, p.to_string()))
        .chain(KNOWN_DIFFERENCES.iter().map(|(k, p, ..)| (*k, p.to_string())))
        .map(|(k, p)| (k, p.replace("[0]", "[]").replace("[1]", "[]")))
        .collect();
    // Fields without rows, each for a reason (for both kinds).
    let left_out: &[(&str, &str)] = &[
        ("apiVersion", "the header is checked before the schema's shape: tests in `load`"),
        ("kind", "the header is checked before the schema's shape: tests in `load`"),
        ("metadata.name", "the same pattern in both kinds: Service rows"),
        ("spec.cluster", "the same length in both kinds: a known difference"),
        ("spec.service", "the same length as `spec.cluster`"),
        ("spec.targetGroups[].containerName", "the same length as `spec.cluster`"),
        ("spec.autoScalingGroup", "the same length as `spec.cluster`; the loader checks only that"),
        ("spec.targetGroups[].targetGroup", "a name or an ARN, which the schema does not tell apart"),
        ("spec.tasks.count", "needs a document without `min`, `max` and `scaling`; the range of `min`"),
        ("spec.instanceResources.cpu", "needs a document without `tasksPerInstance`; the range of `tasksPerInstance`"),
        ("spec.instanceResources.memory", "as `cpu`"),
        ("spec.zones", "an empty list: tests in `load`"),
        ("spec.scaling.cpu.scaleOut.threshold", "the range of `scaleIn.threshold`, which must stay below it"),
        ("spec.scaling.cpu.scaleIn.period", "the same field type as `scaleOut`"),
        ("spec.scaling.cpu.scaleIn.evaluationPeriods", "the same field type as `scaleOut`"),
        ("spec.scaling.cpu.scaleIn.datapointsToAlarm", "the same field type as `scaleOut`"),
        ("spec.scaling.cpu.scaleIn.step", "the same field type as `scaleOut`"),
        ("spec.scaling.cpu.scaleIn.cooldown", "the same field type as `scaleOut`"),
    ];
    let missing: Vec<String> = constrained
        .into_iter()
        .filter(|(k, p)| !covered.contains(&(*k, p.clone())) && !left_out.iter().any(|(l, _)| l == p))
        .map(|(k, p)| format!("{k} {p}"))
        .collect();
    assert!(missing.is_empty(), "fields with a pattern, enum or range but no rows: {missing:?}");
}

fn verdict(accepted: bool) -> &'static str {
    if accepted { "accepts it" } else { "refuses it" }
}

/// A YAML value as the JSON an editor's schema check sees.
fn json(yaml: &str) -> Value {
    let v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
    serde_json::to_value(v).unwrap()
}

/// Whether the loader accepts the valid example with `path` set to
/// `value`. A Service is loaded alone; a Capacity with the Service whose
/// cluster it sizes.
fn loader_accepts(kind: &str, path: &str, value: &str) -> bool {
    let mut service: serde_yaml::Value = serde_yaml::from_str(SERVICE).unwrap();
    let mut capacity: serde_yaml::Value = serde_yaml::from_str(CAPACITY).unwrap();
    let target = if kind == "Service" { &mut service } else { &mut capacity };
    set(target, path, serde_yaml::from_str(value).unwrap());
    let mut text = serde_yaml::to_string(&service).unwrap();
    if kind == "Capacity" {
        text = format!("{text}---\n{}", serde_yaml::to_string(&capacity).unwrap());
    }
    load_str("t.yaml", &text, REGION).is_ok()
}

/// Sets the value at `spec.targetGroups[0].x`, making the mappings on the
/// way.
fn set(doc: &mut serde_yaml::Value, path: &str, value: serde_yaml::Value) {
    let mut node = doc;
    for part in path.split('.') {
        let (key, index) = match part.split_once('[') {
            Some((k, i)) => (k, Some(i.trim_end_matches(']').parse::<usize>().unwrap())),
            None => (part, None),
        };
        let map = node.as_mapping_mut().unwrap_or_else(|| panic!("{path}: {part} is not in a mapping"));
        node = map.entry(key.into()).or_insert(serde_yaml::Value::Mapping(Default::default()));
        if let Some(i) = index {
            node = &mut node[i];
        }
    }
    *node = value;
}

/// The schema of one kind's document in the combined schema.
fn document<'a>(schema: &'a Value, kind: &str) -> &'a Value {
    schema["anyOf"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| resolve(schema, b))
        .find(|b| b["properties"]["kind"]["const"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in the schema"))
}

/// The schema of the field at `path` (its property, as written, before
/// any `$ref` is followed).
fn field_schema<'a>(schema: &'a Value, kind: &str, path: &str) -> &'a Value {
    let mut node = document(schema, kind);
    for part in path.split('.') {
        let (key, index) = part.split_once('[').unwrap_or((part, ""));
        node = property(schema, node, key).unwrap_or_else(|| panic!("no {path} in {kind}"));
        if !index.is_empty() {
            node = branches(schema, node).find_map(|n| n.get("items")).unwrap_or_else(|| panic!("{path}: no list"));
        }
    }
    node
}

/// The node and, through `$ref`s, the branches of its `anyOf`/`oneOf`
/// (an optional field is `anyOf: [T, null]`).
fn branches<'a>(schema: &'a Value, node: &'a Value) -> impl Iterator<Item = &'a Value> {
    let node = resolve(schema, node);
    let nested: Vec<&Value> = ["anyOf", "oneOf"]
        .iter()
        .filter_map(|k| node.get(*k).and_then(Value::as_array))
        .flatten()
        .map(|b| resolve(schema, b))
        .collect();
    std::iter::once(node).chain(nested)
}

fn property<'a>(schema: &'a Value, node: &'a Value, key: &str) -> Option<&'a Value> {
    branches(schema, node).find_map(|n| n.get("properties").and_then(|p| p.get(key)))
}

fn resolve<'a>(schema: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => schema.pointer(r.trim_start_matches('#')).unwrap_or_else(|| panic!("{r}")),
        None => node,
    }
}

/// Every field under `node` whose schema has a pattern, an enum (or a
/// `const` choice) or a range, as (kind, path with `[]` for lists).
fn constrained_fields(
    schema: &Value,
    node: &Value,
    kind: &'static str,
    path: &str,
    out: &mut Vec<(&'static str, String)>,
) {
    for n in branches(schema, node).collect::<Vec<_>>() {
        for (key, child) in n.get("properties").and_then(Value::as_object).into_iter().flatten() {
            let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
            let leaves: Vec<&Value> = branches(schema, child).collect();
            let constrained = leaves.iter().any(|l| {
                [
                    "pattern",
                    "minimum",
                    "maximum",
                    "exclusiveMinimum",
                    "exclusiveMaximum",
                    "minLength",
                    "const",
                    "minItems",
                ]
                .iter()
                .any(|k| l.get(*k).is_some())
                    || l.get("oneOf")
                        .and_then(Value::as_array)
                        .is_some_and(|b| b.iter().any(|x| x.get("const").is_some()))
            });
            if constrained && !out.contains(&(kind, child_path.clone())) {
                out.push((kind, child_path.clone()));
            }
            constrained_fields(schema, child, kind, &child_path, out);
            if let Some(items) = leaves.iter().find_map(|l| l.get("items")) {
                constrained_fields(schema, items, kind, &format!("{child_path}[]"), out);
            }
        }
    }
}

/// The schema's verdict on `v`, as a JSON Schema validator gives it, for
/// the keywords the field schemas use. Any other keyword fails the test
/// rather than being ignored.
fn schema_accepts(schema: &Value, node: &Value, v: &Value) -> bool {
    let Some(keywords) = node.as_object() else {
        return node.as_bool().unwrap_or_else(|| panic!("not a schema: {node}"));
    };
    let number = |k: &Value| k.as_f64().unwrap_or_else(|| panic!("not a number: {k}"));
    let length = |k: &Value| k.as_u64().unwrap_or_else(|| panic!("not a length: {k}")) as usize;
    keywords.iter().all(|(keyword, k)| match keyword.as_str() {
        "$ref" => schema_accepts(schema, resolve(schema, node), v),
        "anyOf" => k.as_array().unwrap().iter().any(|b| schema_accepts(schema, b, v)),
        "oneOf" => k.as_array().unwrap().iter().filter(|b| schema_accepts(schema, b, v)).count() == 1,
        "type" => match k {
            Value::String(t) => has_type(t, v),
            Value::Array(ts) => ts.iter().any(|t| has_type(t.as_str().unwrap(), v)),
            _ => panic!("type {k}"),
        },
        "const" => v == k,
        "enum" => k.as_array().unwrap().contains(v),
        // JSON Schema patterns are ECMA-262 and unanchored; these are
        // anchored and use no syntax where regex-lite differs.
        "pattern" => v.as_str().is_none_or(|s| regex_lite::Regex::new(k.as_str().unwrap()).unwrap().is_match(s)),
        "minLength" => v.as_str().is_none_or(|s| s.chars().count() >= length(k)),
        "maxLength" => v.as_str().is_none_or(|s| s.chars().count() <= length(k)),
        "minimum" => v.as_f64().is_none_or(|x| x >= number(k)),
        "maximum" => v.as_f64().is_none_or(|x| x <= number(k)),
        "exclusiveMinimum" => v.as_f64().is_none_or(|x| x > number(k)),
        "exclusiveMaximum" => v.as_f64().is_none_or(|x| x < number(k)),
        // Annotations; draft 2020-12 validators do not assert `format`
        // (here `int64`) by default.
        "description" | "default" | "examples" | "title" | "format" => true,
        other => panic!("the agreement test does not evaluate `{other}` (in {node}): teach it"),
    })
}

fn has_type(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        // JSON Schema: any number without a fractional part.
        "integer" => v.as_f64().is_some_and(|x| x.fract() == 0.0),
        "object" => v.is_object(),
        "array" => v.is_array(),
        _ => panic!("type {t}"),
    }
}
