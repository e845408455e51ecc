//! Tier 2: repair by projection, mixed discrete search, the Conflict Resolution Engine and
//! the certified fallback.
//!
//! Everything here is an *untrusted proposer*. It searches for the action nearest the
//! proposal in the policy's metric,
//!
//! ```text
//! minimise ‖u − u₀‖²_W + Σ discrete-change costs   subject to every active row,
//! ```
//!
//! but nothing it finds is returned as a repair unless Tier 1 ([`crate::tier1::Checker`]) has
//! certified every active critical row over the whole state box. A bug here can cost
//! optimality, never safety: when the search fails, the answer is the fallback, itself
//! re-checked by Tier 1 against the current state.
//!
//! * **Continuous part.** A bounded sequence of linearised QPs (sequential quadratic
//!   programming): each active numeric row's margin is linearised at the current iterate
//!   with reverse-mode derivatives over its cone, using the *lower bound* of its Tier 1
//!   margin interval as the constant term. That is the robust tightening: the linear model
//!   asks for the margin over the whole state box, not at the nominal state. Each row also
//!   backs off a tiny `δ` from its boundary so that Tier 1's outward rounding certifies the
//!   boundary point instead of calling it UNCERTAIN. Affine rows are solved exactly in one
//!   step; curved rows (speed discs, barriers, Lyapunov) converge in a few. The iterates
//!   stay inside the action variables' `[min, max]`.
//! * **Rows that are not `<=` / `<` over the real action variables** (the private
//!   `Repairer::model`):
//!   * `lhs != rhs` is kept on one side, `lhs − rhs ≥ δ` or `≤ −δ`: the side the current
//!     point is on (its midpoint's sign);
//!   * a boolean row that is an `or` of comparisons, when it does not hold, is linearised
//!     through the comparison closest to holding (other disjuncts, such as
//!     `mode == 'move'`, are left to the discrete search);
//!   * both choices are greedy, not a branch over every side: when the nearest safe point
//!     lies on another side the repair can miss it, and ends in a farther point or the
//!     fallback;
//!   * `lhs == rhs` over real action variables has **no** linear model. Tier 1 certifies an
//!     equality only where `lhs − rhs` evaluates to exactly zero (never with a state
//!     interval of positive width), which a floating-point QP step cannot promise. A
//!     proposal that breaks such a row, or whose repair would have to move while keeping
//!     it, ends in the certified fallback (or another discrete value), never in an
//!     uncertified action. Write such conditions as a pair of `<=` rows with a tolerance
//!     (`abs(x - c) <= 1e-6`), or over discrete variables.
//! * **Discrete part.** Enum, bool and int action variables are searched best-first over
//!   their values in order of `discrete_cost` (a rule's `set` is tried first); a branch stops
//!   the search when its discrete cost alone cannot beat the best found, or at the node
//!   budget. A node with a solution does not advance a variable that no row binding there
//!   reads (the successor would cost more for the same continuous part), and a node found
//!   hopeless (a row fails for every real action beyond any tolerance) is not tried again
//!   in a later relaxation stage; a solution that no row reading a discrete variable binds
//!   ends the stage's search (every queued node shares those rows and costs more). When a
//!   node's QP is infeasible and the QP's certificate (a Farkas combination of its rows)
//!   uses only rows that every other node shares unchanged (`Repairer::everywhere`), the
//!   stage ends there: every node would fail on
//!   that same subsystem. (On the warehouse mix this cut the search time by ~10 % with no
//!   decision changed.)
//! * **Screening.** Once per node, rows that hold over the whole box of the real action
//!   ranges (an affine row by its gradient bound, a curved one by Tier 1 over the box)
//!   are left out of the QP; inside the SQP, Tier 1 re-evaluates only the instructions
//!   that depend on a real action variable (state and discrete values are fixed there).
//! * **CRE.** When no candidate satisfies every row, non-critical rows are relaxed in
//!   priority order — low, then low and medium, then low, medium and high — each taking a
//!   slack of at most its `tolerance`, with an exact L1 penalty (weighted by the row's
//!   `weight`) so no slack is used where none is needed. Critical rows are never relaxed.
//!   Once a point within the tolerances is found, the SQP continues as a trust-region
//!   method on that penalty function (a curved row's first acceptable iterate can use much
//!   more slack than needed) and returns the best point. A QP gives a slack column only to
//!   the relaxable rows not SAT at the iterate or active in the node's last QP. When that
//!   QP is infeasible, the point is solved again with columns for the relaxable rows its
//!   Farkas certificate combines, and when that is not enough (still infeasible, or a row
//!   without a column priced above its slack's penalty), with a column for every
//!   relaxable row: the answer of the QP with every column, at a fraction of its size
//!   (warehouse blocked proposals 1.68 s → 0.67 s over two sessions; no decision changed).
//!   The step is damped on the violation the stage may not relax, not on the slack it
//!   allows.
//! * **Bounded work.** The whole repair — every node of every stage — shares one
//!   deterministic budget of SQP iterations, [`WORK_FACTOR`] × `max_iterations`, of which
//!   each stage may spend its share of what is left. An SQP that stops lowering its
//!   violation (beyond what its stage may relax) gives up after a few iterations, and a row
//!   Tier 1 still finds a rounding-width short of its boundary gets a larger back-off at the
//!   next linearisation. A count of iterations, not a clock, so the same input gives the
//!   same answer on every machine. With `[governor] enforce_deadline`, the search also
//!   stops when its [`ModeledCost`], a count of its work weighted by what each part costs,
//!   reaches nine tenths of `deadline_us`.
//! * **Boundaries the linearisation cannot reach.** A row that already holds keeps its
//!   margin but is not asked to gain the back-off (a row SAT at exactly 0 with no gradient,
//!   such as `dq^2 <= 0` at rest, would otherwise empty every QP); a QP left empty by the
//!   back-off alone is solved again without it (`amount <= 0` with `amount >= 0`); iterates
//!   within rounding noise of the proposal's value, a bound or 0 snap to it; a row short of
//!   its boundary by less than the QP's feasibility tolerance gets a hundredfold back-off;
//!   and linear convergence to 0 (Newton on a flat boundary) is completed by an Aitken
//!   extrapolation. A row `0 − Σ (k_i x_i)² >= 0` (flat at its only feasible point) is
//!   not linearised at all: its variables get the bounds `[0, 0]` (`flat_rows`). Each came
//!   from a proposal in `tests/data/repair-bugs.jsonl`.
//! * **Warm re-repair.** For a policy whose rows are all affine in the real action variables
//!   (no discrete action variable, no guard that reads one), a proposal at the same state
//!   as the last repair gets the last search's first QP back with only `g` and the
//!   back-off recomputed, warm-started from the last active set and its kept
//!   factorisation, and one Tier 1 check of the answer (`Repairer::quick`). Whatever that
//!   check does not accept goes through the full repair. It is what makes a control loop's
//!   re-solve after a small change of `u₀` cost a QP and a check instead of a search.
//! * **Fallback.** If even that fails, the fallback action, with its Tier 1 verdict at the
//!   current state.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::contract::Contractor;
use crate::expr::typeck::{Func, Op2};
use crate::interval::Interval;
use crate::policy::{Criticality, Policy, Sense, VarType};
use crate::qp::{QpStatus, QpWorkspace};
use crate::tape::{Inst, OpList, Tape};
use crate::tier1::{Checker, RowCheck, Status, Summary};

/// Node budget of the discrete search, per relaxation stage.
pub const NODE_BUDGET: u32 = 64;
/// Penalty per unit of slack (times the row's `weight`) in the CRE's exact L1 term.
const L1_PENALTY: f64 = 1e4;
/// Quadratic regularisation of slack variables (keeps the QP's Hessian positive definite).
const SLACK_RHO: f64 = 1e-4;
/// Relative difference of objectives below which two candidates tie (the first found wins).
const TIE: f64 = 1e-9;
/// How many int values on each side of the proposal the search considers.
const INT_SPAN: i32 = 4;
/// The whole repair (every discrete node of every relaxation stage) may run at most this
/// many times the policy's `max_iterations` SQP iterations. Each stage may spend its share
/// of what is left (a quarter for the first, a third for the second, ...), so the CRE's
/// stages are still reached when the unrelaxed search finds nothing. This is what bounds a
/// hopeless proposal's cost: without it, every stage ran every node to `max_iterations`
/// (an infeasible warehouse proposal took up to 26 ms).
pub const WORK_FACTOR: u32 = 8;
/// An SQP that has found no acceptable point gives up after this many iterations in a row
/// without lowering its best total violation by at least [`STALL_GAIN`].
const STALL_LIMIT: u32 = 6;
/// The fraction of the best violation an iteration must remove to count as progress.
const STALL_GAIN: f64 = 0.1;
/// How many of the rows most violated at an SQP iterate start the QP when there is no
/// earlier active set (see `continuous`).
const CRASH_ROWS: usize = 4;
/// Forward-backward passes of the contraction that rules out a relaxation stage
/// (`Repairer::stage_impossible`). On the warehouse's blocked proposals 4 passes proved
/// 545 of 1,338 searches hopeless, 8 proved 565, 16 proved 569; bisecting the real
/// variables' box up to 6 times on top proved 574, for more time than it saved.
const CONTRACT_ROUNDS: u32 = 8;
/// The CRE's trust-region refinement stops when the region is this small relative to the
/// action's scale, or when an accepted step lowers the merit by less than this relative
/// amount: the slack is then known to far better than any tolerance a policy states.
const TRUST_TOL: f64 = 1e-7;

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
/// constants) are a least-squares fit of the measured time of 6,000 repaired and blocked
/// warehouse proposals and 730 agent-tools searches. Over 500 µs, where a deadline
/// matters, it is within 0.87–1.16× of the measured time on 6,000 other warehouse
/// proposals (5th to 95th percentile), and 0.95–1.08× over the agent-tools searches. Below
/// ~50 µs it overestimates (the base). `cargo run --release -p aioss-core --example costfit
/// -- POLICY STREAM` checks it on another policy; `BENCHMARKS.md` has the fit and what
/// enforcing the deadline costs in repairs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct ModeledCost(pub u64);

impl ModeledCost {
    /// The modeled cost in whole microseconds (rounded down).
    pub fn micros(self) -> u64 {
        self.0 / 1000
    }
}

/// Base cost of a repair search (ns of the reference machine).
const COST_BASE_NS: u64 = 17_400;
/// Cost of one SQP step (its Tier 1 re-check), whether or not it builds a QP.
const COST_STEP_NS: u64 = 1_200;
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
const COST_CONTRACT_NS: u64 = 18_900;
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
fn qp_cost(n: usize, m: usize, iters: u32) -> u64 {
    let n = n as u64;
    let m = m as u64;
    let it = u64::from(iters);
    let nm = n.saturating_mul(m).saturating_mul(it.saturating_add(1));
    COST_QP_SOLVE_NS
        .saturating_add(it.saturating_mul(COST_QP_ITER_NS))
        .saturating_add(nm.saturating_mul(COST_QP_NM_CENTI_NS) / 100)
        .saturating_add(n.saturating_pow(3).saturating_mul(COST_QP_N3_CENTI_NS) / 100)
}

/// The last solver status of a repair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SolverStatus {
    /// The QP solved (or no QP was needed).
    Solved,
    /// The (linearised) feasible set is empty.
    Infeasible,
    /// An iteration cap was reached first.
    MaxIterations,
    /// NaN, overflow or a singular system.
    NumericalError,
    /// The search reached its modeled deadline (`[governor] enforce_deadline`; see
    /// [`ModeledCost`]).
    Deadline,
}

impl SolverStatus {
    /// The name used in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            SolverStatus::Solved => "SOLVED",
            SolverStatus::Infeasible => "INFEASIBLE",
            SolverStatus::MaxIterations => "MAX_ITERATIONS",
            SolverStatus::NumericalError => "NUMERICAL_ERROR",
            SolverStatus::Deadline => "DEADLINE",
        }
    }
}

/// What the repair produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairOutcome {
    /// A certified action satisfying every active row.
    Certified,
    /// A certified action that relaxed some non-critical rows (see [`Repair::relaxed`]).
    Relaxed,
    /// No certified repair exists within the budgets: the fallback.
    Fallback,
}

/// The result of [`Repairer::repair`].
#[derive(Clone, Debug, PartialEq)]
pub struct Repair {
    /// The action (encoded, one value per action variable).
    pub action: Vec<f64>,
    /// What it is.
    pub outcome: RepairOutcome,
    /// The last solver status.
    pub status: SolverStatus,
    /// `sqrt(‖u − u₀‖²_W + Σ discrete-change costs)`; 0 for the proposal itself, and the
    /// distance to the fallback when the outcome is [`RepairOutcome::Fallback`].
    pub distance: f64,
    /// Lattice rows binding at the solution (in row order).
    pub active_set: Vec<usize>,
    /// Relaxed rows and their slack (how far the margin is below zero).
    pub relaxed: Vec<(usize, f64)>,
    /// SQP iterations plus QP iterations, summed over the search.
    pub iterations: u32,
    /// SQP iterations alone (each a Tier 1 check and at most one QP), summed over the
    /// search: at most [`WORK_FACTOR`] × `max_iterations`.
    pub steps: u32,
    /// Discrete candidates examined.
    pub nodes: u32,
    /// The search's modeled cost (0 when no search ran: a warm re-repair, a proposal that
    /// already holds).
    pub cost: ModeledCost,
    /// Tier 1 per row at the returned action.
    pub checks: Vec<RowCheck>,
    /// Does Tier 1 certify every active critical row at the returned action? Always true
    /// for `Certified` and `Relaxed`; for `Fallback`, false means the fallback itself could
    /// not be certified at this state (a FAILED evaluation).
    pub certified: bool,
}

/// A candidate that passed Tier 1.
#[derive(Clone, Debug)]
struct Found {
    action: Vec<f64>,
    objective: f64,
    /// The CRE's exact L1 penalty of the slack used (0 without relaxation).
    penalty: f64,
    relaxed: Vec<(usize, f64)>,
    active: Vec<usize>,
    /// Tier 1 at `action`: the check that accepted it.
    checks: Vec<RowCheck>,
}

#[derive(Clone, Debug, PartialEq)]
struct Node {
    cost: f64,
    seq: u32,
    ranks: Vec<usize>,
    last: usize,
}
impl Eq for Node {}
impl Ord for Node {
    fn cmp(&self, o: &Self) -> Ordering {
        // Min-heap on (cost, seq): deterministic order.
        o.cost.total_cmp(&self.cost).then(o.seq.cmp(&self.seq))
    }
}
impl PartialOrd for Node {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}

