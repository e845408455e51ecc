//! The governor's thread and the audit committer's thread.
//!
//! Why one thread for the governor: [`Governor`] is deterministic and takes `&mut self`;
//! one ordered stream of decisions is what makes the audit log replayable. Every piece of
//! work that reads or changes governor-side state (decisions, answers to holds, outcomes,
//! policy reloads, refusals to record) is a [`Job`] on one bounded channel, so the order of
//! the log is the order of the work, and a full channel is the server's overload signal.
//!
//! Why a second thread for the store: a decision is acknowledged only once its record is
//! durable. The governor thread hands each job's records to the committer as soon as they
//! are decided and goes on deciding, while the committer takes everything that arrived
//! during its last commit as one batch, chains the records, commits them in one
//! transaction (one fsync for the whole batch: group commit across concurrent requests),
//! and only then answers each request and publishes what the batch changed (cached
//! decisions, pending holds, answers).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use aioss_audit::{Kind, Record, Writer};
use aioss_core::governor::{
    action_to_json, AttrValue, Clock, InputError, PrevSource, RowReport, StateValue,
};
use aioss_core::{Governor, Interval, Policy, Proposal};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::config::Settings;
use crate::metrics::Metrics;

/// Most records committed in one transaction, and the most jobs' records waiting for the
/// committer (past it the governor thread waits, the job queue fills, and new requests get
/// the overload answer).
pub const BATCH: usize = 4096;

/// An HTTP answer: status and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// JSON body.
    pub body: String,
}

/// Who made a request, as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Who {
    /// Principal id (`local` in local-development mode).
    pub id: String,
    /// `agent`, `operator` or `local`.
    pub role: &'static str,
}

impl Who {
    fn json(&self) -> Value {
        json!({"id": self.id, "role": self.role})
    }
}

