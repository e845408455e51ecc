//! Differential and property tests for `aioss_core::qp`: against Clarabel on random problems,
//! against brute-force enumeration of active sets in 2–3 dimensions, warm against cold starts,
//! and the status contract.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::qp::{QpStatus, QpWorkspace};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};

/// More problems under `--release`; the debug counts keep `cargo test` well under 30 s.
const SCALE: usize = if cfg!(debug_assertions) { 1 } else { 10 };
const MAX_ITER: u32 = 1000;

/// xorshift64*: small, seeded, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    fn unif(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unif()
    }
    /// Uniform integer in lo..=hi.
    fn int(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }
    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unif();
        let u2 = self.unif();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// `minimise ½ xᵀHx + gᵀx  s.t.  a_i·x = b_i (i < meq),  a_i·x <= b_i (i >= meq)`.
#[derive(Clone, Debug)]
struct Problem {
    n: usize,
    m: usize,
    meq: usize,
    h: Vec<f64>,
    g: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Problem {
    fn objective(&self, x: &[f64]) -> f64 {
        let n = self.n;
        let mut f = 0.0;
        for i in 0..n {
            let hx: f64 = (0..n).map(|j| self.h[i * n + j] * x[j]).sum();
            f += 0.5 * x[i] * hx + self.g[i] * x[i];
        }
        f
    }
    fn row(&self, i: usize) -> &[f64] {
        &self.a[i * self.n..(i + 1) * self.n]
    }
    fn push_row(&mut self, row: &[f64], bi: f64) {
        self.a.extend_from_slice(row);
        self.b.push(bi);
        self.m += 1;
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Random SPD `W` (dense `M Mᵀ + εI`, or diagonal); returns `(H = 2W, W)`.
fn random_hessian(rng: &mut Rng, n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut w = vec![0.0; n * n];
    if rng.unif() < 0.3 {
        for i in 0..n {
            w[i * n + i] = rng.range(0.1, 10.0);
        }
    } else {
        let mm: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        // cond(W) is about 4/eps: mostly up to ~100, one time in five up to ~4e3.
        let eps = if rng.unif() < 0.2 {
            rng.range(1e-3, 1e-2)
        } else {
            rng.range(0.05, 1.0)
        };
        for i in 0..n {
            for j in 0..n {
                let s: f64 = (0..n).map(|k| mm[i * n + k] * mm[j * n + k]).sum();
                w[i * n + j] = s / n as f64 + if i == j { eps } else { 0.0 };
            }
        }
    }
    let h = w.iter().map(|v| 2.0 * v).collect();
    (h, w)
}

/// Which way a random problem's right-hand side is built.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// `b = A x_f + slack`, slack >= 0 (some exactly zero): feasible.
    Feasible,
    /// Random `b`; either verdict, decided by the solvers.
    RandomB,
    /// Contains a Farkas certificate `y >= 0, Aᵀy = 0, bᵀy <= -1`: infeasible.
    Infeasible,
}

/// Random problem: `H = 2W`, `g = -2 W u0` (so the objective is the `W`-distance to `u0`),
/// dense rows, some exact duplicates and positive multiples, `meq` equality rows through `x_f`.
fn random_problem(rng: &mut Rng, n: usize, m: usize, kind: Kind) -> Problem {
    let (h, w) = random_hessian(rng, n);
    let u0: Vec<f64> = (0..n).map(|_| 3.0 * rng.normal()).collect();
    let g: Vec<f64> = (0..n)
        .map(|i| -2.0 * dot(&w[i * n..(i + 1) * n], &u0))
        .collect();
    let xf: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    let meq = if rng.unif() < 0.25 {
        rng.int(1, (n - 1).min(3))
    } else {
        0
    };
    // Sometimes rows of very different scales (each row times 10^U(-3, 3)).
    let scaled_rows = rng.unif() < 0.2;
    let mut p = Problem {
        n,
        m: 0,
        meq,
        h,
        g,
        a: Vec::new(),
        b: Vec::new(),
    };
    let m = m.max(meq + 1);
    while p.m < m {
        let i = p.m;
        let dup = i > meq && rng.unif() < 0.05;
        let (row, bi) = if dup {
            // An exact duplicate or a positive multiple of an earlier inequality row.
            let k = rng.int(meq, i - 1);
            let s = if rng.unif() < 0.5 {
                1.0
            } else {
                rng.range(0.5, 3.0)
            };
            (
                p.row(k).iter().map(|v| s * v).collect::<Vec<_>>(),
                s * p.b[k],
            )
        } else {
            let scale = if scaled_rows {
                10f64.powf(rng.range(-3.0, 3.0))
            } else {
                1.0
            };
            let row: Vec<f64> = (0..n).map(|_| scale * rng.normal()).collect();
            let bi = if i < meq {
                dot(&row, &xf)
            } else {
                match kind {
                    Kind::RandomB => scale * rng.normal(),
                    _ => {
                        let slack = if rng.unif() < 0.1 {
                            0.0
                        } else {
                            rng.range(0.0, 2.0)
                        };
                        dot(&row, &xf) + slack
                    }
                }
            };
            (row, bi)
        };
        p.push_row(&row, bi);
    }
    if kind == Kind::Infeasible {
        // Append -Σ y_k a_k with y > 0 over a few inequality rows and b below -Σ y_k b_k.
        let k = rng.int(1, (p.m - meq).min(n + 1));
        let mut row = vec![0.0; n];
        let mut rhs = 0.0;
        for _ in 0..k {
            let r = rng.int(meq, p.m - 1);
            let y = rng.range(0.2, 2.0);
            for (acc, v) in row.iter_mut().zip(p.row(r)) {
                *acc -= y * v;
            }
            rhs -= y * p.b[r];
        }
        let margin = rng.range(0.5, 2.0);
        p.push_row(&row, rhs - margin);
        // Move it to a random inequality position.
        let pos = rng.int(meq, p.m - 1);
        let last = p.m - 1;
        for j in 0..n {
            p.a.swap(pos * n + j, last * n + j);
        }
        p.b.swap(pos, last);
    }
    p
}

#[derive(Debug)]
enum Reference {
    Solved {
        x: Vec<f64>,
        objective: f64,
        z: Vec<f64>,
        polished: bool,
        /// Clarabel's own answer, before polishing.
        raw_x: Vec<f64>,
        raw_objective: f64,
    },
    Infeasible,
    Inconclusive(SolverStatus),
}

/// Solves `p` with Clarabel at tight tolerances (1e-11 on gap and feasibility). A reference
/// must be trustworthy, so a "solved" answer counts only if Clarabel's own `(x, z)` passes the
/// KKT check; otherwise (or with no verdict) the tolerances are loosened to 1e-10, 1e-9, 1e-8.
/// Clarabel occasionally reports `Solved` at 1e-11 with an answer that fails the check (seen on
/// rows scaled over six orders of magnitude).
///
/// An accepted answer is then polished, as OSQP does: the rows Clarabel deems active
/// (`z_i > s_i`) are solved as equalities with the dense KKT solve of this file, and the result
/// replaces Clarabel's `x` if it passes the KKT check at 1e-9. An interior-point `x` is only
/// accurate to about `sqrt(gap / λ_min(H))`; the polished one to rounding error.
fn clarabel_solve(p: &Problem) -> Reference {
    let mut r = Reference::Inconclusive(SolverStatus::Unsolved);
    for tol in [1e-11, 1e-10, 1e-9, 1e-8] {
        r = clarabel_solve_with(p, tol);
        match &r {
            Reference::Infeasible => return r,
            Reference::Solved { x, z, .. } if kkt_violation(p, x, z, 1e-7).is_none() => {
                return polish(p, x, z, r.clone_raw()).unwrap_or(r);
            }
            Reference::Solved { .. } => r = Reference::Inconclusive(SolverStatus::Solved),
            Reference::Inconclusive(_) => {}
        }
    }
    r
}

impl Reference {
    fn clone_raw(&self) -> (Vec<f64>, f64) {
        match self {
            Reference::Solved {
                raw_x,
                raw_objective,
                ..
            } => (raw_x.clone(), *raw_objective),
            _ => (Vec::new(), f64::NAN),
        }
    }
}

fn polish(p: &Problem, x: &[f64], z: &[f64], raw: (Vec<f64>, f64)) -> Option<Reference> {
    // Candidates: the equalities, then rows with z_i > s_i by decreasing z_i. Keep a linearly
    // independent subset greedily (a degenerate vertex can have more than n active rows).
    let mut candidates: Vec<usize> = (p.meq..p.m)
        .filter(|&i| z[i] > p.b[i] - dot(p.row(i), x))
        .collect();
    candidates.sort_by(|&i, &j| z[j].total_cmp(&z[i]));
    let mut rows: Vec<usize> = (0..p.meq).collect();
    for i in candidates {
        if rows.len() == p.n {
            break;
        }
        rows.push(i);
        if equality_kkt(p, &rows).is_none() {
            rows.pop();
        }
    }
    // Where Clarabel's verdict on a row is ambiguous (z_i and s_i both tiny), the guess can be
    // wrong: fix it up a few times by dropping the most negative multiplier or adding the most
    // violated row.
    for _ in 0..5 {
        let (xp, zp) = equality_kkt(p, &rows)?;
        if kkt_violation(p, &xp, &zp, 1e-9).is_none() {
            return Some(Reference::Solved {
                objective: p.objective(&xp),
                x: xp,
                z: zp,
                polished: true,
                raw_x: raw.0,
                raw_objective: raw.1,
            });
        }
        let neg = (p.meq..p.m)
            .filter(|&i| zp[i] < 0.0)
            .min_by(|&i, &j| zp[i].total_cmp(&zp[j]));
        let viol = (p.meq..p.m)
            .filter(|i| !rows.contains(i))
            .max_by(|&i, &j| {
                let v = |k: usize| (dot(p.row(k), &xp) - p.b[k]) / dot(p.row(k), p.row(k)).sqrt();
                v(i).total_cmp(&v(j))
            })
            .filter(|&i| dot(p.row(i), &xp) > p.b[i]);
        match (neg, viol) {
            (Some(i), _) => rows.retain(|&r| r != i),
            (None, Some(i)) if rows.len() < p.n => rows.push(i),
            _ => return None,
        }
    }
    None
}

/// How far from the origin Clarabel's infeasibility certificate `z` rules out feasible points.
/// With `y` = `z` clipped to `y_i >= 0` on inequality rows, every feasible `x` has
/// `(Aᵀy)·x = yᵀA x <= yᵀb`, so if `yᵀb < 0` no feasible point lies within
/// `|yᵀb| / ‖Aᵀy‖` of the origin (an exact certificate, `Aᵀy = 0`, gives infinity).
fn farkas_radius(p: &Problem, z: &[f64]) -> f64 {
    let y: Vec<f64> = z
        .iter()
        .enumerate()
        .map(|(i, &v)| if i < p.meq { v } else { v.max(0.0) })
        .collect();
    let yb = dot(&y, &p.b);
    if yb >= 0.0 {
        return 0.0;
    }
    let aty: Vec<f64> = (0..p.n)
        .map(|j| (0..p.m).map(|i| p.a[i * p.n + j] * y[i]).sum())
        .collect();
    -yb / dot(&aty, &aty).sqrt()
}

/// Asserts that our `Infeasible` verdict comes with a Farkas certificate that holds up: no
/// inequality weight below zero (beyond rounding), and no feasible point within 1e3 of the
/// origin.
fn check_certificate(p: &Problem, y: &[f64]) {
    assert_eq!(y.len(), p.m);
    let ymax = y.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    assert!(
        y.iter().skip(p.meq).all(|&v| v >= -1e-12 * ymax),
        "certificate {y:?}"
    );
    let radius = farkas_radius(p, y);
    assert!(radius >= 1e3, "certificate radius {radius:e}");
}

fn clarabel_solve_with(p: &Problem, tol: f64) -> Reference {
    let n = p.n;
    // P: upper triangle of H, column by column.
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..n {
        for i in 0..=j {
            rowval.push(i);
            nzval.push(p.h[i * n + j]);
        }
        colptr.push(rowval.len());
    }
    let pm = CscMatrix::new(n, n, colptr, rowval, nzval);
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..n {
        for i in 0..p.m {
            rowval.push(i);
            nzval.push(p.a[i * n + j]);
        }
        colptr.push(rowval.len());
    }
    let am = CscMatrix::new(p.m, n, colptr, rowval, nzval);
    let mut cones = Vec::new();
    if p.meq > 0 {
        cones.push(SupportedConeT::ZeroConeT(p.meq));
    }
    if p.m > p.meq {
        cones.push(SupportedConeT::NonnegativeConeT(p.m - p.meq));
    }
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .max_iter(200)
        .tol_gap_abs(tol)
        .tol_gap_rel(tol)
        .tol_feas(tol)
        .tol_infeas_abs(10.0 * tol)
        .tol_infeas_rel(10.0 * tol)
        .tol_ktratio(1e-8)
        .build()
        .unwrap();
    let mut solver = DefaultSolver::new(&pm, &p.g, &am, &p.b, &cones, settings).unwrap();
    solver.solve();
    match solver.solution.status {
        SolverStatus::Solved | SolverStatus::AlmostSolved => Reference::Solved {
            x: solver.solution.x.clone(),
            objective: solver.solution.obj_val,
            z: solver.solution.z.clone(),
            polished: false,
            raw_x: solver.solution.x.clone(),
            raw_objective: solver.solution.obj_val,
        },
        SolverStatus::PrimalInfeasible | SolverStatus::AlmostPrimalInfeasible => {
            // The generated problems that are feasible have feasible points of norm ~10.
            if farkas_radius(p, &solver.solution.z) >= 1e3 {
                Reference::Infeasible
            } else {
                // A certificate that does not hold up is no verdict.
                Reference::Inconclusive(solver.solution.status)
            }
        }
        s => Reference::Inconclusive(s),
    }
}

fn rel_err(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1.0)
}

/// The first violated KKT condition of `(x, λ)` for `p` at relative tolerance `tol`, if any.
fn kkt_violation(p: &Problem, x: &[f64], lambda: &[f64], tol: f64) -> Option<String> {
    let n = p.n;
    if lambda.len() != p.m || x.len() != n {
        return Some("wrong lengths".into());
    }
    let scale = 1.0 + x.iter().fold(0.0f64, |s, v| s.max(v.abs()));
    for (i, &li) in lambda.iter().enumerate() {
        // Residual in units of distance to the row's hyperplane.
        let nrm = dot(p.row(i), p.row(i)).sqrt().max(1e-300);
        let r = (dot(p.row(i), x) - p.b[i]) / nrm;
        if i < p.meq {
            if r.abs() > tol * scale {
                return Some(format!("equality {i} residual {r:e}"));
            }
        } else if r > tol * scale {
            return Some(format!("row {i} violated by {r:e}"));
        } else if li < -tol {
            return Some(format!("row {i} multiplier {li:e}"));
        } else if (li * nrm * r).abs() > tol * scale * (1.0 + (li * nrm).abs()) {
            return Some(format!(
                "row {i} complementarity: multiplier {li:e}, residual {r:e}"
            ));
        }
    }
    let lmax = 1.0
        + lambda.iter().zip(0..).fold(0.0f64, |s, (v, i)| {
            s.max((v * p.row(i).iter().map(|a| a.abs()).sum::<f64>()).abs())
        });
    for k in 0..n {
        let hx: f64 = (0..n).map(|j| p.h[k * n + j] * x[j]).sum();
        let at_l: f64 = (0..p.m).map(|i| p.a[i * n + k] * lambda[i]).sum();
        let gsc = 1.0 + p.g[k].abs() + hx.abs();
        let res = hx + p.g[k] + at_l;
        if res.abs() > tol * gsc * lmax {
            return Some(format!("stationarity {k}: {res:e}"));
        }
    }
    None
}

/// Asserts the KKT conditions of a `Solved` answer, independently of any reference solver.
fn check_kkt(p: &Problem, x: &[f64], lambda: &[f64], tol: f64) {
    if let Some(why) = kkt_violation(p, x, lambda, tol) {
        panic!("KKT: {why}");
    }
}

#[test]
fn differential_against_clarabel() {
    let mut rng = Rng::new(0x5EED_0001);
    let count = 2500 * SCALE;
    let mut workspace = QpWorkspace::new(20, 110);
    let (mut n_solved, mut n_infeasible, mut n_skipped, mut n_polished) = (0, 0, 0, 0);
    let (mut worst, mut worst_raw) = (0.0f64, 0.0f64);
    for case in 0..count {
        let n = rng.int(2, 20);
        let m = rng.int(1, 100);
        let kind = match case % 4 {
            0 | 1 => Kind::Feasible,
            2 => Kind::RandomB,
            _ => Kind::Infeasible,
        };
        let p = random_problem(&mut rng, n, m, kind);
        assert_eq!(
            workspace.set_hessian(p.n, &p.h),
            QpStatus::Solved,
            "case {case}"
        );
        let ours = workspace.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
        let reference = clarabel_solve(&p);
        let status = ours.status;
        match (&reference, ours.status) {
            (
                Reference::Solved {
                    x,
                    objective,
                    polished,
                    raw_x,
                    raw_objective,
                    ..
                },
                QpStatus::Solved,
            ) => {
                n_polished += usize::from(*polished);
                let e_obj = rel_err(*objective, ours.objective);
                let e_x = x
                    .iter()
                    .zip(ours.x)
                    .map(|(a, b)| rel_err(*a, *b))
                    .fold(0.0, f64::max);
                worst = worst.max(e_obj).max(e_x);
                let e_raw = raw_x
                    .iter()
                    .zip(ours.x)
                    .map(|(a, b)| rel_err(*a, *b))
                    .fold(0.0, f64::max);
                worst_raw = worst_raw
                    .max(e_raw)
                    .max(rel_err(*raw_objective, ours.objective));
                assert!(
                    e_obj <= 1e-6 && e_x <= 1e-6,
                    "case {case} ({kind:?}, n={n}, m={}, meq={}): objective {} vs clarabel {}, \
                     x error {e_x}",
                    p.m,
                    p.meq,
                    ours.objective,
                    objective
                );
                assert!(rel_err(p.objective(ours.x), ours.objective) <= 1e-9);
                check_kkt(&p, ours.x, ours.multipliers, 1e-7);
                n_solved += 1;
            }
            (Reference::Infeasible, QpStatus::Infeasible) => {
                check_certificate(&p, ours.multipliers);
                n_infeasible += 1;
            }
            (Reference::Inconclusive(why), QpStatus::Infeasible) => {
                // Clarabel gave no verdict (or a certificate that does not hold up); ours
                // must hold up.
                eprintln!("case {case}: clarabel {why:?}, ours Infeasible (certificate checked)");
                check_certificate(&p, ours.multipliers);
                n_skipped += 1;
            }
            (Reference::Inconclusive(why), QpStatus::Solved) => {
                // Clarabel gave no verdict; our answer must still satisfy KKT.
                eprintln!("case {case}: clarabel {why:?}, ours Solved (KKT checked)");
                check_kkt(&p, ours.x, ours.multipliers, 1e-7);
                n_skipped += 1;
            }
            (r, s) => panic!(
                "case {case} ({kind:?}, n={n}, m={}): clarabel {r:?}, ours {s:?}",
                p.m
            ),
        }
        match kind {
            Kind::Feasible => assert_eq!(status, QpStatus::Solved, "case {case}"),
            Kind::Infeasible => assert_eq!(status, QpStatus::Infeasible, "case {case}"),
            Kind::RandomB => {}
        }
    }
    eprintln!(
        "clarabel differential: {count} problems, {n_solved} solved ({n_polished} with a polished \
         reference), {n_infeasible} infeasible, \
         {n_skipped} without a Clarabel verdict; worst relative difference {worst:.2e} \
         ({worst_raw:.2e} against Clarabel's unpolished answers)"
    );
    assert!(
        n_skipped * 100 <= count,
        "too many problems without a Clarabel verdict"
    );
    assert!(n_infeasible * 5 >= count, "too few infeasible problems");
}

/// Solves the square system `M y = r` (dimension `k`) by Gaussian elimination with partial
/// pivoting; `None` if (numerically) singular.
fn solve_dense(mut mat: Vec<f64>, mut r: Vec<f64>, k: usize) -> Option<Vec<f64>> {
    for c in 0..k {
        let piv = (c..k).max_by(|&i, &j| mat[i * k + c].abs().total_cmp(&mat[j * k + c].abs()))?;
        if mat[piv * k + c].abs() < 1e-10 {
            return None;
        }
        for j in 0..k {
            mat.swap(c * k + j, piv * k + j);
        }
        r.swap(c, piv);
        for i in c + 1..k {
            let f = mat[i * k + c] / mat[c * k + c];
            for j in c..k {
                mat[i * k + j] -= f * mat[c * k + j];
            }
            r[i] -= f * r[c];
        }
    }
    for c in (0..k).rev() {
        let s: f64 = (c + 1..k).map(|j| mat[c * k + j] * r[j]).sum();
        r[c] = (r[c] - s) / mat[c * k + c];
    }
    Some(r)
}

/// The minimiser of `p`'s objective over `{a_i·x = b_i, i in rows}` and its multipliers
/// (scattered to all `m` rows), from the KKT system `[H Aᵀ; A 0] [x; λ] = [-g; b]`.
fn equality_kkt(p: &Problem, rows: &[usize]) -> Option<(Vec<f64>, Vec<f64>)> {
    let n = p.n;
    let k = n + rows.len();
    let mut mat = vec![0.0; k * k];
    let mut rhs = vec![0.0; k];
    for i in 0..n {
        for j in 0..n {
            mat[i * k + j] = p.h[i * n + j];
        }
        rhs[i] = -p.g[i];
    }
    for (r, &row) in rows.iter().enumerate() {
        for j in 0..n {
            mat[j * k + n + r] = p.a[row * n + j];
            mat[(n + r) * k + j] = p.a[row * n + j];
        }
        rhs[n + r] = p.b[row];
    }
    let sol = solve_dense(mat, rhs, k)?;
    let mut lambda = vec![0.0; p.m];
    for (r, &row) in rows.iter().enumerate() {
        lambda[row] = sol[n + r];
    }
    Some((sol[..n].to_vec(), lambda))
}

/// Brute force: for every subset S of rows (|S| <= n, containing all equalities), the minimiser
/// over {a_i·x = b_i, i in S} from the KKT system; the answer is the best primal-feasible one.
/// Returns `None` when no subset gives a feasible point (infeasible problem).
fn brute_force(p: &Problem) -> Option<(Vec<f64>, f64, Vec<f64>)> {
    let n = p.n;
    let mut best: Option<(Vec<f64>, f64, Vec<f64>)> = None;
    for mask in 0u32..(1 << p.m) {
        if (mask.count_ones() as usize) > n || (0..p.meq).any(|i| mask & (1 << i) == 0) {
            continue;
        }
        let rows: Vec<usize> = (0..p.m).filter(|i| mask & (1 << i) != 0).collect();
        let Some((x, lambda)) = equality_kkt(p, &rows) else {
            continue;
        };
        // Feasible up to rounding: distance to each hyperplane relative to the size of x (a
        // nearly dependent active set can put the optimum far out, where a·x - b carries
        // rounding error of order eps ‖a‖ ‖x‖).
        let scale = 1.0 + x.iter().fold(0.0f64, |s, v| s.max(v.abs()));
        let feasible = (p.meq..p.m)
            .all(|i| (dot(p.row(i), &x) - p.b[i]) / dot(p.row(i), p.row(i)).sqrt() <= 1e-9 * scale);
        if !feasible {
            continue;
        }
        let f = p.objective(&x);
        if best.as_ref().is_none_or(|(_, bf, _)| f < *bf) {
            best = Some((x, f, lambda));
        }
    }
    best
}

#[test]
fn brute_force_small_dimensions() {
    let mut rng = Rng::new(0x5EED_0002);
    let count = 2000 * SCALE;
    let mut workspace = QpWorkspace::new(3, 8);
    let (mut solved, mut infeasible, mut n_far) = (0, 0, 0);
    let mut worst = 0.0f64;
    for case in 0..count {
        let n = rng.int(2, 3);
        let m = rng.int(1, 8);
        let (h, w) = random_hessian(&mut rng, n);
        let u0: Vec<f64> = (0..n).map(|_| 2.0 * rng.normal()).collect();
        let g: Vec<f64> = (0..n)
            .map(|i| -2.0 * dot(&w[i * n..(i + 1) * n], &u0))
            .collect();
        let a: Vec<f64> = (0..m * n).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..m).map(|_| rng.range(-1.0, 2.0)).collect();
        let meq = if m > 1 && rng.unif() < 0.2 { 1 } else { 0 };
        let p = Problem {
            n,
            m,
            meq,
            h,
            g,
            a,
            b,
        };
        workspace.set_hessian(n, &p.h);
        let ours = workspace.solve(&p.g, &p.a, &p.b, m, meq, &[], MAX_ITER);
        match brute_force(&p) {
            Some((x, f, lambda)) => {
                assert_eq!(ours.status, QpStatus::Solved, "case {case}: {p:?}");
                // The data are O(1); an optimum far out means a nearly dependent active set,
                // whose solution is only determined to about cond · eps by either method.
                let far = x.iter().any(|v| v.abs() > 1e3);
                let tol = if far { 1e-4 } else { 1e-6 };
                n_far += usize::from(far);
                let e_x = x
                    .iter()
                    .zip(ours.x)
                    .map(|(a, b)| rel_err(*a, *b))
                    .fold(0.0, f64::max);
                let e = rel_err(f, ours.objective).max(e_x);
                if !far {
                    worst = worst.max(e);
                }
                assert!(
                    e <= tol,
                    "case {case}: f {f} vs {}, x {x:?} vs {:?}",
                    ours.objective,
                    ours.x
                );
                // The brute-force optimum's own multipliers are non-negative (it is a KKT point).
                assert!(
                    lambda.iter().skip(meq).all(|&l| l >= -1e-7),
                    "case {case}: {lambda:?}"
                );
                check_kkt(&p, ours.x, ours.multipliers, 1e-8);
                solved += 1;
            }
            None => {
                assert_eq!(ours.status, QpStatus::Infeasible, "case {case}: {p:?}");
                check_certificate(&p, ours.multipliers);
                infeasible += 1;
            }
        }
    }
    eprintln!(
        "brute force: {count} problems, {solved} solved ({n_far} with the optimum beyond 1e3, \
         compared at 1e-4), {infeasible} infeasible; worst relative difference {worst:.2e}"
    );
    assert!(infeasible * 20 >= count && solved * 2 >= count);
}