/// Reusable Tier 2 working memory for one policy (one per agent stream: it also keeps the
/// warm-start active set).
#[derive(Debug)]
pub struct Repairer {
    real: Vec<usize>,
    discrete: Vec<usize>,
    /// Per row: `(index into real, tape instruction)` of the real variables in its cone.
    row_vars: Vec<Vec<(usize, u32)>>,
    row_reads_real: Vec<bool>,
    /// Per lattice row: its cone's instructions that a real action variable reaches (the
    /// reverse sweep of its gradient needs no others).
    grad_cone: Vec<Vec<u32>>,
    qp: QpWorkspace,
    /// The search's own Tier 1 (its verdicts guide the search; they certify nothing).
    t1: Checker,
    adj: Vec<f64>,
    work: Vec<Interval>,
    a: Vec<f64>,
    b: Vec<f64>,
    g: Vec<f64>,
    h: Vec<f64>,
    /// What each QP row is: `Some(lattice row)` or `None` for a bound.
    qrow: Vec<Option<usize>>,
    /// The back-off each QP row asks for (0 for bounds), so an infeasible QP can be
    /// solved again without it.
    needs: Vec<f64>,
    /// The real parts of the last three SQP iterates, oldest first (for the
    /// extrapolation in `continuous`).
    hist: [Vec<f64>; 3],
    /// Slack column of each lattice row at the current stage.
    slack_col: Vec<Option<usize>>,
    /// Lattice rows active at the last solve (the warm start).
    warm_rows: Vec<usize>,
    warm_idx: Vec<usize>,
    /// Per row: is its margin affine in the real action variables with constant
    /// coefficients (see [`affine_rows`])? Its gradient is then computed once and kept.
    affine: Vec<bool>,
    /// The kept gradients of affine rows, aligned with `row_vars` (empty until computed).
    grad: Vec<Vec<f64>>,
    /// Per row: how the SQP linearises it (see [`Repairer::model`]).
    lin: Vec<Lin>,
    /// The gradient of the row being linearised.
    gtmp: Vec<f64>,
    /// The real action variables' values at the current SQP iterate (`u[real[j]]`).
    ureal: Vec<f64>,
    /// Per row: the factor on the back-off `δ` for the current SQP. A row that Tier 1 still
    /// finds (barely) violated after a step that kept it binding gets ten times the back-off
    /// at the next linearisation: the outward rounding of its evaluation was wider than `δ`.
    boost: Vec<f64>,
    /// The `n` the QP's Hessian is factored for (0: none).
    hess_n: usize,
    /// The action `t1` last checked, and whether that holds for the current
    /// repair's inputs (reset at the start of every repair).
    checked: Vec<f64>,
    checked_valid: bool,
    /// Has this repair kept its first node's check ([`Repairer::tier1_node`])?
    start_valid: bool,
    /// The curved rows over the whole real action box at the current node (a screen, not a
    /// check: see [`Repairer::screen`]), in slots of their own.
    box_slots: Vec<Interval>,
    box_checks: Vec<RowCheck>,
    /// The instructions of the curved rows that read real action variables (margins and
    /// guards): what [`Repairer::screen`] evaluates over the box.
    box_ops: OpList,
    /// The part of `box_ops` that depends on a discrete action variable: all that changes
    /// over the box from one node of a repair to the next (the state and the box are the
    /// same), so later nodes re-evaluate only these.
    box_disc_ops: OpList,
    /// Do `box_scratch.slots` hold an evaluation of `box_ops` for the current repair's
    /// inputs (reset at the start of every repair)?
    box_valid: bool,
    /// Per row: does its guard depend on a real action variable?
    guard_moves: Vec<bool>,
    /// Per affine row: `Σ |∂margin/∂u_j| · (max_j − min_j)`, how far its margin can move
    /// over the action box (NaN for other rows). Known from the start, not from a row's
    /// first screen: a screen decided by it differs from one that computes the row's bound
    /// (regression test `a_reused_cold_repairer_counts_the_iterations_of_a_fresh_one`).
    reach: Vec<f64>,
    /// Per discrete action variable (in `discrete` order), per row: does the row's margin
    /// or guard read it?
    disc_rows: Vec<Vec<bool>>,
    /// Per row: SAT (or inactive) over the whole real action box at the current node, so
    /// no iterate can break it and the QP leaves it out (see `continuous`).
    screened: Vec<bool>,
    /// Set by `continuous` when its node can succeed in no relaxation stage: a row is
    /// violated, beyond any tolerance it has, for every real action (its guard surely
    /// true over the box). The search then skips the node in later stages.
    hopeless: bool,
    /// The rows that made the node hopeless.
    hopeless_rows: Vec<usize>,
    /// Set by `continuous` when its node's QP proved the node infeasible with rows that
    /// are the same at every discrete node of the stage (see [`Repairer::everywhere`]):
    /// the search then ends the stage.
    infeasible_everywhere: bool,
    /// Working memory for the QP's certificate of infeasibility.
    cert: Vec<f64>,
    /// Working memory for the QP's starting rows when there is no earlier active set.
    crash: Vec<(f64, usize)>,
    /// Can this policy take the warm re-repair ([`Repairer::quick`])? No discrete action
    /// variable, and every row that reads a real action variable is a `<=` / `<` row,
    /// affine in them with constant coefficients, whose guard reads none.
    quick_ok: bool,
    /// Per input slot: is it an action variable's (ignored when comparing states)?
    action_slot: Vec<bool>,
    /// The first QP of the last repair's search (kept when `quick_ok`): its rows `a`
    /// (every active, unscreened row that reads a real variable, then the bounds), what
    /// each is, each row's `b` before the back-off (`lo − ∇·u`: for an affine row the
    /// constant of its model, the same at every point), and the inputs it was built for.
    quick_a: Vec<f64>,
    quick_rows: Vec<Option<usize>>,
    quick_b0: Vec<f64>,
    quick_inputs: Vec<Interval>,
    quick_valid: bool,
    /// Was the QP workspace's last solve on `quick_a` (so its copy of the rows can be kept)?
    qp_has_quick_rows: bool,
    /// How many QPs were built from the kept QP's rows (`rows_from_cache`).
    kept_rows_used: u64,
    /// Interval contraction over the rows a relaxation stage must satisfy, with its box
    /// and per-row bounds (see [`Repairer::stage_impossible`]).
    contractor: Contractor,
    cbox: Vec<Interval>,
    cneed: Vec<Option<f64>>,
    /// Per row, the real variables it pins to zero (see [`flat_rows`]); per real variable,
    /// is it pinned in this SQP step, and per row, does it pin in this step (it then gets
    /// no linear model)?
    flat: Vec<Vec<usize>>,
    any_flat: bool,
    pinned: Vec<bool>,
    pin_row: Vec<bool>,
    /// Per row, [`stage_tolerance`] in the stage of the running SQP.
    stage_tol: Vec<f64>,
    /// Per row: a slack column for the rest of this SQP, because a QP without it was
    /// infeasible and its certificate used the row.
    extra_slack: Vec<bool>,
    /// How many relaxation stages the contraction ruled out (a count for tests and
    /// profiles).
    stages_ruled_out: u64,
    /// Turn warm starting off (for tests comparing warm and cold).
    pub cold: bool,
    /// Turn the contraction that ends a hopeless search early off (for tests comparing
    /// the search with and without it).
    pub no_contraction: bool,
    /// The current search's modeled cost so far, and where it must stop (`u64::MAX` when
    /// the deadline is not enforced).
    cost: u64,
    cost_cap: u64,
    /// Retry a relaxing QP that is infeasible without some slack columns with every
    /// column at once, not first with those its certificate names (for tests comparing
    /// the two).
    pub every_slack: bool,
    /// How many QPs were retried with the certificate's columns (a count for tests).
    targeted_retries: u64,
}

