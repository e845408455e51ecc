//! Tier 1, the trusted checker: the one module a reviewer reads to believe G1.
//!
//! **G1 (pointwise safety)**: every action AIOSS executes satisfies every active critical
//! constraint of the policy, in exact real arithmetic, for every point of the input box the
//! governor was given (the proposal's state with its uncertainty, the governor's record of
//! `prev.`, the budgets' windows, the agent's attributes). Nothing outside this module can
//! make an executed action violate G1: the repair, the QP, the search, the monitors and the
//! server only propose, and what they propose executes only as a [`Certified`] value, which
//! only [`Checker::certify`] constructs (its field is private to `tier1::check`). The governor's
//! one other way to execute is the fallback under FAILED_GOVERNANCE (the decision then says
//! G1 did not hold), and dry-run passes the proposal through by design.
//!
//! # The soundness argument
//!
//! 1. **The kernel** ([`interval`]): every operation on intervals returns an interval that
//!    contains the exact result for every pair of points of its operands. Each basic
//!    operation is computed in round-to-nearest and widened by one ulp outward unless an
//!    error-free transformation (TwoSum, Dekker's product, exactness tests on significand
//!    lengths) proves it exact or tells the error's sign; transcendental functions are
//!    widened by four ulps around `libm`'s results; an operation undefined somewhere on
//!    its operands gives INVALID, which every comparison treats as unknown. No FPU mode is
//!    changed, so this holds on any IEEE-754 machine.
//! 2. **The tape** ([`tape`]): a slot is computed by the kernel from slots of lower index
//!    (INVARIANT tape-order, checked when the tape is built), so by induction every slot
//!    encloses the exact value of its subexpression over the input box. The linear fast
//!    path ([`linear`]) computes a row's margin `c + Σ kᵢ·xᵢ` with an a-priori bound on
//!    every rounding error (or tracks each error exactly near zero), so it encloses the
//!    exact margin too.
//! 3. **A check** ([`Checker::check`]): evaluates the margin of every row and its guard at
//!    exactly the inputs it is given (INVARIANT fresh-slots: what it does not evaluate
//!    again was evaluated at bit-identical inputs; INVARIANT gated-rows: what it skips
//!    belongs only to rows whose guard is surely false). A row is inactive only when its
//!    guard is surely false, and SAT only when its whole margin interval is on the safe
//!    side ([`verdict::status_of`]): then the exact margin is on the safe side for every
//!    point of the box.
//! 4. **Certification** ([`Checker::certify`]): the action of the last check, when every
//!    active critical row is SAT and every value lies in its variable's declared range.
//! 5. **The box** ([`inputs`], [`budget`]): the input vector is written whole from the
//!    proposal (a missing state over its declared range), and a budget's value encloses the
//!    exact sum of the amounts charged within its window (evicted only when certainly
//!    expired; an undefined amount makes it unbounded).
//!
//! What G1 assumes from outside this module, and where it is checked: that the compiled
//! rows mean what the policy says (the compiler: [`crate::load()`], [`crate::lattice`] and
//! [`crate::tape`], the second thing to read, and the differential tests against an
//! independent interpreter of the policy text); that a proposal's numbers are the doubles
//! of its JSON text (the reader's `float_roundtrip`, tested in the CLI suite); and, for the
//! load-time certificate of the fallback ([`certify_fallback`]), the declared state ranges.
//!
//! Why a module and not a crate: the boundary that matters is the one the type system
//! enforces, and a private field does that within a crate as well as across crates; the
//! compiler, which G1 also rests on, shares the policy's types with it, and one crate keeps
//! the tape's evaluation form and its builder in step. Size (non-test lines): about 2,750
//! (the test `the_trusted_module_is_as_small_as_its_documentation_says` keeps this figure
//! within 10 % of the truth).

pub mod budget;
mod check;
mod fallback;
pub mod inputs;
pub mod interval;
pub mod linear;
pub mod tape;
pub mod verdict;

pub use check::{ActionRange, Certified, Checker, NotCertified};
pub use fallback::{certified_at as fallback_certified_at, certify_fallback};
pub use verdict::{status_of, RowCheck, Status, Summary};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    /// Non-test lines of every file of this module (up to its first `#[cfg(test)]`).
    fn size() -> usize {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tier1");
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .map(|text| {
                text.lines()
                    .take_while(|l| !l.trim_start().starts_with("#[cfg(test)]"))
                    .count()
            })
            .sum()
    }

    /// The module documentation states the trusted module's size; a reviewer budgets their
    /// reading by it, so it must stay true.
    #[test]
    fn the_trusted_module_is_as_small_as_its_documentation_says() {
        let doc = include_str!("mod.rs");
        let stated: usize = doc
            .split("Size (non-test lines): about ")
            .nth(1)
            .and_then(|t| t.split_whitespace().next())
            .map(|n| n.replace(',', "").parse().unwrap())
            .unwrap();
        let actual = size();
        let off = actual.abs_diff(stated) as f64 / stated as f64;
        assert!(
            off <= 0.10,
            "the doc says {stated}, the module has {actual} lines"
        );
    }
}
