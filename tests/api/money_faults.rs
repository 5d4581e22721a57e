//! Money under faults (issue: "every delivered token billed once, never twice").
//!
//! Interrupted streams: for every provider behind every ingress that can reach it, a fake upstream
//! speaking the provider's wire format sends the first `k` events of a long answer and then stalls
//! (the client hangs up), breaks the connection, or idles past the gateway's timeout. The request
//! must be billed for the larger of what the upstream reported so far and the tokens of the text
//! it delivered (`o200k_base`; every delta here is " hello" × 50 = 50 tokens), never for the
//! `output_tokens: 1` of Anthropic's `message_start` or the prompt-only usage of Gemini's early
//! events. Cuts fall after the first event, in the middle, and before the last.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::header;
use axum::response::Response;
use burncloud::providers::eventstream;
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::helpers::{Backend, TestApp, spawn_app_with};

db_tests!(
    interrupted_streams_chat_openai,
    interrupted_streams_chat_azure,
    interrupted_streams_chat_anthropic,
    interrupted_streams_chat_gemini,
    interrupted_streams_chat_bedrock,
    interrupted_streams_completions_openai,
    interrupted_streams_responses_openai,
    interrupted_streams_messages_anthropic,
    interrupted_streams_messages_openai,
    interrupted_streams_messages_gemini,
    interrupted_streams_messages_bedrock,
    interrupted_streams_gemini_native,
    interrupted_streams_upstream_cut,
    interrupted_streams_idle_timeout,
    interrupted_streams_claude_rule,
    completed_streams_bill_the_upstream_report,
    shutdown_cuts_and_settles_open_streams,
    a_client_that_stops_reading_is_cut_and_billed,
    clients_gone_during_the_hold_leave_no_open_transaction,
);

const DELTAS: usize = 30;
const TOKENS_PER_DELTA: i64 = 50;
/// The prompt the upstreams report.
const PROMPT_REPORTED: i64 = 25;
/// The output the upstreams report at the end: less than the text's o200k count, as another
/// tokenizer may count, so a clean end (billed as reported) differs from a cut (the larger).
const REPORTED_OUTPUT: i64 = TOKENS_PER_DELTA * DELTAS as i64 - 100;
/// The gateway's own count of the request's text ("hi").
const PROMPT_ESTIMATE: i64 = 1;
/// Prices: 1.00 and 2.00 per 1M tokens, in nano-units per token.
const INPUT_NANO: i64 = 1000;
const OUTPUT_NANO: i64 = 2000;
const MODEL: &str = "cut-model";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Provider {
    OpenAi,
    Azure,
    Anthropic,
    Gemini,
    Bedrock,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ingress {
    Chat,
    Completions,
    Responses,
    Messages,
    GeminiNative,
}

/// What the fake upstream does after its first `k` events.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    /// Sends nothing more and keeps the connection open (the client hangs up, or the gateway's
    /// idle timeout ends it).
    Stall,
    /// Breaks the connection.
    Cut,
    /// Ends the answer cleanly.
    End,
}

/// One upstream event and what the upstream has said by the time it is sent.
struct Step {
    event: Bytes,
    /// Text deltas sent so far, this one included.
    deltas: usize,
    /// `(prompt, completion)` the upstream has reported so far.
    reported: Option<(i64, i64)>,
}

fn delta_text() -> String {
    " hello".repeat(usize::try_from(TOKENS_PER_DELTA).unwrap())
}

fn sse(event: Option<&str>, data: Value) -> Bytes {
    match event {
        Some(name) => Bytes::from(format!("event: {name}\ndata: {data}\n\n")),
        None => Bytes::from(format!("data: {data}\n\n")),
    }
}

