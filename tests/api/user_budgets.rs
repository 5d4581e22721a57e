//! Budgets that reset, on users and groups (issue 17): a user's own budget per period, or their
//! group's as the default each member gets (each member counts their own spend). Holds reserve on
//! the user's count with the same conditional update as key budgets, across all of the user's
//! keys, so concurrent requests at the edge admit exactly what the budget covers; past it the
//! answer is `429 insufficient_quota` naming when it starts again.

use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::key_budgets::budget_refusal;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, TestApp, spawn_app_env, spawn_app_with};
use crate::support::mail_sink::{address, sink, smtp_env};

db_tests!(
    ten_k_requests_at_a_users_budget_edge_admit_exactly_k,
    a_groups_budget_is_each_members_and_a_users_own_replaces_it,
    a_users_budget_counts_what_was_charged_not_what_was_held,
    user_and_group_limits_are_validated_shown_and_edited_in_the_console,
    the_user_is_warned_once_per_period,
    bootstrap_files_set_group_and_user_budgets,
);

const DAY_MS: i64 = 86_400_000;
/// $0.10 in nano-units.
const DIME: i64 = 100_000_000;

/// An app whose model `m` costs $0.10 a request (a hold is exactly the charge), with room for
/// many requests in flight.
async fn setup(backend: Backend) -> (TestApp, FakeOpenAi) {
    let settings = [
        ("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "512"),
        ("BURNCLOUD_MAX_CONCURRENT_PER_USER", "512"),
        ("BURNCLOUD_ADMISSION_WAIT_MS", "5000"),
    ];
    let app = spawn_app_env(backend, &settings).await;
    let fake = serve_m(&app).await;
    (app, fake)
}

/// A group `plan` without limits, and a channel serving `m` to it and to `default` at $0.10 a
/// request.
async fn serve_m(app: &TestApp) -> FakeOpenAi {
    set_group(app, "plan", json!({})).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let channel = json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                          "models": ["m"], "groups": ["default", "plan"] });
    app.add_channel(channel).await;
    app.set_price("m", json!({ "per_request": "0.10" })).await;
    fake
}

fn chat() -> Value {
    json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 })
}

async fn set_user_limits(app: &TestApp, user: i64, limits: Value) -> Value {
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": limits }))).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn set_group(app: &TestApp, name: &str, limits: Value) -> Value {
    let body = json!({ "multiplier": "1", "limits": limits });
    let (status, group) = app.admin("PUT", &format!("/api/admin/groups/{name}"), Some(body)).await;
    assert_eq!(status, 200, "{group}");
    group
}

async fn another_key(app: &TestApp, user: i64) -> String {
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    key["key"].as_str().unwrap().to_string()
}

async fn user_view(app: &TestApp, user: i64) -> Value {
    let (status, view) = app.admin("GET", &format!("/api/admin/users/{user}"), None).await;
    assert_eq!(status, 200, "{view}");
    view
}

async fn status_of(app: &TestApp, key: &str) -> u16 {
    app.v1(key, "/v1/chat/completions", &chat()).await.status().as_u16()
}

/// A user's daily budget for exactly K requests, and 10×K of them at once over two of the user's
/// keys: exactly K are served and charged (the budget is the user's, whichever key spends it),
/// the rest refused naming the budget.
async fn ten_k_requests_at_a_users_budget_edge_admit_exactly_k(backend: Backend) {
    const K: usize = 20;
    let (app, fake) = setup(backend).await;
    let (user, first) = app.user_with_key("100.00").await;
    let second = another_key(&app, user).await;
    let view = set_user_limits(&app, user, json!({ "budget": "2.00", "budget_period": "day" })).await;
    assert_eq!(view["limits"]["effective"]["budget"], "2.00", "{view}");
    let before = app.balance(user).await;

    let answers = futures_util::future::join_all((0..10 * K).map(|i| {
        let key = if i % 2 == 0 { &first } else { &second };
        let request = app.client.post(app.url("/v1/chat/completions")).bearer_auth(key).json(&chat());
        async move { request.send().await.unwrap() }
    }))
    .await;
    let mut served = 0;
    for response in answers {
        if response.status() == 200 {
            served += 1;
        } else {
            let message = budget_refusal(response).await;
            assert!(
                message.contains("Your account's daily budget of 2.00") && message.contains("starts again at"),
                "{message}"
            );
        }
    }
    assert_eq!(served, K, "the user's budget covers exactly K requests over both keys");
    assert_eq!(fake.received().len(), K, "refused requests never reach the upstream");
    assert_eq!(app.balance(user).await, before - K as i64 * DIME);
    let view = user_view(&app, user).await;
    assert_eq!(view["limits"]["budget_spent"], "2.00", "{view}");
    // The key alone reads the account's budget, and that nothing is left to spend this period.
    let read: Value =
        app.client.get(app.url("/api/v1/key")).bearer_auth(&first).send().await.unwrap().json().await.unwrap();
    let account = &read["data"]["account_budget"];
    assert_eq!(
        (&account["limit"], &account["period"], &account["usage"], &account["remaining"]),
        (&json!(2.0), &json!("day"), &json!(2.0), &json!(0.0)),
        "{read}"
    );
    assert_eq!(account["resets_at"].as_i64().unwrap() * 1000, view["limits"]["budget_resets_at"].as_i64().unwrap());
    assert_eq!(
        read["data"]["limit_remaining"],
        json!(0.0),
        "the account's budget bounds what the key may spend: {read}"
    );
    app.assert_ledger_consistent().await;
}

