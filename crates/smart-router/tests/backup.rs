//! Issue 16: `backup` while traffic runs and `restore` into a fresh directory and a fresh
//! store (SQLite and PostgreSQL), the same report totals afterwards; a flipped byte, a missing
//! file, a newer schema and a non-empty target each refuse the restore.

mod common;

use common::{Served, bin, chat, temp_dir};
use fake_upstream::FakeUpstream;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

fn config(store: &str, fake: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
{store}
[providers.fake]
kind = "openai"
base_url = "{fake}"
[groups.fast]
[[groups.fast.targets]]
provider = "fake"
model = "m"
price = {{ input = 1.0, output = 2.0 }}
[[callers]]
name = "app"
groups = ["fast"]
token = "app-token"
{extra}
"#
    )
}

fn run(args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = bin().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// `backup --config CFG --out OUT`: the archive directory.
fn backup(cfg: &Path, out: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec![
        os("backup"),
        os("--config"),
        cfg.as_os_str(),
        os("--out"),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|a| os(a)));
    let (code, text) = run(&args);
    assert_eq!(code, Some(0), "{text}");
    let line = text.lines().next().unwrap();
    PathBuf::from(line.strip_prefix("backup written to ").unwrap())
}

fn restore(from: &Path, to: &Path, store: Option<&str>) -> (Option<i32>, String) {
    let mut args = vec![
        os("restore"),
        os("--from"),
        from.as_os_str(),
        os("--to"),
        to.as_os_str(),
    ];
    if let Some(s) = store {
        args.extend([os("--store"), os(s)]);
    }
    run(&args)
}

/// The report (JSON) of the store a config names, over a fixed range.
fn report(cfg_text: &str, dir: &Path) -> Value {
    let cfg = dir.join(format!("report-{}.toml", fastish()));
    std::fs::write(&cfg, cfg_text).unwrap();
    let (code, text) = run(&[
        os("report"),
        os("--config"),
        cfg.as_os_str(),
        os("--from"),
        os("2020-01-01"),
        os("--to"),
        os("2040-01-01"),
        os("--group-by"),
        os("caller,model,status"),
        os("--format"),
        os("json"),
    ]);
    assert_eq!(code, Some(0), "{text}");
    serde_json::from_str(&text).unwrap()
}

fn fastish() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Every record of the store at `url`, by record id.
fn records(url: &str) -> std::collections::BTreeMap<String, Value> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let s = router::usage::store::open(url).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::channel(100);
        let s2 = s.clone();
        tokio::spawn(async move { s2.export(i64::MIN, i64::MAX, tx).await });
        let mut out = std::collections::BTreeMap::new();
        while let Some(r) = rx.recv().await {
            let r = r.unwrap();
            out.insert(r.record_id.clone(), serde_json::to_value(&r).unwrap());
        }
        out
    })
}

/// Chat traffic on `addr` until the flag drops; counts answers.
fn traffic(addr: String, stop: Arc<AtomicBool>, n: Arc<AtomicU64>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            assert_eq!(chat(&addr, "app-token", "fast", &[]).status, 200);
            n.fetch_add(1, Ordering::Relaxed);
        }
    })
}

fn pg_url(tag: &str) -> String {
    let base = std::env::var("SMART_ROUTER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    format!(
        "{base}?schema=sr_bk_{tag}_{}_{}",
        std::process::id(),
        fastish() % 1_000_000
    )
}

