//! Rate limits on users, groups and models (issue 17): a user's requests per minute and per day,
//! tokens per minute and requests in flight over all of their keys; a group's as each member's
//! default; a group's per-model limits for each member. Every window that applies counts a
//! request, a refusal counts in none, and the answers' `x-ratelimit-*` headers show the tightest.

use std::time::Duration;

use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    a_users_requests_count_over_all_their_keys,
    a_groups_limits_are_each_members_and_a_users_own_replace_them,
    a_groups_per_model_limits_bind_each_member_on_that_model,
    tokens_per_minute_of_a_user_are_reserved_then_trued_up,
    concurrency_of_a_user_and_on_a_model_is_capped,
    per_model_limits_are_validated_and_edited_on_the_groups_page,
);

async fn setup(backend: Backend) -> (TestApp, FakeOpenAi) {
    let app = spawn_app(backend).await;
    let (status, body) = app.admin("PUT", "/api/admin/groups/plan", Some(json!({ "multiplier": "1" }))).await;
    assert_eq!(status, 200, "{body}");
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let channel = json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                          "models": ["m", "n"], "groups": ["default", "plan"] });
    app.add_channel(channel).await;
    for model in ["m", "n"] {
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    (app, fake)
}

fn chat(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 10 })
}

async fn set_user(app: &TestApp, user: i64, limits: Value) {
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": limits }))).await;
    assert_eq!(status, 200, "{body}");
}

async fn set_group(app: &TestApp, limits: Value) -> (u16, Value) {
    app.admin("PUT", "/api/admin/groups/plan", Some(json!({ "multiplier": "1", "limits": limits }))).await
}

