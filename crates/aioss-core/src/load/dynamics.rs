//! `[dynamics]`: the one-step model, `next.<state>` as an expression over the current
//! state and the action, widened by its `error_bound`.

use std::collections::HashMap;

use toml::de::DeTable;

use super::reader::{entries, suggest, Loader};
use super::scope::{Names, NextState, Scope};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::typeck::{self, Op2, Term, Ty};
use crate::interval::Interval;
use crate::policy::{Dynamics, VarType};

/// The model, and the `next.<state>` terms by state index: `None` when the policy has no
/// `[dynamics]` (with one, a state without an equation has no term).
pub(super) fn dynamics(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    names: &mut Names,
) -> (Option<Dynamics>, Option<HashMap<usize, Term>>) {
    let mut next_terms = HashMap::new();
    let dynamics = root
        .get("dynamics")
        .and_then(|v| l.table(v, "dynamics"))
        .map(|t| equations(l, t, names, &mut next_terms));
    (
        dynamics,
        root.contains_key("dynamics").then_some(next_terms),
    )
}

/// `error_bound = { state = half-width }`, with the span of each name.
fn error_bounds(l: &mut Loader<'_>, t: &DeTable<'_>) -> HashMap<String, (f64, Span)> {
    let mut bounds = HashMap::new();
    let Some(ebt) = t
        .get("error_bound")
        .and_then(|eb| l.table(eb, "dynamics.error_bound"))
    else {
        return bounds;
    };
    for (n, nspan, x) in entries(ebt) {
        if let Some(x) = l.number_of(x, &format!("the error bound of `{n}`")) {
            if x < 0.0 {
                l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    nspan,
                    format!("the error bound of `{n}` is negative"),
                ));
            }
            bounds.insert(n.to_string(), (x.abs(), nspan));
        }
    }
    bounds
}

/// Each equation of `[dynamics]` (table `t`), checked; its `next.` term goes to
/// `next_terms`.
fn equations(
    l: &mut Loader<'_>,
    t: &DeTable<'_>,
    names: &mut Names,
    next_terms: &mut HashMap<usize, Term>,
) -> Dynamics {
    let mut equations = Vec::new();
    let mut error_bound = Vec::new();
    let bounds = error_bounds(l, t);
    for (n, nspan, ev) in entries(t) {
        if n == "error_bound" {
            continue;
        }
        let Some((si, sv)) = names.states.iter().enumerate().find(|(_, s)| s.name == n) else {
            let e = PolicyError::new(
                ErrorKind::UnknownName,
                nspan,
                format!("[dynamics] names `{n}`, which is not a state variable"),
            );
            l.err(
                match suggest(n, names.states.iter().map(|s| s.name.as_str())) {
                    Some(s) => e.help(format!("did you mean `{s}`?")),
                    None => e.help("each [dynamics] key is a [state] variable"),
                },
            );
            continue;
        };
        if sv.ty != VarType::Real {
            l.err(PolicyError::new(
                ErrorKind::TypeMismatch,
                nspan,
                format!(
                    "[dynamics] is for real state, and `{n}` is {}",
                    sv.ty.name()
                ),
            ));
            continue;
        }
        let Some(e) = l.expr(ev, &format!("the dynamics of `{n}`")) else {
            continue;
        };
        match typeck::check(&e, Ty::Num, &mut Scope::new(names, NextState::Hidden)) {
            Ok(term) => {
                let eb = bounds.get(n).map_or(0.0, |b| b.0);
                let next = if eb > 0.0 {
                    Term::bin(Op2::Add, term.clone(), Term::Const(Interval::new(-eb, eb)))
                } else {
                    term.clone()
                };
                next_terms.insert(si, next);
                equations.push((si, term));
                error_bound.push(eb);
            }
            Err(err) => l.err(err),
        }
    }
    for (n, (_, sp)) in &bounds {
        if !equations
            .iter()
            .any(|(si, _)| names.states.get(*si).is_some_and(|s| s.name == *n))
        {
            l.err(PolicyError::new(
                ErrorKind::UnknownName,
                *sp,
                format!("`error_bound` names `{n}`, which has no [dynamics] equation"),
            ));
        }
    }
    Dynamics {
        equations,
        error_bound,
    }
}
