//! The real published clients, unmodified, against BurnCloud in front of a scripted fake upstream
//! (issue 14): Claude Code (`claude -p`), Codex CLI (`codex exec`), LangChain Python
//! (`langchain-openai`, `langchain-anthropic`) and the `llm` CLI, on every channel type (openai,
//! anthropic, gemini and an OpenAI-compatible vendor, deepseek). Each test asserts what a user
//! sees (exit status, the fake's answer printed, a tool round trip completed) and that the ledger
//! shows the charge the fake's reported usage implies. The clients come from scripts/test.sh
//! (pinned in tests/clients/); a missing client fails the test and says how to install it.

mod fake_agent;
mod run;

use serde_json::{Value, json};

use crate::support::helpers::{Backend, TestApp, spawn_app};
use fake_agent::{ANSWER, FakeAgent};
use run::{Output, Sandbox, client};

db_tests!(
    claude_code_on_openai,
    claude_code_on_anthropic,
    claude_code_on_gemini,
    claude_code_on_deepseek,
    claude_code_alias_on_deepseek,
    codex_on_openai,
    codex_on_anthropic_is_refused,
    codex_on_gemini_is_refused,
    codex_on_deepseek_is_refused,
    langchain_on_openai,
    langchain_on_anthropic,
    langchain_on_gemini,
    langchain_on_deepseek,
    llm_on_openai,
    llm_on_anthropic,
    llm_on_gemini,
    llm_on_deepseek,
);

/// The user's starting balance ($10) in nano-units.
const START: i64 = 10_000_000_000;

/// One channel per type, each serving the model its provider really has.
const CHANNELS: [(&str, &str); 4] = [
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-sonnet-4-5"),
    ("gemini", "gemini-2.5-flash"),
    ("deepseek", "deepseek-chat"),
];

fn model_of(kind: &str) -> &'static str {
    CHANNELS.iter().find(|(k, _)| *k == kind).map(|(_, m)| *m).unwrap()
}

/// An app with a channel of each type on one fake, the models priced at $1 / $2 per 1M tokens,
/// and a user with $10 and a key.
struct Setup {
    app: TestApp,
    fake: FakeAgent,
    user: i64,
    key: String,
}

async fn setup(backend: Backend) -> Setup {
    let app = spawn_app(backend).await;
    let fake = FakeAgent::start().await;
    for (kind, model) in CHANNELS {
        app.add_channel(json!({ "name": kind, "type": kind, "base_url": fake.base_url(kind),
                                "key": format!("upstream-{kind}-key"), "models": [model], "groups": ["default"] }))
            .await;
        app.set_price(model, json!({ "input": "1.00", "output": "2.00" })).await;
    }
    let (user, key) = app.user_with_key("10.00").await;
    Setup { app, fake, user, key }
}

impl Setup {
    /// The ledger shows exactly the charge the fake's reported usage implies, and the books balance;
    /// and the upstream never saw the client's BurnCloud key (only the channel's).
    async fn assert_charged(&self) {
        for received in self.fake.received() {
            let leaked = received.headers.values().any(|v| v.to_str().is_ok_and(|v| v.contains(&self.key)));
            assert!(!leaked, "the client's key reached the upstream: {:?}", received.headers);
        }
        let (input, output) = self.fake.usage();
        assert!(input > 0 && output > 0, "no upstream answer was billed:\n{}", self.fake.summary());
        let spent = START - self.app.balance(self.user).await;
        assert_eq!(spent, input * 1000 + output * 2000, "charge vs the fake's usage:\n{}", self.fake.summary());
        self.app.assert_ledger_consistent().await;
    }

    /// The upstream saw a tool call answered and then the tool's result (the round trip reached it).
    fn assert_round_trip(&self, protocol: &str) {
        let received = self.fake.received();
        let seen = |outcome: &str| received.iter().any(|r| r.protocol == protocol && r.outcome == outcome);
        assert!(seen("tool_call") && seen("final"), "no tool round trip on {protocol}:\n{}", self.fake.summary());
    }
}

/// The protocol the fake speaks for a channel type.
fn protocol_of(kind: &str) -> &'static str {
    match kind {
        "anthropic" => "anthropic",
        "gemini" => "gemini",
        _ => "openai",
    }
}

fn secret() -> String {
    format!("SECRET-{}", burncloud::domain::token::random_alphanumeric(12))
}

// ---- Claude Code -------------------------------------------------------------------------------

