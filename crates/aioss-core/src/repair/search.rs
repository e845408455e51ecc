//! The discrete search: enum, bool and int action variables are searched best-first over
//! their values in order of `discrete_cost` (a rule's `set` is tried first), with the SQP
//! (`sqp.rs`) at each node; and the feasible path, which answers with the proposal itself
//! when the search's first node would.
//!
//! A branch stops the search when its discrete cost alone cannot beat the best found, or
//! at the node budget. A node with a solution does not advance a variable that no row
//! binding there reads (the successor would cost more for the same continuous part), and
//! a node found hopeless is not tried again in a later relaxation stage; a solution that
//! no row reading a discrete variable binds ends the stage's search (every queued node
//! shares those rows and costs more). A node whose QP proves infeasibility with rows every
//! other node shares unchanged ends the stage (see `Repairer::everywhere`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::interval::Interval;
use crate::policy::{Criticality, Policy, VarType};

use super::sqp::{NodeEnd, NodeFailure};
use super::{Found, ModeledCost, Repair, RepairOutcome, Repairer, SolverStatus};

/// A node of the search: one value (by rank in its options) per discrete variable.
#[derive(Clone, Debug, PartialEq)]
struct Node {
    /// The discrete cost of its values.
    cost: f64,
    /// Its place in the order nodes were queued (ties of cost go to the earlier).
    seq: u32,
    /// Per discrete variable, the rank of its value among its options.
    ranks: Vec<usize>,
    /// The first variable its successors may advance.
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

/// One stage's search: its problem, its queue and what it has found.
struct Search<'a> {
    p: &'a Policy,
    inputs: &'a [Interval],
    proposal: &'a [f64],
    stage: Option<Criticality>,
    /// Each discrete variable's candidate values with their change cost, cheapest first.
    options: Vec<Vec<(f64, f64)>>,
    /// The best point found, with the discrete cost in its objective.
    best: Option<Found>,
    /// The last solver status of a node that found nothing.
    last: SolverStatus,
    /// The action of the node being tried.
    u: Vec<f64>,
    /// Nodes this stage may still examine.
    budget: u32,
    heap: BinaryHeap<Node>,
    seq: u32,
}

impl Repairer {
    /// Best-first search over the discrete variables' values at `stage`, with the SQP at
    /// each node. `dead` holds the nodes an earlier stage found hopeless.
    pub(super) fn search(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
        preferred: &[(usize, f64)],
        stage: Option<Criticality>,
        dead: &mut Vec<Vec<usize>>,
    ) -> (Option<Found>, SolverStatus) {
        let int_span = self.settings.int_span;
        let options: Vec<Vec<(f64, f64)>> = self
            .rows
            .discrete
            .iter()
            .map(|&ai| value_options(p, ai, proposal.get(ai).copied().unwrap_or(0.0), int_span))
            .collect();
        let mut s = Search {
            p,
            inputs,
            proposal,
            stage,
            heap: BinaryHeap::new(),
            seq: 0,
            best: None,
            last: SolverStatus::Solved,
            u: proposal.to_vec(),
            budget: self.settings.node_budget,
            options,
        };
        if self.preferred_first(&mut s, preferred) {
            return (None, SolverStatus::Infeasible);
        }
        s.heap.push(Node {
            cost: 0.0,
            seq: s.seq,
            ranks: vec![0; s.options.len()],
            last: 0,
        });
        while let Some(node) = s.heap.pop() {
            if s.budget == 0 || self.ws.counts.stage_left == 0 {
                if s.best.is_none() {
                    s.last = SolverStatus::MaxIterations;
                }
                break;
            }
            if self.ws.counts.past_deadline() {
                if s.best.is_none() {
                    s.last = SolverStatus::Deadline;
                }
                break;
            }
            if s.best
                .as_ref()
                .is_some_and(|b| node.cost >= b.objective + b.penalty)
            {
                break; // no remaining branch can beat the best found
            }
            // A node an earlier stage found hopeless is skipped (its successors are not:
            // they change other values).
            let skip = dead.contains(&node.ranks);
            let found = if skip {
                Err(NodeFailure::from(SolverStatus::Infeasible))
            } else {
                s.budget -= 1;
                self.ws.counts.nodes += 1;
                let found = self.visit(&mut s, &node);
                if found.is_err() && !self.ws.screen.hopeless.is_empty() {
                    dead.push(node.ranks.clone());
                }
                found
            };
            if !skip
                && matches!(
                    found,
                    Err(NodeFailure {
                        everywhere: true,
                        ..
                    })
                )
            {
                // Every other node fails on the same subsystem (see `everywhere`).
                if s.best.is_none() {
                    s.last = SolverStatus::Infeasible;
                }
                break;
            }
            self.push_successors(&mut s, &node, &found, skip);
            if skip {
                continue;
            }
            match found {
                Ok(f) => {
                    if self.keep(&mut s, f, node.cost) {
                        break;
                    }
                }
                Err(e) => s.last = e.status,
            }
        }
        (s.best, s.last)
    }

