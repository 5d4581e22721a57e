//! Stripe top-ups end to end against a fake Stripe (`fake_stripe.rs`): the top-up page opens a
//! Checkout Session Stripe would accept; only a verified webhook credits, exactly once whatever
//! replays and races do; unverified or inconsistent events change nothing; refunds take the
//! credit back (down to zero, flagging the account); the return pages and the history show it.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::console_auth::Browser;
use crate::support::fake_stripe::{self, FakeStripe, Opened, WEBHOOK_SECRET};
use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_with};
use crate::support::mail_sink;

db_tests!(
    the_top_up_page_opens_a_checkout_session_stripe_accepts,
    amounts_outside_the_limits_or_without_stripe_open_nothing,
    a_verified_webhook_credits_once_whatever_replays_and_races_do,
    unverified_webhooks_are_refused_and_change_nothing,
    events_that_do_not_match_their_payment_are_refused,
    refunds_take_the_credit_back_down_to_zero_and_flag_the_account,
    asynchronous_payments_credit_on_success_only,
    the_return_pages_show_the_payment_and_never_credit,
    the_first_top_up_of_an_invited_user_rewards_the_inviter_once,
);

const CREDIT_10: i64 = 10_000_000_000;

pub async fn spawn_with_stripe(backend: Backend, stripe: &FakeStripe) -> TestApp {
    spawn_app_with(backend, |env| stripe.env(env), |router| router).await
}

/// A signed-up user's id, by email.
pub async fn user_id(app: &TestApp, email: &str) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT id FROM users WHERE email = $1").bind(email).fetch_one(app.db.pool()).await.unwrap().get(0)
}

