//! The gateway: the OpenAI-compatible `/v1` API. Authenticates keys, routes each request to a
//! channel, relays it (passthrough where the protocols match, streaming event by event) and
//! bills it through `billing`. It must stay fast: no database read on a cache hit, no
//! re-serialisation of bodies it does not need to change, no stream buffering.

mod account;
pub mod admission;
pub mod attempts;
pub mod auth;
mod embed;
pub mod endpoints;
pub mod error;
mod estimate;
mod health;
pub mod ingress;
pub mod limits;
pub mod models;
mod prepare;
pub mod probe;
mod reclaim;
pub mod relay;
pub mod settlement;
pub mod stream;
pub mod upstream;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRef, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use self::auth::ApiKeyAuth;
use self::endpoints::Endpoint;
use self::error::GatewayError;
use crate::config::GatewayConfig;
use crate::routes::Routes;
use crate::state::AppState;

/// The gateway's handle, its routes' state: the shared state (which it derefs to: the database,
/// billing, the key and routing caches) plus what only the gateway uses. Cloning bumps two `Arc`s.
#[derive(Clone, Debug)]
pub struct Gateway {
    state: AppState,
    parts: Arc<GatewayState>,
}

impl Gateway {
    pub fn new(state: AppState, parts: Arc<GatewayState>) -> Self {
        Self { state, parts }
    }

    /// What only the gateway uses: the upstream client, admission, rate limits.
    pub fn gateway(&self) -> &GatewayState {
        &self.parts
    }

    /// The shared state, for what takes it by value.
    pub fn app(&self) -> &AppState {
        &self.state
    }
}

impl std::ops::Deref for Gateway {
    type Target = AppState;

    fn deref(&self) -> &AppState {
        &self.state
    }
}

impl FromRef<Gateway> for AppState {
    fn from_ref(gateway: &Gateway) -> AppState {
        gateway.state.clone()
    }
}

/// What only the gateway uses (the key and routing caches are in the shared state: the services
/// that change keys and channels invalidate them).
pub struct GatewayState {
    /// The upstream client and the connect timeout it was built with; rebuilt when the
    /// `gateway.connect_timeout_secs` setting changes (a clone is an `Arc` bump).
    http: std::sync::RwLock<(reqwest::Client, std::time::Duration)>,
    /// This replica's own rate-limit counts (when Redis is not configured or does not answer).
    pub counts: Arc<limits::LocalCounts>,
    /// Concurrency caps per key, per user and in all.
    pub admission: admission::Admission,
    /// Cancelled when the shutdown grace period ends: open streams are cut and settled.
    pub cut_streams: tokio_util::sync::CancellationToken,
    /// When this replica last asked the others for a user's leased balance.
    pub lease_wants: reclaim::LeaseWants,
    /// Added to the clock that places holds in budget windows: 0, except in tests that move
    /// time forward to see a budget start again.
    budget_clock_offset_ms: std::sync::atomic::AtomicI64,
}

impl GatewayState {
    pub fn new(config: &GatewayConfig) -> Result<Self, reqwest::Error> {
        let http = std::sync::RwLock::new((client(config.connect_timeout)?, config.connect_timeout));
        Ok(Self {
            http,
            counts: Default::default(),
            admission: admission::Admission::new(config.max_concurrent_requests),
            cut_streams: Default::default(),
            lease_wants: Default::default(),
            budget_clock_offset_ms: Default::default(),
        })
    }

    /// Now, as budget windows see it (unix ms).
    pub fn budget_now(&self) -> i64 {
        crate::domain::time::now_ms() + self.budget_clock_offset_ms.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Moves the budgets' clock forward by `ms` (tests of a period's rollover).
    pub fn advance_budget_clock(&self, ms: i64) {
        self.budget_clock_offset_ms.fetch_add(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The client for upstream requests.
    pub fn http(&self) -> reqwest::Client {
        self.http.read().map(|h| h.0.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().0.clone())
    }

    /// Applies run-time settings: a new connect timeout rebuilds the client (requests in flight
    /// keep the old one).
    pub fn apply(&self, config: &GatewayConfig) {
        let current = self.http.read().map(|h| h.1).unwrap_or_else(|poisoned| poisoned.into_inner().1);
        if current == config.connect_timeout {
            return;
        }
        match client(config.connect_timeout) {
            Ok(client) => {
                let mut slot = self.http.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                *slot = (client, config.connect_timeout);
            }
            Err(e) => tracing::error!(error = %e, "rebuilding the upstream client failed; keeping the old one"),
        }
    }

    /// The connect timeout the client was built with.
    pub fn connect_timeout(&self) -> std::time::Duration {
        self.http.read().map(|h| h.1).unwrap_or_else(|poisoned| poisoned.into_inner().1)
    }
}

fn client(connect_timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .tcp_nodelay(true)
        // An upstream's redirect is never followed: channels name their exact endpoint.
        .redirect(reqwest::redirect::Policy::none())
        .build()
}

impl std::fmt::Debug for GatewayState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GatewayState")
    }
}

