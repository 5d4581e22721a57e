//! Edits to a JSON body that change only the fields named: the others keep their order and their
//! bytes (a mapped request is the client's request with another model, not a re-serialised copy),
//! and the model name an upstream answers with, put back to the name the client asked for.

use std::fmt;

use bytes::Bytes;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// A JSON object's top-level fields in their order, values as they were written.
struct Fields<'a>(Vec<(String, &'a RawValue)>);

impl<'de> serde::Deserialize<'de> for Fields<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Ordered;
        impl<'de> Visitor<'de> for Ordered {
            type Value = Fields<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, value)) = map.next_entry::<String, &'de RawValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Ordered)
    }
}

/// One change to a top-level field: set it to a JSON value (appended when absent).
pub enum Edit<'a> {
    Set(&'a str, Box<RawValue>),
}

impl<'a> Edit<'a> {
    /// Sets `field` to `value` serialised.
    pub fn set(field: &'a str, value: impl serde::Serialize) -> Result<Self, serde_json::Error> {
        Ok(Self::Set(field, serde_json::value::to_raw_value(&value)?))
    }
}

/// A field's value: as the client wrote it, or set by an edit.
enum Slot<'a> {
    Kept(&'a RawValue),
    New(Box<RawValue>),
}

/// `body` (a JSON object) with `edits` applied; every other field in place, its value's bytes
/// unchanged. An edit of a field that appears twice changes the last (the one parsers keep).
pub fn edit(body: &[u8], edits: Vec<Edit<'_>>) -> Result<Bytes, serde_json::Error> {
    let Fields(fields) = serde_json::from_slice(body)?;
    let mut out: Vec<(String, Slot<'_>)> = fields.into_iter().map(|(k, v)| (k, Slot::Kept(v))).collect();
    for change in edits {
        match change {
            Edit::Set(name, value) => match out.iter_mut().rev().find(|(k, _)| k == name) {
                Some(field) => field.1 = Slot::New(value),
                None => out.push((name.to_string(), Slot::New(value))),
            },
        }
    }
    let mut bytes = Vec::with_capacity(body.len() + 64);
    bytes.push(b'{');
    for (i, (key, value)) in out.iter().enumerate() {
        if i > 0 {
            bytes.push(b',');
        }
        serde_json::to_writer(&mut bytes, key)?;
        bytes.push(b':');
        let value = match value {
            Slot::Kept(raw) => raw.get(),
            Slot::New(raw) => raw.get(),
        };
        bytes.extend_from_slice(value.as_bytes());
    }
    bytes.push(b'}');
    Ok(Bytes::from(bytes))
}

/// The value of a top-level object field as raw JSON, if the body is an object that has it.
pub fn field<'a>(body: &'a [u8], name: &str) -> Option<&'a RawValue> {
    let Fields(fields) = serde_json::from_slice(body).ok()?;
    fields.into_iter().rev().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// `bytes` with the first `"model": "<from>"` (any spacing) turned into `"model":"<to>"`: an
/// upstream's answer (or one stream event) carrying the client's name for the model again. The
/// first occurrence is the answer's own: OpenAI, Anthropic and the Responses API put `model`
/// before any content, and inside string values quotes are escaped, so text cannot match.
/// `None` when there is nothing to rename.
pub fn rename_model(bytes: &[u8], from: &str, to: &str) -> Option<Bytes> {
    const KEY: &[u8] = b"\"model\"";
    let quoted_from = serde_json::to_vec(from).ok()?;
    let mut start = 0;
    while let Some(found) = find(&bytes[start..], KEY) {
        let key_end = start + found + KEY.len();
        let mut i = key_end;
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if bytes.get(i) == Some(&b':') {
            i += 1;
            while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
                i += 1;
            }
            if bytes[i..].starts_with(&quoted_from) {
                let quoted_to = serde_json::to_vec(to).ok()?;
                let mut out = Vec::with_capacity(bytes.len() + quoted_to.len());
                out.extend_from_slice(&bytes[..key_end]);
                out.push(b':');
                out.extend_from_slice(&quoted_to);
                out.extend_from_slice(&bytes[i + quoted_from.len()..]);
                return Some(Bytes::from(out));
            }
            // The first `"model":` is the answer's own: another value is not the upstream's name.
            return None;
        }
        start = key_end;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_the_other_fields_in_place_and_unchanged() {
        let body = br#"{"zeta":1, "model":"alias","messages":[{"b":1,"a":"\u00fc \"q\""}],"alpha":2.50}"#;
        let out = edit(body, vec![Edit::set("model", "real").unwrap(), Edit::set("max_tokens", 5).unwrap()]).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"zeta":1,"model":"real","messages":[{"b":1,"a":"\u00fc \"q\""}],"alpha":2.50,"max_tokens":5}"#
        );
        assert!(edit(b"[1]", vec![]).is_err());
    }

    #[test]
    fn the_answers_model_is_renamed_not_text_that_mentions_it() {
        let chunk =
            br#"{"id":"1","model" : "deepseek-chat","choices":[{"delta":{"content":"\"model\":\"deepseek-chat\""}}]}"#;
        let out = rename_model(chunk, "deepseek-chat", "claude-sonnet-4-5").unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{"id":"1","model":"claude-sonnet-4-5","choices":[{"delta":{"content":"\"model\":\"deepseek-chat\""}}]}"#
        );
        assert!(rename_model(br#"{"model":"other"}"#, "deepseek-chat", "x").is_none());
        assert!(rename_model(br#"{"choices":[]}"#, "deepseek-chat", "x").is_none());
        let nested = br#"{"type":"message_start","message":{"id":"m","model":"up"}}"#;
        assert!(rename_model(nested, "up", "alias").unwrap().windows(16).any(|w| w == br#""model":"alias"}"#));
    }
}
