//! A small dense convex QP solver: Goldfarb–Idnani's dual active-set method.
//!
//! Solves
//!
//! ```text
//! minimise ½ xᵀ H x + gᵀ x   subject to   a_i · x  = b_i   (i < meq)
//!                                          a_i · x <= b_i   (meq <= i < m)
//! ```
//!
//! with `H` symmetric positive definite, `n` up to a few tens and `m` up to a few hundred.
//!
//! # Why this is hand-written
//!
//! The governor calls this on its hot path, once per proposal, with a deadline. What it needs
//! from a QP solver is not generality but a *bounded*, *deterministic* and *allocation-free*
//! computation:
//!
//! - **Bounded.** Every solve performs at most `max_iter` active-set changes of `O(n² + m n)`
//!   floating-point work each, so its worst case is known before it starts.
//! - **Allocation-free.** All buffers live in a [`QpWorkspace`] sized once for the largest `n`
//!   and `m`; [`QpWorkspace::solve`] never touches the allocator.
//! - **Deterministic.** The same inputs give bit-identical outputs on every platform: plain
//!   IEEE arithmetic in a fixed order (no FMA contraction, fixed summation order), `sqrt`
//!   (correctly rounded) and the pure-Rust `libm::hypot`, with ties broken by the lowest row
//!   index. Inputs with NaN or infinities are rejected, never propagated.
//!
//! A general conic solver such as Clarabel is an interior-point method: it builds sparse
//! matrices and a KKT system of size `n + m` on every setup, allocates throughout, and runs
//! about ten iterations, each factoring that system, however few rows end up active. For
//! tiny dense problems that costs one to two orders of magnitude (`benches/qp.rs`; the
//! figures are in `BENCHMARKS.md`, "Dense QP"). The tests in
//! `tests/qp_differential.rs` check this solver against Clarabel on thousands of random
//! problems, against brute-force enumeration of active sets, and warm against cold.
//!
//! # Method
//!
//! Goldfarb & Idnani, "A numerically stable dual method for solving strictly convex quadratic
//! programs", Math. Programming 27 (1983), as implemented in quadprog's `solve.QP`. Starting
//! from the unconstrained minimiser `x = -H⁻¹ g` (which is dual feasible), it repeatedly picks
//! the most violated constraint and moves towards satisfying it, dropping active constraints
//! whose multipliers would become negative, until no constraint is violated (optimal) or the
//! dual step is unbounded (infeasible). It keeps `J = L⁻ᵀ Q` and the upper-triangular `R` with
//! `Jᵀ N = [R; 0]` (`H = L Lᵀ`, `N` the active normals), updated by a Householder reflection
//! when a row is added and by Givens rotations when one is dropped, so each step costs
//! `O(n² + m n)` (the `m n` is the search for the most violated row).
//!
//! A warm start adds the suggested rows to the factorisation, computes the minimiser over
//! them as equalities, and drops rows with negative multipliers until the rest are all
//! non-negative. That point is dual feasible, which is all the method needs to start from,
//! so the answer is the one a cold start gives.
//!
//! Internally each row is written in Goldfarb–Idnani's form `nᵀ x >= c` with `n = -σ a_i` and
//! `c = -σ b_i`, where `σ = +1` for inequalities and `σ = ±1` for equalities (chosen so that
//! the step that makes the equality active is non-negative). The reported multipliers are for
//! the user's rows: `H x + g + Σ λ_i a_i = 0`, with `λ_i >= 0` for inequalities.

pub(crate) use crate::tier1::linear::dot;
use libm::hypot;

/// Relative tolerance for primal feasibility: row `i` counts as violated when
/// `a_i·x - b_i > FEAS_TOL · (‖a_i‖ (1 + ‖x‖) + |b_i|)`.
const FEAS_TOL: f64 = 1e-9;
/// A new constraint whose normal has `‖d₂‖ <= DEP_TOL · (‖d‖ + Σ |r_k| ‖Jᵀ n_k‖)` (see
/// [`dependent`]; without cancellation, the sine of its angle to the span of the active normals
/// in the metric of `H⁻¹`) is treated as linearly dependent on them.
const DEP_TOL: f64 = 1e-9;
/// Cholesky pivots must exceed this fraction of the largest diagonal entry of `H`.
const PIVOT_TOL: f64 = 1e-14;
/// Relative tolerance for the symmetry of `H`.
const SYM_TOL: f64 = 1e-10;

/// Outcome of [`QpWorkspace::solve`] (and of [`QpWorkspace::set_hessian`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QpStatus {
    /// An optimal solution was found (to the tolerances of the module).
    Solved,
    /// The constraints admit no solution: the dual step became unbounded.
    Infeasible,
    /// The iteration cap was reached first. `x` is the last (dual-feasible) iterate: it
    /// satisfies the active rows but may violate others, and `objective` is a lower bound on
    /// the optimum.
    MaxIterations,
    /// The inputs cannot be used: a NaN or infinity, a Hessian that is not symmetric positive
    /// definite (or was never set), dimensions larger than the workspace or slices whose
    /// lengths do not match `n` and `m`; or an overflow during the solve.
    NumericalError,
}

/// The result of [`QpWorkspace::solve`], borrowed from the workspace.
#[derive(Debug, Clone, Copy)]
pub struct QpSolution<'a> {
    /// How the solve ended. The other fields are only an optimum when this is
    /// [`QpStatus::Solved`].
    pub status: QpStatus,
    /// The solution (`n` entries); empty for [`QpStatus::NumericalError`].
    pub x: &'a [f64],
    /// `½ xᵀ H x + gᵀ x` at `x`; NaN when `x` is empty.
    pub objective: f64,
    /// Indices of the active rows in the order they were added (equalities first). Pass this
    /// as `warm` to the next solve of a nearby problem.
    pub active: &'a [usize],
    /// Active-set changes performed (constraint additions and drops).
    pub iterations: u32,
    /// One Lagrange multiplier per row (`m` entries, zero for inactive rows) with
    /// `H x + g + Σ λ_i a_i = 0`; `λ_i >= 0` for inequality rows. Empty when `x` is.
    ///
    /// For [`QpStatus::Infeasible`] it is instead a Farkas certificate `y`: `y_i >= 0` on
    /// inequality rows, `Σ y_i a_i ≈ 0` and `bᵀy < 0`, which no `x` with `A x <= b` (and the
    /// equalities) can satisfy. (`Σ y_i a_i` is zero up to rounding, so check it against
    /// `|bᵀy|` with a tolerance.)
    pub multipliers: &'a [f64],
}

