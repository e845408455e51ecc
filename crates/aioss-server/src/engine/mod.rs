//! The governor's thread and the audit committer's thread: the work ([`Job`]) and the
//! state of the governor thread (`Engine`), with one file per kind of work.
//!
//! Why one thread for the governor: [`Governor`] is deterministic and takes `&mut self`;
//! one ordered stream of decisions is what makes the audit log replayable. Every piece of
//! work that reads or changes governor-side state (decisions, answers to holds, outcomes,
//! policy reloads, refusals to record) is a [`Job`] on one bounded channel, so the order of
//! the log is the order of the work, and a full channel is the server's overload signal.
//! The HTTP workers parse what they can before a job is queued (a proposal, an outcome's
//! state, an answer's fields), in parallel, so the governor thread only decides.
//!
//! Why a second thread for the store: a decision is acknowledged only once its record is
//! durable. The governor thread hands each job's records to the committer as soon as they
//! are decided and goes on deciding, while the committer takes everything that arrived
//! during its last commit as one batch, chains the records, commits them in one
//! transaction (one fsync for the whole batch: group commit across concurrent requests),
//! and only then answers each request and publishes what the batch changed (cached
//! decisions, pending holds, answers).
//!
//! * [`threads`]: starting both threads, the governor thread's loop;
//! * `commit`: the committer's loop, and what a durable batch publishes;
//! * [`shared`]: what the HTTP side reads (the policy, cached decisions, pending holds);
//! * `decide`, `holds`, `outcomes`, `reload`, `refusal`: each kind of job;
//! * [`mod@recover`]: what a start finds in the store.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use aioss_audit::{Kind, Record};
use aioss_core::governor::{InputError, RowReport, StateValue};
use aioss_core::{Governor, Policy, Proposal};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::sync::oneshot;

use crate::config::Settings;
use crate::error::ApiError;
use crate::who::Who;

mod agents;
mod bounded;
mod commit;
mod decide;
mod holds;
mod outcomes;
pub mod recover;
mod refusal;
mod reload;
pub mod shared;
pub mod threads;

use bounded::Bounded;
use commit::Item;
pub use holds::{action_digest, Answer, AnswerFields, AnswerKind};
pub use outcomes::{ObservedState, OutcomeReport};
pub use recover::{recover, Recovered, Restored};
pub(crate) use refusal::{Head, RequestRecord};
pub use shared::{Cache, Shared, View};
pub use threads::{start, Threads};

/// Most records committed in one transaction, and the most jobs' records waiting for the
/// committer (past it the governor thread waits, the job queue fills, and new requests get
/// the overload answer).
pub const BATCH: usize = 4096;

/// An answer of the governor thread: status and JSON body (with its `record` once
/// durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: StatusCode,
    /// JSON body.
    pub body: String,
}

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        crate::http::json_response(self.status, self.body)
    }
}

/// Something an HTTP worker parsed under the policy in force, with that policy's hash:
/// the governor thread uses it while that is still the policy in force (parsing is a
/// fifth of a feasible decision's time on that thread, and the workers do it in
/// parallel), and parses again after a reload.
#[derive(Clone, Debug)]
pub struct Parsed<T> {
    /// The hash of the policy it was parsed against.
    pub policy_hash: String,
    /// What parsing gave.
    pub result: Result<T, InputError>,
}

