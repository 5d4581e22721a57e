//! What the tests run against, apart from the tests themselves: the app harness (`helpers`), the
//! fake upstreams that speak each provider's wire format, a fake Stripe, an SMTP sink and the
//! headless-browser driver, and real servers (Postgres, Redis, nginx) started per test.

pub mod chromium;
pub mod fake_anthropic;
pub mod fake_azure;
pub mod fake_bedrock;
pub mod fake_gemini;
pub mod fake_openai;
pub mod fake_stripe;
pub mod helpers;
pub mod mail_sink;
pub mod nginx;
pub mod postgres;
pub mod process;
pub mod redis;
