//! Monitors in the decision flow (DESIGN.md, "Guarantees, monitors, failure modes"):
//! detectors of the conditions the guarantees rest on, at the proposal's own state. Cheap,
//! deterministic, and read-only: they name failure modes, the flow decides what follows.

use crate::failure::FailureMode;
use crate::interval::Interval;
use crate::policy::Policy;
use crate::tier1::{Checker, Status};

use super::agents::Observation;
use super::decision::{fmt_margin, fmt_num};
use super::{Notes, Proposal, StateValue};

/// What the monitors found at one proposal.
#[derive(Clone, Debug, Default)]
pub(super) struct Findings {
    /// States outside their declared range (index into `Policy::states`, the box given).
    pub out_of_range: Vec<(usize, Interval)>,
    /// Barrier rows whose safe set the state box may have left (row index, `h(x)`).
    pub outside: Vec<(usize, Interval)>,
    /// States reported with a half-width above their `max_noise` (index, the box given).
    pub too_noisy: Vec<(usize, Interval)>,
}

impl Findings {
    /// Does what was found send the decision for review (audit QUESTIONABLE)? A state
    /// outside its declared range does even where G2 and G4 do not apply (issue 18, item
    /// 11).
    pub fn questions_the_audit(&self) -> bool {
        !self.outside.is_empty() || !self.out_of_range.is_empty() || !self.too_noisy.is_empty()
    }
}

/// Run the detectors on `prop`, whose Tier 1 check `t1` holds.
pub(super) fn observe(p: &Policy, prop: &Proposal, t1: &Checker) -> Findings {
    Findings {
        out_of_range: out_of_range(p, prop),
        outside: outside_safe_sets(p, t1),
        too_noisy: too_noisy(p, prop),
    }
}

/// `excessive_uncertainty` from `max_noise`: a box wider than the widest the policy
/// accepts for that state. TOLERANCE: the box's ends were rounded outward when it was
/// read, so a width within four ulps of the larger end above `2 × max_noise` is not a
/// finding.
fn too_noisy(p: &Policy, prop: &Proposal) -> Vec<(usize, Interval)> {
    p.states
        .iter()
        .zip(&prop.state)
        .enumerate()
        .filter_map(|(k, (s, v))| match (s.max_noise, v) {
            (Some(m), Some(StateValue::Num(x))) => {
                let slack = 4.0 * f64::EPSILON * x.lo.abs().max(x.hi.abs());
                (x.is_invalid() || x.width() > 2.0 * m + slack).then_some((k, *x))
            }
            _ => None,
        })
        .collect()
}

/// `excessive_uncertainty` (issue 18, item 11): a state whose value lies outside the range
/// the policy declares for it, or whose box is wider than that whole range. A state outside
/// its range was never certified against (the fallback's certificate, the policy author's
/// intent): the decision is made, Tier 1 checks the box as given, and a human reviews it.
/// A box whose value is inside and that crosses a bound only by its noise is not a fault.
fn out_of_range(p: &Policy, prop: &Proposal) -> Vec<(usize, Interval)> {
    p.states
        .iter()
        .zip(&prop.state)
        .enumerate()
        .filter_map(|(k, (s, v))| match v {
            Some(StateValue::Num(x)) => {
                let outside = x.is_invalid()
                    || x.mid() < s.min
                    || x.mid() > s.max
                    || x.width() > s.max - s.min;
                outside.then_some((k, *x))
            }
            _ => None,
        })
        .collect()
}

/// `left_safe_set`: G2 holds only from inside the safe set, so a barrier's `h(x)` must be
/// certainly non-negative over the whole state box.
fn outside_safe_sets(p: &Policy, t1: &Checker) -> Vec<(usize, Interval)> {
    (0..p.lattice.rows.len())
        .filter_map(|i| t1.safe_set(&p.lattice, i).map(|h| (i, h)))
        .filter(|(_, h)| h.is_invalid() || h.lo < 0.0)
        .collect()
}

