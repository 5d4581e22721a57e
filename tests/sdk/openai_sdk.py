"""The official `openai` Python SDK against BurnCloud, as a user's program would call it.

Run by the Rust test `sdk::openai_python_sdk` (tests/api/sdk.rs), which starts BurnCloud with a fake
upstream and passes: BURNCLOUD_BASE_URL, BURNCLOUD_KEY (funded), BURNCLOUD_EMPTY_KEY (no balance),
BURNCLOUD_MODEL. Exits non-zero on the first failed check.
"""

import json
import os

import openai

BASE = os.environ["BURNCLOUD_BASE_URL"]
KEY = os.environ["BURNCLOUD_KEY"]
EMPTY_KEY = os.environ["BURNCLOUD_EMPTY_KEY"]
MODEL = os.environ["BURNCLOUD_MODEL"]
MESSAGES = [{"role": "user", "content": "Say hello"}]

client = openai.OpenAI(base_url=BASE, api_key=KEY, max_retries=0)
passed = []


def check(name):
    def run(fn):
        fn()
        passed.append(name)
        return fn

    return run


@check("chat")
def _():
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert r.choices[0].message.content == "Hello there!", r
    assert r.usage.prompt_tokens == 12 and r.usage.completion_tokens == 5, r.usage


@check("chat stream with include_usage")
def _():
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello there!", text
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5, chunks[-1]


@check("chat stream without usage")
def _():
    with client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello there!", final


@check("tool calls")
def _():
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            },
        }
    ]
    r = client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls", r
    assert call.function.name == "get_weather", call
    assert json.loads(call.function.arguments) == {"location": "Paris"}, call


@check("embeddings (float and base64)")
def _():
    floats = client.embeddings.create(model=MODEL, input="hello", encoding_format="float")
    assert len(floats.data[0].embedding) == 3, floats
    default = client.embeddings.create(model=MODEL, input="hello")
    assert [round(x, 6) for x in default.data[0].embedding] == [round(x, 6) for x in floats.data[0].embedding]


@check("models")
def _():
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids, ids
    assert client.models.retrieve(MODEL).id == MODEL


@check("wrong key raises AuthenticationError")
def _():
    try:
        openai.OpenAI(base_url=BASE, api_key="sk-wrong", max_retries=0).models.list()
    except openai.AuthenticationError as e:
        assert e.code == "invalid_api_key", e
    else:
        raise AssertionError("no error")


@check("empty balance raises RateLimitError insufficient_quota")
def _():
    try:
        openai.OpenAI(base_url=BASE, api_key=EMPTY_KEY, max_retries=0).chat.completions.create(
            model=MODEL, messages=MESSAGES
        )
    except openai.RateLimitError as e:
        assert e.code == "insufficient_quota", e
    else:
        raise AssertionError("no error")


@check("unknown model raises NotFoundError")
def _():
    try:
        client.chat.completions.create(model="no-such-model", messages=MESSAGES)
    except openai.NotFoundError as e:
        assert e.code == "model_not_found", e
    else:
        raise AssertionError("no error")


print(f"openai {openai.__version__}: {len(passed)} checks passed: {', '.join(passed)}")
