//! An auditable ledger (issue 13, item 8): the admin ledger API pages through every row —
//! per-request settlements included — and they sum to the balance; a user's monthly statement
//! (console and `/api/me`) adds up exactly to the month's change in balance and never shows
//! another user's rows; `burncloud audit` finds corrupted books and says so in its exit code.

use std::collections::{BTreeMap, HashSet};
use std::process::Stdio;
use std::time::Duration;

use burncloud::domain::money::Money;
use burncloud::domain::time::{now_ms, parse_utc_month, utc_month};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_DISPOSITION, CONTENT_TYPE, COOKIE};
use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::console_tokens::console_token;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};

db_tests!(
    the_admin_ledger_pages_through_every_row,
    a_monthly_statement_sums_to_the_change_in_balance,
    burncloud_audit_reports_corrupted_books,
);

/// An app with the model `flat` at $0.001 per request.
async fn flat_priced(app: &TestApp) -> FakeOpenAi {
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(
        json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k", "models": ["flat"] }),
    )
    .await;
    app.set_price("flat", json!({ "per_request": "0.001" })).await;
    fake
}

/// `n` chat requests with `key`, ten at a time; all must succeed.
async fn requests(app: &TestApp, key: &str, n: usize) {
    let body = json!({ "model": "flat", "messages": [{ "role": "user", "content": "hi" }] });
    for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
        let calls = chunk.iter().map(|_| app.v1(key, "/v1/chat/completions", &body));
        for response in futures_util::future::join_all(calls).await {
            assert_eq!(response.status(), 200);
        }
    }
    app.settled().await;
}

async fn credit(app: &TestApp, user: i64, amount: &str, note: &str) {
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": amount, "note": note })))
        .await;
    assert_eq!(status, 200, "{body}");
}

fn nanos(decimal: &str) -> i64 {
    Money::parse(decimal).unwrap_or_else(|e| panic!("{decimal:?}: {e}")).nanos()
}

async fn ledger_count(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ledger WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn the_admin_ledger_pages_through_every_row(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = flat_priced(&app).await;
    let (user, key) = app.user_with_key("1.00").await;
    let (other, _) = app.user_with_key("3.00").await;
    // More than the old 200-row cap, mixed: adjustments both ways and per-request settlements.
    for i in 0..40 {
        credit(&app, user, if i % 4 == 3 { "-0.000000007" } else { "0.000000123" }, &format!("c{i}")).await;
    }
    requests(&app, &key, 170).await;
    app.assert_ledger_consistent().await;
    let rows = ledger_count(&app, user).await;
    assert!(rows > 200, "{rows} rows");

    let path = format!("/api/admin/users/{user}/ledger");
    let (mut seen, mut sum, mut settles, mut pages) = (HashSet::new(), 0i64, 0, 0);
    let mut before: Option<i64> = None;
    let mut last_id = i64::MAX;
    loop {
        let query = before.map(|b| format!("?limit=70&before={b}")).unwrap_or_else(|| "?limit=70".into());
        let (status, page) = app.admin("GET", &format!("{path}{query}"), None).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        assert_eq!(page["balance"], Money(app.balance(user).await).to_string());
        for row in page["data"].as_array().unwrap() {
            let id = row["id"].as_i64().unwrap();
            assert!(id < last_id, "newest first, no repeats across pages");
            last_id = id;
            assert!(seen.insert(id));
            sum += nanos(row["amount"].as_str().unwrap());
            if row["kind"] == "settle" {
                settles += 1;
                assert_eq!(row["amount"], "-0.001");
                assert!(row["reference"].as_str().is_some_and(|r| !r.is_empty()), "the request id: {row}");
            }
            for field in ["created_at", "kind", "amount", "balance_after", "note", "reference"] {
                assert!(row.get(field).is_some(), "{field} in {row}");
            }
        }
        match page["next_before"].as_i64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    assert_eq!(i64::try_from(seen.len()).unwrap(), rows, "every row, once");
    assert_eq!(settles, 170, "per-request settlements are in the ledger API");
    assert_eq!(pages, rows / 70 + 1);
    assert_eq!(sum, app.balance(user).await, "the rows sum to the balance");
    assert_eq!(sum, 1_000_000_000 + 30 * 123 - 10 * 7 - 170 * 1_000_000);

    // The default page is 100 rows; the other user's rows never appear.
    let (_, page) = app.admin("GET", &path, None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 100);
    assert!(page["next_before"].is_i64());
    let (_, page) = app.admin("GET", &format!("/api/admin/users/{other}/ledger"), None).await;
    assert_eq!((page["data"].as_array().unwrap().len(), page["next_before"].clone()), (1, Value::Null), "{page}");
    assert_eq!(page["data"][0]["amount"], "3.00");

    for bad in ["?limit=0", "?limit=1001", "?limit=ten", "?before=latest"] {
        let (status, body) = app.admin("GET", &format!("{path}{bad}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad}: {body}");
    }
    let (status, page) = app.admin("GET", &format!("{path}?limit=1000"), None).await;
    assert_eq!((status, page["data"].as_array().unwrap().len() as i64), (200, rows));
    let (_, page) = app.admin("GET", &format!("{path}?before=1"), None).await;
    assert_eq!(page["data"], json!([]), "nothing below the first id");
    app.assert_ledger_consistent().await;
}

/// A statement line's cells (RFC 4180: quoted cells may hold commas and doubled quotes).
fn cells(line: &str) -> Vec<String> {
    let (mut out, mut cell, mut quoted, mut chars) = (Vec::new(), String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cell.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cell)),
            _ => cell.push(c),
        }
    }
    out.push(cell);
    out
}

