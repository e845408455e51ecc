//! Deciding a proposal on the governor thread: the same steps as
//! `Governor::decide_line_with`, so `aioss audit replay` re-decides the record
//! identically (at its recorded time), plus what the server keeps of it (a hold, the
//! agent's latest report, the decision for its outcome) and its metrics.

use std::sync::atomic::Ordering::Relaxed;

use aioss_audit::Kind;
use aioss_core::governor::{Clock, Decision, InputError, RepairStatus};
use aioss_core::{Outcome, Proposal};
use axum::http::StatusCode;
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::outcomes::Recent;
use super::{wall_now, Engine, Head, Parsed, Reply, Report, RequestRecord};
use crate::metrics::{Family, Stage};
use crate::who::Who;

impl Engine {
    /// Decide the proposal line `raw` (parsed by the worker, if `parsed`) from `who`.
    pub(super) fn decide(
        &mut self,
        raw: String,
        parsed: Option<Parsed<Proposal>>,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let now = wall_now();
        // INVARIANT (parsed-under-policy): a line parsed elsewhere is used only under the
        // policy (same hash) it was parsed against.
        let (parsed, counted) = match parsed {
            Some(p) if p.policy_hash == self.g.policy().hash => {
                let counted = p.result.is_err();
                (p.result, counted)
            }
            _ => (Proposal::parse(self.g.policy(), &raw), false),
        };
        // INVARIANT (governor-time-and-prev): the time that drives budgets, windows and
        // expiries is this server's clock (a `timestamp` counts only within the policy's
        // `max_clock_skew_secs` of it), and `prev.` is what this governor executed: a body
        // claiming another `prev` is refused (`prev_mismatch`), changing no state.
        // Under overload (a deep queue) the governor decides in its critical-rows-only mode,
        // named in the decision (replay re-decides it so).
        let depth = self.shared.metrics.queue_depth.load(Relaxed);
        let threshold = self.settings.critical_only_depth as u64;
        self.g
            .set_critical_only(threshold > 0 && depth >= threshold);
        let decided =
            parsed.and_then(|p| self.g.decide_with(&p, Clock::Trusted(now)).map(|d| (p, d)));
        self.g.set_critical_only(false);
        let (p, d) = match decided {
            Ok(x) => x,
            Err(e) => return self.refuse_input(&raw, &e, counted, now, who, reply, items),
        };
        self.count_decision(&d);
        let json = d.to_json(self.g.policy());
        tracing::debug!(decision_id = %d.decision_id, agent = %d.agent, outcome = d.final_outcome.as_str(), latency_us = d.latency_us, "decided");
        let record =
            aioss_audit::decision_record(self.g.policy(), &raw, &d, &json, self.g.state_digest());
        self.latest.put(&p.agent, Report::Proposal(raw));
        let held = d.final_outcome == Outcome::HoldForConfirmation;
        let mut denied = Vec::new();
        let hold = if held {
            self.hold(&p, &d, now, &mut denied)
        } else {
            None
        };
        self.to_tier3(|policy| crate::tier3::Sample::Decision {
            policy,
            proposal: p.clone(),
            executed: d.action.clone(),
            time: d.time,
        });
        let recent = Recent {
            executed: d.action.clone(),
            policy_hash: self.g.policy().hash.clone(),
            proposal: p,
            outcome_reported: false,
        };
        self.recent.put(&d.decision_id, recent);
        items.push(Item {
            record,
            reply: Some(reply),
            status: StatusCode::OK,
            body: json,
            effect: Effect::Decision {
                id: d.decision_id,
                agent: d.agent,
                held,
                hold,
            },
        });
        items.extend(denied);
    }

    /// Answer a bad proposal (400, the governor's error), recorded while `who` is within
    /// its refusal-recording rate (`counted`: the worker already took its token).
    #[expect(
        clippy::too_many_arguments,
        reason = "the line, its error, whether its rate was taken, the time, who, the reply and the records"
    )]
    fn refuse_input(
        &self,
        raw: &str,
        e: &InputError,
        counted: bool,
        now: f64,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        self.shared
            .metrics
            .count(Family::InputError, e.code.as_str());
        let body = e.to_json();
        if !counted && !self.shared.may_record_refusal(&who.id, &self.settings) {
            // Past the principal's refusal-recording rate: answered and counted, not
            // recorded (a refusal changes no governor state).
            self.shared
                .metrics
                .count(Family::Unrecorded, e.code.as_str());
            let _ = reply.send(Reply {
                status: StatusCode::BAD_REQUEST,
                body,
            });
            return;
        }
        let limit = self.settings.refusal_body_bytes;
        let record = if raw.len() <= limit {
            aioss_audit::error_record(self.g.policy(), raw, e, now, self.g.state_digest())
        } else {
            // INVARIANT (bounded-refusals): a bad proposal is kept whole only up to
            // `refusal_body_bytes`; a longer one is a `refused` record with a prefix, its
            // length and its SHA-256 (bad input changes no state, so replay loses nothing
            // by not re-reading it).
            let req = RequestRecord {
                head: Head::Http {
                    method: "POST",
                    path: "/v1/decisions",
                },
                who,
                body: raw,
            };
            self.record(Kind::Refused, "", &req.text(limit), &body)
        };
        items.push(Item {
            record,
            reply: Some(reply),
            status: StatusCode::BAD_REQUEST,
            body,
            effect: Effect::None,
        });
    }

    /// The metrics of a decision.
    fn count_decision(&self, d: &Decision) {
        let m = &self.shared.metrics;
        #[expect(clippy::cast_precision_loss, reason = "microseconds as seconds")]
        m.stage(Stage::Decide, d.latency_us as f64 / 1e6);
        m.decision(d.final_outcome);
        if d.repair_status == RepairStatus::Repaired {
            m.repairs.fetch_add(1, Relaxed);
        }
        m.relaxations.fetch_add(d.relaxed.len() as u64, Relaxed);
        for f in d.failure_modes.iter() {
            m.count(Family::FailureMode, f.name());
        }
        // G5 is measured, so it is not among the decision's failure modes (see
        // `aioss_core::governor`); the metrics count it with them, as the report does.
        if !d.deadline_met(self.g.policy()) {
            m.count(Family::FailureMode, "deadline_missed");
        }
    }
}
