//! `promote`, `rollback`, `backups`: moving a config from one environment to the next with a
//! way back. `promote` validates the candidate (and its license), prints a semantic diff
//! (secrets as references only), backs up the config in force, replaces it atomically,
//! reloads the running router and runs the smoke checklist; if the reload or the smoke fails
//! it restores the backup, reloads again and reruns the smoke. Nothing is ever half-written:
//! files are replaced by rename.

use crate::client::Http;
use crate::smoke;
use anyhow::{Context, Result, bail};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where and how to reach the running router.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Its base URL (`http://host:port`), when it should be reloaded.
    pub reload_url: Option<String>,
    /// An admin token (for `POST /admin/config/reload`).
    pub admin_token: Option<String>,
    /// A caller token: runs the smoke checklist after the reload.
    pub smoke_token: Option<String>,
    /// Groups the smoke exercises (default: all the caller may use).
    pub smoke_groups: Vec<String>,
}

/// Exit codes of `promote`: promoted; refused or reload failed (nothing in force changed);
/// smoke failed and rolled back; rollback failed.
pub(crate) const EXIT_REFUSED: i32 = 1;
/// The smoke failed after the promotion, and the previous config is back in force.
pub(crate) const EXIT_ROLLED_BACK: i32 = 2;
/// The rollback itself failed: the operator must act.
pub(crate) const EXIT_ROLLBACK_FAILED: i32 = 3;

/// The directory of `to`'s backups.
fn backup_dir(to: &Path) -> PathBuf {
    to.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .join(".smart-router-backups")
}

fn file_name(to: &Path) -> String {
    to.file_name().map_or_else(
        || "config.toml".into(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// A backup id: the UTC time to the millisecond (`20261129T190412.123Z`), sortable.
fn backup_id(ms: i64) -> String {
    router::time::stamp_ms(ms)
}

/// `to`'s backups, oldest first: (id, path).
pub(crate) fn list(to: &Path) -> Vec<(String, PathBuf)> {
    let prefix = format!("{}.", file_name(to));
    let mut out: Vec<(String, PathBuf)> = std::fs::read_dir(backup_dir(to))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let id = name.strip_prefix(&prefix)?.to_string();
            (id.ends_with('Z') && !id.contains(".tmp")).then(|| (id, e.path()))
        })
        .collect();
    out.sort();
    out
}

/// Writes `text` to `path` atomically: a temporary file beside it, synced, then renamed over
/// it (readers see the old file or the new one, never a part).
fn replace(path: &Path, text: &str) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.tmp-{}", file_name(path), std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow::anyhow!("writing {}: {e}", path.display())
    })
}

/// Copies the config in force at `to` to a new backup; returns its id.
fn backup(to: &Path) -> Result<String> {
    let text = std::fs::read_to_string(to).with_context(|| format!("reading {}", to.display()))?;
    let dir = backup_dir(to);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut ms = router::time::now_ms();
    loop {
        let id = backup_id(ms);
        let path = dir.join(format!("{}.{id}", file_name(to)));
        if !path.exists() {
            replace(&path, &text)?;
            return Ok(id);
        }
        ms += 1;
    }
}

/// A TOML value flattened to `key path -> shown value`, arrays of tables keyed by identity
/// (`name`, or `provider/model` for targets), secrets shown as references only.
fn flatten(v: &toml::Value, path: &str, out: &mut BTreeMap<String, String>) {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        toml::Value::Array(a) if a.iter().all(toml::Value::is_table) && !a.is_empty() => {
            for (i, item) in a.iter().enumerate() {
                let t = item.as_table().expect("checked");
                let key = match (t.get("name"), t.get("provider"), t.get("model")) {
                    (Some(n), _, _) => n.as_str().unwrap_or("?").to_string(),
                    (_, Some(p), Some(m)) => {
                        format!(
                            "{}/{}",
                            p.as_str().unwrap_or("?"),
                            m.as_str().unwrap_or("?")
                        )
                    }
                    _ => i.to_string(),
                };
                flatten(item, &format!("{path}[{key}]"), out);
            }
        }
        other => {
            out.insert(path.to_string(), shown(path, other));
        }
    }
}

