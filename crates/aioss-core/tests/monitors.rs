//! Tier 3's monitors at the level of decisions (issue 20): for each failure mode, a stream
//! or a policy that injects the fault, and what must follow: the mode named, the right
//! guarantees suspended in `guarantee_ledger`, the audit QUESTIONABLE where the mode
//! questions it, the agent's mode of operation moved, and G1 held (the executed action is
//! certified again by Tier 1 at the proposal's state, from scratch).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::failure::FailureMode;
use aioss_core::governor::{Clock, OperatingMode, Proposal};
use aioss_core::Governor;
use serde_json::{json, Value};

/// One action `a`, `b`; a critical row with a declared `lipschitz`; two high rows that
/// meet in a slab of zero width (`b = 1`); a critical row with a domain (`sqrt`).
const BASE: &str = r#"
[policy]
name = "monitors"
version = "1"
[action.a]
type = "real"
min = -10.0
max = 10.0
[action.b]
type = "real"
min = -10.0
max = 10.0
[state.x]
min = 0.0
max = 10.0
noise = 0.0
[fallback]
a = 0.0
b = 0.0
[[constraint]]
id = "lip"
kind = "physical"
criticality = "critical"
expr = "a * x <= 50"
lipschitz = 1.0
[[constraint]]
id = "slab-hi"
kind = "preference"
criticality = "high"
expr = "b <= 1"
[[constraint]]
id = "slab-lo"
kind = "preference"
criticality = "high"
expr = "b >= 1"
[[constraint]]
id = "root"
kind = "physical"
criticality = "critical"
expr = "sqrt(a + 5) <= 3"
"#;

/// A wall at `px = 5` (a barrier), one-step dynamics with `dt = 0.1`.
const WALL: &str = r#"
[policy]
name = "wall"
version = "1"
[action.vx]
type = "real"
min = -2.0
max = 2.0
[state.px]
min = 0.0
max = 10.0
noise = 0.0
[param]
dt = 0.1
[dynamics]
px = "px + dt * vx"
error_bound = { px = 0.001 }
[fallback]
vx = -2.0
[[constraint]]
id = "wall"
kind = "barrier"
barrier = "5 - px"
gamma = 0.5
"#;

fn load(text: &str) -> Governor {
    Governor::new(aioss_core::load("m.toml", text).unwrap_or_else(|e| panic!("{e}")))
}

fn warehouse_with(from: &str, to: &str) -> Governor {
    let path = format!(
        "{}/../../policies/warehouse-robot.toml",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from));
    load(&text.replace(from, to))
}

/// One of the warehouse's hard proposals (tests/data/warehouse-hard.jsonl), by id.
fn hard(id: &str) -> Value {
    let path = format!(
        "{}/tests/data/warehouse-hard.jsonl",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["proposal"].clone())
        .find(|p| p["id"] == id)
        .unwrap()
}

/// Decide `prop` (time from its `timestamp`), and check that G1 held: what executed is
/// certified by a fresh check at the proposal's state.
fn decide(g: &mut Governor, prop: &Value) -> Value {
    let d = g
        .decide_line_with(&prop.to_string(), Clock::Logical)
        .unwrap();
    let d: Value = serde_json::from_str(&d.to_json(g.policy())).unwrap();
    assert_eq!(d["guarantees"]["pointwise_safety"], true, "{d:#}");
    assert_eq!(
        d["guarantee_ledger"]["pointwise_safety"]["status"], "held",
        "{d:#}"
    );
    let mut executed = prop.clone();
    executed["action"] = d["action"].clone();
    let p = Proposal::parse(g.policy(), &executed.to_string()).unwrap();
    let unsafe_rows = g.critical_unsat(&p);
    assert!(unsafe_rows.is_empty(), "G1: {unsafe_rows:?}\n{d:#}");
    d
}

