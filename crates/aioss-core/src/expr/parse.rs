//! A hand-written lexer and precedence-climbing parser.
//!
//! Hand-written (rather than a parser generator) so that every error carries an exact span
//! and a message that says what was expected, and so that depth is bounded: a policy is
//! untrusted input and a deeply nested expression must be an error, not a stack overflow.
//!
//! Precedence, lowest first: `if then else`, `or`, `and`, `not`, comparisons and `in`
//! (non-associative), `+ -`, `* /`, unary `-`, `^` (right-associative, so `-x^2 = -(x^2)`).

use super::ast::{BinOp, CmpOp, Expr, ExprKind};
use crate::error::{ErrorKind, PolicyError, Span};

/// Nesting limit; deeper input is refused with an error.
pub const MAX_DEPTH: usize = 64;
/// How high a tree may grow (see [`Expr::height`]): every pass over it (type checking,
/// compiling, dropping) recurses this deep. Loading runs on a thread with a stack sized for
/// it ([`crate::load::LOAD_STACK_BYTES`]); the test
/// `a_tree_as_high_as_allowed_loads_on_a_small_stack` checks it from a small caller stack.
pub const MAX_HEIGHT: usize = 400;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Plus,
    Minus,
    Star,
    Slash,
    Caret,
    Cmp(CmpOp),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Num(_) => "a number".into(),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Str(s) => format!("`'{s}'`"),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Plus => "`+`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Star => "`*`".into(),
            Tok::Slash => "`/`".into(),
            Tok::Caret => "`^`".into(),
            Tok::Cmp(op) => format!("`{}`", op.as_str()),
            Tok::Eof => "the end of the expression".into(),
        }
    }
}

fn syntax(span: Span, msg: impl Into<String>) -> PolicyError {
    PolicyError::new(ErrorKind::Syntax, span, msg)
}

/// Tokenise `src`; `base` is the byte offset of `src` in the policy file.
fn lex(src: &str, base: usize) -> Result<Vec<(Tok, Span)>, PolicyError> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let sp = |a: usize, b: usize| Span::new(base + a, base + b);
    while let Some(&c) = bytes.get(i) {
        let start = i;
        let single = |t: Tok| (t, sp(start, start + 1));
        match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'(' => out.push(single(Tok::LParen)),
            b')' => out.push(single(Tok::RParen)),
            b'[' => out.push(single(Tok::LBracket)),
            b']' => out.push(single(Tok::RBracket)),
            b',' => out.push(single(Tok::Comma)),
            b'+' => out.push(single(Tok::Plus)),
            b'-' => out.push(single(Tok::Minus)),
            b'*' => out.push(single(Tok::Star)),
            b'/' => out.push(single(Tok::Slash)),
            b'^' => out.push(single(Tok::Caret)),
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => out.push(single(Tok::Dot)),
            b'<' | b'>' | b'=' | b'!' => {
                let eq = bytes.get(i + 1) == Some(&b'=');
                let op = match (c, eq) {
                    (b'<', true) => CmpOp::Le,
                    (b'<', false) => CmpOp::Lt,
                    (b'>', true) => CmpOp::Ge,
                    (b'>', false) => CmpOp::Gt,
                    (b'=', true) => CmpOp::Eq,
                    (b'!', true) => CmpOp::Ne,
                    (b'=', false) => {
                        return Err(syntax(sp(i, i + 1), "expected `==`, found `=`")
                            .help("comparisons use `==`; expressions cannot assign"))
                    }
                    _ => {
                        return Err(syntax(sp(i, i + 1), "expected `!=`, found `!`")
                            .help("write `not x` for negation and `a != b` for inequality"))
                    }
                };
                let len = if eq { 2 } else { 1 };
                out.push((Tok::Cmp(op), sp(i, i + len)));
                i += len;
                continue;
            }
            b'\'' => {
                let rest = src.get(i + 1..).unwrap_or("");
                match rest.find('\'') {
                    Some(end) => {
                        let text = rest.get(..end).unwrap_or("").to_string();
                        out.push((Tok::Str(text), sp(i, i + end + 2)));
                        i += end + 2;
                        continue;
                    }
                    None => {
                        return Err(syntax(sp(i, src.len()), "unterminated string")
                            .help("close the string with `'`"))
                    }
                }
            }
            b'0'..=b'9' | b'.' => {
                let mut j = i;
                while bytes
                    .get(j)
                    .is_some_and(|b| b.is_ascii_digit() || *b == b'.')
                {
                    j += 1;
                }
                if bytes.get(j).is_some_and(|b| *b == b'e' || *b == b'E') {
                    let mut k = j + 1;
                    if bytes.get(k).is_some_and(|b| *b == b'+' || *b == b'-') {
                        k += 1;
                    }
                    if bytes.get(k).is_some_and(u8::is_ascii_digit) {
                        j = k;
                        while bytes.get(j).is_some_and(u8::is_ascii_digit) {
                            j += 1;
                        }
                    }
                }
                let text = src.get(i..j).unwrap_or("");
                match text.parse::<f64>() {
                    Ok(v) if v.is_finite() => out.push((Tok::Num(v), sp(i, j))),
                    _ => {
                        return Err(syntax(sp(i, j), format!("invalid number `{text}`"))
                            .help("write a finite decimal number such as `1.5` or `2e-3`"))
                    }
                }
                i = j;
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i;
                while bytes
                    .get(j)
                    .is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
                {
                    j += 1;
                }
                let text = src.get(i..j).unwrap_or("").to_string();
                out.push((Tok::Ident(text), sp(i, j)));
                i = j;
                continue;
            }
            _ => {
                let ch = src.get(i..).and_then(|s| s.chars().next()).unwrap_or('?');
                let len = ch.len_utf8();
                return Err(syntax(
                    sp(i, i + len),
                    format!("unexpected character `{ch}`"),
                ));
            }
        }
        i += 1;
    }
    out.push((Tok::Eof, sp(src.len(), src.len())));
    Ok(out)
}

