//! `POST /v1/decisions/{id}/outcome`: the observed next state, read here and
//! re-evaluated on the governor thread (`Governor::evaluate_outcome`).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{body, App, Call};
use crate::engine::{Job, ObservedState, OutcomeReport};
use crate::error::ApiError;

/// `POST /v1/decisions/{decision_id}/outcome`.
pub(super) async fn post(app: Arc<App>, call: Call) -> Result<Response, ApiError> {
    let body = body::read(&app, call.body).await?;
    let report = OutcomeReport {
        decision_id: call.id,
        state: ObservedState::read(&app.shared.policy(), &body),
        body,
        who: call.caller.who,
    };
    let (tx, rx) = oneshot::channel();
    let job = Job::Outcome { report, reply: tx };
    Ok(app.call(job, rx).await?.into_response())
}
