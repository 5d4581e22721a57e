//! `GET /v1/models` and `GET /v1/models/{id}`: only the models this key may use.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use super::auth::ApiKeyAuth;
use super::error::GatewayError;
use crate::state::AppState;

fn model_object(id: &str) -> Value {
    json!({ "id": id, "object": "model", "created": 0, "owned_by": "burncloud" })
}

pub async fn list(State(state): State<AppState>, auth: ApiKeyAuth) -> Json<Value> {
    let table = state.routing().current();
    let data: Vec<Value> =
        table.models(&auth.grant.group).into_iter().filter(|m| auth.grant.may_use_model(m)).map(model_object).collect();
    Json(json!({ "object": "list", "data": data }))
}

pub async fn retrieve(
    State(state): State<AppState>,
    auth: ApiKeyAuth,
    Path(id): Path<String>,
) -> Result<Json<Value>, GatewayError> {
    let table = state.routing().current();
    if auth.grant.may_use_model(&id) && table.route(&auth.grant.group, &id).is_some() {
        Ok(Json(model_object(&id)))
    } else {
        Err(GatewayError::ModelNotFound(id))
    }
}
