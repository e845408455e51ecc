//! Whole-repair speed: `Repairer::repair` (SQP, QP, Tier 1 re-verification) on random
//! policies, against Clarabel on the identical QPs, in the same run.
//!
//! Problems: n = 10 real action variables (range ±100), m = 67 dense critical rows
//! `a_i · u <= b_i` (`a_i` standard normal, `b_i` in [1, 2], so the all-zero fallback is
//! strictly feasible), a random SPD `metric_matrix` W and a proposal u₀ = 3·N(0, I); each
//! written as policy TOML and loaded. Kept only when 5–8 rows are active at the optimum
//! (also after the small change of u₀ used for the warm re-repair). Measured:
//!
//! - `cold`: a repair with `cold = true` (no warm-start memory), including the Tier 1
//!   checks of the proposal and of the result; u₀ and u₁ alternate. The repairer is reused,
//!   so what it keeps per policy (the gradients of affine rows, the factored Hessian) is
//!   not recomputed: like the compiled tape, that is per-policy work, done on the first
//!   repair. It also keeps its last search's QP rows, reused while a step's QP has the same
//!   rows (the same bits: answers do not change); `cold, a new state each time` changes
//!   the state between repairs to show that this does not rest on a repeated state;
//! - `warm`: a re-repair after a small change of u₀ (u₀ + 0.05·N(0, I)), warm-started from
//!   the previous repair's active set; the two proposals alternate, so every timed repair
//!   starts from the other one's active set;
//! - `clarabel`: the QP the repair solves (the 67 rows and the 20 bound rows, `H = 2W`,
//!   `g = -2Wu₀`), built as sparse matrices and solved with default settings, as a caller
//!   would;
//! - `feasible`: a proposal that already satisfies every row (u₀ scaled into the feasible
//!   set), so the repair is one Tier 1 check; and the same on `policies/warehouse-robot.toml`
//!   (the fallback as proposal, the state at nominal values) next to Tier 1 alone.
//!
//! Per problem, the median of many timed repairs; then the median and the p99 of those
//! per-problem figures, and the p99 of every single timing, printed before Criterion runs.
//!
//! Run: `cargo bench -p aioss-core --bench repair`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use aioss_core::policy::VarType;
use aioss_core::repair::{RepairOutcome, RepairSettings, Repairer};
use aioss_core::{Checker, Interval, Policy};
use clarabel::algebra::CscMatrix;
use clarabel::solver::{
    DefaultSettingsBuilder, DefaultSolver, IPSolver, SolverStatus, SupportedConeT,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A repairer for `p` that never warm-starts (to compare with a warm one, or to time the
/// search alone).
fn cold_repairer(p: &Policy) -> Repairer {
    let cold = RepairSettings {
        cold: true,
        ..RepairSettings::default()
    };
    Repairer::with_settings(p, cold).unwrap()
}

const N: usize = 10;
const M: usize = 67;
const BOUND: f64 = 100.0;
const PROBLEMS: usize = 200;
const WAREHOUSE: &str = include_str!("../../../policies/warehouse-robot.toml");

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
    policy: Policy,
    inputs: Vec<Interval>,
    w: Vec<f64>,
    a: Vec<f64>,
    b: Vec<f64>,
    u0: Vec<f64>,
    u1: Vec<f64>,
    feasible: Vec<f64>,
}

fn policy_text(w: &[f64], a: &[f64], b: &[f64]) -> String {
    let mut t = String::from(
        "[policy]\nname = \"bench\"\n[governor]\nmax_iterations = 50\nmetric_matrix = [",
    );
    for i in 0..N {
        t.push_str(if i == 0 { "[" } else { ", [" });
        for j in 0..N {
            let _ = write!(t, "{}{:?}", if j == 0 { "" } else { ", " }, w[i * N + j]);
        }
        t.push(']');
    }
    t.push_str("]\n");
    for j in 0..N {
        let _ = writeln!(t, "[action.u{j}]\nmin = {:?}\nmax = {BOUND:?}", -BOUND);
    }
    t.push_str("[fallback]\n");
    for j in 0..N {
        let _ = writeln!(t, "u{j} = 0.0");
    }
    for i in 0..M {
        let _ = write!(t, "[[constraint]]\nid = \"r{i}\"\nexpr = \"");
        for j in 0..N {
            let _ = write!(
                t,
                "{}{:?} * u{j}",
                if j == 0 { "" } else { " + " },
                a[i * N + j]
            );
        }
        let _ = writeln!(t, " <= {:?}\"", b[i]);
    }
    t
}

fn dot(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(p, q)| p * q).sum()
}

