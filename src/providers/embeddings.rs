//! OpenAI embeddings requests converted for providers with their own embedding APIs (Gemini's
//! `batchEmbedContents`, Bedrock's Titan and Cohere models), and their vectors returned in OpenAI's
//! shape — as floats, or as base64 of little-endian f32 when the client asks (the `openai` SDKs'
//! default).

use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct EmbeddingsRequest {
    input: Input,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    One(String),
    Many(Vec<String>),
}

/// The texts to embed, the dimensions asked for, and whether vectors go back as base64.
pub struct Embed {
    pub texts: Vec<String>,
    pub dimensions: Option<i64>,
    pub base64: bool,
}

/// Reads an OpenAI embeddings request; token-array inputs are refused (these providers take text).
pub fn parse(body: &[u8]) -> Result<Embed, String> {
    let request: EmbeddingsRequest = serde_json::from_slice(body).map_err(|_| {
        "This model's provider embeds text: `input` must be a string or an array of strings.".to_string()
    })?;
    let texts = match request.input {
        Input::One(text) => vec![text],
        Input::Many(texts) => texts,
    };
    if texts.is_empty() || texts.len() > 2048 {
        return Err("`input` must hold 1 to 2048 texts.".into());
    }
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => return Err(format!("Unsupported encoding_format {other:?}.")),
    };
    Ok(Embed { texts, dimensions: request.dimensions, base64 })
}

/// An OpenAI embeddings response for `model` with these vectors and prompt tokens.
pub fn response(model: &str, vectors: Vec<Vec<f32>>, base64: bool, prompt_tokens: i64) -> Bytes {
    let data: Vec<Value> = vectors
        .into_iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if base64 {
                let bytes: Vec<u8> = vector.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let body = json!({
        "object": "list", "data": data, "model": model,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    });
    Bytes::from(body.to_string())
}

/// Gemini: the `batchEmbedContents` body for `model`.
pub fn gemini_request(embed: &Embed, model: &str) -> Bytes {
    let requests: Vec<Value> = embed
        .texts
        .iter()
        .map(|text| {
            let mut request = json!({ "model": format!("models/{model}"), "content": { "parts": [{ "text": text }] } });
            if let Some(d) = embed.dimensions {
                request["outputDimensionality"] = json!(d);
            }
            request
        })
        .collect();
    Bytes::from(json!({ "requests": requests }).to_string())
}

/// Gemini: the vectors of a `batchEmbedContents` response.
pub fn gemini_vectors(body: &[u8]) -> Result<Vec<Vec<f32>>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Response {
        embeddings: Vec<Values>,
    }
    #[derive(Deserialize)]
    struct Values {
        values: Vec<f32>,
    }
    Ok(serde_json::from_slice::<Response>(body)?.embeddings.into_iter().map(|e| e.values).collect())
}

/// The embedding model families Bedrock serves, by model id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BedrockFamily {
    /// Amazon Titan Text Embeddings: one text per call.
    Titan,
    /// Cohere Embed: many texts per call.
    Cohere,
}

impl BedrockFamily {
    pub fn of(model: &str) -> Option<Self> {
        if model.contains("titan-embed") {
            Some(Self::Titan)
        } else if model.contains("cohere.embed") {
            Some(Self::Cohere)
        } else {
            None
        }
    }

    /// The InvokeModel bodies for these texts: one per text for Titan, one for all for Cohere.
    pub fn requests(self, embed: &Embed) -> Vec<Bytes> {
        match self {
            Self::Titan => embed
                .texts
                .iter()
                .map(|text| {
                    let mut body = json!({ "inputText": text });
                    if let Some(d) = embed.dimensions {
                        body["dimensions"] = json!(d);
                    }
                    Bytes::from(body.to_string())
                })
                .collect(),
            Self::Cohere => {
                vec![Bytes::from(json!({ "texts": embed.texts, "input_type": "search_document" }).to_string())]
            }
        }
    }

    /// The vectors (and input tokens, when the model reports them) of one InvokeModel answer.
    pub fn vectors(self, body: &[u8]) -> Result<(Vec<Vec<f32>>, Option<i64>), serde_json::Error> {
        match self {
            Self::Titan => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct Titan {
                    embedding: Vec<f32>,
                    #[serde(default)]
                    input_text_token_count: Option<i64>,
                }
                let titan: Titan = serde_json::from_slice(body)?;
                Ok((vec![titan.embedding], titan.input_text_token_count))
            }
            Self::Cohere => {
                #[derive(Deserialize)]
                struct Cohere {
                    embeddings: Vec<Vec<f32>>,
                }
                Ok((serde_json::from_slice::<Cohere>(body)?.embeddings, None))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_little_endian_f32() {
        let body: Value = serde_json::from_slice(&response("m", vec![vec![1.0, -2.5]], true, 3)).unwrap();
        let bytes =
            base64::engine::general_purpose::STANDARD.decode(body["data"][0]["embedding"].as_str().unwrap()).unwrap();
        let floats: Vec<f32> = bytes.chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        assert_eq!(floats, [1.0, -2.5]);
        assert_eq!(body["usage"]["prompt_tokens"], 3);
    }

    #[test]
    fn families_are_told_by_model_id() {
        assert_eq!(BedrockFamily::of("amazon.titan-embed-text-v2:0"), Some(BedrockFamily::Titan));
        assert_eq!(BedrockFamily::of("cohere.embed-english-v3"), Some(BedrockFamily::Cohere));
        assert_eq!(BedrockFamily::of("anthropic.claude-3-haiku-20240307-v1:0"), None);
        assert!(parse(br#"{"model":"m","input":[1,2,3]}"#).is_err());
    }
}