/// A leaf as the diff shows it: secrets by reference, never by value.
fn shown(path: &str, v: &toml::Value) -> String {
    let leaf = path.rsplit('.').next().unwrap_or(path);
    let secret = matches!(leaf, "api_key" | "token" | "token_sha256" | "password")
        || path.contains(".headers.");
    match v {
        toml::Value::String(s) if secret => {
            if s.starts_with("env:") || s.starts_with("file:") {
                format!("{s:?}")
            } else {
                // Inline: show that it is one and whether it changed, never the value.
                use sha2::Digest;
                let h = sha2::Sha256::digest(s.as_bytes());
                format!("(inline secret #{:02x}{:02x}{:02x})", h[0], h[1], h[2])
            }
        }
        toml::Value::String(s) if leaf == "url" || leaf == "backend" => {
            format!("{:?}", super::redact_url(s))
        }
        other => other.to_string(),
    }
}

/// The semantic difference from `old` to `new` (TOML texts), one change per line.
pub(crate) fn diff(old: &str, new: &str) -> Result<Vec<String>> {
    let parse = |t: &str| -> Result<BTreeMap<String, String>> {
        let v: toml::Value = toml::from_str(t).context("not TOML")?;
        let mut m = BTreeMap::new();
        flatten(&v, "", &mut m);
        Ok(m)
    };
    let (a, b) = (parse(old)?, parse(new)?);
    let mut out = Vec::new();
    for (k, v) in &a {
        match b.get(k) {
            None => out.push(format!("- {k} = {v}")),
            Some(w) if w != v => out.push(format!("~ {k}: {v} -> {w}")),
            _ => {}
        }
    }
    for (k, v) in &b {
        if !a.contains_key(k) {
            out.push(format!("+ {k} = {v}"));
        }
    }
    // Grouped by what they touch: providers, groups, callers, then the rest.
    let rank = |l: &str| {
        let k = &l[2..];
        ["providers", "groups", "callers"]
            .iter()
            .position(|p| k.starts_with(p))
            .unwrap_or(3)
    };
    out.sort_by(|x, y| rank(x).cmp(&rank(y)).then(x[2..].cmp(&y[2..])));
    Ok(out)
}

/// Validates a config file and its license as `serve` would; the errors, one per line.
fn validate(path: &Path) -> Result<(), String> {
    let config = super::load_config(path)?;
    router::license::load(&config, std::time::SystemTime::now()).map_err(|e| e.to_string())?;
    Ok(())
}

/// Asks the router to reload; returns the config hash it now serves.
async fn reload(target: &Target) -> Result<Option<String>, String> {
    let (Some(url), Some(token)) = (&target.reload_url, &target.admin_token) else {
        return Ok(None);
    };
    let http = Http::new(url, Duration::from_secs(60));
    let r = http
        .call(
            "POST",
            "/admin/config/reload",
            &[("authorization", format!("Bearer {token}"))],
            None,
        )
        .await?;
    if r.status != 200 {
        let j = r.json();
        let errors = j["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str())
                    .collect::<Vec<_>>()
                    .join("\n  ")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| r.error());
        return Err(format!("the router refused the reload:\n  {errors}"));
    }
    Ok(r.json()["config_hash"].as_str().map(str::to_string))
}

async fn run_smoke(target: &Target) -> Result<Option<smoke::Report>> {
    let (Some(url), Some(token)) = (&target.reload_url, &target.smoke_token) else {
        return Ok(None);
    };
    let report = smoke::run(smoke::Options {
        base_url: url.clone(),
        token: token.clone(),
        admin_token: target.admin_token.clone(),
        metrics_token: None,
        groups: target.smoke_groups.clone(),
        timeout: Duration::from_secs(120),
        agents: false,
        next: None,
    })
    .await?;
    Ok(Some(report))
}

