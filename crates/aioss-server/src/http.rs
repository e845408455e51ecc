//! The HTTP API: [`app`] builds the router from [`ROUTES`], the same table that
//! `GET /openapi.json` is generated from, so the description cannot drift from what is
//! served (a route is added by adding a row, and the row is both).
//!
//! Every request is authenticated from its headers before its body is read. A request
//! without a valid token is answered 401 and counted (`aioss_unauthenticated_total`), never
//! recorded: anyone who can reach the port could otherwise fill the disk. Every other
//! refusal (wrong role, a body claiming another agent, an unknown id, bad input) is
//! answered with `{"error": {"code", "message", "field"}}` and recorded in the audit chain
//! through the governor thread, with a bounded prefix of its body and that body's length
//! and SHA-256, while its principal is within `refusal_record_rate`; past it, and when the
//! queue is full (503) or an agent is over its rate (429, on every route), it is counted,
//! not recorded, so that a flood cannot grow the log.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::config::{Config, Principal, Role, Settings};
use crate::engine::{error_json, Job, Reply, Shared, View, Who};

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;

/// The state every handler shares.
#[derive(Debug)]
pub struct App {
    /// The governor's queue.
    pub jobs: SyncSender<Job>,
    /// What the governor thread publishes.
    pub shared: Arc<Shared>,
    /// The configuration; `None` is local-development mode (no authentication).
    pub config: Option<Config>,
    /// The settings in force.
    pub settings: Settings,
    /// The policy file (re-read on reload).
    pub policy_path: PathBuf,
    /// The audit store's path, for reading decisions no longer cached.
    pub store_path: PathBuf,
    reader: Mutex<Option<aioss_audit::SqliteStore>>,
    /// Each agent's request rate (`rate_limit`, `burst`).
    limiter: crate::limit::Limiter,
    /// When an unauthenticated refusal was last logged, and how many since.
    unauthenticated_log: Mutex<(Option<Instant>, u64)>,
    /// Set when the server is stopping (long polls return at once).
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

impl App {
    /// The shared state of the handlers.
    pub fn new(
        jobs: SyncSender<Job>,
        shared: Arc<Shared>,
        config: Option<Config>,
        policy_path: PathBuf,
        store_path: PathBuf,
        stopping: tokio::sync::watch::Receiver<bool>,
    ) -> App {
        let settings = config
            .as_ref()
            .map(|c| c.settings.clone())
            .unwrap_or_default();
        App {
            jobs,
            shared,
            config,
            settings,
            policy_path,
            store_path,
            reader: Mutex::new(None),
            limiter: crate::limit::Limiter::default(),
            unauthenticated_log: Mutex::new((None, 0)),
            stopping,
        }
    }
}

/// What a handler returns.
type Fut = Pin<Box<dyn Future<Output = Response> + Send>>;
/// A handler of the route table.
type Handler = fn(Arc<App>, Request) -> Fut;

/// One route: served and described.
#[derive(Debug)]
pub struct Route {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// Who may call it: `none`, `agent`, `operator`, `agent or operator`.
    pub auth: &'static str,
    /// The request body's schema (a name in `components.schemas`), if any.
    pub request: Option<&'static str>,
    /// `(status, schema name or "")` of each answer.
    pub responses: &'static [(u16, &'static str)],
    handler: Handler,
}

const ERR: &str = "Error";

