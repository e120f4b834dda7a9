//! The frontend page in a real browser (Debian's headless Chromium),
//! served by the real binary: opened directly, and behind a stand-in for
//! API Gateway that serves it under a stage prefix.
//!
//! Chromium is a test dependency: `.ci/run` installs it
//! (`apt-get install -y chromium`); without it these tests fail, never skip
//! (tests/support/chromium.rs).

/// Shared with the status page's browser test.
#[path = "../../tests/support/chromium.rs"]
mod chromium;
mod support;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, RawQuery, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use support::App;

/// What the rendered page says, read from Chromium's `--dump-dom`.
struct Rendered {
    /// Text of `#status`.
    status: String,
    /// Class of `#status` (`up`, `down`, `error`, `pending`).
    class: String,
    /// Text of `#backend-url`: where the page looked for the backend.
    backend_url: String,
}

/// Load `url` in headless Chromium and return the DOM after the page's
/// fetch settled.
async fn render(url: &str) -> Rendered {
    let url = url.to_string();
    // Virtual time waits for pending fetches, then lets timers run; 10 s
    // of it is more than the page's 5 s fetch deadline.
    let dom =
        tokio::task::spawn_blocking(move || chromium::dump_dom(&url, &["--virtual-time-budget=10000"])).await.unwrap();
    let (class, status) = element(&dom, "status");
    let (_, backend_url) = element(&dom, "backend-url");
    Rendered { status, class, backend_url }
}

/// (class attribute, text) of the element with `id`, from serialized DOM.
fn element(dom: &str, id: &str) -> (String, String) {
    let at = dom.find(&format!(r#"id="{id}""#)).unwrap_or_else(|| panic!("no #{id} in DOM:\n{dom}"));
    let rest = &dom[at..];
    let open_end = rest.find('>').unwrap();
    let class = rest[..open_end]
        .split_once(r#"class=""#)
        .map(|(_, c)| c.split('"').next().unwrap().to_string())
        .unwrap_or_default();
    let text = &rest[open_end + 1..];
    let text = &text[..text.find('<').unwrap()];
    (class, text.trim().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opened_directly_the_page_shows_the_backend_up() {
    let app = App::start();
    let page = render(&app.frontend("/")).await;
    assert_eq!(page.status, "API STATUS: UP");
    assert_eq!(page.class, "up");
    assert_eq!(page.backend_url, format!("http://127.0.0.1:{}/status", app.backend_port));
}

/// A stand-in for the REST API's stage: `/prod` and `/prod/frontend`
/// proxy to the frontend's `/`, `/prod/backend/{proxy+}` to the backend's
/// `/{proxy}` (the article's integrations). Stage `down` serves the page
/// but answers 503 for the backend, as API Gateway does when the NLB has
/// no healthy target.
struct Gateway {
    port: u16,
    /// Every path (with query) the gateway was asked for.
    seen: Arc<Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Upstreams {
    frontend: String,
    backend: String,
    seen: Arc<Mutex<Vec<String>>>,
    client: reqwest::Client,
}

async fn start_gateway(app: &App) -> Gateway {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let up = Upstreams {
        frontend: app.frontend("/"),
        backend: app.backend(""),
        seen: seen.clone(),
        client: reqwest::Client::new(),
    };
    let router = Router::new()
        .route("/prod", get(frontend))
        .route("/prod/", get(frontend))
        .route("/prod/frontend", get(frontend))
        .route("/prod/backend/{*proxy}", get(backend))
        .route("/down/frontend", get(frontend))
        .route(
            "/down/backend/{*proxy}",
            get(|| async {
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"message": "Service Unavailable"}"#,
                )
            }),
        )
        .layer(axum::middleware::from_fn_with_state(up.clone(), record))
        .with_state(up);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Gateway { port, seen }
}

async fn record(
    State(up): State<Upstreams>,
    uri: Uri,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    up.seen.lock().unwrap().push(uri.to_string());
    next.run(req).await
}

async fn frontend(State(up): State<Upstreams>) -> Response {
    forward(&up.client, &up.frontend).await
}

async fn backend(State(up): State<Upstreams>, UrlPath(proxy): UrlPath<String>, RawQuery(query): RawQuery) -> Response {
    let mut url = format!("{}/{proxy}", up.backend);
    if let Some(q) = query {
        url = format!("{url}?{q}");
    }
    forward(&up.client, &url).await
}

async fn forward(client: &reqwest::Client, url: &str) -> Response {
    let resp = client.get(url).send().await.unwrap();
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap();
    let ctype = resp.headers()[reqwest::header::CONTENT_TYPE].to_str().unwrap().to_string();
    let body = resp.bytes().await.unwrap();
    (status, [(header::CONTENT_TYPE, ctype)], body.to_vec()).into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_the_gateway_the_page_calls_the_backend_through_the_stage() {
    let app = App::start();
    let gw = start_gateway(&app).await;
    let base = format!("http://127.0.0.1:{}", gw.port);

    for page_path in ["/prod/frontend", "/prod"] {
        gw.seen.lock().unwrap().clear();
        let page = render(&format!("{base}{page_path}")).await;
        assert_eq!(page.status, "API STATUS: UP", "{page_path}");
        assert_eq!(page.backend_url, format!("{base}/prod/backend/status"), "{page_path}");
        // The status came through the gateway, not straight from the
        // backend port the page also knows about.
        let seen = gw.seen.lock().unwrap().clone();
        assert!(seen.contains(&"/prod/backend/status".to_string()), "{page_path}: gateway saw {seen:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_backend_is_shown_as_an_error() {
    let app = App::start();
    let gw = start_gateway(&app).await;
    let page = render(&format!("http://127.0.0.1:{}/down/frontend", gw.port)).await;
    assert_eq!(page.status, "API STATUS: unavailable (HTTP 503)");
    assert_eq!(page.class, "error");
}
