//! Counters and histograms for `GET /metrics`, in the Prometheus text format.
//!
//! Why atomics and fixed label sets: the hot path (one decision) updates a handful of
//! counters from two threads; atomics cost a few nanoseconds and never block, and every
//! label set is bounded by the policy or a closed list, so memory stays bounded too.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use aioss_core::governor::Outcome;

/// Upper bounds of the latency buckets, seconds.
pub const BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
    5.0,
];

/// A latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    counts: [AtomicU64; 14],
    over: AtomicU64,
    sum_ns: AtomicU64,
}

impl Histogram {
    /// Count one observation of `secs`.
    pub fn observe(&self, secs: f64) {
        let i = BUCKETS.iter().position(|b| secs <= *b);
        match i.and_then(|i| self.counts.get(i)) {
            Some(c) => c.fetch_add(1, Relaxed),
            None => self.over.fetch_add(1, Relaxed),
        };
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a latency in nanoseconds, clamped to be non-negative"
        )]
        self.sum_ns.fetch_add((secs.max(0.0) * 1e9) as u64, Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, labels: &str) {
        let mut cum = 0u64;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cum += c.load(Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{b}\"}} {cum}");
        }
        cum += self.over.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {cum}");
        #[expect(
            clippy::cast_precision_loss,
            reason = "a sum of nanoseconds as seconds"
        )]
        let sum = self.sum_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {cum}");
    }
}

/// A stage whose latency is measured (`aioss_stage_latency_seconds{stage}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// A job's wait in the governor's queue.
    Queue,
    /// The governor's decision.
    Decide,
    /// One audit commit (per batch).
    Commit,
    /// A whole proposal request, as the agent waits for it.
    Request,
}

impl Stage {
    /// Every stage, in the order of [`Metrics::stages`].
    pub const ALL: [Stage; 4] = [Stage::Queue, Stage::Decide, Stage::Commit, Stage::Request];

    /// The `stage` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queue => "queue",
            Stage::Decide => "decide",
            Stage::Commit => "commit",
            Stage::Request => "request",
        }
    }
}

/// The final outcomes in the order `/metrics` shows them and [`Metrics::decisions`]
/// counts them.
pub const OUTCOMES: [Outcome; 6] = [
    Outcome::Allow,
    Outcome::AllowAfterRepair,
    Outcome::HoldForConfirmation,
    Outcome::BlockNoRepair,
    Outcome::ReviewAudit,
    Outcome::FailedGovernance,
];

/// A labelled counter's family: its metric name, help and label name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    /// Failure modes, by mode.
    FailureMode,
    /// Bad input, by code.
    InputError,
    /// Refusals of authenticated requests, by code.
    Refused,
    /// 401s, by code.
    Unauthenticated,
    /// Refusals answered, not recorded, by code.
    Unrecorded,
    /// Connection events, by event.
    Connection,
    /// Answers to holds, by status.
    Confirmation,
    /// Outcomes re-evaluated, by evaluation.
    Outcome,
    /// Policy reloads, by result.
    Reload,
}

impl Family {
    /// Every family, in the order `/metrics` shows them.
    pub const ALL: [Family; 9] = [
        Family::FailureMode,
        Family::InputError,
        Family::Refused,
        Family::Unauthenticated,
        Family::Unrecorded,
        Family::Connection,
        Family::Confirmation,
        Family::Outcome,
        Family::Reload,
    ];

    /// The metric's name, its help and its label's name.
    fn describe(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Family::FailureMode => (
                "aioss_failure_modes_total",
                "Failure modes detected, by mode.",
                "mode",
            ),
            Family::InputError => (
                "aioss_input_errors_total",
                "Requests refused as bad input, by code.",
                "code",
            ),
            Family::Refused => (
                "aioss_refused_total",
                "Refusals of authenticated requests (role, identity, unknown ids, bad bodies, unsafe approvals), by code; 401s are in aioss_unauthenticated_total.",
                "code",
            ),
            Family::Unauthenticated => (
                "aioss_unauthenticated_total",
                "Requests refused with 401 (no or an unknown token), by code: counted, never recorded.",
                "code",
            ),
            Family::Unrecorded => (
                "aioss_refusals_unrecorded_total",
                "Refusals answered but not recorded because their principal was over refusal_record_rate, by code.",
                "code",
            ),
            Family::Connection => (
                "aioss_connection_events_total",
                "Connections closed at accept because their address held max_connections_per_address (refused_per_address), or accepted on a reserved slot past max_connections (reserved).",
                "event",
            ),
            Family::Confirmation => (
                "aioss_confirmations_total",
                "Answers to holds, by status.",
                "status",
            ),
            Family::Outcome => (
                "aioss_outcomes_total",
                "Observed outcomes re-evaluated, by evaluation.",
                "evaluation",
            ),
            Family::Reload => (
                "aioss_policy_reloads_total",
                "Policy reloads, by result.",
                "result",
            ),
        }
    }
}

