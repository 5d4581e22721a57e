//! `GET /metrics`: the monitoring figures of `/admin` in Prometheus' text format (gauges over
//! the last hour, and each channel's health). Protected by `BURNCLOUD_METRICS_TOKEN` as a bearer
//! token: without that setting the endpoint does not exist (404); a missing or wrong token is
//! 401. Never exposes keys, users or anything beyond the aggregate figures and channel names.

use std::fmt::Write;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::db::channels::ChannelRow;
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

/// One metric family: its HELP and TYPE, then every line of it (the text format wants a family's
/// lines together). Nothing for a family without lines.
fn family(out: &mut String, name: &str, help: &str, lines: impl IntoIterator<Item = String>) {
    let mut lines = lines.into_iter().peekable();
    if lines.peek().is_none() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
    for line in lines {
        let _ = writeln!(out, "{name}{line}");
    }
}

/// The window's figures of every label set (the whole gateway, each model, each channel), one
/// family at a time.
fn window_families(out: &mut String, sets: &[(String, &Figures)], minutes: f64) {
    let each = |f: &dyn Fn(&str, &Figures) -> Option<String>| -> Vec<String> {
        sets.iter().filter_map(|(labels, figures)| f(labels, figures)).collect()
    };
    let w = "over the window (window=\"1h\": the last hour)";
    family(
        out,
        "burncloud_requests",
        &format!("Gateway requests {w}."),
        each(&|l, f| Some(format!("{{{l}}} {}", f.totals.requests))),
    );
    let per_minute = each(&|l, f| Some(format!("{{{l}}} {:.3}", f.totals.requests as f64 / minutes)));
    family(out, "burncloud_requests_per_minute", &format!("Requests per minute {w}."), per_minute);
    family(
        out,
        "burncloud_errors",
        &format!("Failed requests {w}."),
        each(&|l, f| Some(format!("{{{l}}} {}", f.totals.errors))),
    );
    family(
        out,
        "burncloud_error_ratio",
        &format!("Failed requests' share {w}."),
        each(&|l, f| Some(format!("{{{l}}} {:.4}", f.error_rate()))),
    );
    let tokens = sets.iter().flat_map(|(l, f)| {
        [
            format!("{{{l},kind=\"input\"}} {}", f.totals.prompt_tokens),
            format!("{{{l},kind=\"output\"}} {}", f.totals.completion_tokens),
        ]
    });
    family(out, "burncloud_tokens", &format!("Tokens {w}, input or output."), tokens);
    let per_second = each(&|l, f| Some(format!("{{{l}}} {:.3}", f.tokens() as f64 / (minutes * 60.0))));
    family(out, "burncloud_tokens_per_second", &format!("Tokens per second {w}."), per_second);
    let spend = each(&|l, f| Some(format!("{{{l}}} {}", f.totals.cost)));
    family(out, "burncloud_spend_nano", &format!("Spend {w}, in nano-units of the site currency."), spend);
    let latency = sets.iter().flat_map(|(l, f)| {
        [("0.5", f.p50_ms), ("0.95", f.p95_ms)]
            .into_iter()
            .filter_map(move |(q, p)| p.map(|p| format!("{{{l},quantile=\"{q}\"}} {p}")))
    });
    family(out, "burncloud_latency_ms", &format!("Request latency percentiles {w}, milliseconds."), latency);
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
    let mut sets = vec![("window=\"1h\"".to_string(), &snapshot.overall)];
    for line in &snapshot.models {
        sets.push((format!("window=\"1h\",model=\"{}\"", label(&line.label)), &line.figures));
    }
    for line in &snapshot.channels {
        let id = line.channel_id.map(|i| i.to_string()).unwrap_or_default();
        sets.push((format!("window=\"1h\",channel_id=\"{id}\",channel=\"{}\"", label(&line.label)), &line.figures));
    }
    window_families(&mut out, &sets, minutes);
    if let Ok(channels) = monitoring::channels(&state).await {
        channel_families(&mut out, &state, &channels);
    }
    text(out)
}

/// Each channel's state, and its health on this replica (circuit, moving time to first token,
/// error rate, requests in flight): one family at a time, as the text format wants.
fn channel_families(out: &mut String, state: &AppState, channels: &[ChannelRow]) {
    let views: Vec<(i64, Option<ChannelHealthView>)> =
        channels.iter().map(|c| (c.id, state.routing().health().find_channel(c.id).map(|h| h.view()))).collect();
    let up: Vec<String> = channels
        .iter()
        .map(|c| {
            let (name, kind, status) = (label(&c.name), label(&c.kind), label(&c.status));
            let up = i64::from(c.status == "enabled");
            format!("{{channel_id=\"{}\",channel=\"{name}\",type=\"{kind}\",status=\"{status}\"}} {up}", c.id)
        })
        .collect();
    family(
        out,
        "burncloud_channel_up",
        "1 when the channel is enabled, 0 when disabled (by hand or automatically).",
        up,
    );
    let latency: Vec<String> = channels
        .iter()
        .filter_map(|c| c.test_latency_ms.map(|ms| format!("{{channel_id=\"{}\"}} {ms}", c.id)))
        .collect();
    family(out, "burncloud_channel_test_latency_ms", "The last test's latency.", latency);
    let used: Vec<String> = channels.iter().map(|c| format!("{{channel_id=\"{}\"}} {}", c.id, c.used_amount)).collect();
    family(out, "burncloud_channel_used_nano", "Spend routed through the channel (nano-units).", used);
    let each = |f: &dyn Fn(i64, &ChannelHealthView) -> Option<String>| -> Vec<String> {
        views.iter().filter_map(|(id, view)| view.as_ref().and_then(|v| f(*id, v))).collect()
    };
    let circuit = each(&|id, v| {
        Some(format!("{{channel_id=\"{id}\",circuit=\"{}\"}} {}", v.circuit, i64::from(v.circuit != "closed")))
    });
    let help = "1 while the channel's circuit is open or half-open on this replica.";
    family(out, "burncloud_channel_circuit_open", help, circuit);
    let in_flight = each(&|id, v| Some(format!("{{channel_id=\"{id}\"}} {}", v.traffic.in_flight)));
    family(out, "burncloud_channel_in_flight", "Requests in flight on this replica.", in_flight);
    let ttft = each(&|id, v| v.traffic.ttft_ms.map(|ms| format!("{{channel_id=\"{id}\"}} {ms}")));
    family(out, "burncloud_channel_ttft_ms", "Moving average of the time to first token on this replica.", ttft);
    let errors = each(&|id, v| v.traffic.error_rate.map(|r| format!("{{channel_id=\"{id}\"}} {r:.3}")));
    family(out, "burncloud_channel_error_rate", "Moving average of failed attempts (0 to 1) on this replica.", errors);
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