/// Every route of the server. [`app`] serves exactly these, and `GET /openapi.json`
/// describes exactly these.
pub static ROUTES: &[Route] = &[
    Route {
        method: "POST",
        path: "/v1/decisions",
        summary: "decide a proposal",
        auth: "agent",
        request: Some("Proposal"),
        responses: &[
            (200, "Decision"),
            (400, ERR),
            (401, ERR),
            (403, ERR),
            (408, ERR),
            (413, ERR),
            (429, ERR),
            (503, "Overloaded"),
        ],
        handler: |a, r| Box::pin(post_decision(a, r)),
    },
    Route {
        method: "GET",
        path: "/v1/decisions/{decision_id}",
        summary: "a past decision with its record, the answer to its hold and its outcome; `?wait=SECS` long-polls a pending hold",
        auth: "agent or operator",
        request: None,
        responses: &[(200, "Decision"), (401, ERR), (403, ERR), (404, ERR)],
        handler: |a, r| Box::pin(get_decision(a, r)),
    },
    Route {
        method: "POST",
        path: "/v1/decisions/{decision_id}/outcome",
        summary: "the observed next state; re-evaluates the decision (EFFECTIVE or FAILED)",
        auth: "agent or operator",
        request: Some("OutcomeRequest"),
        responses: &[
            (200, "OutcomeAnswer"),
            (400, ERR),
            (401, ERR),
            (403, ERR),
            (408, ERR),
            (404, ERR),
            (409, ERR),
            (503, "Overloaded"),
        ],
        handler: |a, r| Box::pin(post_outcome(a, r)),
    },
    Route {
        method: "GET",
        path: "/v1/confirmations",
        summary: "pending holds",
        auth: "operator",
        request: None,
        responses: &[(200, "Holds"), (401, ERR), (403, ERR)],
        handler: |a, r| Box::pin(get_confirmations(a, r)),
    },
    Route {
        method: "POST",
        path: "/v1/confirmations/{id}/approve",
        summary: "approve a hold: refused if the action changed, the policy changed, the hold expired, or the latest state makes the action unsafe (Tier 1)",
        auth: "operator",
        request: Some("ApproveRequest"),
        responses: &[
            (200, "ConfirmationAnswer"),
            (400, ERR),
            (401, ERR),
            (403, ERR),
            (408, ERR),
            (404, ERR),
            (409, ERR),
            (503, "Overloaded"),
        ],
        handler: |a, r| Box::pin(post_answer(a, r, true)),
    },
    Route {
        method: "POST",
        path: "/v1/confirmations/{id}/reject",
        summary: "reject a hold",
        auth: "operator",
        request: Some("RejectRequest"),
        responses: &[
            (200, "ConfirmationAnswer"),
            (400, ERR),
            (401, ERR),
            (403, ERR),
            (408, ERR),
            (404, ERR),
            (409, ERR),
            (503, "Overloaded"),
        ],
        handler: |a, r| Box::pin(post_answer(a, r, false)),
    },
    Route {
        method: "POST",
        path: "/v1/policy/reload",
        summary: "re-read the policy file; a bad policy is refused and the old one stays",
        auth: "operator",
        request: None,
        responses: &[
            (200, "ReloadAnswer"),
            (401, ERR),
            (403, ERR),
            (422, ERR),
            (503, "Overloaded"),
        ],
        handler: |a, r| Box::pin(post_reload(a, r)),
    },
    Route {
        method: "GET",
        path: "/healthz",
        summary: "health: 200 while decisions can be made and recorded",
        auth: "none",
        request: None,
        responses: &[(200, "Health"), (503, "Health")],
        handler: |a, r| Box::pin(get_health(a, r)),
    },
    Route {
        method: "GET",
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        auth: "none",
        request: None,
        responses: &[(200, "")],
        handler: |a, r| Box::pin(get_metrics(a, r)),
    },
    Route {
        method: "GET",
        path: "/openapi.json",
        summary: "this API description",
        auth: "none",
        request: None,
        responses: &[(200, "")],
        handler: |a, r| Box::pin(get_openapi(a, r)),
    },
];

