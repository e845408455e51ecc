//! INVARIANT (fresh-slots) of `aioss_core::tier1::Checker`, over every bundled policy: a
//! checker whose slots hold another evaluation (a far-away input box) gives, bit for bit,
//! the verdicts of a fresh one. Guards the choice of what a check evaluates again, the
//! pruning of constants carried in `k * x`-style instructions, and fused instructions that
//! write two slots.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::Checker;
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
            let action: Vec<f64> = p
                .actions
                .iter()
                .map(|a| inputs[a.slot as usize].lo)
                .collect();
            // A checker that has checked a far-away point before: whatever its slots
            // held, the check is that of a fresh checker.
            let mut fresh = Checker::new(lat);
            let s1 = fresh.check(lat, inputs, &action);
            let mut used = Checker::new(lat);
            let far: Vec<Interval> = inputs
                .iter()
                .map(|x| Interval::point(x.hi * 3.0 + 1.0))
                .collect();
            used.check(lat, &far, &action);
            let s2 = used.check(lat, inputs, &action);
            assert_eq!(s1, s2, "{}", path.display());
            for (i, (a, b)) in fresh.rows().iter().zip(used.rows()).enumerate() {
                assert!(same(a, b), "{}: row {i}: {a:?} vs {b:?}", path.display());
            }
        }
        n += 1;
    }
    assert!(n >= 3, "the bundled policies were not found in {dir}");
}
