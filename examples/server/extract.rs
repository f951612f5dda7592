//! The example's own HTTP plumbing: FastAPI-style error bodies, and extractors whose
//! rejections become such bodies. (`X-Cache` and the fresh-data request come from
//! `redis_cached::axum`.)
//!
//! Invalid input is a 422 naming every invalid field, as FastAPI does:
//!
//! ```json
//! {"detail": [{"type": "int_parsing", "loc": ["path", "id"],
//!              "msg": "Input should be a valid integer, unable to parse string as an integer",
//!              "input": "abc"}]}
//! ```
//!
//! and a missing resource a 404 such as `{"detail": "Employee 5 not found"}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::path::ErrorKind;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Path, RawPathParams, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use redis_cached::axum::{FreshQueryParam, FreshRequested};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, ToSchema};

/// An error answer: 422 for invalid input, 404 for a missing resource, 500 otherwise.
#[derive(Debug)]
pub enum ApiError {
    /// Invalid input, one entry per problem.
    Invalid(Vec<FieldError>),
    /// A missing resource, with its description (`Employee 5 not found`).
    NotFound(String),
    /// Any other status, with a message for the client.
    Status(StatusCode, String),
    /// A database failure: logged, and answered with a bare 500.
    Database(sqlx::Error),
}

impl ApiError {
    /// The 404 for an employee id.
    pub fn employee_not_found(id: i64) -> ApiError {
        ApiError::NotFound(format!("Employee {id} not found"))
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Database(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::Invalid(detail) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(ValidationErrors { detail }),
            )
                .into_response(),
            ApiError::NotFound(detail) => {
                (StatusCode::NOT_FOUND, Json(Detail { detail })).into_response()
            }
            ApiError::Status(status, detail) => (status, Json(Detail { detail })).into_response(),
            ApiError::Database(error) => {
                tracing::error!(%error, "database call failed");
                let detail = "Internal Server Error".to_owned();
                (StatusCode::INTERNAL_SERVER_ERROR, Json(Detail { detail })).into_response()
            }
        }
    }
}

/// The body of a 404 or 500: `{"detail": "Employee 5 not found"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Detail {
    /// What went wrong.
    #[schema(example = "Employee 5 not found")]
    pub detail: String,
}

/// The body of a 422: one entry per invalid field.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ValidationErrors {
    /// The problems found.
    pub detail: Vec<FieldError>,
}

/// One invalid input, as FastAPI (pydantic) reports it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FieldError {
    /// A machine-readable kind: `missing`, `int_parsing`, `string_too_short`, ...
    #[serde(rename = "type")]
    #[schema(example = "missing")]
    pub kind: String,
    /// Where: `path`, `query`, `header` or `body`, then the field's path.
    #[schema(example = json!(["body", "name"]))]
    pub loc: Vec<LocItem>,
    /// What is wrong, for people.
    #[schema(example = "Field required")]
    pub msg: String,
    /// The offending value, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
}

/// One step of [`FieldError::loc`]: a field name or an array index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum LocItem {
    /// A location (`body`) or a field name.
    Name(String),
    /// An index into an array.
    Index(usize),
}

impl FieldError {
    /// An error at `loc`.
    pub fn new(loc: Vec<LocItem>, kind: &str, msg: &str, input: Option<Value>) -> FieldError {
        FieldError {
            kind: kind.to_owned(),
            loc,
            msg: msg.to_owned(),
            input,
        }
    }

    /// An error in a top-level field of the JSON body.
    pub fn body(field: &str, kind: &str, msg: &str, input: &str) -> FieldError {
        FieldError::new(
            vec![name("body"), name(field)],
            kind,
            msg,
            Some(Value::from(input)),
        )
    }
}

/// A [`LocItem::Name`].
fn name(text: &str) -> LocItem {
    LocItem::Name(text.to_owned())
}

/// A type read from a JSON object body field by field, so that one 422 lists every invalid
/// field at once, as FastAPI (pydantic) does, rather than the first one serde meets.
pub trait FromBody: Sized {
    /// Reads every field from `body` (each problem recorded there) and returns the value
    /// when all of them were valid.
    fn from_body(body: &mut BodyFields) -> Option<Self>;
}

