//! The server-rendered console: askama pages, htmx fragments and the embedded static assets.

pub mod admin;
pub mod assets;
pub mod auth;
pub mod billing;
pub mod charts;
pub mod csrf;
pub mod dashboard;
pub mod error;
pub mod htmx;
pub mod invitations;
pub mod keys;
pub mod layout;
pub mod logs;
pub mod pages;
pub mod preferences;
pub mod profile;
pub mod public;
pub mod recovery;
pub mod reseller;
pub mod session_store;
pub mod tokens;
pub mod topup;

use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub use layout::Layout;

use crate::db::Db;
use crate::routes::Routes;

/// The console's pages and forms (served with sessions: see [`session_layer`]).
pub fn routes(routes: Routes) -> Routes {
    let routes = reseller::routes(admin::routes(routes));
    routes
        .page_get("/", pages::landing)
        .page_get("/pricing", public::pricing)
        .page_get("/quickstart", public::quickstart)
        .page_get("/login", auth::login_page)
        .page_post("/login", auth::login)
        .page_get("/signup", auth::signup_page)
        .page_post("/signup", auth::signup)
        .page_post("/logout", auth::logout)
        .page_get("/verify-email", recovery::verify_page)
        .page_post("/verify-email", recovery::verify)
        .page_get("/forgot-password", recovery::forgot_page)
        .page_post("/forgot-password", recovery::forgot)
        .page_get("/reset-password", recovery::reset_page)
        .page_post("/reset-password", recovery::reset)
        .page_post("/preferences", preferences::save)
        .page_get("/console", dashboard::page)
        .page_get("/console/stats", dashboard::fragment)
        .page_get("/console/keys", keys::list)
        .page_post("/console/keys", keys::create)
        .page_post("/console/keys/{id}/status", keys::set_status)
        .page_post("/console/keys/{id}/delete", keys::delete)
        .page_get("/console/keys/{id}/edit", keys::edit::form)
        .page_post("/console/keys/{id}/edit", keys::edit::save)
        .page_get("/console/billing", billing::page)
        .page_post("/console/billing/redeem", billing::redeem)
        .page_get("/console/billing/statement.csv", billing::statement)
        .page_get("/console/topup", topup::page)
        .page_post("/console/topup", topup::pay)
        .page_get("/console/topup/success", topup::success)
        .page_get("/console/topup/cancel", topup::cancel)
        .page_get("/console/payments", topup::history)
        .page_get("/console/invitations", invitations::page)
        .page_get("/console/profile", profile::page)
        .page_post("/console/profile/password", profile::change_password)
        .page_post("/console/profile/name", profile::change_name)
        .page_post("/console/profile/email", profile::change_email)
        .page_post("/console/profile/sign-out-others", profile::sign_out_others)
        .page_post("/console/profile/tokens", tokens::create)
        .page_post("/console/profile/tokens/{id}/revoke", tokens::revoke)
        .page_get("/console/logs", logs::page)
        .page_get("/console/logs.csv", logs::csv)
}

/// The console's Content-Security-Policy: only the site's own scripts and styles (no inline
/// script), no framing. Forms may only submit to the site itself — and to Stripe's payment page,
/// which the top-up form's answer redirects to (browsers check `form-action` on a submission's
/// redirects too). Built once at start-up from the configured Stripe API.
pub fn content_security_policy(stripe_api_base: &url::Url) -> axum::http::HeaderValue {
    const OWN: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
        connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'";
    let origin = crate::payments::checkout::page_origin(stripe_api_base);
    // An origin is ASCII; should it ever not be, the site's own pages still get a policy.
    axum::http::HeaderValue::from_str(&format!("{OWN} {origin}"))
        .unwrap_or_else(|_| axum::http::HeaderValue::from_static(OWN))
}

/// Security headers on every console page: the policy above, no framing, no MIME sniffing.
pub async fn security_headers(
    axum::extract::State(csp): axum::extract::State<axum::http::HeaderValue>,
    mut response: axum::response::Response,
) -> axum::response::Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    headers.insert("content-security-policy", csp);
    headers.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Sessions for the console: stored in the database, an HttpOnly, SameSite=Lax cookie (Secure
/// when the site is served over https), ending after 14 days without a visit.
pub fn session_layer(db: Db, secure: bool) -> SessionManagerLayer<session_store::DbSessionStore> {
    SessionManagerLayer::new(session_store::DbSessionStore::new(db))
        .with_name("burncloud_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)))
}
