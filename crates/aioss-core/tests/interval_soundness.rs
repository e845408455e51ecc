//! Differential soundness of the interval kernel against exact rational arithmetic.
//!
//! Random term trees over `+ - * /`, integer powers, `neg`, `abs`, `min`, `max`, constants
//! and three inputs are evaluated over random input boxes (1) with the reference
//! interpreter, (2) with a compiled tape, and (3) exactly, in `BigRational`, at every
//! corner of the box and at random rational interior points. The two interval evaluations
//! must agree bit for bit; every exact value must lie inside the interval (unless the
//! interval is INVALID); and wherever the exact term is undefined (a division by zero),
//! the interval must be INVALID, so that no row can ever be SAT there.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use aioss_core::expr::typeck::{Func, Op2, Term};
use aioss_core::tape::{interpret, TapeBuilder};
use aioss_core::{Interval, Truth};
use common::{arb_double, config, scale};
use num_rational::BigRational;
use num_traits::{One, Signed, Zero};
use proptest::prelude::*;

const N_INPUTS: u32 = 3;
/// Exact evaluation gives up (skips the point) past this many bits of numerator plus
/// denominator: every f64 is at most ~2100 bits as a rational, so this still allows a few
/// products of extreme doubles, while keeping the gcd normalisations cheap in debug mode.
const MAX_BITS: u64 = 6000;

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

fn bx(a: Term) -> Box<Term> {
    Box::new(a)
}

fn leaf() -> impl Strategy<Value = Term> {
    prop_oneof![
        3 => (0..N_INPUTS).prop_map(Term::Input),
        2 => arb_double().prop_map(|c| Term::Const(Interval::point(c))),
    ]
}

/// Arithmetic terms (the fragment that has an exact rational meaning), depth <= 4.
fn arith_term() -> impl Strategy<Value = Term> {
    leaf().prop_recursive(4, 24, 2, |inner| {
        prop_oneof![
            4 => (
                prop::sample::select(vec![Op2::Add, Op2::Sub, Op2::Mul, Op2::Div, Op2::Min, Op2::Max]),
                inner.clone(),
                inner.clone()
            )
                .prop_map(|(o, a, b)| Term::Bin(o, bx(a), bx(b))),
            2 => (inner.clone(), -3i32..=4).prop_map(|(a, n)| Term::PowI(bx(a), n)),
            1 => (prop::sample::select(vec![Func::Neg, Func::Abs]), inner)
                .prop_map(|(f, a)| Term::Un(f, bx(a))),
        ]
    })
}

/// Every construct of the term language (for the compiled-vs-interpreted test).
fn any_term() -> impl Strategy<Value = Term> {
    let funcs = vec![
        Func::Neg,
        Func::Not,
        Func::Abs,
        Func::Sqrt,
        Func::Exp,
        Func::Log,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
    ];
    let ops = vec![
        Op2::Add,
        Op2::Sub,
        Op2::Mul,
        Op2::Div,
        Op2::Pow,
        Op2::Min,
        Op2::Max,
        Op2::Lt,
        Op2::Le,
        Op2::Eq,
        Op2::Ne,
        Op2::And,
        Op2::Or,
    ];
    let leaf = prop_oneof![
        3 => (0..N_INPUTS + 1).prop_map(Term::Input), // slot 3 is missing: reads INVALID
        2 => arb_double().prop_map(|c| Term::Const(Interval::point(c))),
        1 => (arb_double(), arb_double())
            .prop_map(|(a, b)| Term::Const(Interval::new(a.min(b), a.max(b)))),
        1 => prop::sample::select(vec![
            Interval::TRUE,
            Interval::FALSE,
            Interval::UNKNOWN,
            Interval::INVALID,
            Interval::ENTIRE,
        ])
        .prop_map(Term::Const),
    ];
    leaf.prop_recursive(5, 40, 3, move |inner| {
        prop_oneof![
            4 => (prop::sample::select(ops.clone()), inner.clone(), inner.clone())
                .prop_map(|(o, a, b)| Term::Bin(o, bx(a), bx(b))),
            3 => (prop::sample::select(funcs.clone()), inner.clone())
                .prop_map(|(f, a)| Term::Un(f, bx(a))),
            1 => (inner.clone(), -3i32..=5).prop_map(|(a, n)| Term::PowI(bx(a), n)),
            1 => (inner.clone(), inner.clone(), inner)
                .prop_map(|(c, a, b)| Term::If(bx(c), bx(a), bx(b))),
        ]
    })
}

