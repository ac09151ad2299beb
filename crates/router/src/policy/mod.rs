//! Governance: the stages a request passes after admission and before routing (quotas and
//! budgets, dynamic rules, external policy, PII filtering, content capture). Each is one
//! [`Stage`]: it sees the admitted request ([`Governed`]), may rewrite it (the passthrough body
//! or the canonical request) and note things on its usage record, and decides
//! [`Decision::Allow`] or [`Decision::Deny`] with a dialect-neutral [`Denial`] that the caller
//! receives in its own dialect.
//!
//! Which stages apply to which (caller, group) is decided once per configuration
//! ([`Governance::new`]): a request runs only the stages that apply to it, so a stage that does
//! not apply — and an empty stage list — costs nothing per request. The pipeline's `govern`
//! stage runs them.

mod body;
pub mod capture;
pub mod explain;
pub mod external;
pub mod limits;
pub mod pii;
pub mod rules;

pub use crate::error::Denial;
pub use body::{Purpose, RequestBody};

use crate::auth::Caller;
use crate::config::rules::Route;
use crate::config::{Config, GroupConfig};
use crate::routing::Health;
use bytes::Bytes;
use dialects::canonical::{LimitWindow, RateLimits, Request, RequestSummary, Usage};
use dialects::{DecodeError, Dialect};
use futures_util::future::BoxFuture;
use http::HeaderMap;
use std::sync::Arc;

/// One governance stage.
pub trait Stage: Send + Sync + std::fmt::Debug {
    /// The stage's name, as records, metrics and errors show it (the operator's name).
    fn name(&self) -> &Arc<str>;
    /// Whether the stage applies to requests of this caller to this group. Asked once per
    /// configuration for every (caller, group) pair, never per request.
    fn applies_to(&self, caller: &Caller, group: &GroupConfig) -> bool;
    /// Decides on one request; may rewrite it or annotate its record through `request`.
    fn decide<'a>(&'a self, request: &'a mut Governed<'_>) -> BoxFuture<'a, Decision>;
}

/// Who asks for what: the parts of an admitted request [`Governed::new`] takes.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    /// The caller.
    pub caller: &'a Caller,
    /// Index of the group in the config's `groups`.
    pub group: usize,
    /// The caller's dialect.
    pub surface: Dialect,
    /// The caller's request headers.
    pub headers: &'a HeaderMap,
    /// The client software.
    pub client: &'static str,
}

/// What a stage decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The request goes on (possibly rewritten).
    Allow,
    /// The request ends here with this error.
    Deny(Denial),
}

/// The admitted request as a stage sees it: who asks for which group, what the body holds, and
/// the ways to change it.
#[derive(Debug)]
pub struct Governed<'a> {
    /// The caller.
    pub caller: &'a Caller,
    /// The group asked for.
    pub group: &'a GroupConfig,
    /// The caller's dialect.
    pub surface: Dialect,
    /// The caller's request headers.
    pub headers: &'a HeaderMap,
    /// The client software.
    pub client: &'static str,
    /// The configuration the request runs under.
    pub config: &'a Config,
    /// Target health (for rules that read it).
    pub health: &'a Health,
    body: &'a mut RequestBody,
    effects: Effects,
}

/// What a stage keeps on a request until it ends (a concurrency slot, reserved tokens, a budget
/// charge to come): settled exactly once, when the request's outcome is recorded — also when
/// the client went away first.
pub trait Hold: Send + Sync + std::fmt::Debug {
    /// Settles with how the request ended.
    fn settle(self: Box<Self>, end: &Settled);
}

/// How a request ended, for [`Hold::settle`].
#[derive(Debug, Clone, Copy)]
pub struct Settled {
    /// Usage reported by the upstream (none when it never answered).
    pub usage: Option<Usage>,
    /// Cost in USD from the serving target's prices.
    pub cost_usd: f64,
    /// HTTP status sent (499: the client left).
    pub http_status: u16,
    /// A governance stage refused the request: it never went upstream, and what earlier
    /// stages counted for it should be given back.
    pub refused: bool,
}

