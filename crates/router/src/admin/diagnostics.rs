//! The support bundle (`GET /admin/diagnostics`, `smart-router diagnose`): what support needs to
//! diagnose a deployment, as a `.tar.gz`, with no secret and no content in it — version, the
//! config with every secret replaced by its reference (`env:NAME`, `file:PATH`, or
//! `(inline secret)`) and token hashes cut, `check-config`'s verdict, target health and
//! cooldowns, store and spool status, license status, limits backend status, a metrics
//! snapshot, the last log lines, recent errors by class, and OS/CPU/memory. As a last guard,
//! every secret value the process knows (provider keys and header values, the store's and the
//! limits backend's passwords) is replaced by `***` in every file before it is packed.

use crate::config::Config;
use crate::state::AppState;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::Write;
use std::sync::Mutex;

/// Log lines kept for the bundle.
const LOG_LINES: usize = 500;

/// The process's last log lines (fed by the binary's log writer).
#[derive(Debug, Default)]
pub struct LogTail {
    lines: Mutex<VecDeque<String>>,
}

/// The process-wide log tail.
pub static LOG_TAIL: LogTail = LogTail {
    lines: Mutex::new(VecDeque::new()),
};

impl LogTail {
    /// Keeps the lines of `chunk` (the oldest beyond [`LOG_LINES`] are dropped).
    pub fn push(&self, chunk: &[u8]) {
        let text = String::from_utf8_lossy(chunk);
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        for l in text.lines().filter(|l| !l.is_empty()) {
            if lines.len() == LOG_LINES {
                lines.pop_front();
            }
            lines.push_back(l.to_string());
        }
    }

    /// The kept lines, oldest first.
    pub fn text(&self) -> String {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for l in lines.iter() {
            out.push_str(l);
            out.push('\n');
        }
        out
    }
}

/// One file of the bundle.
pub type BundleFile = (String, Vec<u8>);

/// The config text with every secret replaced by its reference and token hashes cut: provider
/// `api_key` and header values, caller `token` and `token_sha256`, passwords in `store.url` and
/// `limits.backend`. Text that does not parse is not included.
pub fn redact_config(text: &str) -> String {
    let Ok(mut v) = text.parse::<toml::Table>() else {
        return "# the config file does not parse; not included\n".into();
    };
    let reference = |s: &str| {
        if s.starts_with("env:") || s.starts_with("file:") {
            s.to_string()
        } else {
            "(inline secret)".to_string()
        }
    };
    if let Some(toml::Value::Table(providers)) = v.get_mut("providers") {
        for (_, p) in providers.iter_mut() {
            if let Some(toml::Value::String(k)) = p.get_mut("api_key") {
                *k = reference(k);
            }
            if let Some(toml::Value::Table(h)) = p.get_mut("headers") {
                for (_, hv) in h.iter_mut() {
                    if let toml::Value::String(s) = hv {
                        *s = reference(s);
                    }
                }
            }
        }
    }
    if let Some(toml::Value::Array(callers)) = v.get_mut("callers") {
        for c in callers.iter_mut() {
            if let Some(toml::Value::String(t)) = c.get_mut("token") {
                *t = reference(t);
            }
            if let Some(toml::Value::String(h)) = c.get_mut("token_sha256") {
                *h = format!("{}…", &h[..h.len().min(8)]);
            }
        }
    }
    if let Some(toml::Value::Array(policies)) = v.get_mut("policies") {
        for p in policies.iter_mut() {
            if let Some(toml::Value::Table(h)) = p.get_mut("headers") {
                for (_, hv) in h.iter_mut() {
                    if let toml::Value::String(s) = hv {
                        *s = reference(s);
                    }
                }
            }
            if let Some(toml::Value::String(u)) = p.get_mut("url") {
                *u = without_password(u);
            }
        }
    }
    if let Some(toml::Value::Table(h)) = v.get_mut("telemetry").and_then(|t| t.get_mut("headers")) {
        for (_, hv) in h.iter_mut() {
            if let toml::Value::String(s) = hv {
                *s = reference(s);
            }
        }
    }
    for (section, key) in [
        ("store", "url"),
        ("limits", "backend"),
        ("telemetry", "otlp_endpoint"),
    ] {
        if let Some(toml::Value::String(u)) = v.get_mut(section).and_then(|s| s.get_mut(key)) {
            *u = without_password(u);
        }
    }
    toml::to_string_pretty(&v).unwrap_or_default()
}

