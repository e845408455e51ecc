//! Tier 3's estimates (issue 20): from what agents proposed and what they observed, each
//! row's empirical Lipschitz constant and each `[dynamics]` equation's error, set against
//! what the policy declares (`lipschitz`, `error_bound`).
//!
//! Asynchronous by design: nothing here gates a decision. The server feeds an
//! [`Estimator`] on a thread of its own (dropping samples rather than waiting), `aioss
//! report --policy` and `aioss policy suggest` feed one from a store's records. Deterministic
//! (the same records give the same estimates) but not governor state: it is not in the
//! state digest, and replay does not need it.
//!
//! What is measured, from floating-point midpoints (an estimate, not a bound):
//! * a row's quotient `|Δmargin| / ‖Δinputs read‖₁` between an agent's successive
//!   proposals (the `lipschitz_exceeded` detector's quotient, for every row);
//! * an equation's error `|observed − predicted|`: the prediction from a decision's state
//!   and executed action against the state reported after it — by an outcome report, or
//!   by the agent's next proposal when it comes one `dt` later (the `model_mismatch`
//!   detector's comparison).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::interval::Interval;
use crate::policy::Policy;
use crate::tier1::Checker;

use super::{Proposal, StateValue};

/// What was seen of one row.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RowEstimate {
    /// The largest quotient seen.
    pub max_quotient: f64,
    /// Pairs of successive proposals in which the row's inputs moved.
    pub samples: u64,
}

/// What was seen of one `[dynamics]` equation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct EquationEstimate {
    /// The largest `|observed − predicted|` seen.
    pub max_error: f64,
    /// Comparisons made.
    pub samples: u64,
}

/// An agent's last proposal, as the next one is compared with it.
#[derive(Clone, Debug)]
struct Last {
    time: f64,
    inputs: Vec<f64>,
    margins: Vec<Option<f64>>,
    /// The prediction of each equation from its state and executed action (midpoints).
    predicted: Vec<Option<f64>>,
}

/// Agents whose last proposal is kept (bounded memory); past it new agents are not
/// compared with their previous proposal.
pub const MAX_ESTIMATED_AGENTS: usize = 4096;

/// Tier 3's estimator for one policy.
#[derive(Debug)]
pub struct Estimator {
    checker: Checker,
    reads: Vec<Vec<u32>>,
    inputs: Vec<Interval>,
    last: HashMap<String, Last>,
    rows: Vec<RowEstimate>,
    equations: Vec<EquationEstimate>,
}

impl Estimator {
    /// An estimator for `p`, with nothing seen.
    pub fn new(p: &Policy) -> Estimator {
        let reads = p
            .lattice
            .rows
            .iter()
            .map(|r| super::monitor::row_reads(p, r))
            .collect();
        Estimator {
            checker: Checker::new(&p.lattice),
            reads,
            inputs: Vec::new(),
            last: HashMap::new(),
            rows: vec![RowEstimate::default(); p.lattice.rows.len()],
            equations: vec![
                EquationEstimate::default();
                p.dynamics.as_ref().map_or(0, |d| d.equations.len())
            ],
        }
    }

    /// A decided proposal `prop` of policy `p`, at decision time `time`, which executed
    /// `executed`.
    pub fn decision(&mut self, p: &Policy, prop: &Proposal, executed: &[f64], time: f64) {
        let prev: Vec<f64> = (0..p.actions.len())
            .map(|i| {
                prop.prev
                    .get(i)
                    .copied()
                    .flatten()
                    .or_else(|| p.fallback.get(i).copied())
                    .unwrap_or(0.0)
            })
            .collect();
        let budgets = vec![Interval::ENTIRE; p.budgets.len()];
        let _ = crate::tier1::inputs::assemble(p, prop, &prev, &budgets, &mut self.inputs);
        self.checker.check(&p.lattice, &self.inputs, &prop.action);
        let margins: Vec<Option<f64>> = self
            .checker
            .rows()
            .iter()
            .map(|c| (c.active && !c.margin.is_invalid()).then(|| c.margin.mid()))
            .collect();
        let inputs: Vec<f64> = self.inputs.iter().map(|x| x.mid()).collect();
        let known = self.last.remove(&prop.agent);
        if let Some(last) = &known {
            self.compare_rows(last, &inputs, &margins);
            self.compare_next_state(p, last, prop, time);
        }
        let predicted = self.predict(p, executed);
        let entry = Last {
            time,
            inputs,
            margins,
            predicted,
        };
        if known.is_some() || self.last.len() < MAX_ESTIMATED_AGENTS {
            self.last.insert(prop.agent.clone(), entry);
        }
    }

    /// The outcome of decision `decided` (which executed `executed`): the state observed
    /// after it.
    pub fn outcome(
        &mut self,
        p: &Policy,
        decided: &Proposal,
        executed: &[f64],
        observed: &[Option<StateValue>],
    ) {
        let prev = vec![0.0; p.actions.len()];
        let budgets = vec![Interval::ENTIRE; p.budgets.len()];
        let _ = crate::tier1::inputs::assemble(p, decided, &prev, &budgets, &mut self.inputs);
        let predicted = self.predict(p, executed);
        self.compare_states(p, &predicted, observed);
    }

