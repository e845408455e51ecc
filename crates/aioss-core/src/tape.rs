//! The compiled evaluation form: a flat SSA tape shared by every row of a policy.
//!
//! Every distinct subexpression of every rule, constraint and budget is one instruction,
//! computed once per decision (common subexpressions such as `next.px` or `vx^2` are
//! shared across the whole lattice), and constant subexpressions are folded when the policy
//! loads, in the same interval arithmetic, so folding never changes a result. Evaluation is
//! one linear pass over a preallocated slot array: no allocation, no recursion, no tree
//! walk. The reference interpreter ([`interpret`]) walks the [`Term`] tree instead; the two
//! must agree bit for bit (tested).

use std::collections::HashMap;

use crate::expr::typeck::{Func, Op2, Term};
use crate::interval::Interval;

/// One instruction; operands are indices of earlier instructions.
///
/// INVARIANT (tape-order): every operand index is smaller than the instruction's own index,
/// so one forward pass computes everything. Kept by `TapeBuilder::push`, the only
/// constructor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Inst {
    /// A constant.
    Const(Interval),
    /// An input slot.
    Input(u32),
    /// A unary function.
    Un(Func, u32),
    /// Integer power.
    PowI(u32, i32),
    /// A binary operation.
    Bin(Op2, u32, u32),
    /// `if c then a else b`.
    If(u32, u32, u32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Const(u64, u64),
    Input(u32),
    Un(Func, u32),
    PowI(u32, i32),
    Bin(Op2, u32, u32),
    If(u32, u32, u32),
}

/// A compiled tape.
#[derive(Clone, Debug, Default)]
pub struct Tape {
    insts: Vec<Inst>,
    /// `(slot, constant)`: written in one tight loop, not dispatched per instruction.
    consts: Vec<(u32, Interval)>,
    /// `(slot, input index)`.
    loads: Vec<(u32, u32)>,
    /// `(slot, op)` for everything that computes, flattened to one dispatch level.
    ops: Vec<(u32, Op)>,
    /// The subset that some chosen roots depend on (see [`Tape::focus`]).
    focus: OpList,
}

/// A subset of a tape's instructions (see [`Tape::subset`]): the constants, input loads
/// and computing instructions it needs, each in tape order. Only what the subset reads is
/// written, so a dense policy's thousand coefficient constants are not copied on every
/// check of the rows that use the linear fast path instead.
#[derive(Clone, Debug, Default)]
pub struct OpList {
    consts: Vec<(u32, Interval)>,
    loads: Vec<(u32, u32)>,
    ops: Vec<(u32, Op)>,
}

impl OpList {
    /// Number of computing instructions.
    pub fn len(&self) -> usize {
        self.ops.len()
    }
    /// Is it empty (nothing to write at all)?
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty() && self.consts.is_empty() && self.loads.is_empty()
    }

    /// The part of `self` whose instructions `keep` marks (in the order of `self`).
    pub fn filter(&self, keep: &[bool]) -> OpList {
        let on = |i: u32| keep.get(i as usize).copied().unwrap_or(false);
        OpList {
            consts: self
                .consts
                .iter()
                .filter(|(i, _)| on(*i))
                .copied()
                .collect(),
            loads: self.loads.iter().filter(|(i, _)| on(*i)).copied().collect(),
            // A fused pair is kept when either of its two slots is wanted.
            ops: self
                .ops
                .iter()
                .filter(|(i, op)| on(*i) || (op.writes_previous() && on(i.wrapping_sub(1))))
                .copied()
                .collect(),
        }
    }
    /// Adjacent pairs where an instruction reads the one just before it (for profiling:
    /// candidates for fusion), by kind.
    pub fn adjacent_pairs(&self) -> Vec<(String, usize)> {
        let name = |op: &Op| {
            let n = format!("{op:?}");
            n.split('(').next().unwrap_or("").to_string()
        };
        let reads = |op: &Op, k: u32| op.operands().contains(&k);
        let mut h: Vec<(String, usize)> = Vec::new();
        for w in self.ops.windows(2) {
            if let [(i0, p), (i1, q)] = w {
                if i0.checked_add(1) == Some(*i1) && reads(q, *i0) {
                    let k = format!("{} -> {}", name(p), name(q));
                    match h.iter_mut().find(|(n, _)| *n == k) {
                        Some(e) => e.1 += 1,
                        None => h.push((k, 1)),
                    }
                }
            }
        }
        h.sort_by_key(|x| std::cmp::Reverse(x.1));
        h
    }
    /// Constants and input loads written per evaluation (for profiling).
    pub fn writes(&self) -> (usize, usize) {
        (self.consts.len(), self.loads.len())
    }
    /// How many instructions of each kind (for profiling).
    pub fn histogram(&self) -> Vec<(String, usize)> {
        let mut h: Vec<(String, usize)> = Vec::new();
        for (_, op) in &self.ops {
            let name = format!("{op:?}");
            let name = name.split('(').next().unwrap_or("").to_string();
            match h.iter_mut().find(|(n, _)| *n == name) {
                Some(e) => e.1 += 1,
                None => h.push((name, 1)),
            }
        }
        h
    }
}

