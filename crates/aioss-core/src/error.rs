//! Policy errors.
//!
//! A policy is refused whole when it has any error, so loading collects every error it can
//! find instead of stopping at the first one: the author fixes them in one pass. Each error
//! carries the byte span of the offending text, and [`PolicyErrors`] renders them
//! rustc/miette-style (file, line, column, the source line, a caret, and what to do).
//! The renderer is hand-written because it is forty lines and keeps the core crate's
//! dependency tree to what it needs for deciding, not for display.

use std::fmt;

/// A byte range in the policy source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// A span from `start` to `end` (byte offsets).
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }
    /// The smallest span covering both.
    pub fn join(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// What kind of policy error this is; tests and tools match on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The file is not valid TOML.
    Toml,
    /// A key that no section defines.
    UnknownKey,
    /// A required key is absent.
    MissingField,
    /// A TOML value of the wrong type, or out of its allowed range.
    InvalidValue,
    /// An expression does not parse.
    Syntax,
    /// A name that is not declared.
    UnknownName,
    /// Operands or arguments of the wrong type.
    TypeMismatch,
    /// An enum compared with a value it does not declare.
    UnknownEnumValue,
    /// A non-boolean expression where a condition is needed.
    NotBoolean,
    /// Two rules or two constraints (or two rows) with the same id.
    DuplicateId,
    /// The repair metric is not symmetric positive definite.
    MetricNotPositiveDefinite,
    /// A critical constraint was given a relaxation tolerance.
    CriticalTolerance,
    /// A barrier constraint that is not critical (G2 rests on it; it is never relaxed).
    BarrierNotCritical,
    /// A barrier or Lyapunov constraint, or `next.`, without `[dynamics]`.
    NeedsDynamics,
    /// The fallback action violates (or may violate) a critical constraint.
    FallbackNotCertified,
}

/// One error in a policy, with the span of the text it is about.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct PolicyError {
    /// What kind of error.
    pub kind: ErrorKind,
    /// Lowercase message; user text appears in backticks.
    pub message: String,
    /// Where in the source.
    pub span: Span,
    /// What to do about it.
    pub help: Option<String>,
}

impl PolicyError {
    pub(crate) fn new(kind: ErrorKind, span: Span, message: impl Into<String>) -> Self {
        PolicyError {
            kind,
            message: message.into(),
            span,
            help: None,
        }
    }
    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// Every error found in one policy file. A policy with any error is refused whole.
#[derive(Clone, Debug, thiserror::Error)]
pub struct PolicyErrors {
    /// The file name as given by the caller (used only for display).
    pub file: String,
    /// The policy source the spans refer to.
    pub text: String,
    /// The errors, in source order.
    pub errors: Vec<PolicyError>,
}

impl PolicyErrors {
    /// The (line, column) of error `i`.
    pub fn position(&self, error: &PolicyError) -> (usize, usize) {
        line_col(&self.text, error.span.start)
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            let (line, col) = self.position(e);
            writeln!(f, "error: {}", e.message)?;
            writeln!(f, "  --> {}:{}:{}", self.file, line, col)?;
            let text = self.text.lines().nth(line - 1).unwrap_or("");
            let gutter = line.to_string().len();
            writeln!(f, "{:gutter$} |", "")?;
            writeln!(f, "{line} | {text}")?;
            let line_chars = text.chars().count();
            let end_col = {
                let (el, ec) = line_col(&self.text, e.span.end);
                if el == line {
                    ec
                } else {
                    line_chars + 1
                }
            };
            let width = end_col.saturating_sub(col).max(1);
            writeln!(
                f,
                "{:gutter$} | {}{}",
                "",
                " ".repeat(col - 1),
                "^".repeat(width)
            )?;
            if let Some(help) = &e.help {
                writeln!(f, "{:gutter$} = help: {help}", "")?;
            }
        }
        write!(
            f,
            "{}: {} error{}; the policy was not loaded",
            self.file,
            self.errors.len(),
            if self.errors.len() == 1 { "" } else { "s" }
        )
    }
}
