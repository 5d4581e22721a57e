//! `GET /metrics`: the monitoring figures of `/admin` in Prometheus' text format (gauges over
//! the last hour, and each channel's health). Protected by `BURNCLOUD_METRICS_TOKEN` as a bearer
//! token: without that setting the endpoint does not exist (404); a missing or wrong token is
//! 401. Never exposes keys, users or anything beyond the aggregate figures and channel names.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::services::monitoring::{self, Figures, Range};
use crate::services::routing::health::ChannelHealthView;
use crate::state::AppState;

fn authorized(state: &AppState, headers: &HeaderMap) -> Option<bool> {
    let expected = state.config().metrics_token.as_ref()?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .unwrap_or_default();
    // Compared as digests, in constant time.
    let (a, b) = (Sha256::digest(presented.as_bytes()), Sha256::digest(expected.expose().as_bytes()));
    Some(a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0)
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn figures(out: &mut String, labels: &str, f: &Figures, minutes: f64) {
    let t = &f.totals;
    let _ = writeln!(out, "burncloud_requests{{{labels}}} {}", t.requests);
    let _ = writeln!(out, "burncloud_requests_per_minute{{{labels}}} {:.3}", t.requests as f64 / minutes);
    let _ = writeln!(out, "burncloud_errors{{{labels}}} {}", t.errors);
    let _ = writeln!(out, "burncloud_error_ratio{{{labels}}} {:.4}", f.error_rate());
    let _ = writeln!(out, "burncloud_tokens{{{labels},kind=\"input\"}} {}", t.prompt_tokens);
    let _ = writeln!(out, "burncloud_tokens{{{labels},kind=\"output\"}} {}", t.completion_tokens);
    let _ = writeln!(out, "burncloud_tokens_per_second{{{labels}}} {:.3}", f.tokens() as f64 / (minutes * 60.0));
    let _ = writeln!(out, "burncloud_spend_nano{{{labels}}} {}", t.cost);
    if let Some(p) = f.p50_ms {
        let _ = writeln!(out, "burncloud_latency_ms{{{labels},quantile=\"0.5\"}} {p}");
    }
    if let Some(p) = f.p95_ms {
        let _ = writeln!(out, "burncloud_latency_ms{{{labels},quantile=\"0.95\"}} {p}");
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match authorized(&state, &headers) {
        None => return StatusCode::NOT_FOUND.into_response(),
        Some(false) => {
            return (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, "Bearer")], "unauthorized\n")
                .into_response();
        }
        Some(true) => {}
    }
    let mut out = String::new();
    health(&mut out, &state).await;
    let range = Range::Hour;
    let snapshot = match monitoring::snapshot(&state, range).await {
        Ok(s) => s,
        Err(e) => {
            // The health gauges above still go out: a scrape during an outage shows it.
            tracing::error!(error = %e, "computing the metrics failed");
            return text(out);
        }
    };
    let minutes = range.millis() as f64 / 60_000.0;
    out.push_str("# HELP burncloud_requests Gateway requests over the window (window=\"1h\": the last hour).\n");
    out.push_str("# TYPE burncloud_requests gauge\n");
    out.push_str("# HELP burncloud_spend_nano Spend over the window, in nano-units of the site currency.\n");
    out.push_str("# HELP burncloud_latency_ms Request latency percentiles over the window, milliseconds.\n");
    figures(&mut out, "window=\"1h\"", &snapshot.overall, minutes);
    for line in &snapshot.models {
        figures(&mut out, &format!("window=\"1h\",model=\"{}\"", label(&line.label)), &line.figures, minutes);
    }
    for line in &snapshot.channels {
        let id = line.channel_id.map(|i| i.to_string()).unwrap_or_default();
        let labels = format!("window=\"1h\",channel_id=\"{id}\",channel=\"{}\"", label(&line.label));
        figures(&mut out, &labels, &line.figures, minutes);
    }
    out.push_str(
        "# HELP burncloud_channel_up 1 when the channel is enabled, 0 when disabled (by hand or automatically).\n",
    );
    out.push_str("# TYPE burncloud_channel_up gauge\n");
    if let Ok(channels) = monitoring::channels(&state).await {
        for c in channels {
            let labels = format!(
                "channel_id=\"{}\",channel=\"{}\",type=\"{}\",status=\"{}\"",
                c.id,
                label(&c.name),
                label(&c.kind),
                label(&c.status)
            );
            let _ = writeln!(out, "burncloud_channel_up{{{labels}}} {}", i64::from(c.status == "enabled"));
            if let Some(ms) = c.test_latency_ms {
                let _ = writeln!(out, "burncloud_channel_test_latency_ms{{channel_id=\"{}\"}} {ms}", c.id);
            }
            let _ = writeln!(out, "burncloud_channel_used_nano{{channel_id=\"{}\"}} {}", c.id, c.used_amount);
            if let Some(health) = state.routing().health().find_channel(c.id) {
                channel_health(&mut out, c.id, &health.view());
            }
        }
    }
    text(out)
}

