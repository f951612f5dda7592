//! The HTTP API: axum handlers, each documented for OpenAPI with `#[utoipa::path]`.
//!
//! Handlers stay thin: extract, call the repository, answer. [`CacheStatusLayer`] sets the
//! `X-Cache` header (`HIT`, `COALESCED`, `MISS`, `REFRESH` or `BYPASS`) from the cached calls
//! each request made (and runs each in a memo scope), [`ConditionalLayer`] gives
//! `GET /employees/{id}` an `ETag` and answers `If-None-Match` with 304, and [`Refresh`]
//! says whether the client asked for fresh data.

use super::db::DbError;
use super::edge;
use super::extract::{
    ApiError, ApiJson, ApiPath, Detail, FieldError, LocItem, Refresh, ValidationErrors,
};
use super::model::{Employee, EmployeeInput, Status, StatusUpdate};
use super::repo::Repo;
use axum::extract::{DefaultBodyLimit, MatchedPath, RawQuery, Request, State};
use axum::http::header::{CONTENT_TYPE, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use redis_cached::Outcome;
use redis_cached::axum::{CacheStatusLayer, ConditionalLayer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::{self, ContentBuilder, Ref, RefOr, ResponseBuilder};
use utoipa::{IntoResponses, OpenApi, PartialSchema, ToSchema};
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Employees, through the cache.
    pub repo: Repo,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
    /// Why the cache is not the configured Redis, when it is not (start-up fallback).
    pub cache_fallback: Option<Arc<str>>,
}

/// The OpenAPI description's header; [`app`] adds every route's path to it.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "redis-cached example: employees",
        description = "A small service fronting SQLite, its reads cached in Redis with \
            `#[redis_cached]` and its writes invalidating with `#[invalidates]`. Cached reads \
            answer with `X-Cache`: `HIT` (from the cache), `COALESCED` (waited for another \
            request's fill of the same entry), `MISS` (read the database, then cached), \
            `REFRESH` (read the database as asked, overwriting the entry) or `BYPASS` (the \
            cache was not used: Redis down, none installed, or an invalidation pending). \
            `?invalidate_cache=true` or `Cache-Control: no-cache` asks for fresh data. Every \
            error answer is JSON, FastAPI-style: `{\"detail\": \"...\"}`, or for a 422 \
            `{\"detail\": [{\"type\", \"loc\", \"msg\", \"input\"}, ...]}` listing every \
            invalid field."
    ),
    components(schemas(Detail, ValidationErrors)),
    tags(
        (name = "employees", description = "Employees and their in/out status"),
        (name = "departments", description = "Employees by department"),
        (name = "operations", description = "Health and metrics")
    )
)]
struct ApiDoc;

/// The service: the API routes, `/docs` and `/openapi.json` (and `/` redirecting there), JSON
/// error answers (404, 405, 413, 414, ...), the `X-Cache` header and a log line per request.
pub fn app(state: AppState) -> Router {
    let (router, api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(create_employee, list_employees))
        .routes(conditional(routes!(get_employee)))
        .routes(routes!(update_employee, delete_employee))
        .routes(routes!(get_status, set_status))
        .routes(routes!(department_employees))
        .routes(routes!(health))
        .routes(routes!(metrics))
        .with_state(state)
        .split_for_parts();
    router
        .route("/", get(edge::index))
        .merge(SwaggerUi::new("/docs").url("/openapi.json", api))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(edge::MAX_BODY_LEN))
        .layer(CacheStatusLayer::new())
        .layer(middleware::from_fn(edge::json_errors))
        .layer(middleware::from_fn(edge::limit_uri))
        .layer(middleware::from_fn(log_request))
}

/// `routes` under [`ConditionalLayer`]: an `ETag` from the cached entries the handler read,
/// and 304 for an `If-None-Match` naming it. Only for handlers whose answer is made of the
/// cached values they read (and the request): `GET /employees/{id}` is one entry.
fn conditional(routes: UtoipaMethodRouter<AppState>) -> UtoipaMethodRouter<AppState> {
    let (schemas, paths, method_router) = routes;
    (schemas, paths, method_router.layer(ConditionalLayer::new()))
}

/// The `X-Cache` response header's schema: what the cached call behind a read did, one of
/// the runtime's [`Outcome`] names.
struct XCache;

