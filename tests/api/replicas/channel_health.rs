//! Channel health across real replicas: a channel whose key one replica saw refused is taken out
//! of that replica's routing at once and disabled for all; re-enabled through another replica, it
//! serves on every replica again (the refusing replica's own suspension does not outlive it).

use serde_json::{Value, json};

use super::{Customer, admin, at, customer, models, replicas, until_everywhere};
use crate::support::fake_openai::{Behavior, FakeOpenAi};

async fn chat(port: u16, key: &str) -> u16 {
    let body = json!({ "model": "m", "messages": [{ "role": "user", "content": "Say hello" }], "max_tokens": 10 });
    let response = reqwest::Client::new()
        .post(at(port, "/v1/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    response.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_refused_on_one_replica_and_enabled_on_another_serves_on_both() {
    let (_dirs, servers, _url) = replicas(2, &[("BURNCLOUD_CHANNEL_RETEST_SECS", "0")]).await;
    let (a, b) = (&servers[0], &servers[1]);
    let fake = FakeOpenAi::start(Behavior::default()).await;
    let Customer { key, .. } = customer(a, &fake.base_url("c"), "0.01", "10.00").await;
    until_everywhere(&servers, "the channel", |port| {
        let key = key.clone();
        async move { models(port, &key).await.1 == ["m"] }
    })
    .await;
    let (_, channels) = admin(a, "GET", "/api/admin/channels", None).await;
    let id = channels["data"][0]["id"].as_i64().unwrap();

    // The upstream refuses the key: replica A disables the channel for everyone.
    fake.set(Behavior::Status(401));
    assert!(chat(a.port, &key).await >= 500);
    until_everywhere(&servers, "the automatic disable", |_| async {
        let (_, channel): (u16, Value) = admin(b, "GET", &format!("/api/admin/channels/{id}"), None).await;
        channel["status"] == "auto_disabled"
    })
    .await;

    // The key is fixed upstream and the operator enables the channel through replica B.
    fake.set(Behavior::default());
    let (status, channel) = admin(b, "POST", &format!("/api/admin/channels/{id}/enable"), None).await;
    assert_eq!((status, &channel["status"]), (200, &json!("enabled")), "{channel}");
    // Both replicas serve it again, A included.
    until_everywhere(&servers, "the re-enabled channel", |port| {
        let key = key.clone();
        async move { chat(port, &key).await == 200 }
    })
    .await;
}
