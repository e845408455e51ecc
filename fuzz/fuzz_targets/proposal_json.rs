//! The proposal reader and the governor must never panic, whatever a caller sends: each line
//! either decides or gets an error object, and both render as valid JSON.
//!
//! The first byte picks one of the bundled policies (or the warehouse policy with a short
//! enforced deadline, so that searches stop early); the rest is split at newlines and
//! decided line by line on one governor, so budget windows, the logical clock and the
//! agents' last actions carry from one line to the next as they do in `aioss decide`.
#![no_main]

use std::sync::OnceLock;

use aioss_core::{Governor, Outcome, Policy};
use libfuzzer_sys::fuzz_target;

const SOURCES: [(&str, &str); 3] = [
    (
        "warehouse-robot.toml",
        include_str!("../../policies/warehouse-robot.toml"),
    ),
    ("agent-tools.toml", include_str!("../../policies/agent-tools.toml")),
    ("i2os-v2.toml", include_str!("../../policies/i2os-v2.toml")),
];

fn policies() -> &'static [Policy] {
    static P: OnceLock<Vec<Policy>> = OnceLock::new();
    P.get_or_init(|| {
        let (file, warehouse) = SOURCES[0];
        let enforcing = warehouse.replace(
            "\ndeadline_us = 1000\n",
            "\ndeadline_us = 100\nenforce_deadline = true\n",
        );
        SOURCES
            .iter()
            .map(|&(file, text)| (file, text.to_string()))
            .chain([(file, enforcing)])
            .map(|(file, text)| match aioss_core::load(file, &text) {
                Ok(p) => p,
                Err(e) => panic!("a bundled policy does not load: {e}"),
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let all = policies();
    let Some(p) = all.get(usize::from(pick) % all.len()) else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let mut g = Governor::new(p.clone());
    for line in text.split('\n').take(8) {
        match g.decide_line_at(line, 1.7e9) {
            Ok(d) => {
                let json = d.to_json(p);
                let v: serde_json::Value = match serde_json::from_str(&json) {
                    Ok(v) => v,
                    Err(e) => panic!("a decision is not valid JSON ({e}): {json}"),
                };
                // What executes: the proposal when allowed, a repair inside the action
                // ranges, or else the certified fallback.
                let bits = |u: &[f64]| u.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                match d.final_outcome {
                    Outcome::Allow => assert_eq!(bits(&d.action), bits(&d.proposed), "{json}"),
                    Outcome::AllowAfterRepair => {
                        for (a, u) in p.actions.iter().zip(&d.action) {
                            assert!(*u >= a.min && *u <= a.max, "{json}");
                        }
                    }
                    _ => assert_eq!(bits(&d.action), bits(&p.fallback), "{json}"),
                }
                assert!(v.get("final_outcome").is_some(), "{json}");
                let _ = d.deadline_met(p);
            }
            Err(e) => {
                let json = e.to_json();
                if let Err(err) = serde_json::from_str::<serde_json::Value>(&json) {
                    panic!("an error object is not valid JSON ({err}): {json}");
                }
                let _ = e.to_string();
            }
        }
    }
});
