//! Holds cover the worst case (issue 13, item 3): a cost beyond the hold and the whole balance
//! becomes **debt** (a ledger row, the account flagged, requests refused until a credit pays it),
//! and a group's `billing.cap_output_by_balance` gives a request without an output cap the
//! largest one the balance can pay for. The books are checked after every step.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::console_auth::Browser;
use crate::gateway::{chat, setup};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    debt_is_recorded_refuses_requests_and_is_paid_first_by_the_next_credit,
    debt_is_paid_by_a_redeemed_code_and_shown_in_the_consoles,
    debt_from_concurrent_requests_is_all_recorded,
    cap_output_by_balance_sets_the_cap_the_balance_pays_for,
    cap_output_by_balance_reaches_converted_protocols,
    cap_output_by_balance_is_set_in_the_admin_api_and_the_group_form,
);

/// Prices of `gpt-test` (`gateway::priced_channel`): $2.50 and $10.00 per 1M tokens, in
/// nano-units per token.
const INPUT_NANO: i64 = 2_500;
const OUTPUT_NANO: i64 = 10_000;
const DOLLAR: i64 = 1_000_000_000;

async fn ledger_rows(app: &TestApp, user: i64) -> Vec<(String, i64, Option<String>)> {
    sqlx::query("SELECT kind, amount, reference FROM ledger WHERE user_id = $1 ORDER BY id")
        .bind(user)
        .fetch_all(app.db.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

async fn user_json(app: &TestApp, user: i64) -> Value {
    let (status, body) = app.admin("GET", &format!("/api/admin/users/{user}"), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// `burncloud audit`'s check: every balance equals its ledger, none negative, no lease above it.
async fn assert_audit_clean(app: &TestApp) {
    app.settled().await;
    let (offenders, _) = burncloud::db::ledger::audit(app.db.pool()).await.unwrap();
    assert!(offenders.is_empty(), "{offenders:?}");
}

async fn credit(app: &TestApp, user: i64, amount: &str) -> Value {
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": amount, "note": "top-up" })))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A $1 user whose request the upstream bills $10 (1,000,000 output tokens for `max_tokens: 10`):
/// `(app, fake, user, key)` after that request, which leaves $9 of debt.
async fn in_debt(backend: Backend) -> (TestApp, FakeOpenAi, i64, String) {
    let (app, fake) = setup(backend, Behavior::Ok { prompt_tokens: 0, completion_tokens: 1_000_000 }).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["max_tokens"] = json!(10);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &request).await.status(), 200);
    app.settled().await;
    (app, fake, user, key)
}

async fn debt_is_recorded_refuses_requests_and_is_paid_first_by_the_next_credit(backend: Backend) {
    let (app, fake, user, key) = in_debt(backend).await;

    // The balance pays what it holds; the rest is owed, recorded, and the account flagged.
    assert_eq!(app.balance(user).await, 0);
    let cost: i64 = sqlx::query("SELECT cost FROM request_logs").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(cost, DOLLAR, "the log records what was charged");
    let shown = user_json(&app, user).await;
    assert_eq!(shown["debt"], "9.00", "{shown}");
    assert_eq!(shown["balance"], "0.00");
    assert!(shown["flag"].as_str().is_some_and(|f| f.contains("debt")), "{shown}");
    let rows = ledger_rows(&app, user).await;
    let debts: Vec<_> = rows.iter().filter(|(kind, ..)| kind == "debt").collect();
    assert_eq!(debts.len(), 1, "{rows:?}");
    assert_eq!(debts[0].1, 0, "a debt row moves no money: the ledger still sums to the balance");
    assert!(debts[0].2.is_some(), "it names the request");
    let note: String =
        sqlx::query("SELECT note FROM ledger WHERE kind = 'debt'").fetch_one(app.db.pool()).await.unwrap().get(0);
    assert!(note.contains("9.00"), "{note}");
    // Settlement keys stay unique per row: the debt row has its own (`<key>:debt`).
    let key_of_debt: String = sqlx::query("SELECT idempotency_key FROM ledger WHERE kind = 'debt'")
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!(key_of_debt.starts_with("settle:") && key_of_debt.ends_with(":debt"), "{key_of_debt}");
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;

    // While it is owed, requests are refused before any upstream call.
    fake.set(Behavior::default());
    let calls = fake.received().len();
    let refused = app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_quota", "{body}");
    assert_eq!(body["error"]["type"], "insufficient_quota", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("unpaid balance"), "{body}");
    assert_eq!(fake.received().len(), calls, "no upstream call");

    // A credit smaller than the debt pays part of it; still refused.
    let answer = credit(&app, user, "4.00").await;
    assert_eq!(answer["balance"], "0.00", "{answer}");
    assert_eq!(user_json(&app, user).await["debt"], "5.00");
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 429);
    app.assert_ledger_consistent().await;

    // The next credit pays the rest first; the debt flag goes with the debt.
    let answer = credit(&app, user, "20.00").await;
    assert_eq!(answer["balance"], "15.00", "balance = credit − debt: {answer}");
    let shown = user_json(&app, user).await;
    assert_eq!((shown["debt"].as_str(), shown["flag"].as_str()), (Some("0.00"), None), "{shown}");
    let paid: Vec<i64> =
        ledger_rows(&app, user).await.into_iter().filter(|(k, ..)| k == "debt_paid").map(|(_, a, _)| a).collect();
    assert_eq!(paid, vec![-4 * DOLLAR, -5 * DOLLAR]);
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;

    let before = app.balance(user).await;
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("gpt-test")).await.status(), 200, "requests work again");
    assert_eq!(fake.received().len(), calls + 1);
    assert_eq!(app.balance(user).await, before - crate::gateway::COST_12_5);
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;

    // The operator's ledger page of the user still adds up to the balance.
    let (_, page) = app.admin("GET", &format!("/api/admin/users/{user}/ledger"), None).await;
    let kinds: Vec<&str> = page["data"].as_array().unwrap().iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"debt") && kinds.contains(&"debt_paid"), "{kinds:?}");
}

