//! The status page at `/`: what `/status` carries, for a person. One
//! server-rendered HTML document with its CSS and SVG charts inline, no
//! script, refreshing itself; every text from the status or the desired
//! state goes through [`Esc`], and the response's Content-Security-Policy
//! forbids scripts in case something slipped through.

use std::fmt::{self, Write as _};
use std::time::{Duration, SystemTime};

use serde_json::Value;
use serde_json::value::RawValue;

use super::chart;
use crate::controller::status::{ResourceStatus, Status};
use crate::plan::ResourceKey;

/// Scripts, frames, fonts, images and connections: none. Styles: only
/// the inline sheet.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// How often the page reloads itself: the loop's interval, within bounds
/// a person finds neither frantic nor stale.
pub(super) fn refresh(interval: Duration) -> Duration {
    interval.clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// What the page needs besides the status.
pub(super) struct View {
    /// When the page is rendered, for "ago".
    pub now: SystemTime,
    /// See [`refresh`].
    pub refresh: Duration,
    /// Why the loop counts as stuck, if it does (as /livez says).
    pub stuck: Option<String>,
}

/// Text made safe for HTML content and attribute values.
pub(super) struct Esc<'a>(pub &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(i) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..i])?;
            f.write_str(match rest.as_bytes()[i] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[i + 1..];
        }
        f.write_str(rest)
    }
}

