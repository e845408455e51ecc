//! Interval constraint propagation over the tape (forward-backward contraction, "HC4"):
//! a cheap proof that **no** action in a box can satisfy a set of rows.
//!
//! Why it exists: a proposal no repair can save used to cost the repair's whole work
//! budget. The search tried every discrete node of every relaxation stage, each SQP
//! finding out after a few linearisations that its node was infeasible (on the warehouse
//! mix, milliseconds per blocked proposal and a large share of the stream's time).
//! Contracting the box of every action, real and discrete, over the rows a stage must
//! satisfy settles part of them at a small fraction of that cost: when the box contracts to
//! nothing, no node of that stage, and no point of any node, can pass. On the warehouse
//! stream it settles a large part of the blocked proposals that reach it (`BENCHMARKS.md`,
//! "Tier 2's structure", has the figures). The others need what a box cannot express (two
//! discs that do not meet although their bounding boxes do; the discrete choices inside
//! boolean rows, which it leaves out), or have a solution the SQP does not find.
//!
//! Soundness is all that matters here, and it is one-sided. An empty result claims that
//! no point of the box makes every given row's margin reach its bound for every state of
//! the box (what Tier 1 must see to accept it). Each backward step only removes values
//! that provably cannot take part in such a point: it inverts an operation with
//! outward-rounded interval arithmetic, and an operation it cannot invert (a function, an
//! `if`, a division by an interval holding zero, an undefined value) removes nothing. A
//! weak contraction costs speed, never an answer; the contractor never says "feasible".
//! The repair still certifies whatever it returns with Tier 1, and the fallback a proof
//! leads to is itself checked by Tier 1.
//!
//! Hand-written because it must work on the policy's own tape, allocation-free per call
//! and in bounded time (a fixed number of rounds over a fixed instruction list).

use crate::expr::typeck::{Func, Op2};
use crate::interval::Interval;
use crate::lattice::Lattice;
use crate::policy::Sense;
use crate::tape::{bin, un, Inst};

/// Forward-backward contraction over a policy's rows (see the module documentation).
#[derive(Clone, Debug)]
pub struct Contractor {
    /// The instructions of the rows' margins and guards that read no action variable,
    /// ascending: evaluated once per call (the state box is not narrowed).
    fixed: Vec<u32>,
    /// Those that read an action variable, ascending: evaluated every round and narrowed
    /// backwards.
    insts: Vec<u32>,
    /// Per tape slot: does it depend on an action variable?
    moves: Vec<bool>,
    /// Per tape slot: narrowed since the last forward pass (the backward pass skips the
    /// rest: a row that holds over the whole box costs no backward work).
    dirty: Vec<bool>,
    /// Per tape slot: its enclosure over the current box.
    v: Vec<Interval>,
    /// The box, narrowed in place.
    bx: Vec<Interval>,
}

/// `x ∩ y`, treating INVALID (undefined somewhere) as "no information". `None`: empty.
fn meet(x: Interval, y: Interval) -> Option<Interval> {
    if y.is_invalid() {
        return Some(x);
    }
    if x.is_invalid() {
        return Some(y);
    }
    let lo = x.lo.max(y.lo);
    let hi = x.hi.min(y.hi);
    (lo <= hi).then_some(Interval { lo, hi })
}

/// Narrow the operands of `z = a op b`: `a` to `for_a(b)`, then `b` to `for_b(a)` with the
/// narrowed `a`. `false` when either is left empty.
fn both(
    v: &mut [Interval],
    moves: &[bool],
    dirty: &mut [bool],
    a: u32,
    b: u32,
    for_a: impl Fn(Interval) -> Interval,
    for_b: impl Fn(Interval) -> Interval,
) -> bool {
    let na = for_a(at(v, b));
    if !narrow(v, moves, dirty, a, na) {
        return false;
    }
    let nb = for_b(at(v, a));
    narrow(v, moves, dirty, b, nb)
}

