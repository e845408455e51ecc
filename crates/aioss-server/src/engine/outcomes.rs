//! Outcome reports: the state an agent observed after a decision's action was executed,
//! re-evaluated by the governor (`Governor::evaluate_outcome`: EFFECTIVE, or FAILED with
//! `left_safe_set`, `model_mismatch`) and recorded, one per decision. The observed state
//! is also the agent's latest report, which re-checks its holds.

use aioss_audit::Kind;
use aioss_core::governor::{OutcomeEvaluation, StateValue};
use aioss_core::{InputCode, Policy, Proposal};
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::{Engine, Head, Parsed, Reply, Report, RequestRecord};
use crate::error::{ApiError, ErrorCode};
use crate::metrics::Family;
use crate::who::{Role, Who};

/// A recent decision, kept for its outcome.
#[derive(Clone, Debug)]
pub(super) struct Recent {
    /// The proposal as decided.
    pub proposal: Proposal,
    /// The action the decision executed.
    pub executed: Vec<f64>,
    /// The policy it was decided under.
    pub policy_hash: String,
    /// Whether its outcome was reported (one per decision).
    pub outcome_reported: bool,
}

/// The observed state of an outcome report, as an HTTP worker read it.
#[derive(Clone, Debug)]
pub struct ObservedState {
    /// The `state` object's JSON text (kept as the agent's latest report).
    pub text: String,
    /// The state, parsed under the policy in force when the worker read it.
    pub parsed: Parsed<Vec<Option<StateValue>>>,
}

impl ObservedState {
    /// Read an outcome report's body, `{"state": {...}}`, its state validated under
    /// `policy` exactly as a proposal's state is.
    pub fn read(policy: &Policy, body: &str) -> Result<ObservedState, ApiError> {
        let input = |code, message: &str| ApiError::new(ErrorCode::Input(code), message);
        let text = match serde_json::from_str::<Value>(body) {
            Ok(Value::Object(o)) => match o.get("state") {
                Some(s @ Value::Object(_)) => s.to_string(),
                Some(_) => {
                    return Err(
                        input(InputCode::WrongType, "`state` must be an object").field("state")
                    )
                }
                None => {
                    return Err(input(
                        InputCode::MissingField,
                        "the observed next state `state` is missing",
                    )
                    .field("state"))
                }
            },
            _ => {
                return Err(input(
                    InputCode::MalformedJson,
                    "the body must be a JSON object like `{\"state\": {...}}`",
                ))
            }
        };
        let parsed = Parsed {
            policy_hash: policy.hash.clone(),
            result: Proposal::parse_state(policy, &text),
        };
        Ok(ObservedState { text, parsed })
    }

    /// The state under `p`: the worker's parse if it was made under `p`, else parsed
    /// again.
    fn under(&self, p: &Policy) -> Result<Vec<Option<StateValue>>, ApiError> {
        let parsed = if self.parsed.policy_hash == p.hash {
            self.parsed.result.clone()
        } else {
            Proposal::parse_state(p, &self.text)
        };
        parsed.map_err(ApiError::from)
    }
}

/// An outcome report, as the governor thread takes it.
#[derive(Debug)]
pub struct OutcomeReport {
    /// The decision.
    pub decision_id: String,
    /// The request body (recorded whole).
    pub body: String,
    /// Its observed state, or why the body is not one (refused only once the decision
    /// is known to accept an outcome from `who`).
    pub state: Result<ObservedState, ApiError>,
    /// Who reported it (agents may report only on their own decisions).
    pub who: Who,
}

impl Engine {
    /// Re-evaluate and record an outcome report, or refuse it.
    pub(super) fn outcome(
        &mut self,
        o: OutcomeReport,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let OutcomeReport {
            decision_id: id,
            body,
            state,
            who,
        } = o;
        let req = RequestRecord {
            head: Head::Outcome(&id),
            who: &who,
            body: &body,
        };
        let checked = self.accepts_outcome(&id, &who).and_then(|r| {
            let observed = state?;
            let values = observed.under(self.g.policy())?;
            Ok((r, observed.text, values))
        });
        let (r, text, observed) = match checked {
            Ok(x) => x,
            Err(e) => return self.refuse(items, Some(reply), &req, e.about(&id)),
        };
        let ev = self.g.observe_outcome(&r.proposal, &r.executed, &observed);
        self.to_tier3(|policy| crate::tier3::Sample::Outcome {
            policy,
            proposal: r.proposal.clone(),
            executed: r.executed.clone(),
            observed: observed.clone(),
        });
        for f in ev.failure_modes.iter() {
            self.shared.metrics.count(Family::FailureMode, f.name());
        }
        let evaluation = ev.evaluation.as_str();
        self.shared.metrics.count(Family::Outcome, evaluation);
        let answer = self.outcome_answer(&id, &r.proposal.agent, &ev, &who);
        tracing::info!(decision_id = %id, evaluation, "outcome");
        if let Some(rr) = self.recent.get_mut(&id) {
            rr.outcome_reported = true;
        }
        self.latest.put(&r.proposal.agent, Report::Observed(text));
        let request = json!({"by": who.json(), "body": body}).to_string();
        items.push(Item {
            record: self.record(Kind::Outcome, &id, &request, &answer),
            reply: Some(reply),
            status: StatusCode::OK,
            body: answer,
            effect: Effect::Outcome { id },
        });
    }

    /// The decision `id`, if it accepts an outcome report from `who`: among the recent
    /// ones, `who`'s own (for an agent), not reported yet, under the policy in force.
    fn accepts_outcome(&self, id: &str, who: &Who) -> Result<Recent, ApiError> {
        let Some(r) = self.recent.get(id) else {
            return Err(ApiError::new(
                ErrorCode::UnknownDecision,
                format!(
                    "no decision `{id}` among the last {} this server keeps",
                    self.settings.decision_cache
                ),
            ));
        };
        if who.role == Role::Agent && who.id != r.proposal.agent {
            return Err(ApiError::new(
                ErrorCode::NotYourDecision,
                format!("decision `{id}` belongs to agent `{}`", r.proposal.agent),
            ));
        }
        if r.outcome_reported {
            return Err(ApiError::new(
                ErrorCode::OutcomeAlreadyReported,
                format!("the outcome of `{id}` was already reported"),
            ));
        }
        let current = &self.policy().hash;
        if r.policy_hash != *current {
            return Err(ApiError::new(
                ErrorCode::StalePolicy,
                format!(
                    "decision `{id}` was made under policy `{}`; the policy in force is `{current}`",
                    r.policy_hash
                ),
            ));
        }
        Ok(r.clone())
    }

    /// The answer (and record) of an evaluated outcome: the core's
    /// ([`aioss_core::governor::outcome_json`], as `aioss decide` writes it) and who
    /// reported it.
    fn outcome_answer(&self, id: &str, agent: &str, ev: &OutcomeEvaluation, who: &Who) -> String {
        let mut answer = aioss_core::governor::outcome_json(self.policy(), id, agent, ev);
        if let Some(o) = answer.as_object_mut() {
            o.insert("by".into(), who.json());
        }
        answer.to_string()
    }
}
