//! Provider kind `openai`: Chat Completions at `{base_url}/chat/completions` with a bearer key.
//! Also every OpenAI-compatible server (vLLM, Ollama, llama.cpp, another smart-router).

use super::Upstream;
use crate::config::Secret;
use dialects::Dialect;
use http::{HeaderMap, HeaderValue};

/// The `openai` provider kind.
#[derive(Debug)]
pub(super) struct OpenAi;

impl Upstream for OpenAi {
    fn dialect(&self) -> Dialect {
        Dialect::OpenAiChat
    }

    fn path(&self) -> &'static str {
        "/chat/completions"
    }

    fn authorize(&self, key: Option<&Secret>, headers: &mut HeaderMap) {
        if let Some(key) = key {
            if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", key.expose())) {
                v.set_sensitive(true);
                headers.insert(http::header::AUTHORIZATION, v);
            }
        }
    }
}
