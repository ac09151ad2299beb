"""The real openai Python SDK against the router, fake upstream behind it (Chat Completions)."""

import base64

import openai
import pytest
from pydantic import BaseModel

from conftest import TOKEN, last_upstream_body


def test_non_stream(client, fake):
    fake.script(text="Hello from upstream", usage={"input": 9, "output": 4})
    r = client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from upstream"
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens == 9 and r.usage.completion_tokens == 4
    sent = last_upstream_body(fake)
    assert sent["model"] == "fake-fast"
    headers = dict(fake.requests()[-1]["headers"])
    assert headers["authorization"] == "Bearer sk-e2e-upstream"
    assert TOKEN not in str(headers)


def test_raw_response_carries_request_id(client, fake):
    raw = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}], extra_headers={"x-request-id": "e2e-req-1"}
    )
    assert raw.headers["x-request-id"] == "e2e-req-1"
    assert dict(fake.requests()[-1]["headers"])["x-request-id"] == "e2e-req-1"


def test_stream(client, fake):
    fake.script(text="streamed words arrive", chunks=["streamed ", "words ", "arrive"])
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    parts = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert "".join(parts) == "streamed words arrive"
    assert last_upstream_body(fake)["stream_options"] == {"include_usage": True}


def test_stream_with_usage(client, fake):
    fake.script(text="x y", usage={"input": 3, "output": 2})
    stream = client.chat.completions.create(
        model="fast",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.prompt_tokens == 3 and chunks[-1].usage.completion_tokens == 2


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def test_tool_call_round_trip(client, fake):
    msgs = [{"role": "user", "content": "Weather in Paris?"}]
    r = client.chat.completions.create(model="fast", messages=msgs, tools=TOOLS)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    msgs.append(r.choices[0].message.model_dump(exclude_none=True))
    msgs.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    r2 = client.chat.completions.create(model="fast", messages=msgs, tools=TOOLS)
    assert r2.choices[0].message.content
    sent = last_upstream_body(fake)
    assert sent["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "sunny"}
    assert sent["tools"] == TOOLS


def test_streamed_tool_call(client, fake):
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "Weather?"}], tools=TOOLS, stream=True
    )
    name, args = "", ""
    for c in stream:
        for tc in (c.choices[0].delta.tool_calls or []) if c.choices else []:
            name += tc.function.name or ""
            args += tc.function.arguments or ""
    assert name == "get_weather"
    assert args == '{"city":"example"}'


def test_image_part(client, fake):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    r = client.chat.completions.create(
        model="fast",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
                ],
            }
        ],
    )
    assert "1 image" in r.choices[0].message.content
    assert last_upstream_body(fake)["messages"][0]["content"][1]["image_url"]["url"].endswith(png)


def test_image_to_a_text_only_group_is_refused(client, fake):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(
            model="textonly",
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
                }
            ],
        )
    assert e.value.code == "no_eligible_target"
    assert "images" in e.value.message
    assert fake.requests() == []


class Weather(BaseModel):
    city: str
    temperature: float


def test_json_schema_structured_output(client, fake):
    r = client.chat.completions.parse(
        model="fast", messages=[{"role": "user", "content": "weather"}], response_format=Weather
    )
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Weather) and parsed.city == "example"
    assert last_upstream_body(fake)["response_format"]["type"] == "json_schema"


def test_models_list(client):
    assert sorted(m.id for m in client.models.list()) == ["agents", "claude", "fast", "ratelimited", "resp", "textonly"]
    assert client.models.retrieve("fast").id == "fast"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_errors_map_to_sdk_exceptions(client, stack, fake):
    from openai import OpenAI

    bad = OpenAI(base_url=stack["router"] + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    # A 429 cools its target down, so it gets a group of its own.
    fake.script(status=429, error="slow down", headers={"retry-after": "7"})
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="ratelimited", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers["retry-after"] == "7"
    with pytest.raises(openai.InternalServerError) as e:
        client.chat.completions.create(model="ratelimited", messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == 503 and e.value.code == "no_eligible_target"
    fake.script(status=400, error="bad temperature")
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
    assert e.value.message.endswith("bad temperature")


def test_broken_stream_raises_in_the_sdk(client, fake):
    fake.script(text="a b c d e f g", close_after_events=3, chunk_delay_ms=20)
    stream = client.chat.completions.create(
        model="fast", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "broke off" in str(e.value)
