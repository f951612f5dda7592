//! `redis_cached::axum` (feature `axum`): a real axum `Router` served over HTTP on a free
//! port, caching in the harness's redis-server. `CacheStatusLayer` sets `X-Cache` from the
//! cached calls each request made; `FreshRequested` turns `Cache-Control`, `Pragma` and an
//! opt-in query flag into `refresh`.
#![cfg(feature = "axum")]

mod harness;
mod support;

use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use redis_cached::axum::{
    CacheStatusLayer, ConditionalLayer, FreshQueryParam, FreshRequested, InvalidFreshParam,
};
use redis_cached::{Cache, Outcome, redis_cached};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

// ---- The application under test ---------------------------------------------------------

/// `?invalidate_cache=true` asks for fresh data.
struct InvalidateCache;

impl FreshQueryParam for InvalidateCache {
    const NAME: &'static str = "invalidate_cache";
}

#[derive(Clone)]
struct App {
    cache: Cache,
    /// How many times a cached body ran.
    runs: Arc<AtomicUsize>,
}

#[redis_cached(key = "user:<id>", ttl = 60, refresh = refresh, cache = cache)]
async fn user_name(cache: &Cache, runs: &AtomicUsize, id: u64, refresh: bool) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("user {id}")
}

#[redis_cached(key = "team:<id>", ttl = 60, cache = cache)]
async fn team_name(cache: &Cache, runs: &AtomicUsize, id: u64) -> String {
    runs.fetch_add(1, Ordering::SeqCst);
    format!("team {id}")
}

/// One cached read, refreshed on request; an invalid flag is the default 400.
async fn get_user(
    State(app): State<App>,
    Path(id): Path<u64>,
    FreshRequested(refresh, _): FreshRequested<InvalidateCache>,
) -> Json<String> {
    Json(user_name(&app.cache, &app.runs, id, refresh).await)
}

/// Headers only: the query flag means nothing here.
async fn get_user_by_headers(
    State(app): State<App>,
    Path(id): Path<u64>,
    FreshRequested(refresh, _): FreshRequested,
) -> Json<String> {
    Json(user_name(&app.cache, &app.runs, id, refresh).await)
}

/// Two cached calls: the user, then the team.
async fn get_user_then_team(State(app): State<App>, Path(id): Path<u64>) -> Json<[String; 2]> {
    let user = user_name(&app.cache, &app.runs, id, false).await;
    let team = team_name(&app.cache, &app.runs, id).await;
    Json([user, team])
}

/// A user whose name changes with each body run: `user <id> v<run>`.
#[redis_cached(key = "versioned:<id>", ttl = 60, cache = cache)]
async fn versioned_user(cache: &Cache, runs: &AtomicUsize, id: u64) -> String {
    let run = runs.fetch_add(1, Ordering::SeqCst);
    format!("user {id} v{run}")
}

/// The versioned user (under [`ConditionalLayer`]).
async fn get_versioned_user(State(app): State<App>, Path(id): Path<u64>) -> Json<String> {
    Json(versioned_user(&app.cache, &app.runs, id).await)
}

/// The same cached call twice in one request: the layer's memo answers the second.
async fn get_user_twice(State(app): State<App>, Path(id): Path<u64>) -> Json<[String; 2]> {
    let first = user_name(&app.cache, &app.runs, id, false).await;
    let second = user_name(&app.cache, &app.runs, id, false).await;
    Json([first, second])
}

/// No cached call.
async fn version() -> &'static str {
    "1.0"
}

/// A cached call, but the handler sets the header itself.
async fn own_header(State(app): State<App>, Path(id): Path<u64>) -> Response {
    let name = user_name(&app.cache, &app.runs, id, false).await;
    ([("x-cache", "CUSTOM")], name).into_response()
}

/// [`FreshRequested`] with the application's own rejection: a 422 with a JSON body.
struct Refresh(bool);