/// A URL with its password (`user:password@`) replaced by `***`.
pub fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((auth, host)) if auth.contains(':') => {
            let user = auth.split_once(':').map_or(auth, |(u, _)| u);
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// The password of a URL, if it has one.
fn password(url: &str) -> Option<String> {
    let (_, rest) = url.split_once("://")?;
    let (auth, _) = rest.split_once('@')?;
    let (_, pw) = auth.split_once(':')?;
    (!pw.is_empty()).then(|| pw.to_string())
}

/// Every secret value `config` holds, for the final scrub.
pub fn secrets(config: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for p in &config.providers {
        if let Some(k) = &p.api_key {
            out.push(k.expose().to_string());
        }
        for (_, v) in &p.headers {
            if let Ok(v) = v.to_str() {
                out.push(v.to_string());
            }
        }
    }
    for (_, v) in &config.telemetry.headers {
        if let Ok(v) = v.to_str() {
            out.push(v.to_string());
        }
    }
    out.extend(password(&config.store.url));
    out.extend(config.limits.redis_url.as_deref().and_then(password));
    out.extend(config.telemetry.traces_url.as_deref().and_then(password));
    out.retain(|s| s.len() >= 4);
    out
}

/// OS, CPU and memory of the machine, and this process's memory.
pub fn system() -> Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|s| s.trim_matches('"').to_string());
    let cpu = read("/proc/cpuinfo").lines().find_map(|l| {
        l.strip_prefix("model name")
            .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
    });
    let meminfo = read("/proc/meminfo");
    let mem = |key: &str| {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
    };
    let status = read("/proc/self/status");
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok());
    json!({
        "os": os,
        "kernel": read("/proc/sys/kernel/osrelease").trim(),
        "arch": std::env::consts::ARCH,
        "cpu_model": cpu,
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "memory_total_kb": mem("MemTotal:"),
        "memory_available_kb": mem("MemAvailable:"),
        "process_rss_kb": rss,
        "uptime_s": read("/proc/uptime").split_whitespace().next().and_then(|s| s.parse::<f64>().ok()),
    })
}

/// Recent errors by class, from the metrics text (`smart_router_errors_total{kind=...}`).
fn errors_by_class(metrics: &str) -> Value {
    let mut by: std::collections::BTreeMap<String, f64> = Default::default();
    for l in metrics
        .lines()
        .filter(|l| l.starts_with("smart_router_errors_total{"))
    {
        let kind = l
            .split("kind=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?");
        let n: f64 = l
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        *by.entry(kind.to_string()).or_default() += n;
    }
    json!(by)
}

/// The files only a running router has: targets, store, limits, license, metrics, errors, logs.
pub async fn live_files(state: &AppState) -> Vec<BundleFile> {
    let mut targets = Vec::new();
    for g in &state.config.groups {
        for t in &g.targets {
            let provider = &state.config.providers[t.provider];
            targets.push(json!({
                "group": g.name,
                "provider": provider.name,
                "model": t.model,
                "target_id": t.id,
                "healthy": state.health.cooling(t.id).is_none(),
                "cooldown_remaining_ms": state.health.cooling(t.id).map(|d| d.as_millis() as u64),
                "latency_ewma_ms": state.health.ttfb(t.id).map(|d| d.as_secs_f64() * 1000.0),
            }));
        }
    }
    let store = match (&state.store, state.recorder.writer()) {
        (Some(s), Some(w)) => {
            use std::sync::atomic::Ordering::Relaxed;
            let ping = tokio::time::timeout(std::time::Duration::from_secs(2), s.ping()).await;
            json!({
                "kind": s.kind(),
                "reachable": matches!(ping, Ok(Ok(()))),
                "writer": {
                    "written": w.stats.written.load(Relaxed),
                    "dropped": w.stats.dropped.load(Relaxed),
                    "store_up": w.stats.store_up.load(Relaxed),
                    "spool_bytes": w.stats.spool_bytes.load(Relaxed),
                    "spool_full": w.stats.spool_full.load(Relaxed),
                    "spool_rejected_lines": w.stats.spool_rejected.load(Relaxed),
                },
                "captures_dropped": state.recorder.captures().map(|c| c.dropped()),
            })
        }
        (Some(s), None) => json!({"kind": s.kind()}),
        _ => json!({"kind": "none"}),
    };
    let limits = match &state.limits {
        Some(l) => json!({
            "backend": if state.config.limits.redis_url.is_some() { "redis" } else { "memory" },
            "backend_up": l.backend_up(),
            "report": l.report(state.auth.callers()).await,
        }),
        None => json!({"backend": null}),
    };
    let license = state.license.report(state.license.live_instances().await);
    let metrics = state.recorder.metrics.encode();
    let pretty = |v: &Value| serde_json::to_vec_pretty(v).unwrap_or_default();
    vec![
        ("targets.json".into(), pretty(&json!(targets))),
        ("store.json".into(), pretty(&store)),
        ("limits.json".into(), pretty(&limits)),
        ("license.json".into(), pretty(&license)),
        (
            "errors_by_class.json".into(),
            pretty(&errors_by_class(&metrics)),
        ),
        ("metrics.txt".into(), metrics.into_bytes()),
        ("logs.txt".into(), LOG_TAIL.text().into_bytes()),
    ]
}

