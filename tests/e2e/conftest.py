"""End-to-end fixtures: the fake upstream and a router, as real processes on loopback ports.

Binaries come from SMART_ROUTER_BIN / FAKE_UPSTREAM_BIN, else target/debug. The fake's control
API (/_fake/scripts, /_fake/requests) scripts answers and shows what the router sent upstream.
"""

import json
import os
import pathlib
import subprocess
import tempfile

import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug"
ROUTER_BIN = os.environ.get("SMART_ROUTER_BIN", str(TARGET / "smart-router"))
FAKE_BIN = os.environ.get("FAKE_UPSTREAM_BIN", str(TARGET / "fake-upstream"))
TOKEN = "e2e-token"
PII_TOKEN = "e2e-pii-token"
BLOCK_TOKEN = "e2e-block-token"

CONFIG = """
[server]
listen = "127.0.0.1:0"

[providers.fake]
kind = "openai"
base_url = "{fake}/v1"
api_key = "sk-e2e-upstream"

[providers.fakeant]
kind = "anthropic"
base_url = "{fake}"
api_key = "sk-ant-e2e-upstream"

[providers.fakeresp]
kind = "openai-responses"
base_url = "{fake}/v1"
api_key = "sk-resp-e2e-upstream"

[groups.resp]
[[groups.resp.targets]]
provider = "fakeresp"
model = "fake-resp"
capabilities = ["tools", "images", "json_schema", "reasoning"]
context_window = 200000

[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "fake-fast"
capabilities = ["tools", "images", "json_schema"]

[groups.claude]
[[groups.claude.targets]]
provider = "fakeant"
model = "fake-claude"
capabilities = ["tools", "images", "json_schema", "reasoning"]

[groups.ratelimited]
[[groups.ratelimited.targets]]
provider = "fake"
model = "fake-ratelimited"

[groups.textonly]
[[groups.textonly.targets]]
provider = "fake"
model = "fake-text"

# Routed by client: Codex to its own target, everyone else to the group's first.
[groups.agents]
strategy = "priority"
[[groups.agents.targets]]
provider = "fakeresp"
model = "fake-agents"
capabilities = ["tools", "images", "json_schema", "reasoning"]
context_window = 200000
[[groups.agents.targets]]
provider = "fakeresp"
model = "fake-codex"
capabilities = ["tools", "images", "json_schema", "reasoning"]
context_window = 200000
[[groups.agents.rules]]
name = "codex-target"
when = 'request.client == "codex"'
route = {{ targets = ["fakeresp/fake-codex"] }}

[[callers]]
name = "e2e"
groups = ["fast", "textonly", "claude", "ratelimited", "resp", "agents"]
token = "{token}"

[[callers]]
name = "e2e-metrics"
roles = ["metrics-admin"]
token = "e2e-metrics-token"

[[callers]]
name = "e2e-payments"
project = "payments"
groups = ["fast", "claude", "resp"]
token = "{pii_token}"

[[callers]]
name = "e2e-blocked"
project = "blocked"
groups = ["fast", "claude", "resp"]
token = "{block_token}"

[[pii_policies]]
name = "payments-pii"
applies_to = {{ projects = ["payments"] }}
action = "redact"
responses = "restore"

[[pii_policies]]
name = "blocked-pii"
applies_to = {{ projects = ["blocked"] }}
detect = ["email", "credit_card"]
action = "block"
"""


def _spawn(args, prefix):
    """Starts a process that prints '<prefix>http://ADDR' first; returns (process, url)."""
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()
    if not line.startswith(prefix):
        proc.kill()
        raise RuntimeError(f"{args[0]} did not start: {line!r}")
    return proc, line.strip()[len(prefix):]


def _call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


class Fake:
    """The fake upstream's control API."""

    def __init__(self, url):
        self.url = url

    def script(self, **script):
        _call("POST", f"{self.url}/_fake/scripts", script)

    def requests(self):
        return _call("GET", f"{self.url}/_fake/requests")

    def clear(self):
        _call("DELETE", f"{self.url}/_fake/requests")


@pytest.fixture(scope="session")
def stack():
    fake_proc, fake_url = _spawn([FAKE_BIN], "fake-upstream listening on ")
    cfg = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    cfg.write(CONFIG.format(fake=fake_url, token=TOKEN, pii_token=PII_TOKEN, block_token=BLOCK_TOKEN))
    cfg.close()
    router_proc, router_url = _spawn(
        [ROUTER_BIN, "serve", "--config", cfg.name], "smart-router listening on "
    )
    yield {"router": router_url, "fake": Fake(fake_url), "config": cfg.name}
    for p in (router_proc, fake_proc):
        p.terminate()
        p.wait(timeout=10)
    os.unlink(cfg.name)


@pytest.fixture
def fake(stack):
    stack["fake"].clear()
    return stack["fake"]


@pytest.fixture
def client(stack):
    from openai import OpenAI

    return OpenAI(base_url=stack["router"] + "/v1", api_key=TOKEN, max_retries=0)


@pytest.fixture
def anthropic_client(stack):
    from anthropic import Anthropic

    return Anthropic(base_url=stack["router"], api_key=TOKEN, max_retries=0)


def last_upstream_body(fake, suffix="/chat/completions"):
    reqs = [r for r in fake.requests() if r["path"].split("?")[0].endswith(suffix)]
    assert reqs, "the router sent nothing upstream"
    body = reqs[-1]["body"]
    return body if isinstance(body, dict) else json.loads(body)
