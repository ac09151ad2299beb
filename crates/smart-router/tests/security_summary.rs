//! `smart-router security-summary` (issue 14): key and token sources with inline ones flagged,
//! role holders, retention, content capture, PII policies and license, in JSON and Markdown,
//! without any secret's value.

mod common;

use common::{bin, temp_dir};
use serde_json::Value;

const CONFIG: &str = r#"
[store]
url = "sqlite://DIR/usage.db"
retention_days = 30
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "env:SUMMARY_TEST_OPENAI_KEY"
[providers.inline]
kind = "anthropic"
base_url = "https://api.anthropic.com"
api_key = "sk-ant-inline-provider-secret-value"
[groups.fast]
[[groups.fast.targets]]
provider = "openai"
model = "gpt-4o-mini"
[groups.claude]
[[groups.claude.targets]]
provider = "inline"
model = "claude"
[[callers]]
name = "app"
project = "payments"
groups = ["*"]
token = "inline-caller-token-value"
[[callers]]
name = "ops"
roles = ["admin"]
token = "env:SUMMARY_TEST_ADMIN_TOKEN"
[[callers]]
name = "finance"
roles = ["report-admin"]
token_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
[[callers]]
name = "prom"
roles = ["metrics-admin"]
token = "file:FILE"
[[pii_policies]]
name = "strict"
applies_to = { projects = ["payments"], groups = ["fast"] }
detect = ["email", "credit_card"]
action = "block"
responses = "off"
[[capture_policies]]
name = "debug"
applies_to = { projects = ["payments"] }
capture = "errors"
retention_days = 3
[[policies]]
name = "central"
url = "http://policy-user:policy-url-password@127.0.0.1:8181/v1/data/router/decision"
on_error = "deny"
send_content = true
headers = { authorization = "Bearer inline-policy-header-secret" }
"#;

fn write_config(dir: &std::path::Path) -> std::path::PathBuf {
    let token_file = dir.join("prom.token");
    std::fs::write(&token_file, "file-token-value\n").unwrap();
    let text = CONFIG
        .replace("DIR", &dir.display().to_string())
        .replace("FILE", &token_file.display().to_string());
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn run(path: &std::path::Path, json: bool) -> (i32, String) {
    let mut cmd = bin();
    cmd.args(["security-summary", "--config"]).arg(path);
    if json {
        cmd.arg("--json");
    }
    let out = cmd
        .env("SUMMARY_TEST_OPENAI_KEY", "sk-env-provider-secret-value")
        .env("SUMMARY_TEST_ADMIN_TOKEN", "env-admin-token-value")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap() + &String::from_utf8(out.stderr).unwrap();
    for secret in [
        "sk-ant-inline-provider-secret-value",
        "sk-env-provider-secret-value",
        "inline-caller-token-value",
        "env-admin-token-value",
        "file-token-value",
        "inline-policy-header-secret",
        "policy-url-password",
    ] {
        assert!(!text.contains(secret), "{secret} leaked:\n{text}");
    }
    (out.status.code().unwrap(), text)
}

#[test]
fn summary_reports_sources_roles_retention_and_policies() {
    let dir = temp_dir("security-summary");
    let path = write_config(&dir);
    let (code, text) = run(&path, true);
    assert_eq!(code, 1, "inline secrets are flagged: {text}");
    let s: Value = serde_json::from_str(&text).unwrap();
    let keys = &s["provider_keys"];
    assert_eq!(keys[0]["provider"], "inline");
    assert_eq!(keys[0]["key_source"], "inline");
    assert_eq!(keys[1]["key_source"], "env");
    assert_eq!(keys[1]["reference"], "env:SUMMARY_TEST_OPENAI_KEY");
    let tokens: Vec<(&str, &str)> = s["caller_tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["caller"].as_str().unwrap(),
                c["token_source"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        tokens,
        vec![
            ("app", "inline"),
            ("ops", "env"),
            ("finance", "token_sha256"),
            ("prom", "file")
        ]
    );
    assert_eq!(s["roles"]["admin"], serde_json::json!(["ops"]));
    assert_eq!(s["roles"]["report_admin"], serde_json::json!(["finance"]));
    assert_eq!(s["roles"]["metrics_admin"], serde_json::json!(["prom"]));
    assert_eq!(s["usage_store"]["backend"], "sqlite");
    assert_eq!(s["usage_store"]["retention_days"], 30);
    assert!(
        s["endpoints"]["metrics"]
            .as_str()
            .unwrap()
            .contains("always")
    );
    let p = &s["pii_policies"][0];
    assert_eq!(p["name"], "strict");
    assert_eq!(p["action"], "block");
    assert_eq!(p["applies_to"]["projects"], serde_json::json!(["payments"]));
    assert_eq!(p["groups_covered"], serde_json::json!(["fast"]));
    let ext = &s["external_policies"][0];
    assert_eq!(ext["name"], "central");
    assert_eq!(
        ext["service"],
        "http://127.0.0.1:8181/v1/data/router/decision"
    );
    assert_eq!(ext["on_error"], "deny (fails closed)");
    assert!(ext["sends"].as_str().unwrap().contains("request text"));
    assert_eq!(s["license"]["status"], "unlicensed");
    let c = &s["content_capture"]["policies"][0];
    assert_eq!(c["name"], "debug");
    assert_eq!(c["capture"], "errors");
    assert_eq!(c["retention_days"], 3);
    assert_eq!(c["redact_pii"], true);
    let flags: Vec<&str> = s["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        flags,
        vec![
            "providers.inline.api_key is written inline in the config file",
            "callers[0].token is written inline in the config file",
        ]
    );

    let (code, md) = run(&path, false);
    assert_eq!(code, 1);
    for want in [
        "# Security and retention summary",
        "| inline | inline **(inline: flagged)** |",
        "| openai | env | env:SUMMARY_TEST_OPENAI_KEY |",
        "- admin: ops",
        "retention: 30 days",
        "`debug`: errors on groups [\"claude\",\"fast\"], kept 3 days",
        "`strict`: block on groups [\"fast\"], projects [\"payments\"]",
        "## Flags",
    ] {
        assert!(md.contains(want), "missing {want:?} in:\n{md}");
    }
}