/// Work for the governor thread.
#[derive(Debug)]
pub enum Job {
    /// Decide a proposal (the body, with the agent's identity already filled in).
    Decide {
        /// The proposal line.
        raw: String,
        /// The line already parsed by the HTTP worker, with the hash of the policy it was
        /// parsed against: the governor thread uses it when that is still the policy in
        /// force (parsing is a fifth of a feasible decision's time on that thread, and
        /// the workers do it in parallel), and parses again after a reload.
        parsed: Option<(String, Result<Proposal, InputError>)>,
        /// When it was queued.
        enqueued: Instant,
        /// Who sent it (recorded with a bad proposal too long to keep whole).
        who: Who,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Record a request refused before the governor, then answer it.
    Refuse {
        /// The request as recorded (method, path, who, body).
        request: String,
        /// The decision or hold id it named, if any.
        decision_id: String,
        /// HTTP status.
        status: u16,
        /// The error JSON.
        error: String,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// An observed outcome of a decision.
    Outcome {
        /// The decision.
        decision_id: String,
        /// The request body.
        body: String,
        /// Who reported it (agents may report only on their own decisions).
        who: Who,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// An operator's answer to a hold.
    Answer {
        /// The hold (its decision id).
        id: String,
        /// Approve or reject.
        approve: bool,
        /// The request body.
        body: String,
        /// The operator.
        who: Who,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// Put a new policy in force.
    Reload {
        /// The loaded policy.
        policy: Box<Policy>,
        /// Who asked (an operator, or `signal` for SIGHUP).
        who: Who,
        /// Where the answer goes.
        reply: Option<oneshot::Sender<Reply>>,
    },
    /// Finish: decide what is queued, commit, sign a checkpoint, stop.
    Shutdown,
}

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

    fn insert(&mut self, id: String, v: View) {
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
}

/// What the HTTP side reads, and the committer publishes after each durable batch.
#[derive(Debug)]
pub struct Shared {
    /// Metrics.
    pub metrics: Metrics,
    /// Recent decisions.
    pub cache: Mutex<Cache>,
    /// Pending holds as JSON, by id (`GET /v1/confirmations`).
    pub holds: Mutex<std::collections::BTreeMap<String, String>>,
    /// The policy in force.
    pub policy: RwLock<Arc<Policy>>,
    /// Bumped whenever an answer or outcome becomes durable (long polls wait on it).
    pub changed: tokio::sync::watch::Sender<u64>,
    /// Set once a commit failed: nothing more is acknowledged.
    pub store_failed: std::sync::atomic::AtomicBool,
    /// Refusals recorded per principal (`refusal_record_rate`).
    pub refusals: crate::limit::Limiter,
    /// True while the governor thread runs (cleared when it ends, by returning or panicking).
    pub governor_alive: std::sync::atomic::AtomicBool,
    /// True while the audit committer thread runs (cleared when it ends).
    pub committer_alive: std::sync::atomic::AtomicBool,
}

impl Shared {
    /// Shared state for `policy`.
    pub fn new(policy: Arc<Policy>, settings: &Settings) -> Shared {
        Shared {
            metrics: Metrics::default(),
            cache: Mutex::new(Cache::new(settings.decision_cache)),
            holds: Mutex::new(std::collections::BTreeMap::new()),
            policy: RwLock::new(policy),
            changed: tokio::sync::watch::channel(0).0,
            store_failed: std::sync::atomic::AtomicBool::new(false),
            refusals: crate::limit::Limiter::default(),
            governor_alive: std::sync::atomic::AtomicBool::new(false),
            committer_alive: std::sync::atomic::AtomicBool::new(false),
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
}

/// What a durable record changes for readers.
#[derive(Debug)]
enum Effect {
    None,
    Decision {
        id: String,
        agent: String,
        held: bool,
        hold: Option<String>,
    },
    Answer {
        id: String,
    },
    Outcome {
        id: String,
    },
    Policy(Arc<Policy>),
}

#[derive(Debug)]
struct Item {
    record: Record,
    reply: Option<oneshot::Sender<Reply>>,
    status: u16,
    body: String,
    effect: Effect,
}

#[derive(Debug)]
struct Answered {
    reply: Option<oneshot::Sender<Reply>>,
    status: u16,
    body: String,
    effect: Effect,
}

#[derive(Debug)]
struct Batch {
    items: Vec<Item>,
    last: bool,
}

#[derive(Clone, Debug)]
struct Hold {
    agent: String,
    attributes: Vec<(String, AttrValue)>,
    action: Vec<f64>,
    digest: String,
    policy_hash: String,
    expires: f64,
    state: Vec<Option<StateValue>>,
    prev: Vec<Option<f64>>,
}

impl Hold {
    /// The held proposal (its agent, attributes and action) with `state` and `prev`.
    fn proposal(&self, state: Vec<Option<StateValue>>, prev: Vec<Option<f64>>) -> Proposal {
        Proposal {
            id: None,
            agent: self.agent.clone(),
            timestamp: None,
            action: self.action.clone(),
            state,
            prev,
            attributes: self.attributes.clone(),
            transition: None,
        }
    }
}

#[derive(Clone, Debug)]
struct Recent {
    agent: String,
    attributes: Vec<(String, AttrValue)>,
    executed: Vec<f64>,
    state: Vec<Option<StateValue>>,
    policy_hash: String,
    outcome_reported: bool,
}

/// A map with at most `cap` keys, evicting the least recently written.
#[derive(Debug)]
struct Bounded<V> {
    map: HashMap<String, (u64, V)>,
    order: VecDeque<(String, u64)>,
    tick: u64,
    cap: usize,
}

impl<V> Bounded<V> {
    fn new(cap: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: VecDeque::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    fn put(&mut self, k: &str, v: V) {
        self.tick += 1;
        let t = self.tick;
        self.order.push_back((k.to_string(), t));
        self.map.insert(k.to_string(), (t, v));
        // INVARIANT (bounded-state): at most `cap` keys, and the order queue holds at most
        // one stale entry per write since the last compaction.
        while self.map.len() > self.cap {
            let Some((old, ot)) = self.order.pop_front() else {
                break;
            };
            if self.map.get(&old).is_some_and(|(t, _)| *t == ot) {
                self.map.remove(&old);
            }
        }
        if self.order.len() > 2 * self.cap + 16 {
            let map = &self.map;
            self.order
                .retain(|(k, t)| map.get(k).is_some_and(|(mt, _)| mt == t));
        }
    }

    fn get(&self, k: &str) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    fn get_mut(&mut self, k: &str) -> Option<&mut V> {
        self.map.get_mut(k).map(|(_, v)| v)
    }
}

/// The governor thread's state.
struct Engine {
    g: Governor,
    settings: Settings,
    holds: HashMap<String, Hold>,
    /// The earliest expiry of a pending hold (infinity when none).
    next_expiry: f64,
    /// Each agent's latest report (the line of its latest decided proposal, or of an
    /// observed outcome), kept as text: a reload keeps it, and it is read under the policy
    /// in force when an approval re-checks a hold.
    latest: Bounded<String>,
    /// Records made since the last `snapshot` record.
    since_snapshot: u64,
    recent: Bounded<Recent>,
    /// Holds that ended, by id: true if by expiry (bounded like the pending holds).
    ended: Bounded<bool>,
    shared: Arc<Shared>,
}

fn wall_now() -> f64 {
    aioss_audit::record::now_secs()
}

/// The error body of `spec/interfaces.md`.
pub fn error_json(code: &str, message: &str, field: Option<&str>) -> String {
    let mut e = serde_json::Map::new();
    e.insert("code".into(), Value::from(code));
    e.insert("message".into(), Value::from(message));
    if let Some(f) = field {
        e.insert("field".into(), Value::from(f));
    }
    json!({ "error": e }).to_string()
}

/// The digest an approval may name: `sha256:` and the hex SHA-256 of the action's JSON.
pub fn action_digest(p: &Policy, action: &[f64]) -> String {
    format!(
        "sha256:{}",
        aioss_audit::record::hex(&Sha256::digest(action_to_json(p, action).as_bytes()))
    )
}

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

/// A pending hold as `GET /v1/confirmations` lists it. `action` is `action_json`, the
/// exact text `action_digest` hashes, written as it is (in the policy's order of the
/// action variables), and `action_json` also carries it as a string, so a client whose
/// JSON reader reorders keys can still re-hash it.
#[expect(
    clippy::too_many_arguments,
    reason = "every field of the listed hold, from a decision or from the store"
)]
fn hold_view(
    id: &str,
    agent: &str,
    action_json: &str,
    digest: &str,
    candidate: Value,
    reasons: Value,
    policy_hash: &str,
    expires: f64,
) -> String {
    let rest = json!({
        "id": id,
        "decision_id": id,
        "agent": agent,
        "action_json": action_json,
        "action_digest": digest,
        "candidate": candidate,
        "reasons": reasons,
        "policy_hash": policy_hash,
        "expires": aioss_audit::record::rfc3339(expires),
        "expires_unix": expires,
    })
    .to_string();
    let rest = rest.strip_prefix('{').unwrap_or(&rest);
    // INVARIANT (listed-action-rehashes): the bytes after `"action":` are the bytes hashed.
    format!("{{\"action\":{action_json},{rest}")
}

/// What a start finds in the store besides the governor state (which
/// `aioss_audit::replay::rebuild` restores): see `crate::serve::recover`.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The holds still unanswered, oldest first.
    pub holds: Vec<Restored>,
    /// Each agent's latest report (a decided proposal's line, or an observed outcome as a
    /// proposal line), oldest first.
    pub latest: Vec<(String, String)>,
    /// Holds that ended, oldest first: true if by expiry.
    pub ended: Vec<(String, bool)>,
    /// Records in the store after its last `snapshot` record.
    pub since_snapshot: u64,
    /// The `snapshot` record to write first (why the server starts, what it restored), if
    /// the store holds records.
    pub start: Option<Value>,
}

/// A hold found unanswered in the store at start-up: its decision record's proposal line
/// and decision JSON.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The decision id.
    pub id: String,
    /// The proposal line as decided.
    pub proposal: String,
    /// The decision JSON.
    pub decision: String,
}

/// A request as a refusal records it: who asked, what (an object without the body), and
/// the body, of which only a bounded prefix (with its length and SHA-256) is kept.
#[derive(Debug)]
struct Req<'a> {
    who: &'a Who,
    head: Value,
    body: &'a str,
}

impl Req<'_> {
    /// The request JSON of a refusal's record, its body cut to `limit` bytes.
    fn text(&self, limit: usize) -> String {
        let mut m = match &self.head {
            Value::Object(m) => m.clone(),
            _ => serde_json::Map::new(),
        };
        m.insert("by".into(), self.who.json());
        m.extend(crate::limit::bounded_body(self.body, limit));
        Value::Object(m).to_string()
    }
}

fn interval_json(x: Interval) -> Value {
    json!([x.lo, x.hi])
}

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

