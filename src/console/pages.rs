//! Public pages.

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::State;

use super::Layout;
use crate::state::AppState;

#[derive(Template, WebTemplate)]
#[template(path = "landing.html")]
pub struct Landing {
    layout: Layout,
    api_base: String,
}

/// `GET /`: what the service is and where its API lives.
pub async fn landing(State(state): State<AppState>, layout: Layout) -> Landing {
    let api_base = state.public_url().join("v1").map(|u| u.to_string()).unwrap_or_default();
    Landing { layout, api_base }
}
