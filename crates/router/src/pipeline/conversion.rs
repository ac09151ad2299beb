//! Between the caller's dialect and an upstream's: the upstream body for each attempted target
//! (same dialect: the received bytes with `model` — and, when clamped, the output cap —
//! spliced in; another dialect: encoded from the canonical request), and reading a whole answer
//! back (its usage when it passes through, its decoded form when it is translated), so each body
//! is parsed once either way.

use super::admit::Admitted;
use crate::config::TargetConfig;
use crate::error::Error;
use bytes::Bytes;
use dialects::Dialect;
use dialects::canonical::{EncodeOptions, Response, Usage, clamp_max_tokens};
use dialects::openai_responses::ToolShapes;
use dialects::passthrough;
use dialects::translate::{self, AnswerContext};
use std::time::{SystemTime, UNIX_EPOCH};

/// What checking a whole (non-stream) upstream body found.
#[derive(Debug)]
pub(super) enum Checked {
    /// Same dialect as the caller: the usage, when the body reports it.
    Usage(Option<Usage>),
    /// Another dialect: the decoded answer.
    Decoded(Box<Response>),
}

/// The conversion state of one request.
#[derive(Debug)]
pub(super) struct Conversion {
    surface: Dialect,
    /// The forced tool carrying a JSON-schema answer, for the last target encoded for.
    structured_tool: Option<String>,
    warnings: Vec<String>,
}

impl Conversion {
    /// A conversion for a caller speaking `surface`.
    pub(super) fn new(surface: Dialect) -> Self {
        Conversion {
            surface,
            structured_tool: None,
            warnings: Vec::new(),
        }
    }

    /// The upstream body for target `t`, whose provider speaks `upstream`.
    pub(super) fn upstream_body(
        &mut self,
        admitted: &mut Admitted,
        t: &TargetConfig,
        upstream: Dialect,
    ) -> Result<Bytes, Error> {
        self.structured_tool = None;
        let opts = EncodeOptions {
            model: &t.model,
            reasoning: t.capabilities.reasoning,
            max_output_tokens: t.max_output_tokens,
        };
        let mut w = Vec::new();
        let body = &mut admitted.body;
        if upstream == self.surface && !body.canonical_rewritten() {
            let asked = body.inspected().summary.max_output_tokens;
            let clamp = clamp_max_tokens(asked, &opts, &mut w).filter(|n| Some(*n) != asked);
            self.note(w);
            return Ok(Bytes::from(passthrough::rewrite_request(
                body.bytes(),
                body.inspected(),
                &t.model,
                clamp,
            )));
        }
        let req = body.canonical()?;
        let enc = translate::encode_request(upstream, req, &opts);
        self.structured_tool = enc.structured_tool;
        w.extend(enc.warnings);
        self.note(w);
        let decoded = body.take_decode_warnings();
        self.note_strings(decoded);
        Ok(Bytes::from(enc.body))
    }

    /// Checks a whole upstream body of dialect `upstream`: reads its usage when it will pass
    /// through, decodes it when it will be translated.
    pub(super) fn check_whole(
        &self,
        upstream: Dialect,
        body: &[u8],
    ) -> Result<Checked, &'static str> {
        if upstream == self.surface {
            passthrough::response_usage(upstream, body)
                .map(Checked::Usage)
                .map_err(|_| "the body is not a JSON object")
        } else {
            translate::decode_response(upstream, body)
                .map(|r| Checked::Decoded(Box::new(r)))
                .map_err(|_| "the body does not match the provider's dialect")
        }
    }

    /// The forced structured-answer tool of the target last encoded for (taken).
    pub(super) fn take_structured_tool(&mut self) -> Option<String> {
        self.structured_tool.take()
    }

    /// The forced structured-answer tool of the target last encoded for.
    pub(super) fn structured_tool(&self) -> Option<&str> {
        self.structured_tool.as_deref()
    }

    /// What encoding the answer for the caller needs.
    pub(super) fn answer_context(&self, admitted: &Admitted) -> AnswerContext {
        AnswerContext {
            model: admitted.summary().group.clone(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            include_usage: admitted.body.inspected().include_usage,
            shapes: admitted
                .body
                .decoded()
                .map(ToolShapes::of)
                .unwrap_or_default(),
        }
    }

    /// What conversion dropped or changed (taken).
    pub(super) fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn note(&mut self, w: Vec<dialects::canonical::Warning>) {
        self.note_strings(w.into_iter().map(|w| w.0).collect());
    }

    fn note_strings(&mut self, w: Vec<String>) {
        for w in w {
            if !self.warnings.contains(&w) {
                self.warnings.push(w);
            }
        }
    }
}