/// A computing instruction with its operation in the opcode itself: the evaluation loop
/// dispatches once per instruction instead of twice.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Op {
    Un(Func, u32),
    Add(u32, u32),
    Sub(u32, u32),
    Mul(u32, u32),
    Sq(u32),
    PowI(u32, i32),
    Lt(u32, u32),
    Le(u32, u32),
    And(u32, u32),
    Or(u32, u32),
    Neg(u32),
    Other(Op2, u32, u32),
    If(u32, u32, u32),
    /// `a + k`, `a - k`, `k - a`, `a * k` (and `k + a`, `k * a`) with a point constant `k`
    /// carried in the opcode:
    /// the same interval operations on the same values as `Add`/`Sub`/`Mul` with the
    /// constant's slot, one load and one bounds check fewer (policies are full of
    /// `dt * vx`, `x - 10`).
    AddK(u32, f64),
    SubK(u32, f64),
    KSub(f64, u32),
    MulK(u32, f64),
    KAdd(f64, u32),
    KMul(f64, u32),
    /// `(a - k)^2`: a `SubK(a, k)` at slot `i - 1` and its square at slot `i` in one
    /// dispatch. Both slots are written, so later instructions, rows and gradients that
    /// read the difference find it.
    SqSubK(u32, f64),
}

/// Builds a tape with common-subexpression elimination and constant folding.
#[derive(Debug, Default)]
pub struct TapeBuilder {
    tape: Tape,
    memo: HashMap<Key, u32>,
}

impl TapeBuilder {
    /// A new, empty builder.
    pub fn new() -> Self {
        Self::default()
    }

    fn key(i: &Inst) -> Key {
        match *i {
            Inst::Const(c) => Key::Const(c.lo.to_bits(), c.hi.to_bits()),
            Inst::Input(k) => Key::Input(k),
            Inst::Un(f, a) => Key::Un(f, a),
            Inst::PowI(a, n) => Key::PowI(a, n),
            Inst::Bin(o, a, b) => Key::Bin(o, a, b),
            Inst::If(c, a, b) => Key::If(c, a, b),
        }
    }

    fn konst(&self, i: u32) -> Option<Interval> {
        match self.tape.insts.get(i as usize) {
            Some(Inst::Const(c)) => Some(*c),
            _ => None,
        }
    }

    fn push(&mut self, inst: Inst) -> u32 {
        // Constant folding, in the tape's own arithmetic.
        let folded = match inst {
            Inst::Un(f, a) => self.konst(a).map(|x| un(f, x)),
            Inst::PowI(a, n) => self.konst(a).map(|x| x.powi(n)),
            Inst::Bin(o, a, b) => match (self.konst(a), self.konst(b)) {
                (Some(x), Some(y)) => Some(bin(o, x, y)),
                _ => None,
            },
            Inst::If(c, a, b) => match self.konst(c).map(Interval::truth) {
                Some(crate::interval::Truth::True) => return a,
                Some(crate::interval::Truth::False) => return b,
                _ => None,
            },
            _ => None,
        };
        let inst = folded.map_or(inst, Inst::Const);
        let key = Self::key(&inst);
        if let Some(&i) = self.memo.get(&key) {
            return i;
        }
        let i = u32::try_from(self.tape.insts.len()).unwrap_or(u32::MAX);
        self.tape.insts.push(inst);
        self.memo.insert(key, i);
        i
    }

