//! Linearisation: how each row enters the SQP's QP (its [`Lin`]), and its linear model
//! at an iterate — the constant term from Tier 1's margin interval (the robust
//! tightening) and the gradient by a reverse sweep over the row's cone.
//!
//! The analyses here run once per policy, for [`Rows`]: which rows are affine in the real
//! action variables (their gradient is then constant), which are a disjunction of
//! comparisons, and which pin variables to zero.

use crate::expr::typeck::{Func, Op2};
use crate::interval::Interval;
use crate::policy::{Policy, Sense};
use crate::tape::{Inst, Tape};
use crate::tier1::{RowCheck, Status};

use super::rows::Rows;

/// The linearisation's working memory.
#[derive(Debug)]
pub(super) struct Linearise {
    /// Adjoints of the reverse sweep (one per tape instruction).
    pub(super) adj: Vec<f64>,
    /// The gradient of the row last modeled, aligned with its `row_vars`.
    pub(super) grad: Vec<f64>,
}

impl Linearise {
    /// Working memory for a tape of `tape_len` instructions and `nr` real variables.
    pub(super) fn new(tape_len: usize, nr: usize) -> Self {
        Linearise {
            adj: vec![0.0; tape_len],
            grad: Vec::with_capacity(nr),
        }
    }

    /// The linear model of row `i` at the point last checked (its Tier 1 values are in
    /// `slots`, its verdict is `c`): returns the constant term `lo` and leaves the gradient
    /// in [`Linearise::grad`], aligned with `rows.row_vars[i]`, of a quantity that must be `≥ 0` (`> 0`
    /// for strict rows; the caller adds the back-off `δ`). `None`: no linear model.
    ///
    /// * `<=` / `<`: the margin, with `lo` its Tier 1 lower bound (the robust tightening).
    /// * `!=`: `d = lhs − rhs` must stay away from 0 on one side: the side the current
    ///   point's midpoint is on (`d ≥ δ` or `−d ≥ δ`). A greedy choice: the nearest feasible
    ///   point may be on the other side, and then the repair can miss it (never unsafe:
    ///   Tier 1 decides).
    /// * A boolean row that is a disjunction (`or`) of comparisons, when it does not hold:
    ///   the comparison reading real action variables whose model margin is largest at the
    ///   current point (the one closest to holding, first in row order on ties). Greedy in
    ///   the same way. A disjunction that holds is left out of the model.
    /// * `==` and other boolean rows: none (see the module documentation).
    pub(super) fn model(
        &mut self,
        rows: &Rows,
        p: &Policy,
        slots: &[Interval],
        i: usize,
        c: RowCheck,
    ) -> Option<f64> {
        let row = p.lattice.rows.get(i)?;
        let vars = rows.row_vars.get(i).map_or(&[][..], Vec::as_slice);
        let cone = rows.grad_cone.get(i).map_or(&[][..], Vec::as_slice);
        let tape = &p.lattice.tape;
        let slot = |k: u32| slots.get(k as usize).copied().unwrap_or(Interval::INVALID);
        self.grad.clear();
        match rows.lin.get(i)? {
            Lin::Margin => {
                if c.margin.is_invalid() || !c.margin.lo.is_finite() {
                    return None;
                }
                // An affine row's gradient is the same at every point: `Rows` computed it.
                if rows.affine.get(i).copied().unwrap_or(false) {
                    self.grad.extend_from_slice(rows.grad.get(i)?);
                } else {
                    tape.grad_reverse(slots, cone, row.margin, &mut self.adj);
                    let adj = &self.adj;
                    self.grad.extend(
                        vars.iter()
                            .map(|&(_, inst)| adj.get(inst as usize).copied().unwrap_or(0.0)),
                    );
                }
                Some(c.margin.lo)
            }
            Lin::Ne(d) => {
                let di = slot(*d);
                if di.is_invalid() || !di.lo.is_finite() || !di.hi.is_finite() {
                    return None;
                }
                let (sign, lo) = if di.mid() >= 0.0 {
                    (1.0, di.lo)
                } else {
                    (-1.0, -di.hi)
                };
                tape.grad_reverse(slots, cone, *d, &mut self.adj);
                let adj = &self.adj;
                self.grad.extend(
                    vars.iter()
                        .map(|&(_, inst)| sign * adj.get(inst as usize).copied().unwrap_or(0.0)),
                );
                Some(lo)
            }
            Lin::Or(leaves) => {
                // A disjunction that holds (perhaps by a disjunct that reads no real action
                // variable) constrains nothing; if the move breaks it, the next iterate
                // linearises it.
                if c.status == Status::Sat {
                    return None;
                }
                // The leaf `a <= b` (or `a < b`) with the largest model margin `b.lo − a.hi`.
                let mut best: Option<(f64, u32, u32)> = None;
                for &(a, b) in leaves {
                    let (ai, bi) = (slot(a), slot(b));
                    let m = bi.lo - ai.hi;
                    if m.is_finite() && best.is_none_or(|(bm, _, _)| m > bm) {
                        best = Some((m, a, b));
                    }
                }
                let (lo, a, b) = best?;
                tape.grad_reverse(slots, cone, b, &mut self.adj);
                self.grad.extend(
                    vars.iter()
                        .map(|&(_, inst)| self.adj.get(inst as usize).copied().unwrap_or(0.0)),
                );
                tape.grad_reverse(slots, cone, a, &mut self.adj);
                for (g, &(_, inst)) in self.grad.iter_mut().zip(vars) {
                    *g -= self.adj.get(inst as usize).copied().unwrap_or(0.0);
                }
                Some(lo)
            }
            Lin::None => None,
        }
    }
}