/// Preallocated storage for solving QPs with up to `n_max` variables and `m_max` rows.
///
/// Create it once with [`QpWorkspace::new`], set the Hessian with
/// [`QpWorkspace::set_hessian`], then call [`QpWorkspace::solve`] any number of times.
#[derive(Debug, Clone)]
pub struct QpWorkspace {
    n_max: usize,
    m_max: usize,
    /// Dimension of the current Hessian.
    n: usize,
    /// Whether `h` and `j0` hold a valid factorisation for dimension `n`.
    factored: bool,
    /// `H` (`n × n`, row-major, exactly symmetric: built from the lower triangle).
    h: Vec<f64>,
    /// `L⁻ᵀ` stored column-major with stride `n` (column `k` at `k*n..k*n+n`).
    j0: Vec<f64>,
    /// The working `J = L⁻ᵀ Q`, column-major with stride `n`.
    jm: Vec<f64>,
    /// The upper-triangular `R` (`q × q` used), column-major with stride `n`.
    rm: Vec<f64>,
    /// Current iterate.
    x: Vec<f64>,
    /// Primal step direction.
    z: Vec<f64>,
    /// `d = Jᵀ n_p`.
    d: Vec<f64>,
    /// Dual step direction `r = R⁻¹ d[..q]`, and scratch.
    rv: Vec<f64>,
    /// Multipliers of the active constraints (Goldfarb–Idnani sign convention), in active order.
    u: Vec<f64>,
    /// Orientation `σ` of each active constraint.
    sign: Vec<f64>,
    /// Row index of each active constraint.
    act: Vec<usize>,
    /// `‖Jᵀ n_k‖` of each active constraint (see [`ActiveArrays`]).
    hn: Vec<f64>,
    /// Number of active constraints.
    q: usize,
    /// Number of active equality rows; they form the prefix `act[..neq]`.
    neq: usize,
    /// Per row: is it in the active set?
    is_active: Vec<bool>,
    /// Per row: Euclidean norm of `a_i`.
    row_norm: Vec<f64>,
    /// Per row: the multiplier reported to the caller.
    lambda: Vec<f64>,
    /// `A` transposed (column-major `m × n`, column `j` at `j*m..j*m+m`), so that `A x` is a
    /// sum of `n` vectorisable `axpy`s instead of `m` short dot products.
    at: Vec<f64>,
    /// Per row: `a_i·x` at the current iterate.
    ax: Vec<f64>,
    /// Rows `dense_m..m` have at most one non-zero entry each (bounds, which the repairer
    /// puts last): `(column, entry)`, so that `A x` multiplies only the rows before them.
    unit: Vec<(usize, f64)>,
    dense_m: usize,
    /// Per row: `1 / ‖a_i‖`, or 0 for rows of zeros.
    row_inv: Vec<f64>,
    /// Lengths of the output slices of the last solve.
    out_n: usize,
    out_m: usize,
    /// The `m` (and `n`) for which `at`, `row_norm` and `row_inv` hold the last solve's `A`
    /// (`None`: they do not), for [`QpWorkspace::solve_same_rows`].
    rows_of: Option<(usize, usize)>,
    /// Did the last solve end `Solved`, leaving `jm`, `rm`, `act[..q]`, `sign` and `hn` the
    /// factorisation of its final active set (no equality rows)?
    factors_kept: bool,
}

/// `Σ |a_k b_k|`, in the order of [`dot`].
pub(crate) fn dot_abs(a: &[f64], b: &[f64]) -> f64 {
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    let mut acc = [0.0f64; 4];
    for (x, y) in ca.zip(cb) {
        if let (Ok(x), Ok(y)) = (<&[f64; 4]>::try_from(x), <&[f64; 4]>::try_from(y)) {
            acc[0] += (x[0] * y[0]).abs();
            acc[1] += (x[1] * y[1]).abs();
            acc[2] += (x[2] * y[2]).abs();
            acc[3] += (x[3] * y[3]).abs();
        }
    }
    let [s0, s1, s2, s3] = acc;
    ta.iter()
        .zip(tb)
        .fold((s0 + s1) + (s2 + s3), |s, (x, y)| s + (x * y).abs())
}

/// `y += t x`.
fn axpy(y: &mut [f64], t: f64, x: &[f64]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi += t * xi;
    }
}

/// Applies the plane rotation `(c, s)` to a pair of vectors:
/// `(p, q) <- (c p + s q, -s p + c q)`.
fn rotate(p: &mut [f64], q: &mut [f64], c: f64, s: f64) {
    for (pi, qi) in p.iter_mut().zip(q.iter_mut()) {
        let (a, b) = (*pi, *qi);
        *pi = c * a + s * b;
        *qi = c * b - s * a;
    }
}

/// Two adjacent columns `k` and `k + 1` of a column-major matrix with stride `n`.
fn column_pair(mat: &mut [f64], n: usize, k: usize) -> Option<(&mut [f64], &mut [f64])> {
    let lo = k.checked_mul(n)?;
    let hi = lo.checked_add(n.checked_mul(2)?)?;
    mat.get_mut(lo..hi)?.split_at_mut_checked(n)
}

/// Cholesky factor `L` (row-major, lower triangular, zeros above the diagonal) of the
/// symmetric matrix whose lower triangle is that of `h`. Returns `false` unless every pivot
/// exceeds `PIVOT_TOL` times the largest diagonal entry.
#[expect(
    clippy::indexing_slicing,
    reason = "INVARIANT (cholesky-bounds): i, j, k < n and both slices hold >= n*n entries, \
              checked on entry"
)]
fn cholesky(h: &[f64], n: usize, l: &mut [f64]) -> bool {
    let Some(nn) = n.checked_mul(n) else {
        return false;
    };
    if h.len() < nn || l.len() < nn {
        return false;
    }
    let max_diag = (0..n).map(|i| h[i * n + i].abs()).fold(0.0, f64::max);
    for i in 0..n {
        for j in 0..=i {
            let mut s = h[i * n + j];
            for k in 0..j {
                s -= l[i * n + k] * l[j * n + k];
            }
            if i == j {
                if s.is_nan() || s <= PIVOT_TOL * max_diag {
                    return false;
                }
                l[i * n + i] = s.sqrt();
            } else {
                l[i * n + j] = s / l[j * n + j];
            }
        }
        for j in i + 1..n {
            l[i * n + j] = 0.0;
        }
    }
    true
}

/// `out = L⁻¹` (row-major) for the lower-triangular `l` (row-major, non-zero diagonal).
#[expect(
    clippy::indexing_slicing,
    reason = "INVARIANT (invert-bounds): i, c, k < n and both slices hold >= n*n entries, \
              checked on entry"
)]
fn invert_lower(l: &[f64], n: usize, out: &mut [f64]) -> bool {
    let Some(nn) = n.checked_mul(n) else {
        return false;
    };
    if l.len() < nn || out.len() < nn {
        return false;
    }
    for c in 0..n {
        for i in 0..c {
            out[i * n + c] = 0.0;
        }
        out[c * n + c] = 1.0 / l[c * n + c];
        for i in c + 1..n {
            let mut s = 0.0;
            for k in c..i {
                s += l[i * n + k] * out[k * n + c];
            }
            out[i * n + c] = -s / l[i * n + i];
        }
    }
    true
}

/// `d = σ' Jᵀ a` with `σ' = -σ` (so `d = Jᵀ n` for the Goldfarb–Idnani normal `n = -σ a`).
/// Returns `(‖d‖², ‖d[q..]‖²)`.
fn compute_d(jm: &[f64], n: usize, q: usize, row: &[f64], sigma: f64, d: &mut [f64]) -> (f64, f64) {
    let mut all = 0.0;
    let mut tail = 0.0;
    for (k, (dk, col)) in d.iter_mut().zip(jm.chunks_exact(n)).enumerate() {
        let v = -sigma * dot(col, row);
        *dk = v;
        all += v * v;
        if k >= q {
            tail += v * v;
        }
    }
    (all, tail)
}

/// Primal direction `z = J₂ d₂ = Σ_{k >= q} d_k J_k`.
fn compute_z(jm: &[f64], n: usize, q: usize, d: &[f64], z: &mut [f64]) {
    z.fill(0.0);
    for (dk, col) in d.iter().zip(jm.chunks_exact(n)).skip(q) {
        axpy(z, *dk, col);
    }
}

/// Solves `R v = v` in place for the upper-triangular `R` (`q × q`, column-major, stride `n`),
/// `v` holding the right-hand side in `v[..q]`. Column-oriented back substitution.
fn back_substitute(rm: &[f64], n: usize, q: usize, v: &mut [f64]) -> Option<()> {
    for (j, col) in rm.chunks_exact(n).take(q).enumerate().rev() {
        let (head, tail) = v.split_at_mut_checked(j)?;
        let (above, diag) = col.split_at_checked(j)?;
        let vj = tail.first_mut()?;
        *vj /= *diag.first()?;
        let t = *vj;
        for (h, c) in head.iter_mut().zip(above) {
            *h -= t * c;
        }
    }
    Some(())
}

/// Solves `Rᵀ v = v` in place (forward substitution), same layout as [`back_substitute`].
fn forward_substitute(rm: &[f64], n: usize, q: usize, v: &mut [f64]) -> Option<()> {
    for (i, col) in rm.chunks_exact(n).take(q).enumerate() {
        let (done, rest) = v.split_at_mut_checked(i)?;
        let (above, diag) = col.split_at_checked(i)?;
        let vi = rest.first_mut()?;
        *vi = (*vi - dot(above, done)) / *diag.first()?;
    }
    Some(())
}

