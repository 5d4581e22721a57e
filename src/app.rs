//! Application start-up and shutdown: `Application::build(config)` prepares everything (data
//! dir, secret key, database and migrations, first admin, bound listener) and
//! `run_until_stopped` serves until SIGINT/SIGTERM or [`Application::shutdown_token`], then
//! drains in-flight requests, streams and background tasks within the configured grace period.
//! Tests bind port 0 and read the real port from [`Application::port`].

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use url::Url;

use crate::billing::batch::Batcher;
use crate::billing::lease::{self, Leases};
use crate::config::Config;
use crate::db::{self, Db};
use crate::gateway::{Gateway, GatewayState};
use crate::routes::{Route, Routes};
use crate::secret_key::{self, Source};
use crate::services::accounts::{self, RootAdmin};
use crate::services::keys::cache::KeyCache;
use crate::services::routing::Routing;
use crate::services::{bootstrap, changes, channels};
use crate::state::AppState;
use crate::{api, console, gateway, ops, telemetry};

/// Why the app could not start. Each message names the setting to fix.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("BURNCLOUD_DATA_DIR: cannot create {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    SecretKey(#[from] secret_key::SecretKeyError),
    #[error("DATABASE_URL: {0}")]
    Database(#[from] db::ConnectError),
    #[error("DATABASE_URL: migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("BURNCLOUD_ADMIN_EMAIL: creating the first admin failed: {0}")]
    Admin(#[from] accounts::AccountError),
    #[error("DATABASE_URL: ending stale balance leases failed: {0}")]
    Leases(sqlx::Error),
    #[error("DATABASE_URL: loading the routing table failed: {0}")]
    Routing(sqlx::Error),
    #[error("DATABASE_URL: loading the site settings failed: {0}")]
    Settings(sqlx::Error),
    #[error("{0}")]
    Mail(String),
    #[error("{0}")]
    Redis(String),
    #[error("cannot create the upstream HTTP client: {0}")]
    HttpClient(reqwest::Error),
    #[error(transparent)]
    Bootstrap(#[from] crate::services::bootstrap::BootstrapError),
    #[error("BURNCLOUD_PUBLIC_URL: cannot derive it from the bound address: {0}")]
    PublicUrl(url::ParseError),
    #[error("BURNCLOUD_LISTEN: cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A built application, bound and ready to serve.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    gateway: Gateway,
    port: u16,
    billing_stop: CancellationToken,
    billing_task: tokio::task::JoinHandle<()>,
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        Self::build_with(config, |router| router).await
    }

    /// Like [`build`](Self::build), with a hook that may wrap the finished router (tests use it to
    /// record which routes they exercise).
    pub async fn build_with(config: Config, customize: impl FnOnce(Router) -> Router) -> Result<Self, StartupError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartupError::DataDir { path: config.data_dir.display().to_string(), source })?;
        let (secret_key, source) = secret_key::load_or_generate(&config)?;
        if let Source::Generated(path) = &source {
            tracing::warn!(
                path = %path.display(),
                "BURNCLOUD_SECRET_KEY is not set: generated a new instance key; back this file up, \
                 channel keys cannot be decrypted without it"
            );
        }

        let db = Db::connect(&config.database, config.database_max_connections).await?;
        db::migrate::run(&db).await?;
        tracing::info!(backend = db.backend().name(), "database ready");

        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        let local = listener.local_addr().map_err(|source| StartupError::Bind { addr: config.listen, source })?;
        let public_url = match config.public_url.clone() {
            Some(url) => url,
            None => derived_public_url(local).map_err(StartupError::PublicUrl)?,
        };

        match accounts::ensure_root_admin(&db, &config.admin_email, config.admin_password.as_ref()).await? {
            RootAdmin::Existing => {}
            RootAdmin::Created { email } => tracing::info!(%email, "created the first root admin"),
            RootAdmin::CreatedWithPassword { email, password } => tracing::warn!(
                "created the first root admin: email {email} password {password} \
                 (shown once; sign in and change it, or set BURNCLOUD_ADMIN_PASSWORD)"
            ),
        }

        // reqwest is built without a default crypto provider (to keep aws-lc out): use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let site =
            crate::services::settings::site::load(&db, &config, &secret_key).await.map_err(StartupError::Settings)?;
        let routing = Routing::load(&db, &secret_key, site.gateway.strategy).await.map_err(StartupError::Routing)?;
        let gateway_parts = std::sync::Arc::new(GatewayState::new(&site.gateway).map_err(StartupError::HttpClient)?);
        let billing_stop = CancellationToken::new();
        // Leases this holder left behind (a crash, or a stop that could not give them back) end
        // now; other holders' expired ones too.
        let leases = Leases::new(lease::holder_name(config.instance_id.as_deref(), local.port()));
        tracing::info!(holder = leases.holder(), "this replica's name for its balance leases");
        end_stale_leases(&db, Some(leases.holder())).await.map_err(StartupError::Leases)?;
        let (billing, billing_task) = Batcher::start(db.clone(), leases, billing_stop.clone());
        // The environment's SMTP settings must work (fail fast); stored ones that do not only turn
        // mail off, so a bad setting can never keep the server from starting.
        crate::mail::Mailer::from_config(config.smtp.as_ref()).map_err(StartupError::Mail)?;
        let mailer = crate::mail::Mailer::from_config(site.smtp.config().as_ref()).unwrap_or_else(|message| {
            tracing::warn!(%message, "the stored SMTP settings cannot send mail; mail is off");
            crate::mail::Mailer::disabled()
        });
        if !mailer.is_configured() {
            tracing::warn!(
                "no SMTP server (BURNCLOUD_SMTP_HOST): new accounts are not email-verified and passwords cannot be reset by email"
            );
        }
        let key_cache_entries = config.gateway.key_cache_entries;
        let counters = match &config.redis_url {
            Some(url) => {
                let counters = crate::services::counters::Counters::redis(url.expose())
                    .map_err(|e| StartupError::Redis(format!("BURNCLOUD_REDIS_URL: {e}")))?;
                tracing::info!("key rate limits and form attempt limits are counted in Redis, shared by every replica");
                counters
            }
            None => {
                tracing::info!(
                    "no BURNCLOUD_REDIS_URL: key rate limits and form attempt limits are counted by each replica on its own"
                );
                crate::services::counters::Counters::default()
            }
        };
        let state = AppState::new(crate::state::StateParts {
            config,
            db,
            public_url,
            secret_key,
            billing,
            keys: KeyCache::new(site.gateway.cache_ttl, key_cache_entries),
            routing,
            counters,
            site,
            mailer,
            upstream: std::sync::Arc::new(crate::gateway::probe::Upstreams(gateway_parts.clone())),
            settings_listeners: vec![{
                let parts = gateway_parts.clone();
                Box::new(move |site| parts.apply(&site.gateway))
            }],
        });
        let gateway = Gateway::new(state.clone(), gateway_parts);
        let sessions = crate::console::session_layer(state.db().clone(), state.public_url().scheme() == "https");
        let csp = crate::console::content_security_policy(&state.config().stripe.api_base);
        let router = all_routes(gateway.clone()).into_router(|pages| {
            pages
                .layer(axum::middleware::from_fn(crate::console::error::friendly))
                .layer(axum::middleware::from_fn_with_state(state.clone(), crate::console::csrf::protect))
                .layer(sessions)
                .layer(axum::middleware::map_response_with_state(csp, crate::console::security_headers))
        });
        let router = customize(router.with_state(state.clone()).fallback(not_found));
        let trusted = crate::client_ip::TrustedProxies::new(state.config().trusted_proxies.clone());
        Ok(Self {
            router: with_http_layers(router, trusted, state.config().body_read_timeout),
            listener,
            state,
            gateway,
            port: local.port(),
            billing_stop,
            billing_task,
        })
    }

    /// The port actually bound (useful with `BURNCLOUD_LISTEN=127.0.0.1:0`).
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The gateway's handle (the shared state plus its own parts).
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// Cancelling this token starts a graceful shutdown, as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown().clone()
    }

    /// Applies a bootstrap file (channels, prices, groups, users, keys) before serving.
    pub async fn bootstrap(&self, file: &std::path::Path) -> Result<(), StartupError> {
        bootstrap::apply_file(&self.state, file).await?;
        tracing::info!(file = %file.display(), "bootstrap file applied");
        Ok(())
    }

    /// Serves until a shutdown signal, then drains within the grace period and closes the pool.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let state = self.state.clone();
        let shutdown = state.shutdown().clone();
        spawn_maintenance(&state);
        let os_signal = os_signal();
        tracing::info!(console = %state.public_url(), "BurnCloud is listening; open the console URL");

        // The signal starts the drain: readiness turns 503 at once, but the replica goes on
        // accepting and serving for the shutdown delay, each response closing its connection, so
        // a load balancer that follows readiness stops sending before the listener closes.
        let delay = state.config().shutdown_delay;
        let stop_accepting = {
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = os_signal => shutdown.cancel(),
                    () = shutdown.cancelled() => {}
                }
                tokio::time::sleep(delay).await;
            }
        };
        let timeout = state.config().header_read_timeout;
        // Joined below: shutdown waits for the server to drain.
        #[allow(clippy::disallowed_methods)]
        let mut server = tokio::spawn(serve(self.listener, self.router, timeout, shutdown.clone(), stop_accepting));

        let finished = tokio::select! {
            result = &mut server => Some(result),
            () = shutdown.cancelled() => None,
        };
        if !shutdown.is_cancelled() {
            // The server stopped on its own: an error, not a shutdown.
            shutdown.cancel();
            let result = finished.map(|r| r.map_err(std::io::Error::other).and_then(|r| r));
            return result.unwrap_or_else(|| Err(std::io::Error::other("server stopped")));
        }

        let grace = state.config().shutdown_grace;
        tracing::info!(
            delay_secs = delay.as_secs(),
            grace_secs = grace.as_secs(),
            "shutting down: not ready; accepting for the delay, then draining in-flight requests"
        );
        let deadline = Instant::now() + delay + grace;
        if finished.is_none() && tokio::time::timeout_at(deadline, &mut server).await.is_err() {
            server.abort();
            tracing::warn!("grace period over: closing the connections still open");
        }
        // Streams still open are cut now and settled for what they delivered; their
        // settlements join the background tasks drained below, before the billing writer stops.
        self.gateway.gateway().cut_streams.cancel();
        state.tasks().close();
        if tokio::time::timeout_at(deadline.max(Instant::now() + Duration::from_secs(2)), state.tasks().wait())
            .await
            .is_err()
        {
            tracing::warn!(remaining = state.tasks().len(), "grace period over: background tasks abandoned");
        }
        // Last, the billing writer: leases go back, it commits what is queued, then stops.
        state.billing().give_back_all().await;
        self.billing_stop.cancel();
        let mut billing_task = self.billing_task;
        let billing_deadline = deadline.max(Instant::now() + Duration::from_secs(5));
        if tokio::time::timeout_at(billing_deadline, &mut billing_task).await.is_err() {
            billing_task.abort();
            tracing::error!(
                "the billing writer did not finish in time (database unreachable?): queued settlements abandoned"
            );
        }
        state.db().close().await;
        tracing::info!("shutdown complete");
        Ok(())
    }
}

