//! Test helpers: `spawn_app` on 127.0.0.1:0 with its own database, the Postgres database
//! factory, and the route recorder behind the route-coverage check.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use burncloud::app::Application;
use burncloud::config::Config;
use burncloud::db::Db;
use serde_json::{Value, json};
use sqlx::{Connection, Row};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Which database a test runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "correct-horse-battery";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef-0123456789";
const SECRET_KEY: &str = "test-secret-key-0123456789abcdef-0123456789";

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub db: Db,
    pub state: burncloud::state::AppState,
    /// The gateway's own parts (admission, the upstream client).
    pub gateway: burncloud::gateway::Gateway,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<std::io::Result<()>>,
    /// Holds the data dir (and the SQLite file) for as long as the app lives.
    pub _data_dir: Option<TempDir>,
}

impl TestApp {
    /// Runs a built app in the background.
    pub fn serve(app: Application, data_dir: Option<TempDir>) -> TestApp {
        let port = app.port();
        let db = app.state().db().clone();
        let state = app.state().clone();
        let gateway = app.gateway().clone();
        let shutdown = app.shutdown_token();
        let server = tokio::spawn(app.run_until_stopped());
        TestApp {
            address: format!("http://127.0.0.1:{port}"),
            port,
            client: reqwest::Client::new(),
            db,
            state,
            gateway,
            shutdown,
            server,
            _data_dir: data_dir,
        }
    }

