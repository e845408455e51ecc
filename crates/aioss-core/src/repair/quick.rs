//! The warm re-repair: a proposal at the same state as the last repair, for a policy whose
//! rows are all affine in the real action variables (`Rows::quick_ok`), gets the last
//! search's first QP back with only `g` and the back-off recomputed, warm-started from the
//! last active set and its kept factorisation, and one Tier 1 check of the answer.
//!
//! The last search's first QP is then this proposal's first QP too, up to rounding: the
//! same rows (which rows are active and screened depends on the state alone), the same
//! `a_i` (constant gradients) and the same `lo − ∇·u` (the constant of an affine model).
//! Only `g` (from the proposal) and the back-off (from each row's model margin at the
//! proposal) are new. So: one QP and one Tier 1 check of its answer — instead of a Tier 1
//! check of the proposal, the search set-up, the QP assembly and a second check. It is
//! what makes a control loop's re-solve after a small change of `u₀` cost a QP and a
//! check instead of a search.
//!
//! It is what the search's first node does in its first step, with the row margins at the
//! proposal taken from the model instead of Tier 1 (they differ by rounding), and it
//! returns only what that step would have returned: a point Tier 1 finds SAT on every
//! active row, or, when the QP moves nowhere, the proposal itself if Tier 1 finds it SAT
//! (the feasible path). Anything else — another state, a QP that is not solved, an answer
//! Tier 1 does not accept — returns `None`, and the full repair runs as if this had not
//! been tried. The answer is a function of the inputs and the last search's QP, so a
//! replay of the same stream reproduces it.

use crate::interval::Interval;
use crate::policy::{Criticality, Policy, Sense};
use crate::qp::{dot, dot_abs, QpStatus, QpWorkspace};

use super::relax::acceptable;
use super::rows::Rows;
use super::{clamp_to, objective, ModeledCost, Repair, RepairOutcome, Repairer, SolverStatus};

/// The first QP of the last repair's search (kept when `Rows::quick_ok`).
#[derive(Debug, Default)]
pub(super) struct QuickQp {
    /// Its rows `a`: every active, unscreened row that reads a real variable, then the
    /// bounds.
    pub(super) a: Vec<f64>,
    /// What each row is: `Some(lattice row)` or `None` for a bound.
    pub(super) rows: Vec<Option<usize>>,
    /// Each row's `b` before the back-off (`lo − ∇·u`: for an affine row the constant of
    /// its model, the same at every point).
    pub(super) b0: Vec<f64>,
    /// The inputs it was built for.
    inputs: Vec<Interval>,
    /// Was the QP solver's last solve on `a` (so its copy of the rows can be kept,
    /// [`QpWorkspace::solve_same_rows`])?
    pub(super) in_solver: bool,
}

impl QuickQp {
    /// Are `inputs` the state this QP was built for (action slots aside)?
    fn same_state(&self, rows: &Rows, inputs: &[Interval]) -> bool {
        inputs.len() == self.inputs.len()
            && inputs
                .iter()
                .zip(&self.inputs)
                .enumerate()
                .all(|(k, (x, y))| {
                    rows.action_slot.get(k).copied().unwrap_or(false)
                        || (x.lo.to_bits() == y.lo.to_bits() && x.hi.to_bits() == y.hi.to_bits())
                })
    }
}

impl Repairer {
    /// Keep the QP just assembled (for `inputs`) as the warm re-repair's. The rows in it do
    /// not depend on the point (screening and activity are fixed by the state), and neither
    /// does each row's `lo − ∇·u`. When the rows came from the kept QP (`cached_rows`) they
    /// are already kept; the state and its `b` are this one's either way.
    pub(super) fn record_quick(&mut self, inputs: &[Interval], cached_rows: bool) {
        let data = &self.ws.data;
        let q = self.ws.quick.get_or_insert_with(QuickQp::default);
        if !cached_rows {
            q.a.clone_from(&data.a);
            q.rows.clone_from(&data.qrow);
        }
        q.b0.clear();
        q.b0.extend(data.b.iter().zip(&data.needs).map(|(b, need)| b + need));
        q.inputs.clear();
        q.inputs.extend_from_slice(inputs);
    }

