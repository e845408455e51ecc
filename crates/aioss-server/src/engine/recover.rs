//! What a start finds in the store besides the governor state (which
//! `aioss_audit::replay::rebuild` restores): the holds never answered, each agent's latest
//! report, the holds that ended, and how many records follow the last snapshot.

use serde_json::Value;

use super::Report;
use crate::config::Settings;

/// What a start finds in the store besides the governor state (which
/// `aioss_audit::replay::rebuild` restores): see [`recover`].
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    /// The holds still unanswered, oldest first.
    pub holds: Vec<Restored>,
    /// Each agent's latest report, oldest first.
    pub latest: Vec<(String, Report)>,
    /// Holds that ended, oldest first: true if by expiry.
    pub ended: Vec<(String, bool)>,
    /// Records in the store after its last `snapshot` record.
    pub since_snapshot: u64,
    /// The `snapshot` record to write first (why the server starts, what it restored), if
    /// the store holds records.
    pub start: Option<Value>,
}

/// A hold found unanswered in the store at start-up: its decision record's proposal line
/// and decision JSON.
#[derive(Clone, Debug)]
pub struct Restored {
    /// The decision id.
    pub id: String,
    /// The proposal line as decided.
    pub proposal: String,
    /// The decision JSON.
    pub decision: String,
}

/// A map of at most `cap` keys that remembers the latest write of each (the rest are
/// forgotten, oldest first).
struct Latest<V> {
    map: std::collections::HashMap<String, (u64, V)>,
    tick: u64,
    cap: usize,
}

impl<V> Latest<V> {
    fn new(cap: usize) -> Self {
        Latest {
            map: std::collections::HashMap::new(),
            tick: 0,
            cap: cap.max(1),
        }
    }

    fn put(&mut self, k: String, v: V) {
        self.tick += 1;
        self.map.insert(k, (self.tick, v));
        // INVARIANT (bounded-restore): at most twice `cap` entries while scanning.
        if self.map.len() > 2 * self.cap {
            let mut ticks: Vec<u64> = self.map.values().map(|(t, _)| *t).collect();
            ticks.sort_unstable();
            let keep_from = ticks
                .get(ticks.len() - self.cap)
                .copied()
                .unwrap_or_default();
            self.map.retain(|_, (t, _)| *t >= keep_from);
        }
    }

    fn get(&self, k: &str) -> Option<&V> {
        self.map.get(k).map(|(_, v)| v)
    }

    /// The latest `cap` entries, oldest first.
    fn into_vec(self) -> Vec<(String, V)> {
        let mut v: Vec<(u64, String, V)> =
            self.map.into_iter().map(|(k, (t, v))| (t, k, v)).collect();
        v.sort_by_key(|(t, _, _)| *t);
        let skip = v.len().saturating_sub(self.cap);
        v.into_iter().skip(skip).map(|(_, k, v)| (k, v)).collect()
    }
}

/// What a start finds in `store` besides the governor state (see [`Recovered`]):
/// the holds decided under `policy` and never answered (at most `max_pending_holds`, the
/// latest), each agent's latest report (at most `max_tracked_agents`), the holds that
/// ended (at most `max_pending_holds`), and how many records follow the last snapshot.
/// An unreadable store gives nothing (its holds then show as unanswered, a denial).
pub fn recover(
    store: &std::path::Path,
    policy: &aioss_core::Policy,
    settings: &Settings,
) -> Recovered {
    use aioss_audit::Kind;
    let mut out = Recovered::default();
    let Ok(mut s) = aioss_audit::SqliteStore::open_existing(store) else {
        return out;
    };
    let keep = settings.max_pending_holds;
    let mut held: Latest<Restored> = Latest::new(keep);
    let mut ended: Latest<bool> = Latest::new(keep);
    let mut latest: Latest<Report> = Latest::new(settings.max_tracked_agents);
    let mut agent_of: Latest<String> = Latest::new(settings.decision_cache);
    let _ = aioss_audit::Store::scan(&mut s, &mut |r| {
        out.since_snapshot += 1;
        match Kind::parse(&r.kind) {
            Some(Kind::Decision) => {
                let agent = serde_json::from_str::<serde_json::Value>(&r.proposal)
                    .ok()
                    .and_then(|v| v.get("agent")?.as_str().map(str::to_string));
                if let Some(a) = agent {
                    agent_of.put(r.decision_id.clone(), a.clone());
                    latest.put(a, Report::Proposal(r.proposal.clone()));
                }
                if r.policy_hash == policy.hash
                    && r.decision
                        .contains("\"final_outcome\":\"HOLD_FOR_CONFIRMATION\"")
                {
                    held.put(
                        r.decision_id.clone(),
                        Restored {
                            id: r.decision_id,
                            proposal: r.proposal,
                            decision: r.decision,
                        },
                    );
                }
            }
            Some(Kind::Outcome) => {
                // An observed state is a report too, as the engine keeps it.
                let state = serde_json::from_str::<serde_json::Value>(&r.proposal)
                    .ok()
                    .and_then(|v| v.get("body")?.as_str().map(str::to_string))
                    .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
                    .and_then(|b| b.get("state").cloned());
                if let (Some(a), Some(st)) = (agent_of.get(&r.decision_id).cloned(), state) {
                    latest.put(a, Report::Observed(st.to_string()));
                }
            }
            Some(Kind::Confirmation) => {
                held.map.remove(&r.decision_id);
                let expired = r.decision.contains("\"status\":\"expired\"");
                ended.put(r.decision_id, expired);
            }
            Some(Kind::Snapshot) => out.since_snapshot = 0,
            _ => {}
        }
        Ok(true)
    });
    out.holds = held.into_vec().into_iter().map(|(_, h)| h).collect();
    out.latest = latest.into_vec();
    out.ended = ended.into_vec();
    out
}
