//! The input box a decision's checks are made over, from a proposal and the governor's
//! state. Part of the trusted checker: G1 is "for every state in the box the governor was
//! given", and this is where that box is written into the policy's input layout.
//!
//! What it assumes of its caller: the proposal's numbers are the doubles of its text (the
//! JSON reader's `float_roundtrip`), its state intervals were built by the kernel
//! ([`Interval::around`], [`Interval::new`]), `prev` is the agent's last executed action
//! (or what the caller chose to trust), and `budgets` are the windows' values
//! ([`crate::tier1::budget::Window::value`]).

use crate::governor::{AttrValue, Proposal, StateValue};
use crate::policy::Policy;
use crate::tier1::interval::Interval;

/// Write into `out` (one slot per input of `p`'s layout) the box of `prop`: its action as
/// points, `prev.` as points, each state as given (a missing one over its whole declared
/// range), each budget's value, each agent attribute read by the policy (a symbol's index,
/// or every value when not given). Returns the required evidence that is missing.
pub fn assemble(
    p: &Policy,
    prop: &Proposal,
    prev: &[f64],
    budgets: &[Interval],
    out: &mut Vec<Interval>,
) -> Vec<String> {
    // INVARIANT (whole-box): every slot of the layout is written below (actions, states
    // with a slot, `prev.`, budgets, attributes), so nothing of an earlier proposal
    // survives; the resize covers a vector of another layout.
    out.resize(p.layout.len as usize, Interval::ENTIRE);
    let mut missing = Vec::new();
    let mut set = |slot: u32, x: Interval| {
        if let Some(s) = out.get_mut(slot as usize) {
            *s = x;
        }
    };
    for (k, a) in p.actions.iter().enumerate() {
        let u = prop.action.get(k).copied().unwrap_or(f64::NAN);
        set(a.slot, Interval::point(u));
        let v = prev.get(k).copied().unwrap_or(f64::NAN);
        set(a.prev_slot, Interval::point(v));
    }
    for (k, s) in p.states.iter().enumerate() {
        match prop.state.get(k).and_then(Option::as_ref) {
            Some(StateValue::Num(x)) => {
                if let Some(slot) = s.slot {
                    set(slot, *x);
                }
            }
            Some(StateValue::Text(t)) => {
                if s.required && t.trim().is_empty() {
                    missing.push(format!("state `{}` is blank", s.name));
                }
            }
            None => {
                if let Some(slot) = s.slot {
                    set(slot, Interval::new(s.min, s.max));
                }
                if s.required {
                    missing.push(format!(
                        "state `{}` is missing: its whole declared range was used",
                        s.name
                    ));
                }
            }
        }
    }
    for (k, b) in p.budgets.iter().enumerate() {
        set(b.slot, budgets.get(k).copied().unwrap_or(Interval::ENTIRE));
    }
    #[expect(
        clippy::cast_precision_loss,
        reason = "symbol counts are far below 2^52"
    )]
    for a in &p.layout.attrs {
        let given = prop.attributes.iter().find(|(k, _)| *k == a.name);
        let x = match (given, a.numeric) {
            (Some((_, AttrValue::Num(x))), true) => Interval::point(*x),
            (Some((_, AttrValue::Sym(s))), false) => Interval::point(
                p.symbols
                    .iter()
                    .position(|t| t == s)
                    .map_or(-1.0, |i| i as f64),
            ),
            // A string where a number is read (or the reverse) matches nothing.
            (Some((_, AttrValue::Sym(_))), true) => Interval::ENTIRE,
            (Some((_, AttrValue::Num(_))), false) => Interval::point(-1.0),
            (None, true) => Interval::ENTIRE,
            (None, false) => Interval::new(-1.0, p.symbols.len() as f64),
        };
        set(a.slot, x);
    }
    missing
}
