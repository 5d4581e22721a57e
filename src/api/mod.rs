//! The JSON management API (`/api/*`): the same operations as the console, for scripts and
//! resellers' tooling. Handlers are thin: they authenticate, parse and call `services`.

pub mod admin;
pub mod admin_capabilities;
pub mod admin_channels;
pub mod admin_logs;
pub mod admin_payments;
pub mod admin_pricing;
pub mod admin_settings;
pub mod admin_users;
pub mod auth;
pub mod codes;
pub mod error;
pub mod me;
pub mod me_keys;
pub mod openapi;
pub mod stripe_webhook;

use crate::routes::Routes;

/// Adds the `/api` routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .post("/api/admin/channels", admin::create_channel)
        .get("/api/admin/channels", admin::list_channels)
        .get("/api/admin/channels/{id}", admin::get_channel)
        .patch("/api/admin/channels/{id}", admin::update_channel)
        .delete("/api/admin/channels/{id}", admin::delete_channel)
        .post("/api/admin/channels/{id}/test", admin::test_channel)
        .post("/api/admin/channels/test", admin_channels::test_all)
        .post("/api/admin/channels/import", admin_channels::import)
        .post("/api/admin/channels/{id}/enable", admin_channels::enable)
        .post("/api/admin/channels/{id}/disable", admin_channels::disable)
        .post("/api/admin/channels/{id}/copy", admin_channels::copy)
        .post("/api/admin/channels/{id}/models", admin_channels::fetch_models)
        .post("/api/admin/users", admin::create_user)
        .get("/api/admin/users/{id}", admin::get_user)
        .post("/api/admin/users/{id}/keys", admin::create_key)
        .patch("/api/admin/keys/{id}", admin::update_key)
        .delete("/api/admin/keys/{id}", admin::delete_key)
        .post("/api/admin/codes", codes::admin_generate)
        .get("/api/admin/codes", codes::admin_list)
        .get("/api/admin/codes/export", codes::admin_export)
        .post("/api/admin/codes/void", codes::admin_void_batch)
        .post("/api/admin/codes/{id}/void", codes::admin_void)
        .post("/api/reseller/codes", codes::reseller_generate)
        .get("/api/reseller/codes", codes::reseller_list)
        .get("/api/reseller/codes/export", codes::reseller_export)
        .post("/api/reseller/codes/void", codes::reseller_void_batch)
        .post("/api/reseller/codes/{id}/void", codes::reseller_void)
        .get("/api/reseller/invitees", codes::reseller_invitees)
        .post("/api/reseller/transfer", codes::reseller_transfer)
        // Users, groups and pricing (admin_users, admin_pricing).
        .get("/api/admin/users", admin_users::list)
        .patch("/api/admin/users/{id}", admin_users::update)
        .post("/api/admin/users/{id}/credit", admin_users::credit)
        .get("/api/admin/users/{id}/ledger", admin_users::ledger)
        .get("/api/admin/users/{id}/keys", admin_users::keys)
        .get("/api/admin/users/{id}/usage", admin_users::usage)
        .get("/api/admin/groups", admin_pricing::list_groups)
        .put("/api/admin/groups/{name}", admin_pricing::save_group)
        .delete("/api/admin/groups/{name}", admin_pricing::delete_group)
        .put("/api/admin/groups/{name}/prices/{model}", admin_pricing::set_override)
        .delete("/api/admin/groups/{name}/prices/{model}", admin_pricing::delete_override)
        .get("/api/admin/prices", admin_pricing::list)
        .put("/api/admin/prices/{model}", admin_pricing::set)
        .delete("/api/admin/prices/{model}", admin_pricing::delete)
        .post("/api/admin/prices/import-ratios", admin_pricing::import)
        .get("/api/admin/prices/export-ratios", admin_pricing::export)
        .post("/api/admin/prices/defaults", admin_pricing::defaults)
        .get("/api/admin/capabilities", admin_capabilities::list)
        .put("/api/admin/capabilities/{model}", admin_capabilities::set)
        .delete("/api/admin/capabilities/{model}", admin_capabilities::reset)
        .post("/api/stripe/webhook", stripe_webhook::webhook)
        .get("/api/me", me::me)
        .get("/api/me/balance", me::balance)
        .get("/api/me/logs", me::logs)
        .get("/api/me/statement", me::statement)
        .get("/api/me/keys", me_keys::list)
        .post("/api/me/keys", me_keys::create)
        .patch("/api/me/keys/{id}", me_keys::update)
        .delete("/api/me/keys/{id}", me_keys::delete)
        // Settings, logs, audit log, OpenAPI (issue 6).
        .get("/api/admin/settings", admin_settings::list)
        .put("/api/admin/settings/{key}", admin_settings::set)
        .post("/api/admin/settings/smtp/test", admin_settings::test_email)
        .get("/api/admin/logs", admin_logs::logs)
        .get("/api/admin/audit", admin_logs::audit)
        // Payments and account flags (issue 7, the operator's side).
        .get("/api/admin/payments", admin_payments::list)
        .post("/api/admin/payments/{id}/fail", admin_payments::fail)
        .post("/api/admin/users/{id}/clear-flag", admin_payments::clear_flag)
        .get("/api/openapi.json", openapi::serve)
}
