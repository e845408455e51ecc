//! The CRE (Conflict Resolution Engine): the relaxation stages a search runs, what each
//! stage accepts, the exact L1 penalty of the slack it uses, the trust-region refinement of
//! a relaxed point, and the contraction that rules every relaxation stage out at once.
//!
//! When no candidate satisfies every row, non-critical rows are relaxed in priority order
//! — low, then low and medium, then low, medium and high — each taking a slack of at most
//! its `tolerance`, with an exact L1 penalty (weighted by the row's `weight`) so no slack
//! is used where none is needed. Critical rows are never relaxed.

use std::ops::ControlFlow;

use crate::contract::Contractor;
use crate::interval::Interval;
use crate::policy::{Criticality, Policy, Sense};
use crate::tier1::{RowCheck, Status};

use super::cost::{search_budget, COST_CONTRACT_NS};
use super::sqp::{NodeEnd, Sqp};
use super::{objective, row_constraint, Found, Repair, RepairOutcome, Repairer, SolverStatus};

/// The stages of a search: unrelaxed, then rows below medium, below high, below critical
/// relaxable.
const STAGES: [Option<Criticality>; 4] = [
    None,
    Some(Criticality::Medium),
    Some(Criticality::High),
    Some(Criticality::Critical),
];

/// The interval contraction that rules the relaxation stages out, with its box and
/// per-row bounds.
#[derive(Debug)]
pub(super) struct Contraction {
    contractor: Contractor,
    cbox: Vec<Interval>,
    cneed: Vec<Option<f64>>,
}

impl Contraction {
    /// A contraction over `p`'s lattice.
    pub(super) fn new(p: &Policy) -> Self {
        Contraction {
            contractor: Contractor::new(&p.lattice),
            cbox: Vec::with_capacity(p.layout.len as usize),
            cneed: vec![None; p.lattice.rows.len()],
        }
    }

    /// Can no point of any discrete node pass at `stage`? Contracts the box of every action
    /// (real and discrete, each over its whole range) with the state box over the rows the
    /// stage requires, in `rounds` forward-backward passes: every active row SAT, except
    /// that a row the stage may relax needs only a margin of at least `-tolerance` (as in
    /// [`acceptable`]). `true` is a proof (see [`crate::contract`]); `false` says nothing.
    pub(super) fn stage_impossible(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        stage: Option<Criticality>,
        rounds: u32,
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
            .empty(&p.lattice, &self.cbox, &self.cneed, rounds)
    }
}

impl Repairer {
    /// The search proper: the unrelaxed stage, then the CRE's relaxation stages, each with
    /// its share of the budget; the first stage that finds a point answers, and when none
    /// does, the fallback.
    pub(super) fn stages(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        preferred: &[(usize, f64)],
    ) -> Repair {
        let mut last = SolverStatus::Solved;
        self.ws.counts.begin(search_budget(&p.governor));
        let total = p
            .governor
            .max_iterations
            .saturating_mul(self.settings.work_factor);
        let mut work = total;
        let mut dead = Vec::new();
        // In the critical-rows-only mode only the most relaxed stage is searched (it is
        // then also the last, and takes the whole budget).
        let first = if self.ws.critical_only {
            STAGES.len().saturating_sub(1)
        } else {
            0
        };
        for (k, stage) in STAGES.into_iter().enumerate().skip(first) {
            // INVARIANT (modeled-deadline): no stage starts past the modeled deadline.
            if self.ws.counts.past_deadline() {
                last = SolverStatus::Deadline;
                break;
            }
            // Once the unrelaxed search has failed: when no action of the whole box can
            // satisfy the rows of the most relaxed stage, no stage can (each asks for
            // more), and the search ends here. (Only then: ruling out single stages
            // changes which active set the next stage's SQP starts from, and with it
            // some answers; and every repair would pay for the contraction.)
            if k == 1 && !self.settings.no_contraction {
                self.ws.counts.charge(COST_CONTRACT_NS);
                let most_relaxed = STAGES.last().copied().flatten();
                let rounds = self.settings.contract_rounds;
                if self
                    .ws
                    .contraction
                    .stage_impossible(p, inputs, most_relaxed, rounds)
                {
                    self.info.stages_ruled_out += 1;
                    last = SolverStatus::Infeasible;
                    break;
                }
            }
            // This stage's share of what is left: 1/4, then 1/3, 1/2, all of it.
            let left = u32::try_from(STAGES.len().saturating_sub(k))
                .unwrap_or(1)
                .max(1);
            let share = work / left;
            self.ws.counts.stage_left = share;
            let (found, st) = self.search(p, inputs, proposal, preferred, stage, &mut dead);
            work -= share - self.ws.counts.stage_left;
            if st != SolverStatus::Solved {
                last = st;
            }
            if let Some(f) = found {
                return self.found(f, total - work);
            }
        }
        let counts = &self.ws.counts;
        let (iterations, nodes) = (counts.iterations, counts.nodes);
        let status = if last == SolverStatus::Solved {
            SolverStatus::Infeasible
        } else {
            last
        };
        let mut r = self.fallback(p, inputs, proposal, status, iterations, nodes);
        r.steps = total - work;
        r.cost = self.ws.counts.cost();
        r
    }

