//! `aioss report`: the human-verifiable governance report, as Markdown, HTML (one
//! self-contained file with inline SVG charts) or JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::record::Kind;
use crate::verify::{self, Report as Verification};
use crate::{Error, Store};

/// The outcomes, in the order the report shows them.
pub const OUTCOMES: [&str; 6] = [
    "ALLOW",
    "ALLOW_AFTER_REPAIR",
    "HOLD_FOR_CONFIRMATION",
    "BLOCK_NO_REPAIR",
    "REVIEW_AUDIT",
    "FAILED_GOVERNANCE",
];

const COLORS: [&str; 6] = [
    "#2e7d32", "#1565c0", "#f9a825", "#c62828", "#6a1b9a", "#37474f",
];

/// How many flagged decisions the report lists.
pub const FLAGGED_CAP: usize = 200;

/// Trend buckets.
const BUCKETS: usize = 12;

/// A decision that needs a person: HOLD, BLOCK, REVIEW or FAILED.
#[derive(Clone, Debug, PartialEq)]
pub struct Flagged {
    /// Record seq.
    pub seq: u64,
    /// Decision id.
    pub decision_id: String,
    /// The proposal id, if it had one.
    pub id: Option<String>,
    /// Agent.
    pub agent: String,
    /// Time (RFC 3339).
    pub timestamp: String,
    /// Final outcome.
    pub outcome: String,
    /// The decision's reasons.
    pub reasons: Vec<String>,
}

/// Everything the report says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// The store, as named on the command line.
    pub store: String,
    /// Records.
    pub records: u64,
    /// Decisions.
    pub decisions: u64,
    /// Input errors, by code (refused lines, and requests `aioss serve` refused).
    pub input_errors: BTreeMap<String, u64>,
    /// Other events of `aioss serve` (answers to holds, outcomes, policy reloads, state
    /// snapshots), by kind.
    pub events: BTreeMap<String, u64>,
    /// Policies seen: `name version hash` → records.
    pub policies: BTreeMap<String, u64>,
    /// First and last record time (RFC 3339).
    pub span: Option<(String, String)>,
    /// Decisions by outcome.
    pub outcomes: BTreeMap<String, u64>,
    /// Trend: bucket start (RFC 3339) and counts per outcome (in [`OUTCOMES`] order).
    pub trend: Vec<(String, [u64; 6])>,
    /// Flagged decisions (at most [`FLAGGED_CAP`]).
    pub flagged: Vec<Flagged>,
    /// Flagged decisions not listed.
    pub flagged_omitted: u64,
    /// Constraint id → times violated.
    pub violated: Vec<(String, u64)>,
    /// Repair distances (of decisions that have one).
    pub distances: Vec<f64>,
    /// Relaxed constraint id → (times, total slack).
    pub relaxed: Vec<(String, u64, f64)>,
    /// Failure mode → times.
    pub failure_modes: Vec<(String, u64)>,
    /// Latency percentiles in µs: p50, p90, p99, p99.9, max.
    pub latency: Vec<(String, u64)>,
    /// The verification of chain and signatures.
    pub verification: Verification,
    /// Tier 3's estimates against what the policy declares, one line each (filled when
    /// the report is given the policy: `aioss report --policy`).
    pub tier3: Vec<String>,
}

/// A field of a JSON object, or `null`.
fn at<'a>(v: &'a Value, k: &str) -> &'a Value {
    v.get(k).unwrap_or(&Value::Null)
}

fn rank(m: BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    v
}

fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index into a sorted sample"
    )]
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied().unwrap_or(0)
}

