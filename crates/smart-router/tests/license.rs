//! Issue 15 through the binary: `license keygen|sign|verify|status`, `check-config` and
//! `serve` refusing what a license does not allow (naming the field or config key), a router
//! in grace starting and saying so, and the instance limit among processes sharing a
//! PostgreSQL store — including a killed one freeing its slot.

mod common;

use common::{Served, bin, request, temp_dir};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DAY: i64 = 86_400;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn stamp(secs: i64) -> String {
    router::license::rfc3339(secs)
}

/// The published development key's private half.
fn dev_key() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../router/tests/fixtures/license/dev-2026.key")
}

/// A payload valid from 10 days ago for a year, every feature but `pii_filtering`, with
/// `extra` merged in (null removes a field).
fn payload(extra: Value) -> Value {
    let mut p = json!({
        "license_id": "LIC-7",
        "customer": "Acme Corp",
        "issued_at": stamp(now() - 10 * DAY),
        "not_before": stamp(now() - 10 * DAY),
        "expires_at": stamp(now() + 355 * DAY),
        "grace_days": 10,
        "features": ["routing", "usage_reporting", "admin_reports", "exports", "quotas", "private_upstreams"],
        "max_instances": 2,
    });
    for (k, v) in extra.as_object().unwrap() {
        if v.is_null() {
            p.as_object_mut().unwrap().remove(k);
        } else {
            p[k] = v.clone();
        }
    }
    p
}

/// Output of a finished command: (exit code, stdout, stderr).
fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Signs `p` with `smart-router license sign` into `dir/name`.
fn sign(dir: &Path, name: &str, p: &Value) -> PathBuf {
    let payload = dir.join(format!("{name}.payload.json"));
    std::fs::write(&payload, p.to_string()).unwrap();
    let (code, out, err) = run(&[
        "license",
        "sign",
        "--key",
        dev_key().to_str().unwrap(),
        "--payload",
        payload.to_str().unwrap(),
        "--key-id",
        "dev-2026",
    ]);
    assert_eq!(code, Some(0), "sign: {err}");
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    path
}

