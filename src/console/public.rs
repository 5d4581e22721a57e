//! Public pages: `/pricing` (every model's price for the viewer's group — the default group when
//! logged out — with its context window, output cap and what it takes: tools, images, audio,
//! reasoning) and `/quickstart` (base URL and snippets filled in with this site's address).

use askama::Template;
use askama_web::WebTemplate;
use axum::extract::{Query, State};
use serde::Deserialize;
use tower_sessions::Session;

use super::Layout;
use crate::domain::money::Money;
use crate::domain::pricing::MILLION;
use crate::services::users;
use crate::state::AppState;

pub struct PriceRow {
    pub model: String,
    pub input: String,
    pub output: String,
    pub cached_input: String,
    pub per_request: String,
    /// The known limits, in tokens: `("Context", "128,000")`, `("Max output", "16,384")`.
    pub limits: Vec<(&'static str, String)>,
    /// What the model is known to take: "Tools", "Vision", "Audio", "Reasoning".
    pub labels: Vec<&'static str>,
}

/// `n` with thousands separators.
fn tokens(n: i64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) && c.is_ascii_digit() {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[derive(Template, WebTemplate)]
#[template(path = "pricing.html")]
pub struct PricingPage {
    layout: Layout,
    group: String,
    logged_in: bool,
    query: String,
    rows: Vec<PriceRow>,
}

#[derive(Deserialize)]
pub struct PricingQuery {
    #[serde(default)]
    q: String,
}

/// A price per 1M tokens (nano-units) after the group's multiplier (parts per million).
fn scaled(price: Option<i64>, multiplier_ppm: i64) -> String {
    price.map_or_else(
        || "—".to_string(),
        |p| {
            Money(i64::try_from(i128::from(p) * i128::from(multiplier_ppm) / i128::from(MILLION)).unwrap_or(i64::MAX))
                .to_string()
        },
    )
}

/// `GET /pricing`.
pub async fn pricing(
    State(state): State<AppState>,
    session: Session,
    layout: Layout,
    Query(query): Query<PricingQuery>,
) -> PricingPage {
    let user = match session.get::<i64>(super::session_store::USER_KEY).await {
        Ok(Some(id)) => users::summary(&state, id).await.ok().flatten(),
        _ => None,
    };
    let group = user.as_ref().map_or_else(|| "default".to_string(), |u| u.group.clone());
    let table = state.routing().current();
    let needle = query.q.trim().to_lowercase();
    let mut rows: Vec<PriceRow> = table
        .models(&group)
        .into_iter()
        .filter(|m| needle.is_empty() || m.to_lowercase().contains(&needle))
        .filter_map(|model| {
            let (price, multiplier) = table.price(&group, model)?;
            let caps = table.capabilities(model);
            let known =
                [(caps.tools, "Tools"), (caps.vision, "Vision"), (caps.audio, "Audio"), (caps.reasoning, "Reasoning")];
            Some(PriceRow {
                model: model.to_string(),
                input: scaled(price.input_per_mtok, multiplier),
                output: scaled(price.output_per_mtok, multiplier),
                cached_input: scaled(price.cached_input_per_mtok.or(price.input_per_mtok), multiplier),
                per_request: scaled(price.per_request, multiplier),
                limits: [("Context", caps.context_window), ("Max output", caps.max_output_tokens)]
                    .into_iter()
                    .filter_map(|(label, n)| Some((label, tokens(n?))))
                    .collect(),
                labels: known.into_iter().filter(|(v, _)| *v == Some(true)).map(|(_, label)| label).collect(),
            })
        })
        .collect();
    rows.sort_by(|a, b| a.model.cmp(&b.model));
    PricingPage { layout, group, logged_in: user.is_some(), query: query.q, rows }
}

#[derive(Template, WebTemplate)]
#[template(path = "quickstart.html")]
pub struct QuickstartPage {
    layout: Layout,
    site: String,
    api_base: String,
}

/// `GET /quickstart`.
pub async fn quickstart(State(state): State<AppState>, layout: Layout) -> QuickstartPage {
    let site = state.public_url().as_str().trim_end_matches('/').to_string();
    QuickstartPage { layout, api_base: format!("{site}/v1"), site }
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_counts_are_grouped() {
        assert_eq!(super::tokens(1_047_576), "1,047,576");
        assert_eq!(super::tokens(128_000), "128,000");
        assert_eq!(super::tokens(999), "999");
    }
}
