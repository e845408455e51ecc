//! The way to the governor thread: queueing a job and waiting for its answer (a full
//! queue is the overload answer: execute the fallback), and recording a refusal made
//! before the governor through that same queue.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::TrySendError;

use axum::response::{IntoResponse, Response};
use tokio::sync::oneshot;

use super::App;
use crate::engine::{Head, Job, Reply, RequestRecord};
use crate::error::{ApiError, Detail, ErrorCode};
use crate::metrics::Family;
use crate::who::Who;

/// Why a job was not queued.
enum Enqueue {
    /// The queue is full; the job comes back (its proposal's state is read for the 503).
    Full(Box<Job>),
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
                    TrySendError::Full(job) => Enqueue::Full(Box::new(job)),
                    TrySendError::Disconnected(_) => Enqueue::Closed,
                })
            }
        }
    }

    /// The 503 of a full queue: the agent executes its fallback. For a proposal, the
    /// fallback is first checked by Tier 1 at the state it reports (issue 20: the
    /// load-time certificate does not cover a barrier row or a state outside its range),
    /// and the answer says whether it holds there.
    fn overloaded(&self, job: &Job) -> ApiError {
        self.shared.metrics.overloaded.fetch_add(1, Relaxed);
        let p = self.shared.policy();
        let certified = match job {
            Job::Decide {
                parsed: Some(parsed),
                ..
            } if parsed.policy_hash == p.hash => parsed
                .result
                .as_ref()
                .ok()
                .map(|prop| aioss_core::tier1::fallback_certified_at(&p, prop)),
            _ => None,
        };
        let message = if certified == Some(false) {
            "the governor's queue is full, and Tier 1 does not certify the fallback at the state you reported: stop, and retry later"
        } else {
            "the governor's queue is full: execute your fallback action and retry later"
        };
        ApiError::new(ErrorCode::Overloaded, message).detail(Detail::Fallback {
            action: aioss_core::governor::action_to_json(&p, &p.fallback),
            policy_hash: p.hash.clone(),
            certified,
        })
    }

    /// Send a job and wait for its answer (after its record is durable); a 503 when the
    /// queue is full or the governor is gone.
    pub(super) async fn call(
        &self,
        job: Job,
        rx: oneshot::Receiver<Reply>,
    ) -> Result<Reply, ApiError> {
        match self.enqueue(job) {
            Ok(()) => rx.await.map_err(|_| {
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the governor stopped before answering: execute your fallback",
                )
            }),
            Err(Enqueue::Full(job)) => Err(self.overloaded(&job)),
            Err(Enqueue::Closed) if *self.stopping.borrow() => Err(ApiError::new(
                ErrorCode::ShuttingDown,
                "the server is stopping: execute your fallback",
            )),
            Err(Enqueue::Closed) => Err(ApiError::new(
                ErrorCode::Unavailable,
                "the governor is not running: execute your fallback",
            )),
        }
    }

    /// Answer refusal `e` of the request `method path` from `who`, recorded (with a
    /// bounded prefix of its body, `e.about` as the decision id) while `who` is within its
    /// refusal-recording rate, else only counted. Under overload it is not recorded (see
    /// the module documentation of [`crate::http`]), and still refused.
    pub(crate) async fn refuse(
        &self,
        method: &str,
        path: &str,
        who: &Who,
        e: ApiError,
    ) -> Response {
        let (code, status) = (e.code, e.status());
        tracing::info!(status = status.as_u16(), code = code.as_str(), path, by = %who.id, "refused");
        if !self.shared.may_record_refusal(&who.id, &self.settings) {
            // INVARIANT (bounded-refusals): past its rate a principal's refusals are
            // answered and counted, never recorded.
            self.shared.metrics.count(Family::Refused, code.as_str());
            self.shared.metrics.count(Family::Unrecorded, code.as_str());
            return e.into_response();
        }
        let request = RequestRecord {
            head: Head::Http { method, path },
            who,
            body: &e.request_body,
        }
        .text(self.settings.refusal_body_bytes);
        let unrecorded = e.body();
        let (tx, rx) = oneshot::channel();
        let job = Job::Refuse {
            request,
            error: e,
            reply: tx,
        };
        let answer = match self.enqueue(job) {
            Ok(()) => rx.await.ok(),
            Err(_) => None,
        };
        match answer {
            Some(r) => code.respond(r.status, r.body),
            None => code.respond(status, unrecorded),
        }
    }
}
