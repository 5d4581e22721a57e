//! Typed configuration: defaults, then an optional TOML file, then the environment.
//!
//! Every setting has one TOML key and one environment variable (see `SETTINGS`, documented in
//! `docs/configuration.md`). Loading parses and validates everything up front and fails with a
//! message naming the setting, so a bad value stops start-up instead of surfacing later.
//! Secrets are wrapped in [`Secret`] so they never reach a log through `Debug`.
//! This module reads no files other than the config file and touches no database.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use url::Url;

mod database;
pub mod runtime;
pub mod site;
pub use database::{Backend, DatabaseUrl};
pub use runtime::{
    FALLBACK_SETTING_PREFIX, MAX_FALLBACKS, STRATEGY_SETTING_PREFIX, SignupMode, SmtpSecurity, Strategy,
    parse_fallbacks,
};

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The whole, validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address the HTTP server binds (`BURNCLOUD_LISTEN`).
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the generated secret key (`BURNCLOUD_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Database to use (`DATABASE_URL`); defaults to SQLite in the data dir.
    pub database: DatabaseUrl,
    /// Pool size (`BURNCLOUD_DATABASE_MAX_CONNECTIONS`).
    pub database_max_connections: u32,
    /// Externally visible base URL used in emails and redirects (`BURNCLOUD_PUBLIC_URL`).
    /// `None` means "derive it from the bound address".
    pub public_url: Option<Url>,
    /// Encrypts upstream keys at rest (`BURNCLOUD_SECRET_KEY`); generated into the data dir when unset.
    pub secret_key: Option<Secret>,
    /// First root admin, created at first boot (`BURNCLOUD_ADMIN_EMAIL`).
    pub admin_email: String,
    /// Its password (`BURNCLOUD_ADMIN_PASSWORD`); generated and logged once when unset.
    pub admin_password: Option<Secret>,
    /// Root token for the management API (`BURNCLOUD_ADMIN_TOKEN`).
    pub admin_token: Option<Secret>,
    /// Bearer token for `GET /metrics` (`BURNCLOUD_METRICS_TOKEN`); unset: `/metrics` answers 404.
    pub metrics_token: Option<Secret>,
    /// This replica's name among those sharing the database (`BURNCLOUD_INSTANCE_ID`): its balance
    /// leases carry it, and a restart under the same name ends the leases the last run left.
    /// Unset: the host name plus an id made at start, unique even where containers share a host name.
    pub instance_id: Option<String>,
    /// Redis for the counters replicas share (`BURNCLOUD_REDIS_URL`, `redis://…`): key rate
    /// limits count across every replica. Unset: each replica counts its own.
    pub redis_url: Option<Secret>,
    /// Log filter in `tracing_subscriber::EnvFilter` syntax (`BURNCLOUD_LOG`).
    pub log: String,
    /// `pretty` or `json` (`BURNCLOUD_LOG_FORMAT`).
    pub log_format: LogFormat,
    /// How long in-flight requests and streams may run after a shutdown signal (`BURNCLOUD_SHUTDOWN_GRACE_SECS`).
    pub shutdown_grace: Duration,
    /// After a shutdown signal, how long the replica goes on accepting and serving while `/readyz`
    /// answers 503, so a load balancer takes it out of rotation before it stops accepting
    /// (`BURNCLOUD_SHUTDOWN_DELAY_SECS`).
    pub shutdown_delay: Duration,
    /// How long a client may take to send a request's line and headers (`BURNCLOUD_HEADER_READ_TIMEOUT_SECS`);
    /// also how long an idle keep-alive connection is kept. A slow-headers client holds a socket
    /// and a task for no more than this.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a whole request body, from the end of its headers
    /// (`BURNCLOUD_BODY_READ_TIMEOUT_SECS`); past it the request is answered 408.
    pub body_read_timeout: Duration,
    /// Gateway behaviour: limits, timeouts, retries, holds.
    pub gateway: GatewayConfig,
    /// Who may sign up on their own (`BURNCLOUD_SIGNUP_MODE`).
    pub signup_mode: SignupMode,
    /// Credited to every new self-service account, in nano-units (`BURNCLOUD_WELCOME_CREDIT`).
    pub welcome_credit: i64,
    /// Outgoing mail (`BURNCLOUD_SMTP_*`); `None` when no SMTP host is set.
    pub smtp: Option<SmtpConfig>,
    /// Stripe top-ups (`BURNCLOUD_STRIPE_*`); the settings page's stored keys override these.
    pub stripe: StripeConfig,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` is believed
    /// (`BURNCLOUD_TRUSTED_PROXIES`, a comma-separated CIDR list; empty: none).
    pub trusted_proxies: Vec<crate::domain::ip_allowlist::IpBlock>,
}

/// Stripe's keys from the environment, and where its API is (tests point it at a fake).
#[derive(Clone, Debug)]
pub struct StripeConfig {
    /// `BURNCLOUD_STRIPE_SECRET_KEY` (`sk_…` or `rk_…`).
    pub secret_key: Option<Secret>,
    /// `BURNCLOUD_STRIPE_WEBHOOK_SECRET` (`whsec_…`).
    pub webhook_secret: Option<Secret>,
    /// `BURNCLOUD_STRIPE_API_BASE`, ending in `/`; Stripe's own by default.
    pub api_base: Url,
}

/// How to reach the SMTP server that sends verification and password-reset mail.
#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// The `From:` mailbox, e.g. `BurnCloud <noreply@example.com>`.
    pub from: String,
    pub security: SmtpSecurity,
}

/// Gateway settings (see docs/configuration.md).
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub max_body_bytes: usize,
    pub connect_timeout: Duration,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    /// A client that takes no stream data for this long is cut and billed for what it received.
    pub client_stall: Duration,
    /// How many channels one request may try (1 = no failover).
    pub retry_attempts: usize,
    pub strategy: Strategy,
    /// The output tokens assumed for the hold when a request sets no maximum.
    pub default_max_tokens: usize,
    /// The largest amount held for one request (nano-units); the exact cost is settled after.
    pub max_hold: i64,
    pub allow_unpriced_models: bool,
    /// Where calendar key budgets (day, week, month) start again: a fixed UTC offset.
    pub budget_zone: time::UtcOffset,
    /// How long a conversation sticks to the channel that last answered it (0: no affinity).
    pub affinity_ttl: Duration,
    /// A request header the operator names as a conversation marker (lowercase; empty: none).
    pub affinity_header: String,
    /// A channel's circuit breaker (docs/gateway.md#circuit-breaker): consecutive failed
    /// attempts that open it and the failed percentage of a window's attempts that does (0: not
    /// on that rule), the fewest attempts for the percentage to count, the window, and how long
    /// an open circuit waits before its trial request.
    pub circuit_failures: usize,
    pub circuit_error_rate: usize,
    pub circuit_min_requests: usize,
    pub circuit_window: Duration,
    pub circuit_cooldown: Duration,
    /// Distinct users whose attempts must have failed before a circuit opens.
    pub circuit_min_users: usize,
    /// How often auto-disabled channels are probed for re-enabling (0 = never).
    pub channel_retest: Duration,
    /// How long cached keys and routing data may be stale when another replica changes them.
    pub cache_ttl: Duration,
    /// How many known API keys the gateway's key cache holds (least recently used go first).
    pub key_cache_entries: usize,
    /// How often this process renews its balance leases, reconciles them with the database and
    /// ends other holders' expired ones. Below half a lease's lifetime, so leases stay usable.
    pub lease_renew: Duration,
    /// Image URLs fetched for providers that need inline bytes: the largest image, the time
    /// allowed, and whether loopback addresses may be fetched (local development and tests only;
    /// private, link-local and metadata addresses are refused regardless).
    pub image_fetch_max_bytes: usize,
    pub image_fetch_timeout: Duration,
    pub image_fetch_allow_loopback: bool,
    /// Per request: how many image URLs may be fetched, how many bytes in all, and the time
    /// allowed for all of them.
    pub image_fetch_max_images: usize,
    pub image_fetch_max_total_bytes: usize,
    pub image_fetch_deadline: Duration,
    /// Admission: at most this many requests in flight per API key, per user, and in all (a
    /// request is in flight from admission until its settlement); a request over a cap waits up
    /// to `admission_wait` for a slot, then is refused with 429 and `Retry-After`.
    pub max_concurrent_per_key: usize,
    pub max_concurrent_per_user: usize,
    pub max_concurrent_requests: usize,
    pub admission_wait: Duration,
}

/// The most requests in flight in all: the billing writer keeps at most this many holds
/// unsettled (`billing::batch`'s own cap), and a hold beyond it would queue without a deadline.
pub const MAX_CONCURRENT_REQUESTS: usize = 2048;

/// A setting that could not be used; `Display` names it the way the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{setting}: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

impl ConfigError {
    fn new(setting: &Setting, message: impl Into<String>) -> Self {
        Self { setting: setting.env.to_string(), message: message.into() }
    }
}

/// One configuration setting: its TOML key and its environment variable.
pub struct Setting {
    pub key: &'static str,
    pub env: &'static str,
}

macro_rules! settings {
    ($($ident:ident => $key:literal, $env:literal;)*) => {
        $(const $ident: Setting = Setting { key: $key, env: $env };)*
        /// Every setting, in documentation order.
        pub const SETTINGS: &[Setting] = &[$($ident),*];
    };
}

settings! {
    LISTEN => "listen", "BURNCLOUD_LISTEN";
    DATA_DIR => "data_dir", "BURNCLOUD_DATA_DIR";
    DATABASE_URL => "database_url", "DATABASE_URL";
    DATABASE_MAX_CONNECTIONS => "database_max_connections", "BURNCLOUD_DATABASE_MAX_CONNECTIONS";
    PUBLIC_URL => "public_url", "BURNCLOUD_PUBLIC_URL";
    SECRET_KEY => "secret_key", "BURNCLOUD_SECRET_KEY";
    ADMIN_EMAIL => "admin_email", "BURNCLOUD_ADMIN_EMAIL";
    ADMIN_PASSWORD => "admin_password", "BURNCLOUD_ADMIN_PASSWORD";
    ADMIN_TOKEN => "admin_token", "BURNCLOUD_ADMIN_TOKEN";
    METRICS_TOKEN => "metrics_token", "BURNCLOUD_METRICS_TOKEN";
    INSTANCE_ID => "instance_id", "BURNCLOUD_INSTANCE_ID";
    REDIS_URL => "redis_url", "BURNCLOUD_REDIS_URL";
    LOG => "log", "BURNCLOUD_LOG";
    LOG_FORMAT => "log_format", "BURNCLOUD_LOG_FORMAT";
    SHUTDOWN_GRACE_SECS => "shutdown_grace_secs", "BURNCLOUD_SHUTDOWN_GRACE_SECS";
    SHUTDOWN_DELAY_SECS => "shutdown_delay_secs", "BURNCLOUD_SHUTDOWN_DELAY_SECS";
    HEADER_READ_TIMEOUT_SECS => "header_read_timeout_secs", "BURNCLOUD_HEADER_READ_TIMEOUT_SECS";
    BODY_READ_TIMEOUT_SECS => "body_read_timeout_secs", "BURNCLOUD_BODY_READ_TIMEOUT_SECS";
    MAX_BODY_BYTES => "max_body_bytes", "BURNCLOUD_MAX_BODY_BYTES";
    CONNECT_TIMEOUT_SECS => "upstream_connect_timeout_secs", "BURNCLOUD_UPSTREAM_CONNECT_TIMEOUT_SECS";
    FIRST_BYTE_TIMEOUT_SECS => "upstream_first_byte_timeout_secs", "BURNCLOUD_UPSTREAM_FIRST_BYTE_TIMEOUT_SECS";
    IDLE_TIMEOUT_SECS => "upstream_idle_timeout_secs", "BURNCLOUD_UPSTREAM_IDLE_TIMEOUT_SECS";
    CLIENT_STALL_SECS => "client_stall_secs", "BURNCLOUD_CLIENT_STALL_SECS";
    RETRY_ATTEMPTS => "retry_attempts", "BURNCLOUD_RETRY_ATTEMPTS";
    ROUTING_STRATEGY => "routing_strategy", "BURNCLOUD_ROUTING_STRATEGY";
    DEFAULT_MAX_TOKENS => "default_max_tokens", "BURNCLOUD_DEFAULT_MAX_TOKENS";
    MAX_HOLD => "max_hold", "BURNCLOUD_MAX_HOLD";
    ALLOW_UNPRICED_MODELS => "allow_unpriced_models", "BURNCLOUD_ALLOW_UNPRICED_MODELS";
    CHANNEL_RETEST_SECS => "channel_retest_secs", "BURNCLOUD_CHANNEL_RETEST_SECS";
    CACHE_TTL_SECS => "cache_ttl_secs", "BURNCLOUD_CACHE_TTL_SECS";
    KEY_CACHE_ENTRIES => "key_cache_entries", "BURNCLOUD_KEY_CACHE_ENTRIES";
    LEASE_RENEW_SECS => "lease_renew_secs", "BURNCLOUD_LEASE_RENEW_SECS";
    IMAGE_FETCH_MAX_BYTES => "image_fetch_max_bytes", "BURNCLOUD_IMAGE_FETCH_MAX_BYTES";
    IMAGE_FETCH_TIMEOUT_SECS => "image_fetch_timeout_secs", "BURNCLOUD_IMAGE_FETCH_TIMEOUT_SECS";
    IMAGE_FETCH_ALLOW_LOOPBACK => "image_fetch_allow_loopback", "BURNCLOUD_IMAGE_FETCH_ALLOW_LOOPBACK";
    IMAGE_FETCH_MAX_IMAGES => "image_fetch_max_images", "BURNCLOUD_IMAGE_FETCH_MAX_IMAGES";
    IMAGE_FETCH_MAX_TOTAL_BYTES => "image_fetch_max_total_bytes", "BURNCLOUD_IMAGE_FETCH_MAX_TOTAL_BYTES";
    IMAGE_FETCH_DEADLINE_SECS => "image_fetch_deadline_secs", "BURNCLOUD_IMAGE_FETCH_DEADLINE_SECS";
    MAX_CONCURRENT_PER_KEY => "max_concurrent_per_key", "BURNCLOUD_MAX_CONCURRENT_PER_KEY";
    MAX_CONCURRENT_PER_USER => "max_concurrent_per_user", "BURNCLOUD_MAX_CONCURRENT_PER_USER";
    MAX_CONCURRENT_REQUESTS_SETTING => "max_concurrent_requests", "BURNCLOUD_MAX_CONCURRENT_REQUESTS";
    ADMISSION_WAIT_MS => "admission_wait_ms", "BURNCLOUD_ADMISSION_WAIT_MS";
    SIGNUP_MODE => "signup_mode", "BURNCLOUD_SIGNUP_MODE";
    WELCOME_CREDIT => "welcome_credit", "BURNCLOUD_WELCOME_CREDIT";
    SMTP_HOST => "smtp_host", "BURNCLOUD_SMTP_HOST";
    SMTP_PORT => "smtp_port", "BURNCLOUD_SMTP_PORT";
    SMTP_USERNAME => "smtp_username", "BURNCLOUD_SMTP_USERNAME";
    SMTP_PASSWORD => "smtp_password", "BURNCLOUD_SMTP_PASSWORD";
    SMTP_FROM => "smtp_from", "BURNCLOUD_SMTP_FROM";
    SMTP_SECURITY => "smtp_security", "BURNCLOUD_SMTP_SECURITY";
    STRIPE_SECRET_KEY => "stripe_secret_key", "BURNCLOUD_STRIPE_SECRET_KEY";
    STRIPE_WEBHOOK_SECRET => "stripe_webhook_secret", "BURNCLOUD_STRIPE_WEBHOOK_SECRET";
    STRIPE_API_BASE => "stripe_api_base", "BURNCLOUD_STRIPE_API_BASE";
    TRUSTED_PROXIES => "trusted_proxies", "BURNCLOUD_TRUSTED_PROXIES";
}

/// The smallest accepted length for secret keys and tokens.
pub const MIN_SECRET_LEN: usize = 32;

impl Config {
    /// Loads from the optional TOML file, then the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Loads with an explicit environment lookup (tests pass a map).
    pub fn load_from(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut values = match file {
            Some(path) => read_file(path)?,
            None => BTreeMap::new(),
        };
        for setting in SETTINGS {
            if let Some(value) = env(setting.env) {
                values.insert(setting.key, value);
            }
        }
        Self::from_values(&values)
    }

    fn from_values(values: &BTreeMap<&'static str, String>) -> Result<Self, ConfigError> {
        let get = |s: &Setting| values.get(s.key).map(|v| v.trim()).filter(|v| !v.is_empty());

        let listen = match get(&LISTEN) {
            Some(v) => v.parse::<SocketAddr>().map_err(|_| {
                ConfigError::new(&LISTEN, format!("{v:?} is not a socket address (example: 127.0.0.1:3000)"))
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let data_dir = PathBuf::from(get(&DATA_DIR).unwrap_or("./data"));
        let database = match get(&DATABASE_URL) {
            Some(v) => DatabaseUrl::parse(v).map_err(|m| ConfigError::new(&DATABASE_URL, m))?,
            None => {
                let file = data_dir.join("burncloud.db");
                DatabaseUrl::parse(&format!("sqlite://{}", file.display()))
                    .map_err(|m| ConfigError::new(&DATA_DIR, m))?
            }
        };
        let database_max_connections = number(get(&DATABASE_MAX_CONNECTIONS), &DATABASE_MAX_CONNECTIONS, 10, 1..=1000)?;
        let public_url = get(&PUBLIC_URL)
            .map(|v| {
                let url =
                    Url::parse(v).map_err(|e| ConfigError::new(&PUBLIC_URL, format!("{v:?} is not a URL ({e})")))?;
                if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
                    return Err(ConfigError::new(
                        &PUBLIC_URL,
                        format!("{v:?} must be an http:// or https:// URL with a host"),
                    ));
                }
                Ok(url)
            })
            .transpose()?;
        let secret_key = secret(get(&SECRET_KEY), &SECRET_KEY)?;
        let admin_email = get(&ADMIN_EMAIL).unwrap_or("admin@localhost").to_lowercase();
        if !crate::domain::email::looks_like_email(&admin_email) {
            return Err(ConfigError::new(&ADMIN_EMAIL, format!("{admin_email:?} is not an email address")));
        }
        let admin_password = match get(&ADMIN_PASSWORD) {
            Some(v) if v.chars().count() < crate::domain::password::MIN_LEN => {
                return Err(ConfigError::new(
                    &ADMIN_PASSWORD,
                    format!("must be at least {} characters", crate::domain::password::MIN_LEN),
                ));
            }
            other => other.map(Secret::new),
        };
        let admin_token = secret(get(&ADMIN_TOKEN), &ADMIN_TOKEN)?;
        let metrics_token = secret(get(&METRICS_TOKEN), &METRICS_TOKEN)?;
        let instance_id = match get(&INSTANCE_ID).map(str::trim).filter(|v| !v.is_empty()) {
            Some(id) if id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c)) => {
                return Err(ConfigError::new(&INSTANCE_ID, format!("{id:?}: at most 64 letters, digits and . _ : -")));
            }
            other => other.map(str::to_string),
        };
        let redis_url = match get(&REDIS_URL).map(str::trim).filter(|v| !v.is_empty()) {
            Some(url) if !url.starts_with("redis://") => {
                return Err(ConfigError::new(
                    &REDIS_URL,
                    "must be a redis:// URL (redis://[user:password@]host:port[/db])",
                ));
            }
            Some(url) => Some(Secret::new(url)),
            None => None,
        };
        let log = get(&LOG).unwrap_or("info").to_string();
        if tracing_subscriber::EnvFilter::try_new(&log).is_err() {
            return Err(ConfigError::new(&LOG, format!("{log:?} is not a valid log filter")));
        }
        let log_format = match get(&LOG_FORMAT).unwrap_or("pretty") {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                return Err(ConfigError::new(&LOG_FORMAT, format!("{other:?} must be json or pretty")));
            }
        };
        let shutdown_grace = secs(get(&SHUTDOWN_GRACE_SECS), &SHUTDOWN_GRACE_SECS, 30)?;
        let shutdown_delay =
            number(get(&SHUTDOWN_DELAY_SECS), &SHUTDOWN_DELAY_SECS, 0, 0..=600).map(Duration::from_secs)?;
        let header_read_timeout =
            number(get(&HEADER_READ_TIMEOUT_SECS), &HEADER_READ_TIMEOUT_SECS, 30, 1..=3600).map(Duration::from_secs)?;
        let body_read_timeout =
            number(get(&BODY_READ_TIMEOUT_SECS), &BODY_READ_TIMEOUT_SECS, 60, 1..=3600).map(Duration::from_secs)?;
        let max_concurrent_requests = number(
            get(&MAX_CONCURRENT_REQUESTS_SETTING),
            &MAX_CONCURRENT_REQUESTS_SETTING,
            MAX_CONCURRENT_REQUESTS,
            2..=MAX_CONCURRENT_REQUESTS,
        )?;
        // One tenant at its cap must leave slots to the others: a user's cap stays below the total.
        let max_concurrent_per_user = number(
            get(&MAX_CONCURRENT_PER_USER),
            &MAX_CONCURRENT_PER_USER,
            128.min(max_concurrent_requests / 2),
            1..=max_concurrent_requests - 1,
        )?;
        let max_concurrent_per_key = number(
            get(&MAX_CONCURRENT_PER_KEY),
            &MAX_CONCURRENT_PER_KEY,
            64.min(max_concurrent_per_user),
            1..=max_concurrent_per_user,
        )?;

        // The run-time ones (retries, timeouts, strategy, …) are set from the table just below.
        let mut gateway = GatewayConfig {
            max_body_bytes: 0,
            connect_timeout: Duration::ZERO,
            first_byte_timeout: Duration::ZERO,
            idle_timeout: Duration::ZERO,
            client_stall: Duration::ZERO,
            retry_attempts: 0,
            strategy: Strategy::WeightedRandom,
            default_max_tokens: 0,
            max_hold: match get(&MAX_HOLD) {
                None => 5 * crate::domain::money::NANOS_PER_UNIT,
                Some(v) => {
                    crate::domain::money::Money::parse(v).ok().map(|m| m.nanos()).filter(|n| *n > 0).ok_or_else(
                        || ConfigError::new(&MAX_HOLD, format!("{v:?} must be a positive amount like \"5.00\"")),
                    )?
                }
            },
            allow_unpriced_models: false,
            budget_zone: time::UtcOffset::UTC,
            affinity_ttl: Duration::from_secs(300),
            affinity_header: String::new(),
            circuit_failures: 5,
            circuit_error_rate: 50,
            circuit_min_requests: 20,
            circuit_window: Duration::from_secs(60),
            circuit_cooldown: Duration::from_secs(30),
            circuit_min_users: 2,
            channel_retest: secs(get(&CHANNEL_RETEST_SECS), &CHANNEL_RETEST_SECS, 300)?,
            cache_ttl: Duration::ZERO,
            key_cache_entries: number(get(&KEY_CACHE_ENTRIES), &KEY_CACHE_ENTRIES, 100_000, 100..=10_000_000)?,
            // At most 20 s: a lease lives 60 s and is used for 30 s after a renewal.
            lease_renew: number(get(&LEASE_RENEW_SECS), &LEASE_RENEW_SECS, 10, 1..=20).map(Duration::from_secs)?,
            image_fetch_max_bytes: number(
                get(&IMAGE_FETCH_MAX_BYTES),
                &IMAGE_FETCH_MAX_BYTES,
                20 * 1024 * 1024,
                1024..=512 * 1024 * 1024,
            )?,
            image_fetch_timeout: secs(get(&IMAGE_FETCH_TIMEOUT_SECS), &IMAGE_FETCH_TIMEOUT_SECS, 10)?,
            image_fetch_allow_loopback: boolean(get(&IMAGE_FETCH_ALLOW_LOOPBACK), &IMAGE_FETCH_ALLOW_LOOPBACK, false)?,
            image_fetch_max_images: number(get(&IMAGE_FETCH_MAX_IMAGES), &IMAGE_FETCH_MAX_IMAGES, 16, 1..=256)?,
            image_fetch_max_total_bytes: number(
                get(&IMAGE_FETCH_MAX_TOTAL_BYTES),
                &IMAGE_FETCH_MAX_TOTAL_BYTES,
                32 * 1024 * 1024,
                1024..=1024 * 1024 * 1024,
            )?,
            image_fetch_deadline: number(get(&IMAGE_FETCH_DEADLINE_SECS), &IMAGE_FETCH_DEADLINE_SECS, 30, 1..=3600)
                .map(Duration::from_secs)?,
            max_concurrent_per_key,
            max_concurrent_per_user,
            max_concurrent_requests,
            admission_wait: number(get(&ADMISSION_WAIT_MS), &ADMISSION_WAIT_MS, 2000, 0..=60_000)
                .map(Duration::from_millis)?,
        };
        runtime::start_up(&mut gateway, |s| get(s).map(str::to_string))?;

        let signup_mode = match get(&SIGNUP_MODE) {
            None | Some("open") => SignupMode::Open,
            Some("invite_only") => SignupMode::InviteOnly,
            Some("closed") => SignupMode::Closed,
            Some(v) => {
                return Err(ConfigError::new(&SIGNUP_MODE, format!("{v:?} must be open, invite_only or closed")));
            }
        };
        let welcome_credit = match get(&WELCOME_CREDIT) {
            None => 0,
            Some(v) => {
                crate::domain::money::Money::parse(v).ok().map(|m| m.nanos()).filter(|n| *n >= 0).ok_or_else(|| {
                    ConfigError::new(&WELCOME_CREDIT, format!("{v:?} must be an amount like \"1.00\" (0 for none)"))
                })?
            }
        };

        let smtp = match get(&SMTP_HOST) {
            None => None,
            Some(host) => {
                let security = match get(&SMTP_SECURITY).unwrap_or("starttls") {
                    "none" => SmtpSecurity::None,
                    "starttls" => SmtpSecurity::StartTls,
                    "tls" => SmtpSecurity::Tls,
                    v => return Err(ConfigError::new(&SMTP_SECURITY, format!("{v:?} must be none, starttls or tls"))),
                };
                let default_port = match security {
                    SmtpSecurity::None => 25,
                    SmtpSecurity::StartTls => 587,
                    SmtpSecurity::Tls => 465,
                };
                let from = get(&SMTP_FROM).map_or_else(|| format!("BurnCloud <noreply@{host}>"), str::to_string);
                if from.parse::<lettre::message::Mailbox>().is_err() {
                    return Err(ConfigError::new(
                        &SMTP_FROM,
                        format!("{from:?} is not a mailbox (example: BurnCloud <noreply@example.com>)"),
                    ));
                }
                Some(SmtpConfig {
                    host: host.to_string(),
                    port: number(get(&SMTP_PORT), &SMTP_PORT, default_port, 1..=65535)?,
                    username: get(&SMTP_USERNAME).map(str::to_string),
                    password: get(&SMTP_PASSWORD).map(Secret::new),
                    from,
                    security,
                })
            }
        };

        let stripe = StripeConfig {
            secret_key: match get(&STRIPE_SECRET_KEY) {
                Some(v) if !(v.starts_with("sk_") || v.starts_with("rk_")) => {
                    return Err(ConfigError::new(&STRIPE_SECRET_KEY, "must be a Stripe secret key (sk_… or rk_…)"));
                }
                other => other.map(Secret::new),
            },
            webhook_secret: match get(&STRIPE_WEBHOOK_SECRET) {
                Some(v) if !v.starts_with("whsec_") => {
                    return Err(ConfigError::new(
                        &STRIPE_WEBHOOK_SECRET,
                        "must be a Stripe webhook signing secret (whsec_…)",
                    ));
                }
                other => other.map(Secret::new),
            },
            api_base: {
                let v = get(&STRIPE_API_BASE).unwrap_or("https://api.stripe.com/");
                let mut url = Url::parse(v)
                    .ok()
                    .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                    .ok_or_else(|| ConfigError::new(&STRIPE_API_BASE, format!("{v:?} is not an http(s) URL")))?;
                if !url.path().ends_with('/') {
                    url.set_path(&format!("{}/", url.path()));
                }
                url
            },
        };

        let trusted_proxies = match get(&TRUSTED_PROXIES) {
            None => Vec::new(),
            Some(v) => v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    crate::domain::ip_allowlist::IpBlock::parse(s).map_err(|m| {
                        ConfigError::new(&TRUSTED_PROXIES, format!("{m} (example: 10.0.0.0/8, 127.0.0.1)"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        Ok(Self {
            trusted_proxies,
            gateway,
            signup_mode,
            welcome_credit,
            smtp,
            stripe,
            listen,
            data_dir,
            database,
            database_max_connections,
            public_url,
            secret_key,
            admin_email,
            admin_password,
            admin_token,
            metrics_token,
            instance_id,
            redis_url,
            log,
            log_format,
            shutdown_grace,
            shutdown_delay,
            header_read_timeout,
            body_read_timeout,
        })
    }
}

fn number<T>(
    value: Option<&str>,
    setting: &Setting,
    default: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<T, ConfigError>
where
    T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
{
    match value {
        None => Ok(default),
        Some(v) => v.parse::<T>().ok().filter(|n| range.contains(n)).ok_or_else(|| {
            ConfigError::new(setting, format!("{v:?} is not a number from {} to {}", range.start(), range.end()))
        }),
    }
}

fn secs(value: Option<&str>, setting: &Setting, default: u64) -> Result<Duration, ConfigError> {
    number(value, setting, default, 0..=86_400).map(Duration::from_secs)
}

fn boolean(value: Option<&str>, setting: &Setting, default: bool) -> Result<bool, ConfigError> {
    match value {
        None => Ok(default),
        Some("true" | "1" | "yes" | "on") => Ok(true),
        Some("false" | "0" | "no" | "off") => Ok(false),
        Some(v) => Err(ConfigError::new(setting, format!("{v:?} must be true or false"))),
    }
}

fn secret(value: Option<&str>, setting: &Setting) -> Result<Option<Secret>, ConfigError> {
    match value {
        Some(v) if v.len() < MIN_SECRET_LEN => {
            Err(ConfigError::new(setting, format!("must be at least {MIN_SECRET_LEN} characters")))
        }
        other => Ok(other.map(Secret::new)),
    }
}

/// Reads the TOML file into setting-key → string value; unknown keys are an error (typos).
fn read_file(path: &Path) -> Result<BTreeMap<&'static str, String>, ConfigError> {
    let file_error = |message: String| ConfigError { setting: format!("--config {}", path.display()), message };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read: {e}")))?;
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| file_error(format!("invalid TOML: {}", e.message())))?;
    let mut values = BTreeMap::new();
    for (key, value) in table {
        let setting =
            SETTINGS.iter().find(|s| s.key == key).ok_or_else(|| file_error(format!("unknown setting {key:?}")))?;
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            other => {
                return Err(file_error(format!("{key}: unsupported value type {}", other.type_str())));
            }
        };
        values.insert(setting.key, value);
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: BTreeMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::load_from(None, |name| env.get(name).cloned())
    }

    #[test]
    fn defaults_are_a_local_sqlite_instance() {
        let config = load(&[]).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:3000");
        assert_eq!(config.database.backend, Backend::Sqlite);
        assert_eq!(config.database.url.expose(), "sqlite://./data/burncloud.db?mode=rwc");
        assert_eq!(config.database.sqlite_file(), Some(PathBuf::from("./data/burncloud.db")));
        assert_eq!(config.log_format, LogFormat::Pretty);
        assert_eq!(config.shutdown_grace, Duration::from_secs(30));
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("BURNCLOUD_LISTEN", "nope"),
            ("DATABASE_URL", "mysql://x"),
            ("DATABASE_URL", "sqlite://"),
            ("BURNCLOUD_PUBLIC_URL", "ftp://x"),
            ("BURNCLOUD_SECRET_KEY", "short"),
            ("BURNCLOUD_ADMIN_TOKEN", "short"),
            ("BURNCLOUD_ADMIN_EMAIL", "not-an-email"),
            ("BURNCLOUD_ADMIN_PASSWORD", "short"),
            ("BURNCLOUD_LOG_FORMAT", "xml"),
            ("BURNCLOUD_LOG", "[["),
            ("BURNCLOUD_SHUTDOWN_GRACE_SECS", "-1"),
            ("BURNCLOUD_DATABASE_MAX_CONNECTIONS", "0"),
            ("BURNCLOUD_MAX_BODY_BYTES", "12x"),
            ("BURNCLOUD_RETRY_ATTEMPTS", "0"),
            ("BURNCLOUD_ROUTING_STRATEGY", "random"),
            ("BURNCLOUD_MAX_HOLD", "-1"),
            ("BURNCLOUD_ALLOW_UNPRICED_MODELS", "maybe"),
            ("BURNCLOUD_UPSTREAM_IDLE_TIMEOUT_SECS", "forever"),
            ("BURNCLOUD_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal"),
            ("BURNCLOUD_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("BURNCLOUD_HEADER_READ_TIMEOUT_SECS", "0"),
            ("BURNCLOUD_BODY_READ_TIMEOUT_SECS", "never"),
            ("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "0"),
            ("BURNCLOUD_MAX_CONCURRENT_REQUESTS", "4096"),
            ("BURNCLOUD_ADMISSION_WAIT_MS", "-5"),
            ("BURNCLOUD_CLIENT_STALL_SECS", "0"),
            ("BURNCLOUD_UPSTREAM_CONNECT_TIMEOUT_SECS", "86401"),
        ];
        for (name, value) in cases {
            let err = load(&[(name, value)]).unwrap_err();
            assert_eq!(err.setting, name, "{name}={value}: {err}");
            assert!(err.to_string().starts_with(name));
        }
    }

    #[test]
    fn one_user_cannot_be_allowed_every_slot() {
        let config = load(&[]).unwrap();
        let g = &config.gateway;
        assert_eq!((g.max_concurrent_per_key, g.max_concurrent_per_user, g.max_concurrent_requests), (64, 128, 2048));
        assert!(g.max_concurrent_per_user < g.max_concurrent_requests);
        // A user's cap as large as the total is refused, naming the setting…
        let err = load(&[("BURNCLOUD_MAX_CONCURRENT_REQUESTS", "100"), ("BURNCLOUD_MAX_CONCURRENT_PER_USER", "100")])
            .unwrap_err();
        assert_eq!(err.setting, "BURNCLOUD_MAX_CONCURRENT_PER_USER", "{err}");
        // …and a key's cap above its user's is pointless, so refused too.
        let err = load(&[("BURNCLOUD_MAX_CONCURRENT_PER_USER", "10"), ("BURNCLOUD_MAX_CONCURRENT_PER_KEY", "11")])
            .unwrap_err();
        assert_eq!(err.setting, "BURNCLOUD_MAX_CONCURRENT_PER_KEY", "{err}");
        // Smaller totals bring the default per-user and per-key caps down with them.
        let small = load(&[("BURNCLOUD_MAX_CONCURRENT_REQUESTS", "10")]).unwrap().gateway;
        assert_eq!((small.max_concurrent_per_user, small.max_concurrent_per_key), (5, 5));
    }

    #[test]
    fn trusted_proxies_are_a_cidr_list_and_none_by_default() {
        assert!(load(&[]).unwrap().trusted_proxies.is_empty());
        let config = load(&[("BURNCLOUD_TRUSTED_PROXIES", " 10.0.0.0/8, 127.0.0.1 ,2001:db8::/32,")]).unwrap();
        assert_eq!(config.trusted_proxies.len(), 3);
        assert!(config.trusted_proxies[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!config.trusted_proxies[1].contains("127.0.0.2".parse().unwrap()));
    }

    #[test]
    fn postgres_urls_are_recognised() {
        let db = DatabaseUrl::parse("postgresql://u:p@localhost:5432/db").unwrap();
        assert_eq!(db.backend, Backend::Postgres);
        assert_eq!(db.sqlite_file(), None);
        assert!(!format!("{db:?}").contains("u:p"), "the password must not leak through Debug");
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("burncloud.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:4000\"\nshutdown_grace_secs = 5\nlog_format = \"json\"\n").unwrap();
        let config =
            Config::load_from(Some(&path), |name| (name == "BURNCLOUD_LISTEN").then(|| "127.0.0.1:5000".into()))
                .unwrap();
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.shutdown_grace, Duration::from_secs(5));
        assert_eq!(config.log_format, LogFormat::Json);
    }

    #[test]
    fn unknown_file_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("burncloud.toml");
        std::fs::write(&path, "lisen = \"127.0.0.1:4000\"\n").unwrap();
        let err = Config::load_from(Some(&path), |_| None).unwrap_err();
        assert!(err.to_string().contains("unknown setting \"lisen\""), "{err}");
    }
}