/// Posts the top-up form for `amount`; the payment id and the session the fake opened.
pub async fn start_topup(browser: &mut Browser<'_>, stripe: &FakeStripe, amount: &str) -> (i64, Opened) {
    let csrf = browser.csrf("/console/topup").await;
    let (status, location, page) = browser.post("/console/topup", &[("amount", amount), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let opened = stripe.last();
    assert_eq!(location, opened.session["url"].as_str().unwrap(), "the browser goes to Stripe's page");
    let id = opened.form["client_reference_id"].parse().unwrap();
    (id, opened)
}

/// POSTs a raw webhook body with a `Stripe-Signature` header (or none).
async fn post_webhook(app: &TestApp, body: &str, signature: Option<&str>) -> (StatusCode, Value) {
    let mut request = app.client.post(app.url("/api/stripe/webhook")).header("content-type", "application/json");
    if let Some(signature) = signature {
        request = request.header("stripe-signature", signature);
    }
    let response = request.body(body.to_string()).send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Sends an event the way Stripe does: signed now with the endpoint's secret.
pub async fn send_event(app: &TestApp, event: &Value) -> (StatusCode, Value) {
    let body = event.to_string();
    let signature = fake_stripe::signature(&body, WEBHOOK_SECRET, fake_stripe::now_secs());
    post_webhook(app, &body, Some(&signature)).await
}

pub async fn payment_status(app: &TestApp, id: i64) -> String {
    burncloud::db::payments::get(app.db.pool(), id).await.unwrap().unwrap().status
}

pub async fn webhook_events(app: &TestApp) -> i64 {
    use sqlx::Row;
    sqlx::query("SELECT COUNT(*) FROM webhook_events").fetch_one(app.db.pool()).await.unwrap().get(0)
}

async fn the_top_up_page_opens_a_checkout_session_stripe_accepts(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("payer@example.com").await;

    let (status, _, page) = browser.get("/console/topup").await;
    assert_eq!(status, StatusCode::OK);
    for offer in ["5.00 USD", "10.00 USD", "100.00 USD"] {
        assert!(page.contains(offer), "the preset {offer} is offered: {page}");
    }
    assert!(page.contains("From 1.00 to 10000.00 USD."), "{page}");
    // htmx quotes a custom amount as it is typed.
    let response = browser.client.get(app.url("/console/topup?amount=12.5")).header("hx-request", "true");
    let (_, _, fragment) = browser.send(response).await;
    assert!(
        fragment.contains("12.50 USD") && fragment.contains("12.50 USD") && !fragment.contains("<html"),
        "{fragment}"
    );

    // The page may send its form on to Stripe's payment page (browsers check redirects too).
    let response = browser.client.get(app.url("/console/topup")).send().await.unwrap();
    let csp = response.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with(&format!("form-action 'self' http://127.0.0.1:{}", stripe.port)), "{csp}");

    let (id, opened) = start_topup(&mut browser, &stripe, "12.50").await;
    // What Stripe received: its own parameters, form-encoded, with the secret key.
    let form = &opened.form;
    assert_eq!(form["mode"], "payment");
    assert_eq!(form["line_items[0][quantity]"], "1");
    assert_eq!(form["line_items[0][price_data][currency]"], "usd");
    assert_eq!(form["line_items[0][price_data][unit_amount]"], "1250");
    assert!(form["line_items[0][price_data][product_data][name]"].contains("12.50 USD"), "{form:?}");
    assert_eq!(form["customer_email"], "payer@example.com");
    assert_eq!(form["success_url"], format!("{}/console/topup/success?payment={id}", app.address));
    assert_eq!(form["cancel_url"], format!("{}/console/topup/cancel?payment={id}", app.address));
    assert_eq!(form["metadata[burncloud_payment_id]"], id.to_string());
    assert_eq!(opened.headers["idempotency-key"], format!("burncloud-topup-{id}").as_str());
    assert!(opened.headers["user-agent"].to_str().unwrap().contains("BurnCloud"));

    let payment = burncloud::db::payments::get(app.db.pool(), id).await.unwrap().unwrap();
    assert_eq!((payment.status.as_str(), payment.charge, payment.currency.as_str()), ("pending", 1_250, "usd"));
    assert_eq!(payment.credit, 12_500_000_000);
    assert_eq!(payment.session_id.as_deref(), opened.session["id"].as_str());
    assert_eq!(app.balance(user_id(&app, "payer@example.com").await).await, 0, "nothing credited before the webhook");

    // htmx posts get the Stripe page through HX-Redirect.
    let csrf = browser.csrf("/console/topup").await;
    let request = browser
        .client
        .post(app.url("/console/topup"))
        .header("hx-request", "true")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("amount=5&csrf={csrf}"));
    let response = request.header(reqwest::header::COOKIE, browser.cookie.clone().unwrap()).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(response.headers()["hx-redirect"], stripe.last().session["url"].as_str().unwrap());

    // The history lists both, pending, with a way back to Stripe's page.
    let (_, _, page) = browser.get("/console/payments").await;
    assert!(page.contains(&format!("data-testid=\"payment-{id}\"")) && page.contains("Awaiting payment"), "{page}");
    assert!(page.contains("Continue to payment") && page.contains("12.50 USD"), "{page}");
    // Ten unfinished payments in an hour are enough: the eleventh is refused before Stripe.
    for _ in 0..8 {
        start_topup(&mut browser, &stripe, "5").await;
    }
    let before = stripe.opened().len();
    let (status, _, page) = browser.post("/console/topup", &[("amount", "5"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Too many unfinished payments."), "{page}");
    assert_eq!(stripe.opened().len(), before);
    // Without the CSRF token nothing is opened.
    let before = stripe.opened().len();
    let (status, _, _) = browser.post("/console/topup", &[("amount", "10")]).await;
    assert_eq!((status, stripe.opened().len()), (StatusCode::FORBIDDEN, before));
}

async fn amounts_outside_the_limits_or_without_stripe_open_nothing(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("limits@example.com").await;
    let csrf = browser.csrf("/console/topup").await;
    for (amount, message) in [
        ("0.50", "The amount is below the minimum."),
        ("10000.01", "The amount is above the maximum."),
        ("ten", "Enter an amount like 10 or 12.50."),
        ("1.005", "Enter an amount like 10 or 12.50."),
        ("-5", "Enter an amount like 10 or 12.50."),
    ] {
        let (status, _, page) = browser.post("/console/topup", &[("amount", amount), ("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{amount}");
        assert!(page.contains(message), "{amount}: {page}");
    }
    assert!(stripe.opened().is_empty(), "Stripe was not asked");
    let payments = burncloud::db::payments::list(app.db.pool(), &Default::default(), 10).await.unwrap();
    assert!(payments.is_empty(), "no payment rows");

    // Settings change the limits, the currency and the group's bonus at once.
    for (key, value) in [("topup.min_amount", "20"), ("topup.group_bonus", "default=10")] {
        let (status, body) =
            app.admin("PUT", &format!("/api/admin/settings/{key}"), Some(json!({ "value": value }))).await;
        assert_eq!(status, 200, "{body}");
    }
    let (_, _, page) = browser.get("/console/topup").await;
    assert!(page.contains("+10%") && page.contains("22.00 USD") && !page.contains("pay-10.00"), "{page}");
    let (status, _, _) = browser.post("/console/topup", &[("amount", "10"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (id, _) = start_topup(&mut browser, &stripe, "20").await;
    let payment = burncloud::db::payments::get(app.db.pool(), id).await.unwrap().unwrap();
    assert_eq!((payment.charge, payment.credit), (2_000, 22_000_000_000), "the bonus is in the credit");

    // Stripe refusing the request: a friendly error, and the payment is failed with the reason.
    let wrong = spawn_app_with(
        backend,
        |env| {
            stripe.env(env);
            env.insert("BURNCLOUD_STRIPE_SECRET_KEY".into(), "sk_test_wrong_key".into());
        },
        |router| router,
    )
    .await;
    let mut browser = Browser::new(&wrong);
    browser.sign_up("refused@example.com").await;
    let csrf = browser.csrf("/console/topup").await;
    let (status, _, page) = browser.post("/console/topup", &[("amount", "10"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("The payment page could not be opened."), "{page}");
    assert!(!page.contains("sk_test_wrong_key"), "the key never shows");
    let failed = burncloud::db::payments::list(wrong.db.pool(), &Default::default(), 10).await.unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, "failed");
    assert!(failed[0].failure_reason.as_deref().unwrap().contains("401"), "{:?}", failed[0].failure_reason);

    // Without Stripe keys the page says so and the form is refused.
    let bare = spawn_app(backend).await;
    let mut browser = Browser::new(&bare);
    browser.sign_up("nostripe@example.com").await;
    let (status, _, page) = browser.get("/console/topup").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("data-testid=\"topup-unavailable\"") && !page.contains("data-testid=\"topup-offers\""));
    let csrf = browser.csrf("/console/billing").await;
    let (status, _, page) = browser.post("/console/topup", &[("amount", "10"), ("csrf", &csrf)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(page.contains("Top-ups are not available on this site yet."), "{page}");
    // ... and so is every webhook.
    let event = fake_stripe::event("checkout.session.completed", json!({}));
    let (status, body) = send_event(&bare, &event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"]["message"].as_str().unwrap().contains("no webhook signing secret"), "{body}");
}

async fn a_verified_webhook_credits_once_whatever_replays_and_races_do(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_app_with(
        backend,
        |env| {
            stripe.env(env);
            mail_sink::smtp_env(env);
        },
        |router| router,
    )
    .await;
    app.admin("PUT", "/api/admin/settings/signup.email_verification", Some(json!({ "value": "off" }))).await;
    let email = mail_sink::address("receipt");
    let mut browser = Browser::new(&app);
    browser.sign_up(&email).await;
    let user = user_id(&app, &email).await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;

    // Stripe delivers the same event five times at once (retries racing): one credit.
    let event = fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened));
    let deliveries = (0..5).map(|_| send_event(&app, &event));
    let answers = futures_util::future::join_all(deliveries).await;
    let outcomes: Vec<&str> = answers.iter().map(|(_, body)| body["outcome"].as_str().unwrap()).collect();
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK), "{answers:?}");
    assert_eq!(outcomes.iter().filter(|o| **o == "applied").count(), 1, "{outcomes:?}");
    assert_eq!(app.balance(user).await, CREDIT_10);
    assert_eq!(payment_status(&app, id).await, "paid");
    app.assert_ledger_consistent().await;

    // Replayed later, or the same session under another event id: nothing changes.
    let (status, body) = send_event(&app, &event).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
    let again = fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened));
    let (status, body) = send_event(&app, &again).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(app.balance(user).await, CREDIT_10, "credited once");

    // One ledger row, tied to the payment; the receipt mail; the pages show it.
    let (_, _, page) = browser.get("/console/billing").await;
    assert!(page.contains("Top-up — Stripe 10.00 USD") && page.contains("data-testid=\"balance\">10.00<"), "{page}");
    let mail = &mail_sink::sink().wait_for(&email, 1)[0];
    assert!(mail.subject.contains("Payment received"), "{}", mail.subject);
    assert!(mail.text.contains("Amount paid: 10.00 USD") && mail.text.contains("Credited: 10.00 USD"), "{}", mail.text);
    assert!(mail.text.contains(&format!("Payment: #{id}")) && mail.text.contains("/console/payments"), "{}", mail.text);
    let (_, _, page) = browser.get("/console/payments").await;
    assert!(page.contains("data-status=\"paid\"") && !page.contains("Continue to payment"), "{page}");
    // An event Stripe sends that is not about top-ups is acknowledged and ignored.
    let other = fake_stripe::event("customer.created", json!({ "id": "cus_1", "object": "customer" }));
    let (status, body) = send_event(&app, &other).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    app.assert_ledger_consistent().await;
}

async fn unverified_webhooks_are_refused_and_change_nothing(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("unverified@example.com").await;
    let user = user_id(&app, "unverified@example.com").await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    let event = fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened));
    let body = event.to_string();
    let now = fake_stripe::now_secs();

    let mut padded = event.clone();
    padded["padding"] = json!("x".repeat(70 * 1024));
    let padded = padded.to_string();
    let valid = fake_stripe::signature(&body, WEBHOOK_SECRET, now);
    let tampered = body.replace("\"amount_total\":1000", "\"amount_total\":100000");
    let cases: Vec<(&str, String, Option<String>)> = vec![
        ("a wrong secret", body.clone(), Some(fake_stripe::signature(&body, "whsec_someone_else", now))),
        ("no header", body.clone(), None),
        ("an old timestamp", body.clone(), Some(fake_stripe::signature(&body, WEBHOOK_SECRET, now - 301))),
        ("a future timestamp", body.clone(), Some(fake_stripe::signature(&body, WEBHOOK_SECRET, now + 301))),
        ("the empty secret", body.clone(), Some(fake_stripe::signature(&body, "", now))),
        ("a tampered body", tampered, Some(valid.clone())),
        ("a body over 64 KiB", padded.clone(), Some(fake_stripe::signature(&padded, WEBHOOK_SECRET, now))),
        ("a malformed header", body.clone(), Some("t=abc,v1=zz".into())),
        ("a v0 signature only", body.clone(), Some(valid.replace("v1=", "v0="))),
    ];
    for (what, body, signature) in cases {
        let (status, answer) = post_webhook(&app, &body, signature.as_deref()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_request", "{what}: {answer}");
    }
    assert_eq!(app.balance(user).await, 0);
    assert_eq!(payment_status(&app, id).await, "pending");
    assert_eq!(webhook_events(&app).await, 0, "no event was recorded");

    // A signed body that is not an event is refused too; the real one still works after all that.
    let junk = "{\"hello\":1}";
    let (status, _) = post_webhook(&app, junk, Some(&fake_stripe::signature(junk, WEBHOOK_SECRET, now))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, answer) = post_webhook(&app, &body, Some(&valid)).await;
    assert_eq!((status, answer["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{answer}");
    assert_eq!(app.balance(user).await, CREDIT_10);
    app.assert_ledger_consistent().await;
}

async fn events_that_do_not_match_their_payment_are_refused(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut victim = Browser::new(&app);
    victim.sign_up("victim@example.com").await;
    let mut attacker = Browser::new(&app);
    attacker.sign_up("attacker@example.com").await;
    let (victim_payment, victim_session) = start_topup(&mut victim, &stripe, "10").await;
    let (status, _) =
        send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&victim_session)))
            .await;
    assert_eq!(status, StatusCode::OK);
    let (attacker_payment, attacker_session) = start_topup(&mut attacker, &stripe, "10").await;
    let attacker_id = user_id(&app, "attacker@example.com").await;

    let refused = |mutate: &dyn Fn(&mut Value)| {
        let mut session = fake_stripe::paid_session(&attacker_session);
        mutate(&mut session);
        fake_stripe::event("checkout.session.completed", session)
    };
    let cases = [
        // The attacker's paid session pointing at the victim's (paid) payment.
        ("another user's payment", refused(&|s| s["client_reference_id"] = json!(victim_payment.to_string()))),
        ("another amount", refused(&|s| s["amount_total"] = json!(100_000))),
        ("another currency", refused(&|s| s["currency"] = json!("eur"))),
        ("no such payment", refused(&|s| s["client_reference_id"] = json!("999999"))),
        ("not a payment id", refused(&|s| s["client_reference_id"] = json!("../7"))),
        ("a session of the victim's", {
            let mut session = fake_stripe::paid_session(&victim_session);
            session["client_reference_id"] = json!(attacker_payment.to_string());
            fake_stripe::event("checkout.session.completed", session)
        }),
    ];
    for (what, event) in cases {
        let (status, body) = send_event(&app, &event).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    }
    assert_eq!(app.balance(attacker_id).await, 0);
    assert_eq!(app.balance(user_id(&app, "victim@example.com").await).await, CREDIT_10);
    assert_eq!(payment_status(&app, attacker_payment).await, "pending");

    // A payment an operator marked failed is not credited by a late event.
    assert!(burncloud::services::payments::mark_failed(&app.state, attacker_payment).await.unwrap());
    let late = fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&attacker_session));
    let (status, _) = send_event(&app, &late).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.balance(attacker_id).await, 0);
    assert_eq!(payment_status(&app, attacker_payment).await, "failed");
    app.assert_ledger_consistent().await;
}

async fn refunds_take_the_credit_back_down_to_zero_and_flag_the_account(backend: Backend) {
    use sqlx::Row;
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("refunded@example.com").await;
    let user = user_id(&app, "refunded@example.com").await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    assert_eq!(app.balance(user).await, CREDIT_10);

    // A partial refund of 4.00 takes back 4.00 of credit; its replay nothing.
    let partial = fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 400));
    let (status, body) = send_event(&app, &partial).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, 6_000_000_000);
    assert_eq!(payment_status(&app, id).await, "partially_refunded");
    send_event(&app, &partial).await;
    assert_eq!(app.balance(user).await, 6_000_000_000, "a replay takes nothing");
    app.assert_ledger_consistent().await;

    // The user spends 5.00 of the 6.00 left; the rest of the charge is refunded: 6.00 is due,
    // 1.00 can be taken back, the account never goes below zero and is flagged.
    let (status, body) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": "-5.00", "note": "spent" })))
        .await;
    assert_eq!(status, 200, "{body}");
    let full = fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 1_000));
    let (status, _) = send_event(&app, &full).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.balance(user).await, 0);
    let payment = burncloud::db::payments::get(app.db.pool(), id).await.unwrap().unwrap();
    assert_eq!(
        (payment.status.as_str(), payment.refunded, payment.unrecovered_credit),
        ("refunded", 1_000, 5_000_000_000)
    );
    let flag: Option<String> =
        sqlx::query("SELECT flag FROM users WHERE id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap().get(0);
    assert!(flag.unwrap().contains(&format!("payment #{id}")), "the account is flagged");
    let (_, _, page) = browser.get("/console/billing").await;
    assert!(page.contains("Refund — Stripe refund of 6.00 USD"), "{page}");
    // An older total arriving late changes nothing.
    send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 400))).await;
    assert_eq!(app.balance(user).await, 0);
    // A charge that is not one of ours is ignored; one with another amount is refused.
    let mut foreign = fake_stripe::refunded_charge(&opened, 100);
    foreign["payment_intent"] = json!("pi_someone_else");
    foreign["metadata"] = json!({});
    let (status, body) = send_event(&app, &fake_stripe::event("charge.refunded", foreign)).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    let mut mismatched = fake_stripe::refunded_charge(&opened, 100);
    mismatched["amount"] = json!(5_000);
    let (status, _) = send_event(&app, &fake_stripe::event("charge.refunded", mismatched)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.assert_ledger_consistent().await;
}

