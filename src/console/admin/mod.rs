//! The operator's console (`/admin/*`): for admin and root users only. Every page lives in its
//! own module and registers its routes here; every action goes through the same services as
//! the management API (`/api/admin/*`) and writes an audit row (`services::audit`).

pub mod audit;
pub mod capabilities;
mod capability_table;
pub mod channels;
pub mod codes;
pub mod groups;
mod limits_form;
pub mod logs;
pub mod overview;
pub mod payments;
pub mod pricing;
pub mod settings;
pub mod settings_form;
pub mod users;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::auth::{ClientAddr, CurrentUser, NoticePage};
use crate::db::users::Role;
use crate::routes::Routes;
use crate::services::audit::{Actor, Via};
use crate::state::AppState;

/// Adds the `/admin` pages.
pub fn routes(routes: Routes) -> Routes {
    let routes = overview::routes(routes);
    let routes = channels::routes(routes);
    let routes = users::routes(routes);
    let routes = groups::routes(routes);
    let routes = pricing::routes(routes);
    let routes = capabilities::routes(routes);
    let routes = codes::routes(routes);
    let routes = payments::routes(routes);
    let routes = settings::routes(routes);
    let routes = logs::routes(routes);
    audit::routes(routes)
}

/// The logged-in admin or root user of an `/admin` request. Anyone else logged in gets a 403
/// page; nobody logged in goes to `/login`.
pub struct AdminUser {
    pub user: CurrentUser,
    pub actor: Actor,
}

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let user = CurrentUser::from_request_parts(parts, state).await?;
        let ClientAddr(ip) = ClientAddr::from_request_parts(parts, state).await.unwrap_or(ClientAddr(None));
        let role = Role::parse(&user.role).unwrap_or(Role::User);
        let actor = Actor { user_id: Some(user.id), role, via: Via::Session, ip };
        if !actor.is_admin() {
            let page = NoticePage::new(
                user.layout.clone(),
                "Operators only",
                "This page is for the site's operators. Your account can use the console.",
            );
            return Err((StatusCode::FORBIDDEN, page).into_response());
        }
        Ok(Self { user, actor })
    }
}

/// What a refused admin action answers: the target is an admin or root and the actor is not
/// root.
pub fn forbidden_target(user: &CurrentUser) -> Response {
    let page = NoticePage::new(
        user.layout.clone(),
        "Not allowed",
        "Only the root account can change an admin or the root account.",
    );
    (StatusCode::FORBIDDEN, page).into_response()
}