/// Read a store and gather the report.
pub fn gather(store: &mut dyn Store, name: &str) -> Result<Stats, Error> {
    let verification = verify::verify(store, None)?;
    let mut s = Stats {
        store: name.to_string(),
        ..Stats::default()
    };
    let mut times: Vec<(f64, usize)> = Vec::new();
    let mut violated: BTreeMap<String, u64> = BTreeMap::new();
    let mut relaxed: BTreeMap<String, (u64, f64)> = BTreeMap::new();
    let mut failure: BTreeMap<String, u64> = BTreeMap::new();
    let mut latencies: Vec<u64> = Vec::new();
    let mut first: Option<String> = None;
    let mut last: Option<String> = None;
    store.scan(&mut |r| {
        s.records += 1;
        *s.policies
            .entry(format!(
                "{} {} {}",
                r.policy_name, r.policy_version, r.policy_hash
            ))
            .or_insert(0) += 1;
        if first.is_none() {
            first = Some(r.timestamp.clone());
        }
        last = Some(r.timestamp.clone());
        let v: Value = serde_json::from_str(&r.decision).unwrap_or(Value::Null);
        if matches!(
            Kind::parse(&r.kind),
            Some(
                Kind::Confirmation
                    | Kind::Outcome
                    | Kind::PolicyReload
                    | Kind::AgentReset
                    | Kind::Snapshot,
            )
        ) {
            *s.events.entry(r.kind.clone()).or_insert(0) += 1;
            return Ok(true);
        }
        if Kind::parse(&r.kind) != Some(Kind::Decision) {
            let code = v
                .pointer("/error/code")
                .and_then(Value::as_str)
                .unwrap_or("unknown")
                .to_string();
            *s.input_errors.entry(code).or_insert(0) += 1;
            return Ok(true);
        }
        s.decisions += 1;
        latencies.push(r.latency_us);
        let outcome = at(&v, "final_outcome")
            .as_str()
            .unwrap_or("UNKNOWN")
            .to_string();
        *s.outcomes.entry(outcome.clone()).or_insert(0) += 1;
        if let Some(t) = r.time.parse::<f64>().ok().filter(|t| t.is_finite()) {
            if let Some(k) = OUTCOMES.iter().position(|o| *o == outcome) {
                times.push((t, k));
            }
        }
        if !matches!(outcome.as_str(), "ALLOW" | "ALLOW_AFTER_REPAIR") {
            if s.flagged.len() < FLAGGED_CAP {
                s.flagged.push(Flagged {
                    seq: r.seq,
                    decision_id: r.decision_id.clone(),
                    id: at(&v, "id").as_str().map(str::to_string),
                    agent: at(&v, "agent").as_str().unwrap_or("").to_string(),
                    timestamp: r.timestamp.clone(),
                    outcome: outcome.clone(),
                    reasons: at(&v, "reasons")
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(str::to_string)
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            } else {
                s.flagged_omitted += 1;
            }
        }
        for c in at(&v, "constraints").as_array().into_iter().flatten() {
            if at(c, "status") == "VIOLATED" {
                if let Some(id) = at(c, "id").as_str() {
                    *violated.entry(id.to_string()).or_insert(0) += 1;
                }
            }
        }
        if let Some(d) = at(&v, "distance").as_f64() {
            if outcome == "ALLOW_AFTER_REPAIR" {
                s.distances.push(d);
            }
        }
        for x in at(&v, "relaxed").as_array().into_iter().flatten() {
            if let Some(id) = at(x, "id").as_str() {
                let e = relaxed.entry(id.to_string()).or_insert((0, 0.0));
                e.0 += 1;
                e.1 += at(x, "slack").as_f64().unwrap_or(0.0);
            }
        }
        for f in at(&v, "failure_modes").as_array().into_iter().flatten() {
            if let Some(f) = f.as_str() {
                // Under its current name (`deadline_budget` is read as `deadline_overrun`).
                let name = aioss_core::failure::FailureMode::parse(f).map_or(f, |m| m.name());
                *failure.entry(name.to_string()).or_insert(0) += 1;
            }
        }
        // G5 is measured, so it is reported beside `latency_us`, not in `failure_modes`
        // (see `aioss_core::governor`); the report counts it with them.
        if at(&v, "timing").get("met") == Some(&Value::Bool(false)) {
            *failure.entry("deadline_missed".to_string()).or_insert(0) += 1;
        }
        Ok(true)
    })?;
    s.span = first.zip(last);
    s.violated = rank(violated);
    s.failure_modes = rank(failure);
    let mut rel: Vec<(String, u64, f64)> =
        relaxed.into_iter().map(|(k, (n, t))| (k, n, t)).collect();
    rel.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    s.relaxed = rel;
    latencies.sort_unstable();
    s.latency = [
        ("p50", 0.5),
        ("p90", 0.9),
        ("p99", 0.99),
        ("p99.9", 0.999),
        ("max", 1.0),
    ]
    .iter()
    .map(|(n, q)| ((*n).to_string(), percentile(&latencies, *q)))
    .collect();
    s.distances.sort_by(f64::total_cmp);
    // Trend: equal time buckets from the first to the last decision.
    if let (Some(lo), Some(hi)) = (
        times.iter().map(|t| t.0).reduce(f64::min),
        times.iter().map(|t| t.0).reduce(f64::max),
    ) {
        let width = ((hi - lo) / BUCKETS as f64).max(1e-9);
        let mut b = vec![[0u64; 6]; BUCKETS];
        for (t, k) in &times {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "a bucket index, clamped"
            )]
            let i = (((t - lo) / width) as usize).min(BUCKETS - 1);
            if let Some(slot) = b.get_mut(i).and_then(|row| row.get_mut(*k)) {
                *slot += 1;
            }
        }
        s.trend = b
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                #[expect(clippy::cast_precision_loss, reason = "a small index")]
                let start = lo + width * i as f64;
                (crate::record::rfc3339(start), row)
            })
            .collect();
    }
    s.verification = verification;
    Ok(s)
}

