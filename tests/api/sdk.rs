//! The official OpenAI Python SDK against BurnCloud (tests/sdk/openai_sdk.py). The interpreter
//! comes from `BURNCLOUD_SDK_PYTHON`, a venv that scripts/test.sh prepares; without it this test
//! fails and says how to get one (it never skips).

use serde_json::json;

use crate::fake_openai::{Behavior, FakeOpenAi};
use crate::gateway::{COST_12_5, priced_channel};
use crate::helpers::{Backend, spawn_app};

db_tests!(openai_python_sdk);

async fn openai_python_sdk(backend: Backend) {
    let python = std::env::var("BURNCLOUD_SDK_PYTHON").unwrap_or_else(|_| {
        panic!("BURNCLOUD_SDK_PYTHON is not set: run the suite with scripts/test.sh, which prepares a venv with the openai SDK")
    });
    let app = spawn_app(backend).await;
    let fake = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &fake, "main", "gpt-4o-mini", json!({})).await;
    let (user, key) = app.user_with_key("10.00").await;
    let (_, empty) = app.user_with_key("0").await;

    let out = tokio::process::Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/openai_sdk.py"))
        .env("BURNCLOUD_BASE_URL", app.url("/v1"))
        .env("BURNCLOUD_KEY", &key)
        .env("BURNCLOUD_EMPTY_KEY", &empty)
        .env("BURNCLOUD_MODEL", "gpt-4o-mini")
        .output()
        .await
        .expect("cannot run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the OpenAI SDK checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("9 checks passed"), "{stdout}");
    println!("{}", stdout.trim());

    // Billed: 4 chat calls (plain, 2 streams, tools) and 2 embeddings (12 tokens each).
    app.wait_for_logs(6).await;
    assert_eq!(app.balance(user).await, 10_000_000_000 - 4 * COST_12_5 - 2 * 30_000);
    app.assert_ledger_consistent().await;
}
