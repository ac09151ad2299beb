//! `backup` and `restore`. A backup is a directory `smart-router-backup-<time>` holding the
//! config file, the license, the usage store's snapshot (SQLite: `VACUUM INTO`; PostgreSQL:
//! `COPY` as CSV — both consistent while the router runs), secret files only with
//! `--include-secrets` (otherwise listed by reference), and `manifest.json` with the SHA-256
//! of every file, the router version and the schema version. `restore` checks every checksum
//! before it touches anything, refuses a newer schema and a non-empty target, restores, and
//! checks the restored config.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The manifest's format name.
const FORMAT: &str = "smart-router-backup-v1";

fn sha256_file(path: &Path) -> Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((router::config::hex(&h.finalize()), n))
}

/// Copies `from` to `to`, private (0600) when `secret`.
fn copy(from: &Path, to: &Path, secret: bool) -> Result<()> {
    let mut src =
        std::fs::File::open(from).with_context(|| format!("reading {}", from.display()))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(to)
        .with_context(|| format!("writing {}", to.display()))?;
    std::io::copy(&mut src, &mut dst).with_context(|| format!("writing {}", to.display()))?;
    dst.sync_all()?;
    Ok(())
}

/// Every `env:` / `file:` reference in a config text, with its key path.
fn references(text: &str) -> Vec<(String, String)> {
    fn walk(v: &toml::Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            toml::Value::String(s) if s.starts_with("env:") || s.starts_with("file:") => {
                out.push((path.to_string(), s.clone()));
            }
            toml::Value::Table(t) => {
                for (k, v) in t {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            toml::Value::Array(a) => {
                for (i, v) in a.iter().enumerate() {
                    walk(v, &format!("{path}[{i}]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = toml::from_str::<toml::Value>(text) {
        walk(&v, "", &mut out);
    }
    out
}

/// `backup`: returns the archive's directory.
pub(crate) async fn backup(
    config_path: &Path,
    out: &Path,
    include_secrets: bool,
) -> Result<PathBuf> {
    let config = super::load_config(config_path).map_err(anyhow::Error::msg)?;
    let text = std::fs::read_to_string(config_path)?;
    let now = router::time::now_ms();
    let archive = out.join(format!(
        "smart-router-backup-{}",
        router::time::stamp_ms(now)
    ));
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::create_dir(&archive).with_context(|| {
        format!(
            "creating {} (a backup of this second exists?)",
            archive.display()
        )
    })?;
    let mut files: Vec<Value> = Vec::new();
    let mut add = |name: &str, kind: &str| -> Result<()> {
        let (sha, bytes) = sha256_file(&archive.join(name))?;
        files.push(json!({"path": name, "kind": kind, "sha256": sha, "bytes": bytes}));
        Ok(())
    };
    copy(config_path, &archive.join("config.toml"), false)?;
    add("config.toml", "config")?;
    if let Some(l) = &config.license.path {
        copy(l, &archive.join("license.json"), false)?;
        add("license.json", "license")?;
    }
    let mut secrets = Vec::new();
    for (i, (key, reference)) in references(&text).into_iter().enumerate() {
        let mut entry = json!({"key": key, "reference": reference});
        if let (Some(path), true) = (reference.strip_prefix("file:"), include_secrets) {
            std::fs::create_dir_all(archive.join("secrets"))?;
            let name = format!(
                "secrets/{i}-{}",
                Path::new(path)
                    .file_name()
                    .map_or("secret".into(), |n| n.to_string_lossy().into_owned())
            );
            copy(Path::new(path), &archive.join(&name), true)?;
            add(&name, "secret")?;
            entry["copied_to"] = json!(name);
        }
        secrets.push(entry);
    }
    let mut store = json!(null);
    let mut capture_store = json!(null);
    if config.store.url != "none" {
        let s = router::usage::store::open(&config.store.url)?;
        s.migrate()
            .await
            .context("the usage store does not answer")?;
        let (name, records) = s
            .snapshot(&archive)
            .await
            .context("snapshotting the usage store")?;
        add(&name, "store")?;
        store = json!({"kind": s.kind(), "file": name, "records": records, "url": super::redact_url(&config.store.url)});
        // Captured content (its own table), one JSON object per line.
        let rows = s
            .all_captures()
            .await
            .context("reading the captured content")?;
        let mut text = String::new();
        for r in &rows {
            text.push_str(&serde_json::to_string(r)?);
            text.push('\n');
        }
        let file = "captured_content.jsonl";
        std::fs::write(archive.join(file), text)?;
        std::fs::set_permissions(
            archive.join(file),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        add(file, "captures")?;
        capture_store = json!({"file": file, "captures": rows.len()});
    }
    let manifest = json!({
        "format": FORMAT,
        "created_at": router::time::rfc3339_ms(now),
        "router_version": env!("CARGO_PKG_VERSION"),
        "schema_version": router::usage::store::SCHEMA_VERSION,
        "source_config": config_path.display().to_string(),
        "config_hash": config.hash,
        "store": store,
        "secret_references": secrets,
        "secrets_included": include_secrets,
        "capture_store": capture_store,
        "files": files,
    });
    let tmp = archive.join(".manifest.json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&manifest)?)?;
    std::fs::rename(&tmp, archive.join("manifest.json"))?;
    println!("backup written to {}", archive.display());
    for f in manifest["files"].as_array().unwrap() {
        println!(
            "  {:28} {:>10} bytes  sha256 {}",
            f["path"].as_str().unwrap(),
            f["bytes"],
            &f["sha256"].as_str().unwrap()[..16]
        );
    }
    if !store.is_null() {
        println!(
            "  usage store: {} records ({})",
            store["records"],
            store["kind"].as_str().unwrap()
        );
    }
    if !include_secrets && !secrets.is_empty() {
        println!(
            "  {} secret reference(s) listed, not copied (--include-secrets copies file: secrets)",
            secrets.len()
        );
    }
    Ok(archive)
}

/// `restore`.
pub(crate) async fn restore(from: &Path, to: &Path, store_url: Option<String>) -> Result<()> {
    let manifest_path = from.join("manifest.json");
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(&manifest_path).with_context(|| {
            format!(
                "{}: no manifest (is this a backup?)",
                manifest_path.display()
            )
        })?)
        .with_context(|| format!("{}: not JSON", manifest_path.display()))?;
    if manifest["format"] != FORMAT {
        bail!(
            "{}: format {} is not {FORMAT}",
            manifest_path.display(),
            manifest["format"]
        );
    }
    // Every file first: a missing or altered one refuses the restore before anything changes.
    let files = manifest["files"]
        .as_array()
        .context("manifest: no files list")?;
    for f in files {
        let name = f["path"]
            .as_str()
            .context("manifest: a file without a path")?;
        if name.contains("..") || name.starts_with('/') {
            bail!("manifest: file path {name:?} leaves the archive");
        }
        let path = from.join(name);
        if !path.exists() {
            bail!(
                "{}: listed in the manifest but missing from the archive",
                path.display()
            );
        }
        let (sha, bytes) = sha256_file(&path)?;
        if sha != f["sha256"].as_str().unwrap_or("") || Some(bytes) != f["bytes"].as_u64() {
            bail!(
                "{}: checksum mismatch (the archive was altered or damaged); nothing was restored",
                path.display()
            );
        }
    }
    let schema = manifest["schema_version"].as_u64().unwrap_or(u64::MAX);
    if schema > u64::from(router::usage::store::SCHEMA_VERSION) {
        bail!(
            "the backup's usage schema is version {schema}, newer than this router knows ({}): restore it with router {} or newer",
            router::usage::store::SCHEMA_VERSION,
            manifest["router_version"].as_str().unwrap_or("?")
        );
    }
    if to.exists() && std::fs::read_dir(to)?.next().is_some() {
        bail!(
            "{}: the restore target is not empty; restore into a new directory",
            to.display()
        );
    }
    let store = &manifest["store"];
    let target_url = match (store.is_null(), store_url, store["kind"].as_str()) {
        (true, _, _) => None,
        (false, Some(u), _) => Some(u),
        (false, None, Some("sqlite")) => {
            Some(format!("sqlite://{}", to.join("usage.db").display()))
        }
        (false, None, _) => bail!(
            "a PostgreSQL backup needs --store URL (an empty database or schema to load it into)"
        ),
    };
    std::fs::create_dir_all(to)?;
    let mut restored = Vec::new();
    for f in files {
        let name = f["path"].as_str().unwrap();
        let kind = f["kind"].as_str().unwrap_or("");
        if kind == "store" || kind == "captures" {
            continue;
        }
        let dest = to.join(name);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir)?;
        }
        copy(&from.join(name), &dest, kind == "secret")?;
        restored.push(format!("{name} ({kind})"));
    }
    if let Some(url) = &target_url {
        let file = store["file"]
            .as_str()
            .context("manifest: store without a file")?;
        // Loaded from a copy: the archive stays as it was (an old SQLite snapshot is migrated).
        let tmp = to.join(format!(".restore-{file}"));
        copy(&from.join(file), &tmp, false)?;
        let loaded =
            router::usage::store::load_snapshot(url, store["kind"].as_str().unwrap_or(""), &tmp)
                .await;
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
        }
        let n = loaded.with_context(|| {
            format!("loading the usage records into {}", super::redact_url(url))
        })?;
        let want = store["records"].as_u64().unwrap_or(0);
        if n != want {
            bail!("loaded {n} usage records, the backup holds {want}");
        }
        restored.push(format!("{n} usage records into {}", super::redact_url(url)));
        if let Some(file) = manifest["capture_store"]["file"].as_str() {
            let target = router::usage::store::open(url)?;
            let text = std::fs::read_to_string(from.join(file))
                .with_context(|| format!("reading {file}"))?;
            let mut n = 0u64;
            for line in text.lines().filter(|l| !l.is_empty()) {
                let c: router::usage::CapturedContent = serde_json::from_str(line)
                    .with_context(|| format!("{file}: a line is not a captured content row"))?;
                target.insert_capture(&c).await?;
                n += 1;
            }
            let want = manifest["capture_store"]["captures"].as_u64().unwrap_or(0);
            if n != want {
                bail!("loaded {n} captured contents, the backup holds {want}");
            }
            restored.push(format!(
                "{n} captured contents into {}",
                super::redact_url(url)
            ));
        }
    }
    println!("restored from {} into {}:", from.display(), to.display());
    for r in &restored {
        println!("  {r}");
    }
    if let Some(refs) = manifest["secret_references"]
        .as_array()
        .filter(|r| !r.is_empty())
    {
        println!("  secrets by reference (provide them where the config says):");
        for r in refs {
            println!(
                "    {} = {}",
                r["key"].as_str().unwrap_or("?"),
                r["reference"].as_str().unwrap_or("?")
            );
        }
    }
    let config = to.join("config.toml");
    match super::load_config(&config) {
        Ok(c) => {
            println!(
                "check-config {}: ok ({} providers, {} groups, {} callers)",
                config.display(),
                c.providers.len(),
                c.groups.len(),
                c.callers.len()
            );
            if let Some(url) = &target_url {
                if super::redact_url(url) != super::redact_url(&c.store.url) {
                    println!(
                        "  note: the config's store.url is {}; the records were loaded into {}",
                        super::redact_url(&c.store.url),
                        super::redact_url(url)
                    );
                }
            }
            if let Some(l) = &c.license.path {
                if manifest["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|f| f["kind"] == "license")
                {
                    println!(
                        "  note: the config reads its license from {}; the backup's copy is {}",
                        l.display(),
                        to.join("license.json").display()
                    );
                }
            }
        }
        Err(e) => println!(
            "check-config {}: problems (secrets or paths of the original machine?):\n{e}",
            config.display()
        ),
    }
    Ok(())
}
