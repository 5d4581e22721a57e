//! `/admin/payments` and `/api/admin/payments*`: every user's payments listed, searched by email
//! and filtered by status; marking a pending payment failed (once, audited); the account flag on
//! `/admin/users` and its clearing; the settings page's top-up section; role boundaries.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_console::{access_token, user_with_role};
use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app};
use burncloud::db::payments;

db_tests!(
    payments_are_listed_searched_and_filtered,
    a_pending_payment_is_marked_failed_once,
    users_and_resellers_cannot_see_or_fail_payments,
    the_account_flag_shows_and_clears,
    the_topup_settings_section_saves_or_refuses_the_whole_form
);

/// Creates an account through the API; its id.
async fn account(app: &TestApp, email: &str, role: &str) -> i64 {
    let body = json!({ "email": email, "password": "a fine password", "role": role });
    let (status, user) = app.admin("POST", "/api/admin/users", Some(body)).await;
    assert_eq!(status, 201, "{user}");
    user["id"].as_i64().unwrap()
}

/// A pending payment of `charge` cents with its Checkout Session; its id.
async fn pending(app: &TestApp, user_id: i64, charge: i64, session: &str) -> i64 {
    let id = payments::insert_pending(app.db.writer(), user_id, charge * 10_000_000, charge, "usd").await.unwrap();
    payments::set_session(app.db.writer(), id, session, "https://checkout.example/pay").await.unwrap();
    id
}

/// What the webhook would have done, by SQL (the webhook has its own tests).
async fn mark_paid(app: &TestApp, id: i64) {
    sqlx::query("UPDATE payments SET status = 'paid', paid_at = created_at, checkout_url = NULL WHERE id = $1")
        .bind(id)
        .execute(app.db.writer())
        .await
        .unwrap();
}

async fn status_of(app: &TestApp, id: i64) -> String {
    payments::get(app.db.pool(), id).await.unwrap().unwrap().status
}

/// The ids of the payment rows a page shows, in order.
fn row_ids(page: &str) -> Vec<i64> {
    page.split("data-payment=\"").skip(1).map(|s| s[..s.find('"').unwrap()].parse().unwrap()).collect()
}

/// Alice's pending and paid payments and Bob's pending one: `(alice, bob, [ids])`.
async fn seed(app: &TestApp) -> (i64, i64, [i64; 3]) {
    let alice = account(app, "alice@example.com", "user").await;
    let bob = account(app, "bob@example.org", "user").await;
    let first = pending(app, alice, 1250, "cs_test_alice_one").await;
    let second = pending(app, alice, 2000, "cs_test_alice_two").await;
    mark_paid(app, second).await;
    let third = pending(app, bob, 500, "cs_test_bob").await;
    (alice, bob, [first, second, third])
}

