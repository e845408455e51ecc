//! The oracle's own reader of policy files: TOML text → [`Model`].
//!
//! Independent of the core's loader: it reads the sections the oracle needs to state what a
//! policy *means* (`[action.*]`, `[state.*]`, `[param]`, `[dynamics]`, `[fallback]`,
//! `[[constraint]]`, `[budget.*]`), parses every expression with [`crate::expr`] and splits
//! each constraint into rows as `spec/policy.md` and `docs/policy-language.md` say. It does
//! not re-validate everything the core validates (unknown keys in sections it skips,
//! metrics, rules' verdicts, `[[test]]` cases): it is run on policies the core loaded. What
//! it does not understand is an error, never skipped.

use std::fmt;

use toml::de::{DeTable, DeValue};

use crate::expr::{conjuncts, parse, E};

/// The type of a variable.
#[derive(Clone, Debug, PartialEq)]
pub enum VTy {
    /// A real.
    Real,
    /// An integer.
    Int,
    /// `true` / `false`.
    Bool,
    /// One of these values.
    Enum(Vec<String>),
    /// Free text (state only, never read by an expression).
    Text,
}

/// An action or state variable.
#[derive(Clone, Debug)]
pub struct Var {
    /// Its name.
    pub name: String,
    /// Its type.
    pub ty: VTy,
    /// Declared lower bound (`-inf` for unbounded state; int actions rounded up).
    pub min: f64,
    /// Declared upper bound.
    pub max: f64,
    /// Default half-width (state).
    pub noise: f64,
}

/// Criticality.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Crit {
    /// low
    Low,
    /// medium
    Medium,
    /// high
    High,
    /// critical
    Critical,
}

/// What a constraint enforces.
#[derive(Clone, Debug)]
pub enum Body {
    /// `expr`: one row per top-level conjunct.
    Expr(E),
    /// `h(next) >= (1 - gamma) h(x)`.
    Barrier {
        /// `h`
        h: E,
        /// `gamma`
        gamma: f64,
    },
    /// `V(next) <= (1 - alpha) V(x) + sigma`.
    Lyapunov {
        /// `V`
        v: E,
        /// `alpha`
        alpha: f64,
        /// `sigma`
        sigma: f64,
    },
}

/// A constraint.
#[derive(Clone, Debug)]
pub struct Constraint {
    /// Its id.
    pub id: String,
    /// Its `kind` as written (default `physical`).
    pub kind: String,
    /// Its criticality (default critical).
    pub crit: Crit,
    /// Its guard.
    pub guard: Option<E>,
    /// What it enforces.
    pub body: Body,
}

/// One row: a conjunct of a constraint, or its barrier/Lyapunov condition.
#[derive(Clone, Debug)]
pub struct Row {
    /// `id`, or `id#k` for the k-th conjunct of a conjunction.
    pub name: String,
    /// Index of its constraint.
    pub constraint: usize,
    /// The conjunct (`None` for barrier and Lyapunov rows, read from the constraint).
    pub cond: Option<E>,
}

/// A budget.
#[derive(Clone, Debug)]
pub struct Budget {
    /// Its name.
    pub name: String,
    /// Rolling window in seconds.
    pub window_secs: f64,
    /// What an executed action adds.
    pub add: E,
    /// Declared range.
    pub min: f64,
    /// Declared range.
    pub max: f64,
}

/// A fallback value.
#[derive(Clone, Debug, PartialEq)]
pub enum Lit {
    /// A number.
    Num(f64),
    /// A boolean.
    Bool(bool),
    /// An enum value, by index.
    Enum(usize),
}

/// What a policy means, as far as the oracle needs it.
#[derive(Clone, Debug)]
pub struct Model {
    /// Action variables in declaration order.
    pub actions: Vec<Var>,
    /// State variables in declaration order.
    pub states: Vec<Var>,
    /// Parameters.
    pub params: Vec<(String, f64)>,
    /// `[dynamics]`: `(state index, equation, error bound)`; `None` without the section.
    pub dynamics: Option<Vec<(usize, E, f64)>>,
    /// The fallback, one value per action.
    pub fallback: Vec<Lit>,
    /// Constraints in order.
    pub constraints: Vec<Constraint>,
    /// Rows in order.
    pub rows: Vec<Row>,
    /// Budgets in order.
    pub budgets: Vec<Budget>,
}

/// A policy the oracle cannot read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadError(pub String);

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(m: impl Into<String>) -> Result<T, ReadError> {
    Err(ReadError(m.into()))
}

type V<'i> = toml::Spanned<DeValue<'i>>;

