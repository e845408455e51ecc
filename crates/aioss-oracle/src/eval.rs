//! Exact evaluation of the source expressions at one point.
//!
//! A [`Point`] gives every input one exact value: the action, each state, `prev.`, each
//! budget, each agent attribute and each `[dynamics]` error term. Evaluation follows the
//! spec: arithmetic is exact ([`crate::exact`]); enum values compare by name (the oracle
//! keeps each variable's own value list); `next.<s>` is the `[dynamics]` equation of `s` at
//! the point plus that equation's error term; `and`/`or`/`not` are Kleene's (a side that is
//! undefined or undecided only matters when the other side does not already decide);
//! `if c then a else b` takes the branch `c` selects.

use crate::exact::Ctx;

use crate::exact::{qf, real_pow, transcendental_ex, Ex, Stop, Trans, Q};
use crate::expr::{Cmp, Op, E};
use crate::model::{Body, Model, Row, VTy};

/// One input's exact value.
#[derive(Clone, Debug, PartialEq)]
pub enum Pt {
    /// A number.
    Num(Q),
    /// A boolean.
    Bool(bool),
    /// An enum value, by index in the variable's values.
    Enum(usize),
}

/// An agent attribute's value as the policy reads it: as a symbol (`None`: the attribute is
/// a number, which equals no string) and as a number.
#[derive(Clone, Debug, PartialEq)]
pub struct AttrPt {
    /// Read as a symbol.
    pub sym: Option<String>,
    /// Read as a number.
    pub num: Q,
}

/// Every input at one exact value.
#[derive(Clone, Debug)]
pub struct Point {
    /// Per action variable.
    pub actions: Vec<Pt>,
    /// Per state variable (`None` for text).
    pub states: Vec<Option<Pt>>,
    /// Per action variable: `prev.<name>`.
    pub prev: Vec<Pt>,
    /// Per budget.
    pub budgets: Vec<Q>,
    /// Agent attributes by name (an attribute the policy reads and this lacks is an error).
    pub attrs: Vec<(String, AttrPt)>,
    /// Per `[dynamics]` equation: its error term.
    pub errs: Vec<Q>,
}

/// Three-valued truth plus "undefined here".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B {
    /// Holds.
    T,
    /// Does not hold.
    F,
    /// The oracle cannot tell.
    Undec,
    /// Undefined at this point (a margin that is undefined somewhere is never SAT).
    Undef,
}

/// Why an expression has no value here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// See [`Stop::Undefined`].
    Undefined(&'static str),
    /// See [`Stop::Undecided`].
    Undecided(&'static str),
    /// The oracle does not support this expression (or it is ill-typed): an error of the
    /// harness, never a pass.
    Bad(String),
}

impl From<Stop> for Why {
    fn from(s: Stop) -> Why {
        match s {
            Stop::Undefined(m) => Why::Undefined(m),
            Stop::Undecided(m) => Why::Undecided(m),
        }
    }
}

#[derive(Clone, Debug)]
enum Val<'m> {
    Num(Ex),
    B(B),
    Enum(&'m [String], usize),
    Str(String),
    Attr(String),
}

/// The evaluator of one point.
pub(crate) struct Ev<'a> {
    m: &'a Model,
    p: &'a Point,
    cc: &'a mut Ctx,
    /// In `h(next)` mode: each state's next value (states without an equation: `None`).
    next_states: Option<Vec<Option<Result<Ex, B>>>>,
    allow_next: bool,
}

fn bad<T>(m: impl Into<String>) -> Result<T, Why> {
    Err(Why::Bad(m.into()))
}

