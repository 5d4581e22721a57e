//! `/console/invitations`: the user's invitation code and link, and who signed up with it (emails
//! masked). Signing up through `/signup?aff=CODE` records the inviter.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::Layout;
use super::auth::CurrentUser;
use super::layout::format_time;
use crate::console::error::ConsoleError;
use crate::domain::money::Money;
use crate::services::users;
use crate::state::AppState;

pub struct Invitee {
    pub email: String,
    pub joined: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "invitations.html")]
pub struct InvitationsPage {
    layout: Layout,
    code: String,
    link: String,
    invitees: Vec<Invitee>,
    /// Rewards paid to this user so far.
    earned: String,
    /// What the site pays now, per verified signup: to the inviter, to the invitee ("" for none).
    inviter_reward: String,
    invitee_reward: String,
}

/// `GET /console/invitations`.
pub async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    let earned = match users::invitation_earnings(&state, user.id).await {
        Ok(earned) => earned,
        Err(e) => {
            return ConsoleError::internal("loading invitation rewards", e).into_response();
        }
    };
    let site = state.site();
    let offer = |amount: i64| if amount > 0 { Money(amount).to_string() } else { String::new() };
    match users::invitations(&state, user.id).await {
        Ok((code, invitees)) => {
            let mut link = state.public_url();
            link.set_path("/signup");
            link.query_pairs_mut().clear().append_pair("aff", &code);
            InvitationsPage {
                layout: user.layout.clone(),
                link: link.to_string(),
                code,
                invitees: invitees
                    .into_iter()
                    .map(|(email, at)| Invitee {
                        email: crate::domain::email::mask_email(&email),
                        joined: format_time(at),
                    })
                    .collect(),
                earned: Money(earned).to_string(),
                inviter_reward: offer(site.inviter_reward),
                invitee_reward: offer(site.invitee_reward),
            }
            .into_response()
        }
        Err(e) => ConsoleError::internal("loading invitations", e).into_response(),
    }
}
