//! Tier 3 from a store: each row's empirical Lipschitz constant and each `[dynamics]`
//! equation's error ([`Estimator`]), for `aioss report --policy` and `aioss policy
//! suggest --from STORE`, which prints a diff of the policy with the bounds the records
//! support, for an operator to review (never applied by itself).

use std::collections::{HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

use aioss_audit::{Kind, Store};
use aioss_core::governor::Estimator;
use aioss_core::{Policy, Proposal};
use serde_json::Value;

use crate::exit;

/// Decisions kept for the outcome records after them.
const WINDOW: usize = 65_536;

/// The estimates of `p` from every record of `store` made under `p` (its hash).
pub fn estimate(p: &Policy, store: &mut dyn Store) -> Result<Estimator, String> {
    let mut est = Estimator::new(p);
    let mut recent: HashMap<String, (Proposal, Vec<f64>)> = HashMap::new();
    let mut order: VecDeque<String> = VecDeque::new();
    store
        .scan(&mut |r| {
            if r.policy_hash != p.hash {
                return Ok(true);
            }
            match Kind::parse(&r.kind) {
                Some(Kind::Decision) => {
                    let (Ok(prop), Ok(d)) = (
                        Proposal::parse(p, &r.proposal),
                        serde_json::from_str::<Value>(&r.decision),
                    ) else {
                        return Ok(true);
                    };
                    let Some(executed) = executed_action(p, &r.proposal, &d) else {
                        return Ok(true);
                    };
                    let time = d.get("time").and_then(Value::as_f64).unwrap_or(f64::NAN);
                    est.decision(p, &prop, &executed, time);
                    if order.len() >= WINDOW {
                        if let Some(old) = order.pop_front() {
                            recent.remove(&old);
                        }
                    }
                    order.push_back(r.decision_id.clone());
                    recent.insert(r.decision_id, (prop, executed));
                }
                Some(Kind::Outcome) => {
                    let observed = serde_json::from_str::<Value>(&r.proposal)
                        .ok()
                        .and_then(|v| serde_json::from_str::<Value>(v.get("body")?.as_str()?).ok())
                        .and_then(|b| b.get("state").map(Value::to_string))
                        .and_then(|s| Proposal::parse_state(p, &s).ok());
                    if let (Some(obs), Some((prop, executed))) =
                        (observed, recent.get(&r.decision_id))
                    {
                        est.outcome(p, prop, executed, &obs);
                    }
                }
                _ => {}
            }
            Ok(true)
        })
        .map_err(|e| e.to_string())?;
    Ok(est)
}

/// The action a decision executed, encoded: the proposal line with its `action` replaced
/// by the decision's.
fn executed_action(p: &Policy, line: &str, d: &Value) -> Option<Vec<f64>> {
    let mut v: Value = serde_json::from_str(line).ok()?;
    *v.get_mut("action")? = d.get("action")?.clone();
    Proposal::parse(p, &v.to_string()).ok().map(|x| x.action)
}

/// A suggested value: the largest observed, with a tenth more room, to 3 significant
/// digits rounded up.
fn with_room(x: f64) -> f64 {
    let y = x * 1.1;
    if !(y.is_finite() && y > 0.0) {
        return y;
    }
    let scale = 10f64.powf(y.log10().floor() - 2.0);
    // The product's rounding noise (0.4 × 1.1 = 0.44000000000000006) is not a digit.
    ((y / scale) - 1e-9).ceil() * scale
}

/// Samples needed before a declared bound is suggested lower (a bound that was exceeded is
/// suggested higher at once).
const TIGHTEN_AFTER: u64 = 100;

/// The suggested new bound for a declared `bound` and an observed `max` over `samples`:
/// higher when exceeded, lower when the records stay under half of it.
fn suggested(bound: f64, max: f64, samples: u64) -> Option<f64> {
    if samples == 0 {
        return None;
    }
    if max > bound || (samples >= TIGHTEN_AFTER && max < bound / 2.0) {
        let s = with_room(max);
        (s.is_finite() && s != bound).then_some(s)
    } else {
        None
    }
}

/// `aioss policy suggest --from STORE POLICY`: a unified diff of the policy file with the
/// `lipschitz` and `error_bound` values the records support.
pub fn suggest(policy: &Path, store: &str) -> ExitCode {
    let p = match crate::policy_cmd::load_file(policy) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let text = match std::fs::read_to_string(policy) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", policy.display());
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let mut s = match aioss_audit::open_store(store, false) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::BAD_INPUT);
        }
    };
    let est = match estimate(&p, s.as_mut()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    for l in est.describe(&p) {
        println!("# {l}");
    }
    let edits = edits(&p, &est, &text);
    if edits.is_empty() {
        println!("# no change suggested");
        return ExitCode::SUCCESS;
    }
    print!("{}", diff(&policy.display().to_string(), &text, &edits));
    ExitCode::SUCCESS
}