/// Claude Code's environment for BurnCloud: base URL without `/v1`, the key (in
/// `ANTHROPIC_API_KEY`, sent as `x-api-key`, or `ANTHROPIC_AUTH_TOKEN`, sent as a bearer token),
/// and every model variable (its main model and its background "fast" model) set to `model`.
fn claude_env(
    sandbox: &Sandbox,
    app: &TestApp,
    key_var: &'static str,
    key: &str,
    model: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("CLAUDE_CONFIG_DIR", sandbox.config().display().to_string()),
        ("ANTHROPIC_BASE_URL", app.address.clone()),
        (key_var, key.to_string()),
        ("ANTHROPIC_MODEL", model.to_string()),
        ("ANTHROPIC_DEFAULT_HAIKU_MODEL", model.to_string()),
        ("ANTHROPIC_SMALL_FAST_MODEL", model.to_string()),
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1".to_string()),
        ("DISABLE_AUTOUPDATER", "1".to_string()),
        ("DISABLE_TELEMETRY", "1".to_string()),
        ("DISABLE_ERROR_REPORTING", "1".to_string()),
    ]
}

/// `claude -p` reads a file with its Read tool (default tool set, then `--tools Read`) and
/// prints the fake's final answer quoting the file's secret. With one tool the key goes in
/// `ANTHROPIC_AUTH_TOKEN` (as /quickstart shows), otherwise in `ANTHROPIC_API_KEY`.
async fn claude_code_round_trips(setup: &Setup, model: &str, extra: &[&str]) -> Output {
    let claude = client("BURNCLOUD_CLAUDE", "Claude Code (@anthropic-ai/claude-code)");
    let sandbox = Sandbox::new();
    let secret = secret();
    let file = sandbox.work().join("notes.txt");
    sandbox.write(&file, &format!("{secret}\n"));
    let prompt =
        format!("What does notes.txt say? [[call Read {}]]", json!({ "file_path": file.display().to_string() }));
    let mut args = extra.to_vec();
    args.extend(["-p", &prompt]);
    let key_var = if extra.contains(&"--tools") { "ANTHROPIC_AUTH_TOKEN" } else { "ANTHROPIC_API_KEY" };
    let out = sandbox.run(&claude, &args, &claude_env(&sandbox, &setup.app, key_var, &setup.key, model)).await;
    assert!(out.success(), "Claude Code {extra:?} on {model} failed:\n{out}\nupstream:\n{}", setup.fake.summary());
    assert!(
        out.stdout.contains(ANSWER) && out.stdout.contains(&secret),
        "Claude Code {extra:?} on {model} did not print the fake's final answer with the file's secret:\n{out}\nupstream:\n{}",
        setup.fake.summary()
    );
    out
}

async fn claude_code_on(backend: Backend, kind: &str) {
    let setup = setup(backend).await;
    let model = model_of(kind);
    claude_code_round_trips(&setup, model, &["--output-format", "text"]).await;
    claude_code_round_trips(&setup, model, &["--tools", "Read", "--output-format", "text"]).await;
    setup.assert_round_trip(protocol_of(kind));
    if kind == "gemini" {
        // Claude Code's reasoning hints (`thinking`, `output_config.effort`) reach a model that
        // reasons as Gemini's thinking budget (issue 14, fix 7).
        let thinking = setup.fake.received().iter().any(|r| r.body["generationConfig"]["thinkingConfig"].is_object());
        assert!(thinking, "no request carried generationConfig.thinkingConfig:\n{}", setup.fake.summary());
    }
    setup.assert_charged().await;
}

async fn claude_code_on_openai(backend: Backend) {
    claude_code_on(backend, "openai").await;
}

async fn claude_code_on_anthropic(backend: Backend) {
    claude_code_on(backend, "anthropic").await;
}

async fn claude_code_on_gemini(backend: Backend) {
    claude_code_on(backend, "gemini").await;
}

async fn claude_code_on_deepseek(backend: Backend) {
    claude_code_on(backend, "deepseek").await;
}

