//! Tier 3 in the server (issue 20): the estimates of [`Estimator`] (each row's observed
//! Lipschitz quotient, each dynamics equation's observed error), kept up to date on a
//! thread of their own from the decisions and outcomes the governor thread hands over,
//! and published in `/metrics` beside the declared values.
//!
//! Asynchronous: the governor thread never waits on it. Samples go through a bounded
//! queue with `try_send`; when it is full a sample is dropped and counted
//! (`aioss_tier3_samples_dropped_total`), so the estimates may miss samples under load but
//! no decision is ever slower for them beyond the hand-over.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;

use aioss_core::governor::{Estimator, StateValue};
use aioss_core::{Policy, Proposal};

use crate::engine::Shared;

/// Samples waiting for the Tier 3 thread; past it, new ones are dropped.
pub const QUEUE: usize = 4096;

/// What the governor thread hands over.
#[derive(Debug)]
pub enum Sample {
    /// A decision: the proposal, the action executed and the decision's time.
    Decision {
        /// The policy it was decided under.
        policy: Arc<Policy>,
        /// The proposal.
        proposal: Proposal,
        /// The executed action, encoded.
        executed: Vec<f64>,
        /// The decision's time.
        time: f64,
    },
    /// An outcome: the decision's proposal and executed action, and the observed state.
    Outcome {
        /// The policy it was decided under.
        policy: Arc<Policy>,
        /// The decided proposal.
        proposal: Proposal,
        /// The executed action, encoded.
        executed: Vec<f64>,
        /// The observed next state.
        observed: Vec<Option<StateValue>>,
    },
}

/// One published estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct Gauge {
    /// `lipschitz` (label `row`) or `dynamics_error` (label `state`).
    pub what: &'static str,
    /// The row or state variable.
    pub label: String,
    /// The largest value observed.
    pub observed: f64,
    /// What the policy declares, if it does.
    pub declared: Option<f64>,
    /// Samples behind `observed`.
    pub samples: u64,
}

/// Hand `s` over without waiting; a full queue drops it (counted).
pub fn offer(tx: &SyncSender<Sample>, shared: &Shared, s: Sample) {
    match tx.try_send(s) {
        Ok(()) => {}
        Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
            shared.metrics.tier3_dropped.fetch_add(1, Relaxed);
        }
    }
}

/// The Tier 3 thread's loop: estimate, and publish after each burst of samples.
pub fn run(rx: &Receiver<Sample>, shared: &Shared) {
    let mut est: Option<(String, Estimator)> = None;
    while let Ok(first) = rx.recv() {
        let mut policy = take(&mut est, first);
        // Whatever else is already waiting, then publish once.
        while let Ok(s) = rx.try_recv() {
            policy = take(&mut est, s);
        }
        if let Some((_, e)) = &est {
            let gauges = gauges(&policy, e);
            if let Ok(mut g) = shared.metrics.tier3.lock() {
                *g = gauges;
            }
        }
    }
}

/// Feed one sample (a new policy starts the estimates afresh); the sample's policy.
fn take(est: &mut Option<(String, Estimator)>, s: Sample) -> Arc<Policy> {
    let p = match &s {
        Sample::Decision { policy, .. } | Sample::Outcome { policy, .. } => Arc::clone(policy),
    };
    if est.as_ref().is_none_or(|(h, _)| *h != p.hash) {
        *est = Some((p.hash.clone(), Estimator::new(&p)));
    }
    if let Some((_, e)) = est.as_mut() {
        match s {
            Sample::Decision {
                proposal,
                executed,
                time,
                ..
            } => e.decision(&p, &proposal, &executed, time),
            Sample::Outcome {
                proposal,
                executed,
                observed,
                ..
            } => e.outcome(&p, &proposal, &executed, &observed),
        }
    }
    p
}

/// The estimates as gauges: every row with a declared `lipschitz` or a sample (the
/// largest over a constraint's rows is what its `lipschitz` bounds), every equation.
fn gauges(p: &Policy, e: &Estimator) -> Vec<Gauge> {
    let mut out = Vec::new();
    for (row, r) in p.lattice.rows.iter().zip(e.rows()) {
        let declared = p.constraints.get(row.constraint).and_then(|c| c.lipschitz);
        if declared.is_some() || r.samples > 0 {
            out.push(Gauge {
                what: "lipschitz",
                label: row.name.clone(),
                observed: r.max_quotient,
                declared,
                samples: r.samples,
            });
        }
    }
    if let Some(dy) = &p.dynamics {
        for (k, ((si, _), q)) in dy.equations.iter().zip(e.equations()).enumerate() {
            out.push(Gauge {
                what: "dynamics_error",
                label: p
                    .states
                    .get(*si)
                    .map_or_else(String::new, |s| s.name.clone()),
                observed: q.max_error,
                declared: dy.error_bound.get(k).copied(),
                samples: q.samples,
            });
        }
    }
    out
}
