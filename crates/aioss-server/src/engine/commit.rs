//! The audit committer's thread: group commit, then the answers.
//!
//! It takes everything the governor thread handed over during its last commit as one
//! batch, chains the records, commits them in one transaction (one fsync), and only then
//! publishes what the batch changed and answers each request: nothing is acknowledged
//! before it is durable, and nothing is acknowledged before others can see it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Instant;

use aioss_audit::{Record, RecordRef, Writer};
use aioss_core::Policy;
use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::{Reply, Shared, View, BATCH};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Stage;

/// What a durable record changes for readers.
#[derive(Debug)]
pub(super) enum Effect {
    /// Nothing.
    None,
    /// A decision to cache, with its pending hold's listing if it made one.
    Decision {
        id: String,
        agent: String,
        held: bool,
        hold: Option<String>,
    },
    /// The answer to a hold (its end).
    Answer { id: String },
    /// An outcome report.
    Outcome { id: String },
    /// A policy put in force.
    Policy(Arc<Policy>),
}

/// One record to commit, and the answer to give once it is durable.
#[derive(Debug)]
pub(super) struct Item {
    pub record: Record,
    pub reply: Option<oneshot::Sender<Reply>>,
    pub status: StatusCode,
    pub body: String,
    pub effect: Effect,
}

impl Item {
    /// A record nobody waits for, changing nothing for readers.
    pub fn quiet(record: Record) -> Item {
        Item {
            record,
            reply: None,
            status: StatusCode::OK,
            body: String::new(),
            effect: Effect::None,
        }
    }
}

/// An item whose record was handed to the writer: what is left to do once it is durable.
#[derive(Debug)]
struct Answered {
    reply: Option<oneshot::Sender<Reply>>,
    status: StatusCode,
    body: String,
    effect: Effect,
}

/// The records of one or more jobs; `last` after the final job.
#[derive(Debug)]
pub(super) struct Batch {
    pub items: Vec<Item>,
    pub last: bool,
}

/// The committer thread: commit each batch (joined with those that arrived meanwhile),
/// then publish and answer. After a failed commit nothing more is acknowledged.
pub(super) fn run_committer(
    mut w: Writer,
    rx: &Receiver<Batch>,
    shared: &Shared,
) -> Result<(), String> {
    let _alive = super::threads::Alive(&shared.committer_alive);
    let mut failed: Option<String> = None;
    for mut b in rx {
        // Batches decided while the previous commit ran join this one: one transaction
        // (one fsync) for all of them, instead of a queue of commits that each wait.
        while !b.last && b.items.len() < BATCH {
            match rx.try_recv() {
                Ok(more) => {
                    b.items.extend(more.items);
                    b.last = more.last;
                }
                Err(_) => break,
            }
        }
        let t = Instant::now();
        let n = b.items.len() as u64;
        let mut done = Vec::with_capacity(b.items.len());
        for it in b.items {
            let Item {
                record,
                reply,
                status,
                body,
                effect,
            } = it;
            if let Effect::Policy(p) = &effect {
                // The new policy's text is kept before its first record is durable, so
                // that `aioss audit replay STORE` follows the reload.
                if let Err(e) = w.put_policy(&p.hash, &p.source) {
                    failed.get_or_insert_with(|| e.to_string());
                }
            }
            let rr = w.push(record);
            let answer = Answered {
                reply,
                status,
                body,
                effect,
            };
            done.push((answer, rr));
        }
        let r = if failed.is_some() {
            Err(aioss_audit::Error::Store("an earlier commit failed".into()))
        } else if b.last {
            w.finish()
        } else {
            w.commit()
        };
        let m = &shared.metrics;
        let took = t.elapsed();
        m.stage(Stage::Commit, took.as_secs_f64());
        m.audit_commit_max_ns
            .fetch_max(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        m.audit_lag_records.fetch_sub(n, Relaxed);
        if let Err(e) = r {
            refuse_all(shared, &e, done);
            failed = Some(e.to_string());
            continue;
        }
        m.audit_records.fetch_add(n, Relaxed);
        publish(shared, done);
        // After the answers: housekeeping never delays an acknowledgement of this batch.
        if let Err(e) = w.maintain() {
            tracing::warn!(error = %e, "audit store housekeeping (WAL checkpoint) failed");
        }
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A failed commit: nothing of the batch is durable, so nothing of it is acknowledged.
fn refuse_all(shared: &Shared, e: &aioss_audit::Error, done: Vec<(Answered, RecordRef)>) {
    shared.metrics.audit_errors.fetch_add(1, Relaxed);
    shared.store_failed.store(true, Relaxed);
    tracing::error!(error = %e, "audit store commit failed; refusing further work");
    let error = ApiError::new(
        ErrorCode::AuditStoreFailed,
        format!("the audit store failed ({e}): nothing was recorded; execute your fallback"),
    );
    let body = error.body();
    for (it, _) in done {
        if let Some(tx) = it.reply {
            let _ = tx.send(Reply {
                status: error.status(),
                body: body.clone(),
            });
        }
    }
}

/// Publish what a durable batch changed, then answer its requests.
fn publish(shared: &Shared, done: Vec<(Answered, RecordRef)>) {
    let mut changed = false;
    let mut replies = Vec::with_capacity(done.len());
    for (it, rr) in done {
        let body = rr.insert_into(&it.body);
        match it.effect {
            Effect::None => {}
            Effect::Decision {
                id,
                agent,
                held,
                hold,
            } => {
                if let Some(h) = hold {
                    if let Ok(mut hs) = shared.holds.lock() {
                        hs.insert(id.clone(), h);
                    }
                }
                if let Ok(mut c) = shared.cache.lock() {
                    let view = View {
                        agent,
                        decision: body.clone(),
                        held,
                        confirmation: None,
                        outcome: None,
                    };
                    c.insert(id, view);
                }
            }
            Effect::Answer { id } => {
                if let Ok(mut hs) = shared.holds.lock() {
                    hs.remove(&id);
                }
                if let Some(v) = shared
                    .cache
                    .lock()
                    .ok()
                    .as_mut()
                    .and_then(|c| c.get_mut(&id))
                {
                    v.confirmation = Some(body.clone());
                }
                changed = true;
            }
            Effect::Outcome { id } => {
                if let Some(v) = shared
                    .cache
                    .lock()
                    .ok()
                    .as_mut()
                    .and_then(|c| c.get_mut(&id))
                {
                    v.outcome = Some(body.clone());
                }
                changed = true;
            }
            Effect::Policy(p) => {
                if let Ok(mut cur) = shared.policy.write() {
                    *cur = p;
                }
            }
        }
        if let Some(tx) = it.reply {
            replies.push((tx, it.status, body));
        }
    }
    if changed {
        shared.changed.send_modify(|v| *v += 1);
    }
    // INVARIANT (answer-after-publish): every effect of the batch is visible before
    // anyone hears of it (a hold denied at once is answered in the same batch as its
    // decision).
    for (tx, status, body) in replies {
        let _ = tx.send(Reply { status, body });
    }
}
