//! Holds: made pending by a HOLD_FOR_CONFIRMATION decision (or again at a restart),
//! answered by an operator (an approval is refused when the action or policy changed, the
//! hold expired, or Tier 1 finds the action unsafe in the agent's latest reported state),
//! or expired by the server. Every end of a hold is a `confirmation` record.

use aioss_core::governor::{action_to_json, AttrValue, Decision, StateValue};
use aioss_core::{InputCode, Policy, Proposal};
use axum::http::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::{parse_json, rows_json, wall_now, Engine, Head, Reply, RequestRecord, Restored};
use crate::error::{ApiError, Detail, ErrorCode};
use crate::metrics::Family;
use crate::who::Who;

/// Approve or reject a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnswerKind {
    /// `POST /v1/confirmations/{id}/approve`.
    Approve,
    /// `POST /v1/confirmations/{id}/reject`.
    Reject,
}

impl AnswerKind {
    /// `approve` or `reject`, as records name it.
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerKind::Approve => "approve",
            AnswerKind::Reject => "reject",
        }
    }
}

/// The fields of an answer's body, all optional (a field that is not a string is
/// ignored).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AnswerFields {
    /// Why, recorded with the answer.
    pub reason: Option<String>,
    /// An approval refused unless it is the held action's digest.
    pub action_digest: Option<String>,
    /// An approval refused unless it is the hash of the hold's policy.
    pub policy_hash: Option<String>,
}

impl AnswerFields {
    /// Read an answer's body: empty, or a JSON object.
    pub fn read(body: &str) -> Result<AnswerFields, ApiError> {
        if body.trim().is_empty() {
            return Ok(AnswerFields::default());
        }
        let Ok(Value::Object(b)) = serde_json::from_str::<Value>(body) else {
            return Err(ApiError::new(
                ErrorCode::Input(InputCode::MalformedJson),
                "the body must be a JSON object (or empty)",
            ));
        };
        let text = |k: &str| b.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(AnswerFields {
            reason: text("reason"),
            action_digest: text("action_digest"),
            policy_hash: text("policy_hash"),
        })
    }
}

/// An operator's answer to a hold, as the governor thread takes it.
#[derive(Debug)]
pub struct Answer {
    /// The hold (its decision id).
    pub id: String,
    /// Approve or reject.
    pub kind: AnswerKind,
    /// The request body (recorded whole).
    pub body: String,
    /// The body's fields, or why it has none (refused first).
    pub fields: Result<AnswerFields, ApiError>,
    /// The operator.
    pub who: Who,
}

/// How a hold ended: the `status` of its `confirmation` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HoldEnd {
    Approved,
    Rejected,
    /// Not answered in time, or past `max_pending_holds`: a denial.
    Expired,
    /// It can never be approved (its policy is no longer in force, or it could not be
    /// restored after a restart): a denial.
    Refused,
}

impl HoldEnd {
    fn as_str(self) -> &'static str {
        match self {
            HoldEnd::Approved => "approved",
            HoldEnd::Rejected => "rejected",
            HoldEnd::Expired => "expired",
            HoldEnd::Refused => "refused",
        }
    }
}

/// The action a hold of `d` holds instead of the proposal: its certified candidate when the
/// proposal fails a critical row (Tier 1 would refuse the proposal at approval, issue 23,
/// item 5; the core makes such a decision a BLOCK when it has no candidate).
fn approvable_instead(d: &Decision) -> Option<&Vec<f64>> {
    let fails_critical = d
        .constraints
        .iter()
        .any(|c| c.criticality == aioss_core::policy::Criticality::Critical);
    d.candidate.as_ref().filter(|_| fails_critical)
}

/// [`approvable_instead`] of a recorded decision's JSON.
fn approvable_instead_json(d: &Value) -> Option<&Value> {
    let fails_critical = d
        .get("constraints")
        .and_then(Value::as_array)
        .is_some_and(|rows| {
            rows.iter()
                .any(|r| r.get("criticality").and_then(Value::as_str) == Some("critical"))
        });
    d.get("candidate")
        .filter(|c| fails_critical && c.is_object())
}

/// A pending hold: the held proposal, its action's digest, its policy and expiry.
#[derive(Clone, Debug)]
pub(super) struct Hold {
    agent: String,
    attributes: Vec<(String, AttrValue)>,
    action: Vec<f64>,
    digest: String,
    policy_hash: String,
    expires: f64,
    state: Vec<Option<StateValue>>,
    prev: Vec<Option<f64>>,
}

impl Hold {
    /// A hold of proposal `p` under policy `policy`, expiring at `expires`.
    fn of(p: Proposal, policy: &Policy, expires: f64) -> Hold {
        Hold {
            digest: action_digest(policy, &p.action),
            policy_hash: policy.hash.clone(),
            expires,
            agent: p.agent,
            attributes: p.attributes,
            action: p.action,
            state: p.state,
            prev: p.prev,
        }
    }