async fn asynchronous_payments_credit_on_success_only(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("bank@example.com").await;
    let user = user_id(&app, "bank@example.com").await;

    // A bank debit: completed but unpaid, then succeeded.
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    let mut unpaid = fake_stripe::paid_session(&opened);
    unpaid["payment_status"] = json!("unpaid");
    let (status, body) = send_event(&app, &fake_stripe::event("checkout.session.completed", unpaid)).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
    assert_eq!((app.balance(user).await, payment_status(&app, id).await.as_str()), (0, "pending"));
    let succeeded = fake_stripe::event("checkout.session.async_payment_succeeded", fake_stripe::paid_session(&opened));
    let (status, body) = send_event(&app, &succeeded).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")));
    assert_eq!(app.balance(user).await, CREDIT_10);

    // Another that fails, and one whose page expires: nothing credited.
    let (failed, opened) = start_topup(&mut browser, &stripe, "20").await;
    let mut session = fake_stripe::paid_session(&opened);
    session["payment_status"] = json!("unpaid");
    send_event(&app, &fake_stripe::event("checkout.session.async_payment_failed", session)).await;
    assert_eq!(payment_status(&app, failed).await, "failed");
    let (expired, opened) = start_topup(&mut browser, &stripe, "30").await;
    let mut session = opened.session.clone();
    session["status"] = json!("expired");
    send_event(&app, &fake_stripe::event("checkout.session.expired", session)).await;
    assert_eq!(payment_status(&app, expired).await, "expired");
    // A success arriving after the failure does not credit it.
    let late =
        fake_stripe::event("checkout.session.async_payment_succeeded", fake_stripe::paid_session(&stripe.opened()[1]));
    let (status, _) = send_event(&app, &late).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(app.balance(user).await, CREDIT_10);
    let (_, _, page) = browser.get("/console/payments").await;
    assert!(page.contains("data-status=\"failed\"") && page.contains("data-status=\"expired\""), "{page}");
    app.assert_ledger_consistent().await;
}

