//! Issue 16: `promote` with the smoke checklist and automatic rollback, `rollback` and
//! `backups`, against a running router.

mod common;

use common::{Served, bin, request, sqlite_store};
use fake_upstream::FakeUpstream;
use std::path::Path;

fn config(dir: &Path, fake: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{}
[providers.fake]
kind = "openai"
base_url = "{fake}"
[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "m"
capabilities = ["tools", "images", "json_schema"]
[[callers]]
name = "app"
groups = ["fast"]
token = "app-token"
[[callers]]
name = "ops"
roles = ["admin"]
groups = ["*"]
token = "ops-token"
{extra}
"#,
        sqlite_store(dir, "")
    )
}

fn hash(s: &Served) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&request(&s.addr, "GET", "/version", &[], "").body).unwrap();
    v["config_hash"].as_str().unwrap().to_string()
}

fn sha(text: &str) -> String {
    use sha2::Digest;
    router::config::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// Runs a subcommand with the tokens in the environment: (exit code, stdout + stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = bin()
        .args(args)
        .env("OPS_TOKEN", "ops-token")
        .env("APP_TOKEN", "app-token")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn promote_reloads_and_rolls_back_a_candidate_that_fails_the_smoke() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let f = fake.openai_base_url();
    let served = Served::start("promote", |d| config(d, &f, ""));
    let prod = served.dir.join("config.toml");
    let url = format!("http://{}", served.addr);
    let original = std::fs::read_to_string(&prod).unwrap();
    let promote = |candidate: &Path| {
        run(&[
            "promote",
            "--from",
            candidate.to_str().unwrap(),
            "--to",
            prod.to_str().unwrap(),
            "--reload-url",
            &url,
            "--admin-token-env",
            "OPS_TOKEN",
            "--smoke-token-env",
            "APP_TOKEN",
        ])
    };

    // Invalid: refused before anything changes.
    let bad = served.dir.join("invalid.toml");
    std::fs::write(
        &bad,
        config(&served.dir, &f, "").replace("provider = \"fake\"", "provider = \"fak\""),
    )
    .unwrap();
    let (code, out) = promote(&bad);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("groups.fast.targets[0].provider: no provider named \"fak\""),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&prod).unwrap(), original);
    let (_, listed) = run(&["backups", "--to", prod.to_str().unwrap()]);
    assert!(listed.starts_with("no backups"), "{listed}");

    // Good: promoted, reloaded, smoke passes; the diff names the change, not the secret.
    let good = served.dir.join("staging.toml");
    let good_text = config(
        &served.dir,
        &f,
        "[[callers]]\nname = \"new-app\"\ngroups = [\"fast\"]\ntoken = \"sk-inline-SECRET\"\n",
    );
    std::fs::write(&good, &good_text).unwrap();
    let (code, out) = promote(&good);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("+ callers[new-app].token = (inline secret #"),
        "{out}"
    );
    assert!(!out.contains("sk-inline-SECRET"), "{out}");
    assert!(out.contains("promoted: smoke passed"), "{out}");
    assert_eq!(hash(&served), sha(&good_text));
    assert_eq!(std::fs::read_to_string(&prod).unwrap(), good_text);

    // Valid but broken at run time (the provider is down): the smoke fails, the previous
    // config is back in force and passes the smoke again; exit 2.
    let broken = served.dir.join("broken.toml");
    std::fs::write(&broken, config(&served.dir, "http://127.0.0.1:9/v1", "")).unwrap();
    let (code, out) = promote(&broken);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("smoke after the promotion:"), "{out}");
    assert!(out.contains("FAIL"), "{out}");
    assert!(out.contains("rolled back"), "{out}");
    assert!(out.contains("smoke after the rollback:"), "{out}");
    assert!(out.contains("\"rollback_smoke_failures\":0"), "{out}");
    assert_eq!(std::fs::read_to_string(&prod).unwrap(), good_text);
    assert_eq!(hash(&served), sha(&good_text));

    // Two backups now (before the good and before the broken promotion); `rollback` puts the
    // original back and keeps what it replaced.
    let (_, listed) = run(&["backups", "--to", prod.to_str().unwrap()]);
    assert_eq!(listed.lines().count(), 3, "{listed}");
    let (code, out) = run(&[
        "rollback",
        "--to",
        prod.to_str().unwrap(),
        "--backup",
        listed
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap(),
        "--reload-url",
        &url,
        "--admin-token-env",
        "OPS_TOKEN",
        "--smoke-token-env",
        "APP_TOKEN",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(std::fs::read_to_string(&prod).unwrap(), original);
    assert_eq!(hash(&served), sha(&original));
    let (_, listed) = run(&["backups", "--to", prod.to_str().unwrap()]);
    assert_eq!(
        listed.lines().count(),
        4,
        "the rollback backed up what it replaced: {listed}"
    );
    // No temporary files left beside the config.
    let stray: Vec<_> = std::fs::read_dir(&served.dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn promote_needs_an_admin_token_to_reload_and_dry_run_changes_nothing() {
    let dir = common::temp_dir("promote-args");
    let prod = dir.join("prod.toml");
    let cand = dir.join("cand.toml");
    std::fs::write(&prod, config(&dir, "http://127.0.0.1:9/v1", "")).unwrap();
    std::fs::write(
        &cand,
        config(&dir, "http://127.0.0.1:9/v1", "").replace("model = \"m\"", "model = \"m2\""),
    )
    .unwrap();
    let (code, out) = run(&[
        "promote",
        "--from",
        cand.to_str().unwrap(),
        "--to",
        prod.to_str().unwrap(),
        "--reload-url",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("--admin-token-env"), "{out}");
    let before = std::fs::read_to_string(&prod).unwrap();
    let (code, out) = run(&[
        "promote",
        "--from",
        cand.to_str().unwrap(),
        "--to",
        prod.to_str().unwrap(),
        "--dry-run",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("- groups.fast.targets[fake/m].model")
            && out.contains("+ groups.fast.targets[fake/m2].model"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(&prod).unwrap(), before);
}