    /// The held proposal (its agent, attributes and action) with `state` and `prev`.
    fn proposal(&self, state: Vec<Option<StateValue>>, prev: Vec<Option<f64>>) -> Proposal {
        Proposal {
            id: None,
            agent: self.agent.clone(),
            timestamp: None,
            action: self.action.clone(),
            state,
            prev,
            attributes: self.attributes.clone(),
            transition: None,
        }
    }

    /// The hold as `GET /v1/confirmations` lists it. `action` is `action_json`, the exact
    /// text `action_digest` hashes, written as it is (in the policy's order of the action
    /// variables), and `action_json` also carries it as a string, so a client whose JSON
    /// reader reorders keys can still re-hash it.
    fn view(&self, id: &str, p: &Policy, candidate: Value, reasons: Value) -> String {
        let action_json = action_to_json(p, &self.action);
        let rest = json!({
            "id": id,
            "decision_id": id,
            "agent": self.agent,
            "action_json": action_json,
            "action_digest": self.digest,
            "candidate": candidate,
            "reasons": reasons,
            "policy_hash": self.policy_hash,
            "expires": aioss_audit::record::rfc3339(self.expires),
            "expires_unix": self.expires,
        })
        .to_string();
        let rest = rest.strip_prefix('{').unwrap_or(&rest);
        // INVARIANT (listed-action-rehashes): the bytes after `"action":` are the bytes hashed.
        format!("{{\"action\":{action_json},{rest}")
    }
}

/// The digest an approval may name: `sha256:` and the hex SHA-256 of the action's JSON.
pub fn action_digest(p: &Policy, action: &[f64]) -> String {
    format!(
        "sha256:{}",
        aioss_audit::record::hex(&Sha256::digest(action_to_json(p, action).as_bytes()))
    )
}

fn hold_expired(id: &str) -> ApiError {
    ApiError::new(
        ErrorCode::HoldExpired,
        format!("the hold `{id}` expired before this answer: it is a denial"),
    )
    .about(id)
}

/// The answer the server itself gives a hold (`by` the server).
fn server_answer(id: &str, end: HoldEnd, reason: &str) -> String {
    json!({"decision_id": id, "status": end.as_str(), "by": Who::server().json(), "reason": reason})
        .to_string()
}

impl Engine {
    /// Make decision `d` of `p` a pending hold; its listing, or `None` when it was denied
    /// at once (past `max_pending_holds`: the denial goes to `denied`).
    pub(super) fn hold(
        &mut self,
        p: &Proposal,
        d: &Decision,
        now: f64,
        denied: &mut Vec<Item>,
    ) -> Option<String> {
        let max = self.settings.max_pending_holds;
        if self.holds.len() >= max {
            // INVARIANT (bounded-holds): a hold past the bound is denied at once.
            let why = format!("too many pending holds (at most {max}): denied at once");
            let answer = server_answer(&d.decision_id, HoldEnd::Expired, &why);
            self.answered(denied, &d.decision_id, "{}", HoldEnd::Expired, answer, None);
            return None;
        }
        let policy = self.g.policy();
        let mut held = p.clone();
        if let Some(c) = approvable_instead(d) {
            held.action = c.clone();
        }
        let hold = Hold::of(held, policy, now + self.settings.hold_expiry_secs);
        let candidate = d
            .candidate
            .as_ref()
            .map_or(Value::Null, |c| parse_json(&action_to_json(policy, c)));
        let view = hold.view(&d.decision_id, policy, candidate, json!(d.reasons));
        self.next_expiry = self.next_expiry.min(hold.expires);
        self.holds.insert(d.decision_id.clone(), hold);
        Some(view)
    }

