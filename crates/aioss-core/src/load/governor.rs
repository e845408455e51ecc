//! `[governor]`: the settings of the decision procedure (deadline, clock skew, Tier 2's
//! iteration cap and repair limit, the repair metric and the discrete costs).

use toml::de::{DeTable, DeValue};

use super::reader::{entries, span_of, suggest, Loader};
use crate::error::{ErrorKind, PolicyError};
use crate::policy::{ActionVar, GovernorSettings, VarType};

const KEYS: &[&str] = &[
    "deadline_us",
    "enforce_deadline",
    "max_clock_skew_secs",
    "max_iterations",
    "repair_limit",
    "metric",
    "metric_matrix",
    "discrete_cost",
];
const SECTION: &str = "[governor]";

/// The settings: the defaults, overridden by what `[governor]` gives.
pub(super) fn settings(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    actions: &[ActionVar],
) -> GovernorSettings {
    let real_actions: Vec<usize> = actions
        .iter()
        .enumerate()
        .filter(|(_, a)| a.ty == VarType::Real)
        .map(|(i, _)| i)
        .collect();
    let nr = real_actions.len();
    let mut gov = GovernorSettings {
        deadline_us: 1000,
        enforce_deadline: false,
        max_clock_skew_secs: 0.0,
        max_iterations: 50,
        repair_limit: f64::INFINITY,
        metric: (0..nr)
            .map(|i| (0..nr).map(|j| if i == j { 1.0 } else { 0.0 }).collect())
            .collect(),
        discrete_cost: actions
            .iter()
            .map(|a| if a.ty.is_discrete() { 1.0 } else { 0.0 })
            .collect(),
    };
    let Some(t) = root.get("governor").and_then(|v| l.table(v, "governor")) else {
        return gov;
    };
    l.check_keys(t, KEYS, SECTION);
    let must = "a positive whole number of microseconds";
    if let Some(d) = l.whole_number(t, "deadline_us", SECTION, 1..=1_000_000_000_000, must) {
        gov.deadline_us = d;
    }
    if let Some(b) = l.boolean(t, "enforce_deadline", SECTION) {
        gov.enforce_deadline = b;
    }
    // A day is already more than any clock that is working should drift.
    let must = "from 0 to 86400 seconds";
    if let Some(x) = l.number_in(t, "max_clock_skew_secs", SECTION, 0.0..=86_400.0, must) {
        gov.max_clock_skew_secs = x;
    }
    let must = "a whole number from 1 to 1000000";
    if let Some(m) = l.whole_number(t, "max_iterations", SECTION, 1..=1_000_000, must) {
        gov.max_iterations = u32::try_from(m).unwrap_or(u32::MAX);
    }
    if let Some(x) = l.number_in(t, "repair_limit", SECTION, 0.0.., "zero or more") {
        gov.repair_limit = x;
    }
    if t.contains_key("metric") {
        if let Some(mv) = t.get("metric_matrix") {
            l.err(PolicyError::new(
                ErrorKind::InvalidValue,
                span_of(mv),
                "give `metric` or `metric_matrix`, not both",
            ));
        }
    }
    metric(l, t, actions, &real_actions, &mut gov.metric);
    metric_matrix(l, t, nr, &mut gov.metric);
    discrete_cost(l, t, actions, &mut gov.discrete_cost);
    gov
}

/// `metric = { action = weight }`: a diagonal metric over the real action variables.
fn metric(
    l: &mut Loader<'_>,
    t: &DeTable<'_>,
    actions: &[ActionVar],
    real_actions: &[usize],
    metric: &mut [Vec<f64>],
) {
    let Some(mt) = t
        .get("metric")
        .and_then(|mv| l.table(mv, "governor.metric"))
    else {
        return;
    };
    for (n, nspan, w) in entries(mt) {
        let Some(pos) = real_actions
            .iter()
            .position(|&i| actions.get(i).is_some_and(|a| a.name == n))
        else {
            let e = PolicyError::new(
                ErrorKind::UnknownName,
                nspan,
                format!("`metric` names `{n}`, which is not a real action variable"),
            );
            let real = real_actions.iter().filter_map(|&i| actions.get(i));
            l.err(match suggest(n, real.map(|a| a.name.as_str())) {
                Some(s) => e.help(format!("did you mean `{s}`?")),
                None => e.help("the metric weighs the real action variables; discrete ones take `discrete_cost`"),
            });
            continue;
        };
        if let Some(x) = l.number_of(w, &format!("the metric weight of `{n}`")) {
            if x <= 0.0 {
                l.err(PolicyError::new(ErrorKind::MetricNotPositiveDefinite, span_of(w), format!("the metric weight of `{n}` is {x}; the metric must be positive definite"))
                    .help("give every real action variable a weight above zero"));
            }
            if let Some(c) = metric.get_mut(pos).and_then(|row| row.get_mut(pos)) {
                *c = x;
            }
        }
    }
}

