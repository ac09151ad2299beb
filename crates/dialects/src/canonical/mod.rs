//! The dialect-neutral model the router core works with.

mod request;
mod usage;

pub use request::{Needs, RequestSummary};
pub use usage::Usage;
