//! The safety invariant under the monitors (issue 20), as a property: over random streams
//! of several agents with faults injected at random (states outside their range or too
//! noisy, a plant that leaves the model, jumps that break a row's Lipschitz constant,
//! outcome reports, operator resets, the critical-rows-only mode, restarts from a
//! snapshot), every executed action is certified by a fresh Tier 1 check at its
//! proposal's state (G1; the one exception is FAILED_GOVERNANCE, whose executed action is
//! the fallback), and a second governor fed the same lines at the recorded times, as
//! `aioss audit replay` does, reproduces every answer byte for byte (latency aside) and
//! every state digest.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_core::governor::{Answer, Clock, Proposal, RecentDecisions};
use aioss_core::Governor;
use proptest::prelude::*;
use serde_json::{json, Value};

const POLICY: &str = r#"
[policy]
name = "cart-wall"
version = "1"
[action.vx]
type = "real"
min = -2.0
max = 2.0
[state.px]
min = 0.0
max = 10.0
noise = 0.0
max_noise = 0.5
[param]
dt = 0.1
[dynamics]
px = "px + dt * vx"
error_bound = { px = 0.01 }
[fallback]
vx = -2.0
[monitor]
recover_after = 3
[[constraint]]
id = "wall"
kind = "barrier"
barrier = "5 - px"
gamma = 0.5
[[constraint]]
id = "smooth"
kind = "physical"
criticality = "high"
expr = "vx + 0.1 * px <= 1.5"
lipschitz = 0.5
"#;

#[derive(Clone, Debug)]
enum Event {
    /// A proposal of agent `agent`; `step` true: one dt after its last, else 1 s.
    Propose {
        agent: usize,
        vx: f64,
        px: f64,
        noise: f64,
        step: bool,
    },
    /// The outcome of agent `agent`'s last decision, observed at `px`.
    Outcome { agent: usize, px: f64 },
    /// An operator resets agent `agent`.
    Reset { agent: usize },
    /// The critical-rows-only mode on or off.
    CriticalOnly(bool),
    /// A restart from a snapshot.
    Restart,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0..3usize, -2.5..2.5f64, -1.0..12.0f64, prop_oneof![Just(0.0), 0.0..1.0f64], any::<bool>())
            .prop_map(|(agent, vx, px, noise, step)| Event::Propose { agent, vx, px, noise, step }),
        2 => (0..3usize, 0.0..10.0f64).prop_map(|(agent, px)| Event::Outcome { agent, px }),
        1 => (0..3usize).prop_map(|agent| Event::Reset { agent }),
        1 => any::<bool>().prop_map(Event::CriticalOnly),
        1 => Just(Event::Restart),
    ]
}

/// A decision's JSON without its measured latency.
fn comparable(json: &str) -> Value {
    let mut v: Value = serde_json::from_str(json).unwrap();
    if let Some(o) = v.as_object_mut() {
        o.remove("latency_us");
        o.remove("timing");
    }
    v
}

fn load() -> Governor {
    Governor::new(aioss_core::load("cart-wall.toml", POLICY).unwrap())
}

/// The original run and its replay, side by side.
struct Pair {
    a: Governor,
    b: Governor,
    recent_a: RecentDecisions,
    recent_b: RecentDecisions,
    /// Each agent's last time and last decision id.
    time: [f64; 3],
    last: [Option<String>; 3],
}

impl Pair {
    /// Answer `line` in both; the decision's id, if it was a decision.
    fn line(&mut self, line: &str) -> Option<String> {
        let answer_a = self.a.answer_line(&mut self.recent_a, line, Clock::Logical);
        let (json_a, time) = match &answer_a {
            Ok(Answer::Decision(d)) => (d.to_json(self.a.policy()), d.time),
            Ok(Answer::Outcome(j)) => (j.clone(), f64::NAN),
            Err(e) => (e.to_json(), f64::NAN),
        };
        // The replay decides at the recorded time, as `audit replay` does.
        let clock = if time.is_nan() {
            Clock::Logical
        } else {
            Clock::Recorded(time)
        };
        self.b.set_critical_only(self.a.critical_only());
        let answer_b = self.b.answer_line(&mut self.recent_b, line, clock);
        let json_b = match &answer_b {
            Ok(Answer::Decision(d)) => d.to_json(self.b.policy()),
            Ok(Answer::Outcome(j)) => j.clone(),
            Err(e) => e.to_json(),
        };
        assert_eq!(comparable(&json_a), comparable(&json_b), "{line}");
        assert_eq!(self.a.state_digest(), self.b.state_digest(), "{line}");
        if let Ok(Answer::Decision(d)) = answer_a {
            self.g1(line, &json_a, &d.final_outcome);
            return Some(d.decision_id);
        }
        None
    }

    /// G1: the executed action, checked afresh at the proposal's state.
    fn g1(&mut self, line: &str, json: &str, outcome: &aioss_core::Outcome) {
        let d: Value = serde_json::from_str(json).unwrap();
        let mut executed: Value = serde_json::from_str(line).unwrap();
        executed["action"] = d["action"].clone();
        let p = Proposal::parse(self.a.policy(), &executed.to_string()).unwrap();
        let unsafe_rows = self.a.critical_unsat(&p);
        if *outcome == aioss_core::Outcome::FailedGovernance {
            assert_eq!(d["action"], json!({"vx": -2}), "{d:#}");
        } else {
            assert!(unsafe_rows.is_empty(), "G1: {unsafe_rows:?}\n{d:#}");
        }
    }

    fn event(&mut self, e: &Event) {
        match *e {
            Event::Propose {
                agent,
                vx,
                px,
                noise,
                step,
            } => {
                self.time[agent] += if step { 0.1 } else { 1.0 };
                let state = if noise > 0.0 {
                    json!({"px": {"value": px, "noise": noise}})
                } else {
                    json!({"px": px})
                };
                let line = json!({"agent": format!("agent-{agent}"), "timestamp": self.time[agent],
                                  "action": {"vx": vx}, "state": state})
                .to_string();
                if let Some(id) = self.line(&line) {
                    self.last[agent] = Some(id);
                }
            }
            Event::Outcome { agent, px } => {
                let Some(id) = self.last[agent].take() else {
                    return;
                };
                let line = json!({"outcome_of": id, "state": {"px": px}}).to_string();
                self.line(&line);
            }
            Event::Reset { agent } => {
                let name = format!("agent-{agent}");
                self.a.reset_agent(&name);
                self.b.reset_agent(&name);
            }
            Event::CriticalOnly(on) => self.a.set_critical_only(on),
            Event::Restart => {
                // What replay checks at a snapshot record, then both go on from it.
                let snap = self.a.snapshot();
                assert_eq!(snap, self.b.snapshot());
                let critical_only = self.a.critical_only();
                self.a = load();
                self.a.restore_snapshot(&snap).unwrap();
                self.a.set_critical_only(critical_only);
                self.b.restore_snapshot(&snap).unwrap();
                self.b.reset_warm_starts();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_executed_action_is_certified_and_replay_reproduces_every_decision(
        events in proptest::collection::vec(event(), 1..60)
    ) {
        let mut pair = Pair {
            a: load(),
            b: load(),
            recent_a: RecentDecisions::new(64),
            recent_b: RecentDecisions::new(64),
            time: [100.0; 3],
            last: [None, None, None],
        };
        for e in &events {
            pair.event(e);
        }
    }
}
