//! `GET /v1/confirmations` (the pending holds) and `POST /v1/confirmations/{id}/approve`
//! and `/reject` (an operator's answer, to the governor thread).

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::{body, json_response, App, Call};
use crate::engine::{Answer, AnswerFields, AnswerKind, Job};
use crate::error::ApiError;

/// `GET /v1/confirmations`.
pub(super) async fn list(app: Arc<App>, _call: Call) -> Result<Response, ApiError> {
    let holds: Vec<String> = app
        .shared
        .holds
        .lock()
        .map(|h| h.values().cloned().collect())
        .unwrap_or_default();
    let body = format!("{{\"pending\":[{}]}}", holds.join(","));
    Ok(json_response(StatusCode::OK, body))
}

/// `POST /v1/confirmations/{id}/approve` and `…/reject`.
pub(super) async fn answer(
    app: Arc<App>,
    call: Call,
    kind: AnswerKind,
) -> Result<Response, ApiError> {
    let body = body::read(&app, call.body).await?;
    let answer = Answer {
        id: call.id,
        kind,
        fields: AnswerFields::read(&body),
        body,
        who: call.caller.who,
    };
    let (tx, rx) = oneshot::channel();
    let job = Job::Answer { answer, reply: tx };
    Ok(app.call(job, rx).await?.into_response())
}
