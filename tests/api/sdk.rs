//! The official OpenAI Python SDK against BurnCloud (tests/sdk/openai_sdk.py). The interpreter
//! comes from `BURNCLOUD_SDK_PYTHON`, a venv that scripts/test.sh prepares; without it this test
//! fails and says how to get one (it never skips).

use serde_json::json;

use crate::gateway::{COST_12_5, priced_channel};
use crate::support::fake_openai::{Behavior, FakeOpenAi};
use crate::support::helpers::{Backend, spawn_app};

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

    let key_env =
        [("BURNCLOUD_KEY", key.as_str()), ("BURNCLOUD_EMPTY_KEY", &empty), ("BURNCLOUD_MODEL", "gpt-4o-mini")];
    let stdout = run_sdk_script(&python, "openai_sdk.py", &app.url("/v1"), &key_env).await;
    assert!(stdout.contains("9 checks passed"), "{stdout}");
    println!("{}", stdout.trim());

    // Billed: 4 chat calls (plain, 2 streams, tools) and 2 embeddings (12 tokens each).
    app.wait_for_logs(6).await;
    assert_eq!(app.balance(user).await, 10_000_000_000 - 4 * COST_12_5 - 2 * 30_000);
    app.assert_ledger_consistent().await;
}

db_tests!(openai_python_sdk_to_converted_models);

/// The OpenAI SDK's own parsing (and its stream accumulator) on completions converted from
/// Anthropic's, Gemini's and Bedrock's APIs.
async fn openai_python_sdk_to_converted_models(backend: Backend) {
    use crate::support::{fake_anthropic, fake_bedrock, fake_gemini};
    let python = std::env::var("BURNCLOUD_SDK_PYTHON").expect("BURNCLOUD_SDK_PYTHON: run scripts/test.sh");
    let app = spawn_app(backend).await;
    let claude = fake_anthropic::FakeAnthropic::start(fake_anthropic::Reply::Text).await;
    let claude_tools = fake_anthropic::FakeAnthropic::start(fake_anthropic::Reply::ToolUse).await;
    let gemini = fake_gemini::FakeGemini::start(fake_gemini::Reply::Text).await;
    let gemini_tools = fake_gemini::FakeGemini::start(fake_gemini::Reply::FunctionCall).await;
    let bedrock = fake_bedrock::FakeBedrock::start(fake_bedrock::Reply::Text).await;
    let bedrock_tools = fake_bedrock::FakeBedrock::start(fake_bedrock::Reply::ToolUse).await;
    let aws_key = format!("{}:{}", fake_bedrock::ACCESS_KEY_ID, fake_bedrock::SECRET_ACCESS_KEY);
    let region = json!({ "region": fake_bedrock::REGION });
    let channels = [
        ("claude-text", "anthropic", claude.base_url(), fake_anthropic::KEY.to_string(), json!({})),
        ("claude-tools", "anthropic", claude_tools.base_url(), fake_anthropic::KEY.to_string(), json!({})),
        ("gemini-text", "gemini", gemini.base_url(), fake_gemini::KEY.to_string(), json!({})),
        ("gemini-tools", "gemini", gemini_tools.base_url(), fake_gemini::KEY.to_string(), json!({})),
        ("bedrock-text", "bedrock", bedrock.base_url(), aws_key.clone(), region.clone()),
        ("bedrock-tools", "bedrock", bedrock_tools.base_url(), aws_key, region),
    ];
    for (model, kind, base_url, key, config) in channels {
        let channel = json!({ "name": model, "type": kind, "base_url": base_url, "key": key, "models": [model], "config": config });
        app.add_channel(channel).await;
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    let (user, key) = app.user_with_key("10.00").await;
    let env = [
        ("BURNCLOUD_KEY", key.as_str()),
        ("BURNCLOUD_MODELS", "claude-text,gemini-text,bedrock-text"),
        ("BURNCLOUD_TOOLS_MODELS", "claude-tools,gemini-tools,bedrock-tools"),
    ];
    let stdout = run_sdk_script(&python, "openai_sdk_converted.py", &app.url("/v1"), &env).await;
    assert!(stdout.contains("9 checks passed"), "{stdout}");

    // Billed from each provider's usage: chat and stream per text model, one streamed tool call each.
    app.wait_for_logs(9).await;
    let cost = |(input, output): (i64, i64)| input * 1000 + output * 2000;
    let expected: i64 = [(2095, 503), (25, 15), (472, 89), (8, 10), (9, 5), (50, 6), (12, 9), (12, 7), (30, 10)]
        .into_iter()
        .map(cost)
        .sum();
    assert_eq!(app.balance(user).await, 10_000_000_000 - expected);
    app.assert_ledger_consistent().await;
}

/// Runs a script of tests/sdk/ with the venv's interpreter; its stdout, once it succeeded.
async fn run_sdk_script(python: &str, script: &str, base_url: &str, env: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new(python)
        .arg(format!("{}/tests/sdk/{script}", env!("CARGO_MANIFEST_DIR")))
        .env("BURNCLOUD_BASE_URL", base_url)
        .envs(env.iter().copied())
        .output()
        .await
        .expect("cannot run the SDK script");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the OpenAI SDK checks ({script}) failed:\n{stdout}\n{stderr}");
    stdout
}

db_tests!(anthropic_python_sdk);

/// The Anthropic SDK on `/v1/messages`, through an OpenAI-type, an Anthropic and a Gemini channel.
async fn anthropic_python_sdk(backend: Backend) {
    use crate::support::fake_anthropic::{FakeAnthropic, Reply};
    use crate::support::fake_gemini::FakeGemini;
    let python = std::env::var("BURNCLOUD_SDK_PYTHON").expect("BURNCLOUD_SDK_PYTHON: run scripts/test.sh");
    let app = spawn_app(backend).await;
    let openai = FakeOpenAi::start(Behavior::default()).await;
    priced_channel(&app, &openai, "gpt", "gpt-test", json!({})).await;
    let claude = FakeAnthropic::start(Reply::Text).await;
    let gemini = FakeGemini::start(crate::support::fake_gemini::Reply::Text).await;
    let channels = [
        ("claude-test", "anthropic", claude.base_url(), crate::support::fake_anthropic::KEY),
        ("gemini-test", "gemini", gemini.base_url(), crate::support::fake_gemini::KEY),
    ];
    for (model, kind, base_url, key) in channels {
        app.add_channel(json!({ "name": model, "type": kind, "base_url": base_url, "key": key, "models": [model] }))
            .await;
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    let (user, key) = app.user_with_key("10.00").await;

    let env = [
        ("BURNCLOUD_KEY", key.as_str()),
        ("BURNCLOUD_MODELS", "gpt-test,claude-test,gemini-test"),
        ("BURNCLOUD_TOOLS_MODEL", "gpt-test"),
    ];
    let stdout = run_sdk_script(&python, "anthropic_sdk.py", &app.url(""), &env).await;
    assert!(stdout.contains("8 checks passed"), "{stdout}");

    // gpt-test: create, stream and two tool-use calls; claude-test and gemini-test: their
    // fixtures' answer and stream.
    app.wait_for_logs(8).await;
    let cost = |input: i64, output: i64| input * 1000 + output * 2000;
    let fixtures = cost(2095, 503) + cost(25, 15) + cost(8, 10) + cost(9, 5);
    assert_eq!(app.balance(user).await, 10_000_000_000 - 4 * COST_12_5 - fixtures);
    app.assert_ledger_consistent().await;
}
