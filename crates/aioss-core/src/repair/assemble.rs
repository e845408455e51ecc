//! The QP of one SQP step: its columns (the real variables, then one slack per relaxable
//! row that needs one), its objective `‖x − u₀‖²_W + Σ (ρ s² + P w s)`, its rows (each
//! row's linear model `lo + ∇·(x − u) ≥ δ`, the variables' bounds, the slacks' bounds),
//! its starting active set, and its solve.

use std::ops::ControlFlow;

use crate::qp::{QpStatus, QpWorkspace};
use crate::tier1::{RowCheck, Status};

use super::relax::slack_price;
use super::sqp::{NodeEnd, Sqp};
use super::{row_constraint, Repairer, SolverStatus};

#[cfg(doc)]
use super::quick::QuickQp;

/// The QP of the current SQP step, and what its last solve returned.
#[derive(Debug)]
pub(super) struct QpData {
    /// The rows, `m × n` row-major.
    pub(super) a: Vec<f64>,
    /// The right-hand sides.
    pub(super) b: Vec<f64>,
    /// The linear term of the objective.
    pub(super) g: Vec<f64>,
    /// The Hessian of the objective (`n × n`).
    pub(super) h: Vec<f64>,
    /// What each QP row is: `Some(lattice row)` or `None` for a bound.
    pub(super) qrow: Vec<Option<usize>>,
    /// The back-off each QP row asks for (0 for bounds), so an infeasible QP can be
    /// solved again without it.
    pub(super) needs: Vec<f64>,
    /// The QP rows the solve starts from (the slacks' floors, then the warm start).
    pub(super) warm_idx: Vec<usize>,
    /// Working memory for the starting rows when there is no earlier active set.
    crash: Vec<(f64, usize)>,
    /// The real action variables' values at the current SQP iterate (`u[real[j]]`).
    pub(super) ureal: Vec<f64>,
    /// The `n` the solver's Hessian is factored for (`None`: none).
    pub(super) factored: Option<usize>,
    /// The last solve's answer (`n` entries), copied out of the solver.
    pub(super) x: Vec<f64>,
    /// The last solve's active rows (QP row indices).
    pub(super) active: Vec<usize>,
    /// The last solve's multipliers, or its certificate of infeasibility (only when it
    /// was not solved or the step may relax rows: no one reads them otherwise).
    pub(super) y: Vec<f64>,
}

impl QpData {
    /// Buffers for up to `n_max` columns and `m_max` rows, `nr` real variables.
    pub(super) fn new(n_max: usize, m_max: usize, nr: usize) -> Self {
        QpData {
            a: Vec::with_capacity(m_max * n_max),
            b: Vec::with_capacity(m_max),
            g: Vec::with_capacity(n_max),
            h: Vec::with_capacity(n_max * n_max),
            qrow: Vec::with_capacity(m_max),
            needs: Vec::with_capacity(m_max),
            warm_idx: Vec::with_capacity(m_max),
            crash: Vec::new(),
            ureal: Vec::with_capacity(nr),
            factored: None,
            x: Vec::with_capacity(n_max),
            active: Vec::with_capacity(n_max),
            y: Vec::with_capacity(m_max),
        }
    }
}

/// The shape of an assembled QP.
#[derive(Clone, Copy, Debug)]
pub(super) struct QpShape {
    /// Columns: the real variables, then the slacks.
    pub(super) n: usize,
    /// Rows.
    pub(super) m: usize,
    /// Did some relaxable row get no slack column (see `Sqp::slack_all`)?
    pub(super) limited: bool,
    /// Are the rows the kept QP's ([`Repairer::rows_from_cache`])?
    pub(super) cached_rows: bool,
    /// The lattice rows are `..real_bounds`, the real variables' bounds
    /// `real_bounds..slack_bounds`, the slacks' bounds `slack_bounds..`.
    pub(super) real_bounds: usize,
    pub(super) slack_bounds: usize,
}

