//! The modeled cost of a search: a deterministic count of its work (see
//! [`ModeledCost`]), which `[governor] enforce_deadline` bounds.

/// The modeled cost of a repair search: a deterministic count of its work, in nanoseconds of
/// the reference machine (the project's 2-core x86-64 box, one core).
///
/// # Why a model and not a clock
///
/// `[governor] enforce_deadline` makes `deadline_us` bound the search. A search cut off
/// by a measured clock would answer differently under load, and `aioss audit replay` could
/// not re-derive its decisions. The work counted here depends only on the inputs, so the
/// same proposal stops at the same point on every machine; on a machine slower than the
/// reference, the time it stands for is proportionally longer, which `timing.met` still
/// reports as measured.
///
/// The model is linear in what the search does: a base per repair, a price per SQP step
/// (its Tier 1 re-check), per QP built and solved (gradients, assembly), per active-set
/// iteration, `n³` per solve (the Hessian's factorisation) and `n·m` per active-set
/// iteration (the search for the most violated of `m` rows over `n` columns, slack columns
/// included), and a price per interval contraction. The coefficients (the `COST_*`
/// constants) are a least-squares fit of the measured time of repaired and blocked
/// warehouse proposals and agent-tools searches; where a deadline matters (searches of
/// hundreds of µs) it tracks the measured time closely, and below a few tens of µs it
/// overestimates (the base). `BENCHMARKS.md` ("Tier 2's structure" and the deadline
/// sections) has the fit, its accuracy and what enforcing the deadline costs in repairs;
/// `cargo run --release -p aioss-core --example costfit -- POLICY STREAM` checks it on
/// another policy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModeledCost(pub u64);

impl ModeledCost {
    /// The modeled cost in whole microseconds (rounded down).
    pub fn micros(self) -> u64 {
        self.0 / 1000
    }
}

/// Base cost of a repair search (ns of the reference machine).
pub(super) const COST_BASE_NS: u64 = 17_400;
/// Cost of one SQP step (its Tier 1 re-check), whether or not it builds a QP.
pub(super) const COST_STEP_NS: u64 = 1_200;
/// Cost of building and solving one QP (the rows' gradients, the assembly), before its
/// iterations.
const COST_QP_SOLVE_NS: u64 = 3_780;
/// Cost of one active-set iteration of a QP, before its `n·m` term.
const COST_QP_ITER_NS: u64 = 130;
/// Hundredths of a ns per `n·m` of a QP's active-set iterations (and its start).
const COST_QP_NM_CENTI_NS: u64 = 65;
/// Hundredths of a ns per `n³` of a QP solve.
const COST_QP_N3_CENTI_NS: u64 = 63;
/// Cost of one interval contraction of the action box (`Repairer::stage_impossible`).
pub(super) const COST_CONTRACT_NS: u64 = 18_900;
/// The share of `deadline_us`, in tenths, a search may spend when the deadline is enforced;
/// the rest is left for parsing, Tier 1, the fallback's check and the decision's JSON.
const DEADLINE_SHARE_TENTHS: u64 = 9;

/// The modeled cost at which a repair search stops under `[governor] enforce_deadline`:
/// nine tenths of `deadline_us`. `None` when the deadline is only reported.
pub fn search_budget(g: &crate::policy::GovernorSettings) -> Option<ModeledCost> {
    g.enforce_deadline
        .then(|| ModeledCost(g.deadline_us.saturating_mul(100 * DEADLINE_SHARE_TENTHS)))
}

/// The modeled cost of one QP solve with `n` columns, `m` rows and `iters` active-set
/// iterations.
pub(super) fn qp_cost(n: usize, m: usize, iters: u32) -> u64 {
    let n = n as u64;
    let m = m as u64;
    let it = u64::from(iters);
    let nm = n.saturating_mul(m).saturating_mul(it.saturating_add(1));
    COST_QP_SOLVE_NS
        .saturating_add(it.saturating_mul(COST_QP_ITER_NS))
        .saturating_add(nm.saturating_mul(COST_QP_NM_CENTI_NS) / 100)
        .saturating_add(n.saturating_pow(3).saturating_mul(COST_QP_N3_CENTI_NS) / 100)
}
