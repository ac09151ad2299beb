//! The capture stage: one per `[[capture_policies]]` entry; a request runs the first policy
//! that applies to it. It runs after PII filtering and prepares the request's capture (the body
//! as received, the detectors of the request's PII policy for redaction); whether the content
//! is stored is decided when the request ends (`errors`) or now (`all`, `sampled`), and what is
//! stored is redacted unless the policy says `redact_pii = false`.

use super::{Decision, Governed, Stage};
use crate::auth::Caller;
use crate::config::GroupConfig;
use crate::config::capture::CapturePolicyConfig;
use crate::config::pii::{AppliesTo, PiiPolicyConfig};
use crate::usage::capture::PendingCapture;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// One capture policy as a governance stage.
#[derive(Debug)]
pub struct CaptureStage {
    policy: CapturePolicyConfig,
    /// Where the policies before it apply: a request they cover is theirs.
    earlier: Vec<AppliesTo>,
    /// The PII policies, for the detectors that redact what is stored.
    pii: Vec<PiiPolicyConfig>,
}

impl CaptureStage {
    /// The stages of a configuration's capture policies, in file order.
    pub fn all(policies: &[CapturePolicyConfig], pii: &[PiiPolicyConfig]) -> Vec<Arc<dyn Stage>> {
        policies
            .iter()
            .enumerate()
            .map(|(i, p)| {
                Arc::new(CaptureStage {
                    policy: p.clone(),
                    earlier: policies[..i].iter().map(|e| e.applies.clone()).collect(),
                    pii: pii.to_vec(),
                }) as Arc<dyn Stage>
            })
            .collect()
    }
}

fn covers(a: &AppliesTo, caller: &Caller, group: &GroupConfig) -> bool {
    a.covers(
        &caller.name,
        caller.project.as_deref(),
        caller.team.as_deref(),
        caller.environment.as_deref(),
        &group.name,
    )
}

impl Stage for CaptureStage {
    fn name(&self) -> &Arc<str> {
        &self.policy.name
    }

    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool {
        covers(&self.policy.applies, caller, group)
            && !self.earlier.iter().any(|a| covers(a, caller, group))
    }

    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision> {
        let detector = self
            .pii
            .iter()
            .find(|p| covers(&p.applies, request.caller, request.group))
            .map(|p| p.detector.clone());
        let pending = PendingCapture::new(
            &self.policy,
            request.surface,
            request.original_body().clone(),
            detector,
        );
        if let Some(p) = pending {
            request.capture(p);
        }
        Box::pin(std::future::ready(Decision::Allow))
    }
}
