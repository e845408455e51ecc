//! The linear fast path of Tier 1 (`aioss_core::linear`) against exact rational
//! arithmetic: for random linear margins `c + Σ kᵢ·xᵢ` over extreme doubles (tiny,
//! subnormal, huge, inexact decimals), interval coefficients and interval or point inputs,
//! the enclosure contains the exact minimum and maximum over the box — or is INVALID /
//! unbounded, never a wrong bound. Plus the exactness that keeps boundary margins
//! certifiable.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use aioss_core::linear::{blocks, eval, eval_block, eval_exact, LinearRow};
use aioss_core::{Interval, Status};
use common::{arb_double, config};
use num_rational::BigRational;
use num_traits::Zero;
use proptest::prelude::*;

fn q(x: f64) -> BigRational {
    BigRational::from_float(x).unwrap()
}

/// An interval from two doubles (ordered), or a point.
fn arb_interval() -> impl Strategy<Value = Interval> {
    prop_oneof![
        3 => arb_double().prop_map(Interval::point),
        1 => (arb_double(), arb_double()).prop_map(|(a, b)| Interval { lo: a.min(b), hi: a.max(b) }),
    ]
}

/// Exact `[min, max]` of `c + Σ kᵢ·xᵢ` over the box (each term is bilinear in its
/// coefficient and its input, so its extremes are at corners).
fn exact(row: &LinearRow, inputs: &[Interval]) -> (BigRational, BigRational) {
    let (mut lo, mut hi) = (q(row.c.lo), q(row.c.hi));
    for &(k, coef) in &row.terms {
        let x = inputs[k as usize];
        let corners = [
            q(coef.lo) * q(x.lo),
            q(coef.lo) * q(x.hi),
            q(coef.hi) * q(x.lo),
            q(coef.hi) * q(x.hi),
        ];
        lo += corners.iter().min().unwrap().clone();
        hi += corners.iter().max().unwrap().clone();
    }
    (lo, hi)
}

fn check(row: &LinearRow, inputs: &[Interval], r: Interval) -> Result<(), TestCaseError> {
    prop_assert!(!r.is_invalid(), "finite inputs gave INVALID");
    let (lo, hi) = exact(row, inputs);
    if r.lo.is_finite() {
        prop_assert!(q(r.lo) <= lo, "lo {} above the exact minimum", r.lo);
    }
    if r.hi.is_finite() {
        prop_assert!(q(r.hi) >= hi, "hi {} below the exact maximum", r.hi);
    }
    prop_assert!(r.lo <= r.hi || (r.lo.is_nan() && r.hi.is_nan()));
    Ok(())
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn linear_enclosure_contains_the_exact_range(
        c in arb_interval(),
        terms in proptest::collection::vec((0u32..4, arb_interval()), 1..8),
        inputs in proptest::collection::vec(arb_interval(), 4),
    ) {
        let row = LinearRow::new(0, c, terms);
        check(&row, &inputs, eval(&row, &inputs))?;
        check(&row, &inputs, eval_exact(&row, &inputs))?;
    }

    /// Sums that cancel to (near) zero: the fast pass cannot decide the sign and hands
    /// over to the exact one, which must still be sound.
    #[test]
    fn cancelling_sums_stay_sound(
        a in arb_double(),
        b in arb_double(),
        k in arb_double(),
    ) {
        // c + k·x0 − k·x1 + a·x2 − a·x2' with x0 = x1 and x2 = x2': exactly c.
        let row = LinearRow::new(0, Interval::point(b), vec![
                (0, Interval::point(k)),
                (1, Interval::point(-k)),
                (2, Interval::point(a)),
                (3, Interval::point(-a)),
            ]);
        let inputs = [Interval::point(a), Interval::point(a), Interval::point(k), Interval::point(k)];
        check(&row, &inputs, eval(&row, &inputs))?;
    }
}

proptest! {
    #![proptest_config(config(2000))]

    /// Rows over the same inputs, evaluated as one block (midpoint-radius form): every
    /// margin encloses the exact range.
    #[test]
    fn block_enclosures_contain_the_exact_range(
        n in 4usize..9,
        rows in proptest::collection::vec(
            (arb_interval(), proptest::collection::vec(arb_double(), 8)),
            2..5,
        ),
        inputs in proptest::collection::vec(arb_interval(), 9),
    ) {
        let rows: Vec<LinearRow> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (c, ks))| {
                // Distinct inputs (every other one, in a row-dependent order), non-zero
                // point coefficients.
                let mut terms: Vec<(u32, Interval)> = (0..n)
                    .map(|j| (j as u32, Interval::point(if ks[j] == 0.0 { 1.0 } else { ks[j] })))
                    .collect();
                terms.rotate_left(i % n);
                LinearRow::new(i as u32, c, terms)
            })
            .collect();
        let (bs, in_block) = blocks(&rows);
        prop_assert_eq!(bs.len(), 1);
        prop_assert!(in_block.iter().all(|&b| b));
        let mut seen = 0;
        let mut out = Vec::new();
        eval_block(&bs[0], &rows, &inputs, |row, r| out.push((row.clone(), r)));
        for (row, r) in &out {
            check(row, &inputs, *r)?;
            seen += 1;
        }
        prop_assert_eq!(seen, rows.len());
    }
}