/// Name what was found, with a reason each.
pub(super) fn report(p: &Policy, f: &Findings, notes: &mut Notes) {
    for (i, h) in &f.outside {
        let name = p.lattice.rows.get(*i).map_or("?", |r| r.name.as_str());
        notes.named(
            FailureMode::LeftSafeSet,
            format!("barrier `{name}`: h(x) in {}", fmt_margin(*h)),
        );
        notes.reasons.push(format!(
            "the state may be outside the safe set of barrier `{name}` (h(x) in {}): forward invariance (G2) is suspended",
            fmt_margin(*h)
        ));
    }
    for (k, x) in &f.out_of_range {
        if let Some(s) = p.states.get(*k) {
            notes.named(
                FailureMode::ExcessiveUncertainty,
                format!(
                    "`{}` = {} outside [{}, {}]",
                    s.name,
                    fmt_margin(*x),
                    fmt_num(s.min),
                    fmt_num(s.max)
                ),
            );
            notes.reasons.push(format!(
                "state `{}` = {} is outside its declared range [{}, {}]: the decision is sent for review and G2, G3 and G4 are suspended",
                s.name,
                fmt_margin(*x),
                fmt_num(s.min),
                fmt_num(s.max)
            ));
        }
    }
    for (k, x) in &f.too_noisy {
        if let Some(s) = p.states.get(*k) {
            notes.named(
                FailureMode::ExcessiveUncertainty,
                format!(
                    "`{}`: half-width {} > max_noise {}",
                    s.name,
                    fmt_num(x.width() / 2.0),
                    fmt_num(s.max_noise.unwrap_or(f64::NAN))
                ),
            );
            notes.reasons.push(format!(
                "state `{}` = {} is reported with a half-width of {}, above its max_noise {}: the decision is sent for review and G2, G3 and G4 are suspended",
                s.name,
                fmt_margin(*x),
                fmt_num(x.width() / 2.0),
                fmt_num(s.max_noise.unwrap_or(f64::NAN))
            ));
        }
    }
}

/// What the monitors know of a policy, computed once per governor.
#[derive(Clone, Debug)]
pub(crate) struct Monitors {
    /// The rows with a declared `lipschitz`: `(row index, L, the positions in
    /// [`Monitors::watched`] of the input slots the row reads)`.
    pub lipschitz: Vec<(usize, f64, Vec<usize>)>,
    /// The input slots some row with a declared `lipschitz` reads, sorted: what an agent's
    /// last proposal keeps of its inputs (not the whole box).
    pub watched: Vec<u32>,
    /// The metric's condition number (its largest eigenvalue over its smallest).
    pub metric_condition: f64,
}

impl Monitors {
    /// The monitors of `p`.
    pub fn new(p: &Policy) -> Monitors {
        let rows: Vec<(usize, f64, Vec<u32>)> = p
            .lattice
            .rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                let l = p.constraints.get(row.constraint)?.lipschitz?;
                Some((i, l, row_reads(p, row)))
            })
            .collect();
        let mut watched: Vec<u32> = rows.iter().flat_map(|r| r.2.iter().copied()).collect();
        watched.sort_unstable();
        watched.dedup();
        let lipschitz = rows
            .into_iter()
            .map(|(i, l, slots)| {
                let at = slots
                    .iter()
                    .filter_map(|s| watched.binary_search(s).ok())
                    .collect();
                (i, l, at)
            })
            .collect();
        Monitors {
            lipschitz,
            watched,
            metric_condition: condition(&p.governor.metric),
        }
    }
}

/// The input slots `row` reads (its margin's cone and its guard), sorted, once each.
pub(crate) fn row_reads(p: &Policy, row: &crate::lattice::Row) -> Vec<u32> {
    let tape = &p.lattice.tape;
    let mut slots: Vec<u32> = row
        .cone
        .iter()
        .chain(row.guard.iter())
        .filter_map(|&k| match tape.insts().get(k as usize) {
            Some(crate::tape::Inst::Input(s)) => Some(*s),
            _ => None,
        })
        .collect();
    slots.sort_unstable();
    slots.dedup();
    slots
}

/// The condition number of a symmetric positive definite matrix, by cyclic Jacobi rotations
/// (a policy's metric is small; computed once). Infinite for a singular or empty one.
fn condition(m: &[Vec<f64>]) -> f64 {
    let n = m.len();
    if n == 0 {
        return 1.0;
    }
    let mut a: Vec<f64> = m.iter().flat_map(|r| r.iter().copied()).collect();
    if a.len() != n * n {
        return f64::INFINITY;
    }
    let at = |a: &[f64], i: usize, j: usize| a.get(i * n + j).copied().unwrap_or(0.0);
    for _sweep in 0..64 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| at(&a, i, j).powi(2))
            .sum();
        if off < 1e-30 {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = at(&a, p, q);
                if apq == 0.0 {
                    continue;
                }
                let theta = (at(&a, q, q) - at(&a, p, p)) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (at(&a, k, p), at(&a, k, q));
                    if let Some(x) = a.get_mut(k * n + p) {
                        *x = c * akp - s * akq;
                    }
                    if let Some(x) = a.get_mut(k * n + q) {
                        *x = s * akp + c * akq;
                    }
                }
                for k in 0..n {
                    let (apk, aqk) = (at(&a, p, k), at(&a, q, k));
                    if let Some(x) = a.get_mut(p * n + k) {
                        *x = c * apk - s * aqk;
                    }
                    if let Some(x) = a.get_mut(q * n + k) {
                        *x = s * apk + c * aqk;
                    }
                }
            }
        }
    }
    let eig: Vec<f64> = (0..n).map(|i| at(&a, i, i)).collect();
    let (lo, hi) = eig.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &e| {
        (lo.min(e), hi.max(e))
    });
    if lo > 0.0 {
        hi / lo
    } else {
        f64::INFINITY
    }
}