async fn debt_is_paid_by_a_redeemed_code_and_shown_in_the_consoles(backend: Backend) {
    let (app, _fake) = setup(backend, Behavior::Ok { prompt_tokens: 0, completion_tokens: 1_000_000 }).await;
    let email = "debtor@example.com";
    let (status, created) =
        app.admin("POST", "/api/admin/users", Some(json!({ "email": email, "password": "a fine password" }))).await;
    assert_eq!(status, 201, "{created}");
    let user = created["id"].as_i64().unwrap();
    assert_eq!(created["debt"], "0.00", "{created}");
    credit(&app, user, "1.00").await;
    let (_, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    let key = key["key"].as_str().unwrap().to_string();
    let mut request = chat("gpt-test");
    request["max_tokens"] = json!(10);
    assert_eq!(app.v1(&key, "/v1/chat/completions", &request).await.status(), 200);
    app.settled().await;

    // The user sees what is owed on the billing page; the operator on the user's page.
    let mut browser = Browser::new(&app);
    browser.log_in(email, "a fine password").await;
    let (status, _, page) = browser.get("/console/billing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"debt\"") && page.contains("9.00"), "{page}");
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let (_, _, page) = root.get(&format!("/admin/users/{user}")).await;
    assert!(page.contains("data-testid=\"user-debt-amount\">9.00<"), "{page}");
    // The user's own API shows it too.
    let (_, me) = app.admin("GET", &format!("/api/admin/users/{user}"), None).await;
    assert_eq!(me["debt"], "9.00");

    // A redeemed code is a credit like any other: it pays the debt first.
    let (status, codes) =
        app.admin("POST", "/api/admin/codes", Some(json!({ "name": "pay", "amount": "10.00", "count": 1 }))).await;
    assert_eq!(status, 201, "{codes}");
    let code = codes["codes"][0].as_str().unwrap().to_string();
    let csrf = browser.csrf("/console/billing").await;
    let (_, _, page) = browser.post("/console/billing/redeem", &[("code", &code), ("csrf", &csrf)]).await;
    assert!(!page.contains("data-testid=\"debt\""), "the debt is paid: {page}");
    assert_eq!(app.balance(user).await, DOLLAR);
    let shown = user_json(&app, user).await;
    assert_eq!((shown["debt"].as_str(), shown["flag"].as_str()), (Some("0.00"), None), "{shown}");
    let (_, _, page) = root.get(&format!("/admin/users/{user}")).await;
    assert!(!page.contains("user-debt-amount"));
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;
}