fn modes(d: &Value) -> Vec<String> {
    d["failure_modes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_string())
        .collect()
}

/// The ledger's status of guarantee `g` (`pointwise_safety`, ...).
fn status<'a>(d: &'a Value, g: &str) -> &'a str {
    d["guarantee_ledger"][g]["status"].as_str().unwrap()
}

/// `g` is suspended, naming `mode` with evidence.
fn suspended_by(d: &Value, g: &str, mode: FailureMode) {
    assert_eq!(status(d, g), "suspended", "{g}: {d:#}");
    let e = &d["guarantee_ledger"][g];
    assert!(
        e["modes"].as_array().unwrap().contains(&json!(mode.name())),
        "{g}: {d:#}"
    );
    assert!(!e["evidence"].as_array().unwrap().is_empty(), "{g}: {d:#}");
}

fn p(id: &str, agent: &str, t: f64, action: Value, state: Value) -> Value {
    json!({"id": id, "agent": agent, "timestamp": t, "action": action, "state": state})
}

#[test]
fn left_safe_set_suspends_g2_and_latches_the_fallback_mode_until_clean_decisions_or_a_reset() {
    let mut g = load(&format!("{WALL}[monitor]\nrecover_after = 3\n"));
    let d = decide(
        &mut g,
        &p("w1", "m", 100.0, json!({"vx": 1}), json!({"px": 5.2})),
    );
    assert_eq!(modes(&d), ["left_safe_set"], "{d:#}");
    suspended_by(&d, "forward_invariance", FailureMode::LeftSafeSet);
    assert_eq!(d["audit"], "QUESTIONABLE");
    assert_eq!(d["final_outcome"], "REVIEW_AUDIT");
    assert_eq!(d["action"], json!({"vx": -2}), "the fallback executes");
    assert_eq!(d["operating_mode"], "fallback");
    assert_eq!(g.agent_mode("m").0, OperatingMode::Fallback);

    // Another agent is not touched (agent isolation).
    let d = decide(
        &mut g,
        &p("o1", "other", 101.0, json!({"vx": 1}), json!({"px": 1})),
    );
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    assert_eq!(d["operating_mode"], "normal");

    // In the fallback mode a clean proposal is still reviewed and the fallback executes,
    // until `recover_after` clean decisions.
    for k in 0..3 {
        let d = decide(
            &mut g,
            &p(
                &format!("c{k}"),
                "m",
                102.0 + f64::from(k),
                json!({"vx": 1}),
                json!({"px": 1}),
            ),
        );
        assert_eq!(d["final_outcome"], "REVIEW_AUDIT", "{d:#}");
        assert_eq!(d["action"], json!({"vx": -2}), "{d:#}");
        assert!(d["reasons"].to_string().contains("fallback mode"), "{d:#}");
    }
    let d = decide(
        &mut g,
        &p("c3", "m", 110.0, json!({"vx": 1}), json!({"px": 1})),
    );
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    assert_eq!(d["operating_mode"], "normal");

    // An operator's reset ends it at once.
    decide(
        &mut g,
        &p("w2", "m", 111.0, json!({"vx": 1}), json!({"px": 5.2})),
    );
    assert_eq!(g.agent_mode("m").0, OperatingMode::Fallback);
    g.reset_agent("m");
    let d = decide(
        &mut g,
        &p("c4", "m", 112.0, json!({"vx": 1}), json!({"px": 1})),
    );
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
}