/// Adds the constraint with `d = Jᵀ n` (and `d[q..] != 0`) to the factorisation: a
/// Householder reflection `P` maps `d[q..]` onto `α e_0` and is applied to the columns `>= q`
/// of `J` (which leaves `J Jᵀ = H⁻¹` and `R` intact); then `d[..q]` and `α` become column `q`
/// of `R`. One reflection instead of `n - q - 1` Givens rotations: the same flops, but no
/// chain of dependent square roots and divisions. `y` is scratch (`n` entries).
fn add_to_factors(
    jm: &mut [f64],
    rm: &mut [f64],
    n: usize,
    q: usize,
    d: &mut [f64],
    y: &mut [f64],
) -> Option<()> {
    let (_, v) = d.split_at_mut_checked(q)?;
    let (v0, rest) = v.split_first_mut()?;
    let j2 = jm.get_mut(q.checked_mul(n)?..)?;
    if rest.iter().any(|&r| r != 0.0) {
        let d0 = *v0;
        let sigma = (d0 * d0 + dot(rest, rest)).sqrt();
        // α = -sign(d0) σ, so v0 = d0 - α = d0 + sign(d0) σ involves no cancellation, and
        // vᵀv = 2 σ (σ + |d0|).
        let alpha = if d0 >= 0.0 { -sigma } else { sigma };
        *v0 = d0 - alpha;
        let tau = 1.0 / (sigma * (sigma + d0.abs()));
        // y = J₂ v, then J₂ <- J₂ - τ y vᵀ.
        y.fill(0.0);
        for (col, &vk) in j2.chunks_exact(n).zip(v.iter()) {
            axpy(y, vk, col);
        }
        for (col, &vk) in j2.chunks_exact_mut(n).zip(v.iter()) {
            axpy(col, -tau * vk, y);
        }
        let (v0, rest) = v.split_first_mut()?;
        *v0 = alpha;
        rest.fill(0.0);
    }
    let col = rm.get_mut(q.checked_mul(n)?..)?.get_mut(..n)?;
    let (top, below) = col.split_at_mut_checked(q + 1)?;
    top.copy_from_slice(d.get(..=q)?);
    below.fill(0.0);
    Some(())
}

/// Removes active position `k` of `q` from the factorisation: deletes column `k` of `R`, then
/// restores its triangular form with rotations of rows `j, j + 1` (applied to columns `j`,
/// `j + 1` of `J` as well).
fn drop_from_factors(jm: &mut [f64], rm: &mut [f64], n: usize, q: usize, k: usize) -> Option<()> {
    if k >= q || q > n {
        return None;
    }
    let last = q - 1;
    // Shift columns k+1..q of R one to the left (column c keeps rows 0..=c+1).
    for c in k..last {
        let src = (c + 1).checked_mul(n)?;
        let (left, right) = rm.split_at_mut_checked(src)?;
        let dst = left.get_mut(c * n..c * n + n)?;
        dst.copy_from_slice(right.get(..n)?);
    }
    // Restore the triangular form of the first `last` columns.
    for j in k..last {
        let (a, b) = {
            let col = rm.get(j * n..j * n + n)?;
            (*col.get(j)?, *col.get(j + 1)?)
        };
        if b == 0.0 {
            continue;
        }
        let h = hypot(a, b);
        let (c, s) = (a / h, b / h);
        for col in rm.chunks_exact_mut(n).skip(j).take(last - j) {
            if let Some([p, r]) = col.get_mut(j..j + 2) {
                let (pv, rv) = (*p, *r);
                *p = c * pv + s * rv;
                *r = c * rv - s * pv;
            }
        }
        if let Some(col) = rm.get_mut(j * n..j * n + n) {
            if let Some(sub) = col.get_mut(j + 1) {
                *sub = 0.0;
            }
        }
        let (cj0, cj1) = column_pair(jm, n, j)?;
        rotate(cj0, cj1, c, s);
    }
    Some(())
}

/// The per-constraint arrays of the active set, in active order (`q` entries used).
struct ActiveArrays<'a> {
    /// Row index.
    act: &'a mut [usize],
    /// Multiplier (Goldfarb–Idnani convention).
    u: &'a mut [f64],
    /// Orientation `σ`.
    sign: &'a mut [f64],
    /// `‖n_k‖` in the metric of `H⁻¹`, i.e. `‖Jᵀ n_k‖`, the norm of column `k` of `R`.
    hn: &'a mut [f64],
}

impl ActiveArrays<'_> {
    /// Stores constraint `row` at position `k`.
    fn set(&mut self, k: usize, row: usize, u: f64, sign: f64, hn: f64) -> Result<(), QpStatus> {
        set_at(self.act, k, row)?;
        set_at(self.u, k, u)?;
        set_at(self.sign, k, sign)?;
        set_at(self.hn, k, hn)
    }

    /// Removes position `k` of `q`, shifting the later ones down.
    fn remove(&mut self, k: usize, q: usize) -> Result<(), QpStatus> {
        self.act.get_mut(k..q).ok_or(INTERNAL)?.rotate_left(1);
        self.u.get_mut(k..q).ok_or(INTERNAL)?.rotate_left(1);
        self.sign.get_mut(k..q).ok_or(INTERNAL)?.rotate_left(1);
        self.hn.get_mut(k..q).ok_or(INTERNAL)?.rotate_left(1);
        Ok(())
    }
}

/// Whether the new normal `n_p`, with `d = Jᵀ n_p`, `‖d‖² = dd`, `‖d[q..]‖² = d2` and
/// `r = R⁻¹ d[..q]` (so `n_p ≈ Σ r_k n_k + J₂-part`), is numerically a combination of the
/// active normals.
///
/// INVARIANT (dependence-test): `d[q..]` would be exactly zero for a dependent normal; what is
/// computed instead is rounding noise, proportional not to `‖d‖` but to the size of the terms
/// that cancel in `n_p = Σ r_k n_k`, i.e. to `Σ |r_k| ‖n_k‖`. Measuring `‖d[q..]‖` against
/// `‖d‖ + Σ |r_k| ‖Jᵀ n_k‖` keeps a dependent row with large, cancelling coefficients (the last
/// row of a Farkas certificate among badly scaled rows) from passing as independent and
/// sending `x` off by `|s| / ‖d[q..]‖`.
fn dependent(dd: f64, d2: f64, r: &[f64], hn: &[f64]) -> bool {
    let spread = r.iter().zip(hn).fold(0.0, |s, (rk, hk)| s + rk.abs() * hk);
    d2.sqrt() <= DEP_TOL * (dd.sqrt() + spread)
}

/// Reported when an internal invariant does not hold (a bug, or overflow in the data): the
/// solver then gives up with [`QpStatus::NumericalError`] instead of panicking.
const INTERNAL: QpStatus = QpStatus::NumericalError;

impl QpWorkspace {
    /// A workspace for problems with up to `n_max` variables and `m_max` rows. This is the
    /// only allocation: `4 n_max² + n_max m_max + O(n_max + m_max)` floats.
    pub fn new(n_max: usize, m_max: usize) -> Self {
        let nn = n_max.saturating_mul(n_max);
        QpWorkspace {
            n_max,
            m_max,
            n: 0,
            factored: false,
            h: vec![0.0; nn],
            j0: vec![0.0; nn],
            jm: vec![0.0; nn],
            rm: vec![0.0; nn],
            x: vec![0.0; n_max],
            z: vec![0.0; n_max],
            d: vec![0.0; n_max],
            rv: vec![0.0; n_max],
            u: vec![0.0; n_max],
            sign: vec![0.0; n_max],
            act: vec![0; n_max],
            hn: vec![0.0; n_max],
            q: 0,
            neq: 0,
            is_active: vec![false; m_max],
            row_norm: vec![0.0; m_max],
            lambda: vec![0.0; m_max],
            at: vec![0.0; n_max.saturating_mul(m_max)],
            ax: vec![0.0; m_max],
            unit: vec![(0, 0.0); m_max],
            dense_m: 0,
            row_inv: vec![0.0; m_max],
            out_n: 0,
            out_m: 0,
            rows_of: None,
            factors_kept: false,
        }
    }

    /// Largest number of variables this workspace accepts.
    pub fn n_max(&self) -> usize {
        self.n_max
    }