struct Parser {
    toks: Vec<(Tok, Span)>,
    pos: usize,
    depth: usize,
}

const KEYWORDS: &[&str] = &[
    "and", "or", "not", "in", "if", "then", "else", "true", "false",
];

impl Parser {
    fn peek(&self) -> &Tok {
        self.toks.get(self.pos).map_or(&Tok::Eof, |t| &t.0)
    }
    fn span(&self) -> Span {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(Span::default(), |t| t.1)
    }
    fn bump(&mut self) -> (Tok, Span) {
        let t = self
            .toks
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::Eof, Span::default()));
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }
    fn is_kw(&self, kw: &str) -> bool {
        matches!(self.peek(), Tok::Ident(s) if s == kw)
    }
    fn expect_kw(&mut self, kw: &str, context: &str) -> Result<(), PolicyError> {
        if self.is_kw(kw) {
            self.bump();
            Ok(())
        } else {
            Err(syntax(
                self.span(),
                format!(
                    "expected `{kw}` {context}, found {}",
                    self.peek().describe()
                ),
            ))
        }
    }
    fn expect(&mut self, t: Tok, context: &str) -> Result<Span, PolicyError> {
        if *self.peek() == t {
            Ok(self.bump().1)
        } else {
            Err(syntax(
                self.span(),
                format!(
                    "expected {} {context}, found {}",
                    t.describe(),
                    self.peek().describe()
                ),
            ))
        }
    }
    /// A node of the tree, refused once it is higher than [`MAX_HEIGHT`].
    fn node(&self, kind: ExprKind, span: Span) -> Result<Expr, PolicyError> {
        let e = Expr::new(kind, span);
        if e.height as usize > MAX_HEIGHT {
            // INVARIANT (bounded-height): no tree higher than MAX_HEIGHT is built, so no
            // later pass (type checking, compiling, dropping) recurses deeper than that.
            return Err(syntax(span, format!("this expression is more than {MAX_HEIGHT} operations deep"))
                .help("a sum or product of n terms is n deep; split the condition over several constraints or rows"));
        }
        Ok(e)
    }

    fn bin(&self, op: BinOp, a: Expr, b: Expr) -> Result<Expr, PolicyError> {
        let span = a.span.join(b.span);
        self.node(ExprKind::Binary(op, Box::new(a), Box::new(b)), span)
    }

    fn enter(&mut self) -> Result<(), PolicyError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(self.span(), "expression nested too deeply")
                .help(format!("split it; at most {MAX_DEPTH} levels are allowed")));
        }
        Ok(())
    }

    fn expr(&mut self) -> Result<Expr, PolicyError> {
        self.enter()?;
        let r = if self.is_kw("if") {
            let start = self.bump().1;
            let c = self.expr()?;
            self.expect_kw("then", "after the condition of `if`")?;
            let a = self.expr()?;
            self.expect_kw(
                "else",
                "after the `then` branch (every `if` needs an `else`)",
            )?;
            let b = self.expr()?;
            let span = start.join(b.span);
            self.node(ExprKind::If(Box::new(c), Box::new(a), Box::new(b)), span)
        } else {
            self.or()
        };
        self.depth -= 1;
        r
    }

    fn or(&mut self) -> Result<Expr, PolicyError> {
        let mut lhs = self.and()?;
        while self.is_kw("or") {
            self.bump();
            let rhs = self.and()?;
            lhs = self.bin(BinOp::Or, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn and(&mut self) -> Result<Expr, PolicyError> {
        let mut lhs = self.not()?;
        while self.is_kw("and") {
            self.bump();
            let rhs = self.not()?;
            lhs = self.bin(BinOp::And, lhs, rhs)?;
        }
        Ok(lhs)
    }

    fn not(&mut self) -> Result<Expr, PolicyError> {
        if self.is_kw("not") {
            self.enter()?;
            let start = self.bump().1;
            let e = self.not()?;
            self.depth -= 1;
            let span = start.join(e.span);
            return self.node(ExprKind::Not(Box::new(e)), span);
        }
        self.cmp()
    }

    fn cmp(&mut self) -> Result<Expr, PolicyError> {
        let lhs = self.add()?;
        if let Tok::Cmp(op) = *self.peek() {
            self.bump();
            let rhs = self.add()?;
            if let Tok::Cmp(op2) = *self.peek() {
                return Err(syntax(
                    self.span(),
                    format!(
                        "comparisons cannot be chained: found `{}` after a comparison",
                        op2.as_str()
                    ),
                )
                .help("write `a <= b and b <= c`"));
            }
            let span = lhs.span.join(rhs.span);
            return self.node(ExprKind::Cmp(op, Box::new(lhs), Box::new(rhs)), span);
        }
        if self.is_kw("in") {
            self.bump();
            self.expect(Tok::LBracket, "after `in`")?;
            let mut items = Vec::new();
            if *self.peek() != Tok::RBracket {
                loop {
                    items.push(self.add()?);
                    if *self.peek() == Tok::Comma {
                        self.bump();
                        continue;
                    }
                    break;
                }
            }
            let end = self.expect(Tok::RBracket, "to close the list after `in`")?;
            let span = lhs.span.join(end);
            return self.node(ExprKind::In(Box::new(lhs), items), span);
        }
        Ok(lhs)
    }

    fn add(&mut self) -> Result<Expr, PolicyError> {
        let mut lhs = self.mul()?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.mul()?;
            lhs = self.bin(op, lhs, rhs)?;
        }
    }

    fn mul(&mut self) -> Result<Expr, PolicyError> {
        let mut lhs = self.unary()?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Ok(lhs),
            };
            self.bump();
            let rhs = self.unary()?;
            lhs = self.bin(op, lhs, rhs)?;
        }
    }

    fn unary(&mut self) -> Result<Expr, PolicyError> {
        if *self.peek() == Tok::Minus {
            self.enter()?;
            let start = self.bump().1;
            let e = self.unary()?;
            self.depth -= 1;
            let span = start.join(e.span);
            return self.node(ExprKind::Neg(Box::new(e)), span);
        }
        self.power()
    }

    fn power(&mut self) -> Result<Expr, PolicyError> {
        let base = self.primary()?;
        if *self.peek() == Tok::Caret {
            self.enter()?;
            self.bump();
            let exp = self.unary()?; // right-associative; allows `x^-1`
            self.depth -= 1;
            return self.bin(BinOp::Pow, base, exp);
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, PolicyError> {
        let (tok, span) = self.bump();
        match tok {
            Tok::Num(v) => self.node(ExprKind::Num(v), span),
            Tok::Str(s) => self.node(ExprKind::Str(s), span),
            Tok::LParen => {
                let e = self.expr()?;
                self.expect(Tok::RParen, "to close `(`")?;
                Ok(e)
            }
            Tok::Ident(name) => match name.as_str() {
                "true" | "false" => self.node(ExprKind::Bool(name == "true"), span),
                kw if KEYWORDS.contains(&kw) => Err(syntax(
                    span,
                    format!("expected a value, found the keyword `{kw}`"),
                )),
                _ => {
                    if *self.peek() == Tok::LParen {
                        self.bump();
                        let mut args = Vec::new();
                        if *self.peek() != Tok::RParen {
                            loop {
                                args.push(self.expr()?);
                                if *self.peek() == Tok::Comma {
                                    self.bump();
                                    continue;
                                }
                                break;
                            }
                        }
                        let end = self.expect(Tok::RParen, "to close the argument list")?;
                        return self.node(ExprKind::Call(name, span, args), span.join(end));
                    }
                    let mut parts = vec![name];
                    let mut full = span;
                    while *self.peek() == Tok::Dot {
                        self.bump();
                        match self.bump() {
                            (Tok::Ident(p), s) => {
                                parts.push(p);
                                full = full.join(s);
                            }
                            (t, s) => {
                                return Err(syntax(
                                    s,
                                    format!("expected a name after `.`, found {}", t.describe()),
                                ))
                            }
                        }
                    }
                    self.node(ExprKind::Name(parts), full)
                }
            },
            Tok::Eof => Err(
                syntax(span, "expected a value, found the end of the expression")
                    .help("the expression is incomplete"),
            ),
            t => Err(syntax(
                span,
                format!("expected a value, found {}", t.describe()),
            )),
        }
    }
}

/// Parse one expression; `base` is the byte offset of `src` in the policy file, so the
/// spans of the result and of any error point into the file.
pub fn parse(src: &str, base: usize) -> Result<Expr, PolicyError> {
    let toks = lex(src, base)?;
    let mut p = Parser {
        toks,
        pos: 0,
        depth: 0,
    };
    if *p.peek() == Tok::Eof {
        return Err(syntax(p.span(), "empty expression").help("write an expression"));
    }
    let e = p.expr()?;
    if *p.peek() != Tok::Eof {
        return Err(syntax(
            p.span(),
            format!(
                "expected the end of the expression, found {}",
                p.peek().describe()
            ),
        )
        .help("is an operator missing?"));
    }
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        match parse(s, 0) {
            Ok(e) => e,
            Err(e) => unreachable!("parse of {s:?} failed: {e:?}"),
        }
    }

    #[test]
    fn unary_minus_binds_looser_than_power() {
        let e = p("-x^2");
        assert!(
            matches!(e.kind, ExprKind::Neg(ref inner) if matches!(inner.kind, ExprKind::Binary(BinOp::Pow, _, _)))
        );
    }

    #[test]
    fn spans_point_into_the_source() {
        let e = p("vx + prev.vx");
        if let ExprKind::Binary(_, _, b) = e.kind {
            assert_eq!(b.span, Span::new(5, 12));
        } else {
            unreachable!()
        }
    }

    #[test]
    fn chained_comparison_is_an_error() {
        let e = parse("a < b < c", 10).err();
        assert_eq!(e.map(|e| e.span.start), Some(16));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let src = format!("{}1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(parse(&src, 0).is_err());
        let src = "-".repeat(10_000) + "1";
        assert!(parse(&src, 0).is_err());
        let src = "not ".repeat(10_000) + "true";
        assert!(parse(&src, 0).is_err());
    }
}
