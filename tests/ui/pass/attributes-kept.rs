//! The function's own attributes, doc comments and visibility survive the expansion.
#![deny(warnings, missing_docs)]

//! A documented crate.

/// A documented module whose public items must all have docs.
pub mod api {
    use redis_cached::{invalidates, redis_cached};

    /// Kept doc comment: without it `missing_docs` would fail this test.
    #[redis_cached(key = "documented:<id>")]
    #[allow(clippy::unused_async)]
    pub async fn documented(id: u64) -> u64 {
        id
    }

    /// Inner attributes are kept inside the body.
    #[redis_cached(key = "inner:<id>", ttl = 60)]
    pub async fn inner(id: u64) -> u64 {
        #![allow(clippy::identity_op)]
        id + 0
    }

    /// A `must_use` result.
    #[must_use]
    #[redis_cached(key = "must:<id>")]
    pub async fn must(id: u64) -> u64 {
        id
    }

    /// `#[deny(unused_variables)]` on the function applies to the body as written.
    #[deny(unused_variables)]
    #[invalidates("documented:<id>")]
    pub async fn forget(id: u64) {
        let _ = id;
    }
}

pub(crate) mod internal {
    use redis_cached::redis_cached;

    #[redis_cached(key = "crate:<id>")]
    pub(crate) async fn crate_visible(id: u64) -> u64 {
        id
    }

    #[redis_cached(key = "super:<id>")]
    pub(super) async fn super_visible(id: u64) -> u64 {
        id
    }
}

/// Entry point.
pub fn main() {
    let _ = api::documented(1);
    let _ = api::inner(1);
    let _ = api::must(1);
    let _ = api::forget(1);
    let _ = internal::crate_visible(1);
    let _ = internal::super_visible(1);
}
