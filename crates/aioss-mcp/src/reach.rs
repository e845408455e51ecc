//! Which tools `tools/list` hides: those no rule or constraint could ever allow for this
//! agent.
//!
//! A tool is hidden only when that is certain, never on a guess: over the whole box of
//! what a call of it could be (the tool variable fixed to the tool, each variable the
//! mapping fixes at its constant, each unmapped variable at the fallback's value, each
//! variable taken from an argument over its whole declared range, `prev.` and every
//! budget over their whole ranges, the session's attributes as they are, and the state
//! as the session gives it: its static values, or, with a state file that can change, every
//! state over its whole declared range), evaluated with Tier 1's interval arithmetic
//! through the reference interpreter ([`aioss_core::tape::interpret`]), either
//!
//! * the first rule that can match at all matches everywhere and is a BLOCK no human can
//!   confirm, or
//! * a constraint whose violation blocks (`on_violation = "block"`) applies everywhere and
//!   one of its rows fails everywhere.
//!
//! Anything less certain (a hold a human may approve, a repair, a row that fails only
//! somewhere) leaves the tool listed: the governor decides each call anyway.

use aioss_core::governor::Proposal;
use aioss_core::policy::{OnViolation, Sense, Verdict};
use aioss_core::tape::interpret;
use aioss_core::{Interval, Policy, Truth};

use crate::mapping::{Mapping, Session, Source};

/// Why a tool can never be allowed for the session's agent: the rule or constraint id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreachable {
    /// The rule or constraint that blocks it everywhere.
    pub by: String,
}

/// The input box of every call of `tool` for `session` (see the module documentation).
fn call_box(p: &Policy, m: &Mapping, session: &Session, tool: &str) -> Option<Vec<Interval>> {
    let t = m.tool(tool)?;
    // The session's attributes and static state, encoded as the governor encodes them.
    let mut line = serde_json::Map::new();
    line.insert("agent".into(), session.agent.clone().into());
    line.insert("agent_attributes".into(), session.attributes.clone().into());
    line.insert(
        "action".into(),
        crate::mapping::decode_action(p, &p.fallback).into(),
    );
    if m.state_file.is_none() {
        line.insert("state".into(), m.state.clone().into());
    }
    let prop = Proposal::parse(p, &serde_json::Value::Object(line).to_string()).ok()?;
    let mut inputs = Vec::new();
    aioss_core::tier1::inputs::assemble(p, &prop, &p.fallback, &[], &mut inputs);
    let set = |inputs: &mut Vec<Interval>, slot: u32, x: Interval| {
        if let Some(s) = inputs.get_mut(slot as usize) {
            *s = x;
        }
    };
    for (k, a) in p.actions.iter().enumerate() {
        let whole = Interval::new(a.min, a.max);
        set(&mut inputs, a.prev_slot, whole);
        let x = if k == m.tool_var {
            let v = match &a.ty {
                aioss_core::policy::VarType::Enum(vals) => Policy::enum_index(vals, &t.value),
                _ => None,
            };
            Interval::point(v?)
        } else {
            match t.vars.iter().find(|v| v.var == k).map(|v| &v.source) {
                Some(Source::Arg { .. }) => whole,
                Some(Source::Const(_)) | None => Interval::point(fixed_value(p, t, k)?),
            }
        };
        set(&mut inputs, a.slot, x);
    }
    for b in &p.budgets {
        set(&mut inputs, b.slot, Interval::new(b.min, b.max));
    }
    Some(inputs)
}

/// The encoded value of action variable `k` for a tool that fixes it (a constant, encoded
/// through the proposal reader as the governor encodes it, or the fallback's value when
/// unmapped).
fn fixed_value(p: &Policy, t: &crate::mapping::ToolMap, k: usize) -> Option<f64> {
    match t.vars.iter().find(|v| v.var == k).map(|v| &v.source) {
        Some(Source::Const(c)) => {
            let mut action = crate::mapping::decode_action(p, &p.fallback);
            action.insert(p.actions.get(k)?.name.clone(), c.clone());
            let line = serde_json::json!({ "action": action }).to_string();
            Proposal::parse(p, &line).ok()?.action.get(k).copied()
        }
        _ => p.fallback.get(k).copied(),
    }
}

/// Whether a call of `tool` could ever be allowed for `session`'s agent; `Err` names
/// what blocks it everywhere.
pub fn reachable(
    p: &Policy,
    m: &Mapping,
    session: &Session,
    tool: &str,
) -> Result<(), Unreachable> {
    let Some(inputs) = call_box(p, m, session, tool) else {
        return Ok(());
    };
    for r in &p.rules {
        match interpret(&r.when, &inputs).truth() {
            Truth::False => continue,
            Truth::True if r.verdict == Verdict::Block && !r.confirmable => {
                return Err(Unreachable { by: r.id.clone() });
            }
            _ => break,
        }
    }
    for c in &p.constraints {
        if c.on_violation != OnViolation::Block {
            continue;
        }
        if let Some(g) = &c.guard {
            if interpret(g, &inputs).truth() != Truth::True {
                continue;
            }
        }
        for row in &c.rows {
            let l = interpret(&row.lhs, &inputs);
            let holds = match row.sense {
                Sense::Bool => l,
                Sense::Le => l.le(interpret(&row.rhs, &inputs)),
                Sense::Lt => l.lt(interpret(&row.rhs, &inputs)),
                Sense::Eq => l.eq(interpret(&row.rhs, &inputs)),
                Sense::Ne => l.ne(interpret(&row.rhs, &inputs)),
            };
            if holds.truth() == Truth::False {
                return Err(Unreachable { by: c.id.clone() });
            }
        }
    }
    Ok(())
}