const STYLE: &str = r#"
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; padding: 0 1rem 2rem; max-width: 72rem; color: #1f2328; }
h1 { font-size: 1.4rem; margin: 1rem 0 0; } h2 { font-size: 1.15rem; margin-top: 1.6rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin: 0 0 .4rem; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; margin: .3rem 0; } td, th { text-align: left; vertical-align: top; padding: .15rem .6rem .15rem 0; }
th { font-weight: 600; color: #57606a; } .kv th { width: 11rem; }
code, pre, .mono { font-family: ui-monospace, monospace; font-size: 12.5px; } pre { white-space: pre-wrap; margin: 0; }
td.mono { overflow-wrap: break-word; } .compare td { white-space: pre-line; }
.muted { color: #57606a; } .ok { color: #1a7f37; } .warn { color: #9a6700; } .bad { color: #cf222e; }
.badge { display: inline-block; border-radius: 1rem; padding: 0 .5rem; margin-right: .3rem; border: 1px solid currentColor; font-size: 12px; }
.banner { padding: .5rem .8rem; border-radius: .4rem; margin: .6rem 0; } .banner.bad { background: #ffebe9; } .banner.warn { background: #fff8c5; }
.resource { border: 1px solid #d0d7de; border-radius: .5rem; padding: .7rem .9rem; margin: .8rem 0; overflow-x: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(22rem, 1fr)); gap: .5rem 1.5rem; }
.chart { width: 100%; height: auto; } .chart .grid { stroke: #d0d7de; stroke-width: 1; } .chart .axis { font-size: 11px; fill: #57606a; }
.chart .line { fill: none; stroke-width: 2; } .chart circle.line { stroke-width: 0; }
.running { stroke: #0969da; fill: #0969da; } .desired { stroke: #8250df; fill: #8250df; stroke-dasharray: 6 3; }
.target { stroke: #1a7f37; fill: #1a7f37; stroke-dasharray: 2 3; } .cpu { stroke: #bc4c00; fill: #bc4c00; }
.high { stroke: #cf222e; fill: #cf222e; stroke-dasharray: 6 3; } .low { stroke: #0550ae; fill: #0550ae; stroke-dasharray: 6 3; }
.legend { margin: 0 0 .5rem; font-size: 12px; } .key::before { content: ""; display: inline-block; width: 1.2rem; margin-right: .3rem; vertical-align: middle; border-top: 3px solid; border-color: inherit; }
.key { border-color: currentColor; } .key.running { color: #0969da; } .key.desired { color: #8250df; } .key.target { color: #1a7f37; }
.key.cpu { color: #bc4c00; } .key.high { color: #cf222e; } .key.low { color: #0550ae; }
"#;

/// The whole page.
pub(super) fn render(st: &Status, view: &View) -> String {
    let mut out = String::with_capacity(32 * 1024);
    let problems = problems(st, view);
    let _ = write!(
        out,
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><meta http-equiv="refresh" content="{}"><title>{}ballast</title><style>{STYLE}</style></head><body>"#,
        view.refresh.as_secs(),
        if problems.is_empty() { String::new() } else { format!("({}) ", problems.len()) },
    );
    let _ = write!(
        out,
        r#"<h1>ballast</h1><p class="muted">For people; machines read <a href="/status">/status</a> (JSON) and <a href="/metrics">/metrics</a>. Rendered {}, refreshes every {}s.</p>"#,
        time(view.now),
        view.refresh.as_secs()
    );
    for (class, text) in &problems {
        let _ = write!(out, r#"<div class="banner {class}">{}</div>"#, Esc(text));
    }
    loop_health(&mut out, st, view);
    config(&mut out, st);
    resources(&mut out, st, view);
    out.push_str("</body></html>\n");
    out
}

/// What a person must see first: a stuck loop, an unreachable cloud, an
/// invalid config, resources out of sync.
fn problems(st: &Status, view: &View) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(reason) = &view.stuck {
        out.push(("bad", format!("The loop is stuck: {reason}.")));
    }
    if !st.cloud.reachable && st.passes > 0 {
        out.push((
            "bad",
            format!(
                "The cloud was unreachable for the last {} passes: {}",
                st.cloud.consecutive_failures,
                st.cloud.last_error.as_deref().unwrap_or("no error recorded")
            ),
        ));
    }
    if !st.config.valid {
        out.push((
            "bad",
            "The desired state on disk is invalid (the problems are listed below); the last valid version stays in force."
                .into(),
        ));
    }
    let unsynced = st.resources.iter().filter(|r| !synced(r)).count();
    if unsynced > 0 {
        out.push(("warn", format!("{unsynced} of {} resources are not synced.", st.resources.len())));
    }
    out
}

fn synced(r: &ResourceStatus) -> bool {
    r.conditions.iter().any(|c| c.kind == "Synced" && c.status == "True")
}

fn loop_health(out: &mut String, st: &Status, view: &View) {
    let p = &st.last_pass;
    out.push_str(r#"<section id="loop"><h2>Loop</h2><table class="kv">"#);
    row(out, "started", &when(st.started_at, view.now));
    let l = &st.leadership;
    if let Some(lease) = &l.lease {
        let holder = l.holder.as_deref().unwrap_or("nobody");
        let until = when(l.expires_at, view.now);
        row(out, "role", &format!("{} on lease {lease}, held by {holder} until {until}", l.role));
    }
    row(out, "passes", &st.passes.to_string());
    let result_class = match p.result.as_str() {
        "success" => "ok",
        "" => "muted",
        "unreachable" => "bad",
        _ => "warn",
    };
    let result = if p.result.is_empty() { "none yet" } else { &p.result };
    let _ = write!(
        out,
        r#"<tr><th>last pass</th><td><span class="{result_class}">{}</span>{}, finished {}: {} changes planned, {} applied, {} unread inputs</td></tr>"#,
        Esc(result),
        if p.dry_run { " (dry-run)" } else { "" },
        Esc(&when(p.finished_at, view.now)),
        p.changes_planned,
        p.changes_applied,
        p.unread_inputs,
    );
    row(out, "last complete pass", &when(st.last_success_at, view.now));
    let cloud = if st.passes == 0 {
        r#"<span class="muted">not tried yet</span>"#.to_string()
    } else if st.cloud.reachable {
        r#"<span class="ok">reachable</span>"#.to_string()
    } else {
        format!(
            r#"<span class="bad">unreachable</span> for {} passes: {}"#,
            st.cloud.consecutive_failures,
            Esc(st.cloud.last_error.as_deref().unwrap_or(""))
        )
    };
    let _ = write!(out, "<tr><th>cloud</th><td>{cloud}</td></tr>");
    out.push_str("</table></section>");
}

fn config(out: &mut String, st: &Status) {
    let c = &st.config;
    out.push_str(r#"<section id="config"><h2>Desired state</h2><table class="kv">"#);
    let _ = write!(out, r#"<tr><th>directory</th><td class="mono">{}</td></tr>"#, Esc(&c.directory));
    let _ = write!(
        out,
        "<tr><th>on disk</th><td>{}</td></tr>",
        if c.valid { r#"<span class="ok">valid</span>"# } else { r#"<span class="bad">invalid</span>"# }
    );
    row(
        out,
        "in force",
        &format!("services: {}, capacities: {}, loaded {}", c.services, c.capacities, time_opt(c.loaded_at)),
    );
    out.push_str("</table>");
    if !c.errors.is_empty() {
        out.push_str(r#"<ul id="config-errors">"#);
        for e in &c.errors {
            let _ = write!(out, r#"<li><pre class="bad">{}</pre></li>"#, Esc(e));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

fn resources(out: &mut String, st: &Status, view: &View) {
    out.push_str(r#"<section id="resources"><h2>Resources</h2>"#);
    if st.resources.is_empty() {
        out.push_str(r#"<p class="muted">None yet: resources appear after the first pass that reaches the cloud.</p>"#);
    } else {
        out.push_str("<table><tr><th>resource</th><th>document</th><th>synced</th><th>held</th></tr>");
        for (i, r) in st.resources.iter().enumerate() {
            let _ = write!(
                out,
                r##"<tr><td class="mono"><a href="#r{i}">{}</a></td><td>{}</td><td>{}</td><td>{}</td></tr>"##,
                Esc(&r.name),
                Esc(&r.document),
                if synced(r) { r#"<span class="ok">yes</span>"# } else { r#"<span class="warn">no</span>"# },
                r.held.len()
            );
        }
        out.push_str("</table>");
    }
    for (i, r) in st.resources.iter().enumerate() {
        resource(out, i, r, view);
    }
    out.push_str("</section>");
}

fn kind(key: &ResourceKey) -> &'static str {
    match key {
        ResourceKey::Service { .. } => "service",
        ResourceKey::TargetGroup { .. } => "target group",
        ResourceKey::Alarm { .. } => "alarm",
        ResourceKey::Group { .. } => "Auto Scaling group",
    }
}

fn resource(out: &mut String, i: usize, r: &ResourceStatus, view: &View) {
    let _ = write!(
        out,
        r#"<article class="resource" id="r{i}"><h3>{}</h3><p class="muted">{} in {}, declared by <b>{}</b>; next check {}</p><p>"#,
        Esc(&r.name),
        kind(&r.resource),
        Esc(region(&r.resource)),
        Esc(&r.document),
        Esc(&when(r.next_check_at, view.now)),
    );
    for c in &r.conditions {
        let class = match (c.kind, c.status) {
            ("Synced", "True") => "ok",
            ("Synced", _) => "warn",
            _ => "bad",
        };
        let _ = write!(
            out,
            r#"<span class="badge {class}" title="{}">{}={}</span>"#,
            Esc(&c.message),
            Esc(c.kind),
            Esc(c.status)
        );
    }
    if let Some(c) = r.conditions.iter().find(|c| c.kind == "Synced") {
        let _ = write!(out, "{}: {}", Esc(&c.reason), Esc(&c.message));
    }
    out.push_str("</p>");
    if let Some(d) = r.decision.as_deref().and_then(parse) {
        let reason = d.get("reason").and_then(Value::as_str).map(|r| format!("{r}: ")).unwrap_or_default();
        let message = d.get("message").and_then(Value::as_str).unwrap_or("");
        let _ = write!(out, "<p><b>Decision</b>: {}{}</p>", Esc(&reason), Esc(message));
    }
    if matches!(r.resource, ResourceKey::Service { .. }) {
        let samples: Vec<_> = r.samples.iter().copied().collect();
        let _ = write!(
            out,
            r#"<div class="charts"><div>{}</div><div>{}</div></div>"#,
            chart::tasks(&samples),
            chart::cpu(&samples)
        );
    }
    compare(out, &r.desired, &r.observed);
    list(out, "Held", r.held.iter().map(|h| format!("{}: {}", h.kind().as_str(), h.message())));
    list(out, "Left alone", r.notices.iter().cloned());
    if let Some(e) = &r.last_error {
        let _ = write!(
            out,
            r#"<p class="bad"><b>Last error</b> ({}): {}</p>"#,
            Esc(&when(r.last_error_at, view.now)),
            Esc(e)
        );
    }
    if !r.last_changes.is_empty() {
        out.push_str("<table><tr><th>when</th><th>change</th><th>reason</th><th>result</th></tr>");
        for c in r.last_changes.iter().rev() {
            let class = if c.result.starts_with("failed") { "bad" } else { "" };
            let _ = write!(
                out,
                r#"<tr><td>{}</td><td class="mono">{}</td><td>{}</td><td class="{class}">{}</td></tr>"#,
                Esc(&when(Some(c.at), view.now)),
                Esc(&c.change),
                Esc(&c.reason),
                Esc(&c.result)
            );
        }
        out.push_str("</table>");
    } else {
        out.push_str(r#"<p class="muted">No changes made since the daemon started.</p>"#);
    }
    out.push_str("</article>");
}

fn region(key: &ResourceKey) -> &str {
    match key {
        ResourceKey::Service { region, .. }
        | ResourceKey::TargetGroup { region, .. }
        | ResourceKey::Alarm { region, .. }
        | ResourceKey::Group { region, .. } => region,
    }
}

fn parse(raw: &RawValue) -> Option<Value> {
    serde_json::from_str(raw.get()).ok()
}

/// Desired and observed side by side, one row per field of either.
fn compare(out: &mut String, desired: &RawValue, observed: &RawValue) {
    let (desired, mut observed) = (parse(desired).unwrap_or(Value::Null), parse(observed).unwrap_or(Value::Null));
    // An alarm is observed as its definition and its state: line the
    // definition's fields up with the desired ones.
    if let Some(Value::Object(mut fields)) = observed.get("definition").cloned() {
        if let Some(state) = observed.get("state") {
            fields.insert("state".into(), state.clone());
        }
        observed = Value::Object(fields);
    }
    let mut fields: Vec<&String> = desired.as_object().into_iter().flat_map(|o| o.keys()).collect();
    for k in observed.as_object().into_iter().flat_map(|o| o.keys()) {
        if !fields.contains(&k) {
            fields.push(k);
        }
    }
    out.push_str(r#"<table class="compare"><tr><th>field</th><th>desired</th><th>observed</th></tr>"#);
    if observed.is_null() {
        out.push_str(r#"<tr><td colspan="3" class="muted">not observed this pass</td></tr>"#);
    }
    for f in fields {
        let _ = write!(
            out,
            r#"<tr><th class="mono">{}</th><td class="mono">{}</td><td class="mono">{}</td></tr>"#,
            Esc(f),
            Esc(&value(desired.get(f))),
            Esc(&value(observed.get(f)))
        );
    }
    out.push_str("</table>");
}

/// A field's value as a person reads it: strings unquoted, an object as
/// `key: value` pairs, a list one item a line.
fn value(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "—".into(),
        Some(Value::Array(a)) if a.is_empty() => "none".into(),
        Some(Value::Array(a)) => a.iter().map(inline).collect::<Vec<_>>().join("\n"),
        Some(v) => inline(v),
    }
}

fn inline(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Object(o) => o.iter().map(|(k, v)| format!("{k}: {}", inline(v))).collect::<Vec<_>>().join(", "),
        Value::Array(a) => format!("[{}]", a.iter().map(inline).collect::<Vec<_>>().join(", ")),
        v => v.to_string(),
    }
}

fn list(out: &mut String, title: &str, items: impl Iterator<Item = String>) {
    let items: Vec<String> = items.collect();
    if items.is_empty() {
        return;
    }
    let _ = write!(out, "<p><b>{}</b></p><ul>", Esc(title));
    for i in items {
        let _ = write!(out, "<li>{}</li>", Esc(&i));
    }
    out.push_str("</ul>");
}

fn row(out: &mut String, name: &str, text: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{}</td></tr>", Esc(name), Esc(text));
}

fn time(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn time_opt(t: Option<SystemTime>) -> String {
    t.map_or_else(|| "never".into(), time)
}

/// `2025-01-01T10:00:00Z (12s ago)`, `(in 3s)` for what is due, `never`.
fn when(t: Option<SystemTime>, now: SystemTime) -> String {
    let Some(t) = t else { return "never".into() };
    match now.duration_since(t) {
        Ok(ago) => format!("{} ({} ago)", time(t), chart::span(ago)),
        Err(e) => format!("{} (in {})", time(t), chart::span(e.duration())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::status::{ChangeRecord, Condition, Sample};

    fn view() -> View {
        View {
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_100),
            refresh: Duration::from_secs(15),
            stuck: None,
        }
    }

    fn raw(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    /// A status with one service whose every text field tries to inject.
    fn hostile() -> Status {
        let mut st = Status::default();
        st.passes = 1;
        st.cloud.reachable = true;
        st.config.valid = true;
        let key = ResourceKey::Service {
            region: "us-east-2".into(),
            cluster: "c<script>alert(1)</script>".into(),
            service: "s\"onmouseover=\"x".into(),
        };
        let r = st.resource_mut(&key, "doc</title><script>");
        r.desired = raw(serde_json::json!({ "taskDefinition": "<img src=x onerror=alert(2)>" }));
        r.observed = raw(serde_json::json!({
            "taskDefinition": "a&b",
            "targets": [{ "target": "i-1:80", "health": "<healthy>" }, { "target": "i-2:80", "health": "initial" }],
        }));
        r.conditions =
            vec![Condition { kind: "Synced", status: "False", reason: "Held".into(), message: "'quoted' <b>".into() }];
        r.push_change(ChangeRecord {
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            change: "set <desired>".into(),
            reason: "because <script>".into(),
            result: "applied".into(),
        });
        st
    }

    #[test]
    fn every_text_from_the_status_is_escaped() {
        let html = render(&hostile(), &view());
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(!html.contains("<desired>"), "{html}");
        assert!(!html.contains("\"onmouseover"), "{html}");
        assert!(html.contains("c&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
        assert!(html.contains("a&amp;b"));
        assert!(html.contains("health: &lt;healthy&gt;, target: i-1:80\nhealth: initial, target: i-2:80"), "{html}");
        assert!(html.contains("&#39;quoted&#39; &lt;b&gt;"));
    }

    #[test]
    fn a_replica_on_a_lease_shows_its_role_and_the_holder() {
        let mut st = hostile();
        st.leadership.role = "standby";
        st.leadership.lease = Some("ballast-lease/ballast".into());
        st.leadership.holder = Some("<other>".into());
        let html = render(&st, &view());
        assert!(html.contains("standby on lease ballast-lease/ballast, held by &lt;other&gt; until never"), "{html}");
        assert!(!render(&hostile(), &view()).contains("<th>role</th>"), "no role row without a lease");
    }

    #[test]
    fn esc_replaces_the_five_characters_and_nothing_else() {
        assert_eq!(Esc(r#"a<b>&"c'é"#).to_string(), "a&lt;b&gt;&amp;&quot;c&#39;é");
        assert_eq!(Esc("plain").to_string(), "plain");
    }

    #[test]
    fn a_broken_config_shows_its_located_errors() {
        let mut st = hostile();
        st.config.valid = false;
        st.config.errors = vec![
            "error: /etc/ballast/app.yaml:11:3: unknown field `clustr`, expected one of `cluster`, `service`\n  help: did you mean `cluster`?".into(),
        ];
        let html = render(&st, &view());
        let errors = html.split(r#"<ul id="config-errors">"#).nth(1).expect("an error list");
        assert!(errors.contains("/etc/ballast/app.yaml:11:3: unknown field `clustr`"), "{errors}");
        assert!(errors.contains("help: did you mean `cluster`?"), "{errors}");
        assert!(html.contains("The desired state on disk is invalid (the problems are listed below)"), "{html}");
        assert!(html.starts_with("<!DOCTYPE html>") && html.contains("<title>(2) ballast</title>"), "{html}");
    }

    #[test]
    fn a_service_charts_its_ring_buffer() {
        let mut st = hostile();
        let r = &mut st.resources[0];
        for (i, running) in [2, 3, 5].into_iter().enumerate() {
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + 15 * i as u64);
            r.push_sample(Sample {
                running: Some(running),
                cpu: Some(50.0),
                high: Some(66.0),
                ..Sample::unobserved(at)
            });
        }
        let html = render(&st, &view());
        let running = html.split(r#"<polyline class="line running" points=""#).nth(1).expect("a running line");
        let points = running.split('"').next().unwrap().split(' ').count();
        assert_eq!(points, 3, "one point per sample: {running}");
        assert!(html.contains(r#"<polyline class="line high""#));
        assert!(html.contains("over the last 30s"), "{html}");
    }

    #[test]
    fn an_alarm_definition_lines_up_with_the_desired_one() {
        let mut html = String::new();
        let desired = raw(serde_json::json!({ "threshold": 66.0, "period": 60 }));
        let observed = raw(serde_json::json!({ "definition": { "threshold": 70.0, "period": 60 }, "state": "OK" }));
        compare(&mut html, &desired, &observed);
        assert!(
            html.contains(r#"<th class="mono">threshold</th><td class="mono">66.0</td><td class="mono">70.0</td>"#),
            "{html}"
        );
        assert!(
            html.contains(r#"<th class="mono">state</th><td class="mono">—</td><td class="mono">OK</td>"#),
            "{html}"
        );
        assert!(!html.contains("definition"), "{html}");
    }

    #[test]
    fn the_page_refreshes_itself_and_shows_a_stuck_loop() {
        let mut v = view();
        v.stuck = Some("no reconcile pass finished for 50s (interval 15s)".into());
        let html = render(&hostile(), &v);
        assert!(html.contains(r#"<meta http-equiv="refresh" content="15">"#), "{html}");
        assert!(html.contains("The loop is stuck: no reconcile pass finished for 50s"), "{html}");
        assert_eq!(refresh(Duration::from_secs(1)), Duration::from_secs(5));
        assert_eq!(refresh(Duration::from_secs(600)), Duration::from_secs(60));
    }
}