/// A histogram of repair distances: `(lo, hi, count)` for equal bins, ⌈√count⌉ of them (at
/// most 10; one when all values are equal).
pub fn histogram(sorted: &[f64]) -> Vec<(f64, f64, u64)> {
    let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
        return Vec::new();
    };
    // As many bins as the data can fill: ⌈√count⌉, at most 10, and one when every value
    // is the same (2 repairs were spread over 10 bars, 8 of them empty).
    let n = if hi > lo {
        (1..=10usize).find(|k| k * k >= sorted.len()).unwrap_or(10)
    } else {
        1
    };
    let w = ((hi - lo) / n as f64).max(1e-12);
    let mut c = vec![0u64; n];
    for x in sorted {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "clamped index"
        )]
        let i = (((x - lo) / w) as usize).min(n - 1);
        if let Some(slot) = c.get_mut(i) {
            *slot += 1;
        }
    }
    c.into_iter()
        .enumerate()
        .map(|(i, k)| {
            #[expect(clippy::cast_precision_loss, reason = "a small index")]
            let a = lo + w * i as f64;
            (a, a + w, k)
        })
        .collect()
}

fn verification_line(v: &Verification) -> String {
    match &v.problem {
        None => format!(
            "VERIFIED: {} records, hash chain intact; {} of {} checkpoint signatures valid{}",
            v.count,
            v.signatures_ok,
            v.checkpoints,
            v.last_checkpoint.map_or_else(
                || " (no signed checkpoint)".to_string(),
                |s| format!(", last signed head at record {s}")
            )
        ),
        Some(p) => format!(
            "BROKEN at record {} ({}): {}",
            p.seq,
            p.kind.as_str(),
            p.message
        ),
    }
}