async fn the_return_pages_show_the_payment_and_never_credit(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("returning@example.com").await;
    let user = user_id(&app, "returning@example.com").await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    let success = format!("/console/topup/success?payment={id}");

    // Back from Stripe before the webhook: "crediting…", polling, nothing credited however often.
    for _ in 0..3 {
        let (status, _, page) = browser.get(&success).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("Payment received, crediting…") && page.contains("hx-trigger=\"every 2s\""), "{page}");
    }
    assert_eq!(app.balance(user).await, 0);
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    // htmx's next poll gets the status alone, without the trigger, with the new balance.
    let request = browser.client.get(app.url(&success)).header("hx-request", "true");
    let (_, _, fragment) = browser.send(request).await;
    assert!(
        fragment.starts_with("<div id=\"topup-status\"")
            || fragment.trim_start().starts_with("<div id=\"topup-status\""),
        "{fragment}"
    );
    assert!(fragment.contains("data-status=\"paid\"") && !fragment.contains("hx-trigger"), "{fragment}");
    assert!(fragment.contains("data-testid=\"balance\">10.00<"), "{fragment}");
    assert_eq!(app.balance(user).await, CREDIT_10);

    // Someone else's payment, or junk, is not found.
    let mut other = Browser::new(&app);
    other.sign_up("nosy@example.com").await;
    for path in [
        success.as_str(),
        "/console/topup/success?payment=abc",
        "/console/topup/success",
        "/console/topup/cancel?payment=1'",
    ] {
        let (status, _, page) = other.get(path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(page.contains("No such payment"), "{path}");
    }
    // Cancel returns to the top-up page, which says nothing was charged.
    let (cancel_payment, _) = start_topup(&mut browser, &stripe, "5").await;
    let (status, location, _) = browser.get(&format!("/console/topup/cancel?payment={cancel_payment}")).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/console/topup?cancelled=1"));
    let (_, _, page) = browser.get(&location).await;
    assert!(page.contains("Payment cancelled. Nothing was charged."), "{page}");
    assert_eq!(app.balance(user).await, CREDIT_10);
    // Logged out, the pages ask for a login.
    let mut stranger = Browser::new(&app);
    let (status, location, _) = stranger.get(&success).await;
    assert_eq!((status, location.as_str()), (StatusCode::SEE_OTHER, "/login"));
    // In Chinese.
    let csrf = browser.csrf("/console/topup").await;
    browser.post("/preferences", &[("lang", "zh"), ("next", "/console/topup"), ("csrf", &csrf)]).await;
    let (_, _, page) = browser.get(&success).await;
    assert!(page.contains("余额已到账。"), "{page}");
    let (_, _, page) = browser.get("/console/topup").await;
    assert!(page.contains("选择金额") && page.contains("金额范围：1.00 至 10000.00 USD。"), "{page}");
}

