//! A fake AWS Bedrock Runtime (Converse and ConverseStream). Like the real service it recomputes
//! the SigV4 signature of every request from what it received (method, host, path, body,
//! `x-amz-date`, the signed headers) with its own region, service name and secret, and refuses a
//! wrong one with AWS's `InvalidSignatureException`; it checks the Converse body (alternating
//! roles starting with the user, one kind of data per content block, tool results answering the
//! tool uses of the turn before). Answers come from `tests/fixtures/bedrock/` (from the API
//! reference); streams are AWS event-stream frames, sent split across chunk boundaries.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use burncloud::providers::eventstream;
use serde_json::{Value, json};

pub const ACCESS_KEY_ID: &str = "AKIDEXAMPLE";
pub const SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
pub const REGION: &str = "us-west-2";

#[derive(Clone, Copy, Debug)]
pub enum Reply {
    Text,
    ToolUse,
}

#[derive(Clone)]
struct Shared {
    reply: Arc<Mutex<Reply>>,
    received: Arc<Mutex<Vec<(String, Value)>>>,
}

pub struct FakeBedrock {
    pub port: u16,
    shared: Shared,
}

impl FakeBedrock {
    pub async fn start(reply: Reply) -> Self {
        let shared = Shared { reply: Arc::new(Mutex::new(reply)), received: Arc::default() };
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `(path, body)` of each accepted request.
    pub fn received(&self) -> Vec<(String, Value)> {
        self.shared.received.lock().unwrap().clone()
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/bedrock/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn aws_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (status, [("x-amzn-ErrorType", kind)], axum::Json(json!({ "message": message }))).into_response()
}

async fn handle(State(shared): State<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(message) = verify_signature(&method, &uri, &headers, &body) {
        return aws_error(StatusCode::FORBIDDEN, "InvalidSignatureException", &message);
    }
    let path = uri.path().to_string();
    if path.ends_with("/invoke") {
        return invoke_embedding(&shared, &path, &body);
    }
    let stream = match path.rsplit_once('/').map(|(_, m)| m) {
        Some("converse") => false,
        Some("converse-stream") => true,
        _ => return aws_error(StatusCode::NOT_FOUND, "UnknownOperationException", "Unknown operation"),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException", "Malformed input request");
    };
    if let Err(message) = validate(&request) {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException", &message);
    }
    shared.received.lock().unwrap().push((path, request));
    let reply = *shared.reply.lock().unwrap();
    if !stream {
        let file = match reply {
            Reply::Text => "converse.json",
            Reply::ToolUse => "converse_tool_use.json",
        };
        return ([(header::CONTENT_TYPE, "application/json")], fixture(file)).into_response();
    }
    let file = match reply {
        Reply::Text => "converse_stream.json",
        Reply::ToolUse => "converse_stream_tool_use.json",
    };
    let events: Vec<(String, Value)> = serde_json::from_str(&fixture(file)).unwrap();
    let frames: Vec<u8> = events
        .iter()
        .flat_map(|(event, payload)| {
            let headers =
                [(":event-type", event.as_str()), (":content-type", "application/json"), (":message-type", "event")];
            eventstream::encode(&headers, payload.to_string().as_bytes()).to_vec()
        })
        .collect();
    // Chunks that cut frames anywhere, as TCP may.
    let chunks: Vec<Result<Bytes, std::io::Error>> = frames.chunks(37).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
    let mut response = Response::new(Body::from_stream(futures_util::stream::iter(chunks)));
    response.headers_mut().insert(header::CONTENT_TYPE, "application/vnd.amazon.eventstream".parse().unwrap());
    response
}

/// Recomputes the request's SigV4 signature from what arrived.
fn verify_signature(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Result<(), String> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let authorization = header("authorization");
    let fields = authorization.strip_prefix("AWS4-HMAC-SHA256 ").ok_or("Missing Authentication Token")?;
    let field = |name: &str| {
        fields.split(", ").find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('='))).unwrap_or_default()
    };
    let credential: Vec<&str> = field("Credential").split('/').collect();
    if credential.first() != Some(&ACCESS_KEY_ID) {
        return Err("The security token included in the request is invalid.".into());
    }
    let time = parse_amz_date(&header("x-amz-date")).ok_or("x-amz-date is missing or malformed")?;
    let skew = SystemTime::now().duration_since(time).unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Err("Signature expired".into());
    }
    let signed: Vec<&str> = field("SignedHeaders").split(';').collect();
    for required in ["host", "x-amz-date"] {
        if !signed.contains(&required) {
            return Err(format!("{required} must be signed"));
        }
    }
    let others: Vec<(String, String)> = signed
        .iter()
        .filter(|h| !["host", "x-amz-date", "x-amz-content-sha256"].contains(h))
        .map(|h| (h.to_string(), header(h)))
        .collect();
    let url = format!("http://{}{}", header("host"), uri);
    let identity = aws_credential_types::Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY, None, None, "fake").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("bedrock")
        .time(time)
        .settings(aws_sigv4::http_request::SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let request = aws_sigv4::http_request::SignableRequest::new(
        method.as_str(),
        url,
        others.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        aws_sigv4::http_request::SignableBody::Bytes(body),
    )
    .map_err(|e| e.to_string())?;
    let (_, expected) = aws_sigv4::http_request::sign(request, &params).map_err(|e| e.to_string())?.into_parts();
    if field("Signature") != expected {
        return Err("The request signature we calculated does not match the signature you provided. Check your AWS \
                    Secret Access Key and signing method. Consult the service documentation for details."
            .into());
    }
    Ok(())
}

