//! Stage `plan`: the admitted request's attempt plan (eligible targets of its group and its
//! fallback groups, ordered by the group's strategy and health, session affinity first).

use super::RequestContext;
use super::admit::Admitted;
use crate::config::rules::Route;
use crate::error::Error;
use crate::routing::{AttemptPlan, plan_attempts, plan_targets};

/// Plans the attempts — of the request's group, or of where a rule or a policy sent it; no
/// eligible target is `no_eligible_target` (400, or 503 with `Retry-After` while capable
/// targets cool down).
pub(super) fn plan(cx: &mut RequestContext, admitted: &Admitted) -> Result<AttemptPlan, Error> {
    // Timed only for a traced request (no clock read otherwise).
    let from = cx
        .outcome
        .get()
        .trace
        .is_some()
        .then(|| cx.arrival.started.elapsed());
    let planned = plan_targets_of(cx, admitted);
    if let (Some(from), Some(t)) = (from, cx.outcome.traced()) {
        let n = planned.as_ref().map_or(0, |p| p.targets.len());
        t.plan = Some((from, cx.arrival.started.elapsed(), n));
    }
    let plan = planned?;
    cx.outcome.affinity(plan.affinity_hit);
    Ok(plan)
}

fn plan_targets_of(cx: &RequestContext, admitted: &Admitted) -> Result<AttemptPlan, Error> {
    let state = &cx.state;
    let config = &state.config;
    let mut group = &config.groups[admitted.group];
    let planned = match &admitted.route {
        Some(Route::Targets(targets)) => plan_targets(
            config,
            state.routing_state(),
            targets,
            group.max_attempts,
            admitted.summary(),
        ),
        other => {
            if let Some(Route::Group(g)) = other {
                group = &config.groups[*g];
            }
            plan_attempts(
                config,
                state.routing_state(),
                &group.name,
                admitted.summary(),
                &mut fastrand::Rng::new(),
            )
        }
    };
    planned.map_err(|e| Error::NoEligibleTarget {
        group: group.name.clone(),
        reasons: e.reasons.join("; "),
        retry_after: e.cooling,
    })
}
