//! Tampering with the SQLite file directly is caught and named by `verify`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::{Path, PathBuf};

use aioss_audit::verify::{verify, ProblemKind};
use aioss_audit::{Key, SqliteStore, Store, Writer};
use aioss_core::Governor;
use rusqlite::{params, Connection};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("aioss-audit-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A store of 150 warehouse decisions and 2 bad lines, checkpointed every 50 records and at
/// the end (record 151).
fn build(dir: &Path, key: &Key) -> PathBuf {
    let path = dir.join("base.db");
    let policy_path = repo().join("policies/warehouse-robot.toml");
    let text = std::fs::read_to_string(&policy_path).unwrap();
    let policy = aioss_core::load(&policy_path.to_string_lossy(), &text).unwrap();
    let mut g = Governor::new(policy);
    let store = SqliteStore::open(&path).unwrap();
    let mut w = Writer::new(
        Box::new(store),
        Some(Key::parse(&key_text(key)).unwrap()),
        50,
    )
    .unwrap();
    let lines =
        std::fs::read_to_string(repo().join("tests/data/audit/warehouse-robot.jsonl")).unwrap();
    let mut lines: Vec<String> = lines.lines().take(150).map(str::to_string).collect();
    lines.insert(10, "{not json".into());
    lines.insert(100, "{\"agent\": 3}".into());
    for (i, l) in lines.iter().enumerate() {
        let r = match g.decide_line_at(l, f64::NAN) {
            Ok(d) => {
                let j = d.to_json(g.policy());
                aioss_audit::decision_record(g.policy(), l, &d, &j, g.state_digest())
            }
            Err(e) => aioss_audit::error_record(g.policy(), l, &e, 1.7e9, g.state_digest()),
        };
        w.push(r);
        if i % 37 == 0 {
            w.commit().unwrap();
        }
    }
    w.finish().unwrap();
    drop(w);
    path
}

fn key_text(k: &Key) -> String {
    // Round-trip through a key file.
    let p = std::env::temp_dir().join(format!(
        "aioss-audit-key-{}-{}",
        std::process::id(),
        k.public_hex()
    ));
    if !p.exists() {
        k.write_new(&p).unwrap();
    }
    std::fs::read_to_string(&p).unwrap()
}

fn copy(base: &Path, dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(format!("{name}.db"));
    std::fs::copy(base, &p).unwrap();
    p
}

fn check(path: &Path, public_key: Option<&str>) -> aioss_audit::verify::Report {
    let mut s = SqliteStore::open_existing(path).unwrap();
    verify(&mut s, public_key).unwrap()
}

fn rehash(c: &Connection, seq: i64) {
    let mut s = SqliteStore::open_existing(Path::new(c.path().unwrap())).unwrap();
    let mut rec = None;
    s.scan(&mut |r| {
        if r.seq == u64::try_from(seq).unwrap() {
            rec = Some(r);
            return Ok(false);
        }
        Ok(true)
    })
    .unwrap();
    let h = rec.unwrap().compute_hash();
    c.execute(
        "UPDATE records SET hash = ?1 WHERE seq = ?2",
        params![h, seq],
    )
    .unwrap();
}

#[test]
fn every_kind_of_tampering_is_caught_and_named() {
    let dir = tmpdir("tamper");
    let key = Key::generate().unwrap();
    let base = build(&dir, &key);
    let pk = key.public_hex();

    // The untouched store verifies, with the expected key too.
    let r = check(&base, Some(&pk));
    assert!(r.ok(), "{:?}", r.problem);
    assert_eq!(r.count, 152);
    assert_eq!(r.head.as_ref().unwrap().0, 151);
    assert_eq!(
        r.checkpoints, 4,
        "records 49, 99, 149 and the shutdown checkpoint at 151"
    );
    // The four checkpoints and the signed head (signed at every commit).
    assert_eq!(r.signatures_ok, 5);
    assert_eq!(r.signed_head, Some(151));

    // 1. Edit a field.
    let p = copy(&base, &dir, "edit");
    let c = Connection::open(&p).unwrap();
    // A decision that was not ALLOW is made to say ALLOW.
    let victim: i64 = c
        .query_row(
            "SELECT seq FROM records WHERE kind = 'decision' AND seq > 50 \
             AND json_extract(decision, '$.final_outcome') != 'ALLOW' ORDER BY seq LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    c.execute(
        "UPDATE records SET decision = json_set(decision, '$.final_outcome', 'ALLOW') WHERE seq = ?1",
        params![victim],
    )
    .unwrap();
    c.execute(
        "UPDATE records SET latency_us = latency_us + 1 WHERE seq = ?1",
        params![victim + 1],
    )
    .unwrap();
    drop(c);
    let r = check(&p, None);
    let pr = r.problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (u64::try_from(victim).unwrap(), ProblemKind::Edited),
        "{}",
        pr.message
    );
    assert!(pr.message.contains("edited"), "{}", pr.message);

    // 1b. Edit a field and recompute its hash: the next record no longer links.
    let p = copy(&base, &dir, "edit-rehash");
    let c = Connection::open(&p).unwrap();
    c.execute(
        "UPDATE records SET proposal = proposal || ' ' WHERE seq = 20",
        [],
    )
    .unwrap();
    rehash(&c, 20);
    drop(c);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (21, ProblemKind::Unlinked),
        "{}",
        pr.message
    );
    assert!(
        pr.message.contains("record 20 was edited"),
        "{}",
        pr.message
    );

    // 2. Delete a record.
    let p = copy(&base, &dir, "delete");
    let c = Connection::open(&p).unwrap();
    c.execute("DELETE FROM records WHERE seq = 80", []).unwrap();
    drop(c);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (80, ProblemKind::Deleted),
        "{}",
        pr.message
    );
    assert!(pr.message.contains("missing"), "{}", pr.message);

    // 3. Swap two records.
    let p = copy(&base, &dir, "swap");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "UPDATE records SET seq = -1 WHERE seq = 100; UPDATE records SET seq = 100 WHERE seq = 101; UPDATE records SET seq = 101 WHERE seq = -1;",
    )
    .unwrap();
    drop(c);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (100, ProblemKind::Reordered),
        "{}",
        pr.message
    );
    assert!(pr.message.contains("stored at 101"), "{}", pr.message);

    // 4. Truncate after a checkpoint.
    let p = copy(&base, &dir, "truncate");
    let c = Connection::open(&p).unwrap();
    c.execute("DELETE FROM records WHERE seq > 120", [])
        .unwrap();
    drop(c);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (149, ProblemKind::Truncated),
        "{}",
        pr.message
    );
    assert!(pr.message.contains("ends at record 120"), "{}", pr.message);

    // 5a. Forge a checkpoint: move it to another head without re-signing.
    let p = copy(&base, &dir, "forge");
    let c = Connection::open(&p).unwrap();
    let h: String = c
        .query_row("SELECT hash FROM records WHERE seq = 120", [], |r| r.get(0))
        .unwrap();
    c.execute(
        "UPDATE checkpoints SET seq = 120, head_hash = ?1 WHERE seq = 99",
        params![h],
    )
    .unwrap();
    drop(c);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (120, ProblemKind::BadSignature),
        "{}",
        pr.message
    );

    // 5b. Forge a checkpoint with another key (valid signature, wrong signer).
    let p = copy(&base, &dir, "forge-key");
    let other = Key::generate().unwrap();
    let mut s = SqliteStore::open_existing(&p).unwrap();
    let h: String = s
        .connection()
        .query_row("SELECT hash FROM records WHERE seq = 151", [], |r| r.get(0))
        .unwrap();
    s.append(&[], &[other.checkpoint(151, &h, "now".into())])
        .unwrap();
    drop(s);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (151, ProblemKind::WrongKey),
        "{}",
        pr.message
    );
    let pr = check(&base, Some(&other.public_hex())).problem.unwrap();
    assert_eq!(pr.kind, ProblemKind::WrongKey, "{}", pr.message);

    // 6. Rewrite the whole chain after an edit (every hash recomputed): the signed
    // checkpoints no longer match.
    let p = copy(&base, &dir, "rewrite");
    let mut s = SqliteStore::open_existing(&p).unwrap();
    let mut recs = Vec::new();
    s.scan(&mut |r| {
        recs.push(r);
        Ok(true)
    })
    .unwrap();
    recs[30].proposal.push(' ');
    let mut prev = aioss_audit::GENESIS.to_string();
    for r in &mut recs {
        r.prev_hash = prev.clone();
        r.seal();
        prev = r.hash.clone();
    }
    s.connection().execute("DELETE FROM records", []).unwrap();
    s.append(&recs, &[]).unwrap();
    drop(s);
    let pr = check(&p, None).problem.unwrap();
    assert_eq!(
        (pr.seq, pr.kind),
        (49, ProblemKind::CheckpointMismatch),
        "{}",
        pr.message
    );

    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_restarted_writer_continues_the_chain() {
    let dir = tmpdir("restart");
    let key = Key::generate().unwrap();
    let base = build(&dir, &key);
    let mut s = SqliteStore::open_existing(&base).unwrap();
    let (head, hash) = s.head().unwrap().unwrap();
    let mut w = Writer::new(Box::new(s), None, 0).unwrap();
    assert_eq!(w.next_seq(), head + 1);
    let mut r = aioss_audit::Record {
        seq: 0,
        kind: "input_error".into(),
        decision_id: String::new(),
        timestamp: aioss_audit::record::rfc3339(1.0),
        time: "1.0".into(),
        policy_name: "p".into(),
        policy_version: "v".into(),
        policy_hash: "h".into(),
        proposal: "x".into(),
        decision: "{}".into(),
        latency_us: 0,
        state_digest: String::new(),
        prev_hash: String::new(),
        hash: String::new(),
    };
    r.seal();
    let rr = w.push(r);
    assert_eq!(rr.prev_hash, hash);
    w.finish().unwrap();
    drop(w);
    let rep = check(&base, None);
    assert!(rep.ok(), "{:?}", rep.problem);
    assert_eq!(rep.count, head + 2);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Verify read-only, as `aioss audit verify` does.
fn check_ro(
    path: &Path,
    public_key: Option<&str>,
    min_records: u64,
) -> Result<aioss_audit::verify::Report, aioss_audit::Error> {
    let mut s = SqliteStore::open_read_only(path)?;
    aioss_audit::verify::verify_with(
        &mut s,
        &aioss_audit::verify::Options {
            public_key,
            min_records,
        },
    )
}

/// Every file of a directory with its bytes.
fn snapshot_dir(d: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Caught: `verify --public-key` passed stores whose protection had been removed
/// (checkpoints deleted or their table dropped, the chain rewritten; a zero-byte or
/// emptied store; a tail truncated with its checkpoints), and it wrote a fresh schema into
/// the file it was checking. With a key, the last record must be under one of its
/// signatures; `min_records` catches a truncation back to an earlier signed head; and the
/// store is opened read-only.
#[test]
fn verify_with_a_key_fails_a_store_whose_protection_was_removed() {
    let dir = tmpdir("unprotected");
    let key = Key::generate().unwrap();
    let base = build(&dir, &key);
    let pk = key.public_hex();
    let ok = check_ro(&base, Some(&pk), 152).unwrap();
    assert!(ok.ok(), "{:?}", ok.problem);
    assert_eq!(ok.covered, Some(151));
    let kind = |p: &Path, min: u64| {
        let r = check_ro(p, Some(&pk), min).unwrap();
        let pr = r
            .problem
            .unwrap_or_else(|| panic!("{} passed", p.display()));
        (pr.seq, pr.kind)
    };

    // Checkpoints and signed head deleted, the chain intact.
    let p = copy(&base, &dir, "no-signatures");
    let c = Connection::open(&p).unwrap();
    c.execute_batch("DELETE FROM checkpoints; DELETE FROM signed_head;")
        .unwrap();
    drop(c);
    assert_eq!(kind(&p, 0), (0, ProblemKind::Unsigned));
    // Without a key there is nothing to hold the store to (and verify says so).
    assert!(check_ro(&p, None, 0).unwrap().ok());

    // Both tables dropped: not an audit store.
    let p = copy(&base, &dir, "dropped");
    let c = Connection::open(&p).unwrap();
    c.execute_batch("DROP TABLE checkpoints; DROP TABLE signed_head;")
        .unwrap();
    drop(c);
    let e = check_ro(&p, Some(&pk), 0).unwrap_err().to_string();
    assert!(e.contains("no `checkpoints` table"), "{e}");

    // A record edited, the chain rewritten, every signature removed.
    let p = copy(&base, &dir, "rewritten");
    let mut s = SqliteStore::open_existing(&p).unwrap();
    let mut recs = Vec::new();
    s.scan(&mut |r| {
        recs.push(r);
        Ok(true)
    })
    .unwrap();
    recs[30].decision = recs[30].decision.replace("BLOCK_NO_REPAIR", "ALLOW");
    let mut prev = aioss_audit::GENESIS.to_string();
    for r in &mut recs {
        r.prev_hash = prev.clone();
        r.seal();
        prev = r.hash.clone();
    }
    s.connection()
        .execute_batch("DELETE FROM records; DELETE FROM checkpoints; DELETE FROM signed_head;")
        .unwrap();
    s.append(&recs, &[]).unwrap();
    drop(s);
    assert_eq!(kind(&p, 0), (0, ProblemKind::Unsigned));

    // Emptied, and zero bytes.
    let p = copy(&base, &dir, "emptied");
    let c = Connection::open(&p).unwrap();
    c.execute_batch("DELETE FROM records; DELETE FROM checkpoints; DELETE FROM signed_head;")
        .unwrap();
    drop(c);
    assert_eq!(kind(&p, 0), (0, ProblemKind::Unsigned));
    let z = dir.join("zero.db");
    std::fs::write(&z, b"").unwrap();
    let e = check_ro(&z, Some(&pk), 0).unwrap_err().to_string();
    assert!(e.contains("not an aioss audit store"), "{e}");

    // The tail truncated with its checkpoints and the signed head: records 100..120 are
    // left unsigned.
    let p = copy(&base, &dir, "tail");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "DELETE FROM records WHERE seq > 120; DELETE FROM checkpoints WHERE seq > 120; DELETE FROM signed_head;",
    )
    .unwrap();
    drop(c);
    assert_eq!(kind(&p, 0), (100, ProblemKind::Unsigned));
    // Truncated exactly at a checkpoint: only an expected count shows it.
    let p = copy(&base, &dir, "rollback");
    let c = Connection::open(&p).unwrap();
    c.execute_batch(
        "DELETE FROM records WHERE seq > 99; DELETE FROM checkpoints WHERE seq > 99; DELETE FROM signed_head;",
    )
    .unwrap();
    drop(c);
    assert!(check_ro(&p, Some(&pk), 100).unwrap().ok());
    assert_eq!(kind(&p, 152), (100, ProblemKind::TooFew));

    // Verifying changes nothing and creates no file (the zero-byte store included).
    let before = snapshot_dir(&dir);
    for name in ["base.db", "no-signatures.db", "tail.db", "zero.db"] {
        let _ = check_ro(&dir.join(name), Some(&pk), 0);
    }
    assert_eq!(snapshot_dir(&dir), before);
    let _ = std::fs::remove_dir_all(&dir);
}