    /// Largest number of rows this workspace accepts.
    pub fn m_max(&self) -> usize {
        self.m_max
    }

    /// Sets and factors the Hessian `H` (`n × n`, row-major, `h.len() == n * n`) once for
    /// the following solves. Returns [`QpStatus::Solved`] on success and
    /// [`QpStatus::NumericalError`] if `n > n_max`, `h.len() != n * n`, or `H` has a
    /// non-finite entry, is not symmetric, or is not (numerically) positive definite; after a
    /// failure every solve reports [`QpStatus::NumericalError`] until a valid `H` is set.
    /// Does not allocate.
    pub fn set_hessian(&mut self, n: usize, h: &[f64]) -> QpStatus {
        self.factored = false;
        if n > self.n_max || Some(h.len()) != n.checked_mul(n) {
            return QpStatus::NumericalError;
        }
        if !h.iter().all(|v| v.is_finite()) {
            return QpStatus::NumericalError;
        }
        // Symmetry, and the exactly symmetric copy built from the lower triangle.
        for (i, row) in h.chunks_exact(n.max(1)).enumerate().take(n) {
            for (j, &hij) in row.iter().enumerate().take(i + 1) {
                let Some(&hji) = h.get(j * n + i) else {
                    return QpStatus::NumericalError;
                };
                if (hij - hji).abs() > SYM_TOL * (hij.abs() + hji.abs()) {
                    return QpStatus::NumericalError;
                }
                if let Some(v) = self.h.get_mut(i * n + j) {
                    *v = hij;
                }
                if let Some(v) = self.h.get_mut(j * n + i) {
                    *v = hij;
                }
            }
        }
        // L goes into the scratch `jm`, L⁻¹ (row-major) = L⁻ᵀ (column-major) into `j0`.
        if !cholesky(&self.h, n, &mut self.jm) || !invert_lower(&self.jm, n, &mut self.j0) {
            return QpStatus::NumericalError;
        }
        if !self.j0.iter().take(n * n).all(|v| v.is_finite()) {
            return QpStatus::NumericalError;
        }
        self.n = n;
        self.factored = true;
        QpStatus::Solved
    }

    /// Solves the QP with the Hessian from the last successful [`QpWorkspace::set_hessian`].
    ///
    /// - `g`: linear term, `n` entries.
    /// - `a`: constraint matrix, `m × n` row-major (`a.len() == m * n`); `b`: `m` entries.
    /// - `meq`: the first `meq` rows are equalities `a_i·x = b_i`, the rest `a_i·x <= b_i`.
    /// - `warm`: rows to try first as the active set, typically the `active` of a previous
    ///   solve of a nearby problem. Out-of-range, duplicate, linearly dependent rows and rows
    ///   whose multipliers come out negative are skipped, so any list gives the same answer as
    ///   a cold start (`&[]`), usually in fewer iterations.
    /// - `max_iter`: cap on active-set changes (additions, including equality rows, and
    ///   drops). The warm-start setup is not counted: it is bounded by one check per entry of
    ///   `warm` (stopping once `n` rows are active) and at most `n` drops.
    ///
    /// A row of zeros is satisfied iff `0 <= b_i` (`0 = b_i` for an equality). Bad dimensions
    /// (`m > m_max`, `meq > m`, slice lengths) and non-finite data give
    /// [`QpStatus::NumericalError`]. Never panics and never allocates.
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the mathematical problem data"
    )]
    pub fn solve(
        &mut self,
        g: &[f64],
        a: &[f64],
        b: &[f64],
        m: usize,
        meq: usize,
        warm: &[usize],
        max_iter: u32,
    ) -> QpSolution<'_> {
        self.solve_impl(g, a, b, m, meq, warm, max_iter, false, None)
    }

    /// [`QpWorkspace::solve`] for the same `A` (the same `m`, `n` and entries) as the last
    /// call, with new `g`, `b` and warm start: it keeps the transposed copy of `A` and the
    /// row norms that call computed (a large part of a warm re-solve's work for small
    /// dense problems; `BENCHMARKS.md`, "Tier 2's structure"). When `warm` is the last
    /// solve's final active set (of inequalities, as a set) and that solve ended `Solved`,
    /// it also keeps the factorisation of that set (which depends on `H` and the active
    /// rows only, not on `g` or `b`) instead of building it again row by row, most of what
    /// is left. Given another `m` or `n`,
    /// or after a call that did not get as far as computing them, it is
    /// [`QpWorkspace::solve`]. The caller answers for the entries: a different `A` of the
    /// same shape would be solved as if it were the old one (in the repairer that costs
    /// optimality, never safety: Tier 1 checks every answer).
    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the mathematical problem data"
    )]
    pub fn solve_same_rows(
        &mut self,
        g: &[f64],
        a: &[f64],
        b: &[f64],
        m: usize,
        meq: usize,
        warm: &[usize],
        max_iter: u32,
    ) -> QpSolution<'_> {
        let reuse = self.rows_of == Some((m, self.n));
        let q = self.q;
        let keep = reuse
            && q > 0
            && self.factors_kept
            && meq == 0
            && self.neq == 0
            && warm.len() == q
            && self
                .act
                .get(..q)
                .is_some_and(|act| act.iter().all(|r| warm.contains(r)));
        self.solve_impl(g, a, b, m, meq, warm, max_iter, reuse, keep.then_some(q))
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "mirrors the mathematical problem data"
    )]
    fn solve_impl(
        &mut self,
        g: &[f64],
        a: &[f64],
        b: &[f64],
        m: usize,
        meq: usize,
        warm: &[usize],
        max_iter: u32,
        reuse: bool,
        kept: Option<usize>,
    ) -> QpSolution<'_> {
        if !reuse {
            self.rows_of = None;
        }
        self.factors_kept = false;
        self.q = 0;
        self.neq = 0;
        self.out_n = 0;
        self.out_m = 0;
        let (status, iterations) = match self.check_inputs(g, a, b, m, meq) {
            Some(bad) => (bad, 0),
            None => {
                let mut iterations = 0;
                let pb = Problem {
                    g,
                    a,
                    b,
                    m,
                    meq,
                    warm,
                    max_iter,
                };
                let status = match self.run(&pb, reuse, kept, &mut iterations) {
                    Ok(()) => QpStatus::Solved,
                    Err(s) => s,
                };
                (status, iterations)
            }
        };
        // Report the iterate for the three outcomes that have one, provided it (and its
        // objective and multipliers) came out finite.
        let mut status = status;
        let mut objective = f64::NAN;
        let mut reported = false;
        if matches!(
            status,
            QpStatus::Solved | QpStatus::Infeasible | QpStatus::MaxIterations
        ) {
            let n = self.n;
            objective = self.objective(g);
            if status != QpStatus::Infeasible {
                self.fill_multipliers(m);
            }
            let finite = |v: &[f64]| v.iter().all(|e| e.is_finite());
            if objective.is_finite()
                && finite(self.x.get(..n).unwrap_or(&[]))
                && finite(self.lambda.get(..m).unwrap_or(&[]))
            {
                self.out_n = n;
                self.out_m = m;
                reported = true;
            } else {
                status = QpStatus::NumericalError;
                objective = f64::NAN;
            }
        }
        if !reported {
            self.q = 0;
        }
        self.factors_kept = reported && status == QpStatus::Solved && self.neq == 0;
        QpSolution {
            status,
            x: self.x.get(..self.out_n).unwrap_or(&[]),
            objective,
            active: self.act.get(..self.q).unwrap_or(&[]),
            iterations,
            multipliers: self.lambda.get(..self.out_m).unwrap_or(&[]),
        }
    }

    /// `None` if the inputs are usable, else the status to report.
    fn check_inputs(
        &self,
        g: &[f64],
        a: &[f64],
        b: &[f64],
        m: usize,
        meq: usize,
    ) -> Option<QpStatus> {
        if !self.factored {
            return Some(QpStatus::NumericalError);
        }
        let n = self.n;
        if m > self.m_max
            || meq > m
            || g.len() != n
            || b.len() != m
            || Some(a.len()) != m.checked_mul(n)
        {
            return Some(QpStatus::NumericalError);
        }
        let finite = |s: &[f64]| s.iter().all(|v| v.is_finite());
        // `a` is checked through its row norms in `run` (one pass instead of two).
        if !finite(g) || !finite(b) {
            return Some(QpStatus::NumericalError);
        }
        None
    }

    /// `½ xᵀ H x + gᵀ x` at the current `x`.
    fn objective(&self, g: &[f64]) -> f64 {
        let n = self.n;
        let x = self.x.get(..n).unwrap_or(&[]);
        if n == 0 {
            return 0.0;
        }
        let quad = self
            .h
            .chunks_exact(n)
            .take(n)
            .zip(x)
            .fold(0.0, |s, (row, xi)| s + xi * dot(row, x));
        0.5 * quad + dot(g, x)
    }

    /// Scatters the active multipliers into `lambda[..m]` (user sign convention).
    fn fill_multipliers(&mut self, m: usize) {
        if let Some(l) = self.lambda.get_mut(..m) {
            l.fill(0.0);
        }
        for ((&row, &ui), &s) in self.act.iter().zip(&self.u).zip(&self.sign).take(self.q) {
            if let Some(l) = self.lambda.get_mut(row) {
                // INVARIANT (multiplier-sign): H x + g = Σ u_j n_j with n_j = -σ_j a_j, so
                // H x + g + Σ (σ_j u_j) a_j = 0.
                *l = s * ui;
            }
        }
    }

    /// The Goldfarb–Idnani iteration. `Ok(())` means optimal.
    ///
    /// Its steps: the rows' norms and the transposed copy of `A` ([`prepare_rows`], kept
    /// from the last call by `solve_same_rows`), rows of zeros, then on an [`Iterate`]: the
    /// start ([`Iterate::start`]), the equality rows ([`Iterate::add_equalities`]), the warm
    /// start ([`Iterate::warm_start`]) and the main loop ([`Iterate::main_loop`]).
    fn run(
        &mut self,
        pb: &Problem<'_>,
        reuse: bool,
        kept: Option<usize>,
        iterations: &mut u32,
    ) -> Result<(), QpStatus> {
        let (n, m) = (self.n, pb.m);
        let Self {
            j0,
            jm,
            rm,
            x,
            z,
            d,
            rv,
            u,
            sign,
            act,
            hn,
            q,
            neq,
            is_active,
            row_norm,
            at,
            ax,
            unit,
            dense_m,
            row_inv,
            lambda,
            rows_of,
            ..
        } = self;
        let nn = n.checked_mul(n).ok_or(INTERNAL)?;
        // INVARIANT (exact-lengths): from here on every buffer is cut to exactly the size of
        // this problem (n, n*n or m), so zipped iterators and chunks cover exactly the data.
        let is_active = is_active.get_mut(..m).ok_or(INTERNAL)?;
        let row_norm = row_norm.get_mut(..m).ok_or(INTERNAL)?;
        let at = at.get_mut(..m * n).ok_or(INTERNAL)?;
        let ax = ax.get_mut(..m).ok_or(INTERNAL)?;
        let row_inv = row_inv.get_mut(..m).ok_or(INTERNAL)?;
        let lambda = lambda.get_mut(..m).ok_or(INTERNAL)?;
        is_active.fill(false);

        // Row norms and the transposed copy of A in one pass. A NaN or infinity in a row
        // (or an overflowing norm) makes its norm non-finite. Rows of zeros are decided here
        // once and for all.
        // (Kept from the last call by `solve_same_rows`.)
        if !reuse {
            let unit = unit.get_mut(..m).ok_or(INTERNAL)?;
            prepare_rows(pb.a, n, m, unit, dense_m, row_norm, at, row_inv)?;
            *rows_of = Some((m, n));
        }
        for (i, (&nrm, &bi)) in row_norm.iter().zip(pb.b).enumerate() {
            if nrm == 0.0 && ((i < pb.meq && bi != 0.0) || bi < 0.0) {
                // 0 = 0·x <= b_i < 0 (or = b_i != 0): y = ∓e_i is a certificate.
                lambda.fill(0.0);
                set_at(lambda, i, if bi < 0.0 { 1.0 } else { -1.0 })?;
                return Err(QpStatus::Infeasible);
            }
        }
        if n == 0 {
            return Ok(());
        }
        let mut it = Iterate {
            n,
            j0: j0.get(..nn).ok_or(INTERNAL)?,
            jm: jm.get_mut(..nn).ok_or(INTERNAL)?,
            rm: rm.get_mut(..nn).ok_or(INTERNAL)?,
            x: x.get_mut(..n).ok_or(INTERNAL)?,
            z: z.get_mut(..n).ok_or(INTERNAL)?,
            d: d.get_mut(..n).ok_or(INTERNAL)?,
            rv: rv.get_mut(..n).ok_or(INTERNAL)?,
            set: ActiveArrays {
                act: act.get_mut(..n).ok_or(INTERNAL)?,
                u: u.get_mut(..n).ok_or(INTERNAL)?,
                sign: sign.get_mut(..n).ok_or(INTERNAL)?,
                hn: hn.get_mut(..n).ok_or(INTERNAL)?,
            },
            q: *q,
            neq: 0,
            is_active,
            lambda,
            iterations: *iterations,
            max_iter: pb.max_iter,
        };
        let unit = unit.get(*dense_m..m).ok_or(INTERNAL)?;
        let result = it
            .start(kept, pb.g)
            .and_then(|()| it.add_equalities(pb, row_norm))
            .and_then(|()| it.warm_start(pb, row_norm, kept.is_some_and(|kq| kq > 0)))
            .and_then(|()| it.main_loop(pb, at, unit, row_inv, ax));
        // The active set's size and the count are the workspace's, whatever the outcome.
        *q = it.q;
        *neq = it.neq;
        *iterations = it.iterations;
        result
    }
}

