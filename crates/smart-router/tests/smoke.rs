//! Issue 16: `smart-router smoke` against a running demo, across a two-router chain, and
//! against a router with a broken group (exit 1, the failing checks named).

mod common;

use common::{Served, bin, sqlite_store, temp_dir};
use fake_upstream::FakeUpstream;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

/// `smoke` against `base` with the caller token `token` (and `admin` as admin and metrics
/// token): (exit code, stdout, the JSON evidence).
fn smoke(
    base: &str,
    token: &str,
    admin: Option<&str>,
    extra: &[&str],
) -> (Option<i32>, String, Value) {
    let dir = temp_dir(&format!("smoke-{}", fastish_id()));
    let json = dir.join("evidence.json");
    let mut cmd = bin();
    cmd.args([
        "smoke",
        "--base-url",
        base,
        "--token-env",
        "SMOKE_TOKEN",
        "--json",
    ])
    .arg(&json)
    .args(extra)
    .env("SMOKE_TOKEN", token)
    .env("NEXT_ADMIN", "ent-ops-token");
    if let Some(a) = admin {
        cmd.args([
            "--admin-token-env",
            "SMOKE_ADMIN",
            "--metrics-token-env",
            "SMOKE_ADMIN",
        ])
        .env("SMOKE_ADMIN", a);
    }
    let out = cmd.output().unwrap();
    let evidence = std::fs::read_to_string(&json)
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(Value::Null);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
        evidence,
    )
}