impl PartialSchema for XCache {
    fn schema() -> RefOr<Schema> {
        let outcomes = [
            Outcome::Hit,
            Outcome::Coalesced,
            Outcome::Miss,
            Outcome::Refresh,
            Outcome::Bypass,
        ];
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(outcomes.map(Outcome::as_str)))
            .description(Some(
                "`HIT`: from the cache. `COALESCED`: from another request's fill of the same \
                 entry, waited for. `MISS`: read from the database, then cached. `REFRESH`: \
                 read from the database as asked, overwriting the entry. `BYPASS`: the cache \
                 was not used (Redis down, none installed, or an invalidation pending).",
            ))
            .into()
    }
}

impl ToSchema for XCache {}

/// A response whose body is a [`Detail`].
fn detail_response(description: String) -> RefOr<openapi::Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Detail")))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", content)
        .build()
        .into()
}

/// The error answers of every route, documented on each operation: 405 for a method the
/// path does not take, 414 for a path and query over [`edge::MAX_URI_LEN`].
struct AnyRoute;

impl IntoResponses for AnyRoute {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let method = "Method Not Allowed: the path does not take this method (`Allow` lists \
                      those it does)";
        let uri = format!(
            "URI Too Long: the path and query are over {} bytes",
            edge::MAX_URI_LEN
        );
        BTreeMap::from([
            ("405".to_owned(), detail_response(method.to_owned())),
            ("414".to_owned(), detail_response(uri)),
        ])
    }
}

/// The error answer of the routes taking a body: 413 past [`edge::MAX_BODY_LEN`].
struct TakesBody;

impl IntoResponses for TakesBody {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let description = format!(
            "Payload Too Large: the body is over {} bytes",
            edge::MAX_BODY_LEN
        );
        BTreeMap::from([("413".to_owned(), detail_response(description))])
    }
}

/// The error answer of the routes calling the database: a 500 when it fails (logged; the
/// body says no more).
struct UsesDatabase;

impl IntoResponses for UsesDatabase {
    fn responses() -> BTreeMap<String, RefOr<openapi::Response>> {
        let description = "Internal Server Error: the database failed".to_owned();
        BTreeMap::from([("500".to_owned(), detail_response(description))])
    }
}

/// The answer of a cached read: a 404 for `Ok(None)`, a 500 for a database error.
fn found<T>(result: Result<Option<T>, DbError>, id: i64) -> Result<Json<T>, ApiError> {
    result?
        .map(Json)
        .ok_or_else(|| ApiError::employee_not_found(id))
}

/// One employee. Cached for a day as `employee:<id>`.
#[utoipa::path(
    get,
    path = "/employees/{id}",
    tag = "employees",
    params(("id" = i64, Path, description = "Employee id"), Refresh),
    responses(
        (status = 200, description = "The employee", body = Employee,
            headers(("X-Cache" = inline(XCache), description = "HIT, COALESCED, MISS, REFRESH or BYPASS: what the cache did"),
                ("ETag" = String, description = "A weak validator of the cache entry read, for If-None-Match"))),
        (status = 304, description = "Not modified: If-None-Match names the current ETag (no body)"),
        (status = 404, description = "No such employee", body = Detail),
        (status = 422, description = "Invalid id or query", body = ValidationErrors),
        UsesDatabase, AnyRoute,
    )
)]
async fn get_employee(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Refresh(refresh): Refresh,
) -> Result<Json<Employee>, ApiError> {
    found(app.repo.employee(id, refresh).await, id)
}

/// The most ids `GET /employees?ids=..` takes.
const MAX_IDS: usize = 100;

/// Many employees at once, `?ids=1,2,3` (at most 100), in the order asked for; ids that do
/// not exist are left out. One cache round trip for all ids (they share `employee:<id>`
/// with `GET /employees/{id}`), one query for those not cached.
#[utoipa::path(
    get,
    path = "/employees",
    tag = "employees",
    params(("ids" = String, Query, description = "Comma-separated employee ids, at most 100", example = "1,2,3")),
    responses(
        (status = 200, description = "The employees found, in the order asked for", body = Vec<Employee>),
        (status = 422, description = "Missing, invalid or too many ids", body = ValidationErrors),
        UsesDatabase, AnyRoute,
    )
)]
async fn list_employees(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Vec<Employee>>, ApiError> {
    let ids = parse_ids(query.as_deref().unwrap_or_default())?;
    let mut found = app.repo.employees(&ids).await?;
    Ok(Json(ids.iter().filter_map(|id| found.remove(id)).collect()))
}

/// The `ids` of a query string: comma-separated integers, at least one, at most
/// [`MAX_IDS`].
fn parse_ids(query: &str) -> Result<Vec<i64>, ApiError> {
    let invalid = |kind: &str, msg: &str, input: &str| {
        let loc = vec![LocItem::Name("query".into()), LocItem::Name("ids".into())];
        ApiError::Invalid(vec![FieldError::new(loc, kind, msg, Some(input.into()))])
    };
    let Some(text) = form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == "ids")
        .map(|(_, value)| value.into_owned())
    else {
        return Err(invalid("missing", "Field required", ""));
    };
    let ids = text
        .split(',')
        .map(|id| id.trim().parse::<i64>())
        .collect::<Result<Vec<i64>, _>>()
        .map_err(|_| {
            invalid(
                "int_parsing",
                "Input should be comma-separated integers",
                &text,
            )
        })?;
    if ids.len() > MAX_IDS {
        return Err(invalid("too_long", "At most 100 ids", &text));
    }
    Ok(ids)
}