fn entries<'a, 'i>(t: &'a DeTable<'i>) -> Vec<(&'a str, &'a V<'i>)> {
    let mut v: Vec<_> = t
        .iter()
        .map(|(k, v)| (k.get_ref().as_ref(), k.span().start, v))
        .collect();
    v.sort_by_key(|e| e.1);
    v.into_iter().map(|(k, _, v)| (k, v)).collect()
}

fn table<'a, 'i>(v: &'a V<'i>, what: &str) -> Result<&'a DeTable<'i>, ReadError> {
    match v.get_ref() {
        DeValue::Table(t) => Ok(t),
        _ => err(format!("{what} is not a table")),
    }
}

fn keys_in(t: &DeTable<'_>, allowed: &[&str], what: &str) -> Result<(), ReadError> {
    for (k, _) in entries(t) {
        if !allowed.contains(&k) {
            return err(format!("the oracle does not support key `{k}` in {what}"));
        }
    }
    Ok(())
}

/// A TOML number as the double its text rounds to.
fn number(v: &V<'_>, what: &str) -> Result<f64, ReadError> {
    let x = match v.get_ref() {
        DeValue::Integer(i) => {
            let text = i.as_str().replace('_', "");
            match i64::from_str_radix(&text, i.radix()) {
                #[allow(
                    clippy::cast_precision_loss,
                    reason = "the double an integer rounds to is what it means"
                )]
                Ok(n) => n as f64,
                Err(_) => return err(format!("{what}: integer `{text}` out of range")),
            }
        }
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) => x,
            Err(_) => return err(format!("{what}: bad float")),
        },
        _ => return err(format!("{what} is not a number")),
    };
    if x.is_finite() {
        Ok(x)
    } else {
        err(format!("{what} is not finite"))
    }
}

fn string(v: &V<'_>, what: &str) -> Result<String, ReadError> {
    match v.get_ref() {
        DeValue::String(s) => Ok(s.to_string()),
        _ => err(format!("{what} is not a string")),
    }
}

fn expr(v: &V<'_>, what: &str) -> Result<E, ReadError> {
    let s = string(v, what)?;
    parse(&s).map_err(|e| ReadError(format!("{what}: {e} in `{s}`")))
}

fn opt_num(t: &DeTable<'_>, k: &str, what: &str) -> Result<Option<f64>, ReadError> {
    t.get(k)
        .map(|v| number(v, &format!("{what}.{k}")))
        .transpose()
}

fn var_type(t: &DeTable<'_>, what: &str) -> Result<VTy, ReadError> {
    let ty = match t.get("type") {
        None => "real".to_string(),
        Some(v) => string(v, &format!("{what}.type"))?,
    };
    Ok(match ty.as_str() {
        "real" => VTy::Real,
        "int" => VTy::Int,
        "bool" => VTy::Bool,
        "text" => VTy::Text,
        "enum" => {
            let Some(v) = t.get("values") else {
                return err(format!("{what} is an enum without values"));
            };
            let DeValue::Array(a) = v.get_ref() else {
                return err(format!("{what}.values is not an array"));
            };
            let mut vals = Vec::new();
            for x in a.iter() {
                vals.push(string(x, &format!("{what}.values"))?);
            }
            VTy::Enum(vals)
        }
        other => return err(format!("{what}: unknown type `{other}`")),
    })
}

#[allow(clippy::cast_precision_loss, reason = "enum sizes are far below 2^52")]
fn enum_max(vals: &[String]) -> f64 {
    vals.len().saturating_sub(1) as f64
}

impl Model {
    /// Read a policy: one reader per section, in the spec's order.
    pub fn read(text: &str) -> Result<Model, ReadError> {
        let doc = DeTable::parse(text).map_err(|e| ReadError(format!("TOML: {e}")))?;
        let root = doc.get_ref();
        keys_in(
            root,
            &[
                "policy",
                "governor",
                "action",
                "state",
                "param",
                "dynamics",
                "fallback",
                "rule",
                "constraint",
                "budget",
                "test",
                // Runtime monitor thresholds: they never change what a row means.
                "monitor",
            ],
            "the policy",
        )?;
        let actions = read_actions(root)?;
        let states = read_states(root)?;
        let params = read_params(root)?;
        let dynamics = read_dynamics(root, &states)?;
        let fallback = read_fallback(root, &actions)?;
        let budgets = read_budgets(root)?;
        read_rules(root)?;
        let (constraints, rows) = read_constraints(root)?;
        Ok(Model {
            actions,
            states,
            params,
            dynamics,
            fallback,
            constraints,
            rows,
            budgets,
        })
    }

