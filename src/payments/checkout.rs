//! Opening a Stripe Checkout Session for a pending payment, with async-stripe. The session carries
//! the payment's id as `client_reference_id` (how the webhook finds the payment) and is created
//! with an idempotency key derived from that id, so a retried request cannot open two sessions.

use std::time::Duration;

use stripe::{ClientBuilder, IdempotencyKey, RequestStrategy, StripeError, StripeRequest};
use stripe_checkout::CheckoutSessionMode;
use stripe_checkout::checkout_session::{
    CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionLineItemsPriceData,
    CreateCheckoutSessionPaymentIntentData, ProductData,
};
use url::Url;

/// What to ask Stripe for.
pub struct SessionRequest<'a> {
    pub payment_id: i64,
    pub user_id: i64,
    pub email: &'a str,
    pub charge: i64,
    pub currency: &'a str,
    /// The line item's name on Stripe's page, e.g. "BurnCloud balance: 10.00 USD".
    pub description: &'a str,
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

/// The session Stripe opened: its id and the hosted page to send the buyer to.
pub struct OpenedSession {
    pub id: String,
    pub url: String,
}

/// Why a session could not be opened; shown to operators in the payment row (never the key).
#[derive(Debug, thiserror::Error)]
pub enum CheckoutError {
    #[error("Stripe refused the request: {0}")]
    Refused(String),
    #[error("Stripe could not be reached: {0}")]
    Unreachable(String),
    #[error("Stripe's answer had no payment page")]
    NoUrl,
}

/// Opens a Checkout Session in `payment` mode for one line item priced at the charge.
pub async fn open_session(
    api_base: &Url,
    secret_key: &str,
    request: &SessionRequest<'_>,
) -> Result<OpenedSession, CheckoutError> {
    let client = ClientBuilder::new(secret_key)
        .url(api_base.as_str())
        .timeout(Duration::from_secs(20))
        .app_info("BurnCloud", Some(env!("CARGO_PKG_VERSION").into()), None)
        .build()
        .map_err(|e| CheckoutError::Unreachable(describe(&e)))?;
    let currency = request.currency.parse().map_err(|_| CheckoutError::Refused("unknown currency".into()))?;
    let mut product = ProductData::new(request.description);
    product.metadata = None;
    let item = CreateCheckoutSessionLineItems {
        quantity: Some(1),
        price_data: Some(CreateCheckoutSessionLineItemsPriceData {
            currency,
            unit_amount: Some(request.charge),
            product_data: Some(product),
            product: None,
            recurring: None,
            tax_behavior: None,
            unit_amount_decimal: None,
        }),
        adjustable_quantity: None,
        metadata: None,
        price: None,
        tax_rates: None,
    };
    let metadata = std::collections::HashMap::from([
        ("burncloud_payment_id".to_string(), request.payment_id.to_string()),
        ("burncloud_user_id".to_string(), request.user_id.to_string()),
    ]);
    // On the PaymentIntent too: Stripe copies it onto the charge, so a `charge.refunded` that
    // arrives before the session's own event still names the payment (and is retried, not lost).
    let mut intent_data = CreateCheckoutSessionPaymentIntentData::new();
    intent_data.metadata =
        Some(std::collections::HashMap::from([("burncloud_payment_id".to_string(), request.payment_id.to_string())]));
    let key = IdempotencyKey::new(format!("burncloud-topup-{}", request.payment_id))
        .map_err(|_| CheckoutError::Refused("bad idempotency key".into()))?;
    let session = CreateCheckoutSession::new()
        .mode(CheckoutSessionMode::Payment)
        .client_reference_id(request.payment_id.to_string())
        .customer_email(request.email)
        .line_items(vec![item])
        .metadata(metadata)
        .payment_intent_data(intent_data)
        .success_url(request.success_url)
        .cancel_url(request.cancel_url)
        .customize()
        .request_strategy(RequestStrategy::Idempotent(key))
        .send(&client)
        .await
        .map_err(|e| match e {
            StripeError::Stripe(..) => CheckoutError::Refused(describe(&e)),
            _ => CheckoutError::Unreachable(describe(&e)),
        })?;
    let url = session.url.ok_or(CheckoutError::NoUrl)?;
    Ok(OpenedSession { id: session.id.to_string(), url })
}

/// The origin of the hosted payment pages the buyer is sent to: Stripe's for its own API, else
/// the configured API's (a test double serves both).
pub fn page_origin(api_base: &Url) -> String {
    match api_base.host_str() {
        Some("api.stripe.com") | None => "https://checkout.stripe.com".into(),
        Some(_) => api_base.origin().ascii_serialization(),
    }
}

/// A short description of a Stripe error: its message, never the request.
fn describe(e: &StripeError) -> String {
    match e {
        StripeError::Stripe(errors, status) => {
            format!("{status}: {}", errors.message.as_deref().unwrap_or("no message"))
        }
        StripeError::JSONDeserialize(m) => format!("unexpected answer ({m})"),
        StripeError::ClientError(m) | StripeError::ConfigError(m) => m.clone(),
        StripeError::Timeout => "timed out".into(),
    }
}
