//! Who is calling, and whether it may: the bearer token decides the principal (from the
//! request's headers alone, before any body is read), the route's row the roles that may
//! call it, and an agent's `rate_limit` how often (every route: a GET costs a token as a
//! proposal does). In local-development mode (no configuration) every caller is `local`
//! and may call every route.
//!
//! A request without a valid token is answered 401, counted and logged at most once a
//! second, never recorded; a wrong role is 403 `forbidden` (recorded); an agent over its
//! rate is 429 (counted, not recorded).

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use super::App;
use crate::config::Principal;
use crate::error::{ApiError, Detail, ErrorCode};
use crate::metrics::Family;
use crate::who::{Role, Who};

/// The caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// As records name it.
    pub who: Who,
    /// Its entry in the configuration; `None` in local-development mode.
    pub principal: Option<Principal>,
}

impl App {
    /// Who is calling, from the request's headers; a 401 (counted and logged, never
    /// recorded) otherwise.
    pub(super) fn authenticate(&self, parts: &Parts) -> Result<Caller, ApiError> {
        match self.principal(&parts.headers) {
            Ok(None) => Ok(Caller {
                who: Who::local(),
                principal: None,
            }),
            Ok(Some(p)) => Ok(Caller {
                who: Who {
                    id: p.id.clone(),
                    role: p.role,
                },
                principal: Some(p.clone()),
            }),
            Err(e) => Err(self.unauthenticated(e, parts)),
        }
    }

    /// Whether `caller` may call a route for `roles` now: its role (403 `forbidden`),
    /// then its rate (429 `rate_limited`, counted).
    pub(super) fn admit(&self, caller: &Caller, roles: &[Role]) -> Result<(), ApiError> {
        let Some(p) = &caller.principal else {
            // Local-development mode: every caller may call every route.
            return Ok(());
        };
        if !roles.contains(&p.role) {
            let want: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            return Err(ApiError::new(
                ErrorCode::Forbidden,
                format!(
                    "`{}` is an {}; this endpoint is for: {}",
                    p.id,
                    p.role,
                    want.join(", ")
                ),
            ));
        }
        if let Err(wait) = self.limiter.take(&p.id, p.rate_limit, p.burst) {
            self.shared.metrics.rate_limited.fetch_add(1, Relaxed);
            return Err(ApiError::new(
                ErrorCode::RateLimited,
                format!(
                    "agent `{}` is over its rate limit of {}/s: execute your fallback and retry",
                    p.id, p.rate_limit
                ),
            )
            .detail(Detail::RetryAfter(wait)));
        }
        Ok(())
    }

    /// The principal of the bearer token: `Ok(None)` in local-development mode.
    fn principal(&self, headers: &HeaderMap) -> Result<Option<&Principal>, ApiError> {
        let Some(c) = &self.config else {
            return Ok(None);
        };
        let Some(h) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(
                ErrorCode::MissingToken,
                "an `Authorization: Bearer TOKEN` header is required",
            ));
        };
        let token = h
            .to_str()
            .ok()
            .and_then(|s| s.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::BadToken,
                    "the `Authorization` header must be `Bearer TOKEN`",
                )
            })?;
        c.principals
            .get(&crate::config::hash_token(token))
            .map(Some)
            .ok_or_else(|| ApiError::new(ErrorCode::BadToken, "unknown token"))
    }

    /// Count a request without a valid token (`aioss_unauthenticated_total`) and log it
    /// at most once a second with a count; it is never recorded (anyone who can reach
    /// the port could otherwise fill the disk).
    fn unauthenticated(&self, e: ApiError, req: &Parts) -> ApiError {
        let code = e.code.as_str();
        let path = req.uri.path();
        let peer = req
            .extensions
            .get::<crate::listen::Peer>()
            .map_or_else(String::new, |p| p.0.to_string());
        self.shared.metrics.count(Family::Unauthenticated, code);
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
        e
    }
}
