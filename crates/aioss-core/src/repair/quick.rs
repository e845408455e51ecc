//! The warm re-repair.

use super::*;

impl Repairer {
    /// Are `inputs` the state the kept QP (`quick_*`) was built for (action slots aside)?
    pub(super) fn same_state(&self, inputs: &[Interval]) -> bool {
        inputs.len() == self.quick_inputs.len()
            && inputs
                .iter()
                .zip(&self.quick_inputs)
                .enumerate()
                .all(|(k, (x, y))| {
                    self.action_slot.get(k).copied().unwrap_or(false)
                        || (x.lo.to_bits() == y.lo.to_bits() && x.hi.to_bits() == y.hi.to_bits())
                })
    }

    /// The warm re-repair: a proposal at the same state as the last repair, for a policy
    /// whose rows are affine in the real action variables (`quick_ok`). The last search's
    /// first QP is then this proposal's first QP too, up to rounding: the same rows (which
    /// rows are active and screened depends on the state alone), the same `a_i` (constant
    /// gradients) and the same `lo − ∇·u` (the constant of an affine model). Only `g`
    /// (from the proposal) and the back-off (from each row's model margin at the proposal)
    /// are new. So: one QP, warm-started from the last active set, and one Tier 1 check of
    /// its answer — instead of a Tier 1 check of the proposal, the search set-up, the QP
    /// assembly and a second check.
    ///
    /// It is what the search's first node does in its first step, with the row margins at
    /// the proposal taken from the model instead of Tier 1 (they differ by rounding), and
    /// it returns only what that step would have returned: a point Tier 1 finds SAT on
    /// every active row, or, when the QP moves nowhere, the proposal itself if Tier 1
    /// finds it SAT (the feasible path). Anything else — another state, a QP that is not
    /// solved, an answer Tier 1 does not accept — returns `None`, and the full repair runs
    /// as if this had not been tried. The answer is a function of the inputs and the last
    /// search's QP, so a replay of the same stream reproduces it.
    pub(super) fn quick(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
    ) -> Option<Repair> {
        if !(self.quick_ok && self.quick_valid) || proposal.len() != p.actions.len() {
            return None;
        }
        if !self.same_state(inputs) {
            return None;
        }
        let nr = self.real.len();
        let mut u = proposal.to_vec();
        for &ai in &self.real {
            let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) else {
                return None;
            };
            if !uj.is_finite() {
                return None;
            }
            *uj = clamp_to(*uj, a.min, a.max);
        }
        // `b`: each row's model margin at `u` with the back-off of `continuous`.
        self.gtmp.clear();
        self.gtmp.extend(
            self.real
                .iter()
                .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
        );
        self.b.clear();
        let rows = self.quick_a.chunks_exact(nr.max(1));
        for ((row, r), &b0) in rows.zip(&self.quick_rows).zip(&self.quick_b0) {
            let Some(i) = *r else {
                self.b.push(b0);
                continue;
            };
            // The model's margin at `u`: `lo = (lo − ∇·u)_kept + ∇·u`, with `a = −∇`.
            let au = crate::qp::dot(row, &self.gtmp);
            let scale = crate::qp::dot_abs(row, &self.gtmp);
            let lo = b0 - au;
            let delta = 1e-9 * (1.0 + lo.abs() + scale);
            let strict = p.lattice.rows.get(i).is_some_and(|x| x.sense == Sense::Lt);
            let sat = lo > 0.0 || (lo == 0.0 && !strict);
            let need = if sat { delta.min(lo) } else { delta };
            self.b.push(b0 - need);
        }
        // `g = −2 W u₀`, and `H = 2 W` factored (as `continuous` leaves it).
        self.gtmp.clear();
        self.gtmp.extend(
            self.real
                .iter()
                .map(|&ai| proposal.get(ai).copied().unwrap_or(0.0)),
        );
        self.g.clear();
        self.g.extend(
            p.governor
                .metric
                .iter()
                .map(|wrow| -2.0 * crate::qp::dot(wrow, &self.gtmp)),
        );
        if self.g.len() != nr {
            return None;
        }
        if self.hess_n != nr {
            self.h.clear();
            self.h.resize(nr * nr, 0.0);
            for (bi, wrow) in p.governor.metric.iter().enumerate() {
                for (bj, w) in wrow.iter().enumerate() {
                    if let Some(hh) = self.h.get_mut(bi * nr + bj) {
                        *hh = 2.0 * w;
                    }
                }
            }
            self.hess_n = 0;
            if self.qp.set_hessian(nr, &self.h) != QpStatus::Solved {
                return None;
            }
            self.hess_n = nr;
        }
        self.warm_idx.clear();
        for (qi, r) in self.quick_rows.iter().enumerate() {
            if r.is_some_and(|r| self.warm_rows.binary_search(&r).is_ok()) {
                self.warm_idx.push(qi);
            }
        }
        let m = self.b.len();
        let max_iter = p.governor.max_iterations.saturating_mul(4);
        let solve = if self.qp_has_quick_rows {
            QpWorkspace::solve_same_rows
        } else {
            QpWorkspace::solve
        };
        self.qp_has_quick_rows = true;
        let sol = solve(
            &mut self.qp,
            &self.g,
            &self.quick_a,
            &self.b,
            m,
            0,
            &self.warm_idx,
            max_iter,
        );
        if sol.status != QpStatus::Solved {
            return None;
        }
        let qp_iterations = sol.iterations;
        let mut active: Vec<usize> = sol
            .active
            .iter()
            .filter_map(|&qi| self.quick_rows.get(qi).copied().flatten())
            .collect();
        active.sort_unstable();
        if active.is_empty() {
            // The model puts the proposal inside every row: the feasible path decides.
            return self.proposal_holds(p, inputs, proposal);
        }
        let scale0 = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (j, &ai) in self.real.iter().enumerate() {
            let x = sol.x.get(j).copied().unwrap_or(f64::NAN);
            let (Some(uj), Some(a), Some(&x0)) =
                (u.get_mut(ai), p.actions.get(ai), proposal.get(ai))
            else {
                return None;
            };
            if !x.is_finite() {
                return None;
            }
            *uj = snap(clamp_to(x, a.min, a.max), a.min, a.max, scale0, x0);
        }
        self.tier1(p, inputs, &u);
        let relaxed = self.acceptable(p, Criticality::Low, false)?;
        if !relaxed.is_empty() {
            return None;
        }
        let distance = objective(p, &self.real, proposal, &u).max(0.0).sqrt();
        self.warm_rows.clone_from(&active);
        Some(Repair {
            action: u,
            outcome: RepairOutcome::Certified,
            status: SolverStatus::Solved,
            distance,
            active_set: active,
            relaxed: Vec::new(),
            iterations: qp_iterations.saturating_add(1),
            steps: 1,
            nodes: 1,
            cost: ModeledCost(0),
            checks: self.t1.rows().to_vec(),
            certified: true,
        })
    }
}