async fn debt_from_concurrent_requests_is_all_recorded(backend: Backend) {
    // A $1 tenant with a script: ten requests at once, each billed $10 by the upstream.
    let (app, fake) = setup(backend, Behavior::Ok { prompt_tokens: 0, completion_tokens: 1_000_000 }).await;
    let (user, key) = app.user_with_key("1.00").await;
    let mut request = chat("gpt-test");
    request["max_tokens"] = json!(10);
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let (client, url, key, request) =
                (app.client.clone(), app.url("/v1/chat/completions"), key.clone(), request.clone());
            tokio::spawn(async move { client.post(url).bearer_auth(key).json(&request).send().await.unwrap().status() })
        })
        .collect();
    let mut served = 0i64;
    for r in requests {
        let status = r.await.unwrap();
        assert!(status == 200 || status == 429, "{status}");
        served += i64::from(status == 200);
    }
    assert!(served >= 1);
    assert_eq!(i64::try_from(fake.received().len()).unwrap(), served);
    app.settled().await;

    // Whatever was admitted, every dollar billed is either charged or owed, never lost.
    assert_eq!(app.balance(user).await, 0);
    let charged: i64 = sqlx::query("SELECT CAST(SUM(cost) AS BIGINT) FROM request_logs WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert_eq!(charged, DOLLAR);
    let owed: i64 =
        sqlx::query("SELECT debt FROM users WHERE id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(owed, served * 10 * DOLLAR - DOLLAR, "{served} served");
    let debt_rows: i64 = sqlx::query("SELECT COUNT(*) FROM ledger WHERE user_id = $1 AND kind = 'debt'")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    assert!((1..=served).contains(&debt_rows), "{debt_rows}");
    let leased: i64 =
        sqlx::query("SELECT leased FROM users WHERE id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap().get(0);
    assert_eq!(leased, 0, "no lease survives a debt");
    assert_eq!(app.v1(&key, "/v1/chat/completions", &request).await.status(), 429);
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;
}

/// A channel for `gpt-test` (and `o3-test`) serving the groups `capped` and `default`.
async fn capped_setup(backend: Backend, behavior: Behavior) -> (TestApp, FakeOpenAi) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(behavior).await;
    let (status, group) = app
        .admin(
            "PUT",
            "/api/admin/groups/capped",
            Some(json!({ "multiplier": "1", "billing": { "cap_output_by_balance": true } })),
        )
        .await;
    assert_eq!(status, 200, "{group}");
    assert_eq!(group["billing"]["cap_output_by_balance"], true, "{group}");
    app.add_channel(json!({
        "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
        "models": ["gpt-test", "o3-test"], "groups": ["capped", "default"]
    }))
    .await;
    for model in ["gpt-test", "o3-test"] {
        app.set_price(model, json!({ "input": "2.50", "output": "10.00" })).await;
    }
    (app, fake)
}

/// The prompt tokens the gateway holds for `body`: the text's count or a token per four bytes.
fn prompt_hold(model: &str, body: &str) -> i64 {
    let text = burncloud::domain::tokenizer::TokenRule::for_model(model)
        .apply(burncloud::providers::openai::text_tokens(body.as_bytes()))
        .max(1);
    text.max(i64::try_from(body.len().div_ceil(4)).unwrap())
}

async fn send_raw(app: &TestApp, key: &str, body: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn cap_output_by_balance_sets_the_cap_the_balance_pays_for(backend: Backend) {
    let body = r#"{"model":"gpt-test","messages":[{"role":"user","content":"Say hello"}]}"#;
    let balance = DOLLAR / 100; // $0.01
    let prompt = prompt_hold("gpt-test", body);
    let expected = (balance - prompt * INPUT_NANO) / OUTPUT_NANO;
    assert!(expected > 0 && expected < 4096, "below the default, above nothing: {expected}");
    // The upstream spends every token it is allowed.
    let (app, fake) = capped_setup(backend, Behavior::Ok { prompt_tokens: prompt, completion_tokens: expected }).await;
    let (user, key) = app.user_with_key_in("capped", "0.01", json!({})).await;

    let answer = send_raw(&app, &key, body).await;
    assert_eq!(answer.status(), 200);
    let sent = fake.received().last().unwrap().json();
    assert_eq!(sent["max_tokens"], expected, "{sent}");
    assert_eq!(sent["messages"][0]["content"], "Say hello", "the rest of the body is kept: {sent}");
    let left = app.balance(user).await;
    assert_eq!(left, balance - prompt * INPUT_NANO - expected * OUTPUT_NANO);
    assert!((0..OUTPUT_NANO).contains(&left), "not one more token was affordable: {left}");
    assert_eq!(user_json(&app, user).await["debt"], "0.00", "the charge stayed within the balance");
    app.assert_ledger_consistent().await;

    // A cap given as null is no cap: it is replaced, never written twice.
    let (_, key_null) = app.user_with_key_in("capped", "0.01", json!({})).await;
    let null_cap = r#"{"model":"gpt-test","max_tokens":null,"messages":[{"role":"user","content":"Say hello"}]}"#;
    assert_eq!(send_raw(&app, &key_null, null_cap).await.status(), 200);
    let received = fake.received().last().unwrap().body.clone();
    let prompt_null = prompt_hold("gpt-test", null_cap);
    assert_eq!(
        serde_json::from_slice::<Value>(&received).unwrap()["max_tokens"],
        (balance - prompt_null * INPUT_NANO) / OUTPUT_NANO
    );
    assert_eq!(String::from_utf8_lossy(&received).matches("max_tokens").count(), 1);

    // A reasoning model's chat upstream takes `max_completion_tokens` instead.
    let (_, key2) = app.user_with_key_in("capped", "0.01", json!({})).await;
    let reasoning = body.replace("gpt-test", "o3-test");
    assert_eq!(send_raw(&app, &key2, &reasoning).await.status(), 200);
    let sent = fake.received().last().unwrap().json();
    let prompt = prompt_hold("o3-test", &reasoning);
    assert_eq!(sent["max_completion_tokens"], (balance - prompt * INPUT_NANO) / OUTPUT_NANO, "{sent}");
    assert!(sent.get("max_tokens").is_none(), "{sent}");

    // A request with its own cap is forwarded as sent.
    fake.set(Behavior::default());
    let (_, key3) = app.user_with_key_in("capped", "1.00", json!({})).await;
    let own = r#"{"model":"gpt-test","max_tokens":50,"messages":[{"role":"user","content":"Say hello"}]}"#;
    assert_eq!(send_raw(&app, &key3, own).await.status(), 200);
    assert_eq!(fake.received().last().unwrap().body, own.as_bytes(), "unchanged");
    // A balance that pays the usual default hold is not capped either.
    assert_eq!(send_raw(&app, &key3, body).await.status(), 200);
    assert!(fake.received().last().unwrap().json().get("max_tokens").is_none());

    // A balance that cannot pay one output token on top of the prompt: refused, no upstream call.
    let (poor, poor_key) = app.user_with_key_in("capped", "0.00005", json!({})).await;
    let calls = fake.received().len();
    let refused = send_raw(&app, &poor_key, body).await;
    assert_eq!(refused.status(), 429);
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["error"]["code"], "insufficient_quota", "{error}");
    assert_eq!(fake.received().len(), calls);
    assert_eq!(app.balance(poor).await, 50_000, "nothing charged");

    // The setting off (the default group): no cap is added; a small balance cannot pay the
    // default hold and is refused, a larger one runs without a cap.
    let (_, small) = app.user_with_key_in("default", "0.01", json!({})).await;
    assert_eq!(send_raw(&app, &small, body).await.status(), 429);
    assert_eq!(fake.received().len(), calls);
    let (_, rich) = app.user_with_key_in("default", "1.00", json!({})).await;
    assert_eq!(send_raw(&app, &rich, body).await.status(), 200);
    assert_eq!(fake.received().last().unwrap().body, body.as_bytes(), "forwarded as sent");
    app.assert_ledger_consistent().await;
    assert_audit_clean(&app).await;
}

async fn cap_output_by_balance_reaches_converted_protocols(backend: Backend) {
    use crate::support::fake_anthropic::{FakeAnthropic, KEY, Reply};
    let app = spawn_app(backend).await;
    let fake = FakeAnthropic::start(Reply::Text).await;
    let (status, _) = app
        .admin(
            "PUT",
            "/api/admin/groups/capped",
            Some(json!({ "multiplier": "2", "billing": { "cap_output_by_balance": true } })),
        )
        .await;
    assert_eq!(status, 200);
    app.add_channel(json!({
        "name": "claude", "type": "anthropic", "base_url": fake.base_url(), "key": KEY,
        "models": ["claude-test"], "groups": ["capped"]
    }))
    .await;
    app.set_price("claude-test", json!({ "input": "2.50", "output": "10.00" })).await;
    let (user, key) = app.user_with_key_in("capped", "0.01", json!({})).await;
    let body = r#"{"model":"claude-test","messages":[{"role":"user","content":"Say hello"}]}"#;
    assert_eq!(send_raw(&app, &key, body).await.status(), 200);
    // The group's ×2 multiplier doubles both prices.
    let prompt = prompt_hold("claude-test", body);
    let expected = (DOLLAR / 100 - 2 * prompt * INPUT_NANO) / (2 * OUTPUT_NANO);
    let sent = fake.received().last().unwrap().clone();
    assert_eq!(sent["max_tokens"], expected, "Anthropic's required max_tokens is the cap: {sent}");
    assert!(app.balance(user).await >= 0);
    app.assert_ledger_consistent().await;
}

async fn cap_output_by_balance_is_set_in_the_admin_api_and_the_group_form(backend: Backend) {
    let app = spawn_app(backend).await;
    let group = |list: &Value, name: &str| {
        list.as_array()
            .or_else(|| list["data"].as_array())
            .unwrap()
            .iter()
            .find(|g| g["name"] == name)
            .cloned()
            .unwrap()
    };
    let (status, saved) = app.admin("PUT", "/api/admin/groups/gold", Some(json!({ "multiplier": "0.9" }))).await;
    assert_eq!(status, 200, "{saved}");
    assert_eq!(saved["billing"]["cap_output_by_balance"], false, "off by default");
    let (status, refused) = app
        .admin(
            "PUT",
            "/api/admin/groups/gold",
            Some(json!({ "multiplier": "0.9", "billing": { "cap_output_by_balance": "yes" } })),
        )
        .await;
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = app
        .admin("PUT", "/api/admin/groups/gold", Some(json!({ "multiplier": "0.9", "billing": { "cap_output": true } })))
        .await;
    assert_eq!(status, 400, "unknown settings are refused: {refused}");
    let (_, list) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(group(&list, "gold")["billing"]["cap_output_by_balance"], false);

    // The console's group form: the checkbox sets it, leaving it unticked clears it.
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf("/admin/groups").await;
    let form = [("name", "gold"), ("multiplier", "0.9"), ("description", ""), ("models", "")];
    let mut on = form.to_vec();
    on.extend([("cap_output_by_balance", "1"), ("csrf", csrf.as_str())]);
    let (status, location, _) = root.post("/admin/groups", &on).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/admin/groups?done=saved"));
    let (_, list) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(group(&list, "gold")["billing"]["cap_output_by_balance"], true);
    let (_, _, page) = root.get("/admin/groups?edit=gold").await;
    assert!(page.contains("data-testid=\"cap-output-by-balance\" checked"), "{page}");
    // An API save without `billing` keeps it.
    app.admin("PUT", "/api/admin/groups/gold", Some(json!({ "multiplier": "0.8" }))).await;
    let (_, list) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(group(&list, "gold")["billing"]["cap_output_by_balance"], true);
    let mut off = form.to_vec();
    off.push(("csrf", csrf.as_str()));
    let (status, ..) = root.post("/admin/groups", &off).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (_, list) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(group(&list, "gold")["billing"]["cap_output_by_balance"], false);
    let (_, _, page) = root.get("/admin/groups?edit=gold").await;
    assert!(!page.contains("data-testid=\"cap-output-by-balance\" checked"));
}
