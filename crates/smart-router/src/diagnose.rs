//! `smart-router diagnose`: the support bundle as a file. With an admin token (read from the
//! environment variable `--admin-token-env` names) the running router's own bundle is fetched
//! (`GET /admin/diagnostics`: live target health, store, limits, metrics, logs); without one,
//! or when the router does not answer, the bundle holds what the config alone tells — version,
//! the redacted config, `check-config`'s verdict, license status, store reachability, system —
//! and `live.txt` says why the live part is missing.

use anyhow::{Context, Result};
use router::admin::diagnostics;
use std::path::Path;
use std::time::Duration;

/// Writes the bundle to `out`; returns whether it holds the live part.
pub(crate) fn run(
    config_path: &Path,
    out: &Path,
    url: Option<String>,
    token_env: Option<&str>,
) -> Result<bool> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("{}: cannot read config file", config_path.display()))?;
    let parsed = router::config::parse(&text);
    let rt = super::runtime()?;
    let live = match (token_env, &parsed) {
        (None, _) => {
            Err("no --admin-token-env given: the running router was not asked".to_string())
        }
        (Some(var), parsed) => {
            let token = std::env::var(var)
                .map_err(|_| anyhow::anyhow!("environment variable {var} is not set"))?;
            let base = url.clone().or_else(|| {
                parsed
                    .as_ref()
                    .ok()
                    .map(|c| format!("http://{}", c.server.listen))
            });
            match base {
                None => Err("no --url and no valid config to find the router".to_string()),
                Some(base) => rt.block_on(async {
                    let http = super::client::Http::new(&base, Duration::from_secs(30));
                    let r = http
                        .call(
                            "GET",
                            "/admin/diagnostics",
                            &[("authorization", format!("Bearer {token}"))],
                            None,
                        )
                        .await?;
                    if r.status == 200 {
                        Ok(r.body)
                    } else {
                        Err(format!("{base}/admin/diagnostics: {}", r.error()))
                    }
                }),
            }
        }
    };
    match live {
        Ok(bundle) => {
            std::fs::write(out, &bundle).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} (from the running router)", out.display());
            Ok(true)
        }
        Err(why) => {
            let check = match &parsed {
                Ok(c) => match router::license::load(c, std::time::SystemTime::now()) {
                    Ok(_) => format!(
                        "{}: ok ({} providers, {} groups, {} callers)\n",
                        config_path.display(),
                        c.providers.len(),
                        c.groups.len(),
                        c.callers.len()
                    ),
                    Err(e) => format!("{e}\n"),
                },
                Err(e) => format!("{e}\n"),
            };
            let build = super::build_info();
            let mut files = diagnostics::base_files(&build, Some(&text), &check);
            let mut secrets = Vec::new();
            if let Ok(c) = &parsed {
                secrets = diagnostics::secrets(c);
                let license = match &c.license.path {
                    None => serde_json::json!({"status": "unlicensed"}),
                    Some(p) => match router::license::LicenseFile::read(p) {
                        Ok(l) => router::license::LicenseState::new(
                            Some(l),
                            router::license::system_clock(),
                        )
                        .report(None),
                        Err(e) => serde_json::json!({"status": "invalid", "error": e.to_string()}),
                    },
                };
                files.push(("license.json".into(), serde_json::to_vec_pretty(&license)?));
                let store = if c.store.url == "none" {
                    serde_json::json!({"kind": "none"})
                } else {
                    let reachable = rt.block_on(async {
                        let s = router::usage::store::open(&c.store.url).ok()?;
                        tokio::time::timeout(Duration::from_secs(3), s.ping())
                            .await
                            .ok()?
                            .ok()
                    });
                    serde_json::json!({
                        "url": diagnostics::without_password(&c.store.url),
                        "reachable": reachable.is_some(),
                    })
                };
                files.push(("store.json".into(), serde_json::to_vec_pretty(&store)?));
            }
            files.push(("live.txt".into(), format!("{why}\n").into_bytes()));
            let stamp = router::time::stamp_ms(router::time::now_ms());
            let bundle = diagnostics::tar_gz(
                &format!("smart-router-diagnostics-{stamp}"),
                &files,
                &secrets,
            );
            std::fs::write(out, bundle).with_context(|| format!("writing {}", out.display()))?;
            println!("wrote {} (from the config only: {why})", out.display());
            Ok(false)
        }
    }
}
