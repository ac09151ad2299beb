//! `smart-router security-summary`: what a security review asks of a deployment, read from its
//! configuration alone — where each provider key and caller token comes from (inline flagged),
//! who holds the operator roles, what is stored and for how long (usage retention, content
//! capture), which PII policies apply where, that `/metrics` and admin endpoints always need
//! tokens, and the license state. Markdown (default) or JSON; never a secret's value.

use anyhow::{Context, Result};
use router::config::Config;
use router::config::raw::RawConfig;
use router::license::{LicenseFile, LicenseState};
use serde_json::{Value, json};
use std::path::Path;

/// Prints the summary of the config at `path`; exit status 1 when something is flagged.
pub(crate) fn run(path: &Path, json_out: bool) -> Result<bool> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read config file", path.display()))?;
    let raw: RawConfig = toml::from_str(&text).context("the config does not parse")?;
    let config = router::config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let summary = summarize(&raw, &config);
    let flagged = !summary["flags"].as_array().is_none_or(Vec::is_empty);
    if json_out {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", markdown(&summary));
    }
    Ok(!flagged)
}

/// Where a secret reference points: `env`, `file` or `inline` (the value is never shown).
fn source(reference: &str) -> (&'static str, Value) {
    if let Some(name) = reference.strip_prefix("env:") {
        ("env", json!(format!("env:{name}")))
    } else if let Some(p) = reference.strip_prefix("file:") {
        ("file", json!(format!("file:{p}")))
    } else {
        ("inline", Value::Null)
    }
}

fn summarize(raw: &RawConfig, config: &Config) -> Value {
    let mut flags = Vec::new();
    let providers: Vec<Value> = raw
        .providers
        .iter()
        .map(|(name, p)| {
            let (kind, reference) = p.api_key.as_deref().map_or(("none", Value::Null), source);
            if kind == "inline" {
                flags.push(format!(
                    "providers.{name}.api_key is written inline in the config file"
                ));
            }
            json!({"provider": name, "key_source": kind, "reference": reference})
        })
        .collect();
    let callers: Vec<Value> = raw
        .callers
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (kind, reference) = match (&c.token_sha256, &c.token) {
                (Some(_), _) => ("token_sha256", Value::Null),
                (None, Some(t)) => source(t),
                (None, None) => ("none", Value::Null),
            };
            if kind == "inline" {
                flags.push(format!(
                    "callers[{i}].token is written inline in the config file"
                ));
            }
            json!({"caller": c.name, "token_source": kind, "reference": reference,
                   "roles": c.roles})
        })
        .collect();
    let holders = |f: fn(&router::config::Roles) -> bool| -> Vec<&str> {
        config
            .callers
            .iter()
            .filter(|c| f(&c.roles))
            .map(|c| c.name.as_str())
            .collect()
    };
    let backend = match config.store.url.split("://").next() {
        Some("sqlite") => "sqlite",
        Some("postgres" | "postgresql") => "postgresql",
        _ => "none",
    };
    let pii: Vec<Value> = config
        .pii_policies
        .iter()
        .map(|p| {
            let list = |s: &Option<std::collections::HashSet<String>>| {
                s.as_ref().map(|s| {
                    let mut v: Vec<&String> = s.iter().collect();
                    v.sort();
                    json!(v)
                })
            };
            let groups = groups_covered(config, &p.applies);
            json!({
                "name": p.name.as_ref(),
                "applies_to": {
                    "groups": list(&p.applies.groups).unwrap_or(json!("*")),
                    "callers": list(&p.applies.callers),
                    "projects": list(&p.applies.projects),
                    "teams": list(&p.applies.teams),
                    "environments": list(&p.applies.environments),
                },
                "groups_covered": groups,
                "detect": p.kinds,
                "action": p.action.as_str(),
                "responses": match p.responses {
                    router::pii::ResponseMode::Restore => "restore",
                    router::pii::ResponseMode::Redact => "redact",
                    router::pii::ResponseMode::Off => "off",
                },
            })
        })
        .collect();
    let policies: Vec<Value> = config
        .policies
        .iter()
        .map(|p| {
            let groups = groups_covered(config, &p.applies);
            json!({
                "name": p.name.as_ref(),
                "service": p.shown_url(),
                "groups_covered": groups,
                "on_error": match p.on_error {
                    router::config::policies::PolicyOnError::Allow => "allow (fails open)",
                    router::config::policies::PolicyOnError::Deny => "deny (fails closed)",
                },
                "mode": if p.shadow { "shadow" } else { "enforce" },
                "sends": if p.send_content {
                    "rule variables; request text where a capture policy captures"
                } else {
                    "rule variables only (no content, never tokens or keys)"
                },
            })
        })
        .collect();
    let rules: Vec<Value> = config
        .groups
        .iter()
        .filter(|g| !g.rules.is_empty())
        .map(|g| json!({"group": g.name, "rules": g.rules.iter().map(|r| r.name.as_ref()).collect::<Vec<_>>()}))
        .collect();
    let license = license(config, &mut flags);
    json!({
        "config_hash": config.hash,
        "provider_keys": providers,
        "caller_tokens": callers,
        "roles": {
            "admin": holders(|r| r.admin),
            "report_admin": holders(|r| r.report_admin),
            "metrics_admin": holders(|r| r.metrics_admin),
        },
        "endpoints": {
            "metrics": "GET /metrics requires a metrics-admin or admin token (always)",
            "admin": "/admin/* requires an admin token; reports, request lookups and limits also accept report-admin (always)",
            "unauthenticated": ["GET /healthz", "GET /readyz", "GET /version"],
            "console": if config.server.console {
                "/console: sign-in with an admin, report-admin or metrics-admin token (HttpOnly, SameSite=Strict session cookie); each page for the roles its API allows"
            } else {
                "/console: off (server.console = false)"
            },
        },
        "telemetry": match &config.telemetry.traces_url {
            None => json!("off: no traces leave the router"),
            Some(url) => json!({
                "traces_to": router::admin::diagnostics::without_password(url),
                "sampling_ratio": config.telemetry.sampling_ratio,
                "sends": "span names, timings, group/model/provider names, token counts, status, caller project (never prompt or response text, tokens or keys)",
            }),
        },
        "usage_store": {
            "backend": backend,
            "retention_days": (config.store.retention_days > 0).then_some(config.store.retention_days),
            "content": "usage records hold no prompt or response text",
        },
        "content_capture": capture(config, &mut flags),
        "pii_policies": pii,
        "external_policies": policies,
        "routing_rules": rules,
        "license": license,
        "flags": flags,
    })
}