/// One problem's data: the arguments of [`QpWorkspace::solve`].
#[derive(Clone, Copy, Debug)]
struct Problem<'p> {
    g: &'p [f64],
    a: &'p [f64],
    b: &'p [f64],
    m: usize,
    meq: usize,
    warm: &'p [usize],
    max_iter: u32,
}

/// Row norms (`row_norm`, `row_inv`), the transposed copy `at` of the rows before the
/// suffix of rows with at most one non-zero entry (`unit`, from `dense_m` on), of the
/// `m × n` matrix `a`. A non-finite norm is a [`QpStatus::NumericalError`].
#[expect(clippy::too_many_arguments, reason = "the workspace's row arrays")]
fn prepare_rows(
    a: &[f64],
    n: usize,
    m: usize,
    unit: &mut [(usize, f64)],
    dense_m: &mut usize,
    row_norm: &mut [f64],
    at: &mut [f64],
    row_inv: &mut [f64],
) -> Result<(), QpStatus> {
    // The suffix of rows with at most one non-zero entry.
    *dense_m = m;
    for (row, u) in a.chunks_exact(n.max(1)).zip(unit.iter_mut()).rev() {
        let mut nz = row.iter().enumerate().filter(|(_, v)| **v != 0.0);
        match (nz.next(), nz.next()) {
            (first, None) => *u = first.map_or((0, 0.0), |(j, &v)| (j, v)),
            _ => break,
        }
        *dense_m -= 1;
    }
    if n == 0 {
        row_norm.fill(0.0);
    } else {
        for (i, (nrm, row)) in row_norm.iter_mut().zip(a.chunks_exact(n)).enumerate() {
            *nrm = dot(row, row).sqrt();
            if i < *dense_m {
                for (col, &aij) in at.chunks_exact_mut(m).zip(row) {
                    set_at(col, i, aij)?;
                }
            }
        }
    }
    for (&nrm, inv) in row_norm.iter().zip(row_inv.iter_mut()) {
        if !nrm.is_finite() {
            return Err(QpStatus::NumericalError);
        }
        *inv = if nrm > 0.0 { 1.0 / nrm } else { 0.0 };
    }
    Ok(())
}

