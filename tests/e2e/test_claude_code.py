"""Claude Code (`claude -p`) against the router, finishing a file-writing task through its
tools, with an anthropic upstream and with an openai (Chat) upstream behind the group."""

import json
import os
import pathlib
import subprocess

import pytest

from conftest import ROOT, TOKEN

CLAUDE = os.environ.get("CLAUDE_BIN", str(ROOT / "tests/e2e/node_modules/.bin/claude"))


@pytest.mark.parametrize("group,upstream_path", [("claude", "/v1/messages"), ("fast", "/v1/chat/completions")])
def test_claude_code_writes_a_file(stack, fake, tmp_path, group, upstream_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": stack["router"],
        "ANTHROPIC_AUTH_TOKEN": TOKEN,
        "ANTHROPIC_MODEL": group,
        "ANTHROPIC_SMALL_FAST_MODEL": group,
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }
    task = "Create a file named hello.txt containing exactly: hello from the router"
    p = subprocess.run(
        [CLAUDE, "-p", task, "--permission-mode", "acceptEdits", "--output-format", "json"],
        cwd=work, env=env, capture_output=True, text=True, timeout=240,
    )
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout)
    assert result["is_error"] is False, result
    assert (work / "hello.txt").read_text() == "hello from the router"
    seen = [r for r in fake.requests() if r["path"].split("?")[0] == upstream_path]
    assert len(seen) >= 2, "a tool call turn and an answer turn"
    headers = dict(seen[0]["headers"])
    assert TOKEN not in json.dumps(seen[0]["headers"]), "the router token never goes upstream"
    if group == "claude":
        assert "claude-code" in headers.get("anthropic-beta", "")
        assert headers["x-api-key"] == "sk-ant-e2e-upstream"
    else:
        names = [t["function"]["name"] for t in seen[0]["body"]["tools"]]
        assert "Write" in names
