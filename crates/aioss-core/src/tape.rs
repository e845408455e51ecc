//! The compiler's last step: every rule, guard, row and budget of a policy becomes one
//! flat SSA tape shared by the whole lattice.
//!
//! Every distinct subexpression is one instruction, computed once per decision (common
//! subexpressions such as `next.px` or `vx^2` are shared across the whole lattice), and
//! constant subexpressions are folded when the policy loads, in the same interval
//! arithmetic, so folding never changes a result. The evaluation form and its interval
//! evaluation are part of the trusted checker ([`crate::tier1::tape`]); what is here is the
//! compiler (the second thing a reviewer reads, after [`crate::tier1`]), the reference
//! interpreter ([`interpret`], which the tape must agree with bit for bit, tested) and the
//! derivatives Tier 2 linearises with (untrusted: a wrong gradient costs optimality, never
//! safety).

use std::collections::HashMap;

use crate::expr::typeck::{Func, Op2, Term};
use crate::tier1::interval::Interval;
pub(crate) use crate::tier1::tape::{bin, un};
pub use crate::tier1::tape::{Inst, OpList, Tape};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    Const(u64, u64),
    Input(u32),
    Un(Func, u32),
    PowI(u32, i32),
    Bin(Op2, u32, u32),
    If(u32, u32, u32),
}

/// Builds a tape with common-subexpression elimination and constant folding.
#[derive(Debug, Default)]
pub struct TapeBuilder {
    insts: Vec<Inst>,
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
        match self.insts.get(i as usize) {
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
        let i = u32::try_from(self.insts.len()).unwrap_or(u32::MAX);
        self.insts.push(inst);
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
        Tape::from_insts(self.insts)
    }
}

impl Tape {
    /// Evaluate at a point, with forward-mode derivatives with respect to the inputs listed
    /// in `wrt` (tangent `j` is input `wrt[j]`). `vals` needs [`Tape::len`] entries and
    /// `grads` `len * wrt.len()`. Comparisons give 0/1 and have zero derivative; `if`, `min`,
    /// `max` and `abs` take the derivative of the branch taken.
    pub fn eval_grad(&self, inputs: &[f64], wrt: &[u32], vals: &mut [f64], grads: &mut [f64]) {
        let n = wrt.len();
        for (i, inst) in self.insts().iter().enumerate() {
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
            match self.insts().get(i as usize).copied() {
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
}