/// What governance leaves on a request besides its decision.
#[derive(Debug, Default)]
pub struct Effects {
    /// Notes for the usage record (stage, note).
    pub notes: Vec<(Arc<str>, String)>,
    /// Holds to settle when the request ends.
    pub holds: Vec<Box<dyn Hold>>,
    /// Rate limits to report in the caller's dialect's headers.
    pub rate_limits: RateLimits,
    /// Router headers for the response (`x-router-...`).
    pub headers: Vec<(&'static str, String)>,
    /// The quota or budget that refused the request, or would have (shadow mode).
    pub limited_by: Option<Arc<str>>,
    /// A stage refused the request.
    pub refused: bool,
    /// What answers get (PII placeholders restored, or answers redacted).
    pub response_filter: Option<ResponseFilter>,
    /// The request's content capture, when a capture policy may store it.
    pub capture: Option<crate::usage::capture::PendingCapture>,
    /// Where a rule or a policy sent the request (instead of its group's plan).
    pub route: Option<Route>,
    /// The routing rule that decided the request (for the record's `rule`).
    pub rule: Option<Arc<str>>,
    /// Headers a policy added for the upstream (allow-listed).
    pub upstream_headers: Vec<(http::HeaderName, http::HeaderValue)>,
}

/// A filter on the request's answer, set by a content stage: the request's placeholders and
/// what to do with answers.
#[derive(Debug)]
pub struct ResponseFilter {
    /// The request's placeholders and detectors.
    pub redactor: crate::pii::Redactor,
    /// Restore or redact.
    pub mode: crate::pii::ResponseMode,
}

impl<'a> Governed<'a> {
    /// The view a stage gets of an admitted request.
    pub fn new(
        asking: Asking<'a>,
        config: &'a Config,
        health: &'a Health,
        body: &'a mut RequestBody,
    ) -> Self {
        Governed {
            caller: asking.caller,
            group: &config.groups[asking.group],
            surface: asking.surface,
            headers: asking.headers,
            client: asking.client,
            config,
            health,
            body,
            // Allocated by the first stage that keeps or notes something (a push on an empty
            // Vec takes room for four).
            effects: Effects::default(),
        }
    }

    /// What the request is for (a generation, or token counting).
    pub fn purpose(&self) -> Purpose {
        self.body.purpose()
    }

    /// The request's routing summary (needs, estimated tokens, stream).
    pub fn summary(&self) -> &RequestSummary {
        &self.body.inspected().summary
    }

    /// The request body as received (or as an earlier stage rewrote it).
    pub fn body(&self) -> &Bytes {
        self.body.bytes()
    }

    /// Replaces the body with one in the same dialect; it is inspected again so routing sees
    /// what will be sent. A body that does not decode is refused and nothing changes.
    pub fn replace_body(&mut self, body: Bytes) -> Result<(), DecodeError> {
        self.body.replace(body)
    }

    /// The canonical form of the request, decoded on first use, for stages that rewrite
    /// content. Once taken, the upstream body is encoded from it (also for a same-dialect
    /// upstream).
    pub fn canonical(&mut self) -> Result<&mut Request, DecodeError> {
        self.body.canonical_mut()
    }

    /// Notes something on the request's usage record under the stage's name (never content).
    pub fn annotate(&mut self, stage: &Arc<str>, note: impl Into<String>) {
        self.effects.notes.push((stage.clone(), note.into()));
    }

    /// Keeps something on the request until it ends (see [`Hold`]).
    pub fn hold(&mut self, hold: Box<dyn Hold>) {
        self.effects.holds.push(hold);
    }

    /// Reports a request and a token limit in the response's rate-limit headers (the tightest
    /// of each kind over all stages wins).
    pub fn rate_limits(&mut self, requests: Option<LimitWindow>, tokens: Option<LimitWindow>) {
        self.effects.rate_limits.tighten(requests, tokens);
    }

    /// Adds a router header (`x-router-...`) to the response.
    pub fn response_header(&mut self, name: &'static str, value: String) {
        self.effects.headers.push((name, value));
    }

    /// Names the quota or budget that refuses the request, for the record's `quota` (and
    /// reports grouped by it); call it before returning [`Decision::Deny`].
    pub fn limited(&mut self, stage: &Arc<str>, what: &str) {
        self.effects
            .notes
            .push((stage.clone(), format!("rejected: {what}")));
        self.effects.limited_by = Some(stage.clone());
    }

    /// Names the quota or budget that would have refused the request (shadow mode).
    pub fn would_reject(&mut self, stage: &Arc<str>, what: &str) {
        self.effects
            .notes
            .push((stage.clone(), format!("would_reject: {what}")));
        if self.effects.limited_by.is_none() {
            self.effects.limited_by = Some(stage.clone());
        }
    }

    /// The body as the caller sent it (before any stage rewrote it).
    pub fn original_body(&self) -> &Bytes {
        self.body.original()
    }

    /// Captures the request's content (decided when it ends).
    pub fn capture(&mut self, pending: crate::usage::capture::PendingCapture) {
        self.effects.capture = Some(pending);
    }

