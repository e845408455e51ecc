//! The policy loader: TOML text → validated [`Policy`].
//!
//! The loader collects every error it can (a policy author fixes them in one pass) and
//! refuses the policy whole if there is any. Validation happens here, once: the decision
//! path relies on everything checked below and never re-checks it.

mod actions;
mod budgets;
mod dynamics;
mod fallback;
mod governor;
mod params;
mod policy;
mod reader;
mod rules;
mod scope;
mod states;

use std::collections::{HashMap, HashSet};

use toml::de::{DeTable, DeValue};

use crate::error::{ErrorKind, PolicyError, PolicyErrors, Span};
use crate::expr::ast::{BinOp, Expr, ExprKind};
use crate::expr::typeck::{self, Term, Ty};
use crate::interval::Interval;
use crate::lattice::Lattice;
use crate::policy::*;
use reader::{array_of_tables, entries, span_of, Loader, Val, CRITICALITIES};
use scope::{Enums, Names, NextState, Scope};

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

/// The stack the loader runs on (see [`load`]).
pub const LOAD_STACK_BYTES: usize = 32 << 20;

/// Load a policy. `file` is used only in error messages; the core does no I/O.
///
/// Loading runs on a thread of its own with a [`LOAD_STACK_BYTES`] stack: type checking,
/// compiling and certifying recurse once per level of an expression's tree (at most
/// [`crate::expr::parse::MAX_HEIGHT`] levels), and the caller's thread may have as little
/// as 2 MiB (a server's reload, a test); a debug build's frames need several times that
/// at the limit. The stack is reserved, not touched, so its size costs nothing until used.
/// If no thread can be started, loading runs on the caller's thread.
pub fn load(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    std::thread::scope(|s| {
        let worker = std::thread::Builder::new()
            .name("aioss-load".to_string())
            .stack_size(LOAD_STACK_BYTES)
            .spawn_scoped(s, || load_here(file, source));
        match worker.map(std::thread::ScopedJoinHandle::join) {
            Ok(Ok(r)) => r,
            // A panic in the loader is a bug; re-raising it keeps it one.
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => load_here(file, source),
        }
    })
}

/// [`load`] on the caller's thread.
fn load_here(file: &str, source: &str) -> Result<Policy, PolicyErrors> {
    let mut l = Loader {
        src: source,
        errors: Vec::new(),
    };
    let policy = load_inner(&mut l);
    let mut errors = l.errors;
    match policy {
        Some(p) if errors.is_empty() => Ok(p),
        _ => {
            errors.sort_by_key(|e| e.span.start);
            if errors.is_empty() {
                errors.push(PolicyError::new(
                    ErrorKind::InvalidValue,
                    Span::default(),
                    "the policy could not be loaded",
                ));
            }
            Err(PolicyErrors {
                file: file.to_string(),
                text: source.to_string(),
                errors,
            })
        }
    }
}

const TOP: &[&str] = &[
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
];

