//! The fallback's certificate, made when a policy loads: Tier 1 over the box of every
//! declared range (see [`crate::policy::Policy::range_inputs`]).

use crate::error::{ErrorKind, PolicyError};
use crate::policy::{Criticality, Policy};
use crate::tier1::{Checker, Status};

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
