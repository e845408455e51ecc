//! Tier 2: repair by projection, mixed discrete search, the Conflict Resolution Engine (CRE)
//! and the certified fallback.
//!
//! Everything here is an *untrusted proposer*. It searches for the action nearest the
//! proposal in the policy's metric,
//!
//! ```text
//! minimise ‖u − u₀‖²_W + Σ discrete-change costs   subject to every active row,
//! ```
//!
//! but nothing it finds is returned as a repair unless Tier 1
//! ([`crate::tier1::Checker`]) has certified every active critical row over the
//! whole state box. A bug here can cost optimality, never safety: when the search fails,
//! the answer is the fallback, itself re-checked by Tier 1 against the current state; and
//! the governor executes only what its own check certifies.
//!
//! # The algorithm
//!
//! * **Continuous part** (`sqp.rs`, `linearise.rs`, `assemble.rs`). A bounded sequence of
//!   linearised QPs (sequential quadratic programming): each active numeric row's margin
//!   is linearised at the current iterate with reverse-mode derivatives over its cone,
//!   using the *lower bound* of its Tier 1 margin interval as the constant term. That is
//!   the robust tightening: the linear model asks for the margin over the whole state box,
//!   not at the nominal state. Each row also backs off a tiny `δ` from its boundary so that
//!   Tier 1's outward rounding certifies the boundary point instead of calling it
//!   UNCERTAIN. Affine rows are solved exactly in one step; curved rows (speed discs,
//!   barriers, Lyapunov) converge in a few. The iterates stay inside the action variables'
//!   `[min, max]`.
//! * **Rows that are not `<=` / `<` over the real action variables** (`linearise.rs`):
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
//! * **Discrete part** (`search.rs`). Enum, bool and int action variables are searched
//!   best-first over their values in order of `discrete_cost` (a rule's `set` is tried
//!   first); a branch stops the search when its discrete cost alone cannot beat the best
//!   found, or at the node budget. A node with a solution does not advance a variable that
//!   no row binding there reads (the successor would cost more for the same continuous
//!   part), and a node found hopeless (a row fails for every real action beyond any
//!   tolerance) is not tried again in a later relaxation stage; a solution that no row
//!   reading a discrete variable binds ends the stage's search (every queued node shares
//!   those rows and costs more). When a node's QP is infeasible and the QP's certificate
//!   (a Farkas combination of its rows) uses only rows that every other node shares
//!   unchanged (`Repairer::everywhere`), the stage ends there: every node would fail on
//!   that same subsystem.
//! * **Screening** (`screen.rs`). Once per node, rows that hold over the whole box of the
//!   real action ranges (an affine row by its gradient bound, a curved one by Tier 1 over
//!   the box) are left out of the QP; inside the SQP, Tier 1 re-evaluates only the
//!   instructions that depend on a real action variable (state and discrete values are
//!   fixed there).
//! * **CRE** (`relax.rs`). When no candidate satisfies every row, non-critical rows are
//!   relaxed in priority order — low, then low and medium, then low, medium and high —
//!   each taking a slack of at most its `tolerance`, with an exact L1 penalty (weighted by
//!   the row's `weight`) so no slack is used where none is needed. Critical rows are never
//!   relaxed. Once a point within the tolerances is found, the SQP continues as a
//!   trust-region method on that penalty function (a curved row's first acceptable iterate
//!   can use much more slack than needed) and returns the best point. A QP gives a slack
//!   column only to the relaxable rows not SAT at the iterate or active in the node's last
//!   QP. When that QP is infeasible, the point is solved again with columns for the
//!   relaxable rows its Farkas certificate combines, and when that is not enough (still
//!   infeasible, or a row without a column priced above its slack's penalty), with a column
//!   for every relaxable row: the answer of the QP with every column, at a fraction of its
//!   size. The step is damped on the violation the stage may not relax, not on the slack
//!   it allows. When no action of the whole box can satisfy even the most relaxed stage
//!   (an interval contraction, [`crate::contract`]), the search ends before the relaxation
//!   stages.
//! * **Bounded work** (`info.rs`, `cost.rs`). The whole repair — every node of every stage
//!   — shares one deterministic budget of SQP iterations, [`WORK_FACTOR`] ×
//!   `max_iterations`, of which each stage may spend its share of what is left. An SQP
//!   that stops lowering its violation (beyond what its stage may relax) gives up after a
//!   few iterations, and a row Tier 1 still finds a rounding-width short of its boundary
//!   gets a larger back-off at the next linearisation. A count of iterations, not a clock,
//!   so the same input gives the same answer on every machine. With
//!   `[governor] enforce_deadline`, the search also stops when its [`ModeledCost`], a count
//!   of its work weighted by what each part costs, reaches nine tenths of `deadline_us`.
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
//! * **Warm re-repair** (`quick.rs`). For a policy whose rows are all affine in the real
//!   action variables (no discrete action variable, no guard that reads one), a proposal at
//!   the same state as the last repair gets the last search's first QP back with only `g`
//!   and the back-off recomputed, warm-started from the last active set and its kept
//!   factorisation, and one Tier 1 check of the answer. Whatever that check does not
//!   accept goes through the full repair.
//! * **Fallback** (`fallback.rs`). If even that fails, the fallback action, with its Tier 1
//!   verdict at the current state.
//!
//! What each mechanism saves, and the figures behind the defaults, are in `BENCHMARKS.md`
//! ("Tier 2's structure"): comments here say why, the numbers live there.
//!
//! # Structure
//!
//! The layout follows a solver such as Clarabel's: settings, an immutable problem
//! structure, a workspace of per-solve state, counters, and one file per step. A
//! [`Repairer`] is those four parts — `Rows` (per policy, built once and only read),
//! [`RepairSettings`] (validated), the `Workspace` (every buffer and cache a repair
//! writes: caches are `Option`s or `Memo`s, never a flag beside data) and [`RepairInfo`].
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | this description; the public API ([`Repairer`], [`Repair`], [`RepairOutcome`], [`SolverStatus`], [`distance`]) and `Repairer::repair`: the warm re-repair, the feasible path, then the search |
//! | `settings.rs` | [`RepairSettings`]: the search's tuning with documented defaults, validated, and the test switches (`cold`, `no_contraction`, `every_slack`) |
//! | `info.rs` | counters: [`RepairInfo`] over a repairer's life; `SearchCounts` (iterations, nodes, the stage's steps, the modeled cost) within a search |
//! | `cost.rs` | [`ModeledCost`], [`search_budget`] and the cost model's coefficients |
//! | `rows.rs` | `Rows`: the per-policy row structure (real and discrete variables, cones, affine rows and their gradients, `reach`, screening's instructions, `quick_ok`), built once |
//! | `workspace.rs` | `Workspace`: the per-solve state (the parts below), and `Memo`, a cache that keeps its allocation while stale |
//! | `check.rs` | `SearchCheck`: the search's own Tier 1, with what it keeps between checks of one repair |
//! | `linearise.rs` | how each row enters the QP (`Lin`), its linear model and gradient, and the per-policy analyses behind them (affine rows, disjunctions, rows that pin variables) |
//! | `screen.rs` | screening over the box of the real action ranges, and hopeless nodes |
//! | `assemble.rs` | the QP of one SQP step: slack columns, pins, objective, rows (built or from the kept QP), bounds, the starting active set, and its solve |
//! | `sqp.rs` | the SQP of one node, as a loop of steps; the certificate test `everywhere`, the step, `snap` and the Aitken extrapolation |
//! | `relax.rs` | the CRE: the stages of a search, what each accepts, the L1 penalty, the trust-region acceptance, and the contraction that rules the stages out |
//! | `search.rs` | the best-first discrete search, and the feasible path |
//! | `quick.rs` | the warm re-repair and the QP it keeps (`QuickQp`) |
//! | `fallback.rs` | the certified fallback |
//!
//! Every struct has at most 30 fields and every function outside tests at most 150
//! lines. The largest: `Repairer::search` (about 100 lines: the best-first loop, whose
//! parts share the queue and the node being expanded), `affine_rows` (one match over the
//! tape's instruction kinds) and, among the structs, `Sqp` (21 fields: what one node's
//! iterations carry from one to the next).