/// The report as JSON.
pub fn to_json(s: &Stats) -> String {
    let v = &s.verification;
    let j = json!({
        "store": s.store,
        "records": s.records,
        "decisions": s.decisions,
        "input_errors": s.input_errors,
        "events": s.events,
        "policies": s.policies,
        "span": s.span.as_ref().map(|(a, b)| json!({"from": a, "to": b})),
        "outcomes": s.outcomes,
        "trend": s.trend.iter().map(|(t, c)| {
            let mut m = serde_json::Map::new();
            m.insert("from".into(), json!(t));
            for (o, n) in OUTCOMES.iter().zip(c) {
                m.insert((*o).into(), json!(n));
            }
            Value::Object(m)
        }).collect::<Vec<_>>(),
        "flagged": s.flagged.iter().map(|f| json!({
            "seq": f.seq, "decision_id": f.decision_id, "id": f.id, "agent": f.agent,
            "timestamp": f.timestamp, "final_outcome": f.outcome, "reasons": f.reasons,
        })).collect::<Vec<_>>(),
        "flagged_omitted": s.flagged_omitted,
        "most_violated": s.violated.iter().map(|(k, n)| json!({"id": k, "count": n})).collect::<Vec<_>>(),
        "repairs": {
            "count": s.distances.len(),
            "distance": {
                "min": s.distances.first(),
                "median": s.distances.get(s.distances.len() / 2),
                "max": s.distances.last(),
            },
            "histogram": histogram(&s.distances).iter().map(|(a, b, n)| json!({"from": a, "to": b, "count": n})).collect::<Vec<_>>(),
        },
        "relaxations": s.relaxed.iter().map(|(k, n, t)| json!({"id": k, "count": n, "total_slack": t})).collect::<Vec<_>>(),
        "failure_modes": s.failure_modes.iter().map(|(k, n)| json!({"mode": k, "count": n})).collect::<Vec<_>>(),
        "tier3": s.tier3,
        "latency_us": s.latency.iter().map(|(k, n)| (k.clone(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "verification": {
            "ok": v.ok(),
            "records": v.count,
            "head": v.head.as_ref().map(|(q, h)| json!({"seq": q, "hash": h})),
            "checkpoints": v.checkpoints,
            "signatures_ok": v.signatures_ok,
            "public_keys": v.public_keys,
            "problem": v.problem.as_ref().map(|p| json!({"seq": p.seq, "kind": p.kind.as_str(), "message": p.message})),
            "summary": verification_line(v),
        },
        "verify_yourself": [
            format!("aioss audit verify {}", s.store),
            format!("aioss audit replay {} --policy POLICY.toml", s.store),
        ],
    });
    let mut out = serde_json::to_string_pretty(&j).unwrap_or_default();
    out.push('\n');
    out
}

fn pct(n: u64, total: u64) -> String {
    if total == 0 {
        return "0.0%".into();
    }
    #[expect(clippy::cast_precision_loss, reason = "a percentage")]
    let p = n as f64 * 100.0 / total as f64;
    format!("{p:.1}%")
}

fn md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// The report as Markdown.
pub fn to_markdown(s: &Stats) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# AIOSS governance report\n");
    let _ = writeln!(o, "Store: `{}`  ", s.store);
    if let Some((a, b)) = &s.span {
        let _ = writeln!(o, "Period: {a} to {b}  ");
    }
    let events: u64 = s.events.values().sum();
    let _ = writeln!(
        o,
        "Records: {} ({} decisions, {} input errors{})\n",
        s.records,
        s.decisions,
        s.input_errors.values().sum::<u64>(),
        if events > 0 {
            format!(
                ", {events} server events: {}",
                s.events
                    .iter()
                    .map(|(k, n)| format!("{n} {k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            String::new()
        }
    );
    let _ = writeln!(
        o,
        "**Verification:** {}\n",
        verification_line(&s.verification)
    );
    if let Some((q, h)) = &s.verification.head {
        let _ = writeln!(o, "Head: record {q}, hash `{h}`\n");
    }
    let _ = writeln!(o, "## Policies\n");
    for (p, n) in &s.policies {
        let _ = writeln!(o, "- `{p}`: {n} records");
    }
    let _ = writeln!(
        o,
        "\n## Outcomes\n\n| outcome | decisions | share |\n|---|---:|---:|"
    );
    for out in OUTCOMES {
        let n = s.outcomes.get(out).copied().unwrap_or(0);
        let _ = writeln!(o, "| {out} | {n} | {} |", pct(n, s.decisions));
    }
    if !s.trend.is_empty() {
        let _ = writeln!(
            o,
            "\n### Trend\n\n| from | {} |\n|---|{}",
            OUTCOMES.join(" | "),
            "---:|".repeat(6)
        );
        for (t, c) in &s.trend {
            let cells: Vec<String> = c.iter().map(u64::to_string).collect();
            let _ = writeln!(o, "| {t} | {} |", cells.join(" | "));
        }
    }
    let _ = writeln!(o, "\n## Decisions that need a person\n");
    if s.flagged.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(
            o,
            "| record | decision | agent | outcome | reasons |\n|---:|---|---|---|---|"
        );
        for f in &s.flagged {
            let _ = writeln!(
                o,
                "| {} | `{}`{} | {} | {} | {} |",
                f.seq,
                f.decision_id,
                f.id.as_ref()
                    .map(|i| format!(" ({})", md_cell(i)))
                    .unwrap_or_default(),
                md_cell(&f.agent),
                f.outcome,
                md_cell(&f.reasons.join("; "))
            );
        }
        if s.flagged_omitted > 0 {
            let _ = writeln!(
                o,
                "\n{} more not listed (the list is capped at {FLAGGED_CAP}).",
                s.flagged_omitted
            );
        }
    }
    let _ = writeln!(o, "\n## Most violated constraints\n");
    list_md(
        &mut o,
        s.violated
            .iter()
            .take(15)
            .map(|(k, n)| format!("`{k}`: {n}")),
    );
    let _ = writeln!(o, "\n## Repairs\n");
    if s.distances.is_empty() {
        let _ = writeln!(o, "None.");
    } else {
        let _ = writeln!(
            o,
            "{} repairs; distance min {:.4}, median {:.4}, max {:.4}\n\n| distance | repairs |\n|---|---:|",
            s.distances.len(),
            s.distances.first().copied().unwrap_or(0.0),
            s.distances.get(s.distances.len() / 2).copied().unwrap_or(0.0),
            s.distances.last().copied().unwrap_or(0.0)
        );
        for (a, b, n) in histogram(&s.distances) {
            let _ = writeln!(o, "| {a:.4} – {b:.4} | {n} |");
        }
    }
    let _ = writeln!(o, "\n## Relaxations\n");
    list_md(
        &mut o,
        s.relaxed
            .iter()
            .map(|(k, n, t)| format!("`{k}`: {n} times, total slack {t:.4}")),
    );
    let _ = writeln!(o, "\n## Failure modes\n");
    list_md(
        &mut o,
        s.failure_modes.iter().map(|(k, n)| format!("`{k}`: {n}")),
    );
    if !s.tier3.is_empty() {
        let _ = writeln!(o, "\n## Tier 3: observed against declared\n");
        list_md(&mut o, s.tier3.iter().cloned());
    }
    let _ = writeln!(o, "\n## Input errors\n");
    list_md(
        &mut o,
        s.input_errors.iter().map(|(k, n)| format!("`{k}`: {n}")),
    );
    let _ = writeln!(o, "\n## Latency (µs)\n\n| percentile | µs |\n|---|---:|");
    for (k, n) in &s.latency {
        let _ = writeln!(o, "| {k} | {n} |");
    }
    let _ = writeln!(
        o,
        "\n## Verify it yourself\n\n```sh\naioss audit verify {}\naioss audit replay {} --policy POLICY.toml\n```\n\n\
         The first recomputes every record's hash, the chain and each checkpoint's Ed25519 signature; \
         the second re-decides every recorded proposal and reports any decision that differs.",
        s.store, s.store
    );
    o
}

fn list_md(o: &mut String, items: impl Iterator<Item = String>) {
    let mut any = false;
    for i in items {
        any = true;
        let _ = writeln!(o, "- {i}");
    }
    if !any {
        let _ = writeln!(o, "None.");
    }
}

/// Escape text for HTML/XML.
/// [`esc`], with each `` `name` `` in backticks set as `<code>name</code>` (reasons quote
/// names that way); an unpaired backtick stays as it is.
pub fn esc_code(s: &str) -> String {
    let parts: Vec<&str> = s.split('`').collect();
    let mut o = String::with_capacity(s.len() + 16);
    let n = parts.len();
    for (i, part) in parts.iter().enumerate() {
        // Odd pieces lie between a pair of backticks, unless the last backtick is unpaired.
        if i % 2 == 1 && !(n.is_multiple_of(2) && i + 1 == n) {
            o.push_str("<code>");
            o.push_str(&esc(part));
            o.push_str("</code>");
        } else {
            if i % 2 == 1 {
                o.push('`');
            }
            o.push_str(&esc(part));
        }
    }
    o
}

/// Text for HTML: `&`, `<`, `>` and quotes escaped, control characters blanked.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

#[expect(clippy::cast_precision_loss, reason = "chart geometry")]
fn f(x: u64) -> f64 {
    x as f64
}

/// Horizontal bars, one per label.
fn svg_bars(title: &str, rows: &[(String, u64, &str)], unit: &str) -> String {
    let w = 640.0;
    let bar_h = 22.0;
    let left = 190.0;
    let h = 30.0 + bar_h * rows.len().max(1) as f64 + 10.0;
    let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
    let mut o = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"0\" y=\"16\" class=\"t\">{}</text>",
        esc(title),
        esc(title)
    );
    for (i, (label, n, color)) in rows.iter().enumerate() {
        let y = 28.0 + bar_h * i as f64;
        let bw = (w - left - 90.0) * f(*n) / f(max);
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect x=\"{left}\" y=\"{:.1}\" width=\"{bw:.1}\" height=\"{:.1}\" fill=\"{color}\"><title>{}: {n}{unit}</title></rect>\
             <text x=\"{:.1}\" y=\"{:.1}\">{n}{unit}</text>",
            left - 8.0,
            y + 15.0,
            esc(label),
            y + 3.0,
            bar_h - 6.0,
            esc(label),
            left + bw + 6.0,
            y + 15.0
        );
    }
    o.push_str("</svg>");
    o
}

/// Stacked columns: outcome counts per time bucket.
fn svg_trend(trend: &[(String, [u64; 6])]) -> String {
    let (w, h, top, bottom, left) = (640.0, 290.0, 28.0, 70.0, 50.0);
    let plot_h = h - top - bottom;
    let max = trend
        .iter()
        .map(|(_, c)| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1);
    let col = (w - left - 10.0) / trend.len().max(1) as f64;
    let mut o = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"Outcomes over time\">\
         <text x=\"0\" y=\"16\" class=\"t\">Outcomes over time</text>\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{max}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>",
        top + plot_h,
        w - 10.0,
        top + plot_h,
        left - 6.0,
        top + 10.0,
        left - 6.0,
        top + plot_h
    );
    for (i, (t, c)) in trend.iter().enumerate() {
        let x = left + col * i as f64 + 2.0;
        let mut y = top + plot_h;
        for (k, n) in c.iter().enumerate() {
            if *n == 0 {
                continue;
            }
            let bh = plot_h * f(*n) / f(max);
            y -= bh;
            let _ = write!(
                o,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} from {}: {n}</title></rect>",
                (col - 4.0).max(1.0),
                COLORS.get(k).copied().unwrap_or("#999"),
                OUTCOMES.get(k).copied().unwrap_or(""),
                esc(t)
            );
        }
        if i == 0 || i + 1 == trend.len() {
            // The last label ends at the right edge (it was clipped there).
            let (lx, anchor) = if i == 0 {
                (x, "start")
            } else {
                (w - 2.0, "end")
            };
            let _ = write!(
                o,
                "<text x=\"{lx:.1}\" y=\"{:.1}\" class=\"s\" text-anchor=\"{anchor}\">{}</text>",
                top + plot_h + 16.0,
                esc(t.get(..19).unwrap_or(t))
            );
        }
    }
    // Legend.
    // Whole names (they were cut at 13 characters), in two rows of three.
    for (k, name) in OUTCOMES.iter().enumerate() {
        let x = left + 190.0 * (k % 3) as f64;
        let y = h - 30.0 + 16.0 * (k / 3) as f64;
        let _ = write!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"10\" height=\"10\" fill=\"{}\"/><text x=\"{:.1}\" y=\"{:.1}\" class=\"s\">{}</text>",
            y - 9.0,
            COLORS.get(k).copied().unwrap_or("#999"),
            x + 13.0,
            y,
            name
        );
    }
    o.push_str("</svg>");
    o
}