/// `20150830T123600Z` → a time.
fn parse_amz_date(s: &str) -> Option<SystemTime> {
    let n = |r: std::ops::Range<usize>| s.get(r).and_then(|v| v.parse::<i64>().ok());
    let (y, m, d, hh, mm, ss) = (n(0..4)?, n(4..6)?, n(6..8)?, n(9..11)?, n(11..13)?, n(13..15)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hh * 3600 + mm * 60 + ss;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

fn validate(request: &Value) -> Result<(), String> {
    let messages = request["messages"].as_array().filter(|m| !m.is_empty()).ok_or("messages: required")?;
    let mut previous_uses: Vec<String> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let expected = if i % 2 == 0 { "user" } else { "assistant" };
        if message["role"] != expected {
            return Err(format!("A conversation must alternate between user and assistant roles (messages.{i})."));
        }
        let blocks = message["content"].as_array().filter(|c| !c.is_empty()).ok_or(format!("messages.{i}.content"))?;
        let mut uses = Vec::new();
        for block in blocks {
            let kinds = ["text", "image", "toolUse", "toolResult", "reasoningContent"];
            let present: Vec<&str> = kinds.into_iter().filter(|k| block.get(k).is_some()).collect();
            if present.len() != 1 {
                return Err(format!("messages.{i}: a content block holds exactly one member, got {present:?}"));
            }
            match present[0] {
                "toolUse" => uses.push(block["toolUse"]["toolUseId"].as_str().unwrap_or_default().to_string()),
                "toolResult" => {
                    let id = block["toolResult"]["toolUseId"].as_str().unwrap_or_default();
                    if !previous_uses.iter().any(|u| u == id) {
                        return Err(format!("messages.{i}: toolResult {id} answers no toolUse of the previous turn"));
                    }
                }
                _ => {}
            }
        }
        previous_uses = uses;
    }
    if let Some(system) = request.get("system")
        && !system.is_array()
    {
        return Err("system: must be a list".into());
    }
    Ok(())
}

/// InvokeModel on an embedding model: Titan takes `inputText` (one text) and reports its tokens,
/// Cohere takes `texts`. Each vector is `[text length, 0.5, -0.25]`.
fn invoke_embedding(shared: &Shared, path: &str, body: &[u8]) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException", "Malformed input request");
    };
    let vector = |text: &str| json!([text.len() as f64, 0.5, -0.25]);
    let answer = if path.contains("titan-embed") {
        let Some(text) = request["inputText"].as_str() else {
            return aws_error(StatusCode::BAD_REQUEST, "ValidationException", "required key [inputText] not found");
        };
        json!({ "embedding": vector(text), "inputTextTokenCount": text.split_whitespace().count() })
    } else if path.contains("cohere.embed") {
        let Some(texts) = request["texts"].as_array() else {
            return aws_error(StatusCode::BAD_REQUEST, "ValidationException", "required key [texts] not found");
        };
        let vectors: Vec<Value> = texts.iter().map(|t| vector(t.as_str().unwrap_or_default())).collect();
        json!({ "embeddings": vectors, "id": "emb-1", "response_type": "embeddings_floats", "texts": texts })
    } else {
        return aws_error(StatusCode::BAD_REQUEST, "ValidationException", "The model is not an embedding model");
    };
    shared.received.lock().unwrap().push((path.to_string(), request));
    axum::Json(answer).into_response()
}
