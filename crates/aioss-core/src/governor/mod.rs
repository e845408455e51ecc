//! The integrated governance stack: one proposal in, one [`Decision`] out.
//!
//! This is where Tier 1, the rules, the monitors and Tier 2 become the I2OS-style decision
//! of DESIGN.md. One decision is one pass through named stages, each a function with typed
//! inputs and outputs (`Governor::decide_inner` reads on one screen):
//!
//! ```text
//! admit      the time (Clock) and prev. (PrevSource): what the agent may not decide
//! inputs     the input box (tier1::inputs): state, prev., budgets, attributes
//! check      Tier 1 at the proposal (tier1::Checker), and its certificate
//! monitors   detectors at the proposal's state            monitor::observe -> Findings
//! classify   rules (first match), the lattice, the bounds classify::classify -> Classified
//! repair     Tier 2 and the CRE, certified by Tier 1     tier2 -> Repaired
//! audit      evidence, monitors' findings                 execute::audit -> Audit
//! execute    what runs, certified; evaluation, outcome    execute -> Execution
//! charge     budgets and prev. follow what was executed
//! decision   the Decision, its reasons and failure modes in the order the stages found them
//! ```
//!
//! The whole is deterministic: the same policy, governor state and proposal give
//! byte-identical decisions (the measured `latency_us` and the `timing` verdict drawn from
//! it aside), which is what `audit replay` relies on. Failure modes are
//! [`FailureMode`]s: a new detector is one variant there and one call in the monitor stage.
//!
//! G5 (timing) is measured and reported: a decision that overruns `deadline_us` still
//! executes what the stack decided, and says `"timing":{"deadline_us":…,"met":false}`.
//! Cutting the search off at a measured time would make the decision depend on the
//! machine's load, and then no replay could re-derive it. What bounds the time instead is
//! deterministic: the repair's work budget (`WORK_FACTOR` × `max_iterations` SQP steps)
//! and, with `[governor] enforce_deadline = true`, a modeled cost of nine tenths of
//! `deadline_us` ([`crate::repair::ModeledCost`]), past which the search stops (solver
//! status `DEADLINE`, failure mode `deadline_overrun` when nothing certified was found).
//! The verdict is written after `latency_us`, the last of the deterministic fields, so the
//! part of a decision line that replay compares as bytes stays exactly what it was.
//!
//! Nothing here can fail on the hot path: bad input is refused before the decision starts
//! ([`Proposal::from_json`] names the field), and everything after that produces a decision.
//! When the optimiser cannot find a certified action the answer is the fallback, and when
//! even the fallback is not certified at the current state the decision says so (evaluation
//! FAILED, outcome FAILED_GOVERNANCE): it never claims a guarantee it does not have.
//!
//! Governor state (what replay rebuilds): the budget windows, each agent's last executed
//! action (`prev.`), the logical clock and the sequence number. The warm starts of the
//! repairers are also kept per agent. They change speed, and the last bits of a repaired
//! action, its distance and a relaxed row's slack (a QP warm-started from another active
//! set rounds differently); on 20,000 warehouse repairs, warm against cold, no outcome
//! differed (a near tie, certified against relaxed by a slack of ~1e-9, could). Replay
//! reproduces them, because it re-decides the log from its first record in order.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::failure::{FailureMode, FailureModes};
use crate::interval::Interval;
use crate::policy::{Criticality, FallbackMode, Mode, Policy, Verdict};
use crate::repair::Repairer;
use crate::tier1::budget::Window;
use crate::tier1::{Checker, Status};

use agents::AgentMonitor;
use decision::value_json;
use monitor::Monitors;

pub use agents::OperatingMode;

mod agents;
mod classify;
mod decision;
mod estimates;
mod execute;
mod monitor;
mod observed;
mod outcome;
mod outcomes;
mod policy_tests;
mod proposal;
mod snapshot;
mod tier2;
mod watch;

