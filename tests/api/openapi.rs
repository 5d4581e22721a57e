//! `GET /api/openapi.json`: every `/api/…` route is documented, and the API's real answers match
//! the document's response schemas (a small JSON-Schema subset validator: type, properties,
//! required, items, enum, anyOf/oneOf/allOf, additionalProperties, $ref).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::admin_console::access_token;
use crate::console_auth::Browser;
use crate::fake_openai::{Behavior, FakeOpenAi};
use crate::gateway::chat;
use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, spawn_app};

db_tests!(real_answers_match_the_documented_schemas);

fn document() -> Value {
    burncloud::api::openapi::document().expect("the OpenAPI fragments assemble")
}

/// The errors of `value` against `schema` (empty: it matches).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = reference.trim_start_matches('#');
        let target = doc.pointer(pointer).unwrap_or_else(|| panic!("{at}: unresolved {reference}"));
        return validate(doc, target, value, at);
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = allowed.iter().any(|t| *t == actual || (*t == "number" && actual == "integer"));
        if !fits {
            errors.push(format!("{at}: {actual} where {allowed:?} is documented"));
            return errors;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array)
            && !options.iter().any(|o| validate(doc, o, value, at).is_empty())
        {
            errors.push(format!("{at}: {value} matches none of {combinator}"));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            errors.extend(validate(doc, part, value, at));
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str) {
            if !fields.contains_key(name) {
                errors.push(format!("{at}: required field {name} is missing"));
            }
        }
        for (name, field) in fields {
            let here = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => errors.extend(validate(doc, sub, field, &here)),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => errors.push(format!("{here}: not documented")),
                    Some(sub @ Value::Object(_)) => errors.extend(validate(doc, sub, field, &here)),
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            errors.extend(validate(doc, item_schema, item, &format!("{at}[{i}]")));
        }
    }
    errors
}

#[test]
fn the_validator_catches_what_it_should() {
    let doc = json!({ "components": { "schemas": { "X": { "type": "object", "properties": { "a": { "type": ["string", "null"] }, "b": { "enum": ["x", "y"] } }, "required": ["a"], "additionalProperties": false } } } });
    let x = json!({ "$ref": "#/components/schemas/X" });
    assert!(validate(&doc, &x, &json!({ "a": null, "b": "x" }), "$").is_empty());
    assert_eq!(validate(&doc, &x, &json!({ "b": "z", "c": 1 }), "$").len(), 3);
    assert_eq!(validate(&doc, &json!({ "type": "array", "items": x }), &json!([{ "a": 1 }]), "$").len(), 1);
}

#[test]
fn every_api_route_is_documented() {
    let doc = document();
    let missing: Vec<String> = burncloud::routes::all()
        .table()
        .iter()
        .filter(|r| r.path.starts_with("/api/") && r.path != "/api/openapi.json")
        .filter(|r| doc["paths"][r.path][r.method.to_lowercase()].is_null())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add them to src/api/openapi/<area>.json):\n  {}",
        missing.join("\n  ")
    );
}

/// Sends documented calls and checks each answer against its documented response.
struct Checker<'a> {
    app: &'a TestApp,
    doc: Value,
    seen: BTreeSet<(String, String)>,
}

impl Checker<'_> {
    async fn call(&mut self, token: &str, method: &str, template: &str, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .app
            .client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), self.app.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let text = response.text().await.unwrap();
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(!operation.is_null(), "{method} {template} is not documented");
        let mut answer = operation["responses"][&status].clone();
        assert!(!answer.is_null(), "{method} {path} answered {status}, which is not documented: {text}");
        if let Some(reference) = answer.get("$ref").and_then(Value::as_str) {
            answer = self.doc.pointer(reference.trim_start_matches('#')).unwrap().clone();
        }
        let value: Value = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
        match answer.pointer("/content/application~1json/schema") {
            Some(schema) => {
                let errors = validate(&self.doc, schema, &value, "$");
                assert!(
                    errors.is_empty(),
                    "{method} {path} ({status}) does not match the document:\n  {}\n{text}",
                    errors.join("\n  ")
                );
            }
            None => assert!(text.is_empty(), "{method} {path} ({status}) has an undocumented body: {text}"),
        }
        if status.starts_with('2') {
            self.seen.insert((method.to_string(), template.to_string()));
        }
        value
    }
}

