//! Money across real replicas: a balance for exactly K requests, and 10×K requests at once spread
//! over three processes. Exactly K are served and charged, the balance ends at zero, the ledger
//! sums to it, and `burncloud audit` (the operator's check, a process of its own) finds the books
//! right.

use std::time::Duration;

use serde_json::json;

use super::{
    Customer, admin, assert_audit_clean, at, balance, charges, customer, models, open, replicas, until_everywhere,
};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::process::{base_env, command};

/// Three replicas, and a customer with `credit` for requests at 0.10, once every replica serves
/// the model.
struct Funded {
    dirs: Vec<tempfile::TempDir>,
    servers: Vec<crate::support::process::Server>,
    url: String,
    fake: FakeOpenAi,
    user: i64,
    key: String,
}

async fn funded(credit: &str) -> Funded {
    let (dirs, servers, url) = replicas(3, &[]).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let Customer { user, key } = customer(&servers[0], &fake.base_url("c"), "0.10", credit).await;
    until_everywhere(&servers, "the channel", |port| {
        let key = key.clone();
        async move { models(port, &key).await.1 == ["m"] }
    })
    .await;
    Funded { dirs, servers, url, fake, user, key }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_for_k_requests_serves_exactly_k_over_three_replicas() {
    const K: usize = 30;
    let Funded { dirs, servers, url, fake, user, key } = funded("3.00").await;

    let client = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 });
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let answers = futures_util::future::join_all((0..10 * K).map(|i| {
        let request = client.post(at(ports[i % 3], "/v1/chat/completions")).bearer_auth(&key).json(&body);
        async move { request.send().await.map_or(0, |r| r.status().as_u16()) }
    }))
    .await;
    // A clean stop settles what is queued and gives the leases back.
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }

    let served = answers.iter().filter(|s| **s == 200).count();
    let refused = answers.iter().filter(|s| **s == 429).count();
    println!("{served} of {} served for a balance of {K}", 10 * K);
    assert_eq!(served + refused, 10 * K, "{answers:?}");
    assert_eq!(fake.received().len(), served, "every served request reached the upstream once");
    assert_eq!(served, K, "the whole balance is spendable across the replicas, and no more: {answers:?}");
    let db = open(&url).await;
    assert_eq!(balance(&db, user).await, 0);
    assert_eq!(charges(&db, user).await, K as i64);
    assert_audit_clean(&db).await;

    let audit =
        tokio::time::timeout(Duration::from_secs(30), command(&base_env(dirs[0].path(), &url), &["audit"]).output())
            .await
            .unwrap()
            .unwrap();
    let stdout = String::from_utf8_lossy(&audit.stdout);
    assert_eq!(audit.status.code(), Some(0), "{stdout}{}", String::from_utf8_lossy(&audit.stderr));
    assert!(stdout.contains("0 offenders"), "{stdout}");
}

/// `n` chat requests at once, spread over the replicas and `keys` in turn; then every replica is
/// stopped cleanly (settling what is queued). Each answer's status and body.
async fn at_once_then_stop(
    servers: Vec<crate::support::process::Server>,
    keys: &[String],
    n: usize,
) -> Vec<(u16, String)> {
    let client = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 5 });
    let ports: Vec<u16> = servers.iter().map(|s| s.port).collect();
    let answers = futures_util::future::join_all((0..n).map(|i| {
        let request = client
            .post(at(ports[i % ports.len()], "/v1/chat/completions"))
            .bearer_auth(&keys[i % keys.len()])
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    }))
    .await;
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
    answers
}

/// A key's daily budget for exactly K requests, and 10×K of them at once over three replicas:
/// exactly K are served and charged (the budget is reserved in the database, which every replica
/// shares), the rest refused naming the budget; the user's balance pays for K only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_budget_for_k_requests_serves_exactly_k_over_three_replicas() {
    const K: usize = 30;
    let Funded { dirs: _dirs, servers, url, fake, user, key: _ } = funded("100.00").await;
    let options = json!({ "budget": "3.00", "budget_period": "day" });
    let (status, created) = admin(&servers[0], "POST", &format!("/api/admin/users/{user}/keys"), Some(options)).await;
    assert_eq!(status, 201, "{created}");
    let (key_id, key) = (created["id"].as_i64().unwrap(), created["key"].as_str().unwrap().to_string());

    let answers = at_once_then_stop(servers, &[key], 10 * K).await;

    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert!(body.contains("daily budget of 3.00"), "{body}");
    }
    println!("{served} of {} served for a budget of {K}", 10 * K);
    assert_eq!(served, K, "the budget holds across the replicas");
    assert_eq!(fake.received().len(), K);
    let db = open(&url).await;
    assert_eq!(balance(&db, user).await, 100_000_000_000 - K as i64 * 100_000_000);
    assert_eq!(charges(&db, user).await, K as i64);
    let spent: i64 = sqlx::query_scalar("SELECT budget_spent FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(spent, K as i64 * 100_000_000, "the budget's count is exactly what was charged");
    assert_audit_clean(&db).await;
}

