//! `[[test]]`: the policy's own test cases, read once the policy is compiled (each
//! proposal must be valid input for it).

use std::collections::HashMap;

use toml::de::DeValue;

use super::reader::{array_of_tables, entries, span_of, Loader, Val};
use crate::error::{ErrorKind, PolicyError, Span};
use crate::policy::{Policy, PolicyTest};

const KEYS: &[&str] = &["name", "extends", "given", "proposal", "expect"];

/// `[[test]]` cases (`v`): each proposal must be valid input for `p`, and `expect` may
/// only name decision fields.
pub(super) fn tests(l: &mut Loader<'_>, p: &Policy, v: &Val<'_>) -> Vec<PolicyTest> {
    let mut tests = Vec::new();
    let mut names: HashMap<String, Span> = HashMap::new();
    for (k, tv) in array_of_tables(l, v, "test") {
        if let Some(t) = test(l, p, k, tv, &tests, &mut names) {
            tests.push(t);
        }
    }
    tests
}

/// Test `k` (from 0), which may extend one of the `earlier` tests; its name is added to
/// `names`.
fn test(
    l: &mut Loader<'_>,
    p: &Policy,
    k: usize,
    tv: &Val<'_>,
    earlier: &[PolicyTest],
    names: &mut HashMap<String, Span>,
) -> Option<PolicyTest> {
    let t = l.table(tv, "test")?;
    let sec = format!("[[test]] ({})", k + 1);
    l.check_keys(t, KEYS, &sec);
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
        match earlier.iter().find(|x| x.name == other) {
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
    let read = Proposals {
        policy: p,
        section: &sec,
        base: base.as_ref(),
    };
    let mut given = Vec::new();
    if let Some(gv) = t.get("given") {
        match gv.get_ref() {
            DeValue::Array(a) => {
                for x in a {
                    if let Some(j) = read.proposal(l, x, "a `given` proposal") {
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
            .and_then(|pv| read.proposal(l, pv, "`proposal`"))
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
    Some(PolicyTest {
        name: name.0,
        given,
        proposal: proposal?,
        expect,
        span: name.1,
    })
}

/// How the proposals of one test are read.
struct Proposals<'a> {
    policy: &'a Policy,
    /// `test `name``, for messages.
    section: &'a str,
    /// The proposal of the test this one extends.
    base: Option<&'a serde_json::Value>,
}

impl Proposals<'_> {
    /// A proposal (`what` of the test), merged over the base, as JSON.
    fn proposal(&self, l: &mut Loader<'_>, pv: &Val<'_>, what: &str) -> Option<serde_json::Value> {
        let sec = self.section;
        let Some(mut j) = to_json(pv.get_ref()) else {
            l.err(PolicyError::new(
                ErrorKind::InvalidValue,
                span_of(pv),
                format!("{what} of {sec} is not representable as JSON"),
            ));
            return None;
        };
        if let Some(b) = self.base {
            let mut merged = b.clone();
            merge_json(&mut merged, j);
            j = merged;
        }
        match crate::governor::Proposal::from_json(self.policy, &j) {
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
    }
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
const EXPECTABLE: &[&str] = &[
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