impl Repairer {
    /// The QP at the iterate `u`. `Break` when the Hessian cannot be factored.
    pub(super) fn assemble(&mut self, s: &mut Sqp<'_>, u: &[f64]) -> ControlFlow<NodeEnd, QpShape> {
        let nr = self.rows.real.len();
        let (n, limited) = self.slack_columns(s);
        self.pin_flat_rows();
        if !self.objective(s, n) {
            return ControlFlow::Break(s.end(SolverStatus::NumericalError));
        }
        // The real part of `u`, gathered once for the rows below.
        let ureal = &mut self.ws.data.ureal;
        ureal.clear();
        ureal.extend(
            self.rows
                .real
                .iter()
                .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
        );
        // Rows: the kept QP's when it is this one (see `rows_from_cache`), else built.
        let warm_form = self.rows.quick_ok && s.stage.is_none() && !s.trust.is_finite() && n == nr;
        let cached_rows = warm_form && self.ws.quick.is_some() && self.rows_from_cache();
        if !cached_rows {
            self.build_rows(s, u, n);
        }
        let data = &self.ws.data;
        let real_bounds = data.qrow.iter().take_while(|r| r.is_some()).count();
        let slack_bounds = data.b.len();
        if warm_form && !s.recorded {
            s.recorded = true;
            self.record_quick(s.inputs, cached_rows);
        }
        self.slack_bounds(s, n);
        let m = self.ws.data.b.len();
        self.start_rows();
        ControlFlow::Continue(QpShape {
            n,
            m,
            limited,
            cached_rows,
            real_bounds,
            slack_bounds,
        })
    }

    /// The slack columns of this step (into `NodeState::slack_col`): `n`, and whether some
    /// relaxable row got none.
    fn slack_columns(&mut self, s: &Sqp<'_>) -> (usize, bool) {
        let (check, screen, node) = (&self.ws.check, &self.ws.screen, &mut self.ws.node);
        let mut n = self.rows.real.len();
        let mut limited = false;
        for (i, row) in s.p.lattice.rows.iter().enumerate() {
            let c = check.rows().get(i).copied().unwrap_or_default();
            // A row with no tolerance gets no slack column: a slack pinned to [0, 0]
            // adds nothing but a degenerate pair of rows (regression test
            // `cold_start_slack_excursion_made_a_feasible_relaxation_infeasible`).
            let tol =
                s.p.constraints
                    .get(row.constraint)
                    .map_or(0.0, |k| k.tolerance);
            let relaxable = s.allow
                && row.criticality < s.relax_below
                && row.criticality != crate::policy::Criticality::Critical
                && matches!(
                    row.sense,
                    crate::policy::Sense::Le | crate::policy::Sense::Lt
                )
                && tol > 0.0
                && c.active
                && !screen.screened.get(i).copied().unwrap_or(false);
            let needs_slack = s.slack_all
                || c.status != Status::Sat
                || s.active_rows.contains(&i)
                || node.extra_slack.get(i).copied().unwrap_or(false);
            limited |= relaxable && !needs_slack;
            let relaxable = relaxable && needs_slack;
            let col = if relaxable {
                n += 1;
                Some(n - 1)
            } else {
                None
            };
            if let Some(sc) = node.slack_col.get_mut(i) {
                *sc = col;
            }
        }
        (n, limited)
    }

    /// Rows that pin variables to zero (see `flat_rows`), unless this stage may relax
    /// them: the pinned variables get the bounds [0, 0] in place of those rows.
    fn pin_flat_rows(&mut self) {
        let (check, node) = (&self.ws.check, &mut self.ws.node);
        node.pinned.fill(false);
        node.pin_row.fill(false);
        for (i, cols) in self
            .rows
            .flat
            .iter()
            .enumerate()
            .filter(|_| self.rows.any_flat)
        {
            if cols.is_empty()
                || !check.rows().get(i).is_some_and(|c| c.active)
                || node.stage_tol.get(i).copied().unwrap_or(0.0) > 0.0
            {
                continue;
            }
            if let Some(r) = node.pin_row.get_mut(i) {
                *r = true;
            }
            for &j in cols {
                if let Some(x) = node.pinned.get_mut(j) {
                    *x = true;
                }
            }
        }
    }

