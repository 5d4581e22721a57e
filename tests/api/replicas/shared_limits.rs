//! Key rate limits and login attempt limits across three replicas: with Redis
//! (`BURNCLOUD_REDIS_URL`) they allow a key's requests per minute, and a client's guesses at an
//! account, once, together; without it each replica counts its own, as documented. A Redis that
//! dies costs no request: the counts fall back to each replica.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Customer, METRICS_TOKEN, admin, at, customer, models, replicas, until_everywhere};
use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::process::Server;
use crate::support::redis::RedisServer;

/// Three replicas sharing `redis` when given, once each has reached it (until then each counts
/// on its own).
async fn three(redis: Option<&RedisServer>) -> (Vec<tempfile::TempDir>, Vec<Server>) {
    let url = redis.map(RedisServer::url);
    let extra: Vec<(&'static str, &str)> = url.iter().map(|url| ("BURNCLOUD_REDIS_URL", url.as_str())).collect();
    let (dirs, servers, _) = replicas(3, &extra).await;
    if redis.is_some() {
        for server in &servers {
            let deadline = Instant::now() + Duration::from_secs(5);
            while redis_gauges(server).await.0 != 1 {
                assert!(Instant::now() < deadline, "replica on {} never reached Redis", server.port);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    (dirs, servers)
}

/// `burncloud_redis_up` and `burncloud_redis_fallbacks_total` from the replica's `/metrics`.
async fn redis_gauges(server: &Server) -> (i64, i64) {
    let text = reqwest::Client::new()
        .get(at(server.port, "/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let gauge = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok()).unwrap_or(-1)
    };
    (gauge("burncloud_redis_up"), gauge("burncloud_redis_fallbacks_total"))
}

/// A key limited to 5 requests per minute, made through `server`.
async fn limited_key(server: &Server) -> String {
    let Customer { user, .. } = customer(server, "http://127.0.0.1:9/v1", "0.001", "1.00").await;
    let (status, key) =
        admin(server, "POST", &format!("/api/admin/users/{user}/keys"), Some(json!({ "rpm": 5 }))).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

/// Waits, if needed, so that the next few seconds fall in one rate-limit minute.
async fn inside_one_minute() {
    let second = burncloud::domain::time::now_ms() / 1000 % 60;
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

async fn status(server: &Server, key: &str) -> u16 {
    let response = reqwest::Client::new().get(at(server.port, "/v1/models")).bearer_auth(key).send().await.unwrap();
    response.status().as_u16()
}

/// Nine requests of a 5-per-minute key, spread over the replicas: how many were let through.
async fn let_through(servers: &[Server], key: &str) -> (usize, usize) {
    let mut statuses = Vec::new();
    for i in 0..9 {
        statuses.push(status(&servers[i % servers.len()], key).await);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 9, "{statuses:?}");
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rate_limits_count_once_across_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dirs, servers) = three(Some(&redis)).await;
    let key = limited_key(&servers[0]).await;

    inside_one_minute().await;
    assert_eq!(let_through(&servers, &key).await, (5, 4), "5 per minute across all three");

    // Redis dies: every request is still answered, counted on each replica meanwhile.
    redis.kill().await;
    assert_eq!(status(&servers[1], &key).await, 200, "b's own count has room: Redis being gone costs no request");
    let (up, fallbacks) = redis_gauges(&servers[1]).await;
    assert_eq!(up, 0);
    assert!(fallbacks > 0);
}

/// A user's 5 requests per minute, spent over two of the user's keys on three replicas sharing
/// Redis: 5 let through in all, whichever key and replica (the user's window is one count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_rate_limit_counts_once_across_keys_and_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dirs, servers) = three(Some(&redis)).await;
    let Customer { user, .. } = customer(&servers[0], "http://127.0.0.1:9/v1", "0.001", "1.00").await;
    let limits = json!({ "limits": { "rpm": 5 } });
    let (code, view) = admin(&servers[0], "PATCH", &format!("/api/admin/users/{user}"), Some(limits)).await;
    assert_eq!(code, 200, "{view}");
    // New keys: no replica has cached them, so each reads the user's limits with its first use.
    let mut keys = Vec::new();
    for _ in 0..2 {
        let (code, key) = admin(&servers[0], "POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
        assert_eq!(code, 201, "{key}");
        keys.push(key["key"].as_str().unwrap().to_string());
    }

    inside_one_minute().await;
    let mut statuses = Vec::new();
    for i in 0..9 {
        statuses.push(status(&servers[i % 3], &keys[i % 2]).await);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "5 per minute over both keys and all three: {statuses:?}"
    );
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 4, "{statuses:?}");
}

/// A key with 3 requests a day and a tokens-per-minute limit, over three replicas sharing Redis:
/// the day's requests are counted once (the fourth is refused, on whichever replica), and so are
/// the tokens: each replica's answer shows less left than the one before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_day_and_tokens_per_minute_count_once_across_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dirs, servers) = three(Some(&redis)).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let Customer { user, key: unlimited } = customer(&servers[0], &fake.base_url("c"), "0.001", "1.00").await;
    let options = json!({ "rpd": 3, "tpm": 100000 });
    let (status, key) = admin(&servers[0], "POST", &format!("/api/admin/users/{user}/keys"), Some(options)).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    until_everywhere(&servers, "the channel", |port| {
        let unlimited = unlimited.clone();
        async move { models(port, &unlimited).await.1 == ["m"] }
    })
    .await;

    inside_one_minute().await;
    let client = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 10 });
    let chat = |port: u16| client.post(at(port, "/v1/chat/completions")).bearer_auth(&key).json(&body).send();
    let number = |r: &reqwest::Response, name: &str| -> i64 { r.headers()[name].to_str().unwrap().parse().unwrap() };
    let mut tokens_left = Vec::new();
    for (server, requests_left) in servers.iter().zip([2, 1, 0]) {
        let response = chat(server.port).await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(number(&response, "x-ratelimit-remaining-requests"), requests_left, "one day count for all");
        tokens_left.push(number(&response, "x-ratelimit-remaining-tokens"));
    }
    assert!(tokens_left.windows(2).all(|w| w[1] < w[0]), "one token count for all: {tokens_left:?}");
    let refused = chat(servers[0].port).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.text().await.unwrap().contains("3 requests per day"));
    assert_eq!(fake.received().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_counts_its_own() {
    let (_dirs, servers) = three(None).await;
    assert_eq!(redis_gauges(&servers[0]).await, (-1, -1), "no Redis gauges without Redis");
    let key = limited_key(&servers[0]).await;
    inside_one_minute().await;
    assert_eq!(let_through(&servers, &key).await, (9, 0), "5 per minute on each replica");
    // One replica alone still holds the limit.
    for _ in 0..2 {
        assert_eq!(status(&servers[0], &key).await, 200);
    }
    assert_eq!(status(&servers[0], &key).await, 429, "a's sixth request this minute");
}

/// Wrong-password logins to one account from one client, spread over the replicas: each answer.
async fn guesses(servers: &[Server], n: usize) -> Vec<u16> {
    let mut browsers: Vec<Browser> = servers.iter().map(|s| Browser::at(at(s.port, ""))).collect();
    let mut statuses = Vec::new();
    for i in 0..n {
        let browser = &mut browsers[i % servers.len()];
        let csrf = browser.csrf("/login").await;
        let form = [("email", "target@example.com"), ("password", "guess guess"), ("csrf", csrf.as_str())];
        statuses.push(browser.post("/login", &form).await.0.as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_once_across_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dirs, servers) = three(Some(&redis)).await;
    // Five guesses per client and account in the window, wherever they land.
    assert_eq!(guesses(&servers, 6).await, [401, 401, 401, 401, 401, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_login_attempts_are_limited_per_replica() {
    let (_dirs, servers) = three(None).await;
    let statuses = guesses(&servers, 16).await;
    assert_eq!(statuses[..15], [401; 15], "five on each replica: {statuses:?}");
    assert_eq!(statuses[15], 429, "a's sixth: {statuses:?}");
}