/// The router: every row of [`ROUTES`]; anything else is a JSON 404 (or 405).
pub fn app(state: Arc<App>) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<App>>> = BTreeMap::new();
    for r in ROUTES {
        let filter = if r.method == "GET" {
            MethodFilter::GET
        } else {
            MethodFilter::POST
        };
        let h = r.handler;
        let m = by_path.remove(r.path).unwrap_or_default();
        let m = m.on(filter, move |State(a): State<Arc<App>>, req: Request| {
            h(a, req)
        });
        by_path.insert(r.path, m);
    }
    let mut router = Router::new();
    for (path, m) in by_path {
        let m = m.fallback(|| async {
            json_response(
                405,
                error_json(
                    "method_not_allowed",
                    "this path does not take that method",
                    None,
                ),
            )
        });
        router = router.route(path, m);
    }
    router
        .fallback(|req: Request| async move {
            json_response(
                404,
                error_json(
                    "not_found",
                    &format!("no route `{}` (see /openapi.json)", req.uri().path()),
                    None,
                ),
            )
        })
        .with_state(state)
}

/// A response with a JSON body.
pub fn json_response(status: u16, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn reply_response(r: Reply) -> Response {
    json_response(r.status, r.body)
}

/// The 503 of a full queue: the agent executes its fallback.
fn overloaded(app: &App) -> Response {
    app.shared.metrics.overloaded.fetch_add(1, Relaxed);
    let p = app.shared.policy();
    let fallback = aioss_core::governor::action_to_json(&p, &p.fallback);
    let body = format!(
        "{{\"error\":{{\"code\":\"overloaded\",\"message\":\"the governor's queue is full: execute your fallback action and retry later\"}},\"execute\":\"fallback\",\"fallback\":{fallback},\"policy\":{{\"hash\":{}}}}}",
        Value::from(p.hash.clone())
    );
    let mut r = json_response(503, body);
    r.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    r
}

enum Enqueue {
    Full,
    Closed,
}

impl App {
    fn enqueue(&self, job: Job) -> Result<(), Enqueue> {
        self.shared.metrics.queue_depth.fetch_add(1, Relaxed);
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(e) => {
                self.shared.metrics.queue_depth.fetch_sub(1, Relaxed);
                Err(match e {
                    TrySendError::Full(_) => Enqueue::Full,
                    TrySendError::Disconnected(_) => Enqueue::Closed,
                })
            }
        }
    }

    /// Send a job and wait for its answer (after its record is durable).
    async fn call(&self, job: Job, rx: oneshot::Receiver<Reply>) -> Response {
        match self.enqueue(job) {
            Ok(()) => match rx.await {
                Ok(r) => reply_response(r),
                Err(_) => json_response(
                    503,
                    error_json(
                        "unavailable",
                        "the governor stopped before answering: execute your fallback",
                        None,
                    ),
                ),
            },
            Err(Enqueue::Full) => overloaded(self),
            Err(Enqueue::Closed) if *self.stopping.borrow() => json_response(
                503,
                error_json(
                    "shutting_down",
                    "the server is stopping: execute your fallback",
                    None,
                ),
            ),
            Err(Enqueue::Closed) => json_response(
                503,
                error_json(
                    "unavailable",
                    "the governor is not running: execute your fallback",
                    None,
                ),
            ),
        }
    }

    /// Record a refused request (while `who` is within its refusal-recording rate; else
    /// only count it) and answer it. The record keeps a bounded prefix of `body`.
    #[expect(
        clippy::too_many_arguments,
        reason = "a refusal names the request, its target and the error's three fields"
    )]
    async fn refuse(
        &self,
        method: &str,
        path: &str,
        who: &Who,
        body: &str,
        id: &str,
        status: u16,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) -> Response {
        tracing::info!(status, code, path, by = %who.id, "refused");
        let error = error_json(code, message, field);
        let st = &self.settings;
        if self
            .shared
            .refusals
            .take(&who.id, st.refusal_record_rate, st.refusal_record_burst)
            .is_err()
        {
            // INVARIANT (bounded-refusals): past its rate a principal's refusals are
            // answered and counted, never recorded.
            self.shared.metrics.count("refused", code);
            self.shared.metrics.count("unrecorded", code);
            return json_response(status, error);
        }
        let mut request = serde_json::Map::new();
        request.insert("method".into(), Value::from(method));
        request.insert("path".into(), Value::from(path));
        request.insert("by".into(), json!({"id": who.id, "role": who.role}));
        request.extend(crate::limit::bounded_body(body, st.refusal_body_bytes));
        let (tx, rx) = oneshot::channel();
        let job = Job::Refuse {
            request: Value::Object(request).to_string(),
            decision_id: id.to_string(),
            status,
            error: error.clone(),
            reply: tx,
        };
        match self.enqueue(job) {
            Ok(()) => match rx.await {
                Ok(r) => reply_response(r),
                Err(_) => json_response(status, error),
            },
            // Not recorded under overload (see the module documentation); still refused.
            Err(_) => json_response(status, error),
        }
    }

    /// Refuse a request without a valid token: answered 401 and counted
    /// (`aioss_unauthenticated_total`), never recorded (anyone who can reach the port could
    /// otherwise fill the disk), and logged at most once a second with a count.
    fn unauthenticated(&self, code: &str, message: &str, req: &Parts) -> Response {
        let path = req.uri.path();
        let peer = req
            .extensions
            .get::<crate::listen::Peer>()
            .map_or_else(String::new, |p| p.0.to_string());
        self.shared.metrics.count("unauthenticated", code);
        if let Ok(mut l) = self.unauthenticated_log.lock() {
            l.1 += 1;
            let due = l.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(1));
            if due {
                tracing::info!(
                    code,
                    path,
                    %peer,
                    count = l.1,
                    "refused unauthenticated requests (not recorded; counted in aioss_unauthenticated_total)"
                );
                *l = (Some(Instant::now()), 0);
            }
        }
        json_response(401, error_json(code, message, None))
    }

    /// Who is calling: `Ok(None)` in local-development mode.
    fn principal(&self, headers: &HeaderMap) -> Result<Option<&Principal>, (&'static str, String)> {
        let Some(c) = &self.config else {
            return Ok(None);
        };
        let Some(h) = headers.get(header::AUTHORIZATION) else {
            return Err((
                "missing_token",
                "an `Authorization: Bearer TOKEN` header is required".into(),
            ));
        };
        let token = h
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or((
                "bad_token",
                "the `Authorization` header must be `Bearer TOKEN`".to_string(),
            ))?;
        c.principals
            .get(&crate::config::hash_token(token))
            .map(Some)
            .ok_or(("bad_token", "unknown token".to_string()))
    }

    fn rate_ok(&self, p: &Principal) -> Result<(), f64> {
        self.limiter.take(&p.id, p.rate_limit, p.burst)
    }
}

