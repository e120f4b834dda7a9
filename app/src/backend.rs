//! The backend API: what the NLB's `backendTargetGroup` health check and
//! the page call.

use axum::extract::{Path, Query};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::cors::{Any, CorsLayer};

/// The backend's routes.
///
/// CORS: the article's backend allows every origin but only GET, because
/// the page that calls it may be served from another port (direct use) or
/// another host. Credentials are not allowed: a wildcard origin with
/// credentials is rejected by browsers anyway, and the API uses none.
pub fn router() -> Router {
    let cors = CorsLayer::new().allow_origin(Any).allow_methods([Method::GET]).allow_headers(Any);
    Router::new().route("/status", get(status)).route("/items/{item_id}", get(item)).fallback(not_found).layer(cors)
}

async fn status() -> Json<serde_json::Value> {
    Json(json!({ "STATUS": "UP" }))
}

/// `GET /items/{item_id}?q=`: echoes an integer id and the optional `q`.
///
/// The id is taken as a string and parsed here, so that a bad id gets the
/// same 422 body shape FastAPI gave the article's clients instead of
/// axum's plain-text 400.
async fn item(Path(item_id): Path<String>, Query(query): Query<Vec<(String, String)>>) -> Response {
    let id = match item_id.trim().parse::<i64>() {
        Ok(id) => id,
        Err(e) => return invalid_item_id(&item_id, &e),
    };
    // A repeated `q` keeps the last value, as FastAPI does for a scalar.
    let q = query.into_iter().rev().find(|(k, _)| k == "q").map(|(_, v)| v);
    Json(json!({ "item_id": id, "q": q })).into_response()
}

fn invalid_item_id(input: &str, e: &std::num::ParseIntError) -> Response {
    use std::num::IntErrorKind;
    let msg = match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
            "Input should be an integer between -9223372036854775808 and 9223372036854775807"
        }
        _ => "Input should be a valid integer, unable to parse string as an integer",
    };
    let body = json!({
        "detail": [{
            "type": "int_parsing",
            "loc": ["path", "item_id"],
            "msg": msg,
            "input": input,
        }]
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({ "detail": "Not Found" }))).into_response()
}
