//! Redemption codes and resellers: `/admin/codes`, `/console/reseller`, `/api/admin/codes` and
//! `/api/reseller/*` — what each role may reach, that a reseller's codes cost exactly their
//! value and can never overdraw them (even when generated concurrently), that a void refunds
//! once however it is raced, and that transfers move money whole or not at all.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    operators_generate_list_export_and_void_codes_through_the_api,
    operators_manage_codes_in_the_console,
    role_boundaries_hold_for_codes_and_the_reseller_section,
    reseller_codes_cost_exactly_their_value_and_voids_refund_once,
    concurrent_generation_cannot_overdraw_the_reseller,
    resellers_transfer_balance_atomically,
    resellers_work_in_their_console_section,
);

const NANOS: i64 = 1_000_000_000;

/// A logged-in user of `role` with `balance` and a personal access token: `(id, email, token,
/// browser)`.
pub async fn account<'a>(
    app: &'a TestApp,
    name: &str,
    role: &str,
    balance: &str,
) -> (i64, String, String, Browser<'a>) {
    let email = user_with_role(app, name, role).await;
    let id = user_id(app, &email).await;
    if balance != "0" {
        let (status, body) = app
            .admin("POST", &format!("/api/admin/users/{id}/credit"), Some(json!({ "amount": balance, "note": "test" })))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let mut browser = Browser::new(app);
    browser.log_in(&email, "a fine password").await;
    let token = access_token(&mut browser).await;
    (id, email, token, browser)
}

async fn user_id(app: &TestApp, email: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

/// A management API call with a personal access token: `(status, JSON or Null)`.
async fn call(app: &TestApp, token: &str, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = app.client.request(method, app.url(path)).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get_text(app: &TestApp, token: &str, path: &str) -> (u16, String, String) {
    let response = app.client.get(app.url(path)).bearer_auth(token).send().await.unwrap();
    let status = response.status().as_u16();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_string()).unwrap_or_default();
    (status, kind, response.text().await.unwrap())
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql).fetch_one(app.db.pool()).await.unwrap()
}

async fn audit_rows(app: &TestApp, action: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_log WHERE action = $1")
        .bind(action)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

async fn ledger_sum(app: &TestApp, user: i64) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
}

fn codes_of(body: &Value) -> Vec<String> {
    body["codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_string()).collect()
}

async fn operators_generate_list_export_and_void_codes_through_the_api(backend: Backend) {
    let app = spawn_app(backend).await;
    let batch = json!({ "name": "Launch", "amount": "5.00", "count": 3, "prefix": "VIP-", "expires": "2099-12-31" });
    let (status, body) = app.admin("POST", "/api/admin/codes", Some(batch)).await;
    assert_eq!(status, 201, "{body}");
    let codes = codes_of(&body);
    assert_eq!(codes.len(), 3);
    assert!(codes.iter().all(|c| c.starts_with("VIP-") && c.len() == 24), "{codes:?}");
    assert_eq!(codes.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "unique");
    assert_eq!((body["amount"].as_str(), body["paid"].as_str()), (Some("5.00"), Some("0.00")), "operators pay nothing");
    let (_, other) =
        app.admin("POST", "/api/admin/codes", Some(json!({ "name": "Other", "amount": "1", "count": 1 }))).await;
    let other_code = codes_of(&other).remove(0);

    // Bad input changes nothing.
    for bad in [
        json!({ "name": "", "amount": "5", "count": 1 }),
        json!({ "name": "x", "amount": "-5", "count": 1 }),
        json!({ "name": "x", "amount": "5", "count": 0 }),
        json!({ "name": "x", "amount": "5", "count": 501 }),
        json!({ "name": "x", "amount": "5", "count": 1, "prefix": "a b" }),
        json!({ "name": "x", "amount": "5", "count": 1, "expires": "2001-01-01" }),
    ] {
        let (status, body) = app.admin("POST", "/api/admin/codes", Some(bad.clone())).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_request")), "{bad} → {body}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes").await, 4);

    // A user redeems one; the operator sees who.
    let (buyer, _, _, _) = account(&app, "buyer", "user", "0").await;
    burncloud::billing::redeem(&app.db, buyer, &codes[0]).await.unwrap();
    let (_, list) = app.admin("GET", "/api/admin/codes?status=used", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list["data"][0]["redeemed_by_email"], "buyer@example.com");
    let (_, list) = app.admin("GET", "/api/admin/codes?status=unused&batch=Launch", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2, "{list}");
    let (status, _) = app.admin("GET", "/api/admin/codes?status=lost", None).await;
    assert_eq!(status, 400);

    // CSV: every code of the filter, with a header.
    let (status, kind, csv) =
        get_text(&app, crate::support::helpers::ADMIN_TOKEN, "/api/admin/codes/export?batch=Launch").await;
    assert_eq!(status, 200);
    assert!(kind.starts_with("text/csv"), "{kind}");
    assert!(csv.starts_with("id,code,batch,value,status"), "{csv}");
    assert!(codes.iter().all(|c| csv.contains(c.as_str())) && !csv.contains(&other_code), "{csv}");
    assert!(csv.contains("buyer@example.com"), "{csv}");

    // Void: one unused code, then not again; a used one never; an unknown one is 404.
    let unused_id = list["data"][0]["id"].as_i64().unwrap();
    let (status, body) = app.admin("POST", &format!("/api/admin/codes/{unused_id}/void"), None).await;
    assert_eq!((status, body["voided"].as_i64()), (200, Some(1)), "{body}");
    let (status, _) = app.admin("POST", &format!("/api/admin/codes/{unused_id}/void"), None).await;
    assert_eq!(status, 409, "voided once");
    let (_, used) = app.admin("GET", "/api/admin/codes?status=used", None).await;
    let (status, _) = app.admin("POST", &format!("/api/admin/codes/{}/void", used["data"][0]["id"]), None).await;
    assert_eq!(status, 409, "a used code stays used");
    let (status, _) = app.admin("POST", "/api/admin/codes/999999/void", None).await;
    assert_eq!(status, 404);
    let (status, body) = app.admin("POST", "/api/admin/codes/void", Some(json!({ "batch": "Launch" }))).await;
    assert_eq!((status, body["voided"].as_i64()), (200, Some(1)), "{body}");
    let (status, _) = app.admin("POST", "/api/admin/codes/void", Some(json!({ "batch": "" }))).await;
    assert_eq!(status, 400);
    let (_, voided) = app.admin("GET", "/api/admin/codes?status=disabled", None).await;
    assert_eq!(voided["data"].as_array().unwrap().len(), 2);
    assert!(burncloud::billing::redeem(&app.db, buyer, &codes[1]).await.is_err(), "a voided code cannot be redeemed");

    // Expired: an unused code past its expiry.
    sqlx::query("UPDATE redemption_codes SET expires_at = 1 WHERE code = $1")
        .bind(&other_code)
        .execute(app.db.pool())
        .await
        .unwrap();
    let (_, expired) = app.admin("GET", "/api/admin/codes?status=expired", None).await;
    assert_eq!(expired["data"][0]["code"], other_code.as_str(), "{expired}");

    assert_eq!(audit_rows(&app, "codes.generate").await, 2);
    assert_eq!(audit_rows(&app, "code.void").await, 1);
    assert_eq!(audit_rows(&app, "codes.void_batch").await, 1, "the refused blank batch is not an action");
    assert_eq!(audit_rows(&app, "codes.export").await, 1);
    let details: Vec<String> =
        sqlx::query_scalar("SELECT details FROM audit_log").fetch_all(app.db.pool()).await.unwrap();
    assert!(details.iter().all(|d| codes.iter().all(|c| !d.contains(c.as_str()))), "codes never reach the audit log");
    app.assert_ledger_consistent().await;
}

async fn operators_manage_codes_in_the_console(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (status, _, page) = root.get("/admin/codes").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("No codes match."), "an empty state");
    let csrf = root.csrf("/admin/codes").await;
    let form = [
        ("name", "Fair <b>"),
        ("amount", "2.50"),
        ("count", "2"),
        ("prefix", "FAIR-"),
        ("expires", ""),
        ("csrf", &csrf),
    ];
    let (status, _, page) = root.post("/admin/codes", &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("data-testid=\"generated-codes\""), "the new codes are shown");
    assert!(page.contains("Fair &lt;b&gt;") || page.contains("Fair &#60;b&#62;"), "escaped");
    assert!(!page.contains("Fair <b>"));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes WHERE code LIKE 'FAIR-%'").await, 2);

    let bad = [("name", "x"), ("amount", "2.50"), ("count", "lots"), ("csrf", &csrf)];
    let (status, _, page) = root.post("/admin/codes", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Count: from 1 to 500."), "{page}");
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes").await, 2);

    let (status, _, page) = root.get("/admin/codes?status=unused&batch=Fair+%3Cb%3E").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"void-batch\""), "a batch filter offers voiding it");
    let (_, _, page) = root.get("/admin/codes?status=nonsense").await;
    assert!(page.contains("Status: unused, used, disabled or expired."), "{page}");

    let (status, _, csv) = root.get("/admin/codes/export?status=unused").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let id = count(&app, "SELECT MIN(id) FROM redemption_codes").await;
    let (status, location, _) = root.post(&format!("/admin/codes/{id}/void"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/codes?done=voided&n=1"));
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Voided 1 unused code(s)."), "{page}");
    let (status, _, page) = root.post(&format!("/admin/codes/{id}/void"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("not unused any more"), "{page}");
    let (status, _, _) = root.post("/admin/codes/99999/void", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, location, _) = root.post("/admin/codes/void", &[("batch", "Fair <b>"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/codes?done=voided&n=1"));
    let (status, _, page) = root.post("/admin/codes/void", &[("batch", ""), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Batch: choose the batch to void."));
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes WHERE status = 'disabled'").await, 2);
    assert_eq!(audit_rows(&app, "codes.generate").await, 1);

    // Chinese.
    root.others.insert("burncloud_lang".into(), "zh".into());
    let (_, _, page) = root.get("/admin/codes").await;
    assert!(page.contains("生成兑换码"), "translated");
}

async fn role_boundaries_hold_for_codes_and_the_reseller_section(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, user_token, mut user) = account(&app, "plain", "user", "10").await;
    let (_, _, reseller_token, mut reseller) = account(&app, "seller", "reseller", "10").await;
    let (_, _, admin_token, mut admin) = account(&app, "operator", "admin", "0").await;

    let admin_api = [
        ("POST", "/api/admin/codes"),
        ("GET", "/api/admin/codes"),
        ("GET", "/api/admin/codes/export"),
        ("POST", "/api/admin/codes/void"),
        ("POST", "/api/admin/codes/1/void"),
    ];
    let reseller_api = [
        ("POST", "/api/reseller/codes"),
        ("GET", "/api/reseller/codes"),
        ("GET", "/api/reseller/codes/export"),
        ("POST", "/api/reseller/codes/void"),
        ("POST", "/api/reseller/codes/1/void"),
        ("GET", "/api/reseller/invitees"),
        ("POST", "/api/reseller/transfer"),
    ];
    let body = json!({ "name": "x", "amount": "1", "count": 1, "batch": "x", "email": "plain@example.com" });
    for token in [&user_token, &reseller_token] {
        for (method, path) in admin_api {
            let (status, answer) = call(&app, token, method, path, Some(body.clone())).await;
            assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{method} {path}");
        }
    }
    for token in [&user_token, &admin_token, &crate::support::helpers::ADMIN_TOKEN.to_string()] {
        for (method, path) in reseller_api {
            let (status, answer) = call(&app, token, method, path, Some(body.clone())).await;
            assert_eq!((status, answer["error"]["code"].as_str()), (403, Some("forbidden")), "{method} {path}");
        }
    }
    for (method, path) in reseller_api {
        let (status, _) = call(&app, "bct_nonsense", method, path, None).await;
        assert_eq!(status, 401, "{method} {path}");
    }
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes").await, 0, "nothing was generated");
    assert_eq!(
        count(&app, "SELECT COUNT(*) FROM audit_log WHERE action LIKE 'code%' OR action = 'balance.transfer'").await,
        0
    );

    // Console: a reseller never reaches /admin/codes, a user (or admin) never the reseller section.
    let csrf = reseller.csrf("/console/profile").await;
    for (method, path) in [
        ("GET", "/admin/codes"),
        ("GET", "/admin/codes/export"),
        ("POST", "/admin/codes"),
        ("POST", "/admin/codes/void"),
        ("POST", "/admin/codes/1/void"),
    ] {
        let (status, _, _) =
            if method == "GET" { reseller.get(path).await } else { reseller.post(path, &[("csrf", &csrf)]).await };
        assert_eq!(status, StatusCode::FORBIDDEN, "reseller {method} {path}");
    }
    let reseller_pages = [
        ("GET", "/console/reseller"),
        ("GET", "/console/reseller/codes/export"),
        ("POST", "/console/reseller/codes"),
        ("POST", "/console/reseller/codes/void"),
        ("POST", "/console/reseller/codes/1/void"),
        ("POST", "/console/reseller/transfer"),
    ];
    for browser in [&mut user, &mut admin] {
        let csrf = browser.csrf("/console/profile").await;
        for (method, path) in reseller_pages {
            let (status, _, page) =
                if method == "GET" { browser.get(path).await } else { browser.post(path, &[("csrf", &csrf)]).await };
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}");
            if method == "GET" && path == "/console/reseller" {
                assert!(page.contains("Resellers only"), "{page}");
            }
        }
    }
    let (_, _, page) = user.get("/console").await;
    assert!(!page.contains("href=\"/console/reseller\""), "users get no reseller link");
    let (_, _, page) = reseller.get("/console").await;
    assert!(page.contains("href=\"/console/reseller\""), "resellers do");
    let (status, location, _) = Browser::new(&app).get("/console/reseller").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
}

async fn reseller_codes_cost_exactly_their_value_and_voids_refund_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (seller, _, token, _) = account(&app, "seller", "reseller", "100").await;
    let (rival, _, rival_token, _) = account(&app, "rival", "reseller", "100").await;

    let (status, body) =
        call(&app, &token, "POST", "/api/reseller/codes", Some(json!({ "name": "Nov", "amount": "7.50", "count": 4 })))
            .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["paid"].as_str(), Some("30.00"));
    assert_eq!(body["balance"].as_str(), Some("70.00"));
    let codes = codes_of(&body);
    assert_eq!(app.balance(seller).await, 70 * NANOS);
    assert_eq!(ledger_sum(&app, seller).await, 70 * NANOS);
    let rows: Vec<(String, i64)> = sqlx::query_as("SELECT kind, amount FROM ledger WHERE user_id = $1 ORDER BY id")
        .bind(seller)
        .fetch_all(app.db.pool())
        .await
        .unwrap();
    assert_eq!(rows.last().unwrap(), &("adjustment".to_string(), -30 * NANOS), "one ledger row for the batch");

    // Not covered: refused whole, nothing inserted, nothing charged.
    let (status, body) =
        call(&app, &token, "POST", "/api/reseller/codes", Some(json!({ "name": "Big", "amount": "71", "count": 1 })))
            .await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("conflict")), "{body}");
    let (status, _) =
        call(&app, &token, "POST", "/api/reseller/codes", Some(json!({ "name": "Many", "amount": "1", "count": 71 })))
            .await;
    assert_eq!(status, 409);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes").await, 4);
    assert_eq!(app.balance(seller).await, 70 * NANOS);

    // A customer redeems one: the reseller sees it, email masked. The rival sees none of them.
    let (buyer, _, _, _) = account(&app, "buyer", "user", "0").await;
    burncloud::billing::redeem(&app.db, buyer, &codes[0]).await.unwrap();
    assert_eq!(app.balance(buyer).await, 7 * NANOS + NANOS / 2, "the code is worth its value");
    let (_, list) = call(&app, &token, "GET", "/api/reseller/codes?status=used", None).await;
    assert_eq!(list["data"][0]["redeemed_by_email"], "b***@example.com", "{list}");
    let (_, list) = call(&app, &rival_token, "GET", "/api/reseller/codes", None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");
    let (_, _, csv) = get_text(&app, &rival_token, "/api/reseller/codes/export").await;
    assert_eq!(csv.lines().count(), 1, "the rival's export has only its header");
    let (_, _, csv) = get_text(&app, &token, "/api/reseller/codes/export").await;
    assert!(csv.contains("b***@example.com") && !csv.contains("buyer@example.com"), "{csv}");
    let id_of = |code: &str| {
        let code = code.to_string();
        let pool = app.db.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT id FROM redemption_codes WHERE code = $1")
                .bind(code)
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    let second = id_of(&codes[1]).await;
    let (status, _) = call(&app, &rival_token, "POST", &format!("/api/reseller/codes/{second}/void"), None).await;
    assert_eq!(status, 404, "another reseller's code is not found");
    let (status, body) =
        call(&app, &rival_token, "POST", "/api/reseller/codes/void", Some(json!({ "batch": "Nov" }))).await;
    assert_eq!((status, body["voided"].as_i64()), (200, Some(0)), "the rival's batch of that name is empty");
    let used = id_of(&codes[0]).await;
    let (status, _) = call(&app, &token, "POST", &format!("/api/reseller/codes/{used}/void"), None).await;
    assert_eq!(status, 409, "a used code is not refunded");

    // Eight concurrent voids of one code: one refund.
    let path = format!("/api/reseller/codes/{second}/void");
    let voids = (0..8).map(|_| call(&app, &token, "POST", &path, None));
    let results = futures_util::future::join_all(voids).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 1, "{results:?}");
    assert!(results.iter().all(|(s, _)| *s == 200 || *s == 409), "{results:?}");
    assert_eq!(app.balance(seller).await, 77 * NANOS + NANOS / 2);

    // The batch's last two unused codes, voided twice at once: refunded once.
    let batch = || call(&app, &token, "POST", "/api/reseller/codes/void", Some(json!({ "batch": "Nov" })));
    let (a, b) = tokio::join!(batch(), batch());
    assert_eq!(a.1["voided"].as_i64().unwrap() + b.1["voided"].as_i64().unwrap(), 2, "{a:?} {b:?}");
    assert_eq!(app.balance(seller).await, 92 * NANOS + NANOS / 2, "30 paid, 22.50 refunded");
    assert_eq!(app.balance(rival).await, 100 * NANOS);
    assert_eq!(audit_rows(&app, "code.void").await, 1);
    app.assert_ledger_consistent().await;
}

async fn concurrent_generation_cannot_overdraw_the_reseller(backend: Backend) {
    let app = spawn_app(backend).await;
    let (seller, _, token, _) = account(&app, "seller", "reseller", "100").await;
    let requests = (0..10).map(|i| {
        let body = json!({ "name": format!("Rush {i}"), "amount": "40", "count": 1 });
        call(&app, &token, "POST", "/api/reseller/codes", Some(body))
    });
    let results = futures_util::future::join_all(requests).await;
    let won = results.iter().filter(|(s, _)| *s == 201).count();
    assert!(results.iter().all(|(s, _)| *s == 201 || *s == 409), "{results:?}");
    assert_eq!(won, 2, "40 % of the balance each: two fit, {results:?}");
    assert_eq!(app.balance(seller).await, 20 * NANOS);
    assert_eq!(count(&app, "SELECT COUNT(*) FROM redemption_codes").await, 2);
    app.assert_ledger_consistent().await;
}

async fn resellers_transfer_balance_atomically(backend: Backend) {
    let app = spawn_app(backend).await;
    let (seller, seller_email, token, _) = account(&app, "seller", "reseller", "50").await;
    let (customer, _, _, _) = account(&app, "customer", "user", "0").await;
    let transfer = |email: &str, amount: &str| {
        call(&app, &token, "POST", "/api/reseller/transfer", Some(json!({ "email": email, "amount": amount })))
    };
    for (email, amount, status, why) in [
        ("nobody@example.com", "5", 400, "unknown email"),
        (seller_email.as_str(), "5", 400, "to self"),
        ("not an email", "5", 400, "bad email"),
        ("customer@example.com", "0", 400, "zero"),
        ("customer@example.com", "-3", 400, "negative"),
        ("customer@example.com", "50.01", 409, "more than the balance"),
    ] {
        let (got, body) = transfer(email, amount).await;
        assert_eq!(got, status, "{why}: {body}");
    }
    let (_, body) = transfer("nobody@example.com", "5").await;
    assert_eq!(body["error"]["message"], "There is no account with that email.");
    assert_eq!((app.balance(seller).await, app.balance(customer).await), (50 * NANOS, 0), "nothing moved");

    let (status, body) = transfer("Customer@Example.com", "12.25").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"].as_str(), Some("37.75"));
    assert_eq!(app.balance(customer).await, 12 * NANOS + NANOS / 4);
    let notes: Vec<String> =
        sqlx::query_scalar("SELECT note FROM ledger WHERE reference LIKE 'transfer:%' ORDER BY id")
            .fetch_all(app.db.pool())
            .await
            .unwrap();
    assert_eq!(notes, ["Transfer to c***@example.com", "Transfer from s***@example.com"]);

    // Concurrent transfers of 10 from 37.75: three fit.
    let results = futures_util::future::join_all((0..6).map(|_| transfer("customer@example.com", "10"))).await;
    assert_eq!(results.iter().filter(|(s, _)| *s == 200).count(), 3, "{results:?}");
    assert_eq!(app.balance(seller).await, 7 * NANOS + 3 * NANOS / 4);
    assert_eq!(app.balance(customer).await, 42 * NANOS + NANOS / 4);
    assert_eq!(audit_rows(&app, "balance.transfer").await, 4);
    app.assert_ledger_consistent().await;
}

async fn resellers_work_in_their_console_section(backend: Backend) {
    let app = spawn_app(backend).await;
    let (seller, _, token, mut browser) = account(&app, "seller", "reseller", "100").await;
    let (invitee, _, _, _) = account(&app, "friend", "user", "0").await;
    account(&app, "customer", "user", "0").await;
    sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2")
        .bind(seller)
        .bind(invitee)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO invitations (inviter_id, invitee_id, code, inviter_reward, invitee_reward, rewarded_at, created_at) \
         VALUES ($1, $2, 'c', 3000000000, 0, 1, 1)",
    )
    .bind(seller)
    .bind(invitee)
    .execute(app.db.pool())
    .await
    .unwrap();
    let (status, body) = call(&app, &token, "GET", "/api/reseller/invitees", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"][0]["email"], "f***@example.com", "{body}");
    assert_eq!((body["data"][0]["reward"].as_str(), body["earned"].as_str()), (Some("3.00"), Some("3.00")));

    let (status, _, page) = browser.get("/console/reseller").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("f***@example.com") && !page.contains("friend@example.com"), "invitees masked");
    assert!(page.contains("data-testid=\"reseller-balance\">100.00<"), "{page}");
    assert!(page.contains("No codes match."));
    let csrf = browser.csrf("/console/reseller").await;

    let form = [("name", "Shop"), ("amount", "10"), ("count", "3"), ("prefix", ""), ("expires", ""), ("csrf", &csrf)];
    let (status, _, page) = browser.post("/console/reseller/codes", &form).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Paid from your balance: 30.00."), "{page}");
    assert!(page.contains("data-testid=\"reseller-balance\">70.00<"), "the balance after paying");
    let form = [("name", "Shop"), ("amount", "80"), ("count", "1"), ("csrf", &csrf)];
    let (status, _, page) = browser.post("/console/reseller/codes", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Your balance does not cover this."), "{page}");
    assert!(page.contains("value=\"80\""), "the form is kept");

    let (status, _, csv) = browser.get("/console/reseller/codes/export?batch=Shop").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let (_, _, page) = browser.get("/console/reseller?batch=Shop&status=unused").await;
    assert!(page.contains("data-testid=\"void-batch\""));

    let id = count(&app, "SELECT MIN(id) FROM redemption_codes").await;
    let (status, location, _) = browser.post(&format!("/console/reseller/codes/{id}/void"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/reseller?done=voided&n=1"));
    assert_eq!(app.balance(seller).await, 80 * NANOS, "refunded");
    let (status, _, _) = browser.post(&format!("/console/reseller/codes/{id}/void"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, location, _) =
        browser.post("/console/reseller/codes/void", &[("batch", "Shop"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/reseller?done=voided&n=2"));
    assert_eq!(app.balance(seller).await, 100 * NANOS);

    // Another reseller's code: 404 in the console too.
    let (_, _, rival_token, _) = account(&app, "rival", "reseller", "5").await;
    call(&app, &rival_token, "POST", "/api/reseller/codes", Some(json!({ "name": "R", "amount": "1", "count": 1 })))
        .await;
    let rival_code = count(&app, "SELECT MAX(id) FROM redemption_codes").await;
    let (status, _, _) = browser.post(&format!("/console/reseller/codes/{rival_code}/void"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, page) = browser.get("/console/reseller").await;
    assert!(!page.contains(&format!("data-code-id=\"{rival_code}\"")), "never listed");

    // Transfer: refused with a message and nothing moved, then done.
    let (status, _, page) = browser
        .post("/console/reseller/transfer", &[("email", "ghost@example.com"), ("amount", "5"), ("csrf", &csrf)])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("There is no account with that email."), "{page}");
    let (status, location, _) = browser
        .post("/console/reseller/transfer", &[("email", "customer@example.com"), ("amount", "25"), ("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/reseller?done=transferred&n=25.00"));
    let (_, _, page) = browser.get(&location).await;
    assert!(page.contains("Sent 25.00."), "{page}");
    assert_eq!(app.balance(seller).await, 75 * NANOS);
    assert!(count(&app, "SELECT COUNT(*) FROM audit_log WHERE actor_kind = 'user' AND (action LIKE 'code%' OR action = 'balance.transfer')").await >= 5);
    app.assert_ledger_consistent().await;
}
