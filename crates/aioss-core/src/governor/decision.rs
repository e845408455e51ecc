//! A decision: what the governor found, what executes, and how it is written (JSON for
//! programs, `--explain` text for people).

use std::fmt::Write as _;

use crate::failure::{FailureMode, FailureModes, Guarantee};
use crate::interval::Interval;
use crate::policy::{Criticality, Policy, VarType, Verdict};
use crate::repair::SolverStatus;
use crate::tier1::Status;

use super::agents::OperatingMode;
use super::outcome::{Audit, Evaluation, Outcome, RepairStatus};

/// A row's Tier 1 verdict at the proposal, as reported.
#[derive(Clone, Debug, PartialEq)]
pub struct RowReport {
    /// Row name (`id`, or `id#k` for a conjunct); `bounds.<var>` for an action bound.
    pub id: String,
    /// VIOLATED or UNCERTAIN.
    pub status: Status,
    /// The margin interval (negative is violated).
    pub margin: Interval,
    /// The constraint's criticality.
    pub criticality: Criticality,
}

/// Which guarantees held for this decision (`None`: the policy does not offer it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Guarantees {
    /// G1: the executed action satisfies every active critical row over the state box.
    pub pointwise_safety: bool,
    /// G2: every barrier row is SAT at the executed action.
    pub forward_invariance: Option<bool>,
    /// G3: the repair is the certified projection, no relaxation (for repairs).
    pub projection_stability: Option<bool>,
    /// G4: every Lyapunov row is SAT at the executed action.
    pub input_to_state_stability: Option<bool>,
}

/// What became of a guarantee in one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuaranteeStatus {
    /// It holds for this decision.
    Held,
    /// A failure mode suspended it (or, for G3, the CRE relaxed a row).
    Suspended,
    /// The policy does not offer it here (no barrier rows, no Lyapunov rows, no repair).
    NotApplicable,
    /// It did not hold: the executed action is not certified (FAILED_GOVERNANCE).
    Failed,
}

impl GuaranteeStatus {
    /// The name in decisions.
    pub fn as_str(self) -> &'static str {
        match self {
            GuaranteeStatus::Held => "held",
            GuaranteeStatus::Suspended => "suspended",
            GuaranteeStatus::NotApplicable => "not_applicable",
            GuaranteeStatus::Failed => "failed",
        }
    }
}

/// One guarantee's line of the ledger.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerEntry {
    /// Which guarantee.
    pub guarantee: Guarantee,
    /// What became of it.
    pub status: GuaranteeStatus,
    /// The failure modes that suspended it.
    pub modes: Vec<FailureMode>,
    /// What the detectors saw, one line each.
    pub evidence: Vec<String>,
}

/// The guarantee ledger of a decision (issue 20): G1–G4 each held, suspended, not
/// applicable or failed, with the failure modes and evidence of each suspension. G5 stays in
/// `timing` (measured). The boolean `guarantees` map says the same: a guarantee is `true`
/// there exactly when it is held here.
#[derive(Clone, Debug, PartialEq)]
pub struct Ledger(pub Vec<LedgerEntry>);

