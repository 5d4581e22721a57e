//! Scale-out: several `burncloud` processes on one Postgres database. They start together on an
//! empty database; a change made through one replica is in force on the others within a second
//! (Postgres `NOTIFY`), not after the cache TTL; one killed mid-stream loses nobody's money.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::helpers::{Backend, fresh_database_url};
use crate::support::process::{Server, base_env, start};

const ADMIN_TOKEN: &str = "replicas-admin-token-0123456789abcdef-0123";
const SECRET_KEY: &str = "replica-secret-key-0123456789abcdef-0123456789";
const METRICS_TOKEN: &str = "replicas-metrics-token-0123456789abcdef";

mod channel_health;
mod money;
mod postgres_restart;
mod rolling_restart;
mod shared_limits;

/// The environment of replica `i` of a set on `url`: its own data directory and instance id,
/// the shared secret and admin token, and `extra`.
fn replica_env(
    dir: &tempfile::TempDir,
    url: &str,
    i: usize,
    extra: &[(&'static str, &str)],
) -> BTreeMap<&'static str, String> {
    let mut env = base_env(dir.path(), url);
    env.insert("BURNCLOUD_SECRET_KEY", SECRET_KEY.into());
    env.insert("BURNCLOUD_ADMIN_TOKEN", ADMIN_TOKEN.into());
    env.insert("BURNCLOUD_METRICS_TOKEN", METRICS_TOKEN.into());
    env.insert("BURNCLOUD_INSTANCE_ID", format!("replica-{i}"));
    env.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
    env
}

/// `n` replicas started together on one fresh Postgres database (each with `extra` in its
/// environment), once each is listening for the others' changes.
async fn replicas(n: usize, extra: &[(&'static str, &str)]) -> (Vec<tempfile::TempDir>, Vec<Server>, String) {
    let first = tempfile::tempdir().unwrap();
    let url = fresh_database_url(Backend::Postgres, first.path()).await;
    let (dirs, servers) = replicas_on(&url, n, extra).await;
    let mut all = vec![first];
    all.extend(dirs);
    (all, servers, url)
}

/// `n` replicas started together on the database at `url`, once each is listening.
async fn replicas_on(url: &str, n: usize, extra: &[(&'static str, &str)]) -> (Vec<tempfile::TempDir>, Vec<Server>) {
    let dirs: Vec<tempfile::TempDir> = (0..n).map(|_| tempfile::tempdir().unwrap()).collect();
    let envs: Vec<_> = dirs.iter().enumerate().map(|(i, dir)| replica_env(dir, url, i, extra)).collect();
    let servers = futures_util::future::join_all(envs.iter().map(start)).await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    for server in &servers {
        until_listening(server.port).await;
    }
    (dirs, servers)
}

/// Waits until the replica on `port` is ready and listening for the others' changes.
async fn until_listening(port: u16) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ready: Value = match client.get(at(port, "/readyz")).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(_) => Value::Null,
        };
        if ready["status"] == "ready" && ready["changes"] == "listening" {
            return;
        }
        assert!(Instant::now() < deadline, "replica on {port} never listened: {ready}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A paying customer, made through `server`: a channel serving model `m` from `upstream`, a
/// per-request price, a user credited with `credit` and one key.
struct Customer {
    user: i64,
    key: String,
}

async fn customer(server: &Server, upstream: &str, price: &str, credit: &str) -> Customer {
    let channel = json!({ "name": "c", "type": "openai", "base_url": upstream, "key": "k", "models": ["m"] });
    let (status, body) = admin(server, "POST", "/api/admin/channels", Some(channel)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = admin(server, "PUT", "/api/admin/prices/m", Some(json!({ "per_request": price }))).await;
    assert_eq!(status, 200, "{body}");
    let email = format!("customer-{}@example.com", server.port);
    let account = json!({ "email": email, "password": "password123", "group": "default" });
    let (status, user) = admin(server, "POST", "/api/admin/users", Some(account)).await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_i64().unwrap();
    let credit = json!({ "amount": credit, "note": "test" });
    assert_eq!(admin(server, "POST", &format!("/api/admin/users/{user}/credit"), Some(credit)).await.0, 200);
    let (status, key) = admin(server, "POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    Customer { user, key: key["key"].as_str().unwrap().to_string() }
}

/// The database the replicas share, opened by the test to check the money.
async fn open(url: &str) -> burncloud::db::Db {
    burncloud::db::Db::connect(&burncloud::config::DatabaseUrl::parse(url).unwrap(), 2).await.unwrap()
}

async fn balance(db: &burncloud::db::Db, user: i64) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT balance FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

async fn charges(db: &burncloud::db::Db, user: i64) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM ledger WHERE user_id = $1 AND amount < 0")
        .bind(user)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// The ledger sums to every balance.
async fn assert_audit_clean(db: &burncloud::db::Db) {
    let bad = burncloud::db::ledger::inconsistent_users(db.pool()).await.unwrap();
    assert!(bad.is_empty(), "the ledger does not sum to the balance: {bad:?}");
}

fn url_of(server: &Server, path: &str) -> String {
    at(server.port, path)
}

async fn admin(server: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method.parse().unwrap(), url_of(server, path)).bearer_auth(ADMIN_TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn at(port: u16, path: &str) -> String {
    format!("http://127.0.0.1:{port}{path}")
}

/// What `/v1/models` answers a key on the replica at `port`: the status and the model ids.
async fn models(port: u16, key: &str) -> (u16, Vec<String>) {
    let response = reqwest::Client::new().get(at(port, "/v1/models")).bearer_auth(key).send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let ids = body["data"].as_array().map(|d| d.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect());
    (status, ids.unwrap_or_default())
}

/// Waits until `check` holds on every one of `servers`; how long that took.
async fn until_everywhere<F, Fut>(servers: &[Server], what: &str, check: F) -> Duration
where
    F: Fn(u16) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        let mut all = true;
        for server in servers {
            all &= check(server.port).await;
        }
        if all {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: not in force everywhere after 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[((sorted.len() * p).div_ceil(100)).saturating_sub(1).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_on_one_replica_is_in_force_on_the_others_within_a_second() {
    // Ten minutes of cache: only the notices can carry a change in time.
    let (_dirs, servers, url) = replicas(3, &[("BURNCLOUD_CACHE_TTL_SECS", "600")]).await;
    let (a, others) = (&servers[0], &servers[1..]);

    // A channel, a price and a user with a key, made on A.
    let (status, channel) = admin(
        a,
        "POST",
        "/api/admin/channels",
        Some(json!({ "name": "c", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "key": "sk-upstream",
                     "models": ["replica-model"] })),
    )
    .await;
    assert_eq!(status, 201, "{channel}");
    let channel = channel["id"].as_i64().unwrap();
    let (status, body) =
        admin(a, "PUT", "/api/admin/prices/replica-model", Some(json!({ "input": "1.00", "output": "2.00" }))).await;
    assert_eq!(status, 200, "{body}");
    let (status, user) = admin(
        a,
        "POST",
        "/api/admin/users",
        Some(json!({ "email": "replicas@example.com", "password": "password123", "group": "default" })),
    )
    .await;
    assert_eq!(status, 201, "{user}");
    let (status, key) = admin(a, "POST", &format!("/api/admin/users/{}/keys", user["id"]), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    let (key_id, key) = (key["id"].as_i64().unwrap(), key["key"].as_str().unwrap().to_string());
    until_everywhere(others, "the new channel", |port| {
        let key = key.clone();
        async move { models(port, &key).await == (200, vec!["replica-model".to_string()]) }
    })
    .await;

    // A key disabled and enabled again, 20 times: each change is in force on B and C in < 1 s.
    let mut took = Vec::new();
    for round in 0..20 {
        let (status, expected) = if round % 2 == 0 { ("disabled", 401) } else { ("active", 200) };
        let (code, body) =
            admin(a, "PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "status": status }))).await;
        assert_eq!(code, 200, "{body}");
        took.push(
            until_everywhere(others, "a key's status", |port| {
                let key = key.clone();
                async move { models(port, &key).await.0 == expected }
            })
            .await,
        );
    }
    took.sort();
    let (p50, p99) = (percentile(&took, 50), percentile(&took, 99));
    println!("key status on the other replicas: p50 {p50:?}, p99 {p99:?} over {} changes", took.len());
    assert!(p99 < Duration::from_secs(1), "p99 {p99:?}: {took:?}");

    // A price changed on A shows on B's and C's public pricing page.
    let (status, body) =
        admin(a, "PUT", "/api/admin/prices/replica-model", Some(json!({ "input": "7.77", "output": "2.00" }))).await;
    assert_eq!(status, 200, "{body}");
    let price = until_everywhere(others, "a price", |port| async move {
        let page = reqwest::get(at(port, "/pricing")).await.unwrap().text().await.unwrap();
        page.contains("7.77")
    })
    .await;
    assert!(price < Duration::from_secs(1), "{price:?}");

    // A setting changed on A: B and C show the new site name.
    let (status, body) =
        admin(a, "PUT", "/api/admin/settings/site.name", Some(json!({ "value": "Replica Cloud" }))).await;
    assert_eq!(status, 200, "{body}");
    let setting = until_everywhere(others, "a setting", |port| async move {
        let page = reqwest::get(at(port, "/")).await.unwrap().text().await.unwrap();
        page.contains("Replica Cloud")
    })
    .await;
    assert!(setting < Duration::from_secs(1), "{setting:?}");

    // A channel disabled on A: B and C stop offering its model.
    let (status, body) = admin(a, "POST", &format!("/api/admin/channels/{channel}/disable"), None).await;
    assert_eq!(status, 200, "{body}");
    let disabled = until_everywhere(others, "a disabled channel", |port| {
        let key = key.clone();
        async move { models(port, &key).await == (200, Vec::new()) }
    })
    .await;
    assert!(disabled < Duration::from_secs(1), "{disabled:?}");

    // Every listener's connection dies (a Postgres restart, a proxy's idle cut): each replica
    // reconnects and reloads what it caches, so a change made meanwhile still arrives.
    let db = burncloud::db::Db::connect(&burncloud::config::DatabaseUrl::parse(&url).unwrap(), 1).await.unwrap();
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
         WHERE datname = current_database() AND query LIKE 'LISTEN%'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(cut, 3, "one listening connection per replica");
    let (code, body) =
        admin(a, "PATCH", &format!("/api/admin/keys/{key_id}"), Some(json!({ "status": "disabled" }))).await;
    assert_eq!(code, 200, "{body}");
    let recovered = until_everywhere(others, "a change made while the listeners reconnected", |port| {
        let key = key.clone();
        async move { models(port, &key).await.0 == 401 }
    })
    .await;
    println!("after the listeners' connections were cut: in force everywhere after {recovered:?}");
    for server in &servers {
        let ready: Value = reqwest::get(url_of(server, "/readyz")).await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready", "{ready}");
    }

    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
        assert!(
            log.iter().any(|l| l.contains("change listener reconnected")),
            "each replica reconnected and reloaded:\n{}",
            log.join("\n")
        );
    }
}

/// A replica SIGKILLed with streams open: what it had in flight is not charged (the loss bound of
/// docs/operations.md: its holds), nothing is charged twice, and its leases end by expiry (at
/// most a lease's lifetime, 60 s, after their last renewal, plus one sweep) so the rest of the
/// balance is spendable on the replica left, down to zero and no further. The same for its
/// leases on the key's and the user's budgets: what it reserved ahead stops counting as spent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_mid_stream_frees_its_leases_and_charges_nothing_twice() {
    use crate::support::fake_openai::{Behavior, FakeOpenAi};
    // The survivor sweeps expired leases every second.
    let (_dirs, mut servers, url) = replicas(3, &[("BURNCLOUD_LEASE_RENEW_SECS", "1")]).await;
    let mut a = servers.remove(0);
    let survivors = servers;
    let fake = FakeOpenAi::start(Behavior::Slow { chunks: 100, interval: Duration::from_millis(100) }).await;
    let Customer { user, key } = customer(&a, &fake.base_url("c"), "0.10", "1.00").await;
    // Budgets big enough to be leased (a slice of an eighth of their room covers several holds).
    let budget = json!({ "budget": "20.00", "budget_period": "day" });
    let (status, view) =
        admin(&a, "PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": budget }))).await;
    assert_eq!(status, 200, "{view}");
    let (status, keys) = admin(&a, "GET", &format!("/api/admin/users/{user}/keys"), None).await;
    assert_eq!(status, 200, "{keys}");
    let key_id = keys["data"][0]["id"].as_i64().unwrap();
    let (status, view) = admin(&a, "PATCH", &format!("/api/admin/keys/{key_id}"), Some(budget.clone())).await;
    assert_eq!(status, 200, "{view}");

    // Three streams open on A.
    let body = json!({ "model": "m", "stream": true, "messages": [{ "role": "user", "content": "hi" }] });
    let client = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        let response =
            client.post(url_of(&a, "/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }
    for _ in 0..200 {
        if fake.received().len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.received().len(), 3);

    // SIGKILL: no shutdown, nothing given back, nothing settled.
    a.child.start_kill().unwrap();
    let _ = a.child.wait().await;
    drop(streams);
    let db = open(&url).await;
    assert_eq!(balance(&db, user).await, 1_000_000_000, "the killed replica's in-flight requests were never charged");
    let held = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM balance_leases WHERE holder = 'replica-0'")
            .fetch_one(db.pool())
            .await
            .unwrap()
    };
    assert!(held().await > 0, "the killed replica left its lease behind");
    let budgets_held = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM budget_leases WHERE holder = 'replica-0' AND amount > 0")
            .fetch_one(db.pool())
            .await
            .unwrap()
    };
    // The raw counts: what was charged plus what processes reserved ahead.
    let counts = || async {
        let key: i64 = sqlx::query_scalar("SELECT budget_spent FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(db.pool())
            .await
            .unwrap();
        let user: i64 = sqlx::query_scalar("SELECT budget_spent FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(db.pool())
            .await
            .unwrap();
        (key, user)
    };
    assert_eq!(budgets_held().await, 2, "the killed replica left its key and user budget leases behind");
    let (key_count, user_count) = counts().await;
    assert!(key_count > 300_000_000 && user_count > 300_000_000, "leased ahead: {key_count}, {user_count}");

    // Its leases end by expiry, swept by the survivor, within the stated bound.
    let killed = Instant::now();
    while held().await > 0 || budgets_held().await > 0 {
        assert!(killed.elapsed() < Duration::from_secs(75), "the dead replica's lease outlived 60 s + a sweep");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    println!("the killed replica's lease ended {:?} after the kill", killed.elapsed());

    // The whole balance is spendable on the other two: ten requests at 0.10, and not an eleventh.
    fake.set(Behavior::default());
    let plain = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
    for i in 0..10 {
        let response = client
            .post(url_of(&survivors[i % 2], "/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&plain)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
    }
    for survivor in &survivors {
        let response =
            client.post(url_of(survivor, "/v1/chat/completions")).bearer_auth(&key).json(&plain).send().await.unwrap();
        assert_eq!(response.status(), 429);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while balance(&db, user).await != 0 {
        assert!(Instant::now() < deadline, "settled down to zero");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(charges(&db, user).await, 10, "each served request charged once, the killed ones never");
    assert_audit_clean(&db).await;
    for survivor in survivors {
        let (code, log) = survivor.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
    // Stopped cleanly, the survivors gave their budget leases back: the counts are the charges.
    assert_eq!(counts().await, (1_000_000_000, 1_000_000_000), "the budgets count exactly what was charged");
}

/// Replicas started together on one empty database: one migrates (under sqlx's advisory lock),
/// the others wait for it, and every one of them ends up serving, with each migration applied
/// once and one root admin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_database_all_serve() {
    let (_dirs, servers, url) = replicas(3, &[]).await;
    let db = open(&url).await;
    let applied: Vec<i64> = sqlx::query_scalar::<_, i64>("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(db.pool())
        .await
        .unwrap();
    let expected: Vec<i64> =
        burncloud::db::migrate::migrator(burncloud::config::Backend::Postgres).iter().map(|m| m.version).collect();
    assert_eq!(applied, expected, "every migration applied once");
    let roots: i64 = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE role = 'root'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(roots, 1, "one root admin, whoever created it");
    let creators = servers.iter().filter(|s| s.log.iter().any(|l| l.contains("created the first root admin"))).count();
    assert_eq!(creators, 1, "one replica created the first admin; the others found it");
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
}

/// Short chat requests at a steady rate, spread round-robin over `targets` (base URLs), until
/// finished: what a fleet of clients does, without retries. With `keep_alive` false each request
/// has a connection of its own.
struct Load {
    stop: tokio_util::sync::CancellationToken,
    driver: tokio::task::JoinHandle<(Vec<Result<(), String>>, Duration)>,
}

struct LoadReport {
    ok: usize,
    failures: Vec<String>,
    per_second: f64,
}

impl LoadReport {
    /// One line for the test's output: `what`, the count, the rate and the failures.
    fn print(&self, what: &str) {
        let sent = self.ok + self.failures.len();
        println!("{what}: {sent} requests at {:.0}/s, {} failed", self.per_second, self.failures.len());
    }

    /// No request failed; otherwise the first few failures and `context` (logs) are shown.
    fn assert_none_failed(&self, context: &str) {
        assert!(
            self.failures.is_empty(),
            "{} of {} requests failed, first: {:?}\n{context}",
            self.failures.len(),
            self.ok + self.failures.len(),
            &self.failures[..self.failures.len().min(5)],
        );
    }
}

/// The customer a [`Load`] runs for: 100.00 at 0.001 a request.
const LOAD_CREDIT: &str = "100.00";
const LOAD_PRICE: &str = "0.001";

/// Every request the load got an answer for was charged once, at [`LOAD_PRICE`], and the ledger
/// sums to the balance.
async fn assert_each_answer_charged_once(url: &str, user: i64, answered: usize) {
    let db = open(url).await;
    let answered = i64::try_from(answered).unwrap();
    assert_eq!(charges(&db, user).await, answered, "every request served was settled, once");
    assert_eq!(balance(&db, user).await, 100_000_000_000 - answered * 1_000_000);
    assert_audit_clean(&db).await;
}

impl Load {
    fn start(targets: Vec<String>, key: &str, per_second: u32, keep_alive: bool) -> Load {
        let stop = tokio_util::sync::CancellationToken::new();
        let (key, finished) = (key.to_string(), stop.clone());
        let driver = tokio::spawn(async move {
            let idle = if keep_alive { usize::MAX } else { 0 };
            let client = reqwest::Client::builder().pool_max_idle_per_host(idle).build().unwrap();
            let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
            let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second);
            let mut requests = tokio::task::JoinSet::new();
            let started = Instant::now();
            let mut sent = 0usize;
            while !finished.is_cancelled() {
                tick.tick().await;
                let request = client
                    .post(format!("{}/v1/chat/completions", targets[sent % targets.len()]))
                    .bearer_auth(&key)
                    .json(&body);
                sent += 1;
                requests.spawn(async move {
                    let response = request.send().await.map_err(|e| format!("{e:?}"))?;
                    let status = response.status();
                    let text = response.text().await.map_err(|e| format!("{status}, then {e:?}"))?;
                    if status == 200 { Ok(()) } else { Err(format!("{status}: {text}")) }
                });
            }
            let elapsed = started.elapsed();
            (requests.join_all().await, elapsed)
        });
        Load { stop, driver }
    }

    async fn finish(self) -> LoadReport {
        self.stop.cancel();
        let (results, elapsed) = self.driver.await.unwrap();
        let failures: Vec<String> = results.iter().filter_map(|r| r.clone().err()).collect();
        LoadReport {
            ok: results.len() - failures.len(),
            per_second: results.len() as f64 / elapsed.as_secs_f64(),
            failures,
        }
    }
}
