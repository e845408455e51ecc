//! What an observed next state says about a decision that was executed: still in the safe
//! set, and where the `[dynamics]` model said it would be? EFFECTIVE, or FAILED with the
//! failure modes `left_safe_set` and `model_mismatch`.
//!
//! Why here and not in the server: it is Tier 1 and the dynamics model applied to the
//! governor's state, the same judgement for `aioss serve`'s outcome reports as for any
//! caller that re-evaluates a decision (a replay, a batch `decide`); one function, so
//! there is one answer.

use crate::failure::{FailureMode, FailureModes};
use crate::interval::Interval;

use super::{Evaluation, Governor, Proposal, RowReport, StateValue};

/// A state variable observed outside the `[dynamics]` prediction.
#[derive(Clone, Debug, PartialEq)]
pub struct Divergence {
    /// The state variable's name.
    pub state: String,
    /// The prediction from the decision's state and executed action, widened by the
    /// equation's `error_bound`.
    pub predicted: Interval,
    /// The observed value (its uncertainty interval).
    pub observed: Interval,
}

/// The re-evaluation of an executed decision against the state observed after it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutcomeEvaluation {
    /// [`Evaluation::Effective`], or [`Evaluation::Failed`] when a failure mode was found.
    pub evaluation: Evaluation,
    /// The active critical rows not SAT at the certified fallback in the observed state.
    pub left_safe_set: Vec<RowReport>,
    /// The state variables observed outside the model's prediction, in the order of the
    /// `[dynamics]` equations.
    pub diverged: Vec<Divergence>,
    /// `left_safe_set` (when a row left it), then `model_mismatch` (when a variable
    /// diverged).
    pub failure_modes: FailureModes,
    /// One line per row that left the safe set, then one per diverged variable.
    pub reasons: Vec<String>,
}