/// Slot `k` of `v` (INVALID when out of range).
fn at(v: &[Interval], k: u32) -> Interval {
    v.get(k as usize).copied().unwrap_or(Interval::INVALID)
}

/// Narrow slot `k` of `v` to `y`; `false` when that leaves nothing. Only slots that
/// read an action variable are narrowed (the others are fixed over the state box).
/// A slot that changes is marked `dirty`, so the backward pass visits it.
fn narrow(v: &mut [Interval], moves: &[bool], dirty: &mut [bool], k: u32, y: Interval) -> bool {
    if !moves.get(k as usize).copied().unwrap_or(false) {
        return true;
    }
    let Some(x) = v.get_mut(k as usize) else {
        return true;
    };
    match meet(*x, y) {
        Some(z) => {
            if z != *x {
                *x = z;
                if let Some(d) = dirty.get_mut(k as usize) {
                    *d = true;
                }
            }
            true
        }
        None => false,
    }
}

impl Contractor {
    /// A contractor for the `<=`, `<` and `==` rows of `lat` (the rows whose margin has a
    /// lower bound to propagate).
    pub fn new(lat: &Lattice) -> Self {
        let mut mark = vec![false; lat.tape.len()];
        for r in &lat.rows {
            if !matches!(r.sense, Sense::Le | Sense::Lt | Sense::Eq) {
                continue;
            }
            for i in lat
                .tape
                .cone(r.margin)
                .into_iter()
                .chain(r.guard.map(|g| lat.tape.cone(g)).unwrap_or_default())
            {
                if let Some(m) = mark.get_mut(i as usize) {
                    *m = true;
                }
            }
        }
        let seeds: Vec<u32> = lat.action_inst.iter().copied().flatten().collect();
        let moves = lat.tape.dependents(&seeds);
        let on = |want: bool| -> Vec<u32> {
            mark.iter()
                .zip(&moves)
                .enumerate()
                .filter(|(_, (m, d))| **m && **d == want)
                .filter_map(|(i, _)| u32::try_from(i).ok())
                .collect()
        };
        Contractor {
            fixed: on(false),
            insts: on(true),
            dirty: vec![false; moves.len()],
            moves,
            v: vec![Interval::INVALID; lat.tape.len()],
            bx: Vec::new(),
        }
    }

