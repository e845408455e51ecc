//! Snapshots of the governor state (issue 18, item 5): what a restart restores.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::interval::Interval;
use crate::policy::VarType;
use crate::repair::Repairer;
use crate::tier1::budget::Window;
use crate::tier1::Checker;

use super::agents::AgentMonitor;
use super::{Governor, InputCode, InputError, PrevSource, MAX_AGENTS};

// Snapshots of the governor state (issue 18, item 5): one self-contained block, added by
// the hardening branch; the fields it reads are private to this module.
impl Governor {
    /// The tag of the snapshot format written by [`Governor::snapshot`].
    pub const SNAPSHOT_FORMAT: &'static str = "aioss-governor-snapshot-v1";

    /// The governor state that later decisions depend on, as one JSON object (text):
    /// `{"format", "seq", "clock", "actions", "budgets": [{"name", "window_secs", "sum":
    /// [lo, hi], "entries": [[t, amount], ...]}], "last_action": {agent: [x, ...]}}`, every
    /// double as the shortest decimal string that reads back as it exactly (`NaN`, `inf`
    /// included), `actions` the action variables as `name:type` so that a restore under
    /// another policy keeps the last actions only when they mean the same. What
    /// [`Governor::state_digest`] covers, plus each window's running sum (its outward
    /// rounding depends on the order of additions and evictions, so it is kept as it is).
    /// The repairers' warm starts are not in it: see [`Governor::reset_warm_starts`].
    pub fn snapshot(&self) -> String {
        let f = |x: f64| Value::from(format!("{x:?}"));
        let budgets: Vec<Value> = self
            .policy
            .budgets
            .iter()
            .zip(&self.windows)
            .map(|(b, w)| {
                serde_json::json!({
                    "name": b.name,
                    "window_secs": f(b.window_secs),
                    // `[lo, hi]` of the running sum, or `[[lo, hi], [lo, hi]]`, the sums of
                    // the amounts' lower and of their upper bounds, when those differ.
                    "sum": match w.sums() {
                        [a, b] if a == b => Value::from(vec![f(a.lo), f(a.hi)]),
                        [a, b] => Value::from(vec![
                            Value::from(vec![f(a.lo), f(a.hi)]),
                            Value::from(vec![f(b.lo), f(b.hi)]),
                        ]),
                    },
                    "entries": w.entries().map(|(t, a)| {
                        // `[t, amount]`, or `[t, lo, hi]` for an increment known as an interval.
                        if a.lo.to_bits() == a.hi.to_bits() {
                            Value::from(vec![f(*t), f(a.hi)])
                        } else {
                            Value::from(vec![f(*t), f(a.lo), f(a.hi)])
                        }
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        let last: serde_json::Map<String, Value> = self
            .last_action
            .iter()
            .map(|(agent, xs)| {
                (
                    agent.clone(),
                    Value::from(xs.iter().map(|x| f(*x)).collect::<Vec<_>>()),
                )
            })
            .collect();
        let agents: serde_json::Map<String, Value> = self
            .agents
            .iter()
            .map(|(agent, m)| (agent.clone(), m.to_json()))
            .collect();
        serde_json::json!({
            "format": Self::SNAPSHOT_FORMAT,
            "seq": self.seq,
            "clock": f(self.clock),
            "policy_hash": self.policy.hash,
            "actions": self.snapshot_layout(),
            "budgets": budgets,
            "last_action": last,
            "agents": agents,
        })
        .to_string()
    }

    /// The action variables as `name:type` (enums with their values), in order.
    fn snapshot_layout(&self) -> Vec<String> {
        self.policy
            .actions
            .iter()
            .map(|a| match &a.ty {
                VarType::Enum(v) => format!("{}:enum({})", a.name, v.join("|")),
                t => format!("{}:{}", a.name, t.name()),
            })
            .collect()
    }

    /// Put the state of a [`Governor::snapshot`] in force, as a reload would carry it
    /// ([`Governor::carry_state_from`]): the sequence number and the clock always; each
    /// budget window whose budget has the same name and window length (others start
    /// empty); the agents' last actions when the action variables are the same (else
    /// none). The warm starts are reset ([`Governor::reset_warm_starts`]). All or nothing:
    /// on error the state is unchanged.
    pub fn restore_snapshot(&mut self, text: &str) -> Result<(), InputError> {
        let bad = |m: &str| InputError::new(InputCode::InvalidValue, "snapshot", m.to_string());
        let v: Value = serde_json::from_str(text).map_err(|e| bad(&format!("not JSON ({e})")))?;
        if v.get("format").and_then(Value::as_str) != Some(Self::SNAPSHOT_FORMAT) {
            return Err(bad(&format!("not a `{}` snapshot", Self::SNAPSHOT_FORMAT)));
        }
        let num = |x: Option<&Value>| -> Result<f64, InputError> {
            x.and_then(Value::as_str)
                .and_then(|s| s.parse::<f64>().ok())
                .ok_or_else(|| bad("a number is not a decimal string"))
        };
        let seq = v
            .get("seq")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad("no `seq`"))?;
        let clock = num(v.get("clock"))?;
        let mut windows = vec![Window::default(); self.policy.budgets.len()];
        let given = v
            .get("budgets")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("no `budgets`"))?;
        for g in given {
            let name = g.get("name").and_then(Value::as_str).unwrap_or_default();
            let secs = num(g.get("window_secs"))?;
            let Some(w) = self
                .policy
                .budgets
                .iter()
                .zip(windows.iter_mut())
                .find(|(b, _)| b.name == name && b.window_secs.to_bits() == secs.to_bits())
                .map(|(_, w)| w)
            else {
                continue;
            };
            let sum = g
                .get("sum")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a budget has no `sum`"))?;
            let pair = |v: Option<&Value>| -> Result<Interval, InputError> {
                let p = v
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("a sum is not a pair"))?;
                Ok(Interval::new(num(p.first())?, num(p.get(1))?))
            };
            let sums = if sum.first().is_some_and(Value::is_array) {
                [pair(sum.first())?, pair(sum.get(1))?]
            } else {
                let s = Interval::new(num(sum.first())?, num(sum.get(1))?);
                [s, s]
            };
            let mut entries = Vec::new();
            for e in g
                .get("entries")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a budget has no `entries`"))?
            {
                let e = e.as_array().ok_or_else(|| bad("an entry is not a pair"))?;
                let amount = match e.as_slice() {
                    [_, a] => Interval::point(num(Some(a))?),
                    [_, lo, hi] => Interval::new(num(Some(lo))?, num(Some(hi))?),
                    _ => return Err(bad("an entry is neither `[t, amount]` nor `[t, lo, hi]`")),
                };
                entries.push((num(e.first())?, amount));
            }
            *w = Window::restore(entries, sums);
        }
        let layout: Vec<String> = v
            .get("actions")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let mut last = BTreeMap::new();
        if layout == self.snapshot_layout() {
            let given = v
                .get("last_action")
                .and_then(Value::as_object)
                .ok_or_else(|| bad("no `last_action`"))?;
            for (agent, xs) in given.iter().take(MAX_AGENTS) {
                let xs = xs
                    .as_array()
                    .ok_or_else(|| bad("a last action is not an array"))?
                    .iter()
                    .map(|x| num(Some(x)))
                    .collect::<Result<Vec<f64>, _>>()?;
                if xs.len() != self.policy.actions.len() {
                    return Err(bad("a last action does not fit the action variables"));
                }
                last.insert(agent.clone(), xs);
            }
        }
        // The agents' monitors (a snapshot written before they existed has none): what the
        // detectors compare with only under the same policy text, the last certified
        // action only under the same action variables, as a reload carries them.
        let same_text =
            v.get("policy_hash").and_then(Value::as_str) == Some(self.policy.hash.as_str());
        let same_actions = layout == self.snapshot_layout();
        let mut agents = BTreeMap::new();
        if let Some(given) = v.get("agents") {
            let given = given
                .as_object()
                .ok_or_else(|| bad("`agents` is not an object"))?;
            for (agent, m) in given.iter().take(MAX_AGENTS) {
                let mut m = AgentMonitor::from_json(m)
                    .ok_or_else(|| bad("an agent's monitors cannot be read"))?;
                if !same_text {
                    m.last = None;
                }
                if !same_actions {
                    m.last_certified = None;
                }
                agents.insert(agent.clone(), m);
            }
        }
        self.seq = seq;
        self.clock = clock;
        self.windows = windows;
        self.last_action = last;
        self.agents = agents;
        self.reset_warm_starts();
        Ok(())
    }

    /// Forget what only speeds decisions up but can move the last bits of a repair: the
    /// repairers' warm starts (and Tier 1's incremental state), as a new governor has them.
    /// The server does this where its log says the state was snapshotted or the policy
    /// reloaded, and replay does it at the same records, so both decide every later record
    /// from the same starting point (see the module documentation on warm starts).
    pub fn reset_warm_starts(&mut self) {
        self.repairers.clear();
        self.shared = Repairer::new(&self.policy);
        self.t1 = Checker::new(&self.policy.lattice);
    }

    /// Where `prev.` comes from ([`Governor::set_prev_source`]).
    pub fn prev_source(&self) -> PrevSource {
        self.prev_source
    }
}
