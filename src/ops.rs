//! Operational endpoints for orchestrators and load balancers: liveness and readiness.
//! They take no authentication and reveal nothing beyond up/down.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// How long readiness waits for the database before calling it unavailable.
const READY_DB_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is alive and serving HTTP.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// How the database answered a health check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    Ok,
    Error,
    Timeout,
}

impl Database {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
        }
    }
}

/// Pings the database, waiting at most [`READY_DB_TIMEOUT`].
pub async fn database(state: &AppState) -> Database {
    match tokio::time::timeout(READY_DB_TIMEOUT, state.db().ping()).await {
        Ok(Ok(())) => Database::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            Database::Error
        }
        Err(_) => {
            tracing::warn!("health check: database timed out");
            Database::Timeout
        }
    }
}

/// `GET /readyz`: whether this replica can serve. Draining for shutdown: 503 at once, so load
/// balancers stop sending traffic. A database that does not answer does not by itself take the
/// replica out of rotation: the gateway serves from its caches and balance leases, and settles
/// when the database is back, so readiness stays 200 with `"database": "degraded"` while the
/// leases may still be spent (half their lifetime after the last renewal), then turns 503.
/// Taking every replica out at once for a blip would turn it into an outage. `changes` says where
/// the listener for other replicas' changes is (`listening`, `connecting`, or `off` on SQLite); it
/// does not decide readiness: while it reconnects, the periodic reload carries changes.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.shutdown().is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "status": "draining" })));
    }
    let changes = state.change_listener().name();
    match database(&state).await {
        Database::Ok => (StatusCode::OK, Json(json!({ "status": "ready", "database": "ok", "changes": changes }))),
        failed if state.billing().leases().carrying() => (
            StatusCode::OK,
            Json(json!({
                "status": "ready", "database": "degraded", "database_check": failed.name(), "changes": changes
            })),
        ),
        failed => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": failed.name(), "changes": changes })),
        ),
    }
}