/// A block's rows get the same verdicts as the rows evaluated one by one, and an invalid
/// input makes every margin of the block invalid.
#[test]
fn a_block_agrees_with_its_rows_one_by_one() {
    let rows: Vec<LinearRow> = (0..3)
        .map(|i| {
            LinearRow::new(
                i,
                Interval::point(1.0 + f64::from(i)),
                (0..5)
                    .map(|j| (j, Interval::point(f64::from(j + i) * 0.37 - 0.8)))
                    .collect(),
            )
        })
        .collect();
    let (bs, _) = blocks(&rows);
    assert_eq!(bs.len(), 1);
    for step in 0..200u32 {
        let inputs: Vec<Interval> = (0..5u32)
            .map(|j| {
                let x = f64::from((step * 31 + j * 17) % 97) / 10.0 - 4.0;
                if (step + j) % 3 == 0 {
                    Interval::new(x, x + 0.25)
                } else {
                    Interval::point(x)
                }
            })
            .collect();
        eval_block(&bs[0], &rows, &inputs, |row, r| {
            let one = eval(row, &inputs);
            let verdict = |v: Interval| (v.lo > 0.0, v.hi < 0.0);
            assert_eq!(verdict(r), verdict(one), "step {step}: {r:?} vs {one:?}");
        });
    }
    let mut bad = vec![Interval::point(1.0); 5];
    bad[2] = Interval::INVALID;
    eval_block(&bs[0], &rows, &bad, |_, r| assert!(r.is_invalid(), "{r:?}"));
}

#[test]
fn an_invalid_input_gives_an_invalid_margin() {
    let row = LinearRow::new(0, Interval::point(1.0), vec![(0, Interval::point(2.0))]);
    assert!(eval(&row, &[Interval::INVALID]).is_invalid());
    assert!(eval(&row, &[]).is_invalid());
}

#[test]
fn an_infinite_input_is_unbounded_never_a_wrong_sign() {
    let row = LinearRow::new(0, Interval::point(1.0), vec![(0, Interval::point(-2.0))]);
    let r = eval(
        &row,
        &[Interval {
            lo: 0.0,
            hi: f64::INFINITY,
        }],
    );
    assert!(r.lo == f64::NEG_INFINITY && r.hi >= 1.0, "{r:?}");
    // 0 × ∞ is 0 here, as in interval multiplication.
    let zero = LinearRow::new(0, Interval::point(1.0), vec![(0, Interval::point(0.0))]);
    assert_eq!(eval(&zero, &[Interval::ENTIRE]), Interval::point(1.0));
}

/// Caught: the first version widened every linear margin by an a-priori bound, so the
/// warehouse fallback's margins at the end stops (`lift_h + dt * lift_v <= 1.8` at
/// `lift_h = 1.8`, `lift_v = 0`, and `gear <= 0` at `gear = 0`) became `[-3e-15, …]`
/// and the policy no longer loaded.
#[test]
fn an_exact_boundary_margin_is_not_widened() {
    // 1.8 − (h + 0.1·v) at h = 1.8, v = 0.
    let row = LinearRow::new(
        0,
        Interval::point(1.8),
        vec![(0, Interval::point(-1.0)), (1, Interval::point(-0.1))],
    );
    let r = eval(&row, &[Interval::point(1.8), Interval::point(0.0)]);
    assert_eq!(r, Interval::point(0.0));
    assert!(BigRational::zero() >= q(r.lo));
    let gear = LinearRow::new(0, Interval::point(0.0), vec![(0, Interval::point(-1.0))]);
    assert_eq!(eval(&gear, &[Interval::point(0.0)]), Interval::point(0.0));
    // And a policy whose fallback sits exactly on a linear row's boundary for the top of
    // a state range loads (the fallback is certified over the whole range at load).
    let src = r#"
[policy]
name = "edge"
[action.v]
min = -1.0
max = 1.0
[action.w]
min = -1.0
max = 1.0
[action.z]
min = -1.0
max = 1.0
[state.h]
min = 0.0
max = 1.8
[fallback]
v = 0.0
w = 0.0
z = 0.0
[[constraint]]
id = "travel"
expr = "h + 0.1 * v + 0.3 * w - 0.7 * z <= 1.8"
"#;
    let p = aioss_core::load("edge.toml", src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.lattice.linear.len(), 1, "the row takes the fast path");
}

/// The fast path and the tape agree on every verdict of the bundled policies' linear rows
/// at their fallback over the declared ranges and at random points.
#[test]
fn linear_rows_agree_with_the_tape_on_every_verdict() {
    use aioss_core::tape::interpret;
    for name in ["warehouse-robot.toml", "agent-tools.toml", "i2os-v2.toml"] {
        let path = format!("{}/../../policies/{name}", env!("CARGO_MANIFEST_DIR"));
        let p = aioss_core::load(&path, &std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut inputs = p.range_inputs();
        for step in 0..50u32 {
            for (k, x) in inputs.iter_mut().enumerate() {
                if x.lo.is_finite() && x.hi.is_finite() && x.lo < x.hi && step > 0 {
                    let t = f64::from((step * 37 + u32::try_from(k).unwrap() * 11) % 101) / 100.0;
                    *x = Interval::point(x.lo + t * (x.hi - x.lo));
                }
            }
            for (row, lin) in p.lattice.rows.iter().filter_map(|r| {
                p.lattice
                    .linear
                    .iter()
                    .find(|l| l.margin == r.margin)
                    .map(|l| (r, l))
            }) {
                let c = &p.constraints[row.constraint];
                let r = c.rows.iter().find(|x| x.name == row.name).unwrap();
                let tape = interpret(&r.rhs, &inputs).sub(interpret(&r.lhs, &inputs));
                let fast = eval(lin, &inputs);
                let (st, _, _) = aioss_core::lattice::status_of(row.sense, tape);
                let (sf, _, _) = aioss_core::lattice::status_of(row.sense, fast);
                // The fast path may be tighter (UNCERTAIN on the tape, decided here), never
                // the opposite verdict.
                assert!(
                    st == sf || st == Status::Uncertain,
                    "{name} {}: tape {st:?} {tape:?}, fast {sf:?} {fast:?}",
                    row.name
                );
            }
        }
    }
}
