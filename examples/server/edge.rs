//! The service's HTTP edge: what answers around the handlers rather than in them.
//!
//! - Request targets (path and query) longer than [`MAX_URI_LEN`] get a 414.
//! - Request bodies longer than [`MAX_BODY_LEN`] get a 413 (axum's `DefaultBodyLimit`, whose
//!   rejection the body extractor turns into a JSON answer).
//! - Every error answer is JSON, FastAPI-style (`{"detail": "Not Found"}`): [`json_errors`]
//!   rewrites the few that are not, such as the Swagger UI routes' own 404s and 400s.
//! - `GET /` redirects to the interactive documentation.
//!
//! Not covered: what hyper refuses before axum sees the request (a request target over
//! 64 KiB, a head over hyper's buffer, a malformed request line) gets hyper's empty answer.

use super::extract::{ApiError, Detail};
use axum::Json;
use axum::body::to_bytes;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// The longest request target (path and query, in bytes, as sent) accepted: 8 KiB, the
/// limit of nginx's default `large_client_header_buffers` and of many proxies, so a URL that
/// works here also works behind one. Longer ones get a 414.
pub const MAX_URI_LEN: usize = 8 * 1024;

/// The largest request body accepted: 2 MiB (axum's default, made explicit), far more than
/// an employee takes. Larger ones get a 413.
pub const MAX_BODY_LEN: usize = 2 * 1024 * 1024;

/// How much of a non-JSON error body [`json_errors`] reads to quote it as the detail.
const MAX_QUOTED_ERROR: usize = 4 * 1024;

/// Answers a 414 for a request target over [`MAX_URI_LEN`]; passes the others on.
pub async fn limit_uri(request: Request, next: Next) -> Response {
    let len = request
        .uri()
        .path_and_query()
        .map_or(0, |target| target.as_str().len());
    if len > MAX_URI_LEN {
        let detail = format!(
            "URI Too Long: the path and query are {len} bytes, at most {MAX_URI_LEN} are accepted"
        );
        return ApiError::Status(StatusCode::URI_TOO_LONG, detail).into_response();
    }
    next.run(request).await
}

/// Turns an error answer (4xx, 5xx) that is not JSON into `{"detail": ...}`, quoting its
/// text, or the status's reason (`Not Found`) when it has none; status and other headers
/// stay. JSON answers and successes pass as they are.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            let essence = value.split(';').next().unwrap_or("").trim();
            essence.eq_ignore_ascii_case("application/json") || essence.ends_with("+json")
        });
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = to_bytes(body, MAX_QUOTED_ERROR)
        .await
        .ok()
        .and_then(|bytes| String::from_utf8(bytes.to_vec()).ok())
        .map(|text| text.trim().to_owned())
        .filter(|text| !text.is_empty());
    let detail = text.unwrap_or_else(|| status.canonical_reason().unwrap_or("Error").to_owned());
    parts.headers.remove(CONTENT_LENGTH);
    parts.headers.remove(CONTENT_TYPE);
    let json = Json(Detail { detail }).into_response();
    let (json_parts, json_body) = json.into_parts();
    parts.headers.extend(json_parts.headers);
    Response::from_parts(parts, json_body)
}

/// The body of `GET /`: where the documentation is, for clients that do not follow the
/// redirect.
#[derive(Debug, Serialize)]
struct Index {
    /// The interactive documentation (Swagger UI).
    docs: &'static str,
    /// The OpenAPI description.
    openapi: &'static str,
}

/// `GET /`: a 307 to `/docs`, where a browser lands on the interactive documentation, with
/// a JSON body naming `/docs` and `/openapi.json` for clients that do not follow it.
pub async fn index() -> Response {
    let body = Json(Index {
        docs: "/docs",
        openapi: "/openapi.json",
    });
    let location = [(LOCATION, HeaderValue::from_static("/docs"))];
    (StatusCode::TEMPORARY_REDIRECT, location, body).into_response()
}