/// The whole answer, as `provider` streams it for the upstream request `ingress` leads to.
fn script(provider: Provider, ingress: Ingress) -> Vec<Step> {
    let text = delta_text();
    let total = REPORTED_OUTPUT;
    let mut steps = Vec::new();
    let mut push =
        |event: Bytes, deltas: usize, reported: Option<(i64, i64)>| steps.push(Step { event, deltas, reported });
    match (provider, ingress) {
        (Provider::OpenAi | Provider::Azure, Ingress::Completions) => {
            for i in 1..=DELTAS {
                let chunk = json!({ "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                    "choices": [{ "text": text, "index": 0, "logprobs": null, "finish_reason": null }] });
                push(sse(None, chunk), i, None);
            }
            let usage = json!({ "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m", "choices": [],
                "usage": { "prompt_tokens": PROMPT_REPORTED, "completion_tokens": total, "total_tokens": total + PROMPT_REPORTED } });
            push(sse(None, usage), DELTAS, Some((PROMPT_REPORTED, total)));
            push(Bytes::from("data: [DONE]\n\n"), DELTAS, Some((PROMPT_REPORTED, total)));
        }
        (Provider::OpenAi | Provider::Azure, Ingress::Responses) => {
            let created = json!({ "type": "response.created", "sequence_number": 0, "response": { "id": "resp_1",
                "object": "response", "status": "in_progress", "output": [], "usage": null } });
            push(sse(Some("response.created"), created), 0, None);
            for i in 1..=DELTAS {
                let delta = json!({ "type": "response.output_text.delta", "sequence_number": i, "item_id": "msg_1",
                    "output_index": 0, "content_index": 0, "delta": text });
                push(sse(Some("response.output_text.delta"), delta), i, None);
            }
            let done = json!({ "type": "response.output_text.done", "item_id": "msg_1", "output_index": 0,
                "content_index": 0, "text": text.repeat(DELTAS) });
            push(sse(Some("response.output_text.done"), done), DELTAS, None);
            let completed = json!({ "type": "response.completed", "response": { "id": "resp_1", "object": "response",
                "status": "completed", "output": [{ "type": "message", "id": "msg_1", "role": "assistant",
                "content": [{ "type": "output_text", "text": text.repeat(DELTAS) }] }],
                "usage": { "input_tokens": PROMPT_REPORTED, "output_tokens": total, "total_tokens": total + PROMPT_REPORTED } } });
            push(sse(Some("response.completed"), completed), DELTAS, Some((PROMPT_REPORTED, total)));
        }
        (Provider::OpenAi | Provider::Azure, _) => {
            let chunk = |delta: Value, finish: Value| {
                json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                    "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }] })
            };
            push(sse(None, chunk(json!({ "role": "assistant", "content": "" }), Value::Null)), 0, None);
            for i in 1..=DELTAS {
                push(sse(None, chunk(json!({ "content": text }), Value::Null)), i, None);
            }
            push(sse(None, chunk(json!({}), json!("stop"))), DELTAS, None);
            let usage = json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
                "choices": [], "usage": { "prompt_tokens": PROMPT_REPORTED, "completion_tokens": total,
                "total_tokens": total + PROMPT_REPORTED } });
            push(sse(None, usage), DELTAS, Some((PROMPT_REPORTED, total)));
            push(Bytes::from("data: [DONE]\n\n"), DELTAS, Some((PROMPT_REPORTED, total)));
        }
        (Provider::Anthropic, _) => {
            let start = json!({ "type": "message_start", "message": { "id": "msg_1", "type": "message",
                "role": "assistant", "content": [], "model": "claude-x", "stop_reason": null, "stop_sequence": null,
                "usage": { "input_tokens": PROMPT_REPORTED, "output_tokens": 1 } } });
            let early = Some((PROMPT_REPORTED, 1));
            push(sse(Some("message_start"), start), 0, early);
            let block =
                json!({ "type": "content_block_start", "index": 0, "content_block": { "type": "text", "text": "" } });
            push(sse(Some("content_block_start"), block), 0, early);
            for i in 1..=DELTAS {
                let delta = json!({ "type": "content_block_delta", "index": 0, "delta": { "type": "text_delta", "text": text } });
                push(sse(Some("content_block_delta"), delta), i, early);
            }
            push(sse(Some("content_block_stop"), json!({ "type": "content_block_stop", "index": 0 })), DELTAS, early);
            let delta = json!({ "type": "message_delta", "delta": { "stop_reason": "end_turn", "stop_sequence": null },
                "usage": { "output_tokens": total } });
            push(sse(Some("message_delta"), delta), DELTAS, Some((PROMPT_REPORTED, total)));
            push(sse(Some("message_stop"), json!({ "type": "message_stop" })), DELTAS, Some((PROMPT_REPORTED, total)));
        }
        (Provider::Gemini, _) => {
            // Every event reports the usage so far; until the last, only the prompt.
            for i in 1..=DELTAS {
                let last = i == DELTAS;
                let mut candidate = json!({ "content": { "parts": [{ "text": text }], "role": "model" }, "index": 0 });
                let mut usage = json!({ "promptTokenCount": PROMPT_REPORTED, "totalTokenCount": PROMPT_REPORTED });
                if last {
                    candidate["finishReason"] = json!("STOP");
                    usage = json!({ "promptTokenCount": PROMPT_REPORTED, "candidatesTokenCount": total,
                        "totalTokenCount": total + PROMPT_REPORTED });
                }
                let event =
                    json!({ "candidates": [candidate], "usageMetadata": usage, "modelVersion": "gemini-2.0-flash" });
                push(sse(None, event), i, Some((PROMPT_REPORTED, if last { total } else { 0 })));
            }
        }
        (Provider::Bedrock, _) => {
            let frame = |kind: &str, payload: Value| {
                let headers =
                    [(":event-type", kind), (":content-type", "application/json"), (":message-type", "event")];
                eventstream::encode(&headers, payload.to_string().as_bytes())
            };
            push(frame("messageStart", json!({ "role": "assistant" })), 0, None);
            for i in 1..=DELTAS {
                push(frame("contentBlockDelta", json!({ "delta": { "text": text }, "contentBlockIndex": 0 })), i, None);
            }
            push(frame("contentBlockStop", json!({ "contentBlockIndex": 0 })), DELTAS, None);
            push(frame("messageStop", json!({ "stopReason": "end_turn" })), DELTAS, None);
            let metadata = json!({ "usage": { "inputTokens": PROMPT_REPORTED, "outputTokens": total,
                "totalTokens": total + PROMPT_REPORTED }, "metrics": { "latencyMs": 100 } });
            push(frame("metadata", metadata), DELTAS, Some((PROMPT_REPORTED, total)));
        }
    }
    steps
}