    /// The objective `‖x − u₀‖²_W + Σ (ρ s² + P w s)` over `n` columns, its Hessian
    /// factored. `false` when the factorisation fails.
    fn objective(&mut self, s: &Sqp<'_>, n: usize) -> bool {
        let p = s.p;
        let data = &mut self.ws.data;
        data.h.clear();
        data.h.resize(n * n, 0.0);
        data.g.clear();
        data.g.resize(n, 0.0);
        for (bi, wrow) in p.governor.metric.iter().enumerate() {
            for (bj, w) in wrow.iter().enumerate() {
                if let Some(hh) = data.h.get_mut(bi * n + bj) {
                    *hh = 2.0 * w;
                }
                let u0j = self
                    .rows
                    .real
                    .get(bj)
                    .and_then(|&ai| s.u0.get(ai))
                    .copied()
                    .unwrap_or(0.0);
                if let Some(gg) = data.g.get_mut(bi) {
                    *gg -= 2.0 * w * u0j;
                }
            }
        }
        for (i, col) in self.ws.node.slack_col.iter().enumerate() {
            if let Some(col) = col {
                if let Some(hh) = data.h.get_mut(col * n + col) {
                    *hh = 2.0 * self.settings.slack_rho;
                }
                if let Some(gg) = data.g.get_mut(*col) {
                    *gg = slack_price(p, i, self.settings.l1_penalty);
                }
            }
        }
        // H depends only on the metric and the number of slack columns (every slack has
        // the same 2ρ on the diagonal): factor it again only when `n` changes.
        if data.factored != Some(n) {
            data.factored = None;
            if self.ws.qp.set_hessian(n, &data.h) != QpStatus::Solved {
                return false;
            }
            data.factored = Some(n);
        }
        true
    }

    /// The lattice rows' QP rows (each row's linear model at `u` with its back-off, and
    /// its slack column), then the real variables' bounds (the trust region's, once there
    /// is one, and `[0, 0]` for pinned variables).
    fn build_rows(&mut self, s: &Sqp<'_>, u: &[f64], n: usize) {
        let p = s.p;
        let ws = &mut self.ws;
        let data = &mut ws.data;
        data.a.clear();
        data.b.clear();
        data.qrow.clear();
        data.needs.clear();
        for i in 0..p.lattice.rows.len() {
            let c = ws.check.rows().get(i).copied().unwrap_or_default();
            if !c.active
                || (c.status == Status::Sat && ws.screen.screened.get(i).copied().unwrap_or(false))
            {
                continue;
            }
            let slack = ws.node.slack_col.get(i).copied().flatten();
            if self.rows.row_vars.get(i).is_none_or(Vec::is_empty) && slack.is_none() {
                continue; // constant in the real variables; handled by `rule_out`
            }
            if ws.node.pin_row.get(i).copied().unwrap_or(false) {
                continue; // its variables' bounds below
            }
            // The linear model `lo + ∇·(x − u)` of a quantity that must be ≥ 0, with ∇ in
            // `ws.lin.grad` (aligned with `vars`).
            let Some(lo) = ws.lin.model(&self.rows, p, ws.check.slots(), i, c) else {
                continue; // no linear model; Tier 1 will refuse the candidate
            };
            let vars = self.rows.row_vars.get(i).map_or(&[][..], Vec::as_slice);
            // lo + ∇·(x − u) ≥ δ   ⇔   −∇·x − s ≤ lo − ∇·u − δ
            let base = data.a.len();
            data.a.resize(base + n, 0.0);
            for (&(j, _), &d) in vars.iter().zip(&ws.lin.grad) {
                if let Some(x) = data.a.get_mut(base + j) {
                    *x = -d;
                }
            }
            if let Some(col) = slack {
                if let Some(x) = data.a.get_mut(base + col) {
                    *x = -1.0;
                }
            }
            let boost = ws.node.boost.get(i).copied().unwrap_or(1.0);
            let (bi, need) = row_rhs(c, lo, vars, &ws.lin.grad, &data.ureal, boost);
            data.b.push(bi);
            data.needs.push(need);
            data.qrow.push(Some(i));
        }
        // Bounds of the real variables.
        for (j, &ai) in self.rows.real.iter().enumerate() {
            let Some(a) = p.actions.get(ai) else { continue };
            let uj = u.get(ai).copied().unwrap_or(0.0);
            let (lo, hi) = if ws.node.pinned.get(j).copied().unwrap_or(false) {
                (0.0, 0.0)
            } else if s.trust.is_finite() {
                ((uj - s.trust).max(a.min), (uj + s.trust).min(a.max))
            } else {
                (a.min, a.max)
            };
            for (sign, bound) in [(1.0, hi), (-1.0, -lo)] {
                let base = data.a.len();
                data.a.resize(base + n, 0.0);
                if let Some(x) = data.a.get_mut(base + j) {
                    *x = sign;
                }
                data.b.push(bound);
                data.needs.push(0.0);
                data.qrow.push(None);
            }
        }
    }

