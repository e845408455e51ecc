//! Name resolution and type checking: [`ast::Expr`](super::ast::Expr) → typed [`Term`].
//!
//! Types are checked once, when a policy loads, so that the hot path never meets a type
//! error. Values of every type are encoded as intervals: numbers as themselves, booleans as
//! `{0, 1}`, enum values as their index, agent-attribute strings as symbol ids. The
//! encoding is what lets one evaluator (and one tape) serve every type.

use super::ast::{BinOp, CmpOp, Expr, ExprKind};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::interval::Interval;

/// The type of an expression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A real or an integer.
    Num,
    /// A boolean.
    Bool,
    /// A value of the enum with this id (see [`Resolver::enum_values`]).
    Enum(u32),
}

/// One-argument operations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// `-x`
    Neg,
    /// `not x`
    Not,
    /// `abs(x)`
    Abs,
    /// `sqrt(x)`
    Sqrt,
    /// `exp(x)`
    Exp,
    /// `log(x)`
    Log,
    /// `sin(x)`
    Sin,
    /// `cos(x)`
    Cos,
    /// `tanh(x)`
    Tanh,
}

/// Two-argument operations (`>` and `>=` are written as swapped `<` and `<=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op2 {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ^ b` for a non-integer exponent
    Pow,
    /// `min(a, b)`
    Min,
    /// `max(a, b)`
    Max,
    /// `a < b`
    Lt,
    /// `a <= b`
    Le,
    /// `a == b`
    Eq,
    /// `a != b`
    Ne,
    /// `a and b`
    And,
    /// `a or b`
    Or,
}

/// A typed, resolved expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Term {
    /// A constant (numbers, booleans, enum indices, symbols).
    Const(Interval),
    /// Slot `i` of the decision's input vector.
    Input(u32),
    /// `f(x)`.
    Un(Func, Box<Term>),
    /// `x ^ n` for an integer constant `n`.
    PowI(Box<Term>, i32),
    /// `a op b`.
    Bin(Op2, Box<Term>, Box<Term>),
    /// `if c then a else b`.
    If(Box<Term>, Box<Term>, Box<Term>),
}

impl Term {
    pub(crate) fn un(f: Func, a: Term) -> Term {
        Term::Un(f, Box::new(a))
    }
    pub(crate) fn bin(op: Op2, a: Term, b: Term) -> Term {
        Term::Bin(op, Box::new(a), Box::new(b))
    }

    /// Visit every input slot the term reads.
    pub fn inputs(&self, f: &mut dyn FnMut(u32)) {
        match self {
            Term::Const(_) => {}
            Term::Input(i) => f(*i),
            Term::Un(_, a) | Term::PowI(a, _) => a.inputs(f),
            Term::Bin(_, a, b) => {
                a.inputs(f);
                b.inputs(f);
            }
            Term::If(c, a, b) => {
                c.inputs(f);
                a.inputs(f);
                b.inputs(f);
            }
        }
    }

    /// Replace input slots by terms (used to substitute dynamics into `next.`).
    pub fn substitute(&self, f: &dyn Fn(u32) -> Option<Term>) -> Term {
        match self {
            Term::Const(c) => Term::Const(*c),
            Term::Input(i) => f(*i).unwrap_or(Term::Input(*i)),
            Term::Un(g, a) => Term::un(*g, a.substitute(f)),
            Term::PowI(a, n) => Term::PowI(Box::new(a.substitute(f)), *n),
            Term::Bin(op, a, b) => Term::bin(*op, a.substitute(f), b.substitute(f)),
            Term::If(c, a, b) => Term::If(
                Box::new(c.substitute(f)),
                Box::new(a.substitute(f)),
                Box::new(b.substitute(f)),
            ),
        }
    }
}

/// What a name resolves to.
#[derive(Clone, Debug)]
pub enum Resolved {
    /// A typed value.
    Value(Term, Ty),
    /// An agent attribute, whose slot depends on how it is compared.
    Attr(String),
}

/// The declarations an expression is checked against (implemented by the loader).
pub trait Resolver {
    /// Resolve a (dotted) name, or say why it does not resolve.
    fn name(&mut self, parts: &[String], span: Span) -> Result<Resolved, PolicyError>;
    /// The input slot of agent attribute `attr`, as a symbol (`numeric = false`) or a number.
    fn attr_slot(&mut self, attr: &str, numeric: bool) -> u32;
    /// The symbol id of an attribute string.
    fn symbol(&mut self, text: &str) -> f64;
    /// The name and values of enum `id`.
    fn enum_values(&self, id: u32) -> (&str, &[String]);
}

/// An intermediate: string literals and agent attributes only live inside comparisons.
enum Val {
    T(Term, Ty),
    Str(String, Span),
    Attr(String),
}