    #[expect(
        clippy::too_many_arguments,
        reason = "a refusal names the request, its target and the error's three fields"
    )]
    fn refuse(
        &self,
        items: &mut Vec<Item>,
        reply: Option<oneshot::Sender<Reply>>,
        req: &Req<'_>,
        id: &str,
        status: u16,
        code: &str,
        message: &str,
        field: Option<&str>,
    ) {
        self.refuse_with(
            items,
            reply,
            req,
            id,
            status,
            code,
            error_json(code, message, field),
        );
    }

    /// Answer a refusal with `body`; record it while `req`'s principal is within its
    /// refusal-recording rate (`refusal_record_rate`), else only count it.
    #[expect(
        clippy::too_many_arguments,
        reason = "a refusal names the request, its target, its status, code and body"
    )]
    fn refuse_with(
        &self,
        items: &mut Vec<Item>,
        reply: Option<oneshot::Sender<Reply>>,
        req: &Req<'_>,
        id: &str,
        status: u16,
        code: &str,
        body: String,
    ) {
        self.shared.metrics.count("refused", code);
        let st = &self.settings;
        if self
            .shared
            .refusals
            .take(&req.who.id, st.refusal_record_rate, st.refusal_record_burst)
            .is_err()
        {
            // INVARIANT (bounded-refusals): past its rate a principal's refusals are
            // answered and counted, never recorded.
            self.shared.metrics.count("unrecorded", code);
            if let Some(tx) = reply {
                let _ = tx.send(Reply { status, body });
            }
            return;
        }
        let request = req.text(st.refusal_body_bytes);
        items.push(Item {
            record: self.record(Kind::Refused, id, &request, &body),
            reply,
            status,
            body,
            effect: Effect::None,
        });
    }

    /// A `snapshot` record of the governor state (`Governor::snapshot`), `why` in its
    /// `proposal`; the warm starts start afresh after it, as replay's do at the same
    /// record (so that a restart from it, or a replay through it, decides every later
    /// record as this server does).
    fn snapshot(&mut self, why: Value, items: &mut Vec<Item>) {
        let state = self.g.snapshot();
        let record = self.record(Kind::Snapshot, "", &why.to_string(), &state);
        self.g.reset_warm_starts();
        self.since_snapshot = 0;
        items.push(Item {
            record,
            reply: None,
            status: 200,
            body: String::new(),
            effect: Effect::None,
        });
    }

    /// A periodic snapshot once `snapshot_every` records were made since the last one.
    fn maybe_snapshot(&mut self, items: &mut Vec<Item>) {
        self.since_snapshot += items.len() as u64;
        let every = self.settings.snapshot_every;
        if every > 0 && self.since_snapshot >= every {
            self.snapshot(json!({"reason": "periodic"}), items);
        }
    }

    /// Handle one job; true when it asks to stop.
    fn handle(&mut self, job: Job, items: &mut Vec<Item>) -> bool {
        self.shared.metrics.queue_depth.fetch_sub(1, Relaxed);
        match job {
            Job::Decide {
                raw,
                parsed,
                enqueued,
                who,
                reply,
            } => {
                self.shared
                    .metrics
                    .stage(0, enqueued.elapsed().as_secs_f64());
                self.decide(raw, parsed, &who, reply, items);
            }
            Job::Refuse {
                request,
                decision_id,
                status,
                error,
                reply,
            } => {
                let code = serde_json::from_str::<Value>(&error)
                    .ok()
                    .and_then(|v| v.pointer("/error/code")?.as_str().map(str::to_string))
                    .unwrap_or_default();
                self.shared.metrics.count("refused", &code);
                items.push(Item {
                    record: self.record(Kind::Refused, &decision_id, &request, &error),
                    reply: Some(reply),
                    status,
                    body: error,
                    effect: Effect::None,
                });
            }
            Job::Outcome {
                decision_id,
                body,
                who,
                reply,
            } => self.outcome(&decision_id, &body, &who, reply, items),
            Job::Answer {
                id,
                approve,
                body,
                who,
                reply,
            } => self.answer(&id, approve, &body, &who, reply, items),
            Job::Reload { policy, who, reply } => self.reload(*policy, &who, reply, items),
            Job::Shutdown => return true,
        }
        false
    }

    fn decide(
        &mut self,
        raw: String,
        parsed: Option<(String, Result<Proposal, InputError>)>,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let now = wall_now();
        // The same steps as `Governor::decide_line_with`, so `aioss audit replay` re-decides
        // the record identically (at its recorded time); the parsed proposal is kept for
        // holds and outcomes.
        // INVARIANT (parsed-under-policy): a line parsed elsewhere is used only under the
        // policy (same hash) it was parsed against.
        let (parsed, counted) = match parsed {
            Some((hash, r)) if hash == self.g.policy().hash => {
                let counted = r.is_err();
                (r, counted)
            }
            _ => (Proposal::parse(self.g.policy(), &raw), false),
        };
        // INVARIANT (governor-time-and-prev): the time that drives budgets, windows and
        // expiries is this server's clock (a `timestamp` counts only within the policy's
        // `max_clock_skew_secs` of it), and `prev.` is what this governor executed: a body
        // claiming another `prev` is refused (`prev_mismatch`), changing no state.
        let decided =
            parsed.and_then(|p| self.g.decide_with(&p, Clock::Trusted(now)).map(|d| (p, d)));
        let (p, d) = match decided {
            Ok(x) => x,
            Err(e) => {
                self.shared.metrics.count("input_error", e.code.as_str());
                let st = &self.settings;
                if !counted
                    && self
                        .shared
                        .refusals
                        .take(&who.id, st.refusal_record_rate, st.refusal_record_burst)
                        .is_err()
                {
                    // Past the principal's refusal-recording rate: answered and counted,
                    // not recorded (a refusal changes no governor state).
                    self.shared.metrics.count("unrecorded", e.code.as_str());
                    let _ = reply.send(Reply {
                        status: 400,
                        body: e.to_json(),
                    });
                    return;
                }
                let body = e.to_json();
                let limit = self.settings.refusal_body_bytes;
                let record = if raw.len() <= limit {
                    aioss_audit::error_record(self.g.policy(), &raw, &e, now, self.g.state_digest())
                } else {
                    // INVARIANT (bounded-refusals): a bad proposal is kept whole only up
                    // to `refusal_body_bytes`; a longer one is a `refused` record with a
                    // prefix, its length and its SHA-256 (bad input changes no state, so
                    // replay loses nothing by not re-reading it).
                    let req = Req {
                        who,
                        head: json!({"method": "POST", "path": "/v1/decisions"}),
                        body: &raw,
                    };
                    self.record(Kind::Refused, "", &req.text(limit), &body)
                };
                items.push(Item {
                    record,
                    reply: Some(reply),
                    status: 400,
                    body,
                    effect: Effect::None,
                });
                return;
            }
        };
        let m = &self.shared.metrics;
        #[expect(clippy::cast_precision_loss, reason = "microseconds as seconds")]
        m.stage(1, d.latency_us as f64 / 1e6);
        m.decision(d.final_outcome.as_str());
        if d.repair_status == aioss_core::governor::RepairStatus::Repaired {
            m.repairs.fetch_add(1, Relaxed);
        }
        m.relaxations.fetch_add(d.relaxed.len() as u64, Relaxed);
        for f in d.failure_modes.iter() {
            m.count("failure_mode", f.name());
        }
        // G5 is measured, so it is not among the decision's failure modes (see
        // `aioss_core::governor`); the metrics count it with them, as the report does.
        if !d.deadline_met(self.g.policy()) {
            m.count("failure_mode", "deadline_missed");
        }
        let json = d.to_json(self.g.policy());
        tracing::debug!(decision_id = %d.decision_id, agent = %d.agent, outcome = d.final_outcome.as_str(), latency_us = d.latency_us, "decided");
        let record =
            aioss_audit::decision_record(self.g.policy(), &raw, &d, &json, self.g.state_digest());
        let policy_hash = self.g.policy().hash.clone();
        self.latest.put(&p.agent, raw.clone());
        let mut hold_json = None;
        let mut extra = Vec::new();
        if d.final_outcome == aioss_core::Outcome::HoldForConfirmation {
            let digest = action_digest(self.g.policy(), &p.action);
            let expires = now + self.settings.hold_expiry_secs;
            if self.holds.len() >= self.settings.max_pending_holds {
                // INVARIANT (bounded-holds): a hold past the bound is denied at once.
                let answer = json!({
                    "decision_id": d.decision_id, "status": "expired", "by": {"id": "aioss", "role": "server"},
                    "reason": format!("too many pending holds (at most {}): denied at once", self.settings.max_pending_holds),
                }).to_string();
                self.answered(&mut extra, &d.decision_id, "{}", "expired", answer, None);
            } else {
                hold_json = Some(hold_view(
                    &d.decision_id,
                    &d.agent,
                    &action_to_json(self.g.policy(), &p.action),
                    &digest,
                    d.candidate.as_ref().map_or(Value::Null, |c| {
                        parse_json(&action_to_json(self.g.policy(), c))
                    }),
                    json!(d.reasons),
                    &policy_hash,
                    expires,
                ));
                self.next_expiry = self.next_expiry.min(expires);
                self.holds.insert(
                    d.decision_id.clone(),
                    Hold {
                        agent: p.agent.clone(),
                        attributes: p.attributes.clone(),
                        action: p.action.clone(),
                        digest,
                        policy_hash: policy_hash.clone(),
                        expires,
                        state: p.state.clone(),
                        prev: p.prev.clone(),
                    },
                );
            }
        }
        self.recent.put(
            &d.decision_id,
            Recent {
                agent: p.agent,
                attributes: p.attributes,
                executed: d.action.clone(),
                state: p.state,
                policy_hash,
                outcome_reported: false,
            },
        );
        items.push(Item {
            record,
            reply: Some(reply),
            status: 200,
            body: json,
            effect: Effect::Decision {
                id: d.decision_id,
                agent: d.agent,
                held: d.final_outcome == aioss_core::Outcome::HoldForConfirmation,
                hold: hold_json,
            },
        });
        items.extend(extra);
    }

    /// Make a hold pending again after a restart; its listed JSON, or why it cannot be.
    ///
    /// It expires `hold_expiry_secs` after its decision time, or after now if that time
    /// is later than now (a decision time comes from the proposal's `timestamp`, which
    /// may lie far ahead); one already past it is denied and recorded at the next expiry
    /// scan. Never panics: whatever the store holds, the answer is a hold or a reason.
    fn restore(&mut self, r: &Restored) -> Result<String, String> {
        let d: Value = serde_json::from_str(&r.decision)
            .map_err(|e| format!("its decision is not JSON ({e})"))?;
        let time = d
            .get("time")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
            .ok_or("its decision has no finite `time`")?;
        let p = Proposal::parse(self.g.policy(), &r.proposal)
            .map_err(|e| format!("its proposal does not parse under the policy in force ({e})"))?;
        let expires = time.min(wall_now()) + self.settings.hold_expiry_secs;
        let digest = action_digest(self.g.policy(), &p.action);
        let policy_hash = self.g.policy().hash.clone();
        let view = hold_view(
            &r.id,
            &p.agent,
            &action_to_json(self.g.policy(), &p.action),
            &digest,
            d.get("candidate").cloned().unwrap_or(Value::Null),
            d.get("reasons").cloned().unwrap_or(Value::Null),
            &policy_hash,
            expires,
        );
        self.next_expiry = self.next_expiry.min(expires);
        self.holds.insert(
            r.id.clone(),
            Hold {
                agent: p.agent,
                attributes: p.attributes,
                action: p.action,
                digest,
                policy_hash,
                expires,
                state: p.state,
                prev: p.prev,
            },
        );
        Ok(view)
    }

    /// Deny, and record, a hold found unanswered in the store that cannot be made pending
    /// again.
    fn deny_unrestorable(&mut self, id: &str, why: &str, items: &mut Vec<Item>) {
        tracing::warn!(decision_id = %id, reason = %why, "a held decision cannot be restored: denied");
        let answer = json!({
            "decision_id": id, "status": "refused", "by": {"id": "aioss", "role": "server"},
            "reason": format!("the hold could not be restored after a restart: {why}; it is denied"),
        })
        .to_string();
        self.answered(items, id, "{}", "refused", answer, None);
    }

    fn expire(&mut self, items: &mut Vec<Item>) {
        let now = wall_now();
        // Scan only when the earliest expiry is due (holds are few; decisions are many).
        if now < self.next_expiry {
            return;
        }
        let due: Vec<String> = self
            .holds
            .iter()
            .filter(|(_, h)| h.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            self.expire_one(&id, items);
        }
        self.next_expiry = self
            .holds
            .values()
            .map(|h| h.expires)
            .fold(f64::INFINITY, f64::min);
    }

    fn expire_one(&mut self, id: &str, items: &mut Vec<Item>) {
        if self.holds.remove(id).is_none() {
            return;
        }
        let answer = json!({
            "decision_id": id, "status": "expired", "by": {"id": "aioss", "role": "server"},
            "reason": "no answer before the hold expired: an expired hold is a denial",
        })
        .to_string();
        tracing::info!(decision_id = %id, "hold expired: denied");
        self.answered(items, id, "{}", "expired", answer, None);
    }

    /// Record the answer to a hold (its end), counted by status, and remember how it
    /// ended (an answer to an expired hold is then 409 `hold_expired`).
    fn answered(
        &mut self,
        items: &mut Vec<Item>,
        id: &str,
        request: &str,
        status: &str,
        answer: String,
        reply: Option<oneshot::Sender<Reply>>,
    ) {
        self.shared.metrics.count("confirmation", status);
        self.ended.put(id, status == "expired");
        items.push(Item {
            record: self.record(Kind::Confirmation, id, request, &answer),
            reply,
            status: 200,
            body: answer,
            effect: Effect::Answer { id: id.to_string() },
        });
    }

    #[expect(
        clippy::too_many_lines,
        reason = "each refusal of an approval, in the order they are checked"
    )]
    fn answer(
        &mut self,
        id: &str,
        approve: bool,
        body: &str,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let request = json!({"answer": if approve {"approve"} else {"reject"}, "by": who.json(), "body": body}).to_string();
        let req = Req {
            who,
            head: json!({"answer": if approve {"approve"} else {"reject"}}),
            body,
        };
        let b: Value = if body.trim().is_empty() {
            json!({})
        } else {
            match serde_json::from_str::<Value>(body) {
                Ok(v @ Value::Object(_)) => v,
                _ => {
                    return self.refuse(
                        items,
                        Some(reply),
                        &req,
                        id,
                        400,
                        "malformed_json",
                        "the body must be a JSON object (or empty)",
                        None,
                    )
                }
            }
        };
        let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
        let reason = text("reason");
        if self.holds.get(id).is_some_and(|h| h.expires <= wall_now()) {
            self.expire_one(id, items);
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                409,
                "hold_expired",
                &format!("the hold `{id}` expired before this answer: it is a denial"),
                None,
            );
        }
        let Some(h) = self.holds.get(id).cloned() else {
            if self.ended.get(id) == Some(&true) {
                return self.refuse(
                    items,
                    Some(reply),
                    &req,
                    id,
                    409,
                    "hold_expired",
                    &format!("the hold `{id}` expired before this answer: it is a denial"),
                    None,
                );
            }
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                404,
                "no_pending_hold",
                &format!("no pending hold `{id}` (answered, expired, or never held)"),
                None,
            );
        };
        let status;
        let mut extra = serde_json::Map::new();
        if approve {
            let current = self.policy().hash.clone();
            if let Some(given) = text("policy_hash") {
                if given != h.policy_hash {
                    return self.refuse(
                        items,
                        Some(reply),
                        &req,
                        id,
                        409,
                        "stale_policy",
                        &format!(
                            "the approval names policy `{given}`, the hold was made under `{}`",
                            h.policy_hash
                        ),
                        Some("policy_hash"),
                    );
                }
            }
            if h.policy_hash != current {
                // It can never be approved now: the hold ends as a denial.
                self.holds.remove(id);
                let answer = json!({
                    "decision_id": id, "status": "refused", "by": who.json(),
                    "reason": format!("the policy changed since the hold (`{}` → `{current}`): approve a new proposal instead", h.policy_hash),
                }).to_string();
                self.answered(items, id, &request, "refused", answer, None);
                return self.refuse(
                    items,
                    Some(reply),
                    &req,
                    id,
                    409,
                    "stale_policy",
                    &format!(
                        "the hold was made under policy `{}`, the policy in force is `{current}`",
                        h.policy_hash
                    ),
                    None,
                );
            }
            if let Some(given) = text("action_digest") {
                if given != h.digest {
                    return self.refuse(
                        items,
                        Some(reply),
                        &req,
                        id,
                        409,
                        "action_changed",
                        &format!("`{given}` is not the held action's digest `{}`", h.digest),
                        Some("action_digest"),
                    );
                }
            }
            // Re-check the held action, by Tier 1, against the latest state its agent
            // reported (a proposal or an observed outcome since the hold; kept across
            // reloads and restarts).
            let reported = match self.latest.get(&h.agent) {
                None => Ok(h.state.clone()),
                Some(line) => Proposal::parse(self.g.policy(), line)
                    .map(|p| p.state)
                    .map_err(|e| e.to_string()),
            };
            let state = match reported {
                Ok(x) => x,
                Err(e) => {
                    let body = json!({"error": {
                        "code": "unsafe_now",
                        "message": format!("the latest state `{}` reported cannot be read under the policy in force ({e}): the held action cannot be re-checked; have the agent report its state again", h.agent),
                        "constraints": [],
                    }})
                    .to_string();
                    return self.refuse_with(items, Some(reply), &req, id, 409, "unsafe_now", body);
                }
            };
            // `prev.` is what the governor executed last for the agent, as it is for its
            // proposals.
            let prop = h.proposal(state, vec![None; h.action.len()]);
            let unsafe_rows = self.g.critical_unsat(&prop);
            if !unsafe_rows.is_empty() {
                let names: Vec<String> = unsafe_rows
                    .iter()
                    .map(|r| format!("`{}` {}", r.id, r.status.as_str()))
                    .collect();
                let body = json!({"error": {
                    "code": "unsafe_now",
                    "message": format!("the held action is not safe in the latest state `{}` reported: {}", h.agent, names.join(", ")),
                    "constraints": rows_json(&unsafe_rows),
                }})
                .to_string();
                return self.refuse_with(items, Some(reply), &req, id, 409, "unsafe_now", body);
            }
            status = "approved";
            // The approved action is executed now: it counts against the budgets and is
            // the agent's last action, charged with the proposal as it was held (what
            // `aioss audit replay` re-applies from the log).
            let held = h.proposal(h.state.clone(), h.prev.clone());
            for mode in self.g.record_execution(&held).iter() {
                self.shared.metrics.count("failure_mode", mode.name());
            }
            extra.insert(
                "action".into(),
                parse_json(&action_to_json(self.policy(), &h.action)),
            );
            extra.insert("action_digest".into(), Value::from(h.digest.clone()));
            extra.insert("policy_hash".into(), Value::from(h.policy_hash.clone()));
        } else {
            status = "rejected";
        }
        self.holds.remove(id);
        let mut answer = serde_json::Map::new();
        answer.insert("decision_id".into(), Value::from(id));
        answer.insert("status".into(), Value::from(status));
        answer.insert("by".into(), who.json());
        if let Some(r) = reason {
            answer.insert("reason".into(), Value::from(r));
        }
        answer.extend(extra);
        let answer = Value::Object(answer).to_string();
        tracing::info!(decision_id = %id, by = %who.id, status, "hold answered");
        self.answered(items, id, &request, status, answer, Some(reply));
    }

    #[expect(
        clippy::too_many_lines,
        reason = "validation, the two checks and the record read best in one place"
    )]
    fn outcome(
        &mut self,
        id: &str,
        body: &str,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let request = json!({"by": who.json(), "body": body}).to_string();
        let req = Req {
            who,
            head: json!({"outcome": id}),
            body,
        };
        let Some(r) = self.recent.get(id).cloned() else {
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                404,
                "unknown_decision",
                &format!(
                    "no decision `{id}` among the last {} this server keeps",
                    self.settings.decision_cache
                ),
                None,
            );
        };
        if who.role == "agent" && who.id != r.agent {
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                403,
                "not_your_decision",
                &format!("decision `{id}` belongs to agent `{}`", r.agent),
                None,
            );
        }
        if r.outcome_reported {
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                409,
                "outcome_already_reported",
                &format!("the outcome of `{id}` was already reported"),
                None,
            );
        }
        if r.policy_hash != self.policy().hash {
            return self.refuse(
                items,
                Some(reply),
                &req,
                id,
                409,
                "stale_policy",
                &format!(
                    "decision `{id}` was made under policy `{}`; the policy in force is `{}`",
                    r.policy_hash,
                    self.policy().hash
                ),
                None,
            );
        }
        let state = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(o)) => match o.get("state") {
                Some(s @ Value::Object(_)) => s.clone(),
                Some(_) => {
                    return self.refuse(
                        items,
                        Some(reply),
                        &req,
                        id,
                        400,
                        "wrong_type",
                        "`state` must be an object",
                        Some("state"),
                    )
                }
                None => {
                    return self.refuse(
                        items,
                        Some(reply),
                        &req,
                        id,
                        400,
                        "missing_field",
                        "the observed next state `state` is missing",
                        Some("state"),
                    )
                }
            },
            _ => {
                return self.refuse(
                    items,
                    Some(reply),
                    &req,
                    id,
                    400,
                    "malformed_json",
                    "the body must be a JSON object like `{\"state\": {...}}`",
                    None,
                )
            }
        };
        // Validate the observed state exactly as a proposal's state is validated.
        let line = format!(
            "{{\"agent\":{},\"action\":{},\"state\":{}}}",
            Value::from(r.agent.clone()),
            action_to_json(self.policy(), &self.policy().fallback),
            state
        );
        let observed = match Proposal::parse(self.policy(), &line) {
            Ok(p) => p,
            Err(e) => {
                let field = e.field.clone();
                return self.refuse(
                    items,
                    Some(reply),
                    &req,
                    id,
                    400,
                    e.code.as_str(),
                    &e.message,
                    field.as_deref(),
                );
            }
        };
        // 1. The safe set: every active critical row at the certified fallback in the
        // observed state. The fallback satisfies every critical row over the declared
        // ranges, and with it a barrier row reads h(x) >= 0: a row not SAT means the
        // observed state itself is (or may be) outside the safe set.
        let probe = Proposal {
            attributes: r.attributes.clone(),
            ..observed.clone()
        };
        let left = self.g.critical_unsat(&probe);
        // 2. The dynamics model: the prediction from the decision's state and executed
        // action, widened by the error bound, against the observed state.
        let decided = Proposal {
            id: None,
            agent: r.agent.clone(),
            timestamp: None,
            action: r.executed.clone(),
            state: r.state.clone(),
            prev: vec![None; r.executed.len()],
            attributes: r.attributes.clone(),
            transition: None,
        };
        let mut diverged = Vec::new();
        for (name, predicted) in self.g.predict_next(&decided) {
            let idx = self.policy().states.iter().position(|s| s.name == name);
            let obs = idx
                .and_then(|i| observed.state.get(i))
                .and_then(|v| match v {
                    Some(StateValue::Num(x)) => Some(*x),
                    _ => None,
                });
            if let Some(o) = obs {
                if o.hi < predicted.lo || o.lo > predicted.hi || o.is_invalid() {
                    diverged.push(json!({"state": name, "predicted": interval_json(predicted), "observed": interval_json(o)}));
                }
            }
        }
        let mut reasons = Vec::new();
        for row in &left {
            reasons.push(format!(
                "the observed state breaks critical constraint `{}` ({})",
                row.id,
                row.status.as_str()
            ));
        }
        for d in &diverged {
            reasons.push(format!(
                "state `{}` diverged from the dynamics model beyond its error bound",
                d.get("state").and_then(Value::as_str).unwrap_or("?")
            ));
        }
        let mut failure_modes = Vec::new();
        if !left.is_empty() {
            failure_modes.push("left_safe_set");
        }
        if !diverged.is_empty() {
            failure_modes.push("model_mismatch");
        }
        let evaluation = if failure_modes.is_empty() {
            "EFFECTIVE"
        } else {
            "FAILED"
        };
        for f in &failure_modes {
            self.shared.metrics.count("failure_mode", f);
        }
        self.shared.metrics.count("outcome", evaluation);
        let answer = json!({
            "decision_id": id,
            "evaluation": evaluation,
            "left_safe_set": rows_json(&left),
            "diverged": diverged,
            "failure_modes": failure_modes,
            "reasons": reasons,
            "by": who.json(),
            "policy": {"name": self.policy().name, "version": self.policy().version, "hash": self.policy().hash},
        })
        .to_string();
        tracing::info!(decision_id = %id, evaluation, "outcome");
        if let Some(rr) = self.recent.get_mut(id) {
            rr.outcome_reported = true;
        }
        self.latest.put(&r.agent, line);
        items.push(Item {
            record: self.record(Kind::Outcome, id, &request, &answer),
            reply: Some(reply),
            status: 200,
            body: answer,
            effect: Effect::Outcome { id: id.to_string() },
        });
    }

    fn reload(
        &mut self,
        policy: Policy,
        who: &Who,
        reply: Option<oneshot::Sender<Reply>>,
        items: &mut Vec<Item>,
    ) {
        let old = self.g.policy();
        let previous = json!({"name": old.name, "version": old.version, "hash": old.hash});
        let p = Arc::new(policy.clone());
        let mut g = Governor::new(policy);
        // Budgets, `prev` and the clock go on where they still mean the same.
        g.carry_state_from(&self.g);
        g.set_prev_source(PrevSource::Governor);
        self.g = g;
        // The agents' latest reports are kept as text and read under the policy in force
        // when needed (caught: they were dropped here, and a hold refused as `unsafe_now`
        // was approved after a reload of the unchanged file).
        let now = &self.g.policy();
        let answer = json!({
            "policy": {"name": now.name, "version": now.version, "hash": now.hash},
            "previous": previous,
            "by": who.json(),
        })
        .to_string();
        tracing::info!(hash = %now.hash, by = %who.id, "policy reloaded");
        self.shared.metrics.count("reload", "ok");
        let request = json!({"by": who.json()}).to_string();
        items.push(Item {
            record: self.record(Kind::PolicyReload, "", &request, &answer),
            reply,
            status: 200,
            body: answer,
            effect: Effect::Policy(p),
        });
    }
}