/// An employee's in/out status and when it changed. Cached for 30 seconds as
/// `employee:<id>:status`.
#[utoipa::path(
    get,
    path = "/employees/{id}/status",
    tag = "employees",
    params(("id" = i64, Path, description = "Employee id"), Refresh),
    responses(
        (status = 200, description = "The status", body = Status,
            headers(("X-Cache" = inline(XCache), description = "HIT, COALESCED, MISS, REFRESH or BYPASS: what the cache did"))),
        (status = 404, description = "No such employee", body = Detail),
        (status = 422, description = "Invalid id or query", body = ValidationErrors),
        UsesDatabase, AnyRoute,
    )
)]
async fn get_status(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    Refresh(refresh): Refresh,
) -> Result<Json<Status>, ApiError> {
    found(app.repo.employee_status(id, refresh).await, id)
}

/// A department's employees, by id; an empty list for an unknown department. Cached for
/// five minutes as `department:<name>:employees`.
#[utoipa::path(
    get,
    path = "/departments/{name}/employees",
    tag = "departments",
    params(("name" = String, Path, description = "Department name, such as Engineering"), Refresh),
    responses(
        (status = 200, description = "The department's employees", body = Vec<Employee>,
            headers(("X-Cache" = inline(XCache), description = "HIT, COALESCED, MISS, REFRESH or BYPASS: what the cache did"))),
        (status = 422, description = "Invalid name (not UTF-8) or query", body = ValidationErrors),
        UsesDatabase, AnyRoute,
    )
)]
async fn department_employees(
    State(app): State<AppState>,
    ApiPath(name): ApiPath<String>,
    Refresh(refresh): Refresh,
) -> Result<Json<Vec<Employee>>, ApiError> {
    Ok(Json(app.repo.department_employees(&name, refresh).await?))
}

/// Adds an employee (status `out`). Invalidates its department's list.
#[utoipa::path(
    post,
    path = "/employees",
    tag = "employees",
    request_body = EmployeeInput,
    responses(
        (status = 201, description = "Created", body = Employee,
            headers(("Location" = String, description = "/employees/{id}"))),
        (status = 422, description = "Invalid body: every invalid field", body = ValidationErrors),
        TakesBody, UsesDatabase, AnyRoute,
    )
)]
async fn create_employee(
    State(app): State<AppState>,
    ApiJson(new): ApiJson<EmployeeInput>,
) -> Result<Response, ApiError> {
    let employee = app.repo.create_employee(&new).await?;
    // axum turns the (impossible) invalid header value into a 500, not a panic.
    let location = format!("/employees/{}", employee.id);
    Ok((StatusCode::CREATED, [(LOCATION, location)], Json(employee)).into_response())
}

/// Replaces an employee's fields. Invalidates the employee and the lists of the
/// departments it leaves and joins.
#[utoipa::path(
    put,
    path = "/employees/{id}",
    tag = "employees",
    params(("id" = i64, Path, description = "Employee id")),
    request_body = EmployeeInput,
    responses(
        (status = 200, description = "The updated employee", body = Employee),
        (status = 404, description = "No such employee", body = Detail),
        (status = 422, description = "Invalid id or body: every invalid field", body = ValidationErrors),
        TakesBody, UsesDatabase, AnyRoute,
    )
)]
async fn update_employee(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(changes): ApiJson<EmployeeInput>,
) -> Result<Json<Employee>, ApiError> {
    found(app.repo.update_employee(id, &changes).await, id)
}

/// Deletes an employee. Invalidates everything cached about it and its department's list.
#[utoipa::path(
    delete,
    path = "/employees/{id}",
    tag = "employees",
    params(("id" = i64, Path, description = "Employee id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such employee", body = Detail),
        (status = 422, description = "Invalid id", body = ValidationErrors),
        UsesDatabase, AnyRoute,
    )
)]
async fn delete_employee(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> Result<StatusCode, ApiError> {
    if app.repo.delete_employee(id).await?.is_some() {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::employee_not_found(id))
    }
}

