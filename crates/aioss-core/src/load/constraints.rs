//! `[[constraint]]`: the constraints of the lattice. Each is one or more rows: a
//! comparison, each comparison of a conjunction (rows `id#1`, `id#2`, ...), a boolean
//! condition, or, for a barrier or Lyapunov function, its condition over `next.`.

use std::collections::{HashMap, HashSet};
use std::ops::{Bound, RangeBounds};

use toml::de::DeTable;

use super::reader::{array_of_tables, span_of, Loader, Val, CRITICALITIES};
use super::scope::{Names, NextState, Scope};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::expr::ast::{BinOp, CmpOp, Expr, ExprKind};
use crate::expr::typeck::{self, Op2, Term, Ty};
use crate::interval::Interval;
use crate::policy::{Constraint, ConstraintKind, Criticality, OnViolation, RowDef, Sense};

const KEYS: &[&str] = &[
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
];

/// The constraints, in order; their ids differ from each other and from the rules'
/// (`rule_ids`), and so do the names of their rows.
pub(super) fn constraints(
    l: &mut Loader<'_>,
    root: &DeTable<'_>,
    names: &mut Names,
    rule_ids: &HashMap<String, Span>,
) -> Vec<Constraint> {
    let mut constraints = Vec::new();
    let mut ids = HashMap::new();
    if let Some(v) = root.get("constraint") {
        for (k, cv) in array_of_tables(l, v, "constraint") {
            if let Some(c) = constraint(l, k, cv, names, rule_ids, &mut ids) {
                constraints.push(c);
            }
        }
    }
    unique_row_names(l, &constraints);
    constraints
}

/// The constraint being read, for the functions that read its parts.
struct Current<'a, 'i> {
    table: &'a DeTable<'i>,
    id: &'a str,
    /// The span of its id (of the whole table when it has none).
    at: Span,
    /// `constraint `id``, for messages.
    section: &'a str,
}

/// What a constraint says besides its rows (`None`: an error was reported).
struct Settings {
    kind: Option<ConstraintKind>,
    criticality: Option<Criticality>,
    description: Option<String>,
    tolerance: f64,
    weight: f64,
    on_violation: OnViolation,
    lipschitz: Option<f64>,
}

/// Constraint `k` (from 0), its id added to `ids`; `None` when it cannot be built (its
/// errors are reported).
fn constraint(
    l: &mut Loader<'_>,
    k: usize,
    cv: &Val<'_>,
    names: &mut Names,
    rule_ids: &HashMap<String, Span>,
    ids: &mut HashMap<String, Span>,
) -> Option<Constraint> {
    let t = l.table(cv, "constraint")?;
    let cspan = span_of(cv);
    let sec0 = format!("[[constraint]] {}", k + 1);
    l.check_keys(t, KEYS, &sec0);
    let id = if l.required(t, "id", &sec0, cspan) {
        l.string(t, "id", &sec0)
    } else {
        None
    };
    let (id, idspan) = id.unwrap_or((format!("constraint-{}", k + 1), cspan));
    unique_id(l, &id, idspan, rule_ids, ids);
    let sec = format!("constraint `{id}`");
    let c = Current {
        table: t,
        id: &id,
        at: idspan,
        section: &sec,
    };
    let s = settings(l, &c);
    let guard = t
        .get("when")
        .and_then(|w| l.expr(w, "`when`"))
        .and_then(|e| {
            typeck::check(&e, Ty::Bool, &mut Scope::new(names, NextState::Readable))
                .map_err(|err| l.err(err))
                .ok()
        });
    let kind = s.kind?;
    let main = main_key(l, t, kind);
    if !l.required(t, main, &sec, idspan) {
        return None;
    }
    let e = l.expr(t.get(main)?, &format!("`{main}`"))?;
    let rows = match kind {
        ConstraintKind::Barrier | ConstraintKind::Lyapunov => {
            vec![decrease_row(l, &c, names, kind, main, &e)?]
        }
        _ => comparison_rows(l, &c, names, main, &e),
    };
    Some(Constraint {
        id,
        kind,
        criticality: s.criticality?,
        description: s.description,
        tolerance: s.tolerance,
        weight: s.weight,
        on_violation: s.on_violation,
        lipschitz: s.lipschitz,
        guard,
        rows,
        span: idspan,
    })
}

