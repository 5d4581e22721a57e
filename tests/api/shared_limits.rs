//! Key rate limits and login attempt limits across replicas: with Redis (`BURNCLOUD_REDIS_URL`) three replicas on one
//! database allow a key's requests per minute once, together; without it each replica counts its
//! own, as documented. A Redis that dies costs no request: the counts fall back to each replica.

use std::time::Duration;

use burncloud::app::Application;
use burncloud::config::Config;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, fresh_database_url, test_env};
use crate::support::redis::RedisServer;

/// `N` replicas on one fresh Postgres database, sharing `redis` when given (and then only once
/// each has reached it: until then each counts on its own).
async fn replicas<const N: usize>(redis: Option<&RedisServer>) -> (tempfile::TempDir, [TestApp; N]) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(Backend::Postgres, dir.path()).await;
    let mut apps = Vec::new();
    for i in 0..N {
        let mut env = test_env(dir.path(), &database_url);
        env.insert("BURNCLOUD_INSTANCE_ID".into(), format!("replica-{i}"));
        if let Some(redis) = redis {
            env.insert("BURNCLOUD_REDIS_URL".into(), redis.url());
        }
        let config = Config::load_from(None, |name| env.get(name).cloned()).unwrap();
        apps.push(TestApp::serve(Application::build(config).await.unwrap(), None));
    }
    if redis.is_some() {
        connected(&apps.iter().collect::<Vec<_>>()).await;
    }
    (dir, apps.try_into().unwrap_or_else(|_| unreachable!("N replicas were started")))
}

/// Waits until every replica has reached Redis (until then each counts on its own).
async fn connected(replicas: &[&TestApp]) {
    for app in replicas {
        for _ in 0..100 {
            if app.state.counters().redis_up() == Some(true) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(app.state.counters().redis_up(), Some(true));
    }
}

/// Waits, if needed, so that the next few seconds fall in one rate-limit minute.
async fn inside_one_minute() {
    let second = burncloud::domain::time::now_ms() / 1000 % 60;
    if second >= 45 {
        tokio::time::sleep(Duration::from_secs(u64::try_from(61 - second).unwrap())).await;
    }
}

async fn status(app: &TestApp, key: &str) -> u16 {
    app.client.get(app.url("/v1/models")).bearer_auth(key).send().await.unwrap().status().as_u16()
}

/// Nine requests of a 5-per-minute key, spread over the replicas: how many were let through.
async fn let_through(replicas: &[&TestApp], key: &str) -> (usize, usize) {
    let mut statuses = Vec::new();
    for i in 0..9 {
        statuses.push(status(replicas[i % replicas.len()], key).await);
    }
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(ok + limited, 9, "{statuses:?}");
    (ok, limited)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rate_limits_count_once_across_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dir, [a, b, c]) = replicas(Some(&redis)).await;
    let (_, key) = a.user_with_key_in("default", "1.00", json!({ "rpm": 5 })).await;

    inside_one_minute().await;
    assert_eq!(let_through(&[&a, &b, &c], &key).await, (5, 4), "5 per minute across all three");

    // Redis dies: every request is still answered, counted on each replica meanwhile.
    redis.kill().await;
    assert_eq!(status(&b, &key).await, 200, "b's own count has room: Redis being gone costs no request");
    assert!(b.state.counters().fallbacks() > 0);
    assert_eq!(b.state.counters().redis_up(), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_counts_its_own() {
    let (_dir, [a, b, c]) = replicas(None).await;
    assert_eq!(a.state.counters().redis_up(), None);
    let (_, key) = a.user_with_key_in("default", "1.00", json!({ "rpm": 5 })).await;
    inside_one_minute().await;
    assert_eq!(let_through(&[&a, &b, &c], &key).await, (9, 0), "5 per minute on each replica");
    // One replica alone still holds the limit.
    for _ in 0..2 {
        assert_eq!(status(&a, &key).await, 200);
    }
    assert_eq!(status(&a, &key).await, 429, "a's sixth request this minute");
}

/// Wrong-password logins to one account from one client, spread over the replicas: each answer.
async fn guesses(replicas: &[&TestApp], n: usize) -> Vec<u16> {
    let mut browsers: Vec<Browser> = replicas.iter().map(|app| Browser::new(app)).collect();
    let mut statuses = Vec::new();
    for i in 0..n {
        let browser = &mut browsers[i % replicas.len()];
        let csrf = browser.csrf("/login").await;
        let form = [("email", "target@example.com"), ("password", "guess guess"), ("csrf", csrf.as_str())];
        statuses.push(browser.post("/login", &form).await.0.as_u16());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_attempts_are_limited_once_across_replicas_with_redis() {
    let redis = RedisServer::start().await;
    let (_dir, [a, b, c]) = replicas(Some(&redis)).await;
    // Five guesses per client and account in the window, wherever they land.
    assert_eq!(guesses(&[&a, &b, &c], 6).await, [401, 401, 401, 401, 401, 429]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_login_attempts_are_limited_per_replica() {
    let (_dir, [a, b]) = replicas(None).await;
    let statuses = guesses(&[&a, &b], 11).await;
    assert_eq!(statuses[..10], [401; 10], "five on each replica: {statuses:?}");
    assert_eq!(statuses[10], 429, "a's sixth: {statuses:?}");
}