#[test]
fn warm_start_matches_cold_start() {
    let mut rng = Rng::new(0x5EED_0003);
    let count = 1000 * SCALE;
    let mut cold_ws = QpWorkspace::new(20, 110);
    let mut warm_ws = QpWorkspace::new(20, 110);
    let (mut cold_iters, mut warm_iters) = (0u64, 0u64);
    for case in 0..count {
        let n = rng.int(2, 20);
        let m = rng.int(1, 100);
        let kind = if case % 5 == 4 {
            Kind::RandomB
        } else {
            Kind::Feasible
        };
        let mut p = random_problem(&mut rng, n, m, kind);
        cold_ws.set_hessian(n, &p.h);
        warm_ws.set_hessian(n, &p.h);
        let first = cold_ws.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
        let prev_active = first.active.to_vec();
        // Perturb the target slightly: g = -H u0 moves by -H δ.
        let delta: Vec<f64> = (0..n).map(|_| 0.05 * rng.normal()).collect();
        for i in 0..n {
            p.g[i] -= dot(&p.h[i * n..(i + 1) * n], &delta);
        }
        let garbage: Vec<usize> = (0..rng.int(0, 30)).map(|_| rng.int(0, p.m + 5)).collect();
        let cold = cold_ws.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
        let (cold_status, cold_x, cold_f) = (cold.status, cold.x.to_vec(), cold.objective);
        cold_iters += u64::from(cold.iterations);
        for (label, warm) in [("previous", &prev_active), ("garbage", &garbage)] {
            let s = warm_ws.solve(&p.g, &p.a, &p.b, p.m, p.meq, warm, MAX_ITER);
            assert_eq!(s.status, cold_status, "case {case} warm from {label}");
            if label == "previous" {
                warm_iters += u64::from(s.iterations);
            }
            if cold_status == QpStatus::Solved {
                assert!(rel_err(s.objective, cold_f) <= 1e-9, "case {case} {label}");
                for (a, b) in s.x.iter().zip(&cold_x) {
                    assert!(rel_err(*a, *b) <= 1e-8, "case {case} {label}: {a} vs {b}");
                }
                check_kkt(&p, s.x, s.multipliers, 1e-7);
            }
        }
    }
    eprintln!("warm start: {count} problems, cold iterations {cold_iters}, warm {warm_iters}");
    assert!(warm_iters < cold_iters, "warm start should save iterations");
}

