//! A fake Stripe API: a real HTTP server on 127.0.0.1:0 that checks `POST /v1/checkout/sessions`
//! the way Stripe does (the secret key as a Bearer token, a form-encoded body with bracketed keys,
//! the parameters a `payment`-mode session requires, an idempotency key replaying the first
//! answer) and answers with a Checkout Session object shaped like Stripe's (API reference,
//! "The Checkout Session object"). It also serves a stand-in for Stripe's hosted payment page, and
//! writes the webhook events Stripe would send about a session, signed like Stripe signs them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

pub const SECRET_KEY: &str = "sk_test_51BurnCloudFakeStripeKey000000000000000000";
pub const WEBHOOK_SECRET: &str = "whsec_burncloud_fake_webhook_secret_0001";

/// One session the fake opened: the form it was asked with and the object it answered.
#[derive(Clone, Debug)]
pub struct Opened {
    pub form: BTreeMap<String, String>,
    pub headers: HeaderMap,
    pub session: Value,
}

#[derive(Clone, Default)]
struct Shared {
    opened: Arc<Mutex<Vec<Opened>>>,
    by_idempotency_key: Arc<Mutex<BTreeMap<String, Value>>>,
}

pub struct FakeStripe {
    pub port: u16,
    shared: Shared,
}

impl FakeStripe {
    pub async fn start() -> Self {
        let shared = Shared::default();
        let app = Router::new()
            .route("/v1/checkout/sessions", axum::routing::post(create_session))
            .route("/c/pay/{id}", axum::routing::get(hosted_page))
            .with_state(shared.clone());
        let port = crate::support::helpers::serve_locally(app).await;
        Self { port, shared }
    }

    /// `BURNCLOUD_STRIPE_*` pointing an app at this fake.
    pub fn env(&self, env: &mut BTreeMap<String, String>) {
        env.insert("BURNCLOUD_STRIPE_SECRET_KEY".into(), SECRET_KEY.into());
        env.insert("BURNCLOUD_STRIPE_WEBHOOK_SECRET".into(), WEBHOOK_SECRET.into());
        env.insert("BURNCLOUD_STRIPE_API_BASE".into(), format!("http://127.0.0.1:{}", self.port));
    }

    /// Every session opened, in order (idempotent replays are not new sessions).
    pub fn opened(&self) -> Vec<Opened> {
        self.shared.opened.lock().unwrap().clone()
    }

    pub fn last(&self) -> Opened {
        self.opened().pop().expect("no Checkout Session was opened")
    }
}

/// Stripe's error body.
fn stripe_error(status: StatusCode, kind: &str, code: Option<&str>, param: Option<&str>, message: &str) -> Response {
    let error = json!({ "error": { "type": kind, "code": code, "param": param, "message": message } });
    (status, axum::Json(error)).into_response()
}

async fn create_session(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let authorized =
        headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {SECRET_KEY}"));
    if !authorized {
        return stripe_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            None,
            None,
            "Invalid API Key provided: sk_test_****",
        );
    }
    let form_encoded = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form_encoded {
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, None, "Invalid request body");
    }
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok())
        && let Some(session) = shared.by_idempotency_key.lock().unwrap().get(key)
    {
        return axum::Json(session.clone()).into_response();
    }
    let form: BTreeMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let missing = |param: &str| {
        stripe_error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some("parameter_missing"),
            Some(param),
            &format!("Missing required param: {param}."),
        )
    };
    for param in ["mode", "success_url", "line_items[0][quantity]"] {
        if !form.contains_key(param) {
            return missing(param);
        }
    }
    if form["mode"] != "payment" {
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, Some("mode"), "Invalid mode");
    }
    let price = |field: &str| form.get(&format!("line_items[0][price_data][{field}]"));
    let (Some(currency), Some(amount), Some(_name)) =
        (price("currency"), price("unit_amount"), price("product_data][name"))
    else {
        return missing("line_items[0][price_data]");
    };
    let Ok(amount) = amount.parse::<i64>() else {
        return stripe_error(StatusCode::BAD_REQUEST, "invalid_request_error", None, None, "Invalid integer");
    };
    let quantity: i64 = form["line_items[0][quantity]"].parse().unwrap_or(0);
    let id = format!("cs_test_a1{}", burncloud::domain::token::random_alphanumeric(56));
    let now = burncloud::domain::time::now_ms() / 1000;
    let mut session = json!({
        "id": id,
        "object": "checkout.session",
        "adaptive_pricing": { "enabled": false },
        "after_expiration": null,
        "allow_promotion_codes": null,
        "amount_subtotal": amount * quantity,
        "amount_total": amount * quantity,
        "automatic_tax": { "enabled": false, "liability": null, "provider": null, "status": null },
        "billing_address_collection": null,
        "cancel_url": form.get("cancel_url"),
        "client_reference_id": form.get("client_reference_id"),
        "client_secret": null,
        "collected_information": null,
        "consent": null,
        "consent_collection": null,
        "created": now,
        "currency": currency,
        "currency_conversion": null,
        "custom_fields": [],
        "custom_text": { "after_submit": null, "shipping_address": null, "submit": null, "terms_of_service_acceptance": null },
        "customer": null,
        "customer_creation": "if_required",
        "customer_details": null,
        "customer_email": form.get("customer_email"),
    });
    // (Two literals: one is too deep for json!'s recursion limit.)
    let rest = json!({
        "discounts": [],
        "expires_at": now + 86_400,
        "invoice": null,
        "invoice_creation": { "enabled": false, "invoice_data": { "account_tax_ids": null, "custom_fields": null, "description": null, "footer": null, "issuer": null, "metadata": {}, "rendering_options": null } },
        "livemode": false,
        "locale": null,
        "metadata": form.iter().filter_map(|(k, v)| Some((k.strip_prefix("metadata[")?.strip_suffix(']')?.to_string(), json!(v)))).collect::<serde_json::Map<_, _>>(),
        "mode": "payment",
        "origin_context": null,
        "payment_intent": null,
        "payment_link": null,
        "payment_method_collection": "if_required",
        "payment_method_configuration_details": null,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "unpaid",
        "phone_number_collection": { "enabled": false },
        "recovered_from": null,
        "saved_payment_method_options": null,
        "setup_intent": null,
        "shipping_address_collection": null,
        "shipping_cost": null,
        "shipping_options": [],
        "status": "open",
        "submit_type": null,
        "subscription": null,
        "success_url": form.get("success_url"),
        "total_details": { "amount_discount": 0, "amount_shipping": 0, "amount_tax": 0 },
        "ui_mode": "hosted",
        "url": format!("http://{}/c/pay/{id}", headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1")),
    });
    if let (Some(session), Value::Object(rest)) = (session.as_object_mut(), rest) {
        session.extend(rest);
    }
    if let Some(key) = headers.get("idempotency-key").and_then(|v| v.to_str().ok()) {
        shared.by_idempotency_key.lock().unwrap().insert(key.to_string(), session.clone());
    }
    shared.opened.lock().unwrap().push(Opened { form, headers, session: session.clone() });
    axum::Json(session).into_response()
}