/// Work for the governor thread.
#[derive(Debug)]
pub enum Job {
    /// Decide a proposal (the body, with the agent's identity already filled in).
    Decide {
        /// The proposal line, recorded as it is.
        raw: String,
        /// The line parsed by the HTTP worker.
        parsed: Option<Parsed<Proposal>>,
        /// When it was queued.
        enqueued: Instant,
        /// Who sent it (recorded with a bad proposal too long to keep whole).
        who: Who,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Record a request refused before the governor, then answer it.
    Refuse {
        /// The request as its record keeps it (`RequestRecord`: method, path, who, a
        /// bounded body).
        request: String,
        /// The refusal (its `about` is the record's decision id).
        error: ApiError,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// An observed outcome of a decision.
    Outcome {
        /// The report.
        report: OutcomeReport,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// An operator's answer to a hold.
    Answer {
        /// The answer.
        answer: Answer,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// An operator's reset of an agent's mode of operation.
    ResetAgent {
        /// The agent's id.
        agent: String,
        /// Who asked.
        who: Who,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Put a new policy in force.
    Reload {
        /// The loaded policy.
        policy: Box<Policy>,
        /// Who asked (an operator, or SIGHUP).
        who: Who,
        /// Where the answer goes.
        reply: Option<oneshot::Sender<Reply>>,
    },
    /// Finish: decide what is queued, commit, sign a checkpoint, stop.
    Shutdown,
}

/// An agent's latest reported state, kept as the text it came in: a reload keeps it, and
/// it is read under the policy in force when an approval re-checks a hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Report {
    /// The line of its latest decided proposal.
    Proposal(String),
    /// The `state` object of its latest observed outcome.
    Observed(String),
}

impl Report {
    /// The reported state under `p`.
    pub fn state(&self, p: &Policy) -> Result<Vec<Option<StateValue>>, InputError> {
        match self {
            Report::Proposal(line) => Proposal::parse(p, line).map(|x| x.state),
            Report::Observed(state) => Proposal::parse_state(p, state),
        }
    }
}

/// The governor thread's state.
struct Engine {
    g: Governor,
    settings: Settings,
    /// Pending holds, by decision id.
    holds: HashMap<String, holds::Hold>,
    /// The earliest expiry of a pending hold (infinity when none).
    next_expiry: f64,
    /// Each agent's latest report.
    latest: Bounded<Report>,
    /// Records made since the last `snapshot` record.
    since_snapshot: u64,
    /// Recent decisions, for their outcomes.
    recent: Bounded<outcomes::Recent>,
    /// Holds that ended, by id: true if by expiry (bounded like the pending holds).
    ended: Bounded<bool>,
    shared: Arc<Shared>,
    /// Where Tier 3's samples go (never waited on; `None` without its thread).
    tier3: Option<std::sync::mpsc::SyncSender<crate::tier3::Sample>>,
}

impl Engine {
    /// Hand a sample to Tier 3 without waiting (dropped and counted when its queue is
    /// full).
    fn to_tier3(&self, s: impl FnOnce(Arc<Policy>) -> crate::tier3::Sample) {
        let Some(tx) = &self.tier3 else { return };
        // INVARIANT (tier3-layout): a sample goes with the policy its proposal was encoded
        // under (the shared policy lags a reload until its record is durable).
        let policy = self.shared.policy();
        if policy.hash == self.g.policy().hash {
            crate::tier3::offer(tx, &self.shared, s(policy));
        }
    }
}

fn wall_now() -> f64 {
    aioss_audit::record::now_secs()
}

/// Rows as answers list them: `{"id", "status", "margin"}` (`margin` null when invalid).
fn rows_json(rows: &[RowReport]) -> Value {
    Value::Array(
        rows.iter()
            .map(|r| {
                json!({
                    "id": r.id,
                    "status": r.status.as_str(),
                    "margin": if r.margin.is_invalid() { Value::Null } else { json!(r.margin.lo) },
                })
            })
            .collect(),
    )
}

/// JSON the server itself wrote (an action's JSON), as a value.
fn parse_json(v: &str) -> Value {
    serde_json::from_str(v).unwrap_or(Value::Null)
}

impl Engine {
    fn policy(&self) -> &Policy {
        self.g.policy()
    }

    fn record(&self, kind: Kind, id: &str, request: &str, answer: &str) -> Record {
        aioss_audit::event_record(
            kind,
            self.g.policy(),
            id,
            request,
            answer,
            wall_now(),
            self.g.state_digest(),
        )
    }

    /// Handle one job; true when it asks to stop.
    fn handle(&mut self, job: Job, items: &mut Vec<Item>) -> bool {
        self.shared
            .metrics
            .queue_depth
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        match job {
            Job::Decide {
                raw,
                parsed,
                enqueued,
                who,
                reply,
            } => {
                self.shared.metrics.stage(
                    crate::metrics::Stage::Queue,
                    enqueued.elapsed().as_secs_f64(),
                );
                self.decide(raw, parsed, &who, reply, items);
            }
            Job::Refuse {
                request,
                error,
                reply,
            } => self.record_refusal(&request, error, reply, items),
            Job::Outcome { report, reply } => self.outcome(report, reply, items),
            Job::Answer { answer, reply } => self.answer(answer, reply, items),
            Job::ResetAgent { agent, who, reply } => self.reset_agent(&agent, &who, reply, items),
            Job::Reload { policy, who, reply } => self.reload(*policy, &who, reply, items),
            Job::Shutdown => return true,
        }
        false
    }
}
