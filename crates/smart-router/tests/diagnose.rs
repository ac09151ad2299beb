//! The support bundle (issue 14): a router serving traffic with distinctive prompts, caller
//! tokens, a provider key, header secrets and a PostgreSQL password; the bundle from
//! `GET /admin/diagnostics` (through `smart-router diagnose`) and the config-only bundle are
//! unpacked and every byte searched for each of them: none may appear. The bundle's parts are
//! there (version, redacted config, check-config, targets, store, limits, license, metrics,
//! errors by class, logs, system), and only admins may fetch it.

mod common;

use common::{Served, bin, request};
use fake_upstream::{FakeUpstream, Script};
use std::path::Path;

const PROMPT: &str = "Zebra-lantern-quartz confidential prompt 7781";
const ANSWER: &str = "Obsidian-harbor reply text 5521";
const PROVIDER_KEY: &str = "sk-provider-key-9f8e7d6c5b4a";
const HEADER_SECRET: &str = "org-header-secret-31415";
const CALLER_TOKEN: &str = "caller-token-distinct-2718";
const ADMIN_TOKEN: &str = "admin-token-distinct-1618";
const PG_PASSWORD: &str = "PgPassw0rd-Distinct-4242";

/// Every file of the bundle at `path`, unpacked with the system's tar.
fn unpack(path: &Path, dir: &Path) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    let st = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(path)
        .arg("-C")
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                out.push((name, std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

fn assert_clean(files: &[(String, Vec<u8>)]) {
    for (name, body) in files {
        for secret in [
            PROMPT,
            ANSWER,
            PROVIDER_KEY,
            HEADER_SECRET,
            CALLER_TOKEN,
            ADMIN_TOKEN,
            PG_PASSWORD,
        ] {
            assert!(
                memchr_find(body, secret.as_bytes()).is_none(),
                "{secret:?} found in {name}"
            );
        }
    }
}

fn memchr_find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn the_bundle_holds_no_secret_and_no_content() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let pg = format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:5432/test?schema=sr_diag_{}",
        std::process::id()
    );
    let fake_url = fake.openai_base_url();
    let served = Served::start("diagnose", |dir| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[store]
url = "{pg}"
spool_path = "{spool}"
[providers.up]
kind = "openai"
base_url = "{fake_url}"
api_key = "{PROVIDER_KEY}"
headers = {{ "x-org-secret" = "{HEADER_SECRET}" }}
[groups.fast]
[[groups.fast.targets]]
provider = "up"
model = "m"
[[callers]]
name = "app"
groups = ["*"]
token = "{CALLER_TOKEN}"
[[callers]]
name = "ops"
roles = ["admin"]
token = "{ADMIN_TOKEN}"
[[capture_policies]]
name = "all"
capture = "all"
redact_pii = false
[[policies]]
name = "central"
url = "http://127.0.0.1:9/v1/data/router"
on_error = "allow"
headers = {{ authorization = "Bearer {HEADER_SECRET}-policy" }}
[telemetry]
otlp_endpoint = "http://otel:{HEADER_SECRET}-otlp@127.0.0.1:9"
headers = {{ "x-otel-key" = "{HEADER_SECRET}-otel" }}
"#,
            spool = dir.join("spool").display(),
        )
    });
    let dir = served.dir.clone();
    let auth = format!("Bearer {CALLER_TOKEN}");
    let ask = |group: &str| {
        let body =
            serde_json::json!({"model": group, "messages": [{"role": "user", "content": PROMPT}]});
        request(
            &served.addr,
            "POST",
            "/v1/chat/completions",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            &body.to_string(),
        )
        .status
    };
    for i in 0..5 {
        fake.enqueue(Script {
            text: Some(ANSWER.into()),
            ..Script::default()
        });
        assert_eq!(ask("fast"), 200, "request {i}");
    }
    fake.enqueue(Script {
        status: Some(500),
        error: Some("upstream broke".into()),
        ..Script::default()
    });
    assert!(ask("fast") >= 500);
    assert_eq!(ask("nope"), 404);

    // Only admins fetch it.
    let r = request(
        &served.addr,
        "GET",
        "/admin/diagnostics",
        &[("authorization", &auth)],
        "",
    );
    assert_eq!(r.status, 403);

    let base = format!("http://{}", served.addr);
    let config_path = dir.join("config.toml");
    let out = dir.join("bundle.tar.gz");
    let run = bin()
        .args(["diagnose", "--config"])
        .arg(&config_path)
        .arg("--out")
        .arg(&out)
        .args(["--url", &base, "--admin-token-env", "DIAG_ADMIN"])
        .env("DIAG_ADMIN", ADMIN_TOKEN)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(String::from_utf8_lossy(&run.stdout).contains("from the running router"));
    let files = unpack(&out, &dir.join("live"));
    assert_clean(&files);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "version.json",
        "config.redacted.toml",
        "check-config.txt",
        "system.json",
        "targets.json",
        "store.json",
        "limits.json",
        "license.json",
        "errors_by_class.json",
        "metrics.txt",
        "logs.txt",
        "config_status.json",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
    let file =
        |n: &str| String::from_utf8(files.iter().find(|(f, _)| f == n).unwrap().1.clone()).unwrap();
    let targets: serde_json::Value = serde_json::from_str(&file("targets.json")).unwrap();
    assert_eq!(targets[0]["provider"], "up");
    let errors: serde_json::Value = serde_json::from_str(&file("errors_by_class.json")).unwrap();
    assert!(
        errors["model_not_found"].as_f64().unwrap() >= 1.0,
        "{errors}"
    );
    let store: serde_json::Value = serde_json::from_str(&file("store.json")).unwrap();
    assert_eq!(store["kind"], "postgres");
    assert_eq!(store["reachable"], true);
    assert!(file("config.redacted.toml").contains("postgres://postgres:***@127.0.0.1"));
    assert!(file("config.redacted.toml").contains("(inline secret)"));
    assert!(file("metrics.txt").contains("smart_router_requests_total"));
    assert!(
        file("logs.txt").contains("request finished"),
        "{}",
        file("logs.txt")
    );
    assert!(file("check-config.txt").starts_with("ok ("));

    // From the config alone (no token): no live part, still no secret.
    let out2 = dir.join("offline.tar.gz");
    let run = bin()
        .args(["diagnose", "--config"])
        .arg(&config_path)
        .arg("--out")
        .arg(&out2)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let files = unpack(&out2, &dir.join("offline"));
    assert_clean(&files);
    let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "version.json",
        "config.redacted.toml",
        "check-config.txt",
        "system.json",
        "license.json",
        "store.json",
        "live.txt",
    ] {
        assert!(names.contains(&want), "{want} missing: {names:?}");
    }
}
