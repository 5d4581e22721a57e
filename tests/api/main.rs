//! The integration test suite: one binary, one fresh database per test, every database test run
//! on both SQLite and Postgres (`db_tests!`). Start it with `scripts/test.sh`, which provides a
//! throwaway Postgres; see README.md.
// Tests spawn freely: the suite has no shutdown to wait for them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

/// Generates `<name>::sqlite` and `<name>::postgres` tests calling `async fn <name>(Backend)`.
macro_rules! db_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::support::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::support::helpers::Backend::Postgres).await
            }
        }
    )*};
}

mod support;

mod abuse_auth;
mod abuse_channels;
mod abuse_fairness;
mod abuse_images;
mod abuse_keys;
mod abuse_operators;
mod abuse_requests;
mod admin;
mod admin_channels;
mod admin_console;
mod admin_logs;
mod admin_payments;
mod admin_settings;
mod admin_users;
mod affinity;
mod anthropic;
mod architecture;
mod azure;
mod bedrock;
mod browser;
mod browser_admin_settings;
mod browser_admin_users;
mod browser_codes;
mod browser_topup;
mod capabilities;
mod channel_health;
mod channel_keys;
mod cli;
mod clients;
mod codes;
mod conformance;
mod console;
mod console_auth;
mod console_billing;
mod console_dashboard;
mod console_email;
mod console_invitations;
mod console_key_limits;
mod console_keys;
mod console_logs;
mod console_profile;
mod console_public;
mod console_security;
mod console_tokens;
mod db_filters;
mod embeddings;
mod fallback_models;
mod gateway;
mod gateway_billing;
mod gateway_routing;
mod gemini;
mod health;
mod image_fetch;
mod key_budgets;
mod key_rate_limits;
mod key_reads;
mod leases;
mod ledger_audit;
mod live;
mod management_api;
mod me_api;
mod messages;
mod model_fit;
mod money_debt;
mod money_faults;
mod money_faults_leases;
mod openapi;
mod path_ids;
mod payment_faults;
mod payments;
mod replicas;
mod route_coverage;
mod schema;
mod sdk;
mod settings_table;
mod shutdown;
mod user_budgets;
mod user_rate_limits;
