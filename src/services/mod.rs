//! Domain operations shared by the console, the management API and the CLI. Services own their
//! transactions; handlers stay thin and call them.

pub mod accounts;
pub mod affinity;
pub mod attempts;
pub mod audit;
pub mod bootstrap;
pub mod changes;
pub mod channels;
pub mod codes;
pub mod counters;
pub mod keys;
pub mod limits;
pub mod logs;
pub mod low_balance;
pub mod monitoring;
pub mod payments;
pub mod pricing;
pub mod routing;
pub mod settings;
pub mod statement;
pub mod throttle;
pub mod users;