fn ty_name(t: Ty) -> &'static str {
    match t {
        Ty::Num => "a number",
        Ty::Bool => "a boolean",
        Ty::Enum(_) => "an enum value",
    }
}

fn mismatch(span: Span, msg: impl Into<String>) -> PolicyError {
    PolicyError::new(ErrorKind::TypeMismatch, span, msg)
}

/// Check `e` and require the type `want`.
pub fn check(e: &Expr, want: Ty, r: &mut dyn Resolver) -> Result<Term, PolicyError> {
    let (t, ty) = typed(e, r)?;
    if ty == want {
        return Ok(t);
    }
    Err(match want {
        Ty::Bool => PolicyError::new(
            ErrorKind::NotBoolean,
            e.span,
            format!("expected a boolean condition, found {}", ty_name(ty)),
        )
        .help("compare it, for example `x > 0`; a number is never used as a boolean"),
        _ => mismatch(
            e.span,
            format!("expected {}, found {}", ty_name(want), ty_name(ty)),
        ),
    })
}

/// Check `e`, whatever its type.
pub fn typed(e: &Expr, r: &mut dyn Resolver) -> Result<(Term, Ty), PolicyError> {
    match val(e, r)? {
        Val::T(t, ty) => Ok((t, ty)),
        Val::Str(s, span) => Err(mismatch(
            span,
            format!("the string `'{s}'` can only be compared with an enum or an agent attribute"),
        )),
        Val::Attr(a) => Ok((Term::Input(r.attr_slot(&a, true)), Ty::Num)),
    }
}

fn num(e: &Expr, r: &mut dyn Resolver, what: &str) -> Result<Term, PolicyError> {
    let (t, ty) = typed(e, r)?;
    if ty == Ty::Num {
        Ok(t)
    } else {
        Err(mismatch(
            e.span,
            format!("{what} needs a number, found {}", ty_name(ty)),
        ))
    }
}

fn boolean(e: &Expr, r: &mut dyn Resolver, what: &str) -> Result<Term, PolicyError> {
    let (t, ty) = typed(e, r)?;
    if ty == Ty::Bool {
        Ok(t)
    } else {
        Err(PolicyError::new(
            ErrorKind::NotBoolean,
            e.span,
            format!("{what} needs a boolean, found {}", ty_name(ty)),
        )
        .help("compare it, for example `x > 0`; a number is never used as a boolean"))
    }
}

fn val(e: &Expr, r: &mut dyn Resolver) -> Result<Val, PolicyError> {
    Ok(match &e.kind {
        ExprKind::Num(v) => Val::T(Term::Const(Interval::point(*v)), Ty::Num),
        ExprKind::Bool(b) => Val::T(
            Term::Const(if *b { Interval::TRUE } else { Interval::FALSE }),
            Ty::Bool,
        ),
        ExprKind::Str(s) => Val::Str(s.clone(), e.span),
        ExprKind::Name(parts) => match r.name(parts, e.span)? {
            Resolved::Value(t, ty) => Val::T(t, ty),
            Resolved::Attr(a) => Val::Attr(a),
        },
        ExprKind::Neg(a) => Val::T(Term::un(Func::Neg, num(a, r, "unary `-`")?), Ty::Num),
        ExprKind::Not(a) => Val::T(Term::un(Func::Not, boolean(a, r, "`not`")?), Ty::Bool),
        ExprKind::Binary(op, a, b) => binary(*op, a, b, r)?,
        ExprKind::Cmp(op, a, b) => Val::T(compare(*op, a, b, e.span, r)?, Ty::Bool),
        ExprKind::In(x, items) => in_list(e, x, items, r)?,
        ExprKind::If(c, a, b) => if_expr(c, a, b, r)?,
        ExprKind::Call(name, nspan, args) => call(e, name, *nspan, args, r)?,
    })
}