/// The workspace's factorisation, iterate and active set, cut to one problem's sizes
/// (INVARIANT (exact-lengths) of [`QpWorkspace::run`]), with the active set's size and the
/// iteration count, which `run` writes back however the solve ends.
struct Iterate<'w> {
    n: usize,
    /// `L⁻ᵀ` (the unconstrained start).
    j0: &'w [f64],
    /// The working `J = L⁻ᵀ Q`.
    jm: &'w mut [f64],
    /// The upper-triangular `R`.
    rm: &'w mut [f64],
    x: &'w mut [f64],
    z: &'w mut [f64],
    d: &'w mut [f64],
    rv: &'w mut [f64],
    set: ActiveArrays<'w>,
    /// Number of active constraints.
    q: usize,
    /// Number of active equality rows (the prefix `act[..neq]`).
    neq: usize,
    is_active: &'w mut [bool],
    lambda: &'w mut [f64],
    iterations: u32,
    max_iter: u32,
}

impl Iterate<'_> {
    /// Count one iteration, or stop at the cap.
    ///
    /// INVARIANT (bounded): every addition and every pass of the dual step first checks and
    /// counts an iteration, so a solve ends after at most `max_iter` of them whatever the
    /// data.
    fn count(&mut self) -> Result<(), QpStatus> {
        if self.iterations >= self.max_iter {
            return Err(QpStatus::MaxIterations);
        }
        self.iterations += 1;
        Ok(())
    }

    /// The start: the last solve's final factorisation when `kept` (its rows active
    /// again; the warm start recomputes `x` and `u` for this `g`, `b`), else the
    /// unconstrained minimiser `x = -H⁻¹ g = -J₀ J₀ᵀ g` with `J = J₀` and no active row.
    fn start(&mut self, kept: Option<usize>, g: &[f64]) -> Result<(), QpStatus> {
        let n = self.n;
        self.neq = 0;
        if let Some(kq) = kept {
            self.q = kq;
            for &r in self.set.act.get(..kq).ok_or(INTERNAL)? {
                set_at(self.is_active, r, true)?;
            }
        } else {
            self.jm.copy_from_slice(self.j0);
            self.x.fill(0.0);
            for col in self.jm.chunks_exact(n).take(n) {
                axpy(self.x, -dot(col, g), col);
            }
            self.q = 0;
        }
        Ok(())
    }

    /// The equality rows, each made active with a full step (their multipliers are free).
    fn add_equalities(&mut self, pb: &Problem<'_>, row_norm: &[f64]) -> Result<(), QpStatus> {
        let n = self.n;
        let rows = pb.a.chunks_exact(n).zip(pb.b).zip(row_norm.iter());
        for (i, ((row, &bi), &nrm)) in rows.enumerate().take(pb.meq) {
            if nrm == 0.0 {
                continue;
            }
            self.count()?;
            let q = self.q;
            let resid = dot(row, self.x) - bi;
            // INVARIANT (equality-orientation): σ = sign(a·x - b) makes the Goldfarb–Idnani
            // slack s = -σ (a·x - b) <= 0, so the step t = -s / ‖d₂‖² is non-negative.
            let sigma = if resid >= 0.0 { 1.0 } else { -1.0 };
            let (dd, d2) = compute_d(self.jm, n, q, row, sigma, self.d);
            self.rv.copy_from_slice(self.d);
            back_substitute(self.rm, n, q, self.rv).ok_or(INTERNAL)?;
            if dependent(dd, d2, self.rv.get(..q).ok_or(INTERNAL)?, self.set.hn) {
                // Dependent on the equalities already active: redundant or contradictory.
                let xn = 1.0 + dot(self.x, self.x).sqrt();
                if resid.abs() <= FEAS_TOL * (nrm * xn + bi.abs()) {
                    continue;
                }
                let r = self.rv.get(..q).ok_or(INTERNAL)?;
                write_certificate(self.lambda, &self.set, r, i, sigma)?;
                return Err(QpStatus::Infeasible);
            }
            compute_z(self.jm, n, q, self.d, self.z);
            let t = resid.abs() / d2;
            if !t.is_finite() {
                return Err(QpStatus::NumericalError);
            }
            axpy(self.x, t, self.z);
            for (uk, rk) in self.set.u.iter_mut().zip(self.rv.iter()).take(q) {
                *uk -= t * rk;
            }
            add_to_factors(self.jm, self.rm, n, q, self.d, self.z).ok_or(INTERNAL)?;
            self.set.set(q, i, t, sigma, dd.sqrt())?;
            set_at(self.is_active, i, true)?;
            self.q += 1;
            self.neq += 1;
        }
        Ok(())
    }

    /// The warm start: add the suggested inequality rows to the factorisation, then
    /// recompute the minimiser over the active set and drop rows with negative multipliers
    /// until the point is dual feasible again.
    /// `kept`: does the start hold a kept factorisation of at least one row (whose point
    /// must be recomputed for this `g` and `b` like a warm start's)?
    fn warm_start(
        &mut self,
        pb: &Problem<'_>,
        row_norm: &[f64],
        kept: bool,
    ) -> Result<(), QpStatus> {
        let (n, m, meq) = (self.n, pb.m, pb.meq);
        let mut warm_added = kept;
        for &w in pb.warm {
            if self.q >= n {
                break;
            }
            if w < meq || w >= m || self.is_active.get(w).copied().unwrap_or(true) {
                continue;
            }
            if row_norm.get(w).copied().unwrap_or(0.0) == 0.0 {
                continue;
            }
            let q = self.q;
            let row = pb.a.get(w * n..w * n + n).ok_or(INTERNAL)?;
            let (dd, d2) = compute_d(self.jm, n, q, row, 1.0, self.d);
            self.rv.copy_from_slice(self.d);
            back_substitute(self.rm, n, q, self.rv).ok_or(INTERNAL)?;
            if dependent(dd, d2, self.rv.get(..q).ok_or(INTERNAL)?, self.set.hn) {
                continue;
            }
            add_to_factors(self.jm, self.rm, n, q, self.d, self.z).ok_or(INTERNAL)?;
            self.set.set(q, w, 0.0, 1.0, dd.sqrt())?;
            set_at(self.is_active, w, true)?;
            self.q += 1;
            warm_added = true;
        }
        if !warm_added {
            return Ok(());
        }
        loop {
            let q = self.q;
            active_set_minimiser(
                self.jm, self.rm, n, q, &self.set, pb.b, pb.g, self.x, self.rv,
            )
            .ok_or(INTERNAL)?;
            active_set_multipliers(self.jm, self.rm, n, q, pb.g, self.rv, self.set.u)
                .ok_or(INTERNAL)?;
            // INVARIANT (dual-feasible-start): the main loop needs u >= 0 on every active
            // inequality; drop the most negative one (lowest position on ties) and repeat.
            let mut worst: Option<(usize, f64)> = None;
            for (k, &uk) in self.set.u.iter().enumerate().take(q).skip(self.neq) {
                if uk < worst.map_or(0.0, |(_, v)| v) {
                    worst = Some((k, uk));
                }
            }
            let Some((k, _)) = worst else {
                return Ok(());
            };
            self.drop_active(k)?;
        }
    }

    /// Drop the active row at position `k`.
    fn drop_active(&mut self, k: usize) -> Result<(), QpStatus> {
        let row = *self.set.act.get(k).ok_or(INTERNAL)?;
        drop_from_factors(self.jm, self.rm, self.n, self.q, k).ok_or(INTERNAL)?;
        self.set.remove(k, self.q)?;
        set_at(self.is_active, row, false)?;
        self.q -= 1;
        Ok(())
    }

    /// Main loop: add the most violated inequality until none is violated.
    ///
    /// INVARIANT (factorisation): J Jᵀ = H⁻¹ and Jᵀ N = [R; 0] for the active normals N,
    /// R upper triangular with a non-zero diagonal (rows are only added when independent).
    /// INVARIANT (dual-feasible): u_k >= 0 on every active inequality, and x minimises the
    /// objective over the active rows taken as equalities (with p, once chosen, held at its
    /// partial level); so every iterate's objective is a lower bound on the optimum.
    /// INVARIANT (equality-prefix): the equality rows are act[..neq] and are never
    /// dropped; t1 only looks at positions >= neq.
    fn main_loop(
        &mut self,
        pb: &Problem<'_>,
        at: &[f64],
        unit: &[(usize, f64)],
        row_inv: &[f64],
        ax: &mut [f64],
    ) -> Result<(), QpStatus> {
        let n = self.n;
        loop {
            let violated =
                most_violated(at, unit, pb.b, row_inv, self.is_active, self.x, ax, pb.meq);
            let Some(p) = violated else {
                return Ok(());
            };
            let row_p = pb.a.get(p * n..p * n + n).ok_or(INTERNAL)?;
            let b_p = *pb.b.get(p).ok_or(INTERNAL)?;
            self.add_violated(p, row_p, b_p)?;
        }
    }

    /// Make the violated row `p` (`row_p · x <= b_p`) active along the dual path: partial
    /// steps drop the active inequalities whose multipliers reach zero first, until a full
    /// step makes `p` active; a dependent `p` with nothing left to drop proves the problem
    /// infeasible.
    fn add_violated(&mut self, p: usize, row_p: &[f64], b_p: f64) -> Result<(), QpStatus> {
        let n = self.n;
        // Multiplier of p, growing from zero along the dual path.
        let mut u_new = 0.0;
        loop {
            self.count()?;
            let q = self.q;
            let (dd, d2) = compute_d(self.jm, n, q, row_p, 1.0, self.d);
            self.rv.copy_from_slice(self.d);
            back_substitute(self.rm, n, q, self.rv).ok_or(INTERNAL)?;
            let is_dependent = dependent(dd, d2, self.rv.get(..q).ok_or(INTERNAL)?, self.set.hn);
            // Partial (dual) step length: the first active inequality whose multiplier
            // reaches zero along u - t r.
            let mut t1 = f64::INFINITY;
            let mut k_drop = None;
            let pairs = self.set.u.iter().zip(self.rv.iter()).enumerate();
            for (k, (&uk, &rk)) in pairs.take(q).skip(self.neq) {
                if rk > 0.0 {
                    let ratio = (uk / rk).max(0.0);
                    if ratio < t1 {
                        t1 = ratio;
                        k_drop = Some(k);
                    }
                }
            }
            let t = if is_dependent {
                // z = 0: only the dual variables move. With no multiplier to drop, the
                // dual is unbounded and the primal infeasible.
                if k_drop.is_none() {
                    let r = self.rv.get(..q).ok_or(INTERNAL)?;
                    write_certificate(self.lambda, &self.set, r, p, 1.0)?;
                    return Err(QpStatus::Infeasible);
                }
                t1
            } else {
                compute_z(self.jm, n, q, self.d, self.z);
                // Full step length: makes row p active; s = b_p - a_p·x < 0 while p is
                // violated.
                let s = b_p - dot(row_p, self.x);
                let t2 = (-s / d2).max(0.0);
                if t2 <= t1 {
                    if !t2.is_finite() {
                        return Err(QpStatus::NumericalError);
                    }
                    axpy(self.x, t2, self.z);
                    for (uk, rk) in self.set.u.iter_mut().zip(self.rv.iter()).take(q) {
                        *uk -= t2 * rk;
                    }
                    add_to_factors(self.jm, self.rm, n, q, self.d, self.z).ok_or(INTERNAL)?;
                    self.set.set(q, p, u_new + t2, 1.0, dd.sqrt())?;
                    set_at(self.is_active, p, true)?;
                    self.q += 1;
                    return Ok(());
                }
                axpy(self.x, t1, self.z);
                t1
            };
            // Partial step: move the multipliers, then drop the one that reached zero.
            for (uk, rk) in self.set.u.iter_mut().zip(self.rv.iter()).take(q) {
                *uk -= t * rk;
            }
            u_new += t;
            let k = k_drop.ok_or(INTERNAL)?;
            self.drop_active(k)?;
        }
    }
}