/// `metric_matrix`: the whole metric over the real action variables, which must be
/// symmetric positive definite.
fn metric_matrix(l: &mut Loader<'_>, t: &DeTable<'_>, nr: usize, metric: &mut Vec<Vec<f64>>) {
    let Some(mv) = t.get("metric_matrix") else {
        return;
    };
    let sp = span_of(mv);
    let mut m: Vec<Vec<f64>> = Vec::new();
    let mut ok = true;
    if let DeValue::Array(rows) = mv.get_ref() {
        for r in rows.iter() {
            let mut row = Vec::new();
            if let DeValue::Array(cells) = r.get_ref() {
                for c in cells.iter() {
                    match l.number_of(c, "a `metric_matrix` entry") {
                        Some(x) => row.push(x),
                        None => ok = false,
                    }
                }
            } else {
                ok = false;
            }
            m.push(row);
        }
    } else {
        ok = false;
    }
    if !ok || m.len() != nr || m.iter().any(|r| r.len() != nr) {
        l.err(PolicyError::new(ErrorKind::InvalidValue, sp, format!("`metric_matrix` must be a {nr}×{nr} array of numbers (one row per real action variable, in [action] order)")));
    } else if let Err(why) = positive_definite(&m) {
        l.err(PolicyError::new(ErrorKind::MetricNotPositiveDefinite, sp, format!("`metric_matrix` is not positive definite: {why}"))
            .help("use a symmetric matrix with positive eigenvalues; a diagonal `metric` with positive weights always is"));
    } else {
        *metric = m;
    }
}

/// `discrete_cost = { action = cost }`: the cost of changing each discrete action variable.
fn discrete_cost(l: &mut Loader<'_>, t: &DeTable<'_>, actions: &[ActionVar], costs: &mut [f64]) {
    let Some(dt) = t
        .get("discrete_cost")
        .and_then(|dv| l.table(dv, "governor.discrete_cost"))
    else {
        return;
    };
    for (n, nspan, w) in entries(dt) {
        match actions
            .iter()
            .position(|a| a.name == n && a.ty.is_discrete())
        {
            Some(i) => {
                if let Some(x) = l.number_of(w, &format!("the discrete cost of `{n}`")) {
                    if x < 0.0 {
                        l.err(PolicyError::new(
                            ErrorKind::InvalidValue,
                            span_of(w),
                            format!("the discrete cost of `{n}` is negative"),
                        ));
                    }
                    if let Some(c) = costs.get_mut(i) {
                        *c = x;
                    }
                }
            }
            None => l.err(
                PolicyError::new(
                    ErrorKind::UnknownName,
                    nspan,
                    format!("`discrete_cost` names `{n}`, which is not a discrete action variable"),
                )
                .help("discrete costs are for enum, bool and int action variables"),
            ),
        }
    }
}
/// Cholesky factorisation as the positive-definiteness test.
fn positive_definite(m: &[Vec<f64>]) -> Result<(), String> {
    let n = m.len();
    for (i, row) in m.iter().enumerate() {
        for (j, x) in row.iter().enumerate() {
            let y = m.get(j).and_then(|r| r.get(i)).copied().unwrap_or(f64::NAN);
            if *x != y {
                return Err(format!(
                    "it is not symmetric (entry [{i}][{j}] is {x}, [{j}][{i}] is {y})"
                ));
            }
        }
    }
    let mut lower = vec![vec![0.0f64; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let mut s = m.get(i).and_then(|r| r.get(j)).copied().unwrap_or(0.0);
            for k in 0..j {
                let lik = lower.get(i).and_then(|r| r.get(k)).copied().unwrap_or(0.0);
                let ljk = lower.get(j).and_then(|r| r.get(k)).copied().unwrap_or(0.0);
                s -= lik * ljk;
            }
            if i == j {
                if s <= 1e-12 {
                    return Err(format!("the pivot of row {i} is {s:e}, not positive"));
                }
                if let Some(c) = lower.get_mut(i).and_then(|r| r.get_mut(j)) {
                    *c = s.sqrt();
                }
            } else {
                let ljj = lower.get(j).and_then(|r| r.get(j)).copied().unwrap_or(1.0);
                if let Some(c) = lower.get_mut(i).and_then(|r| r.get_mut(j)) {
                    *c = s / ljj;
                }
            }
        }
    }
    Ok(())
}