async fn another_key(app: &TestApp, user: i64) -> String {
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

fn header(response: &reqwest::Response, name: &str) -> i64 {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().parse().unwrap()
}

/// A refusal's message, checked for its shape.
async fn limited(response: reqwest::Response, kind: &str) -> String {
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"), "{:?}", response.headers());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], kind, "{body}");
    body["error"]["message"].as_str().unwrap().to_string()
}

/// A user's 3 requests a minute, spent over two keys: the fourth is refused on either key, naming
/// the account; the headers count the user's window (the key has none).
async fn a_users_requests_count_over_all_their_keys(backend: Backend) {
    let (app, fake) = setup(backend).await;
    let (user, first) = app.user_with_key("10.00").await;
    let second = another_key(&app, user).await;
    set_user(&app, user, json!({ "rpm": 3 })).await;
    let mut remaining = Vec::new();
    for key in [&first, &second, &first] {
        let response = app.v1(key, "/v1/chat/completions", &chat("m")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-ratelimit-limit-requests"), 3);
        remaining.push(header(&response, "x-ratelimit-remaining-requests"));
    }
    assert_eq!(remaining, [2, 1, 0]);
    let message = limited(app.v1(&second, "/v1/chat/completions", &chat("m")).await, "requests").await;
    assert!(message.contains("Rate limit reached for your account: 3 requests per minute"), "{message}");
    assert_eq!(fake.received().len(), 3);
    let (_, other) = app.user_with_key("10.00").await;
    assert_eq!(app.v1(&other, "/v1/chat/completions", &chat("m")).await.status(), 200, "another user is not limited");
    app.assert_ledger_consistent().await;
}

/// A group's `rpd` of 2 is each member's: two members send two each, then are refused. A member's
/// own `rpd` of 3 replaces it (one more); `null` gives the group's back. A group's change applies
/// on the next request.
async fn a_groups_limits_are_each_members_and_a_users_own_replace_them(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (status, group) = set_group(&app, json!({ "rpd": 2 })).await;
    assert_eq!((status, &group["limits"]["rpd"]), (200, &json!(2)), "{group}");
    let (alice, alice_key) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let (_, bob_key) = app.user_with_key_in("plan", "10.00", json!({})).await;
    for key in [&alice_key, &bob_key] {
        for _ in 0..2 {
            assert_eq!(app.v1(key, "/v1/chat/completions", &chat("m")).await.status(), 200);
        }
        let message = limited(app.v1(key, "/v1/chat/completions", &chat("m")).await, "requests").await;
        assert!(message.contains("your account: 2 requests per day"), "{message}");
    }
    set_user(&app, alice, json!({ "rpd": 3 })).await;
    assert_eq!(app.v1(&alice_key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    limited(app.v1(&alice_key, "/v1/chat/completions", &chat("m")).await, "requests").await;
    set_user(&app, alice, json!({ "rpd": null })).await;
    let (_, view) = app.admin("GET", &format!("/api/admin/users/{alice}"), None).await;
    assert_eq!(
        (&view["limits"]["own"]["rpd"], &view["limits"]["effective"]["rpd"]),
        (&Value::Null, &json!(2)),
        "{view}"
    );
    // The group's limit raised: the next request sees it.
    set_group(&app, json!({ "rpd": 5 })).await;
    assert_eq!(app.v1(&bob_key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    app.assert_ledger_consistent().await;
}

/// The group's `m` has 2 requests a minute for each member: a member's third on `m` is refused
/// naming the model, while `n` still answers; the refused request counts in no window (the
/// user's own limit of 10 still has 7 left after it).
async fn a_groups_per_model_limits_bind_each_member_on_that_model(backend: Backend) {
    let (app, fake) = setup(backend).await;
    let (status, group) = set_group(&app, json!({ "rpm": 10, "models": { "m": { "rpm": 2 } } })).await;
    assert_eq!((status, &group["limits"]["models"]), (200, &json!({ "m": { "rpm": 2 } })), "{group}");
    let (_, key) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let (_, other) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let first = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
    assert_eq!(
        (header(&first, "x-ratelimit-limit-requests"), header(&first, "x-ratelimit-remaining-requests")),
        (2, 1),
        "the tightest window: the model's"
    );
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat("m")).await.status(), 200);
    let message = limited(app.v1(&key, "/v1/chat/completions", &chat("m")).await, "requests").await;
    assert!(message.contains("Rate limit reached for this model on your account: 2 requests per minute"), "{message}");
    let on_n = app.v1(&key, "/v1/chat/completions", &chat("n")).await;
    assert_eq!(on_n.status(), 200, "another model is not limited");
    assert_eq!(
        header(&on_n, "x-ratelimit-remaining-requests"),
        7,
        "10 less m, m and n: the refused one gave its count back"
    );
    assert_eq!(app.v1(&other, "/v1/chat/completions", &chat("m")).await.status(), 200, "each member counts alone");
    assert_eq!(fake.received().len(), 4);
    app.assert_ledger_consistent().await;
}

/// A user's tokens per minute: each request reserves its estimate in the user's window (any key)
/// and is trued up to its usage; an estimate larger than the whole limit is told so; a group's
/// per-model `tpm` binds on its model.
async fn tokens_per_minute_of_a_user_are_reserved_then_trued_up(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (user, key) = app.user_with_key("10.00").await;
    set_user(&app, user, json!({ "tpm": 1000 })).await;
    let big = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 2000 });
    let message = limited(app.v1(&key, "/v1/chat/completions", &big).await, "tokens").await;
    assert!(message.contains("more than your account's limit of 1000 tokens per minute"), "{message}");
    let first = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-ratelimit-limit-tokens"), 1000);
    app.settled().await;
    // Trued up: the next request's headers show what is left after the first's usage (not its
    // estimate) and this one's reservation.
    let second = app.v1(&key, "/v1/chat/completions", &chat("m")).await;
    let left = header(&second, "x-ratelimit-remaining-tokens");
    assert!(left > 1000 - 2 * 40 && left < 1000 - 10, "trued up: {left}");

    let (status, body) = set_group(&app, json!({ "models": { "n": { "tpm": 15 } } })).await;
    assert_eq!(status, 200, "{body}");
    let (_, member) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let message = limited(app.v1(&member, "/v1/chat/completions", &chat("n")).await, "tokens").await;
    assert!(message.contains("your account's per-model limit of 15 tokens per minute"), "{message}");
    assert_eq!(app.v1(&member, "/v1/chat/completions", &chat("m")).await.status(), 200);
    app.assert_ledger_consistent().await;
}

/// A user's `concurrency` of 1 (over all of their keys) and a group's per-model `concurrency`:
/// with one request in flight (to an upstream that never answers), the next one waits out the
/// admission wait and is refused; another model has its own slots.
async fn concurrency_of_a_user_and_on_a_model_is_capped(backend: Backend) {
    let app = crate::support::helpers::spawn_app_env(backend, &[("BURNCLOUD_ADMISSION_WAIT_MS", "100")]).await;
    let (status, _) = app.admin("PUT", "/api/admin/groups/plan", Some(json!({ "multiplier": "1" }))).await;
    assert_eq!(status, 200);
    let (hang, fast) = (FakeOpenAi::start(Behavior::Hang).await, FakeOpenAi::start(Behavior::default()).await);
    for (name, fake, model) in [("hang", &hang, "m"), ("fast", &fast, "n")] {
        let channel = json!({ "name": name, "type": "openai", "base_url": fake.base_url(name), "key": "k",
                              "models": [model], "groups": ["default", "plan"] });
        app.add_channel(channel).await;
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    let in_flight = |n: usize| {
        let app = &app;
        async move {
            for _ in 0..500 {
                if app.gateway.gateway().admission.in_flight() == n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            panic!("never {n} in flight");
        }
    };
    let hanging = |key: &str| {
        let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(key).json(&chat("m"));
        tokio::spawn(async move { request.send().await })
    };

    let (user, first) = app.user_with_key("10.00").await;
    let second = another_key(&app, user).await;
    set_user(&app, user, json!({ "concurrency": 1 })).await;
    let busy = hanging(&first);
    in_flight(1).await;
    let refused = app.v1(&second, "/v1/chat/completions", &chat("n")).await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "concurrency_limit_exceeded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("this account has 1 requests in flight"), "{body}");
    busy.abort();
    in_flight(0).await;

    let (status, body) = set_group(&app, json!({ "models": { "m": { "concurrency": 1 } } })).await;
    assert_eq!(status, 200, "{body}");
    let (_, member) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let busy = hanging(&member);
    in_flight(1).await;
    assert_eq!(
        app.v1(&member, "/v1/chat/completions", &chat("n")).await.status(),
        200,
        "another model has its own slots"
    );
    let on_m = app.v1(&member, "/v1/chat/completions", &chat("m")).await;
    assert_eq!(on_m.status(), 429);
    let body: Value = on_m.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("in flight on this model"), "{body}");
    busy.abort();
    in_flight(0).await;
    app.settled().await;
    assert_eq!(app.gateway.gateway().admission.tracked_models(), 0, "the model's counters went with the answers");
    app.assert_ledger_consistent().await;
}

/// Per-model limits: refused when not limits (nothing changes), refused on a user, and edited as
/// lines on the groups page.
async fn per_model_limits_are_validated_and_edited_on_the_groups_page(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    for (bad, says) in [
        (json!({ "models": { "m": { "rpm": 0 } } }), "limits.models.m.rpm: must be positive"),
        (json!({ "models": { "m": {} } }), "limits.models.m: set at least one"),
        (json!({ "models": { "m": { "rph": 1 } } }), "rph"),
        (json!({ "rpd": -3 }), "limits.rpd: must be positive"),
    ] {
        let (status, body) = set_group(&app, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains(says), "{bad}: {body}");
    }
    let (user, _) = app.user_with_key("1.00").await;
    let (status, body) = app
        .admin(
            "PATCH",
            &format!("/api/admin/users/{user}"),
            Some(json!({ "limits": { "models": { "m": { "rpm": 1 } } } })),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("per-model limits are set on groups"), "{body}");
    let (_, groups) = app.admin("GET", "/api/admin/groups", None).await;
    let plan = groups["data"].as_array().unwrap().iter().find(|g| g["name"] == "plan").cloned().unwrap();
    assert!(plan["limits"].get("models").is_none(), "nothing was saved: {plan}");

    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf("/admin/groups?edit=plan").await;
    let form = |lines: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("name", "plan".into()),
            ("multiplier", "1".into()),
            ("rpm", "30".into()),
            ("model_limits", lines.into()),
        ]
    };
    let sent = form("m = rpm ten");
    let pairs: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, _, page) = root.post("/admin/groups", &pairs).await;
    assert_eq!(status.as_u16(), 400, "{page}");
    assert!(page.contains("Per-model limits: m:") && page.contains("needs a whole number"), "{page}");
    let sent = form("m = rpm 5, tpm 9000\nn = concurrency 2");
    let pairs: Vec<(&str, &str)> = sent.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, location, _) = root.post("/admin/groups", &pairs).await;
    assert_eq!((status.as_u16(), location.as_str()), (303, "/admin/groups?done=saved"));
    let (_, groups) = app.admin("GET", "/api/admin/groups", None).await;
    let plan = groups["data"].as_array().unwrap().iter().find(|g| g["name"] == "plan").cloned().unwrap();
    assert_eq!(plan["limits"]["rpm"], 30, "{plan}");
    assert_eq!(
        plan["limits"]["models"],
        json!({ "m": { "rpm": 5, "tpm": 9000 }, "n": { "concurrency": 2 } }),
        "{plan}"
    );

    // A user sees their account's limits on their keys page.
    let mut visitor = Browser::new(&app);
    let email = format!("v{}@example.com", burncloud::domain::token::random_alphanumeric(8).to_lowercase());
    visitor.sign_up(&email).await;
    let (_, _, page) = visitor.get("/console/keys").await;
    assert!(!page.contains("data-testid=\"account-limits\""), "no limits, no line: {page}");
    let id: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = $1")
        .bind(&email)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    set_user(&app, id, json!({ "rpm": 7, "budget": "3", "budget_period": "week" })).await;
    let (_, _, page) = visitor.get("/console/keys").await;
    assert!(
        page.contains("data-testid=\"account-limits\"") && page.contains("7 RPM") && page.contains("0.00 / 3.00"),
        "{page}"
    );

    let (_, _, page) = root.get("/admin/groups?edit=plan").await;
    assert!(page.contains("m = rpm 5, tpm 9000\nn = concurrency 2"), "the form shows the lines: {page}");
}
