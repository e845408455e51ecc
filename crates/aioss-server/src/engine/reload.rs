//! The governor state's own records: a policy reload (the new governor takes over the
//! state that still means the same), and `snapshot` records (at start, every
//! `snapshot_every` records, at shutdown), from which a restart restores the state.

use std::sync::Arc;

use aioss_audit::Kind;
use aioss_core::governor::PrevSource;
use aioss_core::{Governor, Policy};
use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::commit::{Effect, Item};
use super::{Engine, Reply};
use crate::metrics::Family;
use crate::who::Who;

impl Engine {
    /// A `snapshot` record of the governor state (`Governor::snapshot`), `why` in its
    /// `proposal`; the warm starts start afresh after it, as replay's do at the same
    /// record (so that a restart from it, or a replay through it, decides every later
    /// record as this server does).
    pub(super) fn snapshot(&mut self, why: Value, items: &mut Vec<Item>) {
        let state = self.g.snapshot();
        let record = self.record(Kind::Snapshot, "", &why.to_string(), &state);
        self.g.reset_warm_starts();
        self.since_snapshot = 0;
        items.push(Item::quiet(record));
    }

    /// A periodic snapshot once `snapshot_every` records were made since the last one.
    pub(super) fn maybe_snapshot(&mut self, items: &mut Vec<Item>) {
        self.since_snapshot += items.len() as u64;
        let every = self.settings.snapshot_every;
        if every > 0 && self.since_snapshot >= every {
            self.snapshot(json!({"reason": "periodic"}), items);
        }
    }

    /// Put `policy` in force, carrying over the governor state where it means the same.
    pub(super) fn reload(
        &mut self,
        policy: Policy,
        who: &Who,
        reply: Option<oneshot::Sender<Reply>>,
        items: &mut Vec<Item>,
    ) {
        let old = self.g.policy();
        let previous = json!({"name": old.name, "version": old.version, "hash": old.hash});
        let p = Arc::new(policy.clone());
        let mut g = Governor::new(policy);
        // Budgets, `prev` and the clock go on where they still mean the same.
        g.carry_state_from(&self.g);
        g.set_prev_source(PrevSource::Governor);
        self.g = g;
        // The agents' latest reports are kept as text and read under the policy in force
        // when needed (caught: they were dropped here, and a hold refused as `unsafe_now`
        // was approved after a reload of the unchanged file).
        let now = &self.g.policy();
        let answer = json!({
            "policy": {"name": now.name, "version": now.version, "hash": now.hash},
            "previous": previous,
            "by": who.json(),
        })
        .to_string();
        tracing::info!(hash = %now.hash, by = %who.id, "policy reloaded");
        self.shared.metrics.count(Family::Reload, "ok");
        let request = json!({"by": who.json()}).to_string();
        items.push(Item {
            record: self.record(Kind::PolicyReload, "", &request, &answer),
            reply,
            status: StatusCode::OK,
            body: answer,
            effect: Effect::Policy(p),
        });
    }
}