/// Claude Code asks for `claude-sonnet-4-5`, which a deepseek channel maps to `deepseek-chat`:
/// the round trip works and every answer Claude Code receives carries the name it asked for.
async fn claude_code_alias_on_deepseek(backend: Backend) {
    let app = spawn_app(backend).await;
    let fake = FakeAgent::start().await;
    app.add_channel(json!({ "name": "alias", "type": "deepseek", "base_url": fake.base_url("deepseek"), "key": "k",
                            "models": ["claude-sonnet-4-5"], "model_mapping": { "claude-sonnet-4-5": "deepseek-chat" },
                            "groups": ["default"] }))
        .await;
    app.set_price("claude-sonnet-4-5", json!({ "input": "1.00", "output": "2.00" })).await;
    let (user, key) = app.user_with_key("10.00").await;
    let setup = Setup { app, fake, user, key };

    let out =
        claude_code_round_trips(&setup, "claude-sonnet-4-5", &["--output-format", "stream-json", "--verbose"]).await;
    let models: Vec<String> = out
        .stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["type"] == "assistant")
        .map(|event| event["message"]["model"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(!models.is_empty(), "no assistant message in Claude Code's stream-json output:\n{out}");
    assert!(models.iter().all(|m| m == "claude-sonnet-4-5"), "answers named {models:?}, not the alias asked for");
    // Upstream, the mapped name was asked for.
    assert!(setup.fake.received().iter().all(|r| r.body["model"] == "deepseek-chat"), "{}", setup.fake.summary());
    setup.assert_round_trip("openai");
    setup.assert_charged().await;
}

// ---- Codex CLI ---------------------------------------------------------------------------------

/// Codex's provider block for BurnCloud (CODEX_HOME/config.toml), as docs/clients.md gives it:
/// web search off (a server-side tool the gateway cannot bill, so it refuses requests that offer
/// it), analytics and update checks off.
fn codex_config(app: &TestApp, model: &str) -> String {
    format!(
        "model = \"{model}\"\nmodel_provider = \"burncloud\"\nweb_search = \"disabled\"\n\
         check_for_update_on_startup = false\n\n\
         [analytics]\nenabled = false\n\n[feedback]\nenabled = false\n\n\
         [model_providers.burncloud]\nname = \"BurnCloud\"\nbase_url = \"{}/v1\"\n\
         env_key = \"BURNCLOUD_API_KEY\"\nwire_api = \"responses\"\n",
        app.address
    )
}

async fn run_codex(setup: &Setup, model: &str, prompt: &str) -> Output {
    let codex = client("BURNCLOUD_CODEX", "Codex CLI (@openai/codex)");
    let sandbox = Sandbox::new();
    sandbox.write(&sandbox.config().join("config.toml"), &codex_config(&setup.app, model));
    let env = [("CODEX_HOME", sandbox.config().display().to_string()), ("BURNCLOUD_API_KEY", setup.key.clone())];
    sandbox.run(&codex, &["exec", "--skip-git-repo-check", prompt], &env).await
}

/// `codex exec` on an OpenAI channel: it streams the Responses API, prints the answer, is billed.
async fn codex_on_openai(backend: Backend) {
    let setup = setup(backend).await;
    let out = run_codex(&setup, "gpt-4o-mini", "Say hello").await;
    assert!(out.success(), "Codex failed:\n{out}\nupstream:\n{}", setup.fake.summary());
    assert!(out.stdout.contains(ANSWER), "Codex did not print the fake's answer:\n{out}");
    let received = setup.fake.received();
    assert!(received.iter().any(|r| r.protocol == "responses" && r.status == 200), "{}", setup.fake.summary());
    setup.assert_charged().await;
}

/// Codex speaks only the Responses API: on a channel that cannot take it, BurnCloud answers a
/// clear 400, Codex exits non-zero showing that message, and nobody is charged.
async fn codex_is_refused(backend: Backend, kind: &str) {
    let setup = setup(backend).await;
    let model = model_of(kind);
    let probe = setup
        .app
        .v1(&setup.key, "/v1/responses", &json!({ "model": model, "input": "Say hello", "stream": true }))
        .await;
    let status = probe.status().as_u16();
    let body: Value = probe.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 400, "/v1/responses for {model}: {body}");
    let message =
        body["error"]["message"].as_str().unwrap_or_else(|| panic!("not an OpenAI error: {body}")).to_string();

    let out = run_codex(&setup, model, "Say hello").await;
    assert!(!out.success(), "Codex succeeded on {model}:\n{out}");
    assert!(
        out.stdout.contains(&message) || out.stderr.contains(&message),
        "Codex does not show BurnCloud's message {message:?}:\n{out}"
    );
    assert_eq!(setup.app.balance(setup.user).await, START);
    setup.app.assert_ledger_consistent().await;
}

async fn codex_on_anthropic_is_refused(backend: Backend) {
    codex_is_refused(backend, "anthropic").await;
}

async fn codex_on_gemini_is_refused(backend: Backend) {
    codex_is_refused(backend, "gemini").await;
}

async fn codex_on_deepseek_is_refused(backend: Backend) {
    codex_is_refused(backend, "deepseek").await;
}

// ---- LangChain Python --------------------------------------------------------------------------

