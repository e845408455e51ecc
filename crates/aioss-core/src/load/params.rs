//! `[param]`: named constants.

use toml::de::DeTable;

use super::reader::{entries, Loader};
use crate::error::{ErrorKind, PolicyError};
use crate::policy::{ActionVar, StateVar};

/// The parameters, in declaration order. A parameter may not have a variable's name.
pub(super) fn params(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    actions: &[ActionVar],
    states: &[StateVar],
) -> Vec<(String, f64)> {
    let mut params = Vec::new();
    let Some(t) = root.get("param").and_then(|v| l.table(v, "param")) else {
        return params;
    };
    for (n, nspan, pv) in entries(t) {
        if actions.iter().any(|a| a.name == n) || states.iter().any(|s| s.name == n) {
            l.err(
                PolicyError::new(
                    ErrorKind::DuplicateId,
                    nspan,
                    format!("parameter `{n}` has the name of a variable"),
                )
                .help("rename the parameter"),
            );
        }
        if let Some(x) = l.number_of(pv, &format!("parameter `{n}`")) {
            params.push((n.to_string(), x));
        }
    }
    params
}
