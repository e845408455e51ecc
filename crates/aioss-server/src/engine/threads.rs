//! Starting the governor and committer threads, and the governor thread's loop: one job
//! at a time, each job's records handed to the committer as soon as they are decided,
//! holds expired and snapshots written between jobs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use aioss_audit::Writer;
use aioss_core::governor::PrevSource;
use aioss_core::Governor;
use serde_json::json;

use super::commit::{run_committer, Batch, Item};
use super::{Bounded, Engine, Job, Recovered, Shared, BATCH};
use crate::config::Settings;

/// Clears a thread's liveness flag when the thread ends, whether it returns or panics
/// (the guard is dropped while unwinding), so `/healthz` never says `ok` for a server whose
/// governor or committer is gone.
pub(super) struct Alive<'a>(pub &'a AtomicBool);

impl Drop for Alive<'_> {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// The running governor and committer threads.
#[derive(Debug)]
pub struct Threads {
    engine: std::thread::JoinHandle<()>,
    committer: std::thread::JoinHandle<Result<(), String>>,
    tier3: Option<std::thread::JoinHandle<()>>,
}

impl Threads {
    /// Wait for both threads (after [`Job::Shutdown`] was sent or every sender dropped);
    /// the error of a failed final commit.
    pub fn join(self) -> Result<(), String> {
        let e = self.engine.join();
        let c = self
            .committer
            .join()
            .map_err(|_| "the committer thread failed".to_string())?;
        e.map_err(|_| "the governor thread failed".to_string())?;
        // Its queue closed with the governor thread; it ends when it is drained.
        if let Some(t) = self.tier3 {
            let _ = t.join();
        }
        c
    }
}

/// Start the governor thread (owning `g`) and the committer thread (owning `w`).
/// Returns the job queue (bounded by `settings.queue_bound`) and the threads.
pub fn start(
    g: Governor,
    w: Writer,
    settings: Settings,
    shared: Arc<Shared>,
    recovered: Recovered,
) -> (SyncSender<Job>, Threads) {
    let (jobs_tx, jobs_rx) = std::sync::mpsc::sync_channel::<Job>(settings.queue_bound);
    let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<Batch>(BATCH);
    let (tier3_tx, tier3_rx) =
        std::sync::mpsc::sync_channel::<crate::tier3::Sample>(crate::tier3::QUEUE);
    let (mut engine, denied) = Engine::recovered(g, settings, Arc::clone(&shared), recovered);
    engine.tier3 = Some(tier3_tx);
    let tier3_shared = Arc::clone(&shared);
    // Tier 3 is an estimate for operators: a server that cannot start its thread runs
    // without it (its metrics stay empty) rather than not at all.
    let tier3 = std::thread::Builder::new()
        .name("aioss-tier3".into())
        .spawn(move || crate::tier3::run(&tier3_rx, &tier3_shared))
        .ok();
    // Set before the threads start, cleared by their guards when they end.
    shared.governor_alive.store(true, Relaxed);
    shared.committer_alive.store(true, Relaxed);
    let engine = std::thread::Builder::new()
        .name("aioss-governor".into())
        .spawn(move || run_engine(engine, denied, &jobs_rx, &batch_tx));
    let committer = std::thread::Builder::new()
        .name("aioss-audit".into())
        .spawn(move || run_committer(w, &batch_rx, &shared));
    // Spawning a thread fails only when the system is out of resources; there is no
    // server without these two.
    #[expect(
        clippy::expect_used,
        reason = "no server can run without its two threads; this is at start-up"
    )]
    let threads = Threads {
        engine: engine.expect("spawning the governor thread"),
        committer: committer.expect("spawning the audit thread"),
        tier3,
    };
    (jobs_tx, threads)
}

impl Engine {
    /// The governor thread's state for `g` and what the store held: the agents' latest
    /// reports, the ended holds, the holds made pending again (at most
    /// `max_pending_holds`, the latest); with the records to commit first (the start's
    /// snapshot, the denials of holds that cannot be restored).
    fn recovered(
        g: Governor,
        settings: Settings,
        shared: Arc<Shared>,
        recovered: Recovered,
    ) -> (Engine, Vec<Item>) {
        let mut g = g;
        // `prev.` is the governor's record, never the agent's to set (DESIGN.md).
        g.set_prev_source(PrevSource::Governor);
        let mut engine = Engine {
            g,
            latest: Bounded::new(settings.max_tracked_agents),
            recent: Bounded::new(settings.decision_cache),
            ended: Bounded::new(settings.max_pending_holds),
            since_snapshot: recovered.since_snapshot,
            settings,
            holds: HashMap::new(),
            next_expiry: f64::INFINITY,
            shared,
            tier3: None,
        };
        for (agent, report) in recovered.latest {
            engine.latest.put(&agent, report);
        }
        for (id, expired) in recovered.ended {
            engine.ended.put(&id, expired);
        }
        let mut first = Vec::new();
        if let Some(why) = recovered.start {
            engine.snapshot(why, &mut first);
        }
        // INVARIANT (bounded-holds): at most `max_pending_holds` come back, the latest ones.
        let restored = recovered.holds;
        let skip = restored
            .len()
            .saturating_sub(engine.settings.max_pending_holds);
        for r in restored.iter().skip(skip) {
            match engine.restore(r) {
                Ok(view) => {
                    if let Ok(mut h) = engine.shared.holds.lock() {
                        h.insert(r.id.clone(), view);
                    }
                }
                Err(why) => engine.deny_unrestorable(&r.id, &why, &mut first),
            }
        }
        engine
            .shared
            .metrics
            .pending_holds
            .store(engine.holds.len() as u64, Relaxed);
        (engine, first)
    }
}

/// The governor thread: `first` are records to commit before any job.
fn run_engine(mut e: Engine, first: Vec<Item>, rx: &Receiver<Job>, tx: &SyncSender<Batch>) {
    let shared = Arc::clone(&e.shared);
    let _alive = Alive(&shared.governor_alive);
    let mut done = false;
    let mut first = Some(first);
    while !done {
        let mut items = first.take().unwrap_or_default();
        if !items.is_empty() {
            e.shared
                .metrics
                .audit_lag_records
                .fetch_add(items.len() as u64, Relaxed);
            if tx.send(Batch { items, last: false }).is_err() {
                break;
            }
            items = Vec::new();
        }
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(j) => done = e.handle(j, &mut items),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => done = true,
        }
        if done {
            // Whatever is still queued is decided and committed before stopping.
            while let Ok(j) = rx.try_recv() {
                let _ = e.handle(j, &mut items);
            }
        }
        e.expire(&mut items);
        e.maybe_snapshot(&mut items);
        if done && e.since_snapshot > 0 {
            // The state at shutdown: the next start restores it and re-decides nothing.
            e.snapshot(json!({"reason": "shutdown"}), &mut items);
        }
        e.shared
            .metrics
            .pending_holds
            .store(e.holds.len() as u64, Relaxed);
        if items.is_empty() && !done {
            continue;
        }
        e.shared
            .metrics
            .audit_lag_records
            .fetch_add(items.len() as u64, Relaxed);
        // Each job's records go to the committer as soon as they are decided (all of one
        // job together: a decision and a denial it causes commit in one transaction).
        // Holding them back until a whole batch is decided would add the batch's deciding
        // time to every request's latency; the committer groups whatever arrived while it
        // was committing instead.
        if tx.send(Batch { items, last: done }).is_err() {
            break;
        }
    }
}
