//! The integrated stack end to end: every reachable row of the final-outcome table with
//! its executed action, dry-run, budgets, bad input, determinism, and the safety invariant
//! over whole decisions as a property test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use aioss_core::policy::Criticality;
use aioss_core::{Governor, Interval, Policy, Proposal, Status};
use proptest::prelude::*;
use serde_json::{json, Value};

fn load(rel: &str) -> Policy {
    let path = format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    aioss_core::load(&path, &text).unwrap_or_else(|e| panic!("{e}"))
}

fn outcomes() -> Policy {
    load("tests/data/outcomes.toml")
}

fn decide(g: &mut Governor, v: &Value) -> Value {
    let d = g
        .decide_line(&v.to_string())
        .unwrap_or_else(|e| panic!("{e}: {v}"));
    serde_json::from_str(&d.to_json(g.policy())).unwrap()
}

fn prop(vx: f64, mode: &str, px: f64, flag: &str) -> Value {
    json!({"action": {"vx": vx, "mode": mode}, "state": {"px": px, "temp": 20, "flag": flag, "note": "n"}})
}

const FALLBACK: fn() -> Value = || json!({"vx": 0, "mode": "manual"});

#[track_caller]
fn expect(d: &Value, outcome: &str, class: &str, eval: &str, audit: &str, repair: &str) {
    let ctx = format!("{d:#}");
    assert_eq!(d["final_outcome"], outcome, "{ctx}");
    assert_eq!(d["classification"], class, "{ctx}");
    assert_eq!(d["evaluation"], eval, "{ctx}");
    assert_eq!(d["audit"], audit, "{ctx}");
    assert_eq!(d["repair_status"], repair, "{ctx}");
}

#[test]
fn row_6_allow_executes_the_proposal() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 5.0, "none"));
    expect(&d, "ALLOW", "GO", "EFFECTIVE", "VALID", "NOT_REQUIRED");
    assert_eq!(d["action"], json!({"vx": 0.5, "mode": "auto"}));
    assert_eq!(d["report_type"], "SAFE_TO_PROCEED_REPORT");
    assert_eq!(d["human_action_required"], false);
    assert_eq!(d["guarantees"]["pointwise_safety"], true);
    assert_eq!(d["guarantees"]["forward_invariance"], true);
}

#[test]
fn row_4_allow_after_repair_executes_the_projection() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(1.2, "auto", 5.0, "none"));
    expect(
        &d,
        "ALLOW_AFTER_REPAIR",
        "REPAIR",
        "EFFECTIVE",
        "VALID",
        "REPAIRED",
    );
    // eco (vx <= 0.8) is satisfiable, so no relaxation: the projection is 0.8.
    let vx = d["action"]["vx"].as_f64().unwrap();
    assert!(vx <= 0.8 && vx > 0.8 - 1e-6, "{d:#}");
    assert!((d["distance"].as_f64().unwrap() - (1.2 - vx)).abs() < 1e-9);
    assert_eq!(d["relaxed"], json!([]));
    let ids: Vec<&str> = d["constraints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["speed", "eco"], "{d:#}");
    assert!(d["constraints"][0]["margin"].as_f64().unwrap() < 0.0);
    assert_eq!(d["guarantees"]["projection_stability"], true);
}

#[test]
fn a_conflict_is_resolved_by_relaxing_the_low_row_and_evaluates_partial() {
    let mut g = Governor::new(outcomes());
    // rush (high) wants vx >= 0.9, eco (low) wants vx <= 0.8: eco gives.
    let d = decide(&mut g, &prop(0.95, "auto", 5.0, "rush"));
    expect(
        &d,
        "ALLOW_AFTER_REPAIR",
        "REPAIR",
        "PARTIAL",
        "VALID",
        "REPAIRED",
    );
    let relaxed = d["relaxed"].as_array().unwrap();
    assert_eq!(relaxed.len(), 1, "{d:#}");
    assert_eq!(relaxed[0]["id"], "eco");
    let slack = relaxed[0]["slack"].as_f64().unwrap();
    assert!(slack > 0.0 && slack <= 0.5, "{d:#}");
    assert_eq!(d["guarantees"]["projection_stability"], false);
}

#[test]
fn a_rule_set_is_the_discrete_repair() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 0.5, "none"));
    expect(
        &d,
        "ALLOW_AFTER_REPAIR",
        "REPAIR",
        "EFFECTIVE",
        "VALID",
        "REPAIRED",
    );
    assert_eq!(d["rule"], "manual-near-dock");
    assert_eq!(d["action"], json!({"vx": 0.5, "mode": "manual"}));
    assert_eq!(d["repaired_transition"], "switch to manual mode");
    assert!((d["distance"].as_f64().unwrap() - 0.1f64.sqrt()).abs() < 1e-12);
}

#[test]
fn row_5_hold_executes_the_fallback() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 5.0, "ask"));
    expect(
        &d,
        "HOLD_FOR_CONFIRMATION",
        "HOLD",
        "EFFECTIVE",
        "VALID",
        "CONFIRMATION_REQUIRED",
    );
    assert_eq!(d["action"], FALLBACK());
    assert_eq!(d["rule"], "ask");
    assert_eq!(d["human_action_required"], true);
}

#[test]
fn row_5_a_confirmable_block_waits_for_a_human() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 5.0, "ask-stop"));
    expect(
        &d,
        "HOLD_FOR_CONFIRMATION",
        "BLOCK",
        "PARTIAL",
        "VALID",
        "CONFIRMATION_REQUIRED",
    );
    assert_eq!(d["action"], FALLBACK());
}

