//! Derivatives of the tape: forward mode (`Tape::eval_grad`) and reverse mode
//! (`Tape::grad_reverse`, the path repair and the monitors use in production, linearised at
//! the midpoints of an interval evaluation at the point). Every check below is made on both.
//!
//! * Random smooth terms over three action inputs, at random points away from kinks: each
//!   partial derivative must match a Richardson-extrapolated central finite difference, and
//!   the value must match a plain `f64` evaluation of the term.
//! * Random polynomial terms: the value and every partial derivative must match the exact
//!   rational ones to 1e-12, relative to the magnitude of the computation (the same
//!   computation on absolute values, which bounds the rounding error of any evaluation
//!   order); with positive coefficients and inputs (no cancellation) to 1e-12 relative to
//!   the exact value itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use aioss_core::expr::typeck::{Func, Op2, Term};
use aioss_core::tape::{Inst, Tape, TapeBuilder};
use aioss_core::Interval;
use common::config;
use num_rational::BigRational;
use num_traits::{One, Signed, ToPrimitive, Zero};
use proptest::prelude::*;

const N: usize = 3;

fn bx(t: Term) -> Box<Term> {
    Box::new(t)
}
fn k(c: f64) -> Term {
    Term::Const(Interval::point(c))
}
fn add(a: Term, b: Term) -> Term {
    Term::Bin(Op2::Add, bx(a), bx(b))
}
/// `c + a^2`, a positive argument for sqrt, log, division and real powers.
fn positive(c: f64, a: Term) -> Term {
    add(k(c), Term::PowI(bx(a), 2))
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

fn smooth_term() -> impl Strategy<Value = Term> {
    let leaf = prop_oneof![
        3 => (0..N as u32).prop_map(Term::Input),
        1 => (-3.0f64..3.0).prop_map(k),
        1 => (-3i32..=3).prop_map(|c| k(f64::from(c))),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            6 => (prop::sample::select(vec![Op2::Add, Op2::Sub, Op2::Mul]), inner.clone(), inner.clone())
                .prop_map(|(o, a, b)| Term::Bin(o, bx(a), bx(b))),
            2 => (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Term::Bin(Op2::Div, bx(a), bx(positive(0.5, b)))),
            1 => (inner.clone(), inner.clone()).prop_map(|(a, b)| Term::Bin(Op2::Div, bx(a), bx(b))),
            2 => (inner.clone(), -2i32..=4).prop_map(|(a, n)| Term::PowI(bx(a), n)),
            4 => (prop::sample::select(vec![Func::Neg, Func::Sin, Func::Cos, Func::Tanh, Func::Exp]), inner.clone())
                .prop_map(|(f, a)| Term::Un(f, bx(a))),
            2 => (prop::sample::select(vec![Func::Sqrt, Func::Log]), inner.clone())
                .prop_map(|(f, a)| Term::Un(f, bx(positive(0.25, a)))),
            1 => (inner.clone(), inner.clone())
                .prop_map(|(a, b)| Term::Bin(Op2::Pow, bx(positive(1.0, a)), bx(b))),
            // Piecewise constructs, evaluated away from their kinks.
            1 => inner.clone().prop_map(|a| Term::Un(Func::Abs, bx(a))),
            1 => (prop::sample::select(vec![Op2::Min, Op2::Max]), inner.clone(), inner.clone())
                .prop_map(|(o, a, b)| Term::Bin(o, bx(a), bx(b))),
            1 => (inner.clone(), inner.clone(), inner.clone(), inner)
                .prop_map(|(a, b, c, d)| Term::If(
                    bx(Term::Bin(Op2::Lt, bx(a), bx(b))),
                    bx(c),
                    bx(d),
                )),
        ]
    })
}

