//! Stripe's harder cases (issue 13, item 7): a refund that arrives before its payment is retried,
//! not lost; refunds take back balance a gateway process leased; a refund reverses the inviter's
//! top-up reward; disputes take the credit back and a won dispute gives it back.

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::Row;

use crate::console_auth::Browser;
use crate::leases::leased;
use crate::payments::{payment_status, send_event, spawn_with_stripe, start_topup, user_id, webhook_events};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::fake_stripe::{self, FakeStripe};
use crate::support::helpers::{Backend, TestApp};

db_tests!(
    a_refund_before_its_payment_is_retried_until_the_payment_is_in,
    refunds_take_leased_balance_back_first,
    a_full_refund_reverses_the_inviters_reward,
    disputes_take_the_credit_back_and_a_won_dispute_gives_it_back,
);

const UNIT: i64 = 1_000_000_000;

async fn payment(app: &TestApp, id: i64) -> burncloud::db::payments::Payment {
    burncloud::db::payments::get(app.db.pool(), id).await.unwrap().unwrap()
}

async fn flag(app: &TestApp, user: i64) -> Option<String> {
    sqlx::query("SELECT flag FROM users WHERE id = $1").bind(user).fetch_one(app.db.pool()).await.unwrap().get(0)
}

async fn a_refund_before_its_payment_is_retried_until_the_payment_is_in(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("early@example.com").await;
    let user = user_id(&app, "early@example.com").await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    assert!(
        opened.form.get("payment_intent_data[metadata][burncloud_payment_id]") == Some(&id.to_string()),
        "the PaymentIntent (and so its charges) names the payment: {:?}",
        opened.form
    );

    // Stripe sends the refund before checkout.session.completed: not acknowledged, nothing moves,
    // and the event id is not claimed, so Stripe's retry is not taken for a replay.
    let refund = fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 400));
    for _ in 0..2 {
        let (status, body) = send_event(&app, &refund).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "retry_later", "{body}");
    }
    assert_eq!(webhook_events(&app).await, 0, "the event id is not stored");
    assert_eq!((app.balance(user).await, payment_status(&app, id).await.as_str()), (0, "pending"));
    assert_eq!(payment(&app, id).await.refunded, 0);

    // A charge of another product on the same Stripe account (no BurnCloud metadata) is ignored.
    let mut foreign = fake_stripe::refunded_charge(&opened, 100);
    foreign["payment_intent"] = json!("pi_another_product");
    foreign["metadata"] = json!({ "order": "42" });
    let (status, body) = send_event(&app, &fake_stripe::event("charge.refunded", foreign)).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")), "{body}");

    // The payment comes in, then Stripe retries the same refund event: it applies, once.
    let (status, _) =
        send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.balance(user).await, 10 * UNIT);
    let (status, body) = send_event(&app, &refund).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, 6 * UNIT);
    assert_eq!(payment_status(&app, id).await, "partially_refunded");
    let (status, body) = send_event(&app, &refund).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("duplicate")));
    assert_eq!(app.balance(user).await, 6 * UNIT);

    // A payment an operator marked failed has nothing to take back: acknowledged.
    let (failed, opened) = start_topup(&mut browser, &stripe, "5").await;
    let (status, _) = app.admin("POST", &format!("/api/admin/payments/{failed}/fail"), None).await;
    assert_eq!(status, 200);
    let (status, body) =
        send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 500))).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("ignored")), "{body}");
    assert_eq!(app.balance(user).await, 6 * UNIT);
    app.assert_ledger_consistent().await;
}

