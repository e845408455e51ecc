//! Tier 2 repair: first end-to-end checks (the full suite of issue 3 is still to come).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::repair::{RepairOutcome, Repairer};
use aioss_core::{Interval, Status};

const POLICY: &str = r#"
[policy]
name = "r"
[governor]
metric = { vx = 1.0, vy = 1.0 }
[action.vx]
min = -2.0
max = 2.0
[action.vy]
min = -2.0
max = 2.0
[action.mode]
type = "enum"
values = ["move", "stop"]
[state.px]
min = 0
max = 10
noise = 0.05
[fallback]
vx = 0.0
vy = 0.0
mode = "stop"
[[constraint]]
id = "speed"
expr = "vx^2 + vy^2 <= 1.0"
[[constraint]]
id = "lane"
expr = "vy <= 0.1 * px"
criticality = "high"
tolerance = 0.3
[[constraint]]
id = "eco"
expr = "vx <= 0.5"
criticality = "low"
tolerance = 0.2
[[constraint]]
id = "stop-means-stop"
expr = "mode == 'move' or vx^2 + vy^2 <= 0"
"#;

fn setup(px: f64) -> (aioss_core::Policy, Vec<Interval>) {
    let p = aioss_core::load("r.toml", POLICY).unwrap();
    let mut inputs = p.range_inputs();
    let s = p.states[0].slot.unwrap() as usize;
    inputs[s] = Interval::around(px, 0.05);
    (p, inputs)
}

#[test]
fn projection_is_certified_and_near() {
    let (p, inputs) = setup(5.0);
    let mut r = Repairer::new(&p);
    // vx = 2 breaks the disc and eco; the low row eco can hold, so no relaxation.
    let rep = r.repair(&p, &inputs, &[2.0, 0.0, 0.0], &[]);
    assert_eq!(rep.outcome, RepairOutcome::Certified, "{rep:?}");
    assert!(rep.certified);
    for c in rep.checks.iter().filter(|c| c.active) {
        assert_eq!(c.status, Status::Sat, "{rep:?}");
    }
    assert!((rep.action[0] - 0.5).abs() < 1e-6, "{:?}", rep.action);
    assert!((rep.distance - 1.5).abs() < 1e-6, "{}", rep.distance);
}

/// Caught: SQP with only the metric as Hessian (no constraint curvature) oscillated between
/// two linearisations of the speed disc when the straight `lane` row was also near, ending
/// in MaxIterations and the fallback. Fixed by halving the step when the violation stops
/// falling.
#[test]
fn sqp_oscillates_between_disc_and_lane_linearisations() {
    // px = 10: the lane allows vy up to 0.995, so the disc binds, and the nearest
    // point is the radial projection of the proposal.
    let (p, inputs) = setup(10.0);
    let mut r = Repairer::new(&p);
    let rep = r.repair(&p, &inputs, &[0.3, 2.0, 0.0], &[]);
    assert_eq!(rep.outcome, RepairOutcome::Certified, "{rep:?}");
    let (vx, vy) = (rep.action[0], rep.action[1]);
    assert!(vx * vx + vy * vy <= 1.0);
    let norm = (0.3f64 * 0.3 + 4.0).sqrt();
    assert!(
        (vx - 0.3 / norm).abs() < 1e-6 && (vy - 2.0 / norm).abs() < 1e-6,
        "{vx} {vy}"
    );
    assert!(rep.iterations > 2, "a curved row takes several SQP steps");
}

#[test]
fn infeasible_non_critical_row_is_relaxed_within_tolerance_never_a_critical_one() {
    // px = 0: lane needs vy <= 0 (robustly: vy <= -0.005); a proposal with mode 'stop' and
    // vy = 0.2 needs stop-means-stop (critical) — repaired by the discrete search or stop.
    let (p, inputs) = setup(0.0);
    let mut r = Repairer::new(&p);
    let rep = r.repair(&p, &inputs, &[0.0, 0.2, 1.0], &[]);
    assert!(rep.certified, "{rep:?}");
    for (row, c) in p.lattice.rows.iter().zip(&rep.checks) {
        if c.active && row.criticality == aioss_core::policy::Criticality::Critical {
            assert_eq!(c.status, Status::Sat, "{}", row.name);
        }
    }
}

#[test]
fn curved_row_alone_converges_to_the_radial_projection() {
    let (p, inputs) = setup(5.0);
    let mut r = Repairer::new(&p);
    // Proposal along -y: the lane (vy <= 0.495) and eco (vx <= 0.5) are slack at the answer.
    let rep = r.repair(&p, &inputs, &[0.0, -2.0, 0.0], &[]);
    assert_eq!(rep.outcome, RepairOutcome::Certified, "{rep:?}");
    let (vx, vy) = (rep.action[0], rep.action[1]);
    assert!(
        vx.abs() < 1e-9 && (vy + 1.0).abs() < 1e-6 && vy >= -1.0,
        "{vx} {vy}"
    );
}

#[test]
fn warm_start_gives_the_same_answer_as_cold() {
    let (p, inputs) = setup(5.0);
    let mut warm = Repairer::new(&p);
    let mut cold = Repairer::new(&p);
    cold.cold = true;
    for k in 0..20 {
        let u = [1.5 + 0.01 * f64::from(k), 0.8 - 0.02 * f64::from(k), 0.0];
        let a = warm.repair(&p, &inputs, &u, &[]);
        let b = cold.repair(&p, &inputs, &u, &[]);
        assert_eq!(a.outcome, b.outcome);
        for (x, y) in a.action.iter().zip(&b.action) {
            assert!((x - y).abs() < 1e-9, "{a:?} {b:?}");
        }
    }
}

#[test]
fn fallback_is_checked_at_the_current_state() {
    let (p, inputs) = setup(5.0);
    let mut r = Repairer::new(&p);
    let fb = r.fallback(
        &p,
        &inputs,
        &[2.0, 2.0, 0.0],
        aioss_core::repair::SolverStatus::Infeasible,
        0,
        0,
    );
    assert_eq!(fb.outcome, RepairOutcome::Fallback);
    assert!(fb.certified);
    assert_eq!(fb.action, p.fallback);
}