impl Repairer {
    /// Working memory sized for `p`.
    pub fn new(p: &Policy) -> Self {
        let real: Vec<usize> = p
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.ty == VarType::Real)
            .map(|(i, _)| i)
            .collect();
        let discrete: Vec<usize> = p
            .actions
            .iter()
            .enumerate()
            .filter(|(_, a)| a.ty.is_discrete())
            .map(|(i, _)| i)
            .collect();
        let lat = &p.lattice;
        let row_vars: Vec<Vec<(usize, u32)>> = lat
            .rows
            .iter()
            .map(|r| {
                real.iter()
                    .enumerate()
                    .filter_map(|(j, &ai)| {
                        let inst = lat.action_inst.get(ai).copied().flatten()?;
                        r.cone.binary_search(&inst).ok().map(|_| (j, inst))
                    })
                    .collect()
            })
            .collect();
        let row_reads_real = row_vars.iter().map(|v| !v.is_empty()).collect();
        let seeds: Vec<u32> = real
            .iter()
            .filter_map(|&ai| lat.action_inst.get(ai).copied().flatten())
            .collect();
        let dep = lat.tape.dependents(&seeds);
        // Each row's cone without the instructions no real action variable reaches: their
        // adjoints flow only into other such instructions, never into a real variable's,
        // so the reverse sweep skips them and every gradient is bit for bit the same (the
        // sweep keeps the cone's order, and with it each sum's).
        let grad_cone: Vec<Vec<u32>> = lat
            .rows
            .iter()
            .map(|r| {
                r.cone
                    .iter()
                    .copied()
                    .filter(|&k| dep.get(k as usize).copied().unwrap_or(true))
                    .collect()
            })
            .collect();
        let disc_seeds: Vec<u32> = discrete
            .iter()
            .filter_map(|&ai| lat.action_inst.get(ai).copied().flatten())
            .collect();
        let dep_disc = lat.tape.dependents(&disc_seeds);
        let affine = affine_rows(p, &real);
        let guard_moves: Vec<bool> = lat
            .rows
            .iter()
            .map(|r| {
                r.guard
                    .is_some_and(|g| dep.get(g as usize).copied().unwrap_or(true))
            })
            .collect();
        let curved: Vec<u32> = lat
            .rows
            .iter()
            .zip(&row_vars)
            .zip(&affine)
            .filter(|((_, v), &aff)| !v.is_empty() && !aff)
            .flat_map(|((r, _), _)| std::iter::once(r.margin).chain(r.guard))
            .collect();
        let box_ops = lat.tape.subset(&curved);
        let box_disc_ops = box_ops.filter(&dep_disc);
        let disc_rows: Vec<Vec<bool>> = discrete
            .iter()
            .map(|&ai| {
                let seed: Vec<u32> = lat
                    .action_inst
                    .get(ai)
                    .copied()
                    .flatten()
                    .into_iter()
                    .collect();
                let d = lat.tape.dependents(&seed);
                let on = |k: u32| d.get(k as usize).copied().unwrap_or(true);
                lat.rows
                    .iter()
                    .map(|r| on(r.margin) || r.guard.is_some_and(on))
                    .collect()
            })
            .collect();
        let lin = lin_kinds(p, &real);
        let flat = flat_rows(p, &real);
        let pinned = vec![false; real.len()];
        let quick_ok = discrete.is_empty()
            && (0..lat.rows.len()).all(|i| {
                row_vars.get(i).is_none_or(Vec::is_empty)
                    || (affine.get(i).copied().unwrap_or(false)
                        && matches!(lin.get(i), Some(Lin::Margin))
                        && !guard_moves.get(i).copied().unwrap_or(true))
            });
        let mut action_slot = vec![false; p.layout.len as usize];
        for a in &p.actions {
            if let Some(x) = action_slot.get_mut(a.slot as usize) {
                *x = true;
            }
        }
        let nr = real.len();
        let nrows = lat.rows.len();
        // An affine row's gradient reads only the midpoints of constants, which every slot
        // array from `Tape::slots` holds: it is the one every point gives.
        let reach: Vec<f64> = {
            let slots = lat.tape.slots();
            let mut adj = vec![0.0; lat.tape.len()];
            lat.rows
                .iter()
                .enumerate()
                .map(|(i, row)| {
                    if !affine.get(i).copied().unwrap_or(false) {
                        return f64::NAN;
                    }
                    let cone = grad_cone.get(i).map_or(&[][..], Vec::as_slice);
                    lat.tape.grad_reverse(&slots, cone, row.margin, &mut adj);
                    let vars = row_vars.get(i).map_or(&[][..], Vec::as_slice);
                    let grad: Vec<f64> = vars
                        .iter()
                        .map(|&(_, inst)| adj.get(inst as usize).copied().unwrap_or(0.0))
                        .collect();
                    reach_of(p, &real, vars, &grad)
                })
                .collect()
        };
        let n_max = nr + nrows;
        let m_max = nrows + 2 * nr + 2 * nrows;
        Repairer {
            real,
            discrete,
            row_vars,
            row_reads_real,
            grad_cone,
            qp: QpWorkspace::new(n_max.max(1), m_max.max(1)),
            t1: Checker::new(lat),
            adj: vec![0.0; lat.tape.len()],
            work: Vec::with_capacity(p.layout.len as usize),
            a: Vec::with_capacity(m_max * n_max),
            b: Vec::with_capacity(m_max),
            g: Vec::with_capacity(n_max),
            h: Vec::with_capacity(n_max * n_max),
            qrow: Vec::with_capacity(m_max),
            needs: Vec::with_capacity(m_max),
            hist: [
                Vec::with_capacity(nr),
                Vec::with_capacity(nr),
                Vec::with_capacity(nr),
            ],
            slack_col: vec![None; nrows],
            warm_rows: Vec::new(),
            warm_idx: Vec::with_capacity(m_max),
            affine,
            lin,
            gtmp: Vec::with_capacity(nr),
            ureal: Vec::with_capacity(nr),
            grad: vec![Vec::new(); nrows],
            boost: vec![1.0; nrows],
            hess_n: 0,
            checked: Vec::with_capacity(p.actions.len()),
            checked_valid: false,
            start_valid: false,
            box_slots: lat.tape.slots(),
            box_checks: vec![RowCheck::default(); nrows],
            box_ops,
            box_disc_ops,
            box_valid: false,
            guard_moves,
            reach,
            disc_rows,
            screened: vec![false; nrows],
            hopeless: false,
            hopeless_rows: Vec::new(),
            infeasible_everywhere: false,
            cert: Vec::new(),
            crash: Vec::new(),
            quick_ok,
            action_slot,
            quick_a: Vec::new(),
            quick_rows: Vec::new(),
            quick_b0: Vec::new(),
            quick_inputs: Vec::new(),
            quick_valid: false,
            qp_has_quick_rows: false,
            kept_rows_used: 0,
            contractor: Contractor::new(lat),
            cbox: Vec::with_capacity(p.layout.len as usize),
            cneed: vec![None; nrows],
            any_flat: flat.iter().any(|c| !c.is_empty()),
            flat,
            pinned,
            pin_row: vec![false; nrows],
            stage_tol: Vec::with_capacity(nrows),
            extra_slack: vec![false; nrows],
            stages_ruled_out: 0,
            cold: false,
            no_contraction: false,
            cost: 0,
            cost_cap: u64::MAX,
            every_slack: false,
            targeted_retries: 0,
        }
    }

    /// `self.work`: the state of `inputs` with `action` in the action slots, each real
    /// action variable over its whole `[min, max]` when `boxed`.
    fn fill_work(&mut self, p: &Policy, inputs: &[Interval], action: &[f64], boxed: bool) {
        self.work.clear();
        self.work.extend_from_slice(inputs);
        for (a, x) in p.actions.iter().zip(action) {
            if let Some(s) = self.work.get_mut(a.slot as usize) {
                *s = if boxed && a.ty == VarType::Real {
                    Interval::new(a.min, a.max)
                } else {
                    Interval::point(*x)
                };
            }
        }
    }

    /// Tier 1 at `action` over the state in `inputs` (the trusted checker decides what it
    /// must evaluate again since its last check: within one repair the state is fixed, so
    /// mostly only the instructions that read an action variable); `self.t1.rows()` then
    /// holds each row's verdict. What the search learns here only guides it: the governor
    /// certifies whatever it executes with a check of its own.
    fn tier1(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) -> Summary {
        let s = self.t1.check(&p.lattice, inputs, action);
        self.checked.clear();
        self.checked.extend_from_slice(action);
        self.checked_valid = true;
        s
    }

    /// Tier 1 at a discrete node's first point. Every node of a repair starts from the same
    /// real values, so the first node's evaluation is kept ([`crate::tier1::Checker::mark`]):
    /// a later node's check starts from it and evaluates again only what reads a discrete
    /// variable (12 of the warehouse's 221 action-dependent instructions).
    fn tier1_node(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) {
        self.tier1(p, inputs, action);
        // (Without discrete variables there is one node: nothing to start from later.)
        if !self.start_valid && !self.discrete.is_empty() {
            self.t1.mark();
            self.start_valid = true;
        }
    }

    /// Which rows no real action in the box of the action ranges can break (into
    /// `self.screened`), and whether some row fails for every real action by more than any
    /// stage may relax (into `self.hopeless`). Needs `self.t1` checked at
    /// `action`, a point of the box.
    ///
    /// * A row that reads no real action variable is constant over the box: its point check
    ///   decides.
    /// * An affine row: its linear bound over the box, from its (constant) gradient.
    /// * A curved row: Tier 1 over the box, evaluating only those rows' instructions.
    ///
    /// A wrong screen could only cost optimality, never safety (Tier 1 still checks every
    /// row of every candidate), and it corrects itself: a screened row that an iterate breaks
    /// is no longer SAT, and rows that are not SAT always enter the QP.
    fn screen(&mut self, p: &Policy, inputs: &[Interval], action: &[f64]) {
        if !self.box_ops.is_empty() {
            self.fill_work(p, inputs, action, true);
            let lat = &p.lattice;
            // Within one repair only the discrete values change the box evaluation.
            let ops = if self.box_valid {
                &self.box_disc_ops
            } else {
                &self.box_ops
            };
            lat.tape.eval_subset(ops, &self.work, &mut self.box_slots);
            self.box_valid = true;
            lat.read_rows(&self.box_slots, &mut self.box_checks);
        }
        self.hopeless = false;
        self.hopeless_rows.clear();
        let scale = action.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for i in 0..p.lattice.rows.len() {
            let (Some(row), Some(c)) = (p.lattice.rows.get(i), self.t1.rows().get(i).copied())
            else {
                continue;
            };
            let tol = if row.criticality != Criticality::Critical
                && matches!(row.sense, Sense::Le | Sense::Lt)
            {
                p.constraints
                    .get(row.constraint)
                    .map_or(0.0, |k| k.tolerance)
            } else {
                0.0
            };
            let fails = |c: &RowCheck| {
                c.active
                    && c.status == Status::Violated
                    && !c.margin.is_invalid()
                    && c.margin.hi < -tol
            };
            let ok = |c: &RowCheck| !c.active || c.status == Status::Sat;
            let (screen, hopeless) = if !self.row_reads_real.get(i).copied().unwrap_or(false) {
                let guard_moves = self.guard_moves.get(i).copied().unwrap_or(true);
                (ok(&c), fails(&c) && !guard_moves)
            } else if self.affine.get(i).copied().unwrap_or(false) {
                // The exact bound lies in [lo − reach, lo] (`u` is in the box), so the kept
                // `reach` of the row decides most rows without the gradient: far from their
                // boundary (`lo − reach > 0`) they hold over the box; with `lo ≤ reach/2`
                // they are left in the QP without computing the bound (some of those hold
                // over the box too, but leaving a row in costs a QP row, never an answer,
                // and computing every bound cost the dense repair bench 1.4 µs).
                let reach = self.reach.get(i).copied().unwrap_or(f64::NAN);
                let lo = c.margin.lo;
                let quick = if !(c.active && c.status == Status::Sat) {
                    Some(!c.active)
                } else if lo - 0.5 * reach <= 1e-9 * scale {
                    Some(false)
                } else if lo - reach > 1e-9 * scale {
                    Some(true)
                } else {
                    None
                };
                if let Some(q) = quick {
                    if let Some(s) = self.screened.get_mut(i) {
                        *s = q;
                    }
                    continue;
                }
                let mut bound = f64::NEG_INFINITY;
                if c.active && c.status == Status::Sat {
                    if let Some(lo) = self.model(p, i, c) {
                        let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
                        bound = lo;
                        for (&(j, _), &g) in vars.iter().zip(&self.gtmp) {
                            let (Some(&ai), true) = (self.real.get(j), g.is_finite()) else {
                                bound = f64::NEG_INFINITY;
                                break;
                            };
                            let (Some(a), Some(&uj)) = (p.actions.get(ai), action.get(ai)) else {
                                continue;
                            };
                            bound += (g * (a.min - uj)).min(g * (a.max - uj));
                        }
                    }
                }
                (bound > 1e-9 * scale, false)
            } else {
                let b = self.box_checks.get(i).copied().unwrap_or_default();
                let slots = &self.box_slots;
                let surely = row.guard.is_none_or(|g| {
                    slots
                        .get(g as usize)
                        .is_some_and(|x| x.truth() == crate::interval::Truth::True)
                });
                (ok(&b), fails(&b) && surely)
            };
            if let Some(s) = self.screened.get_mut(i) {
                *s = screen;
            }
            if hopeless {
                self.hopeless = true;
                self.hopeless_rows.push(i);
            }
        }
    }

    /// Does `self.t1` already hold Tier 1 at exactly `action` (same bits) for the
    /// current repair's inputs? Saves re-checking the proposal, which the feasible path has
    /// just checked, at the SQP's first iterate.
    fn checked_at(&self, action: &[f64]) -> bool {
        self.checked_valid
            && self.checked.len() == action.len()
            && self
                .checked
                .iter()
                .zip(action)
                .all(|(x, y)| x.to_bits() == y.to_bits())
    }

    /// Are the current checks acceptable with rows of criticality `< level_max` relaxable?
    /// Returns the relaxed rows with their slack, or `None`.
    fn acceptable(
        &self,
        p: &Policy,
        relax_below: Criticality,
        allow_relax: bool,
    ) -> Option<Vec<(usize, f64)>> {
        let mut relaxed = Vec::new();
        for (i, (row, c)) in p.lattice.rows.iter().zip(self.t1.rows()).enumerate() {
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

    /// The linear model of row `i` at the point last checked (its Tier 1 values are in
    /// `self.t1.slots()`): returns the constant term `lo` and leaves the gradient in
    /// `self.gtmp`, aligned with `row_vars[i]`, of a quantity that must be `≥ 0` (`> 0`
    /// for strict rows; the caller adds the back-off `δ`). `None`: no linear model.
    ///
    /// * `<=` / `<`: the margin, with `lo` its Tier 1 lower bound (the robust tightening).
    /// * `!=`: `d = lhs − rhs` must stay away from 0 on one side: the side the current
    ///   point's midpoint is on (`d ≥ δ` or `−d ≥ δ`). A greedy choice: the nearest feasible
    ///   point may be on the other side, and then the repair can miss it (never unsafe:
    ///   Tier 1 decides).
    /// * A boolean row that is a disjunction (`or`) of comparisons, when it does not hold:
    ///   the comparison reading real action variables whose model margin is largest at the
    ///   current point (the one closest to holding, first in row order on ties). Greedy in
    ///   the same way. A disjunction that holds is left out of the model.
    /// * `==` and other boolean rows: none (see the module documentation).
    fn model(&mut self, p: &Policy, i: usize, c: RowCheck) -> Option<f64> {
        let row = p.lattice.rows.get(i)?;
        let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
        let cone = self.grad_cone.get(i).map_or(&[][..], Vec::as_slice);
        let tape = &p.lattice.tape;
        let slots = self.t1.slots();
        let slot = |k: u32| slots.get(k as usize).copied().unwrap_or(Interval::INVALID);
        self.gtmp.clear();
        match self.lin.get(i)? {
            Lin::Margin => {
                if c.margin.is_invalid() || !c.margin.lo.is_finite() {
                    return None;
                }
                let cached = self.affine.get(i).copied().unwrap_or(false)
                    && self.grad.get(i).is_some_and(|g| g.len() == vars.len());
                if cached {
                    self.gtmp.extend_from_slice(self.grad.get(i)?);
                } else {
                    tape.grad_reverse(slots, cone, row.margin, &mut self.adj);
                    let adj = &self.adj;
                    self.gtmp.extend(
                        vars.iter()
                            .map(|&(_, inst)| adj.get(inst as usize).copied().unwrap_or(0.0)),
                    );
                    if self.affine.get(i).copied().unwrap_or(false) {
                        if let Some(g) = self.grad.get_mut(i) {
                            g.clone_from(&self.gtmp);
                        }
                    }
                }
                Some(c.margin.lo)
            }
            Lin::Ne(d) => {
                let di = slot(*d);
                if di.is_invalid() || !di.lo.is_finite() || !di.hi.is_finite() {
                    return None;
                }
                let (sign, lo) = if di.mid() >= 0.0 {
                    (1.0, di.lo)
                } else {
                    (-1.0, -di.hi)
                };
                tape.grad_reverse(slots, cone, *d, &mut self.adj);
                let adj = &self.adj;
                self.gtmp.extend(
                    vars.iter()
                        .map(|&(_, inst)| sign * adj.get(inst as usize).copied().unwrap_or(0.0)),
                );
                Some(lo)
            }
            Lin::Or(leaves) => {
                // A disjunction that holds (perhaps by a disjunct that reads no real action
                // variable) constrains nothing; if the move breaks it, the next iterate
                // linearises it.
                if c.status == Status::Sat {
                    return None;
                }
                // The leaf `a <= b` (or `a < b`) with the largest model margin `b.lo − a.hi`.
                let mut best: Option<(f64, u32, u32)> = None;
                for &(a, b) in leaves {
                    let (ai, bi) = (slot(a), slot(b));
                    let m = bi.lo - ai.hi;
                    if m.is_finite() && best.is_none_or(|(bm, _, _)| m > bm) {
                        best = Some((m, a, b));
                    }
                }
                let (lo, a, b) = best?;
                tape.grad_reverse(slots, cone, b, &mut self.adj);
                self.gtmp.extend(
                    vars.iter()
                        .map(|&(_, inst)| self.adj.get(inst as usize).copied().unwrap_or(0.0)),
                );
                tape.grad_reverse(slots, cone, a, &mut self.adj);
                for (g, &(_, inst)) in self.gtmp.iter_mut().zip(vars) {
                    *g -= self.adj.get(inst as usize).copied().unwrap_or(0.0);
                }
                Some(lo)
            }
            Lin::None => None,
        }
    }

    /// Does the QP's certificate of infeasibility `y` (`y_i >= 0`, `Σ y_i a_i ≈ 0`,
    /// `bᵀy < 0`) hold at every discrete node of this stage?
    ///
    /// At every node when each row it combines is the same there. A lattice row whose
    /// margin and guard read no discrete variable is, when the QP was linearised at the
    /// proposal's real values (`at_proposal`: the first QP of every node starts there):
    /// the same margin, gradient, activity and screening at every node, so every node's
    /// first QP holds the same infeasible subsystem (and none accepts the proposal as it
    /// is: the certificate excludes `x = u`, so one of its rows is not SAT there). At a
    /// later point, such a row must also be affine in the real actions with constant
    /// coefficients (its linear model is exact, whatever the point) and have a guard that
    /// reads no real action (active at every point). A bound of a real variable counts
    /// when the box is the whole range (no trust region); a slack's bound always does
    /// (within a stage). The QP is the same one the node's own failure already rests on,
    /// so a search that stops here ends where trying every node would have: each would
    /// fail on this same subsystem.
    ///
    /// (A certificate of critical rows only would hold in every later stage too, but
    /// cannot occur: the fallback, certified over every state when the policy loads,
    /// satisfies every critical row that reads no discrete variable.)
    fn everywhere(
        &self,
        y: &[f64],
        real_bounds: usize,
        slack_bounds: usize,
        trust_region: bool,
        at_proposal: bool,
    ) -> bool {
        let mut any = false;
        for (qi, &yi) in y.iter().enumerate() {
            if yi.is_nan() {
                return false;
            }
            if yi <= 0.0 {
                continue;
            }
            any = true;
            if let Some(i) = self.qrow.get(qi).copied().flatten() {
                let affine = self.affine.get(i).copied().unwrap_or(false);
                let discrete = self
                    .disc_rows
                    .iter()
                    .any(|v| v.get(i).copied().unwrap_or(true));
                let guard_moves = self.guard_moves.get(i).copied().unwrap_or(true);
                if discrete || (!at_proposal && (!affine || guard_moves)) {
                    return false;
                }
            } else if qi >= real_bounds && qi < slack_bounds && trust_region {
                return false;
            }
        }
        any
    }

    /// Run the SQP for one discrete assignment. `u` holds the full action (discrete values
    /// fixed, real values the starting point) and receives the result.
    #[expect(
        clippy::too_many_lines,
        reason = "one SQP loop: assemble, solve, re-check"
    )]
    #[expect(
        clippy::too_many_arguments,
        reason = "internal; the counters are threaded through"
    )]
    fn continuous(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        u0: &[f64],
        u: &mut [f64],
        stage: Option<Criticality>,
        iterations: &mut u32,
        work: &mut u32,
    ) -> Result<Found, SolverStatus> {
        let nr = self.real.len();
        let relax_below = stage.unwrap_or(Criticality::Low);
        let allow = stage.is_some();
        let max_iter = p.governor.max_iterations;
        let mut last = SolverStatus::Solved;
        let mut active_rows: Vec<usize> = Vec::new();
        // Step length: 1 while the violation falls; halved whenever it does not. Without the
        // constraint curvature in the QP, full steps can cycle between two linearisations
        // of a curved row that meets a straight one (regression test
        // `sqp_oscillates_between_disc_and_lane_linearisations`).
        let mut step = 1.0f64;
        let mut last_violation = f64::INFINITY;
        // Stall detection (see STALL_LIMIT): the best violation seen and the iterations since
        // it last fell by STALL_GAIN.
        let mut best_violation = f64::INFINITY;
        let mut stalled = 0u32;
        let mut best: Option<Found> = None;
        // Trust region (∞-norm) of the real variables, used once a relaxed point is found.
        let mut trust = f64::INFINITY;
        // Start inside the action ranges, and stay there: every iterate is clamped to them
        // (the QP's bound rows hold only to its tolerance, and a proposal may lie outside
        // them; regression test `repair_of_a_proposal_outside_the_action_range_stays_in_range`).
        for &ai in &self.real {
            if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                *uj = clamp_to(*uj, a.min, a.max);
            }
        }
        self.boost.iter_mut().for_each(|b| *b = 1.0);
        // Has this SQP made a full check yet (after which `tier1_moved` suffices)? Has it
        // screened the rows?
        self.hist[0].clear();
        self.hist[1].clear();
        let mut full = self.checked_at(u);
        let mut screened = false;
        // Slack columns go only to the relaxable rows that are not SAT at the iterate or
        // were active in this SQP's last QP: a row that holds with room needs none, and each
        // column costs the QP a row pair and a dimension. When that QP is infeasible (a
        // row the step must break had no slack), the same point is solved again with
        // columns for the relaxable rows its certificate combines (`extra_slack`, kept for
        // the rest of the node); when that is still infeasible, or its answer prices a row
        // without a column above its slack, with a column for every relaxable row
        // (`slack_all`), and so is the rest of the node.
        let mut slack_all = false;
        let mut certified_retry = false;
        self.extra_slack.fill(false);
        let mut retry = false;
        let mut recorded = false;
        self.hopeless = false;
        self.hopeless_rows.clear();
        self.infeasible_everywhere = false;
        // (All 0 in the unrelaxed stage, the only one most repairs run.)
        self.stage_tol.clear();
        if stage.is_some() {
            self.stage_tol
                .extend(p.lattice.rows.iter().map(|r| stage_tolerance(p, r, stage)));
        } else {
            self.stage_tol.resize(p.lattice.rows.len(), 0.0);
        }
        for _ in 0..max_iter {
            // INVARIANT (bounded-work): every SQP iteration of a repair is paid from `work`,
            // and its modeled cost is charged (see `ModeledCost`).
            if *work == 0 {
                return best.ok_or(SolverStatus::MaxIterations);
            }
            if self.past_deadline() {
                return best.ok_or(SolverStatus::Deadline);
            }
            *work -= 1;
            self.charge(COST_STEP_NS);
            *iterations = iterations.saturating_add(1);
            if !self.checked_at(u) {
                if full {
                    self.tier1(p, inputs, u);
                } else {
                    self.tier1_node(p, inputs, u);
                    full = true;
                }
            }
            // The violation beyond what this stage may relax (all of it in the unrelaxed
            // stage): a relaxed row's slack is what the stage allows, not a failure to
            // converge. Damping on the whole violation halved the step each time the QP
            // traded a little more slack for a nearer point, and the SQP stalled at the thin
            // lens of two discs (`link-latency` and a relaxed `traction-circle`).
            let violation: f64 = self
                .stage_tol
                .iter()
                .zip(self.t1.rows())
                .filter(|(_, c)| c.active && !c.margin.is_invalid())
                .map(|(tol, c)| (-c.margin.lo - tol).max(0.0))
                .sum();
            // A retry at the same point (see `slack_all`) is not a step: no damping, no
            // back-off boost, no stall count.
            let retrying = std::mem::take(&mut retry);
            if violation >= last_violation && !retrying {
                step = (step * 0.5).max(1.0 / 64.0);
            }
            last_violation = violation;
            // Rows the last QP kept binding that Tier 1 finds just short of their boundary.
            // (Only rows short by a rounding-sized amount: a relaxed row's slack is not.)
            let near = 1e-6 * u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for &r in active_rows.iter().filter(|_| !retrying) {
                if let (Some(c), Some(b)) = (self.t1.rows().get(r), self.boost.get_mut(r)) {
                    if c.active && c.status != Status::Sat && -c.margin.lo <= near && *b < 1e6 {
                        *b *= 10.0;
                    }
                }
            }
            if best.is_none() && !retrying {
                // Progress is measured on the violation beyond what this stage may relax: a
                // relaxed row's slack is not a failure to converge.
                if violation < (1.0 - STALL_GAIN) * best_violation {
                    best_violation = violation;
                    stalled = 0;
                } else {
                    stalled += 1;
                    if stalled >= STALL_LIMIT {
                        return Err(SolverStatus::MaxIterations);
                    }
                }
            }
            if let Some(relaxed) = self.acceptable(p, relax_below, allow) {
                let objective = objective(p, &self.real, u0, u);
                let penalty = slack_penalty(p, &relaxed);
                let found = Found {
                    action: u.to_vec(),
                    objective,
                    penalty,
                    relaxed,
                    active: active_rows.clone(),
                    checks: self.t1.rows().to_vec(),
                };
                if found.relaxed.is_empty() {
                    return Ok(found);
                }
                // A point that needs slack is kept, and the SQP goes on: the first
                // acceptable iterate of a curved row can use far more slack than needed
                // (regression test `a_relaxed_curved_row_takes_the_least_slack`). From here
                // on it is a trust-region method on the exact penalty function: a step that
                // does not lower it is undone and the region shrunk; one that does is kept
                // and the region grown. The best point is returned.
                let merit = found.objective + found.penalty;
                match &best {
                    Some(b) if merit >= b.objective + b.penalty => {}
                    Some(b) => {
                        let gain = b.objective + b.penalty - merit;
                        best = Some(found);
                        if gain <= TRUST_TOL * (1.0 + merit.abs()) {
                            return best.ok_or(SolverStatus::Solved);
                        }
                        trust *= 2.0;
                    }
                    None => {
                        best = Some(found);
                        trust *= 2.0;
                    }
                }
            }
            if let Some(b) = &best {
                if b.action.as_slice() != &*u {
                    // The last step was rejected (worse, or not acceptable): back to the
                    // best point, with a smaller region.
                    let rejected = self.real.iter().fold(0.0f64, |m, &ai| {
                        let d = u.get(ai).copied().unwrap_or(0.0)
                            - b.action.get(ai).copied().unwrap_or(0.0);
                        m.max(d.abs())
                    });
                    trust = 0.25 * rejected.min(trust);
                    u.copy_from_slice(&b.action);
                    let scale = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
                    if trust <= TRUST_TOL * scale {
                        return best.ok_or(SolverStatus::Infeasible);
                    }
                    self.tier1(p, inputs, u);
                }
            }
            // Rows that hold over the whole action box (a pillar far away, a speed limit no
            // real value reaches) cannot bind: they get no gradient, no QP row and no
            // slack. Once per node, and only for nodes whose first point is not accepted.
            // The same check finds a node no stage can save.
            if !screened {
                self.screen(p, inputs, u);
                screened = true;
                if self.hopeless {
                    return best.ok_or(SolverStatus::Infeasible);
                }
            }
            // A critical row no continuous move can fix ends this candidate now.
            for (i, (row, c)) in p.lattice.rows.iter().zip(self.t1.rows()).enumerate() {
                if c.active
                    && c.status != Status::Sat
                    && row.criticality == Criticality::Critical
                    && !self.row_reads_real.get(i).copied().unwrap_or(false)
                {
                    return best.ok_or(SolverStatus::Infeasible);
                }
            }
            if nr == 0 {
                return best.ok_or(SolverStatus::Infeasible);
            }
            // Columns: real variables, then one slack per relaxable row (see `slack_all`).
            let mut n = nr;
            let mut limited = false;
            for (i, row) in p.lattice.rows.iter().enumerate() {
                let c = self.t1.rows().get(i).copied().unwrap_or_default();
                // A row with no tolerance gets no slack column: a slack pinned to [0, 0]
                // adds nothing but a degenerate pair of rows (regression test
                // `cold_start_slack_excursion_made_a_feasible_relaxation_infeasible`).
                let tol = p
                    .constraints
                    .get(row.constraint)
                    .map_or(0.0, |k| k.tolerance);
                let relaxable = allow
                    && row.criticality < relax_below
                    && row.criticality != Criticality::Critical
                    && matches!(row.sense, Sense::Le | Sense::Lt)
                    && tol > 0.0
                    && c.active
                    && !self.screened.get(i).copied().unwrap_or(false);
                let needs_slack = slack_all
                    || c.status != Status::Sat
                    || active_rows.contains(&i)
                    || self.extra_slack.get(i).copied().unwrap_or(false);
                limited |= relaxable && !needs_slack;
                let relaxable = relaxable && needs_slack;
                let col = if relaxable {
                    n += 1;
                    Some(n - 1)
                } else {
                    None
                };
                if let Some(s) = self.slack_col.get_mut(i) {
                    *s = col;
                }
            }
            // Rows that pin variables to zero (see `flat_rows`), unless this stage may relax
            // them: the pinned variables get the bounds [0, 0] in place of those rows.
            self.pinned.fill(false);
            self.pin_row.fill(false);
            for (i, cols) in self.flat.iter().enumerate().filter(|_| self.any_flat) {
                if cols.is_empty()
                    || !self.t1.rows().get(i).is_some_and(|c| c.active)
                    || self.stage_tol.get(i).copied().unwrap_or(0.0) > 0.0
                {
                    continue;
                }
                if let Some(r) = self.pin_row.get_mut(i) {
                    *r = true;
                }
                for &j in cols {
                    if let Some(x) = self.pinned.get_mut(j) {
                        *x = true;
                    }
                }
            }
            // Objective: ‖x − u₀‖²_W + Σ (ρ s² + P w s).
            self.h.clear();
            self.h.resize(n * n, 0.0);
            self.g.clear();
            self.g.resize(n, 0.0);
            for (bi, wrow) in p.governor.metric.iter().enumerate() {
                for (bj, w) in wrow.iter().enumerate() {
                    if let Some(hh) = self.h.get_mut(bi * n + bj) {
                        *hh = 2.0 * w;
                    }
                    let u0j = self
                        .real
                        .get(bj)
                        .and_then(|&ai| u0.get(ai))
                        .copied()
                        .unwrap_or(0.0);
                    if let Some(gg) = self.g.get_mut(bi) {
                        *gg -= 2.0 * w * u0j;
                    }
                }
            }
            for (i, col) in self.slack_col.iter().enumerate() {
                if let Some(col) = col {
                    if let Some(hh) = self.h.get_mut(col * n + col) {
                        *hh = 2.0 * SLACK_RHO;
                    }
                    if let Some(gg) = self.g.get_mut(*col) {
                        *gg = slack_price(p, i);
                    }
                }
            }
            // H depends only on the metric and the number of slack columns (every slack has
            // the same 2ρ on the diagonal): factor it again only when `n` changes.
            if self.hess_n != n {
                self.hess_n = 0;
                if self.qp.set_hessian(n, &self.h) != QpStatus::Solved {
                    return best.ok_or(SolverStatus::NumericalError);
                }
                self.hess_n = n;
            }
            // The real part of `u`, gathered once for the rows below.
            self.ureal.clear();
            self.ureal.extend(
                self.real
                    .iter()
                    .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
            );
            // Rows: the kept QP's when it is this one (see `rows_from_cache`), else built.
            let cached_rows = self.quick_ok
                && self.quick_valid
                && stage.is_none()
                && !trust.is_finite()
                && n == nr
                && self.rows_from_cache();
            if !cached_rows {
                // Rows.
                self.a.clear();
                self.b.clear();
                self.qrow.clear();
                self.needs.clear();
                for i in 0..p.lattice.rows.len() {
                    let c = self.t1.rows().get(i).copied().unwrap_or_default();
                    if !c.active
                        || (c.status == Status::Sat
                            && self.screened.get(i).copied().unwrap_or(false))
                    {
                        continue;
                    }
                    let slack = self.slack_col.get(i).copied().flatten();
                    if self.row_vars.get(i).is_none_or(Vec::is_empty) && slack.is_none() {
                        continue; // constant in the real variables; handled above
                    }
                    if self.pin_row.get(i).copied().unwrap_or(false) {
                        continue; // its variables' bounds below
                    }
                    // The linear model `lo + ∇·(x − u)` of a quantity that must be ≥ 0, with ∇ in
                    // `self.gtmp` (aligned with `vars`).
                    let Some(lo) = self.model(p, i, c) else {
                        continue; // no linear model; Tier 1 will refuse the candidate
                    };
                    let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
                    // lo + ∇·(x − u) ≥ δ   ⇔   −∇·x − s ≤ lo − ∇·u − δ
                    let base = self.a.len();
                    self.a.resize(base + n, 0.0);
                    for (&(j, _), &d) in vars.iter().zip(&self.gtmp) {
                        if let Some(x) = self.a.get_mut(base + j) {
                            *x = -d;
                        }
                    }
                    if let Some(col) = slack {
                        if let Some(x) = self.a.get_mut(base + col) {
                            *x = -1.0;
                        }
                    }
                    let boost = self.boost.get(i).copied().unwrap_or(1.0);
                    let (bi, need) = row_rhs(c, lo, vars, &self.gtmp, &self.ureal, boost);
                    self.b.push(bi);
                    self.needs.push(need);
                    self.qrow.push(Some(i));
                }
                // Bounds of the real variables and of the slacks.
                for (j, &ai) in self.real.iter().enumerate() {
                    let Some(a) = p.actions.get(ai) else { continue };
                    let uj = u.get(ai).copied().unwrap_or(0.0);
                    let (lo, hi) = if self.pinned.get(j).copied().unwrap_or(false) {
                        (0.0, 0.0)
                    } else if trust.is_finite() {
                        ((uj - trust).max(a.min), (uj + trust).min(a.max))
                    } else {
                        (a.min, a.max)
                    };
                    for (sign, bound) in [(1.0, hi), (-1.0, -lo)] {
                        let base = self.a.len();
                        self.a.resize(base + n, 0.0);
                        if let Some(x) = self.a.get_mut(base + j) {
                            *x = sign;
                        }
                        self.b.push(bound);
                        self.needs.push(0.0);
                        self.qrow.push(None);
                    }
                }
            }
            let real_bounds = self.qrow.iter().take_while(|r| r.is_some()).count();
            let slack_bounds = self.b.len();
            if self.quick_ok && stage.is_none() && !trust.is_finite() && n == nr && !recorded {
                // The warm re-repair's QP (see `quick`). The rows in it do not depend on the
                // point (screening and activity are fixed by the state), and neither does
                // each row's `lo − ∇·u`. (When the rows came from the kept QP they are
                // already kept; the state and its `b` are this one's either way.)
                recorded = true;
                if !cached_rows {
                    self.quick_a.clone_from(&self.a);
                    self.quick_rows.clone_from(&self.qrow);
                }
                self.quick_b0.clear();
                self.quick_b0
                    .extend(self.b.iter().zip(&self.needs).map(|(b, need)| b + need));
                self.quick_inputs.clear();
                self.quick_inputs.extend_from_slice(inputs);
                self.quick_valid = true;
            }
            self.warm_idx.clear();
            for (i, col) in self.slack_col.iter().enumerate() {
                let Some(col) = *col else { continue };
                let tol = row_constraint(p, i).map_or(0.0, |c| c.tolerance);
                for (sign, bound) in [(1.0, tol), (-1.0, 0.0)] {
                    if sign < 0.0 {
                        self.warm_idx.push(self.b.len());
                    }
                    let base = self.a.len();
                    self.a.resize(base + n, 0.0);
                    if let Some(x) = self.a.get_mut(base + col) {
                        *x = sign;
                    }
                    self.b.push(bound);
                    self.needs.push(0.0);
                    self.qrow.push(None);
                }
            }
            let m = self.b.len();
            // Every slack starts at its floor `s = 0`: the QP's starting active set always
            // holds the rows `-s <= 0`. Without them, the unconstrained minimiser puts each
            // slack at `-L1_PENALTY·w / (2ρ)` (about -1e7); the dual method comes back from
            // there, but with rounding errors of that size (~1e-9 in x), enough to call a
            // feasible relaxation infeasible, and to make warm and cold starts disagree.
            // Part of the formulation, so it applies to cold starts too.
            let floors = self.warm_idx.len();
            if !self.cold {
                for (qi, r) in self.qrow.iter().enumerate() {
                    if let Some(r) = r {
                        if self.warm_rows.binary_search(r).is_ok() {
                            self.warm_idx.push(qi);
                        }
                    }
                }
            }
            if self.warm_idx.len() == floors {
                // No earlier active set to start from (a cold repairer, or a first repair):
                // start from the rows most violated here instead, the ones the dual method
                // would add first anyway, without a search for each. (The QP's answer does
                // not depend on its starting rows; on the n = 10, m = 67 benchmark this
                // saves about a tenth of a cold repair.)
                let mut crash = std::mem::take(&mut self.crash);
                crash.clear();
                crash.extend(self.qrow.iter().enumerate().filter_map(|(qi, r)| {
                    let c = self.t1.rows().get((*r)?)?;
                    (c.active && c.margin.lo < 0.0).then_some((c.margin.lo, qi))
                }));
                crash.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
                self.warm_idx
                    .extend(crash.iter().take(CRASH_ROWS).map(|&(_, qi)| qi));
                self.crash = crash;
            }
            // The QP keeps its copy of the kept rows (transposed, with their norms) from
            // the last solve on them: the same `A`, bit for bit, so the same answer.
            let a: &[f64] = if cached_rows { &self.quick_a } else { &self.a };
            let solve = if cached_rows && self.qp_has_quick_rows {
                QpWorkspace::solve_same_rows
            } else {
                QpWorkspace::solve
            };
            self.qp_has_quick_rows = cached_rows;
            self.kept_rows_used += u64::from(cached_rows);
            let mut sol = solve(
                &mut self.qp,
                &self.g,
                a,
                &self.b,
                m,
                0,
                &self.warm_idx,
                max_iter.saturating_mul(4),
            );
            if sol.status == QpStatus::Infeasible && self.needs.iter().any(|&x| x > 0.0) {
                // The back-off itself can empty the set: `amount <= 0` with `amount` in
                // [0, ∞) has the single point 0, which Tier 1 certifies exactly, but no
                // point at a distance δ inside (regression test
                // `a_boundary_that_is_also_a_bound_is_reached_without_back_off`). Solved
                // once more without it.
                *iterations = iterations.saturating_add(sol.iterations);
                self.cost = self.cost.saturating_add(qp_cost(n, m, sol.iterations));
                for (bb, need) in self.b.iter_mut().zip(&self.needs) {
                    *bb += need;
                }
                sol = solve(
                    &mut self.qp,
                    &self.g,
                    a,
                    &self.b,
                    m,
                    0,
                    &self.warm_idx,
                    max_iter.saturating_mul(4),
                );
            }
            *iterations = iterations.saturating_add(sol.iterations);
            self.cost = self.cost.saturating_add(qp_cost(n, m, sol.iterations));
            if sol.status == QpStatus::Infeasible && limited {
                // First the relaxable rows the certificate of infeasibility combines (a
                // slack for each may be what resolves it); when that is not enough, every
                // relaxable row.
                let mut added = false;
                if !certified_retry && !self.every_slack {
                    for (qi, &y) in sol.multipliers.iter().enumerate() {
                        let Some(Some(r)) = self.qrow.get(qi) else {
                            continue;
                        };
                        if y > 0.0
                            && self.stage_tol.get(*r).copied().unwrap_or(0.0) > 0.0
                            && self.slack_col.get(*r).copied().flatten().is_none()
                        {
                            if let Some(e) = self.extra_slack.get_mut(*r) {
                                *e = true;
                                added = true;
                            }
                        }
                    }
                }
                certified_retry = added;
                self.targeted_retries += u64::from(added);
                if !added {
                    slack_all = true;
                }
                retry = true;
                continue;
            }
            certified_retry = false;
            if sol.status == QpStatus::Solved && limited && self.extra_slack.contains(&true) {
                // Optimal for the QP with every column too? A relaxable row without one
                // would keep its slack at 0 there only while its multiplier is at most the
                // slack's price `P w`; otherwise that QP's answer differs: solve it.
                let priced = sol.multipliers.iter().enumerate().any(|(qi, &lam)| {
                    let Some(Some(r)) = self.qrow.get(qi) else {
                        return false;
                    };
                    self.stage_tol.get(*r).copied().unwrap_or(0.0) > 0.0
                        && self.slack_col.get(*r).copied().flatten().is_none()
                        && lam > slack_price(p, *r)
                });
                if priced {
                    slack_all = true;
                    retry = true;
                    continue;
                }
            }
            last = match sol.status {
                QpStatus::Solved => SolverStatus::Solved,
                QpStatus::Infeasible => SolverStatus::Infeasible,
                QpStatus::MaxIterations => SolverStatus::MaxIterations,
                QpStatus::NumericalError => SolverStatus::NumericalError,
            };
            if last == SolverStatus::Infeasible && best.is_none() {
                // (Copied into kept memory: the certificate borrows the QP workspace.)
                let mut y = std::mem::take(&mut self.cert);
                y.clear();
                y.extend_from_slice(sol.multipliers);
                let at_proposal = self.real.iter().all(|&ai| {
                    let (a, b) = (u.get(ai).copied(), u0.get(ai).copied());
                    a.map(f64::to_bits) == b.map(f64::to_bits)
                });
                self.infeasible_everywhere = self.everywhere(
                    &y,
                    real_bounds,
                    slack_bounds,
                    trust.is_finite(),
                    at_proposal,
                );
                self.cert = y;
                return Err(last);
            }
            if last != SolverStatus::Solved {
                return best.ok_or(last);
            }
            active_rows.clear();
            for &qi in sol.active {
                if let Some(Some(r)) = self.qrow.get(qi) {
                    active_rows.push(*r);
                }
            }
            active_rows.sort_unstable();
            let mut moved = 0.0f64;
            // The iterate before this step, for the extrapolation below.
            self.hist.rotate_left(1);
            if let Some(h) = self.hist.last_mut() {
                h.clear();
                h.extend(
                    self.real
                        .iter()
                        .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
                );
            }
            let scale0 = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            for (j, &ai) in self.real.iter().enumerate() {
                let x = sol.x.get(j).copied().unwrap_or(f64::NAN);
                if !x.is_finite() {
                    return best.ok_or(SolverStatus::NumericalError);
                }
                if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                    // Full steps inside the trust region, and for pinned variables (their
                    // bounds are exact, not a model); damped ones before it.
                    // (A pinned variable takes its bound exactly: the QP meets it only to
                    // its tolerance, and `1e-300` squared is not a SAT `0 <= 0`.)
                    let pinned = self.pinned.get(j).copied().unwrap_or(false);
                    let x = if pinned { 0.0 } else { x };
                    let t = if best.is_some() || pinned { 1.0 } else { step };
                    let x0 = u0.get(ai).copied().unwrap_or(f64::NAN);
                    let next = snap(
                        clamp_to(*uj + t * (x - *uj), a.min, a.max),
                        a.min,
                        a.max,
                        scale0,
                        x0,
                    );
                    moved = moved.max((next - *uj).abs());
                    *uj = next;
                }
            }
            // A row whose margin is flat at its boundary (`dq^2 <= 0`: the only feasible
            // value is 0, where the gradient vanishes) makes the SQP converge linearly,
            // halving the distance each step, and the budget ran out first (regression
            // test `a_flat_boundary_is_reached_by_extrapolation`). When the last three
            // iterates are geometric with one ratio, Aitken's Δ² jumps to their limit.
            let [h0, h1, h2] = &self.hist;
            if best.is_none() && h0.len() == nr {
                if let Some(lim) = aitken(h0, h1, h2, &self.real, u) {
                    for ((&ai, l), &x1) in self.real.iter().zip(lim).zip(h2) {
                        if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                            let x0 = u0.get(ai).copied().unwrap_or(f64::NAN);
                            *uj = snap(clamp_to(l, a.min, a.max), a.min, a.max, scale0, x0);
                            moved = moved.max((*uj - x1).abs());
                        }
                    }
                }
            }
            self.warm_rows.clone_from(&active_rows);
            let scale = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
            if moved <= 1e-14 * scale {
                // A row short of its boundary by less than the QP's feasibility tolerance
                // (`vx^2 <= 2.25 - 20 * loc_sigma` at exactly its boundary, UNCERTAIN by
                // 4e-16): the QP calls the point feasible and does not move. Its back-off
                // grows a hundredfold and the SQP goes on (regression test
                // `a_row_short_by_rounding_is_backed_off_beyond_the_qp_tolerance`).
                let near = 1e-6 * scale;
                let mut grew = false;
                for (c, b) in self.t1.rows().iter().zip(self.boost.iter_mut()) {
                    if c.active
                        && c.status != Status::Sat
                        && !c.margin.is_invalid()
                        && -c.margin.lo <= near
                        && *b < 1e6
                    {
                        *b *= 100.0;
                        grew = true;
                    }
                }
                if grew {
                    continue;
                }
                // The linear model is satisfied where Tier 1 is not: a row the model cannot
                // see (undefined margin, `==`, a boolean row that is not a disjunction of
                // comparisons), or a `!=` / `or` side that cannot be reached.
                return best.ok_or(SolverStatus::Infeasible);
            }
        }
        best.ok_or(if last == SolverStatus::Solved {
            SolverStatus::MaxIterations
        } else {
            last
        })
    }

    /// Repair `proposal` (encoded, one value per action variable) for the state in
    /// `inputs` (the decision's input vector; its action slots are ignored). `preferred` is
    /// a rule's discrete repair, tried first.
    pub fn repair(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        preferred: &[(usize, f64)],
    ) -> Repair {
        self.checked_valid = false;
        self.box_valid = false;
        self.start_valid = false;
        if preferred.is_empty() && !self.cold {
            if let Some(r) = self.quick(p, inputs, proposal) {
                return r;
            }
        }
        if preferred.is_empty() {
            if let Some(r) = self.proposal_holds(p, inputs, proposal) {
                return r;
            }
        }
        let mut iterations = 0u32;
        let mut nodes = 0u32;
        let mut last = SolverStatus::Solved;
        self.cost = COST_BASE_NS;
        self.cost_cap = search_budget(&p.governor).map_or(u64::MAX, |c| c.0);
        let total = p.governor.max_iterations.saturating_mul(WORK_FACTOR);
        let mut work = total;
        let mut dead = Vec::new();
        let stages = [
            None,
            Some(Criticality::Medium),
            Some(Criticality::High),
            Some(Criticality::Critical),
        ];
        for (k, stage) in stages.into_iter().enumerate() {
            // INVARIANT (modeled-deadline): no stage starts past the modeled deadline.
            if self.past_deadline() {
                last = SolverStatus::Deadline;
                break;
            }
            // Once the unrelaxed search has failed: when no action of the whole box can
            // satisfy the rows of the most relaxed stage, no stage can (each asks for
            // more), and the search ends here. (Only then: ruling out single stages
            // changes which active set the next stage's SQP starts from, and with it
            // some answers; and every repair would pay for the contraction.)
            if k == 1 && !self.no_contraction {
                self.charge(COST_CONTRACT_NS);
                if self.stage_impossible(p, inputs, stages.last().copied().flatten()) {
                    self.stages_ruled_out += 1;
                    last = SolverStatus::Infeasible;
                    break;
                }
            }
            // This stage's share of what is left: 1/4, then 1/3, 1/2, all of it.
            let left = u32::try_from(stages.len().saturating_sub(k))
                .unwrap_or(1)
                .max(1);
            let mut share = work / left;
            let before = share;
            let (found, st) = self.search(
                p,
                inputs,
                proposal,
                preferred,
                stage,
                &mut iterations,
                &mut nodes,
                &mut share,
                &mut dead,
            );
            work -= before - share;
            if st != SolverStatus::Solved {
                last = st;
            }
            if let Some(f) = found {
                // `f.checks` is the Tier 1 check that accepted `f.action`, bit for bit the
                // action returned: no second check is needed.
                let outcome = if f.relaxed.is_empty() {
                    RepairOutcome::Certified
                } else {
                    RepairOutcome::Relaxed
                };
                return Repair {
                    distance: f.objective.max(0.0).sqrt(),
                    action: f.action,
                    outcome,
                    status: SolverStatus::Solved,
                    active_set: f.active,
                    relaxed: f.relaxed,
                    iterations,
                    steps: total - work,
                    nodes,
                    cost: ModeledCost(self.cost),
                    checks: f.checks,
                    certified: true,
                };
            }
        }
        let mut r = self.fallback(
            p,
            inputs,
            proposal,
            if last == SolverStatus::Solved {
                SolverStatus::Infeasible
            } else {
                last
            },
            iterations,
            nodes,
        );
        r.steps = total - work;
        r.cost = ModeledCost(self.cost);
        r
    }

    /// Add `ns` to the search's modeled cost.
    fn charge(&mut self, ns: u64) {
        self.cost = self.cost.saturating_add(ns);
    }

    /// Has the search reached its modeled deadline?
    fn past_deadline(&self) -> bool {
        self.cost >= self.cost_cap
    }

    /// Can no point of any discrete node pass at `stage`? Contracts the box of every action
    /// (real and discrete, each over its whole range) with the state box over the rows the
    /// stage requires: every active row SAT, except that a row the stage may relax needs
    /// only a margin of at least `-tolerance` (as in `acceptable`). `true` is a proof (see
    /// [`crate::contract`]); `false` says nothing.
    fn stage_impossible(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        stage: Option<Criticality>,
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
            .empty(&p.lattice, &self.cbox, &self.cneed, CONTRACT_ROUNDS)
    }

    /// How many infeasible relaxing QPs were retried with only the slack columns their
    /// certificate names.
    pub fn targeted_retries(&self) -> u64 {
        self.targeted_retries
    }

    /// How many relaxation stages the contraction (`Repairer::stage_impossible`) ruled out.
    pub fn stages_ruled_out(&self) -> u64 {
        self.stages_ruled_out
    }

    /// How many SQP steps took their QP rows from the kept QP instead of building them (a
    /// count for tests and profiles; answers do not depend on it).
    pub fn kept_rows_used(&self) -> u64 {
        self.kept_rows_used
    }

    /// Are `inputs` the state the kept QP (`quick_*`) was built for (action slots aside)?
    fn same_state(&self, inputs: &[Interval]) -> bool {
        inputs.len() == self.quick_inputs.len()
            && inputs
                .iter()
                .zip(&self.quick_inputs)
                .enumerate()
                .all(|(k, (x, y))| {
                    self.action_slot.get(k).copied().unwrap_or(false)
                        || (x.lo.to_bits() == y.lo.to_bits() && x.hi.to_bits() == y.hi.to_bits())
                })
    }

    /// The rows of this SQP step's QP from the kept QP (`quick_*`), when they are the same
    /// rows: those `continuous` would include here (active, not screened, reading a real
    /// variable, with a finite margin) are exactly the kept QP's lattice rows, in order.
    /// Each is an affine row whose `A` row is its kept gradient, so `A` is the same, bit for
    /// bit, whatever the state; `b` is computed from this iterate's Tier 1 margins exactly
    /// as the assembly in `continuous` computes it (the same operations in the same
    /// order). Leaves `self.a` alone; fills `self.b`, `self.needs` and `self.qrow`. `false`
    /// (and nothing usable) when the rows differ: the caller then builds them.
    fn rows_from_cache(&mut self) -> bool {
        self.b.clear();
        self.needs.clear();
        let mut kept = self.quick_rows.iter();
        for (i, c) in self.t1.rows().iter().enumerate() {
            let screened = self.screened.get(i).copied().unwrap_or(false);
            let vars = self.row_vars.get(i).map_or(&[][..], Vec::as_slice);
            if !c.active || (c.status == Status::Sat && screened) || vars.is_empty() {
                continue;
            }
            if c.margin.is_invalid() || !c.margin.lo.is_finite() {
                continue;
            }
            if kept.next().copied().flatten() != Some(i) {
                return false;
            }
            let grad = self.grad.get(i).map_or(&[][..], Vec::as_slice);
            if grad.len() != vars.len() {
                return false;
            }
            let boost = self.boost.get(i).copied().unwrap_or(1.0);
            let (bi, need) = row_rhs(*c, c.margin.lo, vars, grad, &self.ureal, boost);
            self.b.push(bi);
            self.needs.push(need);
        }
        // Then the bounds (no lattice row left over), whose `b` is the same at every state.
        let rows = self.b.len();
        if self.quick_rows.get(rows).is_some_and(Option::is_some) {
            return false;
        }
        for (r, &b0) in self.quick_rows.iter().zip(&self.quick_b0).skip(rows) {
            if r.is_some() {
                return false;
            }
            self.b.push(b0);
            self.needs.push(0.0);
        }
        self.qrow.clone_from(&self.quick_rows);
        true
    }

    /// The warm re-repair: a proposal at the same state as the last repair, for a policy
    /// whose rows are affine in the real action variables (`quick_ok`). The last search's
    /// first QP is then this proposal's first QP too, up to rounding: the same rows (which
    /// rows are active and screened depends on the state alone), the same `a_i` (constant
    /// gradients) and the same `lo − ∇·u` (the constant of an affine model). Only `g`
    /// (from the proposal) and the back-off (from each row's model margin at the proposal)
    /// are new. So: one QP, warm-started from the last active set, and one Tier 1 check of
    /// its answer — instead of a Tier 1 check of the proposal, the search set-up, the QP
    /// assembly and a second check.
    ///
    /// It is what the search's first node does in its first step, with the row margins at
    /// the proposal taken from the model instead of Tier 1 (they differ by rounding), and
    /// it returns only what that step would have returned: a point Tier 1 finds SAT on
    /// every active row, or, when the QP moves nowhere, the proposal itself if Tier 1
    /// finds it SAT (the feasible path). Anything else — another state, a QP that is not
    /// solved, an answer Tier 1 does not accept — returns `None`, and the full repair runs
    /// as if this had not been tried. The answer is a function of the inputs and the last
    /// search's QP, so a replay of the same stream reproduces it.
    fn quick(&mut self, p: &Policy, inputs: &[Interval], proposal: &[f64]) -> Option<Repair> {
        if !(self.quick_ok && self.quick_valid) || proposal.len() != p.actions.len() {
            return None;
        }
        if !self.same_state(inputs) {
            return None;
        }
        let nr = self.real.len();
        let mut u = proposal.to_vec();
        for &ai in &self.real {
            let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) else {
                return None;
            };
            if !uj.is_finite() {
                return None;
            }
            *uj = clamp_to(*uj, a.min, a.max);
        }
        // `b`: each row's model margin at `u` with the back-off of `continuous`.
        self.gtmp.clear();
        self.gtmp.extend(
            self.real
                .iter()
                .map(|&ai| u.get(ai).copied().unwrap_or(0.0)),
        );
        self.b.clear();
        let rows = self.quick_a.chunks_exact(nr.max(1));
        for ((row, r), &b0) in rows.zip(&self.quick_rows).zip(&self.quick_b0) {
            let Some(i) = *r else {
                self.b.push(b0);
                continue;
            };
            // The model's margin at `u`: `lo = (lo − ∇·u)_kept + ∇·u`, with `a = −∇`.
            let au = crate::qp::dot(row, &self.gtmp);
            let scale = crate::qp::dot_abs(row, &self.gtmp);
            let lo = b0 - au;
            let delta = 1e-9 * (1.0 + lo.abs() + scale);
            let strict = p.lattice.rows.get(i).is_some_and(|x| x.sense == Sense::Lt);
            let sat = lo > 0.0 || (lo == 0.0 && !strict);
            let need = if sat { delta.min(lo) } else { delta };
            self.b.push(b0 - need);
        }
        // `g = −2 W u₀`, and `H = 2 W` factored (as `continuous` leaves it).
        self.gtmp.clear();
        self.gtmp.extend(
            self.real
                .iter()
                .map(|&ai| proposal.get(ai).copied().unwrap_or(0.0)),
        );
        self.g.clear();
        self.g.extend(
            p.governor
                .metric
                .iter()
                .map(|wrow| -2.0 * crate::qp::dot(wrow, &self.gtmp)),
        );
        if self.g.len() != nr {
            return None;
        }
        if self.hess_n != nr {
            self.h.clear();
            self.h.resize(nr * nr, 0.0);
            for (bi, wrow) in p.governor.metric.iter().enumerate() {
                for (bj, w) in wrow.iter().enumerate() {
                    if let Some(hh) = self.h.get_mut(bi * nr + bj) {
                        *hh = 2.0 * w;
                    }
                }
            }
            self.hess_n = 0;
            if self.qp.set_hessian(nr, &self.h) != QpStatus::Solved {
                return None;
            }
            self.hess_n = nr;
        }
        self.warm_idx.clear();
        for (qi, r) in self.quick_rows.iter().enumerate() {
            if r.is_some_and(|r| self.warm_rows.binary_search(&r).is_ok()) {
                self.warm_idx.push(qi);
            }
        }
        let m = self.b.len();
        let max_iter = p.governor.max_iterations.saturating_mul(4);
        let solve = if self.qp_has_quick_rows {
            QpWorkspace::solve_same_rows
        } else {
            QpWorkspace::solve
        };
        self.qp_has_quick_rows = true;
        let sol = solve(
            &mut self.qp,
            &self.g,
            &self.quick_a,
            &self.b,
            m,
            0,
            &self.warm_idx,
            max_iter,
        );
        if sol.status != QpStatus::Solved {
            return None;
        }
        let qp_iterations = sol.iterations;
        let mut active: Vec<usize> = sol
            .active
            .iter()
            .filter_map(|&qi| self.quick_rows.get(qi).copied().flatten())
            .collect();
        active.sort_unstable();
        if active.is_empty() {
            // The model puts the proposal inside every row: the feasible path decides.
            return self.proposal_holds(p, inputs, proposal);
        }
        let scale0 = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (j, &ai) in self.real.iter().enumerate() {
            let x = sol.x.get(j).copied().unwrap_or(f64::NAN);
            let (Some(uj), Some(a), Some(&x0)) =
                (u.get_mut(ai), p.actions.get(ai), proposal.get(ai))
            else {
                return None;
            };
            if !x.is_finite() {
                return None;
            }
            *uj = snap(clamp_to(x, a.min, a.max), a.min, a.max, scale0, x0);
        }
        self.tier1(p, inputs, &u);
        let relaxed = self.acceptable(p, Criticality::Low, false)?;
        if !relaxed.is_empty() {
            return None;
        }
        let distance = objective(p, &self.real, proposal, &u).max(0.0).sqrt();
        self.warm_rows.clone_from(&active);
        Some(Repair {
            action: u,
            outcome: RepairOutcome::Certified,
            status: SolverStatus::Solved,
            distance,
            active_set: active,
            relaxed: Vec::new(),
            iterations: qp_iterations.saturating_add(1),
            steps: 1,
            nodes: 1,
            cost: ModeledCost(0),
            checks: self.t1.rows().to_vec(),
            certified: true,
        })
    }

    /// The feasible path: when the proposal is the search's first candidate (real values in
    /// range, each discrete value its own cheapest option) and Tier 1 finds every active row
    /// SAT there, the answer is the proposal — exactly what the search would return (one
    /// node, one iteration), without setting the search up.
    fn proposal_holds(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
    ) -> Option<Repair> {
        if proposal.len() != p.actions.len() {
            return None;
        }
        for &ai in &self.real {
            let (a, x) = (p.actions.get(ai)?, *proposal.get(ai)?);
            if !(x >= a.min && x <= a.max) {
                return None;
            }
        }
        for &ai in &self.discrete {
            let v0 = *proposal.get(ai)?;
            if !own_value_first(p, ai, v0) {
                return None;
            }
        }
        let s = self.tier1(p, inputs, proposal);
        // Every active row SAT (the summary counts the same verdicts `checks` holds).
        let all_sat = s.violated == 0 && s.uncertain == 0;
        all_sat.then(|| Repair {
            action: proposal.to_vec(),
            outcome: RepairOutcome::Certified,
            status: SolverStatus::Solved,
            distance: 0.0,
            active_set: Vec::new(),
            relaxed: Vec::new(),
            iterations: 1,
            steps: 1,
            nodes: 1,
            cost: ModeledCost(0),
            checks: self.t1.rows().to_vec(),
            certified: true,
        })
    }

    /// The fallback with its Tier 1 verdict at the current state.
    pub fn fallback(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        status: SolverStatus,
        iterations: u32,
        nodes: u32,
    ) -> Repair {
        let fb = p.fallback.clone();
        self.tier1(p, inputs, &fb);
        let certified = p.lattice.rows.iter().zip(self.t1.rows()).all(|(r, c)| {
            !c.active || r.criticality != Criticality::Critical || c.status == Status::Sat
        });
        let objective = objective(p, &self.real, proposal, &fb)
            + discrete_cost(p, &self.discrete, proposal, &fb);
        Repair {
            action: fb,
            outcome: RepairOutcome::Fallback,
            status,
            distance: objective.max(0.0).sqrt(),
            active_set: Vec::new(),
            relaxed: Vec::new(),
            iterations,
            steps: 0,
            nodes,
            cost: ModeledCost(0),
            checks: self.t1.rows().to_vec(),
            certified,
        }
    }

    /// Best-first search over the discrete variables' values, with the SQP at each node.
    #[expect(
        clippy::too_many_arguments,
        reason = "internal; the counters are threaded through"
    )]
    fn search(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        preferred: &[(usize, f64)],
        stage: Option<Criticality>,
        iterations: &mut u32,
        nodes: &mut u32,
        work: &mut u32,
        dead: &mut Vec<Vec<usize>>,
    ) -> (Option<Found>, SolverStatus) {
        // Each discrete variable's candidate values, cheapest change first.
        let options: Vec<Vec<(f64, f64)>> = self
            .discrete
            .iter()
            .map(|&ai| value_options(p, ai, proposal.get(ai).copied().unwrap_or(0.0)))
            .collect();
        let mut best: Option<Found> = None;
        let mut last = SolverStatus::Solved;
        let mut u = proposal.to_vec();
        let mut budget = NODE_BUDGET;
        // The rule's `set` first, unless it is the search's first node anyway: the
        // governor applies the `set` to the proposal it passes, and each variable's first
        // value is the proposal's own, so the same SQP ran twice (a quarter of the
        // warehouse repairs' nodes; answers unchanged, since the later of two equal
        // candidates never replaces the first).
        let root_is_preferred = preferred.iter().all(|&(ai, v)| {
            let first = self
                .discrete
                .iter()
                .position(|&d| d == ai)
                .and_then(|j| options.get(j))
                .and_then(|o| o.first())
                .map(|x| x.0);
            first.map(f64::to_bits) == Some(v.to_bits())
                && proposal.get(ai).map(|x| x.to_bits()) == Some(v.to_bits())
        });
        if !preferred.is_empty() && !root_is_preferred {
            u.copy_from_slice(proposal);
            for &(ai, v) in preferred {
                if let Some(x) = u.get_mut(ai) {
                    *x = v;
                }
            }
            let dc = discrete_cost(p, &self.discrete, proposal, &u);
            *nodes += 1;
            budget = budget.saturating_sub(1);
            match self.continuous(p, inputs, proposal, &mut u, stage, iterations, work) {
                Ok(mut f) => {
                    f.objective += dc;
                    best = Some(f);
                }
                Err(s) => last = s,
            }
            if best.is_none() && self.infeasible_everywhere {
                // Every node fails on the subsystem the rule's choice failed on.
                return (None, SolverStatus::Infeasible);
            }
        }
        let mut heap = BinaryHeap::new();
        let mut seq = 0u32;
        heap.push(Node {
            cost: 0.0,
            seq,
            ranks: vec![0; options.len()],
            last: 0,
        });
        while let Some(node) = heap.pop() {
            if budget == 0 || *work == 0 {
                if best.is_none() {
                    last = SolverStatus::MaxIterations;
                }
                break;
            }
            if self.past_deadline() {
                if best.is_none() {
                    last = SolverStatus::Deadline;
                }
                break;
            }
            if best
                .as_ref()
                .is_some_and(|b| node.cost >= b.objective + b.penalty)
            {
                break; // no remaining branch can beat the best found
            }
            // A node an earlier stage found hopeless is skipped (its successors are not:
            // they change other values).
            let skip = dead.contains(&node.ranks);
            if !skip {
                budget -= 1;
                *nodes += 1;
            }
            let found = if skip {
                Err(SolverStatus::Infeasible)
            } else {
                u.copy_from_slice(proposal);
                for ((&ai, opts), &k) in self.discrete.iter().zip(&options).zip(&node.ranks) {
                    if let (Some(x), Some(v)) = (u.get_mut(ai), opts.get(k)) {
                        *x = v.0;
                    }
                }
                let found = self.continuous(p, inputs, proposal, &mut u, stage, iterations, work);
                if found.is_err() && self.hopeless {
                    dead.push(node.ranks.clone());
                }
                found
            };
            if !skip && found.is_err() && self.infeasible_everywhere {
                // Every other node fails on the same subsystem (see `everywhere`).
                if best.is_none() {
                    last = SolverStatus::Infeasible;
                }
                break;
            }
            // Successors: advance one variable at or after `last` to its next value. When
            // this node has a solution, a variable that no row binding there reads (in its
            // margin or its guard) is not advanced: changing it leaves that solution a
            // stationary point of the successor (the global optimum when the rows are
            // convex), so the successor costs more for the same continuous part.
            for j in node.last..options.len() {
                let Some(opts) = options.get(j) else { continue };
                let r = node.ranks.get(j).copied().unwrap_or(0);
                if r + 1 >= opts.len() {
                    continue;
                }
                let reads = self.disc_rows.get(j);
                let reads_any = |rows: &[usize]| {
                    rows.iter()
                        .any(|&i| reads.is_some_and(|v| v.get(i).copied().unwrap_or(true)))
                };
                // A hopeless node's failing rows fail whatever a variable they do not read
                // is set to: advancing only the variables they read skips whole hopeless
                // subtrees (cheap int changes used up the node budget before the one
                // change that helps was tried: regression test
                // `a_hopeless_node_advances_only_what_its_failing_rows_read`).
                if !skip && found.is_err() && self.hopeless && !reads_any(&self.hopeless_rows) {
                    continue;
                }
                if let Ok(f) = &found {
                    let relevant = f
                        .active
                        .iter()
                        .any(|&i| reads.is_some_and(|v| v.get(i).copied().unwrap_or(true)));
                    if !relevant {
                        continue;
                    }
                }
                let mut ranks = node.ranks.clone();
                if let Some(x) = ranks.get_mut(j) {
                    *x = r + 1;
                }
                let cost: f64 = ranks
                    .iter()
                    .zip(&options)
                    .map(|(&k, o)| o.get(k).map_or(0.0, |x| x.1))
                    .sum();
                seq += 1;
                heap.push(Node {
                    cost,
                    seq,
                    ranks,
                    last: j,
                });
            }
            if skip {
                continue;
            }
            match found {
                Ok(mut f) => {
                    f.objective += node.cost;
                    // A later node must be better by more than rounding: two discrete values
                    // that give the same real solution are a tie, and the search order
                    // (not the last bits of each SQP) breaks it, so warm and cold starts
                    // agree (regression test
                    // `discrete_ties_are_broken_by_search_order_not_rounding`).
                    if best.as_ref().is_none_or(|b| {
                        let (fm, bm) = (f.objective + f.penalty, b.objective + b.penalty);
                        fm < bm - TIE * (1.0 + bm.abs())
                    }) {
                        let reads_discrete = |i: usize| {
                            self.disc_rows
                                .iter()
                                .any(|v| v.get(i).copied().unwrap_or(true))
                        };
                        let unbound = !f
                            .active
                            .iter()
                            .copied()
                            .chain(f.relaxed.iter().map(|r| r.0))
                            .any(reads_discrete);
                        best = Some(f);
                        // A solution that no row reading a discrete variable binds is the
                        // optimum over the rows every node shares (with convex rows, as for
                        // the successors above); every queued node has those rows too, and a
                        // discrete cost at least this node's, so none can beat it. (On the
                        // warehouse stream: repairs 3.05 -> 2.75 s, no outcome changed.)
                        if unbound {
                            break;
                        }
                    }
                }
                Err(s) => last = s,
            }
        }
        (best, last)
    }
}

