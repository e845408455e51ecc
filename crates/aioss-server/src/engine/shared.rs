//! What the HTTP side reads and the committer publishes after each durable batch: the
//! policy in force, recent decisions, pending holds, health and metrics.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

use aioss_core::Policy;

use crate::config::Settings;
use crate::metrics::Metrics;

/// A decision as `GET /v1/decisions/{id}` shows it.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// The proposing agent.
    pub agent: String,
    /// The decision JSON with its `record`.
    pub decision: String,
    /// Was it a hold?
    pub held: bool,
    /// The answer to the hold, once there is one.
    pub confirmation: Option<String>,
    /// The reported outcome.
    pub outcome: Option<String>,
}

/// Recent decisions, bounded (oldest evicted first; they remain in the store).
#[derive(Debug, Default)]
pub struct Cache {
    map: HashMap<String, View>,
    order: VecDeque<String>,
    cap: usize,
}

impl Cache {
    /// A cache of at most `cap` decisions.
    pub fn new(cap: usize) -> Cache {
        Cache {
            cap: cap.max(1),
            ..Cache::default()
        }
    }

    pub(super) fn insert(&mut self, id: String, v: View) {
        // INVARIANT (bounded-cache): at most `cap` entries.
        while self.map.len() >= self.cap {
            match self.order.pop_front() {
                Some(old) => {
                    self.map.remove(&old);
                }
                None => break,
            }
        }
        self.order.push_back(id.clone());
        self.map.insert(id, v);
    }

    /// The view of a decision, if it is still cached.
    pub fn get(&self, id: &str) -> Option<&View> {
        self.map.get(id)
    }

    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut View> {
        self.map.get_mut(id)
    }
}

/// What the HTTP side reads, and the committer publishes after each durable batch.
#[derive(Debug)]
pub struct Shared {
    /// Metrics.
    pub metrics: Metrics,
    /// Recent decisions.
    pub cache: Mutex<Cache>,
    /// Pending holds as JSON, by id (`GET /v1/confirmations`).
    pub holds: Mutex<BTreeMap<String, String>>,
    /// The policy in force.
    pub policy: RwLock<Arc<Policy>>,
    /// Bumped whenever an answer or outcome becomes durable (long polls wait on it).
    pub changed: tokio::sync::watch::Sender<u64>,
    /// Set once a commit failed: nothing more is acknowledged.
    pub store_failed: AtomicBool,
    /// Refusals recorded per principal (`refusal_record_rate`).
    pub refusals: crate::limit::Limiter,
    /// True while the governor thread runs (cleared when it ends, by returning or panicking).
    pub governor_alive: AtomicBool,
    /// True while the audit committer thread runs (cleared when it ends).
    pub committer_alive: AtomicBool,
}

impl Shared {
    /// Shared state for `policy`.
    pub fn new(policy: Arc<Policy>, settings: &Settings) -> Shared {
        Shared {
            metrics: Metrics::default(),
            cache: Mutex::new(Cache::new(settings.decision_cache)),
            holds: Mutex::new(BTreeMap::new()),
            policy: RwLock::new(policy),
            changed: tokio::sync::watch::channel(0).0,
            store_failed: AtomicBool::new(false),
            refusals: crate::limit::Limiter::default(),
            governor_alive: AtomicBool::new(false),
            committer_alive: AtomicBool::new(false),
        }
    }

    /// Whether decisions can be made and recorded: no commit failed and both threads run.
    /// `/healthz` says `ok` only then.
    pub fn healthy(&self) -> bool {
        !self.store_failed.load(Relaxed)
            && self.governor_alive.load(Relaxed)
            && self.committer_alive.load(Relaxed)
    }

    /// The policy in force.
    pub fn policy(&self) -> Arc<Policy> {
        match self.policy.read() {
            Ok(p) => Arc::clone(&p),
            Err(p) => Arc::clone(&p.into_inner()),
        }
    }

    /// Whether the principal `id` may have one more refusal recorded now
    /// (`refusal_record_rate`, `refusal_record_burst`); past it, refusals are answered
    /// and counted, never recorded.
    pub fn may_record_refusal(&self, id: &str, settings: &Settings) -> bool {
        self.refusals
            .take(
                id,
                settings.refusal_record_rate,
                settings.refusal_record_burst,
            )
            .is_ok()
    }
}
