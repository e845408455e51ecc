//! The untyped syntax tree, as written.

use crate::error::Span;

/// An expression with the span of its text in the policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where it is.
    pub span: Span,
    /// Its height: 1 for a leaf, one more than its highest operand otherwise (a sum of
    /// `n` terms, parsed left to right, is `n` high). Every pass over the tree recurses
    /// this deep, so the parser bounds it ([`crate::expr::parse::MAX_HEIGHT`]).
    pub height: u32,
}

impl Expr {
    /// A node of `kind` at `span`, its height computed from its operands.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        let h = |e: &Expr| e.height;
        let below = match &kind {
            ExprKind::Num(_) | ExprKind::Bool(_) | ExprKind::Str(_) | ExprKind::Name(_) => 0,
            ExprKind::Neg(a) | ExprKind::Not(a) => h(a),
            ExprKind::Binary(_, a, b) | ExprKind::Cmp(_, a, b) => h(a).max(h(b)),
            // `x in [v1, ..., vn]` becomes a chain of n `or`s, and `min`/`max` of n
            // arguments a chain of n - 1 calls, when typed: their height counts the chain.
            ExprKind::In(a, items) => {
                let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
                items.iter().map(h).fold(h(a), u32::max).saturating_add(n)
            }
            ExprKind::Call(_, _, args) => {
                let n = u32::try_from(args.len()).unwrap_or(u32::MAX);
                args.iter().map(h).fold(0, u32::max).saturating_add(n)
            }
            ExprKind::If(c, a, b) => h(c).max(h(a)).max(h(b)),
        };
        Expr {
            kind,
            span,
            height: below.saturating_add(1),
        }
    }
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `^`
    Pow,
    /// `and`
    And,
    /// `or`
    Or,
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `==`
    Eq,
    /// `!=`
    Ne,
}

impl CmpOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Eq => "==",
            CmpOp::Ne => "!=",
        }
    }
}

/// Expression forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// A number, as the double its text rounds to.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `'text'`: an enum value or an attribute value.
    Str(String),
    /// A (possibly dotted) name: `vx`, `prev.vx`, `agent.role`.
    Name(Vec<String>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `not`.
    Not(Box<Expr>),
    /// Arithmetic and logic.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A comparison.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// `x in [a, b, ...]`.
    In(Box<Expr>, Vec<Expr>),
    /// `f(args)`.
    Call(String, Span, Vec<Expr>),
    /// `if c then a else b`.
    If(Box<Expr>, Box<Expr>, Box<Expr>),
}
