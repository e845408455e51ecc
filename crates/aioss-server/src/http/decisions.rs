//! `POST /v1/decisions` (a proposal, with the identity of its token, to the governor)
//! and `GET /v1/decisions/{id}` (a decision with its record, the answer to its hold and
//! its outcome; an agent sees only its own; `?wait=` long-polls a pending hold).

use std::sync::Arc;
use std::time::Instant;

use aioss_core::Proposal;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tokio::sync::oneshot;

use super::{body, json_response, App, Call};
use crate::config::Principal;
use crate::engine::{Job, Parsed, View};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Family;
use crate::who::Role;

/// `POST /v1/decisions`.
pub(super) async fn post(app: Arc<App>, call: Call) -> Result<Response, ApiError> {
    let body = body::read(&app, call.body).await?;
    let raw = match &call.caller.principal {
        None => body,
        Some(p) => with_identity(body, p)?,
    };
    let policy = app.shared.policy();
    let parsed = Proposal::parse(&policy, &raw);
    let who = call.caller.who;
    if let Err(e) = &parsed {
        if !app.shared.may_record_refusal(&who.id, &app.settings) {
            // Bad input past the principal's refusal-recording rate: answered, counted,
            // not recorded (bad input changes no governor state). The answer is the
            // governor's, as the governor thread would give it.
            app.shared
                .metrics
                .count(Family::InputError, e.code.as_str());
            app.shared
                .metrics
                .count(Family::Unrecorded, e.code.as_str());
            return Ok(json_response(StatusCode::BAD_REQUEST, e.to_json()));
        }
    }
    let (tx, rx) = oneshot::channel();
    let job = Job::Decide {
        raw,
        parsed: Some(Parsed {
            policy_hash: policy.hash.clone(),
            result: parsed,
        }),
        enqueued: Instant::now(),
        who,
        reply: tx,
    };
    Ok(app.call(job, rx).await?.into_response())
}

fn same_attributes(given: &Value, mine: &serde_json::Map<String, Value>) -> bool {
    let Some(g) = given.as_object() else {
        return false;
    };
    g.len() == mine.len()
        && g.iter().all(|(k, v)| match (v, mine.get(k)) {
            (Value::Number(a), Some(Value::Number(b))) => a.as_f64() == b.as_f64(),
            (a, Some(b)) => a == b,
            (_, None) => false,
        })
}

/// The proposal line the governor decides: the body with the agent's id and attributes
/// from its token (a body that claims others is refused, 403).
fn with_identity(body: String, p: &Principal) -> Result<String, ApiError> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(&body) else {
        // Not an object: the governor refuses it with the precise error, and records it.
        return Ok(body);
    };
    let mut prefix = String::new();
    match o.get("agent") {
        Some(Value::String(a)) if *a == p.id => {}
        None => prefix.push_str(&format!("\"agent\":{},", Value::from(p.id.clone()))),
        Some(other) => {
            let msg = format!(
                "the body claims agent {other}, the token belongs to `{}`",
                p.id
            );
            return Err(ApiError::new(ErrorCode::IdentityMismatch, msg)
                .field("agent")
                .with_body(body));
        }
    }
    match o.get("agent_attributes") {
        Some(a) if same_attributes(a, &p.attributes) => {}
        None => prefix.push_str(&format!(
            "\"agent_attributes\":{},",
            Value::Object(p.attributes.clone())
        )),
        Some(_) => {
            let msg = format!(
                "the body claims agent attributes other than those configured for `{}`",
                p.id
            );
            return Err(ApiError::new(ErrorCode::AttributesMismatch, msg)
                .field("agent_attributes")
                .with_body(body));
        }
    }
    if prefix.is_empty() {
        return Ok(body);
    }
    let t = body.trim_start();
    let rest = t.strip_prefix('{').unwrap_or(t);
    if rest.trim_start().starts_with('}') {
        prefix.pop();
    }
    Ok(format!("{{{prefix}{rest}"))
}

/// A decision as `GET` shows it: its JSON with `confirmation` (for a hold) and
/// `outcome` (once reported).
fn render(app: &App, v: &View) -> String {
    let mut s = v
        .decision
        .strip_suffix('}')
        .unwrap_or(&v.decision)
        .to_string();
    if v.held {
        s.push_str(",\"confirmation\":");
        match &v.confirmation {
            Some(c) => s.push_str(c),
            None => {
                let id = serde_json::from_str::<Value>(&v.decision)
                    .ok()
                    .and_then(|d| d.get("decision_id")?.as_str().map(str::to_string))
                    .unwrap_or_default();
                let pending = app
                    .shared
                    .holds
                    .lock()
                    .ok()
                    .and_then(|h| h.get(&id).cloned());
                match pending {
                    Some(h) => {
                        let body = h.strip_prefix('{').unwrap_or(&h);
                        s.push_str("{\"status\":\"pending\",");
                        s.push_str(body);
                    }
                    None => s.push_str(
                        "{\"status\":\"unanswered\",\"reason\":\"the hold is not pending on this server (made under another policy before a restart): treat it as denied\"}",
                    ),
                }
            }
        }
    }
    if let Some(o) = &v.outcome {
        s.push_str(",\"outcome\":");
        s.push_str(o);
    }
    s.push('}');
    s
}