/// A constraint id is unique, and no rule's id: decisions name both by id.
fn unique_id(
    l: &mut Loader<'_>,
    id: &str,
    at: Span,
    rule_ids: &HashMap<String, Span>,
    ids: &mut HashMap<String, Span>,
) {
    if let Some(first) = rule_ids.get(id) {
        let (line, _) = crate::error::line_col(l.src, first.start);
        l.err(PolicyError::new(ErrorKind::DuplicateId, at, format!("constraint id `{id}` is also a rule id")).help(format!("the rule is on line {line}; decisions name rules and constraints by id, so they must differ")));
    } else if let Some(first) = ids.get(id) {
        let (line, _) = crate::error::line_col(l.src, first.start);
        l.err(
            PolicyError::new(
                ErrorKind::DuplicateId,
                at,
                format!("constraint id `{id}` is used twice"),
            )
            .help(format!(
                "the first use is on line {line}; constraint ids must be unique"
            )),
        );
    } else {
        ids.insert(id.to_string(), at);
    }
}

/// `kind`, `criticality`, `description`, `tolerance`, `weight`, `on_violation` and
/// `lipschitz`.
fn settings(l: &mut Loader<'_>, c: &Current<'_, '_>) -> Settings {
    let (t, id, sec) = (c.table, c.id, c.section);
    let kinds = ConstraintKind::ALL.map(|k| (k.as_str(), k));
    let kind = l.one_of_or(t, "kind", sec, &kinds, ConstraintKind::Physical);
    let criticality = l.one_of_or(t, "criticality", sec, &CRITICALITIES, Criticality::Critical);
    // INVARIANT (barriers-critical): G2 (forward invariance) rests on every barrier
    // row holding at every executed action, so the CRE may never relax one.
    if kind == Some(ConstraintKind::Barrier)
        && criticality.is_some_and(|c| c != Criticality::Critical)
    {
        let sp = t.get("criticality").map_or(c.at, span_of);
        l.err(
            PolicyError::new(
                ErrorKind::BarrierNotCritical,
                sp,
                format!("barrier constraint `{id}` must be critical"),
            )
            .help("forward invariance (G2) rests on every barrier row, so none may be relaxed: remove `criticality` (critical is the default) and any `tolerance`; a soft wish to keep clear is a `preference` constraint"),
        );
    }
    let description = l.string(t, "description", sec).map(|x| x.0);
    let mut tolerance = 0.0;
    if let Some((x, sp)) = l.number(t, "tolerance", sec) {
        if criticality == Some(Criticality::Critical) {
            l.err(PolicyError::new(ErrorKind::CriticalTolerance, sp, format!("critical constraint `{id}` has a tolerance"))
                .help("critical constraints are never relaxed: remove `tolerance`, or lower `criticality` to high, medium or low"));
        } else if x < 0.0 {
            l.must_be(sp, "tolerance", "zero or more");
        }
        tolerance = x.abs();
    }
    let weight = l
        .number_in(t, "weight", sec, 0.0.., "zero or more")
        .unwrap_or(1.0);
    let on_violations = [
        ("repair", OnViolation::Repair),
        ("hold", OnViolation::Hold),
        ("block", OnViolation::Block),
    ];
    let on_violation = l
        .one_of(t, "on_violation", sec, &on_violations)
        .unwrap_or(OnViolation::Repair);
    let above_zero = (Bound::Excluded(0.0), Bound::Unbounded);
    let lipschitz = l.number_in(t, "lipschitz", sec, above_zero, "above zero");
    Settings {
        kind,
        criticality,
        description,
        tolerance,
        weight,
        on_violation,
        lipschitz,
    }
}