async fn payments_are_listed_searched_and_filtered(backend: Backend) {
    let app = spawn_app(backend).await;
    let (alice, bob, [first, second, third]) = seed(&app).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;

    let (status, _, page) = root.get("/admin/payments").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(row_ids(&page), [third, second, first], "newest first");
    for text in ["alice@example.com", "bob@example.org", "12.50 USD", "20.00 USD", "5.00 USD", "cs_test_alice_one"] {
        assert!(page.contains(text), "{text} in {page}");
    }
    assert!(page.contains(&format!("href=\"/admin/users/{alice}\"")) && page.contains(&format!("/admin/users/{bob}")));
    assert!(page.contains("aria-current=\"page\"><span>Payments</span>"), "the nav marks the page");
    // Only the two pending payments offer "Mark failed".
    assert_eq!(page.matches("data-testid=\"mark-failed\"").count(), 2);
    assert!(page.contains(&format!("action=\"/admin/payments/{first}/fail\"")));
    assert!(!page.contains(&format!("action=\"/admin/payments/{second}/fail\"")));

    let (_, _, page) = root.get("/admin/payments?email=ALICE").await;
    assert_eq!(row_ids(&page), [second, first], "search by a part of the email, any case");
    let (_, _, page) = root.get("/admin/payments?status=paid").await;
    assert_eq!(row_ids(&page), [second]);
    assert!(page.contains("<option value=\"paid\" selected>"), "the filter keeps its choice");
    let (_, _, page) = root.get("/admin/payments?email=example.org&status=pending").await;
    assert_eq!(row_ids(&page), [third]);
    let (_, _, page) = root.get("/admin/payments?email=nobody").await;
    assert!(page.contains("No payments match."), "{page}");
    let (status, _, page) = root.get("/admin/payments?status=lost").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("role=\"alert\"") && page.contains("status: one of"), "{page}");

    let (_, _, zh) = {
        root.others.insert("burncloud_lang".into(), "zh".into());
        root.get("/admin/payments").await
    };
    assert!(zh.contains("标记为失败") && zh.contains("已支付") && zh.contains("待支付"), "{zh}");

    // 50 a page, then "Older →" with the filters kept.
    for n in 0..50 {
        pending(&app, bob, 100 + n, &format!("cs_test_many_{n}")).await;
    }
    let (_, _, page) = root.get("/admin/payments?email=bob").await;
    assert_eq!(row_ids(&page).len(), 50);
    let start = page.find("href=\"/admin/payments?email=bob").expect("an older link");
    let older = page[start + 6..start + 6 + page[start + 6..].find('"').unwrap()].replace("&#38;", "&");
    assert!(older.starts_with("/admin/payments?email=bob&status=&before="), "{older}");
    let (_, _, page) = root.get(&older).await;
    assert_eq!(row_ids(&page), [third], "{older}");
    assert!(
        page.contains("href=\"/admin/payments?email=bob&#38;status=\"") && !page.contains("before="),
        "a newest link, no older one: {page}"
    );
    sqlx::query("DELETE FROM payments WHERE provider_session_id LIKE 'cs_test_many_%'")
        .execute(app.db.writer())
        .await
        .unwrap();

    let (status, all) = app.admin("GET", "/api/admin/payments", None).await;
    assert_eq!(status, 200, "{all}");
    let ids: Vec<i64> = all["data"].as_array().unwrap().iter().map(|p| p["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [third, second, first]);
    assert_eq!(all["data"][1]["credit"], "20.00", "money is a decimal string: {all}");
    assert_eq!((all["data"][1]["charge"].as_i64(), all["data"][1]["currency"].as_str()), (Some(2000), Some("usd")));
    assert!(all["data"][1].get("checkout_url").is_none(), "the Checkout link is not listed");
    let (_, mine) = app.admin("GET", "/api/admin/payments?email=Alice&status=pending", None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1, "{mine}");
    assert_eq!(mine["data"][0]["email"], "alice@example.com");
    let (_, page) = app.admin("GET", "/api/admin/payments?limit=2", None).await;
    let next = page["next_before"].as_i64().expect("a full page names the next");
    let (_, rest) = app.admin("GET", &format!("/api/admin/payments?limit=2&before={next}"), None).await;
    assert_eq!(rest["data"][0]["id"], first, "{rest}");
    assert_eq!(rest["next_before"], Value::Null);
    assert_eq!(app.admin("GET", "/api/admin/payments?status=lost", None).await.0, 400);
    assert_eq!(app.admin("GET", "/api/admin/payments?limit=0", None).await.0, 400);
}

async fn a_pending_payment_is_marked_failed_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, [first, second, third]) = seed(&app).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf("/admin/payments").await;

    // A plain form: redirected back with a notice.
    let (status, location, _) = root.post(&format!("/admin/payments/{first}/fail"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/payments?done=failed"));
    let failed = payments::get(app.db.pool(), first).await.unwrap().unwrap();
    assert_eq!(failed.status, "failed");
    assert_eq!(failed.failure_reason.as_deref(), Some("marked failed by an operator"));
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Payment marked failed.") && page.contains("marked failed by an operator"), "{page}");
    // Twice: refused with a reason, nothing changes.
    let (status, location, _) = root.post(&format!("/admin/payments/{first}/fail"), &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/payments?error=not-pending"));
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Only a pending payment can be marked failed"), "{page}");
    let (status, _, _) = root.post(&format!("/admin/payments/{second}/fail"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(status_of(&app, second).await, "paid", "a paid payment stays paid");
    let (status, _, page) = root.post("/admin/payments/999999/fail", &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("No such payment"), "{page}");
    assert_eq!(root.post("/admin/payments/abc/fail", &[("csrf", &csrf)]).await.0, StatusCode::NOT_FOUND);

    // htmx: the row comes back, failed and without its button; refused, with the reason.
    let hx = |browser: &Browser<'_>, id: i64| {
        browser
            .client
            .post(app.url(&format!("/admin/payments/{id}/fail")))
            .header("HX-Request", "true")
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}"))
    };
    let request = hx(&root, third);
    let (status, _, row) = root.send(request).await;
    assert_eq!(status, StatusCode::OK, "{row}");
    assert!(row.trim_start().starts_with("<tr") && row.contains("data-status=\"failed\""), "{row}");
    assert!(!row.contains("mark-failed") && !row.contains("<html"), "{row}");
    let request = hx(&root, third);
    let (status, _, row) = root.send(request).await;
    assert_eq!(status, StatusCode::OK, "htmx swaps only a 2xx answer");
    assert!(row.contains("role=\"alert\"") && row.contains("data-status=\"failed\""), "{row}");

    // Exactly one audit row per payment moved, with the status before and after.
    let (_, audit) = app.admin("GET", "/api/admin/audit?action=payment.fail", None).await;
    let rows = audit["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{audit}");
    assert_eq!(rows[0]["target_id"], third.to_string());
    assert_eq!(rows[1]["target_type"], "payment");
    assert_eq!(rows[1]["details"]["before"]["status"], "pending");
    assert_eq!(rows[1]["details"]["after"]["status"], "failed");
    assert_eq!(rows[1]["actor"], crate::support::helpers::ADMIN_EMAIL);

    // The API: the same rule.
    let fourth = pending(&app, failed.user_id, 700, "cs_test_api").await;
    let (status, answer) = app.admin("POST", &format!("/api/admin/payments/{fourth}/fail"), None).await;
    assert_eq!((status, answer["status"].as_str()), (200, Some("failed")), "{answer}");
    let (status, answer) = app.admin("POST", &format!("/api/admin/payments/{fourth}/fail"), None).await;
    assert_eq!((status, answer["error"]["code"].as_str()), (409, Some("conflict")), "{answer}");
    assert_eq!(app.admin("POST", &format!("/api/admin/payments/{second}/fail"), None).await.0, 409);
    assert_eq!(status_of(&app, second).await, "paid");
    assert_eq!(app.admin("POST", "/api/admin/payments/999999/fail", None).await.0, 404);
    let (_, audit) = app.admin("GET", "/api/admin/audit?action=payment.fail", None).await;
    assert_eq!(audit["data"].as_array().unwrap().len(), 3, "{audit}");
    assert_eq!(audit["data"][0]["actor"], "root token");
}

async fn users_and_resellers_cannot_see_or_fail_payments(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, _, [first, ..]) = seed(&app).await;
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, role, role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let token = access_token(&mut browser).await;
        assert_eq!(browser.get("/admin/payments").await.0, StatusCode::FORBIDDEN, "{role}");
        let csrf = browser.csrf("/console/profile").await;
        let fail = format!("/admin/payments/{first}/fail");
        assert_eq!(browser.post(&fail, &[("csrf", &csrf)]).await.0, StatusCode::FORBIDDEN, "{role}");
        let response = app.client.get(app.url("/api/admin/payments")).bearer_auth(&token).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{role}");
        let response = app.client.post(app.url(&format!("/api/{}", &fail[1..]))).bearer_auth(&token).send().await;
        assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "{role}");
    }
    assert_eq!(status_of(&app, first).await, "pending", "nothing changed");
}