/// Clears a thread's liveness flag when the thread ends, whether it returns or panics
/// (the guard is dropped while unwinding), so `/healthz` never says `ok` for a server whose
/// governor or committer is gone.
struct Alive<'a>(&'a std::sync::atomic::AtomicBool);

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
        shared: Arc::clone(&shared),
    };
    for (agent, line) in recovered.latest {
        engine.latest.put(&agent, line);
    }
    for (id, expired) in recovered.ended {
        engine.ended.put(&id, expired);
    }
    let mut denied = Vec::new();
    if let Some(why) = recovered.start {
        engine.snapshot(why, &mut denied);
    }
    // INVARIANT (bounded-holds): at most `max_pending_holds` come back, the latest ones.
    let restored = recovered.holds;
    let skip = restored
        .len()
        .saturating_sub(engine.settings.max_pending_holds);
    for r in restored.iter().skip(skip) {
        match engine.restore(r) {
            Ok(view) => {
                if let Ok(mut h) = shared.holds.lock() {
                    h.insert(r.id.clone(), view);
                }
            }
            Err(why) => engine.deny_unrestorable(&r.id, &why, &mut denied),
        }
    }
    shared
        .metrics
        .pending_holds
        .store(engine.holds.len() as u64, Relaxed);
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
    };
    (jobs_tx, threads)
}

