//! Azure OpenAI: OpenAI's wire format at a deployment URL with an `api-key` header.

use super::Upstream;

/// The API version used when a channel's config names none (the latest GA).
const API_VERSION: &str = "2024-10-21";

/// The upstream request for an OpenAI endpoint (`path` after `/v1`):
/// `{base}/openai/deployments/{deployment}/…?api-version=…`, where the deployment is the
/// channel's upstream model name (its model mapping).
pub fn post(to: &Upstream<'_>, path: &str, deployment: &str) -> reqwest::RequestBuilder {
    let version = to.api_version.unwrap_or(API_VERSION);
    let url = format!("{}/openai/deployments/{deployment}{path}?api-version={version}", to.base_url);
    to.http.post(url).header("api-key", to.key)
}
