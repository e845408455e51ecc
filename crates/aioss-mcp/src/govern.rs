//! The governor and the audit store behind the gateway: every call is decided by the real
//! governor (at the gateway's clock, [`Clock::Trusted`], with `prev.` from the governor,
//! [`PrevSource::Governor`]: the agent is untrusted) and leaves records in the same
//! hash-chained store `aioss decide --audit` and `aioss serve` write, each durable before
//! the gateway answers.
//!
//! Records of one call: the `decision` (or `input_error`, or `refused` for a call that is
//! not a proposal at all), for a hold its `confirmation` (approved, rejected, expired or
//! refused; an approval executes the held proposal, [`Governor::record_execution`], as
//! `aioss serve` does, so `aioss audit replay` re-applies it), and, for a call forwarded
//! upstream, an `outcome` with the digest of the upstream result.

use aioss_audit::{record, Key, Kind, RecordRef, Writer};
use aioss_core::governor::{Clock, PrevSource};
use aioss_core::{Decision, Governor, Policy, Proposal};
use serde_json::{json, Value};

use crate::Error;

/// What deciding a proposal line gave.
#[derive(Debug)]
pub enum Decided {
    /// A decision.
    Decision {
        /// The decision.
        decision: Box<Decision>,
        /// Its JSON as recorded.
        json: String,
        /// The proposal as the governor read it (an approval executes it).
        proposal: Box<Proposal>,
        /// Its record.
        record: RecordRef,
    },
    /// The line was refused as bad input.
    Refused {
        /// The error JSON.
        error: String,
        /// Its record.
        record: RecordRef,
    },
}

/// Who answered a hold, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    /// `approved`, `rejected`, `expired` or `refused`.
    pub status: Status,
    /// Who: `{"id", "role"}` and where the answer came from.
    pub by: Value,
    /// Why, if said.
    pub reason: Option<String>,
}

/// The end of a hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// A human approved it.
    Approved,
    /// A human rejected it.
    Rejected,
    /// Nobody answered in time: a denial.
    Expired,
    /// The approval was refused (the action is not safe in the state now), or no human
    /// could be asked.
    Refused,
}

impl Status {
    /// The status as recorded (the same words `aioss serve` records).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Approved => "approved",
            Status::Rejected => "rejected",
            Status::Expired => "expired",
            Status::Refused => "refused",
        }
    }
}

/// The governor and the writer of its store.
#[derive(Debug)]
pub struct Governance {
    g: Governor,
    w: Writer,
}

fn now() -> f64 {
    record::now_secs()
}

impl Governance {
    /// A governor for `policy` continuing the store `audit` (created if missing): its state
    /// (budgets, `prev.`, sequence numbers) is rebuilt from the store's records. Returns
    /// notes for the operator.
    pub fn open(
        policy: Policy,
        audit: &str,
        key: Option<Key>,
        checkpoint_every: u64,
    ) -> Result<(Governance, Vec<String>), Error> {
        let mut g = Governor::new(policy);
        let (w, notes) = aioss_audit::open_audited(&mut g, audit, key, checkpoint_every, false)?;
        g.set_prev_source(PrevSource::Governor);
        Ok((Governance { g, w }, notes))
    }

    /// The policy.
    pub fn policy(&self) -> &Policy {
        self.g.policy()
    }

    fn commit(&mut self) -> Result<(), Error> {
        self.w.commit().map_err(Error::from)
    }