fn problems() -> Vec<Problem> {
    let mut rng = Rng(0x0123_4567_89AB_CDEF);
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
        // Exactly symmetric.
        for i in 0..N {
            for j in 0..i {
                w[i * N + j] = w[j * N + i];
            }
        }
        let a: Vec<f64> = (0..M * N).map(|_| rng.normal()).collect();
        let b: Vec<f64> = (0..M).map(|_| 1.0 + rng.unif()).collect();
        let u0: Vec<f64> = (0..N).map(|_| 3.0 * rng.normal()).collect();
        let u1: Vec<f64> = u0.iter().map(|v| v + 0.05 * rng.normal()).collect();
        let policy = aioss_core::load("bench.toml", &policy_text(&w, &a, &b)).unwrap();
        let inputs = policy.range_inputs();
        let mut r = cold_repairer(&policy);
        let r0 = r.repair(&policy, &inputs, &u0, &[]);
        let r1 = r.repair(&policy, &inputs, &u1, &[]);
        let ok = |k: usize| (5..=8).contains(&k);
        if r0.outcome != RepairOutcome::Certified || r1.outcome != RepairOutcome::Certified {
            continue;
        }
        if !(ok(r0.active_set.len()) && ok(r1.active_set.len())) {
            continue;
        }
        // A feasible proposal: u0 scaled until every row holds with room.
        let worst = (0..M)
            .map(|i| dot(&a[i * N..(i + 1) * N], &u0) / b[i])
            .fold(0.0f64, f64::max);
        let feasible: Vec<f64> = u0.iter().map(|v| 0.9 * v / worst.max(1.0)).collect();
        out.push(Problem {
            policy,
            inputs,
            w,
            a,
            b,
            u0,
            u1,
            feasible,
        });
    }
    out
}

/// The repair's QP for Clarabel: `H = 2W`, `g = -2Wu₀`, the 67 rows and the 20 bounds.
fn clarabel_solve(p: &Problem) -> (f64, u32) {
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..N {
        for i in 0..=j {
            rowval.push(i);
            nzval.push(2.0 * p.w[i * N + j]);
        }
        colptr.push(rowval.len());
    }
    let pm = CscMatrix::new(N, N, colptr, rowval, nzval);
    let rows = M + 2 * N;
    let (mut colptr, mut rowval, mut nzval) = (vec![0], Vec::new(), Vec::new());
    for j in 0..N {
        for i in 0..M {
            rowval.push(i);
            nzval.push(p.a[i * N + j]);
        }
        rowval.push(M + 2 * j);
        nzval.push(1.0);
        rowval.push(M + 2 * j + 1);
        nzval.push(-1.0);
        colptr.push(rowval.len());
    }
    let am = CscMatrix::new(rows, N, colptr, rowval, nzval);
    let mut bv = p.b.clone();
    bv.extend(std::iter::repeat_n(BOUND, 2 * N));
    let q: Vec<f64> = (0..N)
        .map(|i| -2.0 * dot(&p.w[i * N..(i + 1) * N], &p.u0))
        .collect();
    let cones = [SupportedConeT::NonnegativeConeT(rows)];
    let settings = DefaultSettingsBuilder::default()
        .verbose(false)
        .build()
        .unwrap();
    let mut solver = DefaultSolver::new(&pm, &q, &am, &bv, &cones, settings).unwrap();
    solver.solve();
    assert_eq!(solver.solution.status, SolverStatus::Solved);
    (solver.solution.obj_val, solver.solution.iterations)
}

fn time_us(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64() * 1e6
}

fn quantile(v: &[f64], q: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let k = ((s.len() - 1) as f64 * q).round() as usize;
    s[k]
}

/// Per-problem medians of `reps` timings, and every timing.
fn per_problem(
    reps: usize,
    ps: &[Problem],
    mut f: impl FnMut(usize, &Problem),
) -> (Vec<f64>, Vec<f64>) {
    let (mut med, mut all) = (Vec::new(), Vec::new());
    for (i, p) in ps.iter().enumerate() {
        f(i, p); // once untimed (caches, warm-start state)
        let t: Vec<f64> = (0..reps).map(|_| time_us(|| f(i, p))).collect();
        med.push(quantile(&t, 0.5));
        all.extend(t);
    }
    (med, all)
}

