//! The SQP of one discrete node.

use super::*;

impl Repairer {
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
    pub(super) fn everywhere(
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
    pub(super) fn continuous(
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
pub(super) fn aitken(
    x0: &[f64],
    x1: &[f64],
    x2: &[f64],
    real: &[usize],
    u: &[f64],
) -> Option<Vec<f64>> {
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