/// A group's $0.20 daily budget is each member's own: two members spend two requests each, then
/// are refused. A member given their own $0.30 budget gets three; taking it away (`null`) gives
/// the group's back. Raising the group's budget takes effect on the next request; the next day
/// (the budget clock moved) every member spends again.
async fn a_groups_budget_is_each_members_and_a_users_own_replaces_it(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let group = set_group(&app, "plan", json!({ "budget": "0.20", "budget_period": "day" })).await;
    assert_eq!((&group["limits"]["budget"], &group["limits"]["budget_period"]), (&json!("0.20"), &json!("day")));
    let (alice, alice_key) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let (bob, bob_key) = app.user_with_key_in("plan", "10.00", json!({})).await;
    let (_, outsider) = app.user_with_key("10.00").await;

    for key in [&alice_key, &bob_key] {
        assert_eq!([status_of(&app, key).await, status_of(&app, key).await], [200, 200]);
        let message = budget_refusal(app.v1(key, "/v1/chat/completions", &chat()).await).await;
        assert!(message.contains("daily budget of 0.20"), "{message}");
    }
    assert_eq!(status_of(&app, &outsider).await, 200, "another group's members are not limited");

    // Bob's own budget replaces the group's (his count so far stays: 0.20 of 0.30).
    let view = set_user_limits(&app, bob, json!({ "budget": "0.30", "budget_period": "day" })).await;
    assert_eq!(view["limits"]["own"]["budget"], "0.30", "{view}");
    assert_eq!(status_of(&app, &bob_key).await, 200);
    assert!(budget_refusal(app.v1(&bob_key, "/v1/chat/completions", &chat()).await).await.contains("0.30"));
    let view = set_user_limits(&app, bob, json!({ "budget": null })).await;
    assert_eq!(
        (&view["limits"]["own"]["budget"], &view["limits"]["effective"]["budget"]),
        (&Value::Null, &json!("0.20"))
    );

    // The group's budget raised: the next request of a member sees it.
    set_group(&app, "plan", json!({ "budget": "0.30" })).await;
    assert_eq!(status_of(&app, &alice_key).await, 200);
    budget_refusal(app.v1(&alice_key, "/v1/chat/completions", &chat()).await).await;

    // The next day: the count starts again for every member.
    let resets_at = user_view(&app, alice).await["limits"]["budget_resets_at"].as_i64().unwrap();
    let now = burncloud::domain::time::now_ms();
    assert!(resets_at > now && resets_at - now <= DAY_MS, "{resets_at} vs {now}");
    assert_eq!(resets_at % DAY_MS, 0, "midnight UTC");
    app.gateway.gateway().advance_budget_clock(resets_at - now + 1_000);
    for key in [&alice_key, &bob_key] {
        assert_eq!([status_of(&app, key).await, status_of(&app, key).await, status_of(&app, key).await], [200; 3]);
        budget_refusal(app.v1(key, "/v1/chat/completions", &chat()).await).await;
    }
    app.settled().await;
    for user in [alice, bob] {
        assert_eq!(app.balance(user).await, 10_000_000_000 - 6 * DIME, "two or three each day, as allowed");
    }
    app.assert_ledger_consistent().await;
}

