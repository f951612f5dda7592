//! The inspection page: the registered functions with their statistics, the start-up
//! check's findings, and one key's state, server-rendered (no script, no external asset).
//! Every value printed comes from attributes, Redis or the request: all of it is escaped.

use crate::registry::{CachedFunction, InvalidatingFunction, Severity, Stats};
use crate::{Cache, check, functions};
use crate::{KeyState, LagStats};
use axum::extract::{OriginalUri, Query, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::fmt::{self, Display, Write as _};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An inspection page for operators: what this process caches and what a key holds.
///
/// **Not for the public internet.** It shows cached values, which hold your users' data,
/// and the shape of your keys: mount it under an admin path behind your authentication
/// (and, better, on an internal listener only).
///
/// Routes, relative to where it is nested:
///
/// - `GET /`: an HTML page (no JavaScript, no external assets) listing each
///   `#[redis_cached]` function (path, key template, TTL and its `jitter`, `stale`,
///   `stale_if_error`, `refresh_ahead`, tags, version, this process's counts of hits,
///   misses, stale, coalesced, bypasses and refreshes, hit ratio, body time p50 and p99), the
///   `#[invalidates]` functions and their targets, the findings of
///   [`check`](crate::check), and a form: `GET /?key=user:42` shows what the key holds
///   (see [`Cache::inspect_key`]); with a near tier, its eviction lag
///   ([`Cache::near_eviction_lag`]).
/// - `GET /functions.json`: the same lists as JSON, each cached function with its `stats`
///   (durations in milliseconds), and `near_eviction_lag` (`count`, `p50_ms`, `p99_ms`,
///   `max_ms`; `null` without a near tier or before its first probe).
/// - `GET /key.json?key=user:42`: the [`KeyState`](crate::KeyState) of one key
///   as JSON; 400 without `key`, 503 (with `{"error": ...}`) when Redis fails.
///
/// Keys are given as templates render them, without the cache's prefix. Counts are this
/// process's since it started (see [`Stats`](crate::registry::Stats)). Answers carry
/// `Cache-Control: no-store` and a `Content-Security-Policy` that allows no script.
///
/// Nest it into your router after its `with_state` (it carries its own state, the cache):
///
/// ```
/// # async fn example() -> Result<(), redis_cached::Error> {
/// use axum::Router;
///
/// let cache = redis_cached::Cache::connect("mem://").await?;
/// let admin: Router = Router::new(); // your admin routes, behind your authentication
/// let app: Router = Router::new()
///     // .route(...) and .with_state(...) of your application, then:
///     .nest("/admin/cache", admin.merge(redis_cached::axum::inspect(cache)));
/// # Ok(()) }
/// ```
pub fn inspect(cache: Cache) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/functions.json", get(functions_json))
        .route("/key.json", get(key_json))
        .with_state(cache)
}

/// `?key=...`: the key to inspect, as its template renders it.
#[derive(Deserialize)]
struct KeyQuery {
    key: Option<String>,
}

/// Headers of every answer: cached values must not stay in a browser's or a proxy's cache,
/// and the page, which prints untrusted text, runs no script whatever slips through.
const HEADERS: [(HeaderName, &str); 3] = [
    (header::CACHE_CONTROL, "no-store"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
    ),
];

// ---- JSON ---------------------------------------------------------------------------------

#[derive(Serialize)]
struct FunctionsJson {
    backend: &'static str,
    prefix: String,
    /// The near tier's eviction lag ([`Cache::near_eviction_lag`]); `null` without a near
    /// tier or before the first probe.
    near_eviction_lag: Option<LagJson>,
    cached: Vec<CachedJson>,
    invalidating: Vec<InvalidatingJson>,
    findings: Vec<FindingJson>,
}

#[derive(Serialize)]
struct CachedJson {
    path: &'static str,
    file: &'static str,
    line: u32,
    key: &'static str,
    tags: Vec<&'static str>,
    ttl_s: Option<u64>,
    jitter: Option<f64>,
    stale_s: Option<u64>,
    stale_if_error_s: Option<u64>,
    refresh_ahead: Option<f64>,
    version: u32,
    stored_type: &'static str,
    batch: bool,
    stats: StatsJson,
}

#[derive(Serialize)]
struct StatsJson {
    hits: u64,
    misses: u64,
    stale: u64,
    coalesced: u64,
    bypasses: u64,
    refreshes: u64,
    hit_ratio: Option<f64>,
    body_p50_ms: Option<f64>,
    body_p99_ms: Option<f64>,
}

