//! `aioss mcp --listen HOST:PORT --config FILE`: the gateway served over MCP's streamable
//! HTTP transport (rmcp's server) to a fleet of agents, each request authenticated by its
//! bearer token.
//!
//! The agents are the `[[agent]]` entries of an `aioss serve` configuration file (read by
//! [`aioss_server::config::Config`], so one file serves both): a token's SHA-256 names
//! the agent, and its id and attributes are the `agent` and `agent_attributes` of every
//! proposal made for that request. Nothing the client sends can change them: the
//! mapping's `[session]` is not used, and the call's arguments only fill action
//! variables.
//!
//! Every HTTP request (the MCP session's start, each call, each answer to an elicitation,
//! the event stream) goes through [`authenticate`](Agents::authenticate) before rmcp sees
//! it:
//!
//! * no `Authorization` header, one that is not `Bearer TOKEN`, or an unknown token: 401
//!   with a JSON error body and `WWW-Authenticate: Bearer`;
//! * an `[[operator]]`'s token: 403 (operators answer holds at `aioss serve`, they do not
//!   call tools);
//! * a request naming an MCP session (`Mcp-Session-Id`) that another agent started: 404,
//!   as for a session that does not exist, so that one agent cannot answer another's
//!   elicitation or read its stream.
//!
//! A refused request never reaches the gateway, so it leaves no record in the audit
//! store (anyone who can reach the port could otherwise fill the disk); it is counted on
//! standard error at most once a second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aioss_server::config::{hash_token, Config};
use aioss_server::who::Role;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

use crate::gateway::{Bearer, Caller, Gateway};
use crate::mapping::Session;
use crate::Error;

/// The path MCP is served at.
pub const PATH: &str = "/mcp";

/// The agents of a configuration, by the SHA-256 of their token.
#[derive(Debug, Default)]
pub struct Agents {
    agents: HashMap<String, Arc<Caller>>,
    operators: HashMap<String, String>,
}

/// The result of authenticating one request.
#[derive(Clone, Debug)]
pub enum Auth {
    /// An agent of the configuration, and the token it presented.
    Agent(Arc<Caller>, Bearer),
    /// No `Authorization` header (401).
    Missing,
    /// An `Authorization` header that is not `Bearer TOKEN` (401).
    Malformed,
    /// A token no principal has (401).
    Unknown,
    /// An operator's token (403): operators do not call tools.
    Operator(String),
}

impl Agents {
    /// The agents of `config`, each made a [`Caller`] by `caller` (which decides the tools
    /// it may see); operators are remembered only to be refused by name.
    pub fn new(config: &Config, mut caller: impl FnMut(Session) -> Caller) -> Agents {
        let mut a = Agents::default();
        let mut principals: Vec<_> = config.principals.iter().collect();
        principals.sort_by(|x, y| x.1.id.cmp(&y.1.id));
        for (hash, p) in principals {
            match p.role {
                Role::Agent => {
                    let c = caller(Session {
                        agent: p.id.clone(),
                        attributes: p.attributes.clone(),
                    });
                    a.agents.insert(hash.clone(), Arc::new(c));
                }
                _ => {
                    a.operators.insert(hash.clone(), p.id.clone());
                }
            }
        }
        a
    }

    /// The agents, in the order of their ids.
    pub fn callers(&self) -> Vec<Arc<Caller>> {
        let mut v: Vec<_> = self.agents.values().cloned().collect();
        v.sort_by(|x, y| x.session.agent.cmp(&y.session.agent));
        v
    }

    /// Who sends a request with these headers (the `Authorization: Bearer TOKEN` header,
    /// read as `aioss serve` reads it).
    pub fn authenticate(&self, headers: &HeaderMap) -> Auth {
        let Some(h) = headers.get(header::AUTHORIZATION) else {
            return Auth::Missing;
        };
        let Some(token) = h
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
        else {
            return Auth::Malformed;
        };
        let hash = hash_token(token);
        if let Some(c) = self.agents.get(&hash) {
            return Auth::Agent(Arc::clone(c), Bearer(token.to_string()));
        }
        match self.operators.get(&hash) {
            Some(id) => Auth::Operator(id.clone()),
            None => Auth::Unknown,
        }
    }
}

/// MCP sessions and the agent that started each (so that no other agent can use one).
#[derive(Debug, Default)]
struct Owners {
    by_session: HashMap<String, String>,
}

/// Refused requests since the last log line, and when that was.
#[derive(Debug)]
struct Refusals {
    count: u64,
    logged: Option<Instant>,
}

struct State {
    agents: Agents,
    owners: Mutex<Owners>,
    refusals: Mutex<Refusals>,
    sessions: Arc<LocalSessionManager>,
}

fn refuse(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = serde_json::json!({"error": {"code": code, "message": message}}).to_string();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    r
}

const SESSION_HEADER: &str = "mcp-session-id";

impl State {
    fn new(agents: Agents, sessions: Arc<LocalSessionManager>) -> Arc<State> {
        Arc::new(State {
            agents,
            owners: Mutex::new(Owners::default()),
            refusals: Mutex::new(Refusals {
                count: 0,
                logged: None,
            }),
            sessions,
        })
    }

