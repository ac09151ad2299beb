//! Responses wire types the router writes: the `response` object, its output items and usage,
//! and the stream events, each in the API's field order and borrowing what it can (serialized
//! directly: no intermediate JSON tree).

use crate::canonical;
use serde::Serialize;
use serde_json::value::RawValue;

/// Responses `usage`, in the API's field order.
#[derive(Debug, Clone, Serialize)]
pub(super) struct UsageOut {
    pub(super) input_tokens: u64,
    pub(super) input_tokens_details: CachedDetails,
    pub(super) output_tokens: u64,
    pub(super) output_tokens_details: ReasoningDetails,
    pub(super) total_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct CachedDetails {
    pub(super) cached_tokens: u64,
}

#[derive(Debug, Clone, Serialize)]
pub(super) struct ReasoningDetails {
    pub(super) reasoning_tokens: u64,
}

impl From<&canonical::Usage> for UsageOut {
    fn from(u: &canonical::Usage) -> Self {
        UsageOut {
            input_tokens: u.input_tokens,
            input_tokens_details: CachedDetails {
                cached_tokens: u.cached_input_tokens,
            },
            output_tokens: u.output_tokens,
            output_tokens_details: ReasoningDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

/// An output item of a response, borrowing what it can.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum OutputItem<'a> {
    Message {
        id: String,
        status: &'a str,
        role: &'static str,
        content: [OutputText<'a>; 1],
    },
    FunctionCall {
        id: String,
        status: &'a str,
        call_id: &'a str,
        name: &'a str,
        arguments: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
    },
    CustomToolCall {
        id: String,
        status: &'a str,
        call_id: &'a str,
        name: &'a str,
        input: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        namespace: Option<&'a str>,
    },
    Reasoning {
        id: String,
        summary: Vec<SummaryText<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        encrypted_content: Option<&'a str>,
    },
}

impl OutputItem<'_> {
    pub(super) fn is_reasoning(&self) -> bool {
        matches!(self, OutputItem::Reasoning { .. })
    }
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "output_text")]
pub(super) struct OutputText<'a> {
    pub(super) text: &'a str,
    pub(super) annotations: [(); 0],
}

#[derive(Debug, Serialize)]
#[serde(tag = "type", rename = "summary_text")]
pub(super) struct SummaryText<'a> {
    pub(super) text: &'a str,
}

/// The Responses `response` object, in the API's field order.
#[derive(Debug, Serialize)]
pub(super) struct ResponseOut<'a, T> {
    pub(super) id: &'a str,
    pub(super) object: &'static str,
    pub(super) created_at: u64,
    pub(super) status: &'a str,
    pub(super) error: Option<ErrorOut<'a>>,
    pub(super) incomplete_details: Option<IncompleteDetails>,
    pub(super) model: &'a str,
    pub(super) output: T,
    pub(super) parallel_tool_calls: bool,
    pub(super) tool_choice: &'static str,
    pub(super) tools: [(); 0],
    pub(super) usage: Option<UsageOut>,
}

/// The `error` of a failed response.
#[derive(Debug, Serialize)]
pub(super) struct ErrorOut<'a> {
    pub(super) code: &'a str,
    pub(super) message: &'a str,
}

#[derive(Debug, Serialize)]
pub(super) struct IncompleteDetails {
    pub(super) reason: &'static str,
}

impl<'a, T: Serialize> ResponseOut<'a, T> {
    pub(super) fn new(
        id: &'a str,
        model: &'a str,
        created: u64,
        status: &'a str,
        output: T,
        usage: Option<&canonical::Usage>,
    ) -> Self {
        ResponseOut {
            id,
            object: "response",
            created_at: created,
            status,
            error: None,
            incomplete_details: (status == "incomplete").then_some(IncompleteDetails {
                reason: "max_output_tokens",
            }),
            model,
            output,
            parallel_tool_calls: true,
            tool_choice: "auto",
            tools: [],
            usage: usage.map(UsageOut::from),
        }
    }
}

/// An event: its type and sequence number, then its own fields.
#[derive(Serialize)]
pub(super) struct Numbered<B> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) sequence_number: u64,
    #[serde(flatten)]
    pub(super) body: B,
}

/// Where an item event points: the item, and for text events the part within it.
#[derive(Serialize, Clone, Copy)]
pub(super) struct At<'a> {
    pub(super) item_id: &'a str,
    pub(super) output_index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) content_index: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) summary_index: Option<u32>,
}

impl<'a> At<'a> {
    /// The item itself (tool call events).
    pub(super) fn item(item_id: &'a str, output_index: usize) -> Self {
        At {
            item_id,
            output_index,
            content_index: None,
            summary_index: None,
        }
    }
}

/// `response.created`, `.in_progress`, `.completed`, `.incomplete`, `.failed`.
#[derive(Serialize)]
pub(super) struct ResponseEv<'a> {
    pub(super) response: ResponseOut<'a, &'a [Box<RawValue>]>,
}

/// `response.output_item.added` / `.done`.
#[derive(Serialize)]
pub(super) struct ItemEv<I> {
    pub(super) output_index: usize,
    pub(super) item: I,
}

/// The message item as `response.output_item.added` announces it (no content yet).
#[derive(Serialize)]
pub(super) struct AddedMessage<'a> {
    pub(super) id: &'a str,
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    pub(super) status: &'static str,
    pub(super) role: &'static str,
    pub(super) content: [(); 0],
}

/// A content or summary part.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Part<'a> {
    Text(OutputText<'a>),
    Summary(SummaryText<'a>),
}

/// `response.content_part.*` / `response.reasoning_summary_part.*`.
#[derive(Serialize)]
pub(super) struct PartEv<'a> {
    #[serde(flatten)]
    pub(super) at: At<'a>,
    pub(super) part: Part<'a>,
}

/// The per-token `*.delta` events.
#[derive(Serialize)]
pub(super) struct DeltaEv<'a> {
    #[serde(flatten)]
    pub(super) at: At<'a>,
    pub(super) delta: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) logprobs: Option<[(); 0]>,
}

/// `response.output_text.done` / `response.reasoning_summary_text.done`.
#[derive(Serialize)]
pub(super) struct TextDone<'a> {
    #[serde(flatten)]
    pub(super) at: At<'a>,
    pub(super) text: &'a str,
}

/// Tool call argument (or custom tool input) events.
#[derive(Serialize, Clone, Copy)]
pub(super) struct ArgsEv<'a> {
    #[serde(flatten)]
    pub(super) at: At<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) delta: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) input: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) arguments: Option<&'a str>,
}