#[test]
fn row_5_a_repair_beyond_the_limit_is_offered_not_executed() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(2.0, "auto", 5.0, "none"));
    expect(
        &d,
        "HOLD_FOR_CONFIRMATION",
        "REPAIR",
        "EFFECTIVE",
        "VALID",
        "CONFIRMATION_REQUIRED",
    );
    assert_eq!(d["action"], FALLBACK());
    let c = d["candidate"]["vx"].as_f64().unwrap();
    assert!(c <= 0.8 && c > 0.79, "{d:#}");
    assert!(d["distance"].as_f64().unwrap() > 0.5);
}

#[test]
fn row_3_block_no_repair_executes_the_fallback() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 5.0, "stop"));
    expect(
        &d,
        "BLOCK_NO_REPAIR",
        "BLOCK",
        "EFFECTIVE",
        "VALID",
        "NO_REPAIR_AVAILABLE",
    );
    assert_eq!(d["action"], FALLBACK());
    assert_eq!(d["report_type"], "BLOCKED_TRANSITION_REPORT");
}

#[test]
fn row_2_a_block_on_a_low_criticality_cause_is_questionable() {
    let mut g = Governor::new(outcomes());
    let d = decide(&mut g, &prop(0.5, "auto", 5.0, "soft-stop"));
    expect(
        &d,
        "REVIEW_AUDIT",
        "BLOCK",
        "PARTIAL",
        "QUESTIONABLE",
        "NO_REPAIR_AVAILABLE",
    );
    assert_eq!(d["action"], FALLBACK());
}

