//! A policy's own `[[test]]` cases, run through a governor (`aioss policy test`).

use serde_json::Value;

use crate::policy::{Policy, PolicyTest};

use super::{Governor, Proposal};

/// The result of one `[[test]]` case.
#[derive(Clone, Debug, PartialEq)]
pub struct TestResult {
    /// The test's name.
    pub name: String,
    /// Mismatches as `(field, expected, actual)`; empty when the test passed.
    pub failures: Vec<(String, String, String)>,
}

impl TestResult {
    /// Did every expected field match?
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Does `actual` match `expected`? Strings, booleans and null exactly; numbers to 1e-6
/// (relative above 1); objects by the expected keys only; arrays element by element with
/// the same length.
pub fn json_matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => match (e.as_f64(), a.as_f64()) {
            (Some(e), Some(a)) => (e - a).abs() <= 1e-6 * e.abs().max(1.0),
            _ => false,
        },
        (Value::Object(e), Value::Object(a)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|x| json_matches(v, x))),
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| json_matches(x, y))
        }
        (e, a) => e == a,
    }
}

/// Run one of the policy's own tests on a fresh governor.
pub fn run_test(p: &Policy, t: &PolicyTest) -> TestResult {
    let mut g = Governor::new(p.clone());
    let mut failures = Vec::new();
    for given in &t.given {
        if let Err(e) = Proposal::from_json(p, given).map(|x| g.decide(&x)) {
            failures.push((
                "given".to_string(),
                "a valid proposal".to_string(),
                e.to_string(),
            ));
        }
    }
    match Proposal::from_json(p, &t.proposal) {
        Err(e) => failures.push((
            "proposal".to_string(),
            "a valid proposal".to_string(),
            e.to_string(),
        )),
        Ok(x) => {
            let d = g.decide(&x);
            let json = d.to_json(p);
            let actual: Value = serde_json::from_str(&json).unwrap_or(Value::Null);
            for (k, want) in &t.expect {
                let got = actual.get(k).cloned().unwrap_or(Value::Null);
                if !json_matches(want, &got) {
                    failures.push((k.clone(), want.to_string(), got.to_string()));
                }
            }
        }
    }
    TestResult {
        name: t.name.clone(),
        failures,
    }
}

/// Run all of the policy's `[[test]]` cases.
pub fn run_tests(p: &Policy) -> Vec<TestResult> {
    p.tests.iter().map(|t| run_test(p, t)).collect()
}
