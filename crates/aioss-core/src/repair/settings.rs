//! The repairer's settings: the search's tuning, with documented defaults, and the switches
//! that tests use to compare the search with and without one of its mechanisms.
//!
//! The governor builds every repairer with [`RepairSettings::default`] (through
//! [`Repairer::new`](super::Repairer::new)): the defaults *are* the algorithm its decisions
//! come from, and a replay (`aioss audit replay`) re-derives them with the same ones. Other
//! values are for tests and experiments; [`RepairSettings::validate`] refuses those the
//! search cannot run with.

use thiserror::Error;

/// Node budget of the discrete search, per relaxation stage (the default of
/// [`RepairSettings::node_budget`]).
pub const NODE_BUDGET: u32 = 64;

/// The whole repair (every discrete node of every relaxation stage) may run at most this
/// many times the policy's `max_iterations` SQP iterations (the default of
/// [`RepairSettings::work_factor`]). Each stage may spend its share of what is left (a
/// quarter for the first, a third for the second, ...), so the CRE's stages are still
/// reached when the unrelaxed search finds nothing. This is what bounds a hopeless
/// proposal's cost: without it, every stage ran every node to `max_iterations` (see
/// `BENCHMARKS.md`, "Tier 2's structure", for what an infeasible proposal cost then).
pub const WORK_FACTOR: u32 = 8;

/// The settings of a [`Repairer`](super::Repairer). `Default` is what the governor uses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RepairSettings {
    /// Discrete nodes each relaxation stage may examine. Default [`NODE_BUDGET`].
    pub node_budget: u32,
    /// The whole search may run this many times the policy's `max_iterations` SQP
    /// iterations. Default [`WORK_FACTOR`].
    pub work_factor: u32,
    /// How many int values on each side of the proposal the discrete search considers.
    /// Default 4.
    pub int_span: i32,
    /// An SQP that has found no acceptable point gives up after this many iterations in a
    /// row without lowering its best total violation by at least `stall_gain` of it.
    /// Default 6.
    pub stall_limit: u32,
    /// The fraction of the best violation an SQP iteration must remove to count as
    /// progress. Default 0.1.
    pub stall_gain: f64,
    /// How many of the rows most violated at an SQP iterate start the QP when there is no
    /// earlier active set (the QP's answer does not depend on its starting rows; these are
    /// the ones the dual method would add first anyway, without a search for each).
    /// Default 4.
    pub crash_rows: usize,
    /// Forward-backward passes of the interval contraction that rules out the relaxation
    /// stages (see `relax.rs`). Default 8: more passes proved few more searches hopeless,
    /// and bisecting the real variables' box on top cost more time than it saved
    /// (`BENCHMARKS.md`, "Tier 2's structure").
    pub contract_rounds: u32,
    /// The CRE's trust-region refinement stops when the region is this small relative to
    /// the action's scale, or when an accepted step lowers the merit by less than this
    /// relative amount: the slack is then known to far better than any tolerance a policy
    /// states. Default 1e-7.
    pub trust_tol: f64,
    /// Penalty per unit of slack (times the row's `weight`) in the CRE's exact L1 term.
    /// Default 1e4.
    pub l1_penalty: f64,
    /// Quadratic regularisation of slack variables (keeps the QP's Hessian positive
    /// definite). Default 1e-4.
    pub slack_rho: f64,
    /// Relative difference of objectives below which two candidates tie (the first found
    /// wins). Default 1e-9.
    pub tie: f64,
    /// Turn warm starting off: no warm re-repair, and every QP starts from the rows most
    /// violated at its iterate instead of the last active set (tests compare warm and cold
    /// repairs). Default off.
    pub cold: bool,
    /// Turn off the contraction that ends a hopeless search before its relaxation stages
    /// (tests compare the search with and without it). Default off.
    pub no_contraction: bool,
    /// Retry a relaxing QP that is infeasible without some slack columns with every column
    /// at once, not first with those its certificate names (tests compare the two).
    /// Default off.
    pub every_slack: bool,
}

impl Default for RepairSettings {
    fn default() -> Self {
        RepairSettings {
            node_budget: NODE_BUDGET,
            work_factor: WORK_FACTOR,
            int_span: 4,
            stall_limit: 6,
            stall_gain: 0.1,
            crash_rows: 4,
            contract_rounds: 8,
            trust_tol: 1e-7,
            l1_penalty: 1e4,
            slack_rho: 1e-4,
            tie: 1e-9,
            cold: false,
            no_contraction: false,
            every_slack: false,
        }
    }
}

