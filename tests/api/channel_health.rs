//! Health-aware routing: the circuit breaker opens after repeated failures, lets one trial through
//! after its cooldown and closes or reopens on its outcome; affinity never pins an open circuit;
//! a route whose circuits are all open fails fast; `least_latency` and `least_busy` pick by what
//! each channel's answers measured. Every channel's health is in its API view and in `/metrics`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};

use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, serve_locally, spawn_app, spawn_app_env};

const METRICS_TOKEN: &str = "metrics-token-channel-health-0123456789ab";

db_tests!(
    the_circuit_breaker_opens_half_opens_and_closes_against_a_scripted_upstream,
    affinity_never_pins_an_open_circuit_and_a_route_of_open_circuits_fails_fast,
    least_latency_prefers_the_channel_that_answers_first,
    least_busy_sends_each_request_to_the_channel_with_fewest_in_flight,
);

/// How one channel (a path prefix) of the scripted upstream answers.
#[derive(Clone, Copy, Default)]
struct Script {
    /// An error status with OpenAI's error body, instead of an answer.
    status: Option<u16>,
    /// Waited before answering.
    delay: Duration,
}

/// An OpenAI-compatible upstream whose channels (`/{name}/v1/…`) answer as scripted, counted.
#[derive(Clone, Default)]
struct ScriptedUpstream {
    scripts: Arc<Mutex<HashMap<String, Script>>>,
    seen: Arc<Mutex<HashMap<String, usize>>>,
    port: u16,
}

impl ScriptedUpstream {
    async fn start() -> Self {
        let mut upstream = Self::default();
        let app = Router::new().fallback(scripted).with_state(upstream.clone());
        upstream.port = serve_locally(app).await;
        upstream
    }

    fn base_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}/v1", self.port)
    }

    fn script(&self, name: &str, script: Script) {
        self.scripts.lock().unwrap().insert(name.to_string(), script);
    }

    fn count(&self, name: &str) -> usize {
        self.seen.lock().unwrap().get(name).copied().unwrap_or(0)
    }
}