pub use decision::{
    action_to_json, Decision, GuaranteeStatus, Guarantees, Ledger, LedgerEntry, RowReport,
    SolverReport,
};
pub use estimates::{EquationEstimate, Estimator, RowEstimate, MAX_ESTIMATED_AGENTS};
pub use observed::{Divergence, OutcomeEvaluation};
pub use outcome::{final_outcome, Audit, Evaluation, Outcome, RepairStatus};
pub use outcomes::{outcome_json, recorded_modes, Answer, OutcomeLine, RecentDecisions};
pub use policy_tests::{json_matches, run_test, run_tests, TestResult};
pub use proposal::{AttrValue, InputCode, InputError, Proposal, StateValue};

/// Agents whose repairer warm start and last action are kept; past this, new agents share
/// one repairer and their `prev.` defaults to the fallback (bounded memory).
pub const MAX_AGENTS: usize = 4096;

/// The last second of 9999-12-31 (UTC), in seconds since the Unix epoch: the latest time a
/// proposal may carry.
pub const MAX_TIMESTAMP: f64 = 253_402_300_799.0;

/// Where a decision's time comes from. Budgets, windows and expiries follow it, so where
/// the governor faces agents it must not be the agent's word (DESIGN.md: "what the agent
/// may not decide").
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Clock {
    /// The proposal's `timestamp`, else the logical clock (the latest time seen): `aioss
    /// decide --clock logical` and policy tests, whose input is the operator's own.
    Logical,
    /// The governor's own reading of the wall clock, in seconds since the Unix epoch
    /// (`aioss serve`, `aioss decide --clock wall`). A proposal's `timestamp` within
    /// `[governor] max_clock_skew_secs` of it is used instead; any other is ignored.
    Trusted(f64),
    /// Exactly this time: `aioss audit replay` re-deciding a record at its recorded time.
    Recorded(f64),
}

/// Where `prev.<action>` comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PrevSource {
    /// A proposal's `prev` is used where given; the agent's last executed action (or the
    /// fallback) elsewhere. For input the operator trusts (`aioss decide`, policy tests).
    #[default]
    Body,
    /// Always the agent's last executed action, the fallback before its first one. A
    /// proposal that claims another `prev` is refused (`prev_mismatch`): an agent that
    /// could choose `prev.` could choose the ramp a critical row allows it.
    Governor,
}

// ---------------------------------------------------------------------------------------
// The governor
// ---------------------------------------------------------------------------------------

/// The governor: a validated policy and the state its decisions carry forward.
#[derive(Debug)]
pub struct Governor {
    policy: Policy,
    repairers: BTreeMap<String, Repairer>,
    shared: Repairer,
    last_action: BTreeMap<String, Vec<f64>>,
    /// Each agent's monitor memory and mode of operation (at most [`MAX_AGENTS`]).
    agents: BTreeMap<String, AgentMonitor>,
    /// What the monitors know of the policy.
    monitors: Monitors,
    /// Working memory of the gradients the monitors take.
    adj: Vec<f64>,
    windows: Vec<Window>,
    clock: f64,
    seq: u64,
    inputs: Vec<Interval>,
    /// The rules' and budgets' evaluations (classification and accounting, not checks).
    slots: Vec<Interval>,
    /// Tier 1: the only way anything here is certified (see [`crate::tier1`]).
    t1: Checker,
    /// Working memory of `fill_inputs`: the proposal's `prev.` and the budgets' values.
    prev: Vec<f64>,
    budget_values: Vec<Interval>,
    dry_run: bool,
    /// The critical-rows-only decision mode (overload; a global mode, named in each
    /// decision it shapes): repairs search only the CRE's most relaxed stage.
    critical_only: bool,
    prev_source: PrevSource,
    /// A test's stand-in for a repairer bug: applied to every repair's result.
    #[cfg(test)]
    sabotage_repair: Option<fn(&mut crate::repair::Repair)>,
    /// What charging the budgets evaluates: their increments and what those read.
    budget_ops: crate::tape::OpList,
}