fn sha256_hex(text: &str) -> String {
    use sha2::Digest;
    router::config::hex(&sha2::Sha256::digest(text.as_bytes()))
}

/// `promote`: returns the exit code.
pub(crate) async fn promote(from: &Path, to: &Path, target: &Target, dry_run: bool) -> Result<i32> {
    let candidate =
        std::fs::read_to_string(from).with_context(|| format!("reading {}", from.display()))?;
    if let Err(e) = validate(from) {
        eprintln!("{e}");
        eprintln!(
            "promote: {} is not valid; nothing was changed",
            from.display()
        );
        return Ok(EXIT_REFUSED);
    }
    let current = std::fs::read_to_string(to).ok();
    let changes = diff(current.as_deref().unwrap_or(""), &candidate)?;
    println!(
        "promote {} -> {}: {} change(s)",
        from.display(),
        to.display(),
        changes.len()
    );
    for c in &changes {
        println!("  {c}");
    }
    if dry_run {
        println!("dry run: nothing was changed");
        return Ok(0);
    }
    let backup_id = match current {
        Some(_) => Some(backup(to)?),
        None => None,
    };
    if let Some(id) = &backup_id {
        println!("backed up the config in force as {id}");
    }
    replace(to, &candidate)?;
    println!("wrote {}", to.display());
    let want = sha256_hex(&candidate);
    match reload(target).await {
        Ok(Some(hash)) if hash == want => println!("reloaded: the router serves {hash}"),
        Ok(Some(hash)) => {
            eprintln!(
                "the router reloaded to {hash}, not the promoted config ({want}): is --to the file it was started with?"
            );
            return restore(to, backup_id.as_deref(), target, None).await;
        }
        Ok(None) => println!("no --reload-url: the router picks the file up at its next reload"),
        Err(e) => {
            eprintln!("{e}");
            return restore(to, backup_id.as_deref(), target, None).await;
        }
    }
    match run_smoke(target).await? {
        None => Ok(0),
        Some(report) if report.failures() == 0 => {
            print!("{}", report.table());
            println!("promoted: smoke passed");
            Ok(0)
        }
        Some(report) => {
            println!("smoke after the promotion:");
            print!("{}", report.table());
            restore(to, backup_id.as_deref(), target, Some(report)).await
        }
    }
}

/// Puts backup `id` back in force after a failed promotion, reloads and reruns the smoke.
async fn restore(
    to: &Path,
    id: Option<&str>,
    target: &Target,
    failed: Option<smoke::Report>,
) -> Result<i32> {
    let Some(id) = id else {
        eprintln!(
            "no earlier config to roll back to ({} did not exist)",
            to.display()
        );
        return Ok(EXIT_ROLLBACK_FAILED);
    };
    let path = backup_dir(to).join(format!("{}.{id}", file_name(to)));
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    replace(to, &text)?;
    println!("rolled back: {} is backup {id} again", to.display());
    if let Err(e) = reload(target).await {
        eprintln!("the reload after the rollback failed: {e}");
        return Ok(EXIT_ROLLBACK_FAILED);
    }
    match run_smoke(target).await? {
        Some(after) => {
            println!("smoke after the rollback:");
            print!("{}", after.table());
            let summary = json!({
                "promotion_smoke_failures": failed.as_ref().map(smoke::Report::failures),
                "rollback_smoke_failures": after.failures(),
            });
            println!("{summary}");
            Ok(if after.failures() == 0 {
                EXIT_ROLLED_BACK
            } else {
                EXIT_ROLLBACK_FAILED
            })
        }
        None => Ok(if failed.is_some() {
            EXIT_ROLLED_BACK
        } else {
            EXIT_REFUSED
        }),
    }
}

