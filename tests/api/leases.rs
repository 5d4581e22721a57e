//! Balance leases: the gateway promises holds from a slice of the balance reserved in the
//! database, so they must never let two processes spend the same money, never block an
//! operator's debit, and never outlive a crashed process.

use burncloud::app::Application;
use burncloud::config::Config;
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, fresh_database_url, spawn_app, test_env};

db_tests!(
    an_operator_can_debit_the_whole_balance_right_after_a_request,
    another_process_lease_is_not_spent_here,
    leases_of_a_crashed_process_end_when_it_restarts,
    a_replica_ends_only_its_own_leases,
);

pub fn chat() -> Value {
    json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 10 })
}

/// A channel to the fake serving `gpt-test`, priced 1.00 in and 2.00 out per 1M tokens.
pub async fn priced(app: &TestApp, fake: &FakeOpenAi) {
    app.add_channel(json!({
        "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "sk-upstream", "models": ["gpt-test"]
    }))
    .await;
    app.set_price("gpt-test", json!({ "input": "1.00", "output": "2.00" })).await;
}

/// `(users.leased, lease rows)` of a user.
pub async fn leased(app: &TestApp, user: i64) -> (i64, i64) {
    let row =
        sqlx::query("SELECT leased, (SELECT COUNT(*) FROM balance_leases WHERE user_id = $1) FROM users WHERE id = $1")
            .bind(user)
            .fetch_one(app.db.pool())
            .await
            .unwrap();
    (row.get(0), row.get(1))
}

async fn an_operator_can_debit_the_whole_balance_right_after_a_request(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let balance = app.balance(user).await;
    assert!(balance < 1_000_000_000);
    assert!(leased(&app, user).await.0 > 0, "the gateway holds a lease on the balance");

    let all = format!("-{}", burncloud::domain::money::Money(balance));
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": all, "note": "n" })))
        .await;
    assert_eq!((status, body["balance"].as_str()), (200, Some("0.00")), "{body}");
    assert_eq!(leased(&app, user).await, (0, 0), "the lease was given back first");

    let response = app.v1(&key, "/v1/chat/completions", &chat()).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "insufficient_quota");
    app.assert_ledger_consistent().await;
}

async fn another_process_lease_is_not_spent_here(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    // Another gateway process holds a live lease on all of it.
    let in_a_minute = burncloud::domain::time::now_ms() + 60_000;
    sqlx::query("UPDATE users SET leased = balance WHERE id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    sqlx::query(
        "INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, 'other:1', 1000000000, $2)",
    )
    .bind(user)
    .bind(in_a_minute)
    .execute(app.db.pool())
    .await
    .unwrap();

    let response = app.v1(&key, "/v1/chat/completions", &chat()).await;
    assert_eq!(response.status(), 429, "the money is promised elsewhere");
    let (status, _) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": "-0.01", "note": "test" })))
        .await;
    assert_eq!(status, 409, "an operator's debit cannot take it either");
    assert_eq!(fake.received().len(), 0);
    assert_eq!(app.balance(user).await, 1_000_000_000);
    app.assert_ledger_consistent().await;
}

/// Starts the app on `database_url` and `port` (0 for any), as replica `instance` (`BURNCLOUD_INSTANCE_ID`).
async fn start(dir: &std::path::Path, database_url: &str, port: u16, instance: Option<&str>) -> TestApp {
    let mut env = test_env(dir, database_url);
    env.insert("BURNCLOUD_LISTEN".into(), format!("127.0.0.1:{port}"));
    if let Some(id) = instance {
        env.insert("BURNCLOUD_INSTANCE_ID".into(), id.into());
    }
    let config = Config::load_from(None, |name| env.get(name).cloned()).unwrap();
    TestApp::serve(Application::build(config).await.unwrap(), None)
}

async fn leases_of_a_crashed_process_end_when_it_restarts(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(backend, dir.path()).await;
    let app = start(dir.path(), &database_url, 0, Some("replica-a")).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let balance = app.balance(user).await;
    assert!(leased(&app, user).await.0 > 0);
    // A process that died long ago left an expired lease too.
    sqlx::query("UPDATE users SET leased = leased + 1000 WHERE id = $1")
        .bind(user)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, 'gone:1', 1000, 1)")
        .bind(user)
        .execute(app.db.pool())
        .await
        .unwrap();

    // Crash: the server stops without its shutdown, so the lease is not given back.
    let port = app.port;
    app.crash().await;
    let app = start(dir.path(), &database_url, port, Some("replica-a")).await;
    assert_eq!(leased(&app, user).await, (0, 0), "the restart ended its old lease and the expired one");
    assert_eq!(app.balance(user).await, balance, "leases move no money");
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    app.assert_ledger_consistent().await;
}

/// The lease holders of a user's balance.
async fn holders(app: &TestApp, user: i64) -> Vec<String> {
    sqlx::query_scalar::<_, String>("SELECT holder FROM balance_leases WHERE user_id = $1 ORDER BY holder")
        .bind(user)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
}

/// Replicas sharing one database (here even one host name) never end each other's leases: each
/// holds its leases under its own name, and a restart ends only what its name left.
async fn a_replica_ends_only_its_own_leases(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(backend, dir.path()).await;
    let a = start(dir.path(), &database_url, 0, Some("replica-a")).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&a, &fake).await;
    let (user, key) = a.user_with_key("1.00").await;
    assert_eq!(a.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    assert_eq!(holders(&a, user).await, ["replica-a"]);

    // B starts on the same database, serves the same user, and restarts after a crash.
    let b = start(dir.path(), &database_url, 0, Some("replica-b")).await;
    assert_eq!(holders(&b, user).await, ["replica-a"], "starting B left A's lease alone");
    assert_eq!(b.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    assert_eq!(holders(&b, user).await, ["replica-a", "replica-b"]);
    let port = b.port;
    b.crash().await;
    let b = start(dir.path(), &database_url, port, Some("replica-b")).await;
    assert_eq!(holders(&b, user).await, ["replica-a"], "B's restart ended its own lease, not A's");

    // Without an instance id, each start is a holder of its own: a replica started without one
    // never ends a lease it did not take, even on the same host and port.
    let port = b.port;
    b.crash().await;
    let c = start(dir.path(), &database_url, port, None).await;
    assert_eq!(holders(&c, user).await, ["replica-a"]);
    assert_eq!(c.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let mine = holders(&c, user).await;
    assert_eq!(mine.len(), 2, "{mine:?}");
    assert!(mine.iter().any(|h| h.contains(&format!(":{port}:"))), "host:port:start-id: {mine:?}");
    assert_eq!(a.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200, "A still serves from its lease");
    c.settled().await;
    a.settled().await;
    a.assert_ledger_consistent().await;
}
