//! The certified fallback.

use super::*;

impl Repairer {
    /// The fallback with its Tier 1 verdict at the current state.
    pub fn fallback(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        status: SolverStatus,
        iterations: u32,
        nodes: u32,
    ) -> Repair {
        let fb = p.fallback.clone();
        self.tier1(p, inputs, &fb);
        let certified = p.lattice.rows.iter().zip(self.t1.rows()).all(|(r, c)| {
            !c.active || r.criticality != Criticality::Critical || c.status == Status::Sat
        });
        let objective = objective(p, &self.real, proposal, &fb)
            + discrete_cost(p, &self.discrete, proposal, &fb);
        Repair {
            action: fb,
            outcome: RepairOutcome::Fallback,
            status,
            distance: objective.max(0.0).sqrt(),
            active_set: Vec::new(),
            relaxed: Vec::new(),
            iterations,
            steps: 0,
            nodes,
            cost: ModeledCost(0),
            checks: self.t1.rows().to_vec(),
            certified,
        }
    }
}