/// `rollback`: puts backup `id` (default: the newest) back in force, after backing up what is
/// there now (so a rollback can itself be undone), and reloads.
pub(crate) async fn rollback(to: &Path, id: Option<&str>, target: &Target) -> Result<i32> {
    let backups = list(to);
    let chosen = match id {
        Some(id) => backups.iter().find(|(b, _)| b == id),
        None => backups.last(),
    };
    let Some((id, path)) = chosen.cloned() else {
        bail!(
            "no backup {} of {} in {}",
            id.unwrap_or("at all"),
            to.display(),
            backup_dir(to).display()
        );
    };
    if let Err(e) = validate(&path) {
        eprintln!("{e}");
        eprintln!("rollback: backup {id} is not valid (any more); nothing was changed");
        return Ok(EXIT_REFUSED);
    }
    let text = std::fs::read_to_string(&path)?;
    let current = std::fs::read_to_string(to).unwrap_or_default();
    for c in diff(&current, &text)? {
        println!("  {c}");
    }
    let saved = backup(to)?;
    println!("backed up the config in force as {saved}");
    replace(to, &text)?;
    println!("{} is backup {id} again", to.display());
    match reload(target).await {
        Ok(Some(hash)) => println!("reloaded: the router serves {hash}"),
        Ok(None) => {}
        Err(e) => {
            eprintln!("{e}");
            return Ok(EXIT_ROLLBACK_FAILED);
        }
    }
    match run_smoke(target).await? {
        Some(r) => {
            print!("{}", r.table());
            Ok(if r.failures() == 0 {
                0
            } else {
                EXIT_ROLLBACK_FAILED
            })
        }
        None => Ok(0),
    }
}

/// `backups`: lists `to`'s backups, newest last.
pub(crate) fn print_backups(to: &Path) {
    let all = list(to);
    if all.is_empty() {
        println!(
            "no backups of {} in {}",
            to.display(),
            backup_dir(to).display()
        );
        return;
    }
    println!("{:24}  {:>8}  sha256", "id", "bytes");
    for (id, path) in all {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        println!("{id:24}  {:>8}  {}", text.len(), &sha256_hex(&text)[..16]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_diff_is_semantic_and_never_shows_a_secret() {
        let old = r#"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-live-OLDSECRET"
[groups.coder]
strategy = "weighted"
[[groups.coder.targets]]
provider = "openai"
model = "gpt-a"
weight = 3
[[groups.coder.targets]]
provider = "openai"
model = "gpt-b"
weight = 1
[[callers]]
name = "app"
groups = ["coder"]
token = "env:APP_TOKEN"
"#;
        let new = r#"
[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key = "sk-live-NEWSECRET"
[groups.coder]
strategy = "priority"
[[groups.coder.targets]]
provider = "openai"
model = "gpt-b"
weight = 1
[[groups.coder.targets]]
provider = "openai"
model = "gpt-a"
weight = 5
[[callers]]
name = "app"
groups = ["coder", "fast"]
token = "env:APP_TOKEN_2"
"#;
        let d = diff(old, new).unwrap();
        let all = d.join("\n");
        assert!(!all.contains("SECRET"), "{all}");
        assert!(
            all.contains("~ providers.openai.api_key: (inline secret #"),
            "{all}"
        );
        assert!(
            all.contains("~ groups.coder.strategy: \"weighted\" -> \"priority\""),
            "{all}"
        );
        // Reordered targets are the same targets: only the weight changed.
        assert!(
            all.contains("~ groups.coder.targets[openai/gpt-a].weight: 3 -> 5"),
            "{all}"
        );
        assert!(!all.contains("gpt-b"), "{all}");
        assert!(
            all.contains("~ callers[app].token: \"env:APP_TOKEN\" -> \"env:APP_TOKEN_2\""),
            "{all}"
        );
        assert!(
            all.contains("~ callers[app].groups: [\"coder\"] -> [\"coder\", \"fast\"]"),
            "{all}"
        );
        assert_eq!(d.len(), 5, "{all}");
        assert!(d[0].contains("providers"), "providers first: {all}");
    }

    #[test]
    fn backup_ids_sort_by_time() {
        let a = backup_id(1_795_000_000_123);
        let b = backup_id(1_795_000_000_124);
        let c = backup_id(1_795_000_001_000);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert!(a.ends_with(".123Z"), "{a}");
    }
}
