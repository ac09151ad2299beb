"""Dynamic routing rules with a real client (issue 17): Codex CLI asking the `agents` group is
routed by the rule on `request.client` to its own target and finishes its file-writing task,
while the openai SDK asking the same group gets the group's first target."""

import json
import os
import subprocess

import openai

from conftest import ROOT, TOKEN


def test_codex_is_routed_by_a_rule_on_the_client(stack, fake, tmp_path):
    from test_codex import CODEX

    sdk = openai.OpenAI(base_url=stack["router"] + "/v1", api_key=TOKEN, max_retries=0)
    fake.script(text="hi")
    assert sdk.responses.create(model="agents", input="hello").output_text == "hi"
    assert [r["body"]["model"] for r in fake.requests()] == ["fake-agents"]
    fake.clear()

    home, work = tmp_path / "codex-home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    config = subprocess.run(
        [os.environ.get("SMART_ROUTER_BIN", str(ROOT / "target/debug/smart-router")), "codex-config",
         "--config", stack["config"], "--group", "agents", "--base-url", stack["router"]],
        capture_output=True, text=True, check=True,
    ).stdout
    (home / "config.toml").write_text(config)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CODEX_HOME": str(home),
           "ROUTER_TOKEN": TOKEN, "NO_COLOR": "1"}
    task = "Create a file named routed.txt containing exactly: routed by rule"
    p = subprocess.run(
        [CODEX, "exec", "--skip-git-repo-check", "--ephemeral", "-s", "workspace-write",
         "-o", str(tmp_path / "last.txt"), task],
        cwd=work, env=env, capture_output=True, text=True, timeout=240,
    )
    assert p.returncode == 0, (p.stdout + p.stderr)[-3000:]
    assert (work / "routed.txt").read_text() == "routed by rule"
    models = {r["body"]["model"] for r in fake.requests() if r["path"].startswith("/v1/responses")}
    assert models == {"fake-codex"}, json.dumps(models, default=list)
