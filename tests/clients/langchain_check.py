"""LangChain (langchain-openai, langchain-anthropic) against BurnCloud, as a user would write it.

Run by tests/api/clients.rs with the clients venv's interpreter. Environment: BURNCLOUD_BASE_URL
(the site's root, no /v1), BURNCLOUD_KEY, BURNCLOUD_MODEL, BURNCLOUD_SECRET (what the tool
returns). The fake upstream calls the tool when the prompt holds `[[call get_secret {...}]]` and
answers the tool's result with a final text quoting it. Prints every failure, or `N checks passed`.
"""

import json
import os
import sys
import traceback

import anthropic as anthropic_sdk
from langchain_anthropic import ChatAnthropic
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI

BASE = os.environ["BURNCLOUD_BASE_URL"]
KEY = os.environ["BURNCLOUD_KEY"]
MODEL = os.environ["BURNCLOUD_MODEL"]
SECRET = os.environ["BURNCLOUD_SECRET"]
ANSWER = "FAKE-ANSWER"


@tool
def get_secret(name: str) -> str:
    """Returns the named secret."""
    return SECRET


def text(message):
    content = message.content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content


def streamed(model, messages):
    """Streams and merges the chunks into one message."""
    merged = None
    for chunk in model.stream(messages):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None, "the stream was empty"
    return merged


def round_trip(model, stream):
    """bind_tools → a tool call → ToolMessage → the final answer quoting the tool's result."""
    bound = model.bind_tools([get_secret])
    prompt = "What is the vault's secret? [[call get_secret " + json.dumps({"name": "vault"}) + "]]"
    messages = [HumanMessage(prompt)]
    first = streamed(bound, messages) if stream else bound.invoke(messages)
    assert first.tool_calls, f"no tool call: {first!r}"
    call = first.tool_calls[0]
    assert call["name"] == "get_secret" and call["args"] == {"name": "vault"}, call
    result = get_secret.invoke(call["args"])
    messages += [first, ToolMessage(result, tool_call_id=call["id"])]
    final = streamed(bound, messages) if stream else bound.invoke(messages)
    assert ANSWER in text(final) and SECRET in text(final), f"final answer: {final!r}"
    print("final answer:", text(final))


def main():
    openai = ChatOpenAI(model=MODEL, base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=60)
    openai_usage = ChatOpenAI(
        model=MODEL, base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=60, stream_usage=True
    )
    anthropic = ChatAnthropic(model=MODEL, base_url=BASE, api_key=KEY, max_retries=0, timeout=60)

    def invoke_text(model):
        reply = model.invoke("Say hello")
        assert ANSWER in text(reply), repr(reply)
        assert reply.usage_metadata and reply.usage_metadata["input_tokens"] > 0, reply.usage_metadata

    def stream_text(model):
        reply = streamed(model, "Say hello")
        assert ANSWER in text(reply), repr(reply)

    def stream_usage(model):
        reply = streamed(model, "Say hello")
        usage = reply.usage_metadata
        assert usage and usage["input_tokens"] > 0 and usage["output_tokens"] > 0, f"streamed usage: {usage}"

    def message_start_usage():
        # LangChain.js takes the input count from `message_start` (LangChain Python waits for
        # `message_delta`): read it with the Anthropic SDK that ChatAnthropic is built on.
        client = anthropic_sdk.Anthropic(base_url=BASE, api_key=KEY, max_retries=0, timeout=60)
        with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": "Say hello"}]) as stream:
            first = next(iter(stream))
            assert first.type == "message_start", first
            assert first.message.usage.input_tokens > 0, f"message_start usage: {first.message.usage}"
            stream.until_done()

    checks = [
        ("ChatOpenAI invoke", lambda: invoke_text(openai)),
        ("ChatOpenAI stream", lambda: stream_text(openai)),
        ("ChatOpenAI stream usage", lambda: stream_usage(openai_usage)),
        ("ChatOpenAI bind_tools round trip", lambda: round_trip(openai, stream=False)),
        ("ChatOpenAI bind_tools round trip, streamed", lambda: round_trip(openai, stream=True)),
        ("ChatAnthropic invoke", lambda: invoke_text(anthropic)),
        ("ChatAnthropic stream", lambda: stream_text(anthropic)),
        ("ChatAnthropic stream usage", lambda: stream_usage(anthropic)),
        ("message_start input tokens (as LangChain.js reads them)", message_start_usage),
        ("ChatAnthropic bind_tools round trip", lambda: round_trip(anthropic, stream=False)),
        ("ChatAnthropic bind_tools round trip, streamed", lambda: round_trip(anthropic, stream=True)),
    ]
    failed = []
    for name, check in checks:
        try:
            check()
            print(f"ok: {name}")
        except Exception:  # every failure is reported, not just the first
            failed.append(name)
            print(f"FAILED: {name}\n{traceback.format_exc()}")
    if failed:
        print(f"{len(failed)} of {len(checks)} checks failed: {', '.join(failed)}")
        sys.exit(1)
    print(f"{len(checks)} checks passed")


if __name__ == "__main__":
    main()