/// The accept loop (axum::serve's, with a header-read timeout, which axum::serve does not set):
/// every connection is served by hyper's HTTP/1 server with a timer, so a client that does not
/// finish its request line and headers within `header_read_timeout` (or leaves a keep-alive
/// connection idle that long) is disconnected. Each request carries the peer's address as
/// `ConnectInfo`. Once `draining` is cancelled, every response closes its connection (so a
/// proxy's pooled connections go away cleanly, each after a whole response, never idle under a
/// request in flight). When `signal` completes, no connection is accepted any more, the open ones
/// finish their current request and close, and the future ends when the last one has.
async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    draining: CancellationToken,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let (signal_tx, signal_rx) = tokio::sync::watch::channel(());
    // Ends with the shutdown signal, which the server below waits for.
    #[allow(clippy::disallowed_methods)]
    tokio::spawn(async move {
        signal.await;
        drop(signal_rx);
    });
    // Every connection task holds a receiver; the loop's end waits until all are dropped.
    let (close_tx, close_rx) = tokio::sync::watch::channel(());
    loop {
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    // Each stream event is written as it comes: Nagle's algorithm would hold a
                    // small write back until the previous one is acknowledged (40 ms of delayed
                    // ACK between the headers and the first event).
                    if let Err(e) = accepted.0.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    accepted
                }
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = signal_tx.closed() => break,
        };
        let draining = draining.clone();
        let service = router
            .clone()
            .map_request(move |request: axum::http::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(axum::extract::ConnectInfo(remote));
                request
            })
            .map_response(move |mut response: Response| {
                if draining.is_cancelled() {
                    response.headers_mut().insert(header::CONNECTION, header::HeaderValue::from_static("close"));
                }
                response
            });
        let service = hyper_util::service::TowerToHyperService::new(service);
        let (signal_tx, close_rx) = (signal_tx.clone(), close_rx.clone());
        // Tracked by `close_rx`: the accept loop's end waits until every connection has ended.
        #[allow(clippy::disallowed_methods)]
        tokio::spawn(async move {
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder.timer(TokioTimer::new()).header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service).with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut signalled = std::pin::pin!(signal_tx.closed());
            let mut draining = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                        break;
                    }
                    () = &mut signalled, if !draining => {
                        draining = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            drop(close_rx);
        });
    }
    drop(close_rx);
    drop(listener);
    close_tx.closed().await;
    Ok(())
}

