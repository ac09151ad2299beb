//! Routing: from a group and a request summary to an ordered attempt plan. Sees only the
//! canonical summary, never a dialect.
//!
//! Decision rules, in order:
//! 1. Capability eligibility per target: weight 0, missing `tools`/`images`/`json_schema`, or
//!    an estimated prompt over the context window excludes it (reason recorded).
//! 2. Health: a target cooling down is skipped (reason recorded).
//! 3. Order the group's remaining targets by its strategy, then append each fallback group's
//!    (by that group's strategy), each (provider, model) at most once.
//! 4. Session affinity (groups with `affinity = "session"`): the session's last target, if in
//!    the plan, moves to the front.
//!
//! Nothing eligible: 400 when no target could ever serve the request, 503 with `Retry-After`
//! (the shortest remaining cooldown) when capable targets exist but all cool down.

mod affinity;
mod health;

pub use affinity::Affinity;
pub use health::Health;

use crate::config::rules::TargetRef;
use crate::config::{Config, GroupConfig, Strategy, TargetConfig};
pub use dialects::canonical::{Needs, RequestSummary};
use std::fmt;
use std::time::Duration;

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
    /// Most attempts (the requested group's limit).
    pub max_attempts: u32,
    /// Session affinity: `Some(true)` when the session's last target leads the plan,
    /// `Some(false)` for a session without a usable remembered target, `None` without one.
    pub affinity_hit: Option<bool>,
}

/// Why no target could take a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoEligibleTarget {
    /// One reason per excluded target, `provider/model: why`.
    pub reasons: Vec<String>,
    /// When capable targets exist but all cool down: the shortest remaining cooldown.
    pub cooling: Option<Duration>,
}

/// What routing consults besides the config.
#[derive(Debug, Clone, Copy)]
pub struct RoutingState<'a> {
    /// Per-target health.
    pub health: &'a Health,
    /// Session affinity map.
    pub affinity: &'a Affinity,
}

/// Why a target can never serve this request, if it cannot.
fn exclusion(t: &TargetConfig, req: &RequestSummary) -> Option<String> {
    Some(if t.weight == 0 {
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
    })
}

fn label(config: &Config, t: &TargetConfig) -> String {
    format!("{}/{}", config.providers[t.provider].name, t.model)
}

/// Estimated cost in USD of `req` on `t`; targets without prices sort last.
fn estimated_cost(config: &Config, t: &TargetConfig, req: &RequestSummary) -> f64 {
    let Some(p) = t.price else {
        return f64::INFINITY;
    };
    let out = req
        .max_output_tokens
        .unwrap_or(config.routing.cost_assumed_output_tokens);
    (f64::from(req.estimated_prompt_tokens) * p.input + f64::from(out) * p.output) / 1e6
}

/// Weighted random order without replacement: each step draws by remaining weight.
fn weighted_order(mut items: Vec<(usize, u32)>, rng: &mut fastrand::Rng) -> Vec<usize> {
    let mut out = Vec::with_capacity(items.len());
    while !items.is_empty() {
        let total: u64 = items.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut pick = rng.u64(0..total.max(1));
        let idx = items
            .iter()
            .position(|(_, w)| {
                let hit = pick < u64::from(*w);
                pick = pick.saturating_sub(u64::from(*w));
                hit
            })
            .unwrap_or(0);
        out.push(items.remove(idx).0);
    }
    out
}

