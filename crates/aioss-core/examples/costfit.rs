//! How well the repair's modeled cost (`aioss_core::repair::ModeledCost`, which
//! `[governor] enforce_deadline` bounds) tracks the measured time of a policy's decisions.
//!
//! ```sh
//! cargo run --release -p aioss-core --example costfit -- POLICY.toml PROPOSALS.jsonl
//! ```
//!
//! Decides every line on one governor and, for the decisions whose repair searched, prints
//! the ratio of the modeled cost to the measured `latency_us` (the whole decision: the
//! model covers only the search, so a ratio a little under 1 is expected), by percentile,
//! overall and for the decisions over 500 µs. The model was fitted on the warehouse policy;
//! run this on another policy's stream before relying on its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aioss_core::Governor;

fn percentiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "none".to_string();
    }
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "an index for display"
        )]
        let i = ((v.len() - 1) as f64 * q).round() as usize;
        v.get(i).copied().unwrap_or(f64::NAN)
    };
    format!(
        "{} decisions: p5 {:.2}, p50 {:.2}, p95 {:.2}",
        v.len(),
        at(0.05),
        at(0.5),
        at(0.95)
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(policy), Some(stream)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: costfit POLICY.toml PROPOSALS.jsonl");
        std::process::exit(2);
    };
    let text = std::fs::read_to_string(policy).unwrap();
    let p = aioss_core::load(policy, &text).unwrap_or_else(|e| panic!("{e}"));
    let mut g = Governor::new(p);
    let (mut all, mut slow) = (Vec::new(), Vec::new());
    let (mut measured_sum, mut modeled_sum) = (0u64, 0u64);
    for line in std::fs::read_to_string(stream).unwrap().lines() {
        let Ok(d) = g.decide_line(line) else { continue };
        let Some(s) = &d.solver else { continue };
        if s.cost.0 == 0 || d.latency_us == 0 {
            continue;
        }
        #[expect(clippy::cast_precision_loss, reason = "a ratio for display")]
        let r = s.cost.0 as f64 / 1000.0 / d.latency_us as f64;
        all.push(r);
        if d.latency_us > 500 {
            slow.push(r);
        }
        measured_sum += d.latency_us;
        modeled_sum += s.cost.micros();
    }
    println!("modeled / measured, all searches: {}", percentiles(all));
    println!("modeled / measured, over 500 µs:  {}", percentiles(slow));
    println!("sums: modeled {modeled_sum} µs, measured {measured_sum} µs");
}