/// The fields of a JSON object body, and the problems found while reading them.
pub struct BodyFields {
    object: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl BodyFields {
    /// The field `field` as a `T`; `None`, with a `missing` (or type) error recorded at
    /// `["body", field, ...]`, when it is absent (or not a `T`). Each field is read once.
    pub fn required<T: DeserializeOwned>(&mut self, field: &str) -> Option<T> {
        let loc = vec![name("body"), name(field)];
        let Some(value) = self.object.remove(field) else {
            self.reject(FieldError::new(loc, "missing", "Field required", None));
            return None;
        };
        match serde_path_to_error::deserialize(value) {
            Ok(value) => Some(value),
            Err(error) => {
                self.reject(type_error(loc, &error));
                None
            }
        }
    }

    /// Records a problem found by a check beyond the type (a blank name, a malformed email).
    pub fn reject(&mut self, error: FieldError) {
        self.errors.push(error);
    }
}

/// `axum::extract::Path`, rejecting with a 422 that names the parameter.
pub struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => {
                let names: Vec<String> = RawPathParams::from_request_parts(parts, state)
                    .await
                    .map(|params| params.iter().map(|(key, _)| key.to_owned()).collect())
                    .unwrap_or_default();
                let raw = |key: &str| {
                    let route = parts.extensions.get::<MatchedPath>()?.as_str();
                    raw_segment(route, parts.uri.path(), key).map(str::to_owned)
                };
                Err(path_error(rejection, &names, raw))
            }
        }
    }
}

/// The segment of `path` (as sent, percent-encoded) where `route` has the parameter `{key}`.
fn raw_segment<'a>(route: &str, path: &'a str, key: &str) -> Option<&'a str> {
    let placeholder = format!("{{{key}}}");
    route
        .split('/')
        .zip(path.split('/'))
        .find(|(pattern, _)| *pattern == placeholder)
        .map(|(_, segment)| segment)
}

/// Maps a path rejection to a 422 at `["path", <name>]`; `raw` gives a parameter's segment
/// as sent, for one that is not UTF-8 once decoded (`%FF`).
fn path_error(
    rejection: PathRejection,
    names: &[String],
    raw: impl FnOnce(&str) -> Option<String>,
) -> ApiError {
    let PathRejection::FailedToDeserializePathParams(error) = rejection else {
        return ApiError::Status(rejection.status(), rejection.body_text());
    };
    let (key, value, expected) = match error.into_kind() {
        // As pydantic says of bytes that are not UTF-8.
        ErrorKind::InvalidUtf8InPathParam { key } => {
            let input = raw(&key).map(Value::from);
            return ApiError::Invalid(vec![FieldError::new(
                vec![name("path"), name(&key)],
                "string_unicode",
                "Input should be a valid string, unable to parse raw data as a unicode string",
                input,
            )]);
        }
        ErrorKind::ParseErrorAtKey {
            key,
            value,
            expected_type,
        } => (Some(key), value, expected_type),
        ErrorKind::ParseErrorAtIndex {
            index,
            value,
            expected_type,
        } => (names.get(index).cloned(), value, expected_type),
        // A single parameter, parsed as a whole: its name is the only one.
        ErrorKind::ParseError {
            value,
            expected_type,
        } => (names.first().cloned(), value, expected_type),
        other => {
            let loc = vec![name("path")];
            return ApiError::Invalid(vec![FieldError::new(
                loc,
                "value_error",
                &other.to_string(),
                None,
            )]);
        }
    };
    let (kind, msg) = match expected {
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "u8" | "u16" | "u32" | "u64" | "u128"
        | "usize" => (
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer".to_owned(),
        ),
        "bool" => (
            "bool_parsing",
            "Input should be a valid boolean, unable to interpret input".to_owned(),
        ),
        other => ("value_error", format!("Input should be a valid {other}")),
    };
    let mut loc = vec![name("path")];
    loc.extend(key.map(LocItem::Name));
    ApiError::Invalid(vec![FieldError::new(
        loc,
        kind,
        &msg,
        Some(Value::from(value)),
    )])
}

/// A JSON object body read [field by field](FromBody); invalid input is a 422 naming every
/// invalid field (`["body", "email"]`, ...).
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: FromBody,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        // A missing Content-Type is read as JSON; any other type is refused.
        if let Some(content_type) = request.headers().get(CONTENT_TYPE) {
            let essence = content_type
                .to_str()
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("");
            let essence = essence.trim().to_ascii_lowercase();
            if essence != "application/json" && !essence.ends_with("+json") {
                let msg = "Content-Type should be application/json";
                let input = Value::from(content_type.to_str().unwrap_or(""));
                let error = FieldError::new(
                    vec![name("header"), name("content-type")],
                    "content_type",
                    msg,
                    Some(input),
                );
                return Err(ApiError::Invalid(vec![error]));
            }
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::Status(rejection.status(), rejection.body_text()))?;
        let mut body = BodyFields {
            object: parse_object(&bytes)?,
            errors: Vec::new(),
        };
        let value = T::from_body(&mut body);
        match value {
            Some(value) if body.errors.is_empty() => Ok(ApiJson(value)),
            // A `from_body` that gives up without saying why still answers a 422.
            None if body.errors.is_empty() => Err(ApiError::Invalid(vec![FieldError::new(
                vec![name("body")],
                "value_error",
                "Invalid body",
                None,
            )])),
            _ => Err(ApiError::Invalid(body.errors)),
        }
    }
}