#[derive(Serialize)]
struct LagJson {
    count: u64,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl From<LagStats> for LagJson {
    fn from(lag: LagStats) -> LagJson {
        LagJson {
            count: lag.count,
            p50_ms: millis(lag.p50),
            p99_ms: millis(lag.p99),
            max_ms: millis(lag.max),
        }
    }
}

#[derive(Serialize)]
struct InvalidatingJson {
    path: &'static str,
    file: &'static str,
    line: u32,
    keys: Vec<&'static str>,
    tags: Vec<&'static str>,
}

#[derive(Serialize)]
struct FindingJson {
    severity: &'static str,
    /// `InvalidatesNothing`, `SharedKeyOtherType`, `LongTtlNeverInvalidated`.
    kind: String,
    functions: Vec<&'static str>,
    message: String,
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn cached_json(function: &CachedFunction) -> CachedJson {
    let stats = function.stats();
    CachedJson {
        path: function.path,
        file: function.file,
        line: function.line,
        key: function.key.text(),
        tags: function.tags.iter().map(|tag| tag.text()).collect(),
        ttl_s: function.ttl,
        jitter: function.jitter,
        stale_s: function.stale,
        stale_if_error_s: function.stale_if_error,
        refresh_ahead: function.refresh_ahead,
        version: function.version,
        stored_type: function.stored_type,
        batch: function.batch,
        stats: StatsJson {
            hits: stats.hits,
            misses: stats.misses,
            stale: stats.stale,
            coalesced: stats.coalesced,
            bypasses: stats.bypasses,
            refreshes: stats.refreshes,
            hit_ratio: stats.hit_ratio(),
            body_p50_ms: stats.body_p50.map(millis),
            body_p99_ms: stats.body_p99.map(millis),
        },
    }
}

fn invalidating_json(function: &InvalidatingFunction) -> InvalidatingJson {
    InvalidatingJson {
        path: function.path,
        file: function.file,
        line: function.line,
        keys: function.keys.iter().map(|key| key.text()).collect(),
        tags: function.tags.iter().map(|tag| tag.text()).collect(),
    }
}

fn severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        _ => "warning",
    }
}

async fn functions_json(State(cache): State<Cache>) -> Response {
    let registered = functions();
    let body = FunctionsJson {
        backend: cache.backend_kind(),
        prefix: cache.prefix().to_owned(),
        near_eviction_lag: cache.near_eviction_lag().map(LagJson::from),
        cached: registered.cached.iter().map(|f| cached_json(f)).collect(),
        invalidating: (registered.invalidating.iter())
            .map(|f| invalidating_json(f))
            .collect(),
        findings: (check().findings.into_iter())
            .map(|finding| FindingJson {
                severity: severity(finding.severity),
                kind: format!("{:?}", finding.kind),
                functions: finding.functions,
                message: finding.message,
            })
            .collect(),
    };
    (HEADERS, Json(body)).into_response()
}

async fn key_json(State(cache): State<Cache>, Query(query): Query<KeyQuery>) -> Response {
    let error = |status: StatusCode, message: String| {
        (
            status,
            HEADERS,
            Json(serde_json::json!({ "error": message })),
        )
            .into_response()
    };
    let Some(key) = query.key.filter(|key| !key.is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "give the key to inspect: ?key=...".into(),
        );
    };
    match cache.inspect_key(&key).await {
        Ok(state) => (HEADERS, Json(state)).into_response(),
        Err(failure) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("could not read the key: {failure}"),
        ),
    }
}

// ---- HTML ---------------------------------------------------------------------------------

/// Text made safe to print anywhere in the page: element content and quoted attributes.
struct Esc<T>(T);

