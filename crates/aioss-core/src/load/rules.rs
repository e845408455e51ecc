//! `[[rule]]`: the ordered rules, each a condition and the verdict it gives.

use std::collections::HashMap;

use toml::de::DeTable;

use super::reader::{
    action_value, array_of_tables, entries, span_of, Loader, Val, CRITICALITIES, VERDICTS,
};
use super::scope::{Names, NextState, Scope};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::typeck::{self, Ty};
use crate::policy::{ActionVar, Rule};

const KEYS: &[&str] = &[
    "id",
    "when",
    "verdict",
    "criticality",
    "reason",
    "confirmable",
    "set",
    "repaired_transition",
    "description",
];

/// The rules, in order, and the span of each rule id (constraint ids must differ).
pub(super) fn rules(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    names: &mut Names,
) -> (Vec<Rule>, HashMap<String, Span>) {
    let mut rules = Vec::new();
    let mut ids = HashMap::new();
    if let Some(v) = root.get("rule") {
        for (k, rv) in array_of_tables(l, v, "rule") {
            if let Some(r) = rule(l, k, rv, names, &mut ids) {
                rules.push(r);
            }
        }
    }
    (rules, ids)
}

/// Rule `k` (from 0), its id added to `ids`.
fn rule(
    l: &mut Loader<'_>,
    k: usize,
    rv: &Val<'_>,
    names: &mut Names,
    ids: &mut HashMap<String, Span>,
) -> Option<Rule> {
    let sec = format!("rule {}", k + 1);
    let t = l.table(rv, "rule")?;
    l.check_keys(t, KEYS, &format!("[[rule]] ({sec})"));
    let rspan = span_of(rv);
    let id = if l.required(t, "id", &format!("[[rule]] ({sec})"), rspan) {
        l.string(t, "id", "[[rule]]")
    } else {
        None
    };
    let (id, idspan) = id.unwrap_or((format!("rule-{}", k + 1), rspan));
    if let Some(first) = ids.get(&id) {
        let (line, _) = crate::error::line_col(l.src, first.start);
        l.err(
            PolicyError::new(
                ErrorKind::DuplicateId,
                idspan,
                format!("rule id `{id}` is used twice"),
            )
            .help(format!(
                "the first use is on line {line}; rule ids must be unique"
            )),
        );
    } else {
        ids.insert(id.clone(), idspan);
    }
    let sec = format!("rule `{id}`");
    let when = if l.required(t, "when", &sec, idspan) {
        t.get("when")
            .and_then(|w| l.expr(w, "`when`"))
            .and_then(|e| {
                typeck::check(&e, Ty::Bool, &mut Scope::new(names, NextState::Readable))
                    .map_err(|err| l.err(err))
                    .ok()
            })
    } else {
        None
    };
    let verdict = if l.required(t, "verdict", &sec, idspan) {
        l.one_of(t, "verdict", &sec, &VERDICTS)
    } else {
        None
    };
    let criticality = l.one_of(t, "criticality", &sec, &CRITICALITIES);
    let reason = l.string(t, "reason", &sec).map(|x| x.0);
    let _ = l.string(t, "description", &sec);
    let confirmable = l.boolean(t, "confirmable", &sec).unwrap_or(false);
    let repaired_transition = l.string(t, "repaired_transition", &sec).map(|x| x.0);
    let set = set(l, t, &names.actions, &id);
    Some(Rule {
        id,
        when: when?,
        verdict: verdict?,
        criticality,
        reason,
        confirmable,
        set,
        repaired_transition,
        span: idspan,
    })
}

/// `set = { action = value }` of rule `id`: a discrete repair, `(action index, encoded
/// value)`.
fn set(l: &mut Loader<'_>, t: &DeTable<'_>, actions: &[ActionVar], id: &str) -> Vec<(usize, f64)> {
    let mut set = Vec::new();
    let Some(st) = t.get("set").and_then(|sv| l.table(sv, "set")) else {
        return set;
    };
    for (n, nspan, x) in entries(st) {
        match actions.iter().position(|a| a.name == n) {
            Some(i) => {
                if let Some(a) = actions.get(i) {
                    if !a.ty.is_discrete() {
                        l.err(PolicyError::new(ErrorKind::TypeMismatch, nspan, format!("`set` names `{n}`, which is real; `set` is a discrete repair")).help("real variables are repaired by projection; set enum, bool or int variables"));
                    } else if let Some(x) = action_value(l, a, x, &format!("`set` of rule `{id}`"))
                    {
                        set.push((i, x));
                    }
                }
            }
            None => l.err(PolicyError::new(
                ErrorKind::UnknownName,
                nspan,
                format!("`set` names `{n}`, which is not an action variable"),
            )),
        }
    }
    set
}