/// A fake upstream that sends the first `k` events of its script, then ends as told.
#[derive(Clone)]
struct CuttingUpstream {
    events: Arc<Mutex<Vec<Bytes>>>,
    content_type: &'static str,
    k: Arc<AtomicUsize>,
    ending: Arc<Mutex<Ending>>,
}

impl CuttingUpstream {
    async fn start(provider: Provider, ingress: Ingress) -> (Self, u16) {
        let upstream = Self {
            events: Arc::new(Mutex::new(script(provider, ingress).into_iter().map(|s| s.event).collect())),
            content_type: if provider == Provider::Bedrock {
                "application/vnd.amazon.eventstream"
            } else {
                "text/event-stream"
            },
            k: Arc::default(),
            ending: Arc::new(Mutex::new(Ending::Stall)),
        };
        let shared = upstream.clone();
        let app = Router::new().fallback(move || {
            let shared = shared.clone();
            async move { shared.answer() }
        });
        let port = crate::support::helpers::serve_locally(app).await;
        (upstream, port)
    }

    fn set(&self, k: usize, ending: Ending) {
        self.k.store(k, Ordering::SeqCst);
        *self.ending.lock().unwrap() = ending;
    }

    fn answer(&self) -> Response {
        let k = self.k.load(Ordering::SeqCst);
        let events: Vec<Result<Bytes, std::io::Error>> =
            self.events.lock().unwrap().iter().take(k).cloned().map(Ok).collect();
        let head = futures_util::stream::iter(events);
        let body = match *self.ending.lock().unwrap() {
            Ending::Stall => Body::from_stream(head.chain(futures_util::stream::pending())),
            Ending::End => Body::from_stream(head),
            Ending::Cut => {
                let broken = futures_util::stream::once(async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Err(std::io::Error::other("connection reset"))
                });
                Body::from_stream(head.chain(broken))
            }
        };
        let mut response = Response::new(body);
        response.headers_mut().insert(header::CONTENT_TYPE, self.content_type.parse().unwrap());
        response
    }
}

