//! [`FreshRequested`]: whether the client asks for fresh data.

use ::axum::extract::FromRequestParts;
use ::axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, PRAGMA};
use ::axum::http::request::Parts;
use ::axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use ::axum::response::IntoResponse;
use std::convert::Infallible;
use std::fmt;
use std::marker::PhantomData;

/// Extracts whether the client asks for fresh data, the `bool` for
/// `#[redis_cached(refresh = ...)]`: a cached function then skips the lookup, runs its body
/// and overwrites the entry.
///
/// True when the request has
///
/// - `Cache-Control: no-cache` or `no-store`: any directive of a comma-separated list, in
///   any header line, in any case (`Cache-Control: max-age=0, No-Cache`);
/// - `Pragma: no-cache` (what HTTP/1.0 clients send);
/// - with a [`FreshQueryParam`] `F`, the query parameter `F::NAME` set to true. Booleans
///   are read as FastAPI (pydantic) reads them: `true`/`false`, `1`/`0`, `yes`/`no`,
///   `on`/`off`, `t`/`f`, `y`/`n`, in any case. When the parameter appears more than once,
///   the last occurrence decides. Any other value, empty included, is rejected with
///   [`InvalidFreshParam`] (a 400 unless the application maps it).
///
/// `Cache-Control: max-age=0`, which browsers send on an ordinary reload, does not ask
/// for fresh data: only the explicit directives do (browsers send `no-cache` on a forced
/// reload).
///
/// The default `F`, [`HeadersOnly`], reads only the headers and never rejects.
///
/// ```
/// use axum::extract::Path;
/// use redis_cached::axum::{FreshQueryParam, FreshRequested};
///
/// // Headers only:
/// async fn by_header(FreshRequested(fresh, _): FreshRequested) -> String {
///     format!("fresh: {fresh}")
/// }
///
/// // Headers, or `?invalidate_cache=true`:
/// struct InvalidateCache;
/// impl FreshQueryParam for InvalidateCache {
///     const NAME: &'static str = "invalidate_cache";
/// }
///
/// async fn by_query(
///     Path(id): Path<u64>,
///     FreshRequested(fresh, _): FreshRequested<InvalidateCache>,
/// ) -> String {
///     format!("{id}, fresh: {fresh}")
/// }
/// # let _: axum::Router = axum::Router::new()
/// #     .route("/a", axum::routing::get(by_header))
/// #     .route("/b/{id}", axum::routing::get(by_query));
/// ```
///
/// To answer an invalid flag in the application's own error format, wrap the extractor
/// (or use axum-extra's `WithRejection`):
///
/// ```
/// use axum::extract::FromRequestParts;
/// use axum::http::{StatusCode, request::Parts};
/// use redis_cached::axum::{FreshQueryParam, FreshRequested};
///
/// struct InvalidateCache;
/// impl FreshQueryParam for InvalidateCache {
///     const NAME: &'static str = "invalidate_cache";
/// }
///
/// /// [`FreshRequested`], rejecting an invalid flag with a 422 and a JSON body.
/// struct Refresh(bool);
///
/// impl<S: Send + Sync> FromRequestParts<S> for Refresh {
///     type Rejection = (StatusCode, axum::Json<serde_json::Value>);
///
///     async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
///         match FreshRequested::<InvalidateCache>::from_request_parts(parts, state).await {
///             Ok(FreshRequested(fresh, _)) => Ok(Refresh(fresh)),
///             Err(invalid) => Err((
///                 StatusCode::UNPROCESSABLE_ENTITY,
///                 axum::Json(serde_json::json!({
///                     "loc": ["query", invalid.name()],
///                     "input": invalid.value(),
///                 })),
///             )),
///         }
///     }
/// }
/// ```
pub struct FreshRequested<F = HeadersOnly>(
    /// Whether the client asks for fresh data.
    pub bool,
    /// Which query parameter, if any, also asks for it.
    pub PhantomData<F>,
);

