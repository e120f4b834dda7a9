//! The frontend page, served on the frontend port.

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

/// The page, with `{{BACKEND_PORT}}` where the backend's port goes.
const PAGE_TEMPLATE: &str = include_str!("index.html");

/// The page as served when the backend listens on `backend_port`.
///
/// The port is injected server-side because the page cannot know it: when
/// opened directly it calls the backend on that port of the same host
/// (behind API Gateway it ignores it; see the script in `index.html`).
pub fn page(backend_port: u16) -> String {
    PAGE_TEMPLATE.replace("{{BACKEND_PORT}}", &backend_port.to_string())
}

/// The frontend's routes: the page at `/` (what API Gateway's root and
/// `/frontend` methods and the NLB health check request) and
/// `/index.html`; everything else is 404.
pub fn router(backend_port: u16) -> Router {
    let html = page(backend_port);
    let serve = move || {
        let html = html.clone();
        async move {
            (
                // The page embeds the backend port, which changes between runs.
                [(header::CACHE_CONTROL, "no-store")],
                Html(html),
            )
        }
    };
    Router::new().route("/", get(serve.clone())).route("/index.html", get(serve)).fallback(not_found)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Html("<h1>404 Not Found</h1>\n")).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_carries_the_backend_port_and_no_placeholder() {
        let html = page(8123);
        assert!(html.contains(r#"content="8123""#), "{html}");
        assert!(!html.contains("{{"), "placeholder left in page");
    }
}
