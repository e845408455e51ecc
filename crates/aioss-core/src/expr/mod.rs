//! The expression language: lexer, parser (with spans), name resolution and type checking.
//!
//! Parsing produces an untyped [`ast::Expr`] whose spans are byte offsets into the policy
//! file; [`typeck`] resolves names against the policy's declarations and produces a typed
//! [`Term`], the one form that both the compiler and the reference interpreter consume.

pub mod ast;
pub mod parse;
pub mod typeck;

pub use typeck::{Func, Term, Ty};