/// The names of the groups a policy's `applies_to` covers.
fn groups_covered<'c>(
    config: &'c Config,
    applies: &router::config::pii::AppliesTo,
) -> Vec<&'c str> {
    config
        .groups
        .iter()
        .filter(|g| router::config::pii::covers_group(applies, g))
        .map(|g| g.name.as_str())
        .collect()
}

/// Every capture policy, where it applies, what it stores and for how long.
fn capture(config: &Config, flags: &mut Vec<String>) -> Value {
    let policies: Vec<Value> = config
        .capture_policies
        .iter()
        .enumerate()
        .map(|(i, p)| {
            if !p.redact_pii && p.capture != router::config::capture::CaptureMode::None {
                flags.push(format!(
                    "capture_policies[{i}] ({}) stores raw content (redact_pii = false)",
                    p.name
                ));
            }
            json!({
                "name": p.name.as_ref(),
                "capture": p.capture.as_str(),
                "sample_rate": match p.capture {
                    router::config::capture::CaptureMode::Sampled(r) => json!(r),
                    _ => Value::Null,
                },
                "groups_covered": groups_covered(config, &p.applies),
                "projects": p.applies.projects.as_ref().map(|s| { let mut v: Vec<&String> = s.iter().collect(); v.sort(); v }),
                "max_body_bytes": p.max_body_bytes,
                "retention_days": p.retention_days,
                "redact_pii": p.redact_pii,
            })
        })
        .collect();
    let stored = if policies.is_empty() {
        "none: prompts and responses are never stored".to_string()
    } else {
        format!(
            "{} capture polic{} (table captured_content; read by admins only)",
            policies.len(),
            if policies.len() == 1 { "y" } else { "ies" }
        )
    };
    json!({"policies": policies, "stored": stored})
}

fn license(config: &Config, flags: &mut Vec<String>) -> Value {
    let Some(path) = &config.license.path else {
        return json!({"status": "unlicensed", "note": "unlicensed evaluation: every feature, one instance"});
    };
    match LicenseFile::read(path) {
        Err(e) => {
            flags.push(format!("license: {e}"));
            json!({"status": "invalid", "error": e.to_string()})
        }
        Ok(l) => {
            let state = LicenseState::new(Some(l), router::license::system_clock());
            let report = state.report(None);
            let status = state.status().as_str();
            if !matches!(status, "licensed") {
                flags.push(format!("license status is {status}"));
            }
            report
        }
    }
}

