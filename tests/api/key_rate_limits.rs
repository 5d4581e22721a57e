//! A key's rate limits beside requests per minute (issue 17): requests per UTC day and tokens per
//! minute (the request's estimate reserved at admission, trued up to its usage at settlement),
//! and OpenAI's `x-ratelimit-*` headers on every answer to a limited key — plain, streamed, in
//! Anthropic's API and on errors — with the values a client can count on.

use serde_json::{Value, json};

use crate::support::fake_openai::{Behavior, DEFAULT_COMPLETION, DEFAULT_PROMPT, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_env};

db_tests!(
    every_answer_carries_the_keys_rate_limit_headers,
    tokens_per_minute_are_reserved_then_trued_up,
    requests_per_day_refuse_past_the_limit,
    rate_limits_are_validated,
    a_keys_own_concurrency_cap_holds,
    a_failing_upstream_gives_the_tokens_back,
);

async fn setup(backend: Backend) -> (TestApp, FakeOpenAi) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    (app, fake)
}

async fn key_with(app: &TestApp, options: Value) -> String {
    let (user, _) = app.user_with_key("10.00").await;
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(options)).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

fn chat(max_tokens: i64, stream: bool) -> Value {
    json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": max_tokens, "stream": stream })
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name}: {:?}", response.headers()))
        .to_str()
        .unwrap()
        .into()
}

fn number(response: &reqwest::Response, name: &str) -> i64 {
    header(response, name).parse().unwrap()
}

/// Seconds in an OpenAI reset text (`1m0s`, `20s`).
fn seconds(text: &str) -> i64 {
    let (minutes, rest) = text.split_once('m').map_or((0, text), |(m, r)| (m.parse().unwrap(), r));
    minutes * 60 + rest.trim_end_matches('s').parse::<i64>().unwrap()
}

/// The headers' values: the request window counts this request; the token window shows what is
/// left after this request's reservation; both reset within their minute. Streams, Anthropic's
/// API and an error answer carry them too; a key without limits gets none.
async fn every_answer_carries_the_keys_rate_limit_headers(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let key = key_with(&app, json!({ "rpm": 50, "tpm": 100000 })).await;

    let response = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(number(&response, "x-ratelimit-limit-requests"), 50);
    assert_eq!(number(&response, "x-ratelimit-remaining-requests"), 49);
    assert!((1..=60).contains(&seconds(&header(&response, "x-ratelimit-reset-requests"))));
    assert_eq!(number(&response, "x-ratelimit-limit-tokens"), 100000);
    let left = number(&response, "x-ratelimit-remaining-tokens");
    assert!(
        (100000 - 100 - 50..=100000 - 100).contains(&left),
        "the estimate (100 output + the prompt) is reserved: {left}"
    );
    assert!((1..=60).contains(&seconds(&header(&response, "x-ratelimit-reset-tokens"))));

    let streamed = app.v1(&key, "/v1/chat/completions", &chat(100, true)).await;
    assert_eq!(streamed.status(), 200);
    assert_eq!(number(&streamed, "x-ratelimit-remaining-requests"), 48);
    drop(streamed.text().await);
    let messages = json!({ "model": "m", "max_tokens": 10, "messages": [{ "role": "user", "content": "hi" }] });
    let anthropic = app.v1(&key, "/v1/messages", &messages).await;
    assert_eq!(anthropic.status(), 200);
    assert_eq!(number(&anthropic, "x-ratelimit-remaining-requests"), 47);
    let missing = app.v1(&key, "/v1/chat/completions", &json!({ "model": "nope", "messages": [] })).await;
    assert_eq!(missing.status(), 404);
    assert_eq!(number(&missing, "x-ratelimit-remaining-requests"), 46, "an error answer counts and says so");

    let plain = key_with(&app, json!({})).await;
    let response = app.v1(&plain, "/v1/chat/completions", &chat(10, false)).await;
    assert!(response.headers().get("x-ratelimit-limit-requests").is_none(), "no limit, no header");
    app.assert_ledger_consistent().await;
}