#[test]
fn model_mismatch_one_dt_after_suspends_g2_and_g4_and_moves_the_agent_to_fallback() {
    let mut g = load(WALL);
    let d = decide(
        &mut g,
        &p("m1", "m", 100.0, json!({"vx": 1}), json!({"px": 1})),
    );
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    // As predicted (1 + 0.1 × 1): nothing.
    let d = decide(
        &mut g,
        &p("m2", "m", 100.1, json!({"vx": 1}), json!({"px": 1.1})),
    );
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    // Far from the prediction 1.2, one dt later.
    let d = decide(
        &mut g,
        &p("m3", "m", 100.2, json!({"vx": 1}), json!({"px": 3})),
    );
    assert_eq!(modes(&d), ["model_mismatch"], "{d:#}");
    suspended_by(&d, "forward_invariance", FailureMode::ModelMismatch);
    assert_eq!(d["audit"], "QUESTIONABLE");
    assert_eq!(d["action"], json!({"vx": -2}));
    assert_eq!(d["operating_mode"], "fallback");

    // Not one dt apart (whole seconds, as benign streams are): not compared.
    let mut g = load(WALL);
    decide(
        &mut g,
        &p("n1", "n", 100.0, json!({"vx": 1}), json!({"px": 1})),
    );
    let d = decide(
        &mut g,
        &p("n2", "n", 101.0, json!({"vx": 1}), json!({"px": 3})),
    );
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
}

#[test]
fn lipschitz_exceeded_suspends_g3_degrades_the_agent_and_changes_nothing_that_executes() {
    let mut g = load(BASE);
    let step = |g: &mut Governor, id: &str, t: f64, a: f64, x: f64| {
        decide(g, &p(id, "q", t, json!({"a": a, "b": 1}), json!({"x": x})))
    };
    let d = step(&mut g, "l0", 99.0, 0.5, 1.0);
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    // Within its constant (`a * x` moves 0.25 for 0.5: 0.5 per unit): nothing.
    let d = step(&mut g, "l1", 100.0, 0.5, 1.5);
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    // `a * x` moves 3.25 for inputs that move 2 in L1: 1.625 per unit, above 1.
    let d = step(&mut g, "l2", 101.0, 2.0, 2.0);
    assert_eq!(modes(&d), ["lipschitz_exceeded"], "{d:#}");
    suspended_by(&d, "projection_stability", FailureMode::LipschitzExceeded);
    assert_eq!(d["audit"], "VALID");
    assert_eq!(d["final_outcome"], "ALLOW");
    assert_eq!(d["action"], json!({"a": 2, "b": 1}));
    assert_eq!(d["operating_mode"], "degraded");
    // Nothing moved: nothing to compare; degraded is latched.
    let d = step(&mut g, "l3", 102.0, 2.0, 2.0);
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    assert_eq!(d["operating_mode"], "degraded");
}

#[test]
fn a_policy_may_make_a_mode_stricter_with_review() {
    let mut g = load(&format!(
        "{BASE}[monitor]\nreview = [\"lipschitz_exceeded\"]\n"
    ));
    decide(
        &mut g,
        &p("l1", "q", 100.0, json!({"a": 1, "b": 1}), json!({"x": 1})),
    );
    let d = decide(
        &mut g,
        &p("l2", "q", 101.0, json!({"a": 2, "b": 1}), json!({"x": 2})),
    );
    assert_eq!(modes(&d), ["lipschitz_exceeded"], "{d:#}");
    assert_eq!(d["audit"], "QUESTIONABLE", "{d:#}");
    assert_eq!(
        d["action"],
        json!({"a": 0, "b": 0}),
        "the fallback executes"
    );
    assert_eq!(d["operating_mode"], "fallback");
}

#[test]
fn degenerate_geometry_when_binding_rows_face_each_other() {
    let mut g = load(BASE);
    let d = decide(
        &mut g,
        &p("d1", "r", 100.0, json!({"a": 0, "b": 3}), json!({"x": 2})),
    );
    assert_eq!(modes(&d), ["degenerate_geometry"], "{d:#}");
    assert_eq!(d["final_outcome"], "ALLOW_AFTER_REPAIR");
    suspended_by(&d, "projection_stability", FailureMode::DegenerateGeometry);
    assert_eq!(d["audit"], "VALID");
    assert_eq!(d["operating_mode"], "degraded");
}

