"""`smart-router smoke --agents` against the e2e router: the whole checklist in every dialect,
then Codex CLI and Claude Code (the pinned real clients) finishing a file-writing task through
the group, as the smoke runs them."""

import json
import os
import subprocess

from conftest import ROOT, ROUTER_BIN, TOKEN

BIN = ROOT / "tests/e2e/node_modules/.bin"


def test_smoke_with_agents_passes_through_the_router(stack, fake, tmp_path):
    evidence = tmp_path / "smoke.json"
    env = {
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "SMOKE_TOKEN": TOKEN,
        "HOME": str(tmp_path),
    }
    p = subprocess.run(
        [ROUTER_BIN, "smoke", "--base-url", stack["router"], "--token-env", "SMOKE_TOKEN",
         "--group", "fast", "--agents", "--json", str(evidence)],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    report = json.loads(evidence.read_text())
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("agent codex exec [fast]", "agent claude -p [fast]", "responses tool result [fast]"):
        assert by_name[name]["outcome"] == "pass", by_name[name]
    # The agents' traffic reached the upstream through the router, never with the router token.
    seen = [r for r in fake.requests() if r["path"].startswith("/v1/chat/completions")]
    assert any("Write" in json.dumps(r["body"].get("tools", [])) for r in seen), "Claude Code's tools went upstream"
    assert all(TOKEN not in json.dumps(r["headers"]) for r in seen)
    assert TOKEN not in p.stdout and TOKEN not in evidence.read_text()
