//! AIOSS as an HTTP service (`aioss serve`): agents propose, the governor decides,
//! operators answer holds, and every answer is a durable record in the audit chain before
//! anyone hears it.
//!
//! * [`http`]: the routes ([`http::ROUTES`], with who may call each) and [`http::app`],
//!   the router that enforces them;
//! * [`error`]: every error code the server answers, and the error body;
//! * [`who`]: the roles, and the caller as records name it;
//! * [`engine`]: the governor's thread (one ordered stream of work) and the audit
//!   committer's thread (group commit, then the answers);
//! * [`config`]: the settings, agents and operators of the configuration file;
//! * [`limit`]: token buckets, and what a refusal's record keeps of a body;
//! * [`listen`]: the accept loop, its connection caps and every connection's timeouts;
//! * [`metrics`], [`openapi`]: `GET /metrics` and `GET /openapi.json`;
//! * [`serve`]: the process: listening, signals (SIGHUP reloads, SIGTERM and Ctrl-C stop
//!   gracefully), logs.
#![deny(missing_docs)]

pub mod config;
pub mod engine;
pub mod error;
pub mod http;
pub mod limit;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod serve;
pub mod tier3;
pub mod who;

pub use http::{app, App};

/// What can go wrong starting or running the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration file is bad; the message names the field.
    #[error("config: {0}")]
    Config(String),
    /// The policy file does not load.
    #[error("{0}")]
    Policy(String),
    /// The audit store or key failed.
    #[error("audit: {0}")]
    Audit(#[from] aioss_audit::Error),
    /// Listening or serving failed.
    #[error("{0}")]
    Io(String),
    /// The options do not make sense together.
    #[error("{0}")]
    Usage(String),
}
