"""The real openai Python SDK's Responses API against the router: passthrough (group `resp`,
openai-responses upstream) and translation (group `fast` -> Chat, group `claude` -> Anthropic)."""

import base64
import json

import pytest
from pydantic import BaseModel

GROUPS = ["resp", "fast", "claude"]
TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    }
]


@pytest.mark.parametrize("group", GROUPS)
def test_create_text(client, fake, group):
    fake.script(text="Hello from upstream", usage={"input": 9, "output": 4})
    r = client.responses.create(model=group, input="Say hello", instructions="Be brief.")
    assert r.output_text == "Hello from upstream"
    assert r.status == "completed"
    assert r.usage.input_tokens == 9 and r.usage.output_tokens == 4


@pytest.mark.parametrize("group", GROUPS)
def test_stream_text(client, fake, group):
    fake.script(text="streamed responses text", chunks=["streamed ", "responses ", "text"])
    with client.responses.stream(model=group, input="hi") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == "streamed responses text"
    assert final.output_text == "streamed responses text"


@pytest.mark.parametrize("group", GROUPS)
def test_function_tool_round_trip(client, group):
    r = client.responses.create(model=group, input="Weather in Paris?", tools=TOOLS)
    call = next(o for o in r.output if o.type == "function_call")
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "example"}
    r2 = client.responses.create(
        model=group,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
        ],
        tools=TOOLS,
    )
    assert r2.output_text


@pytest.mark.parametrize("group", GROUPS)
def test_streamed_function_call(client, group):
    with client.responses.stream(model=group, input="Weather?", tools=TOOLS) as stream:
        final = stream.get_final_response()
    call = next(o for o in final.output if o.type == "function_call")
    assert json.loads(call.arguments) == {"city": "example"}


class Weather(BaseModel):
    city: str
    temperature: float


@pytest.mark.parametrize("group", GROUPS)
def test_json_schema(client, group):
    r = client.responses.parse(model=group, input="weather", text_format=Weather)
    assert r.output_parsed == Weather(city="example", temperature=1.5)


@pytest.mark.parametrize("group", ["resp", "fast"])
def test_image_input(client, fake, group):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    r = client.responses.create(
        model=group,
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "What is this?"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{png}"},
                ],
            }
        ],
    )
    assert "1 image" in r.output_text
