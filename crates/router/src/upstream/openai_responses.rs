//! Provider kind `openai-responses`: Responses at `{base_url}/responses` with a bearer key.

use super::Upstream;
use crate::config::Secret;
use dialects::Dialect;
use http::HeaderMap;

/// The `openai-responses` provider kind.
#[derive(Debug)]
pub(super) struct OpenAiResponses;

impl Upstream for OpenAiResponses {
    fn dialect(&self) -> Dialect {
        Dialect::OpenAiResponses
    }

    fn path(&self) -> &'static str {
        "/responses"
    }

    fn authorize(&self, key: Option<&Secret>, headers: &mut HeaderMap) {
        super::openai::OpenAi.authorize(key, headers);
    }
}