/// How a row enters the SQP's linear model.
#[derive(Clone, Debug)]
pub(super) enum Lin {
    /// `<=` / `<`: the margin.
    Margin,
    /// `!=`: the slot of `lhs − rhs`.
    Ne(u32),
    /// A boolean row that is an `or` of comparisons: the `(a, b)` of each comparison
    /// `a <= b` / `a < b` that reads a real action variable.
    Or(Vec<(u32, u32)>),
    /// `==` and any other boolean row: no linear model.
    None,
}

/// The [`Lin`] of every row.
pub(super) fn lin_kinds(p: &Policy, real: &[usize]) -> Vec<Lin> {
    let tape = &p.lattice.tape;
    let insts = tape.insts();
    let real_insts: Vec<u32> = real
        .iter()
        .filter_map(|&ai| p.lattice.action_inst.get(ai).copied().flatten())
        .collect();
    let reads_real = |k: u32| {
        let cone = tape.cone(k);
        real_insts.iter().any(|r| cone.binary_search(r).is_ok())
    };
    p.lattice
        .rows
        .iter()
        .map(|r| match r.sense {
            Sense::Le | Sense::Lt => Lin::Margin,
            Sense::Ne => match insts.get(r.margin as usize) {
                Some(Inst::Un(Func::Abs, d)) => Lin::Ne(*d),
                _ => Lin::None,
            },
            Sense::Eq => Lin::None,
            Sense::Bool => {
                let mut leaves = Vec::new();
                let mut stack = vec![r.margin];
                let mut ok = true;
                while let Some(k) = stack.pop() {
                    match insts.get(k as usize) {
                        Some(Inst::Bin(Op2::Or, a, b)) => {
                            stack.push(*b);
                            stack.push(*a);
                        }
                        Some(Inst::Bin(Op2::Le | Op2::Lt, a, b)) => {
                            if reads_real(*a) || reads_real(*b) {
                                leaves.push((*a, *b));
                            }
                        }
                        // Another disjunct (`mode == 'go'`, a boolean variable): left to
                        // the discrete search; if it holds, the row is SAT anyway.
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                if ok && !leaves.is_empty() {
                    Lin::Or(leaves)
                } else {
                    Lin::None
                }
            }
        })
        .collect()
}

/// Which rows have a margin affine in the real action variables with constant coefficients:
/// sums and differences of constants, terms that read no real action variable (state,
/// `prev.`, discrete actions), and real action variables times constants. For those rows
/// [`Tape::grad_reverse`] returns the same gradient at every point (it reads only the
/// midpoints of constants), so the repairer computes it once. Anything else (products of
/// two terms that read actions, powers, functions, `if`) is "not affine", which only costs
/// speed.
pub(super) fn affine_rows(p: &Policy, real: &[usize]) -> Vec<bool> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum K {
        /// No input at all.
        Const,
        /// Reads inputs, but no real action variable.
        Free,
        /// Affine in the real action variables, constant coefficients.
        Affine,
        /// Anything else.
        Other,
    }
    let tape: &Tape = &p.lattice.tape;
    let real_slots: Vec<u32> = real
        .iter()
        .filter_map(|&ai| p.actions.get(ai).map(|a| a.slot))
        .collect();
    let mut k: Vec<K> = Vec::with_capacity(tape.len());
    let get = |k: &[K], i: u32| k.get(i as usize).copied().unwrap_or(K::Other);
    let free = |x: K| matches!(x, K::Const | K::Free);
    let both_free = |x: K, y: K| {
        if x == K::Const && y == K::Const {
            K::Const
        } else if free(x) && free(y) {
            K::Free
        } else {
            K::Other
        }
    };
    for inst in tape.insts() {
        let c = match *inst {
            Inst::Const(_) => K::Const,
            Inst::Input(s) => {
                if real_slots.contains(&s) {
                    K::Affine
                } else {
                    K::Free
                }
            }
            Inst::Un(f, a) => {
                let x = get(&k, a);
                if f == Func::Neg {
                    x
                } else {
                    both_free(x, x)
                }
            }
            Inst::PowI(a, n) => {
                let x = get(&k, a);
                if n == 1 {
                    x
                } else {
                    both_free(x, x)
                }
            }
            Inst::Bin(o, a, b) => {
                let (x, y) = (get(&k, a), get(&k, b));
                match o {
                    Op2::Add | Op2::Sub => {
                        if x == K::Other || y == K::Other {
                            K::Other
                        } else if x == K::Affine || y == K::Affine {
                            K::Affine
                        } else {
                            both_free(x, y)
                        }
                    }
                    Op2::Mul => match (x, y) {
                        (K::Affine, K::Const) | (K::Const, K::Affine) => K::Affine,
                        _ => both_free(x, y),
                    },
                    Op2::Div => match (x, y) {
                        (K::Affine, K::Const) => K::Affine,
                        _ => both_free(x, y),
                    },
                    _ => both_free(x, y),
                }
            }
            Inst::If(c, a, b) => {
                let (x, y, z) = (get(&k, c), get(&k, a), get(&k, b));
                if free(x) && free(y) && free(z) {
                    K::Free
                } else {
                    K::Other
                }
            }
        };
        k.push(c);
    }
    p.lattice
        .rows
        .iter()
        .map(|r| matches!(r.sense, Sense::Le | Sense::Lt) && get(&k, r.margin) == K::Affine)
        .collect()
}

/// The real variables (indices into `real`) each row pins to zero: a `<=` row whose
/// margin is `0 − Σ (k_i x_i)²`, each `k_i` a non-zero constant (`auth-arm`'s
/// `dq1^2 + dq2^2 + dq3^2 + dq4^2 <= 0`), holds exactly where every `x_i` is 0. Empty for
/// every other row.
///
/// Why: such a row's margin is flat at its only feasible point, so its linear model asks
/// each step for half the remaining distance, and once the step is damped (another row
/// oscillating) it crawls: on the warehouse stream, `auth-arm` was often the row left
/// violated in the nodes that failed without being hopeless (`BENCHMARKS.md`, "Tier 2's
/// structure"), and those failures made repairable proposals BLOCK. Its exact feasible set is linear, `x_i = 0`, so the QP gets
/// that instead of the model.
pub(super) fn flat_rows(p: &Policy, real: &[usize]) -> Vec<Vec<usize>> {
    let insts = p.lattice.tape.insts();
    let inst = |k: u32| insts.get(k as usize).copied();
    let nonzero = |k: u32| matches!(inst(k), Some(Inst::Const(c)) if c.lo > 0.0 || c.hi < 0.0);
    // The column of `x`, `-x`, `k * x` or `x * k` (x a real action variable).
    let column = |mut k: u32| -> Option<usize> {
        loop {
            match inst(k)? {
                Inst::Input(s) => {
                    return real
                        .iter()
                        .position(|&ai| p.actions.get(ai).is_some_and(|a| a.slot == s))
                }
                Inst::Un(Func::Neg, a) => k = a,
                Inst::Bin(Op2::Mul, a, b) if nonzero(a) => k = b,
                Inst::Bin(Op2::Mul, a, b) if nonzero(b) => k = a,
                _ => return None,
            }
        }
    };
    p.lattice
        .rows
        .iter()
        .map(|r| {
            let Some(Inst::Bin(Op2::Sub, rhs, lhs)) = inst(r.margin) else {
                return Vec::new();
            };
            let zero = matches!(inst(rhs), Some(Inst::Const(c)) if c.lo == 0.0 && c.hi == 0.0);
            if r.sense != Sense::Le || !zero {
                return Vec::new();
            }
            let mut cols = Vec::new();
            let mut stack = vec![lhs];
            while let Some(k) = stack.pop() {
                let col = match inst(k) {
                    Some(Inst::Bin(Op2::Add, a, b)) => {
                        stack.push(a);
                        stack.push(b);
                        continue;
                    }
                    Some(Inst::PowI(t, 2) | Inst::Bin(Op2::Mul, t, _)) if is_square(inst(k)) => {
                        column(t)
                    }
                    _ => None,
                };
                match col {
                    Some(j) => cols.push(j),
                    None => return Vec::new(),
                }
            }
            cols.sort_unstable();
            cols.dedup();
            cols
        })
        .collect()
}

/// `t^2` or `t * t`.
fn is_square(i: Option<Inst>) -> bool {
    matches!(i, Some(Inst::PowI(_, 2))) || matches!(i, Some(Inst::Bin(Op2::Mul, a, b)) if a == b)
}
