//! Top-ups paid through Stripe Checkout (docs/payments.md).
//!
//! The flow: the console quotes an amount ([`TopupSettings::quote`]), writes a pending payment
//! row and opens a Checkout Session for it ([`checkout`]); Stripe sends the buyer back to the
//! success page, which only *shows* the payment's state, and tells the server through a signed
//! webhook ([`signature`], [`events`]) — the only thing that ever credits a balance, exactly once
//! (`services::payments`).

pub mod checkout;
pub mod events;
pub mod signature;

/// Top-up pricing is pure arithmetic, kept in `domain::topup` (the settings snapshot holds it).
pub use crate::domain::topup::{Quote, QuoteError, TopupSettings, exponent, format_charge, format_minor};

/// A payment's status in words, for the pages (translated by their templates).
pub fn status_text(status: &str) -> &'static str {
    match status {
        "pending" => "Awaiting payment",
        "paid" => "Paid",
        "failed" => "Failed",
        "expired" => "Expired",
        "refunded" => "Refunded",
        "partially_refunded" => "Partially refunded",
        _ => "Unknown",
    }
}

/// Credit to take back for a refund: the share of `credit` that the newly refunded part of the
/// charge stands for, computed from the running totals so partial refunds never drift by rounding.
pub fn refund_credit(credit: i64, charge: i64, refunded_before: i64, refunded_now: i64) -> i64 {
    let share = |refunded: i64| i128::from(credit) * i128::from(refunded.clamp(0, charge)) / i128::from(charge.max(1));
    i64::try_from(share(refunded_now) - share(refunded_before)).unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_refunds_add_up_to_the_whole_credit() {
        let credit = 10_000_000_001;
        let steps = [0, 333, 666, 1_000];
        let taken: i64 = steps.windows(2).map(|w| refund_credit(credit, 1_000, w[0], w[1])).sum();
        assert_eq!(taken, credit);
        assert_eq!(refund_credit(credit, 1_000, 1_000, 1_000), 0);
        assert_eq!(refund_credit(credit, 1_000, 0, 5_000), credit, "never more than the credit");
    }
}
