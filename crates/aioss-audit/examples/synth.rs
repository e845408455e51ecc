//! Build a large store for benchmarks: the records of SRC (real decisions) cycled and
//! re-chained into DST until it holds N records, through the ordinary [`Writer`] (batches of
//! 4096, durable commits, a checkpoint every 1000). Prints the store's own throughput.
//!
//! `cargo run --release -p aioss-audit --example synth -- SRC.db DST.db 1000000`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use aioss_audit::{Key, SqliteStore, Store, Writer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst, n) = (&args[1], &args[2], args[3].parse::<u64>().unwrap());
    let mut s = SqliteStore::open_existing(std::path::Path::new(src)).unwrap();
    let mut recs = Vec::new();
    s.scan(&mut |r| {
        recs.push(r);
        Ok(true)
    })
    .unwrap();
    let store = SqliteStore::open(std::path::Path::new(dst)).unwrap();
    let mut w = Writer::new(Box::new(store), Some(Key::generate().unwrap()), 1000).unwrap();
    let t = std::time::Instant::now();
    for (i, r) in recs
        .iter()
        .cycle()
        .take(usize::try_from(n).unwrap())
        .enumerate()
    {
        w.push(r.clone());
        if (i + 1) % 4096 == 0 {
            w.commit().unwrap();
        }
    }
    w.finish().unwrap();
    let secs = t.elapsed().as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "a count")]
    let rate = n as f64 / secs;
    println!("{n} records in {secs:.2} s: {rate:.0} records/s (chain, sign every 1000, commit every 4096)");
}
