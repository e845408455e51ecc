//! Observed outcomes feed the monitors (issue 20): the state an agent observed after a
//! decision executed, re-evaluated ([`Governor::evaluate_outcome`]) and, when it names a
//! failure mode, moving the agent's mode of operation as a decision naming it would. The
//! server's outcome reports and `aioss decide`'s outcome lines (`{"outcome_of": ID,
//! "state": {...}}`) both come here, and `audit replay` re-applies each recorded outcome,
//! so the agents' modes stay re-derivable from the log.

use std::collections::VecDeque;

use serde_json::Value;

use super::{
    Decision, Governor, InputCode, InputError, OutcomeEvaluation, Proposal, RowReport, StateValue,
};
use crate::failure::FailureModes;

/// An outcome line of `aioss decide`: the decision it reports on and the observed state.
#[derive(Clone, Debug)]
pub struct OutcomeLine {
    /// `outcome_of`: the decision's `decision_id`.
    pub decision_id: String,
    /// `state`: one entry per state variable, validated as a proposal's state.
    pub state: Vec<Option<StateValue>>,
}

impl OutcomeLine {
    /// Is `line` an outcome line (an object with an `outcome_of` key)? Cheap: a proposal
    /// line is not parsed twice unless it mentions `"outcome_of"`.
    pub fn is_outcome(line: &str) -> bool {
        line.contains("\"outcome_of\"")
            && serde_json::from_str::<Value>(line)
                .ok()
                .is_some_and(|v| v.get("outcome_of").is_some())
    }

    /// Read an outcome line under `p`: `outcome_of` a string, `state` an object validated
    /// as a proposal's state, nothing else.
    pub fn parse(p: &crate::Policy, line: &str) -> Result<OutcomeLine, InputError> {
        let v: Value = serde_json::from_str(line).map_err(|e| InputError {
            code: InputCode::MalformedJson,
            message: format!("malformed JSON: {e}"),
            field: None,
        })?;
        let Some(o) = v.as_object() else {
            return Err(InputError {
                code: InputCode::WrongType,
                message: "an outcome line must be a JSON object".into(),
                field: None,
            });
        };
        if let Some(k) = o.keys().find(|k| *k != "outcome_of" && *k != "state") {
            return Err(InputError::new(
                InputCode::UnknownField,
                k.clone(),
                format!("`{k}` is not known in an outcome line: give `outcome_of` and `state`"),
            ));
        }
        let decision_id = match o.get("outcome_of") {
            Some(Value::String(s)) => s.clone(),
            _ => {
                return Err(InputError::new(
                    InputCode::WrongType,
                    "outcome_of",
                    "`outcome_of` must be a decision id (a string)",
                ))
            }
        };
        let state = match o.get("state") {
            Some(s @ Value::Object(_)) => Proposal::parse_state(p, &s.to_string())?,
            Some(_) => {
                return Err(InputError::new(
                    InputCode::WrongType,
                    "state",
                    "`state` must be an object",
                ))
            }
            None => {
                return Err(InputError::new(
                    InputCode::MissingField,
                    "state",
                    "the observed next state `state` is missing",
                ))
            }
        };
        Ok(OutcomeLine { decision_id, state })
    }
}

/// One decision an outcome may name: its sequence number, its proposal line and the
/// action it executed, or `None` once its outcome was taken.
#[derive(Debug, Default)]
struct Kept {
    seq: u64,
    line: String,
    executed: Vec<f64>,
    taken: bool,
}

/// The decisions an outcome may still be reported for: the proposal line as decided and
/// the executed action of the most recent `cap` decisions, each taken once. A ring by
/// decision sequence number (a decision id is `<policy>-<seq>`) whose slots are reused:
/// every line of `aioss decide` passes here, and keeping it costs no allocation, no
/// hashing and no parsing (a proposal is parsed again only when an outcome names it).
#[derive(Debug)]
pub struct RecentDecisions {
    /// Oldest first, `seq` increasing.
    ring: VecDeque<Kept>,
    /// The policy part of the ids (`<policy>-`), set by the first decision kept.
    prefix: Option<String>,
    cap: usize,
}

impl RecentDecisions {
    /// At most `cap` decisions kept.
    pub fn new(cap: usize) -> RecentDecisions {
        RecentDecisions {
            ring: VecDeque::new(),
            prefix: None,
            cap: cap.max(1),
        }
    }

    /// Keep decision `d` of the proposal line `line`.
    pub fn remember(&mut self, line: &str, d: &Decision) {
        let prefix = d
            .decision_id
            .strip_suffix(&d.seq.to_string())
            .unwrap_or_default();
        if self.prefix.as_deref() != Some(prefix) {
            // Another policy's ids (a reload): the older decisions cannot be named by them.
            self.ring.clear();
            self.prefix = Some(prefix.to_string());
        }
        if self.ring.back().is_some_and(|k| k.seq >= d.seq) {
            self.ring.clear();
        }
        let mut slot = if self.ring.len() >= self.cap {
            self.ring.pop_front().unwrap_or_default()
        } else {
            Kept::default()
        };
        slot.seq = d.seq;
        slot.line.clear();
        slot.line.push_str(line);
        slot.executed.clear();
        slot.executed.extend_from_slice(&d.action);
        slot.taken = false;
        self.ring.push_back(slot);
    }

