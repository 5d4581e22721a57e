//! The JSON management API (`/api/*`): the same operations as the console, for scripts and
//! resellers' tooling. Handlers are thin: they authenticate, parse and call `services`.

pub mod auth;
pub mod channels;
pub mod codes;
pub mod error;
pub mod keys;
pub mod logs;
pub mod me;
pub mod openapi;
pub mod payments;
pub mod pricing;
pub mod settings;
pub mod users;

use crate::routes::Routes;

/// Adds the `/api` routes.
pub fn routes(routes: Routes) -> Routes {
    routes
        .post("/api/admin/channels", channels::create)
        .get("/api/admin/channels", channels::list)
        .get("/api/admin/channels/{id}", channels::get)
        .patch("/api/admin/channels/{id}", channels::update)
        .delete("/api/admin/channels/{id}", channels::delete)
        .post("/api/admin/channels/{id}/test", channels::test)
        .post("/api/admin/channels/test", channels::test_all)
        .post("/api/admin/channels/import", channels::import)
        .post("/api/admin/channels/{id}/enable", channels::enable)
        .post("/api/admin/channels/{id}/disable", channels::disable)
        .post("/api/admin/channels/{id}/copy", channels::copy)
        .post("/api/admin/channels/{id}/models", channels::fetch_models)
        .get("/api/admin/channels/{id}/keys", channels::keys)
        .post("/api/admin/channels/{id}/keys", channels::add_keys)
        .post("/api/admin/channels/{id}/keys/{key}/enable", channels::enable_key)
        .post("/api/admin/channels/{id}/keys/{key}/disable", channels::disable_key)
        .post("/api/admin/channels/{id}/keys/{key}/test", channels::test_key)
        .post("/api/admin/users", users::create)
        .get("/api/admin/users/{id}", users::get)
        .post("/api/admin/users/{id}/keys", keys::admin_create)
        .patch("/api/admin/keys/{id}", keys::admin_update)
        .delete("/api/admin/keys/{id}", keys::admin_delete)
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
        // Users, groups and pricing.
        .get("/api/admin/users", users::list)
        .patch("/api/admin/users/{id}", users::update)
        .post("/api/admin/users/{id}/credit", users::credit)
        .get("/api/admin/users/{id}/ledger", users::ledger)
        .get("/api/admin/users/{id}/keys", users::keys)
        .get("/api/admin/users/{id}/usage", users::usage)
        .get("/api/admin/groups", pricing::list_groups)
        .put("/api/admin/groups/{name}", pricing::save_group)
        .delete("/api/admin/groups/{name}", pricing::delete_group)
        .put("/api/admin/groups/{name}/prices/{model}", pricing::set_override)
        .delete("/api/admin/groups/{name}/prices/{model}", pricing::delete_override)
        .get("/api/admin/prices", pricing::list)
        .put("/api/admin/prices/{model}", pricing::set)
        .delete("/api/admin/prices/{model}", pricing::delete)
        .post("/api/admin/prices/import-ratios", pricing::import)
        .get("/api/admin/prices/export-ratios", pricing::export)
        .post("/api/admin/prices/defaults", pricing::defaults)
        .get("/api/admin/capabilities", pricing::list_capabilities)
        .put("/api/admin/capabilities/{model}", pricing::set_capability)
        .delete("/api/admin/capabilities/{model}", pricing::reset_capability)
        .post("/api/stripe/webhook", payments::webhook)
        .get("/api/me", me::me)
        .get("/api/me/balance", me::balance)
        .get("/api/me/logs", me::logs)
        .get("/api/me/statement", me::statement)
        .get("/api/me/keys", keys::list)
        .post("/api/me/keys", keys::create)
        .patch("/api/me/keys/{id}", keys::update)
        .delete("/api/me/keys/{id}", keys::delete)
        // Settings, logs, audit log, OpenAPI (issue 6).
        .get("/api/admin/settings", settings::list)
        .put("/api/admin/settings/{key}", settings::set)
        .post("/api/admin/settings/smtp/test", settings::test_email)
        .get("/api/admin/logs", logs::logs)
        .get("/api/admin/audit", logs::audit)
        // Payments and account flags (issue 7, the operator's side).
        .get("/api/admin/payments", payments::list)
        .post("/api/admin/payments/{id}/fail", payments::fail)
        .post("/api/admin/users/{id}/clear-flag", payments::clear_flag)
        .get("/api/openapi.json", openapi::serve)
}