impl FreshRequested {
    /// Whether the request's headers ask for fresh data (`Cache-Control: no-cache` or
    /// `no-store`, `Pragma: no-cache`), for use outside an extractor (a middleware).
    ///
    /// ```
    /// use axum::http::{HeaderMap, HeaderValue, header::CACHE_CONTROL};
    /// use redis_cached::axum::FreshRequested;
    ///
    /// let mut headers = HeaderMap::new();
    /// assert!(!FreshRequested::in_headers(&headers));
    /// headers.insert(CACHE_CONTROL, HeaderValue::from_static("max-age=0, NO-CACHE"));
    /// assert!(FreshRequested::in_headers(&headers));
    /// ```
    pub fn in_headers(headers: &HeaderMap) -> bool {
        fresh_in_headers(headers)
    }
}

/// See [`FreshRequested::in_headers`].
fn fresh_in_headers(headers: &HeaderMap) -> bool {
    let has_directive = |name: HeaderName, wanted: &[&[u8]]| {
        headers.get_all(name).iter().any(|value| {
            value
                .as_bytes()
                .split(|&byte| byte == b',')
                .any(|directive| {
                    // A directive may carry an argument (`no-cache="set-cookie"`).
                    let name = directive.split(|&byte| byte == b'=').next().unwrap_or(b"");
                    let name = name.trim_ascii();
                    wanted.iter().any(|want| name.eq_ignore_ascii_case(want))
                })
        })
    };
    has_directive(CACHE_CONTROL, &[b"no-cache", b"no-store"])
        || has_directive(PRAGMA, &[b"no-cache"])
}

// Written out rather than derived: the marker `F` need not be `Clone`, `Debug`, ...
impl<F> Clone for FreshRequested<F> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F> Copy for FreshRequested<F> {}

impl<F> fmt::Debug for FreshRequested<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("FreshRequested").field(&self.0).finish()
    }
}

impl<F> PartialEq for FreshRequested<F> {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl<F> Eq for FreshRequested<F> {}

/// Names the query parameter with which a client asks for fresh data, for
/// [`FreshRequested<F>`](FreshRequested). Implement it on a type of your own:
///
/// ```
/// struct InvalidateCache;
///
/// impl redis_cached::axum::FreshQueryParam for InvalidateCache {
///     const NAME: &'static str = "invalidate_cache";
/// }
/// ```
pub trait FreshQueryParam: Send + Sync + 'static {
    /// The parameter's name, compared exactly (case-sensitive) with each decoded name of
    /// the query string.
    const NAME: &'static str;
}

/// The default of [`FreshRequested`]: no query parameter, only the request headers count.
#[derive(Clone, Copy, Debug)]
pub enum HeadersOnly {}

impl<S: Send + Sync> FromRequestParts<S> for FreshRequested<HeadersOnly> {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Infallible> {
        Ok(FreshRequested(
            fresh_in_headers(&parts.headers),
            PhantomData,
        ))
    }
}

impl<F: FreshQueryParam, S: Send + Sync> FromRequestParts<S> for FreshRequested<F> {
    type Rejection = InvalidFreshParam;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, InvalidFreshParam> {
        let by_query = match query_value(parts.uri.query().unwrap_or(""), F::NAME) {
            None => false,
            Some(value) => parse_bool(&value).ok_or(InvalidFreshParam {
                name: F::NAME,
                value,
            })?,
        };
        let fresh = by_query || fresh_in_headers(&parts.headers);
        Ok(FreshRequested(fresh, PhantomData))
    }
}

/// The decoded value of the last occurrence of `name` in `query`.
fn query_value(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| key == name)
        .last()
        .map(|(_, value)| value.into_owned())
}

/// FastAPI's (pydantic's) booleans, in any case.
fn parse_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 6] = ["true", "1", "yes", "on", "t", "y"];
    const FALSE: [&str; 6] = ["false", "0", "no", "off", "f", "n"];
    if TRUE.iter().any(|word| text.eq_ignore_ascii_case(word)) {
        Some(true)
    } else if FALSE.iter().any(|word| text.eq_ignore_ascii_case(word)) {
        Some(false)
    } else {
        None
    }
}