#[expect(
    clippy::too_many_lines,
    reason = "one pass over the sections, in the order the spec lists them"
)]
fn load_inner(l: &mut Loader<'_>) -> Option<Policy> {
    let doc = match DeTable::parse(l.src) {
        Ok(d) => d,
        Err(e) => {
            let sp = e
                .span()
                .map_or(Span::default(), |r| Span::new(r.start, r.end));
            let msg = e.message().trim().to_string();
            let msg =
                msg.get(..1).map_or(String::new(), str::to_lowercase) + msg.get(1..).unwrap_or("");
            l.err(
                PolicyError::new(ErrorKind::Toml, sp, format!("invalid TOML: {msg}"))
                    .help("fix the TOML syntax at this position"),
            );
            return None;
        }
    };
    let root = doc.get_ref();
    l.check_keys(root, TOP, "the policy file");

    let header = policy::header(l, root);

    let mut enums = Enums::default();
    let (mut actions, enum_of_action) = actions::actions(l, root, &mut enums);
    let (mut states, enum_of_state) = states::states(l, root, &actions, &mut enums);
    let params = params::params(l, root, &actions, &states);
    let mut next_slot = scope::assign_slots(&mut actions, &mut states);

    let declared = budgets::declare(l, root, &mut next_slot);
    let mut names = Names {
        actions,
        states,
        params,
        enum_of_action,
        enum_of_state,
        enums,
        budgets: declared.iter().map(|b| (b.name.clone(), b.slot)).collect(),
        next: None,
        next_slot,
        attrs: Vec::new(),
        symbols: Vec::new(),
    };

    let (dynamics, next) = dynamics::dynamics(l, root, &mut names);
    names.next = next;

    let budgets = budgets::budgets(l, declared, &mut names);

    let gov = governor::settings(l, root, &names.actions);

    let fallback = fallback::fallback(l, root, &names.actions);

    let (rules, ids) = rules::rules(l, root, &mut names);

    // [[constraint]]
    let mut constraints: Vec<Constraint> = Vec::new();
    let mut cids: HashMap<String, Span> = HashMap::new();
    let kinds = ConstraintKind::ALL.map(|k| (k.as_str(), k));
    if let Some(v) = root.get("constraint") {
        for (k, cv) in array_of_tables(l, v, "constraint") {
            let Some(t) = l.table(cv, "constraint") else {
                continue;
            };
            let cspan = span_of(cv);
            let sec0 = format!("[[constraint]] {}", k + 1);
            l.check_keys(
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
                &sec0,
            );
            let id = if l.required(t, "id", &sec0, cspan) {
                l.string(t, "id", &sec0)
            } else {
                None
            };
            let (id, idspan) = id.unwrap_or((format!("constraint-{}", k + 1), cspan));
            if let Some(first) = ids.get(&id) {
                let (line, _) = crate::error::line_col(l.src, first.start);
                l.err(PolicyError::new(ErrorKind::DuplicateId, idspan, format!("constraint id `{id}` is also a rule id")).help(format!("the rule is on line {line}; decisions name rules and constraints by id, so they must differ")));
            } else if let Some(first) = cids.get(&id) {
                let (line, _) = crate::error::line_col(l.src, first.start);
                l.err(
                    PolicyError::new(
                        ErrorKind::DuplicateId,
                        idspan,
                        format!("constraint id `{id}` is used twice"),
                    )
                    .help(format!(
                        "the first use is on line {line}; constraint ids must be unique"
                    )),
                );
            } else {
                cids.insert(id.clone(), idspan);
            }
            let sec = format!("constraint `{id}`");
            let kind = if t.contains_key("kind") {
                l.one_of(t, "kind", &sec, &kinds)
            } else {
                Some(ConstraintKind::Physical)
            };
            let criticality = if t.contains_key("criticality") {
                l.one_of(t, "criticality", &sec, &CRITICALITIES)
            } else {
                Some(Criticality::Critical)
            };
            // INVARIANT (barriers-critical): G2 (forward invariance) rests on every barrier
            // row holding at every executed action, so the CRE may never relax one.
            if kind == Some(ConstraintKind::Barrier)
                && criticality.is_some_and(|c| c != Criticality::Critical)
            {
                let sp = t.get("criticality").map_or(idspan, span_of);
                l.err(
                    PolicyError::new(
                        ErrorKind::BarrierNotCritical,
                        sp,
                        format!("barrier constraint `{id}` must be critical"),
                    )
                    .help("forward invariance (G2) rests on every barrier row, so none may be relaxed: remove `criticality` (critical is the default) and any `tolerance`; a soft wish to keep clear is a `preference` constraint"),
                );
            }
            let description = l.string(t, "description", &sec).map(|x| x.0);
            let mut tolerance = 0.0;
            if let Some((x, sp)) = l.number(t, "tolerance", &sec) {
                if criticality == Some(Criticality::Critical) {
                    l.err(PolicyError::new(ErrorKind::CriticalTolerance, sp, format!("critical constraint `{id}` has a tolerance"))
                        .help("critical constraints are never relaxed: remove `tolerance`, or lower `criticality` to high, medium or low"));
                } else if x < 0.0 {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`tolerance` must be zero or more",
                    ));
                }
                tolerance = x.abs();
            }
            let weight = match l.number(t, "weight", &sec) {
                Some((x, sp)) if x < 0.0 => {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`weight` must be zero or more",
                    ));
                    1.0
                }
                Some((x, _)) => x,
                None => 1.0,
            };
            let on_violation = if t.contains_key("on_violation") {
                l.one_of(
                    t,
                    "on_violation",
                    &sec,
                    &[
                        ("repair", OnViolation::Repair),
                        ("hold", OnViolation::Hold),
                        ("block", OnViolation::Block),
                    ],
                )
                .unwrap_or(OnViolation::Repair)
            } else {
                OnViolation::Repair
            };
            let lipschitz = match l.number(t, "lipschitz", &sec) {
                Some((x, sp)) if x <= 0.0 => {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        sp,
                        "`lipschitz` must be above zero",
                    ));
                    None
                }
                other => other.map(|x| x.0),
            };
            let guard = t
                .get("when")
                .and_then(|w| l.expr(w, "`when`"))
                .and_then(|e| {
                    let mut sc = Scope::new(&mut names, NextState::Readable);
                    typeck::check(&e, Ty::Bool, &mut sc)
                        .map_err(|err| l.err(err))
                        .ok()
                });
            let Some(kind) = kind else { continue };
            let mut rows = Vec::new();
            // Which fields each kind takes.
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
            if !l.required(t, main, &sec, idspan) {
                continue;
            }
            let Some(mv) = t.get(main) else { continue };
            let Some(e) = l.expr(mv, &format!("`{main}`")) else {
                continue;
            };
            match kind {
                ConstraintKind::Barrier | ConstraintKind::Lyapunov => {
                    if names.next.is_none() {
                        l.err(
                            PolicyError::new(
                                ErrorKind::NeedsDynamics,
                                idspan,
                                format!(
                                    "{} constraint `{id}` needs a [dynamics] section",
                                    kind.as_str()
                                ),
                            )
                            .help(
                                "add [dynamics] with an equation for each state variable it reads",
                            ),
                        );
                        continue;
                    }
                    let mut sc = Scope::new(&mut names, NextState::Refused);
                    let h = match typeck::check(&e, Ty::Num, &mut sc) {
                        Ok(h) => h,
                        Err(err) => {
                            l.err(if err.kind == ErrorKind::TypeMismatch && err.message.starts_with("`next.`") {
                                PolicyError::new(ErrorKind::TypeMismatch, err.span, format!("write `{main}` over the current state; the constraint applies it to `next.` itself"))
                            } else {
                                err
                            });
                            continue;
                        }
                    };
                    // h(next): every state the function reads must have an equation.
                    let mut missing = Vec::new();
                    h.inputs(&mut |slot| {
                        if let Some((si, s)) = names
                            .states
                            .iter()
                            .enumerate()
                            .find(|(_, s)| s.slot == Some(slot))
                        {
                            if !names.next.as_ref().is_some_and(|m| m.contains_key(&si))
                                && !missing.contains(&s.name)
                            {
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
                        continue;
                    }
                    let state_term = |slot: u32| -> Option<Term> {
                        names
                            .states
                            .iter()
                            .enumerate()
                            .find(|(_, s)| s.slot == Some(slot))
                            .and_then(|(si, _)| names.next.as_ref()?.get(&si).cloned())
                    };
                    let h_next = h.substitute(&state_term);
                    use crate::expr::typeck::Op2;
                    let coef = |l: &mut Loader<'_>,
                                key: &str,
                                lo: f64,
                                hi: f64,
                                hi_open: bool,
                                default: Option<f64>|
                     -> f64 {
                        match l.number(t, key, &sec) {
                            Some((x, sp)) => {
                                let ok = x >= lo && if hi_open { x < hi } else { x <= hi };
                                if !ok {
                                    l.err(PolicyError::new(
                                        ErrorKind::InvalidValue,
                                        sp,
                                        format!(
                                            "`{key}` must be in [{lo}, {hi}{}",
                                            if hi_open { ")" } else { "]" }
                                        ),
                                    ));
                                }
                                x
                            }
                            None => match default {
                                Some(d) => d,
                                None => {
                                    l.required(t, key, &sec, idspan);
                                    0.0
                                }
                            },
                        }
                    };
                    let row = if kind == ConstraintKind::Barrier {
                        let gamma = coef(l, "gamma", 0.0, 1.0, false, None);
                        if gamma == 0.0 && t.contains_key("gamma") {
                            if let Some(gv) = t.get("gamma") {
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
                        // (1 - gamma) h(x) <= h(next)
                        let k = Interval::point(1.0).sub(Interval::point(gamma));
                        RowDef {
                            name: id.clone(),
                            sense: Sense::Le,
                            lhs: Term::bin(Op2::Mul, Term::Const(k), h.clone()),
                            rhs: h_next,
                            span: e.span,
                            safe_set: Some(h),
                        }
                    } else {
                        let alpha = coef(l, "alpha", 0.0, 1.0, true, None);
                        let sigma = coef(l, "sigma", 0.0, f64::INFINITY, true, Some(0.0));
                        // V(next) <= (1 - alpha) V(x) + sigma
                        let k = Interval::point(1.0).sub(Interval::point(alpha));
                        let rhs = Term::bin(
                            Op2::Add,
                            Term::bin(Op2::Mul, Term::Const(k), h),
                            Term::Const(Interval::point(sigma)),
                        );
                        RowDef {
                            name: id.clone(),
                            sense: Sense::Le,
                            lhs: h_next,
                            rhs,
                            span: e.span,
                            safe_set: None,
                        }
                    };
                    rows.push(row);
                }
                _ => {
                    let mut parts = Vec::new();
                    conjuncts(&e, &mut parts);
                    let multi = parts.len() > 1;
                    for (j, part) in parts.iter().enumerate() {
                        let name = if multi {
                            format!("{id}#{}", j + 1)
                        } else {
                            id.clone()
                        };
                        let mut sc = Scope::new(&mut names, NextState::Readable);
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
                                use crate::expr::ast::CmpOp;
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
                                Ok(c) => RowDef {
                                    name,
                                    sense: Sense::Bool,
                                    lhs: c,
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
                }
            }
            if let Some(criticality) = criticality {
                constraints.push(Constraint {
                    id,
                    kind,
                    criticality,
                    description,
                    tolerance,
                    weight,
                    on_violation,
                    lipschitz,
                    guard,
                    rows,
                    span: idspan,
                });
            }
        }
    }
    // Row names must be unique too (`a#1` could clash with a constraint called `a#1`).
    let mut row_names = HashSet::new();
    for c in &constraints {
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

    if !l.errors.is_empty() {
        return None;
    }
    let policy = Policy {
        name: header.name,
        version: header.version,
        mode: header.mode,
        default_verdict: header.default_verdict,
        governor: gov,
        actions: names.actions,
        states: names.states,
        params: names.params,
        dynamics,
        fallback,
        rules,
        constraints,
        budgets,
        layout: Layout {
            len: names.next_slot,
            attrs: names.attrs,
        },
        symbols: names.symbols,
        lattice: Lattice::default(),
        hash: source_hash(l.src),
        tests: Vec::new(),
    };
    let lattice = Lattice::compile(&policy);
    let mut policy = Policy { lattice, ..policy };
    for e in crate::tier1::certify_fallback(&policy) {
        l.err(e);
    }
    policy.lattice.shrink();
    if let Some(v) = root.get("test") {
        policy.tests = load_tests(l, &policy, v);
    }
    Some(policy)
}

/// `sha256:` and the hex digest of the policy text: what decisions and records name.
fn source_hash(src: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(src.as_bytes());
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// A TOML value as JSON (policy tests carry proposals written in TOML).
fn to_json(v: &DeValue<'_>) -> Option<serde_json::Value> {
    use serde_json::Value as J;
    Some(match v {
        DeValue::String(s) => J::String(s.to_string()),
        DeValue::Integer(i) => J::from(i64::from_str_radix(i.as_str(), i.radix()).ok()?),
        DeValue::Float(f) => J::from(serde_json::Number::from_f64(
            f.as_str().replace('_', "").parse().ok()?,
        )?),
        DeValue::Boolean(b) => J::Bool(*b),
        DeValue::Datetime(d) => J::String(d.to_string()),
        DeValue::Array(a) => J::Array(
            a.iter()
                .map(|x| to_json(x.get_ref()))
                .collect::<Option<Vec<_>>>()?,
        ),
        DeValue::Table(t) => J::Object(
            entries(t)
                .into_iter()
                .map(|(k, _, x)| Some((k.to_string(), to_json(x.get_ref())?)))
                .collect::<Option<serde_json::Map<_, _>>>()?,
        ),
    })
}

/// Deep merge: objects key by key, anything else replaced.
fn merge_json(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(slot) => merge_json(slot, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The decision fields a `[[test]]` may expect.
pub(crate) const EXPECTABLE: &[&str] = &[
    "final_outcome",
    "classification",
    "evaluation",
    "audit",
    "repair_status",
    "report_type",
    "human_action_required",
    "action",
    "candidate",
    "distance",
    "constraints",
    "relaxed",
    "rule",
    "reasons",
    "repaired_transition",
    "failure_modes",
    "guarantees",
];

/// `[[test]]` cases: each proposal must be valid input for this policy, and `expect` may
/// only name decision fields.
fn load_tests(l: &mut Loader<'_>, p: &Policy, v: &Val<'_>) -> Vec<PolicyTest> {
    let mut tests = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    for (k, tv) in array_of_tables(l, v, "test") {
        let Some(t) = l.table(tv, "test") else {
            continue;
        };
        let sec = format!("[[test]] ({})", k + 1);
        l.check_keys(t, &["name", "extends", "given", "proposal", "expect"], &sec);
        let at = span_of(tv);
        let name = l
            .string(t, "name", &sec)
            .unwrap_or_else(|| (format!("test-{}", k + 1), at));
        if let Some(first) = names.get(&name.0) {
            let (line, _) = crate::error::line_col(l.src, first.start);
            l.err(
                PolicyError::new(
                    ErrorKind::DuplicateId,
                    name.1,
                    format!("test name `{}` is used twice", name.0),
                )
                .help(format!(
                    "the first use is on line {line}; test names must be unique"
                )),
            );
        } else {
            names.insert(name.0.clone(), name.1);
        }
        let sec = format!("test `{}`", name.0);
        // `extends = "other test"`: start from that test's proposal and merge this one over it.
        let mut base: Option<serde_json::Value> = None;
        if let Some((other, ospan)) = l.string(t, "extends", &sec) {
            match tests.iter().find(|x: &&PolicyTest| x.name == other) {
                Some(x) => base = Some(x.proposal.clone()),
                None => l.err(
                    PolicyError::new(
                        ErrorKind::UnknownName,
                        ospan,
                        format!("{sec} extends `{other}`, which is not an earlier test"),
                    )
                    .help("name a [[test]] defined above this one"),
                ),
            }
        }
        let proposal_of =
            |l: &mut Loader<'_>, pv: &Val<'_>, what: &str, base: Option<&serde_json::Value>| {
                let Some(mut j) = to_json(pv.get_ref()) else {
                    l.err(PolicyError::new(
                        ErrorKind::InvalidValue,
                        span_of(pv),
                        format!("{what} of {sec} is not representable as JSON"),
                    ));
                    return None;
                };
                if let Some(b) = base {
                    let mut merged = b.clone();
                    merge_json(&mut merged, j);
                    j = merged;
                }
                match crate::governor::Proposal::from_json(p, &j) {
                    Ok(_) => Some(j),
                    Err(e) => {
                        l.err(
                            PolicyError::new(
                                ErrorKind::InvalidValue,
                                span_of(pv),
                                format!("{what} of {sec} is not a valid proposal: {}", e.message),
                            )
                            .help("write the proposal as `aioss decide` would read it"),
                        );
                        None
                    }
                }
            };
        let mut given = Vec::new();
        if let Some(gv) = t.get("given") {
            match gv.get_ref() {
                DeValue::Array(a) => {
                    for x in a {
                        if let Some(j) = proposal_of(l, x, "a `given` proposal", base.as_ref()) {
                            given.push(j);
                        }
                    }
                }
                other => l.err(PolicyError::new(
                    ErrorKind::InvalidValue,
                    span_of(gv),
                    format!(
                        "`given` of {sec} must be an array of proposals, found {}",
                        other.type_str()
                    ),
                )),
            }
        }
        let proposal = if base.is_some() && !t.contains_key("proposal") {
            base.clone()
        } else if l.required(t, "proposal", &sec, name.1) {
            t.get("proposal")
                .and_then(|pv| proposal_of(l, pv, "`proposal`", base.as_ref()))
        } else {
            None
        };
        let mut expect = serde_json::Map::new();
        if l.required(t, "expect", &sec, name.1) {
            if let Some(et) = t.get("expect").and_then(|ev| l.table(ev, "expect")) {
                l.check_keys(et, EXPECTABLE, &format!("`expect` of {sec}"));
                for (key, _, x) in entries(et) {
                    if let Some(j) = to_json(x.get_ref()) {
                        expect.insert(key.to_string(), j);
                    }
                }
            }
        }
        if let Some(proposal) = proposal {
            tests.push(PolicyTest {
                name: name.0,
                given,
                proposal,
                expect,
                span: name.1,
            });
        }
    }
    tests
}
