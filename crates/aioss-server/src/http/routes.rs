//! The route table: every route the server answers, who may call it and what runs for
//! them. The router ([`super::app`]) and `GET /openapi.json` are both built from
//! [`ROUTES`], so neither can drift from what is served (a route is added by adding a
//! row, and the row is both), and who may call a route is checked once, from its row,
//! before its handler runs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::extract::Request;
use axum::response::Response;
use axum::routing::MethodFilter;

use super::{admin, agents, decisions, holds, outcomes, App, Call};
use crate::engine::AnswerKind;
use crate::error::ApiError;
use crate::who::Role;

/// A route's HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Method {
    /// `GET` (and `HEAD`, which axum answers with the `GET` handler).
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `GET` or `POST`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }

    pub(super) fn filter(self) -> MethodFilter {
        match self {
            Method::Get => MethodFilter::GET,
            Method::Post => MethodFilter::POST,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a handler returns.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// Who may call a route, and what runs for them.
#[derive(Clone, Copy)]
pub enum Handler {
    /// Anyone, without a token or a rate limit: health, metrics, this description.
    Open(fn(Arc<App>, Request) -> Answer),
    /// Callers with one of these roles (in local-development mode, every caller): the
    /// request is authenticated from its headers before its body is read, checked
    /// against the roles and the agent's rate limit, and only then handled.
    Roles(&'static [Role], fn(Arc<App>, Call) -> Answer),
}

impl std::fmt::Debug for Handler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Handler::Open(_) => f.write_str("Open"),
            Handler::Roles(r, _) => f.debug_tuple("Roles").field(r).finish(),
        }
    }
}

/// One route: served and described.
#[derive(Debug)]
pub struct Route {
    /// The method.
    pub method: Method,
    /// The path, with `{name}` parameters.
    pub path: &'static str,
    /// One line.
    pub summary: &'static str,
    /// The request body's schema (a name in `components.schemas`), if any.
    pub request: Option<&'static str>,
    /// `(status, schema name or "")` of each answer.
    pub responses: &'static [(u16, &'static str)],
    /// Whether the `request` stage of `aioss_stage_latency_seconds` times it (the
    /// proposals: the latency an agent waits for, refusals included).
    pub timed: bool,
    /// Who may call it, and what runs.
    pub handler: Handler,
}

impl Route {
    /// The roles that may call it; `None`: anyone.
    pub fn roles(&self) -> Option<&'static [Role]> {
        match self.handler {
            Handler::Open(_) => None,
            Handler::Roles(r, _) => Some(r),
        }
    }

    /// Who may call it, as the description says: `none`, or the roles joined by `or`.
    pub fn auth(&self) -> String {
        match self.roles() {
            None => "none".into(),
            Some(r) => r
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        }
    }

    /// The value of the path's `{…}` parameter in `path` (a path this route matched):
    /// the decision or hold a request names; empty for a route without one.
    pub fn path_id(&self, path: &str) -> String {
        let at = self.path.split('/').position(|s| s.starts_with('{'));
        at.and_then(|i| path.split('/').nth(i))
            .unwrap_or("")
            .to_string()
    }
}

const ERR: &str = "Error";