async fn real_answers_match_the_documented_schemas(backend: Backend) {
    let app = spawn_app(backend).await;
    let served: Value = app.client.get(app.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(served, document(), "the served document is the assembled one");
    let mut c = Checker { app: &app, doc: document(), seen: BTreeSet::new() };
    let root = ADMIN_TOKEN;
    let fake = FakeOpenAi::start(Behavior::default()).await;

    c.call(
        root,
        "PUT",
        "/api/admin/prices/{model}",
        "/api/admin/prices/gpt-test",
        Some(json!({ "input": "1", "output": "2" })),
    )
    .await;
    c.call(root, "PUT", "/api/admin/groups/{name}", "/api/admin/groups/vip", Some(json!({ "multiplier": "0.9" })))
        .await;
    let path = "/api/admin/groups/vip/prices/gpt-test";
    c.call(root, "PUT", "/api/admin/groups/{name}/prices/{model}", path, Some(json!({ "input": "0.5" }))).await;
    let input = json!({ "name": "main", "type": "openai", "base_url": fake.base_url("m"), "key": "sk-upstream", "models": ["gpt-test"] });
    let channel = c.call(root, "POST", "/api/admin/channels", "/api/admin/channels", Some(input.clone())).await;
    let channel_path = format!("/api/admin/channels/{}", channel["id"]);
    c.call(root, "GET", "/api/admin/channels", "/api/admin/channels", None).await;
    c.call(root, "GET", "/api/admin/channels/{id}", &channel_path, None).await;
    c.call(root, "PATCH", "/api/admin/channels/{id}", &channel_path, Some(input)).await;
    c.call(root, "POST", "/api/admin/channels/{id}/test", &format!("{channel_path}/test"), None).await;
    c.call(root, "GET", "/api/admin/channels/{id}", "/api/admin/channels/999999", None).await;

    let user = json!({ "email": "doc@example.com", "password": "a fine password" });
    let user = c.call(root, "POST", "/api/admin/users", "/api/admin/users", Some(user)).await;
    let user_path = format!("/api/admin/users/{}", user["id"]);
    c.call(root, "GET", "/api/admin/users/{id}", &user_path, None).await;
    c.call(
        root,
        "POST",
        "/api/admin/users/{id}/credit",
        &format!("{user_path}/credit"),
        Some(json!({ "amount": "5", "note": "doc" })),
    )
    .await;
    let key = c.call(root, "POST", "/api/admin/users/{id}/keys", &format!("{user_path}/keys"), Some(json!({}))).await;
    assert_eq!(app.v1(key["key"].as_str().unwrap(), "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    app.wait_for_logs(1).await;
    app.settled().await;
    let key_path = format!("/api/admin/keys/{}", key["id"]);
    c.call(root, "PATCH", "/api/admin/keys/{id}", &key_path, Some(json!({ "name": "renamed" }))).await;

    c.call(root, "GET", "/api/admin/settings", "/api/admin/settings", None).await;
    c.call(root, "PUT", "/api/admin/settings/{key}", "/api/admin/settings/site.name", Some(json!({ "value": "Doc" })))
        .await;
    c.call(
        root,
        "PUT",
        "/api/admin/settings/{key}",
        "/api/admin/settings/stripe.secret_key",
        Some(json!({ "value": "sk_test_x" })),
    )
    .await;
    c.call(
        root,
        "PUT",
        "/api/admin/settings/{key}",
        "/api/admin/settings/site.currency",
        Some(json!({ "value": "?" })),
    )
    .await;
    // Without SMTP the test email is refused (400); with the sink it is sent (admin_settings).
    c.call(
        root,
        "POST",
        "/api/admin/settings/smtp/test",
        "/api/admin/settings/smtp/test",
        Some(json!({ "to": "a@example.com" })),
    )
    .await;
    c.seen.insert(("POST".into(), "/api/admin/settings/smtp/test".into()));
    c.call(root, "GET", "/api/admin/logs", "/api/admin/logs?limit=1", None).await;
    c.call(root, "GET", "/api/admin/audit", "/api/admin/audit", None).await;

    let mut browser = Browser::new(&app);
    browser.log_in("doc@example.com", "a fine password").await;
    let token = access_token(&mut browser).await;
    c.call(&token, "GET", "/api/admin/settings", "/api/admin/settings", None).await;
    c.call(&token, "GET", "/api/me", "/api/me", None).await;
    c.call(&token, "GET", "/api/me/balance", "/api/me/balance", None).await;
    c.call(&token, "GET", "/api/me/logs", "/api/me/logs", None).await;
    c.call(&token, "GET", "/api/me/keys", "/api/me/keys", None).await;
    let mine = c.call(&token, "POST", "/api/me/keys", "/api/me/keys", Some(json!({ "name": "doc" }))).await;
    let mine_path = format!("/api/me/keys/{}", mine["id"]);
    c.call(&token, "PATCH", "/api/me/keys/{id}", &mine_path, Some(json!({ "rpm": 10 }))).await;
    c.call(&token, "DELETE", "/api/me/keys/{id}", &mine_path, None).await;
    c.call(root, "DELETE", "/api/admin/keys/{id}", &key_path, None).await;
    c.call(root, "DELETE", "/api/admin/channels/{id}", &channel_path, None).await;

    let documented: BTreeSet<(String, String)> = c.doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object().unwrap().keys().filter(|m| *m != "parameters").map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let unchecked: Vec<String> = documented.difference(&c.seen).map(|(m, p)| format!("{m} {p}")).collect();
    assert!(unchecked.is_empty(), "documented endpoints without a checked call here:\n  {}", unchecked.join("\n  "));
}
