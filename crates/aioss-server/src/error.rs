//! Every error the server answers: one enum of codes ([`ErrorCode`], each with its HTTP
//! status, whether a refusal with it is recorded, and the headers it carries) and the
//! error itself ([`ApiError`]), whose body is `{"error": {"code", "message", "field"?}}`.
//!
//! Why one enum: the codes are the contract with every client, the table in
//! docs/http-api.md is checked against it, and a status or header can no longer differ
//! between two places that answer the same code.

use aioss_core::governor::InputError;
use aioss_core::InputCode;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

/// An error code on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The governor refused the input (a proposal, or an outcome's state): 400.
    Input(InputCode),
    /// A body that cannot be read (e.g. broken chunked encoding): 400, the connection
    /// is closed.
    MalformedBody,
    /// No `Authorization` header: 401.
    MissingToken,
    /// A malformed or unknown token: 401.
    BadToken,
    /// The caller's role may not call the route: 403.
    Forbidden,
    /// The body names another agent than the token's: 403.
    IdentityMismatch,
    /// The body claims other agent attributes than the token's: 403.
    AttributesMismatch,
    /// An agent asked about another agent's decision: 403.
    NotYourDecision,
    /// No such decision: 404.
    UnknownDecision,
    /// No pending hold with that id: 404.
    NoPendingHold,
    /// No such route: 404.
    NotFound,
    /// The route does not take that method: 405.
    MethodNotAllowed,
    /// The body did not arrive in time: 408, the connection is closed.
    BodyTimeout,
    /// An approval names another action than the held one: 409.
    ActionChanged,
    /// The policy changed since the decision or hold: 409.
    StalePolicy,
    /// The hold expired before the answer: 409.
    HoldExpired,
    /// The held action is not safe in the latest reported state: 409.
    UnsafeNow,
    /// The decision's outcome was already reported: 409.
    OutcomeAlreadyReported,
    /// A body over [`crate::http::MAX_BODY`]: 413.
    TooLarge,
    /// A reloaded policy that does not load: 422.
    BadPolicy,
    /// An agent over its `rate_limit`: 429, with `Retry-After`.
    RateLimited,
    /// The governor's queue is full: 503, with `Retry-After` and the fallback to execute.
    Overloaded,
    /// The server is stopping: 503.
    ShuttingDown,
    /// An audit commit failed; nothing more is acknowledged: 503.
    AuditStoreFailed,
    /// The governor thread is gone: 503.
    Unavailable,
    /// The audit store could not be read for a decision no longer cached: 503.
    StoreUnavailable,
    /// A reserved connection asked for anything but health or metrics: 503, with
    /// `Retry-After`.
    TooManyConnections,
}

impl ErrorCode {
    /// Every code but the governor's input codes ([`InputCode::ALL`]).
    pub const SERVER: [ErrorCode; 26] = [
        ErrorCode::MalformedBody,
        ErrorCode::MissingToken,
        ErrorCode::BadToken,
        ErrorCode::Forbidden,
        ErrorCode::IdentityMismatch,
        ErrorCode::AttributesMismatch,
        ErrorCode::NotYourDecision,
        ErrorCode::UnknownDecision,
        ErrorCode::NoPendingHold,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTimeout,
        ErrorCode::ActionChanged,
        ErrorCode::StalePolicy,
        ErrorCode::HoldExpired,
        ErrorCode::UnsafeNow,
        ErrorCode::OutcomeAlreadyReported,
        ErrorCode::TooLarge,
        ErrorCode::BadPolicy,
        ErrorCode::RateLimited,
        ErrorCode::Overloaded,
        ErrorCode::ShuttingDown,
        ErrorCode::AuditStoreFailed,
        ErrorCode::Unavailable,
        ErrorCode::StoreUnavailable,
        ErrorCode::TooManyConnections,
    ];

    /// Every code the server answers.
    pub fn all() -> impl Iterator<Item = ErrorCode> {
        InputCode::ALL
            .into_iter()
            .map(ErrorCode::Input)
            .chain(ErrorCode::SERVER)
    }

