//! Fallback certification when a policy loads, checked against exact rational arithmetic.
//!
//! Random small policies (1–2 real actions with ranges, 1–2 real states with random
//! bounds, a fallback, 1–3 random constraints linear or quadratic in action and state) are
//! written as TOML text and loaded with [`aioss_core::load`]. Each constraint is evaluated
//! exactly, in rationals, at the fallback and at many states of the declared box (corners,
//! zero crossings and random interior points):
//!
//! * soundness: if a sampled state violates a critical constraint, loading fails with
//!   [`ErrorKind::FallbackNotCertified`] naming that constraint; a policy that loads has
//!   no sampled violation;
//! * only critical constraints are certified, and no other error is ever reported;
//! * tightness: for constraints in which every variable occurs once (where interval
//!   evaluation gives the exact range up to rounding), a reported failure means some
//!   sampled state comes within rounding of violating it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
use aioss_core::{load, ErrorKind, PolicyErrors};
use common::{config, scale};
use num_rational::BigRational;
use num_traits::{Signed, ToPrimitive, Zero};
use proptest::prelude::*;

const ACTIONS: [&str; 2] = ["vx", "vy"];
const STATES: [&str; 2] = ["px", "py"];

fn rat(x: f64) -> BigRational {
    BigRational::from_float(x).expect("finite")
}

/// A variable: action `i` or state `j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V {
    A(usize),
    S(usize),
}

/// `coef * (product of vars)`, with at most two factors.
#[derive(Clone, Debug)]
struct Mono {
    coef: f64,
    vars: Vec<V>,
    /// Write a repeated factor as `x^2` (else `x * x`).
    square: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rel {
    Le,
    Lt,
    Ge,
    Gt,
}

#[derive(Clone, Debug)]
struct Constraint {
    terms: Vec<Mono>,
    rel: Rel,
    /// Which sampled state anchors the right-hand side, and the offset from it.
    anchor: u32,
    offset: f64,
    criticality: Option<&'static str>,
}

#[derive(Clone, Debug)]
struct Spec {
    actions: Vec<(f64, f64, f64)>, // (min, max, fallback)
    states: Vec<(f64, f64)>,
    constraints: Vec<Constraint>,
    interior: Vec<Vec<(u32, u32)>>,
}

// ---------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------

fn arb_num(span: f64) -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => (-8i32..=8).prop_map(move |k| f64::from(k) * span / 8.0),
        1 => -span..span,
        1 => (-4i32..=4).prop_map(f64::from),
    ]
}

fn arb_action() -> impl Strategy<Value = (f64, f64, f64)> {
    (
        arb_num(4.0),
        arb_num(4.0),
        prop_oneof![Just(0.0), Just(1.0), Just(0.5), 0.0f64..1.0],
    )
        .prop_map(|(a, b, t)| {
            let (lo, hi) = (a.min(b), a.max(b));
            let f = (lo + t * (hi - lo)).clamp(lo, hi);
            (lo, hi, f)
        })
}

fn arb_state() -> impl Strategy<Value = (f64, f64)> {
    prop_oneof![
        3 => (arb_num(20.0), arb_num(20.0)).prop_map(|(a, b)| (a.min(b), a.max(b))),
        1 => arb_num(20.0).prop_map(|a| (a, a)),
        1 => (arb_num(20.0), 0.0f64..1e-3).prop_map(|(a, w)| (a, a + w)),
    ]
}

fn arb_mono(n_act: usize, n_state: usize) -> impl Strategy<Value = Mono> {
    let var = prop_oneof![(0..n_act).prop_map(V::A), (0..n_state).prop_map(V::S),];
    let vars = prop_oneof![
        1 => Just(vec![]),
        3 => var.clone().prop_map(|v| vec![v]),
        4 => (var.clone(), var).prop_map(|(a, b)| vec![a, b]),
    ];
    (arb_num(5.0), vars, any::<bool>()).prop_map(|(coef, vars, square)| Mono { coef, vars, square })
}

fn arb_constraint(n_act: usize, n_state: usize) -> impl Strategy<Value = Constraint> {
    (
        prop::collection::vec(arb_mono(n_act, n_state), 1..=4),
        prop::sample::select(vec![Rel::Le, Rel::Lt, Rel::Ge, Rel::Gt]),
        any::<u32>(),
        prop::sample::select(vec![-3.0, -0.5, -1e-6, 0.0, 0.0, 1e-6, 0.5, 3.0]),
        prop::sample::select(vec![
            None,
            None,
            None,
            Some("critical"),
            Some("high"),
            Some("low"),
        ]),
    )
        .prop_map(|(terms, rel, anchor, offset, criticality)| Constraint {
            terms,
            rel,
            anchor,
            offset,
            criticality,
        })
}

