//! `[action.*]`: the action variables, in declaration order.

use toml::de::DeTable;

use super::reader::{entries, span_of, Loader};
use super::scope::Enums;
use crate::error::{ErrorKind, PolicyError};
use crate::policy::{ActionVar, VarType};

const KEYS: &[&str] = &[
    "type",
    "min",
    "max",
    "values",
    "description",
    "unit",
    "repairable",
];

/// The action variables (slots unassigned) and the enum id of each.
pub(super) fn actions(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    enums: &mut Enums,
) -> (Vec<ActionVar>, Vec<Option<u32>>) {
    let mut actions = Vec::new();
    let mut enum_of_action = Vec::new();
    let Some(t) = root.get("action").and_then(|v| l.table(v, "action")) else {
        return (actions, enum_of_action);
    };
    for (n, nspan, av) in entries(t) {
        let section = format!("[action.{n}]");
        let Some(at) = l.table(av, &format!("action.{n}")) else {
            continue;
        };
        l.check_keys(at, KEYS, &section);
        let _ = l.string(at, "description", &section);
        let _ = l.string(at, "unit", &section);
        let Some(ty) = l.var_type(at, &section, false) else {
            continue;
        };
        let (mut min, mut max) = (0.0, 0.0);
        match &ty {
            VarType::Real | VarType::Int => {
                let has =
                    l.required(at, "min", &section, nspan) & l.required(at, "max", &section, nspan);
                if has {
                    if let (Some((a, _)), Some((b, bs))) =
                        (l.number(at, "min", &section), l.number(at, "max", &section))
                    {
                        if a > b {
                            l.err(PolicyError::new(
                                ErrorKind::InvalidValue,
                                bs,
                                format!("`max` of `{n}` is below its `min`"),
                            ));
                        }
                        (min, max) = (a, b);
                        if ty == VarType::Int {
                            min = min.ceil();
                            max = max.floor();
                        }
                    }
                }
            }
            VarType::Bool => max = 1.0,
            VarType::Enum(vals) => {
                #[expect(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
                let m = (vals.len() - 1) as f64;
                max = m;
            }
            VarType::Text => {}
        }
        // Which value the proposal chose is the user's for an enum (a tool, a mode): the
        // repair search keeps it unless the policy says `repairable = true` (a rule's `set`
        // is explicit too). Bool and int values are searched unless `repairable = false`.
        let repairable = match l.boolean(at, "repairable", &section) {
            Some(r) if matches!(ty, VarType::Real | VarType::Text) => {
                l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    at.get("repairable").map_or(nspan, span_of),
                    format!(
                        "`repairable` applies to enum, bool and int action variables, not to `{n}`: remove it"
                    ),
                ));
                r
            }
            Some(r) => r,
            None => !matches!(ty, VarType::Enum(_)),
        };
        let eid = if let VarType::Enum(vals) = &ty {
            Some(enums.id(n, vals))
        } else {
            None
        };
        enum_of_action.push(eid);
        actions.push(ActionVar {
            name: n.to_string(),
            ty,
            min,
            max,
            slot: 0,
            prev_slot: 0,
            repairable,
        });
    }
    (actions, enum_of_action)
}
