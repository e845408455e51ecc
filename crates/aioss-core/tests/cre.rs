//! The Conflict Resolution Engine: which rows may take slack, in what order, and how much.
//!
//! Every policy here has linear rows only, so each relaxation stage is one exact QP and the
//! expected answers can be worked out by hand (they are written in the comments).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::policy::Criticality;
use aioss_core::repair::{Repair, RepairOutcome, Repairer};
use aioss_core::{Interval, Policy, Status};

fn load(body: &str) -> Policy {
    let src = format!(
        "[policy]\nname = \"cre\"\n[action.x]\nmin = -5.0\nmax = 5.0\n[action.y]\nmin = -5.0\nmax = 5.0\n[fallback]\nx = 0.0\ny = 0.0\n{body}"
    );
    aioss_core::load("cre.toml", &src).unwrap_or_else(|e| panic!("{e}"))
}

fn repair(p: &Policy, u0: [f64; 2]) -> Repair {
    Repairer::new(p).repair(p, &p.range_inputs(), &u0, &[])
}

fn row(p: &Policy, id: &str) -> usize {
    p.lattice.rows.iter().position(|r| r.name == id).unwrap()
}

fn relaxed_rows(r: &Repair) -> Vec<usize> {
    r.relaxed.iter().map(|x| x.0).collect()
}

/// Every active critical row SAT, every relaxed row non-critical within its tolerance, every
/// other active row SAT.
fn assert_sound(p: &Policy, r: &Repair) {
    assert!(r.certified, "{r:?}");
    for (i, (rw, c)) in p.lattice.rows.iter().zip(&r.checks).enumerate() {
        if !c.active {
            continue;
        }
        match r.relaxed.iter().find(|x| x.0 == i) {
            None => assert_eq!(c.status, Status::Sat, "{} {r:?}", rw.name),
            Some(&(_, s)) => {
                assert_ne!(rw.criticality, Criticality::Critical, "{r:?}");
                assert!(s <= p.constraints[rw.constraint].tolerance, "{r:?}");
            }
        }
    }
}

