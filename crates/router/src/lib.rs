//! smart-router's service: configuration, caller auth, the request pipeline, routing, upstream
//! clients, usage, metrics and the operator API.
//!
//! Main types: [`config::Config`] (validated TOML), [`state::Runtime`] (what requests share:
//! config, [`auth::Authenticator`], one [`upstream::Provider`] per provider, the
//! [`policy::Governance`] stages, target health, the [`usage::Recorder`]),
//! [`pipeline::RequestContext`] (one request on its way), [`routing::AttemptPlan`],
//! [`error::Error`].
//!
//! One request passes these stages ([`pipeline`]), each a module, in order:
//!
//! ```text
//! admit    request id (on arrival), authenticate, media type, body within the limit,
//!          inspect in the caller's dialect, resolve the group, deadline
//! govern   the governance stages (policy::Stage) that apply to this caller and group
//! plan     eligible targets -> ordered attempt plan (routing)
//! attempt  upstream attempts with retry and fallback until the first byte goes out
//! respond  whole body or stream: passthrough tap, or decode -> canonical -> encode
//! record   one outcome, owned by the request's context, recorded once (usage, metrics, logs)
//! ```
//!
//! Module dependencies point one way (checked by `scripts/check-module-cycles`): leaves
//! (`bounds`, `time`, `ids`, `outcome`, `config`) <- `upstream`, `auth`, `error`, `routing`,
//! `metrics`, `telemetry`, `usage`, `policy` <- `state` <- `pipeline`, `admin`, `console` <- `server`.

pub mod admin;
pub mod auth;
pub mod bounds;
pub mod config;
pub mod console;
pub mod error;
pub mod header_names;
pub mod ids;
pub mod license;
pub mod metrics;
pub mod outcome;
pub mod pii;
pub mod pipeline;
pub mod policy;
pub mod reload;
pub mod routing;
pub mod rules;
pub mod server;
pub mod spelling;
pub mod state;
pub mod telemetry;
pub mod time;
pub mod upstream;
pub mod usage;

pub use error::Error;
