//! Personal data in request and response text: [`Detector`] finds it (one pass over each text
//! for every detector, validated), [`Redactor`] replaces it with typed placeholders that stay
//! stable within a request (`[EMAIL_1]`: the same value, the same placeholder) and puts the
//! caller's values back into answers, and [`StreamFilter`] does both on a streamed answer with a
//! bounded look-behind. Knows no dialect: the places text lives come from
//! [`dialects::text`]. The mapping from placeholders to values lives in memory for one request
//! and is never stored.

mod detect;
mod redact;
mod stream;

pub use detect::{Custom, DetectError, Detector, Found, built_in_names};
pub use redact::{Counts, Redactor, ResponseMode};
pub use stream::{LOOK_BEHIND_BYTES, MAX_PLACEHOLDER_BYTES, PEM_BYTES, StreamFilter};
