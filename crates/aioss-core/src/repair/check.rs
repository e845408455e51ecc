//! The search's own Tier 1: its verdicts guide the search, they certify nothing.

use super::*;

impl Repairer {
    /// Tier 1 at `action` over the state in `inputs` (the trusted checker decides what it
    /// must evaluate again since its last check: within one repair the state is fixed, so
    /// mostly only the instructions that read an action variable); `self.t1.rows()` then
    /// holds each row's verdict. What the search learns here only guides it: the governor
    /// certifies whatever it executes with a check of its own.
    pub(super) fn tier1(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) -> Summary {
        let s = self.t1.check(&p.lattice, inputs, action);
        self.checked.clear();
        self.checked.extend_from_slice(action);
        self.checked_valid = true;
        s
    }

    /// Tier 1 at a discrete node's first point. Every node of a repair starts from the same
    /// real values, so the first node's evaluation is kept ([`crate::tier1::Checker::mark`]):
    /// a later node's check starts from it and evaluates again only what reads a discrete
    /// variable (12 of the warehouse's 221 action-dependent instructions).
    pub(super) fn tier1_node(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) {
        self.tier1(p, inputs, action);
        // (Without discrete variables there is one node: nothing to start from later.)
        if !self.start_valid && !self.discrete.is_empty() {
            self.t1.mark();
            self.start_valid = true;
        }
    }

    /// Does `self.t1` already hold Tier 1 at exactly `action` (same bits) for the
    /// current repair's inputs? Saves re-checking the proposal, which the feasible path has
    /// just checked, at the SQP's first iterate.
    pub(super) fn checked_at(&self, action: &[f64]) -> bool {
        self.checked_valid
            && self.checked.len() == action.len()
            && self
                .checked
                .iter()
                .zip(action)
                .all(|(x, y)| x.to_bits() == y.to_bits())
    }
}