impl Ledger {
    /// The ledger of a decision with `guarantees`, CRE slack `relaxed` and `notes`.
    pub(crate) fn new(
        _p: &Policy,
        g: &Guarantees,
        relaxed: &[(String, f64)],
        notes: &super::Notes,
    ) -> Ledger {
        let failed = !g.pointwise_safety;
        let entry = |guarantee: Guarantee, held: Option<bool>| {
            let modes: Vec<FailureMode> = notes
                .modes
                .iter()
                .filter(|m| m.suspends().contains(&guarantee))
                .collect();
            let mut evidence: Vec<String> = notes
                .evidence
                .iter()
                .filter(|(m, _)| modes.contains(m))
                .map(|(_, e)| e.clone())
                .collect();
            if guarantee == Guarantee::ProjectionStability && !relaxed.is_empty() {
                evidence.extend(
                    relaxed
                        .iter()
                        .map(|(id, s)| format!("the CRE relaxed `{id}` by {}", fmt_num(*s))),
                );
            }
            // G3 is claimed of an agent's repairs, not only of this decision's: a mode
            // that suspends it is recorded even on a decision with no projection (the
            // agent is degraded, and its next repair does not claim G3).
            let held = match held {
                None if guarantee == Guarantee::ProjectionStability && !modes.is_empty() => {
                    Some(false)
                }
                h => h,
            };
            let status = match held {
                None => GuaranteeStatus::NotApplicable,
                Some(true) => GuaranteeStatus::Held,
                Some(false) if failed => GuaranteeStatus::Failed,
                Some(false) => GuaranteeStatus::Suspended,
            };
            LedgerEntry {
                guarantee,
                status,
                modes: if status == GuaranteeStatus::Suspended {
                    modes
                } else {
                    Vec::new()
                },
                evidence: if status == GuaranteeStatus::Suspended {
                    evidence
                } else {
                    Vec::new()
                },
            }
        };
        Ledger(vec![
            entry(Guarantee::PointwiseSafety, Some(g.pointwise_safety)),
            entry(Guarantee::ForwardInvariance, g.forward_invariance),
            entry(Guarantee::ProjectionStability, g.projection_stability),
            entry(Guarantee::InputToStateStability, g.input_to_state_stability),
        ])
    }

    /// `,"guarantee_ledger":{"pointwise_safety":{"status":"held"}, ...}`.
    fn write_json(&self, s: &mut String) {
        // The guarantees', statuses' and modes' names are fixed ASCII identifiers (no byte
        // JSON escapes): written as they are, not through `json_str`, since every decision
        // writes this.
        let name = |s: &mut String, n: &str| {
            s.push('"');
            s.push_str(n);
            s.push('"');
        };
        s.push_str(",\"guarantee_ledger\":{");
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            name(s, e.guarantee.name());
            s.push_str(":{\"status\":");
            name(s, e.status.as_str());
            if !e.modes.is_empty() {
                s.push_str(",\"modes\":[");
                for (k, m) in e.modes.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    name(s, m.name());
                }
                s.push(']');
            }
            if !e.evidence.is_empty() {
                s.push_str(",\"evidence\":[");
                for (k, x) in e.evidence.iter().enumerate() {
                    if k > 0 {
                        s.push(',');
                    }
                    json_str(s, x);
                }
                s.push(']');
            }
            s.push('}');
        }
        s.push('}');
    }
}

/// The solver's report, for decisions that ran Tier 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SolverReport {
    /// The last solver status.
    pub status: SolverStatus,
    /// SQP plus QP iterations.
    pub iterations: u32,
    /// SQP iterations (linearisations) alone: at most
    /// [`WORK_FACTOR`](crate::repair::WORK_FACTOR) × `max_iterations`.
    pub steps: u32,
    /// Discrete candidates examined.
    pub nodes: u32,
    /// The search's modeled cost, which `enforce_deadline` bounds. Not in the decision's
    /// JSON: the decision already says when it stopped the search (solver status
    /// `DEADLINE`, failure mode `deadline_overrun`).
    pub cost: crate::repair::ModeledCost,
}