    /// Add a term; returns the slot holding its value.
    pub fn add(&mut self, t: &Term) -> u32 {
        match t {
            Term::Const(c) => self.push(Inst::Const(*c)),
            Term::Input(k) => self.push(Inst::Input(*k)),
            Term::Un(f, a) => {
                let a = self.add(a);
                self.push(Inst::Un(*f, a))
            }
            Term::PowI(a, n) => {
                let a = self.add(a);
                self.push(Inst::PowI(a, *n))
            }
            Term::Bin(o, a, b) => {
                let a = self.add(a);
                let b = self.add(b);
                self.push(Inst::Bin(*o, a, b))
            }
            Term::If(c, a, b) => {
                let c = self.add(c);
                let a = self.add(a);
                let b = self.add(b);
                self.push(Inst::If(c, a, b))
            }
        }
    }

    /// Add an instruction over existing slots (used for row margins).
    pub fn inst(&mut self, i: Inst) -> u32 {
        self.push(i)
    }

    /// The finished tape.
    pub fn finish(self) -> Tape {
        let mut t = self.tape;
        // A point constant operand, if `k` is one.
        let point = |insts: &[Inst], k: u32| match insts.get(k as usize) {
            Some(Inst::Const(c)) if c.lo.to_bits() == c.hi.to_bits() && c.lo.is_finite() => {
                Some(c.lo)
            }
            _ => None,
        };
        for (i, inst) in t.insts.iter().enumerate() {
            let slot = u32::try_from(i).unwrap_or(u32::MAX);
            let ins = &t.insts;
            if let Inst::Bin(o @ (Op2::Add | Op2::Sub | Op2::Mul), a, b) = *inst {
                let op = match (o, point(ins, a), point(ins, b)) {
                    (_, Some(_), Some(_)) => None,
                    (Op2::Add, None, Some(k)) => Some(Op::AddK(a, k)),
                    (Op2::Sub, None, Some(k)) => Some(Op::SubK(a, k)),
                    (Op2::Sub, Some(k), None) => Some(Op::KSub(k, b)),
                    (Op2::Mul, None, Some(k)) => Some(Op::MulK(a, k)),
                    (Op2::Add, Some(k), None) => Some(Op::KAdd(k, b)),
                    (Op2::Mul, Some(k), None) => Some(Op::KMul(k, b)),
                    _ => None,
                };
                if let Some(op) = op {
                    t.ops.push((slot, op));
                    continue;
                }
            }
            match *inst {
                Inst::Const(c) => t.consts.push((slot, c)),
                Inst::Input(k) => t.loads.push((slot, k)),
                Inst::Un(Func::Neg, a) => t.ops.push((slot, Op::Neg(a))),
                Inst::Un(f, a) => t.ops.push((slot, Op::Un(f, a))),
                Inst::PowI(a, 2) => t.ops.push((slot, Op::Sq(a))),
                Inst::PowI(a, n) => t.ops.push((slot, Op::PowI(a, n))),
                Inst::Bin(Op2::Add, a, b) => t.ops.push((slot, Op::Add(a, b))),
                Inst::Bin(Op2::Sub, a, b) => t.ops.push((slot, Op::Sub(a, b))),
                Inst::Bin(Op2::Mul, a, b) => t.ops.push((slot, Op::Mul(a, b))),
                Inst::Bin(Op2::Lt, a, b) => t.ops.push((slot, Op::Lt(a, b))),
                Inst::Bin(Op2::Le, a, b) => t.ops.push((slot, Op::Le(a, b))),
                Inst::Bin(Op2::And, a, b) => t.ops.push((slot, Op::And(a, b))),
                Inst::Bin(Op2::Or, a, b) => t.ops.push((slot, Op::Or(a, b))),
                Inst::Bin(o, a, b) => t.ops.push((slot, Op::Other(o, a, b))),
                Inst::If(c, a, b) => t.ops.push((slot, Op::If(c, a, b))),
            }
        }
        t.ops = fuse(std::mem::take(&mut t.ops));
        t
    }
}