/// A stand-in for Stripe's hosted page: "Pay" leads to the session's success URL, "Back" to its
/// cancel URL (the test sends the webhook; the real page would make Stripe send it).
async fn hosted_page(State(shared): State<Shared>, Path(id): Path<String>) -> Response {
    let opened = shared.opened.lock().unwrap().iter().find(|o| o.session["id"] == id.as_str()).cloned();
    let Some(opened) = opened else { return StatusCode::NOT_FOUND.into_response() };
    let s = &opened.session;
    Html(format!(
        "<!doctype html><title>Stripe Checkout (fake)</title><p id=\"amount\">{} {}</p>\
         <a id=\"pay\" href=\"{}\">Pay</a> <a id=\"back\" href=\"{}\">Back</a>",
        s["amount_total"],
        s["currency"].as_str().unwrap_or_default(),
        s["success_url"].as_str().unwrap_or_default(),
        s["cancel_url"].as_str().unwrap_or_default(),
    ))
    .into_response()
}

/// The `Stripe-Signature` header for `body` at `timestamp`, computed here (not with the app's
/// code): HMAC-SHA256 over `"{t}.{body}"`.
pub fn signature(body: &str, secret: &str, timestamp: i64) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.{body}").as_bytes());
    format!("t={timestamp},v1={}", hex::encode(mac.finalize().into_bytes()))
}

pub fn now_secs() -> i64 {
    burncloud::domain::time::now_ms() / 1000
}

/// An event envelope as Stripe sends it.
pub fn event(kind: &str, object: Value) -> Value {
    json!({
        "id": format!("evt_1{}", burncloud::domain::token::random_alphanumeric(23)),
        "object": "event",
        "api_version": "2025-09-30.clover",
        "created": now_secs(),
        "data": { "object": object },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": kind,
    })
}

/// The session as `checkout.session.completed` carries it once the buyer paid.
pub fn paid_session(opened: &Opened) -> Value {
    let mut session = opened.session.clone();
    session["status"] = json!("complete");
    session["payment_status"] = json!("paid");
    session["payment_intent"] = json!(payment_intent_of(opened));
    session["customer_details"] = json!({ "email": session["customer_email"], "name": "Test Buyer", "address": null, "phone": null, "tax_exempt": "none", "tax_ids": [] });
    session
}

/// The PaymentIntent id the fake gives a session's payment.
pub fn payment_intent_of(opened: &Opened) -> String {
    let id = opened.session["id"].as_str().unwrap_or_default();
    format!("pi_3{}", &id[id.len().saturating_sub(20)..])
}

/// `charge.refunded` for a session's payment, `refunded` minor units refunded in all so far. Like
/// Stripe, the charge carries its PaymentIntent's metadata (`payment_intent_data[metadata]`).
pub fn refunded_charge(opened: &Opened, refunded: i64) -> Value {
    let amount = opened.session["amount_total"].as_i64().unwrap_or_default();
    let metadata: serde_json::Map<String, Value> = opened
        .form
        .iter()
        .filter_map(|(k, v)| {
            Some((k.strip_prefix("payment_intent_data[metadata][")?.strip_suffix(']')?.to_string(), json!(v)))
        })
        .collect();
    json!({
        "metadata": metadata,
        "id": format!("ch_3{}", burncloud::domain::token::random_alphanumeric(20)),
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": refunded,
        "captured": true,
        "currency": opened.session["currency"],
        "paid": true,
        "payment_intent": payment_intent_of(opened),
        "refunded": refunded >= amount,
        "status": "succeeded",
    })
}

/// A Dispute of a session's payment, as the `charge.dispute.*` events carry it.
pub fn dispute(opened: &Opened, id: &str, amount: i64, status: &str) -> Value {
    json!({
        "id": id,
        "object": "dispute",
        "amount": amount,
        "balance_transactions": [],
        "charge": format!("ch_3{}", burncloud::domain::token::random_alphanumeric(20)),
        "created": now_secs(),
        "currency": opened.session["currency"],
        "is_charge_refundable": false,
        "livemode": false,
        "metadata": {},
        "payment_intent": payment_intent_of(opened),
        "reason": "fraudulent",
        "status": status,
    })
}
