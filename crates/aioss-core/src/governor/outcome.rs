//! The I2OS verdicts of a decision and the final-outcome table of DESIGN.md.

use crate::policy::Verdict;

/// Was the decision effective?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Evaluation {
    /// The executed action is certified and the decision did what it should.
    Effective,
    /// Safe, but intent or soft constraints were given up.
    Partial,
    /// The decision changed nothing (dry-run).
    Neutral,
    /// The executed action could not be certified.
    Failed,
}

/// Can the decision be trusted from its trace?
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Audit {
    /// Complete evidence, every guarantee's assumptions certified.
    Valid,
    /// A BLOCK fell on a low-criticality cause (or a guarantee was suspended).
    Questionable,
    /// Required evidence was missing.
    Insufficient,
    /// A contradiction (GO with a FAILED evaluation).
    Invalid,
}

/// The repair stage's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RepairStatus {
    /// GO: nothing to repair.
    NotRequired,
    /// A certified repair within `repair_limit`.
    Repaired,
    /// A human must confirm (HOLD, a confirmable BLOCK, or a repair beyond the limit).
    ConfirmationRequired,
    /// No certified repair: the fallback.
    NoRepairAvailable,
}

/// The six final outcomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Execute the proposal.
    Allow,
    /// Execute the fallback; the proposal (or its repair) waits for a human.
    HoldForConfirmation,
    /// Execute the repaired action.
    AllowAfterRepair,
    /// Execute the fallback; the proposal is refused.
    BlockNoRepair,
    /// Execute the fallback; the trace needs review.
    ReviewAudit,
    /// Execute the fallback; governance itself failed.
    FailedGovernance,
}

macro_rules! names {
    ($t:ty { $($v:ident => $s:literal),* $(,)? }) => {
        impl $t {
            /// The name used in decisions.
            pub fn as_str(self) -> &'static str {
                match self { $(<$t>::$v => $s),* }
            }
        }
    };
}
names!(Evaluation { Effective => "EFFECTIVE", Partial => "PARTIAL", Neutral => "NEUTRAL", Failed => "FAILED" });
names!(Audit { Valid => "VALID", Questionable => "QUESTIONABLE", Insufficient => "INSUFFICIENT", Invalid => "INVALID" });
names!(RepairStatus {
    NotRequired => "NOT_REQUIRED",
    Repaired => "REPAIRED",
    ConfirmationRequired => "CONFIRMATION_REQUIRED",
    NoRepairAvailable => "NO_REPAIR_AVAILABLE",
});
names!(Outcome {
    Allow => "ALLOW",
    HoldForConfirmation => "HOLD_FOR_CONFIRMATION",
    AllowAfterRepair => "ALLOW_AFTER_REPAIR",
    BlockNoRepair => "BLOCK_NO_REPAIR",
    ReviewAudit => "REVIEW_AUDIT",
    FailedGovernance => "FAILED_GOVERNANCE",
});

impl Outcome {
    /// The report type of `DESIGN.md`'s table.
    pub fn report_type(self) -> &'static str {
        match self {
            Outcome::FailedGovernance => "FAILED_GOVERNANCE_REPORT",
            Outcome::ReviewAudit => "AUDIT_REVIEW_REPORT",
            Outcome::BlockNoRepair => "BLOCKED_TRANSITION_REPORT",
            Outcome::AllowAfterRepair => "REPAIR_APPLIED_REPORT",
            Outcome::HoldForConfirmation => "CONFIRMATION_REQUIRED_REPORT",
            Outcome::Allow => "SAFE_TO_PROCEED_REPORT",
        }
    }

    /// Does a human have to act?
    pub fn human_action_required(self) -> bool {
        !matches!(self, Outcome::Allow | Outcome::AllowAfterRepair)
    }

    /// All six, in table order.
    pub const ALL: [Outcome; 6] = [
        Outcome::FailedGovernance,
        Outcome::ReviewAudit,
        Outcome::BlockNoRepair,
        Outcome::AllowAfterRepair,
        Outcome::HoldForConfirmation,
        Outcome::Allow,
    ];
}

/// The final-outcome table of `DESIGN.md`; the first matching row wins.
pub fn final_outcome(
    classification: Verdict,
    evaluation: Evaluation,
    audit: Audit,
    repair: RepairStatus,
) -> Outcome {
    if evaluation == Evaluation::Failed || audit == Audit::Invalid {
        Outcome::FailedGovernance
    } else if matches!(audit, Audit::Questionable | Audit::Insufficient) {
        Outcome::ReviewAudit
    } else if classification == Verdict::Block && repair == RepairStatus::NoRepairAvailable {
        Outcome::BlockNoRepair
    } else if classification == Verdict::Repair && repair == RepairStatus::Repaired {
        Outcome::AllowAfterRepair
    } else if classification == Verdict::Hold || repair == RepairStatus::ConfirmationRequired {
        Outcome::HoldForConfirmation
    } else if classification == Verdict::Go && audit == Audit::Valid {
        Outcome::Allow
    } else {
        Outcome::ReviewAudit
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn every_row_of_the_outcome_table() {
        use Audit as A;
        use Evaluation as E;
        use RepairStatus as R;
        use Verdict as V;
        let cases = [
            (
                V::Go,
                E::Failed,
                A::Valid,
                R::NotRequired,
                Outcome::FailedGovernance,
            ),
            (
                V::Repair,
                E::Effective,
                A::Invalid,
                R::Repaired,
                Outcome::FailedGovernance,
            ),
            (
                V::Go,
                E::Effective,
                A::Insufficient,
                R::NotRequired,
                Outcome::ReviewAudit,
            ),
            (
                V::Block,
                E::Effective,
                A::Questionable,
                R::NoRepairAvailable,
                Outcome::ReviewAudit,
            ),
            (
                V::Block,
                E::Effective,
                A::Valid,
                R::NoRepairAvailable,
                Outcome::BlockNoRepair,
            ),
            (
                V::Repair,
                E::Effective,
                A::Valid,
                R::Repaired,
                Outcome::AllowAfterRepair,
            ),
            (
                V::Hold,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Block,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Repair,
                E::Effective,
                A::Valid,
                R::ConfirmationRequired,
                Outcome::HoldForConfirmation,
            ),
            (
                V::Go,
                E::Effective,
                A::Valid,
                R::NotRequired,
                Outcome::Allow,
            ),
            (V::Go, E::Neutral, A::Valid, R::NotRequired, Outcome::Allow),
            (
                V::Repair,
                E::Partial,
                A::Valid,
                R::NoRepairAvailable,
                Outcome::ReviewAudit,
            ),
        ];
        for (c, e, a, r, want) in cases {
            assert_eq!(final_outcome(c, e, a, r), want, "{c:?} {e:?} {a:?} {r:?}");
        }
    }
}
