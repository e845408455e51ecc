//! Dense QP speed: `aioss_core::qp` (cold, warm) against Clarabel on the same problems.
//!
//! Problems: n = 10 variables, m = 67 dense inequality rows, `H = 2W` with `W` random SPD and
//! `g = -2 W u0` (the `W`-projection of `u0`), kept only when 5–8 rows are active at the
//! optimum. Measured per problem:
//!
//! - `cold`: `solve` with no warm start (the Hessian is factored once, up front, per problem);
//! - `cold+factor`: `set_hessian` and then `solve`;
//! - `warm`: re-solve after a small change of `u0`, warm-started from the previous active set;
//! - `clarabel`: building the matrices, `DefaultSolver::new` and `solve` (default settings,
//!   quiet), as a user would call it.
//!
//! Run: `cargo bench -p aioss-core --bench qp`. Besides Criterion's figures (each iteration
//! solves all problems once), it prints per-solve medians and the Clarabel/cold ratio.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::time::Instant;

use aioss_core::qp::{QpStatus, QpWorkspace};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const N: usize = 10;
const M: usize = 67;
const PROBLEMS: usize = 32;
const MAX_ITER: u32 = 500;

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn unif(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.unif();
        let u2 = self.unif();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

struct Problem {
    h: Vec<f64>,
    g: Vec<f64>,
    /// `g` after moving `u0` a little.
    g2: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    /// Active set of the optimum for `g`.
    active: Vec<usize>,
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Random problems with 5–8 active rows at the optimum (and at the perturbed optimum).
fn problems() -> Vec<Problem> {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
    let mut ws = QpWorkspace::new(N, M);
    let mut out = Vec::new();
    while out.len() < PROBLEMS {
        let mm: Vec<f64> = (0..N * N).map(|_| rng.normal()).collect();
        let mut w = vec![0.0; N * N];
        for i in 0..N {
            for j in 0..N {
                let s: f64 = (0..N).map(|k| mm[i * N + k] * mm[j * N + k]).sum();
                w[i * N + j] = s / N as f64 + if i == j { 0.5 } else { 0.0 };
            }
        }
        let h: Vec<f64> = w.iter().map(|v| 2.0 * v).collect();
        let a: Vec<f64> = (0..M * N).map(|_| rng.normal()).collect();
        // Feasible around the origin; u0 well outside, so several rows end up active.
        let b: Vec<f64> = (0..M).map(|_| 1.0 + rng.unif()).collect();
        let u0: Vec<f64> = (0..N).map(|_| 3.0 * rng.normal()).collect();
        let u1: Vec<f64> = u0.iter().map(|v| v + 0.05 * rng.normal()).collect();
        let grad = |u: &[f64]| -> Vec<f64> {
            (0..N)
                .map(|i| -2.0 * dot(&w[i * N..(i + 1) * N], u))
                .collect()
        };
        let (g, g2) = (grad(&u0), grad(&u1));
        assert_eq!(ws.set_hessian(N, &h), QpStatus::Solved);
        let s = ws.solve(&g, &a, &b, M, 0, &[], MAX_ITER);
        assert_eq!(s.status, QpStatus::Solved);
        let active = s.active.to_vec();
        let s2 = ws.solve(&g2, &a, &b, M, 0, &[], MAX_ITER);
        assert_eq!(s2.status, QpStatus::Solved);
        let ok = |k: usize| (5..=8).contains(&k);
        if ok(active.len()) && ok(s2.active.len()) {
            out.push(Problem {
                h,
                g,
                g2,
                a,
                b,
                active,
            });
        }
    }
    out
}

/// One Clarabel solve, from dense data, the way a caller would do it: (objective, iterations).
fn clarabel_solve(p: &Problem) -> (f64, u32) {
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..N {
        for i in 0..=j {
            rowval.push(i);
            nzval.push(p.h[i * N + j]);
        }
        colptr.push(rowval.len());
    }
    let pm = CscMatrix::new(N, N, colptr, rowval, nzval);
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..N {
        for i in 0..M {
            rowval.push(i);
            nzval.push(p.a[i * N + j]);
        }
        colptr.push(rowval.len());
    }
    let am = CscMatrix::new(M, N, colptr, rowval, nzval);
    let cones = [SupportedConeT::NonnegativeConeT(M)];
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .build()
        .unwrap();
    let mut solver = DefaultSolver::new(&pm, &p.g, &am, &p.b, &cones, settings).unwrap();
    solver.solve();
    assert_eq!(solver.solution.status, SolverStatus::Solved);
    (solver.solution.obj_val, solver.solution.iterations)
}

/// Workspaces with each problem's Hessian already factored.
fn workspaces(ps: &[Problem]) -> Vec<QpWorkspace> {
    ps.iter()
        .map(|p| {
            let mut ws = QpWorkspace::new(N, M);
            assert_eq!(ws.set_hessian(N, &p.h), QpStatus::Solved);
            ws
        })
        .collect()
}

/// Median of `reps` timings of `f`, in microseconds.
fn median_us(reps: usize, mut f: impl FnMut()) -> f64 {
    let mut t: Vec<f64> = (0..reps)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[reps / 2]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Per-problem medians, then the median over problems; printed with the ratios.
fn report(ps: &[Problem]) {
    let mut wss = workspaces(ps);
    let (mut cold, mut cold_f, mut warm, mut clar) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut it_cold, mut it_warm, mut it_clarabel) = (0u32, 0u32, 0u32);
    for (p, ws) in ps.iter().zip(wss.iter_mut()) {
        // Same answer from both solvers before timing anything.
        let ours = ws.solve(&p.g, &p.a, &p.b, M, 0, &[], MAX_ITER).objective;
        let (theirs, its) = clarabel_solve(p);
        it_clarabel += its;
        assert!(
            (ours - theirs).abs() <= 1e-6 * ours.abs().max(1.0),
            "{ours} vs {theirs}"
        );
        it_cold += ws.solve(&p.g2, &p.a, &p.b, M, 0, &[], MAX_ITER).iterations;
        it_warm += ws
            .solve(&p.g2, &p.a, &p.b, M, 0, &p.active, MAX_ITER)
            .iterations;
        cold.push(median_us(401, || {
            black_box(
                ws.solve(black_box(&p.g), &p.a, &p.b, M, 0, &[], MAX_ITER)
                    .objective,
            );
        }));
        cold_f.push(median_us(401, || {
            ws.set_hessian(N, black_box(&p.h));
            black_box(
                ws.solve(black_box(&p.g), &p.a, &p.b, M, 0, &[], MAX_ITER)
                    .objective,
            );
        }));
        warm.push(median_us(401, || {
            black_box(
                ws.solve(black_box(&p.g2), &p.a, &p.b, M, 0, &p.active, MAX_ITER)
                    .objective,
            );
        }));
        clar.push(median_us(21, || {
            black_box(clarabel_solve(black_box(p)));
        }));
    }
    let (c, cf, w, k) = (median(cold), median(cold_f), median(warm), median(clar));
    let np = ps.len() as f64;
    println!("qp n={N} m={M}, {} problems with 5-8 active rows (median over problems of the median per solve):", ps.len());
    println!(
        "  cold solve            {c:8.2} us   ({:.1} iterations on average)",
        f64::from(it_cold) / np
    );
    println!("  cold set_hessian+solve{cf:8.2} us");
    println!(
        "  warm re-solve         {w:8.2} us   ({:.1} iterations on average)",
        f64::from(it_warm) / np
    );
    println!(
        "  clarabel setup+solve  {k:8.2} us   ({:.1} interior-point iterations on average)",
        f64::from(it_clarabel) / np
    );
    println!(
        "  ratio clarabel/cold = {:.0}x, clarabel/warm = {:.0}x, clarabel/(factor+cold) = {:.0}x",
        k / c,
        k / w,
        k / cf
    );
}

fn bench(c: &mut Criterion) {
    let ps = problems();
    report(&ps);
    let mut wss = workspaces(&ps);
    let mut group = c.benchmark_group("qp_n10_m67");
    group.throughput(Throughput::Elements(ps.len() as u64));
    group.bench_function("cold", |bench| {
        bench.iter(|| {
            for (p, ws) in ps.iter().zip(wss.iter_mut()) {
                black_box(
                    ws.solve(black_box(&p.g), &p.a, &p.b, M, 0, &[], MAX_ITER)
                        .objective,
                );
            }
        })
    });
    group.bench_function("warm", |bench| {
        bench.iter(|| {
            for (p, ws) in ps.iter().zip(wss.iter_mut()) {
                black_box(
                    ws.solve(black_box(&p.g2), &p.a, &p.b, M, 0, &p.active, MAX_ITER)
                        .objective,
                );
            }
        })
    });
    group.sample_size(10);
    group.bench_function("clarabel", |bench| {
        bench.iter(|| {
            for p in &ps {
                black_box(clarabel_solve(black_box(p)));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
