//! The fallback's certificate, made when a policy loads: Tier 1 over the box of every
//! declared range (see [`crate::policy::Policy::range_inputs`]).

use crate::error::{ErrorKind, PolicyError};
use crate::governor::Proposal;
use crate::policy::{Criticality, Policy};
use crate::tier1::interval::Interval;
use crate::tier1::{Checker, Status};

/// Is the fallback certified at `prop`'s state whatever the governor's own state is: its
/// budgets and the agent's `prev.` taken over their whole declared ranges? What a server
/// worker that cannot reach the governor (the 503 of a full queue) may tell an agent to
/// execute: the load-time certificate covers the declared ranges, but not a barrier row
/// (certified at decision time) nor a state outside its range.
pub fn certified_at(p: &Policy, prop: &Proposal) -> bool {
    let range = p.range_inputs();
    let at = |slot: u32| {
        range
            .get(slot as usize)
            .copied()
            .unwrap_or(Interval::ENTIRE)
    };
    let budgets: Vec<Interval> = p.budgets.iter().map(|b| at(b.slot)).collect();
    let mut inputs = Vec::new();
    let _ = crate::tier1::inputs::assemble(p, prop, &p.fallback, &budgets, &mut inputs);
    // INVARIANT (whole-prev): `prev.` is not known here, so each is its declared range.
    for a in &p.actions {
        if let Some(s) = inputs.get_mut(a.prev_slot as usize) {
            *s = at(a.prev_slot);
        }
    }
    let mut checker = Checker::new(&p.lattice);
    checker.check(&p.lattice, &inputs, &p.fallback);
    checker.certify(&p.lattice).is_ok()
}

/// Certify the fallback: every critical row (except barrier and Lyapunov rows, certified at
/// decision time) must be SAT over [`Policy::range_inputs`]. One error per failing row.
pub fn certify_fallback(p: &Policy) -> Vec<PolicyError> {
    let inputs = p.range_inputs();
    let mut checker = Checker::new(&p.lattice);
    checker.check(&p.lattice, &inputs, &p.fallback);
    let mut errors = Vec::new();
    for (row, chk) in p.lattice.rows.iter().zip(checker.rows()) {
        if row.criticality != Criticality::Critical
            || row.kind.certified_at_decision_time()
            || !chk.active
        {
            continue;
        }
        if chk.status == Status::Sat {
            continue;
        }
        let Some(c) = p.constraints.get(row.constraint) else {
            continue;
        };
        let span = c
            .rows
            .iter()
            .find(|r| r.name == row.name)
            .map_or(c.span, |r| r.span);
        let how = match chk.status {
            Status::Violated => "violates",
            _ => "may violate",
        };
        let reads: Vec<String> = {
            let mut names = Vec::new();
            let mut note = |slot: u32| {
                for s in &p.states {
                    if s.slot == Some(slot) && !names.contains(&s.name) {
                        names.push(s.name.clone());
                    }
                }
                for b in &p.budgets {
                    if b.slot == slot && !names.contains(&format!("budget.{}", b.name)) {
                        names.push(format!("budget.{}", b.name));
                    }
                }
                for a in &p.actions {
                    if a.prev_slot == slot && !names.contains(&format!("prev.{}", a.name)) {
                        names.push(format!("prev.{}", a.name));
                    }
                }
            };
            if let Some(r) = c.rows.iter().find(|r| r.name == row.name) {
                r.lhs.inputs(&mut note);
                r.rhs.inputs(&mut note);
            }
            names
        };
        let margin = if chk.margin.is_invalid() {
            "undefined".to_string()
        } else {
            format!("[{}, {}]", chk.margin.lo, chk.margin.hi)
        };
        let mut help =
            "change [fallback] so that it satisfies this constraint for every state".to_string();
        if !reads.is_empty() {
            help.push_str(&format!(
                ", or declare tighter `min`/`max` for {}",
                reads
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        errors.push(
            PolicyError::new(
                ErrorKind::FallbackNotCertified,
                span,
                format!(
                    "the fallback {how} critical constraint `{}` for some state in the declared ranges (margin {margin})",
                    row.name
                ),
            )
            .help(help),
        );
    }
    errors
}
