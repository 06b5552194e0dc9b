//! RemoteJwks against a real host JWKS server on loopback: rotation, single-flight,
//! 304 revalidation, misbehaving servers bounded and reported, stale-if-error.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{HostServer, Mode};
use handoff_core::Algorithm;
use handoff_edge::{Clock, EdgeError, FetchFailure, ManualClock, RemoteJwks};
use handoff_verify::{FetchOutcome, JwksCacheConfig, VerifyError};

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(common::start_time()))
}

fn cache_config(url: &str) -> JwksCacheConfig {
    JwksCacheConfig::new(url)
}

async fn remote(server: &HostServer, clock: &Arc<ManualClock>) -> RemoteJwks {
    RemoteJwks::builder(server.jwks_url())
        .clock(clock.clone())
        .request_timeout(Duration::from_millis(500))
        .max_wait(Duration::from_secs(2))
        .max_body_bytes(64 * 1024)
        .build()
        .unwrap()
}

fn unavailable(r: Result<handoff_core::VerifyingKey, EdgeError>) {
    match r {
        Err(EdgeError::Verify(VerifyError::KeySetUnavailable { .. })) => {}
        other => panic!("expected KeySetUnavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_is_picked_up_with_one_fetch_for_a_thousand_waiting_requests() {
    let clock = clock();
    let server = HostServer::start(clock.clone()).await;
    let jwks = remote(&server, &clock).await;
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();
    assert_eq!(server.hits(), 1);
    // Cached: no further fetch.
    for _ in 0..10 {
        jwks.key_for(Some("host-a"), Algorithm::EdDSA)
            .await
            .unwrap();
    }
    assert_eq!(server.hits(), 1);

    // The host rotates; past the unknown-kid cooldown, a thousand concurrent requests
    // with the new kid cause exactly one fetch, and all of them get the key. The server
    // is slowed down so that they pile up while the fetch is in flight.
    server.rotate("host-b");
    server.set(Mode::Delay(Duration::from_millis(300)));
    clock.advance(31);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let j = jwks.clone();
        tasks.push(tokio::spawn(async move {
            j.key_for(Some("host-b"), Algorithm::EdDSA).await
        }));
    }
    for t in tasks {
        let k = t.await.unwrap().unwrap();
        assert_eq!(k.kid(), Some("host-b"));
    }
    assert_eq!(server.hits(), 2, "single flight: one fetch for the new kid");
    assert_eq!(jwks.fetch_count(), 2);
    let status = jwks.last_fetch().unwrap();
    assert_eq!(status.report.outcome, FetchOutcome::Replaced);
    assert!(
        status
            .report
            .added
            .iter()
            .any(|k| k.kid.as_deref() == Some("host-b")),
        "{status:?}"
    );
    // The old key is still published (retiring) and still verifies.
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();

    // An unknown kid right after is refused without a fetch (cooldown).
    match jwks.key_for(Some("nope"), Algorithm::EdDSA).await {
        Err(EdgeError::Verify(VerifyError::UnknownKidRateLimited { .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revalidation_uses_the_etag_and_a_304_renews_the_set() {
    let clock = clock();
    let server = HostServer::start(clock.clone()).await;
    let jwks = remote(&server, &clock).await;
    let first = jwks.refresh().await.unwrap();
    assert_eq!(first.report.outcome, FetchOutcome::Replaced);
    let fresh = jwks.fresh_until().unwrap();
    // Nothing is due yet.
    assert!(jwks.refresh().await.is_none());
    clock.advance(fresh.as_secs() - clock.now().as_secs());
    let second = jwks.refresh().await.unwrap();
    assert_eq!(
        second.report.outcome,
        FetchOutcome::NotModified,
        "{second:?}"
    );
    assert_eq!(
        server
            .not_modified
            .load(std::sync::atomic::Ordering::SeqCst),
        1
    );
    assert_eq!(server.hits(), 2);
    assert!(jwks.fresh_until().unwrap() > fresh);
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();
}

async fn failing(
    mode: Mode,
) -> (
    HostServer,
    RemoteJwks,
    Result<handoff_core::VerifyingKey, EdgeError>,
) {
    let clock = clock();
    let server = HostServer::start(clock.clone()).await;
    server.set(mode);
    let jwks = remote(&server, &clock).await;
    // Bounded: the request comes back (refused) well within the test's own limit.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        jwks.key_for(Some("host-a"), Algorithm::EdDSA),
    )
    .await
    .expect("the request must not hang");
    (server, jwks, r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_server_times_out_and_is_reported() {
    let (server, jwks, r) = failing(Mode::Hang).await;
    unavailable(r);
    // The fetch itself ends at the request timeout and is reported.
    for _ in 0..50 {
        if jwks.last_fetch().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let s = jwks.last_fetch().expect("the timed-out fetch is reported");
    assert!(matches!(s.failure, Some(FetchFailure::Timeout(_))), "{s:?}");
    assert!(matches!(s.report.outcome, FetchOutcome::Failed(_)));
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_is_reported_and_backed_off() {
    let (server, jwks, r) = failing(Mode::Error500).await;
    unavailable(r);
    let s = jwks.last_fetch().unwrap();
    assert_eq!(
        s.failure,
        Some(FetchFailure::Refused("HTTP status 500".into())),
        "{s:?}"
    );
    // Backing off: the next request does not fetch again.
    unavailable(jwks.key_for(Some("host-a"), Algorithm::EdDSA).await);
    assert_eq!(server.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_megabytes_are_refused_at_the_cap() {
    for mode in [Mode::Huge, Mode::HugeChunked] {
        let (_server, jwks, r) = failing(mode.clone()).await;
        unavailable(r);
        let s = jwks.last_fetch().unwrap();
        assert_eq!(
            s.failure,
            Some(FetchFailure::BodyTooLarge { max: 64 * 1024 }),
            "{mode:?}: {s:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_is_reported() {
    let (_server, jwks, r) = failing(Mode::BadJson).await;
    unavailable(r);
    let s = jwks.last_fetch().unwrap();
    match s.failure {
        Some(FetchFailure::Refused(why)) => assert!(why.to_lowercase().contains("json"), "{why}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_serves_the_old_keys_then_gives_up() {
    let clock = clock();
    let server = HostServer::start(clock.clone()).await;
    let jwks = RemoteJwks::builder(server.jwks_url())
        .clock(clock.clone())
        .cache_config(cache_config(""))
        .request_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();
    server.set(Mode::Error500);
    let fresh = jwks.fresh_until().unwrap();
    clock.advance(fresh.as_secs() - clock.now().as_secs() + 10);
    // Stale: the key still serves, and a refresh is attempted in the background.
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();
    for _ in 0..50 {
        if server.hits() >= 2 && jwks.fetch_count() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(server.hits(), 2);
    let s = jwks.last_fetch().unwrap();
    assert_eq!(
        s.failure,
        Some(FetchFailure::Refused("HTTP status 500".into()))
    );
    jwks.key_for(Some("host-a"), Algorithm::EdDSA)
        .await
        .unwrap();
    // Past stale-if-error (1 h by default) the set is unavailable.
    clock.advance(3600);
    unavailable(jwks.key_for(Some("host-a"), Algorithm::EdDSA).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_task_refreshes_at_poll_timeout_and_picks_up_a_rotation() {
    // Real clock here: the server says max-age=1, the cache accepts 1 s.
    let clock: Arc<dyn Clock> = Arc::new(handoff_edge::SystemClock);
    let server = HostServer::start(clock.clone()).await;
    *server.cache_control.lock().unwrap() = Some("max-age=1".into());
    let mut config = JwksCacheConfig::new("");
    config.min_max_age = 1;
    config.default_max_age = 1;
    let jwks = RemoteJwks::builder(server.jwks_url())
        .cache_config(config)
        .build_and_fetch()
        .await
        .unwrap();
    assert_eq!(jwks.kids(), ["host-a"]);
    server.rotate("host-b");
    // No request at all: only the background task can bring the new key.
    let mut seen = false;
    for _ in 0..100 {
        if jwks.kids().iter().any(|k| k == "host-b") {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen,
        "the background refresh picked up host-b: {:?}",
        jwks.kids()
    );
    assert!(server.hits() >= 2);
}

#[test]
fn building_outside_a_runtime_is_an_error_not_a_panic() {
    match RemoteJwks::builder("http://127.0.0.1:9/jwks.json").build() {
        Err(EdgeError::Config(why)) => assert!(why.contains("tokio runtime"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert!(
        RemoteJwks::builder("http://127.0.0.1:9/jwks.json")
            .background_refresh(false)
            .build()
            .is_ok()
    );
}
