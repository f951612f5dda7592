//! The start-up check: what the registered attributes say about each other, before a call
//! is served. Each finding is a mistake a test suite rarely catches, because the cache hides
//! it until an entry outlives the write that should have removed it.

use super::{CachedFunction, Functions, InvalidatingFunction, Template, distance, functions};
use std::fmt;
use std::sync::Once;
use std::time::Duration;

/// A TTL above this, on a function no invalidation targets, is reported.
const LONG_TTL: Duration = Duration::from_secs(3600);

/// How serious a [`Finding`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Severity {
    /// Worth a look; may be on purpose.
    Warning,
    /// A mistake: entries are served stale, or decoded from another function's value.
    Error,
}

/// What a [`Finding`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FindingKind {
    /// An `#[invalidates]` key (or tag) template that no `#[redis_cached]` key (or tag)
    /// template can render: a typo, and the entries it should delete are served until their
    /// TTL.
    InvalidatesNothing,
    /// Two cached functions whose key templates can render the same key, storing different
    /// types: each reads the other's entries as misses and overwrites them.
    SharedKeyOtherType,
    /// A cached function with a TTL over an hour that no `#[invalidates]` key or tag template
    /// targets: a write to its source is seen only when the entry expires.
    LongTtlNeverInvalidated,
}

/// One thing [`check`] found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Finding {
    /// Error or warning.
    pub severity: Severity,
    /// What it is about.
    pub kind: FindingKind,
    /// The functions it names, by path.
    pub functions: Vec<&'static str>,
    /// What is wrong and what to do, in a sentence or two.
    pub message: String,
}

/// What [`check`] found, errors first.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Report {
    /// Every finding, errors first.
    pub findings: Vec<Finding>,
}

impl Report {
    /// No errors and no warnings.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// The findings of severity [`Severity::Error`].
    pub fn errors(&self) -> impl Iterator<Item = &Finding> {
        (self.findings.iter()).filter(|finding| finding.severity == Severity::Error)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.findings.is_empty() {
            return f.write_str("redis-cached: the cached functions check clean");
        }
        for finding in &self.findings {
            let severity = match finding.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            writeln!(f, "{severity}: {}", finding.message)?;
        }
        Ok(())
    }
}

/// Checks the registered `#[redis_cached]` and `#[invalidates]` functions against each
/// other (see [`functions`](crate::functions)):
///
/// - error: an `#[invalidates]` key or tag template that can match no cached function's key
///   or tag template (a typo: the entries it should delete stay until their TTL);
/// - error: two cached functions whose key templates can render the same key, with
///   different stored types (compared as written, paths aside);
/// - warning: a cached function with a TTL over an hour whose key and tags no invalidation
///   targets.
///
/// Templates are compared by what they can render: a placeholder stands for any text
/// without `:`, `{` or `}` (which rendered arguments always escape). [`init`](crate::init)
/// and [`CacheBuilder::build`](crate::CacheBuilder::build) log the findings once per
/// process, errors at error level; call this in a test to fail the build on them.
///
/// ```
/// let report = redis_cached::check();
/// assert!(report.errors().next().is_none(), "{report}");
/// ```
pub fn check() -> Report {
    check_functions(&functions())
}

/// [`check`] on the given functions.
pub(crate) fn check_functions(functions: &Functions) -> Report {
    let mut findings = Vec::new();
    for invalidating in &functions.invalidating {
        unmatched(invalidating, &functions.cached, &mut findings);
    }
    for (at, a) in functions.cached.iter().enumerate() {
        for b in &functions.cached[at + 1..] {
            let (ty_a, ty_b) = (
                type_as_written(a.stored_type),
                type_as_written(b.stored_type),
            );
            if ty_a != ty_b && a.key.overlaps(&b.key) {
                findings.push(Finding {
                    severity: Severity::Error,
                    kind: FindingKind::SharedKeyOtherType,
                    functions: vec![a.path, b.path],
                    message: format!(
                        "`{}` (key \"{}\", stores `{}`) and `{}` (key \"{}\", stores `{}`) can \
                         render the same key: each would overwrite the other's entries; give \
                         one of them a distinct literal in its key",
                        a.path, a.key, a.stored_type, b.path, b.key, b.stored_type
                    ),
                });
            }
        }
    }
    for cached in &functions.cached {
        let long = cached
            .ttl
            .is_some_and(|ttl| Duration::from_secs(ttl) > LONG_TTL);
        if long && !targeted(cached, &functions.invalidating) {
            findings.push(Finding {
                severity: Severity::Warning,
                kind: FindingKind::LongTtlNeverInvalidated,
                functions: vec![cached.path],
                message: format!(
                    "`{}` (key \"{}\") keeps entries for {} s and no #[invalidates] targets its \
                     key or tags: a change to its source shows only when the entry expires; \
                     add #[invalidates(\"{}\")] to the functions that write it (a function of \
                     its arguments alone has no source to change: raise its `version` when its \
                     code changes)",
                    cached.path,
                    cached.key,
                    cached.ttl.unwrap_or_default(),
                    cached.key
                ),
            });
        }
    }
    findings.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    Report { findings }
}