fn poly_term(positive_only: bool) -> BoxedStrategy<Term> {
    let consts = if positive_only {
        prop_oneof![
            (1i32..=4).prop_map(|c| k(f64::from(c))),
            (1i32..=64).prop_map(|c| k(f64::from(c) / 16.0)),
            (0.1f64..3.0).prop_map(k),
        ]
        .boxed()
    } else {
        prop_oneof![
            (-4i32..=4).prop_map(|c| k(f64::from(c))),
            (-64i32..=64).prop_map(|c| k(f64::from(c) / 16.0)),
            (-3.0f64..3.0).prop_map(k),
        ]
        .boxed()
    };
    let leaf = prop_oneof![3 => (0..N as u32).prop_map(Term::Input), 1 => consts];
    let ops = if positive_only {
        vec![Op2::Add, Op2::Mul]
    } else {
        vec![Op2::Add, Op2::Sub, Op2::Mul]
    };
    leaf.prop_recursive(4, 24, 2, move |inner| {
        let un = if positive_only {
            inner.clone().prop_map(|a| a).boxed()
        } else {
            inner
                .clone()
                .prop_map(|a| Term::Un(Func::Neg, bx(a)))
                .boxed()
        };
        prop_oneof![
            4 => (prop::sample::select(ops.clone()), inner.clone(), inner.clone())
                .prop_map(|(o, a, b)| Term::Bin(o, bx(a), bx(b))),
            2 => (inner, 0i32..=4).prop_map(|(a, n)| Term::PowI(bx(a), n)),
            1 => un,
        ]
    })
    .boxed()
}

fn arb_point(lo: f64, hi: f64) -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(lo..hi, N)
}

/// Which inputs to differentiate with respect to, in which order.
fn arb_wrt() -> impl Strategy<Value = Vec<u32>> {
    (Just(vec![0u32, 1, 2]).prop_shuffle(), 1usize..=N).prop_map(|(p, m)| p[..m].to_vec())
}

// ---------------------------------------------------------------------------------------
// Evaluation helpers
// ---------------------------------------------------------------------------------------

fn compile(t: &Term) -> (Tape, u32) {
    let mut b = TapeBuilder::new();
    let root = b.add(t);
    (b.finish(), root)
}

/// The tape's value and gradient (with respect to `wrt`) of `root` at `x`.
fn tape_grad(tape: &Tape, root: u32, x: &[f64], wrt: &[u32]) -> (f64, Vec<f64>) {
    let n = wrt.len();
    let mut vals = vec![0.0; tape.len()];
    let mut grads = vec![0.0; tape.len() * n];
    tape.eval_grad(x, wrt, &mut vals, &mut grads);
    let r = root as usize;
    (vals[r], grads[r * n..(r + 1) * n].to_vec())
}

/// The reverse-mode gradient (with respect to `wrt`) of `root` at `x`, as production
/// computes it: an interval evaluation at the point, the root's cone, `grad_reverse` over
/// it, and each input's adjoint (summed over its slots).
fn tape_grad_reverse(tape: &Tape, root: u32, x: &[f64], wrt: &[u32]) -> Vec<f64> {
    let inputs: Vec<Interval> = x.iter().map(|&v| Interval::point(v)).collect();
    let mut slots = tape.slots();
    tape.eval(&inputs, &mut slots);
    let cone = tape.cone(root);
    let mut adj = vec![0.0; tape.len()];
    tape.grad_reverse(&slots, &cone, root, &mut adj);
    wrt.iter()
        .map(|&k| {
            cone.iter()
                .filter(|&&i| matches!(tape.insts()[i as usize], Inst::Input(j) if j == k))
                .map(|&i| adj[i as usize])
                .sum()
        })
        .collect()
}

/// What a plain f64 evaluation saw besides the value.
#[derive(Debug, PartialEq)]
struct Trace {
    /// The side of every kink (abs, min, max, comparisons), in evaluation order.
    branches: Vec<bool>,
    /// Every intermediate value was finite (comparisons against infinities and NaNs are
    /// where this evaluation and the tape's legitimately part ways).
    finite: bool,
    /// The smallest distance to a kink (`|x|` for abs, `|a - b|` for min, max and
    /// comparisons).
    margin: f64,
}

