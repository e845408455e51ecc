//! `[budget.*]`: rolling-window accumulators. A budget is declared (and takes its input
//! slot) before any expression is checked, since any of them may read `budget.<name>`;
//! its `add` is checked after `[dynamics]`, with the other expressions.

use toml::de::DeTable;

use super::reader::{entries, Loader, Val};
use super::scope::{Names, NextState, Scope};
use crate::expr::typeck::{self, Term, Ty};
use crate::interval::Interval;
use crate::policy::Budget;

const KEYS: &[&str] = &["window", "add", "min", "max", "description"];

/// A declared budget, its `add` not yet checked.
pub(super) struct Declared<'a, 'i> {
    pub(super) name: String,
    window_secs: f64,
    min: f64,
    max: f64,
    add: Option<&'a Val<'i>>,
    pub(super) slot: u32,
}

/// The budgets, each given the next input slot.
pub(super) fn declare<'a, 'i>(
    l: &mut Loader<'_>,
    root: &'a DeTable<'i>,
    next_slot: &mut u32,
) -> Vec<Declared<'a, 'i>> {
    let mut declared = Vec::new();
    let Some(t) = root.get("budget").and_then(|v| l.table(v, "budget")) else {
        return declared;
    };
    for (n, nspan, bv) in entries(t) {
        let section = format!("[budget.{n}]");
        let Some(bt) = l.table(bv, &format!("budget.{n}")) else {
            continue;
        };
        l.check_keys(bt, KEYS, &section);
        let _ = l.string(bt, "description", &section);
        let window_secs = if l.required(bt, "window", &section, nspan) {
            l.duration(bt, "window", &section)
        } else {
            None
        };
        l.required(bt, "add", &section, nspan);
        let min = l.number(bt, "min", &section).map_or(0.0, |x| x.0);
        let max = l.number(bt, "max", &section).map_or(f64::INFINITY, |x| x.0);
        declared.push(Declared {
            name: n.to_string(),
            window_secs: window_secs.unwrap_or(f64::INFINITY),
            min,
            max,
            add: bt.get("add"),
            slot: *next_slot,
        });
        *next_slot += 1;
    }
    declared
}

/// The budgets, with their `add` checked (over the current state and the action).
pub(super) fn budgets(
    l: &mut Loader<'_>,
    declared: Vec<Declared<'_, '_>>,
    names: &mut Names,
) -> Vec<Budget> {
    let mut budgets = Vec::new();
    for d in declared {
        let mut add = Term::Const(Interval::point(0.0));
        if let Some(e) = d
            .add
            .and_then(|av| l.expr(av, &format!("`add` of budget `{}`", d.name)))
        {
            match typeck::check(&e, Ty::Num, &mut Scope::new(names, NextState::Hidden)) {
                Ok(t) => add = t,
                Err(err) => l.err(err),
            }
        }
        budgets.push(Budget {
            name: d.name,
            window_secs: d.window_secs,
            add,
            min: d.min,
            max: d.max,
            slot: d.slot,
        });
    }
    budgets
}