    fn count_refusal(&self, code: &str) {
        if let Ok(mut r) = self.refusals.lock() {
            r.count += 1;
            if r.logged
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
            {
                eprintln!(
                    "aioss mcp: refused {} request(s) without a valid agent token (latest: {code})",
                    r.count
                );
                r.count = 0;
                r.logged = Some(Instant::now());
            }
        }
    }

    /// Forget the sessions rmcp no longer has (closed or timed out).
    async fn prune(&self) {
        let live: Vec<String> = self
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .map(ToString::to_string)
            .collect();
        if let Ok(mut o) = self.owners.lock() {
            o.by_session.retain(|s, _| live.contains(s));
        }
    }
}

async fn guard(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    mut req: Request<Body>,
    next: axum::middleware::Next,
) -> Response<Body> {
    let (caller, bearer) = match state.agents.authenticate(req.headers()) {
        Auth::Agent(c, b) => (c, b),
        Auth::Missing => {
            state.count_refusal("missing_token");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "an `Authorization: Bearer TOKEN` header is required",
            );
        }
        Auth::Malformed => {
            state.count_refusal("bad_token");
            return refuse(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "the `Authorization` header must be `Bearer TOKEN`",
            );
        }
        Auth::Unknown => {
            state.count_refusal("bad_token");
            return refuse(StatusCode::UNAUTHORIZED, "bad_token", "unknown token");
        }
        Auth::Operator(id) => {
            state.count_refusal("not_an_agent");
            return refuse(
                StatusCode::FORBIDDEN,
                "not_an_agent",
                &format!("`{id}` is an operator: only agents call tools"),
            );
        }
    };
    let agent = caller.session.agent.clone();
    let named = req
        .headers()
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    if let Some(sid) = &named {
        let owner = state
            .owners
            .lock()
            .ok()
            .and_then(|o| o.by_session.get(sid).cloned());
        if owner.is_some_and(|o| o != agent) {
            return refuse(
                StatusCode::NOT_FOUND,
                "unknown_session",
                "no such MCP session for this agent",
            );
        }
    }
    req.extensions_mut().insert(caller);
    req.extensions_mut().insert(bearer);
    let resp = next.run(req).await;
    if named.is_none() {
        if let Some(sid) = resp
            .headers()
            .get(SESSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            state.prune().await;
            if let Ok(mut o) = state.owners.lock() {
                o.by_session.insert(sid.to_string(), agent);
            }
        }
    }
    resp
}

/// `mcp` at [`PATH`], every request through [`guard`] first.
fn router<S>(state: Arc<State>, mcp: S) -> axum::Router
where
    S: tower_service::Service<Request<Body>, Error = std::convert::Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Response: axum::response::IntoResponse,
    S::Future: Send + 'static,
{
    axum::Router::new()
        .route_service(PATH, mcp)
        .layer(axum::middleware::from_fn_with_state(state, guard))
}

/// Serve `gateway` (built with [`crate::gateway::Callers::Bearer`]) at
/// `http://ADDR/mcp` to `agents` until Ctrl-C or SIGTERM. `log` hears where it listens.
pub async fn serve(
    gateway: Gateway,
    agents: Agents,
    addr: &str,
    log: &mut dyn FnMut(&str),
) -> Result<(), Error> {
    let sessions = Arc::new(LocalSessionManager::default());
    // Every request must carry an agent's token, so the Host check rmcp makes against
    // DNS rebinding (a browser tricked into reaching a local server) is not needed, and
    // would refuse a fleet that reaches the gateway by its own name.
    let stopping = tokio_util::sync::CancellationToken::new();
    let config = StreamableHttpServerConfig::default()
        .disable_allowed_hosts()
        .with_cancellation_token(stopping.clone());
    let service =
        StreamableHttpService::new(move || Ok(gateway.clone()), Arc::clone(&sessions), config);
    let app = router(State::new(agents, sessions), service);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Downstream(format!("cannot listen on `{addr}`: {e}")))?;
    let local: SocketAddr = listener
        .local_addr()
        .map_err(|e| Error::Downstream(e.to_string()))?;
    log(&format!("aioss mcp: listening on http://{local}{PATH}"));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop().await;
            // Close the MCP sessions (their event streams would hold the shutdown open).
            stopping.cancel();
        })
        .await
        .map_err(|e| Error::Downstream(e.to_string()))
}

/// Ctrl-C or SIGTERM.
async fn stop() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use serde_json::{json, Value};
    use tower::ServiceExt;

    const CONFIG: &str = r#"
[[agent]]
id = "planner-1"
token_sha256 = "HASH_A"
attributes = { role = "admin", status = "active", trust = 0.9 }

[[agent]]
id = "support-7"
token_sha256 = "HASH_B"
attributes = { role = "support", status = "active", trust = 0.5 }

