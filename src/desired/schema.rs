//! The JSON Schema of a desired-state document, for editors.
//!
//! Generated with `schemars` from the raw serde types in [`super::raw`], so
//! the schema and the loader cannot drift apart: the field names, the doc
//! comments (descriptions), required fields, ranges, enums and defaults
//! all come from one place. The loader also uses it to know which keys
//! exist where, for its "did you mean" on unknown keys.

use super::raw::{RawCapacityDocument, RawServiceDocument};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;
use std::sync::OnceLock;

/// Schema-only: one document of either kind. `untagged` makes it an
/// `anyOf` of the two document schemas, told apart by their `kind` const.
#[derive(JsonSchema)]
#[serde(untagged)]
#[schemars(
    title = "ballast desired-state document",
    description = "One YAML document of a ballast desired-state directory: a `Service` or a `Capacity` (apiVersion ballast.dev/v1alpha1)."
)]
#[allow(dead_code, clippy::large_enum_variant)] // never built, only described
enum AnyDocument {
    Service(RawServiceDocument),
    Capacity(RawCapacityDocument),
}

/// The document kinds, as written in `kind:`.
pub const KINDS: [&str; 2] = ["Service", "Capacity"];

fn generate<T: JsonSchema>() -> Value {
    let schema = SchemaSettings::draft2020_12().into_generator().into_root_schema_for::<T>();
    schema.to_value()
}

/// The JSON Schema (draft 2020-12) of one desired-state document of either
/// kind. `ballast schema` prints it; point yaml-language-server at it.
pub fn json_schema() -> Value {
    generate::<AnyDocument>()
}

/// The schema of one kind, cached: the loader consults it for every
/// unknown key.
fn kind_schema(kind: &str) -> Option<&'static Value> {
    static SERVICE: OnceLock<Value> = OnceLock::new();
    static CAPACITY: OnceLock<Value> = OnceLock::new();
    match kind {
        "Service" => Some(SERVICE.get_or_init(generate::<RawServiceDocument>)),
        "Capacity" => Some(CAPACITY.get_or_init(generate::<RawCapacityDocument>)),
        _ => None,
    }
}

/// The keys a mapping at `path` (as in `spec.targetGroups[0]`; `""` for
/// the document root) may have in a document of `kind`, in the
/// schema's order. Empty when the path is not a mapping of the format.
pub fn known_keys(kind: &str, path: &str) -> Vec<String> {
    let Some(root) = kind_schema(kind) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    if let Some(node) = node_at(root, path) {
        collect_keys(root, node, &mut keys);
    }
    keys
}

/// The description of the field at `path` in a document of `kind`, on one
/// line, for help texts.
pub fn describe(kind: &str, path: &str) -> Option<String> {
    let root = kind_schema(kind)?;
    let parent = super::positions::parent_path(path);
    let key = path[parent.len()..].trim_start_matches('.');
    let wrapper = find(root, node_at(root, parent)?, &|n| n.get("properties").and_then(|p| p.get(key)))?;
    let text = wrapper.get("description").or_else(|| resolve(root, wrapper).get("description"))?.as_str()?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Every mapping path of a document of `kind` that has `key`, written
/// with `[]` for list items (`spec.targetGroups[].containerPort`), for
/// telling someone that a key is misplaced rather than unknown.
pub fn paths_with_key(kind: &str, key: &str) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(root) = kind_schema(kind) {
        walk_paths(root, root, "", key, 0, &mut out);
    }
    out
}

fn walk_paths(root: &Value, node: &Value, path: &str, key: &str, depth: usize, out: &mut Vec<String>) {
    // The format is shallow; the bound only guards against a recursive
    // schema someone might add later.
    if depth > 8 {
        return;
    }
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (k, child) in props {
            let child_path = super::positions::join_key(path, k);
            if k == key && !out.contains(&path.to_string()) {
                out.push(path.to_string());
            }
            walk_paths(root, child, &child_path, key, depth + 1, out);
        }
    }
    if let Some(items) = node.get("items") {
        walk_paths(root, items, &format!("{path}[]"), key, depth + 1, out);
    }
    for k in ["anyOf", "oneOf", "allOf"] {
        for branch in node.get(k).and_then(Value::as_array).into_iter().flatten() {
            walk_paths(root, branch, path, key, depth + 1, out);
        }
    }
}

/// The schema of the value at `path` inside `root` (a document schema),
/// through `$ref`s, optional (`anyOf [T, null]`) wrappers and lists.
fn node_at<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    let mut node = root;
    for segment in segments(path) {
        node = match segment {
            Segment::Key(key) => find(root, node, &|n| n.get("properties").and_then(|p| p.get(key))),
            Segment::Index => find(root, node, &|n| n.get("items")),
        }?;
    }
    Some(resolve(root, node))
}

enum Segment<'a> {
    Key(&'a str),
    Index,
}

/// Splits `spec.targetGroups[0].containerPort` into its segments.
fn segments(path: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, indexes) = part.split_once('[').unwrap_or((part, ""));
        if !key.is_empty() {
            out.push(Segment::Key(key));
        }
        for _ in indexes.matches(']') {
            out.push(Segment::Index);
        }
    }
    out
}

