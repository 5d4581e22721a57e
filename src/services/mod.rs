//! Domain operations shared by the console, the management API and the CLI. Services own their
//! transactions; handlers stay thin and call them.

pub mod access_tokens;
pub mod accounts;
pub mod admin_logs;
pub mod admin_payments;
pub mod audit;
pub mod bootstrap;
pub mod capabilities;
pub mod channel_admin;
pub mod channels;
pub mod codes;
pub mod groups;
pub mod key_admin;
pub mod keys;
pub mod low_balance;
pub mod monitoring;
pub mod passwords;
pub mod payments;
pub mod price_admin;
pub mod price_defaults;
pub mod pricing;
pub mod recovery;
pub mod routing;
pub mod settings;
pub mod signup;
pub mod site;
pub mod statement;
pub mod throttle;
pub mod usage;
pub mod user_admin;
pub mod users;