/// One decision.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// The proposal's `id`, echoed.
    pub id: Option<String>,
    /// Unique per governor: the policy hash prefix and the sequence number.
    pub decision_id: String,
    /// Sequence number (0-based, per governor).
    pub seq: u64,
    /// The proposing agent.
    pub agent: String,
    /// The time the decision used (seconds since the Unix epoch; the logical clock).
    pub time: f64,
    /// One of six.
    pub final_outcome: Outcome,
    /// GO / REPAIR / HOLD / BLOCK.
    pub classification: Verdict,
    /// EFFECTIVE / PARTIAL / NEUTRAL / FAILED.
    pub evaluation: Evaluation,
    /// VALID / QUESTIONABLE / INSUFFICIENT / INVALID.
    pub audit: Audit,
    /// NOT_REQUIRED / REPAIRED / CONFIRMATION_REQUIRED / NO_REPAIR_AVAILABLE.
    pub repair_status: RepairStatus,
    /// The action to execute now (encoded).
    pub action: Vec<f64>,
    /// The proposal's action (encoded).
    pub proposed: Vec<f64>,
    /// Dry-run: the action enforce mode would have executed. Every verdict field is
    /// enforce mode's; only `action` (the proposal, which goes out) differs.
    pub enforce_action: Option<Vec<f64>>,
    /// A certified repair offered to the approver of a hold.
    pub candidate: Option<Vec<f64>>,
    /// The repair's distance in the policy's metric (with discrete-change costs).
    pub distance: Option<f64>,
    /// Rows not SAT at the proposal (violated first, then uncertain, in row order).
    pub constraints: Vec<RowReport>,
    /// Rows the CRE relaxed, with their slack.
    pub relaxed: Vec<(String, f64)>,
    /// The rule that gave the classification (index into `Policy::rules`).
    pub rule: Option<usize>,
    /// Human-readable reasons, naming the rule and the rows.
    pub reasons: Vec<String>,
    /// The rule's repaired transition text, for REPAIR.
    pub repaired_transition: Option<String>,
    /// Failure modes detected, in the order the stages found them.
    pub failure_modes: FailureModes,
    /// The guarantees that held.
    pub guarantees: Guarantees,
    /// G1–G4: held, suspended (by which modes, on what evidence), not applicable, failed.
    pub ledger: Ledger,
    /// The agent's mode of operation after this decision.
    pub operating_mode: OperatingMode,
    /// Made in the critical-rows-only mode ([`super::Governor::set_critical_only`]):
    /// written as `"decision_mode": "critical_only"` (absent otherwise).
    pub critical_only: bool,
    /// Tier 2's report, when it ran.
    pub solver: Option<SolverReport>,
    /// Wall time of the decision in microseconds (with [`Decision::deadline_met`], drawn
    /// from it, the only non-deterministic field).
    pub latency_us: u64,
}

impl Decision {
    /// G5 (timing): was the decision made within the policy's `deadline_us`? Measured, so
    /// reported after `latency_us` and left out of replay's comparison (see the module
    /// documentation).
    pub fn deadline_met(&self, p: &Policy) -> bool {
        self.latency_us <= p.governor.deadline_us
    }
}

/// A JSON string literal. Hand-written because decisions are written on the hot path and
/// must be byte-identical across runs (no map reordering, no float formatting surprises).
pub(crate) fn json_str(out: &mut String, s: &str) {
    out.push('"');
    // Runs that need no escape are copied whole. Every byte that needs one is ASCII, never
    // part of a multi-byte character, so the run boundaries are character boundaries.
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let esc = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            b if b < 0x20 => "",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", b);
        } else {
            out.push_str(esc);
        }
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

/// A JSON number: the shortest text that reads back as the same double; `null` for a
/// non-finite value (JSON has none).
pub(crate) fn json_num(out: &mut String, x: f64) {
    if x.is_finite() {
        if x == x.trunc() && x.abs() < 1e15 {
            #[expect(clippy::cast_possible_truncation, reason = "whole and below 2^53")]
            let i = x as i64;
            let _ = write!(out, "{i}");
        } else {
            // The shortest digits that read back as `x`, by the formatter serde_json uses.
            out.push_str(zmij::Buffer::new().format_finite(x));
        }
    } else {
        out.push_str("null");
    }
}

pub(crate) fn fmt_num(x: f64) -> String {
    let mut s = String::new();
    json_num(&mut s, x);
    s
}

pub(crate) fn fmt_margin(m: Interval) -> String {
    if m.is_invalid() {
        "undefined".to_string()
    } else if m.is_point() {
        fmt_num(m.lo)
    } else {
        format!("[{}, {}]", fmt_num(m.lo), fmt_num(m.hi))
    }
}