    /// Is there provably no point of `bx` (an enclosure of every input slot: states,
    /// actions) at which each row `i` with `need[i] = Some(t)` is active and has a margin
    /// of at least `t` for every state of the box? Rows with `None`, rows of another sense
    /// and rows whose guard is not surely true over the (narrowed) box take no part.
    /// `rounds` bounds the forward-backward passes.
    pub fn empty(
        &mut self,
        lat: &Lattice,
        bx: &[Interval],
        need: &[Option<f64>],
        rounds: u32,
    ) -> bool {
        self.bx.clear();
        self.bx.extend_from_slice(bx);
        self.dirty.fill(false);
        let insts = lat.tape.insts();
        // INVARIANT (fixed-first): the state box is never narrowed, so what reads no
        // action is evaluated once, before the rounds.
        self.forward(insts, false);
        for _ in 0..rounds {
            // Forward: every action-dependent instruction's enclosure over the current box.
            self.forward(insts, true);
            // The rows: each margin must reach its bound.
            let mut any = false;
            for (r, t) in lat.rows.iter().zip(need) {
                let Some(t) = *t else { continue };
                if !matches!(r.sense, Sense::Le | Sense::Lt | Sense::Eq) {
                    continue;
                }
                let on = r.guard.is_none_or(|g| {
                    self.v
                        .get(g as usize)
                        .is_some_and(|x| x.truth() == crate::interval::Truth::True)
                });
                if !on {
                    continue;
                }
                any = true;
                let m = at(&self.v, r.margin);
                let fixed = !self.moves.get(r.margin as usize).copied().unwrap_or(false);
                if fixed && !m.is_invalid() && m.hi < t {
                    return true; // a row no action changes, short for every state
                }
                if !narrow(
                    &mut self.v,
                    &self.moves,
                    &mut self.dirty,
                    r.margin,
                    Interval::new(t, f64::INFINITY),
                ) {
                    return true;
                }
            }
            if !any {
                return false;
            }
            // Backward: narrow each instruction's operands to what its value allows.
            let mut moved = false;
            for &i in self.insts.iter().rev() {
                let Some(&z) = self.v.get(i as usize) else {
                    continue;
                };
                if z.is_invalid() {
                    continue;
                }
                // Only what was narrowed since the forward pass has anything to pass on.
                if !self.dirty.get(i as usize).copied().unwrap_or(false) {
                    continue;
                }
                if let Some(d) = self.dirty.get_mut(i as usize) {
                    *d = false;
                }
                let (v, moves, dirty) = (&mut self.v, &self.moves[..], &mut self.dirty[..]);
                let ok = match insts.get(i as usize) {
                    Some(Inst::Input(k)) => {
                        let before = self.bx.get(*k as usize).copied();
                        match before.and_then(|b| meet(b, z)) {
                            Some(n) => {
                                if before.is_some_and(|b| b != n) {
                                    moved = true;
                                }
                                if let Some(b) = self.bx.get_mut(*k as usize) {
                                    *b = n;
                                }
                                true
                            }
                            None => before.is_none(),
                        }
                    }
                    Some(Inst::Bin(o, a, b)) => {
                        let (a, b) = (*a, *b);
                        match o {
                            Op2::Add => both(v, moves, dirty, a, b, |y| z.sub(y), |x| z.sub(x)),
                            Op2::Sub => both(v, moves, dirty, a, b, |y| z.add(y), |x| x.sub(z)),
                            Op2::Mul if a == b => sqrt_inverse(z, at(v, a))
                                .is_some_and(|x| narrow(v, moves, dirty, a, x)),
                            // `div` is INVALID (no information) when the divisor holds 0.
                            Op2::Mul => both(v, moves, dirty, a, b, |y| z.div(y), |x| z.div(x)),
                            Op2::Div => both(v, moves, dirty, a, b, |y| z.mul(y), |x| x.div(z)),
                            // max(a, b) = z: both are at most z.hi. min: both at least z.lo.
                            Op2::Max => {
                                let up = Interval::new(f64::NEG_INFINITY, z.hi);
                                narrow(v, moves, dirty, a, up) && narrow(v, moves, dirty, b, up)
                            }
                            Op2::Min => {
                                let dn = Interval::new(z.lo, f64::INFINITY);
                                narrow(v, moves, dirty, a, dn) && narrow(v, moves, dirty, b, dn)
                            }
                            _ => true,
                        }
                    }
                    Some(Inst::PowI(a, n)) => match n {
                        1 => narrow(v, moves, dirty, *a, z),
                        2 => sqrt_inverse(z, at(v, *a))
                            .is_some_and(|x| narrow(v, moves, dirty, *a, x)),
                        _ => true,
                    },
                    Some(Inst::Un(f, a)) => match f {
                        Func::Neg => narrow(v, moves, dirty, *a, z.neg()),
                        // |a| = z: a within [-z.hi, z.hi].
                        Func::Abs => narrow(v, moves, dirty, *a, Interval::new(-z.hi, z.hi)),
                        // sqrt(a) = z (z ≥ 0): a = z².
                        Func::Sqrt => match meet(z, Interval::new(0.0, f64::INFINITY)) {
                            Some(nz) => narrow(v, moves, dirty, *a, nz.sq()),
                            None => false,
                        },
                        _ => true,
                    },
                    _ => true,
                };
                if !ok {
                    return true;
                }
            }
            if !moved {
                break;
            }
        }
        false
    }

