"""The official `openai` Python SDK reaching models behind protocol-converting channels (Anthropic,
Gemini, Bedrock) by model name alone.

Run by the Rust test `sdk::openai_python_sdk_to_converted_models` (tests/api/sdk.rs), which starts
BurnCloud with the fakes (answers from tests/fixtures/<provider>/) and passes BURNCLOUD_BASE_URL,
BURNCLOUD_KEY, BURNCLOUD_MODELS and BURNCLOUD_TOOLS_MODELS (comma-separated). Exits non-zero on the
first failed check.
"""

import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["BURNCLOUD_BASE_URL"], api_key=os.environ["BURNCLOUD_KEY"], max_retries=0)
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
passed = []

for model in os.environ["BURNCLOUD_MODELS"].split(","):
    r = client.chat.completions.create(model=model, messages=MESSAGES)
    assert r.choices[0].message.content and r.choices[0].finish_reason == "stop", r
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0, r.usage
    passed.append(f"chat ({model})")

    with client.chat.completions.stream(model=model, messages=MESSAGES, stream_options={"include_usage": True}) as s:
        final = s.get_final_completion()
    assert final.choices[0].message.content and final.usage.completion_tokens > 0, final
    passed.append(f"chat stream ({model})")

for model in os.environ["BURNCLOUD_TOOLS_MODELS"].split(","):
    with client.chat.completions.stream(model=model, messages=MESSAGES, tools=TOOLS) as s:
        final = s.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls", final
    assert call.function.name == "get_weather" and "location" in json.loads(call.function.arguments), call
    passed.append(f"streamed tool calls ({model})")

print(f"{len(passed)} checks passed: {', '.join(passed)}")