/// One action value, decoded.
pub(crate) fn value_json(out: &mut String, ty: &VarType, x: f64) {
    match ty {
        VarType::Bool => out.push_str(if x != 0.0 { "true" } else { "false" }),
        VarType::Enum(values) => {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "enum indices are small whole numbers"
            )]
            let i = x as usize;
            match values.get(i) {
                Some(v) => json_str(out, v),
                None => out.push_str("null"),
            }
        }
        _ => json_num(out, x),
    }
}

/// An encoded action as the JSON object decisions show (`{"vx":0.5,"gripper":"hold"}`).
pub fn action_to_json(p: &Policy, a: &[f64]) -> String {
    let mut s = String::new();
    action_json(&mut s, p, a);
    s
}

pub(crate) fn action_json(out: &mut String, p: &Policy, a: &[f64]) {
    out.push('{');
    for (i, (var, x)) in p.actions.iter().zip(a).enumerate() {
        if i > 0 {
            out.push(',');
        }
        json_str(out, &var.name);
        out.push(':');
        value_json(out, &var.ty, *x);
    }
    out.push('}');
}

pub(crate) fn describe_change(p: &Policy, from: &[f64], to: &[f64]) -> String {
    let mut parts = Vec::new();
    for (var, (a, b)) in p.actions.iter().zip(from.iter().zip(to)) {
        if a != b {
            let mut x = String::new();
            let mut y = String::new();
            value_json(&mut x, &var.ty, *a);
            value_json(&mut y, &var.ty, *b);
            parts.push(format!("`{}` {x} → {y}", var.name));
        }
    }
    if parts.is_empty() {
        "the action is unchanged".to_string()
    } else {
        parts.join(", ")
    }
}