/// A plain f64 evaluation of the term (std math functions, no tape).
fn eval_f64(t: &Term, x: &[f64]) -> (f64, Trace) {
    let mut tr = Trace {
        branches: Vec::new(),
        finite: true,
        margin: f64::INFINITY,
    };
    let v = eval_rec(t, x, &mut tr);
    (v, tr)
}

fn eval_rec(t: &Term, x: &[f64], tr: &mut Trace) -> f64 {
    let v = eval_node(t, x, tr);
    tr.finite &= v.is_finite();
    v
}

fn kink(tr: &mut Trace, side: bool, distance: f64) {
    tr.branches.push(side);
    tr.margin = tr.margin.min(distance.abs());
}

fn eval_node(t: &Term, x: &[f64], tr: &mut Trace) -> f64 {
    match t {
        Term::Const(c) => c.mid(),
        Term::Input(i) => x[*i as usize],
        Term::Un(f, a) => {
            let v = eval_rec(a, x, tr);
            match f {
                Func::Neg => -v,
                Func::Abs => {
                    kink(tr, v < 0.0, v);
                    v.abs()
                }
                Func::Sqrt => v.sqrt(),
                Func::Exp => v.exp(),
                Func::Log => v.ln(),
                Func::Sin => v.sin(),
                Func::Cos => v.cos(),
                Func::Tanh => v.tanh(),
                Func::Not => {
                    if v > 0.5 {
                        0.0
                    } else {
                        1.0
                    }
                }
            }
        }
        Term::PowI(a, n) => eval_rec(a, x, tr).powi(*n),
        Term::Bin(o, a, b) => {
            let (u, v) = (eval_rec(a, x, tr), eval_rec(b, x, tr));
            let t = |c: bool| if c { 1.0 } else { 0.0 };
            match o {
                Op2::Add => u + v,
                Op2::Sub => u - v,
                Op2::Mul => u * v,
                Op2::Div => u / v,
                Op2::Pow => u.powf(v),
                Op2::Min => {
                    kink(tr, u <= v, u - v);
                    u.min(v)
                }
                Op2::Max => {
                    kink(tr, u >= v, u - v);
                    u.max(v)
                }
                Op2::Lt => {
                    kink(tr, u < v, u - v);
                    t(u < v)
                }
                Op2::Le => {
                    kink(tr, u <= v, u - v);
                    t(u <= v)
                }
                Op2::Eq => t(u == v),
                Op2::Ne => t(u != v),
                Op2::And => t(u > 0.5 && v > 0.5),
                Op2::Or => t(u > 0.5 || v > 0.5),
            }
        }
        Term::If(c, a, b) => {
            // Both branches are evaluated (and their kinks recorded) like the tape does.
            let cv = eval_rec(c, x, tr);
            let av = eval_rec(a, x, tr);
            let bv = eval_rec(b, x, tr);
            if cv > 0.5 {
                av
            } else {
                bv
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Smooth terms against finite differences
// ---------------------------------------------------------------------------------------

/// Step of the central differences (a power of two, so `x ± h` is exact for |x| <= 2).
const H: f64 = 1.0 / 131_072.0;

fn check_against_finite_differences(t: &Term, x: &[f64], wrt: &[u32]) -> Result<(), TestCaseError> {
    let (tape, root) = compile(t);
    // A constant subterm is folded into one interval when the tape is built; a point
    // evaluation reads its midpoint. When that interval is not a point (caught:
    // `sin((1 + 1)^27)`, whose enclosure is wider than the f64 value's rounding, so its
    // midpoint 0 is not the f64 `sin(2^27)` = -0.763), there is no f64 value to compare.
    prop_assume!(
        tape.insts()
            .iter()
            .all(|i| !matches!(i, Inst::Const(c) if !c.is_point())),
        "a constant folded to an interval of positive width"
    );
    let (v, g) = tape_grad(&tape, root, x, wrt);
    let g_rev = tape_grad_reverse(&tape, root, x, wrt);
    let (v_ref, tr0) = eval_f64(t, x);
    prop_assume!(tr0.finite, "a non-finite intermediate value");
    prop_assume!(tr0.margin > 1e-6, "too close to a kink");
    prop_assume!(v.is_finite() && v_ref.is_finite() && v.abs() < 1e8);
    prop_assume!(g
        .iter()
        .chain(&g_rev)
        .all(|d| d.is_finite() && d.abs() < 1e8));
    prop_assert!(
        (v - v_ref).abs() <= 1e-9 * (1.0 + v_ref.abs()),
        "value {v} != f64 evaluation {v_ref} for {t:?} at {x:?}"
    );
    let f_at = |y: &[f64]| -> Option<f64> {
        let (fv, tr) = eval_f64(t, y);
        // The same smooth piece as at x: every kink on the same side.
        (tr.branches == tr0.branches && tr.finite && fv.is_finite())
            .then(|| tape_grad(&tape, root, y, &[]).0)
    };
    for (j, &i) in wrt.iter().enumerate() {
        let i = i as usize;
        let mut fd = [0.0; 2];
        let mut fmax = v.abs();
        for (s, h) in [H, H / 2.0].into_iter().enumerate() {
            let mut xp = x.to_vec();
            let mut xm = x.to_vec();
            xp[i] += h;
            xm[i] -= h;
            let (Some(fp), Some(fm)) = (f_at(&xp), f_at(&xm)) else {
                return Err(TestCaseError::reject("a kink within the difference step"));
            };
            fmax = fmax.max(fp.abs()).max(fm.abs());
            fd[s] = (fp - fm) / (2.0 * h);
        }
        let rich = (4.0 * fd[1] - fd[0]) / 3.0;
        // Not converged (too curved at this scale, or near a singularity): skip.
        prop_assume!((fd[0] - fd[1]).abs() <= 1e-4 * (1.0 + rich.abs()));
        let tol = 1e-6 * (1.0 + rich.abs()) + 1e-8 * fmax;
        prop_assert!(
            (g[j] - rich).abs() <= tol,
            "d/dx{i}: forward mode {} vs finite differences {rich} (h: {}, h/2: {})\nterm {t:?}\nat {x:?}",
            g[j],
            fd[0],
            fd[1],
        );
        prop_assert!(
            (g_rev[j] - rich).abs() <= tol,
            "d/dx{i}: reverse mode {} vs finite differences {rich} (h: {}, h/2: {})\nterm {t:?}\nat {x:?}",
            g_rev[j],
            fd[0],
            fd[1],
        );
    }
    Ok(())
}

#[test]
fn forward_mode_matches_finite_differences() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    const CASES: u32 = 3000;
    let accepted = AtomicUsize::new(0);
    let mut runner = proptest::test_runner::TestRunner::new(config(CASES));
    let result = runner.run(
        &(smooth_term(), arb_point(-2.0, 2.0), arb_wrt()),
        |(t, x, wrt)| {
            check_against_finite_differences(&t, &x, &wrt)?;
            accepted.fetch_add(1, Relaxed);
            Ok(())
        },
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    eprintln!(
        "finite differences: {} cases compared",
        accepted.load(Relaxed)
    );
}

// ---------------------------------------------------------------------------------------
// Polynomials against exact rational derivatives
// ---------------------------------------------------------------------------------------

const MAX_BITS: u64 = 4000;

fn rat(x: f64) -> BigRational {
    BigRational::from_float(x).expect("finite")
}

fn bits(r: &BigRational) -> u64 {
    r.numer().bits() + r.denom().bits()
}

/// Exact value and gradient (with respect to all three inputs) of a polynomial term, or
/// `None` when the rationals grow past [`MAX_BITS`].
fn exact_poly(t: &Term, x: &[BigRational]) -> Option<(BigRational, Vec<BigRational>)> {
    let zero = || vec![BigRational::zero(); N];
    match t {
        Term::Const(c) => {
            assert!(c.is_point(), "poly constants are points");
            Some((rat(c.lo), zero()))
        }
        Term::Input(i) => {
            let mut g = zero();
            g[*i as usize] = BigRational::one();
            Some((x[*i as usize].clone(), g))
        }
        Term::Un(Func::Neg, a) => {
            let (v, g) = exact_poly(a, x)?;
            Some((-v, g.into_iter().map(|d| -d).collect()))
        }
        Term::PowI(a, n) => {
            let (v, g) = exact_poly(a, x)?;
            if *n == 0 {
                return Some((BigRational::one(), zero()));
            }
            if bits(&v) * u64::from(n.unsigned_abs()) > MAX_BITS {
                return None;
            }
            let vn1 = v.pow(n - 1);
            let coef = vn1.clone() * BigRational::from_integer((*n).into());
            let d = g.iter().map(|d| coef.clone() * d).collect();
            Some((vn1 * v, d))
        }
        Term::Bin(o, a, b) => {
            let (va, ga) = exact_poly(a, x)?;
            let (vb, gb) = exact_poly(b, x)?;
            let sz = bits(&va) + bits(&vb) + ga.iter().chain(&gb).map(bits).max().unwrap_or(0);
            if sz > MAX_BITS {
                return None;
            }
            match o {
                Op2::Add => Some((va + vb, ga.iter().zip(&gb).map(|(p, q)| p + q).collect())),
                Op2::Sub => Some((va - vb, ga.iter().zip(&gb).map(|(p, q)| p - q).collect())),
                Op2::Mul => {
                    let g = ga.iter().zip(&gb).map(|(p, q)| p * &vb + &va * q).collect();
                    Some((va * vb, g))
                }
                _ => panic!("not a polynomial operation: {o:?}"),
            }
        }
        _ => panic!("not a polynomial term: {t:?}"),
    }
}

/// The same computation on absolute values: a bound on the magnitude of every partial
/// result, hence (times a few ulps per operation) on the rounding error of the value and
/// of each partial derivative.
fn magnitude(t: &Term, x: &[f64]) -> (f64, Vec<f64>) {
    match t {
        Term::Const(c) => (c.mid().abs(), vec![0.0; N]),
        Term::Input(i) => {
            let mut g = vec![0.0; N];
            g[*i as usize] = 1.0;
            (x[*i as usize].abs(), g)
        }
        Term::Un(_, a) => magnitude(a, x),
        Term::PowI(a, n) => {
            let (v, g) = magnitude(a, x);
            if *n == 0 {
                return (1.0, vec![0.0; N]);
            }
            let c = f64::from(*n) * v.powi(n - 1);
            (v.powi(*n), g.iter().map(|d| c * d).collect())
        }
        Term::Bin(o, a, b) => {
            let (va, ga) = magnitude(a, x);
            let (vb, gb) = magnitude(b, x);
            match o {
                Op2::Mul => (
                    va * vb,
                    ga.iter().zip(&gb).map(|(p, q)| p * vb + va * q).collect(),
                ),
                _ => (va + vb, ga.iter().zip(&gb).map(|(p, q)| p + q).collect()),
            }
        }
        _ => panic!("not a polynomial term: {t:?}"),
    }
}

/// `|computed - exact| <= tol`, compared exactly.
fn close(computed: f64, exact: &BigRational, tol: f64) -> bool {
    computed.is_finite() && (rat(computed) - exact).abs() <= rat(tol)
}

fn check_polynomial(
    t: &Term,
    x: &[f64],
    wrt: &[u32],
    pure_relative: bool,
) -> Result<(), TestCaseError> {
    let xr: Vec<BigRational> = x.iter().map(|&v| rat(v)).collect();
    let Some((ev, eg)) = exact_poly(t, &xr) else {
        return Err(TestCaseError::reject("rationals too large"));
    };
    let (mv, mg) = magnitude(t, x);
    prop_assume!(mv.is_finite() && mv < 1e100 && mg.iter().all(|m| m.is_finite() && *m < 1e100));
    let (tape, root) = compile(t);
    let (v, g) = tape_grad(&tape, root, x, wrt);
    let g_rev = tape_grad_reverse(&tape, root, x, wrt);
    let scale = |e: &BigRational, m: f64| {
        if pure_relative {
            e.abs().to_f64().unwrap_or(f64::INFINITY)
        } else {
            e.abs().to_f64().unwrap_or(f64::INFINITY).max(m)
        }
    };
    prop_assert!(
        close(v, &ev, 1e-12 * scale(&ev, mv)),
        "value {v} vs exact {} (~{:e})\nterm {t:?}\nat {x:?}",
        ev,
        ev.to_f64().unwrap_or(f64::NAN)
    );
    for (j, &i) in wrt.iter().enumerate() {
        let e = &eg[i as usize];
        prop_assert!(
            close(g[j], e, 1e-12 * scale(e, mg[i as usize])),
            "d/dx{i}: forward mode {} vs exact {} (~{:e}, magnitude {:e})\nterm {t:?}\nat {x:?}",
            g[j],
            e,
            e.to_f64().unwrap_or(f64::NAN),
            mg[i as usize]
        );
        prop_assert!(
            close(g_rev[j], e, 1e-12 * scale(e, mg[i as usize])),
            "d/dx{i}: reverse mode {} vs exact {} (~{:e}, magnitude {:e})\nterm {t:?}\nat {x:?}",
            g_rev[j],
            e,
            e.to_f64().unwrap_or(f64::NAN),
            mg[i as usize]
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    /// Signed polynomials: within 1e-12 of the exact derivative, relative to the magnitude
    /// of the computation.
    #[test]
    fn polynomial_derivatives_match_exact_rationals(
        t in poly_term(false),
        x in arb_point(-3.0, 3.0),
        wrt in arb_wrt(),
    ) {
        check_polynomial(&t, &x, &wrt, false)?;
    }

    /// Polynomials with positive coefficients at positive points (no cancellation): within
    /// 1e-12 relative to the exact value and derivative themselves.
    #[test]
    fn positive_polynomial_derivatives_match_exact_rationals_relatively(
        t in poly_term(true),
        x in arb_point(0.25, 2.0),
        wrt in arb_wrt(),
    ) {
        check_polynomial(&t, &x, &wrt, true)?;
    }
}

// ---------------------------------------------------------------------------------------
// Hand-written cases
// ---------------------------------------------------------------------------------------

fn x(i: u32) -> Term {
    Term::Input(i)
}

#[test]
fn known_derivatives() {
    let pi = std::f64::consts::PI;
    // (term, point, expected gradient over all three inputs)
    let cases: Vec<(Term, [f64; 3], [f64; 3])> = vec![
        (
            Term::Bin(Op2::Mul, bx(x(0)), bx(x(1))),
            [2.0, 3.0, 0.0],
            [3.0, 2.0, 0.0],
        ),
        (Term::PowI(bx(x(2)), 3), [0.0, 0.0, 2.0], [0.0, 0.0, 12.0]),
        (
            Term::PowI(bx(x(0)), -1),
            [4.0, 0.0, 0.0],
            [-1.0 / 16.0, 0.0, 0.0],
        ),
        (
            Term::Un(Func::Sin, bx(x(0))),
            [pi, 0.0, 0.0],
            [-1.0, 0.0, 0.0],
        ),
        (
            Term::Un(Func::Exp, bx(x(1))),
            [0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
        ),
        (
            Term::Un(Func::Log, bx(x(1))),
            [0.0, 4.0, 0.0],
            [0.0, 0.25, 0.0],
        ),
        (
            Term::Un(Func::Sqrt, bx(x(1))),
            [0.0, 4.0, 0.0],
            [0.0, 0.25, 0.0],
        ),
        (
            Term::Un(Func::Tanh, bx(x(2))),
            [0.0, 0.0, 0.0],
            [0.0, 0.0, 1.0],
        ),
        (
            Term::Bin(Op2::Div, bx(x(0)), bx(x(1))),
            [1.0, 2.0, 0.0],
            [0.5, -0.25, 0.0],
        ),
        (
            Term::Bin(Op2::Pow, bx(x(0)), bx(x(1))),
            [2.0, 3.0, 0.0],
            [12.0, 8.0 * std::f64::consts::LN_2, 0.0],
        ),
        (
            Term::Bin(Op2::Max, bx(x(0)), bx(Term::Un(Func::Neg, bx(x(1))))),
            [1.0, 2.0, 0.0],
            [1.0, 0.0, 0.0],
        ),
        (
            Term::If(
                bx(Term::Bin(Op2::Lt, bx(x(0)), bx(k(0.0)))),
                bx(Term::PowI(bx(x(1)), 2)),
                bx(Term::Bin(Op2::Mul, bx(k(5.0)), bx(x(2)))),
            ),
            [1.0, 3.0, 7.0],
            [0.0, 0.0, 5.0],
        ),
        (
            Term::Un(Func::Abs, bx(x(0))),
            [-2.0, 0.0, 0.0],
            [-1.0, 0.0, 0.0],
        ),
        // A shared subexpression used twice: d(x0^2 * x0^2)/dx0 = 4 x0^3.
        (
            Term::Bin(
                Op2::Mul,
                bx(Term::PowI(bx(x(0)), 2)),
                bx(Term::PowI(bx(x(0)), 2)),
            ),
            [1.5, 0.0, 0.0],
            [13.5, 0.0, 0.0],
        ),
    ];
    for (t, p, want) in cases {
        let (tape, root) = compile(&t);
        let (_, g) = tape_grad(&tape, root, &p, &[0, 1, 2]);
        for j in 0..3 {
            assert!(
                (g[j] - want[j]).abs() <= 1e-12 * (1.0 + want[j].abs()),
                "{t:?} at {p:?}: d/dx{j} = {} , want {}",
                g[j],
                want[j]
            );
        }
        let g_rev = tape_grad_reverse(&tape, root, &p, &[0, 1, 2]);
        for j in 0..3 {
            assert!(
                (g_rev[j] - want[j]).abs() <= 1e-12 * (1.0 + want[j].abs()),
                "{t:?} at {p:?}: reverse mode d/dx{j} = {} , want {}",
                g_rev[j],
                want[j]
            );
        }
        // Reordered and partial `wrt`.
        let (_, g2) = tape_grad(&tape, root, &p, &[2, 0]);
        assert_eq!(g2, vec![g[2], g[0]], "{t:?}: wrt [2, 0]");
    }
}

/// Caught (a flaky failure of `forward_mode_matches_finite_differences`, about one run in
/// fifteen): `sin((1 + (c^0)^2)^(3^3))` folds to one constant interval of positive width,
/// whose midpoint is not the f64 value. Such a case is now left out, not failed.
#[test]
fn a_constant_folded_to_a_wide_interval_is_not_compared_at_a_point() {
    let k = |x: f64| Term::Const(Interval::point(x));
    let t = Term::Un(
        Func::Sin,
        Box::new(Term::Bin(
            Op2::Pow,
            Box::new(Term::Bin(
                Op2::Add,
                Box::new(k(1.0)),
                Box::new(Term::PowI(
                    Box::new(Term::PowI(Box::new(k(-2.601_636_608_300_125_4)), 0)),
                    2,
                )),
            )),
            Box::new(Term::PowI(Box::new(k(3.0)), 3)),
        )),
    );
    match check_against_finite_differences(&t, &[0.0, 0.0, 0.0], &[0]) {
        Ok(()) | Err(TestCaseError::Reject(_)) => {}
        Err(e) => panic!("{e}"),
    }
}
