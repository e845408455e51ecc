//! The two-phase WAL checkpoint of the embedded store keeps the WAL bounded and loses
//! nothing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use aioss_audit::{Kind, Record, SqliteStore, Store, Writer};

fn record(i: u64) -> Record {
    Record {
        seq: 0,
        kind: Kind::Decision.as_str().into(),
        decision_id: format!("d-{i}"),
        timestamp: aioss_audit::record::rfc3339(1.0),
        time: "1.0".into(),
        policy_name: "p".into(),
        policy_version: "1".into(),
        policy_hash: "sha256:00".into(),
        proposal: format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(2000)),
        decision: "{}".into(),
        latency_us: 1,
        state_digest: "00".into(),
        prev_hash: String::new(),
        hash: String::new(),
    }
}

#[test]
fn background_checkpoints_bound_the_wal() {
    let dir = std::env::temp_dir().join(format!("aioss-audit-wal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("w.db");
    let mut s = SqliteStore::open(&path).unwrap();
    s.enable_background_checkpoints(1 << 20).unwrap();
    let mut w = Writer::new(Box::new(s), None, 0).unwrap();
    let wal = dir.join("w.db-wal");
    let mut max_wal = 0;
    // 12 MB of records in batches of 50 (about 100 kB each).
    for b in 0..120u64 {
        for i in 0..50 {
            w.push(record(b * 50 + i));
        }
        w.commit().unwrap();
        w.maintain().unwrap();
        max_wal = max_wal.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
        // Give the checkpoint thread a moment now and then, as time between batches does.
        if b % 10 == 9 {
            std::thread::sleep(std::time::Duration::from_millis(50));
            w.maintain().unwrap();
        }
    }
    w.finish().unwrap();
    drop(w);
    // Without checkpoints the WAL would hold all 12 MB (the safety net is at 1 GiB).
    assert!(max_wal < 8 << 20, "the WAL grew to {max_wal} bytes");
    let mut s = SqliteStore::open_existing(&path).unwrap();
    assert_eq!(s.count().unwrap(), 6000);
    let v = aioss_audit::verify::verify(&mut s, None).unwrap();
    assert!(v.problem.is_none(), "{:?}", v.problem);
}