/// Columns: a histogram.
fn svg_hist(title: &str, bins: &[(f64, f64, u64)]) -> String {
    let (w, h, top, bottom, left) = (640.0, 220.0, 28.0, 30.0, 50.0);
    let plot_h = h - top - bottom;
    let max = bins.iter().map(|b| b.2).max().unwrap_or(0).max(1);
    let col = (w - left - 10.0) / bins.len().max(1) as f64;
    let mut o = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\">\
         <text x=\"0\" y=\"16\" class=\"t\">{}</text>\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#999\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{max}</text>",
        esc(title),
        esc(title),
        top + plot_h,
        w - 10.0,
        top + plot_h,
        left - 6.0,
        top + 10.0
    );
    for (i, (a, b, n)) in bins.iter().enumerate() {
        let x = left + col * i as f64 + 1.0;
        let bh = plot_h * f(*n) / f(max);
        let _ = write!(
            o,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" fill=\"#1565c0\"><title>{a:.4} to {b:.4}: {n}</title></rect>\
             <text x=\"{x:.1}\" y=\"{:.1}\" class=\"s\">{a:.3}</text>",
            top + plot_h - bh,
            (col - 2.0).max(1.0),
            top + plot_h + 14.0
        );
    }
    o.push_str("</svg>");
    o
}