/// Every metric of the server.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Decisions by final outcome (in the order of [`OUTCOMES`]).
    pub decisions: [AtomicU64; 6],
    /// Repairs applied (REPAIRED).
    pub repairs: AtomicU64,
    /// Constraints relaxed by the CRE.
    pub relaxations: AtomicU64,
    /// Latency per stage (in the order of [`Stage::ALL`]).
    pub stages: [Histogram; 4],
    /// Proposals shed by the full queue (503).
    pub overloaded: AtomicU64,
    /// Proposals refused by an agent's rate limit (429).
    pub rate_limited: AtomicU64,
    /// Holds waiting for an answer.
    pub pending_holds: AtomicU64,
    /// Jobs waiting in the governor's queue.
    pub queue_depth: AtomicU64,
    /// Records made and not yet committed (the audit store's lag).
    pub audit_lag_records: AtomicU64,
    /// Failed commits of the audit store.
    pub audit_errors: AtomicU64,
    /// Records committed.
    pub audit_records: AtomicU64,
    /// The longest commit so far, nanoseconds.
    pub audit_commit_max_ns: AtomicU64,
    labelled: Mutex<BTreeMap<(Family, String), u64>>,
    /// Tier 3's estimates, as its thread last published them.
    pub tier3: Mutex<Vec<crate::tier3::Gauge>>,
    /// Samples the Tier 3 thread's full queue dropped.
    pub tier3_dropped: AtomicU64,
}

impl Metrics {
    /// Count a decision with this final outcome.
    pub fn decision(&self, outcome: Outcome) {
        if let Some(c) = OUTCOMES
            .iter()
            .position(|o| *o == outcome)
            .and_then(|i| self.decisions.get(i))
        {
            c.fetch_add(1, Relaxed);
        }
    }

    /// Observe a stage's latency.
    pub fn stage(&self, stage: Stage, secs: f64) {
        if let Some(h) = Stage::ALL
            .iter()
            .position(|s| *s == stage)
            .and_then(|i| self.stages.get(i))
        {
            h.observe(secs);
        }
    }

    /// Add one to a labelled counter (`label` is bounded by the policy or a closed list:
    /// a failure mode, an error code, a confirmation status).
    pub fn count(&self, family: Family, label: &str) {
        if let Ok(mut m) = self.labelled.lock() {
            *m.entry((family, label.to_string())).or_insert(0) += 1;
        }
    }

    /// Tier 3's gauges: observed against declared, per row and per dynamics equation.
    fn render_tier3(&self, s: &mut String) {
        let gauges = self.tier3.lock().map(|g| g.clone()).unwrap_or_default();
        for (what, label, about) in [
            (
                "lipschitz",
                "row",
                "a row's largest Lipschitz quotient between an agent's successive proposals",
            ),
            (
                "dynamics_error",
                "state",
                "a dynamics equation's largest error against the state observed after a decision",
            ),
        ] {
            for (suffix, help) in [
                ("observed", about),
                (
                    "declared",
                    "what the policy declares (lipschitz, error_bound)",
                ),
                ("samples", "the samples behind the observed value"),
            ] {
                let name = format!("aioss_tier3_{what}_{suffix}");
                let _ = writeln!(s, "# HELP {name} Tier 3: {help}.\n# TYPE {name} gauge");
                for g in gauges.iter().filter(|g| g.what == what) {
                    let v = match suffix {
                        "observed" => Some(g.observed),
                        "declared" => g.declared,
                        #[expect(clippy::cast_precision_loss, reason = "a count as a gauge")]
                        _ => Some(g.samples as f64),
                    };
                    if let Some(v) = v {
                        let _ = writeln!(s, "{name}{{{label}=\"{}\"}} {v}", escape(&g.label));
                    }
                }
            }
        }
        let name = "aioss_tier3_samples_dropped_total";
        let _ = writeln!(
            s,
            "# HELP {name} Tier 3 samples dropped because its queue was full.\n# TYPE {name} counter\n{name} {}",
            self.tier3_dropped.load(Relaxed)
        );
    }

