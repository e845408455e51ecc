//! Per-policy facts about the rows, computed once.

use super::*;

/// The real variables (indices into `real`) each row pins to zero: a `<=` row whose
/// margin is `0 − Σ (k_i x_i)²`, each `k_i` a non-zero constant (`auth-arm`'s
/// `dq1^2 + dq2^2 + dq3^2 + dq4^2 <= 0`), holds exactly where every `x_i` is 0. Empty for
/// every other row.
///
/// Why: such a row's margin is flat at its only feasible point, so its linear model asks
/// each step for half the remaining distance, and once the step is damped (another row
/// oscillating) it crawls: on the warehouse stream, `auth-arm` was the row left violated in
/// a quarter of the nodes that failed without being hopeless, and those failures made
/// repairable proposals BLOCK. Its exact feasible set is linear, `x_i = 0`, so the QP gets
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

/// `Σ |g_j| (max_j − min_j)` over a row's real variables `vars` with gradient `grad`: how far
/// an affine row's margin can move over the action box.
pub(super) fn reach_of(p: &Policy, real: &[usize], vars: &[(usize, u32)], grad: &[f64]) -> f64 {
    vars.iter()
        .zip(grad)
        .map(|(&(j, _), &g)| {
            real.get(j)
                .and_then(|&ai| p.actions.get(ai))
                .map_or(f64::INFINITY, |a| g.abs() * (a.max - a.min))
        })
        .sum()
}

/// `t^2` or `t * t`.
pub(super) fn is_square(i: Option<Inst>) -> bool {
    matches!(i, Some(Inst::PowI(_, 2))) || matches!(i, Some(Inst::Bin(Op2::Mul, a, b)) if a == b)
}