    /// Index of an action variable.
    pub fn action(&self, name: &str) -> Option<usize> {
        self.actions.iter().position(|a| a.name == name)
    }

    /// Index of a state variable.
    pub fn state(&self, name: &str) -> Option<usize> {
        self.states.iter().position(|s| s.name == name)
    }

    /// The constraint of a row.
    pub fn constraint_of(&self, row: &Row) -> Option<&Constraint> {
        self.constraints.get(row.constraint)
    }
}

/// A window length: a number and `s`, `m`/`min`, `h` or `d`.
fn window(s: &str) -> Option<f64> {
    let s = s.trim();
    let at = s.find(|c: char| c.is_ascii_alphabetic())?;
    let n: f64 = s.get(..at)?.trim().parse().ok()?;
    let unit = match s.get(at..)? {
        "s" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        _ => return None,
    };
    (n.is_finite() && n > 0.0).then_some(n * unit)
}

/// `[action.*]`: each action's type and range (an int's range rounded inward).
fn read_actions(root: &DeTable<'_>) -> Result<Vec<Var>, ReadError> {
    let mut actions = Vec::new();
    let Some(v) = root.get("action") else {
        return Ok(actions);
    };
    for (n, av) in entries(table(v, "[action]")?) {
        let what = format!("[action.{n}]");
        let t = table(av, &what)?;
        keys_in(
            t,
            // `repairable` says what a repair may change, not what is safe: Tier 1's
            // verdicts (what the oracle checks) do not depend on it.
            &[
                "type",
                "min",
                "max",
                "values",
                "description",
                "unit",
                "repairable",
            ],
            &what,
        )?;
        let ty = var_type(t, &what)?;
        let (min, max) = match &ty {
            VTy::Real | VTy::Int => {
                let (Some(a), Some(b)) = (opt_num(t, "min", &what)?, opt_num(t, "max", &what)?)
                else {
                    return err(format!("{what} needs min and max"));
                };
                if ty == VTy::Int {
                    (a.ceil(), b.floor())
                } else {
                    (a, b)
                }
            }
            VTy::Bool => (0.0, 1.0),
            VTy::Enum(v) => (0.0, enum_max(v)),
            VTy::Text => return err(format!("{what}: text actions do not exist")),
        };
        actions.push(Var {
            name: n.to_string(),
            ty,
            min,
            max,
            noise: 0.0,
        });
    }
    Ok(actions)
}

/// `[state.*]`: each state's type, range and default noise. `max_noise` (the runtime
/// monitor's limit on a reported half-width) is accepted and ignored: it refuses states,
/// it never changes what a row means.
fn read_states(root: &DeTable<'_>) -> Result<Vec<Var>, ReadError> {
    let mut states = Vec::new();
    let Some(v) = root.get("state") else {
        return Ok(states);
    };
    for (n, sv) in entries(table(v, "[state]")?) {
        let what = format!("[state.{n}]");
        let t = table(sv, &what)?;
        keys_in(
            t,
            &[
                "type",
                "min",
                "max",
                "values",
                "noise",
                "max_noise",
                "description",
                "unit",
                "required",
            ],
            &what,
        )?;
        let ty = var_type(t, &what)?;
        let (min, max, noise) = match &ty {
            VTy::Real | VTy::Int => (
                opt_num(t, "min", &what)?.unwrap_or(f64::NEG_INFINITY),
                opt_num(t, "max", &what)?.unwrap_or(f64::INFINITY),
                opt_num(t, "noise", &what)?.unwrap_or(0.0).abs(),
            ),
            VTy::Bool => (0.0, 1.0, 0.0),
            VTy::Enum(v) => (0.0, enum_max(v), 0.0),
            VTy::Text => (0.0, 0.0, 0.0),
        };
        states.push(Var {
            name: n.to_string(),
            ty,
            min,
            max,
            noise,
        });
    }
    Ok(states)
}

/// `[param]`: named numbers.
fn read_params(root: &DeTable<'_>) -> Result<Vec<(String, f64)>, ReadError> {
    let mut params = Vec::new();
    if let Some(v) = root.get("param") {
        for (n, pv) in entries(table(v, "[param]")?) {
            params.push((n.to_string(), number(pv, &format!("param {n}"))?));
        }
    }
    Ok(params)
}

/// `[dynamics]`'s equations: `(state index, equation, error bound)`.
type Equations = Vec<(usize, E, f64)>;

