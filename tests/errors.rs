//! Mistakes are loud: a malformed URL says what is wrong with it, and a failed connection
//! names the address it tried (its password redacted).

use redis_cached::{Cache, Error};

async fn build_error(url: &str) -> Error {
    match Cache::builder(url).build().await {
        Ok(_) => panic!("{url} built a cache"),
        Err(error) => error,
    }
}

#[tokio::test]
async fn a_malformed_url_says_what_is_wrong() {
    for (url, says) in [
        ("redis:/127.0.0.1", "`redis:` must be followed by `//`"),
        ("redis:127.0.0.1:6379", "`redis:` must be followed by `//`"),
        ("mem:", "write `mem://`"),
        ("127.0.0.1:6379", "not a URL: expected a scheme"),
        ("localhost:6379", "not a URL: expected a scheme"),
        ("", "not a URL"),
        (
            "ftp://example",
            "unsupported URL scheme `ftp`: use `redis://`",
        ),
    ] {
        let error = build_error(url).await;
        assert!(
            matches!(error, Error::InvalidUrl { .. }) && error.to_string().contains(says),
            "{url:?}: {error}"
        );
    }
    #[cfg(not(feature = "tls"))]
    assert!(
        build_error("rediss://127.0.0.1:6380")
            .await
            .to_string()
            .contains("needs the `tls` feature")
    );
}

#[tokio::test]
async fn a_failed_connection_names_the_address_without_the_password() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        listener.local_addr().expect("an address").port()
    };
    let error = build_error(&format!("redis://alice:hunter2@127.0.0.1:{port}/0")).await;
    let text = error.to_string();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        text.contains(&format!("redis://alice:***@127.0.0.1:{port}/0")),
        "the address tried: {text}"
    );
    assert!(!format!("{text} {error:?}").contains("hunter2"), "{text}");
}

/// No error and no `Debug` output shows a password, however the URL holds it: found by
/// review, passwords with an unencoded `/`, `?` or `#`, URLs without `//`, and
/// percent-encoded parameter names were shown whole. Cluster and Sentinel URLs keep their
/// hosts, so that the message still says which servers were meant.
#[tokio::test]
async fn no_error_or_debug_output_shows_a_password() {
    let secret = "ter2";
    for url in [
        "redis://u:hun/ter2@127.0.0.1:1",
        "redis://:hun#ter2@127.0.0.1:1",
        "redis://:hun?ter2@127.0.0.1:1",
        "redis://u:123/ter2@127.0.0.1:1",
        "redis+cluster://u:hun/ter2@127.0.0.1:1,127.0.0.1:2",
        "redis+cluster://u:hun?ter2@127.0.0.1:1,127.0.0.1:2",
        "redis+sentinel://u:hun/ter2@127.0.0.1:1,127.0.0.1:2/mymaster",
        "redis:/u:ter2@127.0.0.1:1",
        "default:ter2@127.0.0.1:6379",
        "redis+sentinel://127.0.0.1:1,127.0.0.1:2/mymaster?sentinel%5Fpassword=ter2",
        "redis://hun/ter2@127.0.0.1:1",
        "redis:u:ter2@127.0.0.1:1",
        "redis://127.0.0.1:1/?pass%77ord=ter2#x",
    ] {
        let builder = Cache::builder(url);
        let debug = format!("{builder:?}");
        let error = build_error(url).await;
        let shown = format!("{error} {error:?} {debug}");
        assert!(!shown.contains(secret), "{url}: {shown}");
    }
    let error = build_error("redis+cluster://u:hunter2@127.0.0.1:1,127.0.0.1:2").await;
    assert!(
        error.to_string().contains("u:***@127.0.0.1:1,127.0.0.1:2"),
        "{error}"
    );
}
