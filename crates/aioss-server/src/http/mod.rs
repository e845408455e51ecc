//! The HTTP API: [`app`] builds the router from [`ROUTES`], the same table that
//! `GET /openapi.json` is generated from. Who may call a route is enforced here, once,
//! from its row ([`routes::Handler`]); handlers return `Result<Response, ApiError>`, and
//! a refusal is answered (and recorded) here too.
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
//!
//! * [`routes`]: the table;
//! * [`access`]: who is calling (the token), whether its role and rate allow the call;
//! * `refusal`: the governor's queue, and recording refusals through it;
//! * `body`: reading a request's body within its limits;
//! * `decisions`, `holds`, `outcomes`, `admin`: the handlers.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::Router;

use crate::config::{Config, Settings};
use crate::engine::{Job, Shared};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Stage;

pub mod access;
mod admin;
mod agents;
mod body;
mod decisions;
mod holds;
mod outcomes;
mod refusal;
pub mod routes;

pub use access::Caller;
pub use admin::reload;
pub use routes::{Handler, Method, Route, ROUTES};

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

/// A request to a route with roles, once its caller is admitted.
#[derive(Debug)]
pub struct Call {
    /// The request's head.
    pub parts: Parts,
    /// Its body, not read yet.
    pub body: Body,
    /// Who is calling.
    pub caller: Caller,
    /// The decision or hold the path names (its `{…}` parameter), or empty.
    pub id: String,
}

/// The router: every row of [`ROUTES`]; anything else is a JSON 404 (or 405).
pub fn app(state: Arc<App>) -> Router {
    let mut by_path: BTreeMap<&'static str, MethodRouter<Arc<App>>> = BTreeMap::new();
    for r in ROUTES {
        let m = by_path.remove(r.path).unwrap_or_default();
        let m = m.on(
            r.method.filter(),
            move |State(a): State<Arc<App>>, req: Request| dispatch(a, r, req),
        );
        by_path.insert(r.path, m);
    }
    let mut router = Router::new();
    for (path, m) in by_path {
        let m = m.fallback(|| async {
            ApiError::new(
                ErrorCode::MethodNotAllowed,
                "this path does not take that method",
            )
        });
        router = router.route(path, m);
    }
    router
        .fallback(|req: Request| async move {
            ApiError::new(
                ErrorCode::NotFound,
                format!("no route `{}` (see /openapi.json)", req.uri().path()),
            )
        })
        .with_state(state)
}

/// Serve `req` on `route`: the access its row allows, then its handler.
async fn dispatch(app: Arc<App>, route: &'static Route, req: Request) -> Response {
    let t0 = Instant::now();
    let r = match route.handler {
        Handler::Open(h) => match h(Arc::clone(&app), req).await {
            Ok(r) => r,
            Err(e) => e.into_response(),
        },
        Handler::Roles(roles, h) => guarded(&app, route, roles, h, req).await,
    };
    if route.timed {
        app.shared
            .metrics
            .stage(Stage::Request, t0.elapsed().as_secs_f64());
    }
    r
}

/// A route for `roles`: the caller from the request's headers alone (before any body is
/// read), admitted by its role and rate, then the handler; a refusal is answered here,
/// and recorded when its code is.
async fn guarded(
    app: &Arc<App>,
    route: &'static Route,
    roles: &'static [crate::who::Role],
    handler: fn(Arc<App>, Call) -> routes::Answer,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let caller = match app.authenticate(&parts) {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let id = route.path_id(parts.uri.path());
    let (method, path) = (parts.method.clone(), parts.uri.path().to_string());
    let by = caller.who.clone();
    let answer = match app.admit(&caller, roles) {
        Ok(()) => {
            let call = Call {
                parts,
                body,
                caller,
                id,
            };
            handler(Arc::clone(app), call).await
        }
        Err(e) => Err(e.about(id)),
    };
    match answer {
        Ok(r) => r,
        Err(e) if e.code.recorded() => app.refuse(method.as_str(), &path, &by, e).await,
        Err(e) => e.into_response(),
    }
}

/// A response with a JSON body.
pub fn json_response(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