/// `a op b` for arithmetic and logic: its own function so that the recursion through
/// [`val`] keeps small frames (a flat sum recurses once per term; see
/// `crate::expr::parse::MAX_HEIGHT`).
fn binary(op: BinOp, a: &Expr, b: &Expr, r: &mut dyn Resolver) -> Result<Val, PolicyError> {
    Ok(match op {
        BinOp::And | BinOp::Or => {
            let w = if op == BinOp::And { "`and`" } else { "`or`" };
            let ta = boolean(a, r, w)?;
            let tb = boolean(b, r, w)?;
            let o = if op == BinOp::And { Op2::And } else { Op2::Or };
            Val::T(Term::bin(o, ta, tb), Ty::Bool)
        }
        BinOp::Pow => {
            let ta = num(a, r, "`^`")?;
            let tb = num(b, r, "`^`")?;
            match tb {
                Term::Const(c) if c.is_point() && c.lo.fract() == 0.0 && c.lo.abs() <= 1024.0 => {
                    #[expect(
                        clippy::cast_possible_truncation,
                        reason = "integral and at most 1024 in magnitude, checked above"
                    )]
                    let n = c.lo as i32;
                    Val::T(Term::PowI(Box::new(ta), n), Ty::Num)
                }
                Term::Const(c) if c.is_point() && c.lo.abs() > 1024.0 => {
                    return Err(mismatch(b.span, "exponent too large")
                        .help("use an exponent between -1024 and 1024"))
                }
                tb => Val::T(Term::bin(Op2::Pow, ta, tb), Ty::Num),
            }
        }
        _ => {
            let w = match op {
                BinOp::Add => "`+`",
                BinOp::Sub => "`-`",
                BinOp::Mul => "`*`",
                _ => "`/`",
            };
            let ta = num(a, r, w)?;
            let tb = num(b, r, w)?;
            let o = match op {
                BinOp::Add => Op2::Add,
                BinOp::Sub => Op2::Sub,
                BinOp::Mul => Op2::Mul,
                _ => Op2::Div,
            };
            Val::T(Term::bin(o, ta, tb), Ty::Num)
        }
    })
}

/// `x in [items]`: a chain of `or`s of equalities.
fn in_list(e: &Expr, x: &Expr, items: &[Expr], r: &mut dyn Resolver) -> Result<Val, PolicyError> {
    if items.is_empty() {
        return Err(mismatch(e.span, "`in` needs at least one value")
            .help("list the values, for example `zone in ['a', 'b']`"));
    }
    let mut acc: Option<Term> = None;
    for it in items {
        let t = compare(CmpOp::Eq, x, it, it.span, r)?;
        acc = Some(match acc {
            None => t,
            Some(p) => Term::bin(Op2::Or, p, t),
        });
    }
    Ok(Val::T(
        acc.unwrap_or(Term::Const(Interval::FALSE)),
        Ty::Bool,
    ))
}

/// `if c then a else b`.
fn if_expr(c: &Expr, a: &Expr, b: &Expr, r: &mut dyn Resolver) -> Result<Val, PolicyError> {
    let tc = boolean(c, r, "the condition of `if`")?;
    let (ta, ya) = typed(a, r)?;
    let (tb, yb) = typed(b, r)?;
    if ya != yb {
        return Err(mismatch(
            b.span,
            format!(
                "the branches of `if` differ in type: `then` gives {}, `else` gives {}",
                ty_name(ya),
                ty_name(yb)
            ),
        ));
    }
    Ok(Val::T(
        Term::If(Box::new(tc), Box::new(ta), Box::new(tb)),
        ya,
    ))
}

/// A function call.
fn call(
    e: &Expr,
    name: &str,
    nspan: Span,
    args: &[Expr],
    r: &mut dyn Resolver,
) -> Result<Val, PolicyError> {
    let arity = |n: usize| -> Result<(), PolicyError> {
        if args.len() == n {
            Ok(())
        } else {
            Err(mismatch(
                e.span,
                format!(
                    "`{name}` takes {n} argument{}, found {}",
                    if n == 1 { "" } else { "s" },
                    args.len()
                ),
            ))
        }
    };
    let what = format!("`{name}`");
    let f1 = |f: Func, r: &mut dyn Resolver| -> Result<Val, PolicyError> {
        arity(1)?;
        let a = args.first().map(|a| num(a, r, &what)).transpose()?;
        Ok(Val::T(
            Term::un(f, a.unwrap_or(Term::Const(Interval::INVALID))),
            Ty::Num,
        ))
    };
    Ok(match name {
        "abs" => f1(Func::Abs, r)?,
        "sqrt" => f1(Func::Sqrt, r)?,
        "exp" => f1(Func::Exp, r)?,
        "log" => f1(Func::Log, r)?,
        "sin" => f1(Func::Sin, r)?,
        "cos" => f1(Func::Cos, r)?,
        "tanh" => f1(Func::Tanh, r)?,
        "sq" => {
            arity(1)?;
            let a = match args.first() {
                Some(a) => num(a, r, &what)?,
                None => Term::Const(Interval::INVALID),
            };
            Val::T(Term::PowI(Box::new(a), 2), Ty::Num)
        }
        "min" | "max" => {
            arity(2)?;
            let (Some(a), Some(b)) = (args.first(), args.get(1)) else {
                return Err(mismatch(e.span, format!("`{name}` takes 2 arguments")));
            };
            let ta = num(a, r, &what)?;
            let tb = num(b, r, &what)?;
            let o = if name == "min" { Op2::Min } else { Op2::Max };
            Val::T(Term::bin(o, ta, tb), Ty::Num)
        }
        _ => {
            return Err(PolicyError::new(
                ErrorKind::UnknownName,
                nspan,
                format!("unknown function `{name}`"),
            )
            .help("the functions are abs, min, max, sqrt, exp, log, sin, cos, tanh, sq"))
        }
    })
}