/// The `/v1` routes (their state, a [`Gateway`], is given when the app composes the router).
pub fn routes() -> Routes<Gateway> {
    Routes::new()
        .post("/v1/chat/completions", chat_completions)
        .post("/v1/completions", completions)
        .post("/v1/embeddings", embeddings)
        .post("/v1/moderations", moderations)
        .post("/v1/images/generations", images_generations)
        .post("/v1/images/edits", images_edits)
        .post("/v1/audio/speech", audio_speech)
        .post("/v1/audio/transcriptions", audio_transcriptions)
        .post("/v1/audio/translations", audio_translations)
        .post("/v1/responses", responses)
        .post("/v1/messages", messages)
        .post("/v1/messages/count_tokens", count_tokens)
        .post("/v1beta/models/{model_method}", gemini_generate)
        .get("/v1/models", models::list)
        .get("/v1/models/{*id}", models::retrieve)
        .get("/v1/dashboard/billing/subscription", account::subscription)
        .get("/v1/dashboard/billing/usage", account::usage)
        .get("/dashboard/billing/subscription", account::subscription)
        .get("/dashboard/billing/usage", account::usage)
        .get("/api/v1/key", account::key)
}

macro_rules! relay_handler {
    ($($name:ident => $endpoint:expr;)*) => {$(
        async fn $name(State(state): State<Gateway>, auth: ApiKeyAuth, headers: HeaderMap, body: Body) -> Response {
            relay::relay(state, auth, $endpoint, headers, body).await
        }
    )*};
}

/// `POST /v1/messages`: Anthropic's Messages API; errors in Anthropic's shape.
async fn messages(
    State(state): State<Gateway>,
    auth: Result<ApiKeyAuth, GatewayError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match auth {
        Ok(auth) => relay::relay(state, auth, Endpoint::Messages, headers, body).await,
        Err(error) => error.into_anthropic_response(),
    }
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens, counted locally (an estimate).
async fn count_tokens(auth: Result<ApiKeyAuth, GatewayError>, body: axum::body::Bytes) -> Response {
    if let Err(error) = auth {
        return error.into_anthropic_response();
    }
    if !serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| v.get("messages").is_some()) {
        let error = GatewayError::BadRequest { message: "messages: Field required".into(), param: None };
        return error.into_anthropic_response();
    }
    let model = serde_json::from_slice::<crate::providers::openai::RequestPeek>(&body)
        .ok()
        .and_then(|peek| peek.model.map(|m| m.into_owned()))
        .unwrap_or_default();
    let rule = crate::domain::tokenizer::TokenRule::for_model(&model);
    let tokens = rule.apply(crate::providers::openai::text_tokens(&body)).max(1);
    axum::Json(serde_json::json!({ "input_tokens": tokens })).into_response()
}

/// `POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse`: Gemini's
/// own API, passed through to Gemini channels.
async fn gemini_generate(
    State(state): State<Gateway>,
    axum::extract::Path(model_method): axum::extract::Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    auth: Result<ApiKeyAuth, GatewayError>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let auth = match auth {
        Ok(auth) => auth,
        Err(error) => return error.into_google_response(),
    };
    let sse = query.as_deref().is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
    let (model, stream) = match model_method.rsplit_once(':') {
        Some((model, "generateContent")) => (model, false),
        Some((model, "streamGenerateContent")) if sse => (model, true),
        Some((_, "streamGenerateContent")) => {
            let message = "Only the server-sent events form (alt=sse) of streamGenerateContent is supported.";
            return GatewayError::BadRequest { message: message.into(), param: None }.into_google_response();
        }
        _ => {
            return GatewayError::BadRequest { message: format!("Unknown method {model_method:?}."), param: None }
                .into_google_response();
        }
    };
    relay::relay_gemini_native(state, auth, model.to_string(), stream, headers, body).await
}

relay_handler! {
    chat_completions => Endpoint::ChatCompletions;
    completions => Endpoint::Completions;
    embeddings => Endpoint::Embeddings;
    moderations => Endpoint::Moderations;
    images_generations => Endpoint::ImagesGenerations;
    images_edits => Endpoint::ImagesEdits;
    audio_speech => Endpoint::AudioSpeech;
    audio_transcriptions => Endpoint::AudioTranscriptions;
    audio_translations => Endpoint::AudioTranslations;
    responses => Endpoint::Responses;
}