/// One input: a point or an interval between two random doubles.
fn arb_input() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        1 => arb_double().prop_map(|x| (x, x)),
        2 => (arb_double(), arb_double()).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1 => (arb_double(), 0u32..64).prop_map(|(a, k)| {
            let mut b = a;
            for _ in 0..k {
                if b.next_up().is_finite() {
                    b = b.next_up();
                }
            }
            (a, b)
        }),
        // Unbounded on one or both sides.
        1 => (arb_double(), 0u8..3).prop_map(|(a, k)| match k {
            0 => (a, f64::INFINITY),
            1 => (f64::NEG_INFINITY, a),
            _ => (f64::NEG_INFINITY, f64::INFINITY),
        }),
    ]
}

fn arb_box() -> impl Strategy<Value = Vec<(f64, f64)>> {
    prop::collection::vec(arb_input(), N_INPUTS as usize)
}

/// Interior sample parameters: for each sample and each input a rational `t` in (0, 1).
fn arb_interior() -> impl Strategy<Value = Vec<Vec<(u32, u32)>>> {
    prop::collection::vec(
        prop::collection::vec((1u32..1000, 1u32..1000), N_INPUTS as usize),
        4,
    )
}

// ---------------------------------------------------------------------------------------
// Exact evaluation
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug)]
enum Ex {
    /// The exact value.
    Val(BigRational),
    /// Undefined (a division by zero somewhere).
    Undef,
    /// Too expensive to compute exactly: the point is skipped.
    TooBig,
}

fn rat(x: f64) -> BigRational {
    BigRational::from_float(x).expect("finite double")
}

fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

fn exact(t: &Term, x: &[BigRational]) -> Ex {
    match t {
        Term::Const(c) => {
            if c.is_point() && c.lo.is_finite() {
                Ex::Val(rat(c.lo))
            } else {
                Ex::TooBig
            }
        }
        Term::Input(k) => x
            .get(*k as usize)
            .map_or(Ex::TooBig, |v| Ex::Val(v.clone())),
        Term::Un(f, a) => match exact(a, x) {
            Ex::Val(v) => match f {
                Func::Neg => Ex::Val(-v),
                Func::Abs => Ex::Val(v.abs()),
                _ => Ex::TooBig,
            },
            other => other,
        },
        Term::PowI(a, n) => match exact(a, x) {
            Ex::Val(v) => {
                if *n == 0 {
                    Ex::Val(BigRational::one())
                } else if *n < 0 && v.is_zero() {
                    Ex::Undef
                } else if bits(&v) * u64::from(n.unsigned_abs()) > MAX_BITS {
                    Ex::TooBig
                } else {
                    Ex::Val(v.pow(*n))
                }
            }
            other => other,
        },
        Term::Bin(o, a, b) => {
            let (ea, eb) = (exact(a, x), exact(b, x));
            let (va, vb) = match (ea, eb) {
                (Ex::Undef, _) | (_, Ex::Undef) => return Ex::Undef,
                (Ex::TooBig, _) | (_, Ex::TooBig) => return Ex::TooBig,
                (Ex::Val(va), Ex::Val(vb)) => (va, vb),
            };
            let big = bits(&va) + bits(&vb) > MAX_BITS;
            match o {
                Op2::Add | Op2::Sub | Op2::Mul if big => Ex::TooBig,
                Op2::Add => Ex::Val(va + vb),
                Op2::Sub => Ex::Val(va - vb),
                Op2::Mul => Ex::Val(va * vb),
                Op2::Div if vb.is_zero() => Ex::Undef,
                Op2::Div if big => Ex::TooBig,
                Op2::Div => Ex::Val(va / vb),
                Op2::Min => Ex::Val(if va <= vb { va } else { vb }),
                Op2::Max => Ex::Val(if va >= vb { va } else { vb }),
                _ => Ex::TooBig,
            }
        }
        Term::If(..) => Ex::TooBig,
    }
}