/// Writes the Farkas certificate of infeasibility found when row `p` (orientation `σ_p`) is
/// violated at the minimiser over the active set yet dependent on it, `n_p = Σ r_k n_k` with
/// `r_k <= 0` on every active inequality.
///
/// INVARIANT (farkas): weights `w_p = 1`, `w_k = -r_k` give `Σ w n = 0`, and since the active
/// rows hold with equality while p is violated, `Σ w c = c_p - n_pᵀ x > 0`. In the user's
/// terms `y_i = σ_i w_i` has `y_i >= 0` on inequality rows, `Σ y_i a_i = 0` and
/// `bᵀy = -Σ w c < 0`, which no `x` with `A x <= b` can satisfy.
fn write_certificate(
    lambda: &mut [f64],
    set: &ActiveArrays<'_>,
    r: &[f64],
    p: usize,
    sigma_p: f64,
) -> Result<(), QpStatus> {
    lambda.fill(0.0);
    for ((&row, &rk), &s) in set.act.iter().zip(r).zip(set.sign.iter()) {
        set_at(lambda, row, -rk * s)?;
    }
    set_at(lambda, p, sigma_p)
}

/// `s[i] = v`, or an internal-error stop if `i` is out of range.
fn set_at<T>(s: &mut [T], i: usize, v: T) -> Result<(), QpStatus> {
    *s.get_mut(i).ok_or(INTERNAL)? = v;
    Ok(())
}

/// The most violated inactive inequality row (largest violation per unit `‖a_i‖`, lowest
/// index on ties), if any row is violated beyond the tolerance.
#[expect(
    clippy::too_many_arguments,
    reason = "the problem data and the workspace's arrays"
)]
fn most_violated(
    at: &[f64],
    unit: &[(usize, f64)],
    b: &[f64],
    row_inv: &[f64],
    is_active: &[bool],
    x: &[f64],
    ax: &mut [f64],
    meq: usize,
) -> Option<usize> {
    // ax = A x = Σ_j x_j A[:, j], summed in the order j = 0, 1, ... for every dense row;
    // a row of one non-zero entry `a_ij` is `a_ij x_j`, what that sum gives bit for bit
    // (its other terms are zeros).
    let m = ax.len();
    let (dense, tail) = ax.split_at_mut(m.saturating_sub(unit.len()));
    dense.fill(0.0);
    if m > 0 {
        for (col, &xj) in at.chunks_exact(m).zip(x) {
            axpy(dense, xj, col);
        }
    }
    for (axi, &(j, v)) in tail.iter_mut().zip(unit) {
        *axi = v * x.get(j).copied().unwrap_or(f64::NAN);
    }
    // |a_i·x| <= ‖a_i‖ ‖x‖ bounds the size of the terms of a_i·x, hence its rounding error.
    let xn = FEAS_TOL * (1.0 + dot(x, x).sqrt());
    // Two passes: every row's score into `ax` (no dependence between rows), then the first
    // largest. (One pass carried the running best through every row.)
    let rows = ax.iter_mut().zip(b).zip(row_inv).zip(is_active);
    for (((axi, &bi), &inv), &active) in rows {
        // Written as selects rather than branches: whether a row is violated is unpredictable.
        // Active rows and rows of zeros get weight 0, hence score 0, and are never chosen.
        let w = if active { 0.0 } else { inv };
        let score = (*axi - bi) * w;
        *axi = if score > xn + FEAS_TOL * bi.abs() * w {
            score
        } else {
            0.0
        };
    }
    let mut best = None;
    let mut best_score = 0.0;
    for (i, &score) in ax.iter().enumerate().skip(meq) {
        if score > best_score {
            best_score = score;
            best = Some(i);
        }
    }
    best
}

/// Minimiser over the active set (its rows as equalities) and its multipliers, from scratch:
/// with `w = R⁻ᵀ c`, `x = J₁ w - J₂ J₂ᵀ g` and `u = R⁻¹ (w + J₁ᵀ g)`, where `c_j = -σ_j b_j`.
#[expect(
    clippy::too_many_arguments,
    reason = "the factorisation and problem data"
)]
fn active_set_minimiser(
    jm: &[f64],
    rm: &[f64],
    n: usize,
    q: usize,
    set: &ActiveArrays<'_>,
    b: &[f64],
    g: &[f64],
    x: &mut [f64],
    w: &mut [f64],
) -> Option<()> {
    for ((wk, &row), &s) in w
        .iter_mut()
        .zip(set.act.iter())
        .zip(set.sign.iter())
        .take(q)
    {
        *wk = -s * *b.get(row)?;
    }
    forward_substitute(rm, n, q, w)?;
    x.fill(0.0);
    for (k, col) in jm.chunks_exact(n).enumerate().take(n) {
        if k < q {
            axpy(x, *w.get(k)?, col);
        } else {
            axpy(x, -dot(col, g), col);
        }
    }
    Some(())
}

