//! The binary's commands, run as a user runs them.

mod common;

use common::bin;
use std::io::Write;
use std::process::Stdio;

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("sr-cli-{}-{name}", std::process::id()));
    std::fs::write(&dir, text).unwrap();
    dir
}

/// Issue 12: `check-config` and `serve` printed the offending TOML line on a parse error, which
/// showed an inline key with a missing quote.
#[test]
fn issue_12_a_broken_line_is_located_but_never_printed() {
    let path = temp_file(
        "leaky.toml",
        "[providers.openai]\nkind = \"openai\"\nbase_url = \"https://api.openai.com/v1\"\napi_key = \"sk-proj-SECRETSECRET123\n[groups.g]\n",
    );
    for args in [vec!["check-config"], vec!["serve", "--config"]] {
        let out = bin().args(&args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(all.contains("line 4, column"), "{args:?}: {all}");
        assert!(
            !all.contains("SECRETSECRET"),
            "{args:?} printed the key: {all}"
        );
    }
}

#[test]
fn check_config_lists_every_problem_with_its_path() {
    let path = temp_file(
        "broken.toml",
        r#"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "env:SR_CLI_TEST_SURELY_UNSET"
[groups.coder]
[[groups.coder.targets]]
provider = "opnai"
model = "gpt"
[groups.empty]
[[callers]]
name = "a"
token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
groups = ["codr"]
[[callers]]
name = "b"
token_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
"#,
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "providers.openai.api_key: environment variable SR_CLI_TEST_SURELY_UNSET is not set",
        "groups.coder.targets[0].provider: no provider named \"opnai\" (did you mean \"openai\"?)",
        "groups.empty.targets: a group needs at least one target",
        "callers[0].groups[0]: no group named \"codr\" (did you mean \"coder\"?)",
        "callers[1]: same token as callers[0]",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert_eq!(err.lines().count(), 5, "{err}");
}

#[test]
fn check_config_accepts_a_good_file() {
    let path = temp_file(
        "good.toml",
        r#"
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:11434/v1"
[groups.fast]
[[groups.fast.targets]]
provider = "local"
model = "llama"
"#,
    );
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok (1 providers, 1 groups, 0 callers)"));
}

#[test]
fn hash_token_prints_the_sha256() {
    let mut child = bin()
        .arg("hash-token")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"demo\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "2a97516c354b68848cdbd8f54a226a0a55b21ed138e207ad6c5cbb9c00aa5aea"
    );
}

/// `serve` prints its address, answers, and exits 0 on SIGTERM.
#[test]
fn serve_runs_and_stops_on_sigterm() {
    let mut served = common::Served::start("cli-serve", |dir| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
{}
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.fast]
[[groups.fast.targets]]
provider = "local"
model = "m"
"#,
            common::sqlite_store(dir, "")
        )
    });
    let resp = common::request(&served.addr, "GET", "/livez", &[], "");
    assert_eq!(resp.status, 200, "{}", resp.head);
    assert!(resp.header("x-request-id").is_some());
    let exit = served.sigterm();
    assert!(exit.success(), "{exit:?}");
    let logs = served.logs_with(&["\"message\":\"stopped\""]);
    assert!(
        logs.lines()
            .any(|l| l.starts_with('{') && l.contains("\"message\":\"stopped\"")),
        "{logs}"
    );
}

