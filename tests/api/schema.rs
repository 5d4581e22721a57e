//! The schema on both engines: every table is there, money constraints hold, and the atomic
//! conditional debit the billing relies on behaves the same on SQLite and Postgres.

use burncloud::db::{self, Db};
use burncloud::domain::time::now_ms;
use sqlx::Row;

use crate::support::helpers::{Backend, spawn_app};

const TABLES: &[&str] = &[
    "groups",
    "users",
    "api_keys",
    "access_tokens",
    "channels",
    "abilities",
    "model_prices",
    "group_model_prices",
    "ledger",
    "request_logs",
    "redemption_codes",
    "invitations",
    "payments",
    "webhook_events",
    "email_tokens",
    "sessions",
    "settings",
    "audit_log",
    "model_capabilities",
];

db_tests!(
    every_table_exists_and_migrations_are_idempotent,
    balances_cannot_go_negative,
    concurrent_conditional_debits_never_overdraw,
    ledger_idempotency_keys_are_unique,
    an_existing_database_upgrades_in_place,
);

async fn root_id(db: &Db) -> i64 {
    sqlx::query("SELECT id FROM users WHERE role = 'root'").fetch_one(db.pool()).await.unwrap().get(0)
}

async fn every_table_exists_and_migrations_are_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    for table in TABLES {
        let count: i64 = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(app.db.pool())
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"))
            .get(0);
        assert!(count >= 0);
    }
    let multiplier: i64 = sqlx::query("SELECT multiplier_ppm FROM groups WHERE name = 'default'")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(multiplier, 1_000_000);
    // A second run (a restart, another replica) applies nothing and fails on nothing.
    db::migrate::run(&app.db).await.unwrap();
}

async fn balances_cannot_go_negative(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = root_id(&app.db).await;
    let err =
        sqlx::query("UPDATE users SET balance = -1 WHERE id = $1").bind(id).execute(app.db.pool()).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("check"), "{err}");
    // 64-bit money: a balance beyond 2^53 survives the round trip exactly.
    let big = 9_007_199_254_740_993_i64;
    sqlx::query("UPDATE users SET balance = $1 WHERE id = $2").bind(big).bind(id).execute(app.db.pool()).await.unwrap();
    let back: i64 =
        sqlx::query("SELECT balance FROM users WHERE id = $1").bind(id).fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(back, big);
}

async fn concurrent_conditional_debits_never_overdraw(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = root_id(&app.db).await;
    let price = 7_i64;
    sqlx::query("UPDATE users SET balance = $1 WHERE id = $2")
        .bind(10 * price)
        .bind(id)
        .execute(app.db.pool())
        .await
        .unwrap();

    let attempts = (0..40).map(|_| {
        let pool = app.db.pool().clone();
        tokio::spawn(async move {
            sqlx::query("UPDATE users SET balance = balance - $1 WHERE id = $2 AND balance >= $1 RETURNING balance")
                .bind(price)
                .bind(id)
                .fetch_optional(&pool)
                .await
                .unwrap()
                .is_some()
        })
    });
    let mut succeeded = 0;
    for attempt in attempts.collect::<Vec<_>>() {
        if attempt.await.unwrap() {
            succeeded += 1;
        }
    }
    assert_eq!(succeeded, 10);
    let balance: i64 =
        sqlx::query("SELECT balance FROM users WHERE id = $1").bind(id).fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(balance, 0);
}

async fn ledger_idempotency_keys_are_unique(backend: Backend) {
    let app = spawn_app(backend).await;
    let id = root_id(&app.db).await;
    let insert = || {
        sqlx::query(
            "INSERT INTO ledger (user_id, kind, amount, balance_after, idempotency_key, created_at) \
             VALUES ($1, 'topup', 5, 5, 'stripe:evt_1', $2)",
        )
        .bind(id)
        .bind(now_ms())
        .execute(app.db.pool())
    };
    insert().await.unwrap();
    let err = insert().await.unwrap_err();
    assert!(db::is_unique_violation(&err, "ledger_idempotency_key_key", "ledger.idempotency_key"), "{err}");
    assert!(!db::is_unique_violation(&err, "users_email_key", "users.email"));
}

/// A database made by the previous release (migrations up to 0003) with data in it upgrades to
/// the current schema in place: the later migrations run as pending ones and keep every row.
async fn an_existing_database_upgrades_in_place(backend: Backend) {
    use burncloud::config::DatabaseUrl;
    let dir = tempfile::tempdir().unwrap();
    let url = DatabaseUrl::parse(&crate::support::helpers::fresh_database_url(backend, dir.path()).await).unwrap();
    let db = Db::connect(&url, 2).await.unwrap();
    let mut old = db::migrate::migrator(db.backend());
    old.migrations = std::borrow::Cow::Owned(old.migrations.iter().filter(|m| m.version <= 3).cloned().collect());
    old.run(db.writer()).await.expect("the previous release's schema");

    let now = now_ms();
    sqlx::query(
        "INSERT INTO users (email, password_hash, role, invite_code, balance, created_at, updated_at) \
         VALUES ('old@example.com', 'x', 'reseller', 'OLDCODE1', 5000, $1, $1)",
    )
    .bind(now)
    .execute(db.writer())
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO channels (name, type, keys_encrypted, created_at, updated_at) VALUES ('old', 'openai', $1, $2, $2)",
    )
    .bind(vec![1u8, 2, 3])
    .bind(now)
    .execute(db.writer())
    .await
    .unwrap();
    sqlx::query("INSERT INTO redemption_codes (code, amount, created_at) VALUES ('OLD-CODE', 100, $1)")
        .bind(now)
        .execute(db.writer())
        .await
        .unwrap();

    sqlx::query(
        "INSERT INTO payments (user_id, provider_session_id, credit_amount, charge_amount, charge_currency, status, \
         created_at, updated_at) SELECT id, 'cs_old', 1000, 100, 'usd', 'paid', $1, $1 FROM users WHERE email = 'old@example.com'",
    )
    .bind(now)
    .execute(db.writer())
    .await
    .unwrap();

    db::migrate::run(&db).await.expect("the pending migrations apply");
    // 0008 rebuilt `payments` on SQLite: the row is there, with the new columns' defaults.
    let payment = sqlx::query("SELECT provider_session_id, status, unrecovered_credit, checkout_url FROM payments")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(payment.get::<String, _>(0), "cs_old");
    assert_eq!((payment.get::<String, _>(1), payment.get::<i64, _>(2)), ("paid".to_string(), 0));
    assert_eq!(payment.get::<Option<String>, _>(3), None);
    let user = sqlx::query("SELECT balance, low_balance_notified_at FROM users WHERE email = 'old@example.com'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!((user.get::<i64, _>(0), user.get::<Option<i64>, _>(1)), (5000, None));
    let channel = sqlx::query("SELECT used_amount, last_error FROM channels WHERE name = 'old'")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!((channel.get::<i64, _>(0), channel.get::<Option<String>, _>(1)), (0, None));
    let paid: i64 = sqlx::query("SELECT paid FROM redemption_codes WHERE code = 'OLD-CODE'")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(paid, 0);
    let allowed: Option<String> = sqlx::query("SELECT allowed_models FROM groups WHERE name = 'default'")
        .fetch_one(db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(allowed, None, "groups keep every model");
    db::migrate::run(&db).await.expect("and a second run changes nothing");
}
