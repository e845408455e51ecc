//! The SQP of one discrete node: a bounded sequence of linearised QPs (see the module
//! documentation), with the discrete values fixed and the real values free.
//!
//! Each iteration ([`Repairer::iterate`]) is a sequence of steps, each of which may end the
//! node (`ControlFlow::Break`) or, for a retry of the same point, the iteration:
//!
//! 1. [`Repairer::begin_iteration`]: pay for the step from the budget, check the iterate
//!    with Tier 1, damp the step and detect a stall;
//! 2. [`Repairer::accept`] (`relax.rs`): is the iterate acceptable in this stage, and the
//!    trust region of the CRE's refinement;
//! 3. [`Repairer::rule_out`]: screening (once per node) and rows no move can fix;
//! 4. [`Repairer::assemble`] (`assemble.rs`): the QP at the iterate;
//! 5. [`Repairer::solve_step`]: solve it (again with more slack columns when that is what
//!    it lacks) and [`Repairer::take_step`] towards its answer.

use std::ops::ControlFlow;

use crate::interval::Interval;
use crate::policy::{Criticality, Policy};
use crate::qp::QpStatus;
use crate::tier1::Status;

use super::assemble::QpShape;
use super::cost::COST_STEP_NS;
use super::relax::{slack_price, stage_tolerance};
use super::{clamp_to, Found, Repairer, SolverStatus};

/// Why a node's SQP returned no point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NodeFailure {
    /// The last solver status.
    pub(super) status: SolverStatus,
    /// The node's QP proved it infeasible with rows that are the same at every discrete
    /// node of the stage (see [`Repairer::everywhere`]): the search then ends the stage.
    pub(super) everywhere: bool,
}

impl From<SolverStatus> for NodeFailure {
    fn from(status: SolverStatus) -> Self {
        NodeFailure {
            status,
            everywhere: false,
        }
    }
}

/// How a node's SQP ends: its best acceptable point, or why there is none.
pub(super) type NodeEnd = Result<Found, NodeFailure>;

/// The per-row state of the running node's SQP (sized once; reset by each node).
#[derive(Debug)]
pub(super) struct NodeState {
    /// The real parts of the last three SQP iterates, oldest first (for the extrapolation
    /// in [`Repairer::take_step`]).
    hist: [Vec<f64>; 3],
    /// Slack column of each lattice row at the current step.
    pub(super) slack_col: Vec<Option<usize>>,
    /// Per row: the factor on the back-off `δ` for the current SQP. A row that Tier 1 still
    /// finds (barely) violated after a step that kept it binding gets ten times the
    /// back-off at the next linearisation: the outward rounding of its evaluation was wider
    /// than `δ`.
    pub(super) boost: Vec<f64>,
    /// Per real variable: is it pinned to zero in this step (see `flat_rows`)?
    pub(super) pinned: Vec<bool>,
    /// Per row: does it pin its variables in this step (it then gets no linear model)?
    pub(super) pin_row: Vec<bool>,
    /// Per row, [`stage_tolerance`] in the stage of the running SQP.
    pub(super) stage_tol: Vec<f64>,
    /// Per row: a slack column for the rest of this SQP, because a QP without it was
    /// infeasible and its certificate used the row.
    pub(super) extra_slack: Vec<bool>,
}

impl NodeState {
    /// State for `nr` real variables and `nrows` rows.
    pub(super) fn new(nr: usize, nrows: usize) -> Self {
        NodeState {
            hist: [
                Vec::with_capacity(nr),
                Vec::with_capacity(nr),
                Vec::with_capacity(nr),
            ],
            slack_col: vec![None; nrows],
            boost: vec![1.0; nrows],
            pinned: vec![false; nr],
            pin_row: vec![false; nrows],
            stage_tol: Vec::with_capacity(nrows),
            extra_slack: vec![false; nrows],
        }
    }
}

