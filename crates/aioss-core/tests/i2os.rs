//! I2OS v2.0 conformance: `policies/i2os-v2.toml` run through the general engine gives the
//! I2OS answer for every combination of the I2OS inputs (4 risk levels × 2^6 booleans × 3
//! waste levels × empty or non-empty transition text = 1,536 cases), checked field by field
//! against an oracle transcribed directly from `../shared/spec/i2os.md`, and reproduces the
//! six published cases.
#![allow(
    clippy::if_same_then_else, // the oracle restates each I2OS rule separately, as the spec does
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::Governor;
use serde_json::{json, Value};

fn policy() -> aioss_core::Policy {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies/i2os-v2.toml");
    let text = std::fs::read_to_string(path).unwrap();
    aioss_core::load("i2os-v2.toml", &text).unwrap()
}

const REPAIR_4: &str = "Narrow the transition scope and generate a preview before execution.";
const REPAIR_5: &str =
    "Generate a minimal outline or preview first, then request confirmation before expansion.";

/// The I2OS v2.0 rules, restated from the spec as plainly as possible (the oracle).
struct I2os {
    classification: &'static str,
    evaluation: &'static str,
    audit: &'static str,
    repair_status: &'static str,
    report_type: &'static str,
    final_outcome: &'static str,
    human_action_required: bool,
    repaired_transition: Option<&'static str>,
}

#[allow(clippy::fn_params_excessive_bools)]
fn oracle(input: &Value) -> I2os {
    let s = |k: &str| input[k].as_str().unwrap().to_string();
    let b = |k: &str| input[k].as_bool().unwrap();
    let risk = s("risk_level");
    let (reversible, recoverable) = (b("reversible"), b("recoverable"));
    let context = b("context_sufficient");
    let confirmed = b("human_confirmed");
    let scope = b("scope_clear");
    let waste = s("compute_waste_risk");
    let large = b("large_or_excessive");
    let transition = s("transition");

    let (classification, repaired) = if risk == "critical" && !reversible && !recoverable {
        ("BLOCK", None)
    } else if !context {
        ("HOLD", None)
    } else if !confirmed && ["medium", "high", "critical"].contains(&risk.as_str()) {
        ("HOLD", None)
    } else if !scope {
        ("REPAIR", Some(REPAIR_4))
    } else if large || waste == "high" {
        ("REPAIR", Some(REPAIR_5))
    } else if risk == "low" && reversible && recoverable {
        ("GO", None)
    } else {
        ("HOLD", None)
    };
    let evaluation = match classification {
        "BLOCK" if risk == "critical" && !recoverable => "EFFECTIVE",
        "BLOCK" => "PARTIAL",
        "HOLD" | "REPAIR" => "EFFECTIVE",
        _ if risk == "low" && context => "EFFECTIVE",
        _ => "FAILED",
    };
    let audit = if transition.trim().is_empty() {
        "INSUFFICIENT"
    } else if classification == "GO" && evaluation == "FAILED" {
        "INVALID"
    } else if classification == "BLOCK" && risk == "low" {
        "QUESTIONABLE"
    } else {
        "VALID"
    };
    let repair_status = match classification {
        "GO" => "NOT_REQUIRED",
        "BLOCK" if risk == "critical" && !recoverable => "NO_REPAIR_AVAILABLE",
        "BLOCK" | "HOLD" => "CONFIRMATION_REQUIRED",
        _ => "REPAIRED",
    };
    // The report table of DESIGN.md.
    let (report_type, final_outcome, human) = if evaluation == "FAILED" || audit == "INVALID" {
        ("FAILED_GOVERNANCE_REPORT", "FAILED_GOVERNANCE", true)
    } else if audit == "QUESTIONABLE" || audit == "INSUFFICIENT" {
        ("AUDIT_REVIEW_REPORT", "REVIEW_AUDIT", true)
    } else if classification == "BLOCK" && repair_status == "NO_REPAIR_AVAILABLE" {
        ("BLOCKED_TRANSITION_REPORT", "BLOCK_NO_REPAIR", true)
    } else if classification == "REPAIR" && repair_status == "REPAIRED" {
        ("REPAIR_APPLIED_REPORT", "ALLOW_AFTER_REPAIR", false)
    } else if classification == "HOLD" || repair_status == "CONFIRMATION_REQUIRED" {
        (
            "CONFIRMATION_REQUIRED_REPORT",
            "HOLD_FOR_CONFIRMATION",
            true,
        )
    } else if classification == "GO" && audit == "VALID" {
        ("SAFE_TO_PROCEED_REPORT", "ALLOW", false)
    } else {
        ("AUDIT_REVIEW_REPORT", "REVIEW_AUDIT", true)
    };
    I2os {
        classification,
        evaluation,
        audit,
        repair_status,
        report_type,
        final_outcome,
        human_action_required: human,
        repaired_transition: repaired,
    }
}

