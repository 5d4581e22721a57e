//! Fairness (issue 13, item 12): per-key and per-user concurrency caps, a bounded admission wait
//! ending in 429 with `Retry-After`, a global cap one tenant cannot fill, header- and body-read
//! timeouts, and one tenant's 2,100 never-read streams not slowing another tenant's request.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::helpers::{Backend, TestApp, spawn_app_env};

db_tests!(
    per_user_and_per_key_concurrency_caps,
    admission_waits_a_bounded_time_then_answers_429_with_retry_after,
    the_global_cap_does_not_let_one_tenant_starve_the_others,
    a_client_that_stalls_in_its_headers_is_disconnected_after_the_header_read_timeout,
    a_client_that_stalls_in_its_body_gets_408_after_the_body_read_timeout,
    one_tenant_opening_2100_never_read_streams_does_not_slow_another_tenants_request,
);

const MODEL: &str = "gpt-fair";

/// An OpenAI upstream: a streamed request gets one chunk and then nothing, for ever (a stream
/// that stays open); a plain one gets a short completion at once. Counts the requests it got.
#[derive(Clone, Default)]
struct Upstream {
    requests: Arc<AtomicUsize>,
}

impl Upstream {
    async fn start() -> (Self, u16) {
        let upstream = Self::default();
        let app = Router::new().route("/v1/chat/completions", post(answer)).with_state(upstream.clone());
        (upstream, crate::support::helpers::serve_locally(app).await)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

async fn answer(State(upstream): State<Upstream>, body: Bytes) -> Response {
    upstream.requests.fetch_add(1, Ordering::SeqCst);
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    if request["stream"] == true {
        let chunk = json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
            "choices": [{ "index": 0, "delta": { "content": "hi" }, "finish_reason": null }] });
        let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(format!("data: {chunk}\n\n")) });
        let body = Body::from_stream(first.chain(futures_util::stream::pending()));
        return ([(header::CONTENT_TYPE, "text/event-stream")], body).into_response();
    }
    axum::Json(json!({ "id": "chatcmpl-2", "object": "chat.completion", "created": 1, "model": MODEL,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hello" }, "finish_reason": "stop" }],
        "usage": { "prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6 } }))
    .into_response()
}

/// An app with `settings`, one OpenAI channel on the fake upstream and a price for [`MODEL`].
async fn app_with(backend: Backend, port: u16, settings: &[(&str, &str)]) -> TestApp {
    let app = spawn_app_env(backend, settings).await;
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": format!("http://127.0.0.1:{port}/v1"),
        "key": "sk-up", "models": [MODEL] }))
        .await;
    app.set_price(MODEL, json!({ "input": "1.00", "output": "2.00" })).await;
    app
}

/// Another key for `user`.
async fn second_key(app: &TestApp, user: i64) -> String {
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

fn chat(stream: bool) -> Value {
    json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }], "stream": stream })
}

/// A streamed request whose answer has started (the response is kept, its stream unread).
async fn open_stream(app: &TestApp, key: &str) -> reqwest::Response {
    let response = app.v1(key, "/v1/chat/completions", &chat(true)).await;
    assert_eq!(response.status(), 200);
    response
}

