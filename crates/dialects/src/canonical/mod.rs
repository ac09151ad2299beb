//! The dialect-neutral model every translation goes through: requests, responses and stream
//! events. Each dialect decodes into it and encodes from it; nothing translates pairwise.

mod rate_limit;
mod request;
mod response;
mod stream;
mod usage;

pub use rate_limit::{LimitWindow, RateLimits, count_value, push_digits};
pub use request::{
    EncodeOptions, ImageSource, Message, Needs, Opaque, Part, Reasoning, Request, RequestSummary,
    ResponseFormat, Role, Tool, ToolChoice, effort_for_budget, effort_level, push_message,
};
pub use response::{FinishReason, Response};
pub use stream::Event;
pub use usage::Usage;

/// Something a translation could not carry over and dropped, for the request's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning(pub String);

/// The output cap to send: the request's, clamped to the target's (with a warning), or the
/// target's when the request has none and the dialect needs one.
pub fn clamp_max_tokens(
    requested: Option<u32>,
    opts: &EncodeOptions<'_>,
    warnings: &mut Vec<Warning>,
) -> Option<u32> {
    match (requested, opts.max_output_tokens) {
        (Some(r), Some(cap)) if r > cap => {
            warnings.push(Warning(format!(
                "max tokens {r} clamped to the target's {cap}"
            )));
            Some(cap)
        }
        (r, _) => r,
    }
}
