//! The JSON management API (`/api/*`): the same operations as the console, for scripts and
//! resellers' tooling. Handlers are thin: they authenticate, parse and call `services`.

pub mod admin;
pub mod admin_logs;
pub mod admin_settings;
pub mod auth;
pub mod error;
pub mod me;
pub mod me_keys;
pub mod openapi;

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
        .post("/api/admin/users", admin::create_user)
        .get("/api/admin/users/{id}", admin::get_user)
        .post("/api/admin/users/{id}/credit", admin::credit_user)
        .post("/api/admin/users/{id}/keys", admin::create_key)
        .patch("/api/admin/keys/{id}", admin::update_key)
        .delete("/api/admin/keys/{id}", admin::delete_key)
        .put("/api/admin/prices/{model}", admin::set_price)
        .put("/api/admin/groups/{name}", admin::set_group)
        .put("/api/admin/groups/{name}/prices/{model}", admin::set_group_price)
        .get("/api/me", me::me)
        .get("/api/me/balance", me::balance)
        .get("/api/me/logs", me::logs)
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
        .get("/api/openapi.json", openapi::serve)
}