/// The files any bundle has: version, redacted config, `check-config`'s verdict, system.
pub fn base_files(
    build: &crate::state::BuildInfo,
    config_text: Option<&str>,
    check: &str,
) -> Vec<BundleFile> {
    let version = json!({
        "version": build.version,
        "commit": build.commit,
        "build_date": build.build_date,
        "created_at": crate::time::rfc3339_ms(crate::time::now_ms()),
    });
    vec![
        (
            "version.json".into(),
            serde_json::to_vec_pretty(&version).unwrap_or_default(),
        ),
        (
            "config.redacted.toml".into(),
            config_text
                .map_or_else(|| "# no config file\n".into(), redact_config)
                .into_bytes(),
        ),
        ("check-config.txt".into(), check.as_bytes().to_vec()),
        (
            "system.json".into(),
            serde_json::to_vec_pretty(&system()).unwrap_or_default(),
        ),
    ]
}

/// Packs `files` as a gzip'd tar under `dir/`, every occurrence of a `secrets` value replaced
/// by `***` first.
pub fn tar_gz(dir: &str, files: &[BundleFile], secrets: &[String]) -> Vec<u8> {
    let mut tar = Vec::new();
    let mtime = (crate::time::now_ms() / 1000).max(0) as u64;
    for (name, body) in files {
        let body = scrub(body, secrets);
        let mut h = [0u8; 512];
        let path = format!("{dir}/{name}");
        let p = path.as_bytes();
        h[..p.len().min(100)].copy_from_slice(&p[..p.len().min(100)]);
        let octal = |h: &mut [u8; 512], at: usize, width: usize, v: u64| {
            let s = format!("{v:0w$o}\0", w = width - 1);
            h[at..at + width].copy_from_slice(s.as_bytes());
        };
        octal(&mut h, 100, 8, 0o644);
        octal(&mut h, 108, 8, 0);
        octal(&mut h, 116, 8, 0);
        octal(&mut h, 124, 12, body.len() as u64);
        octal(&mut h, 136, 12, mtime);
        h[156] = b'0';
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let s = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(s.as_bytes());
        tar.extend_from_slice(&h);
        tar.extend_from_slice(&body);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).expect("writing to memory");
    gz.finish().expect("writing to memory")
}

/// `body` with every occurrence of each secret replaced by `***`.
fn scrub(body: &[u8], secrets: &[String]) -> Vec<u8> {
    let mut out = body.to_vec();
    for s in secrets {
        let needle = s.as_bytes();
        if memchr::memmem::find(&out, needle).is_none() {
            continue;
        }
        let mut next = Vec::with_capacity(out.len());
        let mut at = 0;
        for i in memchr::memmem::find_iter(&out, needle) {
            if i < at {
                continue;
            }
            next.extend_from_slice(&out[at..i]);
            next.extend_from_slice(b"***");
            at = i + needle.len();
        }
        next.extend_from_slice(&out[at..]);
        out = next;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_references_and_loses_secrets() {
        let text = r#"
[store]
url = "postgres://app:pg-s3cret@db:5432/usage"
[limits]
backend = "redis://:redis-s3cret@cache:6379/0"
[providers.a]
kind = "openai"
api_key = "sk-inline-secret-value"
headers = { "x-org" = "env:ORG_HEADER", "x-key" = "inline-header-secret" }
[providers.b]
kind = "openai"
api_key = "env:OPENAI_KEY"
[[callers]]
name = "c"
token = "inline-caller-token"
[[callers]]
name = "d"
token_sha256 = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"
"#;
        let out = redact_config(text);
        for secret in [
            "pg-s3cret",
            "redis-s3cret",
            "sk-inline-secret-value",
            "inline-header-secret",
            "inline-caller-token",
            "3413422d7064",
        ] {
            assert!(!out.contains(secret), "{secret} in\n{out}");
        }
        for kept in [
            "env:ORG_HEADER",
            "env:OPENAI_KEY",
            "postgres://app:***@db:5432/usage",
            "2c26b46b…",
            "(inline secret)",
        ] {
            assert!(out.contains(kept), "{kept} missing in\n{out}");
        }
    }

    #[test]
    fn the_bundle_is_a_tar_gz_with_secrets_scrubbed() {
        let files = vec![(
            "a.txt".to_string(),
            b"key=sk-zzz-secret and sk-zzz-secret!".to_vec(),
        )];
        let gz = tar_gz("bundle", &files, &["sk-zzz-secret".to_string()]);
        let mut tar = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut tar).unwrap();
        assert_eq!(&tar[..12], b"bundle/a.txt");
        assert_eq!(&tar[257..262], b"ustar");
        let body = &tar[512..512 + 16];
        assert_eq!(body, b"key=*** and ***!");
    }
}
