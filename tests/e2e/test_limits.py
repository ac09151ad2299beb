"""Quotas and budgets seen by real clients: the OpenAI and Anthropic SDKs get their own
RateLimitError with the rate-limit headers they know, a spent budget is `insufficient_quota`
that the SDK does not retry, and Codex CLI and Claude Code retry through a short limit and
finish their task."""

import json
import os
import subprocess
import tempfile
import time
import urllib.request

import pytest

from conftest import FAKE_BIN, ROOT, ROUTER_BIN, _spawn

CONFIG = """
[server]
listen = "127.0.0.1:0"
[store]
url = "none"

[providers.fake]
kind = "openai"
base_url = "{fake}/v1"
[providers.fakeant]
kind = "anthropic"
base_url = "{fake}"
[providers.fakeresp]
kind = "openai-responses"
base_url = "{fake}/v1"

[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "fake-fast"
capabilities = ["tools", "images", "json_schema"]
price = {{ input = 1.0, output = 1.0 }}
[groups.claude]
[[groups.claude.targets]]
provider = "fakeant"
model = "fake-claude"
capabilities = ["tools", "images", "json_schema", "reasoning"]
[groups.resp]
[[groups.resp.targets]]
provider = "fakeresp"
model = "fake-resp"
capabilities = ["tools", "images", "json_schema", "reasoning"]
context_window = 200000

[[quotas]]
name = "rpm"
scope = "caller"
match = {{ project = "limited" }}
requests_per_minute = 2
tokens_per_minute = 1000000
[[quotas]]
name = "one-at-a-time"
match = {{ caller = "agent" }}
concurrent_requests = 1
[[budgets]]
name = "tiny"
match = {{ caller = "broke" }}
usd = 0.000001

[[callers]]
name = "rpm"
project = "limited"
groups = ["*"]
token = "rpm-token"
[[callers]]
name = "rpm-anthropic"
project = "limited"
groups = ["*"]
token = "rpm-anthropic-token"
[[callers]]
name = "agent"
groups = ["*"]
token = "agent-token"
[[callers]]
name = "broke"
groups = ["*"]
token = "broke-token"
[[callers]]
name = "ops"
roles = ["metrics-admin"]
token = "ops-token"
"""


@pytest.fixture(scope="module")
def limited():
    fake_proc, fake_url = _spawn([FAKE_BIN], "fake-upstream listening on ")
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    cfg.write(CONFIG.format(fake=fake_url))
    cfg.close()
    router_proc, router_url = _spawn([ROUTER_BIN, "serve", "--config", cfg.name], "smart-router listening on ")
    yield {"router": router_url, "fake": fake_url, "config": cfg.name}
    for p in (router_proc, fake_proc):
        p.terminate()
        p.wait(timeout=10)
    os.unlink(cfg.name)


def wait_for_fresh_minute(need=15):
    """Waits until the UTC minute has `need` seconds left (counters are per calendar minute)."""
    while 60 - int(time.time()) % 60 < need:
        time.sleep(0.2)


def rejections(router, quota):
    req = urllib.request.Request(f"{router}/metrics", headers={"authorization": "Bearer ops-token"})
    text = urllib.request.urlopen(req, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(f'smart_router_quota_decisions_total{{quota="{quota}",outcome="rejected"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_openai_sdk_sees_rate_limit_error_with_openai_headers(limited):
    import openai

    wait_for_fresh_minute()
    client = openai.OpenAI(base_url=limited["router"] + "/v1", api_key="rpm-token", max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="fast", messages=[{"role": "user", "content": "hi"}]
    )
    assert raw.headers["x-ratelimit-limit-requests"] == "2"
    assert raw.headers["x-ratelimit-remaining-requests"] == "1"
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")
    assert raw.headers["x-ratelimit-limit-tokens"] == "1000000"
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 429
    assert e.value.code == "rate_limit_exceeded"
    assert int(e.value.response.headers["retry-after"]) >= 1
    assert e.value.response.headers["x-ratelimit-remaining-requests"] == "0"


def test_anthropic_sdk_sees_rate_limit_error_with_anthropic_headers(limited):
    import anthropic

    wait_for_fresh_minute()
    client = anthropic.Anthropic(base_url=limited["router"], api_key="rpm-anthropic-token", max_retries=0)
    ask = dict(model="claude", max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    raw = client.messages.with_raw_response.create(**ask)
    assert raw.headers["anthropic-ratelimit-requests-limit"] == "2"
    assert raw.headers["anthropic-ratelimit-requests-remaining"] == "1"
    assert raw.headers["anthropic-ratelimit-requests-reset"].endswith("Z")
    with pytest.raises(anthropic.RateLimitError) as e:
        for _ in range(3):
            client.messages.create(**ask)
    assert e.value.status_code == 429
    assert e.value.body["error"]["type"] == "rate_limit_error"
    assert e.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"


def test_a_spent_budget_is_insufficient_quota_and_not_retried(limited):
    import openai

    client = openai.OpenAI(base_url=limited["router"] + "/v1", api_key="broke-token", max_retries=3)
    client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "spend"}])
    started = time.time()
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="fast", messages=[{"role": "user", "content": "again"}])
    assert e.value.code == "insufficient_quota"
    assert e.value.response.headers["x-should-retry"] == "false"
    assert time.time() - started < 2, "the SDK did not retry a spent budget"


