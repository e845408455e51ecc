//! Monitors in the decision flow (DESIGN.md, "Guarantees, monitors, failure modes"):
//! detectors of the conditions the guarantees rest on, at the proposal's own state. Cheap,
//! deterministic, and read-only: they name failure modes, the flow decides what follows.

use crate::failure::FailureMode;
use crate::interval::Interval;
use crate::policy::Policy;
use crate::tier1::Checker;

use super::decision::{fmt_margin, fmt_num};
use super::{Notes, Proposal, StateValue};

/// What the monitors found at one proposal.
#[derive(Clone, Debug, Default)]
pub(super) struct Findings {
    /// States outside their declared range (index into `Policy::states`, the box given).
    pub out_of_range: Vec<(usize, Interval)>,
    /// Barrier rows whose safe set the state box may have left (row index, `h(x)`).
    pub outside: Vec<(usize, Interval)>,
}

impl Findings {
    /// Is G2 (forward invariance) suspended by what was found?
    pub fn suspends_g2(&self) -> bool {
        !self.outside.is_empty() || !self.out_of_range.is_empty()
    }
    /// Is G3 or G4 suspended by what was found?
    pub fn suspends_g3_g4(&self) -> bool {
        !self.out_of_range.is_empty()
    }
    /// Does what was found send the decision for review (audit QUESTIONABLE)?
    pub fn questions_the_audit(&self) -> bool {
        self.suspends_g2()
    }
}

/// Run the detectors on `prop`, whose Tier 1 check `t1` holds.
pub(super) fn observe(p: &Policy, prop: &Proposal, t1: &Checker) -> Findings {
    Findings {
        out_of_range: out_of_range(p, prop),
        outside: outside_safe_sets(p, t1),
    }
}

/// `excessive_uncertainty` (issue 18, item 11): a state whose value lies outside the range
/// the policy declares for it, or whose box is wider than that whole range. A state outside
/// its range was never certified against (the fallback's certificate, the policy author's
/// intent): the decision is made, Tier 1 checks the box as given, and a human reviews it.
/// A box whose value is inside and that crosses a bound only by its noise is not a fault.
fn out_of_range(p: &Policy, prop: &Proposal) -> Vec<(usize, Interval)> {
    p.states
        .iter()
        .zip(&prop.state)
        .enumerate()
        .filter_map(|(k, (s, v))| match v {
            Some(StateValue::Num(x)) => {
                let outside = x.is_invalid()
                    || x.mid() < s.min
                    || x.mid() > s.max
                    || x.width() > s.max - s.min;
                outside.then_some((k, *x))
            }
            _ => None,
        })
        .collect()
}

/// `left_safe_set`: G2 holds only from inside the safe set, so a barrier's `h(x)` must be
/// certainly non-negative over the whole state box.
fn outside_safe_sets(p: &Policy, t1: &Checker) -> Vec<(usize, Interval)> {
    (0..p.lattice.rows.len())
        .filter_map(|i| t1.safe_set(&p.lattice, i).map(|h| (i, h)))
        .filter(|(_, h)| h.is_invalid() || h.lo < 0.0)
        .collect()
}

/// Name what was found, with a reason each.
pub(super) fn report(p: &Policy, f: &Findings, notes: &mut Notes) {
    for (i, h) in &f.outside {
        let name = p.lattice.rows.get(*i).map_or("?", |r| r.name.as_str());
        notes.reasons.push(format!(
            "the state may be outside the safe set of barrier `{name}` (h(x) in {}): forward invariance (G2) is suspended",
            fmt_margin(*h)
        ));
    }
    if !f.outside.is_empty() {
        notes.modes.add(FailureMode::LeftSafeSet);
    }
    for (k, x) in &f.out_of_range {
        if let Some(s) = p.states.get(*k) {
            notes.reasons.push(format!(
                "state `{}` = {} is outside its declared range [{}, {}]: the decision is sent for review and G2, G3 and G4 are suspended",
                s.name,
                fmt_margin(*x),
                fmt_num(s.min),
                fmt_num(s.max)
            ));
        }
    }
    if !f.out_of_range.is_empty() {
        notes.modes.add(FailureMode::ExcessiveUncertainty);
    }
}