/// The caller, from the request's headers alone (before any body is read), checked
/// against the roles a route allows and, for an agent, against its rate limit (every
/// route: a GET costs a token as a proposal does). A refusal response otherwise: 401
/// (counted, not recorded), 403 (recorded), 429 (counted, not recorded).
async fn authorize(
    app: &App,
    req: &Parts,
    allowed: &[Role],
    id: &str,
) -> Result<(Option<Principal>, Who), Response> {
    let method = req.method.as_str().to_string();
    let path = req.uri.path().to_string();
    match app.principal(&req.headers) {
        Ok(None) => Ok((
            None,
            Who {
                id: "local".into(),
                role: "local",
            },
        )),
        Ok(Some(p)) => {
            let who = Who {
                id: p.id.clone(),
                role: p.role.as_str(),
            };
            if !allowed.contains(&p.role) {
                let want: Vec<&str> = allowed.iter().map(|r| r.as_str()).collect();
                return Err(app
                    .refuse(
                        &method,
                        &path,
                        &who,
                        "",
                        id,
                        403,
                        "forbidden",
                        &format!(
                            "`{}` is an {}; this endpoint is for: {}",
                            p.id,
                            p.role.as_str(),
                            want.join(", ")
                        ),
                        None,
                    )
                    .await);
            }
            if let Err(wait) = app.rate_ok(p) {
                app.shared.metrics.rate_limited.fetch_add(1, Relaxed);
                let body = json!({
                    "error": {
                        "code": "rate_limited",
                        "message": format!("agent `{}` is over its rate limit of {}/s: execute your fallback and retry", p.id, p.rate_limit),
                    },
                    "retry_after_secs": wait,
                });
                let mut r = json_response(429, body.to_string());
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return Err(r);
            }
            Ok((Some(p.clone()), who))
        }
        Err((code, msg)) => Err(app.unauthenticated(code, &msg, req)),
    }
}