fn line(name: &str, (med, all): &(Vec<f64>, Vec<f64>)) {
    println!(
        "  {name:<34} median {:7.2} us   p99 {:7.2} us   (p99 of all single timings {:7.2} us, max per-problem {:7.2} us)",
        quantile(med, 0.5),
        quantile(med, 0.99),
        quantile(all, 0.99),
        quantile(med, 1.0),
    );
}

fn nominal_inputs(p: &Policy) -> Vec<Interval> {
    let mut v = p.range_inputs();
    for (a, f) in p.actions.iter().zip(&p.fallback) {
        v[a.slot as usize] = Interval::point(*f);
        v[a.prev_slot as usize] = Interval::point(*f);
    }
    for s in &p.states {
        if let Some(slot) = s.slot {
            let x = match s.ty {
                VarType::Real | VarType::Int => {
                    let (lo, hi) = (s.min.max(-10.0), s.max.min(10.0));
                    0.5 * lo + 0.5 * hi
                }
                _ => 0.0,
            };
            v[slot as usize] = Interval::around(x, s.noise);
        }
    }
    for b in &p.budgets {
        v[b.slot as usize] = Interval::point(b.min);
    }
    v
}

fn report(ps: &[Problem]) {
    // Same answers before timing anything.
    let (mut it_ours, mut it_warm, mut it_clarabel, mut active) = (0u32, 0u32, 0u32, 0usize);
    for p in ps {
        let mut r = cold_repairer(&p.policy);
        let rep = r.repair(&p.policy, &p.inputs, &p.u0, &[]);
        it_ours += rep.iterations;
        active += rep.active_set.len();
        let (obj, its) = clarabel_solve(p);
        it_clarabel += its;
        // Clarabel's objective is ½xᵀHx + gᵀx; ours is ‖x − u₀‖²_W = that + u₀ᵀWu₀.
        let wu0: f64 = (0..N)
            .map(|i| p.u0[i] * dot(&p.w[i * N..(i + 1) * N], &p.u0))
            .sum();
        let theirs = obj + wu0;
        let ours = rep.distance * rep.distance;
        assert!(
            (ours - theirs).abs() <= 1e-6 * ours.max(1.0),
            "{ours} vs {theirs}"
        );
        let mut wr = Repairer::new(&p.policy);
        wr.repair(&p.policy, &p.inputs, &p.u0, &[]);
        it_warm += wr.repair(&p.policy, &p.inputs, &p.u1, &[]).iterations;
        let f = r.repair(&p.policy, &p.inputs, &p.feasible, &[]);
        assert!(f.outcome == RepairOutcome::Certified && f.distance == 0.0);
    }
    let np = ps.len() as f64;
    let mut reps: Vec<Repairer> = ps.iter().map(|p| cold_repairer(&p.policy)).collect();
    // Both cold and warm alternate between u₀ and u₁, so that neither times the same
    // repair over and over (the branch predictor would learn it).
    let mut flip = false;
    let cold = per_problem(101, ps, |i, p| {
        flip = !flip;
        let u = if flip { &p.u1 } else { &p.u0 };
        black_box(reps[i].repair(&p.policy, &p.inputs, black_box(u), &[]));
    });
    // The same, at a new state every time: the inputs alternate between two vectors that
    // differ in the `prev.` slots (which no row reads), so nothing kept for one state
    // applies to the next (the QP rows are built again).
    let other_state: Vec<Vec<Interval>> = ps
        .iter()
        .map(|p| {
            let mut v = p.inputs.clone();
            for a in &p.policy.actions {
                v[a.prev_slot as usize] = Interval::point(0.5);
            }
            v
        })
        .collect();
    let cold_new_state = per_problem(101, ps, |i, p| {
        flip = !flip;
        let (u, inputs) = if flip {
            (&p.u1, &other_state[i])
        } else {
            (&p.u0, &p.inputs)
        };
        black_box(reps[i].repair(&p.policy, inputs, black_box(u), &[]));
    });
    let mut warm_reps: Vec<Repairer> = ps.iter().map(|p| Repairer::new(&p.policy)).collect();
    let warm = per_problem(101, ps, |i, p| {
        flip = !flip;
        let u = if flip { &p.u1 } else { &p.u0 };
        black_box(warm_reps[i].repair(&p.policy, &p.inputs, black_box(u), &[]));
    });
    let feasible = per_problem(101, ps, |i, p| {
        black_box(reps[i].repair(&p.policy, &p.inputs, black_box(&p.feasible), &[]));
    });
    let clar = per_problem(11, ps, |_, p| {
        black_box(clarabel_solve(black_box(p)));
    });
    println!(
        "repair n={N} m={M} (+{} bound rows), {} problems, {:.1} rows active on average:",
        2 * N,
        ps.len(),
        active as f64 / np
    );
    line("cold repair (incl. Tier 1)", &cold);
    line("cold repair, a new state each time", &cold_new_state);
    line("warm re-repair after small change", &warm);
    line("feasible proposal (Tier 1 only)", &feasible);
    line("clarabel setup+solve of the QP", &clar);
    println!(
        "  SQP+QP iterations: {:.1} per cold repair, {:.1} per warm re-repair; Clarabel: {:.1}",
        f64::from(it_ours) / np,
        f64::from(it_warm) / np,
        f64::from(it_clarabel) / np
    );
    let (c, w, k2) = (
        quantile(&cold.0, 0.5),
        quantile(&warm.0, 0.5),
        quantile(&clar.0, 0.5),
    );
    println!(
        "  ratio clarabel/cold repair = {:.1}x, clarabel/warm = {:.1}x",
        k2 / c,
        k2 / w
    );

    // The warehouse policy's feasible path.
    let wp = aioss_core::load("warehouse-robot.toml", WAREHOUSE).unwrap();
    let inputs = nominal_inputs(&wp);
    let mut r = Repairer::new(&wp);
    let rep = r.repair(&wp, &inputs, &wp.fallback, &[]);
    println!(
        "warehouse-robot.toml, fallback as the proposal at nominal state: {:?}, distance {}",
        rep.outcome, rep.distance
    );
    let mut t1 = Checker::new(&wp.lattice);
    let fresh = Checker::new(&wp.lattice);
    let t_repair: Vec<f64> = (0..20001)
        .map(|_| {
            time_us(|| {
                drop(black_box(r.repair(
                    &wp,
                    &inputs,
                    black_box(&wp.fallback),
                    &[],
                )))
            })
        })
        .collect();
    let t_tier1: Vec<f64> = (0..20001)
        .map(|_| {
            time_us(|| {
                // A whole check, as a new state calls for (a checker's memory reset).
                t1.clone_from(&fresh);
                black_box(t1.check(&wp.lattice, black_box(&inputs), &wp.fallback));
            })
        })
        .collect();
    println!(
        "  repair (feasible path)  median {:6.2} us  p99 {:6.2} us",
        quantile(&t_repair, 0.5),
        quantile(&t_repair, 0.99)
    );
    println!(
        "  Tier 1 check alone      median {:6.2} us  p99 {:6.2} us",
        quantile(&t_tier1, 0.5),
        quantile(&t_tier1, 0.99)
    );
}

