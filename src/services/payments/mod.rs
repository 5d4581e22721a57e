//! Top-ups: opening a Stripe Checkout for a quoted amount, and acting on Stripe's verified webhook
//! events — the only place a top-up credits a balance.
//!
//! Exactly once: every event is handled in one transaction that (1) records the event id under a
//! unique key (a replay finds it and changes nothing), (2) moves the payment with a conditional
//! UPDATE (`… WHERE status = 'pending'` and matching session, amount and currency: exactly one
//! row, or nothing), and (3) moves the balance with its ledger row (under an idempotency key).
//! Concurrent duplicates queue on the event's key and find it taken.

pub mod admin;

use crate::billing;
use crate::db::ledger::{self, Entry, Kind};
use crate::db::payments::{self, Payment};
use crate::db::{invitations, users};
use crate::domain::money::Money;
use crate::mail::ActionMail;
use crate::payments::checkout::{self, CheckoutError, SessionRequest};
use crate::payments::events::{Charge, Dispute, Envelope, Event, Session};
use crate::payments::{QuoteError, format_charge, refund_credit};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum TopupError {
    #[error("Top-ups are not available on this site yet.")]
    NotAvailable,
    #[error(transparent)]
    Quote(#[from] QuoteError),
    #[error("The payment page could not be opened. Try again in a moment.")]
    Checkout(#[source] CheckoutError),
    #[error("Too many unfinished payments. Finish one, or try again in an hour.")]
    TooManyPending,
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Unfinished top-ups a user may open per hour.
pub const MAX_PENDING_PER_HOUR: i64 = 10;

/// Writes a pending payment for `charge` (minor units of the top-up currency) and opens its
/// Checkout Session; the Stripe page to send the buyer to.
pub async fn start(state: &AppState, user_id: i64, charge: i64) -> Result<String, TopupError> {
    let site = state.site();
    let Some(secret_key) = site.stripe_secret_key.as_ref().filter(|_| site.stripe_ready()) else {
        return Err(TopupError::NotAvailable);
    };
    let user = users::summary(state.db().pool(), user_id).await?.ok_or(TopupError::NotAvailable)?;
    let quote = site.topup.quote(charge, &user.group)?;
    // Each attempt opens a Stripe session: a user (or a script with their session) cannot open
    // them without bound.
    let hour_ago = crate::domain::time::now_ms() - 3_600_000;
    if payments::pending_since(state.db().pool(), user_id, hour_ago).await? >= MAX_PENDING_PER_HOUR {
        return Err(TopupError::TooManyPending);
    }
    let id =
        payments::insert_pending(state.db().writer(), user_id, quote.credit, quote.charge, &quote.currency).await?;
    let link = |path: &str| {
        let mut url = state.public_url();
        url.set_path(path);
        url.set_query(Some(&format!("payment={id}")));
        url.to_string()
    };
    let description = format!("{} balance: {} {}", site.site_name, Money(quote.credit), site.currency);
    let request = SessionRequest {
        payment_id: id,
        user_id,
        email: &user.email,
        charge: quote.charge,
        currency: &quote.currency,
        description: &description,
        success_url: &link("/console/topup/success"),
        cancel_url: &link("/console/topup/cancel"),
    };
    match checkout::open_session(&state.config().stripe.api_base, secret_key.expose(), &request).await {
        Ok(session) => {
            payments::set_session(state.db().writer(), id, &session.id, &session.url).await?;
            tracing::info!(payment = id, user = user_id, charge = quote.charge, currency = %quote.currency, "checkout opened");
            Ok(session.url)
        }
        Err(e) => {
            tracing::warn!(payment = id, error = %e, "opening a Stripe Checkout failed");
            payments::end_pending(state.db().writer(), id, "failed", &e.to_string()).await?;
            Err(TopupError::Checkout(e))
        }
    }
}

/// What became of a verified event (all answered 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Seen before, or already applied through another event: nothing changed.
    Duplicate,
    /// Not an event a top-up waits for, or not about one of ours.
    Ignored,
}

/// Why an event was refused (400: Stripe shows it in the endpoint's log and retries), or put off.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("{0}")]
    Rejected(&'static str),
    /// Came before the event it depends on (503: Stripe retries; its id is not claimed).
    #[error("{0}")]
    NotYet(&'static str),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

/// Acts on one verified event.
pub async fn handle(state: &AppState, envelope: &Envelope) -> Result<Outcome, EventError> {
    match &envelope.event {
        Event::SessionPaid(session) => session_paid(state, envelope, session).await,
        Event::SessionFailed(session) => session_ended(state, envelope, session, "failed").await,
        Event::SessionExpired(session) => session_ended(state, envelope, session, "expired").await,
        Event::Refunded(charge) => refunded(state, envelope, charge).await,
        Event::DisputeOpened(dispute) => dispute_opened(state, envelope, dispute).await,
        Event::DisputeClosed(dispute) => dispute_closed(state, envelope, dispute).await,
        Event::Ignored => Ok(Outcome::Ignored),
    }
}

/// The payment a Checkout Session names; `None` when the session is not a top-up of ours.
async fn payment_of(state: &AppState, session: &Session) -> Result<Option<Payment>, EventError> {
    let Some(reference) = session.client_reference_id.as_deref() else { return Ok(None) };
    let id = reference.parse::<i64>().map_err(|_| EventError::Rejected("client_reference_id is not a payment"))?;
    let payment = payments::get(state.db().pool(), id).await?.ok_or(EventError::Rejected("no such payment"))?;
    // The session must be the one opened for this payment: an event cannot point at another
    // user's payment by naming its id.
    if payment.session_id.as_deref() != Some(session.id.as_str()) {
        return Err(EventError::Rejected("the Checkout Session is not this payment's"));
    }
    Ok(Some(payment))
}

async fn session_paid(state: &AppState, envelope: &Envelope, session: &Session) -> Result<Outcome, EventError> {
    if session.payment_status != "paid" {
        // `unpaid`: an asynchronous method (a bank debit) is still settling; its own event follows.
        return Ok(Outcome::Ignored);
    }
    let Some(payment) = payment_of(state, session).await? else { return Ok(Outcome::Ignored) };
    let (Some(amount), Some(currency)) = (session.amount_total, session.currency.as_deref()) else {
        return Err(EventError::Rejected("the session has no amount"));
    };
    if amount != payment.charge || currency != payment.currency {
        tracing::warn!(payment = payment.id, amount, currency, "a paid session does not match its payment");
        return Err(EventError::Rejected("the amount or currency does not match the payment"));
    }
    let mut tx = state.db().writer().begin().await?;
    if !payments::record_event(&mut tx, &envelope.id, &envelope.kind).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let claimed =
        payments::claim_paid(&mut tx, payment.id, &session.id, amount, currency, session.payment_intent.as_deref())
            .await?;
    let Some((user_id, credit)) = claimed else {
        tx.rollback().await?;
        // Paid already (the same session under another event id) is a duplicate; anything else
        // (failed, expired, refunded) is for an operator to look at.
        return match payments::get(state.db().pool(), payment.id).await? {
            Some(p) if p.status == "paid" || p.status.ends_with("refunded") => Ok(Outcome::Duplicate),
            _ => Err(EventError::Rejected("the payment is not pending")),
        };
    };
    let balance = ledger::credit(&mut tx, user_id, credit).await?.ok_or(EventError::Rejected("no such user"))?;
    let reference = format!("payment:{}", payment.id);
    let note = format!("Stripe {}", format_charge(amount, currency));
    let idempotency_key = format!("stripe:payment:{}", payment.id);
    let entry = Entry {
        user_id,
        kind: Kind::Topup,
        amount: credit,
        balance_after: balance,
        reference: Some(&reference),
        note: Some(&note),
        idempotency_key: Some(&idempotency_key),
    };
    ledger::insert(&mut tx, &entry).await?;
    reward_inviter(state, &mut tx, user_id, payment.id, credit).await?;
    tx.commit().await?;
    tracing::info!(payment = payment.id, user = user_id, event = %envelope.id, "top-up credited");
    send_receipt(state, &payment, balance);
    Ok(Outcome::Applied)
}

/// The inviter's share of an invitee's first top-up (`invitation.topup_reward_percent`), once:
/// the ledger's idempotency key holds even if two first top-ups land together.
async fn reward_inviter(
    state: &AppState,
    tx: &mut sqlx::AnyConnection,
    user_id: i64,
    payment_id: i64,
    credit: i64,
) -> Result<(), sqlx::Error> {
    let percent = i64::from(state.site().topup_reward_percent);
    if percent == 0 || payments::paid_before(tx, user_id, payment_id).await? {
        return Ok(());
    }
    let reward = credit * percent / 100;
    let Some(inviter) = invitations::inviter_of(&mut *tx, user_id).await?.filter(|_| reward > 0) else {
        return Ok(());
    };
    let Some(balance) = ledger::credit(tx, inviter, reward).await? else { return Ok(()) };
    let reference = format!("payment:{payment_id}");
    let idempotency_key = reward_key(user_id);
    let entry = Entry {
        user_id: inviter,
        kind: Kind::InvitationReward,
        amount: reward,
        balance_after: balance,
        reference: Some(&reference),
        note: Some("first top-up of an invited user"),
        idempotency_key: Some(&idempotency_key),
    };
    ledger::insert(tx, &entry).await
}

async fn session_ended(
    state: &AppState,
    envelope: &Envelope,
    session: &Session,
    status: &str,
) -> Result<Outcome, EventError> {
    let Some(payment) = payment_of(state, session).await? else { return Ok(Outcome::Ignored) };
    let mut tx = state.db().writer().begin().await?;
    if !payments::record_event(&mut tx, &envelope.id, &envelope.kind).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let reason = if status == "expired" { "the payment page expired" } else { "the payment did not go through" };
    let moved = payments::end_pending(&mut *tx, payment.id, status, reason).await?;
    tx.commit().await?;
    Ok(if moved { Outcome::Applied } else { Outcome::Duplicate })
}

/// `charge.refunded`: takes back the refunded share of the credit, and the same share of the
/// inviter's first-top-up reward. Leased balance is taken back too (the leases end) before any
/// shortfall is declared; a balance already spent is taken down to zero, never below; what could
/// not be taken back is recorded on the payment and the account is flagged (docs/payments.md).
///
/// A refund of a payment we have not recorded as paid yet (Stripe does not order events: the
/// refund may come before `checkout.session.completed`) is answered 503 without claiming its
/// event id, so Stripe's retry applies it once the payment is in.
async fn refunded(state: &AppState, envelope: &Envelope, charge: &Charge) -> Result<Outcome, EventError> {
    let known = match charge.payment_intent.as_deref() {
        Some(intent) => payments::by_payment_intent(state.db().pool(), intent).await?,
        None => None,
    };
    let payment = match known {
        Some(payment) => payment,
        None => match not_yet_recorded(state, charge).await? {
            Some(outcome) => return Ok(outcome),
            None => return Err(EventError::NotYet("the payment this refund is for is not recorded as paid yet")),
        },
    };
    if charge.amount != payment.charge || charge.currency != payment.currency {
        return Err(EventError::Rejected("the charge does not match the payment"));
    }
    let reward = reward_of(state, &payment).await?;
    give_back_leases(state, payment.user_id, reward.as_ref().map(|r| r.0)).await;
    let mut tx = state.db().writer().begin().await?;
    if !payments::record_event(&mut tx, &envelope.id, &envelope.kind).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    // Read inside the transaction: the running total this event moves from.
    let Some(current) = payments::get(&mut *tx, payment.id).await? else {
        tx.rollback().await?;
        return Ok(Outcome::Ignored);
    };
    if charge.amount_refunded <= current.refunded || !matches!(current.status.as_str(), "paid" | "partially_refunded") {
        tx.commit().await?; // the event is recorded; an older or repeated total changes nothing
        return Ok(Outcome::Duplicate);
    }
    let debit = refund_credit(current.credit, current.charge, current.refunded, charge.amount_refunded);
    let note =
        format!("Stripe refund of {}", format_charge(charge.amount_refunded - current.refunded, &current.currency));
    let taken = take_back_for(&mut tx, current.user_id, current.id, debit, &note, |taken| {
        format!(
            "A Stripe refund of payment #{} took back {} of {}: {} was already spent.",
            current.id,
            Money(taken),
            Money(debit),
            Money(debit - taken)
        )
    })
    .await?;
    let mut unrecovered = debit - taken;
    // The inviter's reward shrinks in the same proportion (all of it on a full refund).
    let reversal = reward.map(|(inviter, amount)| {
        (inviter, refund_credit(amount, current.charge, current.refunded, charge.amount_refunded))
    });
    let reward_unrecovered = match reversal {
        Some((inviter, amount)) if amount > 0 => reverse_reward(&mut tx, &current, inviter, amount).await?,
        _ => 0,
    };
    unrecovered += reward_unrecovered;
    let fully = charge.amount_refunded >= current.charge;
    if !payments::record_refund(&mut tx, current.id, current.refunded, charge.amount_refunded, fully, unrecovered)
        .await?
    {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    tx.commit().await?;
    tracing::info!(payment = current.id, taken, unrecovered, event = %envelope.id, "refund applied");
    Ok(Outcome::Applied)
}

/// A refund whose PaymentIntent we do not know: `Some(outcome)` to acknowledge it, `None` when it
/// is one of ours whose payment is not recorded as paid yet (retry later).
async fn not_yet_recorded(state: &AppState, charge: &Charge) -> Result<Option<Outcome>, EventError> {
    // Without our metadata the charge is not a top-up of ours (another product on the account).
    let Some(reference) = charge.payment_id() else { return Ok(Some(Outcome::Ignored)) };
    let id = reference.parse::<i64>().map_err(|_| EventError::Rejected("the charge names no payment"))?;
    let payment = payments::get(state.db().pool(), id).await?.ok_or(EventError::Rejected("no such payment"))?;
    match payment.status.as_str() {
        "pending" => Ok(None),
        // Marked failed or expired: nothing was credited, so there is nothing to take back.
        "failed" | "expired" => Ok(Some(Outcome::Ignored)),
        // Paid under another PaymentIntent: not this charge's payment.
        _ => Err(EventError::Rejected("the charge does not match the payment")),
    }
}

/// The inviter's first-top-up reward credited for this payment: `(inviter, amount)`.
async fn reward_of(state: &AppState, payment: &Payment) -> Result<Option<(i64, i64)>, sqlx::Error> {
    let key = reward_key(payment.user_id);
    let reference = format!("payment:{}", payment.id);
    Ok(ledger::keyed(state.db().pool(), &key)
        .await?
        .filter(|(_, _, r)| r.as_deref() == Some(reference.as_str()))
        .map(|(inviter, amount, _)| (inviter, amount)))
}

fn reward_key(invitee: i64) -> String {
    format!("stripe:first-topup-reward:{invitee}")
}

/// This process's unpromised leases on the payer's (and the inviter's) balance go back first, so
/// the take-back below finds them in the balance (other processes' are ended in the transaction).
async fn give_back_leases(state: &AppState, user_id: i64, inviter: Option<i64>) {
    for user in std::iter::once(user_id).chain(inviter) {
        if let Err(e) = state.billing().give_back_lease(user).await {
            tracing::warn!(user, error = %e, "could not give a lease back before a take-back");
        }
    }
}

/// Takes up to `amount` back from the user's balance for the payment (never below zero, leases
/// included) with its `refund` ledger row, and flags the account with `shortfall(taken)` when part
/// of it was already spent. What was taken.
async fn take_back_for(
    tx: &mut sqlx::AnyConnection,
    user_id: i64,
    payment_id: i64,
    amount: i64,
    note: &str,
    shortfall: impl FnOnce(i64) -> String,
) -> Result<i64, sqlx::Error> {
    let (taken, balance) = billing::take_back(tx, user_id, amount).await?;
    let reference = format!("payment:{payment_id}");
    let entry = Entry {
        user_id,
        kind: Kind::Refund,
        amount: -taken,
        balance_after: balance,
        reference: Some(&reference),
        note: Some(note),
        idempotency_key: None,
    };
    ledger::insert(tx, &entry).await?;
    if taken < amount {
        users::set_flag(&mut *tx, user_id, &shortfall(taken)).await?;
    }
    Ok(taken)
}

/// Takes `amount` of the inviter's reward back (never below zero, leases included), with its
/// ledger row; flags the inviter for what could not be. What could not be taken back.
async fn reverse_reward(
    tx: &mut sqlx::AnyConnection,
    payment: &Payment,
    inviter: i64,
    amount: i64,
) -> Result<i64, sqlx::Error> {
    let note = "invitation reward reversed: the invited user's top-up was refunded";
    let taken = take_back_for(tx, inviter, payment.id, amount, note, |taken| {
        format!(
            "The refund of an invited user's payment #{} reversed {} of this account's reward: {} was already spent.",
            payment.id,
            Money(amount),
            Money(amount - taken)
        )
    })
    .await?;
    Ok(amount - taken)
}

/// `charge.dispute.created`: the disputed share of the credit is taken back like a refund (leases
/// included, never below zero, a shortfall flagged); given back if the dispute is won.
async fn dispute_opened(state: &AppState, envelope: &Envelope, dispute: &Dispute) -> Result<Outcome, EventError> {
    let Some(payment) = disputed_payment(state, dispute).await? else { return Ok(Outcome::Ignored) };
    give_back_leases(state, payment.user_id, None).await;
    let mut tx = state.db().writer().begin().await?;
    if !payments::record_event(&mut tx, &envelope.id, &envelope.kind).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    if !payments::open_dispute(&mut tx, payment.id, &dispute.id, dispute.amount, "open").await? {
        tx.commit().await?; // recorded: the payment already has this dispute (or its close came first)
        return Ok(Outcome::Duplicate);
    }
    // Read inside the transaction: the refunds so far.
    let current = payments::get(&mut *tx, payment.id).await?.unwrap_or(payment);
    take_disputed(&mut tx, &current, dispute).await?;
    tx.commit().await?;
    tracing::info!(payment = current.id, dispute = %dispute.id, event = %envelope.id, "dispute opened");
    Ok(Outcome::Applied)
}

/// Takes back the disputed share of the payment's credit (not counting what refunds already
/// took), records it on the payment and writes its ledger row.
async fn take_disputed(tx: &mut sqlx::AnyConnection, payment: &Payment, dispute: &Dispute) -> Result<(), sqlx::Error> {
    let upto = (payment.refunded + dispute.amount).min(payment.charge);
    let debit = refund_credit(payment.credit, payment.charge, payment.refunded, upto);
    let note = format!("Stripe dispute of {}", format_charge(dispute.amount, &payment.currency));
    let taken = take_back_for(tx, payment.user_id, payment.id, debit, &note, |taken| {
        format!(
            "A Stripe dispute of payment #{} took back {} of {}: {} was already spent.",
            payment.id,
            Money(taken),
            Money(debit),
            Money(debit - taken)
        )
    })
    .await?;
    payments::record_dispute_take(tx, payment.id, taken, debit - taken).await?;
    Ok(())
}

/// `charge.dispute.closed`: won (or an inquiry closed without a chargeback) gives back what the
/// dispute took; lost keeps it. A close that arrives before the dispute's creation is recorded
/// as the dispute (a lost one takes the credit back then), so the late creation changes nothing.
async fn dispute_closed(state: &AppState, envelope: &Envelope, dispute: &Dispute) -> Result<Outcome, EventError> {
    let Some(payment) = disputed_payment(state, dispute).await? else { return Ok(Outcome::Ignored) };
    let won = matches!(dispute.status.as_str(), "won" | "warning_closed");
    if !won && dispute.status != "lost" {
        return Ok(Outcome::Ignored);
    }
    if !won {
        give_back_leases(state, payment.user_id, None).await;
    }
    let mut tx = state.db().writer().begin().await?;
    if !payments::record_event(&mut tx, &envelope.id, &envelope.kind).await? {
        tx.rollback().await?;
        return Ok(Outcome::Duplicate);
    }
    let status = if won { "won" } else { "lost" };
    if payments::open_dispute(&mut tx, payment.id, &dispute.id, dispute.amount, status).await? {
        if !won {
            let current = payments::get(&mut *tx, payment.id).await?.unwrap_or(payment);
            take_disputed(&mut tx, &current, dispute).await?;
        }
        tx.commit().await?;
        return Ok(Outcome::Applied);
    }
    match payments::dispute_of(&mut tx, payment.id).await? {
        Some((id, _)) if id != dispute.id => {
            tx.rollback().await?;
            return Err(EventError::Rejected("the payment has another dispute"));
        }
        _ => {}
    }
    let Some((taken, _)) = payments::close_dispute(&mut tx, payment.id, &dispute.id, won).await? else {
        tx.commit().await?; // closed already
        return Ok(Outcome::Duplicate);
    };
    if won && taken > 0 {
        let balance =
            ledger::credit(&mut tx, payment.user_id, taken).await?.ok_or(EventError::Rejected("no such user"))?;
        let reference = format!("payment:{}", payment.id);
        let entry = Entry {
            user_id: payment.user_id,
            kind: Kind::Refund,
            amount: taken,
            balance_after: balance,
            reference: Some(&reference),
            note: Some("Stripe dispute won: credit given back"),
            idempotency_key: None,
        };
        ledger::insert(&mut tx, &entry).await?;
    }
    tx.commit().await?;
    tracing::info!(payment = payment.id, dispute = %dispute.id, status, taken, event = %envelope.id, "dispute closed");
    Ok(Outcome::Applied)
}

/// The paid payment a dispute is about; `None` when it is not one of ours.
async fn disputed_payment(state: &AppState, dispute: &Dispute) -> Result<Option<Payment>, EventError> {
    let Some(intent) = dispute.payment_intent.as_deref() else { return Ok(None) };
    let Some(payment) = payments::by_payment_intent(state.db().pool(), intent).await? else { return Ok(None) };
    if dispute.currency != payment.currency || dispute.amount <= 0 || dispute.amount > payment.charge {
        return Err(EventError::Rejected("the dispute does not match the payment"));
    }
    Ok(Some(payment))
}

/// An operator gives up on a pending payment (`/admin/payments`); false when it was not pending.
/// A webhook that arrives later for it is refused, and the operator refunds it in Stripe.
pub async fn mark_failed(state: &AppState, id: i64) -> Result<bool, sqlx::Error> {
    payments::end_pending(state.db().writer(), id, "failed", "marked failed by an operator").await
}

fn send_receipt(state: &AppState, payment: &Payment, balance: i64) {
    let site = state.site();
    let mut link = state.public_url();
    link.set_path("/console/payments");
    let credited = format!("{} {}", Money(payment.credit), site.currency);
    let mail = ActionMail {
        lang: crate::i18n::Lang::En,
        site_name: site.site_name.clone(),
        subject: "Payment received",
        intro: "Thank you. Your payment was received and your balance has been credited.",
        action: "Your payments",
        link: link.to_string(),
        footnote: "Stripe sends its own receipt for the card payment. Keep this email for your records.",
        details: vec![
            ("Payment", format!("#{}", payment.id)),
            ("Amount paid", format_charge(payment.charge, &payment.currency)),
            ("Credited", credited),
            ("Balance", format!("{} {}", Money(balance), site.currency)),
        ],
    };
    state.send_mail_later(payment.email.clone(), mail);
}

/// One payment, `None` for no such payment.
pub async fn get(state: &AppState, id: i64) -> Result<Option<Payment>, sqlx::Error> {
    payments::get(state.db().pool(), id).await
}

/// The payments matching `filter`, newest first, at most `limit`.
pub async fn list(state: &AppState, filter: &payments::Filter, limit: i64) -> Result<Vec<Payment>, sqlx::Error> {
    payments::list(state.db().pool(), filter, limit).await
}
