//! Tier 1, the trusted checker: the one place a reviewer reads to believe G1.
//!
//! (Module documentation: see the end of this restructuring.)

mod check;
mod fallback;
pub mod interval;
pub mod linear;
pub mod tape;
pub mod verdict;

pub use check::{ActionRange, Certified, Checker, NotCertified};
pub use fallback::certify_fallback;
pub use verdict::{status_of, RowCheck, Status, Summary};