/// Line edits: (0-based line, new text).
fn edits(p: &Policy, est: &Estimator, text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    // `lipschitz`: per constraint, the largest quotient of its rows.
    for (ci, c) in p.constraints.iter().enumerate() {
        let Some(l) = c.lipschitz else { continue };
        let (mut max, mut n) = (0.0f64, 0u64);
        for (row, e) in p.lattice.rows.iter().zip(est.rows()) {
            if row.constraint == ci {
                max = max.max(e.max_quotient);
                n += e.samples;
            }
        }
        let Some(new) = suggested(l, max, n) else {
            continue;
        };
        if let Some(at) = key_line_in_constraint(&lines, &c.id, "lipschitz") {
            out.push((at, format!("lipschitz = {}", sig3(new))));
        }
    }
    // `error_bound`: one inline table in [dynamics].
    if let Some(dy) = &p.dynamics {
        let mut changed = false;
        let mut parts = Vec::new();
        for (k, ((si, _), e)) in dy.equations.iter().zip(est.equations()).enumerate() {
            let name = p.states.get(*si).map_or("?", |s| s.name.as_str());
            let bound = dy.error_bound.get(k).copied().unwrap_or(0.0);
            let b = match suggested(bound, e.max_error, e.samples) {
                Some(b) => {
                    changed = true;
                    b
                }
                None => bound,
            };
            parts.push(format!("{name} = {}", sig3(b)));
        }
        if changed {
            if let Some(at) = key_line_in_section(&lines, "[dynamics]", "error_bound") {
                out.push((at, format!("error_bound = {{ {} }}", parts.join(", "))));
            }
        }
    }
    out.sort_by_key(|(l, _)| *l);
    out
}

/// The line of `key = …` in the `[[constraint]]` whose `id` is `id`.
fn key_line_in_constraint(lines: &[&str], id: &str, key: &str) -> Option<usize> {
    let mut in_it = false;
    let mut found = None;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            if in_it {
                return found;
            }
            in_it = false;
            found = None;
            continue;
        }
        if is_key(t, "id") && t.contains(&format!("\"{id}\"")) {
            in_it = true;
        }
        if is_key(t, key) {
            found = Some(i);
        }
    }
    in_it.then_some(found).flatten()
}

/// The line of `key = …` (on one line) in `section`.
fn key_line_in_section(lines: &[&str], section: &str, key: &str) -> Option<usize> {
    let mut in_it = false;
    for (i, l) in lines.iter().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            in_it = t == section;
            continue;
        }
        if in_it && is_key(t, key) && t.contains('{') && t.contains('}') {
            return Some(i);
        }
    }
    None
}

/// `x` as written in a policy: at most three significant digits (what [`with_room`]
/// rounds to), without the binary rounding noise of the product.
fn sig3(x: f64) -> String {
    if !(x.is_finite() && x > 0.0) {
        return format!("{x}");
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "a small non-negative count of decimals"
    )]
    let decimals = (2.0 - x.log10().floor()).max(0.0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn is_key(t: &str, key: &str) -> bool {
    t.strip_prefix(key)
        .is_some_and(|rest| rest.trim_start().starts_with('='))
}

/// A unified diff of `text` with `edits` (one hunk per edited line, three lines of
/// context).
fn diff(name: &str, text: &str, edits: &[(usize, String)]) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut o = String::new();
    // `a/` and `b/` prefixes (as `git diff` and `patch -p1` expect) for a relative path.
    let (a, b) = if name.starts_with('/') {
        ("", "")
    } else {
        ("a/", "b/")
    };
    let _ = writeln!(o, "--- {a}{name}\n+++ {b}{name}");
    for (at, new) in edits {
        let from = at.saturating_sub(3);
        let to = (at + 4).min(lines.len());
        let n = to - from;
        let _ = writeln!(o, "@@ -{},{n} +{},{n} @@", from + 1, from + 1);
        for (i, l) in lines.iter().enumerate().take(to).skip(from) {
            if i == *at {
                let _ = writeln!(o, "-{l}\n+{new}");
            } else {
                let _ = writeln!(o, " {l}");
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn room_rounds_up_to_three_digits() {
        assert_eq!(sig3(with_room(1.5)), "1.65");
        assert!(with_room(0.00123) >= 0.00123 * 1.1);
        assert_eq!(suggested(1.0, 0.4, 10), None, "too few samples to tighten");
        assert_eq!(suggested(1.0, 0.4, 200).map(sig3).as_deref(), Some("0.44"));
        assert_eq!(suggested(1.0, 1.5, 1).map(sig3).as_deref(), Some("1.65"));
        assert_eq!(suggested(1.0, 0.8, 500), None);
        assert_eq!(sig3(0.004410000000000001), "0.00441");
        assert_eq!(sig3(10.5), "10.5");
        assert_eq!(sig3(1200.0), "1200");
    }
}