/// `solve_same_rows` (the repairer's warm re-repair: the same rows, a new `g` and `b`)
/// against a cold `solve` of the same problem: with the last active set as the warm start
/// (whose factorisation it keeps), with garbage, and with none; also after a solve that
/// ended infeasible or was stopped by the iteration cap (nothing may be kept from those).
#[test]
fn solve_same_rows_matches_a_cold_solve() {
    let mut rng = Rng::new(0x5EED_0007);
    let count = 1000 * SCALE;
    let mut cold_ws = QpWorkspace::new(20, 110);
    let mut ws = QpWorkspace::new(20, 110);
    let (mut kept, mut solved) = (0usize, 0usize);
    for case in 0..count {
        let n = rng.int(2, 20);
        let m = rng.int(1, 100);
        let kind = if case % 5 == 4 {
            Kind::RandomB
        } else {
            Kind::Feasible
        };
        let mut p = random_problem(&mut rng, n, m, kind);
        cold_ws.set_hessian(n, &p.h);
        ws.set_hessian(n, &p.h);
        // Every tenth case, the first solve is cut short by the iteration cap.
        let cap = if case % 10 == 3 { 1 } else { MAX_ITER };
        let first = ws.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], cap);
        let mut warm = first.active.to_vec();
        for round in 0..3 {
            // A new target and slightly moved right-hand sides, the same rows.
            let delta: Vec<f64> = (0..n).map(|_| 0.05 * rng.normal()).collect();
            for i in 0..n {
                p.g[i] -= dot(&p.h[i * n..(i + 1) * n], &delta);
            }
            if round == 1 {
                for bi in p.b.iter_mut().skip(p.meq) {
                    *bi += 0.01 * rng.normal();
                }
            }
            let cold = cold_ws.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
            let (cold_status, cold_x, cold_f) = (cold.status, cold.x.to_vec(), cold.objective);
            let garbage: Vec<usize> = (0..rng.int(0, 30)).map(|_| rng.int(0, p.m + 5)).collect();
            let start = match (case + round) % 4 {
                0 => garbage,
                1 => Vec::new(),
                _ => warm.clone(),
            };
            let same_set = {
                let mut a = start.clone();
                a.sort_unstable();
                let mut b = warm.clone();
                b.sort_unstable();
                a == b && !a.is_empty()
            };
            kept += usize::from(same_set);
            let s = ws.solve_same_rows(&p.g, &p.a, &p.b, p.m, p.meq, &start, MAX_ITER);
            assert_eq!(s.status, cold_status, "case {case} round {round}");
            if cold_status == QpStatus::Solved {
                solved += 1;
                assert!(
                    rel_err(s.objective, cold_f) <= 1e-9,
                    "case {case} round {round}"
                );
                for (a, b) in s.x.iter().zip(&cold_x) {
                    assert!(
                        rel_err(*a, *b) <= 1e-8,
                        "case {case} round {round}: {a} vs {b}"
                    );
                }
                check_kkt(&p, s.x, s.multipliers, 1e-7);
            }
            warm = s.active.to_vec();
        }
    }
    eprintln!(
        "solve_same_rows: {count} problems, {solved} solved re-solves, {kept} from the kept set"
    );
    assert!(kept * 4 >= count && solved * 2 >= count);
}

