//! The `aioss` command line, run as a real process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn aioss() -> Command {
    Command::new(env!("CARGO_BIN_EXE_aioss"))
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn bundled() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

#[test]
fn policy_check_accepts_every_bundled_policy() {
    let files = bundled();
    assert!(files.len() >= 3, "{files:?}");
    let out = aioss()
        .arg("policy")
        .arg("check")
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), files.len(), "{stdout}");
    for (line, f) in stdout.lines().zip(&files) {
        assert!(
            line.starts_with(&format!("{}: ok: ", f.display())),
            "{line}"
        );
        assert!(line.contains("fallback certified on"), "{line}");
    }
}

#[test]
fn warehouse_robot_has_the_promised_lattice() {
    let text = std::fs::read_to_string(repo().join("policies/warehouse-robot.toml")).unwrap();
    let p = aioss_core::load("warehouse-robot.toml", &text).unwrap();
    assert!(p.constraints.len() >= 67, "{}", p.constraints.len());
    use aioss_core::policy::{ConstraintKind as K, VarType};
    for k in [
        K::Physical,
        K::Resource,
        K::Authority,
        K::Invariant,
        K::Barrier,
    ] {
        assert!(
            p.constraints.iter().any(|c| c.kind == k),
            "no {k:?} constraint"
        );
    }
    assert_eq!(
        p.constraints
            .iter()
            .filter(|c| c.kind == K::Lyapunov)
            .count(),
        1
    );
    assert!(p.actions.iter().any(|a| a.ty == VarType::Real));
    assert!(p
        .actions
        .iter()
        .any(|a| matches!(a.ty, VarType::Enum(_) | VarType::Bool)));
    assert!(p.states.iter().any(|s| s.noise > 0.0));
    assert!(p.layout.attrs.iter().any(|a| a.name == "role"));
}

#[test]
fn agent_tools_and_i2os_load_with_their_shape() {
    let text = std::fs::read_to_string(repo().join("policies/agent-tools.toml")).unwrap();
    let p = aioss_core::load("agent-tools.toml", &text).unwrap();
    assert!(p.actions.iter().any(|a| a.name == "tool"));
    assert!(!p.budgets.is_empty());
    use aioss_core::policy::Verdict;
    assert!(p.rules.iter().any(|r| r.verdict == Verdict::Hold));
    assert!(p.rules.iter().any(|r| r.verdict == Verdict::Block));
    let text = std::fs::read_to_string(repo().join("policies/i2os-v2.toml")).unwrap();
    let p = aioss_core::load("i2os-v2.toml", &text).unwrap();
    let verdicts: Vec<Verdict> = p.rules.iter().map(|r| r.verdict).collect();
    assert_eq!(
        verdicts,
        vec![
            Verdict::Block,
            Verdict::Hold,
            Verdict::Hold,
            Verdict::Repair,
            Verdict::Repair,
            Verdict::Go
        ]
    );
    assert_eq!(p.default_verdict, Verdict::Hold);
}

#[test]
fn policy_check_refuses_with_positioned_errors_and_exit_2() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-speed.toml");
    let out = aioss().args(["policy", "check"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("--> {}:20:9", f.display())),
        "{stderr}"
    );
    assert!(stderr.contains("unknown name `vz`"), "{stderr}");
    assert!(stderr.contains("1 of 1 policies refused"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn uncertified_fallback_is_refused() {
    let f = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-fallback.toml");
    let out = aioss().args(["policy", "check"]).arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the fallback may violate critical constraint `reach`"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("--> {}:21:9", f.display())),
        "{stderr}"
    );
}

#[test]
fn a_good_and_a_bad_file_report_both() {
    let good = repo().join("policies/agent-tools.toml");
    let bad = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bad-speed.toml");
    let out = aioss()
        .args(["policy", "check"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains(": ok: "));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 of 2 policies refused"));
}

#[test]
fn missing_file_is_bad_input() {
    let out = aioss()
        .args(["policy", "check", "/nonexistent/p.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read `/nonexistent/p.toml`"));
}

#[test]
fn usage_error_is_exit_2() {
    let out = aioss().args(["policy", "check"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