/// Sets an employee's status; `since` changes only when the status does. Invalidates the
/// status entry.
#[utoipa::path(
    put,
    path = "/employees/{id}/status",
    tag = "employees",
    params(("id" = i64, Path, description = "Employee id")),
    request_body = StatusUpdate,
    responses(
        (status = 200, description = "The new status", body = Status),
        (status = 404, description = "No such employee", body = Detail),
        (status = 422, description = "Invalid id or body: every invalid field", body = ValidationErrors),
        TakesBody, UsesDatabase, AnyRoute,
    )
)]
async fn set_status(
    State(app): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(update): ApiJson<StatusUpdate>,
) -> Result<Json<Status>, ApiError> {
    found(app.repo.set_status(id, update.status).await, id)
}

/// The answer of `/health`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`; `degraded` when the cache is not Redis or does not answer (the service still
    /// serves, from the database); `down` when the database does not answer.
    #[schema(example = "ok")]
    pub status: String,
    /// The database's state.
    pub database: Component,
    /// The cache's state.
    pub cache: Component,
}

/// One dependency's state in [`Health`].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Component {
    /// `up` or `down`.
    #[schema(example = "up")]
    pub status: String,
    /// For the cache: `redis` or `memory`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "redis")]
    pub backend: Option<String>,
    /// Why it is down or not what was configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The state of the database and the cache: 200 while the database answers (`degraded`
/// without Redis), 503 when it does not.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Serving (`ok` or `degraded`)", body = Health),
        (status = 503, description = "The database does not answer", body = Health),
        AnyRoute,
    )
)]
async fn health(State(app): State<AppState>) -> (StatusCode, Json<Health>) {
    let db = tokio::time::timeout(Duration::from_secs(2), app.repo.db().ping());
    let (db, cache) = tokio::join!(db, app.repo.cache().ping());
    let database = match db {
        Ok(Ok(())) => Component::up(None),
        Ok(Err(error)) => Component::down(None, error.to_string()),
        Err(_) => Component::down(None, "timed out after 2s".to_owned()),
    };
    let backend = Some(app.repo.cache().backend_kind().to_owned());
    let cache = match (cache, &app.cache_fallback) {
        (Err(error), _) => Component::down(backend, error.to_string()),
        (Ok(()), Some(reason)) => Component {
            error: Some(reason.to_string()),
            ..Component::up(backend)
        },
        (Ok(()), None) => Component::up(backend),
    };
    let (code, status) = if database.status != "up" {
        (StatusCode::SERVICE_UNAVAILABLE, "down")
    } else if cache.error.is_some() {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ok")
    };
    let status = status.to_owned();
    (
        code,
        Json(Health {
            status,
            database,
            cache,
        }),
    )
}

impl Component {
    fn up(backend: Option<String>) -> Component {
        Component {
            status: "up".to_owned(),
            backend,
            error: None,
        }
    }

    fn down(backend: Option<String>, error: String) -> Component {
        Component {
            status: "down".to_owned(),
            backend,
            error: Some(error),
        }
    }
}

/// Prometheus metrics, among them what `redis-cached` records per cached function:
/// `redis_cached_{hits,misses,refreshes,errors,invalidations}_total` and the
/// `redis_cached_{cache,body}_duration_seconds` histograms.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        AnyRoute,
    )
)]
async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let content_type = HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8");
    ([(CONTENT_TYPE, content_type)], app.metrics.render())
}

/// FastAPI's answer to an unknown path.
async fn not_found() -> ApiError {
    ApiError::NotFound("Not Found".to_owned())
}

/// FastAPI's answer to a known path with another method.
async fn method_not_allowed() -> ApiError {
    ApiError::Status(
        StatusCode::METHOD_NOT_ALLOWED,
        "Method Not Allowed".to_owned(),
    )
}

/// Runs the request in a span of its own (`GET /employees/{id}`: the cache's spans nest in
/// it) and logs `GET /employees/7 -> 200 HIT in 1.2ms` (health checks and scrapes at debug
/// level).
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| path.clone(), |matched| matched.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        http.request.method = %method,
        http.route = route,
        url.path = path,
        http.response.status_code = tracing::field::Empty,
    );
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    let x_cache = response
        .headers()
        .get("x-cache")
        .and_then(|value| value.to_str().ok())
        .map_or(String::new(), |value| format!(" {value}"));
    if path == "/health" || path == "/metrics" {
        tracing::debug!("{method} {path} -> {status}{x_cache} in {elapsed:.1?}");
    } else {
        tracing::info!("{method} {path} -> {status}{x_cache} in {elapsed:.1?}");
    }
    response
}
