//! BurnCloud: an OpenAI/Anthropic-compatible LLM gateway and multi-tenant console in one binary.

/// The JSON management API.
pub mod api;
/// Start-up, serving and graceful shutdown.
pub mod app;
/// Holds, settlement and ledger writes: the only code that moves money.
pub mod billing;
/// The command line: `serve`, `migrate`, `admin create`, `healthcheck`.
pub mod cli;
/// The client's address, through trusted reverse proxies only.
pub mod client_ip;
/// Typed configuration from defaults, a TOML file and the environment.
pub mod config;
/// The server-rendered console and its static assets.
pub mod console;
/// AES-256-GCM encryption of upstream keys at rest.
pub mod crypto;
/// The database layer: pool, migrations, queries.
pub mod db;
/// Pure domain types: email, money, passwords, tokens, time.
pub mod domain;
/// The OpenAI-compatible `/v1` gateway.
pub mod gateway;
/// Languages (English, Simplified Chinese) and the translation tables of the console and emails.
pub mod i18n;
/// Liveness and readiness endpoints.
/// Outgoing mail over SMTP (verification, password reset).
pub mod mail;
/// `GET /metrics`: the monitoring figures in Prometheus' text format, behind a token.
pub mod metrics;
pub mod ops;
/// Stripe top-ups: pricing, Checkout Sessions, webhook signatures and events.
pub mod payments;
/// Upstream protocols and OpenAI-compatible vendor presets.
pub mod providers;
/// The route table.
pub mod routes;
/// The instance key that encrypts upstream keys at rest.
pub mod secret_key;
/// Domain operations shared by console, API and CLI.
pub mod services;
/// Shared application state.
pub mod state;
/// Logging and request ids.
pub mod telemetry;
