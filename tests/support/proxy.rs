//! A fault-injecting HTTP proxy for the emulator: forwards requests to an
//! upstream (moto or the CloudWatch bridge) and answers a deterministic
//! fraction of them with the service's own throttling error instead.
//!
//! Deterministic (every Nth request) rather than random, so a failing run
//! can be replayed; the error body matches the protocol of the request
//! (awsJson `__type`, awsQuery `<Code>`, rpc-v2-cbor `__type`), so the SDK
//! parses it exactly as it would parse AWS's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;

/// A running proxy. Stops when the test's runtime ends.
pub struct FaultProxy {
    pub url: String,
    state: Arc<State>,
}

struct State {
    upstream: String,
    /// Throttle every `every`-th request; 0 = never.
    every: AtomicU64,
    requests: AtomicU64,
    throttled: AtomicU64,
    /// The error code to answer with instead of the protocol's throttling
    /// code (e.g. `LimitExceededException`).
    code: std::sync::Mutex<Option<String>>,
    http: reqwest::Client,
}

impl FaultProxy {
    /// Start in front of `upstream`, throttling every `every`-th request.
    pub async fn start(upstream: &str, every: u64) -> FaultProxy {
        let state = Arc::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            every: AtomicU64::new(every),
            requests: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            code: std::sync::Mutex::new(None),
            http: reqwest::Client::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let s = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move { s.handle(method, uri, headers, body).await }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FaultProxy { url, state }
    }

    pub fn set_every(&self, every: u64) {
        self.state.every.store(every, Ordering::SeqCst);
    }

    /// Answer the injected faults with this error code instead of the
    /// protocol's throttling code.
    pub fn set_error_code(&self, code: &str) {
        *self.state.code.lock().unwrap() = Some(code.to_string());
    }

    /// Requests answered with an injected error so far.
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::SeqCst)
    }

    /// Requests seen so far (throttled or forwarded).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }
}

impl State {
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.every.load(Ordering::SeqCst);
        if every > 0 && n.is_multiple_of(every) {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            let code = self.code.lock().unwrap().clone();
            return error_response(&uri, &headers, code.as_deref());
        }
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut req = self.http.request(method, format!("{}{path}", self.upstream)).body(body);
        for (name, value) in &headers {
            if name != "host" && name != "content-length" {
                req = req.header(name, value);
            }
        }
        match req.send().await {
            Ok(resp) => {
                let mut out = Response::builder().status(resp.status());
                for (name, value) in resp.headers() {
                    if name != "transfer-encoding" && name != "content-length" {
                        out = out.header(name, value);
                    }
                }
                let bytes = resp.bytes().await.unwrap_or_default();
                out.body(Body::from(bytes)).unwrap()
            }
            Err(e) => Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::from(e.to_string())).unwrap(),
        }
    }
}

/// The error each protocol's SDK expects: throttling unless `code` says
/// otherwise.
fn error_response(uri: &Uri, headers: &HeaderMap, code: Option<&str>) -> Response {
    let builder = Response::builder().status(StatusCode::BAD_REQUEST);
    if uri.path().starts_with("/service/") {
        // rpc-v2-cbor: {"__type": CODE, "message": "Rate exceeded"}
        let code = code.unwrap_or("ThrottlingException");
        let mut body = vec![0xa2, 0x66];
        body.extend_from_slice(b"__type");
        body.push(0x60 | code.len() as u8);
        body.extend_from_slice(code.as_bytes());
        body.push(0x67);
        body.extend_from_slice(b"message");
        body.push(0x60 | 13);
        body.extend_from_slice(b"Rate exceeded");
        builder
            .header("content-type", "application/cbor")
            .header("smithy-protocol", "rpc-v2-cbor")
            .body(Body::from(body))
            .unwrap()
    } else if headers.contains_key("x-amz-target") {
        let code = code.unwrap_or("ThrottlingException");
        builder
            .header("content-type", "application/x-amz-json-1.1")
            .body(Body::from(format!(r#"{{"__type":"{code}","message":"Rate exceeded"}}"#)))
            .unwrap()
    } else {
        let code = code.unwrap_or("Throttling");
        builder
            .header("content-type", "text/xml")
            .body(Body::from(format!(
                "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>\
                 <Message>Rate exceeded</Message></Error><RequestId>fault-proxy</RequestId></ErrorResponse>"
            )))
            .unwrap()
    }
}