async fn app_with_channel(backend: Backend, provider: Provider, port: u16, idle_secs: Option<u64>) -> TestApp {
    let idle = idle_secs.map(|secs| ("BURNCLOUD_UPSTREAM_IDLE_TIMEOUT_SECS", secs));
    app_with_channel_and(backend, provider, port, idle.as_slice()).await
}

async fn app_with_channel_and(backend: Backend, provider: Provider, port: u16, settings: &[(&str, u64)]) -> TestApp {
    let app = spawn_app_with(
        backend,
        |env| {
            for (name, value) in settings {
                env.insert((*name).to_string(), value.to_string());
            }
        },
        |router| router,
    )
    .await;
    let base = format!("http://127.0.0.1:{port}");
    let channel = match provider {
        Provider::OpenAi => json!({ "name": "c", "type": "openai", "base_url": format!("{base}/v1"), "key": "sk-up" }),
        Provider::Azure => json!({ "name": "c", "type": "azure", "base_url": base, "key": "azure-key",
            "config": { "api_version": "2024-10-21" } }),
        Provider::Anthropic => json!({ "name": "c", "type": "anthropic", "base_url": base, "key": "sk-ant" }),
        Provider::Gemini => json!({ "name": "c", "type": "gemini", "base_url": base, "key": "gemini-key" }),
        Provider::Bedrock => json!({ "name": "c", "type": "bedrock", "base_url": base,
            "key": "AKIDEXAMPLE:wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "config": { "region": "us-west-2" } }),
    };
    let mut channel = channel;
    channel["models"] = json!([MODEL, "claude-sonnet-cut"]);
    app.add_channel(channel).await;
    for model in [MODEL, "claude-sonnet-cut"] {
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    app
}

/// Sends the ingress's streamed request and reads until the stream ends or stalls for 500 ms,
/// then hangs up. The text-bearing bytes received.
async fn stream_and_hang_up(app: &TestApp, key: &str, ingress: Ingress, model: &str) -> Vec<u8> {
    let request = match ingress {
        Ingress::Chat => app.client.post(app.url("/v1/chat/completions")).bearer_auth(key).json(&json!({
            "model": model, "messages": [{ "role": "user", "content": "hi" }], "stream": true, "max_tokens": 4000 })),
        Ingress::Completions => app.client.post(app.url("/v1/completions")).bearer_auth(key).json(&json!({
            "model": model, "prompt": "hi", "stream": true, "max_tokens": 4000 })),
        Ingress::Responses => app.client.post(app.url("/v1/responses")).bearer_auth(key).json(&json!({
            "model": model, "input": "hi", "stream": true, "max_output_tokens": 4000 })),
        Ingress::Messages => app.client.post(app.url("/v1/messages")).header("x-api-key", key).json(&json!({
            "model": model, "max_tokens": 4000, "messages": [{ "role": "user", "content": "hi" }], "stream": true })),
        Ingress::GeminiNative => app
            .client
            .post(app.url(&format!("/v1beta/models/{model}:streamGenerateContent?alt=sse")))
            .header("x-goog-api-key", key)
            .json(&json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }],
                "generationConfig": { "maxOutputTokens": 4000 } })),
    };
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{ingress:?}");
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout(Duration::from_millis(500), body.next()).await {
        received.extend_from_slice(&chunk);
    }
    drop(body);
    received
}