async fn the_first_top_up_of_an_invited_user_rewards_the_inviter_once(backend: Backend) {
    use sqlx::Row;
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    app.admin("PUT", "/api/admin/settings/invitation.topup_reward_percent", Some(json!({ "value": "10" }))).await;
    let mut inviter = Browser::new(&app);
    inviter.sign_up("inviter@example.com").await;
    let inviter_id = user_id(&app, "inviter@example.com").await;
    let code: String = sqlx::query("SELECT invite_code FROM users WHERE id = $1")
        .bind(inviter_id)
        .fetch_one(app.db.pool())
        .await
        .unwrap()
        .get(0);
    let mut invitee = Browser::new(&app);
    let csrf = invitee.csrf("/signup").await;
    let (status, _, _) = invitee
        .post(
            "/signup",
            &[("email", "invitee@example.com"), ("password", "a fine password"), ("invite", &code), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);

    for amount in ["10", "20"] {
        let (_, opened) = start_topup(&mut invitee, &stripe, amount).await;
        send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    }
    assert_eq!(app.balance(user_id(&app, "invitee@example.com").await).await, 3 * CREDIT_10);
    assert_eq!(app.balance(inviter_id).await, 1_000_000_000, "10% of the first top-up only");
    app.assert_ledger_consistent().await;
}