    /// The rule's `set` first, unless it is the search's first node anyway: the governor
    /// applies the `set` to the proposal it passes, and each variable's first value is the
    /// proposal's own, so the same SQP ran twice (answers unchanged, since the later of two
    /// equal candidates never replaces the first; `BENCHMARKS.md`, "Tier 2's structure",
    /// has how many nodes that was). `true` when its node proves that every node fails.
    fn preferred_first(&mut self, s: &mut Search<'_>, preferred: &[(usize, f64)]) -> bool {
        let root_is_preferred = preferred.iter().all(|&(ai, v)| {
            let first = self
                .rows
                .discrete
                .iter()
                .position(|&d| d == ai)
                .and_then(|j| s.options.get(j))
                .and_then(|o| o.first())
                .map(|x| x.0);
            first.map(f64::to_bits) == Some(v.to_bits())
                && s.proposal.get(ai).map(|x| x.to_bits()) == Some(v.to_bits())
        });
        if preferred.is_empty() || root_is_preferred {
            return false;
        }
        s.u.copy_from_slice(s.proposal);
        for &(ai, v) in preferred {
            if let Some(x) = s.u.get_mut(ai) {
                *x = v;
            }
        }
        let dc = discrete_cost(s.p, &self.rows.discrete, s.proposal, &s.u);
        self.ws.counts.nodes += 1;
        s.budget = s.budget.saturating_sub(1);
        match self.continuous(s.p, s.inputs, s.proposal, &mut s.u, s.stage) {
            Ok(mut f) => {
                f.objective += dc;
                s.best = Some(f);
            }
            Err(e) => {
                s.last = e.status;
                // Every node fails on the subsystem the rule's choice failed on.
                return e.everywhere;
            }
        }
        false
    }

    /// The SQP at `node`'s discrete values.
    fn visit(&mut self, s: &mut Search<'_>, node: &Node) -> NodeEnd {
        s.u.copy_from_slice(s.proposal);
        for ((&ai, opts), &k) in self.rows.discrete.iter().zip(&s.options).zip(&node.ranks) {
            if let (Some(x), Some(v)) = (s.u.get_mut(ai), opts.get(k)) {
                *x = v.0;
            }
        }
        self.continuous(s.p, s.inputs, s.proposal, &mut s.u, s.stage)
    }

    /// Queue `node`'s successors: advance one variable at or after `node.last` to its next
    /// value. When the node has a solution, a variable that no row binding there reads (in
    /// its margin or its guard) is not advanced: changing it leaves that solution a
    /// stationary point of the successor (the global optimum when the rows are convex), so
    /// the successor costs more for the same continuous part.
    fn push_successors(&self, s: &mut Search<'_>, node: &Node, found: &NodeEnd, skip: bool) {
        let hopeless = &self.ws.screen.hopeless;
        for j in node.last..s.options.len() {
            let Some(opts) = s.options.get(j) else {
                continue;
            };
            let r = node.ranks.get(j).copied().unwrap_or(0);
            if r + 1 >= opts.len() {
                continue;
            }
            let reads = self.rows.disc_rows.get(j);
            let reads_any = |rows: &[usize]| {
                rows.iter()
                    .any(|&i| reads.is_some_and(|v| v.get(i).copied().unwrap_or(true)))
            };
            // A hopeless node's failing rows fail whatever a variable they do not read
            // is set to: advancing only the variables they read skips whole hopeless
            // subtrees (cheap int changes used up the node budget before the one
            // change that helps was tried: regression test
            // `a_hopeless_node_advances_only_what_its_failing_rows_read`).
            if !skip && found.is_err() && !hopeless.is_empty() && !reads_any(hopeless) {
                continue;
            }
            if let Ok(f) = found {
                if !reads_any(&f.active) {
                    continue;
                }
            }
            let mut ranks = node.ranks.clone();
            if let Some(x) = ranks.get_mut(j) {
                *x = r + 1;
            }
            let cost: f64 = ranks
                .iter()
                .zip(&s.options)
                .map(|(&k, o)| o.get(k).map_or(0.0, |x| x.1))
                .sum();
            s.seq += 1;
            s.heap.push(Node {
                cost,
                seq: s.seq,
                ranks,
                last: j,
            });
        }
    }