    /// Evaluate the action-dependent instructions (`moving`) or the others over the box.
    fn forward(&mut self, insts: &[Inst], moving: bool) {
        let list = if moving { &self.insts } else { &self.fixed };
        for &i in list {
            let get = |k: u32| at(&self.v, k);
            let x = match insts.get(i as usize) {
                Some(Inst::Const(c)) => *c,
                Some(Inst::Input(k)) => at(&self.bx, *k),
                Some(Inst::Un(f, a)) => un(*f, get(*a)),
                Some(Inst::PowI(a, n)) => get(*a).powi(*n),
                Some(Inst::Bin(o, a, b)) => bin(*o, get(*a), get(*b)),
                Some(Inst::If(c, a, b)) => Interval::select(get(*c), get(*a), get(*b)),
                None => Interval::INVALID,
            };
            if let Some(s) = self.v.get_mut(i as usize) {
                *s = x;
            }
        }
    }

    /// The box as last narrowed by [`Contractor::empty`] (for tests).
    pub fn narrowed(&self) -> &[Interval] {
        &self.bx
    }
}

/// What `a` can be when `a² ∈ z` and `a ∈ a0`: `[-√z.hi, √z.hi]`, minus `(-√z.lo, √z.lo)`
/// when `a0` lies on one side of 0 (outward rounded). `None`: nothing (`z` is negative).
fn sqrt_inverse(z: Interval, a0: Interval) -> Option<Interval> {
    if z.is_invalid() {
        return Some(Interval::INVALID);
    }
    if z.hi < 0.0 {
        return None;
    }
    let r = Interval::point(z.hi).sqrt().hi;
    let s = if z.lo > 0.0 {
        Interval::point(z.lo).sqrt().lo
    } else {
        0.0
    };
    Some(if !a0.is_invalid() && a0.lo >= 0.0 {
        Interval::new(s, r)
    } else if !a0.is_invalid() && a0.hi <= 0.0 {
        Interval::new(-r, -s)
    } else {
        Interval::new(-r, r)
    })
}

#[cfg(test)]
#[expect(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failure is a panic"
)]
mod tests {
    use super::*;
    use crate::policy::{Policy, VarType};
    use proptest::prelude::*;

    fn load(name: &str, text: &str) -> Policy {
        crate::load(name, text).unwrap()
    }

    fn policies() -> Vec<Policy> {
        vec![
            load(
                "warehouse-robot.toml",
                include_str!("../../../policies/warehouse-robot.toml"),
            ),
            load(
                "agent-tools.toml",
                include_str!("../../../policies/agent-tools.toml"),
            ),
        ]
    }