fn round_trip(source_url: &str, restore_url: Option<&str>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = rt.block_on(FakeUpstream::start()).unwrap();
    let f = fake.openai_base_url();
    let store = |dir: &Path| {
        format!(
            "[store]\nurl = \"{source_url}\"\nspool_path = \"{}\"\nflush_interval_ms = 20\n",
            dir.join("spool").display()
        )
    };
    let capture = "[[capture_policies]]\nname = \"all\"\ncapture = \"all\"\n";
    let mut served = Served::start("backup", |d| config(&store(d), &f, capture));
    let cfg = served.dir.join("config.toml");
    let out = temp_dir("backup-out");
    // During traffic: the archive is a consistent snapshot of what was written by then.
    let (stop, n) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let load = traffic(served.addr.clone(), stop.clone(), n.clone());
    while n.load(Ordering::Relaxed) < 40 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Answers come before their records are written (batched): wait until some are stored, so
    // the snapshot has something to carry while traffic goes on.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while records(source_url).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let archive = backup(&cfg, &out, &[]);
    let after = n.load(Ordering::Relaxed) + 30;
    while n.load(Ordering::Relaxed) < after {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(archive.join("manifest.json")).unwrap())
            .unwrap();
    let taken = manifest["store"]["records"].as_u64().unwrap();
    assert!(taken > 0, "{manifest}");
    let to = temp_dir("backup-restored-live");
    let _ = std::fs::remove_dir_all(&to);
    let (code, text) = restore(&archive, &to, restore_url);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("{taken} usage records")), "{text}");
    assert!(text.contains("check-config"), "{text}");
    let captured = manifest["capture_store"]["captures"].as_u64().unwrap();
    assert!(captured > 0, "{manifest}");
    assert!(
        text.contains(&format!("{captured} captured contents")),
        "{text}"
    );
    let restored_url = restore_url.map_or_else(
        || format!("sqlite://{}", to.join("usage.db").display()),
        str::to_string,
    );
    let restored = records(&restored_url);
    assert_eq!(restored.len() as u64, taken);
    // Stop the router so every record is written, then compare.
    assert!(served.sigterm().success());
    let source = records(source_url);
    assert!(
        source.len() as u64 >= taken + 40,
        "{} {taken}",
        source.len()
    );
    for (id, r) in &restored {
        assert_eq!(source.get(id), Some(r), "record {id} differs");
    }
    // A quiescent backup restores to the same report totals.
    let archive = backup(&cfg, &out, &[]);
    let to = temp_dir("backup-restored-still");
    let _ = std::fs::remove_dir_all(&to);
    let again_url = restore_url.map(|_| pg_url("again"));
    let (code, text) = restore(&archive, &to, again_url.as_deref());
    assert_eq!(code, Some(0), "{text}");
    let restored_url =
        again_url.unwrap_or_else(|| format!("sqlite://{}", to.join("usage.db").display()));
    // The same captured content, row for row.
    let captures = |url: &str| {
        rt.block_on(async {
            let s = router::usage::store::open(url).unwrap();
            s.all_captures().await.unwrap()
        })
    };
    let (before, after) = (captures(source_url), captures(&restored_url));
    assert!(!before.is_empty());
    assert_eq!(before, after);
    let original = report(
        &config(&format!("[store]\nurl = \"{source_url}\"\n"), &f, ""),
        &out,
    );
    let copy = report(
        &config(&format!("[store]\nurl = \"{restored_url}\"\n"), &f, ""),
        &out,
    );
    // The same rows; sums of USD only to the last few bits (the two databases add floats in
    // their own order).
    let rounded = |v: &Value| {
        let mut v = v["rows"].clone();
        for r in v.as_array_mut().unwrap() {
            let c = r["cost_usd"].as_f64().unwrap();
            r["cost_usd"] = ((c * 1e9).round() / 1e9).into();
        }
        v
    };
    assert_eq!(rounded(&original), rounded(&copy), "{original}\n{copy}");
    let requests: i64 = original["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(requests as usize, source.len(), "{original}");
}

#[test]
fn sqlite_backup_during_traffic_restores_the_same_records_and_totals() {
    let dir = temp_dir("backup-sqlite-src");
    round_trip(
        &format!("sqlite://{}", dir.join("usage.db").display()),
        None,
    );
}

/// An evaluation (SQLite) deployment's records move to PostgreSQL.
#[test]
fn sqlite_backup_restores_into_postgres() {
    let dir = temp_dir("backup-sqlite-to-pg");
    round_trip(
        &format!("sqlite://{}", dir.join("usage.db").display()),
        Some(&pg_url("fromlite")),
    );
}

#[test]
fn postgres_backup_during_traffic_restores_into_a_fresh_database() {
    round_trip(&pg_url("src"), Some(&pg_url("dst")));
}

