"""Codex CLI (`codex exec`) against the router, finishing a file-writing task through its tools,
with an openai-responses, an openai (Chat) and an anthropic upstream behind the group."""

import json
import os
import subprocess

import pytest

from conftest import ROOT, TOKEN

CODEX = os.environ.get("CODEX_BIN", str(ROOT / "tests/e2e/node_modules/.bin/codex"))


@pytest.mark.parametrize(
    "group,upstream_path",
    [("resp", "/v1/responses"), ("fast", "/v1/chat/completions"), ("claude", "/v1/messages")],
)
def test_codex_writes_a_file(stack, fake, tmp_path, group, upstream_path):
    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    config = subprocess.run(
        [os.environ.get("SMART_ROUTER_BIN", str(ROOT / "target/debug/smart-router")), "codex-config",
         "--config", stack["config"], "--group", group, "--base-url", stack["router"]],
        capture_output=True, text=True, check=True,
    ).stdout
    (home / "config.toml").write_text(config)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "CODEX_HOME": str(home),
        "ROUTER_TOKEN": TOKEN,
        "NO_COLOR": "1",
    }
    task = "Create a file named hello.txt containing exactly: hello from the router"
    p = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "-s", "workspace-write",
         "-o", str(tmp_path / "last.txt"), task],
        cwd=work, env=env, capture_output=True, text=True, timeout=240,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert (work / "hello.txt").read_text() == "hello from the router"
    seen = [r for r in fake.requests() if r["path"].split("?")[0] == upstream_path]
    assert len(seen) >= 2, "a tool call turn and an answer turn"
    assert TOKEN not in json.dumps(seen[0]["headers"]), "the router token never goes upstream"
    assert not any(k == "x-codex-turn-metadata" for k, _ in seen[0]["headers"]), "client metadata stays at the router"