/// An accept that failed: a connection reset before it was accepted is nothing; anything else
/// (out of file descriptors, above all) is logged and the loop pauses, as axum::serve does,
/// instead of spinning.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind;
    if matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The routes every layer serves, composed: the gateway's with their own state.
fn all_routes(gateway: Gateway) -> Routes {
    shared_routes().merge(gateway::routes().with_state(gateway))
}

/// Every route the application serves (the route-coverage check compares it with what the suite
/// called).
pub fn route_table() -> Vec<Route> {
    let mut table = shared_routes().table().to_vec();
    table.extend_from_slice(gateway::routes().table());
    table
}

/// The routes served with the shared state: operations, the console and the management API.
fn shared_routes() -> Routes {
    let routes = Routes::new()
        .get("/healthz", ops::healthz)
        .get("/readyz", ops::readyz)
        .get("/metrics", crate::metrics::metrics)
        .get("/static/{file}", console::assets::serve);
    console::routes(api::routes(routes))
}

/// Periodic background work, stopped by shutdown: checkpoint SQLite's write-ahead log, refresh the
/// routing snapshot (changes made by other replicas) and re-test automatically disabled channels.
fn spawn_maintenance(state: &AppState) {
    state.tasks().spawn(crate::services::changes::listen(state.clone()));
    {
        let state = state.clone();
        state.tasks().clone().spawn(async move { state.counters().connect(state.shutdown().clone()).await });
    }
    let every = |period: std::time::Duration, job: fn(AppState) -> futures_util::future::BoxFuture<'static, ()>| {
        if period.is_zero() {
            return;
        }
        let state = state.clone();
        let shutdown = state.shutdown().clone();
        state.tasks().clone().spawn(async move {
            let mut ticker = tokio::time::interval(period);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticker.tick() => job(state.clone()).await,
                }
            }
        });
    };
    let config = &state.config().gateway;
    every(Duration::from_secs(1), |s| {
        Box::pin(async move {
            if let Err(e) = s.db().checkpoint().await {
                tracing::warn!(error = %e, "WAL checkpoint failed");
            }
        })
    });
    every(config.cache_ttl, |s| {
        Box::pin(async move {
            changes::reload_routing(&s).await;
            changes::reload_settings(&s).await;
        })
    });
    every(config.lease_renew, |s| {
        Box::pin(async move {
            if let Err(e) = s.billing().renew_leases().await {
                tracing::warn!(error = %e, "renewing balance and budget leases failed");
            }
            if let Err(e) = end_stale_leases(s.db(), None).await {
                tracing::warn!(error = %e, "ending expired balance leases failed");
            }
            s.billing().give_back_idle(lease::IDLE_RETURN).await;
            if let Err(e) = crate::console::session_store::DbSessionStore::new(s.db().clone()).sweep().await {
                tracing::warn!(error = %e, "sweeping expired console sessions failed");
            }
        })
    });
    every(config.channel_retest, |s| Box::pin(async move { channels::retest_auto_disabled(&s).await }));
    every(Duration::from_secs(60), |s| {
        Box::pin(async move {
            if let Err(e) = crate::services::low_balance::notify(&s).await {
                tracing::warn!(error = %e, "sending low-balance emails failed");
            }
            if let Err(e) = crate::services::keys::warnings::warn_budgets(&s).await {
                tracing::warn!(error = %e, "sending budget warnings failed");
            }
        })
    });
}