    /// Each action over its whole range (discrete ones over their encoded values).
    fn action_box(p: &Policy, inputs: &mut [Interval]) {
        for a in &p.actions {
            inputs[a.slot as usize] = Interval::new(a.min, a.max);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        /// The soundness property, with a witness: an action `x` and a state box, and each
        /// row asked for exactly the lower bound Tier 1 gives it at `x` (so `x` meets every
        /// bound for every state of the box). The contraction of the whole action box must
        /// not come out empty, must keep `x`, and must keep the whole state box.
        #[test]
        fn a_point_meeting_every_bound_is_never_contracted_away(
            r in proptest::collection::vec(0.0f64..1.0, 64),
            which in 0usize..2,
            rounds in 1u32..8,
        ) {
            let p = &policies()[which];
            let mut k = 0;
            let mut next = || { k += 1; r[k % r.len()] };
            let mut inputs = p.range_inputs();
            for s in &p.states {
                if let (Some(slot), VarType::Real) = (s.slot, &s.ty) {
                    if s.min.is_finite() && s.max.is_finite() {
                        let mid = s.min + next() * (s.max - s.min);
                        inputs[slot as usize] = Interval::around(mid, 0.05 * next() + s.noise);
                    }
                }
            }
            let mut at = inputs.clone();
            for a in &p.actions {
                let x = match &a.ty {
                    VarType::Bool => (next() < 0.5) as u8 as f64,
                    VarType::Enum(v) => ((next() * v.len() as f64).floor()).min(v.len() as f64 - 1.0),
                    VarType::Int => (a.min + (next() * (a.max - a.min + 1.0)).floor()).min(a.max),
                    _ => a.min + next() * (a.max - a.min),
                };
                at[a.slot as usize] = Interval::point(x);
            }
            let action: Vec<f64> = p.actions.iter().map(|a| at[a.slot as usize].lo).collect();
            let mut checker = crate::tier1::Checker::new(&p.lattice);
            checker.check(&p.lattice, &at, &action);
            let need: Vec<Option<f64>> = checker
                .rows()
                .iter()
                .map(|c| (c.active && !c.margin.is_invalid() && c.margin.lo.is_finite()).then_some(c.margin.lo))
                .collect();
            let mut bx = inputs.clone();
            action_box(p, &mut bx);
            let mut c = Contractor::new(&p.lattice);
            prop_assert!(!c.empty(&p.lattice, &bx, &need, rounds));
            let n = c.narrowed();
            for a in &p.actions {
                let x = at[a.slot as usize].lo;
                prop_assert!(n[a.slot as usize].contains(x), "`{}` = {x} cut from {:?}", a.name, n[a.slot as usize]);
            }
            for s in &p.states {
                if let Some(slot) = s.slot {
                    let (o, m) = (inputs[slot as usize], n[slot as usize]);
                    if !o.is_invalid() {
                        prop_assert!(m.lo <= o.lo && o.hi <= m.hi, "state `{}` {o:?} cut to {m:?}", s.name);
                    }
                }
            }
        }
    }

    /// A row asked for more than any action can give is proven impossible, through the
    /// backward steps of `^2`, `+` and `-`.
    #[test]
    fn a_speed_disc_asked_for_a_negative_radius_is_empty() {
        let p = &policies()[0];
        let mut bx = p.range_inputs();
        action_box(p, &mut bx);
        let mut need = vec![None; p.lattice.rows.len()];
        let i = p
            .lattice
            .rows
            .iter()
            .position(|r| r.name == "base-speed-disc")
            .unwrap();
        let mut c = Contractor::new(&p.lattice);
        // `vx^2 + vy^2 <= 2.25`: a margin of 2.25 is reachable (at rest), 2.26 is not.
        need[i] = Some(2.25);
        assert!(!c.empty(&p.lattice, &bx, &need, 4));
        need[i] = Some(2.26);
        assert!(c.empty(&p.lattice, &bx, &need, 4));
    }

    /// Two rows that each allow a part of the box but no common point: `vx` at least 1.2
    /// (from `base-accel` with `prev.vx = 1.5`, margin `0.5 - (prev.vx - vx) >= 0.2`) and
    /// the speed disc kept under 1.
    #[test]
    fn two_rows_with_no_common_point_are_empty_and_each_alone_is_not() {
        let p = &policies()[0];
        let mut bx = p.range_inputs();
        action_box(p, &mut bx);
        let prev = p.actions.iter().find(|a| a.name == "vx").unwrap().prev_slot;
        bx[prev as usize] = Interval::point(1.5);
        let row = |name: &str| p.lattice.rows.iter().position(|r| r.name == name).unwrap();
        let (accel, disc) = (row("base-accel#2"), row("base-speed-disc"));
        let mut c = Contractor::new(&p.lattice);
        let mut need = vec![None; p.lattice.rows.len()];
        need[accel] = Some(0.2);
        assert!(!c.empty(&p.lattice, &bx, &need, 4));
        assert!(c.narrowed()[p.actions[0].slot as usize].lo >= 1.2 - 1e-9);
        need[disc] = Some(2.25 - 1.0);
        assert!(c.empty(&p.lattice, &bx, &need, 4));
        need[accel] = None;
        assert!(!c.empty(&p.lattice, &bx, &need, 4));
    }
}
