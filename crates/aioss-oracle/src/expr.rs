//! The oracle's own parser of the expression language of `spec/policy.md`.
//!
//! Written from the spec, not from the core's parser: a recursive-descent parser with the
//! conventional precedence, lowest first: `if c then a else b`; `or`; `and`; `not`;
//! comparisons `< <= > >= == !=` and `x in [..]` (not chained); `+ -`; `* /`; unary `-`;
//! `^` (right-associative, binding tighter than unary minus: `-x^2 = -(x^2)`, and `x^-1`
//! allowed). Numbers are decimal text read with `str::parse::<f64>` (correctly rounded).

use std::fmt;

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
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

/// Comparisons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
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

/// An expression as written.
#[derive(Clone, Debug, PartialEq)]
pub enum E {
    /// A number: the double its text rounds to.
    Num(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `'text'`.
    Str(String),
    /// A name, dotted or not.
    Name(Vec<String>),
    /// Unary minus.
    Neg(Box<E>),
    /// `not`.
    Not(Box<E>),
    /// Arithmetic and logic.
    Bin(Op, Box<E>, Box<E>),
    /// A comparison.
    Cmp(Cmp, Box<E>, Box<E>),
    /// `x in [..]`.
    In(Box<E>, Vec<E>),
    /// A function call.
    Call(String, Vec<E>),
    /// `if c then a else b`.
    If(Box<E>, Box<E>, Box<E>),
}

/// A syntax error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError(pub String);

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum T {
    Num(f64),
    Id(String),
    Str(String),
    Sym(&'static str),
    End,
}

fn lex(s: &str) -> Result<Vec<T>, SyntaxError> {
    let cs: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let at = |k: usize| cs.get(k).copied();
    while let Some(c) = at(i) {
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c.is_ascii_digit() || (c == '.' && at(i + 1).is_some_and(|d| d.is_ascii_digit())) {
            let start = i;
            while at(i).is_some_and(|d| d.is_ascii_digit() || d == '.') {
                i += 1;
            }
            if at(i).is_some_and(|d| d == 'e' || d == 'E') {
                let mut k = i + 1;
                if at(k).is_some_and(|d| d == '+' || d == '-') {
                    k += 1;
                }
                if at(k).is_some_and(|d| d.is_ascii_digit()) {
                    i = k;
                    while at(i).is_some_and(|d| d.is_ascii_digit()) {
                        i += 1;
                    }
                }
            }
            let text: String = cs.get(start..i).unwrap_or(&[]).iter().collect();
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => out.push(T::Num(v)),
                _ => return Err(SyntaxError(format!("bad number `{text}`"))),
            }
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while at(i).is_some_and(|d| d.is_ascii_alphanumeric() || d == '_') {
                i += 1;
            }
            out.push(T::Id(cs.get(start..i).unwrap_or(&[]).iter().collect()));
            continue;
        }
        if c == '\'' {
            let start = i + 1;
            let mut k = start;
            while at(k).is_some_and(|d| d != '\'') {
                k += 1;
            }
            if at(k).is_none() {
                return Err(SyntaxError("unterminated string".into()));
            }
            out.push(T::Str(cs.get(start..k).unwrap_or(&[]).iter().collect()));
            i = k + 1;
            continue;
        }
        let two: String = cs
            .get(i..(i + 2).min(cs.len()))
            .unwrap_or(&[])
            .iter()
            .collect();
        let sym2 = ["<=", ">=", "==", "!="].into_iter().find(|t| *t == two);
        if let Some(t) = sym2 {
            out.push(T::Sym(t));
            i += 2;
            continue;
        }
        let sym1 = [
            "(", ")", "[", "]", ",", ".", "+", "-", "*", "/", "^", "<", ">",
        ]
        .into_iter()
        .find(|t| t.starts_with(c));
        match sym1 {
            Some(t) => out.push(T::Sym(t)),
            None => return Err(SyntaxError(format!("unexpected character `{c}`"))),
        }
        i += 1;
    }
    out.push(T::End);
    Ok(out)
}

const KEYWORDS: [&str; 9] = [
    "and", "or", "not", "in", "if", "then", "else", "true", "false",
];
const MAX_DEPTH: usize = 64;

struct P {
    t: Vec<T>,
    i: usize,
    depth: usize,
}

impl P {
    fn peek(&self) -> &T {
        self.t.get(self.i).unwrap_or(&T::End)
    }
    fn next(&mut self) -> T {
        let t = self.peek().clone();
        self.i += 1;
        t
    }
    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), T::Id(s) if s == k)
    }
    fn is_sym(&self, k: &str) -> bool {
        matches!(self.peek(), T::Sym(s) if *s == k)
    }
    fn want_sym(&mut self, k: &str) -> Result<(), SyntaxError> {
        if self.is_sym(k) {
            self.i += 1;
            Ok(())
        } else {
            Err(SyntaxError(format!(
                "expected `{k}`, found {:?}",
                self.peek()
            )))
        }
    }
    fn want_kw(&mut self, k: &str) -> Result<(), SyntaxError> {
        if self.is_kw(k) {
            self.i += 1;
            Ok(())
        } else {
            Err(SyntaxError(format!(
                "expected `{k}`, found {:?}",
                self.peek()
            )))
        }
    }
    fn deeper(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            Err(SyntaxError("nested too deeply".into()))
        } else {
            Ok(())
        }
    }

    fn expr(&mut self) -> Result<E, SyntaxError> {
        self.deeper()?;
        let r = if self.is_kw("if") {
            self.i += 1;
            let c = self.expr()?;
            self.want_kw("then")?;
            let a = self.expr()?;
            self.want_kw("else")?;
            let b = self.expr()?;
            E::If(Box::new(c), Box::new(a), Box::new(b))
        } else {
            self.or()?
        };
        self.depth -= 1;
        Ok(r)
    }
    fn or(&mut self) -> Result<E, SyntaxError> {
        let mut a = self.and()?;
        while self.is_kw("or") {
            self.i += 1;
            let b = self.and()?;
            a = E::Bin(Op::Or, Box::new(a), Box::new(b));
        }
        Ok(a)
    }
    fn and(&mut self) -> Result<E, SyntaxError> {
        let mut a = self.not()?;
        while self.is_kw("and") {
            self.i += 1;
            let b = self.not()?;
            a = E::Bin(Op::And, Box::new(a), Box::new(b));
        }
        Ok(a)
    }
    fn not(&mut self) -> Result<E, SyntaxError> {
        if self.is_kw("not") {
            self.i += 1;
            self.deeper()?;
            let e = self.not()?;
            self.depth -= 1;
            return Ok(E::Not(Box::new(e)));
        }
        self.cmp()
    }
    fn cmp(&mut self) -> Result<E, SyntaxError> {
        let a = self.sum()?;
        let op = match self.peek() {
            T::Sym("<") => Some(Cmp::Lt),
            T::Sym("<=") => Some(Cmp::Le),
            T::Sym(">") => Some(Cmp::Gt),
            T::Sym(">=") => Some(Cmp::Ge),
            T::Sym("==") => Some(Cmp::Eq),
            T::Sym("!=") => Some(Cmp::Ne),
            _ => None,
        };
        if let Some(op) = op {
            self.i += 1;
            let b = self.sum()?;
            if matches!(self.peek(), T::Sym("<" | "<=" | ">" | ">=" | "==" | "!=")) {
                return Err(SyntaxError("chained comparison".into()));
            }
            return Ok(E::Cmp(op, Box::new(a), Box::new(b)));
        }
        if self.is_kw("in") {
            self.i += 1;
            self.want_sym("[")?;
            let mut items = Vec::new();
            if !self.is_sym("]") {
                loop {
                    items.push(self.sum()?);
                    if self.is_sym(",") {
                        self.i += 1;
                        continue;
                    }
                    break;
                }
            }
            self.want_sym("]")?;
            if items.is_empty() {
                return Err(SyntaxError("`in` with an empty list".into()));
            }
            return Ok(E::In(Box::new(a), items));
        }
        Ok(a)
    }
    fn sum(&mut self) -> Result<E, SyntaxError> {
        let mut a = self.product()?;
        loop {
            let op = if self.is_sym("+") {
                Op::Add
            } else if self.is_sym("-") {
                Op::Sub
            } else {
                return Ok(a);
            };
            self.i += 1;
            let b = self.product()?;
            a = E::Bin(op, Box::new(a), Box::new(b));
        }
    }
    fn product(&mut self) -> Result<E, SyntaxError> {
        let mut a = self.unary()?;
        loop {
            let op = if self.is_sym("*") {
                Op::Mul
            } else if self.is_sym("/") {
                Op::Div
            } else {
                return Ok(a);
            };
            self.i += 1;
            let b = self.unary()?;
            a = E::Bin(op, Box::new(a), Box::new(b));
        }
    }
    fn unary(&mut self) -> Result<E, SyntaxError> {
        if self.is_sym("-") {
            self.i += 1;
            self.deeper()?;
            let e = self.unary()?;
            self.depth -= 1;
            return Ok(E::Neg(Box::new(e)));
        }
        let base = self.atom()?;
        if self.is_sym("^") {
            self.i += 1;
            self.deeper()?;
            let ex = self.unary()?;
            self.depth -= 1;
            return Ok(E::Bin(Op::Pow, Box::new(base), Box::new(ex)));
        }
        Ok(base)
    }
    fn atom(&mut self) -> Result<E, SyntaxError> {
        match self.next() {
            T::Num(v) => Ok(E::Num(v)),
            T::Str(s) => Ok(E::Str(s)),
            T::Sym("(") => {
                let e = self.expr()?;
                self.want_sym(")")?;
                Ok(e)
            }
            T::Id(s) if s == "true" => Ok(E::Bool(true)),
            T::Id(s) if s == "false" => Ok(E::Bool(false)),
            T::Id(s) if KEYWORDS.contains(&s.as_str()) => Err(SyntaxError(format!(
                "keyword `{s}` where a value was expected"
            ))),
            T::Id(s) => {
                if self.is_sym("(") {
                    self.i += 1;
                    let mut args = Vec::new();
                    if !self.is_sym(")") {
                        loop {
                            args.push(self.expr()?);
                            if self.is_sym(",") {
                                self.i += 1;
                                continue;
                            }
                            break;
                        }
                    }
                    self.want_sym(")")?;
                    return Ok(E::Call(s, args));
                }
                let mut parts = vec![s];
                while self.is_sym(".") {
                    self.i += 1;
                    match self.next() {
                        T::Id(p) => parts.push(p),
                        t => {
                            return Err(SyntaxError(format!(
                                "expected a name after `.`, found {t:?}"
                            )))
                        }
                    }
                }
                Ok(E::Name(parts))
            }
            t => Err(SyntaxError(format!("expected a value, found {t:?}"))),
        }
    }
}