fn arb_spec() -> impl Strategy<Value = Spec> {
    (1usize..=2, 1usize..=2).prop_flat_map(|(na, ns)| {
        (
            prop::collection::vec(arb_action(), na),
            prop::collection::vec(arb_state(), ns),
            prop::collection::vec(arb_constraint(na, ns), 1..=3),
            prop::collection::vec(prop::collection::vec((1u32..100, 1u32..100), ns), 8),
        )
            .prop_map(|(actions, states, constraints, interior)| Spec {
                actions,
                states,
                constraints,
                interior,
            })
    })
}

// ---------------------------------------------------------------------------------------
// Exact evaluation
// ---------------------------------------------------------------------------------------

/// The sampled states: every combination of {min, max, 0 if inside} per variable, then
/// interior points `min + t (max - min)`.
fn sample_states(states: &[(f64, f64)], interior: &[Vec<(u32, u32)>]) -> Vec<Vec<BigRational>> {
    let per_var: Vec<Vec<BigRational>> = states
        .iter()
        .map(|&(lo, hi)| {
            let mut v = vec![rat(lo), rat(hi)];
            if lo < 0.0 && hi > 0.0 {
                v.push(BigRational::zero());
            }
            v.dedup();
            v
        })
        .collect();
    let mut out: Vec<Vec<BigRational>> = vec![vec![]];
    for vals in &per_var {
        out = out
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
        out.push(
            states
                .iter()
                .zip(ts)
                .map(|(&(lo, hi), &(a, b))| {
                    let t = BigRational::new(a.into(), (a + b).into());
                    rat(lo) + t * (rat(hi) - rat(lo))
                })
                .collect(),
        );
    }
    out
}

fn lhs_exact(c: &Constraint, act: &[BigRational], st: &[BigRational]) -> BigRational {
    c.terms
        .iter()
        .map(|m| {
            m.vars.iter().fold(rat(m.coef), |acc, v| {
                acc * match *v {
                    V::A(i) => &act[i],
                    V::S(j) => &st[j],
                }
            })
        })
        .fold(BigRational::zero(), |a, b| a + b)
}

/// `rhs - lhs` for `<=`/`<`, `lhs - rhs` for `>=`/`>`: negative (or zero when strict)
/// means violated.
fn slack(c: &Constraint, lhs: &BigRational, d: &BigRational) -> BigRational {
    match c.rel {
        Rel::Le | Rel::Lt => d - lhs,
        Rel::Ge | Rel::Gt => lhs - d,
    }
}

fn violated(c: &Constraint, s: &BigRational) -> bool {
    match c.rel {
        Rel::Le | Rel::Ge => s.is_negative(),
        Rel::Lt | Rel::Gt => !s.is_positive(),
    }
}

/// Every state variable occurs at most once in the text (`x^2` counts once, `x * x`
/// twice), so interval evaluation gives the exact range up to rounding.
fn single_occurrence(c: &Constraint) -> bool {
    (0..STATES.len()).all(|j| {
        let occurrences: usize = c
            .terms
            .iter()
            .map(|m| {
                let n = m.vars.iter().filter(|v| **v == V::S(j)).count();
                if n == 2 && m.square {
                    1
                } else {
                    n
                }
            })
            .sum();
        occurrences <= 1
    })
}

fn fmt_num(x: f64) -> String {
    if x < 0.0 {
        format!("({x:?})")
    } else {
        format!("{x:?}")
    }
}

fn var_name(v: V) -> &'static str {
    match v {
        V::A(i) => ACTIONS[i],
        V::S(j) => STATES[j],
    }
}

fn expr_text(c: &Constraint, d: f64) -> String {
    let terms: Vec<String> = c
        .terms
        .iter()
        .map(|m| {
            let mut s = fmt_num(m.coef);
            match m.vars.as_slice() {
                [a, b] if a == b && m.square => s.push_str(&format!(" * {}^2", var_name(*a))),
                vars => {
                    for v in vars {
                        s.push_str(" * ");
                        s.push_str(var_name(*v));
                    }
                }
            }
            s
        })
        .collect();
    let op = match c.rel {
        Rel::Le => "<=",
        Rel::Lt => "<",
        Rel::Ge => ">=",
        Rel::Gt => ">",
    };
    format!("{} {op} {}", terms.join(" + "), fmt_num(d))
}