/// How far below 0 a row's margin may go in `stage`: its `tolerance` when the stage may
/// relax it (a non-critical `<=` / `<` row below the stage's level), else 0.
fn stage_tolerance(p: &Policy, row: &crate::lattice::Row, stage: Option<Criticality>) -> f64 {
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

/// The right-hand side of the QP row of a lattice row whose linear model at the iterate
/// `u` is `lo + ∇·(x − u)` (`∇` aligned with `vars`, `ureal` the iterate's real part), which
/// must be at least a back-off `need`: `−∇·x <= lo − ∇·u − need`. Returns `(b, need)`. Both
/// QP assemblies of `continuous` (built, and from the kept QP) call this, so they give the
/// same bits.
///
/// The back-off is `δ = 1e-9 (1 + |lo| + Σ |∂ⱼ uⱼ|)` times the row's boost. A row that
/// already holds is asked to keep its margin, up to `δ`, not to gain `δ`: a row SAT exactly
/// at its boundary with no gradient there (`dq1^2 + dq2^2 <= 0` at rest, for an agent not
/// allowed to move the arm) made every QP infeasible (regression test
/// `a_row_sat_at_zero_with_no_gradient_does_not_block_the_repair`).
fn row_rhs(
    c: RowCheck,
    lo: f64,
    vars: &[(usize, u32)],
    grad: &[f64],
    ureal: &[f64],
    boost: f64,
) -> (f64, f64) {
    let mut gu = 0.0;
    let mut scale = lo.abs();
    for (&(j, _), &d) in vars.iter().zip(grad) {
        let uj = ureal.get(j).copied().unwrap_or(0.0);
        gu += d * uj;
        scale += (d * uj).abs();
    }
    let delta = 1e-9 * (1.0 + scale) * boost;
    let need = if c.status == Status::Sat && lo >= 0.0 {
        delta.min(lo)
    } else {
        delta
    };
    (lo - gu - need, need)
}

/// Snap `x` to the proposal's value `x0`, a bound, or zero, when it is within rounding
/// noise of it (`1e-12` of the action's scale): the QP's answer lands within ~1e-16 of a
/// bound or of 0 where the exact point is what Tier 1 can certify (`amount <= 0` holds
/// at exactly 0), and a variable no row asked to move should not move by an ulp
/// (`vx` 0.5 → 0.5000000000000001 in a repair's reasons). Tier 1 still decides.
fn snap(x: f64, lo: f64, hi: f64, scale: f64, x0: f64) -> f64 {
    let eps = 1e-12 * scale;
    if (x - x0).abs() <= eps && x0 >= lo && x0 <= hi {
        x0
    } else if (x - lo).abs() <= eps {
        lo
    } else if (x - hi).abs() <= eps {
        hi
    } else if x.abs() <= eps && lo <= 0.0 && hi >= 0.0 {
        0.0
    } else {
        x
    }
}

/// When every variable that moves over four iterates `x0 → x1 → x2 → x3` (real parts;
/// `x3` read from the full action `u`) does so geometrically, both of its last two step
/// ratios equal to one common ratio in (0.05, 0.95) — the pattern of linear convergence
/// to a flat boundary — the next point: each variable whose Aitken Δ² limit is 0 (within
/// a thousandth of its travel) at 0, the others where they are. Only zero is jumped to: a
/// jump to any other limit could land inside the feasible set, short of the optimum (a
/// warm/cold differential test caught that), while 0 is where flat boundaries such as
/// `dq^2 <= 0` and `amount <= 0` are met exactly. Quadratic convergence (ratios falling
/// fast) and oscillation do not match. `None` otherwise.
fn aitken(x0: &[f64], x1: &[f64], x2: &[f64], real: &[usize], u: &[f64]) -> Option<Vec<f64>> {
    let mut ratio: Option<f64> = None;
    let mut out = Vec::with_capacity(x2.len());
    for (((&a, &b), &c), &ai) in x0.iter().zip(x1).zip(x2).zip(real) {
        let d = u.get(ai).copied()?;
        let (d1, d2, d3) = (b - a, c - b, d - c);
        if d1 == 0.0 && d2 == 0.0 && d3 == 0.0 {
            out.push(d);
            continue;
        }
        let (r1, r2) = (d2 / d1, d3 / d2);
        let q = ratio.unwrap_or(r2);
        let near = |r: f64| (r - q).abs() <= 0.02 * q;
        if !(r2 > 0.05 && r2 < 0.95 && near(r1) && near(r2)) {
            return None;
        }
        ratio = Some(q);
        // x∞ = d + d3·r/(1 − r), the sum of the remaining geometric steps; only that good
        // (the back-off perturbs the ratio), hence the tolerance.
        let lim = d + d3 * r2 / (1.0 - r2);
        out.push(if lim.abs() <= 1e-3 * (d - a).abs() {
            0.0
        } else {
            d
        });
    }
    ratio.map(|_| out)
}

/// How a row enters the SQP's linear model.
#[derive(Clone, Debug)]
enum Lin {
    /// `<=` / `<`: the margin.
    Margin,
    /// `!=`: the slot of `lhs − rhs`.
    Ne(u32),
    /// A boolean row that is an `or` of comparisons: the `(a, b)` of each comparison
    /// `a <= b` / `a < b` that reads a real action variable.
    Or(Vec<(u32, u32)>),
    /// `==` and any other boolean row: no linear model.
    None,
}

/// The [`Lin`] of every row.
fn lin_kinds(p: &Policy, real: &[usize]) -> Vec<Lin> {
    use crate::expr::typeck::{Func, Op2};
    let tape = &p.lattice.tape;
    let insts = tape.insts();
    let real_insts: Vec<u32> = real
        .iter()
        .filter_map(|&ai| p.lattice.action_inst.get(ai).copied().flatten())
        .collect();
    let reads_real = |k: u32| {
        let cone = tape.cone(k);
        real_insts.iter().any(|r| cone.binary_search(r).is_ok())
    };
    p.lattice
        .rows
        .iter()
        .map(|r| match r.sense {
            Sense::Le | Sense::Lt => Lin::Margin,
            Sense::Ne => match insts.get(r.margin as usize) {
                Some(Inst::Un(Func::Abs, d)) => Lin::Ne(*d),
                _ => Lin::None,
            },
            Sense::Eq => Lin::None,
            Sense::Bool => {
                let mut leaves = Vec::new();
                let mut stack = vec![r.margin];
                let mut ok = true;
                while let Some(k) = stack.pop() {
                    match insts.get(k as usize) {
                        Some(Inst::Bin(Op2::Or, a, b)) => {
                            stack.push(*b);
                            stack.push(*a);
                        }
                        Some(Inst::Bin(Op2::Le | Op2::Lt, a, b)) => {
                            if reads_real(*a) || reads_real(*b) {
                                leaves.push((*a, *b));
                            }
                        }
                        // Another disjunct (`mode == 'go'`, a boolean variable): left to
                        // the discrete search; if it holds, the row is SAT anyway.
                        Some(_) => {}
                        None => ok = false,
                    }
                }
                if ok && !leaves.is_empty() {
                    Lin::Or(leaves)
                } else {
                    Lin::None
                }
            }
        })
        .collect()
}

/// The real variables (indices into `real`) each row pins to zero: a `<=` row whose
/// margin is `0 − Σ (k_i x_i)²`, each `k_i` a non-zero constant (`auth-arm`'s
/// `dq1^2 + dq2^2 + dq3^2 + dq4^2 <= 0`), holds exactly where every `x_i` is 0. Empty for
/// every other row.
///
/// Why: such a row's margin is flat at its only feasible point, so its linear model asks
/// each step for half the remaining distance, and once the step is damped (another row
/// oscillating) it crawls: on the warehouse stream, `auth-arm` was the row left violated in
/// a quarter of the nodes that failed without being hopeless, and those failures made
/// repairable proposals BLOCK. Its exact feasible set is linear, `x_i = 0`, so the QP gets
/// that instead of the model.
fn flat_rows(p: &Policy, real: &[usize]) -> Vec<Vec<usize>> {
    let insts = p.lattice.tape.insts();
    let inst = |k: u32| insts.get(k as usize).copied();
    let nonzero = |k: u32| matches!(inst(k), Some(Inst::Const(c)) if c.lo > 0.0 || c.hi < 0.0);
    // The column of `x`, `-x`, `k * x` or `x * k` (x a real action variable).
    let column = |mut k: u32| -> Option<usize> {
        loop {
            match inst(k)? {
                Inst::Input(s) => {
                    return real
                        .iter()
                        .position(|&ai| p.actions.get(ai).is_some_and(|a| a.slot == s))
                }
                Inst::Un(Func::Neg, a) => k = a,
                Inst::Bin(Op2::Mul, a, b) if nonzero(a) => k = b,
                Inst::Bin(Op2::Mul, a, b) if nonzero(b) => k = a,
                _ => return None,
            }
        }
    };
    p.lattice
        .rows
        .iter()
        .map(|r| {
            let Some(Inst::Bin(Op2::Sub, rhs, lhs)) = inst(r.margin) else {
                return Vec::new();
            };
            let zero = matches!(inst(rhs), Some(Inst::Const(c)) if c.lo == 0.0 && c.hi == 0.0);
            if r.sense != Sense::Le || !zero {
                return Vec::new();
            }
            let mut cols = Vec::new();
            let mut stack = vec![lhs];
            while let Some(k) = stack.pop() {
                let col = match inst(k) {
                    Some(Inst::Bin(Op2::Add, a, b)) => {
                        stack.push(a);
                        stack.push(b);
                        continue;
                    }
                    Some(Inst::PowI(t, 2) | Inst::Bin(Op2::Mul, t, _)) if is_square(inst(k)) => {
                        column(t)
                    }
                    _ => None,
                };
                match col {
                    Some(j) => cols.push(j),
                    None => return Vec::new(),
                }
            }
            cols.sort_unstable();
            cols.dedup();
            cols
        })
        .collect()
}

/// `Σ |g_j| (max_j − min_j)` over a row's real variables `vars` with gradient `grad`: how far
/// an affine row's margin can move over the action box.
fn reach_of(p: &Policy, real: &[usize], vars: &[(usize, u32)], grad: &[f64]) -> f64 {
    vars.iter()
        .zip(grad)
        .map(|(&(j, _), &g)| {
            real.get(j)
                .and_then(|&ai| p.actions.get(ai))
                .map_or(f64::INFINITY, |a| g.abs() * (a.max - a.min))
        })
        .sum()
}

/// `t^2` or `t * t`.
fn is_square(i: Option<Inst>) -> bool {
    matches!(i, Some(Inst::PowI(_, 2))) || matches!(i, Some(Inst::Bin(Op2::Mul, a, b)) if a == b)
}

/// Which rows have a margin affine in the real action variables with constant coefficients:
/// sums and differences of constants, terms that read no real action variable (state,
/// `prev.`, discrete actions), and real action variables times constants. For those rows
/// [`Tape::grad_reverse`] returns the same gradient at every point (it reads only the
/// midpoints of constants), so the repairer computes it once. Anything else (products of
/// two terms that read actions, powers, functions, `if`) is "not affine", which only costs
/// speed.
fn affine_rows(p: &Policy, real: &[usize]) -> Vec<bool> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum K {
        /// No input at all.
        Const,
        /// Reads inputs, but no real action variable.
        Free,
        /// Affine in the real action variables, constant coefficients.
        Affine,
        /// Anything else.
        Other,
    }
    let tape: &Tape = &p.lattice.tape;
    let real_slots: Vec<u32> = real
        .iter()
        .filter_map(|&ai| p.actions.get(ai).map(|a| a.slot))
        .collect();
    let mut k: Vec<K> = Vec::with_capacity(tape.len());
    let get = |k: &[K], i: u32| k.get(i as usize).copied().unwrap_or(K::Other);
    let free = |x: K| matches!(x, K::Const | K::Free);
    let both_free = |x: K, y: K| {
        if x == K::Const && y == K::Const {
            K::Const
        } else if free(x) && free(y) {
            K::Free
        } else {
            K::Other
        }
    };
    for inst in tape.insts() {
        let c = match *inst {
            Inst::Const(_) => K::Const,
            Inst::Input(s) => {
                if real_slots.contains(&s) {
                    K::Affine
                } else {
                    K::Free
                }
            }
            Inst::Un(f, a) => {
                let x = get(&k, a);
                if f == crate::expr::typeck::Func::Neg {
                    x
                } else {
                    both_free(x, x)
                }
            }
            Inst::PowI(a, n) => {
                let x = get(&k, a);
                if n == 1 {
                    x
                } else {
                    both_free(x, x)
                }
            }
            Inst::Bin(o, a, b) => {
                use crate::expr::typeck::Op2;
                let (x, y) = (get(&k, a), get(&k, b));
                match o {
                    Op2::Add | Op2::Sub => {
                        if x == K::Other || y == K::Other {
                            K::Other
                        } else if x == K::Affine || y == K::Affine {
                            K::Affine
                        } else {
                            both_free(x, y)
                        }
                    }
                    Op2::Mul => match (x, y) {
                        (K::Affine, K::Const) | (K::Const, K::Affine) => K::Affine,
                        _ => both_free(x, y),
                    },
                    Op2::Div => match (x, y) {
                        (K::Affine, K::Const) => K::Affine,
                        _ => both_free(x, y),
                    },
                    _ => both_free(x, y),
                }
            }
            Inst::If(c, a, b) => {
                let (x, y, z) = (get(&k, c), get(&k, a), get(&k, b));
                if free(x) && free(y) && free(z) {
                    K::Free
                } else {
                    K::Other
                }
            }
        };
        k.push(c);
    }
    p.lattice
        .rows
        .iter()
        .map(|r| matches!(r.sense, Sense::Le | Sense::Lt) && get(&k, r.margin) == K::Affine)
        .collect()
}

