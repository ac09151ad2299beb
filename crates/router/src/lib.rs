//! smart-router's service: configuration, caller auth, routing, upstream clients, the proxy
//! path and request outcomes.
//!
//! Main types: [`config::Config`] (validated TOML), [`server::Runtime`] (shared state: config,
//! [`auth::Authenticator`], one [`upstream::Provider`] per provider, [`usage::Recorder`]),
//! [`routing::AttemptPlan`], [`error::Error`].
//!
//! Data flow of one request: `server` (request id, span, panic guard) -> `proxy` surface
//! handler (read body within the limit, inspect it with the dialect's decoder, authenticate,
//! check the group) -> `routing::plan_attempts` -> `proxy::attempt::run` (upstream attempts
//! with fallback until one is usable) -> passthrough answer (whole body, or an SSE tap that
//! forwards events as they arrive) -> `usage::Outcome` recorded once, when the response ends.

pub mod admin;
pub mod auth;
pub mod config;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod upstream;
pub mod usage;

pub use error::Error;