/// A channel's health on this replica: its circuit, moving time to first token and error rate,
/// and requests in flight.
fn channel_health(out: &mut String, id: i64, h: &ChannelHealthView) {
    let open = i64::from(h.circuit != "closed");
    let _ = writeln!(out, "burncloud_channel_circuit_open{{channel_id=\"{id}\",circuit=\"{}\"}} {open}", h.circuit);
    let _ = writeln!(out, "burncloud_channel_in_flight{{channel_id=\"{id}\"}} {}", h.traffic.in_flight);
    if let Some(ms) = h.traffic.ttft_ms {
        let _ = writeln!(out, "burncloud_channel_ttft_ms{{channel_id=\"{id}\"}} {ms}");
    }
    if let Some(rate) = h.traffic.error_rate {
        let _ = writeln!(out, "burncloud_channel_error_rate{{channel_id=\"{id}\"}} {rate:.3}");
    }
}

fn text(out: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// This replica's health: whether the database answers, whether its balance leases may still be
/// spent (what keeps it serving through an outage), whether it is draining, and the settlements
/// waiting for the database.
async fn health(out: &mut String, state: &AppState) {
    let database = crate::ops::database(state).await;
    out.push_str("# HELP burncloud_database_up 1 when the database answers a ping, 0 when not (degraded).\n");
    out.push_str("# TYPE burncloud_database_up gauge\n");
    let _ = writeln!(out, "burncloud_database_up {}", i64::from(database == crate::ops::Database::Ok));
    out.push_str("# HELP burncloud_leases_valid 1 while this replica's balance leases may be spent.\n");
    out.push_str("# TYPE burncloud_leases_valid gauge\n");
    let _ = writeln!(out, "burncloud_leases_valid {}", i64::from(state.billing().leases().carrying()));
    out.push_str(
        "# HELP burncloud_change_listener_up 1 while this replica hears other replicas' changes (Postgres LISTEN).\n",
    );
    out.push_str("# TYPE burncloud_change_listener_up gauge\n");
    let listening = state.change_listener() == crate::state::ListenerState::Listening;
    let _ = writeln!(out, "burncloud_change_listener_up {}", i64::from(listening));
    if let Some(up) = state.counters().redis_up() {
        out.push_str("# HELP burncloud_redis_up 1 when the last shared count reached Redis (BURNCLOUD_REDIS_URL).\n");
        out.push_str("# TYPE burncloud_redis_up gauge\n");
        let _ = writeln!(out, "burncloud_redis_up {}", i64::from(up));
        out.push_str(
            "# HELP burncloud_redis_fallbacks_total Counts made on this replica because Redis did not answer.\n",
        );
        out.push_str("# TYPE burncloud_redis_fallbacks_total counter\n");
        let _ = writeln!(out, "burncloud_redis_fallbacks_total {}", state.counters().fallbacks());
    }
    let (hits, misses) = state.routing().affinity().stats();
    out.push_str(
        "# HELP burncloud_affinity_requests_total Requests naming a conversation: sent to the channel it sticks to (hit) or not (miss).\n",
    );
    out.push_str("# TYPE burncloud_affinity_requests_total counter\n");
    let _ = writeln!(out, "burncloud_affinity_requests_total{{outcome=\"hit\"}} {hits}");
    let _ = writeln!(out, "burncloud_affinity_requests_total{{outcome=\"miss\"}} {misses}");
    out.push_str("# HELP burncloud_affinity_hit_ratio Of the requests naming a conversation, the share that hit.\n");
    out.push_str("# TYPE burncloud_affinity_hit_ratio gauge\n");
    let ratio = if hits + misses == 0 { 0.0 } else { hits as f64 / (hits + misses) as f64 };
    let _ = writeln!(out, "burncloud_affinity_hit_ratio {ratio:.4}");
    out.push_str("# HELP burncloud_draining 1 once shutdown has begun (readiness answers 503).\n");
    out.push_str("# TYPE burncloud_draining gauge\n");
    let _ = writeln!(out, "burncloud_draining {}", i64::from(state.shutdown().is_cancelled()));
    out.push_str(
        "# HELP burncloud_pending_settlements Requests answered or in flight whose charge is not yet committed.\n",
    );
    out.push_str("# TYPE burncloud_pending_settlements gauge\n");
    let _ = writeln!(out, "burncloud_pending_settlements {}", state.pending_settlements());
}
