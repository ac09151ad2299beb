//! Issue 16 through the binary: SIGHUP and `server.watch_config` reload the file; a broken
//! file leaves the running config in force and says why in the log.

mod common;

use common::{Served, request};
use std::path::Path;
use std::time::{Duration, Instant};

fn config(dir: &Path, watch: bool, extra_caller: Option<&str>) -> String {
    let extra = extra_caller.map_or(String::new(), |t| {
        format!("[[callers]]\nname = \"late\"\ngroups = [\"fast\"]\ntoken = \"{t}\"\n")
    });
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
watch_config = {watch}
{}
[providers.local]
kind = "openai"
base_url = "http://127.0.0.1:9/v1"
[groups.fast]
[[groups.fast.targets]]
provider = "local"
model = "m"
[[callers]]
name = "app"
groups = ["fast"]
token = "app-token"
{extra}
"#,
        common::sqlite_store(dir, "")
    )
}

fn hash(s: &Served) -> String {
    let v = request(&s.addr, "GET", "/version", &[], "");
    let j: serde_json::Value = serde_json::from_str(&v.body).unwrap();
    j["config_hash"].as_str().unwrap().to_string()
}

fn models_status(s: &Served, token: &str) -> u16 {
    request(
        &s.addr,
        "GET",
        "/v1/models",
        &[("authorization", &format!("Bearer {token}"))],
        "",
    )
    .status
}

/// Waits up to 5 s for the config hash to differ from `old`.
fn changed(s: &Served, old: &str) -> Option<String> {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(5) {
        let h = hash(s);
        if h != old {
            return Some(h);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn write(dir: &Path, text: &str) {
    let tmp = dir.join("config.toml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join("config.toml")).unwrap();
}

#[test]
fn sighup_reloads_and_a_broken_file_changes_nothing() {
    let s = Served::start("reload-hup", |d| config(d, false, None));
    let h0 = hash(&s);
    assert_eq!(models_status(&s, "late-token"), 401);
    write(&s.dir, &config(&s.dir, false, Some("late-token")));
    s.hup();
    let h1 = changed(&s, &h0).expect("SIGHUP reloaded the config");
    assert_eq!(models_status(&s, "late-token"), 200);
    // Broken: the running config stays, the log says why.
    write(
        &s.dir,
        &config(&s.dir, false, None).replace("provider = \"local\"", "provider = \"nowhere\""),
    );
    s.hup();
    let logs = s.logs_with(&["config reload refused"]);
    assert!(
        logs.contains("groups.fast.targets[0].provider: no provider named"),
        "{logs}"
    );
    assert_eq!(hash(&s), h1);
    assert_eq!(models_status(&s, "late-token"), 200);
}

#[test]
fn watch_config_reloads_when_the_file_changes() {
    let s = Served::start("reload-watch", |d| config(d, true, None));
    let h0 = hash(&s);
    write(&s.dir, &config(&s.dir, true, Some("watched-token")));
    let h1 = changed(&s, &h0).expect("the file change was picked up");
    assert_ne!(h1, h0);
    assert_eq!(models_status(&s, "watched-token"), 200);
    let logs = s.logs_with(&["config reloaded"]);
    assert!(logs.contains(&h1), "{logs}");
}
