//! `rediss://` against a TLS-enabled local redis-server whose certificates the test makes with
//! the `openssl` CLI: a CA and a leaf for `127.0.0.1`/`localhost` signed by it. Trusting that
//! CA caches; the system roots or another CA fail `build()`, and a lazy cache that cannot
//! complete the handshake still returns correct values from every call. On a server built
//! without TLS (the Valkey 8.1 and Redis 6.2 of `scripts/servers`) every test says so and
//! is skipped.
#![cfg(feature = "tls")]

mod harness;
mod support;

use harness::tls::TlsServer;
use redis_cached::{Cache, Error, Outcome};
use std::sync::atomic::AtomicUsize;
use std::time::{Duration, Instant};
use support::{
    CALL_BOUND, assert_miss_then_hit, checked_square, forget, get_text as raw_get, runs,
};

const TIMEOUT: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread")]
async fn rediss_with_the_test_ca_caches() {
    let Some(server) = TlsServer::start("rediss_with_the_test_ca_caches") else {
        return;
    };
    let cache = Cache::builder(&server.tls_url())
        .prefix("tls:")
        .timeout(TIMEOUT)
        .tls_root_certificate(server.ca_pem())
        .build()
        .await
        .expect("the server's certificate is signed by the given CA");
    cache.ping().await.expect("ping over TLS");
    let counter = AtomicUsize::new(0);
    assert_miss_then_hit(|| checked_square(&cache, &counter, 7)).await;
    assert_eq!(
        checked_square(&cache, &counter, 7).await,
        Some(Outcome::Hit)
    );
    assert_eq!(runs(&counter), 1, "the body ran once");

    // Written over TLS, visible in plain text on the plain port.
    let mut plain = server.plain().await;
    assert_eq!(
        raw_get(&mut plain, "tls:square:7").await.as_deref(),
        Some("49")
    );

    // Invalidation goes over TLS too.
    assert_eq!(forget(&cache, 7).await, "forgotten");
    assert_eq!(raw_get(&mut plain, "tls:square:7").await, None);
    assert_eq!(
        checked_square(&cache, &counter, 7).await,
        Some(Outcome::Miss)
    );
    assert_eq!(runs(&counter), 2);
    assert!(!cache.is_degraded());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_certificate_also_names_localhost() {
    let Some(server) = TlsServer::start("the_certificate_also_names_localhost") else {
        return;
    };
    // The server listens on 127.0.0.1 only: skip where `localhost` has no IPv4 address.
    let has_ipv4 = std::net::ToSocketAddrs::to_socket_addrs(&("localhost", server.tls_port))
        .is_ok_and(|mut addrs| addrs.any(|addr| addr.is_ipv4()));
    if !has_ipv4 {
        harness::skip(
            "the_certificate_also_names_localhost",
            "`localhost` has no IPv4 address here",
        );
        return;
    }
    let cache = Cache::builder(&format!("rediss://localhost:{}", server.tls_port))
        .timeout(TIMEOUT)
        .tls_root_certificate(server.ca_pem())
        .build()
        .await
        .expect("the certificate names `localhost`");
    cache.ping().await.expect("ping over TLS to localhost");
}

#[tokio::test(flavor = "multi_thread")]
async fn rediss_without_the_ca_fails_at_build() {
    let Some(server) = TlsServer::start("rediss_without_the_ca_fails_at_build") else {
        return;
    };
    let started = Instant::now();
    let err = Cache::builder(&server.tls_url())
        .timeout(Duration::from_secs(2))
        .build()
        .await
        .expect_err("the system roots do not trust the test CA");
    assert!(
        matches!(err, Error::Connect { .. }) && err.to_string().contains("certificate"),
        "a certificate error, not a timeout or a configuration error: {err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the handshake failed at once"
    );

    let err = Cache::builder(&server.tls_url())
        .timeout(Duration::from_secs(2))
        .tls_root_certificate(server.other_ca_pem())
        .build()
        .await
        .expect_err("another CA does not trust the server's certificate");
    assert!(
        matches!(err, Error::Connect { .. }) && err.to_string().contains("certificate"),
        "{err:?}"
    );

    // Nothing was written through the plain port either.
    let mut plain = server.plain().await;
    let keys: usize = redis::cmd("DBSIZE").query_async(&mut plain).await.unwrap();
    assert_eq!(keys, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_root_certificate_that_is_not_pem_fails_at_build() {
    let Some(server) = TlsServer::start("a_root_certificate_that_is_not_pem_fails_at_build") else {
        return;
    };
    for garbage in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        &server.certs.pem("ca.key"),
    ] {
        let result = Cache::builder(&server.tls_url())
            .timeout(Duration::from_secs(2))
            .tls_root_certificate(garbage.to_vec())
            .build()
            .await;
        assert!(
            result.is_err(),
            "a root certificate of {} bytes of garbage was accepted",
            garbage.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lazy_cache_with_the_wrong_ca_still_returns_correct_values() {
    let Some(server) =
        TlsServer::start("a_lazy_cache_with_the_wrong_ca_still_returns_correct_values")
    else {
        return;
    };
    let cache = Cache::builder(&server.tls_url())
        .prefix("tls:")
        .timeout(TIMEOUT)
        .lazy(true)
        .tls_root_certificate(server.other_ca_pem())
        .build()
        .await
        .expect("a lazy cache builds without connecting");
    let counter = AtomicUsize::new(0);
    for round in 1..=5 {
        assert_eq!(
            checked_square(&cache, &counter, 3).await,
            Some(Outcome::Bypass)
        );
        assert_eq!(runs(&counter), round, "the body runs on every call");
    }
    let started = Instant::now();
    assert_eq!(forget(&cache, 3).await, "forgotten");
    assert!(started.elapsed() < CALL_BOUND);
    assert!(cache.ping().await.is_err());

    let mut plain = server.plain().await;
    assert_eq!(raw_get(&mut plain, "tls:square:3").await, None);
}

/// A client that speaks the wrong protocol for the port never fails a call either.
#[tokio::test(flavor = "multi_thread")]
async fn tls_and_plain_ports_mixed_up() {
    let Some(server) = TlsServer::start("tls_and_plain_ports_mixed_up") else {
        return;
    };
    let mixed_up = [
        // Plain text to the TLS port.
        format!("redis://127.0.0.1:{}", server.tls_port),
        // A TLS handshake to the plain port.
        format!("rediss://127.0.0.1:{}", server.server.port()),
    ];
    for url in &mixed_up {
        let started = Instant::now();
        let built = Cache::builder(url)
            .timeout(TIMEOUT)
            .tls_root_certificate(server.ca_pem())
            .build()
            .await;
        assert!(built.is_err(), "{url}: connected over the wrong protocol");
        assert!(started.elapsed() < CALL_BOUND);

        let cache = Cache::builder(url)
            .timeout(TIMEOUT)
            .lazy(true)
            .tls_root_certificate(server.ca_pem())
            .build()
            .await
            .expect("a lazy cache builds without connecting");
        let counter = AtomicUsize::new(0);
        for round in 1..=3 {
            assert_eq!(
                checked_square(&cache, &counter, 5).await,
                Some(Outcome::Bypass),
                "{url}"
            );
            assert_eq!(runs(&counter), round);
        }
        assert_eq!(forget(&cache, 5).await, "forgotten");
    }
}

/// redis-rs reads a `#insecure` URL fragment as "skip certificate verification"; this build
/// (without redis-rs's `tls-rustls-insecure`) refuses it instead of connecting unverified.
#[tokio::test(flavor = "multi_thread")]
async fn the_insecure_fragment_does_not_skip_verification() {
    let Some(server) = TlsServer::start("the_insecure_fragment_does_not_skip_verification") else {
        return;
    };
    let url = format!("{}#insecure", server.tls_url());
    let without_ca = Cache::builder(&url).timeout(TIMEOUT).build().await;
    assert!(
        without_ca.is_err(),
        "connected without verifying the server"
    );
    let wrong_ca = Cache::builder(&url)
        .timeout(TIMEOUT)
        .tls_root_certificate(server.other_ca_pem())
        .build()
        .await;
    assert!(wrong_ca.is_err(), "connected without verifying the server");
}
