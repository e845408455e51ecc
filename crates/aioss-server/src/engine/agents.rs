//! `POST /v1/agents/{id}/reset`: an operator returns an agent to the normal mode of
//! operation (docs/monitors.md), recorded as an `agent_reset` record that replay applies
//! at the same place.

use aioss_audit::Kind;
use axum::http::StatusCode;
use serde_json::json;
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::{Engine, Reply};
use crate::who::Who;

impl Engine {
    /// Reset `agent`'s mode of operation to normal, and record who did it and from what.
    pub(super) fn reset_agent(
        &mut self,
        agent: &str,
        who: &Who,
        reply: oneshot::Sender<Reply>,
        items: &mut Vec<Item>,
    ) {
        let (was, since) = self.g.agent_mode(agent);
        self.g.reset_agent(agent);
        let answer = json!({
            "agent": agent,
            "operating_mode": "normal",
            "was": was.as_str(),
            "since": since.map(|m| m.name()),
            "by": who.json(),
        })
        .to_string();
        tracing::info!(agent, was = was.as_str(), by = %who.id, "agent reset");
        let request = json!({"by": who.json()}).to_string();
        items.push(Item {
            record: self.record(Kind::AgentReset, agent, &request, &answer),
            reply: Some(reply),
            status: StatusCode::OK,
            body: answer,
            effect: Effect::None,
        });
    }
}