impl<S: Send + Sync> FromRequestParts<S> for Refresh {
    type Rejection = (StatusCode, Json<serde_json::Value>);

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        FreshRequested::<InvalidateCache>::from_request_parts(parts, state)
            .await
            .map(|FreshRequested(fresh, _)| Refresh(fresh))
            .map_err(|invalid: InvalidFreshParam| {
                let body =
                    serde_json::json!({"loc": ["query", invalid.name()], "input": invalid.value()});
                (StatusCode::UNPROCESSABLE_ENTITY, Json(body))
            })
    }
}

async fn get_user_422(
    State(app): State<App>,
    Path(id): Path<u64>,
    Refresh(refresh): Refresh,
) -> Json<String> {
    Json(user_name(&app.cache, &app.runs, id, refresh).await)
}

/// Copies the [`Outcome`] the layer put in the response's extensions to `x-outcome`, as
/// a logging middleware outside the layer would read it.
async fn outcome_seen_outside(mut response: Response) -> Response {
    let seen = response
        .extensions()
        .get::<Outcome>()
        .map(|outcome| outcome.as_str());
    if let Some(seen) = seen {
        response
            .headers_mut()
            .insert("x-outcome", HeaderValue::from_static(seen));
    }
    response
}

/// Serves the application on a free port; returns its base URL and its state.
async fn serve(test: &str) -> (String, App) {
    serve_with(support::redis_cache(test).await, CacheStatusLayer::new()).await
}

/// [`serve`] on `cache`, with `layer`.
async fn serve_with(cache: Cache, layer: CacheStatusLayer) -> (String, App) {
    let app = App {
        cache,
        runs: Arc::new(AtomicUsize::new(0)),
    };
    let conditional = || get(get_versioned_user).layer(ConditionalLayer::new());
    let router = Router::new()
        .route("/versioned/{id}", conditional())
        .route(
            "/versioned/{id}/max-age",
            get(get_versioned_user).layer(ConditionalLayer::new().max_age(true)),
        )
        .route(
            "/versioned/{id}/post",
            post(get_versioned_user).layer(ConditionalLayer::new()),
        )
        .route("/users/{id}/twice", get(get_user_twice))
        .route("/users/{id}", get(get_user))
        .route("/by-headers/users/{id}", get(get_user_by_headers))
        .route("/users/{id}/with-team", get(get_user_then_team))
        .route("/users/{id}/own-header", get(own_header))
        .route("/strict/users/{id}", get(get_user_422))
        .route("/version", get(version))
        .with_state(app.clone())
        .layer(layer)
        .layer(axum::middleware::map_response(outcome_seen_outside));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let address = listener.local_addr().expect("a bound address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    (format!("http://{address}"), app)
}

// ---- HTTP helpers ------------------------------------------------------------------------

/// One answer: status, `X-Cache` (`(none)` when absent), `x-outcome` and the body.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    x_cache: String,
    x_outcome: Option<String>,
    etag: Option<String>,
    cache_control: Option<String>,
    body: String,
}