[[operator]]
id = "alice"
token_sha256 = "HASH_O"
"#;

    fn agents() -> Agents {
        let text = CONFIG
            .replace("HASH_A", &hash_token("token-a"))
            .replace("HASH_B", &hash_token("token-b"))
            .replace("HASH_O", &hash_token("token-o"));
        let cfg = Config::parse(&text).unwrap();
        Agents::new(&cfg, |session| Caller {
            session,
            hidden: Vec::new(),
        })
    }

    fn headers(auth: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(a) = auth {
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn a_token_names_its_agent_and_attributes() {
        let a = agents();
        assert_eq!(a.callers().len(), 2, "operators are not callers");
        match a.authenticate(&headers(Some("Bearer token-b"))) {
            Auth::Agent(c, Bearer(t)) => {
                assert_eq!(c.session.agent, "support-7");
                assert_eq!(
                    Value::Object(c.session.attributes.clone()),
                    json!({"role": "support", "status": "active", "trust": 0.5})
                );
                assert_eq!(t, "token-b");
            }
            other => panic!("{other:?}"),
        }
        match a.authenticate(&headers(Some("Bearer  token-a "))) {
            Auth::Agent(c, _) => assert_eq!(c.session.agent, "planner-1"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_token_a_bad_one_or_an_operator_is_not_an_agent() {
        let a = agents();
        assert!(matches!(a.authenticate(&headers(None)), Auth::Missing));
        for bad in ["token-a", "Basic token-a", "Bearer ", "bearer token-a"] {
            assert!(
                matches!(a.authenticate(&headers(Some(bad))), Auth::Malformed),
                "{bad}"
            );
        }
        assert!(matches!(
            a.authenticate(&headers(Some("Bearer token-c"))),
            Auth::Unknown
        ));
        // A token's hash is not a token.
        let h = format!("Bearer {}", hash_token("token-a"));
        assert!(matches!(a.authenticate(&headers(Some(&h))), Auth::Unknown));
        assert!(matches!(
            a.authenticate(&headers(Some("Bearer token-o"))),
            Auth::Operator(id) if id == "alice"
        ));
    }

    /// Stands for rmcp's service: answers with the agent the guard put in the request
    /// (and its token), starting a session `s-N` when the request names none.
    fn echo() -> axum::routing::MethodRouter {
        use std::sync::atomic::{AtomicU64, Ordering};
        let n = Arc::new(AtomicU64::new(0));
        axum::routing::any(move |req: Request<Body>| {
            let n = Arc::clone(&n);
            async move {
                let agent = req
                    .extensions()
                    .get::<Arc<Caller>>()
                    .map(|c| c.session.agent.clone());
                let token = req.extensions().get::<Bearer>().map(|b| b.0.clone());
                let mut r = Response::new(Body::from(json!([agent, token]).to_string()));
                if req.headers().get(SESSION_HEADER).is_none() {
                    let sid = format!("s-{}", n.fetch_add(1, Ordering::Relaxed));
                    r.headers_mut()
                        .insert(SESSION_HEADER, HeaderValue::from_str(&sid).unwrap());
                }
                r
            }
        })
    }

    async fn call(
        app: &axum::Router,
        auth: Option<&str>,
        sid: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut b = Request::builder().method("POST").uri(PATH);
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        if let Some(s) = sid {
            b = b.header(SESSION_HEADER, s);
        }
        let resp = app
            .clone()
            .oneshot(b.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let sid = resp
            .headers()
            .get(SESSION_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        if status == 401 {
            assert_eq!(
                resp.headers().get(header::WWW_AUTHENTICATE).unwrap(),
                "Bearer"
            );
        }
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap(), sid)
    }

    #[tokio::test]
    async fn the_guard_admits_agents_only_and_keeps_sessions_apart() {
        let app = router(
            State::new(agents(), Arc::new(LocalSessionManager::default())),
            echo(),
        );
        // Refused before the MCP service: its answer never appears.
        let (s, v, _) = call(&app, None, None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (401, Some("missing_token"))
        );
        let (s, v, _) = call(&app, Some("Bearer nope"), None).await;
        assert_eq!((s, v["error"]["code"].as_str()), (401, Some("bad_token")));
        let (s, v, _) = call(&app, Some("Bearer token-o"), None).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (403, Some("not_an_agent"))
        );
        // An agent reaches it, as the token says.
        let (s, v, sid) = call(&app, Some("Bearer token-a"), None).await;
        assert_eq!((s, v), (200, json!(["planner-1", "token-a"])));
        let sid = sid.unwrap();
        let (s, v, _) = call(&app, Some("Bearer token-a"), Some(&sid)).await;
        assert_eq!((s, v), (200, json!(["planner-1", "token-a"])));
        // Another agent cannot use that session.
        let (s, v, _) = call(&app, Some("Bearer token-b"), Some(&sid)).await;
        assert_eq!(
            (s, v["error"]["code"].as_str()),
            (404, Some("unknown_session"))
        );
        let (s, v, _) = call(&app, Some("Bearer token-b"), None).await;
        assert_eq!((s, v), (200, json!(["support-7", "token-b"])));
    }
}