impl Op {
    /// The slots this instruction reads (`u32::MAX` for none; constants carried in the
    /// instruction are not slots).
    fn operands(&self) -> [u32; 3] {
        const N: u32 = u32::MAX;
        match *self {
            Op::Un(_, a) | Op::Sq(a) | Op::PowI(a, _) | Op::Neg(a) => [a, N, N],
            Op::AddK(a, _) | Op::SubK(a, _) | Op::MulK(a, _) | Op::SqSubK(a, _) => [a, N, N],
            Op::KSub(_, b) | Op::KAdd(_, b) | Op::KMul(_, b) => [b, N, N],
            Op::Add(a, b)
            | Op::Sub(a, b)
            | Op::Mul(a, b)
            | Op::Lt(a, b)
            | Op::Le(a, b)
            | Op::And(a, b)
            | Op::Or(a, b)
            | Op::Other(_, a, b) => [a, b, N],
            Op::If(c, a, b) => [c, a, b],
        }
    }

    /// Does this instruction also write the slot before its own (a fused pair)?
    fn writes_previous(&self) -> bool {
        matches!(self, Op::SqSubK(..))
    }
}

/// Fuse `(a - k)^2` pairs (adjacent in the tape, the square reading the difference just
/// computed) into one instruction: policies are full of `(x - x0)^2` distances, and one
/// dispatch and one slot read fewer per pair is measurable on a 2 µs check. The same
/// interval operations on the same values, so results stay bit-identical.
fn fuse(ops: Vec<(u32, Op)>) -> Vec<(u32, Op)> {
    let mut out: Vec<(u32, Op)> = Vec::with_capacity(ops.len());
    for (i, op) in ops {
        if let (Op::Sq(a), Some(&(prev, Op::SubK(x, k)))) = (op, out.last()) {
            if a == prev && prev.checked_add(1) == Some(i) {
                out.pop();
                out.push((i, Op::SqSubK(x, k)));
                continue;
            }
        }
        out.push((i, op));
    }
    out
}

#[inline]
pub(crate) fn un(f: Func, x: Interval) -> Interval {
    match f {
        Func::Neg => x.neg(),
        Func::Not => x.not(),
        Func::Abs => x.abs(),
        Func::Sqrt => x.sqrt(),
        Func::Exp => x.exp(),
        Func::Log => x.log(),
        Func::Sin => x.sin(),
        Func::Cos => x.cos(),
        Func::Tanh => x.tanh(),
    }
}

#[inline(always)]
pub(crate) fn bin(o: Op2, a: Interval, b: Interval) -> Interval {
    match o {
        Op2::Add => a.add(b),
        Op2::Sub => a.sub(b),
        Op2::Mul => a.mul(b),
        Op2::Div => a.div(b),
        Op2::Pow => a.pow(b),
        Op2::Min => a.min(b),
        Op2::Max => a.max(b),
        Op2::Lt => a.lt(b),
        Op2::Le => a.le(b),
        Op2::Eq => a.eq(b),
        Op2::Ne => a.ne(b),
        Op2::And => a.and(b),
        Op2::Or => a.or(b),
    }
}

impl Tape {
    /// Number of instructions (and of slots an evaluation needs).
    pub fn len(&self) -> usize {
        self.insts.len()
    }

    /// Is the tape empty?
    pub fn is_empty(&self) -> bool {
        self.insts.is_empty()
    }

    /// The instructions.
    pub fn insts(&self) -> &[Inst] {
        &self.insts
    }

    /// Evaluate every instruction over intervals. `slots` must have [`Tape::len`]
    /// entries; a missing input reads as INVALID, so a short `inputs` can only make rows
    /// UNCERTAIN.
    #[inline]
    pub fn eval(&self, inputs: &[Interval], slots: &mut [Interval]) {
        self.eval_list(&self.consts, &self.loads, &self.ops, inputs, slots);
    }

    /// A slot array for this tape: every constant written, everything else INVALID. The
    /// gradients of [`Tape::grad_reverse`] read constants' slots, which a subset
    /// evaluation that does not need them never writes.
    pub fn slots(&self) -> Vec<Interval> {
        let mut v = vec![Interval::INVALID; self.insts.len()];
        for &(i, c) in &self.consts {
            if let Some(s) = v.get_mut(i as usize) {
                *s = c;
            }
        }
        v
    }

