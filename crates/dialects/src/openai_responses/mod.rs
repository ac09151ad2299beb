//! OpenAI Responses (`POST /v1/responses`, Codex's dialect): passthrough inspection, translation
//! to and from the canonical model (requests, responses, stream events) and the stream tap.
//! Errors use the OpenAI shape; streams end with `response.failed` (`error`).

pub mod decode;
pub mod encode;
pub mod error;
pub mod stream;
pub(crate) mod text;
pub mod types;

use std::collections::HashMap;

/// Separator of a flattened namespaced tool name (`namespace__tool`).
pub const NAMESPACE_SEPARATOR: &str = "__";

/// What a Responses encoder must know about the caller's tools to give calls back their shape:
/// freeform (custom) tools and namespaced tools, by their canonical (flattened) name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolShapes {
    /// Canonical names of custom (freeform) tools.
    pub custom: Vec<String>,
    /// Canonical name -> (namespace, name inside it).
    pub namespaced: HashMap<String, (String, String)>,
}

impl ToolShapes {
    /// The shapes of a canonical request's tools.
    pub fn of(req: &crate::canonical::Request) -> Self {
        let mut out = ToolShapes::default();
        for t in &req.tools {
            if t.custom {
                out.custom.push(t.name.clone());
            }
            if let Some(ns) = &t.namespace {
                let inner = t
                    .name
                    .strip_prefix(&format!("{ns}{NAMESPACE_SEPARATOR}"))
                    .unwrap_or(&t.name)
                    .to_string();
                out.namespaced.insert(t.name.clone(), (ns.clone(), inner));
            }
        }
        out
    }
}