impl Governor {
    /// Re-evaluate a decision from the state observed after its action was executed.
    /// `decided` is the proposal as decided (its agent, attributes and state are read),
    /// `executed` the action the decision executed, `observed` the next state (one entry
    /// per state variable, as [`Proposal::parse_state`] reads it). No effect on the
    /// governor state; `prev.` is the governor's record of the agent's last action.
    ///
    /// * **Left the safe set**: an active critical row not SAT at the certified fallback
    ///   in the observed state. The fallback satisfies every critical row over the
    ///   declared ranges (and with it a barrier row reads `h(x) >= 0`), so a row not SAT
    ///   means the observed state itself is, or may be, outside the safe set.
    /// * **Diverged**: an observed number outside the `[dynamics]` prediction from the
    ///   decision's state and executed action, widened by the equation's error bound (or
    ///   not a number at all). Nothing diverges without `[dynamics]`.
    pub fn evaluate_outcome(
        &mut self,
        decided: &Proposal,
        executed: &[f64],
        observed: &[Option<StateValue>],
    ) -> OutcomeEvaluation {
        let at = |action: Vec<f64>, state: Vec<Option<StateValue>>| Proposal {
            id: None,
            agent: decided.agent.clone(),
            timestamp: None,
            prev: vec![None; action.len()],
            action,
            state,
            attributes: decided.attributes.clone(),
            transition: None,
        };
        let probe = at(self.policy().fallback.clone(), observed.to_vec());
        let left_safe_set = self.critical_unsat(&probe);
        let from = at(executed.to_vec(), decided.state.clone());
        let mut diverged = Vec::new();
        for (name, predicted) in self.predict_next(&from) {
            let seen = self
                .policy()
                .states
                .iter()
                .position(|s| s.name == name)
                .and_then(|i| observed.get(i))
                .and_then(|v| match v {
                    Some(StateValue::Num(x)) => Some(*x),
                    _ => None,
                });
            if let Some(o) = seen {
                if o.hi < predicted.lo || o.lo > predicted.hi || o.is_invalid() {
                    diverged.push(Divergence {
                        state: name,
                        predicted,
                        observed: o,
                    });
                }
            }
        }
        let mut reasons: Vec<String> = left_safe_set
            .iter()
            .map(|row| {
                format!(
                    "the observed state breaks critical constraint `{}` ({})",
                    row.id,
                    row.status.as_str()
                )
            })
            .collect();
        reasons.extend(diverged.iter().map(|d| {
            format!(
                "state `{}` diverged from the dynamics model beyond its error bound",
                d.state
            )
        }));
        let mut failure_modes = FailureModes::default();
        if !left_safe_set.is_empty() {
            failure_modes.add(FailureMode::LeftSafeSet);
        }
        if !diverged.is_empty() {
            failure_modes.add(FailureMode::ModelMismatch);
        }
        let evaluation = if failure_modes.is_empty() {
            Evaluation::Effective
        } else {
            Evaluation::Failed
        };
        OutcomeEvaluation {
            evaluation,
            left_safe_set,
            diverged,
            failure_modes,
            reasons,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn governor() -> Governor {
        Governor::new(
            crate::load(
                "outcomes.toml",
                include_str!("../../tests/data/outcomes.toml"),
            )
            .unwrap(),
        )
    }

    /// `px` moves by `0.1 * vx` within an error bound of 0.001 (and `px`'s noise, 0.01);
    /// the barrier `wall` keeps `px` at most 8.
    #[test]
    fn an_outcome_is_effective_where_the_model_said_and_failed_elsewhere() {
        let mut g = governor();
        let line = r#"{"agent":"a","action":{"vx":0.5,"mode":"manual"},"state":{"px":5.0,"temp":20,"flag":"none"}}"#;
        let decided = Proposal::parse(g.policy(), line).unwrap();
        let d = g.decide(&decided);
        let expected = 5.0 + 0.1 * d.action[0];
        let observed = |g: &Governor, px: f64| {
            let text = format!(r#"{{"px":{px},"temp":20,"flag":"none"}}"#);
            Proposal::parse_state(g.policy(), &text).unwrap()
        };
        let near = observed(&g, expected);
        let e = g.evaluate_outcome(&decided, &d.action, &near);
        assert_eq!(e.evaluation, Evaluation::Effective, "{e:?}");
        assert!(e.failure_modes.is_empty() && e.reasons.is_empty());

        let far = observed(&g, expected + 0.5);
        let e = g.evaluate_outcome(&decided, &d.action, &far);
        assert_eq!(e.evaluation, Evaluation::Failed);
        assert_eq!(
            e.failure_modes.iter().collect::<Vec<_>>(),
            [FailureMode::ModelMismatch]
        );
        assert_eq!(e.diverged.len(), 1);
        assert_eq!(e.diverged[0].state, "px");
        assert!(e.diverged[0].predicted.contains(expected), "{e:?}");
        assert!(e.reasons[0].contains("`px` diverged"), "{:?}", e.reasons);

        let past_the_wall = observed(&g, 9.5);
        let e = g.evaluate_outcome(&decided, &d.action, &past_the_wall);
        assert_eq!(
            e.failure_modes.iter().collect::<Vec<_>>(),
            [FailureMode::LeftSafeSet, FailureMode::ModelMismatch]
        );
        assert!(
            e.left_safe_set.iter().any(|r| r.id.starts_with("wall")),
            "{e:?}"
        );
        assert!(
            e.reasons[0].contains("critical constraint `wall"),
            "{:?}",
            e.reasons
        );
    }

    /// A state the parser refuses names its field as a proposal's `state` would.
    #[test]
    fn a_state_alone_is_validated_as_a_proposals_state() {
        let g = governor();
        let e = Proposal::parse_state(g.policy(), r#"{"warp":1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("state.warp"));
        let e = Proposal::parse_state(g.policy(), r#"{"flag":"moon"}"#).unwrap_err();
        assert_eq!(e.code, crate::InputCode::UnknownEnumValue);
        assert_eq!(e.field.as_deref(), Some("state.flag"));
        let line =
            r#"{"action":{"vx":0,"mode":"manual"},"state":{"px":{"lo":1,"hi":2},"note":"n"}}"#;
        let whole = Proposal::parse(g.policy(), line).unwrap();
        let alone = Proposal::parse_state(g.policy(), r#"{"px":{"lo":1,"hi":2},"note":"n"}"#);
        assert_eq!(alone.unwrap(), whole.state);
    }
}