#[test]
fn numerical_fault_from_a_domain_error_suspends_all_but_g1() {
    let mut g = load(BASE);
    let d = decide(
        &mut g,
        &p("n2", "t", 100.0, json!({"a": -7, "b": 1}), json!({"x": 1})),
    );
    assert!(modes(&d).contains(&"numerical_fault".to_string()), "{d:#}");
    suspended_by(&d, "projection_stability", FailureMode::NumericalFault);
    assert_eq!(d["audit"], "VALID");
    assert_eq!(d["operating_mode"], "degraded");
    assert_eq!(d["action"], json!({"a": 0, "b": 0}), "{d:#}");
}

#[test]
fn metric_not_convex_when_the_metric_is_badly_conditioned() {
    let mut g = load(&format!(
        "{BASE}[governor]\nmetric = {{ a = 1e-7, b = 1e7 }}\n"
    ));
    let d = decide(
        &mut g,
        &p("d1", "r", 100.0, json!({"a": 0, "b": 3}), json!({"x": 2})),
    );
    assert!(
        modes(&d).contains(&"metric_not_convex".to_string()),
        "{d:#}"
    );
    suspended_by(&d, "projection_stability", FailureMode::MetricNotConvex);
    assert_eq!(d["audit"], "VALID");
    assert_eq!(d["operating_mode"], "degraded");
}

#[test]
fn excessive_uncertainty_from_max_noise_sends_the_decision_for_review_without_latching() {
    let mut g = load(&WALL.replace("noise = 0.0\n", "noise = 0.0\nmax_noise = 0.5\n"));
    let d = decide(
        &mut g,
        &p(
            "u1",
            "u",
            100.0,
            json!({"vx": 1}),
            json!({"px": {"value": 1, "noise": 0.5}}),
        ),
    );
    assert_eq!(modes(&d), Vec::<String>::new(), "at max_noise: {d:#}");
    let d = decide(
        &mut g,
        &p(
            "u2",
            "u",
            101.0,
            json!({"vx": 1}),
            json!({"px": {"value": 1, "noise": 0.7}}),
        ),
    );
    assert_eq!(modes(&d), ["excessive_uncertainty"], "{d:#}");
    suspended_by(&d, "forward_invariance", FailureMode::ExcessiveUncertainty);
    suspended_by(
        &d,
        "projection_stability",
        FailureMode::ExcessiveUncertainty,
    );
    assert_eq!(d["audit"], "QUESTIONABLE");
    assert_eq!(d["action"], json!({"vx": -2}), "the fallback executes");
    assert_eq!(
        d["operating_mode"], "degraded",
        "one reading does not latch fallback"
    );
    assert!(d["reasons"].to_string().contains("max_noise"), "{d:#}");
}

#[test]
fn excessive_uncertainty_when_most_active_rows_are_uncertain() {
    let mut g = load(&format!(
        "{BASE}[monitor]\nuncertain_share = 0.2\nmin_active_rows = 4\n"
    ));
    // `a * x` in [42, 54] against 50: UNCERTAIN, one of four active rows.
    let d = decide(
        &mut g,
        &p(
            "u1",
            "v",
            100.0,
            json!({"a": 6, "b": 1}),
            json!({"x": {"lo": 7, "hi": 9}}),
        ),
    );
    assert!(
        modes(&d).contains(&"excessive_uncertainty".to_string()),
        "{d:#}"
    );
    suspended_by(
        &d,
        "projection_stability",
        FailureMode::ExcessiveUncertainty,
    );
    // Below the share (the default 0.5): not a finding.
    let mut g = load(BASE);
    let d = decide(
        &mut g,
        &p(
            "u1",
            "v",
            100.0,
            json!({"a": 6, "b": 1}),
            json!({"x": {"lo": 7, "hi": 9}}),
        ),
    );
    assert!(
        !modes(&d).contains(&"excessive_uncertainty".to_string()),
        "{d:#}"
    );
}