    /// The warm re-repair of `proposal` (see the module documentation), or `None`.
    pub(super) fn quick(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
    ) -> Option<Repair> {
        let ready = self
            .ws
            .quick
            .as_ref()
            .is_some_and(|q| q.same_state(&self.rows, inputs));
        if !self.rows.quick_ok || !ready || proposal.len() != p.actions.len() {
            return None;
        }
        let mut u = proposal.to_vec();
        for &ai in &self.rows.real {
            let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) else {
                return None;
            };
            if !uj.is_finite() {
                return None;
            }
            *uj = clamp_to(*uj, a.min, a.max);
        }
        self.quick_rhs(p, &u);
        if !self.quick_objective(p, proposal) {
            return None;
        }
        let (status, iterations) = self.quick_solve(p);
        if status != QpStatus::Solved {
            return None;
        }
        let mut active: Vec<usize> = Vec::new();
        if let Some(q) = &self.ws.quick {
            active.extend(
                self.ws
                    .data
                    .active
                    .iter()
                    .filter_map(|&qi| q.rows.get(qi).copied().flatten()),
            );
        }
        active.sort_unstable();
        if active.is_empty() {
            // The model puts the proposal inside every row: the feasible path decides.
            return self.proposal_holds(p, inputs, proposal);
        }
        let scale0 = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (j, &ai) in self.rows.real.iter().enumerate() {
            let x = self.ws.data.x.get(j).copied().unwrap_or(f64::NAN);
            let (Some(uj), Some(a), Some(&x0)) =
                (u.get_mut(ai), p.actions.get(ai), proposal.get(ai))
            else {
                return None;
            };
            if !x.is_finite() {
                return None;
            }
            *uj = super::sqp::snap(clamp_to(x, a.min, a.max), a.min, a.max, scale0, x0);
        }
        self.ws.check.check(p, inputs, &u);
        let relaxed = acceptable(self.ws.check.rows(), p, Criticality::Low, false)?;
        if !relaxed.is_empty() {
            return None;
        }
        let distance = objective(p, &self.rows.real, proposal, &u).max(0.0).sqrt();
        self.ws.warm_rows.clone_from(&active);
        Some(Repair {
            action: u,
            outcome: RepairOutcome::Certified,
            status: SolverStatus::Solved,
            distance,
            active_set: active,
            relaxed: Vec::new(),
            iterations: iterations.saturating_add(1),
            steps: 1,
            nodes: 1,
            cost: ModeledCost(0),
            checks: self.ws.check.rows().to_vec(),
            certified: true,
        })
    }

    /// The kept QP's `b` at `u`: each row's model margin there with the back-off of
    /// `row_rhs` (the bounds' `b` as kept).
    fn quick_rhs(&mut self, p: &Policy, u: &[f64]) {
        let nr = self.rows.real.len();
        let data = &mut self.ws.data;
        let Some(q) = &self.ws.quick else {
            return;
        };
        data.ureal.clear();
        data.ureal.extend(
            self.rows
                .real
                .iter()
                .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
        );
        data.b.clear();
        let rows = q.a.chunks_exact(nr.max(1));
        for ((row, r), &b0) in rows.zip(&q.rows).zip(&q.b0) {
            let Some(i) = *r else {
                data.b.push(b0);
                continue;
            };
            // The model's margin at `u`: `lo = (lo − ∇·u)_kept + ∇·u`, with `a = −∇`.
            let au = dot(row, &data.ureal);
            let scale = dot_abs(row, &data.ureal);
            let lo = b0 - au;
            let delta = 1e-9 * (1.0 + lo.abs() + scale);
            let strict = p.lattice.rows.get(i).is_some_and(|x| x.sense == Sense::Lt);
            let sat = lo > 0.0 || (lo == 0.0 && !strict);
            let need = if sat { delta.min(lo) } else { delta };
            data.b.push(b0 - need);
        }
    }

    /// `g = −2 W u₀`, and `H = 2 W` factored (as the SQP's assembly leaves it). `false`
    /// when the metric does not fit or `H` cannot be factored.
    fn quick_objective(&mut self, p: &Policy, proposal: &[f64]) -> bool {
        let nr = self.rows.real.len();
        let data = &mut self.ws.data;
        data.ureal.clear();
        data.ureal.extend(
            self.rows
                .real
                .iter()
                .map(|&ai| proposal.get(ai).copied().unwrap_or(0.0)),
        );
        data.g.clear();
        data.g.extend(
            p.governor
                .metric
                .iter()
                .map(|wrow| -2.0 * dot(wrow, &data.ureal)),
        );
        if data.g.len() != nr {
            return false;
        }
        if data.factored != Some(nr) {
            data.h.clear();
            data.h.resize(nr * nr, 0.0);
            for (bi, wrow) in p.governor.metric.iter().enumerate() {
                for (bj, w) in wrow.iter().enumerate() {
                    if let Some(hh) = data.h.get_mut(bi * nr + bj) {
                        *hh = 2.0 * w;
                    }
                }
            }
            data.factored = None;
            if self.ws.qp.set_hessian(nr, &data.h) != QpStatus::Solved {
                return false;
            }
            data.factored = Some(nr);
        }
        true
    }

    /// Solve the kept QP, warm-started from the last active set; its answer and active
    /// rows into `QpData` (`x`, `active`). Returns the status and the QP's iterations.
    fn quick_solve(&mut self, p: &Policy) -> (QpStatus, u32) {
        let ws = &mut self.ws;
        let Some(q) = ws.quick.as_mut() else {
            return (QpStatus::NumericalError, 0);
        };
        let data = &mut ws.data;
        data.warm_idx.clear();
        for (qi, r) in q.rows.iter().enumerate() {
            if r.is_some_and(|r| ws.warm_rows.binary_search(&r).is_ok()) {
                data.warm_idx.push(qi);
            }
        }
        let m = data.b.len();
        let max_iter = p.governor.max_iterations.saturating_mul(4);
        let solve = if q.in_solver {
            QpWorkspace::solve_same_rows
        } else {
            QpWorkspace::solve
        };
        q.in_solver = true;
        let sol = solve(
            &mut ws.qp,
            &data.g,
            &q.a,
            &data.b,
            m,
            0,
            &data.warm_idx,
            max_iter,
        );
        data.x.clear();
        data.x.extend_from_slice(sol.x);
        data.active.clear();
        data.active.extend_from_slice(sol.active);
        (sol.status, sol.iterations)
    }
}