fn fastish_id() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn outcomes(e: &Value, outcome: &str) -> Vec<String> {
    e["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["outcome"] == outcome)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

/// The demo process, its base URL, and its stdout (kept open: the demo prints more lines after
/// the first, and a closed pipe would end it).
struct Demo(
    Child,
    String,
    #[allow(dead_code)] BufReader<std::process::ChildStdout>,
);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn demo() -> Demo {
    let dir = temp_dir("smoke-demo");
    let mut child = bin()
        .current_dir(&dir)
        .args(["demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("smart-router demo listening on ")
        .unwrap()
        .to_string();
    Demo(child, base, out)
}

#[test]
fn smoke_passes_on_the_demo_and_shows_the_usage_of_exactly_its_requests() {
    let d = demo();
    let (code, out, e) = smoke(&d.1, "sr-demo-app-token", Some("sr-demo-token"), &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(outcomes(&e, "fail"), Vec::<String>::new(), "{out}");
    let passed = outcomes(&e, "pass");
    for g in ["fast", "coder"] {
        for c in [
            "chat text",
            "chat stream",
            "responses text",
            "responses stream",
            "messages text",
            "messages stream",
            "chat tool call",
            "chat tool result",
            "responses tool call",
            "responses tool result",
            "messages tool call",
            "messages tool result",
            "image",
            "structured output",
        ] {
            assert!(passed.contains(&format!("{c} [{g}]")), "{c} [{g}]: {out}");
        }
    }
    for c in [
        "readyz",
        "caller token refused: metrics",
        "usage excerpt",
        "license",
    ] {
        assert!(passed.contains(&c.to_string()), "{c}: {out}");
    }
    // One usage record per model request, each of this run, each served.
    let ids: Vec<&str> = e["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["request_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 28);
    let usage = e["usage"].as_array().unwrap();
    assert_eq!(usage.len(), ids.len(), "{out}");
    for u in usage {
        assert!(ids.contains(&u["request_id"].as_str().unwrap()));
        assert_eq!(u["status"], "ok");
        assert!(u["model"].as_str().unwrap().starts_with("fake-"));
        assert_eq!(u["config_hash"].as_str().unwrap().len(), 64);
    }
    assert_eq!(e["version"]["license"], "unlicensed");
    // Nothing secret in the evidence or the table.
    let all = format!("{out}{e}");
    assert!(
        !all.contains("sr-demo-app-token") && !all.contains("sr-demo-token"),
        "{all}"
    );
    // The admin token given as the caller token breaks the role boundary: named failures.
    let (code, out, e) = smoke(&d.1, "sr-demo-token", None, &["--group", "fast"]);
    assert_eq!(code, Some(1), "{out}");
    let failed = outcomes(&e, "fail");
    assert!(
        failed.contains(&"caller token refused: metrics".to_string()),
        "{out}"
    );
    assert_eq!(
        outcomes(&e, "skip"),
        vec!["metrics (metrics token)", "usage excerpt"],
        "{out}"
    );
}

/// A group whose only target is down fails its checks (and only its checks); a group without
/// image or JSON-schema targets skips those with the reason.
#[test]
fn smoke_names_what_is_broken_and_skips_what_does_not_apply() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let served = Served::start("smoke-broken", |dir| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
{}
[providers.fake]
kind = "openai"
base_url = "{}"
[providers.down]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.ok]
[[groups.ok.targets]]
provider = "fake"
model = "m"
capabilities = ["tools"]
[groups.broken]
[[groups.broken.targets]]
provider = "down"
model = "m"
capabilities = ["tools", "images", "json_schema"]
[[callers]]
name = "app"
groups = ["*"]
token = "app-token"
"#,
            sqlite_store(dir, ""),
            fake.openai_base_url()
        )
    });
    let (code, out, e) = smoke(&format!("http://{}", served.addr), "app-token", None, &[]);
    assert_eq!(code, Some(1), "{out}");
    let failed = outcomes(&e, "fail");
    assert!(failed.iter().all(|f| f.ends_with("[broken]")), "{failed:?}");
    assert!(failed.contains(&"chat text [broken]".to_string()), "{out}");
    let skipped = outcomes(&e, "skip");
    assert!(skipped.contains(&"image [ok]".to_string()), "{out}");
    assert!(
        skipped.contains(&"structured output [ok]".to_string()),
        "{out}"
    );
    assert!(
        outcomes(&e, "pass").contains(&"chat tool result [ok]".to_string()),
        "{out}"
    );
    assert!(out.contains("images"), "the skip says why: {out}");
}

/// Across a chain (team router -> enterprise router -> fake), every check passes at the team
/// router.
#[test]
fn smoke_passes_across_a_router_chain() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let ent = Served::start("smoke-ent", |dir| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nname = \"enterprise\"\n{}\n[providers.fake]\nkind = \"openai\"\nbase_url = \"{}\"\n[groups.ent]\n[[groups.ent.targets]]\nprovider = \"fake\"\nmodel = \"m\"\ncapabilities = [\"tools\", \"images\", \"json_schema\"]\n[[callers]]\nname = \"team\"\ngroups = [\"ent\"]\ntoken = \"team-token\"\n[[callers]]\nname = \"ent-ops\"\nroles = [\"report-admin\"]\ngroups = []\ntoken = \"ent-ops-token\"\n",
            sqlite_store(dir, ""),
            fake.openai_base_url()
        )
    });
    let team = Served::start("smoke-team", |dir| {
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nname = \"team\"\n{}\n[providers.ent]\nkind = \"openai\"\nbase_url = \"http://{}/v1\"\napi_key = \"team-token\"\n[groups.coder]\n[[groups.coder.targets]]\nprovider = \"ent\"\nmodel = \"ent\"\ncapabilities = [\"tools\", \"images\", \"json_schema\"]\n[[callers]]\nname = \"app\"\ngroups = [\"coder\"]\ntoken = \"app-token\"\n[[callers]]\nname = \"ops\"\nroles = [\"admin\"]\ngroups = [\"*\"]\ntoken = \"ops-token\"\n",
            sqlite_store(dir, ""),
            ent.addr
        )
    });
    let next = format!("http://{}", ent.addr);
    let (code, out, e) = smoke(
        &format!("http://{}", team.addr),
        "app-token",
        Some("ops-token"),
        &[
            "--next-base-url",
            &next,
            "--next-admin-token-env",
            "NEXT_ADMIN",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(outcomes(&e, "skip"), Vec::<String>::new(), "{out}");
    let passed = outcomes(&e, "pass");
    for c in [
        "hop: request id at the next router [coder]",
        "hop: time budget shrinks [coder]",
    ] {
        assert!(passed.contains(&c.to_string()), "{c}: {out}");
    }
    assert!(out.contains("parent \"team\""), "{out}");
    let usage = e["usage"].as_array().unwrap();
    assert_eq!(usage.len(), 15, "{out}");
    assert!(usage.iter().all(|u| u["provider"] == "ent"), "{out}");
}