/// Is `v0` the first of [`value_options`] for discrete action `ai`, at cost 0? Without
/// building the list when the change cost is positive (then `v0`, if it is a value of the
/// variable, is the only option of cost 0).
fn own_value_first(p: &Policy, ai: usize, v0: f64) -> bool {
    let Some(a) = p.actions.get(ai) else {
        return false;
    };
    let w = p.governor.discrete_cost.get(ai).copied().unwrap_or(1.0);
    let valid = match &a.ty {
        VarType::Bool => v0 == 0.0 || v0 == 1.0,
        #[expect(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
        VarType::Enum(vals) => v0.fract() == 0.0 && v0 >= 0.0 && v0 < vals.len() as f64,
        VarType::Int => v0.fract() == 0.0 && v0 >= a.min && v0 <= a.max,
        VarType::Real | VarType::Text => false,
    };
    if !valid {
        return false;
    }
    if w > 0.0 {
        return true;
    }
    value_options(p, ai, v0)
        .first()
        .is_some_and(|&(x, c)| x == v0 && c == 0.0)
}

/// `Σ L1_PENALTY · weight · slack` over relaxed rows: the penalty the CRE's QP minimises.
fn slack_penalty(p: &Policy, relaxed: &[(usize, f64)]) -> f64 {
    relaxed.iter().map(|&(i, s)| slack_price(p, i) * s).sum()
}

