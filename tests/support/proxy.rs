//! A fault-injecting HTTP proxy for the emulator: forwards requests to an
//! upstream (moto or the CloudWatch bridge) and answers a deterministic
//! fraction of them with the service's own throttling error instead.
//!
//! Deterministic (every Nth request) rather than random, so a failing run
//! can be replayed; the error body matches the protocol of the request
//! (awsJson `__type`, awsQuery `<Code>`, rpc-v2-cbor `__type`), so the SDK
//! parses it exactly as it would parse AWS's.
//!
//! The proxy also logs every request's API operation, body and outcome, so
//! a test can count the writes of a separate process (the `ballast` binary)
//! whose adapter counters it cannot read, and see what a request carried
//! where the emulator would hide it, and it can be switched off: while
//! off, connections are refused and open ones are reset, as when an
//! endpoint goes away.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy. Stops when the test's runtime ends.
pub struct FaultProxy {
    pub url: String,
    state: Arc<State>,
}

/// One request the proxy saw.
#[derive(Debug, Clone)]
pub struct Call {
    /// The API operation (`UpdateService`, `RegisterTargets`, …).
    pub operation: String,
    /// Answered by the proxy with an injected error, never forwarded.
    pub injected: bool,
    /// The HTTP status the client got.
    pub status: u16,
    /// The request body as text (query-protocol parameters, JSON), for
    /// telling apart writes to different resources.
    pub body: String,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Call {
    /// Forwarded and answered with success by the upstream.
    pub fn succeeded(&self) -> bool {
        !self.injected && (200..300).contains(&self.status)
    }

    /// The parameters of a query-protocol request (ELBv2, Auto Scaling),
    /// decoded: what moto would otherwise fill in or ignore is seen here
    /// as the adapter sent it.
    pub fn params(&self) -> BTreeMap<String, String> {
        serde_urlencoded::from_str(&self.body).unwrap_or_else(|e| panic!("not a form body ({e}): {}", self.body))
    }
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
    calls: Mutex<Vec<Call>>,
    /// When set, only requests of these operations are faulted.
    only: Mutex<Option<Vec<String>>>,
    /// Whether the endpoint is up; connections accepted while it was up
    /// remember the epoch and fail once it changes.
    up: tokio::sync::watch::Sender<bool>,
    epoch: AtomicU64,
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
            calls: Mutex::new(Vec::new()),
            only: Mutex::new(None),
            up: tokio::sync::watch::Sender::new(true),
            epoch: AtomicU64::new(0),
            http: reqwest::Client::new(),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let url = format!("http://{addr}");
        let s = state.clone();
        let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move { s.handle(method, uri, headers, body).await }
        });
        let switch = Switch { addr, listener: Some(listener), up: state.up.subscribe(), state: state.clone() };
        tokio::spawn(async move {
            let _ = axum::serve(switch, app).await;
        });
        FaultProxy { url, state }
    }

    /// Fault every `every`-th request from now on; 0 = none.
    pub fn set_every(&self, every: u64) {
        self.state.every.store(every, Ordering::SeqCst);
    }

    /// Answer the injected faults with this error code instead of the
    /// protocol's throttling code.
    pub fn set_error_code(&self, code: &str) {
        *self.state.code.lock().unwrap() = Some(code.to_string());
    }

    /// Fault only requests of these operations (every `every`-th request
    /// overall that is one of them); `None` faults any operation.
    pub fn set_only(&self, operations: Option<&[&str]>) {
        *self.state.only.lock().unwrap() = operations.map(|ops| ops.iter().map(|o| o.to_string()).collect());
    }

    /// Take the endpoint down (connections refused, open ones reset) or
    /// bring it back on the same address.
    pub fn set_up(&self, up: bool) {
        if !up {
            self.state.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.state.up.send_replace(up);
    }

    /// Requests answered with an injected error so far.
    pub fn throttled(&self) -> u64 {
        self.state.throttled.load(Ordering::SeqCst)
    }

    /// Requests seen so far (throttled or forwarded).
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Every request so far, in arrival order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    /// Requests of one operation so far, whatever their outcome.
    pub fn attempts(&self, operation: &str) -> usize {
        self.state.calls.lock().unwrap().iter().filter(|c| c.operation == operation).count()
    }

    /// Requests of one operation the upstream carried out.
    pub fn succeeded(&self, operation: &str) -> usize {
        self.state.calls.lock().unwrap().iter().filter(|c| c.operation == operation && c.succeeded()).count()
    }

    /// Requests of operations that change something (not Describe, List
    /// or Get), whatever their outcome.
    pub fn writes(&self) -> Vec<Call> {
        self.calls().into_iter().filter(|c| !is_read(&c.operation)).collect()
    }
}