    /// Decide a proposal line at the gateway's clock and record it.
    pub fn decide(&mut self, line: &str) -> Result<Decided, Error> {
        let at = now();
        let parsed = Proposal::parse(self.g.policy(), line);
        let decided =
            parsed.and_then(|p| self.g.decide_with(&p, Clock::Trusted(at)).map(|d| (d, p)));
        match decided {
            Ok((d, p)) => {
                let json = d.to_json(self.g.policy());
                let r = aioss_audit::decision_record(
                    self.g.policy(),
                    line,
                    &d,
                    &json,
                    self.g.state_digest(),
                );
                let record = self.w.push(r);
                self.commit()?;
                Ok(Decided::Decision {
                    decision: Box::new(d),
                    json,
                    proposal: Box::new(p),
                    record,
                })
            }
            Err(e) => {
                let r =
                    aioss_audit::error_record(self.g.policy(), line, &e, at, self.g.state_digest());
                let record = self.w.push(r);
                self.commit()?;
                Ok(Decided::Refused {
                    error: e.to_json(),
                    record,
                })
            }
        }
    }

    fn event(
        &mut self,
        kind: Kind,
        decision_id: &str,
        request: &Value,
        answer: &Value,
    ) -> Result<RecordRef, Error> {
        let r = aioss_audit::event_record(
            kind,
            self.g.policy(),
            decision_id,
            &request.to_string(),
            &answer.to_string(),
            now(),
            self.g.state_digest(),
        );
        let rr = self.w.push(r);
        self.commit()?;
        Ok(rr)
    }

    /// Record a call that never became a proposal (an unknown tool, a missing argument,
    /// an unreadable state file): `request` is what was asked, `error` the error JSON.
    pub fn refuse(&mut self, request: &Value, error: &Value) -> Result<RecordRef, Error> {
        self.event(Kind::Refused, "", request, error)
    }

    /// Record the answer to the hold of decision `decision_id` on `proposal`. An approval
    /// is re-checked first: if Tier 1 finds an active critical row not satisfied for the
    /// held action in its state, the approval is refused (`unsafe_now`). An approval that
    /// stands executes the held proposal (budgets, `prev.`) before its record is written.
    /// Returns the status that was recorded and the record.
    pub fn answer(
        &mut self,
        decision_id: &str,
        proposal: &Proposal,
        via: &str,
        mut a: Answer,
    ) -> Result<(Answer, RecordRef), Error> {
        let mut unsafe_rows = Vec::new();
        if a.status == Status::Approved {
            unsafe_rows = self
                .g
                .critical_unsat(proposal)
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>();
            if unsafe_rows.is_empty() {
                let _ = self.g.record_execution(proposal);
            } else {
                a.status = Status::Refused;
                a.reason = Some(format!(
                    "unsafe_now: not satisfied in the state now: {}",
                    unsafe_rows.join(", ")
                ));
            }
        }
        let answer_word = match a.status {
            Status::Approved => "approve",
            Status::Rejected => "reject",
            Status::Expired => "expire",
            Status::Refused => "approve",
        };
        let request = json!({ "answer": answer_word, "by": a.by, "via": via });
        let mut out = json!({
            "decision_id": decision_id,
            "status": a.status.as_str(),
            "by": a.by,
        });
        if let (Some(r), Some(o)) = (&a.reason, out.as_object_mut()) {
            o.insert("reason".into(), Value::from(r.as_str()));
        }
        if let (Status::Approved, Some(o)) = (a.status, out.as_object_mut()) {
            let action = aioss_core::governor::action_to_json(self.g.policy(), &proposal.action);
            o.insert(
                "action".into(),
                serde_json::from_str(&action).unwrap_or(Value::Null),
            );
        }
        if !unsafe_rows.is_empty() {
            if let Some(o) = out.as_object_mut() {
                o.insert("constraints".into(), Value::from(unsafe_rows));
            }
        }
        let rr = self.event(Kind::Confirmation, decision_id, &request, &out)?;
        Ok((a, rr))
    }

    /// Record what happened upstream for decision `decision_id`.
    pub fn outcome(
        &mut self,
        decision_id: &str,
        request: &Value,
        answer: &Value,
    ) -> Result<RecordRef, Error> {
        self.event(Kind::Outcome, decision_id, request, answer)
    }

    /// Sign the head (with a key) and commit: at shutdown.
    pub fn finish(&mut self) -> Result<(), Error> {
        self.w.finish().map_err(Error::from)
    }
}
