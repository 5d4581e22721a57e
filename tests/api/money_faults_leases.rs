//! Money under database faults, and balance leases that stay true (issue 13, items 5 and 6): a
//! settlement whose COMMIT succeeded but whose acknowledgement was lost is retried without
//! charging twice; a lease ended by another process stops being spendable at the next renewal;
//! lease expiry follows the database's clock, not a process's; a give-back the database refused
//! leaves the amount in memory, to be given back later.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, Row};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::leases::{chat, leased, priced};
use crate::support::fake_openai::{Behavior, DEFAULT_COMPLETION, DEFAULT_PROMPT, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app_with};

db_tests!(
    exactly_once_settlement_under_faults,
    leases_stay_true_when_ended_elsewhere,
    leases_stay_true_under_clock_skew,
    leases_stay_true_when_give_back_fails,
);

/// What one `chat()` request costs at the `priced` prices (1.00 and 2.00 per 1M tokens).
const COST: i64 = DEFAULT_PROMPT * 1_000 + DEFAULT_COMPLETION * 2_000;

/// The app with its leases renewed (and reconciled, and others' expired ones ended) every `renew_secs`.
async fn spawn(backend: Backend, renew_secs: u64) -> TestApp {
    spawn_app_with(
        backend,
        |env| {
            env.insert("BURNCLOUD_LEASE_RENEW_SECS".into(), renew_secs.to_string());
        },
        |router| router,
    )
    .await
}

/// The database's clock (unix ms).
async fn db_now(app: &TestApp) -> i64 {
    let mut conn = app.db.pool().acquire().await.unwrap();
    burncloud::db::leases::now_ms(&mut conn).await.unwrap()
}

/// When the holder's lease on the user ends (unix ms, database clock), if it has one.
async fn lease_expiry(app: &TestApp, user: i64, holder: &str) -> Option<i64> {
    sqlx::query("SELECT expires_at FROM balance_leases WHERE user_id = $1 AND holder = $2")
        .bind(user)
        .bind(holder)
        .fetch_optional(app.db.pool())
        .await
        .unwrap()
        .map(|r| r.get(0))
}

/// Another process's lease, written the way that process would.
async fn insert_lease(app: &TestApp, user: i64, holder: &str, amount: i64, expires_at: i64) {
    sqlx::query("UPDATE users SET leased = leased + $1 WHERE id = $2")
        .bind(amount)
        .bind(user)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(user)
        .bind(holder)
        .bind(amount)
        .bind(expires_at)
        .execute(app.db.pool())
        .await
        .unwrap();
}

/// Polls `check` for up to 5 s.
async fn eventually<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("not within 5 s: {what}");
}

// ---- item 5 ---------------------------------------------------------------------------------

/// The Postgres server the tests use, as `host:port`.
fn postgres_address() -> String {
    let url = url::Url::parse(&std::env::var("BURNCLOUD_TEST_DATABASE_URL").unwrap()).unwrap();
    format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(5432))
}

/// A TCP proxy in front of Postgres that kills a connection right after forwarding the COMMIT of
/// a transaction that ran a statement containing `marker`: the server commits, the client never
/// sees the acknowledgement and gets a broken connection instead.
struct CommitCutter {
    port: u16,
    armed: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
}

