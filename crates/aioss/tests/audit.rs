//! `aioss decide --audit`, `aioss audit …` and `aioss report`, run as real processes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{aioss, repo};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use aioss_audit::{SqliteStore, Store};

fn tmpdir(name: &str) -> PathBuf {
    common::tmpdir("audit", name)
}

fn fixture(policy: &str) -> Vec<String> {
    std::fs::read_to_string(repo().join(format!("tests/data/audit/{policy}.jsonl")))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn policy(name: &str) -> PathBuf {
    repo().join(format!("policies/{name}.toml"))
}

/// Run `aioss decide --audit` on `input`; returns stdout lines.
fn decide(policy: &Path, store: &Path, key: Option<&Path>, every: u64, input: &str) -> Vec<String> {
    let mut cmd = aioss();
    cmd.args([
        "decide",
        "--clock",
        "logical",
        "--checkpoint-every",
        &every.to_string(),
        "--policy",
    ])
    .arg(policy)
    .arg("--audit")
    .arg(store);
    if let Some(k) = key {
        cmd.arg("--key").arg(k);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    // 0, 1 (some decision held, blocked, sent to review or failed) or 2 (some line refused).
    assert!(
        matches!(out.status.code(), Some(0..=2)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn verify(store: &Path, extra: &[&str]) -> (i32, String) {
    let out = aioss()
        .args(["audit", "verify"])
        .arg(store)
        .args(extra)
        .env_remove("AIOSS_PROGRESS_MS")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `aioss audit replay STORE --policy POLICY`.
fn replay(store: &Path, policy: &Path) -> std::process::Output {
    aioss()
        .args(["audit", "replay"])
        .arg(store)
        .arg("--policy")
        .arg(policy)
        .output()
        .unwrap()
}

fn record_of(line: &str) -> (u64, String, String) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    let r = &v["record"];
    (
        r["seq"].as_u64().unwrap(),
        r["hash"].as_str().unwrap().to_string(),
        r["prev_hash"].as_str().unwrap().to_string(),
    )
}

fn stored(store: &Path) -> Vec<aioss_audit::Record> {
    let mut s = SqliteStore::open_existing(store).unwrap();
    let mut v = Vec::new();
    s.scan(&mut |r| {
        v.push(r);
        Ok(true)
    })
    .unwrap();
    v
}

/// Mixed streams for every bundled policy, with bad lines, decided in two runs (the second
/// continues the store: the governor state is rebuilt from the log), replay agrees.
#[test]
fn replay_agrees_for_every_bundled_policy_across_a_restart() {
    let dir = tmpdir("replay");
    for name in ["warehouse-robot", "agent-tools", "i2os-v2"] {
        let lines = fixture(name);
        let n = lines.len();
        let store = dir.join(format!("{name}.db"));
        let mut all = Vec::new();
        for (part, chunk) in [&lines[..n / 2], &lines[n / 2..n]].iter().enumerate() {
            let mut input = chunk.join("\n");
            input.push_str(&format!(
                "\n{{\"bad\": {part}\n\n{{\"agent\":\"a\",\"action\":{{\"nope\":1}}}}\n"
            ));
            all.extend(decide(&policy(name), &store, None, 0, &input));
        }
        // Every printed line carries its record, in one unbroken chain over both runs.
        for (i, l) in all.iter().enumerate() {
            let (seq, _, prev) = record_of(l);
            assert_eq!(seq, i as u64, "{name}: {l}");
            if i > 0 {
                assert_eq!(
                    prev,
                    record_of(&all[i - 1]).1,
                    "{name}: chain across the restart"
                );
            }
        }
        // Decision sequence numbers continue across the restart too.
        let seqs: Vec<u64> = all
            .iter()
            .filter_map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["decision_seq"].as_u64()
            })
            .collect();
        assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>(), "{name}");
        if name == "agent-tools" {
            // Budgets are in play: the rolling daily spend cap is hit by the stream.
            assert!(all
                .iter()
                .any(|l| l.contains("\"id\":\"spend-cap\",\"status\":\"VIOLATED\"")));
        }
        let (code, text) = verify(&store, &[]);
        assert_eq!(code, 0, "{text}");
        let out = replay(&store, &policy(name));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{name}: {text}");
        assert!(text.contains("AGREE"), "{text}");
        assert!(
            text.contains(&format!("{} records replayed", all.len())),
            "{text}"
        );

        // A replay under a different policy text reports the differences and fails.
        if name == "agent-tools" {
            let other = dir.join("agent-tools-changed.toml");
            let t = std::fs::read_to_string(policy(name)).unwrap();
            std::fs::write(
                &other,
                t.replace("max = 50000", "max = 20000")
                    .replace("<= 50000", "<= 20000"),
            )
            .unwrap();
            let out = replay(&store, &other);
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(out.status.code(), Some(1), "{text}");
            assert!(text.contains("DIFFER"), "{text}");
            assert!(
                text.contains("final_outcome") || text.contains("constraints"),
                "{text}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tampering through the command line: `verify` exits 1 and names the record.
#[test]
fn verify_names_the_first_bad_record_and_checks_the_key() {
    let dir = tmpdir("verify");
    let key = dir.join("k.key");
    let out = aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(out.status.success());
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(public.len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // keygen refuses to overwrite a key.
    assert_eq!(
        aioss()
            .args(["audit", "keygen"])
            .arg(&key)
            .output()
            .unwrap()
            .status
            .code(),
        Some(2)
    );

    let store = dir.join("a.db");
    let lines = fixture("warehouse-robot");
    decide(
        &policy("warehouse-robot"),
        &store,
        Some(&key),
        20,
        &lines[..60].join("\n"),
    );
    let (code, text) = verify(&store, &["--public-key", &public]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("OK: 60 records"), "{text}");
    assert!(text.contains("head: record 59"), "{text}");
    // Checkpoints at records 19, 39 and 59 (also the shutdown head), and the signed head.
    assert!(text.contains("4 signatures valid"), "{text}");
    assert!(text.contains("signed head: record 59"), "{text}");
    let (code, text) = verify(&store, &["--public-key", &key.to_string_lossy()]);
    assert_eq!(code, 0, "{text}");
    let other = "ab".repeat(32);
    let (code, text) = verify(&store, &["--public-key", &other]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("wrong-key"), "{text}");

    // Export: one JSON record per line, with the hashed bytes.
    let out = aioss()
        .args(["audit", "export"])
        .arg(&store)
        .output()
        .unwrap();
    let exported: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(exported.len(), 60);
    assert_eq!(exported[7]["seq"], 7);
    assert_eq!(exported[7]["prev_hash"], exported[6]["hash"]);
    assert_eq!(exported[7]["proposal"].as_str().unwrap(), lines[7]);

    let s = SqliteStore::open_existing(&store).unwrap();
    s.connection()
        .execute(
            "UPDATE records SET timestamp = '2030-01-01T00:00:00.000000Z' WHERE seq = 33",
            [],
        )
        .unwrap();
    drop(s);
    let (code, text) = verify(&store, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("FAILED at record 33 (edited)"), "{text}");

    // A missing store is bad input.
    let (code, _) = verify(&dir.join("nope.db"), &[]);
    assert_eq!(code, 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// SplitMix64 for random kill points (seeded from the clock; the seed is printed).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// Crash safety with a real process: `kill -9` mid-stream several times at random points;
/// every decision printed before a kill has its record in the store, the chain verifies,
/// and each restart continues the chain.
#[test]
fn kill_9_mid_stream_loses_no_reported_decision() {
    let dir = tmpdir("crash");
    let key = dir.join("k.key");
    assert!(aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let store = dir.join("crash.db");
    let base = fixture("warehouse-robot");
    // A large input: the fixture repeated (200k lines); each run is killed long before its end.
    let big: Vec<&String> = base.iter().cycle().take(200_000).collect();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed);
    let mut printed: HashMap<u64, String> = HashMap::new();
    let mut offset = 0usize;
    let mut expected_next = 0u64;
    let mut expected_prev = aioss_audit::GENESIS.to_string();
    for round in 0..4 {
        let mut child = aioss()
            .args([
                "decide",
                "--clock",
                "logical",
                "--checkpoint-every",
                "100",
                "--policy",
            ])
            .arg(policy("warehouse-robot"))
            .arg("--audit")
            .arg(&store)
            .arg("--key")
            .arg(&key)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            // Complete lines only: a line cut by the kill was not reported.
            let mut got = Vec::new();
            let mut r = BufReader::new(stdout);
            let mut buf = String::new();
            while let Ok(n) = r.read_line(&mut buf) {
                if n == 0 || !buf.ends_with('\n') {
                    break;
                }
                got.push(buf.trim_end().to_string());
                buf.clear();
            }
            got
        });
        let mut stdin = child.stdin.take().unwrap();
        let run_for = Duration::from_millis(300 + rng.next() % 1200);
        let started = Instant::now();
        // A slow writer: chunks of random size with pauses, so the kill lands mid-stream.
        let mut sent = 0usize;
        let last = round == 3;
        while (last && offset + sent < big.len().min(offset + 400))
            || (!last && started.elapsed() < run_for)
        {
            let k = 1 + (rng.next() % 40) as usize;
            let chunk: String = big[(offset + sent) % big.len()..]
                .iter()
                .take(k)
                .map(|l| format!("{l}\n"))
                .collect();
            if stdin.write_all(chunk.as_bytes()).is_err() {
                break;
            }
            sent += k;
            std::thread::sleep(Duration::from_millis(rng.next() % 8));
        }
        if last {
            drop(stdin);
            assert!(matches!(child.wait().unwrap().code(), Some(0..=2)));
        } else {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            drop(stdin);
        }
        let got = reader.join().unwrap();
        offset += sent;
        // The printed lines continue the chain where the store was.
        if let Some(first) = got.first() {
            let (seq, _, prev) = record_of(first);
            assert_eq!(
                seq, expected_next,
                "round {round}: the restart continues the sequence"
            );
            assert_eq!(
                prev, expected_prev,
                "round {round}: the restart continues the chain"
            );
        }
        for l in &got {
            let (seq, hash, _) = record_of(l);
            printed.insert(seq, hash);
        }
        // Every printed decision is in the store, with the same hash; the chain verifies.
        let recs = stored(&store);
        for (seq, hash) in &printed {
            let r = recs
                .get(*seq as usize)
                .unwrap_or_else(|| panic!("round {round}: record {seq} printed but not stored"));
            assert_eq!(&r.hash, hash, "round {round}: record {seq}");
        }
        let (code, text) = verify(&store, &["--public-key", &key.to_string_lossy()]);
        assert_eq!(code, 0, "round {round}: {text}");
        eprintln!(
            "round {round}: sent {sent}, printed {}, stored {}",
            got.len(),
            recs.len()
        );
        assert!(recs.len() >= printed.len());
        if let Some(r) = recs.last() {
            expected_next = r.seq + 1;
            expected_prev = r.hash.clone();
        }
    }
    // The last run ended normally: its shutdown checkpoint signs the head.
    let (code, text) = verify(&store, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("last signed head at record {}", expected_next - 1)),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// G5 (timing) is measured: a decision over `deadline_us` says so after `latency_us`, the
/// report counts it as `deadline_missed`, and replay (which cannot reproduce a measured
/// time) still agrees.
#[test]
fn deadline_overruns_are_reported_and_replay_still_agrees() {
    let dir = tmpdir("deadline");
    let text = std::fs::read_to_string(policy("warehouse-robot")).unwrap();
    assert!(text.contains("deadline_us = 1000\n"));
    // 1 µs: every repair overruns it (a repair takes tens of µs).
    let tight = dir.join("tight.toml");
    std::fs::write(
        &tight,
        text.replace("deadline_us = 1000\n", "deadline_us = 1\n"),
    )
    .unwrap();
    let store = dir.join("d.db");
    let mut input = fixture("warehouse-robot")[..80].join("\n");
    input.push('\n');
    let lines = decide(&tight, &store, None, 50, &input);
    let mut over = 0u64;
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let latency = v["latency_us"].as_u64().unwrap();
        assert_eq!(
            v["timing"],
            serde_json::json!({"deadline_us": 1, "met": latency <= 1}),
            "{l}"
        );
        over += u64::from(latency > 1);
    }
    assert!(over > 0, "no decision overran 1 µs");
    let out = aioss()
        .arg("report")
        .arg(&store)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let counted = j["failure_modes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["mode"] == "deadline_missed")
        .map(|m| m["count"].as_u64().unwrap());
    assert_eq!(counted, Some(over), "{j:#}");
    let out = replay(&store, &tight);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The report of a real store: Markdown, JSON, and a self-contained, well-formed HTML file
/// with its charts.
#[test]
fn report_of_a_real_store() {
    let dir = tmpdir("report");
    let key = dir.join("k.key");
    assert!(aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap()
        .status
        .success());
    let store = dir.join("r.db");
    let mut input = fixture("agent-tools")[..120].join("\n");
    input.push_str("\n{\"broken\n");
    decide(&policy("agent-tools"), &store, Some(&key), 50, &input);
    let mut wh = fixture("warehouse-robot")[..80].join("\n");
    wh.push('\n');
    decide(&policy("warehouse-robot"), &store, Some(&key), 50, &wh);

    let run = |format: &str| {
        let out = aioss()
            .arg("report")
            .arg(&store)
            .args(["--format", format])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let md = run("md");
    for needle in [
        "# AIOSS governance report",
        "VERIFIED: 201 records",
        "## Outcomes",
        "### Trend",
        "## Decisions that need a person",
        "## Most violated constraints",
        "## Repairs",
        "## Relaxations",
        "## Failure modes",
        "## Latency",
        "aioss audit verify",
        "aioss audit replay",
        "malformed_json",
    ] {
        assert!(md.contains(needle), "markdown lacks {needle}:\n{md}");
    }
    let j: serde_json::Value = serde_json::from_str(&run("json")).unwrap();
    assert_eq!(j["records"], 201);
    assert_eq!(j["verification"]["ok"], true);
    assert!(j["outcomes"]["BLOCK_NO_REPAIR"].as_u64().unwrap() > 0);
    assert!(!j["flagged"].as_array().unwrap().is_empty());
    assert!(!j["flagged"][0]["reasons"].as_array().unwrap().is_empty());

    let html_path = dir.join("report.html");
    let out = aioss()
        .arg("report")
        .arg(&store)
        .args(["--format", "html", "--output"])
        .arg(&html_path)
        .output()
        .unwrap();
    assert!(out.status.success());
    let html = std::fs::read_to_string(&html_path).unwrap();
    // Self-contained: no external resources of any kind.
    let lower = html.to_ascii_lowercase();
    for bad in [
        "http:", "https:", "src=", "<link", "<script", "url(", "@import",
    ] {
        assert!(!lower.contains(bad), "the HTML report refers to `{bad}`");
    }
    // Its charts: outcome bars, trend, repair distances, latency (and violated constraints).
    assert!(html.matches("<svg").count() >= 4, "charts missing");
    assert!(html.contains("Outcomes over time") && html.contains("Decision latency percentiles"));
    // Well-formed (XHTML syntax): every tag closed and nested properly.
    let mut reader = quick_xml::Reader::from_str(&html);
    reader.config_mut().check_end_names = true;
    let mut depth = 0i64;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(quick_xml::events::Event::Start(_)) => depth += 1,
            Ok(quick_xml::events::Event::End(_)) => depth -= 1,
            Ok(_) => {}
            Err(e) => panic!(
                "the HTML report is not well-formed at {}: {e}",
                reader.buffer_position()
            ),
        }
    }
    assert_eq!(depth, 0, "unbalanced tags");
    assert!(html.starts_with("<!DOCTYPE html>"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The lines of `out`, read on their own thread, so that a test waiting for an answer can
/// fail instead of hanging (see [`next_answer`]).
fn lines_of(out: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next answer of `child`, or a failure (and the child killed) after a minute: a
/// decision left in an output buffer never arrives.
fn next_answer(
    answers: &std::sync::mpsc::Receiver<String>,
    child: &mut std::process::Child,
) -> String {
    answers
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|e| {
            let _ = child.kill();
            panic!("no answer within 60 s ({e}): the decision was not flushed")
        })
}

/// `aioss decide --policy warehouse-robot.toml EXTRA…` as an interactive caller: each of
/// five fixture lines is sent alone, and `check(i, sent, answer)` runs on its answer before
/// the next is sent.
fn converse(extra: &[&std::ffi::OsStr], mut check: impl FnMut(usize, &str, &str)) {
    let mut child = aioss()
        .args(["decide", "--policy"])
        .arg(policy("warehouse-robot"))
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let answers = lines_of(child.stdout.take().unwrap());
    for (i, l) in fixture("warehouse-robot").iter().take(5).enumerate() {
        writeln!(stdin, "{l}").unwrap();
        stdin.flush().unwrap();
        let answer = next_answer(&answers, &mut child);
        check(i, l, &answer);
    }
    drop(stdin);
    // Exit 1 or 2 by verdict: some decisions are not executed as proposed, some lines
    // refused; never an internal failure.
    assert!(matches!(child.wait().unwrap().code(), Some(0..=2)));
}

/// An interactive caller (one line, then wait for its answer) gets each decision before it
/// sends the next line: without a store too, where a stream's decisions are written in
/// buffer-sized blocks.
#[test]
fn an_interactive_caller_without_a_store_gets_each_decision_before_the_next_line() {
    converse(&[], |_, sent, answer| {
        let v: serde_json::Value = serde_json::from_str(answer).unwrap();
        let sent: serde_json::Value = serde_json::from_str(sent).unwrap();
        assert_eq!(v["id"], sent["id"], "{answer}");
    });
}

/// An interactive caller (one line, then wait for its answer) gets each decision, with its
/// record, before it sends the next line.
#[test]
fn an_interactive_caller_gets_each_decision_before_the_next_line() {
    let dir = tmpdir("interactive");
    let store = dir.join("i.db");
    converse(&["--audit".as_ref(), store.as_os_str()], |i, _, answer| {
        assert_eq!(record_of(answer).0, i as u64);
        // Its record is already durable.
        assert_eq!(stored(&store).len(), i + 1);
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The commands that read a whole store say how far they are on standard error (here every
/// 256 records, with `AIOSS_PROGRESS_MS=0`), and standard output keeps only their result.
#[test]
fn long_reads_of_a_store_report_progress_on_stderr() {
    let dir = tmpdir("progress");
    let store = dir.join("p.db");
    let lines = fixture("agent-tools");
    let input: String = lines
        .iter()
        .cycle()
        .take(600)
        .map(|l| format!("{l}\n"))
        .collect();
    let out = decide(&policy("agent-tools"), &store, None, 1000, &input);
    assert_eq!(out.len(), 600);
    let o = aioss()
        .args(["audit", "replay"])
        .arg(&store)
        .arg("--policy")
        .arg(policy("agent-tools"))
        .env("AIOSS_PROGRESS_MS", "0")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(stdout.starts_with("AGREE: 600 records"), "{stdout}");
    assert!(!stdout.contains("replay:"), "{stdout}");
    let progress: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("replay: "))
        .collect();
    assert_eq!(progress.len(), 2, "{stderr}");
    assert!(
        progress[0].starts_with("replay: 256 of 600 records (42 %), "),
        "{stderr}"
    );
    assert!(progress[1].starts_with("replay: 512 of 600 records (85 %), "));
    // Without the variable, a run this short prints no progress at all.
    let (code, both) = verify(&store, &[]);
    assert_eq!(code, 0, "{both}");
    assert!(!both.contains("verify:"), "{both}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Caught: a proposal with `"timestamp": 1e12` (after year 9999) made `decide --audit`
/// panic (exit 101) while it formatted the record's time; now it is decided, recorded (its
/// RFC 3339 time clamped to the last one it can write, its `time` exact) and replayed.
#[test]
fn a_timestamp_past_year_9999_does_not_crash_decide_audit() {
    let dir = tmpdir("year10000");
    let store = dir.join("a.db");
    let mut line: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(repo().join("policies/examples/warehouse.jsonl"))
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    line["timestamp"] = serde_json::json!(1e12);
    let out = decide(
        &policy("warehouse-robot"),
        &store,
        None,
        0,
        &format!("{line}\n"),
    );
    assert_eq!(out.len(), 1);
    let recs = stored(&store);
    assert_eq!(recs.len(), 1);
    if recs[0].kind == "decision" {
        assert_eq!(recs[0].timestamp, "9999-12-31T23:59:59.999999Z");
        assert_eq!(recs[0].time, "1000000000000.0");
    }
    assert!(replay(&store, &policy("warehouse-robot")).status.success());
    assert_eq!(verify(&store, &[]).0, 0);
}

/// Caught: `verify --public-key` passed a store whose signatures were removed, and a
/// zero-byte store (writing a fresh schema into it). Verify reads the store read-only,
/// demands with a key that a signature covers the last record, and takes an expected
/// minimum count.
#[test]
fn verify_is_read_only_and_with_a_key_demands_a_signed_head() {
    let dir = tmpdir("verify-ro");
    let key = dir.join("k.key");
    let out = aioss()
        .args(["audit", "keygen"])
        .arg(&key)
        .output()
        .unwrap();
    let public = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let store = dir.join("a.db");
    let lines = fixture("warehouse-robot");
    decide(
        &policy("warehouse-robot"),
        &store,
        Some(&key),
        20,
        &lines[..30].join("\n"),
    );
    let (code, text) = verify(&store, &["--public-key", &public, "--min-records", "30"]);
    assert_eq!(code, 0, "{text}");
    let (code, text) = verify(&store, &["--public-key", &public, "--min-records", "31"]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("too-few-records"), "{text}");
    // The signatures removed: fails with the key, passes (with a note) without.
    let bare = dir.join("bare.db");
    std::fs::copy(&store, &bare).unwrap();
    let c = SqliteStore::open_existing(&bare).unwrap();
    c.connection()
        .execute_batch("DELETE FROM checkpoints; DELETE FROM signed_head;")
        .unwrap();
    drop(c);
    let (code, text) = verify(&bare, &["--public-key", &public]);
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("(unsigned)"), "{text}");
    let (code, text) = verify(&bare, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("without --public-key"), "{text}");
    // A zero-byte store fails, and stays zero bytes with nothing beside it.
    let z = dir.join("zero.db");
    std::fs::write(&z, b"").unwrap();
    let files = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        v.sort();
        v
    };
    let before = files(&dir);
    let (code, text) = verify(&z, &["--public-key", &public]);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("not an aioss audit store"), "{text}");
    for extra in [&[][..], &["--public-key", &public][..]] {
        assert_eq!(verify(&store, extra).0, 0);
    }
    assert_eq!(std::fs::metadata(&z).unwrap().len(), 0);
    assert_eq!(files(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `aioss decide --clock logical --audit STORE` driven a line at a time: each answer is
/// read before the next line is written.
struct Interactive {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

impl Interactive {
    fn start(policy: &Path, store: &Path) -> Interactive {
        let mut child = aioss()
            .args(["decide", "--clock", "logical", "--policy"])
            .arg(policy)
            .arg("--audit")
            .arg(store)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Interactive { child, stdin, out }
    }

    fn ask(&mut self, line: &str) -> serde_json::Value {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.out.read_line(&mut answer).unwrap();
        serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
    }

    /// Close its input and wait: its exit code.
    fn finish(self) -> Option<i32> {
        let Interactive {
            mut child, stdin, ..
        } = self;
        drop(stdin);
        child.wait().unwrap().code()
    }
}

/// Issue 20: `aioss decide` takes outcome lines (`{"outcome_of": ID, "state": {...}}`), and
/// what they find moves the agent's mode of operation, recorded and replayed as the
/// server's outcome reports are.
#[test]
fn outcome_lines_feed_the_monitors_and_replay_agrees() {
    let dir = tmpdir("outcome-lines");
    let policy = dir.join("wall.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"wall\"\nversion = \"1\"\n\
         [action.vx]\ntype = \"real\"\nmin = -2.0\nmax = 2.0\n\
         [state.px]\nmin = 0.0\nmax = 10.0\nnoise = 0.0\n\
         [param]\ndt = 0.1\n\
         [dynamics]\npx = \"px + dt * vx\"\nerror_bound = { px = 0.001 }\n\
         [fallback]\nvx = -2.0\n\
         [[constraint]]\nid = \"wall\"\nkind = \"barrier\"\nbarrier = \"5 - px\"\ngamma = 0.5\n",
    )
    .unwrap();
    let store = dir.join("a.db");
    let _ = std::fs::remove_file(&store);
    let mut run = Interactive::start(&policy, &store);
    let mut ask = |line: &str| run.ask(line);
    let first =
        ask(r#"{"id":"w1","agent":"m","timestamp":100,"action":{"vx":1},"state":{"px":1}}"#);
    assert_eq!(first["final_outcome"], "ALLOW", "{first}");
    let id = first["decision_id"].as_str().unwrap().to_string();
    // The plant did not do what the model says (1.1 ± 0.001).
    let ev = ask(&format!(r#"{{"outcome_of":"{id}","state":{{"px":3}}}}"#));
    assert_eq!(ev["evaluation"], "FAILED", "{ev}");
    assert_eq!(
        ev["failure_modes"],
        serde_json::json!(["model_mismatch"]),
        "{ev}"
    );
    assert_eq!(ev["agent"], "m", "{ev}");
    assert!(ev["record"]["seq"].is_u64(), "recorded: {ev}");
    // The agent is now in the fallback mode: a clean proposal is reviewed, the fallback runs.
    let next = ask(r#"{"id":"w2","agent":"m","timestamp":101,"action":{"vx":1},"state":{"px":1}}"#);
    assert_eq!(next["final_outcome"], "REVIEW_AUDIT", "{next}");
    assert_eq!(next["operating_mode"], "fallback", "{next}");
    assert_eq!(next["action"], serde_json::json!({"vx": -2}), "{next}");
    // One outcome per decision; an unknown decision is an input error naming the field.
    let again = ask(&format!(r#"{{"outcome_of":"{id}","state":{{"px":3}}}}"#));
    assert_eq!(again["error"]["field"], "outcome_of", "{again}");
    let bad = ask(r#"{"outcome_of":"x","state":{"px":"far"}}"#);
    assert_eq!(bad["error"]["field"], "state.px", "{bad}");
    // 2: two of its lines were refused.
    assert_eq!(run.finish(), Some(2));

    let (code, text) = verify(&store, &[]);
    assert_eq!(code, 0, "{text}");
    let r = replay(&store, &policy);
    let text = String::from_utf8_lossy(&r.stdout).to_string() + &String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{text}");
    assert!(
        text.contains(" 0 differ") || text.contains("agree"),
        "{text}"
    );
}

/// `aioss audit replay STORE` with no `--policy`.
fn replay_following(store: &Path) -> std::process::Output {
    aioss()
        .args(["audit", "replay"])
        .arg(store)
        .env_remove("AIOSS_PROGRESS_MS")
        .output()
        .unwrap()
}

/// Issue 23, item 10: a log spanning a policy change (a second `decide --audit` run on the
/// same store with another policy, and back) could not be replayed: replay under the old
/// policy and under the new one both reported DIFFER. The store keeps every policy text
/// by hash, and `audit replay STORE` re-decides each record under its own policy.
#[test]
fn a_log_that_spans_a_policy_change_cannot_be_replayed() {
    let dir = tmpdir("policy-change");
    let store = dir.join("audit.db");
    let a = policy("agent-tools");
    let b = dir.join("agent-tools-changed.toml");
    let t = std::fs::read_to_string(&a).unwrap();
    std::fs::write(
        &b,
        t.replace("max = 50000", "max = 20000")
            .replace("<= 50000", "<= 20000"),
    )
    .unwrap();
    let lines = fixture("agent-tools");
    let (first, second) = lines.split_at(lines.len() / 2);
    let (second, third) = second.split_at(second.len() / 2);
    decide(&a, &store, None, 0, &(first.join("\n") + "\n"));
    decide(&b, &store, None, 0, &(second.join("\n") + "\n"));
    decide(&a, &store, None, 0, &(third.join("\n") + "\n"));
    let out = replay_following(&store);
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("AGREE"), "{text}");
    assert!(!text.contains("note:"), "{text}");
    // `--policy` still answers "what would this policy have decided".
    for p in [&a, &b] {
        let out = replay(&store, p);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(text.contains("another policy hash"), "{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 20: decisions made in the critical-rows-only mode (the server's overload mode,
/// `decide --critical-only` here) say so, and replay re-decides them in it.
#[test]
fn critical_only_decisions_are_named_and_replay_agrees() {
    let dir = tmpdir("critical-only");
    let store = dir.join("c.db");
    let _ = std::fs::remove_file(&store);
    let mut input = fixture("warehouse-robot").join("\n");
    input.push('\n');
    let mut cmd = aioss();
    cmd.args([
        "decide",
        "--clock",
        "logical",
        "--critical-only",
        "--policy",
    ])
    .arg(policy("warehouse-robot"))
    .arg("--audit")
    .arg(&store)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let named = text
        .lines()
        .filter(|l| l.contains("\"decision_mode\":\"critical_only\""))
        .count();
    assert!(named > 0, "{text}");
    let r = replay(&store, &policy("warehouse-robot"));
    let said = String::from_utf8_lossy(&r.stdout).to_string() + &String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{said}");
}

/// Issue 20, Tier 3: from a store's decisions and outcomes, `aioss report --policy` sets
/// each row's observed Lipschitz quotient and each dynamics equation's observed error
/// against the declared ones, and `aioss policy suggest --from` prints a diff with the
/// bounds the records support.
#[test]
fn tier3_estimates_are_reported_and_suggested() {
    let dir = tmpdir("tier3");
    let policy = dir.join("cart.toml");
    std::fs::write(
        &policy,
        "[policy]\nname = \"cart\"\nversion = \"1\"\n\
         [action.vx]\ntype = \"real\"\nmin = -2.0\nmax = 2.0\n\
         [state.px]\nmin = 0.0\nmax = 100.0\nnoise = 0.0\n\
         [param]\ndt = 0.1\n\
         [dynamics]\npx = \"px + dt * vx\"\nerror_bound = { px = 0.001 }\n\
         [fallback]\nvx = 0.0\n\
         [[constraint]]\nid = \"track\"\nkind = \"physical\"\ncriticality = \"critical\"\nexpr = \"px + 10 * vx <= 200\"\nlipschitz = 2.0\n",
    )
    .unwrap();
    let store = dir.join("t.db");
    let _ = std::fs::remove_file(&store);
    let mut run = Interactive::start(&policy, &store);
    let mut ask = |line: &str| run.ask(line);
    // A cart whose plant drifts 0.004 past the model each step (declared 0.001), and a
    // controller whose speed changes ten times as fast as its position.
    let mut px = 1.0f64;
    for k in 0..12 {
        let vx = if k % 2 == 0 { 1.0 } else { -1.0 };
        let d = ask(&format!(
            r#"{{"id":"c{k}","agent":"cart","timestamp":{},"action":{{"vx":{vx}}},"state":{{"px":{px}}}}}"#,
            100 + 2 * k
        ));
        let executed = d["action"]["vx"].as_f64().unwrap();
        px += 0.1 * executed + 0.004;
        let id = d["decision_id"].as_str().unwrap();
        let o = ask(&format!(r#"{{"outcome_of":"{id}","state":{{"px":{px}}}}}"#));
        assert!(o["evaluation"].is_string(), "{o}");
    }
    assert_eq!(run.finish(), Some(0));

    let out = aioss()
        .arg("report")
        .arg(&store)
        .args(["--format", "json", "--policy"])
        .arg(&policy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let lines = j["tier3"].to_string();
    assert!(
        lines.contains("dynamics of `px`: observed error up to 0.004"),
        "{lines}"
    );
    assert!(
        lines.contains("declared error_bound 0.001 (exceeded)"),
        "{lines}"
    );
    assert!(
        lines.contains("row `track`: observed Lipschitz quotient up to"),
        "{lines}"
    );

    let out = aioss()
        .args(["policy", "suggest", "--from"])
        .arg(&store)
        .arg(&policy)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    assert!(text.contains("-error_bound = { px = 0.001 }"), "{text}");
    assert!(text.contains("+error_bound = { px = 0.0044 }"), "{text}");
    assert!(text.contains("-lipschitz = 2.0\n+lipschitz = "), "{text}");
    assert!(text.contains("--- "), "{text}");
}

/// Issue 23, item 9: a response carried two `seq` values (the decision counter and the
/// log position). The counter is `decision_seq`; `record.seq` stays.
#[test]
fn a_response_carries_two_seq_values() {
    let dir = tmpdir("two-seqs");
    let store = dir.join("s.db");
    let input = std::fs::read_to_string(repo().join("policies/examples/warehouse.jsonl")).unwrap();
    let out = decide(&policy("warehouse-robot"), &store, None, 0, &input);
    for (i, l) in out.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v.get("seq").is_none(), "{v:#}");
        assert_eq!(v["decision_seq"], i, "{v:#}");
        assert_eq!(v["record"]["seq"], i, "{v:#}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