/// `lipschitz_exceeded`: `|Δmargin| / ‖Δinputs read‖₁` above the row's declared constant,
/// between the agent's last proposal and this one. TOLERANCE: the quotient is formed from
/// the margins' and inputs' midpoints in floating point, so a change within `1e-9` of the
/// bound (relative, plus `1e-12` absolute) is not a finding.
/// A detector that reads the agent's last decision (`last`); `inputs` is the proposal's
/// box, `t1` its check.
pub(super) fn lipschitz(
    p: &Policy,
    m: &Monitors,
    last: &Observation,
    inputs: &[Interval],
    t1: &Checker,
    notes: &mut Notes,
) {
    for (k, (row, l, at)) in m.lipschitz.iter().enumerate() {
        let (Some(Some(before)), Some(chk)) = (last.margins.get(k), t1.rows().get(*row)) else {
            continue;
        };
        if !chk.active || chk.margin.is_invalid() {
            continue;
        }
        let now = chk.margin.mid();
        let moved: f64 = at
            .iter()
            .map(|&k| {
                let a = last.inputs.get(k).copied().unwrap_or(f64::NAN);
                let b = m
                    .watched
                    .get(k)
                    .and_then(|&s| inputs.get(s as usize))
                    .map_or(f64::NAN, |x| x.mid());
                (b - a).abs()
            })
            .sum();
        let change = (now - before).abs();
        if !(moved.is_finite() && change.is_finite()) || moved == 0.0 {
            continue;
        }
        if change > l * moved * (1.0 + 1e-9) + 1e-12 {
            let name = p.lattice.rows.get(*row).map_or("?", |r| r.name.as_str());
            let q = change / moved;
            notes.flag(
                FailureMode::LipschitzExceeded,
                format!(
                    "row `{name}` changed {} for a change of {} in what it reads since the agent's last decision: {} per unit, above its declared lipschitz {}: projection stability (G3) is suspended",
                    fmt_num(change),
                    fmt_num(moved),
                    fmt_num(q),
                    fmt_num(*l)
                ),
                format!("row `{name}`: quotient {} > lipschitz {}", fmt_num(q), fmt_num(*l)),
            );
        }
    }
}

/// `model_mismatch`: the state, one `dt` after the agent's last decision, outside that
/// decision's `[dynamics]` prediction (widened by the error bound). TOLERANCE: compared
/// only when the interval between the two decisions is within `dt_tolerance` of `dt`; a
/// finding needs the reported box and the predicted box to be disjoint.
pub(super) fn model_mismatch(
    p: &Policy,
    last: &Observation,
    now: f64,
    prop: &Proposal,
    notes: &mut Notes,
) {
    let s = &p.monitor;
    let Some(dt) = s.dt else { return };
    if last.predicted.is_empty() || ((now - last.time) - dt).abs() > s.dt_tolerance {
        return;
    }
    for (si, predicted) in &last.predicted {
        let Some(Some(StateValue::Num(x))) = prop.state.get(*si) else {
            continue;
        };
        let disjoint = x.hi < predicted.lo || x.lo > predicted.hi;
        if disjoint || x.is_invalid() {
            let name = p.states.get(*si).map_or("?", |v| v.name.as_str());
            notes.flag(
                FailureMode::ModelMismatch,
                format!(
                    "state `{name}` = {} is outside the {} the dynamics predicted one step ago: G2 and G4 are suspended",
                    fmt_margin(*x),
                    fmt_margin(*predicted)
                ),
                format!("`{name}`: observed {} outside predicted {}", fmt_margin(*x), fmt_margin(*predicted)),
            );
        }
    }
}

