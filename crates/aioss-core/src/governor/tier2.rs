//! The repair stage (DESIGN.md, "Repair"): GO needs none, HOLD a human, BLOCK none unless a
//! confirmable rule blocked, and REPAIR a projection by Tier 2 that Tier 1 then certifies.

use crate::failure::FailureMode;
use crate::policy::{Criticality, Policy, Verdict};
use crate::repair::{Repair, RepairOutcome, SolverStatus};
use crate::tier1::Certified;

use super::classify::Classified;
use super::decision::{describe_change, fmt_num, SolverReport};
use super::outcome::RepairStatus;
use super::{repairer_of, Governor, Notes, Proposal};

/// What the repair stage found.
#[derive(Debug)]
pub(super) struct Repaired {
    pub status: RepairStatus,
    /// A certified repair: executed (REPAIRED) or offered to a human.
    pub candidate: Option<Repair>,
    /// Tier 1's certificate of the candidate of a REPAIR.
    pub cert: Option<Certified>,
    /// The candidate's distance from the proposal.
    pub distance: Option<f64>,
    pub solver: Option<SolverReport>,
    /// Rows the CRE relaxed, with their slack.
    pub relaxed: Vec<(String, f64)>,
    /// The deciding rule's `repaired_transition`.
    pub transition: Option<String>,
    /// Did the lattice (or the rule's `set`) call for a projection?
    pub needs_projection: bool,
}

impl Governor {
    /// The repair stage for `prop`, classified as `c` (which it may escalate to BLOCK).
    pub(super) fn repair_stage(
        &mut self,
        prop: &Proposal,
        c: &mut Classified,
        notes: &mut Notes,
    ) -> Repaired {
        let p = &self.policy;
        let the_rule = c.rule.and_then(|i| p.rules.get(i));
        let rule_decides = c.rule_decides();
        let mut r = Repaired {
            status: RepairStatus::NotRequired,
            candidate: None,
            cert: None,
            distance: None,
            solver: None,
            relaxed: Vec::new(),
            transition: None,
            needs_projection: c.lattice_verdict != Verdict::Go
                || (rule_decides && the_rule.is_some_and(|r| !r.set.is_empty())),
        };
        match c.classification {
            Verdict::Go => {}
            Verdict::Repair => self.project(prop, c, &mut r, notes),
            Verdict::Hold => r.status = RepairStatus::ConfirmationRequired,
            Verdict::Block => {
                let confirmable = rule_decides
                    && c.lattice_verdict != Verdict::Block
                    && the_rule.is_some_and(|r| r.confirmable);
                r.status = if confirmable {
                    RepairStatus::ConfirmationRequired
                } else {
                    RepairStatus::NoRepairAvailable
                };
                if rule_decides {
                    c.block_cause = c.block_cause.max(Some(
                        the_rule
                            .and_then(|r| r.criticality)
                            .unwrap_or(Criticality::High),
                    ));
                }
            }
        }
        // A hold offers the approver a certified repair of the lattice's violations.
        if c.classification == Verdict::Hold && c.lattice_verdict != Verdict::Go {
            let critical_only = self.critical_only;
            let rep = repair_in_mode(
                repairer_of(
                    &mut self.repairers,
                    &mut self.shared,
                    &self.policy,
                    &prop.agent,
                ),
                critical_only,
                &self.policy,
                &self.inputs,
                &prop.action,
                &[],
            );
            // Offered only when Tier 1 certifies it, like any repair.
            self.t1
                .check(&self.policy.lattice, &self.inputs, &rep.action);
            if rep.outcome != RepairOutcome::Fallback
                && self.t1.certify(&self.policy.lattice).is_ok()
            {
                r.distance = Some(crate::repair::distance(
                    &self.policy,
                    &prop.action,
                    &rep.action,
                ));
                r.candidate = Some(rep);
            }
        }
        unapprovable_hold(&self.policy, prop, c, &mut r, notes);
        r
    }

    /// REPAIR: project the proposal (after a deciding rule's `set`, its discrete repair),
    /// and certify what the search found.
    fn project(
        &mut self,
        prop: &Proposal,
        c: &mut Classified,
        r: &mut Repaired,
        notes: &mut Notes,
    ) {
        let mut start = prop.action.clone();
        let mut preferred: Vec<(usize, f64)> = Vec::new();
        if c.rule_decides() {
            if let Some(rule) = c.rule.and_then(|i| self.policy.rules.get(i)) {
                for &(ai, v) in &rule.set {
                    if let Some(x) = start.get_mut(ai) {
                        *x = v;
                    }
                }
                preferred.clone_from(&rule.set);
                r.transition.clone_from(&rule.repaired_transition);
            }
        }
        let critical_only = self.critical_only;
        #[cfg_attr(not(test), expect(unused_mut, reason = "a test sabotages it"))]
        let mut rep = repair_in_mode(
            repairer_of(
                &mut self.repairers,
                &mut self.shared,
                &self.policy,
                &prop.agent,
            ),
            critical_only,
            &self.policy,
            &self.inputs,
            &start,
            &preferred,
        );
        #[cfg(test)]
        if let Some(sabotage) = self.sabotage_repair {
            sabotage(&mut rep);
        }
        // The repairer's answer is a proposal like any other: Tier 1 decides.
        if rep.outcome != RepairOutcome::Fallback {
            self.t1
                .check(&self.policy.lattice, &self.inputs, &rep.action);
            r.cert = self.t1.certify(&self.policy.lattice).ok();
        }
        let p = &self.policy;
        r.solver = Some(SolverReport {
            status: rep.status,
            iterations: rep.iterations,
            steps: rep.steps,
            nodes: rep.nodes,
            cost: rep.cost,
        });
        match rep.outcome {
            RepairOutcome::Certified | RepairOutcome::Relaxed if r.cert.is_none() => {
                c.classification = Verdict::Block;
                r.status = RepairStatus::NoRepairAvailable;
                notes.named(
                    FailureMode::SolverNonConvergence,
                    "the search's candidate is not certified by Tier 1".to_string(),
                );
                notes.reasons.push(format!(
                    "the repair search offered {}, which Tier 1 does not certify: escalated to BLOCK",
                    describe_change(p, &prop.action, &rep.action)
                ));
                c.block_cause = c.block_cause.max(c.violated_crit);
            }
            RepairOutcome::Certified | RepairOutcome::Relaxed => {
                accept(p, prop, &rep, r, notes);
                r.candidate = Some(rep);
            }
            RepairOutcome::Fallback => {
                c.classification = Verdict::Block;
                r.status = RepairStatus::NoRepairAvailable;
                no_repair(p, &rep, notes);
                // Escalation: the cause is the rows that could not be repaired.
                c.block_cause = c.block_cause.max(c.violated_crit);
            }
        }
    }
}