/// The price of a unit of row `i`'s slack in the CRE's QP: `L1_PENALTY · weight`.
fn slack_price(p: &Policy, i: usize) -> f64 {
    let w = row_constraint(p, i).map_or(1.0, |c| c.weight);
    L1_PENALTY * w.max(1e-6)
}

/// The constraint lattice row `i` comes from.
fn row_constraint(p: &Policy, i: usize) -> Option<&crate::policy::Constraint> {
    p.lattice
        .rows
        .get(i)
        .and_then(|r| p.constraints.get(r.constraint))
}

/// `x` clamped to `[lo, hi]` (NaN stays NaN; never panics, unlike `f64::clamp`).
fn clamp_to(x: f64, lo: f64, hi: f64) -> f64 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

/// `‖u − u₀‖²_W` over the real variables.
fn objective(p: &Policy, real: &[usize], u0: &[f64], u: &[f64]) -> f64 {
    let d: Vec<f64> = real
        .iter()
        .map(|&ai| u.get(ai).copied().unwrap_or(0.0) - u0.get(ai).copied().unwrap_or(0.0))
        .collect();
    let mut s = 0.0;
    for (i, row) in p.governor.metric.iter().enumerate() {
        for (j, w) in row.iter().enumerate() {
            s += d.get(i).copied().unwrap_or(0.0) * w * d.get(j).copied().unwrap_or(0.0);
        }
    }
    s
}

