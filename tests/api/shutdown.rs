//! Graceful shutdown: stop accepting, let in-flight requests and streams finish within the
//! grace period, drain background tasks, report "draining" on readiness.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use futures_util::StreamExt;

use crate::support::helpers::{Backend, spawn_app_with};

/// Ten chunks, 60 ms apart: a stream that outlives the moment shutdown starts.
fn slow_stream() -> Body {
    let chunks = futures_util::stream::iter(0..10).then(|i| async move {
        tokio::time::sleep(Duration::from_millis(60)).await;
        Ok::<_, std::io::Error>(format!("chunk{i};"))
    });
    Body::from_stream(chunks)
}

fn with_test_routes(router: axum::Router) -> axum::Router {
    router
        .route("/test/stream", get(|| async { slow_stream() }))
        .route("/test/hang", get(|| async { std::future::pending::<&'static str>().await }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_streams_finish_and_new_connections_are_refused() {
    let app = spawn_app_with(Backend::Sqlite, |_| {}, with_test_routes).await;
    let mut res = app.get("/test/stream").await;
    assert_eq!(res.status(), 200);
    let first = res.chunk().await.unwrap().unwrap();
    app.shutdown.cancel();

    // The listener closes promptly while the stream is still running.
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting connections after shutdown began");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut body = String::from_utf8(first.to_vec()).unwrap();
    while let Some(chunk) = res.chunk().await.unwrap() {
        body.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    assert_eq!(body, (0..10).map(|i| format!("chunk{i};")).collect::<String>());
    tokio::time::timeout(Duration::from_secs(5), app.server).await.unwrap().unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_tasks_are_drained_before_exit() {
    let data_dir = tempfile::tempdir().unwrap();
    let env = crate::support::helpers::test_env(
        data_dir.path(),
        &format!("sqlite://{}/db.sqlite", data_dir.path().display()),
    );
    let config = burncloud::config::Config::load_from(None, |n| env.get(n).cloned()).unwrap();
    let app = burncloud::app::Application::build(config).await.unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    app.state().tasks().spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        flag.store(true, Ordering::SeqCst);
    });

    // While draining, readiness says so (load balancers stop sending traffic).
    let state = app.state().clone();
    app.shutdown_token().cancel();
    let (status, body) = burncloud::ops::readyz(State(state)).await;
    assert_eq!(status, 503);
    assert_eq!(body.0["status"], "draining");

    app.run_until_stopped().await.unwrap();
    assert!(done.load(Ordering::SeqCst), "shutdown returned before the background task finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_a_hanging_request() {
    let app = spawn_app_with(
        Backend::Sqlite,
        |env| {
            env.insert("BURNCLOUD_SHUTDOWN_GRACE_SECS".into(), "1".into());
        },
        with_test_routes,
    )
    .await;
    let client = app.client.clone();
    let hanging = tokio::spawn({
        let url = app.url("/test/hang");
        async move { client.get(url).send().await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), app.server).await.unwrap().unwrap().unwrap();
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(3), "shutdown took {took:?}");
    hanging.abort();
}

/// With a shutdown delay, a replica taken out of rotation goes on serving until its load
/// balancer has noticed: readiness is 503 at once, requests are still answered (each closing its
/// connection, so a proxy's pool lets go cleanly), and only after the delay is the listener
/// closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_shutdown_delay_requests_are_served_on_closing_connections() {
    let app = spawn_app_with(
        Backend::Sqlite,
        |env| {
            env.insert("BURNCLOUD_SHUTDOWN_DELAY_SECS".into(), "1".into());
        },
        |router| router,
    )
    .await;
    let res = app.get("/healthz").await;
    assert_eq!(res.headers().get("connection"), None, "keep-alive before the shutdown");
    let started = Instant::now();
    app.shutdown.cancel();

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));
    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200, "still serving during the delay");
    assert_eq!(res.headers().get("connection").and_then(|v| v.to_str().ok()), Some("close"));

    let deadline = Instant::now() + Duration::from_secs(3);
    while tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.is_ok() {
        assert!(Instant::now() < deadline, "still accepting connections after the delay");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "stopped accepting before the delay: {:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(5), app.server).await.unwrap().unwrap().unwrap();
}