/// Asserts a 429 from admission in OpenAI's shape, with `Retry-After`; its message.
async fn assert_concurrency_refusal(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()[header::RETRY_AFTER.as_str()], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "concurrency_limit_exceeded", "{body}");
    assert_eq!(body["error"]["type"], "requests", "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

async fn log_rows(app: &TestApp) -> i64 {
    sqlx::query("SELECT COUNT(*) FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0)
}

/// Waits until no more than `n` requests are in flight (slots go back after settlement).
async fn wait_in_flight(app: &TestApp, n: usize) {
    for _ in 0..500 {
        if app.gateway.gateway().admission.in_flight() <= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("still {} requests in flight", app.gateway.gateway().admission.in_flight());
}

/// A key's and a user's concurrency caps refuse what is over them (each protocol in its own error
/// shape, with `Retry-After`), leave other keys and tenants alone, charge nothing for a refusal,
/// and give the slot back when a request ends.
async fn per_user_and_per_key_concurrency_caps(backend: Backend) {
    let (upstream, port) = Upstream::start().await;
    let app = app_with(
        backend,
        port,
        &[
            ("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "2"),
            ("BURNCLOUD_MAX_CONCURRENT_PER_USER", "3"),
            ("BURNCLOUD_ADMISSION_WAIT_MS", "100"),
        ],
    )
    .await;
    let (user, key1) = app.user_with_key("10.00").await;
    let key2 = second_key(&app, user).await;
    let (other, other_key) = app.user_with_key("10.00").await;
    let before = app.balance(user).await;

    let a = open_stream(&app, &key1).await;
    let b = open_stream(&app, &key1).await;
    let message = assert_concurrency_refusal(app.v1(&key1, "/v1/chat/completions", &chat(true)).await).await;
    assert!(message.contains("API key has 2 requests in flight"), "{message}");

    // The user's third slot is still free for another of its keys, and then the user is full.
    let c = open_stream(&app, &key2).await;
    let message = assert_concurrency_refusal(app.v1(&key2, "/v1/chat/completions", &chat(false)).await).await;
    assert!(message.contains("account has 3 requests in flight"), "{message}");

    // Anthropic's and Google's clients get their own shapes, with Retry-After too.
    let body = json!({ "model": MODEL, "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    let response = app.v1(&key2, "/v1/messages", &body).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!((body["type"].as_str(), body["error"]["type"].as_str()), (Some("error"), Some("rate_limit_error")));
    let gemini = json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }] });
    let response = app.v1(&key2, &format!("/v1beta/models/{MODEL}:generateContent"), &gemini).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED", "{body}");

    // Another tenant is not affected.
    let response = app.v1(&other_key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(upstream.requests(), 4, "refused requests never reached the upstream");

    // A stream that ends gives its slot back.
    drop(a);
    wait_in_flight(&app, 2).await;
    let d = open_stream(&app, &key1).await;
    drop((b, c, d));
    wait_in_flight(&app, 0).await;
    app.settled().await;
    assert_eq!(app.gateway.gateway().admission.tracked(), (0, 0), "idle counters are removed");
    assert_eq!(log_rows(&app).await, 5, "four streams and the other tenant's request; no refusal logged");
    let charged: i64 = sqlx::query("SELECT cost FROM request_logs WHERE user_id = $1")
        .bind(user)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<i64, _>(0))
        .sum();
    assert_eq!(app.balance(user).await, before - charged, "refusals cost nothing");
    assert!(app.balance(other).await < 10_000_000_000);
    app.assert_ledger_consistent().await;
}

/// A request over a cap waits for a slot, at most the admission wait: it is admitted when a slot
/// frees within the wait, refused with 429 and `Retry-After` when none does.
async fn admission_waits_a_bounded_time_then_answers_429_with_retry_after(backend: Backend) {
    let (_upstream, port) = Upstream::start().await;
    let app =
        app_with(backend, port, &[("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "1"), ("BURNCLOUD_ADMISSION_WAIT_MS", "1000")])
            .await;
    let (_, key) = app.user_with_key("10.00").await;
    let first = open_stream(&app, &key).await;

    let started = Instant::now();
    let response = app.v1(&key, "/v1/chat/completions", &chat(false)).await;
    let waited = started.elapsed();
    assert_concurrency_refusal(response).await;
    assert!(waited >= Duration::from_millis(900), "refused after waiting only {waited:?}");
    assert!(waited < Duration::from_secs(3), "waited {waited:?}: the wait is bounded");

    // A slot that frees during the wait goes to the waiting request.
    let waiting = {
        let (client, url, key) = (app.client.clone(), app.url("/v1/chat/completions"), key.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            let response = client.post(url).bearer_auth(key).json(&chat(false)).send().await.unwrap();
            (response.status().as_u16(), started.elapsed())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(first);
    let (status, waited) = waiting.await.unwrap();
    assert_eq!(status, 200, "admitted when the stream ended");
    assert!(waited >= Duration::from_millis(250), "it did wait: {waited:?}");
    wait_in_flight(&app, 0).await;
    app.assert_ledger_consistent().await;
}

/// With a small global cap, one tenant hammering it gets its own cap's worth and no more; another
/// tenant still gets in; when the server is full, a newcomer is refused in bounded time (not
/// queued for ever behind the unsettled-holds cap).
async fn the_global_cap_does_not_let_one_tenant_starve_the_others(backend: Backend) {
    let (_upstream, port) = Upstream::start().await;
    let app = app_with(
        backend,
        port,
        &[
            ("BURNCLOUD_MAX_CONCURRENT_REQUESTS", "4"),
            ("BURNCLOUD_MAX_CONCURRENT_PER_USER", "2"),
            ("BURNCLOUD_ADMISSION_WAIT_MS", "200"),
        ],
    )
    .await;
    let (greedy, greedy_key) = app.user_with_key("10.00").await;
    let greedy_key2 = second_key(&app, greedy).await;
    let (_, fair_key) = app.user_with_key("10.00").await;
    let (_, late_key) = app.user_with_key("10.00").await;

    // The greedy tenant opens ten streams at once, over two keys.
    let attempts = (0..10).map(|i| {
        let key = if i % 2 == 0 { greedy_key.clone() } else { greedy_key2.clone() };
        let (client, url) = (app.client.clone(), app.url("/v1/chat/completions"));
        tokio::spawn(async move { client.post(url).bearer_auth(key).json(&chat(true)).send().await.unwrap() })
    });
    let mut greedy_open = Vec::new();
    for attempt in futures_util::future::join_all(attempts).await {
        let response = attempt.unwrap();
        match response.status().as_u16() {
            200 => greedy_open.push(response),
            _ => {
                // Its own caps refuse it (a key's or the account's), never the server's.
                let message = assert_concurrency_refusal(response).await;
                assert!(message.contains("has 2 requests in flight"), "{message}");
            }
        }
    }
    assert_eq!(greedy_open.len(), 2, "one tenant gets its own cap, not the server's");

    // The fair tenant still gets its slots.
    let fair = [open_stream(&app, &fair_key).await, open_stream(&app, &fair_key).await];
    // The server is full now: a newcomer is told so, after the bounded wait.
    let started = Instant::now();
    let message = assert_concurrency_refusal(app.v1(&late_key, "/v1/chat/completions", &chat(false)).await).await;
    assert!(message.contains("server is at its limit"), "{message}");
    assert!(started.elapsed() < Duration::from_secs(3));

    drop(greedy_open);
    wait_in_flight(&app, 2).await;
    let response = app.v1(&late_key, "/v1/chat/completions", &chat(false)).await;
    assert_eq!(response.status(), 200, "a freed slot goes to whoever asks");
    drop(fair);
    wait_in_flight(&app, 0).await;
    app.assert_ledger_consistent().await;
}

/// Reads until the peer closes the connection (or `limit` passes); what was read, and whether
/// it closed.
async fn read_until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(Ok(n)) => received.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

/// Slow headers (slowloris): a client that sends half a request line and stalls is disconnected
/// after the header-read timeout; one that is slow but finishes in time is served.
async fn a_client_that_stalls_in_its_headers_is_disconnected_after_the_header_read_timeout(backend: Backend) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_HEADER_READ_TIMEOUT_SECS", "1")]).await;
    let mut stalled = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    stalled.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.").await.unwrap();
    let started = Instant::now();
    let (received, closed) = read_until_closed(&mut stalled, Duration::from_secs(10)).await;
    let after = started.elapsed();
    assert!(closed, "the connection is still open after {after:?}");
    assert!(received.is_empty() || received.starts_with("HTTP/1.1 408"), "{received}");
    assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "closed after {after:?}");

    // A connection that sends nothing at all is closed too.
    let mut silent = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let (_, closed) = read_until_closed(&mut silent, Duration::from_secs(5)).await;
    assert!(closed, "an idle connection is closed");

    // Slow but within the timeout: served.
    let mut slow = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHo").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    slow.write_all(b"st: 127.0.0.1\r\nConnection: close\r\n\r\n").await.unwrap();
    let (received, _) = read_until_closed(&mut slow, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
}

/// Slow body: headers announce 1,000 bytes, 10 arrive, then nothing. The gateway answers 408 in
/// OpenAI's shape after the body-read timeout, takes no hold and logs nothing; the management
/// API answers a JSON 408 too.
async fn a_client_that_stalls_in_its_body_gets_408_after_the_body_read_timeout(backend: Backend) {
    let (upstream, port) = Upstream::start().await;
    let app = app_with(backend, port, &[("BURNCLOUD_BODY_READ_TIMEOUT_SECS", "1")]).await;
    let (user, key) = app.user_with_key("10.00").await;
    let before = app.balance(user).await;

    let send_partial = |path: &str, token: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"model\":"
        )
    };
    for (path, token) in
        [("/v1/chat/completions", key.as_str()), ("/api/admin/users", crate::support::helpers::ADMIN_TOKEN)]
    {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
        stream.write_all(send_partial(path, token).as_bytes()).await.unwrap();
        let started = Instant::now();
        let (received, _) = read_until_closed(&mut stream, Duration::from_secs(10)).await;
        let after = started.elapsed();
        assert!(received.starts_with("HTTP/1.1 408"), "{path}: {received}");
        assert!(received.contains("\"code\":\"request_timeout\""), "{path}: {received}");
        assert!(after >= Duration::from_millis(900) && after < Duration::from_secs(5), "{path}: after {after:?}");
    }
    assert_eq!(upstream.requests(), 0);
    assert_eq!(app.gateway.gateway().admission.in_flight(), 0, "the slot was given back");
    assert_eq!(log_rows(&app).await, 0);
    assert_eq!(app.balance(user).await, before, "nothing held or charged");

    // A body that arrives in time, even in pieces, is served.
    let body = chat(false).to_string();
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port)).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body.as_bytes()[..10]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stream.write_all(&body.as_bytes()[10..]).await.unwrap();
    let (received, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(received.starts_with("HTTP/1.1 200"), "{received}");
    app.assert_ledger_consistent().await;
}

/// The test: tenant A opens 2,100 streaming requests over raw sockets with small receive
/// buffers and never reads them; tenant B's plain request meanwhile is answered promptly. A's
/// caps admit 128 (the per-user default) and refuse the rest with 429 after the admission wait.
async fn one_tenant_opening_2100_never_read_streams_does_not_slow_another_tenants_request(backend: Backend) {
    const STREAMS: usize = 2100;
    let (upstream, port) = Upstream::start().await;
    let app = app_with(backend, port, &[]).await;
    let (a, a_key1) = app.user_with_key("100.00").await;
    let a_keys = [a_key1, second_key(&app, a).await, second_key(&app, a).await];
    let (_, b_key) = app.user_with_key("10.00").await;
    // Keys are used before (a key's first request reads the database; the cache then serves it).
    for key in a_keys.iter().chain([&b_key]) {
        assert_eq!(app.v1(key, "/v1/chat/completions", &chat(false)).await.status(), 200);
    }
    let warm = upstream.requests();

    let body = chat(true).to_string();
    let mut sockets = Vec::with_capacity(STREAMS);
    for i in 0..STREAMS {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(format!("127.0.0.1:{}", app.port).parse().unwrap()).await.unwrap();
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            a_keys[i % a_keys.len()],
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        sockets.push(stream);
    }

    // Tenant B, while A's requests are open or waiting for a slot.
    let started = Instant::now();
    let response = app.v1(&b_key, "/v1/chat/completions", &chat(false)).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 200);
    assert!(took < Duration::from_secs(2), "tenant B waited {took:?}");

    // A's answers: 128 streams started, every other request refused after the wait.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (mut started_streams, mut refused) = (0, 0);
    let mut buffer = vec![0u8; 4096];
    for stream in &mut sockets {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.unwrap().unwrap();
        let head = String::from_utf8_lossy(&buffer[..n]).to_lowercase();
        if head.starts_with("http/1.1 200") {
            started_streams += 1;
        } else {
            assert!(head.starts_with("http/1.1 429") && head.contains("retry-after: 1"), "{head}");
            refused += 1;
        }
    }
    assert_eq!(started_streams, 128, "the per-user cap");
    assert_eq!(refused, STREAMS - 128);
    assert_eq!(upstream.requests() - warm, 128 + 1, "A's admitted streams and B's request");

    drop(sockets);
    wait_in_flight(&app, 0).await;
    app.settled().await;
    app.assert_ledger_consistent().await;
}