/// The body of an authorised request (at most [`MAX_BODY`] bytes of UTF-8, read within
/// `body_read_timeout_secs`); a refusal response otherwise (recorded with a bounded
/// prefix; a timeout is 408 `body_timeout` and closes the connection).
async fn read_body(app: &App, parts: &Parts, who: &Who, body: Body) -> Result<String, Response> {
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let limit = crate::listen::secs(app.settings.body_read_timeout_secs);
    let Ok(read) = tokio::time::timeout(limit, axum::body::to_bytes(body, MAX_BODY)).await else {
        let mut r = app
            .refuse(
                &method,
                &path,
                who,
                "",
                "",
                408,
                "body_timeout",
                &format!(
                    "the body did not arrive within {} s",
                    app.settings.body_read_timeout_secs
                ),
                None,
            )
            .await;
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return Err(r);
    };
    match read {
        Ok(b) => match String::from_utf8(b.to_vec()) {
            Ok(s) => Ok(s),
            Err(_) => Err(app
                .refuse(
                    &method,
                    &path,
                    who,
                    &String::from_utf8_lossy(&b),
                    "",
                    400,
                    "malformed_json",
                    "the body is not UTF-8",
                    None,
                )
                .await),
        },
        Err(e) if too_large(&e) => Err(app
            .refuse(
                &method,
                &path,
                who,
                "",
                "",
                413,
                "too_large",
                &format!("the body is larger than {MAX_BODY} bytes"),
                None,
            )
            .await),
        // A broken chunked encoding and the like (caught: answered 413 `too_large`).
        Err(e) => {
            let mut r = app
                .refuse(
                    &method,
                    &path,
                    who,
                    "",
                    "",
                    400,
                    "malformed_body",
                    &format!("the body could not be read: {e}"),
                    None,
                )
                .await;
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            Err(r)
        }
    }
}

/// Whether reading a body failed because it is over [`MAX_BODY`].
fn too_large(e: &axum::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cause = c.source();
    }
    false
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

/// The proposal line the governor decides: in local-development mode the body as it is;
/// otherwise the body with the agent's id and attributes from its token (a body that
/// claims others is refused).
fn with_identity(
    body: &str,
    p: &Principal,
) -> Result<String, (&'static str, String, &'static str)> {
    let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) else {
        // Not an object: the governor refuses it with the precise error, and records it.
        return Ok(body.to_string());
    };
    let mut prefix = String::new();
    match o.get("agent") {
        Some(Value::String(a)) if *a == p.id => {}
        None => prefix.push_str(&format!("\"agent\":{},", Value::from(p.id.clone()))),
        Some(other) => {
            return Err((
                "identity_mismatch",
                format!(
                    "the body claims agent {other}, the token belongs to `{}`",
                    p.id
                ),
                "agent",
            ))
        }
    }
    match o.get("agent_attributes") {
        Some(a) if same_attributes(a, &p.attributes) => {}
        None => prefix.push_str(&format!(
            "\"agent_attributes\":{},",
            Value::Object(p.attributes.clone())
        )),
        Some(_) => {
            return Err((
                "attributes_mismatch",
                format!(
                    "the body claims agent attributes other than those configured for `{}`",
                    p.id
                ),
                "agent_attributes",
            ))
        }
    }
    if prefix.is_empty() {
        return Ok(body.to_string());
    }
    let t = body.trim_start();
    let rest = t.strip_prefix('{').unwrap_or(t);
    if rest.trim_start().starts_with('}') {
        prefix.pop();
    }
    Ok(format!("{{{prefix}{rest}"))
}

