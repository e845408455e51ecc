//! AIOSS core: the policy language, its compiler, Tier 1 (the sound interval checker, in
//! [`tier1`]), Tier 2 repair and the governor.
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
//! let inputs = policy.range_inputs(); // every state over its declared range
//! let lattice = &policy.lattice;
//! let mut tier1 = aioss_core::Checker::new(lattice);
//! let summary = tier1.check(lattice, &inputs, &[2.0]); // propose vx = 2.0
//! assert_eq!(summary.violated, 1);
//! assert_eq!(tier1.rows()[0].status, aioss_core::Status::Violated);
//! assert!(tier1.certify(lattice).is_err());
//! tier1.check(lattice, &inputs, &[1.5]);
//! let certified = tier1.certify(lattice).map_err(|e| format!("{e:?}"))?;
//! assert_eq!(certified.action(), &[1.5]);
//! # Ok::<(), String>(())
//! ```
#![deny(missing_docs)]

pub mod contract;
pub mod error;
pub mod expr;
pub mod failure;
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
pub use governor::{Decision, Governor, InputCode, InputError, Outcome, Proposal};
pub use interval::{Interval, Truth};
pub use lattice::{Lattice, Row};
pub use load::load;
pub use policy::Policy;
pub use tier1::{Certified, Checker, RowCheck, Status, Summary};