/// A hold of a proposal that fails a critical row (HOLD, or a `confirmable` BLOCK) cannot
/// be approved as proposed: an approval re-checks the held action with Tier 1 and refuses it
/// (`unsafe_now`). With a certified repair the hold is of that repair (what an approval
/// executes); without one the decision is a BLOCK (issue 23, item 5).
fn unapprovable_hold(
    p: &Policy,
    prop: &Proposal,
    c: &mut Classified,
    r: &mut Repaired,
    notes: &mut Notes,
) {
    let held = c.classification == Verdict::Hold
        || (c.classification == Verdict::Block && r.status == RepairStatus::ConfirmationRequired);
    if !held || c.violated_crit != Some(Criticality::Critical) {
        return;
    }
    if let Some(rep) = &r.candidate {
        notes.reasons.push(format!(
            "the proposal fails a critical constraint: an approval executes the offered repair ({})",
            describe_change(p, &prop.action, &rep.action)
        ));
        return;
    }
    c.classification = Verdict::Block;
    r.status = RepairStatus::NoRepairAvailable;
    c.block_cause = Some(Criticality::Critical);
    notes.reasons.push(
        "the proposal fails a critical constraint and no certified repair exists, so no approval could execute it: a BLOCK, not a hold".to_string(),
    );
}

/// The repairer's answer, in the governor's mode: the critical-rows-only mode (overload)
/// searches only the CRE's most relaxed stage.
fn repair_in_mode(
    r: &mut crate::repair::Repairer,
    critical_only: bool,
    p: &crate::Policy,
    inputs: &[crate::Interval],
    start: &[f64],
    preferred: &[(usize, f64)],
) -> Repair {
    if critical_only {
        r.repair_critical_only(p, inputs, start, preferred)
    } else {
        r.repair(p, inputs, start, preferred)
    }
}

/// A certified repair: REPAIRED within `repair_limit`, else offered to a human.
fn accept(p: &Policy, prop: &Proposal, rep: &Repair, r: &mut Repaired, notes: &mut Notes) {
    let dist = crate::repair::distance(p, &prop.action, &rep.action);
    r.distance = Some(dist);
    r.relaxed = rep
        .relaxed
        .iter()
        .filter_map(|&(i, s)| p.lattice.rows.get(i).map(|row| (row.name.clone(), s)))
        .collect();
    for (name, s) in &r.relaxed {
        notes.reasons.push(format!(
            "the conflict resolution engine relaxed `{name}` by {}",
            fmt_num(*s)
        ));
    }
    if dist <= p.governor.repair_limit {
        r.status = RepairStatus::Repaired;
        if r.needs_projection {
            notes.reasons.push(format!(
                "repaired: {} (distance {} within repair_limit {})",
                describe_change(p, &prop.action, &rep.action),
                fmt_num(dist),
                fmt_num(p.governor.repair_limit)
            ));
        }
    } else {
        r.status = RepairStatus::ConfirmationRequired;
        notes.reasons.push(format!(
            "the nearest certified repair is at distance {}, beyond repair_limit {}: a human must confirm it",
            fmt_num(dist),
            fmt_num(p.governor.repair_limit)
        ));
    }
}

/// No certified repair within the budgets: name why, and escalate to BLOCK.
fn no_repair(p: &Policy, rep: &Repair, notes: &mut Notes) {
    let mode = match rep.status {
        SolverStatus::Infeasible => FailureMode::InfeasibleConstraintSet,
        SolverStatus::MaxIterations => FailureMode::SolverNonConvergence,
        SolverStatus::Deadline => FailureMode::DeadlineOverrun,
        _ => FailureMode::NumericalFault,
    };
    notes.named(
        mode,
        format!(
            "solver {} after {} iterations in {} steps over {} nodes",
            rep.status.as_str(),
            rep.iterations,
            rep.steps,
            rep.nodes
        ),
    );
    if let (SolverStatus::Deadline, Some(budget)) =
        (rep.status, crate::repair::search_budget(&p.governor))
    {
        notes.reasons.push(format!(
            "the repair search reached its modeled budget of {} µs (enforce_deadline = true, deadline_us = {}) after {} µs of modeled work, without a certified repair: escalated to BLOCK",
            budget.micros(),
            p.governor.deadline_us,
            rep.cost.micros()
        ));
    } else {
        notes.reasons.push(format!(
            "no certified repair exists within the budgets (solver {}): escalated to BLOCK",
            rep.status.as_str()
        ));
    }
}
