//! The PII stage: one per `[[pii_policies]]` entry; a request runs the first policy that
//! applies to it. The body's JSON text is first scanned whole (one pass, exact: a body with no
//! candidate is never parsed); a body with one is parsed, and every text place its dialect has
//! ([`dialects::text`]) is scanned. `redact` replaces values with placeholders and rewrites the
//! body in the caller's dialect, `block` refuses it (400 `pii_detected`, naming kinds, never
//! values), `shadow` only notes kinds and counts on the usage record. What answers get
//! (`restore`, `redact`) rides along with the request to the `respond` stage.

use super::{Decision, Denial, Governed, Stage};
use crate::auth::Caller;
use crate::config::GroupConfig;
use crate::config::pii::{PiiAction, PiiPolicyConfig};
use crate::pii::{Counts, Redactor, ResponseMode};
use bytes::Bytes;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// One PII policy as a governance stage.
#[derive(Debug)]
pub struct PiiStage {
    policy: PiiPolicyConfig,
    /// The policies before it in the file: a request they apply to is theirs.
    earlier: Vec<PiiPolicyConfig>,
}

impl PiiStage {
    /// The stages of a configuration's PII policies, in file order.
    pub fn all(policies: &[PiiPolicyConfig]) -> Vec<Arc<dyn Stage>> {
        policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Arc::new(PiiStage {
                    policy: p.clone(),
                    earlier: policies[..i].to_vec(),
                }) as Arc<dyn Stage>
            })
            .collect()
    }

    fn decide_now(&self, request: &mut Governed<'_>) -> Decision {
        let p = &self.policy;
        let mut redactor = Redactor::new(p.detector.clone());
        let respond = |request: &mut Governed<'_>, redactor: Redactor| {
            if p.responses != ResponseMode::Off {
                request.filter_responses(redactor, p.responses);
            }
        };
        if !p.detector.may_contain(request.body()) {
            respond(request, redactor);
            return Decision::Allow;
        }
        let Ok(mut body) = serde_json::from_slice::<serde_json::Value>(request.body()) else {
            // Admission parsed it; a body that does not parse here is not forwarded unfiltered.
            return self.refuse(
                request,
                "the request body could not be read for PII filtering",
            );
        };
        let surface = request.surface;
        let counts = match p.action {
            PiiAction::Redact => {
                if redactor.redact_request(surface, &mut body) {
                    let bytes = serde_json::to_vec(&body).expect("a JSON value serializes");
                    if request.replace_body(Bytes::from(bytes)).is_err() {
                        return self.refuse(request, "the redacted request could not be re-read");
                    }
                }
                redactor.counts()
            }
            PiiAction::Block | PiiAction::Shadow => {
                redactor.scan_request(surface, &mut body);
                redactor.counts()
            }
        };
        if counts.is_empty() {
            respond(request, redactor);
            return Decision::Allow;
        }
        let name = p.name.clone();
        match p.action {
            PiiAction::Redact => {
                request.annotate(&name, format!("redacted: {}", summary(&counts)));
                respond(request, redactor);
                Decision::Allow
            }
            PiiAction::Shadow => {
                request.annotate(&name, format!("would_redact: {}", summary(&counts)));
                respond(request, redactor);
                Decision::Allow
            }
            PiiAction::Block => {
                request.annotate(&name, format!("blocked: {}", summary(&counts)));
                let kinds: Vec<&str> = counts.iter().map(|(k, _)| k.as_ref()).collect();
                Decision::Deny(Denial {
                    status: 400,
                    code: "pii_detected",
                    kind: "pii_detected",
                    message: format!(
                        "The request contains personal data that policy \"{}\" does not allow to be sent to a model provider: {}.",
                        p.name,
                        kinds.join(", ")
                    ),
                    retry_after: None,
                })
            }
        }
    }

    /// Fail closed: a body that cannot be filtered is not forwarded (shadow lets it through).
    fn refuse(&self, request: &mut Governed<'_>, why: &str) -> Decision {
        let name = self.policy.name.clone();
        if self.policy.action == PiiAction::Shadow {
            request.annotate(&name, format!("unfiltered: {why}"));
            return Decision::Allow;
        }
        request.annotate(&name, format!("refused: {why}"));
        Decision::Deny(Denial {
            status: 400,
            code: "pii_unfilterable",
            kind: "pii_unfilterable",
            message: format!("{why}; policy \"{}\" refuses it.", self.policy.name),
            retry_after: None,
        })
    }
}

/// `email=2, credit_card=1`.
fn summary(counts: &Counts) -> String {
    counts
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn covers(p: &PiiPolicyConfig, caller: &Caller, group: &GroupConfig) -> bool {
    p.applies.covers(
        &caller.name,
        caller.project.as_deref(),
        caller.team.as_deref(),
        caller.environment.as_deref(),
        &group.name,
    )
}

impl Stage for PiiStage {
    fn name(&self) -> &Arc<str> {
        &self.policy.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        covers(&self.policy, caller, group)
            && !self.earlier.iter().any(|p| covers(p, caller, group))
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        Box::pin(std::future::ready(self.decide_now(request)))
    }
}