/// A parsed statement: opening, rows, closing (amounts in nano-units).
struct Statement {
    opening: i64,
    closing: i64,
    rows: Vec<Vec<String>>,
}

impl Statement {
    fn parse(csv: &str) -> Self {
        let mut lines = csv.lines();
        assert_eq!(lines.next(), Some("time,kind,amount,balance_after,description,model,reference"), "{csv}");
        let all: Vec<Vec<String>> = lines.map(cells).collect();
        assert!(all.iter().all(|c| c.len() == 7), "{csv}");
        let (first, last) = (all.first().unwrap(), all.last().unwrap());
        assert_eq!((first[1].as_str(), first[2].as_str()), ("opening_balance", ""), "{csv}");
        assert_eq!((last[1].as_str(), last[2].as_str()), ("closing_balance", ""), "{csv}");
        Self { opening: nanos(&first[3]), closing: nanos(&last[3]), rows: all[1..all.len() - 1].to_vec() }
    }

    fn sum(&self) -> i64 {
        self.rows.iter().map(|r| nanos(&r[2])).sum()
    }
}

/// The previous UTC month of `month` (`YYYY-MM`).
fn month_before(month: &str) -> String {
    let (start, _) = parse_utc_month(month).unwrap();
    utc_month(start - 1)
}

async fn api_statement(app: &TestApp, token: &str, month: &str) -> reqwest::Response {
    app.client.get(app.url(&format!("/api/me/statement?month={month}"))).bearer_auth(token).send().await.unwrap()
}

/// Rows written straight into the ledger for the statement test: more than two reads' worth.
const BULK: i64 = 2_500;