    /// Keep `f`, found at a node of discrete cost `node_cost`, when it beats the best;
    /// `true` when that ends the stage.
    ///
    /// A later node must be better by more than rounding: two discrete values that give
    /// the same real solution are a tie, and the search order (not the last bits of each
    /// SQP) breaks it, so warm and cold starts agree (regression test
    /// `discrete_ties_are_broken_by_search_order_not_rounding`).
    fn keep(&self, s: &mut Search<'_>, mut f: Found, node_cost: f64) -> bool {
        f.objective += node_cost;
        let tie = self.settings.tie;
        let better = s.best.as_ref().is_none_or(|b| {
            let (fm, bm) = (f.objective + f.penalty, b.objective + b.penalty);
            fm < bm - tie * (1.0 + bm.abs())
        });
        if !better {
            return false;
        }
        let unbound = !f
            .active
            .iter()
            .copied()
            .chain(f.relaxed.iter().map(|r| r.0))
            .any(|i| self.rows.reads_discrete(i));
        s.best = Some(f);
        // A solution that no row reading a discrete variable binds is the optimum over the
        // rows every node shares (with convex rows, as for the successors); every queued
        // node has those rows too, and a discrete cost at least this node's, so none can
        // beat it (no outcome changes; `BENCHMARKS.md`, "Tier 2's structure", has the
        // time it saves).
        unbound
    }

    /// The feasible path: when the proposal is the search's first candidate (real values in
    /// range, each discrete value its own cheapest option) and Tier 1 finds every active row
    /// SAT there, the answer is the proposal — exactly what the search would return (one
    /// node, one iteration), without setting the search up.
    pub(super) fn proposal_holds(
        &mut self,
        p: &Policy,
        inputs: &[Interval],
        proposal: &[f64],
    ) -> Option<Repair> {
        if proposal.len() != p.actions.len() {
            return None;
        }
        for &ai in &self.rows.real {
            let (a, x) = (p.actions.get(ai)?, *proposal.get(ai)?);
            if !(x >= a.min && x <= a.max) {
                return None;
            }
        }
        for &ai in &self.rows.discrete {
            let v0 = *proposal.get(ai)?;
            if !own_value_first(p, ai, v0, self.settings.int_span) {
                return None;
            }
        }
        let s = self.ws.check.check(p, inputs, proposal);
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
            checks: self.ws.check.rows().to_vec(),
            certified: true,
        })
    }
}

/// Is `v0` the first of [`value_options`] for discrete action `ai`, at cost 0? Without
/// building the list when the change cost is positive (then `v0`, if it is a value of the
/// variable, is the only option of cost 0).
fn own_value_first(p: &Policy, ai: usize, v0: f64, int_span: i32) -> bool {
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
    value_options(p, ai, v0, int_span)
        .first()
        .is_some_and(|&(x, c)| x == v0 && c == 0.0)
}

/// Σ discrete-change costs from `u0` to `u`.
pub(super) fn discrete_cost(p: &Policy, discrete: &[usize], u0: &[f64], u: &[f64]) -> f64 {
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
/// proposal's own value first, at cost 0); an int variable's are the `int_span` values on
/// each side of the proposal's, within its range.
fn value_options(p: &Policy, ai: usize, v0: f64, int_span: i32) -> Vec<(f64, f64)> {
    let Some(a) = p.actions.get(ai) else {
        return vec![(v0, 0.0)];
    };
    let w = p.governor.discrete_cost.get(ai).copied().unwrap_or(1.0);
    let mut opts: Vec<(f64, f64)> = match &a.ty {
        // The proposal's (or a rule's `set`) value is kept: the policy did not say that a
        // repair may change it.
        VarType::Bool | VarType::Enum(_) | VarType::Int if !a.repairable => vec![v0],
        VarType::Bool => vec![0.0, 1.0],
        VarType::Enum(vals) => (0..vals.len())
            .filter_map(|i| u32::try_from(i).ok())
            .map(f64::from)
            .collect(),
        VarType::Int => {
            let c = v0.round().clamp(a.min, a.max);
            (-int_span..=int_span)
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
