//! `Governor::snapshot` and `Governor::restore_snapshot`, which a restart of the server and
//! replay put in force at every `snapshot` record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aioss_core::governor::Clock;
use aioss_core::Governor;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn policy(text: &str) -> aioss_core::Policy {
    aioss_core::load("agent-tools.toml", text).unwrap()
}

/// The decision without its measured fields.
fn deterministic(json: &str) -> String {
    json.split(",\"latency_us\":").next().unwrap().to_string()
}

/// A governor restored from a snapshot (warm starts afresh, as the original's are at a
/// snapshot record) decides the rest of a stream byte for byte as the original, with the
/// same state after every decision; the budget windows, last actions, clock and sequence
/// all come across.
#[test]
fn a_restored_snapshot_decides_the_rest_of_a_stream_as_the_original() {
    let text = std::fs::read_to_string(repo().join("policies/agent-tools.toml")).unwrap();
    let lines = std::fs::read_to_string(repo().join("tests/data/audit/agent-tools.jsonl")).unwrap();
    let lines: Vec<&str> = lines.lines().take(400).collect();
    let mut a = Governor::new(policy(&text));
    for l in &lines[..200] {
        let _ = a.decide_line_with(l, Clock::Logical);
    }
    let snap = a.snapshot();
    a.reset_warm_starts();
    let mut b = Governor::new(policy(&text));
    b.restore_snapshot(&snap).unwrap();
    assert_eq!(b.state_digest(), a.state_digest());
    assert_eq!(b.snapshot(), snap);
    assert!(
        a.budgets().iter().any(|(_, v)| *v > 0.0),
        "{:?}",
        a.budgets()
    );
    assert_eq!(b.budgets(), a.budgets());
    for l in &lines[200..] {
        let (x, y) = (
            a.decide_line_with(l, Clock::Logical),
            b.decide_line_with(l, Clock::Logical),
        );
        match (x, y) {
            (Ok(x), Ok(y)) => assert_eq!(
                deterministic(&x.to_json(a.policy())),
                deterministic(&y.to_json(b.policy()))
            ),
            (Err(x), Err(y)) => assert_eq!(x.to_json(), y.to_json()),
            _ => panic!("one decided, the other refused: {l}"),
        }
        assert_eq!(a.state_digest(), b.state_digest());
    }
    // Under an edited policy, as a reload carries state: a window whose length changed
    // starts empty, the others and the last actions come across.
    let edited = text.replacen("window = \"24h\"", "window = \"12h\"", 1);
    let mut c = Governor::new(policy(&edited));
    c.restore_snapshot(&snap).unwrap();
    let mut old = Governor::new(policy(&text));
    old.restore_snapshot(&snap).unwrap();
    let (was, now) = (old.budgets(), c.budgets());
    assert!(was[0].1 > 0.0, "{was:?}");
    assert_eq!(now[0].1, 0.0, "{now:?}");
    assert_eq!(now[1..], was[1..]);
    // Not a snapshot: refused, nothing changed.
    let before = c.state_digest();
    assert!(c.restore_snapshot("{\"format\":\"other\"}").is_err());
    assert!(c.restore_snapshot("not json").is_err());
    assert_eq!(c.state_digest(), before);
}
