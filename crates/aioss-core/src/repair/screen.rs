//! Screening: the rows no real action in the box can break, and hopeless nodes.

use super::*;

impl Repairer {
    /// `self.work`: the state of `inputs` with `action` in the action slots, each real
    /// action variable over its whole `[min, max]` when `boxed`.
    pub(super) fn fill_work(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        action: &[f64],
        boxed: bool,
    ) {
        self.work.clear();
        self.work.extend_from_slice(inputs);
        for (a, x) in p.actions.iter().zip(action) {
            if let Some(s) = self.work.get_mut(a.slot as usize) {
                *s = if boxed && a.ty == VarType::Real {
                    Interval::new(a.min, a.max)
                } else {
                    Interval::point(*x)
                };
            }
        }
    }

    /// Which rows no real action in the box of the action ranges can break (into
    /// `self.screened`), and whether some row fails for every real action by more than any
    /// stage may relax (into `self.hopeless`). Needs `self.t1` checked at
    /// `action`, a point of the box.
    ///
    /// * A row that reads no real action variable is constant over the box: its point check
    ///   decides.
    /// * An affine row: its linear bound over the box, from its (constant) gradient.
    /// * A curved row: Tier 1 over the box, evaluating only those rows' instructions.
    ///
    /// A wrong screen could only cost optimality, never safety (Tier 1 still checks every
    /// row of every candidate), and it corrects itself: a screened row that an iterate breaks
    /// is no longer SAT, and rows that are not SAT always enter the QP.
    pub(super) fn screen(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) {
        if !self.box_ops.is_empty() {
            self.fill_work(p, inputs, action, true);
            let lat = &p.lattice;
            // Within one repair only the discrete values change the box evaluation.
            let ops = if self.box_valid {
                &self.box_disc_ops
            } else {
                &self.box_ops
            };
            lat.tape.eval_subset(ops, &self.work, &mut self.box_slots);
            self.box_valid = true;
            lat.read_rows(&self.box_slots, &mut self.box_checks);
        }
        self.hopeless = false;
        self.hopeless_rows.clear();
        let scale = action.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for i in 0..p.lattice.rows.len() {
            let (Some(row), Some(c)) = (p.lattice.rows.get(i), self.t1.rows().get(i).copied())
            else {
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
            let (screen, hopeless) = if !self.row_reads_real.get(i).copied().unwrap_or(false) {
                let guard_moves = self.guard_moves.get(i).copied().unwrap_or(true);
                (ok(&c), fails(&c) && !guard_moves)
            } else if self.affine.get(i).copied().unwrap_or(false) {
                // The exact bound lies in [lo − reach, lo] (`u` is in the box), so the kept
                // `reach` of the row decides most rows without the gradient: far from their
                // boundary (`lo − reach > 0`) they hold over the box; with `lo ≤ reach/2`
                // they are left in the QP without computing the bound (some of those hold
                // over the box too, but leaving a row in costs a QP row, never an answer,
                // and computing every bound cost the dense repair bench 1.4 µs).
                let reach = self.reach.get(i).copied().unwrap_or(f64::NAN);
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
                    if let Some(s) = self.screened.get_mut(i) {
                        *s = q;
                    }
                    continue;
                }
                let mut bound = f64::NEG_INFINITY;
                if c.active && c.status == Status::Sat {
                    if let Some(lo) = self.model(p, i, c) {
                        let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
                        bound = lo;
                        for (&(j, _), &g) in vars.iter().zip(&self.gtmp) {
                            let (Some(&ai), true) = (self.real.get(j), g.is_finite()) else {
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
                (bound > 1e-9 * scale, false)
            } else {
                let b = self.box_checks.get(i).copied().unwrap_or_default();
                let slots = &self.box_slots;
                let surely = row.guard.is_none_or(|g| {
                    slots
                        .get(g as usize)
                        .is_some_and(|x| x.truth() == crate::interval::Truth::True)
                });
                (ok(&b), fails(&b) && surely)
            };
            if let Some(s) = self.screened.get_mut(i) {
                *s = screen;
            }
            if hopeless {
                self.hopeless = true;
                self.hopeless_rows.push(i);
            }
        }
    }
}