    /// The code on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Input(c) => c.as_str(),
            ErrorCode::MalformedBody => "malformed_body",
            ErrorCode::MissingToken => "missing_token",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::IdentityMismatch => "identity_mismatch",
            ErrorCode::AttributesMismatch => "attributes_mismatch",
            ErrorCode::NotYourDecision => "not_your_decision",
            ErrorCode::UnknownDecision => "unknown_decision",
            ErrorCode::NoPendingHold => "no_pending_hold",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BodyTimeout => "body_timeout",
            ErrorCode::ActionChanged => "action_changed",
            ErrorCode::StalePolicy => "stale_policy",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::UnsafeNow => "unsafe_now",
            ErrorCode::OutcomeAlreadyReported => "outcome_already_reported",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::BadPolicy => "bad_policy",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::AuditStoreFailed => "audit_store_failed",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::TooManyConnections => "too_many_connections",
        }
    }

    /// The HTTP status it is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::Input(_) | ErrorCode::MalformedBody => StatusCode::BAD_REQUEST,
            ErrorCode::MissingToken | ErrorCode::BadToken => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden
            | ErrorCode::IdentityMismatch
            | ErrorCode::AttributesMismatch
            | ErrorCode::NotYourDecision => StatusCode::FORBIDDEN,
            ErrorCode::UnknownDecision | ErrorCode::NoPendingHold | ErrorCode::NotFound => {
                StatusCode::NOT_FOUND
            }
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::ActionChanged
            | ErrorCode::StalePolicy
            | ErrorCode::HoldExpired
            | ErrorCode::UnsafeNow
            | ErrorCode::OutcomeAlreadyReported => StatusCode::CONFLICT,
            ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::BadPolicy => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::Overloaded
            | ErrorCode::ShuttingDown
            | ErrorCode::AuditStoreFailed
            | ErrorCode::Unavailable
            | ErrorCode::StoreUnavailable
            | ErrorCode::TooManyConnections => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Is a refusal with this code recorded (while its principal is within
    /// `refusal_record_rate`)? Not 401 (anyone who can reach the port could fill the
    /// disk), 429 and 503 (a flood must not grow the log), nor a path or method that
    /// names no route (no caller is known).
    pub fn recorded(self) -> bool {
        !matches!(
            self.status(),
            StatusCode::UNAUTHORIZED
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::SERVICE_UNAVAILABLE
        ) && !matches!(self, ErrorCode::NotFound | ErrorCode::MethodNotAllowed)
    }

    /// Does the answer tell the client when to retry (`Retry-After: 1`)?
    fn retry_after(self) -> bool {
        matches!(
            self,
            ErrorCode::RateLimited | ErrorCode::Overloaded | ErrorCode::TooManyConnections
        )
    }

    /// Does the answer close the connection (`Connection: close`)? When the body was not
    /// read to its end, the connection cannot carry another request.
    fn closes_connection(self) -> bool {
        matches!(self, ErrorCode::BodyTimeout | ErrorCode::MalformedBody)
    }

    /// An answer to an error with this code: `status` and `body` (its own
    /// [`ApiError::body`], or the reply of its record, which adds `record` or is the 503
    /// of a failed commit), with this code's headers either way: a connection whose body
    /// was not read closes whatever the reply says.
    pub fn respond(self, status: StatusCode, body: String) -> Response {
        let mut r = crate::http::json_response(status, body);
        if self.retry_after() {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.closes_connection() {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an error's body carries besides code, message and field (a few errors only:
/// boxed in [`ApiError`], which stays small for the `Result`s that carry it).
#[derive(Clone, Debug, PartialEq)]
pub enum Detail {
    /// `unsafe_now`: the rows not SAT, as `error.constraints`.
    Constraints(Value),
    /// `rate_limited`: seconds until the next request is allowed, as `retry_after_secs`.
    RetryAfter(f64),
    /// `overloaded`: `"execute": "fallback"`, the fallback action (its JSON as decisions
    /// print it, in the policy's order of the action variables) and the policy's hash.
    Fallback {
        /// The fallback action's JSON.
        action: String,
        /// The hash of the policy in force.
        policy_hash: String,
        /// Whether Tier 1 certified the fallback at the proposal's state (budgets and
        /// `prev.` over their declared ranges); `None` where no state was given.
        certified: Option<bool>,
    },
}

/// An error answer, and what a record of it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    /// The code (which gives the status).
    pub code: ErrorCode,
    /// What is wrong, lowercase, user input in backticks.
    pub message: String,
    /// The JSON path of the offending field, if any.
    pub field: Option<String>,
    /// More of the body.
    pub detail: Option<Box<Detail>>,
    /// The decision or hold the request named: the `decision_id` of its record.
    pub about: String,
    /// The request body, of which its record keeps a bounded prefix.
    pub request_body: String,
}

impl ApiError {
    /// An error with a code and a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            field: None,
            detail: None,
            about: String::new(),
            request_body: String::new(),
        }
    }

    /// Naming the offending field.
    #[must_use]
    pub fn field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// With more in the body.
    #[must_use]
    pub fn detail(mut self, detail: Detail) -> ApiError {
        self.detail = Some(Box::new(detail));
        self
    }

    /// About the decision or hold `id`.
    #[must_use]
    pub fn about(mut self, id: impl Into<String>) -> ApiError {
        self.about = id.into();
        self
    }

    /// Refusing this request body (its record keeps a bounded prefix).
    #[must_use]
    pub fn with_body(mut self, body: impl Into<String>) -> ApiError {
        self.request_body = body.into();
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The JSON body: `{"error": {"code", "message", "field"?}}` (keys in sorted order,
    /// as serde_json writes a map), and what [`Detail`] adds.
    pub fn body(&self) -> String {
        let mut e = Map::new();
        e.insert("code".into(), Value::from(self.code.as_str()));
        e.insert("message".into(), Value::from(self.message.as_str()));
        if let Some(f) = &self.field {
            e.insert("field".into(), Value::from(f.as_str()));
        }
        if let Some(Detail::Constraints(rows)) = self.detail.as_deref() {
            e.insert("constraints".into(), rows.clone());
        }
        let mut s = String::from("{\"error\":");
        s.push_str(&Value::Object(e).to_string());
        match self.detail.as_deref() {
            None | Some(Detail::Constraints(_)) => {}
            Some(Detail::RetryAfter(secs)) => {
                s.push_str(",\"retry_after_secs\":");
                s.push_str(&Value::from(*secs).to_string());
            }
            Some(Detail::Fallback {
                action,
                policy_hash,
                certified,
            }) => {
                s.push_str(",\"execute\":\"fallback\",\"fallback\":");
                s.push_str(action);
                if let Some(c) = certified {
                    s.push_str(",\"fallback_certified\":");
                    s.push_str(if *c { "true" } else { "false" });
                }
                s.push_str(",\"policy\":{\"hash\":");
                s.push_str(&Value::from(policy_hash.as_str()).to_string());
                s.push('}');
            }
        }
        s.push('}');
        s
    }
}

impl From<InputError> for ApiError {
    fn from(e: InputError) -> ApiError {
        ApiError {
            code: ErrorCode::Input(e.code),
            message: e.message,
            field: e.field,
            detail: None,
            about: String::new(),
            request_body: String::new(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.code.respond(self.status(), self.body())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    /// The bodies are byte for byte what the server wrote before the codes were typed
    /// (a map's keys sorted; `overloaded`'s fallback in the policy's order).
    #[test]
    fn bodies_are_as_they_were() {
        let e = ApiError::new(ErrorCode::IdentityMismatch, "the body claims `x`").field("agent");
        assert_eq!(
            e.body(),
            r#"{"error":{"code":"identity_mismatch","field":"agent","message":"the body claims `x`"}}"#
        );
        let e = ApiError::new(ErrorCode::RateLimited, "slow down").detail(Detail::RetryAfter(0.5));
        assert_eq!(
            e.body(),
            r#"{"error":{"code":"rate_limited","message":"slow down"},"retry_after_secs":0.5}"#
        );
        let e = ApiError::new(ErrorCode::Overloaded, "full").detail(Detail::Fallback {
            action: r#"{"vx":0,"mode":"stop"}"#.into(),
            policy_hash: "sha256:ab".into(),
            certified: None,
        });
        assert_eq!(
            e.body(),
            r#"{"error":{"code":"overloaded","message":"full"},"execute":"fallback","fallback":{"vx":0,"mode":"stop"},"policy":{"hash":"sha256:ab"}}"#
        );
        let e = ApiError::new(ErrorCode::UnsafeNow, "no")
            .detail(Detail::Constraints(serde_json::json!([])));
        assert_eq!(
            e.body(),
            r#"{"error":{"code":"unsafe_now","constraints":[],"message":"no"}}"#
        );
    }

    /// Every code has one name, and only 401, 429 and 503 (and the router's own 404 and
    /// 405) go unrecorded.
    #[test]
    fn codes_are_distinct_and_recorded_as_documented() {
        let all: Vec<ErrorCode> = ErrorCode::all().collect();
        let names: std::collections::BTreeSet<&str> = all.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), all.len());
        for c in all {
            let s = c.status().as_u16();
            let quiet = matches!(s, 401 | 429 | 503)
                || matches!(c, ErrorCode::NotFound | ErrorCode::MethodNotAllowed);
            assert_eq!(c.recorded(), !quiet, "{c}");
        }
    }
}