    /// Each row's estimate, in the lattice's order.
    pub fn rows(&self) -> &[RowEstimate] {
        &self.rows
    }

    /// Each `[dynamics]` equation's estimate, in the policy's order.
    pub fn equations(&self) -> &[EquationEstimate] {
        &self.equations
    }

    fn compare_rows(&mut self, last: &Last, inputs: &[f64], margins: &[Option<f64>]) {
        for (k, est) in self.rows.iter_mut().enumerate() {
            let (Some(Some(a)), Some(Some(b)), Some(reads)) =
                (last.margins.get(k), margins.get(k), self.reads.get(k))
            else {
                continue;
            };
            let moved: f64 = reads
                .iter()
                .map(|&s| {
                    let x = last.inputs.get(s as usize).copied().unwrap_or(f64::NAN);
                    let y = inputs.get(s as usize).copied().unwrap_or(f64::NAN);
                    (y - x).abs()
                })
                .sum();
            let change = (b - a).abs();
            if moved > 0.0 && moved.is_finite() && change.is_finite() {
                est.samples += 1;
                est.max_quotient = est.max_quotient.max(change / moved);
            }
        }
    }

    /// The agent's next proposal, one `dt` after its last one, reports the state the last
    /// decision's prediction is compared with.
    fn compare_next_state(&mut self, p: &Policy, last: &Last, prop: &Proposal, time: f64) {
        let m = &p.monitor;
        let Some(dt) = m.dt else { return };
        if ((time - last.time) - dt).abs() > m.dt_tolerance {
            return;
        }
        self.compare_states(p, &last.predicted, &prop.state);
    }

    fn compare_states(
        &mut self,
        p: &Policy,
        predicted: &[Option<f64>],
        observed: &[Option<StateValue>],
    ) {
        let Some(dy) = &p.dynamics else { return };
        for (k, (si, _)) in dy.equations.iter().enumerate() {
            let (Some(Some(pred)), Some(Some(StateValue::Num(x))), Some(est)) = (
                predicted.get(k),
                observed.get(*si),
                self.equations.get_mut(k),
            ) else {
                continue;
            };
            let err = (x.mid() - pred).abs();
            if err.is_finite() {
                est.samples += 1;
                est.max_error = est.max_error.max(err);
            }
        }
    }

    /// Each equation's prediction (midpoint, without its error bound) from the inputs
    /// assembled last and the action `executed`.
    fn predict(&mut self, p: &Policy, executed: &[f64]) -> Vec<Option<f64>> {
        let Some(dy) = &p.dynamics else {
            return Vec::new();
        };
        for (a, u) in p.actions.iter().zip(executed) {
            if let Some(s) = self.inputs.get_mut(a.slot as usize) {
                *s = Interval::point(*u);
            }
        }
        dy.equations
            .iter()
            .map(|(_, term)| {
                let x = crate::tape::interpret(term, &self.inputs);
                (!x.is_invalid()).then(|| x.mid())
            })
            .collect()
    }

    /// The estimates beside what `p` declares, one line each, for people: rows with a
    /// declared `lipschitz` or any sample, equations with any sample.
    pub fn describe(&self, p: &Policy) -> Vec<String> {
        let mut out = Vec::new();
        for (k, est) in self.rows.iter().enumerate() {
            let Some(row) = p.lattice.rows.get(k) else {
                continue;
            };
            let declared = p.constraints.get(row.constraint).and_then(|c| c.lipschitz);
            if est.samples == 0 && declared.is_none() {
                continue;
            }
            let mut s = format!(
                "row `{}`: observed Lipschitz quotient up to {} over {} pairs",
                row.name,
                super::decision::fmt_num(est.max_quotient),
                est.samples
            );
            if let Some(l) = declared {
                let _ = write!(
                    s,
                    ", declared {}{}",
                    super::decision::fmt_num(l),
                    if est.max_quotient > l {
                        " (exceeded)"
                    } else {
                        ""
                    }
                );
            }
            out.push(s);
        }
        if let Some(dy) = &p.dynamics {
            for (k, ((si, _), est)) in dy.equations.iter().zip(&self.equations).enumerate() {
                let name = p.states.get(*si).map_or("?", |s| s.name.as_str());
                let bound = dy.error_bound.get(k).copied().unwrap_or(0.0);
                out.push(format!(
                    "dynamics of `{name}`: observed error up to {} over {} comparisons, declared error_bound {}{}",
                    super::decision::fmt_num(est.max_error),
                    est.samples,
                    super::decision::fmt_num(bound),
                    if est.max_error > bound { " (exceeded)" } else { "" }
                ));
            }
        }
        out
    }
}