#[test]
fn row_2_missing_state_is_insufficient_and_executes_the_fallback() {
    let mut g = Governor::new(outcomes());
    let v = json!({"action": {"vx": 0.5, "mode": "auto"}, "state": {"px": 5, "flag": "none"}});
    let d = decide(&mut g, &v);
    // `hot` holds over the whole declared range of temp, so the lattice says GO...
    expect(
        &d,
        "REVIEW_AUDIT",
        "GO",
        "EFFECTIVE",
        "INSUFFICIENT",
        "NOT_REQUIRED",
    );
    // ...but the table sends a decision made on missing evidence to review: fallback.
    assert_eq!(d["action"], FALLBACK());
    assert!(d["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r.as_str().unwrap().contains("`temp` is missing")));
    // A text state that is not required may be absent.
    assert!(!d["reasons"].to_string().contains("note"));
}

#[test]
fn row_1_an_uncertifiable_fallback_is_failed_governance() {
    let mut g = Governor::new(outcomes());
    // px = 8.5 is outside the wall's safe set: no action keeps the barrier, not even the
    // fallback, at this state (and G2 is suspended: the audit asks for review too).
    let d = decide(&mut g, &prop(0.5, "auto", 8.5, "none"));
    expect(
        &d,
        "FAILED_GOVERNANCE",
        "BLOCK",
        "FAILED",
        "QUESTIONABLE",
        "NO_REPAIR_AVAILABLE",
    );
    assert_eq!(d["action"], FALLBACK());
    assert_eq!(d["guarantees"]["pointwise_safety"], false);
    let fm = d["failure_modes"].to_string();
    assert!(fm.contains("fallback_not_certified"), "{d:#}");
    assert!(fm.contains("left_safe_set"), "{d:#}");
}

/// The verdict fields a dry-run reports as enforce mode's (issue 23, item 1).
const VERDICT_FIELDS: [&str; 9] = [
    "final_outcome",
    "classification",
    "evaluation",
    "audit",
    "repair_status",
    "report_type",
    "human_action_required",
    "guarantees",
    "failure_modes",
];

/// Issue 23, item 1: `--dry-run` changed the verdict (a FAILED_GOVERNANCE in enforce mode
/// was BLOCK_NO_REPAIR/NEUTRAL in dry-run). Every verdict field is enforce mode's; `action`
/// is the proposal, which goes out; `enforce_action` is what enforce mode executes.
#[test]
fn dry_run_changes_the_verdict() {
    let cases = [
        prop(1.2, "auto", 5.0, "none"),
        prop(0.5, "auto", 5.0, "stop"),
        prop(0.5, "auto", 5.0, "none"),
        prop(0.5, "auto", 8.5, "none"),
    ];
    for case in &cases {
        let mut enforce = Governor::new(outcomes());
        let mut dry = Governor::new(outcomes());
        dry.set_dry_run(true);
        let e = decide(&mut enforce, case);
        let d = decide(&mut dry, case);
        for f in VERDICT_FIELDS {
            assert_eq!(d[f], e[f], "`{f}` differs in dry-run\n{e:#}\n{d:#}");
        }
        let reasons = |v: &Value| -> Vec<String> {
            v["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .filter(|r| !r.contains("the fallback"))
                .collect()
        };
        assert_eq!(reasons(&d), reasons(&e), "{e:#}\n{d:#}");
        assert_eq!(d["action"], case["action"], "{d:#}");
        assert_eq!(d["dry_run"], true, "{d:#}");
        assert_eq!(d["enforce_action"], e["action"], "{d:#}");
        assert!(e.get("dry_run").is_none() && e.get("enforce_action").is_none());
    }
    // The third case of the list above is the one the issue saw: FAILED_GOVERNANCE in
    // both modes.
    let mut dry = Governor::new(outcomes());
    dry.set_dry_run(true);
    let d = decide(&mut dry, &prop(0.5, "auto", 8.5, "none"));
    assert_eq!(d["final_outcome"], "FAILED_GOVERNANCE", "{d:#}");
    assert_eq!(d["evaluation"], "FAILED", "{d:#}");
}

#[test]
fn dry_run_mode_in_the_policy_file() {
    let text = std::fs::read_to_string(format!(
        "{}/tests/data/outcomes.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace("version = \"1\"", "version = \"1\"\nmode = \"dry-run\"");
    let mut g = Governor::new(aioss_core::load("dry.toml", &text).unwrap());
    let d = decide(&mut g, &prop(1.2, "auto", 5.0, "none"));
    assert_eq!(d["classification"], "REPAIR");
    assert_eq!(d["dry_run"], true);
    assert_eq!(d["action"]["vx"], 1.2);
    assert_ne!(d["enforce_action"]["vx"], 1.2);
}

fn transfer(amount: f64, t: f64) -> Value {
    json!({
        "agent": "fin-bot", "timestamp": t,
        "agent_attributes": {"role": "finance", "trust": 0.9, "status": "active"},
        "action": {"tool": "transfer", "amount": amount, "recipients": 0, "file_count": 0,
                   "write_mb": 0, "tokens": 100, "external": false, "preview": false},
        "state": {"session_risk": "low", "user_confirmed": true, "sandboxed": true,
                  "protected_dir": false, "pii_detected": false, "injection_score": 0.0,
                  "balance": 1000000, "task_description": "pay suppliers"}
    })
}

#[test]
fn budgets_count_executed_actions_over_a_rolling_window() {
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let day = 86_400.0;
    for (i, t) in [0.0, 3600.0].iter().enumerate() {
        let d = decide(&mut g, &transfer(20_000.0, *t));
        assert_eq!(d["final_outcome"], "ALLOW", "transfer {i}: {d:#}");
    }
    // 40 000 spent: a third 20 000 would break the 50 000 cap, which blocks.
    let d = decide(&mut g, &transfer(20_000.0, 7200.0));
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
    assert!(d["constraints"].to_string().contains("spend-cap"));
    assert_eq!(d["action"]["tool"], "noop");
    // The blocked transfer did not count: 10 000 still fits.
    let d = decide(&mut g, &transfer(10_000.0, 7300.0));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    assert_eq!(g.budgets()[0], ("daily_spend".to_string(), 50_000.0));
    // A day after the first transfer it has left the window.
    let d = decide(&mut g, &transfer(15_000.0, day + 1.0));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    assert_eq!(g.budgets()[0].1, 45_000.0);
    // Time never runs backwards: an older timestamp uses the governor's clock.
    let d = decide(&mut g, &transfer(10_000.0, 0.0));
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
}

/// An action executed outside a decision (an operator approved a held proposal) counts
/// against the budgets like any other executed action.
#[test]
fn an_approved_execution_is_charged_to_the_budgets() {
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let d = decide(&mut g, &transfer(20_000.0, 0.0));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    let before = g.state_digest();
    let p = Proposal::parse(g.policy(), &transfer(25_000.0, 60.0).to_string()).unwrap();
    let modes = g.record_execution(&p);
    assert!(modes.is_empty(), "{modes:?}");
    assert_eq!(g.budgets()[0], ("daily_spend".to_string(), 45_000.0));
    assert_ne!(g.state_digest(), before);
    // 45 000 spent: another 10 000 breaks the 50 000 cap.
    let d = decide(&mut g, &transfer(10_000.0, 120.0));
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
}

#[test]
fn bad_input_names_the_field_and_never_panics() {
    let p = outcomes();
    let ok = prop(0.5, "auto", 5.0, "none");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut v = ok.clone();
        f(&mut v);
        v.to_string()
    };
    let cases: Vec<(String, &str, Option<&str>)> = vec![
        ("{\"action\": ".to_string(), "malformed_json", None),
        ("[1, 2]".to_string(), "wrong_type", None),
        (
            with(&|v| v["action"]["vy"] = json!(1.0)),
            "unknown_field",
            Some("action.vy"),
        ),
        (
            with(&|v| v["action"]["vx"] = json!("fast")),
            "wrong_type",
            Some("action.vx"),
        ),
        (
            with(&|v| v["action"]["mode"] = json!("turbo")),
            "unknown_enum_value",
            Some("action.mode"),
        ),
        (
            with(&|v| v["action"]["mode"] = json!(1)),
            "wrong_type",
            Some("action.mode"),
        ),
        (
            with(&|v| {
                v["action"].as_object_mut().unwrap().remove("vx");
            }),
            "missing_field",
            Some("action.vx"),
        ),
        (
            with(&|v| {
                v.as_object_mut().unwrap().remove("action");
            }),
            "missing_field",
            Some("action"),
        ),
        (
            with(&|v| v["state"]["flag"] = json!("panic")),
            "unknown_enum_value",
            Some("state.flag"),
        ),
        (
            with(&|v| v["state"]["px"] = json!({"value": 1, "noise": -1})),
            "invalid_value",
            Some("state.px.noise"),
        ),
        (
            with(&|v| v["state"]["px"] = json!({"lo": 2, "hi": 1})),
            "invalid_value",
            Some("state.px"),
        ),
        (
            with(&|v| v["state"]["px"] = json!({"lo": 2})),
            "missing_field",
            Some("state.px.hi"),
        ),
        (
            with(&|v| v["state"]["px"] = json!({"val": 2})),
            "unknown_field",
            Some("state.px.val"),
        ),
        (
            with(&|v| v["state"]["depth"] = json!(2)),
            "unknown_field",
            Some("state.depth"),
        ),
        (
            with(&|v| v["state"]["note"] = json!(3)),
            "wrong_type",
            Some("state.note"),
        ),
        (
            with(&|v| v["prev"] = json!({"vz": 1})),
            "unknown_field",
            Some("prev.vz"),
        ),
        (
            with(&|v| v["agent_attributes"] = json!({"role": [1]})),
            "wrong_type",
            Some("agent_attributes.role"),
        ),
        (
            with(&|v| v["timestamp"] = json!("yesterday")),
            "invalid_value",
            Some("timestamp"),
        ),
        (
            with(&|v| v["colour"] = json!("red")),
            "unknown_field",
            Some("colour"),
        ),
        (
            with(&|v| v["agent"] = json!(7)),
            "wrong_type",
            Some("agent"),
        ),
        (
            "{\"action\": {\"vx\": 1e999, \"mode\": \"auto\"}}".to_string(),
            "malformed_json",
            None,
        ),
        (
            "{\"action\": {\"vx\": NaN, \"mode\": \"auto\"}}".to_string(),
            "malformed_json",
            None,
        ),
    ];
    for (text, code, field) in cases {
        let e = Proposal::parse(&p, &text).expect_err(&text);
        assert_eq!(e.code, code, "{text}: {e}");
        assert_eq!(e.field.as_deref(), field, "{text}: {e}");
        let first = e.message.chars().find(|c| c.is_alphabetic()).unwrap();
        assert!(first.is_lowercase(), "messages are lowercase: {e}");
        let j: Value = serde_json::from_str(&e.to_json()).unwrap();
        assert_eq!(j["error"]["code"], code);
    }
}

#[test]
fn state_forms_number_value_noise_and_lo_hi() {
    let p = outcomes();
    let slot = |name: &str| p.states.iter().find(|s| s.name == name).unwrap();
    let read = |v: Value| match Proposal::from_json(&p, &v).unwrap().state[0].clone() {
        Some(aioss_core::governor::StateValue::Num(x)) => x,
        other => panic!("{other:?}"),
    };
    let base = |px: Value| json!({"action": {"vx": 0, "mode": "auto"}, "state": {"px": px}});
    let noise = slot("px").noise;
    assert_eq!(read(base(json!(5))), Interval::around(5.0, noise));
    assert_eq!(
        read(base(json!({"value": 5, "noise": 0.5}))),
        Interval::around(5.0, 0.5)
    );
    assert_eq!(
        read(base(json!({"value": 5}))),
        Interval::around(5.0, noise)
    );
    assert_eq!(
        read(base(json!({"lo": 4, "hi": 6}))),
        Interval::new(4.0, 6.0)
    );
    // Flat (I2OS-style) state at the top level.
    let flat = json!({"action": {"vx": 0, "mode": "auto"}, "px": 3, "flag": "ask"});
    let pr = Proposal::from_json(&p, &flat).unwrap();
    assert_eq!(
        pr.state[0],
        Some(aioss_core::governor::StateValue::Num(Interval::around(
            3.0, noise
        )))
    );
}

#[test]
fn the_same_stream_gives_byte_identical_decisions() {
    let stream: Vec<String> = (0..200)
        .map(|i| {
            let f = f64::from(i);
            let flags = ["none", "stop", "ask", "rush", "none", "none"];
            prop(
                ((f * 0.37).sin() * 2.0 * 1000.0).round() / 1000.0,
                if i % 3 == 0 { "auto" } else { "manual" },
                (f * 0.11) % 9.0,
                flags[i as usize % flags.len()],
            )
            .to_string()
        })
        .collect();
    let run = || {
        let mut g = Governor::new(outcomes());
        stream
            .iter()
            .map(|l| {
                let mut d = g.decide_line(l).unwrap();
                d.latency_us = 0;
                d.to_json(g.policy())
            })
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    // The stream exercises several outcomes, so the comparison means something.
    let kinds: std::collections::BTreeSet<String> = a
        .iter()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["final_outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(kinds.len() >= 4, "{kinds:?}");
}

#[test]
fn timing_reports_g5_after_latency_and_changes_nothing_else() {
    let p = outcomes();
    let deadline = p.governor.deadline_us;
    assert_eq!(deadline, 1000, "the policy states no deadline: the default");
    let mut g = Governor::new(p);
    let mut d = g
        .decide_line(&prop(1.2, "auto", 5.0, "none").to_string())
        .unwrap();
    let mut lines = Vec::new();
    for latency in [0, deadline, deadline + 1, u64::MAX] {
        d.latency_us = latency;
        let line = d.to_json(g.policy());
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["latency_us"], json!(latency));
        assert_eq!(
            v["timing"],
            json!({"deadline_us": deadline, "met": latency <= deadline}),
            "{line}"
        );
        assert_eq!(d.deadline_met(g.policy()), latency <= deadline);
        let explained = d.explain(g.policy());
        let verdict = if latency <= deadline {
            "G5 held"
        } else {
            "G5 did not hold"
        };
        assert!(explained.contains(verdict), "{explained}");
        // Everything measured is written after `latency_us`, the prefix replay compares.
        let cut = line.rfind(",\"latency_us\":").unwrap();
        assert!(!line[cut..].contains("final_outcome"));
        lines.push(line[..cut].to_string());
    }
    lines.dedup();
    assert_eq!(lines.len(), 1, "the deterministic prefix moved: {lines:?}");
}

/// Tier 1, independently: does `action` pass every active critical row at this proposal's
/// state (`prev.` as the governor used it)?
fn certified(p: &Policy, prop: &Value, action: &Value, prev: &Value) -> bool {
    let mut v = prop.clone();
    v["action"] = action.clone();
    v["prev"] = prev.clone();
    let pr = Proposal::from_json(p, &v).unwrap();
    let mut inputs = p.range_inputs();
    for (a, u) in p.actions.iter().zip(&pr.action) {
        inputs[a.slot as usize] = Interval::point(*u);
        if a.ty != aioss_core::policy::VarType::Real && (u.fract() != 0.0) {
            return false;
        }
        if *u < a.min || *u > a.max {
            return false;
        }
    }
    for ((a, u), f) in p.actions.iter().zip(&pr.prev).zip(&p.fallback) {
        inputs[a.prev_slot as usize] = Interval::point(u.unwrap_or(*f));
    }
    for (s, v) in p.states.iter().zip(&pr.state) {
        if let (Some(slot), Some(aioss_core::governor::StateValue::Num(x))) = (s.slot, v) {
            inputs[slot as usize] = *x;
        }
    }
    for a in &p.layout.attrs {
        let name = &a.name;
        let given = &prop["agent_attributes"][name];
        inputs[a.slot as usize] = match (given, a.numeric) {
            (Value::Number(n), true) => Interval::point(n.as_f64().unwrap()),
            (Value::String(s), false) => Interval::point(
                p.symbols
                    .iter()
                    .position(|t| t == s)
                    .map_or(-1.0, |i| i as f64),
            ),
            _ => inputs[a.slot as usize],
        };
    }
    let action: Vec<f64> = p
        .actions
        .iter()
        .map(|a| inputs[a.slot as usize].lo)
        .collect();
    let mut t1 = aioss_core::Checker::new(&p.lattice);
    t1.check(&p.lattice, &inputs, &action);
    p.lattice.rows.iter().zip(t1.rows()).all(|(r, c)| {
        !c.active || r.criticality != Criticality::Critical || c.status == Status::Sat
    })
}

fn warehouse_proposal() -> impl Strategy<Value = Value> {
    let reals = proptest::collection::vec(-1.2f64..1.2, 8);
    let state = (
        0.0f64..40.0,
        0.0f64..20.0,
        0.0f64..1.8,
        0.0f64..100.0,
        0.0f64..60.0,
        0.0f64..20.0,
        0usize..8,
        0usize..5,
    );
    let flags = proptest::collection::vec(any::<bool>(), 6);
    let prev = (-1.0f64..1.0, -1.0f64..1.0);
    (reals, state, flags, prev, 0usize..3, 0u32..3, 0usize..4)
        .prop_map(|(r, s, f, pv, grip, gear, role)| {
            let grip = ["open", "closed", "hold"][grip];
            let zones = ["dock", "aisle", "pick_face", "cross_aisle", "human_area", "ramp", "charging", "restricted"];
            let tasks = ["idle", "pick", "deliver", "charge", "maintenance"];
            let roles = ["picker", "transporter", "observer", "supervisor"];
            json!({
                "agent": "r1",
                "agent_attributes": {"role": roles[role], "trust": 0.9},
                "prev": {"vx": pv.0, "vy": pv.1},
                "action": {"vx": r[0], "vy": r[1], "omega": r[2], "lift_v": r[3] * 0.2, "dq1": r[4] * 0.8,
                           "dq2": r[5] * 0.8, "dq3": r[6] * 0.8, "dq4": r[7], "gripper": grip,
                           "beacon": f[0], "gear": gear},
                "state": {"px": s.0, "py": s.1, "lift_h": s.2, "q1": 0.1, "q2": 0.2, "q3": -0.3, "q4": 0,
                          "battery": s.3, "payload": s.4, "motor_temp": 40, "human_dist": s.5, "clear_ahead": 8,
                          "latency": 0.05, "loc_sigma": 0.01, "zone": zones[s.6], "task": tasks[s.7],
                          "carrying": f[1], "human_near": f[2], "floor_wet": f[3], "estop": f[4] && f[5], "task_note": "t"}
            })
        })
}

proptest! {
    #![proptest_config(common::config(48))]

    /// The safety invariant over whole decisions: ALLOW and ALLOW_AFTER_REPAIR execute an
    /// action Tier 1 certifies on every active critical row; every other outcome executes
    /// the fallback, and claims pointwise safety only when the fallback is certified.
    /// With `enforce_deadline` too, at a deadline that stops many searches early.
    #[test]
    fn every_executed_action_is_certified_or_the_fallback(v in warehouse_proposal()) {
        for p in [warehouse(), warehouse_enforcing(100)] {
            let mut g = Governor::new(p.clone());
            let d = decide(&mut g, &v);
            let fallback = json!({"vx": 0, "vy": 0, "omega": 0, "lift_v": 0, "dq1": 0, "dq2": 0,
                "dq3": 0, "dq4": 0, "gripper": "hold", "beacon": true, "gear": 0});
            let outcome = d["final_outcome"].as_str().unwrap();
            let ok = certified(&p, &v, &d["action"], &v["prev"]);
            match outcome {
                "ALLOW" | "ALLOW_AFTER_REPAIR" => {
                    prop_assert!(ok, "{outcome} executes an uncertified action: {d:#}");
                    prop_assert_eq!(&d["guarantees"]["pointwise_safety"], &json!(true));
                    if outcome == "ALLOW" {
                        prop_assert_eq!(&d["action"], &v["action"]);
                    }
                }
                _ => {
                    prop_assert_eq!(&d["action"], &fallback, "{} must execute the fallback", outcome);
                    prop_assert_eq!(d["guarantees"]["pointwise_safety"].as_bool().unwrap(), ok, "{:#}", d);
                    if !ok {
                        prop_assert_eq!(outcome, "FAILED_GOVERNANCE");
                    }
                }
            }
        }
    }
}

fn warehouse() -> Policy {
    load("../../policies/warehouse-robot.toml")
}

/// The warehouse policy with `enforce_deadline = true` and this `deadline_us`.
fn warehouse_enforcing(deadline_us: u64) -> Policy {
    let path = format!(
        "{}/../../policies/warehouse-robot.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "\ndeadline_us = 1000\n",
        &format!("\ndeadline_us = {deadline_us}\nenforce_deadline = true\n"),
    );
    let p = aioss_core::load(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    assert!(p.governor.enforce_deadline);
    p
}

/// Caught (issue 18, item 3): with the caller's clock, transfers of 20 000 EUR stamped one
/// and two days ahead executed 140 000 EUR against the 50 000 EUR daily cap in under a
/// second. Where the governor keeps the time, a timestamp beyond the policy's skew is not
/// the decision's time.
#[test]
fn future_timestamps_do_not_reset_a_budget_when_the_governor_keeps_the_time() {
    use aioss_core::governor::Clock;
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let now = 1_800_000_000.0;
    let day = 86_400.0;
    let mut executed = 0.0;
    for (i, ahead) in [0.0, 0.0, day, day, 2.0 * day, 2.0 * day, 3.0 * day]
        .iter()
        .enumerate()
    {
        let p = Proposal::parse(g.policy(), &transfer(20_000.0, now + ahead).to_string()).unwrap();
        let d = g.decide_with(&p, Clock::Trusted(now + i as f64)).unwrap();
        assert_eq!(d.time, now + i as f64, "transfer {i}");
        if d.final_outcome == aioss_core::Outcome::Allow {
            executed += 20_000.0;
        }
    }
    assert_eq!(executed, 40_000.0);
    // The logical clock (the operator's own input) still takes the stamps as they are.
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let mut executed = 0.0;
    for ahead in [0.0, 0.0, day, day] {
        let p = Proposal::parse(g.policy(), &transfer(20_000.0, now + ahead).to_string()).unwrap();
        let d = g.decide_with(&p, Clock::Logical).unwrap();
        if d.final_outcome == aioss_core::Outcome::Allow {
            executed += 20_000.0;
        }
    }
    assert_eq!(executed, 80_000.0);
}

/// A skew the policy states lets a timestamp within it be the decision's time.
#[test]
fn a_timestamp_within_the_stated_skew_is_the_decisions_time() {
    use aioss_core::governor::Clock;
    let text = std::fs::read_to_string(format!(
        "{}/../../policies/agent-tools.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let text = text.replacen("[governor]\n", "[governor]\nmax_clock_skew_secs = 2.5\n", 1);
    let mut g = Governor::new(aioss_core::load("skew.toml", &text).unwrap());
    let now = 1_800_000_000.0;
    let at = |g: &mut Governor, ts: f64, clock: f64| {
        let p = Proposal::parse(g.policy(), &transfer(1.0, ts).to_string()).unwrap();
        g.decide_with(&p, Clock::Trusted(clock)).unwrap().time
    };
    assert_eq!(at(&mut g, now + 2.0, now), now + 2.0);
    assert_eq!(at(&mut g, now + 10.0, now + 3.0), now + 3.0);
    // Never backwards: a time within the skew but before the last decision's is that one.
    assert_eq!(at(&mut g, now + 1.0, now + 3.5), now + 3.0);
    assert_eq!(at(&mut g, now + 1.5, now + 1.0), now + 3.0);
    assert_eq!(at(&mut g, now + 9.0, now + 6.0), now + 6.0);
}

/// Caught (issue 18, items 1 and 2): `1e12` as a timestamp panicked the audit record's
/// time formatting, and `9999-12-31T23:59:59Z` moved the clock for every agent. Times
/// past the year 9999 (or before 1970) are refused where the proposal is read.
#[test]
fn a_timestamp_outside_1970_to_9999_is_refused_at_parse() {
    let p = load("../../policies/agent-tools.toml");
    for bad in [json!(1e12), json!(-1.0), json!(253_402_300_800.0_f64)] {
        let e = Proposal::parse(
            &p,
            &transfer(1.0, 0.0)
                .to_string()
                .replace("\"timestamp\":0.0", &format!("\"timestamp\":{bad}")),
        )
        .unwrap_err();
        assert_eq!(e.code, "invalid_value", "{bad}: {e}");
        assert_eq!(e.field.as_deref(), Some("timestamp"));
    }
    let mut v = transfer(1.0, 0.0);
    v["timestamp"] = json!("9999-12-31T23:59:59Z");
    let last = Proposal::parse(&p, &v.to_string()).unwrap();
    assert_eq!(last.timestamp, Some(aioss_core::governor::MAX_TIMESTAMP));
}

/// Caught (issue 18, item 4): from a real stop, a proposal claiming `"prev":{"vx":0.9}`
/// got 0.725 m/s executed where the critical speed ramp allows 0.346 from the recorded
/// state. With `PrevSource::Governor`, `prev.` is the governor's record and a claim of
/// another is refused without changing any state.
#[test]
fn a_claimed_prev_cannot_beat_the_speed_ramp() {
    use aioss_core::governor::{Clock, PrevSource};
    let w = load("../../policies/warehouse-robot.toml");
    let line = std::fs::read_to_string(format!(
        "{}/../../policies/examples/warehouse.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .lines()
    .next()
    .unwrap()
    .to_string();
    let mut base: Value = serde_json::from_str(&line).unwrap();
    if let Some(o) = base.as_object_mut() {
        o.remove("prev");
    }
    let mut fast = base.clone();
    fast["action"]["vx"] = json!(0.725);
    fast["action"]["vy"] = json!(0.0);
    let mut claimed = fast.clone();
    claimed["prev"] = json!({"vx": 0.9});

    // Trusting the body, the claim buys the speed.
    let mut g = Governor::new(w.clone());
    let d = decide(&mut g, &claimed);
    let trusted_vx = d["action"]["vx"].as_f64().unwrap();

    let mut g = Governor::new(w.clone());
    g.set_prev_source(PrevSource::Governor);
    let before = g.state_digest();
    let p = Proposal::parse(g.policy(), &claimed.to_string()).unwrap();
    let e = g.decide_with(&p, Clock::Logical).unwrap_err();
    assert_eq!(e.code, "prev_mismatch", "{e}");
    assert_eq!(e.field.as_deref(), Some("prev.vx"));
    assert_eq!(g.state_digest(), before, "a refusal changes no state");
    // The same proposal without the claim: what the ramp allows from a stop.
    let p = Proposal::parse(g.policy(), &fast.to_string()).unwrap();
    let d = g.decide_with(&p, Clock::Logical).unwrap();
    let vx = d.action[0];
    assert!(vx < trusted_vx, "{vx} vs {trusted_vx}");
    assert!(vx * vx <= 0.12 + 1e-12, "{vx}");
    // A claim equal to the record is no lie: the fallback's 0 before any action, then
    // what was executed.
    let mut honest = fast.clone();
    honest["prev"] = json!({"vx": vx});
    let p = Proposal::parse(g.policy(), &honest.to_string()).unwrap();
    g.decide_with(&p, Clock::Logical).unwrap();
}

/// Caught (issue 17, defect 2): `Governor::critical_unsat` evaluated the tape by hand and
/// never the linear fast path, so a row of four or more terms reported the margin the
/// previous decision left behind: after an ALLOW, `a = b = c = d = 2` against
/// `a + b + c + d <= 1` was "safe". The server relies on it to refuse approving a hold that
/// is unsafe now.
#[test]
fn critical_unsat_checks_the_linear_rows_of_the_action_it_is_given() {
    let text = "[policy]\nname = \"sum\"\n\
        [action.a]\ntype = \"real\"\nmin = -5.0\nmax = 5.0\n\
        [action.b]\ntype = \"real\"\nmin = -5.0\nmax = 5.0\n\
        [action.c]\ntype = \"real\"\nmin = -5.0\nmax = 5.0\n\
        [action.d]\ntype = \"real\"\nmin = -5.0\nmax = 5.0\n\
        [fallback]\na = 0.0\nb = 0.0\nc = 0.0\nd = 0.0\n\
        [[constraint]]\nid = \"sum\"\ncriticality = \"critical\"\nexpr = \"a + b + c + d <= 1\"\n";
    let p = aioss_core::load("sum.toml", text).unwrap();
    assert_eq!(
        p.lattice.linear.len(),
        1,
        "the row is on the linear fast path"
    );
    let mut g = Governor::new(p);
    let d = decide(&mut g, &json!({"action": {"a": 0, "b": 0, "c": 0, "d": 0}}));
    assert_eq!(d["final_outcome"], "ALLOW");
    let fast = Proposal::parse(
        g.policy(),
        &json!({"action": {"a": 2, "b": 2, "c": 2, "d": 2}}).to_string(),
    )
    .unwrap();
    let unsafe_rows = g.critical_unsat(&fast);
    assert_eq!(unsafe_rows.len(), 1, "{unsafe_rows:?}");
    assert_eq!(unsafe_rows[0].id, "sum");
    assert_eq!(unsafe_rows[0].status, Status::Violated);
    let m = unsafe_rows[0].margin;
    assert!(m.contains(-7.0) && m.hi < 0.0, "{m:?}");
    // And the other way round: after a violation, a safe action is safe.
    let slow = Proposal::parse(
        g.policy(),
        &json!({"action": {"a": 0.25, "b": 0.25, "c": 0.25, "d": 0.25}}).to_string(),
    )
    .unwrap();
    assert!(g.critical_unsat(&slow).is_empty());
}

/// Caught (issue 17, defect 4): with a barrier `h = 5 - px` and a state at `px = 5.25`
/// (already outside), the decision claimed forward invariance with audit VALID and no
/// failure mode. A state box that reaches outside a barrier's safe set is detected when
/// deciding: `left_safe_set`, G2 not claimed, audit QUESTIONABLE.
#[test]
fn a_state_outside_the_safe_set_suspends_forward_invariance() {
    let text = "[policy]\nname = \"wall\"\n\
        [action.vx]\ntype = \"real\"\nmin = -2.0\nmax = 2.0\n\
        [state.px]\nmin = 0.0\nmax = 10.0\nnoise = 0.0\n\
        [dynamics]\npx = \"px + 0.1 * vx\"\nerror_bound = { px = 0.001 }\n\
        [fallback]\nvx = -2.0\n\
        [[constraint]]\nid = \"wall\"\nkind = \"barrier\"\nbarrier = \"5 - px\"\ngamma = 0.5\n";
    let p = aioss_core::load("wall.toml", text).unwrap();
    let at = |px: Value| json!({"action": {"vx": -2.0}, "state": {"px": px}});
    // Inside, away from the wall: G2 holds.
    let mut g = Governor::new(p.clone());
    let d = decide(&mut g, &at(json!(4.0)));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    assert_eq!(d["guarantees"]["forward_invariance"], true);
    assert_eq!(d["failure_modes"], json!([]));
    // Outside: the backing-off proposal satisfies the barrier row as written, but G2 is
    // not claimed, the audit asks for review and the (certified) fallback executes.
    let d = decide(&mut g, &at(json!(5.25)));
    assert_eq!(d["failure_modes"], json!(["left_safe_set"]), "{d:#}");
    assert_eq!(d["guarantees"]["forward_invariance"], false, "{d:#}");
    assert_eq!(d["guarantees"]["pointwise_safety"], true, "{d:#}");
    assert_eq!(d["audit"], "QUESTIONABLE", "{d:#}");
    assert_eq!(d["final_outcome"], "REVIEW_AUDIT", "{d:#}");
    assert!(d["reasons"]
        .to_string()
        .contains("outside the safe set of barrier `wall`"));
    // A box that only may reach outside is not certainly inside either.
    let d = decide(&mut g, &at(json!({"value": 4.9, "noise": 0.2})));
    assert!(
        d["failure_modes"]
            .as_array()
            .unwrap()
            .contains(&json!("left_safe_set")),
        "{d:#}"
    );
    assert_eq!(d["guarantees"]["forward_invariance"], false, "{d:#}");
}

/// Caught (issue 18, item 11): a payload of −1,000 kg where 0–60 is declared was decided
/// ALLOW with audit VALID, and executed more speed than any in-range payload allows. A
/// state outside its declared range is decided, named (`excessive_uncertainty`), sent for
/// review, and the fallback executes; a box that only crosses a bound by its noise is not
/// a fault.
#[test]
fn a_state_outside_its_declared_range_is_flagged_and_the_fallback_executes() {
    let w = load("../../policies/warehouse-robot.toml");
    let line = std::fs::read_to_string(format!(
        "{}/../../policies/examples/warehouse.jsonl",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let base: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    let mut g = Governor::new(w.clone());
    let d = decide(&mut g, &base);
    assert_eq!(d["failure_modes"], json!([]), "{d:#}");

    let mut heavy = base.clone();
    heavy["state"]["payload"] = json!(-1000.0);
    let mut g = Governor::new(w.clone());
    let d = decide(&mut g, &heavy);
    assert!(
        d["failure_modes"]
            .as_array()
            .unwrap()
            .contains(&json!("excessive_uncertainty")),
        "{d:#}"
    );
    assert_eq!(d["audit"], "QUESTIONABLE", "{d:#}");
    assert!(
        matches!(
            d["final_outcome"].as_str(),
            Some("REVIEW_AUDIT" | "FAILED_GOVERNANCE")
        ),
        "{d:#}"
    );
    let fallback: Value =
        serde_json::from_str(&aioss_core::governor::action_to_json(&w, &w.fallback)).unwrap();
    assert_eq!(d["action"], fallback, "the fallback executes");
    assert!(d["reasons"].to_string().contains("`payload`"), "{d:#}");

    // A box whose value is inside and whose noise crosses the bound: no fault.
    let mut edge = base.clone();
    edge["state"]["payload"] = json!({"value": 59.9, "noise": 0.5});
    let mut g = Governor::new(w);
    let d = decide(&mut g, &edge);
    assert!(
        !d["failure_modes"]
            .to_string()
            .contains("excessive_uncertainty"),
        "{d:#}"
    );
}

/// A `finance` agent deleting a file nobody confirmed (agent-tools): the rule holds it, and
/// the `write-authority` row (critical) is VIOLATED.
fn finance_deletes_a_file() -> Value {
    json!({
        "agent": "agent-1", "timestamp": 1_735_722_000,
        "agent_attributes": {"role": "finance", "trust": 0.9, "status": "active"},
        "action": {"tool": "delete_file", "amount": 0, "recipients": 0, "file_count": 1,
                   "write_mb": 0, "tokens": 100, "external": false, "preview": false},
        "state": {"session_risk": "low", "user_confirmed": false, "sandboxed": true,
                  "protected_dir": false, "pii_detected": false, "injection_score": 0.05,
                  "balance": 100000, "task_description": "clean up"}
    })
}

/// Issue 23, item 5: a HOLD whose critical row is VIOLATED could never be approved (the
/// approval re-checks the held action: 409 `unsafe_now`). With no certified repair to hold
/// instead, it is a BLOCK.
#[test]
fn a_hold_whose_critical_row_is_violated_can_never_be_approved() {
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let d = decide(&mut g, &finance_deletes_a_file());
    assert_eq!(d["rule"], "rule-delete-unconfirmed", "{d:#}");
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
    assert_eq!(d["classification"], "BLOCK", "{d:#}");
    assert_eq!(d["repair_status"], "NO_REPAIR_AVAILABLE", "{d:#}");
    assert_eq!(d["evaluation"], "EFFECTIVE", "{d:#}");
    assert!(d.get("candidate").is_none(), "{d:#}");
    // A hold whose proposal is safe stays a hold (a developer may delete files).
    let mut dev = finance_deletes_a_file();
    dev["agent_attributes"]["role"] = json!("developer");
    let d = decide(&mut g, &dev);
    assert_eq!(d["final_outcome"], "HOLD_FOR_CONFIRMATION", "{d:#}");
}

/// Issue 23, item 6: an unconfirmed `delete_file` was "repaired" into `read_file`. A repair
/// keeps an enum's value (the tool the user asked for) unless the policy says
/// `repairable = true` for it (or a rule's `set` changes it).
#[test]
fn a_repair_changes_the_tool_the_user_asked_for() {
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let d = decide(&mut g, &finance_deletes_a_file());
    for a in [&d["action"], &d["candidate"]] {
        assert_ne!(a["tool"], "read_file", "{d:#}");
    }
    // Said explicitly, the search may choose another tool again.
    let text = std::fs::read_to_string(format!(
        "{}/../../policies/agent-tools.toml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
    .replace(
        "description = \"the tool the agent calls\"",
        "description = \"the tool the agent calls\"\nrepairable = true",
    );
    let p = aioss_core::load("agent-tools-repairable.toml", &text).unwrap();
    let mut g = Governor::new(p);
    let d = decide(&mut g, &finance_deletes_a_file());
    assert_eq!(d["final_outcome"], "HOLD_FOR_CONFIRMATION", "{d:#}");
    assert_ne!(d["candidate"]["tool"], "delete_file", "{d:#}");
    // `repairable` on a real variable is an error naming it.
    let bad = text
        .replace("repairable = true", "")
        .replace("[action.amount]", "[action.amount]\nrepairable = false");
    let e = aioss_core::load("bad.toml", &bad).unwrap_err().to_string();
    assert!(
        e.contains("`repairable` applies to enum, bool and int"),
        "{e}"
    );
}

/// Issue 23, item 4: a missing attribute was explained as a fact ("the agent is
/// suspended") instead of "`agent.status` was not given, so this fails closed".
#[test]
fn a_missing_attribute_is_explained_as_a_fact() {
    let mut g = Governor::new(load("../../policies/agent-tools.toml"));
    let mut p = finance_deletes_a_file();
    p["action"]["tool"] = json!("search");
    p["action"]["file_count"] = json!(0);
    p["agent_attributes"] = json!({"role": "admin", "trust": 0.9});
    let d = decide(&mut g, &p);
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
    let first = d["reasons"][0].as_str().unwrap();
    assert!(
        first.starts_with("rule `rule-agent-suspended`: `agent.status` was not given, so its condition may hold and this fails closed"),
        "{first}"
    );
    // Given, the rule's own reason is the fact.
    p["agent_attributes"]["status"] = json!("suspended");
    let d = decide(&mut g, &p);
    let first = d["reasons"][0].as_str().unwrap();
    assert!(
        first.starts_with("rule `rule-agent-suspended`: the agent is suspended"),
        "{first}"
    );
}