/// A user's daily budget for exactly K requests, and 10×K of them at once over three replicas and
/// two of the user's keys: exactly K are served and charged (the user's count is reserved in the
/// database every replica shares, whichever key spends it), the rest refused naming the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_budget_for_k_requests_serves_exactly_k_over_three_replicas() {
    const K: usize = 30;
    let Funded { dirs: _dirs, servers, url, fake, user, key: _ } = funded("100.00").await;
    let limits = json!({ "limits": { "budget": "3.00", "budget_period": "day" } });
    let (status, view) = admin(&servers[0], "PATCH", &format!("/api/admin/users/{user}"), Some(limits)).await;
    assert_eq!(status, 200, "{view}");
    // Two new keys: no replica has cached them, so each reads the user's budget with its first use.
    let mut keys = Vec::new();
    for _ in 0..2 {
        let path = format!("/api/admin/users/{user}/keys");
        let (status, created) = admin(&servers[0], "POST", &path, Some(json!({}))).await;
        assert_eq!(status, 201, "{created}");
        keys.push(created["key"].as_str().unwrap().to_string());
    }

    let answers = at_once_then_stop(servers, &keys, 10 * K).await;

    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 429, "{body}");
        assert!(body.contains("Your account's daily budget of 3.00"), "{body}");
    }
    println!("{served} of {} served for a user budget of {K}", 10 * K);
    assert_eq!(served, K, "the user's budget holds across the replicas and keys");
    assert_eq!(fake.received().len(), K);
    let db = open(&url).await;
    assert_eq!(balance(&db, user).await, 100_000_000_000 - K as i64 * 100_000_000);
    assert_eq!(charges(&db, user).await, K as i64);
    let spent: i64 = sqlx::query_scalar("SELECT budget_spent FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(spent, K as i64 * 100_000_000, "the user's count is exactly what was charged");
    assert_audit_clean(&db).await;
}

/// A small balance that one replica leased whole is spendable on the others at once: a replica
/// short of it asks the others (a `lease_wanted` notice) to give back what they have not
/// promised, instead of refusing while the money sits idle in another's lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_balance_leased_by_one_replica_is_spendable_on_the_others() {
    let Funded { servers, url, user, key, .. } = funded("0.30").await;
    let client = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
    let mut statuses = Vec::new();
    // One each on a, b and c (a leases all 0.30 with the first), then a fourth.
    for port in [servers[0].port, servers[1].port, servers[2].port, servers[1].port] {
        let response =
            client.post(at(port, "/v1/chat/completions")).bearer_auth(&key).json(&body).send().await.unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 200, 429], "the whole balance, on whichever replica, and no more");
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
    let db = open(&url).await;
    assert_eq!(balance(&db, user).await, 0);
    assert_eq!(charges(&db, user).await, 3);
    assert_audit_clean(&db).await;
}

/// Budgets one replica leased part of are spendable to the last request on another: a replica
/// short of a budget's room asks the others (the same `lease_wanted` notice as for balances) to
/// give back what they reserved ahead and have not promised. The key's and the user's budgets of
/// 4.00 cover exactly 40 requests at 0.10, whichever replica serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_leased_by_one_replica_is_spendable_on_the_others() {
    let Funded { servers, url, user, key, fake, .. } = funded("100.00").await;
    let budget = json!({ "budget": "4.00", "budget_period": "day" });
    let (status, view) =
        admin(&servers[0], "PATCH", &format!("/api/admin/users/{user}"), Some(json!({ "limits": budget }))).await;
    assert_eq!(status, 200, "{view}");
    let (status, keys) = admin(&servers[0], "GET", &format!("/api/admin/users/{user}/keys"), None).await;
    assert_eq!(status, 200, "{keys}");
    let key_id = keys["data"][0]["id"].as_i64().unwrap();
    let (status, view) = admin(&servers[0], "PATCH", &format!("/api/admin/keys/{key_id}"), Some(budget)).await;
    assert_eq!(status, 200, "{view}");

    let client = reqwest::Client::new();
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "hi" }] });
    let send = |port: u16| {
        let request = client.post(at(port, "/v1/chat/completions")).bearer_auth(&key).json(&body);
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    // The first request on a: a leases slices of both budgets and uses one request of each.
    assert_eq!(send(servers[0].port).await.0, 200);
    let leased: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM budget_leases WHERE holder = 'replica-0' AND amount >= 200000000")
            .fetch_one(open(&url).await.pool())
            .await
            .unwrap();
    assert_eq!(leased, 2, "a reserved ahead on the key's budget and on the user's");
    // The rest on b, to the last request the budgets cover, and one more.
    let mut served = 1;
    let refusal = loop {
        let (status, text) = send(servers[1].port).await;
        match status {
            200 => served += 1,
            _ => break (status, text),
        }
        assert!(served <= 40, "served beyond the budget");
    };
    assert_eq!(served, 40, "the budgets' whole room, though a held part of it");
    assert_eq!(refusal.0, 429, "{}", refusal.1);
    assert!(refusal.1.contains("daily budget of 4.00"), "{}", refusal.1);
    assert_eq!(fake.received().len(), 40);
    for server in servers {
        let (code, log) = server.stop().await;
        assert_eq!(code, 0, "{}", log.join("\n"));
    }
    let db = open(&url).await;
    assert_eq!(charges(&db, user).await, 40);
    let key_count: i64 = sqlx::query_scalar("SELECT budget_spent FROM api_keys WHERE id = $1")
        .bind(key_id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    let user_count: i64 = sqlx::query_scalar("SELECT budget_spent FROM users WHERE id = $1")
        .bind(user)
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!((key_count, user_count), (4_000_000_000, 4_000_000_000), "stopped, every lease was given back");
    assert_audit_clean(&db).await;
}