fn is_pending(v: &View) -> bool {
    v.held && v.confirmation.is_none()
}

/// Read a decision no longer cached from the store.
fn view_from_store(app: &App, id: &str) -> Result<Option<View>, String> {
    let mut g = app
        .reader
        .lock()
        .map_err(|_| "store reader poisoned".to_string())?;
    if g.is_none() {
        *g = Some(
            aioss_audit::SqliteStore::open_existing(&app.store_path).map_err(|e| e.to_string())?,
        );
    }
    let Some(store) = g.as_mut() else {
        return Ok(None);
    };
    let records = aioss_audit::Store::records_for(store, id).map_err(|e| e.to_string())?;
    let mut v: Option<View> = None;
    for r in records {
        let rr = aioss_audit::RecordRef {
            seq: r.seq,
            hash: r.hash.clone(),
            prev_hash: r.prev_hash.clone(),
        };
        match aioss_audit::Kind::parse(&r.kind) {
            Some(aioss_audit::Kind::Decision) => {
                let d: Value = serde_json::from_str(&r.decision).unwrap_or(Value::Null);
                v = Some(View {
                    agent: d
                        .get("agent")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    held: d.get("final_outcome").and_then(Value::as_str)
                        == Some("HOLD_FOR_CONFIRMATION"),
                    decision: rr.insert_into(&r.decision),
                    confirmation: None,
                    outcome: None,
                });
            }
            Some(aioss_audit::Kind::Confirmation) => {
                if let Some(v) = v.as_mut() {
                    v.confirmation = Some(rr.insert_into(&r.decision));
                }
            }
            Some(aioss_audit::Kind::Outcome) => {
                if let Some(v) = v.as_mut() {
                    v.outcome = Some(rr.insert_into(&r.decision));
                }
            }
            _ => {}
        }
    }
    Ok(v)
}

/// The decision `id`: cached, else read from the store (off the async workers).
async fn lookup(app: &Arc<App>, id: &str) -> Result<Option<View>, ApiError> {
    let cached = app
        .shared
        .cache
        .lock()
        .ok()
        .and_then(|c| c.get(id).cloned());
    if cached.is_some() {
        return Ok(cached);
    }
    let (a, i) = (Arc::clone(app), id.to_string());
    match tokio::task::spawn_blocking(move || view_from_store(&a, &i)).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(ApiError::new(
            ErrorCode::StoreUnavailable,
            format!("reading the audit store: {e}"),
        )),
        Err(_) => Ok(None),
    }
}

fn query_wait(req: &Parts, max: f64) -> Option<f64> {
    let q = req.uri.query()?;
    q.split('&')
        .filter_map(|kv| kv.strip_prefix("wait="))
        .find_map(|v| v.parse::<f64>().ok())
        .filter(|w| w.is_finite() && *w > 0.0)
        .map(|w| w.min(max))
}

/// `GET /v1/decisions/{decision_id}`.
pub(super) async fn get(app: Arc<App>, call: Call) -> Result<Response, ApiError> {
    let id = call.id;
    let deadline = query_wait(&call.parts, app.settings.long_poll_max_secs)
        // Clamped to a day: a `long_poll_max_secs` of 1e300 must not overflow an Instant.
        .map(|w| Instant::now() + crate::listen::secs(w));
    let mut changes = app.shared.changed.subscribe();
    let mut stopping = app.stopping.clone();
    loop {
        changes.borrow_and_update();
        let Some(v) = lookup(&app, &id).await? else {
            let msg = format!("no decision `{id}`");
            return Err(ApiError::new(ErrorCode::UnknownDecision, msg).about(id));
        };
        // Ownership is the data's, not the route's: an agent reads only its own.
        if let Some(p) = &call.caller.principal {
            if p.role == Role::Agent && p.id != v.agent {
                let msg = format!("decision `{id}` belongs to another agent");
                return Err(ApiError::new(ErrorCode::NotYourDecision, msg).about(id));
            }
        }
        let wait_more =
            is_pending(&v) && deadline.is_some_and(|d| d > Instant::now()) && !*stopping.borrow();
        if !wait_more {
            return Ok(json_response(StatusCode::OK, render(&app, &v)));
        }
        let d = deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = changes.changed() => {}
            _ = stopping.changed() => {}
            () = tokio::time::sleep_until(d.into()) => {}
        }
    }
}
