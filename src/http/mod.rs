//! The HTTP server: the status page at `/` (`page.rs`, its charts in
//! `chart.rs`), `/livez`, `/healthz`, `/readyz`, `/metrics` and
//! `/status`, under the [`Limits`] of `server.rs` (timeouts and a
//! connection cap).
//!
//! Liveness is not health: `/livez` fails only when the loop stopped
//! making passes (a restart can help), `/healthz` also when the cloud is
//! unreachable (a restart cannot help, so the container health check must
//! not use it).

pub mod chart;
mod page;
mod server;

pub use server::{HEADER_READ_TIMEOUT, Limits, MAX_CONNECTIONS, REQUEST_TIMEOUT};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::cloud::Clock;
use crate::controller::SharedStatus;
use crate::controller::status::Status;
use crate::metrics::Metrics;

/// Consecutive unreachable passes after which /healthz fails.
pub const UNREACHABLE_PASSES: u32 = 3;

/// Intervals without a finished pass after which the loop counts as stuck
/// (/livez and /healthz fail).
pub const STUCK_INTERVALS: u32 = 3;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// What the loop reports, for every endpoint but /metrics.
    pub status: SharedStatus,
    /// Rendered by /metrics.
    pub metrics: Arc<Metrics>,
    /// "Now", to tell how long ago the last pass finished.
    pub clock: Arc<dyn Clock>,
    /// The loop's interval: no pass for [`STUCK_INTERVALS`] of them means
    /// it is stuck.
    pub interval: Duration,
}

/// The routes alone; [`serve_with`] puts them under the [`Limits`]. A
/// `GET` route answers `HEAD` too, and other methods get 405 with `Allow`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/livez", get(livez))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

/// Serve with the default [`Limits`] until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(listener, state, Limits::default(), shutdown).await
}

/// Serve with the given limits until `shutdown` completes, then let open
/// connections finish their request.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    state: AppState,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    server::serve_router(listener, router(state), limits, shutdown).await
}

/// Why the loop counts as stuck, if it does: no pass finished (or, before
/// the first, none started) for [`STUCK_INTERVALS`] intervals. A standby
/// makes no pass and is never stuck; a new leader counts from its takeover.
fn stuck(s: &AppState, st: &Status) -> Option<String> {
    if st.leadership.role == "standby" {
        return None;
    }
    let took_over = st.leadership.transitions.back().map(|t| t.at);
    let last = st.last_pass.finished_at.max(took_over).or(st.started_at);
    let since = last.and_then(|t| s.clock.now().duration_since(t).ok()).unwrap_or_default();
    (since > s.interval * STUCK_INTERVALS)
        .then(|| format!("no reconcile pass finished for {}s (interval {}s)", since.as_secs(), s.interval.as_secs()))
}

/// Liveness, for the container health check: 503 only when the loop is
/// stuck, whatever the cloud answers, because only then does a restart
/// help.
async fn livez(State(s): State<AppState>) -> Response {
    let st = s.status.read().unwrap();
    match stuck(&s, &st) {
        Some(reason) => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "stuck", "reason": reason }))).into_response()
        }
        None => (StatusCode::OK, Json(json!({ "status": "alive", "passes": st.passes }))).into_response(),
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    let st = s.status.read().unwrap();
    let config = json!({ "valid": st.config.valid, "errors": st.config.errors });
    if let Some(reason) = stuck(&s, &st) {
        let body = json!({ "status": "unhealthy", "reason": reason, "config": config });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    if st.cloud.consecutive_failures >= UNREACHABLE_PASSES {
        let body = json!({
            "status": "unhealthy",
            "reason": format!("the cloud was unreachable for the last {} passes: {}", st.cloud.consecutive_failures, st.cloud.last_error.clone().unwrap_or_default()),
            "config": config,
        });
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    }
    (StatusCode::OK, Json(json!({ "status": "ok", "passes": st.passes, "config": config }))).into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    let st = s.status.read().unwrap();
    // A standby is ready when it could take over: it can reach the lease.
    if st.leadership.role == "standby" {
        return if st.leadership.store_reachable {
            (StatusCode::OK, Json(json!({ "status": "ready", "role": "standby" }))).into_response()
        } else {
            let reason = "standby, and the lease table cannot be reached: it could not take over";
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "reason": reason }))).into_response()
        };
    }
    if st.last_success_at.is_some() || (st.passes > 0 && st.cloud.reachable) {
        (StatusCode::OK, Json(json!({ "status": "ready" }))).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "not ready", "reason": "no complete pass yet" })))
            .into_response()
    }
}