/// A setting [`RepairSettings::validate`] refuses: which one, with its rule as the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum InvalidSetting {
    /// `node_budget` is 0.
    #[error("repair setting `node_budget` must be at least 1")]
    NodeBudget,
    /// `work_factor` is 0.
    #[error("repair setting `work_factor` must be at least 1")]
    WorkFactor,
    /// `stall_limit` is 0.
    #[error("repair setting `stall_limit` must be at least 1")]
    StallLimit,
    /// `int_span` is negative, or so large that the int candidates would swamp a search.
    #[error("repair setting `int_span` must be in 0..=1000")]
    IntSpan,
    /// `l1_penalty` is not finite and positive.
    #[error("repair setting `l1_penalty` must be finite and positive")]
    L1Penalty,
    /// `slack_rho` is not finite and positive (the QP's Hessian would not be positive
    /// definite).
    #[error("repair setting `slack_rho` must be finite and positive")]
    SlackRho,
    /// `stall_gain` is not strictly between 0 and 1.
    #[error("repair setting `stall_gain` must lie strictly between 0 and 1")]
    StallGain,
    /// `trust_tol` is not strictly between 0 and 1.
    #[error("repair setting `trust_tol` must lie strictly between 0 and 1")]
    TrustTol,
    /// `tie` is not in [0, 1).
    #[error("repair setting `tie` must be in [0, 1)")]
    Tie,
}

impl RepairSettings {
    /// `Ok` when the search can run with these settings.
    ///
    /// # Errors
    ///
    /// The first setting out of its range: a zero `node_budget`, `work_factor` or
    /// `stall_limit`; an `int_span` outside `0..=1000`; an `l1_penalty` or `slack_rho` that
    /// is not finite and positive (the slack's Hessian entry and price); a `stall_gain` or
    /// `trust_tol` outside (0, 1); a `tie` outside [0, 1).
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        let positive = |x: f64| x.is_finite() && x > 0.0;
        let fraction = |x: f64| x > 0.0 && x < 1.0;
        if self.node_budget == 0 {
            return Err(InvalidSetting::NodeBudget);
        }
        if self.work_factor == 0 {
            return Err(InvalidSetting::WorkFactor);
        }
        if self.stall_limit == 0 {
            return Err(InvalidSetting::StallLimit);
        }
        if !(0..=1000).contains(&self.int_span) {
            return Err(InvalidSetting::IntSpan);
        }
        if !positive(self.l1_penalty) {
            return Err(InvalidSetting::L1Penalty);
        }
        if !positive(self.slack_rho) {
            return Err(InvalidSetting::SlackRho);
        }
        if !fraction(self.stall_gain) {
            return Err(InvalidSetting::StallGain);
        }
        if !fraction(self.trust_tol) {
            return Err(InvalidSetting::TrustTol);
        }
        if !(self.tie >= 0.0 && self.tie < 1.0) {
            return Err(InvalidSetting::Tie);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(RepairSettings::default().validate(), Ok(()));
    }

    #[test]
    fn settings_the_search_cannot_run_with_are_refused() {
        let d = RepairSettings::default();
        let bad = [
            (
                RepairSettings {
                    node_budget: 0,
                    ..d
                },
                InvalidSetting::NodeBudget,
            ),
            (
                RepairSettings {
                    work_factor: 0,
                    ..d
                },
                InvalidSetting::WorkFactor,
            ),
            (
                RepairSettings {
                    stall_limit: 0,
                    ..d
                },
                InvalidSetting::StallLimit,
            ),
            (
                RepairSettings { int_span: -1, ..d },
                InvalidSetting::IntSpan,
            ),
            (
                RepairSettings {
                    l1_penalty: 0.0,
                    ..d
                },
                InvalidSetting::L1Penalty,
            ),
            (
                RepairSettings {
                    slack_rho: f64::NAN,
                    ..d
                },
                InvalidSetting::SlackRho,
            ),
            (
                RepairSettings {
                    stall_gain: 1.0,
                    ..d
                },
                InvalidSetting::StallGain,
            ),
            (
                RepairSettings {
                    trust_tol: 0.0,
                    ..d
                },
                InvalidSetting::TrustTol,
            ),
            (RepairSettings { tie: -1e-9, ..d }, InvalidSetting::Tie),
        ];
        for (s, e) in bad {
            assert_eq!(s.validate(), Err(e), "{s:?}");
        }
    }
}