/// The policy text, and each constraint's right-hand side.
fn policy_text(
    spec: &Spec,
    samples: &[Vec<BigRational>],
    act: &[BigRational],
) -> (String, Vec<f64>) {
    let mut s = String::from("[policy]\nname = \"t\"\nversion = \"1\"\n");
    for (i, &(lo, hi, _)) in spec.actions.iter().enumerate() {
        s.push_str(&format!(
            "[action.{}]\ntype = \"real\"\nmin = {lo:?}\nmax = {hi:?}\n",
            ACTIONS[i]
        ));
    }
    for (j, &(lo, hi)) in spec.states.iter().enumerate() {
        s.push_str(&format!(
            "[state.{}]\nmin = {lo:?}\nmax = {hi:?}\n",
            STATES[j]
        ));
    }
    s.push_str("[fallback]\n");
    for (i, &(_, _, f)) in spec.actions.iter().enumerate() {
        s.push_str(&format!("{} = {f:?}\n", ACTIONS[i]));
    }
    let mut ds = Vec::new();
    for (k, c) in spec.constraints.iter().enumerate() {
        // Right-hand side: the exact left side at an anchor state (a sample), shifted.
        let anchor = &samples[c.anchor as usize % samples.len()];
        let at = lhs_exact(c, act, anchor).to_f64().unwrap();
        let d = at + c.offset * (1.0 + at.abs());
        ds.push(d);
        s.push_str(&format!(
            "[[constraint]]\nid = \"c{k}\"\nexpr = \"{}\"\n",
            expr_text(c, d)
        ));
        if let Some(cr) = c.criticality {
            s.push_str(&format!("criticality = \"{cr}\"\n"));
        }
    }
    (s, ds)
}

fn is_critical(c: &Constraint) -> bool {
    matches!(c.criticality, None | Some("critical"))
}

fn mentions(errs: &PolicyErrors, id: &str) -> bool {
    errs.errors
        .iter()
        .any(|e| e.message.contains(&format!("`{id}`")) || e.message.contains(&format!("`{id}#")))
}

/// A bound on the rounding error of evaluating the constraint's margin in doubles.
fn rounding_tolerance(c: &Constraint, spec: &Spec, d: f64) -> f64 {
    let mag = |v: V| match v {
        V::A(i) => spec.actions[i].2.abs(),
        V::S(j) => spec.states[j].0.abs().max(spec.states[j].1.abs()),
    };
    let total: f64 = c
        .terms
        .iter()
        .map(|m| m.vars.iter().fold(m.coef.abs(), |acc, v| acc * mag(*v)))
        .sum();
    1e-12 * (total + d.abs()) + 1e-300
}