/// One node's SQP: its problem and what its iterations carry from one to the next.
#[derive(Debug)]
pub(super) struct Sqp<'a> {
    pub(super) p: &'a Policy,
    pub(super) inputs: &'a [Interval],
    /// The proposal (the objective's centre).
    pub(super) u0: &'a [f64],
    /// The relaxation stage (`None`: unrelaxed).
    pub(super) stage: Option<Criticality>,
    /// Rows below this criticality may be relaxed (when `allow`).
    pub(super) relax_below: Criticality,
    /// May this stage relax rows at all?
    pub(super) allow: bool,
    /// The policy's `max_iterations`.
    pub(super) max_iter: u32,
    /// The last solver status.
    last: SolverStatus,
    /// Lattice rows active in the last QP, sorted.
    pub(super) active_rows: Vec<usize>,
    /// Step length: 1 while the violation falls; halved whenever it does not. Without the
    /// constraint curvature in the QP, full steps can cycle between two linearisations of
    /// a curved row that meets a straight one (regression test
    /// `sqp_oscillates_between_disc_and_lane_linearisations`).
    step: f64,
    last_violation: f64,
    /// Stall detection (see `RepairSettings::stall_limit`): the best violation seen and
    /// the iterations since it last fell by `stall_gain`.
    best_violation: f64,
    stalled: u32,
    /// The best acceptable point so far (one that needs slack; a point that needs none
    /// ends the node at once).
    pub(super) best: Option<Found>,
    /// Trust region (∞-norm) of the real variables, used once a relaxed point is found.
    pub(super) trust: f64,
    /// Has this SQP made a full check yet (after which an incremental one suffices)?
    full: bool,
    /// Has it screened the rows?
    screened: bool,
    /// Slack columns go only to the relaxable rows that are not SAT at the iterate or were
    /// active in this SQP's last QP: a row that holds with room needs none, and each
    /// column costs the QP a row pair and a dimension. When that QP is infeasible (a row
    /// the step must break had no slack), the same point is solved again with columns for
    /// the relaxable rows its certificate combines (`NodeState::extra_slack`, kept for the
    /// rest of the node); when that is still infeasible, or its answer prices a row
    /// without a column above its slack, with a column for every relaxable row
    /// (`slack_all`), and so is the rest of the node.
    pub(super) slack_all: bool,
    /// Was the last QP the retry with the certificate's columns?
    certified_retry: bool,
    /// Is the next iteration a retry of the same point (not a step: no damping, no
    /// back-off boost, no stall count)?
    retry: bool,
    /// Has this SQP recorded the warm re-repair's QP?
    pub(super) recorded: bool,
}

impl Sqp<'_> {
    /// The node's end: the best point found, else a failure with `status`.
    pub(super) fn end(&mut self, status: SolverStatus) -> NodeEnd {
        self.best.take().ok_or(NodeFailure::from(status))
    }
}

impl Repairer {
    /// Run the SQP for one discrete assignment. `u` holds the full action (discrete values
    /// fixed, real values the starting point) and receives the result.
    pub(super) fn continuous(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        u0: &[f64],
        u: &mut [f64],
        stage: Option<Criticality>,
    ) -> NodeEnd {
        let mut s = self.start_node(p, inputs, u0, u, stage);
        for _ in 0..s.max_iter {
            if let ControlFlow::Break(end) = self.iterate(&mut s, u) {
                return end;
            }
        }
        let last = s.last;
        s.best
            .ok_or(NodeFailure::from(if last == SolverStatus::Solved {
                SolverStatus::MaxIterations
            } else {
                last
            }))
    }

