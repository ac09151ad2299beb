"""The real anthropic Python SDK against the router: passthrough (group `claude`, anthropic
upstream) and translation (group `fast`, openai upstream)."""

import base64

import anthropic
import pytest

from conftest import TOKEN, last_upstream_body

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    }
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()


@pytest.mark.parametrize("group,upstream", [("claude", "/v1/messages"), ("fast", "/chat/completions")])
def test_create_with_tools_and_image(anthropic_client, fake, group, upstream):
    msgs = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What's the weather where this photo was taken?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
            ],
        }
    ]
    r = anthropic_client.messages.create(model=group, max_tokens=500, messages=msgs, tools=TOOLS)
    assert r.stop_reason == "tool_use"
    call = next(b for b in r.content if b.type == "tool_use")
    assert call.name == "get_weather" and call.input == {"city": "example"}
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    body = last_upstream_body(fake, upstream)
    assert body["model"] in ("fake-claude", "fake-fast")
    msgs += [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in r.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny"}]},
    ]
    r2 = anthropic_client.messages.create(model=group, max_tokens=500, messages=msgs, tools=TOOLS)
    assert r2.stop_reason == "end_turn"
    assert r2.content[0].type == "text" and r2.content[0].text


@pytest.mark.parametrize("group", ["claude", "fast"])
def test_stream(anthropic_client, fake, group):
    fake.script(text="streamed hello world", usage={"input": 12, "output": 3})
    with anthropic_client.messages.stream(
        model=group, max_tokens=100, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "streamed hello world"
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens == 3


@pytest.mark.parametrize("group", ["claude", "fast"])
def test_streamed_tool_use(anthropic_client, group):
    with anthropic_client.messages.stream(
        model=group, max_tokens=100, messages=[{"role": "user", "content": "weather?"}], tools=TOOLS
    ) as stream:
        final = stream.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.input == {"city": "example"}
    assert final.stop_reason == "tool_use"


def test_count_tokens(anthropic_client, fake):
    r = anthropic_client.messages.count_tokens(model="claude", messages=[{"role": "user", "content": "Hello there"}])
    assert r.input_tokens > 0
    assert fake.requests()[-1]["path"].startswith("/v1/messages/count_tokens")
    local = anthropic_client.messages.count_tokens(
        model="fast", messages=[{"role": "user", "content": "Hello there, how are you today?"}]
    )
    assert 5 <= local.input_tokens <= 30


def test_models_list(anthropic_client):
    ids = sorted(m.id for m in anthropic_client.models.list())
    assert ids == ["agents", "claude", "fast", "ratelimited", "resp", "textonly"]


def test_errors(stack, anthropic_client, fake):
    from anthropic import Anthropic

    bad = Anthropic(base_url=stack["router"], api_key="wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError):
        bad.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError) as e:
        anthropic_client.messages.create(model="nope", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert e.value.body["error"]["type"] == "not_found_error"
    fake.script(status=400, error="prompt is too long")
    with pytest.raises(anthropic.BadRequestError) as e:
        anthropic_client.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "prompt is too long" in str(e.value)