async fn a_monthly_statement_sums_to_the_change_in_balance(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = flat_priced(&app).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("statement@example.com").await;
    let token = console_token(&mut browser, "books").await;
    let user: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = 'statement@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();
    let (other, _) = app.user_with_key("9.00").await;
    credit(&app, other, "1.00", "someone else's secret note").await;

    // Two months ago: a top-up. Last month: more credit and requests. This month: a debit with a
    // note that is a spreadsheet formula, and more requests.
    credit(&app, user, "5.00", "two months ago").await;
    let moved_two = ledger_count(&app, user).await;
    credit(&app, user, "0.123456789", "last month").await;
    requests(&app, &key, 7).await;
    let moved_one = ledger_count(&app, user).await;
    credit(&app, user, "-0.50", "=HYPERLINK(\"http://evil.example\",\"click\")").await;
    requests(&app, &key, 4).await;
    let this_month = utc_month(now_ms());
    let last_month = month_before(&this_month);
    let two_ago = month_before(&last_month);
    // Rows move back in time (the amounts stay, so the books still balance).
    let ids: Vec<i64> = sqlx::query_scalar::<_, i64>("SELECT id FROM ledger WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    for (n, id) in ids.iter().enumerate() {
        let n = i64::try_from(n).unwrap();
        let month = if n < moved_two {
            &two_ago
        } else if n < moved_one {
            &last_month
        } else {
            continue;
        };
        let at = parse_utc_month(month).unwrap().0 + 3_600_000 * (n + 1);
        sqlx::query("UPDATE ledger SET created_at = $1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(app.db.pool())
            .await
            .unwrap();
    }
    // And a busy hour last month: more rows than one read of the statement takes, on three
    // timestamps only (a group commit gives a batch one timestamp), so chunks end inside ties.
    let busy = parse_utc_month(&last_month).unwrap().0 + 36_000_000;
    sqlx::query(
        "INSERT INTO ledger (user_id, kind, amount, balance_after, reference, created_at) \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) \
         SELECT $1, 'settle', -1, 0, 'bulk-' || i, $2 + i % 3 FROM n",
    )
    .bind(user)
    .bind(busy)
    .bind(BULK)
    .execute(app.db.pool())
    .await
    .unwrap();
    sqlx::query("UPDATE users SET balance = balance - $1 WHERE id = $2")
        .bind(BULK)
        .bind(user)
        .execute(app.db.pool())
        .await
        .unwrap();
    app.assert_ledger_consistent().await;
    let balance = app.balance(user).await;
    assert_eq!(balance, 5_000_000_000 + 123_456_789 - 11 * 1_000_000 - 500_000_000 - BULK);

    // The API: CSV, an attachment, not cached.
    let answer = api_statement(&app, &token, &last_month).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(
        answer.headers()[CONTENT_DISPOSITION].to_str().unwrap(),
        format!("attachment; filename=\"statement-{last_month}.csv\"")
    );
    assert_eq!(answer.headers()["cache-control"], "no-store");
    let last_csv = answer.text().await.unwrap();
    let last = Statement::parse(&last_csv);
    assert_eq!((last.opening, last.rows.len()), (5_000_000_000, 8 + BULK as usize));
    assert_eq!(last.sum(), last.closing - last.opening, "the rows add up exactly");
    assert_eq!(last.closing, 5_000_000_000 + 123_456_789 - 7_000_000 - BULK);
    let bulk: HashSet<&str> = last.rows.iter().filter_map(|r| r[6].strip_prefix("bulk-")).collect();
    assert_eq!(bulk.len(), BULK as usize, "every row once across chunks, ties included");
    assert!(last.rows.windows(2).all(|w| w[0][0] <= w[1][0]), "in time order");
    let settles: Vec<&Vec<String>> =
        last.rows.iter().filter(|r| r[1] == "settle" && !r[6].starts_with("bulk-")).collect();
    assert_eq!(settles.len(), 7);
    assert!(settles.iter().all(|r| r[2] == "-0.001" && r[5] == "flat" && !r[6].is_empty()), "{last_csv}");
    assert!(last.rows.iter().any(|r| r[1] == "adjustment" && r[2] == "0.123456789" && r[4] == "last month"));
    assert!(last.rows.iter().all(|r| r[0].starts_with(&last_month) && r[0].ends_with('Z')), "UTC times: {last_csv}");

    let now = Statement::parse(&api_statement(&app, &token, &this_month).await.text().await.unwrap());
    assert_eq!(now.opening, last.closing, "one month's closing is the next one's opening");
    assert_eq!(now.closing, balance, "this month closes at the balance");
    assert_eq!(now.sum(), now.closing - now.opening);
    assert_eq!(now.rows.len(), 5);
    let debit = now.rows.iter().find(|r| r[2] == "-0.50").unwrap();
    assert_eq!(debit[4], "'=HYPERLINK(\"http://evil.example\",\"click\")", "a formula is defused");
    let older = Statement::parse(&api_statement(&app, &token, &two_ago).await.text().await.unwrap());
    assert_eq!((older.opening, older.closing, older.rows.len()), (0, 5_000_000_000, 1));
    let empty = Statement::parse(&api_statement(&app, &token, "2001-01").await.text().await.unwrap());
    assert_eq!((empty.opening, empty.closing, empty.rows.len()), (0, 0, 0));

    // Only the user's own rows: the other user's note and amounts never appear.
    for csv in [&last_csv, &api_statement(&app, &token, &this_month).await.text().await.unwrap()] {
        assert!(!csv.contains("someone else"), "{csv}");
    }

    // The console's download is the same file (a past month does not change).
    let path = format!("/console/billing/statement.csv?month={last_month}");
    let response =
        browser.client.get(app.url(&path)).header(COOKIE, browser.cookie.clone().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()[CONTENT_TYPE], "text/csv; charset=utf-8");
    assert!(response.headers()[CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment;"));
    assert_eq!(response.text().await.unwrap(), last_csv);

    // The billing page offers it: a month picker on the current month, in English and Chinese.
    let (_, _, page) = browser.get("/console/billing").await;
    assert!(
        page.contains("action=\"/console/billing/statement.csv\"") && page.contains("Download statement"),
        "{page}"
    );
    assert!(page.contains(&format!("name=\"month\" value=\"{this_month}\"")), "{page}");

    // A bad month changes nothing and says why: JSON on the API, the page on the console.
    for bad in ["2026-13", "2026-1", "", "soon", "2026-11-01", "%3D1%2B1"] {
        let answer = api_statement(&app, &token, bad).await;
        assert_eq!(answer.status(), 400, "{bad}");
        let body: Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_request", "{bad}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("YYYY-MM"), "{body}");
        let (status, _, page) = browser.get(&format!("/console/billing/statement.csv?month={bad}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(page.contains("Choose a month as YYYY-MM") && page.contains("aria-invalid=\"true\""), "{bad}: {page}");
    }
    let (status, _, page) = browser.get("/console/billing/statement.csv?month=%3Cscript%3E").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("value=\"&#60;script&#62;\"") || page.contains("value=\"&lt;script&gt;\""), "{page}");
    let answer = app.client.get(app.url("/api/me/statement")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(answer.status(), 400, "the month is required");

    let csrf = browser.csrf("/console/billing").await;
    browser.post("/preferences", &[("lang", "zh"), ("next", "/console/billing"), ("csrf", &csrf)]).await;
    let (_, _, page) = browser.get("/console/billing").await;
    assert!(page.contains("月度对账单") && page.contains("下载对账单"), "{page}");
    let (status, _, page) = browser.get("/console/billing/statement.csv?month=x").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("请按 YYYY-MM 格式选择月份"), "{page}");

    // Strangers get nothing: no session is a login redirect, no token a 401.
    let (status, location, _) = Browser::new(&app).get(&path).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    let answer = app.client.get(app.url(&format!("/api/me/statement?month={last_month}"))).send().await.unwrap();
    assert_eq!(answer.status(), 401);
    app.assert_ledger_consistent().await;
}

/// Runs `burncloud audit` against `database_url`: (exit code, stdout, stderr).
async fn audit(database_url: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let env = BTreeMap::from([
        ("DATABASE_URL", database_url.to_string()),
        ("BURNCLOUD_DATA_DIR", dir.path().display().to_string()),
        ("BURNCLOUD_LOG_FORMAT", "json".to_string()),
    ]);
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_burncloud"))
        .arg("audit")
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output()).await.unwrap().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
}