fn bench(c: &mut Criterion) {
    let ps = problems();
    report(&ps);
    let mut g = c.benchmark_group("repair_n10_m67");
    g.throughput(Throughput::Elements(ps.len() as u64));
    let mut cold: Vec<Repairer> = ps.iter().map(|p| cold_repairer(&p.policy)).collect();
    g.bench_function("cold_alternating", |bench| {
        bench.iter(|| {
            for (p, r) in ps.iter().zip(cold.iter_mut()) {
                black_box(r.repair(&p.policy, &p.inputs, black_box(&p.u1), &[]));
                black_box(r.repair(&p.policy, &p.inputs, black_box(&p.u0), &[]));
            }
        })
    });
    let mut warm: Vec<Repairer> = ps.iter().map(|p| Repairer::new(&p.policy)).collect();
    g.bench_function("warm_alternating", |bench| {
        bench.iter(|| {
            for (p, r) in ps.iter().zip(warm.iter_mut()) {
                black_box(r.repair(&p.policy, &p.inputs, black_box(&p.u1), &[]));
                black_box(r.repair(&p.policy, &p.inputs, black_box(&p.u0), &[]));
            }
        })
    });
    g.bench_function("feasible", |bench| {
        bench.iter(|| {
            for (p, r) in ps.iter().zip(cold.iter_mut()) {
                black_box(r.repair(&p.policy, &p.inputs, black_box(&p.feasible), &[]));
            }
        })
    });
    g.sample_size(10);
    g.bench_function("clarabel", |bench| {
        bench.iter(|| {
            for p in &ps {
                black_box(clarabel_solve(black_box(p)));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
