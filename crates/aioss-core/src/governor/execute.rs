//! Evaluation, audit and the final outcome (DESIGN.md, "Evaluation, audit" and the table),
//! and the action that executes: only one Tier 1 certified, or the fallback under
//! FAILED_GOVERNANCE, or the proposal in dry-run. Dry-run changes nothing but what goes
//! out: its verdicts are enforce mode's, and the action enforce mode would execute is
//! reported beside the proposal (`enforce_action`).

use crate::failure::{FailureMode, Guarantee};
use crate::policy::{ConstraintKind, Criticality, Verdict};
use crate::tier1::{Certified, Status};

use super::classify::Classified;
use super::decision::Guarantees;
use super::outcome::{final_outcome, Audit, Evaluation, Outcome, RepairStatus};
use super::tier2::Repaired;
use super::{Governor, Notes, Proposal};

/// The action a decision's classification calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Exec {
    Proposal,
    Repaired,
    /// The fallback, or with `fallback_mode = "freeze"` for an agent in the fallback mode
    /// of operation, its last certified action when Tier 1 certifies it again here.
    Fallback,
}

/// What a decision executes.
#[derive(Debug)]
enum Executed {
    /// An action Tier 1 certified: the proposal, its repair or the fallback.
    Certified(Certified),
    /// The fallback, which Tier 1 could not certify at this state: FAILED_GOVERNANCE.
    Uncertified(Vec<f64>),
}

impl Executed {
    fn into_action(self) -> Vec<f64> {
        match self {
            Executed::Certified(c) => c.into_action(),
            Executed::Uncertified(a) => a,
        }
    }
}

/// The verdicts of a decision and what it executes.
#[derive(Debug)]
pub(super) struct Execution {
    pub evaluation: Evaluation,
    pub audit: Audit,
    pub outcome: Outcome,
    /// The action that executes now: enforce mode's, or in dry-run the proposal.
    pub action: Vec<f64>,
    /// Dry-run: the action enforce mode would have executed (its verdicts and guarantees
    /// are the ones reported).
    pub enforce_action: Option<Vec<f64>>,
    /// Tier 1 certified `action` (in dry-run, the proposal).
    pub action_certified: bool,
    pub guarantees: Guarantees,
}

/// The audit before the executed action is known (DESIGN.md): INSUFFICIENT on missing
/// evidence, QUESTIONABLE when `questioned` (a monitor suspended a trajectory guarantee
/// that applies, an adversarial flag, the agent's fallback mode) or a BLOCK fell on a
/// low-criticality cause, else VALID.
pub(super) fn audit(
    c: &Classified,
    questioned: bool,
    missing: &[String],
    notes: &mut Notes,
) -> Audit {
    if !missing.is_empty() {
        notes.reasons.extend(missing.iter().cloned());
        notes.modes.add(FailureMode::InsufficientEvidence);
        Audit::Insufficient
    } else if questioned {
        Audit::Questionable
    } else if c.classification == Verdict::Block && c.block_cause == Some(Criticality::Low) {
        notes
            .reasons
            .push("a BLOCK on a low-criticality cause: review it".to_string());
        Audit::Questionable
    } else {
        Audit::Valid
    }
}

/// Evaluation, audit and outcome when the action executed is (`certified`) or is not.
fn verdicts(
    c: &Classified,
    r: &Repaired,
    audit: Audit,
    certified: bool,
) -> (Evaluation, Audit, Outcome) {
    let evaluation = if !certified {
        Evaluation::Failed
    } else if c.classification == Verdict::Block {
        if c.block_cause == Some(Criticality::Critical) {
            Evaluation::Effective
        } else {
            Evaluation::Partial
        }
    } else if r.status == RepairStatus::Repaired && !r.relaxed.is_empty() {
        Evaluation::Partial
    } else {
        Evaluation::Effective
    };
    let audit = if c.classification == Verdict::Go && evaluation == Evaluation::Failed {
        Audit::Invalid
    } else {
        audit
    };
    let outcome = final_outcome(c.classification, evaluation, audit, r.status);
    (evaluation, audit, outcome)
}