/// OpenMetrics when the client accepts it (Prometheus does), otherwise
/// the classic text format.
async fn metrics(State(s): State<AppState>, headers: axum::http::HeaderMap) -> Response {
    let accepts_openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    if accepts_openmetrics {
        ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], s.metrics.render())
            .into_response()
    } else {
        ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], s.metrics.render_prometheus_text())
            .into_response()
    }
}

/// The status page, for people (/status is the same for machines).
async fn status_page(State(s): State<AppState>) -> Response {
    let html = {
        let st = s.status.read().unwrap();
        let view = page::View { now: s.clock.now(), refresh: page::refresh(s.interval), stuck: stuck(&s, &st) };
        page::render(&st, &view)
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, page::CONTENT_SECURITY_POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        html,
    )
        .into_response()
}

async fn status(State(s): State<AppState>) -> Response {
    let st = s.status.read().unwrap().clone();
    Json(st).into_response()
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::cloud::ManualClock;
    use crate::controller::status::Status;

    fn state(status: Status, clock: Arc<ManualClock>) -> AppState {
        AppState {
            status: Arc::new(std::sync::RwLock::new(status)),
            metrics: Arc::new(Metrics::new()),
            clock,
            interval: Duration::from_secs(15),
        }
    }

    async fn body(r: Response) -> (StatusCode, serde_json::Value) {
        let code = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (code, serde_json::from_slice(&bytes).unwrap())
    }

    /// `r` is a 503 whose `reason` says `why`.
    async fn assert_unavailable_because(r: Response, why: &str) {
        let (code, v) = body(r).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{v}");
        assert!(v["reason"].as_str().unwrap().contains(why), "{v}");
    }

    fn started(now: SystemTime) -> Status {
        let mut st = Status::default();
        st.started_at = Some(now);
        st.config.valid = true;
        st
    }

    /// A clock, and the status of a daemon that has just finished a pass.
    fn just_passed() -> (Arc<ManualClock>, Status) {
        let clock = Arc::new(ManualClock::new());
        let mut st = started(clock.now());
        st.last_pass.finished_at = Some(clock.now());
        (clock, st)
    }

    #[tokio::test]
    async fn healthz_fails_when_no_pass_finished_for_three_intervals() {
        let (clock, mut st) = just_passed();
        st.passes = 1;
        let s = state(st, clock.clone());
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::OK);
        clock.advance(Duration::from_secs(44));
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::OK);
        clock.advance(Duration::from_secs(2));
        assert_unavailable_because(healthz(State(s)).await, "no reconcile pass finished").await;
    }

    #[tokio::test]
    async fn healthz_fails_after_three_unreachable_passes_but_not_for_a_bad_config() {
        let (clock, mut st) = just_passed();
        st.cloud.consecutive_failures = 2;
        st.cloud.last_error = Some("ecs is unreachable: connection refused".into());
        st.config.valid = false;
        st.config.errors = vec!["error: app.yaml:3:1: unknown field `clustr`".into()];
        let s = state(st, clock.clone());
        let (code, v) = body(healthz(State(s.clone())).await).await;
        assert_eq!(code, StatusCode::OK, "a config error alone is not unhealthy");
        assert_eq!(v["config"]["valid"], false);
        s.status.write().unwrap().cloud.consecutive_failures = 3;
        assert_unavailable_because(healthz(State(s)).await, "connection refused").await;
    }

    #[tokio::test]
    async fn livez_ignores_an_unreachable_cloud_but_not_a_stuck_loop() {
        let (clock, mut st) = just_passed();
        st.passes = 9;
        st.cloud.reachable = false;
        st.cloud.consecutive_failures = 8;
        st.cloud.last_error = Some("ecs is unreachable: connection refused".into());
        let s = state(st, clock.clone());
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (code, v) = body(livez(State(s.clone())).await).await;
        assert_eq!(code, StatusCode::OK, "an outage is no reason to restart: {v}");
        clock.advance(Duration::from_secs(46));
        assert_unavailable_because(livez(State(s)).await, "no reconcile pass finished for 46s").await;
    }

    #[tokio::test]
    async fn readyz_waits_for_the_first_complete_pass() {
        let clock = Arc::new(ManualClock::new());
        let s = state(started(clock.now()), clock.clone());
        assert_eq!(readyz(State(s.clone())).await.status(), StatusCode::SERVICE_UNAVAILABLE);
        s.status.write().unwrap().last_success_at = Some(clock.now());
        assert_eq!(readyz(State(s)).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_standby_is_alive_without_passes_and_ready_while_it_can_reach_the_lease() {
        let clock = Arc::new(ManualClock::new());
        let mut st = started(clock.now());
        st.leadership.role = "standby";
        st.leadership.store_reachable = true;
        let s = state(st, clock.clone());
        clock.advance(Duration::from_secs(3600));
        assert_eq!(body(livez(State(s.clone())).await).await.0, StatusCode::OK, "no pass by design");
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::OK);
        assert_eq!(readyz(State(s.clone())).await.status(), StatusCode::OK, "it could take over");
        s.status.write().unwrap().leadership.store_reachable = false;
        assert_unavailable_because(readyz(State(s.clone())).await, "lease table cannot be reached").await;

        // Once it leads, the stuck clock starts at the takeover, not at start-up.
        let took_over = clock.now();
        {
            let mut st = s.status.write().unwrap();
            st.leadership.role = "leader";
            let t = crate::controller::leader::Transition { at: took_over, role: "leader", reason: "test".into() };
            st.leadership.transitions.push_back(t);
        }
        clock.advance(Duration::from_secs(44));
        assert_eq!(body(livez(State(s.clone())).await).await.0, StatusCode::OK);
        clock.advance(Duration::from_secs(2));
        assert_eq!(body(livez(State(s)).await).await.0, StatusCode::SERVICE_UNAVAILABLE);
    }

    /// A server on a free port with `limits` and routes `app`; dropping the
    /// sender stops it.
    async fn spawn(app: Router, limits: Limits) -> (std::net::SocketAddr, tokio::sync::oneshot::Sender<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server::serve_router(listener, app, limits, async {
            let _ = stopped.await;
        }));
        (addr, stop)
    }

    fn live_state() -> AppState {
        let (clock, st) = just_passed();
        state(st, clock)
    }

    /// Everything the server sends on `stream` until it closes it, or
    /// `None` if it has not closed it within `within`.
    async fn read_to_close(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
        use tokio::io::AsyncReadExt as _;
        let mut out = Vec::new();
        match tokio::time::timeout(within, stream.read_to_end(&mut out)).await {
            Ok(Ok(_)) => Some(String::from_utf8_lossy(&out).into()),
            // A reset is a close too.
            Ok(Err(_)) => Some(String::from_utf8_lossy(&out).into()),
            Err(_) => None,
        }
    }

    async fn send(addr: std::net::SocketAddr, request: &str) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        stream
    }

    const GET_LIVEZ: &str = "GET /livez HTTP/1.1\r\nHost: ballast\r\nConnection: close\r\n\r\n";

    #[tokio::test]
    async fn a_half_sent_request_header_is_closed_after_the_header_timeout() {
        let limits = Limits { header_read_timeout: Duration::from_millis(300), ..Limits::default() };
        let (addr, _stop) = spawn(router(live_state()), limits).await;
        let start = std::time::Instant::now();
        let mut stream = send(addr, "GET /livez HTTP/1.1\r\nHost: ballast\r\n").await;
        let answer = read_to_close(&mut stream, Duration::from_secs(5)).await;
        assert!(answer.is_some(), "the connection is still open after 5 s");
        assert!(start.elapsed() >= Duration::from_millis(250), "closed before the timeout: {:?}", start.elapsed());
        // A prompt client on the same server is served.
        let mut stream = send(addr, GET_LIVEZ).await;
        let answer = read_to_close(&mut stream, Duration::from_secs(5)).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn a_slow_handler_answers_503_after_the_request_timeout() {
        let app = Router::new().route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "too late"
            }),
        );
        let limits = Limits { request_timeout: Duration::from_millis(200), ..Limits::default() };
        let (addr, _stop) = spawn(app, limits).await;
        let start = std::time::Instant::now();
        let r = reqwest::get(format!("http://{addr}/slow")).await.unwrap();
        assert_eq!(r.status().as_u16(), 503);
        assert!(r.text().await.unwrap().contains("took longer than 200ms"));
        assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_wait_until_one_closes() {
        let limits = Limits { max_connections: 2, ..Limits::default() };
        let (addr, _stop) = spawn(router(live_state()), limits).await;
        // Two idle connections take both places (the header timeout, 5 s,
        // outlasts the test).
        let first = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _second = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut third = send(addr, GET_LIVEZ).await;
        assert_eq!(read_to_close(&mut third, Duration::from_millis(500)).await, None, "served beyond the cap");
        drop(first);
        let answer = read_to_close(&mut third, Duration::from_secs(3)).await.expect("served once a place is free");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }

    #[tokio::test]
    async fn head_answers_without_a_body_and_a_wrong_method_gets_405_with_allow() {
        let (addr, _stop) = spawn(router(live_state()), Limits::default()).await;
        for path in ["/", "/livez", "/healthz", "/status"] {
            let mut stream =
                send(addr, &format!("HEAD {path} HTTP/1.1\r\nHost: ballast\r\nConnection: close\r\n\r\n")).await;
            let answer = read_to_close(&mut stream, Duration::from_secs(5)).await.unwrap();
            assert!(answer.starts_with("HTTP/1.1 200"), "HEAD {path}: {answer}");
            let (_, rest) = answer.split_once("\r\n\r\n").unwrap();
            assert_eq!(rest, "", "HEAD {path} sent a body");
        }
        let r = reqwest::Client::new().post(format!("http://{addr}/status")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 405);
        let allow = r.headers().get("allow").expect("an Allow header").to_str().unwrap();
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
    }

    #[tokio::test]
    async fn the_status_page_is_html_that_may_run_no_script() {
        let (addr, _stop) = spawn(router(live_state()), Limits::default()).await;
        let r = reqwest::get(format!("http://{addr}/")).await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let h = r.headers().clone();
        assert_eq!(h["content-type"], "text/html; charset=utf-8");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"), "{csp}");
        let html = r.text().await.unwrap();
        assert!(html.contains("<h1>ballast</h1>") && html.contains(r#"http-equiv="refresh" content="15""#), "{html}");
    }

    #[tokio::test]
    async fn shutdown_closes_idle_keep_alive_connections_and_returns() {
        use tokio::io::AsyncReadExt as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, live_state(), async {
            let _ = stopped.await;
        }));
        // A keep-alive connection, idle after its first answer.
        let mut idle = send(addr, "GET /livez HTTP/1.1\r\nHost: ballast\r\n\r\n").await;
        let mut buf = [0u8; 1024];
        let n = idle.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let _ = stop.send(());
        let ended = tokio::time::timeout(Duration::from_secs(2), server).await;
        assert!(matches!(ended, Ok(Ok(Ok(())))), "the server did not stop: {ended:?}");
        assert!(read_to_close(&mut idle, Duration::from_secs(1)).await.is_some(), "the idle connection is still open");
    }
}
