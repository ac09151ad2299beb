//! Stage `plan`: the admitted request's attempt plan (eligible targets of its group and its
//! fallback groups, ordered by the group's strategy and health, session affinity first).

use super::RequestContext;
use super::admit::Admitted;
use crate::error::Error;
use crate::routing::{AttemptPlan, plan_attempts};

/// Plans the attempts; no eligible target is `no_eligible_target` (400, or 503 with
/// `Retry-After` while capable targets cool down).
pub(super) fn plan(cx: &mut RequestContext, admitted: &Admitted) -> Result<AttemptPlan, Error> {
    let state = &cx.state;
    let group = &state.config.groups[admitted.group];
    let plan = plan_attempts(
        &state.config,
        state.routing_state(),
        &group.name,
        admitted.summary(),
        &mut fastrand::Rng::new(),
    )
    .map_err(|e| Error::NoEligibleTarget {
        group: group.name.clone(),
        reasons: e.reasons.join("; "),
        retry_after: e.cooling,
    })?;
    cx.outcome.affinity(plan.affinity_hit);
    Ok(plan)
}