/// The key that gives a constraint of `kind` (`expr`, `barrier` or `lyapunov`); the keys
/// that belong to other kinds are errors.
fn main_key(l: &mut Loader<'_>, t: &DeTable<'_>, kind: ConstraintKind) -> &'static str {
    let (main, extra): (&str, &[&str]) = match kind {
        ConstraintKind::Barrier => ("barrier", &["gamma"]),
        ConstraintKind::Lyapunov => ("lyapunov", &["alpha", "sigma"]),
        _ => ("expr", &[]),
    };
    for other in ["expr", "barrier", "lyapunov", "gamma", "alpha", "sigma"] {
        if other != main && !extra.contains(&other) {
            if let Some(ov) = t.get(other) {
                l.err(
                    PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(ov),
                        format!("a {} constraint takes no `{other}`", kind.as_str()),
                    )
                    .help(format!(
                        "a {} constraint is given by `{main}`{}",
                        kind.as_str(),
                        if extra.is_empty() {
                            String::new()
                        } else {
                            format!(
                                " and {}",
                                extra
                                    .iter()
                                    .map(|e| format!("`{e}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            )
                        }
                    )),
                );
            }
        }
    }
    main
}

/// The row of a barrier or Lyapunov function `e`, given by key `main`: the function is
/// written over the current state, and `h(next)` substitutes each state's `[dynamics]`
/// equation for it.
fn decrease_row(
    l: &mut Loader<'_>,
    c: &Current<'_, '_>,
    names: &mut Names,
    kind: ConstraintKind,
    main: &str,
    e: &Expr,
) -> Option<RowDef> {
    let id = c.id;
    if names.next.is_none() {
        l.err(
            PolicyError::new(
                ErrorKind::NeedsDynamics,
                c.at,
                format!(
                    "{} constraint `{id}` needs a [dynamics] section",
                    kind.as_str()
                ),
            )
            .help("add [dynamics] with an equation for each state variable it reads"),
        );
        return None;
    }
    let h = match typeck::check(e, Ty::Num, &mut Scope::new(names, NextState::Refused)) {
        Ok(h) => h,
        Err(err) => {
            l.err(if err.kind == ErrorKind::TypeMismatch && err.message.starts_with("`next.`") {
                PolicyError::new(ErrorKind::TypeMismatch, err.span, format!("write `{main}` over the current state; the constraint applies it to `next.` itself"))
            } else {
                err
            });
            return None;
        }
    };
    // h(next): every state the function reads must have an equation.
    let next = names.next.as_ref();
    let state_of = |slot: u32| {
        names
            .states
            .iter()
            .enumerate()
            .find(|(_, s)| s.slot == Some(slot))
    };
    let mut missing = Vec::new();
    h.inputs(&mut |slot| {
        if let Some((si, s)) = state_of(slot) {
            if !next.is_some_and(|m| m.contains_key(&si)) && !missing.contains(&s.name) {
                missing.push(s.name.clone());
            }
        }
    });
    if !missing.is_empty() {
        l.err(
            PolicyError::new(
                ErrorKind::NeedsDynamics,
                e.span,
                format!(
                    "{} `{id}` reads {} with no [dynamics] equation",
                    kind.as_str(),
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
            .help("add an equation for each state variable the function reads"),
        );
        return None;
    }
    let state_term = |slot: u32| -> Option<Term> { next?.get(&state_of(slot)?.0).cloned() };
    let h_next = h.substitute(&state_term);
    Some(if kind == ConstraintKind::Barrier {
        barrier_row(l, c, e.span, h, h_next)
    } else {
        lyapunov_row(l, c, e.span, h, h_next)
    })
}

/// `(1 - gamma) h(x) <= h(next)`: the row of barrier function `h` (at `span`), whose safe
/// set is `h(x) >= 0`.
fn barrier_row(
    l: &mut Loader<'_>,
    c: &Current<'_, '_>,
    span: Span,
    h: Term,
    h_next: Term,
) -> RowDef {
    let gamma = coefficient(l, c, "gamma", 0.0..=1.0, "in [0, 1]", None);
    if gamma == 0.0 && c.table.contains_key("gamma") {
        if let Some(gv) = c.table.get("gamma") {
            l.err(
                PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(gv),
                    "`gamma` must be above zero",
                )
                .help("gamma is in (0, 1]"),
            );
        }
    }
    let k = Interval::point(1.0).sub(Interval::point(gamma));
    RowDef {
        name: c.id.to_string(),
        sense: Sense::Le,
        lhs: Term::bin(Op2::Mul, Term::Const(k), h.clone()),
        rhs: h_next,
        span,
        safe_set: Some(h),
    }
}

/// `V(next) <= (1 - alpha) V(x) + sigma`: the row of Lyapunov function `V` (at `span`).
fn lyapunov_row(
    l: &mut Loader<'_>,
    c: &Current<'_, '_>,
    span: Span,
    v: Term,
    v_next: Term,
) -> RowDef {
    let alpha = coefficient(l, c, "alpha", 0.0..1.0, "in [0, 1)", None);
    let sigma = coefficient(l, c, "sigma", 0.0..f64::INFINITY, "in [0, inf)", Some(0.0));
    let k = Interval::point(1.0).sub(Interval::point(alpha));
    let rhs = Term::bin(
        Op2::Add,
        Term::bin(Op2::Mul, Term::Const(k), v),
        Term::Const(Interval::point(sigma)),
    );
    RowDef {
        name: c.id.to_string(),
        sense: Sense::Le,
        lhs: v_next,
        rhs,
        span,
        safe_set: None,
    }
}

/// Coefficient `key` of a barrier or Lyapunov function: out of `range` an error (saying
/// it must be `must`) but still its value; absent, `default`, or an error when there is
/// none.
fn coefficient(
    l: &mut Loader<'_>,
    c: &Current<'_, '_>,
    key: &str,
    range: impl RangeBounds<f64>,
    must: &str,
    default: Option<f64>,
) -> f64 {
    match l.number(c.table, key, c.section) {
        Some((x, sp)) => {
            if !range.contains(&x) {
                l.must_be(sp, key, must);
            }
            x
        }
        None => match default {
            Some(d) => d,
            None => {
                l.required(c.table, key, c.section, c.at);
                0.0
            }
        },
    }
}

/// The rows of `e` (given by key `main`): one per conjunct, a numeric comparison as
/// `lhs OP rhs`, anything else a boolean condition.
fn comparison_rows(
    l: &mut Loader<'_>,
    c: &Current<'_, '_>,
    names: &mut Names,
    main: &str,
    e: &Expr,
) -> Vec<RowDef> {
    let id = c.id;
    let mut rows = Vec::new();
    let mut parts = Vec::new();
    conjuncts(e, &mut parts);
    let multi = parts.len() > 1;
    for (j, part) in parts.iter().enumerate() {
        let name = if multi {
            format!("{id}#{}", j + 1)
        } else {
            id.to_string()
        };
        let mut sc = Scope::new(names, NextState::Readable);
        let numeric = match &part.kind {
            ExprKind::Cmp(op, a, b) if !symbolic(a) && !symbolic(b) => {
                match (typeck::typed(a, &mut sc), typeck::typed(b, &mut sc)) {
                    (Ok((ta, Ty::Num)), Ok((tb, Ty::Num))) => Some((*op, ta, tb)),
                    _ => None,
                }
            }
            _ => None,
        };
        let row = match numeric {
            Some((op, ta, tb)) => {
                let (sense, lhs, rhs) = match op {
                    CmpOp::Le => (Sense::Le, ta, tb),
                    CmpOp::Lt => (Sense::Lt, ta, tb),
                    CmpOp::Ge => (Sense::Le, tb, ta),
                    CmpOp::Gt => (Sense::Lt, tb, ta),
                    CmpOp::Eq => (Sense::Eq, ta, tb),
                    CmpOp::Ne => (Sense::Ne, ta, tb),
                };
                RowDef {
                    name,
                    sense,
                    lhs,
                    rhs,
                    span: part.span,
                    safe_set: None,
                }
            }
            None => match typeck::check(part, Ty::Bool, &mut sc) {
                Ok(cond) => RowDef {
                    name,
                    sense: Sense::Bool,
                    lhs: cond,
                    rhs: Term::Const(Interval::TRUE),
                    span: part.span,
                    safe_set: None,
                },
                Err(err) => {
                    l.err(if err.kind == ErrorKind::NotBoolean {
                        PolicyError::new(ErrorKind::NotBoolean, err.span, format!("`{main}` of constraint `{id}` must be a comparison, found a number"))
                            .help("write a comparison such as `vx^2 + vy^2 <= 2.25`")
                    } else {
                        err
                    });
                    continue;
                }
            },
        };
        rows.push(row);
    }
    rows
}

/// Split a top-level conjunction into its conjuncts.
fn conjuncts(e: &Expr, out: &mut Vec<Expr>) {
    if let ExprKind::Binary(BinOp::And, a, b) = &e.kind {
        conjuncts(a, out);
        conjuncts(b, out);
    } else {
        out.push(e.clone());
    }
}

/// Does an expression mention an agent attribute or a string (which makes it a condition,
/// not a numeric comparison)?
fn symbolic(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Str(_) => true,
        ExprKind::Name(p) => p.first().is_some_and(|f| f == "agent"),
        _ => false,
    }
}

/// Row names are unique too (`a#1` could clash with a constraint called `a#1`).
fn unique_row_names(l: &mut Loader<'_>, constraints: &[Constraint]) {
    let mut row_names = HashSet::new();
    for c in constraints {
        for r in &c.rows {
            if !row_names.insert(r.name.clone()) && c.rows.len() > 1 {
                l.err(
                    PolicyError::new(
                        ErrorKind::DuplicateId,
                        c.span,
                        format!(
                            "row `{}` of constraint `{}` has the id of another constraint",
                            r.name, c.id
                        ),
                    )
                    .help("rename the constraint"),
                );
            }
        }
    }
}
