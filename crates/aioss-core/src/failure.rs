//! The failure modes a decision can name, the guarantees each suspends, and what still
//! holds: the table "Failure modes on the wire" of DESIGN.md, as code.
//!
//! A new detector is one variant here and one call site in the decision flow
//! ([`crate::governor`]); the name on the wire, the guarantees it suspends and whether it
//! sends the decision to a human come from this table, never from the call site.

/// A named guarantee (DESIGN.md, "Guarantees, monitors, failure modes").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Guarantee {
    /// G1, pointwise safety: every executed action satisfies every active critical row for
    /// every state in the box. Never suspended: when it cannot hold, the fallback executes
    /// or the outcome is FAILED_GOVERNANCE.
    PointwiseSafety,
    /// G2, forward invariance: with barrier rows and a dynamics model, the safe set is not
    /// left.
    ForwardInvariance,
    /// G3, projection stability: a repair moves the action no more than needed, and small
    /// changes of input give small changes of repair.
    ProjectionStability,
    /// G4, input-to-state stability: with a Lyapunov row and a dynamics model.
    InputToStateStability,
    /// G5, timing: the decision within its deadline.
    Timing,
}

impl Guarantee {
    /// Every guarantee, G1 to G5.
    pub const ALL: [Guarantee; 5] = [
        Guarantee::PointwiseSafety,
        Guarantee::ForwardInvariance,
        Guarantee::ProjectionStability,
        Guarantee::InputToStateStability,
        Guarantee::Timing,
    ];

    /// The name in a decision's `guarantees` map.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::PointwiseSafety => "pointwise_safety",
            Guarantee::ForwardInvariance => "forward_invariance",
            Guarantee::ProjectionStability => "projection_stability",
            Guarantee::InputToStateStability => "input_to_state_stability",
            Guarantee::Timing => "timing",
        }
    }

    /// `G1` … `G5`.
    pub fn label(self) -> &'static str {
        match self {
            Guarantee::PointwiseSafety => "G1",
            Guarantee::ForwardInvariance => "G2",
            Guarantee::ProjectionStability => "G3",
            Guarantee::InputToStateStability => "G4",
            Guarantee::Timing => "G5",
        }
    }
}

/// A failure mode a decision names in `failure_modes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FailureMode {
    /// No certified point in the critical set.
    InfeasibleConstraintSet,
    /// A metric that is not positive definite (a load error), or a badly conditioned QP
    /// Hessian at run time.
    MetricNotConvex,
    /// The repair's iteration or work budget was reached, or its answer was not
    /// certified.
    SolverNonConvergence,
    /// The repair's modeled cost reached the deadline's budget (`enforce_deadline`);
    /// deterministic. A measured overrun stays in `timing` (`deadline_missed` in counts).
    DeadlineOverrun,
    /// A row changed faster than its declared `lipschitz` between an agent's decisions.
    LipschitzExceeded,
    /// A near-empty feasible set or an ill-conditioned active set.
    DegenerateGeometry,
    /// A state outside its declared range, a box wider than the range or than
    /// `max_noise`, or most active rows UNCERTAIN.
    ExcessiveUncertainty,
    /// NaN, overflow or a domain error.
    NumericalFault,
    /// The observed state outside the previous decision's predicted box.
    ModelMismatch,
    /// Boundary hugging, probing, low entropy, forced fallbacks.
    AdversarialProbing,
    /// A barrier's `h(x) < 0` somewhere in the current state box.
    LeftSafeSet,
    /// The executed fallback is not certified at this state.
    FallbackNotCertified,
    /// Required evidence missing (a state absent or a required text blank).
    InsufficientEvidence,
}

impl FailureMode {
    /// Every mode, in the order of DESIGN.md's table (the ten), then the further ones.
    pub const ALL: [FailureMode; 13] = [
        FailureMode::InfeasibleConstraintSet,
        FailureMode::MetricNotConvex,
        FailureMode::SolverNonConvergence,
        FailureMode::DeadlineOverrun,
        FailureMode::LipschitzExceeded,
        FailureMode::DegenerateGeometry,
        FailureMode::ExcessiveUncertainty,
        FailureMode::NumericalFault,
        FailureMode::ModelMismatch,
        FailureMode::AdversarialProbing,
        FailureMode::LeftSafeSet,
        FailureMode::FallbackNotCertified,
        FailureMode::InsufficientEvidence,
    ];