async fn burncloud_audit_reports_corrupted_books(backend: Backend) {
    let mut database_url = String::new();
    let app = spawn_app_with(backend, |env| database_url = env["DATABASE_URL"].clone(), |router| router).await;
    let _fake = flat_priced(&app).await;
    let (alice, key) = app.user_with_key("2.00").await;
    let (bob, _) = app.user_with_key("1.00").await;
    // Live traffic: the running app holds a lease on alice's balance while the audit reads.
    requests(&app, &key, 3).await;
    let leased: i64 = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM balance_leases WHERE user_id = $1")
        .bind(alice)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(leased, 1, "a lease is held during the clean audit");
    app.assert_ledger_consistent().await;
    let users: i64 = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(app.db.pool()).await.unwrap();

    let (code, stdout, stderr) = audit(&database_url).await;
    assert_eq!(code, 0, "clean books: {stdout}{stderr}");
    assert_eq!(stdout, format!("audit: {users} users checked, 0 offenders\n"));

    // A balance changed behind the ledger's back, and a lease holding more than a balance.
    sqlx::query("UPDATE users SET balance = balance + 1 WHERE id = $1")
        .bind(alice)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, 'ghost', $2, $3)")
        .bind(bob)
        .bind(5_000_000_000_i64)
        .bind(now_ms() + 3_600_000)
        .execute(app.db.pool())
        .await
        .unwrap();
    let (code, stdout, stderr) = audit(&database_url).await;
    assert_eq!(code, 1, "offenders: {stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    let alice_balance = Money(app.balance(alice).await);
    assert!(lines[0].starts_with(&format!("user {alice} <")), "{stdout}");
    assert!(
        lines[0].ends_with(&format!(
            ">: balance {alice_balance}: ledger sum {} != balance (off by 0.000000001)",
            Money(alice_balance.nanos() - 1)
        )),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with(&format!("user {bob} <")) && lines[1].ends_with(": balance 1.00: leased 5.00 > balance")
    );
    assert_eq!(lines[2], format!("audit: {users} users checked, 2 offenders"));
    assert!(stderr.lines().all(|l| !l.contains("panicked")), "{stderr}");

    // It cannot check: exit 2 with one line saying why.
    let empty = tempfile::tempdir().unwrap();
    let unreachable = match backend {
        Backend::Postgres => "postgres://nobody@127.0.0.1:1/none".to_string(),
        // A database without the schema: nothing to read.
        Backend::Sqlite => format!("sqlite://{}/empty.db", empty.path().display()),
    };
    let (code, stdout, stderr) = audit(&unreachable).await;
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        stdout.is_empty() && stderr.trim_end().lines().last().unwrap().starts_with("burncloud: audit: "),
        "{stderr}"
    );
}