/// The last request's `(prompt, completion, cost)` once `n` requests are logged and settled.
async fn last_request(app: &TestApp, n: i64) -> (i64, i64, i64) {
    app.wait_for_logs(n).await;
    app.settled().await;
    let row = sqlx::query("SELECT prompt_tokens, completion_tokens, cost FROM request_logs ORDER BY id DESC LIMIT 1")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// What a stream cut after `k` events must be billed: `(prompt, completion)`.
fn expected_after(steps: &[Step], k: usize, rule: impl Fn(i64) -> i64) -> (i64, i64) {
    let step = &steps[k - 1];
    let delivered = rule(i64::try_from(step.deltas).unwrap() * TOKENS_PER_DELTA);
    match step.reported {
        Some((prompt, completion)) => (if prompt > 0 { prompt } else { PROMPT_ESTIMATE }, completion.max(delivered)),
        None => (PROMPT_ESTIMATE, delivered),
    }
}

/// Cuts the stream after the first event, in the middle and before the last, each time checking
/// the bill, the balance and the books.
async fn cut_everywhere(backend: Backend, provider: Provider, ingress: Ingress, ending: Ending, idle: Option<u64>) {
    let (upstream, port) = CuttingUpstream::start(provider, ingress).await;
    let app = app_with_channel(backend, provider, port, idle).await;
    let (user, key) = app.user_with_key("1.00").await;
    let steps = script(provider, ingress);
    let mut balance = app.balance(user).await;
    for (n, k) in [1, steps.len() / 2, steps.len() - 1].into_iter().enumerate() {
        upstream.set(k, ending);
        let received = stream_and_hang_up(&app, &key, ingress, MODEL).await;
        assert!(!received.is_empty(), "{provider:?} via {ingress:?}: the client got the first events");
        let (prompt, completion, cost) = last_request(&app, i64::try_from(n).unwrap() + 1).await;
        let expected = expected_after(&steps, k, |t| t);
        assert_eq!(
            (prompt, completion),
            expected,
            "{provider:?} via {ingress:?}, {ending:?} after {k} of {} events",
            steps.len()
        );
        assert_eq!(cost, prompt * INPUT_NANO + completion * OUTPUT_NANO);
        let now = app.balance(user).await;
        assert_eq!(now, balance - cost, "the rest of the hold is released");
        balance = now;
        app.assert_ledger_consistent().await;
    }
}

async fn interrupted_streams_chat_openai(backend: Backend) {
    cut_everywhere(backend, Provider::OpenAi, Ingress::Chat, Ending::Stall, None).await;
}

async fn interrupted_streams_chat_azure(backend: Backend) {
    cut_everywhere(backend, Provider::Azure, Ingress::Chat, Ending::Stall, None).await;
}

async fn interrupted_streams_chat_anthropic(backend: Backend) {
    cut_everywhere(backend, Provider::Anthropic, Ingress::Chat, Ending::Stall, None).await;
}

async fn interrupted_streams_chat_gemini(backend: Backend) {
    cut_everywhere(backend, Provider::Gemini, Ingress::Chat, Ending::Stall, None).await;
}

async fn interrupted_streams_chat_bedrock(backend: Backend) {
    cut_everywhere(backend, Provider::Bedrock, Ingress::Chat, Ending::Stall, None).await;
}

async fn interrupted_streams_completions_openai(backend: Backend) {
    cut_everywhere(backend, Provider::OpenAi, Ingress::Completions, Ending::Stall, None).await;
}

async fn interrupted_streams_responses_openai(backend: Backend) {
    cut_everywhere(backend, Provider::OpenAi, Ingress::Responses, Ending::Stall, None).await;
}

async fn interrupted_streams_messages_anthropic(backend: Backend) {
    cut_everywhere(backend, Provider::Anthropic, Ingress::Messages, Ending::Stall, None).await;
}

async fn interrupted_streams_messages_openai(backend: Backend) {
    cut_everywhere(backend, Provider::OpenAi, Ingress::Messages, Ending::Stall, None).await;
}

async fn interrupted_streams_messages_gemini(backend: Backend) {
    cut_everywhere(backend, Provider::Gemini, Ingress::Messages, Ending::Stall, None).await;
}

async fn interrupted_streams_messages_bedrock(backend: Backend) {
    cut_everywhere(backend, Provider::Bedrock, Ingress::Messages, Ending::Stall, None).await;
}

async fn interrupted_streams_gemini_native(backend: Backend) {
    cut_everywhere(backend, Provider::Gemini, Ingress::GeminiNative, Ending::Stall, None).await;
}

/// The upstream breaks the connection mid-answer: billed the same way, for every provider.
async fn interrupted_streams_upstream_cut(backend: Backend) {
    for provider in [Provider::OpenAi, Provider::Anthropic, Provider::Gemini, Provider::Bedrock] {
        cut_everywhere(backend, provider, Ingress::Chat, Ending::Cut, None).await;
    }
    cut_everywhere(backend, Provider::Anthropic, Ingress::Messages, Ending::Cut, None).await;
}

/// The upstream goes quiet past the idle timeout: the gateway ends the stream and bills the same way.
async fn interrupted_streams_idle_timeout(backend: Backend) {
    for (provider, ingress) in [(Provider::Anthropic, Ingress::Messages), (Provider::Gemini, Ingress::GeminiNative)] {
        let (upstream, port) = CuttingUpstream::start(provider, ingress).await;
        let app = app_with_channel(backend, provider, port, Some(1)).await;
        let (user, key) = app.user_with_key("1.00").await;
        let steps = script(provider, ingress);
        let k = steps.len() / 2;
        upstream.set(k, Ending::Stall);
        // The client keeps reading: the gateway's idle timeout, not the client, ends the stream.
        let request = match ingress {
            Ingress::Messages => app.client.post(app.url("/v1/messages")).header("x-api-key", &key).json(&json!({
                "model": MODEL, "max_tokens": 4000, "messages": [{ "role": "user", "content": "hi" }], "stream": true })),
            _ => app
                .client
                .post(app.url(&format!("/v1beta/models/{MODEL}:streamGenerateContent?alt=sse")))
                .header("x-goog-api-key", &key)
                .json(&json!({ "contents": [{ "role": "user", "parts": [{ "text": "hi" }] }] })),
        };
        let text = tokio::time::timeout(Duration::from_secs(10), async { request.send().await.unwrap().text().await })
            .await
            .expect("the idle timeout ends the stream");
        let text = text.unwrap_or_default();
        assert!(text.contains("error"), "the stream ends with an error event: {text}");
        let (prompt, completion, cost) = last_request(&app, 1).await;
        assert_eq!((prompt, completion), expected_after(&steps, k, |t| t), "{provider:?}");
        assert_eq!(app.balance(user).await, 1_000_000_000 - cost);
        app.assert_ledger_consistent().await;
    }
}

/// A Claude model's delivered text is counted with the Claude rule (a fifth more than o200k).
async fn interrupted_streams_claude_rule(backend: Backend) {
    let (upstream, port) = CuttingUpstream::start(Provider::Anthropic, Ingress::Messages).await;
    let app = app_with_channel(backend, Provider::Anthropic, port, None).await;
    let (user, key) = app.user_with_key("1.00").await;
    let steps = script(Provider::Anthropic, Ingress::Messages);
    let k = steps.len() / 2;
    upstream.set(k, Ending::Stall);
    stream_and_hang_up(&app, &key, Ingress::Messages, "claude-sonnet-cut").await;
    let (prompt, completion, cost) = last_request(&app, 1).await;
    let claude = |t: i64| (t * 6 + 4) / 5;
    assert_eq!((prompt, completion), expected_after(&steps, k, claude));
    assert!(completion > i64::try_from(steps[k - 1].deltas).unwrap() * TOKENS_PER_DELTA);
    assert_eq!(app.balance(user).await, 1_000_000_000 - cost);
    app.assert_ledger_consistent().await;
}

/// A stream that runs to its end is billed exactly what the upstream reported, for every provider.
async fn completed_streams_bill_the_upstream_report(backend: Backend) {
    for (provider, ingress) in [
        (Provider::OpenAi, Ingress::Chat),
        (Provider::Anthropic, Ingress::Messages),
        (Provider::Gemini, Ingress::GeminiNative),
        (Provider::Bedrock, Ingress::Chat),
    ] {
        let (upstream, port) = CuttingUpstream::start(provider, ingress).await;
        let app = app_with_channel(backend, provider, port, None).await;
        let (user, key) = app.user_with_key("1.00").await;
        upstream.set(usize::MAX, Ending::End);
        let _ = stream_and_hang_up(&app, &key, ingress, MODEL).await;
        let (prompt, completion, cost) = last_request(&app, 1).await;
        assert_eq!((prompt, completion), (PROMPT_REPORTED, REPORTED_OUTPUT), "{provider:?} via {ingress:?}");
        assert_eq!(app.balance(user).await, 1_000_000_000 - cost);
        app.assert_ledger_consistent().await;
    }
}

/// A stream still open when the shutdown grace period ends is cut, the client told why, and the
/// request settled for what it delivered before the billing writer and the pool close.
async fn shutdown_cuts_and_settles_open_streams(backend: Backend) {
    let (upstream, port) = CuttingUpstream::start(Provider::Anthropic, Ingress::Messages).await;
    let app = app_with_channel_and(backend, Provider::Anthropic, port, &[("BURNCLOUD_SHUTDOWN_GRACE_SECS", 1)]).await;
    let (user, key) = app.user_with_key("1.00").await;
    let steps = script(Provider::Anthropic, Ingress::Messages);
    let k = steps.len() / 2;
    upstream.set(k, Ending::Stall);
    let database = app.state.config().database.clone();
    let before = app.balance(user).await;

    let response = app
        .client
        .post(app.url("/v1/messages"))
        .header("x-api-key", &key)
        .json(&json!({ "model": MODEL, "max_tokens": 4000, "messages": [{ "role": "user", "content": "hi" }], "stream": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reading = tokio::spawn(async move { response.text().await.unwrap_or_default() });
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), app.server).await.unwrap().unwrap().unwrap();
    let text = tokio::time::timeout(Duration::from_secs(5), reading).await.unwrap().unwrap();
    assert!(text.contains("event: error") && text.contains("restarting"), "the client is told: {text}");

    // The app has closed its pool: read the books through a new one.
    let db = burncloud::db::Db::connect(&database, 2).await.unwrap();
    let row = sqlx::query("SELECT prompt_tokens, completion_tokens, cost, error_class FROM request_logs")
        .fetch_one(db.pool())
        .await
        .unwrap();
    let (prompt, completion, cost): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    assert_eq!(row.get::<String, _>(3), "shutdown");
    assert_eq!((prompt, completion), expected_after(&steps, k, |t| t));
    let balance = burncloud::db::ledger::balance(db.pool(), user).await.unwrap().unwrap();
    assert_eq!(balance, before - cost, "settled, the rest of the hold released");
    let bad = burncloud::db::ledger::inconsistent_users(db.pool()).await.unwrap();
    assert!(bad.is_empty(), "{bad:?}");
}

/// A client that stops reading (a slow-read attack holds a connection and a hold) is cut after the
/// stall timeout and billed for what it received.
async fn a_client_that_stops_reading_is_cut_and_billed(backend: Backend) {
    let (upstream, port) = CuttingUpstream::start(Provider::OpenAi, Ingress::Chat).await;
    // A long answer (18 MB) that never ends: more than the sockets between can absorb.
    let chunk = |text: &str| {
        sse(
            None,
            json!({ "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
            "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] }),
        )
    };
    let piece = " hello".repeat(10_000);
    *upstream.events.lock().unwrap() = std::iter::once(chunk("")).chain((0..300).map(|_| chunk(&piece))).collect();
    upstream.set(usize::MAX, Ending::Stall);
    let app = app_with_channel_and(backend, Provider::OpenAi, port, &[("BURNCLOUD_CLIENT_STALL_SECS", 1)]).await;
    let (user, key) = app.user_with_key("10.00").await;

    let stream = stream_never_read(&app, &key, MODEL).await;
    let started = std::time::Instant::now();
    let (completion, cost) = stalled_charge(&app).await;
    assert!(started.elapsed() < Duration::from_secs(5), "cut after {:?}", started.elapsed());
    assert!(completion >= 10_000, "what the gateway took from the upstream is billed: {completion}");
    assert!(completion < 300 * 10_000, "the rest was never taken: {completion}");
    assert_eq!(app.balance(user).await, 10_000_000_000 - cost);
    app.assert_ledger_consistent().await;
    drop(stream);
}

/// Clients that give up while their hold is being taken (a lease's database round trip) cancel
/// nothing half-way: no pooled connection is left inside a transaction, no lease is reserved
/// that the process does not know of, and the books stay exact.
async fn clients_gone_during_the_hold_leave_no_open_transaction(backend: Backend) {
    let (upstream, port) = CuttingUpstream::start(Provider::OpenAi, Ingress::Chat).await;
    upstream.set(usize::MAX, Ending::End);
    let app = app_with_channel(backend, Provider::OpenAi, port, None).await;
    let mut users = Vec::new();
    for _ in 0..16 {
        users.push(app.user_with_key("1.00").await);
    }
    // Each request is abandoned after a few hundred microseconds, often while its user's first
    // lease is being taken; leases are given back between the rounds so each round takes new ones.
    for round in 0..10u64 {
        let mut tasks = Vec::new();
        for (i, (_, key)) in users.iter().enumerate() {
            let client = app.client.clone();
            let url = app.url("/v1/chat/completions");
            let key = key.clone();
            let wait = Duration::from_micros(200 + 300 * ((i as u64 * 7 + round * 3) % 17));
            tasks.push(tokio::spawn(async move {
                let body =
                    json!({ "model": MODEL, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 });
                let _ = tokio::time::timeout(wait, client.post(url).bearer_auth(key).json(&body).send()).await;
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        app.settled().await;
        app.state.billing().give_back_all().await;
    }
    app.settled().await;
    if backend == Backend::Postgres {
        let open: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND state LIKE 'idle in transaction%'",
        )
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        assert_eq!(open, 0, "a pooled connection was left inside a transaction");
    }
    let reserved: i64 = sqlx::query_scalar("SELECT CAST(COALESCE(SUM(leased), 0) AS BIGINT) FROM users")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(reserved, 0, "every lease this process took is known to it and was given back");
    app.assert_ledger_consistent().await;
}

/// A client with a small receive buffer that sends a streamed chat request for `model` and never
/// reads; keep the socket open for as long as the client should look alive.
pub async fn stream_never_read(app: &TestApp, key: &str, model: &str) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(format!("127.0.0.1:{}", app.port).parse().unwrap()).await.unwrap();
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "stream": true }).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    stream
}

/// The one request's `(completion_tokens, cost)` once settled, after checking it was cut as
/// `client_stalled`.
pub async fn stalled_charge(app: &TestApp) -> (i64, i64) {
    app.wait_for_logs(1).await;
    app.settled().await;
    let row = sqlx::query("SELECT completion_tokens, cost, error_class FROM request_logs")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(row.get::<String, _>(2), "client_stalled");
    (row.get(0), row.get(1))
}