/// A router config using `license` (if any) and a store.
fn config(store: &str, license: Option<&Path>, extra: &str) -> String {
    let license = license.map_or(String::new(), |p| {
        format!(
            "[license]\npath = \"{}\"\nheartbeat_interval_ms = 200\n",
            p.display()
        )
    });
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{store}
{license}
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.fast]
[[groups.fast.targets]]
provider = "local"
model = "m"
[[callers]]
name = "root"
roles = ["admin"]
groups = ["*"]
token = "admin-token-123"
{extra}
"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn keygen_writes_a_key_pair_with_a_private_file_only_its_owner_reads() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir("lic-keygen");
    let prefix = dir.join("vendor-2031");
    let p = prefix.to_str().unwrap();
    let (code, out, err) = run(&["license", "keygen", "--out", p]);
    assert_eq!(code, Some(0), "{err}");
    let private = std::fs::read_to_string(&prefix).unwrap();
    let public = std::fs::read_to_string(dir.join("vendor-2031.pub")).unwrap();
    for k in [&private, &public] {
        assert_eq!(k.trim().len(), 64, "{k}");
        assert!(k.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    }
    assert_ne!(private, public);
    assert_eq!(
        std::fs::metadata(&prefix).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(out.contains(public.trim()), "{out}");
    assert!(
        !out.contains(private.trim()),
        "the private key was printed: {out}"
    );
    // Not overwritten by accident.
    let (code, _, err) = run(&["license", "keygen", "--out", p]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&prefix).unwrap(), private);
    // A license signed with it does not verify on a build that does not trust it.
    let payload = write(&dir, "p.json", &payload(json!({})).to_string());
    let out = bin()
        .args(["license", "sign", "--key", p, "--payload"])
        .arg(&payload)
        .args(["--key-id", "vendor-2031"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let lic = dir.join("license.json");
    std::fs::write(&lic, &out.stdout).unwrap();
    let (code, _, err) = run(&["license", "verify", lic.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("key_id \"vendor-2031\" is not a key this build trusts (trusted: dev-2026)"),
        "{err}"
    );
    let (code, _, _) = run(&["license", "keygen", "--out", p, "--force"]);
    assert_eq!(code, Some(0));
    assert_ne!(std::fs::read_to_string(&prefix).unwrap(), private);
    assert_eq!(
        std::fs::metadata(&prefix).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn sign_and_verify_and_every_refusal_exits_1_naming_the_file() {
    let dir = temp_dir("lic-verify");
    let good = sign(&dir, "good.json", &payload(json!({})));
    let (code, out, err) = run(&["license", "verify", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("signature ok (key dev-2026)"), "{out}");
    assert!(out.contains("status    licensed"), "{out}");

    let text = std::fs::read_to_string(&good).unwrap();
    let cases = [
        (
            "edited.json",
            text.replace("Acme Corp", "Acme Corq"),
            "does not match the payload",
        ),
        (
            "truncated.json",
            text[..text.len() / 2].to_string(),
            "not a license file",
        ),
        ("words.json", "not json".to_string(), "not a license file"),
    ];
    for (name, body, says) in cases {
        let path = write(&dir, name, &body);
        let (code, _, err) = run(&["license", "verify", path.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{name}");
        assert!(
            err.contains(path.to_str().unwrap()) && err.contains(says),
            "{name}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let expired = sign(
        &dir,
        "expired.json",
        &payload(
            json!({"issued_at": stamp(now() - 400 * DAY), "not_before": stamp(now() - 400 * DAY), "expires_at": stamp(now() - 30 * DAY)}),
        ),
    );
    let (code, out, err) = run(&["license", "verify", expired.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("status    expired") && err.contains("expired now"),
        "{out}{err}"
    );

    // The tool refuses to sign what no router would accept.
    let bad = write(
        &dir,
        "backwards.json",
        &payload(json!({"expires_at": stamp(now() - 20 * DAY)})).to_string(),
    );
    let (code, _, err) = run(&[
        "license",
        "sign",
        "--key",
        dev_key().to_str().unwrap(),
        "--payload",
        bad.to_str().unwrap(),
        "--key-id",
        "dev-2026",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("expires_at is not after not_before"), "{err}");
    let (code, _, err) = run(&[
        "license",
        "sign",
        "--key",
        dev_key().to_str().unwrap(),
        "--payload",
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("--key-id"), "{err}");
}

#[test]
fn check_config_serve_and_status_refuse_a_feature_the_license_lacks() {
    let dir = temp_dir("lic-features");
    let lic = sign(
        &dir,
        "narrow.json",
        &payload(json!({"features": ["routing", "usage_reporting", "private_upstreams"]})),
    );
    let store = common::sqlite_store(&dir, "");
    let cfg = write(
        &dir,
        "config.toml",
        &config(
            &store,
            Some(&lic),
            "[[quotas]]\nname = \"q\"\nscope = \"caller\"\nrequests_per_minute = 5\n",
        ),
    );
    let want = "quotas[0]: feature \"quotas\" is not licensed (license LIC-7 has: routing, usage_reporting, private_upstreams)";
    for args in [
        vec!["check-config", cfg.to_str().unwrap()],
        vec!["serve", "--config", cfg.to_str().unwrap()],
        vec![
            "license",
            "verify",
            lic.to_str().unwrap(),
            "--config",
            cfg.to_str().unwrap(),
        ],
        vec!["license", "status", "--config", cfg.to_str().unwrap()],
    ] {
        let (code, _, err) = run(&args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    // The same config without the quota passes, and says which license it runs under.
    let ok = write(&dir, "ok.toml", &config(&store, Some(&lic), ""));
    let (code, out, err) = run(&["check-config", ok.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("license LIC-7 for Acme Corp: licensed"),
        "{out}"
    );
    let (code, out, _) = run(&["license", "status", "--config", ok.to_str().unwrap()]);
    assert_eq!(code, Some(0));
    assert!(
        out.starts_with("licensed\n") && out.contains("instances not counted"),
        "{out}"
    );
    // The commands of unlicensed features are refused as well.
    let (code, _, err) = run(&["export", "--config", ok.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(err.contains("feature \"exports\" is not licensed"), "{err}");
}

#[test]
fn serve_refuses_a_license_it_cannot_use_naming_the_field() {
    let dir = temp_dir("lic-refuse");
    let store = common::sqlite_store(&dir, "");
    let good = sign(&dir, "good.json", &payload(json!({})));
    let tampered = write(
        &dir,
        "tampered.json",
        &std::fs::read_to_string(&good)
            .unwrap()
            .replace("\"max_instances\": 2", "\"max_instances\": 20"),
    );
    let bound = sign(
        &dir,
        "bound.json",
        &payload(json!({"deployment_id": "prod-us"})),
    );
    let host_bound = sign(
        &dir,
        "host.json",
        &payload(json!({"hostnames": ["no-such-host-*"]})),
    );
    let expired = sign(
        &dir,
        "expired.json",
        &payload(
            json!({"issued_at": stamp(now() - 400 * DAY), "not_before": stamp(now() - 400 * DAY), "expires_at": stamp(now() - 30 * DAY)}),
        ),
    );
    let future = sign(
        &dir,
        "future.json",
        &payload(json!({"not_before": stamp(now() + 5 * DAY)})),
    );
    for (lic, says) in [
        (tampered, "the signature does not match the payload"),
        (
            bound,
            "payload.deployment_id: this license is bound to deployment_id \"prod-us\", but server.deployment_id is not set",
        ),
        (
            host_bound,
            "payload.hostnames: this license is bound to hostnames",
        ),
        (expired, "grace ended on"),
        (future, "is not valid before"),
        (dir.join("missing.json"), "cannot read the license"),
    ] {
        let cfg = write(&dir, "config.toml", &config(&store, Some(&lic), ""));
        let (code, out, err) = run(&["serve", "--config", cfg.to_str().unwrap()]);
        assert_eq!(code, Some(1), "{lic:?}: {out}");
        assert!(err.contains(says), "{lic:?}: {err}");
        assert!(err.contains(lic.to_str().unwrap()), "{lic:?}: {err}");
        assert!(!out.contains("listening"), "{out}");
    }
    let expired_cfg = write(
        &dir,
        "config.toml",
        &config(&store, Some(&dir.join("expired.json")), ""),
    );
    let (_, _, err) = run(&["serve", "--config", expired_cfg.to_str().unwrap()]);
    assert!(err.contains("install a renewed license.json"), "{err}");
}

#[test]
fn a_router_in_grace_starts_says_grace_and_warns() {
    let dir = temp_dir("lic-grace");
    let lic = sign(
        &dir,
        "grace.json",
        &payload(
            json!({"issued_at": stamp(now() - 400 * DAY), "not_before": stamp(now() - 400 * DAY), "expires_at": stamp(now() - 2 * DAY)}),
        ),
    );
    let served = Served::start("lic-grace-serve", |d| {
        config(&common::sqlite_store(d, ""), Some(&lic), "")
    });
    let v = request(&served.addr, "GET", "/version", &[], "");
    let j: Value = serde_json::from_str(&v.body).unwrap();
    assert_eq!(j["license"], "grace", "{}", v.body);
    let logs = served.logs_with(&["grace period ends on"]);
    assert!(logs.contains("license LIC-7 expired on"), "{logs}");
    let a = request(
        &served.addr,
        "GET",
        "/admin/license",
        &[("authorization", "Bearer admin-token-123")],
        "",
    );
    let j: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(j["status"], "grace");
    assert_eq!(
        j["instances"]["counted"], false,
        "SQLite: one process per file"
    );
}

/// A fresh PostgreSQL schema's `[store]` section, with a spool in `dir`.
fn pg_store(schema: &str, dir: &Path) -> String {
    let base = std::env::var("SMART_ROUTER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    format!(
        "[store]\nurl = \"{base}?schema={schema}\"\nspool_path = \"{}\"\n",
        dir.join("usage.spool").display()
    )
}

fn live(served: &Served) -> Vec<Value> {
    let a = request(
        &served.addr,
        "GET",
        "/admin/license",
        &[("authorization", "Bearer admin-token-123")],
        "",
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let j: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(j["instances"]["counted"], true, "{j}");
    j["instances"]["live"].as_array().unwrap().clone()
}

/// `max_instances = 2` among processes on one PostgreSQL schema: a third is refused with the
/// live ones listed; a killed one's slot frees when its heartbeat goes stale; a stopped one's
/// slot frees at once.
#[test]
fn instances_are_limited_among_processes_on_postgres() {
    let dir = temp_dir("lic-instances");
    let lic = sign(&dir, "two.json", &payload(json!({})));
    let schema = format!("sr_lic_{}_{}", std::process::id(), now() % 100_000);
    let cfg = |d: &Path| config(&pg_store(&schema, d), Some(&lic), "");
    let mut a = Served::start("lic-a", cfg);
    let b = Served::start("lic-b", cfg);
    let instances = live(&a);
    assert_eq!(instances.len(), 2, "{instances:?}");
    assert_eq!(
        instances
            .iter()
            .filter(|i| i["this_instance"] == true)
            .count(),
        1
    );
    let host = router::license::hostname();
    assert!(instances.iter().all(|i| i["hostname"] == host.as_str()));

    let Err((code, logs)) = Served::try_start("lic-c", None, cfg) else {
        panic!("a third instance started under max_instances = 2");
    };
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("license LIC-7 allows 2 instance(s) on this usage store, and 2 live"),
        "{logs}"
    );
    for i in &instances {
        assert!(logs.contains(i["instance_id"].as_str().unwrap()), "{logs}");
    }
    let status_cfg = write(&dir, "status.toml", &cfg(&dir));
    let (code, out, _) = run(&[
        "license",
        "status",
        "--config",
        status_cfg.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0));
    assert!(out.contains("live instances 2 of 2"), "{out}");

    // Killed: no deregistration; the slot frees once its heartbeat is 3 intervals old.
    let killed = instances
        .iter()
        .find(|i| i["this_instance"] == true)
        .unwrap()["instance_id"]
        .clone();
    a.kill();
    let t = Instant::now();
    let c = loop {
        match Served::try_start("lic-c", None, cfg) {
            Ok(c) => break c,
            Err(_) if t.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Err((_, logs)) => panic!("the killed instance's slot never freed: {logs}"),
        }
    };
    let now_live = live(&c);
    assert_eq!(now_live.len(), 2, "{now_live:?}");
    assert!(
        now_live.iter().all(|i| i["instance_id"] != killed),
        "{now_live:?}"
    );

    // Stopped: deregistered at shutdown, the slot is free at once — the third process of this
    // test takes it on the first try.
    let mut b = b;
    assert!(b.sigterm().success());
    let d = Served::try_start("lic-d", None, cfg)
        .unwrap_or_else(|(_, logs)| panic!("a stopped instance's slot stayed taken: {logs}"));
    assert_eq!(live(&d).len(), 2);
    assert!(
        Served::try_start("lic-e", None, cfg).is_err(),
        "three live under max 2"
    );
    drop((c, d));
}

/// Without a license, one instance per shared store (evaluation).
#[test]
fn unlicensed_evaluation_runs_one_instance_on_postgres() {
    let schema = format!("sr_lic_eval_{}_{}", std::process::id(), now() % 100_000);
    let cfg = |d: &Path| {
        config(
            &pg_store(&schema, d),
            None,
            "[license]\nheartbeat_interval_ms = 200\n",
        )
    };
    let first = Served::start("lic-eval-1", cfg);
    let Err((code, logs)) = Served::try_start("lic-eval-2", None, cfg) else {
        panic!("a second unlicensed instance started");
    };
    assert_eq!(code, Some(1));
    assert!(logs.contains("unlicensed evaluation"), "{logs}");
    let v = request(&first.addr, "GET", "/version", &[], "");
    assert!(v.body.contains("\"license\":\"unlicensed\""), "{}", v.body);
}