/// The repair distance from `u0` to `u`: `sqrt(‖u − u₀‖²_W + Σ discrete-change costs)`.
pub fn distance(p: &Policy, u0: &[f64], u: &[f64]) -> f64 {
    let (real, discrete): (Vec<usize>, Vec<usize>) =
        (0..p.actions.len()).partition(|&i| p.actions.get(i).is_some_and(|a| !a.ty.is_discrete()));
    (objective(p, &real, u0, u) + discrete_cost(p, &discrete, u0, u))
        .max(0.0)
        .sqrt()
}

/// Σ discrete-change costs from `u0` to `u`.
fn discrete_cost(p: &Policy, discrete: &[usize], u0: &[f64], u: &[f64]) -> f64 {
    discrete
        .iter()
        .map(|&ai| {
            let (a, b) = (
                u0.get(ai).copied().unwrap_or(0.0),
                u.get(ai).copied().unwrap_or(0.0),
            );
            let w = p.governor.discrete_cost.get(ai).copied().unwrap_or(1.0);
            let steps = match p.actions.get(ai).map(|a| &a.ty) {
                Some(VarType::Int) => (a - b).abs(),
                _ => f64::from(u8::from(a != b)),
            };
            w * steps
        })
        .sum()
}

/// Candidate values of discrete action `ai` with their change cost, cheapest first (the
/// proposal's own value first, at cost 0).
fn value_options(p: &Policy, ai: usize, v0: f64) -> Vec<(f64, f64)> {
    let Some(a) = p.actions.get(ai) else {
        return vec![(v0, 0.0)];
    };
    let w = p.governor.discrete_cost.get(ai).copied().unwrap_or(1.0);
    let mut opts: Vec<(f64, f64)> = match &a.ty {
        VarType::Bool => vec![0.0, 1.0],
        VarType::Enum(vals) => (0..vals.len())
            .filter_map(|i| u32::try_from(i).ok())
            .map(f64::from)
            .collect(),
        VarType::Int => {
            let c = v0.round().clamp(a.min, a.max);
            (-INT_SPAN..=INT_SPAN)
                .map(|k| c + f64::from(k))
                .filter(|x| *x >= a.min && *x <= a.max)
                .collect()
        }
        _ => vec![v0],
    }
    .into_iter()
    .map(|x| {
        let steps = if a.ty == VarType::Int {
            (x - v0).abs()
        } else {
            f64::from(u8::from(x != v0))
        };
        (x, w * steps)
    })
    .collect();
    opts.sort_by(|x, y| x.1.total_cmp(&y.1).then(x.0.total_cmp(&y.0)));
    opts
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failure is a panic"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn warehouse() -> Policy {
        let text = include_str!("../../../policies/warehouse-robot.toml");
        crate::load("warehouse-robot.toml", text).unwrap()
    }

    /// A state inside the declared ranges (with a random half-width) and a random action.
    fn case(p: &Policy, r: &[f64]) -> (Vec<Interval>, Vec<f64>) {
        let mut inputs = p.range_inputs();
        let mut k = 0;
        let mut next = || {
            k += 1;
            r[k % r.len()]
        };
        for s in &p.states {
            if let (Some(slot), VarType::Real) = (s.slot, &s.ty) {
                let mid = s.min + next() * (s.max - s.min);
                inputs[slot as usize] = Interval::around(mid, 0.05 * next() + s.noise);
            }
        }
        let u = p
            .actions
            .iter()
            .map(|a| match a.ty {
                VarType::Real => a.min + next() * (a.max - a.min),
                _ => a.min,
            })
            .collect();
        (inputs, u)
    }

    /// The same row checks, bit for bit.
    fn same_rows(a: &[RowCheck], b: &[RowCheck]) -> Result<(), TestCaseError> {
        for (x, y) in a.iter().zip(b) {
            prop_assert_eq!(x.active, y.active);
            prop_assert_eq!(x.status, y.status);
            prop_assert_eq!(x.margin.lo.to_bits(), y.margin.lo.to_bits());
            prop_assert_eq!(x.margin.hi.to_bits(), y.margin.hi.to_bits());
        }
        Ok(())
    }

    /// Set every discrete action variable of `u` from `r` (a value in its range).
    fn set_discrete(p: &Policy, u: &mut [f64], r: &[f64]) {
        for (k, a) in p.actions.iter().enumerate() {
            if a.ty.is_discrete() {
                let n = a.max - a.min + 1.0;
                u[k] = (a.min + (r[k % r.len()] * n).floor()).min(a.max);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

        /// The gradients of the rows' linear models, swept over the cones without what no
        /// real variable reaches (`grad_cone`), are bit for bit those of the whole cones.
        #[test]
        fn trimmed_cones_give_the_gradients_of_whole_cones(
            r in proptest::collection::vec(0.0f64..1.0, 24),
        ) {
            let p = warehouse();
            let (inputs, mut u) = case(&p, &r);
            set_discrete(&p, &mut u, &r[3..]);
            let mut rep = Repairer::new(&p);
            rep.tier1(&p, &inputs, &u);
            let lat = &p.lattice;
            let mut whole = vec![0.0; lat.tape.len()];
            let mut trimmed_any = false;
            for (i, row) in lat.rows.iter().enumerate() {
                let trimmed = &rep.grad_cone[i];
                trimmed_any |= trimmed.len() < row.cone.len();
                lat.tape.grad_reverse(rep.t1.slots(), &row.cone, row.margin, &mut whole);
                lat.tape.grad_reverse(rep.t1.slots(), trimmed, row.margin, &mut rep.adj);
                for &(_, inst) in &rep.row_vars[i] {
                    prop_assert_eq!(
                        whole[inst as usize].to_bits(),
                        rep.adj[inst as usize].to_bits(),
                        "row `{}`", row.name
                    );
                }
            }
            // The warehouse's cones do hold instructions of the state alone.
            prop_assert!(trimmed_any);
        }

        /// The incremental checks of a repair give bit for bit the rows of a full check, in
        /// any order: inside an SQP (only the instructions that depend on a
        /// real action variable) and at a discrete node's first point (`tier1_node`: those
        /// that read any action variable, or, from the same real values as an earlier node,
        /// those that read a discrete one).
        #[test]
        fn incremental_checks_are_bit_identical_to_a_full_check(
            r in proptest::collection::vec(0.0f64..1.0, 64),
            moves in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 12), 1..8),
        ) {
            let p = warehouse();
            let (inputs, mut u) = case(&p, &r);
            let mut inc = Repairer::new(&p);
            inc.tier1(&p, &inputs, &u);
            // Most nodes start from the same real values, as in a repair (the first such
            // node's slots are kept and restored); some from others.
            let start = u.clone();
            for m in &moves {
                let node = m[11] < 0.5;
                if node {
                    set_discrete(&p, &mut u, m);
                }
                for (j, &ai) in inc.real.clone().iter().enumerate() {
                    let a = &p.actions[ai];
                    u[ai] = if node && m[10] < 0.7 {
                        start[ai]
                    } else {
                        a.min + m[j % m.len()] * (a.max - a.min)
                    };
                }
                if node {
                    inc.tier1_node(&p, &inputs, &u);
                } else {
                    inc.tier1(&p, &inputs, &u);
                }
                let mut full = Checker::new(&p.lattice);
                full.check(&p.lattice, &inputs, &u);
                same_rows(inc.t1.rows(), full.rows())?;
            }
        }

        /// Screening a later node of the same repair (only the box instructions that read a
        /// discrete variable evaluated again) decides as a fresh screen of that node does.
        #[test]
        fn screening_a_later_node_matches_a_fresh_screen(
            r in proptest::collection::vec(0.0f64..1.0, 64),
            nodes in proptest::collection::vec(proptest::collection::vec(0.0f64..1.0, 11), 1..6),
        ) {
            let p = warehouse();
            let (inputs, mut u) = case(&p, &r);
            let mut inc = Repairer::new(&p);
            let mut seen = vec![u.clone()];
            inc.tier1(&p, &inputs, &u);
            inc.screen(&p, &inputs, &u);
            for m in &nodes {
                set_discrete(&p, &mut u, m);
                inc.tier1_node(&p, &inputs, &u);
                inc.screen(&p, &inputs, &u);
                // The same history (the affine rows' kept `reach` depends on it), each
                // node evaluated in full.
                seen.push(u.clone());
                let mut fresh = Repairer::new(&p);
                for x in &seen {
                    fresh.box_valid = false;
                    fresh.tier1(&p, &inputs, x);
                    fresh.screen(&p, &inputs, x);
                }
                prop_assert_eq!(&inc.screened, &fresh.screened);
                prop_assert_eq!(inc.hopeless, fresh.hopeless);
                prop_assert_eq!(&inc.hopeless_rows, &fresh.hopeless_rows);
                for (x, y) in inc.box_checks.iter().zip(&fresh.box_checks) {
                    prop_assert_eq!(x.margin.lo.to_bits(), y.margin.lo.to_bits());
                    prop_assert_eq!(x.margin.hi.to_bits(), y.margin.hi.to_bits());
                }
            }
        }
    }

    /// A row the screen marks (SAT over the whole action box) is SAT at every point of the
    /// box the test tries, and a hopeless node's failing row fails at every one.
    /// `flat_rows` finds the sums of squares of single real variables held at 0, and
    /// nothing else: not a positive bound, not a square with a state offset.
    #[test]
    fn flat_rows_are_sums_of_squares_held_at_zero() {
        let p = warehouse();
        let real: Vec<usize> = (0..p.actions.len())
            .filter(|&i| p.actions[i].ty == VarType::Real)
            .collect();
        let flat = flat_rows(&p, &real);
        let cols = |name: &str| -> Vec<&str> {
            let i = p.lattice.rows.iter().position(|r| r.name == name).unwrap();
            flat[i]
                .iter()
                .map(|&j| p.actions[real[j]].name.as_str())
                .collect()
        };
        assert_eq!(cols("auth-arm"), ["dq1", "dq2", "dq3", "dq4"]);
        assert_eq!(cols("auth-cage-motion"), ["vx", "vy", "omega"]);
        assert_eq!(cols("estop-still#1"), ["vx", "vy"]);
        assert_eq!(cols("estop-still#3"), ["lift_v"]);
        for name in [
            "no-lift-while-fast",
            "base-speed-disc",
            "traction-circle",
            "arm-tip-speed",
        ] {
            assert!(cols(name).is_empty(), "{name}");
        }
    }

    #[test]
    fn screened_rows_hold_at_every_point_of_the_box() {
        let p = warehouse();
        let mut rep = Repairer::new(&p);
        let r: Vec<f64> = (0..97).map(|i| f64::from(i * 37 % 97) / 97.0).collect();
        for shift in 0..20 {
            let rs: Vec<f64> = r
                .iter()
                .map(|x| (x + 0.05 * f64::from(shift)) % 1.0)
                .collect();
            let (inputs, mut u) = case(&p, &rs);
            rep.box_valid = false; // a new repair's state
            rep.tier1(&p, &inputs, &u);
            rep.screen(&p, &inputs, &u);
            let screened = rep.screened.clone();
            for t in 0..20 {
                for (j, &ai) in rep.real.clone().iter().enumerate() {
                    let a = &p.actions[ai];
                    u[ai] = a.min + rs[(j * 7 + t * 3) % rs.len()] * (a.max - a.min);
                }
                rep.tier1(&p, &inputs, &u);
                for (i, c) in rep.t1.rows().iter().enumerate() {
                    if screened[i] {
                        assert!(!c.active || c.status == Status::Sat, "row {i} at {u:?}");
                    }
                }
            }
        }
    }
}