/// Follows a local `$ref` (`#/$defs/Name`).
fn resolve<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    match node.get("$ref").and_then(Value::as_str) {
        Some(r) => r.strip_prefix('#').and_then(|pointer| root.pointer(pointer)).unwrap_or(node),
        None => node,
    }
}

/// Applies `pick` to the node and, failing that, to the branches of its
/// `anyOf`/`oneOf`/`allOf` (an optional field is `anyOf: [T, null]`).
fn find<'a>(root: &'a Value, node: &'a Value, pick: &dyn Fn(&'a Value) -> Option<&'a Value>) -> Option<&'a Value> {
    let node = resolve(root, node);
    if let Some(found) = pick(node) {
        return Some(found);
    }
    ["anyOf", "oneOf", "allOf"]
        .iter()
        .filter_map(|k| node.get(*k).and_then(Value::as_array))
        .flatten()
        .find_map(|branch| find(root, branch, pick))
}

fn collect_keys(root: &Value, node: &Value, out: &mut Vec<String>) {
    let node = resolve(root, node);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for key in props.keys() {
            if !out.contains(key) {
                out.push(key.clone());
            }
        }
    }
    for k in ["anyOf", "oneOf", "allOf"] {
        for branch in node.get(k).and_then(Value::as_array).into_iter().flatten() {
            collect_keys(root, branch, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The schema at `path` of the `kind` branch of the combined schema.
    fn at<'a>(schema: &'a Value, kind: &str, path: &str) -> &'a Value {
        let branch = schema["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| resolve(schema, b))
            .find(|b| b["properties"]["kind"]["const"] == kind)
            .unwrap_or_else(|| panic!("no {kind} branch"));
        let mut node = branch;
        for segment in segments(path) {
            node = match segment {
                Segment::Key(key) => find(schema, node, &|n| n.get("properties").and_then(|p| p.get(key))),
                Segment::Index => find(schema, node, &|n| n.get("items")),
            }
            .unwrap_or_else(|| panic!("no {path} in {kind}"));
        }
        node
    }

    #[test]
    fn is_draft_2020_12_with_both_kinds() {
        let s = json_schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        let branches = s["anyOf"].as_array().expect("anyOf of the two kinds");
        let kinds: Vec<_> = branches.iter().map(|b| resolve(&s, b)["properties"]["kind"]["const"].clone()).collect();
        assert_eq!(kinds, ["Service", "Capacity"]);
        for b in branches {
            let doc = resolve(&s, b);
            assert_eq!(doc["properties"]["apiVersion"]["const"], "ballast.dev/v1alpha1");
            assert_eq!(doc["additionalProperties"], false);
            assert_eq!(doc["required"], serde_json::json!(["apiVersion", "kind", "metadata", "spec"]));
        }
    }

    #[test]
    fn carries_descriptions_ranges_enums_and_defaults() {
        let s = json_schema();
        let binding = resolve(&s, at(&s, "Service", "spec.targetGroups[0]"));
        let port = &binding["properties"]["containerPort"];
        assert_eq!((port["minimum"].as_i64(), port["maximum"].as_i64()), (Some(1), Some(65535)));
        assert!(port["description"].as_str().unwrap().contains("container port"), "{port}");
        assert_eq!(binding["properties"]["targetType"]["default"], "instance");
        let target_type = at(&s, "Service", "spec.targetGroups[0].targetType");
        let values: Vec<_> = find(&s, target_type, &|n| n.get("oneOf"))
            .and_then(Value::as_array)
            .expect("enum as oneOf of consts with descriptions")
            .iter()
            .filter(|v| v.get("const").is_some())
            .map(|v| v["const"].clone())
            .collect();
        assert_eq!(values, ["instance", "ip"]);
        let mode = at(&s, "Capacity", "spec.zones[0].mode");
        assert_eq!(mode["default"], "alwaysOn");
        let modes = find(&s, mode, &|n| n.get("oneOf")).unwrap();
        assert_eq!(modes[1]["const"], "onDemand");
        assert!(modes[1]["description"].as_str().unwrap().contains("whenInstancesAbove"));

        let rule = resolve(&s, at(&s, "Service", "spec.scaling.cpu.scaleIn"));
        assert_eq!(rule["properties"]["threshold"]["maximum"].as_f64(), Some(100.0));
        assert_eq!(rule["properties"]["period"]["default"], "1m");
        assert_eq!(at(&s, "Service", "spec.scaling.cpu.tolerance")["exclusiveMaximum"].as_f64(), Some(1.0));
        assert_eq!(rule["required"], serde_json::json!(["threshold"]));

        let zone = resolve(&s, at(&s, "Capacity", "spec.zones[0]"));
        assert_eq!(zone["then"]["required"], serde_json::json!(["whenInstancesAbove"]));
        let tasks = resolve(&s, at(&s, "Service", "spec.tasks"));
        assert_eq!(tasks["oneOf"].as_array().map(Vec::len), Some(2));
    }

    /// What an editor does with the schema: accept a good document and
    /// refuse bad ones. A small structural check (not a full validator):
    /// the kind consts, `required`, and `additionalProperties: false` on
    /// nested objects.
    #[test]
    fn every_nested_object_refuses_unknown_keys() {
        let s = json_schema();
        for (name, def) in s["$defs"].as_object().unwrap() {
            if def.get("properties").is_some() {
                assert_eq!(def["additionalProperties"], false, "$defs/{name}");
            }
        }
    }

    /// An editor must not demand what the loader has a default for: the
    /// `required` lists are exactly the fields without a default.
    #[test]
    fn required_fields_are_exactly_those_without_a_default() {
        let s = json_schema();
        // (kind, path, required keys)
        let cases: &[(&str, &str, &[&str])] = &[
            ("Service", "", &["apiVersion", "kind", "metadata", "spec"]),
            ("Service", "metadata", &["name"]),
            ("Service", "spec", &["cluster", "service", "tasks"]),
            ("Service", "spec.tasks", &[]),
            ("Service", "spec.targetGroups[0]", &["targetGroup", "containerName", "containerPort"]),
            ("Service", "spec.scaling", &["cpu"]),
            ("Service", "spec.scaling.cpu", &["scaleOut", "scaleIn"]),
            ("Service", "spec.scaling.cpu.scaleOut", &["threshold"]),
            ("Service", "spec.budget", &[]),
            ("Service", "spec.takeOver", &[]),
            ("Capacity", "", &["apiVersion", "kind", "metadata", "spec"]),
            ("Capacity", "spec", &["cluster", "autoScalingGroup", "minInstances", "maxInstances", "zones"]),
            ("Capacity", "spec.instanceResources", &["cpu", "memory"]),
            ("Capacity", "spec.zones[0]", &["subnet"]),
            ("Capacity", "spec.takeOver", &[]),
        ];
        for (kind, path, expected) in cases {
            let node = resolve(&s, at(&s, kind, path));
            let node = find(&s, node, &|n| n.get("properties").map(|_| n)).unwrap();
            let mut required: Vec<&str> = node
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| v.as_str().unwrap())
                .collect();
            let mut expected = expected.to_vec();
            required.sort();
            expected.sort();
            assert_eq!(required, expected, "{kind} {path:?}");
        }
    }

    #[test]
    fn known_keys_follow_paths_through_refs_options_and_lists() {
        // (kind, path, some expected keys, a key that must not be there)
        let cases: &[(&str, &str, &[&str], &str)] = &[
            ("Service", "", &["apiVersion", "kind", "metadata", "spec"], "cluster"),
            ("Service", "metadata", &["name"], "spec"),
            ("Service", "spec", &["region", "cluster", "tasks", "targetGroups"], "zones"),
            ("Service", "spec.tasks", &["count", "min", "max"], "region"),
            (
                "Service",
                "spec.targetGroups[3]",
                &["targetGroup", "containerName", "containerPort", "minHealthy"],
                "tasks",
            ),
            ("Service", "spec.scaling.cpu.scaleIn", &["threshold", "period", "step"], "cpu"),
            ("Capacity", "spec", &["autoScalingGroup", "zones", "instanceResources"], "tasks"),
            ("Capacity", "spec.zones[0]", &["subnet", "zone", "mode", "whenInstancesAbove"], "cpu"),
            ("Capacity", "spec.instanceResources", &["cpu", "memory"], "subnet"),
        ];
        for (kind, path, expected, absent) in cases {
            let keys = known_keys(kind, path);
            for k in *expected {
                assert!(keys.iter().any(|x| x == k), "{kind} {path}: {k} not in {keys:?}");
            }
            assert!(!keys.iter().any(|x| x == absent), "{kind} {path}: {absent} in {keys:?}");
        }
        assert!(known_keys("Service", "spec.cluster").is_empty());
        assert!(known_keys("Service", "spec.nothing").is_empty());
        assert!(known_keys("Pod", "").is_empty());
    }

    #[test]
    fn describes_fields_and_finds_where_a_key_belongs() {
        let port = describe("Service", "spec.targetGroups[2].containerPort").unwrap();
        assert!(port.starts_with("The container port"), "{port}");
        assert!(!port.contains('\n'));
        let cooldown = describe("Capacity", "spec.scaleInCooldown").unwrap();
        assert!(cooldown.contains("before instances are removed"), "{cooldown}");
        assert_eq!(describe("Service", "spec.nothing"), None);

        assert_eq!(paths_with_key("Service", "min"), ["spec.tasks"]);
        assert_eq!(paths_with_key("Service", "containerPort"), ["spec.targetGroups[]"]);
        assert_eq!(paths_with_key("Service", "threshold"), ["spec.scaling.cpu.scaleIn", "spec.scaling.cpu.scaleOut"]);
        assert_eq!(paths_with_key("Capacity", "mode"), ["spec.zones[]"]);
        assert!(paths_with_key("Capacity", "nothing").is_empty());
    }
}