impl<'a> Ev<'a> {
    /// An evaluator for `p`.
    pub(crate) fn new(m: &'a Model, p: &'a Point, cc: &'a mut Ctx) -> Ev<'a> {
        Ev {
            m,
            p,
            cc,
            next_states: None,
            allow_next: true,
        }
    }

    fn pt(&self, ty: &'a VTy, v: &Pt) -> Result<Val<'a>, Why> {
        Ok(match (ty, v) {
            (VTy::Enum(vals), Pt::Enum(i)) => Val::Enum(vals, *i),
            (_, Pt::Num(x)) => Val::Num(Ex::Exact(x.clone())),
            (_, Pt::Bool(b)) => Val::B(if *b { B::T } else { B::F }),
            (_, Pt::Enum(_)) => return bad("an enum value for a non-enum variable"),
        })
    }

    /// `next.<state j>`: its equation at the point plus its error term.
    fn next_of(&mut self, j: usize) -> Result<Ex, Why> {
        let Some(eqs) = &self.m.dynamics else {
            return bad("next. without [dynamics]");
        };
        let Some((k, (_, eq, _))) = eqs.iter().enumerate().find(|(_, e)| e.0 == j) else {
            return bad("next. of a state without an equation");
        };
        let err = self.p.errs.get(k).cloned().unwrap_or_else(Q::zero);
        let saved = (self.next_states.take(), self.allow_next);
        self.allow_next = false;
        let v = self.num(eq);
        (self.next_states, self.allow_next) = saved;
        Ok(v?.add(&Ex::Exact(err)))
    }

    fn name(&mut self, parts: &[String]) -> Result<Val<'a>, Why> {
        let m = self.m;
        match parts {
            [n] => {
                if let Some(i) = m.action(n) {
                    let (Some(a), Some(v)) = (m.actions.get(i), self.p.actions.get(i)) else {
                        return bad("missing action value");
                    };
                    return self.pt(&a.ty, v);
                }
                if let Some(j) = m.state(n) {
                    if let Some(ns) = &self.next_states {
                        return match ns.get(j) {
                            Some(Some(Ok(x))) => Ok(Val::Num(x.clone())),
                            Some(Some(Err(B::Undef))) => {
                                Err(Why::Undefined("an undefined next state"))
                            }
                            Some(Some(Err(_))) => Err(Why::Undecided("an undecided next state")),
                            _ => bad(format!("`{n}` has no [dynamics] equation")),
                        };
                    }
                    let Some(s) = m.states.get(j) else {
                        return bad("state");
                    };
                    return match self.p.states.get(j) {
                        Some(Some(v)) => self.pt(&s.ty, v),
                        _ => bad(format!("text state `{n}` read by an expression")),
                    };
                }
                if let Some((_, v)) = m.params.iter().find(|(p, _)| p == n) {
                    return Ok(Val::Num(Ex::Exact(qf(*v))));
                }
                bad(format!("unknown name `{n}`"))
            }
            [ns, n] if ns == "prev" => {
                let Some(i) = m.action(n) else {
                    return bad(format!("unknown prev.{n}"));
                };
                let (Some(a), Some(v)) = (m.actions.get(i), self.p.prev.get(i)) else {
                    return bad("missing prev value");
                };
                self.pt(&a.ty, v)
            }
            [ns, n] if ns == "next" => {
                if !self.allow_next || self.next_states.is_some() {
                    return bad("next. inside [dynamics], a budget or a barrier function");
                }
                let Some(j) = m.state(n) else {
                    return bad(format!("unknown next.{n}"));
                };
                Ok(Val::Num(self.next_of(j)?))
            }
            [ns, n] if ns == "agent" => Ok(Val::Attr(n.clone())),
            [ns, n] if ns == "budget" => {
                let Some(k) = m.budgets.iter().position(|b| b.name == *n) else {
                    return bad(format!("unknown budget.{n}"));
                };
                match self.p.budgets.get(k) {
                    Some(x) => Ok(Val::Num(Ex::Exact(x.clone()))),
                    None => bad("missing budget value"),
                }
            }
            _ => bad(format!("unknown name `{}`", parts.join("."))),
        }
    }

    fn attr(&self, a: &str) -> Result<&'a AttrPt, Why> {
        let p: &'a Point = self.p;
        match p.attrs.iter().find(|(k, _)| k == a) {
            Some((_, v)) => Ok(v),
            None => bad(format!("no value for agent.{a}")),
        }
    }

    /// A numeric expression.
    pub fn num(&mut self, e: &E) -> Result<Ex, Why> {
        match self.val(e)? {
            Val::Num(x) => Ok(x),
            Val::Attr(a) => Ok(Ex::Exact(self.attr(&a)?.num.clone())),
            other => bad(format!("expected a number, found {other:?}")),
        }
    }

    /// A condition, with undefined and undecided folded into [`B`].
    pub fn truth(&mut self, e: &E) -> Result<B, Why> {
        match self.val(e) {
            Ok(Val::B(b)) => Ok(b),
            Ok(other) => bad(format!("expected a condition, found {other:?}")),
            Err(Why::Undefined(_)) => Ok(B::Undef),
            Err(Why::Undecided(_)) => Ok(B::Undec),
            Err(w) => Err(w),
        }
    }

