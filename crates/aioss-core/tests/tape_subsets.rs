//! The instruction lists Tier 1 evaluates (the tape's focus, a decision's list) write
//! every slot they read: a check over a slot array that starts all INVALID gives the same
//! verdicts, bit for bit, as one over the array [`Lattice::scratch`] prepares (every
//! constant pre-written). Guards the pruning of constants carried in
//! `k * x`-style instructions, and fused instructions that write two slots.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::lattice::Scratch;
use aioss_core::{Interval, RowCheck};

fn same(a: &RowCheck, b: &RowCheck) -> bool {
    let bits = |x: Interval| (x.lo.to_bits(), x.hi.to_bits());
    a.active == b.active
        && a.status == b.status
        && a.fault == b.fault
        && (bits(a.margin) == bits(b.margin) || (a.margin.is_invalid() && b.margin.is_invalid()))
}

#[test]
fn tier1_writes_every_slot_it_reads_for_every_bundled_policy() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let p = aioss_core::load(path.to_str().unwrap(), &text).unwrap();
        let lat = &p.lattice;
        let boxed = p.range_inputs();
        let points: Vec<Interval> = boxed
            .iter()
            .map(|x| {
                let m = x.mid();
                if m.is_finite() {
                    Interval::point(m)
                } else {
                    *x
                }
            })
            .collect();
        for inputs in [&boxed, &points] {
            let mut want = vec![RowCheck::default(); lat.rows.len()];
            let mut got = want.clone();
            let s1 = lat.check(inputs, &mut lat.scratch(), &mut want);
            let mut bare = Scratch {
                slots: vec![Interval::INVALID; lat.tape.len()],
            };
            let s2 = lat.check(inputs, &mut bare, &mut got);
            assert_eq!(s1, s2, "{}", path.display());
            for (i, (a, b)) in want.iter().zip(&got).enumerate() {
                assert!(same(a, b), "{}: row {i}: {a:?} vs {b:?}", path.display());
            }
        }
        n += 1;
    }
    assert!(n >= 3, "the bundled policies were not found in {dir}");
}
