//! The certified fallback: what the repair returns when the search finds nothing within its
//! budgets, with its own Tier 1 verdict at the current state.

use crate::interval::Interval;
use crate::policy::{Criticality, Policy};
use crate::tier1::Status;

use super::search::discrete_cost;
use super::{objective, ModeledCost, Repair, RepairOutcome, Repairer, SolverStatus};

impl Repairer {
    /// The fallback for `proposal` at the state in `inputs`, with its Tier 1 verdict there;
    /// `status`, `iterations` and `nodes` are the search's.
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
        self.ws.check.check(p, inputs, &fb);
        let rows = self.ws.check.rows();
        let certified = p.lattice.rows.iter().zip(rows).all(|(r, c)| {
            !c.active || r.criticality != Criticality::Critical || c.status == Status::Sat
        });
        let objective = objective(p, &self.rows.real, proposal, &fb)
            + discrete_cost(p, &self.rows.discrete, proposal, &fb);
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
            checks: rows.to_vec(),
            certified,
        }
    }
}