/// Ends leases expired by the database's clock (and all of `holder`'s), returning their
/// reservations to the users' balances and to the budgets.
async fn end_stale_leases(db: &crate::db::Db, holder: Option<&str>) -> Result<(), sqlx::Error> {
    let mut tx = db.writer().begin().await?;
    let ended = crate::db::leases::end_stale(&mut tx, holder).await?;
    let budgets = crate::db::budget_leases::end_stale(&mut tx, holder).await?;
    tx.commit().await?;
    if ended + budgets > 0 {
        tracing::info!(ended, budgets, "ended balance and budget leases left by a stopped process");
    }
    Ok(())
}

/// With no `BURNCLOUD_PUBLIC_URL`, links point at the bound address (loopback for 0.0.0.0).
fn derived_public_url(local: SocketAddr) -> Result<Url, url::ParseError> {
    let host = if local.ip().is_unspecified() {
        "localhost".to_string()
    } else if local.is_ipv6() {
        format!("[{}]", local.ip())
    } else {
        local.ip().to_string()
    };
    Url::parse(&format!("http://{host}:{}/", local.port()))
}

/// Request ids, the body-read deadline, the request span, panic containment: the layers every
/// route gets.
fn with_http_layers(router: Router, trusted: crate::client_ip::TrustedProxies, body_read_timeout: Duration) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(axum::middleware::map_request(move |request: Request| {
                crate::client_ip::resolve(trusted.clone(), request)
            }))
            .layer(axum::middleware::map_request(drop_unacceptable_request_id))
            .layer(axum::middleware::from_fn_with_state(body_read_timeout, crate::gateway::ingress::body_deadline))
            .layer(SetRequestIdLayer::x_request_id(telemetry::MakeId))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

