//! Routing: from a group and a request summary to an ordered attempt plan. Sees only the
//! canonical summary, never a dialect.

use crate::config::{Config, GroupConfig, Strategy, TargetConfig};
use dialects::canonical::RequestSummary;

/// One planned attempt: a target of some group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedTarget {
    /// Index of the group in [`Config::groups`].
    pub group: usize,
    /// Index of the target in that group.
    pub target: usize,
}

/// The ordered targets a request will try.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptPlan {
    /// Targets in the order they will be tried.
    pub targets: Vec<PlannedTarget>,
}

/// Why no target could take a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEligibleTarget {
    /// One reason per excluded target, `provider/model: why`.
    pub reasons: Vec<String>,
}

/// Why a target cannot serve a request, if it cannot.
fn exclusion(config: &Config, t: &TargetConfig, req: &RequestSummary) -> Option<String> {
    let why = if t.weight == 0 {
        "weight is 0".to_string()
    } else if req.needs.tools && !t.capabilities.tools {
        "request has tools, target lacks the `tools` capability".to_string()
    } else if req.needs.images && !t.capabilities.images {
        "request has images, target lacks the `images` capability".to_string()
    } else if req.needs.json_schema && !t.capabilities.json_schema {
        "request asks for a JSON schema, target lacks the `json_schema` capability".to_string()
    } else {
        match t.context_window {
            Some(w) if u64::from(req.estimated_prompt_tokens) > w => format!(
                "estimated prompt of {} tokens exceeds the context window of {w}",
                req.estimated_prompt_tokens
            ),
            _ => return None,
        }
    };
    Some(format!(
        "{}/{}: {why}",
        config.providers[t.provider].name, t.model
    ))
}

/// Orders one group's eligible targets by its strategy.
fn order_group(
    config: &Config,
    gi: usize,
    group: &GroupConfig,
    req: &RequestSummary,
    rng: &mut fastrand::Rng,
    reasons: &mut Vec<String>,
) -> Vec<PlannedTarget> {
    let mut eligible: Vec<(usize, u32)> = Vec::with_capacity(group.targets.len());
    for (ti, t) in group.targets.iter().enumerate() {
        match exclusion(config, t, req) {
            None => eligible.push((ti, t.weight)),
            Some(r) => reasons.push(r),
        }
    }
    if group.strategy == Strategy::Weighted {
        // Weighted random order without replacement: each step draws by remaining weight.
        let mut ordered = Vec::with_capacity(eligible.len());
        while !eligible.is_empty() {
            let total: u64 = eligible.iter().map(|(_, w)| u64::from(*w)).sum();
            let mut pick = rng.u64(0..total);
            let idx = eligible
                .iter()
                .position(|(_, w)| {
                    if pick < u64::from(*w) {
                        true
                    } else {
                        pick -= u64::from(*w);
                        false
                    }
                })
                .expect("pick is below the total weight");
            ordered.push(eligible.remove(idx));
        }
        eligible = ordered;
    }
    eligible
        .into_iter()
        .map(|(target, _)| PlannedTarget { group: gi, target })
        .collect()
}

/// Plans the attempts for a request to `group`: its own eligible targets by its strategy,
/// then those of its `fallback_groups`, each target at most once.
pub fn plan_attempts(
    config: &Config,
    group: &str,
    req: &RequestSummary,
    rng: &mut fastrand::Rng,
) -> Result<AttemptPlan, NoEligibleTarget> {
    let mut reasons = Vec::new();
    let mut targets: Vec<PlannedTarget> = Vec::new();
    let Some(gi) = config.groups.iter().position(|g| g.name == group) else {
        return Err(NoEligibleTarget { reasons });
    };
    let names =
        std::iter::once(group).chain(config.groups[gi].fallback_groups.iter().map(String::as_str));
    for name in names {
        let Some(gi) = config.groups.iter().position(|g| g.name == name) else {
            continue;
        };
        for p in order_group(config, gi, &config.groups[gi], req, rng, &mut reasons) {
            let t = &config.groups[p.group].targets[p.target];
            let dup = targets.iter().any(|q| {
                let u = &config.groups[q.group].targets[q.target];
                u.provider == t.provider && u.model == t.model
            });
            if !dup {
                targets.push(p);
            }
        }
    }
    if targets.is_empty() {
        return Err(NoEligibleTarget { reasons });
    }
    Ok(AttemptPlan { targets })
}

#[cfg(test)]
mod tests {
    use super::*;
    use dialects::canonical::Needs;

    fn config() -> Config {
        crate::config::parse(
            r#"
            [providers.a]
            kind = "openai"
            base_url = "http://127.0.0.1:1/v1"
            [groups.g]
            fallback_groups = ["h"]
            [[groups.g.targets]]
            provider = "a"
            model = "heavy"
            weight = 3
            capabilities = ["tools"]
            [[groups.g.targets]]
            provider = "a"
            model = "light"
            weight = 1
            context_window = 100
            [groups.h]
            strategy = "priority"
            [[groups.h.targets]]
            provider = "a"
            model = "backup"
            [[groups.h.targets]]
            provider = "a"
            model = "heavy"
            "#,
        )
        .unwrap()
    }

    fn req(tools: bool, tokens: u32) -> RequestSummary {
        RequestSummary {
            group: "g".into(),
            stream: false,
            needs: Needs {
                tools,
                ..Needs::default()
            },
            estimated_prompt_tokens: tokens,
        }
    }

    fn models(c: &Config, p: &AttemptPlan) -> Vec<String> {
        p.targets
            .iter()
            .map(|t| c.groups[t.group].targets[t.target].model.clone())
            .collect()
    }

    #[test]
    fn weighted_order_follows_weights_then_fallbacks() {
        let c = config();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut heavy_first = 0;
        for _ in 0..4000 {
            let p = plan_attempts(&c, "g", &req(false, 10), &mut rng).unwrap();
            let m = models(&c, &p);
            assert_eq!(
                &m[2..],
                ["backup"],
                "fallback after own targets, no duplicates"
            );
            heavy_first += usize::from(m[0] == "heavy");
        }
        let share = heavy_first as f64 / 4000.0;
        assert!((0.72..0.78).contains(&share), "heavy first {share}");
    }

    #[test]
    fn eligibility_excludes_with_reasons() {
        let c = config();
        let mut rng = fastrand::Rng::with_seed(1);
        let p = plan_attempts(&c, "g", &req(true, 500), &mut rng).unwrap();
        assert_eq!(models(&c, &p), ["heavy"]);
        let mut none = config();
        none.groups[0].fallback_groups.clear();
        none.groups[0].targets[0].capabilities.tools = false;
        let e = plan_attempts(&none, "g", &req(true, 500), &mut rng).unwrap_err();
        assert_eq!(e.reasons.len(), 2);
        assert!(e.reasons[0].contains("a/heavy: request has tools"), "{e:?}");
    }
}
