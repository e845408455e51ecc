//! AIOSS core: the policy language, its compiler and Tier 1, the sound interval checker.
//!
//! This crate is the trusted base of the governor. It does no I/O, has no async and no
//! `unsafe`, and is deterministic: the same policy text and inputs give bit-identical
//! results on every platform (transcendental functions come from the pure-Rust `libm`, not
//! from the platform's C library).
//!
//! ```
//! let src = r#"
//! [policy]
//! name = "demo"
//! [action.vx]
//! type = "real"
//! min = -2.0
//! max = 2.0
//! [fallback]
//! vx = 0.0
//! [[constraint]]
//! id = "speed"
//! expr = "vx^2 <= 1.5^2"
//! "#;
//! let policy = aioss_core::load("demo.toml", src).map_err(|e| e.to_string())?;
//! let mut inputs = policy.range_inputs();
//! inputs[0] = aioss_core::Interval::point(2.0); // propose vx = 2.0
//! let mut scratch = policy.lattice.scratch();
//! let mut out = vec![aioss_core::RowCheck::default(); policy.lattice.rows.len()];
//! let summary = policy.lattice.check(&inputs, &mut scratch, &mut out);
//! assert_eq!(summary.violated, 1);
//! assert_eq!(out[0].status, aioss_core::Status::Violated);
//! # Ok::<(), String>(())
//! ```
#![deny(missing_docs)]

pub mod contract;
pub mod error;
pub mod expr;
pub mod governor;
pub mod lattice;
pub mod load;
pub mod policy;
pub mod qp;
pub mod repair;
pub mod tape;
pub mod tier1;

pub use tier1::{interval, linear};

pub use error::{ErrorKind, PolicyError, PolicyErrors, Span};
pub use governor::{Decision, Governor, InputError, Outcome, Proposal};
pub use interval::{Interval, Truth};
pub use lattice::{Lattice, Row, RowCheck, Scratch, Status, Summary};
pub use load::load;
pub use policy::Policy;
