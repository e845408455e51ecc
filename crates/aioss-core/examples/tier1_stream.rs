//! Tier 1 over a stream of distinct inputs, for profilers and instruction counters:
//! `cargo run --release -p aioss-core --example tier1_stream -- [POLICY] [CHECKS]`
//! (default: the warehouse policy, 20,000 checks over 2,000 distinct inputs). Prints the
//! mean time per check; under `valgrind --tool=callgrind --branch-sim=yes` the counts of
//! instructions and mispredicted branches are what to compare between builds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "../benches/common/stream.rs"]
mod stream;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../policies/warehouse-robot.toml"
        )
        .to_string()
    });
    let checks: usize = args.next().map_or(20_000, |n| n.parse().unwrap());
    let text = std::fs::read_to_string(&path).unwrap();
    let p = aioss_core::load(&path, &text).unwrap();
    let inputs = stream::distinct_inputs(&p, 2000);
    let mut t1 = aioss_core::Checker::new(&p.lattice);
    let mut sat = 0u64;
    let started = std::time::Instant::now();
    for k in 0..checks {
        let (v, a) = &inputs[k % inputs.len()];
        sat += u64::from(t1.check(&p.lattice, v, a).sat);
    }
    let per = started.elapsed().as_secs_f64() / checks as f64 * 1e6;
    println!(
        "{checks} checks over {} distinct inputs: {per:.3} µs per check ({} rows each; {sat} SAT verdicts)",
        inputs.len(),
        p.lattice.rows.len()
    );
}