    /// Make a hold pending again after a restart; its listed JSON, or why it cannot be.
    ///
    /// It expires `hold_expiry_secs` after its decision time, or after now if that time
    /// is later than now (a decision time comes from the proposal's `timestamp`, which
    /// may lie far ahead); one already past it is denied and recorded at the next expiry
    /// scan. Never panics: whatever the store holds, the answer is a hold or a reason.
    pub(super) fn restore(&mut self, r: &Restored) -> Result<String, String> {
        let d: Value = serde_json::from_str(&r.decision)
            .map_err(|e| format!("its decision is not JSON ({e})"))?;
        let time = d
            .get("time")
            .and_then(Value::as_f64)
            .filter(|t| t.is_finite())
            .ok_or("its decision has no finite `time`")?;
        let mut p = Proposal::parse(self.g.policy(), &r.proposal)
            .map_err(|e| format!("its proposal does not parse under the policy in force ({e})"))?;
        if let Some(c) = approvable_instead_json(&d) {
            // The hold is of the offered repair (as when it was made): the proposal with
            // the candidate's action.
            let mut prop: Value = serde_json::from_str(&r.proposal)
                .map_err(|e| format!("its proposal is not JSON ({e})"))?;
            if let Some(o) = prop.as_object_mut() {
                o.insert("action".to_string(), c.clone());
            }
            p.action = Proposal::parse(self.g.policy(), &prop.to_string())
                .map_err(|e| {
                    format!("its offered repair does not parse under the policy in force ({e})")
                })?
                .action;
        }
        let expires = time.min(wall_now()) + self.settings.hold_expiry_secs;
        let hold = Hold::of(p, self.g.policy(), expires);
        let view = hold.view(
            &r.id,
            self.g.policy(),
            d.get("candidate").cloned().unwrap_or(Value::Null),
            d.get("reasons").cloned().unwrap_or(Value::Null),
        );
        self.next_expiry = self.next_expiry.min(expires);
        self.holds.insert(r.id.clone(), hold);
        Ok(view)
    }

    /// Deny, and record, a hold found unanswered in the store that cannot be made pending
    /// again.
    pub(super) fn deny_unrestorable(&mut self, id: &str, why: &str, items: &mut Vec<Item>) {
        tracing::warn!(decision_id = %id, reason = %why, "a held decision cannot be restored: denied");
        let why = format!("the hold could not be restored after a restart: {why}; it is denied");
        let answer = server_answer(id, HoldEnd::Refused, &why);
        self.answered(items, id, "{}", HoldEnd::Refused, answer, None);
    }