impl Decision {
    /// The decision as one line of JSON, in the field order of `spec/interfaces.md`.
    /// Deterministic: the same decision gives the same bytes.
    pub fn to_json(&self, p: &Policy) -> String {
        let mut s = String::with_capacity(512);
        s.push('{');
        if let Some(id) = &self.id {
            s.push_str("\"id\":");
            json_str(&mut s, id);
            s.push(',');
        }
        s.push_str("\"decision_id\":");
        json_str(&mut s, &self.decision_id);
        // `decision_seq`, not `seq`: the record's position in the log is `record.seq`, and
        // a hold is named by `decision_id` (issue 23, item 9).
        let _ = write!(s, ",\"decision_seq\":{}", self.seq);
        s.push_str(",\"time\":");
        json_num(&mut s, self.time);
        s.push_str(",\"agent\":");
        json_str(&mut s, &self.agent);
        let _ = write!(
            s,
            ",\"final_outcome\":\"{}\",\"classification\":\"{}\",\"evaluation\":\"{}\",\"audit\":\"{}\",\"repair_status\":\"{}\",\"report_type\":\"{}\",\"human_action_required\":{}",
            self.final_outcome.as_str(),
            self.classification.as_str(),
            self.evaluation.as_str(),
            self.audit.as_str(),
            self.repair_status.as_str(),
            self.final_outcome.report_type(),
            self.final_outcome.human_action_required()
        );
        s.push_str(",\"action\":");
        action_json(&mut s, p, &self.action);
        if let Some(e) = &self.enforce_action {
            s.push_str(",\"dry_run\":true,\"enforce_action\":");
            action_json(&mut s, p, e);
        }
        if let Some(c) = &self.candidate {
            s.push_str(",\"candidate\":");
            action_json(&mut s, p, c);
        }
        if let Some(d) = self.distance {
            s.push_str(",\"distance\":");
            json_num(&mut s, d);
        }
        s.push_str(",\"constraints\":[");
        for (i, c) in self.constraints.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"id\":");
            json_str(&mut s, &c.id);
            let _ = write!(s, ",\"status\":\"{}\",\"margin\":", c.status.as_str());
            json_num(
                &mut s,
                if c.margin.is_invalid() {
                    f64::NAN
                } else {
                    c.margin.lo
                },
            );
            let _ = write!(s, ",\"criticality\":\"{}\"}}", c.criticality.as_str());
        }
        s.push_str("],\"relaxed\":[");
        for (i, (id, slack)) in self.relaxed.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            s.push_str("{\"id\":");
            json_str(&mut s, id);
            s.push_str(",\"slack\":");
            json_num(&mut s, *slack);
            s.push('}');
        }
        s.push(']');
        if let Some(r) = self.rule.and_then(|i| p.rules.get(i)) {
            s.push_str(",\"rule\":");
            json_str(&mut s, &r.id);
        }
        s.push_str(",\"reasons\":[");
        for (i, r) in self.reasons.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, r);
        }
        s.push(']');
        if let Some(t) = &self.repaired_transition {
            s.push_str(",\"repaired_transition\":");
            json_str(&mut s, t);
        }
        s.push_str(",\"failure_modes\":[");
        for (i, f) in self.failure_modes.iter().enumerate() {
            if i > 0 {
                s.push(',');
            }
            json_str(&mut s, f.name());
        }
        let g = &self.guarantees;
        let _ = write!(
            s,
            "],\"guarantees\":{{\"pointwise_safety\":{}",
            g.pointwise_safety
        );
        for (name, v) in [
            ("forward_invariance", g.forward_invariance),
            ("projection_stability", g.projection_stability),
            ("input_to_state_stability", g.input_to_state_stability),
        ] {
            if let Some(v) = v {
                let _ = write!(s, ",\"{name}\":{v}");
            }
        }
        s.push('}');
        self.ledger.write_json(&mut s);
        s.push_str(",\"operating_mode\":");
        json_str(&mut s, self.operating_mode.as_str());
        if self.critical_only {
            s.push_str(",\"decision_mode\":\"critical_only\"");
        }
        if let Some(sv) = &self.solver {
            let _ = write!(
                s,
                ",\"solver\":{{\"status\":\"{}\",\"iterations\":{},\"steps\":{},\"nodes\":{}}}",
                sv.status.as_str(),
                sv.iterations,
                sv.steps,
                sv.nodes
            );
        }
        s.push_str(",\"policy\":{\"name\":");
        json_str(&mut s, &p.name);
        s.push_str(",\"version\":");
        json_str(&mut s, &p.version);
        s.push_str(",\"hash\":");
        json_str(&mut s, &p.hash);
        // INVARIANT (replayable-prefix): everything measured comes after `latency_us`.
        let _ = write!(
            s,
            "}},\"latency_us\":{},\"timing\":{{\"deadline_us\":{},\"met\":{}}}}}",
            self.latency_us,
            p.governor.deadline_us,
            self.deadline_met(p)
        );
        s
    }

    /// A human-readable account: which rule, which rows were violated and by how much,
    /// what the repair changed, and why the outcome is what it is.
    pub fn explain(&self, p: &Policy) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "decision {}{} (agent `{}`): {}",
            self.decision_id,
            self.id
                .as_ref()
                .map(|i| format!(" for proposal `{i}`"))
                .unwrap_or_default(),
            self.agent,
            self.final_outcome.as_str()
        );
        let mut a = String::new();
        action_json(&mut a, p, &self.proposed);
        let _ = writeln!(s, "  proposed:       {a}");
        let _ = writeln!(
            s,
            "  classification: {}   evaluation: {}   audit: {}   repair: {}",
            self.classification.as_str(),
            self.evaluation.as_str(),
            self.audit.as_str(),
            self.repair_status.as_str()
        );
        for r in &self.reasons {
            let _ = writeln!(s, "  - {r}");
        }
        let mut e = String::new();
        action_json(&mut e, p, &self.action);
        let enforced = self.enforce_action.as_deref().unwrap_or(&self.action);
        let what = match self.final_outcome {
            Outcome::Allow => "the proposal",
            Outcome::AllowAfterRepair => "the repaired action",
            _ if !self.guarantees.pointwise_safety => {
                "the fallback, which Tier 1 could NOT certify at this state"
            }
            _ if enforced != p.fallback.as_slice() => {
                "the agent's last certified action, frozen in the fallback mode"
            }
            _ => "the certified fallback",
        };
        if self.enforce_action.is_some() {
            let changed = if enforced == self.action.as_slice() {
                "the same action".to_string()
            } else {
                format!("{what}: {}", describe_change(p, &self.action, enforced))
            };
            let _ = writeln!(
                s,
                "  goes out:       {e}  (dry-run: the proposal, unchanged)"
            );
            let mut f = String::new();
            action_json(&mut f, p, enforced);
            let _ = writeln!(s, "  enforce mode:   {f}  ({changed})");
        } else {
            let _ = writeln!(s, "  executes:       {e}  ({what})");
        }
        if let Some(c) = &self.candidate {
            let mut t = String::new();
            action_json(&mut t, p, c);
            let _ = writeln!(s, "  offered repair: {t}");
        }
        let why = match self.final_outcome {
            Outcome::FailedGovernance => {
                "the evaluation FAILED or the audit is INVALID (table row 1)"
            }
            Outcome::ReviewAudit if self.audit != Audit::Valid => {
                "the audit is QUESTIONABLE or INSUFFICIENT (table row 2)"
            }
            Outcome::BlockNoRepair => "BLOCK with no repair available (table row 3)",
            Outcome::AllowAfterRepair => "REPAIR and REPAIRED (table row 4)",
            Outcome::HoldForConfirmation => "HOLD, or a confirmation is required (table row 5)",
            Outcome::Allow => "GO and the audit is VALID (table row 6)",
            Outcome::ReviewAudit => "no other row of the table applies (table row 7)",
        };
        let _ = writeln!(s, "  why:            {why}");
        let (within, g5) = if self.deadline_met(p) {
            ("within", "held")
        } else {
            ("over", "did not hold")
        };
        let _ = writeln!(
            s,
            "  timing:         {} µs, {within} the {} µs deadline (G5 {g5})",
            self.latency_us, p.governor.deadline_us
        );
        s
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn the_ledger_names_need_no_escaping() {
        // `Ledger::write_json` writes them unescaped.
        let plain = |n: &str| n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
        for g in crate::failure::Guarantee::ALL {
            assert!(plain(g.name()), "{}", g.name());
        }
        for m in crate::failure::FailureMode::ALL {
            assert!(plain(m.name()), "{}", m.name());
        }
        for st in [
            GuaranteeStatus::Held,
            GuaranteeStatus::Suspended,
            GuaranteeStatus::NotApplicable,
            GuaranteeStatus::Failed,
        ] {
            assert!(plain(st.as_str()), "{}", st.as_str());
        }
    }

    #[test]
    fn json_strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"b\\c\nd\u{1}é");
    }

    proptest::proptest! {
        /// Any string, escaped, reads back as itself (multi-byte characters beside escapes
        /// included: the escaped runs are cut at ASCII bytes only).
        #[test]
        fn any_string_reads_back_after_escaping(t in proptest::prelude::any::<String>()) {
            let mut s = String::new();
            json_str(&mut s, &t);
            let back: String = serde_json::from_str(&s).unwrap();
            proptest::prop_assert_eq!(back, t);
        }
    }

    #[test]
    fn json_numbers_read_back_exactly() {
        for x in [
            0.0,
            -0.0,
            1.0,
            0.1,
            1e-20,
            1e300,
            -2.5e-7,
            123_456_789.0,
            1e15,
            1e16,
        ] {
            let mut s = String::new();
            json_num(&mut s, x);
            let back: f64 = serde_json::from_str(&s).unwrap();
            assert_eq!(back, x, "{s}");
        }
        let mut s = String::new();
        json_num(&mut s, f64::NAN);
        assert_eq!(s, "null");
    }
}