fn decide(g: &mut Governor, input: &Value) -> Value {
    let d = g.decide_line(&input.to_string()).unwrap();
    serde_json::from_str(&d.to_json(g.policy())).unwrap()
}

#[test]
fn every_combination_of_the_i2os_inputs() {
    let mut g = Governor::new(policy());
    let mut n = 0;
    let mut outcomes = std::collections::BTreeMap::new();
    for risk in ["low", "medium", "high", "critical"] {
        for bits in 0u32..64 {
            for waste in ["low", "medium", "high"] {
                for transition in ["", "rewrite the build scripts"] {
                    let bit = |k: u32| bits & (1 << k) != 0;
                    let input = json!({
                        "transition": transition,
                        "current_state": "a repository",
                        "proposed_next_state": "a changed repository",
                        "risk_level": risk,
                        "reversible": bit(0),
                        "recoverable": bit(1),
                        "context_sufficient": bit(2),
                        "human_confirmed": bit(3),
                        "scope_clear": bit(4),
                        "compute_waste_risk": waste,
                        "large_or_excessive": bit(5),
                    });
                    let want = oracle(&input);
                    let got = decide(&mut g, &input);
                    let ctx = format!("{input}\n{got:#}");
                    assert_eq!(got["classification"], want.classification, "{ctx}");
                    assert_eq!(got["evaluation"], want.evaluation, "{ctx}");
                    assert_eq!(got["audit"], want.audit, "{ctx}");
                    assert_eq!(got["repair_status"], want.repair_status, "{ctx}");
                    assert_eq!(got["report_type"], want.report_type, "{ctx}");
                    assert_eq!(got["final_outcome"], want.final_outcome, "{ctx}");
                    assert_eq!(
                        got["human_action_required"], want.human_action_required,
                        "{ctx}"
                    );
                    if want.classification == "REPAIR" {
                        assert_eq!(
                            got["repaired_transition"].as_str(),
                            want.repaired_transition,
                            "{ctx}"
                        );
                    }
                    // Nothing but the empty action is ever executed by this policy.
                    assert_eq!(got["action"], json!({}), "{ctx}");
                    *outcomes.entry(want.final_outcome).or_insert(0) += 1;
                    n += 1;
                }
            }
        }
    }
    assert_eq!(n, 1536);
    // The sweep reaches these outcomes (the I2OS rules cannot produce FAILED_GOVERNANCE).
    for o in [
        "ALLOW",
        "ALLOW_AFTER_REPAIR",
        "HOLD_FOR_CONFIRMATION",
        "BLOCK_NO_REPAIR",
        "REVIEW_AUDIT",
    ] {
        assert!(outcomes.contains_key(o), "{o} never reached: {outcomes:?}");
    }
}

#[test]
fn the_six_published_cases() {
    let text = include_str!("data/i2os-v2.0-cases.jsonl");
    let mut g = Governor::new(policy());
    let mut n = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let got = decide(&mut g, &case["input"]);
        for (k, want) in case["expected"].as_object().unwrap() {
            assert_eq!(&got[k], want, "case {} field {k}: {got:#}", case["case"]);
        }
        n += 1;
    }
    assert_eq!(n, 6);
}