#[test]
fn explain_shows_order_and_exclusions() {
    let path = temp_file(
        "explain.toml",
        r#"
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.coder]
strategy = "cost"
[[groups.coder.targets]]
provider = "p"
model = "big"
capabilities = ["tools"]
price = { input = 3.0, output = 15.0 }
[[groups.coder.targets]]
provider = "p"
model = "small"
capabilities = ["tools"]
price = { input = 0.25, output = 1.0 }
[[groups.coder.targets]]
provider = "p"
model = "notools"
"#,
    );
    let out = bin()
        .args([
            "explain", "--group", "coder", "--tools", "--tokens", "2000", "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("group coder (strategy cost)"), "{text}");
    assert!(
        text.contains("1. p/small  [estimated $0.001012 per request]"),
        "{text}"
    );
    assert!(text.contains("2. p/big"), "{text}");
    assert!(
        text.contains("excluded: p/notools: request has tools"),
        "{text}"
    );
}

/// Issue 17: `explain` for a described request shows each rule's outcome in order, the input a
/// policy would get, and the plan the deciding rule leads to.
#[test]
fn explain_shows_rules_policy_input_and_the_resulting_plan() {
    let path = temp_file(
        "explain-rules.toml",
        r#"
rules_headers = ["x-region"]
[providers.p]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.coder]
[[groups.coder.targets]]
provider = "p"
model = "default"
[[groups.coder.targets]]
provider = "p"
model = "long"
context_window = 1000000
[[groups.coder.rules]]
name = "eu-only"
when = 'headers["x-region"] == "eu"'
route = { group = "eu" }
[[groups.coder.rules]]
name = "long-prompts"
when = 'request.estimated_input_tokens > 50000 && caller.team == "search"'
route = { targets = ["p/long"] }
[[groups.coder.rules]]
name = "no-night-agents"
when = 'request.client == "codex"'
route = { deny = "no agents" }
[groups.eu]
[[groups.eu.targets]]
provider = "p"
model = "eu-model"
[[callers]]
name = "sam"
team = "search"
groups = ["*"]
token_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
[[policies]]
name = "central"
url = "http://127.0.0.1:8181/v1/data/router/decision"
on_error = "deny"
cache_ttl_ms = 1000
"#,
    );
    let run = |extra: &[&str]| {
        let out = bin()
            .args(["explain", "--group", "coder", "--config"])
            .arg(&path)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let text = run(&[
        "--caller",
        "sam",
        "--client",
        "codex",
        "--tokens",
        "60000",
        "--header",
        "x-region=us",
    ]);
    assert!(
        text.contains("1. eu-only  when headers[\"x-region\"] == \"eu\"  -> no match"),
        "{text}"
    );
    assert!(
        text.contains("2. long-prompts") && text.contains("-> MATCHES: route to targets p/long"),
        "{text}"
    );
    assert!(
        text.contains("3. no-night-agents") && text.contains("not evaluated"),
        "{text}"
    );
    assert!(
        text.contains("policy central (enforce, on_error=deny, timeout 50 ms, cached 1000 ms)"),
        "{text}"
    );
    assert!(text.contains("\"rule\": \"long-prompts\""), "{text}");
    assert!(text.contains("\"x-region\": \"us\""), "{text}");
    assert!(text.contains("\"estimated_input_tokens\": 60000"), "{text}");
    assert!(
        text.contains("1. p/long  [rule's targets, in order]"),
        "{text}"
    );
    // Another request: the header routes to the other group; Codex alone is denied.
    let text = run(&["--caller", "sam", "--header", "x-region=eu"]);
    assert!(text.contains("-> MATCHES: route to group eu"), "{text}");
    assert!(
        text.contains("routed to group eu") && text.contains("p/eu-model"),
        "{text}"
    );
    let text = run(&["--client", "codex"]);
    assert!(
        text.contains("denied: 403 policy_denied \"no agents\""),
        "{text}"
    );
}

#[test]
fn codex_config_derives_metadata_from_the_group() {
    let path = temp_file(
        "codex.toml",
        r#"
[server]
listen = "127.0.0.1:9090"
[providers.p]
kind = "openai-responses"
base_url = "http://127.0.0.1:9/v1"
[groups.coder]
[[groups.coder.targets]]
provider = "p"
model = "big"
context_window = 400000
capabilities = ["tools", "reasoning"]
[[groups.coder.targets]]
provider = "p"
model = "small"
context_window = 200000
capabilities = ["tools", "reasoning"]
"#,
    );
    let out = bin()
        .args(["codex-config", "--group", "coder", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "model = \"coder\"",
        "model_provider = \"smart-router\"",
        "model_context_window = 200000",
        "model_auto_compact_token_limit = 180000",
        "model_reasoning_effort = \"medium\"",
        "base_url = \"http://127.0.0.1:9090/v1\"",
        "env_key = \"ROUTER_TOKEN\"",
        "wire_api = \"responses\"",
        "supports_websockets = false",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
}