impl<T: Display> Display for Esc<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.to_string().chars() {
            match c {
                '&' => f.write_str("&amp;")?,
                '<' => f.write_str("&lt;")?,
                '>' => f.write_str("&gt;")?,
                '"' => f.write_str("&quot;")?,
                '\'' => f.write_str("&#39;")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:2px 5px;\
text-align:left;vertical-align:top}th{background:#f3f3f3}td.n{text-align:right}\
#cached{font-size:12px}td.n{white-space:nowrap}\
code,pre{font-family:ui-monospace,monospace}pre{background:#f7f7f7;padding:.5em;\
max-width:100%;overflow:auto;margin:0}.warn{color:#8a5300}.error{color:#b00020}\
.note{color:#666}input[name=key]{width:32em}";

async fn page(
    State(cache): State<Cache>,
    OriginalUri(uri): OriginalUri,
    Query(query): Query<KeyQuery>,
) -> Response {
    // Links are made from the path the page was asked at, wherever it is nested.
    let base = uri.path().trim_end_matches('/');
    let key = query.key.filter(|key| !key.is_empty());
    let inspected = match &key {
        Some(key) => Some(cache.inspect_key(key).await),
        None => None,
    };
    let mut html = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail.
    let _ = render(&mut html, &cache, base, key.as_deref(), inspected);
    (HEADERS, Html(html)).into_response()
}

fn render(
    out: &mut String,
    cache: &Cache,
    base: &str,
    key: Option<&str>,
    inspected: Option<Result<KeyState, crate::Error>>,
) -> fmt::Result {
    write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>redis-cached: inspection</title><style>{STYLE}</style></head><body>\
         <h1>redis-cached</h1><p>Backend <b>{}</b>, key prefix <code>{}</code>. Counts are \
         this process's since it started. As JSON: <a href=\"{}/functions.json\">functions.json</a>.</p>",
        Esc(cache.backend_kind()),
        Esc(if cache.prefix().is_empty() {
            "(none)"
        } else {
            cache.prefix()
        }),
        Esc(base),
    )?;
    if let Some(lag) = cache.near_eviction_lag() {
        write!(
            out,
            "<p id=\"near-lag\">Near cache eviction lag (write in Redis to eviction here, \
             over {} probes; includes clock offset between hosts): p50 {}, p99 {}, max {}.</p>",
            lag.count,
            Esc(duration(Some(lag.p50))),
            Esc(duration(Some(lag.p99))),
            Esc(duration(Some(lag.max))),
        )?;
    }

    write!(
        out,
        "<h2>Inspect a key</h2><form method=\"get\"><label>Key, without the prefix: \
         <input name=\"key\" value=\"{}\" placeholder=\"user:42\"></label> \
         <button type=\"submit\">Inspect</button></form>",
        Esc(key.unwrap_or_default())
    )?;
    if let (Some(key), Some(inspected)) = (key, inspected) {
        match inspected {
            Ok(state) => {
                render_key(out, base, &state)?;
                if let Some(hint) = &state.hint {
                    write!(out, "<p class=\"warn\">{}.</p>", Esc(hint))?;
                }
            }
            Err(error) => write!(
                out,
                "<p id=\"key-error\" class=\"error\">Could not read <code>{}</code>: {}</p>",
                Esc(key),
                Esc(error)
            )?,
        }
    }

    let registered = functions();
    write!(
        out,
        "<h2>Cached functions ({})</h2><table id=\"cached\"><thead><tr><th>function</th>\
         <th>key template</th><th>TTL</th><th>stale</th><th>stale if error</th>\
         <th>refresh ahead</th><th>tags</th><th>version</th><th>hits</th><th>misses</th>\
         <th>stale</th><th>coalesced</th><th>bypasses</th><th>refreshes</th>\
         <th>hit ratio</th><th>body p50</th><th>body p99</th></tr></thead><tbody>",
        registered.cached.len()
    )?;
    for function in &registered.cached {
        render_cached(out, function)?;
    }
    out.push_str("</tbody></table>");

    write!(
        out,
        "<h2>Invalidating functions ({})</h2><table id=\"invalidating\"><thead><tr>\
         <th>function</th><th>keys</th><th>tags</th></tr></thead><tbody>",
        registered.invalidating.len()
    )?;
    for function in &registered.invalidating {
        write!(
            out,
            "<tr><td><code>{}</code><br><span class=\"note\">{}:{}</span></td><td>{}</td><td>{}</td></tr>",
            Esc(function.path),
            Esc(function.file),
            function.line,
            templates(function.keys.iter().map(|key| key.text())),
            templates(function.tags.iter().map(|tag| tag.text())),
        )?;
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Check</h2><ul id=\"findings\">");
    let report = check();
    if report.findings.is_empty() {
        out.push_str("<li>The cached functions check clean.</li>");
    }
    for finding in &report.findings {
        let severity = severity(finding.severity);
        write!(
            out,
            "<li class=\"{}\"><b>{severity}</b>: {}</li>",
            if severity == "error" { "error" } else { "warn" },
            Esc(&finding.message)
        )?;
    }
    out.push_str("</ul></body></html>");
    Ok(())
}

/// Templates as code, comma-separated; `-` for none.
fn templates(texts: impl Iterator<Item = &'static str>) -> String {
    let list: Vec<String> = texts
        .map(|text| format!("<code>{}</code>", Esc(text)))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(", ")
    }
}

/// Seconds from an attribute, `-` when not given.
fn seconds(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value} s"))
}

fn duration(value: Option<Duration>) -> String {
    value.map_or_else(
        || "-".to_owned(),
        |value| format!("{:.2} ms", millis(value)),
    )
}

fn render_cached(out: &mut String, function: &CachedFunction) -> fmt::Result {
    let stats: Stats = function.stats();
    write!(
        out,
        "<tr><td><code>{}</code><br><span class=\"note\">{}:{}{}</span></td><td><code>{}</code></td>\
         <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"n\">{}</td>",
        Esc(function.path),
        Esc(function.file),
        function.line,
        if function.batch { ", batch" } else { "" },
        Esc(function.key.text()),
        Esc(function
            .ttl
            .map_or_else(|| "default".to_owned(), |ttl| format!("{ttl} s"))
            + &function.jitter.map_or_else(String::new, |jitter| {
                // Rounded to the hundredth of a percent: 0.07 * 100.0 is 7.000000000000001.
                format!(", jitter {}%", (jitter * 10_000.0).round() / 100.0)
            })),
        Esc(seconds(function.stale)),
        Esc(seconds(function.stale_if_error)),
        Esc(function
            .refresh_ahead
            .map_or_else(|| "-".to_owned(), |beta| format!("beta {beta}"))),
        templates(function.tags.iter().map(|tag| tag.text())),
        function.version,
    )?;
    for count in [
        stats.hits,
        stats.misses,
        stats.stale,
        stats.coalesced,
        stats.bypasses,
        stats.refreshes,
    ] {
        write!(out, "<td class=\"n\">{count}</td>")?;
    }
    write!(
        out,
        "<td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
        stats
            .hit_ratio()
            .map_or_else(|| "-".to_owned(), |ratio| format!("{:.1}%", ratio * 100.0)),
        Esc(duration(stats.body_p50)),
        Esc(duration(stats.body_p99)),
    )
}

/// Now, in ms since the UNIX epoch.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |now| u64::try_from(now.as_millis()).unwrap_or(u64::MAX))
}