/// tests/clients/langchain_check.py: ChatOpenAI and ChatAnthropic, plain and streamed, each with
/// a `bind_tools` round trip; it prints `N checks passed` or every failure.
async fn langchain_on(backend: Backend, kind: &str) {
    let python = client("BURNCLOUD_CLIENTS_PYTHON", "LangChain (langchain-openai, langchain-anthropic)");
    let setup = setup(backend).await;
    let sandbox = Sandbox::new();
    let script = format!("{}/tests/clients/langchain_check.py", env!("CARGO_MANIFEST_DIR"));
    let secret = secret();
    let env = [
        ("BURNCLOUD_BASE_URL", setup.app.address.clone()),
        ("BURNCLOUD_KEY", setup.key.clone()),
        ("BURNCLOUD_MODEL", model_of(kind).to_string()),
        ("BURNCLOUD_SECRET", secret.clone()),
    ];
    let out = sandbox.run(&python, &[&script], &env).await;
    assert!(out.success(), "LangChain on {kind} failed:\n{out}\nupstream:\n{}", setup.fake.summary());
    assert!(out.stdout.contains("11 checks passed"), "{out}");
    assert!(out.stdout.contains(&secret), "the final answers did not quote the tool's result:\n{out}");
    setup.assert_round_trip(protocol_of(kind));
    setup.assert_charged().await;
}

async fn langchain_on_openai(backend: Backend) {
    langchain_on(backend, "openai").await;
}

async fn langchain_on_anthropic(backend: Backend) {
    langchain_on(backend, "anthropic").await;
}

async fn langchain_on_gemini(backend: Backend) {
    langchain_on(backend, "gemini").await;
}

async fn langchain_on_deepseek(backend: Backend) {
    langchain_on(backend, "deepseek").await;
}

// ---- llm ---------------------------------------------------------------------------------------

/// `llm` with BurnCloud as an extra OpenAI model (LLM_USER_PATH/extra-openai-models.yaml): a
/// streamed prompt, a `--no-stream` prompt, and a `--functions` tool round trip.
async fn llm_on(backend: Backend, kind: &str) {
    let llm = client("BURNCLOUD_LLM", "the llm CLI");
    let setup = setup(backend).await;
    let sandbox = Sandbox::new();
    let model = model_of(kind);
    let config = format!(
        "- model_id: burncloud-{model}\n  model_name: {model}\n  api_base: {}/v1\n  api_key_name: burncloud\n  supports_tools: true\n",
        setup.app.address
    );
    sandbox.write(&sandbox.config().join("extra-openai-models.yaml"), &config);
    sandbox.write(&sandbox.config().join("keys.json"), &json!({ "burncloud": setup.key }).to_string());
    let env = [("LLM_USER_PATH", sandbox.config().display().to_string())];
    let id = format!("burncloud-{model}");

    for extra in [&[][..], &["--no-stream"][..]] {
        let mut args = vec!["-m", id.as_str(), "Say hello"];
        args.extend(extra);
        let out = sandbox.run(&llm, &args, &env).await;
        assert!(
            out.success() && out.stdout.contains(ANSWER),
            "llm {args:?} on {kind}:\n{out}\nupstream:\n{}",
            setup.fake.summary()
        );
    }

    let secret = secret();
    let function =
        format!("def get_secret(name: str) -> str:\n    \"Returns the named secret.\"\n    return \"{secret}\"\n");
    let prompt = format!("What is the vault's secret? [[call get_secret {}]]", json!({ "name": "vault" }));
    let out = sandbox.run(&llm, &["-m", &id, "--functions", &function, &prompt], &env).await;
    assert!(out.success(), "llm --functions on {kind}:\n{out}\nupstream:\n{}", setup.fake.summary());
    assert!(
        out.stdout.contains(ANSWER) && out.stdout.contains(&secret),
        "llm --functions did not print the final answer:\n{out}"
    );
    setup.assert_round_trip(protocol_of(kind));
    setup.assert_charged().await;
}

async fn llm_on_openai(backend: Backend) {
    llm_on(backend, "openai").await;
}

async fn llm_on_anthropic(backend: Backend) {
    llm_on(backend, "anthropic").await;
}

async fn llm_on_gemini(backend: Backend) {
    llm_on(backend, "gemini").await;
}

async fn llm_on_deepseek(backend: Backend) {
    llm_on(backend, "deepseek").await;
}

// ---- the fake itself ---------------------------------------------------------------------------

