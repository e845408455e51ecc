//! Tier 1 speed: all rows of `warehouse-robot.toml`, and policy loading.
//!
//! The figure that counts is `warehouse_distinct_inputs`: 2,000 distinct proposals (states
//! over every declared range at their declared noise, actions over their ranges, the
//! shape of `aioss bench decide`'s stream) checked in turn, each a whole check since the
//! state changes every time. Repeating one input (`warehouse_all_rows`) lets the branch
//! predictor learn every data-dependent branch of the rounding, and measures a fraction of
//! what a stream costs (figures in BENCHMARKS.md).
//!
//! Run: `cargo bench -p aioss-core --bench tier1`. Figures go to BENCHMARKS.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;

use aioss_core::policy::VarType;
use aioss_core::{Checker, Interval, Policy};
use criterion::{criterion_group, criterion_main, Criterion};

#[path = "common/stream.rs"]
mod stream;
use stream::distinct_inputs;

const WAREHOUSE: &str = include_str!("../../../policies/warehouse-robot.toml");

/// A proposal in the middle of every range, with each state at its declared noise.
fn nominal_inputs(p: &Policy) -> Vec<Interval> {
    let mut v = p.range_inputs();
    for (a, f) in p.actions.iter().zip(&p.fallback) {
        let x = if a.ty == VarType::Real {
            0.5 * a.min + 0.5 * a.max + 0.1 * (a.max - a.min)
        } else {
            *f
        };
        v[a.slot as usize] = Interval::point(x);
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

fn bench(c: &mut Criterion) {
    let p = aioss_core::load("warehouse-robot.toml", WAREHOUSE).unwrap();
    let inputs = nominal_inputs(&p);
    let action = p.fallback.clone();
    let mut g = c.benchmark_group("tier1");
    let stream = distinct_inputs(&p, 2000);
    let mut t1 = Checker::new(&p.lattice);
    let mut k = 0;
    g.bench_function("warehouse_distinct_inputs", |b| {
        b.iter(|| {
            let (inputs, action) = &stream[k % stream.len()];
            k += 1;
            t1.check(&p.lattice, black_box(inputs), black_box(action))
        })
    });
    // A fresh checker each time: the whole check, as a new state calls for.
    g.bench_function("warehouse_all_rows", |b| {
        b.iter_batched_ref(
            || Checker::new(&p.lattice),
            |t| t.check(&p.lattice, black_box(&inputs), &action),
            criterion::BatchSize::SmallInput,
        )
    });
    // The same rows with every state a point (no uncertainty): the cost of the intervals.
    let points: Vec<Interval> = inputs.iter().map(|i| Interval::point(i.mid())).collect();
    g.bench_function("warehouse_all_rows_point_state", |b| {
        b.iter_batched_ref(
            || Checker::new(&p.lattice),
            |t| t.check(&p.lattice, black_box(&points), &action),
            criterion::BatchSize::SmallInput,
        )
    });

    g.finish();
    c.bench_function("load_and_compile/warehouse", |b| {
        b.iter(|| aioss_core::load("warehouse-robot.toml", black_box(WAREHOUSE)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
