//! The registry of cached functions: every `#[redis_cached]` and `#[invalidates]` function
//! registers what it is at link time (through `inventory`), so that a process can list its
//! cached functions ([`functions`]), check them against each other before serving
//! ([`check`]), count what each did ([`CachedFunction::stats`]), show them and the keys they
//! store (the inspection page, [`Cache::inspect_key`]) and, to come, clear one
//! (`Cache::clear_function`).
//!
//! [`Cache::inspect_key`]: crate::Cache::inspect_key

mod check;
mod pattern;

pub(crate) use self::check::log_once as log_check_once;
pub use self::check::{Finding, FindingKind, Report, Severity, check};
pub use self::pattern::Template;
#[doc(hidden)]
pub use self::pattern::Token;
pub(crate) use self::pattern::glob_escape;
pub use crate::stats::Stats;

/// A `#[redis_cached]` function, as its attribute describes it.
///
/// ```
/// #[redis_cached::redis_cached(key = "user:<id>", ttl = 60)]
/// async fn user(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// let user = redis_cached::functions()
///     .cached
///     .into_iter()
///     .find(|function| function.path.ends_with("::user"))
///     .unwrap();
/// assert_eq!(user.key.text(), "user:<id>");
/// assert_eq!(user.ttl, Some(60));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct CachedFunction {
    /// The function's path, `module::path::name`: the `function` label of its metrics.
    pub path: &'static str,
    /// Where the function is written: file and line.
    pub file: &'static str,
    /// The line of the attribute.
    pub line: u32,
    /// The key template.
    pub key: Template,
    /// The tags its entries carry.
    pub tags: &'static [Template],
    /// The TTL in whole seconds; `None` when it is the cache's default, an expression or
    /// taken from the value (`ttl_from`).
    pub ttl: Option<u64>,
    /// `jitter = "N%"` as a fraction of the TTL (0.1 for `"10%"`); `None` when it is the
    /// cache's ([`CacheBuilder::ttl_jitter`](crate::CacheBuilder::ttl_jitter)).
    pub jitter: Option<f64>,
    /// How long past its TTL an entry may be served while it is refreshed, in seconds.
    pub stale: Option<u64>,
    /// How long past its TTL an entry answers a failing body, in seconds.
    pub stale_if_error: Option<u64>,
    /// XFetch's `beta`, with `refresh_ahead`.
    pub refresh_ahead: Option<f64>,
    /// The function's `version` (1 unless given): entries of another version are misses.
    pub version: u32,
    /// The stored type as written (the `T` of `Result<T, E>`, `Option<T>`, ..).
    pub stored_type: &'static str,
    /// The batch form (`batch = ids`): one entry per id.
    pub batch: bool,
}

/// An `#[invalidates]` function: the key and tag templates it invalidates.
///
/// ```
/// #[redis_cached::invalidates("user:<id>")]
/// async fn rename(id: u64, name: String) {}
///
/// let rename = redis_cached::functions()
///     .invalidating
///     .into_iter()
///     .find(|function| function.path.ends_with("::rename"))
///     .unwrap();
/// assert_eq!(rename.keys[0].text(), "user:<id>");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct InvalidatingFunction {
    /// The function's path, `module::path::name`.
    pub path: &'static str,
    /// Where the function is written: file and line.
    pub file: &'static str,
    /// The line of the attribute.
    pub line: u32,
    /// The key templates it deletes.
    pub keys: &'static [Template],
    /// The tag templates it invalidates.
    pub tags: &'static [Template],
}

/// The fields of a [`CachedFunction`], as generated code writes them (the struct itself is
/// `non_exhaustive`).
#[doc(hidden)]
pub struct CachedParts {
    pub path: &'static str,
    pub file: &'static str,
    pub line: u32,
    pub key: Template,
    pub tags: &'static [Template],
    pub ttl: Option<u64>,
    pub jitter: Option<f64>,
    pub stale: Option<u64>,
    pub stale_if_error: Option<u64>,
    pub refresh_ahead: Option<f64>,
    pub version: u32,
    pub stored_type: &'static str,
    pub batch: bool,
}

impl CachedFunction {
    #[doc(hidden)]
    pub const fn new(parts: CachedParts) -> Self {
        let CachedParts {
            path,
            file,
            line,
            key,
            tags,
            ttl,
            jitter,
            stale,
            stale_if_error,
            refresh_ahead,
            version,
            stored_type,
            batch,
        } = parts;
        CachedFunction {
            path,
            file,
            line,
            key,
            tags,
            ttl,
            jitter,
            stale,
            stale_if_error,
            refresh_ahead,
            version,
            stored_type,
            batch,
        }
    }
}

impl InvalidatingFunction {
    #[doc(hidden)]
    pub const fn new(
        (path, file, line): (&'static str, &'static str, u32),
        keys: &'static [Template],
        tags: &'static [Template],
    ) -> Self {
        InvalidatingFunction {
            path,
            file,
            line,
            keys,
            tags,
        }
    }
}

/// What one attribute registers; generated code builds it (see `__private::Registered`).
#[doc(hidden)]
pub enum Registered {
    Cached(&'static CachedFunction),
    Invalidating(&'static InvalidatingFunction),
}

inventory::collect!(Registered);

/// Every cached and invalidating function linked into this program.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Functions {
    /// The `#[redis_cached]` functions, by path.
    pub cached: Vec<&'static CachedFunction>,
    /// The `#[invalidates]` functions, by path.
    pub invalidating: Vec<&'static InvalidatingFunction>,
}

/// Lists every `#[redis_cached]` and `#[invalidates]` function linked into this program,
/// each list sorted by path. Registration happens at link time: a function is listed
/// whether or not it was called.
///
/// ```
/// for function in redis_cached::functions().cached {
///     println!("{} -> {} (ttl {:?})", function.path, function.key, function.ttl);
/// }
/// ```
pub fn functions() -> Functions {
    let mut functions = Functions::default();
    for registered in inventory::iter::<Registered> {
        match registered {
            Registered::Cached(function) => functions.cached.push(function),
            Registered::Invalidating(function) => functions.invalidating.push(function),
        }
    }
    functions
        .cached
        .sort_by_key(|function| (function.path, function.line));
    functions
        .invalidating
        .sort_by_key(|function| (function.path, function.line));
    functions
}

/// Levenshtein distance, in characters: which registered name or template is nearest a
/// mistyped one.
pub(crate) fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (diagonal + usize::from(x != y))
                .min(above + 1)
                .min(row[j] + 1);
            diagonal = above;
        }
    }
    row[b.len()]
}