    /// The decision `id` (its proposal, parsed again under `p`, and the executed action),
    /// taken out: one outcome per decision.
    pub fn take(&mut self, p: &crate::Policy, id: &str) -> Option<(Proposal, Vec<f64>)> {
        let seq: u64 = id.strip_prefix(self.prefix.as_deref()?)?.parse().ok()?;
        let front = self.ring.front()?.seq;
        let at = usize::try_from(seq.checked_sub(front)?).ok()?;
        let k = self.ring.get_mut(at)?;
        if k.seq != seq || k.taken {
            return None;
        }
        let prop = Proposal::parse(p, &k.line).ok()?;
        k.taken = true;
        Some((prop, k.executed.clone()))
    }
}

/// What one input line of `aioss decide` is answered with.
#[derive(Debug)]
#[expect(
    clippy::large_enum_variant,
    reason = "nearly every line is a decision: boxing it would cost an allocation per line"
)]
pub enum Answer {
    /// A proposal's decision.
    Decision(Decision),
    /// An outcome line's re-evaluation (its JSON).
    Outcome(String),
}

impl Governor {
    /// Answer one line of `aioss decide` (and of its replay): an outcome line (`{"outcome_of":
    /// ID, "state": {...}}`) is re-evaluated against decision `ID`, taken from `recent`,
    /// and feeds the agent's monitors ([`Governor::observe_outcome`]); any other line is a
    /// proposal, decided at `clock` and kept in `recent` for its outcome.
    pub fn answer_line(
        &mut self,
        recent: &mut RecentDecisions,
        text: &str,
        clock: super::Clock,
    ) -> Result<Answer, InputError> {
        // A proposal first: an outcome line is not one (its `outcome_of` is no proposal
        // field), so only a line that fails as a proposal is looked at again, and the
        // proposals' path pays nothing for outcome lines.
        let prop = match Proposal::parse(self.policy(), text) {
            Ok(prop) => prop,
            Err(e) if !OutcomeLine::is_outcome(text) => return Err(e),
            Err(_) => return self.outcome_line(recent, text),
        };
        let d = self.decide_with(&prop, clock)?;
        recent.remember(text, &d);
        Ok(Answer::Decision(d))
    }

    /// An outcome line: `outcome_of` taken from `recent`, re-evaluated, fed to the
    /// agent's monitors.
    fn outcome_line(
        &mut self,
        recent: &mut RecentDecisions,
        text: &str,
    ) -> Result<Answer, InputError> {
        let o = OutcomeLine::parse(self.policy(), text)?;
        let Some((decided, executed)) = recent.take(self.policy(), &o.decision_id) else {
            return Err(InputError::new(
                    InputCode::InvalidValue,
                    "outcome_of",
                    format!(
                        "no decision `{}` awaits an outcome here (unknown, too old, or already reported)",
                        o.decision_id
                    ),
                ));
        };
        let ev = self.observe_outcome(&decided, &executed, &o.state);
        let json = outcome_json(self.policy(), &o.decision_id, &decided.agent, &ev);
        Ok(Answer::Outcome(json.to_string()))
    }

    /// Re-evaluate an executed decision from the state observed after it
    /// ([`Governor::evaluate_outcome`]) and let what it found move the agent's mode of
    /// operation: `left_safe_set` or `model_mismatch` where the policy offers the
    /// trajectory guarantee they suspend sends the agent to the fallback mode.
    pub fn observe_outcome(
        &mut self,
        decided: &Proposal,
        executed: &[f64],
        observed: &[Option<StateValue>],
    ) -> OutcomeEvaluation {
        let ev = self.evaluate_outcome(decided, executed, observed);
        self.outcome_moves_agent(&decided.agent, &ev.failure_modes);
        ev
    }
}

/// An outcome's answer, as `aioss decide` writes it and the server answers it (the server
/// adds who reported it).
pub fn outcome_json(
    p: &crate::Policy,
    decision_id: &str,
    agent: &str,
    ev: &OutcomeEvaluation,
) -> Value {
    let rows = |rows: &[RowReport]| -> Value {
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "id": r.id,
                    "status": r.status.as_str(),
                    "margin": if r.margin.is_invalid() { Value::Null } else { serde_json::json!(r.margin.lo) },
                })
            })
            .collect()
    };
    let diverged: Vec<Value> = ev
        .diverged
        .iter()
        .map(|d| {
            serde_json::json!({"state": d.state, "predicted": [d.predicted.lo, d.predicted.hi], "observed": [d.observed.lo, d.observed.hi]})
        })
        .collect();
    let modes: Vec<&str> = ev.failure_modes.iter().map(|f| f.name()).collect();
    serde_json::json!({
        "decision_id": decision_id,
        "agent": agent,
        "evaluation": ev.evaluation.as_str(),
        "left_safe_set": rows(&ev.left_safe_set),
        "diverged": diverged,
        "failure_modes": modes,
        "reasons": ev.reasons,
        "policy": {"name": p.name, "version": p.version, "hash": p.hash},
    })
}

impl Governor {
    /// Apply an outcome whose decision is no longer known (replay from a later point than
    /// the decision): the failure modes its answer recorded move its agent's mode.
    pub fn apply_recorded_outcome(&mut self, answer: &str) {
        let agent = serde_json::from_str::<Value>(answer)
            .ok()
            .and_then(|v| Some(v.get("agent")?.as_str()?.to_string()));
        if let Some(agent) = agent {
            self.outcome_moves_agent(&agent, &recorded_modes(answer));
        }
    }
}

/// The failure modes an outcome answer recorded (for replay's comparison).
pub fn recorded_modes(answer: &str) -> FailureModes {
    let mut m = FailureModes::default();
    if let Ok(v) = serde_json::from_str::<Value>(answer) {
        for f in v
            .get("failure_modes")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(x) = f.as_str().and_then(crate::failure::FailureMode::parse) {
                m.add(x);
            }
        }
    }
    m
}