    /// The repair that returns `f`, found in `steps` SQP steps. `f.checks` is the Tier 1
    /// check that accepted `f.action`, bit for bit the action returned: no second check is
    /// needed.
    fn found(&self, f: Found, steps: u32) -> Repair {
        let outcome = if f.relaxed.is_empty() {
            RepairOutcome::Certified
        } else {
            RepairOutcome::Relaxed
        };
        Repair {
            distance: f.objective.max(0.0).sqrt(),
            action: f.action,
            outcome,
            status: SolverStatus::Solved,
            active_set: f.active,
            relaxed: f.relaxed,
            iterations: self.ws.counts.iterations,
            steps,
            nodes: self.ws.counts.nodes,
            cost: self.ws.counts.cost(),
            checks: f.checks,
            certified: true,
        }
    }

    /// The SQP's acceptance step: is the checked iterate `u` acceptable in this stage? A
    /// point that needs no slack ends the node. A point that needs slack is kept, and the
    /// SQP goes on: the first acceptable iterate of a curved row can use far more slack than
    /// needed (regression test `a_relaxed_curved_row_takes_the_least_slack`). From there on
    /// it is a trust-region method on the exact penalty function: a step that does not
    /// lower it is undone and the region shrunk; one that does is kept and the region
    /// grown. The best point is returned.
    pub(super) fn accept(&mut self, s: &mut Sqp<'_>, u: &mut [f64]) -> ControlFlow<NodeEnd> {
        let p = s.p;
        if let Some(relaxed) = acceptable(self.ws.check.rows(), p, s.relax_below, s.allow) {
            let objective = objective(p, &self.rows.real, s.u0, u);
            let penalty = slack_penalty(p, &relaxed, self.settings.l1_penalty);
            let found = Found {
                action: u.to_vec(),
                objective,
                penalty,
                relaxed,
                active: s.active_rows.clone(),
                checks: self.ws.check.rows().to_vec(),
            };
            if found.relaxed.is_empty() {
                return ControlFlow::Break(Ok(found));
            }
            let merit = found.objective + found.penalty;
            match &s.best {
                Some(b) if merit >= b.objective + b.penalty => {}
                Some(b) => {
                    let gain = b.objective + b.penalty - merit;
                    s.best = Some(found);
                    if gain <= self.settings.trust_tol * (1.0 + merit.abs()) {
                        return ControlFlow::Break(s.end(SolverStatus::Solved));
                    }
                    s.trust *= 2.0;
                }
                None => {
                    s.best = Some(found);
                    s.trust *= 2.0;
                }
            }
        }
        if let Some(b) = &s.best {
            if b.action.as_slice() != &*u {
                // The last step was rejected (worse, or not acceptable): back to the
                // best point, with a smaller region.
                let rejected = self.rows.real.iter().fold(0.0f64, |m, &ai| {
                    let d = u.get(ai).copied().unwrap_or(0.0)
                        - b.action.get(ai).copied().unwrap_or(0.0);
                    m.max(d.abs())
                });
                s.trust = 0.25 * rejected.min(s.trust);
                u.copy_from_slice(&b.action);
                let scale = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                if s.trust <= self.settings.trust_tol * scale {
                    return ControlFlow::Break(s.end(SolverStatus::Infeasible));
                }
                self.ws.check.check(p, s.inputs, u);
            }
        }
        ControlFlow::Continue(())
    }
}

/// Are the checks `rows` acceptable with rows of criticality `< relax_below` relaxable
/// (when `allow_relax`)? Returns the relaxed rows with their slack, or `None`.
pub(super) fn acceptable(
    rows: &[RowCheck],
    p: &Policy,
    relax_below: Criticality,
    allow_relax: bool,
) -> Option<Vec<(usize, f64)>> {
    let mut relaxed = Vec::new();
    for (i, (row, c)) in p.lattice.rows.iter().zip(rows).enumerate() {
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

/// `Σ P · weight · slack` over relaxed rows (`P` the `l1_penalty` setting): the penalty
/// the CRE's QP minimises.
pub(super) fn slack_penalty(p: &Policy, relaxed: &[(usize, f64)], l1_penalty: f64) -> f64 {
    relaxed
        .iter()
        .map(|&(i, s)| slack_price(p, i, l1_penalty) * s)
        .sum()
}

/// The price of a unit of row `i`'s slack in the CRE's QP: `P · weight`.
pub(super) fn slack_price(p: &Policy, i: usize, l1_penalty: f64) -> f64 {
    let w = row_constraint(p, i).map_or(1.0, |c| c.weight);
    l1_penalty * w.max(1e-6)
}