async fn refunds_take_leased_balance_back_first(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    app.add_channel(json!({
        "name": "c", "type": "openai", "base_url": fake.base_url("c"), "key": "sk-upstream", "models": ["gpt-test"]
    }))
    .await;
    app.set_price("gpt-test", json!({ "input": "1.00", "output": "2.00" })).await;
    let chat = json!({ "model": "gpt-test", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 10 });

    let mut browser = Browser::new(&app);
    browser.sign_up("leaser@example.com").await;
    let user = user_id(&app, "leaser@example.com").await;
    let (id, opened) = start_topup(&mut browser, &stripe, "10").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    let (status, key) = app.admin("POST", &format!("/api/admin/users/{user}/keys"), Some(json!({}))).await;
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().unwrap().to_string();

    // This process leases part of the balance for the request; another gateway process holds a
    // live lease of 3.00 more.
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    let balance = app.balance(user).await;
    assert!(leased(&app, user).await.0 > 0, "the gateway holds a lease");
    sqlx::query("UPDATE users SET leased = leased + $1 WHERE id = $2")
        .bind(3 * UNIT)
        .bind(user)
        .execute(app.db.pool())
        .await
        .unwrap();
    sqlx::query("INSERT INTO balance_leases (user_id, holder, amount, expires_at) VALUES ($1, 'other:1', $2, $3)")
        .bind(user)
        .bind(3 * UNIT)
        .bind(burncloud::domain::time::now_ms() + 60_000)
        .execute(app.db.pool())
        .await
        .unwrap();

    // A refund of 8.00: more than the unreserved balance, less than the balance. All of it is
    // taken back, from the leases too; no shortfall, no flag.
    let (status, body) =
        send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 800))).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, balance - 8 * UNIT);
    assert_eq!(payment(&app, id).await.unrecovered_credit, 0, "no false shortfall");
    assert_eq!(flag(&app, user).await, None);
    assert_eq!(leased(&app, user).await, (0, 0), "the leases were ended");
    app.assert_ledger_consistent().await;

    // What is left can still be spent; the rest of the charge is refunded: the balance goes to
    // zero and only what was really spent is unrecovered.
    assert_eq!(app.v1(&key, "/v1/chat/completions", &chat).await.status(), 200);
    let left = app.balance(user).await;
    assert!(leased(&app, user).await.0 > 0, "a new lease");
    let (status, _) =
        send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 1_000))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(app.balance(user).await, 0);
    assert_eq!(payment(&app, id).await.unrecovered_credit, 2 * UNIT - left, "exactly what the requests cost");
    assert_eq!(leased(&app, user).await, (0, 0));

    // The leased money cannot be spent after the refund: this process promised nothing more.
    let response = app.v1(&key, "/v1/chat/completions", &chat).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "insufficient_quota");
    assert_eq!(fake.received().len(), 2);
    app.assert_ledger_consistent().await;
}

async fn a_full_refund_reverses_the_inviters_reward(backend: Backend) {
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
    let invitee_id = user_id(&app, "invitee@example.com").await;
    let (id, opened) = start_topup(&mut invitee, &stripe, "10").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    assert_eq!(app.balance(inviter_id).await, UNIT, "10% of the first top-up");

    // Half refunded: half the reward goes back (proportional, like the credit).
    let (status, body) =
        send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 500))).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(invitee_id).await, 5 * UNIT);
    assert_eq!(app.balance(inviter_id).await, UNIT / 2);

    // The inviter spends 0.40 of the 0.50 left; the full refund reverses the rest of the reward:
    // 0.10 is taken, 0.40 is unrecovered and the inviter is flagged (never below zero).
    let (status, _) = app
        .admin(
            "POST",
            &format!("/api/admin/users/{inviter_id}/credit"),
            Some(json!({ "amount": "-0.40", "note": "spent" })),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) =
        send_event(&app, &fake_stripe::event("charge.refunded", fake_stripe::refunded_charge(&opened, 1_000))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((app.balance(invitee_id).await, app.balance(inviter_id).await), (0, 0));
    let refunded = payment(&app, id).await;
    assert_eq!((refunded.status.as_str(), refunded.unrecovered_credit), ("refunded", 400_000_000));
    assert!(flag(&app, inviter_id).await.unwrap().contains(&format!("payment #{id}")), "the inviter is flagged");
    assert_eq!(flag(&app, invitee_id).await, None, "the invitee's credit was all there");
    let reversed: i64 = sqlx::query(
        "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger WHERE user_id = $1 AND kind = 'refund'",
    )
    .bind(inviter_id)
    .fetch_one(app.db.pool())
    .await
    .unwrap()
    .get(0);
    assert_eq!(reversed, -600_000_000, "0.50 then 0.10 taken from the inviter");
    app.assert_ledger_consistent().await;
}