/// Parses a body that must be a JSON object.
fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        let error = FieldError::new(vec![name("body")], "missing", "Field required", None);
        return Err(ApiError::Invalid(vec![error]));
    }
    match serde_json::from_slice(bytes).map_err(|error| json_invalid(&error))? {
        Value::Object(object) => Ok(object),
        value => {
            let msg = "Input should be a valid dictionary or object to extract fields from";
            let error = FieldError::new(
                vec![name("body")],
                "model_attributes_type",
                msg,
                Some(value),
            );
            Err(ApiError::Invalid(vec![error]))
        }
    }
}

/// The [`FieldError`] for a field at `loc` that serde could not read, at the failing part of
/// it (`loc` then serde's path).
fn type_error(
    mut loc: Vec<LocItem>,
    error: &serde_path_to_error::Error<serde_json::Error>,
) -> FieldError {
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => loc.push(name(key)),
            serde_path_to_error::Segment::Seq { index } => loc.push(LocItem::Index(*index)),
            serde_path_to_error::Segment::Enum { .. } | serde_path_to_error::Segment::Unknown => {}
        }
    }
    let message = error.inner().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        loc.push(name(field));
        FieldError::new(loc, "missing", "Field required", None)
    } else if message.starts_with("unknown variant") {
        FieldError::new(loc, "enum", &capitalize(&message), None)
    } else if message.contains("expected a string") {
        FieldError::new(loc, "string_type", "Input should be a valid string", None)
    } else {
        FieldError::new(loc, "type_error", &capitalize(&message), None)
    }
}

/// The 422 for a body that is not JSON.
fn json_invalid(error: &serde_json::Error) -> ApiError {
    let msg = format!("JSON decode error: {error}");
    ApiError::Invalid(vec![FieldError::new(
        vec![name("body")],
        "json_invalid",
        &msg,
        None,
    )])
}

/// `text` with its first letter upper-case, as messages start.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_uppercase().chain(chars).collect()
    })
}

/// `?invalidate_cache=true` asks for fresh data, as `Cache-Control: no-cache` does (the
/// seeds' FastAPI parameter).
pub struct InvalidateCache;

impl FreshQueryParam for InvalidateCache {
    const NAME: &'static str = "invalidate_cache";
}

/// Whether the client asks for fresh data, for the cached reads' `refresh`:
/// [`FreshRequested`] with `?invalidate_cache=<bool>`, whose invalid values are a 422 at
/// `["query", "invalidate_cache"]`.
#[derive(Clone, Copy, Debug)]
pub struct Refresh(pub bool);

impl<S: Send + Sync> FromRequestParts<S> for Refresh {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match FreshRequested::<InvalidateCache>::from_request_parts(parts, state).await {
            Ok(FreshRequested(fresh, _)) => Ok(Refresh(fresh)),
            Err(invalid) => Err(ApiError::Invalid(vec![FieldError::new(
                vec![name("query"), name(invalid.name())],
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
                Some(Value::from(invalid.value())),
            )])),
        }
    }
}

/// Documents [`Refresh`]'s query parameter and header in the OpenAPI description.
impl IntoParams for Refresh {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let boolean = ObjectBuilder::new().schema_type(Type::Boolean).build();
        let string = ObjectBuilder::new().schema_type(Type::String).build();
        vec![
            ParameterBuilder::new()
                .name(InvalidateCache::NAME)
                .parameter_in(ParameterIn::Query)
                .description(Some(
                    "`true`: skip the cache, read the database and overwrite the cached entry",
                ))
                .schema(Some(boolean))
                .build(),
            ParameterBuilder::new()
                .name("Cache-Control")
                .parameter_in(ParameterIn::Header)
                .description(Some(
                    "`no-cache` or `no-store` (as `Pragma: no-cache`): the same as \
                     `invalidate_cache=true`",
                ))
                .schema(Some(string))
                .build(),
        ]
    }
}
