//! The best-first discrete search.

use super::*;
use std::cmp::Ordering;
use std::collections::BinaryHeap;

#[derive(Clone, Debug, PartialEq)]
pub(super) struct Node {
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

impl Repairer {
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

    /// Best-first search over the discrete variables' values, with the SQP at each node.
    #[expect(
        clippy::too_many_arguments,
        reason = "internal; the counters are threaded through"
    )]
    pub(super) fn search(
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

/// Is `v0` the first of [`value_options`] for discrete action `ai`, at cost 0? Without
/// building the list when the change cost is positive (then `v0`, if it is a value of the
/// variable, is the only option of cost 0).
pub(super) fn own_value_first(p: &Policy, ai: usize, v0: f64) -> bool {
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
/// proposal's own value first, at cost 0).
pub(super) fn value_options(p: &Policy, ai: usize, v0: f64) -> Vec<(f64, f64)> {
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
