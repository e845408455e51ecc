//! Classification (DESIGN.md): the rules' verdict (the first match), the lattice's (what
//! each violated row calls for), and the most severe of the two.

use crate::failure::FailureMode;
use crate::interval::{Interval, Truth};
use crate::policy::{Criticality, OnViolation, Policy, Verdict};
use crate::tier1::{RowCheck, Status};

use super::decision::{fmt_margin, fmt_num, RowReport};
use super::{Notes, Proposal};

/// What classification found.
#[derive(Clone, Debug)]
pub(super) struct Classified {
    /// The rule that gave the rules' verdict (index into `Policy::rules`).
    pub rule: Option<usize>,
    /// The rules' verdict (the policy's default when none matched).
    pub rule_verdict: Verdict,
    /// What the violated rows call for (GO when none is).
    pub lattice_verdict: Verdict,
    /// The most severe of the two (the repair stage may escalate it to BLOCK).
    pub classification: Verdict,
    /// The most severe criticality among the causes of a BLOCK.
    pub block_cause: Option<Criticality>,
    /// The most severe criticality among the rows not SAT (and the action bounds).
    pub violated_crit: Option<Criticality>,
    /// The rows not SAT at the proposal (violated first, then uncertain) and the action
    /// bounds it breaks.
    pub constraints: Vec<RowReport>,
}

impl Classified {
    /// Did the rule decide: its verdict is the classification, and not GO?
    pub fn rule_decides(&self) -> bool {
        self.rule_verdict == self.classification && self.rule_verdict != Verdict::Go
    }
}

/// Classify a proposal from its Tier 1 `rows`, the truth of each rule's condition
/// (`rule_truth(slot)`) and its `action`.
pub(super) fn classify(
    p: &Policy,
    rule_truth: impl Fn(u32) -> Truth,
    rows: &[RowCheck],
    prop: &Proposal,
    notes: &mut Notes,
) -> Classified {
    let action = prop.action.as_slice();
    let (rule_verdict, rule) = rules(p, rule_truth, prop, notes);
    let mut c = Classified {
        rule,
        rule_verdict,
        lattice_verdict: Verdict::Go,
        classification: rule_verdict,
        block_cause: None,
        violated_crit: None,
        constraints: Vec::new(),
    };
    lattice(p, rows, &mut c, notes);
    bounds(p, action, &mut c, notes);
    c.classification = c.rule_verdict.max(c.lattice_verdict);
    c
}

/// The rules: the first match. A rule whose condition is unknown over the state box may be
/// the first match, so the verdict is the most severe of the possible first matches.
fn rules(
    p: &Policy,
    truth: impl Fn(u32) -> Truth,
    prop: &Proposal,
    notes: &mut Notes,
) -> (Verdict, Option<usize>) {
    let mut matched = false;
    let mut possible: Vec<usize> = Vec::new();
    for (i, &s) in p.lattice.rule_slots.iter().enumerate() {
        match truth(s) {
            Truth::True => {
                possible.push(i);
                matched = true;
                break;
            }
            Truth::Unknown => possible.push(i),
            Truth::False => {}
        }
    }
    let mut best: Option<(Verdict, Option<usize>)> =
        (!matched).then_some((p.default_verdict, None));
    for &i in &possible {
        if let Some(r) = p.rules.get(i) {
            if best.is_none_or(|(v, _)| r.verdict > v) {
                best = Some((r.verdict, Some(i)));
            }
        }
    }
    let (verdict, rule) = best.unwrap_or((p.default_verdict, None));
    if let Some(r) = rule.and_then(|i| p.rules.get(i)) {
        let sure = possible.last() == Some(&rule.unwrap_or(usize::MAX)) && matched;
        let absent = missing_attributes(p, r, prop);
        if !sure && !absent.is_empty() {
            // Not a fact about the agent: an attribute the rule reads was not given, and
            // an unknown condition fails closed (issue 23, item 4).
            notes.reasons.push(format!(
                "rule `{}`: {} {} not given, so its condition may hold and this fails closed (the rule says: {}) → {}",
                r.id,
                absent.join(", "),
                if absent.len() == 1 { "was" } else { "were" },
                r.reason.as_deref().unwrap_or("matched"),
                r.verdict.as_str()
            ));
        } else {
            let maybe = if sure {
                ""
            } else {
                " (its condition may hold for this state box)"
            };
            notes.reasons.push(format!(
                "rule `{}`{maybe}: {} → {}",
                r.id,
                r.reason.as_deref().unwrap_or("matched"),
                r.verdict.as_str()
            ));
        }
    } else if verdict != Verdict::Go || !p.rules.is_empty() {
        notes.reasons.push(format!(
            "no rule matched: the policy default is {}",
            verdict.as_str()
        ));
    }
    (verdict, rule)
}

