//! Provider kind `anthropic`: Messages at `{base_url}/v1/messages` with `x-api-key` and
//! `anthropic-version` (the caller's, when it passed one through, else 2023-06-01).

use super::Upstream;
use crate::config::Secret;
use dialects::Dialect;
use http::{HeaderMap, HeaderValue};

/// The `anthropic` provider kind.
#[derive(Debug)]
pub(super) struct Anthropic;

impl Upstream for Anthropic {
    fn dialect(&self) -> Dialect {
        Dialect::AnthropicMessages
    }

    fn path(&self) -> &'static str {
        "/v1/messages"
    }

    fn count_tokens_path(&self) -> Option<&'static str> {
        Some("/v1/messages/count_tokens")
    }

    fn authorize(&self, key: Option<&Secret>, headers: &mut HeaderMap) {
        if let Some(key) = key {
            if let Ok(mut v) = HeaderValue::from_str(key.expose()) {
                v.set_sensitive(true);
                headers.insert(crate::header_names::X_API_KEY, v);
            }
        }
        if !headers.contains_key(&crate::header_names::ANTHROPIC_VERSION) {
            headers.insert(
                crate::header_names::ANTHROPIC_VERSION,
                HeaderValue::from_static("2023-06-01"),
            );
        }
    }
}