/// Orders target indices of `group` (already filtered) by its strategy.
fn order(
    config: &Config,
    state: RoutingState<'_>,
    group: &GroupConfig,
    eligible: Vec<usize>,
    req: &RequestSummary,
    rng: &mut fastrand::Rng,
) -> Vec<usize> {
    let targets = &group.targets;
    match group.strategy {
        Strategy::Priority => eligible,
        Strategy::Weighted => weighted_order(
            eligible
                .into_iter()
                .map(|i| (i, targets[i].weight))
                .collect(),
            rng,
        ),
        Strategy::Latency => {
            // Unmeasured targets (no sample yet) go first so they get measured.
            let mut v = eligible;
            v.sort_by_key(|&i| state.health.ttfb(targets[i].id).unwrap_or(Duration::ZERO));
            if v.len() > 1 && rng.f64() < config.routing.latency_exploration {
                let j = rng.usize(1..v.len());
                let explored = v.remove(j);
                v.insert(0, explored);
            }
            v
        }
        Strategy::Cost => {
            let mut v = eligible;
            v.sort_by(|&a, &b| {
                estimated_cost(config, &targets[a], req).total_cmp(&estimated_cost(
                    config,
                    &targets[b],
                    req,
                ))
            });
            v
        }
    }
}

/// The group and its fallback groups, as indices.
fn chain(config: &Config, gi: usize) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(gi).chain(
        config.groups[gi]
            .fallback_groups
            .iter()
            .filter_map(|n| config.groups.iter().position(|g| &g.name == n)),
    )
}

/// Whether `t` may take `req` now; if not, why is pushed onto `reasons` (and a cooldown
/// lowers `cooling` to the shortest left).
fn usable(
    config: &Config,
    state: RoutingState<'_>,
    t: &TargetConfig,
    req: &RequestSummary,
    reasons: &mut Vec<String>,
    cooling: &mut Option<Duration>,
) -> bool {
    if let Some(why) = exclusion(t, req) {
        reasons.push(format!("{}: {why}", label(config, t)));
        false
    } else if let Some(left) = state.health.cooling(t.id) {
        reasons.push(format!(
            "{}: cooling down for {} ms",
            label(config, t),
            left.as_millis()
        ));
        *cooling = Some(cooling.map_or(left, |c| c.min(left)));
        false
    } else {
        true
    }
}

/// Plans the attempts for a request a rule or a policy sent to `targets`: those that may take
/// it, in the order given (no fallback groups, no affinity), at most `max_attempts`.
pub fn plan_targets(
    config: &Config,
    state: RoutingState<'_>,
    targets: &[TargetRef],
    max_attempts: u32,
    req: &RequestSummary,
) -> Result<AttemptPlan, NoEligibleTarget> {
    let mut reasons = Vec::new();
    let mut cooling = None;
    let plan: Vec<PlannedTarget> = targets
        .iter()
        .filter(|r| {
            usable(
                config,
                state,
                config.target(**r),
                req,
                &mut reasons,
                &mut cooling,
            )
        })
        .map(|r| PlannedTarget {
            group: r.group,
            target: r.target,
        })
        .collect();
    if plan.is_empty() {
        return Err(NoEligibleTarget { reasons, cooling });
    }
    Ok(AttemptPlan {
        targets: plan,
        max_attempts,
        affinity_hit: None,
    })
}

/// Plans the attempts for a request to `group`.
pub fn plan_attempts(
    config: &Config,
    state: RoutingState<'_>,
    group: &str,
    req: &RequestSummary,
    rng: &mut fastrand::Rng,
) -> Result<AttemptPlan, NoEligibleTarget> {
    let mut reasons = Vec::new();
    let mut cooling: Option<Duration> = None;
    let mut plan: Vec<PlannedTarget> = Vec::new();
    let Some(gi) = config.groups.iter().position(|g| g.name == group) else {
        return Err(NoEligibleTarget { reasons, cooling });
    };
    let home = &config.groups[gi];
    for g in chain(config, gi) {
        let grp = &config.groups[g];
        let mut eligible = Vec::new();
        for (ti, t) in grp.targets.iter().enumerate() {
            if plan
                .iter()
                .any(|p| config.groups[p.group].targets[p.target].id == t.id)
            {
                continue;
            }
            if usable(config, state, t, req, &mut reasons, &mut cooling) {
                eligible.push(ti);
            }
        }
        plan.extend(
            order(config, state, grp, eligible, req, rng)
                .into_iter()
                .map(|target| PlannedTarget { group: g, target }),
        );
    }
    if plan.is_empty() {
        return Err(NoEligibleTarget { reasons, cooling });
    }
    let mut affinity_hit = None;
    if let (true, Some(key)) = (home.session_affinity, req.session_key.as_deref()) {
        let remembered = state.affinity.get(&home.name, key);
        let pos = remembered.and_then(|id| {
            plan.iter()
                .position(|p| config.groups[p.group].targets[p.target].id == id)
        });
        if let Some(pos) = pos {
            let p = plan.remove(pos);
            plan.insert(0, p);
        }
        affinity_hit = Some(pos.is_some());
    }
    Ok(AttemptPlan {
        targets: plan,
        max_attempts: home.max_attempts,
        affinity_hit,
    })
}

