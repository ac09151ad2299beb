//! `smart-router explain` for a described request: which of its group's rules match (each
//! evaluated, in order, as the router would), what each external policy that applies would be
//! asked, and the attempt plan that results — every target taken as healthy.

use crate::config::rules::{Route, RuleOnError};
use crate::config::{CallerConfig, Config};
use crate::routing::{Affinity, Health, RequestSummary, RoutingState};
use std::fmt::Write;
use std::time::{Duration, SystemTime};

/// A request described on the command line.
#[derive(Debug)]
pub struct Described<'a> {
    /// The caller (its project, team and environment come from the config).
    pub caller: Option<&'a CallerConfig>,
    /// The client software (`codex`, `claude-code`, ...).
    pub client: &'a str,
    /// The caller's dialect.
    pub surface: dialects::Dialect,
    /// Request headers (only `rules_headers` are read).
    pub headers: &'a http::HeaderMap,
    /// The routing summary (group, needs, tokens...).
    pub summary: &'a RequestSummary,
}

/// The explanation as text; `Err` names a group that does not exist.
pub fn explain(config: &Config, d: &Described<'_>) -> Result<String, String> {
    let gi = config
        .group_index(&d.summary.group)
        .ok_or_else(|| format!("no group named {:?}", d.summary.group))?;
    let group = &config.groups[gi];
    let health = Health::new(config.target_count, &config.routing);
    let target = |i: usize| health.state(config.target(config.rule_targets[i]).id);
    let caller = d.caller;
    let subject = crate::rules::Subject {
        caller: caller.map_or("", |c| c.name.as_str()),
        project: caller.and_then(|c| c.project.as_deref()),
        team: caller.and_then(|c| c.team.as_deref()),
        environment: caller.and_then(|c| c.environment.as_deref()),
        surface: d.surface.as_str(),
        client: d.client,
        group: &group.name,
        stream: d.summary.stream,
        has_tools: d.summary.needs.tools,
        has_images: d.summary.needs.images,
        json_schema: d.summary.needs.json_schema,
        estimated_input_tokens: d.summary.estimated_prompt_tokens,
        max_output_tokens: d.summary.max_output_tokens,
        reasoning_effort: d.summary.reasoning_effort,
        headers: d.headers,
        now: SystemTime::now(),
        target: &target,
    };
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(
        w,
        "request: caller {}, client {}, surface {}, group {}",
        caller.map_or("(none)", |c| c.name.as_str()),
        d.client,
        d.surface.as_str(),
        group.name
    );
    let mut decided: Option<(&str, &Route)> = None;
    if group.rules.is_empty() {
        let _ = writeln!(w, "rules: none in group {}", group.name);
    } else {
        let _ = writeln!(
            w,
            "rules of group {} (first enforced match decides):",
            group.name
        );
        for (i, r) in group.rules.iter().enumerate() {
            let mode = if r.shadow { " [shadow]" } else { "" };
            let verdict = if decided.is_some() {
                "not evaluated (an earlier rule decided)".to_string()
            } else {
                match r.when.eval(&subject, &config.rule_schema) {
                    Ok(true) if r.shadow => {
                        format!("matches (shadow: {})", route_text(config, &r.route))
                    }
                    Ok(true) => {
                        decided = Some((&r.name, &r.route));
                        format!("MATCHES: {}", route_text(config, &r.route))
                    }
                    Ok(false) => "no match".into(),
                    Err(e) => match r.on_error {
                        RuleOnError::Skip => format!("error ({e}): skipped"),
                        RuleOnError::Deny => format!("error ({e}): denies"),
                    },
                }
            };
            let _ = writeln!(
                w,
                "  {}. {}{mode}  when {}  -> {verdict}",
                i + 1,
                r.name,
                r.source
            );
        }
    }
    let caller_applies = |p: &crate::config::pii::AppliesTo| {
        p.covers(
            caller.map_or("", |c| c.name.as_str()),
            caller.and_then(|c| c.project.as_deref()),
            caller.and_then(|c| c.team.as_deref()),
            caller.and_then(|c| c.environment.as_deref()),
            &group.name,
        )
    };
    let policies: Vec<_> = config
        .policies
        .iter()
        .filter(|p| caller_applies(&p.applies))
        .collect();
    if policies.is_empty() {
        let _ = writeln!(w, "policies: none apply");
    } else {
        let input = super::external::input(&subject, config, gi, decided.map(|(n, _)| n));
        for p in policies {
            let _ = writeln!(
                w,
                "policy {} ({}, on_error={}, timeout {} ms{}) would be asked at {}:",
                p.name,
                if p.shadow { "shadow" } else { "enforce" },
                match p.on_error {
                    crate::config::policies::PolicyOnError::Allow => "allow",
                    crate::config::policies::PolicyOnError::Deny => "deny",
                },
                p.timeout.as_millis(),
                if p.cache_ttl.is_zero() {
                    String::new()
                } else {
                    format!(", cached {} ms", p.cache_ttl.as_millis())
                },
                p.shown_url()
            );
            let body = serde_json::json!({ "input": input });
            let _ = writeln!(
                w,
                "  {}",
                serde_json::to_string_pretty(&body)
                    .expect("JSON serializes")
                    .replace('\n', "\n  ")
            );
        }
    }
    let _ = writeln!(
        w,
        "plan (every target healthy; a policy's answer may still change it):"
    );
    match decided {
        Some((_, Route::Deny(reason))) => {
            let _ = writeln!(w, "  denied: 403 policy_denied \"{reason}\"");
        }
        Some((_, Route::Targets(targets))) => {
            let affinity = Affinity::new(1, Duration::ZERO);
            let state = RoutingState {
                health: &health,
                affinity: &affinity,
            };
            match crate::routing::plan_targets(
                config,
                state,
                targets,
                group.max_attempts,
                d.summary,
            ) {
                Ok(plan) => {
                    for (i, p) in plan.targets.iter().enumerate() {
                        let r = crate::config::rules::TargetRef {
                            group: p.group,
                            target: p.target,
                        };
                        let _ = writeln!(
                            w,
                            "  {}. {}  [rule's targets, in order]",
                            i + 1,
                            config.target_label(r)
                        );
                    }
                }
                Err(e) => {
                    let _ = writeln!(w, "  no eligible target: {}", e.reasons.join("; "));
                }
            }
        }
        Some((_, Route::Group(g))) => {
            let name = &config.groups[*g].name;
            if let Some(e) = crate::routing::explain(config, name, d.summary) {
                let _ = write!(w, "  routed to {e}");
            }
        }
        None => {
            if let Some(e) = crate::routing::explain(config, &group.name, d.summary) {
                let _ = write!(w, "  {e}");
            }
        }
    }
    Ok(out)
}

/// A route in words.
fn route_text(config: &Config, r: &Route) -> String {
    match r {
        Route::Targets(t) => format!(
            "route to targets {}",
            t.iter()
                .map(|r| config.target_label(*r))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Route::Group(g) => format!("route to group {}", config.groups[*g].name),
        Route::Deny(reason) => format!("deny ({reason})"),
    }
}