    /// Stops the app the way a crash would: no graceful shutdown, nothing given back or drained.
    pub async fn crash(self) {
        self.server.abort();
        let _ = self.server.await;
        self.shutdown.cancel();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    /// A management API call with the admin token: `(status, JSON body or Null)`.
    pub async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path)).bearer_auth(ADMIN_TOKEN);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a channel through the API; panics unless it is created.
    pub async fn add_channel(&self, channel: Value) -> i64 {
        let (status, body) = self.admin("POST", "/api/admin/channels", Some(channel)).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_i64().unwrap()
    }

    pub async fn set_price(&self, model: &str, price: Value) {
        let (status, body) = self.admin("PUT", &format!("/api/admin/prices/{model}"), Some(price)).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A new user in `group` with `balance` (decimal) and one key: `(user id, key)`.
    pub async fn user_with_key(&self, balance: &str) -> (i64, String) {
        self.user_with_key_in("default", balance, json!({})).await
    }

    pub async fn user_with_key_in(&self, group: &str, balance: &str, key_options: Value) -> (i64, String) {
        let email = format!("u{}@example.com", burncloud::domain::token::random_alphanumeric(10).to_lowercase());
        let (status, user) = self
            .admin(
                "POST",
                "/api/admin/users",
                Some(json!({ "email": email, "password": "password123", "group": group })),
            )
            .await;
        assert_eq!(status, 201, "{user}");
        let id = user["id"].as_i64().unwrap();
        if balance != "0" {
            let (status, body) = self
                .admin(
                    "POST",
                    &format!("/api/admin/users/{id}/credit"),
                    Some(json!({ "amount": balance, "note": "test" })),
                )
                .await;
            assert_eq!(status, 200, "{body}");
        }
        let (status, key) = self.admin("POST", &format!("/api/admin/users/{id}/keys"), Some(key_options)).await;
        assert_eq!(status, 201, "{key}");
        (id, key["key"].as_str().unwrap().to_string())
    }

    /// Waits until every request answered so far is settled (settlement follows the answer).
    pub async fn settled(&self) {
        for _ in 0..500 {
            if self.state.pending_settlements() == 0 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("settlements still pending after 5 s");
    }

    /// The balance in nano-units, once every answered request is settled.
    pub async fn balance(&self, user_id: i64) -> i64 {
        self.settled().await;
        burncloud::db::ledger::balance(self.db.pool(), user_id).await.unwrap().unwrap()
    }

    /// The books: every balance equals the sum of its ledger rows, and none is negative.
    pub async fn assert_ledger_consistent(&self) {
        self.settled().await;
        let bad = burncloud::db::ledger::inconsistent_users(self.db.pool()).await.unwrap();
        assert!(bad.is_empty(), "ledger and balances disagree (user, balance, ledger sum): {bad:?}");
    }

    /// POSTs a JSON body to a `/v1` path with a key.
    pub async fn v1(&self, key: &str, path: &str, body: &Value) -> reqwest::Response {
        self.client.post(self.url(path)).bearer_auth(key).json(body).send().await.unwrap()
    }

    /// Waits until the request log has `n` rows (settlement after a disconnect is in the background).
    pub async fn wait_for_logs(&self, n: i64) {
        for _ in 0..200 {
            let count: i64 =
                sqlx::query("SELECT COUNT(*) FROM request_logs").fetch_one(self.db.pool()).await.unwrap().get(0);
            if count >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("fewer than {n} request log rows after 5 s");
    }
}

/// An environment for `Config::load_from`: a test's settings, nothing from the real environment.
pub fn test_env(data_dir: &Path, database_url: &str) -> BTreeMap<String, String> {
    [
        ("BURNCLOUD_LISTEN", "127.0.0.1:0".to_string()),
        ("BURNCLOUD_DATA_DIR", data_dir.display().to_string()),
        ("DATABASE_URL", database_url.to_string()),
        ("BURNCLOUD_SECRET_KEY", SECRET_KEY.to_string()),
        ("BURNCLOUD_ADMIN_EMAIL", ADMIN_EMAIL.to_string()),
        ("BURNCLOUD_ADMIN_PASSWORD", ADMIN_PASSWORD.to_string()),
        ("BURNCLOUD_ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
        ("BURNCLOUD_DATABASE_MAX_CONNECTIONS", "5".to_string()),
        ("BURNCLOUD_LOG", "warn".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, |_| {}, |router| router).await
}

/// Spawns the app with extra settings and an optional wrapper around its router.
pub async fn spawn_app_with(
    backend: Backend,
    settings: impl FnOnce(&mut BTreeMap<String, String>),
    customize: impl FnOnce(Router) -> Router,
) -> TestApp {
    init_test_logging();
    let data_dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(backend, data_dir.path()).await;
    let mut env = test_env(data_dir.path(), &database_url);
    settings(&mut env);
    let config = Config::load_from(None, |name| env.get(name).cloned()).expect("test config");
    let app = Application::build_with(config, |router| record_routes(customize(router)))
        .await
        .expect("the app failed to start");
    TestApp::serve(app, Some(data_dir))
}

/// Spawns the app with extra settings (environment variables and their values).
pub async fn spawn_app_env(backend: Backend, settings: &[(&str, &str)]) -> TestApp {
    spawn_app_with(
        backend,
        |env| {
            for (name, value) in settings {
                env.insert((*name).to_string(), (*value).to_string());
            }
        },
        |router| router,
    )
    .await
}

/// Serves a fake upstream (or any test server) on a free loopback port; the port.
pub async fn serve_locally(app: Router) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// `TEST_LOG=1` shows the app's logs while debugging a test.
fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt().with_env_filter("debug,sqlx=warn").with_test_writer().try_init();
    }
}

/// A database URL no other test uses: a file in `dir` for SQLite, a new database for Postgres.
pub async fn fresh_database_url(backend: Backend, dir: &Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/burncloud.db", dir.display()),
        Backend::Postgres => {
            let server = std::env::var("BURNCLOUD_TEST_DATABASE_URL").unwrap_or_else(|_| {
                panic!(
                    "BURNCLOUD_TEST_DATABASE_URL is not set. Postgres tests never skip: run the suite with \
                     scripts/test.sh (it starts a throwaway Postgres), or point the variable at a server, \
                     e.g. postgres://postgres@127.0.0.1:5432/postgres"
                )
            });
            let name = format!("bc_test_{}", burncloud::domain::token::random_alphanumeric(16).to_lowercase());
            let mut conn = sqlx::postgres::PgConnection::connect(&server)
                .await
                .unwrap_or_else(|e| panic!("cannot connect to BURNCLOUD_TEST_DATABASE_URL: {e}"));
            sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut conn).await.unwrap();
            let _ = conn.close().await;
            let mut url = url::Url::parse(&server).unwrap();
            url.set_path(&format!("/{name}"));
            url.to_string()
        }
    }
}

// ---- route coverage -------------------------------------------------------------------------

static SEEN_ROUTES: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(Default::default);

/// Where this run's route records go: one file per test process, under the run's id.
pub fn route_coverage_dir() -> PathBuf {
    let run = std::env::var("BURNCLOUD_TEST_RUN_ID").unwrap_or_else(|_| "adhoc".into());
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("route-coverage").join(run)
}

fn record_routes(router: Router) -> Router {
    router.layer(axum::middleware::from_fn(record_route))
}

async fn record_route(request: Request, next: Next) -> Response {
    if let Some(path) = request.extensions().get::<MatchedPath>() {
        let key = format!("{} {}", request.method(), path.as_str());
        // The record is written while the lock is held, as one whole line: `writeln!` issues the
        // text and its newline as separate writes, and two tests' first calls racing on the same
        // file once fused into "GET /GET /console", losing both routes.
        let mut seen = SEEN_ROUTES.lock().unwrap();
        if seen.insert(key.clone()) {
            let dir = route_coverage_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join(format!("{}.txt", std::process::id())))
                .unwrap();
            file.write_all(format!("{key}\n").as_bytes()).unwrap();
        }
        drop(seen);
    }
    next.run(request).await
}