/// `[dynamics]`: one equation per state it names, with its `error_bound` (0 if none).
fn read_dynamics(root: &DeTable<'_>, states: &[Var]) -> Result<Option<Equations>, ReadError> {
    let Some(v) = root.get("dynamics") else {
        return Ok(None);
    };
    let t = table(v, "[dynamics]")?;
    let mut bounds: Vec<(String, f64)> = Vec::new();
    if let Some(eb) = t.get("error_bound") {
        for (n, x) in entries(table(eb, "error_bound")?) {
            bounds.push((n.to_string(), number(x, "error bound")?.abs()));
        }
    }
    let mut eqs = Vec::new();
    for (n, ev) in entries(t) {
        if n == "error_bound" {
            continue;
        }
        let Some(si) = states.iter().position(|s: &Var| s.name == n) else {
            return err(format!("[dynamics] names `{n}`, not a state"));
        };
        let e = expr(ev, &format!("dynamics of {n}"))?;
        let b = bounds.iter().find(|b| b.0 == n).map_or(0.0, |b| b.1);
        eqs.push((si, e, b));
    }
    Ok(Some(eqs))
}

/// `[fallback]`: one value per action, of its type.
fn read_fallback(root: &DeTable<'_>, actions: &[Var]) -> Result<Vec<Lit>, ReadError> {
    let mut fallback = Vec::new();
    let ft = match root.get("fallback") {
        Some(v) => Some(table(v, "[fallback]")?),
        None => None,
    };
    for a in actions {
        let Some(fv) = ft.and_then(|t| t.get(a.name.as_str())) else {
            return err(format!("[fallback] has no value for {}", a.name));
        };
        fallback.push(match (&a.ty, fv.get_ref()) {
            (VTy::Bool, DeValue::Boolean(b)) => Lit::Bool(*b),
            (VTy::Enum(vals), DeValue::String(s)) => match vals.iter().position(|v| v == s) {
                Some(i) => Lit::Enum(i),
                None => return err(format!("fallback: `{s}` is not a value of {}", a.name)),
            },
            (VTy::Real | VTy::Int, _) => Lit::Num(number(fv, "fallback")?),
            _ => return err(format!("fallback of {}: wrong type", a.name)),
        });
    }
    Ok(fallback)
}

/// `[budget.*]`: window, what an action adds, range.
fn read_budgets(root: &DeTable<'_>) -> Result<Vec<Budget>, ReadError> {
    let mut budgets = Vec::new();
    let Some(v) = root.get("budget") else {
        return Ok(budgets);
    };
    for (n, bv) in entries(table(v, "[budget]")?) {
        let what = format!("[budget.{n}]");
        let t = table(bv, &what)?;
        keys_in(t, &["window", "add", "min", "max", "description"], &what)?;
        let w = match t.get("window") {
            Some(w) => string(w, "window")?,
            None => return err(format!("{what} has no window")),
        };
        let window_secs = window(&w).ok_or_else(|| ReadError(format!("bad window {w}")))?;
        let Some(addv) = t.get("add") else {
            return err(format!("{what} has no add"));
        };
        budgets.push(Budget {
            name: n.to_string(),
            window_secs,
            add: expr(addv, &format!("{what}.add"))?,
            min: opt_num(t, "min", &what)?.unwrap_or(0.0),
            max: opt_num(t, "max", &what)?.unwrap_or(f64::INFINITY),
        });
    }
    Ok(budgets)
}

/// `[[rule]]`: rules decide verdicts, not safety; their conditions are still parsed, so a
/// syntax the oracle lacks is found.
fn read_rules(root: &DeTable<'_>) -> Result<(), ReadError> {
    let Some(v) = root.get("rule") else {
        return Ok(());
    };
    let DeValue::Array(rs) = v.get_ref() else {
        return err("[[rule]] is not an array");
    };
    for r in rs.iter() {
        if let Some(w) = table(r, "[[rule]]")?.get("when") {
            expr(w, "rule when")?;
        }
    }
    Ok(())
}

/// `[[constraint]]`: each constraint and its rows, in order.
fn read_constraints(root: &DeTable<'_>) -> Result<(Vec<Constraint>, Vec<Row>), ReadError> {
    let mut constraints = Vec::new();
    let mut rows = Vec::new();
    let Some(v) = root.get("constraint") else {
        return Ok((constraints, rows));
    };
    let DeValue::Array(cs) = v.get_ref() else {
        return err("[[constraint]] is not an array");
    };
    for cv in cs.iter() {
        let c = read_constraint(table(cv, "[[constraint]]")?)?;
        push_rows(&c, constraints.len(), &mut rows);
        constraints.push(c);
    }
    Ok((constraints, rows))
}