#[test]
fn a_critical_row_is_never_relaxed_even_when_that_is_much_cheaper() {
    // x <= 1 (critical) against x >= 3 (high, tolerance 2.5). From x = 4, relaxing the
    // critical row would cost nothing (x = 4 already meets the high row); the CRE must
    // instead relax the high row: x = 1, slack 3 - 1 = 2.
    let p = load(
        r#"
[[constraint]]
id = "wall"
expr = "x <= 1"
[[constraint]]
id = "want"
expr = "x >= 3"
criticality = "high"
tolerance = 2.5
"#,
    );
    let r = repair(&p, [4.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert_eq!(relaxed_rows(&r), vec![row(&p, "want")]);
    assert!(r.action[0] <= 1.0 && r.action[0] > 1.0 - 1e-6, "{r:?}");
    assert!((r.relaxed[0].1 - 2.0).abs() < 1e-6, "{r:?}");

    // With too little tolerance on the high row, the answer is the fallback: never a point
    // that gives up the critical row.
    let p = load(
        r#"
[[constraint]]
id = "wall"
expr = "x <= 1"
[[constraint]]
id = "want"
expr = "x >= 3"
criticality = "high"
tolerance = 1.5
"#,
    );
    let r = repair(&p, [4.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Fallback, "{r:?}");
    assert_eq!(r.action, p.fallback);
    assert!(r.relaxed.is_empty());
}

#[test]
fn no_slack_is_used_when_a_strictly_feasible_point_exists() {
    // Cheap slack (tiny weights, big tolerances) would be closer to the proposal, but
    // x + y <= 0 and x - y <= 1 can both hold: the nearest such point to (2, 2) is (0, 0)
    // (x + y <= 0 binds, x - y <= 1 is slack there).
    let p = load(
        r#"
[[constraint]]
id = "sum"
expr = "x + y <= 0"
criticality = "low"
tolerance = 10.0
weight = 0.001
[[constraint]]
id = "diff"
expr = "x - y <= 1"
criticality = "medium"
tolerance = 10.0
weight = 0.001
"#,
    );
    for u0 in [[2.0, 2.0], [3.0, -1.0], [-4.0, 4.5]] {
        let r = repair(&p, u0);
        assert_eq!(r.outcome, RepairOutcome::Certified, "{r:?}");
        assert!(r.relaxed.is_empty());
        assert_sound(&p, &r);
    }
    let r = repair(&p, [2.0, 2.0]);
    assert!(
        r.action[0].abs() < 1e-6 && r.action[1].abs() < 1e-6,
        "{r:?}"
    );
    // Every margin non-negative at the answer: no row is short.
    assert!(r.checks.iter().all(|c| c.margin.lo >= 0.0));
}

#[test]
fn the_low_row_takes_the_slack_before_the_high_one() {
    // x <= 1 (low, tol 3) against x >= 2 (high, tol 3). From x = 0, relaxing the high row
    // would be nearer (x = 1); the order says relax the low one: x = 2, low slack 1.
    let p = load(
        r#"
[[constraint]]
id = "low"
expr = "x <= 1"
criticality = "low"
tolerance = 3.0
[[constraint]]
id = "high"
expr = "x >= 2"
criticality = "high"
tolerance = 3.0
"#,
    );
    let r = repair(&p, [0.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert_eq!(relaxed_rows(&r), vec![row(&p, "low")]);
    assert!((r.action[0] - 2.0).abs() < 1e-6, "{r:?}");
    assert_eq!(r.checks[row(&p, "high")].status, Status::Sat);
}

fn three_levels(low_tol: f64, medium_tol: f64) -> Policy {
    load(&format!(
        r#"
[[constraint]]
id = "goal"
expr = "x + y >= 4"
criticality = "high"
tolerance = 3.0
[[constraint]]
id = "low"
expr = "x <= 1"
criticality = "low"
tolerance = {low_tol:?}
[[constraint]]
id = "medium"
expr = "y <= 1"
criticality = "medium"
tolerance = {medium_tol:?}
"#
    ))
}

#[test]
fn medium_is_relaxed_only_when_relaxing_low_alone_is_not_enough() {
    // x + y >= 4 (high), x <= 1 (low), y <= 1 (medium). With low's tolerance 3, relaxing low
    // alone is enough: y <= 1, x + y >= 4, nearest to (0, 0) is (3, 1), low slack 2 — even
    // though relaxing both ((2, 2), distance √8 < √10) would be nearer.
    let p = three_levels(3.0, 3.0);
    let r = repair(&p, [0.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert_eq!(relaxed_rows(&r), vec![row(&p, "low")]);
    assert!(
        (r.action[0] - 3.0).abs() < 1e-6 && (r.action[1] - 1.0).abs() < 1e-6,
        "{r:?}"
    );
    assert!((r.relaxed[0].1 - 2.0).abs() < 1e-6, "{r:?}");

    // With low's tolerance 1 (x <= 2 at most), low alone cannot reach x + y >= 4: medium
    // takes slack too, and the high row still holds.
    let p = three_levels(1.0, 3.0);
    let r = repair(&p, [0.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert_eq!(relaxed_rows(&r), vec![row(&p, "low"), row(&p, "medium")]);
    assert_eq!(r.checks[row(&p, "goal")].status, Status::Sat);
    let total: f64 = r.relaxed.iter().map(|x| x.1).sum();
    assert!(total >= 2.0 - 1e-6, "{r:?}");

    // With both tolerances at 0.5 (x + y <= 3 at most), only relaxing the high row too
    // works: x + y >= 4 - slack with slack <= 3.
    let p = three_levels(0.5, 0.5);
    let r = repair(&p, [0.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert!(r.relaxed.iter().any(|x| x.0 == row(&p, "goal")), "{r:?}");
}

#[test]
fn reported_slack_is_the_margin_shortfall_at_the_returned_action() {
    for (lt, mt) in [(3.0, 3.0), (1.0, 3.0), (0.5, 0.5), (2.5, 0.2)] {
        let p = three_levels(lt, mt);
        for u0 in [[0.0, 0.0], [-2.0, 1.0], [1.0, -3.0], [4.0, 4.0]] {
            let r = repair(&p, u0);
            assert_sound(&p, &r);
            let (x, y) = (r.action[0], r.action[1]);
            // The shortfall of each row, computed here from the action.
            let shortfall = |id: &str| match id {
                "goal" => 4.0 - (x + y),
                "low" => x - 1.0,
                _ => y - 1.0,
            };
            for &(i, s) in &r.relaxed {
                assert_eq!(s, -r.checks[i].margin.lo, "{r:?}");
                let exact = shortfall(&p.lattice.rows[i].name);
                assert!(
                    (s - exact).abs() <= 1e-12 * (1.0 + exact.abs()),
                    "{} slack {s} vs {exact}: {r:?}",
                    p.lattice.rows[i].name
                );
                assert!(s > 0.0, "a relaxed row is one that does not hold: {r:?}");
            }
        }
    }
}

#[test]
fn a_fallback_that_fails_at_the_current_state_is_reported_uncertified() {
    // Certified when loading over s in [0, 0.5]. At s in [2.5, 2.6] no action meets
    // x + s <= 1 (it needs x <= -1.6, below x's minimum -1), and the fallback x = 0 does not
    // either: the result is the fallback, marked uncertified (a FAILED evaluation).
    let src = r#"
[policy]
name = "fb"
[action.x]
min = -1.0
max = 1.0
[state.s]
min = 0.0
max = 0.5
[fallback]
x = 0.0
[[constraint]]
id = "room"
expr = "x + s <= 1"
"#;
    let p = aioss_core::load("fb.toml", src).unwrap();
    let mut inputs = p.range_inputs();
    inputs[p.states[0].slot.unwrap() as usize] = Interval::new(2.5, 2.6);
    let r = Repairer::new(&p).repair(&p, &inputs, &[0.5], &[]);
    assert_eq!(r.outcome, RepairOutcome::Fallback, "{r:?}");
    assert!(!r.certified, "{r:?}");
    assert_eq!(r.checks[0].status, Status::Violated);
    // Inside the declared range a proposal x = 0.9 repairs to x = 1 - 0.5 = 0.5.
    let mut inputs = p.range_inputs();
    inputs[p.states[0].slot.unwrap() as usize] = Interval::new(0.4, 0.5);
    let r = Repairer::new(&p).repair(&p, &inputs, &[0.9], &[]);
    assert_eq!(r.outcome, RepairOutcome::Certified, "{r:?}");
    assert!(r.action[0] <= 0.5 && r.action[0] > 0.5 - 1e-6, "{r:?}");
}

#[test]
fn a_relaxed_curved_row_takes_the_least_slack() {
    // Caught: in a relaxed stage the SQP returned its first acceptable iterate, which for a
    // curved row can use far more slack than needed. x >= 1.5 (high, no tolerance) against
    // the disc x² + y² <= 1 (low, tolerance 2): with the disc relaxed, the least slack is at
    // x = 1.5, y = 0: 1.5² - 1 = 1.25, and the exact L1 penalty makes that the answer from
    // any proposal.
    let p = load(
        r#"
[[constraint]]
id = "reach"
expr = "x >= 1.5"
criticality = "high"
[[constraint]]
id = "disc"
expr = "x^2 + y^2 <= 1"
criticality = "low"
tolerance = 2.0
"#,
    );
    for u0 in [[0.0, 1.0], [0.0, -0.8], [2.0, 0.5], [-1.0, 0.0]] {
        let r = repair(&p, u0);
        assert_eq!(r.outcome, RepairOutcome::Relaxed, "{u0:?}: {r:?}");
        assert_sound(&p, &r);
        assert_eq!(relaxed_rows(&r), vec![row(&p, "disc")]);
        // The penalised problem's optimum is y = y₀ / (1 + L1 weight 1e4), so the slack
        // exceeds 1.25 by about (y₀ / 1e4)², i.e. 1e-8: far below the 0.19 extra of the
        // first acceptable iterate, which was returned before the fix.
        let slack = r.relaxed[0].1;
        assert!(slack >= 1.25, "{u0:?}: slack {slack}: {r:?}");
        assert!(slack - 1.25 < 1e-6, "{u0:?}: slack {slack}: {r:?}");
        assert!(r.action[1].abs() < 1e-3, "{u0:?}: {r:?}");
    }
}

#[test]
fn a_row_that_holds_at_the_start_but_must_give_way_gets_its_slack() {
    // x >= 3 (high, no tolerance) against x <= 2.5 (low, tolerance 1). From x = 2, the low
    // row holds, so the first QP of the relaxing stage gives it no slack column (only rows
    // not SAT, or active in the last QP, get one) and is infeasible; the same point is then
    // solved with a slack for every relaxable row: x = 3, slack 0.5.
    let p = load(
        r#"
[[constraint]]
id = "need"
expr = "x >= 3"
criticality = "high"
[[constraint]]
id = "eco"
expr = "x <= 2.5"
criticality = "low"
tolerance = 1.0
"#,
    );
    let r = repair(&p, [2.0, 0.0]);
    assert_eq!(r.outcome, RepairOutcome::Relaxed, "{r:?}");
    assert_sound(&p, &r);
    assert_eq!(relaxed_rows(&r), vec![row(&p, "eco")]);
    assert!((r.action[0] - 3.0).abs() < 1e-6, "{r:?}");
    assert!((r.relaxed[0].1 - 0.5).abs() < 1e-6, "{r:?}");
}