/// The multipliers `u = R⁻¹ (w + J₁ᵀ g)` that go with [`active_set_minimiser`]'s `w`.
fn active_set_multipliers(
    jm: &[f64],
    rm: &[f64],
    n: usize,
    q: usize,
    g: &[f64],
    w: &[f64],
    u: &mut [f64],
) -> Option<()> {
    for ((uk, wk), col) in u.iter_mut().zip(w.iter()).zip(jm.chunks_exact(n)).take(q) {
        *uk = wk + dot(col, g);
    }
    back_substitute(rm, n, q, u)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn unconstrained_minimiser() {
        let mut ws = QpWorkspace::new(2, 0);
        assert_eq!(ws.set_hessian(2, &[2.0, 0.0, 0.0, 4.0]), QpStatus::Solved);
        let s = ws.solve(&[-2.0, -4.0], &[], &[], 0, 0, &[], 10);
        assert_eq!(s.status, QpStatus::Solved);
        assert!(close(s.x[0], 1.0) && close(s.x[1], 1.0));
        assert!(close(s.objective, -3.0));
        assert_eq!(s.iterations, 0);
    }

    #[test]
    fn one_active_inequality() {
        // min (x-1)² + (y-1)²  s.t.  x + y <= 1  →  (½, ½), λ = 1.
        let mut ws = QpWorkspace::new(2, 1);
        ws.set_hessian(2, &[2.0, 0.0, 0.0, 2.0]);
        let s = ws.solve(&[-2.0, -2.0], &[1.0, 1.0], &[1.0], 1, 0, &[], 10);
        assert_eq!(s.status, QpStatus::Solved);
        assert!(close(s.x[0], 0.5) && close(s.x[1], 0.5));
        assert!(close(s.objective, 0.5 - 2.0));
        assert_eq!(s.active, &[0]);
        assert!(close(s.multipliers[0], 1.0));
    }

    #[test]
    fn box_with_equality() {
        // min ½‖x - (3, -3, 0)‖²  s.t.  x0 + x1 + x2 = ½,  x_i <= 1,  -x_i <= 1.
        let mut ws = QpWorkspace::new(3, 7);
        ws.set_hessian(3, &[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]);
        #[rustfmt::skip]
        let a = [
            1.0, 1.0, 1.0,
            1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0,
            -1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, -1.0,
        ];
        let b = [0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
        let s = ws.solve(&[-3.0, 3.0, 0.0], &a, &b, 7, 1, &[], 20);
        assert_eq!(s.status, QpStatus::Solved);
        // x0 = 1 and x1 = -1 at their bounds, then x2 = ½ from the equality.
        assert!(close(s.x[0], 1.0) && close(s.x[1], -1.0) && close(s.x[2], 0.5));
        // Stationarity x - c + λ_eq·1 + λ_1 e0 - λ_5 e1 = 0: λ_eq = -½, λ_1 = 5/2, λ_5 = 3/2.
        assert!(close(s.multipliers[0], -0.5), "{:?}", s.multipliers);
        assert!(close(s.multipliers[1], 2.5));
        assert!(close(s.multipliers[5], 1.5));
        assert!(close(s.objective, 0.5 * (4.0 + 4.0 + 0.25) - 9.0));
        let mut sorted = s.active.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, [0, 1, 5]);
    }

    #[test]
    fn equality_only() {
        // min ½‖x‖²  s.t.  x0 + x1 = 2  →  (1, 1), with x + λ (1, 1) = 0: λ = -1.
        let mut ws = QpWorkspace::new(2, 1);
        ws.set_hessian(2, &[1.0, 0.0, 0.0, 1.0]);
        let s = ws.solve(&[0.0, 0.0], &[1.0, 1.0], &[2.0], 1, 1, &[], 10);
        assert_eq!(s.status, QpStatus::Solved);
        assert!(close(s.x[0], 1.0) && close(s.x[1], 1.0));
        assert!(close(s.multipliers[0], -1.0));
        assert!(close(s.objective, 1.0));
    }

    #[test]
    fn warm_start_skips_wrong_rows() {
        // min ½‖x - (2, 0)‖²  s.t.  x0 <= 1, x1 <= 1, -x1 <= 1: only row 0 is active at (1, 0).
        let mut ws = QpWorkspace::new(2, 3);
        ws.set_hessian(2, &[1.0, 0.0, 0.0, 1.0]);
        let (g, a, b) = (
            [-2.0, 0.0],
            [1.0, 0.0, 0.0, 1.0, 0.0, -1.0],
            [1.0, 1.0, 1.0],
        );
        let cold = ws.solve(&g, &a, &b, 3, 0, &[], 10);
        assert_eq!(
            (cold.status, cold.active, cold.iterations),
            (QpStatus::Solved, &[0][..], 1)
        );
        // Rows 1 and 2 would get negative multipliers, 9 is out of range: all skipped.
        let warm = ws.solve(&g, &a, &b, 3, 0, &[2, 9, 1, 0, 0], 10);
        assert_eq!(
            (warm.status, warm.active, warm.iterations),
            (QpStatus::Solved, &[0][..], 0)
        );
        assert!(close(warm.x[0], 1.0) && close(warm.x[1], 0.0));
    }

    #[test]
    fn zero_rows() {
        let mut ws = QpWorkspace::new(2, 2);
        ws.set_hessian(2, &[1.0, 0.0, 0.0, 1.0]);
        let ok = ws.solve(&[1.0, 1.0], &[0.0; 4], &[0.0, 2.0], 2, 0, &[], 10);
        assert_eq!(ok.status, QpStatus::Solved);
        assert!(close(ok.x[0], -1.0));
        let bad = ws.solve(&[1.0, 1.0], &[0.0; 4], &[0.0, -2.0], 2, 0, &[], 10);
        assert_eq!(bad.status, QpStatus::Infeasible);
        let bad_eq = ws.solve(&[1.0, 1.0], &[0.0; 4], &[1.0, 2.0], 2, 1, &[], 10);
        assert_eq!(bad_eq.status, QpStatus::Infeasible);
    }

    #[test]
    fn parallel_contradiction_is_infeasible() {
        let mut ws = QpWorkspace::new(2, 2);
        ws.set_hessian(2, &[1.0, 0.0, 0.0, 1.0]);
        let s = ws.solve(
            &[0.0, 0.0],
            &[1.0, 2.0, -1.0, -2.0],
            &[-1.0, -1.0],
            2,
            0,
            &[],
            10,
        );
        assert_eq!(s.status, QpStatus::Infeasible);
    }

    #[test]
    fn rejects_bad_inputs() {
        let mut ws = QpWorkspace::new(2, 1);
        assert_eq!(
            ws.set_hessian(2, &[1.0, 2.0, 2.0, 1.0]),
            QpStatus::NumericalError
        );
        assert_eq!(
            ws.solve(&[0.0, 0.0], &[], &[], 0, 0, &[], 10).status,
            QpStatus::NumericalError
        );
        assert_eq!(ws.set_hessian(3, &[1.0; 9]), QpStatus::NumericalError);
        assert_eq!(ws.set_hessian(2, &[1.0, 0.0, 0.0, 1.0]), QpStatus::Solved);
        assert_eq!(
            ws.solve(&[0.0, f64::NAN], &[], &[], 0, 0, &[], 10).status,
            QpStatus::NumericalError
        );
        assert_eq!(
            ws.solve(&[0.0], &[], &[], 0, 0, &[], 10).status,
            QpStatus::NumericalError
        );
        assert_eq!(
            ws.solve(
                &[0.0, 0.0],
                &[1.0, 1.0, 1.0, 1.0],
                &[1.0, 1.0],
                2,
                0,
                &[],
                10
            )
            .status,
            QpStatus::NumericalError
        );
    }
}
