//! `aioss bench decide`: throughput of the decision path against the plain cost of parsing
//! and printing the same JSON, measured in the same run.
//!
//! The proposal stream is generated from the policy itself, so it works for any policy:
//! random actions and states in the declared ranges are decided once to sort them into
//! feasible (ALLOW), repairable (ALLOW_AFTER_REPAIR) and blocked (BLOCK_NO_REPAIR); the
//! repaired action of a repairable proposal, re-proposed at the same state, is a feasible
//! proposal. When one kind is still missing after 10,000 tries (a policy whose invariants
//! tie one variable to another, like agent-tools), each action variable of later tries
//! keeps its fallback value half the time. The stream is then drawn to the requested mix.
//! Each proposal carries its own `prev`, so its decision does not depend on its position in
//! the stream (a policy with budgets still charges them in stream order, so its outcomes
//! can differ from the generated mix; the command prints the outcomes it got).

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use aioss_core::governor::Outcome;
use aioss_core::policy::VarType;
use aioss_core::{Governor, Policy};
use serde_json::{json, Map, Value};

/// SplitMix64: a tiny deterministic generator, hand-written so that the benchmark stream
/// is the same on every machine and every version of every crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        #[expect(clippy::cast_precision_loss, reason = "53 random bits")]
        let x = (self.next() >> 11) as f64;
        x / (1u64 << 53) as f64
    }
    fn range(&mut self, lo: f64, hi: f64) -> f64 {
        let (lo, hi) = (
            if lo.is_finite() { lo } else { -10.0 },
            if hi.is_finite() { hi } else { 10.0 },
        );
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: usize) -> usize {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a small index"
        )]
        let i = (self.unit() * n as f64) as usize;
        i.min(n.saturating_sub(1))
    }
}

/// Round to 4 decimals: proposals as a controller or an agent would print them.
fn r4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn value(rng: &mut Rng, ty: &VarType, lo: f64, hi: f64) -> Value {
    match ty {
        VarType::Real => json!(r4(rng.range(lo, hi))),
        VarType::Int => json!(rng.range(lo, hi + 1.0).floor().min(hi)),
        VarType::Bool => json!(rng.unit() < 0.5),
        VarType::Enum(values) => json!(values
            .get(rng.below(values.len()))
            .cloned()
            .unwrap_or_default()),
        VarType::Text => json!("benchmark"),
    }
}

/// One random proposal: real actions over the middle 60 % of their ranges, discrete ones
/// anywhere in theirs, state in its declared ranges, `prev` near the action, attributes
/// from the policy's symbols. With `sparse` (the fallback action as JSON), each action
/// variable keeps its fallback value with probability ½.
fn random_proposal(p: &Policy, rng: &mut Rng, n: u64, sparse: Option<&Value>) -> Value {
    let mut action = Map::new();
    let mut prev = Map::new();
    for a in &p.actions {
        let (lo, hi) = if a.ty == VarType::Real {
            let c = (a.min + a.max) / 2.0;
            let h = (a.max - a.min) / 2.0 * 0.6;
            (c - h, c + h)
        } else {
            (a.min, a.max)
        };
        let mut v = value(rng, &a.ty, lo, hi);
        if let Some(f) = sparse.and_then(|f| f.get(&a.name)) {
            if rng.unit() < 0.5 {
                v = f.clone();
            }
        }
        if a.ty == VarType::Real {
            let x = v.as_f64().unwrap_or(0.0);
            prev.insert(a.name.clone(), json!(r4(x * (0.8 + 0.2 * rng.unit()))));
        }
        action.insert(a.name.clone(), v);
    }
    let mut state = Map::new();
    for s in &p.states {
        let (lo, hi) = (s.min, s.max);
        state.insert(s.name.clone(), value(rng, &s.ty, lo, hi));
    }
    let mut attrs = Map::new();
    for a in &p.layout.attrs {
        if a.numeric {
            attrs.insert(a.name.clone(), json!(r4(rng.range(0.3, 1.0))));
        } else if let Some(s) = p.symbols.get(rng.below(p.symbols.len().max(1))) {
            attrs.insert(a.name.clone(), json!(s));
        }
    }
    json!({"id": format!("b{n}"), "agent": "bench", "timestamp": 1_700_000_000 + n,
           "action": action, "state": state, "prev": prev, "agent_attributes": attrs})
}