mod assemble;
mod check;
mod cost;
mod fallback;
mod info;
mod linearise;
mod quick;
mod relax;
mod rows;
mod screen;
mod search;
mod settings;
mod sqp;
mod workspace;

pub use cost::{search_budget, ModeledCost};
pub use info::RepairInfo;
pub use settings::{InvalidSetting, RepairSettings, NODE_BUDGET, WORK_FACTOR};

use crate::interval::Interval;
use crate::policy::Policy;
use crate::tier1::RowCheck;

use rows::Rows;
use search::discrete_cost;
use workspace::Workspace;

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

/// Tier 2 for one policy: its settings, the policy's row structure, and the working memory
/// of its repairs (one per agent stream: it also keeps the warm-start active set and the
/// warm re-repair's QP).
#[derive(Debug)]
pub struct Repairer {
    /// The policy's row structure (built once, only read).
    rows: Rows,
    settings: RepairSettings,
    /// Every buffer and cache a repair writes.
    ws: Workspace,
    info: RepairInfo,
}

impl Repairer {
    /// A repairer for `p` with the default settings (what the governor uses).
    pub fn new(p: &Policy) -> Self {
        Self::build(p, RepairSettings::default())
    }

    /// A repairer for `p` with `settings`.
    ///
    /// # Errors
    ///
    /// The setting [`RepairSettings::validate`] refuses.
    pub fn with_settings(p: &Policy, settings: RepairSettings) -> Result<Self, InvalidSetting> {
        settings.validate()?;
        Ok(Self::build(p, settings))
    }

