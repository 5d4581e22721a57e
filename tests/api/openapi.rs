//! `GET /api/openapi.json`: every `/api/…` route is documented, and the API's real answers match
//! the document's response schemas (a small JSON-Schema subset validator: type, properties,
//! required, items, enum, anyOf/oneOf/allOf, additionalProperties, $ref).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::admin_console::access_token;
use crate::console_auth::Browser;
use crate::gateway::chat;
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{ADMIN_TOKEN, Backend, TestApp, spawn_app};

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
    let missing: Vec<String> = burncloud::app::route_table()
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
        self.check(request, method, template, path).await
    }

    /// Sends a prepared request for `method template` and checks its answer.
    async fn check(&mut self, request: reqwest::RequestBuilder, method: &str, template: &str, path: &str) -> Value {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16().to_string();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let text = response.text().await.unwrap();
        let operation = &self.doc["paths"][template][method.to_lowercase()];
        assert!(!operation.is_null(), "{method} {template} is not documented");
        let mut answer = operation["responses"][&status].clone();
        assert!(!answer.is_null(), "{method} {path} answered {status}, which is not documented: {text}");
        if let Some(reference) = answer.get("$ref").and_then(Value::as_str) {
            answer = self.doc.pointer(reference.trim_start_matches('#')).unwrap().clone();
        }
        // A CSV download is checked for its declared content type only.
        if answer.pointer("/content/text~1csv").is_some() {
            assert!(content_type.starts_with("text/csv"), "{method} {path} ({status}) answered {content_type}: {text}");
            if status.starts_with('2') {
                self.seen.insert((method.to_string(), template.to_string()));
            }
            return Value::String(text);
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
    let keys_path = format!("{channel_path}/keys");
    let body = json!({ "keys": "sk-upstream\nsk-upstream-second-key-0002" });
    c.call(root, "POST", "/api/admin/channels/{id}/keys", &keys_path, Some(body)).await;
    let keys = c.call(root, "GET", "/api/admin/channels/{id}/keys", &keys_path, None).await;
    let key_path = format!("{keys_path}/{}", keys["data"][1]["fingerprint"].as_str().expect("a fingerprint"));
    for action in ["disable", "enable", "test"] {
        let route = format!("/api/admin/channels/{{id}}/keys/{{key}}/{action}");
        c.call(root, "POST", &route, &format!("{key_path}/{action}"), None).await;
    }
    c.call(
        root,
        "POST",
        "/api/admin/channels/{id}/keys/{key}/test",
        &format!("{keys_path}/0000000000000000/test"),
        None,
    )
    .await;
    channel_actions(&mut c, &channel_path, &fake).await;

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
    // The one `/api` read authenticated with an API key rather than an access token.
    c.call(key["key"].as_str().unwrap(), "GET", "/api/v1/key", "/api/v1/key", None).await;
    c.call("sk-not-a-live-key-0123456789", "GET", "/api/v1/key", "/api/v1/key", None).await;
    assert_eq!(app.v1(key["key"].as_str().unwrap(), "/v1/chat/completions", &chat("gpt-test")).await.status(), 200);
    app.wait_for_logs(1).await;
    app.settled().await;
    let key_path = format!("/api/admin/keys/{}", key["id"]);
    user_pages(&mut c, &user_path).await;
    groups_and_prices(&mut c).await;
    codes(&mut c, user["id"].as_i64().unwrap()).await;
    payments_and_flags(&mut c, user["id"].as_i64().unwrap()).await;
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
    let month = burncloud::domain::time::utc_month(burncloud::domain::time::now_ms());
    let csv = c.call(&token, "GET", "/api/me/statement", &format!("/api/me/statement?month={month}"), None).await;
    assert!(csv.as_str().is_some_and(|s| s.contains(",settle,")), "{csv}");
    c.call(&token, "GET", "/api/me/statement", "/api/me/statement?month=soon", None).await;
    c.call(&token, "GET", "/api/me/keys", "/api/me/keys", None).await;
    let mine = c.call(&token, "POST", "/api/me/keys", "/api/me/keys", Some(json!({ "name": "doc" }))).await;
    let mine_path = format!("/api/me/keys/{}", mine["id"]);
    c.call(&token, "PATCH", "/api/me/keys/{id}", &mine_path, Some(json!({ "rpm": 10 }))).await;
    c.call(&token, "DELETE", "/api/me/keys/{id}", &mine_path, None).await;
    c.call(root, "DELETE", "/api/admin/keys/{id}", &key_path, None).await;
    c.call(root, "DELETE", "/api/admin/channels/{id}", &channel_path, None).await;

    reseller(&mut c, user["id"].as_i64().unwrap()).await;
    stripe_webhook(&mut c).await;

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

/// Every channel action beyond create/read/update/delete/test.
async fn channel_actions(c: &mut Checker<'_>, channel_path: &str, fake: &FakeOpenAi) {
    let root = ADMIN_TOKEN;
    c.call(root, "POST", "/api/admin/channels/test", "/api/admin/channels/test", None).await;
    let models = format!("{channel_path}/models");
    let listed = c.call(root, "POST", "/api/admin/channels/{id}/models", &models, Some(json!({ "save": false }))).await;
    assert_eq!(listed["models"][0], "gpt-4o", "{listed}");
    c.call(root, "POST", "/api/admin/channels/{id}/disable", &format!("{channel_path}/disable"), None).await;
    c.call(root, "POST", "/api/admin/channels/{id}/enable", &format!("{channel_path}/enable"), None).await;
    let copy = c.call(root, "POST", "/api/admin/channels/{id}/copy", &format!("{channel_path}/copy"), None).await;
    assert_eq!(copy["status"], "manually_disabled", "{copy}");
    c.call(root, "POST", "/api/admin/channels/{id}/copy", "/api/admin/channels/999999/copy", None).await;
    let import = json!({
        "channel": { "name": "bulk", "type": "openai", "base_url": fake.base_url("m"), "models": ["gpt-test"] },
        "keys": "sk-bulk-one\nsk-bulk-two",
        "mode": "separate",
    });
    let created = c.call(root, "POST", "/api/admin/channels/import", "/api/admin/channels/import", Some(import)).await;
    assert_eq!(created["data"].as_array().map(Vec::len), Some(2), "{created}");
    let bad = json!({ "channel": { "name": "bulk" }, "keys": "" });
    c.call(root, "POST", "/api/admin/channels/import", "/api/admin/channels/import", Some(bad)).await;
}

/// A user's list entry, changes, ledger, keys and usage.
async fn user_pages(c: &mut Checker<'_>, user_path: &str) {
    let root = ADMIN_TOKEN;
    let found = c.call(root, "GET", "/api/admin/users", "/api/admin/users?q=doc&per_page=5", None).await;
    assert_eq!(found["total"], 1, "{found}");
    c.call(root, "GET", "/api/admin/users", "/api/admin/users?role=nobody", None).await;
    let patch = json!({ "group": "default", "role": "user", "status": "active" });
    c.call(root, "PATCH", "/api/admin/users/{id}", user_path, Some(patch)).await;
    c.call(root, "PATCH", "/api/admin/users/{id}", user_path, Some(json!({}))).await;
    let ledger =
        c.call(root, "GET", "/api/admin/users/{id}/ledger", &format!("{user_path}/ledger?limit=5"), None).await;
    assert_eq!(
        (ledger["data"][0]["kind"].as_str(), ledger["data"][1]["note"].as_str()),
        (Some("settle"), Some("doc")),
        "{ledger}"
    );
    c.call(root, "GET", "/api/admin/users/{id}/keys", &format!("{user_path}/keys"), None).await;
    let usage = c.call(root, "GET", "/api/admin/users/{id}/usage", &format!("{user_path}/usage?limit=10"), None).await;
    assert_eq!(usage["last_30_days"]["requests"], 1, "{usage}");
    c.call(root, "GET", "/api/admin/users/{id}/usage", "/api/admin/users/999999/usage", None).await;
}

/// The payment list, marking a pending payment failed, and an account's flag.
async fn payments_and_flags(c: &mut Checker<'_>, user_id: i64) {
    let root = ADMIN_TOKEN;
    let db = c.app.db.clone();
    let id = burncloud::db::payments::insert_pending(db.writer(), user_id, 10_000_000_000, 1000, "usd").await.unwrap();
    burncloud::db::payments::set_session(db.writer(), id, "cs_test_doc", "https://checkout.example/doc").await.unwrap();
    let listed = c.call(root, "GET", "/api/admin/payments", "/api/admin/payments?email=doc&limit=5", None).await;
    assert_eq!(listed["data"][0]["id"], id, "{listed}");
    c.call(root, "GET", "/api/admin/payments", "/api/admin/payments?status=lost", None).await;
    let fail = format!("/api/admin/payments/{id}/fail");
    let failed = c.call(root, "POST", "/api/admin/payments/{id}/fail", &fail, None).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    c.call(root, "POST", "/api/admin/payments/{id}/fail", &fail, None).await;
    c.call(root, "POST", "/api/admin/payments/{id}/fail", "/api/admin/payments/999999/fail", None).await;

    sqlx::query("UPDATE users SET flag = 'A refund took back less than it credited.' WHERE id = $1")
        .bind(user_id)
        .execute(db.writer())
        .await
        .unwrap();
    let user_path = format!("/api/admin/users/{user_id}");
    let flagged = c.call(root, "GET", "/api/admin/users/{id}", &user_path, None).await;
    assert_eq!(flagged["flag"], "A refund took back less than it credited.", "{flagged}");
    let clear = format!("{user_path}/clear-flag");
    let cleared = c.call(root, "POST", "/api/admin/users/{id}/clear-flag", &clear, None).await;
    assert_eq!(cleared["flag"], Value::Null, "{cleared}");
    c.call(root, "POST", "/api/admin/users/{id}/clear-flag", &clear, None).await;
}

/// Groups, the price table, ratio import and export, and the default list.
async fn groups_and_prices(c: &mut Checker<'_>) {
    let root = ADMIN_TOKEN;
    c.call(root, "GET", "/api/admin/groups", "/api/admin/groups", None).await;
    let spare = json!({ "multiplier": "1.5", "description": "spare", "models": ["gpt-test"] });
    let group = c.call(root, "PUT", "/api/admin/groups/{name}", "/api/admin/groups/spare", Some(spare)).await;
    assert_eq!(group["models"], json!(["gpt-test"]), "{group}");
    c.call(root, "DELETE", "/api/admin/groups/{name}", "/api/admin/groups/spare", None).await;
    c.call(root, "DELETE", "/api/admin/groups/{name}", "/api/admin/groups/spare", None).await;
    c.call(root, "DELETE", "/api/admin/groups/{name}", "/api/admin/groups/default", None).await;
    let path = "/api/admin/groups/vip/prices/gpt-test";
    c.call(root, "DELETE", "/api/admin/groups/{name}/prices/{model}", path, None).await;
    c.call(root, "DELETE", "/api/admin/groups/{name}/prices/{model}", path, None).await;

    let ratios = json!({ "ModelRatio": { "ratio-model": 1.5 }, "CompletionRatio": { "ratio-model": "2" },
        "GroupRatio": { "imported": 0.8 } });
    let import = "/api/admin/prices/import-ratios";
    let summary = c.call(root, "POST", import, import, Some(ratios)).await;
    assert_eq!((summary["models"].as_i64(), summary["groups"].as_i64()), (Some(1), Some(1)), "{summary}");
    c.call(root, "POST", import, import, Some(json!({}))).await;
    let export = "/api/admin/prices/export-ratios";
    let exported = c.call(root, "GET", export, export, None).await;
    assert_eq!(exported["ModelRatio"]["ratio-model"], 1.5, "{exported}");
    let defaults = "/api/admin/prices/defaults";
    c.call(root, "POST", defaults, defaults, Some(json!({ "overwrite": false }))).await;
    let listed = c.call(root, "GET", "/api/admin/prices", "/api/admin/prices?q=ratio", None).await;
    assert_eq!(listed["data"][0]["per_request"], Value::Null, "{listed}");
    c.call(root, "DELETE", "/api/admin/prices/{model}", "/api/admin/prices/ratio-model", None).await;
    c.call(root, "DELETE", "/api/admin/prices/{model}", "/api/admin/prices/ratio-model", None).await;

    let caps = "/api/admin/capabilities/{model}";
    let set = c.call(root, "PUT", caps, "/api/admin/capabilities/gpt-test", Some(json!({ "tools": false }))).await;
    assert_eq!((&set["source"], &set["tools"]), (&json!("custom"), &json!(false)), "{set}");
    c.call(root, "PUT", caps, "/api/admin/capabilities/gpt-test", Some(json!({ "context_window": 0 }))).await;
    let listed = c.call(root, "GET", "/api/admin/capabilities", "/api/admin/capabilities", None).await;
    assert!(listed["data"].as_array().is_some_and(|rows| rows.iter().any(|r| r["source"] == "default")), "{listed}");
    c.call(root, "DELETE", caps, "/api/admin/capabilities/gpt-test", None).await;
    c.call(root, "DELETE", caps, "/api/admin/capabilities/gpt-test", None).await;
}

/// The operator's redemption codes: generate, list (one redeemed), export, void.
async fn codes(c: &mut Checker<'_>, redeemer: i64) {
    let root = ADMIN_TOKEN;
    let batch = json!({ "name": "doc", "amount": "1", "count": 3, "prefix": "DOC", "expires": "2099-12-31" });
    let generated = c.call(root, "POST", "/api/admin/codes", "/api/admin/codes", Some(batch)).await;
    let first = generated["codes"][0].as_str().unwrap();
    burncloud::billing::redeem(&c.app.db, redeemer, first).await.unwrap();
    let bad = json!({ "name": "doc", "amount": "1", "count": 0 });
    c.call(root, "POST", "/api/admin/codes", "/api/admin/codes", Some(bad)).await;
    let listed = c.call(root, "GET", "/api/admin/codes", "/api/admin/codes?batch=doc", None).await;
    let rows = listed["data"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["redeemed_by_email"] == "doc@example.com"), "{listed}");
    let unused = rows.iter().find(|r| r["status"] == "unused").unwrap()["id"].clone();
    c.call(root, "GET", "/api/admin/codes", "/api/admin/codes?status=bogus", None).await;
    let csv = c.call(root, "GET", "/api/admin/codes/export", "/api/admin/codes/export?status=used", None).await;
    assert!(csv.as_str().unwrap().starts_with("id,code,batch"), "{csv}");
    let void = format!("/api/admin/codes/{unused}/void");
    c.call(root, "POST", "/api/admin/codes/{id}/void", &void, None).await;
    c.call(root, "POST", "/api/admin/codes/{id}/void", &void, None).await;
    c.call(root, "POST", "/api/admin/codes/{id}/void", "/api/admin/codes/999999/void", None).await;
    let batch = Some(json!({ "batch": "doc" }));
    let voided = c.call(root, "POST", "/api/admin/codes/void", "/api/admin/codes/void", batch).await;
    assert_eq!(voided["voided"], 1, "{voided}");
}

/// Every `/api/reseller/*` endpoint with a reseller's token (the invitee is `invitee`).
async fn reseller(c: &mut Checker<'_>, invitee: i64) {
    let app = c.app;
    let (seller, _, token, _) = crate::codes::account(app, "seller", "reseller", "100").await;
    sqlx::query("UPDATE users SET invited_by = $1 WHERE id = $2")
        .bind(seller)
        .bind(invitee)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO invitations (inviter_id, invitee_id, code, inviter_reward, invitee_reward, rewarded_at, created_at) \
         VALUES ($1, $2, 'c', 3000000000, 0, 1, 1)",
    )
    .bind(seller)
    .bind(invitee)
    .execute(app.db.pool())
    .await
    .unwrap();
    let t = token.as_str();
    let batch = json!({ "name": "resold", "amount": "2", "count": 2 });
    let generated = c.call(t, "POST", "/api/reseller/codes", "/api/reseller/codes", Some(batch)).await;
    assert_eq!(generated["balance"], "96.00", "{generated}");
    let too_much = json!({ "name": "resold", "amount": "1000", "count": 1 });
    c.call(t, "POST", "/api/reseller/codes", "/api/reseller/codes", Some(too_much)).await;
    let listed = c.call(t, "GET", "/api/reseller/codes", "/api/reseller/codes?status=unused", None).await;
    let id = listed["data"][0]["id"].clone();
    let csv = c.call(t, "GET", "/api/reseller/codes/export", "/api/reseller/codes/export", None).await;
    assert!(csv.as_str().unwrap().contains("resold"), "{csv}");
    let void = format!("/api/reseller/codes/{id}/void");
    let refund = c.call(t, "POST", "/api/reseller/codes/{id}/void", &void, None).await;
    assert_eq!(refund["refunded"], "2.00", "{refund}");
    c.call(t, "POST", "/api/reseller/codes/{id}/void", &void, None).await;
    let batch = Some(json!({ "batch": "resold" }));
    c.call(t, "POST", "/api/reseller/codes/void", "/api/reseller/codes/void", batch).await;
    let invitees = c.call(t, "GET", "/api/reseller/invitees", "/api/reseller/invitees", None).await;
    assert_eq!(invitees["data"][0]["email"], "d***@example.com", "{invitees}");
    let transfer = json!({ "email": "doc@example.com", "amount": "1" });
    c.call(t, "POST", "/api/reseller/transfer", "/api/reseller/transfer", Some(transfer)).await;
    let overdraw = json!({ "email": "doc@example.com", "amount": "100000" });
    c.call(t, "POST", "/api/reseller/transfer", "/api/reseller/transfer", Some(overdraw)).await;
    c.call(ADMIN_TOKEN, "GET", "/api/reseller/invitees", "/api/reseller/invitees", None).await;
    c.call("not-a-token", "GET", "/api/reseller/codes", "/api/reseller/codes", None).await;
}

/// `POST /api/stripe/webhook`: refused unsigned, acknowledged when signed with the secret.
async fn stripe_webhook(c: &mut Checker<'_>) {
    let path = "/api/stripe/webhook";
    let event = crate::support::fake_stripe::event("customer.created", json!({ "id": "cus_1", "object": "customer" }));
    let unsigned = c.app.client.post(c.app.url(path)).json(&event);
    c.check(unsigned, "POST", path, path).await;
    let secret = json!({ "value": crate::support::fake_stripe::WEBHOOK_SECRET });
    c.call(ADMIN_TOKEN, "PUT", "/api/admin/settings/{key}", "/api/admin/settings/stripe.webhook_secret", Some(secret))
        .await;
    let body = event.to_string();
    let signature = crate::support::fake_stripe::signature(
        &body,
        crate::support::fake_stripe::WEBHOOK_SECRET,
        crate::support::fake_stripe::now_secs(),
    );
    let signed = c.app.client.post(c.app.url(path)).header("stripe-signature", signature).body(body);
    let answer = c.check(signed, "POST", path, path).await;
    assert_eq!(answer["outcome"], "ignored", "{answer}");
}