/// A point of input `[lo, hi]` for the parameter `t = a / (a + b)` in (0, 1): the
/// interpolant when both bounds are finite; otherwise a finite bound moved inward by
/// `t / (1 - t) * 2^e` (e from `a`, up to 2^900), or `(2t - 1) 2^e` for the whole line.
fn interior_point(lo: f64, hi: f64, a: u32, b: u32) -> BigRational {
    let t = BigRational::new(a.into(), (a + b).into());
    let reach = BigRational::new(a.into(), b.into())
        * BigRational::from_integer(num_bigint::BigInt::from(2u8).pow((a % 4) * 300));
    match (lo.is_finite(), hi.is_finite()) {
        (true, true) => rat(lo) + t * (rat(hi) - rat(lo)),
        (true, false) => rat(lo) + reach,
        (false, true) => rat(hi) - reach,
        (false, false) => {
            let two = BigRational::from_integer(2.into());
            (t * two - BigRational::one())
                * BigRational::from_integer(num_bigint::BigInt::from(2u8).pow((b % 4) * 300))
        }
    }
}

/// The sample points of a box: every combination of finite bounds (an interior point
/// stands in for an input without one), then interior points.
fn samples(bx: &[(f64, f64)], interior: &[Vec<(u32, u32)>]) -> Vec<Vec<BigRational>> {
    let per_input: Vec<Vec<BigRational>> = bx
        .iter()
        .enumerate()
        .map(|(i, &(lo, hi))| {
            let mut v: Vec<BigRational> = [lo, hi]
                .into_iter()
                .filter(|x| x.is_finite())
                .map(rat)
                .collect();
            v.dedup();
            if v.is_empty() {
                let (a, b) = interior.first().map_or((1, 1), |ts| ts[i]);
                v.push(interior_point(lo, hi, a, b));
            }
            v
        })
        .collect();
    let mut pts: Vec<Vec<BigRational>> = vec![vec![]];
    for vals in &per_input {
        pts = pts
            .iter()
            .flat_map(|p| {
                vals.iter().map(move |v| {
                    let mut q = p.clone();
                    q.push(v.clone());
                    q
                })
            })
            .collect();
    }
    for ts in interior {
        let p: Vec<BigRational> = bx
            .iter()
            .zip(ts)
            .map(|(&(lo, hi), &(a, b))| interior_point(lo, hi, a, b))
            .collect();
        pts.push(p);
    }
    pts
}

fn intervals(bx: &[(f64, f64)]) -> Vec<Interval> {
    bx.iter().map(|&(lo, hi)| Interval::new(lo, hi)).collect()
}

/// `lo <= v <= hi`, with infinite bounds unbounded (compared exactly).
fn encloses(r: Interval, v: &BigRational) -> bool {
    let lo_ok = if r.lo == f64::NEG_INFINITY {
        true
    } else if r.lo.is_finite() {
        rat(r.lo) <= *v
    } else {
        false
    };
    let hi_ok = if r.hi == f64::INFINITY {
        true
    } else if r.hi.is_finite() {
        *v <= rat(r.hi)
    } else {
        false
    };
    lo_ok && hi_ok
}

fn well_formed(r: Interval) -> bool {
    (r.lo.is_nan() && r.hi.is_nan()) || r.lo <= r.hi
}

/// Bit-identical endpoints, except that any two NaNs are the same: the sign and payload of a
/// NaN are not specified by IEEE 754 arithmetic and differ between optimisation levels
/// (regression: `cargo test --release` failed on `x - 1/0`), and an interval with a NaN
/// endpoint is INVALID whatever its bits.
fn same_bits(a: Interval, b: Interval) -> bool {
    let eq = |x: f64, y: f64| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan());
    eq(a.lo, b.lo) && eq(a.hi, b.hi)
}

/// Interpreted and compiled results of `t` over `inputs`, asserted bit-identical.
fn eval_both(t: &Term, inputs: &[Interval]) -> Result<Interval, TestCaseError> {
    let r = interpret(t, inputs);
    let mut b = TapeBuilder::new();
    let root = b.add(t);
    let tape = b.finish();
    let mut slots = vec![Interval::INVALID; tape.len()];
    tape.eval(inputs, &mut slots);
    let c = slots[root as usize];
    prop_assert!(
        same_bits(r, c),
        "compiled {c:?} != interpreted {r:?} for {t:?} over {inputs:?}"
    );
    Ok(r)
}

