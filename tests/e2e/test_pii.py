"""PII filtering with the real clients (issue 14): the openai and anthropic SDKs, streamed and
not, through passthrough and translation, get the caller's own values back where the model
echoes a placeholder, while the provider only ever sees placeholders; `block` surfaces as each
SDK's BadRequestError; Codex CLI and Claude Code finish a file-writing task whose text holds an
email — the file gets the real address, the upstream never sees it."""

import json
import os
import subprocess

import anthropic
import openai
import pytest

from conftest import BLOCK_TOKEN, PII_TOKEN, ROOT

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
PROMPT = f"Refund card {CARD} and confirm to {EMAIL}."
ANSWER = "Refunded [CREDIT_CARD_1]; confirmation sent to [EMAIL_1]."
RESTORED = f"Refunded {CARD}; confirmation sent to {EMAIL}."


def upstream_saw_no_pii(fake):
    bodies = json.dumps([r["body"] for r in fake.requests()])
    assert EMAIL not in bodies and "4111" not in bodies, bodies[-2000:]
    assert "[EMAIL_1]" in bodies and "[CREDIT_CARD_1]" in bodies


@pytest.fixture
def oai(stack):
    return openai.OpenAI(base_url=stack["router"] + "/v1", api_key=PII_TOKEN, max_retries=0)


@pytest.fixture
def ant(stack):
    return anthropic.Anthropic(base_url=stack["router"], api_key=PII_TOKEN, max_retries=0)


@pytest.mark.parametrize("group", ["fast", "claude", "resp"])
def test_openai_chat_sdk(oai, fake, group):
    fake.script(text=ANSWER)
    r = oai.chat.completions.create(model=group, messages=[{"role": "user", "content": PROMPT}])
    assert r.choices[0].message.content == RESTORED
    fake.script(chunks=["Refunded [CREDIT_", "CARD_1]; confirmation sent to [EM", "AIL_1]."])
    stream = oai.chat.completions.create(model=group, stream=True, messages=[{"role": "user", "content": PROMPT}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == RESTORED
    upstream_saw_no_pii(fake)


@pytest.mark.parametrize("group", ["resp", "fast", "claude"])
def test_openai_responses_sdk(oai, fake, group):
    fake.script(text=ANSWER)
    r = oai.responses.create(model=group, input=PROMPT)
    assert r.output_text == RESTORED
    fake.script(chunks=["Refunded [CRED", "IT_CARD_1]; confirmation sent to [EMAIL_1", "]."])
    with oai.responses.stream(model=group, input=PROMPT) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == RESTORED and final.output_text == RESTORED
    upstream_saw_no_pii(fake)


@pytest.mark.parametrize("group", ["claude", "fast", "resp"])
def test_anthropic_sdk(ant, fake, group):
    fake.script(text=ANSWER)
    r = ant.messages.create(model=group, max_tokens=100, messages=[{"role": "user", "content": PROMPT}])
    assert r.content[0].text == RESTORED
    fake.script(chunks=["Refunded [CREDIT_CARD_", "1]; confirmation sent to [", "EMAIL_1]."])
    with ant.messages.stream(model=group, max_tokens=100, messages=[{"role": "user", "content": PROMPT}]) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == RESTORED and final.content[0].text == RESTORED
    upstream_saw_no_pii(fake)


def test_block_is_a_bad_request_in_each_sdk(stack, fake):
    o = openai.OpenAI(base_url=stack["router"] + "/v1", api_key=BLOCK_TOKEN, max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        o.chat.completions.create(model="fast", messages=[{"role": "user", "content": PROMPT}])
    assert e.value.code == "pii_detected"
    assert "credit_card" in str(e.value) and EMAIL not in str(e.value)
    a = anthropic.Anthropic(base_url=stack["router"], api_key=BLOCK_TOKEN, max_retries=0)
    with pytest.raises(anthropic.BadRequestError) as e:
        a.messages.create(model="claude", max_tokens=10, messages=[{"role": "user", "content": PROMPT}])
    assert "email" in str(e.value) and "4111" not in str(e.value)
    assert fake.requests() == [], "nothing went upstream"


TASK = f"Create a file named hello.txt containing exactly: write to {EMAIL}"


def test_claude_code_with_a_pii_policy(stack, fake, tmp_path):
    from test_claude_code import CLAUDE

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home),
        "ANTHROPIC_BASE_URL": stack["router"], "ANTHROPIC_AUTH_TOKEN": PII_TOKEN,
        "ANTHROPIC_MODEL": "claude", "ANTHROPIC_SMALL_FAST_MODEL": "claude",
        "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    p = subprocess.run(
        [CLAUDE, "-p", TASK, "--permission-mode", "acceptEdits", "--output-format", "json"],
        cwd=work, env=env, capture_output=True, text=True, timeout=240,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    assert (work / "hello.txt").read_text() == f"write to {EMAIL}"
    bodies = json.dumps([r["body"] for r in fake.requests()])
    assert EMAIL not in bodies and "[EMAIL_1]" in bodies


def test_codex_with_a_pii_policy(stack, fake, tmp_path):
    from test_codex import CODEX

    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    config = subprocess.run(
        [os.environ.get("SMART_ROUTER_BIN", str(ROOT / "target/debug/smart-router")), "codex-config",
         "--config", stack["config"], "--group", "resp", "--base-url", stack["router"]],
        capture_output=True, text=True, check=True,
    ).stdout
    (home / "config.toml").write_text(config)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
           "ROUTER_TOKEN": PII_TOKEN, "NO_COLOR": "1"}
    p = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "-s", "workspace-write",
         "-o", str(tmp_path / "last.txt"), TASK],
        cwd=work, env=env, capture_output=True, text=True, timeout=240,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert (work / "hello.txt").read_text() == f"write to {EMAIL}"
    bodies = json.dumps([r["body"] for r in fake.requests()])
    assert EMAIL not in bodies and "[EMAIL_1]" in bodies