    fn build(p: &Policy, settings: RepairSettings) -> Self {
        let rows = Rows::new(p);
        let ws = Workspace::new(p, &rows);
        Repairer {
            rows,
            settings,
            ws,
            info: RepairInfo::default(),
        }
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &RepairSettings {
        &self.settings
    }

    /// Its counters so far.
    pub fn info(&self) -> &RepairInfo {
        &self.info
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
        self.ws.begin_repair();
        if preferred.is_empty() && !self.settings.cold {
            if let Some(r) = self.quick(p, inputs, proposal) {
                return r;
            }
        }
        if preferred.is_empty() {
            if let Some(r) = self.proposal_holds(p, inputs, proposal) {
                return r;
            }
        }
        self.stages(p, inputs, proposal, preferred)
    }

    /// [`Repairer::repair`] for the governor's critical-rows-only mode (overload): the
    /// search goes straight to the CRE's most relaxed stage, where every non-critical row
    /// may be relaxed, with the whole work budget. The answer keeps every critical row (it
    /// is certified by Tier 1 as any other); what it gives up is the earlier stages'
    /// attempt to keep the non-critical rows too, which is most of a hard repair's cost.
    pub fn repair_critical_only(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        preferred: &[(usize, f64)],
    ) -> Repair {
        self.ws.critical_only = true;
        let r = self.repair(p, inputs, proposal, preferred);
        self.ws.critical_only = false;
        r
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
    use super::linearise::flat_rows;
    use super::*;
    use crate::policy::VarType;
    use crate::tier1::{Checker, Status};
    use proptest::prelude::*;

    /// The steps the tests drive one by one.
    impl Repairer {
        fn tier1(&mut self, p: &Policy, inputs: &[Interval], u: &[f64]) {
            self.ws.check.check(p, inputs, u);
        }

        fn tier1_node(&mut self, p: &Policy, inputs: &[Interval], u: &[f64]) {
            let has_discrete = !self.rows.discrete.is_empty();
            self.ws.check.check_node(p, inputs, u, has_discrete);
        }

        fn screen(&mut self, p: &Policy, inputs: &[Interval], u: &[f64]) {
            let ws = &mut self.ws;
            ws.screen
                .screen(&self.rows, &mut ws.lin, &ws.check, p, inputs, u);
        }
    }

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
                let trimmed = &rep.rows.grad_cone[i];
                trimmed_any |= trimmed.len() < row.cone.len();
                lat.tape.grad_reverse(rep.ws.check.slots(), &row.cone, row.margin, &mut whole);
                lat.tape.grad_reverse(rep.ws.check.slots(), trimmed, row.margin, &mut rep.ws.lin.adj);
                for &(_, inst) in &rep.rows.row_vars[i] {
                    prop_assert_eq!(
                        whole[inst as usize].to_bits(),
                        rep.ws.lin.adj[inst as usize].to_bits(),
                        "row `{}`", row.name
                    );
                }
            }
            // The warehouse's cones do hold instructions of the state alone.
            prop_assert!(trimmed_any);
        }