    fn eq_vals(&self, a: &Val<'a>, b: &Val<'a>) -> Result<B, Why> {
        let dec = |x: bool| if x { B::T } else { B::F };
        Ok(match (a, b) {
            (Val::Num(x), Val::Num(y)) => match x.cmp_ex(y) {
                Some(o) => dec(o == std::cmp::Ordering::Equal),
                None => B::Undec,
            },
            (Val::B(x), Val::B(y)) => match (x, y) {
                (B::T | B::F, B::T | B::F) => dec(x == y),
                (B::Undef, _) | (_, B::Undef) => B::Undef,
                _ => B::Undec,
            },
            (Val::Enum(la, x), Val::Enum(lb, y)) => {
                if la != lb {
                    return bad("comparing enums with different values");
                }
                dec(x == y)
            }
            (Val::Enum(l, x), Val::Str(s)) | (Val::Str(s), Val::Enum(l, x)) => {
                match l.iter().position(|v| v == s) {
                    Some(i) => dec(i == *x),
                    None => return bad(format!("`{s}` is not a value of the enum")),
                }
            }
            (Val::Attr(at), Val::Str(s)) | (Val::Str(s), Val::Attr(at)) => {
                dec(self.attr(at)?.sym.as_deref() == Some(s.as_str()))
            }
            (Val::Attr(at), Val::Num(x)) | (Val::Num(x), Val::Attr(at)) => {
                let v = Ex::Exact(self.attr(at)?.num.clone());
                match v.cmp_ex(x) {
                    Some(o) => dec(o == std::cmp::Ordering::Equal),
                    None => B::Undec,
                }
            }
            (Val::Attr(x), Val::Attr(y)) => {
                let (sx, sy) = (&self.attr(x)?.sym, &self.attr(y)?.sym);
                dec(sx.is_some() && sx == sy)
            }
            _ => return bad(format!("cannot compare {a:?} with {b:?}")),
        })
    }

    fn numeric_side(&mut self, v: Val<'a>) -> Result<Ex, Why> {
        match v {
            Val::Num(x) => Ok(x),
            Val::Attr(a) => Ok(Ex::Exact(self.attr(&a)?.num.clone())),
            other => bad(format!("`<`-like comparison of {other:?}")),
        }
    }

    fn compare(&mut self, op: Cmp, a: &E, b: &E) -> Result<B, Why> {
        let va = self.val(a)?;
        let vb = self.val(b)?;
        match op {
            Cmp::Eq => self.eq_vals(&va, &vb),
            Cmp::Ne => Ok(match self.eq_vals(&va, &vb)? {
                B::T => B::F,
                B::F => B::T,
                o => o,
            }),
            _ => {
                let (x, y) = (self.numeric_side(va)?, self.numeric_side(vb)?);
                let Some(o) = x.cmp_ex(&y) else {
                    return Ok(B::Undec);
                };
                use std::cmp::Ordering::*;
                let r = match op {
                    Cmp::Lt => o == Less,
                    Cmp::Le => o != Greater,
                    Cmp::Gt => o == Greater,
                    _ => o != Less,
                };
                Ok(if r { B::T } else { B::F })
            }
        }
    }

    fn call(&mut self, f: &str, args: &[E]) -> Result<Ex, Why> {
        let one = |s: &mut Self| -> Result<Ex, Why> {
            match args {
                [a] => s.num(a),
                _ => bad(format!("`{f}` takes one argument")),
            }
        };
        let trans = |s: &mut Self, t: Trans| -> Result<Ex, Why> {
            let x = one(s)?;
            Ok(transcendental_ex(t, &x, s.cc)?)
        };
        match f {
            "abs" => Ok(one(self)?.abs()),
            "sq" => Ok(one(self)?.powi(2)?),
            "sqrt" => trans(self, Trans::Sqrt),
            "exp" => trans(self, Trans::Exp),
            "log" => trans(self, Trans::Log),
            "sin" => trans(self, Trans::Sin),
            "cos" => trans(self, Trans::Cos),
            "tanh" => trans(self, Trans::Tanh),
            "min" | "max" => {
                let [a, b] = args else {
                    return bad(format!("`{f}` takes two arguments"));
                };
                let (x, y) = (self.num(a)?, self.num(b)?);
                Ok(if f == "min" { x.min(&y) } else { x.max(&y) })
            }
            _ => bad(format!("unknown function `{f}`")),
        }
    }

