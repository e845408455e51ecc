//! Refusals: what their records keep of a request, and how the governor thread records
//! them (while the principal is within `refusal_record_rate`; past it they are answered
//! and counted, never recorded).

use aioss_audit::Kind;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::{AnswerKind, Engine, Reply};
use crate::error::ApiError;
use crate::metrics::Family;
use crate::who::Who;

/// What a refusal's record says the request was, besides who sent it and its body.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Head<'a> {
    /// An HTTP request refused before the governor: its method and path.
    Http {
        /// The request's method.
        method: &'a str,
        /// The request's path.
        path: &'a str,
    },
    /// An answer to a hold.
    Answer(AnswerKind),
    /// An outcome report on a decision.
    Outcome(&'a str),
}

/// A request as a refusal records it: who asked, what, and the body, of which only a
/// bounded prefix (with its length and SHA-256) is kept.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RequestRecord<'a> {
    /// What was asked.
    pub head: Head<'a>,
    /// Who asked.
    pub who: &'a Who,
    /// The body.
    pub body: &'a str,
}

impl RequestRecord<'_> {
    /// The request JSON of a refusal's record, its body cut to `limit` bytes.
    pub fn text(&self, limit: usize) -> String {
        let mut m = Map::new();
        match self.head {
            Head::Http { method, path } => {
                m.insert("method".into(), Value::from(method));
                m.insert("path".into(), Value::from(path));
            }
            Head::Answer(a) => {
                m.insert("answer".into(), Value::from(a.as_str()));
            }
            Head::Outcome(id) => {
                m.insert("outcome".into(), Value::from(id));
            }
        }
        m.insert("by".into(), self.who.json());
        m.extend(crate::limit::bounded_body(self.body, limit));
        Value::Object(m).to_string()
    }
}

impl Engine {
    /// Answer refusal `e` of `req`; record it (its `about` as the decision id) while the
    /// principal is within its refusal-recording rate, else only count it.
    pub(super) fn refuse(
        &self,
        items: &mut Vec<Item>,
        reply: Option<oneshot::Sender<Reply>>,
        req: &RequestRecord<'_>,
        e: ApiError,
    ) {
        let code = e.code.as_str();
        self.shared.metrics.count(Family::Refused, code);
        let body = e.body();
        if !self.shared.may_record_refusal(&req.who.id, &self.settings) {
            // INVARIANT (bounded-refusals): past its rate a principal's refusals are
            // answered and counted, never recorded.
            self.shared.metrics.count(Family::Unrecorded, code);
            if let Some(tx) = reply {
                let _ = tx.send(Reply {
                    status: e.status(),
                    body,
                });
            }
            return;
        }
        let request = req.text(self.settings.refusal_body_bytes);
        items.push(Item {
            record: self.record(Kind::Refused, &e.about, &request, &body),
            reply,
            status: e.status(),
            body,
            effect: Effect::None,
        });
    }

    /// Record a refusal an HTTP worker made (its rate already taken), then answer it.
    pub(super) fn record_refusal(
        &self,
        request: &str,
        e: ApiError,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        self.shared.metrics.count(Family::Refused, e.code.as_str());
        let body = e.body();
        items.push(Item {
            record: self.record(Kind::Refused, &e.about, request, &body),
            reply: Some(reply),
            status: e.status(),
            body,
            effect: Effect::None,
        });
    }
}