        /// The gradients `Rows` keeps for the affine rows (swept once, over slots that hold
        /// only the constants) are bit for bit those a sweep at any point gives.
        #[test]
        fn kept_gradients_are_those_of_every_point(
            r in proptest::collection::vec(0.0f64..1.0, 24),
        ) {
            let p = warehouse();
            let (inputs, mut u) = case(&p, &r);
            set_discrete(&p, &mut u, &r[3..]);
            let mut rep = Repairer::new(&p);
            rep.tier1(&p, &inputs, &u);
            let lat = &p.lattice;
            let mut affine = 0;
            for (i, row) in lat.rows.iter().enumerate() {
                if !rep.rows.affine[i] {
                    prop_assert!(rep.rows.grad[i].is_empty());
                    continue;
                }
                affine += 1;
                let cone = &rep.rows.grad_cone[i];
                lat.tape.grad_reverse(rep.ws.check.slots(), cone, row.margin, &mut rep.ws.lin.adj);
                let vars = &rep.rows.row_vars[i];
                prop_assert_eq!(vars.len(), rep.rows.grad[i].len());
                for (&(_, inst), g) in vars.iter().zip(&rep.rows.grad[i]) {
                    prop_assert_eq!(
                        rep.ws.lin.adj[inst as usize].to_bits(),
                        g.to_bits(),
                        "row `{}`", row.name
                    );
                }
            }
            prop_assert!(affine > 0);
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
                for (j, &ai) in inc.rows.real.clone().iter().enumerate() {
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
                same_rows(inc.ws.check.rows(), full.rows())?;
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
                    fresh.ws.screen.begin_repair();
                    fresh.tier1(&p, &inputs, x);
                    fresh.screen(&p, &inputs, x);
                }
                prop_assert_eq!(&inc.ws.screen.screened, &fresh.ws.screen.screened);
                prop_assert_eq!(&inc.ws.screen.hopeless, &fresh.ws.screen.hopeless);
                for (x, y) in inc.ws.screen.box_checks().iter().zip(fresh.ws.screen.box_checks()) {
                    prop_assert_eq!(x.margin.lo.to_bits(), y.margin.lo.to_bits());
                    prop_assert_eq!(x.margin.hi.to_bits(), y.margin.hi.to_bits());
                }
            }
        }
    }

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

    /// A row the screen marks (SAT over the whole action box) is SAT at every point of the
    /// box the test tries.
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
            rep.ws.screen.begin_repair(); // a new repair's state
            rep.tier1(&p, &inputs, &u);
            rep.screen(&p, &inputs, &u);
            let screened = rep.ws.screen.screened.clone();
            for t in 0..20 {
                for (j, &ai) in rep.rows.real.clone().iter().enumerate() {
                    let a = &p.actions[ai];
                    u[ai] = a.min + rs[(j * 7 + t * 3) % rs.len()] * (a.max - a.min);
                }
                rep.tier1(&p, &inputs, &u);
                for (i, c) in rep.ws.check.rows().iter().enumerate() {
                    if screened[i] {
                        assert!(!c.active || c.status == Status::Sat, "row {i} at {u:?}");
                    }
                }
            }
        }
    }
}