/// Reads are the Describe/List/Get operations, as in the adapter's counts.
pub fn is_read(operation: &str) -> bool {
    operation.starts_with("Describe") || operation.starts_with("List") || operation.starts_with("Get")
}

/// The API operation of a request, whatever its protocol.
fn operation(uri: &Uri, headers: &HeaderMap, body: &[u8]) -> String {
    // rpc-v2-cbor (CloudWatch): /service/<Service>/operation/<Op>
    if let Some((_, op)) = uri.path().strip_prefix("/service/").and_then(|p| p.split_once("/operation/")) {
        return op.to_string();
    }
    // awsJson (ECS, Application Auto Scaling): X-Amz-Target: Prefix.Op
    if let Some(target) = headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
        return target.rsplit('.').next().unwrap_or(target).to_string();
    }
    // awsQuery (ELBv2, Auto Scaling, IAM, EC2): Action=Op in the form body
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .map(str::to_string)
        .unwrap_or_else(|| format!("? {}", uri.path()))
}

/// The proxy's listener: accepts while the endpoint is up; while it is
/// down, the socket is closed (connections refused) and streams accepted
/// before fail on their next read or write (connections reset).
struct Switch {
    addr: SocketAddr,
    listener: Option<TcpListener>,
    up: tokio::sync::watch::Receiver<bool>,
    state: Arc<State>,
}

impl axum::serve::Listener for Switch {
    type Io = Guarded;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Guarded, SocketAddr) {
        loop {
            if !*self.up.borrow_and_update() {
                self.listener = None;
                let _ = self.up.wait_for(|up| *up).await;
                continue;
            }
            let listener = match &self.listener {
                Some(l) => l,
                None => match TcpListener::bind(self.addr).await {
                    Ok(l) => self.listener.insert(l),
                    Err(_) => {
                        // The old socket may linger a moment; try again.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                },
            };
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let epoch = self.state.epoch.load(Ordering::SeqCst);
                        return (Guarded { stream, epoch, state: self.state.clone() }, peer);
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
                _ = self.up.changed() => {}
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.addr)
    }
}

/// A connection that breaks once the proxy is taken down.
struct Guarded {
    stream: TcpStream,
    epoch: u64,
    state: Arc<State>,
}

impl Guarded {
    fn check(&self) -> std::io::Result<()> {
        if self.state.epoch.load(Ordering::SeqCst) == self.epoch {
            Ok(())
        } else {
            Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "the proxy was taken down"))
        }
    }
}

impl AsyncRead for Guarded {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.check()?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl State {
    async fn handle(&self, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
        let at = std::time::Instant::now();
        let op = operation(&uri, &headers, &body);
        let text = String::from_utf8_lossy(&body).into_owned();
        let n = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let every = self.every.load(Ordering::SeqCst);
        let chosen = self.only.lock().unwrap().as_ref().is_none_or(|ops| ops.contains(&op));
        if chosen && every > 0 && n.is_multiple_of(every) {
            self.throttled.fetch_add(1, Ordering::SeqCst);
            let code = self.code.lock().unwrap().clone();
            let resp = error_response(&uri, &headers, code.as_deref());
            self.log(op, true, resp.status().as_u16(), text, at);
            return resp;
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
                let status = resp.status().as_u16();
                let bytes = resp.bytes().await.unwrap_or_default();
                self.log(op, false, status, text, at);
                out.body(Body::from(bytes)).unwrap()
            }
            Err(e) => {
                self.log(op, false, 502, text, at);
                Response::builder().status(StatusCode::BAD_GATEWAY).body(Body::from(e.to_string())).unwrap()
            }
        }
    }

    fn log(&self, operation: String, injected: bool, status: u16, body: String, at: std::time::Instant) {
        self.calls.lock().unwrap().push(Call { operation, injected, status, body, at });
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