impl Governor {
    /// Choose what executes and certify it: the action the classification calls for, then,
    /// unless the outcome is ALLOW or ALLOW_AFTER_REPAIR, the fallback (or `freeze`, the
    /// action a frozen agent keeps when it certifies).
    #[expect(clippy::too_many_arguments, reason = "what each earlier stage found")]
    pub(super) fn execute(
        &mut self,
        prop: &Proposal,
        proposal_cert: Option<Certified>,
        c: &Classified,
        r: &Repaired,
        audit: Audit,
        freeze: Option<&[f64]>,
        notes: &mut Notes,
    ) -> Execution {
        let dry_run = self.dry_run;
        let mut exec = match (c.classification, r.status, &r.candidate) {
            (Verdict::Go, _, _) => Exec::Proposal,
            (Verdict::Repair, RepairStatus::Repaired, Some(_)) => Exec::Repaired,
            _ => Exec::Fallback,
        };
        let proposal_certified = proposal_cert.is_some();
        let mut cert = self.certify(exec, &proposal_cert, r, freeze);
        let (mut evaluation, mut audit_v, mut outcome) = verdicts(c, r, audit, cert.is_some());
        // ...and the one the outcome executes: only ALLOW and ALLOW_AFTER_REPAIR run
        // anything but the fallback.
        if !matches!(outcome, Outcome::Allow | Outcome::AllowAfterRepair) && exec != Exec::Fallback
        {
            exec = Exec::Fallback;
            cert = self.certify(exec, &proposal_cert, r, freeze);
            (evaluation, audit_v, outcome) = verdicts(c, r, audit, cert.is_some());
        }
        let p = &self.policy;
        if cert.is_none() {
            notes.modes.add(FailureMode::FallbackNotCertified);
            let bad: Vec<String> = p
                .lattice
                .rows
                .iter()
                .zip(self.t1.rows())
                .filter(|(row, chk)| {
                    chk.active
                        && row.criticality == Criticality::Critical
                        && chk.status != Status::Sat
                })
                .map(|(row, _)| format!("`{}`", row.name))
                .collect();
            notes.reasons.push(format!(
                "the executed action is not certified at this state: critical rows {} are not SAT",
                bad.join(", ")
            ));
        }
        // INVARIANT (certified-execution): what executes is a `Certified` action; the
        // fallback uncertified only under FAILED_GOVERNANCE (evaluation FAILED); the
        // proposal uncertified only in dry-run, which passes it through by design (its
        // verdicts and guarantees stay enforce mode's, for `enforce_action`).
        let executed = match cert {
            Some(cert) => Executed::Certified(cert),
            None => Executed::Uncertified(p.fallback.clone()),
        };
        let certified = matches!(executed, Executed::Certified(_));
        let enforced = executed.into_action();
        let guarantees = self.guarantees(&enforced, certified, outcome, r, notes);
        let (action, enforce_action, action_certified) = if dry_run {
            (prop.action.clone(), Some(enforced), proposal_certified)
        } else {
            (enforced, None, certified)
        };
        Execution {
            evaluation,
            audit: audit_v,
            outcome,
            action,
            enforce_action,
            action_certified,
            guarantees,
        }
    }

    /// Tier 1's certificate of the action `exec` names (the proposal's and the repair's
    /// were made when they were checked).
    fn certify(
        &mut self,
        exec: Exec,
        proposal: &Option<Certified>,
        r: &Repaired,
        freeze: Option<&[f64]>,
    ) -> Option<Certified> {
        match exec {
            Exec::Proposal => proposal.clone(),
            Exec::Repaired => r.cert.clone(),
            Exec::Fallback => {
                let lat = &self.policy.lattice;
                if let Some(kept) = freeze {
                    self.t1.check(lat, &self.inputs, kept);
                    if let Ok(c) = self.t1.certify(lat) {
                        return Some(c);
                    }
                }
                self.t1.check(lat, &self.inputs, &self.policy.fallback);
                self.t1.certify(lat).ok()
            }
        }
    }

    /// The guarantees that held for the executed `action`: G1 when it is certified; G2 and
    /// G4 when their rows hold there and no named failure mode suspends them; G3 for a
    /// repair that relaxed nothing and that no mode suspends.
    fn guarantees(
        &mut self,
        action: &[f64],
        certified: bool,
        outcome: Outcome,
        r: &Repaired,
        notes: &Notes,
    ) -> Guarantees {
        let p = &self.policy;
        // The verdicts of what executes (no work when it is the action the checker saw
        // last).
        self.t1.check(&p.lattice, &self.inputs, action);
        let rows = self.t1.rows();
        let kind_ok = |k: ConstraintKind| -> Option<bool> {
            let mut any = false;
            let mut ok = true;
            for (row, chk) in p.lattice.rows.iter().zip(rows) {
                if row.kind == k {
                    any = true;
                    ok &= !chk.active || chk.status == Status::Sat;
                }
            }
            any.then_some(ok && certified)
        };
        let held = |g: Guarantee| !notes.modes.suspends(g);
        Guarantees {
            pointwise_safety: certified,
            forward_invariance: kind_ok(ConstraintKind::Barrier)
                .map(|g2| g2 && held(Guarantee::ForwardInvariance)),
            input_to_state_stability: kind_ok(ConstraintKind::Lyapunov)
                .map(|g4| g4 && held(Guarantee::InputToStateStability)),
            projection_stability: (outcome == Outcome::AllowAfterRepair && r.needs_projection)
                .then_some(
                    r.relaxed.is_empty() && certified && held(Guarantee::ProjectionStability),
                ),
        }
    }
}