fn compare(
    op: CmpOp,
    a: &Expr,
    b: &Expr,
    span: Span,
    r: &mut dyn Resolver,
) -> Result<Term, PolicyError> {
    let va = val(a, r)?;
    let vb = val(b, r)?;
    let equality = matches!(op, CmpOp::Eq | CmpOp::Ne);
    let (ta, tb) = match (va, vb) {
        (Val::T(ta, ya), Val::T(tb, yb)) => {
            match (ya, yb) {
                (Ty::Num, Ty::Num) => {}
                (Ty::Bool, Ty::Bool) | (Ty::Enum(_), Ty::Enum(_)) if !equality => {
                    return Err(mismatch(
                        span,
                        format!(
                            "`{}` needs numbers; {} compare only with `==`, `!=` and `in`",
                            op.as_str(),
                            if ya == Ty::Bool { "booleans" } else { "enums" }
                        ),
                    ))
                }
                (Ty::Bool, Ty::Bool) => {}
                (Ty::Enum(x), Ty::Enum(y)) if x == y => {}
                (Ty::Enum(x), Ty::Enum(y)) => {
                    let nx = r.enum_values(x).0.to_string();
                    let ny = r.enum_values(y).0.to_string();
                    return Err(mismatch(
                        span,
                        format!("cannot compare values of `{nx}` with values of `{ny}`"),
                    ));
                }
                _ => {
                    return Err(mismatch(
                        span,
                        format!("cannot compare {} with {}", ty_name(ya), ty_name(yb)),
                    ))
                }
            }
            (ta, tb)
        }
        (Val::T(t, ty), Val::Str(s, sspan)) | (Val::Str(s, sspan), Val::T(t, ty)) => {
            let Ty::Enum(id) = ty else {
                return Err(mismatch(
                    sspan,
                    format!("cannot compare {} with the string `'{s}'`", ty_name(ty)),
                ));
            };
            if !equality {
                return Err(mismatch(
                    span,
                    format!(
                        "`{}` needs numbers; enums compare only with `==`, `!=` and `in`",
                        op.as_str()
                    ),
                ));
            }
            let (ename, values) = r.enum_values(id);
            let Some(ix) = values.iter().position(|v| *v == s) else {
                let list = values
                    .iter()
                    .map(|v| format!("'{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(PolicyError::new(
                    ErrorKind::UnknownEnumValue,
                    sspan,
                    format!("`{ename}` has no value `'{s}'`"),
                )
                .help(format!("its values are {list}")));
            };
            #[expect(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
            let c = Term::Const(Interval::point(ix as f64));
            (t, c)
        }
        (Val::Attr(at), Val::Str(s, _)) | (Val::Str(s, _), Val::Attr(at)) => {
            if !equality {
                return Err(mismatch(
                    span,
                    format!(
                        "`{}` needs numbers; strings compare only with `==`, `!=` and `in`",
                        op.as_str()
                    ),
                ));
            }
            let slot = r.attr_slot(&at, false);
            let sym = r.symbol(&s);
            (Term::Input(slot), Term::Const(Interval::point(sym)))
        }
        (Val::Attr(at), Val::T(t, Ty::Num)) => (Term::Input(r.attr_slot(&at, true)), t),
        (Val::T(t, Ty::Num), Val::Attr(at)) => (t, Term::Input(r.attr_slot(&at, true))),
        (Val::Attr(_), Val::T(_, ty)) | (Val::T(_, ty), Val::Attr(_)) => {
            return Err(mismatch(
                span,
                format!(
                    "an agent attribute compares with a string or a number, not {}",
                    ty_name(ty)
                ),
            ))
        }
        (Val::Attr(x), Val::Attr(y)) => (
            Term::Input(r.attr_slot(&x, false)),
            Term::Input(r.attr_slot(&y, false)),
        ),
        (Val::Str(_, _), Val::Str(_, _)) => {
            return Err(mismatch(
                span,
                "comparing two strings is always decided; compare a variable",
            ))
        }
    };
    Ok(match op {
        CmpOp::Lt => Term::bin(Op2::Lt, ta, tb),
        CmpOp::Le => Term::bin(Op2::Le, ta, tb),
        CmpOp::Gt => Term::bin(Op2::Lt, tb, ta),
        CmpOp::Ge => Term::bin(Op2::Le, tb, ta),
        CmpOp::Eq => Term::bin(Op2::Eq, ta, tb),
        CmpOp::Ne => Term::bin(Op2::Ne, ta, tb),
    })
}