/// The soundness property for one arithmetic term over one box.
fn check_enclosure(
    t: &Term,
    bx: &[(f64, f64)],
    interior: &[Vec<(u32, u32)>],
) -> Result<(usize, usize), TestCaseError> {
    let inputs = intervals(bx);
    let r = eval_both(t, &inputs)?;
    prop_assert!(well_formed(r), "malformed interval {r:?} for {t:?}");
    let (mut checked, mut undefined) = (0, 0);
    for p in samples(bx, interior) {
        match exact(t, &p) {
            Ex::Val(v) => {
                if !r.is_invalid() {
                    checked += 1;
                    prop_assert!(
                        encloses(r, &v),
                        "exact value {} (~{:e}) outside {r:?}\nterm {t:?}\nbox {bx:?}\npoint {p:?}",
                        v,
                        num_traits::ToPrimitive::to_f64(&v).unwrap_or(f64::NAN),
                    );
                }
            }
            Ex::Undef => {
                undefined += 1;
                prop_assert!(
                    r.is_invalid(),
                    "term undefined at {p:?} but the interval is {r:?}\nterm {t:?}\nbox {bx:?}"
                );
            }
            Ex::TooBig => {}
        }
    }
    Ok((checked, undefined))
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

/// Every exact value at a sampled point lies in the interval; undefined means INVALID.
/// Run through a `TestRunner` by hand so that the coverage of the run can be asserted too
/// (a checker whose every result is INVALID or ENTIRE would pass vacuously).
#[test]
fn interval_encloses_exact_rational_value() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    const CASES: u32 = 1500;
    let (checked_cases, finite_cases, undefined_cases, points) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let mut runner = proptest::test_runner::TestRunner::new(config(CASES));
    let result = runner.run(
        &(arith_term(), arb_box(), arb_interior()),
        |(t, bx, interior)| {
            let (checked, undefined) = check_enclosure(&t, &bx, &interior)?;
            let r = interpret(&t, &intervals(&bx));
            points.fetch_add(checked, Relaxed);
            if checked > 0 {
                checked_cases.fetch_add(1, Relaxed);
                if r.lo.is_finite() && r.hi.is_finite() {
                    finite_cases.fetch_add(1, Relaxed);
                }
            }
            if undefined > 0 {
                undefined_cases.fetch_add(1, Relaxed);
            }
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let n = (CASES * scale()) as usize;
    let (c, f, u) = (
        checked_cases.load(Relaxed),
        finite_cases.load(Relaxed),
        undefined_cases.load(Relaxed),
    );
    eprintln!(
        "enclosure: {n} cases, {c} with checked points ({} points), {f} of them with finite bounds, {u} with undefined points",
        points.load(Relaxed)
    );
    assert!(c * 2 > n, "too few cases were checked: {c} of {n}");
    assert!(f * 3 > n, "too few finite enclosures: {f} of {n}");
    assert!(u * 100 > n, "too few undefined cases: {u} of {n}");
}

proptest! {
    #![proptest_config(config(1000))]

    /// A decided comparison is right at every sampled point; an undefined operand leaves it
    /// undecided.
    #[test]
    fn decided_comparisons_hold_exactly(
        a in arith_term(),
        b in arith_term(),
        strict in any::<bool>(),
        bx in arb_box(),
        interior in arb_interior(),
    ) {
        let op = if strict { Op2::Lt } else { Op2::Le };
        let t = Term::Bin(op, bx_term(&a), bx_term(&b));
        let inputs = intervals(&bx);
        let r = eval_both(&t, &inputs)?;
        let truth = r.truth();
        for p in samples(&bx, &interior) {
            match (exact(&a, &p), exact(&b, &p)) {
                (Ex::Undef, _) | (_, Ex::Undef) => prop_assert_eq!(
                    truth,
                    Truth::Unknown,
                    "an operand is undefined at {:?} but {:?} is decided ({:?})",
                    p,
                    t,
                    r
                ),
                (Ex::Val(va), Ex::Val(vb)) => {
                    let holds = if strict { va < vb } else { va <= vb };
                    match truth {
                        Truth::True => prop_assert!(holds, "TRUE but fails at {p:?}: {t:?} over {bx:?}"),
                        Truth::False => prop_assert!(!holds, "FALSE but holds at {p:?}: {t:?} over {bx:?}"),
                        Truth::Unknown => {}
                    }
                }
                _ => {}
            }
        }
    }
}

fn bx_term(t: &Term) -> Box<Term> {
    Box::new(t.clone())
}

proptest! {
    #![proptest_config(config(2000))]

    /// The compiled tape (CSE, constant folding, shared slots across terms) and the
    /// reference interpreter agree bit for bit on every construct of the language.
    #[test]
    fn compiled_tape_matches_interpreter_bit_for_bit(
        terms in prop::collection::vec(any_term(), 1..4),
        boxes in arb_box(),
    ) {
        let inputs = intervals(&boxes);
        let mut b = TapeBuilder::new();
        // Each term twice (the second add must hit the memo), plus a shared sum.
        let roots: Vec<u32> = terms.iter().map(|t| b.add(t)).collect();
        let again: Vec<u32> = terms.iter().map(|t| b.add(t)).collect();
        prop_assert_eq!(&roots, &again);
        let sum = terms
            .iter()
            .cloned()
            .reduce(|x, y| Term::Bin(Op2::Add, bx(x), bx(y)))
            .unwrap();
        let sum_root = b.add(&sum);
        let tape = b.finish();
        let mut slots = vec![Interval::INVALID; tape.len()];
        tape.eval(&inputs, &mut slots);
        for (t, &root) in terms.iter().zip(&roots) {
            let r = interpret(t, &inputs);
            let c = slots[root as usize];
            prop_assert!(same_bits(r, c), "compiled {c:?} != interpreted {r:?} for {t:?} over {inputs:?}");
        }
        let r = interpret(&sum, &inputs);
        prop_assert!(same_bits(r, slots[sum_root as usize]));
        // A short input vector reads as INVALID in both.
        let short = &inputs[..1];
        tape.eval(short, &mut slots);
        for (t, &root) in terms.iter().zip(&roots) {
            let r = interpret(t, short);
            prop_assert!(same_bits(r, slots[root as usize]), "short inputs: {t:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written regression cases
// ---------------------------------------------------------------------------------------

fn pt(x: f64) -> Term {
    Term::Const(Interval::point(x))
}

fn x(i: u32) -> Term {
    Term::Input(i)
}

#[test]
fn exact_cases_at_the_edges_of_the_double_range() {
    let interior = vec![vec![(1, 1); 3], vec![(1, 2); 3]];
    let cases: Vec<(Term, Vec<(f64, f64)>)> = vec![
        // Overflowing sum and product.
        (
            Term::Bin(Op2::Add, bx(x(0)), bx(pt(f64::MAX))),
            vec![(f64::MAX, f64::MAX), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            Term::Bin(Op2::Mul, bx(x(0)), bx(x(1))),
            vec![(1e300, 1e300), (-1e300, 1e10), (0.0, 0.0)],
        ),
        // Underflowing product and quotient must not claim exactly zero.
        (
            Term::Bin(Op2::Mul, bx(x(0)), bx(x(0))),
            vec![(1e-200, 1e-200), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            Term::Bin(Op2::Div, bx(x(0)), bx(x(1))),
            vec![(5e-324, 1e-300), (1e300, f64::MAX), (0.0, 0.0)],
        ),
        // Division by an interval touching zero, and by exactly zero.
        (
            Term::Bin(Op2::Div, bx(pt(1.0)), bx(x(0))),
            vec![(0.0, 1.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            Term::Bin(
                Op2::Div,
                bx(pt(1.0)),
                bx(Term::Bin(Op2::Sub, bx(x(0)), bx(x(0)))),
            ),
            vec![(3.0, 3.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        // Negative powers of zero.
        (
            Term::PowI(bx(x(0)), -2),
            vec![(-1.0, 1.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            Term::PowI(bx(x(0)), -3),
            vec![(-0.0, -0.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        // Odd power across zero; dependency in x * x.
        (
            Term::PowI(bx(x(0)), 3),
            vec![(-3.0, 2.0), (0.0, 0.0), (0.0, 0.0)],
        ),
        (
            Term::Bin(
                Op2::Sub,
                bx(Term::PowI(bx(x(0)), 2)),
                bx(Term::Bin(Op2::Mul, bx(x(0)), bx(x(0)))),
            ),
            vec![(-0.1, 0.3), (0.0, 0.0), (0.0, 0.0)],
        ),
        // Inexact sums of nearby values (TwoSum paths).
        (
            Term::Bin(Op2::Add, bx(x(0)), bx(x(1))),
            vec![(0.1, 0.1), (0.2, 0.2), (0.0, 0.0)],
        ),
        (
            Term::Bin(Op2::Sub, bx(x(0)), bx(x(1))),
            vec![(1.0, 1.0), (1e-17, 1e-17), (0.0, 0.0)],
        ),
        (
            Term::Bin(Op2::Add, bx(x(0)), bx(x(1))),
            vec![(f64::MAX, f64::MAX), (-1e292, -1e292), (0.0, 0.0)],
        ),
        // Quotient of points that is exact, and one that is not.
        (
            Term::Bin(Op2::Div, bx(x(0)), bx(x(1))),
            vec![(1.0, 1.0), (3.0, 3.0), (0.0, 0.0)],
        ),
        (
            Term::Bin(Op2::Div, bx(x(0)), bx(x(1))),
            vec![(6.0, 6.0), (-3.0, -3.0), (0.0, 0.0)],
        ),
    ];
    for (t, b) in cases {
        let inputs = intervals(&b);
        let r = interpret(&t, &inputs);
        check_enclosure(&t, &b, &interior).unwrap_or_else(|e| panic!("{e}\nresult {r:?}"));
    }
}

#[test]
fn undefined_division_is_never_decided() {
    let t = Term::Bin(
        Op2::Le,
        bx(Term::Bin(Op2::Div, bx(pt(1.0)), bx(x(0)))),
        bx(pt(1e308)),
    );
    let inputs = intervals(&[(-1.0, 1.0), (0.0, 0.0), (0.0, 0.0)]);
    assert_eq!(interpret(&t, &inputs).truth(), Truth::Unknown);
    assert!(interpret(&Term::PowI(bx(x(0)), -1), &inputs).is_invalid());
}

#[test]
fn comparison_of_equal_points_is_decided_exactly() {
    let inputs = intervals(&[(0.5, 0.5), (0.0, 0.0), (0.0, 0.0)]);
    let le = Term::Bin(Op2::Le, bx(x(0)), bx(pt(0.5)));
    let lt = Term::Bin(Op2::Lt, bx(x(0)), bx(pt(0.5)));
    assert_eq!(interpret(&le, &inputs), Interval::TRUE);
    assert_eq!(interpret(&lt, &inputs), Interval::FALSE);
    // 0.1 + 0.2 vs 0.3: exactly 0.1+0.2 > 0.3 in the doubles' exact values? Decide in Q.
    let s = Term::Bin(Op2::Add, bx(pt(0.1)), bx(pt(0.2)));
    let cmp = Term::Bin(Op2::Le, bx(s.clone()), bx(pt(0.3)));
    let exact_holds = rat(0.1) + rat(0.2) <= rat(0.3);
    match interpret(&cmp, &inputs).truth() {
        Truth::True => assert!(exact_holds),
        Truth::False => assert!(!exact_holds),
        Truth::Unknown => {}
    }
}

/// `(x - 3)^2` is one fused instruction that also writes `x - 3`: a subset that needs only
/// the difference (a row reading `x - 3` itself) must still compute it, and every slot of
/// the fused pair must hold what the unfused tape would.
#[test]
fn a_fused_square_still_writes_the_difference_a_subset_needs() {
    let d = Term::Bin(Op2::Sub, bx(x(0)), bx(pt(3.0)));
    let sq = Term::PowI(bx(d.clone()), 2);
    let mut b = TapeBuilder::new();
    let root_sq = b.add(&sq);
    let root_d = b.add(&d);
    let tape = b.finish();
    let only_d = tape.subset(&[root_d]);
    assert!(
        only_d.histogram().iter().any(|(k, _)| k == "SqSubK"),
        "the pair was not fused: {:?}",
        only_d.histogram()
    );
    for v in [0.5, 3.0, 4.25, -1e10] {
        let inputs = [Interval::new(v, v + 0.5)];
        let mut full = tape.slots();
        tape.eval(&inputs, &mut full);
        let want_d = interpret(&d, &inputs);
        assert!(same_bits(full[root_d as usize], want_d));
        assert!(same_bits(full[root_sq as usize], interpret(&sq, &inputs)));
        let mut part = tape.slots();
        tape.eval_subset(&only_d, &inputs, &mut part);
        assert!(same_bits(part[root_d as usize], want_d), "{v}");
    }
}