    /// Restrict [`Tape::eval_focus`] to what `roots` depend on (for Tier 1: the rows and
    /// their guards, not the rules' conditions or the budgets' increments).
    pub fn focus(&mut self, roots: &[u32]) {
        self.focus = self.subset(roots);
    }

    /// The instructions `roots` depend on, in tape order, for [`Tape::eval_subset`].
    pub fn subset(&self, roots: &[u32]) -> OpList {
        let mut need = vec![false; self.insts.len()];
        for &r in roots {
            for i in self.cone(r) {
                if let Some(n) = need.get_mut(i as usize) {
                    *n = true;
                }
            }
        }
        let mut list = OpList {
            consts: self.consts.clone(),
            loads: self.loads.clone(),
            ops: self.ops.clone(),
        }
        .filter(&need);
        // A constant only a `k * x`-style instruction uses is carried in that instruction:
        // nothing in the list reads its slot, so it is not rewritten on every evaluation
        // (43 of the 77 constants of the warehouse policy's decision list). Roots keep theirs; readers of other slots
        // (gradients) use slot arrays from [`Tape::slots`], where every constant is written.
        let mut read = vec![false; self.insts.len()];
        for &r in roots {
            if let Some(x) = read.get_mut(r as usize) {
                *x = true;
            }
        }
        for (_, op) in &list.ops {
            for k in op.operands() {
                if let Some(x) = read.get_mut(k as usize) {
                    *x = true;
                }
            }
        }
        list.consts
            .retain(|(i, _)| read.get(*i as usize).copied().unwrap_or(false));
        list
    }

    /// Which instructions depend, directly or through their operands, on one of `seeds`
    /// (one flag per instruction; a seed depends on itself).
    pub fn dependents(&self, seeds: &[u32]) -> Vec<bool> {
        let mut dep = vec![false; self.insts.len()];
        for &k in seeds {
            if let Some(d) = dep.get_mut(k as usize) {
                *d = true;
            }
        }
        // INVARIANT (tape-order) makes one forward pass enough.
        for i in 0..dep.len() {
            let get = |k: u32| dep.get(k as usize).copied().unwrap_or(false);
            let d = match self.insts.get(i) {
                Some(Inst::Un(_, a) | Inst::PowI(a, _)) => get(*a),
                Some(Inst::Bin(_, a, b)) => get(*a) || get(*b),
                Some(Inst::If(c, a, b)) => get(*c) || get(*a) || get(*b),
                _ => false,
            };
            if let Some(x) = dep.get_mut(i) {
                *x |= d;
            }
        }
        dep
    }

    /// The instructions of [`Tape::focus`] that `keep` marks, for [`Tape::eval_subset`].
    /// With `keep` from [`Tape::dependents`] of some inputs, evaluating this list after a
    /// full [`Tape::eval_focus`] recomputes exactly what a change of those inputs changes:
    /// the other slots still hold their values, bit for bit.
    pub fn focus_subset(&self, keep: &[bool]) -> OpList {
        self.focus.filter(keep)
    }

    /// Evaluate only the instructions of `ops` (from [`Tape::subset`] on this tape).
    #[inline]
    pub fn eval_subset(&self, ops: &OpList, inputs: &[Interval], slots: &mut [Interval]) {
        self.eval_list(&ops.consts, &ops.loads, &ops.ops, inputs, slots);
    }

    /// Evaluate only the instructions chosen by [`Tape::focus`] (slots outside it keep
    /// whatever they held).
    #[inline]
    pub fn eval_focus(&self, inputs: &[Interval], slots: &mut [Interval]) {
        let f = &self.focus;
        self.eval_list(&f.consts, &f.loads, &f.ops, inputs, slots);
    }

