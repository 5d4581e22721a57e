"""The official `anthropic` Python SDK against BurnCloud's /v1/messages, as Claude Code or a user's
program would call it, reaching an OpenAI-type channel and an Anthropic channel by model name.

Run by the Rust test `sdk::anthropic_python_sdk` (tests/api/sdk.rs), which passes
BURNCLOUD_BASE_URL (the server root: the SDK adds /v1/messages), BURNCLOUD_KEY, BURNCLOUD_MODELS
(comma-separated) and BURNCLOUD_TOOLS_MODEL. Exits non-zero on the first failed check.
"""

import os

import anthropic

BASE = os.environ["BURNCLOUD_BASE_URL"]
client = anthropic.Anthropic(base_url=BASE, api_key=os.environ["BURNCLOUD_KEY"], max_retries=0)
MESSAGES = [{"role": "user", "content": "Say hello"}]
passed = []

for model in os.environ["BURNCLOUD_MODELS"].split(","):
    r = client.messages.create(model=model, max_tokens=64, system="Be brief.", messages=MESSAGES)
    assert r.type == "message" and r.content[0].type == "text" and r.content[0].text, r
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0, r.usage
    assert r.stop_reason == "end_turn", r
    passed.append(f"create ({model})")

    with client.messages.stream(model=model, max_tokens=64, messages=MESSAGES) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].text == text, (text, final)
    assert final.usage.output_tokens > 0 and final.stop_reason == "end_turn", final
    passed.append(f"stream ({model})")

tools = [{"name": "get_weather", "description": "Weather now", "input_schema": {"type": "object"}}]
r = client.messages.create(model=os.environ["BURNCLOUD_TOOLS_MODEL"], max_tokens=64, messages=MESSAGES, tools=tools)
call = next(b for b in r.content if b.type == "tool_use")
assert r.stop_reason == "tool_use" and call.name == "get_weather" and call.input == {"location": "Paris"}, r
follow_up = MESSAGES + [
    {"role": "assistant", "content": r.content},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "15 degrees"}]},
]
r = client.messages.create(model=os.environ["BURNCLOUD_TOOLS_MODEL"], max_tokens=64, messages=follow_up)
assert r.content[0].text, r
passed.append("tool use")

try:
    anthropic.Anthropic(base_url=BASE, api_key="sk-wrong", max_retries=0).messages.create(
        model="x", max_tokens=1, messages=MESSAGES
    )
    raise AssertionError("a wrong key was accepted")
except anthropic.AuthenticationError:
    passed.append("wrong key raises AuthenticationError")

print(f"{len(passed)} checks passed: {', '.join(passed)}")
