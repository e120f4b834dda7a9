//! The HTTP server: `/healthz`, `/readyz`, `/metrics` and `/status`.

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
use crate::metrics::Metrics;

/// Consecutive unreachable passes after which /healthz fails.
pub const UNREACHABLE_PASSES: u32 = 3;

#[derive(Clone)]
pub struct AppState {
    pub status: SharedStatus,
    pub metrics: Arc<Metrics>,
    pub clock: Arc<dyn Clock>,
    /// The loop's interval: no pass for three of them means it is stuck.
    pub interval: Duration,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(state)
}

/// Serve until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}

async fn healthz(State(s): State<AppState>) -> Response {
    let st = s.status.read().unwrap();
    let now = s.clock.now();
    let last = st.last_pass.finished_at.or(st.started_at);
    let since = last.and_then(|t| now.duration_since(t).ok()).unwrap_or_default();
    let config = json!({ "valid": st.config.valid, "errors": st.config.errors });
    if since > s.interval * 3 {
        let body = json!({ "status": "unhealthy", "reason": format!("no reconcile pass finished for {}s (interval {}s)", since.as_secs(), s.interval.as_secs()), "config": config });
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

    fn started(now: SystemTime) -> Status {
        let mut st = Status::default();
        st.started_at = Some(now);
        st.config.valid = true;
        st
    }

    #[tokio::test]
    async fn healthz_fails_when_no_pass_finished_for_three_intervals() {
        let clock = Arc::new(ManualClock::new());
        let mut st = started(clock.now());
        st.last_pass.finished_at = Some(clock.now());
        st.passes = 1;
        let s = state(st, clock.clone());
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::OK);
        clock.advance(Duration::from_secs(44));
        assert_eq!(body(healthz(State(s.clone())).await).await.0, StatusCode::OK);
        clock.advance(Duration::from_secs(2));
        let (code, v) = body(healthz(State(s)).await).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["reason"].as_str().unwrap().contains("no reconcile pass finished"), "{v}");
    }

    #[tokio::test]
    async fn healthz_fails_after_three_unreachable_passes_but_not_for_a_bad_config() {
        let clock = Arc::new(ManualClock::new());
        let mut st = started(clock.now());
        st.last_pass.finished_at = Some(clock.now());
        st.cloud.consecutive_failures = 2;
        st.cloud.last_error = Some("ecs is unreachable: connection refused".into());
        st.config.valid = false;
        st.config.errors = vec!["error: app.yaml:3:1: unknown field `clustr`".into()];
        let s = state(st, clock.clone());
        let (code, v) = body(healthz(State(s.clone())).await).await;
        assert_eq!(code, StatusCode::OK, "a config error alone is not unhealthy");
        assert_eq!(v["config"]["valid"], false);
        s.status.write().unwrap().cloud.consecutive_failures = 3;
        let (code, v) = body(healthz(State(s)).await).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert!(v["reason"].as_str().unwrap().contains("connection refused"), "{v}");
    }

    #[tokio::test]
    async fn readyz_waits_for_the_first_complete_pass() {
        let clock = Arc::new(ManualClock::new());
        let s = state(started(clock.now()), clock.clone());
        assert_eq!(readyz(State(s.clone())).await.status(), StatusCode::SERVICE_UNAVAILABLE);
        s.status.write().unwrap().last_success_at = Some(clock.now());
        assert_eq!(readyz(State(s)).await.status(), StatusCode::OK);
    }
}