#[test]
fn a_damaged_archive_is_refused_before_anything_is_restored() {
    let dir = temp_dir("backup-tamper");
    let secret = dir.join("provider.key");
    std::fs::write(&secret, "sk-from-a-file").unwrap();
    let cfg = dir.join("config.toml");
    std::fs::write(
        &cfg,
        config(
            &format!(
                "[store]\nurl = \"sqlite://{}\"\n",
                dir.join("usage.db").display()
            ),
            "http://127.0.0.1:9/v1",
            "",
        )
        .replace(
            "[groups.fast]",
            &format!("api_key = \"file:{}\"\n[groups.fast]", secret.display()),
        ),
    )
    .unwrap();
    let out = dir.join("out");
    let archive = backup(&cfg, &out, &[]);
    let manifest = std::fs::read_to_string(archive.join("manifest.json")).unwrap();
    assert!(
        manifest.contains(&format!("file:{}", secret.display())),
        "{manifest}"
    );
    assert!(
        !archive.join("secrets").exists(),
        "secrets are not copied by default"
    );
    // A flipped byte in each file: refused, naming the file; nothing restored.
    for name in ["config.toml", "usage.db"] {
        let copy = dir.join(format!("copy-{name}"));
        let _ = std::fs::remove_dir_all(&copy);
        std::process::Command::new("cp")
            .arg("-r")
            .arg(&archive)
            .arg(&copy)
            .status()
            .unwrap();
        let path = copy.join(name);
        let mut bytes = std::fs::read(&path).unwrap();
        let i = bytes.len() / 2;
        bytes[i] ^= 0x01;
        std::fs::write(&path, bytes).unwrap();
        let to = dir.join(format!("restored-{name}"));
        let (code, text) = restore(&copy, &to, None);
        assert_eq!(code, Some(1), "{text}");
        assert!(
            text.contains(&format!("{}: checksum mismatch", path.display())),
            "{text}"
        );
        assert!(!to.exists(), "nothing restored for {name}");
    }
    // Missing file.
    let copy = dir.join("copy-missing");
    std::process::Command::new("cp")
        .arg("-r")
        .arg(&archive)
        .arg(&copy)
        .status()
        .unwrap();
    std::fs::remove_file(copy.join("config.toml")).unwrap();
    let (code, text) = restore(&copy, &dir.join("restored-missing"), None);
    assert_eq!(code, Some(1));
    assert!(
        text.contains("config.toml: listed in the manifest but missing"),
        "{text}"
    );
    // A newer schema than this router knows.
    let copy = dir.join("copy-newer");
    std::process::Command::new("cp")
        .arg("-r")
        .arg(&archive)
        .arg(&copy)
        .status()
        .unwrap();
    let m = std::fs::read_to_string(copy.join("manifest.json")).unwrap();
    let mut v: Value = serde_json::from_str(&m).unwrap();
    v["schema_version"] = 99.into();
    std::fs::write(copy.join("manifest.json"), v.to_string()).unwrap();
    let (code, text) = restore(&copy, &dir.join("restored-newer"), None);
    assert_eq!(code, Some(1));
    assert!(text.contains("usage schema is version 99, newer"), "{text}");
    // A target that is not empty.
    let busy = dir.join("busy");
    std::fs::create_dir_all(&busy).unwrap();
    std::fs::write(busy.join("keep.txt"), "x").unwrap();
    let (code, text) = restore(&archive, &busy, None);
    assert_eq!(code, Some(1));
    assert!(text.contains("not empty"), "{text}");
    // With --include-secrets the file secret is copied, private.
    let archive = backup(&cfg, &out, &["--include-secrets"]);
    let copied: Vec<_> = std::fs::read_dir(archive.join("secrets"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(copied.len(), 1);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        copied[0].metadata().unwrap().permissions().mode() & 0o777,
        0o600
    );
    let to = dir.join("restored-ok");
    let (code, text) = restore(&archive, &to, None);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("check-config"), "{text}");
    assert!(text.contains("(secret)"), "{text}");
}
