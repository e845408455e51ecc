//! What the repairer counts: over its life ([`RepairInfo`], for tests and profiles) and
//! within one search (`SearchCounts`, which bounds the search's work and reports it in the
//! [`Repair`](super::Repair)).

use super::cost::{qp_cost, ModeledCost, COST_BASE_NS};

/// Counters over a [`Repairer`](super::Repairer)'s life, for tests and profiles: no answer
/// depends on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairInfo {
    /// SQP steps that took their QP rows from the kept QP instead of building them.
    pub kept_rows_used: u64,
    /// Searches the contraction ended before their relaxation stages (every stage ruled
    /// out).
    pub stages_ruled_out: u64,
    /// Infeasible relaxing QPs retried with only the slack columns their certificate names.
    pub targeted_retries: u64,
}

/// The running counts of one search (reset when a repair starts searching).
#[derive(Debug)]
pub(super) struct SearchCounts {
    /// SQP iterations plus QP iterations so far.
    pub(super) iterations: u32,
    /// Discrete nodes examined so far.
    pub(super) nodes: u32,
    /// SQP steps the running stage may still take (its share of the repair's budget).
    pub(super) stage_left: u32,
    /// The modeled cost so far (ns of the reference machine).
    cost: u64,
    /// The modeled cost at which the search stops (`u64::MAX` when the deadline is not
    /// enforced).
    cost_cap: u64,
}

impl Default for SearchCounts {
    fn default() -> Self {
        SearchCounts {
            iterations: 0,
            nodes: 0,
            stage_left: 0,
            cost: 0,
            cost_cap: u64::MAX,
        }
    }
}

impl SearchCounts {
    /// A new search, which must stop at the modeled cost `cap` (`None`: no deadline).
    pub(super) fn begin(&mut self, cap: Option<ModeledCost>) {
        *self = SearchCounts {
            cost: COST_BASE_NS,
            cost_cap: cap.map_or(u64::MAX, |c| c.0),
            ..SearchCounts::default()
        };
    }

    /// Add `ns` to the modeled cost.
    pub(super) fn charge(&mut self, ns: u64) {
        self.cost = self.cost.saturating_add(ns);
    }

    /// Count a QP solve with `n` columns, `m` rows and `iterations` active-set iterations.
    pub(super) fn charge_qp(&mut self, n: usize, m: usize, iterations: u32) {
        self.iterations = self.iterations.saturating_add(iterations);
        self.cost = self.cost.saturating_add(qp_cost(n, m, iterations));
    }

    /// Has the search reached its modeled deadline?
    pub(super) fn past_deadline(&self) -> bool {
        self.cost >= self.cost_cap
    }

    /// The modeled cost so far.
    pub(super) fn cost(&self) -> ModeledCost {
        ModeledCost(self.cost)
    }
}