/// An explanation of how a group would route a request, for `smart-router explain`.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The group.
    pub group: String,
    /// Its strategy.
    pub strategy: Strategy,
    /// Eligible targets in the order they would be tried, each with a note.
    pub order: Vec<(String, String)>,
    /// Excluded targets with reasons.
    pub excluded: Vec<String>,
}

/// Explains the plan for `req` with every target healthy.
pub fn explain(config: &Config, group: &str, req: &RequestSummary) -> Option<Explanation> {
    let gi = config.groups.iter().position(|g| g.name == group)?;
    let health = Health::new(config.target_count, &config.routing);
    let affinity = Affinity::new(1, Duration::ZERO);
    let state = RoutingState {
        health: &health,
        affinity: &affinity,
    };
    let mut plan = plan_attempts(config, state, group, req, &mut fastrand::Rng::with_seed(0))
        .map(|p| p.targets)
        .unwrap_or_default();
    let excluded = chain(config, gi)
        .flat_map(|g| &config.groups[g].targets)
        .filter_map(|t| exclusion(t, req).map(|why| format!("{}: {why}", label(config, t))))
        .collect();
    let home = &config.groups[gi];
    if home.strategy == Strategy::Weighted {
        // Show the weighted part by weight (the real order is random per request).
        let own = plan.iter().take_while(|p| p.group == gi).count();
        plan[..own].sort_by_key(|p| std::cmp::Reverse(home.targets[p.target].weight));
    }
    let own_weight: u64 = plan
        .iter()
        .filter(|p| p.group == gi)
        .map(|p| u64::from(home.targets[p.target].weight))
        .sum();
    let order = plan
        .iter()
        .map(|p| {
            let g = &config.groups[p.group];
            let t = &g.targets[p.target];
            let note = if p.group != gi {
                format!("fallback group `{}`", g.name)
            } else {
                match home.strategy {
                    Strategy::Weighted => format!(
                        "weight {} ({:.0}% chance to go first)",
                        t.weight,
                        100.0 * f64::from(t.weight) / own_weight.max(1) as f64
                    ),
                    Strategy::Priority => "in config order".into(),
                    Strategy::Latency => "by recent time to first byte (unmeasured first)".into(),
                    Strategy::Cost => {
                        let c = estimated_cost(config, t, req);
                        if c.is_finite() {
                            format!("estimated ${c:.6} per request")
                        } else {
                            "no price configured (tried last)".into()
                        }
                    }
                }
            };
            (label(config, t), note)
        })
        .collect();
    Some(Explanation {
        group: group.to_string(),
        strategy: home.strategy,
        order,
        excluded,
    })
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let strategy = Strategy::ALL
            .iter()
            .find(|(_, s)| *s == self.strategy)
            .map_or("?", |(n, _)| n);
        writeln!(f, "group {} (strategy {strategy})", self.group)?;
        if self.order.is_empty() {
            writeln!(
                f,
                "  no eligible target: the request would get no_eligible_target (400)"
            )?;
        }
        for (i, (t, note)) in self.order.iter().enumerate() {
            writeln!(f, "  {}. {t}  [{note}]", i + 1)?;
        }
        for e in &self.excluded {
            writeln!(f, "  excluded: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
