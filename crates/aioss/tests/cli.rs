//! The `aioss` command line, run as a real process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{aioss, repo};
use std::path::{Path, PathBuf};

fn bundled() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("policies"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    v.sort();
    v
}

/// Run `cmd`, require exit 0 (showing both streams otherwise), and return its stdout.
fn stdout_of(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn policy_check_accepts_every_bundled_policy() {
    let files = bundled();
    assert!(files.len() >= 3, "{files:?}");
    let stdout = stdout_of(aioss().arg("policy").arg("check").args(&files));
    // Each policy's summary line, then its monitors' settings (issue 20).
    assert_eq!(stdout.lines().count(), 2 * files.len(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    for (pair, f) in lines.chunks(2).zip(&files) {
        let (line, monitors) = (pair[0], pair[1]);
        assert!(
            line.starts_with(&format!("{}: ok: ", f.display())),
            "{line}"
        );
        assert!(line.contains("fallback certified on"), "{line}");
        assert!(line.ends_with(" µs (reported)"), "{line}");
        assert!(
            monitors.starts_with("  monitors: recover_after "),
            "{monitors}"
        );
    }
    assert!(
        stdout.contains("model_mismatch at dt 0.1 s"),
        "the warehouse's dt: {stdout}"
    );
    // A policy that enforces its deadline says so.
    let dir = common::tmpdir("cli", "enforce");
    let text = std::fs::read_to_string(repo().join("policies/warehouse-robot.toml")).unwrap();
    let f = dir.join("w.toml");
    std::fs::write(
        &f,
        text.replace(
            "\ndeadline_us = 1000\n",
            "\ndeadline_us = 800\nenforce_deadline = true\n",
        ),
    )
    .unwrap();
    let out = stdout_of(aioss().arg("policy").arg("check").arg(&f));
    let line = out.lines().next().unwrap();
    assert!(
        line.trim_end()
            .ends_with("; deadline 800 µs (enforced: bounds the repair search)"),
        "{line}"
    );
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

fn warehouse() -> PathBuf {
    repo().join("policies/warehouse-robot.toml")
}

/// A feasible warehouse proposal (a picker cruising in an aisle) with fields replaced.
fn proposal(id: &str, vx: f64, ts: u64) -> String {
    format!(
        r#"{{"id":"{id}","agent":"r1","timestamp":{ts},"agent_attributes":{{"role":"picker","trust":0.9}},"prev":{{"vx":0.4,"vy":0.0}},"action":{{"vx":{vx},"vy":0.0,"omega":0,"lift_v":0,"dq1":0,"dq2":0,"dq3":0,"dq4":0,"gripper":"hold","beacon":true,"gear":1}},"state":{{"px":15,"py":10,"lift_h":0.2,"q1":0,"q2":0,"q3":0,"q4":0,"battery":80,"payload":5,"motor_temp":40,"human_dist":10,"clear_ahead":10,"latency":0.05,"loc_sigma":0.01,"zone":"aisle","task":"deliver","carrying":false,"human_near":false,"floor_wet":false,"estop":false,"task_note":"go"}}}}"#
    )
}

fn run_decide(args: &[&str], input: &str) -> (String, String, bool) {
    let (out, err, code) = run_decide_code(args, input);
    (out, err, code == Some(0))
}

/// [`run_decide`], with the exit code.
fn run_decide_code(args: &[&str], input: &str) -> (String, String, Option<i32>) {
    use std::io::Write;
    let mut child = aioss()
        .arg("decide")
        .arg("--policy")
        .arg(warehouse())
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
        out.status.code(),
    )
}

#[test]
fn decide_streams_each_decision_before_the_next_line_arrives() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = aioss()
        .args(["decide", "--policy"])
        .arg(warehouse())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for i in 0..3 {
        writeln!(stdin, "{}", proposal(&format!("p{i}"), 0.5, 1000 + i)).unwrap();
        stdin.flush().unwrap();
        // stdin stays open: the decision must come out anyway.
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let d: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(d["id"], format!("p{i}"));
        assert_eq!(d["final_outcome"], "ALLOW", "{line}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn decide_answers_bad_lines_with_error_objects_and_goes_on() {
    let input = [
        proposal("a", 0.5, 1),
        "{not json".to_string(),
        proposal("b", 0.5, 2).replace("\"gripper\":\"hold\"", "\"gripper\":\"crush\""),
        String::new(),
        proposal("c", 0.5, 3).replace("\"vx\":0.5", "\"vx\":\"fast\""),
        proposal("d", 0.9, 4),
    ]
    .join("\n");
    let (out, err, code) = run_decide_code(&["--clock", "logical"], &input);
    // 2: some line was not a valid proposal.
    assert_eq!(code, Some(2), "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0]["final_outcome"], "ALLOW");
    assert_eq!(lines[1]["error"]["code"], "malformed_json");
    assert_eq!(lines[1]["line"], 2);
    assert_eq!(lines[2]["error"]["code"], "unknown_enum_value");
    assert_eq!(lines[2]["error"]["field"], "action.gripper");
    assert_eq!(lines[2]["line"], 3);
    assert_eq!(lines[3]["error"]["field"], "action.vx");
    assert_eq!(lines[3]["line"], 5);
    assert_eq!(lines[4]["id"], "d");
    assert_eq!(lines[4]["final_outcome"], "ALLOW_AFTER_REPAIR");
}

#[test]
fn decide_is_deterministic_latency_aside() {
    let input: String = (0u32..40)
        .map(|i| {
            proposal(
                &format!("p{i}"),
                0.3 + f64::from(i) * 0.02,
                100 + u64::from(i),
            ) + "\n"
        })
        .collect();
    let strip = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().remove("latency_us");
                v.as_object_mut().unwrap().remove("timing");
                v.to_string()
            })
            .collect()
    };
    let (a, _, _) = run_decide(&["--clock", "logical"], &input);
    let (b, _, _) = run_decide(&["--clock", "logical"], &input);
    assert_eq!(a.lines().count(), 40);
    assert_eq!(strip(&a), strip(&b));
    assert!(a.contains("ALLOW_AFTER_REPAIR") && a.contains("\"ALLOW\""));
}

#[test]
fn decide_explain_says_which_rows_what_changed_and_why() {
    let (out, err, ok) = run_decide(&["--explain"], &(proposal("fast", 0.9, 5) + "\n"));
    assert!(ok, "{err}");
    assert!(out.contains("ALLOW_AFTER_REPAIR"), "{out}");
    assert!(out.contains("constraint `speed-ramp`"), "{out}");
    assert!(out.contains("VIOLATED"), "{out}");
    assert!(out.contains("repaired: `vx` 0.9 →"), "{out}");
    assert!(out.contains("(table row 4)"), "{out}");
}

#[test]
fn decide_refuses_a_bad_policy_with_exit_2() {
    let out = aioss()
        .args(["decide", "--policy"])
        .arg(repo().join("crates/aioss/tests/data/bad-speed.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("error"));
}

#[test]
fn policy_test_passes_for_every_bundled_policy() {
    let stdout = stdout_of(aioss().args(["policy", "test", "-v"]).args(bundled()));
    assert!(
        !stdout.lines().any(|l| l.starts_with("  FAIL  ")),
        "{stdout}"
    );
    let passed = stdout
        .lines()
        .filter(|l| l.trim_start().starts_with("PASS  "))
        .count();
    assert!(passed >= 30, "{stdout}");
}

#[test]
fn policy_test_reports_a_wrong_expectation_and_exits_1() {
    let text = std::fs::read_to_string(repo().join("policies/i2os-v2.toml"))
        .unwrap()
        .replacen(
            "expect = { final_outcome = \"HOLD_FOR_CONFIRMATION\", rule = \"i2os-3-unconfirmed-risk\" }",
            "expect = { final_outcome = \"ALLOW\", rule = \"i2os-3-unconfirmed-risk\" }",
            1,
        );
    let dir = std::env::temp_dir().join(format!("aioss-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("i2os-wrong.toml");
    std::fs::write(&f, text).unwrap();
    let out = aioss().args(["policy", "test"]).arg(&f).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("FAIL  rule 3"), "{stdout}");
    assert!(
        stdout.contains("final_outcome: expected \"ALLOW\", got \"HOLD_FOR_CONFIRMATION\""),
        "{stdout}"
    );
}

/// The README's first command: the governor on the bundled example proposals.
#[test]
fn readme_first_command_decides_the_example_stream() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let cmd = "decide --policy policies/warehouse-robot.toml --audit aioss-audit.db < policies/examples/warehouse.jsonl";
    assert!(readme.contains(cmd), "README no longer shows `{cmd}`");
    let dir = std::env::temp_dir().join(format!("aioss-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("aioss-audit.db");
    let input = std::fs::read(repo().join("policies/examples/warehouse.jsonl")).unwrap();
    let (out, err, code) = run_decide_code(
        &["--audit", db.to_str().unwrap()],
        &String::from_utf8(input).unwrap(),
    );
    // 1, as the README says: its third example is refused (FAILED_GOVERNANCE).
    assert_eq!(code, Some(1), "{err}");
    assert!(
        readme.contains("exits 1 on purpose"),
        "the README no longer says why its first command exits 1"
    );
    // Every decision is in the embedded store, and the chain verifies.
    let v = aioss()
        .arg("audit")
        .arg("verify")
        .arg(&db)
        .output()
        .unwrap();
    let vout = String::from_utf8_lossy(&v.stdout);
    assert!(v.status.success(), "{vout}");
    assert!(vout.contains("OK: 3 records"), "{vout}");
    let _ = std::fs::remove_dir_all(&dir);
    let outcomes: Vec<String> = out
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["final_outcome"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        outcomes,
        ["ALLOW", "ALLOW_AFTER_REPAIR", "FAILED_GOVERNANCE"]
    );
}

/// `aioss bench decide` on a small stream: the mix it was asked for, the throughput lines,
/// and one line per outcome whose shares of the decision time add up to 100 %.
#[test]
fn bench_decide_reports_the_mix_and_where_the_time_goes() {
    let stdout = stdout_of(
        aioss()
            .args(["bench", "decide", "--n", "300", "--runs", "1", "--policy"])
            .arg(repo().join("policies/warehouse-robot.toml")),
    );
    assert!(
        stdout.contains(
            r#"outcomes {"ALLOW": 210, "ALLOW_AFTER_REPAIR": 75, "BLOCK_NO_REPAIR": 15}"#
        ),
        "{stdout}"
    );
    assert!(stdout.contains("decisions/s"), "{stdout}");
    assert!(stdout.contains("ratio:"), "{stdout}");
    let shares: Vec<f64> = stdout
        .lines()
        .filter(|l| l.contains("% of the decision time"))
        .map(|l| {
            let pct = l.split(',').nth(2).unwrap().trim();
            pct.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(shares.len(), 3, "{stdout}");
    let sum: f64 = shares.iter().sum();
    assert!((sum - 100.0).abs() < 0.5, "{stdout}");
    // Each outcome's latency percentiles, in order, and the G5 count over the stream.
    for l in stdout
        .lines()
        .filter(|l| l.contains("% of the decision time"))
    {
        let tail = l.split("latency_us").nth(1).unwrap();
        let v: Vec<u64> = tail
            .split_whitespace()
            .filter_map(|w| w.parse().ok())
            .collect();
        assert_eq!(v.len(), 3, "{l}");
        assert!(v[0] <= v[1] && v[1] <= v[2], "{l}");
    }
    let g5 = stdout
        .lines()
        .find(|l| l.starts_with("deadline (G5):"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(
        g5.ends_with("of 300 decisions over the policy's deadline_us = 1000 µs"),
        "{g5}"
    );
}

/// `--stream` times a given stream: the one another run wrote with `--write` gives the same
/// outcomes, and a line `aioss decide` refuses is counted as an input error.
#[test]
fn bench_decide_times_a_given_stream() {
    let dir = common::tmpdir("cli", "bench-stream");
    let file = dir.join("s.jsonl");
    let policy = repo().join("policies/warehouse-robot.toml");
    let generated = stdout_of(
        aioss()
            .args(["bench", "decide", "--n", "200", "--runs", "1", "--write"])
            .arg(&file)
            .arg("--policy")
            .arg(&policy),
    );
    let outcomes = |s: &str| {
        s.lines()
            .find(|l| l.starts_with("policy:"))
            .map(|l| l.split("outcomes").nth(1).unwrap().trim().to_string())
            .unwrap()
    };
    let given = stdout_of(
        aioss()
            .args(["bench", "decide", "--runs", "1", "--stream"])
            .arg(&file)
            .arg("--policy")
            .arg(&policy),
    );
    assert_eq!(outcomes(&generated), outcomes(&given), "{given}");
    assert!(given.contains("(200 proposals"), "{given}");
    // One bad line more.
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("{\"action\": \n");
    std::fs::write(&file, text).unwrap();
    let bad = stdout_of(
        aioss()
            .args(["bench", "decide", "--runs", "1", "--stream"])
            .arg(&file)
            .arg("--policy")
            .arg(&policy),
    );
    assert!(bad.contains("\"input error\": 1"), "{bad}");
    // `--stream` replaces the generator's options.
    let out = aioss()
        .args(["bench", "decide", "--n", "5", "--stream"])
        .arg(&file)
        .arg("--policy")
        .arg(&policy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--n"));
}

/// Caught (issue 17, defect 1): `aioss decide` answered ALLOW for an action that is unsafe in
/// exact arithmetic at the top of its state box (`a * (value + noise) - 3 = +3.4e-16`). The
/// JSON parser of the released binary read `1.0053392546677313` one ulp off (serde_json
/// without `float_roundtrip`), so the box Tier 1 checked was not the one the agent sent.
/// A test build hides it when another crate's dev-dependency enables the feature; run
/// `cargo test -p aioss --test cli` to see it fail without the fix (and see
/// `the_core_parses_json_numbers_exactly_in_every_build` below).
#[test]
fn a_state_box_from_json_keeps_its_outward_rounding() {
    let dir = common::tmpdir("cli", "ulp");
    let policy = dir.join("ulp.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"ulp\"\n[action.a]\ntype = \"real\"\nmin = -1e17\nmax = 1e17\n\
         [state.x]\ntype = \"real\"\nnoise = 0.0\n[fallback]\na = 0.0\n\
         [[constraint]]\nid = \"c\"\ncriticality = \"critical\"\nexpr = \"a * x <= 3.0\"\n",
    )
    .unwrap();
    let line = r#"{"id":"m1","agent":"t","action":{"a":2.894467099806018},"state":{"x":{"value":1.0053392546677313,"noise":0.031120962897379412}}}"#;
    let d = &decide_lines(&policy, &[], &[line])[0];
    assert_ne!(d["final_outcome"], "ALLOW", "{d}");
    assert_eq!(d["constraints"][0]["id"], "c", "{d}");
    // Whatever executes is certified: here the repair, strictly below the boundary.
    let a = d["action"]["a"].as_f64().unwrap();
    assert!(a < 2.894467099806018, "{d}");
}

/// The guard for the test above under `cargo test --workspace`, where a dev-dependency
/// (clarabel) turns `float_roundtrip` on for every crate and hides a core built without it.
#[test]
fn the_core_parses_json_numbers_exactly_in_every_build() {
    let manifest = std::fs::read_to_string(repo().join("crates/aioss-core/Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("serde_json"))
        .unwrap_or_default();
    assert!(line.contains("\"float_roundtrip\""), "{line}");
}

/// `aioss decide --policy POLICY ARGS...` over `lines`: each output line as JSON.
fn decide_lines(policy: &Path, args: &[&str], lines: &[&str]) -> Vec<serde_json::Value> {
    let mut child = aioss()
        .args(["decide", "--policy"])
        .arg(policy)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for l in lines {
            writeln!(stdin, "{l}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Issue 18, items 3 and 4 through the command: with the default `--clock wall` a stamp a
/// day ahead is not the decision's time, and `--untrusted` refuses a claimed `prev`.
#[test]
fn decide_keeps_the_time_and_with_untrusted_the_prev() {
    let agent = repo().join("policies/agent-tools.toml");
    let transfer = |ts: &str| {
        format!(
            r#"{{"agent":"fin","timestamp":"{ts}","agent_attributes":{{"role":"finance","trust":0.9,"status":"active"}},"action":{{"tool":"transfer","amount":20000,"recipients":0,"file_count":0,"write_mb":0,"tokens":100,"external":false,"preview":false}},"state":{{"session_risk":"low","user_confirmed":true,"sandboxed":true,"protected_dir":false,"pii_detected":false,"injection_score":0.0,"balance":1000000,"task_description":"pay"}}}}"#
        )
    };
    let lines = [
        transfer("2099-01-01T00:00:00Z"),
        transfer("2099-01-02T00:00:00Z"),
        transfer("2099-01-03T00:00:00Z"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let outcomes = |ds: &[serde_json::Value]| -> Vec<String> {
        ds.iter()
            .map(|d| d["final_outcome"].as_str().unwrap_or("?").to_string())
            .collect()
    };
    let wall = decide_lines(&agent, &[], &lines);
    assert_eq!(
        outcomes(&wall),
        ["ALLOW", "ALLOW", "BLOCK_NO_REPAIR"],
        "{wall:?}"
    );
    let logical = decide_lines(&agent, &["--clock", "logical"], &lines);
    assert_eq!(
        outcomes(&logical),
        ["ALLOW", "ALLOW", "ALLOW"],
        "{logical:?}"
    );

    let w = repo().join("policies/warehouse-robot.toml");
    let first = std::fs::read_to_string(repo().join("policies/examples/warehouse.jsonl")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
    v["prev"] = serde_json::json!({"vx": 0.9});
    let line = v.to_string();
    let d = decide_lines(&w, &["--untrusted"], &[&line]);
    assert_eq!(d[0]["error"]["code"], "prev_mismatch", "{d:?}");
    let d = decide_lines(&w, &[], &[&line]);
    assert!(d[0]["final_outcome"].is_string(), "{d:?}");
}

/// The README's example stream under `--explain` (and any further flags).
fn explain_examples(args: &[&str]) -> String {
    let input = std::fs::read_to_string(repo().join("policies/examples/warehouse.jsonl")).unwrap();
    let mut all = vec!["--explain"];
    all.extend_from_slice(args);
    let (out, err, _) = run_decide(&all, &input);
    assert!(err.is_empty(), "{err}");
    out
}

/// Issue 23, item 2: `--dry-run --explain` said `executes: … (the repaired action)` for the
/// unchanged proposal, and "passes through unchanged", "the fallback is executed now" and
/// "(the proposal (dry-run))" for one decision.
#[test]
fn dry_run_explain_contradicts_itself() {
    let out = explain_examples(&["--dry-run"]);
    for bad in [
        "executes:",
        "passes through unchanged",
        "the fallback is executed now",
        "(the proposal (dry-run))",
    ] {
        assert!(!out.contains(bad), "`{bad}` in\n{out}");
    }
    assert_eq!(out.matches("goes out:").count(), 3, "{out}");
    assert_eq!(
        out.matches("(dry-run: the proposal, unchanged)").count(),
        3,
        "{out}"
    );
    assert!(out.contains("(the repaired action: `vx` 0.9 →"), "{out}");
    assert!(out.contains("FAILED_GOVERNANCE"), "{out}");
}

/// Issue 23, item 3: "the executed action is not certified … executes: … (the certified
/// fallback)".
#[test]
fn explain_calls_an_uncertified_fallback_certified() {
    let out = explain_examples(&[]);
    let third = out.split("\n\n").nth(2).unwrap();
    assert!(third.contains("is not certified at this state"), "{third}");
    assert!(!third.contains("(the certified fallback)"), "{third}");
    assert!(
        third.contains("(the fallback, which Tier 1 could NOT certify at this state)"),
        "{third}"
    );
}

/// Issue 23, item 7: `policy test` on a file that does not load printed `PASS: 0/0`.
#[test]
fn policy_test_on_a_file_that_does_not_load_prints_pass() {
    let dir = std::env::temp_dir().join(format!("aioss-test-refused-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[policy]\nname = \"x\"\nversion = \"1\"\n[action.vx]\nmin = 0\n",
    )
    .unwrap();
    let out = aioss().args(["policy", "test"]).arg(&bad).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{stdout}");
    assert!(!stdout.contains("PASS"), "{stdout}");
    assert!(
        stdout.contains("REFUSED: 1 of 1 policy files did not load"),
        "{stdout}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Exit codes by verdict (spec/interfaces.md): 0 every line executed as proposed or
/// repaired, 1 some decision held, blocked, sent to review or failed, 2 some line not a
/// valid proposal.
#[test]
fn decide_exits_by_verdict() {
    let allow = proposal("a", 0.5, 1);
    let (_, err, code) = run_decide_code(&["--clock", "logical"], &(allow.clone() + "\n"));
    assert_eq!(code, Some(0), "{err}");
    let (_, err, code) = run_decide_code(
        &["--clock", "logical", "--dry-run"],
        &(proposal("b", 0.9, 1) + "\n"),
    );
    assert_eq!(code, Some(0), "{err}"); // repaired: executed as repaired in enforce mode
    let hold = proposal("h", 0.5, 1).replace("\"battery\":80", "\"battery\":1");
    let (_, err, code) = run_decide_code(&["--clock", "logical"], &(hold + "\n"));
    assert_eq!(code, Some(1), "{err}");
    let (_, err, code) = run_decide_code(&["--clock", "logical"], &(allow + "\nvx = 1\n"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("hint: line 2 is not a JSON object"), "{err}");
}

/// `decide --input FILE`, and a single pretty-printed JSON object is read whole.
#[test]
fn decide_reads_a_file_and_a_pretty_printed_object() {
    let dir = std::env::temp_dir().join(format!("aioss-input-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("p.json");
    let v: serde_json::Value = serde_json::from_str(&proposal("pretty", 0.5, 1)).unwrap();
    std::fs::write(
        &f,
        serde_json::to_string_pretty(&v).unwrap() + "\n" + &proposal("next", 0.5, 2) + "\n",
    )
    .unwrap();
    let out = aioss()
        .args(["decide", "--clock", "logical", "--policy"])
        .arg(warehouse())
        .arg("--input")
        .arg(&f)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let ids: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids, ["pretty", "next"]);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A top-level `--help` says what AIOSS is, not only its commands.
#[test]
fn top_level_help_says_what_aioss_is() {
    let out = stdout_of(aioss().arg("--help"));
    assert!(out.contains("execution governor for AI actions"), "{out}");
    assert!(out.contains("Capability is not permission"), "{out}");
    assert!(out.contains("FAILED_GOVERNANCE"), "{out}");
}

/// `policy check --format json` and `policy test --format json --run PATTERN`: one JSON
/// object each, with the same exit codes.
#[test]
fn policy_check_and_test_speak_json() {
    let out = aioss()
        .args(["policy", "check", "--format", "json"])
        .args(bundled())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["refused"], 0);
    assert!(v["files"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["ok"] == true && f["hash"].is_string()));
    let out = aioss()
        .args([
            "policy",
            "test",
            "--format",
            "json",
            "--run",
            "rule-agent-suspended",
        ])
        .arg(repo().join("policies/agent-tools.toml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["passed"], 1, "{v:#}");
    assert_eq!(v["files"][0]["cases"][0]["passed"], true, "{v:#}");
}