    /// The node's SQP before its first iteration.
    fn start_node<'a>(
        &mut self,
        p: &'a Policy,
        inputs: &'a [Interval],
        u0: &'a [f64],
        u: &mut [f64],
        stage: Option<Criticality>,
    ) -> Sqp<'a> {
        // Start inside the action ranges, and stay there: every iterate is clamped to them
        // (the QP's bound rows hold only to its tolerance, and a proposal may lie outside
        // them; regression test `repair_of_a_proposal_outside_the_action_range_stays_in_range`).
        for &ai in &self.rows.real {
            if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                *uj = clamp_to(*uj, a.min, a.max);
            }
        }
        let node = &mut self.ws.node;
        node.boost.iter_mut().for_each(|b| *b = 1.0);
        node.hist[0].clear();
        node.hist[1].clear();
        node.extra_slack.fill(false);
        self.ws.screen.hopeless.clear();
        // (All 0 in the unrelaxed stage, the only one most repairs run.)
        node.stage_tol.clear();
        if stage.is_some() {
            node.stage_tol
                .extend(p.lattice.rows.iter().map(|r| stage_tolerance(p, r, stage)));
        } else {
            node.stage_tol.resize(p.lattice.rows.len(), 0.0);
        }
        Sqp {
            p,
            inputs,
            u0,
            stage,
            relax_below: stage.unwrap_or(Criticality::Low),
            allow: stage.is_some(),
            max_iter: p.governor.max_iterations,
            last: SolverStatus::Solved,
            active_rows: Vec::new(),
            step: 1.0,
            last_violation: f64::INFINITY,
            best_violation: f64::INFINITY,
            stalled: 0,
            best: None,
            trust: f64::INFINITY,
            full: self.ws.check.checked_at(u),
            screened: false,
            slack_all: false,
            certified_retry: false,
            retry: false,
            recorded: false,
        }
    }

    /// One SQP iteration. `Continue`: the next iteration (a step taken, or a retry of the
    /// same point); `Break`: the node's end.
    fn iterate(&mut self, s: &mut Sqp<'_>, u: &mut [f64]) -> ControlFlow<NodeEnd> {
        self.begin_iteration(s, u)?;
        self.accept(s, u)?;
        self.rule_out(s, u)?;
        let shape = self.assemble(s, u)?;
        self.solve_step(s, u, &shape)
    }

    /// Pay for the iteration, check the iterate with Tier 1, and measure its progress.
    fn begin_iteration(&mut self, s: &mut Sqp<'_>, u: &[f64]) -> ControlFlow<NodeEnd> {
        // INVARIANT (bounded-work): every SQP iteration of a repair is paid from the
        // stage's share of the budget, and its modeled cost is charged (see `ModeledCost`).
        let counts = &mut self.ws.counts;
        if counts.stage_left == 0 {
            return ControlFlow::Break(s.end(SolverStatus::MaxIterations));
        }
        if counts.past_deadline() {
            return ControlFlow::Break(s.end(SolverStatus::Deadline));
        }
        counts.stage_left -= 1;
        counts.charge(COST_STEP_NS);
        counts.iterations = counts.iterations.saturating_add(1);
        let check = &mut self.ws.check;
        if !check.checked_at(u) {
            if s.full {
                check.check(s.p, s.inputs, u);
            } else {
                check.check_node(s.p, s.inputs, u, !self.rows.discrete.is_empty());
                s.full = true;
            }
        }
        // The violation beyond what this stage may relax (all of it in the unrelaxed
        // stage): a relaxed row's slack is what the stage allows, not a failure to
        // converge. Damping on the whole violation halved the step each time the QP
        // traded a little more slack for a nearer point, and the SQP stalled at the thin
        // lens of two discs (`link-latency` and a relaxed `traction-circle`).
        let node = &mut self.ws.node;
        let violation: f64 = node
            .stage_tol
            .iter()
            .zip(check.rows())
            .filter(|(_, c)| c.active && !c.margin.is_invalid())
            .map(|(tol, c)| (-c.margin.lo - tol).max(0.0))
            .sum();
        let retrying = std::mem::take(&mut s.retry);
        if violation >= s.last_violation && !retrying {
            s.step = (s.step * 0.5).max(1.0 / 64.0);
        }
        s.last_violation = violation;
        // Rows the last QP kept binding that Tier 1 finds just short of their boundary.
        // (Only rows short by a rounding-sized amount: a relaxed row's slack is not.)
        let near = 1e-6 * u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for &r in s.active_rows.iter().filter(|_| !retrying) {
            if let (Some(c), Some(b)) = (check.rows().get(r), node.boost.get_mut(r)) {
                if c.active && c.status != Status::Sat && -c.margin.lo <= near && *b < 1e6 {
                    *b *= 10.0;
                }
            }
        }
        if s.best.is_none() && !retrying {
            if violation < (1.0 - self.settings.stall_gain) * s.best_violation {
                s.best_violation = violation;
                s.stalled = 0;
            } else {
                s.stalled += 1;
                if s.stalled >= self.settings.stall_limit {
                    return ControlFlow::Break(Err(SolverStatus::MaxIterations.into()));
                }
            }
        }
        ControlFlow::Continue(())
    }

    /// End the node when no continuous move can save it: a hopeless node (screening, once
    /// per node and only for nodes whose first point is not accepted), a violated critical
    /// row that reads no real variable, or no real variable at all.
    fn rule_out(&mut self, s: &mut Sqp<'_>, u: &[f64]) -> ControlFlow<NodeEnd> {
        // Rows that hold over the whole action box (a pillar far away, a speed limit no
        // real value reaches) cannot bind: they get no gradient, no QP row and no slack.
        if !s.screened {
            let ws = &mut self.ws;
            ws.screen
                .screen(&self.rows, &mut ws.lin, &ws.check, s.p, s.inputs, u);
            s.screened = true;
            if !ws.screen.hopeless.is_empty() {
                return ControlFlow::Break(s.end(SolverStatus::Infeasible));
            }
        }
        // A critical row no continuous move can fix ends this candidate now.
        for (i, (row, c)) in
            s.p.lattice
                .rows
                .iter()
                .zip(self.ws.check.rows())
                .enumerate()
        {
            if c.active
                && c.status != Status::Sat
                && row.criticality == Criticality::Critical
                && !self.rows.reads_real.get(i).copied().unwrap_or(false)
            {
                return ControlFlow::Break(s.end(SolverStatus::Infeasible));
            }
        }
        if self.rows.real.is_empty() {
            return ControlFlow::Break(s.end(SolverStatus::Infeasible));
        }
        ControlFlow::Continue(())
    }

    /// Solve the assembled QP and act on its answer: a retry with more slack columns, the
    /// node's end, or a step.
    fn solve_step(
        &mut self,
        s: &mut Sqp<'_>,
        u: &mut [f64],
        shape: &QpShape,
    ) -> ControlFlow<NodeEnd> {
        let status = self.solve_qp(s, shape);
        if status == QpStatus::Infeasible && shape.limited {
            // First the relaxable rows the certificate of infeasibility combines (a slack
            // for each may be what resolves it); when that is not enough, every relaxable
            // row.
            let added = !s.certified_retry && !self.settings.every_slack && self.certified_slack();
            s.certified_retry = added;
            self.info.targeted_retries += u64::from(added);
            if !added {
                s.slack_all = true;
            }
            s.retry = true;
            return ControlFlow::Continue(());
        }
        s.certified_retry = false;
        if status == QpStatus::Solved
            && shape.limited
            && self.ws.node.extra_slack.contains(&true)
            && self.priced_without_column(s.p)
        {
            s.slack_all = true;
            s.retry = true;
            return ControlFlow::Continue(());
        }
        s.last = match status {
            QpStatus::Solved => SolverStatus::Solved,
            QpStatus::Infeasible => SolverStatus::Infeasible,
            QpStatus::MaxIterations => SolverStatus::MaxIterations,
            QpStatus::NumericalError => SolverStatus::NumericalError,
        };
        if s.last == SolverStatus::Infeasible && s.best.is_none() {
            let at_proposal = self.rows.real.iter().all(|&ai| {
                let (a, b) = (u.get(ai).copied(), s.u0.get(ai).copied());
                a.map(f64::to_bits) == b.map(f64::to_bits)
            });
            let everywhere = self.everywhere(
                &self.ws.data.y,
                shape.real_bounds,
                shape.slack_bounds,
                s.trust.is_finite(),
                at_proposal,
            );
            return ControlFlow::Break(Err(NodeFailure {
                status: s.last,
                everywhere,
            }));
        }
        if s.last != SolverStatus::Solved {
            return ControlFlow::Break(s.end(s.last));
        }
        s.active_rows.clear();
        let data = &self.ws.data;
        for &qi in &data.active {
            if let Some(Some(r)) = data.qrow.get(qi) {
                s.active_rows.push(*r);
            }
        }
        s.active_rows.sort_unstable();
        self.take_step(s, u)
    }

    /// The QP of this step was infeasible for want of a slack column: give one to each
    /// relaxable row without one that its certificate (`self.ws.data.y`) combines.
    /// `true` when it named such a row.
    fn certified_slack(&mut self) -> bool {
        let (data, node) = (&self.ws.data, &mut self.ws.node);
        let mut added = false;
        for (qi, &y) in data.y.iter().enumerate() {
            let Some(Some(r)) = data.qrow.get(qi) else {
                continue;
            };
            if y > 0.0
                && node.stage_tol.get(*r).copied().unwrap_or(0.0) > 0.0
                && node.slack_col.get(*r).copied().flatten().is_none()
            {
                if let Some(e) = node.extra_slack.get_mut(*r) {
                    *e = true;
                    added = true;
                }
            }
        }
        added
    }

    /// Is the answer of a QP with only some slack columns optimal for the QP with every
    /// column too? A relaxable row without one would keep its slack at 0 there only while
    /// its multiplier is at most the slack's price `P w`; `true` when some multiplier is
    /// above it (that QP's answer differs: solve it).
    fn priced_without_column(&self, p: &Policy) -> bool {
        let (data, node) = (&self.ws.data, &self.ws.node);
        data.y.iter().enumerate().any(|(qi, &lam)| {
            let Some(Some(r)) = data.qrow.get(qi) else {
                return false;
            };
            node.stage_tol.get(*r).copied().unwrap_or(0.0) > 0.0
                && node.slack_col.get(*r).copied().flatten().is_none()
                && lam > slack_price(p, *r, self.settings.l1_penalty)
        })
    }

    /// Move the iterate towards the QP's answer (`self.ws.data.x`): a damped step before a
    /// relaxed point is found, a full one inside the trust region after; then the
    /// extrapolation of linear convergence, and the end of a node that no longer moves.
    fn take_step(&mut self, s: &mut Sqp<'_>, u: &mut [f64]) -> ControlFlow<NodeEnd> {
        let p = s.p;
        let real = &self.rows.real;
        let (node, data) = (&mut self.ws.node, &self.ws.data);
        let mut moved = 0.0f64;
        // The iterate before this step, for the extrapolation below.
        node.hist.rotate_left(1);
        if let Some(h) = node.hist.last_mut() {
            h.clear();
            h.extend(real.iter().map(|&ai| u.get(ai).copied().unwrap_or(0.0)));
        }
        let scale0 = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        for (j, &ai) in real.iter().enumerate() {
            let x = data.x.get(j).copied().unwrap_or(f64::NAN);
            if !x.is_finite() {
                return ControlFlow::Break(s.end(SolverStatus::NumericalError));
            }
            if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                // Full steps inside the trust region, and for pinned variables (their
                // bounds are exact, not a model); damped ones before it.
                // (A pinned variable takes its bound exactly: the QP meets it only to
                // its tolerance, and `1e-300` squared is not a SAT `0 <= 0`.)
                let pinned = node.pinned.get(j).copied().unwrap_or(false);
                let x = if pinned { 0.0 } else { x };
                let t = if s.best.is_some() || pinned {
                    1.0
                } else {
                    s.step
                };
                let x0 = s.u0.get(ai).copied().unwrap_or(f64::NAN);
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
        let [h0, h1, h2] = &node.hist;
        if s.best.is_none() && h0.len() == real.len() {
            if let Some(lim) = aitken(h0, h1, h2, real, u) {
                for ((&ai, l), &x1) in real.iter().zip(lim).zip(h2) {
                    if let (Some(uj), Some(a)) = (u.get_mut(ai), p.actions.get(ai)) {
                        let x0 = s.u0.get(ai).copied().unwrap_or(f64::NAN);
                        *uj = snap(clamp_to(l, a.min, a.max), a.min, a.max, scale0, x0);
                        moved = moved.max((*uj - x1).abs());
                    }
                }
            }
        }
        self.ws.warm_rows.clone_from(&s.active_rows);
        let scale = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        if moved <= 1e-14 * scale {
            return self.stuck(s, scale);
        }
        ControlFlow::Continue(())
    }

    /// The QP's answer is (within rounding) the iterate itself. A row short of its boundary
    /// by less than the QP's feasibility tolerance (`vx^2 <= 2.25 - 20 * loc_sigma` at
    /// exactly its boundary, UNCERTAIN by a rounding error): the QP calls the point
    /// feasible and does not move. Its back-off grows a hundredfold and the SQP goes on
    /// (regression test `a_row_short_by_rounding_is_backed_off_beyond_the_qp_tolerance`).
    /// Otherwise the linear model is satisfied where Tier 1 is not: a row the model cannot
    /// see (undefined margin, `==`, a boolean row that is not a disjunction of
    /// comparisons), or a `!=` / `or` side that cannot be reached; the node ends.
    fn stuck(&mut self, s: &mut Sqp<'_>, scale: f64) -> ControlFlow<NodeEnd> {
        let near = 1e-6 * scale;
        let mut grew = false;
        for (c, b) in self
            .ws
            .check
            .rows()
            .iter()
            .zip(self.ws.node.boost.iter_mut())
        {
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
            return ControlFlow::Continue(());
        }
        ControlFlow::Break(s.end(SolverStatus::Infeasible))
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
            if let Some(i) = self.ws.data.qrow.get(qi).copied().flatten() {
                let affine = self.rows.affine.get(i).copied().unwrap_or(false);
                let discrete = self.rows.reads_discrete(i);
                let guard_moves = self.rows.guard_moves.get(i).copied().unwrap_or(true);
                if discrete || (!at_proposal && (!affine || guard_moves)) {
                    return false;
                }
            } else if qi >= real_bounds && qi < slack_bounds && trust_region {
                return false;
            }
        }
        any
    }
}

/// Snap `x` to the proposal's value `x0`, a bound, or zero, when it is within rounding
/// noise of it (`1e-12` of the action's scale): the QP's answer lands within ~1e-16 of a
/// bound or of 0 where the exact point is what Tier 1 can certify (`amount <= 0` holds
/// at exactly 0), and a variable no row asked to move should not move by an ulp
/// (`vx` 0.5 → 0.5000000000000001 in a repair's reasons). Tier 1 still decides.
pub(super) fn snap(x: f64, lo: f64, hi: f64, scale: f64, x0: f64) -> f64 {
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