impl CommitCutter {
    async fn start(upstream: String, marker: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (armed, cuts) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, c) = (armed.clone(), cuts.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, upstream.clone(), marker, a.clone(), c.clone()));
            }
        });
        Self { port, armed, cuts }
    }

    /// Cuts the next `n` such commits.
    fn arm(&self, n: usize) {
        self.armed.store(n, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

async fn relay(
    client: TcpStream,
    upstream: String,
    marker: &'static str,
    armed: Arc<AtomicUsize>,
    cuts: Arc<AtomicUsize>,
) {
    let Ok(server) = TcpStream::connect(&upstream).await else { return };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    let (mut from_client, to_client) = client.into_split();
    let (from_server, mut to_server) = server.into_split();
    let cut = Arc::new(AtomicBool::new(false));
    let down = tokio::spawn(relay_answers(from_server, to_client, cut.clone()));
    let _ = relay_messages(&mut from_client, &mut to_server, marker, &armed, &cuts, &cut).await;
    // After a cut this returns once the server answered the COMMIT (so it did commit), closing the
    // client's side without passing the answer on.
    let _ = down.await;
}

async fn relay_answers(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, cut: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}

/// Forwards the client's messages, following the wire protocol: untyped start-up messages, then
/// typed ones (Parse names a statement, Bind runs one, Query is a simple query such as COMMIT).
async fn relay_messages(
    from: &mut OwnedReadHalf,
    to: &mut OwnedWriteHalf,
    marker: &str,
    armed: &AtomicUsize,
    cuts: &AtomicUsize,
    cut: &AtomicBool,
) -> std::io::Result<()> {
    loop {
        let mut len = [0u8; 4];
        from.read_exact(&mut len).await?;
        let mut body = vec![0u8; u32::from_be_bytes(len) as usize - 4];
        from.read_exact(&mut body).await?;
        to.write_all(&len).await?;
        to.write_all(&body).await?;
        let code = body.get(..4).map(|c| u32::from_be_bytes(c.try_into().unwrap()));
        // SSLRequest and GSSENCRequest are answered with one byte; the startup message follows.
        if !matches!(code, Some(80_877_103 | 80_877_104)) {
            break;
        }
    }
    let strings = |b: &[u8]| b.split(|&c| c == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect::<Vec<_>>();
    let mut statements: HashMap<String, bool> = HashMap::new();
    let mut marked = false;
    loop {
        let mut head = [0u8; 5];
        from.read_exact(&mut head).await?;
        let mut body = vec![0u8; u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize - 4];
        from.read_exact(&mut body).await?;
        match head[0] {
            b'P' => {
                let s = strings(&body);
                statements.insert(s[0].clone(), s[1].contains(marker));
            }
            b'B' => {
                let s = strings(&body);
                marked |= statements.get(&s[1]).copied().unwrap_or(false);
            }
            b'Q' => {
                let sql = strings(&body)[0].trim().to_ascii_uppercase();
                marked |= sql.contains(&marker.to_ascii_uppercase());
                let commit = sql.starts_with("COMMIT");
                if commit
                    && marked
                    && armed.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
                {
                    cut.store(true, Ordering::SeqCst);
                    to.write_all(&head).await?;
                    to.write_all(&body).await?;
                    cuts.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                if commit || sql.starts_with("BEGIN") || sql.starts_with("ROLLBACK") {
                    marked = false;
                }
            }
            _ => {}
        }
        to.write_all(&head).await?;
        to.write_all(&body).await?;
    }
}

/// Item 5: every settlement carries a unique key written with its rows; a group commit retried
/// after its COMMIT succeeded but the acknowledgement was lost charges nobody twice. On Postgres
/// the connection really dies right after COMMIT (a proxy cuts it); on SQLite, which has no
/// connection to lose, the writer's test seam reports the failure after a successful commit.
async fn exactly_once_settlement_under_faults(backend: Backend) {
    let proxy = match backend {
        Backend::Postgres => Some(CommitCutter::start(postgres_address(), "INSERT INTO request_logs").await),
        Backend::Sqlite => None,
    };
    let proxy_port = proxy.as_ref().map(|p| p.port);
    let app = spawn_app_with(
        backend,
        |env| {
            if let Some(port) = proxy_port {
                let mut url = url::Url::parse(&env["DATABASE_URL"]).unwrap();
                url.set_host(Some("127.0.0.1")).unwrap();
                url.set_port(Some(port)).unwrap();
                env.insert("DATABASE_URL".into(), url.to_string());
            }
        },
        |router| router,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    let initial = app.balance(user).await;

    match &proxy {
        Some(proxy) => proxy.arm(3),
        None => app.state.billing().lose_commit_acks(3),
    }
    const N: usize = 16;
    let requests = (0..N).map(|i| {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-request-id", format!("fault-{i}"))
            .json(&chat());
        async move { request.send().await.unwrap().status().as_u16() }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(statuses.iter().all(|&s| s == 200), "{statuses:?}");
    app.settled().await;
    let lost = match &proxy {
        Some(proxy) => proxy.cuts(),
        None => app.state.billing().lost_commit_acks() as usize,
    };
    assert!(lost >= 1, "no COMMIT acknowledgement was lost: the test proved nothing");

    for i in 0..N {
        let id = format!("fault-{i}");
        let row = sqlx::query(
            "SELECT COUNT(*), CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE kind = 'settle' AND reference = $1",
        )
        .bind(&id)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
        let (rows, charged): (i64, i64) = (row.get(0), row.get(1));
        assert_eq!((rows, charged), (1, -COST), "{id} is charged exactly once");
        let logs: i64 = sqlx::query("SELECT COUNT(*) FROM request_logs WHERE request_id = $1")
            .bind(&id)
            .fetch_one(app.db.pool())
            .await
            .unwrap()
            .get(0);
        assert_eq!(logs, 1, "{id} is logged once");
    }
    assert_eq!(app.balance(user).await, initial - N as i64 * COST);
    app.assert_ledger_consistent().await;
}

// ---- item 6 ---------------------------------------------------------------------------------

/// Item 6, renewal reconciles: another process (its sweeper) ends this process's live lease and
/// leases the whole balance itself. At the next renewal this process stops promising the lease it
/// lost, so nothing is served on money promised elsewhere; once that money is free again,
/// requests run from a new lease and are billed.
async fn leases_stay_true_when_ended_elsewhere(backend: Backend) {
    let app = spawn(backend, 1).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let leases = app.state.billing().leases();
    assert!(leases.available(user) > 0, "the request left a lease in memory");
    let balance = app.balance(user).await;

    sqlx::query("DELETE FROM balance_leases WHERE user_id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    sqlx::query("UPDATE users SET leased = 0 WHERE id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    let in_an_hour = db_now(&app).await + 3_600_000;
    insert_lease(&app, user, "other:1", balance, in_an_hour).await;

    eventually("the lost lease stops being spendable", || async { leases.available(user) == 0 }).await;
    let response = app.v1(&key, "/v1/chat/completions", &chat()).await;
    assert_eq!(response.status(), 429, "the money is promised to the other process");
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "insufficient_quota");
    assert_eq!(fake.received().len(), 1, "nothing was served on money promised elsewhere");
    assert_eq!(app.balance(user).await, balance);
    app.assert_ledger_consistent().await;

    // The other process gives its lease back: a new lease, and the request is billed.
    sqlx::query("DELETE FROM balance_leases WHERE user_id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    sqlx::query("UPDATE users SET leased = 0 WHERE id = $1").bind(user).execute(app.db.pool()).await.unwrap();
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    assert_eq!(app.balance(user).await, balance - COST);
    assert!(lease_expiry(&app, user, leases.holder()).await.is_some(), "a new lease row");
    app.assert_ledger_consistent().await;
}

/// Item 6, expiry by the database's clock: this process's clock runs 2 minutes ahead, then 2
/// minutes behind. Its own lease still ends 60 s after the database's now (not 2 minutes later or
/// already), its sweeper ends a lease that expired 1 s ago by the database's clock and leaves one
/// with 30 s to live alone.
async fn leases_stay_true_under_clock_skew(backend: Backend) {
    let app = spawn(backend, 1).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    let leases = app.state.billing().leases();
    let holder = leases.holder().to_string();
    let app = &app;
    let own_lease_left = || async { lease_expiry(app, user, &holder).await.unwrap() - db_now(app).await };
    let exists = |h: &'static str| async move { lease_expiry(app, user, h).await.is_some() };

    leases.skew_clock(120_000);
    let now = db_now(app).await;
    insert_lease(app, user, "other:1", 1_000, now + 30_000).await;
    insert_lease(app, user, "gone:1", 500, now - 1_000).await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let left = own_lease_left().await;
    assert!((50_000..=60_000).contains(&left), "a clock 2 min ahead: the new lease ends in {left} ms");
    eventually("the sweeper ends the expired lease", || async { !exists("gone:1").await }).await;
    assert!(exists("other:1").await, "a clock 2 min ahead ended another process's live lease");
    let offset = leases.clock_offset_ms();
    assert!((110_000..=130_000).contains(&offset), "the skew was in effect: {offset}");
    let left = own_lease_left().await;
    assert!((50_000..=60_000).contains(&left), "a clock 2 min ahead: the renewed lease ends in {left} ms");

    leases.skew_clock(-120_000);
    let now = db_now(app).await;
    insert_lease(app, user, "gone:2", 500, now - 1_000).await;
    eventually("a clock 2 min behind still ends the expired lease", || async { !exists("gone:2").await }).await;
    let offset = leases.clock_offset_ms();
    assert!((-130_000..=-110_000).contains(&offset), "the skew was in effect: {offset}");
    let left = own_lease_left().await;
    assert!((50_000..=60_000).contains(&left), "a clock 2 min behind: the renewed lease ends in {left} ms");
    assert!(exists("other:1").await);

    let balance = app.balance(user).await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    assert_eq!(app.balance(user).await, balance - COST);
    app.assert_ledger_consistent().await;
}

/// Holds the database's write lock on the user's lease (all writes on SQLite; the lease row on
/// Postgres, where the app's statements give up after 300 ms waiting for a lock) until ROLLBACK.
async fn lock_lease(app: &TestApp, backend: Backend, user: i64) -> sqlx::AnyConnection {
    let url = app.state.config().database.url.expose().to_string();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    match backend {
        Backend::Sqlite => {
            conn.execute("BEGIN IMMEDIATE").await.unwrap();
        }
        Backend::Postgres => {
            conn.execute("BEGIN").await.unwrap();
            sqlx::query("SELECT amount FROM balance_leases WHERE user_id = $1 FOR UPDATE")
                .bind(user)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        }
    }
    conn
}

/// Item 6, a failed give-back: the database refuses to take a lease back (it is locked), so the
/// amount stays this process's to spend or give back later, instead of being forgotten in memory
/// while the database keeps it reserved (renewed for as long as the process lives, so no one could
/// debit that part of the balance).
async fn leases_stay_true_when_give_back_fails(backend: Backend) {
    let app = spawn_app_with(
        backend,
        |env| {
            // No renewal or idle give-back in the background during the test.
            env.insert("BURNCLOUD_LEASE_RENEW_SECS".into(), "20".into());
            if backend == Backend::Postgres {
                let url = format!("{}?options[lock_timeout]=300", env["DATABASE_URL"]);
                env.insert("DATABASE_URL".into(), url);
            }
        },
        |router| router,
    )
    .await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced(&app, &fake).await;
    let (user, key) = app.user_with_key("1.00").await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat()).await.status(), 200);
    let balance = app.balance(user).await;
    let leases = app.state.billing().leases();
    let reserved = leases.available(user);
    assert!(reserved > 0);
    assert_eq!(leased(&app, user).await, (reserved, 1));

    let mut lock = lock_lease(&app, backend, user).await;
    assert!(app.state.billing().give_back_lease(user).await.is_err(), "the database refused the give-back");
    assert_eq!(leases.available(user), reserved, "what could not be given back is still in memory");
    assert_eq!(leased(&app, user).await, (reserved, 1), "and still reserved in the database");
    lock.execute("ROLLBACK").await.unwrap();
    lock.close().await.unwrap();

    // Later it goes back, and an operator can debit the whole balance.
    app.state.billing().give_back_idle(Duration::ZERO).await;
    assert_eq!(leases.available(user), 0);
    assert_eq!(leased(&app, user).await, (0, 0), "the lease went back to the balance");
    let all = format!("-{}", burncloud::domain::money::Money(balance));
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": all, "note": "n" })))
        .await;
    assert_eq!((status, body["balance"].as_str()), (200, Some("0.00")), "{body}");
    app.assert_ledger_consistent().await;
}