    /// The Prometheus text exposition.
    pub fn render(&self, policy: &aioss_core::Policy) -> String {
        let mut s = String::with_capacity(4096);
        let counter = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let gauge = |s: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        let _ = writeln!(
            s,
            "# HELP aioss_decisions_total Decisions by final outcome.\n# TYPE aioss_decisions_total counter"
        );
        for (o, c) in OUTCOMES.iter().zip(&self.decisions) {
            let _ = writeln!(
                s,
                "aioss_decisions_total{{outcome=\"{}\"}} {}",
                o.as_str(),
                c.load(Relaxed)
            );
        }
        counter(
            &mut s,
            "aioss_repairs_total",
            "Proposals repaired (REPAIRED).",
            self.repairs.load(Relaxed),
        );
        counter(
            &mut s,
            "aioss_relaxations_total",
            "Constraints relaxed by the conflict resolution engine.",
            self.relaxations.load(Relaxed),
        );
        counter(
            &mut s,
            "aioss_overloaded_total",
            "Proposals shed with 503 because the queue was full.",
            self.overloaded.load(Relaxed),
        );
        counter(
            &mut s,
            "aioss_rate_limited_total",
            "Proposals refused with 429 by an agent's rate limit.",
            self.rate_limited.load(Relaxed),
        );
        counter(
            &mut s,
            "aioss_audit_records_total",
            "Records committed to the audit store.",
            self.audit_records.load(Relaxed),
        );
        counter(
            &mut s,
            "aioss_audit_errors_total",
            "Failed commits of the audit store.",
            self.audit_errors.load(Relaxed),
        );
        #[expect(clippy::cast_precision_loss, reason = "nanoseconds as seconds")]
        let max = self.audit_commit_max_ns.load(Relaxed) as f64 / 1e9;
        let _ = writeln!(
            s,
            "# HELP aioss_audit_commit_seconds_max The longest audit commit so far.\n# TYPE aioss_audit_commit_seconds_max gauge\naioss_audit_commit_seconds_max {max}"
        );
        gauge(
            &mut s,
            "aioss_audit_lag_records",
            "Records made and not yet durable in the audit store.",
            self.audit_lag_records.load(Relaxed),
        );
        gauge(
            &mut s,
            "aioss_pending_holds",
            "Holds waiting for an operator's answer.",
            self.pending_holds.load(Relaxed),
        );
        gauge(
            &mut s,
            "aioss_queue_depth",
            "Jobs waiting for the governor.",
            self.queue_depth.load(Relaxed),
        );
        self.render_tier3(&mut s);
        let labelled = self.labelled.lock().map(|m| m.clone()).unwrap_or_default();
        for fam in Family::ALL {
            let (name, help, label) = fam.describe();
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} counter");
            for ((f, l), v) in &labelled {
                if *f == fam {
                    let _ = writeln!(s, "{name}{{{label}=\"{}\"}} {v}", escape(l));
                }
            }
        }
        let _ = writeln!(
            s,
            "# HELP aioss_stage_latency_seconds Latency by stage: queue wait, governor decision, audit commit (per batch), whole request.\n# TYPE aioss_stage_latency_seconds histogram"
        );
        for (stage, h) in Stage::ALL.iter().zip(&self.stages) {
            h.render(
                &mut s,
                "aioss_stage_latency_seconds",
                &format!("stage=\"{}\"", stage.as_str()),
            );
        }
        let _ = writeln!(
            s,
            "# HELP aioss_policy_info The policy in force.\n# TYPE aioss_policy_info gauge\naioss_policy_info{{name=\"{}\",version=\"{}\",hash=\"{}\"}} 1",
            escape(&policy.name),
            escape(&policy.version),
            escape(&policy.hash)
        );
        s
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