/// A token-priced model: the hold is the estimate (prompt and `max_tokens`), the charge what the
/// upstream reports. The user's count is the sum of the charges, so a budget is spent by what
/// was used, not by what was promised.
async fn a_users_budget_counts_what_was_charged_not_what_was_held(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    app.set_price("m", json!({ "input": "1000", "output": "1000" })).await;
    let (user, key) = app.user_with_key("100.00").await;
    set_user_limits(&app, user, json!({ "budget": "50.00", "budget_period": "week" })).await;
    let big = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 4000 });
    for _ in 0..3 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &big).await.status(), 200);
    }
    app.settled().await;
    let charged: i64 = sqlx::query_scalar("SELECT CAST(SUM(cost) AS BIGINT) FROM request_logs WHERE user_id = $1")
        .bind(user)
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    // The count less what the gateway reserved on it ahead (its budget lease, given back later).
    let counted: i64 = sqlx::query_scalar(
        "SELECT budget_spent - COALESCE((SELECT CAST(SUM(amount) AS BIGINT) FROM budget_leases \
         WHERE owner = 'user' AND owner_id = $1), 0) FROM users WHERE id = $1",
    )
    .bind(user)
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert!(charged > 0, "the model costs something");
    assert_eq!(counted, charged, "the count is trued up to the charges");
    // Each hold was for 4000 output tokens at $1000/M: $4 > what was used; 12 holds would not fit
    // $50 were holds counted, but the charges are small, so a dozen more are served.
    for _ in 0..12 {
        assert_eq!(app.v1(&key, "/v1/chat/completions", &big).await.status(), 200);
    }
    app.assert_ledger_consistent().await;
}

/// The API refuses what is not a limit (and changes nothing); the console's group form and user
/// page set and show them; only operators reach either.
async fn user_and_group_limits_are_validated_shown_and_edited_in_the_console(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let (user, key) = app.user_with_key("10.00").await;
    for (bad, says) in [
        (json!({ "budget": "-1", "budget_period": "day" }), "limits.budget: must not be negative"),
        (json!({ "budget": "1.00" }), "limits.budget_period: required with budget"),
        (json!({ "budget": "1.00", "budget_period": "fortnight" }), "limits.budget_period: day, week or month"),
        (json!({ "rpm": 0 }), "limits.rpm: must be positive"),
    ] {
        let (status, body) =
            app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": bad.clone() }))).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains(says), "{bad}: {body}");
        let (status, body) = app
            .admin("PUT", "/api/admin/groups/fresh", Some(json!({ "multiplier": "1", "limits": bad.clone() })))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body.to_string().contains(says), "{bad}: {body}");
    }
    let (status, body) =
        app.admin("PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": { "rpx": 1 } }))).await;
    assert_eq!(status, 400, "{body}");
    let (status, groups) = app.admin("GET", "/api/admin/groups", None).await;
    assert_eq!(status, 200);
    assert!(!groups.to_string().contains("\"fresh\""), "a refused group is not created: {groups}");
    assert_eq!(user_view(&app, user).await["limits"]["own"]["budget"], Value::Null);

    // The console: the group form saves a budget, the user page shows and sets the user's own.
    let mut root = Browser::new(&app);
    root.log_in_as_root().await;
    let csrf = root.csrf("/admin/groups?edit=default").await;
    let (_, _, page) = root.get("/admin/groups?edit=default").await;
    assert!(page.contains("data-testid=\"limits-fields\""), "{page}");
    let form = [
        ("csrf", csrf.as_str()),
        ("name", "default"),
        ("multiplier", "1"),
        ("budget", "5"),
        ("budget_period", "week"),
        ("rpm", ""),
        ("rpd", ""),
        ("tpm", ""),
        ("concurrency", ""),
    ];
    let (status, location, _) = root.post("/admin/groups", &form).await;
    assert_eq!((status.as_u16(), location.as_str()), (303, "/admin/groups?done=saved"));
    let (_, _, page) = root.get("/admin/groups").await;
    assert!(page.contains("data-testid=\"group-budget\"") && page.contains("5.00"), "{page}");
    let view = user_view(&app, user).await;
    let effective = &view["limits"]["effective"];
    assert_eq!((&effective["budget"], &effective["budget_period"]), (&json!("5.00"), &json!("week")), "{view}");

    let path = format!("/admin/users/{user}/limits");
    let (_, _, page) = root.get(&format!("/admin/users/{user}")).await;
    assert!(
        page.contains("data-testid=\"limits-form\"") && page.contains("5.00"),
        "the group's budget in effect: {page}"
    );
    let (status, _, page) =
        root.post(&path, &[("csrf", &csrf), ("budget", "1.5"), ("budget_period", "day"), ("rpm", "x")]).await;
    assert_eq!(status.as_u16(), 400, "{page}");
    assert!(page.contains("Requests per minute: a whole number"), "{page}");
    assert_eq!(user_view(&app, user).await["limits"]["own"]["budget"], Value::Null, "a refused form changes nothing");
    let (status, _, _) = root.post(&path, &[("csrf", &csrf), ("budget", "1.5"), ("budget_period", "day")]).await;
    assert_eq!(status.as_u16(), 303);
    let view = user_view(&app, user).await;
    let own = &view["limits"]["own"];
    assert_eq!((&own["budget"], &own["budget_period"]), (&json!("1.50"), &json!("day")), "{view}");
    let message = {
        let mut spent = String::new();
        for _ in 0..16 {
            let response = app.v1(&key, "/v1/chat/completions", &chat()).await;
            if response.status() != 200 {
                spent = budget_refusal(response).await;
                break;
            }
        }
        spent
    };
    assert!(message.contains("daily budget of 1.50"), "the user's own budget binds: {message}");

    // A user (not an operator) reaches neither page.
    let mut visitor = Browser::new(&app);
    visitor.sign_up(&format!("v{}@example.com", burncloud::domain::token::random_alphanumeric(8).to_lowercase())).await;
    let csrf = visitor.csrf("/console/keys").await;
    let (status, _, _) = visitor.post(&path, &[("csrf", &csrf), ("budget", "999"), ("budget_period", "day")]).await;
    assert!(matches!(status.as_u16(), 403 | 404), "{status}");
    assert_eq!(user_view(&app, user).await["limits"]["own"]["budget"], "1.50");
    app.assert_ledger_consistent().await;
}

