//! The Chinese tables, by where their texts appear.

pub mod admin;
pub mod audit;
pub mod capabilities;
pub mod channels;
pub mod codes;
pub mod console;
pub mod groups;
pub mod logs;
pub mod overview;
pub mod payments;
pub mod pricing;
pub mod reseller;
pub mod settings;
pub mod users;