#[test]
fn infeasible_constraint_set_is_recorded_degrades_and_stays_valid() {
    let mut g = warehouse_with("\nmax_iterations = 50\n", "\nmax_iterations = 50\n");
    let d = decide(&mut g, &hard("b337"));
    assert_eq!(modes(&d), ["infeasible_constraint_set"], "{d:#}");
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR");
    assert_eq!(d["audit"], "VALID");
    suspended_by(
        &d,
        "projection_stability",
        FailureMode::InfeasibleConstraintSet,
    );
    suspended_by(
        &d,
        "input_to_state_stability",
        FailureMode::InfeasibleConstraintSet,
    );
    assert_eq!(d["operating_mode"], "degraded");
}

#[test]
fn solver_non_convergence_at_the_iteration_cap_degrades_and_stays_valid() {
    let mut g = warehouse_with("\nmax_iterations = 50\n", "\nmax_iterations = 1\n");
    let d = decide(&mut g, &hard("b7810"));
    assert_eq!(modes(&d), ["solver_non_convergence"], "{d:#}");
    assert_eq!(d["solver"]["status"], "MAX_ITERATIONS");
    assert_eq!(d["audit"], "VALID");
    suspended_by(
        &d,
        "projection_stability",
        FailureMode::SolverNonConvergence,
    );
    assert_eq!(d["operating_mode"], "degraded");
}

#[test]
fn deadline_overrun_at_the_modeled_budget_degrades_and_stays_valid() {
    let mut g = warehouse_with(
        "\ndeadline_us = 1000\n",
        "\ndeadline_us = 20\nenforce_deadline = true\n",
    );
    let d = decide(&mut g, &hard("b7810"));
    assert_eq!(modes(&d), ["deadline_overrun"], "{d:#}");
    assert_eq!(d["solver"]["status"], "DEADLINE");
    assert_eq!(d["audit"], "VALID");
    assert_eq!(d["operating_mode"], "degraded");
    // G5 stays in `timing`; the ledger covers G1–G4.
    assert!(d["guarantee_ledger"].get("timing").is_none());
}

#[test]
fn a_rate_limit_blocks_past_its_count_per_window() {
    let mut g = load(&format!(
        "{BASE}[monitor]\nrate_limit = 2\nrate_window_secs = 10\n"
    ));
    let ok = json!({"a": 1, "b": 1});
    for (k, t) in [100.0, 101.0].into_iter().enumerate() {
        let d = decide(
            &mut g,
            &p(&format!("r{k}"), "z", t, ok.clone(), json!({"x": 1})),
        );
        assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    }
    let d = decide(&mut g, &p("r2", "z", 102.0, ok.clone(), json!({"x": 1})));
    assert_eq!(d["final_outcome"], "BLOCK_NO_REPAIR", "{d:#}");
    assert!(d["reasons"].to_string().contains("rate limit"), "{d:#}");
    // Another agent has its own count.
    let d = decide(&mut g, &p("s0", "y", 102.0, ok.clone(), json!({"x": 1})));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
    // Past the window, allowed again.
    let d = decide(&mut g, &p("r3", "z", 111.5, ok, json!({"x": 1})));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
}

#[test]
fn freeze_executes_the_last_certified_action_when_it_is_certified_again() {
    let mut g = load(&format!("{WALL}[monitor]\nfallback_mode = \"freeze\"\n"));
    decide(
        &mut g,
        &p("f1", "f", 100.0, json!({"vx": 0.5}), json!({"px": 1})),
    );
    let d = decide(
        &mut g,
        &p("f2", "f", 101.0, json!({"vx": 1}), json!({"px": 5.2})),
    );
    assert_eq!(d["operating_mode"], "fallback", "{d:#}");
    // From px = 1 the frozen 0.5 is certified again: it executes, not the fallback.
    let d = decide(
        &mut g,
        &p("f3", "f", 102.0, json!({"vx": 1.5}), json!({"px": 1})),
    );
    assert_eq!(d["action"], json!({"vx": 0.5}), "{d:#}");
}

