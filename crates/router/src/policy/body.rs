//! The body of an admitted request as stages see and change it: the bytes (as received, or as
//! a stage rewrote them), their inspection in the caller's dialect, and the canonical form,
//! decoded on first need.

use bytes::Bytes;
use dialects::canonical::Request;
use dialects::passthrough::{self, Inspected};
use dialects::{DecodeError, Dialect, translate};

/// Which endpoint of the surface a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A generation (`/chat/completions`, `/messages`, `/responses`).
    Generate,
    /// Anthropic token counting (`/v1/messages/count_tokens`: no `max_tokens`, never streamed).
    CountTokens,
}

/// A request body in the caller's dialect.
#[derive(Debug)]
pub struct RequestBody {
    /// The bytes.
    bytes: Bytes,
    /// Their inspection (summary and rewrite spans).
    inspected: Inspected,
    surface: Dialect,
    purpose: Purpose,
    /// The canonical form, decoded on first need, with its decoding warnings.
    canonical: Option<(Request, Vec<String>)>,
    /// A stage changed the canonical form: upstream bodies are encoded from it.
    canonical_rewritten: bool,
    /// The bytes as received, once a stage replaced them.
    original: Option<Bytes>,
}

impl RequestBody {
    /// Inspects `bytes` in `surface`'s dialect for `purpose`.
    pub fn inspect(surface: Dialect, purpose: Purpose, bytes: Bytes) -> Result<Self, DecodeError> {
        let inspected = match purpose {
            Purpose::Generate => passthrough::inspect_request(surface, &bytes)?,
            Purpose::CountTokens => passthrough::inspect_count_tokens(surface, &bytes)?,
        };
        Ok(RequestBody {
            bytes,
            inspected,
            surface,
            purpose,
            canonical: None,
            canonical_rewritten: false,
            original: None,
        })
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes as the caller sent them (before any stage replaced them).
    pub fn original(&self) -> &Bytes {
        self.original.as_ref().unwrap_or(&self.bytes)
    }

    /// The inspection (routing summary and rewrite spans).
    pub fn inspected(&self) -> &Inspected {
        &self.inspected
    }

    /// The inspection, to complete its summary (the session key from headers).
    pub fn inspected_mut(&mut self) -> &mut Inspected {
        &mut self.inspected
    }

    /// What the request is for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The canonical request, decoded on first need (warnings are kept for the record).
    pub fn canonical(&mut self) -> Result<&Request, DecodeError> {
        if self.canonical.is_none() {
            let (req, warnings) = translate::decode_request(self.surface, &self.bytes)?;
            self.canonical = Some((req, warnings.into_iter().map(|w| w.0).collect()));
        }
        Ok(&self.canonical.as_ref().expect("decoded above").0)
    }

    /// The canonical request, if it has been decoded.
    pub fn decoded(&self) -> Option<&Request> {
        self.canonical.as_ref().map(|(r, _)| r)
    }

    /// The canonical request, for a stage that rewrites it: from now on upstream bodies are
    /// encoded from it, also for an upstream of the caller's dialect.
    pub fn canonical_mut(&mut self) -> Result<&mut Request, DecodeError> {
        self.canonical()?;
        self.canonical_rewritten = true;
        Ok(&mut self.canonical.as_mut().expect("decoded above").0)
    }

    /// Whether a stage rewrote the canonical form.
    pub fn canonical_rewritten(&self) -> bool {
        self.canonical_rewritten
    }

    /// Warnings from decoding into the canonical form (taken; none if never decoded).
    pub fn take_decode_warnings(&mut self) -> Vec<String> {
        self.canonical
            .as_mut()
            .map(|(_, w)| std::mem::take(w))
            .unwrap_or_default()
    }

    /// Replaces the bytes with others in the same dialect, inspected again (the session key
    /// stays); a body that does not decode is refused and nothing changes.
    pub fn replace(&mut self, bytes: Bytes) -> Result<(), DecodeError> {
        let mut next = RequestBody::inspect(self.surface, self.purpose, bytes)?;
        next.inspected.summary.session_key = self.inspected.summary.session_key.take();
        next.original = Some(self.original.take().unwrap_or_else(|| self.bytes.clone()));
        *self = next;
        Ok(())
    }
}
