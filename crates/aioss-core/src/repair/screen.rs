//! Screening: once per discrete node, the rows that no real action in the box of the
//! action ranges can break (left out of the node's QPs), and whether some row fails for
//! every real action by more than any stage may relax (the node is hopeless).
//!
//! * A row that reads no real action variable is constant over the box: its point check
//!   decides.
//! * An affine row: its linear bound over the box, from its (constant) gradient.
//! * A curved row: Tier 1 over the box, evaluating only those rows' instructions.
//!
//! A wrong screen could only cost optimality, never safety (Tier 1 still checks every
//! row of every candidate), and it corrects itself: a screened row that an iterate breaks
//! is no longer SAT, and rows that are not SAT always enter the QP.

use crate::interval::{Interval, Truth};
use crate::policy::{Criticality, Policy, Sense, VarType};
use crate::tier1::{RowCheck, Status};

use super::check::SearchCheck;
use super::linearise::Linearise;
use super::rows::Rows;
use super::workspace::Memo;

/// Screening's state for the running node.
#[derive(Debug)]
pub(super) struct Screen {
    /// The state of the current repair with each real action variable over its range.
    work: Vec<Interval>,
    /// `Rows::box_ops` evaluated over the box for the current repair's inputs, in slots
    /// of their own (stale at the start of every repair).
    slots: Memo<Vec<Interval>>,
    /// The rows over the box, read from `slots`.
    checks: Vec<RowCheck>,
    /// Per row: SAT (or inactive) over the whole real action box at the current node, so
    /// no iterate can break it and the QP leaves it out.
    pub(super) screened: Vec<bool>,
    /// The rows that make the current node hopeless: each violated, beyond any tolerance
    /// it has, for every real action (its guard surely true over the box). Empty when the
    /// node is not hopeless.
    pub(super) hopeless: Vec<usize>,
}

impl Screen {
    /// Screening state for `p`.
    pub(super) fn new(p: &Policy) -> Self {
        let nrows = p.lattice.rows.len();
        Screen {
            work: Vec::with_capacity(p.layout.len as usize),
            slots: Memo::stale(p.lattice.tape.slots()),
            checks: vec![RowCheck::default(); nrows],
            screened: vec![false; nrows],
            hopeless: Vec::new(),
        }
    }

    /// A new repair: its state may differ from the last one's.
    pub(super) fn begin_repair(&mut self) {
        self.slots.invalidate();
    }

    /// The rows over the box at the last screen (for tests).
    #[cfg(test)]
    pub(super) fn box_checks(&self) -> &[RowCheck] {
        &self.checks
    }

    /// Screen the rows at `action` (a point of the box, where `check` holds Tier 1) into
    /// `self.screened` and `self.hopeless`.
    pub(super) fn screen(
        &mut self,
        rows: &Rows,
        lin: &mut Linearise,
        check: &SearchCheck,
        p: &Policy,
        inputs: &[Interval],
        action: &[f64],
    ) {
        if !rows.box_ops.is_empty() {
            self.evaluate_box(rows, p, inputs, action);
        }
        self.hopeless.clear();
        let scale = action.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for i in 0..p.lattice.rows.len() {
            let (Some(row), Some(c)) = (p.lattice.rows.get(i), check.rows().get(i).copied()) else {
                continue;
            };
            let tol = if row.criticality != Criticality::Critical
                && matches!(row.sense, Sense::Le | Sense::Lt)
            {
                p.constraints
                    .get(row.constraint)
                    .map_or(0.0, |k| k.tolerance)
            } else {
                0.0
            };
            let fails = |c: &RowCheck| {
                c.active
                    && c.status == Status::Violated
                    && !c.margin.is_invalid()
                    && c.margin.hi < -tol
            };
            let ok = |c: &RowCheck| !c.active || c.status == Status::Sat;
            let (screen, hopeless) = if !rows.reads_real.get(i).copied().unwrap_or(false) {
                let guard_moves = rows.guard_moves.get(i).copied().unwrap_or(true);
                (ok(&c), fails(&c) && !guard_moves)
            } else if rows.affine.get(i).copied().unwrap_or(false) {
                (
                    affine_screen(rows, lin, check, p, i, c, action, scale),
                    false,
                )
            } else {
                let b = self.checks.get(i).copied().unwrap_or_default();
                let slots = self.slots.get().map_or(&[][..], Vec::as_slice);
                let surely = row.guard.is_none_or(|g| {
                    slots
                        .get(g as usize)
                        .is_some_and(|x| x.truth() == Truth::True)
                });
                (ok(&b), fails(&b) && surely)
            };
            if let Some(s) = self.screened.get_mut(i) {
                *s = screen;
            }
            if hopeless {
                self.hopeless.push(i);
            }
        }
    }