/// Reports each key or tag template of `invalidating` that no cached template can render.
fn unmatched(
    invalidating: &InvalidatingFunction,
    cached: &[&CachedFunction],
    findings: &mut Vec<Finding>,
) {
    let keys = invalidating.keys.iter().map(|key| (key, "key"));
    let tags = invalidating.tags.iter().map(|tag| (tag, "tag"));
    for (template, what) in keys.chain(tags) {
        let targets = |function: &&CachedFunction| match what {
            "key" => function.key.overlaps(template),
            _ => function.tags.iter().any(|tag| tag.overlaps(template)),
        };
        if cached.iter().any(targets) {
            continue;
        }
        let nearest = nearest(template, cached, what);
        findings.push(Finding {
            severity: Severity::Error,
            kind: FindingKind::InvalidatesNothing,
            functions: vec![invalidating.path],
            message: format!(
                "#[invalidates] on `{}` ({}:{}) names the {what} template \"{}\", which no \
                 #[redis_cached] {what} can render: its entries stay until their TTL{}",
                invalidating.path, invalidating.file, invalidating.line, template, nearest
            ),
        });
    }
}

/// The cached template most like `template`, as a hint.
fn nearest(template: &Template, cached: &[&CachedFunction], what: &str) -> String {
    let candidates = cached.iter().flat_map(|function| match what {
        "key" => std::slice::from_ref(&function.key),
        _ => function.tags,
    });
    candidates
        .min_by_key(|candidate| distance(candidate.text(), template.text()))
        .map(|candidate| format!("; did you mean \"{candidate}\"?"))
        .unwrap_or_default()
}

/// Whether an invalidation deletes some of `cached`'s keys or invalidates one of its tags.
fn targeted(cached: &CachedFunction, invalidating: &[&InvalidatingFunction]) -> bool {
    invalidating.iter().any(|function| {
        function.keys.iter().any(|key| key.overlaps(&cached.key))
            || (function.tags.iter()).any(|tag| cached.tags.iter().any(|own| own.overlaps(tag)))
    })
}

/// A type as written, without whitespace or paths: `crate::model::User` and `User` compare
/// equal (an alias of another name still does not).
fn type_as_written(ty: &str) -> String {
    let mut out = String::new();
    let mut segment = String::new();
    let mut chars = ty.chars().filter(|c| !c.is_whitespace()).peekable();
    while let Some(c) = chars.next() {
        if c == ':' && chars.peek() == Some(&':') {
            chars.next();
            segment.clear();
        } else if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            out.push_str(&segment);
            segment.clear();
            out.push(c);
        }
    }
    out.push_str(&segment);
    out
}

/// Logs [`check`]'s findings, once per process: errors at error level.
pub(crate) fn log_once() {
    static LOGGED: Once = Once::new();
    LOGGED.call_once(|| {
        for finding in check().findings {
            match finding.severity {
                Severity::Error => tracing::error!("redis-cached: {}", finding.message),
                Severity::Warning => tracing::warn!("redis-cached: {}", finding.message),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Token::{Literal, Part};

    #[test]
    fn types_compare_without_their_paths() {
        assert_eq!(type_as_written("crate::model::User"), "User");
        assert_eq!(
            type_as_written("Vec < ::std::string::String >"),
            "Vec<String>"
        );
        assert_ne!(type_as_written("Vec<u8>"), type_as_written("Vec<u16>"));
    }

    #[test]
    fn the_hint_names_the_nearest_template() {
        const USER: Template = Template::new("user:<id>", &[Literal("user:"), Part]);
        const TYPO: Template = Template::new("usr:<id>", &[Literal("usr:"), Part]);
        let cached = CachedFunction {
            path: "app::user",
            file: "src/lib.rs",
            line: 1,
            key: USER,
            tags: &[],
            ttl: Some(60),
            jitter: None,
            stale: None,
            stale_if_error: None,
            refresh_ahead: None,
            version: 1,
            stored_type: "User",
            batch: false,
        };
        assert_eq!(
            nearest(&TYPO, &[&cached], "key"),
            "; did you mean \"user:<id>\"?"
        );
        assert_eq!(distance("usr:<id>", "user:<id>"), 1);
    }
}
