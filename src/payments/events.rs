//! The webhook events a top-up listens to, read from a verified body: only the fields the
//! payment flow checks. Anything else parses as [`Event::Ignored`] and is answered 200, so Stripe
//! stops sending it.

use serde::Deserialize;

/// A Checkout Session as the `checkout.session.*` events carry it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    #[serde(default)]
    pub client_reference_id: Option<String>,
    #[serde(default)]
    pub amount_total: Option<i64>,
    #[serde(default)]
    pub currency: Option<String>,
    /// `paid`, `unpaid` (an asynchronous method still settling) or `no_payment_required`.
    pub payment_status: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
}

/// A Charge as `charge.refunded` carries it: the totals so far.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Charge {
    pub id: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
    pub amount: i64,
    pub amount_refunded: i64,
    pub currency: String,
    /// The PaymentIntent's metadata, which Stripe copies onto its charges: names our payment
    /// even before the payment's own event has told us its PaymentIntent.
    #[serde(default)]
    pub metadata: Option<Metadata>,
}

impl Charge {
    /// The BurnCloud payment id the charge's metadata names, if any.
    pub fn payment_id(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.burncloud_payment_id.as_deref())
    }
}

/// The metadata keys BurnCloud sets (others are ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    #[serde(default)]
    pub burncloud_payment_id: Option<String>,
}

/// A Dispute as the `charge.dispute.*` events carry it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct Dispute {
    pub id: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// Minor units disputed.
    pub amount: i64,
    pub currency: String,
    /// `needs_response`, `under_review`, `won`, `lost`, `warning_closed`, …
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// `checkout.session.completed` or `checkout.session.async_payment_succeeded`.
    SessionPaid(Session),
    /// `checkout.session.async_payment_failed`.
    SessionFailed(Session),
    /// `checkout.session.expired`.
    SessionExpired(Session),
    /// `charge.refunded`.
    Refunded(Charge),
    /// `charge.dispute.created`.
    DisputeOpened(Dispute),
    /// `charge.dispute.closed` (won, lost or an inquiry closed).
    DisputeClosed(Dispute),
    Ignored,
}

/// An event: its id (the idempotency key) and what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    pub id: String,
    pub kind: String,
    pub event: Event,
}

#[derive(Deserialize)]
struct Raw {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    data: RawData,
}

#[derive(Deserialize)]
struct RawData {
    object: serde_json::Value,
}

/// Parses a verified webhook body; `Err` names what is missing (never echoes the body).
pub fn parse(body: &[u8]) -> Result<Envelope, String> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| format!("not a Stripe event: {}", what_is_wrong(&e)))?;
    let session = |object: serde_json::Value| {
        serde_json::from_value::<Session>(object).map_err(|_| "the event's Checkout Session is incomplete".to_string())
    };
    let dispute = |object: serde_json::Value| {
        serde_json::from_value::<Dispute>(object).map_err(|_| "the event's Dispute is incomplete".to_string())
    };
    let event = match raw.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            Event::SessionPaid(session(raw.data.object)?)
        }
        "checkout.session.async_payment_failed" => Event::SessionFailed(session(raw.data.object)?),
        "checkout.session.expired" => Event::SessionExpired(session(raw.data.object)?),
        "charge.refunded" => Event::Refunded(
            serde_json::from_value(raw.data.object).map_err(|_| "the event's Charge is incomplete".to_string())?,
        ),
        "charge.dispute.created" => Event::DisputeOpened(dispute(raw.data.object)?),
        "charge.dispute.closed" => Event::DisputeClosed(dispute(raw.data.object)?),
        _ => Event::Ignored,
    };
    Ok(Envelope { id: raw.id, kind: raw.kind, event })
}

/// What is wrong with a body that is not an event, without quoting it.
fn what_is_wrong(e: &serde_json::Error) -> &'static str {
    use serde_json::error::Category;
    match e.classify() {
        Category::Io => "unreadable",
        Category::Syntax | Category::Eof => "invalid JSON",
        Category::Data => "missing id, type or data.object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_fields_the_flow_checks() {
        let body = br#"{"id":"evt_1","object":"event","type":"checkout.session.completed","data":{"object":
            {"id":"cs_1","object":"checkout.session","client_reference_id":"7","amount_total":1000,
             "currency":"usd","payment_status":"paid","payment_intent":"pi_1","extra":{"a":1}}}}"#;
        let e = parse(body).unwrap();
        assert_eq!(e.id, "evt_1");
        let Event::SessionPaid(s) = e.event else { panic!("{:?}", e.event) };
        assert_eq!(
            (s.client_reference_id.as_deref(), s.amount_total, s.payment_intent.as_deref()),
            (Some("7"), Some(1000), Some("pi_1"))
        );
        let other = br#"{"id":"evt_2","type":"customer.created","data":{"object":{"id":"cus_1"}}}"#;
        assert_eq!(parse(other).unwrap().event, Event::Ignored);
        assert!(parse(b"{").is_err());
        assert!(parse(br#"{"id":"evt_3","type":"charge.refunded","data":{"object":{"id":"ch_1"}}}"#).is_err());
        let refund = br#"{"id":"evt_4","type":"charge.refunded","data":{"object":{"id":"ch_1","amount":5,
            "amount_refunded":5,"currency":"usd","payment_intent":"pi_1","metadata":{"burncloud_payment_id":"9","x":"y"}}}}"#;
        let Event::Refunded(c) = parse(refund).unwrap().event else { panic!("a refund") };
        assert_eq!(c.payment_id(), Some("9"));
        let dispute = br#"{"id":"evt_5","type":"charge.dispute.closed","data":{"object":{"id":"dp_1","amount":5,
            "currency":"usd","payment_intent":"pi_1","status":"won","charge":"ch_1"}}}"#;
        let Event::DisputeClosed(d) = parse(dispute).unwrap().event else { panic!("a dispute") };
        assert_eq!((d.id.as_str(), d.status.as_str(), d.amount), ("dp_1", "won", 5));
        assert!(parse(br#"{"id":"evt_6","type":"charge.dispute.created","data":{"object":{"id":"dp_1"}}}"#).is_err());
    }
}