    /// Evaluate the curved rows over the box (`self.slots`, `self.checks`). Within one
    /// repair only the discrete values change the box evaluation, so after the first node
    /// only the instructions that read a discrete variable are evaluated again.
    fn evaluate_box(&mut self, rows: &Rows, p: &Policy, inputs: &[Interval], action: &[f64]) {
        self.work.clear();
        self.work.extend_from_slice(inputs);
        for (a, x) in p.actions.iter().zip(action) {
            if let Some(s) = self.work.get_mut(a.slot as usize) {
                *s = if a.ty == VarType::Real {
                    Interval::new(a.min, a.max)
                } else {
                    Interval::point(*x)
                };
            }
        }
        let lat = &p.lattice;
        let ops = if self.slots.is_current() {
            &rows.box_disc_ops
        } else {
            &rows.box_ops
        };
        let slots = self.slots.refill();
        lat.tape.eval_subset(ops, &self.work, slots);
        lat.read_rows(slots, &mut self.checks);
    }
}

/// Is affine row `i` (Tier 1 verdict `c` at `action`) SAT over the whole box?
///
/// The exact bound lies in `[lo − reach, lo]` (`u` is in the box), so the row's `reach`
/// decides most rows without the gradient: far from their boundary (`lo − reach > 0`) they
/// hold over the box; with `lo ≤ reach/2` they are left in the QP without computing the
/// bound (some of those hold over the box too, but leaving a row in costs a QP row, never
/// an answer, and computing every bound cost more than it saved: `BENCHMARKS.md`, "Tier
/// 2's structure").
#[expect(
    clippy::too_many_arguments,
    reason = "the row's facts, its verdict and the point"
)]
fn affine_screen(
    rows: &Rows,
    lin: &mut Linearise,
    check: &SearchCheck,
    p: &Policy,
    i: usize,
    c: RowCheck,
    action: &[f64],
    scale: f64,
) -> bool {
    let reach = rows.reach.get(i).copied().unwrap_or(f64::NAN);
    let lo = c.margin.lo;
    let quick = if !(c.active && c.status == Status::Sat) {
        Some(!c.active)
    } else if lo - 0.5 * reach <= 1e-9 * scale {
        Some(false)
    } else if lo - reach > 1e-9 * scale {
        Some(true)
    } else {
        None
    };
    if let Some(q) = quick {
        return q;
    }
    let mut bound = f64::NEG_INFINITY;
    if c.active && c.status == Status::Sat {
        if let Some(lo) = lin.model(rows, p, check.slots(), i, c) {
            let vars = rows.row_vars.get(i).map_or(&[][..], Vec::as_slice);
            bound = lo;
            for (&(j, _), &g) in vars.iter().zip(&lin.grad) {
                let (Some(&ai), true) = (rows.real.get(j), g.is_finite()) else {
                    bound = f64::NEG_INFINITY;
                    break;
                };
                let (Some(a), Some(&uj)) = (p.actions.get(ai), action.get(ai)) else {
                    continue;
                };
                bound += (g * (a.min - uj)).min(g * (a.max - uj));
            }
        }
    }
    bound > 1e-9 * scale
}