async fn disputes_take_the_credit_back_and_a_won_dispute_gives_it_back(backend: Backend) {
    let stripe = FakeStripe::start().await;
    let app = spawn_with_stripe(backend, &stripe).await;
    let mut browser = Browser::new(&app);
    browser.sign_up("disputer@example.com").await;
    let user = user_id(&app, "disputer@example.com").await;
    let (won, opened) = start_topup(&mut browser, &stripe, "10").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;

    // Opened: the disputed credit is taken back, once.
    let created =
        fake_stripe::event("charge.dispute.created", fake_stripe::dispute(&opened, "dp_won", 1_000, "needs_response"));
    let (status, body) = send_event(&app, &created).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, 0);
    assert_eq!(payment(&app, won).await.dispute_status.as_deref(), Some("open"));
    let (_, body) = send_event(&app, &created).await;
    assert_eq!(body["outcome"], "duplicate");
    assert_eq!(app.balance(user).await, 0);
    // Won: given back, once.
    let closed = fake_stripe::event("charge.dispute.closed", fake_stripe::dispute(&opened, "dp_won", 1_000, "won"));
    let (status, body) = send_event(&app, &closed).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, 10 * UNIT);
    assert_eq!(payment(&app, won).await.dispute_status.as_deref(), Some("won"));
    send_event(&app, &closed).await;
    let lost_again =
        fake_stripe::event("charge.dispute.closed", fake_stripe::dispute(&opened, "dp_won", 1_000, "lost"));
    send_event(&app, &lost_again).await;
    assert_eq!(app.balance(user).await, 10 * UNIT, "a closed dispute moves nothing more");
    app.assert_ledger_consistent().await;

    // A second payment, mostly spent, then disputed and lost: down to zero, never below; the
    // shortfall is recorded and the account flagged.
    let (lost, opened) = start_topup(&mut browser, &stripe, "20").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    let (status, _) = app
        .admin("POST", &format!("/api/admin/users/{user}/credit"), Some(json!({ "amount": "-25.00", "note": "spent" })))
        .await;
    assert_eq!(status, 200);
    let dispute = |status: &str| fake_stripe::dispute(&opened, "dp_lost", 2_000, status);
    send_event(&app, &fake_stripe::event("charge.dispute.created", dispute("needs_response"))).await;
    assert_eq!(app.balance(user).await, 0);
    assert_eq!(payment(&app, lost).await.unrecovered_credit, 15 * UNIT);
    assert!(flag(&app, user).await.unwrap().contains(&format!("payment #{lost}")));
    let (status, body) = send_event(&app, &fake_stripe::event("charge.dispute.closed", dispute("lost"))).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    let p = payment(&app, lost).await;
    assert_eq!((p.dispute_status.as_deref(), p.unrecovered_credit), (Some("lost"), 15 * UNIT));
    assert_eq!(app.balance(user).await, 0);

    // A third whose close (lost) arrives before its creation: taken back at the close; the late
    // creation changes nothing.
    let (early, opened) = start_topup(&mut browser, &stripe, "5").await;
    send_event(&app, &fake_stripe::event("checkout.session.completed", fake_stripe::paid_session(&opened))).await;
    let dispute = |status: &str| fake_stripe::dispute(&opened, "dp_early", 500, status);
    let (status, body) = send_event(&app, &fake_stripe::event("charge.dispute.closed", dispute("lost"))).await;
    assert_eq!((status, body["outcome"].as_str()), (StatusCode::OK, Some("applied")), "{body}");
    assert_eq!(app.balance(user).await, 0);
    let (_, body) = send_event(&app, &fake_stripe::event("charge.dispute.created", dispute("needs_response"))).await;
    assert_eq!(body["outcome"], "duplicate");
    assert_eq!(payment(&app, early).await.dispute_status.as_deref(), Some("lost"));
    assert_eq!(app.balance(user).await, 0);

    // A dispute of another amount or currency than the payment's is refused.
    let mut odd = fake_stripe::dispute(&opened, "dp_odd", 500, "needs_response");
    odd["currency"] = json!("eur");
    let (status, _) = send_event(&app, &fake_stripe::event("charge.dispute.created", odd)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    app.assert_ledger_consistent().await;
}
