//! Stage `govern`: runs the governance stages ([`crate::policy`]) that apply to the request's
//! caller and group, in order, until one denies; their notes go onto the outcome.

use super::RequestContext;
use super::admit::Admitted;
use crate::error::Error;
use crate::policy::{Asking, Decision, Governed};
use http::HeaderMap;

/// Runs the stages that apply to an admitted request, in order, until one denies.
pub(super) async fn govern(
    cx: &mut RequestContext,
    admitted: &mut Admitted,
    headers: &HeaderMap,
) -> Result<(), Error> {
    let state = cx.state.clone();
    let (caller, group) = (admitted.caller.clone(), admitted.group);
    if !state.governance.any_for(caller.index, group) {
        return Ok(());
    }
    let asking = Asking {
        caller: &caller,
        group,
        surface: cx.surface,
        headers,
        client: cx.outcome.get().client,
    };
    let mut governed = Governed::new(asking, &state.config, &state.health, &mut admitted.body);
    let mut verdict = Ok(());
    let traced = cx.outcome.get().trace.is_some();
    let mut timings = Vec::new();
    for stage in state.governance.for_request(caller.index, group) {
        let from = traced.then(|| cx.arrival.started.elapsed());
        let decision = stage.decide(&mut governed).await;
        let denied = matches!(decision, Decision::Deny(_));
        if let Some(from) = from {
            timings.push((
                stage.name().clone(),
                from,
                cx.arrival.started.elapsed(),
                denied,
            ));
        }
        if let Decision::Deny(d) = decision {
            verdict = Err(Error::Denied(d));
            break;
        }
    }
    if let Some(t) = cx.outcome.traced() {
        t.stages = timings;
    }
    let mut effects = governed.take_effects();
    effects.refused = verdict.is_err();
    admitted.response_filter = effects.response_filter.take();
    admitted.route = effects.route.take();
    admitted.upstream_headers = std::mem::take(&mut effects.upstream_headers);
    cx.outcome.governed(effects);
    verdict
}
