//! Editing a key's limits in `/console/keys`: the form as a full page (no JavaScript) and as htmx
//! fragments, every refused input (a clear message, nothing changed), other users' keys out of
//! reach, and the gateway enforcing the edited limits at once.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_budget_set_in_the_form_shows_and_holds,
    edited_limits_show_in_the_table_and_the_gateway_enforces_them,
    refused_edits_explain_and_change_nothing,
    other_users_keys_cannot_be_edited,
);

/// A user signed up in `browser` with 1.00 of credit and a console key named `ci`:
/// `(key id, key)`.
pub async fn user_with_console_key(app: &TestApp, browser: &mut Browser<'_>, email: &str) -> (i64, String) {
    browser.sign_up(email).await;
    let user: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = $1")
        .bind(email)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (status, _) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": "1.00", "note": "test" })))
        .await;
    assert_eq!(status, 200);
    let csrf = browser.csrf("/console/keys").await;
    let (status, _, page) = browser.post("/console/keys", &[("name", "ci"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let start = page.find("data-testid=\"new-key\">").unwrap() + 22;
    let key = page[start..start + page[start..].find('<').unwrap()].to_string();
    let id: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM api_keys WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    (id, key)
}

/// One channel serving `gpt-good` and `gpt-other`, both priced.
pub async fn two_models(app: &TestApp) -> FakeOpenAi {
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "up", "type": "openai", "base_url": fake.base_url("up"), "key": "k",
                            "models": ["gpt-good", "gpt-other"] }))
        .await;
    for model in ["gpt-good", "gpt-other"] {
        app.set_price(model, json!({ "input": "2.50", "output": "10.00" })).await;
    }
    fake
}

pub async fn chat(app: &TestApp, key: &str, model: &str) -> (u16, Value) {
    let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
    let response = app.v1(key, "/v1/chat/completions", &body).await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The key's stored fields, to show a refused edit changed nothing.
async fn stored(app: &TestApp, id: i64) -> String {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT name, status, spend_limit, expires_at, allowed_models, allowed_ips, rate_limit_rpm FROM api_keys WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let text = |i: usize| row.get::<Option<String>, _>(i);
    let number = |i: usize| row.get::<Option<i64>, _>(i);
    format!("{:?}", (text(0), text(1), number(2), number(3), text(4), text(5), number(6)))
}

/// An htmx request (`HX-Request: true`, the CSRF token as htmx sends it) through the browser.
async fn hx(
    app: &TestApp,
    browser: &mut Browser<'_>,
    path: &str,
    form: Option<&[(&str, &str)]>,
) -> (StatusCode, String, String) {
    let csrf = browser.csrf("/console/keys").await;
    let request = match form {
        None => browser.client.get(app.url(path)),
        Some(form) => {
            let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
            browser
                .client
                .post(app.url(path))
                .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header("x-csrf-token", csrf)
                .body(body)
        }
    };
    browser.send(request.header("hx-request", "true")).await
}

fn form<'a>(csrf: &'a str, fields: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut form = vec![
        ("csrf", csrf),
        ("name", "ci"),
        ("spend_limit", ""),
        ("expires", ""),
        ("models", ""),
        ("ips", ""),
        ("rpm", ""),
        ("rpd", ""),
        ("tpm", ""),
        ("concurrency", ""),
        ("budget", ""),
        ("budget_period", "month"),
    ];
    for (name, value) in fields {
        form.retain(|(n, _)| n != name);
        form.push((name, value));
    }
    form
}

/// A daily budget set in the key's form shows in its row (spent of how much, and when it starts
/// again) and in the form, and the gateway holds it: the request past it is refused with the
/// budget's message; a refused budget changes nothing.
async fn a_budget_set_in_the_form_shows_and_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = two_models(&app).await;
    let mut browser = Browser::new(&app);
    let (id, key) = user_with_console_key(&app, &mut browser, "budget@example.com").await;
    let csrf = browser.csrf("/console/keys").await;
    let edit = format!("/console/keys/{id}/edit");

    let before = stored(&app, id).await;
    let (status, _, page) = browser.post(&edit, &form(&csrf, &[("budget", "-1"), ("budget_period", "day")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("budget: must not be negative"), "{page}");
    assert_eq!(stored(&app, id).await, before);

    let (status, location, _) =
        browser.post(&edit, &form(&csrf, &[("budget", "0.05"), ("budget_period", "day")])).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/keys"));
    let (_, _, list) = browser.get("/console/keys").await;
    assert!(list.contains("Budget: 0.00 / 0.05 Per day · starts again"), "{list}");
    let (_, _, page) = browser.get(&edit).await;
    assert!(page.contains("name=\"budget\" inputmode=\"decimal\" value=\"0.05\""), "{page}");
    assert!(page.contains("<option value=\"day\" selected>"), "{page}");

    // One answer costs 0.00008 (its hold, about 0.041 for 4,096 output tokens, fits the budget).
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 200);
    app.settled().await;
    let (_, _, list) = browser.get("/console/keys").await;
    assert!(list.contains("Budget: 0.00008 / 0.05 Per day"), "{list}");
    // A budget the next hold does not fit in refuses it, naming the budget.
    browser.post(&edit, &form(&csrf, &[("budget", "0.01"), ("budget_period", "day")])).await;
    let (status, body) = chat(&app, &key, "gpt-good").await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("daily budget of 0.01"), "{body}");
    app.assert_ledger_consistent().await;
}

