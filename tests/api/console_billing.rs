//! `/console/billing`: redeeming a code credits it exactly once — also when 20 users race for
//! it — with its ledger row; invalid, used and expired codes change nothing.

use reqwest::StatusCode;

use crate::console_auth::Browser;
use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(a_code_is_redeemed_once_with_its_ledger_row, twenty_users_racing_for_one_code_credit_it_once);

pub async fn add_code(app: &TestApp, code: &str, amount: i64, expires_at: Option<i64>) {
    sqlx::query("INSERT INTO redemption_codes (code, amount, expires_at, created_at) VALUES ($1, $2, $3, $4)")
        .bind(code)
        .bind(amount)
        .bind(expires_at)
        .bind(burncloud::domain::time::now_ms())
        .execute(app.db.pool())
        .await
        .unwrap();
}

async fn a_code_is_redeemed_once_with_its_ledger_row(backend: Backend) {
    let app = spawn_app(backend).await;
    add_code(&app, "GIFT-FIVE", 5_000_000_000, None).await;
    add_code(&app, "GIFT-OLD", 1_000_000_000, Some(1)).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("redeemer@example.com").await;
    let csrf = browser.csrf("/console/billing").await;

    let (status, _, page) = browser.post("/console/billing/redeem", &[("code", " GIFT-FIVE "), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Redeemed: 5.00 added"), "{page}");
    assert!(page.contains("data-testid=\"balance\">5.00<") && page.contains("Redeemed code"), "{page}");

    for code in ["GIFT-FIVE", "GIFT-OLD", "NO-SUCH-CODE"] {
        let (status, _, page) = browser.post("/console/billing/redeem", &[("code", code), ("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{code}");
        assert!(page.contains("not valid, has expired or was already used"), "{code}");
    }
    let (status, _, _) = browser.post("/console/billing/redeem", &[("code", "GIFT-FIVE")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF token, no redemption");
    let (_, _, page) = browser.get("/console/billing").await;
    assert!(page.contains("data-testid=\"balance\">5.00<"), "credited once");
    assert!(page.contains("href=\"/console/billing\" aria-current=\"page\""), "the console navigation marks the page");

    // In Chinese, the page and the handler's messages are translated.
    browser.post("/preferences", &[("lang", "zh"), ("next", "/console/billing"), ("csrf", &csrf)]).await;
    let (status, _, page) = browser.post("/console/billing/redeem", &[("code", "NO-SUCH-CODE"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("该兑换码无效、已过期或已被使用。") && page.contains("兑换码充值"), "{page}");
    add_code(&app, "GIFT-ZH", 1_000_000_000, None).await;
    let (_, _, page) = browser.post("/console/billing/redeem", &[("code", "GIFT-ZH"), ("csrf", &csrf)]).await;
    assert!(
        page.contains("兑换成功：1.00 已计入你的余额。") && page.contains("data-testid=\"balance\">6.00<"),
        "{page}"
    );
    app.assert_ledger_consistent().await;
}

async fn twenty_users_racing_for_one_code_credit_it_once(backend: Backend) {
    let app = spawn_app(backend).await;
    add_code(&app, "RACE-ME", 2_000_000_000, None).await;
    let mut browsers = Vec::new();
    for i in 0..20 {
        let mut browser = Browser::new(&app);
        browser.sign_up(&format!("racer{i}@example.com")).await;
        let csrf = browser.csrf("/console/billing").await;
        browsers.push((browser, csrf));
    }
    let attempts = browsers.iter_mut().map(|(browser, csrf)| {
        let csrf = csrf.clone();
        async move { browser.post("/console/billing/redeem", &[("code", "RACE-ME"), ("csrf", &csrf)]).await.0 }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::BAD_REQUEST).count(), 19);
    let total: i64 = sqlx::query_scalar::<_, i64>(
        "SELECT CAST(COALESCE(SUM(balance), 0) AS BIGINT) FROM users WHERE email LIKE 'racer%'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(total, 2_000_000_000, "one credit in all");
    let rows: i64 = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ledger WHERE kind = 'redemption'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
    app.assert_ledger_consistent().await;
}
