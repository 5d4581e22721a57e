//! Liveness, readiness, request ids and the fallback.

use crate::support::helpers::{Backend, TestApp, spawn_app, spawn_app_env};

db_tests!(healthz_and_readyz_answer, readiness_rides_out_a_database_outage_on_leases);

async fn healthz_and_readyz_answer(backend: Backend) {
    let app = spawn_app(backend).await;

    let res = app.get("/healthz").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap()["status"], "ok");

    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["database"], "ok");
}

const METRICS_TOKEN: &str = "metrics-token-0123456789abcdef-0123456789";

async fn health_gauges(app: &TestApp) -> String {
    let res = app.client.get(app.url("/metrics")).bearer_auth(METRICS_TOKEN).send().await.unwrap();
    assert_eq!(res.status(), 200, "the health gauges answer even when the database does not");
    let text = res.text().await.unwrap();
    text.lines()
        .filter(|l| l.starts_with("burncloud_database_up") || l.starts_with("burncloud_leases_valid"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A database that stops answering does not take the replica out of rotation while its balance
/// leases may still be spent (it serves from them and settles later); readiness and `/metrics`
/// say the database is degraded. Once the leases lapse, readiness is 503. Liveness never
/// depends on the database.
async fn readiness_rides_out_a_database_outage_on_leases(backend: Backend) {
    let app = spawn_app_env(backend, &[("BURNCLOUD_METRICS_TOKEN", METRICS_TOKEN)]).await;
    assert_eq!(health_gauges(&app).await, "burncloud_database_up 1\nburncloud_leases_valid 1");

    app.db.close().await;
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["database"].as_str()), (Some("ready"), Some("degraded")), "{body}");
    assert_eq!(body["database_check"], "error");
    assert_eq!(health_gauges(&app).await, "burncloud_database_up 0\nburncloud_leases_valid 1");

    // The leases can no longer be spent (no renewal for half their lifetime): not ready.
    app.state.billing().leases().lapse();
    let res = app.get("/readyz").await;
    assert_eq!(res.status(), 503);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["database"].as_str()), (Some("unavailable"), Some("error")), "{body}");
    assert_eq!(health_gauges(&app).await, "burncloud_database_up 0\nburncloud_leases_valid 0");
    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app(Backend::Sqlite).await;
    let first = app.get("/healthz").await;
    let second = app.get("/healthz").await;
    let id = |r: &reqwest::Response| r.headers().get("x-request-id").unwrap().to_str().unwrap().to_string();
    assert_eq!(id(&first).len(), 16);
    assert_ne!(id(&first), id(&second));

    // A sane client id is kept; one that could pollute the logs is replaced.
    let kept = app.client.get(app.url("/healthz")).header("x-request-id", "trace-abc.123").send().await.unwrap();
    assert_eq!(id(&kept), "trace-abc.123");
    let replaced = app.client.get(app.url("/healthz")).header("x-request-id", "bad id;{}").send().await.unwrap();
    assert_ne!(id(&replaced), "bad id;{}");
    assert_eq!(id(&replaced).len(), 16);

    // Unknown paths are 404s with a request id too, in the shape each surface's clients parse.
    let missing = app.get("/no/such/page").await;
    assert_eq!(missing.status(), 404);
    assert!(missing.headers().contains_key("x-request-id"));
    let v1 = app.client.post(app.url("/v1/no/such/endpoint")).send().await.unwrap();
    assert_eq!(v1.status(), 404);
    let body: serde_json::Value = v1.json().await.unwrap();
    assert_eq!(body["error"]["message"], "Invalid URL (POST /v1/no/such/endpoint)");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let api: serde_json::Value = app.get("/api/nothing").await.json().await.unwrap();
    assert_eq!(api["error"]["code"], "not_found");
}
