//! The public pages: `/pricing` at the viewer's group prices, searchable; `/quickstart` filled in
//! with the site's own address; the landing, pricing and quick start pages in Chinese.

use reqwest::StatusCode;
use serde_json::json;

use crate::console_auth::Browser;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

db_tests!(
    pricing_shows_the_viewers_group_prices,
    quickstart_names_this_site,
    language_follows_the_browser_then_the_choice,
    public_pages_render_in_chinese,
);

async fn pricing_shows_the_viewers_group_prices(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let (status, _) = app.admin("PUT", "/api/admin/groups/half", Some(json!({ "multiplier": "0.5" }))).await;
    assert_eq!(status, 200);
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                            "models": ["gpt-test", "claude-like"], "groups": ["default", "half"] }))
        .await;
    app.set_price("gpt-test", json!({ "input": "2.50", "output": "10.00" })).await;
    app.set_price("claude-like", json!({ "input": "3.00", "output": "15.00" })).await;

    let mut visitor = Browser::new(&app);
    let (status, _, page) = visitor.get("/pricing").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("gpt-test") && page.contains("2.50") && page.contains("10.00"), "{page}");
    let (_, _, page) = visitor.get("/pricing?q=GPT").await;
    assert!(page.contains("gpt-test") && !page.contains("claude-like"), "search is case-insensitive");
    let (_, _, page) = visitor.get("/pricing?q=zzz").await;
    assert!(page.contains("No models match."));

    // A member of the half-price group sees half prices.
    let body = json!({ "email": "half@example.com", "password": "a fine password", "group": "half" });
    assert_eq!(app.admin("POST", "/api/admin/users", Some(body)).await.0, 201);
    let mut member = Browser::new(&app);
    let csrf = member.csrf("/login").await;
    let form = [("email", "half@example.com"), ("password", "a fine password"), ("csrf", csrf.as_str())];
    assert_eq!(member.post("/login", &form).await.0, StatusCode::SEE_OTHER);
    let (_, _, page) = member.get("/pricing").await;
    assert!(page.contains("<strong>half</strong>") && page.contains("1.25") && page.contains("5.00"), "{page}");
}

async fn quickstart_names_this_site(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, _, page) = Browser::new(&app).get("/quickstart").await;
    assert_eq!(status, StatusCode::OK);
    let base = format!("{}/v1", app.address.replace("127.0.0.1", "localhost"));
    let shown = page.split("data-testid=\"api-base\">").nth(1).and_then(|s| s.split('<').next()).unwrap();
    assert!(shown == base || shown == format!("{}/v1", app.address), "{shown}");
    let site = shown.trim_end_matches("/v1");
    // Claude Code's environment and Codex's provider block, filled in with this site's address.
    let claude = page.split("data-testid=\"claude-code-env\">").nth(1).and_then(|s| s.split("</code>").next()).unwrap();
    for line in [
        format!("export ANTHROPIC_BASE_URL={site}\n"),
        "export ANTHROPIC_AUTH_TOKEN=sk-".into(),
        "export ANTHROPIC_MODEL=".into(),
        "export ANTHROPIC_DEFAULT_HAIKU_MODEL=".into(),
    ] {
        assert!(claude.contains(&line), "Claude Code settings lack {line:?}: {claude}");
    }
    let codex = page.split("data-testid=\"codex-config\">").nth(1).and_then(|s| s.split("</code>").next()).unwrap();
    for line in [
        "model_provider = \"burncloud\"".to_string(),
        "[model_providers.burncloud]".into(),
        format!("base_url = \"{shown}\""),
        "env_key = \"BURNCLOUD_API_KEY\"".into(),
        "wire_api = \"responses\"".into(),
        "web_search = \"disabled\"".into(),
    ] {
        assert!(codex.contains(&line), "Codex settings lack {line:?}: {codex}");
    }
    assert!(page.contains("export BURNCLOUD_API_KEY=sk-"), "{page}");
}

async fn language_follows_the_browser_then_the_choice(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut visitor = Browser::new(&app);
    let (_, _, page) = visitor.get("/login").await;
    assert!(page.contains("<html lang=\"en\"") && page.contains(">Log in<"), "English by default");
    let chinese = |visitor: &Browser| {
        let request = visitor.client.get(app.url("/login")).header("accept-language", "zh-CN,zh;q=0.9,en;q=0.5");
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    let page = chinese(&visitor).await;
    assert!(page.contains("<html lang=\"zh-CN\"") && page.contains(">登录<"), "from Accept-Language: {page}");

    // The switch: a form, kept in a cookie, back to the same page; the choice beats the header.
    let csrf = visitor.csrf("/login").await;
    let (status, location, _) =
        visitor.post("/preferences", &[("lang", "zh"), ("next", "/pricing"), ("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/pricing"));
    let (_, _, page) = visitor.get("/pricing").await;
    assert!(page.contains("<html lang=\"zh-CN\"") && page.contains("价格"), "{page}");
    visitor.post("/preferences", &[("lang", "en"), ("theme", "dark"), ("next", "/login"), ("csrf", &csrf)]).await;
    let (_, _, page) = visitor.get("/login").await;
    assert!(page.contains("<html lang=\"en\" data-theme=\"dark\">"), "English and dark: {page}");

    // Only paths on this site are followed back.
    for next in ["//evil.example/", "https://evil.example/", "/\\evil.example"] {
        let (_, location, _) = visitor.post("/preferences", &[("lang", "en"), ("next", next), ("csrf", &csrf)]).await;
        assert_eq!(location, "/", "{next}");
    }
}

/// With `Accept-Language: zh-CN`, the landing, pricing and quick start pages are in Chinese:
/// headings, buttons, table headers, empty states and the layout around them.
async fn public_pages_render_in_chinese(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({ "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "k",
                            "models": ["gpt-test"] }))
        .await;
    app.set_price("gpt-test", json!({ "input": "2.50", "output": "10.00" })).await;
    let visitor = Browser::new(&app);
    let get = |path: &str| {
        let request = visitor.client.get(app.url(path)).header("accept-language", "zh-CN,zh;q=0.9");
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            response.text().await.unwrap()
        }
    };

    let landing = get("/").await;
    assert!(landing.contains("<html lang=\"zh-CN\""), "{landing}");
    for text in ["一个 API，调用所有模型", "免费注册", "查看价格", "三步即可开始", "按量付费", ">快速开始<"]
    {
        assert!(landing.contains(text), "landing lacks {text}: {landing}");
    }
    assert!(!landing.contains("Create a free account") && !landing.contains(">Pricing<"), "{landing}");

    let pricing = get("/pricing").await;
    for text in ["<h1>价格</h1>", "搜索模型", "placeholder=\"例如 gpt、claude\"", "输入 / 百万 Token", "每次请求"]
    {
        assert!(pricing.contains(text), "pricing lacks {text}: {pricing}");
    }
    assert!(pricing.contains("gpt-test") && pricing.contains("data-label=\"输出 / 百万 Token\""), "{pricing}");
    let empty = get("/pricing?q=zzz").await;
    assert!(empty.contains("没有匹配的模型。") && !empty.contains("No models match."), "{empty}");

    let quickstart = get("/quickstart").await;
    for text in ["<h1>快速开始</h1>", "创建 API 密钥", "设置 Base URL", "示例代码", "# 你的 API 密钥"]
    {
        assert!(quickstart.contains(text), "quick start lacks {text}: {quickstart}");
    }
    assert!(quickstart.contains("data-testid=\"api-base\">"), "the base URL is still marked: {quickstart}");
}