async fn scripted(State(upstream): State<ScriptedUpstream>, uri: Uri, body: Bytes) -> Response {
    let name = uri.path().trim_start_matches('/').split('/').next().unwrap_or_default().to_string();
    *upstream.seen.lock().unwrap().entry(name.clone()).or_default() += 1;
    let script = upstream.scripts.lock().unwrap().get(&name).copied().unwrap_or_default();
    tokio::time::sleep(script.delay).await;
    if let Some(status) = script.status {
        let error = json!({ "error": { "message": "The server had an error while processing your request.",
            "type": "server_error", "param": null, "code": null } });
        return (StatusCode::from_u16(status).unwrap(), axum::Json(error)).into_response();
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    axum::Json(json!({
        "id": "chatcmpl-scripted", "object": "chat.completion", "created": 1_700_000_000,
        "model": request["model"], "choices": [{ "index": 0, "finish_reason": "stop",
            "message": { "role": "assistant", "content": format!("Hello from {name}") } }],
        "usage": { "prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17 }
    }))
    .into_response()
}

fn now_ms() -> i64 {
    i64::try_from(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn set(app: &TestApp, key: &str, value: &str) {
    let (status, body) = app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await;
    assert_eq!(status, 200, "{key}: {body}");
}

/// Channels serving `m` on the scripted upstream: `(name, priority, weight)` → ids by name.
async fn channels(app: &TestApp, upstream: &ScriptedUpstream, specs: &[(&str, i64, i64)]) -> HashMap<String, i64> {
    let mut ids = HashMap::new();
    for (name, priority, weight) in specs {
        let id = app
            .add_channel(json!({ "name": name, "type": "openai", "base_url": upstream.base_url(name), "key": "sk-up",
                "models": ["m"], "priority": priority, "weight": weight }))
            .await;
        ids.insert(name.to_string(), id);
    }
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    ids
}

/// A channel's health as the API shows it.
async fn health(app: &TestApp, id: i64) -> Value {
    let (status, body) = app.admin("GET", &format!("/api/admin/channels/{id}"), None).await;
    assert_eq!(status, 200, "{body}");
    body["health"].clone()
}

/// Sends one chat request (with a conversation marker when given); its status and body.
async fn ask(app: &TestApp, key: &str, user: Option<&str>) -> (u16, Value) {
    let mut body = chat("m");
    if let Some(user) = user {
        body["user"] = json!(user);
    }
    let answer = app.v1(key, "/v1/chat/completions", &body).await;
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn the_circuit_breaker_opens_half_opens_and_closes_against_a_scripted_upstream(backend: Backend) {
    let app = spawn_app(backend).await;
    set(&app, "gateway.circuit_failures", "3").await;
    set(&app, "gateway.circuit_error_rate", "0").await;
    set(&app, "gateway.circuit_cooldown_secs", "1").await;
    let upstream = ScriptedUpstream::start().await;
    // The flaky channel is the first choice whenever its circuit lets it be.
    let ids = channels(&app, &upstream, &[("flaky", 10, 1), ("steady", 0, 1)]).await;
    let flaky = ids["flaky"];
    upstream.script("flaky", Script { status: Some(500), ..Script::default() });
    let (user, key) = app.user_with_key("10.00").await;
    let (_, other) = app.user_with_key("10.00").await;

    // One tenant alone, however many failures it provokes, does not take the channel from
    // everyone (`gateway.circuit_min_users` 2): each request fails over and is answered.
    for i in 0..4 {
        let (status, body) = ask(&app, &key, None).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["choices"][0]["message"]["content"], "Hello from steady");
        assert_eq!(upstream.count("flaky"), i + 1);
    }
    assert_eq!(health(&app, flaky).await["circuit"], "closed");
    // A second tenant fails there too (five in a row, two users): the circuit opens.
    assert_eq!(ask(&app, &other, None).await.0, 200);
    assert_eq!(upstream.count("flaky"), 5);
    let open = health(&app, flaky).await;
    assert_eq!(open["circuit"], "open", "{open}");
    assert!(open["circuit_until"].as_i64().unwrap() > now_ms(), "{open}");
    assert_eq!((open["requests"].as_u64(), open["failures"].as_u64()), (Some(5), Some(5)));
    assert_eq!(open["error_rate"].as_f64(), Some(1.0));
    // Open: the channel costs no attempt at all.
    for _ in 0..3 {
        assert_eq!(ask(&app, &key, None).await.0, 200);
    }
    assert_eq!(upstream.count("flaky"), 5);
    app.settled().await;
    // Five requests tried the flaky channel, then the steady one; three went straight to steady.
    let attempts: Vec<i64> = sqlx::query_scalar("SELECT attempts FROM request_logs ORDER BY attempts DESC")
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert_eq!(attempts, [2, 2, 2, 2, 2, 1, 1, 1]);

    // After the cooldown one trial goes through; it fails, so the circuit opens again.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(ask(&app, &key, None).await.0, 200);
    assert_eq!(upstream.count("flaky"), 6);
    assert_eq!(health(&app, flaky).await["circuit"], "open");
    assert_eq!(ask(&app, &key, None).await.0, 200);
    assert_eq!(upstream.count("flaky"), 6, "no traffic while open again");

    // The upstream recovers: the next trial answers and closes the circuit; traffic returns.
    upstream.script("flaky", Script::default());
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, body) = ask(&app, &key, None).await;
    assert_eq!((status, &body["choices"][0]["message"]["content"]), (200, &json!("Hello from flaky")));
    let closed = health(&app, flaky).await;
    assert_eq!((closed["circuit"].as_str(), closed["circuit_until"].as_i64()), (Some("closed"), None), "{closed}");
    assert!(closed["ttft_ms"].is_i64() && closed["latency_ms"].is_i64(), "{closed}");
    for _ in 0..3 {
        assert_eq!(ask(&app, &key, None).await.1["choices"][0]["message"]["content"], "Hello from flaky");
    }
    assert_eq!(upstream.count("flaky"), 10);

    // Every request was answered and charged once; the ledger holds.
    app.settled().await;
    let charged: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE status_code = 200 AND cost > 0")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(charged, 14);
    assert!(app.balance(user).await < 10_000_000_000);
    app.assert_ledger_consistent().await;
}

async fn affinity_never_pins_an_open_circuit_and_a_route_of_open_circuits_fails_fast(backend: Backend) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_METRICS_TOKEN", METRICS_TOKEN)]).await;
    set(&app, "gateway.circuit_failures", "2").await;
    set(&app, "gateway.circuit_min_users", "1").await;
    set(&app, "gateway.circuit_cooldown_secs", "60").await;
    set(&app, "gateway.routing_strategy", "failover").await;
    let upstream = ScriptedUpstream::start().await;
    // Failover order: the heavier first.
    let ids = channels(&app, &upstream, &[("a", 0, 10), ("b", 0, 1)]).await;
    let (user, key) = app.user_with_key("10.00").await;

    // A conversation sticks to `a`.
    assert_eq!(ask(&app, &key, Some("conversation-1")).await.1["choices"][0]["message"]["content"], "Hello from a");
    // `a` fails twice for other requests: its circuit opens.
    upstream.script("a", Script { status: Some(503), ..Script::default() });
    for _ in 0..2 {
        assert_eq!(ask(&app, &key, None).await.1["choices"][0]["message"]["content"], "Hello from b");
    }
    assert_eq!(upstream.count("a"), 3);
    assert_eq!(health(&app, ids["a"]).await["circuit"], "open");
    // The conversation is not pinned to the open circuit: it goes to `b` without trying `a`.
    let (status, body) = ask(&app, &key, Some("conversation-1")).await;
    assert_eq!((status, &body["choices"][0]["message"]["content"]), (200, &json!("Hello from b")));
    assert_eq!(upstream.count("a"), 3);

    // `b` fails too until its circuit opens (the request that opens it gets the upstream's error).
    upstream.script("b", Script { status: Some(500), ..Script::default() });
    for _ in 0..2 {
        let (status, body) = ask(&app, &key, None).await;
        assert!(status >= 500, "{status} {body}");
    }
    assert_eq!(health(&app, ids["b"]).await["circuit"], "open");
    let before = (upstream.count("a"), upstream.count("b"));
    // Every circuit open: an OpenAI-shaped 503 at once, no upstream touched, nothing charged.
    let started = std::time::Instant::now();
    let (status, body) = ask(&app, &key, None).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "no_available_channel", "{body}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!((upstream.count("a"), upstream.count("b")), before);
    app.settled().await;
    let charged_failures: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM request_logs WHERE status_code >= 400 AND cost <> 0")
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    assert_eq!(charged_failures, 0);
    let _ = user;
    app.assert_ledger_consistent().await;

    // A passing test by the operator closes a circuit at once (no waiting for the cooldown).
    upstream.script("a", Script::default());
    let (status, test) = app.admin("POST", &format!("/api/admin/channels/{}/test", ids["a"]), None).await;
    assert_eq!((status, &test["ok"]), (200, &json!(true)), "{test}");
    assert_eq!(health(&app, ids["a"]).await["circuit"], "closed");
    assert_eq!(ask(&app, &key, None).await.1["choices"][0]["message"]["content"], "Hello from a");

    // `/metrics` shows each channel's circuit.
    let metrics =
        app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap().text().await.unwrap();
    for (id, circuit, open) in [(ids["a"], "closed", 0), (ids["b"], "open", 1)] {
        let line = format!("burncloud_channel_circuit_open{{channel_id=\"{id}\",circuit=\"{circuit}\"}} {open}");
        assert!(metrics.contains(&line), "{line} in {metrics}");
    }
}

async fn least_latency_prefers_the_channel_that_answers_first(backend: Backend) {
    let app = spawn_app(backend).await;
    set(&app, "gateway.routing_strategy", "least_latency").await;
    let upstream = ScriptedUpstream::start().await;
    let ids = channels(&app, &upstream, &[("slow", 0, 1), ("fast", 0, 1)]).await;
    upstream.script("slow", Script { delay: Duration::from_millis(150), ..Script::default() });
    let (_, key) = app.user_with_key("10.00").await;
    // Unmeasured channels go first: the first two requests measure one each.
    for _ in 0..2 {
        assert_eq!(ask(&app, &key, None).await.0, 200);
    }
    assert_eq!((upstream.count("slow"), upstream.count("fast")), (1, 1));
    for _ in 0..40 {
        assert_eq!(ask(&app, &key, None).await.0, 200);
    }
    // One pick in 20 goes by weight, to keep the slow one's figure current.
    let slow = upstream.count("slow") - 1;
    assert!(slow <= 8, "the slow channel took {slow} of 40");
    let (fast, slow) = (health(&app, ids["fast"]).await, health(&app, ids["slow"]).await);
    assert!(fast["ttft_ms"].as_i64().unwrap() < 100 && slow["ttft_ms"].as_i64().unwrap() >= 150, "{fast} {slow}");
    app.assert_ledger_consistent().await;
}

async fn least_busy_sends_each_request_to_the_channel_with_fewest_in_flight(backend: Backend) {
    let app = spawn_app(backend).await;
    set(&app, "gateway.routing_strategy", "least_busy").await;
    // Streams that last about 2 s each, on two channels of one tier.
    let fake = FakeOpenAi::start(Behavior::Slow { chunks: 10, interval: Duration::from_millis(200) }).await;
    let mut ids = Vec::new();
    for name in ["a", "b"] {
        ids.push(
            app.add_channel(
                json!({ "name": name, "type": "openai", "base_url": fake.base_url(name), "key": "sk-up", "models": ["m"] }),
            )
            .await,
        );
    }
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let (_, key) = app.user_with_key("10.00").await;
    let mut open = Vec::new();
    for i in 1..=10usize {
        let mut body = chat("m");
        body["stream"] = json!(true);
        let answer = app.v1(&key, "/v1/chat/completions", &body).await;
        assert_eq!(answer.status(), 200);
        open.push(answer);
        // Each new stream goes to the channel with fewer in flight: never more than one apart.
        let (a, b) = (fake.count("a"), fake.count("b"));
        assert_eq!(a + b, i);
        assert!(a.abs_diff(b) <= 1, "after {i} streams: a {a}, b {b}");
    }
    let busy = health(&app, ids[0]).await["in_flight"].as_i64().unwrap()
        + health(&app, ids[1]).await["in_flight"].as_i64().unwrap();
    assert_eq!(busy, 10);
    // Read to their end: nothing is in flight any more.
    for answer in open {
        assert!(answer.text().await.unwrap().contains("[DONE]"));
    }
    app.settled().await;
    for id in ids {
        assert_eq!(health(&app, id).await["in_flight"], 0);
    }
    app.assert_ledger_consistent().await;
}
