//! `[state.*]`: the state variables, in declaration order.

use toml::de::DeTable;

use super::reader::{entries, span_of, Loader};
use super::scope::Enums;
use crate::error::{ErrorKind, PolicyError};
use crate::policy::{ActionVar, StateVar, VarType};

const KEYS: &[&str] = &[
    "type",
    "min",
    "max",
    "values",
    "noise",
    "max_noise",
    "description",
    "unit",
    "required",
];

/// The state variables (slots unassigned) and the enum id of each. A state variable may
/// not have the name of an action variable.
pub(super) fn states(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    actions: &[ActionVar],
    enums: &mut Enums,
) -> (Vec<StateVar>, Vec<Option<u32>>) {
    let mut states = Vec::new();
    let mut enum_of_state = Vec::new();
    let Some(t) = root.get("state").and_then(|v| l.table(v, "state")) else {
        return (states, enum_of_state);
    };
    for (n, nspan, sv) in entries(t) {
        let section = format!("[state.{n}]");
        if actions.iter().any(|a| a.name == n) {
            l.err(
                PolicyError::new(
                    ErrorKind::DuplicateId,
                    nspan,
                    format!("`{n}` is both an action and a state variable"),
                )
                .help("rename one of them"),
            );
        }
        let Some(st) = l.table(sv, &format!("state.{n}")) else {
            continue;
        };
        l.check_keys(st, KEYS, &section);
        let _ = l.string(st, "description", &section);
        let required = l.boolean(st, "required", &section).unwrap_or(true);
        let _ = l.string(st, "unit", &section);
        let Some(ty) = l.var_type(st, &section, true) else {
            continue;
        };
        let (min, max, noise) = range(l, st, n, &ty, &section);
        let max_noise = max_noise(l, st, n, &ty, &section, noise);
        let eid = if let VarType::Enum(vals) = &ty {
            Some(enums.id(n, vals))
        } else {
            None
        };
        enum_of_state.push(eid);
        states.push(StateVar {
            name: n.to_string(),
            ty,
            min,
            max,
            noise,
            max_noise,
            required,
            slot: None,
        });
    }
    (states, enum_of_state)
}

/// `(min, max, noise)` of state variable `n` of type `ty`: declared for real and int state
/// (unbounded and exact when left out), the natural range for the others.
fn range(
    l: &mut Loader<'_>,
    st: &DeTable<'_>,
    n: &str,
    ty: &VarType,
    section: &str,
) -> (f64, f64, f64) {
    let mut min = f64::NEG_INFINITY;
    let mut max = f64::INFINITY;
    let mut noise = 0.0;
    match ty {
        VarType::Real | VarType::Int => {
            if let Some((a, _)) = l.number(st, "min", section) {
                min = a;
            }
            if let Some((b, bs)) = l.number(st, "max", section) {
                max = b;
                if min > max {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        bs,
                        format!("`max` of `{n}` is below its `min`"),
                    ));
                }
            }
            if let Some((e, es)) = l.number(st, "noise", section) {
                if e < 0.0 {
                    l.err(
                        PolicyError::new(
                            ErrorKind::InvalidValue,
                            es,
                            format!("`noise` of `{n}` is negative"),
                        )
                        .help("noise is a half-width: zero or more"),
                    );
                }
                noise = e.abs();
            }
        }
        VarType::Bool => (min, max) = (0.0, 1.0),
        VarType::Enum(vals) => {
            #[expect(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
            let m = (vals.len() - 1) as f64;
            (min, max) = (0.0, m);
        }
        VarType::Text => (min, max) = (0.0, 0.0),
    }
    if !matches!(ty, VarType::Real | VarType::Int) {
        for k in ["min", "max", "noise"] {
            if let Some(kv) = st.get(k) {
                l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(kv),
                    format!(
                        "`{k}` is only for real and int state, and `{n}` is {}",
                        ty.name()
                    ),
                ));
            }
        }
    }
    (min, max, noise)
}

/// `max_noise` of state variable `n`: a half-width, at least its `noise`, for real and int
/// state only.
fn max_noise(
    l: &mut Loader<'_>,
    st: &DeTable<'_>,
    n: &str,
    ty: &VarType,
    section: &str,
    noise: f64,
) -> Option<f64> {
    let (x, at) = l.number(st, "max_noise", section)?;
    if !matches!(ty, VarType::Real | VarType::Int) {
        l.err(PolicyError::new(
            ErrorKind::InvalidValue,
            at,
            format!(
                "`max_noise` is only for real and int state, and `{n}` is {}",
                ty.name()
            ),
        ));
        return None;
    }
    if x.is_nan() || x < noise {
        l.err(
            PolicyError::new(
                ErrorKind::InvalidValue,
                at,
                format!("`max_noise` of `{n}` is below its `noise`"),
            )
            .help("max_noise is the widest half-width a proposal may report: at least `noise`"),
        );
        return None;
    }
    Some(x)
}