/// 150 tokens per minute; a request reserves about 110 (100 output + the prompt). The first is
/// served and settles at its usage (17 tokens), which frees the rest of its reservation, so the
/// second fits too (without the true-up, 2 × 110 > 150 would refuse it). Once both settled, a
/// third reservation does not fit in the 150 − 2 × 17 left:
/// 429 with the tokens type, `Retry-After` and counting nothing. A request larger than the whole
/// limit is told so.
async fn tokens_per_minute_are_reserved_then_trued_up(backend: Backend) {
    let (app, fake) = setup(backend).await;
    let key = key_with(&app, json!({ "tpm": 150 })).await;
    let used = DEFAULT_PROMPT + DEFAULT_COMPLETION;

    // Two tries, in case a minute turns between the requests (the window starts again then).
    for attempt in 0..2 {
        let first = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
        assert_eq!(first.status(), 200);
        let reserved = 150 - number(&first, "x-ratelimit-remaining-tokens");
        let first_reset = seconds(&header(&first, "x-ratelimit-reset-tokens"));
        app.settled().await;
        let second = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
        assert_eq!(second.status(), 200, "the first's unused reservation came back");
        let second_reset = seconds(&header(&second, "x-ratelimit-reset-tokens"));
        if second_reset > first_reset && attempt == 0 {
            app.settled().await;
            tokio::time::sleep(std::time::Duration::from_secs(u64::try_from(second_reset).unwrap() + 1)).await;
            continue;
        }
        assert_eq!(
            number(&second, "x-ratelimit-remaining-tokens"),
            150 - used - reserved,
            "the first counts its usage ({used}), the second its reservation ({reserved})"
        );

        // Both settled: 2 × 17 counted, and another reservation does not fit in what is left.
        app.settled().await;
        let third = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
        assert_eq!(third.status(), 429);
        assert!(third.headers().contains_key("retry-after"));
        assert_eq!(number(&third, "x-ratelimit-remaining-tokens"), 150 - 2 * used, "a refusal counts nothing");
        let body: Value = third.json().await.unwrap();
        assert_eq!(
            (body["error"]["type"].as_str(), body["error"]["code"].as_str()),
            (Some("tokens"), Some("rate_limit_exceeded"))
        );
        assert!(body["error"]["message"].as_str().unwrap().contains("150 tokens per minute"), "{body}");
        break;
    }
    let huge = app.v1(&key, "/v1/chat/completions", &chat(1000, false)).await;
    assert_eq!(huge.status(), 429);
    let body: Value = huge.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("more than this key's limit of 150 tokens per minute"),
        "{body}"
    );
    app.settled().await;
    assert!(fake.received().len() >= 2);
    app.assert_ledger_consistent().await;
}

/// Two requests a day: the third is refused with its limit named, `Retry-After` until the UTC
/// day ends, and the headers at zero; a refused request costs nothing.
async fn requests_per_day_refuse_past_the_limit(backend: Backend) {
    let (app, fake) = setup(backend).await;
    let key = key_with(&app, json!({ "rpd": 2 })).await;
    for left in [1, 0] {
        let response = app.v1(&key, "/v1/chat/completions", &chat(10, false)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(number(&response, "x-ratelimit-remaining-requests"), left);
        assert_eq!(number(&response, "x-ratelimit-limit-requests"), 2);
    }
    let refused = app.v1(&key, "/v1/chat/completions", &chat(10, false)).await;
    assert_eq!(refused.status(), 429);
    let wait = number(&refused, "retry-after");
    let until_midnight = 86_400 - (burncloud::domain::time::now_ms() / 1000) % 86_400;
    assert!((wait - until_midnight).abs() <= 2, "{wait} vs {until_midnight}");
    assert_eq!(number(&refused, "x-ratelimit-remaining-requests"), 0);
    let body: Value = refused.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("2 requests per day"), "{body}");
    assert_eq!(fake.received().len(), 2);
    app.assert_ledger_consistent().await;
}

async fn rate_limits_are_validated(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (user, _) = app.user_with_key("1.00").await;
    for (bad, says) in [
        (json!({ "rpd": 0 }), "rpd: must be positive"),
        (json!({ "tpm": -5 }), "tpm: must be positive"),
        (json!({ "rpm": 0 }), "rpm: must be positive"),
    ] {
        let (status, body) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(bad.clone())).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains(says), "{bad}: {body}");
    }
    let (status, key) =
        app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({ "rpd": 100, "tpm": 5000 }))).await;
    assert_eq!(status, 201, "{key}");
    let id = key["id"].as_i64().unwrap();
    let (status, changed) = app.admin("PATCH", &format!("/api/admin/keys/{id}"), Some(json!({ "tpm": null }))).await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!((&changed["rpd"], &changed["tpm"]), (&json!(100), &Value::Null));
}

/// A key's own cap on requests in flight (1 here, the site's default being 64): a second request
/// while the first is open is refused in the concurrency error's words.
async fn a_keys_own_concurrency_cap_holds(backend: Backend) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_ADMISSION_WAIT_MS", "100")]).await;
    let fake = FakeOpenAi::start(Behavior::Hang).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let key = key_with(&app, json!({ "concurrency": 1 })).await;
    let first = {
        let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(&key).json(&chat(10, false));
        tokio::spawn(async move { request.send().await })
    };
    for _ in 0..500 {
        if app.gateway.gateway().admission.in_flight() == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let second = app.v1(&key, "/v1/chat/completions", &chat(10, false)).await;
    assert_eq!(second.status(), 429);
    let body: Value = second.json().await.unwrap();
    assert_eq!(body["error"]["code"], "concurrency_limit_exceeded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("this API key has 1 requests in flight"), "{body}");
    first.abort();
}

/// A dying upstream: the request fails (502, nothing charged) and its reserved tokens go back at
/// settlement, so the key's next request sees the whole window but its own reservation.
async fn a_failing_upstream_gives_the_tokens_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::Status(500)).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["m"] }),
    )
    .await;
    app.set_price("m", json!({ "input": "1.00", "output": "2.00" })).await;
    let key = key_with(&app, json!({ "tpm": 1000 })).await;
    let first = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
    assert_eq!(first.status(), 502);
    let reserved = 1000 - number(&first, "x-ratelimit-remaining-tokens");
    assert!(reserved > 100, "{reserved}");
    app.settled().await;
    let second = app.v1(&key, "/v1/chat/completions", &chat(100, false)).await;
    assert_eq!(second.status(), 502);
    assert_eq!(number(&second, "x-ratelimit-remaining-tokens"), 1000 - reserved, "the first's tokens came back");
    app.assert_ledger_consistent().await;
}