#[test]
fn deterministic_bit_for_bit() {
    let mut rng = Rng::new(0x5EED_0004);
    let p = random_problem(&mut rng, 12, 80, Kind::Feasible);
    let mut ws1 = QpWorkspace::new(12, 80);
    let mut ws2 = QpWorkspace::new(20, 100);
    ws1.set_hessian(12, &p.h);
    ws2.set_hessian(12, &p.h);
    // Dirty ws2 with another problem first.
    let other = random_problem(&mut rng, 12, 60, Kind::RandomB);
    let _ = ws2.solve(
        &other.g,
        &other.a,
        &other.b,
        other.m,
        other.meq,
        &[],
        MAX_ITER,
    );
    let s1 = ws1.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
    let (x1, f1, act1) = (s1.x.to_vec(), s1.objective, s1.active.to_vec());
    let s2 = ws2.solve(&p.g, &p.a, &p.b, p.m, p.meq, &[], MAX_ITER);
    assert_eq!(s2.status, QpStatus::Solved);
    assert_eq!(f1.to_bits(), s2.objective.to_bits());
    assert!(x1.iter().zip(s2.x).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(act1, s2.active);
}

fn identity(n: usize) -> Vec<f64> {
    (0..n * n)
        .map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 })
        .collect()
}

#[test]
fn status_infeasible() {
    let mut ws = QpWorkspace::new(3, 4);
    ws.set_hessian(3, &identity(3));
    let problem = |a: &[f64], b: &[f64], meq: usize| Problem {
        n: 3,
        m: b.len(),
        meq,
        h: identity(3),
        g: vec![0.0; 3],
        a: a.to_vec(),
        b: b.to_vec(),
    };
    // a·x <= -1 and -a·x <= -1: the certificate is y ∝ (1, 1).
    let a = [1.0, 2.0, -1.0, -1.0, -2.0, 1.0];
    let s = ws.solve(&[0.1, 0.2, 0.3], &a, &[-1.0, -1.0], 2, 0, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::Infeasible);
    assert!(s.multipliers[0] > 0.0 && (s.multipliers[0] - s.multipliers[1]).abs() < 1e-12);
    check_certificate(&problem(&a, &[-1.0, -1.0], 0), s.multipliers);
    // Contradictory equalities.
    let s = ws.solve(&[0.0; 3], &a, &[1.0, 2.0], 2, 2, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::Infeasible);
    check_certificate(&problem(&a, &[1.0, 2.0], 2), s.multipliers);
    // Redundant equalities are fine.
    let s = ws.solve(&[0.0; 3], &a, &[1.0, -1.0], 2, 2, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::Solved);
    // A box that is empty in the third coordinate.
    #[rustfmt::skip]
    let a = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, -1.0];
    let b = [1.0, 1.0, 1.0, -2.0];
    let s = ws.solve(&[0.0; 3], &a, &b, 4, 0, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::Infeasible);
    check_certificate(&problem(&a, &b, 0), s.multipliers);
    // The same, warm-started from garbage, and with the rows in another order.
    let s = ws.solve(&[0.0; 3], &a, &b, 4, 0, &[3, 3, 1, 7], MAX_ITER);
    assert_eq!(s.status, QpStatus::Infeasible);
    check_certificate(&problem(&a, &b, 0), s.multipliers);
}

