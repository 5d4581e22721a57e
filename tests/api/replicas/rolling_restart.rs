//! A rolling restart: every replica restarted one by one behind nginx, under a steady load of
//! short requests, fails no request. nginx follows readiness the way an ingress controller does
//! (the test polls `/readyz` and reloads nginx's upstream set on each change), and retries
//! nothing (`proxy_next_upstream off`), so every failure would reach the client.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{
    Customer, LOAD_CREDIT, LOAD_PRICE, Load, assert_each_answer_charged_once, at, customer, open, replica_env,
    replicas, until_listening,
};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::nginx::Nginx;
use crate::support::process::start;

const PER_SECOND: u32 = 200;

/// The ingress controller's loop: every 100 ms, the replicas whose `/readyz` answers 200 become
/// nginx's upstream set. Returns how many times the set changed.
async fn follow_readiness(nginx: Arc<Nginx>, ports: Vec<u16>, stop: CancellationToken) -> usize {
    let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let mut current = ports.clone();
    let mut changes = 0;
    while !stop.is_cancelled() {
        let mut ready = Vec::new();
        for &port in &ports {
            if client.get(at(port, "/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
                ready.push(port);
            }
        }
        if ready != current && !ready.is_empty() {
            nginx.set_upstreams(&ready);
            current = ready;
            changes += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    changes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_steady_load_fails_no_request() {
    // Two seconds of drain: time for the controller to see the 503 and nginx to reload.
    let extra = [("BURNCLOUD_SHUTDOWN_DELAY_SECS", "2")];
    let (dirs, mut servers, url) = replicas(3, &extra).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let Customer { user, key } = customer(&servers[0], &fake.base_url("c"), LOAD_PRICE, LOAD_CREDIT).await;
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let nginx = Arc::new(Nginx::start(&ports).await);
    let stop = CancellationToken::new();
    let controller = tokio::spawn(follow_readiness(nginx.clone(), ports.clone(), stop.clone()));

    // A connection of its own per request: reloading nginx (this test's stand-in for a balancer
    // whose endpoints change) closes the idle client connections of its old worker, a race
    // between the client and nginx that a real endpoint change does not have.
    let load = Load::start(vec![format!("http://127.0.0.1:{}", nginx.port)], &key, PER_SECOND, false);
    tokio::time::sleep(Duration::from_secs(1)).await;
    for i in 0..servers.len() {
        let port = servers[i].port;
        let (code, log) = servers.remove(i).stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
        assert!(log.iter().any(|l| l.contains("shutdown complete")), "{}", log.join("\n"));
        // The same replica again, on its port (dirs[0] is the database's).
        let mut env = replica_env(&dirs[i + 1], &url, i, &extra);
        env.insert("BURNCLOUD_LISTEN", format!("127.0.0.1:{port}"));
        servers.insert(i, start(&env).await);
        until_listening(port).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let report = load.finish().await;
    stop.cancel();
    let changes = controller.await.unwrap();

    report.print("rolling restart");
    println!("nginx's upstream set changed {changes} times");
    report.assert_none_failed(&format!("nginx: {}", nginx.log()));
    assert!(report.per_second > f64::from(PER_SECOND) * 0.9, "the load was not steady: {:.0}/s", report.per_second);
    // Each replica left rotation and came back: the restarts went through nginx, not around it.
    assert!(changes >= 2 * ports.len(), "nginx's upstream set changed only {changes} times");

    // Every request answered was charged once, and the ledger sums to the balance.
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
    assert_eq!(fake.received().len(), report.ok, "each answered request reached the upstream once");
    assert_each_answer_charged_once(&url, user, report.ok).await;
    let db = open(&url).await;
    let leases: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM balance_leases").fetch_one(db.pool()).await.unwrap();
    assert_eq!(leases, 0, "every replica gave its leases back on the way out");
}