    fn val(&mut self, e: &E) -> Result<Val<'a>, Why> {
        Ok(match e {
            E::Num(x) => Val::Num(Ex::Exact(qf(*x))),
            E::Bool(b) => Val::B(if *b { B::T } else { B::F }),
            E::Str(s) => Val::Str(s.clone()),
            E::Name(parts) => self.name(parts)?,
            E::Neg(a) => Val::Num(self.num(a)?.neg()),
            E::Not(a) => Val::B(match self.truth(a)? {
                B::T => B::F,
                B::F => B::T,
                o => o,
            }),
            E::Bin(Op::And | Op::Or, a, b) => {
                let is_and = matches!(e, E::Bin(Op::And, ..));
                let x = self.truth(a)?;
                let y = self.truth(b)?;
                let (absorb, unit) = if is_and { (B::F, B::T) } else { (B::T, B::F) };
                Val::B(if x == absorb || y == absorb {
                    absorb
                } else if x == unit && y == unit {
                    unit
                } else if x == B::Undec || y == B::Undec {
                    B::Undec
                } else {
                    B::Undef
                })
            }
            E::Bin(op, a, b) => {
                let x = self.num(a)?;
                let y = self.num(b)?;
                Val::Num(match op {
                    Op::Add => x.add(&y),
                    Op::Sub => x.sub(&y),
                    Op::Mul => x.mul(&y),
                    Op::Div => x.div(&y)?,
                    _ => real_pow(&x, &y, self.cc)?,
                })
            }
            E::Cmp(op, a, b) => Val::B(match self.compare(*op, a, b) {
                Ok(b) => b,
                Err(Why::Undefined(_)) => B::Undef,
                Err(Why::Undecided(_)) => B::Undec,
                Err(w) => return Err(w),
            }),
            E::In(x, items) => {
                let mut acc = B::F;
                for it in items {
                    let b = match self.compare(Cmp::Eq, x, it) {
                        Ok(b) => b,
                        Err(Why::Undefined(_)) => B::Undef,
                        Err(Why::Undecided(_)) => B::Undec,
                        Err(w) => return Err(w),
                    };
                    acc = match (acc, b) {
                        (B::T, _) | (_, B::T) => B::T,
                        (B::Undec, _) | (_, B::Undec) => B::Undec,
                        (B::Undef, _) | (_, B::Undef) => B::Undef,
                        _ => B::F,
                    };
                }
                Val::B(acc)
            }
            E::Call(f, args) => Val::Num(self.call(f, args)?),
            E::If(c, a, b) => match self.truth(c)? {
                B::T => self.val(a)?,
                B::F => self.val(b)?,
                B::Undef => return Err(Why::Undefined("an undefined `if` condition")),
                B::Undec => match (self.val(a), self.val(b)) {
                    (Ok(Val::Num(x)), Ok(Val::Num(y))) => {
                        let lo = x.lo().clone().min(y.lo().clone());
                        let hi = x.hi().clone().max(y.hi().clone());
                        Val::Num(if lo == hi {
                            Ex::Exact(lo)
                        } else {
                            Ex::Range(lo, hi)
                        })
                    }
                    _ => return Err(Why::Undecided("an undecided `if` condition")),
                },
            },
        })
    }
}

/// A row's exact evaluation at one point.
#[derive(Clone, Debug)]
pub struct RowAt {
    /// The guard (`T` without one).
    pub guard: B,
    /// Does the row hold?
    pub holds: B,
    /// Its margin (`rhs - lhs` for `<=`, `-|l - r|` for `==`, ...) when it is a numeric
    /// comparison and defined here.
    pub margin: Option<Ex>,
}

fn sign_holds(m: &Ex, strict: bool) -> B {
    let (lo, hi) = (m.lo(), m.hi());
    if strict {
        if lo.is_positive() {
            B::T
        } else if !hi.is_positive() {
            B::F
        } else {
            B::Undec
        }
    } else if !lo.is_negative() {
        B::T
    } else if hi.is_negative() {
        B::F
    } else {
        B::Undec
    }
}

fn fold(r: Result<Ex, Why>) -> Result<Result<Ex, B>, Why> {
    match r {
        Ok(x) => Ok(Ok(x)),
        Err(Why::Undefined(_)) => Ok(Err(B::Undef)),
        Err(Why::Undecided(_)) => Ok(Err(B::Undec)),
        Err(w) => Err(w),
    }
}