    #[inline]
    fn eval_list(
        &self,
        consts: &[(u32, Interval)],
        loads: &[(u32, u32)],
        ops: &[(u32, Op)],
        inputs: &[Interval],
        slots: &mut [Interval],
    ) {
        for &(i, c) in consts {
            if let Some(s) = slots.get_mut(i as usize) {
                *s = c;
            }
        }
        for &(i, k) in loads {
            let v = inputs.get(k as usize).copied().unwrap_or(Interval::INVALID);
            if let Some(s) = slots.get_mut(i as usize) {
                *s = v;
            }
        }
        // INVARIANT (tape-order): operands precede their instruction, and `ops` is in
        // instruction order, so every operand is final when it is read.
        for &(i, inst) in ops {
            let g = |k: u32| slots.get(k as usize).copied().unwrap_or(Interval::INVALID);
            let v = match inst {
                Op::Add(a, b) => g(a).add(g(b)),
                Op::Sub(a, b) => g(a).sub(g(b)),
                Op::Mul(a, b) => g(a).mul(g(b)),
                Op::Sq(a) => g(a).sq(),
                Op::Lt(a, b) => g(a).lt(g(b)),
                Op::Le(a, b) => g(a).le(g(b)),
                Op::And(a, b) => g(a).and(g(b)),
                Op::Or(a, b) => g(a).or(g(b)),
                Op::Neg(a) => g(a).neg(),
                Op::Un(f, a) => un(f, g(a)),
                Op::PowI(a, n) => g(a).powi(n),
                Op::Other(o, a, b) => bin(o, g(a), g(b)),
                Op::If(c, a, b) => Interval::select(g(c), g(a), g(b)),
                Op::AddK(a, k) => g(a).add(Interval::point(k)),
                Op::SubK(a, k) => g(a).sub(Interval::point(k)),
                Op::KSub(k, b) => Interval::point(k).sub(g(b)),
                Op::MulK(a, k) => g(a).mul_point(k),
                Op::KAdd(k, b) => Interval::point(k).add(g(b)),
                Op::KMul(k, b) => g(b).mul_point(k),
                Op::SqSubK(a, k) => {
                    let t = g(a).sub(Interval::point(k));
                    if let Some(s) = slots.get_mut(i.wrapping_sub(1) as usize) {
                        *s = t;
                    }
                    t.sq()
                }
            };
            if let Some(s) = slots.get_mut(i as usize) {
                *s = v;
            }
        }
    }

