//! OpenAI Chat Completions (`POST /v1/chat/completions`): wire types, passthrough decoding and
//! rewriting, stream usage tap and the error shape.

pub mod decode;
pub mod encode;
pub mod error;
pub mod stream;
pub(crate) mod text;
pub mod types;

pub use types::{Chunk, Request, Response, Usage};
