//! QP assembly helpers.

use super::*;

impl Repairer {
    /// The rows of this SQP step's QP from the kept QP (`quick_*`), when they are the same
    /// rows: those `continuous` would include here (active, not screened, reading a real
    /// variable, with a finite margin) are exactly the kept QP's lattice rows, in order.
    /// Each is an affine row whose `A` row is its kept gradient, so `A` is the same, bit for
    /// bit, whatever the state; `b` is computed from this iterate's Tier 1 margins exactly
    /// as the assembly in `continuous` computes it (the same operations in the same
    /// order). Leaves `self.a` alone; fills `self.b`, `self.needs` and `self.qrow`. `false`
    /// (and nothing usable) when the rows differ: the caller then builds them.
    pub(super) fn rows_from_cache(&mut self) -> bool {
        self.b.clear();
        self.needs.clear();
        let mut kept = self.quick_rows.iter();
        for (i, c) in self.t1.rows().iter().enumerate() {
            let screened = self.screened.get(i).copied().unwrap_or(false);
            let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
            if !c.active || (c.status == Status::Sat && screened) || vars.is_empty() {
                continue;
            }
            if c.margin.is_invalid() || !c.margin.lo.is_finite() {
                continue;
            }
            if kept.next().copied().flatten() != Some(i) {
                return false;
            }
            let grad = self.grad.get(i).map_or(&[][..], Vec::as_slice);
            if grad.len() != vars.len() {
                return false;
            }
            let boost = self.boost.get(i).copied().unwrap_or(1.0);
            let (bi, need) = row_rhs(*c, c.margin.lo, vars, grad, &self.ureal, boost);
            self.b.push(bi);
            self.needs.push(need);
        }
        // Then the bounds (no lattice row left over), whose `b` is the same at every state.
        let rows = self.b.len();
        if self.quick_rows.get(rows).is_some_and(Option::is_some) {
            return false;
        }
        for (r, &b0) in self.quick_rows.iter().zip(&self.quick_b0).skip(rows) {
            if r.is_some() {
                return false;
            }
            self.b.push(b0);
            self.needs.push(0.0);
        }
        self.qrow.clone_from(&self.quick_rows);
        true
    }
}

/// The right-hand side of the QP row of a lattice row whose linear model at the iterate
/// `u` is `lo + ∇·(x − u)` (`∇` aligned with `vars`, `ureal` the iterate's real part), which
/// must be at least a back-off `need`: `−∇·x <= lo − ∇·u − need`. Returns `(b, need)`. Both
/// QP assemblies of `continuous` (built, and from the kept QP) call this, so they give the
/// same bits.
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