fn markdown(s: &Value) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let str_of = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    };
    let _ = writeln!(out, "# Security and retention summary\n");
    let _ = writeln!(out, "Config hash: `{}`\n", str_of(&s["config_hash"]));
    let _ = writeln!(
        out,
        "## Provider keys\n\n| provider | source | reference |\n| --- | --- | --- |"
    );
    for p in s["provider_keys"].as_array().into_iter().flatten() {
        let src = str_of(&p["key_source"]);
        let mark = if src == "inline" {
            " **(inline: flagged)**"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {} | {src}{mark} | {} |",
            str_of(&p["provider"]),
            str_of(&p["reference"])
        );
    }
    let _ = writeln!(
        out,
        "\n## Caller tokens\n\n| caller | source | roles |\n| --- | --- | --- |"
    );
    for c in s["caller_tokens"].as_array().into_iter().flatten() {
        let src = str_of(&c["token_source"]);
        let mark = if src == "inline" {
            " **(inline: flagged)**"
        } else {
            ""
        };
        let roles: Vec<String> = c["roles"]
            .as_array()
            .into_iter()
            .flatten()
            .map(str_of)
            .collect();
        let roles = if roles.is_empty() {
            "caller".to_string()
        } else {
            roles.join(", ")
        };
        let _ = writeln!(out, "| {} | {src}{mark} | {roles} |", str_of(&c["caller"]));
    }
    let _ = writeln!(out, "\n## Operator roles\n");
    for (role, key) in [
        ("admin", "admin"),
        ("report-admin", "report_admin"),
        ("metrics-admin", "metrics_admin"),
    ] {
        let names: Vec<String> = s["roles"][key]
            .as_array()
            .into_iter()
            .flatten()
            .map(str_of)
            .collect();
        let _ = writeln!(
            out,
            "- {role}: {}",
            if names.is_empty() {
                "nobody".into()
            } else {
                names.join(", ")
            }
        );
    }
    let _ = writeln!(out, "\n## Endpoints\n");
    let _ = writeln!(out, "- {}", str_of(&s["endpoints"]["metrics"]));
    let _ = writeln!(out, "- {}", str_of(&s["endpoints"]["admin"]));
    let _ = writeln!(out, "- without a token: /healthz, /readyz, /version");
    let _ = writeln!(out, "- {}", str_of(&s["endpoints"]["console"]));
    let _ = writeln!(out, "\n## Telemetry\n");
    match &s["telemetry"] {
        Value::String(t) => {
            let _ = writeln!(out, "- {t}");
        }
        t => {
            let _ = writeln!(
                out,
                "- traces to {} (sampling {}): {}",
                str_of(&t["traces_to"]),
                t["sampling_ratio"],
                str_of(&t["sends"])
            );
        }
    }
    let st = &s["usage_store"];
    let _ = writeln!(out, "\n## Retention\n");
    let _ = writeln!(
        out,
        "- usage store: {}; retention: {}; {}",
        str_of(&st["backend"]),
        if st["retention_days"].is_null() {
            "kept until purged".to_string()
        } else {
            format!("{} days", st["retention_days"])
        },
        str_of(&st["content"])
    );
    let _ = writeln!(
        out,
        "- content capture: {}",
        str_of(&s["content_capture"]["stored"])
    );
    for p in s["content_capture"]["policies"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            out,
            "  - `{}`: {} on groups {}, kept {} days, max {} bytes per body, PII {}",
            str_of(&p["name"]),
            str_of(&p["capture"]),
            str_of(&p["groups_covered"]),
            str_of(&p["retention_days"]),
            str_of(&p["max_body_bytes"]),
            if p["redact_pii"] == true {
                "redacted"
            } else {
                "**raw (flagged)**"
            },
        );
    }
    let _ = writeln!(out, "\n## PII policies\n");
    let pii = s["pii_policies"].as_array().cloned().unwrap_or_default();
    if pii.is_empty() {
        let _ = writeln!(out, "None: request text goes to providers unfiltered.");
    }
    for p in pii {
        let a = &p["applies_to"];
        let mut scope: Vec<String> = Vec::new();
        for k in ["groups", "callers", "projects", "teams", "environments"] {
            if !a[k].is_null() {
                scope.push(format!("{k} {}", str_of(&a[k])));
            }
        }
        let _ = writeln!(
            out,
            "- `{}`: {} on {}; answers: {}; detects {}; covers groups {}",
            str_of(&p["name"]),
            str_of(&p["action"]),
            scope.join(", "),
            str_of(&p["responses"]),
            str_of(&p["detect"]),
            str_of(&p["groups_covered"]),
        );
    }
    let _ = writeln!(out, "\n## External policies and routing rules\n");
    let policies = s["external_policies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if policies.is_empty() {
        let _ = writeln!(out, "- no external policy service is asked");
    }
    for p in policies {
        let _ = writeln!(
            out,
            "- `{}` at {}: {}; on_error {}; {} mode; covers groups {}",
            str_of(&p["name"]),
            str_of(&p["service"]),
            str_of(&p["sends"]),
            str_of(&p["on_error"]),
            str_of(&p["mode"]),
            str_of(&p["groups_covered"]),
        );
    }
    for r in s["routing_rules"].as_array().cloned().unwrap_or_default() {
        let _ = writeln!(
            out,
            "- group `{}` routing rules (evaluated in the router): {}",
            str_of(&r["group"]),
            str_of(&r["rules"]),
        );
    }
    let l = &s["license"];
    let _ = writeln!(out, "\n## License\n\n- status: {}", str_of(&l["status"]));
    for k in ["license_id", "customer", "expires_at"] {
        if !l[k].is_null() {
            let _ = writeln!(out, "- {k}: {}", str_of(&l[k]));
        }
    }
    let flags = s["flags"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\n## Flags\n");
    if flags.is_empty() {
        let _ = writeln!(out, "None.");
    }
    for f in flags {
        let _ = writeln!(out, "- {}", str_of(&f));
    }
    out
}