    /// Filters the request's answer: placeholders restored, or personal data redacted.
    pub fn filter_responses(
        &mut self,
        redactor: crate::pii::Redactor,
        mode: crate::pii::ResponseMode,
    ) {
        self.effects.response_filter = Some(ResponseFilter { redactor, mode });
    }

    /// The request as rules and policies see it (no content, no token), for `f`.
    pub fn with_subject<T>(&self, f: impl FnOnce(&crate::rules::Subject<'_>) -> T) -> T {
        let (config, health) = (self.config, self.health);
        let target = move |i: usize| {
            let id = config.target(config.rule_targets[i]).id;
            health.state(id)
        };
        let summary = self.summary();
        let c = self.caller;
        f(&crate::rules::Subject {
            caller: &c.name,
            project: c.project.as_deref(),
            team: c.team.as_deref(),
            environment: c.environment.as_deref(),
            surface: self.surface.as_str(),
            client: self.client,
            group: &self.group.name,
            stream: summary.stream,
            has_tools: summary.needs.tools,
            has_images: summary.needs.images,
            json_schema: summary.needs.json_schema,
            estimated_input_tokens: summary.estimated_prompt_tokens,
            max_output_tokens: summary.max_output_tokens,
            reasoning_effort: summary.reasoning_effort,
            headers: self.headers,
            now: std::time::SystemTime::now(),
            target: &target,
        })
    }

    /// Sends the request elsewhere than its group's plan (a rule's or a policy's route; the
    /// first stage to route wins).
    pub fn route(&mut self, route: Route) {
        if self.effects.route.is_none() {
            self.effects.route = Some(route);
        }
    }

    /// Names the routing rule that decided the request.
    pub fn decided_by_rule(&mut self, rule: &Arc<str>) {
        self.effects.rule = Some(rule.clone());
    }

    /// Adds a header to every upstream attempt (the caller of this is allow-listed).
    pub fn upstream_header(&mut self, name: http::HeaderName, value: http::HeaderValue) {
        self.effects.upstream_headers.retain(|(n, _)| *n != name);
        self.effects.upstream_headers.push((name, value));
    }

    /// Whether content governance lets the request's text leave the router: the capture
    /// policy that applies to it (the first that covers it) captures something.
    pub fn may_share_content(&self) -> bool {
        let c = self.caller;
        self.config
            .capture_policies
            .iter()
            .find(|p| {
                p.applies.covers(
                    &c.name,
                    c.project.as_deref(),
                    c.team.as_deref(),
                    c.environment.as_deref(),
                    &self.group.name,
                )
            })
            .is_some_and(|p| p.capture != crate::config::capture::CaptureMode::None)
    }

    /// What the stages left (taken), for the request's outcome.
    pub fn take_effects(&mut self) -> Effects {
        std::mem::take(&mut self.effects)
    }
}

/// The governance stages of one configuration, with, per (caller, group), the stages that
/// apply, computed once.
#[derive(Debug, Default)]
pub struct Governance {
    stages: Vec<Arc<dyn Stage>>,
    /// `applies[caller][group]`: indices into `stages`, in order (empty when none apply).
    applies: Vec<Vec<Vec<u16>>>,
}

impl Governance {
    /// Resolves which of `stages` apply to each caller and group (indexed like the config's
    /// `callers` and `groups`).
    pub fn new(
        stages: Vec<Arc<dyn Stage>>,
        callers: &[Arc<Caller>],
        groups: &[GroupConfig],
    ) -> Self {
        let applies = callers
            .iter()
            .map(|c| {
                groups
                    .iter()
                    .map(|g| {
                        (0..stages.len())
                            .filter(|&i| stages[i].applies_to(c, g))
                            .map(|i| u16::try_from(i).expect("fewer than 65,536 stages"))
                            .collect()
                    })
                    .collect()
            })
            .collect();
        Governance { stages, applies }
    }

    /// The stages that apply to this caller and group, in order.
    pub fn for_request(&self, caller: usize, group: usize) -> impl Iterator<Item = &dyn Stage> {
        self.applies
            .get(caller)
            .and_then(|g| g.get(group))
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| &*self.stages[usize::from(i)])
    }

    /// Whether any stage applies to this caller and group.
    pub fn any_for(&self, caller: usize, group: usize) -> bool {
        self.applies
            .get(caller)
            .and_then(|g| g.get(group))
            .is_some_and(|s| !s.is_empty())
    }

    /// How many stages the configuration has.
    pub fn len(&self) -> usize {
        self.stages.len()
    }

    /// Whether the configuration has no stages.
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }
}
