//! What the repairer knows about a policy's rows before any repair: which variables each
//! reads, how each is linearised, which are affine (and their constant gradients), what
//! screening evaluates, and whether the policy can take the warm re-repair.
//!
//! INVARIANT (rows-immutable): [`Rows`] is built once, by [`Rows::new`] in
//! `Repairer::new`, and only read afterwards; everything that depends on a repair's
//! inputs lives in the workspace.

use crate::policy::{Policy, VarType};
use crate::tape::OpList;

use super::linearise::{affine_rows, flat_rows, lin_kinds, Lin};

/// The per-policy row structure of Tier 2.
#[derive(Debug)]
pub(super) struct Rows {
    /// The real action variables (indices into `p.actions`).
    pub(super) real: Vec<usize>,
    /// The discrete (enum, bool, int) action variables.
    pub(super) discrete: Vec<usize>,
    /// Per row: `(index into real, tape instruction)` of the real variables in its cone.
    pub(super) row_vars: Vec<Vec<(usize, u32)>>,
    /// Per row: does it read a real action variable (`row_vars` not empty)?
    pub(super) reads_real: Vec<bool>,
    /// Per row: its cone's instructions that a real action variable reaches (the reverse
    /// sweep of its gradient needs no others).
    pub(super) grad_cone: Vec<Vec<u32>>,
    /// Per row: is its margin affine in the real action variables with constant
    /// coefficients (see [`affine_rows`])?
    pub(super) affine: Vec<bool>,
    /// Per affine row: its gradient, aligned with `row_vars` (empty for other rows).
    pub(super) grad: Vec<Vec<f64>>,
    /// Per row: how the SQP linearises it (see [`Lin`]).
    pub(super) lin: Vec<Lin>,
    /// Per affine row: `Σ |∂margin/∂u_j| · (max_j − min_j)`, how far its margin can move
    /// over the action box (NaN for other rows). Known from the start, not from a row's
    /// first screen: a screen decided by it differs from one that computes the row's bound
    /// (regression test `a_reused_cold_repairer_counts_the_iterations_of_a_fresh_one`).
    pub(super) reach: Vec<f64>,
    /// Per row: does its guard depend on a real action variable?
    pub(super) guard_moves: Vec<bool>,
    /// Per discrete action variable (in `discrete` order), per row: does the row's margin
    /// or guard read it?
    pub(super) disc_rows: Vec<Vec<bool>>,
    /// Per row, the real variables it pins to zero (see [`flat_rows`]).
    pub(super) flat: Vec<Vec<usize>>,
    /// Does any row pin a variable?
    pub(super) any_flat: bool,
    /// The instructions of the curved rows that read real action variables (margins and
    /// guards): what screening evaluates over the box.
    pub(super) box_ops: OpList,
    /// The part of `box_ops` that depends on a discrete action variable: all that changes
    /// over the box from one node of a repair to the next (the state and the box are the
    /// same), so later nodes re-evaluate only these.
    pub(super) box_disc_ops: OpList,
    /// Can this policy take the warm re-repair (`quick.rs`)? No discrete action variable,
    /// and every row that reads a real action variable is a `<=` / `<` row, affine in them
    /// with constant coefficients, whose guard reads none.
    pub(super) quick_ok: bool,
    /// Per input slot: is it an action variable's (ignored when comparing states)?
    pub(super) action_slot: Vec<bool>,
}

/// Which rows read which variables: the part of [`Rows`] the other analyses start from.
struct Cones {
    row_vars: Vec<Vec<(usize, u32)>>,
    grad_cone: Vec<Vec<u32>>,
    /// Per instruction: does a real action variable reach it?
    dep: Vec<bool>,
}