    /// Evaluate at a point, with forward-mode derivatives with respect to the inputs listed
    /// in `wrt` (tangent `j` is input `wrt[j]`). `vals` needs [`Tape::len`] entries and
    /// `grads` `len * wrt.len()`. Comparisons give 0/1 and have zero derivative; `if`, `min`,
    /// `max` and `abs` take the derivative of the branch taken.
    pub fn eval_grad(&self, inputs: &[f64], wrt: &[u32], vals: &mut [f64], grads: &mut [f64]) {
        let n = wrt.len();
        for (i, inst) in self.insts.iter().enumerate() {
            let v = |k: u32| vals.get(k as usize).copied().unwrap_or(f64::NAN);
            // (value, d_self/d_a, a, d_self/d_b, b): the chain rule's local partials.
            let (val, da, a, db, b): (f64, f64, u32, f64, u32) = match *inst {
                Inst::Const(c) => (c.mid(), 0.0, u32::MAX, 0.0, u32::MAX),
                Inst::Input(k) => {
                    let x = inputs.get(k as usize).copied().unwrap_or(f64::NAN);
                    (x, 0.0, u32::MAX, 0.0, u32::MAX)
                }
                Inst::Un(f, a) => {
                    let x = v(a);
                    let (y, d) = match f {
                        Func::Neg => (-x, -1.0),
                        Func::Not => (if x > 0.5 { 0.0 } else { 1.0 }, 0.0),
                        Func::Abs => (
                            x.abs(),
                            if x < 0.0 {
                                -1.0
                            } else if x > 0.0 {
                                1.0
                            } else {
                                0.0
                            },
                        ),
                        Func::Sqrt => {
                            let y = x.sqrt();
                            (y, 0.5 / y)
                        }
                        Func::Exp => {
                            let y = libm::exp(x);
                            (y, y)
                        }
                        Func::Log => (libm::log(x), 1.0 / x),
                        Func::Sin => (libm::sin(x), libm::cos(x)),
                        Func::Cos => (libm::cos(x), -libm::sin(x)),
                        Func::Tanh => {
                            let y = libm::tanh(x);
                            (y, 1.0 - y * y)
                        }
                    };
                    (y, d, a, 0.0, u32::MAX)
                }
                Inst::PowI(a, n) => {
                    let x = v(a);
                    let d = if n == 0 {
                        0.0
                    } else {
                        f64::from(n) * x.powi(n - 1)
                    };
                    (x.powi(n), d, a, 0.0, u32::MAX)
                }
                Inst::Bin(o, a, b) => {
                    let (x, y) = (v(a), v(b));
                    let t = |c: bool| if c { 1.0 } else { 0.0 };
                    match o {
                        Op2::Add => (x + y, 1.0, a, 1.0, b),
                        Op2::Sub => (x - y, 1.0, a, -1.0, b),
                        Op2::Mul => (x * y, y, a, x, b),
                        Op2::Div => (x / y, 1.0 / y, a, -x / (y * y), b),
                        Op2::Pow => {
                            let z = libm::pow(x, y);
                            (z, y * libm::pow(x, y - 1.0), a, z * libm::log(x), b)
                        }
                        Op2::Min => {
                            if x <= y {
                                (x, 1.0, a, 0.0, b)
                            } else {
                                (y, 0.0, a, 1.0, b)
                            }
                        }
                        Op2::Max => {
                            if x >= y {
                                (x, 1.0, a, 0.0, b)
                            } else {
                                (y, 0.0, a, 1.0, b)
                            }
                        }
                        Op2::Lt => (t(x < y), 0.0, a, 0.0, b),
                        Op2::Le => (t(x <= y), 0.0, a, 0.0, b),
                        Op2::Eq => (t(x == y), 0.0, a, 0.0, b),
                        Op2::Ne => (t(x != y), 0.0, a, 0.0, b),
                        Op2::And => (t(x > 0.5 && y > 0.5), 0.0, a, 0.0, b),
                        Op2::Or => (t(x > 0.5 || y > 0.5), 0.0, a, 0.0, b),
                    }
                }
                Inst::If(c, a, b) => {
                    if v(c) > 0.5 {
                        (v(a), 1.0, a, 0.0, b)
                    } else {
                        (v(b), 0.0, a, 1.0, b)
                    }
                }
            };
            if let Some(s) = vals.get_mut(i) {
                *s = val;
            }
            // Gradient row i = da * row a + db * row b, or the unit vector for an input.
            for j in 0..n {
                let ga = if da != 0.0 {
                    grads.get(a as usize * n + j).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
                let gb = if db != 0.0 {
                    grads.get(b as usize * n + j).copied().unwrap_or(0.0)
                } else {
                    0.0
                };
                let mut g = da * ga + db * gb;
                if let Inst::Input(k) = *inst {
                    g = if wrt.get(j) == Some(&k) { 1.0 } else { 0.0 };
                }
                if let Some(s) = grads.get_mut(i * n + j) {
                    *s = g;
                }
            }
        }
    }
}

/// The reference interpreter: a plain recursive walk of the term, in the same interval
/// arithmetic. The oracle for the tape (compiled and interpreted results must be equal).
pub fn interpret(t: &Term, inputs: &[Interval]) -> Interval {
    match t {
        Term::Const(c) => *c,
        Term::Input(k) => inputs
            .get(*k as usize)
            .copied()
            .unwrap_or(Interval::INVALID),
        Term::Un(f, a) => un(*f, interpret(a, inputs)),
        Term::PowI(a, n) => interpret(a, inputs).powi(*n),
        Term::Bin(o, a, b) => bin(*o, interpret(a, inputs), interpret(b, inputs)),
        Term::If(c, a, b) => Interval::select(
            interpret(c, inputs),
            interpret(a, inputs),
            interpret(b, inputs),
        ),
    }
}

impl Tape {
    /// The cone of `root`: every instruction it depends on (itself included), ascending.
    pub fn cone(&self, root: u32) -> Vec<u32> {
        let mut mark = vec![false; self.insts.len()];
        let mut stack = vec![root];
        while let Some(i) = stack.pop() {
            let Some(m) = mark.get_mut(i as usize) else {
                continue;
            };
            if *m {
                continue;
            }
            *m = true;
            match self.insts.get(i as usize) {
                Some(Inst::Un(_, a) | Inst::PowI(a, _)) => stack.push(*a),
                Some(Inst::Bin(_, a, b)) => stack.extend([*a, *b]),
                Some(Inst::If(c, a, b)) => stack.extend([*c, *a, *b]),
                _ => {}
            }
        }
        mark.iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .filter_map(|(i, _)| u32::try_from(i).ok())
            .collect()
    }