    /// Deny, and record, every hold past its expiry.
    pub(super) fn expire(&mut self, items: &mut Vec<Item>) {
        let now = wall_now();
        // Scan only when the earliest expiry is due (holds are few; decisions are many).
        if now < self.next_expiry {
            return;
        }
        let due: Vec<String> = self
            .holds
            .iter()
            .filter(|(_, h)| h.expires <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for id in due {
            self.expire_one(&id, items);
        }
        self.next_expiry = self
            .holds
            .values()
            .map(|h| h.expires)
            .fold(f64::INFINITY, f64::min);
    }

    fn expire_one(&mut self, id: &str, items: &mut Vec<Item>) {
        if self.holds.remove(id).is_none() {
            return;
        }
        let why = "no answer before the hold expired: an expired hold is a denial";
        let answer = server_answer(id, HoldEnd::Expired, why);
        tracing::info!(decision_id = %id, "hold expired: denied");
        self.answered(items, id, "{}", HoldEnd::Expired, answer, None);
    }

    /// Record the answer to a hold (its end), counted by status, and remember how it
    /// ended (an answer to an expired hold is then 409 `hold_expired`).
    fn answered(
        &mut self,
        items: &mut Vec<Item>,
        id: &str,
        request: &str,
        end: HoldEnd,
        answer: String,
        reply: Option<oneshot::Sender<Reply>>,
    ) {
        self.shared
            .metrics
            .count(Family::Confirmation, end.as_str());
        self.ended.put(id, end == HoldEnd::Expired);
        items.push(Item {
            record: self.record(aioss_audit::Kind::Confirmation, id, request, &answer),
            reply,
            status: StatusCode::OK,
            body: answer,
            effect: Effect::Answer { id: id.to_string() },
        });
    }

    /// An operator's answer: refused (and the refusal recorded) in the order the checks
    /// run, else the hold ends as approved (its action executed) or rejected.
    pub(super) fn answer(
        &mut self,
        a: Answer,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let Answer {
            id,
            kind,
            body,
            fields,
            who,
        } = a;
        let request = json!({"answer": kind.as_str(), "by": who.json(), "body": body}).to_string();
        let req = RequestRecord {
            head: Head::Answer(kind),
            who: &who,
            body: &body,
        };
        let checked = fields
            .map_err(|e| e.about(&id))
            .and_then(|f| Ok((self.pending_hold(&id, items)?, f)));
        let (h, fields) = match checked {
            Ok(x) => x,
            Err(e) => return self.refuse(items, Some(reply), &req, e),
        };
        let end = match kind {
            AnswerKind::Reject => HoldEnd::Rejected,
            AnswerKind::Approve => match self.approve(&id, &h, &fields, &who, &request, items) {
                Ok(()) => HoldEnd::Approved,
                Err(e) => return self.refuse(items, Some(reply), &req, e),
            },
        };
        self.holds.remove(&id);
        let mut answer = Map::new();
        answer.insert("decision_id".into(), Value::from(id.as_str()));
        answer.insert("status".into(), Value::from(end.as_str()));
        answer.insert("by".into(), who.json());
        if let Some(r) = fields.reason {
            answer.insert("reason".into(), Value::from(r));
        }
        if end == HoldEnd::Approved {
            let action = parse_json(&action_to_json(self.policy(), &h.action));
            answer.insert("action".into(), action);
            answer.insert("action_digest".into(), Value::from(h.digest));
            answer.insert("policy_hash".into(), Value::from(h.policy_hash));
        }
        let answer = Value::Object(answer).to_string();
        tracing::info!(decision_id = %id, by = %who.id, status = end.as_str(), "hold answered");
        self.answered(items, &id, &request, end, answer, Some(reply));
    }

    /// The pending hold `id`; an expired one is denied (and recorded) first.
    fn pending_hold(&mut self, id: &str, items: &mut Vec<Item>) -> Result<Hold, ApiError> {
        if self.holds.get(id).is_some_and(|h| h.expires <= wall_now()) {
            self.expire_one(id, items);
            return Err(hold_expired(id));
        }
        match self.holds.get(id) {
            Some(h) => Ok(h.clone()),
            None if self.ended.get(id) == Some(&true) => Err(hold_expired(id)),
            None => Err(ApiError::new(
                ErrorCode::NoPendingHold,
                format!("no pending hold `{id}` (answered, expired, or never held)"),
            )
            .about(id)),
        }
    }

    /// The checks of an approval, in order; once they pass, the held action is executed:
    /// it counts against the budgets and is the agent's last action, charged with the
    /// proposal as it was held (what `aioss audit replay` re-applies from the log). A hold
    /// made under another policy than the one in force ends here as `refused`.
    fn approve(
        &mut self,
        id: &str,
        h: &Hold,
        fields: &AnswerFields,
        who: &Who,
        request: &str,
        items: &mut Vec<Item>,
    ) -> Result<(), ApiError> {
        let current = self.policy().hash.clone();
        if let Some(given) = fields.policy_hash.as_ref().filter(|g| **g != h.policy_hash) {
            let msg = format!(
                "the approval names policy `{given}`, the hold was made under `{}`",
                h.policy_hash
            );
            return Err(ApiError::new(ErrorCode::StalePolicy, msg)
                .field("policy_hash")
                .about(id));
        }
        if h.policy_hash != current {
            // It can never be approved now: the hold ends as a denial.
            self.holds.remove(id);
            let answer = json!({
                "decision_id": id, "status": HoldEnd::Refused.as_str(), "by": who.json(),
                "reason": format!("the policy changed since the hold (`{}` → `{current}`): approve a new proposal instead", h.policy_hash),
            }).to_string();
            self.answered(items, id, request, HoldEnd::Refused, answer, None);
            let msg = format!(
                "the hold was made under policy `{}`, the policy in force is `{current}`",
                h.policy_hash
            );
            return Err(ApiError::new(ErrorCode::StalePolicy, msg).about(id));
        }
        if let Some(given) = fields.action_digest.as_ref().filter(|g| **g != h.digest) {
            let msg = format!("`{given}` is not the held action's digest `{}`", h.digest);
            return Err(ApiError::new(ErrorCode::ActionChanged, msg)
                .field("action_digest")
                .about(id));
        }
        self.safe_now(h).map_err(|e| e.about(id))?;
        let held = h.proposal(h.state.clone(), h.prev.clone());
        for mode in self.g.record_execution(&held).iter() {
            self.shared.metrics.count(Family::FailureMode, mode.name());
        }
        Ok(())
    }

    /// Re-check the held action, by Tier 1, against the latest state its agent reported
    /// (a proposal or an observed outcome since the hold; kept across reloads and
    /// restarts), with `prev.` what the governor executed last for the agent, as for its
    /// proposals.
    fn safe_now(&mut self, h: &Hold) -> Result<(), ApiError> {
        let state = match self.latest.get(&h.agent) {
            None => h.state.clone(),
            Some(report) => report.state(self.g.policy()).map_err(|e| {
                ApiError::new(
                    ErrorCode::UnsafeNow,
                    format!("the latest state `{}` reported cannot be read under the policy in force ({e}): the held action cannot be re-checked; have the agent report its state again", h.agent),
                )
                .detail(Detail::Constraints(json!([])))
            })?,
        };
        let prop = h.proposal(state, vec![None; h.action.len()]);
        let unsafe_rows = self.g.critical_unsat(&prop);
        if unsafe_rows.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = unsafe_rows
            .iter()
            .map(|r| format!("`{}` {}", r.id, r.status.as_str()))
            .collect();
        Err(ApiError::new(
            ErrorCode::UnsafeNow,
            format!(
                "the held action is not safe in the latest state `{}` reported: {}",
                h.agent,
                names.join(", ")
            ),
        )
        .detail(Detail::Constraints(rows_json(&unsafe_rows))))
    }
}