/// The fake refuses what the real providers refuse, in their error shapes, so the suite fails
/// where real clients fail against real providers (and accepts what they accept).
#[tokio::test]
async fn fake_agent_refuses_what_real_providers_refuse() {
    let fake = FakeAgent::start().await;
    let http = reqwest::Client::new();
    let post = |url: String, body: Value, headers: &[(&str, &str)]| {
        let mut request = http.post(url).json(&body);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let bearer = [("authorization", "Bearer k")];
    let hello = json!([{ "role": "user", "content": "hi" }]);

    // OpenAI and DeepSeek: output caps above the model's limit, an over-long `user`.
    let openai = format!("{}/chat/completions", fake.base_url("openai"));
    let deepseek = format!("{}/chat/completions", fake.base_url("deepseek"));
    let (status, body) =
        post(openai.clone(), json!({ "model": "gpt-4o-mini", "messages": hello, "max_tokens": 32000 }), &bearer).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("max_tokens")), "{body}");
    let (status, _) = post(
        openai.clone(),
        json!({ "model": "gpt-4o-mini", "messages": hello, "max_completion_tokens": 16384 }),
        &bearer,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) =
        post(openai.clone(), json!({ "model": "gpt-4o-mini", "messages": hello, "user": "u".repeat(65) }), &bearer)
            .await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("maximum length 64"), "{body}");
    let effort = json!({ "model": "gpt-4o-mini", "messages": hello, "reasoning_effort": "high" });
    let (status, body) = post(openai.clone(), effort, &bearer).await;
    assert_eq!((status, body["error"]["param"].as_str()), (400, Some("reasoning_effort")), "{body}");
    let (status, body) =
        post(deepseek.clone(), json!({ "model": "deepseek-chat", "messages": hello, "max_tokens": 8193 }), &bearer)
            .await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("[1, 8192]"), "{body}");
    let (status, body) =
        post(deepseek, json!({ "model": "deepseek-chat", "messages": hello, "max_tokens": 8192 }), &bearer).await;
    assert!(status == 200 && body["choices"][0]["message"]["content"].as_str().unwrap().starts_with(ANSWER), "{body}");

    // Gemini: schema keywords outside its subset, `parameters` and `parametersJsonSchema` together.
    let gemini = format!("{}/v1beta/models/gemini-2.5-flash:generateContent", fake.base_url("gemini"));
    let key = [("x-goog-api-key", "k")];
    let contents = json!([{ "role": "user", "parts": [{ "text": "hi" }] }]);
    let strict =
        json!({ "type": "object", "properties": { "path": { "type": "string" } }, "additionalProperties": false });
    let tools = |declaration: Value| json!([{ "functionDeclarations": [declaration] }]);
    let (status, body) = post(
        gemini.clone(),
        json!({ "contents": contents, "tools": tools(json!({ "name": "f", "parameters": strict })) }),
        &key,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["message"],
        "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field."
    );
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    let nested = json!({ "type": "object", "properties": { "n": { "type": "integer", "exclusiveMinimum": 0 } } });
    let (status, body) = post(
        gemini.clone(),
        json!({ "contents": contents, "tools": tools(json!({ "name": "f", "parameters": nested })) }),
        &key,
    )
    .await;
    assert!(status == 400 && body["error"]["message"].as_str().unwrap().contains("exclusiveMinimum"), "{body}");
    let (status, body) = post(
        gemini.clone(),
        json!({ "contents": contents, "tools": tools(json!({ "name": "f", "parametersJsonSchema": strict })) }),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let both = json!({ "name": "f", "parameters": { "type": "object" }, "parametersJsonSchema": strict });
    let (status, _) = post(gemini, json!({ "contents": contents, "tools": tools(both) }), &key).await;
    assert_eq!(status, 400);

    // Anthropic: a `system` turn inside `messages` only with the beta that allows it.
    let messages = format!("{}/v1/messages", fake.base_url("anthropic"));
    let turns = json!([{ "role": "user", "content": "hi" }, { "role": "system", "content": "be brief" }]);
    let request = json!({ "model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": turns });
    let plain = [("x-api-key", "k"), ("anthropic-version", "2023-06-01")];
    let (status, body) = post(messages.clone(), request.clone(), &plain).await;
    assert_eq!((status, body["error"]["type"].as_str()), (400, Some("invalid_request_error")), "{body}");
    let beta = [
        ("x-api-key", "k"),
        ("anthropic-version", "2023-06-01"),
        ("anthropic-beta", fake_agent::MID_CONVERSATION_SYSTEM_BETA),
    ];
    let (status, body) = post(messages.clone(), request, &beta).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) =
        post(messages, json!({ "model": "claude-sonnet-4-5", "max_tokens": 64001, "messages": hello }), &plain).await;
    assert_eq!(status, 400);
    assert_eq!(fake.received().iter().filter(|r| r.status == 200).count(), 4, "{}", fake.summary());
}
