//! The monitor stage's memory in the decision flow (issue 20): each agent's monitors are
//! taken out of the governor for one decision, read by the detectors, moved by what the
//! decision found (its mode of operation), and put back. One agent's monitors never read or
//! change another's (INVARIANT agent-isolation): a failure in one agent's monitors changes
//! no other agent's decisions.

use crate::failure::{FailureMode, Guarantee};
use crate::interval::Interval;
use crate::policy::{ConstraintKind, Criticality, Verdict};
use crate::repair::SolverStatus;

use super::agents::{AgentMonitor, Observation, OperatingMode};
use super::classify::Classified;
use super::decision::fmt_num;
use super::execute::Execution;
use super::tier2::Repaired;
use super::{monitor, Governor, Notes, MAX_AGENTS};

impl Governor {
    /// The agent's monitors, out of the governor for the length of a decision (a fresh
    /// record for an agent not seen, or past [`MAX_AGENTS`]).
    pub(super) fn take_agent(&mut self, agent: &str) -> AgentMonitor {
        self.agents
            .get_mut(agent)
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// Put the agent's monitors back (bounded: past [`MAX_AGENTS`] a new agent's are not
    /// kept, and it is decided as a first-time agent each time).
    pub(super) fn put_agent(&mut self, agent: &str, m: AgentMonitor) {
        if let Some(slot) = self.agents.get_mut(agent) {
            *slot = m;
        } else if self.agents.len() < MAX_AGENTS {
            self.agents.insert(agent.to_string(), m);
        }
    }

    /// What the proposal's check leaves for the next decision's detectors (the executed
    /// action's inputs to the `[dynamics]` model are added by [`Governor::remember`]).
    pub(super) fn observe_proposal(&self, now: f64) -> Observation {
        let margins = self
            .monitors
            .lipschitz
            .iter()
            .map(|(row, _, _)| {
                self.t1
                    .rows()
                    .get(*row)
                    .filter(|c| c.active && !c.margin.is_invalid())
                    .map(|c| c.margin.mid())
            })
            .collect();
        let inputs = self
            .monitors
            .watched
            .iter()
            .map(|&s| self.inputs.get(s as usize).map_or(f64::NAN, |x| x.mid()))
            .collect();
        Observation {
            time: now,
            inputs,
            margins,
            model_inputs: Vec::new(),
        }
    }

    /// Per-agent action rate limiting (`[monitor] rate_limit`, off unless the policy sets
    /// it): past the limit the proposal is blocked, as a rule would block it.
    pub(super) fn rate_limit(
        &self,
        agent: &mut AgentMonitor,
        now: f64,
        c: &mut Classified,
        notes: &mut Notes,
    ) {
        let s = &self.policy.monitor;
        let Some(limit) = s.rate_limit else { return };
        while let Some(&t) = agent.recent.front() {
            let age = Interval::point(now).sub(Interval::point(t)).lo;
            if age >= s.rate_window_secs {
                agent.recent.pop_front();
            } else {
                break;
            }
        }
        let within = u32::try_from(agent.recent.len()).unwrap_or(u32::MAX);
        if within < limit {
            agent.recent.push_back(now);
            return;
        }
        c.classification = Verdict::Block;
        c.block_cause = c.block_cause.max(Some(Criticality::High));
        notes.reasons.push(format!(
            "rate limit: this agent has had {limit} decisions in the last {} s (at most {limit}): blocked",
            fmt_num(s.rate_window_secs)
        ));
    }

    /// The detectors that follow a repair (see [`monitor::after_repair`]), and the agent's
    /// running record of how its repairs ended.
    pub(super) fn after_repair(
        &mut self,
        agent: &mut AgentMonitor,
        c: &Classified,
        r: &Repaired,
        notes: &mut Notes,
    ) {
        let Some(solver) = r.solver else { return };
        let converged = !matches!(
            solver.status,
            SolverStatus::MaxIterations | SolverStatus::Deadline | SolverStatus::NumericalError
        );
        agent.repairs.push_back(converged);
        while agent.repairs.len() > self.policy.monitor.rate_window as usize {
            agent.repairs.pop_front();
        }
        // INVARIANT (fresh-slots): the checker's last check is of the repaired action
        // (the repair stage certified it last), which the geometry is read at.
        let repaired = (c.classification == Verdict::Repair && r.cert.is_some())
            .then(|| r.candidate.as_ref().map(|rep| rep.action.as_slice()))
            .flatten();
        monitor::after_repair(
            &self.policy,
            &self.monitors,
            agent.non_convergence(),
            repaired,
            &self.t1,
            &mut self.adj,
            notes,
        );
    }

    /// Does a named failure mode send the decision for review: one that suspends a
    /// trajectory guarantee the policy offers (G2 with barrier rows, G4 with Lyapunov
    /// rows), or an adversarial flag? Per-decision solver outcomes and numerical faults do
    /// not ([`FailureMode::questions_the_audit`]).
    pub(super) fn questions_the_audit(&self, notes: &Notes) -> bool {
        let offers = |k: ConstraintKind| self.policy.lattice.rows.iter().any(|r| r.kind == k);
        let review = &self.policy.monitor.review;
        notes.modes.iter().any(|m| {
            review.contains(&m)
                || m.questions_the_audit()
                    && (m == FailureMode::AdversarialProbing
                        || m == FailureMode::ExcessiveUncertainty
                        || (m.suspends().contains(&Guarantee::ForwardInvariance)
                            && offers(ConstraintKind::Barrier))
                        || (m.suspends().contains(&Guarantee::InputToStateStability)
                            && offers(ConstraintKind::Lyapunov)))
        })
    }

    /// An agent in the fallback mode of operation has every decision reviewed, and only
    /// the certified fallback (or its frozen action) executes.
    pub(super) fn in_fallback_mode(&self, agent: &AgentMonitor, notes: &mut Notes) -> bool {
        if agent.mode != OperatingMode::Fallback {
            return false;
        }
        let since = agent.since.map_or(String::new(), |(seq, m)| {
            format!(" since decision {seq} (`{m}`)")
        });
        notes.reasons.push(format!(
            "this agent is in the fallback mode of operation{since}: only the certified fallback executes until {} clean decisions or an operator's reset",
            self.policy.monitor.recover_after
        ));
        true
    }

    /// Move the agent's mode by what decision `seq` found, and keep what the next
    /// decision's detectors compare with.
    pub(super) fn remember(
        &mut self,
        agent: &mut AgentMonitor,
        seq: u64,
        mut observed: Observation,
        x: &Execution,
        notes: &Notes,
    ) {
        let to = notes
            .modes
            .iter()
            .filter_map(|m| {
                let review = self.policy.monitor.review.contains(&m);
                mode_for(m, self.questions_the_audit_mode(m), review).map(|o| (o, m))
            })
            .max_by_key(|(o, _)| *o);
        if notes.modes.is_empty() {
            agent.clean = agent.clean.saturating_add(1);
            if agent.mode != OperatingMode::Normal
                && agent.clean >= self.policy.monitor.recover_after
            {
                agent.mode = OperatingMode::Normal;
                agent.since = None;
            }
        } else {
            agent.clean = 0;
        }
        if let Some((to, m)) = to {
            if to > agent.mode {
                agent.mode = to;
                agent.since = Some((seq, m));
            }
        }
        // What `freeze` holds: the last action certified while the agent was not in the
        // fallback mode (in it, what executes is the fallback or the frozen action itself).
        if x.action_certified && agent.mode != OperatingMode::Fallback {
            agent.last_certified = Some(x.action.clone());
        }
        observed.model_inputs = self.model_inputs(&x.action);
        agent.last = Some(observed);
    }

    /// Would mode `m` alone send a decision for review under this policy?
    fn questions_the_audit_mode(&self, m: FailureMode) -> bool {
        let mut n = Notes::default();
        n.modes.add(m);
        self.questions_the_audit(&n)
    }

    /// What the `[dynamics]` equations read at this decision, with the executed `action`
    /// in place of the proposal's: `(slot, value)` for each slot in `Monitors::model_slots`.
    /// The prediction itself is made only when the agent's next proposal comes one `dt`
    /// later ([`monitor::model_mismatch`]), not on every decision.
    fn model_inputs(&self, action: &[f64]) -> Vec<(u32, Interval)> {
        let p = &self.policy;
        self.monitors
            .model_slots
            .iter()
            .map(|&s| {
                let executed = p
                    .actions
                    .iter()
                    .zip(action)
                    .find(|(a, _)| a.slot == s)
                    .map(|(_, u)| Interval::point(*u));
                let x = executed
                    .or_else(|| self.inputs.get(s as usize).copied())
                    .unwrap_or(Interval::ENTIRE);
                (s, x)
            })
            .collect()
    }

    /// What an observed outcome found (`modes`) moves the agent's mode of operation, as a
    /// decision naming them would; a failed outcome is not a clean decision.
    pub(super) fn outcome_moves_agent(
        &mut self,
        agent: &str,
        modes: &crate::failure::FailureModes,
    ) {
        if modes.is_empty() {
            return;
        }
        let mut m = self.take_agent(agent);
        m.clean = 0;
        for mode in modes.iter() {
            let review = self.policy.monitor.review.contains(&mode);
            if let Some(to) = mode_for(mode, self.questions_the_audit_mode(mode), review) {
                if to > m.mode {
                    m.mode = to;
                    m.since = Some((self.seq, mode));
                }
            }
        }
        self.put_agent(agent, m);
    }

    /// The hook of the adversarial-defence detectors (issue 21): `agent`'s next decision
    /// names `adversarial_probing` with `evidence`, which suspends G3, sends it for review
    /// (the fallback executes) and moves the agent to the fallback mode. Part of the
    /// governor state (digest, snapshots) until that decision consumes it; a caller outside
    /// the decision flow records why it called, so that replay can call it at the same
    /// place.
    pub fn flag_adversarial(&mut self, agent: &str, evidence: String) {
        let mut m = self.take_agent(agent);
        m.adversarial = Some(evidence);
        self.put_agent(agent, m);
    }

    /// An operator's reset of `agent`'s mode of operation (recorded by the caller): back to
    /// normal, its monitors' windows kept.
    pub fn reset_agent(&mut self, agent: &str) {
        if let Some(m) = self.agents.get_mut(agent) {
            m.mode = OperatingMode::Normal;
            m.clean = 0;
            m.since = None;
        }
    }

    /// `agent`'s mode of operation, and the failure mode that set it.
    pub fn agent_mode(&self, agent: &str) -> (OperatingMode, Option<FailureMode>) {
        self.agents
            .get(agent)
            .map_or((OperatingMode::Normal, None), |m| {
                (m.mode, m.since.map(|s| s.1))
            })
    }
}

/// The mode of operation a failure mode moves an agent to: fallback for one that sends the
/// decision for review (a trajectory guarantee suspended, or adversarial), degraded for one
/// that suspends G3 or G5 alone, none for the others.
///
/// `excessive_uncertainty` sends its own decision for review without latching the
/// fallback mode: it is a property of one reading (a state outside its range, a box too
/// wide), and the next reading that is within bounds is judged on its own; a policy that
/// wants it latched lists it in `[monitor] review` (`review`).
fn mode_for(m: FailureMode, questioned: bool, review: bool) -> Option<OperatingMode> {
    if review || (questioned && m != FailureMode::ExcessiveUncertainty) {
        Some(OperatingMode::Fallback)
    } else if m
        .suspends()
        .iter()
        .any(|g| matches!(g, Guarantee::ProjectionStability | Guarantee::Timing))
    {
        Some(OperatingMode::Degraded)
    } else {
        None
    }
}