/// At 80 % of a group's $0.40 daily budget a member gets one email; more spending that period
/// sends no other; the next period's crossing sends one again.
async fn the_user_is_warned_once_per_period(backend: Backend) {
    let app = spawn_app_with(backend, smtp_env, |router| router).await;
    let _fake = serve_m(&app).await;
    set_group(&app, "plan", json!({ "budget": "0.40", "budget_period": "day" })).await;
    let email = address("user-budget");
    let new_user = json!({ "email": email, "password": "password123", "group": "plan" });
    let (status, user) = app.admin("POST", "/api/admin/users", Some(new_user)).await;
    assert_eq!(status, 201, "{user}");
    let user = user["id"].as_i64().unwrap();
    let credit = json!({ "amount": "10.00", "note": "test" });
    assert_eq!(app.admin("POST", &format!("/api/admin/users/{user}/credit"), Some(credit)).await.0, 200);
    let key = another_key(&app, user).await;
    let warn = || burncloud::services::keys::warnings::warn_budgets(&app.state);
    let spend = |n: usize| {
        let (app, key) = (&app, &key);
        async move {
            for _ in 0..n {
                assert_eq!(status_of(app, key).await, 200);
            }
            app.settled().await;
        }
    };

    spend(3).await;
    assert_eq!(warn().await.unwrap(), 0, "75 % is below the threshold");
    spend(1).await;
    assert_eq!(warn().await.unwrap(), 1, "100 %: told");
    assert_eq!(warn().await.unwrap(), 0, "once per period");
    let mails = sink().wait_for(&email, 1);
    assert!(mails[0].subject.contains("account's budget is nearly spent"), "{:?}", mails[0]);
    assert!(mails[0].text.contains("0.40 of 0.40") && mails[0].text.contains("daily"), "{}", mails[0].text);

    app.gateway.gateway().advance_budget_clock(DAY_MS);
    spend(4).await;
    assert_eq!(warn().await.unwrap(), 1, "the next period");
    assert_eq!(sink().wait_for(&email, 2).len(), 2);
    app.assert_ledger_consistent().await;
}

/// A bootstrap file's `limits` on a group and on a user: applied as through the API; a bad one
/// names its entry.
async fn bootstrap_files_set_group_and_user_budgets(backend: Backend) {
    let (app, _fake) = setup(backend).await;
    let text = r#"
[[groups]]
name = "team"
multiplier = "1"
limits = { budget = "20.00", budget_period = "month" }

[[users]]
email = "boot@example.com"
group = "team"
limits = { budget = "5.00", budget_period = "day" }
"#;
    let file: burncloud::services::bootstrap::BootstrapFile = toml::from_str(text).unwrap();
    burncloud::services::bootstrap::apply(&app.state, file).await.unwrap();
    let (_, groups) = app.admin("GET", "/api/admin/groups", None).await;
    let team = groups["data"].as_array().unwrap().iter().find(|g| g["name"] == "team").cloned().unwrap();
    assert_eq!((&team["limits"]["budget"], &team["limits"]["budget_period"]), (&json!("20.00"), &json!("month")));
    let user: i64 = sqlx::query_scalar("SELECT id FROM users WHERE email = 'boot@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let view = user_view(&app, user).await;
    assert_eq!(
        (&view["limits"]["own"]["budget"], &view["limits"]["effective"]["budget_period"]),
        (&json!("5.00"), &json!("day"))
    );

    let bad = "[[groups]]\nname = \"team\"\nmultiplier = \"1\"\nlimits = { budget = \"-1\" }\n";
    let file: burncloud::services::bootstrap::BootstrapFile = toml::from_str(bad).unwrap();
    let (entry, message) = burncloud::services::bootstrap::apply(&app.state, file).await.unwrap_err();
    assert!(
        entry.contains("groups[0] team") && message.contains("limits.budget: must not be negative"),
        "{entry}: {message}"
    );
}
