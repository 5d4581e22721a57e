"""The official `openai` Python SDK reaching a Claude model through an `anthropic` channel.

Run by the Rust test `sdk::openai_python_sdk_to_claude` (tests/api/sdk.rs), which starts BurnCloud
with a fake Anthropic upstream (answers from tests/fixtures/anthropic/) and passes
BURNCLOUD_BASE_URL, BURNCLOUD_KEY and BURNCLOUD_MODEL. Exits non-zero on the first failed check.
"""

import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["BURNCLOUD_BASE_URL"], api_key=os.environ["BURNCLOUD_KEY"], max_retries=0)
MODEL = os.environ["BURNCLOUD_MODEL"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
passed = []

r = client.chat.completions.create(model=MODEL, messages=MESSAGES)
assert r.choices[0].message.content == "Hi! My name is Claude.", r
assert r.usage.prompt_tokens == 2095 and r.usage.completion_tokens == 503, r.usage
passed.append("chat")

with client.chat.completions.stream(model=MODEL, messages=MESSAGES, stream_options={"include_usage": True}) as s:
    final = s.get_final_completion()
assert final.choices[0].message.content == "Hello!", final
assert final.usage.completion_tokens == 15, final.usage
passed.append("chat stream")

tools_model = os.environ["BURNCLOUD_TOOLS_MODEL"]
with client.chat.completions.stream(model=tools_model, messages=MESSAGES, tools=TOOLS) as s:
    final = s.get_final_completion()
call = final.choices[0].message.tool_calls[0]
assert final.choices[0].finish_reason == "tool_calls", final
assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"location": "San Francisco, CA"}, call
passed.append("streamed tool calls")

print(f"{len(passed)} checks passed: {', '.join(passed)}")
