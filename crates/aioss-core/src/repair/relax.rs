//! The CRE's relaxation stages and what each accepts.

use super::*;

impl Repairer {
    /// Are the current checks acceptable with rows of criticality `< level_max` relaxable?
    /// Returns the relaxed rows with their slack, or `None`.
    pub(super) fn acceptable(
        &self,
        p: &Policy,
        relax_below: Criticality,
        allow_relax: bool,
    ) -> Option<Vec<(usize, f64)>> {
        let mut relaxed = Vec::new();
        for (i, (row, c)) in p.lattice.rows.iter().zip(self.t1.rows()).enumerate() {
            if !c.active || c.status == Status::Sat {
                continue;
            }
            let tol = p
                .constraints
                .get(row.constraint)
                .map_or(0.0, |k| k.tolerance);
            let relaxable = allow_relax
                && row.criticality < relax_below
                && row.criticality != Criticality::Critical
                && matches!(row.sense, Sense::Le | Sense::Lt)
                && !c.margin.is_invalid()
                && c.margin.lo >= -tol;
            if !relaxable {
                return None;
            }
            relaxed.push((i, -c.margin.lo));
        }
        Some(relaxed)
    }

    /// Can no point of any discrete node pass at `stage`? Contracts the box of every action
    /// (real and discrete, each over its whole range) with the state box over the rows the
    /// stage requires: every active row SAT, except that a row the stage may relax needs
    /// only a margin of at least `-tolerance` (as in `acceptable`). `true` is a proof (see
    /// [`crate::contract`]); `false` says nothing.
    pub(super) fn stage_impossible(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        stage: Option<Criticality>,
    ) -> bool {
        self.cbox.clear();
        self.cbox.extend_from_slice(inputs);
        // Every value the search can try lies in the range (enum indices and booleans
        // have theirs encoded).
        for a in &p.actions {
            if let Some(s) = self.cbox.get_mut(a.slot as usize) {
                *s = Interval::new(a.min, a.max);
            }
        }
        for (row, need) in p.lattice.rows.iter().zip(&mut self.cneed) {
            *need = Some(-stage_tolerance(p, row, stage));
        }
        self.contractor
            .empty(&p.lattice, &self.cbox, &self.cneed, CONTRACT_ROUNDS)
    }
}

/// How far below 0 a row's margin may go in `stage`: its `tolerance` when the stage may
/// relax it (a non-critical `<=` / `<` row below the stage's level), else 0.
pub(super) fn stage_tolerance(
    p: &Policy,
    row: &crate::lattice::Row,
    stage: Option<Criticality>,
) -> f64 {
    let relaxable = stage.is_some_and(|below| row.criticality < below)
        && row.criticality != Criticality::Critical
        && matches!(row.sense, Sense::Le | Sense::Lt);
    if relaxable {
        p.constraints
            .get(row.constraint)
            .map_or(0.0, |k| k.tolerance)
    } else {
        0.0
    }
}

/// `Σ L1_PENALTY · weight · slack` over relaxed rows: the penalty the CRE's QP minimises.
pub(super) fn slack_penalty(p: &Policy, relaxed: &[(usize, f64)]) -> f64 {
    relaxed.iter().map(|&(i, s)| slack_price(p, i) * s).sum()
}

/// The price of a unit of row `i`'s slack in the CRE's QP: `L1_PENALTY · weight`.
pub(super) fn slack_price(p: &Policy, i: usize) -> f64 {
    let w = row_constraint(p, i).map_or(1.0, |c| c.weight);
    L1_PENALTY * w.max(1e-6)
}