#[test]
fn status_max_iterations() {
    let mut ws = QpWorkspace::new(2, 2);
    ws.set_hessian(2, &identity(2));
    // min ½‖x - (5, 5)‖² s.t. x0 <= 1, x1 <= 1: two constraints to add.
    let (g, a, b) = ([-5.0, -5.0], [1.0, 0.0, 0.0, 1.0], [1.0, 1.0]);
    let s = ws.solve(&g, &a, &b, 2, 0, &[], 1);
    assert_eq!(s.status, QpStatus::MaxIterations);
    assert_eq!(s.iterations, 1);
    // The iterate is the minimiser over one active row: a lower bound on the optimum.
    assert_eq!((s.x[0], s.x[1]), (1.0, 5.0));
    assert_eq!(s.objective, -17.0);
    let s = ws.solve(&g, &a, &b, 2, 0, &[], 2);
    assert_eq!(s.status, QpStatus::Solved);
    assert_eq!((s.x[0], s.x[1]), (1.0, 1.0));
    // A warm start from the optimal active set needs no iterations at all.
    let s = ws.solve(&g, &a, &b, 2, 0, &[1, 0], 0);
    assert_eq!(s.status, QpStatus::Solved);
    assert_eq!(s.iterations, 0);
}

#[test]
fn status_numerical_error() {
    let mut ws = QpWorkspace::new(2, 2);
    assert_eq!(ws.set_hessian(2, &identity(2)), QpStatus::Solved);
    let (g, a, b) = ([1.0, 1.0], [1.0, 0.0, 0.0, 1.0], [1.0, 1.0]);
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for target in 0..3 {
            let (mut g2, mut a2, mut b2) = (g, a, b);
            match target {
                0 => g2[1] = bad,
                1 => a2[2] = bad,
                _ => b2[0] = bad,
            }
            let s = ws.solve(&g2, &a2, &b2, 2, 0, &[], MAX_ITER);
            assert_eq!(s.status, QpStatus::NumericalError);
            assert!(s.x.is_empty() && s.objective.is_nan());
        }
    }
    // The workspace still works afterwards.
    assert_eq!(
        ws.solve(&g, &a, &b, 2, 0, &[], MAX_ITER).status,
        QpStatus::Solved
    );
    // Non-SPD Hessians: indefinite, singular, negative definite, asymmetric, NaN.
    for h in [
        [1.0, 2.0, 2.0, 1.0],
        [1.0, 1.0, 1.0, 1.0],
        [-1.0, 0.0, 0.0, -1.0],
        [0.0, 0.0, 0.0, 0.0],
        [2.0, 1.0, 0.0, 2.0],
        [1.0, f64::NAN, f64::NAN, 1.0],
    ] {
        assert_eq!(ws.set_hessian(2, &h), QpStatus::NumericalError, "{h:?}");
        assert_eq!(
            ws.solve(&g, &a, &b, 2, 0, &[], MAX_ITER).status,
            QpStatus::NumericalError
        );
    }
    // Overflow inside the solve is reported, not propagated.
    assert_eq!(
        ws.set_hessian(2, &[1e-300, 0.0, 0.0, 1e-300]),
        QpStatus::Solved
    );
    let s = ws.solve(&[1e300, 1e300], &a, &[1e300, 1e300], 2, 0, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::NumericalError);
}

