//! The dashboard's charts: requests per minute over the last hour and tokens by model over 7
//! days show the user's own numbers after a few calls — older rows and other users' rows left
//! out — on the page and in the htmx fragment.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::console_key_limits::{chat, two_models, user_with_console_key};
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(charts_show_requests_per_minute_and_tokens_by_model);

/// A log row written straight into the table, `ago_ms` in the past.
async fn past_request(app: &TestApp, user: i64, model: &str, ago_ms: i64, tokens: (i64, i64)) {
    let at = burncloud::domain::time::now_ms() - ago_ms;
    sqlx::query(
        "INSERT INTO request_logs (request_id, created_at, user_id, endpoint, requested_model, prompt_tokens, \
         completion_tokens, cost, status_code) VALUES ($1, $2, $3, '/v1/chat/completions', $4, $5, $6, 0, 200)",
    )
    .bind(format!("old-{model}"))
    .bind(at)
    .bind(user)
    .bind(model)
    .bind(tokens.0)
    .bind(tokens.1)
    .execute(app.db.pool())
    .await
    .unwrap();
}

/// The value of `name="…"` in the first element carrying `marker`.
fn attribute(page: &str, marker: &str, name: &str) -> Option<i64> {
    let at = page.find(marker)?;
    let tag = &page[at..at + page[at..].find('>')?];
    let start = tag.find(&format!("{name}=\""))? + name.len() + 2;
    tag[start..start + tag[start..].find('"')?].parse().ok()
}

async fn charts_show_requests_per_minute_and_tokens_by_model(backend: Backend) {
    let app = spawn_app(backend).await;
    let _fake = two_models(&app).await;
    let mut browser = Browser::new(&app);
    let (_, key) = user_with_console_key(&app, &mut browser, "charts@example.com").await;
    let user: i64 = sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE email = 'charts@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    let (other, _) = app.user_with_key("0").await;

    // Before any call: an empty hour and the empty state for tokens.
    let (_, _, fragment) = browser.get("/console/stats").await;
    assert!(fragment.contains("data-testid=\"requests-hour\">0<"), "{fragment}");
    assert!(fragment.contains("data-testid=\"no-tokens\""), "{fragment}");

    for model in ["gpt-good", "gpt-good", "gpt-other", "gpt-good"] {
        assert_eq!(chat(&app, &key, model).await.0, 200);
    }
    past_request(&app, user, "gpt-good", 2 * 3_600_000, (100, 50)).await; // in the 7 days, not the hour
    past_request(&app, user, "gpt-ancient", 8 * 86_400_000, (1000, 1000)).await; // too old for both
    past_request(&app, other, "gpt-foreign", 0, (7, 7)).await; // someone else's
    app.wait_for_logs(7).await;

    for path in ["/console/stats", "/console"] {
        let (status, _, page) = browser.get(path).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(page.contains("<html"), path == "/console", "{path} is a page, the stats a fragment");
        // Requests per minute: 60 columns, this hour's 4 requests among them.
        assert!(page.contains("data-testid=\"requests-hour\">4<"), "{path}: {page}");
        assert_eq!(page.matches("<rect class=\"bar minute\"").count(), 60);
        let per_minute: i64 = page
            .split("<g data-requests=\"")
            .skip(1)
            .map(|piece| piece[..piece.find('"').unwrap()].parse::<i64>().unwrap())
            .sum();
        assert_eq!(per_minute, 4, "{page}");
        // Tokens by model over 7 days: 3 × (12 in, 5 out) + the row from 2 hours ago; 1 × (12, 5).
        assert_eq!(attribute(&page, "data-model=\"gpt-good\"", "data-input"), Some(136), "{page}");
        assert_eq!(attribute(&page, "data-model=\"gpt-good\"", "data-output"), Some(65));
        assert_eq!(attribute(&page, "data-model=\"gpt-other\"", "data-input"), Some(12));
        assert_eq!(attribute(&page, "data-model=\"gpt-other\"", "data-output"), Some(5));
        assert!(page.find("data-model=\"gpt-good\"") < page.find("data-model=\"gpt-other\""), "most tokens first");
        assert!(page.contains("gpt-good: 136 input tokens / 65 output tokens"), "the tooltip: {page}");
        assert!(!page.contains("gpt-ancient") && !page.contains("gpt-foreign"), "{page}");
        // Today: the 4 calls, and the row from 2 hours ago unless that was yesterday (UTC).
        let today = ["4", "5"].map(|n| format!("data-testid=\"requests-today\">{n}<"));
        assert!(today.iter().any(|t| page.contains(t.as_str())), "{page}");
    }

    // Another user sees none of it.
    let mut stranger = Browser::new(&app);
    stranger.sign_up("stranger@example.com").await;
    let (_, _, fragment) = stranger.get("/console/stats").await;
    assert!(fragment.contains("data-testid=\"requests-hour\">0<") && fragment.contains("data-testid=\"no-tokens\""));
    assert!(!fragment.contains("gpt-good"));
}