    /// Reverse-mode gradient of slot `root` over its `cone` (from [`Tape::cone`]), using
    /// the midpoints of an evaluated interval slot array as the linearisation point.
    /// `adj` is working memory of [`Tape::len`] entries; on return `adj[i]` holds
    /// d root / d slot i for every `i` in the cone (entries outside the cone are stale).
    /// Cost: the cone's size, not the tape's — what makes linearising many rows cheap.
    /// Constants are read from `slots`: pass an array from [`Tape::slots`], where every
    /// constant is written (an evaluation of a subset writes only the constants its own
    /// instructions read).
    pub fn grad_reverse(&self, slots: &[Interval], cone: &[u32], root: u32, adj: &mut [f64]) {
        for &i in cone {
            if let Some(a) = adj.get_mut(i as usize) {
                *a = 0.0;
            }
        }
        if let Some(a) = adj.get_mut(root as usize) {
            *a = 1.0;
        }
        let mid = |k: u32| slots.get(k as usize).map_or(f64::NAN, |x| x.mid());
        let fin = |d: f64| if d.is_finite() { d } else { 0.0 };
        for &i in cone.iter().rev() {
            let w = adj.get(i as usize).copied().unwrap_or(0.0);
            if w == 0.0 {
                continue;
            }
            let mut push = |k: u32, d: f64| {
                if let Some(a) = adj.get_mut(k as usize) {
                    *a += w * fin(d);
                }
            };
            match self.insts.get(i as usize).copied() {
                Some(Inst::Un(f, a)) => {
                    let x = mid(a);
                    let d = match f {
                        Func::Neg => -1.0,
                        Func::Not => 0.0,
                        Func::Abs => {
                            if x < 0.0 {
                                -1.0
                            } else if x > 0.0 {
                                1.0
                            } else {
                                0.0
                            }
                        }
                        Func::Sqrt => 0.5 / x.sqrt(),
                        Func::Exp => libm::exp(x),
                        Func::Log => 1.0 / x,
                        Func::Sin => libm::cos(x),
                        Func::Cos => -libm::sin(x),
                        Func::Tanh => {
                            let t = libm::tanh(x);
                            1.0 - t * t
                        }
                    };
                    push(a, d);
                }
                Some(Inst::PowI(a, n)) => {
                    let x = mid(a);
                    push(
                        a,
                        if n == 0 {
                            0.0
                        } else {
                            f64::from(n) * x.powi(n - 1)
                        },
                    );
                }
                Some(Inst::Bin(o, a, b)) => {
                    let (x, y) = (mid(a), mid(b));
                    let (da, db) = match o {
                        Op2::Add => (1.0, 1.0),
                        Op2::Sub => (1.0, -1.0),
                        Op2::Mul => (y, x),
                        Op2::Div => (1.0 / y, -x / (y * y)),
                        Op2::Pow => (y * libm::pow(x, y - 1.0), libm::pow(x, y) * libm::log(x)),
                        Op2::Min => {
                            if x <= y {
                                (1.0, 0.0)
                            } else {
                                (0.0, 1.0)
                            }
                        }
                        Op2::Max => {
                            if x >= y {
                                (1.0, 0.0)
                            } else {
                                (0.0, 1.0)
                            }
                        }
                        _ => (0.0, 0.0),
                    };
                    if da != 0.0 {
                        push(a, da);
                    }
                    if db != 0.0 {
                        push(b, db);
                    }
                }
                Some(Inst::If(c, a, b)) => {
                    if mid(c) > 0.5 {
                        push(a, 1.0);
                    } else {
                        push(b, 1.0);
                    }
                }
                _ => {}
            }
        }
    }

    /// The instruction that reads input slot `k`, if any.
    pub fn input_inst(&self, k: u32) -> Option<u32> {
        self.insts
            .iter()
            .position(|i| *i == Inst::Input(k))
            .and_then(|i| u32::try_from(i).ok())
    }
}
