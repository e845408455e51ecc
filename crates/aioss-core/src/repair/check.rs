//! The search's own Tier 1, and what it keeps between checks of one repair.

use crate::interval::Interval;
use crate::policy::Policy;
use crate::tier1::{Checker, RowCheck, Summary};

use super::workspace::Memo;

/// The search's Tier 1 ([`Checker`]): its verdicts guide the search, they certify nothing
/// (the governor certifies whatever it executes with a check of its own).
#[derive(Debug)]
pub(super) struct SearchCheck {
    t1: Checker,
    /// The action `t1` last checked, for the current repair's inputs (stale at the start of
    /// every repair).
    at: Memo<Vec<f64>>,
    /// Does `t1` hold a mark ([`Checker::mark`]) of the current repair's first node?
    first_node_marked: bool,
}

impl SearchCheck {
    /// A checker for `p`'s lattice.
    pub(super) fn new(p: &Policy) -> Self {
        SearchCheck {
            t1: Checker::new(&p.lattice),
            at: Memo::stale(Vec::with_capacity(p.actions.len())),
            first_node_marked: false,
        }
    }

    /// A new repair: its inputs may differ from the last one's.
    pub(super) fn begin_repair(&mut self) {
        self.at.invalidate();
        self.first_node_marked = false;
    }

    /// Tier 1 at `action` over the state in `inputs` (the trusted checker decides what it
    /// must evaluate again since its last check: within one repair the state is fixed, so
    /// mostly only the instructions that read an action variable); [`SearchCheck::rows`]
    /// then holds each row's verdict.
    pub(super) fn check(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) -> Summary {
        let s = self.t1.check(&p.lattice, inputs, action);
        let at = self.at.refill();
        at.clear();
        at.extend_from_slice(action);
        s
    }

    /// Tier 1 at a discrete node's first point. Every node of a repair starts from the same
    /// real values, so the first node's evaluation is kept ([`Checker::mark`]): a later
    /// node's check starts from it and evaluates again only what reads a discrete variable
    /// (a small part of the action-dependent instructions; `BENCHMARKS.md`, "Tier 2's
    /// structure", has the warehouse's count). `has_discrete`: does the policy have a
    /// discrete action variable? (Without one there is one node: nothing to start from
    /// later.)
    pub(super) fn check_node(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        action: &[f64],
        has_discrete: bool,
    ) {
        self.check(p, inputs, action);
        if !self.first_node_marked && has_discrete {
            self.t1.mark();
            self.first_node_marked = true;
        }
    }

    /// Does the checker already hold Tier 1 at exactly `action` (same bits) for the current
    /// repair's inputs? Saves re-checking the proposal, which the feasible path has just
    /// checked, at the SQP's first iterate.
    pub(super) fn checked_at(&self, action: &[f64]) -> bool {
        self.at.get().is_some_and(|at| {
            at.len() == action.len()
                && at
                    .iter()
                    .zip(action)
                    .all(|(x, y)| x.to_bits() == y.to_bits())
        })
    }

    /// Each row's verdict at the point last checked.
    pub(super) fn rows(&self) -> &[RowCheck] {
        self.t1.rows()
    }

    /// The tape's slots at the point last checked.
    pub(super) fn slots(&self) -> &[Interval] {
        self.t1.slots()
    }
}