#[test]
fn monitor_settings_are_read_and_bad_ones_refused_with_positions() {
    let p = aioss_core::load(
        "m.toml",
        &format!(
            "{BASE}[monitor]\nrecover_after = 5\nrate_limit = 7\nreview = [\"model_mismatch\"]\n"
        ),
    )
    .unwrap();
    assert_eq!(p.monitor.recover_after, 5);
    assert_eq!(p.monitor.rate_limit, Some(7));
    assert_eq!(p.monitor.review, [FailureMode::ModelMismatch]);
    for (bad, says) in [
        ("recover_after = 0\n", "`recover_after` must be"),
        ("review = [\"deadline_budget\"]\n", "failure mode names"),
        ("review = [\"nope\"]\n", "failure mode names"),
        ("uncertain_share = 2\n", "`uncertain_share` must be"),
        ("fallback_mode = \"stop\"\n", "cannot be `stop`"),
        ("recovr_after = 3\n", "unknown key `recovr_after`"),
    ] {
        let e = aioss_core::load("m.toml", &format!("{BASE}[monitor]\n{bad}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
        assert!(e.contains("m.toml:"), "positioned: {e}");
    }
    let e = aioss_core::load(
        "m.toml",
        &WALL.replace("noise = 0.0\n", "noise = 0.2\nmax_noise = 0.1\n"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("`max_noise` of `px` is below its `noise`"),
        "{e}"
    );
}

#[test]
fn an_outcome_names_one_of_the_recent_decisions_once() {
    use aioss_core::governor::{Answer, RecentDecisions};
    let mut g = load(WALL);
    let mut recent = RecentDecisions::new(2);
    let mut ids = Vec::new();
    for k in 0..3 {
        let line = p(
            &format!("d{k}"),
            "r",
            100.0 + f64::from(k),
            json!({"vx": 0}),
            json!({"px": 1}),
        );
        match g
            .answer_line(&mut recent, &line.to_string(), Clock::Logical)
            .unwrap()
        {
            Answer::Decision(d) => ids.push(d.decision_id),
            Answer::Outcome(o) => panic!("{o}"),
        }
    }
    let outcome = |id: &str| json!({"outcome_of": id, "state": {"px": 1}}).to_string();
    let mut ask = |id: &str| g.answer_line(&mut recent, &outcome(id), Clock::Logical);
    // The oldest fell out of a window of two.
    assert_eq!(
        ask(&ids[0]).unwrap_err().field.as_deref(),
        Some("outcome_of")
    );
    assert!(matches!(ask(&ids[2]), Ok(Answer::Outcome(_))));
    assert!(matches!(ask(&ids[1]), Ok(Answer::Outcome(_))));
    // Once each; and an id of no decision.
    assert!(ask(&ids[1]).is_err());
    assert!(ask("000000000000-1").is_err());
    assert!(ask("x").is_err());
}

#[test]
fn adversarial_probing_through_its_hook_suspends_g3_questions_the_audit_and_latches_fallback() {
    let mut g = load(BASE);
    let ok = json!({"a": 1, "b": 1});
    g.flag_adversarial("m", "bisection of `lip` over 12 proposals".into());
    let d = decide(&mut g, &p("x1", "m", 100.0, ok.clone(), json!({"x": 1})));
    assert_eq!(modes(&d), ["adversarial_probing"], "{d:#}");
    suspended_by(&d, "projection_stability", FailureMode::AdversarialProbing);
    assert_eq!(d["audit"], "QUESTIONABLE");
    assert_eq!(
        d["action"],
        json!({"a": 0, "b": 0}),
        "the fallback executes"
    );
    assert_eq!(d["operating_mode"], "fallback");
    // Once: the flag is consumed, and the agent stays in the fallback mode.
    let d = decide(&mut g, &p("x2", "m", 101.0, ok.clone(), json!({"x": 1})));
    assert_eq!(modes(&d), Vec::<String>::new(), "{d:#}");
    assert_eq!(d["operating_mode"], "fallback");
    // Another agent is not touched.
    let d = decide(&mut g, &p("y1", "n", 102.0, ok, json!({"x": 1})));
    assert_eq!(d["final_outcome"], "ALLOW", "{d:#}");
}
