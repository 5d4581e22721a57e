//! A fake Azure OpenAI resource: checks what Azure checks — the deployment URL
//! (`/openai/deployments/{deployment}/…`), the `api-version` query parameter, the `api-key`
//! header, that the deployment exists — with Azure's error bodies, then answers as OpenAI does
//! (Azure's bodies are OpenAI's) by forwarding to a [`FakeOpenAi`] and streaming its answer back.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::support::fake_openai::{Behavior, FakeOpenAi};

pub const KEY: &str = "azure-test-key-0123456789";

/// `(deployment, path after it, api-version)` of an accepted request.
pub type Seen = (String, String, String);

#[derive(Clone)]
struct Shared {
    deployments: Vec<String>,
    inner: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

pub struct FakeAzure {
    pub port: u16,
    pub openai: FakeOpenAi,
    shared: Shared,
}

impl FakeAzure {
    pub async fn start(deployments: &[&str]) -> Self {
        let openai = FakeOpenAi::start(Behavior::default()).await;
        let shared = Shared {
            deployments: deployments.iter().map(|d| d.to_string()).collect(),
            inner: openai.base_url("azure"),
            seen: Arc::default(),
        };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, openai, shared }
    }

    /// The resource endpoint, as a channel's base URL.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().unwrap().clone()
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()
}

async fn handle(
    State(shared): State<Shared>,
    uri: Uri,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some(KEY) {
        return error(
            StatusCode::UNAUTHORIZED,
            "401",
            "Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key \
             for an active subscription and use a correct regional API endpoint for your resource.",
        );
    }
    let Some((deployment, rest)) = uri.path().strip_prefix("/openai/deployments/").and_then(|p| p.split_once('/'))
    else {
        return error(StatusCode::NOT_FOUND, "404", "Resource not found");
    };
    let version = query.as_deref().and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("api-version=")));
    let Some(version) = version.filter(|v| !v.is_empty()) else {
        return error(
            StatusCode::NOT_FOUND,
            "404",
            "Resource not found (the api-version query parameter is required for all requests)",
        );
    };
    if !shared.deployments.iter().any(|d| d == deployment) {
        return error(
            StatusCode::NOT_FOUND,
            "DeploymentNotFound",
            "The API deployment for this resource does not exist. If you created the deployment within the last 5 \
             minutes, please wait a moment and try again.",
        );
    }
    shared.seen.lock().unwrap().push((deployment.to_string(), format!("/{rest}"), version.to_string()));
    let mut forward = reqwest::Client::new().post(format!("{}/{rest}", shared.inner)).body(body);
    if let Some(ct) = headers.get(header::CONTENT_TYPE) {
        forward = forward.header(header::CONTENT_TYPE, ct.clone());
    }
    let answer = forward.send().await.unwrap();
    let status = StatusCode::from_u16(answer.status().as_u16()).unwrap();
    let content_type = answer.headers().get(header::CONTENT_TYPE).cloned();
    let mut response = Response::new(Body::from_stream(answer.bytes_stream()));
    *response.status_mut() = status;
    if let Some(ct) = content_type {
        response.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    response
}
