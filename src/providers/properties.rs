//! Property tests for the pure conversions: no input makes them panic, and a chat request taken
//! to Anthropic's Messages API and back keeps its text, tool calls and their order.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::{anthropic, bedrock, gemini, messages};

/// Any JSON value, a few levels deep, with the keys the converters look for.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "model",
        "messages",
        "role",
        "content",
        "type",
        "text",
        "tool_calls",
        "tool_call_id",
        "function",
        "name",
        "arguments",
        "tools",
        "tool_choice",
        "system",
        "stream",
        "max_tokens",
        "n",
        "image_url",
        "url",
        "usage",
        "choices",
        "delta",
        "candidates",
        "parts",
        "output",
        "message",
        "stop",
        "source",
        "input",
    ]);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        prop::sample::select(vec![
            "user",
            "assistant",
            "tool",
            "system",
            "text",
            "image_url",
            "tool_use",
            "auto",
            "required"
        ])
        .prop_map(|s| json!(s)),
        ".{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

/// A chat conversation: user text, assistant text or tool calls, tool results answering them.
fn conversation() -> impl Strategy<Value = Vec<Value>> {
    let turn = prop_oneof![
        "[a-z ]{1,12}".prop_map(|t| vec![json!({ "role": "user", "content": t })]),
        ("[a-z ]{1,12}", prop::collection::vec("[a-z]{1,6}", 1..3)).prop_map(|(t, names)| {
            let calls: Vec<Value> = names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    json!({ "id": format!("call_{n}_{i}"), "type": "function",
                                      "function": { "name": n, "arguments": format!("{{\"i\":{i}}}") } })
                })
                .collect();
            let mut turn = vec![json!({ "role": "assistant", "content": t, "tool_calls": calls })];
            for call in &calls {
                turn.push(json!({ "role": "tool", "tool_call_id": call["id"], "content": "ok" }));
            }
            turn
        }),
    ];
    prop::collection::vec(turn, 1..6).prop_map(|turns| {
        let mut messages = vec![json!({ "role": "user", "content": "start" })];
        messages.extend(turns.into_iter().flatten());
        messages
    })
}

/// The user/assistant texts and tool call names of a chat request's messages, in order.
fn texts_and_calls(chat: &Value) -> (Vec<String>, Vec<String>) {
    let mut texts = Vec::new();
    let mut calls = Vec::new();
    for m in chat["messages"].as_array().into_iter().flatten() {
        if matches!(m["role"].as_str(), Some("user" | "assistant"))
            && let Some(t) = m["content"].as_str().filter(|t| !t.is_empty())
        {
            texts.push(t.to_string());
        }
        for c in m["tool_calls"].as_array().into_iter().flatten() {
            calls.push(format!("{}:{}", c["id"], c["function"]["name"]));
        }
    }
    (texts, calls)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn request_conversions_never_panic(value in any_json()) {
        let body = value.to_string();
        let caps = crate::domain::capabilities::Capabilities { max_output_tokens: Some(8), reasoning: Some(true), ..Default::default() };
        let _ = anthropic::from_chat(body.as_bytes(), "m", 16, &caps);
        let _ = gemini::from_chat(body.as_bytes(), &caps);
        let _ = bedrock::from_chat(body.as_bytes(), &caps);
        let _ = messages::to_chat(body.as_bytes(), "m", true, &caps);
    }

    #[test]
    fn response_and_stream_conversions_never_panic(value in any_json(), bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        let body = value.to_string();
        let _ = anthropic::to_chat(body.as_bytes(), "m", 0);
        let _ = gemini::to_chat(body.as_bytes(), "m", 0);
        let _ = bedrock::to_chat(body.as_bytes(), "m", 0);
        let _ = messages::from_chat(body.as_bytes(), "m");
        let mut out = Vec::new();
        anthropic::ChatStream::new("m", 0, true).convert(body.as_bytes(), &mut out);
        gemini::ChatStream::new("m", 0, true).convert(body.as_bytes(), &mut out);
        messages::MessagesStream::new("m", 1).convert(body.as_bytes(), &mut out);
        bedrock::ChatStream::new("m", 0, true).push(&bytes, &mut out);
    }

    #[test]
    fn chat_to_messages_and_back_keeps_text_tools_and_order(conversation in conversation()) {
        let chat = json!({ "model": "m", "max_tokens": 10, "messages": conversation });
        let request = anthropic::from_chat(chat.to_string().as_bytes(), "m", 10, &Default::default()).unwrap();
        let wire = serde_json::to_vec(&request).unwrap();
        let back: Value = serde_json::from_slice(&messages::to_chat(&wire, "m", false, &Default::default()).unwrap()).unwrap();
        let (texts, calls) = texts_and_calls(&chat);
        let (back_texts, back_calls) = texts_and_calls(&back);
        // Neighbouring user turns merge on the way (the Messages API needs alternation), so compare
        // the text in order, whatever the grouping.
        prop_assert_eq!(texts.join("\n"), back_texts.join("\n"));
        prop_assert_eq!(calls, back_calls);
        let results = |c: &Value| c["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").count();
        prop_assert_eq!(results(&chat), results(&back));
    }
}