    /// The rows of this SQP step's QP from the kept QP ([`QuickQp`]), when they are the same
    /// rows: those [`Repairer::build_rows`] would include here (active, not screened, reading a real
    /// variable, with a finite margin) are exactly the kept QP's lattice rows, in order.
    /// Each is an affine row whose `A` row is its kept gradient, so `A` is the same, bit for
    /// bit, whatever the state; `b` is computed from this iterate's Tier 1 margins exactly
    /// as `build_rows` computes it (the same operations in the same order). Leaves
    /// `a` alone; fills `b`, `needs` and `qrow`. `false`
    /// (and nothing usable) when the rows differ: the caller then builds them.
    fn rows_from_cache(&mut self) -> bool {
        let ws = &mut self.ws;
        let (Some(quick), data) = (&ws.quick, &mut ws.data) else {
            return false;
        };
        data.b.clear();
        data.needs.clear();
        let mut kept = quick.rows.iter();
        for (i, c) in ws.check.rows().iter().enumerate() {
            let screened = ws.screen.screened.get(i).copied().unwrap_or(false);
            let vars = self.rows.row_vars.get(i).map_or(&[][..], Vec::as_slice);
            if !c.active || (c.status == Status::Sat && screened) || vars.is_empty() {
                continue;
            }
            if c.margin.is_invalid() || !c.margin.lo.is_finite() {
                continue;
            }
            if kept.next().copied().flatten() != Some(i) {
                return false;
            }
            let grad = self.rows.grad.get(i).map_or(&[][..], Vec::as_slice);
            if grad.len() != vars.len() {
                return false;
            }
            let boost = ws.node.boost.get(i).copied().unwrap_or(1.0);
            let (bi, need) = row_rhs(*c, c.margin.lo, vars, grad, &data.ureal, boost);
            data.b.push(bi);
            data.needs.push(need);
        }
        // Then the bounds (no lattice row left over), whose `b` is the same at every state.
        let rows = data.b.len();
        if quick.rows.get(rows).is_some_and(Option::is_some) {
            return false;
        }
        for (r, &b0) in quick.rows.iter().zip(&quick.b0).skip(rows) {
            if r.is_some() {
                return false;
            }
            data.b.push(b0);
            data.needs.push(0.0);
        }
        data.qrow.clone_from(&quick.rows);
        true
    }

    /// The slacks' bounds `0 ≤ s ≤ tolerance`; the floors `−s ≤ 0` start the solve.
    fn slack_bounds(&mut self, s: &Sqp<'_>, n: usize) {
        let data = &mut self.ws.data;
        data.warm_idx.clear();
        for (i, col) in self.ws.node.slack_col.iter().enumerate() {
            let Some(col) = *col else { continue };
            let tol = row_constraint(s.p, i).map_or(0.0, |c| c.tolerance);
            for (sign, bound) in [(1.0, tol), (-1.0, 0.0)] {
                if sign < 0.0 {
                    data.warm_idx.push(data.b.len());
                }
                let base = data.a.len();
                data.a.resize(base + n, 0.0);
                if let Some(x) = data.a.get_mut(base + col) {
                    *x = sign;
                }
                data.b.push(bound);
                data.needs.push(0.0);
                data.qrow.push(None);
            }
        }
    }

    /// The rows the solve starts from, after the slacks' floors: the last active set, or
    /// without one the rows most violated here.
    ///
    /// Every slack starts at its floor `s = 0`: the QP's starting active set always holds
    /// the rows `-s <= 0`. Without them, the unconstrained minimiser puts each slack at
    /// `-P·w / (2ρ)` (about -1e7); the dual method comes back from there, but with rounding
    /// errors of that size (~1e-9 in x), enough to call a feasible relaxation infeasible,
    /// and to make warm and cold starts disagree. Part of the formulation, so it applies to
    /// cold starts too.
    fn start_rows(&mut self) {
        let ws = &mut self.ws;
        let data = &mut ws.data;
        let floors = data.warm_idx.len();
        if !self.settings.cold {
            for (qi, r) in data.qrow.iter().enumerate() {
                if let Some(r) = r {
                    if ws.warm_rows.binary_search(r).is_ok() {
                        data.warm_idx.push(qi);
                    }
                }
            }
        }
        if data.warm_idx.len() == floors {
            // No earlier active set to start from (a cold repairer, or a first repair):
            // start from the rows most violated here instead, the ones the dual method
            // would add first anyway, without a search for each. (The QP's answer does
            // not depend on its starting rows; `BENCHMARKS.md`, "Tier 2's structure", has
            // what this saves a cold repair.)
            let check = &ws.check;
            data.crash.clear();
            data.crash
                .extend(data.qrow.iter().enumerate().filter_map(|(qi, r)| {
                    let c = check.rows().get((*r)?)?;
                    (c.active && c.margin.lo < 0.0).then_some((c.margin.lo, qi))
                }));
            data.crash
                .sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            data.warm_idx.extend(
                data.crash
                    .iter()
                    .take(self.settings.crash_rows)
                    .map(|&(_, qi)| qi),
            );
        }
    }