/// The governor thread: `first` are records to commit before any job (the denials of
/// holds that could not be restored).
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

fn run_committer(mut w: Writer, rx: &Receiver<Batch>, shared: &Shared) -> Result<(), String> {
    let _alive = Alive(&shared.committer_alive);
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
            let rr = w.push(record);
            done.push((
                Answered {
                    reply,
                    status,
                    body,
                    effect,
                },
                rr,
            ));
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
        m.stage(2, took.as_secs_f64());
        m.audit_commit_max_ns
            .fetch_max(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX), Relaxed);
        m.audit_lag_records.fetch_sub(n, Relaxed);
        if let Err(e) = r {
            // Nothing of this batch is durable: nothing of it is acknowledged.
            m.audit_errors.fetch_add(1, Relaxed);
            shared.store_failed.store(true, Relaxed);
            tracing::error!(error = %e, "audit store commit failed; refusing further work");
            let body = error_json(
                "audit_store_failed",
                &format!(
                    "the audit store failed ({e}): nothing was recorded; execute your fallback"
                ),
                None,
            );
            for (it, _) in done {
                if let Some(tx) = it.reply {
                    let _ = tx.send(Reply {
                        status: 503,
                        body: body.clone(),
                    });
                }
            }
            failed = Some(e.to_string());
            continue;
        }
        m.audit_records.fetch_add(n, Relaxed);
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
                        c.insert(
                            id,
                            View {
                                agent,
                                decision: body.clone(),
                                held,
                                confirmation: None,
                                outcome: None,
                            },
                        );
                    }
                }
                Effect::Answer { id } => {
                    if let Ok(mut hs) = shared.holds.lock() {
                        hs.remove(&id);
                    }
                    if let Ok(mut c) = shared.cache.lock() {
                        if let Some(v) = c.map.get_mut(&id) {
                            v.confirmation = Some(body.clone());
                        }
                    }
                    changed = true;
                }
                Effect::Outcome { id } => {
                    if let Ok(mut c) = shared.cache.lock() {
                        if let Some(v) = c.map.get_mut(&id) {
                            v.outcome = Some(body.clone());
                        }
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