/// The agent attributes rule `r` reads that the proposal did not give, as `` `agent.x` ``.
fn missing_attributes(p: &Policy, r: &crate::policy::Rule, prop: &Proposal) -> Vec<String> {
    let mut slots = Vec::new();
    r.when.inputs(&mut |s| slots.push(s));
    p.layout
        .attrs
        .iter()
        .filter(|a| slots.contains(&a.slot))
        .filter(|a| !prop.attributes.iter().any(|(k, _)| *k == a.name))
        .map(|a| format!("`agent.{}`", a.name))
        .collect()
}

/// The lattice's verdict: what each violated (then each uncertain) row calls for.
fn lattice(p: &Policy, rows: &[RowCheck], c: &mut Classified, notes: &mut Notes) {
    for pass in [Status::Violated, Status::Uncertain] {
        for (row, chk) in p.lattice.rows.iter().zip(rows) {
            if !chk.active || chk.status != pass {
                continue;
            }
            let Some(con) = p.constraints.get(row.constraint) else {
                continue;
            };
            if chk.fault {
                notes.named(
                    FailureMode::NumericalFault,
                    format!("row `{}`: margin undefined", row.name),
                );
            }
            let v = match con.on_violation {
                OnViolation::Repair => Verdict::Repair,
                OnViolation::Hold => Verdict::Hold,
                OnViolation::Block => {
                    c.block_cause = c.block_cause.max(Some(row.criticality));
                    Verdict::Block
                }
            };
            c.violated_crit = c.violated_crit.max(Some(row.criticality));
            c.lattice_verdict = c.lattice_verdict.max(v);
            notes.reasons.push(format!(
                "constraint `{}` ({}, {}) is {}: margin {}{}",
                row.name,
                row.kind.as_str(),
                row.criticality.as_str(),
                chk.status.as_str(),
                fmt_margin(chk.margin),
                match con.on_violation {
                    OnViolation::Repair => "",
                    OnViolation::Hold => "; it calls for a human (on_violation = hold)",
                    OnViolation::Block => "; it blocks (on_violation = block)",
                }
            ));
            c.constraints.push(RowReport {
                id: row.name.clone(),
                status: chk.status,
                margin: chk.margin,
                criticality: row.criticality,
            });
        }
    }
}

/// Action bounds are physical limits: outside them is a violation to repair.
fn bounds(p: &Policy, action: &[f64], c: &mut Classified, notes: &mut Notes) {
    for (a, &u) in p.actions.iter().zip(action) {
        if u < a.min || u > a.max {
            let margin = (u - a.min).min(a.max - u);
            c.lattice_verdict = c.lattice_verdict.max(Verdict::Repair);
            c.violated_crit = c.violated_crit.max(Some(Criticality::Critical));
            notes.reasons.push(format!(
                "action `{}` = {} is outside its range [{}, {}]",
                a.name,
                fmt_num(u),
                fmt_num(a.min),
                fmt_num(a.max)
            ));
            c.constraints.push(RowReport {
                id: format!("bounds.{}", a.name),
                status: Status::Violated,
                margin: Interval::point(margin),
                criticality: Criticality::Critical,
            });
        }
    }
}
