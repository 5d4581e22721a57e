//! `/console/logs`: a user's requests appear with tokens, cost, status and latency; filters and
//! the CSV export work; no one sees another user's rows.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(requests_show_in_the_usage_log_and_export);

async fn requests_show_in_the_usage_log_and_export(backend: Backend) {
    let app = spawn_app(backend).await;
    let good = FakeOpenAi::start(Behavior::default()).await;
    let bad = FakeOpenAi::start(Behavior::Status(500)).await;
    for (name, fake, model) in [("good", &good, "gpt-good"), ("bad", &bad, "gpt-bad")] {
        app.add_channel(
            json!({ "name": name, "type": "openai", "base_url": fake.base_url(name), "key": "k", "models": [model] }),
        )
        .await;
        app.set_price(model, json!({ "input": "2.50", "output": "10.00" })).await;
    }
    let mut browser = Browser::new(&app);
    browser.sign_up("logs@example.com").await;
    let user: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = 'logs@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (status, _) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": "1.00", "note": "test" })))
        .await;
    assert_eq!(status, 200);
    let csrf = browser.csrf("/console/keys").await;
    let (_, _, page) = browser.post("/console/keys", &[("name", "ci-key"), ("csrf", &csrf)]).await;
    let start = page.find("data-testid=\"new-key\">").unwrap() + 22;
    let key = page[start..start + page[start..].find('<').unwrap()].to_string();

    for model in ["gpt-good", "gpt-bad"] {
        let body = json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }] });
        app.v1(&key, "/v1/chat/completions", &body).await;
    }
    app.wait_for_logs(2).await;

    let (status, _, page) = browser.get("/console/logs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("gpt-good") && page.contains("gpt-bad") && page.contains("ci-key"), "{page}");
    assert!(page.contains("12 / 5") && page.contains("0.00008"), "tokens and cost of the success: {page}");
    assert!(page.contains("502 upstream_unavailable"), "the failure's status and class: {page}");
    assert!(page.contains("data-label=\"Tokens in / out\">12 / 5<"), "phones label each cell: {page}");
    assert!(page.contains("href=\"/console/logs\" aria-current=\"page\""), "the navigation marks the page");

    let (_, _, failed) = browser.get("/console/logs?status=error").await;
    assert!(failed.contains("gpt-bad") && !failed.contains("gpt-good"));
    let (_, _, by_model) = browser.get("/console/logs?model=gpt-good").await;
    assert!(by_model.contains("gpt-good") && !by_model.contains("gpt-bad"));
    let (_, _, future) = browser.get("/console/logs?from=2999-01-01").await;
    assert!(future.contains("No requests match."));
    let (status, _, page) = browser.get("/console/logs?from=yesterday").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("From: enter a date like 2026-11-27."), "{page}");

    let (status, _, csv) = browser.get("/console/logs.csv?status=ok").await;
    assert_eq!(status, StatusCode::OK);
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("time,key,model"), "{csv}");
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].contains(",ci-key,gpt-good,/v1/chat/completions,12,5,0.00008,200,"), "{csv}");

    // The dashboard counts them: today's spend, requests, and 14 bars of spend per day.
    let (_, _, dashboard) = browser.get("/console").await;
    assert!(dashboard.contains("data-testid=\"spend-today\">0.00008<"), "{dashboard}");
    assert!(dashboard.contains("data-testid=\"requests-today\">2<"), "{dashboard}");
    assert_eq!(dashboard.matches("<rect class=\"bar\"").count(), 14);
    let (status, _, fragment) = browser.get("/console/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert!(!fragment.contains("<html") && fragment.contains("hx-get=\"/console/stats\""), "{fragment}");
    assert!(fragment.contains("data-testid=\"balance\">0.99992<"), "{fragment}");

    // Another user sees none of it.
    let mut other = Browser::new(&app);
    other.sign_up("someone@example.com").await;
    let (_, _, page) = other.get("/console/logs").await;
    assert!(page.contains("No requests match.") && !page.contains("gpt-good"));
    let (_, _, csv) = other.get("/console/logs.csv").await;
    assert_eq!(csv.lines().count(), 1);
    // Logged out, the log is behind the login.
    let (status, location, _) = Browser::new(&app).get("/console/logs.csv").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
}
