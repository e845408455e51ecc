//! Running the service: `POST /v1/policy/reload` (also SIGHUP), `GET /healthz`,
//! `GET /metrics` and `GET /openapi.json`.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::oneshot;

use super::{json_response, App, Call};
use crate::engine::{Job, Reply};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Family;
use crate::who::Who;

/// Load the policy file and put it in force through the governor thread; `who` asked.
/// A policy that does not load is refused (422 `bad_policy`) and the old one stays.
pub async fn reload(app: &App, who: &Who) -> Result<Reply, ApiError> {
    let path = app.policy_path.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let shown = path.display().to_string();
        std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read `{shown}`: {e}"))
            .and_then(|text| aioss_core::load(&shown, &text).map_err(|e| e.to_string()))
    })
    .await
    .unwrap_or_else(|_| Err("the policy loader failed".into()));
    match loaded {
        Ok(p) => {
            let (tx, rx) = oneshot::channel();
            let job = Job::Reload {
                policy: Box::new(p),
                who: who.clone(),
                reply: Some(tx),
            };
            app.call(job, rx).await
        }
        Err(e) => {
            tracing::warn!(error = %e, "policy reload refused; the old policy stays");
            app.shared.metrics.count(Family::Reload, "refused");
            Err(ApiError::new(
                ErrorCode::BadPolicy,
                format!("the policy was not reloaded (the old one stays in force): {e}"),
            ))
        }
    }
}

/// `POST /v1/policy/reload`.
pub(super) async fn post_reload(app: Arc<App>, call: Call) -> Result<Response, ApiError> {
    Ok(reload(&app, &call.caller.who).await?.into_response())
}

/// `GET /healthz`.
pub(super) async fn health(app: Arc<App>, _req: Request) -> Result<Response, ApiError> {
    let p = app.shared.policy();
    let sh = &app.shared;
    let failed = !sh.healthy();
    let running = |alive: &AtomicBool| {
        if alive.load(Relaxed) {
            "running"
        } else {
            "stopped"
        }
    };
    let body = json!({
        "status": if failed { "failing" } else { "ok" },
        "audit_store": if sh.store_failed.load(Relaxed) { "failed" } else { "ok" },
        "governor": running(&sh.governor_alive),
        "audit_committer": running(&sh.committer_alive),
        "mode": if app.config.is_some() { "authenticated" } else { "local-development" },
        "policy": {"name": p.name, "version": p.version, "hash": p.hash},
        "pending_holds": sh.metrics.pending_holds.load(Relaxed),
        "queue_depth": sh.metrics.queue_depth.load(Relaxed),
    });
    let status = if failed {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    Ok(json_response(status, body.to_string()))
}

/// `GET /metrics`.
pub(super) async fn metrics(app: Arc<App>, _req: Request) -> Result<Response, ApiError> {
    let mut r = Response::new(Body::from(app.shared.metrics.render(&app.shared.policy())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(r)
}

/// `GET /openapi.json`.
pub(super) async fn openapi(_app: Arc<App>, _req: Request) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        crate::openapi::document().to_string(),
    ))
}
