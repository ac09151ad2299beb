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

pub use crate::error::Denial;
pub use body::{Purpose, RequestBody};

use crate::auth::Caller;
use crate::config::GroupConfig;
use bytes::Bytes;
use dialects::canonical::{Request, RequestSummary};
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
    body: &'a mut RequestBody,
    notes: Vec<(Arc<str>, String)>,
}

impl<'a> Governed<'a> {
    /// The view a stage gets of an admitted request.
    pub fn new(
        caller: &'a Caller,
        group: &'a GroupConfig,
        surface: Dialect,
        headers: &'a HeaderMap,
        client: &'static str,
        body: &'a mut RequestBody,
    ) -> Self {
        Governed {
            caller,
            group,
            surface,
            headers,
            client,
            body,
            notes: Vec::new(),
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
        self.notes.push((stage.clone(), note.into()));
    }

    /// The notes made (taken), for the request's record.
    pub fn take_notes(&mut self) -> Vec<(Arc<str>, String)> {
        std::mem::take(&mut self.notes)
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