const CSS: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:980px;color:#222;padding:0 1em}\
h1{margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}\
.ok{background:#e8f5e9;border-left:6px solid #2e7d32;padding:.6em 1em}.bad{background:#ffebee;border-left:6px solid #c62828;padding:.6em 1em}\
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}\
th{background:#f5f5f5}.n{text-align:right}code,pre{background:#f5f5f5}pre{padding:.8em}\
svg text{font-size:12px;fill:#333}svg text.t{font-size:14px;font-weight:bold}svg text.s{font-size:10px}\
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #ddd;border-radius:6px;padding:.5em 1em;min-width:120px}\
.card b{display:block;font-size:150%}";

/// The report as one self-contained HTML file (well-formed XHTML, no external resources),
/// with inline SVG charts.
pub fn to_html(s: &Stats) -> String {
    let v = &s.verification;
    let mut o = String::new();
    o.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>");
    let _ = write!(
        o,
        "<title>AIOSS governance report: {}</title><style>{CSS}</style></head><body>",
        esc(&s.store)
    );
    let _ = write!(
        o,
        "<h1>AIOSS governance report</h1><p>Store <code>{}</code>",
        esc(&s.store)
    );
    if let Some((a, b)) = &s.span {
        let _ = write!(o, ", {} to {}", esc(a), esc(b));
    }
    o.push_str("</p>");
    let _ = write!(
        o,
        "<p class=\"{}\"><b>{}</b></p>",
        if v.ok() { "ok" } else { "bad" },
        esc(&verification_line(v))
    );
    let flagged: u64 = s
        .outcomes
        .iter()
        .filter(|(k, _)| !matches!(k.as_str(), "ALLOW" | "ALLOW_AFTER_REPAIR"))
        .map(|(_, n)| n)
        .sum();
    let _ = write!(
        o,
        "<div class=\"cards\"><div class=\"card\"><b>{}</b>decisions</div><div class=\"card\"><b>{}</b>allowed as proposed</div>\
         <div class=\"card\"><b>{}</b>repaired</div><div class=\"card\"><b>{flagged}</b>need a person</div>\
         <div class=\"card\"><b>{}</b>input errors</div><div class=\"card\"><b>{} µs</b>p99 latency</div></div>",
        s.decisions,
        s.outcomes.get("ALLOW").copied().unwrap_or(0),
        s.outcomes.get("ALLOW_AFTER_REPAIR").copied().unwrap_or(0),
        s.input_errors.values().sum::<u64>(),
        s.latency.iter().find(|l| l.0 == "p99").map_or(0, |l| l.1)
    );
    o.push_str("<h2>Outcomes</h2>");
    let rows: Vec<(String, u64, &str)> = OUTCOMES
        .iter()
        .zip(COLORS)
        .map(|(k, c)| {
            (
                (*k).to_string(),
                s.outcomes.get(*k).copied().unwrap_or(0),
                c,
            )
        })
        .collect();
    o.push_str(&svg_bars("Decisions by outcome", &rows, ""));
    if !s.trend.is_empty() {
        o.push_str(&svg_trend(&s.trend));
    }
    o.push_str("<h2>Decisions that need a person</h2>");
    if s.flagged.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        o.push_str("<table><tr><th>record</th><th>decision</th><th>agent</th><th>outcome</th><th>reasons</th></tr>");
        for fl in &s.flagged {
            let _ = write!(
                o,
                "<tr><td class=\"n\">{}</td><td><code>{}</code>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                fl.seq,
                esc(&fl.decision_id),
                fl.id.as_ref().map(|i| format!(" ({})", esc(i))).unwrap_or_default(),
                esc(&fl.agent),
                esc(&fl.outcome),
                fl.reasons.iter().map(|r| esc_code(r)).collect::<Vec<_>>().join("<br/>")
            );
        }
        o.push_str("</table>");
        if s.flagged_omitted > 0 {
            let _ = write!(
                o,
                "<p>{} more not listed (the list is capped at {FLAGGED_CAP}).</p>",
                s.flagged_omitted
            );
        }
    }
    o.push_str("<h2>Most violated constraints</h2>");
    if s.violated.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        let rows: Vec<(String, u64, &str)> = s
            .violated
            .iter()
            .take(12)
            .map(|(k, n)| (k.clone(), *n, "#c62828"))
            .collect();
        o.push_str(&svg_bars("Times violated (as proposed)", &rows, ""));
    }
    o.push_str("<h2>Repairs</h2>");
    if s.distances.is_empty() {
        o.push_str("<p>None.</p>");
    } else {
        let _ = write!(
            o,
            "<p>{} repairs; distance min {:.4}, median {:.4}, max {:.4}.</p>",
            s.distances.len(),
            s.distances.first().copied().unwrap_or(0.0),
            s.distances
                .get(s.distances.len() / 2)
                .copied()
                .unwrap_or(0.0),
            s.distances.last().copied().unwrap_or(0.0)
        );
        o.push_str(&svg_hist("Repair distance", &histogram(&s.distances)));
    }
    o.push_str("<h2>Relaxations and failure modes</h2>");
    html_table(
        &mut o,
        "relaxed constraint",
        s.relaxed
            .iter()
            .map(|(k, n, t)| (k.clone(), format!("{n} times, total slack {t:.4}"))),
    );
    html_table(
        &mut o,
        "failure mode",
        s.failure_modes
            .iter()
            .map(|(k, n)| (k.clone(), n.to_string())),
    );
    if !s.tier3.is_empty() {
        o.push_str("<h2>Tier 3: observed against declared</h2><ul>");
        for l in &s.tier3 {
            let _ = write!(o, "<li>{}</li>", esc(l));
        }
        o.push_str("</ul>");
    }
    html_table(
        &mut o,
        "input error",
        s.input_errors
            .iter()
            .map(|(k, n)| (k.clone(), n.to_string())),
    );
    o.push_str("<h2>Latency</h2>");
    let rows: Vec<(String, u64, &str)> = s
        .latency
        .iter()
        .map(|(k, n)| (k.clone(), *n, "#00838f"))
        .collect();
    o.push_str(&svg_bars("Decision latency percentiles", &rows, " µs"));
    o.push_str("<h2>Chain and signatures</h2><table>");
    let _ = write!(o, "<tr><th>records</th><td>{}</td></tr>", v.count);
    if let Some((q, h)) = &v.head {
        let _ = write!(
            o,
            "<tr><th>head</th><td>record {q}, <code>{}</code></td></tr>",
            esc(h)
        );
    }
    let _ = write!(
        o,
        "<tr><th>checkpoints</th><td>{} ({} signatures valid)</td></tr>",
        v.checkpoints, v.signatures_ok
    );
    for k in &v.public_keys {
        let _ = write!(
            o,
            "<tr><th>signing key</th><td><code>{}</code></td></tr>",
            esc(k)
        );
    }
    o.push_str("</table><h2>Policies</h2><ul>");
    for (p, n) in &s.policies {
        let _ = write!(o, "<li><code>{}</code>: {n} records</li>", esc(p));
    }
    let _ = write!(
        o,
        "</ul><h2>Verify it yourself</h2><pre>aioss audit verify {}\naioss audit replay {} --policy POLICY.toml</pre>\
         <p>The first recomputes every record's hash, the chain and each checkpoint's Ed25519 signature; \
         the second re-decides every recorded proposal and reports any decision that differs.</p></body></html>\n",
        esc(&s.store),
        esc(&s.store)
    );
    o
}

