//! Canonical requests, and the summary the routing core needs.

use serde_json::Value;

/// Capabilities a request needs from a target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// The request offers tools (function calling).
    pub tools: bool,
    /// The request carries image inputs.
    pub images: bool,
    /// The request asks for a JSON-schema constrained response.
    pub json_schema: bool,
}

/// A dialect-neutral summary of a request: enough to authorise, route and record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestSummary {
    /// The model group the caller asked for (the request's `model`).
    pub group: String,
    /// Whether the caller asked for a streamed response.
    pub stream: bool,
    /// Capabilities the request needs.
    pub needs: Needs,
    /// A rough estimate of the prompt size in tokens (about four bytes of text per token).
    pub estimated_prompt_tokens: u32,
    /// The caller's cap on generated tokens, when it set one.
    pub max_output_tokens: Option<u32>,
    /// A key identifying the caller's conversation (e.g. `prompt_cache_key`), for session
    /// affinity.
    pub session_key: Option<String>,
    /// The reasoning effort asked for (an OpenAI effort, an Anthropic `output_config.effort`,
    /// or the level an Anthropic thinking budget corresponds to), as [`effort_level`] names it.
    pub reasoning_effort: Option<&'static str>,
}

/// A reasoning effort's name, bounded to the known levels (`other` for anything else).
pub fn effort_level(s: &str) -> &'static str {
    match s {
        "none" => "none",
        "minimal" => "minimal",
        "low" => "low",
        "medium" => "medium",
        "high" => "high",
        "xhigh" => "xhigh",
        "max" => "max",
        _ => "other",
    }
}

/// The effort level a thinking token budget corresponds to.
pub fn effort_for_budget(budget: u32) -> &'static str {
    match budget {
        0..=2048 => "low",
        2049..=16384 => "medium",
        _ => "high",
    }
}

/// A whole request in canonical form.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    /// The model (group on the way in, upstream model on the way out).
    pub model: String,
    /// System instructions, in order.
    pub system: Vec<String>,
    /// The conversation.
    pub messages: Vec<Message>,
    /// Tools offered.
    pub tools: Vec<Tool>,
    /// How the model may use tools.
    pub tool_choice: Option<ToolChoice>,
    /// Whether several tool calls may come in one turn.
    pub parallel_tool_calls: Option<bool>,
    /// Cap on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f64>,
    /// Nucleus sampling.
    pub top_p: Option<f64>,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Stream the answer.
    pub stream: bool,
    /// Structured output.
    pub response_format: Option<ResponseFormat>,
    /// Reasoning controls.
    pub reasoning: Option<Reasoning>,
    /// End-user id, for provider abuse tracking.
    pub user: Option<String>,
}

/// Who speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The caller (also carries tool results).
    User,
    /// The model.
    Assistant,
    /// Instructions given mid-conversation (Anthropic `system` messages).
    System,
}

/// One message: a role and typed parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub parts: Vec<Part>,
}

/// A piece of message content.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    /// Text.
    Text(String),
    /// An image input.
    Image(ImageSource),
    /// A tool call by the model; `arguments` is JSON text.
    ToolCall {
        /// Call id, echoed by its result.
        id: String,
        /// Tool name.
        name: String,
        /// Arguments as JSON text.
        arguments: String,
    },
    /// The result of a tool call, sent by the caller.
    ToolResult {
        /// The call answered.
        call_id: String,
        /// Result content (text and images).
        content: Vec<Part>,
        /// The tool failed.
        is_error: bool,
    },
    /// Model reasoning, with what the provider needs to accept it back.
    Reasoning {
        /// Reasoning text (or summary).
        text: String,
        /// Anthropic thinking signature.
        signature: Option<String>,
        /// Opaque encrypted reasoning (Anthropic redacted thinking, OpenAI encrypted content),
        /// only meaningful to the dialect that produced it.
        encrypted: Option<Opaque>,
    },
}

/// Appends parts to the last message when it has the same role, else starts a message (the
/// dialects that send one role per item, such as tool results, are merged into turns here).
pub fn push_message(messages: &mut Vec<Message>, role: Role, parts: Vec<Part>) {
    match messages.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => messages.push(Message { role, parts }),
    }
}

/// An opaque blob only the dialect that produced it can read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opaque {
    /// Who produced it.
    pub dialect: crate::Dialect,
    /// The blob.
    pub data: String,
}

/// Where an image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A URL (http(s) or data:).
    Url(String),
    /// Inline base64 data.
    Base64 {
        /// e.g. `image/png`.
        media_type: String,
        /// The base64 data.
        data: String,
    },
}

impl ImageSource {
    /// As a URL (base64 as a `data:` URL).
    pub fn to_url(&self) -> String {
        match self {
            ImageSource::Url(u) => u.clone(),
            ImageSource::Base64 { media_type, data } => format!("data:{media_type};base64,{data}"),
        }
    }

    /// From a URL, unpacking `data:` URLs into base64.
    pub fn from_url(url: &str) -> ImageSource {
        if let Some(rest) = url.strip_prefix("data:") {
            if let Some((media_type, data)) = rest.split_once(";base64,") {
                return ImageSource::Base64 {
                    media_type: media_type.to_string(),
                    data: data.to_string(),
                };
            }
        }
        ImageSource::Url(url.to_string())
    }
}

/// A function tool.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tool {
    /// Name (for a namespaced tool: `namespace__name`).
    pub name: String,
    /// A freeform (Responses `custom`) tool: expressed elsewhere as a function with one string
    /// argument `input`.
    pub custom: bool,
    /// The Responses namespace the tool belongs to.
    pub namespace: Option<String>,
    /// What it does.
    pub description: Option<String>,
    /// JSON schema of the arguments.
    pub parameters: Value,
}

/// How the model may use tools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model decides.
    Auto,
    /// No tool calls.
    None,
    /// At least one tool call.
    Required,
    /// This tool.
    Tool(String),
}

/// Structured output.
#[derive(Debug, Clone, PartialEq)]
pub enum ResponseFormat {
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// Schema name.
        name: String,
        /// The schema.
        schema: Value,
        /// Strict adherence.
        strict: Option<bool>,
    },
}

/// Reasoning controls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reasoning {
    /// `minimal`/`low`/`medium`/`high` (OpenAI style).
    pub effort: Option<String>,
    /// Token budget (Anthropic style).
    pub budget_tokens: Option<u32>,
}

impl Reasoning {
    /// Effort from a token budget, for providers that take effort levels.
    pub fn effort_or_from_budget(&self) -> Option<String> {
        self.effort
            .clone()
            .or_else(|| self.budget_tokens.map(|b| effort_for_budget(b).to_string()))
    }

    /// A token budget from effort, for providers that take budgets.
    pub fn budget_or_from_effort(&self) -> Option<u32> {
        self.budget_tokens.or_else(|| {
            self.effort.as_deref().map(|e| match e {
                "minimal" | "low" => 2048,
                "medium" => 8192,
                _ => 24576,
            })
        })
    }
}

/// What an encoder needs to know about the target it encodes a request for.
#[derive(Debug, Clone, Copy)]
pub struct EncodeOptions<'a> {
    /// The upstream model.
    pub model: &'a str,
    /// The target takes reasoning controls.
    pub reasoning: bool,
    /// The target's cap on output tokens (larger requests are clamped, with a warning).
    pub max_output_tokens: Option<u32>,
}