/// One `[[constraint]]` table.
fn read_constraint(t: &DeTable<'_>) -> Result<Constraint, ReadError> {
    keys_in(
        t,
        &[
            "id",
            "kind",
            "criticality",
            "expr",
            "barrier",
            "gamma",
            "lyapunov",
            "alpha",
            "sigma",
            "description",
            "tolerance",
            "weight",
            "when",
            "on_violation",
            "lipschitz",
        ],
        "[[constraint]]",
    )?;
    let id = match t.get("id") {
        Some(i) => string(i, "id")?,
        None => return err("a constraint without id"),
    };
    let kind = match t.get("kind") {
        Some(k) => string(k, "kind")?,
        None => "physical".to_string(),
    };
    let crit = match t.get("criticality").map(|c| string(c, "criticality")) {
        None => Crit::Critical,
        Some(c) => match c?.as_str() {
            "critical" => Crit::Critical,
            "high" => Crit::High,
            "medium" => Crit::Medium,
            "low" => Crit::Low,
            o => return err(format!("criticality `{o}`")),
        },
    };
    let guard = t.get("when").map(|w| expr(w, "when")).transpose()?;
    let body = constraint_body(t, &kind, &format!("constraint {id}"))?;
    Ok(Constraint {
        id,
        kind,
        crit,
        guard,
        body,
    })
}

/// What a constraint of this `kind` enforces.
fn constraint_body(t: &DeTable<'_>, kind: &str, what: &str) -> Result<Body, ReadError> {
    let needed = |key: &str| {
        t.get(key)
            .ok_or_else(|| ReadError(format!("{what}: no {key}")))
    };
    Ok(match kind {
        "barrier" => Body::Barrier {
            h: expr(needed("barrier")?, "barrier")?,
            gamma: opt_num(t, "gamma", what)?
                .ok_or_else(|| ReadError(format!("{what}: no gamma")))?,
        },
        "lyapunov" => Body::Lyapunov {
            v: expr(needed("lyapunov")?, "lyapunov")?,
            alpha: opt_num(t, "alpha", what)?
                .ok_or_else(|| ReadError(format!("{what}: no alpha")))?,
            sigma: opt_num(t, "sigma", what)?.unwrap_or(0.0),
        },
        "physical" | "resource" | "authority" | "invariant" | "preference" => {
            Body::Expr(expr(needed("expr")?, "expr")?)
        }
        o => return err(format!("{what}: unknown kind `{o}`")),
    })
}

/// A constraint's rows: one per top-level conjunct (`id#k` when more than one), or one
/// barrier/Lyapunov row.
fn push_rows(c: &Constraint, ci: usize, rows: &mut Vec<Row>) {
    match &c.body {
        Body::Expr(e) => {
            let parts = conjuncts(e);
            let multi = parts.len() > 1;
            for (j, p) in parts.into_iter().enumerate() {
                rows.push(Row {
                    name: if multi {
                        format!("{}#{}", c.id, j + 1)
                    } else {
                        c.id.clone()
                    },
                    constraint: ci,
                    cond: Some(p.clone()),
                });
            }
        }
        Body::Barrier { .. } | Body::Lyapunov { .. } => rows.push(Row {
            name: c.id.clone(),
            constraint: ci,
            cond: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::Model;

    const BASE: &str = r#"
[policy]
name = "t"

[action.speed]
min = 0
max = 2

[state.x]
min = -10
max = 10
noise = 0.1

[fallback]
speed = 0

[[constraint]]
id = "near"
expr = "x + speed <= 5 and speed >= 0"
"#;

    /// `[monitor]` and a state's `max_noise` are runtime-monitor settings: the oracle
    /// accepts them and reads the same model as without them.
    #[test]
    fn monitor_settings_are_accepted_and_change_nothing() {
        let with = BASE.replace("noise = 0.1\n", "noise = 0.1\nmax_noise = 0.5\n")
            + "\n[monitor]\nrecover_after = 10\nfallback_mode = \"freeze\"\n";
        assert_ne!(with, BASE);
        let plain = Model::read(BASE).map(|m| format!("{m:?}"));
        let monitored = Model::read(&with).map(|m| format!("{m:?}"));
        assert!(plain.is_ok(), "{plain:?}");
        assert_eq!(plain, monitored);
    }

    /// Other unknown keys are still refused.
    #[test]
    fn an_unknown_section_or_state_key_is_still_refused() {
        let section = BASE.to_string() + "\n[monitors]\nrecover_after = 10\n";
        assert!(Model::read(&section).is_err());
        let key = BASE.replace("noise = 0.1\n", "noise = 0.1\nmax_nois = 0.5\n");
        assert!(Model::read(&key).is_err());
    }
}