/// Parse one expression.
pub fn parse(s: &str) -> Result<E, SyntaxError> {
    let mut p = P {
        t: lex(s)?,
        i: 0,
        depth: 0,
    };
    if *p.peek() == T::End {
        return Err(SyntaxError("empty expression".into()));
    }
    let e = p.expr()?;
    if *p.peek() != T::End {
        return Err(SyntaxError(format!(
            "unexpected {:?} after the expression",
            p.peek()
        )));
    }
    Ok(e)
}

/// The conjuncts of a top-level `and` chain (parentheses do not hide an `and`: they build
/// no node). A constraint's `expr` has one row per conjunct.
pub fn conjuncts(e: &E) -> Vec<&E> {
    let mut out = Vec::new();
    fn go<'a>(e: &'a E, out: &mut Vec<&'a E>) {
        if let E::Bin(Op::And, a, b) = e {
            go(a, out);
            go(b, out);
        } else {
            out.push(e);
        }
    }
    go(e, &mut out);
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests: a failure is a panic")]
mod tests {
    use super::*;

    #[test]
    fn precedence() {
        let e = parse("-x^2 + 3 * y <= 4 and not a or b").unwrap();
        let E::Bin(Op::Or, l, _) = e else {
            unreachable!()
        };
        let E::Bin(Op::And, c, _) = *l else {
            unreachable!()
        };
        let E::Cmp(Cmp::Le, s, _) = *c else {
            unreachable!()
        };
        let E::Bin(Op::Add, n, _) = *s else {
            unreachable!()
        };
        assert!(matches!(*n, E::Neg(ref p) if matches!(**p, E::Bin(Op::Pow, _, _))));
        assert_eq!(
            conjuncts(&parse("a <= 1 and (b <= 2 and c <= 3)").unwrap()).len(),
            3
        );
        assert!(parse("a < b < c").is_err());
        assert!(parse("x ^ -1 + prev.vx >= next.px").is_ok());
        assert!(parse(&"(".repeat(1000)).is_err());
    }
}