/// `excessive_uncertainty` from the check itself: more than `uncertain_share` of the active
/// rows UNCERTAIN (with at least `min_active_rows` active).
pub(super) fn uncertain_rows(p: &Policy, t1: &Checker, notes: &mut Notes) {
    let s = t1.summary();
    let active = s.sat + s.violated + s.uncertain;
    if active < p.monitor.min_active_rows {
        return;
    }
    let share = f64::from(s.uncertain) / f64::from(active);
    if share > p.monitor.uncertain_share {
        notes.flag(
            FailureMode::ExcessiveUncertainty,
            format!(
                "{} of {} active rows are UNCERTAIN over this state box (more than {} of them): G2, G3 and G4 are suspended",
                s.uncertain,
                active,
                fmt_num(p.monitor.uncertain_share)
            ),
            format!("{} of {} active rows uncertain", s.uncertain, active),
        );
    }
}

/// The detectors of a repair, after it: `metric_not_convex` (the metric's condition),
/// `solver_non_convergence` from the agent's running rate, and `degenerate_geometry`
/// (binding rows with opposite normals at the repaired action, whose check `t1` holds).
pub(super) fn after_repair(
    p: &Policy,
    m: &Monitors,
    rate: (f64, usize),
    repaired: Option<&[f64]>,
    t1: &Checker,
    adj: &mut [f64],
    notes: &mut Notes,
) {
    let s = &p.monitor;
    if m.metric_condition > s.max_metric_condition {
        notes.flag(
            FailureMode::MetricNotConvex,
            format!(
                "the repair metric's condition number is {}, above {}: projection stability (G3) is suspended",
                fmt_num(m.metric_condition),
                fmt_num(s.max_metric_condition)
            ),
            format!("condition number {}", fmt_num(m.metric_condition)),
        );
    }
    let (share, n) = rate;
    #[expect(clippy::cast_precision_loss, reason = "window sizes are small")]
    let enough = n as f64 >= f64::from(s.rate_window) / 2.0;
    if enough
        && share > s.non_convergence_rate
        && !notes.modes.contains(FailureMode::SolverNonConvergence)
    {
        notes.flag(
            FailureMode::SolverNonConvergence,
            format!(
                "{} of this agent's last {n} repairs did not converge: G3 and G5 are suspended",
                fmt_num(share)
            ),
            format!("non-convergence rate {} over {n} repairs", fmt_num(share)),
        );
    }
    if let Some(u) = repaired {
        degenerate(p, s.degenerate_cos, u, t1, adj, notes);
    }
}

/// Binding rows (active, SAT with a margin within `1e-6` of zero, reading a real action
/// variable) whose unit gradients point in opposite directions leave a slab with no room
/// across it: a near-empty feasible set.
fn degenerate(p: &Policy, cos: f64, u: &[f64], t1: &Checker, adj: &mut [f64], notes: &mut Notes) {
    let lat = &p.lattice;
    let real: Vec<u32> = p
        .actions
        .iter()
        .zip(&lat.action_inst)
        .filter(|(a, _)| !a.ty.is_discrete())
        .filter_map(|(_, i)| *i)
        .collect();
    if real.is_empty() {
        return;
    }
    let scale = u.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    let mut normals: Vec<(usize, Vec<f64>)> = Vec::new();
    for (i, (row, chk)) in lat.rows.iter().zip(t1.rows()).enumerate() {
        let binding = chk.active
            && chk.status == Status::Sat
            && !chk.margin.is_invalid()
            && chk.margin.lo <= 1e-6 * scale;
        if !binding {
            continue;
        }
        lat.tape
            .grad_reverse(t1.slots(), &row.cone, row.margin, adj);
        let g: Vec<f64> = real
            .iter()
            .map(|&k| adj.get(k as usize).copied().unwrap_or(0.0))
            .collect();
        let norm = g.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 0.0 && norm.is_finite() {
            normals.push((i, g.iter().map(|x| x / norm).collect()));
        }
    }
    for (a, (i, gi)) in normals.iter().enumerate() {
        for (j, gj) in normals.iter().skip(a + 1) {
            let dot: f64 = gi.iter().zip(gj).map(|(x, y)| x * y).sum();
            if dot < -1.0 + cos {
                let name = |k: usize| lat.rows.get(k).map_or("?", |r| r.name.as_str());
                notes.flag(
                    FailureMode::DegenerateGeometry,
                    format!(
                        "rows `{}` and `{}` bind the repair from opposite sides: the feasible set has no room across them, projection stability (G3) is suspended",
                        name(*i),
                        name(*j)
                    ),
                    format!("opposite binding rows `{}` and `{}`", name(*i), name(*j)),
                );
                return;
            }
        }
    }
}