fn html_table(o: &mut String, what: &str, rows: impl Iterator<Item = (String, String)>) {
    let mut any = false;
    for (k, v) in rows {
        if !any {
            let _ = write!(o, "<table><tr><th>{}</th><th>count</th></tr>", esc(what));
            any = true;
        }
        let _ = write!(
            o,
            "<tr><td><code>{}</code></td><td>{}</td></tr>",
            esc(&k),
            esc(&v)
        );
    }
    if any {
        o.push_str("</table>");
    } else {
        let _ = write!(o, "<p>No {}s.</p>", esc(what));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    /// Issue 23, item 11: the HTML report truncated its legend labels, clipped its axis
    /// label, printed backticks literally, and binned 2 repairs into 10 bars.
    #[test]
    fn the_html_report_truncates_clips_prints_backticks_and_bins_2_repairs_into_10_bars() {
        let trend = vec![
            ("2025-01-01T09:00:00Z".to_string(), [1, 0, 1, 0, 0, 0]),
            ("2025-01-01T10:00:00Z".to_string(), [0, 1, 0, 0, 1, 0]),
        ];
        let svg = svg_trend(&trend);
        for name in OUTCOMES {
            assert!(svg.contains(&format!(">{name}</text>")), "{name} in {svg}");
        }
        assert!(
            svg.contains("text-anchor=\"end\">2025-01-01T10:00:00</text>"),
            "{svg}"
        );
        assert_eq!(
            esc_code("constraint `speed` is <VIOLATED> `x"),
            "constraint <code>speed</code> is &lt;VIOLATED&gt; `x"
        );
        assert_eq!(histogram(&[0.25, 0.75]).len(), 2);
        assert_eq!(histogram(&[0.5, 0.5, 0.5]).len(), 1);
        assert_eq!(
            histogram(&(0..400).map(f64::from).collect::<Vec<_>>()).len(),
            10
        );
    }
}