    /// The name on the wire (fixed by the contract).
    pub fn name(self) -> &'static str {
        match self {
            FailureMode::InfeasibleConstraintSet => "infeasible_constraint_set",
            FailureMode::MetricNotConvex => "metric_not_convex",
            FailureMode::SolverNonConvergence => "solver_non_convergence",
            FailureMode::DeadlineOverrun => "deadline_overrun",
            FailureMode::LipschitzExceeded => "lipschitz_exceeded",
            FailureMode::DegenerateGeometry => "degenerate_geometry",
            FailureMode::ExcessiveUncertainty => "excessive_uncertainty",
            FailureMode::NumericalFault => "numerical_fault",
            FailureMode::ModelMismatch => "model_mismatch",
            FailureMode::AdversarialProbing => "adversarial_probing",
            FailureMode::LeftSafeSet => "left_safe_set",
            FailureMode::FallbackNotCertified => "fallback_not_certified",
            FailureMode::InsufficientEvidence => "insufficient_evidence",
        }
    }

    /// The mode named `s` on the wire (`deadline_budget`, its name before it was renamed,
    /// reads as [`FailureMode::DeadlineOverrun`]).
    pub fn parse(s: &str) -> Option<FailureMode> {
        if s == "deadline_budget" {
            return Some(FailureMode::DeadlineOverrun);
        }
        FailureMode::ALL.into_iter().find(|m| m.name() == s)
    }

    /// The guarantees this mode suspends (DESIGN.md's table). G1 is never among them.
    pub fn suspends(self) -> &'static [Guarantee] {
        use Guarantee as G;
        match self {
            FailureMode::InfeasibleConstraintSet => {
                &[G::ProjectionStability, G::InputToStateStability]
            }
            FailureMode::MetricNotConvex
            | FailureMode::LipschitzExceeded
            | FailureMode::DegenerateGeometry
            | FailureMode::AdversarialProbing => &[G::ProjectionStability],
            FailureMode::SolverNonConvergence => &[G::ProjectionStability, G::Timing],
            FailureMode::DeadlineOverrun => &[G::Timing],
            FailureMode::ExcessiveUncertainty => &[
                G::ForwardInvariance,
                G::ProjectionStability,
                G::InputToStateStability,
            ],
            FailureMode::NumericalFault => &[
                G::ForwardInvariance,
                G::ProjectionStability,
                G::InputToStateStability,
                G::Timing,
            ],
            FailureMode::ModelMismatch => &[G::ForwardInvariance, G::InputToStateStability],
            FailureMode::LeftSafeSet => &[G::ForwardInvariance],
            FailureMode::FallbackNotCertified | FailureMode::InsufficientEvidence => &[],
        }
    }

    /// Does this mode alone make the audit QUESTIONABLE (a trajectory guarantee, G2 or
    /// G4, suspended, or an adversarial flag)? Solver outcomes and a suspended G3 or G5
    /// alone are recorded and leave the audit VALID (DESIGN.md, "Evaluation, audit").
    pub fn questions_the_audit(self) -> bool {
        self == FailureMode::AdversarialProbing
            || self.suspends().iter().any(|g| {
                matches!(
                    g,
                    Guarantee::ForwardInvariance | Guarantee::InputToStateStability
                )
            }) && !matches!(
                self,
                FailureMode::InfeasibleConstraintSet | FailureMode::NumericalFault
            )
    }
}

impl std::fmt::Display for FailureMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The failure modes of one decision, each named once, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailureModes(Vec<FailureMode>);

impl FailureModes {
    /// Name `m` (a second time changes nothing).
    pub fn add(&mut self, m: FailureMode) {
        if !self.0.contains(&m) {
            self.0.push(m);
        }
    }
    /// Is `m` named?
    pub fn contains(&self, m: FailureMode) -> bool {
        self.0.contains(&m)
    }
    /// The modes, in the order found.
    pub fn iter(&self) -> impl Iterator<Item = FailureMode> + '_ {
        self.0.iter().copied()
    }
    /// Is none named?
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// How many are named.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Is guarantee `g` suspended by one of them?
    pub fn suspends(&self, g: Guarantee) -> bool {
        self.0.iter().any(|m| m.suspends().contains(&g))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The names on the wire are the contract's, each once, and read back.
    #[test]
    fn every_mode_has_its_wire_name_and_reads_back() {
        let names: Vec<&str> = FailureMode::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(
            names.get(..10).unwrap_or_default(),
            [
                "infeasible_constraint_set",
                "metric_not_convex",
                "solver_non_convergence",
                "deadline_overrun",
                "lipschitz_exceeded",
                "degenerate_geometry",
                "excessive_uncertainty",
                "numerical_fault",
                "model_mismatch",
                "adversarial_probing",
            ]
        );
        for m in FailureMode::ALL {
            assert_eq!(FailureMode::parse(m.name()), Some(m));
            assert!(!m.suspends().contains(&Guarantee::PointwiseSafety), "{m}");
        }
        assert_eq!(
            FailureMode::parse("deadline_budget"),
            Some(FailureMode::DeadlineOverrun)
        );
    }

    /// DESIGN.md's table, row by row.
    #[test]
    fn each_mode_suspends_what_the_design_says() {
        use Guarantee as G;
        let s = |m: FailureMode| m.suspends().iter().map(|g| g.label()).collect::<Vec<_>>();
        assert_eq!(
            s(FailureMode::InfeasibleConstraintSet),
            [G::ProjectionStability.label(), "G4"]
        );
        assert_eq!(s(FailureMode::SolverNonConvergence), ["G3", "G5"]);
        assert_eq!(s(FailureMode::DeadlineOverrun), ["G5"]);
        assert_eq!(s(FailureMode::ExcessiveUncertainty), ["G2", "G3", "G4"]);
        assert_eq!(s(FailureMode::NumericalFault), ["G2", "G3", "G4", "G5"]);
        assert_eq!(s(FailureMode::ModelMismatch), ["G2", "G4"]);
        assert_eq!(s(FailureMode::LeftSafeSet), ["G2"]);
        assert!(FailureMode::LeftSafeSet.questions_the_audit());
        assert!(FailureMode::ExcessiveUncertainty.questions_the_audit());
        assert!(FailureMode::AdversarialProbing.questions_the_audit());
        assert!(!FailureMode::SolverNonConvergence.questions_the_audit());
        assert!(!FailureMode::DeadlineOverrun.questions_the_audit());
    }
}