/// Tries after which an empty bucket turns on sparse proposals (see `stream`).
const SPARSE_AFTER: u64 = 10_000;
/// Tries after which a generator that needed sparse proposals settles for [`ENOUGH`]
/// distinct proposals per bucket.
const ENOUGH_AFTER: u64 = 200_000;
/// See [`ENOUGH_AFTER`].
const ENOUGH: usize = 200;
/// Tries after which the generator gives up.
const MAX_TRIES: u64 = 2_000_000;

/// Build a stream of `n` proposals with the mix `(allow, repair, block)` in percent.
pub fn stream(
    p: &Policy,
    n: usize,
    mix: (usize, usize, usize),
    seed: u64,
) -> Result<Vec<String>, String> {
    let mut rng = Rng(seed);
    let want = [
        n * mix.0 / 100,
        n * mix.1 / 100,
        n - n * mix.0 / 100 - n * mix.1 / 100,
    ];
    let [mut feasible, mut repairable, mut blocked] = [Vec::new(), Vec::new(), Vec::new()];
    // Distinct proposals per bucket; the stream cycles through them.
    let [d_ok, d_rep, d_blk] = want.map(|w| w.min(2000));
    let mut g = Governor::new(p.clone());
    let mut tries = 0u64;
    // Proposals drawn over whole ranges almost never hold for a policy whose invariants tie
    // most variables to one value of another (agent-tools: an `amount` only for a
    // `transfer`, `recipients` only for `send_email`). When a bucket is still empty after
    // SPARSE_AFTER tries, every later try keeps each action variable at its fallback
    // value with probability ½. (Streams that fill sooner, the warehouse's, are unchanged.)
    let fallback: Value =
        serde_json::from_str(&aioss_core::governor::action_to_json(p, &p.fallback))
            .map_err(|e| e.to_string())?;
    let mut sparse = false;
    let started = Instant::now();
    let mut shown = started;
    while feasible.len() < d_ok || repairable.len() < d_rep || blocked.len() < d_blk {
        // Enough distinct proposals to cycle through, when more are slow to find (only once
        // sparse proposals were needed: other streams stay as they were).
        if sparse
            && tries >= ENOUGH_AFTER
            && [
                (feasible.len(), d_ok),
                (repairable.len(), d_rep),
                (blocked.len(), d_blk),
            ]
            .iter()
            .all(|&(have, want)| have >= want.min(ENOUGH))
        {
            eprintln!(
                "  {tries} tries: going on with {} feasible, {} repairable and {} blocked distinct proposals",
                feasible.len(),
                repairable.len(),
                blocked.len()
            );
            break;
        }
        tries += 1;
        if tries > MAX_TRIES {
            return Err(format!(
                "could not generate the mix in {MAX_TRIES} tries (found {} feasible, {} repairable, {} blocked)",
                feasible.len(),
                repairable.len(),
                blocked.len()
            ));
        }
        if tries == SPARSE_AFTER {
            sparse = [
                (feasible.len(), d_ok),
                (repairable.len(), d_rep),
                (blocked.len(), d_blk),
            ]
            .iter()
            .any(|&(have, want)| have == 0 && want > 0);
            if sparse {
                eprintln!(
                    "  {tries} tries: {} feasible, {} repairable, {} blocked; from now on each action variable keeps its fallback value half the time",
                    feasible.len(),
                    repairable.len(),
                    blocked.len()
                );
            }
        }
        if tries.is_multiple_of(1024) && shown.elapsed().as_secs() >= 5 {
            shown = Instant::now();
            eprintln!(
                "  {tries} tries, {:.0} s: {} feasible, {} repairable, {} blocked (of {d_ok}, {d_rep}, {d_blk} distinct)",
                started.elapsed().as_secs_f64(),
                feasible.len(),
                repairable.len(),
                blocked.len()
            );
        }
        let sparse_try = sparse.then_some(&fallback);
        let v = random_proposal(p, &mut rng, tries, sparse_try);
        let line = v.to_string();
        // Each try is judged alone: a try whose state left a barrier's safe set would
        // otherwise latch the generator's agent into the fallback mode for later tries.
        g.reset_agent("bench");
        let Ok(d) = g.decide_line(&line) else {
            continue;
        };
        match d.final_outcome {
            Outcome::Allow if feasible.len() < d_ok => feasible.push(line),
            Outcome::AllowAfterRepair => {
                if repairable.len() < d_rep {
                    repairable.push(line);
                }
                // Its repair, proposed at the same state, is a feasible proposal.
                let dj: Value = serde_json::from_str(&d.to_json(p)).map_err(|e| e.to_string())?;
                let mut f = v.clone();
                if let (Some(o), Some(a)) = (f.as_object_mut(), dj.get("action")) {
                    o.insert("action".to_string(), a.clone());
                    o.insert("id".to_string(), json!(format!("b{tries}f")));
                }
                let fl = f.to_string();
                g.reset_agent("bench");
                if feasible.len() < d_ok
                    && g.decide_line(&fl)
                        .is_ok_and(|x| x.final_outcome == Outcome::Allow)
                {
                    feasible.push(fl);
                }
            }
            Outcome::BlockNoRepair if blocked.len() < d_blk => blocked.push(line),
            _ => {}
        }
    }
    // Interleave deterministically to the requested counts: always draw from the bucket
    // furthest behind its share.
    let mut out = Vec::with_capacity(n);
    let pools = [feasible, repairable, blocked];
    let mut buckets: Vec<(usize, usize, &Vec<String>)> = want
        .iter()
        .zip(pools.iter())
        .map(|(w, pool)| (*w, 0usize, pool))
        .collect();
    for _ in 0..n {
        let next = buckets
            .iter_mut()
            .filter(|(w, used, pool)| used < w && !pool.is_empty())
            .min_by(|a, b| (a.1 * b.0.max(1)).cmp(&(b.1 * a.0.max(1))));
        let Some((_, used, pool)) = next else { break };
        if let Some(l) = pool.get(*used % pool.len()) {
            out.push(l.clone());
        }
        *used += 1;
    }
    Ok(out)
}