async fn post_decision(app: Arc<App>, req: Request) -> Response {
    let t0 = Instant::now();
    let r = post_decision_inner(&app, req).await;
    app.shared.metrics.stage(3, t0.elapsed().as_secs_f64());
    r
}

async fn post_decision_inner(app: &App, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let (p, who) = match authorize(app, &parts, &[Role::Agent], "").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(app, &parts, &who, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let raw = match &p {
        None => body,
        Some(p) => match with_identity(&body, p) {
            Ok(raw) => raw,
            Err((code, msg, field)) => {
                return app
                    .refuse(
                        "POST",
                        "/v1/decisions",
                        &who,
                        &body,
                        "",
                        403,
                        code,
                        &msg,
                        Some(field),
                    )
                    .await
            }
        },
    };
    let policy = app.shared.policy();
    let parsed = aioss_core::Proposal::parse(&policy, &raw);
    if let Err(e) = &parsed {
        let st = &app.settings;
        if app
            .shared
            .refusals
            .take(&who.id, st.refusal_record_rate, st.refusal_record_burst)
            .is_err()
        {
            // Bad input past the principal's refusal-recording rate: answered, counted,
            // not recorded (bad input changes no governor state).
            app.shared.metrics.count("input_error", e.code.as_str());
            app.shared.metrics.count("unrecorded", e.code.as_str());
            return json_response(400, e.to_json());
        }
    }
    let (tx, rx) = oneshot::channel();
    app.call(
        Job::Decide {
            raw,
            parsed: Some((policy.hash.clone(), parsed)),
            enqueued: Instant::now(),
            who,
            reply: tx,
        },
        rx,
    )
    .await
}

/// The id in `/v1/<section>/{id}[/<suffix>]`.
fn path_id(path: &str, prefix: &str, suffix: &str) -> String {
    path.strip_prefix(prefix)
        .and_then(|r| {
            if suffix.is_empty() {
                Some(r)
            } else {
                r.strip_suffix(suffix)
            }
        })
        .unwrap_or("")
        .to_string()
}

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

fn query_wait(req: &Parts, max: f64) -> Option<f64> {
    let q = req.uri.query()?;
    q.split('&')
        .filter_map(|kv| kv.strip_prefix("wait="))
        .find_map(|v| v.parse::<f64>().ok())
        .filter(|w| w.is_finite() && *w > 0.0)
        .map(|w| w.min(max))
}

async fn get_decision(app: Arc<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let path = req.uri.path().to_string();
    let id = path_id(&path, "/v1/decisions/", "");
    let (p, who) = match authorize(&app, &req, &[Role::Agent, Role::Operator], &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let deadline = query_wait(&req, app.settings.long_poll_max_secs)
        // Clamped to a day: a `long_poll_max_secs` of 1e300 must not overflow an Instant.
        .map(|w| Instant::now() + crate::listen::secs(w));
    let mut changes = app.shared.changed.subscribe();
    let mut stopping = app.stopping.clone();
    loop {
        changes.borrow_and_update();
        let cached = app
            .shared
            .cache
            .lock()
            .ok()
            .and_then(|c| c.get(&id).cloned());
        let v = match cached {
            Some(v) => Some(v),
            None => {
                let a = Arc::clone(&app);
                let i = id.clone();
                match tokio::task::spawn_blocking(move || view_from_store(&a, &i)).await {
                    Ok(Ok(v)) => v,
                    Ok(Err(e)) => {
                        return json_response(
                            503,
                            error_json(
                                "store_unavailable",
                                &format!("reading the audit store: {e}"),
                                None,
                            ),
                        )
                    }
                    Err(_) => None,
                }
            }
        };
        let Some(v) = v else {
            return app
                .refuse(
                    "GET",
                    &path,
                    &who,
                    "",
                    &id,
                    404,
                    "unknown_decision",
                    &format!("no decision `{id}`"),
                    None,
                )
                .await;
        };
        if let Some(p) = &p {
            if p.role == Role::Agent && p.id != v.agent {
                return app
                    .refuse(
                        "GET",
                        &path,
                        &who,
                        "",
                        &id,
                        403,
                        "not_your_decision",
                        &format!("decision `{id}` belongs to another agent"),
                        None,
                    )
                    .await;
            }
        }
        let wait_more =
            is_pending(&v) && deadline.is_some_and(|d| d > Instant::now()) && !*stopping.borrow();
        if !wait_more {
            return json_response(200, render(&app, &v));
        }
        let d = deadline.unwrap_or_else(Instant::now);
        tokio::select! {
            _ = changes.changed() => {}
            _ = stopping.changed() => {}
            () = tokio::time::sleep_until(d.into()) => {}
        }
    }
}

async fn post_outcome(app: Arc<App>, req: Request) -> Response {
    let (req, body) = req.into_parts();
    let id = path_id(req.uri.path(), "/v1/decisions/", "/outcome");
    let (_, who) = match authorize(&app, &req, &[Role::Agent, Role::Operator], &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(&app, &req, &who, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    app.call(
        Job::Outcome {
            decision_id: id,
            body,
            who,
            reply: tx,
        },
        rx,
    )
    .await
}

async fn get_confirmations(app: Arc<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    if let Err(r) = authorize(&app, &req, &[Role::Operator], "").await {
        return r;
    }
    let holds: Vec<String> = app
        .shared
        .holds
        .lock()
        .map(|h| h.values().cloned().collect())
        .unwrap_or_default();
    json_response(200, format!("{{\"pending\":[{}]}}", holds.join(",")))
}

async fn post_answer(app: Arc<App>, req: Request, approve: bool) -> Response {
    let (req, body) = req.into_parts();
    let suffix = if approve { "/approve" } else { "/reject" };
    let id = path_id(req.uri.path(), "/v1/confirmations/", suffix);
    let (_, who) = match authorize(&app, &req, &[Role::Operator], &id).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let body = match read_body(&app, &req, &who, body).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    app.call(
        Job::Answer {
            id,
            approve,
            body,
            who,
            reply: tx,
        },
        rx,
    )
    .await
}

/// Load the policy file and put it in force through the governor thread; `who` asked.
/// A policy that does not load is refused and the old one stays.
pub async fn reload(app: &App, who: Who) -> Response {
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
            app.call(
                Job::Reload {
                    policy: Box::new(p),
                    who,
                    reply: Some(tx),
                },
                rx,
            )
            .await
        }
        Err(e) => {
            tracing::warn!(error = %e, "policy reload refused; the old policy stays");
            app.shared.metrics.count("reload", "refused");
            app.refuse(
                "POST",
                "/v1/policy/reload",
                &who,
                "",
                "",
                422,
                "bad_policy",
                &format!("the policy was not reloaded (the old one stays in force): {e}"),
                None,
            )
            .await
        }
    }
}

async fn post_reload(app: Arc<App>, req: Request) -> Response {
    let (req, _) = req.into_parts();
    let (_, who) = match authorize(&app, &req, &[Role::Operator], "").await {
        Ok(x) => x,
        Err(r) => return r,
    };
    reload(&app, who).await
}

async fn get_health(app: Arc<App>, _req: Request) -> Response {
    let p = app.shared.policy();
    let sh = &app.shared;
    let failed = !sh.healthy();
    let running = |alive: &std::sync::atomic::AtomicBool| {
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
        "pending_holds": app.shared.metrics.pending_holds.load(Relaxed),
        "queue_depth": app.shared.metrics.queue_depth.load(Relaxed),
    });
    json_response(if failed { 503 } else { 200 }, body.to_string())
}

async fn get_metrics(app: Arc<App>, _req: Request) -> Response {
    let mut r = Response::new(Body::from(app.shared.metrics.render(&app.shared.policy())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    r
}

async fn get_openapi(_app: Arc<App>, _req: Request) -> Response {
    json_response(200, crate::openapi::document().to_string())
}
