//! Postgres restarts under load (down for three seconds): the replicas serve on from their caches and leases, reconnect,
//! resume listening for each other's changes, and settle every request served meanwhile.

use std::time::{Duration, Instant};

use serde_json::json;

use super::{Customer, LOAD_CREDIT, LOAD_PRICE, Load, admin, assert_each_answer_charged_once, at, customer, models};
use super::{replicas_on, until_everywhere, until_listening};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::postgres::PostgresServer;

const PER_SECOND: u32 = 200;
/// How long the database is down: an upgrade's restart, not a blip.
const DOWN: Duration = Duration::from_secs(3);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_no_settlement() {
    let postgres = PostgresServer::start().await;
    let url = postgres.url();
    // Ten minutes of cache: after the restart only the resumed notices carry a change in time.
    let (_dirs, servers) = replicas_on(&url, 3, &[("BURNCLOUD_CACHE_TTL_SECS", "600")]).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let Customer { user, key } = customer(&servers[0], &fake.base_url("c"), LOAD_PRICE, LOAD_CREDIT).await;
    let targets = servers.iter().map(|s| at(s.port, "")).collect();
    let load = Load::start(targets, &key, PER_SECOND, true);
    tokio::time::sleep(Duration::from_secs(1)).await;

    let restarting = Instant::now();
    let postgres = tokio::task::spawn_blocking(move || {
        postgres.restart(DOWN);
        postgres
    })
    .await
    .unwrap();
    println!("Postgres restarted in {:?}", restarting.elapsed());
    for server in &servers {
        until_listening(server.port).await;
    }
    // Listening again, for real: a channel made on A is served on B and C within a second.
    let channel = json!({ "name": "after", "type": "openai", "base_url": fake.base_url("d"), "key": "k",
                          "models": ["after-restart"] });
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // The first write may still meet a pool connection the restart ended.
        let (status, body) = admin(&servers[0], "POST", "/api/admin/channels", Some(channel.clone())).await;
        if status == 201 {
            break;
        }
        assert!(Instant::now() < deadline, "no write after the restart: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let arrived = until_everywhere(&servers[1..], "a channel made after the restart", |port| {
        let key = key.clone();
        async move { models(port, &key).await.1.iter().any(|m| m == "after-restart") }
    })
    .await;
    // The cache lives ten minutes: only a resumed LISTEN carries it this soon (measured: 50 to
    // 150 ms, sharing two cores with the suite's other replica sets).
    assert!(arrived < Duration::from_secs(2), "{arrived:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.finish().await;
    report.print("Postgres restart");
    println!("a change made after it arrived {arrived:?} after");
    // Stopped first, so a failure below can show what the replicas warned of.
    let mut warnings = Vec::new();
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
        warnings.extend(log.into_iter().filter(|l| l.contains("\"WARN\"") || l.contains("\"ERROR\"")));
    }
    // Served from the caches and leases while the database was down: a caller's concurrency
    // slot is not held hostage by a settlement waiting for the database.
    report.assert_none_failed(&format!("replicas warned:\n{}", warnings.join("\n")));
    assert_each_answer_charged_once(&url, user, report.ok).await;
    drop(postgres);
}
