//! The policy loader: TOML text → validated [`Policy`].
//!
//! The loader collects every error it can (a policy author fixes them in one pass) and
//! refuses the policy whole if there is any. Validation happens here, once: the decision
//! path relies on everything checked below and never re-checks it.

mod actions;
mod budgets;
mod constraints;
mod dynamics;
mod fallback;
mod governor;
mod params;
mod policy;
mod reader;
mod rules;
mod scope;
mod states;

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use crate::error::{ErrorKind, PolicyError, PolicyErrors, Span};
use crate::lattice::Lattice;
use crate::policy::*;
use reader::{array_of_tables, entries, span_of, Loader, Val};
use scope::{Enums, Names};

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

    let constraints = constraints::constraints(l, root, &mut names, &ids);

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
