//! A stream of distinct Tier 1 inputs for a policy, shared by the `tier1` bench and the
//! `tier1_stream` example (which callgrind can count).

use aioss_core::policy::VarType;
use aioss_core::{Interval, Policy};

/// `n` distinct proposals for `p` (a fixed seed): `(inputs, action)` pairs.
pub fn distinct_inputs(p: &Policy, n: usize) -> Vec<(Vec<Interval>, Vec<f64>)> {
    let mut r = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        (r >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut pick = |lo: f64, hi: f64, whole: bool| {
        let (lo, hi) = (lo.max(-50.0), hi.min(50.0));
        if whole {
            (lo + (next() * (hi - lo + 1.0)).floor()).min(hi)
        } else {
            lo + next() * (hi - lo)
        }
    };
    (0..n)
        .map(|_| {
            let mut v = p.range_inputs();
            let mut action = Vec::new();
            for a in &p.actions {
                let whole = a.ty != VarType::Real;
                let u = pick(a.min, a.max, whole);
                action.push(u);
                v[a.slot as usize] = Interval::point(u);
                v[a.prev_slot as usize] = Interval::point(pick(a.min, a.max, whole));
            }
            for s in &p.states {
                if let Some(slot) = s.slot {
                    let whole = s.ty != VarType::Real;
                    let x = pick(s.min, s.max, whole);
                    v[slot as usize] = if whole {
                        Interval::point(x)
                    } else {
                        Interval::around(x, s.noise)
                    };
                }
            }
            for b in &p.budgets {
                v[b.slot as usize] = Interval::point(b.min);
            }
            (v, action)
        })
        .collect()
}
