//! Console sign-up, log-in and log-out: sessions in the database, rotated at login, ended at
//! logout; CSRF on every form; one answer for every failed login; user input escaped.

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::support::helpers::{Backend, TestApp, spawn_app};

db_tests!(
    signing_up_logs_in_and_shows_the_dashboard,
    login_failures_look_alike_and_logout_ends_the_session,
    forms_without_the_session_token_are_refused,
    repeated_failures_slow_that_client_for_that_account,
    self_service_ignores_role_group_and_balance_fields,
);

/// A browser-like client: keeps the session cookie, does not follow redirects.
pub struct Browser<'a> {
    /// Where the site is (`http://127.0.0.1:port`).
    base: String,
    _app: std::marker::PhantomData<&'a TestApp>,
    pub client: reqwest::Client,
    /// The session cookie (`burncloud_session=…`).
    pub cookie: Option<String>,
    /// Every other cookie the site set (language, theme), by name.
    pub others: std::collections::BTreeMap<String, String>,
}

impl<'a> Browser<'a> {
    pub fn new(app: &'a TestApp) -> Self {
        Self::at(app.url(""))
    }

    /// A browser on the site at `base` (a server started as a process of its own).
    pub fn at(base: String) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { base, _app: std::marker::PhantomData, client, cookie: None, others: Default::default() }
    }

    fn keep_cookie(&mut self, response: &reqwest::Response) {
        for set in response.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            let Some((name, value)) = set.split(';').next().and_then(|pair| pair.split_once('=')) else { continue };
            if name == "burncloud_session" {
                self.cookie = Some(format!("{name}={value}"));
            } else if set.contains("Max-Age=0") {
                self.others.remove(name);
            } else {
                self.others.insert(name.to_string(), value.to_string());
            }
        }
    }

    pub async fn get(&mut self, path: &str) -> (StatusCode, String, String) {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> (StatusCode, String, String) {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Sends with the session cookie, keeps the one the answer sets: `(status, Location, body)`.
    pub async fn send(&mut self, mut request: reqwest::RequestBuilder) -> (StatusCode, String, String) {
        let others = self.others.iter().map(|(name, value)| format!("{name}={value}"));
        let cookies: Vec<String> = self.cookie.clone().into_iter().chain(others).collect();
        if !cookies.is_empty() {
            request = request.header(COOKIE, cookies.join("; "));
        }
        let response = request.send().await.unwrap();
        self.keep_cookie(&response);
        let location = response.headers().get(LOCATION).map(|l| l.to_str().unwrap().to_string()).unwrap_or_default();
        (response.status(), location, response.text().await.unwrap())
    }

    /// Signs up (and so logs in) a new account.
    pub async fn sign_up(&mut self, email: &str) {
        let csrf = self.csrf("/signup").await;
        let (status, _, _) =
            self.post("/signup", &[("email", email), ("password", "a fine password"), ("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
    }

    /// Logs in (asserting it worked).
    pub async fn log_in(&mut self, email: &str, password: &str) {
        let csrf = self.csrf("/login").await;
        let (status, location, body) =
            self.post("/login", &[("email", email), ("password", password), ("csrf", &csrf)]).await;
        assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"), "{body}");
    }

    /// Logs in as the root admin the test app creates.
    pub async fn log_in_as_root(&mut self) {
        self.log_in(crate::support::helpers::ADMIN_EMAIL, crate::support::helpers::ADMIN_PASSWORD).await;
    }

    /// Every cookie the browser holds, as a `Cookie` header (the session's and the anonymous
    /// CSRF cookie among them).
    pub fn cookies(&self) -> String {
        let others = self.others.iter().map(|(name, value)| format!("{name}={value}"));
        self.cookie.clone().into_iter().chain(others).collect::<Vec<_>>().join("; ")
    }

    /// The CSRF token of the form on `path`.
    pub async fn csrf(&mut self, path: &str) -> String {
        let (_, _, page) = self.get(path).await;
        let start = page.find("name=\"csrf\" value=\"").expect("a form with a csrf field") + 19;
        page[start..start + page[start..].find('"').unwrap()].to_string()
    }
}

async fn signing_up_logs_in_and_shows_the_dashboard(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut browser = Browser::new(&app);
    let (status, location, _) = browser.get("/console").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"), "the console needs a login");

    let response = browser.client.get(app.url("/signup")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let cookie = response.headers()[SET_COOKIE].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain http in tests: {cookie}");

    let csrf = browser.csrf("/signup").await;
    let before = browser.cookie.clone();
    let form = [("email", "new.user@example.com"), ("password", "correct horse battery"), ("csrf", csrf.as_str())];
    let (status, location, _) = browser.post("/signup", &form).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
    assert_ne!(browser.cookie, before, "a new session id after signing in");
    let (status, _, page) = browser.get("/console").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("new.user@example.com") && page.contains("0.00"), "{page}");

    // The same email again: refused, with the form kept.
    let mut other = Browser::new(&app);
    let csrf = other.csrf("/signup").await;
    let form = [("email", "new.user@example.com"), ("password", "another password"), ("csrf", csrf.as_str())];
    let (status, _, page) = other.post("/signup", &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("already exists"), "{page}");
}

async fn login_failures_look_alike_and_logout_ends_the_session(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut setup = Browser::new(&app);
    let csrf = setup.csrf("/signup").await;
    setup.post("/signup", &[("email", "ada@example.com"), ("password", "analytical engine"), ("csrf", &csrf)]).await;

    let mut browser = Browser::new(&app);
    let mut answers = Vec::new();
    for (email, password) in [("ada@example.com", "wrong password!"), ("nobody@example.com", "analytical engine")] {
        let csrf = browser.csrf("/login").await;
        let (status, _, page) =
            browser.post("/login", &[("email", email), ("password", password), ("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("Incorrect email or password."));
        answers.push(page.replace(&csrf, "").replace(email, ""));
    }
    assert_eq!(answers[0], answers[1], "an unknown email and a wrong password answer alike");

    // Input is escaped when the form comes back.
    let csrf = browser.csrf("/login").await;
    let hostile = "<img src=x onerror=alert(1)>";
    let (_, _, page) = browser.post("/login", &[("email", hostile), ("password", "x"), ("csrf", &csrf)]).await;
    assert!(!page.contains(hostile) && page.contains("&#60;img src=x onerror=alert(1)&#62;"), "{page}");

    let csrf = browser.csrf("/login").await;
    let (status, location, _) = browser
        .post("/login", &[("email", "ada@example.com"), ("password", "analytical engine"), ("csrf", &csrf)])
        .await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console"));
    let (_, _, page) = browser.get("/console").await;
    assert!(page.contains("ada@example.com"));
    let csrf = {
        let start = page.find("name=\"csrf\" value=\"").unwrap() + 19;
        page[start..start + page[start..].find('"').unwrap()].to_string()
    };
    let session = browser.cookie.clone();
    let (status, location, _) = browser.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    // The old session cookie is worthless now, even replayed.
    browser.cookie = session;
    let (status, location, _) = browser.get("/console").await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
}

async fn forms_without_the_session_token_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut attacker = Browser::new(&app);
    let foreign = attacker.csrf("/signup").await;
    let mut victim = Browser::new(&app);
    victim.get("/signup").await;
    for token in ["", foreign.as_str()] {
        let form = [("email", "csrf@example.com"), ("password", "long enough pw"), ("csrf", token)];
        let (status, _, _) = victim.post("/signup", &form).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "token {token:?}");
    }
    let (status, _, _) = victim.post("/login", &[("email", "csrf@example.com"), ("password", "long enough pw")]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = victim.post("/logout", &[]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let count: i64 = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users WHERE email = 'csrf@example.com'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(count, 0, "nothing changed");

    // Every console form, logged in, without the token: refused before any handler runs.
    victim.sign_up("victim@example.com").await;
    let posts = burncloud::app::route_table().into_iter().filter(|r| r.method == "POST").collect::<Vec<_>>();
    let console_posts = posts.iter().filter(|r| !r.path.starts_with("/v1") && !r.path.starts_with("/api"));
    let mut checked = 0;
    for route in console_posts {
        let path = route.path.replace("{id}", "1");
        let (status, _, _) = victim.post(&path, &[("name", "x"), ("csrf", "wrong")]).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path} without the token");
        checked += 1;
    }
    assert!(checked >= 8, "the console's forms were found: {checked}");

    // htmx sends the token as a header instead of a field.
    let token = victim.csrf("/console/keys").await;
    let htmx = |token: &str| {
        let request = victim.client.post(app.url("/console/keys")).header("x-csrf-token", token.to_string());
        let request = request.header("content-type", "application/x-www-form-urlencoded").body("name=by-htmx");
        request.header(COOKIE, victim.cookie.clone().unwrap())
    };
    assert_eq!(htmx("wrong").send().await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(htmx(&token).send().await.unwrap().status(), StatusCode::OK);
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE name = 'by-htmx'")
        .fetch_one(app.db.pool())
        .await
        .unwrap();
    assert_eq!(keys, 1, "exactly the request with the right header made a key");
}

async fn repeated_failures_slow_that_client_for_that_account(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut setup = Browser::new(&app);
    for email in ["target@example.com", "other@example.com"] {
        let csrf = setup.csrf("/signup").await;
        setup.post("/signup", &[("email", email), ("password", "the right one!"), ("csrf", &csrf)]).await;
    }
    let mut browser = Browser::new(&app);
    for _ in 0..5 {
        let csrf = browser.csrf("/login").await;
        let form = [("email", "target@example.com"), ("password", "guess guess"), ("csrf", csrf.as_str())];
        assert_eq!(browser.post("/login", &form).await.0, StatusCode::UNAUTHORIZED);
    }
    let csrf = browser.csrf("/login").await;
    let form = [("email", "Target@Example.com"), ("password", "the right one!"), ("csrf", csrf.as_str())];
    let (status, _, body) = browser.post("/login", &form).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "even the right password waits: {body}");
    assert!(body.contains("Try again in"));
    // Another account from the same client is not affected.
    let form = [("email", "other@example.com"), ("password", "the right one!"), ("csrf", csrf.as_str())];
    assert_eq!(browser.post("/login", &form).await.1, "/console");

    // Signing up counts too: the same address over and over is slowed down.
    let mut spammer = Browser::new(&app);
    for attempt in 1..=6 {
        let csrf = spammer.csrf("/signup").await;
        let form = [("email", "spam.target@example.com"), ("password", "the right one!"), ("csrf", csrf.as_str())];
        let (status, _, body) = spammer.post("/signup", &form).await;
        if attempt <= 5 {
            assert!(status.is_success() || status.is_redirection() || status == StatusCode::BAD_REQUEST, "{attempt}");
        } else {
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        }
    }
}

async fn self_service_ignores_role_group_and_balance_fields(backend: Backend) {
    let app = spawn_app(backend).await;
    let (status, _) = app.admin("PUT", "/api/admin/groups/vip", Some(serde_json::json!({ "multiplier": "0.1" }))).await;
    assert_eq!(status, 200);
    let mut browser = Browser::new(&app);
    let csrf = browser.csrf("/signup").await;
    let form = [
        ("email", "sneaky@example.com"),
        ("password", "a fine password"),
        ("role", "admin"),
        ("group", "vip"),
        ("balance", "1000"),
        ("csrf", csrf.as_str()),
    ];
    let (status, _, _) = browser.post("/signup", &form).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let row: (String, String, i64) = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT role, group_name, balance FROM users WHERE email = 'sneaky@example.com'",
    )
    .fetch_one(app.db.pool())
    .await
    .unwrap();
    assert_eq!(row, ("user".to_string(), "default".to_string(), 0));
}