/// Options of `aioss bench decide`.
pub struct Options<'a> {
    /// The policy.
    pub policy: &'a Path,
    /// Proposals in the stream.
    pub n: usize,
    /// Percent feasible, repairable, blocked.
    pub mix: (usize, usize, usize),
    /// Timed repetitions (the median is reported).
    pub runs: usize,
    /// Also write the stream here (JSON lines), to time `aioss decide` itself.
    pub write: Option<&'a Path>,
    /// Time this stream instead of generating one.
    pub stream: Option<&'a Path>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `aioss bench decide`
pub fn decide(o: &Options<'_>) -> ExitCode {
    let p = match crate::policy_cmd::load_file(o.policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(crate::exit::BAD_INPUT);
        }
    };
    let lines = if let Some(path) = o.stream {
        // A given stream: the same input for every build compared (the generated one
        // depends on what the build repairs; see BENCHMARKS.md).
        match std::fs::read_to_string(path) {
            Ok(t) => {
                let lines: Vec<String> = t
                    .lines()
                    .filter(|l| !l.trim().is_empty())
                    .map(str::to_string)
                    .collect();
                eprintln!(
                    "timing the {} proposals of `{}` for `{}`...",
                    lines.len(),
                    path.display(),
                    p.name
                );
                lines
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", path.display());
                return ExitCode::from(crate::exit::BAD_INPUT);
            }
        }
    } else {
        eprintln!(
            "generating {} proposals ({}% feasible, {}% repair, {}% block) for `{}`...",
            o.n, o.mix.0, o.mix.1, o.mix.2, p.name
        );
        match stream(&p, o.n, o.mix, 0x00A1_0055) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(crate::exit::VERDICT);
            }
        }
    };
    if let Some(path) = o.write {
        let text = lines.join("\n") + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write `{}`: {e}", path.display());
            return ExitCode::from(crate::exit::INTERNAL);
        }
        eprintln!("wrote the stream to `{}`", path.display());
    }
    let input: String = lines.join("\n") + "\n";
    let mut decide_s = Vec::new();
    let mut base_s = Vec::new();
    let mut counts = std::collections::BTreeMap::new();
    // Decisions over the policy's `deadline_us` (G5, as each decision reports it).
    let mut overruns = 0usize;
    for run in 0..o.runs {
        // The decision path exactly as `aioss decide` runs it, into a sink.
        let mut g = Governor::new(p.clone());
        let mut out = std::io::BufWriter::new(std::io::sink());
        let t = Instant::now();
        let r = crate::decide_cmd::run(&mut g, &mut input.as_bytes(), &mut out, false, false);
        decide_s.push(t.elapsed().as_secs_f64());
        if let Err(e) = r {
            eprintln!("error: {e}");
            return ExitCode::from(crate::exit::INTERNAL);
        }
        // Baseline: parse each line as JSON and print a JSON value of the same size.
        let mut out = std::io::BufWriter::new(std::io::sink());
        let t = Instant::now();
        for l in input.lines() {
            if let Ok(v) = serde_json::from_str::<Value>(l) {
                let _ = serde_json::to_writer(&mut out, &v);
                let _ = out.write_all(b"\n");
            }
        }
        let _ = out.flush();
        base_s.push(t.elapsed().as_secs_f64());
        if run == 0 {
            // Outcomes, and the time of each decision by outcome (parse and decide, no
            // printing), on a fresh governor over the same stream.
            let mut g = Governor::new(p.clone());
            for l in &lines {
                let t = Instant::now();
                let d = g.decide_line(l);
                let dt = t.elapsed().as_secs_f64();
                // (A given stream may hold lines `aioss decide` answers with an error.)
                let (k, latency) = match &d {
                    Ok(d) => {
                        overruns += usize::from(!d.deadline_met(&p));
                        (d.final_outcome.as_str(), Some(d.latency_us))
                    }
                    Err(_) => ("input error", None),
                };
                let e = counts.entry(k).or_insert((0usize, 0.0f64, Vec::new()));
                e.0 += 1;
                e.1 += dt;
                e.2.extend(latency);
            }
        }
        eprintln!(
            "run {}/{}: decide {:.3} s, parse+print {:.3} s",
            run + 1,
            o.runs,
            decide_s.last().copied().unwrap_or(0.0),
            base_s.last().copied().unwrap_or(0.0)
        );
    }
    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let n = lines.len() as f64;
    let (d, b) = (median(decide_s), median(base_s));
    let outcomes: std::collections::BTreeMap<&str, usize> =
        counts.iter().map(|(k, v)| (*k, v.0)).collect();
    println!(
        "policy:            {} ({} proposals, outcomes {:?})",
        p.name,
        lines.len(),
        outcomes
    );
    println!(
        "decide:            {:.0} decisions/s ({:.2} µs per decision, median of {} runs)",
        n / d,
        d / n * 1e6,
        o.runs
    );
    println!(
        "parse+print JSON:  {:.0} lines/s ({:.2} µs per line)",
        n / b,
        b / n * 1e6
    );
    println!(
        "ratio:             decide costs {:.2}× parsing and printing the same JSON",
        d / b
    );
    // Where the time goes: each outcome's share of the (first run's) decision time.
    let total: f64 = counts.values().map(|v| v.1).sum();
    for (k, (count, secs, latencies)) in &mut counts {
        #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
        let mean = *secs / (*count).max(1) as f64 * 1e6;
        // The governor's own `latency_us` (decide alone, no parsing); none for input errors.
        let latency = if latencies.is_empty() {
            String::new()
        } else {
            let [p50, p99, _, max] = crate::loadgen::percentiles(latencies);
            format!(", latency_us p50 {p50} p99 {p99} max {max}")
        };
        println!(
            "  {k:<22} {count:>7} decisions, mean {mean:8.2} µs, {:5.1} % of the decision time{latency}",
            100.0 * *secs / total.max(f64::MIN_POSITIVE)
        );
    }
    println!(
        "deadline (G5):     {overruns} of {} decisions over the policy's deadline_us = {} µs",
        lines.len(),
        p.governor.deadline_us
    );
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #![expect(clippy::unwrap_used, clippy::panic, reason = "tests")]
    use super::*;

    /// Caught: `aioss bench decide --policy policies/agent-tools.toml` ran 2,000,000 tries
    /// (3 minutes) and gave up, because a proposal drawn over whole ranges breaks the
    /// invariants that tie one variable to another. Here every such proposal is blocked
    /// (`a` and `b` both non-zero); only proposals that keep one of them at its fallback
    /// value 0 can be allowed or repaired.
    #[test]
    fn a_policy_whose_random_proposals_all_block_still_gets_its_mix() {
        let src = r#"
[policy]
name = "tied"
version = "1"
[action.a]
min = 0.0
max = 10.0
[action.b]
min = 0.0
max = 10.0
[fallback]
a = 0.0
b = 0.0
[[constraint]]
id = "one-of"
kind = "invariant"
expr = "a * b <= 0"
on_violation = "block"
[[constraint]]
id = "cap"
expr = "a <= 5"
"#;
        let p = aioss_core::load("tied.toml", src).unwrap_or_else(|e| panic!("{e}"));
        let lines = stream(&p, 1000, (70, 25, 5), 1).unwrap();
        assert_eq!(lines.len(), 1000);
        let mut g = Governor::new(p);
        let mut counts = [0usize; 3];
        for l in &lines {
            match g.decide_line(l).unwrap().final_outcome {
                Outcome::Allow => counts[0] += 1,
                Outcome::AllowAfterRepair => counts[1] += 1,
                Outcome::BlockNoRepair => counts[2] += 1,
                other => panic!("{other:?}: {l}"),
            }
        }
        assert_eq!(counts, [700, 250, 50]);
    }
}
