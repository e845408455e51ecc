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
//! but nothing it finds is returned as a repair unless Tier 1 ([`crate::lattice::Lattice::check`]) has
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

mod assemble;
mod check;
mod cost;
mod fallback;
mod linearise;
mod quick;
mod relax;
mod rows;
mod screen;
mod search;
mod sqp;

use assemble::*;
use cost::*;
pub use cost::{search_budget, ModeledCost};
use linearise::*;
use relax::*;
use rows::*;
use search::*;
use sqp::*;

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
        let text = include_str!("../../../../policies/warehouse-robot.toml");
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