impl Governor {
    /// A governor for a loaded policy (loading validated it; nothing is re-checked here).
    pub fn new(policy: Policy) -> Governor {
        let shared = Repairer::new(&policy);
        let windows = vec![Window::default(); policy.budgets.len()];
        let inputs = policy.range_inputs();
        let slots = policy.lattice.tape.slots();
        let t1 = Checker::new(&policy.lattice);
        let prev = Vec::with_capacity(policy.actions.len());
        let budget_values = Vec::with_capacity(policy.budgets.len());
        let dry_run = policy.mode == Mode::DryRun;
        let budget_ops = policy.lattice.tape.subset(&policy.lattice.budget_slots);
        let monitors = Monitors::new(&policy);
        let adj = vec![0.0; policy.lattice.tape.len()];
        Governor {
            policy,
            repairers: BTreeMap::new(),
            shared,
            last_action: BTreeMap::new(),
            agents: BTreeMap::new(),
            monitors,
            adj,
            windows,
            clock: 0.0,
            seq: 0,
            inputs,
            slots,
            t1,
            prev,
            budget_values,
            dry_run,
            critical_only: false,
            prev_source: PrevSource::Body,
            #[cfg(test)]
            sabotage_repair: None,
            budget_ops,
        }
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Decisions made so far (the next decision's sequence number).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Turn the critical-rows-only decision mode on or off (the server turns it on while
    /// its queue is deep; each decision it shapes says `"decision_mode":
    /// "critical_only"`, from which replay turns it on again). Tier 1 and what it certifies
    /// are unchanged; a repair keeps every critical row and may relax any other without
    /// first trying to keep it.
    pub fn set_critical_only(&mut self, on: bool) {
        self.critical_only = on;
    }

    /// Is the critical-rows-only mode on?
    pub fn critical_only(&self) -> bool {
        self.critical_only
    }

    /// Force dry-run (decide and report, but pass the proposal through) whatever the
    /// policy's `mode` says.
    pub fn set_dry_run(&mut self, on: bool) {
        self.dry_run = on;
    }

    /// Does this governor decide in dry-run (the policy's `mode`, or forced)?
    pub fn dry_run(&self) -> bool {
        self.dry_run
    }

    /// The current value of each budget, as of the logical clock.
    pub fn budgets(&self) -> Vec<(String, f64)> {
        self.policy
            .budgets
            .iter()
            .zip(&self.windows)
            .map(|(b, w)| (b.name.clone(), w.value().mid()))
            .collect()
    }

    /// Where `prev.` comes from from now on (default [`PrevSource::Body`]).
    pub fn set_prev_source(&mut self, s: PrevSource) {
        self.prev_source = s;
    }

    /// Parse a JSON line and decide it.
    pub fn decide_line(&mut self, line: &str) -> Result<Decision, InputError> {
        self.decide_line_with(line, Clock::Logical)
    }

    /// Parse a JSON line and decide it; a proposal without a `timestamp` is decided at
    /// `now` (seconds since the Unix epoch: the caller's wall clock). The time used is
    /// [`Decision::time`].
    pub fn decide_line_at(&mut self, line: &str, now: f64) -> Result<Decision, InputError> {
        let mut p = Proposal::parse(&self.policy, line)?;
        if p.timestamp.is_none() && now.is_finite() {
            p.timestamp = Some(now);
        }
        self.decide_with(&p, Clock::Logical)
    }

    /// Parse a JSON line and decide it at the time `clock` gives.
    pub fn decide_line_with(&mut self, line: &str, clock: Clock) -> Result<Decision, InputError> {
        let p = Proposal::parse(&self.policy, line)?;
        self.decide_with(&p, clock)
    }

    /// Decide `prop` at the time `clock` gives, refusing what the agent may not claim:
    /// with [`PrevSource::Governor`], a `prev` other than the agent's last executed action
    /// (`prev_mismatch`, naming the first variable that differs). A refusal changes no
    /// governor state.
    pub fn decide_with(&mut self, prop: &Proposal, clock: Clock) -> Result<Decision, InputError> {
        self.admit_prev(prop)?;
        let started = std::time::Instant::now();
        let now = self.decision_time(prop, clock);
        let mut d = self.decide_inner(prop, now);
        d.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        Ok(d)
    }

    /// The time a decision of `prop` uses under `clock`: never before the logical clock,
    /// so windows only move forward.
    fn decision_time(&self, prop: &Proposal, clock: Clock) -> f64 {
        let t = match clock {
            Clock::Logical => prop.timestamp.unwrap_or(self.clock),
            Clock::Trusted(now) => match prop.timestamp {
                Some(ts) if (ts - now).abs() <= self.policy.governor.max_clock_skew_secs => ts,
                _ => now,
            },
            Clock::Recorded(t) => t,
        };
        // A NaN reading (no clock) keeps the logical clock; `max` returns the other
        // operand for a NaN one.
        t.max(self.clock)
    }

    /// The agent's `prev.` as the governor holds it: its last executed action, else the
    /// fallback.
    pub fn recorded_prev(&self, agent: &str) -> &[f64] {
        self.last_action
            .get(agent)
            .map_or(self.policy.fallback.as_slice(), Vec::as_slice)
    }

    /// With [`PrevSource::Governor`], refuse a `prev` the governor did not execute.
    fn admit_prev(&self, prop: &Proposal) -> Result<(), InputError> {
        if self.prev_source == PrevSource::Body {
            return Ok(());
        }
        let recorded = self.recorded_prev(&prop.agent);
        for ((a, claimed), held) in self.policy.actions.iter().zip(&prop.prev).zip(recorded) {
            if let Some(c) = claimed {
                if c != held {
                    let field = format!("prev.{}", a.name);
                    let mut shown = String::new();
                    value_json(&mut shown, &a.ty, *held);
                    return Err(InputError::new(
                        InputCode::PrevMismatch,
                        field.clone(),
                        format!(
                            "`{field}` is not what this governor last executed for agent `{}` ({shown}): `prev` is the governor's record, not the agent's to set",
                            prop.agent
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// SHA-256 (hex) of the governor state that later decisions depend on: the sequence
    /// number, the logical clock, every budget window and every agent's last executed
    /// action. Two governors with the same digest decide the same stream identically.
    pub fn state_digest(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        h.update(b"aioss-governor-state-v1");
        h.update(self.seq.to_le_bytes());
        h.update(self.clock.to_bits().to_le_bytes());
        for w in &self.windows {
            h.update((w.len() as u64).to_le_bytes());
            for (t, a) in w.entries() {
                h.update(t.to_bits().to_le_bytes());
                h.update(a.hi.to_bits().to_le_bytes());
                // An increment known only as an interval (it read a state box) adds its
                // lower bound; a point hashes as it did when only points were charged.
                if a.lo.to_bits() != a.hi.to_bits() {
                    h.update(b"lo");
                    h.update(a.lo.to_bits().to_le_bytes());
                }
            }
        }
        for (agent, last) in &self.last_action {
            h.update((agent.len() as u64).to_le_bytes());
            h.update(agent.as_bytes());
            for x in last {
                h.update(x.to_bits().to_le_bytes());
            }
        }
        for (agent, m) in &self.agents {
            h.update(b"monitor");
            h.update((agent.len() as u64).to_le_bytes());
            h.update(agent.as_bytes());
            m.hash_into(&mut |b: &[u8]| h.update(b));
        }
        let d = h.finalize();
        let mut s = String::with_capacity(64);
        for b in d {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Decide one proposal at its own time ([`Clock::Logical`]) with its own `prev` where
    /// given ([`PrevSource::Body`], whatever [`Governor::set_prev_source`] says). Never
    /// panics, never fails: see the module documentation.
    pub fn decide(&mut self, prop: &Proposal) -> Decision {
        let started = std::time::Instant::now();
        let now = self.decision_time(prop, Clock::Logical);
        let mut d = self.decide_inner(prop, now);
        d.latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        d
    }

    /// Take over the state of `old`, a governor of an earlier version of the policy (a hot
    /// reload), where it still means the same: the sequence number and the logical clock
    /// always; each budget window whose budget has the same name and window length; each
    /// agent's last executed action when the action variables are the same (names, types,
    /// order). Anything else starts empty, as in a new governor.
    pub fn carry_state_from(&mut self, old: &Governor) {
        self.seq = old.seq;
        self.clock = old.clock;
        for (b, w) in self.policy.budgets.iter().zip(self.windows.iter_mut()) {
            if let Some((_, ow)) = old
                .policy
                .budgets
                .iter()
                .zip(&old.windows)
                .find(|(ob, _)| ob.name == b.name && ob.window_secs == b.window_secs)
            {
                *w = ow.clone();
            }
        }
        let same_actions = self.policy.actions.len() == old.policy.actions.len()
            && self
                .policy
                .actions
                .iter()
                .zip(&old.policy.actions)
                .all(|(a, o)| a.name == o.name && a.ty == o.ty);
        if same_actions {
            self.last_action = old.last_action.clone();
        }
        // The agents' modes of operation and windows survive a reload; what the detectors
        // compare with does only under the same policy text (it names its rows).
        let same_text = self.policy.hash == old.policy.hash;
        self.agents = old
            .agents
            .iter()
            .map(|(a, m)| {
                let mut m = m.clone();
                if !same_text {
                    m.last = None;
                }
                if !same_actions {
                    m.last_certified = None;
                }
                (a.clone(), m)
            })
            .collect();
    }

    /// Record that `prop`'s action was executed outside a decision — an operator approved
    /// a held proposal — at the governor's logical clock: its budget increments (evaluated
    /// in `prop`'s state) are added to the windows and it becomes the agent's last
    /// action, exactly as if a decision had executed it. Budgets are updated only by
    /// executed actions; without this, a hold approved by an operator would not count
    /// against them. A replay of the audit log calls this for every approved hold, so the
    /// state it rebuilds is the same. Returns the failure modes it noted
    /// (`numerical_fault` when an increment is undefined).
    pub fn record_execution(&mut self, prop: &Proposal) -> FailureModes {
        let now = self.clock;
        let _ = self.fill_inputs(prop, now);
        let mut notes = Notes::default();
        let exec = prop.action.clone();
        self.charge(&prop.agent, &exec, now, &mut notes);
        notes.modes
    }

    /// Add the executed action `exec` of `agent` to the budget windows at `now` (with the
    /// state already in `self.inputs`) and make it the agent's last action.
    fn charge(&mut self, agent: &str, exec: &[f64], now: f64, notes: &mut Notes) {
        let p = &self.policy;
        if !p.budgets.is_empty() {
            for (k, a) in p.actions.iter().zip(exec) {
                if let Some(s) = self.inputs.get_mut(k.slot as usize) {
                    *s = Interval::point(*a);
                }
            }
            // Only the increments and what they read (a full evaluation cost the agent-tools
            // policy a second pass over its whole tape per decision).
            p.lattice
                .tape
                .eval_subset(&self.budget_ops, &self.inputs, &mut self.slots);
            for ((b, w), &s) in p
                .budgets
                .iter()
                .zip(&mut self.windows)
                .zip(&p.lattice.budget_slots)
            {
                let add = self
                    .slots
                    .get(s as usize)
                    .copied()
                    .unwrap_or(Interval::INVALID);
                if !w.charge(now, add) {
                    notes.named(
                        FailureMode::NumericalFault,
                        format!("budget `{}`: the amount is undefined", b.name),
                    );
                    notes.reasons.push(format!(
                        "budget `{}`: the amount is undefined here, so the budget counts as unbounded until this action leaves its window",
                        b.name
                    ));
                }
            }
        }
        if self.last_action.contains_key(agent) || self.last_action.len() < MAX_AGENTS {
            self.last_action.insert(agent.to_string(), exec.to_vec());
        }
    }

    /// Tier 1 alone, with no effect on the governor state: the active critical rows that
    /// are not SAT for `prop`'s action over its state box (with the budgets as of the
    /// logical clock), and the action bounds it breaks. Empty means the action is certified
    /// safe in that state. The server re-checks an approved hold with this against the
    /// latest state its agent reported, and an observed outcome against the safe set.
    pub fn critical_unsat(&mut self, prop: &Proposal) -> Vec<RowReport> {
        let saved = self.windows.clone();
        let _ = self.fill_inputs(prop, self.clock);
        // INVARIANT (check-is-pure): the budget windows are restored; only scratch changes.
        self.windows = saved;
        let p = &self.policy;
        self.t1.check(&p.lattice, &self.inputs, &prop.action);
        let Err(not) = self.t1.certify(&p.lattice) else {
            return Vec::new();
        };
        let rows = self.t1.rows();
        let mut out: Vec<RowReport> = not
            .rows
            .iter()
            .filter_map(|&i| {
                let (row, c) = (p.lattice.rows.get(i)?, rows.get(i)?);
                Some(RowReport {
                    id: row.name.clone(),
                    status: c.status,
                    margin: c.margin,
                    criticality: row.criticality,
                })
            })
            .collect();
        for &k in &not.out_of_range {
            if let (Some(a), Some(&u)) = (p.actions.get(k), prop.action.get(k)) {
                out.push(RowReport {
                    id: format!("bounds.{}", a.name),
                    status: Status::Violated,
                    margin: Interval::point((u - a.min).min(a.max - u)),
                    criticality: Criticality::Critical,
                });
            }
        }
        out
    }

    /// The `[dynamics]` model's prediction of the next state for `prop` (its action from
    /// its state box), each widened by the equation's error bound: `(state name, interval)`
    /// per equation. Empty without `[dynamics]`. No effect on the governor state.
    pub fn predict_next(&mut self, prop: &Proposal) -> Vec<(String, Interval)> {
        let saved = self.windows.clone();
        let _ = self.fill_inputs(prop, self.clock);
        self.windows = saved;
        let p = &self.policy;
        let Some(dy) = &p.dynamics else {
            return Vec::new();
        };
        dy.equations
            .iter()
            .enumerate()
            .filter_map(|(k, (si, term))| {
                let name = p.states.get(*si)?.name.clone();
                let e = dy.error_bound.get(k).copied().unwrap_or(0.0);
                let x = crate::tape::interpret(term, &self.inputs);
                Some((name, x.add(Interval::new(-e, e))))
            })
            .collect()
    }

    /// Fill `self.inputs` from the proposal and the governor state (`prev.` and the
    /// budgets as of `now`, evicting what left their windows); returns the required
    /// evidence that is missing.
    fn fill_inputs(&mut self, prop: &Proposal, now: f64) -> Vec<String> {
        let p = &self.policy;
        let last = self.last_action.get(&prop.agent);
        self.prev.clear();
        self.prev.extend(p.actions.iter().enumerate().map(|(i, _)| {
            prop.prev
                .get(i)
                .copied()
                .flatten()
                .or_else(|| last.and_then(|l| l.get(i).copied()))
                .or_else(|| p.fallback.get(i).copied())
                .unwrap_or(0.0)
        }));
        self.budget_values.clear();
        for (b, w) in p.budgets.iter().zip(&mut self.windows) {
            w.evict(now, b.window_secs);
            self.budget_values.push(w.value());
        }
        crate::tier1::inputs::assemble(p, prop, &self.prev, &self.budget_values, &mut self.inputs)
    }

    /// One decision: the flow of DESIGN.md, stage by stage (the module documentation).
    fn decide_inner(&mut self, prop: &Proposal, now: f64) -> Decision {
        let seq = self.seq;
        self.seq += 1;
        self.clock = now;
        let missing = self.fill_inputs(prop, now);
        let mut notes = Notes::default();
        let mut agent = self.take_agent(&prop.agent);

        // Tier 1 at the proposal, the monitors at its state, the rules' conditions.
        let p = &self.policy;
        self.t1.check(&p.lattice, &self.inputs, &prop.action);
        let proposal_cert = self.t1.certify(&p.lattice).ok();
        let findings = monitor::observe(p, prop, &self.t1);
        let mut watch = Notes::default();
        if let Some(last) = agent.last.as_ref() {
            let m = &self.monitors;
            monitor::lipschitz(p, m, last, &self.inputs, &self.t1, &mut watch);
            monitor::model_mismatch(p, last, now, prop, &mut watch);
        }
        monitor::uncertain_rows(p, &self.t1, &mut watch);
        if let Some(e) = agent.adversarial.take() {
            watch.flag(
                FailureMode::AdversarialProbing,
                format!("the adversarial-defence detectors flagged this agent ({e}): projection stability (G3) is suspended and the decision is sent for review"),
                e,
            );
        }
        let observed = self.observe_proposal(now);
        let p = &self.policy;
        p.lattice
            .tape
            .eval_subset(&p.lattice.rule_ops, &self.inputs, &mut self.slots);
        let slots = &self.slots;
        let truth = |k: u32| {
            slots
                .get(k as usize)
                .copied()
                .unwrap_or(Interval::INVALID)
                .truth()
        };
        let mut c = classify::classify(p, truth, self.t1.rows(), prop, &mut notes);
        self.rate_limit(&mut agent, now, &mut c, &mut notes);

        if self.critical_only && c.classification != Verdict::Go {
            notes.reasons.push(
                "the governor is in its critical-rows-only mode (overload): a repair keeps every critical row and may relax the others without first trying to keep them".into(),
            );
        }
        let r = self.repair_stage(prop, &mut c, &mut notes);
        monitor::report(&self.policy, &findings, &mut notes);
        notes.append(watch);
        self.after_repair(&mut agent, &c, &r, &mut notes);
        let questioned = findings.questions_the_audit()
            || self.questions_the_audit(&notes)
            || self.in_fallback_mode(&agent, &mut notes);
        let audit = execute::audit(&c, questioned, &missing, &mut notes);
        let freeze = (agent.mode == OperatingMode::Fallback
            && self.policy.monitor.fallback_mode == FallbackMode::Freeze)
            .then(|| agent.last_certified.clone())
            .flatten();
        let x = self.execute(
            prop,
            proposal_cert,
            &c,
            &r,
            audit,
            freeze.as_deref(),
            &mut notes,
        );

        // Governor state: budgets, the agent's last action and its monitors follow what
        // was executed.
        self.charge(&prop.agent, &x.action, now, &mut notes);
        self.remember(&mut agent, seq, observed, &x, &notes);
        let mode = agent.mode;
        self.put_agent(&prop.agent, agent);
        self.decision(prop, seq, now, c, r, x, mode, notes)
    }

    /// The decision the stages found.
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per stage of the flow"
    )]
    fn decision(
        &self,
        prop: &Proposal,
        seq: u64,
        now: f64,
        c: classify::Classified,
        r: tier2::Repaired,
        x: execute::Execution,
        mode: OperatingMode,
        mut notes: Notes,
    ) -> Decision {
        let outcome = x.outcome;
        let ledger = decision::Ledger::new(&self.policy, &x.guarantees, &r.relaxed, &notes);
        // A candidate is reported when it is offered to a human, not when it executes.
        let candidate = r
            .candidate
            .as_ref()
            .filter(|_| outcome != Outcome::AllowAfterRepair)
            .map(|rep| rep.action.clone());
        // Distance reported only for repairs and offered candidates.
        let distance = if outcome != Outcome::AllowAfterRepair
            && c.classification != Verdict::Hold
            && candidate.is_none()
        {
            None
        } else {
            r.distance
        };
        if outcome == Outcome::HoldForConfirmation || outcome == Outcome::BlockNoRepair {
            notes.reasons.push(format!(
                "{}: {} now{}",
                outcome.as_str(),
                if x.enforce_action.is_some() {
                    "enforce mode executes the fallback"
                } else {
                    "the fallback is executed"
                },
                if outcome.human_action_required() && outcome != Outcome::BlockNoRepair {
                    " and the proposal waits for a human"
                } else {
                    ""
                }
            ));
        }
        Decision {
            id: prop.id.clone(),
            decision_id: format!("{}-{seq}", self.policy.hash.get(7..19).unwrap_or("0")),
            seq,
            agent: prop.agent.clone(),
            time: now,
            final_outcome: outcome,
            classification: c.classification,
            evaluation: x.evaluation,
            audit: x.audit,
            repair_status: r.status,
            action: x.action,
            proposed: prop.action.clone(),
            enforce_action: x.enforce_action,
            candidate,
            distance,
            constraints: c.constraints,
            relaxed: r.relaxed,
            rule: c.rule,
            reasons: notes.reasons,
            repaired_transition: matches!(c.classification, Verdict::Repair | Verdict::Hold)
                .then_some(r.transition)
                .flatten(),
            failure_modes: notes.modes,
            guarantees: x.guarantees,
            ledger,
            operating_mode: mode,
            critical_only: self.critical_only,
            solver: r.solver,
            latency_us: 0,
        }
    }
}

/// What the stages of one decision say, in the order they say it: the decision's reasons,
/// its failure modes and each mode's evidence.
#[derive(Debug, Default)]
pub(crate) struct Notes {
    pub reasons: Vec<String>,
    pub modes: FailureModes,
    /// What a detector saw, per mode it named (for the guarantee ledger).
    pub evidence: Vec<(FailureMode, String)>,
}

impl Notes {
    /// Add `other`'s reasons, modes and evidence after this one's.
    pub fn append(&mut self, other: Notes) {
        self.reasons.extend(other.reasons);
        for m in other.modes.iter() {
            self.modes.add(m);
        }
        self.evidence.extend(other.evidence);
    }

    /// Name `mode` with its evidence (the reason for people is written apart).
    pub fn named(&mut self, mode: FailureMode, evidence: String) {
        self.modes.add(mode);
        self.evidence.push((mode, evidence));
    }

    /// A detector's finding: the mode, a reason for people, and the evidence.
    pub fn flag(&mut self, mode: FailureMode, reason: String, evidence: String) {
        self.modes.add(mode);
        self.reasons.push(reason);
        self.evidence.push((mode, evidence));
    }
}

/// The agent's repairer (its warm start), or the shared one past [`MAX_AGENTS`].
fn repairer_of<'a>(
    repairers: &'a mut BTreeMap<String, Repairer>,
    shared: &'a mut Repairer,
    policy: &Policy,
    agent: &str,
) -> &'a mut Repairer {
    if !repairers.contains_key(agent) && repairers.len() < MAX_AGENTS {
        repairers.insert(agent.to_string(), Repairer::new(policy));
    }
    match repairers.get_mut(agent) {
        Some(r) => r,
        None => shared,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    /// Caught (issue 17, defect 5): the governor marked a repaired action certified on the
    /// repairer's word. A repairer that claims a certified repair of an action Tier 1
    /// refutes must not get it executed: the governor checks it itself.
    #[test]
    fn a_repair_the_checker_refutes_is_never_executed() {
        let p = crate::load(
            "outcomes.toml",
            include_str!("../../tests/data/outcomes.toml"),
        )
        .unwrap();
        let line = r#"{"action":{"vx":1.2,"mode":"auto"},"state":{"px":5.0,"temp":20,"flag":"none","note":"n"}}"#;
        let mut honest = Governor::new(p.clone());
        let d = honest.decide_line(line).unwrap();
        assert_eq!(d.final_outcome, Outcome::AllowAfterRepair);
        assert!(d.action[0] <= 0.8, "{:?}", d.action);

        let mut g = Governor::new(p);
        // The repairer claims 1.2, which breaks `speed` (critical) and `eco`.
        g.sabotage_repair = Some(|r: &mut crate::repair::Repair| {
            if let Some(x) = r.action.first_mut() {
                *x = 1.2;
            }
        });
        let d = g.decide_line(line).unwrap();
        assert_ne!(d.action, vec![1.2, 0.0], "{:?}", d.final_outcome);
        assert!(d.action[0] <= 0.8, "{:?}", d.action);
        assert_eq!(
            d.action,
            g.policy().fallback,
            "the certified fallback executes"
        );
        assert!(d.guarantees.pointwise_safety);
        assert_eq!(
            d.final_outcome,
            Outcome::BlockNoRepair,
            "{}",
            d.to_json(g.policy())
        );
        assert!(
            d.reasons
                .iter()
                .any(|r| r.contains("which Tier 1 does not certify")),
            "{:?}",
            d.reasons
        );
    }
}