async fn set_flag(app: &TestApp, id: i64, flag: &str) {
    sqlx::query("UPDATE users SET flag = $2 WHERE id = $1").bind(id).bind(flag).execute(app.db.writer()).await.unwrap();
}

async fn the_account_flag_shows_and_clears(backend: Backend) {
    let app = spawn_app(backend).await;
    let carol = account(&app, "carol@example.com", "user").await;
    let dave = account(&app, "dave@example.com", "user").await;
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{carol}"), None).await;
    assert_eq!(user["flag"], Value::Null, "{user}");
    let flag = "A Stripe refund of payment #7 took back 3 of 10: 7 was already spent.";
    set_flag(&app, carol, flag).await;
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{carol}"), None).await;
    assert_eq!(user["flag"], flag, "{user}");
    let (_, list) = app.admin("GET", "/api/admin/users?q=example.com", None).await;
    let flags: Vec<&Value> = list["data"].as_array().unwrap().iter().map(|u| &u["flag"]).collect();
    assert!(flags.contains(&&json!(flag)) && flags.contains(&&Value::Null), "{list}");
    // The user's own view never carries the operator's note.
    let mut own = Browser::new(&app);
    own.log_in("carol@example.com", "a fine password").await;
    let token = access_token(&mut own).await;
    let me: Value = app.client.get(app.url("/api/me")).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
    assert!(me.get("flag").is_none(), "{me}");

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (_, _, page) = root.get("/admin/users").await;
    assert_eq!(page.matches("data-testid=\"user-flag-badge\"").count(), 1, "only Carol is flagged: {page}");
    let (_, _, page) = root.get(&format!("/admin/users/{dave}")).await;
    assert!(!page.contains("data-testid=\"user-flag\""));
    let (_, _, page) = root.get(&format!("/admin/users/{carol}")).await;
    assert!(page.contains("data-testid=\"user-flag\"") && page.contains("was already spent."), "{page}");
    assert!(page.contains(&format!("action=\"/admin/users/{carol}/clear-flag\"")), "{page}");
    let csrf = root.csrf(&format!("/admin/users/{carol}")).await;
    let clear = format!("/admin/users/{carol}/clear-flag");
    let (status, location, _) = root.post(&clear, &[("csrf", &csrf)]).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, format!("/admin/users/{carol}?done=flag-cleared").as_str())
    );
    let (_, _, page) = root.get(&location).await;
    assert!(page.contains("Flag cleared.") && !page.contains("data-testid=\"user-flag\""), "{page}");
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{carol}"), None).await;
    assert_eq!(user["flag"], Value::Null);
    // Again: nothing to clear, nothing recorded.
    let (status, _, page) = root.post(&clear, &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(page.contains("the account has no flag"), "{page}");
    let (_, audit) = app.admin("GET", "/api/admin/audit?action=user.clear_flag", None).await;
    let rows = audit["data"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{audit}");
    assert_eq!(
        (rows[0]["target_id"].as_str(), &rows[0]["details"]["before"]["flag"]),
        (Some(carol.to_string().as_str()), &json!(flag))
    );

    // The API does the same, under the same role rules.
    set_flag(&app, dave, "look").await;
    let (status, user) = app.admin("POST", &format!("/api/admin/users/{dave}/clear-flag"), None).await;
    assert_eq!((status, &user["flag"]), (200, &Value::Null), "{user}");
    assert_eq!(app.admin("POST", &format!("/api/admin/users/{dave}/clear-flag"), None).await.0, 409);
    assert_eq!(app.admin("POST", "/api/admin/users/999999/clear-flag", None).await.0, 404);
    let other_admin = account(&app, "erin@example.com", "admin").await;
    set_flag(&app, other_admin, "look").await;
    let frank = user_with_role(&app, "frank", "admin").await;
    let mut admin = Browser::new(&app);
    admin.log_in(&frank, "a fine password").await;
    let csrf = admin.csrf("/admin/users").await;
    let (status, _, _) = admin.post(&format!("/admin/users/{other_admin}/clear-flag"), &[("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an admin does not act on another admin");
    let token = access_token(&mut admin).await;
    let response = app
        .client
        .post(app.url(&format!("/api/admin/users/{other_admin}/clear-flag")))
        .bearer_auth(&token)
        .send()
        .await;
    assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN);
    let (_, user) = app.admin("GET", &format!("/api/admin/users/{other_admin}"), None).await;
    assert_eq!(user["flag"], "look", "nothing changed");
    for role in ["user", "reseller"] {
        let email = user_with_role(&app, &format!("{role}-x"), role).await;
        let mut browser = Browser::new(&app);
        browser.log_in(&email, "a fine password").await;
        let csrf = browser.csrf("/console/profile").await;
        let (status, _, _) = browser.post(&format!("/admin/users/{other_admin}/clear-flag"), &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
}

async fn the_topup_settings_section_saves_or_refuses_the_whole_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (_, _, page) = root.get("/admin/settings").await;
    for key in [
        "topup.currency",
        "topup.amounts",
        "topup.min_amount",
        "topup.max_amount",
        "topup.credit_per_unit",
        "topup.group_bonus",
    ] {
        assert!(page.contains(&format!("name=\"{key}\"")), "{key} on the page");
    }
    assert!(page.contains("Top-ups") && page.contains("like vip=10, trial=-5"), "{page}");
    let csrf = root.csrf("/admin/settings").await;
    let form = |min: &'static str| {
        vec![
            ("section", "topup"),
            ("topup.currency", "eur"),
            ("topup.amounts", "5, 10, 25"),
            ("topup.min_amount", min),
            ("topup.max_amount", "500.00"),
            ("topup.credit_per_unit", "1.10"),
            ("topup.group_bonus", "vip=10, trial=-5"),
        ]
    };
    // A bad value: refused, and nothing of the form is saved.
    let before = app.state.site().value_of("topup.currency");
    let mut bad = form("lots");
    bad.push(("csrf", &csrf));
    let (status, _, page) = root.post("/admin/settings", &bad).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Smallest custom amount:"), "the error names the field: {page}");
    assert_eq!(app.state.site().value_of("topup.currency"), before);
    assert_ne!(app.state.site().value_of("topup.group_bonus").as_deref(), Some("vip=10, trial=-5"));

    let mut good = form("2.50");
    good.push(("csrf", &csrf));
    let (status, _, page) = root.post("/admin/settings", &good).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Saved."), "{page}");
    let site = app.state.site();
    assert_eq!(site.value_of("topup.currency").as_deref(), Some("eur"));
    assert_eq!(site.value_of("topup.min_amount").as_deref(), Some("2.50"));
    assert_eq!(site.value_of("topup.max_amount").as_deref(), Some("500.00"));
    assert_eq!(site.topup.presets, [500, 1000, 2500]);
    assert_eq!(site.topup.bonus_for("vip"), 10);
    assert_eq!(site.topup.bonus_for("trial"), -5);
    let (_, audit) = app.admin("GET", "/api/admin/audit?action=setting.", None).await;
    let audited = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["target_id"].as_str().is_some_and(|t| t.starts_with("topup.")))
        .count();
    assert_eq!(audited, 6, "every changed key is audited: {audit}");
}
