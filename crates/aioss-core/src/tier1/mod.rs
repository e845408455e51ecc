//! Tier 1, the trusted checker: the one place a reviewer reads to believe G1.
//!
//! (Module documentation: see the end of this restructuring.)

pub mod interval;
pub mod linear;
pub mod tape;
pub mod verdict;