fn check_spec(spec: &Spec) -> Result<(bool, usize), TestCaseError> {
    let act: Vec<BigRational> = spec.actions.iter().map(|a| rat(a.2)).collect();
    let samples = sample_states(&spec.states, &spec.interior);
    let (text, ds) = policy_text(spec, &samples, &act);
    let result = load("t.toml", &text);
    let mut any_violation = false;
    for (k, c) in spec.constraints.iter().enumerate() {
        let id = format!("c{k}");
        let d = rat(ds[k]);
        let slacks: Vec<BigRational> = samples
            .iter()
            .map(|st| slack(c, &lhs_exact(c, &act, st), &d))
            .collect();
        let witness = slacks.iter().position(|s| violated(c, s));
        match (&result, witness) {
            (Ok(_), Some(w)) if is_critical(c) => {
                return Err(TestCaseError::fail(format!(
                    "loaded, but the fallback violates critical `{id}` at state {:?} (slack {})\n{text}",
                    samples[w], slacks[w]
                )));
            }
            (Err(errs), Some(w)) if is_critical(c) => {
                any_violation = true;
                prop_assert!(
                    mentions(errs, &id),
                    "`{id}` is violated at {:?} but not reported:\n{errs}\n{text}",
                    samples[w]
                );
            }
            _ => {}
        }
        if let Err(errs) = &result {
            if !is_critical(c) {
                prop_assert!(
                    !mentions(errs, &id),
                    "non-critical `{id}` reported:\n{errs}\n{text}"
                );
            } else if mentions(errs, &id) && single_occurrence(c) {
                // Tight evaluation: the failure is real up to rounding.
                let min_slack = slacks.iter().min().unwrap();
                let tol = rounding_tolerance(c, spec, ds[k]);
                prop_assert!(
                    *min_slack <= rat(tol),
                    "`{id}` reported, but every sampled state satisfies it with slack >= {} (~{:e}, tolerance {tol:e}):\n{errs}\n{text}",
                    min_slack,
                    min_slack.to_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
    if let Err(errs) = &result {
        for e in &errs.errors {
            prop_assert_eq!(
                e.kind,
                ErrorKind::FallbackNotCertified,
                "unexpected error {:?}\n{}\n{}",
                e,
                errs,
                text
            );
        }
    }
    Ok((result.is_ok(), usize::from(any_violation)))
}

#[test]
fn random_policies_certify_exactly_when_sound() {
    use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
    const CASES: u32 = 1500;
    let (loaded, refused_with_witness) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = proptest::test_runner::TestRunner::new(config(CASES));
    let result = runner.run(&arb_spec(), |spec| {
        let (ok, witnessed) = check_spec(&spec)?;
        loaded.fetch_add(usize::from(ok), Relaxed);
        refused_with_witness.fetch_add(witnessed, Relaxed);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (l, r) = (loaded.load(Relaxed), refused_with_witness.load(Relaxed));
    let n = (CASES * scale()) as usize;
    eprintln!("certification: {n} policies, {l} loaded, {r} refused with an exact violating state");
    assert!(l * 5 > n, "too few policies loaded: {l} of {n}");
    assert!(
        r * 5 > n,
        "too few policies refused with a witness: {r} of {n}"
    );
}

// ---------------------------------------------------------------------------------------
// Hand-written cases
// ---------------------------------------------------------------------------------------

const HEAD: &str = r#"[policy]
name = "t"
version = "1"
[action.vx]
type = "real"
min = -2.0
max = 2.0
[state.px]
min = 0.0
max = 10.0
[state.py]
min = -3.0
max = 3.0
"#;

fn policy(fallback: f64, constraints: &[(&str, &str)]) -> String {
    let mut s = format!("{HEAD}[fallback]\nvx = {fallback:?}\n");
    for (id, e) in constraints {
        s.push_str(&format!("[[constraint]]\nid = \"{id}\"\nexpr = \"{e}\"\n"));
    }
    s
}

#[test]
fn certifiable_policy_loads() {
    let src = policy(
        0.0,
        &[
            ("prod", "vx * px <= 1"),
            ("lin", "px - vx <= 10"),
            ("quad", "vx^2 + px^2 + py^2 <= 109.001"),
            ("mixed", "0.5 * vx * px * py + 2 * py >= -6.001"),
        ],
    );
    let p = load("t.toml", &src).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.lattice.rows.len(), 4);
}

#[test]
fn uncertifiable_policy_is_refused_with_the_failing_constraint() {
    // At vx = 1 the product reaches 10 > 5 for px > 5: some states violate.
    let src = policy(1.0, &[("ok", "vx <= 2"), ("prod", "vx * px <= 5")]);
    let errs = load("t.toml", &src).map(|_| ()).unwrap_err();
    assert_eq!(errs.errors.len(), 1, "{errs}");
    let e = &errs.errors[0];
    assert_eq!(e.kind, ErrorKind::FallbackNotCertified);
    assert!(
        e.message.contains("may violate critical constraint `prod`"),
        "{}",
        e.message
    );
    assert!(e.help.as_deref().unwrap_or("").contains("`px`"), "{e:?}");
}

#[test]
fn surely_violated_constraint_says_violates() {
    let src = policy(0.0, &[("far", "vx + px >= 20")]);
    let errs = load("t.toml", &src).map(|_| ()).unwrap_err();
    assert_eq!(errs.errors.len(), 1, "{errs}");
    assert_eq!(errs.errors[0].kind, ErrorKind::FallbackNotCertified);
    assert!(errs.errors[0]
        .message
        .contains("violates critical constraint `far`"));
}

#[test]
fn boundary_cases() {
    // Just inside the bound at the worst state certifies; exactly on it with `<` does not.
    let le = policy(1.0, &[("edge", "vx * px <= 10.000001")]);
    assert!(load("t.toml", &le).is_ok());
    let lt = policy(1.0, &[("edge", "vx * px < 10")]);
    let errs = load("t.toml", &lt).map(|_| ()).unwrap_err();
    assert_eq!(errs.errors[0].kind, ErrorKind::FallbackNotCertified);
    // The exact product of the doubles 0.1 and 3 exceeds the double 0.3, so
    // `vx * py <= 0.3` with vx = 0.1 and py up to 3 must not certify.
    let src = format!(
        "{}[fallback]\nvx = 0.1\n[[constraint]]\nid = \"r\"\nexpr = \"vx * py <= 0.3\"\n",
        HEAD
    );
    assert!(
        rat(0.1) * rat(3.0) > rat(0.3),
        "premise: 0.1 * 3 > 0.3 exactly"
    );
    let errs = load("t.toml", &src).map(|_| ()).unwrap_err();
    assert_eq!(errs.errors[0].kind, ErrorKind::FallbackNotCertified);
}

#[test]
fn non_critical_constraints_are_not_certified() {
    let src = format!(
        "{}[fallback]\nvx = 1.0\n[[constraint]]\nid = \"soft\"\ncriticality = \"high\"\nexpr = \"vx * px <= 5\"\n",
        HEAD
    );
    assert!(load("t.toml", &src).is_ok());
}