/// A client may name its request (`x-request-id`), but only with a short, plain id.
async fn drop_unacceptable_request_id(mut request: Request) -> Request {
    if let Some(value) = request.headers().get("x-request-id")
        && !telemetry::is_acceptable_client_id(value)
    {
        request.headers_mut().remove("x-request-id");
    }
    request
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!("handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"error":{"message":"internal server error","type":"server_error","param":null,"code":null}}"#,
    )
        .into_response()
}

/// Unknown paths: OpenAI's shape under `/v1` (what SDKs parse), JSON under `/api`, text elsewhere.
async fn not_found(method: axum::http::Method, uri: axum::http::Uri) -> Response {
    let path = uri.path();
    if path == "/v1" || path.starts_with("/v1/") {
        let message = format!("Invalid URL ({method} {path})");
        let body = serde_json::json!({ "error": { "message": message, "type": "invalid_request_error", "param": null, "code": null } });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    if path.starts_with("/api/") {
        let body = serde_json::json!({ "error": { "message": "not found", "code": "not_found" } });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    (StatusCode::NOT_FOUND, "not found").into_response()
}

/// Listens for SIGINT and SIGTERM from the moment it is called (so a signal that arrives right
/// after the "listening" line is not lost to the default handler, which would kill the process
/// without draining); the returned future completes on the first one.
fn os_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            let wait = |s: std::io::Result<tokio::signal::unix::Signal>| async move {
                match s {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => tracing::info!("received SIGINT"),
                () = wait(terminate) => tracing::info!("received SIGTERM"),
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("received Ctrl-C");
    }
}
