//! The connection handling under the routes: hyper's HTTP/1 server with
//! our own accept loop, because `axum::serve` sets no header read timeout
//! and accepts every connection it is offered.
//!
//! Three limits keep slow or numerous clients from holding the daemon's
//! HTTP face (and through it, its health checks) hostage:
//! - a header read timeout, which closes a connection that trickles (or
//!   never finishes) a request header, and an idle keep-alive connection;
//! - a request timeout on every handler;
//! - a cap on connections served at once: beyond it, new connections wait
//!   in the kernel's listen backlog until one closes.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// How long a client may take to send a request header. Health checkers,
/// Prometheus and curl send theirs in one packet, well under a second; 5 s
/// forgives a slow link. It also closes a keep-alive connection idle for
/// that long, which costs a scraper one reconnect per scrape.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a handler may take. Every handler answers from memory, so one
/// that takes this long means a wedged process: the client gets a 503
/// rather than a connection held open. 10 s is Prometheus's default scrape
/// timeout and twice the container health check's.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once. The real clients are a handful (the
/// container health check, one or two Prometheus servers, an operator's
/// curl); 256 leaves ample room for them while bounding the memory and
/// tasks a flood of idle connections can take.
pub const MAX_CONNECTIONS: u32 = 256;

/// The limits the server holds its clients to; [`Limits::default`] is the
/// constants above, tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        }
    }
}

/// Serve `app` under `limits` until `shutdown` completes, then stop
/// accepting, let each open connection finish the request it is on, and
/// return once all are closed.
pub(super) async fn serve_router(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app.layer(axum::middleware::from_fn_with_state(limits.request_timeout, time_limit));
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let permits = Arc::new(Semaphore::new(limits.max_connections as usize));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        // The permit comes before accept: a connection beyond the cap is not
        // taken from the backlog, so it costs this process nothing.
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: pause rather than spin.
                    warn!(error = %e, "cannot accept an HTTP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = http1.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut conn = pin!(conn);
            let mut stopping = false;
            loop {
                tokio::select! {
                    result = conn.as_mut() => {
                        if let Err(e) = result {
                            debug!(error = %e, "HTTP connection ended with an error");
                        }
                        break;
                    }
                    _ = stop.wait_for(|s| *s), if !stopping => {
                        stopping = true;
                        conn.as_mut().graceful_shutdown();
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every permit back means every connection closed.
    let _ = permits.acquire_many(limits.max_connections).await;
    Ok(())
}

/// Answers 503 when the handler takes longer than the request timeout.
async fn time_limit(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            let reason = format!("the request took longer than {}", humantime::format_duration(limit));
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({ "status": "timeout", "reason": reason })))
                .into_response()
        }
    }
}
