//! `[fallback]`: the action executed when nothing better is certified; a value for every
//! action variable (certified against the critical rows once the policy is compiled).

use toml::de::DeTable;

use super::reader::{action_value, entries, span_of, suggest, Loader};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::policy::ActionVar;

/// The fallback, encoded, one value per action variable (NaN where none is given, which
/// is an error).
pub(super) fn fallback(l: &mut Loader<'_>, root: &DeTable<'_>, actions: &[ActionVar]) -> Vec<f64> {
    let mut fallback: Vec<f64> = actions.iter().map(|_| f64::NAN).collect();
    let Some(v) = root.get("fallback") else {
        if !actions.is_empty() {
            l.err(
                PolicyError::new(
                    ErrorKind::MissingField,
                    Span::new(0, 0),
                    "the policy has no [fallback] section",
                )
                .help("add [fallback] with a safe value for every action variable"),
            );
        }
        return fallback;
    };
    let fallback_span = span_of(v);
    let Some(t) = l.table(v, "fallback") else {
        return fallback;
    };
    for (n, nspan, fv) in entries(t) {
        let Some(i) = actions.iter().position(|a| a.name == n) else {
            let e = PolicyError::new(
                ErrorKind::UnknownName,
                nspan,
                format!("[fallback] names `{n}`, which is not an action variable"),
            );
            l.err(match suggest(n, actions.iter().map(|a| a.name.as_str())) {
                Some(s) => e.help(format!("did you mean `{s}`?")),
                None => e.help("the fallback gives a value for each [action] variable"),
            });
            continue;
        };
        if let (Some(a), Some(slot)) = (actions.get(i), fallback.get_mut(i)) {
            if let Some(x) = action_value(l, a, fv, "[fallback]") {
                *slot = x;
            }
        }
    }
    for (a, x) in actions.iter().zip(&fallback) {
        if x.is_nan() && !t.contains_key(a.name.as_str()) {
            l.err(
                PolicyError::new(
                    ErrorKind::MissingField,
                    fallback_span,
                    format!("[fallback] has no value for `{}`", a.name),
                )
                .help(format!(
                    "add `{} = ...`: the fallback must be a complete action",
                    a.name
                )),
            );
        }
    }
    fallback
}