impl Rows {
    /// The row structure of `p`.
    pub(super) fn new(p: &Policy) -> Self {
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
        let Cones {
            row_vars,
            grad_cone,
            dep,
        } = cones(p, &real);
        let affine = affine_rows(p, &real);
        let guard_moves: Vec<bool> = lat
            .rows
            .iter()
            .map(|r| {
                r.guard
                    .is_some_and(|g| dep.get(g as usize).copied().unwrap_or(true))
            })
            .collect();
        let (box_ops, box_disc_ops) = box_ops(p, &discrete, &row_vars, &affine);
        let lin = lin_kinds(p, &real);
        let flat = flat_rows(p, &real);
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
        let (grad, reach) = affine_gradients(p, &real, &row_vars, &grad_cone, &affine);
        Rows {
            reads_real: row_vars.iter().map(|v| !v.is_empty()).collect(),
            disc_rows: disc_rows(p, &discrete),
            real,
            discrete,
            row_vars,
            grad_cone,
            affine,
            grad,
            lin,
            reach,
            guard_moves,
            any_flat: flat.iter().any(|c| !c.is_empty()),
            flat,
            box_ops,
            box_disc_ops,
            quick_ok,
            action_slot,
        }
    }

    /// Does row `i`'s margin or guard read a discrete action variable?
    pub(super) fn reads_discrete(&self, i: usize) -> bool {
        self.disc_rows
            .iter()
            .any(|v| v.get(i).copied().unwrap_or(true))
    }
}

/// Each row's real variables and its gradient cone.
fn cones(p: &Policy, real: &[usize]) -> Cones {
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
    let seeds: Vec<u32> = real
        .iter()
        .filter_map(|&ai| lat.action_inst.get(ai).copied().flatten())
        .collect();
    let dep = lat.tape.dependents(&seeds);
    // Each row's cone without the instructions no real action variable reaches: their
    // adjoints flow only into other such instructions, never into a real variable's, so
    // the reverse sweep skips them and every gradient is bit for bit the same (the sweep
    // keeps the cone's order, and with it each sum's).
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
    Cones {
        row_vars,
        grad_cone,
        dep,
    }
}

/// What screening evaluates over the box (the curved rows that read a real variable: their
/// margins and guards), and the part of it a discrete variable reaches.
fn box_ops(
    p: &Policy,
    discrete: &[usize],
    row_vars: &[Vec<(usize, u32)>],
    affine: &[bool],
) -> (OpList, OpList) {
    let lat = &p.lattice;
    let disc_seeds: Vec<u32> = discrete
        .iter()
        .filter_map(|&ai| lat.action_inst.get(ai).copied().flatten())
        .collect();
    let dep_disc = lat.tape.dependents(&disc_seeds);
    let curved: Vec<u32> = lat
        .rows
        .iter()
        .zip(row_vars)
        .zip(affine)
        .filter(|((_, v), &aff)| !v.is_empty() && !aff)
        .flat_map(|((r, _), _)| std::iter::once(r.margin).chain(r.guard))
        .collect();
    let all = lat.tape.subset(&curved);
    let disc = all.filter(&dep_disc);
    (all, disc)
}

/// Per discrete action variable, per row: does the row's margin or guard read it?
fn disc_rows(p: &Policy, discrete: &[usize]) -> Vec<Vec<bool>> {
    let lat = &p.lattice;
    discrete
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
        .collect()
}

/// Each affine row's gradient (empty for other rows) and its `reach` (NaN for other rows).
///
/// An affine row's gradient reads only the midpoints of constants, which every slot array
/// from `Tape::slots` holds: it is the one every point gives, bit for bit (property test
/// `kept_gradients_are_those_of_every_point`), so it is computed once here.
fn affine_gradients(
    p: &Policy,
    real: &[usize],
    row_vars: &[Vec<(usize, u32)>],
    grad_cone: &[Vec<u32>],
    affine: &[bool],
) -> (Vec<Vec<f64>>, Vec<f64>) {
    let lat = &p.lattice;
    let slots = lat.tape.slots();
    let mut adj = vec![0.0; lat.tape.len()];
    lat.rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            if !affine.get(i).copied().unwrap_or(false) {
                return (Vec::new(), f64::NAN);
            }
            let cone = grad_cone.get(i).map_or(&[][..], Vec::as_slice);
            lat.tape.grad_reverse(&slots, cone, row.margin, &mut adj);
            let vars = row_vars.get(i).map_or(&[][..], Vec::as_slice);
            let grad: Vec<f64> = vars
                .iter()
                .map(|&(_, inst)| adj.get(inst as usize).copied().unwrap_or(0.0))
                .collect();
            let reach = reach_of(p, real, vars, &grad);
            (grad, reach)
        })
        .unzip()
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
