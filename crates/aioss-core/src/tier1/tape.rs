//! The compiled tape's evaluation form and its interval evaluation: part of the trusted
//! checker (see [`crate::tier1`]).
//!
//! The compiler ([`crate::tape::TapeBuilder`]) turns a policy's expressions into a flat
//! list of [`Inst`]ructions in SSA form; `Tape::from_insts` lowers that list into the form
//! evaluated here (constants, input loads, and computing instructions with their operation
//! in the opcode). Evaluation is one forward pass over a preallocated slot array: no
//! allocation, no recursion. Every operation is the interval kernel's
//! ([`crate::tier1::interval`]), so a slot always encloses the exact value of its
//! subexpression over the input box.
//!
//! What a reviewer checks here: that each computing instruction computes the kernel
//! operation its [`Inst`] names (the lowering in `Tape::from_insts` and the `match` in
//! `Tape::eval_list`), and that the lists a check evaluates ([`Tape::subset`],
//! [`Tape::dependents`], [`OpList::filter`]) contain every instruction a root depends on.

use crate::expr::typeck::{Func, Op2};
use crate::tier1::interval::Interval;

/// One instruction; operands are indices of earlier instructions.
///
/// INVARIANT (tape-order): every operand index is smaller than the instruction's own index,
/// so one forward pass computes everything. Kept by `TapeBuilder::push`, and checked again by
/// `Tape::from_insts`, the only constructor.
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
    #[cfg(feature = "profiling")]
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
    #[cfg(feature = "profiling")]
    pub fn writes(&self) -> (usize, usize) {
        (self.consts.len(), self.loads.len())
    }
    /// How many instructions of each kind (for profiling, and for tests of the lowering).
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
/// dispatch and one slot read fewer per pair is measurable on a check that short
/// (BENCHMARKS.md, "Tier 1"). The same
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

    /// The evaluation form of `insts` (the compiler's output, in tape order): constants,
    /// input loads and computing instructions split into their lists, `k * x`-style
    /// instructions carrying their point constant, `(x - k)^2` pairs fused.
    pub(crate) fn from_insts(insts: Vec<Inst>) -> Tape {
        // INVARIANT (tape-order), checked here because everything after relies on it: an
        // instruction that reads itself or a later slot would read a stale value, so it is
        // replaced by INVALID (which only ever makes a row UNCERTAIN).
        let insts: Vec<Inst> = insts
            .into_iter()
            .enumerate()
            .map(|(i, inst)| {
                let ok = |k: u32| (k as usize) < i;
                let ordered = match inst {
                    Inst::Const(_) | Inst::Input(_) => true,
                    Inst::Un(_, a) | Inst::PowI(a, _) => ok(a),
                    Inst::Bin(_, a, b) => ok(a) && ok(b),
                    Inst::If(c, a, b) => ok(c) && ok(a) && ok(b),
                };
                if ordered {
                    inst
                } else {
                    Inst::Const(Interval::INVALID)
                }
            })
            .collect();
        let mut t = Tape {
            insts,
            ..Tape::default()
        };
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

    /// The instruction that reads input slot `k`, if any.
    pub fn input_inst(&self, k: u32) -> Option<u32> {
        self.insts
            .iter()
            .position(|i| *i == Inst::Input(k))
            .and_then(|i| u32::try_from(i).ok())
    }
}