/// Evaluate `row` (and its constraint's guard) at `p`.
pub fn eval_row(m: &Model, row: &Row, p: &Point, cc: &mut Ctx) -> Result<RowAt, Why> {
    let Some(c) = m.constraint_of(row) else {
        return bad("row without constraint");
    };
    let mut ev = Ev::new(m, p, cc);
    let guard = match &c.guard {
        Some(g) => ev.truth(g)?,
        None => B::T,
    };
    let margin: Result<Ex, B> = match (&row.cond, &c.body) {
        (Some(E::Cmp(op, a, b)), _) => {
            let (va, vb) = (ev.val(a), ev.val(b));
            match (va, vb) {
                (Ok(x), Ok(y)) => {
                    let numeric = |v: &Val<'_>| matches!(v, Val::Num(_) | Val::Attr(_));
                    let both_attrs = matches!((&x, &y), (Val::Attr(_), Val::Attr(_)));
                    if numeric(&x) && numeric(&y) && !both_attrs {
                        let (l, r) = (ev.numeric_side(x)?, ev.numeric_side(y)?);
                        let (mg, strict) = match op {
                            Cmp::Le => (r.sub(&l), false),
                            Cmp::Lt => (r.sub(&l), true),
                            Cmp::Ge => (l.sub(&r), false),
                            Cmp::Gt => (l.sub(&r), true),
                            Cmp::Eq => (l.sub(&r).abs().neg(), false),
                            Cmp::Ne => (l.sub(&r).abs(), true),
                        };
                        let holds = sign_holds(&mg, strict);
                        return Ok(RowAt {
                            guard,
                            holds,
                            margin: Some(mg),
                        });
                    }
                    match ev.compare(*op, a, b) {
                        Ok(b) => Err(b),
                        Err(Why::Undefined(_)) => Err(B::Undef),
                        Err(Why::Undecided(_)) => Err(B::Undec),
                        Err(w) => return Err(w),
                    }
                }
                (Err(Why::Bad(w)), _) | (_, Err(Why::Bad(w))) => return Err(Why::Bad(w)),
                (Err(Why::Undefined(_)), _) | (_, Err(Why::Undefined(_))) => Err(B::Undef),
                _ => Err(B::Undec),
            }
        }
        (Some(cond), _) => Err(ev.truth(cond)?),
        (None, Body::Barrier { h, gamma }) => {
            let k = Ex::Exact(Q::one() - qf(*gamma));
            match (fold(ev.num(h))?, next_mode(m, p, h, ev.cc)?) {
                (Ok(hx), Ok(hn)) => Ok(hn.sub(&k.mul(&hx))),
                (Err(B::Undef), _) | (_, Err(B::Undef)) => Err(B::Undef),
                _ => Err(B::Undec),
            }
        }
        (None, Body::Lyapunov { v, alpha, sigma }) => {
            let k = Ex::Exact(Q::one() - qf(*alpha));
            match (fold(ev.num(v))?, next_mode(m, p, v, ev.cc)?) {
                (Ok(vx), Ok(vn)) => Ok(k.mul(&vx).add(&Ex::Exact(qf(*sigma))).sub(&vn)),
                (Err(B::Undef), _) | (_, Err(B::Undef)) => Err(B::Undef),
                _ => Err(B::Undec),
            }
        }
        (None, Body::Expr(_)) => return bad("an expr row without its conjunct"),
    };
    Ok(match margin {
        Ok(mg) => RowAt {
            guard,
            holds: sign_holds(&mg, false),
            margin: Some(mg),
        },
        Err(b) => RowAt {
            guard,
            holds: b,
            margin: None,
        },
    })
}

/// `f` with every state that has an equation replaced by its next value.
fn next_mode(m: &Model, p: &Point, f: &E, cc: &mut Ctx) -> Result<Result<Ex, B>, Why> {
    let mut next = vec![None; m.states.len()];
    for (j, slot) in next.iter_mut().enumerate() {
        let has = m
            .dynamics
            .as_ref()
            .is_some_and(|d| d.iter().any(|e| e.0 == j));
        if has {
            let mut ev = Ev::new(m, p, cc);
            *slot = Some(fold(ev.next_of(j))?);
        }
    }
    let mut ev = Ev::new(m, p, cc);
    ev.next_states = Some(next);
    ev.allow_next = false;
    fold(ev.num(f))
}

/// A numeric expression (a budget's `add`, a dynamics equation) at `p`; `next.` is refused.
pub fn eval_num(m: &Model, e: &E, p: &Point, cc: &mut Ctx) -> Result<Ex, Why> {
    let mut ev = Ev::new(m, p, cc);
    ev.allow_next = false;
    ev.num(e)
}