async fn edited_limits_show_in_the_table_and_the_gateway_enforces_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = two_models(&app).await;
    let mut browser = Browser::new(&app);
    let (id, key) = user_with_console_key(&app, &mut browser, "limits@example.com").await;
    assert_eq!(chat(&app, &key, "gpt-other").await.0, 200, "no allowlist yet");

    // Without JavaScript: the edit form opens in the full page, filled in with the key's values.
    let (status, _, page) = browser.get(&format!("/console/keys/{id}/edit")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("<html") && page.contains("data-testid=\"edit-key\""), "{page}");
    assert!(page.contains("name=\"name\" maxlength=\"100\" value=\"ci\""), "{page}");
    // With htmx: the form alone, as the key's table row, marked as varying by HX-Request.
    let response = browser
        .client
        .get(app.url(&format!("/console/keys/{id}/edit")))
        .header(reqwest::header::COOKIE, browser.cookie.clone().unwrap())
        .header("hx-request", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["vary"].to_str().unwrap().contains("HX-Request"));
    let fragment = response.text().await.unwrap();
    assert!(fragment.starts_with(&format!("<tr id=\"key-{id}\" class=\"editing\">")), "{fragment}");
    assert!(!fragment.contains("<html"));

    // Save as a plain form: back to the list, which shows the new limits.
    let csrf = browser.csrf("/console/keys").await;
    let fields = [
        ("name", "renamed"),
        ("spend_limit", "0.50"),
        ("expires", "2999-12-31"),
        ("models", "gpt-good"),
        ("ips", "127.0.0.1, ::1"),
        ("rpm", "100"),
        ("rpd", "1000"),
        ("tpm", "50000"),
        ("concurrency", "7"),
        ("no_fallback", "on"),
    ];
    let (status, location, _) = browser.post(&format!("/console/keys/{id}/edit"), &form(&csrf, &fields)).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/keys"));
    let (_, _, list) = browser.get("/console/keys").await;
    for shown in [
        "renamed",
        "0.00008 / 0.50",
        "3000-01-01 00:00 UTC",
        "Models: gpt-good",
        "IPs: 127.0.0.1, ::1",
        "100 requests per minute",
        "1000 requests per day",
        "50000 tokens per minute",
        "7 requests at once",
        "no fallback models",
    ] {
        assert!(list.contains(shown), "{shown}: {list}");
    }
    let (_, _, page) = browser.get(&format!("/console/keys/{id}/edit")).await;
    assert!(page.contains("name=\"no_fallback\" value=\"on\" checked"), "the box stays ticked: {page}");
    assert!(page.contains("value=\"2999-12-31\"") && page.contains("value=\"0.50\""), "the form shows the day: {page}");

    // The gateway applies them at once: another model is refused in OpenAI's shape.
    let (status, body) = chat(&app, &key, "gpt-other").await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 200);
    app.settled().await;

    // With htmx: the answer is the updated row. Lifting the allowlist takes effect at once.
    let (status, _, row) =
        hx(&app, &mut browser, &format!("/console/keys/{id}/edit"), Some(&form("", &[("name", "renamed")]))).await;
    assert_eq!(status, StatusCode::OK);
    assert!(row.starts_with(&format!("<tr id=\"key-{id}\">")) && !row.contains("<html"), "{row}");
    assert!(!row.contains("Models:") && !row.contains("requests per minute"), "{row}");
    assert!(!row.contains("no fallback models"), "an unticked box allows fallbacks again: {row}");
    assert!(row.contains("0.00016 / no limit"), "spent so far (two answers), limit lifted: {row}");
    assert_eq!(chat(&app, &key, "gpt-other").await.0, 200, "the allowlist is gone");
    // So does a tight RPM.
    let (_, _, row) =
        hx(&app, &mut browser, &format!("/console/keys/{id}/edit"), Some(&form("", &[("rpm", "1")]))).await;
    assert!(row.contains("1 requests per minute"), "{row}");
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(chat(&app, &key, "gpt-other").await.0);
    }
    assert!(statuses.contains(&429), "1 request per minute: {statuses:?}");

    // An IP allowlist that excludes this client shuts the key out; removing it lets it back in.
    let csrf = browser.csrf("/console/keys").await;
    browser.post(&format!("/console/keys/{id}/edit"), &form(&csrf, &[("ips", "10.0.0.0/8")])).await;
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 401);
    browser.post(&format!("/console/keys/{id}/edit"), &form(&csrf, &[])).await;
    assert_eq!(chat(&app, &key, "gpt-good").await.0, 200);

    // A spend limit below what the key has spent is refused.
    app.settled().await;
    let before = stored(&app, id).await;
    let (status, _, page) =
        browser.post(&format!("/console/keys/{id}/edit"), &form(&csrf, &[("spend_limit", "0.00001")])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // What was charged: the count less what the gateway reserved on it ahead (budget leases).
    let spent: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT spent - COALESCE((SELECT CAST(SUM(amount) AS BIGINT) FROM budget_leases \
         WHERE owner = 'key' AND owner_id = $1), 0) FROM api_keys WHERE id = $1",
    )
    .bind(id)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    let spent = burncloud::domain::money::Money(spent);
    assert!(page.contains(&format!("this key has already spent {spent}")), "{page}");
    assert_eq!(stored(&app, id).await, before);
    app.assert_ledger_consistent().await;
}