/// Every route of the server. [`super::app`] serves exactly these, and `GET
/// /openapi.json` describes exactly these.
pub static ROUTES: &[Route] = &[
    Route {
        method: Method::Post,
        path: "/v1/decisions",
        summary: "decide a proposal",
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
        timed: true,
        handler: Handler::Roles(&[Role::Agent], |a, c| Box::pin(decisions::post(a, c))),
    },
    Route {
        method: Method::Get,
        path: "/v1/decisions/{decision_id}",
        summary: "a past decision with its record, the answer to its hold and its outcome; `?wait=SECS` long-polls a pending hold",
        request: None,
        responses: &[(200, "Decision"), (401, ERR), (403, ERR), (404, ERR)],
        timed: false,
        handler: Handler::Roles(&[Role::Agent, Role::Operator], |a, c| {
            Box::pin(decisions::get(a, c))
        }),
    },
    Route {
        method: Method::Post,
        path: "/v1/decisions/{decision_id}/outcome",
        summary: "the observed next state; re-evaluates the decision (EFFECTIVE or FAILED)",
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
        timed: false,
        handler: Handler::Roles(&[Role::Agent, Role::Operator], |a, c| {
            Box::pin(outcomes::post(a, c))
        }),
    },
    Route {
        method: Method::Get,
        path: "/v1/confirmations",
        summary: "pending holds",
        request: None,
        responses: &[(200, "Holds"), (401, ERR), (403, ERR)],
        timed: false,
        handler: Handler::Roles(&[Role::Operator], |a, c| Box::pin(holds::list(a, c))),
    },
    Route {
        method: Method::Post,
        path: "/v1/confirmations/{id}/approve",
        summary: "approve a hold: refused if the action changed, the policy changed, the hold expired, or the latest state makes the action unsafe (Tier 1)",
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
        timed: false,
        handler: Handler::Roles(&[Role::Operator], |a, c| {
            Box::pin(holds::answer(a, c, AnswerKind::Approve))
        }),
    },
    Route {
        method: Method::Post,
        path: "/v1/confirmations/{id}/reject",
        summary: "reject a hold",
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
        timed: false,
        handler: Handler::Roles(&[Role::Operator], |a, c| {
            Box::pin(holds::answer(a, c, AnswerKind::Reject))
        }),
    },
    Route {
        method: Method::Post,
        path: "/v1/agents/{agent}/reset",
        summary: "return an agent to the normal mode of operation (docs/monitors.md); recorded",
        request: None,
        responses: &[
            (200, "AgentResetAnswer"),
            (401, ERR),
            (403, ERR),
            (503, "Overloaded"),
        ],
        timed: false,
        handler: Handler::Roles(&[Role::Operator], |a, c| Box::pin(agents::reset(a, c))),
    },
    Route {
        method: Method::Post,
        path: "/v1/policy/reload",
        summary: "re-read the policy file; a bad policy is refused and the old one stays",
        request: None,
        responses: &[
            (200, "ReloadAnswer"),
            (401, ERR),
            (403, ERR),
            (422, ERR),
            (503, "Overloaded"),
        ],
        timed: false,
        handler: Handler::Roles(&[Role::Operator], |a, c| Box::pin(admin::post_reload(a, c))),
    },
    Route {
        method: Method::Get,
        path: "/healthz",
        summary: "health: 200 while decisions can be made and recorded",
        request: None,
        responses: &[(200, "Health"), (503, "Health")],
        timed: false,
        handler: Handler::Open(|a, r| Box::pin(admin::health(a, r))),
    },
    Route {
        method: Method::Get,
        path: "/metrics",
        summary: "Prometheus metrics (text format)",
        request: None,
        responses: &[(200, "")],
        timed: false,
        handler: Handler::Open(|a, r| Box::pin(admin::metrics(a, r))),
    },
    Route {
        method: Method::Get,
        path: "/openapi.json",
        summary: "this API description",
        request: None,
        responses: &[(200, "")],
        timed: false,
        handler: Handler::Open(|a, r| Box::pin(admin::openapi(a, r))),
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    /// A route's id is the path segment where its template has `{…}`.
    #[test]
    fn a_path_names_its_id() {
        let at = |p: &str| ROUTES.iter().find(|r| r.path == p).unwrap();
        let outcome = at("/v1/decisions/{decision_id}/outcome");
        assert_eq!(outcome.path_id("/v1/decisions/ab-1/outcome"), "ab-1");
        assert_eq!(
            at("/v1/decisions/{decision_id}").path_id("/v1/decisions/x"),
            "x"
        );
        assert_eq!(at("/v1/decisions").path_id("/v1/decisions"), "");
        assert_eq!(
            at("/v1/decisions/{decision_id}").auth(),
            "agent or operator"
        );
        assert_eq!(at("/healthz").auth(), "none");
    }

    /// docs/http-api.md's route table lists every row with its roles (an agent's
    /// ownership aside), and its error table every code with its status.
    #[test]
    fn the_documentation_tells_the_table() {
        let doc = include_str!("../../../../docs/http-api.md");
        for r in ROUTES {
            let head = format!("| `{} {}` | ", r.method, r.path);
            let line = doc
                .lines()
                .find(|l| l.starts_with(&head))
                .unwrap_or_else(|| panic!("docs/http-api.md does not list `{head}`"));
            let who = line[head.len()..].split(" |").next().unwrap();
            let want = match r.roles() {
                None => "anyone".to_string(),
                Some(roles) => roles
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            };
            assert_eq!(who.replace(" (its own)", ""), want, "{line}");
        }
        for code in crate::error::ErrorCode::all() {
            let row = format!("| {} |", code.status().as_u16());
            let line = doc
                .lines()
                .find(|l| l.starts_with(&row))
                .unwrap_or_else(|| panic!("docs/http-api.md has no error row `{row}`"));
            assert!(
                line.contains(&format!("`{code}`")),
                "`{code}` is not in the row of {}",
                code.status()
            );
        }
    }
}
