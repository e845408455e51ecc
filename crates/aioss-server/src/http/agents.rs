//! `POST /v1/agents/{id}/reset`: an operator's reset of an agent's mode of operation, to
//! the governor thread.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{App, Call};
use crate::engine::Job;
use crate::error::ApiError;

/// `POST /v1/agents/{agent}/reset`.
pub(super) async fn reset(app: Arc<App>, call: Call) -> Result<Response, ApiError> {
    let (tx, rx) = oneshot::channel();
    let job = Job::ResetAgent {
        agent: call.id,
        who: call.caller.who,
        reply: tx,
    };
    Ok(app.call(job, rx).await?.into_response())
}