#[test]
fn zero_rows_and_degenerate_rows_terminate() {
    let mut ws = QpWorkspace::new(3, 64);
    ws.set_hessian(3, &identity(3));
    // Zero rows: feasible iff b >= 0, no division by zero.
    let s = ws.solve(
        &[1.0, 0.0, 0.0],
        &[0.0; 6],
        &[0.0, 5.0],
        2,
        0,
        &[],
        MAX_ITER,
    );
    assert_eq!(s.status, QpStatus::Solved);
    assert_eq!(s.x, &[-1.0, 0.0, 0.0]);
    let s = ws.solve(
        &[1.0, 0.0, 0.0],
        &[0.0; 6],
        &[0.0, -1e-300],
        2,
        0,
        &[],
        MAX_ITER,
    );
    assert_eq!(s.status, QpStatus::Infeasible);
    // 60 rows through the apex of a pyramid (0, 0, 1), many of them duplicated, and the target
    // straight above the apex: a highly degenerate vertex.
    let mut a = Vec::new();
    let mut b = Vec::new();
    for k in 0..60 {
        let th = std::f64::consts::TAU * ((k % 15) as f64) / 15.0;
        let row = [th.cos(), th.sin(), 1.0];
        a.extend_from_slice(&row);
        b.push(1.0);
    }
    let s = ws.solve(&[0.0, 0.0, -5.0], &a, &b, 60, 0, &[], MAX_ITER);
    assert_eq!(s.status, QpStatus::Solved);
    assert!((s.x[2] - 1.0).abs() < 1e-12 && s.x[0].abs() < 1e-12 && s.x[1].abs() < 1e-12);
    assert!(s.iterations < 20, "{}", s.iterations);
    // Identical parallel rows at the same offset, active at the optimum.
    let a = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0];
    let s = ws.solve(
        &[-1.0, -1.0, -1.0],
        &a,
        &[1.0, 1.0, 2.0],
        3,
        0,
        &[],
        MAX_ITER,
    );
    assert_eq!(s.status, QpStatus::Solved);
    assert_eq!(s.active.len(), 1);
    assert!((s.x[0] - 1.0 / 3.0).abs() < 1e-12);
}