/// The rejection of [`FreshRequested`]: its query parameter has a value that is not a
/// boolean (`?invalidate_cache=maybe`). As a response, a `400 Bad Request` with a plain-text
/// message naming the parameter and the value.
///
/// ```
/// use axum::extract::FromRequestParts;
/// use axum::http::{Request, StatusCode};
/// use axum::response::IntoResponse;
/// use redis_cached::axum::{FreshQueryParam, FreshRequested};
///
/// struct InvalidateCache;
/// impl FreshQueryParam for InvalidateCache {
///     const NAME: &'static str = "invalidate_cache";
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let request = Request::get("/users/1?invalidate_cache=maybe").body(()).unwrap();
/// let (mut parts, ()) = request.into_parts();
/// let invalid = FreshRequested::<InvalidateCache>::from_request_parts(&mut parts, &())
///     .await
///     .unwrap_err();
/// assert_eq!((invalid.name(), invalid.value()), ("invalidate_cache", "maybe"));
/// assert_eq!(invalid.into_response().status(), StatusCode::BAD_REQUEST);
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidFreshParam {
    name: &'static str,
    value: String,
}

impl InvalidFreshParam {
    /// The query parameter's name ([`FreshQueryParam::NAME`]).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value the client sent, percent-decoded (invalid UTF-8 replaced by U+FFFD).
    pub fn value(&self) -> &str {
        &self.value
    }
}

impl fmt::Display for InvalidFreshParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid query parameter `{}`: expected a boolean (true/false, 1/0, yes/no, \
             on/off), got {:?}",
            self.name, self.value
        )
    }
}

impl std::error::Error for InvalidFreshParam {}

impl IntoResponse for InvalidFreshParam {
    fn into_response(self) -> ::axum::response::Response {
        let content_type = HeaderValue::from_static("text/plain; charset=utf-8");
        (
            StatusCode::BAD_REQUEST,
            [(CONTENT_TYPE, content_type)],
            self.to_string(),
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_read_as_fastapi_reads_them() {
        for text in ["true", "TRUE", "1", "yes", "On", "t", "Y"] {
            assert_eq!(parse_bool(text), Some(true), "{text}");
        }
        for text in ["false", "False", "0", "no", "OFF", "f", "n"] {
            assert_eq!(parse_bool(text), Some(false), "{text}");
        }
        for text in ["", "maybe", "2", "tru", " true"] {
            assert_eq!(parse_bool(text), None, "{text:?}");
        }
    }

    #[test]
    fn the_last_occurrence_of_the_parameter_decides() {
        assert_eq!(
            query_value("a=1&flag=no&flag=yes", "flag").as_deref(),
            Some("yes")
        );
        assert_eq!(query_value("fla%67=on", "flag").as_deref(), Some("on"));
        assert_eq!(query_value("flag", "flag").as_deref(), Some(""));
        assert_eq!(query_value("Flag=1", "flag"), None);
    }

    #[test]
    fn header_directives_in_lists_and_any_case() {
        let fresh = |pairs: &[(HeaderName, &'static str)]| {
            let mut headers = HeaderMap::new();
            for (name, value) in pairs {
                headers.append(name, HeaderValue::from_static(value));
            }
            fresh_in_headers(&headers)
        };
        assert!(fresh(&[(CACHE_CONTROL, "no-cache")]));
        assert!(fresh(&[(CACHE_CONTROL, "max-age=0 , NO-STORE")]));
        assert!(fresh(&[
            (CACHE_CONTROL, "max-age=0"),
            (CACHE_CONTROL, "no-cache")
        ]));
        assert!(fresh(&[(CACHE_CONTROL, "no-cache=\"set-cookie\"")]));
        assert!(fresh(&[(PRAGMA, "No-Cache")]));
        assert!(!fresh(&[]));
        assert!(!fresh(&[(CACHE_CONTROL, "max-age=0, no-transform")]));
        assert!(!fresh(&[(PRAGMA, "no-store")]));
        assert!(!fresh(&[(CACHE_CONTROL, "x-no-cache")]));
    }
}