def hold_slot(limited):
    """Starts a request of the `agent` caller that the fake never answers (holding its one
    concurrency slot); returns a function that ends it."""
    import http.client
    import urllib.parse

    script = urllib.request.Request(
        limited["fake"] + "/_fake/scripts", data=json.dumps({"hang": True}).encode(), method="POST",
        headers={"content-type": "application/json"})
    urllib.request.urlopen(script, timeout=5).read()
    u = urllib.parse.urlparse(limited["router"])
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    body = json.dumps({"model": "fast", "messages": [{"role": "user", "content": "hold"}]})
    conn.request("POST", "/v1/chat/completions", body=body, headers={
        "content-type": "application/json", "authorization": "Bearer agent-token"})
    deadline = time.time() + 5
    while time.time() < deadline:
        held = [r for r in json.loads(urllib.request.urlopen(limited["fake"] + "/_fake/requests").read())
                if "hold" in json.dumps(r.get("body"))]
        if held:
            break
        time.sleep(0.02)

    def release():
        conn.sock.shutdown(2)
        conn.close()

    return release


def until_rejected_then_release(router, before, release, limit_s=60):
    """Waits until the agent has been refused at least once, then frees the slot."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if rejections(router, "one-at-a-time") > before:
            release()
            return True
        time.sleep(0.05)
    release()
    return False


def test_claude_code_retries_through_a_short_limit_and_finishes(limited, tmp_path):
    claude = os.environ.get("CLAUDE_BIN", str(ROOT / "tests/e2e/node_modules/.bin/claude"))
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"], "HOME": str(home),
        "ANTHROPIC_BASE_URL": limited["router"], "ANTHROPIC_AUTH_TOKEN": "agent-token",
        "ANTHROPIC_MODEL": "claude", "ANTHROPIC_SMALL_FAST_MODEL": "claude",
        "DISABLE_TELEMETRY": "1", "DISABLE_AUTOUPDATER": "1", "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    before = rejections(limited["router"], "one-at-a-time")
    release = hold_slot(limited)
    agent = subprocess.Popen(
        [claude, "-p", "Create a file named hello.txt containing exactly: hello from the router",
         "--permission-mode", "acceptEdits", "--output-format", "json"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert until_rejected_then_release(limited["router"], before, release), "Claude Code was never limited"
    out, err = agent.communicate(timeout=240)
    assert agent.returncode == 0, err[-2000:]
    assert json.loads(out)["is_error"] is False
    assert (work / "hello.txt").read_text() == "hello from the router"


def test_codex_retries_through_a_short_limit_and_finishes(limited, tmp_path):
    codex = os.environ.get("CODEX_BIN", str(ROOT / "tests/e2e/node_modules/.bin/codex"))
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    config = subprocess.run(
        [ROUTER_BIN, "codex-config", "--config", limited["config"], "--group", "resp",
         "--base-url", limited["router"]],
        capture_output=True, text=True, check=True,
    ).stdout
    (home / "config.toml").write_text(config)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
           "ROUTER_TOKEN": "agent-token", "NO_COLOR": "1"}
    before = rejections(limited["router"], "one-at-a-time")
    release = hold_slot(limited)
    agent = subprocess.Popen(
        [codex, "exec", "--skip-git-repo-check", "--ephemeral", "-s", "workspace-write",
         "Create a file named hello.txt containing exactly: hello from the router"],
        cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert until_rejected_then_release(limited["router"], before, release), "Codex was never limited"
    out, err = agent.communicate(timeout=240)
    assert agent.returncode == 0, (out + err)[-3000:]
    assert (work / "hello.txt").read_text() == "hello from the router"