/// A time in ms since the epoch, relative to now: `in 1.5 s` or `3.0 s ago`.
fn relative(at_ms: u64) -> String {
    let now = now_ms();
    if at_ms >= now {
        format!("in {:.1} s", (at_ms - now) as f64 / 1000.0)
    } else {
        format!("{:.1} s ago", (now - at_ms) as f64 / 1000.0)
    }
}

fn render_key(out: &mut String, base: &str, state: &KeyState) -> fmt::Result {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", &state.key)
        .finish();
    let state_name = serde_json::to_value(state.state)
        .ok()
        .and_then(|name| name.as_str().map(str::to_owned))
        .unwrap_or_default();
    write!(
        out,
        "<table id=\"key-state\"><tr><th>key in the store</th><td><code>{}</code> \
         (<a href=\"{}/key.json?{}\">as JSON</a>)</td></tr>\
         <tr><th>state</th><td id=\"state\"><b>{}</b></td></tr>",
        Esc(&state.stored_key),
        Esc(base),
        Esc(query),
        Esc(state_name),
    )?;
    let mut row = |name: &str, value: String| {
        write!(
            out,
            "<tr><th>{}</th><td>{}</td></tr>",
            Esc(name),
            Esc(value)
        )
    };
    if let Some(redis_type) = &state.redis_type {
        row("Redis type", redis_type.clone())?;
    }
    row(
        "TTL",
        state.ttl_ms.map_or_else(
            || "none".to_owned(),
            |ttl| format!("{ttl} ms ({:.1} s)", ttl as f64 / 1000.0),
        ),
    )?;
    row("size", format!("{} bytes", state.size))?;
    if let Some(entry) = &state.entry {
        row("version", entry.version.to_string())?;
        row("shape fingerprint", format!("{:016x}", entry.shape))?;
        if let Some(fresh_until) = entry.fresh_until_ms {
            let fresh = if fresh_until > now_ms() {
                "fresh, stale"
            } else {
                "stale since"
            };
            row(
                "fresh until",
                format!(
                    "{fresh_until} ms since the epoch: {fresh} {}",
                    relative(fresh_until)
                ),
            )?;
        }
        if let Some(body) = entry.body_ms {
            row("body took", format!("{body} ms"))?;
        }
        if let Some(claimed) = entry.claimed_until_ms {
            row(
                "refresh claimed until",
                format!("{claimed} ({})", relative(claimed)),
            )?;
        }
        if !entry.tag_versions.is_empty() {
            let versions: Vec<String> = (entry.tag_versions.iter())
                .map(|version| format!("{version:016x}"))
                .collect();
            row("tag versions", versions.join(", "))?;
        }
    }
    row(
        "functions",
        if state.functions.is_empty() {
            "none registered renders this key".to_owned()
        } else {
            state.functions.join(", ")
        },
    )?;
    if !state.invalidated_by.is_empty() {
        row("invalidated by", state.invalidated_by.join(", "))?;
    }
    if let Some(error) = &state.decode_error {
        row("decode error", error.clone())?;
    }
    if let Some(value) = &state.value {
        let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|error| error.to_string());
        write!(
            out,
            "<tr><th>value</th><td><pre id=\"value\">{}</pre></td></tr>",
            Esc(pretty)
        )?;
    }
    out.push_str("</table>");
    Ok(())
}