    /// Solve the assembled QP (once more without the back-off when the back-off alone
    /// empties it), count it, and copy its answer into `QpData` (`x`, `active`, `y`).
    pub(super) fn solve_qp(&mut self, s: &Sqp<'_>, shape: &QpShape) -> QpStatus {
        let max_iter = s.max_iter.saturating_mul(4);
        let ws = &mut self.ws;
        // The solver keeps its copy of the kept rows (transposed, with their norms) from
        // the last solve on them: the same `A`, bit for bit, so the same answer.
        let same_rows = shape.cached_rows && ws.quick.as_ref().is_some_and(|q| q.in_solver);
        if let Some(q) = ws.quick.as_mut() {
            q.in_solver = shape.cached_rows;
        }
        self.info.kept_rows_used += u64::from(shape.cached_rows);
        let data = &mut ws.data;
        let a: &[f64] = match (&ws.quick, shape.cached_rows) {
            (Some(q), true) => &q.a,
            _ => &data.a,
        };
        let solve = if same_rows {
            QpWorkspace::solve_same_rows
        } else {
            QpWorkspace::solve
        };
        let mut sol = solve(
            &mut ws.qp,
            &data.g,
            a,
            &data.b,
            shape.m,
            0,
            &data.warm_idx,
            max_iter,
        );
        if sol.status == QpStatus::Infeasible && data.needs.iter().any(|&x| x > 0.0) {
            // The back-off itself can empty the set: `amount <= 0` with `amount` in
            // [0, ∞) has the single point 0, which Tier 1 certifies exactly, but no
            // point at a distance δ inside (regression test
            // `a_boundary_that_is_also_a_bound_is_reached_without_back_off`). Solved
            // once more without it.
            ws.counts.charge_qp(shape.n, shape.m, sol.iterations);
            for (bb, need) in data.b.iter_mut().zip(&data.needs) {
                *bb += need;
            }
            sol = solve(
                &mut ws.qp,
                &data.g,
                a,
                &data.b,
                shape.m,
                0,
                &data.warm_idx,
                max_iter,
            );
        }
        ws.counts.charge_qp(shape.n, shape.m, sol.iterations);
        data.x.clear();
        data.x.extend_from_slice(sol.x);
        data.active.clear();
        data.active.extend_from_slice(sol.active);
        data.y.clear();
        if sol.status != QpStatus::Solved || shape.limited {
            data.y.extend_from_slice(sol.multipliers);
        }
        sol.status
    }
}

/// The right-hand side of the QP row of a lattice row whose linear model at the iterate
/// `u` is `lo + ∇·(x − u)` (`∇` aligned with `vars`, `ureal` the iterate's real part), which
/// must be at least a back-off `need`: `−∇·x <= lo − ∇·u − need`. Returns `(b, need)`. Both
/// assemblies (`build_rows`, and `rows_from_cache` from the kept QP) call this, so they
/// give the same bits.
///
/// The back-off is `δ = 1e-9 (1 + |lo| + Σ |∂ⱼ uⱼ|)` times the row's boost. A row that
/// already holds is asked to keep its margin, up to `δ`, not to gain `δ`: a row SAT exactly
/// at its boundary with no gradient there (`dq1^2 + dq2^2 <= 0` at rest, for an agent not
/// allowed to move the arm) made every QP infeasible (regression test
/// `a_row_sat_at_zero_with_no_gradient_does_not_block_the_repair`).
pub(super) fn row_rhs(
    c: RowCheck,
    lo: f64,
    vars: &[(usize, u32)],
    grad: &[f64],
    ureal: &[f64],
    boost: f64,
) -> (f64, f64) {
    let mut gu = 0.0;
    let mut scale = lo.abs();
    for (&(j, _), &d) in vars.iter().zip(grad) {
        let uj = ureal.get(j).copied().unwrap_or(0.0);
        gu += d * uj;
        scale += (d * uj).abs();
    }
    let delta = 1e-9 * (1.0 + scale) * boost;
    let need = if c.status == Status::Sat && lo >= 0.0 {
        delta.min(lo)
    } else {
        delta
    };
    (lo - gu - need, need)
}