async fn refused_edits_explain_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    let (id, _) = user_with_console_key(&app, &mut browser, "refused@example.com").await;
    let csrf = browser.csrf("/console/keys").await;
    let good = [("spend_limit", "2.00"), ("models", "gpt-good"), ("rpm", "10")];
    browser.post(&format!("/console/keys/{id}/edit"), &form(&csrf, &good)).await;
    let before = stored(&app, id).await;
    let long_name = "n".repeat(101);
    let long_model = "m".repeat(201);
    let cases: [(&str, &str, &str); 10] = [
        ("spend_limit", "lots", "spend_limit: \"lots\" is not a decimal number"),
        ("spend_limit", "-1", "spend_limit: must not be negative"),
        ("expires", "2000-01-01", "that day is over"),
        ("expires", "next week", "Works through: a date like 2026-11-27."),
        ("ips", "10.0.0.300", "ips: \"10.0.0.300\" is not an IP address or CIDR block"),
        ("rpm", "0", "rpm: must be positive"),
        ("rpm", "ten", "RPM: a whole number of requests per minute"),
        ("name", &long_name, "name: at most 100 characters"),
        ("models", &long_model, "is not a model name"),
        ("name", "tab\there", "name: no control characters"),
    ];
    for (field, value, message) in cases {
        let mut sent = form(&csrf, &good);
        sent.retain(|(n, _)| *n != field);
        sent.push((field, value));
        // A plain form: the page again, 400, the message beside the form, the input kept.
        let (status, _, page) = browser.post(&format!("/console/keys/{id}/edit"), &sent).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}");
        let escaped = message.replace('"', "&#34;");
        assert!(page.contains(&escaped), "{field}={value}: {page}");
        assert!(page.contains("data-testid=\"edit-key\"") && page.contains("role=\"alert\""), "{page}");
        // htmx: the form fragment with the message (200, so htmx swaps it in).
        let (status, _, fragment) = hx(&app, &mut browser, &format!("/console/keys/{id}/edit"), Some(&sent)).await;
        assert_eq!(status, StatusCode::OK, "{field}={value}");
        assert!(fragment.starts_with("<tr") && fragment.contains(&escaped), "{field}={value}: {fragment}");
        assert_eq!(stored(&app, id).await, before, "{field}={value} changed the key");
    }
    // The create form refuses the same way, keeps what was typed, and makes no key.
    let (status, _, page) =
        browser.post("/console/keys", &[("csrf", &csrf), ("name", "second"), ("ips", "nowhere"), ("rpm", "5")]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        page.contains("ips: &#34;nowhere&#34; is not an IP address") && page.contains("value=\"second\""),
        "{page}"
    );
    let keys: i64 =
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM api_keys").fetch_one(app.db.pool()).await.unwrap();
    assert_eq!(keys, 1);
    // Without the CSRF token nothing is saved.
    let (status, _, _) = browser.post(&format!("/console/keys/{id}/edit"), &form("", &[("name", "x")])).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(stored(&app, id).await, before);
}

async fn other_users_keys_cannot_be_edited(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut owner = Browser::new(&app);
    let (id, key) = user_with_console_key(&app, &mut owner, "owner@example.com").await;
    let before = stored(&app, id).await;
    let mut other = Browser::new(&app);
    let (own_id, _) = user_with_console_key(&app, &mut other, "guesser@example.com").await;
    let csrf = other.csrf("/console/keys").await;
    // Guessing ids: the owner's key, its neighbours and one that does not exist answer alike.
    for guess in [id, own_id + 1, own_id + 100, 999_999] {
        let path = format!("/console/keys/{guess}/edit");
        let (status, _, _) = other.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
        let (status, _, _) = hx(&app, &mut other, &path, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "htmx GET {path}");
        let (status, _, _) = other.post(&path, &form(&csrf, &[("name", "mine now"), ("models", "x")])).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "POST {path}");
    }
    assert_eq!(stored(&app, id).await, before, "the owner's key is untouched");
    let response = app.client.get(app.url("/v1/models")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), 200);
    // Logged out, the form is behind the login.
    let (status, location, _) = Browser::new(&app).get(&format!("/console/keys/{id}/edit")).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
}