async fn fetch_with(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("a client");
    let mut request = client.get(format!("{base}{path}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the server answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let status = StatusCode::from_u16(response.status().as_u16()).expect("a status");
    let (x_cache, x_outcome, etag) = (header("x-cache"), header("x-outcome"), header("etag"));
    let cache_control = header("cache-control");
    let body = response.text().await.expect("a body");
    Reply {
        status,
        x_cache: x_cache.unwrap_or_else(|| "(none)".to_owned()),
        x_outcome,
        etag,
        cache_control,
        body,
    }
}

async fn fetch(base: &str, path: &str) -> Reply {
    fetch_with(base, path, &[]).await
}

fn runs(app: &App) -> usize {
    app.runs.load(Ordering::SeqCst)
}

// ---- Tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_cache_is_miss_then_hit() {
    let (base, app) = serve("axum_miss_then_hit").await;
    let first = fetch(&base, "/users/1").await;
    assert_eq!(
        (first.status, first.x_cache.as_str(), first.body.as_str()),
        (StatusCode::OK, "MISS", "\"user 1\"")
    );
    let second = fetch(&base, "/users/1").await;
    assert_eq!(
        (second.status, second.x_cache.as_str(), second.body.as_str()),
        (StatusCode::OK, "HIT", "\"user 1\"")
    );
    assert_eq!(runs(&app), 1);
    // Outer middleware sees the outcome in the response's extensions.
    assert_eq!(second.x_outcome.as_deref(), Some("HIT"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_way_of_asking_for_fresh_data_refreshes() {
    let (base, app) = serve("axum_fresh").await;
    assert_eq!(fetch(&base, "/users/2").await.x_cache, "MISS");
    let ways: [(&str, &[(&str, &str)]); 9] = [
        ("/users/2", &[("cache-control", "no-cache")]),
        ("/users/2", &[("cache-control", "no-store")]),
        ("/users/2", &[("cache-control", "max-age=0, No-Cache")]),
        ("/users/2", &[("pragma", "no-cache")]),
        ("/users/2?invalidate_cache=true", &[]),
        ("/users/2?invalidate_cache=1", &[]),
        ("/users/2?invalidate_cache=YES", &[]),
        ("/users/2?invalidate_cache=on", &[]),
        // The header asks even when the flag says no.
        (
            "/users/2?invalidate_cache=false",
            &[("cache-control", "no-cache")],
        ),
    ];
    for (n, (path, headers)) in ways.iter().enumerate() {
        let reply = fetch_with(&base, path, headers).await;
        assert_eq!(
            (reply.status, reply.x_cache.as_str()),
            (StatusCode::OK, "REFRESH"),
            "{path} {headers:?}"
        );
        assert_eq!(runs(&app), n + 2, "the body ran again: {path} {headers:?}");
    }
    // Neither asks: a hit.
    let not_asking: [(&str, &[(&str, &str)]); 4] = [
        ("/users/2", &[]),
        ("/users/2?invalidate_cache=false", &[]),
        (
            "/users/2?invalidate_cache=off",
            &[("cache-control", "max-age=0")],
        ),
        ("/users/2?other=true", &[("pragma", "public")]),
    ];
    for (path, headers) in not_asking {
        assert_eq!(
            fetch_with(&base, path, headers).await.x_cache,
            "HIT",
            "{path} {headers:?}"
        );
    }
    // Without a query parameter, only the headers count.
    assert_eq!(
        fetch(&base, "/by-headers/users/2?invalidate_cache=true")
            .await
            .x_cache,
        "HIT"
    );
    let by_header = fetch_with(
        &base,
        "/by-headers/users/2",
        &[("cache-control", "no-cache")],
    );
    assert_eq!(by_header.await.x_cache, "REFRESH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_flag_is_rejected() {
    let (base, app) = serve("axum_invalid_flag").await;
    for value in ["maybe", "", "2"] {
        let reply = fetch(&base, &format!("/users/3?invalidate_cache={value}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{value:?}");
        assert!(reply.body.contains("invalidate_cache"), "{}", reply.body);
        assert_eq!(reply.x_cache, "(none)", "the handler did not run");
    }
    // The application's own rejection.
    let reply = fetch(&base, "/strict/users/3?invalidate_cache=maybe").await;
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
    assert_eq!(
        body,
        serde_json::json!({"loc": ["query", "invalidate_cache"], "input": "maybe"})
    );
    assert_eq!(runs(&app), 0);
    assert_eq!(
        fetch(&base, "/strict/users/3?invalidate_cache=no")
            .await
            .x_cache,
        "MISS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_header_without_a_cached_call() {
    let (base, _app) = serve("axum_no_call").await;
    let reply = fetch(&base, "/version").await;
    assert_eq!(
        (reply.status, reply.x_cache.as_str(), reply.x_outcome),
        (StatusCode::OK, "(none)", None)
    );
    // Nor on axum's own 404.
    assert_eq!(fetch(&base, "/nowhere").await.x_cache, "(none)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_cached_calls_report_the_last() {
    // `with_outcome` reports the last cached call that completed.
    let (base, app) = serve("axum_two_calls").await;
    // The user is cached, the team is not: the user HIT, then the team MISS.
    assert_eq!(fetch(&base, "/users/4").await.x_cache, "MISS");
    assert_eq!(fetch(&base, "/users/4/with-team").await.x_cache, "MISS");
    assert_eq!(fetch(&base, "/users/4/with-team").await.x_cache, "HIT");
    // The team is cached, the user is not: the user MISS, then the team HIT.
    assert_eq!(fetch(&base, "/users/5/with-team").await.x_cache, "MISS");
    app.cache
        .invalidate(&["user:5"])
        .await
        .expect("Redis answers");
    assert_eq!(fetch(&base, "/users/5/with-team").await.x_cache, "HIT");
    assert_eq!(
        fetch(&base, "/users/5").await.x_cache,
        "HIT",
        "the user was filled"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handlers_own_header_is_kept() {
    let (base, _app) = serve("axum_own_header").await;
    let reply = fetch(&base, "/users/6/own-header").await;
    assert_eq!(
        (reply.x_cache.as_str(), reply.x_outcome.as_deref()),
        ("CUSTOM", Some("MISS"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_each_report_their_own_calls() {
    let (base, _app) = serve("axum_concurrent").await;
    for id in (100..140).step_by(2) {
        assert_eq!(fetch(&base, &format!("/users/{id}")).await.x_cache, "MISS");
    }
    // Even ids are cached, odd ones are not; all requests at once.
    let replies = (100..140).map(|id| {
        let base = base.clone();
        tokio::spawn(async move { (id, fetch(&base, &format!("/users/{id}")).await) })
    });
    for reply in replies {
        let (id, reply) = reply.await.expect("the request task");
        let expected = if id % 2 == 0 { "HIT" } else { "MISS" };
        assert_eq!(reply.x_cache, expected, "/users/{id}");
    }
}

/// Lookups (`SET .. NX GET`, or the script standing in for it before Redis 7.0) `server`
/// ran during `op`.
async fn lookups_during(server: &harness::RedisServer, op: impl Future<Output = ()>) -> u64 {
    let mut admin = server.connection().await;
    let lookup = harness::lookup_command(&mut admin).await;
    let before = harness::command_calls_on(&mut admin).await;
    op.await;
    let after = harness::command_calls_on(&mut admin).await;
    after.get(lookup).unwrap_or(&0) - before.get(lookup).unwrap_or(&0)
}

/// The layer's memo: a handler reading one key twice makes one lookup; with `memo(false)`
/// two. Mutation: the layer not opening the scope (`with_outcome` alone): two lookups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_reading_a_key_twice_makes_one_round_trip() {
    let server = harness::RedisServer::start();
    for (memo, expected) in [(true, 1), (false, 2)] {
        let cache = Cache::connect(&server.url()).await.expect("connects");
        let (base, _) = serve_with(cache, CacheStatusLayer::new().memo(memo)).await;
        // Fills the entry (the first time round), so that the measured calls are hits.
        fetch(&base, "/users/1/twice").await;
        let lookups = lookups_during(&server, async {
            let reply = fetch(&base, "/users/1/twice").await;
            assert_eq!(reply.body, r#"["user 1","user 1"]"#);
        })
        .await;
        assert_eq!(lookups, expected, "memo({memo})");
    }
}

/// A first GET gets 200 and a weak ETag; the same GET naming it in `If-None-Match` a 304
/// with no body (and the ETag); after an invalidation and a new value, a 200 and another
/// ETag. Mutations: the layer not matching `If-None-Match` (a 200 where the 304 is); the
/// ETag not set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn if_none_match_with_the_etag_is_a_304_until_the_entry_changes() {
    let (base, app) = serve("axum_etag").await;
    let first = fetch(&base, "/versioned/1").await;
    assert_eq!(
        (first.status, first.body.as_str()),
        (StatusCode::OK, "\"user 1 v0\"")
    );
    let etag = first.etag.expect("an ETag");
    assert!(etag.starts_with("W/\""), "{etag}");

    let again = fetch_with(&base, "/versioned/1", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (again.status, again.body.as_str(), again.etag.as_deref()),
        (StatusCode::NOT_MODIFIED, "", Some(etag.as_str()))
    );
    assert_eq!(again.x_cache, "HIT");
    // In a list, or as `*`; another tag is no match.
    let listed = format!("\"other\", {etag}");
    let listed = fetch_with(&base, "/versioned/1", &[("if-none-match", &listed)]).await;
    assert_eq!(listed.status, StatusCode::NOT_MODIFIED);
    let any = fetch_with(&base, "/versioned/1", &[("if-none-match", "*")]).await;
    assert_eq!(any.status, StatusCode::NOT_MODIFIED);
    let other = fetch_with(&base, "/versioned/1", &[("if-none-match", "W/\"other\"")]).await;
    assert_eq!(
        (other.status, other.etag.as_deref()),
        (StatusCode::OK, Some(etag.as_str()))
    );

    app.cache
        .invalidate(&["versioned:1"])
        .await
        .expect("Redis answers");
    let changed = fetch_with(&base, "/versioned/1", &[("if-none-match", &etag)]).await;
    assert_eq!(
        (changed.status, changed.body.as_str()),
        (StatusCode::OK, "\"user 1 v1\"")
    );
    let new_etag = changed.etag.expect("an ETag");
    assert_ne!(new_etag, etag);
    let revalidated = fetch_with(&base, "/versioned/1", &[("if-none-match", &new_etag)]).await;
    assert_eq!(revalidated.status, StatusCode::NOT_MODIFIED);
    assert_eq!(runs(&app), 2);
}

/// Only GET and HEAD: a HEAD is answered 304 too, a POST never carries the tag. Only routes
/// under the layer. Mutation: the method check removed (the POST gets an ETag).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_gets_and_heads_of_layered_routes_are_conditional() {
    let (base, _app) = serve("axum_etag_methods").await;
    let etag = fetch(&base, "/versioned/2").await.etag.expect("an ETag");
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a client");
    let head = client
        .head(format!("{base}/versioned/2"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(head.status().as_u16(), 304);
    let post = client
        .post(format!("{base}/versioned/2/post"))
        .header("if-none-match", &etag)
        .send()
        .await
        .expect("the server answers");
    assert_eq!(post.status().as_u16(), 200);
    assert_eq!(post.headers().get("etag"), None);
    // `/users/{id}` reads a cached entry but is not under the layer.
    assert_eq!(fetch(&base, "/users/2").await.etag, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_max_age_the_response_says_how_long_its_entries_stay() {
    let (base, _) = serve("max-age").await;
    let max_age = |reply: &Reply| -> u64 {
        let value = reply
            .cache_control
            .as_deref()
            .expect("a Cache-Control header");
        let seconds = value.strip_prefix("max-age=").expect("max-age=<seconds>");
        seconds.parse().expect("whole seconds")
    };
    // A miss: the TTL it stored (60 s); a hit: what Redis says is left.
    let miss = fetch(&base, "/versioned/1/max-age").await;
    assert_eq!(miss.x_cache, "MISS");
    assert!(
        (58..=60).contains(&max_age(&miss)),
        "{:?}",
        miss.cache_control
    );
    let hit = fetch(&base, "/versioned/1/max-age").await;
    assert_eq!(hit.x_cache, "HIT");
    assert!(
        (58..=60).contains(&max_age(&hit)),
        "{:?}",
        hit.cache_control
    );
    let etag = hit.etag.clone().expect("an ETag");
    let not_modified = fetch_with(&base, "/versioned/1/max-age", &[("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
    assert!(
        not_modified.cache_control.is_some(),
        "a 304 keeps Cache-Control"
    );
    // Without the option: no Cache-Control, so clients revalidate.
    assert_eq!(fetch(&base, "/versioned/1").await.cache_control, None);
}
